/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Mcp-Session-Id tokens: signed (HMAC-SHA256 with the fleet's secret from
 * Redis) over tenant, identity, negotiated protocol version, issue time and a
 * random nonce, so any replica validates one with no lookup. Visible ASCII
 * only: "s1." base64url(payload) "." base64url(mac).
 */
#ifndef SG_CORE_SESSION_TOKEN_H
#define SG_CORE_SESSION_TOKEN_H

#include "base/buf.h"
#include "base/err.h"
#include "base/sg.h"

#define SG_SESSION_TOKEN_MAX 512
#define SG_SESSION_TTL_MS    (24ull * 3600 * 1000)

typedef struct sg_session_claims {
    char tenant[65];
    char identity[129];
    char version[16];   /* protocol revision, e.g. 2025-11-25 */
    uint64_t issued_ms; /* wall clock */
    char nonce[33];     /* 16 random bytes, hex */
} sg_session_claims_t;

/* Writes a new token for claims (nonce filled with fresh random bytes) into out. */
int sg_session_token_issue(const uint8_t *key, size_t keylen, sg_session_claims_t *claims,
                           sg_buf_t *out) SG_MUSTCHECK;
/*
 * Verifies token: well-formed, MAC valid (constant-time compare), not older than
 * ttl_ms at now_ms, not issued in the future beyond 60 s. SG_OK with *claims, or
 * SG_ESESSION.
 */
int sg_session_token_verify(const uint8_t *key, size_t keylen, sg_str_t token, uint64_t now_ms,
                            uint64_t ttl_ms, sg_session_claims_t *claims) SG_MUSTCHECK;

/* Lower-case hex SHA-256 of data into out (65 bytes incl. NUL). */
void sg_sha256_hex(const void *data, size_t len, char out[65]);
/* Raw SHA-256. */
void sg_sha256(const void *data, size_t len, uint8_t out[32]);
/* Constant-time equality of two byte strings (length leaks, content does not). */
bool sg_ct_equal(const void *a, size_t alen, const void *b, size_t blen);
/* Fills buf with cryptographically random bytes; aborts if the RNG fails. */
void sg_random_bytes(void *buf, size_t len);

#endif
