/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What every serving process has, whatever it serves: the loop, the Redis
 * client, the PostgreSQL pool, the HTTP server, signal handling with a
 * bounded drain on SIGTERM, and the health endpoints. The gate and the
 * control plane attach to one runtime (both to the same one under `start`).
 *
 * /healthz: 200 while the process runs. /readyz: 200 only when Redis answers,
 * PostgreSQL answers with the schema version this binary expects, and every
 * check a component registered passes; otherwise 503 naming what is missing.
 * /metrics: the Prometheus text of base/metrics.
 */
#ifndef SG_STORE_RUNTIME_H
#define SG_STORE_RUNTIME_H

#include "base/buf.h"
#include "base/err.h"
#include "core/settings.h"
#include "io/http_server.h"
#include "io/loop.h"
#include "io/pg.h"
#include "io/redis.h"

typedef struct sg_runtime sg_runtime_t;

/*
 * A readiness check of a component: returns true when ready; when not, appends
 * one or more JSON strings (comma separated, each a name such as
 * "tenant:acme") to missing. data is borrowed until sg_runtime_free.
 */
typedef bool (*sg_runtime_ready_cb)(void *data, sg_buf_t *missing);
/* Called once when draining starts (SIGTERM/SIGINT), so components end long streams. */
typedef void (*sg_runtime_drain_cb)(void *data);

/* Creates the loop, the store clients and the HTTP server (no listener yet). settings are
 * borrowed until sg_runtime_free. Returns NULL with err set when a URL is invalid. */
sg_runtime_t *sg_runtime_new(const sg_settings_t *settings, sg_error_t *err);
void sg_runtime_free(sg_runtime_t *rt);
/*
 * Closes the Redis client and the PostgreSQL pool: every pending operation
 * completes (SG_ECANCELED) before it returns. Call after sg_runtime_run and
 * before freeing the components attached to rt, so no callback reaches them later.
 */
void sg_runtime_close_stores(sg_runtime_t *rt);

sg_loop_t *sg_runtime_loop(sg_runtime_t *rt);
sg_redis_t *sg_runtime_redis(sg_runtime_t *rt);
sg_pg_t *sg_runtime_pg(sg_runtime_t *rt);
sg_http_server_t *sg_runtime_http(sg_runtime_t *rt);
const sg_settings_t *sg_runtime_settings(const sg_runtime_t *rt);

void sg_runtime_add_ready_check(sg_runtime_t *rt, sg_runtime_ready_cb cb, void *data);
void sg_runtime_add_drain_cb(sg_runtime_t *rt, sg_runtime_drain_cb cb, void *data);
/*
 * Called once at the end of sg_runtime_run, after the drain, while the loop and the
 * stores still work (components flush what they hold, e.g. the audit writer).
 */
void sg_runtime_add_stop_cb(sg_runtime_t *rt, sg_runtime_drain_cb cb, void *data);
/* True once the last probe saw Redis answer (used by fail-closed logic). */
bool sg_runtime_redis_ok(const sg_runtime_t *rt);

/*
 * Registers the health routes, listens on the settings' address and runs the loop
 * until SIGTERM/SIGINT, then stops accepting, waits for in-flight requests up to
 * SG_DRAIN_MS, and returns SG_OK (or an error from listen).
 */
int sg_runtime_run(sg_runtime_t *rt, sg_error_t *err) SG_MUSTCHECK;

#endif
