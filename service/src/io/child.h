/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Child processes with pipes, on the loop: spawn (posix_spawn, an explicit
 * environment, the child alone in a new process group) and reap. This module
 * is the only code in the process that reaps children; SIGCHLD is not used.
 * Exit is found by polling waitpid(WNOHANG): slowly (every
 * SG_CHILD_SLOW_POLL_MS) while the child runs, quickly (every
 * SG_CHILD_FAST_POLL_MS) once the owner says it expects the exit (its stdout
 * hit EOF, it was signalled) and after the owner has freed it.
 *
 * When the leader of the group is found dead, whatever is left of its group
 * (grandchildren such as the node process started by npx) gets SIGKILL before
 * the leader is reaped: the zombie leader keeps the group id from being reused
 * until then, so the signal cannot reach a stranger.
 *
 * The process must ignore SIGPIPE (the runtime does): the owner writes to the
 * child's stdin, whose reader may be gone.
 *
 * Used by gateway/upstream_stdio.c. One loop per thread; not thread-safe.
 */
#ifndef SG_IO_CHILD_H
#define SG_IO_CHILD_H

#include <sys/types.h>

#include "base/err.h"
#include "base/sg.h"
#include "io/loop.h"

#define SG_CHILD_SLOW_POLL_MS 1000
#define SG_CHILD_FAST_POLL_MS 100

typedef struct sg_child sg_child_t;

/* Our ends of the child's standard streams. */
typedef enum sg_child_stream {
    SG_CHILD_STDIN = 0, /* we write */
    SG_CHILD_STDOUT,    /* we read */
    SG_CHILD_STDERR,    /* we read */
} sg_child_stream_t;

/*
 * The child is gone and reaped. wstatus is as from waitpid(), or -1 when the
 * child had already been reaped by someone else (SIGCHLD set to SIG_IGN).
 * Runs exactly once per spawned child, on a loop turn, never inside a call
 * into this module, and never after sg_child_free(). The callback may call
 * sg_child_free(c).
 */
typedef void (*sg_child_exit_cb)(sg_child_t *c, int wstatus, void *data);

typedef struct sg_child_spec {
    /*
     * The program: a name without '/' is looked up in the PATH entry of envp
     * (absolute directories only; "/usr/local/bin:/usr/bin:/bin" when envp has
     * no PATH); a name with '/' is used as is (relative to cwd).
     */
    const char *file;
    const char *const *argv; /* NULL-terminated, argv[0] included; NULL = { file, NULL } */
    const char *const *envp; /* NULL-terminated: the child's whole environment; NULL = empty */
    const char *cwd;         /* NULL = ours */
} sg_child_spec_t;

/*
 * Spawns a child with three new pipes as its stdin, stdout and stderr, signal
 * mask empty and every signal at its default action, in a new process group
 * whose id is its pid, and no other file descriptor of ours. Our ends are
 * non-blocking and close-on-exec. spec and everything it points to are
 * borrowed for the call. on_exit (not NULL) is called with data once the child
 * has exited and been reaped.
 *
 * Returns SG_OK and *out (owned by the caller, release with sg_child_free);
 * SG_ENOTFOUND when the program is not found or not executable; SG_EIO when
 * pipes or the spawn fail. err (may be NULL) gets the detail.
 */
int sg_child_spawn(sg_loop_t *loop, const sg_child_spec_t *spec, sg_child_exit_cb on_exit,
                   void *data, sg_child_t **out, sg_error_t *err) SG_MUSTCHECK;

/* The child's pid, which is also its process group id. */
pid_t sg_child_pid(const sg_child_t *c);

/*
 * Our end of one of the child's streams, or -1 once closed. The fd stays owned
 * by the child object: watch it with sg_watch_t (which wraps a dup), and dispose
 * the watch before sg_child_close_fd / sg_child_free.
 */
int sg_child_fd(const sg_child_t *c, sg_child_stream_t s);

/* Closes our end of one stream (closing stdin is how the child is told to stop). Idempotent. */
void sg_child_close_fd(sg_child_t *c, sg_child_stream_t s);

/*
 * Sends sig to the child's whole process group. Returns SG_OK, SG_ECLOSED when
 * the child has already been reaped, SG_EIO when kill() fails otherwise.
 */
int sg_child_kill(sg_child_t *c, int sig);

/*
 * The owner expects the child to exit soon (its stdout hit EOF, it was asked to
 * stop): poll on the next loop turn and then every SG_CHILD_FAST_POLL_MS until
 * it is reaped. Never calls back from inside this call.
 */
void sg_child_expect_exit(sg_child_t *c);

/* True once the child has been reaped (the exit callback has run or is running). */
bool sg_child_has_exited(const sg_child_t *c);

/*
 * Releases the child object and closes our ends of the pipes; no callback
 * after this. A child that still runs gets SIGKILL (to its group) and is reaped
 * later by this module on the loop. NULL is a no-op. May be called from the
 * exit callback.
 */
void sg_child_free(sg_child_t *c);

/* Freed children of this thread that still wait to be reaped (for tests and shutdown). */
size_t sg_child_pending(void);

/*
 * Shutdown helper, for after the loop has stopped running and before
 * sg_loop_free(): sends SIGKILL to every freed-but-unreaped child's group of
 * this thread and waits up to timeout_ms (blocking) to reap them; releases
 * their memory either way. Returns how many could not be reaped.
 */
size_t sg_child_reap_all(uint64_t timeout_ms);

/*
 * Writes a description of a status given to sg_child_exit_cb ("exited with
 * status 3", "killed by signal 9") into buf (always NUL-terminated); returns buf.
 */
const char *sg_child_format_status(int wstatus, char *buf, size_t cap);

#endif
