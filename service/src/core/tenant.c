/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Parses the stored tenant configuration into an sg_tenant_t. Only the parts
 * the relay needs are compiled here; policy, scanning and the rest are
 * compiled by their own modules from t->raw.
 */
#include "core/tenant.h"

#include <stdio.h>
#include <stdlib.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/mem.h"
#include "core/policy.h"
#include "core/session_token.h"

#define MAX_CONFIG      (8u << 20)
#define MAX_ITEMS       1024
#define DEFAULT_TIMEOUT 60000

bool sg_name_is_valid(sg_str_t s)
{
    if (s.len == 0 || s.len > SG_NAME_MAX) {
        return false;
    }
    for (size_t i = 0; i < s.len; i++) {
        char c = s.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.';
        if (!ok) {
            return false;
        }
    }
    return true;
}

/* Decodes a raw JSON string member into a heap copy; SG_EPARAMS when not a string. */
static int dup_string(sg_str_t raw, char **out)
{
    sg_buf_t b = SG_BUF_INIT;
    if (sg_json_type(raw) != SG_JSON_STRING || sg_json_string_decode(raw, &b) != SG_OK) {
        sg_buf_dispose(&b);
        return SG_EPARAMS;
    }
    if (memchr(b.data != NULL ? b.data : "", '\0', b.len) != NULL) {
        sg_buf_dispose(&b);
        return SG_EPARAMS;
    }
    *out = sg_buf_steal(&b, NULL);
    return SG_OK;
}

static int get_string(sg_str_t obj, const char *key, bool required, char **out, sg_error_t *err,
                      const char *where)
{
    sg_str_t v;
    int rc = sg_json_object_get(obj, key, &v);
    if (!required && (rc == SG_ENOTFOUND || (rc == SG_OK && sg_json_type(v) == SG_JSON_NULL))) {
        *out = NULL;
        return SG_OK;
    }
    if (rc != SG_OK || dup_string(v, out) != SG_OK) {
        return sg_error_set(err, SG_EPARAMS, "%s/%s: must be a string", where, key);
    }
    return SG_OK;
}

/* An array of strings (or, with as_pairs, an object of strings joined with sep) into a vector. */
static int get_strings(sg_str_t obj, const char *key, const char *sep, char ***out, size_t *n,
                       sg_error_t *err, const char *where)
{
    sg_str_t v;
    *out = NULL;
    *n = 0;
    if (sg_json_object_get(obj, key, &v) != SG_OK || sg_json_type(v) == SG_JSON_NULL) {
        return SG_OK;
    }
    bool pairs = sep != NULL;
    if (sg_json_type(v) != (pairs ? SG_JSON_OBJECT : SG_JSON_ARRAY)) {
        return sg_error_set(err, SG_EPARAMS, "%s/%s: must be an %s", where, key,
                            pairs ? "object" : "array");
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t k, item;
    int rc;
    while ((rc = pairs ? sg_json_object_next(&it, &k, &item) : sg_json_array_next(&it, &item)) ==
           1) {
        char *s = NULL;
        if (*n == MAX_ITEMS || dup_string(item, &s) != SG_OK) {
            return sg_error_set(err, SG_EPARAMS, "%s/%s: entries must be strings (at most %u)",
                                where, key, MAX_ITEMS);
        }
        if (pairs) {
            char *name = NULL;
            if (dup_string(k, &name) != SG_OK) {
                free(s);
                return sg_error_set(err, SG_EPARAMS, "%s/%s: bad key", where, key);
            }
            sg_buf_t b = SG_BUF_INIT;
            sg_buf_printf(&b, "%s%s%s", name, sep, s);
            free(name);
            free(s);
            s = sg_buf_steal(&b, NULL);
        }
        *out = sg_xrealloc(*out, (*n + 1) * sizeof(char *));
        (*out)[(*n)++] = s;
    }
    return rc == 0 ? SG_OK : sg_error_set(err, SG_EPARAMS, "%s/%s: malformed", where, key);
}

static int hex_to_bytes(const char *hex, uint8_t *out, size_t n)
{
    if (strlen(hex) != 2 * n) {
        return SG_EPARAMS;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(hex + 2 * i, "%2x", &v) != 1) {
            return SG_EPARAMS;
        }
        out[i] = (uint8_t)v;
    }
    return SG_OK;
}

static int parse_keys(sg_str_t ident, sg_identity_t *id, sg_error_t *err, const char *where)
{
    sg_str_t v, item;
    if (sg_json_object_get(ident, "keys", &v) != SG_OK) {
        return SG_OK;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    int rc;
    while ((rc = sg_json_array_next(&it, &item)) == 1) {
        char *hex = NULL;
        sg_str_t exp;
        int64_t expires = 0;
        if (id->nkeys == MAX_ITEMS || get_string(item, "sha256", true, &hex, err, where) != SG_OK) {
            return sg_error_set(err, SG_EPARAMS, "%s/keys: each key needs a sha256", where);
        }
        id->keys = sg_xrealloc(id->keys, (id->nkeys + 1) * sizeof(*id->keys));
        sg_identity_key_t *k = &id->keys[id->nkeys++];
        rc = hex_to_bytes(hex, k->sha256, 32);
        free(hex);
        if (sg_json_object_get(item, "expires_ms", &exp) == SG_OK &&
            sg_json_int64(exp, &expires) != SG_OK) {
            rc = SG_EPARAMS;
        }
        k->expires_ms = expires > 0 ? (uint64_t)expires : 0;
        if (rc != SG_OK) {
            return sg_error_set(err, SG_EPARAMS, "%s/keys: sha256 must be 64 hex digits", where);
        }
    }
    return rc == 0 ? SG_OK : sg_error_set(err, SG_EPARAMS, "%s/keys: must be an array", where);
}

static int parse_identity(sg_str_t raw, sg_identity_t *id, size_t i, sg_error_t *err)
{
    char where[48];
    snprintf(where, sizeof(where), "/identities/%zu", i);
    int rc = get_string(raw, "name", true, &id->name, err, where);
    if (rc == SG_OK && !sg_name_is_valid(sg_str(id->name))) {
        rc = sg_error_set(err, SG_EPARAMS, "%s/name: 1-64 of [A-Za-z0-9_.-]", where);
    }
    if (rc == SG_OK) {
        rc = get_strings(raw, "roles", NULL, &id->roles, &id->nroles, err, where);
    }
    if (rc == SG_OK) {
        rc = parse_keys(raw, id, err, where);
    }
    return rc;
}

static int parse_upstream_kind(sg_str_t raw, sg_upstream_cfg_t *u, sg_error_t *err,
                               const char *where)
{
    int rc = get_string(raw, "command", false, &u->command, err, where);
    if (rc == SG_OK) {
        rc = get_string(raw, "url", false, &u->url, err, where);
    }
    if (rc != SG_OK) {
        return rc;
    }
    if ((u->command == NULL) == (u->url == NULL)) {
        return sg_error_set(err, SG_EPARAMS, "%s: exactly one of command and url", where);
    }
    u->kind = u->url != NULL ? SG_UPSTREAM_HTTP : SG_UPSTREAM_STDIO;
    if (u->kind == SG_UPSTREAM_HTTP && strncmp(u->url, "http://", 7) != 0 &&
        strncmp(u->url, "https://", 8) != 0) {
        return sg_error_set(err, SG_EPARAMS, "%s/url: must be http:// or https://", where);
    }
    rc = get_strings(raw, "args", NULL, &u->args, &u->nargs, err, where);
    if (rc == SG_OK) {
        rc = get_strings(raw, "env", "=", &u->env, &u->nenv, err, where);
    }
    if (rc == SG_OK) {
        rc = get_strings(raw, "headers", ": ", &u->headers, &u->nheaders, err, where);
    }
    if (rc == SG_OK) {
        rc = get_string(raw, "cwd", false, &u->cwd, err, where);
    }
    return rc;
}

static int parse_upstream(sg_str_t raw, sg_upstream_cfg_t *u, size_t i, sg_error_t *err)
{
    char where[48];
    snprintf(where, sizeof(where), "/upstreams/%zu", i);
    int rc = get_string(raw, "name", true, &u->name, err, where);
    if (rc == SG_OK && !sg_name_is_valid(sg_str(u->name))) {
        return sg_error_set(err, SG_EPARAMS, "%s/name: 1-64 of [A-Za-z0-9_.-]", where);
    }
    if (rc == SG_OK) {
        rc = get_string(raw, "prefix", false, &u->prefix, err, where);
    }
    if (rc != SG_OK) {
        return rc;
    }
    if (u->prefix == NULL) {
        u->prefix = sg_xstrdup(u->name);
    } else if (u->prefix[0] != '\0' && !sg_name_is_valid(sg_str(u->prefix))) {
        return sg_error_set(err, SG_EPARAMS, "%s/prefix: \"\" or 1-64 of [A-Za-z0-9_.-]", where);
    }
    rc = parse_upstream_kind(raw, u, err, where);
    sg_str_t t;
    int64_t timeout = DEFAULT_TIMEOUT;
    if (rc == SG_OK && sg_json_object_get(raw, "timeout_ms", &t) == SG_OK &&
        (sg_json_int64(t, &timeout) != SG_OK || timeout < 100 || timeout > 3600000)) {
        rc = sg_error_set(err, SG_EPARAMS, "%s/timeout_ms: 100..3600000", where);
    }
    /* rounded up to 100 ms: each distinct duration costs the event loop one timer queue */
    u->timeout_ms = ((uint64_t)timeout + 99) / 100 * 100;
    u->fingerprint = sg_xcalloc(1, 65);
    sg_sha256_hex(raw.ptr, raw.len, u->fingerprint);
    return rc;
}

static int parse_list(sg_str_t root, const char *key, size_t elem, void **arr, size_t *n,
                      int (*fn)(sg_str_t, void *, size_t, sg_error_t *), sg_error_t *err)
{
    sg_str_t v, item;
    if (sg_json_object_get(root, key, &v) != SG_OK) {
        return SG_OK;
    }
    if (sg_json_type(v) != SG_JSON_ARRAY) {
        return sg_error_set(err, SG_EPARAMS, "/%s: must be an array", key);
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    int rc;
    while ((rc = sg_json_array_next(&it, &item)) == 1) {
        if (*n == MAX_ITEMS || sg_json_type(item) != SG_JSON_OBJECT) {
            return sg_error_set(err, SG_EPARAMS, "/%s/%zu: must be an object", key, *n);
        }
        *arr = sg_xrealloc(*arr, (*n + 1) * elem);
        void *slot = (char *)*arr + *n * elem;
        memset(slot, 0, elem);
        (*n)++;
        int r = fn(item, slot, *n - 1, err);
        if (r != SG_OK) {
            return r;
        }
    }
    return rc == 0 ? SG_OK : sg_error_set(err, SG_EPARAMS, "/%s: malformed", key);
}

static int identity_fn(sg_str_t raw, void *slot, size_t i, sg_error_t *err)
{
    return parse_identity(raw, slot, i, err);
}

static int upstream_fn(sg_str_t raw, void *slot, size_t i, sg_error_t *err)
{
    return parse_upstream(raw, slot, i, err);
}

static int check_unique(const sg_tenant_t *t, sg_error_t *err)
{
    for (size_t i = 0; i < t->nupstreams; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t->upstreams[i].name, t->upstreams[j].name) == 0) {
                return sg_error_set(err, SG_EPARAMS, "/upstreams/%zu/name: duplicate", i);
            }
        }
    }
    for (size_t i = 0; i < t->nidentities; i++) {
        for (size_t j = 0; j < i; j++) {
            if (strcmp(t->identities[i].name, t->identities[j].name) == 0) {
                return sg_error_set(err, SG_EPARAMS, "/identities/%zu/name: duplicate", i);
            }
        }
    }
    return SG_OK;
}

int sg_tenant_parse(const char *json, size_t len, sg_tenant_t **out, sg_error_t *err)
{
    if (len > MAX_CONFIG) {
        return sg_error_set(err, SG_ETOOBIG, "tenant config larger than %u bytes", MAX_CONFIG);
    }
    int rc = sg_json_validate(json, len, SG_JSON_MAX_DEPTH, err);
    if (rc != SG_OK) {
        return rc;
    }
    sg_str_t root = { json, len };
    if (sg_json_type(root) != SG_JSON_OBJECT) {
        return sg_error_set(err, SG_EPARAMS, "tenant config must be an object");
    }
    sg_tenant_t *t = sg_xcalloc(1, sizeof(*t));
    t->_refcnt = 1;
    t->raw = sg_xmemdup(json, len);
    t->raw_len = len;
    sg_str_t v;
    rc = get_string(root, "tenant", true, &t->name, err, "");
    if (rc == SG_OK && !sg_name_is_valid(sg_str(t->name))) {
        rc = sg_error_set(err, SG_EPARAMS, "/tenant: 1-64 of [A-Za-z0-9_.-]");
    }
    if (rc == SG_OK && (sg_json_object_get(root, "version", &v) != SG_OK ||
                        sg_json_int64(v, &t->version) != SG_OK)) {
        rc = sg_error_set(err, SG_EPARAMS, "/version: must be an integer");
    }
    if (rc == SG_OK) {
        rc = get_string(root, "profile", false, &t->profile, err, "");
    }
    if (rc == SG_OK) {
        rc = parse_list(root, "identities", sizeof(sg_identity_t), (void **)&t->identities,
                        &t->nidentities, identity_fn, err);
    }
    if (rc == SG_OK) {
        rc = parse_list(root, "upstreams", sizeof(sg_upstream_cfg_t), (void **)&t->upstreams,
                        &t->nupstreams, upstream_fn, err);
    }
    if (rc == SG_OK) {
        rc = get_strings(root, "allowed_origins", NULL, &t->allowed_origins, &t->norigins, err, "");
    }
    sg_str_t audit, mode;
    t->audit_sync = sg_json_object_get(root, "audit", &audit) == SG_OK &&
                    sg_json_object_get(audit, "mode", &mode) == SG_OK &&
                    sg_json_string_eq(mode, "sync");
    sg_str_t defaults, unreachable;
    t->serve_last_known = t->profile != NULL && strcmp(t->profile, "permissive") == 0;
    if (sg_json_object_get(root, "defaults", &defaults) == SG_OK &&
        sg_json_object_get(defaults, "redis_unreachable", &unreachable) == SG_OK) {
        t->serve_last_known = sg_json_string_eq(unreachable, "serve_last_known");
    }
    if (rc == SG_OK) {
        rc = check_unique(t, err);
    }
    if (rc == SG_OK) {
        sg_error_t perr = { 0 };
        if (sg_policy_compile(root, &t->policy, NULL, &perr) != SG_OK) {
            rc = sg_error_set(err, SG_EPARAMS, "policies: %s", perr.msg);
        }
    }
    if (rc != SG_OK) {
        sg_tenant_unref(t);
        return rc;
    }
    *out = t;
    return SG_OK;
}

sg_tenant_t *sg_tenant_ref(sg_tenant_t *t)
{
    t->_refcnt++;
    return t;
}

static void free_strv(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i]);
    }
    free(v);
}

static void free_upstream(sg_upstream_cfg_t *u)
{
    free(u->name);
    free(u->prefix);
    free(u->command);
    free_strv(u->args, u->nargs);
    free_strv(u->env, u->nenv);
    free(u->cwd);
    free(u->url);
    free_strv(u->headers, u->nheaders);
    free(u->fingerprint);
}

void sg_tenant_unref(sg_tenant_t *t)
{
    if (t == NULL || --t->_refcnt > 0) {
        return;
    }
    for (size_t i = 0; i < t->nidentities; i++) {
        free(t->identities[i].name);
        free_strv(t->identities[i].roles, t->identities[i].nroles);
        free(t->identities[i].keys);
    }
    free(t->identities);
    for (size_t i = 0; i < t->nupstreams; i++) {
        free_upstream(&t->upstreams[i]);
    }
    free(t->upstreams);
    free_strv(t->allowed_origins, t->norigins);
    sg_policy_unref(t->policy);
    free(t->name);
    free(t->profile);
    free(t->raw);
    free(t);
}

const sg_identity_t *sg_tenant_find_key(const sg_tenant_t *t, const uint8_t sha256[32],
                                        uint64_t now_ms)
{
    for (size_t i = 0; i < t->nidentities; i++) {
        const sg_identity_t *id = &t->identities[i];
        for (size_t k = 0; k < id->nkeys; k++) {
            bool live = id->keys[k].expires_ms == 0 || id->keys[k].expires_ms > now_ms;
            if (live && sg_ct_equal(id->keys[k].sha256, 32, sha256, 32)) {
                return id;
            }
        }
    }
    return NULL;
}

const sg_upstream_cfg_t *sg_tenant_find_upstream(const sg_tenant_t *t, sg_str_t name)
{
    for (size_t i = 0; i < t->nupstreams; i++) {
        if (sg_str_eq_cstr(name, t->upstreams[i].name)) {
            return &t->upstreams[i];
        }
    }
    return NULL;
}
