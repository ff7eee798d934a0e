/* Boot selection and rollback, as ESP-IDF's bootloader with
 * CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE, and the app-side calls. */
#include "testdev.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/otadata.h"

static uint8_t *img_a, *img_b;
static size_t len_a, len_b;

static int setup(void **state)
{
    (void)state;
    img_a = aloft_test_image("esp32c3", "1.0.0", 0, NULL, &len_a);
    img_b = aloft_test_image("esp32c3", "2.0.0", 0, NULL, &len_b);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(img_a);
    free(img_b);
    return 0;
}

static const char *running_label(const struct aloft_test_dev *d)
{
    return d->boot.running ? d->boot.running->label : "";
}

static void test_fresh_flash_boots_ota0_or_factory(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(running_label(&d), "ota_0");
    assert_int_equal(d.boot.why, ALOFT_BOOT_DEFAULT);
    assert_int_equal(aloft_boot_state(&d.boot), ALOFT_OTA_UNDEFINED);
    assert_string_equal(aloft_test_running_version(&d), "1.0.0");
    aloft_posix_flash_close(&d.pf);

    size_t len;
    char *csv = (char *)aloft_test_fixture("esp-idf/partitions_two_ota.csv", &len);
    aloft_test_dev_init(&d, 0x400000, csv, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(running_label(&d), "factory");
    free(csv);
    aloft_posix_flash_close(&d.pf);
}

/* ota_data_initial.bin (all 0xFF) is what ESP-IDF flashes: ota_0 boots. */
static void test_initial_otadata_fixture_boots_ota0(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    size_t len;
    uint8_t *init = aloft_test_fixture("esp-idf/ota_data_initial.bin", &len);
    memcpy(d.pf.mem + 0xd000, init, len);
    free(init);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(running_label(&d), "ota_0");
    aloft_posix_flash_close(&d.pf);
}

static void test_unconfirmed_update_rolls_back(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);

    assert_int_equal(aloft_test_dev_boot(&d), 0); /* NEW -> PENDING_VERIFY */
    assert_string_equal(running_label(&d), "ota_1");
    assert_string_equal(aloft_test_running_version(&d), "2.0.0");
    assert_int_equal(d.boot.why, ALOFT_BOOT_OTADATA);
    assert_int_equal(aloft_boot_state(&d.boot), ALOFT_OTA_PENDING_VERIFY);
    assert_true(aloft_boot_rollback_possible(&d.boot));

    assert_int_equal(aloft_test_dev_boot(&d), 0); /* reset before confirming */
    assert_string_equal(running_label(&d), "ota_0");
    assert_string_equal(aloft_test_running_version(&d), "1.0.0");
    struct aloft_otadata od;
    assert_int_equal(aloft_otadata_read(&d.pf.port, d.boot.otadata, &od), 0);
    assert_int_equal(od.e[0].state, ALOFT_OTA_ABORTED);
    aloft_posix_flash_close(&d.pf);
}

static void test_confirmed_update_stays(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_boot_mark_valid(&d.boot), 0);
    assert_int_equal(aloft_boot_state(&d.boot), ALOFT_OTA_VALID);
    assert_int_equal(aloft_boot_mark_valid(&d.boot), 0); /* idempotent */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(aloft_test_dev_boot(&d), 0);
        assert_string_equal(running_label(&d), "ota_1");
        assert_int_equal(aloft_boot_state(&d.boot), ALOFT_OTA_VALID);
    }
    aloft_posix_flash_close(&d.pf);
}

static void test_mark_invalid_rolls_back(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    /* the only app: nothing to roll back to */
    assert_false(aloft_boot_rollback_possible(&d.boot));
    assert_int_equal(aloft_boot_mark_invalid(&d.boot), ALOFT_E_NOROLLBACK);

    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_boot_mark_invalid(&d.boot), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(running_label(&d), "ota_0");
    assert_string_equal(aloft_test_running_version(&d), "1.0.0");

    /* from ota_1 (valid) to ota_0 and back: the older copy takes over */
    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_boot_mark_valid(&d.boot), 0);
    assert_int_equal(aloft_test_update(&d.boot, img_a, len_a, 4096), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(running_label(&d), "ota_0");
    assert_int_equal(aloft_boot_mark_invalid(&d.boot), 0);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(running_label(&d), "ota_1");
    assert_int_equal(d.boot.why, ALOFT_BOOT_OTADATA);
    assert_int_equal(aloft_boot_state(&d.boot), ALOFT_OTA_VALID);
    aloft_posix_flash_close(&d.pf);
}

static void test_rollback_off_needs_no_confirmation(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, false);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(aloft_test_dev_boot(&d), 0);
        assert_string_equal(running_label(&d), "ota_1");
        assert_int_equal(aloft_boot_state(&d.boot), ALOFT_OTA_UNDEFINED);
    }
    aloft_posix_flash_close(&d.pf);
}

static void test_corrupt_chosen_app_falls_back(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, false);
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_int_equal(aloft_test_update(&d.boot, img_b, len_b, 4096), 0);
    d.pf.mem[0x50000 + 1000] ^= 0x10; /* bit rot in ota_1 */
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(running_label(&d), "ota_0");
    assert_int_equal(d.boot.why, ALOFT_BOOT_FALLBACK);
    d.pf.mem[0x10000 + 1000] ^= 0x10; /* and in ota_0: nothing boots */
    assert_int_equal(aloft_test_dev_boot(&d), ALOFT_E_NOBOOT);
    assert_null(d.boot.running);
    aloft_posix_flash_close(&d.pf);
}

static void test_wrong_chip_does_not_boot(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    assert_int_equal(aloft_boot_init(&d.boot, &d.pf.port, ALOFT_PART_TABLE_OFFSET, (uint16_t)aloft_chip_id("esp32s3"),
                                     true),
                     0);
    assert_int_equal(aloft_boot_select(&d.boot), ALOFT_E_NOBOOT);
    aloft_posix_flash_close(&d.pf);
}

static void test_corrupt_table_is_reported(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x100000, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    d.pf.mem[0x8000 + 5] ^= 1; /* inside the first entry: the MD5 no longer matches */
    assert_int_equal(aloft_test_dev_boot(&d), ALOFT_E_PART_MD5);
    aloft_posix_flash_close(&d.pf);
}

/* The real ESP-IDF images: v0.4.3 in an 8 MB layout updated to v0.6.4. */
static void test_real_images_update_on_8mb_table(void **state)
{
    (void)state;
    size_t csv_len, a_len, b_len;
    char *csv = (char *)aloft_test_fixture("esp-idf/partitions-8mb.csv", &csv_len);
    uint8_t *a = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.4.3.bin", &a_len);
    uint8_t *b = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.6.4.bin", &b_len);
    struct aloft_test_dev d;
    aloft_test_dev_init(&d, 0x800000, csv, a, a_len, true);
    size_t tlen;
    uint8_t *table = aloft_test_fixture("esp-idf/partition-table-8mb.bin", &tlen);
    assert_memory_equal(d.pf.mem + 0x8000, table, tlen);
    assert_int_equal(aloft_boot_init(&d.boot, &d.pf.port, ALOFT_PART_TABLE_OFFSET, (uint16_t)aloft_chip_id("esp32s3"),
                                     true),
                     0);
    assert_int_equal(aloft_boot_select(&d.boot), 0);
    assert_string_equal(aloft_test_running_version(&d), "v0.4.3.1-esp32-3-g66e2fa083-dir");
    assert_int_equal(aloft_test_update(&d.boot, b, b_len, 4096), 0);
    assert_int_equal(aloft_boot_select(&d.boot), 0);
    assert_string_equal(running_label(&d), "ota_1");
    assert_string_equal(aloft_test_running_version(&d), "0.6.4");
    free(csv);
    free(a);
    free(b);
    free(table);
    aloft_posix_flash_close(&d.pf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fresh_flash_boots_ota0_or_factory),
        cmocka_unit_test(test_initial_otadata_fixture_boots_ota0),
        cmocka_unit_test(test_unconfirmed_update_rolls_back),
        cmocka_unit_test(test_confirmed_update_stays),
        cmocka_unit_test(test_mark_invalid_rolls_back),
        cmocka_unit_test(test_rollback_off_needs_no_confirmation),
        cmocka_unit_test(test_corrupt_chosen_app_falls_back),
        cmocka_unit_test(test_wrong_chip_does_not_boot),
        cmocka_unit_test(test_corrupt_table_is_reported),
        cmocka_unit_test(test_real_images_update_on_8mb_table),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
