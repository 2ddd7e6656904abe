/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hiredis 0.14 on the h2o evloop. A client owns two connections (conn_t): one
 * for pipelined commands, one for SUBSCRIBE (opened on the first subscribe).
 * Each connection walks IDLE -> CONNECTING (TCP, then the handshake) -> READY,
 * and on any failure -> WAITING (backoff timer) -> CONNECTING again.
 *
 * Invariants that make every command complete exactly once:
 * - A pending sg_redis_cmd_t is on r->pending; cmd_complete() is the only
 *   place that takes it off and the only place that calls cmd->cb.
 * - hiredis gets a heap slot as privdata, never the cmd. hiredis calls every
 *   slot back exactly once (with reply == NULL when the context is freed);
 *   that call frees the slot. A cmd that completed early (deadline, cancel)
 *   has cleared slot->cmd, so the late reply is dropped.
 * - Once we let go of a redisAsyncContext (conn_detach), its hooks, data and
 *   our fd watch are gone, so nothing hiredis does later with it (it may free
 *   it later when we are inside one of its callbacks) reaches our memory.
 * - User callbacks run last in whatever called them, and never from inside
 *   hiredis' connect callback or cleanup hook (state changes go through a
 *   0 ms timer), so a user may free the client from any callback.
 */
#include "io/redis.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <ctype.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"

#define DEFAULT_CONNECT_TIMEOUT_MS 1000
#define DEFAULT_BACKOFF_MIN_MS     100
#define DEFAULT_BACKOFF_MAX_MS     2000
#define FAIL_LOG_INTERVAL_MS       10000
#define MAX_DB                     9999

typedef enum conn_state {
    CONN_IDLE = 0, /* never started (subscriber before the first subscribe) */
    CONN_CONNECTING,
    CONN_READY,
    CONN_WAITING, /* backoff before the next attempt */
    CONN_CLOSED,
} conn_state_t;

/* Handshake steps, in order; each sends at most one command and waits for its reply. */
enum { STEP_AUTH = 0, STEP_SELECT, STEP_PING, STEP_SUBSCRIBE, STEP_DONE };

typedef struct conn {
    struct sg_redis *owner;
    bool is_sub;
    conn_state_t state;
    int step;              /* next handshake step */
    bool sent_handshake;   /* a handshake command went out on this attempt */
    bool subscribing;      /* SUBSCRIBE went out on this attempt */
    redisAsyncContext *ac; /* NULL unless CONNECTING or READY */
    sg_watch_t watch;
    sg_timer_t connect_timer; /* deadline for TCP connect plus handshake */
    sg_timer_t retry_timer;
    sg_timer_t notify_timer; /* delivers state changes on a later turn */
    uint64_t backoff_ms;     /* wait before the next attempt */
    uint64_t failures;       /* failed attempts since the last READY */
    sg_log_limit_t fail_log;
    bool notify_value;   /* latest state, to be delivered */
    bool notified_value; /* last state delivered */
    sg_redis_state_cb state_cb;
    void *state_data;
} conn_t;

typedef struct sub {
    char *channel; /* owned */
    size_t len;
    sg_redis_message_cb cb;
    void *data;
    bool sent;      /* SUBSCRIBE sent on the current connection */
    bool confirmed; /* the server confirmed it on the current connection */
} sub_t;

/* hiredis privdata of one in-flight command; freed when hiredis calls back. */
struct sg_redis_slot {
    sg_redis_cmd_t *cmd; /* NULL once the command completed without this reply */
};

struct sg_redis {
    sg_loop_t *loop;
    sg_redis_url_t url;
    sg_redis_options_t opts;
    conn_t cmd;
    conn_t sub;
    h2o_linklist_t pending; /* sg_redis_cmd_t._link */
    sub_t subs[SG_REDIS_MAX_CHANNELS];
    size_t nsubs;
    bool freeing;
};

static const sg_log_ctx_t log_ctx = { .component = "redis" };

static void conn_start(conn_t *c);

/* ---- URL parsing ---- */

static int url_fail(sg_redis_url_t *out, sg_error_t *err, const char *what)
{
    explicit_bzero(out, sizeof(*out));
    return sg_error_set(err, SG_ESETTING, "redis URL: %s", what);
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9') {
        return ch - '0';
    }
    ch = (char)tolower((unsigned char)ch);
    return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* Percent-decodes [p, end) into out (NUL-terminated); false if malformed, too long or NUL. */
static bool pct_decode(const char *p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    while (p < end) {
        int ch = (unsigned char)*p++;
        if (ch == '%') {
            int hi = end - p >= 2 ? hex_value(p[0]) : -1;
            int lo = end - p >= 2 ? hex_value(p[1]) : -1;
            if (hi < 0 || lo < 0) {
                return false;
            }
            ch = hi * 16 + lo;
            p += 2;
        }
        if (ch == 0 || n + 1 >= cap) {
            return false;
        }
        out[n++] = (char)ch;
    }
    out[n] = '\0';
    return true;
}

static int parse_userinfo(const char *p, const char *at, sg_redis_url_t *out, sg_error_t *err)
{
    const char *colon = memchr(p, ':', (size_t)(at - p));
    if (colon == NULL) {
        return url_fail(out, err, "credentials must be [user]:password@");
    }
    if (!pct_decode(p, colon, out->user, sizeof(out->user))) {
        return url_fail(out, err, "malformed or too long user name");
    }
    if (!pct_decode(colon + 1, at, out->password, sizeof(out->password))) {
        return url_fail(out, err, "malformed or too long password");
    }
    if (out->password[0] == '\0') {
        return url_fail(out, err, "empty password");
    }
    return SG_OK;
}

static bool is_host_char(char ch, bool in_brackets)
{
    if (in_brackets) {
        return isxdigit((unsigned char)ch) || ch == ':' || ch == '.';
    }
    return isalnum((unsigned char)ch) || ch == '.' || ch == '-' || ch == '_';
}

/* Parses a decimal number of 1..max_digits digits at *p, advancing it. */
static bool parse_decimal(const char **p, int max_digits, int *out)
{
    int v = 0, n = 0;
    while (isdigit((unsigned char)**p)) {
        if (++n > max_digits) {
            return false;
        }
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return n > 0;
}

static int parse_hostport(const char **pp, sg_redis_url_t *out, sg_error_t *err)
{
    const char *p = *pp;
    bool bracket = *p == '[';
    p += bracket;
    const char *host = p;
    while (*p != '\0' && is_host_char(*p, bracket)) {
        p++;
    }
    size_t len = (size_t)(p - host);
    if (len == 0 || len >= sizeof(out->host) || (bracket && *p++ != ']')) {
        return url_fail(out, err, "missing or invalid host");
    }
    memcpy(out->host, host, len);
    out->host[len] = '\0';
    out->port = 6379;
    if (*p == ':') {
        p++;
        if (!parse_decimal(&p, 5, &out->port) || out->port < 1 || out->port > 65535) {
            return url_fail(out, err, "port must be 1..65535");
        }
    }
    if (*p != '\0' && *p != '/') {
        return url_fail(out, err, "unexpected character after the host");
    }
    *pp = p;
    return SG_OK;
}

int sg_redis_parse_url(const char *url, sg_redis_url_t *out, sg_error_t *err)
{
    static const char scheme[] = "redis://";
    memset(out, 0, sizeof(*out));
    if (url == NULL || strncmp(url, scheme, sizeof(scheme) - 1) != 0) {
        return url_fail(out, err, "must start with redis://");
    }
    const char *p = url + sizeof(scheme) - 1;
    const char *at = strrchr(p, '@');
    if (at != NULL) {
        int rc = parse_userinfo(p, at, out, err);
        if (rc != SG_OK) {
            return rc;
        }
        p = at + 1;
    }
    int rc = parse_hostport(&p, out, err);
    if (rc != SG_OK) {
        return rc;
    }
    if (*p == '/' && p[1] != '\0') {
        p++;
        if (!parse_decimal(&p, 4, &out->db) || out->db > MAX_DB) {
            return url_fail(out, err, "database must be a number 0..9999");
        }
    } else if (*p == '/') {
        p++;
    }
    if (*p != '\0') {
        return url_fail(out, err, "unexpected characters after the database number");
    }
    return SG_OK;
}

/* ---- event hooks: hiredis -> sg_watch ---- */

static void on_watch_read(sg_watch_t *w)
{
    conn_t *c = SG_CONTAINER_OF(w, conn_t, watch);
    redisAsyncHandleRead(c->ac);
}

static void on_watch_write(sg_watch_t *w)
{
    conn_t *c = SG_CONTAINER_OF(w, conn_t, watch);
    redisAsyncHandleWrite(c->ac);
}

static void ev_add_read(void *data)
{
    sg_watch_want_read(&((conn_t *)data)->watch, true);
}

static void ev_del_read(void *data)
{
    sg_watch_want_read(&((conn_t *)data)->watch, false);
}

static void ev_add_write(void *data)
{
    sg_watch_want_write(&((conn_t *)data)->watch, true);
}

static void ev_del_write(void *data)
{
    sg_watch_want_write(&((conn_t *)data)->watch, false);
}

static void ev_cleanup(void *data);

/*
 * Lets go of the context: no hook, callback or watch of ours is reached by it
 * afterwards. Returns the context (or NULL) for the caller to free or forget.
 */
static redisAsyncContext *conn_detach(conn_t *c)
{
    redisAsyncContext *ac = c->ac;
    c->ac = NULL;
    sg_watch_dispose(&c->watch);
    if (ac != NULL) {
        ac->data = NULL;
        memset(&ac->ev, 0, sizeof(ac->ev));
        ac->onDisconnect = NULL;
    }
    return ac;
}

static bool conn_attach(conn_t *c, redisAsyncContext *ac)
{
    if (sg_watch_init(&c->watch, c->owner->loop, ac->c.fd, on_watch_read, on_watch_write) !=
        SG_OK) {
        return false;
    }
    c->ac = ac;
    ac->data = c;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    return true;
}

/* ---- connection state ---- */

static const char *conn_name(const conn_t *c)
{
    return c->is_sub ? "subscriber" : "command";
}

static void on_notify(sg_timer_t *t)
{
    conn_t *c = SG_CONTAINER_OF(t, conn_t, notify_timer);
    bool v = c->notify_value;
    /* the command connection reports changes; the subscriber every (re)subscription */
    if (v == c->notified_value && !(c->is_sub && v)) {
        return;
    }
    c->notified_value = v;
    if (c->state_cb != NULL) {
        c->state_cb(c->state_data, v);
    }
}

static void conn_notify(conn_t *c, bool value)
{
    c->notify_value = value;
    sg_timer_start(c->owner->loop, &c->notify_timer, 0, on_notify);
}

static void on_retry(sg_timer_t *t)
{
    conn_start(SG_CONTAINER_OF(t, conn_t, retry_timer));
}

static void log_failure(conn_t *c, const char *why, bool was_ready)
{
    const sg_redis_t *r = c->owner;
    uint64_t suppressed = 0;
    if (was_ready) {
        c->fail_log.last_ms = 0; /* the first failed reconnect is logged too */
        SG_LOG_WARN(&log_ctx, "%s connection to %s:%d lost (%s); reconnecting in %llu ms",
                    conn_name(c), r->url.host, r->url.port, why, (unsigned long long)c->backoff_ms);
        return;
    }
    if (!sg_log_limit_allow(&c->fail_log, sg_clock_now_ms(), &suppressed)) {
        return;
    }
    char more[64] = "";
    if (suppressed > 0) {
        snprintf(more, sizeof(more), " (%llu similar lines suppressed)",
                 (unsigned long long)suppressed);
    }
    SG_LOG_WARN(&log_ctx, "%s connection to %s:%d failed (%s); attempt %llu, retrying in %llu ms%s",
                conn_name(c), r->url.host, r->url.port, why, (unsigned long long)c->failures,
                (unsigned long long)c->backoff_ms, more);
}

/* The current attempt or connection is gone (already detached): back off, then retry. */
static void conn_lost(conn_t *c, const char *why)
{
    sg_redis_t *r = c->owner;
    bool was_ready = c->state == CONN_READY;
    c->state = CONN_WAITING;
    c->failures++;
    sg_timer_stop(&c->connect_timer);
    for (size_t i = 0; c->is_sub && i < r->nsubs; i++) {
        r->subs[i].sent = false;
        r->subs[i].confirmed = false;
    }
    log_failure(c, why, was_ready);
    sg_timer_start(r->loop, &c->retry_timer, c->backoff_ms, on_retry);
    c->backoff_ms = SG_MIN(c->backoff_ms * 2, r->opts.backoff_max_ms);
    if (was_ready) {
        conn_notify(c, false);
    }
}

/* We give up on the current attempt ourselves (timeout, handshake refused). */
static void conn_drop(conn_t *c, const char *why)
{
    redisAsyncContext *ac = conn_detach(c);
    if (ac != NULL) {
        /* inside one of its reply callbacks hiredis defers this until the callback returns */
        redisAsyncFree(ac);
    }
    conn_lost(c, why);
}

/* hiredis dropped the connection itself (I/O error, EOF, refused connect). */
static void ev_cleanup(void *data)
{
    conn_t *c = data;
    char why[sizeof(c->ac->c.errstr)];
    snprintf(why, sizeof(why), "%s", c->ac->err != 0 ? c->ac->errstr : "connection closed");
    conn_detach(c);
    conn_lost(c, why);
}

static void conn_ready(conn_t *c)
{
    const sg_redis_t *r = c->owner;
    sg_timer_stop(&c->connect_timer);
    c->state = CONN_READY;
    if (c->is_sub) {
        SG_LOG_INFO(&log_ctx,
                    "subscriber connection to %s:%d ready on %zu channels (%llu failed attempts "
                    "before)",
                    r->url.host, r->url.port, r->nsubs, (unsigned long long)c->failures);
    } else {
        SG_LOG_INFO(&log_ctx,
                    "command connection to %s:%d db=%d ready (%llu failed attempts before)",
                    r->url.host, r->url.port, r->url.db, (unsigned long long)c->failures);
    }
    c->backoff_ms = r->opts.backoff_min_ms;
    c->failures = 0;
    c->fail_log.last_ms = 0;
    c->fail_log.suppressed = 0;
    conn_notify(c, true);
}

static void on_connect_timeout(sg_timer_t *t)
{
    conn_drop(SG_CONTAINER_OF(t, conn_t, connect_timer), "connect or handshake timed out");
}

/* ---- handshake ---- */

static void send_subscribe(conn_t *c);
static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *privdata);

static void set_keepalive(int fd)
{
    int on = 1, idle = 15, interval = 5, count = 3;
    (void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval));
    (void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

static void send_auth(conn_t *c)
{
    const sg_redis_url_t *u = &c->owner->url;
    const char *argv[3];
    size_t len[3];
    int argc = 0;
    argv[argc] = "AUTH";
    len[argc++] = 4;
    if (u->user[0] != '\0') {
        argv[argc] = u->user;
        len[argc++] = strlen(u->user);
    }
    argv[argc] = u->password;
    len[argc++] = strlen(u->password);
    (void)redisAsyncCommandArgv(c->ac, on_handshake_reply, NULL, argc, argv, len);
}

/*
 * Sends the command of step if the step applies; true when a reply is now
 * awaited. A send that fails cannot happen on a fresh context; if it did,
 * the connect timer would end the attempt.
 */
static bool handshake_send(conn_t *c, int step)
{
    const sg_redis_t *r = c->owner;
    switch (step) {
    case STEP_AUTH:
        if (r->url.password[0] == '\0') {
            return false;
        }
        send_auth(c);
        return true;
    case STEP_SELECT:
        if (c->is_sub || r->url.db == 0) {
            return false;
        }
        (void)redisAsyncCommand(c->ac, on_handshake_reply, NULL, "SELECT %d", r->url.db);
        return true;
    case STEP_PING:
        /* connected means the server answered: ping when nothing else asked it */
        if (c->is_sub || c->sent_handshake) {
            return false;
        }
        (void)redisAsyncCommand(c->ac, on_handshake_reply, NULL, "PING");
        return true;
    case STEP_SUBSCRIBE:
        if (!c->is_sub) {
            return false;
        }
        c->subscribing = true;
        send_subscribe(c);
        return true;
    default:
        return false;
    }
}

static void handshake_next(conn_t *c)
{
    while (c->step < STEP_DONE) {
        if (handshake_send(c, c->step++)) {
            c->sent_handshake = true;
            return;
        }
    }
    conn_ready(c);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    conn_t *c = ac->data;
    if (c == NULL || status != REDIS_OK) {
        return; /* a failed connect ends in ev_cleanup, which hiredis calls next */
    }
    set_keepalive(c->ac->c.fd);
    handshake_next(c);
}

/* Logs the step and the server's error code (never the whole error text). */
static void handshake_refused(conn_t *c, const redisReply *rep)
{
    static const char *const names[] = { "AUTH", "SELECT", "PING", "SUBSCRIBE" };
    char code[24], why[64];
    size_t n = 0;
    for (const char *p = rep->str; p != NULL && n + 1 < sizeof(code); p++) {
        if (!isupper((unsigned char)*p)) {
            break;
        }
        code[n++] = *p;
    }
    code[n] = '\0';
    int step = c->step - 1;
    snprintf(why, sizeof(why), "%s refused: %s",
             step >= 0 && step < (int)SG_ARRAY_LEN(names) ? names[step] : "handshake",
             n > 0 ? code : "error");
    conn_drop(c, why);
}

static void on_handshake_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    conn_t *c = ac->data;
    const redisReply *rep = reply;
    if (c == NULL || rep == NULL) {
        return; /* we let go of this context, or hiredis is freeing it */
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        handshake_refused(c, rep);
        return;
    }
    handshake_next(c);
}

static void conn_start(conn_t *c)
{
    sg_redis_t *r = c->owner;
    redisAsyncContext *ac = redisAsyncConnect(r->url.host, r->url.port);
    c->state = CONN_CONNECTING;
    c->step = STEP_AUTH;
    c->sent_handshake = false;
    c->subscribing = false;
    if (ac == NULL) {
        conn_lost(c, "out of memory");
        return;
    }
    if (ac->err != 0) {
        char why[sizeof(ac->c.errstr)];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        conn_lost(c, why);
        return;
    }
    /* hiredis 0.14 does not set close-on-exec; spawned upstreams must not inherit it */
    (void)fcntl(ac->c.fd, F_SETFD, FD_CLOEXEC);
    if (!conn_attach(c, ac)) {
        redisAsyncFree(ac);
        conn_lost(c, "cannot watch the socket");
        return;
    }
    sg_timer_start(r->loop, &c->connect_timer, r->opts.connect_timeout_ms, on_connect_timeout);
    /* only now that the hooks are in: this arms the first write, which reports the connect */
    redisAsyncSetConnectCallback(ac, on_connect);
}

static void conn_init(conn_t *c, sg_redis_t *r, bool is_sub)
{
    memset(c, 0, sizeof(*c));
    c->owner = r;
    c->is_sub = is_sub;
    c->backoff_ms = r->opts.backoff_min_ms;
    c->fail_log.interval_ms = FAIL_LOG_INTERVAL_MS;
}

static void conn_close(conn_t *c)
{
    sg_timer_stop(&c->connect_timer);
    sg_timer_stop(&c->retry_timer);
    sg_timer_stop(&c->notify_timer);
    redisAsyncContext *ac = conn_detach(c);
    if (ac != NULL) {
        /* our slots and handshake callbacks see NULL replies and detached state */
        redisAsyncFree(ac);
    }
    c->state = CONN_CLOSED;
}

/* ---- pub/sub ---- */

static sub_t *find_sub(sg_redis_t *r, const char *name, size_t len)
{
    for (size_t i = 0; i < r->nsubs; i++) {
        if (r->subs[i].len == len && memcmp(r->subs[i].channel, name, len) == 0) {
            return &r->subs[i];
        }
    }
    return NULL;
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata);

/* Sends one SUBSCRIBE for every channel not sent yet on this connection. */
static void send_subscribe(conn_t *c)
{
    sg_redis_t *r = c->owner;
    const char *argv[1 + SG_REDIS_MAX_CHANNELS];
    size_t len[1 + SG_REDIS_MAX_CHANNELS];
    int argc = 0;
    argv[argc] = "SUBSCRIBE";
    len[argc++] = 9;
    for (size_t i = 0; i < r->nsubs; i++) {
        if (!r->subs[i].sent) {
            r->subs[i].sent = true;
            argv[argc] = r->subs[i].channel;
            len[argc++] = r->subs[i].len;
        }
    }
    if (argc > 1) {
        (void)redisAsyncCommandArgv(c->ac, on_sub_reply, NULL, argc, argv, len);
    }
}

static void on_subscribed(conn_t *c)
{
    sg_redis_t *r = c->owner;
    for (size_t i = 0; i < r->nsubs; i++) {
        if (!r->subs[i].confirmed) {
            return;
        }
    }
    if (c->state == CONN_CONNECTING) {
        conn_ready(c);
        return;
    }
    SG_LOG_INFO(&log_ctx, "subscriber connection now on %zu channels", r->nsubs);
    conn_notify(c, true);
}

static void on_sub_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)privdata;
    conn_t *c = ac->data;
    const redisReply *rep = reply;
    if (c == NULL || rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 3) {
        return;
    }
    const redisReply *kind = rep->element[0], *chan = rep->element[1], *msg = rep->element[2];
    if (kind->type != REDIS_REPLY_STRING || chan->type != REDIS_REPLY_STRING) {
        return;
    }
    sub_t *s = find_sub(c->owner, chan->str, chan->len);
    if (s == NULL) {
        return;
    }
    if (strcasecmp(kind->str, "subscribe") == 0) {
        s->confirmed = true;
        on_subscribed(c);
    } else if (strcasecmp(kind->str, "message") == 0 && msg->type == REDIS_REPLY_STRING) {
        s->cb(s->data, sg_str_n(chan->str, chan->len), sg_str_n(msg->str, msg->len));
    }
}

void sg_redis_subscribe(sg_redis_t *r, const char *channel, sg_redis_message_cb cb, void *data)
{
    size_t len = strlen(channel);
    SG_BUG_ON(r->nsubs == SG_REDIS_MAX_CHANNELS);
    SG_BUG_ON(find_sub(r, channel, len) != NULL);
    sub_t *s = &r->subs[r->nsubs++];
    s->channel = sg_xmemdup(channel, len);
    s->len = len;
    s->cb = cb;
    s->data = data;
    conn_t *c = &r->sub;
    if (c->state == CONN_IDLE) {
        conn_start(c);
    } else if (c->ac != NULL && c->subscribing) {
        send_subscribe(c);
    }
}

void sg_redis_set_sub_state_cb(sg_redis_t *r, sg_redis_state_cb cb, void *data)
{
    r->sub.state_cb = cb;
    r->sub.state_data = data;
}

/* ---- commands ---- */

/* The only place a command leaves the pending list and the only caller of cmd->cb. */
static void cmd_complete(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    SG_BUG_ON(!h2o_linklist_is_linked(&cmd->_link));
    sg_timer_stop(&cmd->_timer);
    h2o_linklist_unlink(&cmd->_link);
    if (cmd->_slot != NULL) {
        cmd->_slot->cmd = NULL; /* a late reply finds no command */
        cmd->_slot = NULL;
    }
    cmd->_client = NULL;
    cmd->cb(cmd, status, status == SG_OK ? reply : NULL);
}

static void on_cmd_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct sg_redis_slot *slot = privdata;
    sg_redis_cmd_t *cmd = slot->cmd;
    free(slot);
    if (cmd == NULL) {
        return; /* completed already (deadline or cancel): the late reply is dropped */
    }
    cmd->_slot = NULL;
    /* NULL: hiredis is freeing the context, the connection is gone */
    cmd_complete(cmd, reply != NULL ? SG_OK : SG_ECLOSED, reply);
}

static void on_cmd_deadline(sg_timer_t *t)
{
    cmd_complete(SG_CONTAINER_OF(t, sg_redis_cmd_t, _timer), SG_ETIMEDOUT, NULL);
}

static void on_cmd_closed(sg_timer_t *t)
{
    cmd_complete(SG_CONTAINER_OF(t, sg_redis_cmd_t, _timer), SG_ECLOSED, NULL);
}

static void on_cmd_invalid(sg_timer_t *t)
{
    cmd_complete(SG_CONTAINER_OF(t, sg_redis_cmd_t, _timer), SG_EINVAL, NULL);
}

/* The first argument of a formatted (RESP) command; false if there is none. */
static bool command_name(const char *buf, size_t len, sg_str_t *name)
{
    const char *end = buf + len;
    const char *p = memchr(buf, '$', len);
    size_t n = 0;
    if (p == NULL) {
        return false;
    }
    for (p++; p < end && isdigit((unsigned char)*p) && n <= len; p++) {
        n = n * 10 + (size_t)(*p - '0');
    }
    if (end - p < 2 || p[0] != '\r' || p[1] != '\n' || n > (size_t)(end - p - 2)) {
        return false;
    }
    *name = sg_str_n(p + 2, n);
    return n > 0;
}

/* Commands that would change the shared connection's state or reply framing. */
static bool command_allowed(const char *buf, int len)
{
    static const char *const forbidden[] = { "select",       "subscribe",   "psubscribe",
                                             "ssubscribe",   "unsubscribe", "punsubscribe",
                                             "sunsubscribe", "monitor",     "hello",
                                             "reset" };
    sg_str_t name;
    if (buf == NULL || len <= 0 || !command_name(buf, (size_t)len, &name)) {
        return false;
    }
    for (size_t i = 0; i < SG_ARRAY_LEN(forbidden); i++) {
        if (name.len == strlen(forbidden[i]) &&
            strncasecmp(name.ptr, forbidden[i], name.len) == 0) {
            return false;
        }
    }
    return true;
}

static void cmd_begin(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms, sg_redis_cmd_cb cb)
{
    SG_BUG_ON(r->freeing);
    SG_BUG_ON(timeout_ms == 0);
    cmd->cb = cb;
    cmd->_client = r;
    cmd->_slot = NULL;
    memset(&cmd->_timer, 0, sizeof(cmd->_timer));
    h2o_linklist_insert(&r->pending, &cmd->_link);
}

/* Takes ownership of buf, from a hiredis formatter (len < 0: formatting failed). */
static void cmd_send(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms, char *buf, int len)
{
    sg_timer_cb fail = NULL;
    struct sg_redis_slot *slot = NULL;
    if (!command_allowed(buf, len)) {
        fail = on_cmd_invalid;
    } else if (r->cmd.state != CONN_READY) {
        fail = on_cmd_closed;
    } else {
        slot = sg_xmalloc(sizeof(*slot));
        slot->cmd = cmd;
        if (redisAsyncFormattedCommand(r->cmd.ac, on_cmd_reply, slot, buf, (size_t)len) !=
            REDIS_OK) {
            free(slot); /* refused: the context is going away */
            fail = on_cmd_closed;
        }
    }
    redisFreeCommand(buf);
    if (fail != NULL) {
        /* never inside the caller: the error is delivered on a later loop turn */
        sg_timer_start(r->loop, &cmd->_timer, 0, fail);
        return;
    }
    cmd->_slot = slot;
    sg_timer_start(r->loop, &cmd->_timer, timeout_ms, on_cmd_deadline);
}

void sg_redis_command(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms, sg_redis_cmd_cb cb,
                      const char *fmt, ...)
{
    char *buf = NULL;
    va_list ap;
    cmd_begin(r, cmd, timeout_ms, cb);
    va_start(ap, fmt);
    int len = redisvFormatCommand(&buf, fmt, ap);
    va_end(ap);
    if (len < 0) {
        buf = NULL;
    }
    cmd_send(r, cmd, timeout_ms, buf, len);
}

void sg_redis_command_argv(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms,
                           sg_redis_cmd_cb cb, int argc, const char **argv, const size_t *argvlen)
{
    char *buf = NULL;
    int len = -1;
    cmd_begin(r, cmd, timeout_ms, cb);
    if (argc >= 1) {
        len = redisFormatCommandArgv(&buf, argc, argv, argvlen);
    }
    if (len < 0) {
        buf = NULL;
    }
    cmd_send(r, cmd, timeout_ms, buf, len);
}

/* ---- client ---- */

sg_redis_t *sg_redis_new(sg_loop_t *loop, const sg_redis_url_t *url, const sg_redis_options_t *opts)
{
    sg_redis_t *r = sg_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->url = *url;
    if (opts != NULL) {
        r->opts = *opts;
    }
    if (r->opts.connect_timeout_ms == 0) {
        r->opts.connect_timeout_ms = DEFAULT_CONNECT_TIMEOUT_MS;
    }
    if (r->opts.backoff_min_ms == 0) {
        r->opts.backoff_min_ms = DEFAULT_BACKOFF_MIN_MS;
    }
    if (r->opts.backoff_max_ms == 0) {
        r->opts.backoff_max_ms = DEFAULT_BACKOFF_MAX_MS;
    }
    r->opts.backoff_max_ms = SG_MAX(r->opts.backoff_max_ms, r->opts.backoff_min_ms);
    h2o_linklist_init_anchor(&r->pending);
    conn_init(&r->cmd, r, false);
    conn_init(&r->sub, r, true);
    conn_start(&r->cmd);
    return r;
}

void sg_redis_free(sg_redis_t *r)
{
    if (r == NULL || r->freeing) {
        return;
    }
    r->freeing = true;
    while (!h2o_linklist_is_empty(&r->pending)) {
        cmd_complete(H2O_STRUCT_FROM_MEMBER(sg_redis_cmd_t, _link, r->pending.next), SG_ECANCELED,
                     NULL);
    }
    conn_close(&r->cmd);
    conn_close(&r->sub);
    for (size_t i = 0; i < r->nsubs; i++) {
        free(r->subs[i].channel);
    }
    explicit_bzero(&r->url, sizeof(r->url));
    free(r);
}

bool sg_redis_is_connected(const sg_redis_t *r)
{
    return r->cmd.state == CONN_READY;
}

void sg_redis_set_state_cb(sg_redis_t *r, sg_redis_state_cb cb, void *data)
{
    r->cmd.state_cb = cb;
    r->cmd.state_data = data;
}
