/* fake-idf: the chip's storage over a flash file — esp_partition and
 * esp_ota_* as the glue's boot.c and flash.c use them, NVS as settings.c
 * does — with ESP-IDF's checks and limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "esp_flash.h"
#include "esp_ota_ops.h"
#include "esp_partition.h"
#include "nvs.h"
#include "testflash.h"

static int make_flash(void **state)
{
    (void)state;
    return fake_idf_test_flash("fake-idf-storage.img"); /* the chip powers on at the first call */
}

static void test_find_lists_the_table(void **state)
{
    (void)state;
    const char *want[] = {"nvs", "otadata", "phy_init", "ota_0", "ota_1", "bootloader", "partition_table"};
    size_t n = 0;
    for (esp_partition_iterator_t it = esp_partition_find(ESP_PARTITION_TYPE_ANY, ESP_PARTITION_SUBTYPE_ANY, NULL);
         it; it = esp_partition_next(it)) { /* at the end, next releases it */
        const esp_partition_t *p = esp_partition_get(it);
        assert_true(n < 7);
        assert_string_equal(p->label, want[n++]);
        assert_ptr_equal(p->flash_chip, esp_flash_default_chip);
        assert_int_equal(p->erase_size, 4096);
    }
    assert_int_equal(n, 7);
    esp_partition_iterator_t it = esp_partition_find(ESP_PARTITION_TYPE_APP, ESP_PARTITION_SUBTYPE_APP_OTA_1, NULL);
    assert_non_null(it);
    assert_int_equal(esp_partition_get(it)->address, 0x50000);
    esp_partition_iterator_release(it);
    assert_null(esp_partition_find(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY, "www_0"));
    uint32_t size = 0;
    assert_int_equal(esp_flash_get_size(NULL, &size), ESP_OK);
    assert_int_equal(size, 1024 * 1024);
}

static const esp_partition_t *named(const char *label)
{
    esp_partition_iterator_t it = esp_partition_find(ESP_PARTITION_TYPE_ANY, ESP_PARTITION_SUBTYPE_ANY, label);
    const esp_partition_t *p = it ? esp_partition_get(it) : NULL;
    esp_partition_iterator_release(it);
    return p;
}

static void test_bounds_and_erase_granularity(void **state)
{
    (void)state;
    const esp_partition_t *p = named("ota_1");
    uint8_t buf[32] = {0};
    assert_non_null(p);
    assert_int_equal(esp_partition_read(p, p->size + 1, buf, 1), ESP_ERR_INVALID_ARG);
    assert_int_equal(esp_partition_read(p, p->size - 8, buf, 16), ESP_ERR_INVALID_SIZE);
    assert_int_equal(esp_partition_write(p, p->size - 8, buf, 16), ESP_ERR_INVALID_SIZE);
    assert_int_equal(esp_partition_erase_range(p, 100, 4096), ESP_ERR_INVALID_ARG);
    assert_int_equal(esp_partition_erase_range(p, 4096, 100), ESP_ERR_INVALID_SIZE);
    assert_int_equal(esp_partition_erase_range(p, p->size - 4096, 8192), ESP_ERR_INVALID_SIZE);
}

static void test_nor_rules(void **state)
{
    (void)state;
    const esp_partition_t *p = named("ota_1");
    uint8_t zero[16] = {0}, ones[16], got[16];
    memset(ones, 0xFF, sizeof ones);
    assert_int_equal(esp_partition_erase_range(p, 0, 4096), ESP_OK);
    assert_int_equal(esp_partition_read(p, 0, got, sizeof got), ESP_OK);
    assert_memory_equal(got, ones, sizeof got);
    assert_int_equal(esp_partition_write(p, 3, zero, 5), ESP_OK); /* unencrypted: any offset and length */
    assert_int_equal(esp_partition_read(p, 0, got, sizeof got), ESP_OK);
    assert_int_equal(got[2], 0xFF);
    assert_int_equal(got[3], 0x00);
    assert_int_equal(got[8], 0xFF);
    /* the write lands at the partition's address in the flash file */
    const esp_partition_t *q = named("ota_0");
    assert_int_equal(q->address + q->size, p->address);
}

static void test_running_and_confirm(void **state)
{
    (void)state;
    const esp_partition_t *run = esp_ota_get_running_partition();
    assert_non_null(run);
    assert_string_equal(run->label, "ota_0");
    assert_ptr_equal(run, named("ota_0")); /* the same entry as esp_partition_get's */
    assert_int_equal(esp_ota_mark_app_valid_cancel_rollback(), ESP_OK);
    assert_int_equal(esp_ota_mark_app_valid_cancel_rollback(), ESP_OK); /* idempotent */
}

static void test_nvs_names_and_modes(void **state)
{
    (void)state;
    nvs_handle_t h;
    assert_int_equal(nvs_open("a_namespace_16ch", NVS_READWRITE, &h), ESP_ERR_NVS_INVALID_NAME);
    assert_int_equal(nvs_open("security", NVS_READONLY, &h), ESP_ERR_NVS_NOT_FOUND); /* not there yet */
    assert_int_equal(nvs_open("security", NVS_READWRITE, &h), ESP_OK);
    assert_int_equal(nvs_set_str(h, "a_key_of_16chars", "x"), ESP_ERR_NVS_KEY_TOO_LONG);
    assert_int_equal(nvs_set_str(h, "ota_psk", "s3cret"), ESP_OK);
    assert_int_equal(nvs_commit(h), ESP_OK);
    nvs_close(h);
    assert_int_equal(nvs_commit(h), ESP_ERR_NVS_INVALID_HANDLE);
    assert_int_equal(nvs_open("security", NVS_READONLY, &h), ESP_OK);
    assert_int_equal(nvs_set_blob(h, "k", "v", 1), ESP_ERR_NVS_READ_ONLY);
    assert_int_equal(nvs_erase_key(h, "ota_psk"), ESP_ERR_NVS_READ_ONLY);
    nvs_close(h);
}

static void test_nvs_values(void **state)
{
    (void)state;
    nvs_handle_t h;
    char s[16];
    uint8_t b[8];
    size_t len = 0;
    assert_int_equal(nvs_open("security", NVS_READWRITE, &h), ESP_OK);
    /* a string: its size with the NUL, asked for with NULL */
    assert_int_equal(nvs_get_str(h, "ota_psk", NULL, &len), ESP_OK);
    assert_int_equal(len, 7);
    len = 3;
    assert_int_equal(nvs_get_str(h, "ota_psk", s, &len), ESP_ERR_NVS_INVALID_LENGTH);
    assert_int_equal(len, 7);
    len = sizeof s;
    assert_int_equal(nvs_get_str(h, "ota_psk", s, &len), ESP_OK);
    assert_string_equal(s, "s3cret");
    /* read as the other type: a mismatch, as the glue's fallback expects */
    len = sizeof b;
    assert_int_equal(nvs_get_blob(h, "ota_psk", b, &len), ESP_ERR_NVS_TYPE_MISMATCH);
    assert_int_equal(nvs_set_blob(h, "blob", "\x01\x02\x03", 3), ESP_OK);
    len = sizeof b;
    assert_int_equal(nvs_get_blob(h, "blob", b, &len), ESP_OK);
    assert_int_equal(len, 3);
    assert_memory_equal(b, "\x01\x02\x03", 3);
    assert_int_equal(nvs_get_str(h, "blob", s, &len), ESP_ERR_NVS_TYPE_MISMATCH);
    assert_int_equal(nvs_get_blob(h, "none", b, &len), ESP_ERR_NVS_NOT_FOUND);
    /* namespaces keep their keys apart */
    nvs_handle_t o;
    assert_int_equal(nvs_open("other", NVS_READWRITE, &o), ESP_OK);
    len = sizeof b;
    assert_int_equal(nvs_get_blob(o, "blob", b, &len), ESP_ERR_NVS_NOT_FOUND);
    nvs_close(o);
    static uint8_t big[4096];
    assert_int_equal(nvs_set_blob(h, "big", big, sizeof big), ESP_ERR_NVS_VALUE_TOO_LONG);
    assert_int_equal(nvs_erase_key(h, "blob"), ESP_OK);
    assert_int_equal(nvs_erase_key(h, "blob"), ESP_ERR_NVS_NOT_FOUND);
    nvs_close(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_lists_the_table),
        cmocka_unit_test(test_bounds_and_erase_granularity),
        cmocka_unit_test(test_nor_rules),
        cmocka_unit_test(test_running_and_confirm),
        cmocka_unit_test(test_nvs_names_and_modes),
        cmocka_unit_test(test_nvs_values),
    };
    return cmocka_run_group_tests(tests, make_flash, NULL);
}
