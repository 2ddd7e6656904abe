/* SPDX-License-Identifier: Apache-2.0 */
/*
 * core/bootstrap: every file in tests/vectors/bootstrap (the same files
 * integration-tests/schema.test.js runs through the JSON Schema), then the
 * expansion of each profile read back with sg_tenant_parse, redaction, and
 * hostile bodies built in code.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "base/buf.h"
#include "base/json.h"
#include "core/bootstrap.h"
#include "core/session_token.h"
#include "core/tenant.h"

/* ---- helpers ------------------------------------------------------------- */

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

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Validates an exact-size heap copy (so ASan sees any read past the end). */
static int validate(const char *json, size_t len, sg_bootstrap_t **out, sg_problems_t *p)
{
    char *copy = malloc(len != 0 ? len : 1);
    assert_non_null(copy);
    memcpy(copy, json, len);
    int rc = sg_bootstrap_validate(copy, len, out, p);
    free(copy);
    return rc;
}

static void dump_problems(const char *name, const sg_problems_t *p)
{
    for (size_t i = 0; i < p->count; i++) {
        print_message("  %s: %s: %s\n", name, p->items[i].pointer, p->items[i].error);
    }
}

/* The SHA-256 hex of each identity's name: stand-ins for key hashes. */
static char **fake_hashes(const sg_bootstrap_t *b)
{
    size_t n = sg_bootstrap_identity_count(b);
    char **h = calloc(n + 1, sizeof(*h));
    assert_non_null(h);
    for (size_t i = 0; i < n; i++) {
        h[i] = malloc(65);
        assert_non_null(h[i]);
        const char *name = sg_bootstrap_identity_name(b, i);
        sg_sha256_hex(name, strlen(name), h[i]);
    }
    return h;
}

static void free_hashes(char **h)
{
    for (size_t i = 0; h[i] != NULL; i++) {
        free(h[i]);
    }
    free(h);
}

/* Expands b at version 1 into out and parses it back; returns the snapshot. */
static sg_tenant_t *expand_and_parse(const sg_bootstrap_t *b, sg_buf_t *out)
{
    char **h = fake_hashes(b);
    assert_int_equal(sg_bootstrap_expand(b, 1, (const char *const *)h, out), SG_OK);
    free_hashes(h);
    sg_error_t err = { 0 };
    assert_int_equal(sg_json_validate(out->data, out->len, SG_JSON_MAX_DEPTH, &err), SG_OK);
    sg_tenant_t *t = NULL;
    if (sg_tenant_parse(out->data, out->len, &t, &err) != SG_OK) {
        fail_msg("stored document does not parse: %s\n%s", err.msg, out->data);
    }
    assert_string_equal(t->name, sg_bootstrap_tenant(b));
    assert_string_equal(t->profile, sg_bootstrap_profile(b));
    assert_int_equal(t->nidentities, sg_bootstrap_identity_count(b));
    for (size_t i = 0; i < t->nidentities; i++) {
        assert_string_equal(t->identities[i].name, sg_bootstrap_identity_name(b, i));
        assert_int_equal(t->identities[i].nkeys, 1);
    }
    return t;
}

/* ---- vectors ------------------------------------------------------------- */

static bool case_string(sg_str_t c, const char *key, sg_buf_t *out)
{
    sg_str_t raw;
    if (sg_json_object_get(c, key, &raw) != SG_OK) {
        return false;
    }
    sg_buf_reset(out);
    assert_int_equal(sg_json_string_decode(raw, out), SG_OK);
    sg_buf_append(out, "", 0);
    return true;
}

static bool case_bool(sg_str_t c, const char *key, bool dflt)
{
    sg_str_t raw;
    if (sg_json_object_get(c, key, &raw) != SG_OK) {
        return dflt;
    }
    return sg_json_type(raw) == SG_JSON_TRUE;
}

/* The payload bytes of a case: payload (raw span), payload_text or payload_base64; pad_to. */
static void case_payload(sg_str_t c, sg_buf_t *out)
{
    sg_str_t raw;
    sg_buf_t tmp = SG_BUF_INIT;
    int64_t pad = 0;
    if (sg_json_object_get(c, "payload", &raw) == SG_OK) {
        sg_buf_append_str(out, raw);
    } else if (case_string(c, "payload_text", &tmp)) {
        sg_buf_append(out, tmp.data, tmp.len);
    } else {
        assert_true(case_string(c, "payload_base64", &tmp));
        sg_buf_reserve(out, tmp.len);
        int n = EVP_DecodeBlock((unsigned char *)out->data, (const unsigned char *)tmp.data,
                                (int)tmp.len);
        assert_true(n >= 0);
        out->len = (size_t)n - (tmp.len > 0 && tmp.data[tmp.len - 1] == '=') -
                   (tmp.len > 1 && tmp.data[tmp.len - 2] == '=');
    }
    if (sg_json_object_get(c, "pad_to", &raw) == SG_OK) {
        assert_int_equal(sg_json_int64(raw, &pad), SG_OK);
        while (out->len < (size_t)pad) {
            sg_buf_append_char(out, ' ');
        }
    }
    sg_buf_dispose(&tmp);
}

static void check_expected_pointers(sg_str_t c, const char *name, const sg_problems_t *p)
{
    sg_str_t list, item;
    sg_buf_t want = SG_BUF_INIT;
    assert_int_equal(sg_json_object_get(c, "pointers", &list), SG_OK);
    sg_json_iter_t it = SG_JSON_ITER_INIT(list);
    while (sg_json_array_next(&it, &item) == 1) {
        sg_buf_reset(&want);
        assert_int_equal(sg_json_string_decode(item, &want), SG_OK);
        sg_buf_append(&want, "", 0);
        if (!sg_problems_has(p, want.data)) {
            dump_problems(name, p);
            fail_msg("%s: no problem reported at \"%s\"", name, want.data);
        }
    }
    sg_buf_dispose(&want);
}

/* Valid payloads expand into a document that tenant.c loads, and redact. */
static void check_valid_case(const sg_bootstrap_t *b, sg_str_t payload)
{
    sg_buf_t out = SG_BUF_INIT, red = SG_BUF_INIT;
    sg_tenant_t *t = expand_and_parse(b, &out);
    sg_tenant_unref(t);
    assert_int_equal(sg_bootstrap_redact(payload.ptr, payload.len, &red), SG_OK);
    assert_int_equal(sg_json_validate(red.data, red.len, SG_JSON_MAX_DEPTH, NULL), SG_OK);
    sg_buf_reset(&red);
    assert_int_equal(sg_bootstrap_redact(out.data, out.len, &red), SG_OK);
    sg_buf_dispose(&out);
    sg_buf_dispose(&red);
}

/* Runs one vector; returns whether it was valid. */
static bool run_vector(const char *path)
{
    size_t len;
    char *text = read_file(path, &len);
    sg_error_t err = { 0 };
    if (sg_json_validate(text, len, 32, &err) != SG_OK) {
        fail_msg("%s: %s", path, err.msg);
    }
    sg_str_t c = sg_str_n(text, len);
    sg_buf_t name = SG_BUF_INIT, payload = SG_BUF_INIT;
    assert_true(case_string(c, "name", &name));
    case_payload(c, &payload);
    bool want_valid = case_bool(c, "valid", false);
    sg_problems_t p = SG_PROBLEMS_INIT;
    sg_bootstrap_t *b = NULL;
    int rc = validate(payload.data != NULL ? payload.data : "", payload.len, &b, &p);
    if ((rc == SG_OK) != want_valid) {
        dump_problems(name.data, &p);
        fail_msg("%s: got %s, want %s", name.data, sg_err_name(rc),
                 want_valid ? "valid" : "invalid");
    }
    if (want_valid) {
        assert_int_equal(p.count, 0);
        check_valid_case(b, sg_buf_str(&payload));
    } else {
        assert_null(b);
        assert_true(p.count > 0);
        check_expected_pointers(c, name.data, &p);
    }
    sg_bootstrap_free(b);
    sg_problems_dispose(&p);
    sg_buf_dispose(&name);
    sg_buf_dispose(&payload);
    free(text);
    return want_valid;
}

static void passes_every_vector(void **state)
{
    (void)state;
    const char *dir = SG_TEST_VECTORS "/bootstrap";
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t valid = 0, invalid = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0) {
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            if (run_vector(path)) {
                valid++;
            } else {
                invalid++;
            }
        }
    }
    closedir(d);
    print_message("%zu valid and %zu invalid bootstrap vectors\n", valid, invalid);
    assert_true(valid >= 10);
    assert_true(invalid >= 40);
}

/* ---- expansion ----------------------------------------------------------- */

#define DEFAULTS_STRICT                                                                            \
    "\"defaults\":{\"no_match\":\"deny\",\"approve_destructive\":true,\"scanning\":{\"mode\":"     \
    "\"block\",\"detectors\":[\"secrets\",\"pii\"],\"actions\":{\"secrets\":{\"arguments\":"       \
    "\"block\",\"results\":\"block\"},\"pii\":{\"arguments\":\"monitor\",\"results\":\"redact\"}}" \
    "}"                                                                                            \
    ",\"tool_change\":\"quarantine\",\"redis_unreachable\":\"deny\"}"
#define DEFAULTS_STANDARD                                                                    \
    "\"defaults\":{\"no_match\":\"allow_non_destructive\",\"approve_destructive\":false,"    \
    "\"scanning\":{\"mode\":\"block\",\"detectors\":[\"secrets\"],\"actions\":{\"secrets\":" \
    "{\"arguments\":\"block\",\"results\":\"block\"}}},\"tool_change\":\"flag\","            \
    "\"redis_unreachable\":\"deny\"}"
#define DEFAULTS_PERMISSIVE                                                                      \
    "\"defaults\":{\"no_match\":\"allow\",\"approve_destructive\":false,\"scanning\":{\"mode\":" \
    "\"monitor\",\"detectors\":[\"secrets\",\"pii\"],\"actions\":{\"secrets\":{\"arguments\":"   \
    "\"monitor\",\"results\":\"monitor\"},\"pii\":{\"arguments\":\"monitor\",\"results\":"       \
    "\"monitor\"}}},\"tool_change\":\"flag\",\"redis_unreachable\":\"serve_last_known\"}"

/* A payload for profile `profile` with both kinds of upstream and a supplied key. */
static void sample_payload(sg_buf_t *out, const char *profile)
{
    sg_buf_printf(
            out,
            "{ \"tenant\": \"acme\", \"profile\": \"%s\",\n"
            "  \"upstreams\": [\n"
            "    {\"name\": \"fs\", \"command\": \"npx\", \"args\": [\"srv\", \"/w s\"],\n"
            "     \"env\": {\"TOKEN\": \"env-secret-1\"}, \"timeout_ms\": 5000},\n"
            "    {\"name\": \"docs\", \"prefix\": \"\", \"url\": \"https://docs.example/mcp\",\n"
            "     \"headers\": {\"Authorization\": \"Bearer header-secret-2\"}}],\n"
            "  \"identities\": [{\"name\": \"agent-1\", \"roles\": [\"agent\"]},\n"
            "                 {\"name\": \"ci\", \"api_key\": "
            "\"supplied-secret-3-0123456789abcdef\"}],\n"
            "  \"policies\": [{\"name\": \"r\", \"priority\": 7, \"action\": \"deny\",\n"
            "                \"match\": {\"args\": {\"path\": {\"regex\": \"^/etc\"}}}}]\n"
            "}",
            profile);
}

static const char standard_expanded[] =
        "{\"tenant\":\"acme\",\"version\":1,\"profile\":\"standard\"," DEFAULTS_STANDARD
        ",\"identities\":[{\"name\":\"agent-1\",\"roles\":[\"agent\"],\"keys\":[{\"sha256\":"
        "\"HASH0\",\"expires_ms\":0}]},{\"name\":\"ci\",\"roles\":[],\"keys\":[{\"sha256\":"
        "\"HASH1\",\"expires_ms\":0}]}],"
        "\"upstreams\":[{\"name\":\"fs\",\"prefix\":\"fs\",\"command\":\"npx\",\"args\":[\"srv\","
        "\"/w s\"],\"env\":{\"TOKEN\":\"env-secret-1\"},\"timeout_ms\":5000},"
        "{\"name\":\"docs\",\"prefix\":\"\",\"url\":\"https://docs.example/mcp\",\"headers\":"
        "{\"Authorization\":\"Bearer header-secret-2\"},\"timeout_ms\":60000}],"
        "\"scanning\":{\"mode\":\"block\",\"detectors\":[\"secrets\"],\"actions\":{\"secrets\":"
        "{\"arguments\":\"block\",\"results\":\"block\"}},\"custom\":[]},"
        "\"policies\":[{\"name\":\"r\",\"priority\":7,\"action\":\"deny\",\"match\":{\"args\":"
        "{\"path\":{\"regex\":\"^/etc\"}}}}],\"classes\":{},\"approvals\":{\"timeout_s\":300},"
        "\"rate_limits\":[],\"audit\":{\"mode\":\"async\",\"on_unavailable\":\"serve\"},"
        "\"allowed_origins\":[]}";

/* Replaces the first "HASH<i>" placeholders of want with the fake hashes of b. */
static void fill_hashes(sg_buf_t *out, const char *want, const sg_bootstrap_t *b)
{
    char **h = fake_hashes(b);
    for (const char *p = want; *p != '\0';) {
        if (strncmp(p, "HASH", 4) == 0) {
            sg_buf_append_cstr(out, h[p[4] - '0']);
            p += 5;
        } else {
            sg_buf_append_char(out, *p++);
        }
    }
    free_hashes(h);
}

static sg_bootstrap_t *must_validate(const char *json)
{
    sg_problems_t p = SG_PROBLEMS_INIT;
    sg_bootstrap_t *b = NULL;
    int rc = validate(json, strlen(json), &b, &p);
    if (rc != SG_OK) {
        dump_problems("payload", &p);
        fail_msg("payload refused: %s", sg_err_name(rc));
    }
    sg_problems_dispose(&p);
    return b;
}

static void expands_standard_exactly(void **state)
{
    (void)state;
    sg_buf_t in = SG_BUF_INIT, out = SG_BUF_INIT, want = SG_BUF_INIT;
    sample_payload(&in, "standard");
    sg_bootstrap_t *b = must_validate(in.data);
    assert_int_equal(sg_bootstrap_identity_count(b), 2);
    assert_null(sg_bootstrap_identity_api_key(b, 0));
    assert_string_equal(sg_bootstrap_identity_api_key(b, 1), "supplied-secret-3-0123456789abcdef");
    sg_tenant_t *t = expand_and_parse(b, &out);
    fill_hashes(&want, standard_expanded, b);
    assert_string_equal(out.data, want.data);
    assert_null(strstr(out.data, "supplied-secret-3"));
    /* what the relay reads */
    assert_int_equal(t->version, 1);
    assert_int_equal(t->nupstreams, 2);
    assert_string_equal(t->upstreams[0].prefix, "fs");
    assert_int_equal(t->upstreams[0].kind, SG_UPSTREAM_STDIO);
    assert_string_equal(t->upstreams[0].env[0], "TOKEN=env-secret-1");
    assert_int_equal(t->upstreams[0].timeout_ms, 5000);
    assert_string_equal(t->upstreams[1].prefix, "");
    assert_int_equal(t->upstreams[1].kind, SG_UPSTREAM_HTTP);
    assert_string_equal(t->upstreams[1].headers[0], "Authorization: Bearer header-secret-2");
    assert_int_equal(t->upstreams[1].timeout_ms, 60000);
    uint8_t h[32];
    sg_sha256("ci", 2, h);
    assert_ptr_equal(sg_tenant_find_key(t, h, 0), &t->identities[1]);
    sg_tenant_unref(t);
    sg_bootstrap_free(b);
    sg_buf_dispose(&in);
    sg_buf_dispose(&out);
    sg_buf_dispose(&want);
}

static void expands_each_profile(void **state)
{
    (void)state;
    static const char *const profiles[][2] = { { "strict", DEFAULTS_STRICT },
                                               { "standard", DEFAULTS_STANDARD },
                                               { "permissive", DEFAULTS_PERMISSIVE } };
    for (size_t i = 0; i < SG_ARRAY_LEN(profiles); i++) {
        sg_buf_t in = SG_BUF_INIT, out = SG_BUF_INIT;
        sample_payload(&in, profiles[i][0]);
        sg_bootstrap_t *b = must_validate(in.data);
        assert_string_equal(sg_bootstrap_profile(b), profiles[i][0]);
        sg_tenant_t *t = expand_and_parse(b, &out);
        if (strstr(out.data, profiles[i][1]) == NULL) {
            fail_msg("%s: defaults differ:\n%s", profiles[i][0], out.data);
        }
        assert_int_equal(t->nupstreams, 2);
        assert_int_equal(t->nidentities, 2);
        assert_string_equal(t->identities[0].roles[0], "agent");
        sg_tenant_unref(t);
        sg_bootstrap_free(b);
        sg_buf_dispose(&in);
        sg_buf_dispose(&out);
    }
}

static void expansion_is_deterministic(void **state)
{
    (void)state;
    static const char a[] = "{\"tenant\":\"acme\",\"profile\":\"strict\",\"upstreams\":[{\"name\":"
                            "\"fs\",\"command\":\"x\",\"env\":{\"A\":\"1\"}}]}";
    static const char b2[] = "{ \"upstreams\" : [ { \"env\" : { \"A\" : \"1\" } , \"command\" :"
                             " \"x\" , \"name\" : \"fs\" } ] ,\n\t\"profile\": \"strict\",\r\n "
                             "\"tenant\" : \"acme\" }";
    sg_buf_t o1 = SG_BUF_INIT, o2 = SG_BUF_INIT;
    sg_bootstrap_t *x = must_validate(a), *y = must_validate(b2);
    sg_tenant_t *t1 = expand_and_parse(x, &o1), *t2 = expand_and_parse(y, &o2);
    assert_string_equal(o1.data, o2.data);
    assert_string_equal(t1->upstreams[0].fingerprint, t2->upstreams[0].fingerprint);
    sg_tenant_unref(t1);
    sg_tenant_unref(t2);
    sg_bootstrap_free(x);
    sg_bootstrap_free(y);
    sg_buf_dispose(&o1);
    sg_buf_dispose(&o2);
}

/* Expands a payload and checks that the stored "scanning" member is exactly want. */
static void expect_scanning(const char *payload, const char *want)
{
    sg_buf_t out = SG_BUF_INIT, got = SG_BUF_INIT;
    sg_bootstrap_t *b = must_validate(payload);
    sg_tenant_t *t = expand_and_parse(b, &out);
    sg_str_t v;
    assert_int_equal(sg_json_object_get(sg_buf_str(&out), "scanning", &v), SG_OK);
    sg_buf_append_str(&got, v);
    assert_string_equal(got.data, want);
    sg_tenant_unref(t);
    sg_bootstrap_free(b);
    sg_buf_dispose(&out);
    sg_buf_dispose(&got);
}

static void resolves_scanning(void **state)
{
    (void)state;
    /* the profile alone */
    expect_scanning(
            "{\"tenant\":\"a\",\"profile\":\"strict\"}",
            "{\"mode\":\"block\",\"detectors\":[\"secrets\",\"pii\"],\"actions\":{\"secrets\":"
            "{\"arguments\":\"block\",\"results\":\"block\"},\"pii\":{\"arguments\":\"monitor\","
            "\"results\":\"redact\"}},\"custom\":[]}");
    /* a mode overrides the profile's actions; detectors as listed */
    expect_scanning(
            "{\"tenant\":\"a\",\"profile\":\"strict\",\"scanning\":{\"mode\":\"monitor\","
            "\"detectors\":[\"pii\"]}}",
            "{\"mode\":\"monitor\",\"detectors\":[\"pii\"],\"actions\":{\"pii\":{\"arguments\":"
            "\"monitor\",\"results\":\"monitor\"}},\"custom\":[]}");
    /* per detector and per direction, over the mode; custom detectors */
    expect_scanning(
            "{\"tenant\":\"a\",\"profile\":\"standard\",\"scanning\":{\"detectors\":"
            "[\"pii\",\"secrets\"],\"actions\":{\"pii\":{\"arguments\":\"block\"},"
            "\"secrets\":\"off\"},\"custom\":[{\"name\":\"t\",\"regex\":\"T-\\\\d+\"},"
            "{\"name\":\"u\",\"regex\":\"U\",\"action\":{\"results\":\"redact\"}}]}}",
            "{\"mode\":\"block\",\"detectors\":[\"secrets\",\"pii\"],\"actions\":{\"secrets\":"
            "{\"arguments\":\"off\",\"results\":\"off\"},\"pii\":{\"arguments\":\"block\","
            "\"results\":\"redact\"}},\"custom\":[{\"name\":\"t\",\"regex\":\"T-\\\\d+\","
            "\"action\":{\"arguments\":\"block\",\"results\":\"block\"}},{\"name\":\"u\","
            "\"regex\":\"U\",\"action\":{\"arguments\":\"block\",\"results\":\"redact\"}}]}");
    /* permissive, custom detector inherits monitor */
    expect_scanning(
            "{\"tenant\":\"a\",\"profile\":\"permissive\",\"scanning\":{\"detectors\":[],"
            "\"custom\":[{\"name\":\"t\",\"regex\":\"x\"}]}}",
            "{\"mode\":\"monitor\",\"detectors\":[],\"actions\":{},\"custom\":[{\"name\":\"t\","
            "\"regex\":\"x\",\"action\":{\"arguments\":\"monitor\",\"results\":\"monitor\"}}]}");
}

static void keeps_given_members(void **state)
{
    (void)state;
    static const char in[] =
            "{\"tenant\":\"a\",\"profile\":\"permissive\",\"classes\":{\"fs__rm\":\"destructive\"},"
            "\"approvals\":{\"timeout_s\":60},\"rate_limits\":[{\"match\":{},\"per_minute\":5}],"
            "\"audit\":{\"mode\":\"sync\"},\"allowed_origins\":[\"https://a.example\"],"
            "\"upstreams\":[{\"name\":\"u\",\"url\":\"http://127.0.0.1:1/mcp\"}]}";
    sg_buf_t out = SG_BUF_INIT;
    sg_bootstrap_t *b = must_validate(in);
    sg_tenant_t *t = expand_and_parse(b, &out);
    assert_non_null(strstr(out.data, ",\"classes\":{\"fs__rm\":\"destructive\"},"));
    assert_non_null(strstr(out.data, ",\"approvals\":{\"timeout_s\":60},"));
    assert_non_null(strstr(out.data, ",\"rate_limits\":[{\"match\":{},\"per_minute\":5}],"));
    assert_non_null(
            strstr(out.data, ",\"audit\":{\"mode\":\"sync\",\"on_unavailable\":\"serve\"}"));
    assert_non_null(strstr(out.data,
                           "{\"name\":\"u\",\"prefix\":\"u\",\"url\":\"http://127.0.0.1:1/mcp\","
                           "\"headers\":{},\"timeout_ms\":60000}"));
    assert_int_equal(t->norigins, 1);
    assert_string_equal(t->allowed_origins[0], "https://a.example");
    assert_int_equal(t->nidentities, 0);
    sg_tenant_unref(t);
    sg_bootstrap_free(b);
    sg_buf_dispose(&out);
}

static void expand_refuses_bad_hashes(void **state)
{
    (void)state;
    sg_bootstrap_t *b = must_validate("{\"tenant\":\"a\",\"profile\":\"strict\","
                                      "\"identities\":[{\"name\":\"x\"}]}");
    sg_buf_t out = SG_BUF_INIT;
    const char *upper[] = { "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789" };
    const char *shorter[] = { "abc" };
    const char *null[] = { NULL };
    assert_int_equal(sg_bootstrap_expand(b, 1, upper, &out), SG_EINVAL);
    assert_int_equal(sg_bootstrap_expand(b, 1, shorter, &out), SG_EINVAL);
    assert_int_equal(sg_bootstrap_expand(b, 1, null, &out), SG_EINVAL);
    assert_int_equal(sg_bootstrap_expand(b, 1, NULL, &out), SG_EINVAL);
    assert_int_equal(out.len, 0);
    sg_bootstrap_free(b);
}

/* ---- redaction ----------------------------------------------------------- */

static void redact_expect(const char *in, const char *want)
{
    sg_buf_t out = SG_BUF_INIT;
    assert_int_equal(sg_bootstrap_redact(in, strlen(in), &out), SG_OK);
    assert_string_equal(out.data, want);
    sg_buf_dispose(&out);
}

static void redacts_every_secret(void **state)
{
    (void)state;
    sg_buf_t in = SG_BUF_INIT, stored = SG_BUF_INIT, out = SG_BUF_INIT;
    sample_payload(&in, "strict");
    sg_bootstrap_t *b = must_validate(in.data);
    sg_tenant_t *t = expand_and_parse(b, &stored);
    const char *docs[] = { in.data, stored.data };
    for (size_t i = 0; i < SG_ARRAY_LEN(docs); i++) {
        sg_buf_reset(&out);
        assert_int_equal(sg_bootstrap_redact(docs[i], strlen(docs[i]), &out), SG_OK);
        assert_null(strstr(out.data, "env-secret-1"));
        assert_null(strstr(out.data, "header-secret-2"));
        assert_null(strstr(out.data, "supplied-secret-3"));
        assert_non_null(strstr(out.data, "\"env\":{\"TOKEN\":\"[redacted]\"}"));
        assert_non_null(strstr(out.data, "\"headers\":{\"Authorization\":\"[redacted]\"}"));
        assert_non_null(strstr(out.data, "\"args\":[\"srv\",\"/w s\"]")); /* compact, not altered */
        assert_int_equal(sg_json_validate(out.data, out.len, SG_JSON_MAX_DEPTH, NULL), SG_OK);
    }
    assert_non_null(strstr(out.data, "\"sha256\":")); /* hashes are not secrets */
    sg_tenant_unref(t);
    sg_bootstrap_free(b);
    sg_buf_dispose(&in);
    sg_buf_dispose(&stored);
    sg_buf_dispose(&out);
}

static void redacts_invalid_payloads_too(void **state)
{
    (void)state;
    /* secrets at any depth, in shapes the schema refuses, with escaped member names */
    redact_expect("{\"x\":[{\"env\":\"A=1\"},{\"headers\":[\"k: v\"]}],\"\\u0065nv\":{\"B\":2},"
                  "\"api_key\":{\"nested\":\"k\"},\"s\":\"a b\"}",
                  "{\"x\":[{\"env\":\"[redacted]\"},{\"headers\":\"[redacted]\"}],\"\\u0065nv\":"
                  "{\"B\":\"[redacted]\"},\"api_key\":\"[redacted]\",\"s\":\"a b\"}");
    redact_expect(" [1, true ,null, \"env\"] ", "[1,true,null,\"env\"]");
    redact_expect("{\"identities\":[{\"name\":\"i\",\"api_key\":\"k1\"},{\"api_key\":\"k2\"}]}",
                  "{\"identities\":[{\"name\":\"i\",\"api_key\":\"[redacted]\"},{\"api_key\":"
                  "\"[redacted]\"}]}");
    sg_buf_t out = SG_BUF_INIT;
    assert_int_equal(sg_bootstrap_redact("{\"env\":", 7, &out), SG_EPARSE);
    assert_int_equal(sg_bootstrap_redact("{\"a\":1,\"a\":2}", 13, &out), SG_EDUPKEY);
    assert_int_equal(out.len, 0);
}

/* ---- problems and hostile bodies ----------------------------------------- */

static void problems_never_quote_values(void **state)
{
    (void)state;
    static const char in[] =
            "{\"tenant\":\"acme\",\"profile\":\"strict\",\"identities\":[{\"name\":\"a\","
            "\"api_key\":\"topsecret topsecret topsecret topsecret\"},{\"name\":\"b\","
            "\"api_key\":\"TOPSECRETxTOPSECRETxTOPSECRETxTOPSECRET\"},{\"name\":\"c\","
            "\"api_key\":\"TOPSECRETxTOPSECRETxTOPSECRETxTOPSECRET\"}],\"upstreams\":[{\"name\":"
            "\"u\",\"url\":\"https://user:topsecret@h/\",\"headers\":{\"A\":\"top\\nsecret\"}}]}";
    sg_problems_t p = SG_PROBLEMS_INIT;
    sg_bootstrap_t *b = NULL;
    assert_int_equal(validate(in, strlen(in), &b, &p), SG_EPARAMS);
    assert_true(p.count >= 4);
    for (size_t i = 0; i < p.count; i++) {
        assert_null(strcasestr(p.items[i].error, "secret"));
    }
    sg_buf_t json = SG_BUF_INIT;
    sg_problems_write_json(&p, &json);
    assert_int_equal(sg_json_validate(json.data, json.len, 8, NULL), SG_OK);
    assert_null(strcasestr(json.data, "topsecret"));
    sg_buf_dispose(&json);
    sg_problems_dispose(&p);
}

static void caps_the_problem_list(void **state)
{
    (void)state;
    sg_buf_t in = SG_BUF_INIT, json = SG_BUF_INIT;
    sg_buf_append_cstr(&in, "{\"tenant\":\"acme\",\"profile\":\"strict\",\"identities\":[");
    for (size_t i = 0; i < 2000; i++) {
        sg_buf_printf(&in, "%s{\"bogus\":%zu}", i != 0 ? "," : "", i);
    }
    sg_buf_append_cstr(&in, "]}");
    sg_problems_t p = SG_PROBLEMS_INIT;
    sg_bootstrap_t *b = NULL;
    assert_int_equal(validate(in.data, in.len, &b, &p), SG_EPARAMS);
    assert_int_equal(p.count, SG_PROBLEMS_MAX);
    assert_true(p.dropped > 0);
    /* 2000 unknown + 2000 missing names + the list is too long */
    assert_int_equal(p.count + p.dropped, 4001);
    sg_problems_write_json(&p, &json);
    assert_int_equal(sg_json_validate(json.data, json.len, 8, NULL), SG_OK);
    assert_non_null(strstr(json.data, "3489 more problems not listed"));
    sg_problems_dispose(&p);
    sg_buf_dispose(&in);
    sg_buf_dispose(&json);
}

static void refuses_without_parsing_past_the_limit(void **state)
{
    (void)state;
    size_t len = SG_BOOTSTRAP_MAX_BODY + 1;
    char *big = malloc(len);
    assert_non_null(big);
    memset(big, '[', len); /* would be a depth error if it were parsed */
    sg_problems_t p = SG_PROBLEMS_INIT;
    sg_bootstrap_t *b = NULL;
    assert_int_equal(sg_bootstrap_validate(big, len, &b, &p), SG_ETOOBIG);
    assert_int_equal(p.count, 1);
    assert_string_equal(p.items[0].pointer, "");
    assert_int_equal(sg_bootstrap_validate(big, 1000, &b, &p), SG_EDEPTH);
    assert_int_equal(sg_bootstrap_validate(NULL, 0, &b, &p), SG_EPARSE);
    assert_null(b);
    free(big);
    sg_problems_dispose(&p);
}

/* Hostile but well-formed: ~1 MiB of duplicate names must stay fast (no quadratic passes). */
static void stays_fast_on_hostile_lists(void **state)
{
    (void)state;
    static const char *const lists[] = { "policies", "identities", "upstreams" };
    for (size_t l = 0; l < SG_ARRAY_LEN(lists); l++) {
        sg_buf_t in = SG_BUF_INIT;
        sg_buf_printf(&in, "{\"tenant\":\"acme\",\"profile\":\"strict\",\"%s\":[", lists[l]);
        for (size_t i = 0; in.len < SG_BOOTSTRAP_MAX_BODY - 100; i++) {
            sg_buf_printf(&in, "%s{\"name\":\"n\",\"prefix\":\"\",\"api_key\":\"%032zu\"}",
                          i != 0 ? "," : "", i % 2);
        }
        sg_buf_append_cstr(&in, "]}");
        sg_problems_t p = SG_PROBLEMS_INIT;
        sg_bootstrap_t *b = NULL;
        double t0 = now_s();
        assert_int_equal(validate(in.data, in.len, &b, &p), SG_EPARAMS);
        double dt = now_s() - t0;
        print_message("%s: %zu bytes, %zu problems (+%zu) in %.3f s\n", lists[l], in.len, p.count,
                      p.dropped, dt);
        assert_true(dt < 10.0); /* generous: ASan; quadratic would take minutes */
        sg_problems_dispose(&p);
        sg_buf_dispose(&in);
    }
}

static void escapes_pointers(void **state)
{
    (void)state;
    static const char in[] = "{\"tenant\":\"acme\",\"profile\":\"strict\",\"upstreams\":[{\"name\":"
                             "\"u\",\"command\":\"x\",\"env\":{\"a/b~c\":\"v\"}}],"
                             "\"classes\":{\"\":\"read\"}}";
    sg_problems_t p = SG_PROBLEMS_INIT;
    sg_bootstrap_t *b = NULL;
    assert_int_equal(validate(in, strlen(in), &b, &p), SG_EPARAMS);
    assert_true(sg_problems_has(&p, "/upstreams/0/env/a~1b~0c"));
    assert_true(sg_problems_has(&p, "/classes/"));
    sg_problems_dispose(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(passes_every_vector),
        cmocka_unit_test(expands_standard_exactly),
        cmocka_unit_test(expands_each_profile),
        cmocka_unit_test(expansion_is_deterministic),
        cmocka_unit_test(resolves_scanning),
        cmocka_unit_test(keeps_given_members),
        cmocka_unit_test(expand_refuses_bad_hashes),
        cmocka_unit_test(redacts_every_secret),
        cmocka_unit_test(redacts_invalid_payloads_too),
        cmocka_unit_test(problems_never_quote_values),
        cmocka_unit_test(caps_the_problem_list),
        cmocka_unit_test(refuses_without_parsing_past_the_limit),
        cmocka_unit_test(stays_fast_on_hostile_lists),
        cmocka_unit_test(escapes_pointers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
