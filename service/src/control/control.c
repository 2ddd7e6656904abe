/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control plane: admin authentication (Bearer SG_ADMIN_TOKEN, compared in
 * constant time: 401 without a token, 403 with a wrong one), the route table
 * of /admin/api/v1, and the helpers every endpoint uses.
 */
#include "control/control.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>

#include "base/json.h"
#include "base/mem.h"
#include "control/control_int.h"
#include "control/recovery.h"
#include "core/session_token.h"
#include "io/http_reply.h"
#include "store/admin_store.h"
#include "store/audit_query.h"
#include "store/tenant_store.h"

#define API_PREFIX "/admin/api/v1"
#define MAX_BODY   (1u << 20)

typedef struct route {
    const char *method;
    const char *pattern; /* segments; "{x}" captures one */
    sg_api_handler handler;
} route_t;

static const route_t routes[] = {
    { "GET", "/killswitch", sg_api_killswitch_get },
    { "POST", "/killswitch", sg_api_killswitch_post },
    { "POST", "/bootstrap", sg_api_bootstrap },
    { "GET", "/tenants", sg_api_tenants_list },
    { "GET", "/tenants/{t}", sg_api_tenant_get },
    { "DELETE", "/tenants/{t}", sg_api_tenant_delete },
    { "POST", "/tenants/{t}/identities/{name}/keys", sg_api_key_rotate },
    { "DELETE", "/tenants/{t}/identities/{name}/keys/{id}", sg_api_key_delete },
    { "POST", "/tenants/{t}/policy/evaluate", sg_api_policy_evaluate },
    { "GET", "/audit", sg_api_audit_query },
};

/* ---- helpers ---- */

void sg_api_error(h2o_req_t *req, int status, const char *message)
{
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "{\"error\":");
    sg_json_write_cstr(&b, message);
    sg_buf_append_char(&b, '}');
    sg_http_reply_json(req, status, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

void sg_api_problems(h2o_req_t *req, sg_str_t problems_json)
{
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "{\"error\":\"invalid request\",\"problems\":");
    sg_buf_append_str(&b, problems_json);
    sg_buf_append_char(&b, '}');
    sg_http_reply_json(req, 400, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

void sg_api_problem(sg_buf_t *problems, const char *pointer, const char *error)
{
    sg_buf_append_cstr(problems, problems->len > 1 ? ",{\"pointer\":" : "{\"pointer\":");
    sg_json_write_cstr(problems, pointer);
    sg_buf_append_cstr(problems, ",\"error\":");
    sg_json_write_cstr(problems, error);
    sg_buf_append_char(problems, '}');
}

void sg_api_actor(h2o_req_t *req, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    char addr[INET6_ADDRSTRLEN] = "unknown";
    socklen_t len = req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss);
    if (len > 0 && ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, addr, sizeof(addr));
    } else if (len > 0 && ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, addr, sizeof(addr));
    }
    snprintf(out, cap, "admin-token@%s", addr);
}

bool sg_api_body_object(h2o_req_t *req, sg_str_t *body)
{
    sg_str_t ctype = sg_http_header(req, "content-type");
    if (ctype.len < 16 || strncasecmp(ctype.ptr, "application/json", 16) != 0) {
        sg_api_error(req, 415, "Content-Type must be application/json");
        return false;
    }
    if (req->entity.base == NULL || req->entity.len == 0) {
        sg_api_error(req, 400, "empty body");
        return false;
    }
    if (req->entity.len > MAX_BODY) {
        sg_api_error(req, 413, "body larger than 1 MiB");
        return false;
    }
    sg_error_t err = { 0 };
    const char *problem = NULL;
    if (sg_json_validate(req->entity.base, req->entity.len, SG_JSON_MAX_DEPTH, &err) != SG_OK) {
        problem = err.msg;
    } else if (sg_json_type(sg_str_n(req->entity.base, req->entity.len)) != SG_JSON_OBJECT) {
        problem = "body must be a JSON object";
    }
    if (problem != NULL) {
        sg_buf_t list = SG_BUF_INIT;
        sg_buf_append_char(&list, '[');
        sg_api_problem(&list, "", problem);
        sg_buf_append_char(&list, ']');
        sg_api_problems(req, sg_buf_str(&list));
        sg_buf_dispose(&list);
        return false;
    }
    *body = (sg_str_t){ req->entity.base, req->entity.len };
    return true;
}

/* ---- authentication and routing ---- */

/* 0 when the request carries the admin token; otherwise the HTTP status to answer. */
static int check_admin(const sg_control_t *c, h2o_req_t *req)
{
    sg_str_t auth = sg_http_header(req, "authorization");
    if (auth.len < 8 || strncasecmp(auth.ptr, "Bearer ", 7) != 0) {
        return 401;
    }
    const char *want = sg_runtime_settings(c->rt)->admin_token;
    uint8_t a[32], b[32];
    /* hash both sides so the comparison is constant-time whatever the lengths */
    sg_sha256(auth.ptr + 7, auth.len - 7, a);
    sg_sha256(want, strlen(want), b);
    return sg_ct_equal(a, 32, b, 32) ? 0 : 403;
}

/* Matches path (after the API prefix) against pattern, capturing {x} segments. */
static bool match_route(const char *pattern, sg_str_t path, sg_api_params_t *p)
{
    p->n = 0;
    const char *pp = pattern;
    size_t i = 0;
    while (*pp != '\0') {
        if (*pp == '{') {
            const char *close = strchr(pp, '}');
            size_t start = i;
            while (i < path.len && path.ptr[i] != '/') {
                i++;
            }
            size_t n = i - start;
            if (close == NULL || n == 0 || n >= sizeof(p->v[0]) || p->n == SG_API_MAX_PARAMS) {
                return false;
            }
            memcpy(p->v[p->n], path.ptr + start, n);
            p->v[p->n++][n] = '\0';
            pp = close + 1;
        } else if (i < path.len && path.ptr[i] == *pp) {
            i++;
            pp++;
        } else {
            return false;
        }
    }
    return i == path.len || (i + 1 == path.len && path.ptr[i] == '/');
}

static int on_admin_api(void *data, h2o_req_t *req)
{
    sg_control_t *c = data;
    int status = check_admin(c, req);
    if (status != 0) {
        if (status == 401) {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                           H2O_STRLIT("Bearer realm=\"sentinel-gate-admin\""));
        } else {
            SG_LOG_WARN(&c->log, "admin request with a wrong token refused");
        }
        sg_api_error(req, status, status == 401 ? "admin token required" : "wrong admin token");
        return 0;
    }
    h2o_iovec_t full = req->path_normalized;
    sg_str_t path = { full.base + strlen(API_PREFIX), full.len - strlen(API_PREFIX) };
    bool path_known = false;
    for (size_t i = 0; i < SG_ARRAY_LEN(routes); i++) {
        sg_api_params_t p;
        if (!match_route(routes[i].pattern, path, &p)) {
            continue;
        }
        path_known = true;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method,
                      strlen(routes[i].method))) {
            routes[i].handler(c, req, &p);
            return 0;
        }
    }
    sg_api_error(req, path_known ? 405 : 404,
                 path_known ? "method not allowed" : "no such admin endpoint");
    return 0;
}

sg_control_t *sg_control_new(sg_runtime_t *rt, sg_error_t *err)
{
    (void)err;
    sg_control_t *c = sg_xcalloc(1, sizeof(*c));
    c->rt = rt;
    c->redis = sg_runtime_redis(rt);
    c->pg = sg_runtime_pg(rt);
    c->log = (sg_log_ctx_t){ .component = "control" };
    sg_admin_store_prepare(c->pg);
    sg_tenant_store_prepare(c->pg);
    sg_audit_query_prepare(c->pg);
    sg_http_server_route(sg_runtime_http(rt), API_PREFIX, on_admin_api, c);
    c->recovery = sg_recovery_new(sg_runtime_loop(rt), c->redis, c->pg,
                                  (uint64_t)sg_runtime_settings(rt)->recovery_interval_ms);
    return c;
}

void sg_control_free(sg_control_t *c)
{
    if (c == NULL) {
        return;
    }
    sg_recovery_free(c->recovery);
    free(c);
}
