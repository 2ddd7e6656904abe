/* SPDX-License-Identifier: Apache-2.0 */
#include "store/tenant_store.h"

#include <inttypes.h>
#include <stdio.h>

#include "store/keys.h"

#define TIMEOUT_MS 5000

void sg_tenant_store_prepare(sg_pg_t *pg)
{
    sg_pg_prepare(
            pg, "tenant_current",
            "SELECT version, coalesce(config_text, config::text), deleted FROM tenants_current "
            "WHERE tenant = $1",
            1);
    sg_pg_prepare(pg, "tenant_all",
                  "SELECT tenant, version, coalesce(config_text, config::text), deleted "
                  "FROM tenants_current ORDER BY tenant",
                  0);
    sg_pg_prepare(pg, "tenant_list",
                  "SELECT tenant, version, created_at, created_by FROM tenants_current "
                  "WHERE NOT deleted ORDER BY tenant",
                  0);
    sg_pg_prepare(
            pg, "tenant_insert",
            "WITH ins AS (INSERT INTO tenants (tenant, version, config, config_text, created_by, "
            "deleted) VALUES ($1, $2::bigint, $3::text::jsonb, $3::text, $4, $5::boolean) "
            "RETURNING tenant) "
            "INSERT INTO admin_actions (actor, action, tenant, target, details) "
            "SELECT $4, $6, tenant, $2, $7::jsonb FROM ins",
            7);
}

void sg_tenant_store_current(sg_pg_t *pg, sg_pg_query_t *q, const char *tenant, sg_pg_query_cb cb)
{
    const char *params[] = { tenant };
    sg_pg_exec_prepared(pg, q, TIMEOUT_MS, "tenant_current", 1, params, NULL, cb);
}

void sg_tenant_store_all(sg_pg_t *pg, sg_pg_query_t *q, sg_pg_query_cb cb)
{
    sg_pg_exec_prepared(pg, q, TIMEOUT_MS, "tenant_all", 0, NULL, NULL, cb);
}

void sg_tenant_store_list(sg_pg_t *pg, sg_pg_query_t *q, sg_pg_query_cb cb)
{
    sg_pg_exec_prepared(pg, q, TIMEOUT_MS, "tenant_list", 0, NULL, NULL, cb);
}

void sg_tenant_store_insert(sg_pg_t *pg, sg_pg_query_t *q, const sg_tenant_row_t *row,
                            sg_pg_query_cb cb)
{
    char version[24];
    snprintf(version, sizeof(version), "%" PRId64, row->version);
    const char *params[] = { row->tenant,
                             version,
                             row->config_text,
                             row->actor,
                             row->deleted ? "true" : "false",
                             row->action,
                             row->details != NULL ? row->details : "{}" };
    sg_pg_exec_prepared(pg, q, TIMEOUT_MS, "tenant_insert", 7, params, NULL, cb);
}

static void step_done(sg_tenant_publish_t *p)
{
    if (--p->pending == 0) {
        p->done(p, p->status);
    }
}

static void on_set_done(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    (void)status;
    (void)reply;
    step_done(SG_CONTAINER_OF(cmd, sg_tenant_publish_t, set_cmd));
}

static void on_ptr_done(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_tenant_publish_t *p = SG_CONTAINER_OF(cmd, sg_tenant_publish_t, ptr_cmd);
    p->status = status == SG_OK && reply != NULL && reply->type != REDIS_REPLY_ERROR ? SG_OK
                                                                                     : SG_EBACKEND;
    step_done(p);
}

static void on_pub_done(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    (void)status;
    (void)reply;
    step_done(SG_CONTAINER_OF(cmd, sg_tenant_publish_t, pub_cmd));
}

void sg_tenant_store_publish(sg_redis_t *r, sg_tenant_publish_t *p, const char *tenant,
                             int64_t version, const char *config_text, sg_tenant_publish_cb done)
{
    char key[128], ver[24], event[128];
    snprintf(key, sizeof(key), SG_KEY_CONFIG_FMT, tenant);
    snprintf(ver, sizeof(ver), "%" PRId64, version);
    snprintf(event, sizeof(event), "%s%s %s", SG_EVENT_CONFIG_PREFIX, tenant, ver);
    p->pending = 3;
    p->status = SG_EBACKEND;
    p->done = done;
    if (config_text != NULL) {
        /* the document first, the version pointer last: no reader sees a version without it */
        const char *set[] = { "SET", key, config_text };
        size_t set_len[] = { 3, strlen(key), strlen(config_text) };
        sg_redis_command_argv(r, &p->set_cmd, TIMEOUT_MS, on_set_done, 3, set, set_len);
        const char *hset[] = { "HSET", SG_KEY_TENANTS, tenant, ver };
        size_t hset_len[] = { 4, strlen(SG_KEY_TENANTS), strlen(tenant), strlen(ver) };
        sg_redis_command_argv(r, &p->ptr_cmd, TIMEOUT_MS, on_ptr_done, 4, hset, hset_len);
    } else {
        /* a deletion: the pointer first, then the document */
        const char *hdel[] = { "HDEL", SG_KEY_TENANTS, tenant };
        size_t hdel_len[] = { 4, strlen(SG_KEY_TENANTS), strlen(tenant) };
        sg_redis_command_argv(r, &p->ptr_cmd, TIMEOUT_MS, on_ptr_done, 3, hdel, hdel_len);
        const char *del[] = { "DEL", key };
        size_t del_len[] = { 3, strlen(key) };
        sg_redis_command_argv(r, &p->set_cmd, TIMEOUT_MS, on_set_done, 2, del, del_len);
    }
    const char *pub[] = { "PUBLISH", SG_CHANNEL_EVENTS, event };
    size_t pub_len[] = { 7, strlen(SG_CHANNEL_EVENTS), strlen(event) };
    sg_redis_command_argv(r, &p->pub_cmd, TIMEOUT_MS, on_pub_done, 3, pub, pub_len);
}
