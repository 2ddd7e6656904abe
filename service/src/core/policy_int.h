/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals of the policy module, shared by policy_load.c (compile),
 * policy.c (decisions, visibility, classification) and policy_args.c
 * (argument paths and tests, globs). Nothing outside the module includes it.
 */
#ifndef SG_CORE_POLICY_INT_H
#define SG_CORE_POLICY_INT_H

#include <pcre2.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/mem.h"
#include "core/domains.h"
#include "core/policy.h"

#define SG_POLICY_NO_MAX_LEN (-1)

/*
 * Makes room for element n of an array that grows by doubling: its capacity is
 * always the next power of two above the count, so no capacity field is kept.
 */
static inline void *sg_policy_grow(void *v, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0) {
        return v;
    }
    return sg_xrealloc(v, (n == 0 ? 1 : 2 * n) * size);
}

/* One segment of a dotted argument path: an object key, or an array index when decimal. */
typedef struct sg_policy_seg {
    char *key;  /* decoded, NUL-terminated */
    long index; /* >= 0 when the key is a decimal number, else -1 */
} sg_policy_seg_t;

/*
 * How a test reads a string. AUTO (no "type"): a path-like string (has '/',
 * no "://") is tested as written and normalised, and readings that disagree
 * make the test uncertain (it fails closed). PATH: normalised only. STRING:
 * as written only.
 */
typedef enum sg_policy_argtype {
    SG_POLICY_ARG_AUTO = 0,
    SG_POLICY_ARG_PATH,
    SG_POLICY_ARG_STRING,
} sg_policy_argtype_t;

typedef struct sg_policy_argtest {
    char *path; /* as written in the rule, for traces */
    sg_policy_seg_t *segs;
    size_t nsegs;
    sg_policy_argtype_t type;
    pcre2_code *regex; /* NULL = no regex test */
    bool has_equals;
    sg_json_type_t equals_type; /* SG_JSON_STRING, NUMBER, TRUE, FALSE or NULL */
    char *equals;               /* decoded string (normalised for paths) */
    size_t equals_len;
    double equals_num;
    char *prefix; /* NULL = no prefix test; normalised (no trailing '/') for paths */
    size_t prefix_len;
    int64_t max_len; /* in code points; SG_POLICY_NO_MAX_LEN = none */
} sg_policy_argtest_t;

#define SG_POLICY_CLASS_BIT(c) (1u << (unsigned)(c))

typedef struct sg_policy_rule {
    char *name;
    char *reason; /* may be NULL */
    int64_t priority;
    sg_decision_t action;
    bool shadow;
    char **tools; /* globs */
    size_t ntools;
    bool tools_literal; /* no * or ? in any of them: compared with memcmp */
    pcre2_code **tool_regexes;
    size_t ntool_regexes;
    char **upstreams;
    size_t nupstreams;
    char **methods; /* globs */
    size_t nmethods;
    char **roles;
    size_t nroles;
    char **identities;
    size_t nidentities;
    unsigned classes; /* SG_POLICY_CLASS_BIT()s; 0 = any class */
    sg_policy_argtest_t *args;
    size_t nargs;
    sg_domain_list_t *domains; /* NULL = no args_domain test */
} sg_policy_rule_t;

/* Rules indexed by an exact key (tool name or upstream name): positions in the total order. */
typedef struct sg_policy_bucket {
    char *key;
    uint32_t *rules; /* ascending */
    size_t n;
} sg_policy_bucket_t;

typedef struct sg_policy_index {
    sg_policy_bucket_t *slots; /* open addressing, cap a power of two; key NULL = empty */
    size_t cap;
} sg_policy_index_t;

typedef enum sg_policy_no_match {
    SG_POLICY_NO_MATCH_DENY = 0,
    SG_POLICY_NO_MATCH_ALLOW_NON_DESTRUCTIVE,
    SG_POLICY_NO_MATCH_ALLOW,
} sg_policy_no_match_t;

typedef struct sg_policy_class_override {
    char *tool;
    sg_tool_class_t cls;
} sg_policy_class_override_t;

struct sg_policy {
    int refcnt;
    sg_policy_rule_t *rules; /* in the total order */
    size_t nrules;
    bool has_shadow;
    sg_policy_index_t by_tool;     /* rules whose tool patterns are all literal */
    sg_policy_index_t by_upstream; /* other rules with an upstream list */
    uint32_t *generic;             /* the rest, ascending */
    size_t ngeneric;
    sg_policy_class_override_t *classes; /* sorted by tool */
    size_t nclasses;
    sg_policy_no_match_t no_match;
    bool approve_destructive;
};

struct sg_policy_ctx {
    pcre2_match_data *md;
    pcre2_match_context *mctx; /* match limits and the JIT stack */
    pcre2_jit_stack *jit_stack;
    sg_buf_t value; /* a decoded argument string */
    sg_buf_t norm;  /* a normalised path */
    sg_domains_scan_t *scan;
    bool scanned; /* scan holds this evaluation's arguments */
};

/* A condition's outcome; UNSURE (resource limits, unexpected shapes) fails closed. */
typedef enum sg_policy_tri {
    SG_POLICY_NO = 0,
    SG_POLICY_YES,
    SG_POLICY_UNSURE,
} sg_policy_tri_t;

/* ---- policy_args.c ---- */

/* Replaces the text in why (a trace note) with the formatted message; why NULL: no-op. */
void sg_policy_note(sg_buf_t *why, const char *fmt, ...) SG_PRINTF(2, 3);

/* Glob with * (any run, also empty) and ? (one byte); everything else literal. */
bool sg_policy_glob(const char *pattern, sg_str_t s);
bool sg_policy_glob_is_literal(const char *pattern);
/*
 * Resolves '.', '..' and repeated '/' of a path (never above the root of an
 * absolute path; leading '..' of a relative path are kept). The result keeps a
 * trailing '/' when the input had one or ended in '.' or '..'. Appends to out.
 */
void sg_policy_normalise_path(sg_str_t in, sg_buf_t *out);
/* Parses a dotted path ("a.b.0", "a\.b"); SG_EINVAL with a message when malformed. */
int sg_policy_path_parse(sg_str_t path, sg_policy_argtest_t *t, sg_error_t *err) SG_MUSTCHECK;
/* Runs a regex with the context's match data; UNSURE on a resource limit or error. */
sg_policy_tri_t sg_policy_regex_test(sg_policy_ctx_t *ctx, const pcre2_code *re, sg_str_t s);
/*
 * One argument test against the arguments object. YES/NO, or UNSURE when the
 * value is an object or array. why (may be NULL) receives the reason.
 */
sg_policy_tri_t sg_policy_argtest_run(const sg_policy_argtest_t *t, sg_policy_ctx_t *ctx,
                                      sg_str_t arguments, sg_buf_t *why);
void sg_policy_argtest_dispose(sg_policy_argtest_t *t);

/* ---- policy.c ---- */

/* The rules indexed under key, or NULL. */
const sg_policy_bucket_t *sg_policy_index_find(const sg_policy_index_t *ix, sg_str_t key);
/*
 * Indexes the (sorted) rules: by exact tool name when every tool pattern is
 * literal, else by upstream when the rule names upstreams, else generic.
 */
void sg_policy_index_build(sg_policy_t *p);
void sg_policy_index_dispose(sg_policy_t *p);

/* ---- policy_load.c ---- */

/* Frees a snapshot (its refcount has reached zero). */
void sg_policy_destroy(sg_policy_t *p);
/* Orders sg_policy_class_override_t by tool (qsort/bsearch). */
int sg_policy_override_cmp(const void *a, const void *b);


#endif
