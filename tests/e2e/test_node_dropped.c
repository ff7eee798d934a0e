/* Clients that go away: one that disconnects mid-body (curl --max-time with
 * --limit-rate) and one that stalls past --idle-timeout. Both leave the
 * running slot, otadata and the settings as they were, the node no longer
 * busy, and the next good upload goes through. */
#include "e2e.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

static char v1[300], v2[300], big[300];

static int setup(void **state)
{
    (void)state;
    snprintf(v1, sizeof v1, "%s", e2e_path("drop-1.bin"));
    snprintf(v2, sizeof v2, "%s", e2e_path("drop-2.bin"));
    snprintf(big, sizeof big, "%s", e2e_path("drop-big.bin"));
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 0, NULL);
    e2e_image(big, "esp32s3", "3.0.0", 600000, NULL);
    return 0;
}

static void start(struct e2e_node *n, const char *name)
{
    e2e_node_init(n, name);
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--idle-timeout", "2", NULL};
    assert_int_equal(e2e_node_start(n, args), 0);
}

/* Nothing changed, nothing busy, and a good upload goes through. */
static void as_before_then_good_upload(struct e2e_node *n, struct e2e_snap *s)
{
    const char *diff = e2e_snap_diff(s, n);
    if (diff)
        fprintf(stderr, "the %s changed\n", diff);
    assert_null(diff);
    cJSON *st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_0");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(st, "busy")));
    cJSON_Delete(st);

    struct e2e_http r;
    assert_int_equal(e2e_upload(n, "/ota", v2, &r, NULL), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
    st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
    cJSON_Delete(st);
}

static void test_client_disconnects_mid_body(void **state)
{
    (void)state;
    struct e2e_node n;
    start(&n, "gone");
    struct e2e_snap s;
    e2e_snap_take(&s, &n);
    /* 600 KB at 100 KB/s, given up after 1 s */
    const char *slow[] = {"--limit-rate", "100K", "--max-time", "1", NULL};
    struct e2e_http r;
    assert_int_equal(e2e_upload(&n, "/ota", big, &r, slow), 0);
    assert_int_equal(r.rc, 28); /* curl: operation timed out */
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_log(&n, "ota: upload dropped after", 1, 5000), 0);
    as_before_then_good_upload(&n, &s);
    e2e_snap_free(&s);
    e2e_node_stop(&n);
}

/* Send the headers and `body` bytes of the big image, then nothing. */
static int stall_after(struct e2e_node *n, size_t body)
{
    size_t len;
    uint8_t *img = e2e_file_read(big, &len);
    int fd = e2e_connect(n);
    char head[400];
    int hl = snprintf(head, sizeof head,
                      "POST /ota HTTP/1.1\r\nHost: %s\r\nContent-Type: application/octet-stream\r\n"
                      "%s\r\nContent-Length: %zu\r\n\r\n",
                      n->listen, n->auth, len);
    assert_int_equal(send(fd, head, (size_t)hl, MSG_NOSIGNAL), hl);
    for (size_t off = 0; off < body;) {
        ssize_t k = send(fd, img + off, body - off, MSG_NOSIGNAL);
        assert_true(k > 0);
        off += (size_t)k;
    }
    free(img);
    return fd;
}

static void stalled(size_t body)
{
    struct e2e_node n;
    start(&n, body ? "stall-body" : "stall-head");
    struct e2e_snap s;
    e2e_snap_take(&s, &n);
    uint64_t t0 = e2e_now_ms();
    int fd = stall_after(&n, body);

    /* while it hangs the device is busy: a second upload gets 409 */
    e2e_sleep_ms(300);
    struct e2e_http r;
    assert_int_equal(e2e_upload(&n, "/ota", v2, &r, NULL), 409);
    e2e_http_free(&r);

    assert_int_equal(e2e_node_wait_log(&n, "ota: upload dropped after", 1, 8000), 0);
    uint64_t took = e2e_now_ms() - t0;
    printf("stalled after %zu body bytes: dropped after %llu ms (--idle-timeout 2)\n", body,
           (unsigned long long)took);
    assert_true(took >= 1900);
    /* the node closed its end */
    struct timeval tv = {.tv_sec = 3};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char buf[512];
    ssize_t k;
    while ((k = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    assert_true(k == 0 || (k < 0 && errno == ECONNRESET));
    close(fd);
    as_before_then_good_upload(&n, &s);
    e2e_snap_free(&s);
    e2e_node_stop(&n);
}

static void test_client_stalls_mid_body(void **state)
{
    (void)state;
    stalled(250000);
}

static void test_client_stalls_after_the_headers(void **state)
{
    (void)state;
    stalled(0);
}

int main(void)
{
    e2e_init(4);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_client_disconnects_mid_body, e2e_teardown),
        cmocka_unit_test_teardown(test_client_stalls_mid_body, e2e_teardown),
        cmocka_unit_test_teardown(test_client_stalls_after_the_headers, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
