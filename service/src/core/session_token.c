/* SPDX-License-Identifier: Apache-2.0 */
/* Session tokens and the small crypto helpers around them (OpenSSL). */
#include "core/session_token.h"

#include <stdio.h>
#include <stdlib.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#define SEP '\x1f'

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static void b64url_encode(sg_buf_t *out, const uint8_t *p, size_t n)
{
    size_t i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        char c[4] = { b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63],
                      b64url[v & 63] };
        sg_buf_append(out, c, 4);
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)p[i] << 16;
        char c[2] = { b64url[v >> 18], b64url[(v >> 12) & 63] };
        sg_buf_append(out, c, 2);
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8;
        char c[3] = { b64url[v >> 18], b64url[(v >> 12) & 63], b64url[(v >> 6) & 63] };
        sg_buf_append(out, c, 3);
    }
}

static int b64url_value(char c)
{
    const char *p = memchr(b64url, c, 64);
    return p != NULL && c != '\0' ? (int)(p - b64url) : -1;
}

/* Decodes into out (cap bytes); returns decoded length or -1. */
static long b64url_decode(sg_str_t in, uint8_t *out, size_t cap)
{
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    if (in.len % 4 == 1) {
        return -1;
    }
    for (size_t i = 0; i < in.len; i++) {
        int v = b64url_value(in.ptr[i]);
        if (v < 0) {
            return -1;
        }
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o == cap) {
                return -1;
            }
            out[o++] = (uint8_t)(acc >> bits);
        }
    }
    /* canonical encodings only: leftover bits must be zero, so one token has one spelling */
    if (bits > 0 && (acc & ((1u << bits) - 1u)) != 0) {
        return -1;
    }
    return (long)o;
}

void sg_random_bytes(void *buf, size_t len)
{
    if (RAND_bytes(buf, (int)len) != 1) {
        fprintf(stderr, "level=fatal msg=\"random number generator failed\"\n");
        abort();
    }
}

void sg_sha256(const void *data, size_t len, uint8_t out[32])
{
    SHA256(data, len, out);
}

void sg_sha256_hex(const void *data, size_t len, char out[65])
{
    uint8_t d[32];
    SHA256(data, len, d);
    for (size_t i = 0; i < 32; i++) {
        snprintf(out + 2 * i, 3, "%02x", d[i]);
    }
}

bool sg_ct_equal(const void *a, size_t alen, const void *b, size_t blen)
{
    return alen == blen && CRYPTO_memcmp(a, b, alen) == 0;
}

static void mac(const uint8_t *key, size_t keylen, const void *p, size_t n, uint8_t out[32])
{
    unsigned int outlen = 32;
    HMAC(EVP_sha256(), key, (int)keylen, p, n, out, &outlen);
}

int sg_session_token_issue(const uint8_t *key, size_t keylen, sg_session_claims_t *claims,
                           sg_buf_t *out)
{
    uint8_t nonce[16];
    sg_random_bytes(nonce, sizeof(nonce));
    for (size_t i = 0; i < sizeof(nonce); i++) {
        snprintf(claims->nonce + 2 * i, 3, "%02x", nonce[i]);
    }
    sg_buf_t payload = SG_BUF_INIT;
    sg_buf_printf(&payload, "%s%c%s%c%s%c%llu%c%s", claims->tenant, SEP, claims->identity, SEP,
                  claims->version, SEP, (unsigned long long)claims->issued_ms, SEP, claims->nonce);
    uint8_t m[32];
    mac(key, keylen, payload.data, payload.len, m);
    sg_buf_append_cstr(out, "s1.");
    b64url_encode(out, (const uint8_t *)payload.data, payload.len);
    sg_buf_append_char(out, '.');
    b64url_encode(out, m, sizeof(m));
    sg_buf_dispose(&payload);
    return SG_OK;
}

static bool take_field(const char **p, const char *end, char *dst, size_t cap)
{
    const char *sep = memchr(*p, SEP, (size_t)(end - *p));
    const char *stop = sep != NULL ? sep : end;
    size_t n = (size_t)(stop - *p);
    if (n == 0 || n >= cap) {
        return false;
    }
    memcpy(dst, *p, n);
    dst[n] = '\0';
    *p = sep != NULL ? sep + 1 : end;
    return true;
}

static int parse_payload(const uint8_t *pl, size_t n, sg_session_claims_t *c)
{
    const char *p = (const char *)pl;
    const char *end = p + n;
    char issued[24];
    if (!take_field(&p, end, c->tenant, sizeof(c->tenant)) ||
        !take_field(&p, end, c->identity, sizeof(c->identity)) ||
        !take_field(&p, end, c->version, sizeof(c->version)) ||
        !take_field(&p, end, issued, sizeof(issued)) ||
        !take_field(&p, end, c->nonce, sizeof(c->nonce)) || p != end) {
        return SG_ESESSION;
    }
    char *e = NULL;
    c->issued_ms = strtoull(issued, &e, 10);
    return *e == '\0' ? SG_OK : SG_ESESSION;
}

int sg_session_token_verify(const uint8_t *key, size_t keylen, sg_str_t token, uint64_t now_ms,
                            uint64_t ttl_ms, sg_session_claims_t *claims)
{
    if (token.len < 4 || token.len > SG_SESSION_TOKEN_MAX || memcmp(token.ptr, "s1.", 3) != 0) {
        return SG_ESESSION;
    }
    sg_str_t rest = { token.ptr + 3, token.len - 3 };
    const char *dot = memchr(rest.ptr, '.', rest.len);
    if (dot == NULL) {
        return SG_ESESSION;
    }
    sg_str_t enc_payload = { rest.ptr, (size_t)(dot - rest.ptr) };
    sg_str_t enc_mac = { dot + 1, rest.len - enc_payload.len - 1 };
    uint8_t payload[SG_SESSION_TOKEN_MAX];
    uint8_t got[40];
    long plen = b64url_decode(enc_payload, payload, sizeof(payload));
    long mlen = b64url_decode(enc_mac, got, sizeof(got));
    if (plen <= 0 || mlen != 32) {
        return SG_ESESSION;
    }
    uint8_t want[32];
    mac(key, keylen, payload, (size_t)plen, want);
    if (!sg_ct_equal(want, 32, got, 32)) {
        return SG_ESESSION;
    }
    if (parse_payload(payload, (size_t)plen, claims) != SG_OK) {
        return SG_ESESSION;
    }
    if (claims->issued_ms > now_ms + 60000 || now_ms - claims->issued_ms > ttl_ms) {
        return SG_ESESSION;
    }
    return SG_OK;
}
