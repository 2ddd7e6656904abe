/* SPDX-License-Identifier: Apache-2.0 */
/*
 * /admin/api/v1/killswitch. POST {scope, tenant?, identity?, engaged, reason}
 * sets or deletes the Redis key of that scope, publishes "killswitch" on
 * sg:events so every replica reacts at once, records an admin_actions row,
 * and answers once Redis holds the new state. GET lists every engaged switch.
 *
 * Redis is what stops calls, so a flip succeeds even when PostgreSQL is down;
 * the answer then says "recorded": false and the failure is logged.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/json.h"
#include "base/mem.h"
#include "control/control_int.h"
#include "core/tenant.h"
#include "io/http_reply.h"
#include "store/admin_store.h"
#include "store/keys.h"

#define REDIS_TIMEOUT_MS 2000
#define MAX_SCAN_ROUNDS  200

/* ---- POST ---- */

typedef struct flip {
    sg_http_guard_t guard; /* first */
    sg_control_t *c;
    sg_redis_cmd_t cmd;
    sg_redis_cmd_t pub;
    sg_pg_query_t audit;
    char key[200];
    char scope[16];
    char tenant[SG_NAME_MAX + 1];
    char identity[SG_NAME_MAX + 1];
    bool engaged;
    bool redis_done;
    bool audit_done;
    bool recorded;
    int redis_status;
    char *details;
    char actor[96];
} flip_t;

static void flip_free(sg_http_guard_t *g)
{
    free(((flip_t *)g)->details);
}

static void flip_answer(flip_t *f)
{
    if (!f->redis_done || !f->audit_done || f->guard.req == NULL) {
        return;
    }
    if (f->redis_status != SG_OK) {
        sg_api_error(f->guard.req, 503, "redis did not accept the change; nothing was changed");
        return;
    }
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_printf(&b, "{\"scope\":\"%s\",\"tenant\":", f->scope);
    if (f->tenant[0] != '\0') {
        sg_json_write_cstr(&b, f->tenant);
    } else {
        sg_buf_append_cstr(&b, "null");
    }
    sg_buf_append_cstr(&b, ",\"identity\":");
    if (f->identity[0] != '\0') {
        sg_json_write_cstr(&b, f->identity);
    } else {
        sg_buf_append_cstr(&b, "null");
    }
    sg_buf_printf(&b, ",\"engaged\":%s,\"recorded\":%s}", f->engaged ? "true" : "false",
                  f->recorded ? "true" : "false");
    sg_http_reply_json(f->guard.req, 200, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

static void on_audited(sg_pg_query_t *q, int status, const PGresult *res)
{
    (void)res;
    flip_t *f = SG_CONTAINER_OF(q, flip_t, audit);
    f->audit_done = true;
    f->recorded = status == SG_OK;
    if (!f->recorded) {
        SG_LOG_ERROR(&f->c->log, "kill switch flip not recorded in admin_actions: %s",
                     sg_err_name(status));
    }
    flip_answer(f);
    sg_http_guard_unref(&f->guard);
}

static void on_published(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    (void)status;
    (void)reply;
    flip_t *f = SG_CONTAINER_OF(cmd, flip_t, pub);
    sg_http_guard_unref(&f->guard);
}

static void record(flip_t *f)
{
    sg_admin_action_t a = { .actor = f->actor,
                            .action = "killswitch.set",
                            .tenant = f->tenant[0] != '\0' ? f->tenant : NULL,
                            .target = f->key,
                            .details = f->details };
    sg_admin_store_record(f->c->pg, &f->audit, &a, on_audited);
}

static void on_set(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    flip_t *f = SG_CONTAINER_OF(cmd, flip_t, cmd);
    f->redis_done = true;
    f->redis_status = status == SG_OK && reply != NULL && reply->type != REDIS_REPLY_ERROR
                              ? SG_OK
                              : SG_EBACKEND;
    if (f->redis_status == SG_OK) {
        SG_LOG_WARN(&f->c->log, "kill switch %s %s by %s", f->key,
                    f->engaged ? "ENGAGED" : "released", f->actor);
        sg_http_guard_ref(&f->guard); /* the publish holds one */
        sg_redis_command(f->c->redis, &f->pub, REDIS_TIMEOUT_MS, on_published, "PUBLISH %s %s",
                         SG_CHANNEL_EVENTS, SG_EVENT_KILLSWITCH);
        record(f); /* the record keeps the caller's reference until on_audited */
        return;
    }
    f->audit_done = true;
    flip_answer(f);
    sg_http_guard_unref(&f->guard);
}

/* Reads a string member into out (validated name); adds a problem when it is wrong. */
static void read_name(sg_str_t body, const char *key, bool required, char *out, size_t cap,
                      sg_buf_t *problems)
{
    sg_str_t v, plain;
    char pointer[32];
    snprintf(pointer, sizeof(pointer), "/%s", key);
    if (sg_json_object_get(body, key, &v) != SG_OK || sg_json_type(v) == SG_JSON_NULL) {
        if (required) {
            sg_api_problem(problems, pointer, "required for this scope");
        }
        return;
    }
    if (!sg_json_string_plain(v, &plain) || !sg_name_is_valid(plain) || plain.len >= cap) {
        sg_api_problem(problems, pointer, "must be a name of 1-64 [A-Za-z0-9_.-]");
        return;
    }
    memcpy(out, plain.ptr, plain.len);
    out[plain.len] = '\0';
}

static void check_members(sg_str_t body, sg_buf_t *problems)
{
    static const char *const known[] = { "scope", "tenant", "identity", "engaged", "reason" };
    sg_json_iter_t it = SG_JSON_ITER_INIT(body);
    sg_str_t k, v;
    while (sg_json_object_next(&it, &k, &v) == 1) {
        bool ok = false;
        for (size_t i = 0; i < SG_ARRAY_LEN(known); i++) {
            ok |= sg_json_string_eq(k, known[i]);
        }
        if (!ok) {
            sg_str_t plain;
            char pointer[80] = "/";
            if (sg_json_string_plain(k, &plain) && plain.len < sizeof(pointer) - 1) {
                memcpy(pointer + 1, plain.ptr, plain.len);
                pointer[plain.len + 1] = '\0';
            }
            sg_api_problem(problems, pointer, "unknown member");
        }
    }
}

static void validate_flip(sg_str_t body, flip_t *f, sg_buf_t *problems)
{
    sg_str_t v, reason;
    check_members(body, problems);
    if (sg_json_object_get(body, "scope", &v) != SG_OK ||
        (!sg_json_string_eq(v, "global") && !sg_json_string_eq(v, "tenant") &&
         !sg_json_string_eq(v, "identity"))) {
        sg_api_problem(problems, "/scope", "must be \"global\", \"tenant\" or \"identity\"");
    } else {
        snprintf(f->scope, sizeof(f->scope), "%s",
                 sg_json_string_eq(v, "global")   ? "global"
                 : sg_json_string_eq(v, "tenant") ? "tenant"
                                                  : "identity");
    }
    bool need_tenant = strcmp(f->scope, "tenant") == 0 || strcmp(f->scope, "identity") == 0;
    read_name(body, "tenant", need_tenant, f->tenant, sizeof(f->tenant), problems);
    read_name(body, "identity", strcmp(f->scope, "identity") == 0, f->identity, sizeof(f->identity),
              problems);
    if (strcmp(f->scope, "global") == 0 && (f->tenant[0] != '\0' || f->identity[0] != '\0')) {
        sg_api_problem(problems, "/scope", "a global switch takes no tenant or identity");
    }
    if (strcmp(f->scope, "tenant") == 0 && f->identity[0] != '\0') {
        sg_api_problem(problems, "/identity", "use scope \"identity\" for an identity switch");
    }
    if (sg_json_object_get(body, "engaged", &v) != SG_OK ||
        (sg_json_type(v) != SG_JSON_TRUE && sg_json_type(v) != SG_JSON_FALSE)) {
        sg_api_problem(problems, "/engaged", "must be true or false");
    } else {
        f->engaged = sg_json_type(v) == SG_JSON_TRUE;
    }
    if (sg_json_object_get(body, "reason", &reason) != SG_OK ||
        sg_json_type(reason) != SG_JSON_STRING || reason.len < 3 || reason.len > 1002) {
        sg_api_problem(problems, "/reason", "required: a string of 1-1000 characters");
    }
}

void sg_api_killswitch_post(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    (void)p;
    sg_str_t body;
    if (!sg_api_body_object(req, &body)) {
        return;
    }
    flip_t *f = sg_http_guard_new(req, sizeof(*f), flip_free);
    f->c = c;
    sg_buf_t problems = SG_BUF_INIT;
    sg_buf_append_char(&problems, '[');
    validate_flip(body, f, &problems);
    if (problems.len > 1) {
        sg_buf_append_char(&problems, ']');
        sg_api_problems(req, sg_buf_str(&problems));
        sg_buf_dispose(&problems);
        sg_http_guard_unref(&f->guard);
        return;
    }
    sg_buf_dispose(&problems);
    if (f->tenant[0] == '\0') {
        snprintf(f->key, sizeof(f->key), "%s", SG_KEY_KILL_GLOBAL);
    } else if (f->identity[0] == '\0') {
        snprintf(f->key, sizeof(f->key), SG_KEY_KILL_TENANT_FMT, f->tenant);
    } else {
        snprintf(f->key, sizeof(f->key), SG_KEY_KILL_IDENTITY_FMT, f->tenant, f->identity);
    }
    sg_str_t reason;
    if (sg_json_object_get(body, "reason", &reason) != SG_OK) {
        reason = SG_STR_LIT("\"\"");
    }
    sg_buf_t details = SG_BUF_INIT;
    sg_buf_printf(&details, "{\"scope\":\"%s\",\"engaged\":%s,\"reason\":", f->scope,
                  f->engaged ? "true" : "false");
    sg_buf_append_str(&details, reason);
    sg_buf_append_char(&details, '}');
    f->details = sg_buf_steal(&details, NULL);
    sg_api_actor(req, f->actor, sizeof(f->actor));
    if (f->engaged) {
        sg_redis_command(c->redis, &f->cmd, REDIS_TIMEOUT_MS, on_set, "SET %s 1", f->key);
    } else {
        sg_redis_command(c->redis, &f->cmd, REDIS_TIMEOUT_MS, on_set, "DEL %s", f->key);
    }
}

/* ---- GET ---- */

typedef struct listing {
    sg_http_guard_t guard; /* first */
    sg_control_t *c;
    sg_redis_cmd_t cmd;
    bool global;
    sg_buf_t keys; /* JSON array items of engaged per-tenant keys */
    char cursor[32];
    int rounds;
} listing_t;

static void listing_free(sg_http_guard_t *g)
{
    sg_buf_dispose(&((listing_t *)g)->keys);
}

static void listing_answer(listing_t *l, int status)
{
    if (l->guard.req == NULL) {
        return;
    }
    if (status != SG_OK) {
        sg_api_error(l->guard.req, 503, "redis did not answer");
        return;
    }
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_printf(&b, "{\"global\":%s,\"engaged\":[", l->global ? "true" : "false");
    sg_buf_append_str(&b, sg_buf_str(&l->keys));
    sg_buf_append_cstr(&b, "]}");
    sg_http_reply_json(l->guard.req, 200, sg_buf_str(&b));
    sg_buf_dispose(&b);
}

/* "sg:{t}:killswitch[:identity]" -> {"scope":..,"tenant":..,"identity":..} */
static void append_key(listing_t *l, const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);
    const char *close = open != NULL ? memchr(open, '}', len - (size_t)(open - key)) : NULL;
    if (close == NULL) {
        return;
    }
    const char *rest = close + 1;
    size_t rest_len = len - (size_t)(rest - key);
    bool identity = rest_len > 12 && rest[11] == ':';
    if (l->keys.len != 0) {
        sg_buf_append_char(&l->keys, ',');
    }
    sg_buf_printf(&l->keys, "{\"scope\":\"%s\",\"tenant\":", identity ? "identity" : "tenant");
    sg_json_write_string(&l->keys, open + 1, (size_t)(close - open - 1));
    sg_buf_append_cstr(&l->keys, ",\"identity\":");
    if (identity) {
        sg_json_write_string(&l->keys, rest + 12, rest_len - 12);
    } else {
        sg_buf_append_cstr(&l->keys, "null");
    }
    sg_buf_append_char(&l->keys, '}');
}

static void on_scan(sg_redis_cmd_t *cmd, int status, const redisReply *reply);

static void scan_next(listing_t *l)
{
    /* values are read with the keys: the Lua script keeps the scan + GET atomic per batch */
    sg_redis_command(
            l->c->redis, &l->cmd, REDIS_TIMEOUT_MS, on_scan, "EVAL %s 0 %s",
            "local r = redis.call('SCAN', ARGV[1], 'MATCH', 'sg:{*}:killswitch*', 'COUNT', 1000) "
            "local out = {r[1]} for _, k in ipairs(r[2]) do "
            "if redis.call('GET', k) == '1' then table.insert(out, k) end end return out",
            l->cursor);
}

static void on_scan(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    listing_t *l = SG_CONTAINER_OF(cmd, listing_t, cmd);
    if (status != SG_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING) {
        listing_answer(l, SG_EBACKEND);
        sg_http_guard_unref(&l->guard);
        return;
    }
    for (size_t i = 1; i < reply->elements; i++) {
        if (reply->element[i]->type == REDIS_REPLY_STRING) {
            append_key(l, reply->element[i]->str, (size_t)reply->element[i]->len);
        }
    }
    snprintf(l->cursor, sizeof(l->cursor), "%s", reply->element[0]->str);
    if (strcmp(l->cursor, "0") != 0 && ++l->rounds < MAX_SCAN_ROUNDS && l->guard.req != NULL) {
        scan_next(l);
        return;
    }
    listing_answer(l, SG_OK);
    sg_http_guard_unref(&l->guard);
}

static void on_global(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    listing_t *l = SG_CONTAINER_OF(cmd, listing_t, cmd);
    if (status != SG_OK || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        listing_answer(l, SG_EBACKEND);
        sg_http_guard_unref(&l->guard);
        return;
    }
    l->global = reply->type == REDIS_REPLY_STRING && reply->len == 1 && reply->str[0] == '1';
    snprintf(l->cursor, sizeof(l->cursor), "0");
    scan_next(l);
}

void sg_api_killswitch_get(sg_control_t *c, h2o_req_t *req, const sg_api_params_t *p)
{
    (void)p;
    listing_t *l = sg_http_guard_new(req, sizeof(*l), listing_free);
    l->c = c;
    sg_redis_command(c->redis, &l->cmd, REDIS_TIMEOUT_MS, on_global, "GET %s", SG_KEY_KILL_GLOBAL);
}
