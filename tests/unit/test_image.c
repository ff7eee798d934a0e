/* image: the streaming verifier against real ESP-IDF and esptool images fed
 * in any chunking, every kind of damage, the secure boot tail, flash
 * verification; the image synthesiser and its simulator record; the
 * `aloft image` commands. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/port.h"
#include "file.h"
#include "image_make.h"

#define S3 9
#define C3 5
#define V043 "v0.4.3.1-esp32-3-g66e2fa083-dir"

static const char *const s3_apps[][2] = {
    {"esp-idf/esp32s3-csi-node-v0.4.3.bin", V043},
    {"esp-idf/esp32s3-csi-node-4mb-v0.4.3.bin", V043},
    {"esp-idf/esp32s3-csi-node-v0.6.4.bin", "0.6.4"},
};

static const char *const all_chips[] = {"esp32",   "esp32s2", "esp32c3", "esp32s3",  "esp32c2",
                                        "esp32c6", "esp32h2", "esp32p4", "esp32c61", "esp32c5"};
#define N_CHIPS (sizeof all_chips / sizeof all_chips[0])

/* Feed img in chunks of `chunk` bytes (0: all at once) and end the stream. */
static int verify(const uint8_t *img, size_t len, size_t chunk, uint16_t chip, uint32_t max_len,
                  struct aloft_image_info *info)
{
    struct aloft_image_verifier v;
    aloft_image_begin(&v, chip, max_len);
    if (!chunk)
        chunk = len ? len : 1;
    int fed = 0;
    for (size_t off = 0; off < len; off += chunk) {
        int rc = aloft_image_feed(&v, img + off, len - off < chunk ? len - off : chunk);
        if (fed && rc != fed)
            fail_msg("error %d was not sticky (then %d)", fed, rc);
        fed = rc;
    }
    int rc = aloft_image_end(&v);
    if (fed)
        assert_int_equal(rc, fed);
    if (info)
        *info = v.info;
    return rc;
}

static uint8_t *copy_of(const uint8_t *img, size_t len, size_t cap)
{
    uint8_t *c = malloc(cap > len ? cap : len);
    assert_non_null(c);
    memcpy(c, img, len);
    return c;
}

static void wr32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint8_t *make(const char *chip, const char *project, const char *version, uint32_t size,
                     const char *sim, size_t *len)
{
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id(chip), .project = project,
                                      .version = version, .secure_version = 3, .size = size, .sim = sim};
    uint8_t *img;
    assert_int_equal(aloft_image_make(&o, &img, len), 0);
    return img;
}

static void test_chip_names(void **state)
{
    (void)state;
    static const uint16_t ids[N_CHIPS] = {0, 2, 5, 9, 12, 13, 16, 18, 20, 23};
    for (size_t i = 0; i < N_CHIPS; i++) {
        assert_string_equal(aloft_chip_name(ids[i]), all_chips[i]);
        assert_int_equal(aloft_chip_id(all_chips[i]), ids[i]);
    }
    assert_null(aloft_chip_name(1));
    assert_null(aloft_chip_name(ALOFT_CHIP_ANY));
    assert_int_equal(aloft_chip_id("esp32s"), -1);
    assert_int_equal(aloft_chip_id("esp32s3x"), -1);
    assert_int_equal(aloft_chip_id("ESP32S3"), -1);
    assert_int_equal(aloft_chip_id(""), -1);
    assert_int_equal(aloft_chip_id(NULL), -1);
}

/* The three real ESP32-S3 releases: same verdict and same info whatever the
 * chunking, and the descriptor the build put there. */
static void test_real_apps_any_chunking(void **state)
{
    (void)state;
    static const size_t chunks[] = {1, 3, 7, 64, 4096, 0};
    for (size_t f = 0; f < 3; f++) {
        size_t len;
        uint8_t *img = aloft_test_fixture(s3_apps[f][0], &len);
        struct aloft_image_info whole;
        assert_int_equal(verify(img, len, 0, S3, 0, &whole), 0);
        assert_int_equal(whole.chip_id, S3);
        assert_int_equal(whole.segment_count, 6);
        assert_true(whole.hash_appended);
        assert_true(whole.has_desc);
        assert_string_equal(whole.desc.project_name, "esp32-csi-node");
        assert_string_equal(whole.desc.version, s3_apps[f][1]);
        assert_int_equal(whole.desc.secure_version, 0);
        assert_int_equal(whole.desc.mmu_page_size, 16);
        assert_int_equal(whole.image_len, len);
        assert_int_equal(whole.total_len, len);
        assert_int_equal(whole.seg_offset[0], ALOFT_APP_DESC_OFFSET);
        assert_memory_equal(whole.sha256, img + len - 32, 32);
        assert_int_equal(whole.checksum, img[len - 33]);
        assert_int_equal(whole.spi_mode, 2);
        assert_int_equal(whole.max_chip_rev_full, 99);
        for (size_t c = 0; c < sizeof chunks / sizeof chunks[0]; c++) {
            struct aloft_image_info info;
            assert_int_equal(verify(img, len, chunks[c], S3, 0, &info), 0);
            assert_memory_equal(&info, &whole, sizeof info);
            assert_int_equal(verify(img, len, chunks[c], ALOFT_CHIP_ANY, (uint32_t)len, NULL), 0);
        }
        free(img);
    }
}

/* esptool elf2image output with padding segments and no descriptor. */
static void test_c3_without_descriptor(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32c3-elf2image-no-desc.bin", &len);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, C3, 0, &info), 0);
    assert_string_equal(aloft_chip_name(info.chip_id), "esp32c3");
    assert_false(info.has_desc);
    assert_int_equal(info.desc.project_name[0], 0);
    assert_int_equal(info.segment_count, 6);
    assert_int_equal(info.seg_load_addr[2], 0);
    assert_int_equal(info.image_len, len);
    assert_int_equal(verify(img, len, 7, ALOFT_CHIP_ANY, 0, NULL), 0);
    assert_int_equal(verify(img, len, 0, S3, 0, NULL), ALOFT_E_CHIP);
    free(img);
}

/* The second-stage bootloader is a well-formed image (the ROM verifies it the
 * same way) without an app descriptor: it verifies, has_desc is false, and
 * refusing it for an app slot is the caller's policy. */
static void test_bootloader_is_an_image_without_descriptor(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-bootloader.bin", &len);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 3, S3, 0, &info), 0);
    assert_int_equal(info.chip_id, S3);
    assert_int_equal(info.segment_count, 4);
    assert_false(info.has_desc);
    assert_int_equal(info.image_len, len);
    free(img);
}

static void test_ident_ready_after_288_bytes(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.6.4.bin", &len);
    struct aloft_image_verifier v;
    aloft_image_begin(&v, S3, 0);
    for (size_t i = 0; i < ALOFT_IMAGE_IDENT_BYTES - 1; i++) {
        assert_int_equal(aloft_image_feed(&v, img + i, 1), 0);
        assert_false(aloft_image_ident_ready(&v));
    }
    assert_false(v.info.has_desc);
    assert_int_equal(aloft_image_feed(&v, img + ALOFT_IMAGE_IDENT_BYTES - 1, 1), 0);
    assert_true(aloft_image_ident_ready(&v));
    assert_true(v.info.has_desc);
    assert_int_equal(v.info.chip_id, S3);
    assert_string_equal(v.info.desc.version, "0.6.4");
    assert_string_equal(v.info.desc.project_name, "esp32-csi-node");

    /* One chunk of exactly 288 bytes does the same; the rest changes nothing. */
    aloft_image_begin(&v, S3, 0);
    assert_int_equal(aloft_image_feed(&v, img, ALOFT_IMAGE_IDENT_BYTES), 0);
    assert_true(aloft_image_ident_ready(&v));
    struct aloft_app_desc early = v.info.desc;
    assert_int_equal(aloft_image_feed(&v, img + ALOFT_IMAGE_IDENT_BYTES, len - ALOFT_IMAGE_IDENT_BYTES), 0);
    assert_int_equal(aloft_image_end(&v), 0);
    assert_memory_equal(&early, &v.info.desc, sizeof early);
    free(img);
}

static void test_empty_is_truncated(void **state)
{
    (void)state;
    struct aloft_image_verifier v;
    aloft_image_begin(&v, ALOFT_CHIP_ANY, 0);
    assert_int_equal(aloft_image_feed(&v, NULL, 0), 0);
    assert_false(aloft_image_ident_ready(&v));
    assert_int_equal(aloft_image_end(&v), ALOFT_E_TRUNCATED);
}

/* An image shorter than 288 bytes: identified when it ends. Its segment 0
 * starts with the descriptor magic but is too short to hold a descriptor. */
static void test_tiny_image(void **state)
{
    (void)state;
    uint8_t b[96] = {0xE9, 1, 2, 0x2F, 0x00, 0x00, 0x38, 0x40, 0xEE};
    b[12] = C3;
    b[23] = 1;
    wr32(b + 24, 0x3FC80000u);
    wr32(b + 28, 16);
    wr32(b + 32, ALOFT_APP_DESC_MAGIC);
    aloft_test_fill(b + 36, 12, 3);
    /* Data ends at 48: zero padding, the checksum at 63, the hash at 64. */
    uint8_t x = 0xEF;
    for (int i = 32; i < 48; i++)
        x ^= b[i];
    b[63] = x;
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, b, 64);
    aloft_sha256_final(&s, b + 64);
    struct aloft_image_verifier v;
    aloft_image_begin(&v, C3, sizeof b);
    assert_int_equal(aloft_image_feed(&v, b, sizeof b - 1), 0);
    assert_false(aloft_image_ident_ready(&v));
    assert_int_equal(aloft_image_feed(&v, b + sizeof b - 1, 1), 0);
    assert_true(aloft_image_ident_ready(&v));
    assert_int_equal(aloft_image_end(&v), 0);
    assert_false(v.info.has_desc);
    assert_int_equal(v.info.image_len, sizeof b);
    assert_int_equal(verify(b, sizeof b, 1, C3, sizeof b - 1, NULL), ALOFT_E_NOSPC);
}

static void expect_truncated(const uint8_t *img, size_t cut)
{
    if (verify(img, cut, 0, S3, 0, NULL) != ALOFT_E_TRUNCATED)
        fail_msg("cut at %zu: not reported as truncated", cut);
}

static void test_truncated_at_boundaries(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-4mb-v0.4.3.bin", &len);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, S3, 0, &info), 0);
    size_t points[64], n = 0;
    points[n++] = 1;
    points[n++] = ALOFT_IMAGE_HEADER_BYTES;
    points[n++] = ALOFT_IMAGE_IDENT_BYTES;
    for (unsigned s = 0; s < info.segment_count; s++) {
        points[n++] = info.seg_offset[s] - 8;                 /* segment header */
        points[n++] = info.seg_offset[s];                     /* data */
        points[n++] = info.seg_offset[s] + info.seg_len[s];   /* data end */
    }
    points[n++] = len - 33; /* checksum */
    points[n++] = len - 32; /* hash */
    expect_truncated(img, 0);
    for (size_t i = 0; i < n; i++)
        for (int d = -1; d <= 1; d++)
            if (points[i] + (size_t)d < len)
                expect_truncated(img, points[i] + (size_t)d);
    expect_truncated(img, len - 1);
    free(img);
}

static void test_truncated_at_random_points(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32c3-elf2image-no-desc.bin", &len);
    uint32_t r[200];
    aloft_test_fill((uint8_t *)r, sizeof r, 0x1234);
    for (size_t i = 0; i < 200; i++) {
        size_t cut = r[i] % len;
        if (verify(img, cut, 1 + r[i] % 5000, C3, 0, NULL) != ALOFT_E_TRUNCATED)
            fail_msg("cut at %zu: not reported as truncated", cut);
    }
    free(img);
}

/* One damaged copy of the C3 image (with SHA-256) per case. */
static int corrupt_byte(const uint8_t *img, size_t len, size_t at, uint8_t value, uint16_t chip)
{
    uint8_t *c = copy_of(img, len, len);
    c[at] = value;
    int rc = verify(c, len, 0, chip, 0, NULL);
    /* Chunking never changes the verdict, errors included. */
    assert_int_equal(verify(c, len, 5, chip, 0, NULL), rc);
    free(c);
    return rc;
}

static void test_header_fields(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32c3-elf2image-no-desc.bin", &len);
    assert_int_equal(corrupt_byte(img, len, 0, 0x00, C3), ALOFT_E_MAGIC);
    assert_int_equal(corrupt_byte(img, len, 0, 0xE8, C3), ALOFT_E_MAGIC);
    assert_int_equal(corrupt_byte(img, len, 1, 0, C3), ALOFT_E_SEGMENTS);
    assert_int_equal(corrupt_byte(img, len, 1, 17, C3), ALOFT_E_SEGMENTS);
    assert_int_equal(corrupt_byte(img, len, 12, S3, C3), ALOFT_E_CHIP);
    /* A known chip passes the header check with ALOFT_CHIP_ANY, but the
     * SHA-256 covers the header. */
    assert_int_equal(corrupt_byte(img, len, 12, S3, ALOFT_CHIP_ANY), ALOFT_E_HASH);
    assert_int_equal(corrupt_byte(img, len, 12, 0x42, ALOFT_CHIP_ANY), ALOFT_E_CHIP);
    assert_int_equal(corrupt_byte(img, len, 13, 0x01, ALOFT_CHIP_ANY), ALOFT_E_CHIP);
    assert_int_equal(corrupt_byte(img, len, 23, 2, C3), ALOFT_E_HEADER);
    assert_int_equal(corrupt_byte(img, len, 2, 6, C3), ALOFT_E_HEADER);
    assert_int_equal(corrupt_byte(img, len, 2, 3, C3), ALOFT_E_HASH);
    /* Every other header byte is not checked on its own: the hash is. */
    static const size_t others[] = {3, 4, 5, 6, 7, 8, 9, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        size_t at = others[i];
        if (corrupt_byte(img, len, at, img[at] ^ 0x01, C3) != ALOFT_E_HASH)
            fail_msg("header byte %zu flipped: not caught by the hash", at);
    }
    /* Without the hash, hash_appended = 0 shifts where the image ends. */
    assert_int_equal(corrupt_byte(img, len, 23, 0, C3), ALOFT_E_TRAILING);
    free(img);
}

static void test_segment_headers(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32c3-elf2image-no-desc.bin", &len);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, C3, 0, &info), 0);
    for (unsigned s = 0; s < info.segment_count; s++) {
        size_t hdr = info.seg_offset[s] - 8;
        uint8_t *c = copy_of(img, len, len);
        wr32(c + hdr + 4, info.seg_len[s] + 2);
        assert_int_equal(verify(c, len, 0, C3, 0, NULL), ALOFT_E_SEGMENT);
        wr32(c + hdr + 4, 0x1000000u);
        assert_int_equal(verify(c, len, 0, C3, 0, NULL), ALOFT_E_SEGMENT);
        wr32(c + hdr + 4, 0xFFFFFFFCu);
        assert_int_equal(verify(c, len, 9, C3, 0, NULL), ALOFT_E_SEGMENT);
        memcpy(c, img, len);
        c[hdr] ^= 0x10; /* load address: only the hash covers it */
        assert_int_equal(verify(c, len, 0, C3, 0, NULL), ALOFT_E_HASH);
        free(c);
    }
    free(img);
}

static void test_data_checksum_and_hash(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32c3-elf2image-no-desc.bin", &len);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, C3, 0, &info), 0);
    uint32_t r[64];
    aloft_test_fill((uint8_t *)r, sizeof r, 77);
    uint8_t *c = copy_of(img, len, len);
    /* A flipped bit in any segment's data changes the XOR checksum, which
     * comes before the hash. */
    for (unsigned s = 0; s < info.segment_count; s++) {
        for (int k = 0; k < 8; k++) {
            size_t at = info.seg_offset[s] + r[s * 8 + k] % info.seg_len[s];
            c[at] ^= (uint8_t)(1u << k);
            if (verify(c, len, k == 0 ? 1 : 4096, C3, 0, NULL) != ALOFT_E_CHECKSUM)
                fail_msg("flip at %zu (segment %u) not caught by the checksum", at, s);
            c[at] = img[at];
        }
    }
    /* Padding before the checksum is covered by the hash only. */
    size_t last_end = info.seg_offset[5] + info.seg_len[5];
    assert_true(last_end < len - 33);
    c[last_end] ^= 0x80;
    assert_int_equal(verify(c, len, 0, C3, 0, NULL), ALOFT_E_HASH);
    c[last_end] = img[last_end];
    c[len - 33] ^= 0x01;
    assert_int_equal(verify(c, len, 0, C3, 0, NULL), ALOFT_E_CHECKSUM);
    c[len - 33] = img[len - 33];
    for (size_t at = len - 32; at < len; at += 7) {
        c[at] ^= 0x40;
        assert_int_equal(verify(c, len, 3, C3, 0, NULL), ALOFT_E_HASH);
        c[at] = img[at];
    }
    assert_int_equal(verify(c, len, 0, C3, 0, NULL), 0);
    free(c);
    free(img);
}

/* hash_appended = 0: the image ends at the checksum byte. */
static void test_image_without_hash(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = make("esp32s3", "nohash", "1", 0, NULL, &len);
    img[23] = 0;
    struct aloft_image_info info;
    assert_int_equal(verify(img, len - 32, 0, S3, 0, &info), 0);
    assert_false(info.hash_appended);
    assert_int_equal(info.image_len, len - 32);
    img[100] ^= 1;
    assert_int_equal(verify(img, len - 32, 0, S3, 0, NULL), ALOFT_E_CHECKSUM);
    free(img);
}

static void test_max_len(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.6.4.bin", &len);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, S3, (uint32_t)len, &info), 0);
    assert_int_equal(verify(img, len, 0, S3, (uint32_t)len - 1, NULL), ALOFT_E_NOSPC);
    assert_int_equal(verify(img, len, 1, S3, (uint32_t)len - 1, NULL), ALOFT_E_NOSPC);

    /* Known as soon as the last segment header is in: the image can no
     * longer fit, long before its last byte. */
    size_t last_hdr_end = info.seg_offset[5];
    struct aloft_image_verifier v;
    aloft_image_begin(&v, S3, (uint32_t)len - 1);
    assert_int_equal(aloft_image_feed(&v, img, last_hdr_end - 1), 0);
    assert_int_equal(aloft_image_feed(&v, img + last_hdr_end - 1, 1), ALOFT_E_NOSPC);

    /* A 1000-byte slot: the first segment header already claims more. */
    aloft_image_begin(&v, S3, 1000);
    assert_int_equal(aloft_image_feed(&v, img, 31), 0);
    assert_int_equal(aloft_image_feed(&v, img + 31, 1), ALOFT_E_NOSPC);
    assert_int_equal(aloft_image_end(&v), ALOFT_E_NOSPC);

    /* A secure-boot tail must fit the slot too. */
    uint8_t *c = copy_of(img, len, len + 4096);
    memset(c + len, 0xFF, 4096);
    c[(len + 4095) & ~(size_t)4095] = 0xE7;
    assert_int_equal(verify(c, len + 10, 0, S3, (uint32_t)len + 10, NULL), 0);
    assert_int_equal(verify(c, len + 10, 0, S3, (uint32_t)len + 9, NULL), ALOFT_E_NOSPC);
    free(c);
    free(img);
}

static void test_errors_are_sticky(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32c3-elf2image-no-desc.bin", &len);
    struct aloft_image_verifier v;
    aloft_image_begin(&v, S3, 0);
    assert_int_equal(aloft_image_feed(&v, img, 64), ALOFT_E_CHIP);
    assert_int_equal(aloft_image_feed(&v, img + 64, len - 64), ALOFT_E_CHIP);
    assert_int_equal(aloft_image_end(&v), ALOFT_E_CHIP);
    assert_int_equal(aloft_image_feed(&v, img, len), ALOFT_E_CHIP);
    free(img);
}

/* A v1 ESP8266 image (8-byte header) with its checksum. */
static size_t esp8266_v1(uint8_t *b)
{
    memset(b, 0, 64);
    b[0] = 0xE9;
    b[1] = 2;
    b[3] = 0x20;
    wr32(b + 4, 0x40100004u);
    wr32(b + 8, 0x40100000u);
    wr32(b + 12, 16);
    aloft_test_fill(b + 16, 16, 5);
    wr32(b + 32, 0x3FFE8000u);
    wr32(b + 36, 8);
    aloft_test_fill(b + 40, 8, 6);
    uint8_t x = 0xEF;
    for (int i = 16; i < 32; i++)
        x ^= b[i];
    for (int i = 40; i < 48; i++)
        x ^= b[i];
    b[63] = x;
    return 64;
}

static void test_esp8266(void **state)
{
    (void)state;
    uint8_t b[64];
    size_t n = esp8266_v1(b);
    assert_int_equal(verify(b, n, 0, ALOFT_CHIP_ANY, 0, NULL), ALOFT_E_ESP8266);
    assert_int_equal(verify(b, n, 1, 0, 0, NULL), ALOFT_E_ESP8266);
    /* v3 (ESP8266 RTOS SDK): the ESP32 header layout, chip id bytes zero,
     * IROM segment first. Without the check it would pass as an "esp32". */
    memset(b, 0, sizeof b);
    b[0] = 0xE9;
    b[1] = 1;
    b[2] = 2;
    wr32(b + 4, 0x40100010u);
    wr32(b + 24, 0x40201010u);
    wr32(b + 28, 16);
    assert_int_equal(verify(b, 48, 0, ALOFT_CHIP_ANY, 0, NULL), ALOFT_E_ESP8266);
    /* v2 images start with 0xEA: known from the first byte. */
    struct aloft_image_verifier v;
    aloft_image_begin(&v, ALOFT_CHIP_ANY, 0);
    assert_int_equal(aloft_image_feed(&v, "\xEA", 1), ALOFT_E_ESP8266);
}

/* Secure boot v2: 0xFF padding to 4 KB, then one signature sector. */
static void test_trailing_and_signature_tail(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32c3-elf2image-no-desc.bin", &len);
    size_t padded = (len + 4095) & ~(size_t)4095;
    assert_true(padded > len);
    uint8_t *c = copy_of(img, len, padded + 4096 + 16);
    memset(c + len, 0xFF, padded - len);
    aloft_test_fill(c + padded, 4096 + 16, 9);
    c[padded] = 0xE7;
    struct aloft_image_info info;
    assert_int_equal(verify(c, padded + 4096, 0, C3, 0, &info), 0);
    assert_int_equal(info.image_len, len);
    assert_int_equal(info.total_len, padded + 4096);
    assert_int_equal(verify(c, padded + 4096, 1, C3, 0, NULL), 0);
    assert_int_equal(verify(c, padded + 4096, 4096, C3, 0, NULL), 0);
    assert_int_equal(verify(c, padded, 0, C3, 0, NULL), 0);          /* padding only */
    assert_int_equal(verify(c, len + 5, 3, C3, 0, NULL), 0);         /* part of it */
    assert_int_equal(verify(c, padded + 4097, 0, C3, 0, NULL), ALOFT_E_TRAILING);
    assert_int_equal(verify(c, padded + 4097, 7, C3, 0, NULL), ALOFT_E_TRAILING);
    c[padded] = 0x00;
    assert_int_equal(verify(c, padded + 1, 0, C3, 0, NULL), ALOFT_E_TRAILING);
    c[padded] = 0xE7;
    c[len + 3] = 0x00;
    assert_int_equal(verify(c, padded + 4096, 0, C3, 0, NULL), ALOFT_E_TRAILING);
    /* Garbage right after the image. */
    memcpy(c, img, len);
    memcpy(c + len, "garbage", 7);
    assert_int_equal(verify(c, len + 7, 0, C3, 0, NULL), ALOFT_E_TRAILING);
    /* Two images back to back (a merged flash file) are not one image. */
    memcpy(c + len, img, 16);
    assert_int_equal(verify(c, len + 16, 0, C3, 0, NULL), ALOFT_E_TRAILING);
    free(c);
    free(img);
}

/* Whatever the damage, the verdict and what was learnt do not depend on the
 * chunking. */
static void test_random_damage_any_chunking(void **state)
{
    (void)state;
    static const size_t chunks[] = {3, 64, 4096};
    size_t len;
    uint8_t *img = make("esp32h2", "fuzz", "1", 0x10150, "hang", &len);
    uint8_t *c = copy_of(img, len, len + 64);
    uint32_t r[800];
    aloft_test_fill((uint8_t *)r, sizeof r, 2024);
    int seen_ok = 0, seen_err = 0;
    for (size_t i = 0; i < 200; i++) {
        const uint32_t *q = r + 4 * i;
        memcpy(c, img, len);
        size_t at = q[0] & 1 ? q[1] % 64 : q[1] % len;
        if (q[2] % 4)
            c[at] ^= (uint8_t)(q[2] | 1);
        size_t n = q[3] % 3 == 0 ? len - q[3] % 200 : len + q[3] % 3 * 7;
        memset(c + len, 0xFF, 64);
        struct aloft_image_info whole, part;
        int rc = verify(c, n, 0, ALOFT_CHIP_ANY, 0, &whole);
        for (size_t k = 0; k < sizeof chunks / sizeof chunks[0]; k++) {
            assert_int_equal(verify(c, n, chunks[k], ALOFT_CHIP_ANY, 0, &part), rc);
            assert_memory_equal(&part, &whole, sizeof part);
        }
        seen_ok += rc == 0;
        seen_err += rc != 0;
    }
    assert_true(seen_ok > 10 && seen_err > 100);
    free(c);
    free(img);
}

/* A flash in memory for aloft_image_verify_flash, recording its reads. */
struct memflash {
    uint8_t *mem;
    size_t max_read;
    uint32_t read_end;
    int fail_at; /* fail the n-th read (1-based), 0: never */
    int reads;
};

static int mem_read(void *ctx, uint32_t addr, void *buf, size_t len)
{
    struct memflash *m = ctx;
    if (++m->reads == m->fail_at)
        return ALOFT_E_IO;
    if (len > m->max_read)
        m->max_read = len;
    if (addr + len > m->read_end)
        m->read_end = addr + (uint32_t)len;
    memcpy(buf, m->mem + addr, len);
    return 0;
}

static void test_verify_flash(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-4mb-v0.4.3.bin", &len);
    const uint32_t flash_size = 4u << 20, slot = 0x10000, slot_size = 0x1D0000;
    struct memflash m = {.mem = malloc(flash_size)};
    assert_non_null(m.mem);
    memset(m.mem, 0xFF, flash_size);
    memcpy(m.mem + slot, img, len);
    struct aloft_flash f = {.ctx = &m, .read = mem_read, .size = flash_size, .sector_size = 4096};
    struct aloft_image_info info;
    assert_int_equal(aloft_image_verify_flash(&f, slot, slot_size, S3, &info), 0);
    assert_true(info.has_desc);
    assert_string_equal(info.desc.version, V043);
    assert_int_equal(info.image_len, len);
    /* Small reads, and none past the image: the erased rest is not its tail. */
    assert_true(m.max_read <= 256);
    assert_int_equal(m.read_end, slot + len);

    assert_int_equal(aloft_image_verify_flash(&f, slot, slot_size, C3, NULL), ALOFT_E_CHIP);
    assert_int_equal(aloft_image_verify_flash(&f, slot, (uint32_t)len - 1, S3, NULL), ALOFT_E_NOSPC);
    /* max_len 0: up to the end of the flash. */
    assert_int_equal(aloft_image_verify_flash(&f, slot, 0, S3, NULL), 0);
    assert_int_equal(aloft_image_verify_flash(&f, flash_size - 0x1000, 0, S3, NULL), ALOFT_E_MAGIC);
    assert_int_equal(aloft_image_verify_flash(&f, flash_size + 1, 0, S3, NULL), ALOFT_E_INVAL);
    m.mem[slot + 0x20000] ^= 4;
    assert_int_equal(aloft_image_verify_flash(&f, slot, slot_size, S3, NULL), ALOFT_E_CHECKSUM);
    m.mem[slot + 0x20000] ^= 4;
    m.reads = 0;
    m.fail_at = 100;
    assert_int_equal(aloft_image_verify_flash(&f, slot, slot_size, S3, NULL), ALOFT_E_IO);
    assert_int_equal(m.reads, 100);
    /* An erased slot: 0xFF is no magic. */
    assert_int_equal(aloft_image_verify_flash(&f, 0x200000, slot_size, S3, NULL), ALOFT_E_MAGIC);
    free(m.mem);
    free(img);
}

/* ---- aloft_image_make ---- */

static void test_make_every_chip(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_CHIPS; i++) {
        size_t len;
        uint8_t *img = make(all_chips[i], "demo-project", "1.2.3-rc.1", 0, NULL, &len);
        uint16_t id = (uint16_t)aloft_chip_id(all_chips[i]);
        struct aloft_image_info info;
        assert_int_equal(verify(img, len, 0, id, 0, &info), 0);
        assert_int_equal(verify(img, len, 13, id, (uint32_t)len, NULL), 0);
        assert_int_equal(info.chip_id, id);
        assert_true(info.has_desc);
        assert_true(info.hash_appended);
        assert_string_equal(info.desc.project_name, "demo-project");
        assert_string_equal(info.desc.version, "1.2.3-rc.1");
        assert_int_equal(info.desc.secure_version, 3);
        assert_string_equal(info.desc.idf_ver, "aloft-sim");
        assert_int_equal(info.image_len, len);
        /* Flash-mapped segments sit at their address modulo the 64 KB page. */
        assert_int_equal(info.seg_offset[0] % 0x10000, info.seg_load_addr[0] % 0x10000);
        assert_int_equal(info.seg_offset[4] % 0x10000, info.seg_load_addr[4] % 0x10000);
        /* The entry point lies in the IRAM segment. */
        assert_true(info.entry_addr >= info.seg_load_addr[2] &&
                    info.entry_addr < info.seg_load_addr[2] + info.seg_len[2]);
        uint16_t other = (uint16_t)aloft_chip_id(all_chips[(i + 1) % N_CHIPS]);
        assert_int_equal(verify(img, len, 0, other, 0, NULL), ALOFT_E_CHIP);
        struct aloft_sim_record rec;
        assert_int_equal(aloft_sim_record_parse(img, len, &rec), 0);
        assert_false(rec.present);
        assert_int_equal(rec.behaviour, ALOFT_SIM_HEALTHY);
        free(img);
    }
}

static void test_make_size(void **state)
{
    (void)state;
    static const uint32_t sizes[] = {0x10150, 100000, 1u << 20, (1u << 20) + 5, 3000000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        size_t len;
        uint8_t *img = make("esp32c6", "sized", "2.0.0", sizes[i], NULL, &len);
        assert_int_equal(len, sizes[i] & ~15u);
        struct aloft_image_info info;
        assert_int_equal(verify(img, len, 4096, 13, 0, &info), 0);
        /* The padding is incompressible: no run of 16 equal bytes in IROM. */
        const uint8_t *irom = img + info.seg_offset[4];
        for (uint32_t j = 0; j + 16 <= info.seg_len[4]; j += 16) {
            int same = 1;
            for (int k = 1; k < 16; k++)
                same &= irom[j + k] == irom[j];
            assert_false(same);
        }
        free(img);
    }
    struct aloft_image_make_opts o = {.chip_id = 9, .project = "p", .version = "v", .size = 0x10140};
    uint8_t *img;
    size_t len;
    assert_int_equal(aloft_image_make(&o, &img, &len), ALOFT_E_NOSPC);
    assert_null(img);
    assert_int_equal(len, 0x10150);
    o.size = 32u << 20;
    assert_int_equal(aloft_image_make(&o, &img, &len), ALOFT_E_INVAL);
}

static void test_make_is_deterministic(void **state)
{
    (void)state;
    size_t a_len, b_len, c_len;
    uint8_t *a = make("esp32s3", "fleet", "1.0.0", 200000, "hang", &a_len);
    uint8_t *b = make("esp32s3", "fleet", "1.0.0", 200000, "hang", &b_len);
    uint8_t *c = make("esp32s3", "fleet", "1.0.1", 200000, "hang", &c_len);
    assert_int_equal(a_len, b_len);
    assert_memory_equal(a, b, a_len);
    assert_int_equal(a_len, c_len);
    assert_memory_not_equal(a, c, a_len);
    /* Two versions of one project share their code segment, like releases. */
    struct aloft_image_info ia, ic;
    assert_int_equal(verify(a, a_len, 0, S3, 0, &ia), 0);
    assert_int_equal(verify(c, c_len, 0, S3, 0, &ic), 0);
    assert_memory_not_equal(ia.desc.app_elf_sha256, ic.desc.app_elf_sha256, 32);
    assert_int_equal(ia.seg_offset[4], ic.seg_offset[4]);
    assert_memory_equal(a + ia.seg_offset[4], c + ic.seg_offset[4], ia.seg_len[4]);
    free(a);
    free(b);
    free(c);
}

static void test_make_sim_record_round_trip(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        enum aloft_sim_behaviour b;
        uint32_t secs;
    } cases[] = {
        {"panic-on-boot", ALOFT_SIM_PANIC_ON_BOOT, 0}, {"hang", ALOFT_SIM_HANG, 0},
        {"no-confirm", ALOFT_SIM_NO_CONFIRM, 0},       {"confirm-after=30", ALOFT_SIM_CONFIRM_AFTER, 30},
        {"confirm-after=0", ALOFT_SIM_CONFIRM_AFTER, 0}, {"confirm-after=86400", ALOFT_SIM_CONFIRM_AFTER, 86400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        uint8_t *img = make("esp32", "simmed", "0.1", 0, cases[i].text, &len);
        assert_int_equal(verify(img, len, 0, 0, 0, NULL), 0);
        struct aloft_sim_record rec;
        assert_int_equal(aloft_sim_record_parse(img, len, &rec), 0);
        assert_true(rec.present);
        assert_int_equal(rec.behaviour, cases[i].b);
        assert_int_equal(rec.confirm_after_s, cases[i].secs);
        char buf[32];
        assert_string_equal(aloft_sim_behaviour_format(&rec, buf, sizeof buf), cases[i].text);
        free(img);
    }
}

static void test_make_rejects_bad_options(void **state)
{
    (void)state;
    static const char *const bad_sims[] = {"",      "panic",          "healthy",         "hang ",
                                           "HANG",  "confirm-after",  "confirm-after=",  "confirm-after=x",
                                           "confirm-after=-1", "confirm-after=86401", "confirm-after=1e3"};
    struct aloft_image_make_opts o = {.chip_id = 9, .project = "p", .version = "v"};
    uint8_t *img;
    size_t len;
    for (size_t i = 0; i < sizeof bad_sims / sizeof bad_sims[0]; i++) {
        o.sim = bad_sims[i];
        if (aloft_image_make(&o, &img, &len) != ALOFT_E_INVAL)
            fail_msg("--sim '%s' was accepted", bad_sims[i]);
        assert_null(img);
    }
    o.sim = NULL;
    o.project = "";
    assert_int_equal(aloft_image_make(&o, &img, &len), ALOFT_E_INVAL);
    o.project = "0123456789abcdef0123456789abcdef"; /* 32 bytes: no room for the NUL */
    assert_int_equal(aloft_image_make(&o, &img, &len), ALOFT_E_INVAL);
    o.project = "0123456789abcdef0123456789abcde";
    o.version = NULL;
    assert_int_equal(aloft_image_make(&o, &img, &len), ALOFT_E_INVAL);
    o.version = "0123456789abcdef0123456789abcde";
    assert_int_equal(aloft_image_make(&o, &img, &len), 0);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, 9, 0, &info), 0);
    assert_string_equal(info.desc.project_name, o.project);
    assert_string_equal(info.desc.version, o.version);
    free(img);
    o.chip_id = 1;
    assert_int_equal(aloft_image_make(&o, &img, &len), ALOFT_E_CHIP);
}

/* The record is found through the segment table, only in a segment the
 * bootloader does not load. */
static void test_sim_record_parse(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.6.4.bin", &len);
    struct aloft_sim_record rec;
    assert_int_equal(aloft_sim_record_parse(img, len, &rec), 0);
    assert_false(rec.present);
    assert_int_equal(aloft_sim_record_parse(img, 100, &rec), ALOFT_E_TRUNCATED);
    assert_int_equal(aloft_sim_record_parse((const uint8_t *)"ELF", 3, &rec), ALOFT_E_MAGIC);
    free(img);

    img = make("esp32s3", "rec", "1", 0, "no-confirm", &len);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, S3, 0, &info), 0);
    uint8_t *text = img + info.seg_offset[3] + ALOFT_SIM_RECORD_MAGIC_BYTES;
    assert_string_equal((char *)text, "behaviour=no-confirm");
    /* Extra keys are ignored; a bad behaviour is corrupt. */
    strcpy((char *)text, "timing=fast\nbehaviour=hang");
    assert_int_equal(aloft_sim_record_parse(img, len, &rec), 0);
    assert_int_equal(rec.behaviour, ALOFT_SIM_HANG);
    strcpy((char *)text, "behaviour=fly");
    assert_int_equal(aloft_sim_record_parse(img, len, &rec), ALOFT_E_CORRUPT);
    strcpy((char *)text, "mood=fine");
    assert_int_equal(aloft_sim_record_parse(img, len, &rec), ALOFT_E_CORRUPT);
    /* In a loaded segment the same bytes are firmware data, not a record. */
    wr32(img + info.seg_offset[3] - 8, 0x3FC80000u);
    assert_int_equal(aloft_sim_record_parse(img, len, &rec), 0);
    assert_false(rec.present);
    free(img);
}

/* ---- the CLI ---- */

static char *fixture_path(const char *rel)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", ALOFT_FIXTURES, rel);
    return path;
}

static cJSON *run_json(int expect_status, const char *const argv[])
{
    char *out;
    assert_int_equal(aloft_test_run(&out, argv), expect_status);
    cJSON *j = cJSON_Parse(out);
    if (!j)
        fail_msg("not JSON: %s", out);
    free(out);
    return j;
}

static void test_cli_info(void **state)
{
    (void)state;
    const char *fx = fixture_path("esp-idf/esp32s3-csi-node-v0.6.4.bin");
    cJSON *j = run_json(0, (const char *const[]){"aloft", "image", "info", fx, "--json", NULL});
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    assert_string_equal(cJSON_GetObjectItem(j, "chip")->valuestring, "esp32s3");
    cJSON *desc = cJSON_GetObjectItem(j, "app_desc");
    assert_string_equal(cJSON_GetObjectItem(desc, "version")->valuestring, "0.6.4");
    assert_string_equal(cJSON_GetObjectItem(desc, "project_name")->valuestring, "esp32-csi-node");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(j, "segments")), 6);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(j, "sha256_ok")));
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "sim"), "record")));
    cJSON_Delete(j);

    char *out;
    assert_int_equal(aloft_test_run(&out, (const char *const[]){"aloft", "image", "info", fx, NULL}), 0);
    assert_non_null(strstr(out, "esp32-csi-node"));
    assert_non_null(strstr(out, "0x42000020"));
    /* both SHA-256s, each named: the appended one and the file's (aloftd's) */
    size_t flen;
    uint8_t *file = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.6.4.bin", &flen);
    char want[100];
    aloft_sha256_hex(file, flen, want + 20);
    memcpy(want, "  file SHA-256:     ", 20);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "  appended SHA-256: "));
    j = run_json(0, (const char *const[]){"aloft", "image", "info", fx, "--json", NULL});
    assert_string_equal(cJSON_GetObjectItem(j, "file_sha256")->valuestring, want + 20);
    cJSON_Delete(j);
    free(file);
    free(out);
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "info", fx, "--chip", "esp32c3", NULL}), 1);
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "info", fx, "--chip", "esp99", NULL}), 2);

    const char *bl = fixture_path("esp-idf/esp32s3-bootloader.bin");
    assert_int_equal(aloft_test_run(&out, (const char *const[]){"aloft", "image", "info", bl, NULL}), 0);
    assert_non_null(strstr(out, "bootloader"));
    free(out);
}

static void test_cli_info_corrupt(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-4mb-v0.4.3.bin", &len);
    img[0x1000] ^= 0x20;
    char path[512];
    snprintf(path, sizeof path, "%s/corrupt.bin", aloft_test_tmpdir());
    assert_int_equal(aloft_file_write(path, img, len), 0);
    free(img);
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "info", path, NULL}), 1);
    cJSON *j = run_json(1, (const char *const[]){"aloft", "image", "info", "--json", path, NULL});
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "ok")));
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "error"), "code")->valueint, ALOFT_E_CHECKSUM);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(j, "checksum_ok")));
    cJSON_Delete(j);
    snprintf(path, sizeof path, "%s/missing.bin", aloft_test_tmpdir());
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "info", path, NULL}), 1);
}

static void test_cli_make(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/made.bin", aloft_test_tmpdir());
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "make", "--chip", "esp32c5",
                                                                "--project", "cli", "--version", "9.9.9",
                                                                "--secure-version", "4", "--size", "256K",
                                                                "--sim", "confirm-after=12", "-o", path, NULL}),
                     0);
    size_t len;
    uint8_t *img;
    assert_int_equal(aloft_file_read(path, &img, &len), 0);
    assert_int_equal(len, 256u * 1024);
    struct aloft_image_info info;
    assert_int_equal(verify(img, len, 0, 23, 0, &info), 0);
    assert_int_equal(info.desc.secure_version, 4);
    free(img);
    cJSON *j = run_json(0, (const char *const[]){"aloft", "image", "info", path, "--json", NULL});
    cJSON *sim = cJSON_GetObjectItem(j, "sim");
    assert_string_equal(cJSON_GetObjectItem(sim, "behaviour")->valuestring, "confirm-after=12");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "app_desc"), "version")->valuestring, "9.9.9");
    cJSON_Delete(j);

    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "make", "--chip", "esp32",
                                                                "--project", "x", "--version", "1", "--sim",
                                                                "explode", "-o", path, NULL}),
                     2);
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "make", "--chip", "esp32",
                                                                "--project", "x", "--version", "1", "--size",
                                                                "1000", "-o", path, NULL}),
                     2);
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "make", "--chip", "esp32",
                                                                "--project", "x", NULL}),
                     2);
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "make", "--bogus", NULL}), 2);
    assert_int_equal(aloft_test_run(NULL, (const char *const[]){"aloft", "image", "info", NULL}), 2);
    char *out;
    assert_int_equal(aloft_test_run(&out, (const char *const[]){"aloft", "image", "make", "--help", NULL}), 0);
    assert_non_null(strstr(out, "example:"));
    free(out);
    assert_int_equal(aloft_test_run(&out, (const char *const[]){"aloft", "image", "info", "--help", NULL}), 0);
    assert_non_null(strstr(out, "example:"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chip_names),
        cmocka_unit_test(test_real_apps_any_chunking),
        cmocka_unit_test(test_c3_without_descriptor),
        cmocka_unit_test(test_bootloader_is_an_image_without_descriptor),
        cmocka_unit_test(test_ident_ready_after_288_bytes),
        cmocka_unit_test(test_empty_is_truncated),
        cmocka_unit_test(test_tiny_image),
        cmocka_unit_test(test_truncated_at_boundaries),
        cmocka_unit_test(test_truncated_at_random_points),
        cmocka_unit_test(test_header_fields),
        cmocka_unit_test(test_segment_headers),
        cmocka_unit_test(test_data_checksum_and_hash),
        cmocka_unit_test(test_image_without_hash),
        cmocka_unit_test(test_max_len),
        cmocka_unit_test(test_errors_are_sticky),
        cmocka_unit_test(test_esp8266),
        cmocka_unit_test(test_trailing_and_signature_tail),
        cmocka_unit_test(test_random_damage_any_chunking),
        cmocka_unit_test(test_verify_flash),
        cmocka_unit_test(test_make_every_chip),
        cmocka_unit_test(test_make_size),
        cmocka_unit_test(test_make_is_deterministic),
        cmocka_unit_test(test_make_sim_record_round_trip),
        cmocka_unit_test(test_make_rejects_bad_options),
        cmocka_unit_test(test_sim_record_parse),
        cmocka_unit_test(test_cli_info),
        cmocka_unit_test(test_cli_info_corrupt),
        cmocka_unit_test(test_cli_make),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
