/* aloft on ESP-IDF: the agent's flash over esp_partition_*. The agent
 * speaks absolute addresses; each access is mapped onto the partition of
 * the table that holds it, so a write to an encrypted partition goes
 * through esp_partition_write, which encrypts, and nothing outside the
 * table (the bootloader, the table itself) can be reached.
 *
 * Flash encryption works on 16-byte blocks, each programmed once, while
 * the agent writes a body in whatever pieces the network delivers: for an
 * encrypted partition the bytes of a partial block wait here until it is
 * whole, as esp_ota_write does. ESP and LittleFS images are whole blocks
 * long, so a complete image leaves nothing waiting; a block still partial
 * is padded with 0xFF and written when something needs it (a read of it,
 * a write elsewhere). */
#include <string.h>

#include "aloft/err.h"
#include "glue.h"
#include "spi_flash_mmap.h"

#define BLOCK 16u

static int status(esp_err_t err)
{
    if (err == ESP_OK)
        return 0;
    return err == ESP_ERR_INVALID_ARG || err == ESP_ERR_INVALID_SIZE ? ALOFT_E_INVAL : ALOFT_E_IO;
}

/* The partition holding [addr, addr + len), or NULL. */
static const esp_partition_t *find(const struct aloft_idf_flash *f, uint32_t addr, size_t len)
{
    for (uint32_t i = 0; i < f->table->count; i++) {
        const struct aloft_part *p = &f->table->p[i];
        if (addr >= p->offset && addr - p->offset <= p->size && len <= p->size - (addr - p->offset))
            return f->part[i];
    }
    return NULL;
}

static bool pending_in(const struct aloft_idf_flash *f, uint32_t addr, size_t len)
{
    return f->pend_len && addr < f->pend_addr + BLOCK && f->pend_addr < addr + len;
}

static int flush(struct aloft_idf_flash *f)
{
    if (!f->pend_len)
        return 0;
    memset(f->pend + f->pend_len, 0xFF, BLOCK - f->pend_len);
    f->pend_len = 0;
    return status(esp_partition_write(f->pend_part, f->pend_addr - f->pend_part->address, f->pend, BLOCK));
}

static int write_blocks(struct aloft_idf_flash *f, const esp_partition_t *p, uint32_t addr, const uint8_t *s,
                        size_t len)
{
    int rc;
    if (f->pend_len && f->pend_part == p && addr == f->pend_addr + f->pend_len) {
        size_t k = BLOCK - f->pend_len < len ? BLOCK - f->pend_len : len;
        memcpy(f->pend + f->pend_len, s, k);
        f->pend_len = (uint8_t)(f->pend_len + k);
        addr += (uint32_t)k;
        s += k;
        len -= k;
        if (f->pend_len < BLOCK)
            return 0;
        f->pend_len = 0;
        if ((rc = status(esp_partition_write(p, f->pend_addr - p->address, f->pend, BLOCK))))
            return rc;
    } else if ((rc = flush(f))) {
        return rc;
    }
    if (addr % BLOCK) /* inside a block written before: encryption cannot add to it */
        return ALOFT_E_INVAL;
    size_t whole = len - len % BLOCK;
    if (whole && (rc = status(esp_partition_write(p, addr - p->address, s, whole))))
        return rc;
    if (len > whole) {
        f->pend_part = p;
        f->pend_addr = addr + (uint32_t)whole;
        f->pend_len = (uint8_t)(len - whole);
        memcpy(f->pend, s + whole, f->pend_len);
    }
    return 0;
}

static int flash_read(void *ctx, uint32_t addr, void *buf, size_t len)
{
    struct aloft_idf_flash *f = ctx;
    const esp_partition_t *p = find(f, addr, len);
    if (!p)
        return ALOFT_E_INVAL;
    int rc = pending_in(f, addr, len) ? flush(f) : 0;
    return rc ? rc : status(esp_partition_read(p, addr - p->address, buf, len));
}

static int flash_write(void *ctx, uint32_t addr, const void *buf, size_t len)
{
    struct aloft_idf_flash *f = ctx;
    const esp_partition_t *p = find(f, addr, len);
    if (!p)
        return ALOFT_E_INVAL;
    if (p->encrypted)
        return write_blocks(f, p, addr, buf, len);
    return status(esp_partition_write(p, addr - p->address, buf, len));
}

static int flash_erase(void *ctx, uint32_t addr, size_t len)
{
    struct aloft_idf_flash *f = ctx;
    const esp_partition_t *p = find(f, addr, len);
    if (!p)
        return ALOFT_E_INVAL;
    if (pending_in(f, addr, len)) /* erased with the rest */
        f->pend_len = 0;
    return status(esp_partition_erase_range(p, addr - p->address, len));
}

void aloft_idf_flash_init(struct aloft_idf_flash *f, const struct aloft_part_table *t, uint32_t size)
{
    f->table = t;
    f->pend_len = 0;
    f->port = (struct aloft_flash){
        .ctx = f,
        .read = flash_read,
        .write = flash_write,
        .erase = flash_erase,
        .size = size,
        .sector_size = SPI_FLASH_SEC_SIZE,
    };
}
