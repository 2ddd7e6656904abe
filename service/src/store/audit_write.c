/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The writing half of the audit writer (audit.c has the rest): batches to
 * PostgreSQL, spool appends, replay of the spool, and the chain-state file.
 *
 * A batch goes to PostgreSQL (state PG) unless the writer is spooling; a
 * batch that fails there, or is cut while spooling, waits in NEED_SPOOL and is
 * appended to the spool only when no older batch is still in PostgreSQL's
 * hands, so the spool stays in seq order. Batches leave the list (and their
 * ring slots are released) from the front once DONE; durable callbacks fire as
 * soon as their batch is DONE. While spooling, replay reads the spool in
 * chunks and inserts them, halving the chunk when PostgreSQL calls the data
 * itself invalid and setting a single refused line aside; when a read finds
 * the end of the file with no append pending, the spool is truncated and
 * batches go to PostgreSQL directly again.
 */
#include <stdio.h>
#include <stdlib.h>

#include "base/clock.h"
#include "base/mem.h"
#include "base/metrics.h"
#include "store/audit_int.h"

#define SPOOL_RETRY_MS        1000
#define REPLAY_BACKOFF_MAX_MS 2000

static const char insert_sql[] =
        "INSERT INTO audit_events (id, ts, tenant, identity, session, replica, request_id, "
        "method, tool, upstream, class, decision, rule, reason, arguments, result_size, "
        "result_is_error, gate_latency_us, upstream_latency_us, findings, approval_id, seq, "
        "prev_hash, hash) "
        "SELECT id, ts, tenant, identity, session, replica, request_id, method, tool, upstream, "
        "class, decision, rule, reason, arguments, result_size, result_is_error, "
        "gate_latency_us, upstream_latency_us, findings, approval_id, seq, prev_hash, hash "
        "FROM json_populate_recordset(NULL::audit_events, $1::json) "
        "ON CONFLICT (id, ts) DO NOTHING";

static const sg_log_ctx_t log_ctx = { .component = "audit" };

static SG_METRIC_DEFINE(m_written, SG_METRIC_COUNTER, "sg_audit_rows_written_total", NULL,
                        "Audit rows inserted into PostgreSQL");
static SG_METRIC_DEFINE(m_spooled, SG_METRIC_COUNTER, "sg_audit_spooled_total", NULL,
                        "Audit events appended to the local spool");
static SG_METRIC_DEFINE(m_replayed, SG_METRIC_COUNTER, "sg_audit_replayed_total", NULL,
                        "Audit events replayed from the spool into PostgreSQL");
static SG_METRIC_DEFINE(
        m_quarantined, SG_METRIC_COUNTER, "sg_audit_quarantined_total", NULL,
        "Spooled audit events PostgreSQL refused as invalid, set aside in audit.rejected");
static SG_METRIC_DEFINE(m_failures, SG_METRIC_COUNTER, "sg_audit_write_failures_total", NULL,
                        "Audit batches PostgreSQL failed to commit in time");
static SG_METRIC_DEFINE(m_queue, SG_METRIC_GAUGE, "sg_audit_queue_depth", NULL,
                        "Audit events in memory, not yet durable");
static SG_METRIC_DEFINE(m_spool_bytes, SG_METRIC_GAUGE, "sg_audit_spool_bytes", NULL,
                        "Size of the audit spool file");
static SG_METRIC_DEFINE(m_latency, SG_METRIC_HISTOGRAM, "sg_audit_write_seconds", NULL,
                        "Time to commit one audit batch in PostgreSQL");

void sg_audit_write_register_metrics(void)
{
    sg_metrics_register(&m_written);
    sg_metrics_register(&m_spooled);
    sg_metrics_register(&m_replayed);
    sg_metrics_register(&m_quarantined);
    sg_metrics_register(&m_failures);
    sg_metrics_register(&m_queue);
    sg_metrics_register(&m_spool_bytes);
    sg_metrics_register(&m_latency);
}

static void state_kick(sg_audit_t *a);

/* The hash at the end of a chained record: `…,"hash":"<64 hex>"}`. */
static const char *item_hash(const sg_audit_item_t *it)
{
    return it->line.data + it->line.len - 2 - SG_AUDIT_HASH_LEN;
}

/* ======================================================================== */
/* batches                                                                  */
/* ======================================================================== */

void sg_audit_update_gauges(const sg_audit_t *a)
{
    sg_metric_set(&m_queue, (int64_t)(a->tail - a->head));
    sg_metric_set(&m_spool_bytes, (int64_t)a->spool_size);
}

/* PostgreSQL's message for a log line: the SQLSTATE only for data errors, which quote values. */
static void log_failure(sg_audit_t *a, const char *what, int status, const PGresult *res)
{
    uint64_t suppressed = 0;
    if (!sg_log_limit_allow(&a->fail_limit, sg_loop_now(a->loop), &suppressed)) {
        return;
    }
    const char *state = res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = res != NULL ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    if (msg == NULL || (state != NULL && strncmp(state, "22", 2) == 0)) {
        msg = sg_err_message(status);
    }
    SG_LOG_WARN(&log_ctx, "replica=%s %s failed: %s%s%.200s (%llu similar lines suppressed)",
                a->replica, what, state != NULL ? state : "", state != NULL ? " " : "", msg,
                (unsigned long long)suppressed);
}

/* A refusal no retry can cure: the row itself is bad (data exception, NOT NULL). */
static bool is_data_error(int status, const PGresult *res)
{
    const char *st =
            status == SG_EBACKEND && res != NULL ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    return st != NULL && (strncmp(st, "22", 2) == 0 || strcmp(st, "23502") == 0);
}

static uint64_t cmd_tuples(const PGresult *res)
{
    return res != NULL ? strtoull(PQcmdTuples((PGresult *)res), NULL, 10) : 0;
}

void sg_audit_enter_spooling(sg_audit_t *a)
{
    if (a->spool_active) {
        return;
    }
    a->spool_active = true;
    a->stats.spooling = true;
    a->replay_backoff_ms = SG_AUDIT_REPLAY_BACKOFF_MS;
    SG_LOG_WARN(&log_ctx, "replica=%s PostgreSQL is not taking audit batches: spooling",
                a->replica);
    sg_audit_replay_schedule(a, SG_AUDIT_REPLAY_BACKOFF_MS);
}

/* The batch is durable (or, at the very end, lost): callbacks fire, memory goes. */
static void batch_finish(sg_audit_t *a, sg_audit_batch_t *b, int status)
{
    b->state = SG_AUDIT_BATCH_DONE;
    const sg_audit_item_t *last = sg_audit_item_at(a, b->first + b->count - 1);
    if (status == SG_OK && last->seq > a->durable_seq) {
        a->durable_seq = last->seq;
        memcpy(a->durable_hash, item_hash(last), SG_AUDIT_HASH_LEN);
        a->durable_hash[SG_AUDIT_HASH_LEN] = '\0';
        state_kick(a);
    }
    for (size_t i = 0; i < b->count; i++) {
        sg_audit_item_t *it = sg_audit_item_at(a, b->first + i);
        a->held_bytes -= it->line.cap;
        sg_buf_dispose(&it->line);
        sg_audit_durable_cb cb = it->cb;
        it->cb = NULL;
        if (cb != NULL) {
            cb(it->data, status);
        }
    }
}

static void on_batch_written(sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_audit_batch_t *b = SG_CONTAINER_OF(q, sg_audit_batch_t, query);
    sg_audit_t *a = b->audit;
    a->pg_inflight--;
    if (status == SG_OK) {
        uint64_t rows = cmd_tuples(res);
        a->stats.written += rows;
        sg_metric_add(&m_written, (int64_t)rows);
        sg_metric_observe_us(&m_latency, sg_clock_now_us() - b->started_us);
        batch_finish(a, b, SG_OK);
    } else {
        log_failure(a, "audit batch", status, res);
        sg_metric_add(&m_failures, 1);
        b->state = SG_AUDIT_BATCH_NEED_SPOOL;
        a->spool_batches++;
        sg_audit_enter_spooling(a);
    }
    sg_audit_pump(a, false);
}

/* The batch's records as one JSON array, the INSERT's only parameter. */
static void batch_send_pg(sg_audit_t *a, sg_audit_batch_t *b)
{
    sg_buf_t *p = &a->scratch;
    sg_buf_reset(p);
    sg_buf_append_char(p, '[');
    for (size_t i = 0; i < b->count; i++) {
        const sg_audit_item_t *it = sg_audit_item_at(a, b->first + i);
        if (i > 0) {
            sg_buf_append_char(p, ',');
        }
        sg_buf_append(p, it->line.data, it->line.len);
    }
    sg_buf_append_char(p, ']');
    b->state = SG_AUDIT_BATCH_PG;
    b->started_us = sg_clock_now_us();
    a->pg_inflight++;
    const char *params[1] = { p->data };
    const int lengths[1] = { (int)p->len };
    sg_pg_query_start(a->pg, &b->query, a->opts.write_timeout_ms, insert_sql, 1, params, lengths,
                      on_batch_written);
}

static void on_spool_retry(sg_timer_t *t)
{
    sg_audit_t *a = SG_CONTAINER_OF(t, sg_audit_t, spool_timer);
    a->spool_broken = false; /* try again */
    sg_audit_pump(a, false);
}

static void on_batch_spooled(sg_audit_job_t *job)
{
    sg_audit_batch_t *b = SG_CONTAINER_OF(job, sg_audit_batch_t, job);
    sg_audit_t *a = b->audit;
    a->spool_size = job->size;
    sg_buf_dispose(&job->data);
    if (job->status == SG_OK) {
        a->spool_batches--;
        a->spool_broken = false;
        a->stats.spooled += b->count;
        sg_metric_add(&m_spooled, (int64_t)b->count);
        batch_finish(a, b, SG_OK);
    } else {
        uint64_t suppressed = 0;
        b->state = SG_AUDIT_BATCH_NEED_SPOOL;
        a->spool_broken = true;
        if (!sg_timer_is_active(&a->spool_timer)) {
            sg_timer_start(a->loop, &a->spool_timer, SPOOL_RETRY_MS, on_spool_retry);
        }
        if (sg_log_limit_allow(&a->fail_limit, sg_loop_now(a->loop), &suppressed)) {
            SG_LOG_ERROR(&log_ctx,
                         "replica=%s audit spool unusable (%s, %llu bytes): %zu events wait in "
                         "memory (%llu similar lines suppressed)",
                         a->replica, job->status == SG_ETOOBIG ? "full" : "write failed",
                         (unsigned long long)a->spool_size, (size_t)(a->tail - a->head),
                         (unsigned long long)suppressed);
        }
    }
    sg_audit_pump(a, false);
}

static void batch_spool(sg_audit_t *a, sg_audit_batch_t *b)
{
    sg_buf_t *d = &b->job.data;
    sg_buf_reset(d);
    for (size_t i = 0; i < b->count; i++) {
        const sg_audit_item_t *it = sg_audit_item_at(a, b->first + i);
        sg_buf_append(d, it->line.data, it->line.len);
        sg_buf_append_char(d, '\n');
    }
    b->job.kind = SG_AUDIT_JOB_APPEND;
    b->job.cb = on_batch_spooled;
    b->state = SG_AUDIT_BATCH_SPOOLING;
    sg_audit_spool_submit(a->spool, &b->job);
}

static void batch_new(sg_audit_t *a, size_t n, bool to_pg)
{
    sg_audit_batch_t *b = sg_xcalloc(1, sizeof(*b));
    b->audit = a;
    b->first = a->next_batch;
    b->count = n;
    a->next_batch += n;
    for (size_t i = 0; i < n; i++) {
        a->pending_sync -= sg_audit_item_at(a, b->first + i)->cb != NULL;
    }
    if (a->btail != NULL) {
        a->btail->next = b;
    } else {
        a->bhead = b;
    }
    a->btail = b;
    a->nbatches++;
    if (to_pg) {
        batch_send_pg(a, b);
    } else {
        b->state = SG_AUDIT_BATCH_NEED_SPOOL;
        a->spool_batches++;
    }
}

/*
 * A batch waiting for the spool may bypass it when the spool is broken but
 * holds nothing: PostgreSQL is then the only way to make it durable, and
 * order cannot suffer.
 */
static bool may_bypass_spool(const sg_audit_t *a)
{
    return a->spool_broken && a->spool_size == 0 && a->pg_inflight < a->opts.max_inflight &&
           !a->no_pg;
}

/*
 * Starts the spool appends whose turn has come (no older batch still in
 * PostgreSQL's hands or waiting), then releases finished batches from the front.
 */
static void advance(sg_audit_t *a)
{
    bool blocked = false;
    for (sg_audit_batch_t *b = a->bhead; b != NULL && !a->closing_final; b = b->next) {
        if (b->state == SG_AUDIT_BATCH_PG) {
            blocked = true;
        } else if (b->state == SG_AUDIT_BATCH_NEED_SPOOL && !blocked) {
            if (!a->spool_broken) {
                batch_spool(a, b);
            } else if (may_bypass_spool(a)) {
                a->spool_batches--;
                batch_send_pg(a, b);
                blocked = true;
            } else {
                blocked = true;
            }
        }
    }
    while (a->bhead != NULL && a->bhead->state == SG_AUDIT_BATCH_DONE) {
        sg_audit_batch_t *b = a->bhead;
        a->bhead = b->next;
        if (a->bhead == NULL) {
            a->btail = NULL;
        }
        a->head = b->first + b->count;
        a->nbatches--;
        free(b);
    }
    sg_audit_update_gauges(a);
}

/* Cuts batches from what is chained: full ones always, partial ones when forced or awaited. */
void sg_audit_pump(sg_audit_t *a, bool force)
{
    if (a->closing_final) {
        return;
    }
    force = force || a->flush_due;
    while (a->next_batch < a->chained && a->nbatches < SG_AUDIT_MAX_BATCHES) {
        size_t avail = (size_t)(a->chained - a->next_batch);
        if (avail < a->opts.batch_max && !force && a->pending_sync == 0) {
            break;
        }
        bool to_pg = !a->spool_active;
        if (to_pg && a->pg_inflight >= a->opts.max_inflight) {
            break;
        }
        batch_new(a, SG_MIN(avail, a->opts.batch_max), to_pg);
    }
    a->flush_due = force && a->next_batch < a->chained;
    advance(a);
}

static void on_flush(sg_timer_t *t)
{
    sg_audit_t *a = SG_CONTAINER_OF(t, sg_audit_t, flush_timer);
    sg_audit_pump(a, true);
    if (a->next_batch < a->tail) {
        sg_audit_arm_flush(a);
    }
}

void sg_audit_arm_flush(sg_audit_t *a)
{
    if (!sg_timer_is_active(&a->flush_timer)) {
        sg_timer_start(a->loop, &a->flush_timer, a->opts.flush_interval_ms, on_flush);
    }
}

static void on_kick(sg_timer_t *t)
{
    sg_audit_pump(SG_CONTAINER_OF(t, sg_audit_t, kick_timer), false);
}

void sg_audit_kick(sg_audit_t *a)
{
    if (!sg_timer_is_active(&a->kick_timer)) {
        sg_timer_start(a->loop, &a->kick_timer, 0, on_kick);
    }
}


/* ======================================================================== */
/* replay                                                                   */
/* ======================================================================== */

static void replay_step(sg_audit_t *a);

static void on_replay_timer(sg_timer_t *t)
{
    replay_step(SG_CONTAINER_OF(t, sg_audit_t, replay_timer));
}

void sg_audit_replay_schedule(sg_audit_t *a, uint64_t delay_ms)
{
    if (a->spool_active && !a->closing && !a->replay_busy) {
        sg_timer_start(a->loop, &a->replay_timer, delay_ms, on_replay_timer);
    }
}

static void replay_backoff(sg_audit_t *a)
{
    a->replay_backoff_ms = a->replay_backoff_ms == 0 ? SG_AUDIT_REPLAY_BACKOFF_MS
                                                     : SG_MIN(2 * a->replay_backoff_ms,
                                                              (uint64_t)REPLAY_BACKOFF_MAX_MS);
    sg_audit_replay_schedule(a, a->replay_backoff_ms);
}

static void on_truncated(sg_audit_job_t *job)
{
    sg_audit_t *a = SG_CONTAINER_OF(job, sg_audit_t, truncate_job);
    a->truncating = false;
    a->spool_size = job->size;
    if (job->status != SG_OK) {
        /* what it holds is in PostgreSQL: replaying it again later only finds conflicts */
        SG_LOG_WARN(&log_ctx, "replica=%s cannot truncate the replayed audit spool", a->replica);
    }
    sg_audit_update_gauges(a);
}

/* Replay caught up: empty the spool (after any job already queued) and write directly again. */
static void replay_done(sg_audit_t *a)
{
    SG_LOG_INFO(&log_ctx, "replica=%s audit spool replayed (%llu events so far); writing directly",
                a->replica, (unsigned long long)a->stats.replayed);
    a->spool_active = false;
    a->stats.spooling = false;
    a->replay_offset = 0;
    a->truncating = true;
    a->truncate_job.kind = SG_AUDIT_JOB_TRUNCATE;
    a->truncate_job.cb = on_truncated;
    sg_audit_spool_submit(a->spool, &a->truncate_job);
    sg_audit_pump(a, false);
}

static void on_rejected(sg_audit_job_t *job)
{
    sg_audit_reject_t *r = SG_CONTAINER_OF(job, sg_audit_reject_t, job);
    if (job->status != SG_OK) {
        sg_audit_lose(r->audit, SG_EIO, 1, "refused by PostgreSQL and audit.rejected unwritable");
    }
    sg_buf_dispose(&job->data);
    free(r);
}

/* One spooled line PostgreSQL refuses whatever we do: set it aside for a human. */
static void quarantine(sg_audit_t *a, sg_str_t line)
{
    sg_audit_reject_t *r = sg_xcalloc(1, sizeof(*r));
    r->audit = a;
    r->job.kind = SG_AUDIT_JOB_QUARANTINE;
    r->job.cb = on_rejected;
    sg_buf_append_str(&r->job.data, line);
    sg_audit_spool_submit(a->spool, &r->job);
    a->stats.quarantined++;
    sg_metric_add(&m_quarantined, 1);
    SG_LOG_ERROR(&log_ctx,
                 "replica=%s PostgreSQL refuses a spooled audit event as invalid: set aside in "
                 "audit.rejected",
                 a->replica);
}

static void on_replay_written(sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_audit_t *a = SG_CONTAINER_OF(q, sg_audit_t, replay_q);
    sg_audit_job_t *job = &a->replay_job;
    a->replay_busy = false;
    if (status == SG_OK) {
        uint64_t rows = cmd_tuples(res);
        a->replay_offset += job->consumed;
        a->stats.replayed += job->nlines;
        a->stats.written += rows;
        sg_metric_add(&m_replayed, (int64_t)job->nlines);
        sg_metric_add(&m_written, (int64_t)rows);
        a->replay_chunk = SG_MIN(2 * a->replay_chunk, 4 * a->opts.batch_max);
        a->replay_backoff_ms = 0;
        replay_step(a);
    } else if (is_data_error(status, res)) {
        if (job->nlines == 1) {
            quarantine(a, sg_str_n(job->data.data + 1, job->data.len - 2)); /* without [ ] */
            a->replay_offset += job->consumed;
        } else {
            a->replay_chunk = SG_MAX((size_t)1, job->nlines / 2);
        }
        replay_step(a);
    } else {
        log_failure(a, "audit spool replay", status, res);
        replay_backoff(a);
    }
}

static void on_replay_read(sg_audit_job_t *job)
{
    sg_audit_t *a = SG_CONTAINER_OF(job, sg_audit_t, replay_job);
    a->spool_size = job->size;
    if (job->nbad > 0) {
        a->stats.quarantined += job->nbad;
        sg_metric_add(&m_quarantined, (int64_t)job->nbad);
        SG_LOG_ERROR(&log_ctx,
                     "replica=%s %zu malformed audit spool lines set aside in "
                     "audit.rejected",
                     a->replica, job->nbad);
    }
    if (job->status != SG_OK) {
        a->replay_busy = false;
        SG_LOG_ERROR(&log_ctx, "replica=%s cannot read the audit spool", a->replica);
        replay_backoff(a);
        return;
    }
    if (job->nlines == 0 || a->closing) {
        a->replay_busy = false;
        if (a->closing) {
            return; /* what was read stays in the spool for the next process */
        }
        a->replay_offset += job->consumed;
        if (!job->eof) {
            replay_step(a); /* only bad lines so far */
        } else if (a->spool_batches == 0) {
            replay_done(a);
        } else {
            sg_audit_replay_schedule(a, a->opts.flush_interval_ms); /* appends on their way */
        }
        return;
    }
    const char *params[1] = { job->data.data };
    const int lengths[1] = { (int)job->data.len };
    sg_pg_query_start(a->pg, &a->replay_q, a->opts.write_timeout_ms, insert_sql, 1, params, lengths,
                      on_replay_written);
}

static void replay_step(sg_audit_t *a)
{
    if (!a->spool_active || a->replay_busy || a->closing) {
        return;
    }
    if (sg_pg_connected(a->pg) == 0) {
        replay_backoff(a); /* no point queueing a query nobody can run */
        return;
    }
    sg_audit_job_t *job = &a->replay_job;
    a->replay_busy = true;
    job->kind = SG_AUDIT_JOB_READ;
    job->cb = on_replay_read;
    job->offset = a->replay_offset;
    job->max_lines = a->replay_chunk;
    sg_audit_spool_submit(a->spool, job);
}

/* ======================================================================== */
/* chain-state file                                                         */
/* ======================================================================== */

static void on_state_written(sg_audit_job_t *job)
{
    sg_audit_t *a = SG_CONTAINER_OF(job, sg_audit_t, state_job);
    a->state_busy = false;
    if (job->status != SG_OK) {
        uint64_t suppressed = 0;
        if (sg_log_limit_allow(&a->fail_limit, sg_loop_now(a->loop), &suppressed)) {
            SG_LOG_WARN(&log_ctx, "replica=%s cannot write the audit chain-state file", a->replica);
        }
    }
    state_kick(a);
}

/* Records the last durable link in spool_dir/audit.chain (one write at a time, coalesced). */
static void state_kick(sg_audit_t *a)
{
    if (a->state_busy || a->durable_seq == a->state_seq || a->spool == NULL) {
        return;
    }
    sg_audit_job_t *job = &a->state_job;
    a->state_busy = true;
    a->state_seq = a->durable_seq;
    sg_buf_reset(&job->data);
    sg_buf_append_cstr(&job->data, "{\"replica\":");
    sg_audit_write_text(&job->data, sg_str(a->replica));
    sg_buf_printf(&job->data, ",\"seq\":%llu,\"hash\":\"%s\"}\n", (unsigned long long)a->state_seq,
                  a->durable_hash);
    job->kind = SG_AUDIT_JOB_STATE;
    job->cb = on_state_written;
    sg_audit_spool_submit(a->spool, job);
}
