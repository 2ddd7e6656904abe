/* SPDX-License-Identifier: Apache-2.0 */
#include "control/tenant_doc.h"

#include <inttypes.h>
#include <stdio.h>

#include "base/json.h"
#include "core/session_token.h"

void sg_doc_new_key(char key[SG_API_KEY_LEN + 1], char sha256_hex[65])
{
    uint8_t raw[32];
    sg_random_bytes(raw, sizeof(raw));
    memcpy(key, "sg_", 3);
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(key + 3 + 2 * i, 3, "%02x", raw[i]);
    }
    sg_sha256_hex(key, SG_API_KEY_LEN, sha256_hex);
    memset(raw, 0, sizeof(raw));
}

static void splice(sg_buf_t *out, sg_str_t doc, sg_str_t span, sg_str_t with)
{
    sg_buf_append(out, doc.ptr, (size_t)(span.ptr - doc.ptr));
    sg_buf_append_str(out, with);
    sg_buf_append(out, span.ptr + span.len, (size_t)(doc.ptr + doc.len - span.ptr - span.len));
}

/* The raw identity object named name. */
static int find_identity(sg_str_t doc, const char *name, sg_str_t *ident)
{
    sg_str_t ids, item, n;
    if (sg_json_object_get(doc, "identities", &ids) != SG_OK) {
        return SG_ENOTFOUND;
    }
    sg_json_iter_t it = SG_JSON_ITER_INIT(ids);
    while (sg_json_array_next(&it, &item) == 1) {
        if (sg_json_object_get(item, "name", &n) == SG_OK && sg_json_string_eq(n, name)) {
            *ident = item;
            return SG_OK;
        }
    }
    return SG_ENOTFOUND;
}

int sg_doc_identity_keys(sg_str_t doc, const char *identity, sg_str_t *keys)
{
    sg_str_t ident;
    if (find_identity(doc, identity, &ident) != SG_OK ||
        sg_json_object_get(ident, "keys", keys) != SG_OK) {
        return SG_ENOTFOUND;
    }
    return SG_OK;
}

int sg_doc_set_identity_keys(sg_str_t doc, const char *identity, sg_str_t keys_raw, sg_buf_t *out)
{
    sg_str_t keys;
    if (sg_doc_identity_keys(doc, identity, &keys) != SG_OK) {
        return SG_ENOTFOUND;
    }
    splice(out, doc, keys, keys_raw);
    return SG_OK;
}

int sg_doc_set_version(sg_str_t doc, int64_t version, sg_buf_t *out)
{
    sg_str_t v;
    if (sg_json_object_get(doc, "version", &v) != SG_OK) {
        return SG_EINVAL;
    }
    char text[24];
    snprintf(text, sizeof(text), "%" PRId64, version);
    splice(out, doc, v, sg_str(text));
    return SG_OK;
}

static void append_key(sg_buf_t *out, bool *first, sg_str_t sha, uint64_t expires_ms)
{
    sg_buf_append_cstr(out, *first ? "{\"sha256\":" : ",{\"sha256\":");
    sg_buf_append_str(out, sha);
    sg_buf_printf(out, ",\"expires_ms\":%" PRIu64 "}", expires_ms);
    *first = false;
}

void sg_doc_rotate_keys(sg_str_t old_keys, const char *new_sha256, uint64_t now_ms,
                        uint64_t grace_ms, sg_buf_t *out)
{
    bool first = true;
    char quoted[70];
    snprintf(quoted, sizeof(quoted), "\"%s\"", new_sha256);
    sg_buf_append_char(out, '[');
    append_key(out, &first, sg_str(quoted), 0);
    sg_json_iter_t it = SG_JSON_ITER_INIT(old_keys);
    sg_str_t item, sha, exp;
    while (grace_ms > 0 && sg_json_array_next(&it, &item) == 1) {
        int64_t e = 0;
        if (sg_json_object_get(item, "sha256", &sha) != SG_OK) {
            continue;
        }
        if (sg_json_object_get(item, "expires_ms", &exp) != SG_OK ||
            sg_json_int64(exp, &e) != SG_OK) {
            e = 0;
        }
        if (e != 0 && (uint64_t)e <= now_ms) {
            continue; /* already expired */
        }
        uint64_t until = now_ms + grace_ms;
        append_key(out, &first, sha, e != 0 && (uint64_t)e < until ? (uint64_t)e : until);
    }
    sg_buf_append_char(out, ']');
}

bool sg_doc_remove_key(sg_str_t old_keys, const char *id, sg_buf_t *out)
{
    bool removed = false, first = true;
    sg_json_iter_t it = SG_JSON_ITER_INIT(old_keys);
    sg_str_t item, sha, plain;
    sg_buf_append_char(out, '[');
    while (sg_json_array_next(&it, &item) == 1) {
        if (sg_json_object_get(item, "sha256", &sha) == SG_OK &&
            sg_json_string_plain(sha, &plain) && plain.len >= strlen(id) &&
            memcmp(plain.ptr, id, strlen(id)) == 0 && !removed) {
            removed = true;
            continue;
        }
        if (!first) {
            sg_buf_append_char(out, ',');
        }
        first = false;
        sg_buf_append_str(out, item);
    }
    sg_buf_append_char(out, ']');
    return removed;
}
