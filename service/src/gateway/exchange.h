/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One agent POST (or GET stream) in flight: the answer channel back to the
 * agent. It starts as "undecided"; the first thing sent decides the mode —
 * the final response alone goes out as application/json, anything before it
 * (progress, logs, server->client requests) switches to text/event-stream
 * (MCP-NOTES §8.6). Only one h2o_send is outstanding at a time; the rest waits
 * in a queue. The exchange is refcounted: the HTTP request holds one
 * reference until h2o disposes it, every pending upstream call holds one.
 * After the agent is gone (req == NULL) sends are dropped silently.
 */
#ifndef SG_GATEWAY_EXCHANGE_H
#define SG_GATEWAY_EXCHANGE_H

#include <h2o.h>

#include "base/buf.h"
#include "base/sg.h"
#include "gateway/upstream.h"
#include "io/http_guard.h"

typedef struct sg_exchange sg_exchange_t;
typedef struct sg_batch sg_batch_t;

/*
 * A JSON-RPC batch (2025-03-26 sessions): its members' final messages are
 * collected and sent as one JSON array when the last one is done (202 when the
 * batch held no request). Members never stream: interim messages are dropped.
 */
struct sg_batch {
    sg_http_guard_t guard; /* first: the HTTP request */
    sg_buf_t out;          /* "[" + answers so far */
    size_t pending;        /* members not finished, +1 while the batch is being dispatched */
    size_t answers;
    char *body;   /* owned; the members' messages borrow from it */
    void *parsed; /* owned sg_jsonrpc_batch_t */
};

/* Ends one pending unit of the batch; sends the array when none is left. */
void sg_batch_done(sg_batch_t *b);
/* Adds an answer made without an exchange (ping, per-member errors). */
void sg_batch_add(sg_batch_t *b, sg_str_t json);

typedef struct sg_subcall {
    sg_upcall_t call;
    sg_exchange_t *ex;
    size_t index; /* which upstream of a fan-out */
    bool done;
    int status;
    char *response; /* owned copy of the upstream's message */
    size_t response_len;
} sg_subcall_t;

/* What the audit row of a call records; filled as the call advances (relay.c). */
typedef struct sg_call_record {
    bool wanted; /* this exchange is a decision to audit (tools/call, reads) */
    bool written;
    bool sync_row; /* the row was written before forwarding (audit.mode sync) */
    const char
            *decision; /* "allow", "deny", ...; NULL until decided (then derived from the error) */
    const char *rule;  /* borrowed from ex->snap's policy */
    const char *reason;
    const char *tool;     /* exposed name, or the prompt/URI of a read; owned */
    const char *upstream; /* borrowed from ex->snap */
    const char *cls;
    sg_str_t arguments; /* raw, borrowed from the body */
    uint64_t upstream_started_us;
    uint64_t upstream_us;
    bool has_result;
    bool result_is_error;
    size_t result_size;
    char method[48];
    char audit_id[40]; /* the row's id, given to the agent in refusals' data; "" until needed */
    char *findings;    /* JSON for the row's findings (shadow decisions today); owned */
} sg_call_record_t;

struct sg_exchange {
    int refs;
    h2o_req_t *req; /* NULL once h2o released the request */
    h2o_generator_t gen;
    bool sse_allowed; /* the agent accepts text/event-stream */
    bool streaming;   /* response started as SSE */
    bool finished;    /* final bytes handed over */
    bool sending;
    bool is_get;    /* a GET stream (never finishes by itself) */
    sg_buf_t queue; /* SSE bytes waiting */
    sg_buf_t inflight;
    sg_timer_t keepalive;
    sg_loop_t *loop;
    /* request context */
    char *body; /* owned copy of the request body */
    size_t body_len;
    char session_nonce[33];
    char tenant[65];
    char identity[129];
    bool killable;      /* a tools/call or read that a kill switch stops in flight */
    sg_str_t client_id; /* raw id of the agent's request (borrows body) */
    void (*on_cancel)(sg_exchange_t *ex); /* agent sent notifications/cancelled */
    void *owner;                          /* the gate */
    sg_tenant_t *snap;                    /* reference held for the exchange's life */
    sg_subcall_t *subs;                   /* upstream calls of this exchange */
    size_t nsubs;
    size_t ctx_cap; /* slots allocated in subs */
    size_t pending; /* subcalls not yet done */
    void *ctx;      /* method-specific state, released with ctx_free (or free) */
    void (*ctx_free)(void *ctx);
    sg_exchange_t *next; /* gate's list of live exchanges */
    sg_exchange_t *prev;
    uint64_t started_us;
    sg_batch_t *batch; /* set for batch members (one reference held) */
    sg_call_record_t record;
};

/* A new exchange bound to req (adds the request's reference). */
sg_exchange_t *sg_exchange_new(h2o_req_t *req, sg_loop_t *loop, bool sse_allowed);
/* A member of batch b (takes a reference on b); the caller holds the one reference returned. */
sg_exchange_t *sg_exchange_new_member(sg_batch_t *b, sg_loop_t *loop);
void sg_exchange_ref(sg_exchange_t *ex);
void sg_exchange_unref(sg_exchange_t *ex);

/* Sends one interim JSON-RPC message (switches to SSE; dropped if SSE is not allowed). */
void sg_exchange_send_interim(sg_exchange_t *ex, sg_str_t json);
/* Sends the final JSON-RPC message (JSON or the last SSE event) and ends the response. */
void sg_exchange_finish(sg_exchange_t *ex, sg_str_t json);
/* Starts an SSE response at once (GET streams, held calls) with keepalive comments. */
void sg_exchange_start_stream(sg_exchange_t *ex);
/* Ends an SSE response without a final message. */
void sg_exchange_end_stream(sg_exchange_t *ex);

#endif
