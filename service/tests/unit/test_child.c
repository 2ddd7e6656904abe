/* layer: sg_io */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/child against real processes (cat, sh, env, sleep) on a real loop. Every
 * wait is bounded by a deadline.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "io/child.h"
#include "io/loop.h"

#define RUN_UNTIL(loop, cond, ms)                          \
    do {                                                   \
        uint64_t deadline_ = sg_clock_now_ms() + (ms);     \
        while (!(cond) && sg_clock_now_ms() < deadline_) { \
            sg_loop_run_once((loop), 20);                  \
        }                                                  \
    } while (0)

typedef struct sg_test_exit {
    int calls;
    int wstatus;
    bool free_in_callback;
} sg_test_exit_t;

static void on_exit_cb(sg_child_t *c, int wstatus, void *data)
{
    sg_test_exit_t *r = data;
    r->calls++;
    r->wstatus = wstatus;
    if (r->free_in_callback) {
        sg_child_free(c);
    }
}

static int setup(void **state)
{
    *state = sg_loop_new();
    return 0;
}

static int teardown(void **state)
{
    assert_int_equal(sg_child_reap_all(2000), 0);
    sg_loop_free(*state);
    return 0;
}

/* Reads fd (blocking with poll, bounded) until EOF or cap-1 bytes; NUL-terminates. */
static size_t read_to_eof(int fd, char *buf, size_t cap, int timeout_ms)
{
    size_t len = 0;
    uint64_t deadline = sg_clock_now_ms() + (uint64_t)timeout_ms;
    while (len + 1 < cap && sg_clock_now_ms() < deadline) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (poll(&p, 1, 50) <= 0) {
            continue;
        }
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n == 0) {
            break;
        }
        if (n > 0) {
            len += (size_t)n;
        }
    }
    buf[len] = '\0';
    return len;
}

static pid_t parse_pid(const char *s)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    assert_true(end != s && v > 0);
    return (pid_t)v;
}

static bool process_gone(pid_t pid)
{
    char path[64], text[512];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    const char *p = strrchr(text, ')');
    return p != NULL && (p[2] == 'Z' || p[2] == 'X'); /* killed; init may not have reaped it yet */
}

static bool not_our_child(pid_t pid)
{
    return waitpid(pid, NULL, WNOHANG) == -1 && errno == ECHILD;
}

static void spawns_with_nonblocking_cloexec_pipes_in_own_group(void **state)
{
    sg_loop_t *loop = *state;
    const char *argv[] = { "cat", NULL };
    const char *envp[] = { "PATH=/usr/bin:/bin", NULL };
    sg_child_spec_t spec = { .file = "cat", .argv = argv, .envp = envp };
    sg_test_exit_t r = { 0 };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    pid_t pid = sg_child_pid(c);
    assert_int_equal(getpgid(pid), pid);
    for (int s = SG_CHILD_STDIN; s <= SG_CHILD_STDERR; s++) {
        int fd = sg_child_fd(c, (sg_child_stream_t)s);
        assert_true(fd > 2);
        assert_true((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
        assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    }
    assert_int_equal(write(sg_child_fd(c, SG_CHILD_STDIN), "hello\n", 6), 6);
    sg_child_close_fd(c, SG_CHILD_STDIN);
    sg_child_close_fd(c, SG_CHILD_STDIN); /* idempotent */
    assert_int_equal(sg_child_fd(c, SG_CHILD_STDIN), -1);
    char out[64];
    read_to_eof(sg_child_fd(c, SG_CHILD_STDOUT), out, sizeof(out), 5000);
    assert_string_equal(out, "hello\n");
    sg_child_expect_exit(c);
    assert_int_equal(r.calls, 0); /* never inside the call */
    RUN_UNTIL(loop, r.calls > 0, 3000);
    assert_int_equal(r.calls, 1);
    assert_true(WIFEXITED(r.wstatus) && WEXITSTATUS(r.wstatus) == 0);
    assert_true(sg_child_has_exited(c));
    assert_int_equal(sg_child_kill(c, SIGTERM), SG_ECLOSED);
    assert_true(not_our_child(pid));
    sg_child_free(c);
}

static void reports_exit_status_once_without_being_told(void **state)
{
    sg_loop_t *loop = *state;
    const char *argv[] = { "sh", "-c", "exit 7", NULL };
    sg_child_spec_t spec = { .file = "sh", .argv = argv };
    sg_test_exit_t r = { 0 };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    /* no expect_exit: the slow poll finds it */
    RUN_UNTIL(loop, r.calls > 0, (uint64_t)3 * SG_CHILD_SLOW_POLL_MS);
    RUN_UNTIL(loop, false, 300);
    assert_int_equal(r.calls, 1);
    assert_true(WIFEXITED(r.wstatus));
    assert_int_equal(WEXITSTATUS(r.wstatus), 7);
    char text[64];
    assert_string_equal(sg_child_format_status(r.wstatus, text, sizeof(text)),
                        "exited with status 7");
    sg_child_free(c);
}

static void looks_up_the_program_in_the_given_path(void **state)
{
    sg_loop_t *loop = *state;
    char dir[] = "/tmp/sg-child-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char prog[128], pathvar[160];
    snprintf(prog, sizeof(prog), "%s/sg-hello", dir);
    FILE *f = fopen(prog, "w");
    assert_non_null(f);
    fputs("#!/bin/sh\necho hi\n", f);
    fclose(f);
    assert_int_equal(chmod(prog, 0700), 0);
    snprintf(pathvar, sizeof(pathvar), "PATH=/nonexistent:relative:%s:/bin", dir);

    const char *envp[] = { pathvar, NULL };
    sg_child_spec_t spec = { .file = "sg-hello", .envp = envp };
    sg_test_exit_t r = { 0 };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    char out[64];
    read_to_eof(sg_child_fd(c, SG_CHILD_STDOUT), out, sizeof(out), 5000);
    assert_string_equal(out, "hi\n");
    sg_child_expect_exit(c);
    RUN_UNTIL(loop, r.calls > 0, 3000);
    assert_int_equal(r.calls, 1);
    sg_child_free(c);

    /* the gate's own PATH does not count */
    const char *other[] = { "PATH=/nonexistent", NULL };
    spec.envp = other;
    sg_error_t err;
    c = (sg_child_t *)&r;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, &err), SG_ENOTFOUND);
    assert_null(c);
    assert_non_null(strstr(err.msg, "sg-hello"));
    spec.file = "sg-no-such-program";
    spec.envp = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_ENOTFOUND);
    spec.file = "/nonexistent/prog";
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_ENOTFOUND);
    RUN_UNTIL(loop, false, 100);
    assert_int_equal(r.calls, 1);
    unlink(prog);
    rmdir(dir);
}

static void environment_is_exactly_envp_and_cwd_applies(void **state)
{
    sg_loop_t *loop = *state;
    setenv("SG_TEST_SECRET", "hunter2", 1);
    const char *envp[] = { "A=1", "B=two", NULL };
    /* no PATH in envp: the default path finds env */
    sg_child_spec_t spec = { .file = "env", .envp = envp };
    sg_test_exit_t r = { 0 };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    char out[256];
    read_to_eof(sg_child_fd(c, SG_CHILD_STDOUT), out, sizeof(out), 5000);
    assert_string_equal(out, "A=1\nB=two\n");
    sg_child_free(c); /* before its exit was seen: reaped by the module */

    const char *argv[] = { "pwd", NULL };
    sg_child_spec_t spec2 = { .file = "pwd", .argv = argv, .cwd = "/proc/self/.." };
    assert_int_equal(sg_child_spawn(loop, &spec2, on_exit_cb, &r, &c, NULL), SG_OK);
    read_to_eof(sg_child_fd(c, SG_CHILD_STDOUT), out, sizeof(out), 5000);
    assert_string_equal(out, "/proc\n");
    sg_child_free(c);
    RUN_UNTIL(loop, sg_child_pending() == 0, 3000);
    assert_int_equal(sg_child_pending(), 0);
    assert_int_equal(r.calls, 0); /* freed children never call back */
    unsetenv("SG_TEST_SECRET");
}

static void child_gets_no_other_fds(void **state)
{
    sg_loop_t *loop = *state;
    int leak = dup(0); /* not close-on-exec */
    assert_true(leak >= 0);
    const char *argv[] = { "sh", "-c", "cd /proc/$$/fd && echo *", NULL };
    sg_child_spec_t spec = { .file = "sh", .argv = argv };
    sg_test_exit_t r = { 0 };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    char out[256];
    read_to_eof(sg_child_fd(c, SG_CHILD_STDOUT), out, sizeof(out), 5000);
    /* 3 is the directory the shell's glob opened */
    assert_string_equal(out, "0 1 2 3\n");
    sg_child_expect_exit(c);
    RUN_UNTIL(loop, r.calls > 0, 3000);
    assert_int_equal(r.calls, 1);
    sg_child_free(c);
    close(leak);
}

static void child_has_default_signals_and_empty_mask(void **state)
{
    sg_loop_t *loop = *state;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigprocmask(SIG_BLOCK, &set, &old); /* as the runtime does for its signalfd */
    struct sigaction ign = { .sa_handler = SIG_IGN }, old_int;
    sigaction(SIGINT, &ign, &old_int);

    const char *argv[] = { "sleep", "100", NULL };
    sg_child_spec_t spec = { .file = "sleep", .argv = argv };
    int sigs[] = { SIGTERM, SIGINT };
    for (size_t i = 0; i < 2; i++) {
        sg_test_exit_t r = { 0 };
        sg_child_t *c = NULL;
        assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
        assert_int_equal(sg_child_kill(c, sigs[i]), SG_OK);
        sg_child_expect_exit(c);
        RUN_UNTIL(loop, r.calls > 0, 3000);
        assert_int_equal(r.calls, 1);
        assert_true(WIFSIGNALED(r.wstatus));
        assert_int_equal(WTERMSIG(r.wstatus), sigs[i]);
        sg_child_free(c);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void free_while_running_kills_and_reaps(void **state)
{
    sg_loop_t *loop = *state;
    const char *argv[] = { "sleep", "100", NULL };
    sg_child_spec_t spec = { .file = "sleep", .argv = argv };
    sg_test_exit_t r = { 0 };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    pid_t pid = sg_child_pid(c);
    sg_child_free(c);
    assert_int_equal(sg_child_pending(), 1);
    RUN_UNTIL(loop, sg_child_pending() == 0, 3000);
    assert_int_equal(sg_child_pending(), 0);
    assert_true(not_our_child(pid));
    assert_int_equal(r.calls, 0);
    sg_child_free(NULL);
}

static void free_from_the_exit_callback(void **state)
{
    sg_loop_t *loop = *state;
    const char *argv[] = { "true", NULL };
    sg_child_spec_t spec = { .file = "true", .argv = argv };
    sg_test_exit_t r = { .free_in_callback = true };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    sg_child_expect_exit(c);
    RUN_UNTIL(loop, r.calls > 0, 3000);
    RUN_UNTIL(loop, false, 200);
    assert_int_equal(r.calls, 1);
}

static void leader_exit_kills_what_is_left_of_its_group(void **state)
{
    sg_loop_t *loop = *state;
    /* the grandchild keeps stdout open, so only the poll can see the exit */
    const char *argv[] = { "sh", "-c", "sleep 100 & echo $!; exit 3", NULL };
    sg_child_spec_t spec = { .file = "sh", .argv = argv };
    sg_test_exit_t r = { 0 };
    sg_child_t *c = NULL;
    assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
    char out[64] = "";
    size_t len = 0;
    uint64_t deadline = sg_clock_now_ms() + 5000;
    while (strchr(out, '\n') == NULL && sg_clock_now_ms() < deadline) {
        struct pollfd p = { .fd = sg_child_fd(c, SG_CHILD_STDOUT), .events = POLLIN };
        if (poll(&p, 1, 50) > 0) {
            ssize_t n = read(p.fd, out + len, sizeof(out) - 1 - len);
            len += n > 0 ? (size_t)n : 0;
        }
        out[len] = '\0';
    }
    pid_t gpid = parse_pid(out);
    assert_true(gpid > 0);
    RUN_UNTIL(loop, r.calls > 0, (uint64_t)3 * SG_CHILD_SLOW_POLL_MS);
    assert_int_equal(r.calls, 1);
    assert_int_equal(WEXITSTATUS(r.wstatus), 3);
    RUN_UNTIL(loop, process_gone(gpid), 3000);
    assert_true(process_gone(gpid));
    sg_child_free(c);
}

static void reap_all_at_shutdown(void **state)
{
    sg_loop_t *loop = *state;
    const char *argv[] = { "sleep", "100", NULL };
    sg_child_spec_t spec = { .file = "sleep", .argv = argv };
    sg_test_exit_t r = { 0 };
    pid_t pids[3];
    for (size_t i = 0; i < 3; i++) {
        sg_child_t *c = NULL;
        assert_int_equal(sg_child_spawn(loop, &spec, on_exit_cb, &r, &c, NULL), SG_OK);
        pids[i] = sg_child_pid(c);
        sg_child_free(c);
    }
    assert_int_equal(sg_child_pending(), 3);
    assert_int_equal(sg_child_reap_all(3000), 0);
    assert_int_equal(sg_child_pending(), 0);
    for (size_t i = 0; i < 3; i++) {
        assert_true(not_our_child(pids[i]));
    }
}

static void formats_statuses(void **state)
{
    (void)state;
    char text[64];
    assert_string_equal(sg_child_format_status(0, text, sizeof(text)), "exited with status 0");
    assert_string_equal(sg_child_format_status(9, text, sizeof(text)), "killed by signal 9");
    assert_string_equal(sg_child_format_status(3 << 8, text, sizeof(text)), "exited with status 3");
    assert_non_null(strstr(sg_child_format_status(-1, text, sizeof(text)), "unknown"));
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(spawns_with_nonblocking_cloexec_pipes_in_own_group, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reports_exit_status_once_without_being_told, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(looks_up_the_program_in_the_given_path, setup, teardown),
        cmocka_unit_test_setup_teardown(environment_is_exactly_envp_and_cwd_applies, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(child_gets_no_other_fds, setup, teardown),
        cmocka_unit_test_setup_teardown(child_has_default_signals_and_empty_mask, setup, teardown),
        cmocka_unit_test_setup_teardown(free_while_running_kills_and_reaps, setup, teardown),
        cmocka_unit_test_setup_teardown(free_from_the_exit_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(leader_exit_kills_what_is_left_of_its_group, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(reap_all_at_shutdown, setup, teardown),
        cmocka_unit_test(formats_statuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
