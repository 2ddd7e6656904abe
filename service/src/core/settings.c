/* SPDX-License-Identifier: Apache-2.0 */
/* Reads SG_SETTINGS from the environment; see settings.h. */
#include "core/settings.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"

typedef struct row {
    const char *env;
    sg_setting_type_t type;
    const char *def;
    int64_t min;
    int64_t max;
    bool secret;
    unsigned need;
    const char *help;
    size_t offset;
} row_t;

static const row_t rows[] = {
#define SG_SETTING_ROW(field, env, type, def, min, max, secret, need, help) \
    { env, SG_SETTING_##type, def, min, max, secret, need, help, offsetof(sg_settings_t, field) },
    SG_SETTINGS(SG_SETTING_ROW)
#undef SG_SETTING_ROW
};

static char **slot(sg_settings_t *s, const row_t *r)
{
    return (char **)(void *)((char *)s + r->offset);
}

static int parse_int(const char *v, int64_t *out)
{
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (errno != 0 || end == v || *end != '\0') {
        return SG_ESETTING;
    }
    *out = n;
    return SG_OK;
}

static int parse_listen(const char *v, char *host, size_t cap, int *port)
{
    const char *colon;
    const char *h = v;
    size_t hlen;
    if (v[0] == '[') {
        const char *close = strchr(v, ']');
        if (close == NULL || close[1] != ':') {
            return SG_ESETTING;
        }
        h = v + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(v, ':');
        if (colon == NULL) {
            return SG_ESETTING;
        }
        hlen = (size_t)(colon - v);
    }
    int64_t p;
    if (hlen == 0 || hlen >= cap || parse_int(colon + 1, &p) != SG_OK || p < 0 || p > 65535) {
        return SG_ESETTING;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return SG_OK;
}

static bool url_scheme_ok(const char *env, const char *v)
{
    if (strcmp(env, "SG_REDIS_URL") == 0) {
        return strncmp(v, "redis://", 8) == 0;
    }
    return strncmp(v, "postgresql://", 13) == 0 || strncmp(v, "postgres://", 11) == 0;
}

static int check(sg_settings_t *s, const row_t *r, const char *v, sg_error_t *err)
{
    size_t len = strlen(v);
    switch (r->type) {
    case SG_SETTING_STR:
        if ((int64_t)len > r->max || (len > 0 && (int64_t)len < r->min)) {
            return sg_error_set(err, SG_ESETTING, "%s: length must be %lld..%lld characters",
                                r->env, (long long)r->min, (long long)r->max);
        }
        break;
    case SG_SETTING_INT: {
        int64_t n;
        if (parse_int(v, &n) != SG_OK || n < r->min || n > r->max) {
            return sg_error_set(err, SG_ESETTING, "%s: must be an integer in %lld..%lld", r->env,
                                (long long)r->min, (long long)r->max);
        }
        break;
    }
    case SG_SETTING_LEVEL: {
        sg_log_level_t lvl;
        if (!sg_log_parse_level(v, &lvl)) {
            return sg_error_set(err, SG_ESETTING,
                                "%s: must be one of error, warn, info, debug, trace", r->env);
        }
        break;
    }
    case SG_SETTING_LISTEN:
        if (parse_listen(v, s->listen_host, sizeof(s->listen_host), &s->listen_port) != SG_OK) {
            return sg_error_set(err, SG_ESETTING,
                                "%s: must be host:port (for example 127.0.0.1:8080)", r->env);
        }
        break;
    case SG_SETTING_URL:
        if (!url_scheme_ok(r->env, v) || len > 4096) {
            return sg_error_set(err, SG_ESETTING, "%s: not a %s URL", r->env,
                                strcmp(r->env, "SG_REDIS_URL") == 0 ? "redis://" : "postgresql://");
        }
        break;
    }
    return SG_OK;
}

int sg_settings_load(sg_settings_t *s, unsigned needs, const char *(*getenv_fn)(const char *),
                     sg_error_t *err)
{
    memset(s, 0, sizeof(*s));
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        const row_t *r = &rows[i];
        const char *v = getenv_fn(r->env);
        if (v != NULL && v[0] == '\0') {
            v = NULL;
        }
        if (v == NULL) {
            if (r->def == NULL) {
                if ((r->need & needs) != 0) {
                    return sg_error_set(err, SG_ESETTING, "%s: required but not set (%s)", r->env,
                                        r->help);
                }
                *slot(s, r) = sg_xstrdup("");
                continue;
            }
            v = r->def;
        }
        *slot(s, r) = sg_xstrdup(v);
        if (v[0] == '\0' && r->def != NULL && r->def[0] == '\0') {
            continue;
        }
        int rc = check(s, r, v, err);
        if (rc != SG_OK) {
            return rc;
        }
    }
    if ((s->tls_cert[0] == '\0') != (s->tls_key[0] == '\0')) {
        return sg_error_set(err, SG_ESETTING,
                            "SG_TLS_CERT: SG_TLS_CERT and SG_TLS_KEY go together");
    }
    if (s->replica_id[0] == '\0') {
        char host[64] = "host";
        gethostname(host, sizeof(host) - 1);
        host[sizeof(host) - 1] = '\0';
        char id[96];
        snprintf(id, sizeof(id), "%s-%d", host, (int)getpid());
        free(s->replica_id);
        s->replica_id = sg_xstrdup(id);
    }
    if (parse_int(s->max_body, &s->max_body_bytes) != SG_OK ||
        parse_int(s->drain_ms, &s->drain_timeout_ms) != SG_OK ||
        parse_int(s->recovery_ms, &s->recovery_interval_ms) != SG_OK) {
        return sg_error_set(err, SG_ESETTING, "internal: derived settings");
    }
    return SG_OK;
}

void sg_settings_dispose(sg_settings_t *s)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        free(*slot(s, &rows[i]));
        *slot(s, &rows[i]) = NULL;
    }
}

void sg_settings_mask_url(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://");
    const char *at = scheme != NULL ? strchr(scheme + 3, '@') : NULL;
    const char *slash = scheme != NULL ? strchr(scheme + 3, '/') : NULL;
    if (at != NULL && slash != NULL && slash < at) {
        at = NULL;
    }
    const char *colon = at != NULL ? memchr(scheme + 3, ':', (size_t)(at - scheme - 3)) : NULL;
    if (colon == NULL) {
        snprintf(out, cap, "%s", url);
        return;
    }
    snprintf(out, cap, "%.*s:****%s", (int)(colon - url), url, at);
}

void sg_settings_print(const sg_settings_t *s, void *file)
{
    FILE *f = file;
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        const row_t *r = &rows[i];
        const char *v = *slot((sg_settings_t *)s, r);
        char masked[4200];
        if (r->type == SG_SETTING_URL) {
            sg_settings_mask_url(v, masked, sizeof(masked));
            v = masked;
        } else if (r->secret && v[0] != '\0') {
            v = "****";
        }
        fprintf(f, "%s=%s\n", r->env, v);
    }
}

void sg_settings_print_help(void *file)
{
    FILE *f = file;
    fprintf(f, "Settings (environment):\n");
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        const row_t *r = &rows[i];
        fprintf(f, "  %-16s %s%s%s%s\n", r->env, r->help, r->def != NULL ? " [default: " : "",
                r->def != NULL ? (r->def[0] != 0 ? r->def : "(none)")
                               : " [required for control, start]",
                r->def != NULL ? "]" : "");
    }
}
