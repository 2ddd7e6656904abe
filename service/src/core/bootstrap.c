/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Bootstrap entry points: the problem list, the validation sequence (size,
 * strict JSON, schema walk, checks across members), the validated payload
 * object and redaction. The schema walk is bootstrap_check.c (its string
 * patterns bootstrap_patterns.c), the checks across members
 * bootstrap_rules.c, the stored document bootstrap_expand.c.
 */
#include "core/bootstrap.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/json.h"
#include "base/mem.h"
#include "core/bootstrap_int.h"
#include "core/policy.h"
#include "core/tenant.h"

/* ---- problems ------------------------------------------------------------ */

void sg_problems_dispose(sg_problems_t *p)
{
    for (size_t i = 0; i < p->count; i++) {
        free(p->items[i].pointer);
        free(p->items[i].error);
    }
    free(p->items);
    *p = SG_PROBLEMS_INIT;
}

static void problems_vadd(sg_problems_t *p, const char *pointer, const char *fmt, va_list ap)
        SG_PRINTF(3, 0);

static void problems_vadd(sg_problems_t *p, const char *pointer, const char *fmt, va_list ap)
{
    if (p->count >= SG_PROBLEMS_MAX) {
        p->dropped++;
        return;
    }
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    p->items = sg_xrealloc(p->items, (p->count + 1) * sizeof(*p->items));
    p->items[p->count].pointer = sg_xstrdup(pointer != NULL ? pointer : "");
    p->items[p->count].error = sg_xstrdup(msg);
    p->count++;
}

void sg_problems_add(sg_problems_t *p, const char *pointer, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problems_vadd(p, pointer, fmt, ap);
    va_end(ap);
}

bool sg_problems_has(const sg_problems_t *p, const char *pointer)
{
    for (size_t i = 0; i < p->count; i++) {
        if (strcmp(p->items[i].pointer, pointer) == 0) {
            return true;
        }
    }
    return false;
}

void sg_problems_write_json(const sg_problems_t *p, sg_buf_t *out)
{
    sg_buf_append_char(out, '[');
    for (size_t i = 0; i < p->count; i++) {
        sg_buf_append_cstr(out, i != 0 ? ",{\"pointer\":" : "{\"pointer\":");
        sg_json_write_cstr(out, p->items[i].pointer);
        sg_buf_append_cstr(out, ",\"error\":");
        sg_json_write_cstr(out, p->items[i].error);
        sg_buf_append_char(out, '}');
    }
    if (p->dropped != 0) {
        sg_buf_printf(out, "%s{\"pointer\":\"\",\"error\":\"%zu more problems not listed\"}",
                      p->count != 0 ? "," : "", p->dropped);
    }
    sg_buf_append_char(out, ']');
}

/* ---- the walk's pointer -------------------------------------------------- */

size_t sg_bootstrap_push_key(sg_bootstrap_walk_t *w, const char *key, size_t len)
{
    size_t mark = w->ptr.len;
    sg_buf_append_char(&w->ptr, '/');
    for (size_t i = 0; i < len; i++) {
        if (key[i] == '~') {
            sg_buf_append_cstr(&w->ptr, "~0");
        } else if (key[i] == '/') {
            sg_buf_append_cstr(&w->ptr, "~1");
        } else {
            sg_buf_append_char(&w->ptr, key[i]);
        }
    }
    return mark;
}

size_t sg_bootstrap_push_index(sg_bootstrap_walk_t *w, size_t i)
{
    size_t mark = w->ptr.len;
    sg_buf_printf(&w->ptr, "/%zu", i);
    return mark;
}

void sg_bootstrap_pop(sg_bootstrap_walk_t *w, size_t mark)
{
    SG_BUG_ON(mark > w->ptr.len);
    w->ptr.len = mark;
    if (w->ptr.data != NULL) {
        w->ptr.data[mark] = '\0';
    }
}

void sg_bootstrap_report(sg_bootstrap_walk_t *w, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problems_vadd(w->problems, w->ptr.data != NULL ? w->ptr.data : "", fmt, ap);
    va_end(ap);
    w->found++;
}

/* ---- validation ---------------------------------------------------------- */

/* A heap copy of the decoded string member key of obj, or NULL when absent. */
static char *dup_member(sg_str_t obj, const char *key)
{
    sg_str_t v;
    sg_buf_t b = SG_BUF_INIT;
    if (sg_json_object_get(obj, key, &v) != SG_OK || sg_json_string_decode(v, &b) != SG_OK) {
        sg_buf_dispose(&b);
        return NULL;
    }
    sg_buf_append(&b, "", 0);
    return sg_buf_steal(&b, NULL);
}

/* The object for a payload that passed every check. */
static sg_bootstrap_t *bootstrap_new(const char *json, size_t len)
{
    sg_bootstrap_t *b = sg_xcalloc(1, sizeof(*b));
    b->text = sg_xmemdup(json, len);
    b->len = len;
    sg_str_t root = sg_json_trim(sg_str_n(b->text, len)), ids, item;
    b->tenant = dup_member(root, "tenant");
    b->profile = dup_member(root, "profile");
    SG_BUG_ON(b->tenant == NULL || b->profile == NULL);
    if (sg_json_object_get(root, "identities", &ids) != SG_OK) {
        return b;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(ids);
    while (sg_json_array_next(&it, &item) == 1) {
        b->identities = sg_xrealloc(b->identities, (b->nidentities + 1) * sizeof(*b->identities));
        sg_bootstrap_identity_t *id = &b->identities[b->nidentities++];
        id->name = dup_member(item, "name");
        id->api_key = dup_member(item, "api_key");
        SG_BUG_ON(id->name == NULL);
    }
    return b;
}

/*
 * Last check: the stored document compiles the way a replica compiles it
 * (core/tenant.c for identities and upstreams, core/policy_load.c for rules,
 * classes and defaults), so nothing is stored that replicas would refuse and
 * keep their old snapshot over. Rules are stored as given, so the policy
 * compiler's pointers (/policies/2/...) are pointers into the payload too.
 */
static int check_compiles(const sg_bootstrap_t *b, sg_problems_t *problems)
{
    static const char zeros[] = "0000000000000000000000000000000000000000000000000000000000000000";
    const char **hashes = sg_xcalloc(b->nidentities + 1, sizeof(*hashes));
    for (size_t i = 0; i < b->nidentities; i++) {
        hashes[i] = zeros;
    }
    sg_buf_t doc = SG_BUF_INIT;
    int rc = sg_bootstrap_expand(b, 0, hashes, &doc);
    free((void *)hashes);
    SG_BUG_ON(rc != SG_OK);
    sg_tenant_t *t = NULL;
    sg_error_t err = { 0 };
    if (sg_tenant_parse(doc.data, doc.len, &t, &err) != SG_OK) {
        sg_problems_add(problems, "", "the stored form would be refused: %s", err.msg);
        rc = SG_EPARAMS;
    }
    sg_tenant_unref(t);
    sg_policy_t *policy = NULL;
    sg_policy_problems_t pp = SG_POLICY_PROBLEMS_INIT;
    if (sg_policy_compile(sg_buf_str(&doc), &policy, &pp, NULL) != SG_OK) {
        for (size_t i = 0; i < pp.count; i++) {
            sg_problems_add(problems, pp.items[i].pointer, "%s", pp.items[i].error);
        }
        if (pp.count == 0) {
            sg_problems_add(problems, "/policies", "the policy does not compile");
        }
        rc = SG_EPARAMS;
    }
    sg_policy_unref(policy);
    sg_policy_problems_dispose(&pp);
    sg_buf_dispose(&doc);
    return rc;
}

int sg_bootstrap_validate(const char *json, size_t len, sg_bootstrap_t **out,
                          sg_problems_t *problems)
{
    *out = NULL;
    if (len > SG_BOOTSTRAP_MAX_BODY) {
        sg_problems_add(problems, "", "body larger than %zu bytes", SG_BOOTSTRAP_MAX_BODY);
        return SG_ETOOBIG;
    }
    sg_error_t err = { 0 };
    int rc = sg_json_validate(json != NULL ? json : "", len, SG_BOOTSTRAP_MAX_DEPTH, &err);
    if (rc != SG_OK) {
        sg_problems_add(problems, "", "%s: %s", sg_err_message(rc), err.msg);
        return rc;
    }
    sg_bootstrap_walk_t w = { problems, SG_BUF_INIT, SG_BUF_INIT, 0 };
    sg_str_t root = sg_str_n(json, len);
    sg_bootstrap_check_schema(&w, root);
    sg_bootstrap_check_rules(&w, root);
    sg_buf_dispose(&w.ptr);
    sg_buf_dispose(&w.scratch);
    if (w.found != 0) {
        return SG_EPARAMS;
    }
    sg_bootstrap_t *b = bootstrap_new(json, len);
    rc = check_compiles(b, problems);
    if (rc != SG_OK) {
        sg_bootstrap_free(b);
        return rc;
    }
    *out = b;
    return SG_OK;
}

void sg_bootstrap_free(sg_bootstrap_t *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->nidentities; i++) {
        free(b->identities[i].name);
        free(b->identities[i].api_key);
    }
    free(b->identities);
    free(b->tenant);
    free(b->profile);
    free(b->text);
    free(b);
}

const char *sg_bootstrap_tenant(const sg_bootstrap_t *b)
{
    return b->tenant;
}

const char *sg_bootstrap_profile(const sg_bootstrap_t *b)
{
    return b->profile;
}

size_t sg_bootstrap_identity_count(const sg_bootstrap_t *b)
{
    return b->nidentities;
}

const char *sg_bootstrap_identity_name(const sg_bootstrap_t *b, size_t i)
{
    SG_BUG_ON(i >= b->nidentities);
    return b->identities[i].name;
}

const char *sg_bootstrap_identity_api_key(const sg_bootstrap_t *b, size_t i)
{
    SG_BUG_ON(i >= b->nidentities);
    return b->identities[i].api_key;
}

/* ---- compact copies and redaction ---------------------------------------- */

void sg_bootstrap_append_compact(sg_buf_t *out, sg_str_t raw)
{
    bool in_string = false, escaped = false;
    sg_buf_reserve(out, raw.len);
    for (size_t i = 0; i < raw.len; i++) {
        char c = raw.ptr[i];
        if (in_string) {
            in_string = escaped || c != '"';
            escaped = !escaped && c == '\\';
        } else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') {
            continue;
        } else {
            in_string = c == '"';
        }
        sg_buf_append_char(out, c);
    }
}

static const char redacted[] = "\"[redacted]\"";

static void redact_value(sg_buf_t *out, sg_str_t v);

/* An "env" or "headers" value: an object keeps its names, anything else goes whole. */
static void redact_secrets(sg_buf_t *out, sg_str_t v)
{
    if (sg_json_type(v) != SG_JSON_OBJECT) {
        sg_buf_append_cstr(out, redacted);
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t key, value;
    sg_buf_append_char(out, '{');
    for (size_t n = 0; sg_json_object_next(&it, &key, &value) == 1; n++) {
        sg_buf_append_cstr(out, n != 0 ? "," : "");
        sg_buf_append_str(out, key);
        sg_buf_append_char(out, ':');
        sg_buf_append_cstr(out, redacted);
    }
    sg_buf_append_char(out, '}');
}

static void redact_object(sg_buf_t *out, sg_str_t v)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t key, value;
    sg_buf_append_char(out, '{');
    for (size_t n = 0; sg_json_object_next(&it, &key, &value) == 1; n++) {
        sg_buf_append_cstr(out, n != 0 ? "," : "");
        sg_buf_append_str(out, key);
        sg_buf_append_char(out, ':');
        if (sg_json_string_eq(key, "api_key")) {
            sg_buf_append_cstr(out, redacted);
        } else if (sg_json_string_eq(key, "env") || sg_json_string_eq(key, "headers")) {
            redact_secrets(out, value);
        } else {
            redact_value(out, value);
        }
    }
    sg_buf_append_char(out, '}');
}

/* Recursion is bounded by the depth limit the text was validated with. */
static void redact_value(sg_buf_t *out, sg_str_t v)
{
    sg_json_type_t t = sg_json_type(v);
    if (t == SG_JSON_OBJECT) {
        redact_object(out, v);
    } else if (t == SG_JSON_ARRAY) {
        sg_json_iter_t it = SG_JSON_ITER_INIT(v);
        sg_str_t item;
        sg_buf_append_char(out, '[');
        for (size_t n = 0; sg_json_array_next(&it, &item) == 1; n++) {
            sg_buf_append_cstr(out, n != 0 ? "," : "");
            redact_value(out, item);
        }
        sg_buf_append_char(out, ']');
    } else {
        sg_bootstrap_append_compact(out, sg_json_trim(v));
    }
}

int sg_bootstrap_redact(const char *json, size_t len, sg_buf_t *out)
{
    int rc = sg_json_validate(json != NULL ? json : "", len, SG_JSON_MAX_DEPTH, NULL);
    if (rc != SG_OK) {
        return rc;
    }
    redact_value(out, sg_json_trim(sg_str_n(json, len)));
    return SG_OK;
}
