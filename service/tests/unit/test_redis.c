/* SPDX-License-Identifier: Apache-2.0 */
/*
 * io/redis against real redis-server children on free loopback ports: command
 * round trips, pipelining, deadlines, the server dying with commands in
 * flight and coming back, pub/sub across a restart, cancel on free (also from
 * inside callbacks), AUTH/SELECT, and that logs never carry secrets. Every
 * wait drives the loop with a deadline; servers are killed in the group
 * teardown and die with this process (PR_SET_PDEATHSIG) if it crashes.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "base/clock.h"
#include "io/redis.h"

#define REDIS_SERVER "/usr/bin/redis-server"
#define WAIT_MS      5000
#define MAX_SERVERS  8
#define PASSWORD     "Secr3t-Pw-4711"
#define WRONG_PW     "Wr0ng-Pa55-0815"

/* ---- redis-server children ------------------------------------------- */

typedef struct server {
    pid_t pid;
    int port;
    const char *password;
} server_t;

static pid_t g_pids[MAX_SERVERS]; /* every live child, for the group teardown */
static server_t g_main;           /* shared by the tests that do not kill it */

static int free_port(void)
{
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static bool port_accepts(int port)
{
    struct sockaddr_in sa = { .sin_family = AF_INET,
                              .sin_port = htons((uint16_t)port),
                              .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0) {
        close(fd);
    }
    return ok;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000 };
    nanosleep(&ts, NULL);
}

static void exec_server(const server_t *s)
{
    char port[16];
    const char *argv[16];
    int n = 0;
    snprintf(port, sizeof(port), "%d", s->port);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, STDOUT_FILENO);
    close_range(3, ~0u, 0); /* hiredis sockets are not close-on-exec */
    argv[n++] = "redis-server";
    argv[n++] = "--port";
    argv[n++] = port;
    argv[n++] = "--bind";
    argv[n++] = "127.0.0.1";
    argv[n++] = "--save";
    argv[n++] = "";
    argv[n++] = "--appendonly";
    argv[n++] = "no";
    argv[n++] = "--dir";
    argv[n++] = "/tmp";
    if (s->password != NULL) {
        argv[n++] = "--requirepass";
        argv[n++] = s->password;
    }
    argv[n] = NULL;
    execv(REDIS_SERVER, (char *const *)argv);
    _exit(127);
}

static void server_start(server_t *s, int port, const char *password)
{
    s->port = port;
    s->password = password;
    s->pid = fork();
    assert_true(s->pid >= 0);
    if (s->pid == 0) {
        exec_server(s);
    }
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (g_pids[i] == 0) {
            g_pids[i] = s->pid;
            break;
        }
    }
    uint64_t deadline = sg_clock_now_ms() + WAIT_MS;
    while (!port_accepts(port)) {
        assert_true(sg_clock_now_ms() < deadline);
        assert_int_equal(waitpid(s->pid, NULL, WNOHANG), 0); /* still alive */
        sleep_ms(10);
    }
}

static void server_stop(server_t *s, int sig)
{
    if (s->pid <= 0) {
        return;
    }
    kill(s->pid, sig);
    waitpid(s->pid, NULL, 0);
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (g_pids[i] == s->pid) {
            g_pids[i] = 0;
        }
    }
    s->pid = 0;
}

static int group_setup(void **state)
{
    (void)state;
    signal(SIGPIPE, SIG_IGN); /* required by io/redis (hiredis writes with write(2)) */
    server_start(&g_main, free_port(), NULL);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    for (size_t i = 0; i < MAX_SERVERS; i++) {
        if (g_pids[i] > 0) {
            kill(g_pids[i], SIGKILL);
            waitpid(g_pids[i], NULL, 0);
            g_pids[i] = 0;
        }
    }
    return 0;
}

/* ---- driving the loop -------------------------------------------------- */

typedef bool (*cond_fn)(const void *arg);

static bool run_until(sg_loop_t *loop, cond_fn cond, const void *arg, uint64_t max_ms)
{
    uint64_t deadline = sg_clock_now_ms() + max_ms;
    while (!cond(arg)) {
        if (sg_clock_now_ms() >= deadline) {
            return false;
        }
        sg_loop_run_once(loop, 20);
    }
    return true;
}

static void run_for(sg_loop_t *loop, uint64_t ms)
{
    uint64_t deadline = sg_clock_now_ms() + ms;
    while (sg_clock_now_ms() < deadline) {
        sg_loop_run_once(loop, 10);
    }
}

/* ---- recording callbacks ------------------------------------------------ */

typedef struct tcmd {
    sg_redis_cmd_t cmd;
    int calls;
    int status;
    bool inside; /* ran inside sg_redis_command*() */
    int type;    /* reply type, -1 without a reply */
    long long integer;
    char str[128];
    size_t len;
} tcmd_t;

static bool g_in_call;

static void on_tcmd(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    tcmd_t *t = SG_CONTAINER_OF(cmd, tcmd_t, cmd);
    t->calls++;
    t->status = status;
    t->inside = t->inside || g_in_call;
    t->type = reply != NULL ? reply->type : -1;
    if (reply != NULL && reply->str != NULL) {
        t->len = SG_MIN(reply->len, sizeof(t->str));
        memcpy(t->str, reply->str, t->len);
    }
    if (reply != NULL) {
        t->integer = reply->integer;
    }
}

#define SEND(r, t, ms, ...)                                           \
    do {                                                              \
        g_in_call = true;                                             \
        sg_redis_command((r), &(t)->cmd, (ms), on_tcmd, __VA_ARGS__); \
        g_in_call = false;                                            \
    } while (0)

static void send_argv(sg_redis_t *r, tcmd_t *t, uint64_t ms, int argc, const char **argv,
                      const size_t *len)
{
    g_in_call = true;
    sg_redis_command_argv(r, &t->cmd, ms, on_tcmd, argc, argv, len);
    g_in_call = false;
}

static bool is_done(const void *arg)
{
    return ((const tcmd_t *)arg)->calls > 0;
}

typedef struct batch {
    tcmd_t *cmds;
    size_t n;
} batch_t;

static bool all_done(const void *arg)
{
    const batch_t *b = arg;
    for (size_t i = 0; i < b->n; i++) {
        if (b->cmds[i].calls == 0) {
            return false;
        }
    }
    return true;
}

static bool is_connected(const void *arg)
{
    return sg_redis_is_connected(arg);
}

typedef struct states {
    int ups;
    int downs;
} states_t;

static void on_state(void *data, bool up)
{
    states_t *s = data;
    if (up) {
        s->ups++;
    } else {
        s->downs++;
    }
}

typedef struct wait_count {
    const int *counter;
    int at_least;
} wait_count_t;

static bool count_reached(const void *arg)
{
    const wait_count_t *w = arg;
    return *w->counter >= w->at_least;
}

static void wait_count(sg_loop_t *loop, const int *counter, int at_least)
{
    wait_count_t w = { counter, at_least };
    assert_true(run_until(loop, count_reached, &w, WAIT_MS));
}

typedef struct inbox {
    int n;
    char channel[64];
    char message[128];
} inbox_t;

static void on_message(void *data, sg_str_t channel, sg_str_t message)
{
    inbox_t *in = data;
    in->n++;
    snprintf(in->channel, sizeof(in->channel), "%.*s", (int)channel.len, channel.ptr);
    snprintf(in->message, sizeof(in->message), "%.*s", (int)message.len, message.ptr);
}

static const sg_redis_options_t fast_opts = { .connect_timeout_ms = 1000,
                                              .backoff_min_ms = 50,
                                              .backoff_max_ms = 200 };

static sg_redis_t *client_new(sg_loop_t *loop, int port, const char *password, int db)
{
    char text[512];
    sg_redis_url_t url;
    snprintf(text, sizeof(text), "redis://%s%s%s127.0.0.1:%d/%d", password != NULL ? ":" : "",
             password != NULL ? password : "", password != NULL ? "@" : "", port, db);
    assert_int_equal(sg_redis_parse_url(text, &url, NULL), SG_OK);
    return sg_redis_new(loop, &url, &fast_opts);
}

static sg_redis_t *connected_client(sg_loop_t *loop, int port)
{
    sg_redis_t *r = client_new(loop, port, NULL, 0);
    assert_true(run_until(loop, is_connected, r, WAIT_MS));
    return r;
}

/* Runs one command to completion and checks it succeeded once, outside the call. */
static void roundtrip(sg_loop_t *loop, sg_redis_t *r, tcmd_t *t, const char *fmt, const char *arg)
{
    memset(t, 0, sizeof(*t));
    SEND(r, t, 5000, fmt, arg);
    assert_int_equal(t->calls, 0);
    assert_true(run_until(loop, is_done, t, WAIT_MS));
    assert_int_equal(t->calls, 1);
    assert_int_equal(t->status, SG_OK);
    assert_false(t->inside);
}

/*
 * stderr into a file, so tests can read what was logged. A failed assertion
 * leaves the capture on; the tests' teardown ends it, so later output is not
 * swallowed. If the process dies meanwhile, the path printed first has it.
 */
typedef struct capture {
    bool active;
    int saved;
    char path[64];
} capture_t;

static capture_t g_capture;

static void capture_start(void)
{
    capture_t *c = &g_capture;
    snprintf(c->path, sizeof(c->path), "/tmp/test_redis_log_XXXXXX");
    int fd = mkstemp(c->path);
    assert_true(fd >= 0);
    fprintf(stderr, "(stderr captured in %s)\n", c->path);
    fflush(stderr);
    c->saved = dup(STDERR_FILENO);
    dup2(fd, STDERR_FILENO);
    close(fd);
    c->active = true;
}

/* Restores stderr and echoes what was written; returns it (caller frees). */
static char *capture_end(void)
{
    capture_t *c = &g_capture;
    assert_true(c->active);
    c->active = false;
    fflush(stderr);
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    FILE *f = fopen(c->path, "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 20);
    assert_non_null(text);
    size_t n = fread(text, 1, (1 << 20) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(c->path);
    fprintf(stderr, "%s", text);
    return text;
}

static int end_capture(void **state)
{
    (void)state;
    if (g_capture.active) {
        free(capture_end());
    }
    return 0;
}

/* ---- URL parsing --------------------------------------------------------- */

static void parses_valid_urls(void **state)
{
    (void)state;
    sg_redis_url_t u;
    sg_error_t err = { 0 };
    assert_int_equal(sg_redis_parse_url("redis://127.0.0.1", &u, &err), SG_OK);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 6379);
    assert_int_equal(u.db, 0);
    assert_string_equal(u.password, "");
    assert_string_equal(u.user, "");

    assert_int_equal(sg_redis_parse_url("redis://cache-1.internal:6380/3", &u, &err), SG_OK);
    assert_string_equal(u.host, "cache-1.internal");
    assert_int_equal(u.port, 6380);
    assert_int_equal(u.db, 3);

    assert_int_equal(sg_redis_parse_url("redis://:p%40ss:w@rd@redis:7000/2", &u, &err), SG_OK);
    assert_string_equal(u.user, "");
    assert_string_equal(u.password, "p@ss:w@rd");
    assert_string_equal(u.host, "redis");
    assert_int_equal(u.port, 7000);
    assert_int_equal(u.db, 2);

    assert_int_equal(sg_redis_parse_url("redis://alice:s3cret@[::1]:6390", &u, &err), SG_OK);
    assert_string_equal(u.user, "alice");
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 6390);

    assert_int_equal(sg_redis_parse_url("redis://h/", &u, &err), SG_OK);
    assert_string_equal(u.host, "h");
    assert_int_equal(u.db, 0);
}

static void rejects_bad_urls_without_leaking_the_password(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "http://:hunter2pw@h",
        "rediss://:hunter2pw@h",
        "redis://hunter2pw@h",
        "redis://:hunter2pw@",
        "redis://:hunter2pw@h:0",
        "redis://:hunter2pw@h:70000",
        "redis://:hunter2pw@h:12a",
        "redis://:hunter2pw@h/abc",
        "redis://:hunter2pw@h/10000",
        "redis://:hunter2pw@h/1?timeout=1",
        "redis://:hunter2pw@h h",
        "redis://:hunter2pw@[::1",
        "redis://:hunter2pw%zz@h",
        "redis://:hunter2pw%00@h",
        "redis://user:@h",
        "",
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++) {
        sg_redis_url_t u;
        sg_error_t err = { 0 };
        memset(&u, 0x55, sizeof(u));
        int rc = sg_redis_parse_url(bad[i], &u, &err);
        if (rc != SG_ESETTING) {
            fail_msg("accepted %s", bad[i]);
        }
        assert_int_equal(err.code, SG_ESETTING);
        assert_true(err.msg[0] != '\0');
        assert_null(strstr(err.msg, "hunter2pw"));
        assert_string_equal(u.password, "");
        assert_string_equal(u.host, "");
    }
    sg_redis_url_t u;
    assert_int_equal(sg_redis_parse_url(NULL, &u, NULL), SG_ESETTING);
}

/* ---- commands -------------------------------------------------------------- */

static void set_get_round_trip_is_binary_safe(void **state)
{
    (void)state;
    static const char key[] = "sg:test:bin\0key\r\n";
    static const char value[] = "val\0ue\r\n$3\r\n*1\r\nsg-value-secret";
    tcmd_t set = { 0 }, get = { 0 }, fmt_get = { 0 };
    sg_loop_t *loop = sg_loop_new();
    capture_start();
    sg_redis_t *r = connected_client(loop, g_main.port);

    const char *set_argv[] = { "SET", key, value };
    const size_t set_len[] = { 3, sizeof(key) - 1, sizeof(value) - 1 };
    send_argv(r, &set, 5000, 3, set_argv, set_len);
    const char *get_argv[] = { "GET", key };
    const size_t get_len[] = { 3, sizeof(key) - 1 };
    send_argv(r, &get, 5000, 2, get_argv, get_len);
    SEND(r, &fmt_get, 5000, "GET %b", key, sizeof(key) - 1);
    /* replies come in order: the last one done means all are */
    bool done = run_until(loop, is_done, &fmt_get, WAIT_MS);
    sg_redis_free(r);
    sg_loop_free(loop);
    char *log = capture_end();

    assert_true(done);
    assert_int_equal(set.calls, 1);
    assert_int_equal(set.status, SG_OK);
    assert_int_equal(set.type, REDIS_REPLY_STATUS);
    assert_memory_equal(set.str, "OK", 2);
    const tcmd_t *gets[] = { &get, &fmt_get };
    for (size_t i = 0; i < SG_ARRAY_LEN(gets); i++) {
        assert_int_equal(gets[i]->calls, 1);
        assert_false(gets[i]->inside);
        assert_int_equal(gets[i]->status, SG_OK);
        assert_int_equal(gets[i]->type, REDIS_REPLY_STRING);
        assert_int_equal(gets[i]->len, sizeof(value) - 1);
        assert_memory_equal(gets[i]->str, value, sizeof(value) - 1);
    }
    assert_null(strstr(log, "sg-value-secret"));
    assert_null(strstr(log, "sg:test:bin"));
    free(log);
}

static void pipelines_1000_commands_each_completing_once_in_order(void **state)
{
    (void)state;
    enum { N = 1000 };
    tcmd_t del;
    tcmd_t *cmds = calloc(N, sizeof(*cmds));
    assert_non_null(cmds);
    sg_loop_t *loop = sg_loop_new();
    sg_redis_t *r = connected_client(loop, g_main.port);
    roundtrip(loop, r, &del, "DEL %s", "sg:test:counter");

    const char *argv[] = { "INCR", "sg:test:counter" };
    for (size_t i = 0; i < N; i++) {
        send_argv(r, &cmds[i], 5000, 2, argv, NULL);
    }
    batch_t b = { cmds, N };
    assert_true(run_until(loop, all_done, &b, WAIT_MS));
    run_for(loop, 50); /* anything extra would show up as calls == 2 */
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(cmds[i].calls, 1);
        assert_false(cmds[i].inside);
        assert_int_equal(cmds[i].status, SG_OK);
        assert_int_equal(cmds[i].type, REDIS_REPLY_INTEGER);
        assert_int_equal(cmds[i].integer, (long long)i + 1);
    }
    sg_redis_free(r);
    sg_loop_free(loop);
    free(cmds);
}

static void deadline_fires_once_and_the_late_reply_is_dropped(void **state)
{
    (void)state;
    tcmd_t slow = { 0 }, ping = { 0 };
    sg_loop_t *loop = sg_loop_new();
    sg_redis_t *r = connected_client(loop, g_main.port);

    uint64_t start = sg_clock_now_ms();
    SEND(r, &slow, 100, "BLPOP %s 1", "sg:test:never"); /* the server answers after 1 s */
    SEND(r, &ping, 5000, "PING");                       /* pipelined behind it */
    assert_true(run_until(loop, is_done, &slow, WAIT_MS));
    uint64_t waited = sg_clock_now_ms() - start;
    assert_int_equal(slow.status, SG_ETIMEDOUT);
    assert_int_equal(slow.type, -1);
    assert_true(waited >= 90 && waited < 900);
    assert_int_equal(ping.calls, 0);

    /* the BLPOP reply arrives right before PONG: it must not call back again */
    assert_true(run_until(loop, is_done, &ping, WAIT_MS));
    run_for(loop, 50);
    assert_int_equal(slow.calls, 1);
    assert_int_equal(ping.calls, 1);
    assert_int_equal(ping.status, SG_OK);
    assert_memory_equal(ping.str, "PONG", 4);
    assert_true(sg_redis_is_connected(r));
    sg_redis_free(r);
    sg_loop_free(loop);
}

static void commands_while_down_fail_closed_on_a_later_turn(void **state)
{
    (void)state;
    tcmd_t a = { 0 }, b = { 0 };
    states_t st = { 0 };
    sg_loop_t *loop = sg_loop_new();
    sg_redis_t *r = client_new(loop, free_port(), NULL, 0); /* nobody listens there */
    sg_redis_set_state_cb(r, on_state, &st);
    assert_false(sg_redis_is_connected(r));

    SEND(r, &a, 5000, "GET %s", "k");
    const char *argv[] = { "GET", "k" };
    send_argv(r, &b, 5000, 2, argv, NULL);
    assert_int_equal(a.calls, 0); /* not inside the call */
    assert_int_equal(b.calls, 0);
    sg_loop_run_once(loop, 0);
    assert_int_equal(a.calls, 1);
    assert_int_equal(b.calls, 1);
    assert_int_equal(a.status, SG_ECLOSED);
    assert_int_equal(b.status, SG_ECLOSED);
    assert_false(a.inside);
    assert_false(b.inside);
    run_for(loop, 300); /* a few reconnect attempts */
    assert_int_equal(a.calls, 1);
    assert_int_equal(st.ups, 0);
    assert_int_equal(st.downs, 0);
    sg_redis_free(r);
    sg_loop_free(loop);
}

static void rejects_commands_that_change_the_connection(void **state)
{
    (void)state;
    tcmd_t t[5];
    memset(t, 0, sizeof(t));
    sg_loop_t *loop = sg_loop_new();
    sg_redis_t *r = connected_client(loop, g_main.port);
    SEND(r, &t[0], 5000, "SUBSCRIBE %s", "x");
    SEND(r, &t[1], 5000, "select 1");
    SEND(r, &t[2], 5000, "");
    send_argv(r, &t[3], 5000, 0, NULL, NULL);
    SEND(r, &t[4], 5000, "MONITOR");
    batch_t b = { t, SG_ARRAY_LEN(t) };
    assert_true(run_until(loop, all_done, &b, WAIT_MS));
    for (size_t i = 0; i < SG_ARRAY_LEN(t); i++) {
        assert_int_equal(t[i].calls, 1);
        assert_int_equal(t[i].status, SG_EINVAL);
        assert_false(t[i].inside);
    }
    tcmd_t ping;
    roundtrip(loop, r, &ping, "ECHO %s", "still-fine");
    assert_memory_equal(ping.str, "still-fine", 10);
    sg_redis_free(r);
    sg_loop_free(loop);
}

static void server_killed_in_flight_then_restarted_reconnects_by_itself(void **state)
{
    (void)state;
    enum { N = 100, BLOCKED = 10 };
    server_t s;
    states_t st = { 0 };
    tcmd_t blocked[BLOCKED], inflight[N], down = { 0 }, set, get;
    memset(blocked, 0, sizeof(blocked));
    memset(inflight, 0, sizeof(inflight));
    server_start(&s, free_port(), NULL);
    sg_loop_t *loop = sg_loop_new();
    sg_redis_t *r = client_new(loop, s.port, NULL, 0);
    sg_redis_set_state_cb(r, on_state, &st);
    wait_count(loop, &st.ups, 1);
    assert_true(sg_redis_is_connected(r));

    /* these time out first; their (never coming) replies die with the connection */
    for (size_t i = 0; i < BLOCKED; i++) {
        SEND(r, &blocked[i], 100, "BLPOP %s 0", "sg:test:never");
    }
    batch_t bb = { blocked, BLOCKED };
    assert_true(run_until(loop, all_done, &bb, WAIT_MS));
    for (size_t i = 0; i < N; i++) {
        SEND(r, &inflight[i], 10000, "GET %s", "sg:test:k"); /* queued behind the BLPOPs */
    }
    run_for(loop, 100); /* written to the server, no reply possible */
    batch_t b = { inflight, N };
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(inflight[i].calls, 0);
    }

    server_stop(&s, SIGKILL);
    assert_true(run_until(loop, all_done, &b, WAIT_MS));
    wait_count(loop, &st.downs, 1);
    run_for(loop, 100);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(inflight[i].calls, 1);
        assert_int_equal(inflight[i].status, SG_ECLOSED);
        assert_false(inflight[i].inside);
    }
    for (size_t i = 0; i < BLOCKED; i++) {
        assert_int_equal(blocked[i].calls, 1);
        assert_int_equal(blocked[i].status, SG_ETIMEDOUT);
    }
    assert_false(sg_redis_is_connected(r));
    SEND(r, &down, 5000, "PING");
    assert_int_equal(down.calls, 0);
    assert_true(run_until(loop, is_done, &down, WAIT_MS));
    assert_int_equal(down.status, SG_ECLOSED);

    server_start(&s, s.port, NULL); /* same port, same client */
    wait_count(loop, &st.ups, 2);
    assert_int_equal(st.downs, 1);
    roundtrip(loop, r, &set, "SET sg:test:k %s", "back");
    roundtrip(loop, r, &get, "GET %s", "sg:test:k");
    assert_memory_equal(get.str, "back", 4);
    sg_redis_free(r);
    sg_loop_free(loop);
    server_stop(&s, SIGTERM);
}

/* ---- pub/sub ----------------------------------------------------------------- */

static void publish(sg_loop_t *loop, sg_redis_t *r, const char *channel, const char *msg)
{
    tcmd_t t = { 0 };
    SEND(r, &t, 5000, "PUBLISH %s %s", channel, msg);
    assert_true(run_until(loop, is_done, &t, WAIT_MS));
    assert_int_equal(t.status, SG_OK);
    assert_int_equal(t.type, REDIS_REPLY_INTEGER);
    assert_int_equal(t.integer, 1); /* one subscriber: ours */
}

static void pubsub_delivers_and_resubscribes_after_a_restart(void **state)
{
    (void)state;
    server_t s;
    states_t sub = { 0 }, cmd = { 0 };
    inbox_t events = { 0 }, other = { 0 };
    server_start(&s, free_port(), NULL);
    sg_loop_t *loop = sg_loop_new();
    sg_redis_t *r = client_new(loop, s.port, NULL, 0);
    sg_redis_set_state_cb(r, on_state, &cmd);
    sg_redis_set_sub_state_cb(r, on_state, &sub);
    sg_redis_subscribe(r, "sg:events", on_message, &events);
    wait_count(loop, &sub.ups, 1);
    wait_count(loop, &cmd.ups, 1);

    publish(loop, r, "sg:events", "config tenant-a 7");
    wait_count(loop, &events.n, 1);
    assert_string_equal(events.channel, "sg:events");
    assert_string_equal(events.message, "config tenant-a 7");

    sg_redis_subscribe(r, "sg:other", on_message, &other); /* on the live connection */
    wait_count(loop, &sub.ups, 2);
    publish(loop, r, "sg:other", "hello");
    wait_count(loop, &other.n, 1);
    assert_int_equal(events.n, 1);

    server_stop(&s, SIGKILL);
    wait_count(loop, &sub.downs, 1);
    wait_count(loop, &cmd.downs, 1);
    server_start(&s, s.port, NULL);
    wait_count(loop, &sub.ups, 3); /* re-subscribed: the signal to resync */
    wait_count(loop, &cmd.ups, 2);
    publish(loop, r, "sg:events", "killswitch");
    publish(loop, r, "sg:other", "again");
    wait_count(loop, &events.n, 2);
    wait_count(loop, &other.n, 2);
    assert_string_equal(events.message, "killswitch");
    assert_string_equal(other.message, "again");
    assert_int_equal(sub.downs, 1);
    sg_redis_free(r);
    sg_loop_free(loop);
    server_stop(&s, SIGTERM);
}

/* ---- free ------------------------------------------------------------------------ */

static void free_cancels_every_pending_command_once(void **state)
{
    (void)state;
    enum { N = 50 };
    tcmd_t live[N], deferred = { 0 };
    memset(live, 0, sizeof(live));
    sg_loop_t *loop = sg_loop_new();
    sg_redis_t *r = connected_client(loop, g_main.port);
    sg_redis_t *dead = client_new(loop, free_port(), NULL, 0);
    for (size_t i = 0; i < N; i++) {
        SEND(r, &live[i], 10000, "BLPOP %s 0", "sg:test:never");
    }
    run_for(loop, 100);                  /* in flight on the server */
    SEND(dead, &deferred, 5000, "PING"); /* its SG_ECLOSED is still scheduled */
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(live[i].calls, 0);
    }

    sg_redis_free(r);
    sg_redis_free(dead);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(live[i].calls, 1);
        assert_int_equal(live[i].status, SG_ECANCELED);
    }
    assert_int_equal(deferred.calls, 1);
    assert_int_equal(deferred.status, SG_ECANCELED);
    run_for(loop, 100);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(live[i].calls, 1);
    }
    assert_int_equal(deferred.calls, 1);
    sg_loop_free(loop);
}

static sg_redis_t *g_victim;

static void on_free_client(sg_redis_cmd_t *cmd, int status, const redisReply *reply)
{
    on_tcmd(cmd, status, reply);
    sg_redis_free(g_victim);
    g_victim = NULL;
}

static void on_message_free_client(void *data, sg_str_t channel, sg_str_t message)
{
    on_message(data, channel, message);
    sg_redis_free(g_victim);
    g_victim = NULL;
}

static bool victim_gone(const void *arg)
{
    (void)arg;
    return g_victim == NULL;
}

static void free_from_inside_callbacks_is_safe(void **state)
{
    (void)state;
    tcmd_t first = { 0 }, rest[3], pub = { 0 };
    inbox_t in = { 0 };
    states_t sub = { 0 };
    memset(rest, 0, sizeof(rest));
    sg_loop_t *loop = sg_loop_new();

    /* from a reply callback, with more commands pipelined behind it */
    g_victim = connected_client(loop, g_main.port);
    sg_redis_command(g_victim, &first.cmd, 5000, on_free_client, "PING");
    for (size_t i = 0; i < SG_ARRAY_LEN(rest); i++) {
        SEND(g_victim, &rest[i], 5000, "BLPOP %s 0", "sg:test:never");
    }
    assert_true(run_until(loop, victim_gone, NULL, WAIT_MS));
    assert_int_equal(first.calls, 1);
    assert_int_equal(first.status, SG_OK);
    for (size_t i = 0; i < SG_ARRAY_LEN(rest); i++) {
        assert_int_equal(rest[i].calls, 1);
        assert_int_equal(rest[i].status, SG_ECANCELED);
    }

    /* from a message callback */
    sg_redis_t *publisher = connected_client(loop, g_main.port);
    g_victim = client_new(loop, g_main.port, NULL, 0);
    sg_redis_set_sub_state_cb(g_victim, on_state, &sub);
    sg_redis_subscribe(g_victim, "sg:test:free", on_message_free_client, &in);
    wait_count(loop, &sub.ups, 1);
    SEND(publisher, &pub, 5000, "PUBLISH %s %s", "sg:test:free", "bye");
    assert_true(run_until(loop, victim_gone, NULL, WAIT_MS));
    assert_int_equal(in.n, 1);
    run_for(loop, 100);
    for (size_t i = 0; i < SG_ARRAY_LEN(rest); i++) {
        assert_int_equal(rest[i].calls, 1);
    }
    assert_int_equal(first.calls, 1);
    sg_redis_free(publisher);
    sg_loop_free(loop);
}

/* ---- AUTH, SELECT, timeouts, secrets in logs ------------------------------------ */

static void auth_and_select_with_requirepass(void **state)
{
    (void)state;
    server_t s;
    tcmd_t set, get2, get0;
    states_t sub = { 0 };
    inbox_t in = { 0 };
    server_start(&s, free_port(), PASSWORD);
    sg_loop_t *loop = sg_loop_new();
    capture_start();
    sg_redis_t *db2 = client_new(loop, s.port, PASSWORD, 2);
    sg_redis_t *db0 = client_new(loop, s.port, PASSWORD, 0);
    bool up = run_until(loop, is_connected, db2, WAIT_MS) &&
              run_until(loop, is_connected, db0, WAIT_MS);
    sg_redis_set_sub_state_cb(db2, on_state, &sub);
    sg_redis_subscribe(db2, "sg:events", on_message, &in);
    assert_true(up);
    roundtrip(loop, db2, &set, "SET sg:test:auth %s", "in-db-2");
    roundtrip(loop, db2, &get2, "GET %s", "sg:test:auth");
    roundtrip(loop, db0, &get0, "GET %s", "sg:test:auth");
    publish(loop, db0, "sg:events", "config t 1"); /* the subscriber authenticated too */
    wait_count(loop, &in.n, 1);
    sg_redis_free(db2);
    sg_redis_free(db0);
    sg_loop_free(loop);
    char *log = capture_end();
    assert_memory_equal(get2.str, "in-db-2", 7);
    assert_int_equal(get0.type, REDIS_REPLY_NIL); /* SELECT 2 happened on db2 only */
    assert_int_equal(sub.ups, 1);
    assert_null(strstr(log, PASSWORD));
    free(log);
    server_stop(&s, SIGTERM);
}

static void wrong_password_keeps_retrying_and_never_logs_it(void **state)
{
    (void)state;
    server_t s;
    states_t cmd = { 0 }, sub = { 0 };
    tcmd_t t = { 0 };
    inbox_t in = { 0 };
    server_start(&s, free_port(), PASSWORD);
    sg_loop_t *loop = sg_loop_new();
    capture_start();
    sg_redis_t *r = client_new(loop, s.port, WRONG_PW, 1);
    sg_redis_set_state_cb(r, on_state, &cmd);
    sg_redis_set_sub_state_cb(r, on_state, &sub);
    sg_redis_subscribe(r, "sg:events", on_message, &in);
    run_for(loop, 600); /* several refused attempts on both connections */
    bool connected = sg_redis_is_connected(r);
    g_in_call = true;
    sg_redis_command(r, &t.cmd, 5000, on_tcmd, "PING");
    g_in_call = false;
    bool done = run_until(loop, is_done, &t, WAIT_MS);
    sg_redis_free(r);
    sg_loop_free(loop);
    char *log = capture_end();

    assert_false(connected);
    assert_int_equal(cmd.ups, 0);
    assert_int_equal(sub.ups, 0);
    assert_true(done);
    assert_int_equal(t.status, SG_ECLOSED);
    assert_false(t.inside);
    assert_non_null(strstr(log, "AUTH refused"));
    assert_null(strstr(log, WRONG_PW));
    assert_null(strstr(log, PASSWORD));
    free(log);
    server_stop(&s, SIGTERM);
}

static void handshake_deadline_against_a_silent_server(void **state)
{
    (void)state;
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(sa);
    states_t st = { 0 };
    /* accepts TCP connections (kernel backlog) but never answers */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    sg_redis_options_t opts = fast_opts;
    opts.connect_timeout_ms = 200;
    sg_redis_url_t url = { .host = "127.0.0.1", .port = ntohs(sa.sin_port) };
    sg_loop_t *loop = sg_loop_new();
    capture_start();
    sg_redis_t *r = sg_redis_new(loop, &url, &opts);
    sg_redis_set_state_cb(r, on_state, &st);
    run_for(loop, 700);
    bool connected = sg_redis_is_connected(r);
    sg_redis_free(r);
    sg_loop_free(loop);
    char *log = capture_end();
    close(fd);
    assert_false(connected);
    assert_int_equal(st.ups, 0);
    assert_non_null(strstr(log, "timed out"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_valid_urls),
        cmocka_unit_test(rejects_bad_urls_without_leaking_the_password),
        cmocka_unit_test_teardown(set_get_round_trip_is_binary_safe, end_capture),
        cmocka_unit_test(pipelines_1000_commands_each_completing_once_in_order),
        cmocka_unit_test(deadline_fires_once_and_the_late_reply_is_dropped),
        cmocka_unit_test(commands_while_down_fail_closed_on_a_later_turn),
        cmocka_unit_test(rejects_commands_that_change_the_connection),
        cmocka_unit_test(server_killed_in_flight_then_restarted_reconnects_by_itself),
        cmocka_unit_test(pubsub_delivers_and_resubscribes_after_a_restart),
        cmocka_unit_test(free_cancels_every_pending_command_once),
        cmocka_unit_test(free_from_inside_callbacks_is_safe),
        cmocka_unit_test_teardown(auth_and_select_with_requirepass, end_capture),
        cmocka_unit_test_teardown(wrong_password_keeps_retrying_and_never_logs_it, end_capture),
        cmocka_unit_test_teardown(handshake_deadline_against_a_silent_server, end_capture),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
