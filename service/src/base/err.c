/* SPDX-License-Identifier: Apache-2.0 */
/* Readers of the SG_ERR_MAP table. */
#include "base/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct row {
    int code;
    int rpc;
    int http;
    const char *name;
    const char *msg;
};

static const struct row rows[] = {
#define SG_ERR_ROW(name, code, rpc, http, msg) { code, rpc, http, #name, msg },
    SG_ERR_MAP(SG_ERR_ROW)
#undef SG_ERR_ROW
};

static const struct row *find(int code)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(rows); i++) {
        if (rows[i].code == code) {
            return &rows[i];
        }
    }
    return NULL;
}

const char *sg_err_name(int code)
{
    static _Thread_local char lower[32];
    if (code == SG_OK) {
        return "ok";
    }
    const struct row *r = find(code);
    if (r == NULL) {
        return "unknown";
    }
    size_t i = 0;
    for (; r->name[i] != '\0' && i + 1 < sizeof(lower); i++) {
        char c = r->name[i];
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
    }
    lower[i] = '\0';
    return lower;
}

const char *sg_err_message(int code)
{
    if (code == SG_OK) {
        return "ok";
    }
    const struct row *r = find(code);
    return r != NULL ? r->msg : "unknown error";
}

int sg_err_jsonrpc_code(int code)
{
    const struct row *r = find(code);
    return r != NULL ? r->rpc : -32603;
}

int sg_err_http_status(int code)
{
    if (code == SG_OK) {
        return 200;
    }
    const struct row *r = find(code);
    return r != NULL ? r->http : 500;
}

int sg_error_set(sg_error_t *err, int code, const char *fmt, ...)
{
    if (err != NULL) {
        va_list ap;
        err->code = code;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
        va_end(ap);
    }
    return code;
}

void sg_bug(const char *file, int line, const char *cond)
{
    fprintf(stderr, "level=fatal msg=\"BUG: %s\" file=%s line=%d\n", cond, file, line);
    fflush(stderr);
    abort();
}
