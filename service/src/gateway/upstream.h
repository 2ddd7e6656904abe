/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The MCP client the gate runs towards one upstream server of one tenant, on
 * this replica, over a transport (stdio or Streamable HTTP). It owns the
 * upstream's lifecycle — initialize handshake, tool listing (all pages),
 * restart with exponential backoff, list_changed — and the table of calls in
 * flight: every forwarded request gets a fresh numeric id, its progress token
 * is replaced by ours, and everything the upstream sends back is routed to the
 * one call it belongs to (MCP-NOTES §5.7, §8.1), never broadcast.
 */
#ifndef SG_GATEWAY_UPSTREAM_H
#define SG_GATEWAY_UPSTREAM_H

#include "base/buf.h"
#include "base/err.h"
#include "core/tenant.h"
#include "gateway/transport.h"

typedef struct sg_upstream sg_upstream_t;
typedef struct sg_upcall sg_upcall_t;

typedef enum sg_upstream_state {
    SG_UPSTREAM_DOWN = 0, /* not started, or waiting to restart */
    SG_UPSTREAM_STARTING, /* transport starting / initialize sent */
    SG_UPSTREAM_LISTING,  /* initialized, listing tools */
    SG_UPSTREAM_READY,
    SG_UPSTREAM_FAILED, /* gave up after its retry budget; still retries slowly */
    SG_UPSTREAM_STOPPED,
} sg_upstream_state_t;

typedef struct sg_upcall_ops {
    /*
     * A message the upstream sent for this call before its response: a progress
     * notification (token already mapped back to the agent's), a log message, or a
     * server->client request (its id replaced by a gateway id "sg-<n>", answer with
     * sg_upstream_answer). json is borrowed for the call.
     */
    void (*on_interim)(sg_upcall_t *c, sg_str_t json, bool is_request);
    /*
     * The end of the call, exactly once: status SG_OK with the upstream's response
     * message (raw JSON of the whole message; its "result" or "error" is relayed),
     * or SG_ETIMEDOUT / SG_EUPSTREAM (response empty).
     */
    void (*on_done)(sg_upcall_t *c, int status, sg_str_t response);
} sg_upcall_ops_t;

/* Embed in the owner. Valid from sg_upstream_call until on_done returned or cancel. */
struct sg_upcall {
    const sg_upcall_ops_t *ops;
    /* private */
    sg_upstream_t *_up;
    uint64_t _id;
    char *_progress_token; /* the agent's token, raw JSON; owned */
    sg_timer_t _timer;
    sg_upcall_t *_next;
    sg_upcall_t *_prev;
    uint64_t _started_us;
};

/* Tool of an upstream as listed: raw JSON of the definition and its name (owned). */
typedef struct sg_uptool {
    char *name;
    char *raw;
    size_t raw_len;
} sg_uptool_t;

typedef struct sg_upstream_hooks {
    /* The upstream's tool list changed (after a (re)listing that differs). */
    void (*on_tools_changed)(void *data, sg_upstream_t *up);
    /* State changed (for readiness). */
    void (*on_state)(void *data, sg_upstream_t *up);
    void *data;
} sg_upstream_hooks_t;

/*
 * A client for cfg (borrowed from the snapshot snap, which is referenced until free).
 * It starts at once. http_ctx serves HTTP upstreams (may be NULL when there are none).
 */
sg_upstream_t *sg_upstream_new(sg_loop_t *loop, h2o_context_t *http_ctx, sg_tenant_t *snap,
                               const sg_upstream_cfg_t *cfg, const sg_upstream_hooks_t *hooks);
/* Stops and frees the upstream; calls in flight end with SG_EUPSTREAM before it returns. */
void sg_upstream_free(sg_upstream_t *up);

const sg_upstream_cfg_t *sg_upstream_cfg(const sg_upstream_t *up);
sg_upstream_state_t sg_upstream_state(const sg_upstream_t *up);
const char *sg_upstream_state_name(sg_upstream_state_t s);
/* The tools as last listed (valid until the next on_tools_changed). */
const sg_uptool_t *sg_upstream_tools(const sg_upstream_t *up, size_t *n);
/* The server capabilities object from initialize (raw JSON; "{}" before). */
sg_str_t sg_upstream_capabilities(const sg_upstream_t *up);
bool sg_upstream_has_capability(const sg_upstream_t *up, const char *name);

/*
 * Forwards a request. params_raw (may be empty) is sent as is except for
 * _meta.progressToken, which is replaced by ours and mapped back on the way in.
 * Returns SG_OK (on_done follows exactly once, never inside this call) or
 * SG_EUPSTREAM when the upstream is not ready (no callback).
 */
int sg_upstream_call(sg_upstream_t *up, sg_upcall_t *c, const char *method, sg_str_t params_raw,
                     uint64_t timeout_ms, const sg_upcall_ops_t *ops) SG_MUSTCHECK;
/*
 * Abandons a call: sends notifications/cancelled upstream (with reason, may be NULL);
 * on_done will not be called.
 */
void sg_upstream_cancel(sg_upcall_t *c, const char *reason);
/* Sends a notification upstream (e.g. logging/setLevel is a request; roots changed is not). */
int sg_upstream_notify(sg_upstream_t *up, const char *method, sg_str_t params_raw);
/*
 * Answers a server->client request that was relayed with gateway id gw_id
 * ("sg-<n>" raw, with quotes): body_raw is the agent's "result" or "error" member
 * text, is_error says which. Unknown ids are ignored (SG_ENOTFOUND).
 */
int sg_upstream_answer(sg_upstream_t *up, sg_str_t gw_id, sg_str_t body_raw, bool is_error);

#endif
