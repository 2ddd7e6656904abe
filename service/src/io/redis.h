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
 * has returned; a reply arriving after a timeout is discarded.
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
    sg_timer_t _timer;
    struct sg_redis_slot *_slot; /* private */
    struct sg_redis *_client;    /* private */
};

typedef struct sg_redis_options {
    uint64_t connect_timeout_ms; /* default 1000 */
    uint64_t backoff_min_ms;     /* default 100 */
    uint64_t backoff_max_ms;     /* default 2000 */
} sg_redis_options_t;

/*
 * Parses redis://[[user]:password@]host[:port][/db] (default port 6379, db 0).
 * Returns SG_OK or SG_ESETTING with a message in err that never contains the password.
 */
typedef struct sg_redis_url {
    char host[256];
    int port;
    int db;
    char password[256];
} sg_redis_url_t;
int sg_redis_parse_url(const char *url, sg_redis_url_t *out, sg_error_t *err) SG_MUSTCHECK;

/* A new client (owned by the caller) that starts connecting at once; opts may be NULL. */
sg_redis_t *sg_redis_new(sg_loop_t *loop, const sg_redis_url_t *url, const sg_redis_options_t *opts);
/* Closes both connections; pending commands complete with SG_ECANCELED before it returns. NULL is a no-op. */
void sg_redis_free(sg_redis_t *r);
/* True while the command connection is connected (AUTH/SELECT done). */
bool sg_redis_is_connected(const sg_redis_t *r);
/* Called on every state change of the command connection; data is borrowed. */
void sg_redis_set_state_cb(sg_redis_t *r, sg_redis_state_cb cb, void *data);

/* Sends a printf-style hiredis command (see redisvFormatCommand). */
void sg_redis_command(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms, sg_redis_cmd_cb cb,
        const char *fmt, ...);
/* Sends a binary-safe command; argv and argvlen are copied before the call returns. */
void sg_redis_command_argv(sg_redis_t *r, sg_redis_cmd_t *cmd, uint64_t timeout_ms,
        sg_redis_cmd_cb cb, int argc, const char **argv, const size_t *argvlen);

/*
 * Subscribes to channel for the life of the client, on the subscriber
 * connection; re-subscribed after every reconnect. At most 8 channels.
 * cb runs for each message; data is borrowed until sg_redis_free.
 * (Re)subscription also calls state_cb of sg_redis_set_sub_state_cb.
 */
void sg_redis_subscribe(sg_redis_t *r, const char *channel, sg_redis_message_cb cb, void *data);
/* Called when the subscriber connection (re)subscribed (true) or dropped (false). */
void sg_redis_set_sub_state_cb(sg_redis_t *r, sg_redis_state_cb cb, void *data);

#endif
