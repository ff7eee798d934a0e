/* The only part of <string.h> the aloft core may use, for the freestanding
 * cross-builds of scripts/size.sh. The core is compiled against this instead
 * of a C library's header, so any other libc function is a compile error. */
#ifndef ALOFT_FREESTANDING_STRING_H
#define ALOFT_FREESTANDING_STRING_H

#include <stddef.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif
