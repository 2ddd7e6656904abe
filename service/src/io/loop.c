/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Owns the evloop, its cache of timeout queues, and the fd watcher adapter
 * (dup + DONT_READ + two-bit write arming, STACK-NOTES §4.1).
 */
#include "io/loop.h"

#include <fcntl.h>
#include <unistd.h>

#include "base/mem.h"

/* One h2o timeout queue per distinct duration; allocated one by one because h2o links
 * entries to the queue itself, so a queue must never move. */
typedef struct queue {
    uint64_t ms;
    h2o_timeout_t queue;
} queue_t;

struct sg_loop {
    h2o_evloop_t *evloop;
    size_t nqueues;
    queue_t **queues;
};

sg_loop_t *sg_loop_new(void)
{
    sg_loop_t *loop = sg_xcalloc(1, sizeof(*loop));
    loop->evloop = h2o_evloop_create();
    return loop;
}

void sg_loop_free(sg_loop_t *loop)
{
    if (loop == NULL) {
        return;
    }
    for (size_t i = 0; i < loop->nqueues; i++) {
        /* entries still linked are a bug of their owner; unlink to keep h2o's assert happy */
        while (!h2o_linklist_is_empty(&loop->queues[i]->queue._entries)) {
            h2o_timeout_entry_t *e = H2O_STRUCT_FROM_MEMBER(h2o_timeout_entry_t, _link,
                                                            loop->queues[i]->queue._entries.next);
            h2o_timeout_unlink(e);
        }
        h2o_timeout_dispose(loop->evloop, &loop->queues[i]->queue);
    }
    /* let h2o free sockets disposed during the last iteration */
    h2o_evloop_run(loop->evloop, 0);
    h2o_evloop_destroy(loop->evloop);
    for (size_t i = 0; i < loop->nqueues; i++) {
        free(loop->queues[i]);
    }
    free(loop->queues);
    free(loop);
}

h2o_evloop_t *sg_loop_h2o(sg_loop_t *loop)
{
    return loop->evloop;
}

int sg_loop_run_once(sg_loop_t *loop, int32_t max_wait_ms)
{
    return h2o_evloop_run(loop->evloop, max_wait_ms);
}

uint64_t sg_loop_now(sg_loop_t *loop)
{
    return h2o_now(loop->evloop);
}

h2o_timeout_t *sg_loop_timeout_queue(sg_loop_t *loop, uint64_t ms)
{
    for (size_t i = 0; i < loop->nqueues; i++) {
        if (loop->queues[i]->ms == ms) {
            return &loop->queues[i]->queue;
        }
    }
    loop->queues = sg_xrealloc(loop->queues, (loop->nqueues + 1) * sizeof(*loop->queues));
    queue_t *q = sg_xcalloc(1, sizeof(*q));
    q->ms = ms;
    h2o_timeout_init(loop->evloop, &q->queue, ms);
    loop->queues[loop->nqueues++] = q;
    return &q->queue;
}

/* ---- timers ---- */

static void on_timer_entry(h2o_timeout_entry_t *entry)
{
    sg_timer_t *t = SG_CONTAINER_OF(entry, sg_timer_t, _entry);
    t->_cb(t);
}

void sg_timer_start(sg_loop_t *loop, sg_timer_t *t, uint64_t ms, sg_timer_cb cb)
{
    sg_timer_stop(t);
    t->_cb = cb;
    t->_entry.cb = on_timer_entry;
    h2o_timeout_link(loop->evloop, sg_loop_timeout_queue(loop, ms), &t->_entry);
}

void sg_timer_stop(sg_timer_t *t)
{
    if (h2o_timeout_is_linked(&t->_entry)) {
        h2o_timeout_unlink(&t->_entry);
    }
}

bool sg_timer_is_active(const sg_timer_t *t)
{
    return h2o_timeout_is_linked((h2o_timeout_entry_t *)&t->_entry);
}

/* ---- watchers ---- */

static void on_sock_read(h2o_socket_t *sock, const char *err)
{
    (void)err;
    sg_watch_t *w = sock->data;
    if (w != NULL && w->_on_read != NULL) {
        w->_on_read(w);
    }
}

static void on_sock_write(h2o_socket_t *sock, const char *err)
{
    (void)err;
    sg_watch_t *w = sock->data;
    if (w == NULL) {
        return;
    }
    w->_write_armed = false;
    if (w->_want_write && w->_on_write != NULL) {
        w->_want_write = false;
        w->_on_write(w);
    }
}

int sg_watch_init(sg_watch_t *w, sg_loop_t *loop, int fd, sg_watch_cb on_read, sg_watch_cb on_write)
{
    memset(w, 0, sizeof(*w));
    /* close-on-exec: a spawned child must not inherit the library's socket */
    int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (d < 0) {
        return SG_EIO;
    }
    w->_sock = h2o_evloop_socket_create(loop->evloop, d, H2O_SOCKET_FLAG_DONT_READ);
    w->_sock->data = w;
    w->_on_read = on_read;
    w->_on_write = on_write;
    w->_fd = fd;
    return SG_OK;
}

void sg_watch_want_read(sg_watch_t *w, bool on)
{
    if (w->_sock == NULL) {
        return;
    }
    if (on && !h2o_socket_is_reading(w->_sock)) {
        h2o_socket_read_start(w->_sock, on_sock_read);
    } else if (!on && h2o_socket_is_reading(w->_sock)) {
        h2o_socket_read_stop(w->_sock);
    }
}

void sg_watch_want_write(sg_watch_t *w, bool on)
{
    if (w->_sock == NULL) {
        return;
    }
    w->_want_write = on;
    if (on && !w->_write_armed) {
        w->_write_armed = true;
        h2o_socket_notify_write(w->_sock, on_sock_write);
    }
}

void sg_watch_dispose(sg_watch_t *w)
{
    if (w->_sock == NULL) {
        return;
    }
    w->_sock->data = NULL;
    if (h2o_socket_is_reading(w->_sock)) {
        h2o_socket_read_stop(w->_sock);
    }
    h2o_socket_close(w->_sock);
    w->_sock = NULL;
    w->_want_write = false;
    w->_write_armed = false;
}
