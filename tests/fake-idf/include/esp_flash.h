/* fake-idf: esp_flash.h — the main flash chip, opaque to the glue. */
#pragma once

#include <stdint.h>

#include "esp_err.h"

#ifndef FAKE_IDF_DECLS_CHECK
typedef struct esp_flash_t esp_flash_t;
#endif

extern esp_flash_t *esp_flash_default_chip;
esp_err_t esp_flash_get_size(esp_flash_t *chip, uint32_t *out_size);
