/* aloft trigger end to end: a real mosquitto broker (mqtt_harness), real
 * aloft-node devices, and a small HTTP server of the test's own that hands
 * out the release, except to exactly one download, which gets an image of
 * the same version and size that panics at boot. Five devices of a
 * platform — three that update, the one that gets the panicking image and
 * rolls back, one stopped (its last will says offline) — and
 * `aloft trigger --wait` reports five outcomes and exit 1; a second round
 * (the stopped one forgotten) is all updated or unchanged: exit 0. One
 * device of another chip is rejected with its reason; --target frontend
 * flips a device's www slot; an image that never confirms itself is
 * unconfirmed at the timeout; Ctrl-C while waiting is interrupted (130);
 * without --wait the trigger is published once, as given; bad arguments
 * exit 2. */
#include "mqtt_harness.h"

#include "file.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define RUN_MS 150000u /* an aloft trigger --wait --timeout 120 ends by itself before this */

static struct mqtt_broker broker;
static char good[300], panics[300], old[300], other_chip[300], www_dir[300], www_new[300], no_confirm[300];

static int setup(void **state)
{
    (void)state;
    snprintf(good, sizeof good, "%s", e2e_path("tr-1.1.0.bin"));
    snprintf(panics, sizeof panics, "%s", e2e_path("tr-1.1.0-panics.bin"));
    snprintf(old, sizeof old, "%s", e2e_path("tr-1.0.0.bin"));
    snprintf(other_chip, sizeof other_chip, "%s", e2e_path("tr-esp32-1.0.0.bin"));
    /* the same version and size: only the simulator record tells them apart */
    e2e_image(good, "esp32s3", "1.1.0", 200000, NULL);
    e2e_image(panics, "esp32s3", "1.1.0", 200000, "panic-on-boot");
    e2e_image(old, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(other_chip, "esp32", "1.0.0", 0, NULL);
    snprintf(no_confirm, sizeof no_confirm, "%s", e2e_path("tr-1.2.0-no-confirm.bin"));
    e2e_image(no_confirm, "esp32s3", "1.2.0", 0, "no-confirm");
    /* a frontend for the nodes' www_0 and a new one to pull */
    snprintf(www_dir, sizeof www_dir, "%s", e2e_path("www"));
    snprintf(www_new, sizeof www_new, "%s", e2e_path("www-new.bin"));
    char dir2[300], file[400];
    snprintf(dir2, sizeof dir2, "%s", e2e_path("www2"));
    assert_int_equal(mkdir(www_dir, 0755), 0);
    assert_int_equal(mkdir(dir2, 0755), 0);
    snprintf(file, sizeof file, "%s/index.html", www_dir);
    e2e_file_write(file, "<h1>one</h1>\n", 13);
    snprintf(file, sizeof file, "%s/index.html", dir2);
    e2e_file_write(file, "<h1>two</h1>\n", 13);
    const char *mkfs[] = {"aloft", "mkfs", dir2, "-o", www_new, NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);
    return 0;
}

/* ---- the file server: the release, or once the panicking image ---- */

static struct {
    int fd;
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t lock;
    unsigned gets, panics_left;
    uint8_t *good, *panics, *www, *noconf;
    size_t good_len, panics_len, www_len, noconf_len;
} fs = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void *serve_one(void *arg)
{
    int c = (int)(intptr_t)arg;
    char req[4096] = "";
    size_t n = 0;
    while (n < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        req[n] = 0;
    }
    req[n] = 0;
    bool head = !strncmp(req, "HEAD ", 5), get = !strncmp(req, "GET ", 4);
    bool www = strstr(req, " /www.bin ") != NULL, noconf = strstr(req, " /no-confirm.bin ") != NULL;
    const uint8_t *body = www ? fs.www : noconf ? fs.noconf : fs.good;
    size_t len = www ? fs.www_len : noconf ? fs.noconf_len : fs.good_len;
    pthread_mutex_lock(&fs.lock);
    if (get && !www && !noconf) {
        fs.gets++;
        if (fs.panics_left) {
            fs.panics_left--;
            body = fs.panics;
            len = fs.panics_len;
        }
    }
    pthread_mutex_unlock(&fs.lock);
    char hdr[300];
    int h = head || get ? snprintf(hdr, sizeof hdr,
                                   "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n"
                                   "Content-Length: %zu\r\nConnection: close\r\n\r\n", len)
                        : snprintf(hdr, sizeof hdr, "HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n"
                                                    "Connection: close\r\n\r\n");
    bool ok = write(c, hdr, (size_t)h) == h;
    for (size_t off = 0; ok && get && off < len;) {
        ssize_t w = write(c, body + off, len - off);
        ok = w > 0;
        off += ok ? (size_t)w : 0;
    }
    close(c);
    return NULL;
}

static void *serve(void *arg)
{
    (void)arg;
    for (;;) {
        int c = accept(fs.fd, NULL, NULL);
        if (c < 0)
            return NULL;
        pthread_t t;
        if (pthread_create(&t, NULL, serve_one, (void *)(intptr_t)c) == 0)
            pthread_detach(t);
        else
            close(c);
    }
}

static void fs_start(unsigned panics_left)
{
    if (fs.fd < 0) {
        signal(SIGPIPE, SIG_IGN);
        fs.good = e2e_file_read(good, &fs.good_len);
        fs.panics = e2e_file_read(panics, &fs.panics_len);
        fs.www = e2e_file_read(www_new, &fs.www_len);
        fs.noconf = e2e_file_read(no_confirm, &fs.noconf_len);
        fs.fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t alen = sizeof a;
        assert_int_equal(bind(fs.fd, (struct sockaddr *)&a, sizeof a), 0);
        assert_int_equal(listen(fs.fd, 64), 0);
        assert_int_equal(getsockname(fs.fd, (struct sockaddr *)&a, &alen), 0);
        fs.port = ntohs(a.sin_port);
        assert_int_equal(pthread_create(&fs.thread, NULL, serve, NULL), 0);
    }
    pthread_mutex_lock(&fs.lock);
    fs.gets = 0;
    fs.panics_left = panics_left;
    pthread_mutex_unlock(&fs.lock);
}

static const char *fs_url(void)
{
    static char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/fw-1.1.0.bin", fs.port);
    return url;
}

static const char *fs_www_url(void)
{
    static char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/www.bin", fs.port);
    return url;
}

static const char *fs_no_confirm_url(void)
{
    static char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%u/no-confirm.bin", fs.port);
    return url;
}

/* ---- running aloft trigger ---- */

/* Run aloft with argv (after "aloft"), stdout and stderr into *out;
 * its exit status. Bounded by RUN_MS. */
static int run(char **out, const char *const args[])
{
    const char *argv[48] = {"aloft"};
    size_t k = 1;
    for (size_t i = 0; args[i]; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    const char *file = e2e_path("aloft.out");
    pid_t pid = e2e_spawn(ALOFT_BIN "/aloft", argv, file, O_TRUNC, true);
    int status = -1;
    uint64_t end = e2e_now_ms() + RUN_MS;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (e2e_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            fprintf(stderr, "aloft trigger did not end within %u ms\n", RUN_MS);
            fail();
        }
        e2e_sleep_ms(20);
    }
    size_t len;
    *out = (char *)e2e_file_read(file, &len);
    char *s = realloc(*out, len + 1);
    assert_non_null(s);
    s[len] = 0;
    *out = s;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The file as a string ("" when it does not exist yet); free() it. */
static char *read_text(const char *file)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (aloft_file_read(file, &data, &len) != 0)
        len = 0;
    char *s = realloc(data, len + 1);
    assert_non_null(s);
    s[len] = 0;
    return s;
}

/* Wait until file holds needle. Returns 0 or -1. */
static int wait_file(const char *file, const char *needle, unsigned timeout_ms)
{
    uint64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        char *text = read_text(file);
        bool found = strstr(text, needle) != NULL;
        free(text);
        if (found)
            return 0;
        if (e2e_now_ms() > end)
            return -1;
        e2e_sleep_ms(20);
    }
}

static void expect_run(const char *const args[], int want, const char *message)
{
    char *out;
    int rc = run(&out, args);
    if (rc != want || (message && !strstr(out, message)))
        fprintf(stderr, "aloft %s ...: exit %d (want %d), output:\n%s\n(want '%s')\n", args[0], rc, want, out,
                message ? message : "");
    assert_int_equal(rc, want);
    if (message)
        assert_non_null(strstr(out, message));
    free(out);
}

static int teardown(void **state)
{
    mqtt_sub_stop();
    int rc = e2e_teardown(state);
    mqtt_broker_stop(&broker);
    return rc;
}

static void start_node(struct e2e_node *n, const char *id, const char *firmware)
{
    e2e_node_init(n, id);
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", firmware, "--mqtt", broker.addr,
                          "--device-id", id, "--platform", "five", "--www", www_dir, NULL};
    assert_int_equal(e2e_node_start(n, args), 0);
    assert_int_equal(e2e_node_wait_log(n, "mqtt: subscribed to 2 topics", 1, MQTT_WAIT_MS), 0);
}

/* The report's entry for device id. */
static const cJSON *entry(const cJSON *report, const char *id)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(report, "devices"))
    {
        if (!strcmp(e2e_jstr(d, "device"), id))
            return d;
    }
    fprintf(stderr, "no outcome for %s in the report\n", id);
    fail();
    return NULL;
}

static void expect_runs(struct e2e_node *n, const char *version, const char *partition)
{
    cJSON *st = e2e_status(n);
    if (strcmp(e2e_jstr(st, "version"), version) || strcmp(e2e_jstr(st, "running_partition"), partition))
        fprintf(stderr, "%s runs %s on %s, want %s on %s\n", n->name, e2e_jstr(st, "version"),
                e2e_jstr(st, "running_partition"), version, partition);
    assert_string_equal(e2e_jstr(st, "version"), version);
    assert_string_equal(e2e_jstr(st, "running_partition"), partition);
    cJSON_Delete(st);
}

/* ---- five devices of a platform ---- */

static void test_wait_platform(void **state)
{
    (void)state;
    mqtt_broker_init(&broker, "five", NULL, NULL);
    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", NULL);
    fs_start(1);
    struct e2e_node n[5];
    const char *ids[5] = {"five-1", "five-2", "five-3", "five-4", "five-5"};
    for (int i = 0; i < 5; i++)
        start_node(&n[i], ids[i], old);
    /* five-5 is switched off: the broker publishes its last will */
    unsigned from = 0;
    e2e_node_kill9(&n[4]);
    cJSON_Delete(mqtt_sub_wait(&from, "aloft/five/five-5/state", "state", "offline", MQTT_WAIT_MS));

    char *out;
    const char *args[] = {"trigger", "--broker", broker.addr, "--platform", "five", "--url", fs_url(), "--version",
                          "1.1.0", "--id", "round-1", "--wait", "--timeout", "120", "--json", NULL};
    int rc = run(&out, args);
    cJSON *report = cJSON_Parse(out);
    if (!report || rc != 1)
        fprintf(stderr, "aloft trigger --wait: exit %d (want 1), output:\n%s\n", rc, out);
    assert_int_equal(rc, 1);
    assert_non_null(report);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(report, "devices")), 5);
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(report, "summary");
    if (e2e_jnum(sum, "updated") != 3 || e2e_jnum(sum, "rolled_back") != 1 || e2e_jnum(sum, "unreachable") != 1)
        fprintf(stderr, "want 3 updated, 1 rolled back, 1 unreachable; the report:\n%s\n", out);
    assert_true(e2e_jnum(sum, "updated") == 3);
    assert_true(e2e_jnum(sum, "rolled_back") == 1);
    assert_true(e2e_jnum(sum, "unreachable") == 1);
    assert_true(e2e_jnum(report, "exit_code") == 1);
    assert_string_equal(e2e_jstr(entry(report, "five-5"), "outcome"), "unreachable");
    assert_non_null(strstr(e2e_jstr(entry(report, "five-5"), "reason"), "offline"));
    /* each outcome is what the device really did */
    int rolled = -1;
    for (int i = 0; i < 4; i++) {
        const char *o = e2e_jstr(entry(report, ids[i]), "outcome");
        bool panicked = e2e_log_count(&n[i], "Guru Meditation") > 0;
        assert_int_equal(panicked, !strcmp(o, "rolled_back"));
        if (panicked) {
            rolled = i;
            expect_runs(&n[i], "1.0.0", "ota_0");
        } else {
            assert_string_equal(o, "updated");
            expect_runs(&n[i], "1.1.0", "ota_1");
        }
    }
    assert_true(rolled >= 0);
    cJSON_Delete(report);
    free(out);

    /* round two, five-5 forgotten (its retained state removed): the three
     * already run 1.1.0 (unchanged), the rolled back one updates: exit 0 */
    mqtt_unretain("aloft/five/five-5/state");
    fs_start(0);
    const char *args2[] = {"trigger", "--broker", broker.addr, "--platform", "five", "--url", fs_url(), "--version",
                           "1.1.0", "--wait", "--timeout", "120", NULL};
    rc = run(&out, args2);
    if (rc != 0 || !strstr(out, "summary: 1 updated, 3 unchanged, of 4 devices"))
        fprintf(stderr, "aloft trigger --wait (round two): exit %d (want 0), output:\n%s\n", rc, out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "summary: 1 updated, 3 unchanged, of 4 devices"));
    assert_non_null(strstr(out, "published trigger "));
    free(out);
    expect_runs(&n[rolled], "1.1.0", "ota_1");
    for (int i = 0; i < 4; i++)
        e2e_node_stop(&n[i]);
}

/* ---- one device: another chip; no --wait; bad arguments ---- */

static void test_device_and_publish(void **state)
{
    (void)state;
    mqtt_broker_init(&broker, "one", NULL, NULL);
    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", "/switch/#");
    fs_start(0);
    struct e2e_node n;
    start_node(&n, "esp32-dev", other_chip);
    struct e2e_snap snap;
    e2e_snap_take(&snap, &n);
    /* the platform comes from the device's retained state */
    const char *args[] = {"trigger", "--broker", broker.addr, "--device", "esp32-dev", "--url", fs_url(), "--wait",
                          "--timeout", "60", NULL};
    char *out;
    int rc = run(&out, args);
    if (rc != 1 || !strstr(out, "rejected") || !strstr(out, "wrong_chip"))
        fprintf(stderr, "aloft trigger --device: exit %d (want 1, rejected wrong_chip), output:\n%s\n", rc, out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "summary: 1 rejected, of 1 device"));
    assert_non_null(strstr(out, "wrong_chip"));
    free(out);
    e2e_snap_app_unchanged(&snap, &n); /* the pull job's settings may change */
    e2e_snap_free(&snap);
    expect_runs(&n, "1.0.0", "ota_0");
    e2e_node_stop(&n);

    /* --target frontend: the www slot flips, the app stays */
    struct e2e_node fe;
    start_node(&fe, "fe-dev", old);
    cJSON *st = e2e_status(&fe);
    double slot = e2e_jnum(st, "www_slot");
    cJSON_Delete(st);
    const char *front[] = {"trigger", "--broker", broker.addr, "--device", "fe-dev", "--platform", "five", "--url",
                           fs_www_url(), "--target", "frontend", "--wait", "--timeout", "60", NULL};
    rc = run(&out, front);
    if (rc != 0 || !strstr(out, "summary: 1 updated, of 1 device"))
        fprintf(stderr, "aloft trigger --target frontend: exit %d (want 0), output:\n%s\n", rc, out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "(frontend)"));
    free(out);
    st = e2e_status(&fe);
    assert_true(e2e_jnum(st, "www_slot") == 1 - slot);
    cJSON_Delete(st);
    expect_runs(&fe, "1.0.0", "ota_0");

    /* an image that never confirms itself: unconfirmed at the timeout */
    const char *nc[] = {"trigger", "--broker", broker.addr, "--device", "fe-dev", "--url", fs_no_confirm_url(),
                        "--wait", "--timeout", "8", NULL};
    rc = run(&out, nc);
    if (rc != 1 || !strstr(out, "summary: 1 unconfirmed, of 1 device"))
        fprintf(stderr, "aloft trigger of a no-confirm image: exit %d (want 1, unconfirmed), output:\n%s\n", rc, out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "summary: 1 unconfirmed, of 1 device"));
    free(out);
    st = e2e_status(&fe);
    assert_string_equal(e2e_jstr(st, "version"), "1.2.0");
    assert_string_equal(e2e_jstr(st, "state"), "pending_verify");
    cJSON_Delete(st);

    /* Ctrl-C while waiting (a topic nobody listens to): interrupted, 130 */
    const char *nowhere[] = {"aloft", "trigger", "--broker", broker.addr, "--topic", "/nowhere/cmd", "--platform",
                             "five", "--url", fs_url(), "--wait", NULL};
    const char *file = e2e_path("interrupted.out");
    pid_t pid = e2e_spawn(ALOFT_BIN "/aloft", nowhere, file, O_TRUNC, true);
    assert_int_equal(wait_file(file, "published trigger", MQTT_WAIT_MS), 0);
    kill(pid, SIGINT);
    int status = -1;
    uint64_t end = e2e_now_ms() + MQTT_WAIT_MS;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        if (e2e_now_ms() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            break;
        }
        e2e_sleep_ms(20);
    }
    char *text = read_text(file);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 130 || !strstr(text, "fe-dev                 interrupted"))
        fprintf(stderr, "aloft trigger interrupted: status %#x (want exit 130), output:\n%s\n", status, text);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 130);
    assert_non_null(strstr(text, "fe-dev                 interrupted"));
    free(text);
    e2e_node_stop(&fe);

    /* without --wait: published once, as given, not retained; exit 0 */
    unsigned from = mqtt_sub_count();
    char sha[65];
    memset(sha, 'a', 64);
    sha[64] = 0;
    const char *pub[] = {"trigger", "--broker", broker.addr, "--platform", "demo", "--url", "https://x.example/fw.bin",
                         "--version", "2.0.0", "--sha256", sha, "--size", "12345", "--token", "tok", "--id", "pub-1",
                         "--target", "frontend", NULL};
    expect_run(pub, 0, "published trigger pub-1 to aloft/demo/cmd");
    cJSON *j = mqtt_sub_wait(&from, "aloft/demo/cmd", "id", "pub-1", MQTT_WAIT_MS);
    assert_non_null(j);
    assert_false(mqtt_sub_retained(from - 1));
    assert_string_equal(e2e_jstr(j, "type"), "ota_trigger");
    assert_string_equal(e2e_jstr(j, "url"), "https://x.example/fw.bin");
    assert_string_equal(e2e_jstr(j, "version"), "2.0.0");
    assert_string_equal(e2e_jstr(j, "sha256"), sha);
    assert_true(e2e_jnum(j, "size") == 12345);
    assert_string_equal(e2e_jstr(j, "token"), "tok");
    assert_string_equal(e2e_jstr(j, "target"), "frontend");
    cJSON_Delete(j);
    const char *seed[] = {"trigger", "--broker", broker.addr, "--topic", "/switch/cmd/root", "--url",
                          "http://192.168.1.100:8000/fw.bin", NULL};
    expect_run(seed, 0, "to /switch/cmd/root");
    j = mqtt_sub_wait(&from, "/switch/cmd/root", "type", "ota_trigger", MQTT_WAIT_MS);
    assert_non_null(j);
    assert_string_equal(e2e_jstr(j, "url"), "http://192.168.1.100:8000/fw.bin");
    assert_int_equal(strlen(e2e_jstr(j, "id")), 16); /* a random id */
    cJSON_Delete(j);
    const char *dev[] = {"trigger", "--broker", broker.addr, "--device", "d-1", "--platform", "demo", "--url",
                         "http://h/fw.bin", NULL};
    expect_run(dev, 0, "to aloft/demo/d-1/cmd");
    cJSON_Delete(mqtt_sub_wait(&from, "aloft/demo/d-1/cmd", "type", "ota_trigger", MQTT_WAIT_MS));
    const char *mac[] = {"trigger", "--broker", broker.addr, "--device", "240ac4-00-00-0a", "--platform", "demo",
                         "--url", "http://h/fw.bin", NULL};
    expect_run(mac, 0, "to aloft/demo/24:0A:C4:00:00:0A/cmd"); /* a MAC as aloft-node spells it */
    cJSON_Delete(mqtt_sub_wait(&from, "aloft/demo/24:0A:C4:00:00:0A/cmd", "type", "ota_trigger", MQTT_WAIT_MS));
    e2e_sleep_ms(300);
    assert_int_equal(mqtt_sub_count(), from); /* nothing else */

    /* --wait with nobody there; a device nobody knows; no broker */
    const char *nobody[] = {"trigger", "--broker", broker.addr, "--platform", "nobody", "--url", "http://h/f.bin",
                            "--wait", NULL};
    expect_run(nobody, 2, "no device of platform 'nobody'");
    const char *unknown[] = {"trigger", "--broker", broker.addr, "--device", "ghost", "--url", "http://h/f.bin", NULL};
    expect_run(unknown, 2, "device 'ghost' has no retained state");
    mqtt_broker_stop(&broker);
    const char *down[] = {"trigger", "--broker", broker.addr, "--platform", "demo", "--url", "http://h/f.bin", NULL};
    expect_run(down, 1, "cannot connect to the broker");
}

static void test_bad_arguments(void **state)
{
    (void)state;
    static const struct {
        const char *args[12];
        const char *message;
    } cases[] = {
        {{"--platform", "p", "--url", "http://h/f.bin"}, "give the broker"},
        {{"--broker", "nohost", "--platform", "p", "--url", "http://h/f.bin"}, "is not HOST:PORT"},
        {{"--broker", "127.0.0.1:1", "--url", "http://h/f.bin"}, "say whom to trigger"},
        {{"--broker", "127.0.0.1:1", "--platform", "p"}, "give the image's URL"},
        {{"--broker", "127.0.0.1:1", "--platform", "p", "--url", "ftp://h/f.bin"}, "not an http:// or https:// URL"},
        {{"--broker", "127.0.0.1:1", "--platform", "a/b", "--url", "http://h/f.bin"}, "without / + #"},
        {{"--broker", "127.0.0.1:1", "--topic", "x/#", "--url", "http://h/f.bin"}, "without wildcards"},
        {{"--broker", "127.0.0.1:1", "--topic", "t", "--url", "http://h/f.bin", "--wait"}, "needs --platform"},
        {{"--broker", "127.0.0.1:1", "--platform", "p", "--url", "http://h/f.bin", "--sha256", "abc"}, "64 hex"},
        {{"--broker", "127.0.0.1:1", "--platform", "p", "--url", "http://h/f.bin", "--size", "-3"}, "--size"},
        {{"--broker", "127.0.0.1:1", "--platform", "p", "--url", "http://h/f.bin", "--target", "x"}, "--target"},
        {{"--broker", "127.0.0.1:1", "--platform", "p", "--url", "http://h/f.bin", "--expect", "3"}, "with --wait"},
        {{"--broker", "127.0.0.1:1", "--platform", "p", "--url", "http://h/f.bin", "--nonsense"}, "usage: aloft trigger"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[16] = {"trigger"};
        size_t k = 1;
        for (size_t a = 0; cases[i].args[a]; a++)
            args[k++] = cases[i].args[a];
        args[k] = NULL;
        expect_run(args, 2, cases[i].message);
    }
    const char *help[] = {"trigger", "--help", NULL};
    expect_run(help, 0, "examples:");
}

int main(void)
{
    e2e_init(80);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test_teardown(test_device_and_publish, teardown),
        cmocka_unit_test_teardown(test_wait_platform, teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
