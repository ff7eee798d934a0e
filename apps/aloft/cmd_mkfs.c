/* aloft lfs mkfs|ls|cat (and `aloft mkfs`): LittleFS images for the www slots. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "cmd.h"
#include "file.h"
#include "littlefs.h"

static const char mkfs_help[] =
    "usage: aloft mkfs DIR -o IMAGE [--size SIZE] [--block-size N] [--disk-version 2.0|2.1]\n"
    "       (the same as: aloft lfs mkfs ...)\n"
    "\n"
    "Build a LittleFS image of the tree under DIR for a www partition, laid out as\n"
    "littlefs v2.11 itself writes it when configured as esp_littlefs mounts it\n"
    "(read/prog 128, cache 512: files up to 512 bytes stored inline; names up to 64\n"
    "bytes). The same tree always gives the same bytes. Unused space is erased (0xFF).\n"
    "\n"
    "  -o, --output IMAGE    image to write (atomically; \"-\" for standard output)\n"
    "  --size SIZE           image size, the partition's: 1M (default), 512K, 0x100000\n"
    "  --block-size N        4096 (default, the ESP32 flash sector), a multiple of 512\n"
    "  --disk-version V      2.1 (default) or 2.0 for esp_littlefs older than littlefs 2.6\n"
    "\n"
    "example:\n"
    "  aloft mkfs web/device/dist -o www.bin --size 1M\n"
    "  aloft lfs ls www.bin\n";

static const char ls_help[] =
    "usage: aloft lfs ls IMAGE [--block-size N] [--json]\n"
    "\n"
    "List every file and directory in a LittleFS image (2.0 or 2.1, from aloft mkfs,\n"
    "esp_littlefs or mklittlefs), sorted by path, one per line:\n"
    "  f <size> <sha256> /path     a file\n"
    "  d - - /path/                a directory\n"
    "The block size is read from the superblock unless given.\n"
    "\n"
    "  --block-size N   the image's block size (default: the superblock's)\n"
    "  --json           a JSON array of {\"path\", \"type\": \"file\"|\"dir\", \"size\", \"sha256\"}\n"
    "                   (a directory's path without the trailing /; files only: size, sha256)\n"
    "\n"
    "example:\n"
    "  aloft lfs ls www.bin\n";

static const char cat_help[] =
    "usage: aloft lfs cat IMAGE PATH [--block-size N]\n"
    "\n"
    "Write one file of a LittleFS image to standard output, byte for byte.\n"
    "\n"
    "example:\n"
    "  aloft lfs cat www.bin /index.html\n";

enum { OPT_BLOCK_SIZE = 256, OPT_SIZE, OPT_DISK_VERSION, OPT_JSON };

/* --block-size for ls/cat: 0 means "read it from the superblock". */
/* The options of ls and cat; json: NULL for a command without --json. */
static int parse_read_opts(int argc, char **argv, const char *help, const char *name, uint32_t *block_size,
                           bool *json)
{
    static const struct option opts[] = {
        {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
        {"help", no_argument, NULL, 'h'},
        {"json", no_argument, NULL, OPT_JSON},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_BLOCK_SIZE:
            if (aloft_parse_size(optarg, block_size) || *block_size < 128) {
                fprintf(stderr, "aloft lfs %s: --block-size '%s' is not a size of at least 128\n", name, optarg);
                return 2;
            }
            break;
        case OPT_JSON:
            if (!json)
                return aloft_usage_error(argv[0], help, "unknown option '--json'");
            *json = true;
            break;
        case 'h': fputs(help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], help, c, argv);
        }
    }
    return -1;
}

/* Read and mount IMAGE; on failure say what is wrong and what to do. */
static int open_image(const char *cmd, const char *path, uint32_t block_size, uint8_t **img, struct aloft_lfs *fs)
{
    size_t len;
    if (aloft_file_read(path, img, &len)) {
        fprintf(stderr, "aloft lfs %s: %s: %s\n", cmd, path, strerror(errno));
        return 1;
    }
    int rc = aloft_lfs_mount(fs, *img, len, block_size);
    if (rc == 0)
        return 0;
    fprintf(stderr, "aloft lfs %s: %s is not a readable LittleFS image: %s\n", cmd, path,
            fs->why[0] ? fs->why : aloft_strerror(rc));
    if (rc == ALOFT_E_TRUNCATED)
        fprintf(stderr, "  the file is shorter than the filesystem: copy or download it again\n");
    else
        fprintf(stderr, "  pass the image of a www partition (e.g. from 'aloft mkfs'), not an app, flash dump or "
                        "partition table%s\n",
                block_size ? "; check --block-size" : "");
    free(*img);
    *img = NULL;
    return 1;
}

int aloft_cmd_lfs_mkfs(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"size", required_argument, NULL, OPT_SIZE},
        {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
        {"disk-version", required_argument, NULL, OPT_DISK_VERSION},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    uint32_t size = 1u << 20, block_size = 4096, version = ALOFT_LFS_VERSION_2_1;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case OPT_SIZE:
            if (aloft_parse_size(optarg, &size) || !size) {
                fprintf(stderr, "aloft mkfs: --size '%s' is not a size like 1M, 512K or 0x100000\n", optarg);
                return 2;
            }
            break;
        case OPT_BLOCK_SIZE:
            if (aloft_parse_size(optarg, &block_size) || block_size < 512 || block_size % 512) {
                fprintf(stderr, "aloft mkfs: --block-size '%s' must be a multiple of 512 (4096 on an ESP32)\n",
                        optarg);
                return 2;
            }
            break;
        case OPT_DISK_VERSION:
            if (!strcmp(optarg, "2.1"))
                version = ALOFT_LFS_VERSION_2_1;
            else if (!strcmp(optarg, "2.0"))
                version = ALOFT_LFS_VERSION_2_0;
            else {
                fprintf(stderr, "aloft mkfs: --disk-version '%s': use 2.1 or 2.0\n", optarg);
                return 2;
            }
            break;
        case 'h': fputs(mkfs_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], mkfs_help, c, argv);
        }
    }
    if (optind == argc)
        return aloft_usage_error(argv[0], mkfs_help, "missing DIR");
    if (optind < argc - 1)
        return aloft_usage_error(argv[0], mkfs_help, "unexpected argument '%s'", argv[optind + 1]);
    if (!out)
        return aloft_usage_error(argv[0], mkfs_help, "missing -o IMAGE");
    if (size % block_size || size / block_size < 2) {
        fprintf(stderr, "aloft mkfs: --size %u is not a whole number (at least 2) of %u-byte blocks\n", size,
                block_size);
        return 2;
    }
    const char *dir = argv[optind];
    uint8_t *img;
    size_t len;
    struct aloft_lfs_mkfs_err err;
    int rc = aloft_lfs_mkfs(dir, size, block_size, version, &img, &len, &err);
    if (rc) {
        fprintf(stderr, "aloft mkfs: %s\n", err.msg[0] ? err.msg : aloft_strerror(rc));
        if (rc == ALOFT_E_NOSPC && err.need)
            fprintf(stderr, "  use a larger partition and --size %llu (0x%llx) or more, or leave files out\n",
                    (unsigned long long)err.need, (unsigned long long)err.need);
        else if (rc == ALOFT_E_NOSPC)
            fprintf(stderr, "  the tree is far too large for a www partition: leave files out\n");
        return 1;
    }
    struct aloft_lfs fs;
    int used = aloft_lfs_mount(&fs, img, len, block_size) ? -1 : aloft_lfs_used_blocks(&fs);
    if (used < 0) {
        fprintf(stderr, "aloft mkfs: internal error: the image does not read back (%s)\n", fs.why);
        free(img);
        return 1;
    }
    if (aloft_file_write(out, img, len)) {
        fprintf(stderr, "aloft mkfs: %s: %s\n", out, strerror(errno));
        free(img);
        return 1;
    }
    if (strcmp(out, "-"))
        printf("%s: LittleFS %s, %zu bytes (%u blocks of %u), %d blocks used\n", out,
               version == ALOFT_LFS_VERSION_2_1 ? "2.1" : "2.0", len, size / block_size, block_size, used);
    free(img);
    return 0;
}

struct listing {
    struct aloft_lfs *fs;
    char **lines;
    size_t n, cap;
    const char *failed; /* the file that would not read */
};

static int add_line(struct listing *l, char *line)
{
    if (!line)
        return ALOFT_E_NOSPC;
    if (l->n == l->cap) {
        char **more = realloc(l->lines, (l->cap = l->cap ? l->cap * 2 : 64) * sizeof *more);
        if (!more) {
            free(line);
            return ALOFT_E_NOSPC;
        }
        l->lines = more;
    }
    l->lines[l->n++] = line;
    return 0;
}

static int list_entry(void *ctx, const char *path, const struct aloft_lfs_info *info)
{
    struct listing *l = ctx;
    char line[2 * 1024 + 128];
    if (info->type == ALOFT_LFS_DIR) {
        snprintf(line, sizeof line, "d %10s %-64s %s/", "-", "-", path);
        return add_line(l, strdup(line));
    }
    struct aloft_sha256 s;
    uint8_t buf[4096], h[32];
    char hex[65];
    aloft_sha256_init(&s);
    for (uint32_t pos = 0; pos < info->size;) {
        int n = aloft_lfs_read(l->fs, info, pos, buf, sizeof buf);
        if (n <= 0) {
            l->failed = path;
            return n ? n : ALOFT_E_CORRUPT;
        }
        aloft_sha256_update(&s, buf, (size_t)n);
        pos += (uint32_t)n;
    }
    aloft_sha256_final(&s, h);
    for (int i = 0; i < 32; i++)
        sprintf(hex + 2 * i, "%02x", h[i]);
    snprintf(line, sizeof line, "f %10u %s %s", info->size, hex, path);
    return add_line(l, strdup(line));
}

/* The path starts at column 78 ("f %10s %-64s "); a directory's ends in '/'. */
#define PATH_COL 78

static int by_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a + PATH_COL, *(char *const *)b + PATH_COL);
}

/* The listing's lines ("f %10u <sha256> /path", "d - - /path/") as JSON. */
static void print_json(const struct listing *l)
{
    cJSON *arr = cJSON_CreateArray();
    for (size_t i = 0; i < l->n; i++) {
        const char *line = l->lines[i], *path = line + PATH_COL;
        cJSON *e = cJSON_CreateObject();
        bool dir = line[0] == 'd';
        size_t len = strlen(path) - (dir && strlen(path) > 1); /* "/a/" -> "/a"; "/" stays */
        char *p = strndup(path, len);
        cJSON_AddStringToObject(e, "path", p ? p : path);
        free(p);
        cJSON_AddStringToObject(e, "type", dir ? "dir" : "file");
        if (!dir) {
            cJSON_AddNumberToObject(e, "size", strtod(line + 2, NULL));
            char sha[65];
            snprintf(sha, sizeof sha, "%.64s", line + 13);
            cJSON_AddStringToObject(e, "sha256", sha);
        }
        cJSON_AddItemToArray(arr, e);
    }
    char *text = cJSON_Print(arr);
    if (text)
        puts(text);
    free(text);
    cJSON_Delete(arr);
}

int aloft_cmd_lfs_ls(int argc, char **argv)
{
    uint32_t block_size = 0;
    bool json = false;
    int st = parse_read_opts(argc, argv, ls_help, "ls", &block_size, &json);
    if (st >= 0)
        return st;
    if (optind == argc)
        return aloft_usage_error(argv[0], ls_help, "missing IMAGE");
    if (optind < argc - 1)
        return aloft_usage_error(argv[0], ls_help, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    uint8_t *img;
    struct aloft_lfs fs;
    if (open_image("ls", path, block_size, &img, &fs))
        return 1;
    struct listing l = {.fs = &fs};
    int rc = aloft_lfs_walk(&fs, list_entry, &l);
    if (rc) {
        fprintf(stderr, "aloft lfs ls: %s: %s%s%s\n", path, l.failed ? l.failed : "",
                l.failed ? ": " : "", fs.why[0] ? fs.why : aloft_strerror(rc));
        fprintf(stderr, "  the image is damaged: rebuild it with 'aloft mkfs'\n");
    } else {
        qsort(l.lines, l.n, sizeof *l.lines, by_path);
        if (json)
            print_json(&l);
        else
            for (size_t i = 0; i < l.n; i++)
                puts(l.lines[i]);
    }
    for (size_t i = 0; i < l.n; i++)
        free(l.lines[i]);
    free(l.lines);
    free(img);
    return rc ? 1 : 0;
}

int aloft_cmd_lfs_cat(int argc, char **argv)
{
    uint32_t block_size = 0;
    int st = parse_read_opts(argc, argv, cat_help, "cat", &block_size, NULL);
    if (st >= 0)
        return st;
    if (optind >= argc - 1)
        return aloft_usage_error(argv[0], cat_help, optind == argc ? "missing IMAGE and PATH" : "missing PATH");
    if (optind < argc - 2)
        return aloft_usage_error(argv[0], cat_help, "unexpected argument '%s'", argv[optind + 2]);
    const char *path = argv[optind], *name = argv[optind + 1];
    uint8_t *img;
    struct aloft_lfs fs;
    if (open_image("cat", path, block_size, &img, &fs))
        return 1;
    struct aloft_lfs_info info = {0};
    int rc = aloft_lfs_stat(&fs, name, &info);
    if (rc == ALOFT_E_NOTFOUND)
        fprintf(stderr, "aloft lfs cat: %s has no file %s (list it with 'aloft lfs ls %s')\n", path, name, path);
    else if (rc)
        fprintf(stderr, "aloft lfs cat: %s: %s: %s\n", path, name, fs.why[0] ? fs.why : aloft_strerror(rc));
    else if (info.type != ALOFT_LFS_REG)
        fprintf(stderr, "aloft lfs cat: %s: %s is a directory (list it with 'aloft lfs ls %s')\n", path, name, path);
    uint8_t buf[4096];
    for (uint32_t pos = 0; !rc && info.type == ALOFT_LFS_REG && pos < info.size;) {
        int n = aloft_lfs_read(&fs, &info, pos, buf, sizeof buf);
        if (n <= 0) {
            rc = n ? n : ALOFT_E_CORRUPT;
            fprintf(stderr, "aloft lfs cat: %s: %s: %s\n", path, name, fs.why[0] ? fs.why : aloft_strerror(rc));
        } else if (fwrite(buf, 1, (size_t)n, stdout) != (size_t)n) {
            rc = ALOFT_E_IO;
            fprintf(stderr, "aloft lfs cat: standard output: %s\n", strerror(errno));
        } else {
            pos += (uint32_t)n;
        }
    }
    free(img);
    return rc || info.type != ALOFT_LFS_REG ? 1 : 0;
}
