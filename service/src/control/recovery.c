/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Redis is a cache of PostgreSQL for tenant configurations: at start and every
 * SG_RECOVERY_MS the control plane reads every tenant's latest row and the
 * version pointers in sg:tenants, and re-publishes whatever Redis lost or
 * holds wrongly (after a FLUSHALL, a failed publish, a deletion that did not
 * reach Redis). One tenant at a time; a pass never overlaps the next.
 */
#include "control/recovery.h"

#include <inttypes.h>
#include <stdlib.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "store/keys.h"
#include "store/tenant_store.h"

struct sg_recovery {
    sg_loop_t *loop;
    sg_redis_t *redis;
    sg_pg_t *pg;
    uint64_t interval_ms;
    sg_timer_t timer;
    sg_pg_query_t q;
    sg_redis_cmd_t hgetall;
    sg_tenant_publish_t pub;
    PGresult *rows;     /* the pass's PostgreSQL view, owned */
    char **redis_names; /* sg:tenants as seen by this pass */
    int64_t *redis_versions;
    size_t nredis;
    int next_row;
    bool busy;
    bool freeing;
    sg_log_ctx_t log;
};

static SG_METRIC_DEFINE(m_restored, SG_METRIC_COUNTER, "sg_recovery_restored_total", NULL,
                        "tenant configurations re-published to Redis from PostgreSQL");

static void schedule(sg_recovery_t *r, uint64_t ms);

static void end_pass(sg_recovery_t *r)
{
    if (r->rows != NULL) {
        PQclear(r->rows);
        r->rows = NULL;
    }
    for (size_t i = 0; i < r->nredis; i++) {
        free(r->redis_names[i]);
    }
    free(r->redis_names);
    free(r->redis_versions);
    r->redis_names = NULL;
    r->redis_versions = NULL;
    r->nredis = 0;
    r->busy = false;
    if (!r->freeing) {
        schedule(r, r->interval_ms);
    }
}

/* -1 when Redis has no pointer for tenant. */
static int64_t redis_version(const sg_recovery_t *r, const char *tenant)
{
    for (size_t i = 0; i < r->nredis; i++) {
        if (strcmp(r->redis_names[i], tenant) == 0) {
            return r->redis_versions[i];
        }
    }
    return -1;
}

static void next_tenant(sg_recovery_t *r);

static void on_restored(sg_tenant_publish_t *p, int status)
{
    sg_recovery_t *r = SG_CONTAINER_OF(p, sg_recovery_t, pub);
    if (status == SG_OK) {
        sg_metric_add(&m_restored, 1);
    }
    next_tenant(r);
}

static void next_tenant(sg_recovery_t *r)
{
    while (!r->freeing && r->next_row < PQntuples(r->rows)) {
        int i = r->next_row++;
        const char *tenant = PQgetvalue(r->rows, i, 0);
        int64_t version = strtoll(PQgetvalue(r->rows, i, 1), NULL, 10);
        bool deleted = strcmp(PQgetvalue(r->rows, i, 3), "t") == 0;
        int64_t have = redis_version(r, tenant);
        if (deleted ? have < 0 : have == version) {
            continue;
        }
        SG_LOG_WARN(&r->log,
                    "tenant %s: Redis has %" PRId64 ", PostgreSQL %s version %" PRId64
                    "; re-publishing",
                    tenant, have, deleted ? "deleted it at" : "has", version);
        sg_tenant_store_publish(r->redis, &r->pub, tenant, version,
                                deleted ? NULL : PQgetvalue(r->rows, i, 2), on_restored);
        return;
    }
    end_pass(r);
}

static void on_pointers(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_recovery_t *r = SG_CONTAINER_OF(cmd, sg_recovery_t, hgetall);
    if (status != SG_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        end_pass(r); /* Redis down: try again next pass */
        return;
    }
    r->redis_names = sg_xcalloc(reply->elements / 2 + 1, sizeof(char *));
    r->redis_versions = sg_xcalloc(reply->elements / 2 + 1, sizeof(int64_t));
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        if (reply->element[i]->type == REDIS_REPLY_STRING &&
            reply->element[i + 1]->type == REDIS_REPLY_STRING) {
            r->redis_names[r->nredis] =
                    sg_xmemdup(reply->element[i]->str, (size_t)reply->element[i]->len);
            r->redis_versions[r->nredis++] = strtoll(reply->element[i + 1]->str, NULL, 10);
        }
    }
    r->next_row = 0;
    next_tenant(r);
}

static void on_rows(sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_recovery_t *r = SG_CONTAINER_OF(q, sg_recovery_t, q);
    if (status != SG_OK || r->freeing) {
        end_pass(r);
        return;
    }
    /* keep the rows past this callback: copy the result */
    r->rows = PQcopyResult(res, PG_COPYRES_ATTRS | PG_COPYRES_TUPLES);
    if (r->rows == NULL) {
        end_pass(r);
        return;
    }
    sg_redis_command(r->redis, &r->hgetall, 5000, on_pointers, "HGETALL %s", SG_KEY_TENANTS);
}

static void on_timer(sg_timer_t *t)
{
    sg_recovery_t *r = SG_CONTAINER_OF(t, sg_recovery_t, timer);
    r->busy = true;
    sg_tenant_store_all(r->pg, &r->q, on_rows);
}

static void schedule(sg_recovery_t *r, uint64_t ms)
{
    sg_timer_start(r->loop, &r->timer, ms, on_timer);
}

sg_recovery_t *sg_recovery_new(sg_loop_t *loop, sg_redis_t *redis, sg_pg_t *pg,
                               uint64_t interval_ms)
{
    sg_metrics_register(&m_restored);
    sg_recovery_t *r = sg_xcalloc(1, sizeof(*r));
    r->loop = loop;
    r->redis = redis;
    r->pg = pg;
    r->interval_ms = interval_ms;
    r->log = (sg_log_ctx_t){ .component = "recovery" };
    schedule(r, 500); /* at start, once the stores had a moment to connect */
    return r;
}

void sg_recovery_free(sg_recovery_t *r)
{
    if (r == NULL) {
        return;
    }
    r->freeing = true;
    sg_timer_stop(&r->timer);
    if (!r->busy) {
        end_pass(r);
    } else if (r->rows != NULL) {
        PQclear(r->rows);
        r->rows = NULL;
    }
    free(r->redis_names);
    free(r->redis_versions);
    free(r);
}
