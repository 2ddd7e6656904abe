/* SPDX-License-Identifier: Apache-2.0 */
/* The settings table: defaults, validation naming the variable, masking of secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "core/settings.h"

static const char *const *env_table;

static const char *fake_getenv(const char *name)
{
    for (const char *const *p = env_table; p != NULL && *p != NULL; p += 2) {
        if (strcmp(p[0], name) == 0) {
            return p[1];
        }
    }
    return NULL;
}

static int load(const char *const *env, unsigned needs, sg_settings_t *s, sg_error_t *err)
{
    env_table = env;
    return sg_settings_load(s, needs, fake_getenv, err);
}

static void defaults_work_for_the_gate(void **state)
{
    (void)state;
    sg_settings_t s;
    sg_error_t err = { 0 };
    assert_int_equal(load(NULL, SG_NEED_NONE, &s, &err), SG_OK);
    assert_string_equal(s.listen_host, "127.0.0.1");
    assert_int_equal(s.listen_port, 8080);
    assert_int_equal(s.max_body_bytes, 4194304);
    assert_true(strlen(s.replica_id) > 0);
    sg_settings_dispose(&s);
}

static void control_needs_an_admin_token(void **state)
{
    (void)state;
    sg_settings_t s;
    sg_error_t err = { 0 };
    assert_int_equal(load(NULL, SG_NEED_CONTROL, &s, &err), SG_ESETTING);
    assert_non_null(strstr(err.msg, "SG_ADMIN_TOKEN"));
    sg_settings_dispose(&s);
    const char *short_token[] = { "SG_ADMIN_TOKEN", "short", NULL };
    assert_int_equal(load(short_token, SG_NEED_CONTROL, &s, &err), SG_ESETTING);
    assert_non_null(strstr(err.msg, "SG_ADMIN_TOKEN"));
    assert_null(strstr(err.msg, "short"));
    sg_settings_dispose(&s);
}

static void bad_values_name_the_variable(void **state)
{
    (void)state;
    const char *cases[][2] = {
        { "SG_LISTEN", "nonsense" },
        { "SG_LISTEN", "127.0.0.1:99999" },
        { "SG_LOG_LEVEL", "loud" },
        { "SG_MAX_BODY", "12x" },
        { "SG_MAX_BODY", "10" },
        { "SG_REDIS_URL", "http://x" },
        { "SG_DATABASE_URL", "mysql://x" },
        { "SG_DRAIN_MS", "-1" },
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = { cases[i][0], cases[i][1], NULL };
        sg_settings_t s;
        sg_error_t err = { 0 };
        assert_int_equal(load(env, SG_NEED_NONE, &s, &err), SG_ESETTING);
        assert_non_null(strstr(err.msg, cases[i][0]));
        sg_settings_dispose(&s);
    }
    const char *half_tls[] = { "SG_TLS_CERT", "/x.pem", NULL };
    sg_settings_t s;
    sg_error_t err = { 0 };
    assert_int_equal(load(half_tls, SG_NEED_NONE, &s, &err), SG_ESETTING);
    sg_settings_dispose(&s);
}

static void masks_passwords_in_urls(void **state)
{
    (void)state;
    char out[256];
    sg_settings_mask_url("redis://:hunter2@127.0.0.1:6379/0", out, sizeof(out));
    assert_string_equal(out, "redis://:****@127.0.0.1:6379/0");
    sg_settings_mask_url("postgresql://u:pw@h/db", out, sizeof(out));
    assert_string_equal(out, "postgresql://u:****@h/db");
    sg_settings_mask_url("postgresql://u@h/db", out, sizeof(out));
    assert_string_equal(out, "postgresql://u@h/db");
    sg_settings_mask_url("postgresql://h/db?x=a@b", out, sizeof(out));
    assert_string_equal(out, "postgresql://h/db?x=a@b");
}

static void print_never_shows_secrets(void **state)
{
    (void)state;
    const char *env[] = { "SG_REDIS_URL",
                          "redis://:hunter2@127.0.0.1:6379/0",
                          "SG_ADMIN_TOKEN",
                          "an-admin-token-of-some-length",
                          "SG_DATABASE_URL",
                          "postgresql://u:pgsecret@h/db",
                          NULL };
    sg_settings_t s;
    assert_int_equal(load(env, SG_NEED_CONTROL, &s, NULL), SG_OK);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    sg_settings_print(&s, f);
    fclose(f);
    assert_null(strstr(text, "hunter2"));
    assert_null(strstr(text, "pgsecret"));
    assert_null(strstr(text, "an-admin-token"));
    assert_non_null(strstr(text, "SG_ADMIN_TOKEN=****"));
    free(text);
    sg_settings_dispose(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_work_for_the_gate),
        cmocka_unit_test(control_needs_an_admin_token),
        cmocka_unit_test(bad_values_name_the_variable),
        cmocka_unit_test(masks_passwords_in_urls),
        cmocka_unit_test(print_never_shows_secrets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
