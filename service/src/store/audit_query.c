/* SPDX-License-Identifier: Apache-2.0 */
#include "store/audit_query.h"

#include <stdio.h>

static const char *const columns[SG_AQ_NCOLS] = { "id",
                                                  "ts",
                                                  "tenant",
                                                  "identity",
                                                  "session",
                                                  "replica",
                                                  "seq",
                                                  "request_id",
                                                  "method",
                                                  "tool",
                                                  "upstream",
                                                  "class",
                                                  "decision",
                                                  "rule",
                                                  "reason",
                                                  "arguments",
                                                  "result_size",
                                                  "result_is_error",
                                                  "gate_latency_us",
                                                  "upstream_latency_us",
                                                  "findings",
                                                  "approval_id" };

const char *sg_audit_query_column(int i)
{
    return i >= 0 && i < SG_AQ_NCOLS ? columns[i] : "";
}

void sg_audit_query_prepare(sg_pg_t *pg)
{
    sg_pg_prepare(
            pg, "audit_query",
            "SELECT id, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'), "
            "tenant, identity, session, replica, seq, request_id, method, tool, upstream, class, "
            "decision, rule, reason, arguments::text, result_size, result_is_error, "
            "gate_latency_us, upstream_latency_us, findings::text, approval_id "
            "FROM audit_events WHERE ($1::text IS NULL OR tenant = $1) "
            "AND ($2::text IS NULL OR identity = $2) AND ($3::text IS NULL OR tool = $3) "
            "AND ($4::text IS NULL OR decision = $4) "
            "AND ($5::timestamptz IS NULL OR ts >= $5) AND ($6::timestamptz IS NULL OR ts < $6) "
            "AND ($7::timestamptz IS NULL OR (ts, id) > ($7::timestamptz, $8::text)) "
            "ORDER BY ts, id LIMIT $9::int",
            9);
}

void sg_audit_query_start(sg_pg_t *pg, sg_pg_query_t *q, const sg_audit_filter_t *f,
                          sg_pg_query_cb cb)
{
    char limit[16];
    snprintf(limit, sizeof(limit), "%d", f->limit);
    const char *params[] = { f->tenant, f->identity, f->tool,     f->decision, f->since,
                             f->until,  f->after_ts, f->after_id, limit };
    sg_pg_exec_prepared(pg, q, 10000, "audit_query", 9, params, NULL, cb);
}
