/* aloft tests: the partition table (core/part.c, core/part_csv.c) and the
 * `aloft part` commands, against ESP-IDF's own tables. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "testutil.h"

#include <cjson/cJSON.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloft/part.h"
#include "file.h"

#define OFF ALOFT_PART_TABLE_OFFSET
#define TBYTES ALOFT_PART_TABLE_BYTES
#define MB (1024u * 1024u)

/* ---- helpers ---- */

static void parse_csv_fixture(const char *rel, uint32_t table_offset, struct aloft_part_table *t)
{
    size_t len;
    uint8_t *csv = aloft_test_fixture(rel, &len);
    uint32_t line = 1234;
    assert_int_equal(aloft_part_csv_parse(t, (const char *)csv, len, table_offset, &line), 0);
    assert_int_equal(line, 0);
    free(csv);
}

static void parse_bin_fixture(const char *rel, struct aloft_part_table *t)
{
    size_t len;
    uint8_t *bin = aloft_test_fixture(rel, &len);
    assert_int_equal(len, TBYTES);
    assert_int_equal(aloft_part_parse(t, bin, len, OFF, 0), 0);
    free(bin);
}

static void assert_part(const struct aloft_part *p, const char *label, uint8_t type, uint8_t subtype,
                        uint32_t offset, uint32_t size, uint32_t flags)
{
    assert_non_null(p);
    assert_string_equal(p->label, label);
    assert_int_equal(p->type, type);
    assert_int_equal(p->subtype, subtype);
    assert_int_equal(p->offset, offset);
    assert_int_equal(p->size, size);
    assert_int_equal(p->flags, flags);
}

/* Build t (unvalidated: aloft_part_build does not check rules) and parse it
 * back, so every rule is exercised through the binary parser. */
static int reparse(const struct aloft_part_table *t, uint32_t table_offset, uint32_t flash_size)
{
    uint8_t bin[TBYTES];
    struct aloft_part_table back;
    assert_int_equal(aloft_part_build(t, bin, sizeof bin), TBYTES);
    return aloft_part_parse(&back, bin, sizeof bin, table_offset, flash_size);
}

static void set_label(struct aloft_part *p, const char *label)
{
    memset(p->label, 0, sizeof p->label);
    memcpy(p->label, label, strlen(label));
}

static int csv_parse_str(const char *csv, uint32_t *line, struct aloft_part_table *t)
{
    return aloft_part_csv_parse(t, csv, strlen(csv), OFF, line);
}

/* ---- ESP-IDF fixtures ---- */

static void assert_csv_builds(const char *csv_rel, const char *bin_rel)
{
    struct aloft_part_table t;
    size_t len;
    uint8_t *want = aloft_test_fixture(bin_rel, &len);
    uint8_t out[TBYTES];
    parse_csv_fixture(csv_rel, OFF, &t);
    assert_true(t.md5);
    assert_int_equal(aloft_part_build(&t, out, sizeof out), TBYTES);
    assert_int_equal(len, TBYTES);
    assert_memory_equal(out, want, TBYTES);
    free(want);
}

static void test_csv2bin_8mb_matches_esp_idf(void **state)
{
    (void)state;
    assert_csv_builds("esp-idf/partitions-8mb.csv", "esp-idf/partition-table-8mb.bin");
}

static void test_csv2bin_4mb_matches_esp_idf(void **state)
{
    (void)state;
    assert_csv_builds("esp-idf/partitions-4mb.csv", "esp-idf/partition-table-4mb.bin");
}

static void test_parse_8mb_bin(void **state)
{
    (void)state;
    struct aloft_part_table t;
    parse_bin_fixture("esp-idf/partition-table-8mb.bin", &t);
    assert_true(t.md5);
    assert_int_equal(t.count, 6);
    assert_part(&t.p[0], "nvs", ALOFT_PART_DATA, ALOFT_PART_NVS, 0x9000, 0x6000, 0);
    assert_part(&t.p[1], "otadata", ALOFT_PART_DATA, ALOFT_PART_OTADATA, 0xf000, 0x2000, 0);
    assert_part(&t.p[2], "phy_init", ALOFT_PART_DATA, ALOFT_PART_PHY, 0x11000, 0x1000, 0);
    assert_part(&t.p[3], "ota_0", ALOFT_PART_APP, ALOFT_PART_OTA_0, 0x20000, 0x200000, 0);
    assert_part(&t.p[4], "ota_1", ALOFT_PART_APP, ALOFT_PART_OTA_0 + 1, 0x220000, 0x200000, 0);
    assert_part(&t.p[5], "spiffs", ALOFT_PART_DATA, ALOFT_PART_SPIFFS, 0x420000, 0x1e0000, 0);
}

static const char utf8_label[] = "phy_\xd0\xb8\xd0\xbd\xd0\xb8\xd1\x82_";

static void test_utf8_label_round_trip(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bin = aloft_test_fixture("esp-idf/partitions-utf8-label.bin", &len);
    struct aloft_part_table t, back;
    uint8_t out[TBYTES];

    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), 0);
    assert_int_equal(t.count, 3);
    assert_part(&t.p[1], utf8_label, ALOFT_PART_DATA, ALOFT_PART_PHY, 0xf000, 0x1000, 0);
    assert_non_null(aloft_part_find_label(&t, utf8_label));
    assert_int_equal(aloft_part_build(&t, out, sizeof out), TBYTES);
    assert_memory_equal(out, bin, TBYTES);

    /* Through CSV: written as raw bytes, read back to the same table. */
    char csv[ALOFT_PART_CSV_MAX];
    int n = aloft_part_csv_write(&t, csv, sizeof csv);
    assert_true(n > 0);
    assert_non_null(strstr(csv, utf8_label));
    uint32_t line;
    assert_int_equal(aloft_part_csv_parse(&back, csv, (size_t)n, OFF, &line), 0);
    memset(out, 0, sizeof out);
    assert_int_equal(aloft_part_build(&back, out, sizeof out), TBYTES);
    assert_memory_equal(out, bin, TBYTES);
    free(bin);
}

static void test_bin_csv_bin_8mb(void **state)
{
    (void)state;
    struct aloft_part_table t, back;
    char csv[ALOFT_PART_CSV_MAX];
    uint8_t a[TBYTES], b[TBYTES];
    parse_bin_fixture("esp-idf/partition-table-8mb.bin", &t);
    int n = aloft_part_csv_write(&t, csv, sizeof csv);
    assert_true(n > 0);
    assert_int_equal(aloft_part_csv_parse(&back, csv, (size_t)n, OFF, NULL), 0);
    assert_int_equal(aloft_part_build(&t, a, sizeof a), TBYTES);
    assert_int_equal(aloft_part_build(&back, b, sizeof b), TBYTES);
    assert_memory_equal(a, b, TBYTES);
}

/* gen_esp32part.py places empty offsets after the previous partition,
 * starting at table_offset + 0x1000, apps on 64 KB, the rest on 4 KB. */
static void test_two_ota_auto_placement(void **state)
{
    (void)state;
    struct aloft_part_table t;
    parse_csv_fixture("esp-idf/partitions_two_ota.csv", OFF, &t);
    assert_int_equal(t.count, 6);
    assert_part(&t.p[0], "nvs", ALOFT_PART_DATA, ALOFT_PART_NVS, 0x9000, 0x4000, 0);
    assert_part(&t.p[1], "otadata", ALOFT_PART_DATA, ALOFT_PART_OTADATA, 0xd000, 0x2000, 0);
    assert_part(&t.p[2], "phy_init", ALOFT_PART_DATA, ALOFT_PART_PHY, 0xf000, 0x1000, 0);
    assert_part(&t.p[3], "factory", ALOFT_PART_APP, ALOFT_PART_FACTORY, 0x10000, MB, 0);
    assert_part(&t.p[4], "ota_0", ALOFT_PART_APP, ALOFT_PART_OTA_0, 0x110000, MB, 0);
    assert_part(&t.p[5], "ota_1", ALOFT_PART_APP, ALOFT_PART_OTA_0 + 1, 0x210000, MB, 0);
}

static void test_table_offset_moves_placement(void **state)
{
    (void)state;
    struct aloft_part_table t;
    parse_csv_fixture("esp-idf/partitions_two_ota.csv", 0x10000, &t);
    assert_int_equal(t.p[0].offset, 0x11000);
    assert_int_equal(t.p[1].offset, 0x15000);
    assert_int_equal(t.p[2].offset, 0x17000);
    assert_int_equal(t.p[3].offset, 0x20000); /* app: next 64 KB boundary */
    assert_int_equal(t.p[4].offset, 0x120000);
    assert_int_equal(t.p[5].offset, 0x220000);
    assert_int_equal(aloft_part_validate(&t, 0x10000, 0), 0);
    /* The same table is not valid with the table at 0x18000: nvs sits below. */
    assert_int_equal(aloft_part_validate(&t, 0x18000, 0), ALOFT_E_PART_RANGE);
}

/* ---- binary format errors ---- */

static void test_bad_magic(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bin = aloft_test_fixture("esp-idf/partition-table-8mb.bin", &len);
    struct aloft_part_table t;
    bin[32] = 0xAB; /* entry 1 */
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), ALOFT_E_PART_MAGIC);
    bin[32] = 0xAA;
    bin[32 + 1] = 0x51;
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), ALOFT_E_PART_MAGIC);
    bin[32 + 1] = 0x50;
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), 0);
    free(bin);
}

static void test_md5_checked(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bin = aloft_test_fixture("esp-idf/partition-table-8mb.bin", &len);
    struct aloft_part_table t;
    const size_t md5_at = 6 * 32;
    assert_int_equal(bin[md5_at], 0xEB);

    bin[md5_at + 20] ^= 1; /* the digest */
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), ALOFT_E_PART_MD5);
    bin[md5_at + 20] ^= 1;
    bin[2 * 32 + 8] ^= 0x10; /* phy_init's size, MD5 left as it was */
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), ALOFT_E_PART_MD5);
    bin[2 * 32 + 8] ^= 0x10;
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), 0);

    /* A second MD5 entry, itself correct for the bytes before it. */
    uint8_t *second = bin + md5_at + 32;
    struct aloft_md5 m;
    memcpy(second, bin + md5_at, 16);
    aloft_md5_init(&m);
    aloft_md5_update(&m, bin, md5_at + 32);
    aloft_md5_final(&m, second + 16);
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), ALOFT_E_PART_MD5);
    free(bin);
}

static void test_without_md5(void **state)
{
    (void)state;
    struct aloft_part_table t, back;
    uint8_t bin[TBYTES];
    parse_bin_fixture("esp-idf/partition-table-8mb.bin", &t);
    t.md5 = false;
    assert_int_equal(aloft_part_build(&t, bin, sizeof bin), TBYTES);
    for (size_t i = 6 * 32; i < TBYTES; i++)
        assert_int_equal(bin[i], 0xFF);
    assert_int_equal(aloft_part_parse(&back, bin, sizeof bin, OFF, 0), 0);
    assert_false(back.md5);
    assert_int_equal(back.count, 6);
    assert_part(&back.p[5], "spiffs", ALOFT_PART_DATA, ALOFT_PART_SPIFFS, 0x420000, 0x1e0000, 0);
}

/* The bootloader ends the table on FF FF magic with type and subtype FF. */
static void test_terminator_as_bootloader(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bin = aloft_test_fixture("esp-idf/partition-table-8mb.bin", &len);
    struct aloft_part_table t;
    uint8_t *term = bin + 7 * 32;
    term[4] = 0x12; /* the rest of the terminator is not looked at */
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), 0);
    assert_int_equal(t.count, 6);
    term[3] = 0x00; /* FF FF FF 00: neither an end nor an entry */
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), ALOFT_E_PART_MAGIC);
    free(bin);
}

static void test_missing_terminator(void **state)
{
    (void)state;
    size_t len;
    uint8_t *bin = aloft_test_fixture("esp-idf/partition-table-8mb.bin", &len);
    struct aloft_part_table t;
    /* Six entries and the MD5 entry, then the data stops. */
    assert_int_equal(aloft_part_parse(&t, bin, 7 * 32, OFF, 0), ALOFT_E_TRUNCATED);
    assert_int_equal(aloft_part_parse(&t, bin, 7 * 32 + 31, OFF, 0), ALOFT_E_TRUNCATED);
    assert_int_equal(aloft_part_parse(&t, bin, 0, OFF, 0), ALOFT_E_TRUNCATED);
    assert_int_equal(aloft_part_parse(&t, bin, 8 * 32, OFF, 0), 0);
    free(bin);
}

static void fill_small_parts(struct aloft_part_table *t, uint32_t n)
{
    memset(t, 0, sizeof *t);
    for (uint32_t i = 0; i < n; i++) {
        struct aloft_part *p = &t->p[i];
        p->type = ALOFT_PART_DATA;
        p->subtype = ALOFT_PART_UNDEFINED;
        p->offset = 0x9000 + i * 0x1000;
        p->size = 0x1000;
        snprintf(p->label, sizeof p->label, "p%u", (unsigned)i);
    }
    t->count = n;
}

static void test_too_many_entries(void **state)
{
    (void)state;
    struct aloft_part_table t, back;
    uint8_t bin[2 * TBYTES];

    fill_small_parts(&t, ALOFT_PART_MAX);
    assert_int_equal(aloft_part_validate(&t, OFF, 0), 0);
    assert_int_equal(reparse(&t, OFF, 0), 0);
    t.md5 = true; /* 95 entries leave no room for MD5 + terminator */
    assert_int_equal(aloft_part_validate(&t, OFF, 0), ALOFT_E_TOOMANY);
    assert_int_equal(aloft_part_build(&t, bin, sizeof bin), ALOFT_E_TOOMANY);
    t.count = ALOFT_PART_MAX - 1;
    assert_int_equal(reparse(&t, OFF, 0), 0);

    /* Raw: a 96th entry where the terminator must be. */
    t.md5 = false;
    t.count = ALOFT_PART_MAX;
    memset(bin, 0xFF, sizeof bin);
    assert_int_equal(aloft_part_build(&t, bin, sizeof bin), TBYTES);
    memcpy(bin + TBYTES - 32, bin, 32); /* slot 95 holds an entry, slot 96 FF */
    assert_int_equal(aloft_part_parse(&back, bin, sizeof bin, OFF, 0), ALOFT_E_TOOMANY);
}

/* ---- validation rules, through the binary parser ---- */

static void base(struct aloft_part_table *t)
{
    parse_bin_fixture("esp-idf/partition-table-8mb.bin", t);
}

static void test_misaligned(void **state)
{
    (void)state;
    struct aloft_part_table t;
    uint32_t bad = 99;

    base(&t); /* app offset not on 64 KB (size shrunk so nothing overlaps) */
    t.p[3].offset = 0x21000;
    t.p[3].size = 0x1ff000;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_ALIGN);
    assert_int_equal(aloft_part_check(&t, OFF, 0, &bad), ALOFT_E_PART_ALIGN);
    assert_int_equal(bad, 3);

    base(&t); /* data offset not on 4 KB */
    t.p[2].offset = 0x11800;
    t.p[2].size = 0x800;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_ALIGN);

    base(&t); /* app size not a multiple of 4 KB */
    t.p[4].size = 0x1ff800;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_ALIGN);

    base(&t); /* data sizes are free in gen_esp32part.py */
    t.p[2].size = 0x800;
    assert_int_equal(reparse(&t, OFF, 0), 0);
}

static void test_overlap(void **state)
{
    (void)state;
    struct aloft_part_table t;
    uint32_t bad = 99;
    base(&t);
    t.p[2].size = 0x10000; /* phy_init 0x11000..0x21000 runs into ota_0 */
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_OVERLAP);
    assert_int_equal(aloft_part_check(&t, OFF, 0, &bad), ALOFT_E_PART_OVERLAP);
    assert_int_equal(bad, 3);
    t.p[2].size = 0xf000; /* ends exactly where ota_0 starts */
    assert_int_equal(reparse(&t, OFF, 0), 0);
}

static void test_labels(void **state)
{
    (void)state;
    struct aloft_part_table t, back;
    uint8_t bin[TBYTES];
    uint32_t bad = 99;

    base(&t);
    set_label(&t.p[4], "ota_0");
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_LABEL);
    assert_int_equal(aloft_part_check(&t, OFF, 0, &bad), ALOFT_E_PART_LABEL);
    assert_int_equal(bad, 4);

    base(&t);
    set_label(&t.p[1], "");
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_LABEL);

    /* All 16 bytes used, no NUL in the entry: valid and kept whole. */
    base(&t);
    set_label(&t.p[5], "abcdefghijklmnop");
    assert_int_equal(aloft_part_build(&t, bin, sizeof bin), TBYTES);
    assert_memory_equal(bin + 5 * 32 + 12, "abcdefghijklmnop", 16);
    assert_int_equal(aloft_part_parse(&back, bin, sizeof bin, OFF, 0), 0);
    assert_string_equal(back.p[5].label, "abcdefghijklmnop");
    assert_non_null(aloft_part_find_label(&back, "abcdefghijklmnop"));
    assert_null(aloft_part_find_label(&back, "abcdefghijklmno"));
    uint8_t again[TBYTES];
    assert_int_equal(aloft_part_build(&back, again, sizeof again), TBYTES);
    assert_memory_equal(again, bin, TBYTES);
}

static void test_range(void **state)
{
    (void)state;
    struct aloft_part_table t;
    base(&t); /* spiffs ends at 6 MB */
    assert_int_equal(reparse(&t, OFF, 4 * MB), ALOFT_E_PART_RANGE);
    assert_int_equal(reparse(&t, OFF, 0x5ff000), ALOFT_E_PART_RANGE);
    assert_int_equal(reparse(&t, OFF, 6 * MB), 0);
    assert_int_equal(reparse(&t, OFF, 8 * MB), 0);

    /* Before the end of the table sector. */
    assert_int_equal(reparse(&t, 0x9000, 0), ALOFT_E_PART_RANGE);
    t.p[0].offset = 0x8000;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_RANGE);

    base(&t); /* offset + size past 4 GB */
    t.p[5].size = 0xfffe0000;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_RANGE);

    /* The primary partition_table entry describes the table itself. */
    base(&t);
    struct aloft_part *pt = &t.p[t.count++];
    pt->type = ALOFT_PART_TABLE;
    pt->subtype = 0;
    pt->offset = OFF;
    pt->size = 0x1000;
    set_label(pt, "partition_table");
    assert_int_equal(reparse(&t, OFF, 0), 0);
    pt->subtype = 1; /* an "ota" copy of the table may not sit there */
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_RANGE);
}

static void test_kind_rules(void **state)
{
    (void)state;
    struct aloft_part_table t;
    uint32_t bad = 99;

    base(&t);
    t.p[1].size = 0x1000;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_KIND);

    base(&t); /* a second otadata */
    t.p[2].subtype = ALOFT_PART_OTADATA;
    t.p[2].size = 0x2000;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_KIND);
    assert_int_equal(aloft_part_check(&t, OFF, 0, &bad), ALOFT_E_PART_KIND);
    assert_int_equal(bad, 2);

    base(&t); /* ota_0 and ota_2: a gap */
    t.p[4].subtype = ALOFT_PART_OTA_0 + 2;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_KIND);
    assert_int_equal(aloft_part_check(&t, OFF, 0, &bad), ALOFT_E_PART_KIND);
    assert_int_equal(bad, 4);

    base(&t); /* ota_0 twice */
    t.p[4].subtype = ALOFT_PART_OTA_0;
    assert_int_equal(reparse(&t, OFF, 0), ALOFT_E_PART_KIND);

    base(&t); /* ota_1 first in the table, ota_0 later: still ota_0..ota_1 */
    t.p[3].subtype = ALOFT_PART_OTA_0 + 1;
    t.p[4].subtype = ALOFT_PART_OTA_0;
    assert_int_equal(reparse(&t, OFF, 0), 0);
}

static void test_build_limits(void **state)
{
    (void)state;
    struct aloft_part_table t;
    uint8_t bin[TBYTES];
    base(&t);
    assert_int_equal(aloft_part_build(&t, bin, TBYTES - 1), ALOFT_E_NOSPC);
    memset(bin, 0, sizeof bin);
    assert_int_equal(aloft_part_build(&t, bin, sizeof bin), TBYTES);
    assert_int_equal(bin[TBYTES - 1], 0xFF); /* padded with 0xFF to the end */
}

/* ---- CSV syntax ---- */

struct csv_case {
    const char *csv;
    int rc;
    uint32_t line;
};

static void test_csv_errors_with_lines(void **state)
{
    (void)state;
    static const struct csv_case cases[] = {
        {"# c\n\nnvs, data, nvs, 0x9000, 0x6000,\nfoo, bogus, nvs, , 0x1000,\n", ALOFT_E_PART_TYPE, 4},
        {"nvs, data, nvs, 0x9000, 0x6000\r\n# x\r\nphy, data, nosuch, , 4K\r\n", ALOFT_E_PART_TYPE, 3},
        {"nvs, data, nvs, 0x9000, 0x6000\r# x\rphy, data, phy, , 4Q\r", ALOFT_E_SYNTAX, 3},
        {"a, app, factory, 0x10000, 1Q\n", ALOFT_E_SYNTAX, 1},
        {"\n\n  nvs, data, nvs, 0x9000,\n", ALOFT_E_SYNTAX, 3},
        {"nvs, data, nvs, , 0x6000, encrypted:bogus\n", ALOFT_E_SYNTAX, 1},
        {"nvs, data, nvs, , 0x6000, encrypted: readonly\n", ALOFT_E_SYNTAX, 1},
        {"abcdefghijklmnopq, data, nvs, , 0x6000\n", ALOFT_E_PART_LABEL, 1},
        {"#\n, data, nvs, , 0x6000\n", ALOFT_E_PART_LABEL, 2},
        {"nvs, data, nvs, , 0x6000\nphy, data, phy, 0xa000, 0x1000\n", ALOFT_E_PART_OVERLAP, 2},
        /* gen_esp32part.py wants explicit offsets in address order. */
        {"a, data, nvs, 0x20000, 24K\nb, data, phy, 0x10000, 4K\n", ALOFT_E_PART_OVERLAP, 2},
        {"nvs, data, nvs, 0x8000, 0x6000\n", ALOFT_E_PART_RANGE, 1},
        {"f, app, , , 1M\n", ALOFT_E_PART_TYPE, 1},
        {"nvs, data, nvs, , 0x6000\n\nnvs, data, phy, , 0x1000\n", ALOFT_E_PART_LABEL, 3},
        {"n, data, nvs, , 0x2000\n", ALOFT_E_PART_KIND, 1},
        {"o, data, ota, , 0x2000, readonly\n", ALOFT_E_PART_KIND, 1},
        {"c, data, coredump, , 64K, readonly\n", ALOFT_E_PART_KIND, 1},
        {"x, data, nvs, , 24K\no, data, ota, , 0x1000\n", ALOFT_E_PART_KIND, 2},
        {"a, app, factory, 0x10000, 0x100800\n", ALOFT_E_PART_ALIGN, 1},
        {"a, app, factory, 0x18000, 1M\n", ALOFT_E_PART_ALIGN, 1},
        {"a, app, factory, , 0x100000000\n", ALOFT_E_PART_RANGE, 1},
        {"a, app, factory, , 4096M\n", ALOFT_E_PART_RANGE, 1},
        {"a, 256, 0, , 4K\n", ALOFT_E_PART_TYPE, 1},
        {"a, app, 0x100, , 4K\n", ALOFT_E_PART_TYPE, 1},
        {"a, app, factory, 010, 1M\n", ALOFT_E_SYNTAX, 1},
        {"a, app, factory, 0x, 1M\n", ALOFT_E_SYNTAX, 1},
        {"a, , factory, , 1M\n", ALOFT_E_SYNTAX, 1},
        {"bl, bootloader, primary, , 0x7000\n", ALOFT_E_SYNTAX, 1},
        {"\xEF\xBB\xBFnvs, data, nvs, , 24K\nota_0, app, ota_0, , 1M\nota_2, app, ota_2, , 1M\n",
         ALOFT_E_PART_KIND, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct aloft_part_table t;
        uint32_t line = 0;
        int rc = csv_parse_str(cases[i].csv, &line, &t);
        if (rc != cases[i].rc || line != cases[i].line)
            print_error("case %zu: rc %d line %u, want rc %d line %u\n", i, rc, (unsigned)line,
                        cases[i].rc, (unsigned)cases[i].line);
        assert_int_equal(rc, cases[i].rc);
        assert_int_equal(line, cases[i].line);
    }
}

static void test_csv_features(void **state)
{
    (void)state;
    static const char csv[] =
        "# comment\n"
        "   # indented comment\n"
        "NVS_Part ,  DATA , NVS , 0x9000 , 24k , \n"
        "fw, app, ota_0, , 1M, encrypted\n"
        "fw2, 0, 0x11, , 0x100000, readonly:encrypted\n"
        "store, data, LittleFS, , 1m, readonly\n"
        "raw, 0x40, 7, 0x400000, 4096, , extra fields are ignored\n"
        "e, data, , , 4K\n"
        "ro_nvs, data, nvs, , 0x1000, readonly\n"
        "pt, partition_table, primary, ,\n"
        "bl, bootloader, primary, 0x0, 0x8000\n"
        "\t\n";
    struct aloft_part_table t;
    uint32_t line = 77;
    assert_int_equal(csv_parse_str(csv, &line, &t), 0);
    assert_int_equal(line, 0);
    assert_int_equal(t.count, 9);
    assert_part(&t.p[0], "NVS_Part", ALOFT_PART_DATA, ALOFT_PART_NVS, 0x9000, 0x6000, 0);
    assert_part(&t.p[1], "fw", ALOFT_PART_APP, ALOFT_PART_OTA_0, 0x10000, MB, ALOFT_PART_FLAG_ENCRYPTED);
    assert_part(&t.p[2], "fw2", ALOFT_PART_APP, ALOFT_PART_OTA_0 + 1, 0x110000, MB,
                ALOFT_PART_FLAG_ENCRYPTED | ALOFT_PART_FLAG_READONLY);
    assert_part(&t.p[3], "store", ALOFT_PART_DATA, ALOFT_PART_LITTLEFS, 0x210000, MB, ALOFT_PART_FLAG_READONLY);
    assert_part(&t.p[4], "raw", 0x40, 7, 0x400000, 0x1000, 0);
    assert_part(&t.p[5], "e", ALOFT_PART_DATA, ALOFT_PART_UNDEFINED, 0x401000, 0x1000, 0);
    assert_part(&t.p[6], "ro_nvs", ALOFT_PART_DATA, ALOFT_PART_NVS, 0x402000, 0x1000, ALOFT_PART_FLAG_READONLY);
    assert_part(&t.p[7], "pt", ALOFT_PART_TABLE, 0, OFF, 0x1000, 0);
    assert_part(&t.p[8], "bl", ALOFT_PART_BOOTLOADER, 0, 0, 0x8000, 0);
    assert_true(t.md5);

    /* A UTF-8 byte order mark is not part of the first label. */
    assert_int_equal(csv_parse_str("\xEF\xBB\xBFnvs, data, nvs, , 24K\n", &line, &t), 0);
    assert_string_equal(t.p[0].label, "nvs");
}

/* A comment line, then n small data partitions. */
static size_t many_rows(char *csv, size_t cap, unsigned n)
{
    size_t len = (size_t)snprintf(csv, cap, "# many\n");
    for (unsigned i = 0; i < n; i++)
        len += (size_t)snprintf(csv + len, cap - len, "p%u, data, undefined, , 4K\n", i);
    return len;
}

static void test_csv_too_many(void **state)
{
    (void)state;
    static char csv[100 * 40];
    struct aloft_part_table t;
    uint32_t line = 0;
    size_t n = many_rows(csv, sizeof csv, 96);
    assert_int_equal(aloft_part_csv_parse(&t, csv, n, OFF, &line), ALOFT_E_TOOMANY);
    assert_int_equal(line, 97);

    /* 95 fit in the table only without the MD5 entry. */
    n = many_rows(csv, sizeof csv, 95);
    assert_int_equal(aloft_part_csv_parse(&t, csv, n, OFF, &line), ALOFT_E_TOOMANY);
    assert_int_equal(line, 96);
    assert_int_equal(t.count, 95);
    t.md5 = false;
    assert_int_equal(aloft_part_validate(&t, OFF, 0), 0);
    n = many_rows(csv, sizeof csv, 94);
    assert_int_equal(aloft_part_csv_parse(&t, csv, n, OFF, &line), 0);
}

static void test_csv_write_format(void **state)
{
    (void)state;
    struct aloft_part_table t;
    char csv[ALOFT_PART_CSV_MAX];
    parse_bin_fixture("esp-idf/partition-table-8mb.bin", &t);
    int n = aloft_part_csv_write(&t, csv, sizeof csv);
    /* What gen_esp32part.py prints for this table. */
    static const char want[] = "# ESP-IDF Partition Table\n"
                               "# Name, Type, SubType, Offset, Size, Flags\n"
                               "nvs,data,nvs,0x9000,24K,\n"
                               "otadata,data,ota,0xf000,8K,\n"
                               "phy_init,data,phy,0x11000,4K,\n"
                               "ota_0,app,ota_0,0x20000,2M,\n"
                               "ota_1,app,ota_1,0x220000,2M,\n"
                               "spiffs,data,spiffs,0x420000,1920K,\n";
    assert_string_equal(csv, want);
    assert_int_equal(n, strlen(want));

    /* Numbers for unnamed kinds, hex for odd sizes, flags, unknown bits dropped. */
    memset(&t, 0, sizeof t);
    t.count = 2;
    t.p[0] = (struct aloft_part){0x40, 7, 0x10000, 0x1234, "raw", ALOFT_PART_FLAG_READONLY | 0x10};
    t.p[1] = (struct aloft_part){ALOFT_PART_APP, 0x21, 0x20000, 0x1800, "x", 3};
    n = aloft_part_csv_write(&t, csv, sizeof csv);
    assert_true(n > 0);
    assert_non_null(strstr(csv, "\nraw,64,7,0x10000,0x1234,readonly\n"));
    assert_non_null(strstr(csv, "\nx,app,33,0x20000,6K,encrypted:readonly\n"));

    /* Exactly enough room, and one byte less. */
    assert_int_equal(aloft_part_csv_write(&t, csv, (size_t)n + 1), n);
    assert_int_equal(aloft_part_csv_write(&t, csv, (size_t)n), ALOFT_E_NOSPC);
    assert_int_equal(aloft_part_csv_write(&t, csv, 0), ALOFT_E_NOSPC);
}

static void test_csv_write_refuses_unreadable_labels(void **state)
{
    (void)state;
    static const char *const labels[] = {"a,b", " lead", "trail ", "#hash", "new\nline"};
    struct aloft_part_table t;
    char csv[ALOFT_PART_CSV_MAX];
    for (size_t i = 0; i < sizeof labels / sizeof labels[0]; i++) {
        base(&t);
        set_label(&t.p[2], labels[i]);
        assert_int_equal(aloft_part_csv_write(&t, csv, sizeof csv), ALOFT_E_PART_LABEL);
    }
    set_label(&t.p[2], "in side#");
    assert_true(aloft_part_csv_write(&t, csv, sizeof csv) > 0);
}

static void test_csv_max_is_enough(void **state)
{
    (void)state;
    struct aloft_part_table t;
    static char csv[ALOFT_PART_CSV_MAX];
    memset(&t, 0, sizeof t);
    t.count = ALOFT_PART_MAX;
    for (uint32_t i = 0; i < t.count; i++)
        t.p[i] = (struct aloft_part){ALOFT_PART_DATA, ALOFT_PART_UNDEFINED, 0xfff00000u + i, 0xfffffbffu,
                                     "0123456789abcdef", 3};
    int n = aloft_part_csv_write(&t, csv, sizeof csv);
    assert_true(n > 0 && (size_t)n < ALOFT_PART_CSV_MAX);
}

/* ---- names and lookups ---- */

static void test_names(void **state)
{
    (void)state;
    assert_string_equal(aloft_part_type_name(ALOFT_PART_APP), "app");
    assert_string_equal(aloft_part_type_name(ALOFT_PART_TABLE), "partition_table");
    assert_null(aloft_part_type_name(0x40));
    assert_string_equal(aloft_part_subtype_name(ALOFT_PART_APP, 0x1f), "ota_15");
    assert_string_equal(aloft_part_subtype_name(ALOFT_PART_APP, ALOFT_PART_TEST), "test");
    assert_string_equal(aloft_part_subtype_name(ALOFT_PART_DATA, ALOFT_PART_OTADATA), "ota");
    assert_string_equal(aloft_part_subtype_name(ALOFT_PART_DATA, ALOFT_PART_LITTLEFS), "littlefs");
    assert_string_equal(aloft_part_subtype_name(ALOFT_PART_DATA, ALOFT_PART_NVS_KEYS), "nvs_keys");
    assert_null(aloft_part_subtype_name(ALOFT_PART_APP, 0x05));
    assert_null(aloft_part_subtype_name(ALOFT_PART_DATA, 0x10));
    assert_null(aloft_part_subtype_name(0x40, 0));
}

static void test_lookups(void **state)
{
    (void)state;
    struct aloft_part_table t;
    base(&t);
    assert_ptr_equal(aloft_part_find_label(&t, "ota_1"), &t.p[4]);
    assert_null(aloft_part_find_label(&t, "ota_"));
    assert_null(aloft_part_find_label(&t, "nope"));
    assert_ptr_equal(aloft_part_find(&t, ALOFT_PART_DATA, ALOFT_PART_OTADATA), &t.p[1]);
    assert_null(aloft_part_find(&t, ALOFT_PART_APP, ALOFT_PART_FACTORY));
    assert_int_equal(aloft_part_ota_count(&t), 2);
    assert_ptr_equal(aloft_part_ota(&t, 0), &t.p[3]);
    assert_ptr_equal(aloft_part_ota(&t, 1), &t.p[4]);
    assert_null(aloft_part_ota(&t, 2));
    assert_int_equal(aloft_part_ota_index(&t.p[4]), 1);
    assert_int_equal(aloft_part_ota_index(&t.p[0]), -1);
    assert_int_equal(aloft_part_ota_index(NULL), -1);

    /* Subtype order, not table order. */
    t.p[3].subtype = ALOFT_PART_OTA_0 + 1;
    t.p[4].subtype = ALOFT_PART_OTA_0;
    assert_ptr_equal(aloft_part_ota(&t, 0), &t.p[4]);
}

static void test_next_update(void **state)
{
    (void)state;
    struct aloft_part_table t;
    base(&t);
    const struct aloft_part *ota0 = &t.p[3], *ota1 = &t.p[4];
    assert_ptr_equal(aloft_part_next_update(&t, ota0), ota1);
    assert_ptr_equal(aloft_part_next_update(&t, ota1), ota0);
    assert_ptr_equal(aloft_part_next_update(&t, NULL), ota0);

    /* A copy of the running entry (e.g. from another parse) is recognised. */
    struct aloft_part running = *ota0;
    assert_ptr_equal(aloft_part_next_update(&t, &running), ota1);
    running.offset = 0x30000; /* not in this table */
    assert_ptr_equal(aloft_part_next_update(&t, &running), ota0);

    parse_csv_fixture("esp-idf/partitions_two_ota.csv", OFF, &t);
    assert_ptr_equal(aloft_part_next_update(&t, aloft_part_find_label(&t, "factory")),
                     aloft_part_find_label(&t, "ota_0"));
    assert_ptr_equal(aloft_part_next_update(&t, aloft_part_find_label(&t, "ota_1")),
                     aloft_part_find_label(&t, "ota_0"));

    /* No ota slot at all: nothing to update. */
    parse_bin_fixture("esp-idf/partitions-utf8-label.bin", &t);
    assert_int_equal(aloft_part_ota_count(&t), 0);
    assert_null(aloft_part_next_update(&t, aloft_part_find_label(&t, "factory")));
    assert_null(aloft_part_next_update(&t, NULL));

    /* One ota slot: from factory it is the target; running it, there is none. */
    assert_int_equal(csv_parse_str("nvs, data, nvs, , 24K\nfactory, app, factory, , 1M\n"
                                   "ota_0, app, ota_0, , 1M\n",
                                   NULL, &t),
                     0);
    assert_ptr_equal(aloft_part_next_update(&t, &t.p[1]), &t.p[2]);
    assert_null(aloft_part_next_update(&t, &t.p[2]));
}

/* ---- the CLI ---- */

static bool have_cli(void)
{
    return access(ALOFT_BIN "/aloft", X_OK) == 0;
}

#define NEED_CLI()                                                                                 \
    do {                                                                                           \
        if (!have_cli()) {                                                                         \
            print_message("aloft CLI not built; skipping\n");                                      \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

static char *fixture_path(const char *rel)
{
    static char path[4][1024];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", ALOFT_FIXTURES, rel);
    return p;
}

static char *tmp_path(const char *name)
{
    static char path[4][1024];
    static int next;
    char *p = path[next++ % 4];
    snprintf(p, sizeof path[0], "%s/%s", aloft_test_tmpdir(), name);
    return p;
}

static void write_tmp(const char *name, const char *text)
{
    assert_int_equal(aloft_file_write(tmp_path(name), text, strlen(text)), 0);
}

static void assert_file_equals_fixture(const char *path, const char *rel)
{
    uint8_t *got, *want;
    size_t glen, wlen;
    assert_int_equal(aloft_file_read(path, &got, &glen), 0);
    want = aloft_test_fixture(rel, &wlen);
    assert_int_equal(glen, wlen);
    assert_memory_equal(got, want, wlen);
    free(got);
    free(want);
}

static void test_cli_csv2bin(void **state)
{
    (void)state;
    NEED_CLI();
    const char *out8 = tmp_path("8mb.bin");
    const char *a8[] = {"aloft", "part", "csv2bin", fixture_path("esp-idf/partitions-8mb.csv"), "-o", out8, NULL};
    assert_int_equal(aloft_test_run(NULL, a8), 0);
    assert_file_equals_fixture(out8, "esp-idf/partition-table-8mb.bin");

    const char *out4 = tmp_path("4mb.bin");
    const char *a4[] = {"aloft", "part", "csv2bin", "--flash-size", "4MB",
                        fixture_path("esp-idf/partitions-4mb.csv"), "--output", out4, NULL};
    assert_int_equal(aloft_test_run(NULL, a4), 0);
    assert_file_equals_fixture(out4, "esp-idf/partition-table-4mb.bin");
}

static void test_cli_csv2bin_options(void **state)
{
    (void)state;
    NEED_CLI();
    struct aloft_part_table t;
    uint8_t *bin;
    size_t len;

    const char *nomd5 = tmp_path("nomd5.bin");
    const char *a1[] = {"aloft", "part", "csv2bin", "--no-md5", fixture_path("esp-idf/partitions-8mb.csv"),
                        "-o", nomd5, NULL};
    assert_int_equal(aloft_test_run(NULL, a1), 0);
    assert_int_equal(aloft_file_read(nomd5, &bin, &len), 0);
    assert_int_equal(len, TBYTES);
    assert_int_equal(aloft_part_parse(&t, bin, len, OFF, 0), 0);
    assert_false(t.md5);
    assert_int_equal(t.count, 6);
    free(bin);

    const char *moved = tmp_path("moved.bin");
    const char *a2[] = {"aloft", "part", "csv2bin", "--offset", "0x10000",
                        fixture_path("esp-idf/partitions_two_ota.csv"), "-o", moved, NULL};
    assert_int_equal(aloft_test_run(NULL, a2), 0);
    assert_int_equal(aloft_file_read(moved, &bin, &len), 0);
    assert_int_equal(aloft_part_parse(&t, bin, len, 0x10000, 0), 0);
    assert_int_equal(t.p[0].offset, 0x11000);
    assert_int_equal(t.p[3].offset, 0x20000);
    free(bin);

    /* 6 MB of partitions do not fit a 4 MB flash: no output file. */
    const char *toobig = tmp_path("toobig.bin");
    const char *a3[] = {"aloft", "part", "csv2bin", "--flash-size", "4M",
                        fixture_path("esp-idf/partitions-8mb.csv"), "-o", toobig, NULL};
    assert_int_equal(aloft_test_run(NULL, a3), 1);
    assert_int_not_equal(access(toobig, F_OK), 0);
}

static void test_cli_errors_and_usage(void **state)
{
    (void)state;
    NEED_CLI();
    char *out = NULL;
    const char *bad_csv = tmp_path("bad.csv");
    write_tmp("bad.csv", "nvs, data, nvs, , 24K\nfw, app, nosuch, , 1M\n");
    const char *a1[] = {"aloft", "part", "csv2bin", bad_csv, "-o", tmp_path("bad.bin"), NULL};
    assert_int_equal(aloft_test_run(NULL, a1), 1);

    const char *a2[] = {"aloft", "part", "csv2bin", fixture_path("esp-idf/partitions-8mb.csv"), NULL};
    assert_int_equal(aloft_test_run(NULL, a2), 2); /* no -o */
    const char *a3[] = {"aloft", "part", "csv2bin", "--bogus", "x.csv", "-o", "y", NULL};
    assert_int_equal(aloft_test_run(NULL, a3), 2);
    const char *a4[] = {"aloft", "part", "csv2bin", "--offset", "0x8800", "x.csv", "-o", "y", NULL};
    assert_int_equal(aloft_test_run(NULL, a4), 2);
    const char *a5[] = {"aloft", "part", "bin2csv", NULL};
    assert_int_equal(aloft_test_run(NULL, a5), 2);
    const char *a6[] = {"aloft", "part", "show", "a", "b", NULL};
    assert_int_equal(aloft_test_run(NULL, a6), 2);
    const char *a7[] = {"aloft", "part", "bin2csv", tmp_path("does-not-exist.bin"), NULL};
    assert_int_equal(aloft_test_run(NULL, a7), 1);

    static const char *const cmds[] = {"csv2bin", "bin2csv", "show"};
    for (size_t i = 0; i < 3; i++) {
        const char *h[] = {"aloft", "part", cmds[i], "--help", NULL};
        assert_int_equal(aloft_test_run(&out, h), 0);
        assert_non_null(strstr(out, "usage: aloft part "));
        assert_non_null(strstr(out, cmds[i]));
        assert_non_null(strstr(out, "example"));
        free(out);
    }

    /* A corrupted table is refused. */
    size_t len;
    uint8_t *bin = aloft_test_fixture("esp-idf/partition-table-8mb.bin", &len);
    bin[6 * 32 + 16] ^= 0xFF;
    assert_int_equal(aloft_file_write(tmp_path("badmd5.bin"), bin, len), 0);
    free(bin);
    const char *a8[] = {"aloft", "part", "bin2csv", tmp_path("badmd5.bin"), NULL};
    assert_int_equal(aloft_test_run(&out, a8), 1);
    assert_string_equal(out, "");
    free(out);
}

static void assert_cli_bin2csv_round_trip(const char *rel)
{
    char *out = NULL;
    const char *argv[] = {"aloft", "part", "bin2csv", fixture_path(rel), NULL};
    assert_int_equal(aloft_test_run(&out, argv), 0);
    assert_true(!strncmp(out, "# ESP-IDF Partition Table\n", 26));
    struct aloft_part_table t;
    uint8_t bin[TBYTES];
    assert_int_equal(aloft_part_csv_parse(&t, out, strlen(out), OFF, NULL), 0);
    assert_int_equal(aloft_part_build(&t, bin, sizeof bin), TBYTES);
    size_t len;
    uint8_t *want = aloft_test_fixture(rel, &len);
    assert_memory_equal(bin, want, TBYTES);
    free(want);
    free(out);
}

static void test_cli_bin2csv(void **state)
{
    (void)state;
    NEED_CLI();
    assert_cli_bin2csv_round_trip("esp-idf/partition-table-8mb.bin");
    assert_cli_bin2csv_round_trip("esp-idf/partition-table-4mb.bin");
    assert_cli_bin2csv_round_trip("esp-idf/partitions-utf8-label.bin");
}

static void test_cli_show(void **state)
{
    (void)state;
    NEED_CLI();
    char *csv_out = NULL, *bin_out = NULL;
    const char *a1[] = {"aloft", "part", "show", fixture_path("esp-idf/partitions-8mb.csv"), NULL};
    const char *a2[] = {"aloft", "part", "show", fixture_path("esp-idf/partition-table-8mb.bin"), NULL};
    assert_int_equal(aloft_test_run(&csv_out, a1), 0);
    assert_int_equal(aloft_test_run(&bin_out, a2), 0);
    assert_non_null(strstr(csv_out, "ota_1"));
    assert_non_null(strstr(csv_out, "0x220000"));
    assert_non_null(strstr(csv_out, "2 MiB"));
    assert_non_null(strstr(csv_out, "1.9 MiB")); /* spiffs, 0x1e0000 */
    assert_non_null(strstr(bin_out, "binary"));
    assert_non_null(strstr(csv_out, "CSV"));
    /* The same table either way: the rows after the first line match. */
    assert_string_equal(strchr(csv_out, '\n'), strchr(bin_out, '\n'));
    free(csv_out);
    free(bin_out);
}

static void test_cli_show_json(void **state)
{
    (void)state;
    NEED_CLI();
    char *out = NULL;
    const char *argv[] = {"aloft", "part", "show", "--json", fixture_path("esp-idf/partitions-utf8-label.bin"), NULL};
    assert_int_equal(aloft_test_run(&out, argv), 0);
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    assert_string_equal(cJSON_GetObjectItem(root, "format")->valuestring, "binary");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(root, "md5")));
    cJSON *parts = cJSON_GetObjectItem(root, "partitions");
    assert_int_equal(cJSON_GetArraySize(parts), 3);
    cJSON *phy = cJSON_GetArrayItem(parts, 1);
    assert_string_equal(cJSON_GetObjectItem(phy, "label")->valuestring, utf8_label);
    assert_string_equal(cJSON_GetObjectItem(phy, "type")->valuestring, "data");
    assert_string_equal(cJSON_GetObjectItem(phy, "subtype")->valuestring, "phy");
    assert_int_equal(cJSON_GetObjectItem(phy, "subtype_id")->valueint, 1);
    assert_int_equal(cJSON_GetObjectItem(phy, "offset")->valuedouble, 0xf000);
    assert_int_equal(cJSON_GetObjectItem(phy, "size")->valuedouble, 0x1000);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(phy, "flags")), 0);
    cJSON_Delete(root);
    free(out);
}

/* Labels are raw bytes from flash: JSON gets valid UTF-8 plus the bytes. */
static void test_cli_show_json_odd_label(void **state)
{
    (void)state;
    NEED_CLI();
    struct aloft_part_table t;
    uint8_t bin[TBYTES];
    char *out = NULL;
    base(&t);
    set_label(&t.p[2], "a\xff\x01\xd0");
    assert_int_equal(aloft_part_build(&t, bin, sizeof bin), TBYTES);
    assert_int_equal(aloft_file_write(tmp_path("odd.bin"), bin, sizeof bin), 0);
    const char *argv[] = {"aloft", "part", "show", "--json", tmp_path("odd.bin"), NULL};
    assert_int_equal(aloft_test_run(&out, argv), 0);
    cJSON *root = cJSON_Parse(out);
    assert_non_null(root);
    cJSON *p = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "partitions"), 2);
    assert_string_equal(cJSON_GetObjectItem(p, "label")->valuestring, "a\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd");
    assert_string_equal(cJSON_GetObjectItem(p, "label_hex")->valuestring, "61ff01d0");
    assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(root, "partitions"), 1), "label_hex"));
    cJSON_Delete(root);
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv2bin_8mb_matches_esp_idf),
        cmocka_unit_test(test_csv2bin_4mb_matches_esp_idf),
        cmocka_unit_test(test_parse_8mb_bin),
        cmocka_unit_test(test_utf8_label_round_trip),
        cmocka_unit_test(test_bin_csv_bin_8mb),
        cmocka_unit_test(test_two_ota_auto_placement),
        cmocka_unit_test(test_table_offset_moves_placement),
        cmocka_unit_test(test_bad_magic),
        cmocka_unit_test(test_md5_checked),
        cmocka_unit_test(test_without_md5),
        cmocka_unit_test(test_terminator_as_bootloader),
        cmocka_unit_test(test_missing_terminator),
        cmocka_unit_test(test_too_many_entries),
        cmocka_unit_test(test_misaligned),
        cmocka_unit_test(test_overlap),
        cmocka_unit_test(test_labels),
        cmocka_unit_test(test_range),
        cmocka_unit_test(test_kind_rules),
        cmocka_unit_test(test_build_limits),
        cmocka_unit_test(test_csv_errors_with_lines),
        cmocka_unit_test(test_csv_features),
        cmocka_unit_test(test_csv_too_many),
        cmocka_unit_test(test_csv_write_format),
        cmocka_unit_test(test_csv_write_refuses_unreadable_labels),
        cmocka_unit_test(test_csv_max_is_enough),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_lookups),
        cmocka_unit_test(test_next_update),
        cmocka_unit_test(test_cli_csv2bin),
        cmocka_unit_test(test_cli_csv2bin_options),
        cmocka_unit_test(test_cli_errors_and_usage),
        cmocka_unit_test(test_cli_bin2csv),
        cmocka_unit_test(test_cli_show),
        cmocka_unit_test(test_cli_show_json),
        cmocka_unit_test(test_cli_show_json_odd_label),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
