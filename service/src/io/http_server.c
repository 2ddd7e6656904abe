/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Owns h2o's configuration and context, the listening socket and the TLS
 * context. Every request passes through dispatch(), which pins an in-flight
 * counter to the request pool so draining knows when the last one is gone.
 */
#include "io/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "base/log.h"
#include "base/mem.h"

#define MAX_ROUTES 16

typedef struct route_handler {
    h2o_handler_t super;
    sg_http_server_t *server;
    sg_http_handler_cb cb;
    void *data;
} route_handler_t;

struct sg_http_server {
    sg_loop_t *loop;
    h2o_globalconf_t config;
    h2o_hostconf_t *host;
    h2o_context_t ctx;
    bool ctx_ready;
    h2o_accept_ctx_t accept_ctx;
    h2o_socket_t *listener;
    SSL_CTX *ssl_ctx;
    int port;
    size_t inflight;
};

static const sg_log_ctx_t log_ctx = { .component = "http" };

sg_http_server_t *sg_http_server_new(sg_loop_t *loop, const sg_http_server_options_t *opts)
{
    sg_http_server_t *s = sg_xcalloc(1, sizeof(*s));
    s->loop = loop;
    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT(""));
    s->config.max_request_entity_size = opts->max_body;
    s->host = h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    return s;
}

typedef struct inflight_pin {
    sg_http_server_t *server;
} inflight_pin_t;

static void on_request_disposed(void *p)
{
    inflight_pin_t *pin = p;
    pin->server->inflight--;
}

static int dispatch(h2o_handler_t *self, h2o_req_t *req)
{
    route_handler_t *h = (route_handler_t *)self;
    inflight_pin_t *pin = h2o_mem_alloc_shared(&req->pool, sizeof(*pin), on_request_disposed);
    pin->server = h->server;
    h->server->inflight++;
    return h->cb(h->data, req);
}

void sg_http_server_route(sg_http_server_t *s, const char *path, sg_http_handler_cb cb, void *data)
{
    SG_BUG_ON(s->ctx_ready);
    h2o_pathconf_t *pathconf = h2o_config_register_path(s->host, path, 0);
    route_handler_t *h = (route_handler_t *)h2o_create_handler(pathconf, sizeof(*h));
    h->super.on_req = dispatch;
    h->server = s;
    h->cb = cb;
    h->data = data;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    sg_http_server_t *s = listener->data;
    if (err != NULL) {
        return;
    }
    for (int i = 0; i < 64; i++) {
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            break;
        }
        h2o_accept(&s->accept_ctx, sock);
    }
}

static int open_listener(const char *host, int port, int *fd_out, int *bound_port, sg_error_t *err)
{
    struct addrinfo hints = { .ai_family = AF_UNSPEC,
                              .ai_socktype = SOCK_STREAM,
                              .ai_flags = AI_NUMERICHOST | AI_PASSIVE };
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    if (getaddrinfo(host, portstr, &hints, &ai) != 0 || ai == NULL) {
        return sg_error_set(err, SG_ESETTING, "SG_LISTEN: %s is not a numeric IP address", host);
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int on = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) != 0 ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || listen(fd, SOMAXCONN) != 0) {
        int e = errno;
        if (fd >= 0) {
            close(fd);
        }
        freeaddrinfo(ai);
        return sg_error_set(err, SG_EIO, "SG_LISTEN: cannot listen on %s:%d: %s", host, port,
                            strerror(e));
    }
    freeaddrinfo(ai);
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    getsockname(fd, (struct sockaddr *)&ss, &sl);
    *bound_port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                           : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    *fd_out = fd;
    return SG_OK;
}

static int make_ssl_ctx(sg_http_server_t *s, const char *cert, const char *key, sg_error_t *err)
{
    s->ssl_ctx = SSL_CTX_new(TLS_server_method());
    SSL_CTX_set_min_proto_version(s->ssl_ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(s->ssl_ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(s->ssl_ctx, cert) != 1) {
        ERR_clear_error();
        return sg_error_set(err, SG_ESETTING, "SG_TLS_CERT: cannot load the certificate chain");
    }
    if (SSL_CTX_use_PrivateKey_file(s->ssl_ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(s->ssl_ctx) != 1) {
        ERR_clear_error();
        return sg_error_set(err, SG_ESETTING, "SG_TLS_KEY: cannot load a matching private key");
    }
    h2o_ssl_register_alpn_protocols(s->ssl_ctx, h2o_http2_alpn_protocols);
    return SG_OK;
}

int sg_http_server_listen(sg_http_server_t *s, const char *host, int port, const char *cert,
                          const char *key, sg_error_t *err)
{
    if (cert != NULL && cert[0] != '\0') {
        int rc = make_ssl_ctx(s, cert, key, err);
        if (rc != SG_OK) {
            return rc;
        }
    }
    int fd = -1;
    int rc = open_listener(host, port, &fd, &s->port, err);
    if (rc != SG_OK) {
        return rc;
    }
    h2o_context_init(&s->ctx, sg_loop_h2o(s->loop), &s->config);
    s->ctx_ready = true;
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    s->accept_ctx.ssl_ctx = s->ssl_ctx;
    s->listener = h2o_evloop_socket_create(sg_loop_h2o(s->loop), fd, H2O_SOCKET_FLAG_DONT_READ);
    s->listener->data = s;
    h2o_socket_read_start(s->listener, on_accept);
    SG_LOG_INFO(&log_ctx, "listening on %s:%d%s", host, s->port, s->ssl_ctx ? " (TLS)" : "");
    return SG_OK;
}

int sg_http_server_port(const sg_http_server_t *s)
{
    return s->port;
}

void sg_http_server_stop_accepting(sg_http_server_t *s)
{
    if (s->listener == NULL) {
        return;
    }
    h2o_socket_read_stop(s->listener);
    h2o_socket_close(s->listener);
    s->listener = NULL;
    h2o_context_request_shutdown(&s->ctx);
}

static bool timeout_empty(h2o_timeout_t *t)
{
    return h2o_linklist_is_empty(&t->_entries);
}

bool sg_http_server_close_idle(sg_http_server_t *s)
{
    if (!s->ctx_ready) {
        return true;
    }
    h2o_loop_t *loop = sg_loop_h2o(s->loop);
    /* expiring a read timeout is how h2o itself closes an idle connection */
    h2o_timeout_run(loop, &s->ctx.http1.req_timeout, UINT64_MAX);
    h2o_timeout_run(loop, &s->ctx.http2.idle_timeout, UINT64_MAX);
    h2o_timeout_run(loop, &s->ctx.handshake_timeout, UINT64_MAX);
    /* HTTP/2's graceful shutdown waits a second before its final GOAWAY: do it now */
    h2o_timeout_run(loop, &s->ctx.one_sec_timeout, UINT64_MAX);
    h2o_timeout_t *all[] = { &s->ctx.zero_timeout,
                             &s->ctx.one_sec_timeout,
                             &s->ctx.hundred_ms_timeout,
                             &s->ctx.handshake_timeout,
                             &s->ctx.http1.req_timeout,
                             &s->ctx.http2.idle_timeout,
                             &s->ctx.http2.graceful_shutdown_timeout };
    for (size_t i = 0; i < SG_ARRAY_LEN(all); i++) {
        if (!timeout_empty(all[i])) {
            return false;
        }
    }
    return true;
}

size_t sg_http_server_inflight(const sg_http_server_t *s)
{
    return s->inflight;
}

h2o_context_t *sg_http_server_context(sg_http_server_t *s)
{
    return s->ctx_ready ? &s->ctx : NULL;
}

void sg_http_server_free(sg_http_server_t *s)
{
    if (s == NULL) {
        return;
    }
    sg_http_server_stop_accepting(s);
    if (s->ctx_ready) {
        h2o_context_dispose(&s->ctx);
        /* h2o 2.2.5's evloop h2o_multithread_destroy_queue does not free the queue itself */
        free(s->ctx.queue);
    }
    h2o_config_dispose(&s->config);
    if (s->ssl_ctx != NULL) {
        SSL_CTX_free(s->ssl_ctx);
    }
    free(s);
}
