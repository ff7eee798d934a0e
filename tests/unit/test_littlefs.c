/* LittleFS: the reference images read exactly, mkfs reproduces them byte for
 * byte, and the details SPEC.md defines, checked with an independent parser. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "file.h"
#include "littlefs.h"

#define BS 4096
#define MIB (1u << 20)

static char tmp[256];

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

static void put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (24 - 8 * i));
}

#define TAG(type, id, size) (((uint32_t)(type) << 20) | ((uint32_t)(id) << 10) | (uint32_t)(size))

/* ---- helpers: trees on disk, listings in manifest.txt's format ---- */

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void write_fill(const char *path, size_t len, uint32_t seed)
{
    uint8_t *d = malloc(len + 1);
    aloft_test_fill(d, len, seed);
    write_file(path, d, len);
    free(d);
}

/* A fresh directory under the test's tmpdir. */
static const char *new_dir(const char *name)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmp, name);
    assert_int_equal(mkdir(path, 0755), 0);
    return path;
}

/* The fixture tree, plus the empty directory the reference images hold
 * (empty directories do not survive being copied into the fixtures). */
static const char *fixture_tree(void)
{
    static char path[512];
    if (!path[0]) {
        char cmd[2048];
        snprintf(path, sizeof path, "%s/tree", tmp);
        snprintf(cmd, sizeof cmd, "cp -R '%s/littlefs/tree' '%s' && chmod -R u+w '%s' && mkdir '%s/empty-dir'",
                 ALOFT_FIXTURES, path, path, path);
        assert_int_equal(system(cmd), 0);
    }
    return path;
}

static bool erased(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != 0xff)
            return false;
    return true;
}

struct listing {
    struct aloft_lfs *fs;
    char *text;
    size_t len, cap;
    char **lines;
    size_t n;
};

static int list_cb(void *ctx, const char *path, const struct aloft_lfs_info *info)
{
    struct listing *l = ctx;
    char line[1200];
    if (info->type == ALOFT_LFS_DIR) {
        snprintf(line, sizeof line, "d %10s %-64s %s/", "-", "-", path);
    } else {
        uint8_t *buf = malloc(info->size + 1);
        char hex[65];
        assert_int_equal(aloft_lfs_read(l->fs, info, 0, buf, info->size), (int)info->size);
        aloft_sha256_hex(buf, info->size, hex);
        snprintf(line, sizeof line, "f %10u %s %s", info->size, hex, path);
        free(buf);
    }
    l->lines = realloc(l->lines, (l->n + 1) * sizeof *l->lines);
    l->lines[l->n++] = strdup(line);
    return 0;
}

static int by_path(const void *a, const void *b) { return strcmp(*(char *const *)a + 78, *(char *const *)b + 78); }

/* Every entry as manifest.txt lists it, sorted the same way. */
static char *listing(const uint8_t *img, size_t len)
{
    struct aloft_lfs fs;
    assert_int_equal(aloft_lfs_mount(&fs, img, len, 0), 0);
    struct listing l = {.fs = &fs};
    assert_int_equal(aloft_lfs_walk(&fs, list_cb, &l), 0);
    qsort(l.lines, l.n, sizeof *l.lines, by_path);
    size_t total = 1;
    for (size_t i = 0; i < l.n; i++)
        total += strlen(l.lines[i]) + 1;
    char *out = malloc(total), *p = out;
    *p = 0;
    for (size_t i = 0; i < l.n; i++) {
        p += sprintf(p, "%s\n", l.lines[i]);
        free(l.lines[i]);
    }
    free(l.lines);
    return out;
}

static char *manifest(bool without_empty_dir)
{
    size_t len;
    char *m = (char *)aloft_test_fixture("littlefs/manifest.txt", &len);
    char *path = strstr(m, " /empty-dir/\n");
    assert_non_null(path);
    if (without_empty_dir) {
        char *line = path - 77, *next = path + strlen(" /empty-dir/\n");
        memmove(line, next, strlen(next) + 1);
    }
    return m;
}

static uint8_t *mkfs_ok(const char *dir, uint32_t size, uint32_t bs, uint32_t version)
{
    uint8_t *img;
    size_t len;
    struct aloft_lfs_mkfs_err err;
    int rc = aloft_lfs_mkfs(dir, size, bs, version, &img, &len, &err);
    if (rc)
        fprintf(stderr, "mkfs %s: %d %s\n", dir, rc, err.msg);
    assert_int_equal(rc, 0);
    assert_int_equal(len, size);
    return img;
}

/* ---- an independent reading of the commit log (SPEC.md), for the checks ---- */

struct commit {
    uint32_t start, crc_off, end; /* first byte (0: the revision), its CCRC tag, end after padding */
    uint32_t first_tag;           /* offset of its first tag */
    bool fcrc;
};

/* Valid commits of one metadata block; *etag is the tag the next one XORs with. */
static int commits(const uint8_t *b, struct commit *c, int max, uint32_t *etag)
{
    uint32_t off = 4, ptag = 0xffffffff, crc = aloft_crc32(0xffffffff, b, 4), start = 0, first = 4;
    bool fcrc = false;
    int n = 0;
    while (off + 4 <= BS && n < max) {
        uint32_t tag = be32(b + off) ^ ptag, size = tag & 0x3ff, dsize = 4 + (size == 0x3ff ? 0 : size);
        uint32_t type = (tag >> 20) & 0x7ff;
        if ((tag & 0x80000000) || off + dsize > BS)
            break;
        crc = aloft_crc32(crc, b + off, 4);
        if ((type & 0x780) == 0x500) {
            if (le32(b + off + 4) != crc)
                break;
            c[n++] = (struct commit){start, off, off + dsize, first, fcrc};
            ptag = tag ^ ((type & 1) << 31);
            if (etag)
                *etag = ptag;
            start = first = off + dsize;
            fcrc = false;
            crc = 0xffffffff;
            off += dsize;
            continue;
        }
        fcrc |= type == 0x5ff;
        crc = aloft_crc32(crc, b + off + 4, dsize - 4);
        ptag = tag;
        off += dsize;
    }
    return n;
}

/* Tags of a type in the valid commits of a metadata block. */
static int count_tags(const uint8_t *b, uint32_t type)
{
    struct commit c[128];
    int n = commits(b, c, 128, NULL), count = 0;
    uint32_t off = 4, ptag = 0xffffffff;
    while (n > 0 && off < c[n - 1].end) {
        uint32_t tag = be32(b + off) ^ ptag, size = tag & 0x3ff;
        count += ((tag >> 20) & 0x7ff) == type;
        ptag = ((tag >> 20) & 0x780) == 0x500 ? tag ^ ((tag >> 20) & 1) << 31 : tag;
        off += 4 + (size == 0x3ff ? 0 : size);
    }
    return count;
}

/* The block of the pair holding the newer revision. */
static uint8_t *active(uint8_t *img, uint32_t a, uint32_t b)
{
    return (int32_t)(le32(img + a * BS) - le32(img + b * BS)) > 0 ? img + a * BS : img + b * BS;
}

/* Append one commit of the given tags to a metadata block, as littlefs would. */
static void append_commit(uint8_t *b, const uint32_t *tags, const void *const *data, int n)
{
    struct commit c[128];
    uint32_t ptag;
    int k = commits(b, c, 128, &ptag);
    assert_true(k > 0);
    uint32_t off = c[k - 1].end, crc = 0xffffffff;
    for (int i = 0; i < n; i++) {
        uint32_t size = tags[i] & 0x3ff, dsize = 4 + (size == 0x3ff ? 0 : size);
        put_be32(b + off, tags[i] ^ ptag);
        if (dsize > 4)
            memcpy(b + off + 4, data[i], dsize - 4);
        crc = aloft_crc32(crc, b + off, dsize);
        ptag = tags[i];
        off += dsize;
    }
    uint32_t end = (off + 8 + 127) / 128 * 128;
    put_be32(b + off, TAG(0x500, 0x3ff, end - off - 4) ^ ptag);
    crc = aloft_crc32(crc, b + off, 4);
    put_le32(b + off + 4, crc);
}

static int count_cb(void *ctx, const char *path, const struct aloft_lfs_info *info)
{
    (void)path;
    (void)info;
    ++*(int *)ctx;
    return 0;
}

/* ---- the reference images ---- */

static void test_reference_images_read_exactly(void **state)
{
    (void)state;
    static const struct {
        const char *file;
        uint32_t version, name_max;
        bool no_empty_dir;
    } refs[] = {
        {"littlefs/ref-2.1-esp_littlefs.bin", ALOFT_LFS_VERSION_2_1, 64, false},
        {"littlefs/ref-2.0-esp_littlefs.bin", ALOFT_LFS_VERSION_2_0, 64, false},
        {"littlefs/ref-mklittlefs.bin", ALOFT_LFS_VERSION_2_1, 255, true}, /* mklittlefs stores no empty dirs */
    };
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        size_t len;
        uint8_t *img = aloft_test_fixture(refs[i].file, &len);
        struct aloft_lfs fs;
        assert_int_equal(aloft_lfs_mount(&fs, img, len, 0), 0);
        assert_int_equal(fs.block_size, BS);
        assert_int_equal(fs.block_count, 256);
        assert_int_equal(fs.version, refs[i].version);
        assert_int_equal(fs.name_max, refs[i].name_max);
        assert_int_equal(aloft_lfs_mount(&fs, img, len, BS), 0);
        char *got = listing(img, len), *want = manifest(refs[i].no_empty_dir);
        assert_string_equal(got, want);
        free(got);
        free(want);
        free(img);
    }
}

static void test_mkfs_is_byte_identical_to_the_reference(void **state)
{
    (void)state;
    static const struct {
        const char *ref;
        uint32_t version;
    } refs[] = {
        {"littlefs/ref-2.1-esp_littlefs.bin", ALOFT_LFS_VERSION_2_1},
        {"littlefs/ref-2.0-esp_littlefs.bin", ALOFT_LFS_VERSION_2_0},
    };
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        uint8_t *ref = aloft_test_fixture(refs[i].ref, &len);
        uint8_t *ours = mkfs_ok(fixture_tree(), MIB, BS, refs[i].version);
        char *got = listing(ours, MIB), *want = manifest(false);
        assert_string_equal(got, want);
        /* structure first, for a readable failure: superblock, blocks in use */
        assert_memory_equal(ours, ref, 0x80);
        for (uint32_t b = 0; b < 256; b++) {
            bool used_ours = !erased(ours + b * BS, BS), used_ref = !erased(ref + b * BS, BS);
            if (used_ours != used_ref)
                fail_msg("block %u: used by %s only", b, used_ours ? "aloft" : "the reference");
        }
        for (uint32_t b = 0; b < 256; b++)
            if (memcmp(ours + b * BS, ref + b * BS, BS))
                fail_msg("block %u differs from %s", b, refs[i].ref);
        assert_int_equal(len, MIB);
        /* and the same again: deterministic */
        uint8_t *again = mkfs_ok(fixture_tree(), MIB, BS, refs[i].version);
        assert_memory_equal(again, ours, MIB);
        free(again);
        free(got);
        free(want);
        free(ours);
        free(ref);
    }
}

/* ---- the tag XOR chain and commit CRCs ---- */

static void test_tag_xor_chain(void **state)
{
    (void)state;
    uint8_t *img = mkfs_ok(fixture_tree(), MIB, BS, ALOFT_LFS_VERSION_2_1);
    /* the first tag is XORed with 0xffffffff, each next one with the tag before */
    assert_int_equal(be32(img + 4), TAG(0x0ff, 0, 8) ^ 0xffffffff);
    assert_memory_equal(img + 8, "littlefs", 8);
    assert_int_equal(be32(img + 16), TAG(0x201, 0, 24) ^ TAG(0x0ff, 0, 8));
    assert_int_equal(le32(img + 20), ALOFT_LFS_VERSION_2_1);

    /* one flipped tag bit in the last commit of the root: that commit is
     * rejected and the state before it wins (the file is still empty) */
    uint8_t *root = active(img, 0, 1);
    struct commit c[64];
    int n = commits(root, c, 64, NULL);
    assert_true(n > 2);
    root[c[n - 1].first_tag + 2] ^= 0x04;
    struct aloft_lfs fs;
    struct aloft_lfs_info info;
    assert_int_equal(aloft_lfs_mount(&fs, img, MIB, BS), 0);
    assert_int_equal(aloft_lfs_stat(&fs, "/two-blocks-plus.bin", &info), 0);
    assert_int_equal(info.size, 0);
    assert_true(info.is_inline);
    assert_int_equal(aloft_lfs_stat(&fs, "/index.html", &info), 0);
    assert_int_equal(info.size, 72);
    root[c[n - 1].first_tag + 2] ^= 0x04;

    /* a flipped bit in the first commit of the newer root block: that block
     * holds nothing valid, so the older one (rev 1: just the superblock) wins */
    root[c[0].first_tag] ^= 0x01;
    assert_int_equal(aloft_lfs_mount(&fs, img, MIB, BS), 0);
    int entries = 0;
    assert_int_equal(aloft_lfs_walk(&fs, count_cb, &entries), 0);
    assert_int_equal(entries, 0);

    /* and in both blocks: nothing to mount, as littlefs would refuse */
    uint8_t *older = root == img ? img + BS : img;
    older[4] ^= 0x01;
    assert_int_equal(aloft_lfs_mount(&fs, img, MIB, BS), ALOFT_E_CORRUPT);
    assert_non_null(strstr(fs.why, "valid CRC"));
    free(img);
}

/* The blocks of every directory's pair. */
struct pairs {
    uint32_t block[64];
    size_t n;
};

static int pairs_cb(void *ctx, const char *path, const struct aloft_lfs_info *info)
{
    struct pairs *p = ctx;
    (void)path;
    if (info->type == ALOFT_LFS_DIR && p->n + 2 <= 64) {
        p->block[p->n++] = info->loc[0];
        p->block[p->n++] = info->loc[1];
    }
    return 0;
}

static void test_commit_crcs(void **state)
{
    (void)state;
    for (int v = 0; v < 2; v++) {
        uint32_t version = v ? ALOFT_LFS_VERSION_2_0 : ALOFT_LFS_VERSION_2_1;
        uint8_t *img = mkfs_ok(fixture_tree(), MIB, BS, version);
        /* every metadata block: each commit's CRC (checked by the parser)
         * covers it from its start, it ends on a program boundary, and 2.1
         * commits carry the forward CRC of the erased unit after them */
        struct pairs p = {.block = {0, 1}, .n = 2};
        struct aloft_lfs fs;
        assert_int_equal(aloft_lfs_mount(&fs, img, MIB, 0), 0);
        assert_int_equal(aloft_lfs_walk(&fs, pairs_cb, &p), 0);
        int total = 0;
        for (size_t i = 0; i < p.n; i++) {
            const uint8_t *b = img + p.block[i] * BS;
            struct commit c[64];
            if (erased(b, BS))
                continue; /* the half of a new pair not yet written */
            int n = commits(b, c, 64, NULL);
            assert_true(n >= 1);
            for (int k = 0; k < n; k++) {
                assert_int_equal(c[k].end % 128, 0);
                assert_int_equal(le32(b + c[k].crc_off + 4),
                                 aloft_crc32(0xffffffff, b + c[k].start, c[k].crc_off + 4 - c[k].start));
                assert_int_equal(c[k].fcrc, version == ALOFT_LFS_VERSION_2_1 && c[k].end < BS);
            }
            /* nothing after the last commit: erased */
            assert_true(erased(b + c[n - 1].end, BS - c[n - 1].end));
            total += n;
        }
        assert_int_equal(total, 39); /* one per littlefs operation, as in the reference image */

        /* a data byte changed: the CRC rejects that commit, the older state stays */
        struct aloft_lfs_info info;
        uint8_t *root = active(img, 0, 1);
        size_t at = 0;
        while (at < BS - 9 && memcmp(root + at, "<!doctype", 9))
            at++;
        assert_true(at < BS - 9);
        root[at] ^= 0x20;
        assert_int_equal(aloft_lfs_mount(&fs, img, MIB, BS), 0);
        assert_int_equal(aloft_lfs_stat(&fs, "/index.html", &info), 0);
        assert_int_equal(info.size, 0);
        /* everything after it is gone too: a log is read up to the first bad commit */
        assert_int_equal(aloft_lfs_stat(&fs, "/two-blocks-plus.bin", &info), ALOFT_E_NOTFOUND);
        free(img);
    }
}

/* ---- inline files, CTZ skip-lists ---- */

static void test_inline_up_to_the_cache_size(void **state)
{
    (void)state;
    const char *dir = new_dir("inline");
    char path[600];
    static const uint32_t sizes[] = {0, 1, 511, 512, 513, 1000};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(path, sizeof path, "%s/f%u", dir, sizes[i]);
        write_fill(path, sizes[i], sizes[i] + 1);
    }
    uint8_t *img = mkfs_ok(dir, 256 * 1024, BS, ALOFT_LFS_VERSION_2_1);
    struct aloft_lfs fs;
    assert_int_equal(aloft_lfs_mount(&fs, img, 256 * 1024, 0), 0);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct aloft_lfs_info info;
        snprintf(path, sizeof path, "/f%u", sizes[i]);
        assert_int_equal(aloft_lfs_stat(&fs, path, &info), 0);
        assert_int_equal(info.size, sizes[i]);
        assert_int_equal(info.is_inline, sizes[i] <= 512);
        uint8_t want[1000], got[1000];
        aloft_test_fill(want, sizes[i], sizes[i] + 1);
        assert_int_equal(aloft_lfs_read_file(&fs, path, got, sizeof got), (int)sizes[i]);
        assert_memory_equal(got, want, sizes[i]);
    }
    free(img);
}

static uint32_t ctz(uint32_t x) { return (uint32_t)__builtin_ctz(x); }

/* Check a CTZ list against SPEC.md: block k (k > 0) starts with ctz(k)+1
 * pointers, pointer j naming block k - 2^j; the data follows them. */
static void check_ctz(const uint8_t *img, uint32_t head, const uint8_t *want, uint32_t size)
{
    uint32_t nblocks = 0;
    for (uint64_t cap = 0; cap < size || nblocks == 0; nblocks++)
        cap += BS - (nblocks ? 4 * (ctz(nblocks) + 1) : 0);
    uint32_t *block = malloc(nblocks * sizeof *block);
    block[nblocks - 1] = head;
    for (uint32_t k = nblocks - 1; k > 0; k--)
        block[k - 1] = le32(img + (size_t)block[k] * BS);
    for (uint32_t k = 1; k < nblocks; k++)
        for (uint32_t j = 0; j <= ctz(k); j++)
            if (le32(img + (size_t)block[k] * BS + 4 * j) != block[k - (1u << j)])
                fail_msg("size %u: block index %u pointer %u is %u, not block index %u (%u)", size, k, j,
                         le32(img + (size_t)block[k] * BS + 4 * j), k - (1u << j), block[k - (1u << j)]);
    uint32_t pos = 0;
    for (uint32_t k = 0; k < nblocks; k++) {
        uint32_t skip = k ? 4 * (ctz(k) + 1) : 0, n = BS - skip < size - pos ? BS - skip : size - pos;
        assert_memory_equal(img + (size_t)block[k] * BS + skip, want + pos, n);
        pos += n;
    }
    assert_int_equal(pos, size);
    free(block);
}

static void test_ctz_skip_lists(void **state)
{
    (void)state;
    const char *dir = new_dir("ctz");
    static const uint32_t sizes[] = {4096, 4097, 8188, 8189, 5 * 4096, 100000, 300000};
    char path[600];
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        snprintf(path, sizeof path, "%s/f%u", dir, sizes[i]);
        write_fill(path, sizes[i], sizes[i]);
    }
    uint8_t *img = mkfs_ok(dir, MIB, BS, ALOFT_LFS_VERSION_2_1);
    struct aloft_lfs fs;
    assert_int_equal(aloft_lfs_mount(&fs, img, MIB, 0), 0);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        struct aloft_lfs_info info;
        snprintf(path, sizeof path, "/f%u", sizes[i]);
        assert_int_equal(aloft_lfs_stat(&fs, path, &info), 0);
        assert_false(info.is_inline);
        assert_int_equal(info.size, sizes[i]);
        uint8_t *want = malloc(sizes[i]), *got = malloc(sizes[i]);
        aloft_test_fill(want, sizes[i], sizes[i]);
        check_ctz(img, info.loc[0], want, sizes[i]);
        /* streamed in odd-sized pieces, the same bytes */
        for (uint32_t pos = 0; pos < sizes[i];) {
            int n = aloft_lfs_read(&fs, &info, pos, got + pos, 1000);
            assert_true(n > 0);
            pos += (uint32_t)n;
        }
        assert_memory_equal(got, want, sizes[i]);
        free(want);
        free(got);
    }
    /* the reference's own lists follow the same formula */
    size_t len;
    uint8_t *ref = aloft_test_fixture("littlefs/ref-2.1-esp_littlefs.bin", &len);
    uint8_t *want = aloft_test_fixture("littlefs/tree/assets/blob.bin", &len);
    assert_int_equal(aloft_lfs_mount(&fs, ref, MIB, 0), 0);
    struct aloft_lfs_info info;
    assert_int_equal(aloft_lfs_stat(&fs, "/assets/blob.bin", &info), 0);
    check_ctz(ref, info.loc[0], want, (uint32_t)len);
    free(want);
    free(ref);
    free(img);
}

/* ---- names, nesting, empty things ---- */

static void test_names_nesting_and_empties(void **state)
{
    (void)state;
    const char *top = new_dir("names");
    char p[800], name64[65], name65[66];
    memset(name64, 'x', 64);
    name64[64] = 0;
    memset(name65, 'y', 65);
    name65[65] = 0;
    snprintf(p, sizeof p, "%s/a", top);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/b", top);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/b/c", top);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/b/c/d", top);
    mkdir(p, 0755);
    snprintf(p, sizeof p, "%s/a/b/c/d/deepest.txt", top);
    write_file(p, "four levels down\n", 17);
    snprintf(p, sizeof p, "%s/%s", top, name64);
    write_file(p, "64", 2);
    snprintf(p, sizeof p, "%s/empty", top);
    write_file(p, "", 0);
    snprintf(p, sizeof p, "%s/void", top);
    mkdir(p, 0755);

    uint8_t *img = mkfs_ok(top, 128 * 1024, BS, ALOFT_LFS_VERSION_2_1);
    char *got = listing(img, 128 * 1024);
    char want[2048], deep[65], n64[65], none[65];
    aloft_sha256_hex("four levels down\n", 17, deep);
    aloft_sha256_hex("64", 2, n64);
    aloft_sha256_hex("", 0, none);
    snprintf(want, sizeof want,
             "d %10s %-64s /a/\n"
             "d %10s %-64s /a/b/\n"
             "d %10s %-64s /a/b/c/\n"
             "d %10s %-64s /a/b/c/d/\n"
             "f %10u %s /a/b/c/d/deepest.txt\n"
             "f %10u %s /empty\n"
             "d %10s %-64s /void/\n"
             "f %10u %s /%s\n",
             "-", "-", "-", "-", "-", "-", "-", "-", 17u, deep, 0u, none, "-", "-", 2u, n64, name64);
    assert_string_equal(got, want);
    free(got);

    struct aloft_lfs fs;
    struct aloft_lfs_info info;
    struct aloft_lfs_dir d;
    assert_int_equal(aloft_lfs_mount(&fs, img, 128 * 1024, 0), 0);
    assert_int_equal(aloft_lfs_stat(&fs, "/void", &info), 0);
    assert_int_equal(info.type, ALOFT_LFS_DIR);
    assert_int_equal(aloft_lfs_dir_open(&fs, "/void/", &d), 0);
    assert_int_equal(aloft_lfs_dir_read(&fs, &d, &info), 0);
    assert_int_equal(aloft_lfs_stat(&fs, "//a/./b/c/d/deepest.txt", &info), 0);
    assert_int_equal(aloft_lfs_stat(&fs, "/a/b/c/d/deepest.txt/", &info), ALOFT_E_NOTFOUND);
    assert_int_equal(aloft_lfs_stat(&fs, "/a/../a", &info), ALOFT_E_NOTFOUND);
    assert_int_equal(aloft_lfs_stat(&fs, "/", &info), 0);
    assert_int_equal(info.type, ALOFT_LFS_DIR);
    assert_int_equal(aloft_lfs_dir_open(&fs, "/empty", &d), ALOFT_E_INVAL);
    char buf[4];
    assert_int_equal(aloft_lfs_read_file(&fs, "/a", buf, sizeof buf), ALOFT_E_INVAL);
    assert_int_equal(aloft_lfs_read_file(&fs, "/a/b/c/d/deepest.txt", buf, sizeof buf), ALOFT_E_NOSPC);
    free(img);

    /* 65 bytes is one too many for esp_littlefs */
    snprintf(p, sizeof p, "%s/%s", top, name65);
    write_file(p, "65", 2);
    struct aloft_lfs_mkfs_err err;
    size_t len;
    assert_int_equal(aloft_lfs_mkfs(top, 128 * 1024, BS, ALOFT_LFS_VERSION_2_1, &img, &len, &err), ALOFT_E_INVAL);
    assert_non_null(strstr(err.msg, name65));
    assert_non_null(strstr(err.msg, "64"));
}

static void test_littlefs_directory_order(void **state)
{
    (void)state;
    /* littlefs sorts by bytes, but on a common prefix the longer name first */
    size_t len;
    uint8_t *ref = aloft_test_fixture("littlefs/ref-2.1-esp_littlefs.bin", &len);
    struct aloft_lfs fs;
    struct aloft_lfs_dir d;
    struct aloft_lfs_info info;
    assert_int_equal(aloft_lfs_mount(&fs, ref, len, 0), 0);
    assert_int_equal(aloft_lfs_dir_open(&fs, "/assets/js", &d), 0);
    assert_int_equal(aloft_lfs_dir_read(&fs, &d, &info), 1);
    assert_string_equal(info.name, "app.js.gz");
    assert_int_equal(aloft_lfs_dir_read(&fs, &d, &info), 1);
    assert_string_equal(info.name, "app.js");
    assert_int_equal(aloft_lfs_dir_read(&fs, &d, &info), 0);
    free(ref);
}

/* ---- many entries: compaction and split pairs ---- */

static void test_many_files_split_directories(void **state)
{
    (void)state;
    const char *dir = new_dir("many");
    char p[700];
    snprintf(p, sizeof p, "%s/sub", dir);
    mkdir(p, 0755);
    for (int i = 0; i < 300; i++) {
        snprintf(p, sizeof p, "%s/%sfile-%03d%s", dir, i % 3 ? "" : "sub/", i, i % 7 ? "" : ".gz");
        write_fill(p, (size_t)(i * 37) % 700, (uint32_t)i);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(p, sizeof p, "%s/d%02d", dir, i);
        mkdir(p, 0755);
    }
    /* "k", "kk", "kkk" …: littlefs puts a longer name before its prefix, so
     * each goes to the head pair of a directory that has split; a directory
     * made there is first linked from the last pair, an orphan (flagged in
     * the global state) until the head's own commit */
    char k[64] = "";
    snprintf(p, sizeof p, "%s/prefix", dir);
    mkdir(p, 0755);
    for (int i = 1; i < 60; i++) {
        k[i - 1] = 'k';
        snprintf(p, sizeof p, "%s/prefix/%s", dir, k);
        if (i % 3)
            write_fill(p, 480, (uint32_t)i);
        else
            mkdir(p, 0755);
    }
    for (int v = 0; v < 2; v++) {
        uint32_t version = v ? ALOFT_LFS_VERSION_2_0 : ALOFT_LFS_VERSION_2_1;
        uint8_t *img = mkfs_ok(dir, 2 * MIB, BS, version);
        struct aloft_lfs fs;
        assert_int_equal(aloft_lfs_mount(&fs, img, 2 * MIB, 0), 0);
        int entries = 0;
        assert_int_equal(aloft_lfs_walk(&fs, count_cb, &entries), 0);
        assert_int_equal(entries, 300 + 20 + 1 + 1 + 59);
        assert_int_equal(fs.gdisk.tag, 0); /* the orphan flags cancel out */
        int movestates = 0;
        for (uint32_t b = 0; b < 2 * MIB / BS; b++)
            movestates += count_tags(img + b * BS, 0x7ff);
        assert_true(movestates >= 2);
        for (int i = 0; i < 300; i++) {
            uint8_t got[700], want[700];
            size_t n = (size_t)(i * 37) % 700;
            snprintf(p, sizeof p, "/%sfile-%03d%s", i % 3 ? "" : "sub/", i, i % 7 ? "" : ".gz");
            aloft_test_fill(want, n, (uint32_t)i);
            assert_int_equal(aloft_lfs_read_file(&fs, p, got, sizeof got), (int)n);
            assert_memory_equal(got, want, n);
        }
        memset(k, 0, sizeof k);
        for (int i = 1; i < 60; i++) {
            struct aloft_lfs_info info;
            k[i - 1] = 'k';
            snprintf(p, sizeof p, "/prefix/%s", k);
            assert_int_equal(aloft_lfs_stat(&fs, p, &info), 0);
            assert_int_equal(info.type, i % 3 ? ALOFT_LFS_REG : ALOFT_LFS_DIR);
            assert_int_equal(info.size, i % 3 ? 480 : 0);
        }
        /* the root no longer fits one pair: it continues through hard tails */
        struct aloft_lfs_dir d;
        struct aloft_lfs_info info;
        assert_int_equal(aloft_lfs_dir_open(&fs, "/", &d), 0);
        while (aloft_lfs_dir_read(&fs, &d, &info) == 1)
            ;
        assert_true(d.hops > 0);
        free(img);
    }
}

/* ---- a nearly full image ---- */

static int try_fill(const char *dir, uint32_t size, uint32_t image, uint64_t *need)
{
    char p[700];
    snprintf(p, sizeof p, "%s/filler.bin", dir);
    write_fill(p, size, 7);
    uint8_t *img;
    size_t len;
    struct aloft_lfs_mkfs_err err;
    int rc = aloft_lfs_mkfs(dir, image, BS, ALOFT_LFS_VERSION_2_1, &img, &len, &err);
    if (rc == 0)
        free(img);
    if (need)
        *need = err.need;
    return rc;
}

static void test_nearly_full_image(void **state)
{
    (void)state;
    const uint32_t image = 128 * 1024; /* 32 blocks */
    const char *dir = new_dir("full");
    char p[700];
    for (int i = 0; i < 20; i++) {
        snprintf(p, sizeof p, "%s/small-%02d.txt", dir, i);
        write_fill(p, 100 + (size_t)i * 30, (uint32_t)i);
    }
    /* the largest filler that fits, by bisection */
    uint32_t lo = 0, hi = image;
    assert_int_equal(try_fill(dir, lo, image, NULL), 0);
    assert_int_equal(try_fill(dir, hi, image, NULL), ALOFT_E_NOSPC);
    while (hi - lo > 1) {
        uint32_t mid = lo + (hi - lo) / 2;
        if (try_fill(dir, mid, image, NULL) == 0)
            lo = mid;
        else
            hi = mid;
    }
    /* full to within a few blocks, and every byte reads back */
    assert_int_equal(try_fill(dir, lo, image, NULL), 0);
    uint8_t *img = mkfs_ok(dir, image, BS, ALOFT_LFS_VERSION_2_1);
    struct aloft_lfs fs;
    assert_int_equal(aloft_lfs_mount(&fs, img, image, 0), 0);
    int used = aloft_lfs_used_blocks(&fs);
    print_message("nearly full: a %u-byte filler fits, %d of 32 blocks in use\n", lo, used);
    assert_true(used >= 32 - 2);
    uint8_t *want = malloc(lo + 1), *got = malloc(lo + 1);
    aloft_test_fill(want, lo, 7);
    assert_int_equal(aloft_lfs_read_file(&fs, "/filler.bin", got, lo), (int)lo);
    assert_memory_equal(got, want, lo);
    free(want);
    free(got);
    free(img);

    /* one byte more does not fit, and the error says how much would */
    uint64_t need;
    assert_int_equal(try_fill(dir, lo + 1, image, &need), ALOFT_E_NOSPC);
    assert_true(need > image);
    assert_int_equal(need % BS, 0);
    assert_int_equal(try_fill(dir, lo + 1, (uint32_t)need, NULL), 0);
    assert_int_equal(try_fill(dir, lo + 1, (uint32_t)need - BS, NULL), ALOFT_E_NOSPC);
}

/* ---- deletes and pending moves, as littlefs leaves them ---- */

static void test_deletes_and_moves(void **state)
{
    (void)state;
    uint8_t *img = mkfs_ok(fixture_tree(), MIB, BS, ALOFT_LFS_VERSION_2_1);
    uint8_t *saved = malloc(MIB);
    memcpy(saved, img, MIB);
    struct aloft_lfs fs;
    struct aloft_lfs_info info;
    int entries = 0;

    /* root ids: 0 superblock, 1 assets, 2 deep, 3 empty-dir, 4 empty.txt, 5 index.html, … */
    uint32_t del = TAG(0x4ff, 4, 0);
    const void *none = NULL;
    append_commit(active(img, 0, 1), &del, &none, 1);
    assert_int_equal(aloft_lfs_mount(&fs, img, MIB, 0), 0);
    assert_int_equal(aloft_lfs_stat(&fs, "/empty.txt", &info), ALOFT_E_NOTFOUND);
    assert_int_equal(aloft_lfs_stat(&fs, "/index.html", &info), 0);
    assert_int_equal(info.size, 72);
    assert_int_equal(aloft_lfs_stat(&fs, "/two-blocks-plus.bin", &info), 0);
    assert_int_equal(info.size, 8269);
    assert_int_equal(aloft_lfs_walk(&fs, count_cb, &entries), 0);
    assert_int_equal(entries, 18);

    /* a move in flight: the global state names the source entry (here the
     * root's last, id 7), which is then hidden though its pair still holds it */
    memcpy(img, saved, MIB);
    uint8_t g[12];
    put_le32(g, TAG(0x4ff, 7, 0));
    put_le32(g + 4, 1);
    put_le32(g + 8, 0);
    uint32_t mv = TAG(0x7ff, 0x3ff, 12);
    const void *gd = g;
    append_commit(active(img, 0, 1), &mv, &gd, 1);
    assert_int_equal(aloft_lfs_mount(&fs, img, MIB, 0), 0);
    assert_int_equal(aloft_lfs_stat(&fs, "/two-blocks-plus.bin", &info), ALOFT_E_NOTFOUND);
    assert_int_equal(aloft_lfs_stat(&fs, "/nnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnnn.txt", &info), 0);
    assert_int_equal(info.size, 15);
    entries = 0;
    assert_int_equal(aloft_lfs_walk(&fs, count_cb, &entries), 0);
    assert_int_equal(entries, 18);
    free(saved);
    free(img);
}

/* ---- bad images: clear errors, never a crash ---- */

static int read_all_cb(void *ctx, const char *path, const struct aloft_lfs_info *info)
{
    (void)path;
    struct aloft_lfs *fs = ctx;
    static uint8_t buf[4096];
    for (uint32_t pos = 0; info->type == ALOFT_LFS_REG && pos < info->size;) {
        int n = aloft_lfs_read(fs, info, pos, buf, sizeof buf);
        if (n <= 0)
            return n ? n : ALOFT_E_CORRUPT;
        pos += (uint32_t)n;
    }
    return 0;
}

static void test_corrupt_images(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("littlefs/ref-2.1-esp_littlefs.bin", &len);
    struct aloft_lfs fs;

    /* not LittleFS at all */
    uint8_t *zero = calloc(1, MIB);
    assert_int_equal(aloft_lfs_mount(&fs, zero, MIB, 0), ALOFT_E_CORRUPT);
    assert_non_null(strstr(fs.why, "not a LittleFS image"));
    free(zero);

    /* the magic changed in both blocks (CRCs made valid again) */
    uint8_t *bad = malloc(len);
    memcpy(bad, img, len);
    for (int b = 0; b < 2; b++) {
        uint8_t *blk = bad + b * BS;
        struct commit c[64];
        assert_true(commits(blk, c, 64, NULL) > 0);
        memcpy(blk + 8, "LITTLEFS", 8);
        put_le32(blk + c[0].crc_off + 4, aloft_crc32(0xffffffff, blk, c[0].crc_off + 4));
    }
    assert_int_equal(aloft_lfs_mount(&fs, bad, len, BS), ALOFT_E_CORRUPT);
    assert_non_null(strstr(fs.why, "superblock"));

    /* truncated: shorter than the superblock says */
    assert_int_equal(aloft_lfs_mount(&fs, img, 500000, BS), ALOFT_E_TRUNCATED);
    assert_non_null(strstr(fs.why, "cut short"));
    assert_int_equal(aloft_lfs_mount(&fs, img, 500000, 0), ALOFT_E_TRUNCATED);
    static const size_t cuts[] = {0, 1, 127, 4095, 4096, 8191, 8192, 12288, 1048575};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        assert_true(aloft_lfs_mount(&fs, img, cuts[i], 0) < 0);

    /* a bad CRC in both blocks of the root pair */
    memcpy(bad, img, len);
    bad[0x20] ^= 0x40;
    bad[BS + 0x20] ^= 0x40;
    assert_int_equal(aloft_lfs_mount(&fs, bad, len, BS), ALOFT_E_CORRUPT);
    assert_non_null(strstr(fs.why, "valid CRC"));

    /* random damage, mostly to metadata: any error is fine, a crash is not */
    static const uint32_t meta[] = {0, 1, 165, 167, 183, 191, 192, 195, 198, 204, 206, 210};
    uint32_t seed = 1;
    int mounted = 0;
    for (int iter = 0; iter < 3000; iter++) {
        memcpy(bad, img, len);
        for (int k = 0; k < 1 + iter % 4; k++) {
            seed = seed * 1103515245u + 12345u;
            uint32_t b = meta[(seed >> 8) % (sizeof meta / sizeof meta[0])];
            seed = seed * 1103515245u + 12345u;
            uint32_t off = (seed >> 4) % (iter % 2 ? 0x600 : BS);
            seed = seed * 1103515245u + 12345u;
            bad[b * BS + off] ^= (uint8_t)(1u << (seed >> 16) % 8) | (iter % 5 ? 0 : 0xff);
        }
        if (aloft_lfs_mount(&fs, bad, len, iter % 3 ? BS : 0) == 0) {
            mounted++;
            aloft_lfs_walk(&fs, read_all_cb, &fs);
            aloft_lfs_used_blocks(&fs);
            struct aloft_lfs_info info;
            uint8_t buf[64];
            if (aloft_lfs_stat(&fs, "/assets/blob.bin", &info) == 0)
                aloft_lfs_read(&fs, &info, 99000, buf, sizeof buf);
        }
    }
    print_message("random damage: %d of 3000 still mounted\n", mounted);
    free(bad);
    free(img);
}

/* ---- other geometries ---- */

static void test_other_block_sizes(void **state)
{
    (void)state;
    /* 512-byte blocks: inline only up to 64 bytes (block_size/8), 2048 blocks
     * so the allocator's 1024-block window must move on */
    static const uint32_t sizes[] = {512, 8192};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *img = mkfs_ok(fixture_tree(), MIB, sizes[i], ALOFT_LFS_VERSION_2_1);
        char *got = listing(img, MIB), *want = manifest(false);
        assert_string_equal(got, want);
        struct aloft_lfs fs;
        struct aloft_lfs_info info;
        assert_int_equal(aloft_lfs_mount(&fs, img, MIB, 0), 0);
        assert_int_equal(fs.block_size, sizes[i]);
        assert_int_equal(aloft_lfs_stat(&fs, "/index.html", &info), 0);
        assert_int_equal(info.is_inline, sizes[i] / 8 >= 72);
        free(got);
        free(want);
        free(img);
    }
    uint8_t *img;
    size_t len;
    struct aloft_lfs_mkfs_err err;
    assert_int_equal(aloft_lfs_mkfs(fixture_tree(), MIB, 1000, ALOFT_LFS_VERSION_2_1, &img, &len, &err), ALOFT_E_INVAL);
    assert_int_equal(aloft_lfs_mkfs(fixture_tree(), MIB + 1, BS, ALOFT_LFS_VERSION_2_1, &img, &len, &err),
                     ALOFT_E_INVAL);
    assert_int_equal(aloft_lfs_mkfs(fixture_tree(), MIB, BS, 0x00030000, &img, &len, &err), ALOFT_E_INVAL);
    char missing[600];
    snprintf(missing, sizeof missing, "%s/no-such-dir", tmp);
    assert_int_equal(aloft_lfs_mkfs(missing, MIB, BS, ALOFT_LFS_VERSION_2_1, &img, &len, &err), ALOFT_E_IO);
    assert_non_null(strstr(err.msg, "no-such-dir"));
}

/* ---- the command line ---- */

static void test_cli(void **state)
{
    (void)state;
    char out[600], alias[600];
    snprintf(out, sizeof out, "%s/cli.bin", tmp);
    snprintf(alias, sizeof alias, "%s/cli-alias.bin", tmp);
    const char *mk[] = {"aloft", "mkfs", fixture_tree(), "-o", out, NULL};
    assert_int_equal(aloft_test_run(NULL, mk), 0);
    const char *mk2[] = {"aloft", "lfs", "mkfs", "--size", "1M", "--disk-version", "2.1", fixture_tree(), "-o", alias,
                         NULL};
    assert_int_equal(aloft_test_run(NULL, mk2), 0);
    size_t len, rlen;
    uint8_t *a, *b, *ref = aloft_test_fixture("littlefs/ref-2.1-esp_littlefs.bin", &rlen);
    assert_int_equal(aloft_file_read(out, &a, &len), 0);
    assert_int_equal(len, rlen);
    assert_memory_equal(a, ref, len);
    assert_int_equal(aloft_file_read(alias, &b, &len), 0);
    assert_memory_equal(b, ref, len);
    free(a);
    free(b);
    free(ref);

    char *text, *want = manifest(false);
    const char *ls[] = {"aloft", "lfs", "ls", out, NULL};
    assert_int_equal(aloft_test_run(&text, ls), 0);
    assert_string_equal(text, want);
    free(text);

    /* --json: the same entries, in the same order, each line rebuilt from it */
    const char *ls_json[] = {"aloft", "lfs", "ls", out, "--json", NULL};
    assert_int_equal(aloft_test_run(&text, ls_json), 0);
    cJSON *arr = cJSON_Parse(text);
    free(text);
    assert_true(cJSON_IsArray(arr));
    size_t lines = 0, pos = 0;
    for (const char *p = want; *p; p++)
        lines += *p == '\n';
    assert_int_equal(cJSON_GetArraySize(arr), lines);
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        char line[300];
        const char *type = cJSON_GetObjectItem(e, "type")->valuestring, *path = cJSON_GetObjectItem(e, "path")->valuestring;
        if (!strcmp(type, "dir"))
            snprintf(line, sizeof line, "d %10s %-64s %s/\n", "-", "-", path);
        else
            snprintf(line, sizeof line, "f %10u %s %s\n", (unsigned)cJSON_GetObjectItem(e, "size")->valuedouble,
                     cJSON_GetObjectItem(e, "sha256")->valuestring, path);
        assert_true(!strncmp(want + pos, line, strlen(line)));
        pos += strlen(line);
    }
    cJSON_Delete(arr);
    free(want);

    const char *cat[] = {"aloft", "lfs", "cat", out, "/assets/js/app.js", NULL};
    assert_int_equal(aloft_test_run(&text, cat), 0);
    uint8_t *file = aloft_test_fixture("littlefs/tree/assets/js/app.js", &len);
    assert_int_equal(strlen(text), len);
    assert_memory_equal(text, file, len);
    free(file);
    free(text);

    static const char *const helps[][4] = {{"mkfs", "--help"}, {"lfs", "mkfs", "--help"}, {"lfs", "ls", "--help"},
                                           {"lfs", "cat", "--help"}};
    for (size_t i = 0; i < 4; i++) {
        const char *argv[] = {"aloft", helps[i][0], helps[i][1], helps[i][2], NULL};
        assert_int_equal(aloft_test_run(&text, argv), 0);
        assert_non_null(strstr(text, "example:"));
        free(text);
    }
    /* usage errors: 2 */
    const char *u1[] = {"aloft", "mkfs", fixture_tree(), NULL};
    const char *u2[] = {"aloft", "mkfs", fixture_tree(), "-o", out, "--disk-version", "3.0", NULL};
    const char *u3[] = {"aloft", "mkfs", fixture_tree(), "-o", out, "--size", "1000000", NULL};
    const char *u4[] = {"aloft", "lfs", "ls", NULL};
    const char *u5[] = {"aloft", "lfs", "cat", out, NULL};
    const char *const *usage[] = {u1, u2, u3, u4, u5};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(aloft_test_run(NULL, usage[i]), 2);
    /* bad input: 1 */
    char small[600], junk[600];
    snprintf(small, sizeof small, "%s/small.bin", tmp);
    snprintf(junk, sizeof junk, "%s/junk.bin", tmp);
    write_fill(junk, 65536, 3);
    const char *b1[] = {"aloft", "mkfs", fixture_tree(), "-o", small, "--size", "64K", NULL};
    const char *b2[] = {"aloft", "lfs", "ls", junk, NULL};
    const char *b3[] = {"aloft", "lfs", "cat", out, "/nope", NULL};
    const char *b4[] = {"aloft", "lfs", "cat", out, "/assets", NULL};
    const char *b5[] = {"aloft", "lfs", "ls", small, NULL};
    const char *const *bad[] = {b1, b2, b3, b4, b5};
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(aloft_test_run(NULL, bad[i]), 1);
    struct stat st;
    assert_int_not_equal(stat(small, &st), 0); /* nothing written on failure */
}

int main(void)
{
    snprintf(tmp, sizeof tmp, "%s", aloft_test_tmpdir());
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_images_read_exactly),
        cmocka_unit_test(test_mkfs_is_byte_identical_to_the_reference),
        cmocka_unit_test(test_tag_xor_chain),
        cmocka_unit_test(test_commit_crcs),
        cmocka_unit_test(test_inline_up_to_the_cache_size),
        cmocka_unit_test(test_ctz_skip_lists),
        cmocka_unit_test(test_names_nesting_and_empties),
        cmocka_unit_test(test_littlefs_directory_order),
        cmocka_unit_test(test_many_files_split_directories),
        cmocka_unit_test(test_nearly_full_image),
        cmocka_unit_test(test_deletes_and_moves),
        cmocka_unit_test(test_corrupt_images),
        cmocka_unit_test(test_other_block_sizes),
        cmocka_unit_test(test_cli),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
