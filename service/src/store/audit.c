/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit writer (contract in audit.h): lifecycle, events and the chain;
 * audit_write.c moves batches to PostgreSQL or the spool and replays it.
 * Events live in one ring, in submission order, each as the JSON record that
 * is both its spool line and its element of a batch's JSON array:
 *
 *     head <= next_batch <= chained <= tail   (absolute positions)
 *     [head, next_batch)    in batches, not all released yet
 *     [next_batch, chained) chained (seq + hash), waiting for a batch
 *     [chained, tail)       waiting for the chain tail lookup
 *
 * Nothing runs inside sg_audit_submit except copying and hashing: every write
 * starts from a timer or a completion, so callbacks are never re-entrant.
 */
#include "store/audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/rand.h>

#include "base/clock.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "store/audit_int.h"

#define DEFAULT_MAX_QUEUE       100000
#define DEFAULT_MAX_QUEUE_BYTES ((size_t)128 * 1024 * 1024)
#define DEFAULT_BATCH_MAX       500
#define DEFAULT_FLUSH_MS        50
#define DEFAULT_WRITE_TIMEOUT   2000
#define DEFAULT_MAX_INFLIGHT    2
#define DEFAULT_MAX_SPOOL       ((uint64_t)1024 * 1024 * 1024)
#define DEFAULT_MAX_JSON        ((size_t)64 * 1024)
#define DEFAULT_DRAIN_MS        1000
#define DEFAULT_CHAIN_LOOKUP_MS 10000
#define LOOKUP_TIMEOUT_MS       2000 /* chain tail query */
#define LOOKUP_RETRY_MS         500
#define MAINT_TIMEOUT_MS        5000 /* sg_audit_ensure_partitions */
#define MAINT_EVERY_MS          (6ull * 3600 * 1000)
#define MAINT_RETRY_MS          60000
#define TAIL_RESERVE            200 /* ,"seq":N,"prev_hash":"…","hash":"…"} */

static const char lookup_sql[] = "SELECT seq, hash FROM audit_events WHERE replica = $1 "
                                 "ORDER BY seq DESC LIMIT 1";

static const char maint_sql[] = "SELECT sg_audit_ensure_partitions(2)";

static const sg_log_ctx_t log_ctx = { .component = "audit" };

static SG_METRIC_DEFINE(m_accepted, SG_METRIC_COUNTER, "sg_audit_events_total", NULL,
                        "Audit events accepted by the writer");
static SG_METRIC_DEFINE(m_lost, SG_METRIC_COUNTER, "sg_audit_lost_total", NULL,
                        "Audit events refused (queue and spool unusable) or lost");

/* ======================================================================== */
/* events: ids, rows, the chain                                             */
/* ======================================================================== */

/* UUIDv4 text from 16 random bytes. */
static void format_uuid(unsigned char b[16], char out[SG_AUDIT_ID_LEN + 1])
{
    static const char hex[] = "0123456789abcdef";
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* variant 10 */
    char *p = out;
    for (size_t i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            *p++ = '-';
        }
        *p++ = hex[b[i] >> 4];
        *p++ = hex[b[i] & 0xF];
    }
    *p = '\0';
}

void sg_audit_new_id(char out[SG_AUDIT_ID_LEN + 1])
{
    unsigned char b[16];
    SG_BUG_ON(RAND_bytes(b, sizeof(b)) != 1);
    format_uuid(b, out);
}

/* The writer's ids: random bytes fetched in bulk (RAND_bytes per event cost 1.5 µs). */
static void writer_new_id(sg_audit_t *a, char out[SG_AUDIT_ID_LEN + 1])
{
    if (a->rnd_pos + 16 > sizeof(a->rnd)) {
        SG_BUG_ON(RAND_bytes(a->rnd, sizeof(a->rnd)) != 1);
        a->rnd_pos = 0;
    }
    format_uuid(a->rnd + a->rnd_pos, out);
    memset(a->rnd + a->rnd_pos, 0, 16);
    a->rnd_pos += 16;
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static sg_str_t cut(sg_str_t s)
{
    if (s.ptr != NULL && s.len > SG_AUDIT_MAX_TEXT) {
        s.len = SG_AUDIT_MAX_TEXT;
    }
    return s;
}

/*
 * The stored form of a JSON column: canonical text, the text as a JSON string
 * when it is not acceptable JSON, or a digest when too long. Appended to
 * a->json_tmp; returns the slice (valid until json_tmp next grows).
 */
static size_t json_column(sg_audit_t *a, sg_str_t in)
{
    sg_buf_t *b = &a->json_tmp;
    size_t mark = b->len;
    if (sg_audit_canon_json(in, b) != SG_OK) {
        sg_audit_write_text(b, sg_str_n(in.ptr, SG_MIN(in.len, a->opts.max_json_bytes)));
    }
    size_t len = b->len - mark;
    if (len > a->opts.max_json_bytes) {
        char digest[SG_AUDIT_HASH_LEN + 1];
        sg_audit_sha256_hex(b->data + mark, len, digest);
        b->len = mark;
        sg_buf_printf(b, "{\"bytes\":%zu,\"sg_truncated\":true,\"sha256\":\"%s\"}", len, digest);
    }
    return mark;
}

static void build_line(sg_audit_t *a, const sg_audit_event_t *ev, sg_str_t id, sg_buf_t *line)
{
    int64_t ts = ev->ts_us;
    if (ts <= 0 || ts >= INT64_C(253402300800000000)) { /* 9999-12-31 */
        ts = wall_us();
    }
    sg_buf_reset(&a->json_tmp);
    size_t args_off = 0, find_off = 0;
    bool has_args = ev->arguments.ptr != NULL, has_find = ev->findings.ptr != NULL;
    if (has_args) {
        args_off = json_column(a, ev->arguments);
    }
    size_t args_end = a->json_tmp.len;
    if (has_find) {
        find_off = json_column(a, ev->findings);
    }
    sg_audit_row_t row = {
        .id = id,
        .ts_us = ts,
        .tenant = cut(ev->tenant),
        .identity = cut(ev->identity),
        .session = cut(ev->session),
        .replica = sg_str(a->replica),
        .request_id = cut(ev->request_id),
        .method = cut(ev->method),
        .tool = cut(ev->tool),
        .upstream = cut(ev->upstream),
        .risk_class = cut(ev->risk_class),
        .decision = cut(ev->decision),
        .rule = cut(ev->rule),
        .reason = cut(ev->reason),
        .has_result_size = ev->has_result,
        .result_size = SG_MAX(0, SG_MIN(ev->result_size, (int64_t)INT32_MAX)),
        .result_is_error = ev->has_result ? (ev->result_is_error ? 1 : 0) : -1,
        .has_gate_latency = ev->gate_latency_us >= 0,
        .gate_latency_us = ev->gate_latency_us,
        .has_upstream_latency = ev->upstream_latency_us >= 0,
        .upstream_latency_us = ev->upstream_latency_us,
        .approval_id = cut(ev->approval_id),
    };
    if (has_args) {
        row.arguments = sg_str_n(a->json_tmp.data + args_off, args_end - args_off);
    }
    if (has_find) {
        row.findings = sg_str_n(a->json_tmp.data + find_off, a->json_tmp.len - find_off);
    }
    sg_buf_reserve(line, 512 + a->json_tmp.len + TAIL_RESERVE);
    sg_audit_row_write(line, &row);
}

/* Gives the item its seq and hash and completes its record. */
static void chain_item(sg_audit_t *a, sg_audit_item_t *it)
{
    char hash[SG_AUDIT_HASH_LEN + 1];
    size_t before = it->line.cap;
    it->seq = ++a->seq;
    sg_buf_append(&it->line, ",\"seq\":", 7);
    sg_audit_write_int(&it->line, (int64_t)it->seq);
    sg_audit_chain_hash(a->prev_hash, it->line.data, it->line.len, hash);
    sg_buf_append(&it->line, ",\"prev_hash\":\"", 14);
    sg_buf_append(&it->line, a->prev_hash, SG_AUDIT_HASH_LEN);
    sg_buf_append(&it->line, "\",\"hash\":\"", 10);
    sg_buf_append(&it->line, hash, SG_AUDIT_HASH_LEN);
    sg_buf_append(&it->line, "\"}", 2);
    memcpy(a->prev_hash, hash, sizeof(hash));
    a->held_bytes += it->line.cap - before;
    a->stats.last_seq = it->seq;
}

static void chain_resolve(sg_audit_t *a, const sg_audit_tail_t *tail, const char *source)
{
    if (a->chain_ready) {
        return;
    }
    a->chain_ready = true;
    a->stats.chain_ready = true;
    if (tail->found) {
        a->seq = tail->seq;
        memcpy(a->prev_hash, tail->hash, sizeof(a->prev_hash));
    } else {
        a->seq = 0;
        memcpy(a->prev_hash, SG_AUDIT_GENESIS, sizeof(a->prev_hash));
    }
    a->durable_seq = a->state_seq = a->seq;
    memcpy(a->durable_hash, a->prev_hash, sizeof(a->durable_hash));
    SG_LOG_INFO(&log_ctx, "replica=%s chain continues after seq %llu (%s)", a->replica,
                (unsigned long long)a->seq, source);
    for (; a->chained < a->tail; a->chained++) {
        chain_item(a, sg_audit_item_at(a, a->chained));
    }
    sg_audit_kick(a);
}

int sg_audit_lose(sg_audit_t *a, int rc, size_t n, const char *why)
{
    uint64_t suppressed = 0;
    a->stats.lost += n;
    sg_metric_add(&m_lost, (int64_t)n);
    if (sg_log_limit_allow(&a->lost_limit, sg_loop_now(a->loop), &suppressed)) {
        SG_LOG_ERROR(
                &log_ctx,
                "replica=%s %zu audit event(s) NOT RECORDED: %s (queued=%llu spooling=%d, lost "
                "so far %llu, %llu similar lines suppressed)",
                a->replica, n, why, (unsigned long long)(a->tail - a->head), a->spool_active,
                (unsigned long long)a->stats.lost, (unsigned long long)suppressed);
    }
    return rc;
}

/* ======================================================================== */
/* the chain tail and the partitions                                        */
/* ======================================================================== */

static void lookup_start(sg_audit_t *a);

static void on_lookup_timer(sg_timer_t *t)
{
    lookup_start(SG_CONTAINER_OF(t, sg_audit_t, lookup_timer));
}

static void on_lookup(sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_audit_t *a = SG_CONTAINER_OF(q, sg_audit_t, lookup_q);
    a->lookup_busy = false;
    if (a->chain_ready) {
        return;
    }
    if (status == SG_OK) {
        sg_audit_tail_t t = a->local_tail;
        if (PQntuples(res) == 1 && PQnfields(res) == 2 && !PQgetisnull(res, 0, 1) &&
            strlen(PQgetvalue(res, 0, 1)) == SG_AUDIT_HASH_LEN) {
            uint64_t seq = strtoull(PQgetvalue(res, 0, 0), NULL, 10);
            if (!t.found || seq > t.seq) {
                t.found = true;
                t.seq = seq;
                memcpy(t.hash, PQgetvalue(res, 0, 1), sizeof(t.hash));
            }
        }
        chain_resolve(a, &t, "PostgreSQL and the local spool");
        return;
    }
    if (a->closing || sg_clock_now_ms() - a->lookup_since_ms >= a->opts.chain_lookup_ms) {
        SG_LOG_WARN(
                &log_ctx,
                "replica=%s PostgreSQL unreachable for the chain tail lookup: continuing from %s",
                a->replica, a->local_tail.found ? "the local spool/state" : "genesis");
        chain_resolve(a, &a->local_tail,
                      a->local_tail.found ? "local spool or state file" : "genesis");
        return;
    }
    sg_timer_start(a->loop, &a->lookup_timer, LOOKUP_RETRY_MS, on_lookup_timer);
}

static void lookup_start(sg_audit_t *a)
{
    const char *params[1] = { a->replica };
    a->lookup_busy = true;
    sg_pg_query_start(a->pg, &a->lookup_q, LOOKUP_TIMEOUT_MS, lookup_sql, 1, params, NULL,
                      on_lookup);
}

static void maint_start(sg_audit_t *a);

static void on_maint_timer(sg_timer_t *t)
{
    maint_start(SG_CONTAINER_OF(t, sg_audit_t, maint_timer));
}

static void on_maint(sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_audit_t *a = SG_CONTAINER_OF(q, sg_audit_t, maint_q);
    a->maint_busy = false;
    if (a->closing) {
        return;
    }
    if (status != SG_OK) {
        const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
        SG_LOG_WARN(&log_ctx, "replica=%s cannot create audit partitions ahead: %.200s", a->replica,
                    msg != NULL ? msg : sg_err_message(status));
    }
    sg_timer_start(a->loop, &a->maint_timer, status == SG_OK ? MAINT_EVERY_MS : MAINT_RETRY_MS,
                   on_maint_timer);
}

static void maint_start(sg_audit_t *a)
{
    a->maint_busy = true;
    sg_pg_query_start(a->pg, &a->maint_q, MAINT_TIMEOUT_MS, maint_sql, 0, NULL, NULL, on_maint);
}

/* ======================================================================== */
/* public API                                                               */
/* ======================================================================== */

static bool replica_ok(const char *r)
{
    size_t n = r != NULL ? strlen(r) : 0;
    if (n == 0 || n > 128) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char c = r[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-' || c == ':' || c == '@';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static int set_options(sg_audit_options_t *o, const sg_audit_options_t *in, sg_error_t *err)
{
    *o = in != NULL ? *in : (sg_audit_options_t){ 0 };
#define DEFAULT(field, v) \
    if (o->field == 0) {  \
        o->field = (v);   \
    }
    DEFAULT(max_queue, DEFAULT_MAX_QUEUE);
    DEFAULT(max_queue_bytes, DEFAULT_MAX_QUEUE_BYTES);
    DEFAULT(batch_max, DEFAULT_BATCH_MAX);
    DEFAULT(flush_interval_ms, DEFAULT_FLUSH_MS);
    DEFAULT(write_timeout_ms, DEFAULT_WRITE_TIMEOUT);
    DEFAULT(max_inflight, DEFAULT_MAX_INFLIGHT);
    DEFAULT(max_spool_bytes, DEFAULT_MAX_SPOOL);
    DEFAULT(max_json_bytes, DEFAULT_MAX_JSON);
    DEFAULT(drain_ms, DEFAULT_DRAIN_MS);
    DEFAULT(chain_lookup_ms, DEFAULT_CHAIN_LOOKUP_MS);
#undef DEFAULT
    if (o->batch_max > o->max_queue || o->max_inflight > SG_PG_MAX_CONNS ||
        o->max_json_bytes < 256 || o->max_queue > ((size_t)1 << 26)) {
        return sg_error_set(
                err, SG_EINVAL,
                "audit options: need batch_max <= max_queue <= 2^26, max_inflight <= %d, "
                "max_json_bytes >= 256",
                SG_PG_MAX_CONNS);
    }
    return SG_OK;
}

sg_audit_t *sg_audit_new(sg_loop_t *loop, sg_pg_t *pg, const char *replica_id,
                         const char *spool_dir, const sg_audit_options_t *opts, sg_error_t *err)
{
    sg_audit_options_t o;
    if (loop == NULL || pg == NULL || !replica_ok(replica_id)) {
        sg_error_set(err, SG_EINVAL,
                     "audit: replica id must be 1..128 characters of [A-Za-z0-9._:@-]");
        return NULL;
    }
    if (spool_dir == NULL || spool_dir[0] == '\0') {
        sg_error_set(err, SG_EINVAL, "audit: no spool directory (SG_SPOOL_DIR)");
        return NULL;
    }
    if (set_options(&o, opts, err) != SG_OK) {
        return NULL;
    }
    sg_audit_tail_t tail;
    uint64_t size = 0;
    size_t nlines = 0;
    sg_audit_spool_t *spool = sg_audit_spool_open(loop, spool_dir, replica_id, o.max_spool_bytes,
                                                  &tail, &size, &nlines, err);
    if (spool == NULL) {
        return NULL;
    }
    sg_audit_t *a = sg_xcalloc(1, sizeof(*a));
    a->loop = loop;
    a->pg = pg;
    a->replica = sg_xstrdup(replica_id);
    a->opts = o;
    a->spool = spool;
    a->spool_size = size;
    a->local_tail = tail;
    a->cap = o.max_queue;
    a->ring = sg_xcalloc(a->cap, sizeof(*a->ring));
    a->rnd_pos = sizeof(a->rnd); /* refill on first use */
    a->replay_chunk = o.batch_max;
    a->lost_limit.interval_ms = SG_AUDIT_LOG_LIMIT_MS;
    a->fail_limit.interval_ms = SG_AUDIT_LOG_LIMIT_MS;
    sg_metrics_register(&m_accepted);
    sg_metrics_register(&m_lost);
    sg_audit_write_register_metrics();
    if (nlines > 0) {
        SG_LOG_WARN(&log_ctx, "replica=%s %zu audit events left in %s by an earlier run: replaying",
                    a->replica, nlines, spool_dir);
        sg_audit_enter_spooling(a);
        sg_audit_replay_schedule(a, 0);
    }
    a->lookup_since_ms = sg_clock_now_ms();
    lookup_start(a);
    maint_start(a);
    sg_audit_update_gauges(a);
    return a;
}

static bool pg_busy(const sg_audit_t *a)
{
    return a->pg_inflight > 0 || a->lookup_busy || a->maint_busy || a->replay_busy;
}

static void stop_timers(sg_audit_t *a)
{
    sg_timer_stop(&a->flush_timer);
    sg_timer_stop(&a->kick_timer);
    sg_timer_stop(&a->spool_timer);
    sg_timer_stop(&a->replay_timer);
    sg_timer_stop(&a->lookup_timer);
    sg_timer_stop(&a->maint_timer);
}

/* Runs the loop until everything is durable, or until the deadlines say to stop. */
static void drain(sg_audit_t *a)
{
    uint64_t start = sg_clock_now_ms();
    uint64_t to_spool_at = start + a->opts.drain_ms;
    uint64_t give_up_at = to_spool_at + a->opts.write_timeout_ms + 1000;
    for (;;) {
        uint64_t now = sg_clock_now_ms();
        if (now >= to_spool_at) {
            sg_audit_enter_spooling(a); /* what PostgreSQL has not taken goes to the spool */
        }
        a->no_pg = now >= give_up_at; /* then only wait for what PostgreSQL already has */
        sg_audit_pump(a, true);
        bool settled = a->head == a->tail && sg_audit_spool_pending(a->spool) == 0;
        if (!pg_busy(a) && (settled || now >= give_up_at)) {
            return;
        }
        sg_loop_run_once(a->loop, 10);
    }
}

void sg_audit_free(sg_audit_t *a)
{
    if (a == NULL) {
        return;
    }
    a->closing = true;
    stop_timers(a);
    if (!a->chain_ready && !a->lookup_busy) { /* between two lookups: no answer coming */
        chain_resolve(a, &a->local_tail, "closing before PostgreSQL answered");
    }
    drain(a); /* a lookup in flight resolves the chain when it completes */
    a->closing_final = true;
    stop_timers(a);
    sg_audit_spool_close(a->spool); /* completes the appends still queued */
    a->spool = NULL;
    size_t lost = 0;
    for (uint64_t pos = a->head; pos < a->tail; pos++) {
        sg_audit_item_t *it = sg_audit_item_at(a, pos);
        if (it->line.data == NULL) {
            continue; /* durable */
        }
        lost++;
        sg_buf_dispose(&it->line);
        if (it->cb != NULL) {
            it->cb(it->data, SG_EIO);
        }
    }
    if (lost > 0) {
        sg_audit_lose(a, SG_EIO, lost, "neither PostgreSQL nor the spool took them at shutdown");
    }
    while (a->bhead != NULL) {
        sg_audit_batch_t *b = a->bhead;
        a->bhead = b->next;
        sg_buf_dispose(&b->job.data);
        free(b);
    }
    stop_timers(a);
    sg_audit_update_gauges(a);
    sg_buf_dispose(&a->scratch);
    sg_buf_dispose(&a->json_tmp);
    sg_buf_dispose(&a->replay_job.data);
    sg_buf_dispose(&a->state_job.data);
    free(a->ring);
    free(a->replica);
    free(a);
}

int sg_audit_submit_id(sg_audit_t *a, const sg_audit_event_t *ev, sg_audit_durable_cb cb,
                       void *data, char id_out[SG_AUDIT_MAX_ID + 1])
{
    if (a->closing_final) {
        return sg_audit_lose(a, SG_ECLOSED, 1, "writer closed");
    }
    if (ev == NULL || ev->decision.ptr == NULL || ev->decision.len == 0) {
        return sg_audit_lose(a, SG_EINVAL, 1, "event without decision");
    }
    if (ev->id.ptr != NULL && ev->id.len > SG_AUDIT_MAX_ID) {
        return sg_audit_lose(a, SG_EINVAL, 1, "event id too long");
    }
    if (a->tail - a->head >= a->cap || a->held_bytes >= a->opts.max_queue_bytes) {
        return sg_audit_lose(a, SG_EBUSY, 1, "queue full");
    }
    char id[SG_AUDIT_MAX_ID + 1];
    size_t id_len;
    if (ev->id.ptr != NULL && ev->id.len > 0) {
        memcpy(id, ev->id.ptr, ev->id.len);
        id_len = ev->id.len;
    } else {
        writer_new_id(a, id);
        id_len = SG_AUDIT_ID_LEN;
    }
    id[id_len] = '\0';
    sg_audit_item_t *it = sg_audit_item_at(a, a->tail);
    *it = (sg_audit_item_t){ .cb = cb, .data = data };
    build_line(a, ev, sg_str_n(id, id_len), &it->line);
    a->tail++;
    a->held_bytes += it->line.cap;
    a->pending_sync += cb != NULL;
    if (a->chain_ready && a->chained + 1 == a->tail) {
        chain_item(a, it);
        a->chained++;
    }
    a->stats.accepted++;
    sg_metric_add(&m_accepted, 1);
    if (cb != NULL || a->chained - a->next_batch >= a->opts.batch_max) {
        sg_audit_kick(a); /* group commit: everything submitted in this loop turn */
    }
    sg_audit_arm_flush(a);
    sg_audit_update_gauges(a);
    if (id_out != NULL) {
        memcpy(id_out, id, id_len + 1);
    }
    return SG_OK;
}

int sg_audit_submit(sg_audit_t *a, const sg_audit_event_t *ev, sg_audit_durable_cb cb, void *data)
{
    return sg_audit_submit_id(a, ev, cb, data, NULL);
}

void sg_audit_flush(sg_audit_t *a)
{
    a->flush_due = true;
    sg_audit_kick(a);
}

bool sg_audit_is_idle(const sg_audit_t *a)
{
    return a->head == a->tail && !a->spool_active && !a->truncating;
}

void sg_audit_get_stats(const sg_audit_t *a, sg_audit_stats_t *out)
{
    *out = a->stats;
    out->queued = (size_t)(a->tail - a->head);
    out->spool_bytes = a->spool_size;
    out->spooling = a->spool_active;
    out->chain_ready = a->chain_ready;
}
