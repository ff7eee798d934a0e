/* fake-idf: esp_log.h — ESP_LOGx as ESP-IDF's log v1 expands them, so the
 * glue calls the same two functions; esp_log prints to stdout. */
#pragma once

#include <inttypes.h>
#include <stdint.h>

#ifndef FAKE_IDF_DECLS_CHECK
typedef enum {
    ESP_LOG_NONE = 0,
    ESP_LOG_ERROR = 1,
    ESP_LOG_WARN = 2,
    ESP_LOG_INFO = 3,
    ESP_LOG_DEBUG = 4,
    ESP_LOG_VERBOSE = 5,
    ESP_LOG_MAX = 6,
} esp_log_level_t;

#define ESP_LOG_LEVEL_LEN (3)

typedef struct {
    union {
        struct {
            esp_log_level_t log_level : ESP_LOG_LEVEL_LEN;
            uint32_t constrained_env : 1;
            uint32_t require_formatting : 1;
            uint32_t dis_color : 1;
            uint32_t dis_timestamp : 1;
            uint32_t binary_mode : 1;
            uint32_t reserved : 24;
        } opts;
        uint32_t data;
    };
} esp_log_config_t;

#define ESP_LOG_CONFIG_INIT(configs) ((esp_log_config_t){.data = (configs)})
#define FAKE_IDF_LOG(level, letter, tag, format, ...)                                                          \
    esp_log(ESP_LOG_CONFIG_INIT(level), tag, #letter " (%" PRIu32 ") %s: " format "\n", esp_log_timestamp(), \
            tag __VA_OPT__(, ) __VA_ARGS__)
#define ESP_LOGE(tag, format, ...) FAKE_IDF_LOG(ESP_LOG_ERROR, E, tag, format __VA_OPT__(, ) __VA_ARGS__)
#define ESP_LOGW(tag, format, ...) FAKE_IDF_LOG(ESP_LOG_WARN, W, tag, format __VA_OPT__(, ) __VA_ARGS__)
#define ESP_LOGI(tag, format, ...) FAKE_IDF_LOG(ESP_LOG_INFO, I, tag, format __VA_OPT__(, ) __VA_ARGS__)
#define ESP_LOGD(tag, format, ...) FAKE_IDF_LOG(ESP_LOG_DEBUG, D, tag, format __VA_OPT__(, ) __VA_ARGS__)
#endif

uint32_t esp_log_timestamp(void);
void esp_log(esp_log_config_t config, const char *tag, const char *format, ...);
