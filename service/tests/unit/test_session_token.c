/* SPDX-License-Identifier: Apache-2.0 */
/* Session tokens: issue/verify round trip and every way a token must be refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/session_token.h"

static const uint8_t key[] = "0123456789abcdef0123456789abcdef";
#define NOW 1796318000000ull

static void issue(sg_buf_t *out, sg_session_claims_t *c)
{
    memset(c, 0, sizeof(*c));
    snprintf(c->tenant, sizeof(c->tenant), "acme");
    snprintf(c->identity, sizeof(c->identity), "agent-1");
    snprintf(c->version, sizeof(c->version), "2025-11-25");
    c->issued_ms = NOW;
    assert_int_equal(sg_session_token_issue(key, 32, c, out), SG_OK);
}

static void round_trip_keeps_claims(void **state)
{
    (void)state;
    sg_buf_t tok = SG_BUF_INIT;
    sg_session_claims_t c, got;
    issue(&tok, &c);
    assert_int_equal(
            sg_session_token_verify(key, 32, sg_buf_str(&tok), NOW + 1000, SG_SESSION_TTL_MS, &got),
            SG_OK);
    assert_string_equal(got.tenant, "acme");
    assert_string_equal(got.identity, "agent-1");
    assert_string_equal(got.version, "2025-11-25");
    assert_string_equal(got.nonce, c.nonce);
    assert_int_equal(strlen(got.nonce), 32);
    /* visible ASCII only (MCP: 0x21..0x7E) */
    for (size_t i = 0; i < tok.len; i++) {
        assert_true(tok.data[i] >= 0x21 && tok.data[i] <= 0x7e);
    }
    sg_buf_dispose(&tok);
}

static void two_tokens_differ(void **state)
{
    (void)state;
    sg_buf_t a = SG_BUF_INIT, b = SG_BUF_INIT;
    sg_session_claims_t c;
    issue(&a, &c);
    issue(&b, &c);
    assert_false(sg_str_eq(sg_buf_str(&a), sg_buf_str(&b)));
    sg_buf_dispose(&a);
    sg_buf_dispose(&b);
}

static void rejects_other_key_and_tampering(void **state)
{
    (void)state;
    sg_buf_t tok = SG_BUF_INIT;
    sg_session_claims_t c, got;
    issue(&tok, &c);
    static const uint8_t other[] = "fedcba9876543210fedcba9876543210";
    assert_int_equal(
            sg_session_token_verify(other, 32, sg_buf_str(&tok), NOW, SG_SESSION_TTL_MS, &got),
            SG_ESESSION);
    /* flip every character in turn: never accepted */
    for (size_t i = 0; i < tok.len; i++) {
        char saved = tok.data[i];
        tok.data[i] = saved == 'A' ? 'B' : 'A';
        assert_int_equal(
                sg_session_token_verify(key, 32, sg_buf_str(&tok), NOW, SG_SESSION_TTL_MS, &got),
                SG_ESESSION);
        tok.data[i] = saved;
    }
    sg_buf_dispose(&tok);
}

static void rejects_truncated_garbage_and_oversized(void **state)
{
    (void)state;
    sg_buf_t tok = SG_BUF_INIT;
    sg_session_claims_t c, got;
    issue(&tok, &c);
    for (size_t n = 0; n < tok.len; n++) {
        assert_int_equal(sg_session_token_verify(key, 32, sg_str_n(tok.data, n), NOW,
                                                 SG_SESSION_TTL_MS, &got),
                         SG_ESESSION);
    }
    const char *bad[] = { "",         "s1.",           "s1..", "s2.abc.def", "s1.!!!!.????",
                          "s1.YQ.YQ", "s1.YWNtZQ.AAAA" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(
                sg_session_token_verify(key, 32, sg_str(bad[i]), NOW, SG_SESSION_TTL_MS, &got),
                SG_ESESSION);
    }
    char *big = malloc(100000);
    memset(big, 'A', 100000);
    memcpy(big, "s1.", 3);
    assert_int_equal(
            sg_session_token_verify(key, 32, sg_str_n(big, 100000), NOW, SG_SESSION_TTL_MS, &got),
            SG_ESESSION);
    free(big);
    sg_buf_dispose(&tok);
}

static void rejects_expired_and_future(void **state)
{
    (void)state;
    sg_buf_t tok = SG_BUF_INIT;
    sg_session_claims_t c, got;
    issue(&tok, &c);
    assert_int_equal(sg_session_token_verify(key, 32, sg_buf_str(&tok), NOW + SG_SESSION_TTL_MS + 1,
                                             SG_SESSION_TTL_MS, &got),
                     SG_ESESSION);
    assert_int_equal(sg_session_token_verify(key, 32, sg_buf_str(&tok), NOW - 120000,
                                             SG_SESSION_TTL_MS, &got),
                     SG_ESESSION);
    sg_buf_dispose(&tok);
}

static void rejects_non_canonical_base64(void **state)
{
    (void)state;
    sg_buf_t tok = SG_BUF_INIT;
    sg_session_claims_t c, got;
    issue(&tok, &c);
    /* the MAC is 32 bytes = 43 base64url characters whose last one carries 2 spare bits */
    char *last = tok.data + tok.len - 1;
    const char *alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    int v = (int)(strchr(alphabet, *last) - alphabet);
    *last = alphabet[v | 1]; /* set a spare bit: same bytes, another spelling */
    if ((v | 1) != v) {
        assert_int_equal(
                sg_session_token_verify(key, 32, sg_buf_str(&tok), NOW, SG_SESSION_TTL_MS, &got),
                SG_ESESSION);
    }
    sg_buf_dispose(&tok);
}

static void ct_equal_and_sha256(void **state)
{
    (void)state;
    char hex[65];
    sg_sha256_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_true(sg_ct_equal("abc", 3, "abc", 3));
    assert_false(sg_ct_equal("abc", 3, "abd", 3));
    assert_false(sg_ct_equal("abc", 3, "ab", 2));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_keeps_claims),
        cmocka_unit_test(two_tokens_differ),
        cmocka_unit_test(rejects_other_key_and_tampering),
        cmocka_unit_test(rejects_truncated_garbage_and_oversized),
        cmocka_unit_test(rejects_expired_and_future),
        cmocka_unit_test(rejects_non_canonical_base64),
        cmocka_unit_test(ct_equal_and_sha256),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
