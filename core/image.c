/* aloft: the streaming ESP app image verifier (FORMATS.md §3).
 *
 * A state machine over the byte stream. Every check happens at a fixed stream
 * position, so the result is the same whatever the chunking. Segment data, the
 * bulk of an image, is hashed straight from the caller's buffer and XORed a
 * word at a time; only the 24-byte header, 8-byte segment headers and, once,
 * the descriptor area are copied into v->hold. */
#include "aloft/image.h"
#include "bytes.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/port.h"

enum phase { PH_HEADER, PH_SEGHDR, PH_SEGDATA, PH_PAD, PH_CHECKSUM, PH_HASH, PH_TAIL };

#define SEGHDR_BYTES 8u
#define SHA_BYTES 32u
#define SEG_LEN_LIMIT 0x1000000u /* 16 MB: esptool and the bootloader refuse longer */
#define CHECKSUM_SEED 0xEFu
#define SPI_MODE_MAX 5u          /* ESP_IMAGE_SPI_MODE_SLOW_READ */
#define ESP8266_V2_MAGIC 0xEAu
#define SIG_SECTOR 4096u         /* secure boot v2 signature sector */
#define SIG_BLOCK_MAGIC 0xE7u
#define FLASH_CHUNK 256u

static const struct {
    uint16_t id;
    char name[9];
} chips[] = {
    {0x0000, "esp32"},   {0x0002, "esp32s2"}, {0x0005, "esp32c3"},  {0x0009, "esp32s3"},
    {0x000C, "esp32c2"}, {0x000D, "esp32c6"}, {0x0010, "esp32h2"},  {0x0012, "esp32p4"},
    {0x0014, "esp32c61"}, {0x0017, "esp32c5"},
};

#define N_CHIPS (sizeof chips / sizeof chips[0])

const char *aloft_chip_name(uint16_t chip_id)
{
    for (size_t i = 0; i < N_CHIPS; i++)
        if (chips[i].id == chip_id)
            return chips[i].name;
    return NULL;
}

int aloft_chip_id(const char *name)
{
    if (!name)
        return -1;
    for (size_t i = 0; i < N_CHIPS; i++) {
        size_t j = 0;
        while (chips[i].name[j] && chips[i].name[j] == name[j])
            j++;
        if (!chips[i].name[j] && !name[j])
            return chips[i].id;
    }
    return -1;
}

static bool in(uint32_t x, uint32_t lo, uint32_t hi)
{
    return x >= lo && x <= hi;
}

/* ESP8266 images share the magic 0xE9. Their entry point is in the ESP8266's
 * IRAM (0x40100000-0x4010FFFF), where no ESP32-family app starts: ESP-IDF's
 * entry is internal IRAM (0x4008xxxx ESP32, 0x4002xxxx S2, 0x4037xxxx
 * S3/C3/C2, 0x408xxxxx C6/H2/C5/C61, 0x4FFxxxxx P4). To be sure, the first
 * segment must also load into ESP8266 memory: in a v1 image (8-byte header)
 * its load address sits at offset 8, where an ESP32 image has wp_pin and
 * drive strengths that never form such a value; in a v3 image (ESP8266
 * RTOS SDK, 24-byte header whose chip id bytes are zero) at offset 24, and
 * it may be flash-mapped IROM (0x40200000-0x402FFFFF). */
static bool esp8266_ram(uint32_t a)
{
    return in(a, 0x40100000u, 0x4010FFFFu) || in(a, 0x3FFE8000u, 0x3FFFFFFFu);
}

static bool looks_esp8266(const uint8_t *h)
{
    if (!in(aloft_le32(h + 4), 0x40100000u, 0x4010FFFFu))
        return false;
    uint32_t v3_first = aloft_le32(h + ALOFT_IMAGE_HEADER_BYTES);
    return esp8266_ram(aloft_le32(h + 8)) ||
           (aloft_le16(h + 12) == 0 && (esp8266_ram(v3_first) || in(v3_first, 0x40200000u, 0x402FFFFFu)));
}

/* Needs the header and the first segment header: 32 bytes in v->hold. */
static int check_header(struct aloft_image_verifier *v)
{
    const uint8_t *h = v->hold;
    if (looks_esp8266(h))
        return ALOFT_E_ESP8266;
    struct aloft_image_info *i = &v->info;
    if (i->segment_count == 0 || i->segment_count > ALOFT_IMAGE_SEGMENTS_MAX)
        return ALOFT_E_SEGMENTS;
    if (!aloft_chip_name(i->chip_id) || (v->expect_chip != ALOFT_CHIP_ANY && i->chip_id != v->expect_chip))
        return ALOFT_E_CHIP;
    /* The reserved bytes are not checked: esptool only warns about them (a
     * newer esptool may use them) and the SHA-256 covers them anyway. */
    if (h[23] > 1 || i->spi_mode > SPI_MODE_MAX)
        return ALOFT_E_HEADER;
    return 0;
}

static void decode_header(struct aloft_image_verifier *v)
{
    const uint8_t *h = v->hold;
    struct aloft_image_info *i = &v->info;
    i->segment_count = h[1];
    i->spi_mode = h[2];
    i->spi_speed = h[3] & 0x0F;
    i->spi_size = h[3] >> 4;
    i->entry_addr = aloft_le32(h + 4);
    i->wp_pin = h[8];
    i->chip_id = aloft_le16(h + 12);
    i->min_chip_rev = h[14];
    i->min_chip_rev_full = aloft_le16(h + 15);
    i->max_chip_rev_full = aloft_le16(h + 17);
    i->hash_appended = h[23] == 1;
}

/* Copy a fixed-size, possibly unterminated string field. */
static void copy_str(char *dst, const uint8_t *src, size_t n)
{
    size_t k = 0;
    while (k < n && src[k])
        k++;
    memcpy(dst, src, k);
    memset(dst + k, 0, n + 1 - k);
}

/* hold[0x20..0x120) holds segment 0's first 256 bytes. */
static void decode_desc(struct aloft_image_verifier *v)
{
    const uint8_t *d = v->hold + ALOFT_APP_DESC_OFFSET;
    struct aloft_app_desc *a = &v->info.desc;
    if (aloft_le32(d) != ALOFT_APP_DESC_MAGIC)
        return;
    v->info.has_desc = true;
    a->secure_version = aloft_le32(d + 0x04);
    copy_str(a->version, d + 0x10, sizeof a->version - 1);
    copy_str(a->project_name, d + 0x30, sizeof a->project_name - 1);
    copy_str(a->time, d + 0x50, sizeof a->time - 1);
    copy_str(a->date, d + 0x60, sizeof a->date - 1);
    copy_str(a->idf_ver, d + 0x70, sizeof a->idf_ver - 1);
    memcpy(a->app_elf_sha256, d + 0x90, sizeof a->app_elf_sha256);
    a->min_efuse_blk_rev_full = aloft_le16(d + 0xB0);
    a->max_efuse_blk_rev_full = aloft_le16(d + 0xB2);
    a->mmu_page_size = d[0xB4];
}

/* Word loads from a byte buffer: may_alias keeps them legal C for GCC and
 * Clang. memcpy would be portable too, but at -Os on a strict-alignment MCU it
 * becomes a call per word. */
#if defined(__GNUC__)
typedef size_t __attribute__((__may_alias__)) xor_word;
#else
typedef size_t xor_word;
#endif

static uint8_t xor_bytes(uint8_t acc, const uint8_t *p, size_t n)
{
    for (; n && ((uintptr_t)p % sizeof(xor_word)); n--)
        acc ^= *p++;
    size_t w = 0;
    const xor_word *q = (const xor_word *)(const void *)p;
    for (; n >= sizeof w; n -= sizeof w)
        w ^= *q++;
    for (p = (const uint8_t *)q; n; n--)
        acc ^= *p++;
    for (unsigned s = sizeof w * 4; s >= 8; s /= 2)
        w ^= w >> s;
    return acc ^ (uint8_t)w;
}

static void enter(struct aloft_image_verifier *v, enum phase ph, uint32_t len)
{
    v->phase = (uint8_t)ph;
    v->next = v->pos + len;
}

/* Where segment seg's header is gathered in hold: segment 0's stays beside
 * the image header for check_header; later ones reuse hold[0..8), clear of
 * the descriptor area. */
static uint8_t *segment_header(struct aloft_image_verifier *v)
{
    return v->hold + (v->seg ? 0u : ALOFT_IMAGE_HEADER_BYTES);
}

static int parse_segment_header(struct aloft_image_verifier *v)
{
    struct aloft_image_info *i = &v->info;
    const uint8_t *h = segment_header(v);
    uint32_t len = aloft_le32(h + 4);
    i->seg_load_addr[v->seg] = aloft_le32(h);
    i->seg_len[v->seg] = len;
    i->seg_offset[v->seg] = v->pos;
    if (len % 4 || len >= SEG_LEN_LIMIT)
        return ALOFT_E_SEGMENT;
    if (v->max_len) {
        /* The least the image can still take: this segment, the other
         * segment headers, padding with the checksum, the hash. */
        uint64_t end = (uint64_t)v->pos + len + SEGHDR_BYTES * (i->segment_count - v->seg - 1u);
        end = (end | 15u) + 1u + (i->hash_appended ? SHA_BYTES : 0u);
        if (end > v->max_len)
            return ALOFT_E_NOSPC;
    }
    enter(v, PH_SEGDATA, len);
    return 0;
}

static void finish_image(struct aloft_image_verifier *v)
{
    v->info.image_len = v->pos;
    uint32_t padded = (v->pos + SIG_SECTOR - 1u) & ~(SIG_SECTOR - 1u);
    enter(v, PH_TAIL, padded + SIG_SECTOR - v->pos);
}

/* The current phase has all its bytes: check them and enter the next one. */
static int advance(struct aloft_image_verifier *v)
{
    struct aloft_image_info *i = &v->info;
    switch (v->phase) {
    case PH_HEADER:
        decode_header(v);
        enter(v, PH_SEGHDR, SEGHDR_BYTES);
        return 0;
    case PH_SEGHDR:
        if (v->seg == 0) {
            /* The header's checks wait for segment 0's header so that the
             * ESP8266 heuristic can see where a v3 image's first segment loads. */
            int rc = check_header(v);
            if (rc)
                return rc;
        }
        return parse_segment_header(v);
    case PH_SEGDATA:
        if (++v->seg < i->segment_count) {
            enter(v, PH_SEGHDR, SEGHDR_BYTES);
            return 0;
        }
        /* Zero padding so that the checksum is the last byte of a 16-byte line. */
        enter(v, PH_PAD, (v->pos | 15u) - v->pos);
        return 0;
    case PH_PAD:
        enter(v, PH_CHECKSUM, 1);
        return 0;
    case PH_CHECKSUM:
        if (i->checksum != v->checksum)
            return ALOFT_E_CHECKSUM;
        if (i->hash_appended) {
            /* The hash of what came so far goes to hold (free by now: the
             * descriptor was decoded at byte 288); v->sha runs on over the
             * hash and the padding, which a signature also covers. */
            struct aloft_sha256 s = v->sha;
            aloft_sha256_final(&s, v->hold);
            enter(v, PH_HASH, SHA_BYTES);
        } else {
            finish_image(v);
        }
        return 0;
    default: /* PH_HASH; PH_TAIL never completes */
        if (memcmp(v->hold, i->sha256, SHA_BYTES))
            return ALOFT_E_HASH;
        finish_image(v);
        return 0;
    }
}

/* Bytes after the image: at most a secure boot v2 tail, i.e. 0xFF padding
 * to a 4 KB boundary (what espsecure pads with) and one signature sector
 * that starts with a signature block. Its contents are the signature
 * check's business. Returns how many of the k bytes fit that shape. */
static size_t tail_ok(const struct aloft_image_verifier *v, const uint8_t *p, size_t k)
{
    uint32_t sector = v->next - SIG_SECTOR;
    for (size_t j = 0; j < k; j++) {
        uint32_t at = v->pos + (uint32_t)j;
        if ((at < sector && p[j] != 0xFF) || (at == sector && p[j] != SIG_BLOCK_MAGIC))
            return j;
    }
    return k;
}

/* Take up to n bytes of the current phase. Returns how many were taken. */
static size_t consume(struct aloft_image_verifier *v, const uint8_t *p, size_t n)
{
    uint32_t want = v->next - v->pos;
    size_t k = n < want ? n : want;
    switch (v->phase) {
    case PH_HEADER:
        if (v->pos == 0 && p[0] != ALOFT_IMAGE_MAGIC) {
            v->err = p[0] == ESP8266_V2_MAGIC ? ALOFT_E_ESP8266 : ALOFT_E_MAGIC;
            return 0;
        }
        memcpy(v->hold + v->pos, p, k);
        break;
    case PH_SEGHDR:
        memcpy(segment_header(v) + SEGHDR_BYTES - want, p, k);
        break;
    case PH_SEGDATA:
        if (v->seg == 0 && v->pos < ALOFT_IMAGE_IDENT_BYTES && v->info.seg_len[0] >= ALOFT_APP_DESC_BYTES) {
            size_t c = ALOFT_IMAGE_IDENT_BYTES - v->pos < k ? ALOFT_IMAGE_IDENT_BYTES - v->pos : k;
            memcpy(v->hold + v->pos, p, c);
            if (v->pos + c == ALOFT_IMAGE_IDENT_BYTES)
                decode_desc(v);
        }
        v->checksum = xor_bytes(v->checksum, p, k);
        break;
    case PH_CHECKSUM:
        v->info.checksum = p[0];
        break;
    case PH_HASH:
        memcpy(v->info.sha256 + SHA_BYTES - want, p, k);
        break;
    case PH_TAIL: {
        /* stop at the first bad byte, so what was consumed does not depend
         * on how the stream was chunked */
        size_t good = tail_ok(v, p, k);
        uint32_t sector = v->next - SIG_SECTOR;
        if (v->pos <= sector && v->pos + good > sector) {
            /* the signature covers everything before its sector */
            aloft_sha256_update(&v->sha, p, sector - v->pos);
            aloft_sha256_final(&v->sha, v->info.signed_sha256);
            v->info.signed_len = sector;
        } else if (v->pos < sector) {
            aloft_sha256_update(&v->sha, p, good);
        }
        v->pos += (uint32_t)good;
        if (good < n)
            v->err = ALOFT_E_TRAILING;
        return good;
    }
    case PH_PAD:
        break;
    }
    /* Everything from the header through the checksum byte is hashed (and
     * the appended hash, for the signature). */
    aloft_sha256_update(&v->sha, p, k);
    v->pos += (uint32_t)k;
    return k;
}

void aloft_image_begin(struct aloft_image_verifier *v, uint16_t expect_chip, uint32_t max_len)
{
    memset(v, 0, sizeof *v);
    v->expect_chip = expect_chip;
    v->max_len = max_len;
    v->checksum = CHECKSUM_SEED;
    aloft_sha256_init(&v->sha);
    enter(v, PH_HEADER, ALOFT_IMAGE_HEADER_BYTES);
}

int aloft_image_feed(struct aloft_image_verifier *v, const void *data, size_t len)
{
    if (v->err)
        return v->err;
    const uint8_t *p = data;
    /* Bytes past max_len are not looked at: an error earlier in the stream
     * wins, whatever the chunking. */
    bool over = v->max_len && len > v->max_len - v->pos;
    if (over)
        len = v->max_len - v->pos;
    while (!v->err) {
        while (!v->err && v->pos == v->next && v->phase != PH_TAIL)
            v->err = advance(v);
        if (v->err || !len)
            break;
        size_t k = consume(v, p, len);
        p += k;
        len -= k;
    }
    if (!v->err && over)
        v->err = ALOFT_E_NOSPC;
    v->info.total_len = v->pos;
    return v->err;
}

bool aloft_image_ident_ready(const struct aloft_image_verifier *v)
{
    return v->pos >= ALOFT_IMAGE_IDENT_BYTES || v->phase == PH_TAIL;
}

int aloft_image_end(struct aloft_image_verifier *v)
{
    /* a signature sector, once begun, must be whole */
    if (!v->err && (v->phase != PH_TAIL || (v->info.signed_len && v->pos != v->next)))
        v->err = ALOFT_E_TRUNCATED;
    return v->err;
}

int aloft_image_verify(const void *data, size_t len, uint16_t expect_chip, uint32_t max_len,
                       struct aloft_image_info *info)
{
    struct aloft_image_verifier v;
    aloft_image_begin(&v, expect_chip, max_len);
    int rc = aloft_image_feed(&v, data, len);
    if (rc == 0)
        rc = aloft_image_end(&v);
    if (info)
        *info = v.info;
    return rc;
}

int aloft_image_verify_flash(const struct aloft_flash *f, uint32_t addr, uint32_t max_len,
                             uint16_t expect_chip, struct aloft_image_info *info)
{
    if (!f || addr > f->size)
        return ALOFT_E_INVAL;
    if (!max_len || max_len > f->size - addr)
        max_len = f->size - addr;
    struct aloft_image_verifier v;
    uint8_t buf[FLASH_CHUNK];
    aloft_image_begin(&v, expect_chip, max_len);
    int rc = 0;
    /* Read phase by phase and stop at the image's end: what follows in the
     * slot is erased flash or an old image's tail, not part of this one. */
    while (!rc && v.phase != PH_TAIL) {
        uint32_t n = v.next - v.pos;
        if (n > FLASH_CHUNK)
            n = FLASH_CHUNK;
        if (n > max_len - v.pos)
            n = max_len - v.pos;
        if (!n) {
            rc = ALOFT_E_NOSPC;
            break;
        }
        rc = aloft_flash_read(f, addr + v.pos, buf, n);
        if (!rc)
            rc = aloft_image_feed(&v, buf, n);
    }
    if (!rc)
        rc = aloft_image_end(&v);
    if (info)
        *info = v.info;
    return rc;
}
