/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/pg against a real PostgreSQL 15: the group starts its own throw-away
 * cluster with ops/lib/pgcluster on a free loopback port and stops it at the
 * end; a reaper process stops it too if this process dies first.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "io/pg.h"

#define PGCLUSTER SG_SOURCE_DIR "/ops/lib/pgcluster"
#define NQUEUED   200 /* queued on a pool of 4 */
#define NINFLIGHT 50  /* in flight across a server restart */
#define NPENDING  6   /* 1 running + 5 queued when the pool is freed */

/* ---- throw-away cluster (tests/unit/pg_fixture.h) ---- */

#define SG_PG_FIXTURE_NAME "pg"
#include "pg_fixture.h"

/* ---- test plumbing ---- */

static long num(const char *s)
{
    return strtol(s, NULL, 10);
}

typedef struct sg_test_query {
    sg_pg_query_t q;
    int calls;
    int status;
    int ntuples;
    char cells[4][256]; /* row 0, up to 4 columns; "(null)" for SQL NULL */
    char error[256];
    char sqlstate[8];
} sg_test_query_t;

static int reentered; /* callbacks that ran inside sg_pg_query_start */
static bool in_start;
static int done;

static void on_tq(sg_pg_query_t *q, int status, const PGresult *res)
{
    sg_test_query_t *t = SG_CONTAINER_OF(q, sg_test_query_t, q);
    reentered += in_start;
    t->calls++;
    t->status = status;
    done++;
    if (res != NULL && PQresultStatus(res) == PGRES_TUPLES_OK) {
        t->ntuples = PQntuples(res);
        for (int i = 0; i < PQnfields(res) && i < 4 && t->ntuples > 0; i++) {
            snprintf(t->cells[i], sizeof(t->cells[i]), "%s",
                     PQgetisnull(res, 0, i) ? "(null)" : PQgetvalue(res, 0, i));
        }
    }
    if (res != NULL && status != SG_OK) {
        snprintf(t->error, sizeof(t->error), "%s", PQresultErrorMessage(res));
        const char *st = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(t->sqlstate, sizeof(t->sqlstate), "%s", st != NULL ? st : "");
    }
}

static void start(sg_pg_t *pool, sg_test_query_t *t, uint64_t timeout_ms, const char *sql, int n,
                  const char *const *params, const int *lengths)
{
    memset(t, 0, sizeof(*t));
    in_start = true;
    sg_pg_query_start(pool, &t->q, timeout_ms, sql, n, params, lengths, on_tq);
    in_start = false;
}

static void exec_prepared(sg_pg_t *pool, sg_test_query_t *t, const char *name, int n,
                          const char *const *params)
{
    memset(t, 0, sizeof(*t));
    in_start = true;
    sg_pg_exec_prepared(pool, &t->q, 5000, name, n, params, NULL, on_tq);
    in_start = false;
}

/* Runs the loop until *counter reaches target or max_ms pass. */
static bool run_until(sg_loop_t *loop, const int *counter, int target, uint64_t max_ms)
{
    uint64_t end = sg_clock_now_ms() + max_ms;
    while (*counter < target) {
        if (sg_clock_now_ms() > end) {
            return false;
        }
        sg_loop_run_once(loop, 10);
    }
    return true;
}

static bool run_until_connected(sg_loop_t *loop, sg_pg_t *pool, size_t n, uint64_t max_ms)
{
    uint64_t end = sg_clock_now_ms() + max_ms;
    while (sg_pg_connected(pool) != n) {
        if (sg_clock_now_ms() > end) {
            return false;
        }
        sg_loop_run_once(loop, 10);
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

typedef struct sg_test_fixture {
    sg_loop_t *loop;
    sg_pg_t *pool;
    size_t reported; /* last value given to the state callback */
    int state_calls;
} sg_test_fixture_t;

static void on_state(void *data, size_t connected)
{
    sg_test_fixture_t *f = data;
    f->reported = connected;
    f->state_calls++;
    reentered += in_start;
}

static sg_test_fixture_t *fixture_new(const char *conninfo, size_t nconns)
{
    sg_test_fixture_t *f = calloc(1, sizeof(*f));
    f->loop = sg_loop_new();
    f->pool = sg_pg_new(f->loop, conninfo, nconns);
    sg_pg_set_state_cb(f->pool, on_state, f);
    reentered = 0;
    done = 0;
    return f;
}

static void fixture_free(sg_test_fixture_t *f)
{
    sg_pg_free(f->pool);
    sg_loop_free(f->loop);
    free(f);
    assert_int_equal(reentered, 0);
}

/* Redirects stderr to a file until capture_end, which reads it into buf. */
static int capture_begin(const char *path)
{
    fflush(stderr);
    int saved = dup(2);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(fd, 2);
    close(fd);
    return saved;
}

static void capture_end(int saved, const char *path, char *buf, size_t cap)
{
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    FILE *fp = fopen(path, "r");
    size_t n = fp != NULL ? fread(buf, 1, cap - 1, fp) : 0;
    buf[n] = '\0';
    if (fp != NULL) {
        fclose(fp);
    }
}

/* ---- tests ---- */

static void runs_simple_query_and_reports_state(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 2);
    assert_true(run_until_connected(f->loop, f->pool, 2, 10000));
    sg_test_query_t t;
    start(f->pool, &t, 2000, "SELECT 41 + 1", 0, NULL, NULL);
    assert_int_equal(t.calls, 0);
    assert_true(run_until(f->loop, &done, 1, 5000));
    assert_int_equal(t.calls, 1);
    assert_int_equal(t.status, SG_OK);
    assert_string_equal(t.cells[0], "42");
    run_for(f->loop, 20);
    assert_int_equal(f->reported, 2);
    assert_true(f->state_calls >= 1);
    fixture_free(f);
}

static void passes_text_null_and_sized_parameters(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 2);
    static const char odd[] = "it's \"quoted\" \\ back\nslash\t\x01\x7f caf\xc3\xa9 \xe2\x98\x83";
    static const char longer[] = "sized-and-not-terminated-XXXX";
    const char *params[] = { odd, NULL, longer };
    const int lengths[] = { (int)strlen(odd), 0, 16 };
    sg_test_query_t t;
    start(f->pool, &t, 5000, "SELECT $1::text, $2::text IS NULL, $3::text, octet_length($1::text)",
          3, params, lengths);
    assert_true(run_until(f->loop, &done, 1, 10000));
    assert_int_equal(t.status, SG_OK);
    assert_string_equal(t.cells[0], odd);
    assert_string_equal(t.cells[1], "t");
    assert_string_equal(t.cells[2], "sized-and-not-te");
    assert_int_equal(num(t.cells[3]), (int)strlen(odd));

    /* a NUL byte cannot travel in text format: refused, on a later turn */
    static const char with_nul[] = { 'a', '\0', 'b' };
    const char *p2[] = { with_nul };
    const int l2[] = { 3 };
    sg_test_query_t refused, too_many;
    start(f->pool, &refused, 5000, "SELECT $1::text", 1, p2, l2);
    const char *many[SG_PG_MAX_PARAMS + 1] = { 0 };
    start(f->pool, &too_many, 5000, "SELECT 1", SG_PG_MAX_PARAMS + 1, many, NULL);
    assert_int_equal(refused.calls + too_many.calls, 0);
    assert_true(run_until(f->loop, &done, 3, 5000));
    assert_int_equal(refused.status, SG_EINVAL);
    assert_int_equal(too_many.status, SG_EINVAL);
    assert_int_equal(refused.calls, 1);
    fixture_free(f);
}

static void prepares_statements_on_every_connection(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 4);
    sg_pg_prepare(f->pool, "t_pid",
                  "SELECT pg_backend_pid()::text, ($1::int + 1)::text, "
                  "pg_sleep(0.2)::text",
                  1);
    sg_pg_prepare(f->pool, "t_bad", "SELEC nonsense", 0);
    assert_true(run_until_connected(f->loop, f->pool, 4, 10000));
    sg_test_query_t t[8];
    char args[8][8];
    for (int i = 0; i < 8; i++) {
        snprintf(args[i], sizeof(args[i]), "%d", i);
        const char *p[] = { args[i] };
        exec_prepared(f->pool, &t[i], "t_pid", 1, p);
    }
    assert_true(run_until(f->loop, &done, 8, 10000));
    char pids[8][256];
    int distinct = 0;
    for (int i = 0; i < 8; i++) {
        assert_int_equal(t[i].status, SG_OK);
        assert_int_equal(num(t[i].cells[1]), i + 1);
        bool seen = false;
        for (int j = 0; j < distinct; j++) {
            seen = seen || strcmp(pids[j], t[i].cells[0]) == 0;
        }
        if (!seen) {
            snprintf(pids[distinct++], sizeof(pids[0]), "%s", t[i].cells[0]);
        }
    }
    assert_int_equal(distinct, 4);

    /* registered after connecting; unknown name; wrong arity; rejected PREPARE */
    sg_pg_prepare(f->pool, "t_late", "SELECT $1::text || '!'", 1);
    const char *x[] = { "x" };
    exec_prepared(f->pool, &t[0], "t_late", 1, x);
    exec_prepared(f->pool, &t[1], "t_nope", 0, NULL);
    exec_prepared(f->pool, &t[2], "t_late", 0, NULL);
    exec_prepared(f->pool, &t[3], "t_bad", 0, NULL);
    assert_true(run_until(f->loop, &done, 12, 10000));
    assert_int_equal(t[0].status, SG_OK);
    assert_string_equal(t[0].cells[0], "x!");
    assert_int_equal(t[1].status, SG_EINVAL);
    assert_int_equal(t[2].status, SG_EINVAL);
    assert_int_equal(t[3].status, SG_EBACKEND);
    assert_string_equal(t[3].sqlstate, "26000"); /* invalid_sql_statement_name */
    fixture_free(f);
}

static void completes_200_queued_queries_once(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 4);
    sg_test_query_t *t = calloc(NQUEUED, sizeof(*t));
    for (int i = 0; i < NQUEUED; i++) { /* before any connection is up: all queue */
        char arg[16];
        snprintf(arg, sizeof(arg), "%d", i);
        const char *p[] = { arg };
        start(f->pool, &t[i], 20000, "SELECT $1::int * 2", 1, p, NULL);
    }
    assert_true(run_until(f->loop, &done, NQUEUED, 30000));
    run_for(f->loop, 50);
    assert_int_equal(done, NQUEUED);
    for (int i = 0; i < NQUEUED; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, SG_OK);
        assert_int_equal(num(t[i].cells[0]), 2 * i);
    }
    free(t);
    fixture_free(f);
}

static void reports_server_errors_and_keeps_going(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 2);
    sg_test_query_t err, open_tx, after[4];
    start(f->pool, &err, 5000, "SELECT 1 / 0", 0, NULL, NULL);
    start(f->pool, &open_tx, 5000, "BEGIN", 0, NULL, NULL); /* leaves a transaction open */
    assert_true(run_until(f->loop, &done, 2, 10000));
    assert_int_equal(err.status, SG_EBACKEND);
    assert_non_null(strstr(err.error, "division by zero"));
    assert_string_equal(err.sqlstate, "22012");
    assert_int_equal(open_tx.status, SG_OK);
    /* SAVEPOINT succeeds only inside a transaction block: none is left open */
    for (int i = 0; i < 4; i++) {
        start(f->pool, &after[i], 5000, "SAVEPOINT sp", 0, NULL, NULL);
    }
    assert_true(run_until(f->loop, &done, 6, 10000));
    for (int i = 0; i < 4; i++) {
        assert_int_equal(after[i].status, SG_EBACKEND);
        assert_string_equal(after[i].sqlstate, "25P01"); /* no_active_sql_transaction */
    }
    assert_true(run_until_connected(f->loop, f->pool, 2, 10000));
    fixture_free(f);
}

static void times_out_then_keeps_working(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 2);
    assert_true(run_until_connected(f->loop, f->pool, 2, 10000));
    sg_test_query_t slow, next;
    uint64_t t0 = sg_clock_now_ms();
    start(f->pool, &slow, 200, "SELECT pg_sleep(2)", 0, NULL, NULL);
    assert_true(run_until(f->loop, &done, 1, 5000));
    uint64_t took = sg_clock_now_ms() - t0;
    assert_int_equal(slow.status, SG_ETIMEDOUT);
    assert_true(took >= 150 && took < 1500);
    start(f->pool, &next, 2000, "SELECT 'alive'", 0, NULL, NULL);
    assert_true(run_until(f->loop, &done, 2, 5000));
    assert_int_equal(next.status, SG_OK);
    assert_string_equal(next.cells[0], "alive");
    assert_true(run_until_connected(f->loop, f->pool, 2, 10000));
    run_for(f->loop, 50);
    assert_int_equal(slow.calls, 1);
    fixture_free(f);
}

static void times_out_while_queued(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 1);
    assert_true(run_until_connected(f->loop, f->pool, 1, 10000));
    sg_test_query_t busy, waiting;
    start(f->pool, &busy, 5000, "SELECT pg_sleep(0.6)", 0, NULL, NULL);
    start(f->pool, &waiting, 200, "SELECT 1", 0, NULL, NULL); /* never reaches the server */
    assert_true(run_until(f->loop, &done, 1, 5000));
    assert_int_equal(waiting.calls, 1);
    assert_int_equal(waiting.status, SG_ETIMEDOUT); /* a connection is up, just busy */
    assert_int_equal(busy.calls, 0);
    assert_true(run_until(f->loop, &done, 2, 5000));
    assert_int_equal(busy.status, SG_OK);
    fixture_free(f);
}

static void fails_closed_without_server_and_hides_password(void **state)
{
    (void)state;
    char url[160], log_path[128], log[8192];
    snprintf(url, sizeof(url), "postgresql://postgres:s3cretPW@127.0.0.1:%d/sentinel", free_port());
    snprintf(log_path, sizeof(log_path), "%s/stderr.log", cluster.dir);
    int saved = capture_begin(log_path);
    sg_test_fixture_t *f = fixture_new(url, 2);
    sg_test_query_t t;
    start(f->pool, &t, 300, "SELECT 1", 0, NULL, NULL);
    bool finished = run_until(f->loop, &done, 1, 5000);
    fixture_free(f);
    capture_end(saved, log_path, log, sizeof(log));
    assert_true(finished);
    assert_int_equal(t.status, SG_ECLOSED);
    assert_non_null(strstr(log, "comp=pg"));
    assert_non_null(strstr(log, "127.0.0.1"));
    assert_null(strstr(log, "s3cretPW"));
}

static void hides_password_of_unparsable_conninfo(void **state)
{
    (void)state;
    static const char bad[] = "postgresql://postgres:s3cretPW@[::1/sentinel?x=y";
    char log_path[128], log[8192];
    sg_error_t err = { 0 };
    assert_int_equal(sg_pg_check_conninfo(bad, &err), SG_ESETTING);
    assert_null(strstr(err.msg, "s3cretPW"));
    assert_int_equal(sg_pg_check_conninfo(cluster.url, &err), SG_OK);
    snprintf(log_path, sizeof(log_path), "%s/unparsable.log", cluster.dir);
    int saved = capture_begin(log_path);
    sg_test_fixture_t *f = fixture_new(bad, 1);
    sg_test_query_t t;
    start(f->pool, &t, 200, "SELECT 1", 0, NULL, NULL);
    bool finished = run_until(f->loop, &done, 1, 5000);
    fixture_free(f);
    capture_end(saved, log_path, log, sizeof(log));
    assert_true(finished);
    assert_int_equal(t.status, SG_ECLOSED);
    assert_non_null(strstr(log, "does not parse"));
    assert_null(strstr(log, "s3cretPW"));
}

static void routes_server_notices_to_the_log(void **state)
{
    (void)state;
    char log_path[128], log[8192];
    snprintf(log_path, sizeof(log_path), "%s/notice.log", cluster.dir);
    int saved = capture_begin(log_path);
    sg_test_fixture_t *f = fixture_new(cluster.url, 1);
    sg_test_query_t t;
    start(f->pool, &t, 5000, "DO $$ BEGIN RAISE WARNING 'sg-notice-%', 7; END $$", 0, NULL, NULL);
    bool finished = run_until(f->loop, &done, 1, 10000);
    fixture_free(f);
    capture_end(saved, log_path, log, sizeof(log));
    assert_true(finished);
    assert_int_equal(t.status, SG_OK);
    const char *line = strstr(log, "sg-notice-7");
    assert_non_null(line);
    assert_non_null(strstr(log, "level=warn comp=pg"));
}

static void survives_server_restart(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 4);
    assert_true(run_until_connected(f->loop, f->pool, 4, 10000));
    sg_test_query_t t[NINFLIGHT];
    for (int i = 0; i < NINFLIGHT; i++) {
        char arg[16];
        snprintf(arg, sizeof(arg), "%d", i);
        const char *p[] = { arg };
        start(f->pool, &t[i], 30000, "SELECT $1::int, pg_sleep(0.4)", 1, p, NULL);
    }
    run_for(f->loop, 100);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        dup2(null, 1);
        execl(PGCLUSTER, PGCLUSTER, "restart", cluster.data, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    uint64_t end = sg_clock_now_ms() + 60000;
    while ((done < NINFLIGHT || status == -1) && sg_clock_now_ms() < end) {
        sg_loop_run_once(f->loop, 10);
        if (status == -1 && waitpid(pid, &status, WNOHANG) == 0) {
            status = -1;
        }
    }
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(done, NINFLIGHT);
    int failed = 0;
    for (int i = 0; i < NINFLIGHT; i++) {
        assert_int_equal(t[i].calls, 1);
        failed += t[i].status != SG_OK;
        if (t[i].status == SG_OK) {
            assert_int_equal(num(t[i].cells[0]), i);
        }
    }
    assert_true(failed >= 1 &&
                failed < NINFLIGHT); /* the running ones broke, the queued ones waited */
    assert_true(run_until_connected(f->loop, f->pool, 4, 15000));
    sg_test_query_t after[8];
    for (int i = 0; i < 8; i++) {
        start(f->pool, &after[i], 5000, "SELECT 'back'", 0, NULL, NULL);
    }
    assert_true(run_until(f->loop, &done, NINFLIGHT + 8, 10000));
    for (int i = 0; i < 8; i++) {
        assert_int_equal(after[i].status, SG_OK);
    }
    fixture_free(f);
}

static sg_test_query_t late_query;
static sg_pg_t *freed_pool;

/* Canceled by sg_pg_free: starts one more query on the pool being freed. */
static void on_canceled_restart(sg_pg_query_t *q, int status, const PGresult *res)
{
    on_tq(q, status, res);
    sg_pg_query_start(freed_pool, &late_query.q, 5000, "SELECT 1", 0, NULL, NULL, on_tq);
}

static void cancels_everything_once_on_free(void **state)
{
    (void)state;
    sg_test_fixture_t *f = fixture_new(cluster.url, 1);
    assert_true(run_until_connected(f->loop, f->pool, 1, 10000));
    sg_test_query_t t[NPENDING];
    memset(&late_query, 0, sizeof(late_query));
    freed_pool = f->pool;
    for (int i = 0; i < NPENDING; i++) {
        memset(&t[i], 0, sizeof(t[i]));
        in_start = true;
        sg_pg_query_start(f->pool, &t[i].q, 10000, "SELECT pg_sleep(5)", 0, NULL, NULL,
                          i == 0 ? on_canceled_restart : on_tq);
        in_start = false;
    }
    run_for(f->loop, 100);
    assert_int_equal(done, 0);
    sg_pg_free(f->pool);
    f->pool = NULL;
    assert_int_equal(done, NPENDING + 1);
    for (int i = 0; i < NPENDING; i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, SG_ECANCELED);
    }
    assert_int_equal(late_query.calls, 1);
    assert_int_equal(late_query.status, SG_ECANCELED);
    fixture_free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(runs_simple_query_and_reports_state),
        cmocka_unit_test(passes_text_null_and_sized_parameters),
        cmocka_unit_test(prepares_statements_on_every_connection),
        cmocka_unit_test(completes_200_queued_queries_once),
        cmocka_unit_test(reports_server_errors_and_keeps_going),
        cmocka_unit_test(times_out_then_keeps_working),
        cmocka_unit_test(times_out_while_queued),
        cmocka_unit_test(fails_closed_without_server_and_hides_password),
        cmocka_unit_test(hides_password_of_unparsable_conninfo),
        cmocka_unit_test(routes_server_notices_to_the_log),
        cmocka_unit_test(cancels_everything_once_on_free),
        cmocka_unit_test(survives_server_restart),
    };
    return cmocka_run_group_tests(tests, cluster_setup, cluster_teardown);
}
