/* otadata: CRC, selection, switching through the inactive copy, state
 * rewrites, against ESP-IDF's initial otadata. */
#include "testutil.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/otadata.h"
#include "aloft_posix_flash.h"

static const struct aloft_part od_part = {.type = ALOFT_PART_DATA, .subtype = ALOFT_PART_OTADATA,
                                           .offset = 0xd000, .size = 0x2000, .label = "otadata"};

static void setup_flash(struct aloft_posix_flash *pf)
{
    assert_int_equal(aloft_posix_flash_mem(pf, 0x10000), 0);
    size_t len;
    uint8_t *init = aloft_test_fixture("esp-idf/ota_data_initial.bin", &len);
    assert_int_equal(len, 0x2000);
    memcpy(pf->mem + od_part.offset, init, len);
    free(init);
}

static void test_crc_vectors(void **state)
{
    (void)state;
    assert_int_equal(aloft_otadata_crc(1), 0x4743989Au);
    assert_int_equal(aloft_otadata_crc(2), 0x55F63774u);
    assert_int_equal(aloft_otadata_crc(3), 0xED4A5011u);
    assert_int_equal(aloft_otadata_crc(16), 0xAFE6A860u);
}

static void test_initial_has_no_active_entry(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    setup_flash(&pf);
    struct aloft_otadata od;
    assert_int_equal(aloft_otadata_read(&pf.port, &od_part, &od), 0);
    assert_int_equal(aloft_otadata_active(&od), -1);
    assert_int_equal(od.e[0].state, ALOFT_OTA_UNDEFINED);
    aloft_posix_flash_close(&pf);
}

static void test_entry_validity(void **state)
{
    (void)state;
    struct aloft_otadata_entry e = {.seq = 5, .state = ALOFT_OTA_VALID};
    e.crc = aloft_otadata_crc(5);
    assert_true(aloft_otadata_entry_valid(&e));
    e.state = ALOFT_OTA_NEW;
    assert_true(aloft_otadata_entry_valid(&e));
    e.state = ALOFT_OTA_UNDEFINED;
    assert_true(aloft_otadata_entry_valid(&e));
    e.state = ALOFT_OTA_INVALID;
    assert_false(aloft_otadata_entry_valid(&e));
    e.state = ALOFT_OTA_ABORTED;
    assert_false(aloft_otadata_entry_valid(&e));
    e.state = ALOFT_OTA_VALID;
    e.crc ^= 1;
    assert_false(aloft_otadata_entry_valid(&e));
    e.seq = 0xFFFFFFFFu;
    e.crc = aloft_otadata_crc(e.seq);
    assert_false(aloft_otadata_entry_valid(&e));
}

static void test_active_picks_largest_seq_and_copy0_on_tie(void **state)
{
    (void)state;
    struct aloft_otadata od;
    memset(&od, 0xFF, sizeof od);
    od.e[0].seq = 3;
    od.e[0].crc = aloft_otadata_crc(3);
    od.e[1].seq = 4;
    od.e[1].crc = aloft_otadata_crc(4);
    assert_int_equal(aloft_otadata_active(&od), 1);
    od.e[1].state = ALOFT_OTA_ABORTED;
    assert_int_equal(aloft_otadata_active(&od), 0);
    od.e[1].state = ALOFT_OTA_VALID;
    od.e[1].seq = 3;
    od.e[1].crc = aloft_otadata_crc(3);
    assert_int_equal(aloft_otadata_active(&od), 0);
    assert_int_equal(aloft_otadata_slot(&od.e[0], 2), 0);
    od.e[0].seq = 16;
    assert_int_equal(aloft_otadata_slot(&od.e[0], 2), 1);
    assert_int_equal(aloft_otadata_slot(&od.e[0], 3), 0);
}

/* Switching alternates copies, writes only the other one, and uses the
 * smallest seq above the current that maps to the slot. */
static void test_select_writes_the_other_copy(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    setup_flash(&pf);
    struct aloft_otadata od;
    assert_int_equal(aloft_otadata_read(&pf.port, &od_part, &od), 0);

    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 1, 2, true), 0);
    assert_int_equal(od.e[0].seq, 2);
    assert_int_equal(od.e[0].state, ALOFT_OTA_NEW);
    uint8_t expect[32];
    memset(expect, 0xFF, sizeof expect);
    expect[0] = 2, expect[1] = expect[2] = expect[3] = 0;
    expect[24] = expect[25] = expect[26] = expect[27] = 0; /* NEW */
    uint32_t crc = aloft_otadata_crc(2);
    memcpy(expect + 28, &crc, 4);
    assert_memory_equal(pf.mem + 0xd000, expect, 32);
    for (int i = 32; i < 0x2000; i++)
        assert_int_equal(pf.mem[0xd000 + i], 0xFF);

    uint8_t copy0[32];
    memcpy(copy0, pf.mem + 0xd000, 32);
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 0, 2, false), 0);
    assert_int_equal(od.e[1].seq, 3);
    assert_int_equal(od.e[1].state, ALOFT_OTA_UNDEFINED);
    assert_memory_equal(pf.mem + 0xd000, copy0, 32); /* copy 0 untouched */
    assert_int_equal(aloft_otadata_active(&od), 1);

    /* selecting the same slot again moves a whole round of n */
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 0, 2, true), 0);
    assert_int_equal(od.e[0].seq, 5);
    assert_int_equal(aloft_otadata_active(&od), 0);
    /* with 3 slots from seq 5 (slot 1), slot 0 needs 7, slot 1 needs 8 */
    struct aloft_otadata copy = od;
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &copy, 0, 3, true), 0);
    assert_int_equal(copy.e[1].seq, 7);
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 1, 3, true), 0);
    assert_int_equal(od.e[1].seq, 8);

    /* what is on flash reads back as what we hold */
    struct aloft_otadata back;
    assert_int_equal(aloft_otadata_read(&pf.port, &od_part, &back), 0);
    assert_memory_equal(&back, &od, sizeof od);
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 2, 2, true), ALOFT_E_INVAL);
    aloft_posix_flash_close(&pf);
}

static void test_write_state_transitions(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    setup_flash(&pf);
    struct aloft_otadata od;
    assert_int_equal(aloft_otadata_read(&pf.port, &od_part, &od), 0);
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 1, 2, true), 0);
    static const uint32_t chain[] = {ALOFT_OTA_PENDING_VERIFY, ALOFT_OTA_VALID, ALOFT_OTA_INVALID,
                                     ALOFT_OTA_ABORTED, ALOFT_OTA_NEW};
    for (size_t i = 0; i < sizeof chain / sizeof chain[0]; i++) {
        uint64_t ops = pf.ops;
        assert_int_equal(aloft_otadata_write_state(&pf.port, &od_part, &od, 0, chain[i]), 0);
        assert_int_equal(pf.ops - ops, 2); /* one sector erase, one program */
        struct aloft_otadata back;
        assert_int_equal(aloft_otadata_read(&pf.port, &od_part, &back), 0);
        assert_int_equal(back.e[0].state, chain[i]);
        assert_int_equal(back.e[0].seq, 2);
        assert_int_equal(back.e[0].crc, aloft_otadata_crc(2));
        assert_int_equal(aloft_otadata_active(&back),
                         chain[i] == ALOFT_OTA_INVALID || chain[i] == ALOFT_OTA_ABORTED ? -1 : 0);
    }
    assert_string_equal(aloft_otadata_state_name(ALOFT_OTA_PENDING_VERIFY), "pending_verify");
    assert_string_equal(aloft_otadata_state_name(ALOFT_OTA_UNDEFINED), "undefined");
    aloft_posix_flash_close(&pf);
}

static void test_rejects_wrong_partition_size(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    setup_flash(&pf);
    struct aloft_part bad = od_part;
    bad.size = 0x1000;
    struct aloft_otadata od;
    assert_int_equal(aloft_otadata_read(&pf.port, &bad, &od), ALOFT_E_INVAL);
    aloft_posix_flash_close(&pf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc_vectors),
        cmocka_unit_test(test_initial_has_no_active_entry),
        cmocka_unit_test(test_entry_validity),
        cmocka_unit_test(test_active_picks_largest_seq_and_copy0_on_tie),
        cmocka_unit_test(test_select_writes_the_other_copy),
        cmocka_unit_test(test_write_state_transitions),
        cmocka_unit_test(test_rejects_wrong_partition_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
