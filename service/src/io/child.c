/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Spawns children with posix_spawn (glibc's vfork-based one reports exec
 * failures to the parent) and reaps them by polling; see child.h for the
 * contract.
 *
 * Invariant: a child object exists until its process has been reaped. When
 * the owner frees it earlier, the object is "detached": it sits on this
 * thread's list of zombies-to-reap (the module's only mutable static state,
 * thread-local because a loop belongs to one thread) and its poll timer keeps
 * running until waitpid() returns it, then it frees itself.
 */
#include "io/child.h"

#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/mem.h"

#define DEFAULT_PATH "/usr/local/bin:/usr/bin:/bin"

struct sg_child {
    sg_loop_t *loop;
    pid_t pid;
    int fds[3]; /* our ends, indexed by sg_child_stream_t; -1 once closed */
    sg_child_exit_cb on_exit;
    void *data;
    sg_timer_t poll;
    int wstatus;
    bool reaped;
    bool expecting;    /* fast polling requested by the owner */
    bool in_callback;  /* on_exit is running */
    bool free_pending; /* sg_child_free() was called from on_exit */
    bool detached;     /* freed while running: on the zombie list */
    sg_child_t *zprev, *znext;
};

static _Thread_local sg_child_t *zombies;

/* ---- zombie list ---- */

static void zombie_link(sg_child_t *c)
{
    c->zprev = NULL;
    c->znext = zombies;
    if (zombies != NULL) {
        zombies->zprev = c;
    }
    zombies = c;
}

static void zombie_unlink(sg_child_t *c)
{
    if (c->zprev != NULL) {
        c->zprev->znext = c->znext;
    } else {
        zombies = c->znext;
    }
    if (c->znext != NULL) {
        c->znext->zprev = c->zprev;
    }
    c->zprev = c->znext = NULL;
}

size_t sg_child_pending(void)
{
    size_t n = 0;
    for (sg_child_t *c = zombies; c != NULL; c = c->znext) {
        n++;
    }
    return n;
}

/* ---- program lookup ---- */

static bool is_executable_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

static const char *env_path(const char *const *envp)
{
    for (size_t i = 0; envp != NULL && envp[i] != NULL; i++) {
        if (strncmp(envp[i], "PATH=", 5) == 0) {
            return envp[i] + 5;
        }
    }
    return DEFAULT_PATH;
}

/* A heap copy of the program's path, or NULL when no executable file matches. */
static char *find_program(const char *file, const char *const *envp)
{
    if (strchr(file, '/') != NULL) {
        return sg_xstrdup(file);
    }
    size_t flen = strlen(file);
    const char *p = env_path(envp);
    while (*p != '\0') {
        const char *end = strchrnul(p, ':');
        size_t dlen = (size_t)(end - p);
        /* relative entries ("", ".") would depend on the cwd: never searched */
        if (dlen > 0 && p[0] == '/') {
            char *cand = sg_xmalloc(dlen + 1 + flen + 1);
            memcpy(cand, p, dlen);
            cand[dlen] = '/';
            memcpy(cand + dlen + 1, file, flen + 1);
            if (is_executable_file(cand)) {
                return cand;
            }
            free(cand);
        }
        p = *end == ':' ? end + 1 : end;
    }
    return NULL;
}

/* ---- spawning ---- */

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* A close-on-exec pipe whose ends are both above 2, so dup2 onto 0..2 cannot clobber them. */
static int make_pipe(int p[2])
{
    if (pipe2(p, O_CLOEXEC) != 0) {
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        if (p[i] <= 2) {
            int d = fcntl(p[i], F_DUPFD_CLOEXEC, 3);
            close(p[i]);
            p[i] = d;
        }
    }
    if (p[0] < 0 || p[1] < 0) {
        close_fd(&p[0]);
        close_fd(&p[1]);
        return -1;
    }
    return 0;
}

/* pipes[s][0] is read end, [1] write end; the child gets [0] of stdin, [1] of stdout/stderr. */
static int child_end(int pipes[3][2], int s)
{
    return s == SG_CHILD_STDIN ? pipes[s][0] : pipes[s][1];
}

static int our_end(int pipes[3][2], int s)
{
    return s == SG_CHILD_STDIN ? pipes[s][1] : pipes[s][0];
}

static int do_spawn(pid_t *pid, const char *path, const sg_child_spec_t *spec, int pipes[3][2])
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&attr);
    for (int s = 0; s < 3; s++) {
        posix_spawn_file_actions_adddup2(&fa, child_end(pipes, s), s);
    }
    if (spec->cwd != NULL) {
        posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
    }
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF);
    posix_spawnattr_setpgroup(&attr, 0);
    posix_spawnattr_setsigmask(&attr, &none);
    posix_spawnattr_setsigdefault(&attr, &all);

    const char *default_argv[] = { spec->file, NULL };
    const char *empty_env[] = { NULL };
    const char *const *argv = spec->argv != NULL ? spec->argv : default_argv;
    const char *const *envp = spec->envp != NULL ? spec->envp : empty_env;
    /* posix_spawn's prototype predates const; it does not modify the strings */
    int rc = posix_spawn(pid, path, &fa, &attr, (char *const *)argv, (char *const *)envp);
    posix_spawnattr_destroy(&attr);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

static int spawn_error(int e, const sg_child_spec_t *spec, sg_error_t *err)
{
    int code = (e == ENOENT || e == EACCES || e == ENOTDIR || e == ENOEXEC) ? SG_ENOTFOUND : SG_EIO;
    return sg_error_set(err, code, "cannot spawn %s: %s", spec->file, strerror(e));
}

static void schedule_poll(sg_child_t *c);

int sg_child_spawn(sg_loop_t *loop, const sg_child_spec_t *spec, sg_child_exit_cb on_exit,
                   void *data, sg_child_t **out, sg_error_t *err)
{
    int pipes[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
    int rc;
    SG_BUG_ON(spec->file == NULL || on_exit == NULL);
    char *path = find_program(spec->file, spec->envp);
    if (path == NULL) {
        rc = sg_error_set(err, SG_ENOTFOUND, "%s: not found in PATH", spec->file);
        goto fail;
    }
    for (int s = 0; s < 3; s++) {
        if (make_pipe(pipes[s]) != 0) {
            rc = sg_error_set(err, SG_EIO, "pipe: %s", strerror(errno));
            goto fail_pipes;
        }
        fcntl(our_end(pipes, s), F_SETFL, O_NONBLOCK);
    }
    pid_t pid;
    int e = do_spawn(&pid, path, spec, pipes);
    if (e != 0) {
        rc = spawn_error(e, spec, err);
        goto fail_pipes;
    }
    sg_child_t *c = sg_xcalloc(1, sizeof(*c));
    c->loop = loop;
    c->pid = pid;
    c->on_exit = on_exit;
    c->data = data;
    for (int s = 0; s < 3; s++) {
        close_fd(&pipes[s][s == SG_CHILD_STDIN ? 0 : 1]);
        c->fds[s] = our_end(pipes, s);
    }
    free(path);
    schedule_poll(c);
    *out = c;
    return SG_OK;

fail_pipes:
    for (int s = 0; s < 3; s++) {
        close_fd(&pipes[s][0]);
        close_fd(&pipes[s][1]);
    }
    free(path);
fail:
    *out = NULL;
    return rc;
}

/* ---- reaping ---- */

static void destroy(sg_child_t *c)
{
    sg_timer_stop(&c->poll);
    for (int s = 0; s < 3; s++) {
        close_fd(&c->fds[s]);
    }
    free(c);
}

/* Reaps the child if it has exited; sets c->reaped. */
static void check_exit(sg_child_t *c)
{
    siginfo_t si;
    memset(&si, 0, sizeof(si));
    if (waitid(P_PID, (id_t)c->pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0) {
        if (errno != EINTR) {
            c->reaped = true; /* ECHILD: reaped elsewhere; nothing left to wait for */
            c->wstatus = -1;
        }
        return;
    }
    if (si.si_pid == 0) {
        return;
    }
    /* the leader is a zombie, so its group id is still ours: sweep what is left of the group */
    kill(-c->pid, SIGKILL);
    int st = 0;
    pid_t p = waitpid(c->pid, &st, WNOHANG);
    if (p == c->pid) {
        c->reaped = true;
        c->wstatus = st;
    } else if (p < 0 && errno == ECHILD) {
        c->reaped = true;
        c->wstatus = -1;
    }
}

static void on_poll(sg_timer_t *t)
{
    sg_child_t *c = SG_CONTAINER_OF(t, sg_child_t, poll);
    check_exit(c);
    if (!c->reaped) {
        schedule_poll(c);
        return;
    }
    if (c->detached) {
        zombie_unlink(c);
        destroy(c);
        return;
    }
    c->in_callback = true;
    c->on_exit(c, c->wstatus, c->data);
    c->in_callback = false;
    if (c->free_pending) {
        destroy(c);
    }
}

static void schedule_poll(sg_child_t *c)
{
    uint64_t ms = c->expecting || c->detached ? SG_CHILD_FAST_POLL_MS : SG_CHILD_SLOW_POLL_MS;
    sg_timer_start(c->loop, &c->poll, ms, on_poll);
}

/* ---- the public rest ---- */

pid_t sg_child_pid(const sg_child_t *c)
{
    return c->pid;
}

int sg_child_fd(const sg_child_t *c, sg_child_stream_t s)
{
    return c->fds[s];
}

void sg_child_close_fd(sg_child_t *c, sg_child_stream_t s)
{
    close_fd(&c->fds[s]);
}

int sg_child_kill(sg_child_t *c, int sig)
{
    if (c->reaped) {
        return SG_ECLOSED;
    }
    if (kill(-c->pid, sig) != 0 && errno != ESRCH) {
        return SG_EIO;
    }
    return SG_OK;
}

void sg_child_expect_exit(sg_child_t *c)
{
    if (c->reaped) {
        return;
    }
    c->expecting = true;
    sg_timer_start(c->loop, &c->poll, 0, on_poll);
}

bool sg_child_has_exited(const sg_child_t *c)
{
    return c->reaped;
}

void sg_child_free(sg_child_t *c)
{
    if (c == NULL) {
        return;
    }
    for (int s = 0; s < 3; s++) {
        close_fd(&c->fds[s]);
    }
    if (c->in_callback) {
        c->free_pending = true;
        return;
    }
    if (c->reaped) {
        destroy(c);
        return;
    }
    kill(-c->pid, SIGKILL);
    c->detached = true;
    c->on_exit = NULL;
    c->data = NULL;
    zombie_link(c);
    sg_timer_start(c->loop, &c->poll, 0, on_poll);
}

size_t sg_child_reap_all(uint64_t timeout_ms)
{
    for (sg_child_t *c = zombies; c != NULL; c = c->znext) {
        kill(-c->pid, SIGKILL);
    }
    uint64_t deadline = sg_clock_now_ms() + timeout_ms;
    for (;;) {
        sg_child_t *next;
        for (sg_child_t *c = zombies; c != NULL; c = next) {
            next = c->znext;
            check_exit(c);
            if (c->reaped) {
                zombie_unlink(c);
                destroy(c);
            }
        }
        if (zombies == NULL || sg_clock_now_ms() >= deadline) {
            break;
        }
        struct timespec ts = { 0, 5L * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    size_t left = 0;
    while (zombies != NULL) {
        sg_child_t *c = zombies;
        zombie_unlink(c);
        destroy(c);
        left++;
    }
    return left;
}

const char *sg_child_format_status(int wstatus, char *buf, size_t cap)
{
    if (wstatus == -1) {
        snprintf(buf, cap, "exit status unknown (reaped elsewhere)");
    } else if (WIFEXITED(wstatus)) {
        snprintf(buf, cap, "exited with status %d", WEXITSTATUS(wstatus));
    } else if (WIFSIGNALED(wstatus)) {
        snprintf(buf, cap, "killed by signal %d", WTERMSIG(wstatus));
    } else {
        snprintf(buf, cap, "stopped (status 0x%x)", (unsigned)wstatus);
    }
    return buf;
}
