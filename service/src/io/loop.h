/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The event loop: h2o's evloop plus what every async module needs on it —
 * timers of any duration (h2o keeps one queue per fixed duration; we cache
 * them here), deferred calls (run on a later loop turn, never re-entrant), and
 * watchers for foreign file descriptors (hiredis, libpq, child pipes).
 *
 * One loop per thread; nothing on it may block.
 */
#ifndef SG_IO_LOOP_H
#define SG_IO_LOOP_H

#include <h2o.h>

#include "base/err.h"
#include "base/sg.h"

typedef struct sg_loop sg_loop_t;

/* A new loop; the caller owns it. */
sg_loop_t *sg_loop_new(void);
/* Frees the loop; every timer and watcher must be stopped/disposed first. NULL is a no-op. */
void sg_loop_free(sg_loop_t *loop);
h2o_evloop_t *sg_loop_h2o(sg_loop_t *loop);
/* Runs one iteration, waiting at most max_wait_ms for events. Returns h2o's result (0 ok). */
int sg_loop_run_once(sg_loop_t *loop, int32_t max_wait_ms);
/* The loop's cached wall-clock milliseconds (h2o_now). */
uint64_t sg_loop_now(sg_loop_t *loop);
/*
 * The timeout queue for a duration in milliseconds, created on first use and
 * owned by the loop (h2o needs one queue per distinct duration, and walks every
 * queue on each turn: callers keep the number of distinct durations small, e.g.
 * by rounding configured timeouts).
 */
h2o_timeout_t *sg_loop_timeout_queue(sg_loop_t *loop, uint64_t ms);

/* ---- timers ---- */

typedef struct sg_timer sg_timer_t;
typedef void (*sg_timer_cb)(sg_timer_t *t);

/* Embed in the owner; recover it with SG_CONTAINER_OF. Zero-initialised is stopped. */
struct sg_timer {
    h2o_timeout_entry_t _entry;
    sg_timer_cb _cb;
};

/* (Re)starts the timer: cb fires once after ms (0 = next loop turn). */
void sg_timer_start(sg_loop_t *loop, sg_timer_t *t, uint64_t ms, sg_timer_cb cb);
/* Stops the timer; a no-op if it is not running. */
void sg_timer_stop(sg_timer_t *t);
bool sg_timer_is_active(const sg_timer_t *t);

/* ---- foreign file descriptors ---- */

typedef struct sg_watch sg_watch_t;
typedef void (*sg_watch_cb)(sg_watch_t *w);

/*
 * Readiness of a file descriptor owned by someone else (a library). The watch
 * wraps a dup() of the fd, so closing the watch never closes the library's fd.
 * Read interest is level-triggered (the callback must drain the fd); write
 * interest fires once per sg_watch_want_write(true) and is re-armed as needed.
 */
struct sg_watch {
    h2o_socket_t *_sock;
    sg_watch_cb _on_read;
    sg_watch_cb _on_write;
    bool _want_write;
    bool _write_armed;
    int _fd; /* the library's fd, not the dup */
};

/* Starts watching fd (not yet reading). Returns SG_OK or SG_EIO. */
int sg_watch_init(sg_watch_t *w, sg_loop_t *loop, int fd, sg_watch_cb on_read,
                  sg_watch_cb on_write) SG_MUSTCHECK;
void sg_watch_want_read(sg_watch_t *w, bool on);
void sg_watch_want_write(sg_watch_t *w, bool on);
/* Stops watching and closes the dup. Idempotent. */
void sg_watch_dispose(sg_watch_t *w);
static inline bool sg_watch_is_active(const sg_watch_t *w)
{
    return w->_sock != NULL;
}
static inline int sg_watch_fd(const sg_watch_t *w)
{
    return w->_fd;
}

#endif
