/* The component's glue (ports/esp-idf/aloft) run on the host over the
 * fakes: the partition table and the running app as boot.c reads them,
 * flash.c's 16-byte blocks on an encrypted slot, settings.c's NVS names
 * and the PSK as provisioned, device.c's facts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aloft/err.h"
#include "glue.h"
#include "nvs.h"
#include "testflash.h"

static struct aloft_idf dev;

static int setup(void **state)
{
    (void)state;
    setenv("FAKE_IDF_FLASH_ENCRYPTION", "1", 1); /* app slots and otadata encrypted, as on a production chip */
    return fake_idf_test_flash("fake-idf-glue.img");
}

static void test_boot(void **state)
{
    (void)state;
    assert_int_equal(aloft_idf_boot_init(&dev.boot, &dev.flash), ESP_OK);
    assert_int_equal(dev.boot.table.count, 5); /* the bootloader and the table are left out */
    assert_non_null(dev.boot.running);
    assert_string_equal(dev.boot.running->label, "ota_0");
    assert_non_null(dev.boot.otadata);
    assert_int_equal(dev.flash.port.size, 1024 * 1024);
    assert_int_equal(dev.flash.port.sector_size, 4096);
}

/* Pieces of 7 bytes onto an encrypted slot: the glue keeps a block until
 * it is whole (the fake refuses anything else) and reads see the bytes. */
static void test_encrypted_writes(void **state)
{
    (void)state;
    const struct aloft_flash *f = &dev.flash.port;
    const struct aloft_part *p = aloft_part_find_label(&dev.boot.table, "ota_1");
    uint8_t data[100], got[100];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(i * 7 + 1);
    assert_int_equal(f->erase(f->ctx, p->offset, 4096), 0);
    for (size_t off = 0; off < sizeof data; off += 7)
        assert_int_equal(f->write(f->ctx, p->offset + off, data + off, sizeof data - off < 7 ? sizeof data - off : 7), 0);
    assert_int_equal(f->read(f->ctx, p->offset, got, sizeof got), 0); /* flushes the partial last block */
    assert_memory_equal(got, data, sizeof data);
    assert_int_equal(f->write(f->ctx, p->offset + 208, data, 5), 0);         /* a new block, waiting */
    assert_int_equal(f->write(f->ctx, p->offset + 300, data, 5), ALOFT_E_INVAL); /* not at a block start */
    assert_int_equal(f->write(f->ctx, p->offset + 8, data, 4), ALOFT_E_INVAL); /* inside a block written */
    assert_int_equal(f->write(f->ctx, 0x1000, data, 16), ALOFT_E_INVAL);       /* outside the table */
}

static void test_settings(void **state)
{
    (void)state;
    struct aloft_settings s = aloft_idf_settings();
    char buf[64];
    nvs_handle_t h;
    assert_int_equal(s.get(s.ctx, "security/ota_psk", buf, sizeof buf), ALOFT_E_NOTFOUND);
    /* provisioned as docs/esp-idf.md says: an NVS string */
    assert_int_equal(nvs_open("security", NVS_READWRITE, &h), ESP_OK);
    assert_int_equal(nvs_set_str(h, "ota_psk", "s3cret"), ESP_OK);
    assert_int_equal(nvs_commit(h), ESP_OK);
    nvs_close(h);
    assert_int_equal(s.get(s.ctx, "security/ota_psk", buf, sizeof buf), 6);
    assert_memory_equal(buf, "s3cret", 6);
    assert_int_equal(s.get(s.ctx, "security/ota_psk", buf, 3), ALOFT_E_NOSPC);
    /* a string exactly as long as the buffer, as a 64-character PSK or the
     * server's credential: NVS wants room for its NUL, the agent gives none */
    static const char cred[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    assert_int_equal(nvs_open("security", NVS_READWRITE, &h), ESP_OK);
    assert_int_equal(nvs_set_str(h, "server_key", cred), ESP_OK);
    nvs_close(h);
    assert_int_equal(s.get(s.ctx, "security/server_key", buf, sizeof buf), 64);
    assert_memory_equal(buf, cred, 64);
    assert_int_equal(s.get(s.ctx, "security/server_key", buf, 63), ALOFT_E_NOSPC);
    /* a name longer than NVS's 15 characters still works, hashed */
    assert_int_equal(s.set(s.ctx, "pull/a_very_long_name_for_nvs", "abc", 3), 0);
    assert_int_equal(s.get(s.ctx, "pull/a_very_long_name_for_nvs", buf, sizeof buf), 3);
    assert_int_equal(s.get(s.ctx, "pull/a_very_long_name_for_nv", buf, sizeof buf), ALOFT_E_NOTFOUND);
    assert_int_equal(s.del(s.ctx, "pull/a_very_long_name_for_nvs"), 0);
    assert_int_equal(s.del(s.ctx, "pull/a_very_long_name_for_nvs"), 0); /* deleting what is not there */
    assert_int_equal(s.get(s.ctx, "pull/a_very_long_name_for_nvs", buf, sizeof buf), ALOFT_E_NOTFOUND);
    assert_int_equal(s.get(s.ctx, "no_namespace", buf, sizeof buf), ALOFT_E_INVAL);
}

static void test_device_facts(void **state)
{
    (void)state;
    aloft_idf_device_facts(&dev);
    assert_string_equal(dev.mac, "24:0A:C4:00:00:01");
    assert_string_equal(dev.reset_reason, "POWERON");
    assert_int_equal(dev.boot_count, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_boot),
        cmocka_unit_test(test_encrypted_writes),
        cmocka_unit_test(test_settings),
        cmocka_unit_test(test_device_facts),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
