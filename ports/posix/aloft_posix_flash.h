/* aloft POSIX port: a NOR flash in a file (or in memory) with real NOR rules
 * and fault injection: erase sets 0xFF, programming may only clear bits,
 * every erase of a sector and every program is one counted operation, and
 * power can be cut before operation N, optionally tearing operation N. */
#ifndef ALOFT_POSIX_FLASH_H
#define ALOFT_POSIX_FLASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/port.h"

/* Datasheet times of a typical ESP32 SPI NOR flash (GD25Q/W25Q class). */
struct aloft_posix_timing {
    uint32_t sector_erase_us; /* 4 KB */
    uint32_t block_erase_us;  /* 64 KB, used for aligned 64 KB runs as ESP-IDF does */
    uint32_t page_program_us; /* 256 B page */
};

extern const struct aloft_posix_timing aloft_posix_timing_esp32;

struct aloft_posix_flash {
    uint8_t *mem;       /* the whole flash in memory; NULL for a file */
    uint32_t size;
    int fd;             /* the flash file (read and written in place), or -1 */
    const struct aloft_posix_timing *timing; /* NULL: no delays */
    uint64_t busy_us;   /* time the emulated chip spent erasing and programming */
    uint64_t ops;       /* erase-sector and program operations done */
    uint64_t cut_at;    /* power fails at operation number cut_at (1-based); 0 = never */
    bool tear;          /* the cut operation is half done instead of not done */
    bool dead;          /* power is gone: every operation fails with ALOFT_E_POWER */
    uint64_t erase_bytes, program_bytes; /* totals, for benchmarks */
    struct aloft_flash port;
};

/* Open (and with create, make or resize to size bytes of 0xFF) a flash file.
 * size 0 with !create takes the file's size. The file is read and written
 * in place (no mapping), so a process killed at any point leaves exactly
 * the bytes written so far and memory use does not grow with the flash.
 * Returns 0 or -1 with errno. */
int aloft_posix_flash_open(struct aloft_posix_flash *pf, const char *path, uint32_t size, bool create);

/* A flash in memory, all 0xFF. Returns 0 or -1. */
int aloft_posix_flash_mem(struct aloft_posix_flash *pf, uint32_t size);

/* Unmap and close. */
void aloft_posix_flash_close(struct aloft_posix_flash *pf);

/* Cut power before operation n (counting from the current ops + 1 is the
 * caller's job: n is absolute). tear: perform half of that operation first
 * (a program's first half of bytes, a sector's first half erased). */
void aloft_posix_flash_cut(struct aloft_posix_flash *pf, uint64_t n, bool tear);

/* Power back: clears dead and any pending cut. */
void aloft_posix_flash_power_on(struct aloft_posix_flash *pf);

#endif
