/* fake-idf: esp_littlefs.h (joltwallet/esp_littlefs 1.22) — a partition's
 * LittleFS mounted read-only into the VFS (littlefs.c: read with the
 * host's LittleFS reader). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "esp_err.h"
#include "esp_partition.h"

#ifndef FAKE_IDF_DECLS_CHECK
typedef struct {
    const char *base_path;
    const char *partition_label;
    const esp_partition_t *partition;
    uint8_t format_if_mount_failed : 1;
    uint8_t read_only : 1;
    uint8_t dont_mount : 1;
    uint8_t grow_on_mount : 1;
} esp_vfs_littlefs_conf_t;
#endif

esp_err_t esp_vfs_littlefs_register(const esp_vfs_littlefs_conf_t *conf);
esp_err_t esp_vfs_littlefs_unregister(const char *partition_label);
esp_err_t esp_littlefs_info(const char *partition_label, size_t *total_bytes, size_t *used_bytes);
