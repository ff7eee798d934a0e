/* HMAC-SHA256 (RFC 2104): how a device signs what it tells the update
 * server, with the credential the server derived for it. */
#include <string.h>

#include "aloft/crypto.h"

void aloft_hmac_sha256(const void *key, size_t key_len, const void *msg, size_t len, uint8_t out[32])
{
    uint8_t k[64] = {0};
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    if (key_len > sizeof k) { /* a long key is its digest */
        aloft_sha256_update(&s, key, key_len);
        aloft_sha256_final(&s, k);
        aloft_sha256_init(&s);
    } else {
        memcpy(k, key, key_len);
    }
    for (int pass = 0; pass < 2; pass++) { /* inner: (k ^ ipad) || msg; outer: (k ^ opad) || inner */
        for (size_t i = 0; i < sizeof k; i++)
            k[i] ^= pass ? 0x36 ^ 0x5c : 0x36;
        aloft_sha256_update(&s, k, sizeof k);
        aloft_sha256_update(&s, pass ? out : msg, pass ? 32 : len);
        aloft_sha256_final(&s, out);
        aloft_sha256_init(&s);
    }
}
