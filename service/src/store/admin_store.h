/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The admin_actions trail: one row per control-plane action (who, when, what).
 * details must already be redacted JSON: nothing secret is written here.
 */
#ifndef SG_STORE_ADMIN_STORE_H
#define SG_STORE_ADMIN_STORE_H

#include "base/sg.h"
#include "io/pg.h"

typedef struct sg_admin_action {
    const char *actor;      /* "admin-token@<peer>" */
    const char *action;     /* "killswitch.set", "bootstrap", ... */
    const char *tenant;     /* may be NULL */
    const char *target;     /* may be NULL */
    const char *details;    /* redacted JSON object text */
    const char *request_id; /* may be NULL */
} sg_admin_action_t;

/* Registers the statements this module uses on pg (call once at start). */
void sg_admin_store_prepare(sg_pg_t *pg);
/* Inserts one row asynchronously; q's callback as sg_pg_query_start (all strings are copied). */
void sg_admin_store_record(sg_pg_t *pg, sg_pg_query_t *q, const sg_admin_action_t *a,
                           sg_pg_query_cb cb);

#endif
