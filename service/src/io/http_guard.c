/* SPDX-License-Identifier: Apache-2.0 */
#include "io/http_guard.h"

#include <stdlib.h>

#include "base/mem.h"

typedef struct link {
    sg_http_guard_t *g;
} link_t;

static void on_disposed(void *p)
{
    link_t *l = p;
    l->g->req = NULL;
    sg_http_guard_unref(l->g);
}

void *sg_http_guard_new(h2o_req_t *req, size_t size, sg_http_guard_free_cb free_cb)
{
    SG_BUG_ON(size < sizeof(sg_http_guard_t));
    sg_http_guard_t *g = sg_xcalloc(1, size);
    g->req = req;
    g->_refs = 2;
    g->_free = free_cb;
    link_t *l = h2o_mem_alloc_shared(&req->pool, sizeof(*l), on_disposed);
    l->g = g;
    return g;
}

void sg_http_guard_ref(sg_http_guard_t *g)
{
    g->_refs++;
}

void sg_http_guard_unref(sg_http_guard_t *g)
{
    if (--g->_refs > 0) {
        return;
    }
    if (g->_free != NULL) {
        g->_free(g);
    }
    free(g);
}
