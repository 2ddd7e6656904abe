/* SPDX-License-Identifier: Apache-2.0 */
/* Internals shared by the control plane's files. */
#ifndef SG_CONTROL_CONTROL_INT_H
#define SG_CONTROL_CONTROL_INT_H

#include "base/buf.h"
#include "base/log.h"
#include "control/control.h"
#include "io/http_guard.h"
#include "io/pg.h"
#include "io/redis.h"

#define SG_API_MAX_PARAMS 4

struct sg_control {
    sg_runtime_t *rt;
    sg_redis_t *redis;
    sg_pg_t *pg;
    sg_log_ctx_t log;
    struct sg_recovery *recovery;
};

/* Path parameters of a matched route ({t}, {name}, ...), NUL-terminated copies. */
typedef struct sg_api_params {
    char v[SG_API_MAX_PARAMS][65]; /* names are at most 64 characters */
    size_t n;
} sg_api_params_t;

typedef void (*sg_api_handler)(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);

/* ---- helpers (control.c) ---- */

/* {"error": message} with status. */
void sg_api_error(h2o_req_t *req, int status, const char *message);
/* 400 with {"error": "invalid request", "problems": [{pointer, error}, ...]} (problems_json is the
 * array text). */
void sg_api_problems(h2o_req_t *req, sg_str_t problems_json);
/* Appends one {pointer, error} object to a problems array under construction. */
void sg_api_problem(sg_buf_t *problems, const char *pointer, const char *error);
/* "admin-token@<peer address>" for admin_actions. */
void sg_api_actor(h2o_req_t *req, char *out, size_t cap);
/* The request body as a validated JSON object, or an error reply (then returns false). */
bool sg_api_body_object(h2o_req_t *req, sg_str_t *body);

/* ---- endpoints ---- */
void sg_api_killswitch_get(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_killswitch_post(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_bootstrap(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_tenants_list(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_tenant_get(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_tenant_delete(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_key_rotate(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_key_delete(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_policy_evaluate(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);
void sg_api_audit_query(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p);

#endif
