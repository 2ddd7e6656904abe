/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `sentinel-gate audit verify|prune` (contract in audit_cli.h). Argument
 * parsing, the prune transaction, and the mapping of results to exit codes;
 * the chain walk itself is sg_audit_verify (audit_verify.c).
 */
#include "store/audit_cli.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "base/buf.h"
#include "base/json.h"
#include "store/audit.h"

#define EXIT_OK     0
#define EXIT_BROKEN 1
#define EXIT_USAGE  2
#define EXIT_DB     3

/* Partitions of audit_events whose upper bound is at or before the cutoff, oldest first. */
static const char old_partitions_sql[] =
        "SELECT relname, hi FROM ("
        " SELECT c.relname, (regexp_match(pg_get_expr(c.relpartbound, c.oid),"
        "   'TO \\(''([^'']*)''\\)'))[1]::timestamptz AS hi"
        " FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
        " WHERE i.inhparent = 'audit_events'::regclass) p "
        "WHERE hi <= now() - $1::interval ORDER BY hi";

static const char record_sql[] = "INSERT INTO admin_actions (actor, action, target, details) "
                                 "VALUES (current_user, 'audit.prune', $1, $2::jsonb)";

static void usage(FILE *f)
{
    fprintf(f, "usage: sentinel-gate audit verify [--tenant T] [--since TIME]\n"
               "       sentinel-gate audit prune --older-than 90d [--dry-run]\n");
}

static void print_error(const char *what, const char *msg)
{
    int n = (int)strcspn(msg, "\r\n");
    fprintf(stderr, "sentinel-gate audit %s: %.*s\n", what, SG_MIN(n, 300), msg);
}

static int run_verify(int argc, char **argv, const char *conninfo)
{
    const char *tenant = NULL, *since = NULL;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc) {
            tenant = argv[++i];
        } else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
            since = argv[++i];
        } else {
            fprintf(stderr, "sentinel-gate audit verify: unexpected '%.64s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    sg_error_t err = { 0 };
    int rc = sg_audit_verify(conninfo, tenant, since, stdout, &err);
    fflush(stdout);
    if (rc == SG_OK) {
        return EXIT_OK;
    }
    print_error("verify", err.msg);
    return rc == SG_EINVAL ? EXIT_BROKEN : rc == SG_ESETTING ? EXIT_USAGE : EXIT_DB;
}

/* "90d" -> "90 days"; false unless N{h,d,w} with N >= 1 and at least one day in all. */
static bool parse_age(const char *s, char *interval, size_t cap)
{
    size_t n = strlen(s);
    if (n < 2 || n > 8) {
        return false;
    }
    for (size_t i = 0; i + 1 < n; i++) {
        if (!isdigit((unsigned char)s[i])) {
            return false;
        }
    }
    long v = strtol(s, NULL, 10);
    long hours;
    const char *unit;
    switch (s[n - 1]) {
    case 'h':
        hours = v;
        unit = "hours";
        break;
    case 'd':
        hours = v * 24;
        unit = "days";
        break;
    case 'w':
        hours = v * 24 * 7;
        unit = "weeks";
        break;
    default:
        return false;
    }
    if (hours < 24) {
        return false;
    }
    snprintf(interval, cap, "%ld %s", v, unit);
    return true;
}

static int exec_cmd(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok) {
        print_error("prune", PQresultErrorMessage(r));
    }
    PQclear(r);
    return ok ? EXIT_OK : EXIT_DB;
}

/* Drops each listed partition; names go to details (a JSON array) for the admin trail. */
static int drop_partitions(PGconn *c, const PGresult *parts, bool dry_run, sg_buf_t *details)
{
    for (int i = 0; i < PQntuples(parts); i++) {
        const char *name = PQgetvalue(parts, i, 0);
        if (i > 0) {
            sg_buf_append_char(details, ',');
        }
        sg_json_write_cstr(details, name);
        if (!dry_run) {
            char *ident = PQescapeIdentifier(c, name, strlen(name));
            sg_buf_t sql = SG_BUF_INIT;
            sg_buf_printf(&sql, "DROP TABLE %s", ident != NULL ? ident : "\"\"");
            PQfreemem(ident);
            int rc = exec_cmd(c, sql.data);
            sg_buf_dispose(&sql);
            if (rc != EXIT_OK) {
                return rc;
            }
        }
        printf("%s %s (events before %s)\n", dry_run ? "would drop" : "dropped", name,
               PQgetvalue(parts, i, 1));
    }
    return EXIT_OK;
}

static int prune_in(PGconn *c, const char *age, const char *interval, bool dry_run)
{
    if (exec_cmd(c, "BEGIN") != EXIT_OK ||
        exec_cmd(c, "SET LOCAL lock_timeout = '10s'") != EXIT_OK ||
        exec_cmd(c, "SET LOCAL datestyle = 'ISO'") != EXIT_OK) {
        return EXIT_DB;
    }
    PGresult *parts = PQexecParams(c, old_partitions_sql, 1, NULL, &interval, NULL, NULL, 0);
    if (PQresultStatus(parts) != PGRES_TUPLES_OK) {
        print_error("prune", PQresultErrorMessage(parts));
        PQclear(parts);
        return EXIT_DB;
    }
    sg_buf_t details = SG_BUF_INIT;
    sg_buf_append_cstr(&details, "{\"older_than\":");
    sg_json_write_cstr(&details, age);
    sg_buf_append_cstr(&details, ",\"partitions\":[");
    int n = PQntuples(parts);
    int rc = drop_partitions(c, parts, dry_run, &details);
    sg_buf_append_cstr(&details, "]}");
    PQclear(parts);
    if (rc == EXIT_OK && n > 0 && !dry_run) {
        const char *params[2] = { age, details.data };
        PGresult *r = PQexecParams(c, record_sql, 2, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            print_error("prune", PQresultErrorMessage(r));
            rc = EXIT_DB;
        }
        PQclear(r);
    }
    sg_buf_dispose(&details);
    if (rc == EXIT_OK && !dry_run) {
        rc = exec_cmd(c, "COMMIT");
    }
    if (rc == EXIT_OK) {
        printf("audit prune: %d partition(s) %s (older than %s)\n", n,
               dry_run ? "would be dropped" : "dropped", age);
    }
    return rc;
}

static int run_prune(int argc, char **argv, const char *conninfo)
{
    const char *age = NULL;
    bool dry_run = false;
    for (int i = 3; i < argc; i++) {
        if (strcmp(argv[i], "--older-than") == 0 && i + 1 < argc) {
            age = argv[++i];
        } else if (strcmp(argv[i], "--dry-run") == 0) {
            dry_run = true;
        } else {
            fprintf(stderr, "sentinel-gate audit prune: unexpected '%.64s'\n", argv[i]);
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    char interval[32];
    if (age == NULL || !parse_age(age, interval, sizeof(interval))) {
        fprintf(stderr, "sentinel-gate audit prune: --older-than takes an age such as 90d, 12w "
                        "or 48h (at least one day)\n");
        return EXIT_USAGE;
    }
    PGconn *c = PQconnectdb(conninfo != NULL ? conninfo : "");
    if (PQstatus(c) != CONNECTION_OK) {
        print_error("prune", PQerrorMessage(c));
        PQfinish(c);
        return EXIT_DB;
    }
    int rc = prune_in(c, age, interval, dry_run);
    if (rc != EXIT_OK || dry_run) {
        PQclear(PQexec(c, "ROLLBACK"));
    }
    PQfinish(c);
    fflush(stdout);
    return rc;
}

int sg_audit_cli(int argc, char **argv, const char *conninfo)
{
    const char *sub = argc >= 3 ? argv[2] : NULL;
    if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        usage(sub == NULL ? stderr : stdout);
        return sub == NULL ? EXIT_USAGE : EXIT_OK;
    }
    if (strcmp(sub, "verify") == 0) {
        return run_verify(argc, argv, conninfo);
    }
    if (strcmp(sub, "prune") == 0) {
        return run_prune(argc, argv, conninfo);
    }
    fprintf(stderr, "sentinel-gate audit: unknown subcommand '%.64s'\n", sub);
    usage(stderr);
    return EXIT_USAGE;
}
