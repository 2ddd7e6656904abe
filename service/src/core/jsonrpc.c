/* SPDX-License-Identifier: Apache-2.0 */
/*
 * JSON-RPC 2.0 envelopes over raw spans. A body is bounded by size, validated
 * once by base/json (depth, duplicate keys, NUL, UTF-8), then each message's
 * members are located with one pass of the span iterator and checked against
 * the envelope rules. Every slice of a parsed message borrows the body, except
 * method names that contained escapes: those are decoded into copies owned by
 * the batch. Error texts name the rule that failed and the batch position,
 * never bytes of the input.
 */
#include "core/jsonrpc.h"

#include <stdlib.h>

#include "base/mem.h"

/* ---- envelope rules ---------------------------------------------------- */

/* The members we know, as raw spans; len 0 when absent. */
struct envelope {
    sg_str_t jsonrpc, id, method, params, result, error;
};

static sg_str_t *member_slot(struct envelope *e, sg_str_t key_raw)
{
    static const struct {
        const char *name;
        size_t len;
        size_t off;
    } members[] = {
        { "jsonrpc", 7, offsetof(struct envelope, jsonrpc) },
        { "id", 2, offsetof(struct envelope, id) },
        { "method", 6, offsetof(struct envelope, method) },
        { "params", 6, offsetof(struct envelope, params) },
        { "result", 6, offsetof(struct envelope, result) },
        { "error", 5, offsetof(struct envelope, error) },
    };
    sg_str_t plain;
    bool is_plain = sg_json_string_plain(key_raw, &plain);
    for (size_t i = 0; i < SG_ARRAY_LEN(members); i++) {
        bool match = is_plain ? plain.len == members[i].len &&
                                        memcmp(plain.ptr, members[i].name, plain.len) == 0
                              : sg_json_string_eq(key_raw, members[i].name);
        if (match) {
            return (sg_str_t *)(void *)((char *)e + members[i].off);
        }
    }
    return NULL; /* unknown members are allowed */
}

/* Returns NULL when obj is an object whose members were collected, else why not. */
static const char *collect(sg_str_t obj, struct envelope *e)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(obj);
    sg_str_t key, value;
    int rc;
    *e = (struct envelope){ 0 };
    if (sg_json_type(obj) != SG_JSON_OBJECT) {
        return "message is not a JSON object";
    }
    while ((rc = sg_json_object_next(&it, &key, &value)) == 1) {
        sg_str_t *slot = member_slot(e, key);
        if (slot != NULL) {
            *slot = value; /* validated text has no duplicate keys */
        }
    }
    return rc == 0 ? NULL : "message is not a well-formed object";
}

static const char *check_error_member(sg_str_t error)
{
    sg_str_t code, message;
    int64_t n;
    if (sg_json_type(error) != SG_JSON_OBJECT) {
        return "\"error\" must be an object";
    }
    if (sg_json_object_get(error, "code", &code) != SG_OK || sg_json_int64(code, &n) != SG_OK) {
        return "\"error\" must have an integer \"code\"";
    }
    if (sg_json_object_get(error, "message", &message) != SG_OK ||
        sg_json_type(message) != SG_JSON_STRING) {
        return "\"error\" must have a string \"message\"";
    }
    return NULL;
}

/* Rules for a message without "method": exactly one of result and error. */
static const char *classify_response(const struct envelope *e, sg_jsonrpc_kind_t *kind)
{
    if (e->result.len != 0 && e->error.len != 0) {
        return "a response must not have both \"result\" and \"error\"";
    }
    if (e->result.len == 0 && e->error.len == 0) {
        return "message has none of \"method\", \"result\" and \"error\"";
    }
    if (e->id.len == 0) {
        return "a response must have an \"id\"";
    }
    if (e->result.len != 0) {
        if (sg_json_type(e->id) == SG_JSON_NULL) {
            return "\"id\" may be null only in an error response";
        }
        *kind = SG_JSONRPC_RESPONSE;
        return NULL;
    }
    const char *why = check_error_member(e->error);
    if (why == NULL) {
        *kind = SG_JSONRPC_ERROR;
    }
    return why;
}

/* Returns NULL and sets *kind when the envelope is valid JSON-RPC 2.0, else why not. */
static const char *classify(const struct envelope *e, sg_jsonrpc_kind_t *kind)
{
    sg_json_type_t t;
    if (e->jsonrpc.len == 0 || !sg_json_string_eq(e->jsonrpc, "2.0")) {
        return "\"jsonrpc\" must be \"2.0\"";
    }
    t = sg_json_type(e->id);
    if (e->id.len != 0 && t != SG_JSON_STRING && t != SG_JSON_NUMBER && t != SG_JSON_NULL) {
        return "\"id\" must be a string or a number";
    }
    t = sg_json_type(e->params);
    if (e->params.len != 0 && t != SG_JSON_OBJECT && t != SG_JSON_ARRAY) {
        return "\"params\" must be an object or an array";
    }
    if (e->method.len == 0) {
        return classify_response(e, kind);
    }
    if (sg_json_type(e->method) != SG_JSON_STRING) {
        return "\"method\" must be a string";
    }
    if (e->result.len != 0 || e->error.len != 0) {
        return "a request must not have \"result\" or \"error\"";
    }
    if (sg_json_type(e->id) == SG_JSON_NULL) {
        return "\"id\" may be null only in an error response";
    }
    *kind = e->id.len != 0 ? SG_JSONRPC_REQUEST : SG_JSONRPC_NOTIFICATION;
    return NULL;
}

/*
 * Fills *m from the message object raw. A method with escapes is decoded into
 * *decoded (appended); *escaped tells the caller to point m->method there.
 */
static int parse_msg(sg_str_t raw, sg_jsonrpc_msg_t *m, sg_buf_t *decoded, bool *escaped,
                     const char **why)
{
    struct envelope e;
    *escaped = false;
    *why = collect(raw, &e);
    if (*why == NULL) {
        *why = classify(&e, &m->kind);
    }
    if (*why != NULL) {
        m->kind = SG_JSONRPC_INVALID;
        return SG_EREQUEST;
    }
    m->raw = raw;
    m->id = e.id;
    m->params = e.params;
    m->result = e.result;
    m->error = e.error;
    m->method = SG_STR_NULL;
    if (e.method.len != 0 && !sg_json_string_plain(e.method, &m->method)) {
        int rc = sg_json_string_decode(e.method, decoded);
        if (rc != SG_OK) {
            *why = "\"method\" is not a valid string";
            return rc;
        }
        *escaped = true;
    }
    return SG_OK;
}

/* ---- parsing ----------------------------------------------------------- */

static void reject(sg_error_t *err, int rc, bool is_batch, size_t index, const char *why)
{
    if (is_batch) {
        sg_error_set(err, rc, "batch element %zu: %s", index, why);
    } else {
        sg_error_set(err, rc, "%s", why);
    }
}

/* Parses message i of the batch, keeping an escaped method name in the batch. */
static int parse_into(sg_jsonrpc_batch_t *b, size_t i, sg_str_t raw, sg_error_t *err)
{
    sg_buf_t decoded = SG_BUF_INIT;
    bool escaped;
    const char *why;
    int rc = parse_msg(raw, &b->msgs[i], &decoded, &escaped, &why);
    if (rc != SG_OK) {
        reject(err, rc, b->is_batch, i, why);
    } else if (escaped) {
        if (b->_decoded == NULL) {
            b->_decoded = sg_xcalloc(b->count, sizeof(*b->_decoded));
        }
        size_t n = 0;
        char *copy = sg_buf_steal(&decoded, &n);
        b->_decoded[b->_ndecoded++] = copy;
        b->msgs[i].method = sg_str_n(copy, n);
    }
    sg_buf_dispose(&decoded);
    return rc;
}

/* Counts the elements of the batch array root, up to max + 1. */
static int count_batch(sg_str_t root, size_t max, size_t *count)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(root);
    sg_str_t item;
    int rc = 0;
    *count = 0;
    while (*count <= max && (rc = sg_json_array_next(&it, &item)) == 1) {
        (*count)++;
    }
    return *count > max || rc == 0 ? SG_OK : SG_EPARSE;
}

static int parse_batch(sg_str_t root, size_t max_batch, sg_jsonrpc_batch_t *out, sg_error_t *err)
{
    sg_json_iter_t it = SG_JSON_ITER_INIT(root);
    sg_str_t item;
    size_t n;
    int rc = count_batch(root, max_batch, &n);
    if (rc != SG_OK) {
        return sg_error_set(err, rc, "malformed batch array");
    }
    if (n == 0) {
        return sg_error_set(err, SG_EREQUEST, "empty batch");
    }
    if (n > max_batch) {
        return sg_error_set(err, SG_EREQUEST, "batch has more than %zu messages", max_batch);
    }
    out->is_batch = true;
    out->count = n;
    out->msgs = sg_xcalloc(n, sizeof(*out->msgs));
    for (size_t i = 0; i < n; i++) {
        rc = sg_json_array_next(&it, &item);
        SG_BUG_ON(rc != 1);
        rc = parse_into(out, i, item, err);
        if (rc != SG_OK) {
            return rc;
        }
    }
    return SG_OK;
}

int sg_jsonrpc_parse(const char *body, size_t len, const sg_jsonrpc_limits_t *limits,
                     sg_jsonrpc_batch_t *out, sg_error_t *err)
{
    sg_jsonrpc_limits_t lim = limits != NULL ? *limits : SG_JSONRPC_LIMITS_DEFAULT;
    *out = (sg_jsonrpc_batch_t){ 0 };
    if (len > lim.max_body) {
        return sg_error_set(err, SG_ETOOBIG, "body of %zu bytes exceeds the limit of %zu", len,
                            lim.max_body);
    }
    int rc = sg_json_validate(body, len, lim.max_depth, err);
    if (rc != SG_OK) {
        return rc;
    }
    sg_str_t root = sg_json_trim(sg_str_n(body, len));
    switch (sg_json_type(root)) {
    case SG_JSON_ARRAY:
        rc = parse_batch(root, lim.max_batch, out, err);
        break;
    case SG_JSON_OBJECT:
        out->count = 1;
        out->msgs = sg_xcalloc(1, sizeof(*out->msgs));
        rc = parse_into(out, 0, root, err);
        break;
    default:
        rc = sg_error_set(err, SG_EREQUEST, "body is neither an object nor an array");
        break;
    }
    if (rc != SG_OK) {
        sg_jsonrpc_batch_dispose(out);
    }
    return rc;
}

void sg_jsonrpc_batch_dispose(sg_jsonrpc_batch_t *b)
{
    if (b == NULL) {
        return;
    }
    for (size_t i = 0; i < b->_ndecoded; i++) {
        free(b->_decoded[i]);
    }
    free(b->_decoded);
    free(b->msgs);
    *b = (sg_jsonrpc_batch_t){ 0 };
}

int sg_jsonrpc_parse_one(sg_str_t text, sg_jsonrpc_msg_t *out, sg_buf_t *scratch, sg_error_t *err)
{
    sg_str_t root = sg_json_trim(text);
    sg_buf_t decoded = SG_BUF_INIT;
    bool escaped;
    const char *why;
    *out = (sg_jsonrpc_msg_t){ 0 };
    if (sg_json_type(root) == SG_JSON_ARRAY) {
        return sg_error_set(err, SG_EREQUEST, "a batch is not allowed here");
    }
    int rc = parse_msg(root, out, &decoded, &escaped, &why);
    if (rc != SG_OK) {
        reject(err, rc, false, 0, why);
    } else if (escaped) {
        SG_BUG_ON(scratch == NULL);
        size_t at = scratch->len;
        sg_buf_append(scratch, decoded.data, decoded.len);
        out->method = sg_str_n(scratch->data + at, decoded.len);
    }
    sg_buf_dispose(&decoded);
    return rc;
}

/* ---- builders ---------------------------------------------------------- */

static void write_head(sg_buf_t *out, sg_str_t id, bool with_id)
{
    sg_buf_append_cstr(out, "{\"jsonrpc\":\"2.0\"");
    if (with_id) {
        sg_buf_append_cstr(out, ",\"id\":");
        sg_buf_append_str(out, id.len != 0 ? id : SG_STR_LIT("null"));
    }
}

static void write_call(sg_buf_t *out, sg_str_t id, bool with_id, const char *method,
                       sg_str_t params_raw)
{
    write_head(out, id, with_id);
    sg_buf_append_cstr(out, ",\"method\":");
    sg_json_write_cstr(out, method != NULL ? method : "");
    if (params_raw.len != 0) {
        sg_buf_append_cstr(out, ",\"params\":");
        sg_buf_append_str(out, params_raw);
    }
    sg_buf_append_char(out, '}');
}

void sg_jsonrpc_write_result(sg_buf_t *out, sg_str_t id, sg_str_t result_raw)
{
    write_head(out, id, true);
    sg_buf_append_cstr(out, ",\"result\":");
    sg_buf_append_str(out, result_raw.len != 0 ? result_raw : SG_STR_LIT("null"));
    sg_buf_append_char(out, '}');
}

void sg_jsonrpc_write_error(sg_buf_t *out, sg_str_t id, int code, const char *message,
                            sg_str_t data_raw)
{
    write_head(out, id, true);
    sg_buf_printf(out, ",\"error\":{\"code\":%d,\"message\":", code);
    sg_json_write_cstr(out, message != NULL ? message : "");
    if (data_raw.len != 0) {
        sg_buf_append_cstr(out, ",\"data\":");
        sg_buf_append_str(out, data_raw);
    }
    sg_buf_append_cstr(out, "}}");
}

void sg_jsonrpc_write_request(sg_buf_t *out, sg_str_t id, const char *method, sg_str_t params_raw)
{
    write_call(out, id, true, method, params_raw);
}

void sg_jsonrpc_write_notification(sg_buf_t *out, const char *method, sg_str_t params_raw)
{
    write_call(out, SG_STR_NULL, false, method, params_raw);
}
