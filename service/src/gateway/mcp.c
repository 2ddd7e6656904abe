/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /mcp: MCP Streamable HTTP towards agents (revisions 2025-03-26, 2025-06-18,
 * 2025-11-25). Every request is authenticated by its API key; sessions are
 * signed tokens any replica verifies (core/session_token). Local answers:
 * initialize, ping, tools/list (aggregated from the upstreams' cached lists,
 * names namespaced <prefix>__<tool>). Relayed (relay.c): tools/call through
 * its stage table, the resources and prompts methods, completion/complete,
 * logging/setLevel.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "core/jsonrpc.h"
#include "gateway/exchange.h"
#include "gateway/gate_int.h"
#include "gateway/mcp_int.h"
#include "io/http_reply.h"
#include "store/audit.h"

static const char *const versions[] = { "2025-11-25", "2025-06-18", "2025-03-26" };
#define LATEST_VERSION "2025-11-25"

static SG_METRIC_DEFINE(m_requests, SG_METRIC_COUNTER, "sg_mcp_requests_total", NULL,
                        "JSON-RPC messages received on /mcp");
static SG_METRIC_DEFINE(m_auth_failures, SG_METRIC_COUNTER, "sg_auth_failures_total", NULL,
                        "requests refused for a missing or unknown API key");

bool sg_mcp_version_supported(sg_str_t v)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(versions); i++) {
        if (sg_str_eq_cstr(v, versions[i])) {
            return true;
        }
    }
    return false;
}

/* ---- error replies ---- */

void sg_mcp_reply_error(h2o_req_t *req, int status, sg_str_t id, int code, const char *message)
{
    sg_buf_t b = SG_BUF_INIT;
    sg_jsonrpc_write_error(&b, id, code, message, SG_STR_NULL);
    sg_http_reply_json(req, status, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

static void reply_sg_error(h2o_req_t *req, int err, sg_str_t id, const char *message)
{
    sg_mcp_reply_error(req, sg_err_http_status(err), id, sg_err_jsonrpc_code(err),
                       message != NULL ? message : sg_err_message(err));
}

static void base_url(h2o_req_t *req, sg_buf_t *out)
{
    sg_str_t proto = sg_http_header(req, "x-forwarded-proto");
    sg_str_t host = sg_http_header(req, "x-forwarded-host");
    if (host.len == 0) {
        host = (sg_str_t){ req->authority.base, req->authority.len };
    }
    if (proto.len == 0) {
        proto = req->scheme == &H2O_URL_SCHEME_HTTPS ? SG_STR_LIT("https") : SG_STR_LIT("http");
    }
    /* header values are attacker-chosen: keep only URL-safe host characters */
    sg_buf_append_str(out, proto.len == 5 ? SG_STR_LIT("https") : SG_STR_LIT("http"));
    sg_buf_append_cstr(out, "://");
    for (size_t i = 0; i < host.len && i < 255; i++) {
        char c = host.ptr[i];
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '.' || c == '-' || c == ':' || c == '[' || c == ']') {
            sg_buf_append_char(out, c);
        }
    }
}

/*
 * Authentication failures are audited per key prefix (the first characters of the presented
 * key, never the key), at most one row per prefix per AUTH_AUDIT_MS with the count since the
 * last row, so a flood of bad keys cannot flood the audit log.
 */
#define AUTH_AUDIT_MS     10000
#define AUTH_PREFIX_CHARS 6

static void audit_auth_failure(sg_gate_t *gate, h2o_req_t *req)
{
    sg_str_t auth = sg_http_header(req, "authorization");
    char prefix[AUTH_PREFIX_CHARS + 1] = "";
    if (auth.len > 7 && strncasecmp(auth.ptr, "Bearer ", 7) == 0) {
        size_t n = SG_MIN(auth.len - 7, (size_t)AUTH_PREFIX_CHARS);
        for (size_t i = 0; i < n; i++) {
            char c = auth.ptr[7 + i];
            prefix[i] = (c >= 0x21 && c <= 0x7e && c != '"' && c != '\\') ? c : '?';
        }
        prefix[n] = '\0';
    }
    uint64_t h = 1469598103934665603ull;
    for (const char *p = prefix; *p != '\0'; p++) {
        h = (h ^ (uint8_t)*p) * 1099511628211ull;
    }
    sg_auth_failures_t *auth_failures = gate->auth_failures;
    size_t slot = h % SG_AUTH_AUDIT_SLOTS;
    uint64_t now = sg_clock_now_ms();
    if (strcmp(auth_failures[slot].prefix, prefix) != 0) {
        memcpy(auth_failures[slot].prefix, prefix, sizeof(prefix));
        auth_failures[slot].last_ms = 0;
        auth_failures[slot].count = 0;
    }
    auth_failures[slot].count++;
    if (gate->audit == NULL ||
        (auth_failures[slot].last_ms != 0 && now - auth_failures[slot].last_ms < AUTH_AUDIT_MS)) {
        return;
    }
    char reason[128];
    if (prefix[0] == '\0') {
        snprintf(reason, sizeof(reason), "missing API key (%llu failures since the last row)",
                 (unsigned long long)auth_failures[slot].count);
    } else {
        snprintf(reason, sizeof(reason),
                 "unknown API key with prefix \"%s\" (%llu failures since the last row)", prefix,
                 (unsigned long long)auth_failures[slot].count);
    }
    auth_failures[slot].last_ms = now;
    auth_failures[slot].count = 0;
    sg_audit_event_t ev = { .decision = SG_STR_LIT("auth_failed"),
                            .reason = sg_str(reason),
                            .method = sg_str_n(req->method.base, req->method.len),
                            .gate_latency_us = -1,
                            .upstream_latency_us = -1 };
    if (sg_audit_submit(gate->audit, &ev, NULL, NULL) != SG_OK) {
        SG_LOG_WARN(&gate->log, "an authentication failure could not be audited");
    }
}

static void reply_unauthorized(h2o_req_t *req)
{
    sg_buf_t v = SG_BUF_INIT;
    sg_buf_append_cstr(&v, "Bearer resource_metadata=\"");
    base_url(req, &v);
    sg_buf_append_cstr(&v, "/.well-known/oauth-protected-resource\"");
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_WWW_AUTHENTICATE, NULL,
                   h2o_strdup(&req->pool, v.data, v.len).base, v.len);
    sg_buf_dispose(&v);
    sg_metric_add(&m_auth_failures, 1);
    reply_sg_error(req, SG_EUNAUTH, SG_STR_NULL, "missing or unknown API key");
}

int sg_mcp_handle_prm(void *data, h2o_req_t *req)
{
    (void)data;
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_t base = SG_BUF_INIT;
    base_url(req, &base);
    sg_buf_append_cstr(&b, "{\"resource\":");
    sg_buf_append_str(&base, SG_STR_LIT("/mcp"));
    sg_json_write_string(&b, base.data, base.len);
    sg_buf_append_cstr(&b,
                       ",\"authorization_servers\":[],\"bearer_methods_supported\":[\"header\"],"
                       "\"resource_documentation\":\"API keys are issued by the SentinelGate "
                       "control plane (POST /admin/api/v1/bootstrap)\"}");
    sg_http_reply_json(req, 200, sg_buf_str(&b));
    sg_buf_dispose(&b);
    sg_buf_dispose(&base);
    return 0;
}

/* ---- authentication, origin, session ---- */

static sg_gate_tenant_t *authenticate(sg_gate_t *gate, h2o_req_t *req, const sg_identity_t **id)
{
    sg_str_t auth = sg_http_header(req, "authorization");
    if (auth.len < 8 || strncasecmp(auth.ptr, "Bearer ", 7) != 0 || auth.len > 1024) {
        return NULL;
    }
    sg_str_t key = { auth.ptr + 7, auth.len - 7 };
    while (key.len > 0 && key.ptr[0] == ' ') {
        key.ptr++;
        key.len--;
    }
    uint8_t hash[32];
    sg_sha256(key.ptr, key.len, hash);
    return sg_gate_auth(gate, hash, id);
}

static bool origin_allowed(const sg_tenant_t *snap, h2o_req_t *req)
{
    sg_str_t origin = sg_http_header(req, "origin");
    if (origin.len == 0) {
        return true; /* not a browser */
    }
    for (size_t i = 0; i < snap->norigins; i++) {
        if (sg_str_eq_cstr(origin, snap->allowed_origins[i])) {
            return true;
        }
    }
    return false;
}

/* Verifies the Mcp-Session-Id against the authenticated principal. */
static int check_session(sg_gate_t *gate, h2o_req_t *req, const sg_gate_tenant_t *t,
                         const sg_identity_t *id, sg_session_claims_t *claims)
{
    sg_str_t sid = sg_http_header(req, "mcp-session-id");
    if (sid.len == 0) {
        return SG_EREQUEST;
    }
    if (!gate->have_secret ||
        sg_session_token_verify(gate->secret, gate->secret_len, sid, sg_clock_wall_ms(),
                                SG_SESSION_TTL_MS, claims) != SG_OK ||
        strcmp(claims->tenant, t->name) != 0 || strcmp(claims->identity, id->name) != 0 ||
        sg_gate_is_revoked(gate, claims->nonce)) {
        return SG_ESESSION;
    }
    sg_str_t pv = sg_http_header(req, "mcp-protocol-version");
    if (pv.len != 0 && !sg_mcp_version_supported(pv)) {
        return SG_EVERSION;
    }
    return SG_OK;
}

/* ---- initialize ---- */

static void write_capabilities(sg_buf_t *b, const sg_gate_tenant_t *t)
{
    bool resources = false, prompts = false, completions = false, logging = false;
    size_t n = t->snap != NULL ? t->snap->nupstreams : 0;
    for (size_t i = 0; i < n; i++) {
        resources |= sg_upstream_has_capability(sg_gate_upstream(t, i), "resources");
        prompts |= sg_upstream_has_capability(sg_gate_upstream(t, i), "prompts");
        completions |= sg_upstream_has_capability(sg_gate_upstream(t, i), "completions");
        logging |= sg_upstream_has_capability(sg_gate_upstream(t, i), "logging");
    }
    sg_buf_append_cstr(b, "{\"tools\":{\"listChanged\":true}");
    if (resources) {
        sg_buf_append_cstr(b, ",\"resources\":{\"subscribe\":true,\"listChanged\":false}");
    }
    if (prompts) {
        sg_buf_append_cstr(b, ",\"prompts\":{\"listChanged\":false}");
    }
    if (completions) {
        sg_buf_append_cstr(b, ",\"completions\":{}");
    }
    if (logging) {
        sg_buf_append_cstr(b, ",\"logging\":{}");
    }
    sg_buf_append_char(b, '}');
}

static void handle_initialize(sg_gate_t *gate, h2o_req_t *req, const sg_jsonrpc_msg_t *m,
                              sg_gate_tenant_t *t, const sg_identity_t *id)
{
    sg_str_t requested = SG_STR_NULL;
    sg_str_t plain;
    const char *version = LATEST_VERSION;
    if (m->params.len != 0 &&
        sg_json_object_get(m->params, "protocolVersion", &requested) == SG_OK &&
        sg_json_string_plain(requested, &plain) && sg_mcp_version_supported(plain)) {
        for (size_t i = 0; i < SG_ARRAY_LEN(versions); i++) {
            if (sg_str_eq_cstr(plain, versions[i])) {
                version = versions[i];
            }
        }
    }
    if (!gate->have_secret) {
        reply_sg_error(req, SG_ECONFIG, m->id, "session secret not loaded yet");
        return;
    }
    sg_session_claims_t claims = { 0 };
    snprintf(claims.tenant, sizeof(claims.tenant), "%s", t->name);
    snprintf(claims.identity, sizeof(claims.identity), "%s", id->name);
    snprintf(claims.version, sizeof(claims.version), "%s", version);
    claims.issued_ms = sg_clock_wall_ms();
    sg_buf_t token = SG_BUF_INIT;
    if (sg_session_token_issue(gate->secret, gate->secret_len, &claims, &token) != SG_OK) {
        sg_buf_dispose(&token);
        reply_sg_error(req, SG_EINTERNAL, m->id, NULL);
        return;
    }
    sg_http_add_header(req, "mcp-session-id", sg_buf_str(&token));
    sg_buf_dispose(&token);
    sg_buf_t result = SG_BUF_INIT;
    sg_buf_printf(&result, "{\"protocolVersion\":\"%s\",\"capabilities\":", version);
    write_capabilities(&result, t);
    sg_buf_append_cstr(&result, ",\"serverInfo\":{\"name\":\"sentinel-gate\",\"title\":"
                                "\"SentinelGate\",\"version\":\"0.1.0\"},\"instructions\":"
                                "\"Tools come from several upstream servers, named "
                                "<upstream>__<tool> unless an upstream exposes them bare. Every "
                                "call passes SentinelGate's checks.\"}");
    sg_buf_t msg = SG_BUF_INIT;
    sg_jsonrpc_write_result(&msg, m->id, sg_buf_str(&result));
    sg_http_reply_json(req, 200, sg_buf_str(&msg));
    sg_buf_dispose(&msg);
    sg_buf_dispose(&result);
}

/* ---- POST ---- */

static bool accepts(h2o_req_t *req, const char *type)
{
    sg_str_t a = sg_http_header(req, "accept");
    return a.len == 0 || memmem(a.ptr, a.len, type, strlen(type)) != NULL ||
           memmem(a.ptr, a.len, "*/*", 3) != NULL;
}

static void handle_notification(sg_gate_t *gate, h2o_req_t *req, const sg_jsonrpc_msg_t *m,
                                const sg_session_claims_t *claims)
{
    if (sg_str_eq_cstr(m->method, "notifications/cancelled") && m->params.len != 0) {
        sg_str_t rid;
        if (sg_json_object_get(m->params, "requestId", &rid) == SG_OK) {
            sg_relay_cancel(gate, claims->nonce, rid);
        }
    }
    sg_http_reply(req, 202, NULL, SG_STR_NULL);
}

static void dispatch(sg_gate_t *gate, h2o_req_t *req, const sg_jsonrpc_msg_t *m,
                     sg_gate_tenant_t *t, const sg_identity_t *id, char *body, size_t body_len)
{
    sg_session_claims_t claims;
    int rc = check_session(gate, req, t, id, &claims);
    if (rc != SG_OK) {
        reply_sg_error(req, rc, m->kind == SG_JSONRPC_REQUEST ? m->id : SG_STR_NULL,
                       rc == SG_EREQUEST ? "Mcp-Session-Id header is required" : NULL);
        free(body);
        return;
    }
    if (m->kind == SG_JSONRPC_NOTIFICATION) {
        handle_notification(gate, req, m, &claims);
        free(body);
        return;
    }
    if (m->kind == SG_JSONRPC_RESPONSE || m->kind == SG_JSONRPC_ERROR) {
        sg_relay_agent_response(gate, t, m);
        sg_http_reply(req, 202, NULL, SG_STR_NULL);
        free(body);
        return;
    }
    if (sg_str_eq_cstr(m->method, "ping")) {
        sg_buf_t b = SG_BUF_INIT;
        sg_jsonrpc_write_result(&b, m->id, SG_STR_LIT("{}"));
        sg_http_reply_json(req, 200, sg_buf_str(&b));
        sg_buf_dispose(&b);
        free(body);
        return;
    }
    if (sg_str_eq_cstr(m->method, "initialize")) {
        reply_sg_error(req, SG_EREQUEST, m->id, "session already initialized");
        free(body);
        return;
    }
    sg_exchange_t *ex = sg_exchange_new(req, gate->loop, accepts(req, "text/event-stream"));
    ex->body = body; /* the message borrows from it */
    ex->body_len = body_len;
    ex->client_id = m->id;
    ex->snap = sg_tenant_ref(t->snap);
    ex->owner = gate;
    ex->started_us = sg_clock_now_us();
    memcpy(ex->session_nonce, claims.nonce, sizeof(ex->session_nonce));
    snprintf(ex->tenant, sizeof(ex->tenant), "%s", t->name);
    snprintf(ex->identity, sizeof(ex->identity), "%s", id->name);
    sg_relay_request(gate, ex, t, id, m); /* the request's link holds the exchange */
}

/* ---- batches (2025-03-26 sessions only) ---- */

static void batch_free(sg_http_guard_t *g)
{
    sg_batch_t *b = (sg_batch_t *)g;
    sg_jsonrpc_batch_dispose(b->parsed);
    free(b->parsed);
    free(b->body);
    sg_buf_dispose(&b->out);
}

static void batch_member(sg_gate_t *gate, sg_batch_t *b, const sg_jsonrpc_msg_t *m,
                         sg_gate_tenant_t *t, const sg_identity_t *id,
                         const sg_session_claims_t *claims)
{
    sg_buf_t one = SG_BUF_INIT;
    if (m->kind == SG_JSONRPC_NOTIFICATION) {
        if (sg_str_eq_cstr(m->method, "notifications/cancelled") && m->params.len != 0) {
            sg_str_t rid;
            if (sg_json_object_get(m->params, "requestId", &rid) == SG_OK) {
                sg_relay_cancel(gate, claims->nonce, rid);
            }
        }
    } else if (m->kind != SG_JSONRPC_REQUEST) {
        sg_relay_agent_response(gate, t, m);
    } else if (sg_str_eq_cstr(m->method, "ping")) {
        sg_jsonrpc_write_result(&one, m->id, SG_STR_LIT("{}"));
    } else if (sg_str_eq_cstr(m->method, "initialize")) {
        sg_jsonrpc_write_error(&one, m->id, -32600, "initialize must not be batched", SG_STR_NULL);
    } else {
        sg_exchange_t *ex = sg_exchange_new_member(b, gate->loop);
        ex->client_id = m->id;
        ex->snap = sg_tenant_ref(t->snap);
        ex->owner = gate;
        ex->started_us = sg_clock_now_us();
        memcpy(ex->session_nonce, claims->nonce, sizeof(ex->session_nonce));
        snprintf(ex->tenant, sizeof(ex->tenant), "%s", t->name);
        snprintf(ex->identity, sizeof(ex->identity), "%s", id->name);
        sg_relay_request(gate, ex, t, id, m);
        sg_exchange_unref(ex);
    }
    if (one.len != 0) {
        sg_batch_add(b, sg_buf_str(&one));
    }
    sg_buf_dispose(&one);
}

static void handle_batch(sg_gate_t *gate, h2o_req_t *req, sg_gate_tenant_t *t,
                         const sg_identity_t *id, char *body, sg_jsonrpc_batch_t *parsed)
{
    sg_session_claims_t claims;
    int rc = check_session(gate, req, t, id, &claims);
    sg_str_t pv = sg_http_header(req, "mcp-protocol-version");
    if (rc == SG_OK && strcmp(claims.version, "2025-03-26") != 0 &&
        !(pv.len != 0 && sg_str_eq_cstr(pv, "2025-03-26"))) {
        reply_sg_error(req, SG_EREQUEST, SG_STR_NULL,
                       "JSON-RPC batches are only accepted in sessions at protocol 2025-03-26");
        rc = SG_EREQUEST;
    } else if (rc != SG_OK) {
        reply_sg_error(req, rc, SG_STR_NULL, NULL);
    }
    if (rc != SG_OK) {
        sg_jsonrpc_batch_dispose(parsed);
        free(body);
        return;
    }
    sg_batch_t *b = sg_http_guard_new(req, sizeof(*b), batch_free);
    b->body = body;
    b->parsed = sg_xmemdup(parsed, sizeof(*parsed));
    b->pending = 1; /* released below, once every member is dispatched */
    sg_buf_append_char(&b->out, '[');
    sg_jsonrpc_batch_t *pb = b->parsed;
    for (size_t i = 0; i < pb->count; i++) {
        batch_member(gate, b, &pb->msgs[i], t, id, &claims);
    }
    sg_batch_done(b);
    sg_http_guard_unref(&b->guard);
}

static void handle_post(sg_gate_t *gate, h2o_req_t *req, sg_gate_tenant_t *t,
                        const sg_identity_t *id)
{
    sg_str_t ctype = sg_http_header(req, "content-type");
    if (ctype.len < 16 || strncasecmp(ctype.ptr, "application/json", 16) != 0) {
        reply_sg_error(req, SG_EMEDIATYPE, SG_STR_NULL, "Content-Type must be application/json");
        return;
    }
    if (!accepts(req, "application/json") && !accepts(req, "text/event-stream")) {
        reply_sg_error(req, SG_ENOTACCEPT, SG_STR_NULL,
                       "Accept must allow application/json and text/event-stream");
        return;
    }
    if (req->entity.base == NULL || req->entity.len == 0) {
        reply_sg_error(req, SG_EPARSE, SG_STR_NULL, "empty body");
        return;
    }
    /* the body is copied once: the exchange may outlive the request */
    char *body = sg_xmemdup(req->entity.base, req->entity.len);
    size_t len = req->entity.len;
    sg_jsonrpc_batch_t batch;
    sg_error_t err = { 0 };
    sg_jsonrpc_limits_t limits = SG_JSONRPC_LIMITS_DEFAULT;
    limits.max_body = (size_t)sg_runtime_settings(gate->rt)->max_body_bytes;
    int rc = sg_jsonrpc_parse(body, len, &limits, &batch, &err);
    if (rc != SG_OK) {
        reply_sg_error(req, rc, SG_STR_NULL, err.msg[0] != '\0' ? err.msg : NULL);
        free(body);
        return;
    }
    sg_metric_add(&m_requests, (int64_t)batch.count);
    if (batch.is_batch) {
        handle_batch(gate, req, t, id, body, &batch); /* takes body and batch */
        return;
    }
    sg_jsonrpc_msg_t m = batch.msgs[0];
    char *decoded_method = NULL;
    if (batch._ndecoded != 0) {
        /* keep an escaped method name alive past the batch */
        decoded_method = sg_xstrdup_str(m.method);
        m.method = sg_str(decoded_method);
    }
    sg_jsonrpc_batch_dispose(&batch);
    if (m.kind == SG_JSONRPC_REQUEST && sg_str_eq_cstr(m.method, "initialize")) {
        if (sg_http_header(req, "mcp-session-id").len != 0) {
            reply_sg_error(req, SG_EREQUEST, m.id, "session already initialized");
        } else {
            handle_initialize(gate, req, &m, t, id);
        }
        free(body);
    } else {
        dispatch(gate, req, &m, t, id, body, len);
    }
    free(decoded_method);
}

/* ---- GET: the server-initiated stream ---- */

struct sg_gate_stream {
    sg_exchange_t *ex;
    char tenant[SG_NAME_MAX + 1];
    sg_gate_stream_t *next;
};

static void prune_streams(sg_gate_t *gate)
{
    sg_gate_stream_t **pp = &gate->streams;
    while (*pp != NULL) {
        sg_gate_stream_t *s = *pp;
        if (s->ex->req != NULL && !s->ex->finished) {
            pp = &s->next;
            continue;
        }
        *pp = s->next;
        sg_exchange_unref(s->ex);
        free(s);
    }
}

static void handle_get(sg_gate_t *gate, h2o_req_t *req, sg_gate_tenant_t *t,
                       const sg_identity_t *id)
{
    sg_session_claims_t claims;
    int rc = check_session(gate, req, t, id, &claims);
    if (rc != SG_OK) {
        reply_sg_error(req, rc, SG_STR_NULL, NULL);
        return;
    }
    if (!accepts(req, "text/event-stream")) {
        reply_sg_error(req, SG_ENOTACCEPT, SG_STR_NULL, "Accept must allow text/event-stream");
        return;
    }
    if (gate->draining) {
        reply_sg_error(req, SG_EBUSY, SG_STR_NULL, "replica is draining");
        return;
    }
    prune_streams(gate);
    sg_exchange_t *ex = sg_exchange_new(req, gate->loop, true);
    ex->is_get = true;
    sg_gate_stream_t *s = sg_xcalloc(1, sizeof(*s));
    sg_exchange_ref(ex); /* the stream list's reference; the request link holds the other */
    s->ex = ex;
    snprintf(s->tenant, sizeof(s->tenant), "%s", t->name);
    s->next = gate->streams;
    gate->streams = s;
    sg_exchange_start_stream(ex);
}

void sg_mcp_notify_tools_changed(sg_gate_t *gate, const char *tenant)
{
    prune_streams(gate);
    static const char msg[] =
            "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}";
    for (sg_gate_stream_t *s = gate->streams; s != NULL; s = s->next) {
        if (strcmp(s->tenant, tenant) == 0) {
            sg_exchange_send_interim(s->ex, SG_STR_LIT(msg));
        }
    }
}

void sg_mcp_close_streams(sg_gate_t *gate)
{
    for (sg_gate_stream_t *s = gate->streams; s != NULL; s = s->next) {
        sg_exchange_end_stream(s->ex);
    }
    prune_streams(gate);
}

/* ---- DELETE ---- */

static void handle_delete(sg_gate_t *gate, h2o_req_t *req, sg_gate_tenant_t *t,
                          const sg_identity_t *id)
{
    sg_session_claims_t claims;
    int rc = check_session(gate, req, t, id, &claims);
    if (rc != SG_OK) {
        reply_sg_error(req, rc, SG_STR_NULL, NULL);
        return;
    }
    sg_gate_revoke(gate, claims.nonce, claims.issued_ms + SG_SESSION_TTL_MS);
    sg_http_reply(req, 204, NULL, SG_STR_NULL);
}

int sg_mcp_handle(void *data, h2o_req_t *req)
{
    sg_gate_t *gate = data;
    sg_metrics_register(&m_requests);
    sg_metrics_register(&m_auth_failures);
    const sg_identity_t *id = NULL;
    sg_gate_tenant_t *t = authenticate(gate, req, &id);
    if (t == NULL) {
        audit_auth_failure(gate, req);
        reply_unauthorized(req);
        return 0;
    }
    if (!origin_allowed(t->snap, req)) {
        reply_sg_error(req, SG_EORIGIN, SG_STR_NULL, "Origin not allowed for this tenant");
        return 0;
    }
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        handle_post(gate, req, t, id);
    } else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        handle_get(gate, req, t, id);
    } else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
        handle_delete(gate, req, t, id);
    } else {
        sg_http_add_header(req, "allow", SG_STR_LIT("GET, POST, DELETE"));
        reply_sg_error(req, SG_EHTTPMETHOD, SG_STR_NULL, "use POST, GET or DELETE");
    }
    return 0;
}
