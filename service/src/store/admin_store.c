/* SPDX-License-Identifier: Apache-2.0 */
#include "store/admin_store.h"

#define TIMEOUT_MS 5000

static const char insert_sql[] = "INSERT INTO admin_actions (actor, action, tenant, target, "
                                 "details, request_id) VALUES ($1, $2, $3, $4, $5::jsonb, $6)";

void sg_admin_store_prepare(sg_pg_t *pg)
{
    sg_pg_prepare(pg, "admin_action_insert", insert_sql, 6);
}

void sg_admin_store_record(sg_pg_t *pg, sg_pg_query_t *q, const sg_admin_action_t *a,
                           sg_pg_query_cb cb)
{
    const char *params[] = {
        a->actor,     a->action, a->tenant, a->target, a->details != NULL ? a->details : "{}",
        a->request_id
    };
    sg_pg_exec_prepared(pg, q, TIMEOUT_MS, "admin_action_insert", 6, params, NULL, cb);
}
