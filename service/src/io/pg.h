/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pool of non-blocking libpq connections on the h2o evloop: async connect,
 * a query queue served by whichever connection is idle, statements prepared
 * on every connection after it connects, reconnect with backoff (100 ms
 * doubling to 2 s), server notices routed to our log (component "pg"), and a
 * deadline on every query. One query runs per connection at a time.
 *
 * Async contract (STYLE §8): a query's callback runs exactly once — SG_OK with
 * the last result (PGRES_COMMAND_OK or PGRES_TUPLES_OK), SG_EBACKEND with the
 * failing result (its message via PQresultErrorMessage), SG_ETIMEDOUT at the
 * deadline (the connection running it is closed and replaced, since
 * cancelling would block), SG_ECLOSED when the connection broke under the
 * query or no connection was up when its deadline came, SG_EINVAL for a
 * request the pool refuses (see below), or SG_ECANCELED when the pool is
 * freed — and never inside sg_pg_query_start() / sg_pg_exec_prepared(). The
 * sg_pg_query_t must stay valid until its callback has returned; it may be
 * started again from inside its own callback. res is borrowed for the
 * callback; it is non-NULL for SG_OK and SG_EBACKEND, and may be NULL otherwise.
 *
 * A query that the server has not seen is never lost to a broken connection:
 * queued queries wait for any connection until their own deadline.
 * Queries run in autocommit mode; a query that leaves a transaction open (a
 * bare BEGIN) gets its result, then its connection is closed and replaced.
 */
#ifndef SG_IO_PG_H
#define SG_IO_PG_H

#include <libpq-fe.h>

#include "base/err.h"
#include "io/loop.h"

typedef struct sg_pg sg_pg_t;
typedef struct sg_pg_query sg_pg_query_t;

typedef void (*sg_pg_query_cb)(sg_pg_query_t *q, int status, const PGresult *res);
typedef void (*sg_pg_state_cb)(void *data, size_t connected);

#define SG_PG_MAX_PARAMS         32
#define SG_PG_MAX_CONNS          16
#define SG_PG_MAX_STATEMENTS     32
#define SG_PG_DEFAULT_TIMEOUT_MS 5000 /* used when a query passes timeout_ms 0 */
#define SG_PG_CONNECT_TIMEOUT_MS 5000 /* connect plus PREPAREs */

/* Embed in the owner; recover it with SG_CONTAINER_OF in the callback. */
struct sg_pg_query {
    sg_pg_query_cb cb;
    /* private to io/pg.c */
    sg_timer_t _timer;
    sg_pg_query_t *_next;
    struct sg_pg_conn *_conn;
    struct sg_pg *_pool;
    const char *_sql; /* SQL text, or the prepared statement name */
    bool _prepared;
    int _status; /* outcome of a query refused at start, delivered on a later loop turn */
    int _nparams;
    char *_params[SG_PG_MAX_PARAMS]; /* owned copies; NULL = SQL NULL */
    int _lengths[SG_PG_MAX_PARAMS];
};

/*
 * Checks that conninfo (a libpq URI or key=value string) parses. The message
 * in err never quotes the string (it may hold a password). SG_OK or SG_ESETTING.
 */
int sg_pg_check_conninfo(const char *conninfo, sg_error_t *err) SG_MUSTCHECK;

/*
 * A new pool of nconns connections (1..SG_PG_MAX_CONNS) to conninfo (a libpq
 * URI or key=value string; copied; NULL means libpq's defaults), owned by the
 * caller; connecting starts at once and never gives up (a conninfo that does
 * not parse fails every attempt, logged). Logs name host, port and database
 * only, never the password. application_name defaults to "sentinel-gate".
 * libpq resolves a host name synchronously when a connection starts (and on
 * each reconnect): prefer an address or a name /etc/hosts answers.
 */
sg_pg_t *sg_pg_new(sg_loop_t *loop, const char *conninfo, size_t nconns);
/*
 * Closes every connection; running queries, then queued ones (in order),
 * complete with SG_ECANCELED before it returns; a query started from one of
 * those callbacks is canceled too. NULL is a no-op. Must not be called from
 * inside a callback of this pool.
 */
void sg_pg_free(sg_pg_t *pool);
/* Number of connections currently connected and ready (IDLE or BUSY). */
size_t sg_pg_connected(const sg_pg_t *pool);
/*
 * cb runs on a later loop turn whenever the number of ready connections
 * changed (it reports the new number); data is borrowed until sg_pg_free.
 */
void sg_pg_set_state_cb(sg_pg_t *pool, sg_pg_state_cb cb, void *data);

/*
 * Registers a statement prepared on every connection (now and after each
 * reconnect) before it serves queries. name and sql must be static strings.
 * Call before queries use it; at most SG_PG_MAX_STATEMENTS statements, names
 * unique (both checked with SG_BUG_ON). nparams is the number of parameters
 * sg_pg_exec_prepared must pass. A PREPARE the server rejects is logged and
 * skipped: queries using it then fail with SG_EBACKEND.
 */
void sg_pg_prepare(sg_pg_t *pool, const char *name, const char *sql, int nparams);

/*
 * Queues a query (one SQL statement), sent at once when a connection is idle.
 * sql must stay valid until the callback (use string literals). params (text
 * format; NULL entries are SQL NULL; lengths may be NULL for NUL-terminated
 * text, otherwise give each value's length) are copied before it returns.
 * SG_EINVAL (on a later loop turn) for more than SG_PG_MAX_PARAMS parameters
 * or a value containing a NUL byte (text format cannot carry it: send bytea
 * hex-encoded). timeout_ms is the deadline from now (0 = SG_PG_DEFAULT_TIMEOUT_MS);
 * use a few fixed values, since each distinct duration is one loop queue.
 */
void sg_pg_query_start(sg_pg_t *pool, sg_pg_query_t *q, uint64_t timeout_ms, const char *sql,
                       int nparams, const char *const *params, const int *lengths,
                       sg_pg_query_cb cb);
/*
 * Same, executing a statement registered with sg_pg_prepare. SG_EINVAL (on a
 * later loop turn) if name is not registered or nparams differs from it.
 */
void sg_pg_exec_prepared(sg_pg_t *pool, sg_pg_query_t *q, uint64_t timeout_ms, const char *name,
                         int nparams, const char *const *params, const int *lengths,
                         sg_pg_query_cb cb);

#endif
