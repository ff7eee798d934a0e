/* fake-idf: esp_littlefs, read-only. A mount reads the partition's bytes
 * into memory and mounts them with the host's LittleFS reader
 * (host/littlefs.h, which reads what esp_littlefs writes); its files are
 * reached through the VFS prefix (vfs.h) with stat and fopen, a FILE of
 * fopencookie over the reader. Writable mounts are not modelled: the glue
 * mounts read-only. */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "esp_littlefs.h"
#include "littlefs.h"
#include "vfs.h"

#define BLOCK_SIZE 4096 /* CONFIG_LITTLEFS_BLOCK_SIZE: the flash's sector */

struct mount {
    char label[sizeof ((esp_partition_t *)0)->label];
    char base[16];
    uint8_t *img;
    struct aloft_lfs fs;
    unsigned refs; /* the mount itself and each open file */
    struct mount *next;
};

struct file {
    struct mount *m;
    struct aloft_lfs_info info;
    uint32_t pos;
};

/* The reader keeps state in fs: one call at a time, for all mounts. */
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct mount *mounts;

static struct mount *find(const char *label)
{
    for (struct mount *m = mounts; m; m = m->next)
        if (!strcmp(m->label, label))
            return m;
    return NULL;
}

static void put(struct mount *m)
{
    if (--m->refs)
        return;
    free(m->img);
    free(m);
}

static int lfs_errno(int rc)
{
    return rc == ALOFT_E_NOTFOUND ? ENOENT : rc == ALOFT_E_INVAL ? EISDIR : EIO;
}

static int vfs_stat(void *ctx, const char *path, struct stat *st)
{
    struct mount *m = ctx;
    struct aloft_lfs_info info;
    pthread_mutex_lock(&lock);
    int rc = aloft_lfs_stat(&m->fs, *path ? path : "/", &info);
    pthread_mutex_unlock(&lock);
    if (rc) {
        errno = lfs_errno(rc);
        return -1;
    }
    memset(st, 0, sizeof *st);
    st->st_mode = (info.type == ALOFT_LFS_DIR ? S_IFDIR : S_IFREG) | 0777;
    st->st_size = info.size;
    st->st_blksize = (blksize_t)m->fs.block_size;
    return 0;
}

static ssize_t file_read(void *cookie, char *buf, size_t size)
{
    struct file *f = cookie;
    pthread_mutex_lock(&lock);
    int n = aloft_lfs_read(&f->m->fs, &f->info, f->pos, buf, size);
    pthread_mutex_unlock(&lock);
    if (n < 0) {
        errno = EIO;
        return -1;
    }
    f->pos += (uint32_t)n;
    return n;
}

static int file_seek(void *cookie, off64_t *offset, int whence)
{
    struct file *f = cookie;
    off64_t at = whence == SEEK_SET ? 0 : whence == SEEK_CUR ? f->pos : f->info.size;
    if (at + *offset < 0 || at + *offset > UINT32_MAX) {
        errno = EINVAL;
        return -1;
    }
    f->pos = (uint32_t)(at + *offset);
    *offset = f->pos;
    return 0;
}

static int file_close(void *cookie)
{
    struct file *f = cookie;
    pthread_mutex_lock(&lock);
    put(f->m);
    pthread_mutex_unlock(&lock);
    free(f);
    return 0;
}

static FILE *vfs_fopen(void *ctx, const char *path, const char *mode)
{
    struct mount *m = ctx;
    struct file *f = calloc(1, sizeof *f);
    if (!f) {
        errno = ENOMEM;
        return NULL;
    }
    pthread_mutex_lock(&lock);
    int rc = mode[0] != 'r' || strchr(mode, '+') ? -EROFS : aloft_lfs_stat(&m->fs, *path ? path : "/", &f->info);
    if (rc == 0 && f->info.type == ALOFT_LFS_DIR)
        rc = ALOFT_E_INVAL;
    FILE *file = NULL;
    if (rc == 0) {
        f->m = m;
        file = fopencookie(f, mode, (cookie_io_functions_t){.read = file_read, .seek = file_seek, .close = file_close});
        if (file)
            m->refs++;
    }
    pthread_mutex_unlock(&lock);
    if (!file) {
        errno = rc == -EROFS ? EROFS : rc ? lfs_errno(rc) : ENOMEM;
        free(f);
    }
    return file;
}

/* The partition's whole contents, or NULL. */
static uint8_t *read_partition(const esp_partition_t *p)
{
    uint8_t *img = malloc(p->size);
    if (img && esp_partition_read(p, 0, img, p->size) != ESP_OK) {
        free(img);
        img = NULL;
    }
    return img;
}

static const esp_partition_t *partition_of(const esp_vfs_littlefs_conf_t *conf)
{
    if (!conf->partition_label)
        return conf->partition;
    esp_partition_iterator_t it = esp_partition_find(ESP_PARTITION_TYPE_DATA, ESP_PARTITION_SUBTYPE_ANY,
                                                     conf->partition_label);
    const esp_partition_t *p = it ? esp_partition_get(it) : NULL;
    esp_partition_iterator_release(it);
    return p;
}

esp_err_t esp_vfs_littlefs_register(const esp_vfs_littlefs_conf_t *conf)
{
    if (!conf || !conf->base_path)
        return ESP_ERR_INVALID_ARG;
    if (!conf->read_only)
        return ESP_ERR_NOT_SUPPORTED;
    const esp_partition_t *p = partition_of(conf);
    if (!p)
        return ESP_ERR_NOT_FOUND;
    struct mount *m = calloc(1, sizeof *m);
    if (!m)
        return ESP_ERR_NO_MEM;
    snprintf(m->label, sizeof m->label, "%s", p->label);
    snprintf(m->base, sizeof m->base, "%s", conf->base_path);
    m->refs = 1;
    esp_err_t err = ESP_OK;
    pthread_mutex_lock(&lock);
    if (find(m->label))
        err = ESP_ERR_INVALID_STATE;
    else if (!(m->img = read_partition(p)))
        err = ESP_FAIL;
    else if (aloft_lfs_mount(&m->fs, m->img, p->size, BLOCK_SIZE))
        err = ESP_FAIL; /* read-only: esp_littlefs does not format it */
    else if (fake_idf_vfs_register(m->base, &(struct fake_idf_vfs){.ctx = m, .stat = vfs_stat, .fopen = vfs_fopen}))
        err = ESP_ERR_INVALID_STATE;
    if (err == ESP_OK) {
        m->next = mounts;
        mounts = m;
    } else {
        put(m);
    }
    pthread_mutex_unlock(&lock);
    return err;
}

/* Files still open keep the image until they are closed. */
esp_err_t esp_vfs_littlefs_unregister(const char *partition_label)
{
    pthread_mutex_lock(&lock);
    struct mount **pm = &mounts;
    while (*pm && strcmp((*pm)->label, partition_label ? partition_label : ""))
        pm = &(*pm)->next;
    struct mount *m = *pm;
    if (m) {
        *pm = m->next;
        fake_idf_vfs_unregister(m->base);
        put(m);
    }
    pthread_mutex_unlock(&lock);
    return m ? ESP_OK : ESP_ERR_INVALID_STATE;
}

esp_err_t esp_littlefs_info(const char *partition_label, size_t *total_bytes, size_t *used_bytes)
{
    pthread_mutex_lock(&lock);
    struct mount *m = partition_label ? find(partition_label) : NULL;
    int used = m ? aloft_lfs_used_blocks(&m->fs) : 0;
    if (m && total_bytes)
        *total_bytes = (size_t)m->fs.block_size * m->fs.block_count;
    if (m && used_bytes && used >= 0)
        *used_bytes = (size_t)used * m->fs.block_size;
    pthread_mutex_unlock(&lock);
    return !m ? ESP_ERR_INVALID_STATE : used < 0 ? ESP_FAIL : ESP_OK;
}
