/* SPDX-License-Identifier: Apache-2.0 */
#include "base/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

sg_log_level_t sg_log_level = SG_LOG_LEVEL_INFO;

static const char *const names[] = { "error", "warn", "info", "debug", "trace" };

bool sg_log_parse_level(const char *s, sg_log_level_t *out)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(names); i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (sg_log_level_t)i;
            return true;
        }
    }
    return false;
}

const char *sg_log_level_name(sg_log_level_t level)
{
    return (size_t)level < SG_ARRAY_LEN(names) ? names[level] : "?";
}

static size_t put_field(char *out, size_t cap, size_t at, const char *key, const char *val)
{
    if (val == NULL || at >= cap) {
        return at;
    }
    int n = snprintf(out + at, cap - at, " %s=%s", key, val);
    return n > 0 ? at + (size_t)n : at;
}

void sg_log_write(sg_log_level_t level, const sg_log_ctx_t *ctx, const char *fmt, ...)
{
    char line[2048];
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    int n = snprintf(line, sizeof(line), "ts=%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ level=%s",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, sg_log_level_name(level));
    size_t at = n > 0 ? (size_t)n : 0;
    if (ctx != NULL) {
        at = put_field(line, sizeof(line), at, "comp", ctx->component);
        at = put_field(line, sizeof(line), at, "req", ctx->req);
        at = put_field(line, sizeof(line), at, "sess", ctx->sess);
        at = put_field(line, sizeof(line), at, "tenant", ctx->tenant);
        at = put_field(line, sizeof(line), at, "tool", ctx->tool);
    }
    if (at + 7 < sizeof(line)) {
        memcpy(line + at, " msg=\"", 6);
        at += 6;
        va_list ap;
        va_start(ap, fmt);
        n = vsnprintf(line + at, sizeof(line) - at, fmt, ap);
        va_end(ap);
        if (n > 0) {
            at = SG_MIN(at + (size_t)n, sizeof(line) - 1);
        }
        /* keep one line per event: newlines and quotes in messages are neutralised */
        for (size_t i = (size_t)(at - (size_t)(n > 0 ? n : 0)); i < at; i++) {
            if (line[i] == '\n' || line[i] == '\r') {
                line[i] = ' ';
            } else if (line[i] == '"') {
                line[i] = '\'';
            }
        }
        at = SG_MIN(at, sizeof(line) - 2);
        line[at++] = '"';
        line[at] = '\0';
    }
    if (ctx != NULL && ctx->action != NULL) {
        at = SG_MIN(at, sizeof(line) - 1);
        int k = snprintf(line + at, sizeof(line) - at, " action=\"%s\"", ctx->action);
        if (k > 0) {
            at = SG_MIN(at + (size_t)k, sizeof(line) - 1);
        }
    }
    line[at] = '\0';
    fprintf(stderr, "%s\n", line);
}

bool sg_log_limit_allow(sg_log_limit_t *l, uint64_t now_ms, uint64_t *suppressed)
{
    if (l->last_ms != 0 && now_ms - l->last_ms < l->interval_ms) {
        l->suppressed++;
        return false;
    }
    if (suppressed != NULL) {
        *suppressed = l->suppressed;
    }
    l->suppressed = 0;
    l->last_ms = now_ms != 0 ? now_ms : 1;
    return true;
}
