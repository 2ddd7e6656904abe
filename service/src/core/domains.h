/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host names in untrusted text, for the policy's args_domain test.
 *
 * A scan walks every string (and key) of a JSON value, and the text it decodes
 * from them (percent-, base64-, backslash- and numeric-entity-encoded layers,
 * full-width forms), and collects every host any plausible reader would reach:
 * URL authorities read our way (userinfo split at the first and at the last
 * '@') and by libcurl's URL API, plus every dotted name in the text. Hosts are
 * lower-cased, stripped of trailing dots, converted to punycode (libidn2,
 * UTS #46 non-transitional and transitional) and IP literals canonicalised;
 * each name carries its registrable domain (libpsl). More hosts than are
 * really there is the safe error: a list match is "any host matches".
 *
 * A domain list holds entries as written in a rule: exact names (matching the
 * name itself and every host whose registrable domain it is), "*.suffix"
 * (the suffix and every name under it) and IP literals.
 */
#ifndef SG_CORE_DOMAINS_H
#define SG_CORE_DOMAINS_H

#include "base/err.h"
#include "base/sg.h"

#define SG_DOMAINS_MAX_HOSTS  512 /* distinct hosts kept per scan */
#define SG_DOMAINS_MAX_LAYERS 4   /* nested decodings followed */

typedef struct sg_domain_list sg_domain_list_t;
typedef struct sg_domains_scan sg_domains_scan_t;

/* An empty list; the caller owns it. */
sg_domain_list_t *sg_domains_list_new(void);
void sg_domains_list_free(sg_domain_list_t *l);
/*
 * Adds one entry ("pastebin.com", "*.ngrok.io", "10.0.0.1", "[::1]", IDN in
 * Unicode or punycode, any case, trailing dot allowed). SG_EINVAL with a
 * message in err (may be NULL) when it is not a host name, a "*." glob or an
 * IP literal.
 */
int sg_domains_list_add(sg_domain_list_t *l, sg_str_t entry, sg_error_t *err) SG_MUSTCHECK;
/* Sorts the list for lookups; call once after the last add. */
void sg_domains_list_seal(sg_domain_list_t *l);
size_t sg_domains_list_count(const sg_domain_list_t *l);

/* Scratch and result of scans; owns a CURLU handle and the PSL in use. */
sg_domains_scan_t *sg_domains_scan_new(void);
void sg_domains_scan_free(sg_domains_scan_t *s);
/* Forgets the hosts of the previous scan (keeps the buffers). */
void sg_domains_scan_reset(sg_domains_scan_t *s);
/*
 * Adds the hosts of every string and key inside json (validated JSON; depth
 * bounded by SG_JSON_MAX_DEPTH). A scan stops early, with truncated set, when
 * it meets more than SG_DOMAINS_MAX_HOSTS hosts or its byte budget (4 times
 * the input plus 512 KiB) runs out.
 */
void sg_domains_scan_json(sg_domains_scan_t *s, sg_str_t json);
/* Adds the hosts of one decoded string. */
void sg_domains_scan_text(sg_domains_scan_t *s, sg_str_t text);
bool sg_domains_scan_truncated(const sg_domains_scan_t *s);
size_t sg_domains_scan_count(const sg_domains_scan_t *s);
/* The i-th host (normalised, NUL-terminated; borrowed until the next reset). */
const char *sg_domains_scan_host(const sg_domains_scan_t *s, size_t i);
/* Its registrable domain, or NULL for IP literals and public suffixes. */
const char *sg_domains_scan_registrable(const sg_domains_scan_t *s, size_t i);

/* The first host of the scan that the list matches, or NULL. */
const char *sg_domains_list_match(const sg_domain_list_t *l, const sg_domains_scan_t *s);
/* Whether the list matches one normalised host (with its registrable domain, may be NULL). */
bool sg_domains_list_match_host(const sg_domain_list_t *l, const char *host,
                                const char *registrable);

#endif
