/* Pull updates end to end (issue 6): real aloft-node processes take
 * triggers on POST /api/ota/pull and ask a real aloftd (--server) on a
 * schedule; they download from aloftd over HTTPS with a test CA made with
 * openssl, and from a small file server of this test that misbehaves on
 * purpose (drops the connection at 30, 60 and 95 % of the body, serves other
 * bytes, a cut file, 404, a non-image, another chip's image) and honours
 * Range. Each failure is reported with its code and leaves the running slot,
 * otadata and every setting but the pull/ ones byte-identical. A pulled
 * delta patch cut by kill -9 resumes after the restart from the checkpoint
 * kept in the settings, and one that then fails its checks changes nothing. */
#include "aloftd_harness.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"

#define ADDR "127.0.0.80" /* e2e_init(60) */
#define WAIT_MS 60000u

/* ---- the file server ---- */

struct file {
    char path[128];
    uint8_t *data;
    size_t len;
    char etag[80];     /* "" : "<name>-<len>" */
    char md5[40];      /* x-MD5 on a 200, as aloftd's /update sends it; "" : none */
    uint64_t drops[4]; /* close the connection once after sending up to each offset */
    unsigned ndrops;
};

static struct {
    int fd;
    unsigned port;
    pthread_t thread;
    volatile int stop;
    pthread_mutex_t lock;
    struct file files[24];
    unsigned nfiles;
    char log[256][160]; /* "GET /path FROM" per request: FROM is the Range start, -1 without */
    unsigned nlog;
    char update_req[4096]; /* the last firmware GET /update request, headers and all */
} fs = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

static void send_all(int c, const void *p, size_t len)
{
    const uint8_t *b = p;
    while (len) {
        ssize_t k = send(c, b, len, MSG_NOSIGNAL);
        if (k <= 0)
            return;
        b += k, len -= (size_t)k;
    }
}

/* The value of request header name ("\r\nName: "), or NULL. */
static const char *find_header(const char *req, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = req; (p = strstr(p, "\r\n")); p += 2)
        if (!strncasecmp(p + 2, name, len) && p[2 + len] == ':')
            return p + 2 + len + 1 + strspn(p + 3 + len, " ");
    return NULL;
}

static void serve(int c)
{
    char req[4096] = "";
    size_t n = 0;
    while (n < sizeof req - 1 && !strstr(req, "\r\n\r\n")) {
        ssize_t k = recv(c, req + n, sizeof req - 1 - n, 0);
        if (k <= 0)
            return;
        n += (size_t)k;
        req[n] = 0;
    }
    char path[128] = "";
    sscanf(req, "GET %127s", path);
    long long from = -1;
    const char *r = find_header(req, "Range");
    if (r && !strncmp(r, "bytes=", 6))
        from = atoll(r + 6);
    const char *ir = find_header(req, "If-Range");
    pthread_mutex_lock(&fs.lock);
    if (fs.nlog < 256)
        snprintf(fs.log[fs.nlog++], sizeof fs.log[0], "GET %s %lld", path, from);
    struct file *f = NULL;
    for (unsigned i = 0; i < fs.nfiles; i++)
        if (!strcmp(fs.files[i].path, path))
            f = &fs.files[i];
    bool spiffs = false;
    if (!strncmp(path, "/update?", 8)) {
        const char *mode = find_header(req, "x-ESP32-mode");
        spiffs = mode && !strncmp(mode, "spiffs", 6);
        if (!spiffs)
            snprintf(fs.update_req, sizeof fs.update_req, "%s", req);
    }
    pthread_mutex_unlock(&fs.lock);
    char h[512];
    if (spiffs) { /* no frontend release here */
        const char *nm = "HTTP/1.1 304 Not Modified\r\nConnection: close\r\n\r\n";
        send_all(c, nm, strlen(nm));
        return;
    }
    if (!f) {
        const char *body = "no such file\n";
        snprintf(h, sizeof h, "HTTP/1.1 404 Not Found\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n%s",
                 strlen(body), body);
        send_all(c, h, strlen(h));
        return;
    }
    char etag[90], md5[60] = "";
    if (f->etag[0])
        snprintf(etag, sizeof etag, "%s", f->etag);
    else
        snprintf(etag, sizeof etag, "\"%.40s-%zu\"", f->path + 1, f->len);
    if (f->md5[0])
        snprintf(md5, sizeof md5, "x-MD5: %s\r\n", f->md5);
    if (ir && strncmp(ir, etag, strlen(etag)))
        from = -1; /* another file than the client has: all of it */
    size_t start = from >= 0 && (size_t)from < f->len ? (size_t)from : 0;
    if (from >= 0 && (size_t)from < f->len)
        snprintf(h, sizeof h,
                 "HTTP/1.1 206 Partial Content\r\nContent-Length: %zu\r\nContent-Range: bytes %zu-%zu/%zu\r\n"
                 "ETag: %s\r\nConnection: close\r\n\r\n",
                 f->len - start, start, f->len - 1, f->len, etag);
    else
        snprintf(h, sizeof h,
                 "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\nContent-Type: application/octet-stream\r\n"
                 "Accept-Ranges: bytes\r\nETag: %s\r\n%sConnection: close\r\n\r\n",
                 f->len, etag, md5);
    send_all(c, h, strlen(h));
    size_t end = f->len;
    pthread_mutex_lock(&fs.lock);
    for (unsigned i = 0; i < f->ndrops; i++)
        if (f->drops[i] > start && f->drops[i] < end) {
            end = f->drops[i];
            f->drops[i] = 0; /* once */
            break;
        }
    pthread_mutex_unlock(&fs.lock);
    send_all(c, f->data + start, end - start);
}

static void *server_thread(void *arg)
{
    (void)arg;
    while (!fs.stop) {
        struct pollfd p = {.fd = fs.fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        int c = accept(fs.fd, NULL, NULL);
        if (c < 0)
            continue;
        serve(c);
        shutdown(c, SHUT_RDWR);
        close(c);
    }
    return NULL;
}

static void server_start(void)
{
    fs.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fs.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ADDR, &a.sin_addr);
    assert_int_equal(bind(fs.fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fs.fd, 8), 0);
    socklen_t al = sizeof a;
    getsockname(fs.fd, (struct sockaddr *)&a, &al);
    fs.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&fs.thread, NULL, server_thread, NULL), 0);
}

static void server_stop(void)
{
    if (fs.fd < 0)
        return;
    fs.stop = 1;
    pthread_join(fs.thread, NULL);
    close(fs.fd);
    fs.fd = -1;
    for (unsigned i = 0; i < fs.nfiles; i++)
        free(fs.files[i].data);
    fs.nfiles = 0;
}

/* Serve bytes at path (a copy); returns the file for drop points. */
static struct file *serve_bytes(const char *path, const void *data, size_t len)
{
    pthread_mutex_lock(&fs.lock);
    assert_true(fs.nfiles < sizeof fs.files / sizeof fs.files[0]);
    struct file *f = &fs.files[fs.nfiles++];
    memset(f, 0, sizeof *f);
    snprintf(f->path, sizeof f->path, "%s", path);
    f->data = malloc(len ? len : 1);
    memcpy(f->data, data, len);
    f->len = len;
    pthread_mutex_unlock(&fs.lock);
    return f;
}

static const char *file_url(const char *path)
{
    static char url[4][128];
    static unsigned k;
    char *u = url[k++ % 4];
    snprintf(u, sizeof url[0], "http://%s:%u%s", ADDR, fs.port, path);
    return u;
}

/* Requests for path seen so far with a Range start > 0. */
static unsigned ranged_requests(const char *path, long long *max_from)
{
    unsigned count = 0;
    char want[160];
    snprintf(want, sizeof want, "GET %s ", path);
    pthread_mutex_lock(&fs.lock);
    for (unsigned i = 0; i < fs.nlog; i++)
        if (!strncmp(fs.log[i], want, strlen(want))) {
            long long from = atoll(fs.log[i] + strlen(want));
            if (from > 0) {
                count++;
                if (max_from && from > *max_from)
                    *max_from = from;
            }
        }
    pthread_mutex_unlock(&fs.lock);
    return count;
}

/* ---- helpers ---- */

static char fw1[300], fw2[300];
static uint8_t *img2;
static size_t img2_len;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    fflush(NULL);
    int st = system(cmd);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void start_node(struct e2e_node *n, const char *name, const char *const extra[])
{
    e2e_node_init(n, name);
    const char *args[32] = {"--create", "--flash-size", "4M", "--firmware", fw1};
    size_t k = 5;
    for (size_t i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    assert_int_equal(e2e_node_start(n, args), 0);
}

/* POST a trigger to the node's HTTP seam; returns the status. */
static int trigger(struct e2e_node *n, const char *json, struct e2e_http *r)
{
    char url[200];
    snprintf(url, sizeof url, "%s/api/ota/pull", n->url);
    const char *args[] = {"-X", "POST", "-H", "Content-Type: application/json", "-H", n->auth, "--data-binary", json,
                          url, NULL};
    return e2e_curl(r, args);
}

static void trigger_ok(struct e2e_node *n, const char *json)
{
    struct e2e_http r;
    int code = trigger(n, json, &r);
    if (code != 202)
        fail_msg("trigger %s: %d %s", json, code, r.body);
    e2e_http_free(&r);
}

static void print_tail(const struct e2e_node *n)
{
    char *log = e2e_log_read(n);
    size_t len = strlen(log);
    fprintf(stderr, "--- %s log (tail) ---\n%s\n", n->name, log + (len > 3000 ? len - 3000 : 0));
    free(log);
}

/* Poll GET /api/ota/state until the state answering trigger id is want. */
static cJSON *wait_state(struct e2e_node *n, const char *id, const char *want)
{
    uint64_t t0 = e2e_now_ms();
    char last[512] = "";
    while (e2e_now_ms() - t0 < WAIT_MS) {
        cJSON *j = e2e_try_json(n, "/api/ota/state");
        if (j) {
            char *text = cJSON_PrintUnformatted(j);
            snprintf(last, sizeof last, "%s", text);
            free(text);
            if (!strcmp(e2e_jstr(j, "trigger"), id) && !strcmp(e2e_jstr(j, "state"), want))
                return j;
            cJSON_Delete(j);
        }
        e2e_sleep_ms(50);
    }
    print_tail(n);
    fail_msg("%s: no state %s for trigger '%s'; last: %s", n->name, want, id, last);
    return NULL;
}

static void expect_version(struct e2e_node *n, const char *version)
{
    cJSON *st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "version"), version);
    cJSON_Delete(st);
}

/* The settings store's values of the keys that are not pull's, as text. */
static void settings(const struct e2e_node *n, char *out, size_t cap)
{
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_open(&pf, n->flash, 0, false), 0);
    struct aloft_part nvs = {.offset = E2E_NVS_OFF, .size = E2E_NVS_SIZE};
    struct aloft_posix_kv kv;
    assert_int_equal(aloft_posix_kv_open(&kv, &pf.port, &nvs), 0);
    static const char *const keys[] = {"sys/chip", "sys/mac", "security/ota_psk", "www/slot"};
    size_t k = 0;
    out[0] = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char v[200];
        int len = aloft_posix_kv_get(&kv, keys[i], v, sizeof v - 1);
        v[len > 0 ? len : 0] = 0;
        k += (size_t)snprintf(out + k, cap - k, "%s=%s(%d);", keys[i], v, len);
    }
    aloft_posix_flash_close(&pf);
}

static bool has_setting(const struct e2e_node *n, const char *key)
{
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_open(&pf, n->flash, 0, false), 0);
    struct aloft_part nvs = {.offset = E2E_NVS_OFF, .size = E2E_NVS_SIZE};
    struct aloft_posix_kv kv;
    assert_int_equal(aloft_posix_kv_open(&kv, &pf.port, &nvs), 0);
    char v[8];
    int len = aloft_posix_kv_get(&kv, key, v, sizeof v);
    aloft_posix_flash_close(&pf);
    return len != ALOFT_E_NOTFOUND;
}

/* The running slot and otadata, byte for byte, and the settings but pull's. */
struct before {
    uint32_t run_off, run_size;
    uint8_t *run, *otadata;
    char settings[600];
};

static void take(struct before *b, struct e2e_node *n)
{
    cJSON *st = e2e_status(n);
    e2e_part(n, e2e_jstr(st, "running_partition"), &b->run_off, &b->run_size);
    cJSON_Delete(st);
    b->run = e2e_flash_read(n, b->run_off, b->run_size);
    b->otadata = e2e_flash_read(n, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    settings(n, b->settings, sizeof b->settings);
}

static void unchanged(struct before *b, struct e2e_node *n, const char *what)
{
    uint8_t *run = e2e_flash_read(n, b->run_off, b->run_size);
    uint8_t *od = e2e_flash_read(n, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    char now[600];
    settings(n, now, sizeof now);
    if (memcmp(run, b->run, b->run_size))
        fail_msg("%s: the running slot changed", what);
    if (memcmp(od, b->otadata, E2E_OTADATA_SIZE))
        fail_msg("%s: otadata changed", what);
    if (strcmp(now, b->settings))
        fail_msg("%s: settings changed: %s -> %s", what, b->settings, now);
    assert_false(has_setting(n, "pull/job")); /* no job left to resume */
    assert_false(has_setting(n, "pull/pending"));
    free(run);
    free(od);
    free(b->run);
    free(b->otadata);
}

/* The slot the update went to holds exactly the image. */
static void slot_holds(struct e2e_node *n, const char *label, const uint8_t *img, size_t len)
{
    uint32_t off, size;
    e2e_part(n, label, &off, &size);
    uint8_t *got = e2e_flash_read(n, off, (uint32_t)len);
    assert_memory_equal(got, img, len);
    free(got);
}

static const cJSON *device_of(cJSON *devices, const char *mac)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItem(devices, "devices"))
    if (!strcmp(e2e_jstr(d, "mac"), mac))
        return d;
    return NULL;
}

static const char *mac_of(struct e2e_node *n);

/* Poll aloftd until node's last report has result and version (ca: the CA
 * of an HTTPS server, or NULL); the inventory has the node's own address. */
static void wait_report(struct aloftd_proc *s, const char *ca, struct e2e_node *n, const char *result,
                        const char *version)
{
    const char *mac = mac_of(n);
    char ip[32];
    snprintf(ip, sizeof ip, "%.*s", (int)(strrchr(n->listen, ':') - n->listen), n->listen);
    uint64_t t0 = e2e_now_ms();
    char last[400] = "none";
    while (e2e_now_ms() - t0 < WAIT_MS) {
        struct e2e_http h;
        const char *args[] = {"-H", s->auth, ca ? "--cacert" : NULL, ca, NULL};
        int code = aloftd_get(s, &h, "/api/devices", args);
        cJSON *all = code == 200 ? cJSON_Parse(h.body) : NULL;
        e2e_http_free(&h);
        const cJSON *dev = device_of(all, mac);
        const cJSON *r = cJSON_GetObjectItem(dev, "report");
        if (cJSON_IsObject(r)) {
            char *text = cJSON_PrintUnformatted(r);
            snprintf(last, sizeof last, "%s", text);
            free(text);
            if (!strcmp(e2e_jstr(r, "result"), result) && !strcmp(e2e_jstr(r, "version"), version)) {
                assert_string_equal(e2e_jstr(dev, "ip"), ip);
                cJSON_Delete(all);
                return;
            }
        }
        cJSON_Delete(all);
        e2e_sleep_ms(200);
    }
    fail_msg("aloftd: no report %s %s from %s; last: %s", result, version, mac, last);
}

static const char *mac_of(struct e2e_node *n)
{
    static char mac[18];
    cJSON *st = e2e_status(n);
    snprintf(mac, sizeof mac, "%s", e2e_jstr(st, "mac"));
    cJSON_Delete(st);
    return mac;
}

/* ---- tests ---- */

/* HTTPS from aloftd with a certificate the node verifies with --ca-file:
 * the node restarts on the new version, its state says updated and aloftd
 * has its report. A node without that CA refuses the server: tls, and
 * nothing changes. */
static void test_https_verified_update_and_untrusted_certificate(void **state)
{
    (void)state;
    e2e_make_ca(ALOFTD_TEST_ADDR);
    const char *ca = e2e_path("ca.pem");

    struct aloftd_proc srv;
    aloftd_init(&srv, "https");
    const char *args[] = {"--tls-cert", e2e_path("srv.pem"), "--tls-key", e2e_path("srv.key"), NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    aloftd_https_url(&srv);
    const char *trust[] = {"--cacert", ca, NULL};
    struct e2e_http r;
    /* the running release first, so that the node's check-in at boot is a 304 */
    assert_int_equal(aloftd_upload(&srv, &r, fw1, NULL, trust), 201);
    e2e_http_free(&r);

    struct e2e_node a, b, c;
    char key[65];
    aloftd_credential(&srv, ca, "24:0A:C4:0A:00:01", key);
    const char *a_args[] = {"--server", srv.url, "--ca-file", ca, "--mac", "24:0A:C4:0A:00:01", "--server-key", key, NULL};
    const char *c_args[] = {"--insecure", NULL};
    start_node(&a, "https", a_args);
    start_node(&b, "untrusted", NULL);
    bool insecure = !e2e_example(); /* aloft-node's; the example has no such mode */
    if (insecure)
        start_node(&c, "insecure", c_args);
    assert_int_equal(e2e_node_wait_log(&a, "answered 304", 1, WAIT_MS), 0); /* a's check-in at boot */
    assert_int_equal(aloftd_upload(&srv, &r, fw2, NULL, trust), 201);
    e2e_http_free(&r);
    char sha[65], json[600];
    aloft_sha256_hex(img2, img2_len, sha);
    snprintf(json, sizeof json,
             "{\"type\":\"ota_trigger\",\"url\":\"%s/firmware/%s.bin\",\"version\":\"2.0.0\",\"sha256\":\"%s\","
             "\"size\":%zu,\"id\":\"https-1\"}",
             srv.url, sha, sha, img2_len);

    struct before before;
    take(&before, &b);
    trigger_ok(&b, json);
    cJSON *st = wait_state(&b, "https-1", "failed");
    assert_string_equal(e2e_jstr(st, "code"), "tls");
    cJSON_Delete(st);
    unchanged(&before, &b, "untrusted certificate");
    expect_version(&b, "1.0.0");

    /* --insecure takes it without the CA, and says so */
    if (insecure) {
        trigger_ok(&c, json);
        cJSON_Delete(wait_state(&c, "https-1", "updated"));
        assert_int_equal(e2e_log_count(&c, "WARNING: --insecure: the certificate of https://"), 1);
        assert_int_equal(e2e_log_count(&a, "--insecure"), 0);
        e2e_node_stop(&c);
    }

    trigger_ok(&a, json);
    st = wait_state(&a, "https-1", "updated");
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    assert_string_equal(e2e_jstr(st, "partition"), "ota_1");
    cJSON_Delete(st);
    expect_version(&a, "2.0.0");
    slot_holds(&a, "ota_1", img2, img2_len);
    wait_report(&srv, ca, &a, "updated", "2.0.0");

    /* the same trigger again (a redelivery): ignored, no second update */
    assert_int_equal(trigger(&a, json, &r), 409);
    assert_string_equal(e2e_http_error(&r), "already_handled");
    e2e_http_free(&r);
    e2e_sleep_ms(300);
    expect_version(&a, "2.0.0");
    assert_int_equal(e2e_log_count(&a, "restarting (SW)"), 1);
    e2e_node_stop(&a);
    e2e_node_stop(&b);
    aloftd_stop(&srv);
}

/* The connection drops at 30, 60 and 95 % of the body: each time the node
 * asks for the rest with Range and the slot ends holding the exact image. */
static void test_dropped_connections_resume_with_range(void **state)
{
    (void)state;
    struct file *f = serve_bytes("/drop.bin", img2, img2_len);
    f->drops[0] = img2_len * 30 / 100;
    f->drops[1] = img2_len * 60 / 100;
    f->drops[2] = img2_len * 95 / 100;
    f->ndrops = 3;
    struct e2e_node n;
    start_node(&n, "drops", NULL);
    char sha[65], json[600];
    aloft_sha256_hex(img2, img2_len, sha);
    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"sha256\":\"%s\",\"size\":%zu,\"id\":\"drops\"}",
             file_url("/drop.bin"), sha, img2_len);
    trigger_ok(&n, json);
    cJSON_Delete(wait_state(&n, "drops", "updated"));
    expect_version(&n, "2.0.0");
    slot_holds(&n, "ota_1", img2, img2_len);
    long long max_from = 0;
    assert_int_equal(ranged_requests("/drop.bin", &max_from), 3);
    assert_int_equal(max_from, (long long)(img2_len * 95 / 100));
    e2e_node_stop(&n);
}

/* A delta patch (a trigger's delta_url; its url is never fetched) whose
 * connection drops goes on from the decoder's last checkpoint: the patch's
 * header again, then Range from a block start before the drop, never from
 * byte 0; the node boots exactly the new image. */
/* The patch fw1 -> fw2, made once. */
static const char *patch_1_2(void)
{
    static char path[300];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s", e2e_path("pull-1-2.delta"));
        const char *mk[] = {"aloft", "delta", "make", fw1, fw2, "-o", path, "-q", NULL};
        assert_int_equal(aloft_test_run(NULL, mk), 0);
    }
    return path;
}

static void test_dropped_patch_resumes_at_a_checkpoint(void **state)
{
    (void)state;
    const char *patch = patch_1_2();
    size_t plen, len1;
    uint8_t *p = e2e_file_read(patch, &plen), *img1 = e2e_file_read(fw1, &len1);
    struct file *f = serve_bytes("/drop.delta", p, plen);
    f->drops[0] = plen * 40 / 100;
    f->drops[1] = plen * 80 / 100;
    f->ndrops = 2;
    char sha1[65], sha2[65], json[900];
    aloft_sha256_hex(img1, len1, sha1);
    aloft_sha256_hex(img2, img2_len, sha2);
    free(p);
    free(img1);
    struct e2e_node n;
    start_node(&n, "patch-drops", NULL);
    snprintf(json, sizeof json,
             "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"sha256\":\"%s\",\"size\":%zu,\"id\":\"patch-drops\","
             "\"delta_url\":\"%s\",\"delta_base\":\"%s\"}",
             file_url("/nowhere.bin"), sha2, img2_len, file_url("/drop.delta"), sha1);
    trigger_ok(&n, json);
    cJSON_Delete(wait_state(&n, "patch-drops", "updated"));
    expect_version(&n, "2.0.0");
    slot_holds(&n, "ota_1", img2, img2_len);
    long long max_from = 0;
    assert_int_equal(ranged_requests("/drop.delta", &max_from), 2);
    assert_true(max_from > (long long)(plen * 40 / 100) && max_from < (long long)(plen * 80 / 100));
    assert_int_equal(e2e_log_count(&n, "/nowhere.bin"), 0);
    e2e_node_stop(&n);
}

/* A patch upload whose link dropped keeps its checkpoint in the settings; a
 * pull that then takes the update slot drops it, so the device that boots
 * the pulled image offers no resume of a patch whose bytes it overwrote
 * (kept, it would come back from the settings at that boot). */
static void test_pull_drops_a_kept_patch_checkpoint(void **state)
{
    (void)state;
    const char *patch = patch_1_2();
    size_t plen;
    uint8_t *p = e2e_file_read(patch, &plen);
    struct e2e_node n;
    start_node(&n, "patch-then-pull", NULL);
    int fd = e2e_connect(&n);
    char head[400];
    int hl = snprintf(head, sizeof head,
                      "POST /ota HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-aloft-delta\r\n"
                      "%s\r\nContent-Length: %zu\r\n\r\n", n.listen, n.auth, plen);
    assert_int_equal(send(fd, head, (size_t)hl, MSG_NOSIGNAL), hl);
    size_t cut = plen * 60 / 100;
    assert_int_equal(send(fd, p, cut, MSG_NOSIGNAL), (ssize_t)cut);
    free(p);
    close(fd); /* the link drops: the node keeps where the patch got to */
    assert_int_equal(e2e_node_wait_log(&n, "upload dropped after", 1, 30000), 0);
    assert_true(e2e_log_count(&n, "patch checkpoint kept") > 0);
    cJSON *st = e2e_status(&n);
    assert_non_null(cJSON_GetObjectItem(st, "delta_resume"));
    cJSON_Delete(st);

    serve_bytes("/after-patch.bin", img2, img2_len);
    char sha[65], json[600];
    aloft_sha256_hex(img2, img2_len, sha);
    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"sha256\":\"%s\",\"size\":%zu,"
             "\"id\":\"after-patch\"}", file_url("/after-patch.bin"), sha, img2_len);
    trigger_ok(&n, json);
    cJSON_Delete(wait_state(&n, "after-patch", "updated"));
    expect_version(&n, "2.0.0");
    st = e2e_status(&n);
    assert_null(cJSON_GetObjectItem(st, "delta_resume"));
    cJSON_Delete(st);
    e2e_node_stop(&n);
}

/* Trigger a throttled download of path (len bytes) on n, kill -9 the node
 * past 400 KB and start it again: it resumes from the offset it kept (one
 * Range request from a non-zero multiple of 64 KB) to the updated state. */
static void kill_and_resume(struct e2e_node *n, const char *path, size_t len, const char *target, const char *id)
{
    char json[600];
    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"target\":\"%s\",\"id\":\"%s\"}",
             file_url(path), target, id);
    trigger_ok(n, json);
    uint64_t t0 = e2e_now_ms();
    double bytes = 0;
    while (bytes < 400000 && e2e_now_ms() - t0 < WAIT_MS) {
        cJSON *st = e2e_try_json(n, "/api/ota/state");
        bytes = st ? e2e_jnum(st, "bytes") : 0;
        cJSON_Delete(st);
        e2e_sleep_ms(20);
    }
    assert_true(bytes >= 400000 && bytes < len);
    /* one update at a time */
    struct e2e_http r;
    assert_int_equal(trigger(n, "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:9/x.bin\",\"id\":\"2nd\"}", &r),
                     409);
    assert_string_equal(e2e_http_error(&r), "busy");
    e2e_http_free(&r);
    e2e_node_kill9(n);
    assert_int_equal(ranged_requests(path, NULL), 0);
    const char *again[] = {"--link-rate", "250000", NULL};
    assert_int_equal(e2e_node_start(n, again), 0);
    cJSON *st = wait_state(n, id, "updated");
    assert_string_equal(e2e_jstr(st, "target"), target);
    cJSON_Delete(st);
    long long from = 0;
    assert_int_equal(ranged_requests(path, &from), 1);
    assert_true(from >= 65536 && from % 65536 == 0 && from < (long long)len);
}

/* kill -9 in the middle of a download: started again, the node resumes
 * from what it kept and updates. */
static void test_killed_mid_download_resumes_after_restart(void **state)
{
    (void)state;
    serve_bytes("/slow.bin", img2, img2_len);
    struct e2e_node n;
    const char *slow[] = {"--link-rate", "250000", NULL};
    start_node(&n, "killed", slow);
    kill_and_resume(&n, "/slow.bin", img2_len, "firmware", "killed");
    expect_version(&n, "2.0.0");
    slot_holds(&n, "ota_1", img2, img2_len);
    e2e_node_stop(&n);
}

/* Serve the patch fw1 -> fw2 at path (corrupt: a byte flipped at 3/4 of it
 * once the node was cut), trigger it on a throttled node, and kill -9 the
 * node once it kept a checkpoint of the patch in its settings: the running
 * slot and otadata are untouched; started again, the node resumes from the
 * checkpoint it kept (one request, with Range from there, not from 0).
 * Returns the patch's length. */
static size_t pull_patch_cut(struct e2e_node *n, struct before *b, const char *path, const char *id, bool corrupt)
{
    size_t plen, len1;
    uint8_t *p = e2e_file_read(patch_1_2(), &plen), *img1 = e2e_file_read(fw1, &len1);
    struct file *f = serve_bytes(path, p, plen);
    char sha1[65], sha2[65], json[900];
    aloft_sha256_hex(img1, len1, sha1);
    aloft_sha256_hex(img2, img2_len, sha2);
    free(p);
    free(img1);
    const char *slow[] = {"--link-rate", "200000", NULL};
    start_node(n, id, slow);
    take(b, n);
    snprintf(json, sizeof json,
             "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"sha256\":\"%s\",\"size\":%zu,\"id\":\"%s\","
             "\"delta_url\":\"%s\",\"delta_base\":\"%s\"}",
             file_url("/nowhere.bin"), sha2, img2_len, id, file_url(path), sha1);
    trigger_ok(n, json);
    assert_int_equal(e2e_node_wait_log(n, "patch checkpoint kept", 1, WAIT_MS), 0);
    e2e_node_kill9(n);
    assert_true(has_setting(n, "pull/job"));
    assert_true(has_setting(n, "delta/ck"));
    uint8_t *run = e2e_flash_read(n, b->run_off, b->run_size);
    uint8_t *od = e2e_flash_read(n, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    assert_memory_equal(run, b->run, b->run_size);
    assert_memory_equal(od, b->otadata, E2E_OTADATA_SIZE);
    free(run);
    free(od);
    /* where the last checkpoint logged says it resumes */
    char *log = e2e_log_read(n), *last = NULL;
    for (char *s = log; (s = strstr(s, "it can resume at byte ")); s++)
        last = s;
    assert_non_null(last);
    long long logged = atoll(last + strlen("it can resume at byte "));
    free(log);
    assert_true(logged >= 32768 && logged < (long long)plen);
    assert_int_equal(ranged_requests(path, NULL), 0);
    if (corrupt) {
        pthread_mutex_lock(&fs.lock);
        f->data[plen * 3 / 4] ^= 0x20;
        pthread_mutex_unlock(&fs.lock);
    }
    const char *again[] = {NULL};
    assert_int_equal(e2e_node_start(n, again), 0);
    cJSON_Delete(wait_state(n, id, corrupt ? "failed" : "updated"));
    long long from = 0;
    assert_int_equal(ranged_requests(path, &from), 1);
    assert_true(from >= logged && from < (long long)plen * 3 / 4);
    char line[160];
    snprintf(line, sizeof line, "at byte %lld for trigger %s", from, id);
    assert_int_equal(e2e_log_count(n, line), 1); /* the restart resumed it there */
    return plen;
}

/* A pulled patch cut by a power loss (kill -9) resumes after the restart
 * from the checkpoint kept in the settings, and installs exactly the new
 * image; its resume point is gone then. */
static void test_pulled_patch_resumes_after_a_restart(void **state)
{
    (void)state;
    struct e2e_node n;
    struct before b;
    size_t plen = pull_patch_cut(&n, &b, "/ck.delta", "patch-restart", false);
    /* the settings were written at most once per 32 KB of patch, before and after the cut */
    unsigned kept = e2e_log_count(&n, "patch checkpoint kept");
    assert_true(kept >= 2 && kept <= plen / 32768 + 1);
    free(b.run);
    free(b.otadata);
    expect_version(&n, "2.0.0");
    slot_holds(&n, "ota_1", img2, img2_len);
    assert_int_equal(e2e_log_count(&n, "bytes of patch verified into ota_1, version 2.0.0"), 1);
    assert_false(has_setting(&n, "delta/ck"));
    assert_false(has_setting(&n, "pull/job"));
    cJSON *st = e2e_status(&n);
    assert_null(cJSON_GetObjectItem(st, "delta_resume"));
    cJSON_Delete(st);
    e2e_node_stop(&n);
}

/* A resumed patch whose checks fail is refused: the running slot, otadata
 * and the settings but pull's are as they were, no job and no resume point
 * is left, and the node runs its image. */
static void test_resumed_pulled_patch_that_fails_changes_nothing(void **state)
{
    (void)state;
    struct e2e_node n;
    struct before b;
    pull_patch_cut(&n, &b, "/ck-bad.delta", "patch-restart-bad", true);
    unchanged(&b, &n, "a resumed patch that fails");
    assert_false(has_setting(&n, "delta/ck"));
    expect_version(&n, "1.0.0");
    e2e_node_stop(&n);
}

/* Each bad download fails with its code; nothing that matters changes. */
static void test_bad_downloads_fail_and_change_nothing(void **state)
{
    (void)state;
    const char *v3 = e2e_path("pull-3.0.0.bin"), *chip = e2e_path("pull-c3.bin");
    e2e_image(v3, "esp32s3", "3.0.0", img2_len, NULL);
    e2e_image(chip, "esp32c3", "2.0.0", 0, NULL);
    size_t l3, lc;
    uint8_t *b3 = e2e_file_read(v3, &l3), *bc = e2e_file_read(chip, &lc);
    serve_bytes("/other.bin", b3, l3);                    /* not the bytes the sha256 names */
    serve_bytes("/cut.bin", img2, img2_len * 6 / 10);     /* a file that ends early */
    serve_bytes("/text.bin", "<html>not firmware</html>\n", 26);
    serve_bytes("/chip.bin", bc, lc);
    size_t l1;
    uint8_t *b1 = e2e_file_read(fw1, &l1);
    serve_bytes("/same.bin", b1, l1); /* the version it runs */
    free(b1);
    serve_bytes("/size.bin", img2, img2_len);
    free(b3);
    free(bc);
    char sha[65];
    aloft_sha256_hex(img2, img2_len, sha);
    struct e2e_node n;
    start_node(&n, "bad", NULL);
    /* before_write: refused before the update slot is erased (it holds the
     * first cases' bytes by then, so an erase would show) */
    static const struct {
        const char *path, *extra, *code;
        bool before_write;
    } cases[] = {
        {"/other.bin", "\"sha256\":\"%s\"", "bad_sha256", false},
        {"/cut.bin", NULL, "truncated", false},
        {"/missing.bin", NULL, "http_404", true},
        {"/text.bin", NULL, "not_an_image", true},
        {"/chip.bin", NULL, "wrong_chip", true},
        {"/same.bin", NULL, "same_version", true},
        {"/size.bin", "\"size\":1000", "size_mismatch", true},
        {"/size.bin", "\"version\":\"9.9.9\"", "wrong_version", true},
        {"http://" ADDR ":1/fw.bin", NULL, "unreachable", true}, /* nobody listens on port 1 */
    };
    uint32_t slot_off, slot_size;
    e2e_part(&n, "ota_1", &slot_off, &slot_size);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char extra[120] = "", id[16], json[700];
        if (cases[i].extra)
            snprintf(extra, sizeof extra, cases[i].extra, sha);
        snprintf(id, sizeof id, "bad-%zu", i);
        snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"id\":\"%s\"%s%s}",
                 strncmp(cases[i].path, "http", 4) ? file_url(cases[i].path) : cases[i].path, id,
                 extra[0] ? "," : "", extra);
        struct before before;
        take(&before, &n);
        uint8_t *slot = e2e_flash_read(&n, slot_off, slot_size);
        trigger_ok(&n, json);
        cJSON *st = wait_state(&n, id, "failed");
        if (strcmp(e2e_jstr(st, "code"), cases[i].code))
            fail_msg("%s: code %s (%s), want %s", cases[i].path, e2e_jstr(st, "code"), e2e_jstr(st, "reason"),
                     cases[i].code);
        assert_true(strlen(e2e_jstr(st, "reason")) > 0);
        cJSON_Delete(st);
        unchanged(&before, &n, cases[i].path);
        expect_version(&n, "1.0.0");
        uint8_t *after = e2e_flash_read(&n, slot_off, slot_size);
        if (cases[i].before_write && memcmp(slot, after, slot_size))
            fail_msg("%s: the update slot was written", cases[i].path);
        free(slot);
        free(after);
    }
    e2e_node_stop(&n);

    /* a device running secure_version 2: lower ones and other projects are refused */
    const char *sv2 = e2e_path("pull-sv2.bin"), *sv1 = e2e_path("pull-sv1.bin"), *other = e2e_path("pull-other.bin");
    const char *m1[] = {"aloft", "image", "make", "--chip", e2e_chip(), "--project", "demo", "--version", "1.5.0",
                        "--secure-version", "2", "-o", sv2, NULL};
    const char *m2[] = {"aloft", "image", "make", "--chip", e2e_chip(), "--project", "demo", "--version", "2.0.0",
                        "--secure-version", "1", "-o", sv1, NULL};
    const char *m3[] = {"aloft", "image", "make", "--chip", e2e_chip(), "--project", "other", "--version", "2.0.0",
                        "--secure-version", "2", "-o", other, NULL};
    assert_int_equal(aloft_test_run(NULL, m1), 0);
    assert_int_equal(aloft_test_run(NULL, m2), 0);
    assert_int_equal(aloft_test_run(NULL, m3), 0);
    uint8_t *b = e2e_file_read(sv1, &l1);
    serve_bytes("/sv1.bin", b, l1);
    free(b);
    b = e2e_file_read(other, &l1);
    serve_bytes("/otherproject.bin", b, l1);
    free(b);
    struct e2e_node s;
    e2e_node_init(&s, "anti-rollback");
    const char *s_args[] = {"--create", "--flash-size", "4M", "--firmware", sv2, NULL};
    assert_int_equal(e2e_node_start(&s, s_args), 0);
    static const char *const refusals[][3] = {{"/sv1.bin", "sv", "secure_version"},
                                              {"/otherproject.bin", "proj", "wrong_project"}};
    for (size_t i = 0; i < 2; i++) {
        char json[300];
        snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"id\":\"%s\"}",
                 file_url(refusals[i][0]), refusals[i][1]);
        struct before before;
        take(&before, &s);
        trigger_ok(&s, json);
        cJSON *st = wait_state(&s, refusals[i][1], "failed");
        assert_string_equal(e2e_jstr(st, "code"), refusals[i][2]);
        cJSON_Delete(st);
        unchanged(&before, &s, refusals[i][0]);
        expect_version(&s, "1.5.0");
    }
    /* a bad trigger is refused before anything happens */
    struct e2e_http r;
    assert_int_equal(trigger(&s, "{\"type\":\"ota_trigger\",\"url\":\"ftp://x/fw.bin\"}", &r), 400);
    assert_string_equal(e2e_http_error(&r), "bad_trigger");
    e2e_http_free(&r);
    assert_int_equal(e2e_log_count(&s, "restarting"), 0);
    assert_int_equal(e2e_log_count(&n, "restarting"), 0);
    e2e_node_stop(&s);
}

/* --server with --check-every: a 304 does nothing; a new release is
 * downloaded and installed and the report arrives; a release that panics
 * at boot is rolled back by the bootloader and reported rolled_back. */
static void test_scheduled_checks(void **state)
{
    (void)state;
    struct aloftd_proc srv;
    aloftd_init(&srv, "checks");
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    struct e2e_http r;
    assert_int_equal(aloftd_upload(&srv, &r, fw1, NULL, NULL), 201);
    e2e_http_free(&r);
    struct e2e_node n;
    char key[65];
    aloftd_credential(&srv, NULL, "24:0A:C4:0A:00:02", key);
    const char *args[] = {"--server",     srv.url, "--check-every", "1", "--mac", "24:0A:C4:0A:00:02",
                          "--server-key", key,     NULL}; /* rollback is on by default */
    start_node(&n, "checks", args);
    assert_int_equal(e2e_node_wait_log(&n, "answered 304", 2, WAIT_MS), 0);
    struct before before;
    take(&before, &n);
    assert_int_equal(e2e_node_wait_log(&n, "answered 304", 4, WAIT_MS), 0);
    unchanged(&before, &n, "304");
    expect_version(&n, "1.0.0");

    assert_int_equal(aloftd_upload(&srv, &r, fw2, NULL, NULL), 201);
    e2e_http_free(&r);
    cJSON_Delete(wait_state(&n, "", "updated"));
    expect_version(&n, "2.0.0");
    wait_report(&srv, NULL, &n, "updated", "2.0.0");

    if (e2e_example()) { /* a release that panics at boot: only the simulator's images do */
        printf("e2e: the example stops here: a firmware that panics is aloft-node's\n");
        e2e_node_stop(&n);
        aloftd_stop(&srv);
        return;
    }
    const char *bad = e2e_path("pull-panic.bin");
    e2e_image(bad, "esp32s3", "3.0.0", 0, "panic-on-boot");
    assert_int_equal(aloftd_upload(&srv, &r, bad, NULL, NULL), 201);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_log(&n, "pull: rolled back", 1, WAIT_MS), 0);
    wait_report(&srv, NULL, &n, "rolled_back", "2.0.0");
    expect_version(&n, "2.0.0");
    /* the next checks do not install the rolled-back release again */
    assert_int_equal(e2e_node_wait_log(&n, "rolled_back_before", 1, WAIT_MS), 0);
    assert_int_equal(e2e_log_count(&n, "Guru Meditation"), 1);
    e2e_node_stop(&n);
    aloftd_stop(&srv);
}

/* A device flashed with the frontend aloftd serves (aloft-node --www, or
 * the example's www_0 as idf.py flash writes it) knows it has it: the
 * agent names it by its LittleFS image's SHA-256, so its checks answer 304
 * for both, and nothing is fetched. */
static void test_flashed_frontend_is_current(void **state)
{
    (void)state;
    const char *www = e2e_path("flashed-www");
    assert_int_equal(sh("mkdir -p %s && printf '<h1>flashed</h1>\\n' > %s/index.html", www, www), 0);
    const char *mkfs[] = {"aloft", "mkfs", www, "-o", e2e_path("flashed-www.bin"), NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);
    struct aloftd_proc srv;
    aloftd_init(&srv, "flashed");
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    struct e2e_http r;
    assert_int_equal(aloftd_upload(&srv, &r, fw1, NULL, NULL), 201);
    e2e_http_free(&r);
    assert_int_equal(aloftd_upload(&srv, &r, e2e_path("flashed-www.bin"), "?kind=frontend&platform=demo", NULL), 201);
    e2e_http_free(&r);
    struct e2e_node n;
    const char *args[] = {"--www", e2e_path("flashed-www.bin"), "--server", srv.url, "--check-every", "1", NULL};
    start_node(&n, "flashed", args);
    struct before before;
    take(&before, &n);
    assert_int_equal(e2e_node_wait_log(&n, "answered 304", 4, WAIT_MS), 0);
    assert_int_equal(e2e_log_count(&n, "pull: updated"), 0);
    unchanged(&before, &n, "flashed frontend");
    e2e_node_stop(&n);
    aloftd_stop(&srv);
}

/* "target":"frontend": the www slot is written, must mount, and becomes
 * the active one after the restart. */
static void test_frontend_target(void **state)
{
    (void)state;
    const char *www = e2e_path("pull-www");
    assert_int_equal(sh("mkdir -p %s && printf '<h1>pulled frontend</h1>\\n' > %s/index.html", www, www), 0);
    const char *mkfs[] = {"aloft", "mkfs", www, "-o", e2e_path("pull-www.bin"), NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);
    size_t len;
    uint8_t *bin = e2e_file_read(e2e_path("pull-www.bin"), &len);
    serve_bytes("/www.bin", bin, len);
    serve_bytes("/notfs.bin", img2, 100000);
    struct e2e_node n;
    start_node(&n, "frontend", NULL);
    char json[600];
    struct before before;
    take(&before, &n);
    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"target\":\"frontend\",\"id\":\"fe-bad\"}",
             file_url("/notfs.bin"));
    trigger_ok(&n, json);
    cJSON *st = wait_state(&n, "fe-bad", "failed");
    assert_string_equal(e2e_jstr(st, "code"), "not_littlefs");
    assert_string_equal(e2e_jstr(st, "target"), "frontend");
    cJSON_Delete(st);
    unchanged(&before, &n, "not LittleFS");

    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"target\":\"frontend\",\"id\":\"fe\"}",
             file_url("/www.bin"));
    trigger_ok(&n, json);
    st = wait_state(&n, "fe", "updated");
    assert_string_equal(e2e_jstr(st, "target"), "frontend");
    cJSON_Delete(st);
    cJSON *fe = e2e_get_json(&n, "/api/ota/status");
    assert_int_equal((int)e2e_jnum(fe, "active_slot"), 1);
    cJSON_Delete(fe);
    slot_holds(&n, "www_1", bin, len);
    struct e2e_http r;
    char url[200];
    snprintf(url, sizeof url, "%s/", n.url);
    const char *get[] = {url, NULL};
    assert_int_equal(e2e_curl(&r, get), 200);
    assert_non_null(strstr(r.body, "pulled frontend"));
    e2e_http_free(&r);
    expect_version(&n, "1.0.0");
    e2e_node_stop(&n);

    /* killed in the middle of a frontend download: resumed after the restart */
    serve_bytes("/slow-www.bin", bin, len);
    struct e2e_node k;
    const char *slow[] = {"--link-rate", "250000", NULL};
    start_node(&k, "frontend-killed", slow);
    kill_and_resume(&k, "/slow-www.bin", len, "frontend", "fe-killed");
    slot_holds(&k, "www_1", bin, len);
    fe = e2e_get_json(&k, "/api/ota/status");
    assert_int_equal((int)e2e_jnum(fe, "active_slot"), 1);
    cJSON_Delete(fe);
    free(bin);
    e2e_node_stop(&k);
}

/* An image that confirms itself only after a while: verifying until then,
 * updated once it has marked itself valid. */
static void test_updated_only_once_confirmed(void **state)
{
    (void)state;
    const char *later = e2e_path("pull-later.bin");
    e2e_image(later, "esp32s3", "2.1.0", 0, "confirm-after=2");
    size_t len;
    uint8_t *b = e2e_file_read(later, &len);
    serve_bytes("/later.bin", b, len);
    free(b);
    struct e2e_node n;
    start_node(&n, "later", NULL);
    char json[300];
    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"id\":\"later\"}", file_url("/later.bin"));
    trigger_ok(&n, json);
    /* after the restart: the new image runs, not yet valid */
    uint64_t t0 = e2e_now_ms();
    bool seen = false;
    while (!seen && e2e_now_ms() - t0 < WAIT_MS) {
        cJSON *st = e2e_try_json(&n, "/api/ota/state");
        seen = st && !strcmp(e2e_jstr(st, "state"), "verifying") && !strcmp(e2e_jstr(st, "version"), "2.1.0") &&
               !strcmp(e2e_jstr(st, "trigger"), "later");
        cJSON_Delete(st);
        e2e_sleep_ms(50);
    }
    assert_true(seen);
    cJSON_Delete(wait_state(&n, "later", "updated"));
    char *log = e2e_log_read(&n);
    char *valid = strstr(log, "marked valid"), *updated = strstr(log, "pull: updated");
    assert_true(valid && updated && valid < updated);
    free(log);
    e2e_node_stop(&n);
}

/* A scheduled check as HTTPUpdate makes it, against this test's server
 * playing aloftd: the headers are there; a wrong x-MD5 fails the update
 * (bad_md5, nothing changed); a 200 dropped halfway resumes with Range at
 * /firmware/<sha256>.bin, which the ETag names, and installs the image. */
static void test_check_headers_md5_and_resume(void **state)
{
    (void)state;
    char sha[65], md5[33], fw_path[100];
    aloft_sha256_hex(img2, img2_len, sha);
    struct aloft_md5 m;
    uint8_t d[16];
    aloft_md5_init(&m);
    aloft_md5_update(&m, img2, img2_len);
    aloft_md5_final(&m, d);
    for (int i = 0; i < 16; i++)
        sprintf(md5 + 2 * i, "%02x", d[i]);
    struct file *u = serve_bytes("/update?dev=demo&ver=1.0.0", img2, img2_len);
    snprintf(u->etag, sizeof u->etag, "\"%s\"", sha);
    snprintf(u->md5, sizeof u->md5, "%s", "0123456789abcdef0123456789abcdef");
    snprintf(fw_path, sizeof fw_path, "/firmware/%s.bin", sha);
    struct file *f = serve_bytes(fw_path, img2, img2_len);
    snprintf(f->etag, sizeof f->etag, "\"%s\"", sha);
    char server[80];
    snprintf(server, sizeof server, "http://%s:%u", ADDR, fs.port);

    struct e2e_node a;
    const char *args[] = {"--server", server, NULL};
    e2e_node_init(&a, "md5");
    const char *a_args[] = {"--create", "--flash-size", "4M", "--firmware", fw1, "--server", server, NULL};
    assert_int_equal(e2e_node_start(&a, a_args), 0);
    cJSON *st = wait_state(&a, "", "failed");
    assert_string_equal(e2e_jstr(st, "code"), "bad_md5");
    cJSON_Delete(st);
    expect_version(&a, "1.0.0");
    assert_false(has_setting(&a, "pull/job"));
    pthread_mutex_lock(&fs.lock);
    const char *req = fs.update_req;
    static const char *const must[] = {"User-Agent: ESP32-http-Update", "x-ESP32-STA-MAC: ", "x-ESP32-AP-MAC: ",
                                       "x-ESP32-free-space: 983040", "x-ESP32-sketch-size: ", "x-ESP32-sketch-md5: ",
                                       "x-ESP32-sketch-sha256: ", "x-ESP32-chip-size: 4194304",
                                       "x-ESP32-sdk-version: ", "x-ESP32-mode: ", "x-ESP32-version: "};
    for (size_t i = 0; i < sizeof must / sizeof must[0]; i++)
        if (!strstr(req, must[i]))
            fail_msg("the check did not send '%s':\n%s", must[i], req);
    pthread_mutex_unlock(&fs.lock);
    e2e_node_stop(&a);

    pthread_mutex_lock(&fs.lock);
    snprintf(u->md5, sizeof u->md5, "%s", md5);
    u->drops[0] = img2_len / 2;
    u->ndrops = 1;
    pthread_mutex_unlock(&fs.lock);
    struct e2e_node b;
    start_node(&b, "resume-check", args);
    cJSON_Delete(wait_state(&b, "", "updated"));
    expect_version(&b, "2.0.0");
    slot_holds(&b, "ota_1", img2, img2_len);
    long long from = 0;
    assert_int_equal(ranged_requests(fw_path, &from), 1);
    assert_int_equal(from, (long long)(img2_len / 2));
    e2e_node_stop(&b);
}

/* Triggers that do not parse: 400 bad_trigger saying what is wrong, and
 * nothing happens. */
static void test_bad_triggers_are_refused_with_a_reason(void **state)
{
    (void)state;
    struct e2e_node n;
    start_node(&n, "triggers", NULL);
    static const char *const cases[][2] = {
        {"not json", "not a JSON object"},
        {"[1,2]", "not a JSON object"},
        {"{\"url\":\"http://a/b.bin\"}", "\"type\" must be \"ota_trigger\""},
        {"{\"type\":\"reboot\",\"url\":\"http://a/b.bin\"}", "\"type\" must be \"ota_trigger\""},
        {"{\"type\":\"ota_trigger\"}", "\"url\" is missing"},
        {"{\"type\":\"ota_trigger\",\"url\":\"file:///etc/passwd\"}", "http:// or https://"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b.bin\",\"sha256\":\"abc\"}", "64 hex digits"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b.bin\",\"size\":-5}", "positive whole number"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b.bin\",\"size\":1.5}", "positive whole number"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b.bin\",\"target\":\"bootloader\"}", "firmware\" or \"frontend"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b.bin\",\"version\":7}", "\"version\" must be a string"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b.bin\","
         "\"id\":\"0123456789012345678901234567890123456789012345678\"}",
         "\"id\" must be a string of at most 47"},
    };
    struct before before;
    take(&before, &n);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct e2e_http r;
        int code = trigger(&n, cases[i][0], &r);
        cJSON *j = cJSON_Parse(r.body);
        const char *msg = j ? e2e_jstr(j, "message") : "";
        if (code != 400 || strcmp(e2e_http_error(&r), "bad_trigger") || !strstr(msg, cases[i][1]))
            fail_msg("%s: %d %s (want 400 bad_trigger '%s')", cases[i][0], code, r.body, cases[i][1]);
        cJSON_Delete(j);
        e2e_http_free(&r);
    }
    cJSON *st = e2e_get_json(&n, "/api/ota/state");
    assert_string_equal(e2e_jstr(st, "state"), "idle");
    cJSON_Delete(st);
    unchanged(&before, &n, "bad triggers");
    e2e_node_stop(&n);
}

/* POST /api/ota/pull takes the upload PSK like POST /ota. */
static void test_trigger_needs_the_psk(void **state)
{
    (void)state;
    struct e2e_node n;
    const char *args[] = {"--psk", "pull-secret", NULL};
    start_node(&n, "psk", args);
    char url[200], json[300];
    snprintf(url, sizeof url, "%s/api/ota/pull", n.url);
    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"id\":\"psk\"}", file_url("/gone.bin"));
    static const char *const auth[] = {NULL, "Authorization: Bearer wrong", "Authorization: Bearer pull-secret"};
    static const int want[] = {401, 401, 202};
    for (int i = 0; i < 3; i++) {
        const char *args2[] = {"-X",  "POST", "--data-binary", json, "-H", "Content-Type: application/json",
                               "-H",  auth[i] ? auth[i] : "Authorization:", url, NULL};
        struct e2e_http r;
        assert_int_equal(e2e_curl(&r, args2), want[i]);
        e2e_http_free(&r);
    }
    cJSON *st = wait_state(&n, "psk", "failed");
    assert_string_equal(e2e_jstr(st, "code"), "http_404");
    cJSON_Delete(st);
    e2e_node_stop(&n);
}

/* One pull of 2.0.0 on a copy of the pristine 1.0.0 flash with power cut at
 * flash operation cut of the first run (boot and pull until the restart).
 * Whatever the cut interrupted, the device ends running 2.0.0 with state
 * "updated" for the trigger: before the switch the job resumes, after it
 * the pending outcome is there. Returns whether the cut happened. */
static bool pull_cut(struct e2e_node *n, const uint8_t *pristine, size_t len, uint64_t cut)
{
    e2e_file_write(n->flash, pristine, len);
    char at[24], id[32];
    snprintf(at, sizeof at, "%llu", (unsigned long long)cut);
    snprintf(id, sizeof id, "cut-%llu", (unsigned long long)cut);
    const char *args[] = {"--power-cut-after", at, "--restart-delay", "0", NULL};
    unsigned lost = e2e_log_count(n, "power lost at flash operation");
    assert_int_equal(e2e_node_start(n, args), 0);
    char json[600];
    snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"%s\",\"id\":\"%s\"}", file_url("/cut.bin"), id);
    struct e2e_http r;
    int code = trigger(n, json, &r); /* the reply may be lost in a power cut */
    e2e_http_free(&r);
    bool hit = e2e_log_count(n, "power lost at flash operation") > lost;
    if (code != 202 && !hit)
        fail_msg("trigger: %d", code);
    if (code == 202 || e2e_log_count(n, "pull: resuming") > 0) {
        cJSON *st = wait_state(n, id, "updated");
        cJSON_Delete(st);
        expect_version(n, "2.0.0");
    }
    hit = e2e_log_count(n, "power lost at flash operation") > lost;
    e2e_node_stop(n);
    return hit;
}

/* Power lost at each of the last flash operations of a pull (the outcome
 * saved, the otadata switch, the job cleared): never a lost update, never
 * an update without its outcome. */
static void test_power_cut_at_the_end_of_a_pull(void **state)
{
    (void)state;
    e2e_simulator_only("power cuts at a flash operation are aloft-node's (--power-cut-after)");
    serve_bytes("/cut.bin", img2, img2_len);
    struct e2e_node n;
    start_node(&n, "cut", NULL);
    e2e_node_stop(&n);
    size_t len;
    uint8_t *pristine = e2e_file_read(n.flash, &len);
    /* the first run's last operation: the largest cut that still hits */
    uint64_t lo = 1, hi = 1u << 20;
    assert_true(pull_cut(&n, pristine, len, lo));
    assert_false(pull_cut(&n, pristine, len, hi));
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        *(pull_cut(&n, pristine, len, mid) ? &lo : &hi) = mid;
    }
    printf("boot and pull are %llu flash operations\n", (unsigned long long)lo);
    unsigned cut = 0;
    for (uint64_t k = lo > 12 ? lo - 12 : 1; k <= lo; k++)
        cut += pull_cut(&n, pristine, len, k);
    printf("%u of the last 13 operations cut; every run ended updated with its outcome\n", cut);
    assert_true(cut >= 10);
    free(pristine);
}

static int setup(void **state)
{
    (void)state;
    snprintf(fw1, sizeof fw1, "%s", e2e_path("pull-1.0.0.bin"));
    snprintf(fw2, sizeof fw2, "%s", e2e_path("pull-2.0.0.bin"));
    e2e_image(fw1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(fw2, "esp32s3", "2.0.0", 900000, NULL);
    img2 = e2e_file_read(fw2, &img2_len);
    server_start();
    return 0;
}

static int teardown(void **state)
{
    server_stop();
    free(img2);
    return aloftd_teardown(state);
}

int main(void)
{
    e2e_init(60);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_https_verified_update_and_untrusted_certificate, aloftd_teardown),
        cmocka_unit_test_teardown(test_dropped_connections_resume_with_range, e2e_teardown),
        cmocka_unit_test_teardown(test_dropped_patch_resumes_at_a_checkpoint, e2e_teardown),
        cmocka_unit_test_teardown(test_pull_drops_a_kept_patch_checkpoint, e2e_teardown),
        cmocka_unit_test_teardown(test_killed_mid_download_resumes_after_restart, e2e_teardown),
        cmocka_unit_test_teardown(test_pulled_patch_resumes_after_a_restart, e2e_teardown),
        cmocka_unit_test_teardown(test_resumed_pulled_patch_that_fails_changes_nothing, e2e_teardown),
        cmocka_unit_test_teardown(test_bad_downloads_fail_and_change_nothing, e2e_teardown),
        cmocka_unit_test_teardown(test_scheduled_checks, aloftd_teardown),
        cmocka_unit_test_teardown(test_frontend_target, e2e_teardown),
        cmocka_unit_test_teardown(test_flashed_frontend_is_current, aloftd_teardown),
        cmocka_unit_test_teardown(test_trigger_needs_the_psk, e2e_teardown),
        cmocka_unit_test_teardown(test_bad_triggers_are_refused_with_a_reason, e2e_teardown),
        cmocka_unit_test_teardown(test_updated_only_once_confirmed, e2e_teardown),
        cmocka_unit_test_teardown(test_check_headers_md5_and_resume, e2e_teardown),
        cmocka_unit_test_teardown(test_power_cut_at_the_end_of_a_pull, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
