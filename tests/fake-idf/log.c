/* fake-idf: esp_log to stdout, a line at a time (the e2e harnesses read a
 * device's log as they read aloft-node's). */
#include <stdarg.h>
#include <stdio.h>
#include <time.h>

#include "esp_log.h"

uint32_t esp_log_timestamp(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint32_t)(t.tv_sec * 1000 + t.tv_nsec / 1000000);
}

void esp_log(esp_log_config_t config, const char *tag, const char *format, ...)
{
    (void)config;
    (void)tag; /* the format carries it, as ESP_LOGx builds it */
    va_list ap;
    va_start(ap, format);
    vprintf(format, ap);
    va_end(ap);
    fflush(stdout);
}
