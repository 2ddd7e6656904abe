/* SPDX-License-Identifier: Apache-2.0 */
/*
 * core/sse: the text/event-stream parser, fed whole and byte by byte: line endings (CRLF,
 * LF, CR, a CR/LF pair split across chunks), BOM, comments, multi-line data, event types,
 * ids, retry, priming events, a partial event at the end of a stream, limits.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/sse.h"

#define MAX_EVENTS 16

typedef struct got {
    char *data[MAX_EVENTS];
    size_t len[MAX_EVENTS];
    size_t n;
} got_t;

static void on_event(void *arg, char *data, size_t len)
{
    got_t *g = arg;
    assert_true(g->n < MAX_EVENTS);
    assert_int_equal(strlen(data), len); /* NUL-terminated, no NUL inside here */
    g->data[g->n] = data;
    g->len[g->n++] = len;
}

static void got_free(got_t *g)
{
    for (size_t i = 0; i < g->n; i++) {
        free(g->data[i]);
    }
    memset(g, 0, sizeof(*g));
}

/* Feeds s whole, or in chunks of `step` bytes. */
static int feed(sg_sse_t *p, got_t *g, const char *s, size_t step)
{
    size_t n = strlen(s);
    if (step == 0) {
        return sg_sse_feed(p, s, n, on_event, g);
    }
    for (size_t i = 0; i < n; i += step) {
        int rc = sg_sse_feed(p, s + i, n - i < step ? n - i : step, on_event, g);
        if (rc != SG_OK) {
            return rc;
        }
    }
    return SG_OK;
}

static const char stream[] = "\xEF\xBB\xBF: keep-alive\r\n\r\n"
                             "event: message\r\ndata: one\r\n\r\n"
                             "id: e1\rretry: 5000\rdata:\r\r"
                             "data: two a\r\ndata:two b\n\n"
                             "event: ping\ndata: ignored\n\n"
                             "unknown: field\ndata\ndata: three\n\n"
                             "data: cut";

static void parses_a_stream_in_any_chunks(void **state)
{
    (void)state;
    static const size_t steps[] = { 0, 1, 2, 3, 7 };
    for (size_t k = 0; k < sizeof(steps) / sizeof(steps[0]); k++) {
        sg_sse_t p = { 0 };
        got_t g = { 0 };
        assert_int_equal(feed(&p, &g, stream, steps[k]), SG_OK);
        assert_int_equal(g.n, 3);
        assert_string_equal(g.data[0], "one");
        assert_string_equal(g.data[1], "two a\ntwo b");
        assert_string_equal(g.data[2], "\nthree"); /* `data` alone is an empty line */
        assert_string_equal(p.last_id, "e1");
        assert_true(p.has_retry);
        assert_int_equal(p.retry_ms, 5000);
        got_free(&g);
        sg_sse_dispose(&p);
    }
}

static void a_partial_event_is_dropped_at_the_end_of_a_stream(void **state)
{
    (void)state;
    sg_sse_t p = { 0 };
    got_t g = { 0 };
    assert_int_equal(feed(&p, &g, "id: r1\ndata: a\n\ndata: half", 0), SG_OK);
    assert_int_equal(g.n, 1);
    sg_sse_end_stream(&p);
    assert_string_equal(p.last_id, "r1");
    /* a resumed stream, with its own BOM */
    assert_int_equal(feed(&p, &g,
                          "\xEF\xBB\xBF"
                          "data: b\n\n",
                          0),
                     SG_OK);
    assert_int_equal(g.n, 2);
    assert_string_equal(g.data[1], "b");
    got_free(&g);
    sg_sse_dispose(&p);
}

static void ids_and_retry_are_checked(void **state)
{
    (void)state;
    sg_sse_t p = { 0 };
    got_t g = { 0 };
    assert_int_equal(feed(&p, &g, "id: a\nretry: 12x\ndata:\n\n", 0), SG_OK);
    assert_string_equal(p.last_id, "a");
    assert_false(p.has_retry);
    assert_int_equal(feed(&p, &g, "retry: 99999999999\nid\ndata:\n\n", 0), SG_OK);
    assert_int_equal(p.retry_ms, SG_SSE_MAX_RETRY_MS);
    assert_null(p.last_id); /* an empty id resets it */
    char *long_id = malloc(SG_SSE_MAX_ID + 16);
    memcpy(long_id, "id: ", 4);
    memset(long_id + 4, 'x', SG_SSE_MAX_ID + 1);
    strcpy(long_id + 4 + SG_SSE_MAX_ID + 1, "\n\n");
    assert_int_equal(feed(&p, &g, "id: b\n\n", 0), SG_OK);
    assert_int_equal(feed(&p, &g, long_id, 0), SG_OK);
    assert_string_equal(p.last_id, "b"); /* too long: ignored */
    free(long_id);
    assert_int_equal(g.n, 0);
    sg_sse_dispose(&p);
}

static void oversized_data_is_etoobig(void **state)
{
    (void)state;
    sg_sse_t p = { 0 };
    got_t g = { 0 };
    size_t n = SG_SSE_MAX_DATA / 2 + 8;
    char *line = malloc(n + 8);
    memcpy(line, "data: ", 6);
    memset(line + 6, 'a', n);
    strcpy(line + 6 + n, "\n");
    assert_int_equal(feed(&p, &g, line, 0), SG_OK);
    assert_int_equal(feed(&p, &g, line, 0), SG_ETOOBIG);
    free(line);
    sg_sse_dispose(&p);
    char *huge = malloc(SG_SSE_MAX_DATA + 64);
    memset(huge, 'a', SG_SSE_MAX_DATA + 63);
    huge[SG_SSE_MAX_DATA + 63] = '\0';
    assert_int_equal(feed(&p, &g, huge, 0), SG_ETOOBIG); /* a line without an end */
    free(huge);
    sg_sse_dispose(&p);
    assert_int_equal(g.n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_a_stream_in_any_chunks),
        cmocka_unit_test(a_partial_event_is_dropped_at_the_end_of_a_stream),
        cmocka_unit_test(ids_and_retry_are_checked),
        cmocka_unit_test(oversized_data_is_etoobig),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
