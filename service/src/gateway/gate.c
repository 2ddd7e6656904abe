/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The gate replica: keeps every tenant's configuration snapshot in step with
 * Redis (sg:tenants polled every POLL_MS and on every sg:events message, each
 * changed tenant's sg:{t}:config loaded and compiled, its upstreams started,
 * kept or stopped by fingerprint), the session-signing secret, and the set of
 * ended sessions. /mcp itself lives in mcp.c.
 */
#include "gateway/gate.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "core/policy.h"
#include "gateway/gate_int.h"
#include "io/http_reply.h"
#include "store/audit.h"
#include "store/keys.h"

#define POLL_MS        2000
#define CMD_TIMEOUT_MS 1000
#define EVENTS_CHANNEL "sg:events"

static SG_METRIC_DEFINE(m_reloads, SG_METRIC_COUNTER, "sg_config_reloads_total", NULL,
                        "tenant configuration snapshots swapped in");
static SG_METRIC_DEFINE(
        m_reload_errors, SG_METRIC_COUNTER, "sg_config_reload_errors_total", NULL,
        "tenant configurations that failed to compile (the previous snapshot stays)");

static void poll_now(sg_gate_t *gate);

/* ---- one-shot Redis commands whose reply nobody waits for ---- */

typedef struct fire_cmd {
    sg_redis_cmd_t cmd;
} fire_cmd_t;

static void on_fire_done(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    (void)status;
    (void)reply;
    free(SG_CONTAINER_OF(cmd, fire_cmd_t, cmd));
}

static void fire(sg_gate_t *gate, int argc, const char **argv)
{
    fire_cmd_t *f = sg_xcalloc(1, sizeof(*f));
    size_t lens[8];
    for (int i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    sg_redis_command_argv(gate->redis, &f->cmd, CMD_TIMEOUT_MS, on_fire_done, argc, argv, lens);
}

/* ---- session secret ---- */

static void load_secret(sg_gate_t *gate);

static void on_secret_created(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_gate_t *gate = SG_CONTAINER_OF(cmd, sg_gate_t, secret_cmd);
    (void)status;
    (void)reply;
    gate->secret_busy = false;
    load_secret(gate); /* read back whichever replica's secret won */
}

static void on_secret(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_gate_t *gate = SG_CONTAINER_OF(cmd, sg_gate_t, secret_cmd);
    gate->secret_busy = false;
    if (status != SG_OK || reply == NULL) {
        return;
    }
    if (reply->type == REDIS_REPLY_STRING && reply->len >= 32 &&
        (size_t)reply->len <= sizeof(gate->secret)) {
        if (gate->have_secret && (gate->secret_len != (size_t)reply->len ||
                                  memcmp(gate->secret, reply->str, gate->secret_len) != 0)) {
            SG_LOG_WARN(&gate->log, "the session-signing secret in Redis changed: sessions "
                                    "signed with the old one end");
        }
        memcpy(gate->secret, reply->str, (size_t)reply->len);
        gate->secret_len = (size_t)reply->len;
        gate->have_secret = true;
        return;
    }
    if (reply->type == REDIS_REPLY_NIL) {
        /* first replica ever, or Redis lost it (FLUSHALL): write ours back (or a new one) once,
         * with NX, then read back whichever replica's write won */
        char hex[sizeof(gate->secret) + 1];
        size_t len = gate->secret_len;
        if (gate->have_secret) {
            memcpy(hex, gate->secret, len);
        } else {
            uint8_t raw[32];
            sg_random_bytes(raw, sizeof(raw));
            for (size_t i = 0; i < sizeof(raw); i++) {
                snprintf(hex + 2 * i, 3, "%02x", raw[i]);
            }
            len = 64;
        }
        const char *argv[] = { "SET", SG_KEY_SECRET, hex, "NX" };
        size_t lens[] = { 3, strlen(SG_KEY_SECRET), len, 2 };
        gate->secret_busy = true;
        sg_redis_command_argv(gate->redis, &gate->secret_cmd, CMD_TIMEOUT_MS, on_secret_created, 4,
                              argv, lens);
        memset(hex, 0, sizeof(hex));
    }
}

static void load_secret(sg_gate_t *gate)
{
    if (gate->secret_busy) {
        return;
    }
    gate->secret_busy = true;
    sg_redis_command(gate->redis, &gate->secret_cmd, CMD_TIMEOUT_MS, on_secret, "GET %s",
                     SG_KEY_SECRET);
}

/* ---- tenants ---- */

sg_gate_tenant_t *sg_gate_find_tenant(sg_gate_t *gate, const char *name)
{
    for (sg_gate_tenant_t *t = gate->tenants; t != NULL; t = t->next) {
        if (strcmp(t->name, name) == 0) {
            return t;
        }
    }
    return NULL;
}

sg_gate_tenant_t *sg_gate_auth(sg_gate_t *gate, const uint8_t key_sha256[32],
                               const sg_identity_t **identity)
{
    uint64_t now = sg_clock_wall_ms();
    for (sg_gate_tenant_t *t = gate->tenants; t != NULL; t = t->next) {
        if (t->snap == NULL) {
            continue;
        }
        const sg_identity_t *id = sg_tenant_find_key(t->snap, key_sha256, now);
        if (id != NULL) {
            *identity = id;
            return t;
        }
    }
    return NULL;
}

static void on_tools_changed(void *data, sg_upstream_t *up)
{
    sg_gate_tenant_t *t = data;
    (void)up;
    sg_gate_publish_tools_changed(t->gate, t->name);
}

static void retire_done(sg_gate_tenant_t *t, size_t i)
{
    if (t->retiring != NULL && t->retiring[i] != NULL) {
        SG_LOG_INFO(&t->gate->log, "upstream %s/%s: new definition ready, old one stopped", t->name,
                    sg_upstream_cfg(t->retiring[i])->name);
        sg_upstream_free(t->retiring[i]);
        t->retiring[i] = NULL;
    }
}

static void on_upstream_state(void *data, sg_upstream_t *up)
{
    sg_gate_tenant_t *t = data;
    sg_upstream_state_t s = sg_upstream_state(up);
    size_t n = t->snap != NULL ? t->snap->nupstreams : 0;
    for (size_t i = 0; i < n; i++) {
        if (t->ups[i] == up && (s == SG_UPSTREAM_READY || s == SG_UPSTREAM_FAILED)) {
            retire_done(t, i);
        }
    }
}

sg_upstream_t *sg_gate_upstream(const sg_gate_tenant_t *t, size_t i)
{
    sg_upstream_t *up = t->ups[i];
    sg_upstream_t *old = t->retiring != NULL ? t->retiring[i] : NULL;
    if (old != NULL && sg_upstream_state(up) != SG_UPSTREAM_READY &&
        sg_upstream_state(old) == SG_UPSTREAM_READY) {
        return old;
    }
    return up;
}

static void free_retiring(sg_gate_tenant_t *t)
{
    size_t n = t->snap != NULL ? t->snap->nupstreams : 0;
    for (size_t i = 0; i < n && t->retiring != NULL; i++) {
        sg_upstream_free(t->retiring[i]);
    }
    free(t->retiring);
    t->retiring = NULL;
}

/*
 * Starts the upstreams of the new snapshot: unchanged ones (same name and fingerprint) keep
 * running; a changed one starts anew while its previous definition keeps serving until the new
 * one is ready; removed ones stop.
 */
static sg_upstream_t **swap_upstreams(sg_gate_tenant_t *t, sg_tenant_t *next,
                                      sg_upstream_t ***retiring_out)
{
    sg_gate_t *gate = t->gate;
    sg_upstream_t **ups = sg_xcalloc(next->nupstreams + 1, sizeof(*ups));
    sg_upstream_t **retiring = sg_xcalloc(next->nupstreams + 1, sizeof(*retiring));
    sg_upstream_hooks_t hooks = { on_tools_changed, on_upstream_state, t };
    h2o_context_t *http = sg_http_server_context(sg_runtime_http(gate->rt));
    size_t nold = t->snap != NULL ? t->snap->nupstreams : 0;
    free_retiring(t); /* a reload during a reload: the oldest generation goes */
    for (size_t i = 0; i < next->nupstreams; i++) {
        const sg_upstream_cfg_t *cfg = &next->upstreams[i];
        for (size_t j = 0; j < nold; j++) {
            if (t->ups[j] == NULL || strcmp(sg_upstream_cfg(t->ups[j])->name, cfg->name) != 0) {
                continue;
            }
            if (strcmp(sg_upstream_cfg(t->ups[j])->fingerprint, cfg->fingerprint) == 0) {
                ups[i] = t->ups[j];
            } else {
                retiring[i] = t->ups[j];
            }
            t->ups[j] = NULL;
        }
        if (ups[i] == NULL) {
            ups[i] = sg_upstream_new(gate->loop, http, next, cfg, &hooks);
        }
    }
    for (size_t j = 0; j < nold; j++) {
        if (t->ups[j] != NULL) {
            SG_LOG_INFO(&gate->log, "stopping upstream %s/%s", t->name,
                        sg_upstream_cfg(t->ups[j])->name);
            sg_upstream_free(t->ups[j]);
        }
    }
    *retiring_out = retiring;
    return ups;
}

static void install_snapshot(sg_gate_tenant_t *t, sg_tenant_t *next)
{
    sg_upstream_t **retiring = NULL;
    sg_upstream_t **ups = swap_upstreams(t, next, &retiring);
    free(t->ups);
    t->ups = ups;
    t->retiring = retiring;
    sg_tenant_unref(t->snap);
    t->snap = next;
    sg_metric_add(&m_reloads, 1);
    SG_LOG_INFO(&t->gate->log, "tenant %s at version %" PRId64 " (%zu upstreams, %zu identities)",
                t->name, next->version, next->nupstreams, next->nidentities);
    /* identities or upstreams may have changed what agents see */
    sg_gate_publish_tools_changed(t->gate, t->name);
}

static void on_config(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_gate_tenant_t *t = SG_CONTAINER_OF(cmd, sg_gate_tenant_t, load_cmd);
    t->loading = false;
    if (!t->seen && t->snap == NULL && t->want_version < 0) {
        return;
    }
    if (status != SG_OK || reply == NULL || reply->type != REDIS_REPLY_STRING) {
        return; /* retried on the next poll */
    }
    sg_tenant_t *next = NULL;
    sg_error_t err = { 0 };
    if (sg_tenant_parse(reply->str, (size_t)reply->len, &next, &err) != SG_OK ||
        strcmp(next->name, t->name) != 0) {
        sg_metric_add(&m_reload_errors, 1);
        SG_LOG_ERROR(&t->gate->log, "tenant %s: config version %" PRId64 " rejected: %s", t->name,
                     t->want_version, next != NULL ? "tenant name mismatch" : err.msg);
        t->bad_version = t->want_version;
        sg_tenant_unref(next);
        return;
    }
    if (t->snap != NULL && t->snap->version == next->version) {
        sg_tenant_unref(next);
        return;
    }
    install_snapshot(t, next);
}

static void load_tenant(sg_gate_tenant_t *t)
{
    if (t->loading || t->want_version == t->bad_version ||
        (t->snap != NULL && t->snap->version == t->want_version)) {
        return;
    }
    t->loading = true;
    char key[128];
    snprintf(key, sizeof(key), "sg:{%s}:config", t->name);
    const char *argv[] = { "GET", key };
    size_t lens[] = { 3, strlen(key) };
    sg_redis_command_argv(t->gate->redis, &t->load_cmd, CMD_TIMEOUT_MS, on_config, 2, argv, lens);
}

static void drop_tenant(sg_gate_t *gate, sg_gate_tenant_t *t)
{
    SG_LOG_DEBUG(&gate->log, "tenant %s unloaded", t->name);
    free_retiring(t);
    size_t n = t->snap != NULL ? t->snap->nupstreams : 0;
    for (size_t i = 0; i < n; i++) {
        sg_upstream_free(t->ups[i]);
    }
    free(t->ups);
    t->ups = NULL;
    sg_tenant_unref(t->snap);
    t->snap = NULL;
}

static void free_tenant(sg_gate_tenant_t *t)
{
    free(t->name);
    free(t);
}

static void sweep_tenants(sg_gate_t *gate)
{
    sg_gate_tenant_t **pp = &gate->tenants;
    while (*pp != NULL) {
        sg_gate_tenant_t *t = *pp;
        if (t->seen) {
            pp = &t->next;
            continue;
        }
        SG_LOG_INFO(&gate->log, "tenant %s removed from sg:tenants", t->name);
        drop_tenant(gate, t);
        if (t->loading) {
            /* its GET is in flight: keep the (now empty) entry until a later sweep */
            t->want_version = -1;
            pp = &t->next;
            continue;
        }
        *pp = t->next;
        free_tenant(t);
    }
}

static void on_tenants(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_gate_t *gate = SG_CONTAINER_OF(cmd, sg_gate_t, poll_cmd);
    gate->poll_busy = false;
    if (status != SG_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (sg_gate_tenant_t *t = gate->tenants; t != NULL; t = t->next) {
        t->seen = false;
    }
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *k = reply->element[i];
        const redisReply *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            !sg_name_is_valid(sg_str_n(k->str, (size_t)k->len))) {
            continue;
        }
        sg_gate_tenant_t *t = sg_gate_find_tenant(gate, k->str);
        if (t == NULL) {
            t = sg_xcalloc(1, sizeof(*t));
            t->gate = gate;
            t->name = sg_xmemdup(k->str, (size_t)k->len);
            t->bad_version = -1;
            t->next = gate->tenants;
            gate->tenants = t;
        }
        t->seen = true;
        t->want_version = strtoll(v->str, NULL, 10);
        load_tenant(t);
    }
    sweep_tenants(gate);
    gate->tenants_listed = true;
}

/* ---- ended sessions ---- */

bool sg_gate_is_revoked(const sg_gate_t *gate, const char *nonce)
{
    for (size_t i = 0; i < gate->nrevoked; i++) {
        if (strcmp(gate->revoked[i], nonce) == 0) {
            return true;
        }
    }
    return false;
}

static void add_revoked(sg_gate_t *gate, const char *nonce, uint64_t expires_ms)
{
    if (strlen(nonce) != 32 || sg_gate_is_revoked(gate, nonce)) {
        return;
    }
    gate->revoked = sg_xrealloc(gate->revoked, (gate->nrevoked + 1) * sizeof(*gate->revoked));
    gate->revoked_exp =
            sg_xrealloc(gate->revoked_exp, (gate->nrevoked + 1) * sizeof(*gate->revoked_exp));
    memcpy(gate->revoked[gate->nrevoked], nonce, 33);
    gate->revoked_exp[gate->nrevoked] = expires_ms;
    gate->nrevoked++;
}

void sg_gate_revoke(sg_gate_t *gate, const char *nonce, uint64_t expires_ms)
{
    add_revoked(gate, nonce, expires_ms);
    char score[24];
    char msg[64];
    snprintf(score, sizeof(score), "%" PRIu64, expires_ms);
    snprintf(msg, sizeof(msg), "revoked %s", nonce);
    const char *zadd[] = { "ZADD", "sg:revoked-sessions", score, nonce };
    fire(gate, 4, zadd);
    const char *pub[] = { "PUBLISH", EVENTS_CHANNEL, msg };
    fire(gate, 3, pub);
}

static void on_revoked(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_gate_t *gate = SG_CONTAINER_OF(cmd, sg_gate_t, revoked_cmd);
    gate->revoked_busy = false;
    if (status != SG_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        return;
    }
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        const redisReply *n = reply->element[i];
        const redisReply *s = reply->element[i + 1];
        if (n->type == REDIS_REPLY_STRING && s->type == REDIS_REPLY_STRING) {
            add_revoked(gate, n->str, strtoull(s->str, NULL, 10));
        }
    }
    /* forget expired ones: their tokens fail the TTL check anyway */
    uint64_t now = sg_clock_wall_ms();
    size_t j = 0;
    for (size_t i = 0; i < gate->nrevoked; i++) {
        if (gate->revoked_exp[i] > now) {
            memcpy(gate->revoked[j], gate->revoked[i], 33);
            gate->revoked_exp[j++] = gate->revoked_exp[i];
        }
    }
    gate->nrevoked = j;
}

/* ---- polling and events ---- */

static void poll_now(sg_gate_t *gate)
{
    load_secret(gate);
    if (!gate->poll_busy) {
        gate->poll_busy = true;
        sg_redis_command(gate->redis, &gate->poll_cmd, CMD_TIMEOUT_MS, on_tenants,
                         "HGETALL sg:tenants");
    }
    if (!gate->revoked_busy) {
        char now[24];
        snprintf(now, sizeof(now), "%" PRIu64, sg_clock_wall_ms());
        gate->revoked_busy = true;
        sg_redis_command(gate->redis, &gate->revoked_cmd, CMD_TIMEOUT_MS, on_revoked,
                         "ZRANGEBYSCORE sg:revoked-sessions %s +inf WITHSCORES", now);
    }
}

static void on_poll_timer(sg_timer_t *t)
{
    sg_gate_t *gate = SG_CONTAINER_OF(t, sg_gate_t, poll_timer);
    poll_now(gate);
    sg_timer_start(gate->loop, &gate->poll_timer, POLL_MS, on_poll_timer);
}

void sg_gate_publish_tools_changed(sg_gate_t *gate, const char *tenant)
{
    char msg[96];
    snprintf(msg, sizeof(msg), "tools %s", tenant);
    const char *argv[] = { "PUBLISH", EVENTS_CHANNEL, msg };
    fire(gate, 3, argv);
}

static void on_event(void *data, sg_str_t channel, sg_str_t message)
{
    sg_gate_t *gate = data;
    (void)channel;
    if (sg_str_has_prefix(message, "config ")) {
        poll_now(gate);
    } else if (sg_str_has_prefix(message, "revoked ") && message.len == 8 + 32) {
        char nonce[33];
        memcpy(nonce, message.ptr + 8, 32);
        nonce[32] = '\0';
        add_revoked(gate, nonce, sg_clock_wall_ms() + SG_SESSION_TTL_MS);
    } else if (sg_str_eq_cstr(message, "killswitch")) {
        sg_killswitch_poll_now(gate->killswitch);
    } else if (sg_str_has_prefix(message, "tools ") && message.len < 6 + SG_NAME_MAX + 1) {
        char tenant[SG_NAME_MAX + 1];
        memcpy(tenant, message.ptr + 6, message.len - 6);
        tenant[message.len - 6] = '\0';
        sg_mcp_notify_tools_changed(gate, tenant);
    }
}

static void on_sub_state(void *data, bool connected)
{
    sg_gate_t *gate = data;
    if (connected) {
        /* messages sent while we were away are lost: resynchronise */
        poll_now(gate);
    }
}

/* ---- kill switches ---- */

static void enumerate_switches(void *data, sg_killswitch_t *ks)
{
    sg_gate_t *gate = data;
    for (sg_gate_tenant_t *t = gate->tenants; t != NULL; t = t->next) {
        if (t->snap == NULL) {
            continue;
        }
        sg_killswitch_watch(ks, t->name, NULL);
        for (size_t i = 0; i < t->snap->nidentities; i++) {
            sg_killswitch_watch(ks, t->name, t->snap->identities[i].name);
        }
    }
}

static void on_engaged(void *data)
{
    sg_relay_kill_inflight(data);
}

int sg_gate_killswitch(sg_gate_t *gate, const sg_tenant_t *snap, const char *identity,
                       sg_kill_scope_t *scope)
{
    *scope = sg_killswitch_check(gate->killswitch, snap->name, identity, snap->serve_last_known);
    if (*scope == SG_KILL_NONE) {
        return SG_OK;
    }
    return *scope == SG_KILL_UNKNOWN ? SG_ECONFIG : SG_EKILLED;
}

/* ---- readiness, drain, wiring ---- */

static void append_name(sg_buf_t *missing, const char *kind, const char *a, const char *b)
{
    char name[200];
    snprintf(name, sizeof(name), "%s:%s%s%s", kind, a, b != NULL ? "/" : "", b != NULL ? b : "");
    if (missing->len != 0) {
        sg_buf_append_char(missing, ',');
    }
    sg_json_write_cstr(missing, name);
}

static bool is_ready(void *data, sg_buf_t *missing)
{
    sg_gate_t *gate = data;
    bool ready = gate->have_secret && gate->tenants_listed;
    if (!gate->have_secret) {
        append_name(missing, "secret", "session", NULL);
    }
    if (!gate->tenants_listed) {
        append_name(missing, "tenants", "listing", NULL);
    }
    if (!sg_killswitch_is_confirmed(gate->killswitch)) {
        append_name(missing, "killswitch", "unconfirmed", NULL);
        ready = false;
    }
    for (sg_gate_tenant_t *t = gate->tenants; t != NULL; t = t->next) {
        if (t->snap == NULL || t->snap->version != t->want_version) {
            if (t->seen) {
                append_name(missing, "tenant", t->name, NULL);
                ready = false;
            }
            continue;
        }
        for (size_t i = 0; i < t->snap->nupstreams; i++) {
            sg_upstream_state_t s = sg_upstream_state(t->ups[i]);
            if (s != SG_UPSTREAM_READY && s != SG_UPSTREAM_FAILED) {
                append_name(missing, "upstream", t->name, t->snap->upstreams[i].name);
                ready = false;
            }
        }
    }
    return ready;
}

static void on_drain(void *data)
{
    sg_gate_t *gate = data;
    gate->draining = true;
    sg_mcp_close_streams(gate);
}

static void on_stop(void *data)
{
    sg_gate_t *gate = data;
    /* flushes what is queued to PostgreSQL, the rest to the spool: nothing is lost */
    sg_audit_free(gate->audit);
    gate->audit = NULL;
}

sg_gate_t *sg_gate_new(sg_runtime_t *rt, sg_error_t *err)
{
    const sg_settings_t *settings = sg_runtime_settings(rt);
    sg_audit_t *audit = sg_audit_new(sg_runtime_loop(rt), sg_runtime_pg(rt), settings->replica_id,
                                     settings->spool_dir, NULL, err);
    if (audit == NULL) {
        return NULL;
    }
    sg_metrics_register(&m_reloads);
    sg_metrics_register(&m_reload_errors);
    sg_gate_t *gate = sg_xcalloc(1, sizeof(*gate));
    gate->rt = rt;
    gate->loop = sg_runtime_loop(rt);
    gate->redis = sg_runtime_redis(rt);
    gate->log = (sg_log_ctx_t){ .component = "gate" };
    gate->audit = audit;
    gate->policy_ctx = sg_policy_ctx_new();
    gate->killswitch =
            sg_killswitch_new(gate->loop, gate->redis, enumerate_switches, on_engaged, gate);
    sg_redis_subscribe(gate->redis, EVENTS_CHANNEL, on_event, gate);
    sg_redis_set_sub_state_cb(gate->redis, on_sub_state, gate);
    sg_http_server_t *http = sg_runtime_http(rt);
    sg_http_server_route(http, "/mcp", sg_mcp_handle, gate);
    sg_http_server_route(http, "/.well-known/oauth-protected-resource", sg_mcp_handle_prm, gate);
    sg_runtime_add_ready_check(rt, is_ready, gate);
    sg_runtime_add_drain_cb(rt, on_drain, gate);
    sg_runtime_add_stop_cb(rt, on_stop, gate);
    sg_timer_start(gate->loop, &gate->poll_timer, 0, on_poll_timer);
    return gate;
}

void sg_gate_free(sg_gate_t *gate)
{
    if (gate == NULL) {
        return;
    }
    sg_timer_stop(&gate->poll_timer);
    sg_audit_free(gate->audit); /* a no-op after on_stop */
    sg_killswitch_free(gate->killswitch);
    sg_policy_ctx_free(gate->policy_ctx);
    sg_mcp_close_streams(gate);
    while (gate->tenants != NULL) {
        sg_gate_tenant_t *t = gate->tenants;
        gate->tenants = t->next;
        drop_tenant(gate, t);
        free_tenant(t);
    }
    free(gate->revoked);
    free(gate->revoked_exp);
    memset(gate->secret, 0, sizeof(gate->secret));
    free(gate);
}
