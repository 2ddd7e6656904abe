/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A pool of non-blocking libpq connections on the h2o evloop: async connect,
 * a query queue served by whichever connection is idle, statements prepared
 * on every connection after it connects, reconnect with backoff, server
 * notices routed to our log, and a deadline on every query.
 *
 * Async contract (STYLE §8): a query's callback runs exactly once — SG_OK with
 * the last result (PGRES_COMMAND_OK or PGRES_TUPLES_OK), SG_EBACKEND with the
 * failing result (its message via PQresultErrorMessage), SG_ETIMEDOUT at the
 * deadline (the connection running it is closed and replaced, since
 * cancelling would block), SG_ECLOSED when the connection broke or no
 * connection came up before the deadline, or SG_ECANCELED when the pool is
 * freed — and never inside sg_pg_query_start(). The sg_pg_query_t must stay
 * valid until its callback has returned. res is borrowed for the callback.
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

#define SG_PG_MAX_PARAMS 32

/* Embed in the owner; recover it with SG_CONTAINER_OF in the callback. */
struct sg_pg_query {
    sg_pg_query_cb cb;
    /* private to io/pg.c */
    sg_timer_t _timer;
    sg_pg_query_t *_next;
    struct sg_pg_conn *_conn;
    struct sg_pg *_pool;
    const char *_sql;      /* SQL text, or the prepared statement name */
    bool _prepared;
    int _nparams;
    char *_params[SG_PG_MAX_PARAMS]; /* owned copies; NULL = SQL NULL */
    int _lengths[SG_PG_MAX_PARAMS];
};

/*
 * A new pool of nconns connections (1..16) to conninfo (a libpq URI or key=value
 * string), owned by the caller; connecting starts at once. The conninfo's
 * password never appears in a log line.
 */
sg_pg_t *sg_pg_new(sg_loop_t *loop, const char *conninfo, size_t nconns);
/* Closes every connection; queued and running queries complete with SG_ECANCELED before it returns. */
void sg_pg_free(sg_pg_t *pool);
/* Number of connections currently connected and ready. */
size_t sg_pg_connected(const sg_pg_t *pool);
void sg_pg_set_state_cb(sg_pg_t *pool, sg_pg_state_cb cb, void *data);

/*
 * Registers a statement prepared on every connection (now and after each
 * reconnect) before it serves queries. name and sql must be static strings.
 * Call before queries use it; at most 32 statements.
 */
void sg_pg_prepare(sg_pg_t *pool, const char *name, const char *sql, int nparams);

/*
 * Queues a query. sql must stay valid until the callback (use string literals).
 * params (text format; NULL entries are SQL NULL; lengths may be NULL for
 * NUL-terminated text) are copied. At most SG_PG_MAX_PARAMS parameters.
 */
void sg_pg_query_start(sg_pg_t *pool, sg_pg_query_t *q, uint64_t timeout_ms, const char *sql,
        int nparams, const char *const *params, const int *lengths, sg_pg_query_cb cb);
/* Same, executing a statement registered with sg_pg_prepare. */
void sg_pg_exec_prepared(sg_pg_t *pool, sg_pg_query_t *q, uint64_t timeout_ms, const char *name,
        int nparams, const char *const *params, const int *lengths, sg_pg_query_cb cb);

#endif
