/* aloft POSIX port: NOR flash in a file or in memory, with fault injection
 * and optional datasheet timing. A file is written in place with pwrite, so
 * a killed process leaves exactly the bytes a real flash would hold after
 * the same power cut. */
#include "aloft_posix_flash.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aloft/err.h"

#define SECTOR 4096u
#define BLOCK 65536u
#define PAGE 256u

const struct aloft_posix_timing aloft_posix_timing_esp32 = {
    .sector_erase_us = 45000,
    .block_erase_us = 150000,
    .page_program_us = 400,
};

static void busy(struct aloft_posix_flash *pf, uint64_t us)
{
    pf->busy_us += us;
    struct timespec ts = {.tv_sec = (time_t)(us / 1000000), .tv_nsec = (long)(us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

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

static int load(struct aloft_posix_flash *pf, uint32_t addr, void *buf, size_t len)
{
    if (pf->mem) {
        memcpy(buf, pf->mem + addr, len);
        return 0;
    }
    return pread(pf->fd, buf, len, addr) == (ssize_t)len ? 0 : ALOFT_E_IO;
}

static int store(struct aloft_posix_flash *pf, uint32_t addr, const void *buf, size_t len)
{
    if (pf->mem) {
        memcpy(pf->mem + addr, buf, len);
        return 0;
    }
    return pwrite(pf->fd, buf, len, addr) == (ssize_t)len ? 0 : ALOFT_E_IO;
}

static int flash_read(void *ctx, uint32_t addr, void *buf, size_t len)
{
    struct aloft_posix_flash *pf = ctx;
    return pf->dead ? ALOFT_E_POWER : load(pf, addr, buf, len);
}

/* Program: new = old & src, page by page. Real NOR cannot turn a 0 into a
 * 1, so such a write is refused loudly before anything changes: a missing
 * erase is a test failure and not a silent fix. */
static int flash_write(void *ctx, uint32_t addr, const void *buf, size_t len)
{
    struct aloft_posix_flash *pf = ctx;
    const uint8_t *src = buf;
    uint8_t old[PAGE];
    for (size_t off = 0; off < len; off += PAGE) {
        size_t n = len - off < PAGE ? len - off : PAGE;
        int rc = flash_read(pf, addr + (uint32_t)off, old, n);
        if (rc)
            return rc;
        for (size_t i = 0; i < n; i++) {
            if (src[off + i] & ~old[i]) {
                fprintf(stderr, "aloft-flash: program at 0x%08lx would set bits (0x%02x over 0x%02x): missing erase\n",
                        (unsigned long)(addr + off + i), src[off + i], old[i]);
                return ALOFT_E_NOR;
            }
        }
    }
    int s = step(pf);
    if (s < 0)
        return ALOFT_E_POWER;
    size_t done = s ? len : len / 2;
    for (size_t off = 0; off < done; off += PAGE) {
        size_t n = done - off < PAGE ? done - off : PAGE;
        int rc = load(pf, addr + (uint32_t)off, old, n);
        for (size_t i = 0; rc == 0 && i < n; i++)
            old[i] &= src[off + i];
        if (rc == 0)
            rc = store(pf, addr + (uint32_t)off, old, n);
        if (rc)
            return rc;
    }
    pf->program_bytes += done;
    if (pf->timing) /* pages touched, as the chip programs them */
        busy(pf, (uint64_t)pf->timing->page_program_us * ((addr % PAGE + done + PAGE - 1) / PAGE));
    return s ? 0 : ALOFT_E_POWER;
}

static int flash_erase(void *ctx, uint32_t addr, size_t len)
{
    struct aloft_posix_flash *pf = ctx;
    uint8_t ff[SECTOR];
    memset(ff, 0xFF, sizeof ff);
    uint32_t covered = 0; /* bytes still erased by the last timed command */
    for (size_t off = 0; off < len; off += SECTOR) {
        int s = step(pf);
        if (s < 0)
            return ALOFT_E_POWER;
        int rc = store(pf, addr + (uint32_t)off, ff, s ? SECTOR : SECTOR / 2);
        if (rc)
            return rc;
        pf->erase_bytes += s ? SECTOR : SECTOR / 2;
        if (!s)
            return ALOFT_E_POWER;
        if (pf->timing && covered == 0) {
            /* an aligned 64 KB run is one block-erase command, as ESP-IDF issues it */
            bool block = (addr + off) % BLOCK == 0 && len - off >= BLOCK;
            busy(pf, block ? pf->timing->block_erase_us : pf->timing->sector_erase_us);
            covered = block ? BLOCK : SECTOR;
        }
        if (pf->timing)
            covered -= SECTOR;
    }
    return 0;
}

static void init_port(struct aloft_posix_flash *pf)
{
    pf->ops = pf->cut_at = 0;
    pf->tear = pf->dead = false;
    pf->erase_bytes = pf->program_bytes = 0;
    pf->timing = NULL;
    pf->busy_us = 0;
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
    int fd = open(path, (create ? O_RDWR | O_CREAT : O_RDWR) | O_CLOEXEC, 0644);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) != 0)
        goto fail;
    uint64_t old = (uint64_t)st.st_size;
    if (!create && size == 0 && old <= 0xFFFFF000u)
        size = (uint32_t)old;
    if (size == 0 || size % SECTOR || (!create && old != size)) {
        errno = EINVAL;
        goto fail;
    }
    if (old > size && ftruncate(fd, size) != 0)
        goto fail;
    pf->mem = NULL;
    pf->fd = fd;
    pf->size = size;
    init_port(pf);
    /* new flash reads as erased */
    uint8_t ff[SECTOR];
    memset(ff, 0xFF, sizeof ff);
    for (uint64_t a = old; a < size; a += SECTOR - a % SECTOR)
        if (store(pf, (uint32_t)a, ff, SECTOR - a % SECTOR) != 0)
            goto fail;
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
