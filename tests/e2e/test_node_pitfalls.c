/* Seed 001 §5's pitfalls against a real aloft-node, with curl as the seed
 * uses it: a smaller image after a larger one, curl -d, the reply lost in
 * the restart, a panicking image, an image that never confirms itself and
 * one that confirms after a while. */
#include "e2e.h"

#include <stdio.h>
#include <string.h>

#define FIXTURE_4MB ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-4mb-v0.4.3.bin"

/* Upload, expect 200 {"status":"ok"}, wait for the restart. */
static void update(struct e2e_node *n, const char *file)
{
    struct e2e_http r;
    assert_int_equal(e2e_upload(n, "/ota", file, &r, NULL), 200);
    assert_non_null(strstr(r.body, "\"status\":\"ok\""));
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
}

static void expect_running(struct e2e_node *n, const char *part, const char *version, const char *reason)
{
    cJSON *st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "running_partition"), part);
    assert_string_equal(e2e_jstr(st, "version"), version);
    if (reason)
        assert_string_equal(e2e_jstr(st, "reset_reason"), reason);
    cJSON_Delete(st);
}

/* Pitfall: OTA_WITH_SEQUENTIAL_WRITES leaves the tail of a larger old image
 * behind a smaller new one. ota_0 holds the real 773 KB fixture; after a
 * 900 KB image to ota_1, a 66 KB image goes to ota_0: it boots, and every
 * byte of ota_0 after it is erased. */
static void test_smaller_image_after_larger_erases_the_tail(void **state)
{
    (void)state;
    const char *big = e2e_path("shrink-big.bin"), *small = e2e_path("shrink-small.bin");
    e2e_image(big, "esp32s3", "2.0.0", 900000, NULL);
    e2e_image(small, "esp32s3", "2.1.0", 0, NULL);
    struct e2e_node n;
    e2e_node_start_with(&n, "shrink", FIXTURE_4MB, NULL);
    uint32_t off, size;
    e2e_part(&n, "ota_0", &off, &size);
    size_t old_len;
    free(e2e_file_read(FIXTURE_4MB, &old_len));

    update(&n, big);
    expect_running(&n, "ota_1", "2.0.0", "SW");
    assert_int_equal(e2e_wait_state(&n, "valid", 5000), 0); /* else the next upload is 409 */
    update(&n, small);
    expect_running(&n, "ota_0", "2.1.0", "SW");
    assert_int_equal(e2e_wait_state(&n, "valid", 5000), 0);

    size_t len;
    uint8_t *img = e2e_file_read(small, &len);
    assert_true(len < old_len);
    uint8_t *slot = e2e_flash_read(&n, off, size);
    assert_memory_equal(slot, img, len);
    size_t stale = 0;
    for (size_t i = len; i < size; i++)
        stale += slot[i] != 0xFF;
    if (stale)
        fprintf(stderr, "%zu bytes of ota_0 after the new image are not erased\n", stale);
    assert_int_equal(stale, 0);
    free(slot);
    free(img);
    e2e_node_stop(&n);
}

/* Pitfall: `curl -d @fw.bin` (no --data-binary) sends a form body with the
 * newlines stripped. It is refused with 415 and the command that works, and
 * nothing changes; with the right content type but -d's mangled bytes it is
 * refused as an image this device cannot take. */
static void test_curl_d_is_refused_with_guidance(void **state)
{
    (void)state;
    const char *run = e2e_path("form-run.bin"), *fw = e2e_path("form.bin");
    e2e_image(run, "esp32s3", "2.0.0", 300000, NULL);
    e2e_image(fw, "esp32s3", "2.1.0", 300000, NULL);
    struct e2e_node n;
    e2e_node_start_with(&n, "form", run, NULL);
    struct e2e_snap s;
    e2e_snap_take(&s, &n);
    unsigned boots = n.serving;

    char data[320], url[100];
    snprintf(data, sizeof data, "@%s", fw);
    snprintf(url, sizeof url, "%s/ota", n.url);
    struct e2e_http r;
    const char *form[] = {"-d", data, "-H", n.auth, url, NULL};
    assert_int_equal(e2e_curl(&r, form), 415);
    assert_string_equal(e2e_http_error(&r), "unsupported_media_type");
    assert_non_null(strstr(r.body, "--data-binary @fw.bin"));
    assert_non_null(strstr(r.body, "application/octet-stream"));
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, &n));

    const char *mangled[] = {"-d", data, "-H", "Content-Type: application/octet-stream", "-H", n.auth, url, NULL};
    int code = e2e_curl(&r, mangled);
    /* which check trips depends on where the stripped bytes were: a shifted
     * header reads as another chip (422), anything later as damage (400) */
    printf("curl -d with the octet-stream type: %d %s\n", code, r.body);
    assert_true(code == 400 || code == 422);
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, &n));

    e2e_sleep_ms(300); /* a restart would have begun by now */
    assert_int_equal(e2e_log_count(&n, "http: serving on"), boots);
    expect_running(&n, "ota_0", "2.0.0", "POWERON");
    e2e_snap_free(&s);
    e2e_node_stop(&n);
}

/* Pitfall: judging by the HTTP reply. With no delay before the restart the
 * reply is often lost; {"status":"ok"}, an empty reply or a receive failure
 * are all "maybe", and /ota/status after the restart tells the truth. */
static void test_reply_lost_in_restart_status_tells_the_truth(void **state)
{
    (void)state;
    const char *v1 = e2e_path("lost-1.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    struct e2e_node n;
    const char *now[] = {"--restart-delay", "0", NULL};
    e2e_node_start_with(&n, "lost", v1, now);
    const char *parts[] = {"ota_0", "ota_1"};
    unsigned lost = 0;
    for (int i = 1; i <= 4; i++) {
        char name[32], version[16];
        snprintf(name, sizeof name, "lost-%d.bin", i + 1);
        snprintf(version, sizeof version, "1.%d.0", i);
        e2e_image(e2e_path(name), "esp32s3", version, 200000, NULL);
        struct e2e_http r;
        int code = e2e_upload(&n, "/ota", e2e_path(name), &r, NULL);
        /* curl 52: empty reply, 56: receive failure (reset), 55: send
         * failure, 18: reply cut short */
        bool ok = code == 200 && r.rc == 0 && strstr(r.body, "\"status\":\"ok\"");
        bool maybe = (code == 0 && (r.rc == 52 || r.rc == 56 || r.rc == 55)) || (code == 200 && r.rc == 18);
        if (!ok && !maybe)
            fprintf(stderr, "upload %d: status %d, curl exit %d, body '%s'\n", i, code, r.rc, r.body);
        assert_true(ok || maybe);
        lost += maybe;
        e2e_http_free(&r);
        assert_int_equal(e2e_node_wait_boot(&n), 0);
        expect_running(&n, parts[i % 2], version, "SW");
        char reason[16], part[17];
        assert_int_equal(e2e_last_boot(&n, reason, part), 0);
        assert_string_equal(reason, "SW");
        assert_string_equal(part, parts[i % 2]);
        assert_int_equal(e2e_wait_state(&n, "valid", 5000), 0);
    }
    printf("replies lost in the restart: %u of 4\n", lost);
    e2e_node_stop(&n);
}

/* Pitfall: a new image that panics at boot. With rollback on the bootloader
 * falls back; /ota/status says PANIC and the partition did not change. */
static void test_panicking_image_is_rolled_back(void **state)
{
    (void)state;
    const char *v1 = e2e_path("panic-1.bin"), *v2 = e2e_path("panic-2.bin"), *v3 = e2e_path("panic-3.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 0, "panic-on-boot");
    e2e_image(v3, "esp32s3", "3.0.0", 0, NULL);
    struct e2e_node n;
    const char *on[] = {"--rollback", "on", NULL};
    e2e_node_start_with(&n, "panic", v1, on);
    update(&n, v2); /* returns at the first boot that serves: after the fallback */
    char *log = e2e_log_read(&n);
    const char *sw = strstr(log, "boot: reset_reason=SW running_partition=ota_1");
    assert_non_null(sw);
    const char *guru = strstr(sw, "Guru Meditation Error");
    assert_non_null(guru);
    assert_non_null(strstr(guru, "boot: reset_reason=PANIC running_partition=ota_0"));
    free(log);
    expect_running(&n, "ota_0", "1.0.0", "PANIC");
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "next_partition"), "ota_1");
    cJSON_Delete(st);
    /* not a panic loop: the device takes the next good image */
    update(&n, v3);
    expect_running(&n, "ota_1", "3.0.0", "SW");
    e2e_node_stop(&n);
}

/* Pitfall: rollback enabled and nobody confirms. The image runs pending
 * verification, takes no further update (409) and is rolled back at the
 * next restart. */
static void test_unconfirmed_image_is_rolled_back_at_next_restart(void **state)
{
    (void)state;
    const char *v1 = e2e_path("noconf-1.bin"), *v2 = e2e_path("noconf-2.bin"), *v3 = e2e_path("noconf-3.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 0, "no-confirm");
    e2e_image(v3, "esp32s3", "3.0.0", 0, NULL);
    struct e2e_node n;
    const char *on[] = {"--rollback", "on", NULL};
    e2e_node_start_with(&n, "noconf", v1, on);
    update(&n, v2);
    expect_running(&n, "ota_1", "2.0.0", "SW");
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "state"), "pending_verify");
    cJSON_Delete(st);
    assert_int_equal(e2e_log_count(&n, "never confirms itself"), 1);

    /* no update over an unconfirmed image: 409, and nothing changes */
    struct e2e_snap s;
    e2e_snap_take(&s, &n);
    struct e2e_http r;
    assert_int_equal(e2e_upload(&n, "/ota", v3, &r, NULL), 409);
    assert_string_equal(e2e_http_error(&r), "pending_verify");
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, &n));
    e2e_snap_free(&s);

    /* the next restart (a power cycle) falls back to ota_0 */
    e2e_node_stop(&n);
    const char *again[] = {"--rollback", "on", NULL};
    assert_int_equal(e2e_node_start(&n, again), 0);
    expect_running(&n, "ota_0", "1.0.0", "POWERON");
    char reason[16], part[17];
    assert_int_equal(e2e_last_boot(&n, reason, part), 0);
    assert_string_equal(part, "ota_0");
    update(&n, v3);
    expect_running(&n, "ota_1", "3.0.0", "SW");
    e2e_node_stop(&n);
}

/* confirm-after=2: pending verification at first, valid after ~2 s of
 * health, and it stays after a restart. */
static void test_confirm_after_marks_valid(void **state)
{
    (void)state;
    const char *v1 = e2e_path("conf-1.bin"), *v2 = e2e_path("conf-2.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 0, "confirm-after=2");
    struct e2e_node n;
    const char *on[] = {"--rollback", "on", NULL};
    e2e_node_start_with(&n, "conf", v1, on);
    update(&n, v2);
    uint64_t booted = e2e_now_ms();
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
    if (e2e_now_ms() - booted < 1500)
        assert_string_equal(e2e_jstr(st, "state"), "pending_verify");
    cJSON_Delete(st);
    bool valid = false;
    while (!valid && e2e_now_ms() - booted < 8000) {
        e2e_sleep_ms(100);
        st = e2e_status(&n);
        valid = !strcmp(e2e_jstr(st, "state"), "valid");
        cJSON_Delete(st);
    }
    assert_true(valid);
    uint64_t took = e2e_now_ms() - booted;
    printf("confirm-after=2: valid %llu ms after the boot was seen\n", (unsigned long long)took);
    assert_true(took >= 1500);
    assert_int_equal(e2e_log_count(&n, "healthy for 2s, marked valid"), 1);

    e2e_node_stop(&n);
    const char *again[] = {"--rollback", "on", NULL};
    assert_int_equal(e2e_node_start(&n, again), 0);
    expect_running(&n, "ota_1", "2.0.0", "POWERON");
    e2e_node_stop(&n);
}

int main(void)
{
    e2e_init(1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_smaller_image_after_larger_erases_the_tail, e2e_teardown),
        cmocka_unit_test_teardown(test_curl_d_is_refused_with_guidance, e2e_teardown),
        cmocka_unit_test_teardown(test_reply_lost_in_restart_status_tells_the_truth, e2e_teardown),
        cmocka_unit_test_teardown(test_panicking_image_is_rolled_back, e2e_teardown),
        cmocka_unit_test_teardown(test_unconfirmed_image_is_rolled_back_at_next_restart, e2e_teardown),
        cmocka_unit_test_teardown(test_confirm_after_marks_valid, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
