/* fake-idf: the chip's power-on — open the flash file and do what the
 * second-stage bootloader does (aloft_boot_select: otadata's choice, NEW →
 * PENDING_VERIFY, PENDING_VERIFY → ABORTED with rollback on, verification
 * and fallback), once per process, as each process is one boot.
 * FAKE_IDF_FLASH_ENCRYPTION=1 flags the app slots and otadata encrypted,
 * as flash encryption does, so writes must come in whole 16-byte blocks. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "chip.h"
#include "spi_flash_mmap.h"

static struct esp_flash_t flash = {.pf = {.fd = -1}};
esp_flash_t *esp_flash_default_chip = &flash;

static struct fake_idf_chip chip;
static struct fake_idf_chip *booted;
static pthread_once_t once = PTHREAD_ONCE_INIT;

static void add(uint8_t type, uint8_t subtype, uint32_t offset, uint32_t size, const char *label, uint32_t flags)
{
    esp_partition_t *p = &chip.part[chip.count++];
    bool encrypted = getenv("FAKE_IDF_FLASH_ENCRYPTION") && !strcmp(getenv("FAKE_IDF_FLASH_ENCRYPTION"), "1") &&
                     (type == ESP_PARTITION_TYPE_APP || (type == ESP_PARTITION_TYPE_DATA && subtype == ESP_PARTITION_SUBTYPE_DATA_OTA));
    *p = (esp_partition_t){
        .flash_chip = esp_flash_default_chip,
        .type = (esp_partition_type_t)type,
        .subtype = (esp_partition_subtype_t)subtype,
        .address = offset,
        .size = size,
        .erase_size = SPI_FLASH_SEC_SIZE,
        .encrypted = encrypted || (flags & ALOFT_PART_FLAG_ENCRYPTED),
        .readonly = (flags & ALOFT_PART_FLAG_READONLY) != 0,
    };
    snprintf(p->label, sizeof p->label, "%s", label);
}

static void power_on(void)
{
    const char *path = getenv("FAKE_IDF_FLASH");
    int rc;
    if (!path || aloft_posix_flash_open(&flash.pf, path, 0, false) != 0) {
        fprintf(stderr, "fake-idf: no flash: set FAKE_IDF_FLASH to a flash image (aloft flash init)\n");
        return;
    }
    if ((rc = aloft_boot_init(&chip.boot, &flash.pf.port, ALOFT_PART_TABLE_OFFSET, FAKE_IDF_CHIP_ID, true))) {
        fprintf(stderr, "fake-idf: %s: no valid partition table: %s\n", path, aloft_strerror(rc));
        return;
    }
    for (uint32_t i = 0; i < chip.boot.table.count; i++) {
        const struct aloft_part *e = &chip.boot.table.p[i];
        add(e->type, e->subtype, e->offset, e->size, e->label, e->flags);
    }
    add(ESP_PARTITION_TYPE_BOOTLOADER, 0, 0, ALOFT_PART_TABLE_OFFSET, "bootloader", 0);
    add(ESP_PARTITION_TYPE_PARTITION_TABLE, 0, ALOFT_PART_TABLE_OFFSET, SPI_FLASH_SEC_SIZE, "partition_table", 0);
    if ((rc = aloft_boot_select(&chip.boot)))
        fprintf(stderr, "fake-idf: the bootloader found no app to boot: %s\n", aloft_strerror(rc));
    else
        chip.running = &chip.part[chip.boot.running - chip.boot.table.p];
    booted = &chip;
}

struct fake_idf_chip *fake_idf_chip(void)
{
    pthread_once(&once, power_on);
    return booted;
}

esp_err_t esp_flash_get_size(esp_flash_t *c, uint32_t *out_size)
{
    if ((c && c != esp_flash_default_chip) || !out_size || !fake_idf_chip())
        return ESP_ERR_INVALID_ARG;
    *out_size = flash.pf.size;
    return ESP_OK;
}
