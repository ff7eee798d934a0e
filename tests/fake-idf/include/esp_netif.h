/* fake-idf: esp_netif.h — the network interface layer, as far as an
 * application starts it; the host's own network stands for lwIP. */
#pragma once

#include "esp_err.h"
#include "esp_event.h"

#ifndef FAKE_IDF_DECLS_CHECK
typedef struct esp_netif_obj esp_netif_t;
typedef enum {
    IP_EVENT_STA_GOT_IP,
    IP_EVENT_STA_LOST_IP,
} ip_event_t;
#endif

ESP_EVENT_DECLARE_BASE(IP_EVENT);

esp_err_t esp_netif_init(void);
