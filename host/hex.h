/* aloft host: bytes as lower-case hex, the form digests are shown and stored in. */
#ifndef ALOFT_HOST_HEX_H
#define ALOFT_HOST_HEX_H

#include <stddef.h>
#include <stdint.h>

/* Write n bytes as 2n hex digits and a NUL into out (2n + 1 bytes). */
void aloft_hex(const uint8_t *d, size_t n, char *out);

#endif
