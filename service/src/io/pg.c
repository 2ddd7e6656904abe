/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libpq on the h2o evloop (STACK-NOTES §4.1, §4.3). Each connection is a small
 * state machine — BROKEN -> CONNECTING -> PREPARING -> IDLE <-> BUSY — driven
 * by readiness of a dup of PQsocket (sg_watch_t) and by one timer that is the
 * connect deadline while connecting and the reconnect delay while broken.
 * Queries wait in one FIFO until a connection is IDLE; each carries its own
 * deadline timer.
 *
 * Invariants: a query is in exactly one place (the queue, the refused list,
 * or a connection's `query`); every path that takes it out calls
 * query_complete() once; no user callback runs inside sg_pg_query_start()
 * (refusals go through the 0 ms `defer` timer, sending never completes
 * anything); the pool is never freed from inside one of its callbacks.
 */
#include "io/pg.h"

#include <sys/stat.h>

#include <stdio.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
#define LOG_LIMIT_MS   5000

typedef enum sg_pg_conn_state {
    SG_PG_CONN_BROKEN = 0, /* no PGconn; the timer reconnects */
    SG_PG_CONN_CONNECTING, /* PQconnectPoll in progress */
    SG_PG_CONN_PREPARING,  /* running the registered PREPAREs */
    SG_PG_CONN_IDLE,       /* ready, reading only to notice a server-side close */
    SG_PG_CONN_BUSY,       /* running `query` */
} sg_pg_conn_state_t;

typedef struct sg_pg_conn {
    sg_pg_t *pool;
    size_t index;
    sg_pg_conn_state_t state;
    PGconn *pg;
    sg_watch_t watch;
    dev_t sock_dev; /* identity of the watched socket: libpq may replace it while connecting */
    ino_t sock_ino;
    sg_timer_t timer;     /* connect deadline, or reconnect delay while BROKEN */
    uint64_t backoff_ms;  /* last reconnect delay; 0 after a success */
    size_t nprepared;     /* registered statements prepared on this connection */
    bool ready;           /* counted in pool->connected */
    sg_pg_query_t *query; /* running query (BUSY) */
    PGresult *result;     /* first error or last result of the running operation */
} sg_pg_conn_t;

typedef struct sg_pg_stmt {
    const char *name;
    const char *sql;
    int nparams;
} sg_pg_stmt_t;

typedef struct sg_pg_qlist {
    sg_pg_query_t *head;
    sg_pg_query_t *tail;
} sg_pg_qlist_t;

struct sg_pg {
    sg_loop_t *loop;
    char *conninfo;
    char target[200]; /* "host=… port=… db=…" for log lines; never the password */
    sg_pg_conn_t conns[SG_PG_MAX_CONNS];
    size_t nconns;
    sg_pg_stmt_t stmts[SG_PG_MAX_STATEMENTS];
    size_t nstmts;
    sg_pg_qlist_t queue;   /* waiting for an IDLE connection */
    sg_pg_qlist_t refused; /* refused at start; completed by `defer` */
    sg_timer_t defer;      /* 0 ms: refused callbacks and state reports */
    size_t connected;
    size_t reported; /* last count given to state_cb */
    sg_pg_state_cb state_cb;
    void *state_data;
    unsigned depth; /* > 0 while one of our callbacks runs */
    bool freeing;
    bool conninfo_ok; /* libpq's parse errors quote the string: never log them */
    sg_log_limit_t limit;
};

static const sg_log_ctx_t log_ctx = { .component = "pg" };

static void on_conn_io(sg_watch_t *w);
static void on_conn_timer(sg_timer_t *t);
static void pool_dispatch(sg_pg_t *pool);

/* ---- small helpers ---- */

static void qlist_push(sg_pg_qlist_t *l, sg_pg_query_t *q)
{
    q->_next = NULL;
    if (l->tail != NULL) {
        l->tail->_next = q;
    } else {
        l->head = q;
    }
    l->tail = q;
}

static void qlist_push_front(sg_pg_qlist_t *l, sg_pg_query_t *q)
{
    q->_next = l->head;
    l->head = q;
    if (l->tail == NULL) {
        l->tail = q;
    }
}

static sg_pg_query_t *qlist_pop(sg_pg_qlist_t *l)
{
    sg_pg_query_t *q = l->head;
    if (q != NULL) {
        l->head = q->_next;
        if (l->head == NULL) {
            l->tail = NULL;
        }
        q->_next = NULL;
    }
    return q;
}

static void qlist_remove(sg_pg_qlist_t *l, sg_pg_query_t *q)
{
    sg_pg_query_t *prev = NULL;
    for (sg_pg_query_t *p = l->head; p != NULL; prev = p, p = p->_next) {
        if (p != q) {
            continue;
        }
        if (prev != NULL) {
            prev->_next = q->_next;
        } else {
            l->head = q->_next;
        }
        if (l->tail == q) {
            l->tail = prev;
        }
        q->_next = NULL;
        return;
    }
    SG_BUG_ON(true); /* a queued query must be on the queue */
}

/* The first line of a libpq message, without its trailing newline. */
static int msg_len(const char *msg)
{
    size_t n = strcspn(msg, "\r\n");
    return (int)SG_MIN(n, (size_t)1000);
}

static bool is_error_result(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_FATAL_ERROR || st == PGRES_BAD_RESPONSE || st == PGRES_NONFATAL_ERROR;
}

static bool is_copy_result(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
}

/* host/port/db of the conninfo for log lines; the password is never copied. */
static void describe_target(sg_pg_t *pool)
{
    const char *host = NULL, *addr = NULL, *port = NULL, *db = NULL;
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(pool->conninfo, &errmsg);
    if (opts == NULL) {
        PQfreemem(errmsg);
        snprintf(pool->target, sizeof(pool->target), "conninfo=unparsable");
        return;
    }
    pool->conninfo_ok = true;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || o->val[0] == '\0') {
            continue;
        }
        if (strcmp(o->keyword, "host") == 0) {
            host = o->val;
        } else if (strcmp(o->keyword, "hostaddr") == 0) {
            addr = o->val;
        } else if (strcmp(o->keyword, "port") == 0) {
            port = o->val;
        } else if (strcmp(o->keyword, "dbname") == 0) {
            db = o->val;
        }
    }
    snprintf(pool->target, sizeof(pool->target), "host=%.80s port=%.40s db=%.60s",
             host != NULL ? host : (addr != NULL ? addr : "(default)"),
             port != NULL ? port : "(default)", db != NULL ? db : "(default)");
    PQconninfoFree(opts);
}

/* libpq's notice processor: server NOTICE/WARNING (and errors seen while idle) go to our log. */
static void on_notice(void *arg, const char *message)
{
    const sg_pg_conn_t *c = arg;
    sg_log_level_t level = SG_LOG_LEVEL_INFO;
    static const char *const loud[] = { "WARNING", "ERROR", "FATAL", "PANIC" };
    for (size_t i = 0; i < SG_ARRAY_LEN(loud); i++) {
        if (strncmp(message, loud[i], strlen(loud[i])) == 0) {
            level = SG_LOG_LEVEL_WARN;
        }
    }
    if (strncmp(message, "DEBUG", 5) == 0) {
        level = SG_LOG_LEVEL_DEBUG;
    }
    SG_LOG_AT(level, &log_ctx, "conn=%zu server says: %.*s", c->index, msg_len(message), message);
}

/* ---- query completion and the deferred queue ---- */

static void query_complete(sg_pg_t *pool, sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_timer_stop(&q->_timer);
    for (int i = 0; i < q->_nparams; i++) {
        free(q->_params[i]);
        q->_params[i] = NULL;
    }
    q->_nparams = 0;
    q->_conn = NULL;
    q->_next = NULL;
    pool->depth++;
    q->cb(q, status, res); /* q may be restarted or gone from here on */
    pool->depth--;
}

static void on_defer(sg_timer_t *t)
{
    sg_pg_t *pool = SG_CONTAINER_OF(t, sg_pg_t, defer);
    /* refusals made by these callbacks wait for the next turn */
    sg_pg_qlist_t batch = pool->refused;
    pool->refused = (sg_pg_qlist_t){ NULL, NULL };
    sg_pg_query_t *q;
    while ((q = qlist_pop(&batch)) != NULL) {
        query_complete(pool, q, q->_status, NULL);
    }
    if (pool->reported != pool->connected) {
        pool->reported = pool->connected;
        if (pool->state_cb != NULL) {
            pool->depth++;
            pool->state_cb(pool->state_data, pool->connected);
            pool->depth--;
        }
    }
}

static void defer_kick(sg_pg_t *pool)
{
    if (!pool->freeing && !sg_timer_is_active(&pool->defer)) {
        sg_timer_start(pool->loop, &pool->defer, 0, on_defer);
    }
}

/* ---- connection state machine ---- */

static void conn_set_state(sg_pg_conn_t *c, sg_pg_conn_state_t to)
{
#define BIT(s) (1u << (s))
    static const unsigned allowed[] = {
        [SG_PG_CONN_BROKEN] = BIT(SG_PG_CONN_CONNECTING),
        [SG_PG_CONN_CONNECTING] =
                BIT(SG_PG_CONN_PREPARING) | BIT(SG_PG_CONN_IDLE) | BIT(SG_PG_CONN_BROKEN),
        [SG_PG_CONN_PREPARING] = BIT(SG_PG_CONN_IDLE) | BIT(SG_PG_CONN_BROKEN),
        [SG_PG_CONN_IDLE] =
                BIT(SG_PG_CONN_BUSY) | BIT(SG_PG_CONN_PREPARING) | BIT(SG_PG_CONN_BROKEN),
        [SG_PG_CONN_BUSY] =
                BIT(SG_PG_CONN_IDLE) | BIT(SG_PG_CONN_PREPARING) | BIT(SG_PG_CONN_BROKEN),
    };
#undef BIT
    static const char *const names[] = { "broken", "connecting", "preparing", "idle", "busy" };
    SG_BUG_ON((allowed[c->state] & (1u << to)) == 0);
    SG_LOG_DEBUG(&log_ctx, "conn=%zu %s -> %s", c->index, names[c->state], names[to]);
    c->state = to;
    sg_pg_t *pool = c->pool;
    if (to == SG_PG_CONN_IDLE && !c->ready) {
        c->ready = true;
        pool->connected++;
        defer_kick(pool);
    } else if (to == SG_PG_CONN_BROKEN && c->ready) {
        c->ready = false;
        pool->connected--;
        defer_kick(pool);
    }
}

/* Watches PQsocket, re-creating the watch when libpq switched to another socket. */
static int conn_watch(sg_pg_conn_t *c)
{
    int fd = PQsocket(c->pg);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        return SG_EIO;
    }
    if (sg_watch_is_active(&c->watch) && sg_watch_fd(&c->watch) == fd && st.st_dev == c->sock_dev &&
        st.st_ino == c->sock_ino) {
        return SG_OK;
    }
    sg_watch_dispose(&c->watch);
    int rc = sg_watch_init(&c->watch, c->pool->loop, fd, on_conn_io, on_conn_io);
    if (rc != SG_OK) {
        return rc;
    }
    c->sock_dev = st.st_dev;
    c->sock_ino = st.st_ino;
    return SG_OK;
}

/* Closes the PGconn and its watch; the connection is BROKEN with no timer afterwards. */
static void conn_close(sg_pg_conn_t *c)
{
    sg_watch_dispose(&c->watch);
    sg_timer_stop(&c->timer);
    PQclear(c->result);
    c->result = NULL;
    if (c->pg != NULL) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    if (c->state != SG_PG_CONN_BROKEN) {
        conn_set_state(c, SG_PG_CONN_BROKEN);
    }
}

static void conn_retry_in(sg_pg_conn_t *c, uint64_t delay_ms)
{
    if (!c->pool->freeing) {
        sg_timer_start(c->pool->loop, &c->timer, delay_ms, on_conn_timer);
    }
}

/*
 * The connection failed (connect, PREPARE or query): log (rate-limited),
 * close, reconnect after the backoff. Its running query, if any, gets
 * SG_ECLOSED. Never called inside sg_pg_query_start with a running query.
 */
static void conn_lost(sg_pg_conn_t *c, const char *what)
{
    sg_pg_t *pool = c->pool;
    uint64_t suppressed = 0;
    c->backoff_ms = c->backoff_ms == 0 ? BACKOFF_MIN_MS : SG_MIN(2 * c->backoff_ms, BACKOFF_MAX_MS);
    if (sg_log_limit_allow(&pool->limit, sg_loop_now(pool->loop), &suppressed)) {
        const char *msg = c->pg != NULL ? PQerrorMessage(c->pg) : "";
        if (!pool->conninfo_ok) {
            msg = "connection string does not parse";
        }
        SG_LOG_WARN(&log_ctx, "conn=%zu %s %s: %.*s (retry in %llu ms, %llu similar suppressed)",
                    c->index, what, pool->target, msg_len(msg), msg,
                    (unsigned long long)c->backoff_ms, (unsigned long long)suppressed);
    }
    sg_pg_query_t *q = c->query;
    c->query = NULL;
    conn_close(c);
    conn_retry_in(c, c->backoff_ms);
    if (q != NULL) {
        query_complete(pool, q, SG_ECLOSED, NULL);
    }
}

/* Closes a healthy connection that cannot be reused as is and reconnects at once. */
static void conn_reset(sg_pg_conn_t *c, const char *why)
{
    SG_LOG_WARN(&log_ctx, "conn=%zu closed and replaced: %s", c->index, why);
    SG_BUG_ON(c->query != NULL);
    conn_close(c);
    conn_retry_in(c, 0);
}

/*
 * Sends the next PREPARE this connection lacks (state PREPARING), or makes it
 * IDLE. Returns true when it became IDLE.
 */
static bool conn_next(sg_pg_conn_t *c)
{
    sg_pg_t *pool = c->pool;
    if (c->nprepared < pool->nstmts) {
        const sg_pg_stmt_t *s = &pool->stmts[c->nprepared];
        if (PQsendPrepare(c->pg, s->name, s->sql, 0, NULL) == 0) {
            conn_lost(c, "PREPARE send failed");
            return false;
        }
        if (c->state != SG_PG_CONN_PREPARING) {
            conn_set_state(c, SG_PG_CONN_PREPARING);
            sg_timer_start(pool->loop, &c->timer, SG_PG_CONNECT_TIMEOUT_MS, on_conn_timer);
        }
        sg_watch_want_read(&c->watch, true);
        sg_watch_want_write(&c->watch, true);
        return false;
    }
    sg_timer_stop(&c->timer);
    if (c->state != SG_PG_CONN_IDLE) {
        conn_set_state(c, SG_PG_CONN_IDLE);
    }
    c->backoff_ms = 0;
    sg_watch_want_read(&c->watch, true);
    sg_watch_want_write(&c->watch, false);
    return true;
}

static void conn_connected(sg_pg_conn_t *c)
{
    if (PQsetnonblocking(c->pg, 1) != 0) {
        conn_lost(c, "cannot make connection non-blocking");
        return;
    }
    c->nprepared = 0;
    SG_LOG_INFO(&log_ctx, "conn=%zu connected %s", c->index, c->pool->target);
    if (conn_next(c)) {
        pool_dispatch(c->pool);
    }
}

static void conn_poll_connect(sg_pg_conn_t *c)
{
    PostgresPollingStatusType st = PQconnectPoll(c->pg);
    if (st == PGRES_POLLING_FAILED) {
        conn_lost(c, "connect failed");
        return;
    }
    if (conn_watch(c) != SG_OK) {
        conn_lost(c, "cannot watch socket");
        return;
    }
    if (st == PGRES_POLLING_OK) {
        conn_connected(c);
    } else {
        sg_watch_want_read(&c->watch, st == PGRES_POLLING_READING);
        sg_watch_want_write(&c->watch, st == PGRES_POLLING_WRITING);
    }
}

static void conn_start(sg_pg_conn_t *c)
{
    sg_pg_t *pool = c->pool;
    static const char *const keys[] = { "application_name", "dbname", NULL };
    const char *const vals[] = { "sentinel-gate", pool->conninfo, NULL };
    c->pg = PQconnectStartParams(keys, vals, 1);
    SG_BUG_ON(c->pg == NULL); /* out of memory */
    conn_set_state(c, SG_PG_CONN_CONNECTING);
    sg_timer_start(pool->loop, &c->timer, SG_PG_CONNECT_TIMEOUT_MS, on_conn_timer);
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, "connect failed");
        return;
    }
    PQsetNoticeProcessor(c->pg, on_notice, c);
    if (conn_watch(c) != SG_OK) {
        conn_lost(c, "cannot watch socket");
        return;
    }
    sg_watch_want_write(&c->watch, true); /* PQconnectStart leaves us as if POLLING_WRITING */
}

static void on_conn_timer(sg_timer_t *t)
{
    sg_pg_conn_t *c = SG_CONTAINER_OF(t, sg_pg_conn_t, timer);
    if (c->state == SG_PG_CONN_BROKEN) {
        conn_start(c);
    } else {
        conn_lost(c, "connect timed out");
    }
}

/* ---- running operations ---- */

static int query_status(const sg_pg_conn_t *c, const PGresult *res)
{
    if (res == NULL) {
        return SG_ECLOSED;
    }
    switch (PQresultStatus(res)) {
    case PGRES_COMMAND_OK:
    case PGRES_TUPLES_OK:
        return SG_OK;
    case PGRES_EMPTY_QUERY:
        return SG_EINVAL;
    default:
        return PQstatus(c->pg) == CONNECTION_BAD ? SG_ECLOSED : SG_EBACKEND;
    }
}

/* A PREPARE finished: count it (a rejected one is logged and skipped) and go on. */
static void conn_prepared(sg_pg_conn_t *c, const PGresult *res)
{
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, "connection lost while preparing");
        return;
    }
    if (res == NULL || PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *msg = res != NULL ? PQresultErrorMessage(res) : "";
        SG_LOG_ERROR(&log_ctx, "conn=%zu PREPARE %s failed: %.*s", c->index,
                     c->pool->stmts[c->nprepared].name, msg_len(msg), msg);
    }
    c->nprepared++;
    if (conn_next(c)) {
        pool_dispatch(c->pool);
    }
}

/*
 * The running query finished: put the connection back in shape (reset it when
 * reset_why is set), then call back.
 */
static void conn_query_done(sg_pg_conn_t *c, PGresult *res, int status, const char *reset_why)
{
    sg_pg_t *pool = c->pool;
    sg_pg_query_t *q = c->query;
    c->query = NULL;
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, "connection lost");
    } else if (reset_why != NULL) {
        conn_reset(c, reset_why);
    } else if (PQtransactionStatus(c->pg) != PQTRANS_IDLE) {
        conn_reset(c, "a query left a transaction open");
    } else {
        conn_next(c);
    }
    if (q != NULL) {
        query_complete(pool, q, status, res);
    }
    PQclear(res);
    pool_dispatch(pool);
}

static void conn_op_done(sg_pg_conn_t *c)
{
    PGresult *res = c->result;
    c->result = NULL;
    if (c->state == SG_PG_CONN_PREPARING) {
        conn_prepared(c, res);
        PQclear(res);
        return;
    }
    conn_query_done(c, res, query_status(c, res), NULL);
}

/* BUSY or PREPARING: read what arrived, send what is pending, collect results. */
static void conn_pump(sg_pg_conn_t *c)
{
    /* a dropped connection shows in PQstatus and ends PQisBusy: its results say why */
    (void)PQconsumeInput(c->pg);
    int fr = PQstatus(c->pg) == CONNECTION_BAD ? 0 : PQflush(c->pg);
    if (fr < 0) {
        conn_lost(c, "send failed");
        return;
    }
    while (!PQisBusy(c->pg)) {
        PGresult *r = PQgetResult(c->pg);
        if (r == NULL) {
            conn_op_done(c);
            return;
        }
        if (is_copy_result(r)) { /* PQgetResult would repeat it forever */
            PQclear(r);
            conn_query_done(c, NULL, SG_EINVAL, "COPY is not supported");
            return;
        }
        if (c->result != NULL && is_error_result(c->result)) {
            PQclear(r);
        } else {
            PQclear(c->result);
            c->result = r;
        }
    }
    if (PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, "connection lost");
        return;
    }
    sg_watch_want_write(&c->watch, fr == 1);
}

/* IDLE and readable: the server closed the connection, or sent a notice or notification. */
static void conn_idle_read(sg_pg_conn_t *c)
{
    if (PQconsumeInput(c->pg) == 0 || PQstatus(c->pg) == CONNECTION_BAD) {
        conn_lost(c, "connection closed by server");
        return;
    }
    PGnotify *n;
    while ((n = PQnotifies(c->pg)) != NULL) {
        PQfreemem(n);
    }
}

static void on_conn_io(sg_watch_t *w)
{
    sg_pg_conn_t *c = SG_CONTAINER_OF(w, sg_pg_conn_t, watch);
    switch (c->state) {
    case SG_PG_CONN_CONNECTING:
        conn_poll_connect(c);
        break;
    case SG_PG_CONN_PREPARING:
    case SG_PG_CONN_BUSY:
        conn_pump(c);
        break;
    case SG_PG_CONN_IDLE:
        conn_idle_read(c);
        break;
    case SG_PG_CONN_BROKEN:
        break;
    }
}

/* ---- dispatch and deadlines ---- */

/* Sends q on an IDLE connection; a query that could not be sent goes back to the queue head. */
static void conn_send(sg_pg_conn_t *c, sg_pg_query_t *q)
{
    const char *const *values = (const char *const *)q->_params;
    int ok;
    if (q->_prepared) {
        ok = PQsendQueryPrepared(c->pg, q->_sql, q->_nparams, values, NULL, NULL, 0);
    } else {
        ok = PQsendQueryParams(c->pg, q->_sql, q->_nparams, NULL, values, NULL, NULL, 0);
    }
    if (ok == 0) {
        qlist_push_front(&c->pool->queue, q);
        conn_lost(c, "send failed");
        return;
    }
    c->query = q;
    q->_conn = c;
    conn_set_state(c, SG_PG_CONN_BUSY);
    sg_watch_want_read(&c->watch, true);
    sg_watch_want_write(&c->watch, true); /* flushed by conn_pump */
}

static void pool_dispatch(sg_pg_t *pool)
{
    for (size_t i = 0; i < pool->nconns && pool->queue.head != NULL; i++) {
        sg_pg_conn_t *c = &pool->conns[i];
        if (c->state == SG_PG_CONN_IDLE) {
            conn_send(c, qlist_pop(&pool->queue));
        }
    }
}

static void on_query_deadline(sg_timer_t *t)
{
    sg_pg_query_t *q = SG_CONTAINER_OF(t, sg_pg_query_t, _timer);
    sg_pg_t *pool = q->_pool;
    sg_pg_conn_t *c = q->_conn;
    if (c == NULL) {
        qlist_remove(&pool->queue, q);
        query_complete(pool, q, pool->connected == 0 ? SG_ECLOSED : SG_ETIMEDOUT, NULL);
        return;
    }
    /* cancelling would block (PQcancel connects synchronously): drop the connection instead */
    c->query = NULL;
    query_complete(pool, q, SG_ETIMEDOUT, NULL);
    conn_reset(c, "query deadline passed");
}

/* ---- public API ---- */

int sg_pg_check_conninfo(const char *conninfo, sg_error_t *err)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo != NULL ? conninfo : "", &errmsg);
    if (opts == NULL) {
        PQfreemem(errmsg); /* may quote the string, password included */
        return sg_error_set(err, SG_ESETTING, "PostgreSQL connection string does not parse");
    }
    PQconninfoFree(opts);
    return SG_OK;
}

sg_pg_t *sg_pg_new(sg_loop_t *loop, const char *conninfo, size_t nconns)
{
    SG_BUG_ON(loop == NULL || nconns == 0 || nconns > SG_PG_MAX_CONNS);
    sg_pg_t *pool = sg_xcalloc(1, sizeof(*pool));
    pool->loop = loop;
    pool->conninfo = sg_xstrdup(conninfo != NULL ? conninfo : "");
    pool->nconns = nconns;
    pool->limit.interval_ms = LOG_LIMIT_MS;
    describe_target(pool);
    for (size_t i = 0; i < nconns; i++) {
        pool->conns[i].pool = pool;
        pool->conns[i].index = i;
        conn_start(&pool->conns[i]);
    }
    return pool;
}

void sg_pg_free(sg_pg_t *pool)
{
    if (pool == NULL) {
        return;
    }
    SG_BUG_ON(pool->depth > 0);
    pool->freeing = true;
    sg_timer_stop(&pool->defer);
    sg_pg_query_t *running[SG_PG_MAX_CONNS];
    size_t nrunning = 0;
    for (size_t i = 0; i < pool->nconns; i++) {
        sg_pg_conn_t *c = &pool->conns[i];
        if (c->query != NULL) {
            running[nrunning++] = c->query;
            c->query = NULL;
        }
        conn_close(c);
    }
    for (size_t i = 0; i < nrunning; i++) {
        query_complete(pool, running[i], SG_ECANCELED, NULL);
    }
    for (;;) {
        sg_pg_query_t *q = qlist_pop(&pool->queue);
        if (q == NULL) {
            q = qlist_pop(&pool->refused);
        }
        if (q == NULL) {
            break;
        }
        query_complete(pool, q, SG_ECANCELED, NULL);
    }
    free(pool->conninfo);
    free(pool);
}

size_t sg_pg_connected(const sg_pg_t *pool)
{
    return pool->connected;
}

void sg_pg_set_state_cb(sg_pg_t *pool, sg_pg_state_cb cb, void *data)
{
    pool->state_cb = cb;
    pool->state_data = data;
}

static const sg_pg_stmt_t *find_stmt(const sg_pg_t *pool, const char *name)
{
    for (size_t i = 0; i < pool->nstmts; i++) {
        if (strcmp(pool->stmts[i].name, name) == 0) {
            return &pool->stmts[i];
        }
    }
    return NULL;
}

void sg_pg_prepare(sg_pg_t *pool, const char *name, const char *sql, int nparams)
{
    SG_BUG_ON(pool->nstmts == SG_PG_MAX_STATEMENTS);
    SG_BUG_ON(name == NULL || name[0] == '\0' || sql == NULL || find_stmt(pool, name) != NULL);
    SG_BUG_ON(nparams < 0 || nparams > SG_PG_MAX_PARAMS);
    pool->stmts[pool->nstmts++] = (sg_pg_stmt_t){ name, sql, nparams };
    for (size_t i = 0; i < pool->nconns; i++) {
        if (pool->conns[i].state == SG_PG_CONN_IDLE) {
            conn_next(&pool->conns[i]); /* becomes PREPARING; no query runs on it */
        }
    }
}

static int check_request(const sg_pg_t *pool, const sg_pg_query_t *q, int nparams,
                         const char *const *params, const int *lengths)
{
    if (nparams < 0 || nparams > SG_PG_MAX_PARAMS || (nparams > 0 && params == NULL)) {
        return SG_EINVAL;
    }
    for (int i = 0; i < nparams && lengths != NULL; i++) {
        if (params[i] != NULL &&
            (lengths[i] < 0 || memchr(params[i], '\0', (size_t)lengths[i]) != NULL)) {
            return SG_EINVAL;
        }
    }
    if (q->_prepared) {
        const sg_pg_stmt_t *s = find_stmt(pool, q->_sql);
        if (s == NULL || s->nparams != nparams) {
            return SG_EINVAL;
        }
    }
    return SG_OK;
}

static void query_start(sg_pg_t *pool, sg_pg_query_t *q, uint64_t timeout_ms, int nparams,
                        const char *const *params, const int *lengths)
{
    int rc = check_request(pool, q, nparams, params, lengths);
    if (rc != SG_OK) {
        SG_LOG_WARN(&log_ctx, "query refused (%s): bad parameters or unknown statement",
                    q->_prepared ? q->_sql : "sql");
        q->_status = rc;
        qlist_push(&pool->refused, q);
        defer_kick(pool);
        return;
    }
    for (int i = 0; i < nparams; i++) {
        if (params[i] == NULL) {
            q->_params[i] = NULL;
            q->_lengths[i] = 0;
            continue;
        }
        size_t len = lengths != NULL ? (size_t)lengths[i] : strlen(params[i]);
        q->_params[i] = sg_xmemdup(params[i], len);
        q->_lengths[i] = (int)len;
    }
    q->_nparams = nparams;
    sg_timer_start(pool->loop, &q->_timer, timeout_ms != 0 ? timeout_ms : SG_PG_DEFAULT_TIMEOUT_MS,
                   on_query_deadline);
    qlist_push(&pool->queue, q);
    pool_dispatch(pool);
}

static void query_init(sg_pg_t *pool, sg_pg_query_t *q, const char *sql, bool prepared,
                       sg_pg_query_cb cb)
{
    SG_BUG_ON(pool == NULL || q == NULL || sql == NULL || cb == NULL);
    q->cb = cb;
    memset(&q->_timer, 0, sizeof(q->_timer));
    q->_next = NULL;
    q->_conn = NULL;
    q->_pool = pool;
    q->_sql = sql;
    q->_prepared = prepared;
    q->_status = SG_OK;
    q->_nparams = 0;
}

void sg_pg_query_start(sg_pg_t *pool, sg_pg_query_t *q, uint64_t timeout_ms, const char *sql,
                       int nparams, const char *const *params, const int *lengths,
                       sg_pg_query_cb cb)
{
    query_init(pool, q, sql, false, cb);
    query_start(pool, q, timeout_ms, nparams, params, lengths);
}

void sg_pg_exec_prepared(sg_pg_t *pool, sg_pg_query_t *q, uint64_t timeout_ms, const char *name,
                         int nparams, const char *const *params, const int *lengths,
                         sg_pg_query_cb cb)
{
    query_init(pool, q, name, true, cb);
    query_start(pool, q, timeout_ms, nparams, params, lengths);
}
