/* SPDX-License-Identifier: Apache-2.0 */
/* Tenant snapshots: the stored format parses, and every malformed document is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/session_token.h"
#include "core/tenant.h"

#define KEYHASH "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

static const char good[] =
        "{\"tenant\":\"acme\",\"version\":7,\"profile\":\"strict\","
        "\"identities\":[{\"name\":\"agent-1\",\"roles\":[\"agent\",\"ops\"],"
        "\"keys\":[{\"sha256\":\"" KEYHASH "\"},{\"sha256\":\"" KEYHASH "\",\"expires_ms\":5}]}],"
        "\"upstreams\":[{\"name\":\"fs\",\"command\":\"npx\",\"args\":[\"a\",\"b\"],"
        "\"env\":{\"TOKEN\":\"s3cr3t\"}},"
        "{\"name\":\"docs\",\"prefix\":\"\",\"url\":\"https://docs.example/mcp\","
        "\"headers\":{\"X-Team\":\"a\"},\"timeout_ms\":5000}],"
        "\"allowed_origins\":[\"https://app.example\"],\"audit\":{\"mode\":\"sync\"},"
        "\"policies\":[{\"name\":\"r1\",\"priority\":1,\"action\":\"allow\","
        "\"match\":{\"tool\":\"fs__*\"}}]}";

static void parses_the_stored_format(void **state)
{
    (void)state;
    sg_tenant_t *t = NULL;
    sg_error_t err = { 0 };
    assert_int_equal(sg_tenant_parse(good, strlen(good), &t, &err), SG_OK);
    assert_string_equal(t->name, "acme");
    assert_int_equal(t->version, 7);
    assert_int_equal(t->nidentities, 1);
    assert_int_equal(t->identities[0].nroles, 2);
    assert_int_equal(t->nupstreams, 2);
    const sg_upstream_cfg_t *fs = &t->upstreams[0];
    assert_int_equal(fs->kind, SG_UPSTREAM_STDIO);
    assert_string_equal(fs->prefix, "fs");
    assert_int_equal(fs->nargs, 2);
    assert_string_equal(fs->env[0], "TOKEN=s3cr3t");
    assert_int_equal(fs->timeout_ms, 60000);
    const sg_upstream_cfg_t *docs = &t->upstreams[1];
    assert_int_equal(docs->kind, SG_UPSTREAM_HTTP);
    assert_string_equal(docs->prefix, "");
    assert_string_equal(docs->headers[0], "X-Team: a");
    assert_int_equal(docs->timeout_ms, 5000);
    assert_string_not_equal(fs->fingerprint, docs->fingerprint);
    assert_int_equal(t->norigins, 1);
    assert_true(t->audit_sync);
    assert_false(t->serve_last_known); /* strict */
    assert_non_null(t->policy);
    sg_tenant_unref(t);
}

static void finds_keys_and_honours_expiry(void **state)
{
    (void)state;
    sg_tenant_t *t = NULL;
    assert_int_equal(sg_tenant_parse(good, strlen(good), &t, NULL), SG_OK);
    uint8_t h[32];
    sg_sha256("abc", 3, h);
    assert_non_null(sg_tenant_find_key(t, h, 1000));
    uint8_t other[32];
    sg_sha256("abd", 3, other);
    assert_null(sg_tenant_find_key(t, other, 1000));
    assert_non_null(sg_tenant_find_upstream(t, sg_str("docs")));
    assert_null(sg_tenant_find_upstream(t, sg_str("nope")));
    sg_tenant_unref(t);
}

static void refcount_keeps_snapshot_alive(void **state)
{
    (void)state;
    sg_tenant_t *t = NULL;
    assert_int_equal(sg_tenant_parse(good, strlen(good), &t, NULL), SG_OK);
    sg_tenant_t *held = sg_tenant_ref(t);
    sg_tenant_unref(t);
    assert_string_equal(held->name, "acme"); /* ASan would report a use after free */
    sg_tenant_unref(held);
    sg_tenant_unref(NULL);
}

static void rejects_bad_documents(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "[]",
        "{\"tenant\":\"acme\"}",
        "{\"tenant\":\"ac me\",\"version\":1}",
        "{\"tenant\":\"acme\",\"version\":\"1\"}",
        "{\"tenant\":\"acme\",\"version\":1,\"version\":2}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":{}}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\"}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\",\"command\":\"a\","
        "\"url\":\"http://h/\"}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\",\"url\":\"ftp://h/\"}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\",\"command\":\"a\"},"
        "{\"name\":\"x\",\"command\":\"b\"}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\",\"command\":\"a\","
        "\"timeout_ms\":5}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\",\"command\":\"a\","
        "\"args\":[1]}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\",\"command\":\"a\","
        "\"prefix\":\"a b\"}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"upstreams\":[{\"name\":\"x\",\"command\":"
        "\"a\\u0000b\"}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"identities\":[{\"name\":\"a\",\"keys\":[{\"sha256\":"
        "\"zz\"}]}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"identities\":[{\"name\":\"a\"},{\"name\":\"a\"}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"identities\":[{\"roles\":[]}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"policies\":[{\"name\":\"x\",\"action\":\"allow\","
        "\"match\":{\"tool_regex\":\"(\"}}]}",
        "{\"tenant\":\"acme\",\"version\":1,\"policies\":[{\"anything\":1}]}",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        sg_tenant_t *t = NULL;
        sg_error_t err = { 0 };
        int rc = sg_tenant_parse(bad[i], strlen(bad[i]), &t, &err);
        if (rc == SG_OK) {
            fail_msg("document %zu was accepted: %s", i, bad[i]);
        }
        assert_null(t);
        assert_true(err.msg[0] != '\0');
        assert_null(strstr(err.msg, "s3cr3t"));
    }
}

static void rejects_deep_nesting(void **state)
{
    (void)state;
    size_t depth = 100000;
    char *doc = malloc(2 * depth + 64);
    size_t n = (size_t)sprintf(doc, "{\"tenant\":\"acme\",\"version\":1,\"x\":");
    memset(doc + n, '[', depth);
    memset(doc + n + depth, ']', depth);
    doc[n + 2 * depth] = '}';
    sg_tenant_t *t = NULL;
    assert_int_not_equal(sg_tenant_parse(doc, n + 2 * depth + 1, &t, NULL), SG_OK);
    free(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_the_stored_format),
        cmocka_unit_test(finds_keys_and_honours_expiry),
        cmocka_unit_test(refcount_keeps_snapshot_alive),
        cmocka_unit_test(rejects_bad_documents),
        cmocka_unit_test(rejects_deep_nesting),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
