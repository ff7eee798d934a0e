/* fake-idf: esp_timer. One thread runs every callback in turn, as the
 * esp_timer task does, so a callback that blocks delays the others (the
 * glue's callbacks only start a task or a restart). */
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "esp_timer.h"

struct esp_timer {
    esp_timer_create_args_t args;
    int64_t due_us;
    bool armed;
    struct esp_timer *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed;
static struct esp_timer *timers;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool started;

int64_t esp_timer_get_time(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000 + t.tv_nsec / 1000;
}

static struct esp_timer *earliest(void)
{
    struct esp_timer *e = NULL;
    for (struct esp_timer *t = timers; t; t = t->next)
        if (t->armed && (!e || t->due_us < e->due_us))
            e = t;
    return e;
}

static void *dispatch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        struct esp_timer *t = earliest();
        if (!t) {
            pthread_cond_wait(&changed, &lock);
            continue;
        }
        int64_t now = esp_timer_get_time();
        if (now < t->due_us) {
            struct timespec until = {.tv_sec = (time_t)(t->due_us / 1000000), .tv_nsec = (long)(t->due_us % 1000000) * 1000};
            pthread_cond_timedwait(&changed, &lock, &until);
            continue;
        }
        t->armed = false;
        pthread_mutex_unlock(&lock);
        t->args.callback(t->args.arg);
        pthread_mutex_lock(&lock);
    }
    return NULL;
}

static void start(void)
{
    pthread_condattr_t ca;
    pthread_t th;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&changed, &ca);
    pthread_condattr_destroy(&ca);
    started = pthread_create(&th, NULL, dispatch, NULL) == 0;
    if (started)
        pthread_detach(th);
}

esp_err_t esp_timer_create(const esp_timer_create_args_t *create_args, esp_timer_handle_t *out_handle)
{
    if (!create_args || !create_args->callback || !out_handle)
        return ESP_ERR_INVALID_ARG;
    pthread_once(&once, start);
    if (!started)
        return ESP_ERR_NO_MEM;
    struct esp_timer *t = calloc(1, sizeof *t);
    if (!t)
        return ESP_ERR_NO_MEM;
    t->args = *create_args;
    pthread_mutex_lock(&lock);
    t->next = timers;
    timers = t;
    pthread_mutex_unlock(&lock);
    *out_handle = t;
    return ESP_OK;
}

/* ESP_ERR_INVALID_STATE when it runs already, as ESP-IDF answers. */
esp_err_t esp_timer_start_once(esp_timer_handle_t timer, uint64_t timeout_us)
{
    esp_err_t err = ESP_ERR_INVALID_STATE;
    pthread_mutex_lock(&lock);
    if (!timer->armed) {
        timer->armed = true;
        timer->due_us = esp_timer_get_time() + (int64_t)timeout_us;
        pthread_cond_signal(&changed);
        err = ESP_OK;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

esp_err_t esp_timer_stop(esp_timer_handle_t timer)
{
    pthread_mutex_lock(&lock);
    esp_err_t err = timer->armed ? ESP_OK : ESP_ERR_INVALID_STATE;
    timer->armed = false;
    pthread_mutex_unlock(&lock);
    return err;
}
