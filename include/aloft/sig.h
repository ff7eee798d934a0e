/* aloft: ESP-IDF secure boot v2 signature blocks (FORMATS.md §6). The
 * signature sector follows the image padded to 4 KB and holds up to three
 * 1216-byte blocks, each a signature by one key. Here they are parsed and
 * their CRC checked, and the public key digest computed: the 32 bytes
 * secure boot keeps in an eFuse key slot. The signature itself is checked
 * by a crypto port (OpenSSL on the host, the ROM or mbedTLS on a device). */
#ifndef ALOFT_SIG_H
#define ALOFT_SIG_H

#include <stdint.h>

#define ALOFT_SIG_SECTOR_BYTES 4096u
#define ALOFT_SIG_BLOCK_BYTES 1216u
#define ALOFT_SIG_BLOCKS_MAX 3u
#define ALOFT_SIG_MAGIC 0xE7u
#define ALOFT_SIG_CRC_BYTES 1196u /* the CRC covers the block up to itself */
#define ALOFT_SIG_KEY_DIGEST_BYTES 32u

enum aloft_sig_scheme { ALOFT_SIG_RSA3072 = 1, ALOFT_SIG_ECDSA256 = 2, ALOFT_SIG_ECDSA384 = 3 };

/* One block, pointing into the caller's bytes. Numbers are little-endian,
 * as the ROM reads them. */
struct aloft_sig_block {
    uint8_t scheme;        /* enum aloft_sig_scheme */
    uint8_t digest_len;    /* 32 (SHA-256), 48 (SHA-384: P-384) */
    const uint8_t *digest; /* the digest of the padded image the block signs */
    const uint8_t *key;    /* RSA: n, e, R^-1 mod n, m' (776 B, the ROM's
                            * ets_rsa_pubkey_t); ECDSA: curve id, X, Y */
    uint16_t key_len;
    const uint8_t *sig;    /* RSA-PSS: 384 B; ECDSA: R, S */
    uint16_t sig_len;
    uint8_t key_digest[ALOFT_SIG_KEY_DIGEST_BYTES]; /* SHA-256 of key: what eFuse holds */
};

/* Parse the 1216 bytes at b. Returns 0, ALOFT_E_NOTFOUND (no block: the
 * list of blocks ends here), ALOFT_E_CORRUPT (the CRC differs) or
 * ALOFT_E_SIGNATURE (an unknown version or curve). */
int aloft_sig_parse(const uint8_t *b, struct aloft_sig_block *out);

#endif
