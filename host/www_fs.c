/* aloft host: the frontend filesystem port on LittleFS (www_fs.h). */
#include "www_fs.h"

#include <stdlib.h>

#include "aloft/err.h"

/* A copy of partition p, mounted. */
static int load(struct aloft_www_lfs *w, const struct aloft_part *p, uint8_t **img, struct aloft_lfs *fs)
{
    if (!(*img = malloc(p->size)))
        return ALOFT_E_NOSPC;
    int rc = aloft_flash_read(w->flash, p->offset, *img, p->size);
    if (rc == 0)
        rc = aloft_lfs_mount(fs, *img, p->size, 0);
    if (rc) {
        free(*img);
        *img = NULL;
    }
    return rc;
}

static int check(void *ctx, const struct aloft_part *p)
{
    uint8_t *img;
    struct aloft_lfs fs;
    int rc = load(ctx, p, &img, &fs);
    free(img);
    return rc;
}

static int mount(void *ctx, const struct aloft_part *p)
{
    struct aloft_www_lfs *w = ctx;
    aloft_www_lfs_free(w);
    int rc = load(w, p, &w->img, &w->fs);
    w->mounted = rc == 0;
    return rc;
}

/* A regular file of the mounted slot. */
static int find(struct aloft_www_lfs *w, const char *path, struct aloft_lfs_info *info)
{
    return w->mounted && aloft_lfs_stat(&w->fs, path, info) == 0 && info->type == ALOFT_LFS_REG ? 0
                                                                                               : ALOFT_E_NOTFOUND;
}

static int stat_file(void *ctx, const char *path, uint32_t *size)
{
    struct aloft_lfs_info info;
    int rc = find(ctx, path, &info);
    if (rc == 0)
        *size = info.size;
    return rc;
}

static int read_file(void *ctx, const char *path, uint32_t off, void *buf, size_t len)
{
    struct aloft_www_lfs *w = ctx;
    struct aloft_lfs_info info;
    int rc = find(w, path, &info);
    return rc ? rc : aloft_lfs_read(&w->fs, &info, off, buf, len);
}

struct aloft_www_fs aloft_www_lfs_port(struct aloft_www_lfs *w, const struct aloft_flash *flash)
{
    w->flash = flash;
    return (struct aloft_www_fs){w, check, mount, stat_file, read_file};
}

void aloft_www_lfs_free(struct aloft_www_lfs *w)
{
    free(w->img);
    w->img = NULL;
    w->mounted = false;
}
