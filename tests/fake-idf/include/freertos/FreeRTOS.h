/* fake-idf: freertos/FreeRTOS.h — the types and constants of FreeRTOS as
 * ESP-IDF configures it for a RISC-V chip (tasks.c: over pthreads). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#ifndef FAKE_IDF_DECLS_CHECK
typedef int BaseType_t;
typedef unsigned int UBaseType_t;
typedef uint32_t TickType_t;

#define portMAX_DELAY (TickType_t)0xffffffffUL
#define configTICK_RATE_HZ 100 /* CONFIG_FREERTOS_HZ */
#define configSTACK_DEPTH_TYPE uint32_t
#define portTICK_PERIOD_MS ((TickType_t)(1000 / configTICK_RATE_HZ))
#define pdMS_TO_TICKS(xTimeInMs) \
    ((TickType_t)(((TickType_t)(xTimeInMs) * (TickType_t)configTICK_RATE_HZ) / (TickType_t)1000U))

#define pdFALSE ((BaseType_t)0)
#define pdTRUE ((BaseType_t)1)
#define pdPASS (pdTRUE)
#define pdFAIL (pdFALSE)
#endif

#include "esp_bit_defs.h"
#include "freertos/task.h"
