/* SPDX-License-Identifier: Apache-2.0 */
/*
 * core/jsonrpc: envelope rules from the files in tests/vectors/jsonrpc, hostile
 * bodies built in code (sizes, depth, bytes a vector file cannot hold),
 * ownership of decoded method names, and the builders.
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

#include "base/buf.h"
#include "base/json.h"
#include "core/jsonrpc.h"

/* ---- helpers ----------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Parses an exact-size heap copy of body with the given limits (NULL: default). */
static int parse_n(const char *body, size_t len, const sg_jsonrpc_limits_t *limits,
                   sg_jsonrpc_batch_t *out, sg_error_t *err, char **copy)
{
    *copy = malloc(len != 0 ? len : 1);
    assert_non_null(*copy);
    if (len != 0) {
        memcpy(*copy, body, len);
    }
    return sg_jsonrpc_parse(*copy, len, limits, out, err);
}

/* Parses body, checks the code, releases everything. */
static void expect_code(const char *body, size_t len, int want)
{
    sg_jsonrpc_batch_t b;
    sg_error_t err = { 0 };
    char *copy;
    int rc = parse_n(body, len != 0 ? len : strlen(body), NULL, &b, &err, &copy);
    if (rc != want) {
        print_error("got %s (%s), want %s\n", sg_err_name(rc), err.msg, sg_err_name(want));
    }
    assert_int_equal(rc, want);
    if (rc == SG_OK) {
        sg_jsonrpc_batch_dispose(&b);
    } else {
        assert_int_equal(err.code, rc);
        assert_null(b.msgs);
        assert_int_equal(b.count, 0);
    }
    free(copy);
}

static const char *kind_name(sg_jsonrpc_kind_t k)
{
    static const char *const names[] = { "invalid", "request", "notification", "response",
                                         "error" };
    return (size_t)k < SG_ARRAY_LEN(names) ? names[k] : "?";
}

static bool str_is(sg_str_t s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.ptr, want, s.len) == 0);
}

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
    return sg_buf_steal(&b, len);
}

/* ---- vectors ------------------------------------------------------------- */

/* Decodes member `key` of the case object into out; false when absent. */
static bool case_string(sg_str_t c, const char *key, sg_buf_t *out)
{
    sg_str_t raw;
    if (sg_json_object_get(c, key, &raw) != SG_OK) {
        return false;
    }
    sg_buf_reset(out);
    assert_int_equal(sg_json_string_decode(raw, out), SG_OK);
    sg_buf_append(out, "", 0); /* data is never NULL afterwards */
    return true;
}

static void check_parsed(sg_str_t c, const sg_jsonrpc_batch_t *b, const char *name)
{
    sg_buf_t want = SG_BUF_INIT;
    sg_str_t raw;
    int64_t count;
    if (case_string(c, "kind", &want) && strcmp(kind_name(b->msgs[0].kind), want.data) != 0) {
        fail_msg("%s: kind %s, want %s", name, kind_name(b->msgs[0].kind), want.data);
    }
    if (case_string(c, "id", &want) && !str_is(b->msgs[0].id, want.data)) {
        fail_msg("%s: id differs", name);
    }
    if (case_string(c, "method", &want) && !str_is(b->msgs[0].method, want.data)) {
        fail_msg("%s: method differs", name);
    }
    if (sg_json_object_get(c, "count", &raw) == SG_OK) {
        assert_int_equal(sg_json_int64(raw, &count), SG_OK);
        assert_int_equal(b->count, (size_t)count);
        assert_int_equal(b->is_batch, true);
    }
    for (size_t i = 0; i < b->count; i++) {
        assert_int_not_equal(b->msgs[i].kind, SG_JSONRPC_INVALID);
        assert_int_equal(sg_json_type(b->msgs[i].raw), SG_JSON_OBJECT);
    }
    sg_buf_dispose(&want);
}

static size_t run_vector_case(sg_str_t c)
{
    sg_buf_t name = SG_BUF_INIT, body = SG_BUF_INIT, expect = SG_BUF_INIT;
    sg_jsonrpc_batch_t b;
    sg_error_t err = { 0 };
    char *copy;
    assert_true(case_string(c, "name", &name));
    assert_true(case_string(c, "body", &body));
    assert_true(case_string(c, "expect", &expect));
    assert_non_null(expect.data);
    int rc = parse_n(body.data, body.len, NULL, &b, &err, &copy);
    if (strcmp(sg_err_name(rc), expect.data) != 0) {
        fail_msg("%s: got %s (%s), want %s", name.data, sg_err_name(rc), err.msg, expect.data);
    }
    if (rc == SG_OK) {
        check_parsed(c, &b, name.data);
        sg_jsonrpc_batch_dispose(&b);
    } else {
        assert_true(err.msg[0] != '\0');
    }
    free(copy);
    sg_buf_dispose(&name);
    sg_buf_dispose(&body);
    sg_buf_dispose(&expect);
    return 1;
}

static size_t run_vector_file(const char *path)
{
    size_t len, n = 0;
    char *text = read_file(path, &len);
    sg_error_t err = { 0 };
    if (sg_json_validate(text, len, 8, &err) != SG_OK) {
        fail_msg("%s: %s", path, err.msg);
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(sg_str_n(text, len));
    sg_str_t c;
    int rc;
    while ((rc = sg_json_array_next(&it, &c)) == 1) {
        n += run_vector_case(c);
    }
    assert_int_equal(rc, 0);
    free(text);
    return n;
}

static void passes_envelope_vectors(void **state)
{
    (void)state;
    const char *dir = SG_TEST_VECTORS "/jsonrpc";
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    size_t cases = 0;
    while ((e = readdir(d)) != NULL) {
        size_t n = strlen(e->d_name);
        if (n > 5 && strcmp(e->d_name + n - 5, ".json") == 0) {
            char path[1024];
            snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
            cases += run_vector_file(path);
        }
    }
    closedir(d);
    print_message("%zu envelope vectors\n", cases);
    assert_true(cases >= 80);
}

/* ---- hostile bodies ------------------------------------------------------ */

#define MB ((size_t)1024 * 1024)

static void rejects_oversized_body_before_parsing(void **state)
{
    (void)state;
    size_t len = 50 * MB;
    char *body = malloc(len);
    assert_non_null(body);
    memset(body, '[', len); /* would be EDEPTH if it were parsed */
    sg_jsonrpc_batch_t b;
    sg_error_t err = { 0 };
    double t0 = now_s();
    assert_int_equal(sg_jsonrpc_parse(body, len, NULL, &b, &err), SG_ETOOBIG);
    assert_true(now_s() - t0 < 0.1);
    assert_null(b.msgs);
    sg_jsonrpc_limits_t lim = SG_JSONRPC_LIMITS_DEFAULT;
    lim.max_body = 10;
    assert_int_equal(sg_jsonrpc_parse(body, 11, &lim, &b, &err), SG_ETOOBIG);
    assert_int_equal(sg_jsonrpc_parse(body, 10, &lim, &b, &err), SG_EPARSE);
    free(body);
    const char *ok = "{\"jsonrpc\":\"2.0\",\"method\":\"m\"}";
    lim.max_body = strlen(ok);
    assert_int_equal(sg_jsonrpc_parse(ok, strlen(ok), &lim, &b, &err), SG_OK);
    sg_jsonrpc_batch_dispose(&b);
}

/* A valid request of about `size` bytes: long strings, many numbers, many small objects. */
static void build_big_request(sg_buf_t *b, size_t size)
{
    sg_buf_reserve(b, size + 256);
    sg_buf_append_cstr(b, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":"
                          "{\"name\":\"write\",\"arguments\":{\"blob\":\"");
    size_t blob = size / 2;
    memset(b->data + b->len, 'x', blob);
    b->len += blob;
    sg_buf_append_cstr(b, "\",\"rows\":[");
    for (size_t i = 0; b->len < size; i++) {
        sg_buf_printf(b, "%s{\"i\":%zu,\"s\":\"r\\u00e9\\n\"}", i != 0 ? "," : "", i);
    }
    sg_buf_append_cstr(b, "]}}}");
}

static void parses_50mb_body_when_allowed(void **state)
{
    (void)state;
    sg_buf_t body = SG_BUF_INIT;
    build_big_request(&body, 50 * MB);
    sg_jsonrpc_limits_t lim = SG_JSONRPC_LIMITS_DEFAULT;
    lim.max_body = 64 * MB;
    sg_jsonrpc_batch_t b;
    sg_error_t err = { 0 };
    double t0 = now_s();
    assert_int_equal(sg_jsonrpc_parse(body.data, body.len, &lim, &b, &err), SG_OK);
    double elapsed = now_s() - t0;
    print_message("50 MB body: %.2f s\n", elapsed);
    assert_true(elapsed < 30.0);
    assert_int_equal(b.msgs[0].kind, SG_JSONRPC_REQUEST);
    assert_true(str_is(b.msgs[0].method, "tools/call"));
    assert_true(b.msgs[0].params.len > 50 * MB - 200);
    sg_jsonrpc_batch_dispose(&b);
    /* the same body, one byte short, fails cleanly */
    assert_int_equal(sg_jsonrpc_parse(body.data, body.len - 1, &lim, &b, &err), SG_EPARSE);
    sg_buf_dispose(&body);
}

static void rejects_hostile_nesting(void **state)
{
    (void)state;
    static const struct {
        const char *open, *close;
    } shapes[] = { { "[", "]" }, { "{\"a\":", "}" } };
    for (size_t s = 0; s < SG_ARRAY_LEN(shapes); s++) {
        for (int closed = 0; closed < 2; closed++) {
            static const char prefix[] =
                    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"m\",\"params\":";
            sg_buf_t b = SG_BUF_INIT;
            sg_buf_append_cstr(&b, prefix);
            for (size_t i = 0; i < 100000; i++) {
                sg_buf_append_cstr(&b, shapes[s].open);
            }
            sg_buf_append_cstr(&b, "1");
            for (size_t i = 0; closed && i < 100000; i++) {
                sg_buf_append_cstr(&b, shapes[s].close);
            }
            expect_code(b.data, b.len, SG_EDEPTH);
            /* bare, as the whole body */
            expect_code(b.data + sizeof(prefix) - 1, b.len - sizeof(prefix) + 1, SG_EDEPTH);
            sg_buf_dispose(&b);
        }
    }
}

#define LIT(s) s, sizeof(s) - 1

static void rejects_bad_bytes(void **state)
{
    (void)state;
    static const struct {
        const char *body;
        size_t len;
        int want;
    } cases[] = {
        { LIT("{\"jsonrpc\":\"2.0\",\"method\":\"m\0\"}"), SG_ENULCHAR },
        { LIT("{\"jsonrpc\":\"2.0\",\"method\":\"m\"}\0"), SG_ENULCHAR },
        { LIT("{\"jsonrpc\":\"2.0\",\"method\":\"m\"}\n\0\n"), SG_ENULCHAR },
        { LIT("\0"), SG_ENULCHAR },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"\xc3\x28\"}", 0, SG_EUTF8 },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"\xc0\xaf\"}", 0, SG_EUTF8 },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"\xed\xa0\x80\"}", 0, SG_EUTF8 },
        { "{\"jsonrpc\":\"2.0\",\"\xc0\xaf\":1,\"method\":\"m\"}", 0, SG_EUTF8 },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"m\",\"params\":[\"\xe2\x82", 0, SG_EUTF8 },
        { "{\"jsonrpc\":\"2.0\",\"method\":\"\xc3\xa9\"}", 0, SG_OK },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        expect_code(cases[i].body, cases[i].len, cases[i].want);
    }
}

static void keeps_ids_exactly_as_written(void **state)
{
    (void)state;
    static const char *const ids[] = { "123456789012345678901234567890",
                                       "-123456789012345678901234567890.5e-999",
                                       "0",
                                       "\"abc\"",
                                       "\"\\u00e9\\\"\"",
                                       "1E5" };
    for (size_t i = 0; i < SG_ARRAY_LEN(ids); i++) {
        char body[256];
        snprintf(body, sizeof(body), "{\"jsonrpc\":\"2.0\",\"id\": %s ,\"method\":\"m\"}", ids[i]);
        sg_jsonrpc_batch_t b;
        char *copy;
        assert_int_equal(parse_n(body, strlen(body), NULL, &b, NULL, &copy), SG_OK);
        assert_true(str_is(b.msgs[0].id, ids[i]));
        assert_true(b.msgs[0].id.ptr >= copy && b.msgs[0].id.ptr < copy + strlen(body));
        sg_jsonrpc_batch_dispose(&b);
        free(copy);
    }
}

static void rejects_batches_empty_over_limit_or_mixed(void **state)
{
    (void)state;
    sg_jsonrpc_limits_t lim = SG_JSONRPC_LIMITS_DEFAULT;
    sg_jsonrpc_batch_t b;
    sg_error_t err = { 0 };
    const char *two =
            "[{\"jsonrpc\":\"2.0\",\"method\":\"a\"},{\"jsonrpc\":\"2.0\",\"method\":\"b\"}]";
    lim.max_batch = 1;
    assert_int_equal(sg_jsonrpc_parse(two, strlen(two), &lim, &b, &err), SG_EREQUEST);
    assert_null(strstr(err.msg, "\"a\""));
    lim.max_batch = 2;
    assert_int_equal(sg_jsonrpc_parse(two, strlen(two), &lim, &b, &err), SG_OK);
    assert_int_equal(b.count, 2);
    assert_true(b.is_batch);
    assert_true(str_is(b.msgs[1].method, "b"));
    sg_jsonrpc_batch_dispose(&b);
    const char *mixed =
            "[{\"jsonrpc\":\"2.0\",\"method\":\"a\"},{\"jsonrpc\":\"2.0\",\"SECRET\":1},"
            "{\"jsonrpc\":\"2.0\",\"method\":\"\\u0063\"}]";
    assert_int_equal(sg_jsonrpc_parse(mixed, strlen(mixed), NULL, &b, &err), SG_EREQUEST);
    assert_non_null(strstr(err.msg, "batch element 1"));
    assert_null(strstr(err.msg, "SECRET"));
    assert_null(b.msgs);
    assert_null(b._decoded);
    /* a huge batch is counted only up to the limit */
    sg_buf_t big = SG_BUF_INIT;
    sg_buf_append_char(&big, '[');
    for (size_t i = 0; i < 200000; i++) {
        sg_buf_append_cstr(&big, i != 0 ? ",{}" : "{}");
    }
    sg_buf_append_char(&big, ']');
    lim = SG_JSONRPC_LIMITS_DEFAULT;
    lim.max_body = big.len;
    assert_int_equal(sg_jsonrpc_parse(big.data, big.len, &lim, &b, &err), SG_EREQUEST);
    assert_non_null(strstr(err.msg, "more than 64"));
    sg_buf_dispose(&big);
}

static void owns_decoded_method_names(void **state)
{
    (void)state;
    sg_jsonrpc_batch_t b;
    char *copy;
    const char *body = "[{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools\\/call\"},"
                       "{\"jsonrpc\":\"2.0\",\"method\":\"plain\"},"
                       "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"method\":\"\\u00e9\\ud83d\\ude00\"}]";
    assert_int_equal(parse_n(body, strlen(body), NULL, &b, NULL, &copy), SG_OK);
    assert_int_equal(b.count, 3);
    assert_int_equal(b._ndecoded, 2);
    assert_true(str_is(b.msgs[0].method, "tools/call"));
    assert_true(str_is(b.msgs[1].method, "plain"));
    assert_true(b.msgs[1].method.ptr > copy && b.msgs[1].method.ptr < copy + strlen(body));
    assert_true(str_is(b.msgs[2].method, "\xc3\xa9\xf0\x9f\x98\x80"));
    memset(copy, 'z', strlen(body)); /* decoded names do not depend on the body */
    assert_true(str_is(b.msgs[0].method, "tools/call"));
    sg_jsonrpc_batch_dispose(&b);
    assert_null(b.msgs);
    assert_int_equal(b._ndecoded, 0);
    sg_jsonrpc_batch_dispose(&b); /* twice is harmless */
    free(copy);
}

static void parse_one_handles_single_messages(void **state)
{
    (void)state;
    sg_jsonrpc_msg_t m;
    sg_buf_t scratch = SG_BUF_INIT;
    sg_error_t err = { 0 };
    sg_buf_append_cstr(&scratch, "prefix");
    const char *text = " {\"jsonrpc\":\"2.0\",\"id\":9,\"method\":\"a\\/b\",\"params\":[1]} ";
    assert_int_equal(sg_jsonrpc_parse_one(sg_str(text), &m, &scratch, &err), SG_OK);
    assert_int_equal(m.kind, SG_JSONRPC_REQUEST);
    assert_true(str_is(m.method, "a/b"));
    assert_true(str_is(m.id, "9"));
    assert_true(str_is(m.params, "[1]"));
    assert_ptr_equal(m.raw.ptr, text + 1);
    assert_int_equal(m.raw.len, strlen(text) - 2);
    assert_memory_equal(scratch.data, "prefix", 6);
    text = "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"a\":[]}}";
    assert_int_equal(sg_jsonrpc_parse_one(sg_str(text), &m, &scratch, &err), SG_OK);
    assert_int_equal(m.kind, SG_JSONRPC_RESPONSE);
    assert_true(str_is(m.result, "{\"a\":[]}"));
    assert_int_equal(m.method.len, 0);
    text = "[{\"jsonrpc\":\"2.0\",\"method\":\"m\"}]";
    assert_int_equal(sg_jsonrpc_parse_one(sg_str(text), &m, &scratch, &err), SG_EREQUEST);
    text = "{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"m\"}";
    assert_int_equal(sg_jsonrpc_parse_one(sg_str(text), &m, &scratch, &err), SG_EREQUEST);
    assert_int_equal(m.kind, SG_JSONRPC_INVALID);
    assert_int_equal(sg_jsonrpc_parse_one(sg_str("1"), &m, &scratch, &err), SG_EREQUEST);
    sg_buf_dispose(&scratch);
}

/* ---- builders ---------------------------------------------------------- */

static void expect_written(sg_buf_t *out, const char *want, sg_jsonrpc_kind_t kind)
{
    assert_string_equal(out->data, want);
    sg_jsonrpc_batch_t b;
    sg_error_t err = { 0 };
    if (sg_jsonrpc_parse(out->data, out->len, NULL, &b, &err) != SG_OK) {
        fail_msg("written message does not parse: %s", err.msg);
    }
    assert_int_equal(b.msgs[0].kind, kind);
    sg_jsonrpc_batch_dispose(&b);
    sg_buf_reset(out);
}

static void builds_compact_messages(void **state)
{
    (void)state;
    sg_buf_t out = SG_BUF_INIT;
    sg_jsonrpc_write_result(&out, SG_STR_LIT("\"a\""), SG_STR_LIT("{\"ok\":true}"));
    expect_written(&out, "{\"jsonrpc\":\"2.0\",\"id\":\"a\",\"result\":{\"ok\":true}}",
                   SG_JSONRPC_RESPONSE);
    sg_jsonrpc_write_result(&out, SG_STR_LIT("123456789012345678901234567890"), SG_STR_NULL);
    expect_written(&out,
                   "{\"jsonrpc\":\"2.0\",\"id\":123456789012345678901234567890,\"result\":null}",
                   SG_JSONRPC_RESPONSE);
    sg_jsonrpc_write_error(&out, SG_STR_NULL, -32700, "bad \"json\"\n\xc0", SG_STR_NULL);
    expect_written(&out,
                   "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,"
                   "\"message\":\"bad \\\"json\\\"\\n\xef\xbf\xbd\"}}",
                   SG_JSONRPC_ERROR);
    sg_jsonrpc_write_error(&out, SG_STR_LIT("7"), -31001, "denied",
                           SG_STR_LIT("{\"rule\":\"r1\"}"));
    expect_written(
            &out,
            "{\"jsonrpc\":\"2.0\",\"id\":7,\"error\":{\"code\":-31001,\"message\":\"denied\","
            "\"data\":{\"rule\":\"r1\"}}}",
            SG_JSONRPC_ERROR);
    sg_jsonrpc_write_request(&out, SG_STR_LIT("1"), "tools/call", SG_STR_LIT("{\"name\":\"x\"}"));
    expect_written(
            &out,
            "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":\"x\"}}",
            SG_JSONRPC_REQUEST);
    sg_jsonrpc_write_request(&out, SG_STR_LIT("\"q\""), "ping", SG_STR_NULL);
    expect_written(&out, "{\"jsonrpc\":\"2.0\",\"id\":\"q\",\"method\":\"ping\"}",
                   SG_JSONRPC_REQUEST);
    sg_jsonrpc_write_notification(&out, "notifications/\"x\"", SG_STR_LIT("[]"));
    expect_written(&out,
                   "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/\\\"x\\\"\",\"params\":[]}",
                   SG_JSONRPC_NOTIFICATION);
    sg_jsonrpc_write_notification(&out, "n", SG_STR_NULL);
    expect_written(&out, "{\"jsonrpc\":\"2.0\",\"method\":\"n\"}", SG_JSONRPC_NOTIFICATION);
    sg_buf_dispose(&out);
}

static void round_trips_parsed_members_through_builders(void **state)
{
    (void)state;
    const char *body = "{\"jsonrpc\":\"2.0\",\"id\":18446744073709551617,\"method\":\"m\\u0031\","
                       "\"params\":{\"a\":[1,\"\\u2028\"]}}";
    sg_jsonrpc_batch_t b;
    char *copy;
    sg_buf_t out = SG_BUF_INIT;
    assert_int_equal(parse_n(body, strlen(body), NULL, &b, NULL, &copy), SG_OK);
    char method[8];
    snprintf(method, sizeof(method), "%.*s", (int)b.msgs[0].method.len, b.msgs[0].method.ptr);
    sg_jsonrpc_write_request(&out, b.msgs[0].id, method, b.msgs[0].params);
    assert_string_equal(out.data, "{\"jsonrpc\":\"2.0\",\"id\":18446744073709551617,\"method\":"
                                  "\"m1\",\"params\":{\"a\":[1,\"\\u2028\"]}}");
    sg_buf_reset(&out);
    sg_jsonrpc_write_result(&out, b.msgs[0].id, b.msgs[0].params);
    assert_int_equal(sg_json_validate(out.data, out.len, SG_JSON_MAX_DEPTH, NULL), SG_OK);
    sg_jsonrpc_batch_dispose(&b);
    sg_buf_dispose(&out);
    free(copy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(passes_envelope_vectors),
        cmocka_unit_test(rejects_oversized_body_before_parsing),
        cmocka_unit_test(parses_50mb_body_when_allowed),
        cmocka_unit_test(rejects_hostile_nesting),
        cmocka_unit_test(rejects_bad_bytes),
        cmocka_unit_test(keeps_ids_exactly_as_written),
        cmocka_unit_test(rejects_batches_empty_over_limit_or_mixed),
        cmocka_unit_test(owns_decoded_method_names),
        cmocka_unit_test(parse_one_handles_single_messages),
        cmocka_unit_test(builds_compact_messages),
        cmocka_unit_test(round_trips_parsed_members_through_builders),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
