/* fake-idf: esp_wifi.h — a station that joins at once: esp_wifi_start
 * posts WIFI_EVENT_STA_START, esp_wifi_connect IP_EVENT_STA_GOT_IP (the
 * host is on the network already); wifi.c. */
#pragma once

#include <stdint.h>

#include "esp_err.h"
#include "esp_event.h"
#include "esp_netif.h"

#ifndef FAKE_IDF_DECLS_CHECK
typedef struct {
    int magic;
} wifi_init_config_t;
#define WIFI_INIT_CONFIG_DEFAULT() {.magic = 0x1F2F3F4F}

typedef enum { WIFI_MODE_NULL, WIFI_MODE_STA, WIFI_MODE_AP, WIFI_MODE_APSTA } wifi_mode_t;
typedef enum { WIFI_IF_STA, WIFI_IF_AP } wifi_interface_t;
typedef union {
    struct {
        uint8_t ssid[32];
        uint8_t password[64];
    } sta;
} wifi_config_t;
typedef enum {
    WIFI_EVENT_WIFI_READY,
    WIFI_EVENT_SCAN_DONE,
    WIFI_EVENT_STA_START,
    WIFI_EVENT_STA_STOP,
    WIFI_EVENT_STA_CONNECTED,
    WIFI_EVENT_STA_DISCONNECTED,
} wifi_event_t;
#endif

ESP_EVENT_DECLARE_BASE(WIFI_EVENT);

esp_netif_t *esp_netif_create_default_wifi_sta(void);
esp_err_t esp_wifi_init(const wifi_init_config_t *config);
esp_err_t esp_wifi_set_mode(wifi_mode_t mode);
esp_err_t esp_wifi_set_config(wifi_interface_t interface, wifi_config_t *conf);
esp_err_t esp_wifi_start(void);
esp_err_t esp_wifi_connect(void);
