/* aloft host: synthesised ESP app images and the simulator record
 * (layout and record format in image_make.h). */
#include "image_make.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloft/image.h"

#define MMU_PAGE 0x10000u
#define FLASH_MAPPED_OFF 0x20u /* flash-mapped data starts 0x20 into its page */
#define NOT_LOADED_BELOW 0x10000000u
#define DROM_EXTRA 0x200u      /* rodata after the descriptor */
#define DRAM_LEN 0x200u
#define IRAM_LEN 0x800u
#define ENTRY_OFF 0x100u       /* entry point inside IRAM */
#define IROM_NATURAL 0x1000u
#define IROM_MIN 0x100u
#define SEG_LEN_LIMIT 0x1000000u
#define N_SEGS 5u
#define STR_MAX 31u

/* Plausible load addresses, from each chip's ESP-IDF memory map. DROM is
 * placed after IROM's pages: on most chips both share one MMU table. */
static const struct chip_map {
    uint16_t id;
    uint32_t irom, drom, dram, iram;
} maps[] = {
    {0x0000, 0x400D0000u, 0x3F400000u, 0x3FFB0000u, 0x40080000u}, /* esp32 */
    {0x0002, 0x40080000u, 0x3F000000u, 0x3FFB8000u, 0x40022000u}, /* esp32s2 */
    {0x0005, 0x42000000u, 0x3C000000u, 0x3FC8C000u, 0x40380000u}, /* esp32c3 */
    {0x0009, 0x42000000u, 0x3C000000u, 0x3FC9A000u, 0x40374000u}, /* esp32s3 */
    {0x000C, 0x42000000u, 0x3C000000u, 0x3FCA0000u, 0x40380000u}, /* esp32c2 */
    {0x000D, 0x42000000u, 0x42000000u, 0x40810000u, 0x40800000u}, /* esp32c6 */
    {0x0010, 0x42000000u, 0x42000000u, 0x40810000u, 0x40800000u}, /* esp32h2 */
    {0x0012, 0x40000000u, 0x40000000u, 0x4FF10000u, 0x4FF00000u}, /* esp32p4 */
    {0x0014, 0x42000000u, 0x42000000u, 0x40810000u, 0x40800000u}, /* esp32c61 */
    {0x0017, 0x42000000u, 0x42000000u, 0x40810000u, 0x40800000u}, /* esp32c5 */
};

static const struct {
    const char *name;
    enum aloft_sim_behaviour b;
} behaviours[] = {
    {"healthy", ALOFT_SIM_HEALTHY},
    {"panic-on-boot", ALOFT_SIM_PANIC_ON_BOOT},
    {"hang", ALOFT_SIM_HANG},
    {"no-confirm", ALOFT_SIM_NO_CONFIRM},
    {"confirm-after", ALOFT_SIM_CONFIRM_AFTER},
};

#define CONFIRM_AFTER_PREFIX "confirm-after="

int aloft_sim_behaviour_parse(const char *text, struct aloft_sim_record *rec)
{
    memset(rec, 0, sizeof *rec);
    if (!strncmp(text, CONFIRM_AFTER_PREFIX, strlen(CONFIRM_AFTER_PREFIX))) {
        const char *s = text + strlen(CONFIRM_AFTER_PREFIX);
        uint32_t secs = 0;
        if (!*s || strlen(s) > 5)
            return ALOFT_E_INVAL;
        for (; *s; s++) {
            if (*s < '0' || *s > '9')
                return ALOFT_E_INVAL;
            secs = secs * 10 + (uint32_t)(*s - '0');
        }
        if (secs > ALOFT_SIM_CONFIRM_AFTER_MAX)
            return ALOFT_E_INVAL;
        rec->present = true;
        rec->behaviour = ALOFT_SIM_CONFIRM_AFTER;
        rec->confirm_after_s = secs;
        return 0;
    }
    for (size_t i = 0; i < sizeof behaviours / sizeof behaviours[0]; i++) {
        /* "healthy" is what no record means: a record says something else. */
        enum aloft_sim_behaviour b = behaviours[i].b;
        if (b != ALOFT_SIM_HEALTHY && b != ALOFT_SIM_CONFIRM_AFTER && !strcmp(text, behaviours[i].name)) {
            rec->present = true;
            rec->behaviour = b;
            return 0;
        }
    }
    return ALOFT_E_INVAL;
}

const char *aloft_sim_behaviour_format(const struct aloft_sim_record *rec, char *buf, size_t n)
{
    const char *name = "healthy";
    for (size_t i = 0; i < sizeof behaviours / sizeof behaviours[0]; i++)
        if (behaviours[i].b == rec->behaviour)
            name = behaviours[i].name;
    if (rec->behaviour == ALOFT_SIM_CONFIRM_AFTER)
        snprintf(buf, n, "%s=%u", name, (unsigned)rec->confirm_after_s);
    else
        snprintf(buf, n, "%s", name);
    return buf;
}

/* The record's text: "key=value" lines; only "behaviour" is known. */
static int parse_record_text(const char *text, struct aloft_sim_record *rec)
{
    static const char key[] = "behaviour=";
    int rc = ALOFT_E_CORRUPT;
    while (*text) {
        const char *eol = strchr(text, '\n');
        size_t n = eol ? (size_t)(eol - text) : strlen(text);
        if (n > sizeof key - 1 && !strncmp(text, key, sizeof key - 1)) {
            char value[32];
            size_t vn = n - (sizeof key - 1);
            if (vn >= sizeof value)
                return ALOFT_E_CORRUPT;
            memcpy(value, text + sizeof key - 1, vn);
            value[vn] = 0;
            if (aloft_sim_behaviour_parse(value, rec))
                return ALOFT_E_CORRUPT;
            rc = 0;
        }
        text += n + (eol != NULL);
    }
    return rc;
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int aloft_sim_record_parse(const uint8_t *image, size_t len, struct aloft_sim_record *rec)
{
    memset(rec, 0, sizeof *rec);
    if (len < 1 || image[0] != ALOFT_IMAGE_MAGIC)
        return ALOFT_E_MAGIC;
    if (len < ALOFT_IMAGE_HEADER_BYTES)
        return ALOFT_E_TRUNCATED;
    unsigned count = image[1];
    if (count == 0 || count > ALOFT_IMAGE_SEGMENTS_MAX)
        return ALOFT_E_SEGMENTS;
    size_t off = ALOFT_IMAGE_HEADER_BYTES;
    for (unsigned i = 0; i < count; i++) {
        if (len - off < 8)
            return ALOFT_E_TRUNCATED;
        uint32_t load = rd32(image + off), n = rd32(image + off + 4);
        off += 8;
        if (len - off < n)
            return ALOFT_E_TRUNCATED;
        const uint8_t *data = image + off;
        off += n;
        if (load >= NOT_LOADED_BELOW || n < ALOFT_SIM_RECORD_MAGIC_BYTES ||
            memcmp(data, ALOFT_SIM_RECORD_MAGIC, ALOFT_SIM_RECORD_MAGIC_BYTES))
            continue;
        const char *text = (const char *)data + ALOFT_SIM_RECORD_MAGIC_BYTES;
        if (!memchr(text, 0, n - ALOFT_SIM_RECORD_MAGIC_BYTES))
            return ALOFT_E_CORRUPT;
        return parse_record_text(text, rec);
    }
    return 0;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

/* xorshift64*: fast, deterministic, incompressible enough. */
static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    uint64_t x = seed | 1;
    while (n) {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t r = x * 0x2545F4914F6CDD1Dull;
        size_t k = n < 8 ? n : 8;
        memcpy(p, &r, k);
        p += k;
        n -= k;
    }
}

static uint64_t seed_of(const uint8_t *digest, uint64_t salt)
{
    uint64_t s;
    memcpy(&s, digest, sizeof s);
    return s ^ salt;
}

static void hash_str(struct aloft_sha256 *s, const char *str)
{
    aloft_sha256_update(s, str, strlen(str) + 1);
}

static void put_str(uint8_t *dst, const char *src)
{
    memcpy(dst, src, strlen(src));
}

static bool valid_name(const char *s)
{
    return s && *s && strlen(s) <= STR_MAX;
}

struct segment {
    uint32_t load, len;
};

int aloft_image_make(const struct aloft_image_make_opts *o, uint8_t **out, size_t *len)
{
    *out = NULL;
    *len = 0;
    const struct chip_map *m = NULL;
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        if (maps[i].id == o->chip_id)
            m = &maps[i];
    if (!m)
        return ALOFT_E_CHIP;
    struct aloft_sim_record rec = {0};
    if (!valid_name(o->project) || !valid_name(o->version) ||
        (o->sim && aloft_sim_behaviour_parse(o->sim, &rec)))
        return ALOFT_E_INVAL;

    /* File offsets of the fixed part; the padding segment's length puts the
     * IROM data at 0x10020 (see image_make.h). */
    const uint32_t drom_len = ALOFT_APP_DESC_BYTES + DROM_EXTRA;
    const uint32_t pad_data = ALOFT_APP_DESC_OFFSET + drom_len + 8 + DRAM_LEN + 8 + IRAM_LEN + 8;
    const uint32_t irom_data = MMU_PAGE + FLASH_MAPPED_OFF;
    const uint32_t pad_len = irom_data - 8 - pad_data;
    /* Image = IROM end, padding and checksum to a 16-byte line, hash: for
     * an IROM end of T - 36 the image is exactly T bytes (T % 16 == 0). */
    uint32_t irom_len = IROM_NATURAL;
    if (o->size) {
        uint32_t t = o->size & ~15u;
        if (t < irom_data + IROM_MIN + 36) {
            *len = ((size_t)irom_data + IROM_MIN + 36 + 15) & ~(size_t)15;
            return ALOFT_E_NOSPC;
        }
        irom_len = t - 36 - irom_data;
        if (irom_len >= SEG_LEN_LIMIT)
            return ALOFT_E_INVAL;
    }
    const uint32_t irom_end = irom_data + irom_len;
    const size_t total = (((size_t)irom_end + 1 + 15) & ~(size_t)15) + 32;

    /* app_elf_sha256 stands for the ELF the options describe; every
     * pseudo-random byte is seeded from it, IROM's from chip and project. */
    struct aloft_sha256 s;
    uint8_t elf_sha[32], code_sha[32], num[8];
    aloft_sha256_init(&s);
    hash_str(&s, "aloft-sim-code");
    wr16(num, o->chip_id);
    aloft_sha256_update(&s, num, 2);
    hash_str(&s, o->project);
    aloft_sha256_final(&s, code_sha);
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, code_sha, sizeof code_sha);
    wr32(num, o->secure_version);
    wr32(num + 4, (uint32_t)total);
    aloft_sha256_update(&s, num, 8);
    hash_str(&s, o->version);
    hash_str(&s, o->sim ? o->sim : "");
    aloft_sha256_final(&s, elf_sha);

    uint8_t *img = calloc(1, total);
    if (!img)
        return ALOFT_E_IO;
    uint32_t irom_pages = (FLASH_MAPPED_OFF + irom_len + MMU_PAGE - 1) / MMU_PAGE;
    const struct segment segs[N_SEGS] = {
        {m->drom + irom_pages * MMU_PAGE + FLASH_MAPPED_OFF, drom_len},
        {m->dram, DRAM_LEN},
        {m->iram, IRAM_LEN},
        {0, pad_len},
        {m->irom + FLASH_MAPPED_OFF, irom_len},
    };

    /* Header. spi_size: the smallest of 4/8/16 MB that holds the image in
     * a slot after the first 64 KB. */
    uint8_t size_code = 2;
    while (size_code < 4 && total + MMU_PAGE > (size_t)1 << (20 + size_code))
        size_code++;
    img[0] = ALOFT_IMAGE_MAGIC;
    img[1] = N_SEGS;
    img[2] = 2;                            /* DIO */
    img[3] = (uint8_t)(size_code << 4 | 0xF); /* the chip's fastest flash clock */
    wr32(img + 4, m->iram + ENTRY_OFF);
    img[8] = 0xEE;                         /* no WP pin */
    wr16(img + 12, o->chip_id);
    wr16(img + 17, 0xFFFF);                /* no maximum chip revision */
    img[23] = 1;

    size_t off = ALOFT_IMAGE_HEADER_BYTES;
    uint8_t checksum = 0xEF;
    for (unsigned i = 0; i < N_SEGS; i++) {
        wr32(img + off, segs[i].load);
        wr32(img + off + 4, segs[i].len);
        uint8_t *d = img + off + 8;
        if (i == 0) {
            wr32(d, ALOFT_APP_DESC_MAGIC);
            wr32(d + 0x04, o->secure_version);
            put_str(d + 0x10, o->version);
            put_str(d + 0x30, o->project);
            put_str(d + 0x50, "00:00:00");
            put_str(d + 0x60, "Jan  1 2025");
            put_str(d + 0x70, "aloft-sim");
            memcpy(d + 0x90, elf_sha, sizeof elf_sha);
            wr16(d + 0xB2, 99);  /* max efuse block revision v0.99 */
            d[0xB4] = 16;        /* 64 KB MMU pages */
            fill_random(d + ALOFT_APP_DESC_BYTES, DROM_EXTRA, seed_of(elf_sha, i));
        } else if (i == 3) {
            if (rec.present) {
                memcpy(d, ALOFT_SIM_RECORD_MAGIC, ALOFT_SIM_RECORD_MAGIC_BYTES);
                snprintf((char *)d + ALOFT_SIM_RECORD_MAGIC_BYTES, pad_len - ALOFT_SIM_RECORD_MAGIC_BYTES,
                         "behaviour=%s", o->sim);
            }
        } else {
            fill_random(d, segs[i].len, seed_of(i == 4 ? code_sha : elf_sha, i));
        }
        for (uint32_t j = 0; j < segs[i].len; j++)
            checksum ^= d[j];
        off += 8 + segs[i].len;
    }
    off |= 15;
    img[off++] = checksum;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, img, off);
    aloft_sha256_final(&s, img + off);
    *out = img;
    *len = total;
    return 0;
}
