/* aloft on ESP-IDF: the agent's port — the flash (flash.c), the settings
 * (settings.c) and the frontend's files (www.c), and here the clock, the
 * restart, random bytes, the log and the events: the state document goes
 * to MQTT, the outcome reports to the update server. */
#include "esp_log.h"
#include "esp_random.h"
#include "esp_system.h"
#include "glue.h"

#define RESTART_DELAY_MS 1000 /* the reply, and over MQTT the last state, get out first */

static const char *TAG = "aloft";

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    return (uint64_t)esp_timer_get_time() / 1000u;
}

static void restart_now(void *arg)
{
    (void)arg;
    if (!aloft_idf_mqtt_restart())
        esp_restart();
}

/* From inside the agent, mid-request: the timer fires once the reply is
 * out. A second request finds the timer running and changes nothing. */
static void restart(void *ctx, const char *reason)
{
    struct aloft_idf *d = ctx;
    ESP_LOGI(TAG, "restarting (%s) in %d ms", reason, RESTART_DELAY_MS);
    esp_timer_start_once(d->restart_timer, RESTART_DELAY_MS * 1000ull);
}

static void random_bytes(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    esp_fill_random(buf, len);
}

static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    ESP_LOGI(TAG, "%s", line);
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

esp_err_t aloft_idf_port_init(struct aloft_idf *d)
{
    const esp_timer_create_args_t timer = {.callback = restart_now, .name = "aloft_restart"};
    esp_err_t err = esp_timer_create(&timer, &d->restart_timer);
    if (err != ESP_OK)
        return err;
    d->port = (struct aloft_agent_port){
        .ctx = d,
        .flash = &d->flash.port,
        .settings = aloft_idf_settings(),
        .www = d->cfg.www ? aloft_idf_www(&d->www) : (struct aloft_www_fs){0},
        .now_ms = now_ms,
        .restart = restart,
        .random = random_bytes,
        .log = log_line,
        .state = aloft_idf_opt(d->cfg.mqtt_uri) ? state : NULL,
        .report = report,
        .verify = aloft_idf_verify,
    };
    return ESP_OK;
}
