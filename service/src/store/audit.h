/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit writer (DESIGN.md §6, docs/AUDIT.md): every decision the gate
 * makes becomes one row of audit_events, written asynchronously, in batches,
 * without ever blocking the request path, and without losing events when
 * PostgreSQL is down.
 *
 * Pipeline. sg_audit_submit() copies the event into a bounded in-memory queue,
 * gives it an id, the next per-replica sequence number and its place in the
 * replica's hash chain. Every flush interval (or as soon as a batch is full, or
 * on the next loop turn when a durable callback waits: group commit) the queue
 * is cut into batches, each written with one INSERT … SELECT FROM
 * json_populate_recordset($1) ON CONFLICT (id, ts) DO NOTHING through the libpq
 * pool, so writing a batch twice is harmless.
 *
 * Spool. A batch that fails or times out goes to an append-only file in
 * spool_dir (one JSON object per line, fsync per batch); from then on new
 * batches are appended there too, and the spool is replayed into PostgreSQL,
 * in order, as soon as it answers again; once replay has caught up, the file
 * is truncated and batches go to PostgreSQL directly again. A spool left by a
 * previous process is replayed at start. All spool file I/O (write + fsync,
 * reads for replay, truncation) runs on one helper thread owned by the writer,
 * so the event loop never waits for the disk; results come back to the loop
 * through a pipe. (The only blocking file I/O on the calling thread happens in
 * sg_audit_new, which scans a leftover spool, and in sg_audit_free.)
 *
 * Chain. Each event's hash is SHA-256 over a canonical serialisation of its
 * content and the previous event's hash (docs/AUDIT.md gives the exact bytes).
 * A new writer continues the chain of its replica: it links to the highest
 * sequence number found in PostgreSQL, the spool or the small chain-state file
 * in spool_dir, and starts from SG_AUDIT_GENESIS only when none has any.
 * Events submitted before that lookup answers wait in the queue.
 *
 * Durability. The durable callback fires exactly once per accepted event, on
 * a later loop turn (never inside sg_audit_submit): SG_OK once the event is
 * committed in PostgreSQL or fsynced to the spool, SG_EIO when it could be
 * neither (only at sg_audit_free, when the spool is unusable). A tenant in
 * audit sync mode forwards the call only after SG_OK.
 *
 * Single-threaded: every function must be called on the loop's thread.
 */
#ifndef SG_STORE_AUDIT_H
#define SG_STORE_AUDIT_H

#include <stdio.h>

#include "base/err.h"
#include "base/sg.h"
#include "io/loop.h"
#include "io/pg.h"

/* UUIDv4 text: 8-4-4-4-12 lower-case hex digits. */
#define SG_AUDIT_ID_LEN 36
/* Hex SHA-256. */
#define SG_AUDIT_HASH_LEN 64
/* prev_hash of the first event of a replica's chain. */
#define SG_AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* Text columns longer than this are cut (at this many bytes). */
#define SG_AUDIT_MAX_TEXT 4096
/* Longest caller-provided event id. */
#define SG_AUDIT_MAX_ID 128

/*
 * One decision, as the caller hands it over. Every sg_str_t is borrowed for
 * the duration of sg_audit_submit (the writer copies what it keeps) and need
 * not be NUL-terminated; a NULL ptr means SQL NULL. Text is stored as UTF-8:
 * invalid sequences and NUL bytes become U+FFFD.
 */
typedef struct sg_audit_event {
    sg_str_t id;             /* optional: empty = a fresh UUIDv4; else 1..SG_AUDIT_MAX_ID bytes */
    int64_t ts_us;           /* when the gate decided, µs since the Unix epoch; 0 = now */
    sg_str_t tenant;         /* NULL before authentication */
    sg_str_t identity;       /* agent identity within the tenant */
    sg_str_t session;        /* Mcp-Session-Id */
    sg_str_t request_id;     /* the id in the replica's logs */
    sg_str_t method;         /* tools/call, tools/list, ... */
    sg_str_t tool;           /* tool name for tools/call */
    sg_str_t upstream;       /* upstream MCP server */
    sg_str_t risk_class;     /* column "class": read, write, destructive */
    sg_str_t decision;       /* required, non-empty: allow, deny, error, ... */
    sg_str_t rule;           /* policy rule that decided */
    sg_str_t reason;         /* human-readable reason */
    sg_str_t arguments;      /* JSON text, already redacted (see below) */
    bool has_result;         /* false: result_size and result_is_error are NULL */
    int64_t result_size;     /* bytes of the upstream result (clamped to 0..INT32_MAX) */
    bool result_is_error;    /* the result's isError */
    int64_t gate_latency_us; /* time spent in the gate; < 0 = unknown (NULL) */
    int64_t upstream_latency_us; /* time spent waiting for the upstream; < 0 = unknown */
    sg_str_t findings;           /* JSON text: detector names and locations, never matched text */
    sg_str_t approval_id;        /* approvals.id when the call was held */
} sg_audit_event_t;
/*
 * arguments and findings: stored in a canonical form (keys sorted, no
 * whitespace, numbers in plain decimal). Text that is not strict JSON (or has
 * numbers PostgreSQL cannot hold, or nests deeper than 64) is stored as one
 * JSON string holding the text; a canonical form longer than
 * max_json_bytes is replaced by {"sg_truncated":true,"bytes":N,"sha256":"…"}
 * (the digest of the canonical text).
 */

typedef struct sg_audit_options {
    size_t max_queue;           /* events held in memory until durable; 0 = 100000 */
    size_t max_queue_bytes;     /* bytes of those events; 0 = 128 MiB */
    size_t batch_max;           /* events per INSERT / spool append; 0 = 500 */
    uint64_t flush_interval_ms; /* longest wait before a partial batch goes; 0 = 50 */
    uint64_t write_timeout_ms;  /* a batch not committed by then goes to the spool; 0 = 2000 */
    size_t max_inflight;        /* batches written to PostgreSQL at once; 0 = 2 */
    uint64_t max_spool_bytes;   /* the spool refuses appends beyond this; 0 = 1 GiB */
    size_t max_json_bytes;      /* canonical arguments / findings kept whole; 0 = 64 KiB */
    uint64_t drain_ms;          /* sg_audit_free keeps writing to PostgreSQL this long; 0 = 1000 */
    uint64_t chain_lookup_ms;   /* wait this long for PostgreSQL's chain tail; 0 = 10000 */
} sg_audit_options_t;

typedef struct sg_audit sg_audit_t;

/*
 * status: SG_OK when the event is durable (committed or fsynced to the spool),
 * SG_EIO when it was lost (sg_audit_free could not write it anywhere).
 */
typedef void (*sg_audit_durable_cb)(void *data, int status);

/*
 * A new writer for replica_id (1..128 bytes; copied) on loop, writing through
 * pg (borrowed; must outlive the writer: free the writer first). spool_dir
 * (copied) is created (mode 0700) if missing; the writer takes an exclusive
 * lock on its spool file there, scans what a previous process left (cutting a
 * torn last line) and replays it. opts may be NULL (all defaults); it is copied.
 * Starts the chain-tail lookup and, once connected, keeps monthly partitions
 * created ahead (SELECT sg_audit_ensure_partitions(2), now and every 6 hours).
 * Blocking file I/O: call at start-up, not from a loop callback.
 *
 * NULL with err set: SG_EINVAL (bad replica_id or options), SG_EIO (spool
 * directory or file unusable), SG_EBUSY (another process holds the spool).
 * The caller owns the result and frees it with sg_audit_free.
 */
sg_audit_t *sg_audit_new(sg_loop_t *loop, sg_pg_t *pg, const char *replica_id,
                         const char *spool_dir, const sg_audit_options_t *opts, sg_error_t *err);

/*
 * Stops the writer, within a bound: runs the loop (sg_loop_run_once, so other
 * modules' callbacks run too) for up to drain_ms, writing what is queued to
 * PostgreSQL at once; after that, whatever is not durable goes to the spool,
 * and batches already sent to PostgreSQL are awaited (each ends by its
 * write_timeout_ms). Events submitted meanwhile (from callbacks the loop
 * runs) are still taken, except from the durable callbacks of the very last
 * step, which get SG_ECLOSED. Nothing is lost unless the
 * spool is unusable too: then those events' callbacks get SG_EIO and
 * sg_audit_lost_total counts them. Pending durable callbacks run inside this
 * call. Worst case: drain_ms + write_timeout_ms + 1 s, plus one fsync.
 * Must not be called from a callback of this writer. Call it before
 * sg_pg_free(pg): the writer uses the pool until it returns. NULL is a no-op.
 */
void sg_audit_free(sg_audit_t *audit);

/*
 * Queues ev (copied; see sg_audit_event_t) and assigns its id, sequence
 * number and hash (at once, or as soon as the chain tail is known). Never
 * blocks, never calls back from inside. cb (may be NULL) fires exactly once,
 * later, as described above; data is passed to it untouched.
 *
 * SG_OK: accepted. On any error the event is not recorded, cb never fires,
 * and the event is counted in sg_audit_lost_total (plus a rate-limited log
 * line): SG_EBUSY when the queue is full (PostgreSQL and the spool both not
 * keeping up: the caller refuses the call or serves it, per tenant),
 * SG_EINVAL for an event without decision or with a bad id, SG_ECLOSED at the
 * end of sg_audit_free.
 */
int sg_audit_submit(sg_audit_t *audit, const sg_audit_event_t *ev, sg_audit_durable_cb cb,
                    void *data) SG_MUSTCHECK;
/* Same; id_out receives the event id (NUL-terminated) on SG_OK. */
int sg_audit_submit_id(sg_audit_t *audit, const sg_audit_event_t *ev, sg_audit_durable_cb cb,
                       void *data, char id_out[SG_AUDIT_MAX_ID + 1]) SG_MUSTCHECK;

/* A fresh random event id (UUIDv4), NUL-terminated, for callers that need it before submitting. */
void sg_audit_new_id(char out[SG_AUDIT_ID_LEN + 1]);

/* Writes what is queued on the next loop turn instead of waiting for the interval. */
void sg_audit_flush(sg_audit_t *audit);

/*
 * True when no event is waiting in memory and nothing is left to replay from
 * the spool: everything submitted so far is in PostgreSQL. A drain step may
 * run the loop until this holds (bounded by its own deadline).
 */
bool sg_audit_is_idle(const sg_audit_t *audit);

typedef struct sg_audit_stats {
    size_t queued;        /* events in memory, not yet durable */
    uint64_t spool_bytes; /* bytes in the spool file */
    bool spooling;        /* batches go to the spool (it holds events not yet replayed) */
    bool chain_ready;     /* the chain tail is known; events get their hash at once */
    uint64_t last_seq;    /* last sequence number assigned */
    uint64_t accepted;    /* events accepted by sg_audit_submit */
    uint64_t written;  /* rows inserted into PostgreSQL (replays of rows already there excluded) */
    uint64_t spooled;  /* events appended to the spool */
    uint64_t replayed; /* events replayed from the spool */
    uint64_t lost;     /* events refused or lost */
    uint64_t quarantined; /* spooled events PostgreSQL refused as invalid, set aside */
} sg_audit_stats_t;

/* This writer's counters (the process-wide ones are sg_audit_* metrics). */
void sg_audit_get_stats(const sg_audit_t *audit, sg_audit_stats_t *out);

/*
 * `sentinel-gate audit verify`: connects to conninfo with blocking libpq (CLI
 * only, never on the loop), walks each replica's chain in seq order and writes
 * one line per replica to out: the number of events checked, or the first
 * break — event id, replica, seq and what is wrong: "content hash mismatch"
 * (the row changed after it was written), "prev_hash mismatch" (a row before
 * it was changed, removed or inserted), "gap in seq" (rows missing) or
 * "duplicate seq". tenant (may be NULL) limits the check to replicas that
 * wrote events of that tenant, starting at its first event in range; since
 * (may be NULL; a PostgreSQL timestamp such as "2025-01-31" or
 * "2025-01-31T12:00:00Z", or a duration such as "24h" or "7d" meaning that long
 * ago) starts each walk at the first event at or after it, checking its link to
 * the event before. A chain whose first row has seq > 1 and no row before it
 * (older partitions pruned) is accepted from there.
 *
 * SG_OK when every chain is intact; SG_EINVAL when at least one is broken
 * (err says how many); SG_EBACKEND / SG_ESETTING when the database cannot be
 * read or since does not parse (err says why, never the password).
 */
int sg_audit_verify(const char *conninfo, const char *tenant_or_null, const char *since_or_null,
                    FILE *out, sg_error_t *err) SG_MUSTCHECK;

#endif
