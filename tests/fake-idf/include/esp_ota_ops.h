/* fake-idf: esp_ota_ops.h — what the glue asks of app_update (ota.c: the
 * bootloader's choice, made at start-up over the flash file). */
#pragma once

#include "esp_err.h"
#include "esp_partition.h"

const esp_partition_t *esp_ota_get_running_partition(void);
esp_err_t esp_ota_mark_app_valid_cancel_rollback(void);
