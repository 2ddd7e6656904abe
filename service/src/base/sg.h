/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vocabulary every module uses: attributes, container_of, array length,
 * the borrowed string slice and the always-on invariant check. Tiny on purpose.
 */
#ifndef SG_BASE_SG_H
#define SG_BASE_SG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define SG_MUSTCHECK       __attribute__((warn_unused_result))
#define SG_PRINTF(fmt, va) __attribute__((format(printf, fmt, va)))
#define SG_NORETURN        __attribute__((noreturn))
#define SG_UNUSED          __attribute__((unused))

#define SG_CONTAINER_OF(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))
#define SG_ARRAY_LEN(a)                    (sizeof(a) / sizeof((a)[0]))
#define SG_MIN(a, b)                       ((a) < (b) ? (a) : (b))
#define SG_MAX(a, b)                       ((a) > (b) ? (a) : (b))

/* A borrowed byte slice: never owning, never assumed NUL-terminated. */
typedef struct sg_str {
    const char *ptr;
    size_t len;
} sg_str_t;

#define SG_STR_LIT(s) ((sg_str_t){ (s), sizeof(s) - 1 })
#define SG_STR_NULL   ((sg_str_t){ NULL, 0 })

static inline sg_str_t sg_str(const char *s)
{
    return (sg_str_t){ s, s != NULL ? strlen(s) : 0 };
}

static inline sg_str_t sg_str_n(const char *s, size_t len)
{
    return (sg_str_t){ s, len };
}

static inline bool sg_str_eq(sg_str_t a, sg_str_t b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.ptr, b.ptr, a.len) == 0);
}

static inline bool sg_str_eq_cstr(sg_str_t a, const char *b)
{
    return sg_str_eq(a, sg_str(b));
}

static inline bool sg_str_has_prefix(sg_str_t a, const char *prefix)
{
    size_t n = strlen(prefix);
    return a.len >= n && memcmp(a.ptr, prefix, n) == 0;
}

/* Logs file and line and aborts. Always compiled in. */
SG_NORETURN void sg_bug(const char *file, int line, const char *cond);
#define SG_BUG_ON(cond)                        \
    do {                                       \
        if (__builtin_expect(!!(cond), 0)) {   \
            sg_bug(__FILE__, __LINE__, #cond); \
        }                                      \
    } while (0)

#endif
