/* HMAC-SHA256 (RFC 2104): how a device signs what it tells the update
 * server, with the credential the server derived for it, and the PRF of
 * ArduinoOTA's PBKDF2. The key's two padded blocks are hashed once, so a
 * key used many times (10,000 PBKDF2 rounds) costs two blocks a use. */
#include <string.h>

#include "aloft/crypto.h"

void aloft_hmac_sha256_key(struct aloft_hmac_sha256 *h, const void *key, size_t len)
{
    uint8_t pad[64] = {0};
    if (len > sizeof pad) { /* a long key is its digest */
        aloft_sha256_init(&h->in);
        aloft_sha256_update(&h->in, key, len);
        aloft_sha256_final(&h->in, pad);
    } else {
        memcpy(pad, key, len);
    }
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] ^= 0x36;
    aloft_sha256_init(&h->in);
    aloft_sha256_update(&h->in, pad, sizeof pad);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] ^= 0x36 ^ 0x5c;
    aloft_sha256_init(&h->out);
    aloft_sha256_update(&h->out, pad, sizeof pad);
}

void aloft_hmac_sha256_sum(struct aloft_hmac_sha256 *h, const void *msg, size_t len, uint8_t out[32])
{
    aloft_sha256_update(&h->in, msg, len);
    aloft_sha256_final(&h->in, out);
    aloft_sha256_update(&h->out, out, 32);
    aloft_sha256_final(&h->out, out);
}
