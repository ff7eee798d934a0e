/* aloft POSIX port: NOR flash in a file or in memory, with fault injection.
 * A file is mapped shared, so a killed process leaves exactly the bytes a
 * real flash would hold after the same power cut. */
#include "aloft_posix_flash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloft/err.h"

#define SECTOR 4096u

/* Count one operation; returns 1 when it may run fully, 0 when it is torn
 * (run half of it, then fail), -1 when power is gone. */
static int step(struct aloft_posix_flash *pf)
{
    if (pf->dead)
        return -1;
    pf->ops++;
    if (pf->cut_at && pf->ops >= pf->cut_at) {
        pf->dead = true;
        return pf->tear ? 0 : -1;
    }
    return 1;
}

static int flash_read(void *ctx, uint32_t addr, void *buf, size_t len)
{
    struct aloft_posix_flash *pf = ctx;
    if (pf->dead)
        return ALOFT_E_POWER;
    memcpy(buf, pf->mem + addr, len);
    return 0;
}

static int flash_write(void *ctx, uint32_t addr, const void *buf, size_t len)
{
    struct aloft_posix_flash *pf = ctx;
    const uint8_t *src = buf;
    uint8_t *dst = pf->mem + addr;
    /* Real NOR cannot turn a 0 into a 1: refuse loudly, before anything
     * changes, so a missing erase is a test failure and not a silent fix. */
    for (size_t i = 0; i < len; i++) {
        if (src[i] & ~dst[i]) {
            fprintf(stderr, "aloft-flash: program at 0x%08lx would set bits (0x%02x over 0x%02x): missing erase\n",
                    (unsigned long)(addr + i), src[i], dst[i]);
            return ALOFT_E_NOR;
        }
    }
    int s = step(pf);
    if (s < 0)
        return ALOFT_E_POWER;
    size_t n = s ? len : len / 2;
    for (size_t i = 0; i < n; i++)
        dst[i] &= src[i];
    pf->program_bytes += n;
    return s ? 0 : ALOFT_E_POWER;
}

static int flash_erase(void *ctx, uint32_t addr, size_t len)
{
    struct aloft_posix_flash *pf = ctx;
    for (size_t off = 0; off < len; off += SECTOR) {
        int s = step(pf);
        if (s < 0)
            return ALOFT_E_POWER;
        memset(pf->mem + addr + off, 0xFF, s ? SECTOR : SECTOR / 2);
        pf->erase_bytes += s ? SECTOR : SECTOR / 2;
        if (!s)
            return ALOFT_E_POWER;
    }
    return 0;
}

static void init_port(struct aloft_posix_flash *pf)
{
    pf->ops = pf->cut_at = 0;
    pf->tear = pf->dead = false;
    pf->erase_bytes = pf->program_bytes = 0;
    pf->port = (struct aloft_flash){
        .ctx = pf,
        .read = flash_read,
        .write = flash_write,
        .erase = flash_erase,
        .size = pf->size,
        .sector_size = SECTOR,
    };
}

int aloft_posix_flash_open(struct aloft_posix_flash *pf, const char *path, uint32_t size, bool create)
{
    int fd = open(path, create ? O_RDWR | O_CREAT : O_RDWR, 0644);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto fail;
    uint64_t old = (uint64_t)st.st_size;
    if (!create && size == 0)
        size = (uint32_t)old;
    if (size == 0 || size % SECTOR || (!create && old != size)) {
        errno = EINVAL;
        goto fail;
    }
    if (old != size && ftruncate(fd, size) != 0)
        goto fail;
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (mem == MAP_FAILED)
        goto fail;
    if (old < size) /* new flash reads as erased */
        memset((uint8_t *)mem + old, 0xFF, size - old);
    pf->mem = mem;
    pf->size = size;
    pf->fd = fd;
    init_port(pf);
    return 0;
fail:;
    int saved = errno;
    close(fd);
    errno = saved;
    return -1;
}

int aloft_posix_flash_mem(struct aloft_posix_flash *pf, uint32_t size)
{
    if (size == 0 || size % SECTOR) {
        errno = EINVAL;
        return -1;
    }
    void *mem = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return -1;
    memset(mem, 0xFF, size);
    pf->mem = mem;
    pf->size = size;
    pf->fd = -1;
    init_port(pf);
    return 0;
}

void aloft_posix_flash_close(struct aloft_posix_flash *pf)
{
    if (pf->mem)
        munmap(pf->mem, pf->size);
    if (pf->fd >= 0)
        close(pf->fd);
    pf->mem = NULL;
    pf->fd = -1;
}

void aloft_posix_flash_cut(struct aloft_posix_flash *pf, uint64_t n, bool tear)
{
    pf->cut_at = n;
    pf->tear = tear;
}

void aloft_posix_flash_power_on(struct aloft_posix_flash *pf)
{
    pf->dead = false;
    pf->cut_at = 0;
    pf->tear = false;
}
