/* SPDX-License-Identifier: Apache-2.0 */
#include "io/http_reply.h"

const char *sg_http_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 406:
        return "Not Acceptable";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 415:
        return "Unsupported Media Type";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

void sg_http_add_header(h2o_req_t *req, const char *name, sg_str_t value)
{
    size_t nlen = strlen(name);
    char *n = h2o_mem_alloc_pool(&req->pool, nlen);
    memcpy(n, name, nlen);
    char *v = h2o_mem_alloc_pool(&req->pool, value.len + 1);
    if (value.len != 0) {
        memcpy(v, value.ptr, value.len);
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, n, nlen, 1, NULL, v, value.len);
}

sg_str_t sg_http_header(const h2o_req_t *req, const char *lower_name)
{
    size_t len = strlen(lower_name);
    ssize_t i = h2o_find_header_by_str(&req->headers, lower_name, len, -1);
    if (i < 0) {
        return SG_STR_NULL;
    }
    h2o_iovec_t v = req->headers.entries[i].value;
    return (sg_str_t){ v.base, v.len };
}

void sg_http_reply(h2o_req_t *req, int status, const char *content_type, sg_str_t body)
{
    static h2o_generator_t generator = { NULL, NULL };
    req->res.status = status;
    req->res.reason = sg_http_reason(status);
    req->res.content_length = body.len;
    if (content_type != NULL) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type,
                       strlen(content_type));
    }
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-store"));
    h2o_iovec_t buf = h2o_iovec_init(NULL, 0);
    if (body.len != 0) {
        buf.base = h2o_mem_alloc_pool(&req->pool, body.len);
        memcpy(buf.base, body.ptr, body.len);
        buf.len = body.len;
    }
    h2o_start_response(req, &generator);
    h2o_send(req, &buf, body.len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
}
