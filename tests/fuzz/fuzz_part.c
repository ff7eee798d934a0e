/* libFuzzer harness: the binary partition table parser (core/part.c).
 *
 * The input is the table as read from flash at 0x8000. Properties checked
 * (abort on violation): a table that parses, written back with
 * aloft_part_build, parses again to the same table and builds to the same
 * bytes; a flash size only adds a rule; a validation error names an entry;
 * the CSV writer never runs out of ALOFT_PART_CSV_MAX; the lookups stay in
 * the table. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/part.h"
#include "same_table.h"

#define TABLE_OFFSET ALOFT_PART_TABLE_OFFSET
#define FLASH_4MB 0x400000u

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_part: %s\n", what);
    abort();
}

static bool in_table(const struct aloft_part_table *t, const struct aloft_part *p)
{
    return p >= t->p && p < t->p + t->count;
}

static void lookups(const struct aloft_part_table *t)
{
    uint32_t n = aloft_part_ota_count(t);
    if (n > 16)
        fail("more than 16 ota slots");
    for (uint32_t i = 0; i < n; i++) {
        const struct aloft_part *p = aloft_part_ota(t, i);
        if (!p || !in_table(t, p) || aloft_part_ota_index(p) < 0)
            fail("aloft_part_ota gave no ota slot");
    }
    if (aloft_part_ota(t, n))
        fail("aloft_part_ota gave a slot past the count");
    for (uint32_t i = 0; i <= t->count; i++) {
        const struct aloft_part *running = i < t->count ? &t->p[i] : NULL;
        const struct aloft_part *next = aloft_part_next_update(t, running);
        if (next && (!in_table(t, next) || aloft_part_ota_index(next) < 0))
            fail("aloft_part_next_update gave no ota slot");
        if (running && next == running)
            fail("aloft_part_next_update gave the running slot");
        if (running) {
            if (aloft_part_find_label(t, running->label) == NULL)
                fail("aloft_part_find_label misses a label");
            if (aloft_part_find(t, running->type, running->subtype) == NULL)
                fail("aloft_part_find misses an entry");
        }
        (void)aloft_part_type_name(running ? running->type : 0);
        (void)aloft_part_subtype_name(running ? running->type : 0, running ? running->subtype : 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct aloft_part_table t, t4, again;
    static uint8_t bin[ALOFT_PART_TABLE_BYTES], bin2[ALOFT_PART_TABLE_BYTES];
    static char csv[ALOFT_PART_CSV_MAX];

    int rc = aloft_part_parse(&t, data, size, TABLE_OFFSET, 0);
    int rc4 = aloft_part_parse(&t4, data, size, TABLE_OFFSET, FLASH_4MB);
    if (rc4 == 0 && rc != 0)
        fail("a table valid in 4 MB is invalid with no flash size");
    if (rc > 0 || rc4 > 0)
        fail("parse returned a positive value");

    /* On a validation error t holds the entries and check names one. */
    uint32_t bad = UINT32_MAX;
    int vrc = aloft_part_check(&t, TABLE_OFFSET, 0, &bad);
    if (rc == 0 && vrc != 0)
        fail("a parsed table does not validate");
    if (vrc != 0 && bad >= t.count)
        fail("aloft_part_check names no entry");
    if (t.count > ALOFT_PART_MAX)
        fail("more entries than ALOFT_PART_MAX");

    int n = aloft_part_csv_write(&t, csv, sizeof csv);
    if (n == ALOFT_E_NOSPC)
        fail("ALOFT_PART_CSV_MAX was not enough");
    if (n >= 0 && (size_t)n != strlen(csv))
        fail("csv_write's length is not the text's");
    lookups(&t);
    if (rc != 0)
        return 0;

    if (aloft_part_build(&t, bin, sizeof bin) != (int)ALOFT_PART_TABLE_BYTES)
        fail("a parsed table does not build");
    int rc2 = aloft_part_parse(&again, bin, sizeof bin, TABLE_OFFSET, 0);
    if (rc2 != 0) {
        fprintf(stderr, "fuzz_part: a built table does not parse: %d\n", rc2);
        abort();
    }
    if (!same_table(&t, &again))
        fail("a built table parses to another table");
    if (aloft_part_build(&again, bin2, sizeof bin2) != (int)ALOFT_PART_TABLE_BYTES || memcmp(bin, bin2, sizeof bin))
        fail("building twice gives other bytes");
    if (aloft_part_build(&t, bin2, sizeof bin2 - 1) != ALOFT_E_NOSPC)
        fail("aloft_part_build wrote into a short buffer");
    return 0;
}
