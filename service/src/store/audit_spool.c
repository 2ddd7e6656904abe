/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The audit spool: dir/audit.spool, one JSON object per line, appended with
 * one write + fdatasync per batch, read back for replay, truncated once
 * replay has caught up. Next to it, dir/audit.chain (the last durable link of
 * this replica's chain, rewritten in place) and dir/audit.rejected (lines
 * PostgreSQL refused as invalid, kept for a human).
 *
 * Every file operation after start-up runs on one I/O thread, one job at a
 * time in submission order; the loop learns of completions through a pipe
 * and calls the jobs back in that same order. The thread touches only the
 * files and the job it is running: no logging, no metrics, no loop.
 *
 * Invariants: the spool file only ever holds whole lines (a failed append is
 * cut back off; a torn line left by a crash is cut at open); s->size is
 * owned by the thread once it runs; a job is in exactly one of: the queue,
 * the thread, the done list, or called back.
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/json.h"
#include "base/log.h"
#include "base/mem.h"
#include "store/audit_int.h"

#define SPOOL_NAME    "audit.spool"
#define STATE_NAME    "audit.chain"
#define STATE_SIZE    512 /* bytes of the chain-state record */
#define REJECTED_NAME "audit.rejected"
#define READ_CHUNK    ((size_t)256 * 1024)
#define READ_MAX      ((size_t)8 * 1024 * 1024)  /* bytes of lines per READ job */
#define MAX_LINE      ((size_t)16 * 1024 * 1024) /* longer is corruption: set aside */

struct sg_audit_spool {
    sg_loop_t *loop;
    int fd;          /* the spool, flock'ed */
    int rejected_fd; /* opened on first use by the thread */
    char *path_state;
    int state_fd; /* opened on first use by the thread */
    char *path_rejected;
    uint64_t max_bytes;
    uint64_t size; /* owned by the thread once it runs */
    bool torn;     /* the file ends with part of a failed append (thread) */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    sg_audit_job_t *q_head, *q_tail; /* waiting for the thread (under mu) */
    sg_audit_job_t *d_head, *d_tail; /* done, waiting for the loop (under mu) */
    bool stop;                       /* under mu */
    int pipe_r, pipe_w;
    sg_watch_t watch;
    size_t pending; /* loop side: submitted, not yet called back */
};

static const sg_log_ctx_t log_ctx = { .component = "audit" };

static char *path_join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *p = sg_xmalloc(n);
    snprintf(p, n, "%s/%s", dir, name);
    return p;
}

static void list_push(sg_audit_job_t **head, sg_audit_job_t **tail, sg_audit_job_t *job)
{
    job->_next = NULL;
    if (*tail != NULL) {
        (*tail)->_next = job;
    } else {
        *head = job;
    }
    *tail = job;
}

static sg_audit_job_t *list_pop(sg_audit_job_t **head, sg_audit_job_t **tail)
{
    sg_audit_job_t *job = *head;
    if (job != NULL) {
        *head = job->_next;
        if (*head == NULL) {
            *tail = NULL;
        }
        job->_next = NULL;
    }
    return job;
}

static int write_all(int fd, const char *p, size_t len, uint64_t off)
{
    while (len > 0) {
        ssize_t n = pwrite(fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return SG_EIO;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return SG_OK;
}

/* ---- jobs (I/O thread) ---- */

static void run_append(sg_audit_spool_t *s, sg_audit_job_t *job)
{
    if (s->size + job->data.len > s->max_bytes) {
        job->status = SG_ETOOBIG;
        return;
    }
    if (s->torn) { /* end the partial line a failed append left, so it stays one bad line */
        if (write_all(s->fd, "\n", 1, s->size) != SG_OK) {
            job->status = SG_EIO;
            return;
        }
        s->size++;
        s->torn = false;
    }
    job->status = write_all(s->fd, job->data.data, job->data.len, s->size);
    if (job->status == SG_OK && fdatasync(s->fd) != 0) {
        job->status = SG_EIO;
    }
    if (job->status != SG_OK) {
        /* never leave a partial batch behind; if it stays, it is ended as a line of its own */
        struct stat st;
        if (ftruncate(s->fd, (off_t)s->size) != 0 && fstat(s->fd, &st) == 0 &&
            (uint64_t)st.st_size > s->size) {
            s->size = (uint64_t)st.st_size;
            s->torn = true;
        }
        return;
    }
    s->size += job->data.len;
}

static int append_rejected(sg_audit_spool_t *s, const char *line, size_t len)
{
    if (s->rejected_fd < 0) {
        s->rejected_fd = open(s->path_rejected, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
        if (s->rejected_fd < 0) {
            return SG_EIO;
        }
    }
    struct stat st;
    if (fstat(s->rejected_fd, &st) != 0) {
        return SG_EIO;
    }
    int rc = write_all(s->rejected_fd, line, len, (uint64_t)st.st_size);
    if (rc == SG_OK && (len == 0 || line[len - 1] != '\n')) {
        rc = write_all(s->rejected_fd, "\n", 1, (uint64_t)st.st_size + len);
    }
    if (rc == SG_OK && fdatasync(s->rejected_fd) != 0) {
        rc = SG_EIO;
    }
    return rc;
}

static bool line_ok(const char *line, size_t len)
{
    return len > 1 && line[0] == '{' &&
           sg_json_validate(line, len, SG_AUDIT_JSON_DEPTH + 2, NULL) == SG_OK;
}

/* Takes the whole lines of raw[*pos..) into the job; returns true when the job is full. */
static bool take_lines(sg_audit_spool_t *s, sg_audit_job_t *job, const sg_buf_t *raw, size_t *pos)
{
    while (*pos < raw->len) {
        const char *line = raw->data + *pos;
        const char *nl = memchr(line, '\n', raw->len - *pos);
        if (nl == NULL) {
            return false;
        }
        size_t len = (size_t)(nl - line);
        if (len > 0 && !line_ok(line, len)) {
            /*
             * A bad line is set aside only when it comes first: a read whose
             * lines fail to insert is read again, and must not set it aside twice.
             */
            if (job->nlines > 0) {
                return true;
            }
            if (append_rejected(s, line, len) != SG_OK) {
                job->status = SG_EIO;
                return true;
            }
            job->nbad++;
            job->consumed += len + 1;
            return true;
        }
        if (len > 0) {
            if (job->nlines > 0) {
                sg_buf_append_char(&job->data, ',');
            }
            sg_buf_append(&job->data, line, len);
            job->nlines++;
        }
        *pos += len + 1;
        job->consumed += len + 1;
        if (job->nlines >= job->max_lines || job->data.len >= READ_MAX) {
            return true;
        }
    }
    return false;
}

static void run_read(sg_audit_spool_t *s, sg_audit_job_t *job)
{
    sg_buf_t raw = SG_BUF_INIT;
    uint64_t next = job->offset; /* file offset of raw's end */
    size_t pos = 0;
    sg_buf_reset(&job->data);
    sg_buf_append_char(&job->data, '[');
    job->status = SG_OK;
    for (;;) {
        if (take_lines(s, job, &raw, &pos) || next >= s->size) {
            break;
        }
        /* keep the unfinished line, read on */
        sg_buf_consume(&raw, pos);
        sg_buf_compact(&raw);
        pos = 0;
        if (raw.len > MAX_LINE) {   /* no newline for 16 MiB: corruption */
            if (job->nlines == 0) { /* first in line: set the bytes aside (once, see take_lines) */
                job->status = append_rejected(s, raw.data, raw.len);
                job->nbad += job->status == SG_OK;
                job->consumed += job->status == SG_OK ? raw.len : 0;
            }
            break;
        }
        size_t want = (size_t)SG_MIN((uint64_t)READ_CHUNK, s->size - next);
        sg_buf_reserve(&raw, want);
        ssize_t n = pread(s->fd, raw.data + raw.len, want, (off_t)next);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            job->status = n < 0 ? SG_EIO : SG_OK;
            break;
        }
        raw.len += (size_t)n;
        raw.data[raw.len] = '\0';
        next += (uint64_t)n;
    }
    sg_buf_append_char(&job->data, ']');
    job->eof = job->offset + job->consumed >= s->size;
    sg_buf_dispose(&raw);
}

static void run_truncate(sg_audit_spool_t *s, sg_audit_job_t *job)
{
    if (ftruncate(s->fd, 0) != 0 || fdatasync(s->fd) != 0) {
        job->status = SG_EIO;
        return;
    }
    s->size = 0;
}

/*
 * Rewrites the chain-state record in place (one pwrite of STATE_SIZE bytes,
 * space-padded, no fsync): creating and renaming a file per batch costs the
 * kernel more than the whole batch costs us. A torn record (power loss) does
 * not parse and is ignored at start; the spool and PostgreSQL still know the tail.
 */
static void run_state(sg_audit_spool_t *s, sg_audit_job_t *job)
{
    char rec[STATE_SIZE];
    if (s->state_fd < 0) {
        s->state_fd = open(s->path_state, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    }
    if (s->state_fd < 0 || job->data.len >= sizeof(rec)) {
        job->status = SG_EIO;
        return;
    }
    memset(rec, ' ', sizeof(rec));
    memcpy(rec, job->data.data, job->data.len);
    rec[sizeof(rec) - 1] = '\n';
    job->status = write_all(s->state_fd, rec, sizeof(rec), 0);
}

static void run_job(sg_audit_spool_t *s, sg_audit_job_t *job)
{
    job->status = SG_OK;
    job->nlines = 0;
    job->consumed = 0;
    job->nbad = 0;
    job->eof = false;
    switch (job->kind) {
    case SG_AUDIT_JOB_APPEND:
        run_append(s, job);
        break;
    case SG_AUDIT_JOB_READ:
        run_read(s, job);
        break;
    case SG_AUDIT_JOB_TRUNCATE:
        run_truncate(s, job);
        break;
    case SG_AUDIT_JOB_STATE:
        run_state(s, job);
        break;
    case SG_AUDIT_JOB_QUARANTINE:
        job->status = append_rejected(s, job->data.data, job->data.len);
        break;
    }
    job->size = s->size;
}

static void *thread_main(void *arg)
{
    sg_audit_spool_t *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->q_head == NULL && !s->stop) {
            pthread_cond_wait(&s->cv, &s->mu);
        }
        sg_audit_job_t *job = list_pop(&s->q_head, &s->q_tail);
        if (job == NULL) {
            break; /* stopping and nothing left */
        }
        pthread_mutex_unlock(&s->mu);
        run_job(s, job);
        pthread_mutex_lock(&s->mu);
        list_push(&s->d_head, &s->d_tail, job);
        ssize_t n = write(s->pipe_w, "j", 1); /* a full pipe already wakes the loop */
        (void)n;
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---- loop side ---- */

static void deliver_done(sg_audit_spool_t *s)
{
    pthread_mutex_lock(&s->mu);
    sg_audit_job_t *head = s->d_head;
    s->d_head = s->d_tail = NULL;
    pthread_mutex_unlock(&s->mu);
    while (head != NULL) {
        sg_audit_job_t *job = head;
        head = job->_next;
        job->_next = NULL;
        s->pending--;
        job->cb(job); /* may submit more jobs */
    }
}

static void on_pipe(sg_watch_t *w)
{
    sg_audit_spool_t *s = SG_CONTAINER_OF(w, sg_audit_spool_t, watch);
    char drain[256];
    while (read(s->pipe_r, drain, sizeof(drain)) > 0) {
    }
    deliver_done(s);
}

void sg_audit_spool_submit(sg_audit_spool_t *s, sg_audit_job_t *job)
{
    SG_BUG_ON(job->cb == NULL);
    s->pending++;
    pthread_mutex_lock(&s->mu);
    list_push(&s->q_head, &s->q_tail, job);
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

size_t sg_audit_spool_pending(const sg_audit_spool_t *s)
{
    return s->pending;
}

void sg_audit_spool_close(sg_audit_spool_t *s)
{
    if (s == NULL) {
        return;
    }
    if (s->thread_started) {
        pthread_mutex_lock(&s->mu);
        s->stop = true;
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->thread, NULL);
    }
    /* callbacks may queue more jobs: run those here until nothing is left */
    for (;;) {
        deliver_done(s);
        sg_audit_job_t *job = list_pop(&s->q_head, &s->q_tail);
        if (job == NULL) {
            break;
        }
        run_job(s, job);
        list_push(&s->d_head, &s->d_tail, job);
    }
    sg_watch_dispose(&s->watch);
    close(s->pipe_r);
    close(s->pipe_w);
    if (s->rejected_fd >= 0) {
        close(s->rejected_fd);
    }
    close(s->fd); /* releases the flock */
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    if (s->state_fd >= 0) {
        close(s->state_fd);
    }
    free(s->path_state);
    free(s->path_rejected);
    free(s);
}

/* ---- start-up (blocking) ---- */

/* mkdir -p with mode 0700 for what it creates. */
static int make_dirs(const char *dir)
{
    char *p = sg_xstrdup(dir);
    int rc = SG_OK;
    for (char *q = p + 1; rc == SG_OK; q++) {
        if (*q != '/' && *q != '\0') {
            continue;
        }
        char c = *q;
        *q = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = SG_EIO;
        }
        *q = c;
        if (c == '\0') {
            break;
        }
    }
    free(p);
    return rc;
}

/* Keeps the link (seq, hash) in *tail when it is replica's and newer. */
static void consider_link(sg_str_t obj, const char *replica, sg_audit_tail_t *tail)
{
    sg_str_t r, seq, hash, plain;
    int64_t n = 0;
    if (sg_json_object_get(obj, "replica", &r) != SG_OK || !sg_json_string_eq(r, replica) ||
        sg_json_object_get(obj, "seq", &seq) != SG_OK || sg_json_int64(seq, &n) != SG_OK ||
        n <= 0 || sg_json_object_get(obj, "hash", &hash) != SG_OK ||
        !sg_json_string_plain(hash, &plain) || plain.len != SG_AUDIT_HASH_LEN) {
        return;
    }
    if (!tail->found || (uint64_t)n > tail->seq) {
        tail->found = true;
        tail->seq = (uint64_t)n;
        memcpy(tail->hash, plain.ptr, SG_AUDIT_HASH_LEN);
        tail->hash[SG_AUDIT_HASH_LEN] = '\0';
    }
}

/* Counts the lines, finds replica's last link, cuts a torn tail. */
static int scan_spool(sg_audit_spool_t *s, const char *replica, sg_audit_tail_t *tail,
                      size_t *nlines, sg_error_t *err)
{
    struct stat st;
    if (fstat(s->fd, &st) != 0) {
        return sg_error_set(err, SG_EIO, "audit spool: cannot stat: %s", strerror(errno));
    }
    uint64_t size = (uint64_t)st.st_size, off = 0, whole = 0;
    sg_buf_t raw = SG_BUF_INIT;
    int rc = SG_OK;
    *nlines = 0;
    while (off < size) {
        size_t want = (size_t)SG_MIN((uint64_t)READ_CHUNK, size - off);
        sg_buf_reserve(&raw, want);
        ssize_t n = pread(s->fd, raw.data + raw.len, want, (off_t)off);
        if (n <= 0) {
            rc = sg_error_set(err, SG_EIO, "audit spool: cannot read: %s", strerror(errno));
            goto out;
        }
        raw.len += (size_t)n;
        off += (uint64_t)n;
        sg_str_t rest = sg_buf_str(&raw);
        const char *nl;
        while ((nl = memchr(rest.ptr, '\n', rest.len)) != NULL) {
            size_t len = (size_t)(nl - rest.ptr);
            consider_link(sg_str_n(rest.ptr, len), replica, tail);
            *nlines += len > 0;
            whole += len + 1;
            sg_buf_consume(&raw, len + 1);
            rest = sg_buf_str(&raw);
        }
        sg_buf_compact(&raw);
    }
    if (whole < size) {
        SG_LOG_WARN(&log_ctx, "audit spool: cutting a torn last line (%llu bytes) left by a crash",
                    (unsigned long long)(size - whole));
        if (ftruncate(s->fd, (off_t)whole) != 0 || fdatasync(s->fd) != 0) {
            rc = sg_error_set(err, SG_EIO, "audit spool: cannot cut torn line: %s",
                              strerror(errno));
            goto out;
        }
    }
    s->size = whole;
out:
    sg_buf_dispose(&raw);
    return rc;
}

static void read_state(const sg_audit_spool_t *s, const char *replica, sg_audit_tail_t *tail)
{
    char buf[STATE_SIZE + 1];
    int fd = open(s->path_state, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        return;
    }
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0) {
        return;
    }
    sg_str_t text = sg_json_trim(sg_str_n(buf, (size_t)n));
    if (sg_json_validate(text.ptr, text.len, 4, NULL) == SG_OK) {
        consider_link(text, replica, tail);
    }
}

static int start_thread(sg_audit_spool_t *s, sg_error_t *err)
{
    /* the thread takes no signals: they belong to the loop thread's signalfd */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int e = pthread_create(&s->thread, NULL, thread_main, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (e != 0) {
        return sg_error_set(err, SG_EIO, "audit spool: cannot start I/O thread: %s", strerror(e));
    }
    s->thread_started = true;
    return SG_OK;
}

sg_audit_spool_t *sg_audit_spool_open(sg_loop_t *loop, const char *dir, const char *replica,
                                      uint64_t max_bytes, sg_audit_tail_t *tail, uint64_t *size,
                                      size_t *nlines, sg_error_t *err)
{
    if (make_dirs(dir) != SG_OK) {
        sg_error_set(err, SG_EIO, "audit spool: cannot create %.200s: %s", dir, strerror(errno));
        return NULL;
    }
    sg_audit_spool_t *s = sg_xcalloc(1, sizeof(*s));
    s->loop = loop;
    s->max_bytes = max_bytes;
    s->rejected_fd = -1;
    s->pipe_r = s->pipe_w = -1;
    s->path_state = path_join(dir, STATE_NAME);
    s->state_fd = -1;
    s->path_rejected = path_join(dir, REJECTED_NAME);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    char *path = path_join(dir, SPOOL_NAME);
    s->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    free(path);
    if (s->fd < 0) {
        sg_error_set(err, SG_EIO, "audit spool: cannot open %.200s/" SPOOL_NAME ": %s", dir,
                     strerror(errno));
        goto fail;
    }
    if (flock(s->fd, LOCK_EX | LOCK_NB) != 0) {
        sg_error_set(err, errno == EWOULDBLOCK ? SG_EBUSY : SG_EIO,
                     "audit spool %.200s/" SPOOL_NAME " is in use by another process", dir);
        goto fail;
    }
    *tail = (sg_audit_tail_t){ .found = false };
    if (scan_spool(s, replica, tail, nlines, err) != SG_OK) {
        goto fail;
    }
    read_state(s, replica, tail);
    int p[2];
    if (pipe2(p, O_NONBLOCK | O_CLOEXEC) != 0) {
        sg_error_set(err, SG_EIO, "audit spool: pipe: %s", strerror(errno));
        goto fail;
    }
    s->pipe_r = p[0];
    s->pipe_w = p[1];
    if (sg_watch_init(&s->watch, loop, s->pipe_r, on_pipe, NULL) != SG_OK) {
        sg_error_set(err, SG_EIO, "audit spool: cannot watch the pipe");
        goto fail;
    }
    sg_watch_want_read(&s->watch, true);
    if (start_thread(s, err) != SG_OK) {
        goto fail;
    }
    *size = s->size;
    return s;
fail:
    if (s->fd >= 0) {
        /* close() releases a lock we may hold; a spool another process holds stays theirs */
        sg_watch_dispose(&s->watch);
    }
    sg_audit_spool_close(s);
    return NULL;
}
