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
    uint8_t b[3];
    assert_int_equal(aloft_flash_read(&pf.port, 128 * 1024 - 3, b, 3), 0);
    assert_int_equal(b[2], 0xFF); /* new flash reads erased */
    uint8_t v[3] = {1, 2, 3};
    assert_int_equal(aloft_flash_write(&pf.port, 5000, v, 3), 0);
    uint8_t over[3] = {1, 3, 3}; /* NOR rules hold for files too */
    assert_int_equal(aloft_flash_write(&pf.port, 5000, over, 3), ALOFT_E_NOR);
    assert_int_equal(aloft_flash_erase(&pf.port, 8192, 4096), 0);
    aloft_posix_flash_close(&pf);
    assert_int_equal(aloft_posix_flash_open(&pf, path, 0, false), 0);
    assert_int_equal(pf.size, 128 * 1024);
    assert_int_equal(aloft_flash_read(&pf.port, 5000, b, 3), 0);
    assert_memory_equal(b, v, 3);
    aloft_posix_flash_close(&pf);
    /* a power cut in a file flash leaves what was written before it */
    assert_int_equal(aloft_posix_flash_open(&pf, path, 0, false), 0);
    uint8_t z[8] = {0};
    aloft_posix_flash_cut(&pf, 2, true);
    assert_int_equal(aloft_flash_write(&pf.port, 100, z, 8), 0);
    assert_int_equal(aloft_flash_write(&pf.port, 200, z, 8), ALOFT_E_POWER);
    aloft_posix_flash_close(&pf);
    assert_int_equal(aloft_posix_flash_open(&pf, path, 0, false), 0);
    uint8_t r[16];
    assert_int_equal(aloft_flash_read(&pf.port, 100, r, 8), 0);
    assert_memory_equal(r, z, 8);
    assert_int_equal(aloft_flash_read(&pf.port, 200, r, 8), 0);
    assert_memory_equal(r, z, 4); /* torn: first half */
    assert_int_equal(r[4], 0xFF);
    aloft_posix_flash_close(&pf);
    /* a wrong size for an existing flash is refused, not silently resized */
    assert_int_equal(aloft_posix_flash_open(&pf, path, 64 * 1024, false), -1);
    unlink(path);
}

static void test_timing_counts_block_and_sector_erases(void **state)
{
    (void)state;
    static const struct aloft_posix_timing t = {.sector_erase_us = 3, .block_erase_us = 7, .page_program_us = 1};
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 256 * 1024), 0);
    pf.timing = &t;
    /* 4 KB before a block, one whole block, 8 KB after: 3 + 7 + 2 * 3 */
    assert_int_equal(aloft_flash_erase(&pf.port, 0x10000 - 0x1000, 0x1000 + 0x10000 + 0x2000), 0);
    assert_int_equal(pf.busy_us, 16);
    uint8_t z[300] = {0};
    pf.busy_us = 0;
    assert_int_equal(aloft_flash_write(&pf.port, 250, z, 300), 0); /* pages 0..2 */
    assert_int_equal(pf.busy_us, 3);
    aloft_posix_flash_close(&pf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_erase_and_program_rules),
        cmocka_unit_test(test_counts_operations_per_sector),
        cmocka_unit_test(test_power_cut_before_operation),
        cmocka_unit_test(test_torn_operations),
        cmocka_unit_test(test_file_persists),
        cmocka_unit_test(test_timing_counts_block_and_sector_erases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
