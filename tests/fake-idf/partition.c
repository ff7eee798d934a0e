/* fake-idf: esp_partition over the chip's flash file, with ESP-IDF's
 * checks: bounds (INVALID_ARG past the end, INVALID_SIZE running over it),
 * read-only partitions (NOT_ALLOWED), erases in whole 4 KB sectors, and
 * on an encrypted partition writes in whole 16-byte blocks, as
 * esp_flash_write_encrypted demands. NOR rules (erase to 0xFF, a write
 * only clears bits) are the POSIX port's. */
#include <stdlib.h>
#include <string.h>

#include "chip.h"

struct esp_partition_iterator_opaque_ {
    esp_partition_type_t type;
    esp_partition_subtype_t subtype;
    const char *label;
    uint32_t at; /* index in the chip's list of the current match */
};

static bool matches(const struct esp_partition_iterator_opaque_ *it, const esp_partition_t *p)
{
    return (it->type == ESP_PARTITION_TYPE_ANY || p->type == it->type) &&
           (it->subtype == ESP_PARTITION_SUBTYPE_ANY || p->subtype == it->subtype) &&
           (!it->label || !strcmp(p->label, it->label));
}

/* it at the first match from index from on, or released and NULL */
static esp_partition_iterator_t seek(esp_partition_iterator_t it, uint32_t from)
{
    struct fake_idf_chip *c = fake_idf_chip();
    for (uint32_t i = from; c && i < c->count; i++)
        if (matches(it, &c->part[i])) {
            it->at = i;
            return it;
        }
    free(it);
    return NULL;
}

esp_partition_iterator_t esp_partition_find(esp_partition_type_t type, esp_partition_subtype_t subtype,
                                            const char *label)
{
    esp_partition_iterator_t it = malloc(sizeof *it);
    if (!it)
        return NULL;
    *it = (struct esp_partition_iterator_opaque_){.type = type, .subtype = subtype, .label = label};
    return seek(it, 0);
}

const esp_partition_t *esp_partition_get(esp_partition_iterator_t iterator)
{
    return &fake_idf_chip()->part[iterator->at];
}

esp_partition_iterator_t esp_partition_next(esp_partition_iterator_t iterator)
{
    return seek(iterator, iterator->at + 1);
}

void esp_partition_iterator_release(esp_partition_iterator_t iterator)
{
    free(iterator);
}

static esp_err_t bounds(const esp_partition_t *p, size_t offset, size_t size)
{
    if (!p || offset > p->size)
        return ESP_ERR_INVALID_ARG;
    return size > p->size - offset ? ESP_ERR_INVALID_SIZE : ESP_OK;
}

static struct aloft_flash *flash_of(const esp_partition_t *p)
{
    return &p->flash_chip->pf.port;
}

esp_err_t esp_partition_read(const esp_partition_t *partition, size_t src_offset, void *dst, size_t size)
{
    esp_err_t err = bounds(partition, src_offset, size);
    if (err != ESP_OK)
        return err;
    struct aloft_flash *f = flash_of(partition);
    return f->read(f->ctx, partition->address + (uint32_t)src_offset, dst, size) ? ESP_FAIL : ESP_OK;
}

esp_err_t esp_partition_write(const esp_partition_t *partition, size_t dst_offset, const void *src, size_t size)
{
    esp_err_t err = bounds(partition, dst_offset, size);
    if (err != ESP_OK)
        return err;
    if (partition->readonly)
        return ESP_ERR_NOT_ALLOWED;
    if (partition->encrypted && (dst_offset % 16 || size % 16))
        return ESP_ERR_INVALID_ARG;
    struct aloft_flash *f = flash_of(partition);
    return f->write(f->ctx, partition->address + (uint32_t)dst_offset, src, size) ? ESP_FAIL : ESP_OK;
}

esp_err_t esp_partition_erase_range(const esp_partition_t *partition, size_t offset, size_t size)
{
    esp_err_t err = bounds(partition, offset, size);
    if (err != ESP_OK)
        return err;
    if (partition->readonly)
        return ESP_ERR_NOT_ALLOWED;
    if (offset % partition->erase_size)
        return ESP_ERR_INVALID_ARG;
    if (size % partition->erase_size)
        return ESP_ERR_INVALID_SIZE;
    struct aloft_flash *f = flash_of(partition);
    return f->erase(f->ctx, partition->address + (uint32_t)offset, size) ? ESP_FAIL : ESP_OK;
}
