/* POST /ota with a delta patch (application/x-aloft-delta) against a real
 * aloft-node: the node boots the new image; a patch for another image is
 * refused before the update slot is touched; a corrupted or truncated patch
 * is refused with the running slot, otadata and settings byte-identical and
 * the node still running the old image. */
#include "e2e.h"

#include <stdio.h>
#include <string.h>

static struct e2e_node node;
static char v1[300], v2[300], other[300], patch[300], wrong[300];
static const char *const delta_type[] = {"-H", "Content-Type: application/x-aloft-delta", NULL};

static void make(const char *old, const char *new, const char *out)
{
    const char *argv[] = {"aloft", "delta", "make", old, new, "-o", out, "-q", NULL};
    assert_int_equal(aloft_test_run(NULL, argv), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(v1, sizeof v1, "%s", e2e_path("delta-1.bin"));
    snprintf(v2, sizeof v2, "%s", e2e_path("delta-2.bin"));
    snprintf(other, sizeof other, "%s", e2e_path("delta-other.bin"));
    snprintf(patch, sizeof patch, "%s", e2e_path("1-2.delta"));
    snprintf(wrong, sizeof wrong, "%s", e2e_path("other-2.delta"));
    e2e_image(v1, e2e_chip(), "1.0.0", 300000, NULL);
    e2e_image(v2, e2e_chip(), "2.0.0", 320000, NULL);
    e2e_image(other, e2e_chip(), "1.5.0", 300000, NULL);
    make(v1, v2, patch);
    make(other, v2, wrong);
    e2e_node_init(&node, "delta");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, NULL};
    return e2e_node_start(&node, args);
}

/* POST the patch file; expect the status and error code; nothing changed. */
static void refused(const char *file, int want, const char *code, bool slot_untouched)
{
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    uint32_t off, size;
    e2e_part(&node, "ota_1", &off, &size);
    uint8_t *slot = e2e_flash_read(&node, off, size);
    struct e2e_http r;
    int got = e2e_upload(&node, "/ota", file, &r, delta_type);
    if (got != want || strcmp(e2e_http_error(&r), code))
        fprintf(stderr, "expected %d %s, got %d (curl %d): %s\n", want, code, got, r.rc, r.body);
    assert_int_equal(got, want);
    assert_string_equal(e2e_http_error(&r), code);
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
    if (slot_untouched) {
        uint8_t *now = e2e_flash_read(&node, off, size);
        assert_memory_equal(now, slot, size);
        free(now);
    }
    free(slot);
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(st, "delta"))); /* it says it takes patches */
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(st, "busy")));
    cJSON_Delete(st);
}

static void test_refused_patches_change_nothing(void **state)
{
    (void)state;
    refused(wrong, 422, "wrong_base", true);

    size_t n;
    uint8_t *p = e2e_file_read(patch, &n);
    const char *cut = e2e_path("cut.delta");
    e2e_file_write(cut, p, n - 200);
    refused(cut, 400, "truncated", false);
    p[n / 2] ^= 0x20;
    const char *bad = e2e_path("bad.delta");
    e2e_file_write(bad, p, n);
    struct e2e_http r;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    int got = e2e_upload(&node, "/ota", bad, &r, delta_type);
    assert_int_equal(got / 100, 4); /* which check catches it depends on where the flip lands */
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
    free(p);

    /* an image sent with the patch's type is no patch */
    refused(v2, 400, "bad_magic", true);
}

static void test_delta_push_boots_the_new_image(void **state)
{
    (void)state;
    struct e2e_http r;
    int got = e2e_upload(&node, "/ota", patch, &r, delta_type);
    if (got != 200)
        fprintf(stderr, "delta push: %d (curl %d): %s\n", got, r.rc, r.body ? r.body : "");
    assert_true(got == 200 || (got == 0 && (r.rc == 52 || r.rc == 56))); /* a reply lost in the restart */
    if (got == 200) {
        cJSON *j = cJSON_Parse(r.body);
        assert_string_equal(e2e_jstr(j, "version"), "2.0.0");
        assert_int_equal((int)e2e_jnum(j, "image_bytes"), 320000);
        cJSON_Delete(j);
    }
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
    cJSON_Delete(st);
    /* byte for byte the new image */
    size_t n;
    uint8_t *want = e2e_file_read(v2, &n);
    uint32_t off, size;
    e2e_part(&node, "ota_1", &off, &size);
    uint8_t *got_img = e2e_flash_read(&node, off, (uint32_t)n);
    assert_memory_equal(got_img, want, n);
    free(want);
    free(got_img);
    /* and the patch no longer applies: the device runs its result */
    got = e2e_upload(&node, "/ota", patch, &r, delta_type);
    assert_int_equal(got, 422);
    assert_string_equal(e2e_http_error(&r), "wrong_base");
    e2e_http_free(&r);
}

/* aloft deploy --delta-from: a device running the old image gets a patch,
 * verified like any deploy; one running another image gets the whole image. */
static void test_deploy_sends_a_patch_when_it_helps(void **state)
{
    (void)state;
    struct e2e_node on_v1, on_other;
    e2e_node_init(&on_v1, "deploy-v1");
    e2e_node_init(&on_other, "deploy-other");
    snprintf(on_other.psk, sizeof on_other.psk, "%s", on_v1.psk); /* one PSK for the fleet */
    const char *a1[] = {"--create", "--flash-size", "4M", "--firmware", v1, NULL};
    const char *a2[] = {"--create", "--flash-size", "4M", "--firmware", other, NULL};
    assert_int_equal(e2e_node_start(&on_v1, a1), 0);
    assert_int_equal(e2e_node_start(&on_other, a2), 0);
    char *out = NULL;
    const char *argv[] = {"aloft", "deploy", v2, on_v1.listen, on_other.listen, "--delta-from", v1,
                          "--psk", on_v1.psk, "--json", "--timeout", "20", NULL};
    int rc = aloft_test_run(&out, argv);
    if (rc != 0)
        fprintf(stderr, "aloft deploy: %d\n%s\n", rc, out ? out : "");
    assert_int_equal(rc, 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    const cJSON *devs = cJSON_GetObjectItem(j, "devices");
    assert_int_equal(cJSON_GetArraySize(devs), 2);
    for (int i = 0; i < 2; i++) {
        const cJSON *d = cJSON_GetArrayItem(devs, i);
        assert_string_equal(e2e_jstr(d, "outcome"), "updated");
        bool patched = !strcmp(e2e_jstr(d, "address"), on_v1.listen);
        double bytes = e2e_jnum(d, "upload_bytes");
        if (patched) {
            assert_string_equal(e2e_jstr(d, "delta_from"), v1);
            assert_true(bytes > 0 && bytes < 320000 / 2);
        } else {
            assert_null(cJSON_GetObjectItem(d, "delta_from"));
            assert_true(bytes == 320000);
        }
    }
    cJSON_Delete(j);
    free(out);
    assert_int_equal(e2e_node_wait_log(&on_v1, "bytes of patch verified", 1, 1000), 0);
}

int main(void)
{
    e2e_init(41);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_patches_change_nothing),
        cmocka_unit_test(test_delta_push_boots_the_new_image),
        cmocka_unit_test(test_deploy_sends_a_patch_when_it_helps),
    };
    return cmocka_run_group_tests(tests, setup, e2e_teardown);
}
