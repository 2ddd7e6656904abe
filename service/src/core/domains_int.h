/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Internals shared by domains.c (scans), domains_decode.c (text decoders) and
 * domains_list.c (entry lists). Nothing outside the domains module includes it.
 */
#ifndef SG_CORE_DOMAINS_INT_H
#define SG_CORE_DOMAINS_INT_H

#include "base/buf.h"
#include "base/mem.h"
#include "core/domains.h"

#define SG_DOMAINS_MAX_DNS_LEN 253

/*
 * Makes room for element n of an array that grows by doubling: its capacity is
 * always the next power of two above the count, so no capacity field is kept.
 */
static inline void *sg_domains_grow(void *v, size_t n, size_t size)
{
    if (n != 0 && (n & (n - 1)) != 0) {
        return v;
    }
    return sg_xrealloc(v, (n == 0 ? 1 : 2 * n) * size);
}

static inline bool sg_domains_is_alpha(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static inline bool sg_domains_is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

/* 0-15 for a hex digit, -1 otherwise. */
int sg_domains_hex_value(unsigned char c);
/* Decodes one UTF-8 sequence at p; returns its length, 0 when ill-formed. */
size_t sg_domains_utf8_next(const unsigned char *p, size_t avail, uint32_t *cp);
/* Valid UTF-8 without control characters other than tab, CR and LF; not empty. */
bool sg_domains_looks_textual(const char *p, size_t len);

/*
 * Decoders: each appends the decoding of p[0..len) to out (reset by the
 * caller) and returns true when it changed anything. They never emit NUL.
 */
bool sg_domains_decode_percent(const char *p, size_t len, sg_buf_t *out);   /* %HH */
bool sg_domains_decode_backslash(const char *p, size_t len, sg_buf_t *out); /* \/ \xHH \uHHHH */
bool sg_domains_decode_entities(const char *p, size_t len, sg_buf_t *out);  /* &#46; &#x2e; &sol; */
bool sg_domains_fold_wide(const char *p, size_t len, sg_buf_t *out); /* ｐａｓｔｅ。 -> paste. */
/* 0-63 for a base64 character (standard or URL-safe alphabet), -1 otherwise. */
int sg_domains_b64_value(unsigned char c);
/* Decodes a run of base64 characters (no padding); a trailing partial byte is dropped. */
void sg_domains_decode_b64(const char *p, size_t len, sg_buf_t *out);

/* Whether the list matches one normalised host; ip: it is an IP literal (no suffix matching). */
bool sg_domains_match_host(const sg_domain_list_t *l, const char *host, const char *reg, bool ip);

#endif
