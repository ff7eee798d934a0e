/* fake-idf: esp_event.h — the default event loop an application registers
 * its Wi-Fi and IP handlers on (wifi.c: handlers run on the loop's own
 * task, as on a chip); esp-mqtt's events are delivered by mqtt.c itself. */
#pragma once

#include <stdint.h>

#include "esp_err.h"

#ifndef FAKE_IDF_DECLS_CHECK
typedef const char *esp_event_base_t;
typedef void (*esp_event_handler_t)(void *event_handler_arg, esp_event_base_t event_base, int32_t event_id,
                                    void *event_data);
#define ESP_EVENT_ANY_ID -1
#define ESP_EVENT_DECLARE_BASE(id) extern esp_event_base_t const id
#endif

esp_err_t esp_event_loop_create_default(void);
esp_err_t esp_event_handler_register(esp_event_base_t event_base, int32_t event_id,
                                     esp_event_handler_t event_handler, void *event_handler_arg);
