/* fake-idf: freertos/event_groups.h — the event groups an application
 * waits on (the example waits for its IP address); tasks.c. */
#pragma once

#include "freertos/FreeRTOS.h"

#ifndef FAKE_IDF_DECLS_CHECK
typedef TickType_t EventBits_t;
struct EventGroupDef_t;
typedef struct EventGroupDef_t *EventGroupHandle_t;
#endif

EventGroupHandle_t xEventGroupCreate(void);
EventBits_t xEventGroupWaitBits(EventGroupHandle_t xEventGroup, const EventBits_t uxBitsToWaitFor,
                                const BaseType_t xClearOnExit, const BaseType_t xWaitForAllBits,
                                TickType_t xTicksToWait);
EventBits_t xEventGroupSetBits(EventGroupHandle_t xEventGroup, const EventBits_t uxBitsToSet);
