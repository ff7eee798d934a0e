/* aloft: the ESP-IDF partition table (FORMATS.md §1), binary and CSV. */
#ifndef ALOFT_PART_H
#define ALOFT_PART_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALOFT_PART_TABLE_OFFSET 0x8000u /* ESP-IDF's default */
#define ALOFT_PART_TABLE_BYTES 0xC00u   /* 3072: what gen_esp32part.py writes */
#define ALOFT_PART_MAX 95u              /* entries, MD5 entry not counted */
#define ALOFT_PART_LABEL_MAX 16u
#define ALOFT_PART_CSV_MAX 8192u        /* enough for any table as CSV, NUL included */

enum aloft_part_type {
    ALOFT_PART_APP = 0x00,
    ALOFT_PART_DATA = 0x01,
    ALOFT_PART_BOOTLOADER = 0x02,
    ALOFT_PART_TABLE = 0x03,
};

enum aloft_part_subtype {
    ALOFT_PART_FACTORY = 0x00,
    ALOFT_PART_OTA_0 = 0x10, /* ota_N = 0x10 + N, N < 16 */
    ALOFT_PART_TEST = 0x20,
    ALOFT_PART_OTADATA = 0x00,
    ALOFT_PART_PHY = 0x01,
    ALOFT_PART_NVS = 0x02,
    ALOFT_PART_COREDUMP = 0x03,
    ALOFT_PART_NVS_KEYS = 0x04,
    ALOFT_PART_EFUSE = 0x05,
    ALOFT_PART_UNDEFINED = 0x06,
    ALOFT_PART_FAT = 0x81,
    ALOFT_PART_SPIFFS = 0x82,
    ALOFT_PART_LITTLEFS = 0x83,
};

#define ALOFT_PART_FLAG_ENCRYPTED 0x1u
#define ALOFT_PART_FLAG_READONLY 0x2u

struct aloft_part {
    uint8_t type;
    uint8_t subtype;
    uint32_t offset;
    uint32_t size;
    char label[ALOFT_PART_LABEL_MAX + 1]; /* raw bytes, NUL-terminated here */
    uint32_t flags;
};

struct aloft_part_table {
    struct aloft_part p[ALOFT_PART_MAX];
    uint32_t count;
    bool md5;     /* an MD5 entry is (or is to be) present */
};

/* Parse a binary table (what sits at 0x8000) of len bytes and validate it:
 * magic, MD5 entry, terminator, alignment, overlaps, labels, bounds against
 * flash_size (0: unknown, not checked) and table_offset.
 * Like the bootloader, the table ends at the first entry starting FF FF FF FF
 * and entries after the MD5 entry are accepted (the MD5 covers only the bytes
 * before it; aloft_part_build puts it last).
 * Returns 0, ALOFT_E_PART_MAGIC, ALOFT_E_PART_MD5 (mismatch or a second MD5
 * entry), ALOFT_E_TOOMANY (no terminator within the 3072-byte table),
 * ALOFT_E_TRUNCATED (len ended before the terminator) or a validation error
 * of aloft_part_validate; on a validation error t holds the parsed entries,
 * so aloft_part_check can name the offending one. */
int aloft_part_parse(struct aloft_part_table *t, const uint8_t *bin, size_t len,
                     uint32_t table_offset, uint32_t flash_size);

/* Validate an in-memory table (e.g. from CSV) with the rules ESP-IDF's
 * gen_esp32part.py enforces: labels non-empty and unique (ALOFT_E_PART_LABEL);
 * app offsets 0x10000-aligned, other offsets 0x1000, app sizes 0x1000
 * (ALOFT_E_PART_ALIGN; data sizes are free); inside flash_size when not 0 and
 * at or after table_offset + 0x1000, except the primary bootloader and
 * partition_table entries (ALOFT_E_PART_RANGE); no overlap
 * (ALOFT_E_PART_OVERLAP); at most one otadata, of exactly 0x2000 bytes, and
 * ota_N slots numbered 0..n-1 without gaps or repeats, since the bootloader and
 * the app count slots differently otherwise (ALOFT_E_PART_KIND); at most 95
 * entries, 94 with an MD5 entry (ALOFT_E_TOOMANY). Returns 0 or that error. */
int aloft_part_validate(const struct aloft_part_table *t, uint32_t table_offset,
                        uint32_t flash_size);

/* aloft_part_validate that also names the offending entry: on error *bad (if
 * not NULL) is the index in t->p of the first entry, in table order, that
 * breaks a rule (of two overlapping or same-named entries, the later one). */
int aloft_part_check(const struct aloft_part_table *t, uint32_t table_offset,
                     uint32_t flash_size, uint32_t *bad);

/* Write the binary table into out (cap >= ALOFT_PART_TABLE_BYTES): entries,
 * the MD5 entry when t->md5, padded with 0xFF to 3072 bytes exactly as
 * gen_esp32part.py. Returns the length written or ALOFT_E_NOSPC/ALOFT_E_TOOMANY. */
int aloft_part_build(const struct aloft_part_table *t, uint8_t *out, size_t cap);

/* Parse ESP-IDF CSV text (gen_esp32part.py syntax): empty offsets are placed
 * after the previous partition (app 0x10000-aligned, others 0x1000), numbers
 * are decimal or 0x hex with an optional K/M suffix, types and subtypes names
 * (any case) or numbers, flags `encrypted`/`readonly` joined by ':'.
 * The first free offset is table_offset + 0x1000; an explicit offset below
 * the end of the previous partition is an overlap, as in gen_esp32part.py.
 * A primary partition_table entry is placed at table_offset (0x1000 bytes);
 * bootloader entries need an explicit offset and size (their defaults depend
 * on the chip). Generation-time rules are checked too: a writable nvs is at
 * least 0x3000 bytes, otadata and coredump are never readonly
 * (ALOFT_E_PART_KIND). On error *err_line (if not NULL) is the 1-based line.
 * Returns 0, ALOFT_E_SYNTAX, ALOFT_E_PART_TYPE, ALOFT_E_PART_LABEL (empty,
 * longer than 16 bytes), ALOFT_E_PART_RANGE (a number above 32 bits),
 * ALOFT_E_TOOMANY or a validation error (flash size not checked). t->md5 is
 * set. */
int aloft_part_csv_parse(struct aloft_part_table *t, const char *csv, size_t len,
                         uint32_t table_offset, uint32_t *err_line);

/* Write t as CSV into out (NUL-terminated) as gen_esp32part.py's to_csv: a
 * two-line header, then `name,type,subtype,0xOFFSET,SIZE,flags` with names for
 * known types/subtypes (decimal otherwise) and sizes as nM/nK when exact (hex
 * otherwise); labels as raw bytes; unknown flag bits are dropped.
 * ALOFT_PART_CSV_MAX bytes always suffice. Returns the length, ALOFT_E_NOSPC,
 * or ALOFT_E_PART_LABEL when a label would not read back (a comma or line
 * break, surrounding whitespace, or a leading '#'). */
int aloft_part_csv_write(const struct aloft_part_table *t, char *out, size_t cap);

/* Names of a type and a subtype ("app", "ota_0", "littlefs"...) as
 * gen_esp32part.py spells them, NULL when the value has no name. */
const char *aloft_part_type_name(uint8_t type);
const char *aloft_part_subtype_name(uint8_t type, uint8_t subtype);

/* Lookups: return the entry or NULL. */
const struct aloft_part *aloft_part_find_label(const struct aloft_part_table *t, const char *label);
const struct aloft_part *aloft_part_find(const struct aloft_part_table *t, uint8_t type, uint8_t subtype);

/* Number of ota_N app partitions; the i-th of them in subtype order (ota_0
 * first), or NULL. */
uint32_t aloft_part_ota_count(const struct aloft_part_table *t);
const struct aloft_part *aloft_part_ota(const struct aloft_part_table *t, uint32_t i);

/* Index (0-based ota number) of an ota app partition, or -1 for others
 * (and for NULL). */
int aloft_part_ota_index(const struct aloft_part *p);

/* The slot the next update goes to while `running` runs, as ESP-IDF's
 * esp_ota_get_next_update_partition: the ota slot after the running one
 * (wrapping), skipping the running one; from factory/test/NULL or a
 * partition not in t (matched by type, subtype and offset), the first ota slot.
 * NULL when there is no ota slot to update (none, or only the running one). */
const struct aloft_part *aloft_part_next_update(const struct aloft_part_table *t,
                                                const struct aloft_part *running);

#endif
