/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The durable history of tenant configurations (table tenants, view
 * tenants_current) and the Redis side of publishing one version: the stored
 * document first, the version pointer in sg:tenants last, then the event.
 * Every SQL statement and Redis key of this job lives here.
 */
#ifndef SG_STORE_TENANT_STORE_H
#define SG_STORE_TENANT_STORE_H

#include "io/pg.h"
#include "io/redis.h"

/* Registers the prepared statements (call once at start). */
void sg_tenant_store_prepare(sg_pg_t *pg);

/* SELECT version, config_text, deleted of one tenant's latest row (0 or 1 row). */
void sg_tenant_store_current(sg_pg_t *pg, sg_pg_query_t *q, const char *tenant, sg_pg_query_cb cb);
/* SELECT tenant, version, config_text, deleted for every tenant's latest row. */
void sg_tenant_store_all(sg_pg_t *pg, sg_pg_query_t *q, sg_pg_query_cb cb);
/* SELECT tenant, version, created_at, created_by of live tenants, by name. */
void sg_tenant_store_list(sg_pg_t *pg, sg_pg_query_t *q, sg_pg_query_cb cb);

typedef struct sg_tenant_row {
    const char *tenant;
    int64_t version;
    const char *config_text; /* the stored document; "{}" for a deletion */
    bool deleted;
    const char *actor;
    const char *action;  /* for the admin_actions row written in the same statement */
    const char *details; /* redacted JSON */
} sg_tenant_row_t;

/*
 * Inserts one history row and its admin_actions row atomically (one statement).
 * A row for (tenant, version) that already exists fails with SG_EBACKEND
 * (SQLSTATE 23505): a concurrent change; the caller answers 409.
 */
void sg_tenant_store_insert(sg_pg_t *pg, sg_pg_query_t *q, const sg_tenant_row_t *row,
                            sg_pg_query_cb cb);

/*
 * Publishes a version in Redis: SET sg:{t}:config, HSET sg:tenants t version, PUBLISH
 * "config t version", pipelined in that order on one connection (for a deletion, config_text
 * NULL: HDEL first, then DEL, then PUBLISH). done(p, status) runs exactly once, after all
 * three answered: SG_OK when the pointer write succeeded. p must stay valid until then.
 */
typedef struct sg_tenant_publish sg_tenant_publish_t;
typedef void (*sg_tenant_publish_cb)(sg_tenant_publish_t *p, int status);

struct sg_tenant_publish {
    sg_redis_cmd_t set_cmd;
    sg_redis_cmd_t ptr_cmd;
    sg_redis_cmd_t pub_cmd;
    int pending;
    int status; /* of the pointer write */
    sg_tenant_publish_cb done;
};

void sg_tenant_store_publish(sg_redis_t *r, sg_tenant_publish_t *p, const char *tenant,
                             int64_t version, const char *config_text, sg_tenant_publish_cb done);

#endif
