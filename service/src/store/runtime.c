/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The serving process: owns loop, stores, HTTP server, signals, readiness
 * probes and drain. Probes run every PROBE_MS so that /readyz answers from the
 * latest observation without waiting on a backend.
 */
#include "store/runtime.h"

#include <sys/signalfd.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "io/child.h"
#include "io/http_reply.h"
#include "store/migrate.h"

#define PROBE_MS      500
#define PROBE_TIMEOUT 1000
#define MAX_CHECKS    8
#define PG_POOL_SIZE  4

struct sg_runtime {
    const sg_settings_t *settings;
    sg_loop_t *loop;
    sg_redis_t *redis;
    sg_pg_t *pg;
    sg_http_server_t *http;
    sg_timer_t probe_timer;
    sg_redis_cmd_t ping;
    sg_pg_query_t schema_query;
    bool ping_busy;
    bool schema_busy;
    bool redis_ok;
    bool pg_ok;
    int64_t schema_version;
    struct {
        sg_runtime_ready_cb cb;
        void *data;
    } checks[MAX_CHECKS];
    size_t nchecks;
    struct {
        sg_runtime_drain_cb cb;
        void *data;
    } drains[MAX_CHECKS];
    size_t ndrains;
    struct {
        sg_runtime_drain_cb cb;
        void *data;
    } stops[MAX_CHECKS];
    size_t nstops;
    sg_watch_t signals;
    int signal_fd;
    bool stopping;
    uint64_t drain_deadline_ms;
};

static const sg_log_ctx_t log_ctx = { .component = "runtime" };

static SG_METRIC_DEFINE(m_up, SG_METRIC_GAUGE, "sg_up", NULL, "1 while the process serves");
static SG_METRIC_DEFINE(m_redis_up, SG_METRIC_GAUGE, "sg_backend_up", "backend=\"redis\"",
                        "1 when the backend answered the last probe");
static SG_METRIC_DEFINE(m_pg_up, SG_METRIC_GAUGE, "sg_backend_up", "backend=\"postgres\"",
                        "1 when the backend answered the last probe");

sg_runtime_t *sg_runtime_new(const sg_settings_t *settings, sg_error_t *err)
{
    sg_redis_url_t url;
    if (sg_redis_parse_url(settings->redis_url, &url, err) != SG_OK) {
        return NULL;
    }
    sg_runtime_t *rt = sg_xcalloc(1, sizeof(*rt));
    rt->settings = settings;
    rt->signal_fd = -1;
    rt->loop = sg_loop_new();
    rt->redis = sg_redis_new(rt->loop, &url, NULL);
    rt->pg = sg_pg_new(rt->loop, settings->database_url, PG_POOL_SIZE);
    sg_http_server_options_t hopts = { .max_body = (size_t)settings->max_body_bytes };
    rt->http = sg_http_server_new(rt->loop, &hopts);
    memset(&url, 0, sizeof(url));
    sg_metrics_register(&m_up);
    sg_metrics_register(&m_redis_up);
    sg_metrics_register(&m_pg_up);
    return rt;
}

void sg_runtime_free(sg_runtime_t *rt)
{
    if (rt == NULL) {
        return;
    }
    sg_timer_stop(&rt->probe_timer);
    sg_watch_dispose(&rt->signals);
    if (rt->signal_fd >= 0) {
        close(rt->signal_fd);
    }
    sg_http_server_free(rt->http);
    sg_redis_free(rt->redis);
    sg_pg_free(rt->pg);
    /* upstream processes stopped during shutdown are reaped before the loop goes */
    size_t left = sg_child_reap_all(3000);
    if (left > 0) {
        SG_LOG_WARN(&log_ctx, "%zu upstream processes not reaped at exit", left);
    }
    sg_loop_free(rt->loop);
    free(rt);
}

void sg_runtime_close_stores(sg_runtime_t *rt)
{
    sg_timer_stop(&rt->probe_timer);
    sg_redis_free(rt->redis);
    rt->redis = NULL;
    sg_pg_free(rt->pg);
    rt->pg = NULL;
}

sg_loop_t *sg_runtime_loop(sg_runtime_t *rt)
{
    return rt->loop;
}

sg_redis_t *sg_runtime_redis(sg_runtime_t *rt)
{
    return rt->redis;
}

sg_pg_t *sg_runtime_pg(sg_runtime_t *rt)
{
    return rt->pg;
}

sg_http_server_t *sg_runtime_http(sg_runtime_t *rt)
{
    return rt->http;
}

const sg_settings_t *sg_runtime_settings(const sg_runtime_t *rt)
{
    return rt->settings;
}

bool sg_runtime_redis_ok(const sg_runtime_t *rt)
{
    return rt->redis_ok;
}

void sg_runtime_add_ready_check(sg_runtime_t *rt, sg_runtime_ready_cb cb, void *data)
{
    SG_BUG_ON(rt->nchecks == MAX_CHECKS);
    rt->checks[rt->nchecks].cb = cb;
    rt->checks[rt->nchecks].data = data;
    rt->nchecks++;
}

void sg_runtime_add_drain_cb(sg_runtime_t *rt, sg_runtime_drain_cb cb, void *data)
{
    SG_BUG_ON(rt->ndrains == MAX_CHECKS);
    rt->drains[rt->ndrains].cb = cb;
    rt->drains[rt->ndrains].data = data;
    rt->ndrains++;
}

void sg_runtime_add_stop_cb(sg_runtime_t *rt, sg_runtime_drain_cb cb, void *data)
{
    SG_BUG_ON(rt->nstops == MAX_CHECKS);
    rt->stops[rt->nstops].cb = cb;
    rt->stops[rt->nstops].data = data;
    rt->nstops++;
}

/* ---- probes ---- */

static void on_ping(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    sg_runtime_t *rt = SG_CONTAINER_OF(cmd, sg_runtime_t, ping);
    rt->ping_busy = false;
    bool ok = status == SG_OK && reply != NULL && reply->type != REDIS_REPLY_ERROR;
    if (ok != rt->redis_ok) {
        SG_LOG_INFO(&log_ctx, "redis %s", ok ? "answers" : "does not answer");
    }
    rt->redis_ok = ok;
    sg_metric_set(&m_redis_up, ok);
}

static void on_schema(sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_runtime_t *rt = SG_CONTAINER_OF(q, sg_runtime_t, schema_query);
    rt->schema_busy = false;
    bool ok = status == SG_OK;
    int64_t version = -1;
    if (ok && PQntuples(res) == 1) {
        version = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
    }
    if (status == SG_EBACKEND) {
        ok = true; /* answered, but schema_migrations is missing */
    }
    if (ok != rt->pg_ok) {
        SG_LOG_INFO(&log_ctx, "postgres %s", ok ? "answers" : "does not answer");
    }
    rt->pg_ok = ok;
    rt->schema_version = version;
    sg_metric_set(&m_pg_up, ok);
}

static void on_probe_timer(sg_timer_t *t)
{
    sg_runtime_t *rt = SG_CONTAINER_OF(t, sg_runtime_t, probe_timer);
    if (!rt->ping_busy) {
        rt->ping_busy = true;
        sg_redis_command(rt->redis, &rt->ping, PROBE_TIMEOUT, on_ping, "PING");
    }
    if (!rt->schema_busy) {
        rt->schema_busy = true;
        sg_pg_query_start(rt->pg, &rt->schema_query, PROBE_TIMEOUT, SG_SCHEMA_VERSION_SQL, 0, NULL,
                          NULL, on_schema);
    }
    sg_timer_start(rt->loop, &rt->probe_timer, PROBE_MS, on_probe_timer);
}

/* ---- routes ---- */

static int on_healthz(void *data, h2o_req_t *req)
{
    sg_runtime_t *rt = data;
    char body[256];
    int n = snprintf(body, sizeof(body), "{\"status\":\"ok\",\"replica\":");
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append(&b, body, (size_t)n);
    sg_json_write_cstr(&b, rt->settings->replica_id);
    sg_buf_append_cstr(&b, "}");
    sg_http_reply_json(req, 200, sg_buf_str(&b));
    sg_buf_dispose(&b);
    return 0;
}

static void append_missing(sg_buf_t *missing, const char *name)
{
    if (missing->len != 0) {
        sg_buf_append_char(missing, ',');
    }
    sg_json_write_cstr(missing, name);
}

static int on_readyz(void *data, h2o_req_t *req)
{
    sg_runtime_t *rt = data;
    sg_buf_t missing = SG_BUF_INIT;
    if (!rt->redis_ok) {
        append_missing(&missing, "redis");
    }
    if (!rt->pg_ok) {
        append_missing(&missing, "postgres");
    } else if (rt->schema_version != SG_SCHEMA_VERSION) {
        append_missing(&missing, "schema");
    }
    for (size_t i = 0; i < rt->nchecks; i++) {
        size_t before = missing.len;
        if (!rt->checks[i].cb(rt->checks[i].data, &missing) && missing.len == before) {
            append_missing(&missing, "component");
        }
    }
    if (rt->stopping) {
        append_missing(&missing, "draining");
    }
    sg_buf_t body = SG_BUF_INIT;
    int status = missing.len == 0 ? 200 : 503;
    sg_buf_printf(&body, "{\"status\":\"%s\",\"schema\":{\"expected\":%d,\"found\":%lld},",
                  status == 200 ? "ready" : "not ready", SG_SCHEMA_VERSION,
                  (long long)rt->schema_version);
    sg_buf_printf(&body, "\"checks\":{\"redis\":%s,\"postgres\":%s},\"missing\":[",
                  rt->redis_ok ? "true" : "false", rt->pg_ok ? "true" : "false");
    sg_buf_append_str(&body, sg_buf_str(&missing));
    sg_buf_append_cstr(&body, "]}");
    sg_http_reply_json(req, status, sg_buf_str(&body));
    sg_buf_dispose(&body);
    sg_buf_dispose(&missing);
    return 0;
}

static int on_metrics(void *data, h2o_req_t *req)
{
    (void)data;
    sg_buf_t b = SG_BUF_INIT;
    sg_metrics_render(&b);
    sg_http_reply(req, 200, "text/plain; version=0.0.4", sg_buf_str(&b));
    sg_buf_dispose(&b);
    return 0;
}

/* ---- signals and drain ---- */

static void on_signal(sg_watch_t *w)
{
    sg_runtime_t *rt = SG_CONTAINER_OF(w, sg_runtime_t, signals);
    struct signalfd_siginfo si;
    while (read(rt->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
        if (rt->stopping) {
            continue;
        }
        SG_LOG_INFO(&log_ctx, "signal %u: draining (up to %lld ms)", si.ssi_signo,
                    (long long)rt->settings->drain_timeout_ms);
        rt->stopping = true;
        rt->drain_deadline_ms = sg_clock_now_ms() + (uint64_t)rt->settings->drain_timeout_ms;
        sg_http_server_stop_accepting(rt->http);
        for (size_t i = 0; i < rt->ndrains; i++) {
            rt->drains[i].cb(rt->drains[i].data);
        }
    }
}

static int setup_signals(sg_runtime_t *rt, sg_error_t *err)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigprocmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    rt->signal_fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    if (rt->signal_fd < 0 ||
        sg_watch_init(&rt->signals, rt->loop, rt->signal_fd, on_signal, NULL) != SG_OK) {
        return sg_error_set(err, SG_EIO, "cannot set up signal handling");
    }
    sg_watch_want_read(&rt->signals, true);
    return SG_OK;
}

int sg_runtime_run(sg_runtime_t *rt, sg_error_t *err)
{
    int rc = setup_signals(rt, err);
    if (rc != SG_OK) {
        return rc;
    }
    sg_http_server_route(rt->http, "/healthz", on_healthz, rt);
    sg_http_server_route(rt->http, "/readyz", on_readyz, rt);
    sg_http_server_route(rt->http, "/metrics", on_metrics, rt);
    rc = sg_http_server_listen(rt->http, rt->settings->listen_host, rt->settings->listen_port,
                               rt->settings->tls_cert, rt->settings->tls_key, err);
    if (rc != SG_OK) {
        return rc;
    }
    sg_metric_set(&m_up, 1);
    sg_timer_start(rt->loop, &rt->probe_timer, 0, on_probe_timer);
    while (!rt->stopping ||
           (sg_http_server_inflight(rt->http) > 0 && sg_clock_now_ms() < rt->drain_deadline_ms)) {
        sg_loop_run_once(rt->loop, rt->stopping ? 50 : 1000);
    }
    if (sg_http_server_inflight(rt->http) > 0) {
        SG_LOG_WARN(&log_ctx, "drain bound reached with %zu requests in flight",
                    sg_http_server_inflight(rt->http));
    }
    /* close idle keep-alive connections and let the last writes finish (bounded) */
    uint64_t quiet_deadline = sg_clock_now_ms() + 2000;
    while (!sg_http_server_close_idle(rt->http) && sg_clock_now_ms() < quiet_deadline) {
        sg_loop_run_once(rt->loop, 10);
    }
    sg_timer_stop(&rt->probe_timer);
    for (size_t i = 0; i < rt->nstops; i++) {
        rt->stops[i].cb(rt->stops[i].data);
    }
    sg_metric_set(&m_up, 0);
    SG_LOG_INFO(&log_ctx, "stopped");
    return SG_OK;
}
