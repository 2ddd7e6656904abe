/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Builds a policy snapshot from the stored tenant document: `defaults` (or
 * the profile), `classes` and `policies`, every regex compiled once with JIT,
 * rules sorted into the total order and indexed by exact tool name and by
 * upstream. Validation reports every problem with a JSON pointer (and a
 * pattern offset for regexes), so the same function backs bootstrap
 * validation. Unknown members inside rules are errors: a typo must never
 * widen a rule silently.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"
#include "core/policy_int.h"

#define MAX_LIST      1024
#define MAX_DOMAINS   10000
#define MAX_ARGS      256
#define MAX_NAME      128
#define MAX_REASON    1024
#define MAX_PATTERN   4096
#define MAX_CLASSES   10000
#define MAX_POINTER   1024
#define PCRE2_OPTIONS (PCRE2_UTF | PCRE2_DOLLAR_ENDONLY | PCRE2_NEVER_BACKSLASH_C)

struct loader {
    sg_policy_problems_t *problems; /* the caller's, or a local one */
    size_t total;                   /* problems found, also past the cap */
};

/* ---- problems ------------------------------------------------------------ */

static SG_PRINTF(4, 5) void problem(struct loader *l, const char *pointer, long offset,
                                    const char *fmt, ...)
{
    char msg[SG_ERROR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    l->total++;
    sg_policy_problems_t *ps = l->problems;
    if (ps->count == SG_POLICY_MAX_PROBLEMS) {
        ps->truncated = true;
        return;
    }
    ps->items = sg_policy_grow(ps->items, ps->count, sizeof(*ps->items));
    ps->items[ps->count++] = (sg_policy_problem_t){ sg_xstrdup(pointer), sg_xstrdup(msg), offset };
}

void sg_policy_problems_dispose(sg_policy_problems_t *problems)
{
    if (problems == NULL) {
        return;
    }
    for (size_t i = 0; i < problems->count; i++) {
        free(problems->items[i].pointer);
        free(problems->items[i].error);
    }
    free(problems->items);
    *problems = SG_POLICY_PROBLEMS_INIT;
}

/* where + "/" + key with JSON pointer escapes (~0, ~1), cut to MAX_POINTER. */
static void pointer_join(char *out, const char *where, const char *key)
{
    size_t n = (size_t)snprintf(out, MAX_POINTER, "%s/", where);
    for (const char *k = key; *k != '\0' && n + 3 < MAX_POINTER; k++) {
        if (*k == '~' || *k == '/') {
            out[n++] = '~';
            out[n++] = *k == '~' ? '0' : '1';
        } else {
            out[n++] = *k;
        }
    }
    out[n < MAX_POINTER ? n : MAX_POINTER - 1] = '\0';
}

/* ---- JSON helpers ---------------------------------------------------------- */

/* A decoded heap copy of a JSON string, or NULL when raw is not a string. */
static char *decode_string(sg_str_t raw)
{
    sg_buf_t b = SG_BUF_INIT;
    if (sg_json_type(raw) != SG_JSON_STRING || sg_json_string_decode(raw, &b) != SG_OK) {
        sg_buf_dispose(&b);
        return NULL;
    }
    sg_buf_append(&b, "", 0);
    return sg_buf_steal(&b, NULL);
}

/* A string member of at most max bytes (empty allowed only when allow_empty). */
static char *string_at(struct loader *l, sg_str_t v, const char *where, size_t max,
                       bool allow_empty)
{
    char *s = decode_string(v);
    if (s == NULL) {
        problem(l, where, -1, "must be a string");
    } else if ((s[0] == '\0' && !allow_empty) || strlen(s) > max) {
        problem(l, where, -1, "must be a string of %s%zu bytes", allow_empty ? "0-" : "1-", max);
        free(s);
        s = NULL;
    }
    return s;
}

static void push_str(char ***v, size_t *n, char *s)
{
    *v = sg_policy_grow(*v, *n, sizeof(char *));
    (*v)[(*n)++] = s;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

/*
 * A string or a non-empty array of non-empty strings. Calls each(l, s, at,
 * ctx) for every element with its pointer (ownership of s passes to it).
 */
static void load_list(struct loader *l, sg_str_t v, const char *where, size_t max,
                      void (*each)(struct loader *l, char *s, const char *at, void *ctx), void *ctx)
{
    char at[MAX_POINTER];
    if (sg_json_type(v) == SG_JSON_STRING) {
        char *s = string_at(l, v, where, MAX_PATTERN, false);
        if (s != NULL) {
            each(l, s, where, ctx);
        }
        return;
    }
    if (sg_json_type(v) != SG_JSON_ARRAY) {
        problem(l, where, -1, "must be a string or an array of strings");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t item;
    size_t k = 0;
    while (sg_json_array_next(&it, &item) == 1) {
        snprintf(at, sizeof(at), "%s/%zu", where, k);
        if (++k > max) {
            problem(l, where, -1, "at most %zu entries", max);
            return;
        }
        char *s = string_at(l, item, at, MAX_PATTERN, false);
        if (s != NULL) {
            each(l, s, at, ctx);
        }
    }
    if (k == 0) {
        problem(l, where, -1, "must not be empty (an empty list matches nothing)");
    }
}

struct str_vec {
    char ***v;
    size_t *n;
};

static void collect_str(struct loader *l, char *s, const char *at, void *ctx)
{
    (void)l;
    (void)at;
    struct str_vec *sv = ctx;
    push_str(sv->v, sv->n, s);
}

/* ---- regexes --------------------------------------------------------------- */

static pcre2_code *compile_regex(struct loader *l, const char *pattern, const char *where)
{
    int code;
    PCRE2_SIZE off;
    size_t len = strlen(pattern);
    if (len > MAX_PATTERN) {
        problem(l, where, -1, "regex longer than %d bytes", MAX_PATTERN);
        return NULL;
    }
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, len, PCRE2_OPTIONS, &code, &off, NULL);
    if (re == NULL) {
        PCRE2_UCHAR msg[160];
        if (pcre2_get_error_message(code, msg, sizeof(msg)) < 0) {
            snprintf((char *)msg, sizeof(msg), "error %d", code);
        }
        problem(l, where, (long)off, "invalid regex at offset %zu: %s", (size_t)off, (char *)msg);
        return NULL;
    }
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT the interpreter runs it */
    return re;
}

static void collect_regex(struct loader *l, char *s, const char *at, void *ctx)
{
    sg_policy_rule_t *r = ctx;
    pcre2_code *re = compile_regex(l, s, at);
    free(s);
    if (re != NULL) {
        r->tool_regexes = sg_policy_grow(r->tool_regexes, r->ntool_regexes, sizeof(pcre2_code *));
        r->tool_regexes[r->ntool_regexes++] = re;
    }
}

/* ---- match fields ---------------------------------------------------------- */

static void collect_class(struct loader *l, char *s, const char *at, void *ctx)
{
    sg_policy_rule_t *r = ctx;
    sg_tool_class_t c;
    if (sg_policy_class_parse(sg_str(s), &c)) {
        r->classes |= SG_POLICY_CLASS_BIT(c);
    } else {
        problem(l, at, -1, "must be read, write or destructive");
    }
    free(s);
}

static void collect_domain(struct loader *l, char *s, const char *at, void *ctx)
{
    sg_policy_rule_t *r = ctx;
    sg_error_t err = { 0 };
    if (sg_domains_list_add(r->domains, sg_str(s), &err) != SG_OK) {
        problem(l, at, -1, "%s", err.msg);
    }
    free(s);
}

static void load_args_domain(struct loader *l, sg_policy_rule_t *r, sg_str_t v, const char *where)
{
    r->domains = sg_domains_list_new();
    load_list(l, v, where, MAX_DOMAINS, collect_domain, r);
    sg_domains_list_seal(r->domains);
}

/* The "type" of an argument test: false (and a problem) when it is neither path nor string. */
static bool test_type(struct loader *l, sg_str_t test, const char *where, sg_policy_argtype_t *type)
{
    char at[MAX_POINTER];
    sg_str_t v;
    *type = SG_POLICY_ARG_AUTO;
    if (sg_json_object_get(test, "type", &v) != SG_OK) {
        return true;
    }
    pointer_join(at, where, "type");
    if (sg_json_string_eq(v, "path") || sg_json_string_eq(v, "string")) {
        *type = sg_json_string_eq(v, "path") ? SG_POLICY_ARG_PATH : SG_POLICY_ARG_STRING;
        return true;
    }
    problem(l, at, -1, "must be \"path\" or \"string\"");
    return false;
}

static void load_equals(struct loader *l, sg_policy_argtest_t *t, sg_str_t v, const char *at)
{
    t->has_equals = true;
    t->equals_type = sg_json_type(v);
    if (t->equals_type == SG_JSON_STRING) {
        char *s = decode_string(v);
        sg_buf_t b = SG_BUF_INIT;
        if (t->type == SG_POLICY_ARG_PATH) {
            sg_policy_normalise_path(sg_str(s), &b);
        } else {
            sg_buf_append_cstr(&b, s);
        }
        sg_buf_append(&b, "", 0);
        free(s);
        t->equals = sg_buf_steal(&b, &t->equals_len);
    } else if (t->equals_type == SG_JSON_NUMBER && t->type != SG_POLICY_ARG_PATH) {
        char *num = sg_xstrdup_str(sg_json_trim(v));
        t->equals_num = strtod(num, NULL);
        free(num);
    } else if (t->type == SG_POLICY_ARG_PATH || t->equals_type == SG_JSON_OBJECT ||
               t->equals_type == SG_JSON_ARRAY) {
        problem(l, at, -1, "must be a %s",
                t->type == SG_POLICY_ARG_PATH ? "string" : "string, number, boolean or null");
    }
}

static void load_prefix(struct loader *l, sg_policy_argtest_t *t, sg_str_t v, const char *at)
{
    char *s = string_at(l, v, at, MAX_PATTERN, false);
    if (s == NULL) {
        return;
    }
    sg_buf_t b = SG_BUF_INIT;
    if (t->type == SG_POLICY_ARG_PATH) {
        sg_policy_normalise_path(sg_str(s), &b);
        while (b.len > 1 &&
               b.data[b.len - 1] == '/') { /* /workspace/ and /workspace are one prefix */
            b.data[--b.len] = '\0';
        }
    } else {
        sg_buf_append_cstr(&b, s);
    }
    free(s);
    t->prefix = sg_buf_steal(&b, &t->prefix_len);
}

/* One member of an argument test object. */
static void load_test_member(struct loader *l, sg_policy_argtest_t *t, const char *key, sg_str_t v,
                             const char *at)
{
    int64_t n;
    if (strcmp(key, "regex") == 0) {
        char *s = string_at(l, v, at, MAX_PATTERN, true);
        t->regex = s != NULL ? compile_regex(l, s, at) : NULL;
        free(s);
    } else if (strcmp(key, "equals") == 0) {
        load_equals(l, t, v, at);
    } else if (strcmp(key, "prefix") == 0) {
        load_prefix(l, t, v, at);
    } else if (strcmp(key, "max_len") == 0) {
        if (sg_json_int64(v, &n) != SG_OK || n < 0) {
            problem(l, at, -1, "must be a non-negative integer");
        } else {
            t->max_len = n;
        }
    } else if (strcmp(key, "type") != 0) {
        problem(l, at, -1, "unknown member (regex, equals, prefix, max_len, type)");
    }
}

static void load_test(struct loader *l, sg_policy_argtest_t *t, sg_str_t test, const char *where)
{
    char at[MAX_POINTER];
    sg_error_t err = { 0 };
    if (sg_policy_path_parse(sg_str(t->path), t, &err) != SG_OK) {
        problem(l, where, -1, "%s", err.msg);
    }
    if (sg_json_type(test) != SG_JSON_OBJECT) {
        problem(l, where, -1, "must be an object of tests (regex, equals, prefix, max_len)");
        return;
    }
    if (!test_type(l, test, where, &t->type)) {
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(test);
    sg_str_t k, v;
    size_t before = l->total;
    while (sg_json_object_next(&it, &k, &v) == 1) {
        char *key = decode_string(k);
        pointer_join(at, where, key != NULL ? key : "");
        load_test_member(l, t, key != NULL ? key : "", v, at);
        free(key);
    }
    if (t->regex == NULL && !t->has_equals && t->prefix == NULL &&
        t->max_len == SG_POLICY_NO_MAX_LEN && l->total == before) {
        problem(l, where, -1, "needs at least one of regex, equals, prefix, max_len");
    }
}

static void load_args(struct loader *l, sg_policy_rule_t *r, sg_str_t v, const char *where)
{
    char at[MAX_POINTER];
    if (sg_json_type(v) != SG_JSON_OBJECT) {
        problem(l, where, -1, "must be an object: argument path -> tests");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t k, test;
    while (sg_json_object_next(&it, &k, &test) == 1) {
        if (r->nargs == MAX_ARGS) {
            problem(l, where, -1, "at most %d argument tests", MAX_ARGS);
            return;
        }
        r->args = sg_policy_grow(r->args, r->nargs, sizeof(*r->args));
        sg_policy_argtest_t *t = &r->args[r->nargs++];
        *t = (sg_policy_argtest_t){ .max_len = SG_POLICY_NO_MAX_LEN };
        t->path = decode_string(k);
        pointer_join(at, where, t->path != NULL ? t->path : "");
        if (t->path == NULL || t->path[0] == '\0') {
            problem(l, at, -1, "argument path must not be empty");
            continue;
        }
        load_test(l, t, test, at);
    }
    if (r->nargs == 0) {
        problem(l, where, -1, "must not be empty");
    }
}

static void load_match_field(struct loader *l, sg_policy_rule_t *r, const char *key, sg_str_t v,
                             const char *at)
{
    struct {
        const char *key;
        char ***v;
        size_t *n;
    } lists[] = { { "tool", &r->tools, &r->ntools },
                  { "upstream", &r->upstreams, &r->nupstreams },
                  { "method", &r->methods, &r->nmethods },
                  { "roles", &r->roles, &r->nroles },
                  { "identities", &r->identities, &r->nidentities } };
    for (size_t i = 0; i < SG_ARRAY_LEN(lists); i++) {
        if (strcmp(key, lists[i].key) == 0) {
            struct str_vec sv = { lists[i].v, lists[i].n };
            load_list(l, v, at, MAX_LIST, collect_str, &sv);
            return;
        }
    }
    if (strcmp(key, "tool_regex") == 0) {
        load_list(l, v, at, MAX_LIST, collect_regex, r);
    } else if (strcmp(key, "class") == 0) {
        load_list(l, v, at, 3, collect_class, r);
    } else if (strcmp(key, "args") == 0) {
        load_args(l, r, v, at);
    } else if (strcmp(key, "args_domain") == 0) {
        load_args_domain(l, r, v, at);
    } else {
        problem(l, at, -1,
                "unknown match field (tool, tool_regex, upstream, method, roles, identities, "
                "class, args, args_domain)");
    }
}

static void load_match(struct loader *l, sg_policy_rule_t *r, sg_str_t m, const char *where)
{
    char at[MAX_POINTER];
    if (sg_json_type(m) != SG_JSON_OBJECT) {
        problem(l, where, -1, "must be an object");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(m);
    sg_str_t k, v;
    while (sg_json_object_next(&it, &k, &v) == 1) {
        char *key = decode_string(k);
        pointer_join(at, where, key != NULL ? key : "");
        load_match_field(l, r, key != NULL ? key : "", v, at);
        free(key);
    }
}

/* ---- rules ----------------------------------------------------------------- */

static bool name_ok(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            return false;
        }
    }
    return strcmp(s, "default") != 0;
}

static void load_action(struct loader *l, sg_policy_rule_t *r, sg_str_t v, const char *at)
{
    static const char *const actions[] = { "deny", "approve", "allow" };
    for (size_t i = 0; i < SG_ARRAY_LEN(actions); i++) {
        if (sg_json_string_eq(v, actions[i])) {
            r->action = (sg_decision_t)i;
            return;
        }
    }
    problem(l, at, -1, "must be allow, deny or approve");
}

/* One member of a rule object; sets *seen bits for name (1) and action (2). */
static void load_rule_member(struct loader *l, sg_policy_rule_t *r, const char *key, sg_str_t v,
                             const char *at, unsigned *seen)
{
    if (strcmp(key, "name") == 0) {
        *seen |= 1;
        r->name = string_at(l, v, at, MAX_NAME, false);
        if (r->name != NULL && !name_ok(r->name)) {
            problem(l, at, -1, "no control characters, and \"default\" is reserved");
        }
    } else if (strcmp(key, "action") == 0) {
        *seen |= 2;
        load_action(l, r, v, at);
    } else if (strcmp(key, "priority") == 0) {
        if (sg_json_int64(v, &r->priority) != SG_OK) {
            problem(l, at, -1, "must be an integer");
        }
    } else if (strcmp(key, "mode") == 0) {
        r->shadow = sg_json_string_eq(v, "shadow");
        if (!r->shadow && !sg_json_string_eq(v, "enforce")) {
            problem(l, at, -1, "must be \"enforce\" or \"shadow\"");
        }
    } else if (strcmp(key, "reason") == 0) {
        r->reason = string_at(l, v, at, MAX_REASON, true);
    } else if (strcmp(key, "match") == 0) {
        load_match(l, r, v, at);
    } else if (strcmp(key, "description") != 0) {
        problem(l, at, -1,
                "unknown member (name, priority, action, mode, reason, match, description)");
    }
}

static void load_rule(struct loader *l, sg_policy_rule_t *r, sg_str_t raw, const char *where)
{
    char at[MAX_POINTER];
    unsigned seen = 0;
    if (sg_json_type(raw) != SG_JSON_OBJECT) {
        problem(l, where, -1, "must be an object");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(raw);
    sg_str_t k, v;
    while (sg_json_object_next(&it, &k, &v) == 1) {
        char *key = decode_string(k);
        pointer_join(at, where, key != NULL ? key : "");
        load_rule_member(l, r, key != NULL ? key : "", v, at, &seen);
        free(key);
    }
    if ((seen & 1) == 0) {
        pointer_join(at, where, "name");
        problem(l, at, -1, "required");
    }
    if ((seen & 2) == 0) {
        pointer_join(at, where, "action");
        problem(l, at, -1, "required");
    }
}

static void rule_dispose(sg_policy_rule_t *r)
{
    free(r->name);
    free(r->reason);
    free_strs(r->tools, r->ntools);
    for (size_t i = 0; i < r->ntool_regexes; i++) {
        pcre2_code_free(r->tool_regexes[i]);
    }
    free(r->tool_regexes);
    free_strs(r->upstreams, r->nupstreams);
    free_strs(r->methods, r->nmethods);
    free_strs(r->roles, r->nroles);
    free_strs(r->identities, r->nidentities);
    for (size_t i = 0; i < r->nargs; i++) {
        sg_policy_argtest_dispose(&r->args[i]);
    }
    free(r->args);
    sg_domains_list_free(r->domains);
}

static int cmp_name_ptr(const void *a, const void *b)
{
    const sg_policy_rule_t *x = *(const sg_policy_rule_t *const *)a;
    const sg_policy_rule_t *y = *(const sg_policy_rule_t *const *)b;
    int c = strcmp(x->name, y->name);
    return c != 0 ? c : (x < y ? -1 : x > y);
}

static void check_unique_names(struct loader *l, sg_policy_rule_t *rules, size_t n)
{
    const sg_policy_rule_t **v = sg_xcalloc(n != 0 ? n : 1, sizeof(void *));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (rules[i].name != NULL) {
            v[m++] = &rules[i];
        }
    }
    qsort((void *)v, m, sizeof(void *), cmp_name_ptr);
    for (size_t i = 1; i < m; i++) {
        if (strcmp(v[i]->name, v[i - 1]->name) == 0) {
            char at[MAX_POINTER];
            snprintf(at, sizeof(at), "/policies/%zu/name", (size_t)(v[i] - rules));
            problem(l, at, -1, "duplicate rule name (also /policies/%zu)",
                    (size_t)(v[i - 1] - rules));
        }
    }
    free(v);
}

static void load_rules(struct loader *l, sg_policy_t *p, sg_str_t doc)
{
    char where[MAX_POINTER];
    sg_str_t v, item;
    if (sg_json_object_get(doc, "policies", &v) != SG_OK || sg_json_type(v) == SG_JSON_NULL) {
        return;
    }
    if (sg_json_type(v) != SG_JSON_ARRAY) {
        problem(l, "/policies", -1, "must be an array of rules");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    while (sg_json_array_next(&it, &item) == 1) {
        if (p->nrules == SG_POLICY_MAX_RULES) {
            problem(l, "/policies", -1, "at most %d rules", SG_POLICY_MAX_RULES);
            return;
        }
        p->rules = sg_policy_grow(p->rules, p->nrules, sizeof(*p->rules));
        sg_policy_rule_t *r = &p->rules[p->nrules];
        *r = (sg_policy_rule_t){ 0 };
        snprintf(where, sizeof(where), "/policies/%zu", p->nrules++);
        load_rule(l, r, item, where);
        p->has_shadow = p->has_shadow || r->shadow;
    }
    check_unique_names(l, p->rules, p->nrules);
}

/* ---- defaults and classes -------------------------------------------------- */

static void apply_profile(struct loader *l, sg_policy_t *p, sg_str_t doc, bool have_no_match)
{
    static const struct {
        const char *name;
        sg_policy_no_match_t no_match;
        bool approve;
    } profiles[] = { { "strict", SG_POLICY_NO_MATCH_DENY, true },
                     { "standard", SG_POLICY_NO_MATCH_ALLOW_NON_DESTRUCTIVE, false },
                     { "permissive", SG_POLICY_NO_MATCH_ALLOW, false } };
    sg_str_t v;
    if (sg_json_object_get(doc, "profile", &v) != SG_OK) {
        return; /* strict, set by the caller */
    }
    for (size_t i = 0; i < SG_ARRAY_LEN(profiles); i++) {
        if (sg_json_string_eq(v, profiles[i].name)) {
            p->no_match = profiles[i].no_match;
            p->approve_destructive = profiles[i].approve;
            return;
        }
    }
    if (!have_no_match) {
        problem(l, "/profile", -1, "must be strict, standard or permissive (or give /defaults)");
    }
}

static void load_default_member(struct loader *l, sg_policy_t *p, const char *key, sg_str_t v,
                                const char *at)
{
    static const char *const no_match[] = { "deny", "allow_non_destructive", "allow" };
    if (strcmp(key, "no_match") == 0) {
        for (size_t i = 0; i < SG_ARRAY_LEN(no_match); i++) {
            if (sg_json_string_eq(v, no_match[i])) {
                p->no_match = (sg_policy_no_match_t)i;
                return;
            }
        }
        problem(l, at, -1, "must be deny, allow or allow_non_destructive");
    } else if (strcmp(key, "approve_destructive") == 0) {
        sg_json_type_t t = sg_json_type(v);
        if (t != SG_JSON_TRUE && t != SG_JSON_FALSE) {
            problem(l, at, -1, "must be true or false");
        }
        p->approve_destructive = t == SG_JSON_TRUE;
    }
    /* other members belong to other modules (scanning, quarantine, ...) */
}

static void load_defaults(struct loader *l, sg_policy_t *p, sg_str_t doc)
{
    char at[MAX_POINTER];
    sg_str_t d, k, v;
    p->no_match = SG_POLICY_NO_MATCH_DENY;
    p->approve_destructive = true;
    bool have = sg_json_object_get(doc, "defaults", &d) == SG_OK && sg_json_type(d) != SG_JSON_NULL;
    if (have && sg_json_type(d) != SG_JSON_OBJECT) {
        problem(l, "/defaults", -1, "must be an object");
        have = false;
    }
    apply_profile(l, p, doc, have && sg_json_object_get(d, "no_match", &v) == SG_OK);
    sg_json_iter_t it = SG_JSON_ITER_INIT(d);
    while (have && sg_json_object_next(&it, &k, &v) == 1) {
        char *key = decode_string(k);
        pointer_join(at, "/defaults", key != NULL ? key : "");
        load_default_member(l, p, key != NULL ? key : "", v, at);
        free(key);
    }
}

int sg_policy_override_cmp(const void *a, const void *b)
{
    return strcmp(((const sg_policy_class_override_t *)a)->tool,
                  ((const sg_policy_class_override_t *)b)->tool);
}

static void load_classes(struct loader *l, sg_policy_t *p, sg_str_t doc)
{
    char at[MAX_POINTER];
    sg_str_t c, k, v;
    if (sg_json_object_get(doc, "classes", &c) != SG_OK || sg_json_type(c) == SG_JSON_NULL) {
        return;
    }
    if (sg_json_type(c) != SG_JSON_OBJECT) {
        problem(l, "/classes", -1, "must be an object: exposed tool name -> class");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(c);
    while (sg_json_object_next(&it, &k, &v) == 1) {
        char *tool = decode_string(k);
        sg_tool_class_t cls;
        pointer_join(at, "/classes", tool != NULL ? tool : "");
        sg_str_t s;
        if (tool == NULL || tool[0] == '\0' || p->nclasses == MAX_CLASSES ||
            !sg_json_string_plain(v, &s) || !sg_policy_class_parse(s, &cls)) {
            problem(l, at, -1, "must map a tool name to read, write or destructive");
            free(tool);
            continue;
        }
        p->classes = sg_policy_grow(p->classes, p->nclasses, sizeof(*p->classes));
        p->classes[p->nclasses++] = (sg_policy_class_override_t){ tool, cls };
    }
    if (p->nclasses > 1) {
        qsort(p->classes, p->nclasses, sizeof(*p->classes), sg_policy_override_cmp);
    }
}

/* ---- order and index ------------------------------------------------------- */

/* Priority descending; deny < approve < allow; then name. */
static int cmp_rules(const void *a, const void *b)
{
    const sg_policy_rule_t *x = a, *y = b;
    if (x->priority != y->priority) {
        return x->priority > y->priority ? -1 : 1;
    }
    if (x->action != y->action) {
        return x->action < y->action ? -1 : 1;
    }
    return strcmp(x->name, y->name);
}

void sg_policy_destroy(sg_policy_t *p)
{
    for (size_t i = 0; i < p->nrules; i++) {
        rule_dispose(&p->rules[i]);
    }
    free(p->rules);
    sg_policy_index_dispose(p);
    for (size_t i = 0; i < p->nclasses; i++) {
        free(p->classes[i].tool);
    }
    free(p->classes);
    free(p);
}

/* ---- entry point ----------------------------------------------------------- */

int sg_policy_compile(sg_str_t doc, sg_policy_t **out, sg_policy_problems_t *problems,
                      sg_error_t *err)
{
    sg_policy_problems_t local = SG_POLICY_PROBLEMS_INIT;
    struct loader l = { problems != NULL ? problems : &local, 0 };
    sg_error_t verr = { 0 };
    sg_policy_t *p = NULL;
    size_t first = l.problems->count;
    *out = NULL;
    int rc = sg_json_validate(doc.ptr != NULL ? doc.ptr : "", doc.len, SG_JSON_MAX_DEPTH, &verr);
    if (rc != SG_OK) {
        problem(&l, "", -1, "%s", verr.msg);
    } else if (sg_json_type(doc) != SG_JSON_OBJECT) {
        problem(&l, "", -1, "must be a JSON object");
        rc = SG_EINVAL;
    } else {
        p = sg_xcalloc(1, sizeof(*p));
        p->refcnt = 1;
        load_defaults(&l, p, doc);
        load_classes(&l, p, doc);
        load_rules(&l, p, doc);
        rc = l.total != 0 ? SG_EINVAL : SG_OK;
    }
    if (rc == SG_OK) {
        if (p->nrules > 1) {
            qsort(p->rules, p->nrules, sizeof(*p->rules), cmp_rules);
        }
        sg_policy_index_build(p);
        *out = p;
    } else {
        const sg_policy_problem_t *pr =
                first < l.problems->count ? &l.problems->items[first] : NULL;
        sg_error_set(err, rc, "%s: %s (%zu problem%s)", pr != NULL ? pr->pointer : "",
                     pr != NULL ? pr->error : "invalid policy", l.total, l.total > 1 ? "s" : "");
        if (p != NULL) {
            sg_policy_destroy(p);
        }
    }
    sg_policy_problems_dispose(&local);
    return rc;
}
