/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The control plane: admin authentication and the admin API routes. The
 * bootstrap and tenant endpoints arrive with the control-plane issue (4);
 * until then every authenticated admin path answers 404 with a JSON error.
 */
#include "control/control.h"

#include <stdlib.h>

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "core/session_token.h"
#include "io/http_reply.h"

struct sg_control {
    sg_runtime_t *rt;
    sg_log_ctx_t log;
};

static void reply_error(h2o_req_t *req, int status, const char *message)
{
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "{\"error\":");
    sg_json_write_cstr(&b, message);
    sg_buf_append_char(&b, '}');
    sg_http_reply_json(req, status, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

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

static int on_admin_api(void *data, h2o_req_t *req)
{
    sg_control_t *c = data;
    int status = check_admin(c, req);
    if (status == 401) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                H2O_STRLIT("Bearer realm=\"sentinel-gate-admin\""));
        reply_error(req, 401, "admin token required");
        return 0;
    }
    if (status == 403) {
        SG_LOG_WARN(&c->log, "admin request with a wrong token refused");
        reply_error(req, 403, "wrong admin token");
        return 0;
    }
    reply_error(req, 404, "no such admin endpoint");
    return 0;
}

sg_control_t *sg_control_new(sg_runtime_t *rt, sg_error_t *err)
{
    (void)err;
    sg_control_t *c = sg_xcalloc(1, sizeof(*c));
    c->rt = rt;
    c->log = (sg_log_ctx_t){ .component = "control" };
    sg_http_server_route(sg_runtime_http(rt), "/admin/api/v1", on_admin_api, c);
    return c;
}

void sg_control_free(sg_control_t *c)
{
    free(c);
}
