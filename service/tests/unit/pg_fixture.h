/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A throw-away PostgreSQL cluster for the unit tests that need one (test_pg,
 * test_migrate, test_audit): started with ops/lib/pgcluster on a free port in
 * a mkdtemp'd directory, stopped in the group teardown, and removed by a
 * reaper process even when the test crashes. Include once, after defining
 * SG_PG_FIXTURE_NAME (a short word for the directory name); the includer
 * provides PGCLUSTER.
 */
#ifndef SG_TESTS_PG_FIXTURE_H
#define SG_TESTS_PG_FIXTURE_H

static struct {
    char dir[64];  /* mkdtemp'd; holds data/ (and whatever a test puts there) */
    char data[96]; /* the cluster */
    char url[160]; /* postgresql://postgres@127.0.0.1:<port>/sentinel */
    int port;
    int reaper_fd; /* write end; the reaper cleans up when it closes */
    pid_t reaper;
} cluster = { .reaper_fd = -1 };

static int free_port(void)
{
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof(a);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(s, (struct sockaddr *)&a, &len) != 0) {
        return -1;
    }
    close(s);
    return ntohs(a.sin_port);
}

/* Runs pgcluster with args; its last stdout line goes to out (may be NULL). Returns the exit
 * status. */
static int run_pgcluster(const char *cmd, const char *arg, char *out, size_t cap)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) != 0) {
        return -1;
    }
    fflush(stdout); /* the child must not print our buffered output a second time */
    fflush(stderr);
    pid_t pid = fork();
    if (pid == 0) {
        dup2(p[1], 1);
        execl(PGCLUSTER, PGCLUSTER, cmd, cluster.data, arg, (char *)NULL);
        _exit(127);
    }
    close(p[1]);
    char buf[4096];
    size_t len = 0;
    ssize_t n;
    while ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) > 0) {
        len += (size_t)n;
    }
    close(p[0]);
    buf[len] = '\0';
    while (len > 0 && buf[len - 1] == '\n') {
        buf[--len] = '\0';
    }
    const char *last = strrchr(buf, '\n');
    if (out != NULL) {
        snprintf(out, cap, "%s", last != NULL ? last + 1 : buf);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A child that waits for our end of a pipe to close (exit, crash), then stops the cluster. */
static void start_reaper(void)
{
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    cluster.reaper = fork();
    if (cluster.reaper == 0) {
        char c;
        close(p[1]);
        while (read(p[0], &c, 1) > 0) {
        }
        execl("/bin/sh", "sh", "-c", "\"$0\" stop \"$1\" >/dev/null 2>&1; rm -rf \"$2\"", PGCLUSTER,
              cluster.data, cluster.dir, (char *)NULL);
        _exit(127);
    }
    close(p[0]);
    cluster.reaper_fd = p[1];
}

/* (Re)starts the cluster on its port, e.g. after a test stopped it with run_pgcluster("stop"). */
SG_UNUSED static int cluster_start(void)
{
    char port[16];
    snprintf(port, sizeof(port), "%d", cluster.port);
    return run_pgcluster("start", port, cluster.url, sizeof(cluster.url));
}

static int cluster_setup(void **state)
{
    (void)state;
    snprintf(cluster.dir, sizeof(cluster.dir), "/tmp/sg-test-%s-XXXXXX", SG_PG_FIXTURE_NAME);
    if (mkdtemp(cluster.dir) == NULL) {
        return -1;
    }
    snprintf(cluster.data, sizeof(cluster.data), "%s/data", cluster.dir);
    start_reaper();
    char port[16];
    cluster.port = free_port();
    snprintf(port, sizeof(port), "%d", cluster.port);
    if (run_pgcluster("start", port, cluster.url, sizeof(cluster.url)) != 0) {
        fprintf(stderr, "pgcluster start failed\n");
        return -1;
    }
    return 0;
}

static int cluster_teardown(void **state)
{
    (void)state;
    run_pgcluster("stop", NULL, NULL, 0);
    close(cluster.reaper_fd); /* the reaper removes the directory and exits */
    waitpid(cluster.reaper, NULL, 0);
    return 0;
}

#endif
