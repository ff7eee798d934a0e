/* fake-idf: ESP-IDF's VFS, as far as the fakes need it — a filesystem
 * registered at a path prefix ("/www") takes the stdio and stat calls on
 * paths under it (vfs.c: -Wl,--wrap of fopen and stat); every other path
 * stays the host's. Not an ESP-IDF header. */
#pragma once

#include <stdio.h>
#include <sys/stat.h>

/* path is the rest after the prefix, "" or "/…". Both set errno and
 * return -1 / NULL on failure, as the libc calls they stand for. */
struct fake_idf_vfs {
    void *ctx;
    int (*stat)(void *ctx, const char *path, struct stat *st);
    FILE *(*fopen)(void *ctx, const char *path, const char *mode);
};

/* Returns 0, or -1 when base is registered already or the table is full
 * (ESP_ERR_INVALID_STATE / ESP_ERR_NO_MEM in ESP-IDF's esp_vfs_register). */
int fake_idf_vfs_register(const char *base, const struct fake_idf_vfs *fs);
void fake_idf_vfs_unregister(const char *base);
