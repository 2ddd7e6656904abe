/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `sentinel-gate audit verify`: re-derives every row's hash from its content
 * (audit_chain.c, the very code the writer hashed with) and walks each
 * replica's chain in seq order, reporting the first break per replica.
 * Blocking libpq inside one REPEATABLE READ READ ONLY transaction, rows
 * streamed in single-row mode so memory stays flat however long the chain.
 * CLI only: never on the event loop.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include <libpq-fe.h>

#include "base/buf.h"
#include "store/audit.h"
#include "store/audit_int.h"

/* Column order of walk_sql, read by row_from_result. */
enum {
    SG_AUDIT_COL_ID = 0,
    SG_AUDIT_COL_TS,
    SG_AUDIT_COL_TENANT,
    SG_AUDIT_COL_IDENTITY,
    SG_AUDIT_COL_SESSION,
    SG_AUDIT_COL_REPLICA,
    SG_AUDIT_COL_REQUEST_ID,
    SG_AUDIT_COL_METHOD,
    SG_AUDIT_COL_TOOL,
    SG_AUDIT_COL_UPSTREAM,
    SG_AUDIT_COL_CLASS,
    SG_AUDIT_COL_DECISION,
    SG_AUDIT_COL_RULE,
    SG_AUDIT_COL_REASON,
    SG_AUDIT_COL_ARGUMENTS,
    SG_AUDIT_COL_RESULT_SIZE,
    SG_AUDIT_COL_RESULT_IS_ERROR,
    SG_AUDIT_COL_GATE_LATENCY,
    SG_AUDIT_COL_UPSTREAM_LATENCY,
    SG_AUDIT_COL_FINDINGS,
    SG_AUDIT_COL_APPROVAL_ID,
    SG_AUDIT_COL_SEQ,
    SG_AUDIT_COL_PREV_HASH,
    SG_AUDIT_COL_HASH,
    SG_AUDIT_COL_COUNT
};

static const char walk_sql[] =
        "SELECT id, (extract(epoch FROM ts) * 1000000)::bigint, tenant, identity, session, "
        "replica, request_id, method, tool, upstream, class, decision, rule, reason, "
        "arguments::text, result_size, result_is_error, gate_latency_us, upstream_latency_us, "
        "findings::text, approval_id, seq, prev_hash, hash "
        "FROM audit_events WHERE replica = $1 AND seq >= $2 ORDER BY seq, id";

/* Every replica, by a loose index scan over (replica, seq). */
static const char replicas_all_sql[] =
        "WITH RECURSIVE r AS ("
        " SELECT min(replica) AS replica FROM audit_events"
        " UNION ALL"
        " SELECT (SELECT min(replica) FROM audit_events WHERE replica > r.replica)"
        " FROM r WHERE r.replica IS NOT NULL)"
        "SELECT replica FROM r WHERE replica IS NOT NULL";

static const char replicas_filtered_sql[] =
        "SELECT DISTINCT replica FROM audit_events "
        "WHERE ($1::text IS NULL OR tenant = $1) AND ($2::timestamptz IS NULL OR ts >= $2) "
        "ORDER BY 1";

static const char start_sql[] =
        "SELECT min(seq) FROM audit_events WHERE replica = $1 "
        "AND ($2::text IS NULL OR tenant = $2) AND ($3::timestamptz IS NULL OR ts >= $3)";

typedef struct sg_audit_walk {
    FILE *out;
    const char *replica;
    uint64_t start; /* first seq of interest; 0 = the whole chain */
    bool have_prev;
    uint64_t prev_seq;
    char prev_hash[SG_AUDIT_HASH_LEN + 1];
    uint64_t first_seq;
    uint64_t checked;
    bool broken;
    sg_buf_t head; /* scratch: the hashed bytes */
    sg_buf_t args, findings;
} sg_audit_walk_t;

static int backend_error(PGconn *c, const PGresult *r, sg_error_t *err, const char *what)
{
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL) {
        msg = PQerrorMessage(c);
    }
    int n = (int)strcspn(msg, "\r\n");
    return sg_error_set(err, SG_EBACKEND, "audit verify: %s: %.*s", what, SG_MIN(n, 200), msg);
}

static sg_str_t cell(const PGresult *r, int col)
{
    if (PQgetisnull(r, 0, col)) {
        return SG_STR_NULL;
    }
    return sg_str_n(PQgetvalue(r, 0, col), (size_t)PQgetlength(r, 0, col));
}

static bool cell_int(const PGresult *r, int col, int64_t *v)
{
    if (PQgetisnull(r, 0, col)) {
        return false;
    }
    *v = strtoll(PQgetvalue(r, 0, col), NULL, 10);
    return true;
}

/* The JSON column as the writer hashed it; false when it cannot be canonical. */
static bool json_cell(const PGresult *r, int col, sg_buf_t *tmp, sg_str_t *out)
{
    sg_buf_reset(tmp);
    sg_str_t raw = cell(r, col);
    if (raw.ptr == NULL) {
        *out = SG_STR_NULL;
        return true;
    }
    if (sg_audit_canon_json(raw, tmp) != SG_OK) {
        return false;
    }
    *out = sg_str_n(tmp->data, tmp->len);
    return true;
}

/* Recomputes the row's hash; false when the content cannot be what the writer hashed. */
static bool content_hash(sg_audit_walk_t *w, const PGresult *r, char hash[SG_AUDIT_HASH_LEN + 1])
{
    sg_audit_row_t row = {
        .id = cell(r, SG_AUDIT_COL_ID),
        .tenant = cell(r, SG_AUDIT_COL_TENANT),
        .identity = cell(r, SG_AUDIT_COL_IDENTITY),
        .session = cell(r, SG_AUDIT_COL_SESSION),
        .replica = cell(r, SG_AUDIT_COL_REPLICA),
        .request_id = cell(r, SG_AUDIT_COL_REQUEST_ID),
        .method = cell(r, SG_AUDIT_COL_METHOD),
        .tool = cell(r, SG_AUDIT_COL_TOOL),
        .upstream = cell(r, SG_AUDIT_COL_UPSTREAM),
        .risk_class = cell(r, SG_AUDIT_COL_CLASS),
        .decision = cell(r, SG_AUDIT_COL_DECISION),
        .rule = cell(r, SG_AUDIT_COL_RULE),
        .reason = cell(r, SG_AUDIT_COL_REASON),
        .approval_id = cell(r, SG_AUDIT_COL_APPROVAL_ID),
        .result_is_error = PQgetisnull(r, 0, SG_AUDIT_COL_RESULT_IS_ERROR)
                                   ? -1
                                   : (PQgetvalue(r, 0, SG_AUDIT_COL_RESULT_IS_ERROR)[0] == 't'),
    };
    cell_int(r, SG_AUDIT_COL_TS, &row.ts_us);
    row.has_result_size = cell_int(r, SG_AUDIT_COL_RESULT_SIZE, &row.result_size);
    row.has_gate_latency = cell_int(r, SG_AUDIT_COL_GATE_LATENCY, &row.gate_latency_us);
    row.has_upstream_latency = cell_int(r, SG_AUDIT_COL_UPSTREAM_LATENCY, &row.upstream_latency_us);
    if (!json_cell(r, SG_AUDIT_COL_ARGUMENTS, &w->args, &row.arguments) ||
        !json_cell(r, SG_AUDIT_COL_FINDINGS, &w->findings, &row.findings)) {
        return false;
    }
    sg_buf_reset(&w->head);
    sg_audit_row_write(&w->head, &row);
    sg_buf_printf(&w->head, ",\"seq\":%s", PQgetvalue(r, 0, SG_AUDIT_COL_SEQ));
    sg_audit_chain_hash(PQgetvalue(r, 0, SG_AUDIT_COL_PREV_HASH), w->head.data, w->head.len, hash);
    return true;
}

static void report_break(sg_audit_walk_t *w, const PGresult *r, const char *what)
{
    char ts[SG_AUDIT_TS_LEN + 1];
    int64_t us = 0;
    cell_int(r, SG_AUDIT_COL_TS, &us);
    sg_audit_format_ts(us, ts);
    fprintf(w->out, "replica %s: BROKEN at seq %s (id %s, ts %s): %s\n", w->replica,
            PQgetvalue(r, 0, SG_AUDIT_COL_SEQ), PQgetvalue(r, 0, SG_AUDIT_COL_ID), ts, what);
    w->broken = true;
}

/* Checks one row against the previous one; false once the chain is broken. */
static bool check_row(sg_audit_walk_t *w, const PGresult *r)
{
    char msg[160], hash[SG_AUDIT_HASH_LEN + 1];
    uint64_t seq = strtoull(PQgetvalue(r, 0, SG_AUDIT_COL_SEQ), NULL, 10);
    const char *prev_hash = PQgetvalue(r, 0, SG_AUDIT_COL_PREV_HASH);
    if (!w->have_prev && w->start > 1 && seq == w->start - 1) {
        /* the anchor before the range: only its hash is used, to check the first link */
        w->have_prev = true;
        w->prev_seq = seq;
        snprintf(w->prev_hash, sizeof(w->prev_hash), "%s", PQgetvalue(r, 0, SG_AUDIT_COL_HASH));
        return true;
    }
    uint64_t expected = w->prev_seq + 1, last_missing = seq - 1;
    if (w->have_prev && seq != expected) {
        if (seq == w->prev_seq) {
            snprintf(msg, sizeof(msg), "duplicate seq (two rows claim seq %llu)",
                     (unsigned long long)seq);
        } else {
            snprintf(msg, sizeof(msg), "gap in seq: %llu..%llu missing",
                     (unsigned long long)expected, (unsigned long long)last_missing);
        }
        report_break(w, r, msg);
        return false;
    }
    if (!content_hash(w, r, hash) || strcmp(hash, PQgetvalue(r, 0, SG_AUDIT_COL_HASH)) != 0) {
        report_break(w, r, "content hash mismatch (the row was changed after it was written)");
        return false;
    }
    if (w->have_prev && strcmp(prev_hash, w->prev_hash) != 0) {
        snprintf(msg, sizeof(msg),
                 "prev_hash mismatch (does not link to seq %llu: that row was changed, or this "
                 "one replaced)",
                 (unsigned long long)w->prev_seq);
        report_break(w, r, msg);
        return false;
    }
    if (!w->have_prev && seq == 1 && strcmp(prev_hash, SG_AUDIT_GENESIS) != 0) {
        report_break(w, r, "prev_hash mismatch (seq 1 does not start from genesis)");
        return false;
    }
    if (w->first_seq == 0) {
        w->first_seq = seq;
    }
    w->have_prev = true;
    w->prev_seq = seq;
    snprintf(w->prev_hash, sizeof(w->prev_hash), "%s", PQgetvalue(r, 0, SG_AUDIT_COL_HASH));
    w->checked++;
    return true;
}

static int walk_replica(PGconn *c, sg_audit_walk_t *w, sg_error_t *err)
{
    char from[24];
    snprintf(from, sizeof(from), "%llu",
             (unsigned long long)(w->start > 1 ? w->start - 1 : 0)); /* with the link before */
    const char *params[2] = { w->replica, from };
    if (PQsendQueryParams(c, walk_sql, 2, NULL, params, NULL, NULL, 0) != 1 ||
        PQsetSingleRowMode(c) != 1) {
        return backend_error(c, NULL, err, "query failed");
    }
    int rc = SG_OK;
    PGresult *r;
    while ((r = PQgetResult(c)) != NULL) {
        ExecStatusType st = PQresultStatus(r);
        if (st == PGRES_SINGLE_TUPLE && rc == SG_OK && !w->broken &&
            PQnfields(r) == SG_AUDIT_COL_COUNT) {
            check_row(w, r);
        } else if (st != PGRES_SINGLE_TUPLE && st != PGRES_TUPLES_OK && rc == SG_OK) {
            rc = backend_error(c, r, err, "reading audit_events failed");
        }
        PQclear(r); /* after a break, the rest of the stream is drained unread */
    }
    return rc;
}

/* since as a timestamp PostgreSQL understands: "24h" / "7d" durations, or any timestamptz. */
static int resolve_since(PGconn *c, const char *since, char *out, size_t cap, sg_error_t *err)
{
    size_t n = strlen(since);
    bool duration = n >= 2 && strchr("smhdw", since[n - 1]) != NULL;
    for (size_t i = 0; duration && i + 1 < n; i++) {
        duration = isdigit((unsigned char)since[i]) != 0;
    }
    char interval[64];
    const char *sql = "SELECT $1::timestamptz";
    const char *param = since;
    if (duration && n < 20) {
        static const char *const units[] = { "s",     "seconds", "m",    "minutes", "h",
                                             "hours", "d",       "days", "w",       "weeks" };
        const char *unit = "days";
        for (size_t i = 0; i < SG_ARRAY_LEN(units); i += 2) {
            if (since[n - 1] == units[i][0]) {
                unit = units[i + 1];
            }
        }
        snprintf(interval, sizeof(interval), "%.*s %s", (int)(n - 1), since, unit);
        sql = "SELECT now() - $1::interval";
        param = interval;
    }
    PGresult *r = PQexecParams(c, sql, 1, NULL, &param, NULL, NULL, 0);
    int rc = SG_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        rc = sg_error_set(
                err, SG_ESETTING,
                "audit verify: --since must be a timestamp (2025-01-31, 2025-01-31T12:00:00Z) "
                "or a duration (24h, 7d)");
    } else {
        snprintf(out, cap, "%s", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    return rc;
}

static int exec_ok(PGconn *c, const char *sql, sg_error_t *err)
{
    PGresult *r = PQexec(c, sql);
    int rc = PQresultStatus(r) == PGRES_COMMAND_OK ? SG_OK : backend_error(c, r, err, sql);
    PQclear(r);
    return rc;
}

/* The first seq of interest in this replica's chain (0: all of it), or false when none. */
static bool start_seq(PGconn *c, const char *replica, const char *tenant, const char *since,
                      uint64_t *start)
{
    if (tenant == NULL && since == NULL) {
        *start = 0;
        return true;
    }
    const char *params[3] = { replica, tenant, since };
    PGresult *r = PQexecParams(c, start_sql, 3, NULL, params, NULL, NULL, 0);
    bool found = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0);
    if (found) {
        *start = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    }
    PQclear(r);
    return found;
}

static int verify_all(PGconn *c, const char *tenant, const char *since, FILE *out, sg_error_t *err)
{
    PGresult *reps = tenant == NULL && since == NULL
                             ? PQexec(c, replicas_all_sql)
                             : PQexecParams(c, replicas_filtered_sql, 2, NULL,
                                            (const char *const[]){ tenant, since }, NULL, NULL, 0);
    if (PQresultStatus(reps) != PGRES_TUPLES_OK) {
        int rc = backend_error(c, reps, err, "listing replicas failed");
        PQclear(reps);
        return rc;
    }
    int nrep = PQntuples(reps), nbroken = 0, rc = SG_OK;
    uint64_t total = 0;
    sg_audit_walk_t w = { .out = out };
    for (int i = 0; i < nrep && rc == SG_OK; i++) {
        sg_buf_t head = w.head, args = w.args, findings = w.findings;
        w = (sg_audit_walk_t){ .out = out,
                               .replica = PQgetvalue(reps, i, 0),
                               .head = head,
                               .args = args,
                               .findings = findings };
        if (!start_seq(c, w.replica, tenant, since, &w.start)) {
            continue;
        }
        rc = walk_replica(c, &w, err);
        if (rc == SG_OK && !w.broken) {
            fprintf(out, "replica %s: ok, %llu events (seq %llu..%llu)%s\n", w.replica,
                    (unsigned long long)w.checked, (unsigned long long)w.first_seq,
                    (unsigned long long)w.prev_seq,
                    w.first_seq > 1 && w.start == 0 ? "; earlier rows absent (pruned?)" : "");
        }
        nbroken += w.broken;
        total += w.checked;
    }
    sg_buf_dispose(&w.head);
    sg_buf_dispose(&w.args);
    sg_buf_dispose(&w.findings);
    PQclear(reps);
    if (rc != SG_OK) {
        return rc;
    }
    fprintf(out, "audit verify: %d chain(s), %llu events checked, %d broken\n", nrep,
            (unsigned long long)total, nbroken);
    if (nbroken > 0) {
        return sg_error_set(err, SG_EINVAL, "%d of %d audit chains broken", nbroken, nrep);
    }
    return SG_OK;
}

int sg_audit_verify(const char *conninfo, const char *tenant, const char *since, FILE *out,
                    sg_error_t *err)
{
    PGconn *c = PQconnectdb(conninfo != NULL ? conninfo : "");
    if (PQstatus(c) != CONNECTION_OK) {
        int rc = backend_error(c, NULL, err, "cannot connect");
        PQfinish(c);
        return rc;
    }
    char since_ts[64];
    int rc = exec_ok(c, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err);
    if (rc == SG_OK && since != NULL) {
        rc = resolve_since(c, since, since_ts, sizeof(since_ts), err);
    }
    if (rc == SG_OK) {
        rc = verify_all(c, tenant, since != NULL ? since_ts : NULL, out, err);
    }
    PQclear(PQexec(c, "ROLLBACK"));
    PQfinish(c);
    return rc;
}
