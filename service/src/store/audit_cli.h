/* SPDX-License-Identifier: Apache-2.0 */
/*
 * `sentinel-gate audit …`: the audit tools for operators, with blocking libpq
 * (never on the event loop).
 *
 *   sentinel-gate audit verify [--tenant T] [--since TIME]
 *       walks every replica's hash chain and reports the first break of each
 *       (sg_audit_verify); TIME is a timestamp (2025-01-31, 2025-01-31T12:00:00Z)
 *       or a duration back from now (24h, 7d).
 *   sentinel-gate audit prune --older-than 90d [--dry-run]
 *       drops the monthly partitions of audit_events whose whole range is older
 *       than that (units h, d, w; at least 1 day), records the action in
 *       admin_actions, and prints what it dropped. Rows in the DEFAULT partition
 *       are never pruned.
 */
#ifndef SG_STORE_AUDIT_CLI_H
#define SG_STORE_AUDIT_CLI_H

/*
 * Runs the command in argv as main() received it (argv[1] is "audit",
 * argv[2] the subcommand) against conninfo (libpq URI or key=value; NULL =
 * libpq's defaults). Prints results on stdout and errors on stderr (never the
 * password). Returns the process exit code: 0 success (chains intact), 1 a
 * chain is broken, 2 usage error, 3 database unreachable or refusing.
 */
int sg_audit_cli(int argc, char **argv, const char *conninfo);

#endif
