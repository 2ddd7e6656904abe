/* SPDX-License-Identifier: Apache-2.0 */
/*
 * One key=value line per event on stderr. A disabled level costs one branch and
 * does not evaluate its arguments. The context prints a fixed prefix
 * (req=… sess=… tenant=… tool=…) and the action the caller was doing.
 * Never pass a credential, token or raw tool argument to these macros.
 */
#ifndef SG_BASE_LOG_H
#define SG_BASE_LOG_H

#include "base/sg.h"

typedef enum sg_log_level {
    SG_LOG_LEVEL_ERROR = 0,
    SG_LOG_LEVEL_WARN,
    SG_LOG_LEVEL_INFO,
    SG_LOG_LEVEL_DEBUG,
    SG_LOG_LEVEL_TRACE,
} sg_log_level_t;

/* Every field may be NULL. Borrowed for the duration of the log call. */
typedef struct sg_log_ctx {
    const char *component; /* "gate", "redis", "pg", "upstream:fs" ... */
    const char *req;
    const char *sess;
    const char *tenant;
    const char *tool;
    const char *action;
} sg_log_ctx_t;

extern sg_log_level_t sg_log_level;

/* Parses "error|warn|info|debug|trace"; returns false on anything else. */
bool sg_log_parse_level(const char *s, sg_log_level_t *out);
const char *sg_log_level_name(sg_log_level_t level);

void sg_log_write(sg_log_level_t level, const sg_log_ctx_t *ctx, const char *fmt, ...)
        SG_PRINTF(3, 4);

#define SG_LOG_AT(level, ctx, ...)                     \
    do {                                               \
        if ((level) <= sg_log_level) {                 \
            sg_log_write((level), (ctx), __VA_ARGS__); \
        }                                              \
    } while (0)

#define SG_LOG_ERROR(ctx, ...) SG_LOG_AT(SG_LOG_LEVEL_ERROR, ctx, __VA_ARGS__)
#define SG_LOG_WARN(ctx, ...)  SG_LOG_AT(SG_LOG_LEVEL_WARN, ctx, __VA_ARGS__)
#define SG_LOG_INFO(ctx, ...)  SG_LOG_AT(SG_LOG_LEVEL_INFO, ctx, __VA_ARGS__)
#define SG_LOG_DEBUG(ctx, ...) SG_LOG_AT(SG_LOG_LEVEL_DEBUG, ctx, __VA_ARGS__)
#define SG_LOG_TRACE(ctx, ...) SG_LOG_AT(SG_LOG_LEVEL_TRACE, ctx, __VA_ARGS__)

/*
 * Rate limit for repeated identical failures: at most one line per interval,
 * with the count of suppressed ones. Embed one per failure site.
 */
typedef struct sg_log_limit {
    uint64_t interval_ms;
    uint64_t last_ms;
    uint64_t suppressed;
} sg_log_limit_t;

/* True when a line may be written now; *suppressed receives the count dropped since the last. */
bool sg_log_limit_allow(sg_log_limit_t *l, uint64_t now_ms, uint64_t *suppressed);

#endif
