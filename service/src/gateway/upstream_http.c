/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Streamable HTTP upstream transport (MCP 2025-03-26 to 2025-11-25) on h2o 2.2.5's
 * http1client. Every send() is one POST; the answer is 202, one application/json body, or a
 * text/event-stream whose events are the messages. An SSE stream that ends before the
 * response, after the server gave event ids, is resumed with GET + Last-Event-ID (2025-11-25
 * polling).
 *
 * Connections are kept alive and reused, through one h2o_socketpool_t per transport (h2o's
 * pool rather than our own: 2.2.5's http1client can only be handed an existing connection
 * through that pool, and writing our own HTTP/1.1 client is more code to get wrong):
 *  - HTTP/1.1, one request per connection at a time: N POSTs in flight use N connections;
 *    when they end, their connections wait in the pool, most of POOL_IDLE_MS (1.5 s, under
 *    the 2 s keep-alive of gunicorn and the 5 s of Node, uvicorn and Apache). h2o closes
 *    those older at its next look (once a second) and checks every pooled connection with
 *    recv(MSG_PEEK) before reuse, so one the server closed a while ago is never used.
 *  - h2o returns a connection to the pool only when its answer ended cleanly: HTTP/1.1,
 *    no "Connection: close", a Content-Length fully read or the last chunk seen (also the end
 *    of an SSE stream), no bytes past the end; otherwise, and whenever we stop reading an
 *    answer (forget, stop, free, too large, timeout), it closes the connection. Answers we do
 *    not use (202, errors, DELETE) are read to their end and dropped, up to MAX_DISCARD
 *    bytes, so their connection can be kept.
 *  - At most POOL_MAX_IDLE idle connections per upstream: a connection whose answer ends
 *    while the pool is full is closed instead (h2o 2.2.5 ignores its capacity argument).
 *  - TLS: h2o_socket_export/import move the SSL object with the descriptor, so a pooled TLS
 *    connection keeps its session and is reused without a new handshake.
 *  - The race: the server may close an idle connection just as we send on it. A request
 *    that fails on a REUSED connection at write or first-read time, with no byte of an answer
 *    received, or that is answered 408 there (the server gave up on the idle connection), is
 *    sent once more on a NEW connection (not from the pool, not kept after; never after a
 *    timeout, never after a failure on a new connection). Caveat: this is not
 *    at-most-once. A server that read the request, processed it and then closed without a
 *    byte of answer sees it twice. Servers close idle connections between requests, not
 *    after reading one, so that takes a server that crashes or drops answers mid-request.
 *  - Lifetime: a pool socket reports its close to the pool (on_close.data), and h2o closes a
 *    TLS socket only after writing close_notify, possibly after our free(). Our SSL_CTX has
 *    quiet shutdown (no close_notify, as most HTTP clients do; framing is explicit), so
 *    every close is synchronous: once free() has cancelled its clients, no socket refers to
 *    the pool, and h2o_socketpool_dispose closes the idle ones and its interval timer.
 *  - h2o 2.2.5 prints one unstructured "[WARN] detected close by upstream ..." line to
 *    stderr, once per process, the first time its check finds a pooled connection dead.
 *
 * Invariants:
 *  - h2o callbacks are thin: they parse, queue messages on their request and arm a 0 ms
 *    timer. The owner is called only from our timers, never inside an h2o callback nor
 *    inside a call into the transport, so forget/stop/free may cancel h2o clients at once.
 *    (h2o hands over a pooled connection synchronously, inside req_start: on_connect then
 *    runs inside send(), and only builds the request head.)
 *  - A request with a non-NULL origin reports on_origin_done exactly once unless it is
 *    forgotten; stop() turns those still running into SG_ECLOSED, reported before on_down.
 *  - free() during an event only marks the transport dead; the memory goes when the event
 *    returns (t->in_event).
 *  - TLS: one SSL_CTX per transport whose X509_VERIFY_PARAM carries the host name or IP,
 *    so OpenSSL itself rejects a mismatch (h2o 2.2.5 skips its check under TLS 1.3).
 * Called by gateway/upstream.c through sg_transport_ops_t.
 */
#include <arpa/inet.h>

#include <stdio.h>
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "core/sse.h"
#include "gateway/transport.h"

#define MAX_BODY              SG_SSE_MAX_DATA /* one JSON answer, as one SSE event */
#define MAX_TOKEN             1024            /* session ids and event ids */
#define MAX_VERSION           64
#define MAX_RESUMES           100  /* safety net; the owner's call timeout comes first */
#define DEFAULT_RETRY_MS      1000 /* SSE reconnection delay when the server sent none */
#define DEFAULT_IO_TIMEOUT_MS 30000
#define POOL_IDLE_MS          1500               /* reuse a connection idle for less than this */
#define POOL_MAX_IDLE         256                /* idle connections kept per upstream */
#define MAX_DISCARD           ((size_t)64 << 10) /* an unused answer read to keep its connection */

typedef enum sg_uh_state {
    SG_UH_IDLE = 0, /* not started, or stopped (on_down delivered) */
    SG_UH_READY,
    SG_UH_STOPPING, /* DELETE in flight or on_down pending */
} sg_uh_state_t;

typedef enum sg_uh_kind {
    SG_UH_POST = 0,
    SG_UH_RESUME, /* GET with Last-Event-ID continuing a POST's SSE stream */
    SG_UH_DELETE,
} sg_uh_kind_t;

typedef enum sg_uh_req_state {
    SG_UH_REQ_ACTIVE = 0, /* connecting, reading, or waiting to resume */
    SG_UH_REQ_FINISHED,   /* outcome recorded, delivery pending */
    SG_UH_REQ_ABORTED,    /* cut by stop(): reported SG_ECLOSED before on_down */
    SG_UH_REQ_DEAD,       /* nothing more to report: destroyed when not busy */
} sg_uh_req_state_t;

typedef enum sg_uh_body {
    SG_UH_BODY_NONE = 0,
    SG_UH_BODY_JSON,
    SG_UH_BODY_SSE,
    SG_UH_BODY_DISCARD, /* the outcome is known (settled); the body is read and dropped */
} sg_uh_body_t;

typedef struct sg_uh_msg {
    struct sg_uh_msg *next;
    char *data; /* owned, NUL-terminated */
    size_t len;
} sg_uh_msg_t;

typedef struct sg_uh sg_uh_t;

typedef struct sg_uh_req {
    h2o_linklist_t link; /* in t->reqs */
    sg_uh_t *t;
    h2o_http1client_t *client; /* the running h2o client; NULL between connections */
    sg_uh_kind_t kind;
    sg_uh_req_state_t state;
    void *origin;
    char *body; /* the JSON text to POST (owned) */
    size_t body_len;
    sg_buf_t head; /* request head, rebuilt for every connection */
    h2o_iovec_t reqbufs[2];
    uint64_t session_gen; /* t->session_gen when the head was built */
    bool sent_session;
    sg_uh_body_t body_kind;
    sg_buf_t json; /* an application/json answer being read */
    sg_sse_t sse;
    bool saw_response; /* a JSON-RPC response arrived on this request's stream */
    bool reused;       /* the current connection came from the pool */
    bool retried;      /* the current HTTP request was already sent again */
    unsigned resumes;
    int settled;       /* the outcome of a SG_UH_BODY_DISCARD answer */
    size_t discarded;  /* bytes of that answer dropped so far */
    int result;        /* valid in FINISHED */
    sg_uh_msg_t *msgs; /* received, not yet delivered */
    sg_uh_msg_t **msgs_tail;
    sg_timer_t deliver; /* 0 ms: delivers msgs and the outcome */
    sg_timer_t restart; /* the SSE retry delay, or 0 ms before sending again */
} sg_uh_req_t;

struct sg_uh {
    sg_transport_t super; /* first: the common transport header */
    char *url;            /* owned; the slices of `parsed` point into it */
    h2o_url_t parsed;
    char *host; /* NUL-terminated copy of parsed.host */
    uint16_t port;
    bool is_ssl;
    char **headers; /* "Name: value" copies; values are credentials, never logged */
    size_t nheaders;
    h2o_http1client_ctx_t client_ctx; /* copy of the context's, with our timeout and TLS */
    SSL_CTX *ssl_ctx;
    h2o_socketpool_t pool; /* connections to the upstream; valid when has_pool */
    bool has_pool;
    char *session_id; /* Mcp-Session-Id given by the upstream, or NULL */
    uint64_t session_gen;
    char *version; /* MCP-Protocol-Version, or NULL */
    sg_uh_state_t state;
    h2o_linklist_t reqs;
    sg_timer_t ready_timer;
    sg_timer_t stop_timer;
    sg_uh_req_t *busy; /* the request whose event is being delivered */
    bool in_event;
    bool dead; /* freed during an event */
    char *log_name;
    sg_log_ctx_t log;
};

static const sg_transport_ops_t http_ops;

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static size_t skip_ws(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r' || s[i] == '\n')) {
        i++;
    }
    return i;
}

/* Index of the closing quote of the string whose opening quote is at i (n if unterminated). */
static size_t string_end(const char *s, size_t n, size_t i)
{
    for (i++; i < n; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i;
        }
    }
    return n;
}

/*
 * True when the message (or a batch) holds a JSON-RPC response: an object with a top-level
 * "result" or "error" member. A cheap scan used only to decide whether an SSE stream that
 * ended early must be resumed; the owner validates every message itself.
 */
static bool is_response(const char *s, size_t n)
{
    size_t i = skip_ws(s, n, 0);
    if (i == n || (s[i] != '{' && s[i] != '[')) {
        return false;
    }
    int key_depth = s[i] == '{' ? 1 : 2;
    bool is_obj[3] = { false, false, false };
    int depth = 0;
    for (; i < n; i++) {
        char c = s[i];
        if (c == '{' || c == '[') {
            depth++;
            if (depth <= 2) {
                is_obj[depth] = c == '{';
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == '"') {
            size_t start = i + 1;
            i = string_end(s, n, i);
            size_t after = skip_ws(s, n, i + 1);
            if (depth == key_depth && is_obj[depth] && after < n && s[after] == ':') {
                sg_str_t key = sg_str_n(s + start, i - start);
                if (sg_str_eq_cstr(key, "result") || sg_str_eq_cstr(key, "error")) {
                    return true;
                }
            }
        }
    }
    return false;
}

/* Session ids, event ids, versions: visible ASCII only (MCP §3.4), bounded. */
static bool is_visible_token(sg_str_t s, size_t max)
{
    if (s.len == 0 || s.len > max) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        if ((unsigned char)s.ptr[i] < 0x21 || (unsigned char)s.ptr[i] > 0x7e) {
            return false;
        }
    }
    return true;
}

static bool is_timeout(const char *errstr)
{
    return strcmp(errstr, "I/O timeout") == 0 || strcmp(errstr, "connection timeout") == 0;
}

static const char *kind_name(sg_uh_kind_t kind)
{
    static const char *const names[] = { "POST", "GET", "DELETE" };
    return names[kind];
}

/* ------------------------------------------------------------------------ */
/* Connection pool                                                           */
/* ------------------------------------------------------------------------ */

static void pool_init(sg_uh_t *t)
{
    h2o_socketpool_init_by_hostport(&t->pool, h2o_iovec_init(t->host, strlen(t->host)), t->port,
                                    t->is_ssl, POOL_MAX_IDLE);
    h2o_socketpool_set_timeout(&t->pool, sg_loop_h2o(t->super.loop), POOL_IDLE_MS);
    t->has_pool = true;
}

/*
 * Closes the idle connections and h2o's interval timer. Called once no client runs: every
 * other socket of the pool is closed by then, since closes are synchronous (quiet TLS
 * shutdown), and none can report to the pool's memory later.
 */
static void pool_dispose(sg_uh_t *t)
{
    if (t->has_pool) {
        h2o_socketpool_dispose(&t->pool);
        t->has_pool = false;
    }
}

/*
 * True when a connection whose answer ends now would be one idle connection too many.
 * h2o's count of the pool's sockets never undercounts (2.2.5 forgets to uncount a few), so
 * under POOL_MAX_IDLE + 1 (the ending one included) it settles the question cheaply;
 * otherwise the idle list is counted, up to POOL_MAX_IDLE.
 */
static bool pool_is_full(const sg_uh_t *t)
{
    if (t->pool._shared.count <= POOL_MAX_IDLE) {
        return false;
    }
    size_t idle = 0;
    const h2o_linklist_t *anchor = &t->pool._shared.sockets;
    for (const h2o_linklist_t *n = anchor->next; n != anchor && idle < POOL_MAX_IDLE; n = n->next) {
        idle++;
    }
    return idle >= POOL_MAX_IDLE;
}

/*
 * The answer on client's connection ended cleanly (inside an h2o callback, before h2o
 * returns the connection to the pool): close it instead when the pool is full.
 */
static void answer_complete(sg_uh_req_t *r, h2o_http1client_t *client)
{
    if (client->sockpool.pool != NULL && client->sock != NULL && pool_is_full(r->t)) {
        h2o_socket_close(h2o_http1client_steal_socket(client));
    }
}

/* ------------------------------------------------------------------------ */
/* Requests                                                                  */
/* ------------------------------------------------------------------------ */

static void on_deliver(sg_timer_t *tm);
static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head);

static sg_uh_req_t *req_new(sg_uh_t *t, sg_uh_kind_t kind, sg_str_t body, void *origin)
{
    sg_uh_req_t *r = sg_xcalloc(1, sizeof(*r));
    r->t = t;
    r->kind = kind;
    r->origin = origin;
    if (body.len != 0) {
        r->body = sg_xmemdup(body.ptr, body.len);
        r->body_len = body.len;
    }
    r->msgs_tail = &r->msgs;
    h2o_linklist_insert(&t->reqs, &r->link);
    return r;
}

static void req_drop_msgs(sg_uh_req_t *r)
{
    while (r->msgs != NULL) {
        sg_uh_msg_t *m = r->msgs;
        r->msgs = m->next;
        free(m->data);
        free(m);
    }
    r->msgs_tail = &r->msgs;
}

/* Stops all activity of r (never called from inside r's own h2o callbacks). */
static void req_halt(sg_uh_req_t *r)
{
    if (r->client != NULL) {
        h2o_http1client_cancel(r->client);
        r->client = NULL;
    }
    sg_timer_stop(&r->deliver);
    sg_timer_stop(&r->restart);
    req_drop_msgs(r);
}

static void req_destroy(sg_uh_req_t *r)
{
    req_halt(r);
    h2o_linklist_unlink(&r->link);
    free(r->body);
    sg_buf_dispose(&r->head);
    sg_buf_dispose(&r->json);
    sg_sse_dispose(&r->sse);
    free(r);
}

/*
 * Sends r's HTTP request on a pooled connection (an idle one, handed over at once, or a new
 * one) or, with pooled false, on a new connection of its own. h2o calls on_connect, possibly
 * at once (pooled, or an error: both only record).
 */
static void req_connect(sg_uh_req_t *r, bool pooled)
{
    sg_uh_t *t = r->t;
    r->body_kind = SG_UH_BODY_NONE;
    r->discarded = 0;
    sg_buf_reset(&r->json);
    if (pooled) {
        h2o_http1client_connect_with_pool(&r->client, r, &t->client_ctx, &t->pool, on_connect);
    } else {
        h2o_http1client_connect(&r->client, r, &t->client_ctx,
                                h2o_iovec_init(t->host, strlen(t->host)), t->port, t->is_ssl,
                                on_connect);
    }
    /* only a connection taken from the pool is there already */
    r->reused = pooled && r->client != NULL && r->client->sock != NULL;
}

/* Starts a new HTTP request of r (its first, or an SSE resumption). */
static void req_start(sg_uh_req_t *r)
{
    r->retried = false;
    req_connect(r, true);
}

/* Records the outcome (from inside an h2o callback, which then lets h2o close the client). */
static void req_finish(sg_uh_req_t *r, int status)
{
    SG_BUG_ON(r->state != SG_UH_REQ_ACTIVE);
    r->client = NULL;
    r->state = SG_UH_REQ_FINISHED;
    r->result = status;
    sg_timer_start(r->t->super.loop, &r->deliver, 0, on_deliver);
}

static void req_fail(sg_uh_req_t *r, const char *errstr)
{
    int status = is_timeout(errstr) ? SG_ETIMEDOUT : SG_EUPSTREAM;
    SG_LOG_WARN(&r->t->log, "%s failed: %s", kind_name(r->kind), errstr);
    req_finish(r, status);
}

static void on_send_again(sg_timer_t *tm)
{
    req_connect(SG_CONTAINER_OF(tm, sg_uh_req_t, restart), false);
}

/*
 * r failed before its answer began (inside on_head, errstr set), or was answered 408. True
 * when it is sent once more, on a new connection: its connection came from the pool, and
 * either no byte of an answer arrived and the failure is an I/O error (the server closed
 * the idle connection as we sent), not a timeout (a slow server has the request), or the
 * answer is 408 (the server gave up waiting on the idle connection before our request).
 */
static bool req_send_again(sg_uh_req_t *r, h2o_http1client_t *client, const char *errstr)
{
    if (!r->reused || r->retried) {
        return false;
    }
    if (errstr != NULL &&
        (is_timeout(errstr) || client->sock == NULL || client->sock->input->size != 0)) {
        return false;
    }
    SG_LOG_DEBUG(&r->t->log, "%s on a kept-alive connection failed (%s); sending it again",
                 kind_name(r->kind), errstr != NULL ? errstr : "408");
    r->client = NULL;
    r->retried = true;
    r->reused = false;
    sg_timer_start(r->t->super.loop, &r->restart, 0, on_send_again);
    return true;
}

static void req_queue_msg(sg_uh_req_t *r, char *data, size_t len)
{
    if (is_response(data, len)) {
        r->saw_response = true;
    }
    sg_uh_msg_t *m = sg_xmalloc(sizeof(*m));
    m->next = NULL;
    m->data = data;
    m->len = len;
    *r->msgs_tail = m;
    r->msgs_tail = &m->next;
    if (!sg_timer_is_active(&r->deliver)) {
        sg_timer_start(r->t->super.loop, &r->deliver, 0, on_deliver);
    }
}

static void on_sse_event(void *arg, char *data, size_t len)
{
    req_queue_msg(arg, data, len);
}

static void build_head(sg_uh_req_t *r)
{
    sg_uh_t *t = r->t;
    sg_buf_t *b = &r->head;
    sg_buf_reset(b);
    sg_buf_printf(b, "%s %.*s HTTP/1.1\r\nHost: %.*s\r\n", kind_name(r->kind),
                  (int)t->parsed.path.len, t->parsed.path.base, (int)t->parsed.authority.len,
                  t->parsed.authority.base);
    if (r->kind == SG_UH_POST) {
        sg_buf_printf(b,
                      "Content-Type: application/json\r\n"
                      "Accept: application/json, text/event-stream\r\n"
                      "Content-Length: %zu\r\n",
                      r->body_len);
    } else if (r->kind == SG_UH_RESUME) {
        sg_buf_printf(b, "Accept: text/event-stream\r\nLast-Event-ID: %s\r\n", r->sse.last_id);
    }
    r->sent_session = t->session_id != NULL;
    r->session_gen = t->session_gen;
    if (t->session_id != NULL) {
        sg_buf_printf(b, "Mcp-Session-Id: %s\r\n", t->session_id);
    }
    if (t->version != NULL) {
        sg_buf_printf(b, "MCP-Protocol-Version: %s\r\n", t->version);
    }
    for (size_t i = 0; i < t->nheaders; i++) {
        sg_buf_printf(b, "%s\r\n", t->headers[i]);
    }
    sg_buf_append_cstr(b, "\r\n");
}

/* ------------------------------------------------------------------------ */
/* h2o client callbacks (thin: parse, queue, record; never call the owner)  */
/* ------------------------------------------------------------------------ */

static int on_body(h2o_http1client_t *client, const char *errstr);
static void body_done(sg_uh_req_t *r);

/* Replaces the session id (takes ownership of id, which may be NULL). */
static void set_session(sg_uh_t *t, char *id)
{
    free(t->session_id);
    t->session_id = id;
    t->session_gen++;
}

static sg_str_t find_header(const h2o_header_t *headers, size_t n, const char *lower_name)
{
    for (size_t i = 0; i < n; i++) {
        if (h2o_memis(headers[i].name->base, headers[i].name->len, lower_name,
                      strlen(lower_name))) {
            return sg_str_n(headers[i].value.base, headers[i].value.len);
        }
    }
    return SG_STR_NULL;
}

/*
 * True when h2o may keep the connection after this answer's body (h2o 2.2.5's rule:
 * HTTP/1.1, a Connection header only with keep-alive, a length or chunked framing).
 */
static bool is_reusable(int minor_version, const h2o_header_t *headers, size_t n)
{
    sg_str_t conn = find_header(headers, n, "connection");
    if (minor_version < 1 ||
        (conn.ptr != NULL &&
         !h2o_contains_token(conn.ptr, conn.len, H2O_STRLIT("keep-alive"), ','))) {
        return false;
    }
    return find_header(headers, n, "content-length").ptr != NULL ||
           find_header(headers, n, "transfer-encoding").ptr != NULL;
}

static void capture_session(sg_uh_req_t *r, const h2o_header_t *headers, size_t n)
{
    sg_uh_t *t = r->t;
    sg_str_t id = find_header(headers, n, "mcp-session-id");
    if (id.ptr == NULL) {
        return;
    }
    if (!is_visible_token(id, MAX_TOKEN)) {
        SG_LOG_WARN(&t->log, "ignoring a malformed Mcp-Session-Id (%zu bytes)", id.len);
        return;
    }
    if (t->session_id == NULL || !sg_str_eq_cstr(id, t->session_id)) {
        set_session(t, sg_xstrdup_str(id));
        SG_LOG_DEBUG(&t->log, "upstream session established");
    }
}

static sg_uh_body_t content_kind(const h2o_header_t *headers, size_t n)
{
    sg_str_t ct = find_header(headers, n, "content-type");
    if (ct.ptr == NULL) {
        return SG_UH_BODY_NONE;
    }
    const char *semi = memchr(ct.ptr, ';', ct.len);
    size_t len = semi != NULL ? (size_t)(semi - ct.ptr) : ct.len;
    while (len > 0 && (ct.ptr[len - 1] == ' ' || ct.ptr[len - 1] == '\t')) {
        len--;
    }
    if (h2o_lcstris(ct.ptr, len, H2O_STRLIT("application/json"))) {
        return SG_UH_BODY_JSON;
    }
    if (h2o_lcstris(ct.ptr, len, H2O_STRLIT("text/event-stream"))) {
        return SG_UH_BODY_SSE;
    }
    return SG_UH_BODY_NONE;
}

/* The outcome is known from the head; the body, if any, is only read to keep the connection. */
static sg_uh_body_t settle(sg_uh_req_t *r, int status)
{
    r->settled = status;
    return SG_UH_BODY_DISCARD;
}

/* The answer's status line and headers: how to read its body. */
static sg_uh_body_t accept_head(sg_uh_req_t *r, int status, h2o_iovec_t msg,
                                const h2o_header_t *headers, size_t n)
{
    sg_uh_t *t = r->t;
    if (r->kind == SG_UH_DELETE) {
        SG_LOG_DEBUG(&t->log, "DELETE answered %d", status);
        return settle(r, SG_OK);
    }
    if (status == 404 && r->sent_session) {
        SG_LOG_INFO(&t->log, "upstream does not know our session (404)");
        if (r->session_gen == t->session_gen) {
            set_session(t, NULL);
        }
        return settle(r, SG_ESESSION);
    }
    if (r->kind == SG_UH_POST && (status == 202 || status == 204)) {
        return settle(r, SG_OK);
    }
    if (status < 200 || status > 299 || status == 204) {
        SG_LOG_WARN(&t->log, "%s answered %d %.*s", kind_name(r->kind), status,
                    (int)SG_MIN(msg.len, (size_t)64), msg.base);
        return settle(r, SG_EUPSTREAM);
    }
    if (r->kind == SG_UH_POST && sg_str_eq_cstr(find_header(headers, n, "content-length"), "0")) {
        return settle(r, SG_OK); /* an empty 200: taken as 202 (older servers answer so) */
    }
    sg_uh_body_t kind = content_kind(headers, n);
    if (kind == SG_UH_BODY_SSE || (kind == SG_UH_BODY_JSON && r->kind == SG_UH_POST)) {
        return kind;
    }
    SG_LOG_WARN(&t->log, "%s answered %d with an unexpected content type", kind_name(r->kind),
                status);
    return settle(r, SG_EUPSTREAM);
}

static h2o_http1client_body_cb on_head(h2o_http1client_t *client, const char *errstr,
                                       int minor_version, int status, h2o_iovec_t msg,
                                       h2o_header_t *headers, size_t num_headers, int rlen)
{
    (void)rlen;
    sg_uh_req_t *r = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        if (!req_send_again(r, client, errstr)) {
            req_fail(r, errstr);
        }
        return NULL;
    }
    if (status == 408 && req_send_again(r, client, NULL)) {
        return NULL;
    }
    if (r->kind == SG_UH_POST && status >= 200 && status <= 299) {
        capture_session(r, headers, num_headers);
    }
    r->body_kind = accept_head(r, status, msg, headers, num_headers);
    if (errstr == h2o_http1client_error_is_eos) {
        answer_complete(r, client); /* no body at all (h2o said so from the status) */
        body_done(r);
        return NULL;
    }
    if (r->body_kind == SG_UH_BODY_DISCARD && !is_reusable(minor_version, headers, num_headers)) {
        body_done(r); /* the connection is closed anyway: no point reading */
        return NULL;
    }
    return on_body;
}

/* A GET that resumes r's stream after the server's retry delay. */
static void on_resume(sg_timer_t *tm)
{
    sg_uh_req_t *r = SG_CONTAINER_OF(tm, sg_uh_req_t, restart);
    r->kind = SG_UH_RESUME;
    req_start(r);
}

/* r's SSE stream is over (errstr NULL: cleanly). Finishes r or schedules a resumption. */
static void sse_ended(sg_uh_req_t *r, const char *errstr)
{
    sg_uh_t *t = r->t;
    sg_sse_end_stream(&r->sse);
    if (r->saw_response) {
        req_finish(r, SG_OK);
        return;
    }
    if (r->sse.last_id != NULL && is_visible_token(sg_str(r->sse.last_id), MAX_TOKEN) &&
        r->resumes < MAX_RESUMES && t->state == SG_UH_READY) {
        uint64_t delay = r->sse.has_retry ? r->sse.retry_ms : DEFAULT_RETRY_MS;
        r->client = NULL;
        r->resumes++;
        SG_LOG_DEBUG(&t->log, "SSE stream ended early; resuming in %llu ms",
                     (unsigned long long)delay);
        sg_timer_start(t->super.loop, &r->restart, delay, on_resume);
        return;
    }
    if (errstr != NULL) {
        req_fail(r, errstr);
        return;
    }
    SG_LOG_WARN(&t->log, "SSE stream ended without a response");
    req_finish(r, SG_EUPSTREAM);
}

static int consume_body(sg_uh_req_t *r, const char *s, size_t n)
{
    switch (r->body_kind) {
    case SG_UH_BODY_SSE:
        return sg_sse_feed(&r->sse, s, n, on_sse_event, r);
    case SG_UH_BODY_DISCARD:
        r->discarded += n;
        return r->discarded > MAX_DISCARD ? SG_ETOOBIG : SG_OK;
    default:
        if (r->json.len + n > MAX_BODY) {
            return SG_ETOOBIG;
        }
        sg_buf_append(&r->json, s, n);
        return SG_OK;
    }
}

static void body_done(sg_uh_req_t *r)
{
    if (r->body_kind == SG_UH_BODY_DISCARD) {
        req_finish(r, r->settled);
        return;
    }
    if (r->body_kind == SG_UH_BODY_SSE) {
        sse_ended(r, NULL);
        return;
    }
    if (r->json.len != 0) {
        size_t len = 0;
        char *s = sg_buf_steal(&r->json, &len);
        req_queue_msg(r, s, len);
    }
    req_finish(r, SG_OK);
}

/* The body could not be read to its end (errstr: h2o's reason, or NULL when too large). */
static void body_failed(sg_uh_req_t *r, const char *errstr)
{
    if (r->body_kind == SG_UH_BODY_DISCARD) {
        req_finish(r, r->settled); /* only the connection is lost */
    } else if (errstr == NULL) {
        SG_LOG_WARN(&r->t->log, "%s answer over %zu bytes", kind_name(r->kind), MAX_BODY);
        req_finish(r, SG_EUPSTREAM);
    } else if (r->body_kind == SG_UH_BODY_SSE && !is_timeout(errstr)) {
        sse_ended(r, errstr);
    } else {
        req_fail(r, errstr);
    }
}

static int on_body(h2o_http1client_t *client, const char *errstr)
{
    sg_uh_req_t *r = client->data;
    if (errstr != NULL && errstr != h2o_http1client_error_is_eos) {
        body_failed(r, errstr);
        return -1;
    }
    h2o_buffer_t *in = client->sock->input;
    int rc = consume_body(r, in->bytes, in->size);
    h2o_buffer_consume(&client->sock->input, client->sock->input->size);
    if (rc != SG_OK) {
        body_failed(r, NULL);
        return -1;
    }
    if (errstr == h2o_http1client_error_is_eos) {
        answer_complete(r, client);
        body_done(r);
    }
    return 0;
}

static h2o_http1client_head_cb on_connect(h2o_http1client_t *client, const char *errstr,
                                          h2o_iovec_t **reqbufs, size_t *reqbufcnt,
                                          int *method_is_head)
{
    sg_uh_req_t *r = client->data;
    if (errstr != NULL) {
        req_fail(r, errstr);
        return NULL;
    }
    build_head(r);
    r->reqbufs[0] = h2o_iovec_init(r->head.data, r->head.len);
    r->reqbufs[1] = h2o_iovec_init(r->body, r->body_len);
    *reqbufs = r->reqbufs;
    *reqbufcnt = r->kind == SG_UH_POST && r->body_len != 0 ? 2 : 1;
    *method_is_head = 0;
    return on_head;
}

/* ------------------------------------------------------------------------ */
/* Events (only from timers)                                                 */
/* ------------------------------------------------------------------------ */

static void release(sg_uh_t *t);
static void stop_done(sg_uh_t *t);

static void event_begin(sg_uh_t *t, sg_uh_req_t *r)
{
    t->in_event = true;
    t->busy = r;
}

/* Returns false when the owner freed the transport during the event: it is gone now. */
static bool event_end(sg_uh_t *t)
{
    t->in_event = false;
    t->busy = NULL;
    if (t->dead) {
        release(t);
        return false;
    }
    return true;
}

static bool may_report(const sg_uh_req_t *r)
{
    return r->state == SG_UH_REQ_ACTIVE || r->state == SG_UH_REQ_FINISHED;
}

static void on_deliver(sg_timer_t *tm)
{
    sg_uh_req_t *r = SG_CONTAINER_OF(tm, sg_uh_req_t, deliver);
    sg_uh_t *t = r->t;
    const sg_transport_events_t *ev = t->super.events;
    while (r->msgs != NULL && may_report(r)) {
        sg_uh_msg_t *m = r->msgs;
        r->msgs = m->next;
        if (r->msgs == NULL) {
            r->msgs_tail = &r->msgs;
        }
        event_begin(t, r);
        ev->on_message(t->super.owner, sg_str_n(m->data, m->len), r->origin);
        free(m->data);
        free(m);
        if (!event_end(t)) {
            return;
        }
    }
    if (r->state == SG_UH_REQ_FINISHED) {
        r->state = SG_UH_REQ_DEAD;
        if (r->kind != SG_UH_DELETE && r->origin != NULL) {
            event_begin(t, r);
            ev->on_origin_done(t->super.owner, r->origin, r->result);
            if (!event_end(t)) {
                return;
            }
        }
    }
    if (r->state == SG_UH_REQ_DEAD) {
        bool was_delete = r->kind == SG_UH_DELETE;
        req_destroy(r);
        if (was_delete) {
            stop_done(t);
        }
    }
}

static void on_ready_timer(sg_timer_t *tm)
{
    sg_uh_t *t = SG_CONTAINER_OF(tm, sg_uh_t, ready_timer);
    if (t->state != SG_UH_READY) {
        return;
    }
    event_begin(t, NULL);
    t->super.events->on_ready(t->super.owner);
    (void)event_end(t);
}

/* The DELETE is over (or there was none): report the aborted requests, then on_down. */
static void stop_done(sg_uh_t *t)
{
    while (!h2o_linklist_is_empty(&t->reqs)) {
        sg_uh_req_t *r = H2O_STRUCT_FROM_MEMBER(sg_uh_req_t, link, t->reqs.next);
        bool report = r->state == SG_UH_REQ_ABORTED && r->origin != NULL;
        r->state = SG_UH_REQ_DEAD;
        if (report) {
            event_begin(t, r);
            t->super.events->on_origin_done(t->super.owner, r->origin, SG_ECLOSED);
            if (!event_end(t)) {
                return;
            }
        }
        req_destroy(r);
    }
    t->state = SG_UH_IDLE;
    set_session(t, NULL);
    event_begin(t, NULL);
    t->super.events->on_down(t->super.owner, "stopped");
    (void)event_end(t);
}

static void on_stop_timer(sg_timer_t *tm)
{
    stop_done(SG_CONTAINER_OF(tm, sg_uh_t, stop_timer));
}

/* ------------------------------------------------------------------------ */
/* Operations                                                                */
/* ------------------------------------------------------------------------ */

static int http_start(sg_transport_t *base)
{
    sg_uh_t *t = SG_CONTAINER_OF(base, sg_uh_t, super);
    if (t->state == SG_UH_STOPPING) {
        return SG_EBUSY;
    }
    set_session(t, NULL);
    free(t->version);
    t->version = NULL;
    t->state = SG_UH_READY;
    sg_timer_start(base->loop, &t->ready_timer, 0, on_ready_timer);
    return SG_OK;
}

static int http_send(sg_transport_t *base, sg_str_t json, void *origin)
{
    sg_uh_t *t = SG_CONTAINER_OF(base, sg_uh_t, super);
    if (t->state != SG_UH_READY) {
        return SG_ECLOSED;
    }
    req_start(req_new(t, SG_UH_POST, json, origin));
    return SG_OK;
}

/* Stops r for good: at once, or (when r's event is running) when the event returns. */
static void req_kill(sg_uh_t *t, sg_uh_req_t *r)
{
    if (r == t->busy) {
        req_halt(r);
        r->state = SG_UH_REQ_DEAD;
    } else {
        req_destroy(r);
    }
}

static void http_forget(sg_transport_t *base, void *origin)
{
    sg_uh_t *t = SG_CONTAINER_OF(base, sg_uh_t, super);
    if (origin == NULL) {
        return;
    }
    h2o_linklist_t *node = t->reqs.next;
    while (node != &t->reqs) {
        sg_uh_req_t *r = H2O_STRUCT_FROM_MEMBER(sg_uh_req_t, link, node);
        node = node->next;
        if (r->origin == origin && r->state != SG_UH_REQ_DEAD) {
            req_kill(t, r);
        }
    }
}

static void http_stop(sg_transport_t *base)
{
    sg_uh_t *t = SG_CONTAINER_OF(base, sg_uh_t, super);
    if (t->state != SG_UH_READY) {
        return;
    }
    t->state = SG_UH_STOPPING;
    sg_timer_stop(&t->ready_timer);
    h2o_linklist_t *node = t->reqs.next;
    while (node != &t->reqs) {
        sg_uh_req_t *r = H2O_STRUCT_FROM_MEMBER(sg_uh_req_t, link, node);
        node = node->next;
        if (!may_report(r)) {
            continue;
        }
        if (r->origin == NULL) {
            req_kill(t, r);
        } else {
            req_halt(r);
            r->state = SG_UH_REQ_ABORTED;
        }
    }
    if (t->session_id != NULL) {
        req_start(req_new(t, SG_UH_DELETE, SG_STR_NULL, NULL));
    } else {
        sg_timer_start(base->loop, &t->stop_timer, 0, on_stop_timer);
    }
}

static void release(sg_uh_t *t)
{
    h2o_linklist_t *node = t->reqs.next;
    while (node != &t->reqs) {
        h2o_linklist_t *next = node->next;
        req_destroy(H2O_STRUCT_FROM_MEMBER(sg_uh_req_t, link, node));
        node = next;
    }
    pool_dispose(t); /* after the requests: their connections are closed, not pooled */
    sg_timer_stop(&t->ready_timer);
    sg_timer_stop(&t->stop_timer);
    for (size_t i = 0; i < t->nheaders; i++) {
        free(t->headers[i]);
    }
    free(t->headers);
    free(t->url);
    free(t->host);
    free(t->session_id);
    free(t->version);
    free(t->log_name);
    if (t->ssl_ctx != NULL) {
        SSL_CTX_free(t->ssl_ctx);
    }
    free(t);
}

static void http_free(sg_transport_t *base)
{
    if (base == NULL) {
        return;
    }
    sg_uh_t *t = SG_CONTAINER_OF(base, sg_uh_t, super);
    if (!t->in_event) {
        release(t);
        return;
    }
    t->dead = true;
    sg_timer_stop(&t->ready_timer);
    sg_timer_stop(&t->stop_timer);
    h2o_linklist_t *node = t->reqs.next;
    while (node != &t->reqs) {
        sg_uh_req_t *r = H2O_STRUCT_FROM_MEMBER(sg_uh_req_t, link, node);
        node = node->next;
        req_kill(t, r);
    }
}

static const sg_transport_ops_t http_ops = {
    .start = http_start,
    .send = http_send,
    .forget = http_forget,
    .stop = http_stop,
    .free = http_free,
};

void sg_transport_http_set_version(sg_transport_t *base, const char *protocol_version)
{
    SG_BUG_ON(base->ops != &http_ops);
    sg_uh_t *t = SG_CONTAINER_OF(base, sg_uh_t, super);
    free(t->version);
    t->version = NULL;
    if (protocol_version == NULL) {
        return;
    }
    if (!is_visible_token(sg_str(protocol_version), MAX_VERSION)) {
        SG_LOG_WARN(&t->log, "ignoring a malformed protocol version");
        return;
    }
    t->version = sg_xstrdup(protocol_version);
}

/* ------------------------------------------------------------------------ */
/* Construction                                                              */
/* ------------------------------------------------------------------------ */

static bool is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Headers we write ourselves; a configured one would break framing or the protocol. */
static bool is_reserved_header(sg_str_t name)
{
    static const char *const reserved[] = {
        "host",   "content-length", "content-type",         "transfer-encoding", "connection",
        "accept", "mcp-session-id", "mcp-protocol-version", "last-event-id"
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(reserved); i++) {
        if (h2o_lcstris(name.ptr, name.len, reserved[i], strlen(reserved[i]))) {
            return true;
        }
    }
    return false;
}

/* "Name: value" with a token name, no CR/LF/NUL anywhere (no header injection). */
static bool check_header(const sg_log_ctx_t *log, size_t index, const char *h)
{
    size_t n = 0;
    while (is_tchar(h[n])) {
        n++;
    }
    if (n == 0 || h[n] != ':' || strpbrk(h, "\r\n") != NULL) {
        SG_LOG_ERROR(log, "configured header %zu is not \"Name: value\"", index);
        return false;
    }
    if (is_reserved_header(sg_str_n(h, n))) {
        SG_LOG_ERROR(log, "configured header %.*s is set by the gateway itself", (int)n, h);
        return false;
    }
    return true;
}

static bool parse_url(sg_uh_t *t, const char *url)
{
    for (const char *p = url; *p != '\0'; p++) {
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '#') {
            SG_LOG_ERROR(&t->log, "upstream URL has a forbidden character");
            return false;
        }
    }
    t->url = sg_xstrdup(url);
    if (h2o_url_parse(t->url, strlen(t->url), &t->parsed) != 0 ||
        (t->parsed.scheme != &H2O_URL_SCHEME_HTTP && t->parsed.scheme != &H2O_URL_SCHEME_HTTPS)) {
        SG_LOG_ERROR(&t->log, "upstream URL is not an http:// or https:// URL");
        return false;
    }
    t->host = sg_xmemdup(t->parsed.host.base, t->parsed.host.len);
    if (strncmp(t->host, "unix:", 5) == 0) {
        SG_LOG_ERROR(&t->log, "upstream URL names a unix socket");
        return false;
    }
    t->port = h2o_url_get_port(&t->parsed);
    t->is_ssl = t->parsed.scheme == &H2O_URL_SCHEME_HTTPS;
    return true;
}

/* TLS 1.2+, peer verified against the CAs, name checked by OpenSSL (STACK-NOTES §6.1 #1). */
static bool make_ssl_ctx(sg_uh_t *t, const char *ca_file)
{
    t->ssl_ctx = SSL_CTX_new(TLS_client_method());
    if (t->ssl_ctx == NULL) {
        return false;
    }
    SSL_CTX_set_min_proto_version(t->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(t->ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    /* no close_notify: h2o then closes a TLS socket at once, not after a write (see top) */
    SSL_CTX_set_quiet_shutdown(t->ssl_ctx, 1);
    SSL_CTX_set_verify(t->ssl_ctx, SSL_VERIFY_PEER, NULL);
    int ok = ca_file != NULL ? SSL_CTX_load_verify_locations(t->ssl_ctx, ca_file, NULL)
                             : SSL_CTX_set_default_verify_paths(t->ssl_ctx);
    if (ok != 1) {
        ERR_clear_error();
        SG_LOG_ERROR(&t->log, "cannot load the CA certificates for the upstream");
        return false;
    }
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(t->ssl_ctx);
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, t->host, addr) == 1 || inet_pton(AF_INET6, t->host, addr) == 1;
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, t->host)
               : X509_VERIFY_PARAM_set1_host(param, t->host, 0);
    if (ok != 1) {
        ERR_clear_error();
        SG_LOG_ERROR(&t->log, "cannot set the expected TLS peer name");
        return false;
    }
    return true;
}

static bool copy_headers(sg_uh_t *t, const sg_http_spec_t *spec)
{
    t->headers = sg_xcalloc(spec->nheaders + 1, sizeof(*t->headers));
    for (size_t i = 0; i < spec->nheaders; i++) {
        if (!check_header(&t->log, i, spec->headers[i])) {
            return false;
        }
        t->headers[t->nheaders++] = sg_xstrdup(spec->headers[i]);
    }
    return true;
}

sg_transport_t *sg_transport_http_new(sg_loop_t *loop, h2o_context_t *ctx,
                                      const sg_http_spec_t *spec,
                                      const sg_transport_events_t *events, void *owner,
                                      const char *name)
{
    sg_uh_t *t = sg_xcalloc(1, sizeof(*t));
    t->super = (sg_transport_t){
        .ops = &http_ops, .events = events, .owner = owner, .loop = loop, .name = name
    };
    h2o_linklist_init_anchor(&t->reqs);
    size_t nlen = strlen(name != NULL ? name : "?") + sizeof("upstream:");
    t->log_name = sg_xmalloc(nlen);
    snprintf(t->log_name, nlen, "upstream:%s", name != NULL ? name : "?");
    t->log = (sg_log_ctx_t){ .component = t->log_name };
    if (ctx == NULL || spec->url == NULL || !parse_url(t, spec->url) || !copy_headers(t, spec) ||
        (t->is_ssl && !make_ssl_ctx(t, spec->ca_file))) {
        SG_LOG_ERROR(&t->log, "cannot create the HTTP transport");
        release(t);
        return NULL;
    }
    uint64_t io_ms = spec->io_timeout_ms != 0 ? spec->io_timeout_ms : DEFAULT_IO_TIMEOUT_MS;
    t->client_ctx = ctx->proxy.client_ctx;
    t->client_ctx.loop = sg_loop_h2o(loop);
    t->client_ctx.io_timeout = sg_loop_timeout_queue(loop, io_ms);
    t->client_ctx.websocket_timeout = NULL;
    t->client_ctx.ssl_ctx = t->ssl_ctx;
    pool_init(t);
    return &t->super;
}
