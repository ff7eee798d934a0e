/* aloft host: secure boot v2 signatures with OpenSSL (signing.h). espsecure
 * stores every number little-endian (as the ESP32 ROM reads them); OpenSSL
 * speaks big-endian, so numbers are reversed on the way in and out. */
#include "signing.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>

#include "aloft/err.h"
#include "aloft/image.h"

#define RSA_BYTES 384
#define PSS_SALT 32

static const struct {
    const char *name;
    const char *group; /* EC group, NULL for RSA */
    int bytes;         /* RSA modulus or EC coordinate */
} schemes[] = {
    [ALOFT_SIG_RSA3072] = {"rsa3072", NULL, RSA_BYTES},
    [ALOFT_SIG_ECDSA256] = {"ecdsa256", "prime256v1", 32},
    [ALOFT_SIG_ECDSA384] = {"ecdsa384", "secp384r1", 48},
};

const char *aloft_signing_scheme_name(int scheme)
{
    return scheme >= ALOFT_SIG_RSA3072 && scheme <= ALOFT_SIG_ECDSA384 ? schemes[scheme].name : "?";
}

int aloft_signing_scheme_id(const char *name)
{
    for (int s = ALOFT_SIG_RSA3072; s <= ALOFT_SIG_ECDSA384; s++)
        if (!strcmp(name, schemes[s].name))
            return s;
    return -1;
}

static void ossl_error(char *err, size_t cap, const char *what)
{
    const char *why = ERR_reason_error_string(ERR_peek_last_error());
    snprintf(err, cap, "%s failed: %s", what, why ? why : "OpenSSL gave no reason");
    ERR_clear_error();
}

int aloft_signing_keygen(int scheme, const char *path, char *err, size_t cap)
{
    EVP_PKEY *k = schemes[scheme].group ? EVP_EC_gen(schemes[scheme].group)
                                        : EVP_RSA_gen(RSA_BYTES * 8);
    if (!k) {
        ossl_error(err, cap, "key generation");
        return -1;
    }
    int rc = -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (!f) {
        snprintf(err, cap, "%s: cannot create (an existing key is never overwritten)", path);
        if (fd >= 0)
            close(fd);
    } else {
        rc = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1 ? 0 : -1;
        if (fclose(f) || rc) {
            snprintf(err, cap, "%s: write failed", path);
            unlink(path);
            rc = -1;
        }
    }
    EVP_PKEY_free(k);
    return rc;
}

static int key_scheme(EVP_PKEY *k)
{
    if (EVP_PKEY_is_a(k, "RSA"))
        return EVP_PKEY_get_bits(k) == RSA_BYTES * 8 ? ALOFT_SIG_RSA3072 : -1;
    char group[32];
    if (!EVP_PKEY_is_a(k, "EC") ||
        !EVP_PKEY_get_utf8_string_param(k, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group, NULL))
        return -1;
    for (int s = ALOFT_SIG_ECDSA256; s <= ALOFT_SIG_ECDSA384; s++)
        if (!strcmp(group, schemes[s].group))
            return s;
    return -1;
}

EVP_PKEY *aloft_signing_load(const char *path, int *scheme, char *err, size_t cap)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, cap, "%s: cannot open", path);
        return NULL;
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    if (!k) {
        rewind(f);
        k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    }
    fclose(f);
    ERR_clear_error();
    if (!k) {
        snprintf(err, cap, "%s: not a PEM private or public key", path);
        return NULL;
    }
    *scheme = key_scheme(k);
    if (*scheme < 0) {
        snprintf(err, cap, "%s: not an RSA-3072, P-256 or P-384 key (what secure boot v2 takes)", path);
        EVP_PKEY_free(k);
        return NULL;
    }
    return k;
}

static int put_bn(EVP_PKEY *k, const char *param, uint8_t *out, int n)
{
    BIGNUM *b = NULL;
    int ok = EVP_PKEY_get_bn_param(k, param, &b) && BN_bn2lebinpad(b, out, n) == n;
    BN_free(b);
    return ok ? 0 : -1;
}

/* The key as a block holds it. RSA: n, e, R^-1 = 2^(2*3072) mod n and
 * m' = -n^-1 mod 2^32 (the ROM's Montgomery constants); ECDSA: curve id, X, Y. */
static int key_blob(EVP_PKEY *k, uint8_t *out, size_t *len)
{
    int s = key_scheme(k);
    if (s < 0)
        return -1;
    if (s != ALOFT_SIG_RSA3072) {
        out[0] = (uint8_t)s;
        *len = 1u + 2u * (size_t)schemes[s].bytes;
        return put_bn(k, OSSL_PKEY_PARAM_EC_PUB_X, out + 1, schemes[s].bytes) ||
                       put_bn(k, OSSL_PKEY_PARAM_EC_PUB_Y, out + 1 + schemes[s].bytes, schemes[s].bytes)
                   ? -1
                   : 0;
    }
    *len = 2u * RSA_BYTES + 8u;
    BIGNUM *n = NULL, *e = NULL, *r = BN_new(), *w = BN_new();
    BN_CTX *ctx = BN_CTX_new();
    int ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n) && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e) &&
             r && w && ctx && BN_bn2lebinpad(n, out, RSA_BYTES) == RSA_BYTES &&
             BN_bn2lebinpad(e, out + RSA_BYTES, 4) == 4 && BN_set_bit(r, 2 * RSA_BYTES * 8) &&
             BN_mod(r, r, n, ctx) && BN_bn2lebinpad(r, out + RSA_BYTES + 4, RSA_BYTES) == RSA_BYTES &&
             BN_set_word(w, 0) && BN_set_bit(w, 32) && BN_mod_inverse(r, n, w, ctx) && BN_sub(r, w, r) &&
             BN_bn2lebinpad(r, out + 2 * RSA_BYTES + 4, 4) == 4;
    BN_free(n);
    BN_free(e);
    BN_free(r);
    BN_free(w);
    BN_CTX_free(ctx);
    return ok ? 0 : -1;
}

int aloft_signing_key_digest(EVP_PKEY *key, uint8_t out[ALOFT_SIG_KEY_DIGEST_BYTES])
{
    uint8_t blob[2 * RSA_BYTES + 8];
    size_t len;
    if (key_blob(key, blob, &len))
        return -1;
    unsigned n = 0;
    return EVP_Digest(blob, len, out, &n, EVP_sha256(), NULL) == 1 ? 0 : -1;
}

size_t aloft_signing_digest(int scheme, const uint8_t *data, size_t len, uint8_t out[48])
{
    unsigned n = 0;
    EVP_Digest(data, len, out, &n, scheme == ALOFT_SIG_ECDSA384 ? EVP_sha384() : EVP_sha256(), NULL);
    return n;
}

static void reverse(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n / 2; i++) {
        uint8_t t = p[i];
        p[i] = p[n - 1 - i];
        p[n - 1 - i] = t;
    }
}

/* A verify or sign context for k with the scheme's padding: RSA-PSS with
 * SHA-256, MGF1-SHA-256 and a 32-byte salt; plain ECDSA over the digest. */
static EVP_PKEY_CTX *pkey_ctx(EVP_PKEY *k, bool sign)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    bool ok = c && (sign ? EVP_PKEY_sign_init(c) : EVP_PKEY_verify_init(c)) == 1;
    if (ok && EVP_PKEY_is_a(k, "RSA"))
        ok = EVP_PKEY_CTX_set_rsa_padding(c, RSA_PKCS1_PSS_PADDING) == 1 &&
             EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) == 1 && EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) == 1 &&
             EVP_PKEY_CTX_set_rsa_pss_saltlen(c, PSS_SALT) == 1;
    if (!ok) {
        EVP_PKEY_CTX_free(c);
        return NULL;
    }
    return c;
}

int aloft_signing_block(EVP_PKEY *key, const uint8_t *data, size_t len, uint8_t block[ALOFT_SIG_BLOCK_BYTES],
                        char *err, size_t cap)
{
    int s = key_scheme(key);
    size_t klen = 0;
    memset(block, 0, ALOFT_SIG_BLOCK_BYTES);
    block[0] = ALOFT_SIG_MAGIC;
    block[1] = s == ALOFT_SIG_RSA3072 ? 2 : 3;
    block[2] = s == ALOFT_SIG_ECDSA384; /* the digest is SHA-384 */
    uint8_t *digest = block + 4;
    size_t dlen = aloft_signing_digest(s, data, len, digest);
    uint8_t *kb = digest + dlen;
    if (s < 0 || key_blob(key, kb, &klen)) {
        snprintf(err, cap, "the key's public part cannot be read");
        return -1;
    }
    uint8_t *sig = kb + klen;
    uint8_t der[RSA_BYTES + 16];
    size_t slen = sizeof der;
    EVP_PKEY_CTX *c = pkey_ctx(key, true);
    if (!c || EVP_PKEY_sign(c, der, &slen, digest, dlen) != 1) {
        EVP_PKEY_CTX_free(c);
        ossl_error(err, cap, "signing (is it a private key?)");
        return -1;
    }
    EVP_PKEY_CTX_free(c);
    if (s == ALOFT_SIG_RSA3072) {
        memcpy(sig, der, RSA_BYTES);
        reverse(sig, RSA_BYTES);
    } else {
        const uint8_t *p = der;
        ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)slen);
        int n = schemes[s].bytes;
        bool ok = es && BN_bn2lebinpad(ECDSA_SIG_get0_r(es), sig, n) == n &&
                  BN_bn2lebinpad(ECDSA_SIG_get0_s(es), sig + n, n) == n;
        ECDSA_SIG_free(es);
        if (!ok) {
            snprintf(err, cap, "the ECDSA signature does not decode");
            return -1;
        }
    }
    uint32_t crc = ~aloft_crc32(0xFFFFFFFFu, block, ALOFT_SIG_CRC_BYTES);
    for (int i = 0; i < 4; i++)
        block[ALOFT_SIG_CRC_BYTES + i] = (uint8_t)(crc >> (8 * i));
    return 0;
}

/* The public key a block carries, as OpenSSL's. */
static EVP_PKEY *block_key(const struct aloft_sig_block *b)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *n = NULL, *e = NULL;
    uint8_t point[1 + 2 * 48];
    bool rsa = b->scheme == ALOFT_SIG_RSA3072;
    bool ok = bld != NULL;
    if (ok && rsa) {
        n = BN_lebin2bn(b->key, RSA_BYTES, NULL);
        e = BN_lebin2bn(b->key + RSA_BYTES, 4, NULL);
        ok = n && e && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) &&
             OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e);
    } else if (ok) {
        /* uncompressed point: 0x04, X, Y big-endian */
        int c = schemes[b->scheme].bytes;
        point[0] = 4;
        for (int i = 0; i < c; i++) {
            point[1 + i] = b->key[c - i];
            point[1 + c + i] = b->key[2 * c - i];
        }
        ok = OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, schemes[b->scheme].group, 0) &&
             OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point, 1u + 2u * (size_t)c);
    }
    OSSL_PARAM *params = ok ? OSSL_PARAM_BLD_to_param(bld) : NULL;
    EVP_PKEY_CTX *c = params ? EVP_PKEY_CTX_new_from_name(NULL, rsa ? "RSA" : "EC", NULL) : NULL;
    EVP_PKEY *k = NULL;
    if (!c || EVP_PKEY_fromdata_init(c) != 1 || EVP_PKEY_fromdata(c, &k, EVP_PKEY_PUBLIC_KEY, params) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return k;
}

int aloft_signing_flash_sha384_is(const struct aloft_flash *f, uint32_t addr, uint32_t len, const uint8_t digest[48])
{
    uint8_t out[48];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int rc = c && EVP_DigestInit_ex(c, EVP_sha384(), NULL) == 1 ? 0 : ALOFT_E_IO;
    uint8_t buf[4096];
    for (uint32_t at = 0; rc == 0 && at < len; at += sizeof buf) {
        uint32_t n = len - at < sizeof buf ? len - at : (uint32_t)sizeof buf;
        rc = aloft_flash_read(f, addr + at, buf, n);
        if (rc == 0 && EVP_DigestUpdate(c, buf, n) != 1)
            rc = ALOFT_E_IO;
    }
    if (rc == 0 && EVP_DigestFinal_ex(c, out, NULL) != 1)
        rc = ALOFT_E_IO;
    EVP_MD_CTX_free(c);
    return rc ? rc : memcmp(out, digest, sizeof out) ? ALOFT_E_SIGNATURE : 0;
}

bool aloft_signing_verify(const struct aloft_sig_block *b, const uint8_t *digest)
{
    EVP_PKEY *k = block_key(b);
    EVP_PKEY_CTX *c = k ? pkey_ctx(k, false) : NULL;
    uint8_t sig[RSA_BYTES + 16];
    size_t slen = 0;
    bool ok = c != NULL;
    if (ok && b->scheme == ALOFT_SIG_RSA3072) {
        memcpy(sig, b->sig, RSA_BYTES);
        reverse(sig, RSA_BYTES);
        slen = RSA_BYTES;
    } else if (ok) {
        int n = schemes[b->scheme].bytes;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_lebin2bn(b->sig, n, NULL), *s = BN_lebin2bn(b->sig + n, n, NULL);
        uint8_t *p = sig;
        if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
            r = s = NULL; /* es owns them */
            int len = i2d_ECDSA_SIG(es, &p);
            slen = len > 0 ? (size_t)len : 0;
        }
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        ok = slen > 0;
    }
    ok = ok && EVP_PKEY_verify(c, sig, slen, digest, b->digest_len) == 1;
    ERR_clear_error();
    EVP_PKEY_CTX_free(c);
    EVP_PKEY_free(k);
    return ok;
}

size_t aloft_signing_sector(const uint8_t *data, size_t len)
{
    struct aloft_image_info in;
    if (len && data[0] == ALOFT_IMAGE_MAGIC) {
        int rc = aloft_image_verify(data, len, ALOFT_CHIP_ANY, 0, &in);
        return rc == 0 ? in.signed_len : 0;
    }
    if (len < ALOFT_SIG_SECTOR_BYTES || len % ALOFT_SIG_SECTOR_BYTES ||
        data[len - ALOFT_SIG_SECTOR_BYTES] != ALOFT_SIG_MAGIC)
        return 0;
    return len - ALOFT_SIG_SECTOR_BYTES;
}

int aloft_signing_check(const uint8_t *data, size_t at, struct aloft_signing_check out[ALOFT_SIG_BLOCKS_MAX])
{
    int n = 0;
    uint8_t digest[48];
    for (unsigned i = 0; i < ALOFT_SIG_BLOCKS_MAX; i++) {
        struct aloft_signing_check *c = &out[n];
        memset(c, 0, sizeof *c);
        c->parse = aloft_sig_parse(data + at + i * ALOFT_SIG_BLOCK_BYTES, &c->b);
        if (c->parse == ALOFT_E_NOTFOUND)
            break;
        n++;
        if (c->parse)
            continue;
        c->digest_ok = aloft_signing_digest(c->b.scheme, data, at, digest) == c->b.digest_len &&
                       !memcmp(digest, c->b.digest, c->b.digest_len);
        c->valid = c->digest_ok && aloft_signing_verify(&c->b, digest);
    }
    return n;
}
