/* fake-idf: esp_event.h — the handler type esp-mqtt's events are
 * delivered through (mqtt.c calls handlers directly, no event loop). */
#pragma once

#include <stdint.h>

#ifndef FAKE_IDF_DECLS_CHECK
typedef const char *esp_event_base_t;
typedef void (*esp_event_handler_t)(void *event_handler_arg, esp_event_base_t event_base, int32_t event_id,
                                    void *event_data);
#endif
