/* Stand-in for ESP-IDF v5.5.5's esp_crt_bundle.h (component mbedtls),
 * which the header kit leaves out with the rest of mbedTLS: the one
 * declaration aloft uses, as the real header has it. Only the compile test
 * reads this; an ESP-IDF build has the real header. */
#pragma once

#include "esp_err.h"

esp_err_t esp_crt_bundle_attach(void *conf);
