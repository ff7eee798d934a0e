/* libFuzzer harness: the LittleFS reader (host/littlefs.c).
 *
 * The input is a whole image (a www partition from the network). Mount it
 * (block size from the superblock), walk every entry, stat it, read every
 * file in odd-sized pieces and whole, list every directory, count the used
 * blocks. Must never crash, read outside the image or loop (libFuzzer's
 * -timeout catches the last). Checked: a read never returns more than asked
 * or than the file holds, and reads in pieces cover the file's size.
 *
 * Every commit is CRC-protected, so most mutations of metadata would only
 * reach the CRC check. The first byte of the input says whether to first
 * recompute the CRC of every commit, as the reader finds them, for blocks of
 * 128 << ((byte - 1) % 6) bytes (0: leave the image as it is): mutated tags
 * and fields then reach the parser behind the CRC. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "littlefs.h"

#define PIECE 700 /* not a divisor of any block size */

struct ctx {
    struct aloft_lfs *fs;
    uint8_t *buf;
    size_t cap;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint32_t dsize(uint32_t tag)
{
    return 4 + ((tag & 0x3ff) == 0x3ff ? 0 : (tag & 0x3ff));
}

/* Walk a metadata block's commits as littlefs's fetch does (tags XOR-chained,
 * big-endian; a CCRC tag closes a commit) and store the right CRC in each. */
static void fix_crcs(uint8_t *b, uint32_t bs)
{
    uint32_t off = 0, ptag = 0xffffffffu, crc = aloft_crc32(0xffffffffu, b, 4);
    for (;;) {
        off += dsize(ptag);
        if (off + 4 > bs)
            return;
        uint32_t tag = be32(b + off) ^ ptag;
        if (tag & 0x80000000u || off + dsize(tag) > bs)
            return;
        crc = aloft_crc32(crc, b + off, 4);
        ptag = tag;
        if ((tag & 0x78000000u) >> 20 == 0x500) { /* CCRC */
            if (off + 8 > bs)
                return;
            b[off + 4] = (uint8_t)crc;
            b[off + 5] = (uint8_t)(crc >> 8);
            b[off + 6] = (uint8_t)(crc >> 16);
            b[off + 7] = (uint8_t)(crc >> 24);
            ptag ^= ((tag >> 20) & 1u) << 31;
            crc = 0xffffffffu;
            continue;
        }
        crc = aloft_crc32(crc, b + off + 4, dsize(tag) - 4);
    }
}

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_littlefs: %s\n", what);
    abort();
}

static void read_pieces(struct aloft_lfs *fs, const struct aloft_lfs_info *info, uint8_t *buf)
{
    uint32_t pos = 0;
    for (;;) {
        int rc = aloft_lfs_read(fs, info, pos, buf, PIECE);
        if (rc < 0)
            return;
        if (rc > PIECE)
            fail("read returned more than asked");
        if (rc == 0)
            break;
        if ((uint64_t)pos + (uint32_t)rc > info->size)
            fail("read went past the file's size");
        pos += (uint32_t)rc;
    }
    if (pos != info->size)
        fail("reads ended before the file's size");
}

static int visit(void *vctx, const char *path, const struct aloft_lfs_info *info)
{
    struct ctx *c = vctx;
    struct aloft_lfs_info st;
    if (path[0] != '/' || strlen(info->name) == 0)
        fail("walk gave an empty name or a relative path");
    (void)aloft_lfs_stat(c->fs, path, &st);
    if (info->type == ALOFT_LFS_REG) {
        uint8_t piece[PIECE];
        read_pieces(c->fs, info, piece);
        int rc = aloft_lfs_read_file(c->fs, path, c->buf, c->cap);
        if (rc > (int)c->cap)
            fail("read_file returned more than its buffer");
    } else if (info->type == ALOFT_LFS_DIR) {
        struct aloft_lfs_dir d;
        struct aloft_lfs_info e;
        if (aloft_lfs_dir_open(c->fs, path, &d) == 0)
            while (aloft_lfs_dir_read(c->fs, &d, &e) == 1)
                ;
    } else {
        fail("walk gave an entry that is neither file nor directory");
    }
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    data++;
    size--;
    /* A private copy of exactly size bytes: reads past the image are caught. */
    uint8_t *img = malloc(size ? size : 1);
    if (!img)
        abort();
    memcpy(img, data, size);
    if (mode) {
        uint32_t bs = 128u << ((mode - 1) % 6);
        for (size_t at = 0; at + bs <= size; at += bs)
            fix_crcs(img + at, bs);
    }
    struct aloft_lfs fs;
    if (aloft_lfs_mount(&fs, img, size, 0) == 0) {
        if ((uint64_t)fs.block_size * fs.block_count > size)
            fail("mounted an image larger than the input");
        struct ctx c = {&fs, malloc(size + 1), size + 1};
        if (!c.buf)
            abort();
        (void)aloft_lfs_walk(&fs, visit, &c);
        struct aloft_lfs_info root;
        if (aloft_lfs_stat(&fs, "/", &root) == 0 && root.type != ALOFT_LFS_DIR)
            fail("the root is not a directory");
        struct aloft_lfs_dir d;
        struct aloft_lfs_info e;
        if (aloft_lfs_dir_open(&fs, "/", &d) == 0)
            while (aloft_lfs_dir_read(&fs, &d, &e) == 1)
                ;
        int used = aloft_lfs_used_blocks(&fs);
        if (used > (int)fs.block_count)
            fail("more blocks used than the image has");
        free(c.buf);
    }
    if (memchr(fs.why, 0, sizeof fs.why) == NULL)
        fail("fs.why is not a string");
    free(img);
    return 0;
}
