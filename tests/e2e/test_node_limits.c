/* What a device holds and what it refuses to share:
 *   - its sockets as ESP-IDF's httpd keeps them: 7 open at most, a new one
 *     beyond closes the least recently active (the oldest idle ones go,
 *     a legitimate request is answered, an upload in progress is spared);
 *   - its address: a node whose address is taken exits non-zero with the
 *     address and the reason in its --log;
 *   - its flash file: a second node on it exits, also while the first
 *     restarts after an update (the lock outlives the re-execution);
 *   - an app larger than its slot: --create names the file, the slot and
 *     both sizes, and makes no flash file;
 *   - make run (scripts/run.sh) with a device address taken exits 1 naming
 *     it, and stops the broker and the server it had started;
 *   - make run twice on one directory: the second run's server holds the
 *     demo release 1.0.0 alone, as its banner says, whatever the first run
 *     uploaded; Ctrl-C on its terminal ends each run quietly, status 0. */
#include "e2e.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAX_SOCKETS 7
#define EXTRA 5

static char v1[300], v2[300];

static int setup(void **state)
{
    (void)state;
    snprintf(v1, sizeof v1, "%s", e2e_path("limits-1.bin"));
    snprintf(v2, sizeof v2, "%s", e2e_path("limits-2.bin"));
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 200000, NULL);
    return 0;
}

static void start(struct e2e_node *n, const char *name)
{
    e2e_node_init(n, name);
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, NULL};
    assert_int_equal(e2e_node_start(n, args), 0);
}

/* Has the node closed this connection (EOF or reset), within wait_ms? */
static bool closed_by_node(int fd, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char b;
    return poll(&p, 1, wait_ms) == 1 && (p.revents & (POLLHUP | POLLERR) || recv(fd, &b, 1, MSG_DONTWAIT) <= 0);
}

/* MAX_SOCKETS + EXTRA idle connections, one after another: the EXTRA
 * oldest are closed, the others kept; a request is answered and closes
 * the oldest of those left. */
static void test_lru_purge(void **state)
{
    (void)state;
    struct e2e_node n;
    start(&n, "lru");
    int fds[MAX_SOCKETS + EXTRA];
    for (int i = 0; i < MAX_SOCKETS + EXTRA; i++) {
        fds[i] = e2e_connect(&n);
        e2e_sleep_ms(20); /* accepted in this order */
    }
    for (int i = 0; i < EXTRA; i++)
        assert_true(closed_by_node(fds[i], 5000));
    for (int i = EXTRA; i < MAX_SOCKETS + EXTRA; i++)
        assert_false(closed_by_node(fds[i], 0));
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    cJSON_Delete(st);
    assert_true(closed_by_node(fds[EXTRA], 5000));
    for (int i = EXTRA + 1; i < MAX_SOCKETS + EXTRA; i++)
        assert_false(closed_by_node(fds[i], 0));
    for (int i = 0; i < MAX_SOCKETS + EXTRA; i++)
        close(fds[i]);
    e2e_node_stop(&n);
}

/* A slow upload (30 KB/s) while twice MAX_SOCKETS connections arrive:
 * they purge each other, the upload completes and installs. */
static void test_upload_spared(void **state)
{
    (void)state;
    struct e2e_node n;
    start(&n, "spared");
    char url[100], data[320];
    snprintf(url, sizeof url, "%s/ota", n.url);
    snprintf(data, sizeof data, "@%s", v2);
    const char *args[] = {"--limit-rate", "30K", "-H", "Content-Type: application/octet-stream", "-H", n.auth,
                          "--data-binary", data, url, NULL};
    struct e2e_curl_job job;
    e2e_curl_start(&job, args);
    e2e_sleep_ms(1000); /* the upload is in the agent */
    int fds[2 * MAX_SOCKETS];
    for (int i = 0; i < 2 * MAX_SOCKETS; i++)
        fds[i] = e2e_connect(&n);
    struct e2e_http r;
    int code = e2e_curl_wait(&job, &r);
    if (code != 200)
        fprintf(stderr, "upload: %d (curl %d) %s\n", code, r.rc, r.body);
    assert_int_equal(code, 200);
    e2e_http_free(&r);
    for (int i = 0; i < 2 * MAX_SOCKETS; i++)
        close(fds[i]);
    assert_int_equal(e2e_node_wait_boot(&n), 0);
    assert_int_equal(e2e_wait_state(&n, "valid", 10000), 0);
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    cJSON_Delete(st);
    e2e_node_stop(&n);
}

/* Run aloft-node with args to its end; its exit status, its log in *log. */
static int run_node(const char *logname, const char *const args[], char **log)
{
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/aloft-node", ALOFT_BIN);
    const char *argv[32] = {exe};
    size_t k = 1;
    for (size_t i = 0; args[i]; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    char out[300];
    snprintf(out, sizeof out, "%s", e2e_path(logname));
    pid_t pid = e2e_spawn(exe, argv, out, O_TRUNC, true);
    int status = -1;
    for (int i = 0; i < 200 && waitpid(pid, &status, WNOHANG) == 0; i++)
        e2e_sleep_ms(50);
    if (waitpid(pid, &status, WNOHANG) == 0) { /* still running after 10 s: it should not be */
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
        fail_msg("aloft-node %s did not exit", args[0]);
    }
    size_t len;
    *log = (char *)e2e_file_read(out, &len);
    *log = realloc(*log, len + 1);
    (*log)[len] = 0;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* A listening socket on the node's address. */
static int take(const char *listen_addr)
{
    char host[32];
    const char *colon = strrchr(listen_addr, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - listen_addr), listen_addr);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, 4), 0);
    return fd;
}

static void test_address_taken(void **state)
{
    (void)state;
    struct e2e_node n;
    e2e_node_init(&n, "taken");
    int fd = take(n.listen);
    char logfile[300], *log;
    snprintf(logfile, sizeof logfile, "%s", e2e_path("taken.log"));
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--flash", n.flash,
                          "--listen", n.listen, "--log", logfile, NULL};
    assert_int_equal(run_node("taken.out", args, &log), 1);
    free(log);
    size_t len;
    char *in_log = (char *)e2e_file_read(logfile, &len);
    in_log = realloc(in_log, len + 1);
    in_log[len] = 0;
    char want[100];
    snprintf(want, sizeof want, "cannot listen on %s: Address already in use", n.listen);
    if (!strstr(in_log, want))
        fprintf(stderr, "--log has no '%s':\n%s\n", want, in_log);
    assert_non_null(strstr(in_log, want));
    free(in_log);
    close(fd);
}

/* The second node on one flash file exits: while the first serves, and
 * after the first restarted into an update. */
static void test_flash_locked(void **state)
{
    (void)state;
    struct e2e_node a, b;
    start(&a, "locked");
    e2e_node_init(&b, "locked-2");
    const char *args[] = {"--flash", a.flash, "--listen", b.listen, NULL};
    char *log;
    assert_int_equal(run_node("locked-2.out", args, &log), 1);
    assert_non_null(strstr(log, "is in use by another aloft-node"));
    free(log);

    struct e2e_http r;
    assert_int_equal(e2e_upload(&a, "/ota", v2, &r, NULL), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&a), 0);
    assert_int_equal(run_node("locked-3.out", args, &log), 1);
    assert_non_null(strstr(log, "is in use by another aloft-node"));
    free(log);
    cJSON *st = e2e_status(&a);
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    cJSON_Delete(st);
    e2e_node_stop(&a);
}

/* An app larger than its slot: --create says which file, which slot and
 * both sizes, and leaves no flash file behind. */
static void test_app_too_big(void **state)
{
    (void)state;
    const char *big = e2e_path("too-big.bin"), *flash = e2e_path("too-big.img");
    e2e_image(big, "esp32s3", "1.0.0", 1100000, NULL);
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", big, "--flash", flash, NULL};
    char *log;
    assert_int_equal(run_node("too-big.out", args, &log), 1);
    char want[400];
    snprintf(want, sizeof want, "%s (1100000 bytes) does not fit partition ota_0 (983040 bytes)", big);
    if (!strstr(log, want))
        fprintf(stderr, "aloft-node said:\n%s\n(want '%s')\n", log, want);
    assert_non_null(strstr(log, want));
    free(log);
    assert_int_equal(access(flash, F_OK), -1);
}

static bool listening(const char *host, uint16_t port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    bool yes = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    close(fd);
    return yes;
}

/* make run's script on the hosts net.N+1 (broker and server) and
 * net.N+2..4 (devices), with a www.bin of one page and its own directory. */
static void run_env(const char *net, unsigned n)
{
    char page[300], www[300], dir[300], out[300];
    snprintf(page, sizeof page, "%s", e2e_path("page"));
    snprintf(www, sizeof www, "%s", e2e_path("run-www.bin"));
    snprintf(dir, sizeof dir, "%s/run-%u", e2e_dir(), n);
    snprintf(out, sizeof out, "%s", e2e_path("mkfs.out"));
    mkdir(page, 0755);
    char index[320];
    snprintf(index, sizeof index, "%s/index.html", page);
    e2e_file_write(index, "<p>page</p>", 11);
    char aloft[1024], build[1024];
    snprintf(aloft, sizeof aloft, "%s/aloft", ALOFT_BIN);
    snprintf(build, sizeof build, "%s/..", ALOFT_BIN);
    const char *mkfs[] = {aloft, "mkfs", page, "-o", www, NULL};
    int status;
    assert_true(waitpid(e2e_spawn(aloft, mkfs, out, O_TRUNC, true), &status, 0) > 0 && status == 0);

    char broker[64], server[64], devices[200];
    snprintf(broker, sizeof broker, "%s.%u:1883", net, n + 1);
    snprintf(server, sizeof server, "%s.%u:8080", net, n + 1);
    snprintf(devices, sizeof devices, "%s.%u:8032 %s.%u:8032 %s.%u:8032", net, n + 2, net, n + 3, net, n + 4);
    setenv("BUILD", build, 1);
    setenv("ALOFT_RUN_DIR", dir, 1);
    setenv("ALOFT_RUN_WWW", www, 1);
    setenv("ALOFT_RUN_BROKER", broker, 1);
    setenv("ALOFT_RUN_SERVER", server, 1);
    setenv("ALOFT_RUN_DEVICES", devices, 1);
}

/* make run's script with its second device's address taken. */
static void test_run_address_taken(void **state)
{
    (void)state;
    int fd = take("127.0.9.103:8032");
    run_env("127.0.9", 100);
    char out[300];
    snprintf(out, sizeof out, "%s", e2e_path("run.out"));
    int status;
    const char *argv[] = {ALOFT_SOURCE_DIR "/scripts/run.sh", NULL};
    pid_t pid = e2e_spawn(argv[0], argv, out, O_TRUNC, true);
    for (int i = 0; i < 1200 && waitpid(pid, &status, WNOHANG) == 0; i++)
        e2e_sleep_ms(50);
    if (waitpid(pid, &status, WNOHANG) == 0) {
        kill(pid, SIGTERM); /* its trap stops what it started */
        waitpid(pid, &status, 0);
        fail_msg("run.sh did not exit within 60 s with a device address taken");
    }
    size_t len;
    char *said = (char *)e2e_file_read(out, &len);
    said = realloc(said, len + 1);
    said[len] = 0;
    const char *want = "cannot listen on 127.0.9.103:8032: Address already in use";
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 1 || !strstr(said, want))
        fprintf(stderr, "run.sh (status %#x) said:\n%s\n", status, said);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 1);
    assert_non_null(strstr(said, "the device on 127.0.9.103:8032 exited"));
    assert_non_null(strstr(said, want));
    free(said);
    assert_false(listening("127.0.9.101", 8080)); /* aloftd stopped */
    assert_false(listening("127.0.9.101", 1883)); /* the broker stopped */
    assert_false(listening("127.0.9.102", 8032)); /* the first device stopped */
    close(fd);
}

/* run.sh on a terminal of its own (a pty), as make run runs it. */
struct term_run {
    pid_t pid;
    int fd;        /* the terminal's master side */
    char out[1 << 16];
    size_t len;
};

static void term_start(struct term_run *t)
{
    t->len = 0;
    t->out[0] = 0;
    t->pid = forkpty(&t->fd, NULL, NULL, NULL);
    assert_true(t->pid >= 0);
    if (t->pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* its trap stops what it started */
        execl(ALOFT_SOURCE_DIR "/scripts/run.sh", "run.sh", (char *)NULL);
        _exit(127);
    }
}

/* Read what it prints until needle appears (true) or it ends or 60 s pass. */
static bool term_wait(struct term_run *t, const char *needle)
{
    for (int i = 0; i < 600 && !strstr(t->out, needle); i++) {
        struct pollfd p = {.fd = t->fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        ssize_t n = read(t->fd, t->out + t->len, sizeof t->out - 1 - t->len);
        if (n <= 0)
            break; /* every process on the terminal ended */
        t->len += (size_t)n;
        t->out[t->len] = 0;
    }
    return strstr(t->out, needle) != NULL;
}

/* Ctrl-C on its terminal: what it printed after, and its exit status. */
static int term_ctrl_c(struct term_run *t, const char **after)
{
    size_t mark = t->len;
    assert_int_equal(write(t->fd, "\x03", 1), 1);
    term_wait(t, "\x01"); /* never printed: reads until the end */
    int status;
    for (int i = 0; i < 300 && waitpid(t->pid, &status, WNOHANG) == 0; i++)
        e2e_sleep_ms(50);
    if (waitpid(t->pid, &status, WNOHANG) == 0) {
        kill(t->pid, SIGTERM);
        waitpid(t->pid, &status, 0);
        fail_msg("run.sh did not end within 15 s of Ctrl-C");
    }
    close(t->fd);
    *after = t->out + mark;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* The demo releases aloftd holds now: "current: v1 v2 ..." */
static void releases(char *out, size_t cap)
{
    char url[100], token[400];
    snprintf(url, sizeof url, "http://%s", getenv("ALOFT_RUN_SERVER"));
    snprintf(token, sizeof token, "%s/aloftd/token", getenv("ALOFT_RUN_DIR"));
    const char *argv[] = {"aloft", "server", "releases", "aloft-demo", "--json", "--server", url,
                          "--token-file", token, NULL};
    char *text;
    assert_int_equal(aloft_test_run(&text, argv), 0);
    cJSON *j = cJSON_Parse(text);
    free(text);
    assert_non_null(j);
    size_t n = (size_t)snprintf(out, cap, "%s:", e2e_jstr(j, "current"));
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(j, "releases"))
        n += (size_t)snprintf(out + n, n < cap ? cap - n : 0, " %s", e2e_jstr(r, "version"));
    cJSON_Delete(j);
}

/* The README's order, twice on one directory: the first run's devices are
 * given 1.1.0 (uploaded to its aloftd), then make run again. */
static void test_run_twice(void **state)
{
    (void)state;
    run_env("127.0.9", 110);
    static struct term_run t;
    const char *after;
    char held[200], file[400], url[100], token[400];

    term_start(&t);
    if (!term_wait(&t, "Ctrl-C stops everything"))
        fail_msg("the first run did not come up:\n%s", t.out);
    releases(held, sizeof held);
    assert_string_equal(held, "1.0.0: 1.0.0");
    snprintf(file, sizeof file, "%s/demo-1.1.0.bin", getenv("ALOFT_RUN_DIR"));
    snprintf(url, sizeof url, "http://%s", getenv("ALOFT_RUN_SERVER"));
    snprintf(token, sizeof token, "%s/aloftd/token", getenv("ALOFT_RUN_DIR"));
    const char *upload[] = {"aloft", "server", "upload", file, "--server", url, "--token-file", token, NULL};
    assert_int_equal(aloft_test_run(NULL, upload), 0);
    releases(held, sizeof held);
    assert_string_equal(held, "1.1.0: 1.1.0 1.0.0");
    int status = term_ctrl_c(&t, &after);
    if (status != 0 || strcmp(after, "^C\r\nstopped aloftd, the broker and the devices\r\n"))
        fprintf(stderr, "after Ctrl-C (status %d): '%s'\n", status, after);
    assert_int_equal(status, 0);
    assert_string_equal(after, "^C\r\nstopped aloftd, the broker and the devices\r\n");

    /* the second run tells the same story: 1.0.0 on the server and the devices */
    term_start(&t);
    if (!term_wait(&t, "Ctrl-C stops everything"))
        fail_msg("the second run did not come up:\n%s", t.out);
    assert_non_null(strstr(t.out, "holding release 1.0.0"));
    releases(held, sizeof held);
    assert_string_equal(held, "1.0.0: 1.0.0");
    assert_int_equal(term_ctrl_c(&t, &after), 0);
    assert_false(listening("127.0.9.111", 8080)); /* aloftd stopped */
    assert_false(listening("127.0.9.111", 1883)); /* the broker stopped */
    assert_false(listening("127.0.9.112", 8032)); /* a device stopped */
}

int main(void)
{
    e2e_init(157);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_lru_purge, e2e_teardown),
        cmocka_unit_test_teardown(test_upload_spared, e2e_teardown),
        cmocka_unit_test_teardown(test_address_taken, e2e_teardown),
        cmocka_unit_test_teardown(test_flash_locked, e2e_teardown),
        cmocka_unit_test_teardown(test_app_too_big, e2e_teardown),
        cmocka_unit_test_teardown(test_run_address_taken, e2e_teardown),
        cmocka_unit_test_teardown(test_run_twice, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
