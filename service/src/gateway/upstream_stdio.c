/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stdio transport (MCP-NOTES §4): one child process per upstream session,
 * newline-delimited JSON-RPC on its stdin and stdout, free-form logging on its
 * stderr. io/child spawns and reaps the process; the pipes are sg_watch_t on
 * the loop.
 *
 * Invariants:
 * - Events come only from loop callbacks (pipe readiness, child exit, timers),
 *   never from start/send/stop/forget/free. A callback may call back into the
 *   transport, free() included: `depth` counts the loop callbacks on the stack
 *   and `freed` defers the release of the struct until the outermost returns;
 *   after every event the caller checks `freed` and unwinds at once.
 * - on_down is the last thing done for a child: everything of that child is
 *   torn down first, so the owner may start() again from inside on_down.
 * - An idle pipe is never left registered on the loop: h2o's epoll reports
 *   EPOLLERR/EPOLLHUP even without interest, so stdout/stderr are disposed on
 *   EOF and the stdin watch exists only while a write is pending.
 * - Unread stdout is bounded by max_line (over-long lines are dropped, not
 *   fatal), unwritten stdin by max_queue (send() says SG_EBUSY).
 *
 * Beyond transport.h: start() reports a spawn failure only through its return
 * value (SG_ENOTFOUND, SG_EIO; no on_down follows) and says SG_EBUSY unless
 * down; stop() on a transport that is not running does nothing; send() says
 * SG_EBUSY when max_queue bytes already wait for the child's stdin. on_down
 * fires when the child has been reaped; a child that closes its stdout is
 * stopped as by stop() and reported when it exits.
 *
 * Created by the upstream module (gateway/upstream.c), which restarts it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/buf.h"
#include "base/log.h"
#include "base/mem.h"
#include "gateway/transport.h"
#include "io/child.h"

#define DEFAULT_MAX_LINE   ((size_t)16 * 1024 * 1024)
#define MIN_MAX_QUEUE      ((size_t)64 * 1024 * 1024)
#define TERM_AFTER_MS      2000 /* after stop(): SIGTERM to the group */
#define KILL_AFTER_MS      5000 /* after stop(): SIGKILL to the group */
#define READ_CHUNK         ((size_t)64 * 1024)
#define READS_PER_EVENT    16 /* bound the work of one readiness callback */
#define STDERR_LINE_MAX    1024
#define STDERR_LINES_PER_S 50
#define SHRINK_ABOVE       ((size_t)1024 * 1024) /* release an empty buffer larger than this */

typedef enum sg_stdio_state {
    SG_STDIO_IDLE = 0, /* not started, or down: start() may be called */
    SG_STDIO_RUNNING,  /* child spawned: send() accepted */
    SG_STDIO_STOPPING, /* stop() called or stdout closed: waiting for the child to exit */
} sg_stdio_state_t;

static const char *const state_names[] = { "idle", "running", "stopping" };

typedef struct sg_stdio {
    sg_transport_t base;
    char *command;
    char **argv; /* NULL-terminated; argv[0] is the command */
    char **envp; /* NULL-terminated: PATH, HOME, LANG of the gate, then spec->env */
    char *cwd;   /* NULL = the gate's */
    size_t max_line;
    size_t max_queue;
    sg_log_ctx_t log;
    sg_stdio_state_t state;
    sg_child_t *child;
    sg_watch_t out_w, err_w, in_w;
    sg_buf_t out, err, inq; /* stdout and stderr not yet framed; stdin not yet written */
    bool out_skip;          /* dropping the rest of an over-long stdout line */
    bool err_skip;          /* dropping the rest of a stderr line already logged truncated */
    bool close_when_flushed;
    sg_timer_t ready_timer, term_timer, kill_timer;
    uint64_t err_window_ms; /* start of the current one-second stderr window */
    unsigned err_lines;     /* stderr lines logged in that window */
    uint64_t err_dropped;   /* stderr lines not logged since the last notice */
    unsigned depth;         /* loop callbacks of this transport on the stack */
    bool freed;
} sg_stdio_t;

static const char *tname(const sg_stdio_t *t)
{
    return t->base.name != NULL ? t->base.name : "?";
}

static void set_state(sg_stdio_t *t, sg_stdio_state_t s)
{
    bool legal = (t->state == SG_STDIO_IDLE && s == SG_STDIO_RUNNING) ||
                 (t->state == SG_STDIO_RUNNING && s != SG_STDIO_RUNNING) ||
                 (t->state == SG_STDIO_STOPPING && s == SG_STDIO_IDLE);
    SG_BUG_ON(!legal);
    SG_LOG_DEBUG(&t->log, "%s: %s -> %s", tname(t), state_names[t->state], state_names[s]);
    t->state = s;
}

/* ---- spec copy and environment ---- */

static bool spec_defines(const sg_stdio_spec_t *spec, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < spec->nenv; i++) {
        if (strncmp(spec->env[i], name, n) == 0 && spec->env[i][n] == '=') {
            return true;
        }
    }
    return false;
}

static char **build_env(sg_stdio_t *t, const sg_stdio_spec_t *spec)
{
    static const char *const inherited[] = { "PATH", "HOME", "LANG" };
    char **envp = sg_xcalloc(SG_ARRAY_LEN(inherited) + spec->nenv + 1, sizeof(*envp));
    size_t n = 0;
    for (size_t i = 0; i < SG_ARRAY_LEN(inherited); i++) {
        const char *v = getenv(inherited[i]);
        if (v != NULL && !spec_defines(spec, inherited[i])) {
            size_t len = strlen(inherited[i]) + 1 + strlen(v) + 1;
            envp[n] = sg_xmalloc(len);
            snprintf(envp[n++], len, "%s=%s", inherited[i], v);
        }
    }
    for (size_t i = 0; i < spec->nenv; i++) {
        const char *eq = strchr(spec->env[i], '=');
        if (eq == NULL || eq == spec->env[i]) {
            SG_LOG_WARN(&t->log, "%s: environment entry %zu is not KEY=VALUE: skipped", tname(t),
                        i);
            continue;
        }
        envp[n++] = sg_xstrdup(spec->env[i]);
    }
    envp[n] = NULL;
    return envp;
}

static void free_strv(char **v)
{
    for (size_t i = 0; v != NULL && v[i] != NULL; i++) {
        free(v[i]);
    }
    free(v);
}

static void copy_spec(sg_stdio_t *t, const sg_stdio_spec_t *spec)
{
    t->command = sg_xstrdup(spec->command);
    t->argv = sg_xcalloc(spec->nargs + 2, sizeof(*t->argv));
    t->argv[0] = sg_xstrdup(spec->command);
    for (size_t i = 0; i < spec->nargs; i++) {
        t->argv[i + 1] = sg_xstrdup(spec->args[i]);
    }
    t->envp = build_env(t, spec);
    t->cwd = spec->cwd != NULL ? sg_xstrdup(spec->cwd) : NULL;
    t->max_line = spec->max_line != 0 ? spec->max_line : DEFAULT_MAX_LINE;
    t->max_queue = SG_MAX(MIN_MAX_QUEUE, 4 * t->max_line);
}

/* ---- event delivery and lifetime ---- */

static void destroy(sg_stdio_t *t)
{
    free(t->command);
    free_strv(t->argv);
    free_strv(t->envp);
    free(t->cwd);
    free(t);
}

static void enter(sg_stdio_t *t)
{
    t->depth++;
}

static void leave(sg_stdio_t *t)
{
    t->depth--;
    if (t->freed && t->depth == 0) {
        destroy(t);
    }
}

/* Releases everything of the current child (which io/child kills if needed and reaps). */
static void teardown_child(sg_stdio_t *t)
{
    sg_timer_stop(&t->ready_timer);
    sg_timer_stop(&t->term_timer);
    sg_timer_stop(&t->kill_timer);
    sg_watch_dispose(&t->in_w);
    sg_watch_dispose(&t->out_w);
    sg_watch_dispose(&t->err_w);
    sg_child_free(t->child);
    t->child = NULL;
    sg_buf_dispose(&t->out);
    sg_buf_dispose(&t->err);
    sg_buf_dispose(&t->inq);
    t->out_skip = false;
    t->err_skip = false;
    t->close_when_flushed = false;
}

/* Delivers one message; false when the owner freed the transport meanwhile. */
static bool emit_message(sg_stdio_t *t, sg_str_t json)
{
    t->base.events->on_message(t->base.owner, json, NULL);
    return !t->freed;
}

static void shrink(sg_buf_t *b)
{
    if (b->len == b->off && b->cap > SHRINK_ABOVE) {
        sg_buf_dispose(b);
    }
}

/*
 * Reads once from fd into b; returns the number of bytes appended. Sets *eof on
 * end of file or a read error (both end the stream).
 */
static size_t read_some(int fd, sg_buf_t *b, bool *eof)
{
    sg_buf_reserve(b, READ_CHUNK);
    size_t room = b->cap - b->len - 1;
    ssize_t n;
    do {
        n = read(fd, b->data + b->len, room);
    } while (n < 0 && errno == EINTR);
    if (n > 0) {
        b->len += (size_t)n;
        b->data[b->len] = '\0';
        return (size_t)n;
    }
    if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        *eof = true;
    }
    return 0;
}

/* ---- stdin: the write queue ---- */

static void close_stdin(sg_stdio_t *t)
{
    sg_watch_dispose(&t->in_w);
    sg_child_close_fd(t->child, SG_CHILD_STDIN);
    sg_buf_dispose(&t->inq);
    t->close_when_flushed = false;
}

static void begin_stopping(sg_stdio_t *t);
static void flush_stdin(sg_stdio_t *t);

static void on_stdin_writable(sg_watch_t *w)
{
    flush_stdin(SG_CONTAINER_OF(w, sg_stdio_t, in_w));
}

/* Waits for the pipe to take more; false (stdin closed) when the loop cannot watch it. */
static bool arm_stdin(sg_stdio_t *t)
{
    if (!sg_watch_is_active(&t->in_w)) {
        int fd = sg_child_fd(t->child, SG_CHILD_STDIN);
        if (sg_watch_init(&t->in_w, t->base.loop, fd, NULL, on_stdin_writable) != SG_OK) {
            return false;
        }
    }
    sg_watch_want_write(&t->in_w, true);
    return true;
}

static void stdin_broken(sg_stdio_t *t, const char *why)
{
    SG_LOG_INFO(&t->log, "%s: cannot write to the upstream's stdin (%s)", tname(t), why);
    close_stdin(t);
    if (t->state == SG_STDIO_RUNNING) {
        begin_stopping(t);
    }
}

static void flush_stdin(sg_stdio_t *t)
{
    int fd = sg_child_fd(t->child, SG_CHILD_STDIN);
    while (t->inq.len > t->inq.off) {
        ssize_t n = write(fd, t->inq.data + t->inq.off, t->inq.len - t->inq.off);
        if (n > 0) {
            sg_buf_consume(&t->inq, (size_t)n);
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (!arm_stdin(t)) {
                stdin_broken(t, "cannot watch the pipe");
            }
            return;
        } else {
            stdin_broken(t, n < 0 ? strerror(errno) : "short write");
            return;
        }
    }
    sg_watch_dispose(&t->in_w);
    shrink(&t->inq);
    if (t->close_when_flushed) {
        close_stdin(t);
    }
}

/* Copies json and a newline to the queue; raw CR/LF (only valid as JSON whitespace) become spaces.
 */
static void enqueue(sg_stdio_t *t, sg_str_t json)
{
    sg_buf_t *q = &t->inq;
    if (q->off > 0 && q->off >= q->len - q->off) {
        sg_buf_compact(q);
    }
    size_t at = q->len;
    sg_buf_append_str(q, json);
    sg_buf_append_char(q, '\n');
    char *p = q->data + at;
    char *end = q->data + q->len - 1;
    while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        *p = ' ';
    }
    for (p = q->data + at; (p = memchr(p, '\r', (size_t)(end - p))) != NULL;) {
        *p = ' ';
    }
}

/* ---- stdout: framing ---- */

static bool is_blank(sg_str_t s)
{
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] != ' ' && s.ptr[i] != '\t' && s.ptr[i] != '\r') {
            return false;
        }
    }
    return true;
}

static bool handle_line(sg_stdio_t *t, sg_str_t line)
{
    if (line.len > t->max_line) {
        SG_LOG_WARN(&t->log, "%s: stdout line of %zu bytes over the limit of %zu: discarded",
                    tname(t), line.len, t->max_line);
        return true;
    }
    if (is_blank(line)) {
        return true;
    }
    return emit_message(t, line);
}

/* A partial line already over the limit is dropped now; the rest of it is skipped as it comes. */
static void check_partial(sg_stdio_t *t)
{
    sg_buf_t *b = &t->out;
    if (b->len - b->off > t->max_line) {
        SG_LOG_WARN(&t->log, "%s: stdout line over the limit of %zu bytes: discarded", tname(t),
                    t->max_line);
        sg_buf_dispose(b);
        t->out_skip = true;
    }
}

/* Frames the n bytes just read; false when the owner freed the transport. */
static bool take_stdout(sg_stdio_t *t, size_t n)
{
    sg_buf_t *b = &t->out;
    const char *nl = memchr(b->data + b->len - n, '\n', n);
    if (t->out_skip) {
        if (nl == NULL) {
            sg_buf_reset(b);
            return true;
        }
        sg_buf_consume(b, (size_t)(nl - (b->data + b->off)) + 1);
        t->out_skip = false;
    } else if (nl == NULL) {
        check_partial(t);
        return true;
    }
    sg_str_t line;
    while (sg_buf_take_line(b, &line)) {
        if (!handle_line(t, line)) {
            return false;
        }
    }
    check_partial(t);
    sg_buf_compact(b);
    shrink(b);
    return true;
}

/* stdout is over: a last line without '\n' still counts. False when freed. */
static bool stdout_eof(sg_stdio_t *t)
{
    sg_buf_t *b = &t->out;
    if (!t->out_skip && b->len > b->off) {
        sg_str_t rest = sg_buf_str(b);
        sg_buf_consume(b, rest.len);
        if (!handle_line(t, rest)) {
            return false;
        }
    }
    sg_watch_dispose(&t->out_w);
    sg_child_close_fd(t->child, SG_CHILD_STDOUT);
    sg_buf_dispose(b);
    if (t->state == SG_STDIO_RUNNING && !sg_child_has_exited(t->child)) {
        SG_LOG_INFO(&t->log, "%s: upstream closed its stdout", tname(t));
        begin_stopping(t);
    }
    return true;
}

/* Reads and delivers what stdout has (bounded); false when the owner freed the transport. */
static bool pump_stdout(sg_stdio_t *t)
{
    for (int i = 0; i < READS_PER_EVENT && sg_watch_is_active(&t->out_w); i++) {
        bool eof = false;
        size_t n = read_some(sg_child_fd(t->child, SG_CHILD_STDOUT), &t->out, &eof);
        if (n > 0 && !take_stdout(t, n)) {
            return false;
        }
        if (eof) {
            return stdout_eof(t);
        }
        if (n == 0) {
            break;
        }
    }
    return true;
}

static void on_stdout(sg_watch_t *w)
{
    sg_stdio_t *t = SG_CONTAINER_OF(w, sg_stdio_t, out_w);
    enter(t);
    pump_stdout(t);
    leave(t);
}

/* ---- stderr: rate-limited logging ---- */

static void log_stderr_line(sg_stdio_t *t, sg_str_t line, bool truncated)
{
    if (is_blank(line)) {
        return;
    }
    uint64_t now = sg_loop_now(t->base.loop);
    if (now - t->err_window_ms >= 1000) {
        if (t->err_dropped != 0) {
            SG_LOG_INFO(&t->log, "%s: %llu stderr lines not logged (over %d/s)", tname(t),
                        (unsigned long long)t->err_dropped, STDERR_LINES_PER_S);
        }
        t->err_window_ms = now;
        t->err_lines = 0;
        t->err_dropped = 0;
    }
    if (t->err_lines >= STDERR_LINES_PER_S) {
        t->err_dropped++;
        return;
    }
    t->err_lines++;
    char text[STDERR_LINE_MAX + 1];
    size_t n = SG_MIN(line.len, (size_t)STDERR_LINE_MAX);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)line.ptr[i];
        if (ch == '\t') {
            ch = ' ';
        } else if (ch < 0x20 || ch == 0x7f) {
            ch = '?';
        }
        text[i] = (char)ch;
    }
    text[n] = '\0';
    truncated = truncated || line.len > n;
    SG_LOG_INFO(&t->log, "%s: stderr: %s%s", tname(t), text, truncated ? " [truncated]" : "");
}

static void take_stderr(sg_stdio_t *t)
{
    sg_buf_t *b = &t->err;
    sg_str_t line;
    while (sg_buf_take_line(b, &line)) {
        if (t->err_skip) {
            t->err_skip = false; /* the tail of a line already logged */
            continue;
        }
        log_stderr_line(t, line, false);
    }
    if (b->len - b->off > STDERR_LINE_MAX) {
        if (!t->err_skip) {
            log_stderr_line(t, sg_buf_str(b), true);
        }
        t->err_skip = true;
        sg_buf_reset(b);
    }
    sg_buf_compact(b);
}

static void pump_stderr(sg_stdio_t *t)
{
    for (int i = 0; i < READS_PER_EVENT && sg_watch_is_active(&t->err_w); i++) {
        bool eof = false;
        size_t n = read_some(sg_child_fd(t->child, SG_CHILD_STDERR), &t->err, &eof);
        if (n > 0) {
            take_stderr(t);
        }
        if (eof) {
            if (!t->err_skip && t->err.len > t->err.off) {
                log_stderr_line(t, sg_buf_str(&t->err), false);
            }
            sg_watch_dispose(&t->err_w);
            sg_child_close_fd(t->child, SG_CHILD_STDERR);
            sg_buf_dispose(&t->err);
            return;
        }
        if (n == 0) {
            return;
        }
    }
}

static void on_stderr(sg_watch_t *w)
{
    pump_stderr(SG_CONTAINER_OF(w, sg_stdio_t, err_w));
}

/* ---- the child's life ---- */

static void on_term_timer(sg_timer_t *tm)
{
    sg_stdio_t *t = SG_CONTAINER_OF(tm, sg_stdio_t, term_timer);
    SG_LOG_INFO(&t->log, "%s: upstream still running %d ms after stdin closed: SIGTERM", tname(t),
                TERM_AFTER_MS);
    (void)sg_child_kill(t->child, SIGTERM);
}

static void on_kill_timer(sg_timer_t *tm)
{
    sg_stdio_t *t = SG_CONTAINER_OF(tm, sg_stdio_t, kill_timer);
    SG_LOG_WARN(&t->log, "%s: upstream still running %d ms after stdin closed: SIGKILL", tname(t),
                KILL_AFTER_MS);
    (void)sg_child_kill(t->child, SIGKILL);
}

/* Closes stdin once the queue is written, then escalates to SIGTERM and SIGKILL. */
static void begin_stopping(sg_stdio_t *t)
{
    set_state(t, SG_STDIO_STOPPING);
    if (t->inq.len == t->inq.off) {
        close_stdin(t);
    } else {
        t->close_when_flushed = true;
    }
    sg_timer_start(t->base.loop, &t->term_timer, TERM_AFTER_MS, on_term_timer);
    sg_timer_start(t->base.loop, &t->kill_timer, KILL_AFTER_MS, on_kill_timer);
    sg_child_expect_exit(t->child);
}

static void go_down(sg_stdio_t *t, int wstatus)
{
    char reason[64];
    sg_child_format_status(wstatus, reason, sizeof(reason));
    SG_LOG_INFO(&t->log, "%s: upstream pid %d %s", tname(t), (int)sg_child_pid(t->child), reason);
    if (t->err_dropped != 0) {
        SG_LOG_INFO(&t->log, "%s: %llu stderr lines not logged (over %d/s)", tname(t),
                    (unsigned long long)t->err_dropped, STDERR_LINES_PER_S);
        t->err_dropped = 0;
    }
    teardown_child(t);
    set_state(t, SG_STDIO_IDLE);
    t->base.events->on_down(t->base.owner, reason);
}

static void on_child_exit(sg_child_t *c, int wstatus, void *data)
{
    sg_stdio_t *t = data;
    (void)c;
    enter(t);
    /* what the child wrote before it died is still in the pipes */
    pump_stderr(t);
    if (pump_stdout(t)) {
        go_down(t, wstatus);
    }
    leave(t);
}

static void on_ready_timer(sg_timer_t *tm)
{
    sg_stdio_t *t = SG_CONTAINER_OF(tm, sg_stdio_t, ready_timer);
    if (t->state != SG_STDIO_RUNNING) {
        return;
    }
    enter(t);
    t->base.events->on_ready(t->base.owner);
    leave(t);
}

/* ---- operations ---- */

static int watch_outputs(sg_stdio_t *t)
{
    sg_loop_t *loop = t->base.loop;
    if (sg_watch_init(&t->out_w, loop, sg_child_fd(t->child, SG_CHILD_STDOUT), on_stdout, NULL) !=
                SG_OK ||
        sg_watch_init(&t->err_w, loop, sg_child_fd(t->child, SG_CHILD_STDERR), on_stderr, NULL) !=
                SG_OK) {
        return SG_EIO;
    }
    sg_watch_want_read(&t->out_w, true);
    sg_watch_want_read(&t->err_w, true);
    return SG_OK;
}

static int stdio_start(sg_transport_t *base)
{
    sg_stdio_t *t = SG_CONTAINER_OF(base, sg_stdio_t, base);
    if (t->state != SG_STDIO_IDLE) {
        return SG_EBUSY;
    }
    sg_error_t err;
    sg_child_spec_t cs = { .file = t->command,
                           .argv = (const char *const *)t->argv,
                           .envp = (const char *const *)t->envp,
                           .cwd = t->cwd };
    int rc = sg_child_spawn(base->loop, &cs, on_child_exit, t, &t->child, &err);
    if (rc != SG_OK) {
        SG_LOG_WARN(&t->log, "%s: %s", tname(t), err.msg);
        return rc;
    }
    rc = watch_outputs(t);
    if (rc != SG_OK) {
        SG_LOG_WARN(&t->log, "%s: cannot watch the upstream's pipes", tname(t));
        teardown_child(t);
        return rc;
    }
    t->err_window_ms = 0;
    t->err_lines = 0;
    t->err_dropped = 0;
    set_state(t, SG_STDIO_RUNNING);
    SG_LOG_INFO(&t->log, "%s: spawned upstream pid %d command %s", tname(t),
                (int)sg_child_pid(t->child), t->command);
    sg_timer_start(base->loop, &t->ready_timer, 0, on_ready_timer);
    return SG_OK;
}

static int stdio_send(sg_transport_t *base, sg_str_t json, void *origin)
{
    sg_stdio_t *t = SG_CONTAINER_OF(base, sg_stdio_t, base);
    (void)origin;
    if (t->state != SG_STDIO_RUNNING || sg_child_fd(t->child, SG_CHILD_STDIN) < 0) {
        return SG_ECLOSED;
    }
    if (t->inq.len - t->inq.off + json.len + 1 > t->max_queue) {
        SG_LOG_WARN(&t->log, "%s: stdin queue over %zu bytes: message refused", tname(t),
                    t->max_queue);
        return SG_EBUSY;
    }
    enqueue(t, json);
    if (!sg_watch_is_active(&t->in_w)) {
        flush_stdin(t);
    }
    return t->state == SG_STDIO_RUNNING ? SG_OK : SG_ECLOSED;
}

static void stdio_forget(sg_transport_t *base, void *origin)
{
    (void)base;
    (void)origin;
}

static void stdio_stop(sg_transport_t *base)
{
    sg_stdio_t *t = SG_CONTAINER_OF(base, sg_stdio_t, base);
    if (t->state == SG_STDIO_RUNNING) {
        SG_LOG_INFO(&t->log, "%s: stopping upstream pid %d", tname(t), (int)sg_child_pid(t->child));
        begin_stopping(t);
    }
}

static void stdio_free(sg_transport_t *base)
{
    if (base == NULL) {
        return;
    }
    sg_stdio_t *t = SG_CONTAINER_OF(base, sg_stdio_t, base);
    if (t->freed) {
        return;
    }
    t->freed = true;
    teardown_child(t);
    t->state = SG_STDIO_IDLE;
    if (t->depth == 0) {
        destroy(t);
    }
}

static const sg_transport_ops_t stdio_ops = {
    .start = stdio_start,
    .send = stdio_send,
    .forget = stdio_forget,
    .stop = stdio_stop,
    .free = stdio_free,
};

sg_transport_t *sg_transport_stdio_new(sg_loop_t *loop, const sg_stdio_spec_t *spec,
                                       const sg_transport_events_t *events, void *owner,
                                       const char *name)
{
    SG_BUG_ON(spec == NULL || spec->command == NULL || events == NULL);
    sg_stdio_t *t = sg_xcalloc(1, sizeof(*t));
    t->base.ops = &stdio_ops;
    t->base.events = events;
    t->base.owner = owner;
    t->base.loop = loop;
    t->base.name = name;
    t->log.component = "upstream";
    copy_spec(t, spec);
    return &t->base;
}
