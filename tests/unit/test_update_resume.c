/* aloft_update_resume: an update interrupted after N bytes continues at N and
 * ends exactly like a straight write; a slot that does not hold the image's
 * first N bytes is refused; power lost during a resume loses nothing. */
#include "testdev.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/otadata.h"

#define FLASH 0x100000u
#define SLOT1 0x50000u
#define SLOT_SIZE 0x40000u
#define SECTOR 4096u

static uint8_t *img_a, *img_b, *img_c;
static size_t len_a, len_b, len_c;

static int setup(void **state)
{
    (void)state;
    img_a = aloft_test_image("esp32c3", "1.0.0", 100000, NULL, &len_a);
    img_b = aloft_test_image("esp32c3", "2.0.0", 120000, NULL, &len_b);
    img_c = aloft_test_image("esp32c3", "3.0.0", 120000, NULL, &len_c);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(img_a);
    free(img_b);
    free(img_c);
    return 0;
}

static void booted(struct aloft_test_dev *d)
{
    aloft_test_dev_init(d, FLASH, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(d), 0);
}

/* Write img[0, n) into the next slot in chunk-sized pieces and stop there,
 * as a download that dropped or a process that was killed. */
static void write_part(struct aloft_test_dev *d, const uint8_t *img, size_t n, size_t chunk)
{
    struct aloft_update u;
    assert_int_equal(aloft_update_begin(&u, &d->boot, NULL), 0);
    for (size_t off = 0; off < n; off += chunk)
        assert_int_equal(aloft_update_write(&u, img + off, n - off < chunk ? n - off : chunk), 0);
}

/* Resume at `at` and write the rest of img; returns the first error. */
static int finish(struct aloft_test_dev *d, const uint8_t *img, size_t len, uint32_t at, size_t chunk)
{
    struct aloft_update u;
    int rc = aloft_update_resume(&u, &d->boot, NULL, at);
    if (rc == 0)
        assert_int_equal(u.written, at);
    return aloft_test_update_finish(&u, rc, img, len, at, chunk);
}

/* Every sector offset from 0 to past the image, with bytes of the same image
 * already programmed past the offset (the kill came after the program, before
 * the offset was saved) or with another image's bytes there (an abandoned
 * download): the flash ends byte-identical to a straight write. */
static void test_resume_at_every_offset_equals_a_straight_write(void **state)
{
    (void)state;
    struct aloft_test_dev straight;
    booted(&straight);
    assert_int_equal(aloft_test_update(&straight.boot, img_b, len_b, 4096), 0);

    unsigned resumed = 0;
    for (uint32_t at = 0; at < len_b; at += SECTOR) {
        for (int past = 0; past < 3; past++) {
            struct aloft_test_dev d;
            booted(&d);
            /* past 0: nothing beyond; 1: 1000 more bytes of img_b; 2: img_c's bytes beyond */
            write_part(&d, img_b, at, 1000);
            if (past == 1)
                memcpy(d.pf.mem + SLOT1 + at, img_b + at, len_b - at < 1000 ? len_b - at : 1000);
            if (past == 2)
                memcpy(d.pf.mem + SLOT1 + at, img_c + at, 1000);
            /* reboot in between, as after a kill */
            assert_int_equal(aloft_test_dev_boot(&d), 0);
            assert_string_equal(aloft_test_running_version(&d), "1.0.0");
            assert_int_equal(finish(&d, img_b, len_b, at, 777), 0);
            if (memcmp(d.pf.mem, straight.pf.mem, FLASH))
                fail_msg("resume at %u (past %d): flash differs from a straight write", at, past);
            assert_int_equal(aloft_test_dev_boot(&d), 0);
            assert_string_equal(aloft_test_running_version(&d), "2.0.0");
            aloft_posix_flash_close(&d.pf);
            resumed++;
        }
    }
    assert_true(resumed >= 3 * (len_b / SECTOR));
    aloft_posix_flash_close(&straight.pf);
}

/* The slot holds the first bytes of another image (same size, another
 * version): resuming accepts them (they are a valid prefix), but the image
 * that results fails its hash, so it never becomes bootable. */
static void test_resume_over_other_content_fails_verification(void **state)
{
    (void)state;
    for (uint32_t at = SECTOR; at < len_b; at += 7 * SECTOR) {
        struct aloft_test_dev d;
        booted(&d);
        write_part(&d, img_c, at, 4096);
        uint8_t otadata[0x2000];
        memcpy(otadata, d.pf.mem + 0xd000, sizeof otadata);
        int rc = finish(&d, img_b, len_b, at, 4096);
        if (rc != ALOFT_E_HASH && rc != ALOFT_E_CHECKSUM)
            fail_msg("resume at %u over another image: %d (%s), want a hash or checksum error", at, rc,
                     aloft_strerror(rc));
        assert_memory_equal(d.pf.mem + 0xd000, otadata, sizeof otadata);
        assert_int_equal(aloft_test_dev_boot(&d), 0);
        assert_string_equal(aloft_test_running_version(&d), "1.0.0");
        aloft_posix_flash_close(&d.pf);
    }
}

/* An erased slot, or a non-image there: refused by the read-back, and the
 * slot is left as it was (nothing erased, nothing written). */
static void test_resume_over_non_image_is_refused_and_changes_nothing(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d);
    uint8_t *before = malloc(FLASH);
    assert_non_null(before);
    struct aloft_update u;

    memcpy(before, d.pf.mem, FLASH);
    assert_int_equal(aloft_update_resume(&u, &d.boot, NULL, 8 * SECTOR), ALOFT_E_MAGIC); /* erased: 0xFF */
    assert_memory_equal(d.pf.mem, before, FLASH);
    assert_int_equal(aloft_update_write(&u, img_b, 16), ALOFT_E_STATE);

    write_part(&d, img_b, 8 * SECTOR, 4096);
    memset(d.pf.mem + SLOT1, 0x00, 16); /* the header is gone */
    memcpy(before, d.pf.mem, FLASH);
    assert_int_not_equal(aloft_update_resume(&u, &d.boot, NULL, 8 * SECTOR), 0);
    assert_memory_equal(d.pf.mem, before, FLASH);
    free(before);
    aloft_posix_flash_close(&d.pf);
}

static void test_resume_refusals(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d);
    write_part(&d, img_b, 4 * SECTOR, 4096);
    struct aloft_update u;
    assert_int_equal(aloft_update_resume(&u, &d.boot, NULL, 4 * SECTOR + 1), ALOFT_E_INVAL); /* not a sector */
    assert_int_equal(aloft_update_resume(&u, &d.boot, NULL, 100), ALOFT_E_INVAL);
    assert_int_equal(aloft_update_resume(&u, &d.boot, NULL, SLOT_SIZE + SECTOR), ALOFT_E_INVAL); /* past the slot */
    assert_int_equal(aloft_update_resume(&u, &d.boot, d.boot.running, 0), ALOFT_E_RUNNING);
    assert_int_equal(aloft_update_resume(NULL, &d.boot, NULL, 0), ALOFT_E_INVAL);
    /* A pending-verify app refuses updates, resumed ones too. */
    assert_int_equal(finish(&d, img_b, len_b, 4 * SECTOR, 4096), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_boot_state(&d.boot), ALOFT_OTA_PENDING_VERIFY);
    assert_int_equal(aloft_update_resume(&u, &d.boot, NULL, 0), ALOFT_E_STATE);
    aloft_posix_flash_close(&d.pf);
}

/* Power lost at every flash operation of a resume (before it or tearing
 * it): the device still boots the old image, and resuming again from the
 * same saved offset completes the update. */
static void test_power_loss_during_resume(void **state)
{
    (void)state;
    const uint32_t at = 12 * SECTOR;
    struct aloft_test_dev d;
    booted(&d);
    write_part(&d, img_b, at + 3000, 1500);
    uint8_t *base = malloc(FLASH);
    assert_non_null(base);
    memcpy(base, d.pf.mem, FLASH);
    d.pf.ops = 0;
    assert_int_equal(finish(&d, img_b, len_b, at, 4096), 0);
    uint64_t n = d.pf.ops;
    assert_true(n > 10);
    aloft_posix_flash_close(&d.pf);

    for (int tear = 0; tear < 2; tear++) {
        for (uint64_t k = 1; k <= n; k++) {
            booted(&d);
            memcpy(d.pf.mem, base, FLASH);
            d.pf.ops = 0;
            aloft_posix_flash_cut(&d.pf, k, tear);
            assert_int_equal(finish(&d, img_b, len_b, at, 4096), ALOFT_E_POWER);
            assert_int_equal(aloft_test_dev_boot(&d), 0);
            /* otadata is the last write: only a cut at it may already have switched */
            const char *v = aloft_test_running_version(&d);
            if (strcmp(v, "1.0.0") && strcmp(v, "2.0.0"))
                fail_msg("cut at op %llu: running '%s'", (unsigned long long)k, v);
            if (!strcmp(v, "1.0.0"))
                assert_int_equal(finish(&d, img_b, len_b, at, 4096), 0);
            assert_int_equal(aloft_test_dev_boot(&d), 0);
            assert_string_equal(aloft_test_running_version(&d), "2.0.0");
            assert_memory_equal(d.pf.mem + SLOT1, img_b, len_b);
            aloft_posix_flash_close(&d.pf);
        }
    }
    free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resume_at_every_offset_equals_a_straight_write),
        cmocka_unit_test(test_resume_over_other_content_fails_verification),
        cmocka_unit_test(test_resume_over_non_image_is_refused_and_changes_nothing),
        cmocka_unit_test(test_resume_refusals),
        cmocka_unit_test(test_power_loss_during_resume),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
