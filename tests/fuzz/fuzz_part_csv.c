/* libFuzzer harness: the partition table CSV parser (core/part_csv.c).
 *
 * Properties checked (abort on violation): a table that parses, written with
 * aloft_part_csv_write, parses again to the same table (and writes the same
 * text); it also builds to a binary table that aloft_part_parse reads back
 * as the same table; an error names a line. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/part.h"
#include "same_table.h"

#define TABLE_OFFSET ALOFT_PART_TABLE_OFFSET

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_part_csv: %s\n", what);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct aloft_part_table t, again;
    static char text[ALOFT_PART_CSV_MAX], text2[ALOFT_PART_CSV_MAX];
    static uint8_t bin[ALOFT_PART_TABLE_BYTES];

    /* A private copy, not NUL-terminated: reads past len are caught. */
    char *csv = malloc(size ? size : 1);
    if (!csv)
        abort();
    memcpy(csv, data, size);
    uint32_t line = UINT32_MAX;
    int rc = aloft_part_csv_parse(&t, csv, size, TABLE_OFFSET, &line);
    free(csv);
    if (rc > 0)
        fail("parse returned a positive value");
    if (rc != 0) {
        if (line == 0 || line == UINT32_MAX)
            fail("an error names no line");
        return 0;
    }
    if (line != 0)
        fail("success left a line number");
    if (!t.md5 || t.count > ALOFT_PART_MAX - 1)
        fail("a parsed table breaks the entry limit");

    int n = aloft_part_csv_write(&t, text, sizeof text);
    if (n == ALOFT_E_NOSPC)
        fail("ALOFT_PART_CSV_MAX was not enough");
    if (n == ALOFT_E_PART_LABEL)
        return 0; /* documented: a label that would not read back */
    if (n < 0 || (size_t)n != strlen(text))
        fail("csv_write failed or miscounted");
    rc = aloft_part_csv_parse(&again, text, (size_t)n, TABLE_OFFSET, &line);
    if (rc != 0) {
        fprintf(stderr, "fuzz_part_csv: written CSV does not parse: %d at line %u\n%s", rc, line, text);
        abort();
    }
    if (!same_table(&t, &again)) {
        fprintf(stderr, "fuzz_part_csv: written CSV parses to another table\n%s", text);
        abort();
    }
    int n2 = aloft_part_csv_write(&again, text2, sizeof text2);
    if (n2 != n || memcmp(text, text2, (size_t)n))
        fail("writing twice gives other text");

    if (aloft_part_build(&t, bin, sizeof bin) != (int)ALOFT_PART_TABLE_BYTES)
        fail("a parsed table does not build");
    rc = aloft_part_parse(&again, bin, sizeof bin, TABLE_OFFSET, 0);
    if (rc != 0) {
        fprintf(stderr, "fuzz_part_csv: its binary table does not parse: %d\n", rc);
        abort();
    }
    if (!same_table(&t, &again))
        fail("its binary table parses to another table");
    return 0;
}
