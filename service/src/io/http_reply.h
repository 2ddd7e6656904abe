/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Non-streamed replies. Every reply sets Content-Length (h2o 2.2 closes
 * keep-alive on a non-200 without it, STACK-NOTES §6.2 item 3) and copies
 * the body into the request pool.
 */
#ifndef SG_IO_HTTP_REPLY_H
#define SG_IO_HTTP_REPLY_H

#include <h2o.h>

#include "base/sg.h"

/* Sends status with body (copied) and the given content type (NULL = none). */
void sg_http_reply(h2o_req_t *req, int status, const char *content_type, sg_str_t body);
static inline void sg_http_reply_json(h2o_req_t *req, int status, sg_str_t body)
{
    sg_http_reply(req, status, "application/json", body);
}
/* Adds a response header (name and value copied into the request pool). */
void sg_http_add_header(h2o_req_t *req, const char *name, sg_str_t value);
/* The request header value, or SG_STR_NULL when absent (first occurrence). */
sg_str_t sg_http_header(const h2o_req_t *req, const char *lower_name);
/* An HTTP reason phrase for common statuses. */
const char *sg_http_reason(int status);

#endif
