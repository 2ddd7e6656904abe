/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The JSON-RPC 2.0 envelope: parse one message or a batch from an untrusted
 * body, and build replies. Parsing validates the whole body once (base/json:
 * depth, duplicate keys, NUL, UTF-8) and then records raw spans of the
 * envelope members, so ids are kept as their exact JSON text (big integers
 * survive) and params/result/error can be forwarded byte for byte.
 */
#ifndef SG_CORE_JSONRPC_H
#define SG_CORE_JSONRPC_H

#include "base/buf.h"
#include "base/err.h"
#include "base/json.h"
#include "base/sg.h"

typedef enum sg_jsonrpc_kind {
    SG_JSONRPC_INVALID = 0,
    SG_JSONRPC_REQUEST,      /* method + id */
    SG_JSONRPC_NOTIFICATION, /* method, no id */
    SG_JSONRPC_RESPONSE,     /* id + result */
    SG_JSONRPC_ERROR,        /* id (may be null) + error */
} sg_jsonrpc_kind_t;

/* One message. Every slice borrows from the parsed body, except `method` when it
 * contained escapes (then it borrows from the batch that owns the message). */
typedef struct sg_jsonrpc_msg {
    sg_jsonrpc_kind_t kind;
    sg_str_t raw; /* the whole message object */
    sg_str_t id;  /* raw JSON of id: a string with its quotes, a number, or null; len 0 if absent */
    sg_str_t method; /* decoded method name; len 0 for responses */
    sg_str_t params; /* raw JSON object/array; len 0 if absent */
    sg_str_t result; /* raw JSON; len 0 if absent */
    sg_str_t error;  /* raw JSON object; len 0 if absent */
} sg_jsonrpc_msg_t;

typedef struct sg_jsonrpc_limits {
    size_t max_body;  /* bytes; larger bodies are SG_ETOOBIG before anything is parsed */
    size_t max_depth; /* nesting of arrays/objects */
    size_t max_batch; /* messages in one batch array */
} sg_jsonrpc_limits_t;

#define SG_JSONRPC_LIMITS_DEFAULT ((sg_jsonrpc_limits_t){ 4u << 20, SG_JSON_MAX_DEPTH, 64 })

typedef struct sg_jsonrpc_batch {
    sg_jsonrpc_msg_t *msgs; /* owned */
    size_t count;
    bool is_batch;   /* the body was a JSON array */
    char **_decoded; /* owned copies of escaped method names */
    size_t _ndecoded;
} sg_jsonrpc_batch_t;

/*
 * Parses body[0..len). limits may be NULL (SG_JSONRPC_LIMITS_DEFAULT). On SG_OK,
 * out holds count >= 1 messages (borrowing from body, which must outlive out)
 * and must be released with sg_jsonrpc_batch_dispose(). On error out is zeroed
 * and nothing needs disposing; one invalid element rejects the whole batch
 * (err names its position). Codes:
 * SG_ETOOBIG, SG_EPARSE, SG_EUTF8, SG_ENULCHAR, SG_EDUPKEY, SG_EDEPTH (all
 * "the body is not acceptable JSON"), SG_EREQUEST (valid JSON, not a valid
 * JSON-RPC 2.0 message or batch: wrong "jsonrpc", id of the wrong type, method
 * not a string, params not structured, both result and error, unknown members
 * are allowed, empty batch, batch over max_batch).
 */
int sg_jsonrpc_parse(const char *body, size_t len, const sg_jsonrpc_limits_t *limits,
                     sg_jsonrpc_batch_t *out, sg_error_t *err) SG_MUSTCHECK;
void sg_jsonrpc_batch_dispose(sg_jsonrpc_batch_t *b);

/*
 * Parses exactly one message (not a batch) that is already known to be valid
 * JSON text, e.g. a line from an upstream after sg_json_validate. Same
 * envelope rules and errors as sg_jsonrpc_parse (an array is SG_EREQUEST).
 * method borrows from text when it has no escapes; otherwise it is decoded and
 * appended to *scratch (not NULL) and borrows from it until scratch changes.
 */
int sg_jsonrpc_parse_one(sg_str_t text, sg_jsonrpc_msg_t *out, sg_buf_t *scratch,
                         sg_error_t *err) SG_MUSTCHECK;

/* ---- builders: each appends one complete message to out ---- */

/*
 * Builders write compact JSON. Ids and raw members are copied as given (they
 * must be valid JSON); an empty id is written as null.
 */

/* {"jsonrpc":"2.0","id":<id>,"result":<result_raw>}; an empty result_raw is written as null. */
void sg_jsonrpc_write_result(sg_buf_t *out, sg_str_t id, sg_str_t result_raw);
/* {"jsonrpc":"2.0","id":<id or null>,"error":{"code":..,"message":"..","data":<data_raw>}}
 * message is escaped; data_raw may be empty (then no "data" member). */
void sg_jsonrpc_write_error(sg_buf_t *out, sg_str_t id, int code, const char *message,
                            sg_str_t data_raw);
/* {"jsonrpc":"2.0","id":<id>,"method":"..","params":<params_raw>}; params omitted when empty. */
void sg_jsonrpc_write_request(sg_buf_t *out, sg_str_t id, const char *method, sg_str_t params_raw);
/* {"jsonrpc":"2.0","method":"..","params":..}; params omitted when empty. */
void sg_jsonrpc_write_notification(sg_buf_t *out, const char *method, sg_str_t params_raw);

#endif
