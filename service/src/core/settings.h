/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The only local configuration of a process: how to reach its stores and where
 * to listen. One row of SG_SETTINGS per setting — parsing, validation, --help
 * and masked --check output all come from the table. Tenant configuration is
 * not a setting: it comes from Redis.
 */
#ifndef SG_CORE_SETTINGS_H
#define SG_CORE_SETTINGS_H

#include "base/err.h"
#include "base/sg.h"

typedef enum sg_setting_type {
    SG_SETTING_STR = 0,
    SG_SETTING_INT,
    SG_SETTING_LEVEL,  /* error|warn|info|debug|trace */
    SG_SETTING_LISTEN, /* host:port or [v6]:port */
    SG_SETTING_URL,    /* scheme://... with one of the schemes in the bounds column */
} sg_setting_type_t;

/* Which commands need a setting to be present (no default). */
#define SG_NEED_NONE    0u
#define SG_NEED_CONTROL 1u /* control, start */

/*  field          env                 type            default                                  min
 * max        secret need             help */
#define SG_SETTINGS(X)                                                                             \
    X(redis_url, "SG_REDIS_URL", URL, "redis://127.0.0.1:6379/0", 0, 0, true, SG_NEED_NONE,        \
      "Redis holding the live configuration (redis://[:password@]host:port/db)")                   \
    X(database_url, "SG_DATABASE_URL", URL, "postgresql://sentinel@127.0.0.1:5432/sentinel", 0, 0, \
      true, SG_NEED_NONE, "PostgreSQL for audit, approvals and history (libpq URI)")               \
    X(listen, "SG_LISTEN", LISTEN, "127.0.0.1:8080", 0, 0, false, SG_NEED_NONE,                    \
      "address to listen on (host:port)")                                                          \
    X(replica_id, "SG_REPLICA_ID", STR, "", 0, 64, false, SG_NEED_NONE,                            \
      "name of this replica in logs and audit (default <host>-<pid>)")                             \
    X(admin_token, "SG_ADMIN_TOKEN", STR, NULL, 16, 512, true, SG_NEED_CONTROL,                    \
      "bearer token of the admin API (at least 16 characters)")                                    \
    X(log_level, "SG_LOG_LEVEL", LEVEL, "info", 0, 0, false, SG_NEED_NONE,                         \
      "error, warn, info, debug or trace")                                                         \
    X(tls_cert, "SG_TLS_CERT", STR, "", 0, 4096, false, SG_NEED_NONE,                              \
      "PEM certificate chain file; serve HTTPS when set (with SG_TLS_KEY)")                        \
    X(tls_key, "SG_TLS_KEY", STR, "", 0, 4096, false, SG_NEED_NONE, "PEM private key file")        \
    X(spool_dir, "SG_SPOOL_DIR", STR, "/var/lib/sentinel-gate/spool", 1, 4096, false,              \
      SG_NEED_NONE, "directory for the audit spool while PostgreSQL is unreachable")               \
    X(max_body, "SG_MAX_BODY", INT, "4194304", 1024, 67108864, false, SG_NEED_NONE,                \
      "largest accepted request body in bytes")                                                    \
    X(drain_ms, "SG_DRAIN_MS", INT, "10000", 0, 600000, false, SG_NEED_NONE,                       \
      "on SIGTERM, how long in-flight requests may take to finish")                                \
    X(recovery_ms, "SG_RECOVERY_MS", INT, "60000", 100, 86400000, false, SG_NEED_NONE,             \
      "control plane: how often Redis is checked against PostgreSQL and repaired")

typedef struct sg_settings {
    char *redis_url;
    char *database_url;
    char *listen;
    char *replica_id;
    char *admin_token;
    char *log_level;
    char *tls_cert;
    char *tls_key;
    char *spool_dir;
    char *max_body;
    char *drain_ms;
    char *recovery_ms;
    /* derived */
    char listen_host[256];
    int listen_port;
    int64_t max_body_bytes;
    int64_t drain_timeout_ms;
    int64_t recovery_interval_ms;
} sg_settings_t;

/*
 * Fills s from defaults and getenv_fn (getenv in production; injectable for
 * tests). needs is a mask of SG_NEED_* for the command being run. On error
 * returns SG_ESETTING with one line in err naming the variable (never its
 * value when it is secret). s must be disposed either way.
 */
int sg_settings_load(sg_settings_t *s, unsigned needs, const char *(*getenv_fn)(const char *),
                     sg_error_t *err) SG_MUSTCHECK;
void sg_settings_dispose(sg_settings_t *s);
/* Writes one line per setting, secrets masked (passwords inside URLs too), to out. */
void sg_settings_print(const sg_settings_t *s, void *file);
/* Writes the --help table of settings to out. */
void sg_settings_print_help(void *file);
/* Copies url into out with any password replaced by "****". */
void sg_settings_mask_url(const char *url, char *out, size_t cap);

#endif
