/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Host extraction for args_domain (see domains.h for the contract).
 *
 * Readings of one string, all collected: every "scheme:/" authority read by
 * us (userinfo split at the first and the last '@', port cut) and by
 * curl_url(); every dotted token of [A-Za-z0-9._-] and non-ASCII bytes
 * (IDN), plus its ASCII-only runs. Then, up to SG_DOMAINS_MAX_LAYERS deep, the
 * same for the string's decodings: percent, backslash escapes, numeric HTML
 * entities, full-width/ideographic dots folded to ASCII, and base64 (standard
 * and URL-safe, at each of the four alignments; kept only when the result is
 * text). Work is bounded by a byte budget and a host count; running out sets
 * `truncated`, which the policy treats as "may match" for restrictive rules.
 */
#include "core/domains.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <idn2.h>
#include <libpsl.h>
#include <stdlib.h>

#include <curl/curl.h>

#include "base/buf.h"
#include "base/json.h"
#include "base/mem.h"
#include "core/domains_int.h"

#define MAX_HOST_LEN   1024 /* longer candidates are cut to their last 253 bytes */
#define MAX_URL_LEN    8192
#define MIN_B64_RUN    8
#define BUDGET_BASE    (512u << 10)
#define BUDGET_FACTOR  4
#define NO_REGISTRABLE UINT32_MAX
#define MAX_IDN        2048 /* idn2 conversions per scan; more: truncated */
#define MAX_CURL       1024 /* curl_url readings per scan; more: truncated */
#define SEEN_SLOTS     4096 /* remembered candidates, a power of two */
#define SEEN_MAX_LEN   512  /* longer candidates are not remembered */
#define SEEN_PROBES    8    /* a longer probe (hash flooding) just skips the cache */

struct host_rec {
    uint32_t off; /* into arena */
    uint32_t reg; /* into arena, or NO_REGISTRABLE */
    bool ip;
};

/* A candidate already handled in this scan (tag byte + text in seen_bytes). */
struct seen_slot {
    uint64_t hash;
    uint32_t gen; /* valid only when equal to the scan's generation */
    uint32_t off;
    uint32_t len;
};

struct sg_domains_scan {
    const psl_ctx_t *psl;
    psl_ctx_t *psl_owned; /* when the built-in list is older than the system's */
    CURLU *url;
    sg_buf_t arena; /* NUL-terminated hosts */
    struct host_rec hosts[SG_DOMAINS_MAX_HOSTS];
    size_t nhosts;
    bool truncated;
    size_t budget;
    sg_buf_t layers[SG_DOMAINS_MAX_LAYERS]; /* decode output of each depth */
    sg_buf_t host;                          /* normalisation scratch */
    sg_buf_t str;                           /* JSON string decoding */
    struct seen_slot *seen;                 /* SEEN_SLOTS, allocated on first use */
    sg_buf_t seen_bytes;
    uint32_t gen; /* bumped by reset: forgets every seen slot at once */
    size_t nseen;
    size_t nidn, ncurl;
};

static void scan_string(sg_domains_scan_t *s, const char *p, size_t len, unsigned depth);

/* ---- small helpers ------------------------------------------------------- */

static bool is_name_char(unsigned char c)
{
    return sg_domains_is_alpha(c) || sg_domains_is_digit(c) || c == '-' || c == '_' || c == '.' ||
           c >= 0x80;
}

static bool is_url_stop(unsigned char c)
{
    return c <= 0x20 || c == 0x7f || c == '"' || c == '\'' || c == '<' || c == '>' || c == '`' ||
           c == '{' || c == '}' || c == '|' || c == '^';
}

/* ---- candidates already handled ------------------------------------------ */

static uint64_t seen_hash(char tag, const char *p, size_t len)
{
    uint64_t h = (1469598103934665603ull ^ (unsigned char)tag) * 1099511628211ull;
    for (size_t i = 0; i < len; i++) {
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    }
    return h;
}

/*
 * True when (tag, p[0..len)) was handled before in this scan; otherwise
 * remembers it (room permitting) and returns false. Exact: texts are compared,
 * so a hash collision never hides a candidate; it only costs a probe.
 */
static bool seen_before(sg_domains_scan_t *s, char tag, const char *p, size_t len)
{
    if (len > SEEN_MAX_LEN) {
        return false;
    }
    if (s->seen == NULL) {
        s->seen = sg_xcalloc(SEEN_SLOTS, sizeof(*s->seen));
    }
    uint64_t h = seen_hash(tag, p, len);
    size_t i = (size_t)h & (SEEN_SLOTS - 1);
    for (unsigned probe = 0; probe < SEEN_PROBES; probe++, i = (i + 1) & (SEEN_SLOTS - 1)) {
        struct seen_slot *slot = &s->seen[i];
        if (slot->gen != s->gen) {
            if (s->nseen < SEEN_SLOTS / 2) {
                *slot = (struct seen_slot){ h, s->gen, (uint32_t)s->seen_bytes.len,
                                            (uint32_t)len + 1 };
                sg_buf_append_char(&s->seen_bytes, tag);
                sg_buf_append(&s->seen_bytes, p, len);
                s->nseen++;
            }
            return false;
        }
        if (slot->hash == h && slot->len == len + 1 && s->seen_bytes.data[slot->off] == tag &&
            memcmp(s->seen_bytes.data + slot->off + 1, p, len) == 0) {
            return true;
        }
    }
    return false;
}

/* Counts one use of an expensive reader; false (and truncated) past its cap. */
static bool spend(sg_domains_scan_t *s, size_t *used, size_t cap)
{
    if (*used >= cap) {
        s->truncated = true;
        return false;
    }
    (*used)++;
    return true;
}

/* ---- the host set -------------------------------------------------------- */

static const char *host_at(const sg_domains_scan_t *s, uint32_t off)
{
    return s->arena.data + off;
}

static bool have_host(const sg_domains_scan_t *s, const char *h, size_t len)
{
    for (size_t i = 0; i < s->nhosts; i++) {
        const char *k = host_at(s, s->hosts[i].off);
        if (strncmp(k, h, len) == 0 && k[len] == '\0') {
            return true;
        }
    }
    return false;
}

/* Stores a normalised host (lower case, no trailing dot, punycode or IP literal). */
static void store_host(sg_domains_scan_t *s, const char *h, size_t len, bool ip)
{
    if (len == 0 || have_host(s, h, len)) {
        return;
    }
    if (s->nhosts == SG_DOMAINS_MAX_HOSTS) {
        s->truncated = true;
        return;
    }
    uint32_t off = (uint32_t)s->arena.len;
    sg_buf_append(&s->arena, h, len);
    sg_buf_append(&s->arena, "", 1);
    struct host_rec *r = &s->hosts[s->nhosts++];
    r->off = off;
    r->ip = ip;
    r->reg = NO_REGISTRABLE;
    if (!ip) {
        const char *name = host_at(s, off);
        const char *reg = psl_registrable_domain(s->psl, name);
        if (reg != NULL) {
            r->reg = off + (uint32_t)(reg - name);
        }
    }
}

static bool add_ipv6(sg_domains_scan_t *s, const char *p, size_t len)
{
    char tmp[64], out[INET6_ADDRSTRLEN];
    struct in6_addr a;
    const char *zone = memchr(p, '%', len); /* fe80::1%25eth0 */
    if (zone != NULL) {
        len = (size_t)(zone - p);
    }
    if (len == 0 || len >= sizeof(tmp)) {
        return false;
    }
    memcpy(tmp, p, len);
    tmp[len] = '\0';
    if (inet_pton(AF_INET6, tmp, &a) != 1 || inet_ntop(AF_INET6, &a, out, sizeof(out)) == NULL) {
        return false;
    }
    store_host(s, out, strlen(out), true);
    if (IN6_IS_ADDR_V4MAPPED(&a) || IN6_IS_ADDR_V4COMPAT(&a)) {
        char v4[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &a.s6_addr[12], v4, sizeof(v4)) != NULL) {
            store_host(s, v4, strlen(v4), true);
        }
    }
    return true;
}

/* WHATWG: a host whose last label is a number is an IPv4 address (any of inet_aton's forms). */
static bool add_ipv4(sg_domains_scan_t *s, const char *h)
{
    const char *last = strrchr(h, '.');
    last = last != NULL ? last + 1 : h;
    bool numeric = *last != '\0';
    for (const char *q = last; *q != '\0'; q++) {
        numeric = numeric && (sg_domains_is_digit((unsigned char)*q) || *q == 'x' ||
                              sg_domains_hex_value(*q) >= 0);
    }
    struct in_addr a;
    char out[INET_ADDRSTRLEN];
    if (!numeric || !sg_domains_is_digit((unsigned char)*last) || inet_aton(h, &a) == 0 ||
        inet_ntop(AF_INET, &a, out, sizeof(out)) == NULL) {
        return false;
    }
    store_host(s, out, strlen(out), true);
    return true;
}

static void add_idn(sg_domains_scan_t *s, const char *h, bool need_dot)
{
    if (!spend(s, &s->nidn, MAX_IDN)) {
        return;
    }
    static const int flags[] = { IDN2_NONTRANSITIONAL | IDN2_NFC_INPUT,
                                 IDN2_TRANSITIONAL | IDN2_NFC_INPUT };
    for (size_t i = 0; i < SG_ARRAY_LEN(flags); i++) {
        char *out = NULL;
        if (idn2_to_ascii_8z(h, &out, flags[i]) == IDN2_OK && out != NULL) {
            size_t n = strlen(out);
            while (n > 0 && out[n - 1] == '.') {
                n--;
            }
            for (size_t k = 0; k < n; k++) {
                out[k] = (char)(out[k] >= 'A' && out[k] <= 'Z' ? out[k] + 32 : out[k]);
            }
            if (!need_dot || memchr(out, '.', n) != NULL) {
                store_host(s, out, n, false);
            }
        }
        idn2_free(out);
    }
}

/*
 * Copies a candidate into s->host: lower-cased, percent-decoded when it came
 * from a URL, without leading or trailing dots, cut to the last 253 bytes at
 * a label boundary (no resolver takes more; a lenient one might take the
 * tail). Returns the name (NUL-terminated, inside s->host) or NULL.
 */
static char *host_copy(sg_domains_scan_t *s, const char *p, size_t len, bool from_url, bool *ascii,
                       size_t *out_len)
{
    sg_buf_t *b = &s->host;
    sg_buf_reset(b);
    *ascii = true;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        int hi, lo;
        if (from_url && c == '%' && i + 2 < len && (hi = sg_domains_hex_value(p[i + 1])) >= 0 &&
            (lo = sg_domains_hex_value(p[i + 2])) >= 0) {
            c = (unsigned char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0') {
            return NULL;
        }
        *ascii = *ascii && c < 0x80;
        sg_buf_append_char(b, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
    }
    char *h = b->data;
    size_t n = b->len;
    while (n > 0 && h[n - 1] == '.') {
        n--;
    }
    while (n > 0 && h[0] == '.') {
        h++;
        n--;
    }
    if (n > SG_DOMAINS_MAX_DNS_LEN) {
        char *cut = memchr(h + n - SG_DOMAINS_MAX_DNS_LEN, '.', SG_DOMAINS_MAX_DNS_LEN);
        n = cut != NULL ? n - (size_t)(cut + 1 - h) : 0;
        h = cut != NULL ? cut + 1 : h;
    }
    if (n == 0) {
        return NULL;
    }
    h[n] = '\0';
    *out_len = n;
    return h;
}

/*
 * Normalises one candidate and stores what it names. from_url: it came from a
 * URL authority (percent-decoded, may be an IPv6 literal, need not be dotted).
 */
static void add_host(sg_domains_scan_t *s, const char *p, size_t len, bool from_url)
{
    bool ascii;
    size_t n = 0;
    if (seen_before(s, from_url ? 'U' : 'H', p, len)) {
        return;
    }
    if (len >= 2 && p[0] == '[' && p[len - 1] == ']') {
        (void)add_ipv6(s, p + 1, len - 2);
        return;
    }
    if (memchr(p, ':', len) != NULL) {
        (void)add_ipv6(s, p, len);
        return;
    }
    char *h = host_copy(s, p, len, from_url, &ascii, &n);
    if (h == NULL) {
        return;
    }
    if (!ascii) {
        add_idn(s, h, !from_url);
    } else if (!add_ipv4(s, h) && (from_url || memchr(h, '.', n) != NULL)) {
        store_host(s, h, n, false);
    }
}

/* ---- readings of one string ---------------------------------------------- */

/* host[:port] or [v6]:port */
static void add_host_port(sg_domains_scan_t *s, const char *h, size_t n)
{
    if (n > 0 && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (close != NULL) {
            add_host(s, h, (size_t)(close - h) + 1, true);
        }
        return;
    }
    const char *colon = memchr(h, ':', n);
    add_host(s, h, colon != NULL ? (size_t)(colon - h) : n, true);
}

static void read_authority(sg_domains_scan_t *s, const char *a, size_t n)
{
    const char *first = memchr(a, '@', n);
    const char *last = memrchr(a, '@', n);
    if (first == NULL) {
        add_host_port(s, a, n);
        return;
    }
    add_host_port(s, last + 1, n - (size_t)(last + 1 - a));
    if (first != last) {
        add_host_port(s, first + 1, n - (size_t)(first + 1 - a));
    }
}

static void read_with_curl(sg_domains_scan_t *s, const char *u, size_t n)
{
    if (s->url == NULL || n > MAX_URL_LEN || seen_before(s, 'C', u, n) ||
        !spend(s, &s->ncurl, MAX_CURL)) {
        return;
    }
    sg_buf_t *b = &s->host;
    sg_buf_reset(b);
    sg_buf_append(b, u, n);
    if (memchr(b->data, '\0', n) != NULL) {
        return;
    }
    char *host = NULL;
    if (curl_url_set(s->url, CURLUPART_URL, b->data, CURLU_NON_SUPPORT_SCHEME) == CURLUE_OK &&
        curl_url_get(s->url, CURLUPART_HOST, &host, CURLU_URLDECODE) == CURLUE_OK && host != NULL) {
        add_host(s, host, strlen(host), true);
    }
    curl_free(host);
}

/* Every "scheme:/" or "scheme:\" in the text: our authority reading and curl's. */
static void find_urls(sg_domains_scan_t *s, const char *p, size_t len)
{
    const char *colon = p, *end = p + len;
    while ((colon = memchr(colon, ':', (size_t)(end - colon))) != NULL) {
        const char *k = colon + 1;
        if (k == end || (*k != '/' && *k != '\\')) {
            colon++;
            continue;
        }
        const char *j = colon;
        while (j > p && colon - j < 32 &&
               (sg_domains_is_alpha(j[-1]) || sg_domains_is_digit(j[-1]) || j[-1] == '+' ||
                j[-1] == '-' || j[-1] == '.')) {
            j--;
        }
        while (j < colon && !sg_domains_is_alpha((unsigned char)*j)) {
            j++;
        }
        while (k < end && (*k == '/' || *k == '\\')) {
            k++;
        }
        const char *e = k;
        while (e < end && !is_url_stop((unsigned char)*e) && strchr("/\\?#", *e) == NULL) {
            e++;
        }
        read_authority(s, k, (size_t)(e - k));
        if (j < colon) {
            const char *u = e;
            while (u < end && !is_url_stop((unsigned char)*u)) {
                u++;
            }
            read_with_curl(s, j, (size_t)(u - j));
        }
        colon = k;
    }
}

/* A '.' or a character UTS #46 maps to one (U+3002, U+FF0E, U+FF61). */
static bool has_dot(const char *t, size_t n)
{
    static const char *const dots[] = { "\xe3\x80\x82", "\xef\xbc\x8e", "\xef\xbd\xa1" };
    if (memchr(t, '.', n) != NULL) {
        return true;
    }
    for (size_t i = 0; i < SG_ARRAY_LEN(dots); i++) {
        if (memmem(t, n, dots[i], 3) != NULL) {
            return true;
        }
    }
    return false;
}

static void name_token(sg_domains_scan_t *s, const char *t, size_t n)
{
    bool ascii = true;
    for (size_t i = 0; i < n && ascii; i++) {
        ascii = (unsigned char)t[i] < 0x80;
    }
    if (ascii) {
        if (memchr(t, '.', n) != NULL) {
            add_host(s, t, n, false);
        }
        return;
    }
    if (has_dot(t, n)) {
        add_host(s, t, n, false); /* the IDN reading of the whole token */
    }
    size_t i = 0;
    while (i < n) { /* and every ASCII run inside it */
        while (i < n && (unsigned char)t[i] >= 0x80) {
            i++;
        }
        size_t j = i;
        while (j < n && (unsigned char)t[j] < 0x80) {
            j++;
        }
        if (j > i && memchr(t + i, '.', j - i) != NULL) {
            add_host(s, t + i, j - i, false);
        }
        i = j;
    }
}

/* Every maximal run of name characters that contains a dot (or is IDN). */
static void find_names(sg_domains_scan_t *s, const char *p, size_t len)
{
    size_t i = 0;
    while (i < len && !s->truncated) {
        while (i < len && !is_name_char((unsigned char)p[i])) {
            i++;
        }
        size_t j = i;
        while (j < len && is_name_char((unsigned char)p[j])) {
            j++;
        }
        if (j - i > MAX_HOST_LEN) {
            i = j - MAX_HOST_LEN;
        }
        if (j > i) {
            name_token(s, p + i, j - i);
        }
        i = j;
    }
}

/* Each base64 run, at each alignment, whose decoding is text. */
/* NOLINTNEXTLINE(misc-no-recursion): depth-bounded */
static void scan_base64(sg_domains_scan_t *s, const char *p, size_t len, unsigned depth)
{
    sg_buf_t *b = &s->layers[depth];
    size_t i = 0;
    while (i < len && !s->truncated) {
        while (i < len && sg_domains_b64_value((unsigned char)p[i]) < 0) {
            i++;
        }
        size_t j = i;
        while (j < len && sg_domains_b64_value((unsigned char)p[j]) >= 0) {
            j++;
        }
        for (size_t off = 0; j - i >= MIN_B64_RUN + off && off < 4; off++) {
            sg_buf_reset(b);
            sg_domains_decode_b64(p + i + off, j - i - off, b);
            if (sg_domains_looks_textual(b->data, b->len)) {
                scan_string(s, b->data, b->len, depth + 1);
            }
        }
        i = j;
    }
}

/* NOLINTNEXTLINE(misc-no-recursion): depth-bounded */
static void scan_layers(sg_domains_scan_t *s, const char *p, size_t len, unsigned depth)
{
    static const struct {
        char trigger; /* a byte that must be present; 0: any byte >= 0xE2 */
        bool (*fn)(const char *p, size_t len, sg_buf_t *out);
    } decoders[] = { { '%', sg_domains_decode_percent },
                     { '\\', sg_domains_decode_backslash },
                     { '&', sg_domains_decode_entities },
                     { 0, sg_domains_fold_wide } };
    sg_buf_t *b = &s->layers[depth];
    for (size_t k = 0; k < SG_ARRAY_LEN(decoders) && !s->truncated; k++) {
        bool present = decoders[k].trigger != 0 && memchr(p, decoders[k].trigger, len) != NULL;
        for (size_t i = 0; decoders[k].trigger == 0 && i < len && !present; i++) {
            present = (unsigned char)p[i] >= 0xe2;
        }
        sg_buf_reset(b);
        if (present && decoders[k].fn(p, len, b)) {
            scan_string(s, b->data, b->len, depth + 1);
        }
    }
    scan_base64(s, p, len, depth);
}

/* NOLINTNEXTLINE(misc-no-recursion): depth-bounded */
static void scan_string(sg_domains_scan_t *s, const char *p, size_t len, unsigned depth)
{
    if (s->truncated || len == 0) {
        return;
    }
    if (len > s->budget) {
        s->truncated = true;
        return;
    }
    s->budget -= len;
    if (seen_before(s, (char)('0' + depth), p, len)) {
        return; /* the same text at the same depth names the same hosts */
    }
    find_urls(s, p, len);
    find_names(s, p, len);
    if (depth < SG_DOMAINS_MAX_LAYERS) {
        scan_layers(s, p, len, depth);
    }
}

/* ---- scans --------------------------------------------------------------- */

sg_domains_scan_t *sg_domains_scan_new(void)
{
    sg_domains_scan_t *s = sg_xcalloc(1, sizeof(*s));
    s->psl = psl_builtin();
    if (s->psl == NULL || psl_builtin_outdated()) {
        s->psl_owned = psl_latest(NULL);
        if (s->psl_owned != NULL) {
            s->psl = s->psl_owned;
        }
    }
    SG_BUG_ON(s->psl == NULL);
    s->gen = 1;
    s->url = curl_url();
    SG_BUG_ON(s->url == NULL);
    return s;
}

void sg_domains_scan_free(sg_domains_scan_t *s)
{
    if (s == NULL) {
        return;
    }
    psl_free(s->psl_owned);
    curl_url_cleanup(s->url);
    sg_buf_dispose(&s->arena);
    for (size_t i = 0; i < SG_ARRAY_LEN(s->layers); i++) {
        sg_buf_dispose(&s->layers[i]);
    }
    sg_buf_dispose(&s->host);
    sg_buf_dispose(&s->str);
    sg_buf_dispose(&s->seen_bytes);
    free(s->seen);
    free(s);
}

void sg_domains_scan_reset(sg_domains_scan_t *s)
{
    sg_buf_reset(&s->arena);
    sg_buf_reset(&s->seen_bytes);
    s->nhosts = 0;
    s->truncated = false;
    s->nseen = 0;
    s->nidn = 0;
    s->ncurl = 0;
    if (++s->gen == 0) { /* wrapped: slots of generation 0 would look valid */
        free(s->seen);
        s->seen = NULL;
        s->gen = 1;
    }
}

static void start_budget(sg_domains_scan_t *s, size_t len)
{
    s->budget = len > (SIZE_MAX - BUDGET_BASE) / BUDGET_FACTOR ? SIZE_MAX
                                                               : len * BUDGET_FACTOR + BUDGET_BASE;
}

void sg_domains_scan_text(sg_domains_scan_t *s, sg_str_t text)
{
    start_budget(s, text.len);
    scan_string(s, text.ptr, text.len, 0);
}

static void scan_json_string(sg_domains_scan_t *s, sg_str_t raw)
{
    sg_str_t plain;
    if (sg_json_string_plain(raw, &plain)) {
        scan_string(s, plain.ptr, plain.len, 0);
        return;
    }
    sg_buf_reset(&s->str);
    if (sg_json_string_decode(raw, &s->str) == SG_OK) {
        scan_string(s, s->str.data, s->str.len, 0);
    }
}

/* NOLINTNEXTLINE(misc-no-recursion): depth-bounded */
static void walk_json(sg_domains_scan_t *s, sg_str_t v, unsigned depth)
{
    sg_json_type_t t = sg_json_type(v);
    if (t == SG_JSON_STRING) {
        scan_json_string(s, v);
        return;
    }
    if (t != SG_JSON_OBJECT && t != SG_JSON_ARRAY) {
        return;
    }
    if (depth > SG_JSON_MAX_DEPTH) {
        s->truncated = true;
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t key, item;
    while (!s->truncated && (t == SG_JSON_OBJECT ? sg_json_object_next(&it, &key, &item)
                                                 : sg_json_array_next(&it, &item)) == 1) {
        if (t == SG_JSON_OBJECT) {
            scan_json_string(s, key);
        }
        walk_json(s, item, depth + 1);
    }
}

void sg_domains_scan_json(sg_domains_scan_t *s, sg_str_t json)
{
    start_budget(s, json.len);
    walk_json(s, json, 0);
}

bool sg_domains_scan_truncated(const sg_domains_scan_t *s)
{
    return s->truncated;
}

size_t sg_domains_scan_count(const sg_domains_scan_t *s)
{
    return s->nhosts;
}

const char *sg_domains_scan_host(const sg_domains_scan_t *s, size_t i)
{
    return i < s->nhosts ? host_at(s, s->hosts[i].off) : NULL;
}

const char *sg_domains_scan_registrable(const sg_domains_scan_t *s, size_t i)
{
    if (i >= s->nhosts || s->hosts[i].reg == NO_REGISTRABLE) {
        return NULL;
    }
    return host_at(s, s->hosts[i].reg);
}

const char *sg_domains_list_match(const sg_domain_list_t *l, const sg_domains_scan_t *s)
{
    for (size_t i = 0; i < s->nhosts; i++) {
        const char *h = host_at(s, s->hosts[i].off);
        if (sg_domains_match_host(l, h, sg_domains_scan_registrable(s, i), s->hosts[i].ip)) {
            return h;
        }
    }
    return NULL;
}
