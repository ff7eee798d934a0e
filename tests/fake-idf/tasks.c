/* fake-idf: FreeRTOS tasks, delays, ticks, notifications and mutexes over
 * pthreads — what the glue uses, with FreeRTOS's semantics: a task's
 * notification value, bits set by eSetBits, cleared on entry and exit of a
 * wait; a mutex taken with a timeout in ticks (100 Hz). */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"
#include "freertos/task.h"

struct tskTaskControlBlock {
    struct tskTaskControlBlock *next; /* every control block ever made (tasks) */
    TaskFunction_t fn;
    void *arg;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    uint32_t value;
    bool pending;
};

struct QueueDefinition {
    pthread_mutex_t lock;
};

static _Thread_local TaskHandle_t self;
/* Control blocks are never freed (vTaskDelete says why); the list keeps
 * them reachable, as FreeRTOS's own task lists do. */
static TaskHandle_t tasks;
static pthread_mutex_t tasks_lock = PTHREAD_MUTEX_INITIALIZER;

static TaskHandle_t tcb_new(TaskFunction_t fn, void *arg)
{
    TaskHandle_t t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->fn = fn;
    t->arg = arg;
    pthread_mutex_init(&t->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&t->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_lock(&tasks_lock);
    t->next = tasks;
    tasks = t;
    pthread_mutex_unlock(&tasks_lock);
    return t;
}

/* A thread the fakes did not start (main, libmicrohttpd's, …) gets its
 * control block when it first needs one. */
static TaskHandle_t current(void)
{
    if (!self)
        self = tcb_new(NULL, NULL);
    return self;
}

static void *run(void *p)
{
    self = p;
    self->fn(self->arg);
    return NULL; /* a FreeRTOS task must not return; vTaskDelete ends it */
}

BaseType_t xTaskCreatePinnedToCore(TaskFunction_t pxTaskCode, const char *const pcName,
                                   const configSTACK_DEPTH_TYPE usStackDepth, void *const pvParameters,
                                   UBaseType_t uxPriority, TaskHandle_t *const pvCreatedTask, const BaseType_t xCoreID)
{
    (void)pcName, (void)uxPriority, (void)xCoreID;
    TaskHandle_t t = tcb_new(pxTaskCode, pvParameters);
    pthread_attr_t a;
    pthread_t th;
    if (!t)
        return pdFAIL;
    pthread_attr_init(&a);
    pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
    /* the requested stack plus room for the host's libc, at least its minimum */
    pthread_attr_setstacksize(&a, usStackDepth + 64 * 1024);
    int rc = pthread_create(&th, &a, run, t);
    pthread_attr_destroy(&a);
    if (rc) /* its control block stays on the list, unused */
        return pdFAIL;
    if (pvCreatedTask)
        *pvCreatedTask = t;
    return pdPASS;
}

/* The control block stays: another task may still hold its handle and
 * notify it, which FreeRTOS would let it do until the idle task runs. */
void vTaskDelete(TaskHandle_t xTaskToDelete)
{
    if (xTaskToDelete && xTaskToDelete != self)
        abort(); /* the glue only ever ends itself; ending another thread has no pthread equivalent */
    pthread_exit(NULL);
}

static struct timespec after_ticks(TickType_t ticks)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    uint64_t ns = (uint64_t)ticks * (1000000000u / configTICK_RATE_HZ) + (uint64_t)t.tv_nsec;
    t.tv_sec += (time_t)(ns / 1000000000u);
    t.tv_nsec = (long)(ns % 1000000000u);
    return t;
}

void vTaskDelay(const TickType_t xTicksToDelay)
{
    struct timespec t = after_ticks(xTicksToDelay);
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &t, NULL) == EINTR)
        ;
}

TickType_t xTaskGetTickCount(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (TickType_t)((uint64_t)t.tv_sec * configTICK_RATE_HZ + (uint64_t)t.tv_nsec / (1000000000u / configTICK_RATE_HZ));
}

BaseType_t xTaskGenericNotify(TaskHandle_t xTaskToNotify, UBaseType_t uxIndexToNotify, uint32_t ulValue,
                              eNotifyAction eAction, uint32_t *pulPreviousNotificationValue)
{
    TaskHandle_t t = xTaskToNotify;
    BaseType_t rc = pdPASS;
    (void)uxIndexToNotify; /* one index, as configTASK_NOTIFICATION_ARRAY_ENTRIES is 1 */
    pthread_mutex_lock(&t->lock);
    if (pulPreviousNotificationValue)
        *pulPreviousNotificationValue = t->value;
    switch (eAction) {
    case eNoAction: break;
    case eSetBits: t->value |= ulValue; break;
    case eIncrement: t->value++; break;
    case eSetValueWithOverwrite: t->value = ulValue; break;
    case eSetValueWithoutOverwrite:
        if (t->pending)
            rc = pdFAIL;
        else
            t->value = ulValue;
        break;
    }
    if (rc == pdPASS) {
        t->pending = true;
        pthread_cond_signal(&t->cond);
    }
    pthread_mutex_unlock(&t->lock);
    return rc;
}

BaseType_t xTaskGenericNotifyWait(UBaseType_t uxIndexToWaitOn, uint32_t ulBitsToClearOnEntry,
                                  uint32_t ulBitsToClearOnExit, uint32_t *pulNotificationValue,
                                  TickType_t xTicksToWait)
{
    TaskHandle_t t = current();
    struct timespec until = after_ticks(xTicksToWait);
    (void)uxIndexToWaitOn;
    pthread_mutex_lock(&t->lock);
    if (!t->pending)
        t->value &= ~ulBitsToClearOnEntry;
    while (!t->pending && xTicksToWait)
        if (xTicksToWait == portMAX_DELAY)
            pthread_cond_wait(&t->cond, &t->lock);
        else if (pthread_cond_timedwait(&t->cond, &t->lock, &until) == ETIMEDOUT)
            break;
    if (pulNotificationValue)
        *pulNotificationValue = t->value;
    BaseType_t got = t->pending ? pdTRUE : pdFALSE;
    if (got)
        t->value &= ~ulBitsToClearOnExit;
    t->pending = false;
    pthread_mutex_unlock(&t->lock);
    return got;
}

QueueHandle_t xQueueCreateMutex(const uint8_t ucQueueType)
{
    if (ucQueueType != queueQUEUE_TYPE_MUTEX)
        return NULL;
    QueueHandle_t q = calloc(1, sizeof *q);
    if (q)
        pthread_mutex_init(&q->lock, NULL);
    return q;
}

BaseType_t xQueueSemaphoreTake(QueueHandle_t xQueue, TickType_t xTicksToWait)
{
    if (xTicksToWait == portMAX_DELAY)
        return pthread_mutex_lock(&xQueue->lock) == 0 ? pdTRUE : pdFALSE;
    struct timespec until = after_ticks(xTicksToWait);
    return pthread_mutex_clocklock(&xQueue->lock, CLOCK_MONOTONIC, &until) == 0 ? pdTRUE : pdFALSE;
}

/* Only a mutex's give: the glue has no other queue. */
BaseType_t xQueueGenericSend(QueueHandle_t xQueue, const void *const pvItemToQueue, TickType_t xTicksToWait,
                             const BaseType_t xCopyPosition)
{
    (void)pvItemToQueue, (void)xTicksToWait, (void)xCopyPosition;
    return pthread_mutex_unlock(&xQueue->lock) == 0 ? pdTRUE : pdFALSE;
}
