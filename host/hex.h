/* aloft host: bytes as lower-case hex, the form digests are shown and stored in. */
#ifndef ALOFT_HOST_HEX_H
#define ALOFT_HOST_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Write n bytes as 2n hex digits and a NUL into out (2n + 1 bytes). */
void aloft_hex(const uint8_t *d, size_t n, char *out);

/* The SHA-256 of len bytes as 64 hex digits and a NUL: how aloft names a
 * file (aloftd's /firmware/<sha256>.bin, a trigger's "sha256"). */
void aloft_sha256_hex(const void *data, size_t len, char out[65]);

#endif
