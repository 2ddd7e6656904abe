/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The bytes an audit hash covers, shared by the writer (audit.c) and by
 * `audit verify` (audit_verify.c): both build the same sg_audit_row_t — the
 * writer from the event it was given, verify from the row PostgreSQL returns —
 * and serialise it here, so the two can only agree or find a real change.
 *
 * The one subtlety is JSON: PostgreSQL stores arguments and findings as jsonb,
 * which reorders keys, drops whitespace and rewrites numbers. The canonical
 * form below is a function of the JSON *value* only (sorted keys, decoded and
 * re-escaped strings, numbers reduced to sign, digits and decimal point), so
 * it is the same for the text the gate submitted and for jsonb's output.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <openssl/evp.h>

#include "base/json.h"
#include "base/mem.h"
#include "store/audit_int.h"

/* jsonb keeps numerics exactly; we accept at most this many digits on either side. */
#define MAX_NUMBER_DIGITS 1000
/* Exponents beyond this are refused before any arithmetic. */
#define MAX_EXPONENT 100000

static void buf_truncate(sg_buf_t *b, size_t len)
{
    b->len = len;
    if (b->data != NULL) {
        b->data[len] = '\0';
    }
}

/* ---- time and digests ---- */

static char *put2(char *p, int v)
{
    p[0] = (char)('0' + v / 10 % 10);
    p[1] = (char)('0' + v % 10);
    return p + 2;
}

void sg_audit_format_ts(int64_t ts_us, char out[SG_AUDIT_TS_LEN + 1])
{
    int64_t sec = ts_us / 1000000;
    int64_t us = ts_us % 1000000;
    if (us < 0) {
        us += 1000000;
        sec--;
    }
    time_t t = (time_t)sec;
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || tm.tm_year + 1900 < 0 || tm.tm_year + 1900 > 9999) {
        char buf[64];
        snprintf(buf, sizeof(buf), "out-of-range:%lld", (long long)ts_us);
        size_t n = strnlen(buf, SG_AUDIT_TS_LEN);
        memcpy(out, buf, n);
        out[n] = '\0';
        return;
    }
    /* YYYY-MM-DDTHH:MM:SS.uuuuuuZ, by hand: snprintf was a tenth of the cost of an event */
    int year = tm.tm_year + 1900;
    char *p = put2(out, year / 100);
    p = put2(p, year % 100);
    *p++ = '-';
    p = put2(p, tm.tm_mon + 1);
    *p++ = '-';
    p = put2(p, tm.tm_mday);
    *p++ = 'T';
    p = put2(p, tm.tm_hour);
    *p++ = ':';
    p = put2(p, tm.tm_min);
    *p++ = ':';
    p = put2(p, tm.tm_sec);
    *p++ = '.';
    p = put2(p, (int)(us / 10000));
    p = put2(p, (int)(us / 100 % 100));
    p = put2(p, (int)(us % 100));
    *p++ = 'Z';
    *p = '\0';
}

static void hex_encode(const unsigned char *md, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 0xF];
    }
    out[2 * n] = '\0';
}

/*
 * SHA-256, fetched from the provider once: OpenSSL 3 looks EVP_sha256() up
 * by name under a lock on every EVP_DigestInit, which cost more than hashing.
 * The fetched method is immutable and lives as long as the process.
 */
static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void fetch_sha256(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
    SG_BUG_ON(sha256_md == NULL);
}

static const EVP_MD *sha256(void)
{
    pthread_once(&sha256_once, fetch_sha256);
    return sha256_md;
}

void sg_audit_sha256_hex(const void *data, size_t len, char out[SG_AUDIT_HASH_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    SG_BUG_ON(EVP_Digest(data, len, md, &mdlen, sha256(), NULL) != 1 || mdlen != 32);
    hex_encode(md, mdlen, out);
}

void sg_audit_chain_hash(const char *prev_hash, const char *head, size_t head_len,
                         char out[SG_AUDIT_HASH_LEN + 1])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    SG_BUG_ON(ctx == NULL);
    int ok = EVP_DigestInit_ex(ctx, sha256(), NULL);
    ok = ok && EVP_DigestUpdate(ctx, SG_AUDIT_HASH_TAG, strlen(SG_AUDIT_HASH_TAG));
    ok = ok && EVP_DigestUpdate(ctx, prev_hash, strlen(prev_hash));
    ok = ok && EVP_DigestUpdate(ctx, "\n", 1);
    ok = ok && EVP_DigestUpdate(ctx, head, head_len);
    ok = ok && EVP_DigestUpdate(ctx, "}", 1);
    ok = ok && EVP_DigestFinal_ex(ctx, md, &mdlen);
    EVP_MD_CTX_free(ctx);
    SG_BUG_ON(!ok || mdlen != 32);
    hex_encode(md, mdlen, out);
}

/* ---- canonical JSON ---- */

static int canon_value(sg_str_t raw, sg_buf_t *out, size_t depth);

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads [-]int[.frac][e[+-]exp] into sign, all digits (int then frac) and exponent. */
static int parse_number(sg_str_t raw, bool *neg, sg_buf_t *digits, int64_t *exp)
{
    const char *p = raw.ptr, *end = raw.ptr + raw.len;
    *neg = p < end && *p == '-';
    p += *neg;
    const char *int_start = p;
    while (p < end && is_digit(*p)) {
        p++;
    }
    if (p == int_start) {
        return SG_EPARSE;
    }
    sg_buf_append(digits, int_start, (size_t)(p - int_start));
    int64_t frac = 0;
    if (p < end && *p == '.') {
        const char *f = ++p;
        while (p < end && is_digit(*p)) {
            p++;
        }
        frac = p - f;
        sg_buf_append(digits, f, (size_t)frac);
    }
    int64_t e = 0;
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool eneg = p < end && *p == '-';
        p += (p < end && (*p == '-' || *p == '+'));
        if (p == end) {
            return SG_EPARSE;
        }
        for (; p < end && is_digit(*p); p++) {
            if (e > MAX_EXPONENT) {
                return SG_EINVAL;
            }
            e = e * 10 + (*p - '0');
        }
        e = eneg ? -e : e;
    }
    *exp = e - frac; /* value = digits × 10^exp */
    return p == end ? SG_OK : SG_EPARSE;
}

/* Writes ±D × 10^exp (D: nd significant digits) in plain decimal. */
static void write_decimal(sg_buf_t *out, bool neg, const char *d, int64_t nd, int64_t exp)
{
    if (neg) {
        sg_buf_append_char(out, '-');
    }
    if (exp >= 0) {
        sg_buf_append(out, d, (size_t)nd);
        for (int64_t i = 0; i < exp; i++) {
            sg_buf_append_char(out, '0');
        }
    } else if (nd + exp > 0) {
        size_t point = (size_t)(nd + exp);
        sg_buf_append(out, d, point);
        sg_buf_append_char(out, '.');
        sg_buf_append(out, d + point, (size_t)nd - point);
    } else {
        sg_buf_append(out, "0.", 2);
        for (int64_t i = 0; i < -(nd + exp); i++) {
            sg_buf_append_char(out, '0');
        }
        sg_buf_append(out, d, (size_t)nd);
    }
}

/*
 * A JSON number as sign, significant digits D and exponent E (value = D × 10^E),
 * written in plain decimal. "1.50", "15e-1" and jsonb's "1.50" all give "1.5".
 */
static int canon_number(sg_str_t raw, sg_buf_t *out)
{
    sg_buf_t d = SG_BUF_INIT;
    bool neg = false;
    int64_t exp = 0;
    int rc = parse_number(raw, &neg, &d, &exp);
    if (rc == SG_OK) {
        size_t lead = 0, n = d.len;
        while (lead < n && d.data[lead] == '0') {
            lead++;
        }
        while (n > lead && d.data[n - 1] == '0') {
            n--;
            exp++;
        }
        int64_t nd = (int64_t)(n - lead);
        if (nd == 0) {
            sg_buf_append_char(out, '0'); /* zero, -0, 0.000e5 */
        } else if (nd + exp > MAX_NUMBER_DIGITS || -exp > MAX_NUMBER_DIGITS) {
            rc = SG_EINVAL;
        } else {
            write_decimal(out, neg, d.data + lead, nd, exp);
        }
    }
    sg_buf_dispose(&d);
    return rc;
}

static int canon_string(sg_str_t raw, sg_buf_t *out)
{
    sg_str_t plain;
    if (sg_json_string_plain(raw, &plain)) {
        sg_json_write_string(out, plain.ptr, plain.len);
        return SG_OK;
    }
    sg_buf_t s = SG_BUF_INIT;
    int rc = sg_json_string_decode(raw, &s);
    if (rc == SG_OK) {
        sg_json_write_string(out, s.data != NULL ? s.data : "", s.len);
    }
    sg_buf_dispose(&s);
    return rc;
}

/* NOLINTNEXTLINE(misc-no-recursion): depth bounded by SG_AUDIT_JSON_DEPTH */
static int canon_array(sg_str_t raw, sg_buf_t *out, size_t depth)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(raw);
    sg_str_t item;
    int rc;
    bool first = true;
    sg_buf_append_char(out, '[');
    while ((rc = sg_json_array_next(&it, &item)) == 1) {
        if (!first) {
            sg_buf_append_char(out, ',');
        }
        first = false;
        rc = canon_value(item, out, depth + 1);
        if (rc != SG_OK) {
            return rc;
        }
    }
    if (rc != 0) {
        return rc;
    }
    sg_buf_append_char(out, ']');
    return SG_OK;
}

typedef struct sg_audit_member {
    size_t key_off; /* decoded key in the keys buffer */
    size_t key_len;
    sg_str_t value;
} sg_audit_member_t;

static const char *sort_keys; /* the keys buffer during qsort (single-threaded callers) */

static int cmp_member(const void *a, const void *b)
{
    const sg_audit_member_t *x = a, *y = b;
    size_t n = SG_MIN(x->key_len, y->key_len);
    int c = n > 0 ? memcmp(sort_keys + x->key_off, sort_keys + y->key_off, n) : 0;
    if (c != 0) {
        return c;
    }
    return x->key_len < y->key_len ? -1 : (x->key_len > y->key_len ? 1 : 0);
}

/* NOLINTNEXTLINE(misc-no-recursion): depth bounded by SG_AUDIT_JSON_DEPTH */
static int canon_object(sg_str_t raw, sg_buf_t *out, size_t depth)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(raw);
    sg_buf_t keys = SG_BUF_INIT;
    sg_audit_member_t *m = NULL;
    size_t n = 0, cap = 0;
    sg_str_t k, v;
    int rc;
    while ((rc = sg_json_object_next(&it, &k, &v)) == 1) {
        if (n == cap) {
            cap = cap == 0 ? 8 : 2 * cap;
            m = sg_xrealloc(m, cap * sizeof(*m));
        }
        size_t off = keys.len;
        rc = sg_json_string_decode(k, &keys);
        if (rc != SG_OK) {
            goto out;
        }
        m[n++] = (sg_audit_member_t){ off, keys.len - off, v };
    }
    if (rc != 0) {
        goto out;
    }
    if (n > 1) {
        sort_keys = keys.data;
        qsort(m, n, sizeof(*m), cmp_member);
        sort_keys = NULL;
    }
    sg_buf_append_char(out, '{');
    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            sg_buf_append_char(out, ',');
        }
        sg_json_write_string(out, keys.data + m[i].key_off, m[i].key_len);
        sg_buf_append_char(out, ':');
        rc = canon_value(m[i].value, out, depth + 1);
        if (rc != SG_OK) {
            goto out;
        }
    }
    sg_buf_append_char(out, '}');
    rc = SG_OK;
out:
    free(m);
    sg_buf_dispose(&keys);
    return rc;
}

/* NOLINTNEXTLINE(misc-no-recursion): depth bounded by SG_AUDIT_JSON_DEPTH */
static int canon_value(sg_str_t raw, sg_buf_t *out, size_t depth)
{
    if (depth > SG_AUDIT_JSON_DEPTH) {
        return SG_EDEPTH;
    }
    raw = sg_json_trim(raw);
    switch (sg_json_type(raw)) {
    case SG_JSON_NULL:
        sg_buf_append(out, "null", 4);
        return SG_OK;
    case SG_JSON_TRUE:
        sg_buf_append(out, "true", 4);
        return SG_OK;
    case SG_JSON_FALSE:
        sg_buf_append(out, "false", 5);
        return SG_OK;
    case SG_JSON_NUMBER:
        return canon_number(raw, out);
    case SG_JSON_STRING:
        return canon_string(raw, out);
    case SG_JSON_ARRAY:
        return canon_array(raw, out, depth);
    case SG_JSON_OBJECT:
        return canon_object(raw, out, depth);
    case SG_JSON_INVALID:
        break;
    }
    return SG_EPARSE;
}

int sg_audit_canon_json(sg_str_t in, sg_buf_t *out)
{
    if (in.ptr == NULL) {
        return SG_EPARSE;
    }
    int rc = sg_json_validate(in.ptr, in.len, SG_AUDIT_JSON_DEPTH, NULL);
    if (rc != SG_OK) {
        return rc;
    }
    size_t mark = out->len;
    rc = canon_value(in, out, 0);
    if (rc != SG_OK) {
        buf_truncate(out, mark);
    }
    return rc;
}

/* ---- the row ---- */

void sg_audit_write_text(sg_buf_t *out, sg_str_t s)
{
    if (s.ptr == NULL) {
        sg_buf_append(out, "null", 4);
        return;
    }
    if (memchr(s.ptr, '\0', s.len) == NULL) {
        sg_json_write_string(out, s.ptr, s.len);
        return;
    }
    sg_buf_t clean = SG_BUF_INIT;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] == '\0') {
            sg_buf_append(&clean, "\xEF\xBF\xBD", 3);
        } else {
            sg_buf_append_char(&clean, s.ptr[i]);
        }
    }
    sg_json_write_string(out, clean.data, clean.len);
    sg_buf_dispose(&clean);
}

void sg_audit_write_int(sg_buf_t *out, int64_t v)
{
    char num[24];
    char *p = num + sizeof(num);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u > 0);
    if (v < 0) {
        *--p = '-';
    }
    sg_buf_append(out, p, (size_t)(num + sizeof(num) - p));
}

static void write_int(sg_buf_t *out, bool present, int64_t v)
{
    if (!present) {
        sg_buf_append(out, "null", 4);
        return;
    }
    sg_audit_write_int(out, v);
}

static void write_key(sg_buf_t *out, const char *key)
{
    sg_buf_append_cstr(out, key);
}

void sg_audit_row_write(sg_buf_t *out, const sg_audit_row_t *row)
{
    char ts[SG_AUDIT_TS_LEN + 1];
    sg_audit_format_ts(row->ts_us, ts);
    write_key(out, "{\"id\":");
    sg_audit_write_text(out, row->id);
    write_key(out, ",\"ts\":\"");
    sg_buf_append_cstr(out, ts);
    write_key(out, "\",\"tenant\":");
    sg_audit_write_text(out, row->tenant);
    write_key(out, ",\"identity\":");
    sg_audit_write_text(out, row->identity);
    write_key(out, ",\"session\":");
    sg_audit_write_text(out, row->session);
    write_key(out, ",\"replica\":");
    sg_audit_write_text(out, row->replica);
    write_key(out, ",\"request_id\":");
    sg_audit_write_text(out, row->request_id);
    write_key(out, ",\"method\":");
    sg_audit_write_text(out, row->method);
    write_key(out, ",\"tool\":");
    sg_audit_write_text(out, row->tool);
    write_key(out, ",\"upstream\":");
    sg_audit_write_text(out, row->upstream);
    write_key(out, ",\"class\":");
    sg_audit_write_text(out, row->risk_class);
    write_key(out, ",\"decision\":");
    sg_audit_write_text(out, row->decision);
    write_key(out, ",\"rule\":");
    sg_audit_write_text(out, row->rule);
    write_key(out, ",\"reason\":");
    sg_audit_write_text(out, row->reason);
    write_key(out, ",\"arguments\":");
    sg_buf_append_str(out, row->arguments.ptr != NULL ? row->arguments : SG_STR_LIT("null"));
    write_key(out, ",\"result_size\":");
    write_int(out, row->has_result_size, row->result_size);
    write_key(out, ",\"result_is_error\":");
    sg_buf_append_cstr(out, row->result_is_error < 0 ? "null"
                            : row->result_is_error   ? "true"
                                                     : "false");
    write_key(out, ",\"gate_latency_us\":");
    write_int(out, row->has_gate_latency, row->gate_latency_us);
    write_key(out, ",\"upstream_latency_us\":");
    write_int(out, row->has_upstream_latency, row->upstream_latency_us);
    write_key(out, ",\"findings\":");
    sg_buf_append_str(out, row->findings.ptr != NULL ? row->findings : SG_STR_LIT("null"));
    write_key(out, ",\"approval_id\":");
    sg_audit_write_text(out, row->approval_id);
}
