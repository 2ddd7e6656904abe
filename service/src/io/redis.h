/* SPDX-License-Identifier: Apache-2.0 */
/*
 * hiredis 0.14 on the h2o evloop: one pipelined command connection and one
 * subscriber connection per client, reconnect with exponential backoff,
 * a deadline on every command, subscriptions re-established after reconnect.
 *
 * Async contract (STYLE §8): a command's callback runs exactly once — with the
 * reply (SG_OK), SG_ETIMEDOUT at its deadline, SG_ECLOSED when the connection
 * is down or drops before the reply, or SG_ECANCELED when the client is freed —
 * and never inside sg_redis_command*() itself (errors at start are deferred to
 * a later loop turn). The sg_redis_cmd_t must stay valid until its callback
 * has returned; a reply arriving after a timeout is discarded. A command may be
 * started again (reused) from inside its own callback.
 *
 * Connected means more than TCP: the server answered the handshake (AUTH if
 * there is a password, SELECT if db != 0, otherwise PING; SUBSCRIBE on the
 * subscriber connection) within connect_timeout_ms.
 *
 * Process requirements: SIGPIPE must be ignored (hiredis 0.14 writes with
 * write(2), so a peer that vanished would otherwise kill the process). The
 * host is handed to hiredis, which resolves it with getaddrinfo(): an IP
 * literal never blocks, a DNS name blocks the loop for the lookup on every
 * (re)connect attempt.
 *
 * Logs name the host, port, db and connection, never the password or any
 * command argument.
 */
#ifndef SG_IO_REDIS_H
#define SG_IO_REDIS_H

#include <hiredis/hiredis.h>

#include "base/err.h"
#include "io/loop.h"

typedef struct sg_redis sg_redis_t;
typedef struct sg_redis_cmd sg_redis_cmd_t;

/* reply is borrowed for the duration of the callback and NULL unless status is SG_OK.
 * A Redis error reply (REDIS_REPLY_ERROR) is delivered as SG_OK with that reply. */
typedef void (*sg_redis_cmd_cb)(sg_redis_cmd_t *cmd, int status, const redisReply *reply);
/* A message on a subscribed channel; both slices borrowed for the call. */
typedef void (*sg_redis_message_cb)(void *data, sg_str_t channel, sg_str_t message);
/* Connection state of the command connection changed (true = usable). */
typedef void (*sg_redis_state_cb)(void *data, bool connected);

/* Embed in the owner; recover it with SG_CONTAINER_OF in the callback. */
struct sg_redis_cmd {
    sg_redis_cmd_cb cb;
    sg_timer_t _timer;           /* private: deadline, or the deferred error */
    struct sg_redis_slot *_slot; /* private: hiredis privdata while in flight */
    struct sg_redis *_client;    /* private */
    h2o_linklist_t _link;        /* private: on the client's pending list */
};

typedef struct sg_redis_options {
    uint64_t connect_timeout_ms; /* default 1000 */
    uint64_t backoff_min_ms;     /* default 100 */
    uint64_t backoff_max_ms;     /* default 2000 */
} sg_redis_options_t;

/*
 * Parses redis://[[user]:password@]host[:port][/db] (default port 6379, db 0).
 * user and password may be percent-encoded (%40 for '@'); the credentials end
 * at the last '@'. host is a name, an IPv4 literal or an IPv6 literal in
 * brackets; port is 1..65535; db is 0..9999. Returns SG_OK or SG_ESETTING with
 * a message in err that never contains the credentials; on failure *out is
 * zeroed.
 */
typedef struct sg_redis_url {
    char host[256];
    int port;
    int db;
    char user[256];     /* empty: the default user (AUTH <password>) */
    char password[256]; /* empty: no AUTH */
} sg_redis_url_t;
int sg_redis_parse_url(const char *url, sg_redis_url_t *out, sg_error_t *err) SG_MUSTCHECK;

/*
 * A new client (owned by the caller) that starts connecting at once; url is
 * copied; opts may be NULL and zero fields take the defaults. The subscriber
 * connection opens with the first sg_redis_subscribe. loop is borrowed until
 * sg_redis_free.
 */
sg_redis_t *sg_redis_new(sg_loop_t *loop, const sg_redis_url_t *url,
                         const sg_redis_options_t *opts);
/*
 * Closes both connections; every pending command's callback runs with
 * SG_ECANCELED before it returns (those callbacks must not start commands on
 * r). May be called from any callback of r. NULL is a no-op.
 */
void sg_redis_free(sg_redis_t *r);
/* True while the command connection is connected (AUTH/SELECT done). */
bool sg_redis_is_connected(const sg_redis_t *r);
/*
 * Called on every state change of the command connection, on a later loop
 * turn than the change itself; data is borrowed.
 */
void sg_redis_set_state_cb(sg_redis_t *r, sg_redis_state_cb cb, void *data);

/*
 * Sends a printf-style hiredis command (see redisvFormatCommand), pipelined on
 * the command connection. timeout_ms must be > 0. cmd needs no initialisation
 * and must not be pending already. A format error, an empty command or a
 * command that changes the connection's state (SELECT, [P|S]SUBSCRIBE,
 * [P|S]UNSUBSCRIBE, MONITOR, HELLO, RESET) completes with SG_EINVAL.
 */
void sg_redis_command(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms, sg_redis_cmd_cb cb,
                      const char *fmt, ...);
/*
 * Sends a binary-safe command; argv and argvlen are copied before the call
 * returns (argvlen NULL: each argv[i] is a C string). Same rules as
 * sg_redis_command; argc < 1 completes with SG_EINVAL.
 */
void sg_redis_command_argv(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms,
                           sg_redis_cmd_cb cb, int argc, const char **argv, const size_t *argvlen);

/*
 * Subscribes to channel for the life of the client, on the subscriber
 * connection; re-subscribed after every reconnect. At most
 * SG_REDIS_MAX_CHANNELS channels, each subscribed once (more is a bug).
 * channel is copied. cb runs for each message; data is borrowed until
 * sg_redis_free. (Re)subscription also calls state_cb of
 * sg_redis_set_sub_state_cb.
 */
void sg_redis_subscribe(sg_redis_t *r, const char *channel, sg_redis_message_cb cb, void *data);
#define SG_REDIS_MAX_CHANNELS 8
/*
 * Called (on a later loop turn) with true each time every channel is
 * confirmed subscribed — after each (re)connect and after each new
 * sg_redis_subscribe — and with false when a subscribed connection drops.
 * Messages published while dropped are lost: resync on every true.
 */
void sg_redis_set_sub_state_cb(sg_redis_t *r, sg_redis_state_cb cb, void *data);

#endif
