/* SPDX-License-Identifier: Apache-2.0 */
/*
 * GET /admin/api/v1/audit?tenant=&identity=&tool=&decision=&since=&until=&limit=&cursor=&format=
 * Reads audit_events in (ts, id) order with keyset pagination: the answer
 * carries the cursor of the next page (JSON member next_cursor, and the
 * X-Next-Cursor header for the line formats). format: json (default), jsonl
 * (one event per line) or csv (cells that a spreadsheet would run as a formula
 * — starting with =, +, -, @ — are prefixed with a quote).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/json.h"
#include "base/mem.h"
#include "control/control_int.h"
#include "core/tenant.h"
#include "io/http_reply.h"
#include "store/audit_query.h"

#define DEFAULT_LIMIT 100
#define MAX_PARAM     256

typedef enum format { FMT_JSON = 0, FMT_JSONL, FMT_CSV } format_t;

typedef struct query_op {
    sg_http_guard_t guard; /* first */
    sg_pg_query_t q;
    format_t format;
    int limit;
    char params[9][MAX_PARAM]; /* tenant identity tool decision since until after_ts after_id */
} query_op_t;

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Percent- and plus-decodes src[0..len) into dst (cap bytes); false when it does not fit. */
static bool url_decode(const char *src, size_t len, char *dst, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '%' && i + 2 < len && hexval(src[i + 1]) >= 0 && hexval(src[i + 2]) >= 0) {
            c = (char)(hexval(src[i + 1]) * 16 + hexval(src[i + 2]));
            i += 2;
        } else if (c == '+') {
            c = ' ';
        }
        if (o + 1 >= cap || c == '\0') {
            return false;
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return true;
}

static bool is_time(const char *s)
{
    size_t n = strlen(s);
    return n >= 4 && n <= 40 && strspn(s, "0123456789-:T.Z+ ") == n;
}

/* The cursor is the hex of "<ts>|<id>" of the last row of the previous page. */
static bool decode_cursor(const char *hex, char *ts, char *id)
{
    char raw[2 * MAX_PARAM];
    size_t n = strlen(hex);
    if (n % 2 != 0 || n / 2 >= sizeof(raw)) {
        return false;
    }
    for (size_t i = 0; i < n / 2; i++) {
        int a = hexval(hex[2 * i]), b = hexval(hex[2 * i + 1]);
        if (a < 0 || b < 0) {
            return false;
        }
        raw[i] = (char)(a * 16 + b);
    }
    raw[n / 2] = '\0';
    char *bar = strchr(raw, '|');
    if (bar == NULL || (size_t)(bar - raw) >= MAX_PARAM || strlen(bar + 1) >= MAX_PARAM) {
        return false;
    }
    *bar = '\0';
    memcpy(ts, raw, (size_t)(bar - raw) + 1);
    memcpy(id, bar + 1, strlen(bar + 1) + 1);
    return is_time(ts) && id[0] != '\0';
}

/* Parses the query string; on a bad parameter answers 400 and returns false. */
static bool parse_query(query_op_t *op, h2o_req_t *req)
{
    static const char *const names[] = {
        "tenant", "identity", "tool", "decision", "since", "until"
    };
    op->limit = DEFAULT_LIMIT;
    if (req->query_at == SIZE_MAX) {
        return true;
    }
    const char *p = req->path.base + req->query_at + 1;
    const char *end = req->path.base + req->path.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        char key[32], val[MAX_PARAM];
        if (eq == NULL || !url_decode(p, (size_t)(eq - p), key, sizeof(key)) ||
            !url_decode(eq + 1, (size_t)(stop - eq - 1), val, sizeof(val))) {
            sg_api_error(req, 400, "malformed query string");
            return false;
        }
        bool known = false;
        for (size_t i = 0; i < SG_ARRAY_LEN(names); i++) {
            if (strcmp(key, names[i]) == 0) {
                snprintf(op->params[i], MAX_PARAM, "%s", val);
                known = true;
            }
        }
        if (strcmp(key, "limit") == 0) {
            char *e = NULL;
            long l = strtol(val, &e, 10);
            if (*e != '\0' || l < 1 || l > SG_AUDIT_QUERY_MAX_LIMIT) {
                sg_api_error(req, 400, "limit must be 1..10000");
                return false;
            }
            op->limit = (int)l;
        } else if (strcmp(key, "format") == 0) {
            op->format = strcmp(val, "jsonl") == 0 ? FMT_JSONL
                         : strcmp(val, "csv") == 0 ? FMT_CSV
                                                   : FMT_JSON;
            if (op->format == FMT_JSON && strcmp(val, "json") != 0) {
                sg_api_error(req, 400, "format must be json, jsonl or csv");
                return false;
            }
        } else if (strcmp(key, "cursor") == 0) {
            if (!decode_cursor(val, op->params[6], op->params[7])) {
                sg_api_error(req, 400, "invalid cursor");
                return false;
            }
        } else if (!known) {
            sg_api_error(req, 400, "unknown query parameter");
            return false;
        }
        p = stop + 1;
    }
    for (int i = 4; i <= 5; i++) {
        if (op->params[i][0] != '\0' && !is_time(op->params[i])) {
            sg_api_error(req, 400, "since and until are timestamps like 2026-12-03T10:00:00Z");
            return false;
        }
    }
    return true;
}

static bool is_numeric_column(int c)
{
    return c == SG_AQ_SEQ || c == SG_AQ_RESULT_SIZE || c == SG_AQ_GATE_US || c == SG_AQ_UPSTREAM_US;
}

static void write_json_row(sg_buf_t *b, const PGresult *res, int row)
{
    sg_buf_append_char(b, '{');
    for (int c = 0; c < SG_AQ_NCOLS; c++) {
        sg_buf_printf(b, "%s\"%s\":", c == 0 ? "" : ",", sg_audit_query_column(c));
        if (PQgetisnull(res, row, c)) {
            sg_buf_append_cstr(b, "null");
        } else if (is_numeric_column(c) || c == SG_AQ_ARGUMENTS || c == SG_AQ_FINDINGS) {
            sg_buf_append_cstr(b, PQgetvalue(res, row, c)); /* numbers and jsonb text */
        } else if (c == SG_AQ_RESULT_IS_ERROR) {
            sg_buf_append_cstr(b, PQgetvalue(res, row, c)[0] == 't' ? "true" : "false");
        } else {
            sg_json_write_cstr(b, PQgetvalue(res, row, c));
        }
    }
    sg_buf_append_char(b, '}');
}

static void write_csv_cell(sg_buf_t *b, const char *v)
{
    sg_buf_append_char(b, '"');
    if (v[0] == '=' || v[0] == '+' || v[0] == '-' || v[0] == '@' || v[0] == '\t' || v[0] == '\r') {
        sg_buf_append_char(b, '\''); /* never a formula in a spreadsheet */
    }
    for (const char *p = v; *p != '\0'; p++) {
        if (*p == '"') {
            sg_buf_append_char(b, '"');
        }
        sg_buf_append_char(b, *p);
    }
    sg_buf_append_char(b, '"');
}

static void write_page(query_op_t *op, const PGresult *res, sg_buf_t *b, sg_buf_t *cursor)
{
    int n = PQntuples(res);
    if (n == op->limit) {
        char raw[2 * MAX_PARAM + 2];
        int len = snprintf(raw, sizeof(raw), "%s|%s", PQgetvalue(res, n - 1, SG_AQ_TS),
                           PQgetvalue(res, n - 1, SG_AQ_ID));
        for (int i = 0; i < len && (size_t)i < sizeof(raw); i++) {
            sg_buf_printf(cursor, "%02x", (unsigned char)raw[i]);
        }
    }
    if (op->format == FMT_CSV) {
        for (int c = 0; c < SG_AQ_NCOLS; c++) {
            sg_buf_printf(b, "%s%s", c == 0 ? "" : ",", sg_audit_query_column(c));
        }
        sg_buf_append_cstr(b, "\r\n");
    } else if (op->format == FMT_JSON) {
        sg_buf_append_cstr(b, "{\"events\":[");
    }
    for (int r = 0; r < n; r++) {
        if (op->format == FMT_CSV) {
            for (int c = 0; c < SG_AQ_NCOLS; c++) {
                if (c != 0) {
                    sg_buf_append_char(b, ',');
                }
                write_csv_cell(b, PQgetisnull(res, r, c) ? "" : PQgetvalue(res, r, c));
            }
            sg_buf_append_cstr(b, "\r\n");
            continue;
        }
        if (op->format == FMT_JSON && r != 0) {
            sg_buf_append_char(b, ',');
        }
        write_json_row(b, res, r);
        if (op->format == FMT_JSONL) {
            sg_buf_append_char(b, '\n');
        }
    }
    if (op->format == FMT_JSON) {
        sg_buf_append_cstr(b, "],\"next_cursor\":");
        if (cursor->len != 0) {
            sg_json_write_string(b, cursor->data, cursor->len);
        } else {
            sg_buf_append_cstr(b, "null");
        }
        sg_buf_append_char(b, '}');
    }
}

static void on_rows(sg_pg_query_t *q, int status, const PGresult *res)
{
    query_op_t *op = SG_CONTAINER_OF(q, query_op_t, q);
    if (op->guard.req == NULL) {
        /* the caller is gone */
    } else if (status != SG_OK) {
        sg_api_error(op->guard.req, status == SG_EBACKEND ? 400 : 503,
                     status == SG_EBACKEND ? "the query was refused (check since/until)"
                                           : "PostgreSQL unavailable");
    } else {
        sg_buf_t b = SG_BUF_INIT, cursor = SG_BUF_INIT;
        write_page(op, res, &b, &cursor);
        if (cursor.len != 0) {
            sg_http_add_header(op->guard.req, "x-next-cursor", sg_buf_str(&cursor));
        }
        sg_http_reply(op->guard.req, 200,
                      op->format == FMT_CSV     ? "text/csv; charset=utf-8"
                      : op->format == FMT_JSONL ? "application/jsonl"
                                                : "application/json",
                      sg_buf_str(&b));
        sg_buf_dispose(&b);
        sg_buf_dispose(&cursor);
    }
    sg_http_guard_unref(&op->guard);
}

void sg_api_audit_query(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    (void)p;
    query_op_t *op = sg_http_guard_new(req, sizeof(*op), NULL);
    if (!parse_query(op, req)) {
        sg_http_guard_unref(&op->guard); /* the request keeps its own until h2o releases it */
        return;
    }
    sg_audit_filter_t f = { .limit = op->limit };
    const char **slots[] = { &f.tenant, &f.identity, &f.tool,     &f.decision,
                             &f.since,  &f.until,    &f.after_ts, &f.after_id };
    for (size_t i = 0; i < SG_ARRAY_LEN(slots); i++) {
        *slots[i] = op->params[i][0] != '\0' ? op->params[i] : NULL;
    }
    sg_audit_query_start(c->pg, &op->q, &f, on_rows);
}
