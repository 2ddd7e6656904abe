/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The migration runner (`sentinel-gate migrate`). It runs before any event
 * loop exists, so — alone in the code base — it uses blocking libpq.
 *
 * Order of work: read and hash every file, connect, take the advisory lock,
 * create schema_migrations if needed, check every recorded migration against
 * its file (any mismatch stops before anything is applied), then apply the
 * missing ones, each in its own transaction together with its row. The
 * session lock is released by closing the connection, also on errors.
 */
#include "store/migrate.h"

#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <libpq-fe.h>
#include <openssl/evp.h>

#include "base/log.h"
#include "base/mem.h"

#define MAX_FILES    10000
#define MAX_NAME_LEN 120

typedef struct sg_migration {
    int version;
    char name[MAX_NAME_LEN + 1]; /* "create_core_tables" */
    char *sql;                   /* the file, NUL-terminated; owned */
    size_t len;
    char checksum[2 * 32 + 1]; /* sha256, lower-case hex */
    bool applied;
} sg_migration_t;

typedef struct sg_migration_set {
    sg_migration_t *files;
    size_t n;
    size_t cap;
} sg_migration_set_t;

static const sg_log_ctx_t log_ctx = { .component = "migrate" };

static const char create_table_sql[] = "CREATE TABLE IF NOT EXISTS schema_migrations ("
                                       " version int PRIMARY KEY CHECK (version > 0),"
                                       " name text NOT NULL,"
                                       " applied_at timestamptz NOT NULL DEFAULT now(),"
                                       " checksum text NOT NULL)";

/* ---- reading the directory ---- */

static void mset_free(sg_migration_set_t *set)
{
    for (size_t i = 0; i < set->n; i++) {
        free(set->files[i].sql);
    }
    free(set->files);
    *set = (sg_migration_set_t){ 0 };
}

/* "NNNN_name.sql" -> version and name; false when the name does not fit the pattern. */
static bool parse_file_name(const char *fname, int *version, char *name)
{
    size_t len = strlen(fname), digits = strspn(fname, "0123456789");
    if (digits == 0 || digits > 9 || fname[digits] != '_' || len < digits + 6 ||
        strcmp(fname + len - 4, ".sql") != 0) {
        return false;
    }
    size_t name_len = len - 4 - digits - 1;
    if (name_len == 0 || name_len > MAX_NAME_LEN) {
        return false;
    }
    for (size_t i = 0; i < name_len; i++) {
        char c = fname[digits + 1 + i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_')) {
            return false;
        }
    }
    *version = (int)strtol(fname, NULL, 10);
    memcpy(name, fname + digits + 1, name_len);
    name[name_len] = '\0';
    return *version > 0;
}

static void sha256_hex(const char *data, size_t len, char out[2 * 32 + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    SG_BUG_ON(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32);
    for (unsigned int i = 0; i < mdlen; i++) {
        snprintf(out + 2 * (size_t)i, 3, "%02x", md[i]);
    }
}

/* Reads path (at most SG_MIGRATE_MAX_FILE bytes) into f->sql and hashes it. */
static int read_file(const char *path, const char *fname, sg_migration_t *f, sg_error_t *err)
{
    FILE *fp = fopen(path, "rb");
    if (fp == NULL) {
        return sg_error_set(err, SG_EIO, "cannot open %s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode) ||
        (uint64_t)st.st_size > (uint64_t)SG_MIGRATE_MAX_FILE) {
        fclose(fp);
        return sg_error_set(err, SG_EINVAL, "%s: not a regular file of at most %zu bytes", fname,
                            (size_t)SG_MIGRATE_MAX_FILE);
    }
    f->len = (size_t)st.st_size;
    f->sql = sg_xmalloc(f->len + 1);
    size_t got = fread(f->sql, 1, f->len, fp);
    fclose(fp);
    if (got != f->len) {
        return sg_error_set(err, SG_EIO, "cannot read %s", path);
    }
    f->sql[f->len] = '\0';
    if (memchr(f->sql, '\0', f->len) != NULL) {
        return sg_error_set(err, SG_EINVAL, "%s: contains a NUL byte", fname);
    }
    sha256_hex(f->sql, f->len, f->checksum);
    return SG_OK;
}

static int add_file(sg_migration_set_t *set, const char *dir, const char *fname, sg_error_t *err)
{
    sg_migration_t f = { 0 };
    if (!parse_file_name(fname, &f.version, f.name)) {
        return sg_error_set(err, SG_EINVAL, "%s/%s: migration files are named NNNN_name.sql", dir,
                            fname);
    }
    if (set->n == MAX_FILES) {
        return sg_error_set(err, SG_EINVAL, "%s: more than %d migrations", dir, MAX_FILES);
    }
    char path[PATH_MAX];
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, fname) >= sizeof(path)) {
        return sg_error_set(err, SG_EINVAL, "%s: path too long", fname);
    }
    int rc = read_file(path, fname, &f, err);
    if (rc != SG_OK) {
        free(f.sql);
        return rc;
    }
    if (set->n == set->cap) {
        set->cap = set->cap == 0 ? 16 : 2 * set->cap;
        set->files = sg_xrealloc(set->files, set->cap * sizeof(*set->files));
    }
    set->files[set->n++] = f;
    return SG_OK;
}

static int by_version(const void *a, const void *b)
{
    const sg_migration_t *x = a, *y = b;
    return (x->version > y->version) - (x->version < y->version);
}

static int scan_dir(const char *dir, sg_migration_set_t *set, sg_error_t *err)
{
    DIR *d = opendir(dir);
    if (d == NULL) {
        return sg_error_set(err, SG_EIO, "cannot open migrations directory %s: %s", dir,
                            strerror(errno));
    }
    int rc = SG_OK;
    struct dirent *e;
    while (rc == SG_OK && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 4 || strcmp(e->d_name + len - 4, ".sql") != 0) {
            continue;
        }
        rc = add_file(set, dir, e->d_name, err);
    }
    closedir(d);
    if (rc != SG_OK) {
        return rc;
    }
    if (set->n > 1) {
        qsort(set->files, set->n, sizeof(*set->files), by_version);
    }
    for (size_t i = 1; i < set->n; i++) {
        if (set->files[i].version == set->files[i - 1].version) {
            return sg_error_set(err, SG_EINVAL, "two migrations numbered %04d (%s and %s)",
                                set->files[i].version, set->files[i - 1].name, set->files[i].name);
        }
    }
    return SG_OK;
}

/* ---- talking to the server ---- */

static void on_notice(void *arg, const char *message)
{
    (void)arg;
    int len = (int)strcspn(message, "\n");
    if (strncmp(message, "WARNING", 7) == 0) {
        SG_LOG_WARN(&log_ctx, "server says: %.*s", len, message);
    } else {
        SG_LOG_DEBUG(&log_ctx, "server says: %.*s", len, message);
    }
}

static int connect_db(const char *conninfo, PGconn **out, sg_error_t *err)
{
    char *errmsg = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo != NULL ? conninfo : "", &errmsg);
    if (opts == NULL) {
        PQfreemem(errmsg); /* it may quote the string, password included */
        return sg_error_set(err, SG_EINVAL, "PostgreSQL connection string does not parse");
    }
    PQconninfoFree(opts);
    static const char *const keys[] = { "connect_timeout", "application_name", "dbname", NULL };
    const char *const vals[] = { "10", "sentinel-gate migrate", conninfo, NULL };
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    SG_BUG_ON(pg == NULL); /* out of memory */
    if (PQstatus(pg) != CONNECTION_OK) {
        const char *m = PQerrorMessage(pg);
        sg_error_set(err, SG_EBACKEND, "cannot connect to PostgreSQL: %.*s", (int)strcspn(m, "\n"),
                     m);
        PQfinish(pg);
        return SG_EBACKEND;
    }
    PQsetNoticeProcessor(pg, on_notice, NULL);
    *out = pg;
    return SG_OK;
}

/* Runs one statement that must succeed; what names it in the error. */
static int exec_ok(PGconn *pg, const char *sql, const char *what, sg_error_t *err)
{
    PGresult *r = PQexec(pg, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = SG_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorMessage(r);
        rc = sg_error_set(err, SG_EBACKEND, "%s: %.*s", what, (int)strcspn(m, "\n"), m);
    }
    PQclear(r);
    return rc;
}

static int lock_and_prepare(PGconn *pg, sg_error_t *err)
{
    int rc = exec_ok(pg, "SET lock_timeout = '300s'", "setting lock_timeout", err);
    if (rc == SG_OK) {
        rc = exec_ok(pg, "SELECT pg_advisory_lock(" SG_MIGRATE_LOCK_KEY ")",
                     "waiting for the migration lock", err);
    }
    if (rc == SG_OK) {
        rc = exec_ok(pg, "RESET lock_timeout", "resetting lock_timeout", err);
    }
    if (rc == SG_OK) {
        rc = exec_ok(pg, create_table_sql, "creating schema_migrations", err);
    }
    return rc;
}

/* ---- checking what is recorded ---- */

static sg_migration_t *find_file(sg_migration_set_t *set, int version)
{
    for (size_t i = 0; i < set->n; i++) {
        if (set->files[i].version == version) {
            return &set->files[i];
        }
    }
    return NULL;
}

/* Marks recorded migrations applied; a recorded one whose file changed is an error. */
static int check_recorded(PGconn *pg, sg_migration_set_t *set, int *max_recorded, sg_error_t *err)
{
    PGresult *r = PQexec(pg, "SELECT version, name, checksum FROM schema_migrations");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *m = PQresultErrorMessage(r);
        sg_error_set(err, SG_EBACKEND, "reading schema_migrations: %.*s", (int)strcspn(m, "\n"), m);
        PQclear(r);
        return SG_EBACKEND;
    }
    int rc = SG_OK;
    *max_recorded = 0;
    for (int i = 0; i < PQntuples(r) && rc == SG_OK; i++) {
        int version = (int)strtol(PQgetvalue(r, i, 0), NULL, 10);
        *max_recorded = SG_MAX(*max_recorded, version);
        sg_migration_t *f = find_file(set, version);
        if (f == NULL) {
            continue; /* applied by a newer build */
        }
        f->applied = true;
        if (strcmp(PQgetvalue(r, i, 1), f->name) != 0) {
            rc = sg_error_set(err, SG_EINVAL, "migration %04d was applied as %s but the file is %s",
                              version, PQgetvalue(r, i, 1), f->name);
        } else if (strcmp(PQgetvalue(r, i, 2), f->checksum) != 0) {
            rc = sg_error_set(
                    err, SG_EINVAL,
                    "%04d_%s.sql: checksum differs from the one recorded when it was applied "
                    "(migrations are never edited; add a new one)",
                    version, f->name);
        }
    }
    PQclear(r);
    return rc;
}

static int check_order(const sg_migration_set_t *set, int max_recorded, sg_error_t *err)
{
    for (size_t i = 0; i < set->n; i++) {
        const sg_migration_t *f = &set->files[i];
        if (!f->applied && f->version < max_recorded) {
            return sg_error_set(
                    err, SG_EINVAL,
                    "%04d_%s.sql is not applied but migration %04d is: number new migrations "
                    "above the last applied one",
                    f->version, f->name, max_recorded);
        }
    }
    return SG_OK;
}

/* ---- applying ---- */

/* 1-based line of a 1-based character position (PG_DIAG_STATEMENT_POSITION) in sql. */
static int line_of(const char *sql, size_t len, long pos)
{
    int line = 1;
    long chars = 0;
    for (size_t i = 0; i < len; i++) {
        if (((unsigned char)sql[i] & 0xC0) != 0x80 && ++chars >= pos) {
            break;
        }
        if (sql[i] == '\n') {
            line++;
        }
    }
    return line;
}

static int report_failure(const sg_migration_t *f, const PGresult *r, sg_error_t *err)
{
    const char *msg = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
    const char *pos = PQresultErrorField(r, PG_DIAG_STATEMENT_POSITION);
    if (msg == NULL) {
        msg = PQresultErrorMessage(r);
    }
    if (pos != NULL) {
        return sg_error_set(err, SG_EBACKEND, "%04d_%s.sql line %d: %.*s", f->version, f->name,
                            line_of(f->sql, f->len, strtol(pos, NULL, 10)), (int)strcspn(msg, "\n"),
                            msg);
    }
    return sg_error_set(err, SG_EBACKEND, "%04d_%s.sql: %.*s", f->version, f->name,
                        (int)strcspn(msg, "\n"), msg);
}

static int run_file(PGconn *pg, const sg_migration_t *f, sg_error_t *err)
{
    PGresult *r = PQexec(pg, f->sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = SG_OK;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY) {
        rc = report_failure(f, r, err);
    } else if (PQtransactionStatus(pg) != PQTRANS_INTRANS) {
        rc = sg_error_set(err, SG_EINVAL,
                          "%04d_%s.sql ends the transaction itself "
                          "(migrations must not contain BEGIN, COMMIT or ROLLBACK)",
                          f->version, f->name);
    }
    PQclear(r);
    return rc;
}

static int record_file(PGconn *pg, const sg_migration_t *f, sg_error_t *err)
{
    char version[16];
    snprintf(version, sizeof(version), "%d", f->version);
    const char *const params[] = { version, f->name, f->checksum };
    PGresult *r = PQexecParams(
            pg, "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)", 3,
            NULL, params, NULL, NULL, 0);
    int rc = SG_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        const char *m = PQresultErrorMessage(r);
        rc = sg_error_set(err, SG_EBACKEND, "recording %04d_%s: %.*s", f->version, f->name,
                          (int)strcspn(m, "\n"), m);
    }
    PQclear(r);
    return rc;
}

static int apply_file(PGconn *pg, const sg_migration_t *f, sg_error_t *err)
{
    int rc = exec_ok(pg, "BEGIN", "starting a transaction", err);
    if (rc != SG_OK) {
        return rc;
    }
    rc = run_file(pg, f, err);
    if (rc == SG_OK) {
        rc = record_file(pg, f, err);
    }
    if (rc == SG_OK) {
        rc = exec_ok(pg, "COMMIT", "committing", err);
    }
    if (rc != SG_OK) {
        PQclear(PQexec(pg, "ROLLBACK")); /* a no-op when nothing is open */
        return rc;
    }
    printf("applied %04d_%s\n", f->version, f->name);
    fflush(stdout);
    return SG_OK;
}

/* ---- public API ---- */

int sg_migrate_run(const char *conninfo, const char *dir, sg_error_t *err)
{
    sg_migration_set_t set = { 0 };
    PGconn *pg = NULL;
    int max_recorded = 0;
    int rc = scan_dir(dir != NULL ? dir : sg_migrate_default_dir(), &set, err);
    if (rc == SG_OK) {
        rc = connect_db(conninfo, &pg, err);
    }
    if (rc == SG_OK) {
        rc = lock_and_prepare(pg, err);
    }
    if (rc == SG_OK) {
        rc = check_recorded(pg, &set, &max_recorded, err);
    }
    if (rc == SG_OK) {
        rc = check_order(&set, max_recorded, err);
    }
    for (size_t i = 0; i < set.n && rc == SG_OK; i++) {
        if (!set.files[i].applied) {
            rc = apply_file(pg, &set.files[i], err);
        }
    }
    PQfinish(pg); /* also releases the advisory lock */
    mset_free(&set);
    return rc;
}

const char *sg_migrate_default_dir(void)
{
    static char found[PATH_MAX + 64];
    const char *env = getenv("SG_MIGRATIONS_DIR");
    if (env != NULL && env[0] != '\0') {
        return env;
    }
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(found, sizeof(found), "%s/../share/sentinel-gate/migrations", exe);
            struct stat st;
            if (stat(found, &st) == 0 && S_ISDIR(st.st_mode)) {
                return found;
            }
        }
    }
#ifdef SG_SOURCE_MIGRATIONS_DIR
    return SG_SOURCE_MIGRATIONS_DIR;
#else
    return "migrations";
#endif
}
