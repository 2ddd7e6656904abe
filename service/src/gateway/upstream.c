/* SPDX-License-Identifier: Apache-2.0 */
/*
 * MCP client towards one upstream (see upstream.h). States:
 *   DOWN -> STARTING (transport up, initialize sent) -> LISTING (tools/list pages)
 *   -> READY; any transport failure -> DOWN with a restart timer (exponential
 *   backoff); FAILED after MAX_FAILS consecutive failed starts (still retrying).
 * Calls in flight sit on a list keyed by their numeric upstream id; the
 * transport "origin" tag of an HTTP POST is that id, so nothing dangles when a
 * call's owner is gone.
 */
#include "gateway/upstream.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "core/jsonrpc.h"
#include "core/session_token.h"

#define PROTOCOL_VERSION "2025-11-25"
#define INIT_TIMEOUT_MS  30000
#define LIST_TIMEOUT_MS  30000
#define BACKOFF_MIN_MS   100
#define BACKOFF_MAX_MS   30000
#define MAX_FAILS        5
#define MAX_PAGES        100
#define MAX_TOOLS        10000
#define MAX_MESSAGE      (64u << 20)

typedef struct pending_request {
    uint64_t gw_n;
    char *orig_id; /* raw JSON */
    struct pending_request *next;
} pending_request_t;

struct sg_upstream {
    sg_loop_t *loop;
    sg_tenant_t *snap;
    const sg_upstream_cfg_t *cfg;
    sg_upstream_hooks_t hooks;
    sg_transport_t *tr;
    sg_upstream_state_t state;
    char name[160];
    sg_log_ctx_t log;
    uint64_t next_id;
    sg_upcall_t *calls; /* in flight, most recent first */
    size_t ncalls;
    sg_upcall_t internal; /* initialize, tools/list */
    bool internal_busy;
    char *capabilities;
    sg_uptool_t *tools;
    size_t ntools;
    sg_uptool_t *listing; /* pages gathered so far */
    size_t nlisting;
    size_t pages;
    bool relist_wanted;
    sg_timer_t restart_timer;
    uint64_t backoff_ms;
    unsigned fails;
    pending_request_t *pending;
    bool freeing;
};

static uint64_t gw_request_counter;

static SG_METRIC_DEFINE(m_restarts, SG_METRIC_COUNTER, "sg_upstream_restarts_total", NULL,
                        "upstream (re)starts after a failure");
static SG_METRIC_DEFINE(m_upcalls, SG_METRIC_HISTOGRAM, "sg_upstream_call_seconds", NULL,
                        "time from forwarding a request to its upstream response");

static void start_transport(sg_upstream_t *up);
static void send_list_page(sg_upstream_t *up, sg_str_t cursor);

const char *sg_upstream_state_name(sg_upstream_state_t s)
{
    static const char *const names[] = {
        "down", "starting", "listing", "ready", "failed", "stopped"
    };
    return (size_t)s < SG_ARRAY_LEN(names) ? names[s] : "?";
}

static void set_state(sg_upstream_t *up, sg_upstream_state_t s)
{
    if (up->state == s) {
        return;
    }
    SG_LOG_DEBUG(&up->log, "state %s -> %s", sg_upstream_state_name(up->state),
                 sg_upstream_state_name(s));
    up->state = s;
    if (up->hooks.on_state != NULL && !up->freeing) {
        up->hooks.on_state(up->hooks.data, up);
    }
}

/* ---- the table of calls in flight ---- */

static void link_call(sg_upstream_t *up, sg_upcall_t *c)
{
    c->_prev = NULL;
    c->_next = up->calls;
    if (up->calls != NULL) {
        up->calls->_prev = c;
    }
    up->calls = c;
    up->ncalls++;
}

static void unlink_call(sg_upcall_t *c)
{
    sg_upstream_t *up = c->_up;
    if (c->_prev != NULL) {
        c->_prev->_next = c->_next;
    } else {
        up->calls = c->_next;
    }
    if (c->_next != NULL) {
        c->_next->_prev = c->_prev;
    }
    up->ncalls--;
    sg_timer_stop(&c->_timer);
    free(c->_progress_token);
    c->_progress_token = NULL;
    c->_up = NULL;
}

static sg_upcall_t *find_call(sg_upstream_t *up, uint64_t id)
{
    if (up->internal_busy && up->internal._id == id) {
        return &up->internal;
    }
    for (sg_upcall_t *c = up->calls; c != NULL; c = c->_next) {
        if (c->_id == id) {
            return c;
        }
    }
    return NULL;
}

static void finish_call(sg_upcall_t *c, int status, sg_str_t response)
{
    sg_upstream_t *up = c->_up;
    if (c == &up->internal) {
        up->internal_busy = false;
        sg_timer_stop(&c->_timer);
    } else {
        sg_metric_observe_us(&m_upcalls, sg_clock_now_us() - c->_started_us);
        unlink_call(c);
    }
    c->ops->on_done(c, status, response);
}

static void fail_all(sg_upstream_t *up, int status)
{
    while (up->calls != NULL) {
        finish_call(up->calls, status, SG_STR_NULL);
    }
    if (up->internal_busy) {
        finish_call(&up->internal, status, SG_STR_NULL);
    }
    while (up->pending != NULL) {
        pending_request_t *p = up->pending;
        up->pending = p->next;
        free(p->orig_id);
        free(p);
    }
}

static void on_call_timeout(sg_timer_t *t)
{
    sg_upcall_t *c = SG_CONTAINER_OF(t, sg_upcall_t, _timer);
    sg_upstream_t *up = c->_up;
    if (c != &up->internal) {
        char params[64];
        snprintf(params, sizeof(params), "{\"requestId\":%" PRIu64 ",\"reason\":\"timeout\"}",
                 c->_id);
        (void)sg_upstream_notify(up, "notifications/cancelled", sg_str(params));
    }
    if (up->tr->ops->forget != NULL) {
        up->tr->ops->forget(up->tr, (void *)(uintptr_t)c->_id);
    }
    SG_LOG_WARN(&up->log, "request %" PRIu64 " timed out", c->_id);
    finish_call(c, SG_ETIMEDOUT, SG_STR_NULL);
}

/* ---- building and sending messages ---- */

/* params with _meta.progressToken replaced by token (raw); returns false when there is none. */
static bool splice_progress_token(sg_str_t params, const char *token, sg_buf_t *out, sg_str_t *orig)
{
    sg_str_t meta, tok;
    if (params.len == 0 || sg_json_object_get(params, "_meta", &meta) != SG_OK ||
        sg_json_object_get(meta, "progressToken", &tok) != SG_OK) {
        return false;
    }
    *orig = tok;
    sg_buf_append(out, params.ptr, (size_t)(tok.ptr - params.ptr));
    sg_buf_append_cstr(out, token);
    sg_buf_append(out, tok.ptr + tok.len, (size_t)(params.ptr + params.len - tok.ptr - tok.len));
    return true;
}

static int send_request(sg_upstream_t *up, sg_upcall_t *c, const char *method, sg_str_t params,
                        uint64_t timeout_ms)
{
    char id[24];
    snprintf(id, sizeof(id), "%" PRIu64, c->_id);
    sg_buf_t msg = SG_BUF_INIT;
    sg_buf_t spliced = SG_BUF_INIT;
    char token[32];
    sg_str_t orig;
    snprintf(token, sizeof(token), "\"sg%" PRIu64 "\"", c->_id);
    if (splice_progress_token(params, token, &spliced, &orig)) {
        c->_progress_token = sg_xstrdup_str(orig);
        params = sg_buf_str(&spliced);
    }
    sg_jsonrpc_write_request(&msg, sg_str(id), method, params);
    int rc = up->tr->ops->send(up->tr, sg_buf_str(&msg), (void *)(uintptr_t)c->_id);
    sg_buf_dispose(&msg);
    sg_buf_dispose(&spliced);
    if (rc == SG_OK) {
        sg_timer_start(up->loop, &c->_timer, timeout_ms, on_call_timeout);
    }
    return rc;
}

int sg_upstream_call(sg_upstream_t *up, sg_upcall_t *c, const char *method, sg_str_t params_raw,
                     uint64_t timeout_ms, const sg_upcall_ops_t *ops)
{
    if (up->state != SG_UPSTREAM_READY && up->state != SG_UPSTREAM_LISTING) {
        return SG_EUPSTREAM;
    }
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->_up = up;
    c->_id = ++up->next_id;
    c->_started_us = sg_clock_now_us();
    link_call(up, c);
    int rc = send_request(up, c, method, params_raw, timeout_ms);
    if (rc != SG_OK) {
        unlink_call(c);
        return SG_EUPSTREAM;
    }
    return SG_OK;
}

void sg_upstream_cancel(sg_upcall_t *c, const char *reason)
{
    sg_upstream_t *up = c->_up;
    if (up == NULL) {
        return;
    }
    sg_buf_t params = SG_BUF_INIT;
    sg_buf_printf(&params, "{\"requestId\":%" PRIu64, c->_id);
    if (reason != NULL) {
        sg_buf_append_cstr(&params, ",\"reason\":");
        sg_json_write_cstr(&params, reason);
    }
    sg_buf_append_char(&params, '}');
    (void)sg_upstream_notify(up, "notifications/cancelled", sg_buf_str(&params));
    sg_buf_dispose(&params);
    if (up->tr->ops->forget != NULL) {
        up->tr->ops->forget(up->tr, (void *)(uintptr_t)c->_id);
    }
    unlink_call(c);
}

int sg_upstream_notify(sg_upstream_t *up, const char *method, sg_str_t params_raw)
{
    if (up->state == SG_UPSTREAM_DOWN || up->state == SG_UPSTREAM_STOPPED ||
        up->state == SG_UPSTREAM_FAILED) {
        return SG_EUPSTREAM;
    }
    sg_buf_t msg = SG_BUF_INIT;
    sg_jsonrpc_write_notification(&msg, method, params_raw);
    int rc = up->tr->ops->send(up->tr, sg_buf_str(&msg), NULL);
    sg_buf_dispose(&msg);
    return rc;
}

static void send_raw(sg_upstream_t *up, sg_buf_t *msg)
{
    (void)up->tr->ops->send(up->tr, sg_buf_str(msg), NULL);
}

int sg_upstream_answer(sg_upstream_t *up, sg_str_t gw_id, sg_str_t body_raw, bool is_error)
{
    sg_buf_t idtext = SG_BUF_INIT;
    uint64_t n = 0;
    if (sg_json_string_decode(gw_id, &idtext) != SG_OK ||
        sscanf(idtext.data != NULL ? idtext.data : "", "sg-%" SCNu64, &n) != 1) {
        sg_buf_dispose(&idtext);
        return SG_ENOTFOUND;
    }
    sg_buf_dispose(&idtext);
    for (pending_request_t **pp = &up->pending; *pp != NULL; pp = &(*pp)->next) {
        pending_request_t *p = *pp;
        if (p->gw_n != n) {
            continue;
        }
        sg_buf_t msg = SG_BUF_INIT;
        sg_buf_printf(&msg, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"%s\":", p->orig_id,
                      is_error ? "error" : "result");
        sg_buf_append_str(&msg, body_raw);
        sg_buf_append_char(&msg, '}');
        send_raw(up, &msg);
        sg_buf_dispose(&msg);
        *pp = p->next;
        free(p->orig_id);
        free(p);
        return SG_OK;
    }
    return SG_ENOTFOUND;
}

/* ---- messages from the upstream ---- */

/* The call a message without an id of ours belongs to: its POST, or the only call in flight. */
static sg_upcall_t *owner_of(sg_upstream_t *up, void *origin)
{
    if (origin != NULL) {
        return find_call(up, (uint64_t)(uintptr_t)origin);
    }
    return up->ncalls == 1 ? up->calls : NULL;
}

static void reply_error(sg_upstream_t *up, sg_str_t id, int code, const char *message)
{
    sg_buf_t msg = SG_BUF_INIT;
    sg_jsonrpc_write_error(&msg, id, code, message, SG_STR_NULL);
    send_raw(up, &msg);
    sg_buf_dispose(&msg);
}

static void on_upstream_request(sg_upstream_t *up, const sg_jsonrpc_msg_t *m, sg_str_t text,
                                void *origin)
{
    if (sg_str_eq_cstr(m->method, "ping")) {
        sg_buf_t msg = SG_BUF_INIT;
        sg_jsonrpc_write_result(&msg, m->id, SG_STR_LIT("{}"));
        send_raw(up, &msg);
        sg_buf_dispose(&msg);
        return;
    }
    sg_upcall_t *c = owner_of(up, origin);
    if (c == NULL || c == &up->internal) {
        reply_error(up, m->id, -32601, "no agent request to route this to");
        return;
    }
    pending_request_t *p = sg_xcalloc(1, sizeof(*p));
    p->gw_n = ++gw_request_counter;
    p->orig_id = sg_xstrdup_str(m->id);
    p->next = up->pending;
    up->pending = p;
    sg_buf_t out = SG_BUF_INIT;
    sg_buf_append(&out, text.ptr, (size_t)(m->id.ptr - text.ptr));
    sg_buf_printf(&out, "\"sg-%" PRIu64 "\"", p->gw_n);
    sg_buf_append(&out, m->id.ptr + m->id.len,
                  (size_t)(text.ptr + text.len - m->id.ptr - m->id.len));
    c->ops->on_interim(c, sg_buf_str(&out), true);
    sg_buf_dispose(&out);
}

static void on_progress(sg_upstream_t *up, const sg_jsonrpc_msg_t *m, sg_str_t text)
{
    sg_str_t tok;
    sg_buf_t dec = SG_BUF_INIT;
    uint64_t id = 0;
    if (sg_json_object_get(m->params, "progressToken", &tok) != SG_OK ||
        sg_json_string_decode(tok, &dec) != SG_OK ||
        sscanf(dec.data != NULL ? dec.data : "", "sg%" SCNu64, &id) != 1) {
        sg_buf_dispose(&dec);
        return;
    }
    sg_buf_dispose(&dec);
    sg_upcall_t *c = find_call(up, id);
    if (c == NULL || c == &up->internal || c->_progress_token == NULL) {
        return;
    }
    sg_buf_t out = SG_BUF_INIT;
    sg_buf_append(&out, text.ptr, (size_t)(tok.ptr - text.ptr));
    sg_buf_append_cstr(&out, c->_progress_token);
    sg_buf_append(&out, tok.ptr + tok.len, (size_t)(text.ptr + text.len - tok.ptr - tok.len));
    c->ops->on_interim(c, sg_buf_str(&out), false);
    sg_buf_dispose(&out);
}

static void on_upstream_notification(sg_upstream_t *up, const sg_jsonrpc_msg_t *m, sg_str_t text,
                                     void *origin)
{
    if (sg_str_eq_cstr(m->method, "notifications/progress")) {
        on_progress(up, m, text);
    } else if (sg_str_eq_cstr(m->method, "notifications/tools/list_changed")) {
        if (up->state == SG_UPSTREAM_READY && !up->internal_busy) {
            set_state(up, SG_UPSTREAM_LISTING);
            send_list_page(up, SG_STR_NULL);
        } else {
            up->relist_wanted = true;
        }
    } else if (!sg_str_eq_cstr(m->method, "notifications/cancelled") &&
               !sg_str_has_prefix(m->method, "notifications/resources/list_changed") &&
               !sg_str_has_prefix(m->method, "notifications/prompts/list_changed")) {
        /* log messages, resource updates and the like go to the call they belong to, if any */
        sg_upcall_t *c = owner_of(up, origin);
        if (c != NULL && c != &up->internal) {
            c->ops->on_interim(c, text, false);
        }
    }
}

static void on_message(void *owner, sg_str_t json, void *origin)
{
    sg_upstream_t *up = owner;
    sg_jsonrpc_msg_t m;
    sg_buf_t scratch = SG_BUF_INIT;
    int64_t id;
    if (json.len > MAX_MESSAGE ||
        sg_json_validate(json.ptr, json.len, SG_JSON_MAX_DEPTH, NULL) != SG_OK ||
        sg_jsonrpc_parse_one(json, &m, &scratch, NULL) != SG_OK) {
        SG_LOG_WARN(&up->log, "ignoring a malformed message (%zu bytes)", json.len);
        sg_buf_dispose(&scratch);
        return;
    }
    switch (m.kind) {
    case SG_JSONRPC_RESPONSE:
    case SG_JSONRPC_ERROR: {
        sg_upcall_t *c = NULL;
        if (sg_json_int64(m.id, &id) == SG_OK && id > 0) {
            c = find_call(up, (uint64_t)id);
        }
        if (c != NULL) {
            finish_call(c, SG_OK, json);
        }
        break;
    }
    case SG_JSONRPC_REQUEST:
        on_upstream_request(up, &m, json, origin);
        break;
    case SG_JSONRPC_NOTIFICATION:
        on_upstream_notification(up, &m, json, origin);
        break;
    default:
        break;
    }
    sg_buf_dispose(&scratch);
}

static void on_origin_done(void *owner, void *origin, int status)
{
    sg_upstream_t *up = owner;
    sg_upcall_t *c = find_call(up, (uint64_t)(uintptr_t)origin);
    if (c != NULL) {
        /* the POST failed, or its answer ended without the response to our request */
        finish_call(c, status == SG_ETIMEDOUT ? SG_ETIMEDOUT : SG_EUPSTREAM, SG_STR_NULL);
    }
    if (status == SG_ESESSION) {
        SG_LOG_WARN(&up->log, "upstream forgot our session: restarting");
        up->tr->ops->stop(up->tr);
    }
}

/* ---- lifecycle: initialize, list, restart ---- */

static void internal_start(sg_upstream_t *up, const char *method, sg_str_t params,
                           const sg_upcall_ops_t *ops, uint64_t timeout_ms)
{
    sg_upcall_t *c = &up->internal;
    memset(c, 0, sizeof(*c));
    c->ops = ops;
    c->_up = up;
    c->_id = ++up->next_id;
    up->internal_busy = true;
    if (send_request(up, c, method, params, timeout_ms) != SG_OK) {
        up->internal_busy = false;
        up->tr->ops->stop(up->tr);
    }
}

static void free_tools(sg_uptool_t *tools, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(tools[i].name);
        free(tools[i].raw);
    }
    free(tools);
}

static bool tools_equal(const sg_uptool_t *a, size_t na, const sg_uptool_t *b, size_t nb)
{
    if (na != nb) {
        return false;
    }
    for (size_t i = 0; i < na; i++) {
        if (a[i].raw_len != b[i].raw_len || memcmp(a[i].raw, b[i].raw, a[i].raw_len) != 0) {
            return false;
        }
    }
    return true;
}

static void listing_complete(sg_upstream_t *up)
{
    bool changed = !tools_equal(up->tools, up->ntools, up->listing, up->nlisting);
    free_tools(up->tools, up->ntools);
    up->tools = up->listing;
    up->ntools = up->nlisting;
    up->listing = NULL;
    up->nlisting = 0;
    up->fails = 0;
    up->backoff_ms = BACKOFF_MIN_MS;
    SG_LOG_INFO(&up->log, "ready with %zu tools", up->ntools);
    set_state(up, SG_UPSTREAM_READY);
    if (changed && up->hooks.on_tools_changed != NULL) {
        up->hooks.on_tools_changed(up->hooks.data, up);
    }
    if (up->relist_wanted) {
        up->relist_wanted = false;
        set_state(up, SG_UPSTREAM_LISTING);
        send_list_page(up, SG_STR_NULL);
    }
}

static int collect_tools(sg_upstream_t *up, sg_str_t tools)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(tools);
    sg_str_t item, name;
    int rc;
    while ((rc = sg_json_array_next(&it, &item)) == 1) {
        if (up->nlisting == MAX_TOOLS || sg_json_object_get(item, "name", &name) != SG_OK ||
            sg_json_type(name) != SG_JSON_STRING) {
            continue;
        }
        sg_buf_t n = SG_BUF_INIT;
        if (sg_json_string_decode(name, &n) != SG_OK || n.len == 0 || n.len > 128) {
            sg_buf_dispose(&n);
            continue;
        }
        up->listing = sg_xrealloc(up->listing, (up->nlisting + 1) * sizeof(*up->listing));
        sg_uptool_t *t = &up->listing[up->nlisting++];
        t->name = sg_buf_steal(&n, NULL);
        t->raw = sg_xmemdup(item.ptr, item.len);
        t->raw_len = item.len;
    }
    return rc;
}

static void on_list_done(sg_upcall_t *c, int status, sg_str_t response)
{
    sg_upstream_t *up = SG_CONTAINER_OF(c, sg_upstream_t, internal);
    if (up->freeing) {
        return;
    }
    sg_str_t result, tools, cursor;
    sg_jsonrpc_msg_t m;
    sg_buf_t scratch = SG_BUF_INIT;
    if (status != SG_OK || sg_jsonrpc_parse_one(response, &m, &scratch, NULL) != SG_OK ||
        m.kind != SG_JSONRPC_RESPONSE) {
        sg_buf_dispose(&scratch);
        SG_LOG_WARN(&up->log, "tools/list failed: %s", sg_err_message(status));
        free_tools(up->listing, up->nlisting);
        up->listing = NULL;
        up->nlisting = 0;
        up->tr->ops->stop(up->tr);
        return;
    }
    result = m.result;
    sg_buf_dispose(&scratch);
    if (sg_json_object_get(result, "tools", &tools) == SG_OK) {
        (void)collect_tools(up, tools);
    }
    if (sg_json_object_get(result, "nextCursor", &cursor) == SG_OK &&
        sg_json_type(cursor) == SG_JSON_STRING && ++up->pages < MAX_PAGES) {
        send_list_page(up, cursor);
        return;
    }
    listing_complete(up);
}

static const sg_upcall_ops_t list_ops = { .on_interim = NULL, .on_done = on_list_done };

static void send_list_page(sg_upstream_t *up, sg_str_t cursor)
{
    sg_buf_t params = SG_BUF_INIT;
    if (cursor.len == 0) {
        up->pages = 0;
        free_tools(up->listing, up->nlisting);
        up->listing = NULL;
        up->nlisting = 0;
        sg_buf_append_cstr(&params, "{}");
    } else {
        sg_buf_append_cstr(&params, "{\"cursor\":");
        sg_buf_append_str(&params, cursor);
        sg_buf_append_char(&params, '}');
    }
    internal_start(up, "tools/list", sg_buf_str(&params), &list_ops, LIST_TIMEOUT_MS);
    sg_buf_dispose(&params);
}

static void on_init_done(sg_upcall_t *c, int status, sg_str_t response)
{
    sg_upstream_t *up = SG_CONTAINER_OF(c, sg_upstream_t, internal);
    if (up->freeing) {
        return;
    }
    sg_jsonrpc_msg_t m;
    sg_buf_t scratch = SG_BUF_INIT;
    sg_str_t caps, version;
    if (status != SG_OK || sg_jsonrpc_parse_one(response, &m, &scratch, NULL) != SG_OK ||
        m.kind != SG_JSONRPC_RESPONSE) {
        sg_buf_dispose(&scratch);
        SG_LOG_WARN(&up->log, "initialize failed: %s",
                    sg_err_message(status != SG_OK ? status : SG_EUPSTREAM));
        up->tr->ops->stop(up->tr);
        return;
    }
    free(up->capabilities);
    up->capabilities = sg_json_object_get(m.result, "capabilities", &caps) == SG_OK
                               ? sg_xstrdup_str(caps)
                               : sg_xstrdup("{}");
    if (up->cfg->kind == SG_UPSTREAM_HTTP &&
        sg_json_object_get(m.result, "protocolVersion", &version) == SG_OK) {
        sg_buf_t v = SG_BUF_INIT;
        if (sg_json_string_decode(version, &v) == SG_OK && v.len < 16) {
            sg_transport_http_set_version(up->tr, v.data);
        }
        sg_buf_dispose(&v);
    }
    sg_buf_dispose(&scratch);
    (void)sg_upstream_notify(up, "notifications/initialized", SG_STR_NULL);
    set_state(up, SG_UPSTREAM_LISTING);
    send_list_page(up, SG_STR_NULL);
}

static const sg_upcall_ops_t init_ops = { .on_interim = NULL, .on_done = on_init_done };

static void on_ready(void *owner)
{
    sg_upstream_t *up = owner;
    static const char params[] =
            "{\"protocolVersion\":\"" PROTOCOL_VERSION "\","
            "\"capabilities\":{\"sampling\":{},\"elicitation\":{}},"
            "\"clientInfo\":{\"name\":\"sentinel-gate\",\"version\":\"0.1.0\"}}";
    internal_start(up, "initialize", SG_STR_LIT(params), &init_ops, INIT_TIMEOUT_MS);
}

static void on_restart_timer(sg_timer_t *t)
{
    sg_upstream_t *up = SG_CONTAINER_OF(t, sg_upstream_t, restart_timer);
    sg_metric_add(&m_restarts, 1);
    start_transport(up);
}

static void on_down(void *owner, const char *reason)
{
    sg_upstream_t *up = owner;
    fail_all(up, SG_EUPSTREAM);
    if (up->freeing) {
        return;
    }
    bool was_ready = up->state == SG_UPSTREAM_READY;
    up->fails = was_ready ? 1 : up->fails + 1;
    if (was_ready) {
        up->backoff_ms = BACKOFF_MIN_MS;
    }
    SG_LOG_WARN(&up->log, "down (%s); restarting in %" PRIu64 " ms", reason, up->backoff_ms);
    set_state(up, up->fails >= MAX_FAILS ? SG_UPSTREAM_FAILED : SG_UPSTREAM_DOWN);
    sg_timer_start(up->loop, &up->restart_timer, up->backoff_ms, on_restart_timer);
    up->backoff_ms = SG_MIN(up->backoff_ms * 2, BACKOFF_MAX_MS);
}

static const sg_transport_events_t events = {
    .on_ready = on_ready,
    .on_message = on_message,
    .on_origin_done = on_origin_done,
    .on_down = on_down,
};

static void start_transport(sg_upstream_t *up)
{
    if (up->state != SG_UPSTREAM_FAILED) {
        set_state(up, SG_UPSTREAM_STARTING);
    }
    if (up->tr->ops->start(up->tr) != SG_OK) {
        on_down(up, "could not start");
    }
}

static sg_transport_t *make_transport(sg_upstream_t *up, h2o_context_t *http_ctx)
{
    const sg_upstream_cfg_t *cfg = up->cfg;
    if (cfg->kind == SG_UPSTREAM_HTTP) {
        sg_http_spec_t spec = { .url = cfg->url,
                                .headers = (const char *const *)cfg->headers,
                                .nheaders = cfg->nheaders,
                                .io_timeout_ms = cfg->timeout_ms };
        return http_ctx != NULL
                       ? sg_transport_http_new(up->loop, http_ctx, &spec, &events, up, up->name)
                       : NULL;
    }
    sg_stdio_spec_t spec = { .command = cfg->command,
                             .args = (const char *const *)cfg->args,
                             .nargs = cfg->nargs,
                             .env = (const char *const *)cfg->env,
                             .nenv = cfg->nenv,
                             .cwd = cfg->cwd };
    return sg_transport_stdio_new(up->loop, &spec, &events, up, up->name);
}

sg_upstream_t *sg_upstream_new(sg_loop_t *loop, h2o_context_t *http_ctx, sg_tenant_t *snap,
                               const sg_upstream_cfg_t *cfg, const sg_upstream_hooks_t *hooks)
{
    sg_metrics_register(&m_restarts);
    sg_metrics_register(&m_upcalls);
    sg_upstream_t *up = sg_xcalloc(1, sizeof(*up));
    up->loop = loop;
    up->snap = sg_tenant_ref(snap);
    up->cfg = cfg;
    up->hooks = *hooks;
    up->backoff_ms = BACKOFF_MIN_MS;
    up->capabilities = sg_xstrdup("{}");
    snprintf(up->name, sizeof(up->name), "%s/%s", snap->name, cfg->name);
    up->log = (sg_log_ctx_t){ .component = "upstream", .tenant = snap->name, .tool = up->name };
    up->tr = make_transport(up, http_ctx);
    if (up->tr == NULL) {
        SG_LOG_ERROR(&up->log, "cannot create the transport");
        up->state = SG_UPSTREAM_FAILED;
        return up;
    }
    start_transport(up);
    return up;
}

void sg_upstream_free(sg_upstream_t *up)
{
    if (up == NULL) {
        return;
    }
    up->freeing = true;
    sg_timer_stop(&up->restart_timer);
    fail_all(up, SG_EUPSTREAM);
    if (up->tr != NULL) {
        up->tr->ops->free(up->tr);
    }
    free_tools(up->tools, up->ntools);
    free_tools(up->listing, up->nlisting);
    free(up->capabilities);
    sg_tenant_unref(up->snap);
    free(up);
}

const sg_upstream_cfg_t *sg_upstream_cfg(const sg_upstream_t *up)
{
    return up->cfg;
}

sg_upstream_state_t sg_upstream_state(const sg_upstream_t *up)
{
    return up->state;
}

const sg_uptool_t *sg_upstream_tools(const sg_upstream_t *up, size_t *n)
{
    *n = up->ntools;
    return up->tools;
}

sg_str_t sg_upstream_capabilities(const sg_upstream_t *up)
{
    return sg_str(up->capabilities);
}

bool sg_upstream_has_capability(const sg_upstream_t *up, const char *name)
{
    sg_str_t v;
    return sg_json_object_get(sg_str(up->capabilities), name, &v) == SG_OK &&
           sg_json_type(v) == SG_JSON_OBJECT;
}
