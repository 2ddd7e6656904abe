/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The replica's view of the kill switches (DESIGN §5): global sg:killswitch,
 * per tenant sg:{t}:killswitch, per identity sg:{t}:killswitch:<identity>.
 * Value "1" engages a switch; anything else or absent releases it. All keys
 * are read with one MGET every SG_KILL_POLL_MS and at once on a "killswitch"
 * event, so a plain `redis-cli SET` is seen within the poll interval.
 *
 * When no MGET has succeeded for longer than the bound, the state is unknown:
 * callers fail closed (-31007) unless the tenant's profile serves the last
 * known state (permissive).
 */
#ifndef SG_GATEWAY_KILLSWITCH_H
#define SG_GATEWAY_KILLSWITCH_H

#include "base/sg.h"
#include "io/redis.h"

#define SG_KILL_POLL_MS  80 /* from the start of one poll to the next: observed within 100 ms */
#define SG_KILL_BOUND_MS 1000

typedef enum sg_kill_scope {
    SG_KILL_UNKNOWN = 0, /* state could not be confirmed: treated as engaged by strict profiles */
    SG_KILL_NONE,
    SG_KILL_GLOBAL,
    SG_KILL_TENANT,
    SG_KILL_IDENTITY,
} sg_kill_scope_t;

typedef struct sg_killswitch sg_killswitch_t;

/* Called when a switch became engaged (so calls in flight can be stopped). */
typedef void (*sg_killswitch_engaged_cb)(void *data);
/*
 * Enumerates the (tenant, identity) pairs to watch: the callback adds each with
 * sg_killswitch_watch(). Called before every poll.
 */
typedef void (*sg_killswitch_enum_cb)(void *data, sg_killswitch_t *ks);

sg_killswitch_t *sg_killswitch_new(sg_loop_t *loop, sg_redis_t *redis,
                                   sg_killswitch_enum_cb enumerate,
                                   sg_killswitch_engaged_cb engaged, void *data);
void sg_killswitch_free(sg_killswitch_t *ks);
/* Adds a tenant (identity NULL) or an identity to the next poll. */
void sg_killswitch_watch(sg_killswitch_t *ks, const char *tenant, const char *identity);
/* Polls now (a "killswitch" event arrived). */
void sg_killswitch_poll_now(sg_killswitch_t *ks);
/*
 * The scope that stops (tenant, identity) now: SG_KILL_NONE when calls may
 * pass, SG_KILL_UNKNOWN when the state is older than the bound and
 * serve_last_known is false. With serve_last_known the last observed state
 * decides even past the bound.
 */
sg_kill_scope_t sg_killswitch_check(const sg_killswitch_t *ks, const char *tenant,
                                    const char *identity, bool serve_last_known);
/* True while the state is confirmed within the bound (for /readyz). */
bool sg_killswitch_is_confirmed(const sg_killswitch_t *ks);
const char *sg_kill_scope_name(sg_kill_scope_t s);

#endif
