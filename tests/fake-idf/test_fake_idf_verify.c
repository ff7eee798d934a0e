/* The ESP-IDF glue's signature check (ports/esp-idf/aloft/verify.c) over
 * the fakes, whose ROM RSA-PSS routine is OpenSSL's: the espsecure-signed
 * RSA-3072 fixture's block verifies its image's digest; a changed signature
 * byte or digest does not; an ECDSA block is refused (ESP32-C3 and S3 secure
 * boot is RSA only). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/sig.h"
#include "glue.h"
#include "testutil.h"

/* A signed fixture's first block and the digest of what it signs. */
static uint8_t *block_of(const char *rel, struct aloft_sig_block *b, uint8_t digest[32])
{
    size_t len;
    uint8_t *img = aloft_test_fixture(rel, &len);
    struct aloft_image_info in;
    assert_int_equal(aloft_image_verify(img, len, ALOFT_CHIP_ANY, 0, &in), 0);
    assert_int_equal(in.signed_len + ALOFT_SIG_SECTOR_BYTES, len);
    assert_int_equal(aloft_sig_parse(img + in.signed_len, b), 0);
    memcpy(digest, in.signed_sha256, 32);
    return img;
}

static void test_rsa_block(void **state)
{
    (void)state;
    struct aloft_sig_block b;
    uint8_t digest[32];
    uint8_t *img = block_of("esp-idf/signed/esp32s3-csi-node-v0.6.4.signed-rsa3072.bin", &b, digest);
    assert_int_equal(aloft_idf_verify(NULL, &b, digest), 0);
    digest[0] ^= 1;
    assert_int_equal(aloft_idf_verify(NULL, &b, digest), ALOFT_E_SIGNATURE);
    digest[0] ^= 1;
    ((uint8_t *)b.sig)[100] ^= 1;
    assert_int_equal(aloft_idf_verify(NULL, &b, digest), ALOFT_E_SIGNATURE);
    free(img);
}

static void test_ecdsa_block_refused(void **state)
{
    (void)state;
    struct aloft_sig_block b;
    uint8_t digest[32];
    uint8_t *img = block_of("esp-idf/signed/esp32c3-no-desc.signed-ecdsa256.bin", &b, digest);
    assert_int_equal(aloft_idf_verify(NULL, &b, digest), ALOFT_E_SIGNATURE);
    free(img);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rsa_block),
        cmocka_unit_test(test_ecdsa_block_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
