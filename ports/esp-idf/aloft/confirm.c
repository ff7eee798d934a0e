/* aloft on ESP-IDF: the confirm of a new app. With the bootloader's
 * rollback on, an app that restarts before it is confirmed is rolled back
 * at that reset. The application confirms with aloft_confirm(), or aloft
 * does when the app has run confirm_timeout_s. The confirm goes through
 * esp_ota_mark_app_valid_cancel_rollback first, which also advances the
 * anti-rollback secure version in eFuse where that is on; the agent then
 * finds the app valid already and tells the outcome (state, report). */
#include <stdio.h>

#include "esp_log.h"
#include "esp_ota_ops.h"
#include "glue.h"

static const char *TAG = "aloft";
static struct aloft_idf *dev;
static esp_timer_handle_t timer;

/* why: what the log line says led to it */
static esp_err_t confirm(struct aloft_idf *d, const char *why)
{
    aloft_idf_lock(d);
    /* An update switched otadata and the restart is due: IDF would mark
     * the active entry — the new app's — valid, unverified. */
    if (d->agent.restarting) {
        aloft_idf_unlock(d);
        ESP_LOGI(TAG, "app: not confirmed: the device restarts into the update");
        return ESP_ERR_INVALID_STATE;
    }
    esp_err_t err = esp_ota_mark_app_valid_cancel_rollback();
    if (err != ESP_OK)
        ESP_LOGE(TAG, "app: esp_ota_mark_app_valid_cancel_rollback: %s", esp_err_to_name(err));
    else
        ESP_LOGI(TAG, "app: %s: marked valid", why);
    int rc = aloft_agent_confirm(&d->agent); /* then the outcome: state, report */
    aloft_idf_unlock(d);
    return err != ESP_OK ? err : rc ? ESP_FAIL : ESP_OK;
}

static void confirm_task(void *arg)
{
    struct aloft_idf *d = arg;
    char why[48];
    snprintf(why, sizeof why, "ran %u s without a reset", (unsigned)d->cfg.confirm_timeout_s);
    confirm(d, why);
    vTaskDelete(NULL);
}

/* On the esp_timer task, whose stack is small: the confirm gets its own. */
static void due(void *arg)
{
    if (xTaskCreate(confirm_task, "aloft_confirm", dev->cfg.task_stack_size, arg, tskIDLE_PRIORITY + 5, NULL) != pdPASS)
        ESP_LOGE(TAG, "app: cannot start the confirm: the app stays unconfirmed until aloft_confirm()");
}

esp_err_t aloft_idf_confirm_start(struct aloft_idf *d)
{
    dev = d;
    if (!d->cfg.confirm_timeout_s) {
        ESP_LOGI(TAG, "app: waiting for the application's aloft_confirm()");
        return ESP_OK;
    }
    const esp_timer_create_args_t args = {.callback = due, .arg = d, .name = "aloft_confirm"};
    esp_err_t err = esp_timer_create(&args, &timer);
    if (err == ESP_OK)
        err = esp_timer_start_once(timer, d->cfg.confirm_timeout_s * 1000000ull);
    return err;
}

esp_err_t aloft_confirm(void)
{
    if (!dev)
        return ESP_ERR_INVALID_STATE;
    if (timer)
        esp_timer_stop(timer); /* not running any more: fine, the confirm is idempotent */
    return confirm(dev, "the application confirmed it");
}
