/* fake-idf: rom/rsa_pss.h — the ROM's RSA-3072-PSS check, done with OpenSSL
 * (crypto.c). */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#ifndef FAKE_IDF_DECLS_CHECK
#define ETS_SIG_LEN 384
#define ETS_DIGEST_LEN 32

typedef struct {
    uint8_t n[384];
    uint32_t e;
    uint8_t rinv[384];
    uint32_t mdash;
} ets_rsa_pubkey_t;
#endif

bool ets_rsa_pss_verify(const ets_rsa_pubkey_t *key, const uint8_t *sig, const uint8_t *digest, uint8_t *verified_digest);
