/* SPDX-License-Identifier: Apache-2.0 */
/*
 * libFuzzer target for the host extractor and entry lists (core/domains*.c):
 * URL readings (ours and curl's), every decoding layer, IDN, IP literals and
 * the public suffix lookups. The input is scanned as text and, when it is
 * valid JSON, as arguments; its first line is also tried as a list entry.
 * Checks: hosts are bounded in number, normalised (lower case, no trailing
 * dot, no NUL), and their registrable domain is a suffix of the host.
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -I service/src -D_GNU_SOURCE \
 *       service/tests/fuzz/fuzz_domains.c service/src/core/domains*.c \
 *       service/src/base/json.c service/src/base/buf.c service/src/base/mem.c \
 *       service/src/base/err.c service/src/base/log.c \
 *       $(pkg-config --cflags --libs yajl libpsl libidn2 libcurl) -o fuzz_domains
 *   ./fuzz_domains -max_len=65536 -max_total_time=600 corpus/
 */
#include <stdlib.h>

#include "base/json.h"
#include "core/domains.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sg_domains_scan_t *scan;
static sg_domain_list_t *list;

static void check_hosts(const sg_domains_scan_t *s)
{
    SG_BUG_ON(sg_domains_scan_count(s) > SG_DOMAINS_MAX_HOSTS);
    for (size_t i = 0; i < sg_domains_scan_count(s); i++) {
        const char *h = sg_domains_scan_host(s, i);
        const char *reg = sg_domains_scan_registrable(s, i);
        size_t n = strlen(h);
        SG_BUG_ON(n == 0 || h[n - 1] == '.');
        for (size_t k = 0; k < n; k++) {
            SG_BUG_ON(h[k] >= 'A' && h[k] <= 'Z');
        }
        if (reg != NULL) {
            size_t r = strlen(reg);
            SG_BUG_ON(r > n || strcmp(h + n - r, reg) != 0);
        }
        (void)sg_domains_list_match_host(list, h, reg);
    }
    (void)sg_domains_list_match(list, s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (scan == NULL) {
        scan = sg_domains_scan_new();
        list = sg_domains_list_new();
        static const char *const entries[] = { "paste.example", "*.ngrok.io",     "10.0.0.1",
                                               "[::1]",         "bücher.example", "co.uk" };
        for (size_t i = 0; i < SG_ARRAY_LEN(entries); i++) {
            SG_BUG_ON(sg_domains_list_add(list, sg_str(entries[i]), NULL) != SG_OK);
        }
        sg_domains_list_seal(list);
    }
    sg_str_t text = sg_str_n((const char *)data, size);
    sg_domains_scan_reset(scan);
    sg_domains_scan_text(scan, text);
    check_hosts(scan);
    if (sg_json_validate(text.ptr, text.len, SG_JSON_MAX_DEPTH, NULL) == SG_OK) {
        sg_domains_scan_reset(scan);
        sg_domains_scan_json(scan, text);
        check_hosts(scan);
    }
    const char *nl = memchr(text.ptr, '\n', size);
    sg_str_t entry = sg_str_n(text.ptr, nl != NULL ? (size_t)(nl - text.ptr) : size);
    sg_domain_list_t *l = sg_domains_list_new();
    if (sg_domains_list_add(l, entry, NULL) == SG_OK) {
        sg_domains_list_seal(l);
        SG_BUG_ON(sg_domains_list_count(l) != 1);
    }
    sg_domains_list_free(l);
    return 0;
}
