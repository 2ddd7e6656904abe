/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The HTTP side of a process: h2o's global/host/path configuration, one
 * listener (plain or TLS with ALPN h2), route registration, and counting of
 * in-flight requests so SIGTERM can drain. No business rules live here.
 *
 * Protocol hardening common to every route: no Server header, a request body
 * limit (h1: 413 and close; h2: RST_STREAM, STACK-NOTES §6.1 item 5), and
 * h2o's compiled-in header limits.
 */
#ifndef SG_IO_HTTP_SERVER_H
#define SG_IO_HTTP_SERVER_H

#include <h2o.h>

#include "base/err.h"
#include "io/loop.h"

typedef struct sg_http_server sg_http_server_t;

/*
 * A route handler. Must produce a response for req (now or later). Returns 0.
 * data is the pointer given at registration.
 */
typedef int (*sg_http_handler_cb)(void *data, h2o_req_t *req);

typedef struct sg_http_server_options {
    size_t max_body; /* bytes */
} sg_http_server_options_t;

/* A server with no routes and no listener yet; the caller owns it. */
sg_http_server_t *sg_http_server_new(sg_loop_t *loop, const sg_http_server_options_t *opts);
/*
 * Registers cb for path (segment prefix on the normalised path, h2o's rule:
 * "/mcp" also receives "/mcp/x"). All routes before sg_http_server_listen.
 */
void sg_http_server_route(sg_http_server_t *s, const char *path, sg_http_handler_cb cb, void *data);
/*
 * Binds host:port and starts accepting. With cert/key (PEM files, both non-empty)
 * serves TLS 1.2+ with ALPN h2/http1.1. Returns SG_OK or SG_EIO/SG_ESETTING with err set.
 */
int sg_http_server_listen(sg_http_server_t *s, const char *host, int port, const char *cert,
                          const char *key, sg_error_t *err) SG_MUSTCHECK;
/* The port actually bound (useful with port 0). */
int sg_http_server_port(const sg_http_server_t *s);
/*
 * Stops accepting new connections and asks h2o to shut down gracefully: HTTP/1.1
 * responses stop keeping connections alive, HTTP/2 connections get GOAWAY.
 * Requests in flight continue. Idempotent.
 */
void sg_http_server_stop_accepting(sg_http_server_t *s);
/*
 * Closes connections that wait idle for a request (their read timeouts are run at
 * once). Returns true when no connection is left on h2o's timers, i.e. the
 * context can be disposed.
 */
bool sg_http_server_close_idle(sg_http_server_t *s);
/* Requests whose handler ran and whose memory h2o has not yet released. */
size_t sg_http_server_inflight(const sg_http_server_t *s);
/* The h2o context (its proxy.client_ctx serves upstream HTTP clients). */
h2o_context_t *sg_http_server_context(sg_http_server_t *s);
/* Frees the server; the loop must still exist. NULL is a no-op. */
void sg_http_server_free(sg_http_server_t *s);

#endif
