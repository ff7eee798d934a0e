/* The POSIX NOR flash: erase/program rules, operation counting, power cuts
 * and torn operations, persistence in a file. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft_posix_flash.h"

static void test_erase_and_program_rules(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 64 * 1024), 0);
    const struct aloft_flash *f = &pf.port;
    assert_int_equal(f->sector_size, 4096);
    assert_int_equal(pf.mem[0], 0xFF);

    uint8_t a[4] = {0x0F, 0xF0, 0x00, 0xAA};
    assert_int_equal(aloft_flash_write(f, 100, a, 4), 0);
    assert_memory_equal(pf.mem + 100, a, 4);
    /* clearing more bits is allowed */
    uint8_t b[4] = {0x0E, 0x00, 0x00, 0x0A};
    assert_int_equal(aloft_flash_write(f, 100, b, 4), 0);
    assert_memory_equal(pf.mem + 100, b, 4);
    /* setting a bit without an erase is refused and changes nothing */
    uint8_t c[4] = {0x0F, 0x00, 0x00, 0x0A};
    assert_int_equal(aloft_flash_write(f, 100, c, 4), ALOFT_E_NOR);
    assert_memory_equal(pf.mem + 100, b, 4);
    /* erase is sector-aligned and sets 0xFF */
    assert_int_equal(aloft_flash_erase(f, 100, 4096), ALOFT_E_INVAL);
    assert_int_equal(aloft_flash_erase(f, 0, 4000), ALOFT_E_INVAL);
    assert_int_equal(aloft_flash_erase(f, 0, 4096), 0);
    assert_int_equal(pf.mem[100], 0xFF);
    assert_int_equal(aloft_flash_write(f, 100, c, 4), 0);
    /* out of range */
    assert_int_equal(aloft_flash_write(f, 64 * 1024 - 2, c, 4), ALOFT_E_INVAL);
    assert_int_equal(aloft_flash_read(f, 0xFFFFFFF0u, c, 32), ALOFT_E_INVAL);
    aloft_posix_flash_close(&pf);
}

static void test_counts_operations_per_sector(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 64 * 1024), 0);
    uint8_t x = 0;
    assert_int_equal(aloft_flash_erase(&pf.port, 0, 3 * 4096), 0);
    assert_int_equal(pf.ops, 3);
    assert_int_equal(aloft_flash_write(&pf.port, 0, &x, 1), 0);
    assert_int_equal(pf.ops, 4);
    uint8_t buf[8];
    assert_int_equal(aloft_flash_read(&pf.port, 0, buf, 8), 0);
    assert_int_equal(pf.ops, 4); /* reads are not operations */
    aloft_posix_flash_close(&pf);
}

static void test_power_cut_before_operation(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 64 * 1024), 0);
    uint8_t z[16];
    memset(z, 0, sizeof z);
    aloft_posix_flash_cut(&pf, 3, false);
    assert_int_equal(aloft_flash_write(&pf.port, 0, z, 16), 0);    /* op 1 */
    assert_int_equal(aloft_flash_write(&pf.port, 4096, z, 16), 0); /* op 2 */
    assert_int_equal(aloft_flash_erase(&pf.port, 0, 8192), ALOFT_E_POWER); /* op 3: cut */
    assert_int_equal(pf.mem[0], 0);    /* not erased */
    assert_int_equal(pf.mem[4096], 0);
    assert_true(pf.dead);
    assert_int_equal(aloft_flash_write(&pf.port, 100, z, 1), ALOFT_E_POWER);
    assert_int_equal(pf.mem[100], 0xFF);
    assert_int_equal(aloft_flash_read(&pf.port, 0, z, 1), ALOFT_E_POWER);
    aloft_posix_flash_power_on(&pf);
    assert_int_equal(aloft_flash_erase(&pf.port, 0, 8192), 0);
    assert_int_equal(pf.mem[0], 0xFF);
    aloft_posix_flash_close(&pf);
}

static void test_torn_operations(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 64 * 1024), 0);
    uint8_t z[32];
    memset(z, 0, sizeof z);
    /* a torn program writes its first half only */
    aloft_posix_flash_cut(&pf, 1, true);
    assert_int_equal(aloft_flash_write(&pf.port, 0, z, 32), ALOFT_E_POWER);
    assert_int_equal(pf.mem[15], 0);
    assert_int_equal(pf.mem[16], 0xFF);
    aloft_posix_flash_power_on(&pf);
    /* a torn erase leaves the sector half erased; the next sector untouched */
    assert_int_equal(aloft_flash_write(&pf.port, 4096 + 4095, z, 1), 0);
    assert_int_equal(aloft_flash_write(&pf.port, 8192, z, 1), 0);
    aloft_posix_flash_cut(&pf, pf.ops + 2, true);
    assert_int_equal(aloft_flash_erase(&pf.port, 0, 3 * 4096), ALOFT_E_POWER);
    assert_int_equal(pf.mem[0], 0xFF);          /* sector 0 fully erased */
    assert_int_equal(pf.mem[4096], 0xFF);       /* sector 1 first half */
    assert_int_equal(pf.mem[4096 + 4095], 0);   /* sector 1 second half kept */
    assert_int_equal(pf.mem[8192], 0);          /* sector 2 never reached */
    aloft_posix_flash_close(&pf);
}

static void test_file_persists(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/flash.img", aloft_test_tmpdir());
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_open(&pf, path, 128 * 1024, true), 0);
    assert_int_equal(pf.mem[128 * 1024 - 1], 0xFF); /* new flash reads erased */
    uint8_t v[3] = {1, 2, 3};
    assert_int_equal(aloft_flash_write(&pf.port, 5000, v, 3), 0);
    aloft_posix_flash_close(&pf);
    assert_int_equal(aloft_posix_flash_open(&pf, path, 0, false), 0);
    assert_int_equal(pf.size, 128 * 1024);
    assert_memory_equal(pf.mem + 5000, v, 3);
    aloft_posix_flash_close(&pf);
    /* a wrong size for an existing flash is refused, not silently resized */
    assert_int_equal(aloft_posix_flash_open(&pf, path, 64 * 1024, false), -1);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erase_and_program_rules),
        cmocka_unit_test(test_counts_operations_per_sector),
        cmocka_unit_test(test_power_cut_before_operation),
        cmocka_unit_test(test_torn_operations),
        cmocka_unit_test(test_file_persists),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
