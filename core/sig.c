/* aloft: secure boot v2 signature blocks (sig.h).
 *
 * Layouts, as espsecure writes them (byte 0 magic 0xE7, byte 1 version):
 *   RSA-3072 (version 2): digest @4 (32), key @36 (776), signature @812 (384)
 *   ECDSA (version 3): byte 2 is 1 when the digest is SHA-384 (P-384);
 *     digest @4 (32 or 48), then curve id (2: P-256, 3: P-384), X, Y, R, S
 * then zeros, the CRC-32 of bytes 0..1195 @1196, zero padding. */
#include "aloft/sig.h"

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "bytes.h"

#define VERSION_RSA 2u
#define VERSION_ECDSA 3u
#define DIGEST_AT 4u
#define RSA_KEY_BYTES 776u
#define RSA_SIG_BYTES 384u

int aloft_sig_parse(const uint8_t *b, struct aloft_sig_block *out)
{
    if (b[0] != ALOFT_SIG_MAGIC)
        return ALOFT_E_NOTFOUND;
    if (~aloft_crc32(0xFFFFFFFFu, b, ALOFT_SIG_CRC_BYTES) != aloft_le32(b + ALOFT_SIG_CRC_BYTES))
        return ALOFT_E_CORRUPT;
    out->digest = b + DIGEST_AT;
    out->digest_len = 32;
    if (b[1] == VERSION_RSA) {
        out->scheme = ALOFT_SIG_RSA3072;
        out->key_len = RSA_KEY_BYTES;
        out->sig_len = RSA_SIG_BYTES;
    } else if (b[1] == VERSION_ECDSA) {
        out->digest_len = b[2] == 1 ? 48 : 32;
        /* the curve id follows the digest; it must agree with the digest's length */
        uint8_t curve = b[DIGEST_AT + out->digest_len];
        out->scheme = out->digest_len == 32 ? ALOFT_SIG_ECDSA256 : ALOFT_SIG_ECDSA384;
        if (curve != out->scheme) /* the curve ids are 2 and 3, as the schemes */
            return ALOFT_E_SIGNATURE;
        out->key_len = (uint16_t)(1u + 2u * out->digest_len); /* id, X, Y */
        out->sig_len = (uint16_t)(2u * out->digest_len);      /* R, S */
    } else {
        return ALOFT_E_SIGNATURE;
    }
    out->key = out->digest + out->digest_len;
    out->sig = out->key + out->key_len;
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, out->key, out->key_len);
    aloft_sha256_final(&s, out->key_digest);
    return 0;
}
