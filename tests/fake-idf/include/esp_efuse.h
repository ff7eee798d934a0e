/* fake-idf: esp_efuse.h — the anti-rollback counter (crypto.c). */
#pragma once

#include <stdint.h>

uint32_t esp_efuse_read_secure_version(void);
