/* SPDX-License-Identifier: Apache-2.0 */
/*
 * store/migrate and the shipped migrations against a real PostgreSQL 15: the
 * group starts its own throw-away cluster with ops/lib/pgcluster on a free
 * loopback port and stops it at the end; a reaper process stops it too if this
 * process dies first. Each test works in a database of its own.
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
#include <libpq-fe.h>

#include "store/migrate.h"

#define PGCLUSTER      SG_SOURCE_DIR "/ops/lib/pgcluster"
#define MIGRATIONS_DIR SG_SOURCE_DIR "/migrations"
#define NRUNNERS       4 /* concurrent `migrate` processes */

/* ---- throw-away cluster (tests/unit/pg_fixture.h) ---- */

#define SG_PG_FIXTURE_NAME "migrate"
#include "pg_fixture.h"

/* ---- helpers ---- */

static long num(const char *s)
{
    return strtol(s, NULL, 10);
}

static void db_url(const char *db, char *out, size_t cap)
{
    snprintf(out, cap, "postgresql://postgres@127.0.0.1:%d/%s", cluster.port, db);
}

/* Runs sql on db (blocking); the first cell goes to out when given. Returns the result status. */
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

/* A fresh database named db; its URL goes to url. */
static void fresh_db(const char *db, char *url, size_t cap)
{
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db);
    assert_int_equal(sql_on("postgres", sql, NULL, 0), PGRES_COMMAND_OK);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
    assert_int_equal(sql_on("postgres", sql, NULL, 0), PGRES_COMMAND_OK);
    db_url(db, url, cap);
}

/* Runs the migrations with stdout captured; returns its status and the number of "applied" lines.
 */
static int migrate_counting(const char *url, const char *dir, int *applied, sg_error_t *err)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/stdout.txt", cluster.dir);
    fflush(stdout);
    int saved = dup(1);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    dup2(fd, 1);
    close(fd);
    int rc = sg_migrate_run(url, dir, err);
    fflush(stdout);
    dup2(saved, 1);
    close(saved);
    FILE *fp = fopen(path, "r");
    char line[256];
    *applied = 0;
    while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
        *applied += strncmp(line, "applied ", 8) == 0;
    }
    if (fp != NULL) {
        fclose(fp);
    }
    return rc;
}

/* A copy of the shipped migrations at to (which must not exist). */
static void copy_migrations(const char *to)
{
    pid_t pid = fork();
    if (pid == 0) {
        execlp("cp", "cp", "-r", MIGRATIONS_DIR, to, (char *)NULL);
        _exit(127);
    }
    int status = -1;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

static void write_file(const char *path, const char *mode, const char *text)
{
    FILE *fp = fopen(path, mode);
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

/* ---- tests ---- */

static void applies_everything_once_then_nothing(void **state)
{
    (void)state;
    char url[200], before[512], after[512], version[32];
    sg_error_t err = { 0 };
    int applied = -1;
    fresh_db("m_twice", url, sizeof(url));
    assert_int_equal(migrate_counting(url, MIGRATIONS_DIR, &applied, &err), SG_OK);
    assert_int_equal(applied, SG_SCHEMA_VERSION);
    static const char history[] =
            "SELECT string_agg(version || ' ' || name || ' ' || applied_at || "
            "' ' || checksum, ',' ORDER BY version) FROM schema_migrations";
    assert_int_equal(sql_on("m_twice", history, before, sizeof(before)), PGRES_TUPLES_OK);
    assert_int_equal(migrate_counting(url, MIGRATIONS_DIR, &applied, &err), SG_OK);
    assert_int_equal(applied, 0);
    assert_int_equal(sql_on("m_twice", history, after, sizeof(after)), PGRES_TUPLES_OK);
    assert_string_equal(before, after);
    assert_int_equal(sql_on("m_twice", SG_SCHEMA_VERSION_SQL, version, sizeof(version)),
                     PGRES_TUPLES_OK);
    assert_int_equal(num(version), SG_SCHEMA_VERSION);
}

static void concurrent_runners_apply_once(void **state)
{
    (void)state;
    char url[200], out[64];
    fresh_db("m_conc", url, sizeof(url));
    pid_t pids[NRUNNERS];
    for (int i = 0; i < NRUNNERS; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            char path[128];
            snprintf(path, sizeof(path), "%s/runner-%d.txt", cluster.dir, i);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(fd, 1);
            sg_error_t err = { 0 };
            int rc = sg_migrate_run(url, MIGRATIONS_DIR, &err);
            fflush(stdout);
            _exit(rc == SG_OK ? 0 : 1);
        }
    }
    int total = 0;
    for (int i = 0; i < NRUNNERS; i++) {
        int status = -1;
        waitpid(pids[i], &status, 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        char path[128], line[256];
        snprintf(path, sizeof(path), "%s/runner-%d.txt", cluster.dir, i);
        FILE *fp = fopen(path, "r");
        while (fp != NULL && fgets(line, sizeof(line), fp) != NULL) {
            total += strncmp(line, "applied ", 8) == 0;
        }
        if (fp != NULL) {
            fclose(fp);
        }
    }
    assert_int_equal(total, SG_SCHEMA_VERSION);
    assert_int_equal(sql_on("m_conc", "SELECT count(*) FROM schema_migrations", out, sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_int_equal(num(out), SG_SCHEMA_VERSION);
    assert_int_equal(sql_on("m_conc",
                            "SELECT count(*) FROM pg_inherits "
                            "WHERE inhparent = 'audit_events'::regclass",
                            out, sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_int_equal(num(out), 4); /* this month, the next two, DEFAULT */
}

static void refuses_an_edited_migration(void **state)
{
    (void)state;
    char url[200], dir[128], path[200], out[64];
    sg_error_t err = { 0 };
    int applied = 0;
    snprintf(dir, sizeof(dir), "%s/tampered", cluster.dir);
    copy_migrations(dir);
    fresh_db("m_tamper", url, sizeof(url));
    assert_int_equal(migrate_counting(url, dir, &applied, &err), SG_OK);
    snprintf(path, sizeof(path), "%s/0002_create_audit_events.sql", dir);
    write_file(path, "a", "-- edited after merge\n");
    snprintf(path, sizeof(path), "%s/0100_add_more.sql", dir);
    write_file(path, "w", "CREATE TABLE more (a int);\n");
    assert_int_equal(migrate_counting(url, dir, &applied, &err), SG_EINVAL);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err.msg, "0002_create_audit_events.sql"));
    assert_non_null(strstr(err.msg, "checksum"));
    assert_int_equal(sql_on("m_tamper", SG_SCHEMA_VERSION_SQL, out, sizeof(out)), PGRES_TUPLES_OK);
    assert_int_equal(num(out), SG_SCHEMA_VERSION); /* 0100 was not applied either */
}

static void rolls_back_a_failing_migration_and_names_the_line(void **state)
{
    (void)state;
    char url[200], dir[128], path[200], out[256];
    sg_error_t err = { 0 };
    int applied = 0;
    snprintf(dir, sizeof(dir), "%s/broken", cluster.dir);
    copy_migrations(dir);
    snprintf(path, sizeof(path), "%s/0100_broken.sql", dir);
    write_file(path, "w", "CREATE TABLE half_done (a int);\n\nSELECT nope FROM nowhere;\n");
    fresh_db("m_broken", url, sizeof(url));
    assert_int_equal(migrate_counting(url, dir, &applied, &err), SG_EBACKEND);
    assert_int_equal(applied, SG_SCHEMA_VERSION); /* the good ones stay applied */
    assert_non_null(strstr(err.msg, "0100_broken.sql line 3"));
    assert_non_null(strstr(err.msg, "nowhere"));
    assert_int_equal(
            sql_on("m_broken", "SELECT to_regclass('half_done') IS NULL", out, sizeof(out)),
            PGRES_TUPLES_OK);
    assert_string_equal(out, "t");

    /* a badly named file, and a missing directory */
    snprintf(path, sizeof(path), "%s/0100_broken.sql", dir);
    assert_int_equal(unlink(path), 0);
    snprintf(path, sizeof(path), "%s/7-bad-name.sql", dir);
    write_file(path, "w", "SELECT 1;\n");
    assert_int_equal(sg_migrate_run(url, dir, &err), SG_EINVAL);
    assert_non_null(strstr(err.msg, "7-bad-name.sql"));
    assert_int_equal(sg_migrate_run(url, "/nonexistent/migrations", &err), SG_EIO);
}

static void audit_insert_far_in_the_future_lands_in_default(void **state)
{
    (void)state;
    char url[200], out[128];
    sg_error_t err = { 0 };
    int applied = 0;
    fresh_db("m_audit", url, sizeof(url));
    assert_int_equal(migrate_counting(url, MIGRATIONS_DIR, &applied, &err), SG_OK);
    static const char insert[] =
            "INSERT INTO audit_events (id, ts, tenant, replica, method, tool, decision, "
            "arguments, seq, prev_hash, hash) VALUES "
            "('e1', now(), 'acme', 'r1', 'tools/call', 'read', 'allow', '{}', 1, '', 'h1'), "
            "('e2', now() + interval '5 years', 'acme', 'r1', 'tools/call', 'read', 'deny', "
            "'{}', 2, 'h1', 'h2')";
    assert_int_equal(sql_on("m_audit", insert, out, sizeof(out)), PGRES_COMMAND_OK);
    assert_int_equal(sql_on("m_audit",
                            "SELECT tableoid::regclass FROM audit_events WHERE id = 'e2'", out,
                            sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_string_equal(out, "audit_events_default");
    assert_int_equal(sql_on("m_audit",
                            "SELECT tableoid::regclass FROM audit_events WHERE id = 'e1'", out,
                            sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_non_null(strstr(out, "audit_events_2")); /* this month's partition, e.g. _2026_12 */
    assert_int_equal(sql_on("m_audit", "SELECT sg_audit_ensure_partitions(2)", out, sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_string_equal(out, "0");
    assert_int_equal(sql_on("m_audit", "DELETE FROM audit_events", out, sizeof(out)),
                     PGRES_FATAL_ERROR); /* append-only */
    assert_int_equal(sql_on("m_audit", "SELECT count(*) FROM tenants_current", out, sizeof(out)),
                     PGRES_TUPLES_OK);
}

static void auditor_reads_the_views_only(void **state)
{
    (void)state;
    char url[200], out[256];
    sg_error_t err = { 0 };
    int applied = 0;
    fresh_db("m_auditor", url, sizeof(url));
    assert_int_equal(migrate_counting(url, MIGRATIONS_DIR, &applied, &err), SG_OK);
    assert_int_equal(sql_on("m_auditor",
                            "SELECT rolcanlogin FROM pg_roles WHERE rolname = 'sg_auditor'", out,
                            sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_string_equal(out, "f");
    assert_int_equal(sql_on("m_auditor",
                            "SET ROLE sg_auditor; SELECT (SELECT count(*) FROM audit_log) + "
                            "(SELECT count(*) FROM admin_log)",
                            out, sizeof(out)),
                     PGRES_TUPLES_OK);
    assert_string_equal(out, "0");
    assert_int_equal(sql_on("m_auditor", "SET ROLE sg_auditor; SELECT count(*) FROM audit_events",
                            out, sizeof(out)),
                     PGRES_FATAL_ERROR);
    assert_non_null(strstr(out, "permission denied"));
}

static void finds_the_migrations_directory(void **state)
{
    (void)state;
    setenv("SG_MIGRATIONS_DIR", "/somewhere/else", 1);
    assert_string_equal(sg_migrate_default_dir(), "/somewhere/else");
    unsetenv("SG_MIGRATIONS_DIR");
    char path[512];
    snprintf(path, sizeof(path), "%s/0001_create_core_tables.sql", sg_migrate_default_dir());
    assert_int_equal(access(path, R_OK), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(applies_everything_once_then_nothing),
        cmocka_unit_test(concurrent_runners_apply_once),
        cmocka_unit_test(refuses_an_edited_migration),
        cmocka_unit_test(rolls_back_a_failing_migration_and_names_the_line),
        cmocka_unit_test(audit_insert_far_in_the_future_lands_in_default),
        cmocka_unit_test(auditor_reads_the_views_only),
        cmocka_unit_test(finds_the_migrations_directory),
    };
    return cmocka_run_group_tests(tests, cluster_setup, cluster_teardown);
}
