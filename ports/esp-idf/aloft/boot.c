/* aloft on ESP-IDF: struct aloft_boot from what the real bootloader left.
 * It chose the app and already moved otadata on (NEW → PENDING_VERIFY,
 * PENDING_VERIFY → ABORTED), so aloft_boot_select must not run here: it
 * would do the bootloader's work a second time and abort the new app. The
 * agent needs the table, the running slot and whether otadata chose it. */
#include <stdio.h>

#include "aloft/otadata.h"
#include "esp_flash.h"
#include "esp_ota_ops.h"
#include "glue.h"

/* The table as esp_partition has it (IDF checked it; flash encryption is
 * its business): the app and data partitions of the main flash, in table
 * order. The bootloader and the table itself (IDF 5.3 on lists them) are
 * never the agent's to write; a partition on another chip has addresses
 * of its own. */
static void read_table(struct aloft_part_table *t, struct aloft_idf_flash *f)
{
    esp_partition_iterator_t it = esp_partition_find(ESP_PARTITION_TYPE_ANY, ESP_PARTITION_SUBTYPE_ANY, NULL);
    for (; it && t->count < ALOFT_PART_MAX; it = esp_partition_next(it)) {
        const esp_partition_t *p = esp_partition_get(it);
        if (p->type > ESP_PARTITION_TYPE_DATA || p->flash_chip != esp_flash_default_chip)
            continue;
        struct aloft_part *e = &t->p[t->count];
        e->type = (uint8_t)p->type;
        e->subtype = (uint8_t)p->subtype;
        e->offset = p->address;
        e->size = p->size;
        snprintf(e->label, sizeof e->label, "%s", p->label);
        e->flags = p->encrypted ? ALOFT_PART_FLAG_ENCRYPTED : 0;
        f->part[t->count++] = p;
    }
    if (it) /* stopped early; at the end esp_partition_next released it */
        esp_partition_iterator_release(it);
}

/* Did otadata choose the running app (the agent's confirm and state need
 * to know), or did the bootloader take a default or fall back? */
static uint8_t why(const struct aloft_boot *b)
{
    uint32_t n = aloft_part_ota_count(&b->table);
    struct aloft_otadata od;
    if (!b->otadata || !n || aloft_otadata_read(b->flash, b->otadata, &od))
        return ALOFT_BOOT_DEFAULT;
    int i = aloft_otadata_active(&od);
    if (i < 0)
        return ALOFT_BOOT_DEFAULT;
    return aloft_part_ota(&b->table, aloft_otadata_slot(&od.e[i], n)) == b->running ? ALOFT_BOOT_OTADATA
                                                                                   : ALOFT_BOOT_FALLBACK;
}

esp_err_t aloft_idf_boot_init(struct aloft_boot *b, struct aloft_idf_flash *f)
{
    uint32_t size = 0;
    esp_err_t err = esp_flash_get_size(NULL, &size);
    if (err != ESP_OK)
        return err;
    *b = (struct aloft_boot){
        .table_offset = CONFIG_PARTITION_TABLE_OFFSET,
        .chip = CONFIG_IDF_FIRMWARE_CHIP_ID, /* ESP's chip ids are aloft's */
#ifdef CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE
        .rollback = true,
#endif
    };
    read_table(&b->table, f);
    aloft_idf_flash_init(f, &b->table, size);
    b->flash = &f->port;
    b->otadata = aloft_part_find(&b->table, ALOFT_PART_DATA, ALOFT_PART_OTADATA);
    const esp_partition_t *run = esp_ota_get_running_partition();
    for (uint32_t i = 0; run && i < b->table.count; i++)
        if (f->part[i]->address == run->address)
            b->running = &b->table.p[i];
    if (!b->running)
        return ESP_ERR_NOT_FOUND;
    b->why = why(b);
    return ESP_OK;
}
