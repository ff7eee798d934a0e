/* The update writer: begin/write/end/set_boot/abort, refusals, and that a
 * refused image changes nothing outside its target slot. */
#include "testdev.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/otadata.h"

#define SLOT1 0x50000u
#define SLOT_SIZE 0x40000u

static uint8_t *img_a, *img_b;
static size_t len_a, len_b;

static int setup(void **state)
{
    (void)state;
    img_a = aloft_test_image("esp32c3", "1.0.0", 150000, NULL, &len_a);
    img_b = aloft_test_image("esp32c3", "2.0.0", 0, NULL, &len_b);
    assert_true(len_b < len_a);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(img_a);
    free(img_b);
    return 0;
}

static void booted(struct aloft_test_dev *d, bool rollback)
{
    aloft_test_dev_init(d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, rollback);
    assert_int_equal(aloft_test_dev_boot(d), 0);
}

static void test_any_chunk_size_writes_the_image(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 3, 7, 256, 4096, 65536, 0};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        struct aloft_test_dev d;
        booted(&d, false);
        size_t chunk = chunks[i] ? chunks[i] : len_b;
        assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, chunk), 0);
        assert_memory_equal(d.pf.mem + SLOT1, img_b, len_b);
        assert_int_equal(aloft_test_dev_boot(&d), 0);
        assert_string_equal(aloft_test_running_version(&d), "2.0.0");
        aloft_posix_flash_close(&d.pf);
    }
}

/* A smaller image over a larger one: no stale tail survives (FORMATS.md §4). */
static void test_whole_slot_is_erased_first(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d, false);
    assert_int_equal(aloft_test_update(&d.boot, img_a, len_a, 4096), 0); /* big one into ota_1 */
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0); /* into ota_0 */
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0); /* small one into ota_1 */
    for (uint32_t i = (uint32_t)len_b; i < SLOT_SIZE; i++)
        if (d.pf.mem[SLOT1 + i] != 0xFF)
            fail_msg("stale byte at slot offset 0x%x", i);
    aloft_posix_flash_close(&d.pf);
}

static void test_refuses_running_slot_and_pending_app(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d, true);
    struct aloft_update u;
    assert_int_equal(aloft_update_begin(&u, &d.boot, d.boot.running), ALOFT_E_RUNNING);
    const struct aloft_part *nvs = aloft_part_find_label(&d.boot.table, "nvs");
    assert_int_equal(aloft_update_begin(&u, &d.boot, nvs), ALOFT_E_INVAL);

    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0); /* new app, pending verify */
    static uint8_t before[0x100000];
    memcpy(before, d.pf.mem, sizeof before);
    assert_int_equal(aloft_update_begin(&u, &d.boot, NULL), ALOFT_E_STATE);
    assert_memory_equal(before, d.pf.mem, sizeof before); /* nothing erased */
    assert_int_equal(aloft_boot_mark_valid(&d.boot), 0);
    assert_int_equal(aloft_update_begin(&u, &d.boot, NULL), 0);
    assert_string_equal(u.target->label, "ota_0");
    aloft_update_abort(&u);
    aloft_posix_flash_close(&d.pf);
}

static void test_call_order_is_enforced(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d, false);
    struct aloft_update u;
    assert_int_equal(aloft_update_begin(&u, &d.boot, NULL), 0);
    assert_int_equal(aloft_update_set_boot(&u), ALOFT_E_STATE); /* not verified yet */
    assert_int_equal(aloft_update_write(&u, img_b, 100), 0);
    assert_int_equal(aloft_update_end(&u), ALOFT_E_TRUNCATED);
    assert_int_equal(aloft_update_write(&u, img_b + 100, 100), ALOFT_E_STATE);
    assert_int_equal(aloft_update_set_boot(&u), ALOFT_E_STATE);
    aloft_update_abort(&u);
    assert_int_equal(aloft_update_write(&u, img_b, 100), ALOFT_E_STATE);
    aloft_posix_flash_close(&d.pf);
}

/* Feed a bad image; expect err, and every byte outside the target slot,
 * otadata included, unchanged. Returns how many bytes reached the slot. */
static size_t refused(const uint8_t *img, size_t len, uint16_t chip, int err)
{
    struct aloft_test_dev d;
    booted(&d, true);
    d.boot.chip = chip;
    static uint8_t before[0x100000];
    memcpy(before, d.pf.mem, sizeof before);
    struct aloft_update u;
    int rc = aloft_update_begin(&u, &d.boot, NULL);
    for (size_t off = 0; rc == 0 && off < len; off += 4096)
        rc = aloft_update_write(&u, img + off, len - off < 4096 ? len - off : 4096);
    if (rc == 0)
        rc = aloft_update_end(&u);
    assert_int_equal(rc, err);
    assert_int_equal(aloft_update_set_boot(&u), ALOFT_E_STATE);
    aloft_update_abort(&u);
    assert_memory_equal(d.pf.mem, before, SLOT1);
    assert_memory_equal(d.pf.mem + SLOT1 + SLOT_SIZE, before + SLOT1 + SLOT_SIZE, sizeof before - SLOT1 - SLOT_SIZE);
    size_t written = 0;
    for (size_t i = 0; i < SLOT_SIZE; i++)
        if (d.pf.mem[SLOT1 + i] != 0xFF)
            written = i + 1;
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(aloft_test_running_version(&d), "1.0.0");
    aloft_posix_flash_close(&d.pf);
    return written;
}

static void test_bad_images_change_nothing_outside_the_slot(void **state)
{
    (void)state;
    uint8_t *bad = malloc(SLOT_SIZE + 8192);
    uint16_t c3 = (uint16_t)aloft_chip_id("esp32c3");

    memcpy(bad, img_b, len_b);
    bad[0] = 0xE8;
    assert_int_equal(refused(bad, len_b, c3, ALOFT_E_MAGIC), 0); /* nothing written at all */

    refused(img_b, len_b - 1, c3, ALOFT_E_TRUNCATED);
    refused(img_b, len_b, (uint16_t)aloft_chip_id("esp32s3"), ALOFT_E_CHIP);

    memcpy(bad, img_b, len_b);
    bad[len_b / 2] ^= 0x04; /* segment data */
    refused(bad, len_b, c3, ALOFT_E_CHECKSUM);

    memcpy(bad, img_b, len_b);
    bad[len_b - 1] ^= 0x80; /* appended hash */
    refused(bad, len_b, c3, ALOFT_E_HASH);

    memcpy(bad, img_b, len_b);
    bad[1] = 0; /* segment count */
    assert_int_equal(refused(bad, len_b, c3, ALOFT_E_SEGMENTS), 0);
    memcpy(bad, img_b, len_b);
    bad[23] = 2; /* hash_appended */
    assert_int_equal(refused(bad, len_b, c3, ALOFT_E_HEADER), 0);
    memcpy(bad, img_b, len_b);
    bad[4] ^= 0x01; /* entry address: only the SHA-256 covers it */
    refused(bad, len_b, c3, ALOFT_E_HASH);
    memcpy(bad, img_b, len_b);
    bad[24 + 4] |= 0x02; /* segment 0 length not a multiple of 4 */
    assert_int_equal(refused(bad, len_b, c3, ALOFT_E_SEGMENT), 0);
    memcpy(bad, img_b, len_b);
    memset(bad + len_b, 0x5A, 100); /* garbage after the image */
    refused(bad, len_b + 100, c3, ALOFT_E_TRAILING);
    refused(img_b, 0, c3, ALOFT_E_TRUNCATED);

    uint8_t *big_img;
    size_t big_len;
    big_img = aloft_test_image("esp32c3", "3.0.0", SLOT_SIZE + 4096, NULL, &big_len);
    refused(big_img, big_len, c3, ALOFT_E_NOSPC);
    free(big_img);
    free(bad);
}

/* Truncated at every segment boundary (and one byte either side) and at
 * random points: refused, nothing outside the slot touched. */
static void test_truncated_updates_change_nothing(void **state)
{
    (void)state;
    struct aloft_image_verifier v;
    aloft_image_begin(&v, ALOFT_CHIP_ANY, 0);
    assert_int_equal(aloft_image_feed(&v, img_b, len_b), 0);
    assert_int_equal(aloft_image_end(&v), 0);
    uint16_t c3 = v.info.chip_id;
    int cuts = 0;
    for (unsigned i = 0; i < v.info.segment_count; i++) {
        uint32_t hdr = v.info.seg_offset[i] - 8;
        for (int d = -1; d <= 1; d++) {
            refused(img_b, hdr + d, c3, ALOFT_E_TRUNCATED);
            refused(img_b, v.info.seg_offset[i] + d, c3, ALOFT_E_TRUNCATED);
            cuts += 2;
        }
    }
    uint8_t r[4 * 20];
    aloft_test_fill(r, sizeof r, 7);
    for (int i = 0; i < 20; i++) {
        uint32_t at = (r[4 * i] | r[4 * i + 1] << 8 | (uint32_t)r[4 * i + 2] << 16) % (uint32_t)len_b;
        refused(img_b, at, c3, ALOFT_E_TRUNCATED);
        cuts++;
    }
    assert_true(cuts >= 20 + 6 * 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_any_chunk_size_writes_the_image),
        cmocka_unit_test(test_whole_slot_is_erased_first),
        cmocka_unit_test(test_refuses_running_slot_and_pending_app),
        cmocka_unit_test(test_call_order_is_enforced),
        cmocka_unit_test(test_bad_images_change_nothing_outside_the_slot),
        cmocka_unit_test(test_truncated_updates_change_nothing),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
