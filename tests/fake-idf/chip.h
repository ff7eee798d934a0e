/* fake-idf: the chip the fakes share — its flash, a file named by
 * FAKE_IDF_FLASH (made by `aloft flash init` or aloft-node --create), and
 * what the second-stage bootloader chose from it when this process (one
 * boot) started. Not an ESP-IDF header. */
#pragma once

#include "aloft/boot.h"
#include "aloft_posix_flash.h"
#include "esp_partition.h"

#define FAKE_IDF_CHIP_ID 0x0005u /* ESP32-C3, what the glue is built for */

struct esp_flash_t {
    struct aloft_posix_flash pf;
};

struct fake_idf_chip {
    struct aloft_boot boot;
    /* the table's partitions, then the bootloader and the table itself,
     * which ESP-IDF 5.3 on lists too */
    esp_partition_t part[ALOFT_PART_MAX + 2];
    uint32_t count;
    const esp_partition_t *running; /* NULL: nothing verified */
};

/* The chip, booted on first use; NULL (and a line on stderr) when the
 * flash file cannot be opened or holds no valid partition table. */
struct fake_idf_chip *fake_idf_chip(void);

/* The PEM file of the CAs in the chip's certificate bundle, or NULL for
 * the system's (crt_bundle.c). */
const char *fake_idf_ca_bundle(void);
