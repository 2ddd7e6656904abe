/* SPDX-License-Identifier: Apache-2.0 */
/*
 * core/policy and core/domains: the decision vectors in tests/vectors/policy
 * (every match field, every profile, ties, path and domain evasions,
 * visibility, classification, compile problems), each decision checked with
 * and without a trace, with a shared and a temporary context; then what a
 * vector file cannot express: ownership, problem caps, fail-closed limits,
 * the index against a linear walk, and the helpers.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/json.h"
#include "core/domains.h"
#include "core/policy.h"
#include "core/policy_int.h"

/* ---- helpers ----------------------------------------------------------- */

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    sg_buf_t b = SG_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        sg_buf_append(&b, chunk, n);
    }
    fclose(f);
    sg_buf_append(&b, "", 0);
    return sg_buf_steal(&b, len);
}

/* A decoded heap copy of member key (a string), or NULL when absent. */
static char *member_str(sg_str_t obj, const char *key)
{
    sg_str_t raw;
    if (sg_json_object_get(obj, key, &raw) != SG_OK) {
        return NULL;
    }
    sg_buf_t b = SG_BUF_INIT;
    assert_int_equal(sg_json_string_decode(raw, &b), SG_OK);
    sg_buf_append(&b, "", 0);
    return sg_buf_steal(&b, NULL);
}

static sg_str_t member_raw(sg_str_t obj, const char *key)
{
    sg_str_t raw;
    return sg_json_object_get(obj, key, &raw) == SG_OK ? raw : SG_STR_NULL;
}

/* A heap vector of the strings of an array member (or dflt when absent). */
static char **member_strs(sg_str_t obj, const char *key, const char *dflt, size_t *n)
{
    char **v = NULL;
    *n = 0;
    sg_str_t raw = member_raw(obj, key), item;
    if (raw.ptr == NULL) {
        if (dflt != NULL) {
            v = malloc(sizeof(char *));
            v[(*n)++] = strdup(dflt);
        }
        return v;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(raw);
    while (sg_json_array_next(&it, &item) == 1) {
        sg_buf_t b = SG_BUF_INIT;
        assert_int_equal(sg_json_string_decode(item, &b), SG_OK);
        sg_buf_append(&b, "", 0);
        v = realloc(v, (*n + 1) * sizeof(char *));
        v[(*n)++] = sg_buf_steal(&b, NULL);
    }
    return v;
}

static void free_strs(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static sg_policy_t *compile_ok(sg_str_t doc, const char *file)
{
    sg_policy_t *p = NULL;
    sg_policy_problems_t probs = SG_POLICY_PROBLEMS_INIT;
    sg_error_t err = { 0 };
    int rc = sg_policy_compile(doc, &p, &probs, &err);
    if (rc != SG_OK) {
        for (size_t i = 0; i < probs.count; i++) {
            print_error("%s: %s: %s\n", file, probs.items[i].pointer, probs.items[i].error);
        }
        fail_msg("%s: compile failed: %s", file, err.msg);
    }
    sg_policy_problems_dispose(&probs);
    return p;
}

static sg_policy_t *compile_cstr(const char *doc)
{
    return compile_ok(sg_str(doc), "inline");
}

/* ---- decision cases ------------------------------------------------------ */

struct vcase {
    const char *file;
    char *name;
    sg_str_t raw;
};

static sg_decision_t parse_decision(const struct vcase *c, const char *s)
{
    for (int d = SG_DECISION_DENY; d <= SG_DECISION_ALLOW; d++) {
        if (strcmp(s, sg_policy_decision_name((sg_decision_t)d)) == 0) {
            return (sg_decision_t)d;
        }
    }
    fail_msg("%s: %s: bad decision %s", c->file, c->name, s);
    return SG_DECISION_DENY;
}

/* Fills an input from the case; strings are owned by the caller's arrays. */
struct input_store {
    char *identity, *tool, *upstream, *method, *cls;
    char **roles;
    size_t nroles;
};

static void build_input(const sg_policy_t *p, const struct vcase *c, struct input_store *st,
                        sg_policy_input_t *in)
{
    memset(st, 0, sizeof(*st));
    memset(in, 0, sizeof(*in));
    st->identity = member_str(c->raw, "identity");
    st->tool = member_str(c->raw, "tool");
    st->upstream = member_str(c->raw, "upstream");
    st->method = member_str(c->raw, "method");
    st->cls = member_str(c->raw, "class");
    st->roles = member_strs(c->raw, "roles", "agent", &st->nroles);
    in->identity = sg_str(st->identity != NULL ? st->identity : "agent-1");
    in->roles = st->roles;
    in->nroles = st->nroles;
    in->tool = sg_str(st->tool != NULL ? st->tool : "");
    if (st->upstream != NULL) {
        in->upstream = sg_str(st->upstream);
    } else {
        const char *sep = st->tool != NULL ? strstr(st->tool, "__") : NULL;
        in->upstream = sep != NULL ? sg_str_n(st->tool, (size_t)(sep - st->tool)) : SG_STR_NULL;
    }
    in->method = sg_str(st->method != NULL ? st->method : "tools/call");
    if (st->cls != NULL) {
        assert_true(sg_policy_class_parse(sg_str(st->cls), &in->tool_class));
    } else {
        in->tool_class = sg_policy_classify(p, in->tool, member_raw(c->raw, "definition"));
    }
    in->arguments = member_raw(c->raw, "arguments");
}

static void free_input(struct input_store *st)
{
    free(st->identity);
    free(st->tool);
    free(st->upstream);
    free(st->method);
    free(st->cls);
    free_strs(st->roles, st->nroles);
}

static void check_same(const struct vcase *c, const sg_policy_result_t *a,
                       const sg_policy_result_t *b)
{
    if (a->decision != b->decision || strcmp(a->rule, b->rule) != 0 ||
        a->has_shadow != b->has_shadow ||
        (a->has_shadow && strcmp(a->shadow_rule, b->shadow_rule) != 0)) {
        fail_msg("%s: %s: indexed walk (%s by %s) and traced walk (%s by %s) differ", c->file,
                 c->name, sg_policy_decision_name(a->decision), a->rule,
                 sg_policy_decision_name(b->decision), b->rule);
    }
}

static void print_trace(const sg_policy_result_t *r)
{
    for (size_t i = 0; i < r->ntrace; i++) {
        print_error("    %-28s %s%s %s\n", r->trace[i].rule, r->trace[i].matched ? "MATCH" : "-",
                    r->trace[i].shadow ? " (shadow)" : "", r->trace[i].why);
    }
}

static void check_expectations(const struct vcase *c, const sg_policy_result_t *r)
{
    char *want = member_str(c->raw, "expect");
    char *rule = member_str(c->raw, "rule");
    char *shadow = member_str(c->raw, "shadow");
    char *shadow_rule = member_str(c->raw, "shadow_rule");
    bool bad =
            r->decision != parse_decision(c, want) || (rule != NULL && strcmp(rule, r->rule) != 0);
    if (shadow != NULL) {
        bool none = strcmp(shadow, "none") == 0;
        bad = bad || none == r->has_shadow ||
              (!none && r->shadow_decision != parse_decision(c, shadow)) ||
              (shadow_rule != NULL && r->has_shadow && strcmp(shadow_rule, r->shadow_rule) != 0);
    }
    sg_str_t esc = member_raw(c->raw, "escalated");
    if (esc.ptr != NULL) {
        bad = bad || r->escalated != (sg_json_type(esc) == SG_JSON_TRUE);
    }
    if (bad) {
        print_trace(r);
        fail_msg("%s: %s: got %s by %s (shadow %s by %s), want %s by %s", c->file, c->name,
                 sg_policy_decision_name(r->decision), r->rule,
                 r->has_shadow ? sg_policy_decision_name(r->shadow_decision) : "none",
                 r->has_shadow ? r->shadow_rule : "-", want, rule != NULL ? rule : "any");
    }
    free(want);
    free(rule);
    free(shadow);
    free(shadow_rule);
}

static void run_decision(const sg_policy_t *p, const struct vcase *c, sg_policy_ctx_t *ctx)
{
    struct input_store st;
    sg_policy_input_t in;
    sg_policy_result_t fast, traced, fresh;
    build_input(p, c, &st, &in);
    in.ctx = ctx;
    sg_policy_eval(p, &in, &fast);
    assert_null(fast.trace);
    in.want_trace = true;
    sg_policy_eval(p, &in, &traced);
    assert_int_equal(traced.ntrace, sg_policy_rule_count(p));
    in.want_trace = false;
    in.ctx = NULL;
    sg_policy_eval(p, &in, &fresh);
    check_same(c, &fast, &traced);
    check_same(c, &fast, &fresh);
    check_expectations(c, &traced);
    assert_non_null(fast.reason);
    sg_policy_result_dispose(&fast);
    sg_policy_result_dispose(&traced);
    sg_policy_result_dispose(&fresh);
    free_input(&st);
}

static void run_visible(const sg_policy_t *p, const struct vcase *c)
{
    struct input_store st;
    sg_policy_input_t in;
    build_input(p, c, &st, &in);
    bool want = sg_json_type(member_raw(c->raw, "visible")) == SG_JSON_TRUE;
    bool got = sg_policy_tool_visible(p, in.identity, in.roles, in.nroles, in.tool, in.upstream,
                                      in.tool_class);
    if (got != want) {
        fail_msg("%s: %s: visible %d, want %d", c->file, c->name, got, want);
    }
    free_input(&st);
}

static void run_classify(const sg_policy_t *p, const struct vcase *c)
{
    char *tool = member_str(c->raw, "tool");
    char *want = member_str(c->raw, "expect_class");
    sg_tool_class_t got = sg_policy_classify(p, sg_str(tool), member_raw(c->raw, "definition"));
    if (strcmp(sg_policy_class_name(got), want) != 0) {
        fail_msg("%s: %s: class %s, want %s", c->file, c->name, sg_policy_class_name(got), want);
    }
    free(tool);
    free(want);
}

/* A scan case: the hosts found in "scan" include/exclude the listed ones. */
static void run_scan(sg_domains_scan_t *s, const struct vcase *c)
{
    char *text = member_str(c->raw, "scan");
    size_t ninc, nexc;
    char **inc = member_strs(c->raw, "includes", NULL, &ninc);
    char **exc = member_strs(c->raw, "excludes", NULL, &nexc);
    sg_domains_scan_reset(s);
    sg_domains_scan_text(s, sg_str(text));
    for (size_t k = 0; k < ninc + nexc; k++) {
        const char *h = k < ninc ? inc[k] : exc[k - ninc];
        bool found = false;
        for (size_t i = 0; i < sg_domains_scan_count(s) && !found; i++) {
            found = strcmp(sg_domains_scan_host(s, i), h) == 0;
        }
        if (found != (k < ninc)) {
            for (size_t i = 0; i < sg_domains_scan_count(s); i++) {
                print_error("    host %s (registrable %s)\n", sg_domains_scan_host(s, i),
                            sg_domains_scan_registrable(s, i) ?: "-");
            }
            fail_msg("%s: %s: host %s %s", c->file, c->name, h,
                     found ? "found but must not be" : "not found");
        }
    }
    free(text);
    free_strs(inc, ninc);
    free_strs(exc, nexc);
}

/* A path case: "normalise" gives "expect_path". */
static void run_normalise(const struct vcase *c)
{
    char *in = member_str(c->raw, "normalise"), *want = member_str(c->raw, "expect_path");
    sg_buf_t b = SG_BUF_INIT;
    sg_policy_normalise_path(sg_str(in), &b);
    sg_buf_append(&b, "", 0);
    if (strcmp(b.data, want) != 0) {
        fail_msg("%s: %s: normalise(%s) = %s, want %s", c->file, c->name, in, b.data, want);
    }
    sg_buf_dispose(&b);
    free(in);
    free(want);
}

/* An args_domain entry case: "entry" is accepted or not ("valid"). */
static void run_entry(const struct vcase *c)
{
    char *entry = member_str(c->raw, "entry");
    bool want = sg_json_type(member_raw(c->raw, "valid")) == SG_JSON_TRUE;
    sg_domain_list_t *l = sg_domains_list_new();
    sg_error_t err = { 0 };
    bool got = sg_domains_list_add(l, sg_str(entry), &err) == SG_OK;
    if (got != want) {
        fail_msg("%s: %s: entry '%s' %s (%s)", c->file, c->name, entry,
                 got ? "accepted" : "rejected", err.msg);
    }
    sg_domains_list_free(l);
    free(entry);
}

/* ---- compile-problem files ----------------------------------------------- */

static void run_problems(sg_str_t doc, sg_str_t want, const char *file)
{
    sg_policy_t *p = NULL;
    sg_policy_problems_t probs = SG_POLICY_PROBLEMS_INIT;
    sg_error_t err = { 0 };
    int rc = sg_policy_compile(doc, &p, &probs, &err);
    assert_null(p);
    assert_int_not_equal(rc, SG_OK);
    assert_int_equal(err.code, rc);
    sg_json_iter_t it = SG_JSON_ITER_INIT(want);
    sg_str_t item;
    size_t n = 0;
    while (sg_json_array_next(&it, &item) == 1) {
        char *ptr = member_str(item, "pointer");
        sg_str_t off = member_raw(item, "offset");
        int64_t want_off = -1;
        if (off.ptr != NULL) {
            assert_int_equal(sg_json_int64(off, &want_off), SG_OK);
        }
        bool found = false;
        for (size_t i = 0; i < probs.count && !found; i++) {
            found = strcmp(probs.items[i].pointer, ptr) == 0 &&
                    (off.ptr == NULL || probs.items[i].offset == want_off);
        }
        if (!found) {
            for (size_t i = 0; i < probs.count; i++) {
                print_error("    %s (offset %ld): %s\n", probs.items[i].pointer,
                            probs.items[i].offset, probs.items[i].error);
            }
            fail_msg("%s: no problem at %s (offset %lld)", file, ptr, (long long)want_off);
        }
        free(ptr);
        n++;
    }
    if (probs.count != n) {
        fail_msg("%s: %zu problems reported, %zu expected", file, probs.count, n);
    }
    sg_policy_problems_dispose(&probs);
}

/* ---- the vector walk -------------------------------------------------------- */

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char **list_vector_files(size_t *n)
{
    DIR *d = opendir(SG_TEST_VECTORS "/policy");
    assert_non_null(d);
    char **v = NULL;
    struct dirent *e;
    *n = 0;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len > 5 && strcmp(e->d_name + len - 5, ".json") == 0) {
            v = realloc(v, (*n + 1) * sizeof(char *));
            v[(*n)++] = strdup(e->d_name);
        }
    }
    closedir(d);
    if (v != NULL) {
        qsort(v, *n, sizeof(char *), cmp_names);
    }
    return v;
}

static size_t run_cases(const sg_policy_t *p, sg_str_t cases, const char *file,
                        sg_policy_ctx_t *ctx, sg_domains_scan_t *scan)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(cases);
    sg_str_t item;
    size_t n = 0;
    while (sg_json_array_next(&it, &item) == 1) {
        struct vcase c = { file, member_str(item, "name"), item };
        assert_non_null(c.name);
        if (member_raw(item, "scan").ptr != NULL) {
            run_scan(scan, &c);
        } else if (member_raw(item, "normalise").ptr != NULL) {
            run_normalise(&c);
        } else if (member_raw(item, "entry").ptr != NULL) {
            run_entry(&c);
        } else if (member_raw(item, "expect_class").ptr != NULL) {
            run_classify(p, &c);
        } else if (member_raw(item, "visible").ptr != NULL) {
            run_visible(p, &c);
        } else {
            run_decision(p, &c, ctx);
        }
        free(c.name);
        n++;
    }
    return n;
}

static size_t run_file(const char *name, sg_policy_ctx_t *ctx, sg_domains_scan_t *scan)
{
    char path[512];
    size_t len, n = 0;
    snprintf(path, sizeof(path), "%s/policy/%s", SG_TEST_VECTORS, name);
    char *text = read_file(path, &len);
    sg_str_t doc = sg_str_n(text, len);
    if (sg_json_validate(text, len, SG_JSON_MAX_DEPTH, NULL) != SG_OK) {
        fail_msg("%s: not valid JSON", name);
    }
    sg_str_t config = member_raw(doc, "config"), problems = member_raw(doc, "problems");
    assert_non_null(config.ptr);
    if (problems.ptr != NULL) {
        run_problems(config, problems, name);
        n = 1;
    } else {
        sg_policy_t *p = compile_ok(config, name);
        n = run_cases(p, member_raw(doc, "cases"), name, ctx, scan);
        sg_policy_unref(p);
    }
    free(text);
    return n;
}

static void passes_policy_vectors(void **state)
{
    (void)state;
    size_t nfiles, total = 0;
    char **files = list_vector_files(&nfiles);
    sg_policy_ctx_t *ctx = sg_policy_ctx_new();
    sg_domains_scan_t *scan = sg_domains_scan_new();
    for (size_t i = 0; i < nfiles; i++) {
        size_t n = run_file(files[i], ctx, scan);
        print_message("  %-32s %3zu cases\n", files[i], n);
        total += n;
    }
    print_message("  %zu vector cases in %zu files\n", total, nfiles);
    assert_true(total >= 200);
    sg_domains_scan_free(scan);
    sg_policy_ctx_free(ctx);
    free_strs(files, nfiles);
}

/* ---- behaviour the files cannot express ------------------------------------- */

static void denies_without_policy(void **state)
{
    (void)state;
    sg_policy_input_t in = { .tool = SG_STR_LIT("fs__read"), .tool_class = SG_TOOL_CLASS_READ };
    sg_policy_result_t r;
    memset(&r, 0xff, sizeof(r));
    sg_policy_eval(NULL, &in, &r);
    assert_int_equal(r.decision, SG_DECISION_DENY);
    assert_string_equal(r.rule, "default");
    assert_false(sg_policy_tool_visible(NULL, SG_STR_NULL, NULL, 0, in.tool, SG_STR_NULL,
                                        SG_TOOL_CLASS_READ));
    sg_policy_result_t zero = { 0 };
    assert_int_equal(zero.decision, SG_DECISION_DENY); /* the zero value denies */
    sg_policy_result_dispose(&r);
    sg_policy_result_dispose(NULL);
}

static void keeps_snapshot_alive_while_referenced(void **state)
{
    (void)state;
    sg_policy_t *p = compile_cstr("{\"policies\":[{\"name\":\"a\",\"action\":\"allow\"}]}");
    assert_ptr_equal(sg_policy_ref(p), p);
    sg_policy_unref(p);
    sg_policy_input_t in = { .tool = SG_STR_LIT("x") };
    sg_policy_result_t r;
    sg_policy_eval(p, &in, &r);
    assert_string_equal(r.rule, "a");
    sg_policy_unref(p);
    sg_policy_unref(NULL);
    assert_null(sg_policy_ref(NULL));
}

static void reports_bad_json_with_empty_pointer(void **state)
{
    (void)state;
    static const char *const docs[] = { "", "{", "[]", "{\"a\":1,\"a\":2}", "\"x\"" };
    for (size_t i = 0; i < SG_ARRAY_LEN(docs); i++) {
        sg_policy_t *p = (sg_policy_t *)1;
        sg_policy_problems_t probs = SG_POLICY_PROBLEMS_INIT;
        int rc = sg_policy_compile(sg_str(docs[i]), &p, &probs, NULL);
        assert_int_not_equal(rc, SG_OK);
        assert_null(p);
        assert_int_equal(probs.count, 1);
        assert_string_equal(probs.items[0].pointer, "");
        sg_policy_problems_dispose(&probs);
    }
}

static void caps_problem_list(void **state)
{
    (void)state;
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "{\"policies\":[");
    for (int i = 0; i < 400; i++) {
        sg_buf_printf(&b,
                      "%s{\"name\":\"r%d\",\"action\":\"allow\",\"match\":{\"tool_regex\":\"(\"}}",
                      i != 0 ? "," : "", i);
    }
    sg_buf_append_cstr(&b, "]}");
    sg_policy_t *p = NULL;
    sg_policy_problems_t probs = SG_POLICY_PROBLEMS_INIT;
    sg_error_t err = { 0 };
    assert_int_equal(sg_policy_compile(sg_buf_str(&b), &p, &probs, &err), SG_EINVAL);
    assert_int_equal(probs.count, SG_POLICY_MAX_PROBLEMS);
    assert_true(probs.truncated);
    assert_string_equal(probs.items[399 - 399].pointer, "/policies/0/match/tool_regex");
    assert_non_null(strstr(err.msg, "400 problems"));
    /* without a list the result is the same */
    assert_int_equal(sg_policy_compile(sg_buf_str(&b), &p, NULL, &err), SG_EINVAL);
    sg_policy_problems_dispose(&probs);
    sg_buf_dispose(&b);
}

static void rejects_too_many_rules(void **state)
{
    (void)state;
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "{\"policies\":[");
    for (int i = 0; i <= SG_POLICY_MAX_RULES; i++) {
        sg_buf_printf(&b, "%s{\"name\":\"r%d\",\"action\":\"deny\"}", i != 0 ? "," : "", i);
    }
    sg_buf_append_cstr(&b, "]}");
    sg_policy_t *p = NULL;
    sg_policy_problems_t probs = SG_POLICY_PROBLEMS_INIT;
    assert_int_equal(sg_policy_compile(sg_buf_str(&b), &p, &probs, NULL), SG_EINVAL);
    assert_string_equal(probs.items[0].pointer, "/policies");
    sg_policy_problems_dispose(&probs);
    sg_buf_dispose(&b);
}


/* 300 rules of every index kind: exact tools, upstream + glob, generic globs, role-only. */
static void generate_rules(sg_buf_t *out)
{
    sg_buf_append_cstr(out, "{\"profile\":\"standard\",\"policies\":[");
    for (int i = 0; i < 300; i++) {
        const char *act = i % 3 == 0 ? "deny" : i % 3 == 1 ? "allow" : "approve";
        if (i % 4 == 0) {
            sg_buf_printf(out,
                          "{\"name\":\"r%d\",\"priority\":%d,\"action\":\"%s\",\"match\":{"
                          "\"tool\":[\"u%d__t%d\",\"u%d__t%d\"]}},",
                          i, i % 7, act, i % 5, i % 11, i % 5, (i + 1) % 11);
        } else if (i % 4 == 1) {
            sg_buf_printf(out,
                          "{\"name\":\"r%d\",\"priority\":%d,\"action\":\"%s\",\"match\":{"
                          "\"upstream\":\"u%d\",\"tool\":\"*t%d\"}},",
                          i, i % 7, act, i % 5, i % 11);
        } else if (i % 4 == 2) {
            sg_buf_printf(out,
                          "{\"name\":\"r%d\",\"priority\":%d,\"action\":\"%s\",\"match\":{"
                          "\"tool\":\"u%d__*\",\"class\":\"write\"}},",
                          i, i % 7, act, i % 5);
        } else {
            sg_buf_printf(out,
                          "{\"name\":\"r%d\",\"priority\":%d,\"action\":\"%s\",\"mode\":\"%s\","
                          "\"match\":{\"roles\":[\"r%d\"]}},",
                          i, i % 7, act, i % 8 == 3 ? "shadow" : "enforce", i % 3);
        }
    }
    sg_buf_append_cstr(out, "{\"name\":\"last\",\"action\":\"deny\",\"priority\":-5}]}");
}

/* Many rules: the indexed walk and the full traced walk agree, and visibility is consistent. */
static void index_agrees_with_linear_walk(void **state)
{
    (void)state;
    sg_buf_t b = SG_BUF_INIT;
    generate_rules(&b);
    sg_policy_t *p = compile_ok(sg_buf_str(&b), "generated");
    sg_policy_ctx_t *ctx = sg_policy_ctx_new();
    char *roles[] = { NULL };
    char tool[32], up[8], role[8];
    for (int u = 0; u < 6; u++) {
        for (int t = 0; t < 12; t++) {
            snprintf(tool, sizeof(tool), "u%d__t%d", u, t);
            snprintf(up, sizeof(up), "u%d", u);
            snprintf(role, sizeof(role), "r%d", t % 4);
            roles[0] = role;
            sg_policy_input_t in = { .identity = sg_str("x"),
                                     .roles = roles,
                                     .nroles = 1,
                                     .tool = sg_str(tool),
                                     .upstream = sg_str(up),
                                     .method = SG_STR_LIT("tools/call"),
                                     .tool_class = (sg_tool_class_t)(t % 3),
                                     .ctx = ctx };
            sg_policy_result_t a, z;
            sg_policy_eval(p, &in, &a);
            in.want_trace = true;
            sg_policy_eval(p, &in, &z);
            struct vcase c = { "generated", tool, SG_STR_NULL };
            check_same(&c, &a, &z);
            /* a hidden tool is never allowed nor sent for approval */
            bool visible = sg_policy_tool_visible(p, in.identity, roles, 1, in.tool, in.upstream,
                                                  in.tool_class);
            assert_true(visible || a.decision == SG_DECISION_DENY);
            sg_policy_result_dispose(&z);
        }
    }
    sg_policy_ctx_free(ctx);
    sg_policy_unref(p);
    sg_buf_dispose(&b);
}


/*
 * Every string of up to 6 characters over {'/', '.', 'a'}: a path-typed equals
 * written as the same string matches it. The rule side is always normalised
 * in full; the value side skips strings it judges already normal, so this
 * catches a wrong judgement.
 */
static void normalises_values_like_rules(void **state)
{
    (void)state;
    static const char alphabet[] = "/.a";
    char s[8], doc[160], args[64];
    sg_policy_ctx_t *ctx = sg_policy_ctx_new();
    for (int len = 0; len <= 6; len++) {
        int total = 1;
        for (int i = 0; i < len; i++) {
            total *= 3;
        }
        for (int code = 0; code < total; code++) {
            for (int i = 0, c = code; i < len; i++, c /= 3) {
                s[i] = alphabet[c % 3];
            }
            s[len] = '\0';
            snprintf(doc, sizeof(doc),
                     "{\"policies\":[{\"name\":\"eq\",\"action\":\"allow\",\"match\":{"
                     "\"args\":{\"p\":{\"equals\":\"%s\",\"type\":\"path\"}}}}]}",
                     s);
            snprintf(args, sizeof(args), "{\"p\":\"%s\"}", s);
            sg_policy_t *p = compile_cstr(doc);
            sg_policy_input_t in = { .tool = SG_STR_LIT("t"),
                                     .arguments = sg_str(args),
                                     .tool_class = SG_TOOL_CLASS_READ,
                                     .ctx = ctx };
            sg_policy_result_t r;
            sg_policy_eval(p, &in, &r);
            if (r.decision != SG_DECISION_ALLOW) {
                fail_msg("path '%s' does not equal itself", s);
            }
            sg_policy_unref(p);
        }
    }
    sg_policy_ctx_free(ctx);
}


/* Nesting deeper than the JSON limit is not walked: the scan says it is truncated. */
static void truncates_scan_past_json_depth(void **state)
{
    (void)state;
    sg_domains_scan_t *s = sg_domains_scan_new();
    sg_buf_t b = SG_BUF_INIT;
    for (int i = 0; i < 2 * (SG_JSON_MAX_DEPTH + 2); i++) {
        sg_buf_append_char(&b, i < SG_JSON_MAX_DEPTH + 2 ? '[' : ']');
    }
    sg_domains_scan_json(s, sg_buf_str(&b));
    assert_true(sg_domains_scan_truncated(s));
    sg_domains_scan_reset(s);
    assert_false(sg_domains_scan_truncated(s));
    sg_buf_dispose(&b);
    sg_domains_scan_free(s);
    sg_domains_scan_free(NULL);
}

static void survives_hostile_scan_input(void **state)
{
    (void)state;
    sg_domains_scan_t *s = sg_domains_scan_new();
    sg_buf_t b = SG_BUF_INIT;
    /* 2 MiB of base64-looking text, dots, percent signs and colons */
    static const char chunk[] = "QUFBQUFB%41%2e.:://@@[[::]]\xef\xbd\x8e\xe3\x80\x82";
    while (b.len < (2u << 20)) {
        sg_buf_append(&b, chunk, sizeof(chunk) - 1);
    }
    sg_domains_scan_text(s, sg_buf_str(&b));
    assert_true(sg_domains_scan_count(s) <= SG_DOMAINS_MAX_HOSTS);
    sg_buf_dispose(&b);
    sg_domains_scan_free(s);
}

/* Lookups through a sealed list (entry syntax is covered by 19_domain_entries.json). */
static void matches_hosts_against_lists(void **state)
{
    (void)state;
    static const char *const entries[] = { "PASTE.example.", "*.ngrok.io", "bücher.example",
                                           "[::1]", "co.uk" };
    sg_domain_list_t *l = sg_domains_list_new();
    for (size_t i = 0; i < SG_ARRAY_LEN(entries); i++) {
        assert_int_equal(sg_domains_list_add(l, sg_str(entries[i]), NULL), SG_OK);
    }
    sg_domains_list_seal(l);
    assert_int_equal(sg_domains_list_count(l), SG_ARRAY_LEN(entries));
    assert_true(sg_domains_list_match_host(l, "www.paste.example", "paste.example"));
    assert_true(sg_domains_list_match_host(l, "xn--bcher-kva.example", "xn--bcher-kva.example"));
    assert_true(sg_domains_list_match_host(l, "a.b.ngrok.io", "b.ngrok.io"));
    assert_true(sg_domains_list_match_host(l, "::1", NULL));
    assert_true(sg_domains_list_match_host(l, "co.uk", NULL));
    assert_false(sg_domains_list_match_host(l, "127.0.0.1", NULL));
    assert_false(sg_domains_list_match_host(l, "evil.co.uk", "evil.co.uk"));
    sg_domains_list_free(l);
    sg_domains_list_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(passes_policy_vectors),
        cmocka_unit_test(denies_without_policy),
        cmocka_unit_test(keeps_snapshot_alive_while_referenced),
        cmocka_unit_test(reports_bad_json_with_empty_pointer),
        cmocka_unit_test(caps_problem_list),
        cmocka_unit_test(rejects_too_many_rules),
        cmocka_unit_test(index_agrees_with_linear_walk),
        cmocka_unit_test(normalises_values_like_rules),
        cmocka_unit_test(truncates_scan_past_json_depth),
        cmocka_unit_test(survives_hostile_scan_input),
        cmocka_unit_test(matches_hosts_against_lists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
