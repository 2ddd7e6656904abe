/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the policy compiler (core/policy_load.c) and, through
 * the snapshots it accepts, the evaluator. The input is a tenant document,
 * optionally followed by a 0xFF byte and the JSON arguments of a call.
 * Besides "no crash, no leak", it checks the contracts: a rejected document
 * yields problems and no snapshot; an accepted one decides every call with a
 * rule name and a reason, the traced and the indexed walks agree, and a tool
 * reported hidden is never allowed.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I service/src -D_GNU_SOURCE \
 *       -DPCRE2_CODE_UNIT_WIDTH=8 service/tests/fuzz/fuzz_policy_compile.c \
 *       service/src/core/policy*.c service/src/core/domains*.c service/src/base/json.c \
 *       service/src/base/buf.c service/src/base/mem.c service/src/base/err.c \
 *       service/src/base/log.c \
 *       $(pkg-config --cflags --libs libpcre2-8 yajl libpsl libidn2 libcurl) \
 *       -o fuzz_policy_compile
 *   ./fuzz_policy_compile -max_len=8192 -max_total_time=600 corpus/ \
 *       service/tests/vectors/policy/
 */
#include <stdlib.h>

#include "base/json.h"
#include "core/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const tools[] = {
    "fs__read_file", "fs__delete_file", "t__tie", "up1__x", "web__fetch", "x", ""
};

static void check_call(const sg_policy_t *p, sg_policy_ctx_t *ctx, const char *tool, sg_str_t args,
                       sg_tool_class_t cls)
{
    static char agent[] = "agent", admin[] = "admin";
    char *roles[] = { agent, admin };
    sg_str_t t = sg_str(tool);
    const char *sep = strstr(tool, "__");
    sg_str_t up = sep != NULL ? sg_str_n(tool, (size_t)(sep - tool)) : SG_STR_NULL;
    sg_policy_input_t in = { .identity = SG_STR_LIT("agent-1"),
                             .roles = roles,
                             .nroles = 2,
                             .tool = t,
                             .upstream = up,
                             .method = SG_STR_LIT("tools/call"),
                             .tool_class = cls,
                             .arguments = args,
                             .ctx = ctx };
    sg_policy_result_t a, b;
    sg_policy_eval(p, &in, &a);
    in.want_trace = true;
    sg_policy_eval(p, &in, &b);
    SG_BUG_ON(a.rule == NULL || a.reason == NULL);
    SG_BUG_ON(a.decision != b.decision || strcmp(a.rule, b.rule) != 0);
    SG_BUG_ON(a.has_shadow != b.has_shadow);
    SG_BUG_ON(b.ntrace != sg_policy_rule_count(p));
    bool visible = sg_policy_tool_visible(p, in.identity, roles, 2, t, up, cls);
    SG_BUG_ON(!visible && a.decision != SG_DECISION_DENY);
    sg_policy_result_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *cut = memchr(text, 0xff, size);
    size_t doc_len = cut != NULL ? (size_t)(cut - text) : size;
    sg_str_t args = SG_STR_LIT("{\"path\":\"/workspace/../etc/passwd\",\"url\":\"https://"
                               "good.example@paste.example/\"}");
    if (cut != NULL) {
        sg_str_t rest = sg_str_n(cut + 1, size - doc_len - 1);
        if (sg_json_validate(rest.ptr, rest.len, SG_JSON_MAX_DEPTH, NULL) == SG_OK) {
            args = rest;
        }
    }
    sg_policy_t *p = NULL;
    sg_policy_problems_t probs = SG_POLICY_PROBLEMS_INIT;
    sg_error_t err = { 0 };
    int rc = sg_policy_compile(sg_str_n(text, doc_len), &p, &probs, &err);
    if (rc != SG_OK) {
        SG_BUG_ON(p != NULL || probs.count == 0 || err.code != rc);
        for (size_t i = 0; i < probs.count; i++) {
            SG_BUG_ON(probs.items[i].pointer == NULL || probs.items[i].error == NULL);
        }
        sg_policy_problems_dispose(&probs);
        return 0;
    }
    SG_BUG_ON(p == NULL || probs.count != 0);
    sg_policy_ctx_t *ctx = sg_policy_ctx_new();
    for (size_t i = 0; i < SG_ARRAY_LEN(tools); i++) {
        sg_tool_class_t cls = sg_policy_classify(p, sg_str(tools[i]), SG_STR_NULL);
        check_call(p, ctx, tools[i], args, cls);
        check_call(p, ctx, tools[i], SG_STR_NULL, (sg_tool_class_t)(i % 3));
    }
    sg_policy_ctx_free(ctx);
    sg_policy_unref(p);
    return 0;
}
