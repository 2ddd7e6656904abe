/* SPDX-License-Identifier: Apache-2.0 */
/* Shared by mcp.c (HTTP framing, sessions) and relay.c (methods that reach upstreams). */
#ifndef SG_GATEWAY_MCP_INT_H
#define SG_GATEWAY_MCP_INT_H

#include "core/jsonrpc.h"
#include "gateway/exchange.h"
#include "gateway/gate_int.h"

bool sg_mcp_version_supported(sg_str_t v);
void sg_mcp_reply_error(h2o_req_t *req, int status, sg_str_t id, int code, const char *message);

/* Gateway-made refusal as the final message of ex: code from the error table, data optional. */
void sg_relay_fail(sg_exchange_t *ex, int err, const char *message, sg_str_t data_raw);
/*
 * Handles one request other than initialize/ping: answers locally (tools/list) or
 * relays it. ex->client_id, ex->snap and ex->tenant are set; the exchange is
 * finished exactly once, now or later.
 */
void sg_relay_request(sg_gate_t *gate, sg_exchange_t *ex, sg_gate_tenant_t *t,
                      const sg_identity_t *id, const sg_jsonrpc_msg_t *m);
/* A response the agent POSTed to a server->client request (id "sg-<n>"). */
void sg_relay_agent_response(sg_gate_t *gate, sg_gate_tenant_t *t, const sg_jsonrpc_msg_t *m);
/* notifications/cancelled from the agent: cancels its request in flight on this replica. */
void sg_relay_cancel(sg_gate_t *gate, const char *nonce, sg_str_t request_id);

#endif
