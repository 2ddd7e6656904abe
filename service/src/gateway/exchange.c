/* SPDX-License-Identifier: Apache-2.0 */
/* The answer channel to an agent: JSON or SSE, one send in flight (see exchange.h). */
#include "gateway/exchange.h"

#include <stdlib.h>

#include "base/mem.h"
#include "core/tenant.h"
#include "io/http_reply.h"

#define KEEPALIVE_MS 15000

typedef struct req_link {
    sg_exchange_t *ex;
} req_link_t;

static void on_req_disposed(void *p)
{
    req_link_t *link = p;
    sg_exchange_t *ex = link->ex;
    ex->req = NULL;
    sg_timer_stop(&ex->keepalive);
    sg_exchange_unref(ex);
}

sg_exchange_t *sg_exchange_new(h2o_req_t *req, sg_loop_t *loop, bool sse_allowed)
{
    sg_exchange_t *ex = sg_xcalloc(1, sizeof(*ex));
    ex->refs = 1;
    ex->req = req;
    ex->loop = loop;
    ex->sse_allowed = sse_allowed;
    req_link_t *link = h2o_mem_alloc_shared(&req->pool, sizeof(*link), on_req_disposed);
    link->ex = ex;
    return ex;
}

sg_exchange_t *sg_exchange_new_member(sg_batch_t *b, sg_loop_t *loop)
{
    sg_exchange_t *ex = sg_xcalloc(1, sizeof(*ex));
    ex->refs = 1;
    ex->loop = loop;
    ex->batch = b;
    b->pending++;
    sg_http_guard_ref(&b->guard);
    return ex;
}

void sg_batch_add(sg_batch_t *b, sg_str_t json)
{
    if (b->answers++ != 0) {
        sg_buf_append_char(&b->out, ',');
    }
    sg_buf_append_str(&b->out, json);
}

void sg_batch_done(sg_batch_t *b)
{
    if (--b->pending != 0 || b->guard.req == NULL) {
        return;
    }
    if (b->answers == 0) {
        sg_http_reply(b->guard.req, 202, NULL, SG_STR_NULL);
        return;
    }
    sg_buf_append_char(&b->out, ']');
    sg_http_reply_json(b->guard.req, 200, sg_buf_str(&b->out));
}

void sg_exchange_ref(sg_exchange_t *ex)
{
    ex->refs++;
}

void sg_exchange_unref(sg_exchange_t *ex)
{
    if (--ex->refs > 0) {
        return;
    }
    sg_timer_stop(&ex->keepalive);
    for (size_t i = 0; i < ex->nsubs; i++) {
        free(ex->subs[i].response);
    }
    free(ex->subs);
    if (ex->ctx_free != NULL) {
        ex->ctx_free(ex->ctx);
    } else {
        free(ex->ctx);
    }
    sg_buf_dispose(&ex->queue);
    sg_buf_dispose(&ex->inflight);
    sg_tenant_unref(ex->snap);
    free((char *)ex->record.tool);
    free(ex->record.findings);
    free(ex->body);
    if (ex->batch != NULL) {
        sg_http_guard_unref(&ex->batch->guard);
    }
    free(ex);
}

static void flush(sg_exchange_t *ex);

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    sg_exchange_t *ex = SG_CONTAINER_OF(gen, sg_exchange_t, gen);
    ex->sending = false;
    sg_buf_reset(&ex->inflight);
    flush(ex);
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    (void)req;
    sg_exchange_t *ex = SG_CONTAINER_OF(gen, sg_exchange_t, gen);
    ex->sending = false;
    sg_timer_stop(&ex->keepalive);
}

static void flush(sg_exchange_t *ex)
{
    if (ex->req == NULL || ex->sending || !ex->streaming) {
        return;
    }
    bool final = ex->finished;
    if (ex->queue.len == 0 && !final) {
        return;
    }
    /* swap the queue into the in-flight buffer: it must stay put until proceed */
    sg_buf_t tmp = ex->inflight;
    ex->inflight = ex->queue;
    ex->queue = tmp;
    sg_buf_reset(&ex->queue);
    h2o_iovec_t vec = h2o_iovec_init(ex->inflight.data, ex->inflight.len);
    ex->sending = !final;
    if (final) {
        sg_timer_stop(&ex->keepalive);
    }
    h2o_send(ex->req, &vec, ex->inflight.len != 0 ? 1 : 0,
             final ? H2O_SEND_STATE_FINAL : H2O_SEND_STATE_IN_PROGRESS);
}

static void on_keepalive(sg_timer_t *t)
{
    sg_exchange_t *ex = SG_CONTAINER_OF(t, sg_exchange_t, keepalive);
    if (ex->req == NULL || ex->finished) {
        return;
    }
    sg_buf_append_cstr(&ex->queue, ": keepalive\n\n");
    flush(ex);
    sg_timer_start(ex->loop, &ex->keepalive, KEEPALIVE_MS, on_keepalive);
}

void sg_exchange_start_stream(sg_exchange_t *ex)
{
    if (ex->streaming || ex->req == NULL || ex->finished) {
        return;
    }
    h2o_req_t *req = ex->req;
    ex->streaming = true;
    ex->gen.proceed = on_proceed;
    ex->gen.stop = on_stop;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL,
                   H2O_STRLIT("text/event-stream"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL,
                   H2O_STRLIT("no-cache"));
    sg_http_add_header(req, "x-accel-buffering", SG_STR_LIT("no"));
    h2o_start_response(req, &ex->gen);
    /* a comment flushes the headers so the agent sees the stream open */
    sg_buf_append_cstr(&ex->queue, ": stream open\n\n");
    flush(ex);
    sg_timer_start(ex->loop, &ex->keepalive, KEEPALIVE_MS, on_keepalive);
}

static void queue_event(sg_exchange_t *ex, sg_str_t json)
{
    sg_buf_append_cstr(&ex->queue, "event: message\ndata: ");
    sg_buf_append_str(&ex->queue, json);
    sg_buf_append_cstr(&ex->queue, "\n\n");
}

void sg_exchange_send_interim(sg_exchange_t *ex, sg_str_t json)
{
    if (ex->req == NULL || ex->finished || !ex->sse_allowed) {
        return;
    }
    sg_exchange_start_stream(ex);
    queue_event(ex, json);
    flush(ex);
}

void sg_exchange_finish(sg_exchange_t *ex, sg_str_t json)
{
    if (ex->finished) {
        return;
    }
    if (ex->batch != NULL) {
        ex->finished = true;
        sg_batch_add(ex->batch, json);
        sg_batch_done(ex->batch);
        return;
    }
    if (ex->req == NULL) {
        ex->finished = true;
        return;
    }
    if (!ex->streaming) {
        ex->finished = true;
        sg_http_reply_json(ex->req, 200, json);
        return;
    }
    queue_event(ex, json);
    ex->finished = true;
    flush(ex);
}

void sg_exchange_end_stream(sg_exchange_t *ex)
{
    if (ex->finished) {
        return;
    }
    ex->finished = true;
    if (ex->req != NULL && ex->streaming) {
        flush(ex);
    }
}
