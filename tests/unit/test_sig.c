/* Secure boot v2 signatures: core/sig.c parses, host/signing.c (OpenSSL)
 * signs and verifies; checked against images espsecure signed. */
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/sig.h"
#include "signing.h"

#define DIR "esp-idf/signed/"

static const struct {
    const char *file, *key, *digest;
    int scheme;
} signed_fixtures[] = {
    {"esp32s3-csi-node-v0.6.4.signed-rsa3072.bin", "test-key-rsa3072", "test-key-rsa3072", ALOFT_SIG_RSA3072},
    {"esp32c3-no-desc.signed-ecdsa256.bin", "test-key-ecdsa256", "test-key-ecdsa256", ALOFT_SIG_ECDSA256},
    {"esp32c3-no-desc.signed-ecdsa384.bin", "test-key-ecdsa384", "test-key-ecdsa384", ALOFT_SIG_ECDSA384},
};

static EVP_PKEY *load_key(const char *name, const char *suffix)
{
    char path[512], err[200];
    snprintf(path, sizeof path, "%s/" DIR "%s%s", ALOFT_FIXTURES, name, suffix);
    int scheme;
    EVP_PKEY *k = aloft_signing_load(path, &scheme, err, sizeof err);
    if (!k)
        fail_msg("%s", err);
    return k;
}

static uint8_t *fixture_digest(const char *name)
{
    char rel[256];
    size_t n;
    snprintf(rel, sizeof rel, DIR "%s.digest.bin", name);
    uint8_t *d = aloft_test_fixture(rel, &n);
    assert_int_equal(n, 32);
    return d;
}

/* What a device does: valid when a block by a trusted key verifies. */
static bool trusted_valid(const uint8_t *img, size_t len, const uint8_t *trusted)
{
    struct aloft_signing_check c[ALOFT_SIG_BLOCKS_MAX];
    size_t at = aloft_signing_sector(img, len);
    if (!at || at + ALOFT_SIG_SECTOR_BYTES != len)
        return false;
    int n = aloft_signing_check(img, at, c);
    for (int i = 0; i < n; i++)
        if (!c[i].parse && c[i].valid && !memcmp(c[i].b.key_digest, trusted, 32))
            return true;
    return false;
}

static void test_espsecure_fixtures_verify(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof signed_fixtures / sizeof signed_fixtures[0]; f++) {
        char rel[256];
        size_t len;
        snprintf(rel, sizeof rel, DIR "%s", signed_fixtures[f].file);
        uint8_t *img = aloft_test_fixture(rel, &len);
        uint8_t *digest = fixture_digest(signed_fixtures[f].digest);
        struct aloft_image_info in;
        assert_int_equal(aloft_image_verify(img, len, ALOFT_CHIP_ANY, 0, &in), 0);
        assert_int_equal(in.signed_len, len - ALOFT_SIG_SECTOR_BYTES);
        uint8_t sha[48];
        aloft_signing_digest(ALOFT_SIG_RSA3072, img, in.signed_len, sha);
        assert_memory_equal(in.signed_sha256, sha, 32); /* the streaming verifier's digest */
        struct aloft_signing_check c[ALOFT_SIG_BLOCKS_MAX];
        assert_int_equal(aloft_signing_check(img, in.signed_len, c), 1);
        assert_int_equal(c[0].parse, 0);
        assert_int_equal(c[0].b.scheme, signed_fixtures[f].scheme);
        assert_true(c[0].valid);
        assert_memory_equal(c[0].b.key_digest, digest, 32); /* espsecure digest_sbv2_public_key */
        EVP_PKEY *pub = load_key(signed_fixtures[f].key, ".pub.pem");
        uint8_t kd[32];
        assert_int_equal(aloft_signing_key_digest(pub, kd), 0);
        assert_memory_equal(kd, digest, 32);
        EVP_PKEY_free(pub);
        assert_true(trusted_valid(img, len, digest));
        free(digest);
        free(img);
    }
}

/* Any changed byte of the signed image, the padding or the block is refused. */
static void test_any_changed_byte_is_refused(void **state)
{
    (void)state;
    for (size_t f = 0; f < sizeof signed_fixtures / sizeof signed_fixtures[0]; f++) {
        char rel[256];
        size_t len;
        snprintf(rel, sizeof rel, DIR "%s", signed_fixtures[f].file);
        uint8_t *img = aloft_test_fixture(rel, &len);
        uint8_t *digest = fixture_digest(signed_fixtures[f].digest);
        size_t at = len - ALOFT_SIG_SECTOR_BYTES;
        /* the image and its padding: a spread of positions, then the last byte */
        size_t step = f == 0 ? 40009 : 4999;
        for (size_t i = 0; i < at; i = i == at - 1 ? at : i + step < at ? i + step : at - 1) {
            img[i] ^= 0x01;
            assert_false(trusted_valid(img, len, digest));
            img[i] ^= 0x01;
        }
        /* every byte of the block up to its CRC */
        for (size_t i = 0; i < ALOFT_SIG_CRC_BYTES + 4; i += f == 0 ? 7 : 1) {
            img[at + i] ^= 0x80;
            assert_false(trusted_valid(img, len, digest));
            img[at + i] ^= 0x80;
        }
        assert_true(trusted_valid(img, len, digest));
        free(digest);
        free(img);
    }
}

/* A block whose CRC is made right again: a changed signature no longer
 * verifies; a changed key is another key (untrusted). */
static void test_forged_block_with_good_crc(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture(DIR "esp32c3-no-desc.signed-ecdsa256.bin", &len);
    uint8_t *digest = fixture_digest("test-key-ecdsa256");
    uint8_t *b = img + len - ALOFT_SIG_SECTOR_BYTES;
    struct aloft_sig_block blk;
    for (int which = 0; which < 2; which++) {
        size_t off = which ? 37 + 5 : 101 + 9; /* X, or R */
        b[off] ^= 0x10;
        uint32_t crc = ~aloft_crc32(0xFFFFFFFFu, b, ALOFT_SIG_CRC_BYTES);
        uint8_t old[4];
        memcpy(old, b + ALOFT_SIG_CRC_BYTES, 4);
        for (int i = 0; i < 4; i++)
            b[ALOFT_SIG_CRC_BYTES + i] = (uint8_t)(crc >> (8 * i));
        assert_int_equal(aloft_sig_parse(b, &blk), 0);
        if (which)
            assert_memory_not_equal(blk.key_digest, digest, 32);
        else
            assert_false(aloft_signing_verify(&blk, blk.digest));
        assert_false(trusted_valid(img, len, digest));
        b[off] ^= 0x10;
        memcpy(b + ALOFT_SIG_CRC_BYTES, old, 4);
    }
    assert_true(trusted_valid(img, len, digest));
    free(digest);
    free(img);
}

/* aloft signs with espsecure's layout: the same padded image, the same block
 * header, digest and key bytes (the signatures differ: PSS and ECDSA are
 * randomised), zeros to the CRC, 0xFF after the blocks; it verifies. */
static void test_aloft_signs_like_espsecure(void **state)
{
    (void)state;
    static const struct {
        const char *unsigned_file, *key;
        int fixture;
    } cases[] = {
        {"esp-idf/esp32s3-csi-node-v0.6.4.bin", "test-key-rsa3072", 0},
        {"esp-idf/esp32c3-elf2image-no-desc.bin", "test-key-ecdsa256", 1},
        {"esp-idf/esp32c3-elf2image-no-desc.bin", "test-key-ecdsa384", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t ulen, slen;
        uint8_t *raw = aloft_test_fixture(cases[i].unsigned_file, &ulen);
        char rel[256];
        snprintf(rel, sizeof rel, DIR "%s", signed_fixtures[cases[i].fixture].file);
        uint8_t *ref = aloft_test_fixture(rel, &slen);
        size_t at = (ulen + 4095) / 4096 * 4096;
        assert_int_equal(at + ALOFT_SIG_SECTOR_BYTES, slen);
        uint8_t *img = malloc(slen);
        memcpy(img, raw, ulen);
        memset(img + ulen, 0xFF, slen - ulen);
        EVP_PKEY *k = load_key(cases[i].key, ".pem");
        char err[200];
        assert_int_equal(aloft_signing_block(k, img, at, img + at, err, sizeof err), 0);
        EVP_PKEY_free(k);
        assert_memory_equal(img, ref, at);
        struct aloft_sig_block mine, theirs;
        assert_int_equal(aloft_sig_parse(img + at, &mine), 0);
        assert_int_equal(aloft_sig_parse(ref + at, &theirs), 0);
        size_t upto = (size_t)(mine.sig - (img + at));
        assert_memory_equal(img + at, ref + at, upto);
        assert_memory_not_equal(mine.sig, theirs.sig, mine.sig_len);
        for (size_t j = upto + mine.sig_len; j < ALOFT_SIG_CRC_BYTES; j++)
            assert_int_equal(img[at + j], 0);
        for (size_t j = ALOFT_SIG_CRC_BYTES + 4; j < ALOFT_SIG_BLOCK_BYTES; j++)
            assert_int_equal(img[at + j], ref[at + j]);
        for (size_t j = ALOFT_SIG_BLOCK_BYTES; j < ALOFT_SIG_SECTOR_BYTES; j++)
            assert_int_equal(img[at + j], 0xFF);
        uint8_t *digest = fixture_digest(signed_fixtures[cases[i].fixture].digest);
        assert_true(trusted_valid(img, slen, digest));
        free(digest);
        free(img);
        free(ref);
        free(raw);
    }
}

static void test_truncated_sector(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture(DIR "esp32c3-no-desc.signed-ecdsa256.bin", &len);
    struct aloft_image_info in;
    for (size_t cut = 1; cut < ALOFT_SIG_SECTOR_BYTES; cut += 1021) {
        assert_int_equal(aloft_image_verify(img, len - cut, ALOFT_CHIP_ANY, 0, &in), ALOFT_E_TRUNCATED);
        assert_int_equal(aloft_signing_sector(img, len - cut), 0);
    }
    /* the padding alone (no sector begun) is still an unsigned image */
    assert_int_equal(aloft_image_verify(img, len - ALOFT_SIG_SECTOR_BYTES, ALOFT_CHIP_ANY, 0, &in), 0);
    assert_int_equal(in.signed_len, 0);
    free(img);
}

/* Two blocks: either key alone is enough; a third key is not; with the
 * first key's block damaged, the second still carries the image. */
static void test_two_blocks_one_trusted(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture(DIR "esp32s3-csi-node-v0.6.4.signed-rsa3072-x2.bin", &len);
    uint8_t *a = fixture_digest("test-key-rsa3072");
    uint8_t bd[32], other[32];
    EVP_PKEY *b = load_key("test-key-rsa3072-b", ".pub.pem");
    assert_int_equal(aloft_signing_key_digest(b, bd), 0);
    EVP_PKEY_free(b);
    EVP_PKEY *o = load_key("test-key-ecdsa256", ".pub.pem");
    assert_int_equal(aloft_signing_key_digest(o, other), 0);
    EVP_PKEY_free(o);
    assert_true(trusted_valid(img, len, a));
    assert_true(trusted_valid(img, len, bd));
    assert_false(trusted_valid(img, len, other));
    img[len - ALOFT_SIG_SECTOR_BYTES + 900] ^= 1; /* block 0's signature */
    assert_false(trusted_valid(img, len, a));
    assert_true(trusted_valid(img, len, bd));
    free(a);
    free(img);
}

/* The command line: keygen, sign (and --append), verify, info. */
static void test_cli(void **state)
{
    (void)state;
    const char *d = aloft_test_tmpdir();
    char key[300], key2[300], app[300], s1[300], s2[300];
    snprintf(key, sizeof key, "%s/k1.pem", d);
    snprintf(key2, sizeof key2, "%s/k2.pem", d);
    snprintf(app, sizeof app, "%s/app.bin", d);
    snprintf(s1, sizeof s1, "%s/s1.bin", d);
    snprintf(s2, sizeof s2, "%s/s2.bin", d);
    const char *kg1[] = {"aloft", "keygen", "--scheme", "ecdsa256", "-o", key, NULL};
    const char *kg2[] = {"aloft", "keygen", "--scheme", "rsa3072", "-o", key2, NULL};
    assert_int_equal(aloft_test_run(NULL, kg1), 0);
    assert_int_equal(aloft_test_run(NULL, kg2), 0);
    assert_int_equal(aloft_test_run(NULL, kg1), 1); /* never overwritten */
    const char *mk[] = {"aloft", "image", "make", "--chip", "esp32c3", "--project", "p", "--version", "1", "-o",
                        app, NULL};
    assert_int_equal(aloft_test_run(NULL, mk), 0);
    const char *sign[] = {"aloft", "image", "sign", app, "--key", key, "-o", s1, NULL};
    assert_int_equal(aloft_test_run(NULL, sign), 0);
    const char *again[] = {"aloft", "image", "sign", s1, "--key", key, "-o", s2, NULL};
    assert_int_equal(aloft_test_run(NULL, again), 1); /* signed already: --append */
    const char *append[] = {"aloft", "image", "sign", s1, "--append", "--key", key2, "-o", s2, NULL};
    assert_int_equal(aloft_test_run(NULL, append), 0);
    const char *v1[] = {"aloft", "image", "verify", s2, "--key", key, NULL};
    const char *v2[] = {"aloft", "image", "verify", s2, "--key", key2, NULL};
    const char *vu[] = {"aloft", "image", "verify", app, "--key", key, NULL};
    const char *vbad[] = {"aloft", "image", "verify", s2, "--digest", "00", NULL};
    assert_int_equal(aloft_test_run(NULL, v1), 0);
    assert_int_equal(aloft_test_run(NULL, v2), 0);
    assert_int_equal(aloft_test_run(NULL, vu), 1);
    assert_int_equal(aloft_test_run(NULL, vbad), 1);
    char *out;
    const char *v1only[] = {"aloft", "image", "verify", s1, "--key", key2, NULL};
    assert_int_equal(aloft_test_run(NULL, v1only), 1); /* s1 has only k1's block */
    const char *info[] = {"aloft", "image", "info", s2, NULL};
    assert_int_equal(aloft_test_run(&out, info), 0);
    assert_non_null(strstr(out, "block 0: ecdsa256"));
    assert_non_null(strstr(out, "block 1: rsa3072"));
    assert_null(strstr(out, "INVALID"));
    free(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_espsecure_fixtures_verify), cmocka_unit_test(test_any_changed_byte_is_refused),
        cmocka_unit_test(test_forged_block_with_good_crc), cmocka_unit_test(test_aloft_signs_like_espsecure),
        cmocka_unit_test(test_truncated_sector),          cmocka_unit_test(test_two_blocks_one_trusted),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
