/* aloft tests: images signed in memory (testsign.h). */
#include "testsign.h"

#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"
#include "signing.h"

static EVP_PKEY *key(const char *name)
{
    char path[600], err[200];
    snprintf(path, sizeof path, "%s/esp-idf/signed/test-key-%s.pem", ALOFT_FIXTURES, name);
    int scheme;
    EVP_PKEY *k = aloft_signing_load(path, &scheme, err, sizeof err);
    if (!k)
        fail_msg("%s", err);
    return k;
}

uint8_t *aloft_test_sign(const uint8_t *img, size_t len, const char *const *keys, size_t *out_len)
{
    size_t at = (len + ALOFT_SIG_SECTOR_BYTES - 1) / ALOFT_SIG_SECTOR_BYTES * ALOFT_SIG_SECTOR_BYTES;
    uint8_t *s = malloc(at + ALOFT_SIG_SECTOR_BYTES);
    assert_non_null(s);
    memcpy(s, img, len);
    memset(s + len, 0xFF, at + ALOFT_SIG_SECTOR_BYTES - len);
    for (unsigned i = 0; keys[i]; i++) {
        char err[200];
        EVP_PKEY *k = key(keys[i]);
        if (aloft_signing_block(k, s, at, s + at + i * ALOFT_SIG_BLOCK_BYTES, err, sizeof err))
            fail_msg("%s", err);
        EVP_PKEY_free(k);
    }
    *out_len = at + ALOFT_SIG_SECTOR_BYTES;
    return s;
}

void aloft_test_key_hex(const char *name, char out[65])
{
    uint8_t d[32];
    EVP_PKEY *k = key(name);
    assert_int_equal(aloft_signing_key_digest(k, d), 0);
    EVP_PKEY_free(k);
    aloft_hex(d, sizeof d, out);
}
