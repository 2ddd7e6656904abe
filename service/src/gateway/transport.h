/* SPDX-License-Identifier: Apache-2.0 */
/*
 * How the gate talks to one upstream MCP server: a message pipe with two
 * implementations, stdio (a child process, newline-delimited JSON-RPC) and
 * Streamable HTTP (h2o's http1client; every message is a POST whose answer
 * is 202, one JSON body, or an SSE stream of messages).
 *
 * The transport knows nothing of MCP methods, ids or sessions of agents: the
 * upstream module (gateway/upstream.c) runs the MCP client on top of it
 * (initialize, id remapping, timeouts). A transport only moves whole JSON
 * texts and tells which POST a message arrived on (its "origin"), which is
 * how server->client traffic is attributed to the call that caused it.
 *
 * Callback rules (STYLE §8): events are never delivered inside a call into the
 * transport (start/send/stop defer their errors); after on_down no further
 * events arrive until start() is called again; after free() none at all.
 */
#ifndef SG_GATEWAY_TRANSPORT_H
#define SG_GATEWAY_TRANSPORT_H

#include <h2o.h>

#include "base/err.h"
#include "base/sg.h"
#include "io/loop.h"

typedef struct sg_transport sg_transport_t;

typedef struct sg_transport_events {
    /* The transport can carry messages (stdio: child spawned; HTTP: immediately after start). */
    void (*on_ready)(void *owner);
    /*
     * One complete JSON text from the upstream, unvalidated (the receiver validates it).
     * json is borrowed for the call. origin is the tag passed to send() for the POST whose
     * response carried it, or NULL (stdio, or the HTTP GET stream).
     */
    void (*on_message)(void *owner, sg_str_t json, void *origin);
    /*
     * HTTP only: the exchange started by send(..., origin) is over. status is SG_OK when the
     * upstream answered (202, JSON or a complete SSE stream), otherwise SG_EUPSTREAM /
     * SG_ETIMEDOUT / SG_ECLOSED / SG_ESESSION (the upstream said 404 to our session id:
     * re-initialize). Called exactly once per send() with a non-NULL origin.
     */
    void (*on_origin_done)(void *owner, void *origin, int status);
    /* The transport died (child exited, stream broken); reason is for logs, never secret. */
    void (*on_down)(void *owner, const char *reason);
} sg_transport_events_t;

typedef struct sg_transport_ops {
    /* Starts (spawns the child / resets the HTTP session). SG_OK or an error; on_ready follows. */
    int (*start)(sg_transport_t *t);
    /*
     * Sends one JSON text (copied). origin (may be NULL) tags responses for attribution and,
     * for HTTP, gets exactly one on_origin_done. Returns SG_OK, or SG_ECLOSED when not started.
     */
    int (*send)(sg_transport_t *t, sg_str_t json, void *origin);
    /*
     * Forgets origin: no more on_message/on_origin_done for it (HTTP aborts that POST).
     * Used when the call that owned it is gone.
     */
    void (*forget)(sg_transport_t *t, void *origin);
    /* Stops gracefully (stdio: close stdin, then SIGTERM after 2 s, SIGKILL after 5 s; HTTP:
     * DELETE the upstream session). on_down follows once stopped. */
    void (*stop)(sg_transport_t *t);
    /* Frees at once (kills a child still running, reaps it later). No events after this. */
    void (*free)(sg_transport_t *t);
} sg_transport_ops_t;

/* Every transport starts with this header. */
struct sg_transport {
    const sg_transport_ops_t *ops;
    const sg_transport_events_t *events;
    void *owner;
    sg_loop_t *loop;
    const char *name; /* "<tenant>/<upstream>" for logs, borrowed from the owner */
};

/* ---- stdio ---- */

typedef struct sg_stdio_spec {
    const char *command;     /* looked up in PATH */
    const char *const *args; /* argv[1..], nargs entries */
    size_t nargs;
    const char *const *env; /* "KEY=VALUE" entries added to PATH, HOME and LANG of the gate */
    size_t nenv;
    const char *cwd; /* NULL = the gate's */
    size_t max_line; /* largest accepted stdout line in bytes (default 16 MiB) */
} sg_stdio_spec_t;

/*
 * A stdio transport (not started). spec and everything it points to are copied.
 * The child gets only PATH, HOME and LANG from the gate's environment plus spec->env;
 * its stderr lines go to our log (component "upstream", the transport's name);
 * it is always reaped.
 */
sg_transport_t *sg_transport_stdio_new(sg_loop_t *loop, const sg_stdio_spec_t *spec,
                                       const sg_transport_events_t *events, void *owner,
                                       const char *name);

/* ---- Streamable HTTP ---- */

typedef struct sg_http_spec {
    const char *url;            /* http:// or https:// */
    const char *const *headers; /* "Name: value" entries injected on every request (credentials) */
    size_t nheaders;
    uint64_t io_timeout_ms; /* connect / idle read bound (default 30 s) */
    const char *ca_file;    /* NULL = system CAs */
} sg_http_spec_t;

/*
 * A Streamable HTTP transport (not started). TLS upstreams have their certificate chain
 * and host name verified by OpenSSL itself (X509_VERIFY_PARAM_set1_host / set1_ip_asc on a
 * per-upstream SSL_CTX), because h2o 2.2.5 skips the name check under TLS 1.3. The upstream's
 * Mcp-Session-Id (from the answer to initialize) and MCP-Protocol-Version (set with
 * sg_transport_http_set_version) are sent on every later request.
 */
sg_transport_t *sg_transport_http_new(sg_loop_t *loop, h2o_context_t *ctx,
                                      const sg_http_spec_t *spec,
                                      const sg_transport_events_t *events, void *owner,
                                      const char *name);
void sg_transport_http_set_version(sg_transport_t *t, const char *protocol_version);

#endif
