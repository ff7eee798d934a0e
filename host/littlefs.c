/* aloft host: LittleFS v2 reader and mkfs (see littlefs.h).
 *
 * Function names follow littlefs's own (fetch, getslice, commit, compact,
 * split, alloc) so that each step can be checked against SPEC.md and against
 * what the reference does; the code is written here from that description. */
#include "littlefs.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "file.h"

/* ---- tags: big-endian, valid bit | 11-bit type | 10-bit id | 10-bit size ---- */

#define TAG(type, id, size) (((uint32_t)(type) << 20) | ((uint32_t)(id) << 10) | (uint32_t)(size))

enum {
    T_NAME = 0x000,
    T_REG = 0x001,
    T_DIR = 0x002,
    T_SUPERBLOCK = 0x0ff,
    T_STRUCT = 0x200,
    T_DIRSTRUCT = 0x200,
    T_INLINESTRUCT = 0x201,
    T_CTZSTRUCT = 0x202,
    T_SPLICE = 0x400,
    T_CREATE = 0x401,
    T_DELETE = 0x4ff,
    T_CCRC = 0x500,
    T_FCRC = 0x5ff,
    T_TAIL = 0x600,
    T_SOFTTAIL = 0x600,
    T_MOVESTATE = 0x7ff,
};

#define NULL_BLOCK 0xffffffffu
#define INLINE_BLOCK 0xfffffffeu
#define NO_TAG 0xffffffffu /* littlefs's besttag -1: nothing found, id 0x3ff */
#define PATH_LEN 1024      /* longest path the walker and mkfs build */

static bool tag_isvalid(uint32_t t) { return !(t & 0x80000000u); }
static bool tag_isdelete(uint32_t t) { return (t & 0x3ff) == 0x3ff; }
static uint32_t tag_type1(uint32_t t) { return (t & 0x70000000u) >> 20; }
static uint32_t tag_type2(uint32_t t) { return (t & 0x78000000u) >> 20; }
static uint32_t tag_type3(uint32_t t) { return (t & 0x7ff00000u) >> 20; }
static uint32_t tag_chunk(uint32_t t) { return (t & 0x0ff00000u) >> 20; }
static int tag_splice(uint32_t t) { return (int8_t)tag_chunk(t); }
static uint32_t tag_id(uint32_t t) { return (t & 0x000ffc00u) >> 10; }
static uint32_t tag_size(uint32_t t) { return t & 0x3ff; }
/* a delete (size 0x3ff) carries no data */
static uint32_t tag_dsize(uint32_t t) { return 4 + (tag_isdelete(t) ? 0 : tag_size(t)); }
/* an id shift of d as a tag delta, wrapping as littlefs's does */
static uint32_t id_delta(int d) { return (uint32_t)(int32_t)d * 0x400u; }

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

static uint32_t min32(uint32_t a, uint32_t b) { return a < b ? a : b; }

static bool pair_isnull(const uint32_t p[2]) { return p[0] == NULL_BLOCK || p[1] == NULL_BLOCK; }

/* littlefs's pair_cmp: 0 when the two pairs share a block */
static int pair_cmp(const uint32_t a[2], const uint32_t b[2])
{
    return !(a[0] == b[0] || a[1] == b[1] || a[0] == b[1] || a[1] == b[0]);
}

static const uint8_t *blk(const struct aloft_lfs *fs, uint32_t b) { return fs->img + (size_t)b * fs->block_size; }

/* Record what is wrong (the innermost cause wins) and return err. */
static int fail(struct aloft_lfs *fs, int err, const char *fmt, ...)
{
    if (!fs->why[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(fs->why, sizeof fs->why, fmt, ap);
        va_end(ap);
    }
    return err;
}

static bool movehere(const struct aloft_lfs *fs, const uint32_t pair[2])
{
    return tag_type1(fs->gdisk.tag) && pair_cmp(fs->gdisk.pair, pair) == 0;
}

/* ---- fetching a metadata pair ---- */

enum { CMP_EQ, CMP_LT, CMP_GT };

/* littlefs's name order: bytes first, and on a common prefix the longer name
 * sorts first (so "app.js.gz" comes before "app.js"). */
static int name_cmp(const uint8_t *disk, uint32_t dlen, const void *name, uint32_t nlen)
{
    int r = memcmp(disk, name, min32(dlen, nlen));
    if (r)
        return r < 0 ? CMP_LT : CMP_GT;
    if (nlen != dlen)
        return nlen < dlen ? CMP_LT : CMP_GT;
    return CMP_EQ;
}

/* A name to look for while fetching: tags equal to tag under mask are compared. */
struct match {
    uint32_t mask, tag;
    const void *name;
    uint32_t len;
};

/* littlefs's fetchmatch. Of the pair's two blocks take the one with the newer
 * revision (serial arithmetic) and read its log: tags XOR-chained from
 * 0xFFFFFFFF, each commit closed by a CCRC tag whose CRC covers everything
 * since the previous commit (the revision count, for the first). State is
 * taken only from commits whose CRC holds; if the newer block has none, the
 * older one is used. With want, *best ends as littlefs's besttag: the entry
 * of that name, or (invalid bit set) the entry it would be created before. */
static int fetch(struct aloft_lfs *fs, struct aloft_lfs_mdir *m, const uint32_t pair_in[2], const struct match *want,
                 uint32_t *best_out)
{
    uint32_t pair[2] = {pair_in[0], pair_in[1]}, bs = fs->block_size;
    if (pair[0] >= fs->block_count || pair[1] >= fs->block_count)
        return fail(fs, ALOFT_E_CORRUPT, "metadata pair {%u,%u} lies outside the image's %u blocks", pair[0], pair[1],
                    fs->block_count);
    uint32_t revs[2] = {le32(blk(fs, pair[0])), le32(blk(fs, pair[1]))};
    int r = 0;
    for (int i = 0; i < 2; i++)
        if ((int32_t)(revs[i] - revs[(i + 1) % 2]) > 0)
            r = i;
    m->pair[0] = pair[r];
    m->pair[1] = pair[1 - r];
    m->rev = revs[r];
    m->off = 0;

    uint32_t best = NO_TAG;
    for (int attempt = 0; attempt < 2; attempt++) {
        const uint8_t *b = blk(fs, m->pair[0]);
        uint32_t off = 0, ptag = 0xffffffffu, tbest = best, ttail[2] = {NULL_BLOCK, NULL_BLOCK};
        uint32_t fcrc_size = 0, fcrc_crc = 0;
        uint16_t tcount = 0;
        bool tsplit = false, maybeerased = false, hasfcrc = false;
        uint32_t crc = aloft_crc32(0xffffffffu, b, 4);
        for (;;) {
            off += tag_dsize(ptag);
            if (off + 4 > bs)
                break;
            crc = aloft_crc32(crc, b + off, 4);
            uint32_t tag = be32(b + off) ^ ptag;
            if (!tag_isvalid(tag)) {
                /* an erased tag is only expected right after a commit */
                maybeerased = tag_type2(ptag) == T_CCRC;
                break;
            }
            if (off + tag_dsize(tag) > bs)
                break;
            ptag = tag;
            if (tag_type2(tag) == T_CCRC) {
                if (off + 8 > bs || crc != le32(b + off + 4))
                    break;
                /* the CCRC's low type bit says which valid bit the next commit uses */
                ptag ^= (tag_chunk(tag) & 1u) << 31;
                uint8_t c[4];
                put_le32(c, crc);
                fs->seed = aloft_crc32(fs->seed, c, 4);
                best = tbest;
                m->off = off + tag_dsize(tag);
                m->etag = ptag;
                m->count = tcount;
                m->tail[0] = ttail[0];
                m->tail[1] = ttail[1];
                m->split = tsplit;
                crc = 0xffffffffu;
                continue;
            }
            crc = aloft_crc32(crc, b + off + 4, tag_dsize(tag) - 4);
            if (tag_type1(tag) == T_NAME) {
                if (tag_id(tag) >= tcount)
                    tcount = (uint16_t)(tag_id(tag) + 1);
            } else if (tag_type1(tag) == T_SPLICE) {
                tcount = (uint16_t)(tcount + tag_splice(tag));
                if (tag == (TAG(T_DELETE, 0, 0) | (TAG(0, 0x3ff, 0) & tbest)))
                    tbest |= 0x80000000u;
                else if (tbest != NO_TAG && tag_id(tag) <= tag_id(tbest))
                    tbest += id_delta(tag_splice(tag));
            } else if (tag_type1(tag) == T_TAIL) {
                if (off + 12 > bs)
                    break;
                tsplit = tag_chunk(tag) & 1;
                ttail[0] = le32(b + off + 4);
                ttail[1] = le32(b + off + 8);
            } else if (tag_type3(tag) == T_FCRC) {
                if (off + 12 > bs)
                    break;
                fcrc_size = le32(b + off + 4);
                fcrc_crc = le32(b + off + 8);
                hasfcrc = true;
            }
            if (want && (want->mask & tag) == (want->mask & want->tag)) {
                if (off + 4 + min32(want->len, tag_size(tag)) > bs)
                    break;
                int res = name_cmp(b + off + 4, tag_size(tag), want->name, want->len);
                if (res == CMP_EQ)
                    tbest = tag;
                else if ((TAG(0x7ff, 0x3ff, 0) & tag) == (TAG(0x7ff, 0x3ff, 0) & tbest))
                    tbest = NO_TAG; /* the entry we were placing before was renamed */
                else if (res == CMP_GT && tag_id(tag) <= tag_id(tbest))
                    tbest = tag | 0x80000000u;
            }
        }
        if (m->off == 0) {
            uint32_t t = m->pair[0];
            m->pair[0] = m->pair[1];
            m->pair[1] = t;
            m->rev = revs[1 - r];
            continue;
        }
        /* the writer appends only where littlefs would: after a commit, on a
         * program boundary, and (2.1) where the forward CRC says erased */
        m->erased = false;
        if (fs->prog_size && maybeerased && m->off % fs->prog_size == 0) {
            if (fs->v20)
                m->erased = true;
            else if (hasfcrc && fcrc_size <= bs - m->off)
                m->erased = aloft_crc32(0xffffffffu, b + m->off, fcrc_size) == fcrc_crc;
        }
        if (movehere(fs, m->pair)) {
            if (tag_id(fs->gdisk.tag) == tag_id(best))
                best |= 0x80000000u;
            else if (best != NO_TAG && tag_id(fs->gdisk.tag) < tag_id(best))
                best -= TAG(0, 1, 0);
        }
        *best_out = best;
        return 0;
    }
    return fail(fs, ALOFT_E_CORRUPT, "metadata pair {%u,%u}: neither block holds a commit with a valid CRC", pair[0],
                pair[1]);
}

/* littlefs's getslice: the newest tag matching gtag under gmask, walking the
 * log of pair[0] backwards from the last valid commit (the XOR chain runs both
 * ways) and following the id back across creates and deletes. Returns 0 with
 * the tag and the image offset of its data, or ALOFT_E_NOTFOUND. */
static int dir_get(struct aloft_lfs *fs, const struct aloft_lfs_mdir *m, uint32_t gmask, uint32_t gtag,
                   uint32_t *tag_out, size_t *data)
{
    uint32_t off = m->off, ntag = m->etag, gdiff = 0;
    const uint8_t *b = blk(fs, m->pair[0]);
    if (movehere(fs, m->pair) && tag_id(gmask) != 0) {
        if (tag_id(fs->gdisk.tag) == tag_id(gtag))
            return ALOFT_E_NOTFOUND;
        if (tag_id(fs->gdisk.tag) < tag_id(gtag))
            gdiff -= TAG(0, 1, 0);
    }
    while (off >= 4 + tag_dsize(ntag)) {
        off -= tag_dsize(ntag);
        uint32_t tag = ntag;
        ntag = (be32(b + off) ^ tag) & 0x7fffffffu;
        if (tag_id(gmask) != 0 && tag_type1(tag) == T_SPLICE && tag_id(tag) <= tag_id(gtag - gdiff)) {
            if (tag == (TAG(T_CREATE, 0, 0) | (TAG(0, 0x3ff, 0) & (gtag - gdiff))))
                return ALOFT_E_NOTFOUND; /* created here: nothing older */
            gdiff += id_delta(tag_splice(tag));
        }
        if ((gmask & tag) == (gmask & (gtag - gdiff))) {
            if (tag_isdelete(tag))
                return ALOFT_E_NOTFOUND;
            *tag_out = tag + gdiff;
            *data = (size_t)m->pair[0] * fs->block_size + off + 4;
            return 0;
        }
    }
    return ALOFT_E_NOTFOUND;
}

/* dir_get, copying up to n bytes of the data and zero-filling the rest */
static int dir_get_buf(struct aloft_lfs *fs, const struct aloft_lfs_mdir *m, uint32_t gmask, uint32_t gtag,
                       uint32_t *tag, void *buf, uint32_t n)
{
    size_t data;
    int rc = dir_get(fs, m, gmask, gtag, tag, &data);
    if (rc)
        return rc;
    uint32_t have = min32(tag_size(*tag), n);
    memcpy(buf, fs->img + data, have);
    memset((uint8_t *)buf + have, 0, n - have);
    return 0;
}

/* XOR this pair's share of the global state into g. */
static void getgstate(struct aloft_lfs *fs, const struct aloft_lfs_mdir *m, struct aloft_lfs_gstate *g)
{
    uint32_t tag;
    uint8_t d[12];
    if (dir_get_buf(fs, m, TAG(0x7ff, 0, 0), TAG(T_MOVESTATE, 0, 12), &tag, d, 12) == 0) {
        g->tag ^= le32(d);
        g->pair[0] ^= le32(d + 4);
        g->pair[1] ^= le32(d + 8);
    }
}

/* ---- CTZ skip-lists: block i starts with ctz(i)+1 pointers, to i-1, i-2, i-4 … ---- */

static uint32_t popc(uint32_t x) { return (uint32_t)__builtin_popcount(x); }
static uint32_t ctz32(uint32_t x) { return (uint32_t)__builtin_ctz(x); }
static uint32_t npw2(uint32_t x) { return x <= 1 ? 0 : 32 - (uint32_t)__builtin_clz(x - 1); }

/* Which block of the list holds byte *off, and the offset in it (SPEC.md's
 * closed form: block i holds bs - 4*(ctz(i)+1) bytes after block 0's bs). */
static uint32_t ctz_index(uint32_t bs, uint32_t *off)
{
    uint32_t size = *off, b = bs - 8, i = size / b;
    if (i == 0)
        return 0;
    i = (size - 4 * (popc(i - 1) + 2)) / b;
    *off = size - b * i - 4 * popc(i);
    return i;
}

static int ctz_find(struct aloft_lfs *fs, uint32_t head, uint32_t size, uint32_t pos, uint32_t *block, uint32_t *off)
{
    uint32_t last = size - 1;
    uint32_t current = ctz_index(fs->block_size, &last), target = ctz_index(fs->block_size, &pos);
    while (current > target) {
        uint32_t skip = min32(npw2(current - target + 1) - 1, ctz32(current));
        if (head >= fs->block_count)
            break;
        head = le32(blk(fs, head) + 4 * skip);
        current -= 1u << skip;
    }
    if (head >= fs->block_count || pos >= fs->block_size)
        return fail(fs, ALOFT_E_CORRUPT, "a file's block list points at block %u, outside the image's %u blocks", head,
                    fs->block_count);
    *block = head;
    *off = pos;
    return 0;
}

/* Every block of a file, as littlefs's ctz_traverse visits them. */
static int ctz_traverse(struct aloft_lfs *fs, uint32_t head, uint32_t size, void (*cb)(void *, uint32_t), void *ctx)
{
    if (!size)
        return 0;
    uint32_t off = size - 1, index = ctz_index(fs->block_size, &off);
    for (;;) {
        if (head >= fs->block_count)
            return fail(fs, ALOFT_E_CORRUPT, "a file's block list points at block %u, outside the image's %u blocks",
                        head, fs->block_count);
        cb(ctx, head);
        if (!index)
            return 0;
        const uint8_t *p = blk(fs, head);
        uint32_t count = 2 - (index & 1);
        if (count == 2) {
            if (le32(p) >= fs->block_count)
                return fail(fs, ALOFT_E_CORRUPT, "a file's block list points at block %u, outside the image",
                            le32(p));
            cb(ctx, le32(p));
        }
        head = le32(p + 4 * (count - 1));
        index -= count;
    }
}

/* ---- the reader ---- */

/* Name and struct of entry id: 0, ALOFT_E_NOTFOUND (no such entry, e.g. the
 * superblock's id 0 in the root) or ALOFT_E_CORRUPT. */
static int getinfo(struct aloft_lfs *fs, const struct aloft_lfs_mdir *m, uint32_t id, struct aloft_lfs_info *info)
{
    uint32_t tag;
    size_t d;
    int rc = dir_get(fs, m, TAG(0x780, 0x3ff, 0), TAG(T_NAME, id, 0), &tag, &d);
    if (rc)
        return rc;
    uint32_t type = tag_type3(tag), len = tag_size(tag);
    if ((type != T_REG && type != T_DIR) || len == 0 || len > fs->name_max || memchr(fs->img + d, '/', len) ||
        memchr(fs->img + d, 0, len))
        return fail(fs, ALOFT_E_CORRUPT, "metadata pair {%u,%u}: entry %u has an impossible name (tag 0x%08x)",
                    m->pair[0], m->pair[1], id, tag);
    memset(info, 0, sizeof *info);
    memcpy(info->name, fs->img + d, len);
    info->type = type == T_REG ? ALOFT_LFS_REG : ALOFT_LFS_DIR;

    uint8_t s[8] = {0};
    rc = dir_get(fs, m, TAG(0x700, 0x3ff, 0), TAG(T_STRUCT, id, 8), &tag, &d);
    if (rc)
        return fail(fs, ALOFT_E_CORRUPT, "metadata pair {%u,%u}: \"%s\" has no struct tag", m->pair[0], m->pair[1],
                    info->name);
    memcpy(s, fs->img + d, min32(tag_size(tag), 8));
    uint32_t st = tag_type3(tag), a = le32(s), b = le32(s + 4);
    if (st == T_DIRSTRUCT && type == T_DIR && a < fs->block_count && b < fs->block_count) {
        info->loc[0] = a;
        info->loc[1] = b;
        return 0;
    }
    if (st == T_INLINESTRUCT && type == T_REG) {
        info->is_inline = true;
        info->size = tag_size(tag);
        info->loc[0] = m->pair[0];
        info->loc[1] = (uint32_t)(d % fs->block_size);
        return 0;
    }
    if (st == T_CTZSTRUCT && type == T_REG && b <= fs->file_max &&
        (uint64_t)b <= (uint64_t)fs->block_count * fs->block_size && (b == 0 || a < fs->block_count)) {
        info->size = b;
        info->loc[0] = a;
        return 0;
    }
    return fail(fs, ALOFT_E_CORRUPT, "metadata pair {%u,%u}: \"%s\" has an impossible struct (tag 0x%08x)",
                m->pair[0], m->pair[1], info->name, tag);
}

/* littlefs's dir_find: follow a '/'-separated path from the root, each name
 * looked up with fetch through its directory's pairs. On success *tag is the
 * entry's name tag (id 0x3ff for the root) and m the pair holding it. On
 * ALOFT_E_NOTFOUND, *last says whether only the final name was missing; m and
 * *id are then where littlefs would create it. */
static int find(struct aloft_lfs *fs, const char *path, struct aloft_lfs_mdir *m, uint32_t *tag_out, uint16_t *id,
                bool *last)
{
    uint32_t tag = TAG(T_DIR, 0x3ff, 0), next[2] = {fs->root[0], fs->root[1]};
    const char *name = path;
    *last = false;
    for (;;) {
        name += strspn(name, "/");
        size_t nlen = strcspn(name, "/");
        if (nlen == 1 && name[0] == '.') {
            name++;
            continue;
        }
        if (nlen == 0) {
            *tag_out = tag;
            return 0;
        }
        if ((nlen == 2 && name[0] == '.' && name[1] == '.') || nlen > ALOFT_LFS_NAME_MAX ||
            tag_type3(tag) != T_DIR)
            return ALOFT_E_NOTFOUND;
        if (tag_id(tag) != 0x3ff) {
            uint8_t p[8];
            uint32_t t;
            if (dir_get_buf(fs, m, TAG(0x700, 0x3ff, 0), TAG(T_STRUCT, tag_id(tag), 8), &t, p, 8) ||
                tag_type3(t) != T_DIRSTRUCT)
                return fail(fs, ALOFT_E_CORRUPT, "directory entry %u in pair {%u,%u} has no directory struct",
                            tag_id(tag), m->pair[0], m->pair[1]);
            next[0] = le32(p);
            next[1] = le32(p + 4);
        }
        struct match want = {TAG(0x780, 0, 0), TAG(T_NAME, 0, 0), name, (uint32_t)nlen};
        for (uint32_t hops = 0;; hops++) {
            uint32_t best;
            if (hops > fs->block_count)
                return fail(fs, ALOFT_E_CORRUPT, "a directory's pairs form a cycle");
            int rc = fetch(fs, m, next, &want, &best);
            if (rc)
                return rc;
            if (tag_isvalid(best)) {
                tag = best;
                break;
            }
            if (tag_id(best) < m->count || !m->split) {
                *id = (uint16_t)min32(tag_id(best), m->count);
                *last = name[nlen + strspn(name + nlen, "/")] == 0;
                return ALOFT_E_NOTFOUND;
            }
            next[0] = m->tail[0];
            next[1] = m->tail[1];
        }
        name += nlen;
    }
}

static int mount_bs(struct aloft_lfs *fs, uint32_t bs)
{
    if (bs < 128)
        return fail(fs, ALOFT_E_INVAL, "block size %u is below littlefs's minimum of 128", bs);
    if (fs->len / bs < 2)
        return fail(fs, ALOFT_E_TRUNCATED, "the image is %zu bytes: too short for the superblock pair of two %u-byte blocks",
                    fs->len, bs);
    fs->block_size = bs;
    fs->block_count = (uint32_t)(fs->len / bs > UINT32_MAX ? UINT32_MAX : fs->len / bs);
    fs->name_max = ALOFT_LFS_NAME_MAX;
    fs->file_max = 0x7fffffffu;
    fs->attr_max = 1022;
    fs->seed = 0;
    bool magic = !memcmp(fs->img + 8, "littlefs", 8) || !memcmp(fs->img + bs + 8, "littlefs", 8), found = false;
    struct aloft_lfs_gstate g = {0};
    uint32_t tail[2] = {0, 1};
    for (uint32_t hops = 0; !pair_isnull(tail); hops++) {
        struct aloft_lfs_mdir m;
        uint32_t best;
        if (hops > fs->block_count / 2)
            return fail(fs, ALOFT_E_CORRUPT, "the list of metadata pairs loops");
        struct match sb = {TAG(0x7ff, 0x3ff, 0), TAG(T_SUPERBLOCK, 0, 8), "littlefs", 8};
        int rc = fetch(fs, &m, tail, &sb, &best);
        if (rc && hops == 0) {
            fs->why[0] = 0;
            return fail(fs, ALOFT_E_CORRUPT,
                        magic ? "blocks 0 and 1 (the superblock pair) hold no commit with a valid CRC: the image is damaged"
                              : "not a LittleFS image: no superblock (magic \"littlefs\") in its first two blocks");
        }
        if (rc)
            return rc;
        if (tag_isvalid(best)) {
            uint8_t s[24];
            uint32_t t;
            if (dir_get_buf(fs, &m, TAG(0x7ff, 0x3ff, 0), TAG(T_INLINESTRUCT, 0, 24), &t, s, 24))
                return fail(fs, ALOFT_E_CORRUPT, "the superblock entry has no parameters");
            uint32_t version = le32(s), sbs = le32(s + 4), sbc = le32(s + 8), nm = le32(s + 12), fm = le32(s + 16),
                     am = le32(s + 20);
            if (version >> 16 != 2 || (version & 0xffff) > 1)
                return fail(fs, ALOFT_E_CORRUPT, "disk version %u.%u: aloft reads LittleFS 2.0 and 2.1", version >> 16,
                            version & 0xffff);
            if (sbs != bs)
                return fail(fs, ALOFT_E_CORRUPT, "the superblock says block size %u, not %u", sbs, bs);
            if (sbc < 2)
                return fail(fs, ALOFT_E_CORRUPT, "the superblock says %u blocks", sbc);
            if (sbc > fs->len / bs)
                return fail(fs, ALOFT_E_TRUNCATED,
                            "the image is %zu bytes but its superblock says %u blocks of %u (%llu bytes): it was cut short",
                            fs->len, sbc, bs, (unsigned long long)sbc * bs);
            if (nm > ALOFT_LFS_NAME_MAX || fm > 0x7fffffffu || am > 1022)
                return fail(fs, ALOFT_E_CORRUPT, "impossible superblock limits: name_max %u, file_max %u, attr_max %u",
                            nm, fm, am);
            fs->version = version;
            fs->block_count = sbc;
            fs->name_max = nm ? nm : ALOFT_LFS_NAME_MAX;
            fs->file_max = fm ? fm : 0x7fffffffu;
            fs->attr_max = am ? am : 1022;
            fs->root[0] = m.pair[0];
            fs->root[1] = m.pair[1];
            found = true;
        }
        getgstate(fs, &m, &g);
        tail[0] = m.tail[0];
        tail[1] = m.tail[1];
    }
    if (!found)
        return fail(fs, ALOFT_E_CORRUPT, "not a LittleFS image: no superblock entry on the metadata list");
    /* an invalid (top) bit says orphans exist; littlefs counts that as one */
    g.tag += !tag_isvalid(g.tag);
    fs->gdisk = g;
    return 0;
}

int aloft_lfs_mount(struct aloft_lfs *fs, const uint8_t *img, size_t len, uint32_t block_size)
{
    memset(fs, 0, sizeof *fs);
    fs->img = img;
    fs->len = len;
    if (block_size)
        return mount_bs(fs, block_size);
    /* only the right size matches the superblock's own block size field */
    for (uint32_t bs = 128; bs <= (1u << 30) && bs <= len / 2; bs *= 2) {
        struct aloft_lfs t = {.img = img, .len = len};
        if (mount_bs(&t, bs) == 0) {
            *fs = t;
            return 0;
        }
    }
    return mount_bs(fs, len >= 8192 ? 4096 : 128);
}

int aloft_lfs_stat(struct aloft_lfs *fs, const char *path, struct aloft_lfs_info *info)
{
    struct aloft_lfs_mdir m;
    uint32_t tag;
    uint16_t id;
    bool last;
    fs->why[0] = 0;
    int rc = find(fs, path, &m, &tag, &id, &last);
    if (rc)
        return rc;
    if (tag_id(tag) == 0x3ff) {
        memset(info, 0, sizeof *info);
        info->type = ALOFT_LFS_DIR;
        strcpy(info->name, "/");
        info->loc[0] = fs->root[0];
        info->loc[1] = fs->root[1];
        return 0;
    }
    rc = getinfo(fs, &m, tag_id(tag), info);
    /* like littlefs: a trailing slash only names a directory */
    if (rc == 0 && info->type == ALOFT_LFS_REG && strchr(path, 0)[-1] == '/')
        return ALOFT_E_NOTFOUND;
    return rc;
}

int aloft_lfs_read(struct aloft_lfs *fs, const struct aloft_lfs_info *file, uint32_t pos, void *buf, size_t n)
{
    if (file->type != ALOFT_LFS_REG)
        return ALOFT_E_INVAL;
    if (pos >= file->size)
        return 0;
    if (n > file->size - pos)
        n = file->size - pos;
    if (n > INT_MAX)
        n = INT_MAX;
    if (file->is_inline) {
        memcpy(buf, blk(fs, file->loc[0]) + file->loc[1] + pos, n);
        return (int)n;
    }
    uint8_t *out = buf;
    size_t done = 0;
    while (done < n) {
        uint32_t block = 0, off = 0;
        int rc = ctz_find(fs, file->loc[0], file->size, pos + (uint32_t)done, &block, &off);
        if (rc)
            return rc;
        size_t chunk = n - done < fs->block_size - off ? n - done : fs->block_size - off;
        memcpy(out + done, blk(fs, block) + off, chunk);
        done += chunk;
    }
    return (int)n;
}

int aloft_lfs_read_file(struct aloft_lfs *fs, const char *path, void *buf, size_t cap)
{
    struct aloft_lfs_info info;
    int rc = aloft_lfs_stat(fs, path, &info);
    if (rc)
        return rc;
    if (info.type != ALOFT_LFS_REG)
        return ALOFT_E_INVAL;
    if (info.size > cap || info.size > INT_MAX)
        return ALOFT_E_NOSPC;
    return aloft_lfs_read(fs, &info, 0, buf, info.size);
}

static int dir_open_pair(struct aloft_lfs *fs, const uint32_t pair[2], struct aloft_lfs_dir *dir)
{
    uint32_t best;
    memset(dir, 0, sizeof *dir);
    return fetch(fs, &dir->m, pair, NULL, &best);
}

int aloft_lfs_dir_open(struct aloft_lfs *fs, const char *path, struct aloft_lfs_dir *dir)
{
    struct aloft_lfs_info info;
    int rc = aloft_lfs_stat(fs, path, &info);
    if (rc)
        return rc;
    if (info.type != ALOFT_LFS_DIR)
        return ALOFT_E_INVAL;
    return dir_open_pair(fs, info.loc, dir);
}

int aloft_lfs_dir_read(struct aloft_lfs *fs, struct aloft_lfs_dir *dir, struct aloft_lfs_info *info)
{
    for (;;) {
        if (dir->id >= dir->m.count) {
            if (!dir->m.split)
                return 0;
            uint32_t best;
            if (++dir->hops > fs->block_count)
                return fail(fs, ALOFT_E_CORRUPT, "a directory's pairs form a cycle");
            int rc = fetch(fs, &dir->m, dir->m.tail, NULL, &best);
            if (rc)
                return rc;
            dir->id = 0;
            continue;
        }
        if (dir->m.count > 0x3ff)
            return fail(fs, ALOFT_E_CORRUPT, "metadata pair {%u,%u} claims %u entries", dir->m.pair[0],
                        dir->m.pair[1], dir->m.count);
        int rc = getinfo(fs, &dir->m, dir->id++, info);
        if (rc == 0)
            return 1;
        if (rc != ALOFT_E_NOTFOUND)
            return rc;
    }
}

struct walk {
    struct aloft_lfs *fs;
    aloft_lfs_walk_cb cb;
    void *ctx;
    uint8_t *seen; /* head blocks of the directories visited, against cycles */
    char path[PATH_LEN];
};

static int walk_dir(struct walk *wk, const uint32_t pair[2], size_t plen)
{
    struct aloft_lfs *fs = wk->fs;
    for (int i = 0; i < 2; i++) {
        if (wk->seen[pair[i] / 8] & (1u << pair[i] % 8))
            return fail(fs, ALOFT_E_CORRUPT, "directory \"%s/\" is reached twice (a cycle)", wk->path);
        wk->seen[pair[i] / 8] |= (uint8_t)(1u << pair[i] % 8);
    }
    struct aloft_lfs_dir d;
    struct aloft_lfs_info info;
    int rc = dir_open_pair(fs, pair, &d);
    while (rc == 0 && (rc = aloft_lfs_dir_read(fs, &d, &info)) == 1) {
        size_t nlen = strlen(info.name);
        if (plen + 1 + nlen + 1 > sizeof wk->path)
            return fail(fs, ALOFT_E_NOSPC, "a path is longer than %d bytes", PATH_LEN - 1);
        wk->path[plen] = '/';
        memcpy(wk->path + plen + 1, info.name, nlen + 1);
        rc = wk->cb(wk->ctx, wk->path, &info);
        if (rc == 0 && info.type == ALOFT_LFS_DIR)
            rc = walk_dir(wk, info.loc, plen + 1 + nlen);
        wk->path[plen] = 0;
    }
    return rc;
}

int aloft_lfs_walk(struct aloft_lfs *fs, aloft_lfs_walk_cb cb, void *ctx)
{
    struct walk *wk = calloc(1, sizeof *wk);
    uint8_t *seen = calloc(fs->block_count / 8 + 1, 1);
    int rc = ALOFT_E_NOSPC;
    fs->why[0] = 0;
    if (wk && seen) {
        *wk = (struct walk){.fs = fs, .cb = cb, .ctx = ctx, .seen = seen};
        rc = walk_dir(wk, fs->root, 0);
    }
    free(seen);
    free(wk);
    return rc;
}

static void set_bit(void *map, uint32_t b) { ((uint8_t *)map)[b / 8] |= (uint8_t)(1u << b % 8); }

int aloft_lfs_used_blocks(struct aloft_lfs *fs)
{
    uint8_t *map = calloc(fs->block_count / 8 + 1, 1);
    if (!map)
        return ALOFT_E_NOSPC;
    uint32_t tail[2] = {0, 1};
    int rc = 0;
    fs->why[0] = 0;
    for (uint32_t hops = 0; !rc && !pair_isnull(tail); hops++) {
        struct aloft_lfs_mdir m;
        uint32_t best;
        if (hops > fs->block_count / 2) {
            rc = fail(fs, ALOFT_E_CORRUPT, "the list of metadata pairs loops");
            break;
        }
        if ((rc = fetch(fs, &m, tail, NULL, &best)))
            break;
        set_bit(map, m.pair[0]);
        set_bit(map, m.pair[1]);
        for (uint32_t id = 0; !rc && id < m.count; id++) {
            uint32_t tag;
            uint8_t s[8];
            if (dir_get_buf(fs, &m, TAG(0x700, 0x3ff, 0), TAG(T_STRUCT, id, 8), &tag, s, 8))
                continue;
            if (tag_type3(tag) == T_CTZSTRUCT)
                rc = ctz_traverse(fs, le32(s), le32(s + 4), set_bit, map);
        }
        tail[0] = m.tail[0];
        tail[1] = m.tail[1];
    }
    int used = 0;
    for (uint32_t b = 0; !rc && b < fs->block_count; b++)
        used += (map[b / 8] >> (b % 8)) & 1;
    free(map);
    return rc ? rc : used;
}

/* ---- mkfs: littlefs's own write path, replayed on the image ----
 *
 * mkfs does what a program using littlefs v2.11 does: lfs_format, lfs_mount
 * (the allocator starts at the seed, a CRC of the superblock commit, modulo
 * the block count), then for every entry, sorted, lfs_mkdir or lfs_file_open
 * + one lfs_file_write + lfs_file_close. Each commit is appended when the
 * pair's block has room, else the pair is compacted (and split when over half
 * a block), exactly as littlefs decides; blocks come from littlefs's lookahead
 * allocator. The flash is modelled by the image itself: erase is 0xFF, a
 * program copies bytes. */

enum { F_INLINE = 1, F_WRITING = 2, F_DIRTY = 4 };

/* littlefs's mlist entry: an open file (or directory) whose pair a commit may move */
struct tracked {
    struct aloft_lfs_mdir m;
    uint16_t id;
};

struct wfile {
    struct tracked t;
    unsigned flags;
    uint32_t head, size; /* the CTZ struct */
    uint32_t block, off, pos;
    uint8_t cache[ALOFT_LFS_ESP_CACHE_SIZE]; /* inline data lives in the file's cache until the commit */
};

struct mattr {
    uint32_t tag;
    const void *buf;
};

struct wr {
    struct aloft_lfs fs; /* fs.img aliases img */
    uint8_t *img;
    uint32_t inline_max, name_max, file_max, attr_max;
    struct {
        uint32_t start, size, next, ckpoint;
        uint8_t map[ALOFT_LFS_ESP_LOOKAHEAD_SIZE];
    } la;
    struct aloft_lfs_gstate gstate, gdelta; /* gdisk is fs.gdisk */
    struct tracked *mlist[2];
    int nmlist;
    struct wfile *file;   /* the open file */
    struct mattr *tags;   /* scratch for compaction: a block's log plus the new attributes */
};

static uint8_t *bptr(struct wr *w, uint32_t b) { return w->img + (size_t)b * w->fs.block_size; }

static void erase(struct wr *w, uint32_t b) { memset(bptr(w, b), 0xff, w->fs.block_size); }

/* --- the lookahead allocator --- */

static void la_ckpoint(struct wr *w) { w->la.ckpoint = w->fs.block_count; }

static void la_mark(void *ctx, uint32_t block)
{
    struct wr *w = ctx;
    uint32_t off = (block - w->la.start + w->fs.block_count) % w->fs.block_count;
    if (off < w->la.size)
        w->la.map[off / 8] |= (uint8_t)(1u << off % 8);
}

/* littlefs's fs_traverse: every block in use, including the open file's. */
static int la_scan(struct wr *w)
{
    struct aloft_lfs *fs = &w->fs;
    w->la.start = (w->la.start + w->la.next) % fs->block_count;
    w->la.next = 0;
    w->la.size = min32(8 * ALOFT_LFS_ESP_LOOKAHEAD_SIZE, w->la.ckpoint);
    memset(w->la.map, 0, sizeof w->la.map);
    uint32_t tail[2] = {0, 1};
    while (!pair_isnull(tail)) {
        struct aloft_lfs_mdir m;
        uint32_t best;
        la_mark(w, tail[0]);
        la_mark(w, tail[1]);
        int rc = fetch(fs, &m, tail, NULL, &best);
        if (rc)
            return rc;
        for (uint32_t id = 0; id < m.count; id++) {
            uint32_t tag;
            uint8_t s[8];
            if (dir_get_buf(fs, &m, TAG(0x700, 0x3ff, 0), TAG(T_STRUCT, id, 8), &tag, s, 8))
                continue;
            if (tag_type3(tag) == T_CTZSTRUCT && (rc = ctz_traverse(fs, le32(s), le32(s + 4), la_mark, w)))
                return rc;
            if (tag_type3(tag) == T_DIRSTRUCT) {
                la_mark(w, le32(s));
                la_mark(w, le32(s + 4));
            }
        }
        tail[0] = m.tail[0];
        tail[1] = m.tail[1];
    }
    struct wfile *f = w->file;
    int rc = 0;
    if (f && (f->flags & F_DIRTY) && !(f->flags & F_INLINE))
        rc = ctz_traverse(fs, f->head, f->size, la_mark, w);
    if (!rc && f && (f->flags & F_WRITING) && !(f->flags & F_INLINE))
        rc = ctz_traverse(fs, f->block, f->pos, la_mark, w);
    return rc;
}

/* littlefs's lfs_alloc: the next free block of the lookahead window, eagerly
 * stepping past the ones after it in use; a new window starts where this one
 * ended and stops short of the blocks handed out since the last checkpoint. */
static int w_alloc(struct wr *w, uint32_t *block)
{
    for (;;) {
        while (w->la.next < w->la.size) {
            if (!(w->la.map[w->la.next / 8] & (1u << w->la.next % 8))) {
                *block = (w->la.start + w->la.next) % w->fs.block_count;
                for (;;) {
                    w->la.next++;
                    w->la.ckpoint--;
                    if (w->la.next >= w->la.size || !(w->la.map[w->la.next / 8] & (1u << w->la.next % 8)))
                        return 0;
                }
            }
            w->la.next++;
            w->la.ckpoint--;
        }
        if (w->la.ckpoint == 0)
            return ALOFT_E_NOSPC;
        int rc = la_scan(w);
        if (rc)
            return rc;
    }
}

/* --- commits --- */

struct commit {
    uint32_t block, off, ptag, crc, begin, end;
};

static void commit_prog(struct wr *w, struct commit *c, const void *p, uint32_t n)
{
    uint8_t *at = bptr(w, c->block) + c->off;
    memcpy(at, p, n);
    c->crc = aloft_crc32(c->crc, at, n);
    c->off += n;
}

static int commit_attr(struct wr *w, struct commit *c, uint32_t tag, const void *buf)
{
    uint32_t dsize = tag_dsize(tag);
    if (c->off + dsize > c->end)
        return ALOFT_E_NOSPC;
    uint8_t t[4];
    put_be32(t, (tag & 0x7fffffffu) ^ c->ptag);
    commit_prog(w, c, t, 4);
    if (dsize > 4)
        commit_prog(w, c, buf, dsize - 4);
    c->ptag = tag & 0x7fffffffu;
    return 0;
}

/* Close a commit: pad to the program size with CCRC tags (a tag's size
 * reaches at most 0x3fe bytes), in 2.1 preceded by an FCRC: the CRC of the
 * next program unit, which must read as erased for the commit after this one
 * to be trusted. The CCRC's low type bit (and the next valid bit) is the
 * inverse of the top bit of the byte that follows, so the next commit always
 * changes it. */
static int commit_crc(struct wr *w, struct commit *c)
{
    uint32_t bs = w->fs.block_size, prog = w->fs.prog_size;
    uint32_t end = (min32(c->off + 20, bs) + prog - 1) / prog * prog;
    while (c->off < end) {
        uint32_t noff = min32(end - (c->off + 4), 0x3fe) + (c->off + 4);
        if (noff < end)
            noff = min32(noff, end - 20);
        uint8_t eperturb = 0xff;
        if (noff >= end && noff <= bs - prog) {
            eperturb = bptr(w, c->block)[noff];
            if (!w->fs.v20) {
                uint8_t fcrc[8];
                put_le32(fcrc, prog);
                put_le32(fcrc + 4, aloft_crc32(0xffffffffu, bptr(w, c->block) + noff, prog));
                int rc = commit_attr(w, c, TAG(T_FCRC, 0x3ff, 8), fcrc);
                if (rc)
                    return rc;
            }
        }
        uint32_t ntag = TAG(T_CCRC + ((uint8_t)~eperturb >> 7), 0x3ff, noff - (c->off + 4));
        uint8_t *at = bptr(w, c->block) + c->off;
        put_be32(at, ntag ^ c->ptag);
        c->crc = aloft_crc32(c->crc, at, 4);
        put_le32(at + 4, c->crc);
        c->off = noff;
        c->ptag = ntag ^ ((0x80u & ~(uint32_t)eperturb) << 24);
        c->crc = 0xffffffffu;
    }
    return 0;
}

/* An append that ran out of room: littlefs drops its program cache, so of this
 * commit only the whole cache-size chunks from its start reached the flash. */
static void commit_drop(struct wr *w, const struct commit *c)
{
    uint32_t kept = (c->off - c->begin) / ALOFT_LFS_ESP_CACHE_SIZE * ALOFT_LFS_ESP_CACHE_SIZE;
    memset(bptr(w, c->block) + c->begin + kept, 0xff, c->off - c->begin - kept);
}

static bool gstate_iszero(const struct aloft_lfs_gstate *g) { return !g->tag && !g->pair[0] && !g->pair[1]; }

/* What this commit changes in the global state (orphan counts stay in RAM). */
static struct aloft_lfs_gstate gstate_delta(const struct wr *w)
{
    struct aloft_lfs_gstate d = {w->gstate.tag ^ w->fs.gdisk.tag ^ w->gdelta.tag,
                                 {w->gstate.pair[0] ^ w->fs.gdisk.pair[0] ^ w->gdelta.pair[0],
                                  w->gstate.pair[1] ^ w->fs.gdisk.pair[1] ^ w->gdelta.pair[1]}};
    d.tag &= ~TAG(0, 0, 0x3ff);
    return d;
}

static int commit_gstate(struct wr *w, struct commit *c, struct aloft_lfs_gstate delta)
{
    uint8_t d[12];
    put_le32(d, delta.tag);
    put_le32(d + 4, delta.pair[0]);
    put_le32(d + 8, delta.pair[1]);
    return commit_attr(w, c, TAG(T_MOVESTATE, 0x3ff, 12), d);
}

/* The tags a compaction keeps: source's log then attrs, each only if nothing
 * later supersedes it (same id and type, or a delete of its id), its id moved
 * by later creates and deletes, and within [begin, end). Only names, structs
 * and user attributes survive: tails, CRCs and global state are rewritten.
 * cb gets each with its id shifted by diff. */
static int compact_tags(struct wr *w, const struct aloft_lfs_mdir *src, const struct mattr *attrs, int n,
                        uint32_t begin, uint32_t end, int diff,
                        int (*cb)(struct wr *, void *, uint32_t, const void *), void *ctx)
{
    const uint8_t *b = bptr(w, src->pair[0]);
    size_t k = 0;
    for (uint32_t off = 0, ptag = 0xffffffffu; off + tag_dsize(ptag) < src->off;) {
        off += tag_dsize(ptag);
        ptag = (be32(b + off) ^ ptag) & 0x7fffffffu;
        w->tags[k++] = (struct mattr){ptag, b + off + 4};
    }
    for (int i = 0; i < n; i++)
        w->tags[k++] = attrs[i];
    for (size_t i = 0; i < k; i++) {
        uint32_t tag = w->tags[i].tag;
        bool gone = false;
        if (tag & TAG(0x400, 0, 0))
            continue;
        for (size_t j = i + 1; j < k && !gone; j++) {
            uint32_t t = w->tags[j].tag;
            uint32_t mask = (t & TAG(0x100, 0, 0)) ? TAG(0x7ff, 0x3ff, 0) : TAG(0x700, 0x3ff, 0);
            if ((mask & t) == (mask & tag) || tag_isdelete(tag) ||
                (TAG(0x7ff, 0x3ff, 0) & t) == (TAG(T_DELETE, 0, 0) | (TAG(0, 0x3ff, 0) & tag)))
                gone = true;
            else if (tag_type1(t) == T_SPLICE && tag_id(t) <= tag_id(tag))
                tag += id_delta(tag_splice(t));
        }
        if (gone || tag_id(tag) < begin || tag_id(tag) >= end)
            continue;
        int rc = cb(w, ctx, tag + id_delta(diff), w->tags[i].buf);
        if (rc)
            return rc;
    }
    return 0;
}

static int cb_size(struct wr *w, void *ctx, uint32_t tag, const void *buf)
{
    (void)w;
    (void)buf;
    *(uint32_t *)ctx += tag_dsize(tag);
    return 0;
}

static int cb_commit(struct wr *w, void *ctx, uint32_t tag, const void *buf) { return commit_attr(w, ctx, tag, buf); }

/* Write [begin, end) of source plus attrs, compacted, into dir's other block
 * with the next revision, then make it the current one.
 *
 * littlefs also relocates a pair whose revision reaches a multiple of
 * block_cycles+1 (wear levelling). mkfs compacts a pair only when its block
 * fills, a few dozen times at most, so that path is not modelled. */
static int compact(struct wr *w, struct aloft_lfs_mdir *dir, const struct mattr *attrs, int n,
                   const struct aloft_lfs_mdir *source, uint32_t begin, uint32_t end)
{
    struct commit c = {dir->pair[1], 0, 0xffffffffu, 0xffffffffu, 0, w->fs.block_size - 8};
    uint8_t buf[8];
    dir->rev += 1;
    erase(w, dir->pair[1]);
    put_le32(buf, dir->rev);
    commit_prog(w, &c, buf, 4);
    int rc = compact_tags(w, source, attrs, n, begin, end, -(int)begin, cb_commit, &c);
    if (!rc && !pair_isnull(dir->tail)) {
        put_le32(buf, dir->tail[0]);
        put_le32(buf + 4, dir->tail[1]);
        rc = commit_attr(w, &c, TAG(T_TAIL + dir->split, 0x3ff, 8), buf);
    }
    /* the pair's own share of the global state moves over too */
    struct aloft_lfs_gstate delta = gstate_delta(w);
    getgstate(&w->fs, dir, &delta);
    if (!rc && !gstate_iszero(&delta))
        rc = commit_gstate(w, &c, delta);
    if (!rc)
        rc = commit_crc(w, &c);
    if (rc)
        return rc;
    uint32_t t = dir->pair[0];
    dir->pair[0] = dir->pair[1];
    dir->pair[1] = t;
    dir->count = (uint16_t)(end - begin);
    dir->off = c.off;
    dir->etag = c.ptag;
    w->gdelta = (struct aloft_lfs_gstate){0};
    w->fs.gdisk = w->gstate;
    return 0;
}

/* littlefs's dir_alloc: two fresh blocks, the revision continuing what the
 * block held, rounded up to the block_cycles modulus. Nothing is written yet. */
static int dir_alloc(struct wr *w, struct aloft_lfs_mdir *dir)
{
    memset(dir, 0, sizeof *dir);
    for (int i = 0; i < 2; i++) {
        int rc = w_alloc(w, &dir->pair[(i + 1) % 2]);
        if (rc)
            return rc;
    }
    uint32_t mod = (ALOFT_LFS_ESP_BLOCK_CYCLES + 1) | 1, rev = le32(bptr(w, dir->pair[0])) + mod - 1;
    dir->rev = rev - rev % mod;
    dir->off = 4;
    dir->etag = 0xffffffffu;
    dir->tail[0] = dir->tail[1] = NULL_BLOCK;
    return 0;
}

static int dir_split(struct wr *w, struct aloft_lfs_mdir *dir, const struct mattr *attrs, int n,
                     const struct aloft_lfs_mdir *source, uint32_t split, uint32_t end)
{
    struct aloft_lfs_mdir tail;
    int rc = dir_alloc(w, &tail);
    if (rc)
        return rc;
    tail.split = dir->split;
    tail.tail[0] = dir->tail[0];
    tail.tail[1] = dir->tail[1];
    rc = compact(w, &tail, attrs, n, source, split, end);
    if (rc)
        return rc;
    dir->tail[0] = tail.pair[0];
    dir->tail[1] = tail.pair[1];
    dir->split = true;
    if (pair_cmp(dir->pair, w->fs.root) == 0 && split == 0) {
        w->fs.root[0] = tail.pair[0];
        w->fs.root[1] = tail.pair[1];
    }
    return 0;
}

/* Compact, first moving the upper entries into new pairs (halving) until
 * what stays fits half a block. */
static int splitting_compact(struct wr *w, struct aloft_lfs_mdir *dir, const struct mattr *attrs, int n,
                             const struct aloft_lfs_mdir *source, uint32_t begin, uint32_t end)
{
    uint32_t bs = w->fs.block_size, prog = w->fs.prog_size;
    uint32_t limit = min32(bs - 40, (bs / 2 + prog - 1) / prog * prog);
    for (;;) {
        uint32_t split = begin;
        while (end - split > 1) {
            uint32_t size = 0;
            compact_tags(w, source, attrs, n, split, end, -(int)split, cb_size, &size);
            if (end - split < 0xff && size <= limit)
                break;
            split = split + (end - split) / 2;
        }
        if (split == begin)
            break;
        int rc = dir_split(w, dir, attrs, n, source, split, end);
        if (rc && rc != ALOFT_E_NOSPC)
            return rc;
        if (rc)
            break; /* no block for a split: compact in place, as littlefs does */
        end = split;
    }
    return compact(w, dir, attrs, n, source, begin, end);
}

/* Bring the tracked (open) entries up to date after a commit to caller's pair. */
static int fix_mlist(struct wr *w, const uint32_t oldpair[2], const struct aloft_lfs_mdir *dir,
                     const struct aloft_lfs_mdir *caller, const struct mattr *attrs, int n)
{
    for (int i = 0; i < w->nmlist; i++) {
        struct tracked *d = w->mlist[i];
        if (pair_cmp(d->m.pair, oldpair) != 0)
            continue;
        d->m = *dir;
        if (&d->m != caller)
            for (int a = 0; a < n; a++)
                if (tag_type3(attrs[a].tag) == T_CREATE && d->id >= tag_id(attrs[a].tag))
                    d->id++;
        while (d->id >= d->m.count && d->m.split) {
            uint32_t best;
            if (pair_cmp(d->m.tail, w->fs.root) != 0)
                d->id = (uint16_t)(d->id - d->m.count);
            int rc = fetch(&w->fs, &d->m, d->m.tail, NULL, &best);
            if (rc)
                return rc;
        }
    }
    return 0;
}

/* littlefs's dir_commit for mkfs's attributes (creates, names, structs,
 * tails): append to the pair if littlefs would, else compact. */
static int w_commit(struct wr *w, struct aloft_lfs_mdir *caller, const struct mattr *attrs, int n)
{
    uint32_t oldpair[2] = {caller->pair[0], caller->pair[1]};
    struct aloft_lfs_mdir ldir = *caller, *dir = &ldir;
    int rc;
    for (int i = 0; i < n; i++) {
        if (tag_type3(attrs[i].tag) == T_CREATE)
            dir->count++;
        else if (tag_type1(attrs[i].tag) == T_TAIL) {
            dir->tail[0] = le32(attrs[i].buf);
            dir->tail[1] = le32((const uint8_t *)attrs[i].buf + 4);
            dir->split = tag_chunk(attrs[i].tag) & 1;
        }
    }
    if (dir->erased && dir->count < 0xff) {
        struct commit c = {dir->pair[0], dir->off, dir->etag, 0xffffffffu, dir->off, w->fs.block_size - 8};
        rc = 0;
        for (int i = 0; i < n && !rc; i++)
            rc = commit_attr(w, &c, attrs[i].tag, attrs[i].buf);
        struct aloft_lfs_gstate delta = gstate_delta(w);
        if (!rc && !gstate_iszero(&delta)) {
            getgstate(&w->fs, dir, &delta);
            rc = commit_gstate(w, &c, delta);
        }
        if (!rc)
            rc = commit_crc(w, &c);
        if (rc && rc != ALOFT_E_NOSPC)
            return rc;
        if (rc) {
            commit_drop(w, &c);
            rc = splitting_compact(w, dir, attrs, n, dir, 0, dir->count);
        } else {
            dir->off = c.off;
            dir->etag = c.ptag;
            w->fs.gdisk = w->gstate;
            w->gdelta = (struct aloft_lfs_gstate){0};
        }
    } else {
        rc = splitting_compact(w, dir, attrs, n, dir, 0, dir->count);
    }
    if (!rc)
        rc = fix_mlist(w, oldpair, dir, caller, attrs, n);
    if (!rc && pair_cmp(caller->pair, oldpair) == 0)
        *caller = ldir;
    return rc;
}

static void preporphans(struct wr *w, int n)
{
    w->gstate.tag += (uint32_t)n;
    w->gstate.tag = (w->gstate.tag & ~0x80000000u) | (uint32_t)(tag_size(w->gstate.tag) != 0) << 31;
}

/* --- littlefs's format, mount, mkdir and file write --- */

static int w_format(struct wr *w, uint32_t version)
{
    struct aloft_lfs_mdir root;
    uint8_t sb[24];
    w->la.start = 0;
    w->la.size = min32(8 * ALOFT_LFS_ESP_LOOKAHEAD_SIZE, w->fs.block_count);
    w->la.next = 0;
    la_ckpoint(w);
    int rc = dir_alloc(w, &root);
    if (rc)
        return rc;
    put_le32(sb, version);
    put_le32(sb + 4, w->fs.block_size);
    put_le32(sb + 8, w->fs.block_count);
    put_le32(sb + 12, w->name_max);
    put_le32(sb + 16, w->file_max);
    put_le32(sb + 20, w->attr_max);
    struct mattr a[] = {{TAG(T_CREATE, 0, 0), NULL}, {TAG(T_SUPERBLOCK, 0, 8), "littlefs"}, {TAG(T_INLINESTRUCT, 0, 24), sb}};
    rc = w_commit(w, &root, a, 3);
    if (rc)
        return rc;
    /* littlefs compacts once more so that no older littlefs version left on
     * the blocks can be mounted instead */
    root.erased = false;
    return w_commit(w, &root, NULL, 0);
}

static int w_mount(struct wr *w)
{
    int rc = mount_bs(&w->fs, w->fs.block_size);
    if (rc)
        return rc;
    w->gstate = w->fs.gdisk;
    w->gdelta = (struct aloft_lfs_gstate){0};
    w->la.start = w->fs.seed % w->fs.block_count;
    w->la.size = 0;
    w->la.next = 0;
    la_ckpoint(w);
    return 0;
}

static void w_track(struct wr *w, struct tracked *t) { w->mlist[w->nmlist++] = t; }

/* Where littlefs would create path: m and *id. */
static int w_find_new(struct wr *w, const char *path, struct aloft_lfs_mdir *m, uint16_t *id)
{
    uint32_t tag;
    bool last;
    int rc = find(&w->fs, path, m, &tag, id, &last);
    if (rc == ALOFT_E_NOTFOUND && last)
        return 0;
    return rc ? rc : fail(&w->fs, ALOFT_E_INVAL, "%s exists twice", path);
}

static int w_mkdir(struct wr *w, const char *path, const char *name)
{
    struct tracked cwd = {0};
    struct aloft_lfs_mdir dir, pred;
    uint8_t pt[8], dp[8];
    uint32_t best;
    int rc = w_find_new(w, path, &cwd.m, &cwd.id);
    if (rc)
        return rc;
    uint16_t id = cwd.id;
    la_ckpoint(w);
    if ((rc = dir_alloc(w, &dir)))
        return rc;
    pred = cwd.m;
    while (pred.split)
        if ((rc = fetch(&w->fs, &pred, pred.tail, NULL, &best)))
            return rc;
    /* the new pair goes on the metadata list right after its parent's last pair */
    put_le32(pt, pred.tail[0]);
    put_le32(pt + 4, pred.tail[1]);
    struct mattr tail = {TAG(T_SOFTTAIL, 0x3ff, 8), pt};
    if ((rc = w_commit(w, &dir, &tail, 1)))
        return rc;
    put_le32(dp, dir.pair[0]);
    put_le32(dp + 4, dir.pair[1]);
    if (cwd.m.split) {
        /* linking from a pair other than the parent's own: orphaned until the
         * parent's commit below, flagged in the global state meanwhile */
        preporphans(w, +1);
        cwd.id = 0;
        w_track(w, &cwd);
        struct mattr link = {TAG(T_SOFTTAIL, 0x3ff, 8), dp};
        rc = w_commit(w, &pred, &link, 1);
        w->nmlist--;
        if (rc)
            return rc;
        preporphans(w, -1);
    }
    struct mattr a[] = {{TAG(T_CREATE, id, 0), NULL},
                        {TAG(T_DIR, id, strlen(name)), name},
                        {TAG(T_DIRSTRUCT, id, 8), dp},
                        {TAG(T_SOFTTAIL, 0x3ff, 8), dp}};
    return w_commit(w, &cwd.m, a, cwd.m.split ? 3 : 4);
}

/* littlefs's ctz_extend at a block boundary: a fresh block for index i+1,
 * starting with its ctz(i+1)+1 back pointers. */
static int ctz_extend(struct wr *w, uint32_t head, uint32_t size, uint32_t *block, uint32_t *off)
{
    uint32_t nb, last = size - 1;
    int rc = w_alloc(w, &nb);
    if (rc)
        return rc;
    erase(w, nb);
    uint32_t index = ctz_index(w->fs.block_size, &last) + 1, skips = ctz32(index) + 1;
    for (uint32_t i = 0; i < skips; i++) {
        put_le32(bptr(w, nb) + 4 * i, head);
        if (i != skips - 1)
            head = le32(bptr(w, head) + 4 * i);
    }
    *block = nb;
    *off = 4 * skips;
    return 0;
}

/* littlefs's file_write of the whole contents in one call on a new file: up
 * to inline_max bytes stay in the file's cache (inline), more go to a CTZ
 * skip-list of fresh blocks. */
static int file_write(struct wr *w, struct wfile *f, const uint8_t *data, uint32_t n)
{
    uint32_t bs = w->fs.block_size;
    int rc;
    if (n > w->inline_max) {
        /* "outline": nothing written yet, so nothing to copy */
        la_ckpoint(w);
        if ((rc = w_alloc(w, &f->block)))
            return rc;
        erase(w, f->block);
        f->off = 0;
        f->flags = (f->flags | F_WRITING) & ~(unsigned)F_INLINE;
    }
    while (n > 0) {
        if (!(f->flags & F_WRITING) || f->off == bs) {
            if (!(f->flags & F_INLINE)) {
                la_ckpoint(w);
                if ((rc = ctz_extend(w, f->block, f->pos, &f->block, &f->off)))
                    return rc;
            } else {
                f->block = INLINE_BLOCK;
                f->off = f->pos;
            }
            f->flags |= F_WRITING;
        }
        uint32_t diff = min32(n, bs - f->off);
        memcpy((f->flags & F_INLINE) ? f->cache + f->off : bptr(w, f->block) + f->off, data, diff);
        f->pos += diff;
        f->off += diff;
        data += diff;
        n -= diff;
        la_ckpoint(w);
    }
    return 0;
}

static int file_sync(struct wr *w, struct wfile *f)
{
    if (f->flags & F_WRITING) {
        f->head = f->block;
        f->size = f->pos;
        f->flags = (f->flags & ~(unsigned)F_WRITING) | F_DIRTY;
    }
    if (!(f->flags & F_DIRTY))
        return 0; /* an empty file keeps the empty inline struct of its create */
    uint8_t ctz[8];
    struct mattr a = {TAG(T_INLINESTRUCT, f->t.id, f->size), f->cache};
    if (!(f->flags & F_INLINE)) {
        put_le32(ctz, f->head);
        put_le32(ctz + 4, f->size);
        a = (struct mattr){TAG(T_CTZSTRUCT, f->t.id, 8), ctz};
    }
    int rc = w_commit(w, &f->t.m, &a, 1);
    f->flags &= ~(unsigned)F_DIRTY;
    return rc;
}

static int w_file(struct wr *w, const char *path, const char *name, const uint8_t *data, uint32_t n)
{
    struct wfile *f = calloc(1, sizeof *f);
    if (!f)
        return ALOFT_E_NOSPC;
    int rc = w_find_new(w, path, &f->t.m, &f->t.id);
    if (!rc) {
        w_track(w, &f->t);
        w->file = f;
        struct mattr a[] = {{TAG(T_CREATE, f->t.id, 0), NULL},
                            {TAG(T_REG, f->t.id, strlen(name)), name},
                            {TAG(T_INLINESTRUCT, f->t.id, 0), NULL}};
        rc = w_commit(w, &f->t.m, a, 3);
        f->flags = F_INLINE;
        memset(f->cache, 0xff, sizeof f->cache);
        if (!rc)
            rc = file_write(w, f, data, n);
        if (!rc)
            rc = file_sync(w, f);
        w->nmlist--;
        w->file = NULL;
    }
    free(f);
    return rc;
}

/* ---- the host tree ---- */

struct node {
    char *name;
    bool dir;
    uint8_t *data;
    size_t len;
    struct node *kids;
    size_t nkids;
};

static void tree_free(struct node *n)
{
    for (size_t i = 0; i < n->nkids; i++)
        tree_free(&n->kids[i]);
    free(n->kids);
    free(n->data);
    free(n->name);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int mkfs_fail(struct aloft_lfs_mkfs_err *err, int rc, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return rc;
}

/* Load the tree under path, children sorted by name (byte order). */
static int tree_load(const char *path, struct node *n, struct aloft_lfs_mkfs_err *err)
{
    DIR *d = opendir(path);
    if (!d)
        return mkfs_fail(err, ALOFT_E_IO, "cannot read directory %s: %s", path, strerror(errno));
    char **names = NULL;
    size_t count = 0, cap = 0;
    int rc = 0;
    struct dirent *e;
    while (!rc && (errno = 0, e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (count == cap) {
            char **more = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof *names);
            if (!more) {
                rc = mkfs_fail(err, ALOFT_E_NOSPC, "out of memory reading %s", path);
                break;
            }
            names = more;
        }
        if (!(names[count] = strdup(e->d_name)))
            rc = mkfs_fail(err, ALOFT_E_NOSPC, "out of memory reading %s", path);
        else
            count++;
    }
    if (!rc && errno)
        rc = mkfs_fail(err, ALOFT_E_IO, "cannot read directory %s: %s", path, strerror(errno));
    closedir(d);
    if (!rc && count)
        qsort(names, count, sizeof *names, cmp_names);
    if (!rc && count && !(n->kids = calloc(count, sizeof *n->kids)))
        rc = mkfs_fail(err, ALOFT_E_NOSPC, "out of memory reading %s", path);
    if (rc) {
        for (size_t i = 0; i < count; i++)
            free(names[i]);
        free(names);
        return rc;
    }
    for (size_t i = 0; i < count; i++)
        n->kids[n->nkids++].name = names[i];
    free(names);
    for (size_t i = 0; !rc && i < count; i++) {
        struct node *k = &n->kids[i];
        char sub[PATH_MAX];
        struct stat st;
        size_t nlen = strlen(k->name);
        if (nlen > ALOFT_LFS_ESP_NAME_MAX)
            return mkfs_fail(err, ALOFT_E_INVAL,
                             "%s/%s: the name is %zu bytes; esp_littlefs allows at most %d (rename it)", path,
                             k->name, nlen, ALOFT_LFS_ESP_NAME_MAX);
        if ((size_t)snprintf(sub, sizeof sub, "%s/%s", path, k->name) >= sizeof sub)
            return mkfs_fail(err, ALOFT_E_INVAL, "%s/%s: the path is too long", path, k->name);
        if (lstat(sub, &st))
            return mkfs_fail(err, ALOFT_E_IO, "cannot read %s: %s", sub, strerror(errno));
        bool link = S_ISLNK(st.st_mode);
        if (link && stat(sub, &st))
            return mkfs_fail(err, ALOFT_E_IO, "cannot follow the link %s: %s", sub, strerror(errno));
        if (S_ISDIR(st.st_mode) && link) {
            rc = mkfs_fail(err, ALOFT_E_INVAL, "%s is a link to a directory: copy the directory in instead", sub);
        } else if (S_ISDIR(st.st_mode)) {
            k->dir = true;
            rc = tree_load(sub, k, err);
        } else if (!S_ISREG(st.st_mode)) {
            rc = mkfs_fail(err, ALOFT_E_INVAL, "%s is not a regular file or directory", sub);
        } else if (aloft_file_read(sub, &k->data, &k->len)) {
            rc = mkfs_fail(err, ALOFT_E_IO, "cannot read %s: %s", sub, strerror(errno));
        } else if (k->len > 0x7fffffffu) {
            rc = mkfs_fail(err, ALOFT_E_INVAL, "%s is over LittleFS's 2 GiB file size limit", sub);
        }
    }
    return rc;
}

static int w_tree(struct wr *w, const struct node *n, char *path, size_t plen)
{
    for (size_t i = 0; i < n->nkids; i++) {
        const struct node *k = &n->kids[i];
        size_t nlen = strlen(k->name);
        if (plen + 1 + nlen + 1 > PATH_LEN)
            return fail(&w->fs, ALOFT_E_INVAL, "%s/%s: the path is longer than %d bytes", path, k->name,
                        PATH_LEN - 1);
        path[plen] = '/';
        memcpy(path + plen + 1, k->name, nlen + 1);
        int rc = k->dir ? w_mkdir(w, path, k->name) : w_file(w, path, k->name, k->data, (uint32_t)k->len);
        if (!rc && k->dir)
            rc = w_tree(w, k, path, plen + 1 + nlen);
        path[plen] = 0;
        if (rc)
            return rc;
    }
    return 0;
}

/* One attempt: the tree into block_count blocks. */
static int build(const struct node *root, uint32_t block_count, uint32_t block_size, uint32_t version,
                 uint8_t **image, char *why, size_t whylen)
{
    size_t len = (size_t)block_count * block_size;
    struct wr *w = calloc(1, sizeof *w);
    char *path = malloc(PATH_LEN);
    uint8_t *img = malloc(len);
    struct mattr *tags = malloc((block_size / 4 + 8) * sizeof *tags);
    int rc = ALOFT_E_NOSPC;
    if (w && path && img && tags) {
        memset(img, 0xff, len);
        w->img = img;
        w->tags = tags;
        w->fs.img = img;
        w->fs.len = len;
        w->fs.block_size = block_size;
        w->fs.block_count = block_count;
        w->fs.prog_size = ALOFT_LFS_ESP_PROG_SIZE;
        w->fs.v20 = version == ALOFT_LFS_VERSION_2_0;
        w->name_max = ALOFT_LFS_ESP_NAME_MAX;
        w->file_max = 0x7fffffffu;
        w->attr_max = 1022;
        w->inline_max = min32(ALOFT_LFS_ESP_CACHE_SIZE, min32(w->attr_max, block_size / 8));
        path[0] = 0;
        rc = w_format(w, version);
        if (!rc)
            rc = w_mount(w);
        if (!rc)
            rc = w_tree(w, root, path, 0);
        snprintf(why, whylen, "%s", w->fs.why);
    }
    if (rc)
        free(img);
    else
        *image = img;
    free(tags);
    free(path);
    free(w);
    return rc;
}

#define NEED_CAP (256u << 20) /* largest image the NOSPC hint searches */

/* The fewest blocks that hold the tree, when block_count does not: double,
 * then bisect. 0 when even NEED_CAP does not. */
static uint64_t need_blocks(const struct node *root, uint32_t block_count, uint32_t block_size, uint32_t version)
{
    uint64_t lo = block_count, hi = 0;
    char why[200];
    for (uint64_t c = (uint64_t)block_count * 2; c * block_size <= NEED_CAP; c *= 2) {
        uint8_t *img;
        if (build(root, (uint32_t)c, block_size, version, &img, why, sizeof why) == 0) {
            free(img);
            hi = c;
            break;
        }
        lo = c;
    }
    while (hi && hi - lo > 1) {
        uint64_t mid = lo + (hi - lo) / 2;
        uint8_t *img;
        if (build(root, (uint32_t)mid, block_size, version, &img, why, sizeof why) == 0) {
            free(img);
            hi = mid;
        } else {
            lo = mid;
        }
    }
    return hi;
}

int aloft_lfs_mkfs(const char *dir, uint32_t size, uint32_t block_size, uint32_t disk_version, uint8_t **image,
                   size_t *len, struct aloft_lfs_mkfs_err *err)
{
    if (err)
        memset(err, 0, sizeof *err);
    if (disk_version != ALOFT_LFS_VERSION_2_0 && disk_version != ALOFT_LFS_VERSION_2_1)
        return mkfs_fail(err, ALOFT_E_INVAL, "disk version 0x%08x: aloft writes 2.0 and 2.1", disk_version);
    if (block_size < 512 || block_size % ALOFT_LFS_ESP_CACHE_SIZE)
        return mkfs_fail(err, ALOFT_E_INVAL, "block size %u: it must be a multiple of %d", block_size,
                         ALOFT_LFS_ESP_CACHE_SIZE);
    if (size % block_size || size / block_size < 2)
        return mkfs_fail(err, ALOFT_E_INVAL, "size %u: it must be a multiple of the block size %u, at least two blocks",
                         size, block_size);
    struct node root = {0};
    int rc = tree_load(dir, &root, err);
    if (!rc) {
        char why[200];
        rc = build(&root, size / block_size, block_size, disk_version, image, why, sizeof why);
        if (rc == ALOFT_E_NOSPC) {
            uint64_t need = need_blocks(&root, size / block_size, block_size, disk_version) * block_size;
            if (err)
                err->need = need;
            if (need)
                mkfs_fail(err, rc, "%s does not fit %u bytes: it needs %llu (%llu blocks of %u)", dir, size,
                          (unsigned long long)need, (unsigned long long)need / block_size, block_size);
            else
                mkfs_fail(err, rc, "%s does not fit %u bytes, nor %u", dir, size, NEED_CAP);
        } else if (rc) {
            mkfs_fail(err, rc, "%s: %s", dir, why[0] ? why : "internal error");
        } else {
            *len = size;
        }
    }
    tree_free(&root);
    return rc;
}
