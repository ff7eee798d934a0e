/* fake-idf: FreeRTOS event groups over a mutex and a condition variable. */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "freertos/event_groups.h"

struct EventGroupDef_t {
    pthread_mutex_t lock;
    pthread_cond_t changed;
    EventBits_t bits;
};

EventGroupHandle_t xEventGroupCreate(void)
{
    EventGroupHandle_t g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    pthread_mutex_init(&g->lock, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&g->changed, &a);
    pthread_condattr_destroy(&a);
    return g;
}

EventBits_t xEventGroupSetBits(EventGroupHandle_t xEventGroup, const EventBits_t uxBitsToSet)
{
    pthread_mutex_lock(&xEventGroup->lock);
    EventBits_t now = xEventGroup->bits |= uxBitsToSet;
    pthread_cond_broadcast(&xEventGroup->changed);
    pthread_mutex_unlock(&xEventGroup->lock);
    return now;
}

EventBits_t xEventGroupWaitBits(EventGroupHandle_t xEventGroup, const EventBits_t uxBitsToWaitFor,
                                const BaseType_t xClearOnExit, const BaseType_t xWaitForAllBits,
                                TickType_t xTicksToWait)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    uint64_t ms = (uint64_t)xTicksToWait * portTICK_PERIOD_MS;
    until.tv_sec += (time_t)(ms / 1000);
    until.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&xEventGroup->lock);
    for (;;) {
        EventBits_t got = xEventGroup->bits & uxBitsToWaitFor;
        if (xWaitForAllBits ? got == uxBitsToWaitFor : got != 0)
            break;
        if (xTicksToWait == portMAX_DELAY)
            pthread_cond_wait(&xEventGroup->changed, &xEventGroup->lock);
        else if (pthread_cond_timedwait(&xEventGroup->changed, &xEventGroup->lock, &until))
            break;
    }
    EventBits_t bits = xEventGroup->bits;
    if (xClearOnExit && ((bits & uxBitsToWaitFor) == uxBitsToWaitFor || (!xWaitForAllBits && (bits & uxBitsToWaitFor))))
        xEventGroup->bits &= ~uxBitsToWaitFor;
    pthread_mutex_unlock(&xEventGroup->lock);
    return bits;
}
