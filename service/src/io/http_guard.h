/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A request guard for handlers that answer later (after a Redis or Postgres
 * round trip): h2o may release the request first (client gone, HTTP/2
 * reset), and then the answer must be dropped. The guard is a small
 * refcounted object: the request holds one reference until h2o disposes it
 * (then guard->req becomes NULL), the pending operation holds another.
 */
#ifndef SG_IO_HTTP_GUARD_H
#define SG_IO_HTTP_GUARD_H

#include <h2o.h>

#include "base/sg.h"

typedef struct sg_http_guard sg_http_guard_t;
typedef void (*sg_http_guard_free_cb)(sg_http_guard_t *g);

struct sg_http_guard {
    h2o_req_t *req; /* NULL once h2o released the request */
    int _refs;
    sg_http_guard_free_cb _free;
};

/*
 * Allocates size bytes (>= sizeof(sg_http_guard_t), the guard first) zeroed, bound
 * to req, with two references: the request's and the caller's. free_cb (may be NULL)
 * releases what the embedding struct owns; the memory itself is freed after it.
 */
void *sg_http_guard_new(h2o_req_t *req, size_t size, sg_http_guard_free_cb free_cb);
void sg_http_guard_ref(sg_http_guard_t *g);
void sg_http_guard_unref(sg_http_guard_t *g);

#endif
