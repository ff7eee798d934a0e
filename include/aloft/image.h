/* aloft: ESP app images (FORMATS.md §3), verified as a stream. */
#ifndef ALOFT_IMAGE_H
#define ALOFT_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/crypto.h"

#define ALOFT_IMAGE_MAGIC 0xE9u
#define ALOFT_IMAGE_HEADER_BYTES 24u
#define ALOFT_IMAGE_SEGMENTS_MAX 16u
#define ALOFT_APP_DESC_MAGIC 0xABCD5432u
#define ALOFT_APP_DESC_OFFSET 0x20u
#define ALOFT_APP_DESC_BYTES 256u
/* Header + first segment header + descriptor: enough to identify an image. */
#define ALOFT_IMAGE_IDENT_BYTES (ALOFT_APP_DESC_OFFSET + ALOFT_APP_DESC_BYTES)
#define ALOFT_CHIP_ANY 0xFFFFu

/* esp_app_desc_t, decoded. Strings are NUL-terminated copies. */
struct aloft_app_desc {
    uint32_t secure_version;
    char version[33];
    char project_name[33];
    char time[17];
    char date[17];
    char idf_ver[33];
    uint8_t app_elf_sha256[32];
    uint16_t min_efuse_blk_rev_full;
    uint16_t max_efuse_blk_rev_full;
    uint8_t mmu_page_size; /* log2 */
};

struct aloft_image_info {
    uint16_t chip_id;
    uint8_t segment_count;
    uint8_t spi_mode;
    uint8_t spi_speed;      /* low nibble of byte 3 */
    uint8_t spi_size;       /* high nibble of byte 3 */
    uint32_t entry_addr;
    uint8_t wp_pin;
    uint8_t min_chip_rev;
    uint16_t min_chip_rev_full;
    uint16_t max_chip_rev_full;
    bool hash_appended;
    uint32_t seg_load_addr[ALOFT_IMAGE_SEGMENTS_MAX];
    uint32_t seg_len[ALOFT_IMAGE_SEGMENTS_MAX];
    uint32_t seg_offset[ALOFT_IMAGE_SEGMENTS_MAX]; /* file offset of the data */
    uint8_t checksum;       /* the stored checksum byte */
    uint8_t sha256[32];     /* the stored hash (when hash_appended) */
    uint32_t image_len;     /* header..checksum(+hash): what the bootloader reads */
    uint32_t total_len;     /* bytes fed, including an accepted secure-boot tail */
    uint32_t signed_len;    /* where the signature sector starts (the padded
                             * image it signs ends), 0 without one */
    uint8_t signed_sha256[32]; /* SHA-256 of those signed_len bytes */
    bool has_desc;          /* segment 0 (>= 256 bytes) starts with the
                             * esp_app_desc_t magic; false for bootloaders and
                             * non-ESP-IDF images, which still verify */
    struct aloft_app_desc desc;
};

/* Streaming verifier state. Caller-allocated; no buffers beyond these. */
struct aloft_image_verifier {
    uint16_t expect_chip;   /* ALOFT_CHIP_ANY to accept any known chip */
    uint32_t max_len;       /* slot size; 0 = no limit */
    uint32_t pos;           /* bytes consumed */
    uint32_t next;          /* position where the current phase ends */
    uint8_t phase;
    uint8_t seg;            /* current segment index */
    uint8_t checksum;       /* running XOR */
    int err;                /* sticky: first error seen */
    uint8_t hold[ALOFT_IMAGE_IDENT_BYTES]; /* header, segment headers, descriptor;
                                            * segment data is never copied */
    struct aloft_sha256 sha;
    struct aloft_image_info info;
};

/* Start verifying. expect_chip: a chip id or ALOFT_CHIP_ANY; max_len: bytes
 * the whole image may take (the slot size), 0 for no limit. */
void aloft_image_begin(struct aloft_image_verifier *v, uint16_t expect_chip, uint32_t max_len);

/* Feed the next len bytes (any chunking: 1 byte to the whole image; every
 * check happens at a fixed stream position, so the result never depends on
 * it). Returns 0 or the first error, which stays:
 *   ALOFT_E_MAGIC     first byte not 0xE9 (known from the first byte)
 *   ALOFT_E_ESP8266   first byte 0xEA, or 0xE9 with the entry point in the
 *                     ESP8266's IRAM (0x4010xxxx) and the first segment
 *                     loading into ESP8266 memory (core/image.c says why
 *                     no ESP32-family image matches)
 *   ALOFT_E_SEGMENTS  segment count 0 or above 16
 *   ALOFT_E_CHIP      chip id unknown, or not expect_chip
 *   ALOFT_E_HEADER    hash_appended not 0/1, or spi_mode above 5; other
 *                     header bytes are left to the SHA-256, like esptool
 *   ALOFT_E_SEGMENT   a segment length not a multiple of 4 or >= 16 MB
 *   ALOFT_E_NOSPC     more than max_len bytes, as soon as known: a segment
 *                     header that leaves no room for the rest counts
 *   ALOFT_E_CHECKSUM  XOR of the segment data (seed 0xEF) differs
 *   ALOFT_E_HASH      appended SHA-256 differs
 *   ALOFT_E_TRAILING  bytes after the image other than a secure boot v2
 *                     tail: 0xFF padding to a 4 KB boundary, then at most
 *                     one 4 KB signature sector starting with 0xE7
 * Once the sector's first byte is in, info.signed_len and signed_sha256 are
 * set (the signature's business is sig.h's). */
int aloft_image_feed(struct aloft_image_verifier *v, const void *data, size_t len);

/* True once header, first segment header and descriptor area are in
 * (ALOFT_IMAGE_IDENT_BYTES fed, or the image ended sooner): from then on
 * v->info's header fields, has_desc and desc are final. */
bool aloft_image_ident_ready(const struct aloft_image_verifier *v);

/* The stream has ended. Returns 0 when the whole image was seen and every
 * check passed, the sticky error, or ALOFT_E_TRUNCATED (also for a
 * signature sector cut short). */
int aloft_image_end(struct aloft_image_verifier *v);

/* Verify a whole image held in memory: begin, feed, end in one call. Fills
 * *info (may be NULL) as far as the image was read. Same errors as
 * feed/end. Uses a verifier on the stack (about 1 KB): for hosts. */
int aloft_image_verify(const void *data, size_t len, uint16_t expect_chip, uint32_t max_len,
                       struct aloft_image_info *info);

/* Verify an image already in flash (addr, at most max_len bytes; 0: up to
 * the end of the flash), reading it in chunks of at most 256 bytes and not
 * past the image's end: what follows in the slot is not looked at. The
 * verifier lives on the stack (about 1.2 KB with the read buffer). Fills
 * *info (may be NULL), also on failure as far as it got. Same errors as
 * feed/end, plus ALOFT_E_INVAL (addr outside the flash) and whatever the
 * port's read returns (ALOFT_E_IO, ALOFT_E_POWER). Used by the boot logic. */
struct aloft_flash;
int aloft_image_verify_flash(const struct aloft_flash *f, uint32_t addr, uint32_t max_len,
                             uint16_t expect_chip, struct aloft_image_info *info);

/* Chip name ("esp32s3") for an id, or NULL; id for a name, or -1. */
const char *aloft_chip_name(uint16_t chip_id);
int aloft_chip_id(const char *name);

#endif
