/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The migration runner behind `sentinel-gate migrate`, and the schema version
 * this build expects (compared by /readyz). Runs before any event loop exists,
 * so it uses blocking libpq — the only module allowed to.
 *
 * Migrations are files dir/NNNN_<name>.sql (NNNN a positive number, <name>
 * [A-Za-z0-9_]), applied in numeric order, each in its own transaction with
 * its row in schema_migrations (version, name, applied_at, checksum = sha256
 * of the file, hex). Everything runs under the session advisory lock
 * SG_MIGRATE_LOCK_KEY, so replicas starting at once apply each file exactly
 * once. Files must not contain BEGIN/COMMIT and are never edited after merge.
 */
#ifndef SG_STORE_MIGRATE_H
#define SG_STORE_MIGRATE_H

#include "base/err.h"

/* The highest migration shipped in migrations/; bump it with every new file. */
#define SG_SCHEMA_VERSION 4

/* What /readyz runs (asynchronously) to compare with SG_SCHEMA_VERSION. */
#define SG_SCHEMA_VERSION_SQL "SELECT coalesce(max(version),0) FROM schema_migrations"

/* pg_advisory_lock key held while migrating: 0x53474D4947524154, "SGMIGRAT". */
#define SG_MIGRATE_LOCK_KEY "6000850005618999636"

/* Largest migration file accepted. */
#define SG_MIGRATE_MAX_FILE ((size_t)4 * 1024 * 1024)

/*
 * Connects to conninfo (libpq URI or key=value; NULL = libpq defaults) and
 * applies every migration of dir (NULL = sg_migrate_default_dir()) not yet
 * recorded, printing one line per applied migration to stdout
 * ("applied 0001_create_core_tables"). Running it again applies nothing.
 * Waits up to 5 minutes for another runner's lock.
 *
 * Errors (message in err, never the password): SG_EIO when the directory or a
 * file cannot be read; SG_EINVAL for a badly named or oversized .sql file, two
 * files with one number, a file whose checksum or name differs from what was
 * recorded when it was applied (nothing is applied then), a file that is not
 * applied while a higher number is, or a file that ends the transaction itself;
 * SG_EBACKEND when the server refuses the connection or a statement (that file
 * is rolled back and named, with the line of the failing statement when
 * known). Migrations applied before the error stay applied. Versions recorded
 * without a file here (applied by a newer build) are left alone.
 */
int sg_migrate_run(const char *conninfo, const char *dir, sg_error_t *err) SG_MUSTCHECK;

/*
 * The migrations directory: $SG_MIGRATIONS_DIR if set and non-empty, else
 * <directory of the executable>/../share/sentinel-gate/migrations if it
 * exists, else the source tree's migrations/ (compile definition
 * SG_SOURCE_MIGRATIONS_DIR), else "migrations". Never NULL; the string is
 * borrowed (static storage, overwritten by the next call).
 */
const char *sg_migrate_default_dir(void);

#endif
