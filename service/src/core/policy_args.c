/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The argument side of the policy: dotted argument paths, the per-argument
 * tests (regex, equals, prefix, max_len, path normalisation), globs and the
 * regex runner. Works on raw spans of validated JSON (base/json.h); the only
 * memory it touches on the hot path is the evaluation context's buffers.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"
#include "core/policy_int.h"

#define MAX_SEGMENTS 32
#define MAX_INDEX    100000000L

/* ---- globs ----------------------------------------------------------------- */

bool sg_policy_glob(const char *pattern, sg_str_t s)
{
    const char *p = pattern, *star = NULL;
    size_t i = 0, mark = 0;
    while (i < s.len) {
        if (*p == '*') {
            star = p++;
            mark = i;
        } else if (*p != '\0' && (*p == '?' || *p == s.ptr[i])) {
            p++;
            i++;
        } else if (star != NULL) {
            p = star + 1;
            i = ++mark;
        } else {
            return false;
        }
    }
    while (*p == '*') {
        p++;
    }
    return *p == '\0';
}

bool sg_policy_glob_is_literal(const char *pattern)
{
    return strpbrk(pattern, "*?") == NULL;
}

/* ---- paths ----------------------------------------------------------------- */

/* Removes the last segment written after root (the caller knows there is one). */
static void pop_segment(sg_buf_t *out, size_t root)
{
    const char *start = out->data + root;
    const char *slash = memrchr(start, '/', out->len - root);
    out->len = slash != NULL ? (size_t)(slash - out->data) : root;
    out->data[out->len] = '\0';
}

void sg_policy_normalise_path(sg_str_t in, sg_buf_t *out)
{
    bool abs = in.len > 0 && in.ptr[0] == '/', trailing = false;
    size_t base = out->len, kept = 0, i = 0;
    if (abs) {
        sg_buf_append_char(out, '/');
    }
    size_t root = base + (abs ? 1 : 0);
    while (i < in.len) {
        const char *seg = in.ptr + i, *slash = memchr(seg, '/', in.len - i);
        size_t n = slash != NULL ? (size_t)(slash - seg) : in.len - i;
        i += n + 1;
        trailing = true;
        if (n == 0 || (n == 1 && seg[0] == '.')) {
            continue;
        }
        if (n == 2 && seg[0] == '.' && seg[1] == '.') {
            if (kept > 0) {
                pop_segment(out, root);
                kept--;
                continue;
            }
            if (abs) {
                continue; /* /.. is / */
            }
        } else {
            kept++;
        }
        if (out->len > root) {
            sg_buf_append_char(out, '/');
        }
        sg_buf_append(out, seg, n);
        trailing = slash == NULL && n == 2 && seg[0] == '.' && seg[1] == '.';
    }
    if (in.len > 0 && in.ptr[in.len - 1] == '/') {
        trailing = true;
    }
    if (out->len == base) {
        sg_buf_append_char(out, '.');
    } else if (trailing && out->len > root) {
        sg_buf_append_char(out, '/');
    }
}

static void push_segment(sg_policy_argtest_t *t, sg_buf_t *seg)
{
    t->segs = sg_policy_grow(t->segs, t->nsegs, sizeof(*t->segs));
    sg_policy_seg_t *s = &t->segs[t->nsegs++];
    s->index = -1;
    if (seg->len > 0 && seg->len <= 9 && strspn(seg->data, "0123456789") == seg->len) {
        long v = strtol(seg->data, NULL, 10);
        s->index = v <= MAX_INDEX ? v : -1;
    }
    s->key = sg_xmemdup(seg->len != 0 ? seg->data : "", seg->len);
    sg_buf_reset(seg);
}

int sg_policy_path_parse(sg_str_t path, sg_policy_argtest_t *t, sg_error_t *err)
{
    sg_buf_t seg = SG_BUF_INIT;
    int rc = SG_OK;
    for (size_t i = 0; i <= path.len && rc == SG_OK; i++) {
        char c = '.';
        if (i < path.len) {
            c = path.ptr[i];
        }
        if (c == '\\' && i + 1 < path.len && (path.ptr[i + 1] == '.' || path.ptr[i + 1] == '\\')) {
            i++;
            sg_buf_append_char(&seg, path.ptr[i]);
        } else if (c == '\\') {
            rc = sg_error_set(err, SG_EINVAL, "'\\' must be followed by '.' or '\\'");
        } else if (c != '.') {
            sg_buf_append_char(&seg, c);
        } else if (seg.len == 0) {
            rc = sg_error_set(err, SG_EINVAL, "empty segment in argument path");
        } else if (t->nsegs == MAX_SEGMENTS) {
            rc = sg_error_set(err, SG_EINVAL, "more than %d segments", MAX_SEGMENTS);
        } else {
            push_segment(t, &seg);
        }
    }
    sg_buf_dispose(&seg);
    return rc;
}

/* The value at the test's path, or false when it is not there. */
static bool resolve(const sg_policy_argtest_t *t, sg_str_t args, sg_str_t *val)
{
    sg_str_t cur = args.len != 0 ? args : SG_STR_LIT("{}");
    for (size_t i = 0; i < t->nsegs; i++) {
        sg_json_type_t type = sg_json_type(cur);
        if (type == SG_JSON_OBJECT) {
            if (sg_json_object_get(cur, t->segs[i].key, &cur) != SG_OK) {
                return false;
            }
            continue;
        }
        if (type != SG_JSON_ARRAY || t->segs[i].index < 0) {
            return false;
        }
        sg_json_iter_t it = SG_JSON_ITER_INIT(cur);
        sg_str_t item = SG_STR_NULL;
        long k = -1;
        while (k < t->segs[i].index && sg_json_array_next(&it, &item) == 1) {
            k++;
        }
        if (k != t->segs[i].index) {
            return false;
        }
        cur = item;
    }
    *val = sg_json_trim(cur);
    return true;
}

/* ---- tests ----------------------------------------------------------------- */

sg_policy_tri_t sg_policy_regex_test(sg_policy_ctx_t *ctx, const pcre2_code *re, sg_str_t s)
{
    PCRE2_SPTR subject = (PCRE2_SPTR)(s.ptr != NULL ? s.ptr : "");
    int rc = pcre2_jit_match(re, subject, s.len, 0, 0, ctx->md, ctx->mctx);
    if (rc == PCRE2_ERROR_JIT_BADOPTION) { /* no JIT code for this pattern: interpret it */
        rc = pcre2_match(re, subject, s.len, 0, 0, ctx->md, ctx->mctx);
    }
    if (rc >= 0) {
        return SG_POLICY_YES;
    }
    return rc == PCRE2_ERROR_NOMATCH ? SG_POLICY_NO : SG_POLICY_UNSURE;
}

void sg_policy_note(sg_buf_t *why, const char *fmt, ...)
{
    if (why == NULL) {
        return; /* the hot path: no trace, no formatting */
    }
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    sg_buf_reset(why);
    sg_buf_append_cstr(why, n >= 0 ? msg : "?");
}

static size_t count_code_points(sg_str_t s)
{
    size_t n = 0;
    for (size_t i = 0; i < s.len; i++) {
        n += ((unsigned char)s.ptr[i] & 0xc0) != 0x80 ? 1 : 0;
    }
    return n;
}

/* The decoded string (borrowed from v or ctx->value), or a scalar's JSON text. */
static bool value_text(sg_policy_ctx_t *ctx, sg_str_t v, sg_str_t *text)
{
    if (sg_json_type(v) != SG_JSON_STRING) {
        *text = v;
        return true;
    }
    if (sg_json_string_plain(v, text)) {
        return true;
    }
    sg_buf_reset(&ctx->value);
    if (sg_json_string_decode(v, &ctx->value) != SG_OK) {
        return false;
    }
    *text = sg_buf_str(&ctx->value);
    return true;
}

static bool equals_ok(const sg_policy_argtest_t *t, sg_json_type_t type, sg_str_t text)
{
    if (t->equals_type == SG_JSON_STRING) {
        return type == SG_JSON_STRING && sg_str_eq(text, sg_str_n(t->equals, t->equals_len));
    }
    if (t->equals_type == SG_JSON_NUMBER) {
        char num[64];
        if (type != SG_JSON_NUMBER || text.len >= sizeof(num)) {
            return false;
        }
        memcpy(num, text.ptr, text.len);
        num[text.len] = '\0';
        return strtod(num, NULL) == t->equals_num;
    }
    return type == t->equals_type;
}

static bool prefix_ok(const sg_policy_argtest_t *t, sg_str_t text)
{
    if (text.len < t->prefix_len || memcmp(text.ptr, t->prefix, t->prefix_len) != 0) {
        return false;
    }
    if (t->type != SG_POLICY_ARG_PATH || text.len == t->prefix_len) {
        return true;
    }
    /* whole segments only: /workspace matches /workspace/x, never /workspace-evil */
    return t->prefix[t->prefix_len - 1] == '/' || text.ptr[t->prefix_len] == '/';
}

/* The tests of t on one reading of the value. */
static sg_policy_tri_t run_checks(const sg_policy_argtest_t *t, sg_policy_ctx_t *ctx,
                                  sg_json_type_t type, sg_str_t text, sg_buf_t *why)
{
    if (t->has_equals && !equals_ok(t, type, text)) {
        sg_policy_note(why, "args.%s: not equal", t->path);
        return SG_POLICY_NO;
    }
    if (t->prefix != NULL && !prefix_ok(t, text)) {
        sg_policy_note(why, "args.%s: prefix does not match", t->path);
        return SG_POLICY_NO;
    }
    if (t->max_len != SG_POLICY_NO_MAX_LEN && count_code_points(text) > (size_t)t->max_len) {
        sg_policy_note(why, "args.%s: longer than %lld", t->path, (long long)t->max_len);
        return SG_POLICY_NO;
    }
    if (t->regex != NULL) {
        sg_policy_tri_t m = sg_policy_regex_test(ctx, t->regex, text);
        if (m != SG_POLICY_YES) {
            sg_policy_note(why, "args.%s: %s", t->path,
                           m == SG_POLICY_NO ? "regex does not match"
                                             : "regex hit a resource limit");
            return m;
        }
    }
    return SG_POLICY_YES;
}

/*
 * One pass over a string: SG_POLICY_PATH_NONE when it is not path-like (no '/', or a
 * "://": URLs are not file paths), SG_POLICY_PATH_NORMAL when normalising would not
 * change it, SG_POLICY_PATH_DIRTY when it has an empty, "." or ".." segment.
 */
enum sg_policy_path_kind { SG_POLICY_PATH_NONE, SG_POLICY_PATH_NORMAL, SG_POLICY_PATH_DIRTY };

static enum sg_policy_path_kind path_kind(sg_str_t s)
{
    bool slash = false, dirty = s.len == 0;
    size_t start = 0;
    for (size_t i = 0; i <= s.len; i++) {
        if (i < s.len && s.ptr[i] != '/') {
            if (s.ptr[i] == ':' && i + 2 < s.len && s.ptr[i + 1] == '/' && s.ptr[i + 2] == '/') {
                return SG_POLICY_PATH_NONE;
            }
            continue;
        }
        size_t n = i - start;
        slash = slash || i < s.len;
        dirty = dirty || (n == 0 && start != 0 && i != s.len) || (n == 1 && s.ptr[start] == '.') ||
                (n == 2 && s.ptr[start] == '.' && s.ptr[start + 1] == '.');
        start = i + 1;
    }
    return !slash ? SG_POLICY_PATH_NONE : dirty ? SG_POLICY_PATH_DIRTY : SG_POLICY_PATH_NORMAL;
}

sg_policy_tri_t sg_policy_argtest_run(const sg_policy_argtest_t *t, sg_policy_ctx_t *ctx,
                                      sg_str_t arguments, sg_buf_t *why)
{
    sg_str_t v, text;
    if (!resolve(t, arguments, &v)) {
        sg_policy_note(why, "args.%s: not present", t->path);
        return SG_POLICY_NO;
    }
    sg_json_type_t type = sg_json_type(v);
    if (type == SG_JSON_OBJECT || type == SG_JSON_ARRAY) {
        sg_policy_note(why, "args.%s: an %s, not a scalar", t->path,
                       type == SG_JSON_OBJECT ? "object" : "array");
        return SG_POLICY_UNSURE;
    }
    if (!value_text(ctx, v, &text) || (t->type == SG_POLICY_ARG_PATH && type != SG_JSON_STRING)) {
        sg_policy_note(why, "args.%s: a path test needs a string", t->path);
        return SG_POLICY_NO;
    }
    enum sg_policy_path_kind kind = type == SG_JSON_STRING && t->type != SG_POLICY_ARG_STRING
                                            ? path_kind(text)
                                            : SG_POLICY_PATH_NONE;
    if (kind == SG_POLICY_PATH_NONE && t->type == SG_POLICY_ARG_PATH && type == SG_JSON_STRING) {
        kind = SG_POLICY_PATH_DIRTY; /* a typed path without '/' ("", ".", "a") still normalises */
    }
    if (kind == SG_POLICY_PATH_NONE) {
        return run_checks(t, ctx, type, text, why);
    }
    sg_str_t norm = text;
    if (kind == SG_POLICY_PATH_DIRTY) {
        sg_buf_reset(&ctx->norm);
        sg_policy_normalise_path(text, &ctx->norm);
        norm = sg_buf_str(&ctx->norm);
    }
    if (t->type == SG_POLICY_ARG_PATH || sg_str_eq(norm, text)) {
        return run_checks(t, ctx, type, norm, why);
    }
    sg_policy_tri_t a = run_checks(t, ctx, type, text, why);
    sg_policy_tri_t b = run_checks(t, ctx, type, norm, why);
    if (a != b) {
        sg_policy_note(why, "args.%s: the path reads differently once normalised", t->path);
        return SG_POLICY_UNSURE;
    }
    return a;
}

void sg_policy_argtest_dispose(sg_policy_argtest_t *t)
{
    for (size_t i = 0; i < t->nsegs; i++) {
        free(t->segs[i].key);
    }
    free(t->segs);
    free(t->path);
    pcre2_code_free(t->regex);
    free(t->equals);
    free(t->prefix);
}
