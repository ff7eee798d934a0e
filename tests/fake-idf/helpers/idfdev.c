/* fake-idf tests: the device over the glue (idfdev.h). */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "aloft_posix_flash.h"
#include "chip.h"
#include "esp_random.h"
#include "idfdev.h"

static struct aloft_idf dev;
static atomic_bool restart_asked;

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return (uint64_t)esp_timer_get_time() / 1000u;
}

/* The test looks at what would boot instead of restarting the process. */
static void restart(void *ctx, const char *reason)
{
    (void)ctx;
    printf("idfdev: the agent asks for a restart (%s)\n", reason);
    restart_asked = true;
}

static void random_bytes(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    esp_fill_random(buf, len);
}

static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    printf("agent: %s\n", line);
    fflush(stdout);
}

static void state(void *ctx, const char *json, size_t len)
{
    (void)ctx;
    aloft_idf_mqtt_state(json, len);
}

static void report(void *ctx, const char *url, const char *json)
{
    aloft_idf_report(ctx, url, json);
}

struct aloft_idf *fake_idf_dev_start(const char *device_id, const char *mqtt_uri)
{
    struct aloft_idf *d = &dev;
    d->cfg = (aloft_config_t){.device_id = device_id, .mqtt_uri = mqtt_uri, .task_stack_size = 8192};
    if (!(d->lock = xSemaphoreCreateMutex()) || aloft_idf_boot_init(&d->boot, &d->flash) != ESP_OK)
        return NULL;
    aloft_idf_device_facts(d);
    d->port = (struct aloft_agent_port){
        .ctx = d,
        .flash = &d->flash.port,
        .settings = aloft_idf_settings(),
        .now_ms = now_ms,
        .restart = restart,
        .random = random_bytes,
        .log = log_line,
        .state = mqtt_uri ? state : NULL,
        .report = report,
    };
    const struct aloft_agent_config cfg = {
        .mac = d->mac, .reset_reason = d->reset_reason, .boot_count = d->boot_count, .device_id = device_id};
    aloft_idf_lock(d);
    int rc = aloft_agent_start(&d->agent, &d->port, &d->boot, &cfg);
    aloft_idf_unlock(d);
    if (rc || (mqtt_uri && aloft_idf_mqtt_start(d) != ESP_OK))
        return NULL;
    return d;
}

bool fake_idf_dev_wait_restart(unsigned timeout_ms)
{
    for (unsigned waited = 0; !restart_asked && waited < timeout_ms; waited += 50)
        vTaskDelay(pdMS_TO_TICKS(50));
    return restart_asked;
}

int fake_idf_dev_next_boot(char label[17])
{
    struct aloft_posix_flash pf;
    struct aloft_boot b;
    const char *path = getenv("FAKE_IDF_FLASH");
    if (!path || aloft_posix_flash_open(&pf, path, 0, false))
        return -1;
    int rc = aloft_boot_init(&b, &pf.port, ALOFT_PART_TABLE_OFFSET, FAKE_IDF_CHIP_ID, true) || aloft_boot_select(&b)
                 ? -1
                 : 0;
    if (rc == 0)
        snprintf(label, 17, "%s", b.running->label);
    aloft_posix_flash_close(&pf);
    return rc;
}
