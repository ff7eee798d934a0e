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

    /* selecting the slot the active entry names: the same seq, in the
     * other copy (ESP-IDF's choice); on a tie copy 0 is the active one */
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 0, 2, true), 0);
    assert_int_equal(od.e[0].seq, 3);
    assert_int_equal(aloft_otadata_active(&od), 0);
    /* with 3 slots from seq 3 (slot 2), slot 0 needs 4, slot 1 needs 5 */
    struct aloft_otadata copy = od;
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &copy, 0, 3, true), 0);
    assert_int_equal(copy.e[1].seq, 4);
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 1, 3, true), 0);
    assert_int_equal(od.e[1].seq, 5);

    /* what is on flash reads back as what we hold */
    struct aloft_otadata back;
    assert_int_equal(aloft_otadata_read(&pf.port, &od_part, &back), 0);
    assert_memory_equal(&back, &od, sizeof od);
    assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, 2, 2, true), ALOFT_E_INVAL);
    aloft_posix_flash_close(&pf);
}

/* ESP-IDF's esp_ota_set_boot_partition for an OTA slot (app_update's
 * esp_rewrite_ota_data), restated here from its source as the reference:
 * an entry counts when its seq is not 0xFFFFFFFF, its CRC matches and its
 * state is neither INVALID nor ABORTED; the active one has the larger seq,
 * copy 0 on a tie. The new seq is the smallest (id + 1) % n + i * n not
 * below the active seq (id + 1 with none active); it goes into the other
 * copy (copy 0 with none active), whose sector is erased and whose 32
 * bytes are rewritten with the label bytes they held. */
static void idf_set_boot(uint8_t *od, uint32_t id, uint32_t n, bool rollback)
{
    uint32_t seq[2], st[2];
    bool ok[2];
    for (int i = 0; i < 2; i++) {
        const uint8_t *e = od + i * 0x1000;
        seq[i] = (uint32_t)e[0] | (uint32_t)e[1] << 8 | (uint32_t)e[2] << 16 | (uint32_t)e[3] << 24;
        st[i] = (uint32_t)e[24] | (uint32_t)e[25] << 8 | (uint32_t)e[26] << 16 | (uint32_t)e[27] << 24;
        uint32_t crc = (uint32_t)e[28] | (uint32_t)e[29] << 8 | (uint32_t)e[30] << 16 | (uint32_t)e[31] << 24;
        ok[i] = seq[i] != 0xFFFFFFFFu && st[i] != 3 && st[i] != 4 && crc == aloft_otadata_crc(seq[i]);
    }
    int active = ok[0] && ok[1] ? (seq[0] >= seq[1] ? 0 : 1) : ok[0] ? 0 : ok[1] ? 1 : -1;
    int next = active < 0 ? 0 : !active;
    uint32_t s = id + 1;
    if (active >= 0) {
        uint32_t k = 0;
        while (seq[active] > (id + 1) % n + k * n)
            k++;
        s = (id + 1) % n + k * n;
    }
    uint8_t entry[32];
    memcpy(entry, od + next * 0x1000, 32);
    uint32_t state = rollback ? 0 : 0xFFFFFFFFu, crc = aloft_otadata_crc(s);
    for (int b = 0; b < 4; b++) {
        entry[b] = (uint8_t)(s >> (8 * b));
        entry[24 + b] = (uint8_t)(state >> (8 * b));
        entry[28 + b] = (uint8_t)(crc >> (8 * b));
    }
    memset(od + next * 0x1000, 0xFF, 0x1000);
    memcpy(od + next * 0x1000, entry, 32);
}

/* One copy's 32 bytes: erased, or an entry (crc_ok false: a wrong CRC);
 * a label of bytes other than 0xFF for odd seqs. */
static void put_entry(uint8_t *at, bool erased, uint32_t seq, uint32_t state, bool crc_ok)
{
    memset(at, 0xFF, 0x1000);
    if (erased)
        return;
    uint32_t crc = aloft_otadata_crc(seq) ^ (crc_ok ? 0 : 1);
    for (int b = 0; b < 4; b++) {
        at[b] = (uint8_t)(seq >> (8 * b));
        at[24 + b] = (uint8_t)(state >> (8 * b));
        at[28 + b] = (uint8_t)(crc >> (8 * b));
    }
    if (seq & 1)
        memcpy(at + 4, "label from a tool..", 20);
}

/* Every otadata the two copies can hold (erased, or an entry with seq
 * 1..9 or 16, each state, a good or a bad CRC) × 1 to 4 OTA slots × every
 * target slot × rollback on and off: aloft writes the same 8 KB that
 * esp_ota_set_boot_partition would, so ESP-IDF's bootloader and the rest
 * of the app (esp_ota_get_boot_partition, esp_ota_get_state_partition)
 * read what they would after ESP-IDF's own update. */
static void test_select_is_esp_idfs(void **state)
{
    (void)state;
    static const uint32_t seqs[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 16};
    static const uint32_t states[] = {ALOFT_OTA_NEW, ALOFT_OTA_PENDING_VERIFY, ALOFT_OTA_VALID, ALOFT_OTA_INVALID,
                                      ALOFT_OTA_ABORTED, ALOFT_OTA_UNDEFINED};
    enum { PER_COPY = 1 + 10 * 6 * 2 };
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 0x10000), 0);
    static uint8_t want[0x2000];
    unsigned compared = 0;
    for (int a = 0; a < PER_COPY; a++)
        for (int b = 0; b < PER_COPY; b++)
            for (uint32_t n = 1; n <= 4; n++)
                for (uint32_t id = 0; id < n; id++)
                    for (int rb = 0; rb < 2; rb++) {
                        int c[2] = {a, b};
                        for (int i = 0; i < 2; i++) {
                            int k = c[i] - 1;
                            put_entry(pf.mem + od_part.offset + i * 0x1000, k < 0, k < 0 ? 0 : seqs[k / 12],
                                      k < 0 ? 0 : states[k / 2 % 6], k < 0 || k % 2 == 0);
                        }
                        memcpy(want, pf.mem + od_part.offset, sizeof want);
                        idf_set_boot(want, id, n, rb);
                        struct aloft_otadata od;
                        assert_int_equal(aloft_otadata_read(&pf.port, &od_part, &od), 0);
                        assert_int_equal(aloft_otadata_select(&pf.port, &od_part, &od, id, n, rb), 0);
                        if (memcmp(pf.mem + od_part.offset, want, sizeof want))
                            fail_msg("copies %d/%d, %u slots, slot %u, rollback %d: not what ESP-IDF writes", a, b,
                                     (unsigned)n, (unsigned)id, rb);
                        compared++;
                    }
    assert_int_equal(compared, PER_COPY * PER_COPY * 10 * 2);
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
        cmocka_unit_test(test_select_is_esp_idfs),
        cmocka_unit_test(test_write_state_transitions),
        cmocka_unit_test(test_rejects_wrong_partition_size),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
