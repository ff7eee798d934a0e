/* aloft host: secure boot v2 signatures with OpenSSL (libcrypto): keys,
 * signing the way espsecure sign_data does, and verifying each block of a
 * signature sector (core sig.h parses them). */
#ifndef ALOFT_HOST_SIGNING_H
#define ALOFT_HOST_SIGNING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "aloft/port.h"
#include "aloft/sig.h"

/* "rsa3072", "ecdsa256", "ecdsa384", or "?"; the scheme for a name, or -1. */
const char *aloft_signing_scheme_name(int scheme);
int aloft_signing_scheme_id(const char *name);

/* A new private key of scheme, as PEM at path (mode 0600). Returns 0 or -1
 * with a message in err. */
int aloft_signing_keygen(int scheme, const char *path, char *err, size_t cap);

/* A private or public key from a PEM file; NULL with a message in err.
 * *scheme gets its scheme (a key of another kind or size is refused). */
EVP_PKEY *aloft_signing_load(const char *path, int *scheme, char *err, size_t cap);

/* The 32-byte public key digest of a key, as secure boot burns it into eFuse
 * (espsecure digest_sbv2_public_key). Returns 0 or -1. */
int aloft_signing_key_digest(EVP_PKEY *key, uint8_t out[ALOFT_SIG_KEY_DIGEST_BYTES]);

/* The digest of the first len bytes a block of scheme signs: SHA-256, or
 * SHA-384 for P-384. out holds 48 bytes. Returns its length. */
size_t aloft_signing_digest(int scheme, const uint8_t *data, size_t len, uint8_t out[48]);

/* Is the SHA-384 of flash bytes [addr, addr + len) digest? What a
 * device's port answers the agent for P-384 blocks: 0 when it is,
 * ALOFT_E_SIGNATURE when not, or the flash's error. */
int aloft_signing_flash_sha384_is(const struct aloft_flash *f, uint32_t addr, uint32_t len, const uint8_t digest[48]);

/* Sign data (len bytes, a multiple of 4 KB: the padded image) with a private
 * key into a 1216-byte block. Returns 0 or -1 with a message in err. */
int aloft_signing_block(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t block[ALOFT_SIG_BLOCK_BYTES],
                        char *err, size_t cap);

/* Does block b's signature verify its own key over digest (b->digest_len
 * bytes)? Returns true only when it does. */
bool aloft_signing_verify(const struct aloft_sig_block *b, const uint8_t *digest);

/* Where a signed file's sector starts: the image's signed_len for an app
 * image, else (a frontend www.bin) len - 4 KB when len is a multiple of
 * 4 KB and that sector starts with a block. 0: not signed. */
size_t aloft_signing_sector(const uint8_t *data, size_t len);

/* One block of a signed file, checked. */
struct aloft_signing_check {
    int parse;      /* aloft_sig_parse's result */
    struct aloft_sig_block b;
    bool digest_ok; /* the block's digest is the file's */
    bool valid;     /* digest_ok and the signature verifies */
};

/* Check every block of the sector at data + at. Returns how many blocks
 * there are (0..3); a block that does not parse ends the list unless it is
 * damaged (ALOFT_E_CORRUPT or ALOFT_E_SIGNATURE: it counts, invalid). */
int aloft_signing_check(const uint8_t *data, size_t at, struct aloft_signing_check out[ALOFT_SIG_BLOCKS_MAX]);

#endif
