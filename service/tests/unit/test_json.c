/* SPDX-License-Identifier: Apache-2.0 */
/*
 * base/json: strict validation of hostile text, the span accessors and the
 * string writer. Inputs are copied to exact-size heap blocks so that ASan
 * catches any read past the slice.
 */
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

/* ---- helpers ----------------------------------------------------------- */

/* An exact-size heap copy (no terminator), so over-reads are ASan errors. */
static char *exact_copy(const char *s, size_t len)
{
    char *p = malloc(len != 0 ? len : 1);
    assert_non_null(p);
    if (len != 0) {
        memcpy(p, s, len);
    }
    return p;
}

static int validate_n(const char *s, size_t len, sg_error_t *err)
{
    char *copy = exact_copy(s, len);
    int rc = sg_json_validate(copy, len, SG_JSON_MAX_DEPTH, err);
    free(copy);
    return rc;
}

static int validate(const char *s)
{
    return validate_n(s, strlen(s), NULL);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct text_case {
    const char *text;
    size_t len; /* 0: strlen(text) */
    int want;
};

static void check_cases(const struct text_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        size_t len = cases[i].len != 0 ? cases[i].len : strlen(cases[i].text);
        sg_error_t err = { 0 };
        int rc = validate_n(cases[i].text, len, &err);
        if (rc != cases[i].want) {
            print_error("case %zu: got %s (%s), want %s\n", i, sg_err_name(rc), err.msg,
                        sg_err_name(cases[i].want));
        }
        assert_int_equal(rc, cases[i].want);
        if (rc != SG_OK) {
            assert_int_equal(err.code, rc);
            assert_true(err.msg[0] != '\0');
        }
    }
}

/* ---- validation ---------------------------------------------------------- */

static void accepts_valid_documents(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "0", 0, SG_OK },
        { "-1.5e+10", 0, SG_OK },
        { "\"x\"", 0, SG_OK },
        { "true", 0, SG_OK },
        { "null", 0, SG_OK },
        { " {\"a\":[1,2,{\"b\":null}],\"c\":\"\\u00e9\\ud83d\\ude00\"} \n", 0, SG_OK },
        { "[]", 0, SG_OK },
        { "{}", 0, SG_OK },
        { "{\"\":1}", 0, SG_OK },
        { "123456789012345678901234567890", 0, SG_OK },
        { "[1e400,-0.0e-999,18446744073709551616]", 0, SG_OK },
        { "\"\\/\\\\\\\"\\b\\f\\n\\r\\t\"", 0, SG_OK },
        { "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\"", 0, SG_OK },
        { "\"\\\\u0000\"", 0, SG_OK },     /* an escaped backslash, then text */
        { "\"\\\\ud800\"", 0, SG_OK },     /* same */
        { "[\"a\\\\\",\"b\"]", 0, SG_OK }, /* a string ending in a backslash */
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
}

static void rejects_empty_and_blank_text(void **state)
{
    (void)state;
    assert_int_equal(sg_json_validate(NULL, 0, SG_JSON_MAX_DEPTH, NULL), SG_EPARSE);
    static const struct text_case cases[] = {
        { " ", 0, SG_EPARSE },
        { " \n\t\r ", 0, SG_EPARSE },
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
    assert_int_equal(validate_n("", 0, NULL), SG_EPARSE);
}

static void rejects_comments(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "/* c */ 1", 0, SG_EPARSE },
        { "[1] // c", 0, SG_EPARSE },
        { "{\"a\":1 /* c */}", 0, SG_EPARSE },
        { "# c\n1", 0, SG_EPARSE },
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
}

static void rejects_trailing_garbage_and_bad_syntax(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "{}x", 0, SG_EPARSE },       { "[1]]", 0, SG_EPARSE },     { "\"a\"b", 0, SG_EPARSE },
        { "1 2", 0, SG_EPARSE },       { "{} {}", 0, SG_EPARSE },    { "[] []", 0, SG_EPARSE },
        { "nul", 0, SG_EPARSE },       { "[1,]", 0, SG_EPARSE },     { "{\"a\":1,}", 0, SG_EPARSE },
        { "{'a':1}", 0, SG_EPARSE },   { "01", 0, SG_EPARSE },       { "[", 0, SG_EPARSE },
        { "\"abc", 0, SG_EPARSE },     { "\"a\nb\"", 0, SG_EPARSE }, { "\"\\x\"", 0, SG_EPARSE },
        { "\"\\u12\"", 0, SG_EPARSE }, { "{1:2}", 0, SG_EPARSE },    { "NaN", 0, SG_EPARSE },
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
}

static char *nested(const char *open, const char *inner, const char *close, size_t depth,
                    size_t *len)
{
    sg_buf_t b = SG_BUF_INIT;
    for (size_t i = 0; i < depth; i++) {
        sg_buf_append_cstr(&b, open);
    }
    sg_buf_append_cstr(&b, inner);
    for (size_t i = 0; i < depth; i++) {
        sg_buf_append_cstr(&b, close);
    }
    return sg_buf_steal(&b, len);
}

static void enforces_depth_limit_exactly(void **state)
{
    (void)state;
    size_t len;
    char *t = nested("[", "1", "]", SG_JSON_MAX_DEPTH, &len);
    assert_int_equal(validate_n(t, len, NULL), SG_OK);
    free(t);
    t = nested("[", "1", "]", SG_JSON_MAX_DEPTH + 1, &len);
    assert_int_equal(validate_n(t, len, NULL), SG_EDEPTH);
    free(t);
    t = nested("{\"a\":[", "{}", "]}", SG_JSON_MAX_DEPTH / 2, &len);
    assert_int_equal(sg_json_validate(t, len, SG_JSON_MAX_DEPTH + 1, NULL), SG_OK);
    assert_int_equal(sg_json_validate(t, len, SG_JSON_MAX_DEPTH, NULL), SG_EDEPTH);
    free(t);
    assert_int_equal(sg_json_validate("[]", 2, 0, NULL), SG_EDEPTH);
    assert_int_equal(sg_json_validate("1", 1, 0, NULL), SG_OK);
}

static void rejects_hostile_nesting(void **state)
{
    (void)state;
    size_t len;
    sg_error_t err = { 0 };
    char *t = nested("[", "", "", 100000, &len);
    assert_int_equal(validate_n(t, len, &err), SG_EDEPTH);
    free(t);
    t = nested("[", "", "]", 100000, &len);
    assert_int_equal(validate_n(t, len, NULL), SG_EDEPTH);
    free(t);
    t = nested("{\"a\":", "1", "}", 100000, &len);
    assert_int_equal(validate_n(t, len, NULL), SG_EDEPTH);
    free(t);
}

static void rejects_duplicate_keys(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "{\"a\":1,\"a\":2}", 0, SG_EDUPKEY },
        { "{\"params\":{\"x\":1,\"x\":2}}", 0, SG_EDUPKEY },
        { "{\"a\":1,\"\\u0061\":2}", 0, SG_EDUPKEY },
        { "[{\"k\":1,\"b\":2,\"k\":3}]", 0, SG_EDUPKEY },
        { "{\"a\":{\"b\":1},\"a\":2}", 0, SG_EDUPKEY },
        { "{\"\":1,\"\":2}", 0, SG_EDUPKEY },
        { "{\"\\ud83d\\ude00\":1,\"\xf0\x9f\x98\x80\":2}", 0, SG_EDUPKEY },
        { "{\"a\":{\"a\":1},\"b\":[{\"a\":1},{\"a\":2}]}", 0, SG_OK },
        { "{\"a\":1,\"A\":2,\"ab\":3,\"a \":4}", 0, SG_OK },
        /* siblings at one level share a frame: nothing may leak from one to the next */
        { "[{\"x\":1,\"a\":2},{\"a\":1},{\"b\":1,\"a\":2,\"x\":3}]", 0, SG_OK },
        { "{\"p\":{\"xy\":1,\"ab\":2},\"q\":{\"ab\":1,\"xy\":2}}", 0, SG_OK },
        { "[{\"a\":{\"k\":1,\"j\":2}},{\"b\":{\"j\":1,\"k\":2}}]", 0, SG_OK },
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
}

/* {"k0":0,...,"k<n-1>":0} plus `extra` (a member text) when given. */
static char *many_keys(size_t n, const char *extra, size_t *len)
{
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_char(&b, '{');
    for (size_t i = 0; i < n; i++) {
        sg_buf_printf(&b, "%s\"k%zu\":%zu", i != 0 ? "," : "", i, i);
    }
    if (extra != NULL) {
        sg_buf_printf(&b, ",%s", extra);
    }
    sg_buf_append_char(&b, '}');
    return sg_buf_steal(&b, len);
}

static void detects_duplicates_in_large_objects(void **state)
{
    (void)state;
    for (size_t n = 1; n < 40; n++) {
        size_t len;
        char *t = many_keys(n, "\"k0\":1", &len);
        assert_int_equal(validate_n(t, len, NULL), SG_EDUPKEY);
        free(t);
        char extra[32];
        snprintf(extra, sizeof(extra), "\"k%zu\":1", n - 1);
        t = many_keys(n, extra, &len);
        assert_int_equal(validate_n(t, len, NULL), SG_EDUPKEY);
        free(t);
        t = many_keys(n, "\"kk\":1", &len);
        assert_int_equal(validate_n(t, len, NULL), SG_OK);
        free(t);
        /* the same keys again in a sibling, after a smaller one */
        sg_buf_t b = SG_BUF_INIT;
        t = many_keys(n, NULL, &len);
        sg_buf_printf(&b, "[%.*s,{\"k1\":0},%.*s]", (int)len, t, (int)len, t);
        free(t);
        assert_int_equal(validate_n(b.data, b.len, NULL), SG_OK);
        sg_buf_dispose(&b);
    }
}

static void validates_100k_keys_in_linear_time(void **state)
{
    (void)state;
    size_t len;
    double t0 = now_s();
    char *t = many_keys(100000, NULL, &len);
    assert_int_equal(validate_n(t, len, NULL), SG_OK);
    free(t);
    t = many_keys(100000, "\"k99999\":1", &len);
    assert_int_equal(validate_n(t, len, NULL), SG_EDUPKEY);
    free(t);
    /* a big object, then many small siblings at the same level */
    sg_buf_t b = SG_BUF_INIT;
    t = many_keys(100000, NULL, &len);
    sg_buf_append_char(&b, '[');
    sg_buf_append(&b, t, len);
    free(t);
    for (size_t i = 0; i < 100000; i++) {
        sg_buf_append_cstr(
                &b, ",{\"a\":1,\"b\":2,\"c\":3,\"d\":4,\"e\":5,\"f\":6,\"g\":7,\"h\":8,\"i\":9}");
    }
    sg_buf_append_char(&b, ']');
    assert_int_equal(validate_n(b.data, b.len, NULL), SG_OK);
    sg_buf_dispose(&b);
    double elapsed = now_s() - t0;
    print_message("100k keys: %.2f s\n", elapsed);
    assert_true(elapsed < 20.0); /* quadratic behaviour takes minutes */
}

static void rejects_nul_characters(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "\"a\\u0000b\"", 0, SG_ENULCHAR },
        { "{\"a\\u0000\":1}", 0, SG_ENULCHAR },
        { "[\"\\u0000\"]", 0, SG_ENULCHAR },
        { "\"a\0b\"", 5, SG_ENULCHAR },
        { "{\"a\0\":1}", 8, SG_ENULCHAR },
        { "1\0", 2, SG_ENULCHAR },
        { "\0", 1, SG_ENULCHAR },
        { "\"\\\0\"", 4, SG_ENULCHAR },
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
}

static void rejects_invalid_utf8(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "\"\xc3\x28\"", 0, SG_EUTF8 },             /* bad continuation */
        { "\"\xc0\xaf\"", 0, SG_EUTF8 },             /* overlong '/' */
        { "\"\xe0\x80\xaf\"", 0, SG_EUTF8 },         /* overlong, 3 bytes */
        { "\"\xf0\x80\x80\xaf\"", 0, SG_EUTF8 },     /* overlong, 4 bytes */
        { "\"\xed\xa0\x80\"", 0, SG_EUTF8 },         /* UTF-8 encoded surrogate */
        { "\"\xed\xbf\xbf\"", 0, SG_EUTF8 },         /* same */
        { "\"\xe2\x82\"", 0, SG_EUTF8 },             /* truncated inside the string */
        { "\"\xe2\x82", 0, SG_EUTF8 },               /* truncated at the end of the text */
        { "\"\xf0\x9f\x98", 0, SG_EUTF8 },           /* same, 4 bytes */
        { "\"\xf4\x90\x80\x80\"", 0, SG_EUTF8 },     /* above U+10FFFF */
        { "\"\xf5\x80\x80\x80\"", 0, SG_EUTF8 },     /* same */
        { "\"\xf8\x88\x80\x80\x80\"", 0, SG_EUTF8 }, /* 5-byte form */
        { "\"\x80\"", 0, SG_EUTF8 },                 /* lone continuation */
        { "\"\xff\"", 0, SG_EUTF8 },
        { "{\"\xc0\xaf\":1}", 0, SG_EUTF8 }, /* in a key */
        { "[1,\xc3]", 0, SG_EUTF8 },         /* outside strings */
        { "\"\\\xc3\xa9\"", 0, SG_EPARSE },  /* a bad escape, but valid UTF-8 */
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
}

static void rejects_unpaired_surrogate_escapes(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "\"\\ud800\"", 0, SG_EUTF8 },        { "\"\\udc00\"", 0, SG_EUTF8 },
        { "\"\\uDBFF\\u0041\"", 0, SG_EUTF8 }, { "\"\\ud800x\"", 0, SG_EUTF8 },
        { "\"\\ud800\\ud800\"", 0, SG_EUTF8 }, { "{\"\\udfff\":1}", 0, SG_EUTF8 },
        { "\"\\ud83d\\ude00\"", 0, SG_OK },    { "\"\\uDBFF\\uDFFF\"", 0, SG_OK },
    };
    check_cases(cases, SG_ARRAY_LEN(cases));
}

static void error_messages_never_quote_input(void **state)
{
    (void)state;
    static const struct text_case cases[] = {
        { "{\"SECRET\":1,\"SECRET\":2}", 0, SG_EDUPKEY },
        { "[SECRET]", 0, SG_EPARSE },
        { "\"SECRET\\u0000\"", 0, SG_ENULCHAR },
        { "\"SECRET\xc0\xaf\"", 0, SG_EUTF8 },
        { "\"SECRET\\ud800\"", 0, SG_EUTF8 },
        { "{\"SECRET\":1} SECRET", 0, SG_EPARSE },
        { "[[[[\"SECRET\"]]]]", 0, SG_EDEPTH },
        { "\"SECRET", 0, SG_EPARSE },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        sg_error_t err = { 0 };
        char *t = exact_copy(cases[i].text, strlen(cases[i].text));
        int rc = sg_json_validate(t, strlen(cases[i].text), 3, &err);
        free(t);
        assert_int_equal(rc, cases[i].want);
        assert_null(strstr(err.msg, "SECRET"));
        assert_non_null(strstr(err.msg, "byte"));
    }
}

/* ---- accessors ----------------------------------------------------------- */

static void reports_types_and_trims(void **state)
{
    (void)state;
    assert_int_equal(sg_json_type(sg_str(" null")), SG_JSON_NULL);
    assert_int_equal(sg_json_type(sg_str("false")), SG_JSON_FALSE);
    assert_int_equal(sg_json_type(sg_str("true")), SG_JSON_TRUE);
    assert_int_equal(sg_json_type(sg_str("-1")), SG_JSON_NUMBER);
    assert_int_equal(sg_json_type(sg_str("7")), SG_JSON_NUMBER);
    assert_int_equal(sg_json_type(sg_str("\n\"x\"")), SG_JSON_STRING);
    assert_int_equal(sg_json_type(sg_str("[]")), SG_JSON_ARRAY);
    assert_int_equal(sg_json_type(sg_str("{}")), SG_JSON_OBJECT);
    assert_int_equal(sg_json_type(sg_str("  ")), SG_JSON_INVALID);
    assert_int_equal(sg_json_type(SG_STR_NULL), SG_JSON_INVALID);
    assert_int_equal(sg_json_type(sg_str("x")), SG_JSON_INVALID);
    sg_str_t t = sg_json_trim(sg_str(" \t\r\n[1, 2] \n"));
    assert_int_equal(t.len, 6);
    assert_memory_equal(t.ptr, "[1, 2]", 6);
    assert_int_equal(sg_json_trim(sg_str("   ")).len, 0);
    assert_int_equal(sg_json_trim(SG_STR_NULL).len, 0);
}

static void object_get_matches_top_level_only(void **state)
{
    (void)state;
    sg_str_t v;
    const char *doc =
            "{\"a\":{\"name\":1},\"b\":[{\"name\":2}],\"c\":\"\\\"name\\\":4\",\"name\" : 3 }";
    assert_int_equal(sg_json_object_get(sg_str(doc), "name", &v), SG_OK);
    assert_int_equal(v.len, 1);
    assert_memory_equal(v.ptr, "3", 1);
    assert_int_equal(sg_json_object_get(sg_str("{\"x\":{\"name\":1}}"), "name", &v), SG_ENOTFOUND);
    assert_int_equal(sg_json_object_get(sg_str("{\"x\":\"name\"}"), "name", &v), SG_ENOTFOUND);
    assert_int_equal(sg_json_object_get(sg_str("{}"), "name", &v), SG_ENOTFOUND);
    assert_int_equal(sg_json_object_get(sg_str("{\"names\":1,\"nam\":2}"), "name", &v),
                     SG_ENOTFOUND);
    assert_int_equal(sg_json_object_get(sg_str("{\"a\":[1,{\"b\":2}]}"), "a", &v), SG_OK);
    assert_int_equal(v.len, 11);
    assert_memory_equal(v.ptr, "[1,{\"b\":2}]", 11);
}

static void object_get_unescapes_keys(void **state)
{
    (void)state;
    sg_str_t v;
    assert_int_equal(sg_json_object_get(sg_str("{\"na\\u006de\":1}"), "name", &v), SG_OK);
    assert_memory_equal(v.ptr, "1", 1);
    assert_int_equal(sg_json_object_get(sg_str("{\"a\\\"b\":2}"), "a\"b", &v), SG_OK);
    assert_memory_equal(v.ptr, "2", 1);
    assert_int_equal(sg_json_object_get(sg_str("{\"a\\\\\":3}"), "a\\", &v), SG_OK);
    assert_memory_equal(v.ptr, "3", 1);
    assert_int_equal(sg_json_object_get(sg_str("{\"\\u00e9\":4}"), "\xc3\xa9", &v), SG_OK);
    assert_int_equal(sg_json_object_get(sg_str("{\"\\ud83d\\ude00\":5}"), "\xf0\x9f\x98\x80", &v),
                     SG_OK);
    /* a raw key that looks like the text of the wanted one is not it */
    assert_int_equal(sg_json_object_get(sg_str("{\"a\\\"b\":2}"), "a\\\"b", &v), SG_ENOTFOUND);
    assert_int_equal(sg_json_object_get(sg_str("{\"\\ud800\":2}"), "?", &v), SG_ENOTFOUND);
}

static void object_get_rejects_non_objects(void **state)
{
    (void)state;
    sg_str_t v;
    assert_int_equal(sg_json_object_get(sg_str("[1]"), "a", &v), SG_EPARSE);
    assert_int_equal(sg_json_object_get(sg_str("\"a\""), "a", &v), SG_EPARSE);
    assert_int_equal(sg_json_object_get(sg_str(""), "a", &v), SG_EPARSE);
    assert_int_equal(sg_json_object_get(SG_STR_NULL, "a", &v), SG_EPARSE);
    assert_int_equal(sg_json_object_get(sg_str("{\"a\" 1}"), "a", &v), SG_EPARSE);
    assert_int_equal(sg_json_object_get(sg_str("{\"b\":}"), "a", &v), SG_EPARSE);
    assert_int_equal(sg_json_object_get(sg_str("{\"b\":1 \"a\":2}"), "a", &v), SG_EPARSE);
    assert_int_equal(sg_json_object_get(sg_str("{b:1}"), "a", &v), SG_EPARSE);
}

static void iterates_arrays_with_tricky_strings(void **state)
{
    (void)state;
    static const char *const items[] = { "\"a]b\"", "\"c\\\"]\"", "{\"k\":\"}\"}",
                                         "[1,[2]]", "null",       "\"\\\\\"",
                                         "-1.5e3",  "\"[{\"",     "{}" };
    const char *doc =
            " [ \"a]b\" ,\"c\\\"]\",{\"k\":\"}\"},[1,[2]], null,\"\\\\\",-1.5e3,\"[{\",{} ] ";
    sg_json_iter_t it = SG_JSON_ITER_INIT(sg_str(doc));
    sg_str_t item;
    size_t n = 0;
    int rc;
    while ((rc = sg_json_array_next(&it, &item)) == 1) {
        assert_true(n < SG_ARRAY_LEN(items));
        assert_int_equal(item.len, strlen(items[n]));
        assert_memory_equal(item.ptr, items[n], item.len);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, SG_ARRAY_LEN(items));
    assert_int_equal(sg_json_array_next(&it, &item), 0); /* stays at the end */

    it = SG_JSON_ITER_INIT(sg_str("[ ]"));
    assert_int_equal(sg_json_array_next(&it, &item), 0);
    it = SG_JSON_ITER_INIT(sg_str("[]"));
    assert_int_equal(sg_json_array_next(&it, &item), 0);
    it = SG_JSON_ITER_INIT(sg_str("{}"));
    assert_int_equal(sg_json_array_next(&it, &item), SG_EPARSE);
    it = SG_JSON_ITER_INIT(sg_str("[1 2]"));
    assert_int_equal(sg_json_array_next(&it, &item), 1);
    assert_int_equal(sg_json_array_next(&it, &item), SG_EPARSE);
    it = SG_JSON_ITER_INIT(sg_str("[1,"));
    assert_int_equal(sg_json_array_next(&it, &item), 1);
    assert_int_equal(sg_json_array_next(&it, &item), SG_EPARSE);
}

static void iterates_objects(void **state)
{
    (void)state;
    const char *doc = "{ \"a\" : [1,{\"x\":\"]\"}] , \"b\\\"\":\"}\", \"c\":{} }";
    static const char *const keys[] = { "\"a\"", "\"b\\\"\"", "\"c\"" };
    static const char *const values[] = { "[1,{\"x\":\"]\"}]", "\"}\"", "{}" };
    sg_json_iter_t it = SG_JSON_ITER_INIT(sg_str(doc));
    sg_str_t k = SG_STR_NULL, v = SG_STR_NULL;
    size_t n = 0;
    int rc;
    while ((rc = sg_json_object_next(&it, &k, &v)) == 1) {
        assert_true(n < 3);
        assert_int_equal(k.len, strlen(keys[n]));
        assert_memory_equal(k.ptr, keys[n], k.len);
        assert_int_equal(v.len, strlen(values[n]));
        assert_memory_equal(v.ptr, values[n], v.len);
        n++;
    }
    assert_int_equal(rc, 0);
    assert_int_equal(n, 3);
    assert_int_equal(sg_json_object_next(&it, &k, &v), 0);
    it = SG_JSON_ITER_INIT(sg_str(" { } "));
    assert_int_equal(sg_json_object_next(&it, &k, &v), 0);
    it = SG_JSON_ITER_INIT(sg_str("[]"));
    assert_int_equal(sg_json_object_next(&it, &k, &v), SG_EPARSE);
    it = SG_JSON_ITER_INIT(sg_str("{\"a\":1,}"));
    assert_int_equal(sg_json_object_next(&it, &k, &v), 1);
    assert_int_equal(sg_json_object_next(&it, &k, &v), SG_EPARSE);
}

static bool is_one_of(int rc, int a, int b, int c)
{
    return rc == a || rc == b || rc == c;
}

/* Runs every accessor over s[0..len) in an exact-size block; only documented codes come back. */
static void poke_all(const char *s, size_t len)
{
    char *t = exact_copy(s, len);
    sg_str_t raw = sg_str_n(t, len), k, v;
    sg_buf_t b = SG_BUF_INIT;
    int64_t n;
    sg_json_iter_t it = SG_JSON_ITER_INIT(raw);
    for (int i = 0; i < 64 && sg_json_array_next(&it, &v) == 1; i++) {
        assert_true(v.ptr >= t && v.ptr + v.len <= t + len);
        assert_true(sg_json_type(v) <= SG_JSON_OBJECT);
        assert_true(is_one_of(sg_json_string_decode(v, &b), SG_OK, SG_EPARSE, SG_EUTF8));
    }
    it = SG_JSON_ITER_INIT(raw);
    for (int i = 0; i < 64 && sg_json_object_next(&it, &k, &v) == 1; i++) {
        assert_true(v.ptr >= t && v.ptr + v.len <= t + len);
        (void)sg_json_string_eq(k, "a");
        (void)sg_json_string_plain(v, &k);
        assert_true(is_one_of(sg_json_int64(v, &n), SG_OK, SG_EPARSE, SG_EINVAL));
    }
    assert_true(is_one_of(sg_json_object_get(raw, "name", &v), SG_OK, SG_ENOTFOUND, SG_EPARSE));
    assert_true(is_one_of(sg_json_string_decode(raw, &b), SG_OK, SG_EPARSE, SG_EUTF8));
    assert_true(is_one_of(sg_json_int64(raw, &n), SG_OK, SG_EPARSE, SG_EINVAL));
    (void)sg_json_string_eq(raw, "x");
    sg_buf_dispose(&b);
    free(t);
}

static void accessors_stay_inside_the_slice(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "[1,\"a]\",{\"b\":[2,\"\\\"\"]},\"\\\\\",null] ",
        "{\"name\":\"x\\\"y\",\"a\":{\"name\":[\"}\"]},\"n\":-12}",
        "\"\\ud83d\\ude00\\u00e9\\n\\\\\"",
        "\"abc\\",
        "-9223372036854775808",
    };
    for (size_t d = 0; d < SG_ARRAY_LEN(docs); d++) {
        for (size_t len = 0; len <= strlen(docs[d]); len++) {
            poke_all(docs[d], len);
        }
    }
}

static void decodes_all_escapes(void **state)
{
    (void)state;
    sg_buf_t b = SG_BUF_INIT;
    const char *raw =
            " \"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\\u0000z\xc3\xa9\" ";
    const char want[] = "a\"\\/\b\f\n\r\t\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\0z\xc3\xa9";
    assert_int_equal(sg_json_string_decode(sg_str(raw), &b), SG_OK);
    assert_int_equal(b.len, sizeof(want) - 1);
    assert_memory_equal(b.data, want, b.len);
    sg_buf_reset(&b);
    assert_int_equal(sg_json_string_decode(sg_str("\"\""), &b), SG_OK);
    assert_int_equal(b.len, 0);
    sg_buf_dispose(&b);
}

static void decode_rejects_lone_surrogates_and_non_strings(void **state)
{
    (void)state;
    static const char *const lone[] = {
        "\"\\ud800\"",        "\"\\udc00\"",  "\"a\\ud800\\u0041\"",
        "\"\\ud800\\ud800\"", "\"\\uDBFFx\"", "\"\\udfff\\ud800\""
    };
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "keep");
    for (size_t i = 0; i < SG_ARRAY_LEN(lone); i++) {
        assert_int_equal(sg_json_string_decode(sg_str(lone[i]), &b), SG_EUTF8);
        assert_int_equal(b.len, 4); /* unchanged */
    }
    static const char *const bad[] = { "1",         "[\"a\"]",  "\"a", "a\"", "\"\\x\"",
                                       "\"\\u12\"", "\"a\nb\"", "\"",  "" };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++) {
        assert_int_equal(sg_json_string_decode(sg_str(bad[i]), &b), SG_EPARSE);
        assert_int_equal(b.len, 4);
    }
    assert_string_equal(b.data, "keep");
    sg_buf_dispose(&b);
}

static void compares_and_borrows_strings(void **state)
{
    (void)state;
    sg_str_t out;
    assert_true(sg_json_string_eq(sg_str("\"tools/call\""), "tools/call"));
    assert_true(sg_json_string_eq(sg_str("\"tools\\/call\""), "tools/call"));
    assert_true(sg_json_string_eq(sg_str(" \"\" "), ""));
    assert_false(sg_json_string_eq(sg_str("\"tools/cal\""), "tools/call"));
    assert_false(sg_json_string_eq(sg_str("\"tools/calls\""), "tools/call"));
    assert_false(sg_json_string_eq(sg_str("\"tools\\/cal\""), "tools/call"));
    assert_false(sg_json_string_eq(sg_str("\"tools\\/calls\""), "tools/call"));
    assert_false(sg_json_string_eq(sg_str("\"a\\u0000\""), "a"));
    assert_false(sg_json_string_eq(sg_str("\"a\\\"b\""), "a\\\"b"));
    assert_false(sg_json_string_eq(sg_str("tools"), "tools"));
    assert_false(sg_json_string_eq(sg_str("\"a\"b\""), "a\"b"));
    assert_true(sg_json_string_plain(sg_str("\"tools/call\""), &out));
    assert_int_equal(out.len, 10);
    assert_memory_equal(out.ptr, "tools/call", 10);
    assert_false(sg_json_string_plain(sg_str("\"tools\\/call\""), &out));
    assert_false(sg_json_string_plain(sg_str("\"a\"b\""), &out));
    assert_false(sg_json_string_plain(sg_str("12"), &out));
}

static void parses_int64_integers_only(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int rc;
        int64_t value;
    } cases[] = {
        { "0", SG_OK, 0 },
        { "-0", SG_OK, 0 },
        { " 42 ", SG_OK, 42 },
        { "-32700", SG_OK, -32700 },
        { "9223372036854775807", SG_OK, INT64_MAX },
        { "-9223372036854775808", SG_OK, INT64_MIN },
        { "9223372036854775808", SG_EINVAL, 0 },
        { "-9223372036854775809", SG_EINVAL, 0 },
        { "123456789012345678901234567890", SG_EINVAL, 0 },
        { "1.5", SG_EPARSE, 0 },
        { "1e3", SG_EPARSE, 0 },
        { "01", SG_EPARSE, 0 },
        { "-", SG_EPARSE, 0 },
        { "", SG_EPARSE, 0 },
        { "\"1\"", SG_EPARSE, 0 },
        { "+1", SG_EPARSE, 0 },
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        int64_t v = 7;
        assert_int_equal(sg_json_int64(sg_str(cases[i].text), &v), cases[i].rc);
        if (cases[i].rc == SG_OK) {
            assert_true(v == cases[i].value);
        }
    }
}

/* ---- writer ------------------------------------------------------------ */

static void writer_round_trips_every_control_character(void **state)
{
    (void)state;
    sg_buf_t out = SG_BUF_INIT, back = SG_BUF_INIT;
    for (int c = 0; c < 0x20; c++) {
        char in[3] = { 'a', (char)c, 'b' };
        char want[16];
        const char *shorts = c == '\b'   ? "\\b"
                             : c == '\f' ? "\\f"
                             : c == '\n' ? "\\n"
                             : c == '\r' ? "\\r"
                             : c == '\t' ? "\\t"
                                         : NULL;
        if (shorts != NULL) {
            snprintf(want, sizeof(want), "\"a%sb\"", shorts);
        } else {
            snprintf(want, sizeof(want), "\"a\\u%04xb\"", c);
        }
        sg_buf_reset(&out);
        sg_buf_reset(&back);
        sg_json_write_string(&out, in, sizeof(in));
        assert_string_equal(out.data, want);
        assert_int_equal(validate(out.data), c == 0 ? SG_ENULCHAR : SG_OK);
        assert_int_equal(sg_json_string_decode(sg_buf_str(&out), &back), SG_OK);
        assert_int_equal(back.len, sizeof(in));
        assert_memory_equal(back.data, in, sizeof(in));
    }
    sg_buf_dispose(&out);
    sg_buf_dispose(&back);
}

static void writer_escapes_quotes_and_line_separators(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "", "\"\"" },
        { "a\"b\\c/d", "\"a\\\"b\\\\c/d\"" },
        { "x\xe2\x80\xa8y\xe2\x80\xa9z", "\"x\\u2028y\\u2029z\"" },
        { "\xe2\x80\xa7\xe2\x82\xa8", "\"\xe2\x80\xa7\xe2\x82\xa8\"" }, /* neighbours stay */
        { "\xc3\xa9\xf0\x9f\x98\x80\x7f", "\"\xc3\xa9\xf0\x9f\x98\x80\x7f\"" },
    };
    sg_buf_t out = SG_BUF_INIT, back = SG_BUF_INIT;
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        sg_buf_reset(&out);
        sg_buf_reset(&back);
        sg_buf_append_cstr(&out, "pre:");
        sg_json_write_cstr(&out, cases[i].in);
        assert_string_equal(out.data + 4, cases[i].want);
        assert_int_equal(validate(out.data + 4), SG_OK);
        assert_int_equal(sg_json_string_decode(sg_str(out.data + 4), &back), SG_OK);
        assert_int_equal(back.len, strlen(cases[i].in));
        assert_memory_equal(back.data != NULL ? back.data : "", cases[i].in, back.len);
    }
    sg_buf_reset(&out);
    sg_json_write_string(&out, NULL, 0);
    assert_string_equal(out.data, "\"\"");
    sg_buf_dispose(&out);
    sg_buf_dispose(&back);
}

#define FFFD "\xef\xbf\xbd"

static void writer_replaces_invalid_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        { "a\xff"
          "b",
          "\"a" FFFD "b\"" },
        { "\xc3\x28", "\"" FFFD "(\"" },
        { "\xc0\xaf", "\"" FFFD FFFD "\"" },
        { "\xe0\x80\xaf", "\"" FFFD FFFD FFFD "\"" },
        { "\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"" },
        { "\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\"" },
        { "\xe2\x82", "\"" FFFD "\"" },
        { "x\xf0\x9f\x98", "\"x" FFFD "\"" },
        { "\xf0\x9f\x98\"", "\"" FFFD "\\\"\"" },
        { "\x80\x80", "\"" FFFD FFFD "\"" },
        { "\xf8\x88\x80\x80\x80", "\"" FFFD FFFD FFFD FFFD FFFD "\"" },
    };
    sg_buf_t out = SG_BUF_INIT;
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        sg_buf_reset(&out);
        char *in = exact_copy(cases[i].in, strlen(cases[i].in));
        sg_json_write_string(&out, in, strlen(cases[i].in));
        free(in);
        assert_string_equal(out.data, cases[i].want);
        assert_int_equal(validate(out.data), SG_OK);
    }
    sg_buf_dispose(&out);
}

static uint64_t next_rand(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void writer_output_always_validates(void **state)
{
    (void)state;
    static const unsigned char alphabet[] = { 'a',  '"',  '\\', '\n', 0x01, 0x1f, 0x7f, 0x80,
                                              0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xe2, 0xa8, 0xed,
                                              0xa0, 0xef, 0xf0, 0x90, 0xf4, 0x8f, 0xf5, 0xff };
    uint64_t seed = 0x9E3779B97F4A7C15ull;
    sg_buf_t out = SG_BUF_INIT, back = SG_BUF_INIT, again = SG_BUF_INIT;
    for (int round = 0; round < 20000; round++) {
        unsigned char in[24];
        size_t len = (size_t)(next_rand(&seed) % sizeof(in));
        for (size_t i = 0; i < len; i++) {
            in[i] = alphabet[next_rand(&seed) % sizeof(alphabet)];
        }
        sg_buf_reset(&out);
        sg_buf_reset(&back);
        sg_buf_reset(&again);
        sg_json_write_string(&out, (const char *)in, len);
        assert_int_equal(validate_n(out.data, out.len, NULL), SG_OK);
        /* the output decodes to valid UTF-8 that writes back to the same text */
        assert_int_equal(sg_json_string_decode(sg_buf_str(&out), &back), SG_OK);
        sg_json_write_string(&again, back.data, back.len);
        assert_int_equal(again.len, out.len);
        assert_memory_equal(again.data, out.data, out.len);
    }
    sg_buf_dispose(&out);
    sg_buf_dispose(&back);
    sg_buf_dispose(&again);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepts_valid_documents),
        cmocka_unit_test(rejects_empty_and_blank_text),
        cmocka_unit_test(rejects_comments),
        cmocka_unit_test(rejects_trailing_garbage_and_bad_syntax),
        cmocka_unit_test(enforces_depth_limit_exactly),
        cmocka_unit_test(rejects_hostile_nesting),
        cmocka_unit_test(rejects_duplicate_keys),
        cmocka_unit_test(detects_duplicates_in_large_objects),
        cmocka_unit_test(validates_100k_keys_in_linear_time),
        cmocka_unit_test(rejects_nul_characters),
        cmocka_unit_test(rejects_invalid_utf8),
        cmocka_unit_test(rejects_unpaired_surrogate_escapes),
        cmocka_unit_test(error_messages_never_quote_input),
        cmocka_unit_test(reports_types_and_trims),
        cmocka_unit_test(object_get_matches_top_level_only),
        cmocka_unit_test(object_get_unescapes_keys),
        cmocka_unit_test(object_get_rejects_non_objects),
        cmocka_unit_test(iterates_arrays_with_tricky_strings),
        cmocka_unit_test(iterates_objects),
        cmocka_unit_test(accessors_stay_inside_the_slice),
        cmocka_unit_test(decodes_all_escapes),
        cmocka_unit_test(decode_rejects_lone_surrogates_and_non_strings),
        cmocka_unit_test(compares_and_borrows_strings),
        cmocka_unit_test(parses_int64_integers_only),
        cmocka_unit_test(writer_round_trips_every_control_character),
        cmocka_unit_test(writer_escapes_quotes_and_line_separators),
        cmocka_unit_test(writer_replaces_invalid_utf8),
        cmocka_unit_test(writer_output_always_validates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
