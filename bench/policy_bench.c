/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Micro-benchmark of core/policy: nanoseconds (thread CPU time) per decision for 10, 100 and
 * 1,000 rules, in three shapes, plus the cost of the args_domain scan.
 *
 *   indexed  every rule names exact tools (the common shape: the index finds the
 *            few rules for the called tool, so the cost stays flat)
 *   upstream glob tools but an upstream list (indexed by upstream: a tenth of
 *            the rules share the called upstream, so the cost grows with them)
 *   generic  glob tools without upstream (every rule is a candidate: the worst
 *            case, linear in the rules; the call matches the last one)
 *
 * Not part of the CMake build. From the repository root:
 *
 *   cc -O2 -std=c11 -D_GNU_SOURCE -DPCRE2_CODE_UNIT_WIDTH=8 -Iservice/src \
 *      bench/policy_bench.c service/src/core/policy*.c service/src/core/domains*.c \
 *      service/src/base/json.c service/src/base/buf.c service/src/base/mem.c \
 *      service/src/base/err.c service/src/base/log.c \
 *      $(pkg-config --cflags --libs libpcre2-8 yajl libpsl libidn2 libcurl) \
 *      -o /tmp/policy_bench && /tmp/policy_bench
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/buf.h"
#include "core/domains.h"
#include "core/policy.h"

#define TARGET_NS 300000000.0 /* run each case for about 0.3 s */

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts); /* CPU time: robust on a busy machine */
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* One rule of the given shape; rule i of n. Every rule tests roles and an argument. */
static void add_rule(sg_buf_t *b, const char *shape, int i, int n)
{
    const char *action = i % 3 == 0 ? "deny" : "allow";
    sg_buf_printf(b, "%s{\"name\":\"r%05d\",\"priority\":%d,\"action\":\"%s\",\"match\":{",
                  i ? "," : "", i, n - i, action);
    if (shape[0] == 'i') {
        sg_buf_printf(b, "\"tool\":[\"up%d__tool%d\",\"up%d__alt%d\"]", i % 10, i, i % 10, i);
    } else if (shape[0] == 'u') {
        sg_buf_printf(b, "\"upstream\":\"up%d\",\"tool\":\"up%d__tool%d*\"", i % 10, i % 10, i);
    } else {
        sg_buf_printf(b, "\"tool\":\"up%d__tool%d*\"", i % 10, i);
    }
    sg_buf_printf(
            b,
            ",\"roles\":[\"agent\",\"ops\"],\"args\":{\"path\":{\"regex\":\"^/workspace/%d/\","
            "\"type\":\"path\"}}}}",
            i);
}

static sg_policy_t *build(const char *shape, int n)
{
    sg_buf_t b = SG_BUF_INIT;
    sg_buf_append_cstr(&b, "{\"profile\":\"strict\",\"policies\":[");
    for (int i = 0; i < n; i++) {
        add_rule(&b, shape, i, n);
    }
    sg_buf_append_cstr(&b, "]}");
    sg_policy_t *p = NULL;
    sg_error_t err = { 0 };
    if (sg_policy_compile(sg_buf_str(&b), &p, NULL, &err) != SG_OK) {
        fprintf(stderr, "compile: %s\n", err.msg);
        exit(1);
    }
    sg_buf_dispose(&b);
    return p;
}

/* ns per sg_policy_eval for a call of rule `target`'s tool with a matching argument. */
static double time_eval(const sg_policy_t *p, sg_policy_ctx_t *ctx, int target, sg_decision_t *d)
{
    char tool[64], up[16], args[96];
    char *roles[] = { "agent" };
    snprintf(tool, sizeof(tool), "up%d__tool%d", target % 10, target);
    snprintf(up, sizeof(up), "up%d", target % 10);
    snprintf(args, sizeof(args), "{\"path\":\"/workspace/%d/src/main.c\"}", target);
    sg_policy_input_t in = { .identity = SG_STR_LIT("agent-1"),
                             .roles = roles,
                             .nroles = 1,
                             .tool = sg_str(tool),
                             .upstream = sg_str(up),
                             .method = SG_STR_LIT("tools/call"),
                             .tool_class = SG_TOOL_CLASS_READ,
                             .arguments = sg_str(args),
                             .ctx = ctx };
    sg_policy_result_t r;
    long iters = 1000;
    double t0, el;
    for (;;) {
        t0 = now_ns();
        for (long k = 0; k < iters; k++) {
            sg_policy_eval(p, &in, &r);
        }
        el = now_ns() - t0;
        if (el > TARGET_NS / 10) {
            break;
        }
        iters *= 10;
    }
    iters = (long)((double)iters * TARGET_NS / el) + 1;
    t0 = now_ns();
    for (long k = 0; k < iters; k++) {
        sg_policy_eval(p, &in, &r);
    }
    el = now_ns() - t0;
    *d = r.decision;
    return el / (double)iters;
}

static void bench_decisions(sg_policy_ctx_t *ctx)
{
    static const char *const shapes[] = { "indexed", "upstream", "generic" };
    static const int sizes[] = { 10, 100, 1000 };
    printf("%-10s %6s %14s %14s   decision\n", "shape", "rules", "ns/decision", "compile ms");
    for (size_t s = 0; s < 3; s++) {
        for (size_t k = 0; k < 3; k++) {
            int n = sizes[k];
            double t0 = now_ns();
            sg_policy_t *p = build(shapes[s], n);
            double compile_ms = (now_ns() - t0) / 1e6;
            sg_decision_t d;
            int target = n - 2; /* an allow near the end of the order */
            double ns = time_eval(p, ctx, target, &d);
            printf("%-10s %6d %14.1f %14.2f   %s\n", shapes[s], n, ns, compile_ms,
                   sg_policy_decision_name(d));
            sg_policy_unref(p);
        }
    }
}

static void time_scan(sg_domains_scan_t *s, const char *label, sg_str_t json)
{
    long iters = 0;
    double t0 = now_ns(), el;
    do {
        sg_domains_scan_reset(s);
        sg_domains_scan_json(s, json);
        iters++;
        el = now_ns() - t0;
    } while (el < TARGET_NS);
    printf("%-34s %9zu bytes %12.1f us/scan %8.1f MB/s  hosts %zu%s\n", label, json.len,
           el / (double)iters / 1e3, (double)json.len * (double)iters / el * 1e3,
           sg_domains_scan_count(s), sg_domains_scan_truncated(s) ? " (truncated)" : "");
}

static void bench_scans(void)
{
    sg_domains_scan_t *s = sg_domains_scan_new();
    time_scan(s, "args_domain: small, one URL",
              SG_STR_LIT("{\"url\":\"https://docs.example/guide?q=1\",\"limit\":10}"));
    sg_buf_t b = SG_BUF_INIT;
    static const char *const fills[] = {
        "The quick brown fox jumps over the lazy dog. ",
        "see https://docs.example/a/b?c=d and mail bob@corp.example; ",
        "QUFBQUFB%41%2e.:://@@[[::]]\xef\xbd\x8e\xe3\x80\x82",
    };
    static const char *const labels[] = { "64 KiB prose", "64 KiB with a URL every 60 B",
                                          "64 KiB hostile (encodings, ://)" };
    for (size_t i = 0; i < 3; i++) {
        sg_buf_reset(&b);
        sg_buf_append_cstr(&b, "{\"text\":\"");
        while (b.len < 65536) {
            sg_buf_append_cstr(&b, fills[i]);
        }
        sg_buf_append_cstr(&b, "\"}");
        time_scan(s, labels[i], sg_buf_str(&b));
    }
    sg_buf_dispose(&b);
    sg_domains_scan_free(s);
}

int main(void)
{
    sg_policy_ctx_t *ctx = sg_policy_ctx_new();
    bench_decisions(ctx);
    printf("\n");
    bench_scans();
    sg_policy_ctx_free(ctx);
    return 0;
}
