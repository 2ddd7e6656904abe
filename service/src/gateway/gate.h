/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A gate replica attached to a runtime: loads tenants from Redis, runs their
 * upstreams, and serves /mcp and the OAuth protected-resource metadata.
 */
#ifndef SG_GATEWAY_GATE_H
#define SG_GATEWAY_GATE_H

#include "base/err.h"
#include "store/runtime.h"

typedef struct sg_gate sg_gate_t;

/* Registers the gate's routes and readiness check on rt (borrowed until free). NULL on error. */
sg_gate_t *sg_gate_new(sg_runtime_t *rt, sg_error_t *err);
/* Stops upstreams and frees. NULL is a no-op. */
void sg_gate_free(sg_gate_t *gate);

#endif
