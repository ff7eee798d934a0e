/* aloft: the port contract, the one boundary of the core.
 * A port fills struct aloft_flash; the core does everything else. */
#ifndef ALOFT_PORT_H
#define ALOFT_PORT_H

#include <stddef.h>
#include <stdint.h>

struct aloft_flash {
    void *ctx;
    /* Each returns 0 or a negative aloft_err (ALOFT_E_IO, ALOFT_E_POWER, ALOFT_E_NOR). */
    int (*read)(void *ctx, uint32_t addr, void *buf, size_t len);
    /* NOR program: may only clear bits. */
    int (*write)(void *ctx, uint32_t addr, const void *buf, size_t len);
    /* addr and len are multiples of sector_size. */
    int (*erase)(void *ctx, uint32_t addr, size_t len);
    uint32_t size;        /* bytes of flash */
    uint32_t sector_size; /* erase unit, 4096 on every ESP32 */
};

/* Bounds-checked wrappers used by the core: ALOFT_E_INVAL outside the flash
 * or, for erase, not sector-aligned. */
int aloft_flash_read(const struct aloft_flash *f, uint32_t addr, void *buf, size_t len);
int aloft_flash_write(const struct aloft_flash *f, uint32_t addr, const void *buf, size_t len);
int aloft_flash_erase(const struct aloft_flash *f, uint32_t addr, size_t len);

#endif
