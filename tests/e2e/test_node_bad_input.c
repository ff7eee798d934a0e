/* Every refusal class of POST /ota (PROTOCOLS.md §1) against a real node:
 * 411, 413, 415, 400 with the reason, 422, 409. Each leaves the running
 * slot, otadata and the settings (nvs) byte-identical and the node running
 * the same image; refusals decided from the headers do not even touch the
 * update slot. */
#include "e2e.h"

#include <stdio.h>
#include <string.h>

static struct e2e_node node;
static char good[300];
static uint8_t *img;
static size_t img_len;

static int setup(void **state)
{
    (void)state;
    const char *v1 = e2e_path("bad-1.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    snprintf(good, sizeof good, "%s", e2e_path("bad-good.bin"));
    e2e_image(good, "esp32s3", "2.0.0", 200000, NULL);
    img = e2e_file_read(good, &img_len);
    e2e_node_init(&node, "bad");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, NULL};
    return e2e_node_start(&node, args);
}

static int teardown(void **state)
{
    free(img);
    return e2e_teardown(state);
}

/* The good image with one change, written to a file named after the case. */
static const char *variant(const char *name, size_t len, size_t at, uint8_t xor_with)
{
    uint8_t *b = calloc(1, len > img_len ? len : img_len);
    memcpy(b, img, len < img_len ? len : img_len);
    if (len > img_len)
        memset(b + img_len, 0x5A, len - img_len);
    if (at < len)
        b[at] ^= xor_with;
    const char *path = e2e_path(name);
    e2e_file_write(path, b, len);
    free(b);
    return path;
}

/* POST file with extra curl args; expect status and error code; check that
 * nothing changed (and with before_write, not the update slot either). */
static void refused(const char *file, const char *const extra[], int want, const char *code, bool before_write)
{
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    uint32_t off, size;
    e2e_part(&node, "ota_1", &off, &size);
    uint8_t *slot = e2e_flash_read(&node, off, size);
    unsigned boots = node.serving;

    struct e2e_http r;
    int got = e2e_upload(&node, "/ota", file, &r, extra);
    if (got != want || strcmp(e2e_http_error(&r), code))
        fprintf(stderr, "expected %d %s, got %d (curl %d): %s\n", want, code, got, r.rc, r.body);
    assert_int_equal(got, want);
    assert_string_equal(e2e_http_error(&r), code);
    cJSON *j = cJSON_Parse(r.body);
    assert_true(strlen(e2e_jstr(j, "message")) > 10);
    cJSON_Delete(j);
    e2e_http_free(&r);

    const char *diff = e2e_snap_diff(&s, &node);
    if (diff)
        fprintf(stderr, "%s: the %s changed\n", code, diff);
    assert_null(diff);
    e2e_snap_free(&s);
    if (before_write) {
        uint8_t *now = e2e_flash_read(&node, off, size);
        assert_memory_equal(now, slot, size);
        free(now);
    }
    free(slot);
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_0");
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(st, "busy")));
    cJSON_Delete(st);
    assert_int_equal(e2e_log_count(&node, "http: serving on"), boots);
}

static void test_411_chunked(void **state)
{
    (void)state;
    const char *chunked[] = {"-H", "Transfer-Encoding: chunked", NULL};
    refused(good, chunked, 411, "length_required", true);
}

static void test_413_larger_than_the_slot(void **state)
{
    (void)state;
    const char *big = variant("too-large.bin", E2E_SLOT_SIZE_4M + 1, img_len, 0);
    /* the device answers from the headers and closes: curl must wait for
     * that answer (Expect: 100-continue) however slow a loaded machine is,
     * or it is still sending when the connection closes (curl 55) */
    const char *wait[] = {"--expect100-timeout", "120", NULL};
    refused(big, wait, 413, "too_large", true);
}

static void test_415_wrong_or_no_content_type(void **state)
{
    (void)state;
    const char *text[] = {"-H", "Content-Type: text/plain", NULL};
    refused(good, text, 415, "unsupported_media_type", true);
    const char *form[] = {"-H", "Content-Type: application/x-www-form-urlencoded", NULL};
    refused(good, form, 415, "unsupported_media_type", true);
    const char *multipart[] = {"-H", "Content-Type: multipart/form-data; boundary=x", NULL};
    refused(good, multipart, 415, "unsupported_media_type", true);
    const char *none[] = {"-H", "Content-Type:", NULL};
    refused(good, none, 415, "unsupported_media_type", true);
}

static void test_400_with_the_reason(void **state)
{
    (void)state;
    refused(variant("empty.bin", 0, 0, 0), NULL, 400, "empty", true);
    refused(variant("magic.bin", img_len, 0, 0x01), NULL, 400, "bad_magic", false);
    refused(variant("segments.bin", img_len, 1, img[1]), NULL, 400, "bad_segments", false); /* count 0 */
    refused(variant("header.bin", img_len, 23, 0x03), NULL, 400, "bad_header", false);   /* hash flag 2 */
    refused(variant("segment.bin", img_len, 24 + 4, 0x02), NULL, 400, "bad_segment", false);
    refused(variant("checksum.bin", img_len, img_len / 2, 0x04), NULL, 400, "bad_checksum", false);
    refused(variant("sha256.bin", img_len, img_len - 1, 0x80), NULL, 400, "bad_sha256", false);
    refused(variant("truncated.bin", img_len / 2, img_len, 0), NULL, 400, "truncated", false);
    refused(variant("short.bin", img_len - 1, img_len, 0), NULL, 400, "truncated", false);
    refused(variant("trailing.bin", img_len + 100, img_len + 100, 0), NULL, 400, "trailing_data", false);
    const char *text = e2e_path("text.bin");
    e2e_file_write(text, "<html>not an image</html>\n", 26);
    refused(text, NULL, 400, "bad_magic", false);
}

static void test_422_wrong_chip(void **state)
{
    (void)state;
    const char *c3 = e2e_path("c3.bin");
    e2e_image(c3, "esp32c3", "2.0.0", 0, NULL);
    refused(c3, NULL, 422, "wrong_chip", false);
    /* the real ESP-IDF build for esp32c3 too (the example is one) */
    if (!e2e_example())
        refused(ALOFT_FIXTURES "/esp-idf/esp32c3-elf2image-no-desc.bin", NULL, 422, "wrong_chip", false);
}

/* After all the refusals the node takes a good image. */
static void test_then_a_good_upload(void **state)
{
    (void)state;
    struct e2e_http r;
    assert_int_equal(e2e_upload(&node, "/ota", good, &r, NULL), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    cJSON_Delete(st);
}

/* 409: a second upload while one runs (the first is held to 256 KB/s by the
 * simulated link); the first then completes. */
static void test_409_second_upload_while_one_runs(void **state)
{
    (void)state;
    e2e_simulator_only("an upload held back by aloft-node's simulated link (--link-rate)");
    struct e2e_node n;
    e2e_node_init(&n, "busy");
    const char *v1 = e2e_path("busy-1.bin"), *v2 = e2e_path("busy-2.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 300000, NULL);
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--link-rate", "256K", NULL};
    assert_int_equal(e2e_node_start(&n, args), 0);
    struct e2e_snap s;
    e2e_snap_take(&s, &n);

    char url[100], data[320];
    snprintf(url, sizeof url, "%s/ota", n.url);
    snprintf(data, sizeof data, "@%s", v2);
    const char *first[] = {"-X", "POST", "--data-binary", data, "-H", "Content-Type: application/octet-stream",
                           "-H", n.auth, url, NULL};
    struct e2e_curl_job job;
    e2e_curl_start(&job, first);
    bool busy = false;
    for (uint64_t t0 = e2e_now_ms(); !busy && e2e_now_ms() - t0 < 5000; e2e_sleep_ms(20)) {
        cJSON *st = e2e_status(&n);
        busy = cJSON_IsTrue(cJSON_GetObjectItem(st, "busy"));
        cJSON_Delete(st);
    }
    assert_true(busy);

    struct e2e_http r;
    assert_int_equal(e2e_upload(&n, "/ota", v1, &r, NULL), 409);
    assert_string_equal(e2e_http_error(&r), "busy");
    e2e_http_free(&r);
    assert_int_equal(e2e_upload(&n, "/api/ota/frontend", v1, &r, NULL), 409);
    assert_string_equal(e2e_http_error(&r), "busy");
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, &n));
    e2e_snap_free(&s);

    assert_int_equal(e2e_curl_wait(&job, &r), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&n), 0);
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    cJSON_Delete(st);
    e2e_node_stop(&n);
}

int main(void)
{
    e2e_init(3);
    /* (409 while the running image is pending verification: test_node_pitfalls) */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_411_chunked),
        cmocka_unit_test(test_413_larger_than_the_slot),
        cmocka_unit_test(test_415_wrong_or_no_content_type),
        cmocka_unit_test(test_400_with_the_reason),
        cmocka_unit_test(test_422_wrong_chip),
        cmocka_unit_test(test_then_a_good_upload),
        cmocka_unit_test(test_409_second_upload_while_one_runs),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
