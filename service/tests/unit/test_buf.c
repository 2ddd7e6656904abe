/* SPDX-License-Identifier: Apache-2.0 */
/* Growable buffer and newline framing (the stdio transport's framing). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/err.h"

static void frames_lines_across_chunks(void **state)
{
    (void)state;
    sg_buf_t b = SG_BUF_INIT;
    sg_str_t line;
    sg_buf_append_cstr(&b, "{\"a\":1}\n{\"b\"");
    assert_true(sg_buf_take_line(&b, &line));
    assert_true(sg_str_eq_cstr(line, "{\"a\":1}"));
    assert_false(sg_buf_take_line(&b, &line));
    sg_buf_compact(&b);
    sg_buf_append_cstr(&b, ":2}\r\n\n");
    assert_true(sg_buf_take_line(&b, &line));
    assert_true(sg_str_eq_cstr(line, "{\"b\":2}"));
    assert_true(sg_buf_take_line(&b, &line));
    assert_int_equal(line.len, 0);
    assert_false(sg_buf_take_line(&b, &line));
    sg_buf_dispose(&b);
}

static void keeps_nul_bytes_and_grows(void **state)
{
    (void)state;
    sg_buf_t b = SG_BUF_INIT;
    for (int i = 0; i < 100000; i++) {
        sg_buf_append(&b, "a\0b", 3);
    }
    assert_int_equal(b.len, 300000);
    assert_int_equal(b.data[b.len], '\0');
    sg_buf_printf(&b, "%0500d", 7);
    assert_int_equal(b.len, 300500);
    sg_buf_consume(&b, 300000);
    assert_int_equal(sg_buf_str(&b).len, 500);
    size_t len;
    char *p = sg_buf_steal(&b, &len);
    assert_int_equal(len, 500);
    assert_null(b.data);
    free(p);
}

static void error_table_is_consistent(void **state)
{
    (void)state;
    assert_int_equal(sg_err_jsonrpc_code(SG_EDENIED), -31001);
    assert_int_equal(sg_err_jsonrpc_code(SG_EKILLED), -31003);
    assert_int_equal(sg_err_jsonrpc_code(SG_ECONFIG), -31007);
    assert_int_equal(sg_err_http_status(SG_EUNAUTH), 401);
    assert_int_equal(sg_err_http_status(SG_ESESSION), 404);
    assert_int_equal(sg_err_http_status(SG_ETOOBIG), 413);
    assert_string_equal(sg_err_name(SG_ETIMEDOUT), "etimedout");
    assert_string_equal(sg_err_name(12345), "unknown");
    assert_int_equal(sg_err_jsonrpc_code(12345), -32603);
    sg_error_t err;
    assert_int_equal(sg_error_set(&err, SG_EPARSE, "at %d", 7), SG_EPARSE);
    assert_string_equal(err.msg, "at 7");
    assert_int_equal(sg_error_set(NULL, SG_EIO, "x"), SG_EIO);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frames_lines_across_chunks),
        cmocka_unit_test(keeps_nul_bytes_and_grows),
        cmocka_unit_test(error_table_is_consistent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
