/* fake-idf: freertos/semphr.h — mutexes, through the queue functions the
 * real macros call. */
#pragma once

#include "freertos/FreeRTOS.h"

#ifndef FAKE_IDF_DECLS_CHECK
typedef struct QueueDefinition *QueueHandle_t;
typedef QueueHandle_t SemaphoreHandle_t;

#define queueSEND_TO_BACK ((BaseType_t)0)
#define queueQUEUE_TYPE_MUTEX ((uint8_t)1U)
#define semGIVE_BLOCK_TIME ((TickType_t)0U)

#define xSemaphoreCreateMutex() xQueueCreateMutex(queueQUEUE_TYPE_MUTEX)
#define xSemaphoreTake(xSemaphore, xBlockTime) xQueueSemaphoreTake((xSemaphore), (xBlockTime))
#define xSemaphoreGive(xSemaphore) \
    xQueueGenericSend((QueueHandle_t)(xSemaphore), NULL, semGIVE_BLOCK_TIME, queueSEND_TO_BACK)
#endif

QueueHandle_t xQueueCreateMutex(const uint8_t ucQueueType);
BaseType_t xQueueSemaphoreTake(QueueHandle_t xQueue, TickType_t xTicksToWait);
BaseType_t xQueueGenericSend(QueueHandle_t xQueue, const void *const pvItemToQueue, TickType_t xTicksToWait,
                             const BaseType_t xCopyPosition);
