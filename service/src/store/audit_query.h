/* SPDX-License-Identifier: Apache-2.0 */
/* Reading audit_events for the admin API (filters, keyset pagination). */
#ifndef SG_STORE_AUDIT_QUERY_H
#define SG_STORE_AUDIT_QUERY_H

#include "io/pg.h"

#define SG_AUDIT_QUERY_MAX_LIMIT 10000

/* Every filter may be NULL. after_ts/after_id continue after that row (keyset pagination). */
typedef struct sg_audit_filter {
    const char *tenant;
    const char *identity;
    const char *tool;
    const char *decision;
    const char *since; /* timestamptz text */
    const char *until;
    const char *after_ts;
    const char *after_id;
    int limit; /* 1..SG_AUDIT_QUERY_MAX_LIMIT */
} sg_audit_filter_t;

/* Column order of the result (see audit_query.c). */
enum {
    SG_AQ_ID = 0,
    SG_AQ_TS,
    SG_AQ_TENANT,
    SG_AQ_IDENTITY,
    SG_AQ_SESSION,
    SG_AQ_REPLICA,
    SG_AQ_SEQ,
    SG_AQ_REQUEST_ID,
    SG_AQ_METHOD,
    SG_AQ_TOOL,
    SG_AQ_UPSTREAM,
    SG_AQ_CLASS,
    SG_AQ_DECISION,
    SG_AQ_RULE,
    SG_AQ_REASON,
    SG_AQ_ARGUMENTS,
    SG_AQ_RESULT_SIZE,
    SG_AQ_RESULT_IS_ERROR,
    SG_AQ_GATE_US,
    SG_AQ_UPSTREAM_US,
    SG_AQ_FINDINGS,
    SG_AQ_APPROVAL_ID,
    SG_AQ_NCOLS
};

void sg_audit_query_prepare(sg_pg_t *pg);
void sg_audit_query_start(sg_pg_t *pg, sg_pg_query_t *q, const sg_audit_filter_t *f,
                          sg_pg_query_cb cb);
/* The column names, for CSV headers and JSON members. */
const char *sg_audit_query_column(int i);

#endif
