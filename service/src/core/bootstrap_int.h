/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by bootstrap.c (entry points, problems, redaction),
 * bootstrap_check.c (the schema walk), bootstrap_patterns.c (its string
 * patterns), bootstrap_rules.c (checks across members) and
 * bootstrap_expand.c (the stored document). Nothing outside the bootstrap
 * module includes this.
 */
#ifndef SG_CORE_BOOTSTRAP_INT_H
#define SG_CORE_BOOTSTRAP_INT_H

#include "base/buf.h"
#include "core/bootstrap.h"

typedef struct sg_bootstrap_identity {
    char *name;
    char *api_key; /* NULL: the caller generates one */
} sg_bootstrap_identity_t;

struct sg_bootstrap {
    char *text; /* the validated payload, NUL-terminated copy */
    size_t len;
    char *tenant;
    char *profile;
    sg_bootstrap_identity_t *identities;
    size_t nidentities;
};

/* State of one validation walk: where we are and what went wrong. */
typedef struct sg_bootstrap_walk {
    sg_problems_t *problems;
    sg_buf_t ptr;     /* JSON pointer of the value being checked */
    sg_buf_t scratch; /* decoded strings */
    size_t found;     /* problems reported by this walk */
} sg_bootstrap_walk_t;

/* Pointer handling: push returns the mark to pop back to. */
size_t sg_bootstrap_push_key(sg_bootstrap_walk_t *w, const char *key, size_t len);
size_t sg_bootstrap_push_index(sg_bootstrap_walk_t *w, size_t i);
void sg_bootstrap_pop(sg_bootstrap_walk_t *w, size_t mark);
/* Reports a problem at the current pointer. */
void sg_bootstrap_report(sg_bootstrap_walk_t *w, const char *fmt, ...) SG_PRINTF(2, 3);

/* The schema walk over validated JSON (bootstrap_check.c). */
void sg_bootstrap_check_schema(sg_bootstrap_walk_t *w, sg_str_t root);

/*
 * String patterns of the schema (bootstrap_patterns.c): each takes a decoded
 * string and returns NULL when it matches, else a static message.
 */
const char *sg_bootstrap_test_name(sg_str_t s);
const char *sg_bootstrap_test_rule_name(sg_str_t s);
const char *sg_bootstrap_test_method(sg_str_t s);
const char *sg_bootstrap_test_arg_path(sg_str_t s);
const char *sg_bootstrap_test_prefix(sg_str_t s);
const char *sg_bootstrap_test_env_name(sg_str_t s);
const char *sg_bootstrap_test_header_name(sg_str_t s);
const char *sg_bootstrap_test_header_value(sg_str_t s);
const char *sg_bootstrap_test_url(sg_str_t s);
const char *sg_bootstrap_test_origin(sg_str_t s);
const char *sg_bootstrap_test_api_key(sg_str_t s);
const char *sg_bootstrap_test_domain(sg_str_t s);
/* The options core/policy_load.c compiles regexes with: what passes here compiles there. */
#define SG_BOOTSTRAP_PCRE2_OPTIONS (PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C)
/* True when pattern compiles with those options; otherwise false and a message in msg. */
bool sg_bootstrap_regex_ok(sg_str_t pattern, char *msg, size_t msgsz) SG_MUSTCHECK;

/* Checks across members: unique names and keys, prefixes, references (bootstrap_rules.c). */
void sg_bootstrap_check_rules(sg_bootstrap_walk_t *w, sg_str_t root);

/* Appends raw (validated JSON) without insignificant whitespace. */
void sg_bootstrap_append_compact(sg_buf_t *out, sg_str_t raw);

#endif
