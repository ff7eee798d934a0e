/* fake-idf: the VFS's path prefixes over the host's libc. Programs that
 * link fake_idf are linked with -Wl,--wrap=fopen,--wrap=stat, so these
 * take every such call of the program and pass those outside a
 * registered prefix on to libc. */
#include <pthread.h>
#include <stdbool.h>
#include <string.h>

#include "vfs.h"

#define MAX_FS 8    /* CONFIG_VFS_MAX_COUNT */
#define BASE_MAX 15 /* ESP_VFS_PATH_MAX */

FILE *__real_fopen(const char *path, const char *mode);
int __real_stat(const char *path, struct stat *st);

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char base[BASE_MAX + 1];
    struct fake_idf_vfs fs;
} table[MAX_FS];

int fake_idf_vfs_register(const char *base, const struct fake_idf_vfs *fs)
{
    int rc = -1;
    if (strlen(base) > BASE_MAX)
        return -1;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_FS; i++)
        if (!strcmp(table[i].base, base))
            goto out;
    for (int i = 0; i < MAX_FS && rc; i++)
        if (!table[i].base[0]) {
            strcpy(table[i].base, base);
            table[i].fs = *fs;
            rc = 0;
        }
out:
    pthread_mutex_unlock(&lock);
    return rc;
}

void fake_idf_vfs_unregister(const char *base)
{
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_FS; i++)
        if (table[i].base[0] && !strcmp(table[i].base, base))
            table[i].base[0] = 0;
    pthread_mutex_unlock(&lock);
}

/* The filesystem path is under, and the rest of path; false for the host's. */
static bool lookup(const char *path, struct fake_idf_vfs *fs, const char **rest)
{
    bool found = false;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < MAX_FS && !found; i++) {
        size_t n = strlen(table[i].base);
        if (n && !strncmp(path, table[i].base, n) && (path[n] == '/' || !path[n])) {
            *fs = table[i].fs;
            *rest = path + n;
            found = true;
        }
    }
    pthread_mutex_unlock(&lock);
    return found;
}

FILE *__wrap_fopen(const char *path, const char *mode)
{
    struct fake_idf_vfs fs;
    const char *rest;
    return path && lookup(path, &fs, &rest) ? fs.fopen(fs.ctx, rest, mode) : __real_fopen(path, mode);
}

int __wrap_stat(const char *path, struct stat *st)
{
    struct fake_idf_vfs fs;
    const char *rest;
    return path && lookup(path, &fs, &rest) ? fs.stat(fs.ctx, rest, st) : __real_stat(path, st);
}
