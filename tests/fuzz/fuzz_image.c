/* libFuzzer harness: the streaming image verifier (core/image.c), and the
 * signature blocks of what verifies with a sector (core/sig.c).
 *
 * The verifier promises that every check happens at a fixed stream position,
 * so the chunking never changes the result. The input is fed twice: in chunks
 * whose sizes come from its first bytes, and whole (aloft_image_verify). Both
 * must give the same result and the same aloft_image_info; anything else
 * aborts. Input layout:
 *
 *   byte 0    low nibble: k, how many chunk-size bytes follow byte 1 (0: one
 *             byte at a time); high nibble: max_len (0: none, 1..14: that many
 *             eighths of the image's length, 15: 64 KB)
 *   byte 1    expected chip: 0xFF ALOFT_CHIP_ANY, otherwise its low 5 bits
 *   k bytes   chunk sizes, used in turn: 0..127 bytes, or with the top bit
 *             set ((b & 0x7F) + 1) * 64 bytes
 *   the rest  the image */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/sig.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_image: %s\n", what);
    abort();
}

static size_t chunk_size(uint8_t b)
{
    return b & 0x80 ? ((size_t)(b & 0x7F) + 1) * 64 : b;
}

#define SAME(a, b, field)                                                                                              \
    do {                                                                                                               \
        if (memcmp(&(a)->field, &(b)->field, sizeof(a)->field))                                                        \
            fail("chunked and whole feeding disagree on info." #field);                                                \
    } while (0)

/* What aloft_image_ident_ready promises to be final. */
static void same_ident(const struct aloft_image_info *a, const struct aloft_image_info *b)
{
    SAME(a, b, chip_id);
    SAME(a, b, segment_count);
    SAME(a, b, spi_mode);
    SAME(a, b, spi_speed);
    SAME(a, b, spi_size);
    SAME(a, b, entry_addr);
    SAME(a, b, wp_pin);
    SAME(a, b, min_chip_rev);
    SAME(a, b, min_chip_rev_full);
    SAME(a, b, max_chip_rev_full);
    SAME(a, b, hash_appended);
    SAME(a, b, has_desc);
    SAME(a, b, desc.secure_version);
    SAME(a, b, desc.version);
    SAME(a, b, desc.project_name);
    SAME(a, b, desc.time);
    SAME(a, b, desc.date);
    SAME(a, b, desc.idf_ver);
    SAME(a, b, desc.app_elf_sha256);
    SAME(a, b, desc.min_efuse_blk_rev_full);
    SAME(a, b, desc.max_efuse_blk_rev_full);
    SAME(a, b, desc.mmu_page_size);
}

static void same_info(const struct aloft_image_info *a, const struct aloft_image_info *b)
{
    same_ident(a, b);
    SAME(a, b, seg_load_addr);
    SAME(a, b, seg_len);
    SAME(a, b, seg_offset);
    SAME(a, b, checksum);
    SAME(a, b, sha256);
    SAME(a, b, image_len);
    SAME(a, b, total_len);
    SAME(a, b, signed_len);
    SAME(a, b, signed_sha256);
}

/* The signature blocks of a verified image's sector (core/sig.c): each is
 * parsed from a private 1216-byte copy (ASan sees reads past it), and what
 * parses points inside the block, before its CRC. */
static void blocks(const uint8_t *sector)
{
    for (unsigned i = 0; i < ALOFT_SIG_BLOCKS_MAX; i++) {
        uint8_t *b = malloc(ALOFT_SIG_BLOCK_BYTES);
        if (!b)
            abort();
        memcpy(b, sector + i * ALOFT_SIG_BLOCK_BYTES, ALOFT_SIG_BLOCK_BYTES);
        struct aloft_sig_block blk;
        int rc = aloft_sig_parse(b, &blk);
        if (rc == 0 && (blk.digest < b || blk.key != blk.digest + blk.digest_len || blk.sig != blk.key + blk.key_len ||
                        blk.sig + blk.sig_len > b + ALOFT_SIG_CRC_BYTES))
            fail("a parsed signature block points outside itself");
        if (rc != 0 && rc != ALOFT_E_NOTFOUND && rc != ALOFT_E_CORRUPT && rc != ALOFT_E_SIGNATURE)
            fail("aloft_sig_parse returned an undocumented error");
        free(b);
        if (rc == ALOFT_E_NOTFOUND)
            break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t k = data[0] & 0x0F;
    unsigned m = data[0] >> 4;
    uint16_t chip = data[1] == 0xFF ? ALOFT_CHIP_ANY : (uint16_t)(data[1] & 0x1F);
    if (size < 2 + k)
        return 0;
    size_t sizes[15];
    size_t sum = 0;
    for (size_t i = 0; i < k; i++)
        sum += sizes[i] = chunk_size(data[2 + i]);
    if (k == 0 || sum == 0) {
        k = 1;
        sizes[0] = 1;
    }
    const uint8_t *img = data + 2 + (data[0] & 0x0F);
    size_t len = size - 2 - (data[0] & 0x0F);
    uint32_t max_len = m == 0 ? 0 : m == 15 ? 0x10000u : (uint32_t)(len * m / 8);

    /* Chunked. The verifier is on the heap so that ASan sees overruns. */
    struct aloft_image_verifier *v = malloc(sizeof *v);
    struct aloft_image_info ident;
    if (!v)
        return 0;
    aloft_image_begin(v, chip, max_len);
    bool ident_seen = false;
    int sticky = 0;
    for (size_t at = 0, i = 0; at < len; i = (i + 1) % k) {
        size_t n = sizes[i] < len - at ? sizes[i] : len - at;
        /* A private copy of each chunk: reads past it are caught. */
        uint8_t *chunk = malloc(n ? n : 1);
        if (!chunk)
            abort();
        memcpy(chunk, img + at, n);
        int rc = aloft_image_feed(v, chunk, n);
        free(chunk);
        at += n;
        if (sticky && rc != sticky)
            fail("an error did not stay");
        if (rc > 0)
            fail("feed returned a positive value");
        sticky = rc;
        if (!ident_seen && aloft_image_ident_ready(v)) {
            ident = v->info;
            ident_seen = true;
        }
    }
    int rc_chunked = aloft_image_end(v);
    if (sticky && rc_chunked != sticky)
        fail("end did not return the error feed returned");
    if (ident_seen)
        same_ident(&ident, &v->info);

    /* Whole. */
    struct aloft_image_info whole;
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        abort();
    memcpy(copy, img, len);
    int rc_whole = aloft_image_verify(copy, len, chip, max_len, &whole);
    free(copy);

    if (rc_chunked != rc_whole) {
        fprintf(stderr, "fuzz_image: chunked gives %d, whole gives %d\n", rc_chunked, rc_whole);
        abort();
    }
    same_info(&v->info, &whole);
    if (rc_whole == 0) {
        if (whole.total_len != len)
            fail("a verified image did not take every byte fed");
        if (whole.image_len > whole.total_len || (whole.image_len - (whole.hash_appended ? 32u : 0u)) % 16)
            fail("a verified image has an impossible image_len");
        if (max_len && len > max_len)
            fail("an image longer than max_len verified");
        if (chip != ALOFT_CHIP_ANY && whole.chip_id != chip)
            fail("an image for another chip verified");
        if (whole.signed_len && (whole.signed_len % ALOFT_SIG_SECTOR_BYTES ||
                                 whole.signed_len + ALOFT_SIG_SECTOR_BYTES != len))
            fail("a verified image's signature sector is not its last 4 KB");
        if (whole.signed_len)
            blocks(img + whole.signed_len);
    }
    free(v);
    return 0;
}
