/* SPDX-License-Identifier: Apache-2.0 */
#include "core/redact.h"

#include <ctype.h>

#include "base/json.h"

#define MAX_DEPTH 32

static const char *const secret_words[] = {
    "password", "passwd",        "secret",     "token",      "apikey",      "api_key",
    "api-key",  "authorization", "cookie",     "credential", "private_key", "privatekey",
    "bearer",   "signature",     "access_key", "accesskey"
};

bool sg_redact_is_secret_name(sg_str_t name)
{
    char lower[128];
    size_t n = SG_MIN(name.len, sizeof(lower) - 1);
    for (size_t i = 0; i < n; i++) {
        lower[i] = (char)tolower((unsigned char)name.ptr[i]);
    }
    lower[n] = '\0';
    for (size_t i = 0; i < SG_ARRAY_LEN(secret_words); i++) {
        if (strstr(lower, secret_words[i]) != NULL) {
            return true;
        }
    }
    return false;
}

static void redact(sg_str_t v, sg_buf_t *out, int depth)
{
    sg_json_type_t type = sg_json_type(v);
    if (type != SG_JSON_OBJECT && type != SG_JSON_ARRAY) {
        sg_buf_append_str(out, sg_json_trim(v));
        return;
    }
    if (depth >= MAX_DEPTH) {
        sg_buf_append_cstr(out, "\"[redacted: too deep]\"");
        return;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(v);
    sg_str_t key, item;
    bool first = true;
    sg_buf_append_char(out, type == SG_JSON_OBJECT ? '{' : '[');
    while (type == SG_JSON_OBJECT ? sg_json_object_next(&it, &key, &item) == 1
                                  : sg_json_array_next(&it, &item) == 1) {
        if (!first) {
            sg_buf_append_char(out, ',');
        }
        first = false;
        if (type == SG_JSON_OBJECT) {
            sg_buf_t name = SG_BUF_INIT;
            bool secret = sg_json_string_decode(key, &name) == SG_OK &&
                          sg_redact_is_secret_name(sg_buf_str(&name));
            sg_buf_dispose(&name);
            sg_buf_append_str(out, key);
            sg_buf_append_char(out, ':');
            if (secret) {
                sg_buf_append_cstr(out, "\"[redacted]\"");
                continue;
            }
        }
        redact(item, out, depth + 1);
    }
    sg_buf_append_char(out, type == SG_JSON_OBJECT ? '}' : ']');
}

void sg_redact_json(sg_str_t json, sg_buf_t *out)
{
    redact(json, out, 0);
}
