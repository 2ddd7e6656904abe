/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by gate.c (tenants, Redis sync, routes) and mcp.c (the /mcp
 * endpoint). Nothing outside the gateway module includes this.
 */
#ifndef SG_GATEWAY_GATE_INT_H
#define SG_GATEWAY_GATE_INT_H

#include "core/session_token.h"
#include "core/tenant.h"
#include "gateway/gate.h"
#include "gateway/killswitch.h"
#include "gateway/upstream.h"

typedef struct sg_gate_tenant {
    sg_gate_t *gate;
    char *name;
    sg_tenant_t *snap;    /* current snapshot (one reference), NULL until loaded */
    int64_t want_version; /* from sg:tenants */
    int64_t bad_version;  /* a version that failed to parse: not retried */
    bool loading;
    bool seen; /* present in the last sg:tenants listing */
    sg_redis_cmd_t load_cmd;
    sg_upstream_t **ups;      /* parallel to snap->upstreams */
    sg_upstream_t **retiring; /* parallel to ups: the previous definition of a changed
                                 upstream, serving until the new one is ready (or NULL) */
    struct sg_gate_tenant *next;
} sg_gate_tenant_t;

typedef struct sg_gate_stream sg_gate_stream_t; /* a GET /mcp SSE stream (mcp.c) */

/* Authentication failures per presented-key prefix, for rate-limited audit rows (mcp.c). */
#define SG_AUTH_AUDIT_SLOTS 64
typedef struct sg_auth_failures {
    char prefix[8];
    uint64_t last_ms;
    uint64_t count;
} sg_auth_failures_t;

struct sg_gate {
    sg_runtime_t *rt;
    sg_loop_t *loop;
    sg_redis_t *redis;
    sg_log_ctx_t log;
    /* session signing secret (sg:secret:session) */
    uint8_t secret[128];
    size_t secret_len;
    bool have_secret;
    sg_redis_cmd_t secret_cmd;
    bool secret_busy;
    /* tenants */
    sg_gate_tenant_t *tenants;
    bool tenants_listed;
    sg_timer_t poll_timer;
    sg_redis_cmd_t poll_cmd;
    bool poll_busy;
    /* ended sessions: nonces with their expiry (wall ms) */
    char (*revoked)[33];
    uint64_t *revoked_exp;
    size_t nrevoked;
    sg_redis_cmd_t revoked_cmd;
    bool revoked_busy;
    /* GET streams held by this replica */
    sg_gate_stream_t *streams;
    struct sg_exchange *exchanges; /* POSTs in flight on this replica */
    sg_killswitch_t *killswitch;
    struct sg_policy_ctx *policy_ctx; /* evaluation scratch of this loop */
    struct sg_audit *audit;           /* the audit writer of this replica */
    sg_auth_failures_t auth_failures[SG_AUTH_AUDIT_SLOTS];
    bool draining;
};

/* The loaded tenant owning the API key hash, with its identity; NULL when unknown. */
sg_gate_tenant_t *sg_gate_auth(sg_gate_t *gate, const uint8_t key_sha256[32],
                               const sg_identity_t **identity);
sg_gate_tenant_t *sg_gate_find_tenant(sg_gate_t *gate, const char *name);
/*
 * The upstream that serves slot i of t's snapshot now: the current definition once it
 * is ready, the retiring previous definition until then (make before break).
 */
sg_upstream_t *sg_gate_upstream(const sg_gate_tenant_t *t, size_t i);
bool sg_gate_is_revoked(const sg_gate_t *gate, const char *nonce);
/* Records an ended session locally and in Redis (sorted set + event). */
void sg_gate_revoke(sg_gate_t *gate, const char *nonce, uint64_t expires_ms);
/* Publishes "tools <tenant>" so every replica tells its GET streams. */
void sg_gate_publish_tools_changed(sg_gate_t *gate, const char *tenant);

/*
 * The kill-switch verdict for a call of (snap's tenant, identity): SG_OK, SG_EKILLED with
 * *scope set, or SG_ECONFIG when the state is unconfirmed and the profile fails closed.
 */
int sg_gate_killswitch(sg_gate_t *gate, const sg_tenant_t *snap, const char *identity,
                       sg_kill_scope_t *scope);
/* Stops calls in flight that a newly engaged switch covers (relay.c). */
void sg_relay_kill_inflight(sg_gate_t *gate);

/* mcp.c */
int sg_mcp_handle(void *data, h2o_req_t *req);
int sg_mcp_handle_prm(void *data, h2o_req_t *req);
/* Sends notifications/tools/list_changed on this replica's GET streams of tenant. */
void sg_mcp_notify_tools_changed(sg_gate_t *gate, const char *tenant);
/* Ends every GET stream (drain). */
void sg_mcp_close_streams(sg_gate_t *gate);

#endif
