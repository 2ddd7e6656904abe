/* layer: sg_gateway */
/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The stdio transport against real processes on a real loop: cat as an echo
 * upstream, sh scripts for exits, stderr, signals and grandchildren, env for
 * the environment. Every callback asserts it does not run inside a call into
 * the transport; every wait is bounded by a deadline.
 */
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/buf.h"
#include "base/clock.h"
#include "base/mem.h"
#include "gateway/transport.h"
#include "io/child.h"
#include "io/loop.h"

#define RUN_UNTIL(cond, ms)                                \
    do {                                                   \
        uint64_t deadline_ = sg_clock_now_ms() + (ms);     \
        while (!(cond) && sg_clock_now_ms() < deadline_) { \
            sg_loop_run_once(loop, 20);                    \
        }                                                  \
    } while (0)

#define MAX_MSGS 1100

typedef struct sg_test_rec {
    sg_transport_t *t;
    bool in_api; /* a call into the transport is on the stack */
    int ready;
    int down;
    char reason[128];
    char *msgs[MAX_MSGS];
    size_t nmsgs;
    bool restart_in_down;
    int restart_rc;
    bool free_in_message;
} sg_test_rec_t;

static sg_loop_t *loop;

/* ---- recording owner ---- */

static void on_ready(void *owner)
{
    sg_test_rec_t *r = owner;
    assert_false(r->in_api);
    r->ready++;
}

static void on_message(void *owner, sg_str_t json, void *origin)
{
    sg_test_rec_t *r = owner;
    assert_false(r->in_api);
    assert_null(origin);
    assert_true(r->nmsgs < MAX_MSGS);
    r->msgs[r->nmsgs++] = sg_xstrdup_str(json);
    if (r->free_in_message) {
        r->t->ops->free(r->t);
        r->t = NULL;
    }
}

static void on_origin_done(void *owner, void *origin, int status)
{
    (void)owner;
    (void)origin;
    (void)status;
    fail_msg("on_origin_done is never called for stdio");
}

static void on_down(void *owner, const char *reason)
{
    sg_test_rec_t *r = owner;
    assert_false(r->in_api);
    r->down++;
    snprintf(r->reason, sizeof(r->reason), "%s", reason);
    if (r->restart_in_down) {
        r->restart_in_down = false;
        r->restart_rc = r->t->ops->start(r->t);
    }
}

static const sg_transport_events_t events = {
    .on_ready = on_ready,
    .on_message = on_message,
    .on_origin_done = on_origin_done,
    .on_down = on_down,
};

static void rec_clear_msgs(sg_test_rec_t *r)
{
    for (size_t i = 0; i < r->nmsgs; i++) {
        free(r->msgs[i]);
    }
    r->nmsgs = 0;
}

static sg_test_rec_t *rec_new(const sg_stdio_spec_t *spec)
{
    sg_test_rec_t *r = sg_xcalloc(1, sizeof(*r));
    r->t = sg_transport_stdio_new(loop, spec, &events, r, "acme/test");
    return r;
}

static void rec_free(sg_test_rec_t *r)
{
    if (r->t != NULL) {
        r->in_api = true;
        r->t->ops->free(r->t);
        r->in_api = false;
    }
    rec_clear_msgs(r);
    free(r);
}

static int t_start(sg_test_rec_t *r)
{
    r->in_api = true;
    int rc = r->t->ops->start(r->t);
    r->in_api = false;
    return rc;
}

static int t_send(sg_test_rec_t *r, const char *json)
{
    r->in_api = true;
    int rc = r->t->ops->send(r->t, sg_str(json), NULL);
    r->in_api = false;
    return rc;
}

static void t_stop(sg_test_rec_t *r)
{
    r->in_api = true;
    r->t->ops->stop(r->t);
    r->in_api = false;
}

static void t_free(sg_test_rec_t *r)
{
    r->in_api = true;
    r->t->ops->free(r->t);
    r->in_api = false;
    r->t = NULL;
}

/* ---- helpers ---- */

static int setup(void **state)
{
    (void)state;
    loop = sg_loop_new();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    assert_int_equal(sg_child_reap_all(2000), 0);
    sg_loop_free(loop);
    loop = NULL;
    return 0;
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

/* Our stderr (the log) goes to a file until capture_end, which returns its text (caller frees). */
typedef struct sg_test_capture {
    int saved;
    char path[64];
} sg_test_capture_t;

static void capture_begin(sg_test_capture_t *c)
{
    snprintf(c->path, sizeof(c->path), "/tmp/sg-log-XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fflush(stderr);
    c->saved = dup(2);
    dup2(fd, 2);
    close(fd);
}

static char *capture_end(sg_test_capture_t *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    assert_non_null(f);
    sg_buf_t b = SG_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
        sg_buf_append(&b, chunk, n);
    }
    fclose(f);
    unlink(c->path);
    return sg_buf_steal(&b, NULL);
}

static size_t count_substr(const char *s, const char *needle)
{
    size_t n = 0;
    for (const char *p = s; (p = strstr(p, needle)) != NULL; p += strlen(needle)) {
        n++;
    }
    return n;
}

static sg_stdio_spec_t sh_spec(const char *script, const char **args)
{
    args[0] = "-c";
    args[1] = script;
    return (sg_stdio_spec_t){ .command = "sh", .args = args, .nargs = 2 };
}

/* ---- tests ---- */

static void echoes_1000_messages_in_order_with_a_5mb_line(void **state)
{
    (void)state;
    sg_stdio_spec_t spec = { .command = "cat" };
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_send(r, "{}"), SG_ECLOSED); /* not started */
    assert_int_equal(t_start(r), SG_OK);
    assert_int_equal(r->ready, 0);
    RUN_UNTIL(r->ready == 1, 3000);
    assert_int_equal(r->ready, 1);

    size_t big_len = (size_t)5 * 1024 * 1024;
    char *big = sg_xmalloc(big_len + 64);
    int k = snprintf(big, 64, "{\"id\":500,\"data\":\"");
    memset(big + k, 'A', big_len);
    memcpy(big + k + big_len, "\"}", 3);
    for (int i = 0; i < 1000; i++) {
        char small[64];
        snprintf(small, sizeof(small), "{\"jsonrpc\":\"2.0\",\"id\":%d}", i);
        assert_int_equal(t_send(r, i == 500 ? big : small), SG_OK);
    }
    RUN_UNTIL(r->nmsgs == 1000, 20000);
    assert_int_equal(r->nmsgs, 1000);
    for (int i = 0; i < 1000; i++) {
        char small[64];
        snprintf(small, sizeof(small), "{\"jsonrpc\":\"2.0\",\"id\":%d}", i);
        assert_string_equal(r->msgs[i], i == 500 ? big : small);
    }
    free(big);

    t_stop(r);
    assert_int_equal(t_send(r, "{}"), SG_ECLOSED); /* stopping */
    RUN_UNTIL(r->down == 1, 5000);
    assert_int_equal(r->down, 1);
    assert_string_equal(r->reason, "exited with status 0");
    assert_int_equal(t_send(r, "{}"), SG_ECLOSED); /* down */
    rec_free(r);
}

static void stderr_is_logged_and_exit_status_reported(void **state)
{
    (void)state;
    const char *args[2];
    sg_stdio_spec_t spec = sh_spec("echo $$; echo err >&2; exit 3", args);
    sg_test_rec_t *r = rec_new(&spec);
    sg_test_capture_t cap;
    capture_begin(&cap);
    int rc = t_start(r);
    RUN_UNTIL(r->down == 1, 5000);
    char *log = capture_end(&cap);
    assert_int_equal(rc, SG_OK);
    assert_int_equal(r->down, 1);
    assert_string_equal(r->reason, "exited with status 3");
    assert_int_equal(r->nmsgs, 1);
    pid_t pid = parse_pid(r->msgs[0]);
    assert_true(pid > 0);
    assert_true(not_our_child(pid)); /* reaped: no zombie left */
    assert_true(process_gone(pid));
    assert_non_null(strstr(log, "level=info comp=upstream msg=\"acme/test: stderr: err\""));
    assert_non_null(strstr(log, "exited with status 3"));
    free(log);
    rec_free(r);
}

static void stderr_lines_are_truncated_and_rate_limited(void **state)
{
    (void)state;
    const char *args[2];
    sg_stdio_spec_t spec = sh_spec("head -c 5000 /dev/zero | tr '\\0' x >&2; echo >&2; "
                                   "printf 'bell\\007esc\\033[31m\\n' >&2; i=0; "
                                   "while [ $i -lt 300 ]; do echo line $i >&2; i=$((i+1)); done",
                                   args);
    sg_test_rec_t *r = rec_new(&spec);
    sg_test_capture_t cap;
    capture_begin(&cap);
    int rc = t_start(r);
    RUN_UNTIL(r->down == 1, 5000);
    char *log = capture_end(&cap);
    assert_int_equal(rc, SG_OK);
    assert_int_equal(r->down, 1);
    /* the 5000-byte line is logged once, cut at 1 KiB */
    const char *xs = strstr(log, "stderr: xxxx");
    assert_non_null(xs);
    const char *eol = strchr(xs, '\n');
    assert_true(eol - xs < 1200);
    assert_non_null(strstr(xs, "[truncated]"));
    assert_int_equal(count_substr(log, "stderr: xxxx"), 1);
    /* control characters never reach the log */
    assert_non_null(strstr(log, "stderr: bell?esc?[31m"));
    /* at most 50 lines a second */
    size_t logged = count_substr(log, "stderr: ");
    assert_true(logged <= 100);
    assert_true(logged >= 50);
    assert_non_null(strstr(log, "stderr lines not logged"));
    free(log);
    rec_free(r);
}

static void child_environment_is_filtered(void **state)
{
    (void)state;
    setenv("SG_TEST_SECRET_TOKEN", "hunter2", 1);
    setenv("LANG", "C.UTF-8", 1);
    setenv("HOME", "/root-for-test", 1);
    const char *path = getenv("PATH");
    assert_non_null(path);
    const char *env[] = { "EXTRA_VAR=yes", "BROKEN" };
    sg_stdio_spec_t spec = { .command = "env", .env = env, .nenv = 2 };
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    RUN_UNTIL(r->down == 1, 5000);
    assert_int_equal(r->down, 1);
    assert_int_equal(r->nmsgs, 4);
    char want_path[4096];
    snprintf(want_path, sizeof(want_path), "PATH=%s", path);
    assert_string_equal(r->msgs[0], want_path);
    assert_string_equal(r->msgs[1], "HOME=/root-for-test");
    assert_string_equal(r->msgs[2], "LANG=C.UTF-8");
    assert_string_equal(r->msgs[3], "EXTRA_VAR=yes");
    rec_free(r);

    /* a configured PATH replaces the gate's; an unset LANG is not invented */
    unsetenv("LANG");
    const char *env2[] = { "PATH=/usr/bin:/bin" };
    sg_stdio_spec_t spec2 = { .command = "env", .env = env2, .nenv = 1 };
    r = rec_new(&spec2);
    assert_int_equal(t_start(r), SG_OK);
    RUN_UNTIL(r->down == 1, 5000);
    assert_int_equal(r->nmsgs, 2);
    assert_string_equal(r->msgs[0], "HOME=/root-for-test");
    assert_string_equal(r->msgs[1], "PATH=/usr/bin:/bin");
    rec_free(r);
    unsetenv("SG_TEST_SECRET_TOKEN");
}

static void stop_kills_a_child_ignoring_sigterm(void **state)
{
    (void)state;
    const char *args[2];
    sg_stdio_spec_t spec = sh_spec("trap '' TERM; echo up; sleep 100", args);
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    RUN_UNTIL(r->nmsgs == 1, 3000);
    assert_int_equal(r->nmsgs, 1);
    uint64_t t0 = sg_clock_now_ms();
    t_stop(r);
    t_stop(r); /* idempotent */
    RUN_UNTIL(r->down == 1, 8000);
    uint64_t took = sg_clock_now_ms() - t0;
    assert_int_equal(r->down, 1);
    assert_string_equal(r->reason, "killed by signal 9");
    assert_true(took >= 4900 && took < 6500);
    rec_free(r);
}

static void stop_terminates_the_group_after_two_seconds(void **state)
{
    (void)state;
    const char *args[2];
    sg_stdio_spec_t spec = sh_spec("sleep 100 & echo $!; wait", args);
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    RUN_UNTIL(r->nmsgs == 1, 3000);
    assert_int_equal(r->nmsgs, 1);
    pid_t gpid = parse_pid(r->msgs[0]);
    assert_true(gpid > 0);
    uint64_t t0 = sg_clock_now_ms();
    t_stop(r);
    RUN_UNTIL(r->down == 1, 5000);
    uint64_t took = sg_clock_now_ms() - t0;
    assert_int_equal(r->down, 1);
    assert_string_equal(r->reason, "killed by signal 15");
    assert_true(took >= 1900 && took < 3000);
    RUN_UNTIL(process_gone(gpid), 2000);
    assert_true(process_gone(gpid));
    rec_free(r);
}

static void free_while_running_kills_the_group_and_reaps(void **state)
{
    (void)state;
    const char *args[2];
    sg_stdio_spec_t spec = sh_spec("echo $$; sleep 100 & echo $!; wait", args);
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    RUN_UNTIL(r->nmsgs == 2, 3000);
    assert_int_equal(r->nmsgs, 2);
    pid_t pid = parse_pid(r->msgs[0]);
    pid_t gpid = parse_pid(r->msgs[1]);
    t_free(r);
    int ready = r->ready;
    RUN_UNTIL(sg_child_pending() == 0 && process_gone(gpid), 3000);
    assert_int_equal(sg_child_pending(), 0);
    assert_true(not_our_child(pid));
    assert_true(process_gone(gpid));
    /* no events after free */
    assert_int_equal(r->down, 0);
    assert_int_equal(r->ready, ready);
    assert_int_equal(r->nmsgs, 2);
    rec_free(r);
}

static void leader_exit_with_stdout_held_by_a_grandchild(void **state)
{
    (void)state;
    const char *args[2];
    sg_stdio_spec_t spec = sh_spec("sleep 100 & echo $!; exit 4", args);
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    RUN_UNTIL(r->down == 1, (uint64_t)3 * SG_CHILD_SLOW_POLL_MS);
    assert_int_equal(r->down, 1);
    assert_string_equal(r->reason, "exited with status 4");
    assert_int_equal(r->nmsgs, 1);
    pid_t gpid = parse_pid(r->msgs[0]);
    RUN_UNTIL(process_gone(gpid), 2000);
    assert_true(process_gone(gpid));
    rec_free(r);
}

static void restarts_after_down(void **state)
{
    (void)state;
    sg_stdio_spec_t spec = { .command = "cat" };
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    assert_int_equal(t_start(r), SG_EBUSY);
    RUN_UNTIL(r->ready == 1, 3000);
    assert_int_equal(t_send(r, "{\"n\":1}"), SG_OK);
    RUN_UNTIL(r->nmsgs == 1, 3000);
    t_stop(r);
    RUN_UNTIL(r->down == 1, 5000);
    assert_int_equal(r->down, 1);

    /* start again after on_down */
    assert_int_equal(t_start(r), SG_OK);
    RUN_UNTIL(r->ready == 2, 3000);
    assert_int_equal(t_send(r, "{\"n\":2}"), SG_OK);
    RUN_UNTIL(r->nmsgs == 2, 3000);

    /* start again from inside on_down */
    r->restart_in_down = true;
    t_stop(r);
    RUN_UNTIL(r->down == 2 && r->ready == 3, 5000);
    assert_int_equal(r->restart_rc, SG_OK);
    assert_int_equal(r->ready, 3);
    assert_int_equal(t_send(r, "{\"n\":3}"), SG_OK);
    RUN_UNTIL(r->nmsgs == 3, 3000);
    assert_int_equal(r->nmsgs, 3);
    assert_string_equal(r->msgs[0], "{\"n\":1}");
    assert_string_equal(r->msgs[1], "{\"n\":2}");
    assert_string_equal(r->msgs[2], "{\"n\":3}");
    rec_free(r);
}

static void over_long_and_blank_lines_are_skipped(void **state)
{
    (void)state;
    sg_stdio_spec_t spec = { .command = "cat", .max_line = 1000 };
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    char *long_line = sg_xmalloc(300001);
    memset(long_line, 'L', 300000);
    long_line[300000] = '\0';
    char *exact = sg_xmalloc(1001);
    memset(exact, 'E', 1000);
    exact[1000] = '\0';
    sg_test_capture_t cap;
    capture_begin(&cap);
    assert_int_equal(t_send(r, long_line), SG_OK);          /* over the limit across many reads */
    assert_int_equal(t_send(r, "   "), SG_OK);              /* blank */
    assert_int_equal(t_send(r, exact), SG_OK);              /* exactly the limit */
    assert_int_equal(t_send(r, long_line + 298000), SG_OK); /* 2000 bytes, may come at once */
    assert_int_equal(t_send(r, "{\"after\":true}"), SG_OK);
    RUN_UNTIL(r->nmsgs == 2, 5000);
    RUN_UNTIL(false, 100);
    char *log = capture_end(&cap);
    assert_int_equal(r->nmsgs, 2);
    assert_string_equal(r->msgs[0], exact);
    assert_string_equal(r->msgs[1], "{\"after\":true}");
    assert_int_equal(count_substr(log, "discarded"), 2);
    free(log);
    free(long_line);
    free(exact);
    rec_free(r);
}

static void raw_newlines_in_a_message_do_not_split_it(void **state)
{
    (void)state;
    sg_stdio_spec_t spec = { .command = "cat" };
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    assert_int_equal(t_send(r, "{\"a\":\n1,\r\n\"b\":2}"), SG_OK);
    RUN_UNTIL(r->nmsgs == 1, 3000);
    RUN_UNTIL(false, 50);
    assert_int_equal(r->nmsgs, 1);
    assert_string_equal(r->msgs[0], "{\"a\": 1,  \"b\":2}");
    rec_free(r);
}

static void free_inside_on_message(void **state)
{
    (void)state;
    sg_stdio_spec_t spec = { .command = "cat" };
    sg_test_rec_t *r = rec_new(&spec);
    assert_int_equal(t_start(r), SG_OK);
    r->free_in_message = true;
    /* several lines are likely to arrive in one read */
    assert_int_equal(t_send(r, "{\"n\":1}"), SG_OK);
    assert_int_equal(t_send(r, "{\"n\":2}"), SG_OK);
    assert_int_equal(t_send(r, "{\"n\":3}"), SG_OK);
    RUN_UNTIL(r->nmsgs >= 1 && sg_child_pending() == 0, 3000);
    RUN_UNTIL(false, 100);
    assert_int_equal(r->nmsgs, 1);
    assert_int_equal(sg_child_pending(), 0);
    assert_null(r->t);
    rec_free(r);
}

static void spawn_failure_is_returned_and_nothing_follows(void **state)
{
    (void)state;
    sg_stdio_spec_t spec = { .command = "sg-no-such-upstream" };
    sg_test_rec_t *r = rec_new(&spec);
    sg_test_capture_t cap;
    capture_begin(&cap);
    int rc = t_start(r);
    RUN_UNTIL(false, 200);
    char *log = capture_end(&cap);
    assert_int_equal(rc, SG_ENOTFOUND);
    assert_int_equal(r->ready + r->down, 0);
    assert_int_equal(t_send(r, "{}"), SG_ECLOSED);
    t_stop(r); /* not running: no-op */
    RUN_UNTIL(false, 50);
    assert_int_equal(r->down, 0);
    assert_non_null(strstr(log, "sg-no-such-upstream"));
    free(log);
    rec_free(r);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(echoes_1000_messages_in_order_with_a_5mb_line, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(stderr_is_logged_and_exit_status_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(stderr_lines_are_truncated_and_rate_limited, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(child_environment_is_filtered, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_kills_a_child_ignoring_sigterm, setup, teardown),
        cmocka_unit_test_setup_teardown(stop_terminates_the_group_after_two_seconds, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(free_while_running_kills_the_group_and_reaps, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(leader_exit_with_stdout_held_by_a_grandchild, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(restarts_after_down, setup, teardown),
        cmocka_unit_test_setup_teardown(over_long_and_blank_lines_are_skipped, setup, teardown),
        cmocka_unit_test_setup_teardown(raw_newlines_in_a_message_do_not_split_it, setup, teardown),
        cmocka_unit_test_setup_teardown(free_inside_on_message, setup, teardown),
        cmocka_unit_test_setup_teardown(spawn_failure_is_returned_and_nothing_follows, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
