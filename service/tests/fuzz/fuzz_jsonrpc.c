/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the JSON-RPC envelope parser (and through it the
 * strict validator and the span accessors). Besides "no crash", it checks
 * that every accepted message re-parses alone to the same kind, that its
 * spans lie inside the input, and that replies built from its members are
 * valid JSON again (the method is copied to a C string, so a decoded method
 * with U+0000 could differ; validation rejects \u0000 before that matters).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I service/src -D_GNU_SOURCE \
 *       -DH2O_USE_LIBUV=0 service/tests/fuzz/fuzz_jsonrpc.c service/src/core/jsonrpc.c \
 *       service/src/base/json.c service/src/base/buf.c service/src/base/mem.c \
 *       service/src/base/err.c -lyajl -o fuzz_jsonrpc
 */
#include <stdlib.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/mem.h"
#include "core/jsonrpc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool inside(sg_str_t s, const char *base, size_t size)
{
    return s.len == 0 || (s.ptr >= base && s.ptr + s.len <= base + size);
}

static void check_message(const sg_jsonrpc_msg_t *m, const char *body, size_t size)
{
    sg_buf_t out = SG_BUF_INIT, scratch = SG_BUF_INIT;
    sg_jsonrpc_msg_t again;
    SG_BUG_ON(m->kind == SG_JSONRPC_INVALID);
    SG_BUG_ON(!inside(m->raw, body, size) || !inside(m->id, body, size));
    SG_BUG_ON(!inside(m->params, body, size) || !inside(m->result, body, size));
    SG_BUG_ON(sg_jsonrpc_parse_one(m->raw, &again, &scratch, NULL) != SG_OK);
    SG_BUG_ON(again.kind != m->kind || !sg_str_eq(again.method, m->method));

    char *method = sg_xmemdup(m->method.ptr != NULL ? m->method.ptr : "", m->method.len);
    for (int i = 0; i < 3; i++) {
        sg_buf_reset(&out);
        if (i == 0) {
            sg_jsonrpc_write_request(&out, m->id, method, m->params);
        } else if (i == 1) {
            sg_jsonrpc_write_error(&out, m->id, -32600, method, m->params);
        } else {
            sg_jsonrpc_write_result(&out, m->id, m->result);
        }
        SG_BUG_ON(sg_json_validate(out.data, out.len, SG_JSON_MAX_DEPTH, NULL) != SG_OK);
    }
    free(method);
    sg_json_iter_t it = SG_JSON_ITER_INIT(m->params);
    sg_str_t k, v;
    while (sg_json_type(m->params) == SG_JSON_OBJECT && sg_json_object_next(&it, &k, &v) == 1) {
        SG_BUG_ON(sg_json_string_decode(k, &scratch) != SG_OK);
    }
    sg_buf_dispose(&out);
    sg_buf_dispose(&scratch);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    sg_jsonrpc_limits_t lim = SG_JSONRPC_LIMITS_DEFAULT;
    sg_jsonrpc_batch_t b;
    sg_error_t err;
    char *body = malloc(size != 0 ? size : 1); /* exact size: over-reads are caught */
    if (body == NULL) {
        return 0;
    }
    if (size != 0) {
        memcpy(body, data, size);
    }
    lim.max_depth = 16;
    if (sg_jsonrpc_parse(body, size, &lim, &b, &err) == SG_OK) {
        SG_BUG_ON(b.count == 0 || b.count > lim.max_batch);
        for (size_t i = 0; i < b.count; i++) {
            check_message(&b.msgs[i], body, size);
        }
        sg_jsonrpc_batch_dispose(&b);
    } else {
        SG_BUG_ON(b.msgs != NULL || err.code >= 0);
    }
    free(body);
    return 0;
}
