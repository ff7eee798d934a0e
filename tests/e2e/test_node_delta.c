/* POST /ota with a delta patch (application/x-aloft-delta) against a real
 * aloft-node: the node boots the new image; a patch for another image is
 * refused before the update slot is touched; a corrupted or truncated patch
 * is refused with the running slot, otadata and settings byte-identical and
 * the node still running the old image; an upload whose link dropped
 * resumes, and one cut by a power loss resumes after the restart (the
 * checkpoint is in the settings); aloft deploy --delta-from sends a patch
 * where it helps. */
#include "e2e.h"

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aloft/delta.h"

static struct e2e_node node;
static char v1[300], v2[300], v3[300], other[300], patch[300], wrong[300], big[300];
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
    snprintf(v3, sizeof v3, "%s", e2e_path("delta-3.bin"));
    snprintf(big, sizeof big, "%s", e2e_path("1-3.delta"));
    e2e_image(v1, e2e_chip(), "1.0.0", 300000, NULL);
    e2e_image(v2, e2e_chip(), "2.0.0", 320000, NULL);
    e2e_image(other, e2e_chip(), "1.5.0", 300000, NULL);
    make(v1, v2, patch);
    make(other, v2, wrong);
    e2e_image(v3, e2e_chip(), "3.0.0", 400000, NULL); /* 100 KB more code: a patch of about 100 KB */
    make(v1, v3, big);
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

/* A patch upload whose link drops resumes: GET /ota/status says where, the
 * client sends the header and the rest with "; resume=N", and the device
 * boots the new image; a wrong offset or another patch is refused. */
/* The rest of a patch, sent with its resume point, installs: 200 (or the
 * reply lost in the restart), then n runs version with no resume point left. */
static void resumed_installs(struct e2e_node *n, const char *tail, const char *const headers[], const char *version)
{
    struct e2e_http r;
    int got = e2e_upload(n, "/ota", tail, &r, headers);
    if (got != 200)
        fprintf(stderr, "resume: %d (curl %d): %s\n", got, r.rc, r.body ? r.body : "");
    assert_true(got == 200 || (got == 0 && (r.rc == 52 || r.rc == 56)));
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
    cJSON *st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "version"), version);
    assert_null(cJSON_GetObjectItem(st, "delta_resume"));
    cJSON_Delete(st);
}

static void test_dropped_patch_upload_resumes(void **state)
{
    (void)state;
    struct e2e_node n;
    e2e_node_init(&n, "delta-resume");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, NULL};
    assert_int_equal(e2e_node_start(&n, args), 0);
    const char *small = e2e_path("1-2-4k.delta");
    const char *mk[] = {"aloft", "delta", "make", v1, v2, "-o", small, "-q", "--block-size", "4K", NULL};
    assert_int_equal(aloft_test_run(NULL, mk), 0);
    size_t len;
    uint8_t *p = e2e_file_read(small, &len);

    /* the headers and 3/4 of the body, then the link is gone */
    int fd = e2e_connect(&n);
    char head[400];
    int hl = snprintf(head, sizeof head,
                      "POST /ota HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-aloft-delta\r\n"
                      "%s\r\nContent-Length: %zu\r\n\r\n", n.listen, n.auth, len);
    assert_int_equal(send(fd, head, (size_t)hl, MSG_NOSIGNAL), hl);
    size_t part = len * 3 / 4;
    for (size_t off = 0; off < part;) {
        ssize_t k = send(fd, p + off, part - off, MSG_NOSIGNAL);
        assert_true(k > 0);
        off += (size_t)k;
    }
    e2e_sleep_ms(300);
    close(fd);
    assert_int_equal(e2e_node_wait_log(&n, "it can resume at byte", 1, 5000), 0);
    cJSON *st = e2e_status(&n);
    double at = e2e_jnum(st, "delta_resume");
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    cJSON_Delete(st);
    assert_true(at > ALOFT_DELTA_HEADER_BYTES && at <= (double)part);

    /* the header, then the patch from there */
    size_t rest = len - (size_t)at;
    uint8_t *body = malloc(ALOFT_DELTA_HEADER_BYTES + rest);
    memcpy(body, p, ALOFT_DELTA_HEADER_BYTES);
    memcpy(body + ALOFT_DELTA_HEADER_BYTES, p + (size_t)at, rest);
    const char *tail = e2e_path("tail.delta");
    e2e_file_write(tail, body, ALOFT_DELTA_HEADER_BYTES + rest);
    char type[120];
    struct e2e_http r;

    /* another offset, or another patch's header: refused, nothing lost */
    snprintf(type, sizeof type, "Content-Type: application/x-aloft-delta; resume=%u", (unsigned)at + 1);
    const char *off_by_one[] = {"-H", type, NULL};
    assert_int_equal(e2e_upload(&n, "/ota", tail, &r, off_by_one), 409);
    assert_string_equal(e2e_http_error(&r), "cannot_resume");
    e2e_http_free(&r);
    snprintf(type, sizeof type, "Content-Type: application/x-aloft-delta; resume=%u", (unsigned)at);
    const char *resume[] = {"-H", type, NULL};
    size_t wl;
    uint8_t *w = e2e_file_read(wrong, &wl);
    memcpy(body, w, ALOFT_DELTA_HEADER_BYTES);
    free(w);
    const char *other_tail = e2e_path("other-tail.delta");
    e2e_file_write(other_tail, body, ALOFT_DELTA_HEADER_BYTES + rest);
    assert_int_equal(e2e_upload(&n, "/ota", other_tail, &r, resume), 409);
    e2e_http_free(&r);

    resumed_installs(&n, tail, resume, "2.0.0");
    free(body);
    free(p);
}

/* Power lost (kill -9, ESP32 flash timing) at moments spread over a delta
 * push, from the request to the boot after it: started again, the node boots
 * the old image or the new one, never neither (the last kill, after the
 * whole push, finds the new one). */
static void test_kill9_during_a_delta_push(void **state)
{
    (void)state;
    const char *boot[] = {"--flash-timing", "esp32", NULL};
    struct e2e_node n;
    e2e_node_init(&n, "delta-kill9");
    char url[100], data[320];
    snprintf(data, sizeof data, "@%s", patch);
    uint64_t span = 0;
    unsigned news = 0, olds = 0;
    for (int i = 0; i <= 4; i++) {
        remove(n.flash);
        const char *create[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--flash-timing", "esp32", NULL};
        assert_int_equal(e2e_node_start(&n, create), 0);
        snprintf(url, sizeof url, "%s/ota", n.url);
        const char *post[] = {"-X", "POST", "--data-binary", data, "-H", "Content-Type: application/x-aloft-delta",
                              "-H", n.auth, url, NULL};
        struct e2e_curl_job job;
        uint64_t t0 = e2e_now_ms();
        e2e_curl_start(&job, post);
        if (i == 0) { /* how long one takes, in full */
            assert_int_equal(e2e_curl_wait(&job, NULL), 200);
            assert_int_equal(e2e_node_wait_boot(&n), 0);
            span = e2e_now_ms() - t0;
            e2e_node_stop(&n);
            continue;
        }
        unsigned at = (unsigned)(span * (unsigned)i / 4);
        e2e_sleep_ms(at);
        e2e_node_kill9(&n);
        e2e_curl_wait(&job, NULL);
        assert_int_equal(e2e_node_start(&n, boot), 0);
        cJSON *st = e2e_status(&n);
        const char *v = e2e_jstr(st, "version");
        assert_true(!strcmp(v, "1.0.0") || !strcmp(v, "2.0.0"));
        news += !strcmp(v, "2.0.0");
        olds += !strcmp(v, "1.0.0");
        printf("kill -9 at %4u ms of %llu: boots %s\n", at, (unsigned long long)span, v);
        cJSON_Delete(st);
        e2e_node_stop(&n);
    }
    assert_true(olds > 0);
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

/* POST the patch p (len bytes) to n until the node says it kept a checkpoint
 * in its settings, then cut the power (kill -9) and start it again: where
 * GET /ota/status says it resumes. */
static uint32_t cut_after_a_checkpoint(struct e2e_node *n, const uint8_t *p, size_t len)
{
    unsigned kept = e2e_log_count(n, "patch checkpoint kept");
    int fd = e2e_connect(n);
    char head[400];
    int hl = snprintf(head, sizeof head,
                      "POST /ota HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-aloft-delta\r\n"
                      "%s\r\nContent-Length: %zu\r\n\r\n", n->listen, n->auth, len);
    assert_int_equal(send(fd, head, (size_t)hl, MSG_NOSIGNAL), hl);
    size_t off = 0;
    while (e2e_log_count(n, "patch checkpoint kept") == kept) {
        assert_true(off + 4096 < len); /* a checkpoint is kept before the patch ends */
        assert_int_equal(send(fd, p + off, 4096, MSG_NOSIGNAL), 4096);
        off += 4096;
        for (int i = 0; i < 15 && e2e_log_count(n, "patch checkpoint kept") == kept; i++)
            e2e_sleep_ms(20); /* the node takes what came */
    }
    e2e_node_kill9(n);
    close(fd);
    const char *again[] = {NULL};
    assert_int_equal(e2e_node_start(n, again), 0);
    cJSON *st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    assert_non_null(cJSON_GetObjectItem(st, "delta_resume"));
    uint32_t at = (uint32_t)e2e_jnum(st, "delta_resume");
    cJSON_Delete(st);
    assert_true(at >= 32768 && at <= off);
    return at;
}

/* The header, then the patch from at: a resumed upload's body, in a file. */
static const char *tail_from(const uint8_t *p, size_t len, uint32_t at, bool corrupt)
{
    uint8_t *body = malloc(ALOFT_DELTA_HEADER_BYTES + len - at);
    memcpy(body, p, ALOFT_DELTA_HEADER_BYTES);
    memcpy(body + ALOFT_DELTA_HEADER_BYTES, p + at, len - at);
    if (corrupt)
        body[ALOFT_DELTA_HEADER_BYTES + (len - at) / 2] ^= 0x20;
    const char *f = e2e_path(corrupt ? "bad-tail.delta" : "good-tail.delta");
    e2e_file_write(f, body, ALOFT_DELTA_HEADER_BYTES + len - at);
    free(body);
    return f;
}

/* A patch upload cut by a power loss resumes after the restart from the
 * checkpoint the node kept in its settings, and installs. A resumed patch
 * that fails its checks is refused with the running slot and otadata
 * byte-identical, and its resume point is gone (the next try starts over). */
static void test_patch_upload_resumes_after_a_restart(void **state)
{
    (void)state;
    struct e2e_node n;
    e2e_node_init(&n, "delta-restart");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, NULL};
    assert_int_equal(e2e_node_start(&n, args), 0);
    size_t len;
    uint8_t *p = e2e_file_read(big, &len);
    char type[120];
    const char *resume[] = {"-H", type, NULL};
    struct e2e_http r;

    /* cut, restarted, then the rest of the patch with a flipped byte */
    uint32_t at = cut_after_a_checkpoint(&n, p, len);
    snprintf(type, sizeof type, "Content-Type: application/x-aloft-delta; resume=%u", (unsigned)at);
    struct e2e_snap s;
    e2e_snap_take(&s, &n);
    int got = e2e_upload(&n, "/ota", tail_from(p, len, at, true), &r, resume);
    assert_int_equal(got / 100, 4);
    e2e_http_free(&r);
    e2e_snap_app_unchanged(&s, &n); /* the settings lose the resume point, nothing else */
    e2e_snap_free(&s);
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    assert_null(cJSON_GetObjectItem(st, "delta_resume"));
    cJSON_Delete(st);
    assert_int_equal(e2e_upload(&n, "/ota", tail_from(p, len, at, false), &r, resume), 409);
    assert_string_equal(e2e_http_error(&r), "cannot_resume");
    e2e_http_free(&r);

    /* cut and restarted again: the rest of the patch installs the new image */
    at = cut_after_a_checkpoint(&n, p, len);
    snprintf(type, sizeof type, "Content-Type: application/x-aloft-delta; resume=%u", (unsigned)at);
    resumed_installs(&n, tail_from(p, len, at, false), resume, "3.0.0");
    size_t n3;
    uint8_t *want = e2e_file_read(v3, &n3);
    uint32_t off, size;
    e2e_part(&n, e2e_jstr(st = e2e_status(&n), "running_partition"), &off, &size);
    cJSON_Delete(st);
    uint8_t *img = e2e_flash_read(&n, off, (uint32_t)n3);
    assert_memory_equal(img, want, n3);
    free(img);
    free(want);
    free(p);
    e2e_node_stop(&n);
}

int main(void)
{
    e2e_init(41);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_patches_change_nothing),
        cmocka_unit_test(test_delta_push_boots_the_new_image),
        cmocka_unit_test(test_dropped_patch_upload_resumes),
        cmocka_unit_test(test_patch_upload_resumes_after_a_restart),
        cmocka_unit_test(test_kill9_during_a_delta_push),
        cmocka_unit_test(test_deploy_sends_a_patch_when_it_helps),
    };
    return cmocka_run_group_tests(tests, setup, e2e_teardown);
}
