/* aloft: SHA-256 (and its HMAC), MD5 and CRC-32. Portable defaults live in the core; a port
 * routes SHA-256 to hardware by defining ALOFT_PORT_SHA256 when building the
 * core and providing these three functions itself. */
#ifndef ALOFT_CRYPTO_H
#define ALOFT_CRYPTO_H

#include <stddef.h>
#include <stdint.h>

struct aloft_sha256 {
    uint32_t h[8];
    uint64_t len;      /* bytes hashed so far */
    uint8_t buf[64];
};

void aloft_sha256_init(struct aloft_sha256 *s);
void aloft_sha256_update(struct aloft_sha256 *s, const void *data, size_t len);
void aloft_sha256_final(struct aloft_sha256 *s, uint8_t out[32]);

/* HMAC-SHA256 (RFC 2104): the key, then one message. The sum uses h up (no
 * copy of it on the stack); a key for many messages is copied first. */
struct aloft_hmac_sha256 {
    struct aloft_sha256 in, out; /* after the key's inner and outer padded blocks */
};
void aloft_hmac_sha256_key(struct aloft_hmac_sha256 *h, const void *key, size_t len);
void aloft_hmac_sha256_sum(struct aloft_hmac_sha256 *h, const void *msg, size_t len, uint8_t out[32]);

struct aloft_md5 {
    uint32_t h[4];
    uint64_t len;
    uint8_t buf[64];
};

void aloft_md5_init(struct aloft_md5 *m);
void aloft_md5_update(struct aloft_md5 *m, const void *data, size_t len);
void aloft_md5_final(struct aloft_md5 *m, uint8_t out[16]);

/* Reflected CRC-32 (poly 0xEDB88320) with no pre- or post-inversion: the
 * register in, the register out. The variants are spelled by the caller:
 *   zlib/PNG:  ~aloft_crc32(0xFFFFFFFF, p, n)
 *   otadata:   ~aloft_crc32(0, seq, 4)        (binascii.crc32(seq, 0xFFFFFFFF))
 *   littlefs:   aloft_crc32(0xFFFFFFFF, p, n) */
uint32_t aloft_crc32(uint32_t reg, const void *data, size_t len);

#endif
