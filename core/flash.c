/* aloft: bounds-checked access to the port's flash. Every flash access of
 * the core goes through here, so a bad offset from corrupt data becomes an
 * error, never an out-of-range call into the port. */
#include "aloft/err.h"
#include "aloft/port.h"

static int in_range(const struct aloft_flash *f, uint32_t addr, size_t len)
{
    return f && addr <= f->size && len <= f->size - addr;
}

int aloft_flash_read(const struct aloft_flash *f, uint32_t addr, void *buf, size_t len)
{
    if (!in_range(f, addr, len))
        return ALOFT_E_INVAL;
    return len ? f->read(f->ctx, addr, buf, len) : 0;
}

int aloft_flash_write(const struct aloft_flash *f, uint32_t addr, const void *buf, size_t len)
{
    if (!in_range(f, addr, len))
        return ALOFT_E_INVAL;
    return len ? f->write(f->ctx, addr, buf, len) : 0;
}

int aloft_flash_erase(const struct aloft_flash *f, uint32_t addr, size_t len)
{
    if (!in_range(f, addr, len) || addr % f->sector_size || len % f->sector_size)
        return ALOFT_E_INVAL;
    return len ? f->erase(f->ctx, addr, len) : 0;
}
