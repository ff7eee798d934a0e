/* The component's HTTP update API (http.c, www.c, port.c) run on the host
 * over the esp_http_server and esp_littlefs fakes, spoken to with libcurl
 * and raw sockets: the status, the frontend's gzip file from the www slot,
 * a wrong PSK, a chunked upload, a stalled upload dropped after the
 * bounded retries, the LRU purge of an idle connection, and an upload
 * whose image is what the bootloader starts after the restart. */
#include <arpa/inet.h>
#include <curl/curl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "aloft_posix_flash.h"
#include "esp_ota_ops.h"
#include "esp_system.h"
#include "flashimg.h"
#include "glue.h"
#include "littlefs.h"
#include "nvs.h"
#include "testdev.h"

#define IP "127.0.0.83"
#define PSK "s3cret-psk"
#define RECV_WAIT_MS "200" /* recv_wait_timeout as the fake counts it here */
#define WWW_0 0x90000
#define WWW_SIZE 0x30000
#define CSV                                                                                                   \
    ALOFT_TEST_CSV_SMALL "www_0,    data, littlefs, 0x90000, 0x30000,\n"                                      \
                         "www_1,    data, littlefs, 0xc0000, 0x30000,\n"

static struct aloft_idf dev;
static char base[64];
static uint8_t page_gz[3000], big_js[10000];

struct buf {
    char *p;
    size_t len;
};

struct reply {
    long status;
    struct buf body, hdrs;
};

static size_t collect(char *p, size_t size, size_t n, void *ud)
{
    struct buf *b = ud;
    char *q = realloc(b->p, b->len + size * n + 1);
    if (!q)
        return 0;
    memcpy(q + b->len, p, size * n);
    b->len += size * n;
    q[b->len] = 0;
    b->p = q;
    return size * n;
}

/* A request with libcurl; chunked sends the body with Transfer-Encoding:
 * chunked. Returns the status (0: no reply). */
static long request(const char *method, const char *path, const char *hdr, const void *body, size_t len,
                    bool chunked, struct reply *r)
{
    char url[128];
    struct curl_slist *h = NULL;
    CURL *c = curl_easy_init();
    memset(r, 0, sizeof *r);
    snprintf(url, sizeof url, "%s%s", base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOBODY, (long)!strcmp(method, "HEAD"));
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->hdrs);
    if (hdr)
        h = curl_slist_append(h, hdr);
    if (body) {
        h = curl_slist_append(h, "Content-Type: application/octet-stream");
        if (chunked)
            h = curl_slist_append(h, "Transfer-Encoding: chunked");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, chunked ? -1L : (long)len);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return r->status;
}

static void reply_free(struct reply *r)
{
    free(r->body.p);
    free(r->hdrs.p);
}

/* A connection to the device, raw. */
static int dial(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(dev.cfg.push_port)};
    inet_pton(AF_INET, IP, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Milliseconds until the device closes fd (reading what it sends), or -1
 * after timeout_ms. */
static long closed_after(int fd, long timeout_ms)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = timeout_ms % 1000 * 1000};
    struct timespec t0, t1;
    char b[512];
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ssize_t n;
    while ((n = recv(fd, b, sizeof b, 0)) > 0)
        ;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return n == 0 ? (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 : -1;
}

/* A free port on IP, as the kernel picks one. */
static uint16_t free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    socklen_t n = sizeof a;
    inet_pton(AF_INET, IP, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &n))
        return 0;
    close(fd);
    return ntohs(a.sin_port);
}

static int write_file(const char *dir, const char *name, const void *data, size_t len)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    int rc = f && fwrite(data, 1, len, f) == len ? 0 : -1;
    if (f)
        fclose(f);
    return rc;
}

/* The frontend's LittleFS image, as `aloft mkfs` makes it for www_0. */
static uint8_t *www_image(void)
{
    char dir[512];
    uint8_t *img = NULL;
    size_t len;
    snprintf(dir, sizeof dir, "%s/fake-idf-http-www", aloft_test_tmpdir());
    mkdir(dir, 0755);
    aloft_test_fill(page_gz, sizeof page_gz, 1);
    page_gz[0] = 0x1f, page_gz[1] = 0x8b; /* served as stored: only its name says gzip */
    aloft_test_fill(big_js, sizeof big_js, 2);
    if (write_file(dir, "index.html.gz", page_gz, sizeof page_gz) ||
        write_file(dir, "big.js", big_js, sizeof big_js) ||
        aloft_lfs_mkfs(dir, WWW_SIZE, 4096, ALOFT_LFS_VERSION_2_1, &img, &len, NULL))
        return NULL;
    return img;
}

/* The flash as `aloft flash init` and `idf.py flash` leave it: the table
 * with www slots, app 1.0.0 in ota_0, the frontend in www_0. */
static int make_flash(void)
{
    static char path[512];
    struct aloft_posix_flash pf;
    struct aloft_part_table t;
    size_t len;
    uint8_t *app = aloft_test_image("esp32c3", "1.0.0", 0, NULL, &len), *www = www_image();
    snprintf(path, sizeof path, "%s/fake-idf-http.img", aloft_test_tmpdir());
    remove(path);
    int rc = !app || !www || aloft_posix_flash_open(&pf, path, 1024 * 1024, true) ? -1 : 0;
    if (rc == 0) {
        if (aloft_part_csv_parse(&t, CSV, strlen(CSV), ALOFT_PART_TABLE_OFFSET, NULL) ||
            aloft_flashimg_init(&pf.port, &t, ALOFT_PART_TABLE_OFFSET, app, len) ||
            aloft_flash_erase(&pf.port, WWW_0, WWW_SIZE) || aloft_flash_write(&pf.port, WWW_0, www, WWW_SIZE))
            rc = -1;
        aloft_posix_flash_close(&pf);
    }
    free(app);
    free(www);
    if (rc == 0)
        setenv("FAKE_IDF_FLASH", path, 1);
    return rc;
}

/* The device: PSK provisioned, then the agent and the HTTP server as
 * aloft_start puts them together. */
static int setup(void **state)
{
    (void)state;
    nvs_handle_t h;
    setenv("FAKE_IDF_IP", IP, 1);
    setenv("FAKE_IDF_HTTPD_RECV_WAIT_MS", RECV_WAIT_MS, 1);
    if (make_flash() || nvs_open("security", NVS_READWRITE, &h) != ESP_OK)
        return -1;
    esp_err_t err = nvs_set_str(h, "ota_psk", PSK);
    nvs_commit(h);
    nvs_close(h);
    dev.cfg = (aloft_config_t){.push_server = true, .push_port = free_port(), .require_psk = true, .www = true,
                               .httpd_stack_size = 6144, .task_stack_size = 8192};
    snprintf(base, sizeof base, "http://%s:%u", IP, (unsigned)dev.cfg.push_port);
    dev.lock = xSemaphoreCreateMutex();
    if (err != ESP_OK || !dev.cfg.push_port || aloft_idf_boot_init(&dev.boot, &dev.flash) != ESP_OK)
        return -1;
    aloft_idf_device_facts(&dev);
    const struct aloft_agent_config cfg = {.mac = dev.mac, .reset_reason = dev.reset_reason,
                                           .boot_count = dev.boot_count};
    if (aloft_idf_port_init(&dev) != ESP_OK || aloft_agent_start(&dev.agent, &dev.port, &dev.boot, &cfg))
        return -1;
    return aloft_idf_http_start(&dev) == ESP_OK ? 0 : -1;
}

static void test_status(void **state)
{
    (void)state;
    struct reply r;
    assert_int_equal(request("GET", "/ota/status", NULL, NULL, 0, false, &r), 200);
    assert_non_null(strstr(r.hdrs.p, "Content-Type: application/json"));
    assert_non_null(strstr(r.hdrs.p, "Cache-Control: no-store"));
    assert_non_null(strstr(r.body.p, "\"1.0.0\""));
    reply_free(&r);
    assert_int_equal(request("GET", "/nothing-here", NULL, NULL, 0, false, &r), 404);
    reply_free(&r);
}

/* Files of the mounted www_0: index.html.gz for "/", a file of several
 * LittleFS blocks sent in chunks, HEAD without a body. */
static void test_www(void **state)
{
    (void)state;
    struct reply r;
    assert_int_equal(request("GET", "/", "Accept-Encoding: gzip, deflate", NULL, 0, false, &r), 200);
    assert_non_null(strstr(r.hdrs.p, "Content-Encoding: gzip"));
    assert_non_null(strstr(r.hdrs.p, "Vary: Accept-Encoding"));
    assert_non_null(strstr(r.hdrs.p, "Content-Type: text/html"));
    assert_int_equal(r.body.len, sizeof page_gz);
    assert_memory_equal(r.body.p, page_gz, sizeof page_gz);
    reply_free(&r);
    assert_int_equal(request("GET", "/big.js", NULL, NULL, 0, false, &r), 200);
    assert_non_null(strstr(r.hdrs.p, "Transfer-Encoding: chunked"));
    assert_int_equal(r.body.len, sizeof big_js);
    assert_memory_equal(r.body.p, big_js, sizeof big_js);
    reply_free(&r);
    assert_int_equal(request("HEAD", "/big.js", NULL, NULL, 0, false, &r), 200);
    assert_int_equal(r.body.len, 0);
    reply_free(&r);
}

static void test_wrong_psk(void **state)
{
    (void)state;
    struct reply r;
    size_t len;
    uint8_t *img = aloft_test_image("esp32c3", "2.0.0", 0, NULL, &len);
    assert_int_equal(request("POST", "/ota", "Authorization: Bearer wrong", img, len, false, &r), 401);
    reply_free(&r);
    assert_int_equal(request("POST", "/ota", NULL, img, len, false, &r), 401);
    reply_free(&r);
    free(img);
}

/* A chunked body: content_len 0 and no Content-Length, refused. */
static void test_chunked(void **state)
{
    (void)state;
    struct reply r;
    size_t len;
    uint8_t *img = aloft_test_image("esp32c3", "2.0.0", 0, NULL, &len);
    assert_int_equal(request("POST", "/ota", "Authorization: Bearer " PSK, img, len, true, &r), 411);
    reply_free(&r);
    free(img);
}

/* A client that stops mid-body: six timeouts of httpd_req_recv in a row,
 * then the glue gives up and the session is closed; the server serves the
 * next request. */
static void test_stalled(void **state)
{
    (void)state;
    char head[256], body[1000] = {0};
    struct reply r;
    int fd = dial();
    int n = snprintf(head, sizeof head,
                     "POST /ota HTTP/1.1\r\nHost: device\r\nAuthorization: Bearer " PSK
                     "\r\nContent-Type: application/octet-stream\r\nContent-Length: 200000\r\n\r\n");
    assert_int_equal(send(fd, head, (size_t)n, 0), n);
    assert_int_equal(send(fd, body, sizeof body, 0), (ssize_t)sizeof body);
    long ms = closed_after(fd, 5000);
    close(fd);
    assert_true(ms >= 6 * atoi(RECV_WAIT_MS) - 100);
    assert_true(ms < 4000);
    assert_int_equal(request("GET", "/ota/status", NULL, NULL, 0, false, &r), 200);
    reply_free(&r);
}

/* max_open_sockets (7) with LRU purge: an 8th connection closes the
 * least recently used one, and is served. */
static void test_lru_purge(void **state)
{
    (void)state;
    int fds[7];
    char get[] = "GET /ota/status HTTP/1.1\r\nHost: device\r\n\r\n", b[64];
    usleep(100 * 1000); /* the server has seen curl's connections close */
    for (int i = 0; i < 7; i++) {
        fds[i] = dial();
        usleep(20 * 1000);
    }
    int fd = dial();
    assert_int_equal(send(fd, get, strlen(get), 0), (ssize_t)strlen(get));
    ssize_t n = recv(fd, b, sizeof b - 1, 0);
    assert_true(n > 12);
    b[n] = 0;
    assert_non_null(strstr(b, " 200 "));
    assert_true(closed_after(fds[0], 2000) >= 0);
    struct timeval tv = {.tv_usec = 100 * 1000};
    setsockopt(fds[1], SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(recv(fds[1], b, sizeof b, 0), -1); /* still open */
    for (int i = 0; i < 7; i++)
        close(fds[i]);
    close(fd);
}

/* An upload that works, in short reads of what arrived: 200, a restart
 * due, and after it the bootloader starts the new image. */
static void test_upload(void **state)
{
    (void)state;
    struct reply r;
    size_t len;
    uint8_t *img = aloft_test_image("esp32c3", "2.0.0", 100 * 1024, NULL, &len);
    assert_int_equal(request("POST", "/ota", "Authorization: Bearer " PSK, img, len, false, &r), 200);
    reply_free(&r);
    free(img);
    assert_int_equal(esp_timer_stop(dev.restart_timer), ESP_OK); /* it was armed; the child restarts instead */
    pid_t pid = fork();
    if (pid == 0)
        esp_restart();
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 42);
}

/* After the restart (a re-execution of this program): the app the
 * bootloader chose from the otadata the glue wrote. 42 when it is 2.0.0
 * in ota_1. */
static int after_restart(void)
{
    const esp_partition_t *p = esp_ota_get_running_partition();
    char version[33] = {0};
    /* esp_app_desc_t.version: after the image header (24), the first
     * segment's header (8) and the descriptor's magic, secure version
     * and reserved words (16) */
    if (!p || esp_partition_read(p, 48, version, 32) != ESP_OK)
        return 1;
    printf("after the restart: %s runs %s\n", p->label, version);
    return !strcmp(p->label, "ota_1") && !strcmp(version, "2.0.0") ? 42 : 1;
}

int main(void)
{
    if (esp_reset_reason() == ESP_RST_SW)
        return after_restart();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status),  cmocka_unit_test(test_www),       cmocka_unit_test(test_wrong_psk),
        cmocka_unit_test(test_chunked), cmocka_unit_test(test_stalled),   cmocka_unit_test(test_lru_purge),
        cmocka_unit_test(test_upload),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
