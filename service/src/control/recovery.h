/* SPDX-License-Identifier: Apache-2.0 */
/* Re-publishes tenant configurations that Redis lost (see recovery.c). */
#ifndef SG_CONTROL_RECOVERY_H
#define SG_CONTROL_RECOVERY_H

#include "io/pg.h"
#include "io/redis.h"

typedef struct sg_recovery sg_recovery_t;

/* Starts the loop (first pass shortly after start, then every interval_ms). */
sg_recovery_t *sg_recovery_new(sg_loop_t *loop, sg_redis_t *redis, sg_pg_t *pg,
                               uint64_t interval_ms);
/*
 * Stops it. Call after the stores were closed (sg_runtime_close_stores), so no
 * callback of a pass in flight can arrive later.
 */
void sg_recovery_free(sg_recovery_t *r);

#endif
