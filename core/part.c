/* aloft: the ESP-IDF partition table, binary side (FORMATS.md §1): parse,
 * validate, build, names and lookups. The rules mirror gen_esp32part.py; the
 * parser reads the table the way the bootloader does. */
#include "aloft/part.h"
#include "bytes.h"

#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"

#define ENTRY_BYTES 32u
#define SLOTS (ALOFT_PART_TABLE_BYTES / ENTRY_BYTES) /* entries + MD5 + terminator */
#define TABLE_SECTOR 0x1000u
#define APP_ALIGN 0x10000u
#define DATA_ALIGN 0x1000u
#define OTADATA_SIZE 0x2000u
#define OTA_SLOTS 16u

struct subtype_name {
    uint8_t type;
    uint8_t subtype;
    const char *name;
};

/* gen_esp32part.py's SUBTYPES (ota_N handled apart). */
static const struct subtype_name subtype_names[] = {
    {ALOFT_PART_BOOTLOADER, 0x00, "primary"},
    {ALOFT_PART_BOOTLOADER, 0x01, "ota"},
    {ALOFT_PART_BOOTLOADER, 0x02, "recovery"},
    {ALOFT_PART_TABLE, 0x00, "primary"},
    {ALOFT_PART_TABLE, 0x01, "ota"},
    {ALOFT_PART_APP, ALOFT_PART_FACTORY, "factory"},
    {ALOFT_PART_APP, ALOFT_PART_TEST, "test"},
    {ALOFT_PART_APP, 0x30, "tee_0"},
    {ALOFT_PART_APP, 0x31, "tee_1"},
    {ALOFT_PART_DATA, ALOFT_PART_OTADATA, "ota"},
    {ALOFT_PART_DATA, ALOFT_PART_PHY, "phy"},
    {ALOFT_PART_DATA, ALOFT_PART_NVS, "nvs"},
    {ALOFT_PART_DATA, ALOFT_PART_COREDUMP, "coredump"},
    {ALOFT_PART_DATA, ALOFT_PART_NVS_KEYS, "nvs_keys"},
    {ALOFT_PART_DATA, ALOFT_PART_EFUSE, "efuse"},
    {ALOFT_PART_DATA, ALOFT_PART_UNDEFINED, "undefined"},
    {ALOFT_PART_DATA, 0x80, "esphttpd"},
    {ALOFT_PART_DATA, ALOFT_PART_FAT, "fat"},
    {ALOFT_PART_DATA, ALOFT_PART_SPIFFS, "spiffs"},
    {ALOFT_PART_DATA, ALOFT_PART_LITTLEFS, "littlefs"},
    {ALOFT_PART_DATA, 0x90, "tee_ota"},
};

static const char *const ota_names[OTA_SLOTS] = {
    "ota_0", "ota_1", "ota_2",  "ota_3",  "ota_4",  "ota_5",  "ota_6",  "ota_7",
    "ota_8", "ota_9", "ota_10", "ota_11", "ota_12", "ota_13", "ota_14", "ota_15",
};

const char *aloft_part_type_name(uint8_t type)
{
    switch (type) {
    case ALOFT_PART_APP: return "app";
    case ALOFT_PART_DATA: return "data";
    case ALOFT_PART_BOOTLOADER: return "bootloader";
    case ALOFT_PART_TABLE: return "partition_table";
    default: return NULL;
    }
}

const char *aloft_part_subtype_name(uint8_t type, uint8_t subtype)
{
    if (type == ALOFT_PART_APP && subtype >= ALOFT_PART_OTA_0 && subtype < ALOFT_PART_OTA_0 + OTA_SLOTS)
        return ota_names[subtype - ALOFT_PART_OTA_0];
    for (size_t i = 0; i < sizeof subtype_names / sizeof subtype_names[0]; i++)
        if (subtype_names[i].type == type && subtype_names[i].subtype == subtype)
            return subtype_names[i].name;
    return NULL;
}

/* Label length up to its NUL; ALOFT_PART_LABEL_MAX + 1 means "too long". */
static size_t label_len(const char *label)
{
    size_t n = 0;
    while (n <= ALOFT_PART_LABEL_MAX && label[n])
        n++;
    return n;
}

static bool label_eq(const char *a, const char *b)
{
    size_t n = label_len(a);
    return n == label_len(b) && memcmp(a, b, n) == 0;
}

/* The primary bootloader and table entries describe what sits before the
 * table, so the "after the table" rule does not apply to them. */
static bool is_primary_system(const struct aloft_part *p)
{
    return (p->type == ALOFT_PART_BOOTLOADER || p->type == ALOFT_PART_TABLE) && p->subtype == 0;
}

static int check_entry(const struct aloft_part *p, uint32_t table_offset, uint32_t flash_size)
{
    size_t n = label_len(p->label);
    if (n == 0 || n > ALOFT_PART_LABEL_MAX)
        return ALOFT_E_PART_LABEL;
    uint32_t align = p->type == ALOFT_PART_APP ? APP_ALIGN : DATA_ALIGN;
    if (p->offset % align)
        return ALOFT_E_PART_ALIGN;
    /* gen_esp32part.py: apps are whole erase sectors; data sizes are free. */
    if (p->type == ALOFT_PART_APP && p->size % DATA_ALIGN)
        return ALOFT_E_PART_ALIGN;
    uint64_t end = (uint64_t)p->offset + p->size;
    if (end > 0x100000000ull || (flash_size && end > flash_size))
        return ALOFT_E_PART_RANGE;
    if (!is_primary_system(p) && p->offset < (uint64_t)table_offset + TABLE_SECTOR)
        return ALOFT_E_PART_RANGE;
    return 0;
}

static bool overlap(const struct aloft_part *a, const struct aloft_part *b)
{
    return a->offset < (uint64_t)b->offset + b->size && b->offset < (uint64_t)a->offset + a->size;
}

int aloft_part_ota_index(const struct aloft_part *p)
{
    if (!p || p->type != ALOFT_PART_APP || p->subtype < ALOFT_PART_OTA_0 ||
        p->subtype >= ALOFT_PART_OTA_0 + OTA_SLOTS)
        return -1;
    return p->subtype - ALOFT_PART_OTA_0;
}

int aloft_part_check(const struct aloft_part_table *t, uint32_t table_offset, uint32_t flash_size,
                     uint32_t *bad)
{
    uint32_t dummy;
    if (!bad)
        bad = &dummy;
    uint32_t max = ALOFT_PART_MAX - (t->md5 ? 1u : 0u);
    if (t->count > max) {
        *bad = max;
        return ALOFT_E_TOOMANY;
    }
    bool otadata = false;
    uint32_t ota_mask = 0;
    for (uint32_t i = 0; i < t->count; i++) {
        const struct aloft_part *p = &t->p[i];
        *bad = i;
        int rc = check_entry(p, table_offset, flash_size);
        if (rc)
            return rc;
        for (uint32_t j = 0; j < i; j++) {
            if (label_eq(p->label, t->p[j].label))
                return ALOFT_E_PART_LABEL;
            if (overlap(p, &t->p[j]))
                return ALOFT_E_PART_OVERLAP;
        }
        if (p->type == ALOFT_PART_DATA && p->subtype == ALOFT_PART_OTADATA) {
            if (otadata || p->size != OTADATA_SIZE)
                return ALOFT_E_PART_KIND;
            otadata = true;
        }
        int k = aloft_part_ota_index(p);
        if (k >= 0) {
            if (ota_mask & (1u << k))
                return ALOFT_E_PART_KIND;
            ota_mask |= 1u << k;
        }
    }
    /* Slots must be ota_0..ota_{n-1}: the bootloader indexes them by
     * subtype but counts them, so a gap would make it boot the wrong one. */
    if (ota_mask & (ota_mask + 1)) {
        uint32_t n = 0;
        for (uint32_t m = ota_mask; m; m &= m - 1)
            n++;
        for (uint32_t i = 0; i < t->count; i++)
            if (aloft_part_ota_index(&t->p[i]) >= (int)n) {
                *bad = i;
                break;
            }
        return ALOFT_E_PART_KIND;
    }
    return 0;
}

int aloft_part_validate(const struct aloft_part_table *t, uint32_t table_offset, uint32_t flash_size)
{
    return aloft_part_check(t, table_offset, flash_size, NULL);
}

int aloft_part_parse(struct aloft_part_table *t, const uint8_t *bin, size_t len, uint32_t table_offset,
                     uint32_t flash_size)
{
    memset(t, 0, sizeof *t);
    for (uint32_t slot = 0;; slot++) {
        if (slot == SLOTS)
            return ALOFT_E_TOOMANY;
        size_t at = (size_t)slot * ENTRY_BYTES;
        if (len < at + ENTRY_BYTES)
            return ALOFT_E_TRUNCATED;
        const uint8_t *e = bin + at;
        /* The bootloader ends the table on magic 0xFFFF, type and subtype 0xFF. */
        if (e[0] == 0xFF && e[1] == 0xFF && e[2] == 0xFF && e[3] == 0xFF)
            break;
        if (e[0] == 0xEB && e[1] == 0xEB) {
            if (t->md5)
                return ALOFT_E_PART_MD5;
            struct aloft_md5 m;
            uint8_t sum[16];
            aloft_md5_init(&m);
            aloft_md5_update(&m, bin, at);
            aloft_md5_final(&m, sum);
            if (memcmp(sum, e + 16, sizeof sum))
                return ALOFT_E_PART_MD5;
            t->md5 = true;
            continue;
        }
        if (e[0] != 0xAA || e[1] != 0x50)
            return ALOFT_E_PART_MAGIC;
        if (t->count == ALOFT_PART_MAX)
            return ALOFT_E_TOOMANY;
        struct aloft_part *p = &t->p[t->count++];
        p->type = e[2];
        p->subtype = e[3];
        p->offset = aloft_le32(e + 4);
        p->size = aloft_le32(e + 8);
        /* 16 raw bytes, NUL-padded; all 16 may be used. */
        size_t n = 0;
        while (n < ALOFT_PART_LABEL_MAX && e[12 + n])
            n++;
        memcpy(p->label, e + 12, n);
        p->flags = aloft_le32(e + 28);
    }
    return aloft_part_validate(t, table_offset, flash_size);
}

int aloft_part_build(const struct aloft_part_table *t, uint8_t *out, size_t cap)
{
    if (cap < ALOFT_PART_TABLE_BYTES)
        return ALOFT_E_NOSPC;
    if (t->count > ALOFT_PART_MAX - (t->md5 ? 1u : 0u))
        return ALOFT_E_TOOMANY;
    memset(out, 0xFF, ALOFT_PART_TABLE_BYTES);
    for (uint32_t i = 0; i < t->count; i++) {
        const struct aloft_part *p = &t->p[i];
        uint8_t *e = out + i * ENTRY_BYTES;
        size_t n = label_len(p->label);
        if (n > ALOFT_PART_LABEL_MAX)
            n = ALOFT_PART_LABEL_MAX;
        e[0] = 0xAA;
        e[1] = 0x50;
        e[2] = p->type;
        e[3] = p->subtype;
        aloft_put_le32(e + 4, p->offset);
        aloft_put_le32(e + 8, p->size);
        memset(e + 12, 0, ALOFT_PART_LABEL_MAX);
        memcpy(e + 12, p->label, n);
        aloft_put_le32(e + 28, p->flags);
    }
    if (t->md5) {
        /* EB EB, 14 x FF (already there), MD5 of every entry before it. */
        uint8_t *e = out + t->count * ENTRY_BYTES;
        struct aloft_md5 m;
        e[0] = 0xEB;
        e[1] = 0xEB;
        aloft_md5_init(&m);
        aloft_md5_update(&m, out, t->count * ENTRY_BYTES);
        aloft_md5_final(&m, e + 16);
    }
    return (int)ALOFT_PART_TABLE_BYTES;
}

const struct aloft_part *aloft_part_find_label(const struct aloft_part_table *t, const char *label)
{
    for (uint32_t i = 0; i < t->count; i++)
        if (label_eq(t->p[i].label, label))
            return &t->p[i];
    return NULL;
}

const struct aloft_part *aloft_part_find(const struct aloft_part_table *t, uint8_t type, uint8_t subtype)
{
    for (uint32_t i = 0; i < t->count; i++)
        if (t->p[i].type == type && t->p[i].subtype == subtype)
            return &t->p[i];
    return NULL;
}

/* Like ESP-IDF, take the first entry of each ota subtype, in subtype order,
 * so an unvalidated table with repeats still gives a consistent answer. */
const struct aloft_part *aloft_part_ota(const struct aloft_part_table *t, uint32_t i)
{
    for (uint8_t k = 0; k < OTA_SLOTS; k++) {
        const struct aloft_part *p = aloft_part_find(t, ALOFT_PART_APP, (uint8_t)(ALOFT_PART_OTA_0 + k));
        if (p && i-- == 0)
            return p;
    }
    return NULL;
}

uint32_t aloft_part_ota_count(const struct aloft_part_table *t)
{
    uint32_t n = 0;
    while (aloft_part_ota(t, n))
        n++;
    return n;
}

const struct aloft_part *aloft_part_next_update(const struct aloft_part_table *t,
                                                const struct aloft_part *running)
{
    uint32_t n = aloft_part_ota_count(t);
    if (n == 0)
        return NULL;
    for (uint32_t i = 0; running && i < n; i++) {
        const struct aloft_part *p = aloft_part_ota(t, i);
        if (p->type == running->type && p->subtype == running->subtype && p->offset == running->offset) {
            const struct aloft_part *next = aloft_part_ota(t, (i + 1) % n);
            return next == p ? NULL : next;
        }
    }
    return aloft_part_ota(t, 0);
}
