/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store/audit against a real PostgreSQL 15: the group starts its own
 * throw-away cluster with ops/lib/pgcluster on a free loopback port (stopped
 * and restarted by one test) and stops it at the end; a reaper process stops
 * it too if this process dies first. Each test works in a database of its own,
 * migrated with sg_migrate_run, and drives the loop with sg_loop_run_once in
 * bounded loops.
 *
 * SG_AUDIT_BENCH=<n> adds a throughput run of n events (printed as events/s).
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "base/clock.h"
#include "base/metrics.h"
#include "store/audit.h"
#include "store/audit_cli.h"
#include "store/audit_int.h"
#include "store/migrate.h"

#define PGCLUSTER      SG_SOURCE_DIR "/ops/lib/pgcluster"
#define MIGRATIONS_DIR SG_SOURCE_DIR "/migrations"
#define NBULK          10000
#define NRESTART       2000 /* before and again during the outage */
#define NSPOOL         300
#define NSYNC          1000
#define BASE_TS_US     INT64_C(1767225600000000) /* 2026-01-01T00:00:00Z */

/* ---- throw-away cluster (tests/unit/pg_fixture.h) ---- */

#define SG_PG_FIXTURE_NAME "audit"
#include "pg_fixture.h"

/* ---- databases ---- */

static void db_url(const char *db, char *out, size_t cap)
{
    snprintf(out, cap, "postgresql://postgres@127.0.0.1:%d/%s", cluster.port, db);
}

/* Runs sql on db (blocking); the first cell (or the error) goes to out. Returns the status. */
static ExecStatusType sql_on(const char *db, const char *sql, char *out, size_t cap)
{
    char url[200];
    db_url(db, url, sizeof(url));
    PGconn *pg = PQconnectdb(url);
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    if (out != NULL) {
        snprintf(out, cap, "%s",
                 st == PGRES_TUPLES_OK && PQntuples(r) > 0 ? PQgetvalue(r, 0, 0)
                                                           : PQresultErrorMessage(r));
    }
    PQclear(r);
    PQfinish(pg);
    return st;
}

static long sql_long(const char *db, const char *sql)
{
    char out[256];
    assert_int_equal(sql_on(db, sql, out, sizeof(out)), PGRES_TUPLES_OK);
    return strtol(out, NULL, 10);
}

/* A fresh, migrated database named db; its URL goes to url. */
static void fresh_db(const char *db, char *url, size_t cap)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
    assert_int_equal(sql_on("postgres", sql, NULL, 0), PGRES_COMMAND_OK);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    assert_int_equal(sql_on("postgres", sql, NULL, 0), PGRES_COMMAND_OK);
    db_url(db, url, cap);
    sg_error_t err = { 0 };
    fflush(stdout);
    int saved = dup(1); /* "applied …" lines */
    int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
    dup2(null, 1);
    close(null);
    int rc = sg_migrate_run(url, MIGRATIONS_DIR, &err);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    if (rc != SG_OK) {
        fprintf(stderr, "migrate: %s\n", err.msg);
    }
    assert_int_equal(rc, SG_OK);
}

/* Checks the replica's rows: n of them, ids distinct, seq exactly 1..n. */
static void assert_rows(const char *db, const char *replica, long n)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) || ' ' || count(DISTINCT id) || ' ' || coalesce(min(seq), 0) || ' ' "
             "|| coalesce(max(seq), 0) || ' ' || count(DISTINCT seq) FROM audit_events WHERE "
             "replica = '%s'",
             replica);
    char out[256], want[256];
    assert_int_equal(sql_on(db, sql, out, sizeof(out)), PGRES_TUPLES_OK);
    snprintf(want, sizeof(want), "%ld %ld %d %ld %ld", n, n, n > 0 ? 1 : 0, n, n);
    assert_string_equal(out, want);
}

/* Runs sg_audit_verify; its report goes to report. */
static int verify(const char *url, const char *tenant, const char *since, char *report, size_t cap)
{
    FILE *f = tmpfile();
    assert_non_null(f);
    sg_error_t err = { 0 };
    int rc = sg_audit_verify(url, tenant, since, f, &err);
    rewind(f);
    size_t n = fread(report, 1, cap - 1, f);
    report[n] = '\0';
    fclose(f);
    if (rc != SG_OK) {
        fprintf(stderr, "verify: %s\n%s", err.msg, report);
    }
    return rc;
}

/* ---- writer plumbing ---- */

typedef struct sg_test_fixture {
    sg_loop_t *loop;
    sg_pg_t *pg;
    sg_audit_t *audit;
    char spool[128];
} sg_test_fixture_t;

static void spool_dir(const char *name, char *out, size_t cap)
{
    snprintf(out, cap, "%s/spool-%s", cluster.dir, name);
}

static sg_test_fixture_t *fixture_new(const char *url, const char *replica, const char *spool,
                                      const sg_audit_options_t *opts)
{
    sg_test_fixture_t *f = calloc(1, sizeof(*f));
    f->loop = sg_loop_new();
    f->pg = sg_pg_new(f->loop, url, 4);
    snprintf(f->spool, sizeof(f->spool), "%s", spool);
    sg_error_t err = { 0 };
    f->audit = sg_audit_new(f->loop, f->pg, replica, spool, opts, &err);
    if (f->audit == NULL) {
        fprintf(stderr, "sg_audit_new: %s\n", err.msg);
    }
    assert_non_null(f->audit);
    return f;
}

static void fixture_free(sg_test_fixture_t *f)
{
    sg_audit_free(f->audit);
    sg_pg_free(f->pg);
    sg_loop_free(f->loop);
    free(f);
}

static bool run_until_idle(sg_test_fixture_t *f, uint64_t max_ms)
{
    uint64_t end = sg_clock_now_ms() + max_ms;
    while (!sg_audit_is_idle(f->audit)) {
        if (sg_clock_now_ms() > end) {
            return false;
        }
        sg_loop_run_once(f->loop, 10);
    }
    return true;
}

static void run_for(sg_loop_t *loop, uint64_t ms)
{
    uint64_t end = sg_clock_now_ms() + ms;
    while (sg_clock_now_ms() < end) {
        sg_loop_run_once(loop, 10);
    }
}

/* Durable callback bookkeeping: one counter per event, plus the last status. */
typedef struct sg_test_tracker {
    int *calls;
    int *status;
    int fired;
    int inside_submit; /* callbacks that ran inside sg_audit_submit: must stay 0 */
} sg_test_tracker_t;

static sg_test_tracker_t tracker;
static bool in_submit;

typedef struct sg_test_slot {
    sg_test_tracker_t *t;
    int i;
} sg_test_slot_t;

static sg_test_slot_t *slots;

static void tracker_init(int n)
{
    free(tracker.calls);
    free(tracker.status);
    free(slots);
    tracker = (sg_test_tracker_t){ .calls = calloc((size_t)n, sizeof(int)),
                                   .status = calloc((size_t)n, sizeof(int)) };
    slots = calloc((size_t)n, sizeof(*slots));
    for (int i = 0; i < n; i++) {
        slots[i] = (sg_test_slot_t){ &tracker, i };
    }
}

static void on_durable(void *data, int status)
{
    sg_test_slot_t *s = data;
    s->t->calls[s->i]++;
    s->t->status[s->i] = status;
    s->t->fired++;
    s->t->inside_submit += in_submit;
}

/* Event i: varied fields, tricky JSON (jsonb must not break the chain), odd text. */
typedef struct sg_test_ev_store {
    char tenant[32], tool[32], req[32], args[256], reason[64];
} sg_test_ev_store_t;

static void make_event(int i, sg_test_ev_store_t *s, sg_audit_event_t *ev)
{
    snprintf(s->tenant, sizeof(s->tenant), "tenant-%d", i % 3);
    snprintf(s->tool, sizeof(s->tool), i % 97 == 0 ? "fs__r\xff\xfe" : "fs__read_%d", i % 7);
    snprintf(s->req, sizeof(s->req), "req-%d", i);
    switch (i % 5) {
    case 0:
        snprintf(s->args, sizeof(s->args), "{\"path\": \"/tmp/f%d\", \"n\": %d}", i, i);
        break;
    case 1:
        snprintf(s->args, sizeof(s->args),
                 "{\"z\": 1.50, \"a\": [1e2, -0, 0.001e3, -12.5E-3, \"\\u00e9\\n\\u2028\\ud83d"
                 "\\ude00\"], \"m\": {\"y\": null, \"x\": true, \"\": false}}");
        break;
    case 2:
        snprintf(s->args, sizeof(s->args), "\"just a string\"");
        break;
    case 3:
        snprintf(s->args, sizeof(s->args), "{not json %d", i);
        break;
    default:
        snprintf(s->args, sizeof(s->args), "[123456789012345678901234567890, 1e-7, []]");
        break;
    }
    *ev = (sg_audit_event_t){
        .ts_us = BASE_TS_US + (int64_t)i * 1000,
        .tenant = sg_str(s->tenant),
        .identity = SG_STR_LIT("agent-1"),
        .session = SG_STR_LIT("sess-1"),
        .request_id = sg_str(s->req),
        .method = SG_STR_LIT("tools/call"),
        .tool = sg_str(s->tool),
        .upstream = SG_STR_LIT("fs"),
        .risk_class = SG_STR_LIT("read"),
        .decision = i % 5 == 0 ? SG_STR_LIT("deny") : SG_STR_LIT("allow"),
        .rule = i % 5 == 0 ? SG_STR_LIT("no-secrets") : SG_STR_NULL,
        .reason = i % 11 == 0 ? sg_str_n("nul\0inside", 10) : SG_STR_LIT("matched rule"),
        .arguments = sg_str(s->args),
        .has_result = i % 2 == 0,
        .result_size = (int64_t)i * 10,
        .result_is_error = i % 4 == 0,
        .gate_latency_us = 100 + i,
        .upstream_latency_us = i % 3 == 0 ? -1 : 2000,
        .findings = i % 10 == 0 ? SG_STR_LIT("[{\"detector\": \"aws_key\", \"pointer\": \"/k\"}]")
                                : SG_STR_NULL,
        .approval_id = i % 13 == 0 ? SG_STR_LIT("appr-1") : SG_STR_NULL,
    };
}

/* Submits events first..first+n-1 (tracked when cb); returns how many were accepted. */
static int submit_range(sg_audit_t *a, int first, int n, bool cb)
{
    int ok = 0;
    for (int i = first; i < first + n; i++) {
        sg_test_ev_store_t s;
        sg_audit_event_t ev;
        make_event(i, &s, &ev);
        in_submit = true;
        int rc = sg_audit_submit(a, &ev, cb ? on_durable : NULL, cb ? &slots[i] : NULL);
        in_submit = false;
        ok += rc == SG_OK;
    }
    return ok;
}

/* Runs `sentinel-gate audit <args…>` (NULL-terminated) against url; returns the exit code. */
static int cli(const char *url, ...)
{
    char *argv[16] = { strdup("sentinel-gate"), strdup("audit") };
    int argc = 2;
    va_list ap;
    va_start(ap, url);
    const char *a;
    while ((a = va_arg(ap, const char *)) != NULL && argc < 15) {
        argv[argc++] = strdup(a);
    }
    va_end(ap);
    int rc = sg_audit_cli(argc, argv, url);
    for (int i = 0; i < argc; i++) {
        free(argv[i]);
    }
    return rc;
}

/* ---- tests ---- */

static void canonical_json_is_a_function_of_the_value(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        { " { \"b\" : 1.50 , \"a\" : [ 1e2 , -0 , 0.001e3 ] } ", "{\"a\":[100,0,1],\"b\":1.5}" },
        { "{\"a\": 1, \"\": 2, \"aa\": 3, \"\\u0062\": 4}", "{\"\":2,\"a\":1,\"aa\":3,\"b\":4}" },
        { "\"\\u00e9\\/\\u2028\"", "\"\xc3\xa9/\\u2028\"" },
        { "-12.5E-3", "-0.0125" },
        { "1.0e+2", "100" },
        { "0.0000", "0" },
        { "123456789012345678901234567890", "123456789012345678901234567890" },
        { "[null,true,false,{}]", "[null,true,false,{}]" },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        sg_buf_t out = SG_BUF_INIT;
        assert_int_equal(sg_audit_canon_json(sg_str(cases[i].in), &out), SG_OK);
        assert_string_equal(out.data, cases[i].out);
        sg_buf_dispose(&out);
    }
    sg_buf_t out = SG_BUF_INIT;
    assert_int_not_equal(sg_audit_canon_json(SG_STR_LIT("{\"a\":1,\"a\":2}"), &out), SG_OK);
    assert_int_equal(sg_audit_canon_json(SG_STR_LIT("1e5000"), &out), SG_EINVAL);
    assert_int_not_equal(sg_audit_canon_json(SG_STR_LIT("{not json"), &out), SG_OK);
    assert_int_equal(out.len, 0);
    sg_buf_dispose(&out);
    char ts[SG_AUDIT_TS_LEN + 1];
    sg_audit_format_ts(BASE_TS_US + 1, ts);
    assert_string_equal(ts, "2026-01-01T00:00:00.000001Z");
}

static void writes_10000_events_once_in_order_and_verifies(void **state)
{
    (void)state;
    char url[200], spool[128], report[4096];
    fresh_db("a_bulk", url, sizeof(url));
    spool_dir("bulk", spool, sizeof(spool));
    sg_test_fixture_t *f = fixture_new(url, "r-bulk", spool, NULL);
    uint64_t t0 = sg_clock_now_us();
    assert_int_equal(submit_range(f->audit, 0, NBULK, false), NBULK);
    assert_true(run_until_idle(f, 60000));
    uint64_t us = sg_clock_now_us() - t0;
    printf("audit: %d events into PostgreSQL in %.3f s = %.0f events/s\n", NBULK, (double)us / 1e6,
           NBULK * 1e6 / (double)us);
    sg_audit_stats_t st;
    sg_audit_get_stats(f->audit, &st);
    assert_int_equal(st.accepted, NBULK);
    assert_int_equal(st.written, NBULK);
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.last_seq, NBULK);
    assert_rows("a_bulk", "r-bulk", NBULK);
    fixture_free(f);
    assert_int_equal(verify(url, NULL, NULL, report, sizeof(report)), SG_OK);
    assert_non_null(strstr(report, "replica r-bulk: ok, 10000 events (seq 1..10000)"));
    assert_int_equal(verify(url, "tenant-1", "2026-01-01T00:00:05Z", report, sizeof(report)),
                     SG_OK);
    assert_non_null(strstr(report, "replica r-bulk: ok"));
    assert_int_equal(verify(url, NULL, "100000d", report, sizeof(report)), SG_OK);
    /* what jsonb did to the arguments did not change the hash: spot-check one */
    char out[512];
    assert_int_equal(sql_on("a_bulk",
                            "SELECT arguments::text FROM audit_events WHERE request_id = 'req-1'",
                            out, sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_non_null(strstr(out, "\"z\": 1.5"));
    assert_int_equal(sql_long("a_bulk", "SELECT count(*) FROM audit_events WHERE "
                                        "jsonb_typeof(arguments) = 'string'"),
                     2 * NBULK / 5);
}

static void survives_postgres_stopping_mid_stream(void **state)
{
    (void)state;
    char url[200], spool[128], report[4096];
    fresh_db("a_restart", url, sizeof(url));
    spool_dir("restart", spool, sizeof(spool));
    sg_audit_options_t o = { .write_timeout_ms = 1000 };
    sg_test_fixture_t *f = fixture_new(url, "r-restart", spool, &o);
    tracker_init(2 * NRESTART);
    for (int i = 0; i < NRESTART; i += 100) {
        assert_int_equal(submit_range(f->audit, i, 100, true), 100);
        run_for(f->loop, 5);
    }
    assert_int_equal(run_pgcluster("stop", NULL, NULL, 0), 0);
    bool spooled = false;
    for (int i = NRESTART; i < 2 * NRESTART; i += 100) {
        assert_int_equal(submit_range(f->audit, i, 100, true), 100);
        run_for(f->loop, 100);
        sg_audit_stats_t st;
        sg_audit_get_stats(f->audit, &st);
        spooled = spooled || st.spooling;
    }
    assert_true(spooled);
    assert_int_equal(cluster_start(), 0);
    assert_true(run_until_idle(f, 60000));
    sg_audit_stats_t st;
    sg_audit_get_stats(f->audit, &st);
    printf("audit: outage: %llu spooled, %llu replayed, %llu written\n",
           (unsigned long long)st.spooled, (unsigned long long)st.replayed,
           (unsigned long long)st.written);
    assert_true(st.spooled > 0);
    assert_true(st.replayed >= st.spooled); /* plus what a crashed process could have left */
    assert_int_equal(st.lost, 0);
    assert_int_equal(st.spool_bytes, 0);
    for (int i = 0; i < 2 * NRESTART; i++) {
        assert_int_equal(tracker.calls[i], 1);
        assert_int_equal(tracker.status[i], SG_OK);
    }
    assert_int_equal(tracker.inside_submit, 0);
    assert_rows("a_restart", "r-restart", 2L * NRESTART);
    /* order kept: seq follows submission order */
    assert_int_equal(sql_long("a_restart", "SELECT count(*) FROM audit_events WHERE request_id <> "
                                           "'req-' || (seq - 1)"),
                     0);
    fixture_free(f);
    assert_int_equal(verify(url, NULL, NULL, report, sizeof(report)), SG_OK);
}

static void replays_a_spool_left_by_a_previous_process_once(void **state)
{
    (void)state;
    char url[200], dead[200], spool[128], path[256], report[4096];
    fresh_db("a_spool", url, sizeof(url));
    spool_dir("prev", spool, sizeof(spool));
    snprintf(dead, sizeof(dead), "postgresql://postgres@127.0.0.1:%d/none", free_port());

    /* the "previous process": PostgreSQL unreachable all along, so everything spools */
    sg_audit_options_t o = { .write_timeout_ms = 300, .chain_lookup_ms = 300, .drain_ms = 200 };
    sg_test_fixture_t *prev = fixture_new(dead, "r-spool", spool, &o);
    tracker_init(NSPOOL + 20);
    assert_int_equal(submit_range(prev->audit, 0, NSPOOL, true), NSPOOL);
    uint64_t end = sg_clock_now_ms() + 20000;
    while (tracker.fired < NSPOOL && sg_clock_now_ms() < end) {
        sg_loop_run_once(prev->loop, 10);
    }
    assert_int_equal(tracker.fired, NSPOOL);
    for (int i = 0; i < NSPOOL; i++) {
        assert_int_equal(tracker.status[i], SG_OK); /* durable in the spool */
    }
    sg_audit_stats_t st;
    sg_audit_get_stats(prev->audit, &st);
    assert_int_equal(st.spooled, NSPOOL);
    fixture_free(prev);

    /* a crash in the middle of an append leaves a torn line */
    snprintf(path, sizeof(path), "%s/audit.spool", spool);
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs("{\"id\":\"torn", fp);
    fclose(fp);

    sg_test_fixture_t *f = fixture_new(url, "r-spool", spool, NULL);
    assert_true(run_until_idle(f, 30000));
    sg_audit_get_stats(f->audit, &st);
    assert_int_equal(st.replayed, NSPOOL);
    assert_int_equal(st.quarantined, 0);
    assert_rows("a_spool", "r-spool", NSPOOL);
    assert_int_equal(submit_range(f->audit, NSPOOL, 10, false), 10); /* the chain goes on */
    assert_true(run_until_idle(f, 10000));
    assert_rows("a_spool", "r-spool", NSPOOL + 10);
    fixture_free(f);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0);

    /* a third start finds nothing to replay, and continues the chain again */
    f = fixture_new(url, "r-spool", spool, NULL);
    assert_true(run_until_idle(f, 10000));
    sg_audit_get_stats(f->audit, &st);
    assert_int_equal(st.replayed, 0);
    assert_int_equal(submit_range(f->audit, NSPOOL + 10, 10, false), 10);
    assert_true(run_until_idle(f, 10000));
    fixture_free(f);
    assert_rows("a_spool", "r-spool", NSPOOL + 20);
    assert_int_equal(verify(url, NULL, NULL, report, sizeof(report)), SG_OK);
    assert_non_null(strstr(report, "seq 1..320"));
}

/* A "previous process" that never reaches PostgreSQL: n events from first end up in the spool. */
static void spool_offline(const char *spool, const char *replica, int first, int n)
{
    char dead[200];
    snprintf(dead, sizeof(dead), "postgresql://postgres@127.0.0.1:%d/none", free_port());
    sg_audit_options_t o = { .write_timeout_ms = 300, .chain_lookup_ms = 300, .drain_ms = 200 };
    sg_test_fixture_t *f = fixture_new(dead, replica, spool, &o);
    assert_int_equal(submit_range(f->audit, first, n, false), n);
    fixture_free(f); /* drains into the spool */
}

static void sets_aside_spooled_lines_postgres_refuses(void **state)
{
    (void)state;
    char url[200], spool[128], path[256], report[4096];
    fresh_db("a_reject", url, sizeof(url));
    spool_dir("reject", spool, sizeof(spool));
    spool_offline(spool, "r-rej", 0, 100);
    snprintf(path, sizeof(path), "%s/audit.spool", spool);
    FILE *fp = fopen(path, "a");
    assert_non_null(fp);
    fputs("{\"id\":\"bad\",\"ts\":\"not a time\",\"replica\":\"r-other\","
          "\"decision\":\"allow\",\"seq\":1,\"prev_hash\":\"\",\"hash\":\"\"}\n",
          fp);
    fputs("this is not JSON\n", fp);
    fclose(fp);
    spool_offline(spool, "r-rej", 100, 100); /* continues the chain past the bad lines */
    sg_test_fixture_t *f = fixture_new(url, "r-rej", spool, NULL);
    assert_true(run_until_idle(f, 30000));
    sg_audit_stats_t st;
    sg_audit_get_stats(f->audit, &st);
    assert_int_equal(st.replayed, 200);
    assert_int_equal(st.quarantined, 2);
    fixture_free(f);
    assert_rows("a_reject", "r-rej", 200);
    assert_int_equal(sql_long("a_reject", "SELECT count(*) FROM audit_events"), 200);
    snprintf(path, sizeof(path), "%s/audit.rejected", spool);
    fp = fopen(path, "r");
    assert_non_null(fp);
    char line[512];
    int lines = 0;
    while (fgets(line, sizeof(line), fp) != NULL) {
        lines++;
    }
    fclose(fp);
    assert_int_equal(lines, 2);
    assert_int_equal(verify(url, NULL, NULL, report, sizeof(report)), SG_OK);
}

static void durable_callbacks_fire_once_after_commit(void **state)
{
    (void)state;
    char url[200], spool[128];
    fresh_db("a_sync", url, sizeof(url));
    spool_dir("sync", spool, sizeof(spool));
    sg_test_fixture_t *f = fixture_new(url, "r-sync", spool, NULL);
    tracker_init(NSYNC);
    uint64_t t0 = sg_clock_now_us();
    for (int i = 0; i < NSYNC; i += 10) { /* ten concurrent "calls" per loop turn */
        assert_int_equal(submit_range(f->audit, i, 10, true), 10);
        assert_int_equal(tracker.inside_submit, 0);
        sg_loop_run_once(f->loop, 0);
    }
    uint64_t end = sg_clock_now_ms() + 20000;
    while (tracker.fired < NSYNC && sg_clock_now_ms() < end) {
        sg_loop_run_once(f->loop, 10);
    }
    uint64_t us = sg_clock_now_us() - t0;
    printf("audit: sync mode: %d durable callbacks in %.3f s\n", NSYNC, (double)us / 1e6);
    assert_int_equal(tracker.fired, NSYNC);
    assert_int_equal(tracker.inside_submit, 0);
    /* every event a callback confirmed is in PostgreSQL */
    assert_rows("a_sync", "r-sync", NSYNC);
    run_for(f->loop, 100);
    for (int i = 0; i < NSYNC; i++) {
        assert_int_equal(tracker.calls[i], 1);
        assert_int_equal(tracker.status[i], SG_OK);
    }
    fixture_free(f);
    assert_int_equal(tracker.fired, NSYNC); /* none again at free */
}

static void verify_names_changed_and_missing_rows(void **state)
{
    (void)state;
    char url[200], spool[128], report[8192], sql[512], id42[64], since[64];
    fresh_db("a_tamper", url, sizeof(url));
    static const char *const replicas[] = { "r-upd", "r-del", "r-dup", "r-link" };
    for (size_t r = 0; r < SG_ARRAY_LEN(replicas); r++) {
        spool_dir(replicas[r], spool, sizeof(spool));
        sg_test_fixture_t *f = fixture_new(url, replicas[r], spool, NULL);
        assert_int_equal(submit_range(f->audit, 0, 100, false), 100);
        assert_true(run_until_idle(f, 10000));
        fixture_free(f);
    }
    assert_int_equal(verify(url, NULL, NULL, report, sizeof(report)), SG_OK);
    assert_int_equal(sql_on("a_tamper",
                            "SELECT id FROM audit_events WHERE replica = 'r-upd' AND seq = 42",
                            id42, sizeof(id42)),
                     PGRES_TUPLES_OK);
    static const char *const tamper[] = {
        "UPDATE audit_events SET decision = 'deny' WHERE replica = 'r-upd' AND seq = 42",
        "DELETE FROM audit_events WHERE replica = 'r-del' AND seq = 60",
        "UPDATE audit_events SET seq = 30 WHERE replica = 'r-dup' AND seq = 31",
        "UPDATE audit_events SET hash = repeat('0', 64) WHERE replica = 'r-link' AND seq = 70",
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(tamper); i++) {
        snprintf(sql, sizeof(sql), "SET sg.audit_maintenance = 'on'; %s", tamper[i]);
        assert_int_equal(sql_on("a_tamper", sql, NULL, 0), PGRES_COMMAND_OK);
    }
    assert_int_equal(verify(url, NULL, NULL, report, sizeof(report)), SG_EINVAL);
    snprintf(sql, sizeof(sql), "replica r-upd: BROKEN at seq 42 (id %s", id42);
    assert_non_null(strstr(report, sql));
    assert_non_null(strstr(report, "content hash mismatch"));
    assert_non_null(strstr(report, "replica r-del: BROKEN at seq 61"));
    assert_non_null(strstr(report, "gap in seq: 60..60 missing"));
    assert_non_null(strstr(report, "replica r-dup: BROKEN at seq 30")); /* duplicate, or changed */
    assert_non_null(strstr(report, "replica r-link: BROKEN at seq 70"));
    assert_non_null(strstr(report, "4 broken"));
    /* from row 71 on, row 70 is only the anchor: its altered hash breaks the link */
    sg_audit_format_ts(BASE_TS_US + INT64_C(70000), since);
    assert_int_equal(verify(url, "tenant-1", since, report, sizeof(report)), SG_EINVAL);
    assert_non_null(strstr(report, "replica r-link: BROKEN at seq 71"));
    assert_non_null(strstr(report, "prev_hash mismatch"));

    /* the CLI: exit 1 on a broken chain, 0 on an intact one, 2 on bad usage */
    assert_int_equal(cli(url, "verify", NULL), 1);
    assert_int_equal(cli(url, "verify", "--since", "yesterday-ish", NULL), 2);
    char ok_url[200];
    db_url("a_bulk", ok_url, sizeof(ok_url));
    assert_int_equal(cli(ok_url, "verify", NULL), 0);
}

static void refuses_when_full_and_counts_the_loss(void **state)
{
    (void)state;
    char url[200], dead[200], spool[128];
    fresh_db("a_full", url, sizeof(url));
    spool_dir("full", spool, sizeof(spool));
    sg_audit_options_t o = { .max_queue = 50, .batch_max = 10 };
    sg_test_fixture_t *f = fixture_new(url, "r-full", spool, &o);
    assert_int_equal(submit_range(f->audit, 0, 60, false), 50); /* no loop turn in between */
    sg_audit_stats_t st;
    sg_audit_get_stats(f->audit, &st);
    assert_int_equal(st.lost, 10);
    sg_buf_t text = SG_BUF_INIT;
    sg_metrics_render(&text);
    assert_non_null(strstr(text.data, "# TYPE sg_audit_lost_total counter"));
    assert_non_null(strstr(text.data, "sg_audit_queue_depth 50"));
    sg_buf_dispose(&text);
    sg_audit_event_t bad = { .tenant = SG_STR_LIT("t") };
    assert_int_equal(sg_audit_submit(f->audit, &bad, NULL, NULL), SG_EINVAL);
    assert_true(run_until_idle(f, 10000));
    assert_rows("a_full", "r-full", 50);
    fixture_free(f);

    /* PostgreSQL unreachable and the spool full: events wait, then the queue refuses */
    snprintf(dead, sizeof(dead), "postgresql://postgres@127.0.0.1:%d/none", free_port());
    spool_dir("full2", spool, sizeof(spool));
    sg_audit_options_t o2 = { .max_queue = 20,
                              .batch_max = 10,
                              .write_timeout_ms = 300,
                              .chain_lookup_ms = 300,
                              .max_spool_bytes = 1,
                              .drain_ms = 200 };
    f = fixture_new(dead, "r-full2", spool, &o2);
    tracker_init(25);
    assert_int_equal(submit_range(f->audit, 0, 20, true), 20);
    run_for(f->loop, 3000);
    sg_audit_get_stats(f->audit, &st);
    assert_int_equal(st.queued, 20);
    assert_int_equal(st.spooled, 0);
    assert_int_equal(tracker.fired, 0);
    assert_int_equal(submit_range(f->audit, 20, 5, true), 0);
    sg_audit_get_stats(f->audit, &st);
    assert_int_equal(st.lost, 5);
    fixture_free(f); /* nowhere to put them: each callback says so, once */
    assert_int_equal(tracker.fired, 20);
    for (int i = 0; i < 20; i++) {
        assert_int_equal(tracker.calls[i], 1);
        assert_int_equal(tracker.status[i], SG_EIO);
    }
}

static void free_drains_what_is_queued(void **state)
{
    (void)state;
    char url[200], spool[128];
    fresh_db("a_drain", url, sizeof(url));
    spool_dir("drain", spool, sizeof(spool));
    sg_test_fixture_t *f = fixture_new(url, "r-drain", spool, NULL);
    assert_int_equal(submit_range(f->audit, 0, 1234, false), 1234);
    fixture_free(f); /* not one loop turn before */
    assert_rows("a_drain", "r-drain", 1234);
    struct stat sb;
    char path[256];
    snprintf(path, sizeof(path), "%s/audit.spool", spool);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    /* a second writer on the same spool directory is refused while the first holds it */
    sg_test_fixture_t *g = fixture_new(url, "r-drain", spool, NULL);
    sg_pg_t *pg = sg_pg_new(g->loop, url, 1);
    sg_error_t err = { 0 };
    assert_null(sg_audit_new(g->loop, pg, "r-drain", spool, NULL, &err));
    assert_int_equal(err.code, SG_EBUSY);
    sg_pg_free(pg);
    fixture_free(g);
}

static void prune_drops_whole_old_partitions(void **state)
{
    (void)state;
    char url[200], out[256];
    fresh_db("a_prune", url, sizeof(url));
    assert_int_equal(sql_on("a_prune",
                            "CREATE TABLE audit_events_2001_01 PARTITION OF audit_events FOR "
                            "VALUES FROM ('2001-01-01 00:00+00') TO ('2001-02-01 00:00+00'); "
                            "INSERT INTO audit_events (id, ts, replica, decision, seq, "
                            "prev_hash, hash) VALUES ('old', '2001-01-15', 'r', 'allow', 1, "
                            "'', '')",
                            NULL, 0),
                     PGRES_COMMAND_OK);
    long before = sql_long("a_prune", "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                      "'audit_events'::regclass");
    assert_int_equal(cli(url, "prune", "--older-than", "90d", "--dry-run", NULL), 0);
    assert_int_equal(sql_long("a_prune", "SELECT count(*) FROM audit_events"), 1);
    assert_int_equal(cli(url, "prune", "--older-than", "90d", NULL), 0);
    assert_int_equal(sql_on("a_prune", "SELECT to_regclass('audit_events_2001_01') IS NULL", out,
                            sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_string_equal(out, "t");
    assert_int_equal(sql_long("a_prune", "SELECT count(*) FROM pg_inherits WHERE inhparent = "
                                         "'audit_events'::regclass"),
                     before - 1); /* this month's, the next ones and DEFAULT stay */
    assert_int_equal(sql_long("a_prune",
                              "SELECT count(*) FROM admin_actions WHERE action = 'audit.prune' "
                              "AND details->'partitions' ? 'audit_events_2001_01'"),
                     1);
    assert_int_equal(cli(url, "prune", "--older-than", "90d", NULL), 0);
    assert_int_equal(cli(url, "prune", "--older-than", "2h", NULL), 2);
    assert_int_equal(cli(url, "frobnicate", NULL), 2);
}

static uint64_t thread_cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void bench_throughput(void **state)
{
    (void)state;
    const char *n_env = getenv("SG_AUDIT_BENCH");
    if (n_env == NULL) {
        skip();
        return;
    }
    int n = (int)strtol(n_env, NULL, 10);
    const char *inflight = getenv("SG_AUDIT_BENCH_INFLIGHT");
    const char *batch = getenv("SG_AUDIT_BENCH_BATCH");
    sg_audit_options_t o = {
        .max_inflight = inflight != NULL ? strtoul(inflight, NULL, 10) : 2,
        .batch_max = batch != NULL ? strtoul(batch, NULL, 10) : 500,
    };
    char url[200], spool[128];
    fresh_db("a_bench", url, sizeof(url));
    spool_dir("bench", spool, sizeof(spool));
    sg_test_fixture_t *f = fixture_new(url, "r-bench", spool, &o);
    assert_true(run_until_idle(f, 10000));
    uint64_t t0 = sg_clock_now_us(), submit_us = 0, cpu0 = thread_cpu_us();
    int submitted = 0;
    while (submitted < n) { /* a producer that backs off when the queue is full */
        sg_audit_stats_t st;
        sg_audit_get_stats(f->audit, &st);
        int k = SG_MIN(1000, n - submitted);
        bool room = st.queued + (size_t)k <= 50000;
        if (room) {
            uint64_t s0 = thread_cpu_us();
            assert_int_equal(submit_range(f->audit, submitted, k, false), k);
            submit_us += thread_cpu_us() - s0;
            submitted += k;
        }
        sg_loop_run_once(f->loop, room ? 0 : 5); /* wait for a batch when the queue is full */
    }
    assert_true(run_until_idle(f, 600000));
    uint64_t us = sg_clock_now_us() - t0, cpu = thread_cpu_us() - cpu0;
    printf("audit bench: %d events into PostgreSQL in %.3f s = %.0f events/s (loop thread CPU "
           "%.1f us/event, of which submit %.1f; batch %zu, inflight %zu)\n",
           n, (double)us / 1e6, n * 1e6 / (double)us, (double)cpu / n, (double)submit_us / n,
           o.batch_max, o.max_inflight);
    assert_rows("a_bench", "r-bench", n);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(canonical_json_is_a_function_of_the_value),
        cmocka_unit_test(writes_10000_events_once_in_order_and_verifies),
        cmocka_unit_test(survives_postgres_stopping_mid_stream),
        cmocka_unit_test(replays_a_spool_left_by_a_previous_process_once),
        cmocka_unit_test(sets_aside_spooled_lines_postgres_refuses),
        cmocka_unit_test(durable_callbacks_fire_once_after_commit),
        cmocka_unit_test(verify_names_changed_and_missing_rows),
        cmocka_unit_test(refuses_when_full_and_counts_the_loss),
        cmocka_unit_test(free_drains_what_is_queued),
        cmocka_unit_test(prune_drops_whole_old_partitions),
        cmocka_unit_test(bench_throughput),
    };
    int rc = cmocka_run_group_tests(tests, cluster_setup, cluster_teardown);
    free(tracker.calls);
    free(tracker.status);
    free(slots);
    return rc;
}
