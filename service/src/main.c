/* SPDX-License-Identifier: Apache-2.0 */
/*
 * sentinel-gate: subcommand dispatch only. Settings come from the
 * environment (core/settings); each command wires the modules it needs.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "control/control.h"
#include "core/settings.h"
#include "gateway/gate.h"
#include "store/audit_cli.h"
#include "store/killswitch_store.h"
#include "store/migrate.h"
#include "store/runtime.h"

#define EXIT_USAGE 2

typedef struct command {
    const char *name;
    unsigned needs;
    bool gate;
    bool control;
    const char *summary;
} command_t;

static const command_t commands[] = {
    { "gate", SG_NEED_NONE, true, false, "run a gate replica: /mcp, /healthz, /readyz, /metrics" },
    { "control", SG_NEED_CONTROL, false, true,
      "run the control plane: /admin/api/v1/..., /admin/, /healthz, /readyz, /metrics" },
    { "start", SG_NEED_CONTROL, true, true, "run gate and control plane in one process, one port" },
    { "migrate", SG_NEED_NONE, false, false,
      "apply migrations/ to PostgreSQL under an advisory lock (idempotent)" },
    { "audit", SG_NEED_NONE, false, false,
      "verify [--tenant T] [--since TIME] | prune --older-than 90d [--dry-run]" },
    { "killswitch", SG_NEED_NONE, false, false,
      "on|off [--tenant T] [--identity I]: flip a kill switch in Redis directly" },
};

static const char *env_get(const char *name)
{
    return getenv(name);
}

static void usage(FILE *f)
{
    fprintf(f, "usage: sentinel-gate <command> [--help] [--check]\n\ncommands:\n");
    for (size_t i = 0; i < SG_ARRAY_LEN(commands); i++) {
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(f, "\n");
    sg_settings_print_help(f);
}

static int run_migrate(const sg_settings_t *s)
{
    sg_error_t err = { 0 };
    if (sg_migrate_run(s->database_url, sg_migrate_default_dir(), &err) != SG_OK) {
        fprintf(stderr, "sentinel-gate migrate: %s\n", err.msg);
        return 1;
    }
    return 0;
}

/* sentinel-gate killswitch on|off [--tenant T] [--identity I] */
static int run_killswitch(int argc, char **argv, const sg_settings_t *s)
{
    const char *tenant = NULL, *identity = NULL;
    int engaged = -1;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "on") == 0 || strcmp(argv[i], "off") == 0) {
            engaged = strcmp(argv[i], "on") == 0;
        } else if (strcmp(argv[i], "--tenant") == 0 && i + 1 < argc) {
            tenant = argv[++i];
        } else if (strcmp(argv[i], "--identity") == 0 && i + 1 < argc) {
            identity = argv[++i];
        } else if (strcmp(argv[i], "--check") != 0) {
            fprintf(stderr, "sentinel-gate killswitch: unexpected '%.64s'\n", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (engaged < 0) {
        fprintf(stderr, "usage: sentinel-gate killswitch on|off [--tenant T] [--identity I]\n");
        return EXIT_USAGE;
    }
    sg_error_t err = { 0 };
    int rc = sg_killswitch_store_set(s->redis_url, tenant, identity, engaged == 1, &err);
    if (rc != SG_OK) {
        fprintf(stderr, "sentinel-gate killswitch: %s\n", err.msg);
        return rc == SG_EINVAL || rc == SG_ESETTING ? EXIT_USAGE : 1;
    }
    printf("kill switch %s: %s%s%s%s\n", engaged ? "ENGAGED" : "released",
           tenant != NULL ? "tenant " : "global", tenant != NULL ? tenant : "",
           identity != NULL ? " identity " : "", identity != NULL ? identity : "");
    return 0;
}

static int run_server(const command_t *cmd, const sg_settings_t *s)
{
    sg_error_t err = { 0 };
    sg_gate_t *gate = NULL;
    sg_control_t *control = NULL;
    int rc = 1;
    sg_runtime_t *rt = sg_runtime_new(s, &err);
    if (rt == NULL) {
        fprintf(stderr, "sentinel-gate %s: %s\n", cmd->name, err.msg);
        return EXIT_USAGE;
    }
    if (cmd->control && (control = sg_control_new(rt, &err)) == NULL) {
        goto out;
    }
    if (cmd->gate && (gate = sg_gate_new(rt, &err)) == NULL) {
        goto out;
    }
    if (sg_runtime_run(rt, &err) == SG_OK) {
        rc = 0;
    }
out:
    sg_runtime_close_stores(rt);
    if (rc != 0) {
        fprintf(stderr, "sentinel-gate %s: %s\n", cmd->name, err.msg);
        if (err.code == SG_ESETTING) {
            rc = EXIT_USAGE;
        }
    }
    sg_gate_free(gate);
    sg_control_free(control);
    sg_runtime_free(rt);
    return rc;
}

int main(int argc, char **argv)
{
    /* a vanished peer must be an EPIPE error, never a fatal signal */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? EXIT_USAGE : 0;
    }
    const command_t *cmd = NULL;
    for (size_t i = 0; i < SG_ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            cmd = &commands[i];
        }
    }
    if (cmd == NULL) {
        fprintf(stderr, "sentinel-gate: unknown command '%.64s' (try --help)\n", argv[1]);
        return EXIT_USAGE;
    }
    bool check = false;
    bool takes_args = strcmp(cmd->name, "killswitch") == 0 || strcmp(cmd->name, "audit") == 0;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: sentinel-gate %s [--check]\n\n%s\n\n", cmd->name, cmd->summary);
            sg_settings_print_help(stdout);
            return 0;
        } else if (strcmp(argv[i], "--check") == 0) {
            check = true;
        } else if (!takes_args) {
            fprintf(stderr, "sentinel-gate %s: unknown option '%.64s'\n", cmd->name, argv[i]);
            return EXIT_USAGE;
        }
    }
    sg_settings_t s;
    sg_error_t err = { 0 };
    if (sg_settings_load(&s, cmd->needs, env_get, &err) != SG_OK) {
        fprintf(stderr, "sentinel-gate %s: %s\n", cmd->name, err.msg);
        sg_settings_dispose(&s);
        return EXIT_USAGE;
    }
    sg_log_parse_level(s.log_level, &sg_log_level);
    int rc;
    if (check) {
        sg_settings_print(&s, stdout);
        rc = 0;
    } else if (strcmp(cmd->name, "migrate") == 0) {
        rc = run_migrate(&s);
    } else if (strcmp(cmd->name, "killswitch") == 0) {
        rc = run_killswitch(argc, argv, &s);
    } else if (strcmp(cmd->name, "audit") == 0) {
        rc = sg_audit_cli(argc, argv, s.database_url);
    } else {
        rc = run_server(cmd, &s);
    }
    sg_settings_dispose(&s);
    return rc;
}
