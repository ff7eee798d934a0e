/* aloft host: whole-file helpers for the programs. */
#ifndef ALOFT_HOST_FILE_H
#define ALOFT_HOST_FILE_H

#include <stddef.h>
#include <stdint.h>

/* Read a whole file into a malloc'd buffer (NUL-terminated one past len).
 * Returns 0, or -1 with errno set (EISDIR for a directory). */
int aloft_file_read(const char *path, uint8_t **data, size_t *len);

/* Write data to path atomically: a temporary file beside it, fsync, rename.
 * "-" writes to standard output. Returns 0, or -1 with errno set. */
int aloft_file_write(const char *path, const void *data, size_t len);

/* Parse a size such as 4096, 0x1000, 64K, 4M or 4MB (K = 1024). Returns 0 or -1. */
int aloft_parse_size(const char *s, uint32_t *out);

#endif
