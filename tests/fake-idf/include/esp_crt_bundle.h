/* fake-idf: esp_crt_bundle.h — the certificate bundle HTTPS and MQTTS
 * trust when no CA is given (crt_bundle.c). */
#pragma once

#include "esp_err.h"

esp_err_t esp_crt_bundle_attach(void *conf);
