/* fake-idf: nvs_flash.h — NVS's initialisation (nvs.c). */
#pragma once

#include "esp_err.h"

esp_err_t nvs_flash_init(void);
