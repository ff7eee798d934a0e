/* fake-idf: esp_netif.h — the network interface layer, as far as an
 * application starts it; the host's own network stands for lwIP. */
#pragma once

#include "esp_err.h"
#include "esp_event.h"

#ifndef FAKE_IDF_DECLS_CHECK
#include <stdint.h>

typedef struct esp_netif_obj esp_netif_t;
typedef struct esp_ip4_addr {
    uint32_t addr; /* network order */
} esp_ip4_addr_t;
typedef struct {
    esp_ip4_addr_t ip, netmask, gw;
} esp_netif_ip_info_t;
typedef enum {
    IP_EVENT_STA_GOT_IP,
    IP_EVENT_STA_LOST_IP,
} ip_event_t;
#endif

ESP_EVENT_DECLARE_BASE(IP_EVENT);

esp_err_t esp_netif_init(void);
esp_netif_t *esp_netif_get_default_netif(void);
/* the station's address: the device's own, FAKE_IDF_IP, once it got one */
esp_err_t esp_netif_get_ip_info(esp_netif_t *esp_netif, esp_netif_ip_info_t *ip_info);
