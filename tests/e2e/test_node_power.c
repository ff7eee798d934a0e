/* Power loss on a real node: kill -9 at random moments of an update (with
 * the ESP32 flash timing, so the moments spread over the slot erase, the
 * programming, the otadata switch and the boot that follows), and
 * --power-cut-after at each of the last flash operations of an update (the
 * end of the programming and the otadata switch). After each the node,
 * started again without --create, boots a valid image, old or new, and
 * serves /ota/status.
 *
 * A small table (two 128 KB slots in 1 MB) keeps every run short. */
#include "e2e.h"

#include <stdio.h>
#include <string.h>

#define RUNS 20

static const char table[] = "nvs,      data, nvs,   0x9000,  0x6000,\n"
                            "otadata,  data, ota,   0xf000,  0x2000,\n"
                            "phy_init, data, phy,   0x11000, 0x1000,\n"
                            "ota_0,    app,  ota_0, 0x20000, 0x20000,\n"
                            "ota_1,    app,  ota_1, 0x40000, 0x20000,\n";
static char csv[300], v0[300];

static int setup(void **state)
{
    (void)state;
    snprintf(csv, sizeof csv, "%s", e2e_path("small.csv"));
    e2e_file_write(csv, table, strlen(table));
    snprintf(v0, sizeof v0, "%s", e2e_path("power-0.bin"));
    e2e_image(v0, "esp32s3", "1.0.0", 0, NULL);
    return 0;
}

struct running {
    char part[17], version[32];
};

static void running(struct e2e_node *n, struct running *r)
{
    cJSON *st = e2e_status(n);
    snprintf(r->part, sizeof r->part, "%s", e2e_jstr(st, "running_partition"));
    snprintf(r->version, sizeof r->version, "%s", e2e_jstr(st, "version"));
    cJSON_Delete(st);
    char reason[16], part[17];
    assert_int_equal(e2e_last_boot(n, reason, part), 0);
    assert_string_equal(part, r->part);
}

/* The running image once it has confirmed itself (a healthy image does so
 * right after it starts serving; with the flash timing that takes ~50 ms).
 * Until then a power loss rightly falls back to the image before it. While
 * the VALID entry is being rewritten (its copy erased, then programmed) the
 * state reads "undefined": only "valid" is done, or a state that is neither
 * pending nor new for a whole second (an image booted as a fallback). */
static void confirmed(struct e2e_node *n, struct running *r)
{
    for (uint64_t t0 = e2e_now_ms();; e2e_sleep_ms(10)) {
        cJSON *st = e2e_status(n);
        const char *state = e2e_jstr(st, "state");
        bool done = !strcmp(state, "valid") ||
                    (strcmp(state, "pending_verify") && strcmp(state, "new") && e2e_now_ms() - t0 > 1000);
        cJSON_Delete(st);
        if (done)
            break;
        assert_true(e2e_now_ms() - t0 < 5000);
    }
    running(n, r);
}

/* After a power loss: the old image where it was, or the new one in the
 * other slot; never anything else. Returns whether it is the new one. */
static bool old_or_new(const struct running *before, const struct running *after, const char *new_version)
{
    bool old = !strcmp(after->part, before->part) && !strcmp(after->version, before->version);
    bool upd = strcmp(after->part, before->part) && !strcmp(after->version, new_version);
    if (!old && !upd)
        fprintf(stderr, "before %s %s, uploaded %s, after %s %s\n", before->part, before->version, new_version,
                after->part, after->version);
    assert_true(old || upd);
    return upd;
}

static void test_kill9_at_random_points_of_an_update(void **state)
{
    (void)state;
    struct e2e_node n;
    e2e_node_init(&n, "kill9");
    const char *create[] = {"--create", "--partitions", csv, "--flash-size", "1M", "--firmware", v0,
                            "--flash-timing", "esp32", "--rollback", "on", NULL};
    const char *boot[] = {"--flash-timing", "esp32", "--rollback", "on", NULL};
    assert_int_equal(e2e_node_start(&n, create), 0);

    char url[100];
    snprintf(url, sizeof url, "%s/ota", n.url);
    uint64_t span = 0; /* how long one update takes, from a first one in full */
    unsigned updated = 0, kept = 0;
    for (int i = 0; i <= RUNS; i++) {
        char file[64], version[16], data[320];
        snprintf(file, sizeof file, "power-k%d.bin", i);
        snprintf(version, sizeof version, "2.%d.0", i);
        e2e_image(e2e_path(file), "esp32s3", version, 0, NULL);
        snprintf(data, sizeof data, "@%s", e2e_path(file));
        struct running before, after;
        confirmed(&n, &before);
        const char *post[] = {"-X", "POST", "--data-binary", data, "-H", "Content-Type: application/octet-stream",
                              "-H", n.auth, url, NULL};
        struct e2e_curl_job job;
        uint64_t t0 = e2e_now_ms();
        e2e_curl_start(&job, post);
        if (i == 0) {
            assert_int_equal(e2e_curl_wait(&job, NULL), 200);
            span = e2e_now_ms() - t0;
            assert_int_equal(e2e_node_wait_boot(&n), 0);
            running(&n, &after);
            assert_true(old_or_new(&before, &after, version));
            printf("one update takes %llu ms with the esp32 flash timing\n", (unsigned long long)span);
            continue;
        }
        /* anywhere from the request to the boot after it */
        unsigned at = e2e_rand() % (unsigned)(span + 300);
        e2e_sleep_ms(at);
        e2e_node_kill9(&n);
        e2e_curl_wait(&job, NULL);
        assert_int_equal(e2e_node_start(&n, boot), 0);
        running(&n, &after);
        char reason[16], part[17];
        assert_int_equal(e2e_last_boot(&n, reason, part), 0);
        assert_string_equal(reason, "POWERON");
        bool upd = old_or_new(&before, &after, version);
        updated += upd;
        kept += !upd;
        printf("kill -9 at %4u ms: boots %s %s\n", at, after.part, after.version);
    }
    printf("%d kills: %u booted the new image, %u the old one\n", RUNS, updated, kept);
    e2e_node_stop(&n);
}

/* One run on a copy of the pristine flash with power cut at flash operation
 * cut of the update; returns whether the cut happened. Leaves the node
 * running after the reboot that follows. */
static bool cut_run(struct e2e_node *n, const uint8_t *pristine, size_t len, uint64_t cut, const char *fw)
{
    e2e_file_write(n->flash, pristine, len);
    char at[24];
    snprintf(at, sizeof at, "%llu", (unsigned long long)cut);
    const char *args[] = {"--power-cut-after", at, "--restart-delay", "0", NULL};
    unsigned lost = e2e_log_count(n, "power lost at flash operation");
    assert_int_equal(e2e_node_start(n, args), 0);
    struct e2e_http r;
    e2e_upload(n, "/ota", fw, &r, NULL);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
    return e2e_log_count(n, "power lost at flash operation") > lost;
}

/* A flash after two updates (ota_0 runs 1.2.0 again, both otadata copies
 * hold an entry, so the next switch has one to erase): what every run
 * starts from. */
static uint8_t *pristine_flash(struct e2e_node *n, size_t *len, struct running *before)
{
    const char *create[] = {"--create", "--partitions", csv, "--flash-size", "1M", "--firmware", v0, NULL};
    assert_int_equal(e2e_node_start(n, create), 0);
    const char *v1 = e2e_path("power-c1.bin"), *v2 = e2e_path("power-c2.bin");
    e2e_image(v1, "esp32s3", "1.1.0", 0, NULL);
    e2e_image(v2, "esp32s3", "1.2.0", 0, NULL);
    struct e2e_http r;
    assert_int_equal(e2e_upload(n, "/ota", v1, &r, NULL), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
    assert_int_equal(e2e_wait_state(n, "valid", 5000), 0);
    assert_int_equal(e2e_upload(n, "/ota", v2, &r, NULL), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
    assert_int_equal(e2e_wait_state(n, "valid", 5000), 0);
    running(n, before);
    assert_string_equal(before->part, "ota_0");
    assert_string_equal(before->version, "1.2.0");
    e2e_node_stop(n);
    return e2e_file_read(n->flash, len);
}

/* A cut at operation k of an update from the pristine flash: a valid image
 * boots (old when the cut came before otadata was written, else new),
 * counts a half-switched otadata, and the device then takes the update. */
static bool cut_once(struct e2e_node *n, const uint8_t *pristine, size_t len, uint64_t k, const char *fw,
                     const struct running *before, unsigned *torn)
{
    struct running after;
    bool hit = cut_run(n, pristine, len, k, fw);
    running(n, &after);
    bool upd = old_or_new(before, &after, "3.0.0");
    assert_true(hit ? !upd : upd);
    uint8_t *od = e2e_flash_read(n, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    bool half = hit && memcmp(od, pristine + E2E_OTADATA_OFF, E2E_OTADATA_SIZE) != 0;
    *torn += half;
    free(od);
    printf("power cut at operation %3llu: %s, boots %s %s\n", (unsigned long long)k,
           hit ? half ? "lost in the otadata switch" : "lost" : "not reached", after.part, after.version);
    /* (with --restart-delay 0 the reply may be lost in the restart: the
     * status says what happened) */
    if (hit) {
        struct e2e_http r;
        int code = e2e_upload(n, "/ota", fw, &r, NULL);
        assert_true(code == 200 || code == 0);
        e2e_http_free(&r);
        assert_int_equal(e2e_node_wait_boot(n), 0);
        running(n, &after);
        assert_string_equal(after.version, "3.0.0");
    }
    e2e_node_stop(n);
    return hit;
}

static void test_power_cut_in_the_otadata_switch(void **state)
{
    (void)state;
    struct e2e_node n;
    e2e_node_init(&n, "cut");
    size_t len;
    struct running before;
    uint8_t *pristine = pristine_flash(&n, &len, &before);
    const char *fw = e2e_path("power-c.bin");
    e2e_image(fw, "esp32s3", "3.0.0", 0, NULL);

    /* The update's last flash operation: the largest cut that still hits it
     * (the node logs the operation it lost power at, not a count). */
    uint64_t lo = 1, hi = 1u << 20;
    assert_true(cut_run(&n, pristine, len, lo, fw));
    e2e_node_stop(&n);
    assert_false(cut_run(&n, pristine, len, hi, fw));
    e2e_node_stop(&n);
    while (hi - lo > 1) {
        uint64_t mid = (lo + hi) / 2;
        if (cut_run(&n, pristine, len, mid, fw))
            lo = mid;
        else
            hi = mid;
        e2e_node_stop(&n);
    }
    uint64_t last = lo;
    printf("an update is %llu flash operations (slot erase, programs, otadata switch)\n",
           (unsigned long long)last);
    assert_true(last > 32 + 2); /* 32 sectors of slot erase, then at least one program and the otadata */

    /* The last RUNS operations and one past them. The number of programs
     * follows how the body arrived in pieces, so a run can be a few
     * operations longer or shorter than the one measured: if no run cut
     * between the otadata erase and its program, try the last few again. */
    unsigned cut = 0, otadata_torn = 0, runs = 0;
    for (uint64_t k = last + 1 - RUNS; k <= last + 1; k++, runs++)
        cut += cut_once(&n, pristine, len, k, fw, &before, &otadata_torn);
    for (unsigned extra = 0; !otadata_torn && extra < 12; extra++, runs++)
        cut_once(&n, pristine, len, last - 1 + extra % 4, fw, &before, &otadata_torn);
    printf("%u runs: %u of the first %d cut, %u with otadata half switched (copy erased, entry not written)\n", runs,
           cut, RUNS + 1, otadata_torn);
    assert_true(cut >= RUNS - 2);
    assert_true(otadata_torn >= 1);
    free(pristine);
}

/* The switch ends in the first boot of the new image: the bootloader turns
 * NEW into PENDING_VERIFY and the app marks itself VALID, each an otadata
 * write. Cut power at each of those flash operations. */
static void test_power_cut_in_the_first_boot_after_the_switch(void **state)
{
    (void)state;
    struct e2e_node n;
    e2e_node_init(&n, "cutboot");
    size_t len;
    struct running before, after;
    uint8_t *pristine = pristine_flash(&n, &len, &before);
    const char *fw = e2e_path("power-b.bin");
    e2e_image(fw, "esp32s3", "4.0.0", 0, NULL);

    /* the flash as the update leaves it: copied while the node waits to restart */
    e2e_file_write(n.flash, pristine, len);
    const char *slow[] = {"--restart-delay", "5000", NULL};
    assert_int_equal(e2e_node_start(&n, slow), 0);
    struct e2e_http r;
    assert_int_equal(e2e_upload(&n, "/ota", fw, &r, NULL), 200);
    e2e_http_free(&r);
    uint8_t *switched = e2e_flash_read(&n, 0, (uint32_t)len);
    e2e_node_kill9(&n);

    unsigned cuts = 0;
    for (unsigned k = 1; k <= 6; k++) {
        e2e_file_write(n.flash, switched, len);
        char at[16];
        snprintf(at, sizeof at, "%u", k);
        const char *args[] = {"--power-cut-after", at, "--rollback", "on", NULL};
        unsigned lost = e2e_log_count(&n, "power lost at flash operation");
        assert_int_equal(e2e_node_start(&n, args), 0);
        /* The app marks itself valid after it starts serving, so a cut there
         * comes after the first `http: serving` and brings another boot:
         * wait until an image runs confirmed. */
        for (uint64_t t0 = e2e_now_ms();; e2e_sleep_ms(10)) {
            cJSON *st = e2e_try_json(&n, "/ota/status");
            bool valid = st && !strcmp(e2e_jstr(st, "state"), "valid");
            cJSON_Delete(st);
            if (valid)
                break;
            assert_true(e2e_now_ms() - t0 < E2E_BOOT_TIMEOUT_MS);
        }
        n.serving = e2e_log_count(&n, "http: serving on");
        bool hit = e2e_log_count(&n, "power lost at flash operation") > lost;
        cuts += hit;
        running(&n, &after);
        bool upd = old_or_new(&before, &after, "4.0.0");
        cJSON *st = e2e_status(&n);
        printf("power cut at boot operation %u: %s, boots %s %s (%s)\n", k, hit ? "lost" : "not reached", after.part,
               after.version, e2e_jstr(st, "state"));
        if (upd)
            assert_string_equal(e2e_jstr(st, "state"), "valid");
        cJSON_Delete(st);
        e2e_node_stop(&n);
    }
    assert_true(cuts >= 2); /* at least the PENDING_VERIFY and the VALID writes */
    free(switched);
    free(pristine);
}

int main(void)
{
    e2e_init(5);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_kill9_at_random_points_of_an_update, e2e_teardown),
        cmocka_unit_test_teardown(test_power_cut_in_the_otadata_switch, e2e_teardown),
        cmocka_unit_test_teardown(test_power_cut_in_the_first_boot_after_the_switch, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
