/* SPDX-License-Identifier: Apache-2.0 */
/*
 * POST /admin/api/v1/tenants/{t}/policy/evaluate
 *   {"identity": "agent-1", "tool": "fs__read_file", "arguments": {...},
 *    "method": "tools/call"?, "upstream": "fs"?, "class": "read"?}
 * answers the decision the gate would make for that call, the deciding rule
 * and a trace of every rule tried and why it did or did not match — against
 * the tenant's current stored configuration, without touching an upstream.
 * The control plane does not see upstream tool definitions, so the class
 * comes from the request, else the tenant's `classes`, else the tool's name.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/json.h"
#include "base/mem.h"
#include "control/control_int.h"
#include "core/policy.h"
#include "core/tenant.h"
#include "io/http_reply.h"
#include "store/tenant_store.h"

typedef struct eval_op {
    sg_http_guard_t guard; /* first */
    sg_pg_query_t q;
    char tenant[SG_NAME_MAX + 1];
    char *body; /* owned copy of the request */
    size_t body_len;
} eval_op_t;

static void eval_free(sg_http_guard_t *g)
{
    free(((eval_op_t *)g)->body);
}

static sg_str_t member_string(sg_str_t body, const char *key, sg_buf_t *scratch)
{
    sg_str_t v;
    sg_buf_reset(scratch);
    if (sg_json_object_get(body, key, &v) != SG_OK || sg_json_string_decode(v, scratch) != SG_OK) {
        return SG_STR_NULL;
    }
    return sg_buf_str(scratch);
}

static void write_result(sg_buf_t *b, const sg_policy_result_t *r, sg_tool_class_t cls)
{
    sg_buf_printf(b, "{\"decision\":\"%s\",\"rule\":", sg_policy_decision_name(r->decision));
    sg_json_write_cstr(b, r->rule);
    sg_buf_append_cstr(b, ",\"reason\":");
    sg_json_write_cstr(b, r->reason);
    sg_buf_printf(b, ",\"class\":\"%s\",\"escalated\":%s", sg_policy_class_name(cls),
                  r->escalated ? "true" : "false");
    if (r->has_shadow) {
        sg_buf_printf(b, ",\"shadow\":{\"decision\":\"%s\",\"rule\":",
                      sg_policy_decision_name(r->shadow_decision));
        sg_json_write_cstr(b, r->shadow_rule);
        sg_buf_printf(b, ",\"would_decide\":%s}", r->shadow_decisive ? "true" : "false");
    }
    sg_buf_append_cstr(b, ",\"trace\":[");
    for (size_t i = 0; i < r->ntrace; i++) {
        sg_buf_append_cstr(b, i == 0 ? "{\"rule\":" : ",{\"rule\":");
        sg_json_write_cstr(b, r->trace[i].rule);
        sg_buf_printf(
                b, ",\"matched\":%s,\"shadow\":%s,\"why\":", r->trace[i].matched ? "true" : "false",
                r->trace[i].shadow ? "true" : "false");
        sg_json_write_cstr(b, r->trace[i].why != NULL ? r->trace[i].why : "");
        sg_buf_append_char(b, '}');
    }
    sg_buf_append_cstr(b, "]}");
}

static void evaluate(eval_op_t *op, const sg_tenant_t *t)
{
    sg_str_t body = { op->body, op->body_len };
    sg_buf_t s_id = SG_BUF_INIT, s_tool = SG_BUF_INIT, s_method = SG_BUF_INIT, s_up = SG_BUF_INIT,
             s_class = SG_BUF_INIT;
    sg_str_t identity = member_string(body, "identity", &s_id);
    sg_str_t tool = member_string(body, "tool", &s_tool);
    sg_str_t method = member_string(body, "method", &s_method);
    sg_str_t upstream = member_string(body, "upstream", &s_up);
    sg_str_t cls_name = member_string(body, "class", &s_class);
    const sg_identity_t *id = NULL;
    for (size_t i = 0; i < t->nidentities; i++) {
        if (sg_str_eq_cstr(identity, t->identities[i].name)) {
            id = &t->identities[i];
        }
    }
    sg_str_t args = SG_STR_NULL;
    if (sg_json_object_get(body, "arguments", &args) != SG_OK ||
        sg_json_type(args) != SG_JSON_OBJECT) {
        args = SG_STR_NULL;
    }
    sg_tool_class_t cls;
    if (id == NULL || tool.len == 0) {
        sg_api_problems(op->guard.req, SG_STR_LIT("[{\"pointer\":\"/identity\",\"error\":\"an "
                                                  "identity of the tenant and a tool are "
                                                  "required\"}]"));
    } else if (cls_name.len != 0 && !sg_policy_class_parse(cls_name, &cls)) {
        sg_api_problems(op->guard.req, SG_STR_LIT("[{\"pointer\":\"/class\",\"error\":\"read, "
                                                  "write or destructive\"}]"));
    } else {
        if (cls_name.len == 0) {
            cls = sg_policy_classify(t->policy, tool, SG_STR_NULL);
        }
        sg_policy_input_t in = { .identity = identity,
                                 .roles = id->roles,
                                 .nroles = id->nroles,
                                 .tool = tool,
                                 .upstream = upstream,
                                 .method = method.len != 0 ? method : SG_STR_LIT("tools/call"),
                                 .tool_class = cls,
                                 .arguments = args,
                                 .want_trace = true };
        sg_policy_result_t r;
        sg_policy_eval(t->policy, &in, &r);
        sg_buf_t out = SG_BUF_INIT;
        write_result(&out, &r, cls);
        sg_http_reply_json(op->guard.req, 200, sg_buf_str(&out));
        sg_buf_dispose(&out);
        sg_policy_result_dispose(&r);
    }
    sg_buf_dispose(&s_id);
    sg_buf_dispose(&s_tool);
    sg_buf_dispose(&s_method);
    sg_buf_dispose(&s_up);
    sg_buf_dispose(&s_class);
}

static void on_current(sg_pg_query_t *q, int status, const PGresult *res)
{
    eval_op_t *op = SG_CONTAINER_OF(q, eval_op_t, q);
    sg_tenant_t *t = NULL;
    if (op->guard.req == NULL) {
        /* the caller is gone */
    } else if (status != SG_OK) {
        sg_api_error(op->guard.req, 503, "PostgreSQL unavailable");
    } else if (PQntuples(res) != 1 || strcmp(PQgetvalue(res, 0, 2), "f") != 0) {
        sg_api_error(op->guard.req, 404, "no such tenant");
    } else if (sg_tenant_parse(PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1), &t, NULL) !=
               SG_OK) {
        sg_api_error(op->guard.req, 500, "the stored configuration does not compile");
    } else {
        evaluate(op, t);
    }
    sg_tenant_unref(t);
    sg_http_guard_unref(&op->guard);
}

void sg_api_policy_evaluate(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    sg_str_t body;
    if (!sg_name_is_valid(sg_str(p->v[0]))) {
        sg_api_error(req, 404, "no such tenant");
        return;
    }
    if (!sg_api_body_object(req, &body)) {
        return;
    }
    eval_op_t *op = sg_http_guard_new(req, sizeof(*op), eval_free);
    snprintf(op->tenant, sizeof(op->tenant), "%s", p->v[0]);
    op->body = sg_xmemdup(body.ptr, body.len);
    op->body_len = body.len;
    sg_tenant_store_current(c->pg, &op->q, op->tenant, on_current);
}
