/* aloft agent: the signature policy. Up to three trusted public key digests
 * (like secure boot's eFuse key slots); once any is set, an app or frontend
 * image is made bootable only when a block of its signature sector by a
 * trusted key verifies. The blocks are read back from the flash the image
 * was written to, after every other check and before otadata (or the www
 * slot setting) changes; the signature itself is the port's to check. */
#include <stdio.h>
#include <string.h>

#include "agent_private.h"
#include "aloft/err.h"
#include "aloft/sig.h"

#define CHUNK 256u

static int nibble(char c)
{
    c |= 0x20; /* lower case; digits keep their value */
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

void aloft_agent_sig_load(struct aloft_agent *a, const char *list)
{
    char buf[3 * 65 + 1];
    if (!list || !*list) {
        aloft_agent_get(a, "security/trusted_keys", buf, sizeof buf);
        list = buf;
    }
    /* "HEX,HEX,HEX"; an entry that does not parse trusts nothing (fail closed) */
    a->sig_on = *list != 0;
    a->sig_keys = 0;
    for (const char *p = list; *p && a->sig_keys < ALOFT_SIG_BLOCKS_MAX;) {
        unsigned i = 0;
        for (; i < 64 && nibble(p[i]) >= 0; i++)
            a->sig_key[a->sig_keys][i / 2] = (uint8_t)(a->sig_key[a->sig_keys][i / 2] << 4 | nibble(p[i]));
        a->sig_keys += i == 64 && (!p[i] || p[i] == ',');
        p += i;
        p += strcspn(p, ",");
        p += *p == ',';
    }
    if (a->sig_on)
        aloft_agent_log(a, "security: %u trusted keys: signed images only", a->sig_keys);
}

static bool trusted(const struct aloft_agent *a, const uint8_t *digest)
{
    for (unsigned i = 0; i < a->sig_keys; i++)
        if (!memcmp(a->sig_key[i], digest, ALOFT_SIG_KEY_DIGEST_BYTES))
            return true;
    return false;
}

/* SHA-256 of len bytes of flash at addr, through buf. */
static int hash_flash(const struct aloft_flash *f, uint32_t addr, uint32_t len, uint8_t *buf, uint8_t out[32])
{
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    for (uint32_t at = 0; at < len; at += CHUNK) {
        uint32_t n = len - at < CHUNK ? len - at : CHUNK;
        int rc = aloft_flash_read(f, addr + at, buf, n);
        if (rc)
            return rc;
        aloft_sha256_update(&s, buf, n);
    }
    aloft_sha256_final(&s, out);
    return 0;
}

int aloft_agent_sig_check(struct aloft_agent *a, uint32_t addr, uint32_t len, const struct aloft_image_info *in,
                          const char **code, char *why, size_t cap)
{
    if (!a->sig_on)
        return 0;
    const struct aloft_flash *f = a->port->flash;
    uint8_t blk[ALOFT_SIG_BLOCK_BYTES], digest[32];
    uint32_t at = in ? in->signed_len : len - ALOFT_SIG_SECTOR_BYTES;
    int rc = 0;
    bool sector = in ? at != 0
                     : len > ALOFT_SIG_SECTOR_BYTES && at % ALOFT_SIG_SECTOR_BYTES == 0 &&
                           !(rc = aloft_flash_read(f, addr + at, blk, 1)) && blk[0] == ALOFT_SIG_MAGIC;
    if (in)
        memcpy(digest, in->signed_sha256, sizeof digest);
    else if (sector)
        rc = hash_flash(f, addr, at, blk, digest);
    if (rc)
        return rc;
    const char *reason = "no signature sector";
    *code = "unsigned";
    if (!sector)
        goto refuse;
    reason = "no block by a trusted key";
    *code = "untrusted_key";
    for (unsigned i = 0; i < ALOFT_SIG_BLOCKS_MAX; i++) {
        struct aloft_sig_block b;
        if ((rc = aloft_flash_read(f, addr + at + i * ALOFT_SIG_BLOCK_BYTES, blk, sizeof blk)) != 0)
            return rc;
        rc = aloft_sig_parse(blk, &b);
        if (rc == ALOFT_E_NOTFOUND)
            break;
        if (rc == 0 && !trusted(a, b.key_digest))
            continue;
        *code = "bad_signature";
        /* a P-384 block signs the SHA-384 of the same bytes: the port's */
        bool p384 = rc == 0 && b.digest_len == 48;
        if (rc)
            reason = "a block is damaged";
        else if (p384 && !a->port->sha384_is)
            reason = "a P-384 block, and no SHA-384 here";
        else if (p384 ? a->port->sha384_is(a->port->ctx, addr, at, b.digest) != 0 : memcmp(b.digest, digest, 32))
            reason = "a trusted block signs other bytes";
        else if (!a->port->verify || a->port->verify(a->port->ctx, &b, p384 ? b.digest : digest))
            reason = "a trusted block does not verify";
        else
            return 0;
    }
refuse:
    snprintf(why, cap, "signed images only: %s", reason);
    return ALOFT_E_SIGNATURE;
}
