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
 * Returns 0, ALOFT_E_PART_MAGIC, ALOFT_E_PART_MD5, ALOFT_E_PART_ALIGN,
 * ALOFT_E_PART_OVERLAP, ALOFT_E_PART_RANGE, ALOFT_E_PART_LABEL,
 * ALOFT_E_TOOMANY or ALOFT_E_TRUNCATED (no terminator within len). */
int aloft_part_parse(struct aloft_part_table *t, const uint8_t *bin, size_t len,
                     uint32_t table_offset, uint32_t flash_size);

/* Same checks as aloft_part_parse on an in-memory table (e.g. from CSV). */
int aloft_part_validate(const struct aloft_part_table *t, uint32_t table_offset,
                        uint32_t flash_size);

/* Write the binary table into out (cap >= ALOFT_PART_TABLE_BYTES): entries,
 * the MD5 entry when t->md5, padded with 0xFF to 3072 bytes exactly as
 * gen_esp32part.py. Returns the length written or ALOFT_E_NOSPC/ALOFT_E_TOOMANY. */
int aloft_part_build(const struct aloft_part_table *t, uint8_t *out, size_t cap);

/* Parse ESP-IDF CSV text (gen_esp32part.py syntax): empty offsets are placed
 * after the previous partition (app 0x10000-aligned, data 0x1000), sizes take
 * K/M and hex, types and subtypes names or numbers, flags `encrypted`/
 * `readonly`. The first free offset is table_offset + 0x1000. On error
 * *err_line (if not NULL) is the 1-based line. Returns 0, ALOFT_E_SYNTAX,
 * ALOFT_E_PART_TYPE, ALOFT_E_TOOMANY or a validation error. t->md5 is set. */
int aloft_part_csv_parse(struct aloft_part_table *t, const char *csv, size_t len,
                         uint32_t table_offset, uint32_t *err_line);

/* Write t as CSV into out (NUL-terminated); names for known types/subtypes,
 * hex offsets and sizes. Returns the length or ALOFT_E_NOSPC. */
int aloft_part_csv_write(const struct aloft_part_table *t, char *out, size_t cap);

/* Names of a type and a subtype ("app", "ota_0", "littlefs"...), NULL when
 * the value has no name. */
const char *aloft_part_type_name(uint8_t type);
const char *aloft_part_subtype_name(uint8_t type, uint8_t subtype);

/* Lookups: return the entry or NULL. */
const struct aloft_part *aloft_part_find_label(const struct aloft_part_table *t, const char *label);
const struct aloft_part *aloft_part_find(const struct aloft_part_table *t, uint8_t type, uint8_t subtype);

/* Number of ota_N app partitions; the i-th of them in subtype order (ota_0
 * first), or NULL. */
uint32_t aloft_part_ota_count(const struct aloft_part_table *t);
const struct aloft_part *aloft_part_ota(const struct aloft_part_table *t, uint32_t i);

/* Index (0-based ota number) of an ota app partition, or -1 for others. */
int aloft_part_ota_index(const struct aloft_part *p);

/* The slot the next update goes to while `running` runs, as ESP-IDF's
 * esp_ota_get_next_update_partition: the ota slot after the running one
 * (wrapping), skipping the running one; from factory/test, ota_0.
 * NULL when there is no ota slot to update. */
const struct aloft_part *aloft_part_next_update(const struct aloft_part_table *t,
                                                const struct aloft_part *running);

#endif
