/* Power loss, exhaustively: every flash operation of an update and of each
 * boot-state change is cut (and, separately, torn) in turn; after each cut
 * the device must boot a valid app, the old or the new one, and a complete
 * update afterwards must succeed. */
#include "testdev.h"

#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/otadata.h"

static uint8_t *img_a, *img_b, *img_c;
static size_t len_a, len_b, len_c;
static unsigned long cut_points;

struct scenario {
    const char *name;
    const char *csv;
    uint32_t flash_size;
    int steps;    /* preparation: 0 booted A; 1 B staged; 2 B booted, pending */
    int (*action)(struct aloft_test_dev *d);
    const char *after; /* version running once the action completed (and, unless
                        * it is a boot, after the restart that follows) */
};

static int do_update(struct aloft_test_dev *d) { return aloft_test_update(&d->boot, img_b, len_b, 4096); }
static int do_boot(struct aloft_test_dev *d) { return aloft_boot_select(&d->boot); }
static int do_mark_valid(struct aloft_test_dev *d) { return aloft_boot_mark_valid(&d->boot); }
static int do_mark_invalid(struct aloft_test_dev *d) { return aloft_boot_mark_invalid(&d->boot); }

/* history 1: A was first updated to itself in the other slot and confirmed,
 * so both otadata copies hold entries when the scenario starts. */
static void prepare(struct aloft_test_dev *d, const struct scenario *s, int history)
{
    aloft_test_dev_init(d, s->flash_size, s->csv, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(d), 0);
    if (history) {
        assert_int_equal(aloft_test_update(&d->boot, img_a, len_a, 4096), 0);
        assert_int_equal(aloft_test_dev_boot(d), 0);
        assert_int_equal(aloft_boot_mark_valid(&d->boot), 0);
    }
    if (s->steps >= 1)
        assert_int_equal(aloft_test_update(&d->boot, img_b, len_b, 4096), 0);
    if (s->steps >= 2) {
        assert_int_equal(aloft_test_dev_boot(d), 0);
        assert_int_equal(aloft_boot_state(&d->boot), ALOFT_OTA_PENDING_VERIFY);
    }
    d->pf.ops = 0;
}

/* After a cut: boots old or new; then a full update to C goes through. */
static void check_recovers(struct aloft_test_dev *d, const struct scenario *s, uint64_t k, bool tear)
{
    int rc = aloft_test_dev_boot(d);
    if (rc != 0)
        fail_msg("%s: cut %s op %llu: boot failed: %s", s->name, tear ? "tearing" : "before",
                 (unsigned long long)k, aloft_strerror(rc));
    const char *v = aloft_test_running_version(d);
    if (strcmp(v, "1.0.0") && strcmp(v, "2.0.0"))
        fail_msg("%s: cut at op %llu: running '%s'", s->name, (unsigned long long)k, v);
    if (aloft_boot_state(&d->boot) == ALOFT_OTA_PENDING_VERIFY)
        assert_int_equal(aloft_boot_mark_valid(&d->boot), 0);
    rc = aloft_test_update(&d->boot, img_c, len_c, 4096);
    if (rc != 0)
        fail_msg("%s: cut at op %llu: next update failed: %s", s->name, (unsigned long long)k, aloft_strerror(rc));
    assert_int_equal(aloft_test_dev_boot(d), 0);
    assert_string_equal(aloft_test_running_version(d), "3.0.0");
}

static void cut_everywhere(const struct scenario *s)
{
    for (int history = 0; history < 2; history++) {
        struct aloft_test_dev d;
        prepare(&d, s, history);
        assert_int_equal(s->action(&d), 0);
        uint64_t n = d.pf.ops;
        assert_true(n > 0);
        if (s->action != do_boot) /* a boot is its own restart */
            assert_int_equal(aloft_test_dev_boot(&d), 0);
        assert_string_equal(aloft_test_running_version(&d), s->after);
        aloft_posix_flash_close(&d.pf);

        for (int tear = 0; tear < 2; tear++) {
            for (uint64_t k = 1; k <= n; k++) {
                prepare(&d, s, history);
                aloft_posix_flash_cut(&d.pf, k, tear);
                assert_int_equal(s->action(&d), ALOFT_E_POWER);
                check_recovers(&d, s, k, tear);
                aloft_posix_flash_close(&d.pf);
                cut_points++;
            }
        }
        printf("%-28s %s %4llu operations, %4llu cut points (each before and torn)\n", s->name,
               history ? "(2nd update)" : "(1st update)", (unsigned long long)n, (unsigned long long)(2 * n));
    }
}

static void test_update(void **state)
{
    (void)state;
    cut_everywhere(&(struct scenario){"update", ALOFT_TEST_CSV_SMALL, 0x100000, 0, do_update, "2.0.0"});
}

static void test_new_to_pending_verify(void **state)
{
    (void)state;
    cut_everywhere(&(struct scenario){"boot: new->pending_verify", ALOFT_TEST_CSV_SMALL, 0x100000, 1, do_boot, "2.0.0"});
}

static void test_pending_to_valid(void **state)
{
    (void)state;
    cut_everywhere(&(struct scenario){"app: pending->valid", ALOFT_TEST_CSV_SMALL, 0x100000, 2, do_mark_valid, "2.0.0"});
}

static void test_pending_to_invalid(void **state)
{
    (void)state;
    cut_everywhere(&(struct scenario){"app: pending->invalid", ALOFT_TEST_CSV_SMALL, 0x100000, 2, do_mark_invalid, "1.0.0"});
}

static void test_pending_to_aborted(void **state)
{
    (void)state;
    cut_everywhere(&(struct scenario){"boot: pending->aborted", ALOFT_TEST_CSV_SMALL, 0x100000, 2, do_boot, "1.0.0"});
}

/* The same for a real ~1 MB ESP-IDF image in the real 4 MB layout. */
static void test_update_real_image(void **state)
{
    (void)state;
    size_t len;
    char *csv = (char *)aloft_test_fixture("esp-idf/partitions-4mb.csv", &len);
    uint8_t *sa = img_a, *sb = img_b;
    size_t la = len_a, lb = len_b;
    img_a = aloft_test_fixture("esp-idf/esp32s3-csi-node-4mb-v0.4.3.bin", &len_a);
    img_b = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.6.4.bin", &len_b);
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x400000, csv, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    d.pf.ops = 0;
    assert_int_equal(do_update(&d), 0);
    uint64_t n = d.pf.ops;
    aloft_posix_flash_close(&d.pf);
    for (int tear = 0; tear < 2; tear++) {
        for (uint64_t k = 1; k <= n; k++) {
            aloft_test_dev_init(&d, 0x400000, csv, img_a, len_a, true);
            assert_int_equal(aloft_test_dev_boot(&d), 0);
            d.pf.ops = 0;
            aloft_posix_flash_cut(&d.pf, k, tear);
            assert_int_equal(do_update(&d), ALOFT_E_POWER);
            if (aloft_test_dev_boot(&d) != 0)
                fail_msg("real image: cut at op %llu: no boot", (unsigned long long)k);
            const char *v = aloft_test_running_version(&d);
            if (strcmp(v, "v0.4.3.1-esp32-3-g66e2fa083-dir") && strcmp(v, "0.6.4"))
                fail_msg("real image: cut at op %llu: running '%s'", (unsigned long long)k, v);
            if (aloft_boot_state(&d.boot) == ALOFT_OTA_PENDING_VERIFY)
                assert_int_equal(aloft_boot_mark_valid(&d.boot), 0);
            assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);
            assert_int_equal(aloft_test_dev_boot(&d), 0);
            assert_string_equal(aloft_test_running_version(&d), "0.6.4");
            aloft_posix_flash_close(&d.pf);
            cut_points++;
        }
    }
    printf("%-28s %s %4llu operations, %4llu cut points (each before and torn)\n", "update (real 1 MB image)", "",
           (unsigned long long)n, (unsigned long long)(2 * n));
    free(img_a);
    free(img_b);
    free(csv);
    img_a = sa, img_b = sb, len_a = la, len_b = lb;
}

static int setup(void **state)
{
    (void)state;
    img_a = aloft_test_image("esp32c3", "1.0.0", 100000, NULL, &len_a);
    img_b = aloft_test_image("esp32c3", "2.0.0", 120000, NULL, &len_b);
    img_c = aloft_test_image("esp32c3", "3.0.0", 90000, NULL, &len_c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(img_a);
    free(img_b);
    free(img_c);
    printf("power-cut points tested: %lu\n", cut_points);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_update),
        cmocka_unit_test(test_new_to_pending_verify),
        cmocka_unit_test(test_pending_to_valid),
        cmocka_unit_test(test_pending_to_invalid),
        cmocka_unit_test(test_pending_to_aborted),
        cmocka_unit_test(test_update_real_image),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
