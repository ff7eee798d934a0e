/* aloft host: LittleFS v2 images in memory (disk versions 2.0 and 2.1),
 * implemented from littlefs's SPEC.md and checked byte for byte against
 * images the reference wrote (../shared/fixtures/littlefs).
 *
 * The reader mounts any v2 image: littlefs, esp_littlefs, mklittlefs. It never
 * trusts the image: every block number, offset and length is checked and a bad
 * image gives an error (with fs->why saying what is wrong), never a crash.
 *
 * mkfs lays a host directory tree out the way littlefs v2.11 itself does when
 * configured as esp_littlefs mounts it (read/prog 128, cache 512, lookahead
 * 128, name_max 64, block_cycles 512): format, mount, then every entry created
 * in sorted order, directories before their contents. Same tree, same size,
 * same bytes. */
#ifndef ALOFT_HOST_LITTLEFS_H
#define ALOFT_HOST_LITTLEFS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALOFT_LFS_VERSION_2_0 0x00020000u
#define ALOFT_LFS_VERSION_2_1 0x00020001u
#define ALOFT_LFS_NAME_MAX 255 /* longest name any v2 image can hold */

/* esp_littlefs's configuration, the one mkfs writes for. */
#define ALOFT_LFS_ESP_PROG_SIZE 128
#define ALOFT_LFS_ESP_CACHE_SIZE 512
#define ALOFT_LFS_ESP_LOOKAHEAD_SIZE 128
#define ALOFT_LFS_ESP_NAME_MAX 64
#define ALOFT_LFS_ESP_BLOCK_CYCLES 512

enum aloft_lfs_type { ALOFT_LFS_REG = 1, ALOFT_LFS_DIR = 2 };

/* One metadata pair as fetched. Exposed only so that callers can hold a
 * directory cursor; treat the fields as private. */
struct aloft_lfs_mdir {
    uint32_t pair[2];  /* pair[0] holds the newest valid commit */
    uint32_t rev;
    uint32_t off;      /* end of the last valid commit in pair[0] */
    uint32_t etag;     /* its last tag: what the next tag is XORed with */
    uint16_t count;    /* ids in this pair */
    bool erased;       /* writer: littlefs could append after off */
    bool split;        /* the directory continues in tail (hard tail) */
    uint32_t tail[2];
};

/* Global state (a pending move and the orphan flag), XOR of every pair's. */
struct aloft_lfs_gstate {
    uint32_t tag;
    uint32_t pair[2];
};

/* A mounted image. The image stays the caller's and must outlive this. */
struct aloft_lfs {
    const uint8_t *img;
    size_t len;
    uint32_t block_size, block_count;
    uint32_t version; /* superblock disk version: 0x00020001 is 2.1 */
    uint32_t name_max, file_max, attr_max;
    uint32_t root[2];
    struct aloft_lfs_gstate gdisk;
    uint32_t seed;      /* littlefs's allocator seed: CRCs of every commit fetched */
    uint32_t prog_size; /* writer only (0 when reading) */
    bool v20;           /* writer only: writing for disk version 2.0 */
    char why[200];      /* after an error: what exactly is wrong, in words */
};

struct aloft_lfs_info {
    uint8_t type;  /* ALOFT_LFS_REG or ALOFT_LFS_DIR */
    uint32_t size; /* file size in bytes; 0 for directories */
    char name[ALOFT_LFS_NAME_MAX + 1];
    /* where the contents are (private) */
    bool is_inline;
    uint32_t loc[2]; /* inline: image offset of the data; CTZ: head block; directory: its pair */
};

struct aloft_lfs_dir {
    struct aloft_lfs_mdir m;
    uint16_t id;
    uint32_t hops; /* pairs followed, to stop on a tail cycle */
};

/* Mount an image: find the superblock (magic "littlefs") in blocks {0,1},
 * check its version (2.0 or 2.1), block size and count, name/file/attr max,
 * then fetch every metadata pair on the tail list, as littlefs's mount does.
 * block_size 0 reads it from the superblock. Returns 0, ALOFT_E_CORRUPT (bad
 * magic, no commit with a valid CRC in either block of a pair, impossible
 * field), ALOFT_E_TRUNCATED (image shorter than the superblock says) or
 * ALOFT_E_INVAL (block_size below 128); fs->why says which. */
int aloft_lfs_mount(struct aloft_lfs *fs, const uint8_t *img, size_t len, uint32_t block_size);

/* Look up a path ("/assets/js/app.js"; "/" is the root). Returns 0,
 * ALOFT_E_NOTFOUND or ALOFT_E_CORRUPT. */
int aloft_lfs_stat(struct aloft_lfs *fs, const char *path, struct aloft_lfs_info *info);

/* Read up to n bytes of a file from pos. Returns the count (0 at the end),
 * ALOFT_E_INVAL (not a file) or ALOFT_E_CORRUPT. Call in a loop to stream. */
int aloft_lfs_read(struct aloft_lfs *fs, const struct aloft_lfs_info *file, uint32_t pos, void *buf, size_t n);

/* Read a whole file into buf. Returns its size, ALOFT_E_NOTFOUND,
 * ALOFT_E_INVAL (a directory), ALOFT_E_NOSPC (cap too small) or ALOFT_E_CORRUPT. */
int aloft_lfs_read_file(struct aloft_lfs *fs, const char *path, void *buf, size_t cap);

/* Iterate a directory in littlefs's order (no "." / ".."). dir_read returns 1
 * with an entry, 0 at the end, or ALOFT_E_CORRUPT. dir_open also returns
 * ALOFT_E_NOTFOUND or ALOFT_E_INVAL (not a directory). */
int aloft_lfs_dir_open(struct aloft_lfs *fs, const char *path, struct aloft_lfs_dir *dir);
int aloft_lfs_dir_read(struct aloft_lfs *fs, struct aloft_lfs_dir *dir, struct aloft_lfs_info *info);

/* Every entry below the root, depth first in littlefs's order; path is
 * absolute ("/assets/js"). A non-zero return from cb stops the walk and is
 * returned. Also ALOFT_E_CORRUPT (including a directory cycle). */
typedef int (*aloft_lfs_walk_cb)(void *ctx, const char *path, const struct aloft_lfs_info *info);
int aloft_lfs_walk(struct aloft_lfs *fs, aloft_lfs_walk_cb cb, void *ctx);

/* Blocks in use: every metadata pair and every block of every file. Returns
 * the count or ALOFT_E_CORRUPT. */
int aloft_lfs_used_blocks(struct aloft_lfs *fs);

struct aloft_lfs_mkfs_err {
    char msg[600]; /* what went wrong, naming the file or directory */
    uint64_t need; /* ALOFT_E_NOSPC: the smallest image size (bytes) that holds the tree, 0 if over 256 MiB */
};

/* Build a LittleFS image of size bytes from the tree under dir, as
 * esp_littlefs's littlefs would (see the top of this file). disk_version is
 * ALOFT_LFS_VERSION_2_0 or _2_1; block_size a multiple of 512; size a multiple
 * of block_size. Unused space is erased (0xFF). On success *image is malloc'd
 * and *len == size. Returns 0, ALOFT_E_INVAL (bad geometry or version, a name
 * longer than 64 bytes, an entry that is not a file or directory), ALOFT_E_IO
 * (unreadable directory or file) or ALOFT_E_NOSPC (err->need says how much
 * would do). err may be NULL. */
int aloft_lfs_mkfs(const char *dir, uint32_t size, uint32_t block_size, uint32_t disk_version, uint8_t **image,
                   size_t *len, struct aloft_lfs_mkfs_err *err);

#endif
