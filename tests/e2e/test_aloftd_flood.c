/* aloftd under a connection flood from one address: 3,000 idle sockets and
 * 500 that trickle a header byte every 2 s, all from 127.0.9.5, against a
 * per-address limit of 3,200. Meanwhile devices on their own addresses
 * (127.0.9.10-29) ask GET /update with HTTPUpdate's headers, and every one
 * is answered. The sockets beyond the limit are refused; every held one is
 * closed by the request-head deadline (the default 10 s), the trickling
 * ones too although they never stop sending (the idle timeout, 60 s here,
 * restarts at every byte and would never end them); and aloftd's log says
 * what was refused and closed, with counts.
 * Past the head, a body is the idle timeout's: one that trickles a byte a
 * second for longer than the head deadline is answered, one that stalls
 * is closed. */
#include "aloftd_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define IDLE 3000
#define TRICKLE 500
#define PER_ADDRESS "3200"
#define FLOOD_FROM "127.0.9.5"
#define DEVICES 20
#define WAIT_CLOSED_MS 40000u /* the head deadline is 10 s, the idle timeout 60 s */

static struct aloftd_proc srv;
static int socks[IDLE + TRICKLE];
static bool closed[IDLE + TRICKLE];

/* A non-blocking connection to aloftd from the flooding address. */
static int flood_socket(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, FLOOD_FROM, &from.sin_addr);
    inet_pton(AF_INET, ALOFTD_TEST_ADDR, &to.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
    int rc = connect(fd, (struct sockaddr *)&to, sizeof to);
    assert_true(rc == 0 || errno == EINPROGRESS);
    return fd;
}

/* Mark the sockets aloftd has closed (EOF or reset); how many are open. */
static unsigned count_open(void)
{
    unsigned open = 0;
    for (int i = 0; i < IDLE + TRICKLE; i++) {
        if (closed[i])
            continue;
        struct pollfd p = {.fd = socks[i], .events = POLLIN};
        char b;
        if (poll(&p, 1, 0) == 1 && (p.revents & (POLLHUP | POLLERR) || recv(socks[i], &b, 1, 0) <= 0))
            closed[i] = true;
        else
            open++;
    }
    return open;
}

/* One byte of a head that never ends: a request line, then a header
 * whose value goes on for ever. */
static void trickle(unsigned round)
{
    static const char head[] = "GET /update HTTP/1.1\r\nX-Pad: ";
    char b = round < sizeof head - 1 ? head[round] : 'a';
    for (int i = IDLE; i < IDLE + TRICKLE; i++)
        if (!closed[i] && send(socks[i], &b, 1, MSG_NOSIGNAL) != 1)
            closed[i] = true;
}

/* Every device asks /update from its own address: each is answered (304:
 * it runs the current release). */
static void devices_ask(void)
{
    for (int i = 0; i < DEVICES; i++) {
        char from[20], mac[60];
        snprintf(from, sizeof from, "127.0.9.%d", 10 + i);
        snprintf(mac, sizeof mac, "x-ESP32-STA-MAC: 24:0A:C4:09:00:%02X", i);
        const char *args[] = {"--interface", from, "-H", "User-Agent: ESP32-http-Update", "-H", mac,
                              "-H", "x-ESP32-free-space: 1900544", "-H", "x-ESP32-mode: sketch",
                              "--max-time", "20", NULL};
        struct e2e_http r;
        int code = aloftd_get(&srv, &r, "/update?dev=flood&ver=1.0.0", args);
        if (code != 304)
            fprintf(stderr, "device %s: %d (curl %d) %s\n", from, code, r.rc, r.body);
        assert_int_equal(code, 304);
        e2e_http_free(&r);
    }
}

/* The sum of the number before `after` on every line of the log with `line`. */
static unsigned long log_sum(const char *log, const char *line, const char *after)
{
    unsigned long sum = 0;
    for (const char *p = strstr(log, line); p; p = strstr(p + 1, line)) {
        const char *eol = strchr(p, '\n');
        const char *a = strstr(p, after);
        if (!a || (eol && a > eol))
            continue;
        while (a > p && a[-1] == ' ')
            a--;
        while (a > p && a[-1] >= '0' && a[-1] <= '9')
            a--;
        sum += strtoul(a, NULL, 10);
    }
    return sum;
}

static void test_flood_from_one_address(void **state)
{
    (void)state;
    aloftd_init(&srv, "flood");
    const char *args[] = {"--max-per-address", PER_ADDRESS, "--idle-timeout", "60", NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    char img[300];
    snprintf(img, sizeof img, "%s", e2e_path("flood-1.0.0.bin"));
    e2e_image(img, "esp32s3", "1.0.0", 0, NULL);
    struct e2e_http r;
    assert_int_equal(aloftd_upload(&srv, &r, img, "?platform=flood", NULL), 201);
    e2e_http_free(&r);
    uint16_t port = (uint16_t)atoi(strrchr(srv.url, ':') + 1);

    for (int i = 0; i < IDLE + TRICKLE; i++)
        socks[i] = flood_socket(port);
    devices_ask();
    unsigned round = 0;
    uint64_t t0 = e2e_now_ms();
    while (count_open() && e2e_now_ms() - t0 < WAIT_CLOSED_MS) {
        trickle(round++);
        devices_ask();
        e2e_sleep_ms(2000);
    }
    unsigned left = count_open();
    unsigned trickling = 0;
    for (int i = IDLE; i < IDLE + TRICKLE; i++)
        trickling += !closed[i];
    if (left)
        fprintf(stderr, "%u sockets still open (%u trickling) after %u ms\n", left, trickling, WAIT_CLOSED_MS);
    assert_int_equal(left, 0);
    devices_ask(); /* and after it */

    /* the log line comes at the end of its 10 s interval */
    char *log = NULL;
    for (int i = 0; i < 150; i++) {
        free(log);
        log = aloftd_log_read(&srv);
        if (strstr(log, "whose request head took over") &&
            log_sum(log, "connections: ", " whose request head") >= IDLE + TRICKLE - 300)
            break;
        e2e_sleep_ms(200);
    }
    unsigned long refused = log_sum(log, "connections: ", " over the per-address limit");
    unsigned long late = log_sum(log, "connections: ", " whose request head");
    if (refused < 1 || refused > 300 || late + refused < IDLE + TRICKLE || !strstr(log, "most from " FLOOD_FROM))
        fprintf(stderr, "refused %lu, closed late %lu; aloftd's log:\n%s\n", refused, late, log);
    assert_in_range(refused, 1, 300);
    assert_true(late + refused >= IDLE + TRICKLE);
    assert_non_null(strstr(log, "per-address limit of " PER_ADDRESS ", most from " FLOOD_FROM));
    assert_null(strstr(log, "\nlibmicrohttpd")); /* its lines carry aloftd's prefix */
    free(log);
    for (int i = 0; i < IDLE + TRICKLE; i++)
        close(socks[i]);
}

/* A connection from 127.0.9.6 with a report's head sent whole: Content-Length 7. */
static int report_head(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in from = {.sin_family = AF_INET}, to = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.9.6", &from.sin_addr);
    inet_pton(AF_INET, ALOFTD_TEST_ADDR, &to.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&from, sizeof from), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    static const char head[] = "POST /api/devices/24:0A:C4:09:01:01/report HTTP/1.1\r\nHost: aloftd\r\n"
                               "Content-Type: application/json\r\nContent-Length: 7\r\n\r\n";
    assert_int_equal(send(fd, head, sizeof head - 1, MSG_NOSIGNAL), (ssize_t)(sizeof head - 1));
    return fd;
}

static void test_body_idle_timeout(void **state)
{
    (void)state;
    aloftd_init(&srv, "body");
    const char *args[] = {"--head-timeout", "2", "--idle-timeout", "4", NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    uint16_t port = (uint16_t)atoi(strrchr(srv.url, ':') + 1);

    /* a byte a second for 7 s, over three times the head deadline: answered */
    int fd = report_head(port);
    static const char body[] = "{\"x\":1}";
    for (size_t i = 0; i < sizeof body - 1; i++) {
        e2e_sleep_ms(1000);
        assert_int_equal(send(fd, body + i, 1, MSG_NOSIGNAL), 1);
    }
    char reply[64] = "";
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_true(recv(fd, reply, sizeof reply - 1, 0) > 0);
    if (strncmp(reply, "HTTP/1.1 ", 9) || !strncmp(reply, "HTTP/1.1 408", 12))
        fprintf(stderr, "the trickled report got: %s\n", reply);
    assert_int_equal(strncmp(reply, "HTTP/1.1 ", 9), 0);
    assert_int_not_equal(strncmp(reply, "HTTP/1.1 408", 12), 0);
    close(fd);

    /* three bytes, then nothing: closed by the idle timeout, unanswered */
    fd = report_head(port);
    assert_int_equal(send(fd, body, 3, MSG_NOSIGNAL), 3);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ssize_t got = recv(fd, reply, sizeof reply - 1, 0);
    if (got > 0) {
        reply[got] = 0;
        fprintf(stderr, "the stalled report got: %s\n", reply);
    }
    assert_true(got == 0 || (got < 0 && errno == ECONNRESET)); /* not EAGAIN: our own 20 s ran out */
    close(fd);
}

int main(void)
{
    /* the test's own sockets, 3,500 of them */
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < IDLE + TRICKLE + 256) {
        printf("test_aloftd_flood: skipped: needs %d open files, ulimit -Hn is %llu\n", IDLE + TRICKLE + 256,
               (unsigned long long)rl.rlim_cur);
        return 77;
    }
    e2e_init(156);
    if (aloftd_db_init("aloftd flood test"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_flood_from_one_address, aloftd_teardown),
        cmocka_unit_test_teardown(test_body_idle_timeout, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
