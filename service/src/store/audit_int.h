/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by the files of the audit module (audit.c the writer,
 * audit_chain.c the canonical form and hashes, audit_spool.c the spool file
 * and its I/O thread, audit_verify.c and audit_cli.c the tools). Nothing
 * outside store/audit*.c includes this.
 */
#ifndef SG_STORE_AUDIT_INT_H
#define SG_STORE_AUDIT_INT_H

#include "base/buf.h"
#include "base/err.h"
#include "base/log.h"
#include "io/loop.h"
#include "io/pg.h"
#include "store/audit.h"

/* ---- canonical form and chain (audit_chain.c) ---- */

/* Deepest JSON accepted in arguments and findings (also sg_json_validate's limit). */
#define SG_AUDIT_JSON_DEPTH 64
/* "YYYY-MM-DDTHH:MM:SS.uuuuuuZ" */
#define SG_AUDIT_TS_LEN 27
/* First line of the bytes each hash covers; bump when the canonical form changes. */
#define SG_AUDIT_HASH_TAG "sg-audit-v1\n"

/*
 * The content columns of one row, as the writer builds them and as verify
 * reads them back. Every slice is borrowed; ptr NULL is SQL NULL. arguments
 * and findings are canonical JSON text (sg_audit_canon_json).
 */
typedef struct sg_audit_row {
    sg_str_t id;
    int64_t ts_us;
    sg_str_t tenant, identity, session, replica, request_id, method, tool, upstream, risk_class,
            decision, rule, reason;
    sg_str_t arguments;
    bool has_result_size;
    int64_t result_size;
    int result_is_error; /* -1 NULL, 0 false, 1 true */
    bool has_gate_latency;
    int64_t gate_latency_us;
    bool has_upstream_latency;
    int64_t upstream_latency_us;
    sg_str_t findings;
    sg_str_t approval_id;
} sg_audit_row_t;

/* Formats µs since the epoch (0 .. year 9999) as UTC, SG_AUDIT_TS_LEN chars + NUL. */
void sg_audit_format_ts(int64_t ts_us, char out[SG_AUDIT_TS_LEN + 1]);

/*
 * Appends the canonical form of the JSON text in: no whitespace, object keys
 * sorted by their UTF-8 bytes, strings re-escaped by sg_json_write_string,
 * numbers in plain decimal without redundant zeros. The same value gives the
 * same bytes whether it is read from the original text or from PostgreSQL's
 * jsonb output. SG_EPARSE / SG_EUTF8 / SG_EDEPTH / ... for text that is not
 * strict JSON; SG_EINVAL for a number outside what jsonb holds exactly (more
 * than 1000 digits before or after the point). out is unchanged on error.
 */
int sg_audit_canon_json(sg_str_t in, sg_buf_t *out) SG_MUSTCHECK;

/* Appends v in decimal. */
void sg_audit_write_int(sg_buf_t *out, int64_t v);

/* Appends s as a JSON string, or null; NUL bytes (PostgreSQL text cannot hold them) become U+FFFD.
 */
void sg_audit_write_text(sg_buf_t *out, sg_str_t s);

/*
 * Appends `{"id":…,"ts":…,…,"approval_id":…` — the row's content in column
 * order, without seq and without the closing brace.
 */
void sg_audit_row_write(sg_buf_t *out, const sg_audit_row_t *row);

/*
 * hex(SHA-256(SG_AUDIT_HASH_TAG || prev_hash || "\n" || head || "}")) into out
 * (SG_AUDIT_HASH_LEN chars + NUL), where head is `{…,"seq":N` — what
 * sg_audit_row_write wrote followed by the sequence number.
 */
void sg_audit_chain_hash(const char *prev_hash, const char *head, size_t head_len,
                         char out[SG_AUDIT_HASH_LEN + 1]);

/* Lower-case hex SHA-256 of data. */
void sg_audit_sha256_hex(const void *data, size_t len, char out[SG_AUDIT_HASH_LEN + 1]);

/* ---- spool file and its I/O thread (audit_spool.c) ---- */

typedef enum sg_audit_job_kind {
    SG_AUDIT_JOB_APPEND = 0, /* data: lines to append, then fdatasync */
    SG_AUDIT_JOB_READ,       /* lines from offset into data as "[l1,l2,…]" */
    SG_AUDIT_JOB_TRUNCATE,   /* empty the spool (replay caught up) */
    SG_AUDIT_JOB_STATE,      /* data: new contents of the chain-state file */
    SG_AUDIT_JOB_QUARANTINE, /* data: one line PostgreSQL refused, to the rejected file */
} sg_audit_job_kind_t;

typedef struct sg_audit_job sg_audit_job_t;
typedef void (*sg_audit_job_cb)(sg_audit_job_t *job);

/* Embed in the owner; it must stay valid until cb has returned. */
struct sg_audit_job {
    sg_audit_job_kind_t kind;
    sg_audit_job_cb cb;
    sg_buf_t data;     /* in for APPEND/STATE/QUARANTINE, out for READ; owned by the job */
    uint64_t offset;   /* READ: where to start */
    size_t max_lines;  /* READ: at most this many lines */
    int status;        /* out: SG_OK, SG_EIO, or SG_ETOOBIG (APPEND past max_bytes) */
    size_t nlines;     /* out, READ: lines in data */
    uint64_t consumed; /* out, READ: bytes of the file taken (lines and set-aside bad lines) */
    size_t nbad;       /* out, READ: malformed lines moved to the rejected file */
    bool eof;          /* out, READ: offset + consumed is the end of the file */
    uint64_t size;     /* out: spool file size after the job */
    sg_audit_job_t *_next;
};

/* The last link of a replica's chain found somewhere. */
typedef struct sg_audit_tail {
    bool found;
    uint64_t seq;
    char hash[SG_AUDIT_HASH_LEN + 1];
} sg_audit_tail_t;

typedef struct sg_audit_spool sg_audit_spool_t;

/*
 * Opens (creating dir if needed) and locks dir/audit.spool, cuts a torn last
 * line, and reports the spool size, its number of lines and the highest link
 * of replica's chain found in it or in dir/audit.chain. Starts the I/O thread.
 * Blocking; start-up only. NULL with err set (SG_EIO, SG_EBUSY) on failure.
 */
sg_audit_spool_t *sg_audit_spool_open(sg_loop_t *loop, const char *dir, const char *replica,
                                      uint64_t max_bytes, sg_audit_tail_t *tail, uint64_t *size,
                                      size_t *nlines, sg_error_t *err);
/* Queues job for the thread; its cb runs on a later loop turn (jobs complete in order). */
void sg_audit_spool_submit(sg_audit_spool_t *spool, sg_audit_job_t *job);
/* Jobs queued and not yet called back. */
size_t sg_audit_spool_pending(const sg_audit_spool_t *spool);
/*
 * Lets the thread finish the queued jobs, joins it, calls back every job not
 * yet called back (inside this call), closes the files. NULL is a no-op.
 */
void sg_audit_spool_close(sg_audit_spool_t *spool);

/* ---- the writer (audit.c: lifecycle, events, chain tail; audit_write.c: batches, replay) ---- */

#define SG_AUDIT_MAX_BATCHES       64 /* batches alive at once */
#define SG_AUDIT_LOG_LIMIT_MS      5000
#define SG_AUDIT_REPLAY_BACKOFF_MS 250 /* first retry of a failed replay, doubling to 2 s */

typedef struct sg_audit_item {
    sg_buf_t line; /* `{…` until chained, then the whole record `{…}` */
    uint64_t seq;  /* 0 until chained */
    sg_audit_durable_cb cb;
    void *data;
} sg_audit_item_t;

typedef enum sg_audit_batch_state {
    SG_AUDIT_BATCH_PG = 0,     /* INSERT running */
    SG_AUDIT_BATCH_NEED_SPOOL, /* waits for its turn (or a usable spool) */
    SG_AUDIT_BATCH_SPOOLING,   /* append + fsync running */
    SG_AUDIT_BATCH_DONE,       /* durable; callbacks fired */
} sg_audit_batch_state_t;

typedef struct sg_audit_batch {
    sg_audit_t *audit;
    sg_pg_query_t query;
    sg_audit_job_t job;
    sg_audit_batch_state_t state;
    uint64_t first; /* ring position of its first event */
    size_t count;
    uint64_t started_us;
    struct sg_audit_batch *next;
} sg_audit_batch_t;

/* a spool line PostgreSQL refused, on its way to audit.rejected */
typedef struct sg_audit_reject {
    sg_audit_job_t job;
    sg_audit_t *audit;
} sg_audit_reject_t;

struct sg_audit {
    sg_loop_t *loop;
    sg_pg_t *pg;
    char *replica;
    sg_audit_options_t opts;
    sg_audit_spool_t *spool;
    sg_buf_t scratch;        /* batch payloads */
    sg_buf_t json_tmp;       /* canonical arguments / findings */
    unsigned char rnd[4096]; /* random bytes for event ids */
    size_t rnd_pos;          /* next unused byte; sizeof(rnd) = refill */

    sg_audit_item_t *ring;
    size_t cap;
    uint64_t head, next_batch, chained, tail;
    size_t held_bytes;
    size_t pending_sync; /* events with a callback not yet in a batch */

    /* the chain */
    bool chain_ready;
    uint64_t seq;
    char prev_hash[SG_AUDIT_HASH_LEN + 1];
    sg_audit_tail_t local_tail; /* found in the spool or the state file at start */
    uint64_t lookup_since_ms;
    sg_pg_query_t lookup_q;
    bool lookup_busy;
    sg_timer_t lookup_timer;

    /* batches, oldest first */
    sg_audit_batch_t *bhead, *btail;
    size_t nbatches;
    size_t pg_inflight;
    size_t spool_batches; /* in NEED_SPOOL or SPOOLING */
    sg_timer_t flush_timer;
    sg_timer_t kick_timer;

    /* the spool */
    bool spool_active;
    uint64_t spool_size;
    bool spool_broken; /* the last append failed; retried by spool_timer */
    sg_timer_t spool_timer;
    sg_audit_job_t truncate_job;
    bool truncating;

    /* replay */
    sg_audit_job_t replay_job;
    sg_pg_query_t replay_q;
    bool replay_busy;
    uint64_t replay_offset;
    size_t replay_chunk;
    uint64_t replay_backoff_ms;
    sg_timer_t replay_timer;

    /* chain-state file */
    sg_audit_job_t state_job;
    bool state_busy;
    uint64_t durable_seq, state_seq;
    char durable_hash[SG_AUDIT_HASH_LEN + 1];

    /* partitions */
    sg_pg_query_t maint_q;
    bool maint_busy;
    sg_timer_t maint_timer;

    bool flush_due;     /* a partial batch is overdue */
    bool closing;       /* sg_audit_free is draining */
    bool no_pg;         /* sg_audit_free gave up on PostgreSQL: no new batches go there */
    bool closing_final; /* submit refuses */
    sg_log_limit_t lost_limit;
    sg_log_limit_t fail_limit;
    sg_audit_stats_t stats;
};

static inline sg_audit_item_t *sg_audit_item_at(const sg_audit_t *a, uint64_t pos)
{
    return &a->ring[pos % a->cap];
}

/* audit.c: counts n events lost (metric, stats, rate-limited log); returns rc. */
int sg_audit_lose(sg_audit_t *a, int rc, size_t n, const char *why);

/* audit_write.c */
void sg_audit_write_register_metrics(void);
/* Cuts batches from what is chained (partial ones too when force) and moves them on. */
void sg_audit_pump(sg_audit_t *a, bool force);
/* sg_audit_pump on the next loop turn. */
void sg_audit_kick(sg_audit_t *a);
/* Starts the flush interval timer unless it runs. */
void sg_audit_arm_flush(sg_audit_t *a);
/* From now on batches go to the spool, and replay starts (unless closing). */
void sg_audit_enter_spooling(sg_audit_t *a);
/* Replays the spool after delay_ms (when spooling, not closing, not already replaying). */
void sg_audit_replay_schedule(sg_audit_t *a, uint64_t delay_ms);
void sg_audit_update_gauges(const sg_audit_t *a);

#endif
