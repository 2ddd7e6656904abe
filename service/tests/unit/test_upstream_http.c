/* SPDX-License-Identifier: Apache-2.0 */
/*
 * gateway/upstream_http: the Streamable HTTP transport against a real h2o server on
 * 127.0.0.1 running on the same loop (io/http_server), plain and TLS. The server's routes
 * play the upstream: a JSON answer with a session id, 202, an SSE stream cut in awkward
 * places, 404 for an unknown session, 500, a slow answer, an SSE stream the client must
 * resume with GET + Last-Event-ID. TLS certificates are made at test time with the
 * openssl command-line tool. Every loop is bounded.
 *
 * Connection reuse is checked by the connection ids h2o gives the requests it serves, and
 * against a raw HTTP/1.1 server (plain sockets on the same loop) that counts the connections
 * it accepts and closes, and misbehaves on demand: closes idle connections early, drops a
 * request it read, or cuts an answer it began.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <netdb.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "base/mem.h"
#include "gateway/transport.h"
#include "io/http_reply.h"
#include "io/http_server.h"
#include "io/loop.h"

#define MAX_SEEN   32
#define MAX_EVENTS 1024
#define FIELD      160

/* ---- the upstream server -------------------------------------------------- */

typedef struct seen {
    char method[16];
    char path[64];
    char session[FIELD];
    char auth[FIELD];
    char version[FIELD];
    char last_event_id[FIELD];
    char accept[FIELD];
    char content_type[FIELD];
    char tls[32];
    uint64_t conn; /* h2o's connection id: which TCP connection carried the request */
} seen_t;

typedef struct server {
    sg_loop_t *loop;
    sg_http_server_t *http;
    int port;
    char session[64]; /* the session the server currently knows */
    seen_t seen[MAX_SEEN];
    size_t nseen;
    size_t slow_pending;
} server_t;

static void copy_field(char *dst, sg_str_t v)
{
    size_t n = v.ptr != NULL ? SG_MIN(v.len, (size_t)FIELD - 1) : 0;
    if (n != 0) {
        memcpy(dst, v.ptr, n);
    }
    dst[n] = '\0';
}

static seen_t *record(server_t *s, h2o_req_t *req)
{
    static seen_t overflow;
    seen_t *e = s->nseen < MAX_SEEN ? &s->seen[s->nseen++] : &overflow;
    memset(e, 0, sizeof(*e));
    snprintf(e->method, sizeof(e->method), "%.*s", (int)req->method.len, req->method.base);
    snprintf(e->path, sizeof(e->path), "%.*s", (int)req->path.len, req->path.base);
    copy_field(e->session, sg_http_header(req, "mcp-session-id"));
    copy_field(e->auth, sg_http_header(req, "authorization"));
    copy_field(e->version, sg_http_header(req, "mcp-protocol-version"));
    copy_field(e->last_event_id, sg_http_header(req, "last-event-id"));
    copy_field(e->accept, sg_http_header(req, "accept"));
    copy_field(e->content_type, sg_http_header(req, "content-type"));
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    const char *proto = sock != NULL ? h2o_socket_get_ssl_protocol_version(sock) : NULL;
    snprintf(e->tls, sizeof(e->tls), "%s", proto != NULL ? proto : "");
    e->conn = req->conn->id;
    return e;
}

static bool is_delete(const h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
}

/* JSON answers with a session: none sent -> issue ours; ours -> fine; another -> 404. */
static int on_json(void *data, h2o_req_t *req)
{
    server_t *s = data;
    seen_t *e = record(s, req);
    if (e->session[0] != '\0' && strcmp(e->session, s->session) != 0) {
        sg_http_reply_json(req, 404, SG_STR_LIT("{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{}}"));
        return 0;
    }
    if (is_delete(req)) {
        sg_http_reply(req, 204, NULL, SG_STR_NULL);
        return 0;
    }
    if (e->session[0] == '\0') {
        sg_http_add_header(req, "mcp-session-id", sg_str(s->session));
    }
    sg_http_reply_json(req, 200, SG_STR_LIT("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"));
    return 0;
}

static int on_accepted(void *data, h2o_req_t *req)
{
    (void)record(data, req);
    sg_http_reply(req, 202, NULL, SG_STR_NULL);
    return 0;
}

static int on_empty(void *data, h2o_req_t *req)
{
    (void)record(data, req);
    sg_http_reply(req, 200, NULL, SG_STR_NULL);
    return 0;
}

static int on_err500(void *data, h2o_req_t *req)
{
    (void)record(data, req);
    sg_http_reply_json(req, 500, SG_STR_LIT("{\"secret\":\"never logged\"}"));
    return 0;
}

static int on_html(void *data, h2o_req_t *req)
{
    (void)record(data, req);
    sg_http_reply(req, 200, "text/html", SG_STR_LIT("<p>hi</p>"));
    return 0;
}

/* Answers after SLOW_MS, well past the client's io timeout. */
#define SLOW_MS    600
#define IO_TIMEOUT 200

typedef struct slow {
    sg_timer_t timer;
    h2o_req_t *req;
    server_t *server;
} slow_t;

static void on_slow_timer(sg_timer_t *tm)
{
    slow_t *sl = SG_CONTAINER_OF(tm, slow_t, timer);
    sl->server->slow_pending--;
    sg_http_reply_json(sl->req, 200, SG_STR_LIT("{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}"));
}

static int on_slow(void *data, h2o_req_t *req)
{
    server_t *s = data;
    (void)record(s, req);
    slow_t *sl = h2o_mem_alloc_pool(&req->pool, sizeof(*sl));
    memset(sl, 0, sizeof(*sl));
    sl->req = req;
    sl->server = s;
    s->slow_pending++;
    sg_timer_start(s->loop, &sl->timer, SLOW_MS, on_slow_timer);
    return 0;
}

/* ---- streamed SSE answers -------------------------------------------------- */

typedef struct sse_gen {
    h2o_generator_t super;
    h2o_req_t *req;
    server_t *server;
    const char *const *chunks;
    size_t next;
    bool sending;
    bool stopped;
    sg_timer_t timer;
} sse_gen_t;

static void on_gen_timer(sg_timer_t *tm);

static void gen_proceed(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    ((sse_gen_t *)self)->sending = false;
}

static void gen_stop(h2o_generator_t *self, h2o_req_t *req)
{
    (void)req;
    sse_gen_t *g = (sse_gen_t *)self;
    g->stopped = true;
    sg_timer_stop(&g->timer);
}

static void gen_dispose(void *p)
{
    sg_timer_stop(&((sse_gen_t *)p)->timer);
}

/* One chunk every 20 ms; the last one ends the response. */
static void on_gen_timer(sg_timer_t *tm)
{
    sse_gen_t *g = SG_CONTAINER_OF(tm, sse_gen_t, timer);
    if (g->stopped) {
        return;
    }
    if (g->sending) {
        sg_timer_start(g->server->loop, &g->timer, 20, on_gen_timer);
        return;
    }
    const char *chunk = g->chunks[g->next++];
    bool last = g->chunks[g->next] == NULL;
    h2o_iovec_t buf = h2o_iovec_init(chunk, strlen(chunk));
    g->sending = true;
    if (!last) {
        sg_timer_start(g->server->loop, &g->timer, 20, on_gen_timer);
    }
    h2o_send(g->req, &buf, 1, last ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void start_sse(server_t *s, h2o_req_t *req, const char *const *chunks)
{
    sse_gen_t *g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), gen_dispose);
    memset(g, 0, sizeof(*g));
    g->super.proceed = gen_proceed;
    g->super.stop = gen_stop;
    g->req = req;
    g->server = s;
    g->chunks = chunks;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_start_response(req, &g->super);
    sg_timer_start(s->loop, &g->timer, 20, on_gen_timer);
}

#define NOTE1 \
    "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}"
#define NOTE2    "{\"jsonrpc\":\"2.0\",\n\"method\":\"notifications/message\"}"
#define RESPONSE "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"ok\":true}}"

/* Comments, CRLF, CR alone, a CR/LF pair split across chunks, a priming event, a multi-line
 * data field, an event of another type, no space after the colon. */
static const char *const sse_chunks[] = {
    ": keep-alive\r\n\r\n",
    "event: message\r\ndata: " NOTE1 "\r\n\r\n",
    "id: e1\rretry: 5000\rdata:\r\r",
    "data: {\"jsonrpc\":\"2.0\",\r",
    "\ndata: \"method\":\"notifications/message\"}\n\n",
    "event: ping\ndata: ignored\n\n",
    "data:" RESPONSE "\n\n",
    NULL,
};

static int on_sse(void *data, h2o_req_t *req)
{
    (void)record(data, req);
    start_sse(data, req, sse_chunks);
    return 0;
}

/* 2025-11-25 polling: the POST stream ends after a notification; the GET resumes it. */
static const char *const resume_post_chunks[] = {
    "id: r0\nretry: 30\ndata:\n\n",
    "id: r1\ndata: " NOTE1 "\n\n",
    "",
    NULL,
};
static const char *const resume_get_chunks[] = {
    "id: r2\ndata: " RESPONSE "\n\n",
    "",
    NULL,
};
static const char *const noresp_chunks[] = {
    "data: " NOTE1 "\n\n",
    "",
    NULL,
};

static int on_resume(void *data, h2o_req_t *req)
{
    seen_t *e = record(data, req);
    bool is_get = strcmp(e->method, "GET") == 0;
    if (is_get && strcmp(e->last_event_id, "r1") != 0) {
        sg_http_reply(req, 400, NULL, SG_STR_NULL);
        return 0;
    }
    start_sse(data, req, is_get ? resume_get_chunks : resume_post_chunks);
    return 0;
}

static int on_noresp(void *data, h2o_req_t *req)
{
    (void)record(data, req);
    start_sse(data, req, noresp_chunks);
    return 0;
}

static void server_start(server_t *s, sg_loop_t *loop, const char *cert, const char *key)
{
    memset(s, 0, sizeof(*s));
    s->loop = loop;
    snprintf(s->session, sizeof(s->session), "sess-1");
    sg_http_server_options_t opts = { .max_body = 1 << 20 };
    s->http = sg_http_server_new(loop, &opts);
    sg_http_server_route(s->http, "/json", on_json, s);
    sg_http_server_route(s->http, "/accepted", on_accepted, s);
    sg_http_server_route(s->http, "/empty", on_empty, s);
    sg_http_server_route(s->http, "/err500", on_err500, s);
    sg_http_server_route(s->http, "/html", on_html, s);
    sg_http_server_route(s->http, "/slow", on_slow, s);
    sg_http_server_route(s->http, "/sse", on_sse, s);
    sg_http_server_route(s->http, "/resume", on_resume, s);
    sg_http_server_route(s->http, "/noresp", on_noresp, s);
    sg_error_t err;
    assert_int_equal(sg_http_server_listen(s->http, "127.0.0.1", 0, cert, key, &err), SG_OK);
    s->port = sg_http_server_port(s->http);
}

/*
 * Frees the server the way the runtime does: stop accepting, let h2o close idle connections
 * until its timers are empty (h2o_context_dispose asserts they are), then free. Stopping
 * starts h2o's graceful shutdown, which waits a second on the context's one-second timer to
 * resend GOAWAY to HTTP/2 connections; there are none here, so that timer is run at once.
 */
static void server_free(server_t *s)
{
    sg_http_server_stop_accepting(s->http);
    h2o_context_t *ctx = sg_http_server_context(s->http);
    if (ctx != NULL) {
        h2o_timeout_run(sg_loop_h2o(s->loop), &ctx->one_sec_timeout, UINT64_MAX);
    }
    uint64_t until = sg_clock_now_ms() + 3000;
    while (!sg_http_server_close_idle(s->http) && sg_clock_now_ms() < until) {
        sg_loop_run_once(s->loop, 10);
    }
    sg_http_server_free(s->http);
    s->http = NULL;
}

/* ---- a raw HTTP/1.1 server ------------------------------------------------------ */

typedef enum raw_mode {
    RAW_OK = 0,         /* answers every request, keeps the connection */
    RAW_CLOSE_IDLE,     /* closes a connection RAW_IDLE_MS after its answer (short keep-alive) */
    RAW_DROP_SECOND,    /* reads the 2nd request of a connection, closes without answering */
    RAW_RESET_SECOND,   /* the same with a TCP reset */
    RAW_408_SECOND,     /* answers the 2nd request 408 and closes (gave up waiting for it) */
    RAW_PARTIAL_SECOND, /* answers the 2nd request with a status line only, then closes */
    RAW_CUT_SECOND,     /* answers the 2nd request with part of its body, then closes */
    RAW_DROP_ALL,       /* reads every request, closes without answering */
    RAW_DROP_LATER,     /* answers the server's first request; later ones as RAW_DROP_ALL */
    RAW_HOLD,           /* answers only once `hold` requests wait (all connections busy) */
} raw_mode_t;

#define RAW_IDLE_MS 30
#define RAW_ANSWER                       \
    "HTTP/1.1 200 OK\r\n"                \
    "Content-Type: application/json\r\n" \
    "Content-Length: 37\r\n\r\n"         \
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}\n"
#define RAW_CUT                          \
    "HTTP/1.1 200 OK\r\n"                \
    "Content-Type: application/json\r\n" \
    "Content-Length: 37\r\n\r\n"         \
    "{\"jsonrpc\":"

#define RAW_408 "HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"

typedef struct raw_server raw_server_t;

typedef struct raw_conn {
    h2o_linklist_t link;
    raw_server_t *srv;
    sg_watch_t w;
    int fd;
    char in[8192];
    size_t len;
    size_t nreq; /* requests read on this connection */
    bool held;
    sg_timer_t idle;
} raw_conn_t;

struct raw_server {
    sg_loop_t *loop;
    sg_watch_t w;
    int fd;
    int port;
    raw_mode_t mode;
    size_t hold;
    size_t accepted, closed, requests, waiting;
    h2o_linklist_t conns;
};

static void raw_close(raw_conn_t *c, bool reset)
{
    if (reset) {
        struct linger lg = { .l_onoff = 1, .l_linger = 0 };
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    sg_watch_dispose(&c->w);
    sg_timer_stop(&c->idle);
    close(c->fd);
    h2o_linklist_unlink(&c->link);
    c->srv->closed++;
    c->srv->waiting -= c->held;
    free(c);
}

static void raw_write(raw_conn_t *c, const char *s)
{
    size_t n = strlen(s);
    assert_int_equal(write(c->fd, s, n), (ssize_t)n); /* small, on loopback: never short */
}

static void on_raw_idle(sg_timer_t *tm)
{
    raw_close(SG_CONTAINER_OF(tm, raw_conn_t, idle), false);
}

static void raw_release_held(raw_server_t *s)
{
    for (h2o_linklist_t *n = s->conns.next; n != &s->conns; n = n->next) {
        raw_conn_t *c = H2O_STRUCT_FROM_MEMBER(raw_conn_t, link, n);
        if (c->held) {
            c->held = false;
            raw_write(c, RAW_ANSWER);
        }
    }
    s->waiting = 0;
}

/* One complete request was read on c. Returns false when c was closed. */
static bool raw_answer(raw_conn_t *c)
{
    raw_server_t *s = c->srv;
    bool second = ++c->nreq >= 2;
    s->requests++;
    switch (s->mode) {
    case RAW_DROP_ALL:
        raw_close(c, false);
        return false;
    case RAW_DROP_LATER:
        if (s->requests > 1) {
            raw_close(c, false);
            return false;
        }
        break;
    case RAW_DROP_SECOND:
    case RAW_RESET_SECOND:
        if (second) {
            raw_close(c, s->mode == RAW_RESET_SECOND);
            return false;
        }
        break;
    case RAW_408_SECOND:
    case RAW_PARTIAL_SECOND:
    case RAW_CUT_SECOND:
        if (second) {
            raw_write(c, s->mode == RAW_CUT_SECOND       ? RAW_CUT
                         : s->mode == RAW_PARTIAL_SECOND ? "HTTP/1.1 200 OK\r\n"
                                                         : RAW_408);
            raw_close(c, false);
            return false;
        }
        break;
    case RAW_HOLD:
        c->held = true;
        if (++s->waiting >= s->hold) {
            raw_release_held(s);
        }
        return true;
    default:
        break;
    }
    raw_write(c, RAW_ANSWER);
    if (s->mode == RAW_CLOSE_IDLE) {
        sg_timer_start(s->loop, &c->idle, RAW_IDLE_MS, on_raw_idle);
    }
    return true;
}

/* The length of the complete request at the start of c->in, or 0. */
static size_t raw_request_len(const raw_conn_t *c)
{
    const char *end = memmem(c->in, c->len, "\r\n\r\n", 4);
    if (end == NULL) {
        return 0;
    }
    size_t head = (size_t)(end - c->in) + 4;
    size_t body = 0;
    for (const char *p = c->in; p < end; p = strstr(p, "\r\n") + 2) {
        if (strncasecmp(p, "content-length:", 15) == 0) {
            body = strtoul(p + 15, NULL, 10);
        }
    }
    return c->len >= head + body ? head + body : 0;
}

static void on_raw_read(sg_watch_t *w)
{
    raw_conn_t *c = SG_CONTAINER_OF(w, raw_conn_t, w);
    ssize_t n = read(c->fd, c->in + c->len, sizeof(c->in) - 1 - c->len);
    if (n <= 0) {
        raw_close(c, false);
        return;
    }
    c->len += (size_t)n;
    c->in[c->len] = '\0';
    sg_timer_stop(&c->idle);
    size_t req;
    while ((req = raw_request_len(c)) != 0) {
        memmove(c->in, c->in + req, c->len - req);
        c->len -= req;
        c->in[c->len] = '\0';
        if (!raw_answer(c)) {
            return;
        }
    }
}

static void on_raw_accept(sg_watch_t *w)
{
    raw_server_t *s = SG_CONTAINER_OF(w, raw_server_t, w);
    int fd;
    while ((fd = accept4(s->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
        raw_conn_t *c = sg_xcalloc(1, sizeof(*c));
        c->srv = s;
        c->fd = fd;
        assert_int_equal(sg_watch_init(&c->w, s->loop, fd, on_raw_read, NULL), SG_OK);
        sg_watch_want_read(&c->w, true);
        h2o_linklist_insert(&s->conns, &c->link);
        s->accepted++;
    }
}

static raw_server_t *raw_new(sg_loop_t *loop, raw_mode_t mode)
{
    raw_server_t *s = sg_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->mode = mode;
    h2o_linklist_init_anchor(&s->conns);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_in sin = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t slen = sizeof(sin);
    assert_int_equal(bind(s->fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(listen(s->fd, 1024), 0);
    assert_int_equal(getsockname(s->fd, (struct sockaddr *)&sin, &slen), 0);
    s->port = ntohs(sin.sin_port);
    assert_int_equal(sg_watch_init(&s->w, loop, s->fd, on_raw_accept, NULL), SG_OK);
    sg_watch_want_read(&s->w, true);
    return s;
}

static size_t raw_open(const raw_server_t *s)
{
    return s->accepted - s->closed;
}

static void raw_free(raw_server_t *s)
{
    if (s == NULL) {
        return;
    }
    while (!h2o_linklist_is_empty(&s->conns)) {
        raw_close(H2O_STRUCT_FROM_MEMBER(raw_conn_t, link, s->conns.next), false);
    }
    sg_watch_dispose(&s->w);
    close(s->fd);
    free(s);
}

/* ---- the transport's owner -------------------------------------------------- */

typedef enum what { EV_READY = 1, EV_MESSAGE, EV_DONE, EV_DOWN } what_t;

typedef struct event {
    what_t what;
    void *origin;
    int status;
    char *json;
} event_t;

typedef struct fixture {
    sg_loop_t *loop;
    server_t server;
    sg_transport_t *t;
    event_t ev[MAX_EVENTS];
    size_t nev;
    bool free_on_message;   /* free the transport inside the first on_message */
    bool forget_on_message; /* forget the origin inside the first on_message */
    bool stop_on_message;   /* stop inside the first on_message */
    char *tmpdir;           /* TLS material */
    raw_server_t *raw;      /* started by the tests that need it */
    uint64_t io_timeout;    /* of the transports opened next; 0: IO_TIMEOUT */
} fixture_t;

static void push(fixture_t *f, what_t what, void *origin, int status, sg_str_t json)
{
    assert_true(f->nev < MAX_EVENTS);
    event_t *e = &f->ev[f->nev++];
    e->what = what;
    e->origin = origin;
    e->status = status;
    e->json = json.ptr != NULL ? sg_xstrdup_str(json) : NULL;
}

static void ev_ready(void *owner)
{
    push(owner, EV_READY, NULL, 0, SG_STR_NULL);
}

static void ev_message(void *owner, sg_str_t json, void *origin)
{
    fixture_t *f = owner;
    push(f, EV_MESSAGE, origin, 0, json);
    if (f->free_on_message) {
        f->free_on_message = false;
        f->t->ops->free(f->t);
        f->t = NULL;
    } else if (f->forget_on_message) {
        f->forget_on_message = false;
        f->t->ops->forget(f->t, origin);
    } else if (f->stop_on_message) {
        f->stop_on_message = false;
        f->t->ops->stop(f->t);
    }
}

static void ev_done(void *owner, void *origin, int status)
{
    push(owner, EV_DONE, origin, status, SG_STR_NULL);
}

static void ev_down(void *owner, const char *reason)
{
    push(owner, EV_DOWN, NULL, 0, sg_str(reason));
}

static const sg_transport_events_t events = {
    .on_ready = ev_ready,
    .on_message = ev_message,
    .on_origin_done = ev_done,
    .on_down = ev_down,
};

static size_t count(const fixture_t *f, what_t what)
{
    size_t n = 0;
    for (size_t i = 0; i < f->nev; i++) {
        n += f->ev[i].what == what;
    }
    return n;
}

static const event_t *nth(const fixture_t *f, what_t what, size_t k)
{
    for (size_t i = 0; i < f->nev; i++) {
        if (f->ev[i].what == what && k-- == 0) {
            return &f->ev[i];
        }
    }
    fail_msg("no event %d #%zu", what, k);
    return NULL;
}

static void run_for(fixture_t *f, uint64_t ms)
{
    uint64_t until = sg_clock_now_ms() + ms;
    while (sg_clock_now_ms() < until) {
        sg_loop_run_once(f->loop, 10);
    }
}

/* Runs the loop until `n` events of kind `what` arrived (at most 5 s). */
static void run_until(fixture_t *f, what_t what, size_t n)
{
    uint64_t until = sg_clock_now_ms() + 5000;
    while (count(f, what) < n && sg_clock_now_ms() < until) {
        sg_loop_run_once(f->loop, 10);
    }
    assert_int_equal(count(f, what), n);
}

static sg_transport_t *open_port(fixture_t *f, const char *scheme, int port, const char *path,
                                 const char *ca_file)
{
    static const char *const headers[] = { "Authorization: Bearer test-token", "X-Extra: 1" };
    char url[128];
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d%s", scheme, port, path);
    sg_http_spec_t spec = { .url = url,
                            .headers = headers,
                            .nheaders = 2,
                            .io_timeout_ms = f->io_timeout != 0 ? f->io_timeout : IO_TIMEOUT,
                            .ca_file = ca_file };
    f->t = sg_transport_http_new(f->loop, sg_http_server_context(f->server.http), &spec, &events, f,
                                 "test/http");
    assert_non_null(f->t);
    size_t ready = count(f, EV_READY);
    assert_int_equal(f->t->ops->start(f->t), SG_OK);
    assert_int_equal(count(f, EV_READY), ready); /* never inside start() */
    run_until(f, EV_READY, ready + 1);
    return f->t;
}

static sg_transport_t *open_path(fixture_t *f, const char *scheme, const char *path,
                                 const char *ca_file)
{
    return open_port(f, scheme, f->server.port, path, ca_file);
}

/* A transport to a new raw server behaving as `mode`. */
static sg_transport_t *open_raw(fixture_t *f, raw_mode_t mode)
{
    f->raw = raw_new(f->loop, mode);
    return open_port(f, "http", f->raw->port, "/mcp", NULL);
}

static int send_text(fixture_t *f, const char *json, void *origin)
{
    return f->t->ops->send(f->t, sg_str(json), origin);
}

static int setup(void **state)
{
    fixture_t *f = sg_xcalloc(1, sizeof(*f));
    f->loop = sg_loop_new();
    f->tmpdir = *state; /* the group's TLS directory */
    server_start(&f->server, f->loop, NULL, NULL);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture_t *f = *state;
    if (f->t != NULL) {
        f->t->ops->free(f->t);
    }
    if (f->raw != NULL) {
        run_for(f, 20); /* the raw server sees the pooled connections close */
        assert_int_equal(raw_open(f->raw), 0);
        raw_free(f->raw);
    }
    uint64_t until = sg_clock_now_ms() + 3000;
    while ((f->server.slow_pending != 0 || sg_http_server_inflight(f->server.http) != 0) &&
           sg_clock_now_ms() < until) {
        sg_loop_run_once(f->loop, 10);
    }
    run_for(f, 50); /* let the server see the clients' FINs */
    assert_int_equal(sg_http_server_inflight(f->server.http), 0);
    server_free(&f->server);
    for (size_t i = 0; i < f->nev; i++) {
        free(f->ev[i].json);
    }
    sg_loop_free(f->loop);
    *state = f->tmpdir;
    free(f);
    return 0;
}

static const char origin_a[] = "a";
static const char origin_b[] = "b";
#define A ((void *)origin_a)
#define B ((void *)origin_b)

/* ---- tests ------------------------------------------------------------------ */

static void json_answer_is_one_message_then_done(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/json", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", A),
                     SG_OK);
    assert_int_equal(count(f, EV_DONE), 0);
    run_until(f, EV_DONE, 1);
    assert_int_equal(count(f, EV_MESSAGE), 1);
    const event_t *m = nth(f, EV_MESSAGE, 0);
    assert_ptr_equal(m->origin, A);
    assert_string_equal(m->json, "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{}}");
    assert_ptr_equal(nth(f, EV_DONE, 0)->origin, A);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_OK);
    assert_true(m < nth(f, EV_DONE, 0));
    const seen_t *e = &f->server.seen[0];
    assert_string_equal(e->method, "POST");
    assert_string_equal(e->content_type, "application/json");
    assert_string_equal(e->accept, "application/json, text/event-stream");
    assert_string_equal(e->auth, "Bearer test-token");
    assert_string_equal(e->session, "");
    assert_string_equal(e->version, "");
}

static void accepted_is_done_without_message(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/accepted", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}", A),
                     SG_OK);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/y\"}", NULL),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    run_for(f, 50);
    assert_int_equal(f->server.nseen, 2);
    assert_int_equal(count(f, EV_DONE), 1); /* none for the NULL origin */
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_OK);
    assert_int_equal(count(f, EV_MESSAGE), 0);
}

static void empty_200_is_done_without_message(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/empty", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/x\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_OK);
    assert_int_equal(count(f, EV_MESSAGE), 0);
}

static void sse_events_arrive_in_order_then_done(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/sse", NULL);
    uint64_t t0 = sg_clock_now_ms();
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    assert_true(sg_clock_now_ms() - t0 >= 100); /* it really was streamed */
    assert_int_equal(count(f, EV_MESSAGE), 3);
    assert_string_equal(nth(f, EV_MESSAGE, 0)->json, NOTE1);
    assert_string_equal(nth(f, EV_MESSAGE, 1)->json, NOTE2);
    assert_string_equal(nth(f, EV_MESSAGE, 2)->json, RESPONSE);
    for (size_t i = 0; i < 3; i++) {
        assert_ptr_equal(nth(f, EV_MESSAGE, i)->origin, A);
    }
    assert_true(nth(f, EV_MESSAGE, 2) < nth(f, EV_DONE, 0));
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_OK);
}

static void concurrent_posts_are_attributed(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/sse", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"}", A), SG_OK);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"b\"}", B), SG_OK);
    run_until(f, EV_DONE, 2);
    assert_int_equal(count(f, EV_MESSAGE), 6);
    size_t na = 0;
    for (size_t i = 0; i < 6; i++) {
        na += nth(f, EV_MESSAGE, i)->origin == A;
    }
    assert_int_equal(na, 3);
}

static void session_id_and_version_are_sent_after_initialize(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/json", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    sg_transport_http_set_version(f->t, "2025-11-25");
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", B),
                     SG_OK);
    run_until(f, EV_DONE, 2);
    assert_int_equal(nth(f, EV_DONE, 1)->status, SG_OK);
    assert_int_equal(f->server.nseen, 2);
    const seen_t *e = &f->server.seen[1];
    assert_string_equal(e->session, "sess-1");
    assert_string_equal(e->version, "2025-11-25");
    assert_string_equal(e->auth, "Bearer test-token");
}

static void unknown_session_is_esession_and_forgotten(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/json", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    snprintf(f->server.session, sizeof(f->server.session), "sess-2"); /* upstream restarted */
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}", B),
                     SG_OK);
    run_until(f, EV_DONE, 2);
    assert_int_equal(nth(f, EV_DONE, 1)->status, SG_ESESSION);
    assert_int_equal(count(f, EV_MESSAGE), 1); /* the 404 body is not a message */
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"initialize\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 3);
    assert_int_equal(nth(f, EV_DONE, 2)->status, SG_OK);
    assert_string_equal(f->server.seen[1].session, "sess-1");
    assert_string_equal(f->server.seen[2].session, ""); /* forgotten */
}

static void status_500_is_eupstream(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/err500", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_EUPSTREAM);
    assert_int_equal(count(f, EV_MESSAGE), 0);
}

static void unexpected_content_type_is_eupstream(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/html", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_EUPSTREAM);
}

static void slow_answer_times_out(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/slow", NULL);
    uint64_t t0 = sg_clock_now_ms();
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_DONE, 1);
    uint64_t took = sg_clock_now_ms() - t0;
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_ETIMEDOUT);
    assert_true(took >= IO_TIMEOUT - 20 && took < SLOW_MS);
}

static void connection_refused_is_eupstream(void **state)
{
    fixture_t *f = *state;
    int port = f->server.port;
    f->server.port = 1; /* nothing listens on port 1 */
    open_path(f, "http", "/json", NULL);
    f->server.port = port;
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    assert_int_equal(count(f, EV_DONE), 0); /* never inside send() */
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_EUPSTREAM);
}

static void forget_cancels_without_callback(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/slow", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x\"}", B), SG_OK);
    run_for(f, 30);
    f->t->ops->forget(f->t, A);
    run_until(f, EV_DONE, 1); /* B times out; A never reports */
    run_for(f, IO_TIMEOUT);
    assert_int_equal(count(f, EV_DONE), 1);
    assert_ptr_equal(nth(f, EV_DONE, 0)->origin, B);
}

static void forget_inside_on_message_stops_the_stream(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/sse", NULL);
    f->forget_on_message = true;
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_MESSAGE, 1);
    run_for(f, 250);
    assert_int_equal(count(f, EV_MESSAGE), 1);
    assert_int_equal(count(f, EV_DONE), 0);
}

static void free_inside_on_message_is_safe(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/sse", NULL);
    f->free_on_message = true;
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"x\"}", B), SG_OK);
    run_until(f, EV_MESSAGE, 1);
    assert_null(f->t);
    run_for(f, 250);
    assert_int_equal(count(f, EV_MESSAGE), 1);
    assert_int_equal(count(f, EV_DONE), 0);
}

static void stop_deletes_the_session_then_reports_down(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/json", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    f->t->ops->stop(f->t);
    assert_int_equal(send_text(f, "{}", B), SG_ECLOSED);
    assert_int_equal(count(f, EV_DOWN), 0);
    run_until(f, EV_DOWN, 1);
    assert_string_equal(nth(f, EV_DOWN, 0)->json, "stopped");
    assert_int_equal(f->server.nseen, 2);
    assert_string_equal(f->server.seen[1].method, "DELETE");
    assert_string_equal(f->server.seen[1].session, "sess-1");
    assert_string_equal(f->server.seen[1].auth, "Bearer test-token");
    assert_int_equal(send_text(f, "{}", B), SG_ECLOSED);
    /* and it starts again, without a session */
    assert_int_equal(f->t->ops->start(f->t), SG_OK);
    run_until(f, EV_READY, 2);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"initialize\"}", B),
                     SG_OK);
    run_until(f, EV_DONE, 2);
    assert_string_equal(f->server.seen[2].session, "");
}

static void stop_closes_requests_in_flight_before_down(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/slow", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_for(f, 30);
    f->t->ops->stop(f->t);
    f->t->ops->stop(f->t); /* idempotent */
    run_until(f, EV_DOWN, 1);
    assert_int_equal(count(f, EV_DONE), 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_ECLOSED);
    assert_true(nth(f, EV_DONE, 0) < nth(f, EV_DOWN, 0));
    assert_int_equal(f->server.nseen, 1); /* no session: no DELETE */
}

static void stop_inside_on_message(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/sse", NULL);
    f->stop_on_message = true;
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_DOWN, 1);
    run_for(f, 200);
    assert_int_equal(count(f, EV_MESSAGE), 1);
    assert_int_equal(count(f, EV_DONE), 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_ECLOSED);
}

static void sse_stream_is_resumed_with_last_event_id(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/resume", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_OK);
    assert_int_equal(count(f, EV_MESSAGE), 2);
    assert_string_equal(nth(f, EV_MESSAGE, 0)->json, NOTE1);
    assert_string_equal(nth(f, EV_MESSAGE, 1)->json, RESPONSE);
    assert_ptr_equal(nth(f, EV_MESSAGE, 1)->origin, A);
    assert_int_equal(f->server.nseen, 2);
    assert_string_equal(f->server.seen[1].method, "GET");
    assert_string_equal(f->server.seen[1].last_event_id, "r1");
    assert_string_equal(f->server.seen[1].accept, "text/event-stream");
    assert_string_equal(f->server.seen[1].auth, "Bearer test-token");
    assert_true(f->server.seen[1].conn == f->server.seen[0].conn); /* the POST's connection */
}

static void sse_without_response_nor_ids_is_eupstream(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/noresp", NULL);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(count(f, EV_MESSAGE), 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_EUPSTREAM);
}

/* ---- keep-alive ------------------------------------------------------------- */

#define CALL "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\"}"

/* How many TCP connections carried the requests seen[from..to). */
static size_t distinct_conns(const server_t *s, size_t from, size_t to)
{
    size_t n = 0;
    for (size_t i = from; i < to; i++) {
        bool before = false;
        for (size_t j = from; j < i; j++) {
            before = before || s->seen[j].conn == s->seen[i].conn;
        }
        n += !before;
    }
    return n;
}

/* Sends CALL and waits for its on_origin_done; returns its status. */
static int call(fixture_t *f, void *origin)
{
    size_t done = count(f, EV_DONE);
    assert_int_equal(send_text(f, CALL, origin), SG_OK);
    run_until(f, EV_DONE, done + 1);
    return nth(f, EV_DONE, done)->status;
}

static void sequential_posts_reuse_one_connection(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/json", NULL);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(call(f, A), SG_OK);
    }
    assert_int_equal(count(f, EV_MESSAGE), 5);
    assert_int_equal(f->server.nseen, 5);
    assert_int_equal(distinct_conns(&f->server, 0, 5), 1);
}

static void sequential_posts_reuse_one_raw_connection(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_OK);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(call(f, A), SG_OK);
    }
    assert_int_equal(count(f, EV_MESSAGE), 5);
    assert_int_equal(f->raw->requests, 5);
    assert_int_equal(f->raw->accepted, 1);
    assert_int_equal(raw_open(f->raw), 1);
}

/* 202, 500 with a body, DELETE: read to their end, so their connection is kept. */
static void unused_answers_keep_the_connection(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/accepted", NULL);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(call(f, A), SG_OK);
    }
    assert_int_equal(distinct_conns(&f->server, 0, 3), 1);
    f->t->ops->free(f->t);
    open_path(f, "http", "/err500", NULL);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(call(f, A), SG_EUPSTREAM);
    }
    assert_int_equal(distinct_conns(&f->server, 3, 6), 1);
    f->t->ops->free(f->t);
    open_path(f, "http", "/json", NULL);
    assert_int_equal(call(f, A), SG_OK); /* initialize: a session */
    f->t->ops->stop(f->t);
    run_until(f, EV_DOWN, 1);
    assert_string_equal(f->server.seen[7].method, "DELETE");
    assert_true(f->server.seen[7].conn == f->server.seen[6].conn);
    assert_int_equal(count(f, EV_MESSAGE), 1);
}

static void concurrent_posts_use_several_connections_then_reuse_them(void **state)
{
    static char origins[4];
    fixture_t *f = *state;
    open_path(f, "http", "/sse", NULL);
    for (size_t round = 1; round <= 2; round++) {
        for (size_t i = 0; i < 4; i++) {
            assert_int_equal(send_text(f, CALL, &origins[i]), SG_OK);
        }
        run_until(f, EV_DONE, 4 * round);
    }
    for (size_t i = 0; i < 8; i++) {
        assert_int_equal(nth(f, EV_DONE, i)->status, SG_OK);
    }
    assert_int_equal(count(f, EV_MESSAGE), 8 * 3);
    assert_int_equal(f->server.nseen, 8);
    assert_int_equal(distinct_conns(&f->server, 0, 4), 4); /* in flight together */
    assert_int_equal(distinct_conns(&f->server, 4, 8), 4);
    assert_int_equal(distinct_conns(&f->server, 0, 8), 4); /* the second round reused them */
}

static void sse_answer_then_reuse(void **state)
{
    fixture_t *f = *state;
    open_path(f, "http", "/sse", NULL);
    assert_int_equal(call(f, A), SG_OK);
    assert_int_equal(call(f, B), SG_OK);
    assert_int_equal(count(f, EV_MESSAGE), 6);
    assert_string_equal(nth(f, EV_MESSAGE, 5)->json, RESPONSE);
    assert_ptr_equal(nth(f, EV_MESSAGE, 5)->origin, B);
    assert_int_equal(distinct_conns(&f->server, 0, 2), 1);
}

/* A server with a short keep-alive: its close arrived before the next request, which
 * goes on a new connection (h2o's MSG_PEEK check), without any request sent twice. */
static void connection_closed_while_idle_is_not_used(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_CLOSE_IDLE);
    assert_int_equal(call(f, A), SG_OK);
    run_for(f, RAW_IDLE_MS + 70);
    assert_int_equal(raw_open(f->raw), 0);
    assert_int_equal(call(f, B), SG_OK);
    assert_int_equal(f->raw->accepted, 2);
    assert_int_equal(f->raw->requests, 2);
    assert_int_equal(count(f, EV_MESSAGE), 2);
}

/* The server closes a kept-alive connection as the request arrives: sent once more. */
static void reused_connection_closed_is_sent_again(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_DROP_SECOND);
    assert_int_equal(call(f, A), SG_OK);
    assert_int_equal(call(f, B), SG_OK);
    assert_int_equal(f->raw->requests, 3); /* B dropped on the first connection, then B again */
    assert_int_equal(f->raw->accepted, 2);
    assert_int_equal(count(f, EV_MESSAGE), 2);
    assert_ptr_equal(nth(f, EV_MESSAGE, 1)->origin, B);
}

static void reused_connection_reset_is_sent_again(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_RESET_SECOND);
    assert_int_equal(call(f, A), SG_OK);
    assert_int_equal(call(f, B), SG_OK);
    assert_int_equal(f->raw->requests, 3);
    assert_int_equal(f->raw->accepted, 2);
    assert_int_equal(count(f, EV_MESSAGE), 2);
}

static void reused_connection_answered_408_is_sent_again(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_408_SECOND);
    assert_int_equal(call(f, A), SG_OK);
    assert_int_equal(call(f, B), SG_OK);
    assert_int_equal(f->raw->requests, 3);
    assert_int_equal(f->raw->accepted, 2);
    assert_int_equal(count(f, EV_MESSAGE), 2);
}

/* Sent again at most once: the new connection fails too, and that is the outcome. */
static void request_is_sent_again_only_once(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_DROP_LATER);
    assert_int_equal(call(f, A), SG_OK);
    assert_int_equal(call(f, B), SG_EUPSTREAM);
    run_for(f, 50);
    assert_int_equal(f->raw->requests, 3);
    assert_int_equal(f->raw->accepted, 2);
}

/* Bytes of an answer arrived: the server has the request, it is never sent twice. */
static void failure_after_the_answer_began_is_not_sent_again(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_PARTIAL_SECOND);
    assert_int_equal(call(f, A), SG_OK);
    assert_int_equal(call(f, B), SG_EUPSTREAM);
    run_for(f, 50);
    assert_int_equal(f->raw->requests, 2);
    assert_int_equal(f->raw->accepted, 1);
}

static void cut_body_is_not_sent_again(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_CUT_SECOND);
    assert_int_equal(call(f, A), SG_OK);
    assert_int_equal(call(f, B), SG_EUPSTREAM);
    run_for(f, 50);
    assert_int_equal(f->raw->requests, 2);
    assert_int_equal(f->raw->accepted, 1);
    assert_int_equal(count(f, EV_MESSAGE), 1);
}

static void failure_on_a_new_connection_is_not_sent_again(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_DROP_ALL);
    assert_int_equal(call(f, A), SG_EUPSTREAM);
    run_for(f, 50);
    assert_int_equal(f->raw->requests, 1);
    assert_int_equal(f->raw->accepted, 1);
}

static bool io_timeouts_empty(fixture_t *f)
{
    return h2o_linklist_is_empty(&sg_loop_timeout_queue(f->loop, IO_TIMEOUT)->_entries);
}

static void free_closes_idle_and_busy_connections(void **state)
{
    fixture_t *f = *state;
    open_raw(f, RAW_HOLD);
    f->raw->hold = 3;
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(send_text(f, CALL, A), SG_OK);
    }
    run_until(f, EV_DONE, 3);
    assert_int_equal(raw_open(f->raw), 3); /* idle in the pool */
    f->raw->hold = 100;
    assert_int_equal(send_text(f, CALL, B), SG_OK);
    assert_int_equal(send_text(f, CALL, B), SG_OK);
    run_for(f, 50);
    assert_int_equal(f->raw->waiting, 2); /* two requests held */
    f->t->ops->free(f->t);
    f->t = NULL;
    assert_true(io_timeouts_empty(f));
    run_for(f, 30);
    assert_int_equal(raw_open(f->raw), 0);
    assert_int_equal(f->raw->accepted, 3);
    assert_int_equal(count(f, EV_DONE), 3);
}

/* POOL_MAX_IDLE in upstream_http.c */
#define POOL_MAX_IDLE 256

static void idle_connections_are_capped(void **state)
{
    const size_t n = POOL_MAX_IDLE + 4;
    fixture_t *f = *state;
    f->io_timeout = 5000; /* n connections to set up before the first answer */
    open_raw(f, RAW_HOLD);
    f->raw->hold = n; /* all answers at once, when every connection carries a request */
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(send_text(f, CALL, A), SG_OK);
    }
    run_until(f, EV_DONE, n);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(nth(f, EV_DONE, i)->status, SG_OK);
    }
    run_for(f, 30);
    assert_int_equal(f->raw->accepted, n);
    assert_int_equal(raw_open(f->raw), POOL_MAX_IDLE);
    f->raw->hold = 1;
    assert_int_equal(call(f, B), SG_OK); /* and they are used */
    assert_int_equal(f->raw->accepted, n);
}

static void rejects_bad_urls_and_headers(void **state)
{
    fixture_t *f = *state;
    static const char *const bad_urls[] = { "ftp://127.0.0.1/mcp",
                                            "http://",
                                            "127.0.0.1:80/mcp",
                                            "http://127.0.0.1/a b",
                                            "http://127.0.0.1/a\r\nX: y",
                                            "http://[unix:/tmp/s]/mcp",
                                            "http://user:pw@127.0.0.1/mcp" };
    h2o_context_t *ctx = sg_http_server_context(f->server.http);
    for (size_t i = 0; i < SG_ARRAY_LEN(bad_urls); i++) {
        sg_http_spec_t spec = { .url = bad_urls[i] };
        assert_null(sg_transport_http_new(f->loop, ctx, &spec, &events, f, "bad"));
    }
    static const char *const bad_headers[][1] = { { "Content-Length: 5" },
                                                  { "NoColon" },
                                                  { "X-A: b\r\nX-B: c" },
                                                  { "Mcp-Session-Id: forged" },
                                                  { ": empty" } };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad_headers); i++) {
        sg_http_spec_t spec = { .url = "http://127.0.0.1/mcp",
                                .headers = bad_headers[i],
                                .nheaders = 1 };
        assert_null(sg_transport_http_new(f->loop, ctx, &spec, &events, f, "bad"));
    }
    sg_http_spec_t ok = { .url = "https://example.com:8443/mcp?x=1" };
    sg_transport_t *t = sg_transport_http_new(f->loop, ctx, &ok, &events, f, "ok");
    assert_non_null(t);
    t->ops->free(t);
    assert_int_equal(f->nev, 0);
}

/* ---- TLS -------------------------------------------------------------------- */

static void tls_path(const fixture_t *f, char *out, size_t cap, const char *file)
{
    snprintf(out, cap, "%s/%s", f->tmpdir, file);
}

/* A TLS server with cert `name` (.pem/.key in the group directory) on a fresh loop. */
static void restart_tls(fixture_t *f, const char *name)
{
    char cert[512], key[512], file[64];
    snprintf(file, sizeof(file), "%s.pem", name);
    tls_path(f, cert, sizeof(cert), file);
    snprintf(file, sizeof(file), "%s.key", name);
    tls_path(f, key, sizeof(key), file);
    server_free(&f->server);
    server_start(&f->server, f->loop, cert, key);
}

static void tls_name_mismatch_is_rejected(void **state)
{
    fixture_t *f = *state;
    restart_tls(f, "foo"); /* SAN DNS:foo only */
    char ca[512];
    tls_path(f, ca, sizeof(ca), "ca.pem");
    open_path(f, "https", "/json", ca);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_EUPSTREAM);
    assert_int_equal(f->server.nseen, 0);
}

static void tls_ip_san_is_accepted_over_tls13(void **state)
{
    fixture_t *f = *state;
    restart_tls(f, "ip"); /* SAN IP:127.0.0.1 */
    char ca[512];
    tls_path(f, ca, sizeof(ca), "ca.pem");
    open_path(f, "https", "/sse", ca);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_OK);
    assert_int_equal(count(f, EV_MESSAGE), 3);
    assert_int_equal(f->server.nseen, 1);
    assert_string_equal(f->server.seen[0].tls, "TLSv1.3");
}

static void tls_unknown_ca_is_rejected(void **state)
{
    fixture_t *f = *state;
    restart_tls(f, "ip");
    char other[512];
    tls_path(f, other, sizeof(other), "other-ca.pem");
    open_path(f, "https", "/json", other);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"initialize\"}", A),
                     SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_EUPSTREAM);
}

static void tls_connections_are_reused(void **state)
{
    fixture_t *f = *state;
    restart_tls(f, "ip");
    char ca[512];
    tls_path(f, ca, sizeof(ca), "ca.pem");
    open_path(f, "https", "/json", ca);
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(call(f, A), SG_OK);
        assert_string_equal(f->server.seen[i].tls, "TLSv1.3");
    }
    assert_int_equal(distinct_conns(&f->server, 0, 3), 1);
}

/* Closing a TLS connection in use writes close_notify first: the pool outlives free(). */
static void tls_free_with_requests_in_flight(void **state)
{
    fixture_t *f = *state;
    restart_tls(f, "ip");
    char ca[512];
    tls_path(f, ca, sizeof(ca), "ca.pem");
    open_path(f, "https", "/slow", ca);
    assert_int_equal(send_text(f, CALL, A), SG_OK);
    assert_int_equal(send_text(f, CALL, B), SG_OK);
    run_for(f, 60);
    assert_int_equal(f->server.nseen, 2);
    f->t->ops->free(f->t);
    f->t = NULL;
    assert_true(io_timeouts_empty(f));
    run_for(f, 30);
    assert_int_equal(f->nev, 1); /* on_ready only */
}

/* True when h2o's resolver (AF_UNSPEC, AI_ADDRCONFIG) can only pick 127.0.0.1 for localhost. */
static bool localhost_is_ipv4_only(void)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_protocol = IPPROTO_TCP,
                              .ai_flags = AI_ADDRCONFIG };
    struct addrinfo *res = NULL;
    if (getaddrinfo("localhost", "80", &hints, &res) != 0) {
        return false;
    }
    bool only = true;
    for (struct addrinfo *ai = res; ai != NULL; ai = ai->ai_next) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)ai->ai_addr;
        only = only && ai->ai_family == AF_INET && sin->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
    }
    freeaddrinfo(res);
    return only;
}

/* A host name (resolved by h2o's getaddr threads) checked with X509_VERIFY_PARAM_set1_host. */
static void tls_dns_name_is_checked(void **state)
{
    fixture_t *f = *state;
    if (!localhost_is_ipv4_only()) {
        /* h2o picks a random address; the server only listens on 127.0.0.1 */
        print_message("localhost is not only 127.0.0.1 here: test not applicable\n");
        return;
    }
    restart_tls(f, "localhost"); /* SAN DNS:localhost */
    char ca[512], url[128];
    tls_path(f, ca, sizeof(ca), "ca.pem");
    snprintf(url, sizeof(url), "https://localhost:%d/json", f->server.port);
    sg_http_spec_t spec = { .url = url, .io_timeout_ms = 2000, .ca_file = ca };
    f->t = sg_transport_http_new(f->loop, sg_http_server_context(f->server.http), &spec, &events, f,
                                 "test/dns");
    assert_non_null(f->t);
    assert_int_equal(f->t->ops->start(f->t), SG_OK);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_DONE, 1);
    assert_int_equal(nth(f, EV_DONE, 0)->status, SG_OK);
    f->t->ops->free(f->t);
    f->t = NULL;
    run_for(f, 50);        /* the server sees the pooled connection close */
    restart_tls(f, "foo"); /* SAN DNS:foo: the name localhost must not match */
    snprintf(url, sizeof(url), "https://localhost:%d/json", f->server.port);
    f->t = sg_transport_http_new(f->loop, sg_http_server_context(f->server.http), &spec, &events, f,
                                 "test/dns");
    assert_non_null(f->t);
    assert_int_equal(f->t->ops->start(f->t), SG_OK);
    assert_int_equal(send_text(f, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"x\"}", A), SG_OK);
    run_until(f, EV_DONE, 2);
    assert_int_equal(nth(f, EV_DONE, 1)->status, SG_EUPSTREAM);
    assert_int_equal(f->server.nseen, 0);
}

static int sh(const char *dir, const char *cmd)
{
    char line[1024];
    snprintf(line, sizeof(line), "cd '%s' && (%s) >/dev/null 2>&1", dir, cmd);
    return system(line);
}

#define EC "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"

static int make_certs(const char *dir)
{
    static const char *const cmds[] = {
        "openssl req -x509 " EC " -keyout ca.key -out ca.pem -days 2 -subj /CN=sg-test-ca",
        "openssl req -x509 " EC " -keyout other-ca.key -out other-ca.pem -days 2 -subj /CN=other",
        "printf 'subjectAltName=DNS:foo\\n' > foo.ext",
        "printf 'subjectAltName=IP:127.0.0.1\\n' > ip.ext",
        "printf 'subjectAltName=DNS:localhost\\n' > localhost.ext",
        "openssl req " EC " -keyout localhost.key -out localhost.csr -subj /CN=localhost",
        "openssl x509 -req -in localhost.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile localhost.ext -out localhost.pem",
        "openssl req " EC " -keyout foo.key -out foo.csr -subj /CN=foo",
        "openssl req " EC " -keyout ip.key -out ip.csr -subj /CN=ip-test",
        "openssl x509 -req -in foo.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile foo.ext -out foo.pem",
        "openssl x509 -req -in ip.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
        "-extfile ip.ext -out ip.pem",
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cmds); i++) {
        if (sh(dir, cmds[i]) != 0) {
            fprintf(stderr, "failed: %s\n", cmds[i]);
            return -1;
        }
    }
    return 0;
}

static int group_setup(void **state)
{
    char tmpl[] = "/tmp/sg-upstream-http-XXXXXX";
    char *dir = mkdtemp(tmpl);
    if (dir == NULL || make_certs(dir) != 0) {
        return -1;
    }
    *state = sg_xstrdup(dir);
    return 0;
}

static int group_teardown(void **state)
{
    char *dir = *state;
    if (dir != NULL) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        (void)system(cmd);
        free(dir);
    }
    return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    signal(SIGPIPE, SIG_IGN); /* as the runtime does: peers that went away */
    const struct CMUnitTest tests[] = {
        T(json_answer_is_one_message_then_done),
        T(accepted_is_done_without_message),
        T(empty_200_is_done_without_message),
        T(sse_events_arrive_in_order_then_done),
        T(concurrent_posts_are_attributed),
        T(session_id_and_version_are_sent_after_initialize),
        T(unknown_session_is_esession_and_forgotten),
        T(status_500_is_eupstream),
        T(unexpected_content_type_is_eupstream),
        T(slow_answer_times_out),
        T(connection_refused_is_eupstream),
        T(forget_cancels_without_callback),
        T(forget_inside_on_message_stops_the_stream),
        T(free_inside_on_message_is_safe),
        T(stop_deletes_the_session_then_reports_down),
        T(stop_closes_requests_in_flight_before_down),
        T(stop_inside_on_message),
        T(sse_stream_is_resumed_with_last_event_id),
        T(sse_without_response_nor_ids_is_eupstream),
        T(sequential_posts_reuse_one_connection),
        T(sequential_posts_reuse_one_raw_connection),
        T(unused_answers_keep_the_connection),
        T(concurrent_posts_use_several_connections_then_reuse_them),
        T(sse_answer_then_reuse),
        T(connection_closed_while_idle_is_not_used),
        T(reused_connection_closed_is_sent_again),
        T(reused_connection_reset_is_sent_again),
        T(reused_connection_answered_408_is_sent_again),
        T(request_is_sent_again_only_once),
        T(failure_after_the_answer_began_is_not_sent_again),
        T(cut_body_is_not_sent_again),
        T(failure_on_a_new_connection_is_not_sent_again),
        T(free_closes_idle_and_busy_connections),
        T(idle_connections_are_capped),
        T(rejects_bad_urls_and_headers),
        T(tls_name_mismatch_is_rejected),
        T(tls_ip_san_is_accepted_over_tls13),
        T(tls_unknown_ca_is_rejected),
        T(tls_connections_are_reused),
        T(tls_free_with_requests_in_flight),
        T(tls_dns_name_is_checked),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
