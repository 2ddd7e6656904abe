/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Every failure is one row of SG_ERR_MAP: our code, the JSON-RPC code sent to
 * agents, the HTTP status, and a human message. Adding a failure mode means
 * adding one row; everything else reads the table.
 */
#ifndef SG_BASE_ERR_H
#define SG_BASE_ERR_H

#include "base/sg.h"

#define SG_OK 0

/*   name        our   json-rpc  http  message */
#define SG_ERR_MAP(X)                                              \
    X(EPARSE, -1, -32700, 400, "malformed JSON")                   \
    X(EREQUEST, -2, -32600, 400, "invalid JSON-RPC request")       \
    X(EMETHOD, -3, -32601, 404, "method not found")                \
    X(EPARAMS, -4, -32602, 400, "invalid params")                  \
    X(EINTERNAL, -5, -32603, 500, "internal error")                \
    X(ETOOBIG, -6, -32600, 413, "request too large")               \
    X(EDEPTH, -7, -32600, 400, "JSON nested too deeply")           \
    X(EDUPKEY, -8, -32600, 400, "duplicate key in JSON object")    \
    X(ENULCHAR, -9, -32600, 400, "NUL character in JSON string")   \
    X(EUTF8, -10, -32700, 400, "invalid UTF-8")                    \
    X(EDENIED, -20, -31001, 403, "denied by policy")               \
    X(EAPPROVAL, -21, -31002, 403, "approval denied or timed out") \
    X(EKILLED, -22, -31003, 503, "kill switch engaged")            \
    X(ERATELIMIT, -23, -31004, 429, "rate limited")                \
    X(EBLOCKED, -24, -31005, 403, "blocked by content scanning")   \
    X(EUPSTREAM, -25, -31006, 502, "upstream unavailable")         \
    X(ETIMEDOUT, -26, -31006, 504, "timed out")                    \
    X(ECONFIG, -27, -31007, 503, "configuration unavailable")      \
    X(EQUARANTINE, -28, -31008, 403, "tool quarantined")           \
    X(EUNAUTH, -40, -32001, 401, "authentication required")        \
    X(ESESSION, -41, -32001, 404, "session not found")             \
    X(EORIGIN, -42, -32600, 403, "origin not allowed")             \
    X(EVERSION, -43, -32600, 400, "unsupported protocol version")  \
    X(EHTTPMETHOD, -44, -32600, 405, "method not allowed")         \
    X(ENOTACCEPT, -45, -32600, 406, "not acceptable")              \
    X(EMEDIATYPE, -46, -32600, 415, "unsupported media type")      \
    X(ECANCELED, -60, -32603, 499, "canceled")                     \
    X(EIO, -61, -32603, 503, "I/O error")                          \
    X(ECLOSED, -62, -32603, 503, "connection closed")              \
    X(ENOTFOUND, -63, -32602, 404, "not found")                    \
    X(EBUSY, -64, -32603, 503, "busy")                             \
    X(ESETTING, -65, -32603, 500, "invalid setting")               \
    X(EBACKEND, -66, -32603, 503, "backend error")                 \
    X(EINVAL, -67, -32602, 400, "invalid argument")

enum {
#define SG_ERR_ENUM(name, code, rpc, http, msg) SG_##name = (code),
    SG_ERR_MAP(SG_ERR_ENUM)
#undef SG_ERR_ENUM
};

/* Lower-case symbolic name ("etimedout"), "ok" for 0, "unknown" otherwise. */
const char *sg_err_name(int code);
/* Human message for the code; never NULL. */
const char *sg_err_message(int code);
/* JSON-RPC error code sent to agents (-32603 for unknown codes). */
int sg_err_jsonrpc_code(int code);
/* HTTP status for the code (500 for unknown codes, 200 for SG_OK). */
int sg_err_http_status(int code);

#define SG_ERROR_MSG_MAX 256

/* Detail for humans. Filling it never allocates. */
typedef struct sg_error {
    int code;
    char msg[SG_ERROR_MSG_MAX];
} sg_error_t;

/* Records code and a formatted message into err (may be NULL); returns code. */
int sg_error_set(sg_error_t *err, int code, const char *fmt, ...) SG_PRINTF(3, 4);

#endif
