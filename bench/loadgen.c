/* SPDX-License-Identifier: Apache-2.0 */
/*
 * loadgen: an MCP (Streamable HTTP) load generator for ops/bench.
 *
 * Load mode (default):
 *   1. initialize once (Authorization: Bearer <key> when --key is given), keep the
 *      Mcp-Session-Id and the negotiated protocol revision, send notifications/initialized;
 *   2. probe: one tools/call, repeated every 100 ms until it succeeds (--ready-timeout), so
 *      that upstreams still starting behind a gateway are not measured;
 *   3. open C keep-alive HTTP/1.1 connections (one per concurrent worker), run tools/call
 *      for --warmup seconds unrecorded, then for -d seconds recorded: every call's latency
 *      in microseconds, from the first byte written to the last byte of the answer read.
 *   One epoll loop, no threads. Answers may be application/json or text/event-stream
 *   (chunked or sized); a connection the server closes is reopened (its connect time then
 *   counts in the next call). A call is an error when the status is not 200, the transport
 *   fails, the answer has no "result", carries a JSON-RPC error or "isError":true, or lacks
 *   the echoed message.
 *
 * --probe-only: steps 1 and 2, then "READY ..." on stdout and exit 0.
 *
 * Sessions mode (--sessions N --keys k1,k2,...): N initialize calls (+ their
 *   notifications/initialized) on one keep-alive connection, key i % nkeys for the i-th,
 *   to open N sessions across the keys' tenants; reports how many succeeded.
 *
 * Output: human-readable lines on stderr, and one machine-readable line on stdout:
 *   RESULT calls=N secs=S rps=R p50=.. p90=.. p99=.. p999=.. max=.. errors=E (latencies in us)
 *   SESSIONS opened=N errors=E secs=S
 * Exit status: 0 when the run completed (errors are reported, not fatal), 2 on bad usage,
 * 3 when the setup (initialize / probe) failed.
 *
 * Only loopback targets are accepted (127.0.0.0/8, localhost).
 *
 * Build: cc -O2 -o build/bench/loadgen bench/loadgen.c
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS     4096
#define MAX_RESPONSE  (16u << 20)
#define CALL_TIMEOUT  10.0 /* seconds: a call not answered by then is an error */
#define DEFAULT_PROTO "2025-11-25"

/* ---------------------------------------------------------------------------------------- */
/* Small helpers                                                                            */
/* ---------------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("loadgen: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(3);
}

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} buf_t;

static void buf_reserve(buf_t *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) {
        return;
    }
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->len + extra + 1) {
        cap *= 2;
    }
    char *np = realloc(b->p, cap);
    if (np == NULL) {
        die("out of memory");
    }
    b->p = np;
    b->cap = cap;
}

static void buf_add(buf_t *b, const char *s, size_t n)
{
    buf_reserve(b, n);
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_printf(buf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

static const char *memmem_s(const char *hay, size_t n, const char *needle)
{
    return memmem(hay, n, needle, strlen(needle));
}

/* ---------------------------------------------------------------------------------------- */
/* Settings                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static struct {
    char host[64];
    int port;
    char path[512];
    const char *key;
    const char *tool;
    const char *message;
    int conc;
    double duration;
    double warmup;
    double ready_timeout;
    int sessions;
    char **keys;
    int nkeys;
    const char *proto;
    bool verbose;
    bool probe_only;
} opt = {
    .tool = "echo",
    .message = "hello, sentinel",
    .conc = 1,
    .duration = 10,
    .warmup = 1,
    .ready_timeout = 20,
    .proto = DEFAULT_PROTO,
};

static struct sockaddr_in target;
static char session_id[1024];
static unsigned long long n_total; /* requests answered or failed, warm-up and setup included */
static char proto_version[64];

static void usage(void)
{
    fprintf(stderr, "usage: loadgen --url http://127.0.0.1:PORT/PATH [--key KEY] [--tool NAME] "
                    "[--message TEXT]\n"
                    "               [-c CONCURRENCY] [-d SECONDS] [--warmup SECONDS] "
                    "[--ready-timeout SECONDS]\n"
                    "               [--protocol VERSION] [--probe-only] [-v]\n"
                    "       loadgen --url ... --sessions N --keys KEY1,KEY2,...\n");
    exit(2);
}

static void parse_url(const char *url)
{
    const char *p = url;
    if (strncmp(p, "http://", 7) != 0) {
        usage();
    }
    p += 7;
    const char *colon = strchr(p, ':');
    const char *slash = strchr(p, '/');
    if (slash == NULL) {
        slash = p + strlen(p);
    }
    size_t hlen = (size_t)((colon != NULL && colon < slash ? colon : slash) - p);
    if (hlen == 0 || hlen >= sizeof(opt.host)) {
        usage();
    }
    memcpy(opt.host, p, hlen);
    opt.host[hlen] = '\0';
    opt.port = colon != NULL && colon < slash ? atoi(colon + 1) : 80;
    snprintf(opt.path, sizeof(opt.path), "%s", *slash ? slash : "/");
    memset(&target, 0, sizeof(target));
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)opt.port);
    if (strcmp(opt.host, "localhost") == 0) {
        target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    } else if (inet_pton(AF_INET, opt.host, &target.sin_addr) != 1) {
        die("host must be an IPv4 literal or localhost: %s", opt.host);
    }
    if ((ntohl(target.sin_addr.s_addr) >> 24) != 127) {
        die("refusing a non-loopback target %s", opt.host);
    }
}

static void split_keys(const char *list)
{
    char *copy = strdup(list);
    for (char *tok = strtok(copy, ","); tok != NULL; tok = strtok(NULL, ",")) {
        opt.keys = realloc(opt.keys, sizeof(char *) * (size_t)(opt.nkeys + 1));
        opt.keys[opt.nkeys++] = tok;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* HTTP/1.1 response parsing (whole response re-parsed from the buffer start: answers are  */
/* small)                                                                                   */
/* ---------------------------------------------------------------------------------------- */

typedef struct {
    int status;
    bool keepalive;
    bool sse;
    size_t consumed; /* bytes of the buffer this response took */
    buf_t body;      /* decoded body (chunked framing removed) */
    char session[1024];
} resp_t;

static bool header_is(const char *line, size_t len, const char *name, const char **val,
                      size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0) {
        return false;
    }
    const char *v = line + n + 1;
    const char *e = line + len;
    while (v < e && (*v == ' ' || *v == '\t')) {
        v++;
    }
    while (e > v && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    *val = v;
    *vlen = (size_t)(e - v);
    return true;
}

/* Returns 1 when a whole response is in buf (r filled), 0 when more is needed, -1 on garbage. */
static int parse_response(const char *buf, size_t len, bool eof, resp_t *r)
{
    const char *hend = memmem_s(buf, len, "\r\n\r\n");
    if (hend == NULL) {
        return len > 65536 ? -1 : 0;
    }
    r->status = 0;
    r->sse = false;
    r->session[0] = '\0';
    r->body.len = 0;
    if (len < 12 || strncmp(buf, "HTTP/1.", 7) != 0) {
        return -1;
    }
    bool http10 = buf[7] == '0';
    r->status = atoi(buf + 9);
    r->keepalive = !http10;
    long long clen = -1;
    bool chunked = false;
    const char *line = memmem_s(buf, (size_t)(hend - buf), "\r\n") + 2;
    while (line < hend + 2) {
        const char *le = memmem_s(line, (size_t)(hend + 2 - line), "\r\n");
        size_t ll = (size_t)(le - line);
        const char *v;
        size_t vl;
        if (header_is(line, ll, "content-length", &v, &vl)) {
            clen = atoll(v);
        } else if (header_is(line, ll, "transfer-encoding", &v, &vl)) {
            chunked = memmem_s(v, vl, "chunked") != NULL;
        } else if (header_is(line, ll, "connection", &v, &vl)) {
            if (vl == 5 && strncasecmp(v, "close", 5) == 0) {
                r->keepalive = false;
            } else if (vl == 10 && strncasecmp(v, "keep-alive", 10) == 0) {
                r->keepalive = true;
            }
        } else if (header_is(line, ll, "content-type", &v, &vl)) {
            r->sse = vl >= 17 && strncasecmp(v, "text/event-stream", 17) == 0;
        } else if (header_is(line, ll, "mcp-session-id", &v, &vl)) {
            if (vl < sizeof(r->session)) {
                memcpy(r->session, v, vl);
                r->session[vl] = '\0';
            }
        }
        line = le + 2;
    }
    const char *body = hend + 4;
    size_t avail = len - (size_t)(body - buf);
    if (r->status == 204 || r->status == 304 || (r->status >= 100 && r->status < 200)) {
        r->consumed = (size_t)(body - buf);
        return 1;
    }
    if (chunked) {
        const char *p = body;
        const char *end = buf + len;
        for (;;) {
            const char *cl = memmem_s(p, (size_t)(end - p), "\r\n");
            if (cl == NULL) {
                return 0;
            }
            unsigned long long n = strtoull(p, NULL, 16);
            if (n > MAX_RESPONSE) {
                return -1;
            }
            const char *data = cl + 2;
            if (n == 0) {
                /* trailers (none expected) end with an empty line */
                const char *t = data;
                for (;;) {
                    const char *te = memmem_s(t, (size_t)(end - t), "\r\n");
                    if (te == NULL) {
                        return 0;
                    }
                    if (te == t) {
                        r->consumed = (size_t)(te + 2 - buf);
                        return 1;
                    }
                    t = te + 2;
                }
            }
            if ((size_t)(end - data) < n + 2) {
                return 0;
            }
            buf_add(&r->body, data, (size_t)n);
            p = data + n + 2;
        }
    }
    if (clen >= 0) {
        if (avail < (size_t)clen) {
            return 0;
        }
        buf_add(&r->body, body, (size_t)clen);
        r->consumed = (size_t)(body - buf) + (size_t)clen;
        return 1;
    }
    /* neither: the body ends with the connection */
    if (!eof) {
        return 0;
    }
    buf_add(&r->body, body, avail);
    r->keepalive = false;
    r->consumed = len;
    return 1;
}

/* Is this a successful tools/call answer? (JSON, or the events of an SSE stream) */
static bool call_ok(const resp_t *r)
{
    if (r->status != 200 || r->body.len == 0) {
        return false;
    }
    const char *b = r->body.p;
    size_t n = r->body.len;
    if (memmem_s(b, n, "\"result\"") == NULL) {
        return false;
    }
    if (memmem_s(b, n, "\"isError\":true") != NULL || memmem_s(b, n, "\"error\":{") != NULL) {
        return false;
    }
    return memmem_s(b, n, opt.message) != NULL;
}

/* ---------------------------------------------------------------------------------------- */
/* Requests                                                                                 */
/* ---------------------------------------------------------------------------------------- */

static void build_request(buf_t *out, const char *body, size_t blen, const char *key,
                          bool with_session)
{
    out->len = 0;
    buf_printf(out,
               "POST %s HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
               "Accept: application/json, text/event-stream\r\nContent-Length: %zu\r\n",
               opt.path, opt.host, opt.port, blen);
    if (key != NULL) {
        buf_printf(out, "Authorization: Bearer %s\r\n", key);
    }
    if (with_session) {
        if (session_id[0] != '\0') {
            buf_printf(out, "Mcp-Session-Id: %s\r\n", session_id);
        }
        buf_printf(out, "MCP-Protocol-Version: %s\r\n", proto_version);
    }
    buf_add(out, "\r\n", 2);
    buf_add(out, body, blen);
}

static void call_body(buf_t *out, unsigned long long id)
{
    out->len = 0;
    buf_printf(out,
               "{\"jsonrpc\":\"2.0\",\"id\":%llu,\"method\":\"tools/"
               "call\",\"params\":{\"name\":\"%s\","
               "\"arguments\":{\"message\":\"%s\"}}}",
               id, opt.tool, opt.message);
}

static const char init_body_fmt[] = "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\","
                                    "\"params\":{\"protocolVersion\":\"%s\","
                                    "\"capabilities\":{},\"clientInfo\":{\"name\":\"sg-bench-"
                                    "loadgen\",\"version\":\"1.0.0\"}}}";
static const char initialized_body[] =
        "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}";

/* ---- blocking client for setup (initialize, probe, sessions) ---- */

static int sync_fd = -1;
static buf_t sync_in;

static int connect_blocking(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return -1;
    }
    struct timeval tv = { .tv_sec = 10 };
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    int on = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    if (connect(fd, (struct sockaddr *)&target, sizeof(target)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

/* One request/answer on the setup connection. Returns 0 and fills r, or -1. */
static int sync_request(const char *body, const char *key, bool with_session, resp_t *r)
{
    buf_t req = { 0 };
    build_request(&req, body, strlen(body), key, with_session);
    n_total++;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sync_fd < 0 && (sync_fd = connect_blocking()) < 0) {
            free(req.p);
            return -1;
        }
        size_t off = 0;
        bool failed = false;
        while (off < req.len) {
            ssize_t w = send(sync_fd, req.p + off, req.len - off, MSG_NOSIGNAL);
            if (w <= 0) {
                failed = true;
                break;
            }
            off += (size_t)w;
        }
        sync_in.len = 0;
        while (!failed) {
            int pr = parse_response(sync_in.p ? sync_in.p : "", sync_in.len, false, r);
            if (pr == 1) {
                if (!r->keepalive) {
                    close(sync_fd);
                    sync_fd = -1;
                }
                free(req.p);
                return 0;
            }
            if (pr < 0) {
                failed = true;
                break;
            }
            buf_reserve(&sync_in, 65536);
            ssize_t n = recv(sync_fd, sync_in.p + sync_in.len, sync_in.cap - sync_in.len - 1, 0);
            if (n <= 0) {
                if (n == 0 &&
                    parse_response(sync_in.p ? sync_in.p : "", sync_in.len, true, r) == 1) {
                    close(sync_fd);
                    sync_fd = -1;
                    free(req.p);
                    return 0;
                }
                failed = true;
                break;
            }
            sync_in.len += (size_t)n;
            sync_in.p[sync_in.len] = '\0';
        }
        close(sync_fd);
        sync_fd = -1;
        if (attempt == 0 && sync_in.len == 0) {
            continue; /* a kept-alive connection the server had closed: retry once */
        }
        break;
    }
    free(req.p);
    return -1;
}

static void show_failure(const char *what, const resp_t *r)
{
    fprintf(stderr, "loadgen: %s: HTTP %d: %.*s\n", what, r->status,
            (int)(r->body.len > 400 ? 400 : r->body.len), r->body.p ? r->body.p : "");
}

/* initialize + notifications/initialized with key; fills session_id and proto_version. */
static int open_session(const char *key, bool quiet)
{
    resp_t r = { 0 };
    char body[512];
    snprintf(body, sizeof(body), init_body_fmt, opt.proto);
    int rc = -1;
    if (sync_request(body, key, false, &r) != 0) {
        if (!quiet) {
            fprintf(stderr, "loadgen: initialize: no answer from %s:%d\n", opt.host, opt.port);
        }
        goto out;
    }
    if (r.status != 200 || r.body.len == 0 ||
        memmem_s(r.body.p, r.body.len, "\"result\"") == NULL) {
        if (!quiet) {
            show_failure("initialize", &r);
        }
        goto out;
    }
    snprintf(session_id, sizeof(session_id), "%s", r.session);
    snprintf(proto_version, sizeof(proto_version), "%s", opt.proto);
    const char *pv = memmem_s(r.body.p, r.body.len, "\"protocolVersion\":\"");
    if (pv != NULL) {
        pv += strlen("\"protocolVersion\":\"");
        const char *q = memchr(pv, '"', (size_t)(r.body.p + r.body.len - pv));
        if (q != NULL && (size_t)(q - pv) < sizeof(proto_version)) {
            memcpy(proto_version, pv, (size_t)(q - pv));
            proto_version[q - pv] = '\0';
        }
    }
    if (sync_request(initialized_body, key, true, &r) != 0 ||
        (r.status != 202 && r.status != 200 && r.status != 204)) {
        if (!quiet) {
            show_failure("notifications/initialized", &r);
        }
        goto out;
    }
    rc = 0;
out:
    free(r.body.p);
    return rc;
}

/* ---------------------------------------------------------------------------------------- */
/* Load phase                                                                               */
/* ---------------------------------------------------------------------------------------- */

enum { C_IDLE, C_CONNECTING, C_SENDING, C_READING };

typedef struct {
    int fd;
    int state;
    buf_t out;
    size_t out_off;
    buf_t in;
    resp_t resp;
    double t_start;
    uint32_t events; /* current epoll interest */
} conn_t;

static conn_t *conns;
static int ep;
static unsigned long long next_id = 1;
static uint32_t *lat;
static size_t nlat, caplat;
static unsigned long long n_ok, n_non200, n_rpcerr, n_ioerr, n_timeout, n_reconnects;
static double measure_start, run_end, last_done;
static int first_error_shown;
static buf_t body_scratch;

static void record(double t_start, double t_end, bool ok, const resp_t *r, int ioerr)
{
    n_total++;
    if (t_start < measure_start) {
        return;
    }
    if (t_end > last_done) {
        last_done = t_end;
    }
    if (ok) {
        if (nlat == caplat) {
            caplat = caplat ? caplat * 2 : 1 << 16;
            lat = realloc(lat, caplat * sizeof(*lat));
            if (lat == NULL) {
                die("out of memory");
            }
        }
        double us = (t_end - t_start) * 1e6;
        lat[nlat++] = us > 4e9 ? 4000000000u : (uint32_t)(us + 0.5);
        n_ok++;
        return;
    }
    if (ioerr) {
        n_ioerr++;
    } else if (r->status != 200) {
        n_non200++;
    } else {
        n_rpcerr++;
    }
    if (first_error_shown < 3) {
        first_error_shown++;
        if (ioerr) {
            fprintf(stderr, "loadgen: call failed: %s\n",
                    ioerr == 2 ? "timeout" : "connection error");
        } else {
            show_failure("call failed", r);
        }
    }
}

static void conn_close(conn_t *c)
{
    if (c->fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
        c->fd = -1;
    }
    c->state = C_IDLE;
    c->in.len = 0;
}

static int conn_open(conn_t *c)
{
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        return -1;
    }
    int on = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on));
    int rc = connect(c->fd, (struct sockaddr *)&target, sizeof(target));
    if (rc != 0 && errno != EINPROGRESS) {
        close(c->fd);
        c->fd = -1;
        return -1;
    }
    struct epoll_event ev = { .events = EPOLLOUT, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    c->events = EPOLLOUT;
    c->state = rc == 0 ? C_SENDING : C_CONNECTING;
    return 0;
}

static void conn_want(conn_t *c, uint32_t events)
{
    if (c->events == events) {
        return;
    }
    struct epoll_event ev = { .events = events, .data.ptr = c };
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
    c->events = events;
}

static void conn_flush(conn_t *c);

/* Starts the next call on c (opening a connection when it has none). */
static void call_start(conn_t *c, double t)
{
    call_body(&body_scratch, next_id++);
    build_request(&c->out, body_scratch.p, body_scratch.len, opt.key, true);
    c->out_off = 0;
    c->t_start = t;
    c->in.len = 0;
    if (c->fd < 0) {
        n_reconnects++;
        if (conn_open(c) != 0) {
            record(c->t_start, now_s(), false, &c->resp, 1);
            c->state = C_IDLE;
            return;
        }
        if (c->state == C_CONNECTING) {
            return;
        }
    }
    c->state = C_SENDING;
    conn_flush(c);
}

static void conn_fail(conn_t *c, int kind)
{
    record(c->t_start, now_s(), false, &c->resp, kind);
    conn_close(c);
}

static void conn_flush(conn_t *c)
{
    while (c->out_off < c->out.len) {
        ssize_t w = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off, MSG_NOSIGNAL);
        if (w < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                conn_want(c, EPOLLOUT);
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            conn_fail(c, 1);
            return;
        }
        c->out_off += (size_t)w;
    }
    c->state = C_READING;
    conn_want(c, EPOLLIN);
}

/* A whole answer is in c->in: record it, keep or drop the connection. */
static void conn_done(conn_t *c, bool eof)
{
    double t = now_s();
    record(c->t_start, t, call_ok(&c->resp), &c->resp, 0);
    if (eof || !c->resp.keepalive || c->resp.consumed != c->in.len) {
        conn_close(c);
    }
    c->state = C_IDLE;
}

static void conn_read(conn_t *c)
{
    for (;;) {
        buf_reserve(&c->in, 16384);
        ssize_t n = recv(c->fd, c->in.p + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                return;
            }
            if (errno == EINTR) {
                continue;
            }
            conn_fail(c, 1);
            return;
        }
        if (n == 0) {
            if (parse_response(c->in.p, c->in.len, true, &c->resp) == 1) {
                conn_done(c, true);
            } else {
                conn_fail(c, 1);
            }
            return;
        }
        c->in.len += (size_t)n;
        c->in.p[c->in.len] = '\0';
        if (c->in.len > MAX_RESPONSE) {
            conn_fail(c, 1);
            return;
        }
        int pr = parse_response(c->in.p, c->in.len, false, &c->resp);
        if (pr < 0) {
            conn_fail(c, 1);
            return;
        }
        if (pr == 1) {
            conn_done(c, false);
            return;
        }
    }
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double q)
{
    if (nlat == 0) {
        return 0;
    }
    size_t i = (size_t)(q * (double)nlat);
    if (i >= nlat) {
        i = nlat - 1;
    }
    return lat[i];
}

static void run_load(void)
{
    conns = calloc((size_t)opt.conc, sizeof(conn_t));
    ep = epoll_create1(EPOLL_CLOEXEC);
    for (int i = 0; i < opt.conc; i++) {
        conns[i].fd = -1;
    }
    double t0 = now_s();
    measure_start = t0 + opt.warmup;
    run_end = measure_start + opt.duration;
    last_done = measure_start;
    for (int i = 0; i < opt.conc; i++) {
        call_start(&conns[i], now_s());
    }
    struct epoll_event evs[256];
    for (;;) {
        double t = now_s();
        int busy = 0;
        for (int i = 0; i < opt.conc; i++) {
            conn_t *c = &conns[i];
            if (c->state == C_IDLE) {
                if (t < run_end) {
                    call_start(c, t);
                }
            } else if (t - c->t_start > CALL_TIMEOUT) {
                n_timeout++;
                conn_fail(c, 2);
            }
            if (c->state != C_IDLE) {
                busy++;
            }
        }
        if (busy == 0 && t >= run_end) {
            break;
        }
        int n = epoll_wait(ep, evs, 256, 100);
        for (int i = 0; i < n; i++) {
            conn_t *c = evs[i].data.ptr;
            if (c->fd < 0) {
                continue;
            }
            if (c->state == C_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err != 0) {
                    conn_fail(c, 1);
                    continue;
                }
                c->state = C_SENDING;
            }
            if (c->state == C_SENDING) {
                conn_flush(c);
            } else if (c->state == C_READING) {
                conn_read(c);
            }
        }
    }
    double secs = last_done - measure_start;
    if (secs < opt.duration) {
        secs = opt.duration;
    }
    qsort(lat, nlat, sizeof(*lat), cmp_u32);
    unsigned long long errors = n_non200 + n_rpcerr + n_ioerr;
    double rps = (double)n_ok / secs;
    fprintf(stderr,
            "loadgen: %s:%d%s tool=%s c=%d: %llu calls in %.2f s = %.0f calls/s; "
            "p50 %u us, p90 %u us, p99 %u us, p99.9 %u us, max %u us; errors %llu "
            "(non-200 %llu, JSON-RPC %llu, transport %llu incl. %llu timeouts); connections opened "
            "%llu\n",
            opt.host, opt.port, opt.path, opt.tool, opt.conc, n_ok, secs, rps, pct(0.50), pct(0.90),
            pct(0.99), pct(0.999), nlat ? lat[nlat - 1] : 0, errors, n_non200, n_rpcerr, n_ioerr,
            n_timeout, n_reconnects);
    printf("RESULT calls=%llu secs=%.3f rps=%.1f p50=%u p90=%u p99=%u p999=%u max=%u errors=%llu "
           "connections=%llu total=%llu\n",
           n_ok, secs, rps, pct(0.50), pct(0.90), pct(0.99), pct(0.999), nlat ? lat[nlat - 1] : 0,
           errors, n_reconnects, n_total);
    fflush(stdout);
}

/* ---------------------------------------------------------------------------------------- */

static void run_sessions(void)
{
    if (opt.nkeys == 0) {
        usage();
    }
    double t0 = now_s();
    int ok = 0, bad = 0;
    for (int i = 0; i < opt.sessions; i++) {
        session_id[0] = '\0';
        if (open_session(opt.keys[i % opt.nkeys], bad > 0) == 0 && session_id[0] != '\0') {
            ok++;
        } else {
            bad++;
        }
    }
    double secs = now_s() - t0;
    fprintf(stderr, "loadgen: opened %d sessions across %d keys in %.2f s (%d failed)\n", ok,
            opt.nkeys, secs, bad);
    printf("SESSIONS opened=%d errors=%d secs=%.3f\n", ok, bad, secs);
    fflush(stdout);
}

static void probe(void)
{
    double deadline = now_s() + opt.ready_timeout;
    resp_t r = { 0 };
    int tries = 0;
    for (;;) {
        tries++;
        session_id[0] = '\0';
        if (open_session(opt.key, true) == 0) {
            call_body(&body_scratch, next_id++);
            if (sync_request(body_scratch.p, opt.key, true, &r) == 0 && call_ok(&r)) {
                break;
            }
        }
        if (now_s() >= deadline) {
            /* say why, loudly this time */
            if (open_session(opt.key, false) == 0) {
                call_body(&body_scratch, next_id++);
                if (sync_request(body_scratch.p, opt.key, true, &r) == 0) {
                    show_failure("probe tools/call", &r);
                } else {
                    fprintf(stderr, "loadgen: probe tools/call: no answer\n");
                }
            }
            die("%s:%d%s not ready after %.0f s (%d tries)", opt.host, opt.port, opt.path,
                opt.ready_timeout, tries);
        }
        usleep(100000);
    }
    free(r.body.p);
    if (sync_fd >= 0) {
        close(sync_fd);
        sync_fd = -1;
    }
    if (opt.verbose) {
        fprintf(stderr, "loadgen: ready after %d tries; session %s, revision %s\n", tries,
                session_id[0] ? session_id : "(none)", proto_version);
    }
}

int main(int argc, char **argv)
{
    const char *url = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define ARG(name) (strcmp(a, name) == 0 && v != NULL && (i++, 1))
        if (ARG("--url")) {
            url = v;
        } else if (ARG("--key")) {
            opt.key = *v ? v : NULL;
        } else if (ARG("--tool")) {
            opt.tool = v;
        } else if (ARG("--message")) {
            opt.message = v;
        } else if (ARG("-c") || ARG("--concurrency")) {
            opt.conc = atoi(v);
        } else if (ARG("-d") || ARG("--duration")) {
            opt.duration = atof(v);
        } else if (ARG("--warmup")) {
            opt.warmup = atof(v);
        } else if (ARG("--ready-timeout")) {
            opt.ready_timeout = atof(v);
        } else if (ARG("--protocol")) {
            opt.proto = v;
        } else if (ARG("--sessions")) {
            opt.sessions = atoi(v);
        } else if (ARG("--keys")) {
            split_keys(v);
        } else if (strcmp(a, "--probe-only") == 0) {
            opt.probe_only = true;
        } else if (strcmp(a, "-v") == 0) {
            opt.verbose = true;
        } else {
            usage();
        }
#undef ARG
    }
    if (url == NULL || opt.conc < 1 || opt.conc > MAX_CONNS || opt.duration <= 0 ||
        opt.warmup < 0) {
        usage();
    }
    for (const char *p = opt.message; *p; p++) {
        if (*p == '"' || *p == '\\' || (unsigned char)*p < 0x20) {
            die("--message must need no JSON escaping");
        }
    }
    signal(SIGPIPE, SIG_IGN);
    parse_url(url);
    if (opt.sessions > 0) {
        run_sessions();
        return 0;
    }
    probe();
    if (opt.probe_only) {
        printf("READY session=%s revision=%s\n", session_id[0] ? session_id : "-", proto_version);
        return 0;
    }
    run_load();
    return 0;
}
