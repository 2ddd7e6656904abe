/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kill-switch cache: one MGET per poll over every watched key; the reply is
 * kept as sets of engaged tenants and identities. See killswitch.h.
 */
#include "gateway/killswitch.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"

#define MAX_WATCH 65536

typedef struct watch {
    char *tenant;
    char *identity; /* NULL = the tenant switch */
    bool engaged;
} watch_t;

struct sg_killswitch {
    sg_loop_t *loop;
    sg_redis_t *redis;
    sg_killswitch_enum_cb enumerate;
    sg_killswitch_engaged_cb engaged_cb;
    void *data;
    sg_timer_t timer;
    sg_redis_cmd_t cmd;
    bool busy;
    bool again;       /* an event arrived while a poll was running */
    watch_t *polling; /* the keys of the MGET in flight, in order */
    size_t npolling;
    watch_t *state; /* the last observed state */
    size_t nstate;
    bool global;
    uint64_t confirmed_ms; /* monotonic time of the last good reply; 0 = never */
    uint64_t poll_started_ms;
    sg_log_ctx_t log;
};

static SG_METRIC_DEFINE(m_engaged, SG_METRIC_GAUGE, "sg_killswitch_engaged", "scope=\"global\"",
                        "1 while the global kill switch is engaged");
static SG_METRIC_DEFINE(m_stale, SG_METRIC_COUNTER, "sg_killswitch_unconfirmed_total", NULL,
                        "polls of the kill switches that failed");

const char *sg_kill_scope_name(sg_kill_scope_t s)
{
    static const char *const names[] = { "unknown", "none", "global", "tenant", "identity" };
    return (size_t)s < SG_ARRAY_LEN(names) ? names[s] : "?";
}

static void free_watches(watch_t *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(w[i].tenant);
        free(w[i].identity);
    }
    free(w);
}

void sg_killswitch_watch(sg_killswitch_t *ks, const char *tenant, const char *identity)
{
    if (ks->npolling == MAX_WATCH) {
        return;
    }
    ks->polling = sg_xrealloc(ks->polling, (ks->npolling + 1) * sizeof(*ks->polling));
    watch_t *w = &ks->polling[ks->npolling++];
    w->tenant = sg_xstrdup(tenant);
    w->identity = identity != NULL ? sg_xstrdup(identity) : NULL;
    w->engaged = false;
}

static bool is_engaged(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_STRING && r->len == 1 && r->str[0] == '1';
}

static bool any_newly_engaged(const sg_killswitch_t *ks, bool was_global, const watch_t *old,
                              size_t nold)
{
    if (ks->global && !was_global) {
        return true;
    }
    for (size_t i = 0; i < ks->nstate; i++) {
        if (!ks->state[i].engaged) {
            continue;
        }
        bool before = false;
        for (size_t j = 0; j < nold; j++) {
            if (old[j].engaged && strcmp(old[j].tenant, ks->state[i].tenant) == 0 &&
                (old[j].identity == NULL) == (ks->state[i].identity == NULL) &&
                (old[j].identity == NULL || strcmp(old[j].identity, ks->state[i].identity) == 0)) {
                before = true;
            }
        }
        if (!before) {
            return true;
        }
    }
    return false;
}

static void schedule(sg_killswitch_t *ks);

static void on_mget(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_killswitch_t *ks = SG_CONTAINER_OF(cmd, sg_killswitch_t, cmd);
    ks->busy = false;
    if (status != SG_OK || reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != ks->npolling + 1) {
        sg_metric_add(&m_stale, 1);
        free_watches(ks->polling, ks->npolling);
        ks->polling = NULL;
        ks->npolling = 0;
        schedule(ks);
        return;
    }
    bool was_global = ks->global;
    ks->global = is_engaged(reply->element[0]);
    for (size_t i = 0; i < ks->npolling; i++) {
        ks->polling[i].engaged = is_engaged(reply->element[i + 1]);
    }
    watch_t *old = ks->state;
    size_t nold = ks->nstate;
    ks->state = ks->polling;
    ks->nstate = ks->npolling;
    ks->polling = NULL;
    ks->npolling = 0;
    ks->confirmed_ms = sg_clock_now_ms();
    sg_metric_set(&m_engaged, ks->global);
    if (ks->global != was_global) {
        SG_LOG_WARN(&ks->log, "global kill switch %s", ks->global ? "ENGAGED" : "released");
    }
    bool fire = any_newly_engaged(ks, was_global, old, nold);
    free_watches(old, nold);
    if (fire && ks->engaged_cb != NULL) {
        ks->engaged_cb(ks->data);
    }
    schedule(ks);
}

static void poll(sg_killswitch_t *ks)
{
    if (ks->busy) {
        ks->again = true;
        return;
    }
    ks->again = false;
    ks->poll_started_ms = sg_clock_now_ms();
    free_watches(ks->polling, ks->npolling);
    ks->polling = NULL;
    ks->npolling = 0;
    ks->enumerate(ks->data, ks);
    size_t argc = ks->npolling + 2;
    const char **argv = sg_xcalloc(argc, sizeof(char *));
    size_t *lens = sg_xcalloc(argc, sizeof(size_t));
    char **keys = sg_xcalloc(argc, sizeof(char *));
    argv[0] = "MGET";
    argv[1] = "sg:killswitch";
    for (size_t i = 0; i < ks->npolling; i++) {
        const watch_t *w = &ks->polling[i];
        size_t n = strlen(w->tenant) + (w->identity ? strlen(w->identity) : 0) + 32;
        keys[i] = sg_xmalloc(n);
        if (w->identity != NULL) {
            snprintf(keys[i], n, "sg:{%s}:killswitch:%s", w->tenant, w->identity);
        } else {
            snprintf(keys[i], n, "sg:{%s}:killswitch", w->tenant);
        }
        argv[i + 2] = keys[i];
    }
    for (size_t i = 0; i < argc; i++) {
        lens[i] = strlen(argv[i]);
    }
    ks->busy = true;
    sg_redis_command_argv(ks->redis, &ks->cmd, SG_KILL_BOUND_MS / 2, on_mget, (int)argc, argv,
                          lens);
    for (size_t i = 0; i < ks->npolling; i++) {
        free(keys[i]);
    }
    free(keys);
    free(argv);
    free(lens);
}

static void on_timer(sg_timer_t *t)
{
    poll(SG_CONTAINER_OF(t, sg_killswitch_t, timer));
}

/* The next poll starts SG_KILL_POLL_MS after the previous one started, whatever Redis took. */
static void schedule(sg_killswitch_t *ks)
{
    uint64_t elapsed = sg_clock_now_ms() - ks->poll_started_ms;
    uint64_t wait = ks->again || elapsed >= SG_KILL_POLL_MS ? 0 : SG_KILL_POLL_MS - elapsed;
    /* whole 10 ms steps: every distinct duration is one timer queue of the loop */
    sg_timer_start(ks->loop, &ks->timer, wait / 10 * 10, on_timer);
}

void sg_killswitch_poll_now(sg_killswitch_t *ks)
{
    if (ks->busy) {
        ks->again = true;
    } else {
        sg_timer_start(ks->loop, &ks->timer, 0, on_timer);
    }
}

sg_killswitch_t *sg_killswitch_new(sg_loop_t *loop, sg_redis_t *redis,
                                   sg_killswitch_enum_cb enumerate,
                                   sg_killswitch_engaged_cb engaged, void *data)
{
    sg_metrics_register(&m_engaged);
    sg_metrics_register(&m_stale);
    sg_killswitch_t *ks = sg_xcalloc(1, sizeof(*ks));
    ks->loop = loop;
    ks->redis = redis;
    ks->enumerate = enumerate;
    ks->engaged_cb = engaged;
    ks->data = data;
    ks->log = (sg_log_ctx_t){ .component = "killswitch" };
    sg_timer_start(loop, &ks->timer, 0, on_timer);
    return ks;
}

void sg_killswitch_free(sg_killswitch_t *ks)
{
    if (ks == NULL) {
        return;
    }
    sg_timer_stop(&ks->timer);
    free_watches(ks->polling, ks->npolling);
    free_watches(ks->state, ks->nstate);
    free(ks);
}

bool sg_killswitch_is_confirmed(const sg_killswitch_t *ks)
{
    return ks->confirmed_ms != 0 && sg_clock_now_ms() - ks->confirmed_ms <= SG_KILL_BOUND_MS;
}

sg_kill_scope_t sg_killswitch_check(const sg_killswitch_t *ks, const char *tenant,
                                    const char *identity, bool serve_last_known)
{
    if (!sg_killswitch_is_confirmed(ks) && !(serve_last_known && ks->confirmed_ms != 0)) {
        return SG_KILL_UNKNOWN;
    }
    if (ks->global) {
        return SG_KILL_GLOBAL;
    }
    sg_kill_scope_t s = SG_KILL_NONE;
    for (size_t i = 0; i < ks->nstate; i++) {
        const watch_t *w = &ks->state[i];
        if (!w->engaged || strcmp(w->tenant, tenant) != 0) {
            continue;
        }
        if (w->identity == NULL) {
            return SG_KILL_TENANT;
        }
        if (identity != NULL && strcmp(w->identity, identity) == 0) {
            s = SG_KILL_IDENTITY;
        }
    }
    return s;
}
