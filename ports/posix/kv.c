/* aloft POSIX port: the settings store. Layout and power-loss argument in
 * aloft_posix_kv.h. */
#include "aloft_posix_kv.h"

#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"

#define SECTOR 4096u
#define HDR 16u
#define REC_HDR 8u
#define REC_MAX (SECTOR / (REC_HDR + 4u))
#define FLAG_LIVE 0x01u /* cleared in a deletion record */
static const uint8_t magic[4] = {'a', 'K', 'V', '1'};

static uint32_t le32(const uint8_t *p) { return p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static uint32_t crc(const void *p, size_t n) { return ~aloft_crc32(0xFFFFFFFFu, p, n); }
static uint32_t sector_addr(const struct aloft_posix_kv *kv, uint32_t i) { return kv->offset + i * SECTOR; }

/* The valid records of the active sector, the last one of each key only
 * (a later record of a key replaces the earlier). */
struct live {
    uint8_t sec[SECTOR];
    const uint8_t *rec[REC_MAX];
    uint32_t n;
};

static bool same_key(const uint8_t *a, const uint8_t *b)
{
    return a[2] == b[2] && !memcmp(a + REC_HDR, b + REC_HDR, a[2]);
}

static int load(struct aloft_posix_kv *kv, struct live *l)
{
    int rc = aloft_flash_read(kv->flash, sector_addr(kv, kv->active), l->sec, SECTOR);
    if (rc)
        return rc;
    uint32_t off = HDR;
    l->n = 0;
    kv->end = 0;
    while (off + REC_HDR <= SECTOR) {
        const uint8_t *r = l->sec + off;
        uint16_t len = le16(r);
        if (len == 0xFFFF) { /* erased: the end of the log */
            kv->end = off;
            break;
        }
        if (len < REC_HDR + 4 || len % 4 || off + len > SECTOR)
            break; /* torn header: append nothing more here */
        off += len;
        if (REC_HDR + r[2] + le16(r + 4) + 4u > len || le32(r + len - 4) != crc(r, len - 4u))
            continue; /* torn record: its old value stands */
        uint32_t i = 0;
        while (i < l->n && !same_key(l->rec[i], r))
            i++;
        l->rec[i] = r;
        l->n += i == l->n;
    }
    return 0;
}

static int write_header(struct aloft_posix_kv *kv, uint32_t sector, uint32_t gen)
{
    uint8_t h[HDR];
    memset(h, 0xFF, sizeof h);
    memcpy(h, magic, 4);
    put32(h + 4, gen);
    put32(h + 8, crc(h, 8));
    return aloft_flash_write(kv->flash, sector_addr(kv, sector), h, HDR);
}

int aloft_posix_kv_open(struct aloft_posix_kv *kv, const struct aloft_flash *f, const struct aloft_part *p)
{
    if (!p || p->size < 2 * SECTOR || p->offset % SECTOR)
        return ALOFT_E_INVAL;
    kv->flash = f;
    kv->offset = p->offset;
    kv->sectors = p->size / SECTOR;
    kv->gen = 0;
    kv->active = 0;
    kv->end = 0;
    for (uint32_t i = 0; i < kv->sectors; i++) {
        uint8_t h[HDR];
        int rc = aloft_flash_read(f, sector_addr(kv, i), h, HDR);
        if (rc)
            return rc;
        uint32_t g = le32(h + 4);
        if (!memcmp(h, magic, 4) && le32(h + 8) == crc(h, 8) && g > kv->gen)
            kv->gen = g, kv->active = i;
    }
    if (kv->gen == 0) { /* blank or foreign: format sector 0 */
        int rc = aloft_flash_erase(f, kv->offset, SECTOR);
        if (rc == 0)
            rc = write_header(kv, 0, 1);
        if (rc)
            return rc;
        kv->gen = 1;
        kv->end = HDR;
    }
    return 0;
}

int aloft_posix_kv_get(struct aloft_posix_kv *kv, const char *key, void *buf, size_t cap)
{
    static struct live l;
    size_t klen = strlen(key);
    int rc = load(kv, &l);
    if (rc)
        return rc;
    for (uint32_t i = 0; i < l.n; i++) {
        const uint8_t *r = l.rec[i];
        if (r[2] != klen || memcmp(r + REC_HDR, key, klen))
            continue;
        if (!(r[3] & FLAG_LIVE))
            return ALOFT_E_NOTFOUND;
        uint16_t vlen = le16(r + 4);
        if (vlen > cap)
            return ALOFT_E_NOSPC;
        memcpy(buf, r + REC_HDR + klen, vlen);
        return vlen;
    }
    return ALOFT_E_NOTFOUND;
}

/* Build a record into out; returns its length. */
static uint16_t make_record(uint8_t *out, const char *key, size_t klen, const void *val, size_t vlen, bool live)
{
    uint16_t len = (uint16_t)((REC_HDR + klen + vlen + 4 + 3) & ~3u);
    memset(out, 0xFF, len);
    put16(out, len);
    out[2] = (uint8_t)klen;
    out[3] = live ? 0xFF : (uint8_t)~FLAG_LIVE;
    put16(out + 4, (uint16_t)vlen);
    memcpy(out + REC_HDR, key, klen);
    if (vlen)
        memcpy(out + REC_HDR + klen, val, vlen);
    put32(out + len - 4, crc(out, len - 4u));
    return len;
}

/* Copy the live settings and rec into the next sector; header written last. */
static int compact(struct aloft_posix_kv *kv, struct live *l, const uint8_t *rec, uint16_t rec_len)
{
    static uint8_t fresh[SECTOR];
    memset(fresh, 0xFF, sizeof fresh);
    uint32_t off = HDR;
    for (uint32_t i = 0; i < l->n; i++) {
        const uint8_t *r = l->rec[i];
        if (!(r[3] & FLAG_LIVE) || same_key(r, rec))
            continue;
        memcpy(fresh + off, r, le16(r));
        off += le16(r);
    }
    if (rec[3] & FLAG_LIVE) {
        if (off + rec_len > SECTOR)
            return ALOFT_E_NOSPC;
        memcpy(fresh + off, rec, rec_len);
        off += rec_len;
    }
    uint32_t next = (kv->active + 1) % kv->sectors;
    int rc = aloft_flash_erase(kv->flash, sector_addr(kv, next), SECTOR);
    if (rc == 0 && off > HDR)
        rc = aloft_flash_write(kv->flash, sector_addr(kv, next) + HDR, fresh + HDR, off - HDR);
    if (rc == 0)
        rc = write_header(kv, next, kv->gen + 1);
    if (rc)
        return rc;
    kv->active = next;
    kv->gen++;
    kv->end = off;
    return 0;
}

static int put(struct aloft_posix_kv *kv, const char *key, const void *val, size_t vlen, bool live)
{
    size_t klen = strlen(key);
    if (!klen || klen > ALOFT_KV_KEY_MAX || vlen > ALOFT_KV_VALUE_MAX)
        return ALOFT_E_INVAL;
    static struct live l;
    static uint8_t rec[REC_HDR + ALOFT_KV_KEY_MAX + ALOFT_KV_VALUE_MAX + 8];
    int rc = load(kv, &l);
    if (rc)
        return rc;
    uint16_t len = make_record(rec, key, klen, val, vlen, live);
    if (kv->end && kv->end + len <= SECTOR) {
        rc = aloft_flash_write(kv->flash, sector_addr(kv, kv->active) + kv->end, rec, len);
        if (rc == 0)
            kv->end += len;
        return rc;
    }
    return compact(kv, &l, rec, len);
}

int aloft_posix_kv_set(struct aloft_posix_kv *kv, const char *key, const void *val, size_t len)
{
    return put(kv, key, val, len, true);
}

int aloft_posix_kv_del(struct aloft_posix_kv *kv, const char *key)
{
    return put(kv, key, NULL, 0, false);
}

static int settings_get(void *ctx, const char *key, void *buf, size_t cap)
{
    return aloft_posix_kv_get(ctx, key, buf, cap);
}

static int settings_set(void *ctx, const char *key, const void *val, size_t len)
{
    return aloft_posix_kv_set(ctx, key, val, len);
}

static int settings_del(void *ctx, const char *key)
{
    return aloft_posix_kv_del(ctx, key);
}

struct aloft_settings aloft_posix_kv_settings(struct aloft_posix_kv *kv)
{
    return (struct aloft_settings){kv, settings_get, settings_set, settings_del};
}
