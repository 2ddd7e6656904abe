/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Methods that reach upstreams. tools/list is answered from the upstreams'
 * cached lists; tools/call runs the stage table of the call pipeline;
 * list methods of resources and prompts fan out and merge; reads, gets and
 * completions are routed by namespaced name, or tried upstream by upstream
 * in configuration order when a URI does not name its upstream.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "core/policy.h"
#include "core/redact.h"
#include "gateway/mcp_int.h"
#include "store/audit.h"

static SG_METRIC_DEFINE(m_calls, SG_METRIC_HISTOGRAM, "sg_tool_call_seconds", NULL,
                        "tools/call latency through the gate, from request to response");

/* ---- exchanges in flight (for notifications/cancelled) ---- */

static void track(sg_gate_t *gate, sg_exchange_t *ex)
{
    ex->prev = NULL;
    ex->next = gate->exchanges;
    if (gate->exchanges != NULL) {
        gate->exchanges->prev = ex;
    }
    gate->exchanges = ex;
    sg_exchange_ref(ex);
}

static void untrack(sg_gate_t *gate, sg_exchange_t *ex)
{
    if (ex->prev == NULL && gate->exchanges != ex) {
        return; /* not tracked */
    }
    if (ex->prev != NULL) {
        ex->prev->next = ex->next;
    } else {
        gate->exchanges = ex->next;
    }
    if (ex->next != NULL) {
        ex->next->prev = ex->prev;
    }
    ex->next = ex->prev = NULL;
    sg_exchange_unref(ex);
}

/* ---- the audit row of a call ---- */

static const char *decision_of(int err)
{
    switch (err) {
    case SG_EDENIED:
        return "deny";
    case SG_EAPPROVAL:
        return "approval_required";
    case SG_EKILLED:
        return "killed";
    case SG_ECONFIG:
        return "config_unavailable";
    case SG_EUPSTREAM:
        return "upstream_error";
    case SG_ETIMEDOUT:
        return "timeout";
    case SG_ECANCELED:
        return "cancelled";
    default:
        return "error";
    }
}

static void audit_call(sg_exchange_t *ex)
{
    sg_gate_t *gate = ex->owner;
    sg_call_record_t *r = &ex->record;
    if (!r->wanted || r->written || gate->audit == NULL) {
        return;
    }
    r->written = true;
    sg_buf_t args = SG_BUF_INIT;
    if (r->arguments.len != 0) {
        sg_redact_json(r->arguments, &args);
    }
    uint64_t total = sg_clock_now_us() - ex->started_us;
    sg_audit_event_t ev = { .id = sg_str(r->audit_id),
                            .tenant = sg_str(ex->tenant),
                            .identity = sg_str(ex->identity),
                            .session = sg_str(ex->session_nonce),
                            .request_id = ex->client_id,
                            .method = sg_str(r->method),
                            .tool = sg_str(r->tool),
                            .upstream = sg_str(r->upstream),
                            .risk_class = sg_str(r->cls),
                            .decision = sg_str(r->decision != NULL ? r->decision : "error"),
                            .rule = sg_str(r->rule),
                            .reason = sg_str(r->reason),
                            .arguments = args.len != 0 ? sg_buf_str(&args) : SG_STR_NULL,
                            .findings = sg_str(r->findings),
                            .has_result = r->has_result,
                            .result_size = (int64_t)r->result_size,
                            .result_is_error = r->result_is_error,
                            .gate_latency_us = (int64_t)(total - SG_MIN(total, r->upstream_us)),
                            .upstream_latency_us =
                                    r->upstream_started_us != 0 ? (int64_t)r->upstream_us : -1 };
    if (sg_audit_submit(gate->audit, &ev, NULL, NULL) != SG_OK) {
        SG_LOG_ERROR(&gate->log, "tenant %s: audit event refused (queue full or writer stopped)",
                     ex->tenant);
    }
    sg_buf_dispose(&args);
}

static void finish(sg_exchange_t *ex, sg_str_t json)
{
    sg_exchange_finish(ex, json);
    audit_call(ex);
    untrack(ex->owner, ex);
}

void sg_relay_fail(sg_exchange_t *ex, int err, const char *message, sg_str_t data_raw)
{
    if (ex->record.decision == NULL || strcmp(ex->record.decision, "allow") == 0) {
        ex->record.decision = decision_of(err);
    }
    if (ex->record.reason == NULL || err != SG_EDENIED) {
        ex->record.reason = message != NULL ? message : sg_err_message(err);
    }
    sg_buf_t with_id = SG_BUF_INIT;
    if (ex->record.wanted && ex->record.sync_row) {
        /* sync mode wrote the decision before forwarding: the failure gets a row of its own */
        ex->record.written = false;
        ex->record.sync_row = false;
    }
    if (ex->record.wanted && !ex->record.written) {
        /* DESIGN §3: a gateway refusal names its audit row */
        sg_audit_new_id(ex->record.audit_id);
        sg_str_t d = sg_json_trim(data_raw);
        if (d.len >= 2 && d.ptr[0] == '{') {
            sg_buf_append(&with_id, d.ptr, d.len - 1);
            sg_buf_append_cstr(&with_id, d.len > 2 ? "," : "");
        } else {
            sg_buf_append_char(&with_id, '{');
        }
        sg_buf_printf(&with_id, "\"audit_id\":\"%s\"}", ex->record.audit_id);
        data_raw = sg_buf_str(&with_id);
    }
    sg_buf_t b = SG_BUF_INIT;
    sg_jsonrpc_write_error(&b, ex->client_id, sg_err_jsonrpc_code(err),
                           message != NULL ? message : sg_err_message(err), data_raw);
    finish(ex, sg_buf_str(&b));
    sg_buf_dispose(&b);
    sg_buf_dispose(&with_id);
}

static void reply_result(sg_exchange_t *ex, sg_str_t result)
{
    sg_buf_t b = SG_BUF_INIT;
    sg_jsonrpc_write_result(&b, ex->client_id, result);
    finish(ex, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

/* Relays an upstream response message under the agent's id (result or error untouched). */
static void relay_response(sg_exchange_t *ex, sg_str_t response)
{
    sg_jsonrpc_msg_t m;
    sg_buf_t scratch = SG_BUF_INIT;
    if (sg_jsonrpc_parse_one(response, &m, &scratch, NULL) != SG_OK) {
        sg_buf_dispose(&scratch);
        sg_relay_fail(ex, SG_EUPSTREAM, "upstream sent a malformed response", SG_STR_NULL);
        return;
    }
    sg_buf_t b = SG_BUF_INIT;
    sg_str_t is_error;
    ex->record.has_result = true;
    ex->record.result_size = m.kind == SG_JSONRPC_RESPONSE ? m.result.len : m.error.len;
    ex->record.result_is_error = m.kind != SG_JSONRPC_RESPONSE ||
                                 (sg_json_object_get(m.result, "isError", &is_error) == SG_OK &&
                                  sg_json_type(is_error) == SG_JSON_TRUE);
    if (m.kind == SG_JSONRPC_RESPONSE) {
        sg_jsonrpc_write_result(&b, ex->client_id, m.result);
    } else {
        sg_buf_append_cstr(&b, "{\"jsonrpc\":\"2.0\",\"id\":");
        sg_buf_append_str(&b, ex->client_id);
        sg_buf_append_cstr(&b, ",\"error\":");
        sg_buf_append_str(&b, m.error);
        sg_buf_append_char(&b, '}');
    }
    finish(ex, sg_buf_str(&b));
    sg_buf_dispose(&b);
    sg_buf_dispose(&scratch);
}

static void upstream_failed(sg_exchange_t *ex, int status, const char *upstream)
{
    sg_buf_t data = SG_BUF_INIT;
    sg_buf_append_cstr(&data, "{\"upstream\":");
    sg_json_write_cstr(&data, upstream);
    sg_buf_append_cstr(&data, ",\"reason\":");
    sg_json_write_cstr(&data, sg_err_name(status));
    sg_buf_append_char(&data, '}');
    sg_relay_fail(ex, status == SG_ETIMEDOUT ? SG_ETIMEDOUT : SG_EUPSTREAM,
                  status == SG_ETIMEDOUT ? "upstream timed out" : "upstream unavailable or failed",
                  sg_buf_str(&data));
    sg_buf_dispose(&data);
}

/* ---- subcalls ---- */

typedef void (*subcalls_done_cb)(sg_exchange_t *ex);

typedef struct relay_ctx {
    subcalls_done_cb done;
    const char *list_key; /* fan-out: array member to merge */
    bool rename;          /* fan-out: prefix names (prompts) */
    size_t try_next;      /* route-first: next upstream index to try */
    char *method;
    sg_str_t params; /* borrows ex->body */
    char *params_owned;
} relay_ctx_t;

static void on_sub_interim(sg_upcall_t *c, sg_str_t json, bool is_request)
{
    (void)is_request;
    sg_subcall_t *s = SG_CONTAINER_OF(c, sg_subcall_t, call);
    sg_exchange_send_interim(s->ex, json);
}

static void on_sub_done(sg_upcall_t *c, int status, sg_str_t response)
{
    sg_subcall_t *s = SG_CONTAINER_OF(c, sg_subcall_t, call);
    sg_exchange_t *ex = s->ex;
    s->done = true;
    s->status = status;
    if (status == SG_OK) {
        s->response = sg_xmemdup(response.ptr, response.len);
        s->response_len = response.len;
    }
    if (--ex->pending == 0 && !ex->finished) {
        relay_ctx_t *ctx = ex->ctx;
        ctx->done(ex);
    }
    sg_exchange_unref(ex);
}

static const sg_upcall_ops_t sub_ops = { .on_interim = on_sub_interim, .on_done = on_sub_done };

/* The subcall slots are allocated once: upstreams hold pointers into them. */
static void prepare_subs(sg_exchange_t *ex, size_t n)
{
    SG_BUG_ON(ex->subs != NULL);
    ex->subs = sg_xcalloc(n + 1, sizeof(*ex->subs));
    ex->ctx_cap = n + 1;
}

static sg_subcall_t *add_sub(sg_exchange_t *ex, size_t index)
{
    SG_BUG_ON(ex->nsubs >= ex->ctx_cap);
    sg_subcall_t *s = &ex->subs[ex->nsubs++];
    memset(s, 0, sizeof(*s));
    s->ex = ex;
    s->index = index;
    return s;
}

/* Starts one upstream request for ex; false when the upstream is not ready. */
static bool start_sub(sg_exchange_t *ex, sg_upstream_t *up, size_t index, const char *method,
                      sg_str_t params)
{
    size_t slot = ex->nsubs;
    (void)add_sub(ex, index);
    sg_subcall_t *s = &ex->subs[slot];
    ex->pending++;
    sg_exchange_ref(ex);
    if (sg_upstream_call(up, &s->call, method, params, sg_upstream_cfg(up)->timeout_ms, &sub_ops) !=
        SG_OK) {
        ex->pending--;
        ex->nsubs--;
        sg_exchange_unref(ex);
        return false;
    }
    return true;
}

/* ---- name resolution ---- */

/* Exposed name of an upstream item: "<prefix>__<name>", or the bare name with prefix "". */
static void exposed_name(sg_buf_t *out, const char *prefix, const char *name)
{
    if (prefix[0] != '\0') {
        sg_buf_printf(out, "%s__", prefix);
    }
    sg_buf_append_cstr(out, name);
}

static bool needs_tasks(const sg_uptool_t *tool);

/* Finds the upstream, original tool name and definition for an exposed name; index or -1. */
static long resolve_tool(const sg_gate_tenant_t *t, sg_str_t name, const char **orig,
                         sg_str_t *definition)
{
    size_t n = t->snap->nupstreams;
    for (size_t i = 0; i < n; i++) {
        const char *prefix = t->snap->upstreams[i].prefix;
        size_t plen = strlen(prefix);
        sg_str_t rest = name;
        if (plen != 0) {
            if (name.len <= plen + 2 || memcmp(name.ptr, prefix, plen) != 0 ||
                memcmp(name.ptr + plen, "__", 2) != 0) {
                continue;
            }
            rest = (sg_str_t){ name.ptr + plen + 2, name.len - plen - 2 };
        }
        size_t ntools;
        const sg_uptool_t *tools = sg_upstream_tools(sg_gate_upstream(t, i), &ntools);
        for (size_t k = 0; k < ntools; k++) {
            if (sg_str_eq_cstr(rest, tools[k].name) && !needs_tasks(&tools[k])) {
                *orig = tools[k].name;
                *definition = (sg_str_t){ tools[k].raw, tools[k].raw_len };
                return (long)i;
            }
        }
    }
    return -1;
}

/* Copies raw with the string value at span replaced by the JSON string of name. */
static void splice_string(sg_buf_t *out, sg_str_t raw, sg_str_t span, const char *name)
{
    sg_buf_append(out, raw.ptr, (size_t)(span.ptr - raw.ptr));
    sg_json_write_cstr(out, name);
    sg_buf_append(out, span.ptr + span.len, (size_t)(raw.ptr + raw.len - span.ptr - span.len));
}

/* ---- tools/list ---- */

#define TOOLS_PAGE 500

/* Tools that only run as tasks cannot be relayed (we declare no tasks capability). */
static bool needs_tasks(const sg_uptool_t *tool)
{
    sg_str_t exec, support;
    sg_str_t raw = { tool->raw, tool->raw_len };
    return sg_json_object_get(raw, "execution", &exec) == SG_OK &&
           sg_json_object_get(exec, "taskSupport", &support) == SG_OK &&
           sg_json_string_eq(support, "required");
}

/* Our cursor: "p<offset>" into the aggregated list. SG_OK with *offset, or SG_EPARAMS. */
static int parse_cursor(sg_str_t params, size_t *offset)
{
    sg_str_t cur, plain;
    *offset = 0;
    if (params.len == 0 || sg_json_object_get(params, "cursor", &cur) != SG_OK ||
        sg_json_type(cur) == SG_JSON_NULL) {
        return SG_OK;
    }
    if (!sg_json_string_plain(cur, &plain) || plain.len < 2 || plain.len > 12 ||
        plain.ptr[0] != 'p') {
        return SG_EPARAMS;
    }
    size_t n = 0;
    for (size_t i = 1; i < plain.len; i++) {
        if (plain.ptr[i] < '0' || plain.ptr[i] > '9') {
            return SG_EPARAMS;
        }
        n = n * 10 + (size_t)(plain.ptr[i] - '0');
    }
    *offset = n;
    return SG_OK;
}

/* False when no rule could ever let this identity call the tool: it is not listed. */
static bool tool_visible(const sg_tenant_t *snap, const sg_identity_t *id, const char *exposed,
                         const char *upstream, sg_str_t definition)
{
    sg_tool_class_t cls = sg_policy_classify(snap->policy, sg_str(exposed), definition);
    return sg_policy_tool_visible(snap->policy, sg_str(id->name), id->roles, id->nroles,
                                  sg_str(exposed), sg_str(upstream), cls);
}

static void tools_list(sg_exchange_t *ex, const sg_gate_tenant_t *t, const sg_identity_t *id,
                       sg_str_t params)
{
    size_t offset, index = 0;
    if (parse_cursor(params, &offset) != SG_OK) {
        sg_relay_fail(ex, SG_EPARAMS, "invalid cursor", SG_STR_NULL);
        return;
    }
    sg_buf_t result = SG_BUF_INIT;
    sg_buf_t seen = SG_BUF_INIT; /* "\n"-joined exposed names, to refuse collisions */
    sg_buf_append_cstr(&result, "{\"tools\":[");
    bool first = true, more = false;
    for (size_t i = 0; i < t->snap->nupstreams && !more; i++) {
        size_t ntools;
        const sg_uptool_t *tools = sg_upstream_tools(sg_gate_upstream(t, i), &ntools);
        for (size_t k = 0; k < ntools && !more; k++) {
            sg_buf_t name = SG_BUF_INIT;
            sg_str_t span;
            if (needs_tasks(&tools[k])) {
                continue;
            }
            exposed_name(&name, t->snap->upstreams[i].prefix, tools[k].name);
            sg_buf_append_char(&name, '\n');
            bool dup =
                    seen.data != NULL && memmem(seen.data, seen.len, name.data, name.len) != NULL;
            sg_str_t raw = { tools[k].raw, tools[k].raw_len };
            if (!dup && sg_json_object_get(raw, "name", &span) == SG_OK) {
                sg_buf_append_str(&seen, sg_buf_str(&name));
                name.data[--name.len] = '\0';
                if (!tool_visible(t->snap, id, name.data, t->snap->upstreams[i].name, raw)) {
                    sg_buf_dispose(&name);
                    continue;
                }
                if (index++ < offset) {
                    sg_buf_dispose(&name);
                    continue;
                }
                if (index > offset + TOOLS_PAGE) {
                    more = true;
                    sg_buf_dispose(&name);
                    continue;
                }
                if (!first) {
                    sg_buf_append_char(&result, ',');
                }
                first = false;
                splice_string(&result, raw, span, name.data);
            } else if (dup) {
                SG_LOG_ERROR(NULL, "tenant %s: tool name collision on %.*s; check prefixes",
                             t->name, (int)name.len - 1, name.data);
            }
            sg_buf_dispose(&name);
        }
    }
    sg_buf_append_char(&result, ']');
    if (more) {
        sg_buf_printf(&result, ",\"nextCursor\":\"p%zu\"", offset + TOOLS_PAGE);
    }
    sg_buf_append_char(&result, '}');
    reply_result(ex, sg_buf_str(&result));
    sg_buf_dispose(&result);
    sg_buf_dispose(&seen);
}

/* ---- tools/call: the stage table ---- */

typedef enum stage_rc {
    STAGE_NEXT = 0,
    STAGE_WAIT = 1,
    STAGE_DONE = 2,
} stage_rc_t;

typedef struct call_state {
    relay_ctx_t relay; /* first: the exchange's ctx is freed as a whole */
    sg_gate_tenant_t *t;
    const sg_identity_t *id; /* borrowed from ex->snap */
    long upstream;
    const char *orig_name;
    sg_str_t definition; /* the tool's raw definition: valid only until the forward stage */
    char exposed[SG_NAME_MAX * 2 + 3];
    sg_tool_class_t cls;
    size_t stage;
} call_state_t;

static stage_rc_t stage_resolve(sg_exchange_t *ex, call_state_t *cs)
{
    sg_str_t name;
    if (cs->relay.params.len == 0 || sg_json_object_get(cs->relay.params, "name", &name) != SG_OK ||
        sg_json_type(name) != SG_JSON_STRING) {
        sg_relay_fail(ex, SG_EPARAMS, "tools/call needs params.name", SG_STR_NULL);
        return STAGE_DONE;
    }
    sg_buf_t decoded = SG_BUF_INIT;
    cs->upstream = -1;
    if (sg_json_string_decode(name, &decoded) == SG_OK && decoded.len < sizeof(cs->exposed)) {
        cs->upstream = resolve_tool(cs->t, sg_buf_str(&decoded), &cs->orig_name, &cs->definition);
    }
    if (decoded.len > 0) {
        free((char *)ex->record.tool);
        ex->record.tool = sg_xmemdup(decoded.data, SG_MIN(decoded.len, 256));
    }
    if (cs->upstream >= 0) {
        memcpy(cs->exposed, decoded.data, decoded.len + 1);
        const char *up = ex->snap->upstreams[cs->upstream].name;
        cs->cls = sg_policy_classify(ex->snap->policy, sg_str(cs->exposed), cs->definition);
        ex->record.upstream = up;
        ex->record.cls = sg_policy_class_name(cs->cls);
        if (!sg_policy_tool_visible(ex->snap->policy, sg_str(cs->id->name), cs->id->roles,
                                    cs->id->nroles, sg_str(cs->exposed), sg_str(up), cs->cls)) {
            cs->upstream = -1; /* a hidden tool answers like an unknown one */
        }
    }
    if (cs->upstream < 0) {
        sg_buf_t msg = SG_BUF_INIT;
        sg_buf_printf(&msg, "Unknown tool: %.*s", (int)SG_MIN(decoded.len, 128), decoded.data);
        sg_relay_fail(ex, SG_EPARAMS, msg.data, SG_STR_NULL);
        sg_buf_dispose(&msg);
        sg_buf_dispose(&decoded);
        return STAGE_DONE;
    }
    sg_buf_t params = SG_BUF_INIT;
    splice_string(&params, cs->relay.params, name, cs->orig_name);
    cs->relay.params_owned = sg_buf_steal(&params, &cs->relay.params.len);
    cs->relay.params.ptr = cs->relay.params_owned;
    sg_buf_dispose(&decoded);
    return STAGE_NEXT;
}

/* Refuses the exchange when a kill switch covers it; true when refused. */
static bool refuse_if_killed(sg_gate_t *gate, sg_exchange_t *ex)
{
    sg_kill_scope_t scope;
    int rc = sg_gate_killswitch(gate, ex->snap, ex->identity, &scope);
    if (rc == SG_OK) {
        return false;
    }
    sg_buf_t data = SG_BUF_INIT;
    if (rc == SG_EKILLED) {
        sg_buf_printf(&data, "{\"scope\":\"%s\"}", sg_kill_scope_name(scope));
        sg_relay_fail(ex, rc, "kill switch engaged", sg_buf_str(&data));
    } else {
        sg_buf_append_cstr(&data, "{\"reason\":\"kill switch state cannot be confirmed\"}");
        sg_relay_fail(ex, rc, "configuration unavailable", sg_buf_str(&data));
    }
    sg_buf_dispose(&data);
    return true;
}

static stage_rc_t stage_killswitch(sg_exchange_t *ex, call_state_t *cs)
{
    (void)cs;
    return refuse_if_killed(ex->owner, ex) ? STAGE_DONE : STAGE_NEXT;
}

/* -31001 / -31002 with the deciding rule and reason in data. */
static void refuse_by_policy(sg_exchange_t *ex, const sg_policy_result_t *r)
{
    sg_buf_t data = SG_BUF_INIT;
    sg_buf_append_cstr(&data, "{\"rule\":");
    sg_json_write_cstr(&data, r->rule);
    sg_buf_append_cstr(&data, ",\"reason\":");
    sg_json_write_cstr(&data, r->reason);
    if (r->decision == SG_DECISION_APPROVE) {
        /* TODO(approval issue): hold the call for a human; until then approval fails closed */
        sg_buf_append_cstr(&data, ",\"approval_id\":null}");
        sg_relay_fail(ex, SG_EAPPROVAL, "approval required", sg_buf_str(&data));
    } else {
        sg_buf_append_char(&data, '}');
        sg_relay_fail(ex, SG_EDENIED, r->reason, sg_buf_str(&data));
    }
    sg_buf_dispose(&data);
}

/* Evaluates the tenant's rules for ex; true when the call may proceed. */
static bool policy_allows(sg_exchange_t *ex, const sg_identity_t *id, sg_str_t tool,
                          sg_str_t upstream, sg_str_t method, sg_tool_class_t cls,
                          sg_str_t arguments)
{
    sg_gate_t *gate = ex->owner;
    sg_policy_input_t in = { .identity = sg_str(id->name),
                             .roles = id->roles,
                             .nroles = id->nroles,
                             .tool = tool,
                             .upstream = upstream,
                             .method = method,
                             .tool_class = cls,
                             .arguments = arguments,
                             .ctx = gate->policy_ctx };
    sg_policy_result_t r;
    sg_policy_eval(ex->snap->policy, &in, &r);
    if (r.has_shadow) {
        SG_LOG_INFO(&gate->log, "tenant %s: shadow rule %s would %s %.*s (decided: %s by %s)",
                    ex->tenant, r.shadow_rule, sg_policy_decision_name(r.shadow_decision),
                    (int)tool.len, tool.ptr, sg_policy_decision_name(r.decision), r.rule);
        /* the would-be decision goes into the audit row too */
        sg_buf_t f = SG_BUF_INIT;
        sg_buf_append_cstr(&f, "{\"shadow\":{\"rule\":");
        sg_json_write_cstr(&f, r.shadow_rule);
        sg_buf_printf(&f, ",\"decision\":\"%s\",\"would_decide\":%s}}",
                      sg_policy_decision_name(r.shadow_decision),
                      r.shadow_decisive ? "true" : "false");
        free(ex->record.findings);
        ex->record.findings = sg_buf_steal(&f, NULL);
    }
    bool allowed = r.decision == SG_DECISION_ALLOW;
    ex->record.rule = r.rule; /* borrowed from ex->snap's policy, which ex references */
    ex->record.reason = r.reason;
    ex->record.arguments = arguments;
    if (allowed) {
        ex->record.decision = "allow";
    } else {
        ex->record.decision = r.decision == SG_DECISION_APPROVE ? "approval_required" : "deny";
        refuse_by_policy(ex, &r);
    }
    sg_policy_result_dispose(&r);
    return allowed;
}

static stage_rc_t stage_policy(sg_exchange_t *ex, call_state_t *cs)
{
    sg_str_t args = SG_STR_NULL;
    if (sg_json_object_get(cs->relay.params, "arguments", &args) != SG_OK ||
        sg_json_type(args) != SG_JSON_OBJECT) {
        args = SG_STR_NULL;
    }
    bool ok = policy_allows(ex, cs->id, sg_str(cs->exposed),
                            sg_str(ex->snap->upstreams[cs->upstream].name),
                            SG_STR_LIT("tools/call"), cs->cls, args);
    return ok ? STAGE_NEXT : STAGE_DONE;
}

static stage_rc_t stage_pass(sg_exchange_t *ex, call_state_t *cs)
{
    /* TODO(content-scanning issue): request and response scanning fill these two slots;
     * audit runs in stage_audit_sync and when the exchange finishes */
    (void)ex;
    (void)cs;
    return STAGE_NEXT;
}

static void on_call_done(sg_exchange_t *ex);
static void call_advance(sg_exchange_t *ex);

static void on_decision_durable(void *data, int status)
{
    sg_exchange_t *ex = data;
    if (status != SG_OK) {
        sg_relay_fail(ex, SG_ECONFIG, "audit unavailable: the decision could not be made durable",
                      SG_STR_NULL);
    } else if (!ex->finished) {
        call_advance(ex);
    }
    sg_exchange_unref(ex);
}

/*
 * audit.mode "sync": the decision row is made durable (PostgreSQL or the fsynced spool) before
 * the call goes upstream; it is the call's one row, so it carries no result.
 */
static stage_rc_t stage_audit_sync(sg_exchange_t *ex, call_state_t *cs)
{
    (void)cs;
    sg_gate_t *gate = ex->owner;
    if (!ex->snap->audit_sync) {
        return STAGE_NEXT;
    }
    sg_call_record_t *r = &ex->record;
    r->written = true;
    r->sync_row = true;
    sg_buf_t args = SG_BUF_INIT;
    if (r->arguments.len != 0) {
        sg_redact_json(r->arguments, &args);
    }
    sg_audit_event_t ev = { .tenant = sg_str(ex->tenant),
                            .identity = sg_str(ex->identity),
                            .session = sg_str(ex->session_nonce),
                            .request_id = ex->client_id,
                            .method = sg_str(r->method),
                            .tool = sg_str(r->tool),
                            .upstream = sg_str(r->upstream),
                            .risk_class = sg_str(r->cls),
                            .decision = sg_str("allow"),
                            .rule = sg_str(r->rule),
                            .reason = sg_str(r->reason),
                            .arguments = args.len != 0 ? sg_buf_str(&args) : SG_STR_NULL,
                            .gate_latency_us = (int64_t)(sg_clock_now_us() - ex->started_us),
                            .upstream_latency_us = -1 };
    sg_exchange_ref(ex);
    int rc = gate->audit != NULL ? sg_audit_submit(gate->audit, &ev, on_decision_durable, ex)
                                 : SG_ECLOSED;
    sg_buf_dispose(&args);
    if (rc != SG_OK) {
        sg_exchange_unref(ex);
        sg_relay_fail(ex, SG_ECONFIG, "audit unavailable: the decision could not be recorded",
                      SG_STR_NULL);
        return STAGE_DONE;
    }
    return STAGE_WAIT;
}

static stage_rc_t stage_forward(sg_exchange_t *ex, call_state_t *cs)
{
    sg_upstream_t *up = sg_gate_upstream(cs->t, (size_t)cs->upstream);
    ex->record.upstream_started_us = sg_clock_now_us();
    if (!start_sub(ex, up, (size_t)cs->upstream, "tools/call", cs->relay.params)) {
        upstream_failed(ex, SG_EUPSTREAM, sg_upstream_cfg(up)->name);
        return STAGE_DONE;
    }
    return STAGE_WAIT;
}

static stage_rc_t stage_reply(sg_exchange_t *ex, call_state_t *cs)
{
    sg_subcall_t *s = &ex->subs[0];
    ex->record.upstream_us = sg_clock_now_us() - ex->record.upstream_started_us;
    if (s->status != SG_OK) {
        upstream_failed(ex, s->status, ex->snap->upstreams[cs->upstream].name);
    } else {
        relay_response(ex, (sg_str_t){ s->response, s->response_len });
    }
    sg_metric_observe_us(&m_calls, sg_clock_now_us() - ex->started_us);
    return STAGE_DONE;
}

static const struct stage {
    const char *name;
    stage_rc_t (*run)(sg_exchange_t *ex, call_state_t *cs);
} stages[] = {
    { "resolve", stage_resolve },       { "killswitch", stage_killswitch },
    { "policy", stage_policy },         { "scan_request", stage_pass },
    { "audit_sync", stage_audit_sync }, { "forward", stage_forward },
    { "scan_response", stage_pass },    { "reply", stage_reply },
};

static void call_advance(sg_exchange_t *ex)
{
    call_state_t *cs = ex->ctx;
    while (cs->stage < SG_ARRAY_LEN(stages)) {
        stage_rc_t rc = stages[cs->stage++].run(ex, cs);
        if (rc != STAGE_NEXT) {
            return;
        }
    }
}

static void on_call_done(sg_exchange_t *ex)
{
    call_advance(ex);
}

static void tools_call(sg_exchange_t *ex, sg_gate_tenant_t *t, const sg_identity_t *id,
                       sg_str_t params)
{
    call_state_t *cs = sg_xcalloc(1, sizeof(*cs));
    cs->relay.done = on_call_done;
    cs->relay.params = params;
    cs->t = t;
    cs->id = id;
    ex->ctx = cs;
    prepare_subs(ex, 1);
    call_advance(ex);
}

/* ---- fan-out lists: resources/list, resources/templates/list, prompts/list ---- */

static void merge_items(sg_buf_t *out, bool *first, sg_str_t items, const char *prefix, bool rename)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(items);
    sg_str_t item, name;
    while (sg_json_array_next(&it, &item) == 1) {
        if (!*first) {
            sg_buf_append_char(out, ',');
        }
        *first = false;
        sg_buf_t dec = SG_BUF_INIT;
        if (rename && sg_json_object_get(item, "name", &name) == SG_OK &&
            sg_json_string_decode(name, &dec) == SG_OK) {
            sg_buf_t exposed = SG_BUF_INIT;
            exposed_name(&exposed, prefix, dec.data != NULL ? dec.data : "");
            splice_string(out, item, name, exposed.data);
            sg_buf_dispose(&exposed);
        } else {
            sg_buf_append_str(out, item);
        }
        sg_buf_dispose(&dec);
    }
}

static void on_fanout_done(sg_exchange_t *ex)
{
    relay_ctx_t *ctx = ex->ctx;
    sg_buf_t result = SG_BUF_INIT;
    bool first = true;
    sg_buf_printf(&result, "{\"%s\":[", ctx->list_key);
    for (size_t i = 0; i < ex->nsubs; i++) {
        sg_subcall_t *s = &ex->subs[i];
        sg_jsonrpc_msg_t m;
        sg_buf_t scratch = SG_BUF_INIT;
        sg_str_t items;
        if (s->status == SG_OK &&
            sg_jsonrpc_parse_one((sg_str_t){ s->response, s->response_len }, &m, &scratch, NULL) ==
                    SG_OK &&
            m.kind == SG_JSONRPC_RESPONSE &&
            sg_json_object_get(m.result, ctx->list_key, &items) == SG_OK) {
            merge_items(&result, &first, items, ex->snap->upstreams[s->index].prefix, ctx->rename);
        }
        sg_buf_dispose(&scratch);
    }
    sg_buf_append_cstr(&result, "]}");
    reply_result(ex, sg_buf_str(&result));
    sg_buf_dispose(&result);
}

static void fan_out(sg_exchange_t *ex, sg_gate_tenant_t *t, const char *method,
                    const char *capability, const char *key, bool rename)
{
    relay_ctx_t *ctx = sg_xcalloc(1, sizeof(*ctx));
    ctx->done = on_fanout_done;
    ctx->list_key = key;
    ctx->rename = rename;
    ex->ctx = ctx;
    prepare_subs(ex, t->snap->nupstreams);
    ex->pending++; /* hold completion until every subcall started */
    for (size_t i = 0; i < t->snap->nupstreams; i++) {
        if (sg_upstream_has_capability(sg_gate_upstream(t, i), capability)) {
            (void)start_sub(ex, sg_gate_upstream(t, i), i, method, SG_STR_LIT("{}"));
        }
    }
    if (--ex->pending == 0) {
        on_fanout_done(ex);
    }
}

/* ---- routed requests: try the candidate upstreams in order ---- */

static void ctx_free(void *p)
{
    relay_ctx_t *ctx = p;
    free(ctx->method);
    free(ctx->params_owned);
    free(ctx);
}

static bool try_next(sg_exchange_t *ex);

static bool is_error_response(const sg_subcall_t *s)
{
    sg_jsonrpc_msg_t m;
    sg_buf_t scratch = SG_BUF_INIT;
    bool err = s->status != SG_OK ||
               sg_jsonrpc_parse_one((sg_str_t){ s->response, s->response_len }, &m, &scratch,
                                    NULL) != SG_OK ||
               m.kind != SG_JSONRPC_RESPONSE;
    sg_buf_dispose(&scratch);
    return err;
}

static void on_route_done(sg_exchange_t *ex)
{
    sg_subcall_t *s = &ex->subs[ex->nsubs - 1];
    if (is_error_response(s) && try_next(ex)) {
        return;
    }
    if (s->status != SG_OK) {
        upstream_failed(ex, s->status, ex->snap->upstreams[s->index].name);
    } else {
        relay_response(ex, (sg_str_t){ s->response, s->response_len });
    }
}

/* Starts the request on the next candidate upstream; false when none is left. */
static bool try_next(sg_exchange_t *ex)
{
    relay_ctx_t *ctx = ex->ctx;
    sg_gate_tenant_t *t = sg_gate_find_tenant(ex->owner, ex->tenant);
    while (t != NULL && t->snap == ex->snap && ctx->try_next < t->snap->nupstreams) {
        size_t i = ctx->try_next++;
        const char *cap = strncmp(ctx->method, "completion/", 11) == 0 ? "completions"
                          : strncmp(ctx->method, "prompts/", 8) == 0   ? "prompts"
                          : strncmp(ctx->method, "logging/", 8) == 0   ? "logging"
                                                                       : "resources";
        if (sg_upstream_has_capability(sg_gate_upstream(t, i), cap) &&
            start_sub(ex, sg_gate_upstream(t, i), i, ctx->method, ctx->params)) {
            return true;
        }
    }
    return false;
}

/* Splits "<prefix>__<name>" against the upstreams' prefixes; index or -1 (bare names: -1). */
static long resolve_prefixed(const sg_tenant_t *snap, sg_str_t name, sg_str_t *rest)
{
    for (size_t i = 0; i < snap->nupstreams; i++) {
        const char *prefix = snap->upstreams[i].prefix;
        size_t plen = strlen(prefix);
        if (plen != 0 && name.len > plen + 2 && memcmp(name.ptr, prefix, plen) == 0 &&
            memcmp(name.ptr + plen, "__", 2) == 0) {
            *rest = (sg_str_t){ name.ptr + plen + 2, name.len - plen - 2 };
            return (long)i;
        }
    }
    return -1;
}

/* Rewrites the namespaced prompt name at span (inside raw) and restricts routing to its upstream.
 */
static void route_prompt_name(relay_ctx_t *ctx, const sg_tenant_t *snap, sg_str_t raw,
                              sg_str_t span)
{
    sg_buf_t dec = SG_BUF_INIT;
    sg_str_t rest;
    long i;
    if (sg_json_string_decode(span, &dec) != SG_OK ||
        (i = resolve_prefixed(snap, sg_buf_str(&dec), &rest)) < 0) {
        sg_buf_dispose(&dec);
        return;
    }
    char *orig = sg_xstrdup_str(rest);
    sg_buf_t params = SG_BUF_INIT;
    splice_string(&params, raw, span, orig);
    free(orig);
    ctx->params_owned = sg_buf_steal(&params, &ctx->params.len);
    ctx->params.ptr = ctx->params_owned;
    ctx->try_next = (size_t)i;
    sg_buf_dispose(&dec);
}

static void routed(sg_exchange_t *ex, sg_gate_tenant_t *t, sg_str_t method, sg_str_t params)
{
    relay_ctx_t *ctx = sg_xcalloc(1, sizeof(*ctx));
    ctx->done = on_route_done;
    ctx->method = sg_xstrdup_str(method);
    ctx->params = params.len != 0 ? params : SG_STR_LIT("{}");
    ex->ctx = ctx;
    ex->ctx_free = ctx_free;
    prepare_subs(ex, t->snap->nupstreams);
    sg_str_t name, ref;
    if (sg_str_eq_cstr(method, "prompts/get") &&
        sg_json_object_get(ctx->params, "name", &name) == SG_OK) {
        route_prompt_name(ctx, t->snap, ctx->params, name);
    } else if (sg_str_eq_cstr(method, "completion/complete") &&
               sg_json_object_get(ctx->params, "ref", &ref) == SG_OK &&
               sg_json_object_get(ref, "name", &name) == SG_OK) {
        route_prompt_name(ctx, t->snap, ctx->params, name);
    }
    if (!try_next(ex)) {
        sg_relay_fail(ex, SG_EPARAMS, "no upstream can serve this request", SG_STR_NULL);
    }
}

/* ---- logging/setLevel: every upstream that logs ---- */

static void on_set_level_done(sg_exchange_t *ex)
{
    reply_result(ex, SG_STR_LIT("{}"));
}

static void set_level(sg_exchange_t *ex, sg_gate_tenant_t *t, sg_str_t params)
{
    relay_ctx_t *ctx = sg_xcalloc(1, sizeof(*ctx));
    ctx->done = on_set_level_done;
    ex->ctx = ctx;
    prepare_subs(ex, t->snap->nupstreams);
    ex->pending++;
    for (size_t i = 0; i < t->snap->nupstreams; i++) {
        if (sg_upstream_has_capability(sg_gate_upstream(t, i), "logging")) {
            (void)start_sub(ex, sg_gate_upstream(t, i), i, "logging/setLevel", params);
        }
    }
    if (--ex->pending == 0) {
        on_set_level_done(ex);
    }
}

/* Rules with `method` apply to reads: the tool field is the prompt name or resource URI. */
static bool read_allowed(sg_exchange_t *ex, const sg_identity_t *id, sg_str_t method,
                         sg_str_t params)
{
    sg_str_t target = SG_STR_NULL, raw;
    sg_buf_t dec = SG_BUF_INIT;
    const char *key = sg_str_eq_cstr(method, "prompts/get") ? "name" : "uri";
    if (params.len != 0 && sg_json_object_get(params, key, &raw) == SG_OK &&
        sg_json_string_decode(raw, &dec) == SG_OK) {
        target = sg_buf_str(&dec);
    }
    sg_str_t args = SG_STR_NULL;
    if (params.len == 0 || sg_json_object_get(params, "arguments", &args) != SG_OK ||
        sg_json_type(args) != SG_JSON_OBJECT) {
        args = SG_STR_NULL;
    }
    free((char *)ex->record.tool);
    ex->record.tool = target.len != 0 ? sg_xmemdup(target.ptr, SG_MIN(target.len, 256)) : NULL;
    ex->record.cls = "read";
    bool ok = policy_allows(ex, id, target, SG_STR_NULL, method, SG_TOOL_CLASS_READ, args);
    sg_buf_dispose(&dec);
    return ok;
}

/* ---- entry points ---- */

void sg_relay_request(sg_gate_t *gate, sg_exchange_t *ex, sg_gate_tenant_t *t,
                      const sg_identity_t *id, const sg_jsonrpc_msg_t *m)
{
    sg_metrics_register(&m_calls);
    track(gate, ex);
    sg_str_t method = m->method;
    snprintf(ex->record.method, sizeof(ex->record.method), "%.*s",
             (int)SG_MIN(method.len, sizeof(ex->record.method) - 1), method.ptr);
    if (sg_str_eq_cstr(method, "tools/list")) {
        tools_list(ex, t, id, m->params);
    } else if (sg_str_eq_cstr(method, "tools/call")) {
        ex->ctx_free = ctx_free;
        ex->killable = true;
        ex->record.wanted = true;
        tools_call(ex, t, id, m->params);
    } else if (sg_str_eq_cstr(method, "resources/list")) {
        fan_out(ex, t, "resources/list", "resources", "resources", false);
    } else if (sg_str_eq_cstr(method, "resources/templates/list")) {
        fan_out(ex, t, "resources/templates/list", "resources", "resourceTemplates", false);
    } else if (sg_str_eq_cstr(method, "prompts/list")) {
        fan_out(ex, t, "prompts/list", "prompts", "prompts", true);
    } else if (sg_str_eq_cstr(method, "resources/read") || sg_str_eq_cstr(method, "prompts/get")) {
        /* reads reach the outside world: the kill switch stops them like tool calls */
        ex->killable = true;
        ex->record.wanted = true;
        if (!refuse_if_killed(gate, ex) && read_allowed(ex, id, method, m->params)) {
            routed(ex, t, method, m->params);
        }
    } else if (sg_str_eq_cstr(method, "resources/subscribe") ||
               sg_str_eq_cstr(method, "resources/unsubscribe") ||
               sg_str_eq_cstr(method, "completion/complete")) {
        routed(ex, t, method, m->params);
    } else if (sg_str_eq_cstr(method, "logging/setLevel")) {
        set_level(ex, t, m->params);
    } else {
        sg_relay_fail(ex, SG_EMETHOD, NULL, SG_STR_NULL);
    }
}

void sg_relay_agent_response(sg_gate_t *gate, sg_gate_tenant_t *t, const sg_jsonrpc_msg_t *m)
{
    (void)gate;
    bool is_error = m->kind == SG_JSONRPC_ERROR;
    size_t n = t->snap != NULL ? t->snap->nupstreams : 0;
    sg_str_t body = is_error ? m->error : m->result;
    for (size_t i = 0; i < n; i++) {
        sg_upstream_t *old = t->retiring != NULL ? t->retiring[i] : NULL;
        if (sg_upstream_answer(t->ups[i], m->id, body, is_error) == SG_OK ||
            (old != NULL && sg_upstream_answer(old, m->id, body, is_error) == SG_OK)) {
            return;
        }
    }
}

/* Cancels ex's upstream calls (notifications/cancelled upstream) without their callbacks. */
static void cancel_subs(sg_exchange_t *ex, const char *reason)
{
    for (size_t i = 0; i < ex->nsubs; i++) {
        sg_subcall_t *s = &ex->subs[i];
        if (!s->done && s->call._up != NULL) {
            sg_upstream_cancel(&s->call, reason);
            s->done = true;
            ex->pending--;
            sg_exchange_unref(ex); /* the subcall's reference */
        }
    }
}

void sg_relay_cancel(sg_gate_t *gate, const char *nonce, sg_str_t request_id)
{
    for (sg_exchange_t *ex = gate->exchanges; ex != NULL; ex = ex->next) {
        if (strcmp(ex->session_nonce, nonce) != 0 || !sg_str_eq(ex->client_id, request_id)) {
            continue;
        }
        sg_exchange_ref(ex);
        cancel_subs(ex, "cancelled by the agent");
        sg_relay_fail(ex, SG_ECANCELED, "cancelled by the agent", SG_STR_NULL);
        sg_exchange_unref(ex);
        return;
    }
}

void sg_relay_kill_inflight(sg_gate_t *gate)
{
    sg_exchange_t *ex = gate->exchanges;
    while (ex != NULL) {
        sg_exchange_t *next = ex->next;
        sg_kill_scope_t scope;
        if (ex->killable && !ex->finished &&
            sg_gate_killswitch(gate, ex->snap, ex->identity, &scope) == SG_EKILLED) {
            if (next != NULL) {
                sg_exchange_ref(next); /* failing ex may unlink it, never next */
            }
            sg_exchange_ref(ex);
            cancel_subs(ex, "kill switch engaged");
            (void)refuse_if_killed(gate, ex);
            sg_exchange_unref(ex);
            if (next != NULL) {
                sg_exchange_unref(next);
            }
        }
        ex = next;
    }
}
