/* aloft on ESP-IDF: scheduled checks against the update server's GET
 * /update (PROTOCOLS.md §3.1): once the app could have been confirmed
 * (a new app that waits for its confirm takes no update), then every
 * check_interval_s ±10 %. The agent builds each request
 * (aloft_pull_check), installs a 200's body and picks the interval; a
 * one-shot timer starts a task for each round, so no stack is held
 * between checks. */
#include <stdlib.h>

#include "esp_log.h"
#include "glue.h"

#define RETRY_MS 60000 /* when no task could start */

static const char *TAG = "aloft";
static esp_timer_handle_t timer;
static char md5[33], sha256[65]; /* of the running image, for the HTTPUpdate headers */

static void check(struct aloft_idf *d, bool frontend)
{
    struct aloft_pull *job = aloft_idf_pull_new();
    if (!job)
        return;
    aloft_idf_lock(d);
    int rc = aloft_pull_check(&d->agent, job, frontend, md5, sha256);
    aloft_idf_unlock(d);
    if (rc == 0)
        aloft_idf_pull_run(d, job);
    free(job);
}

static void round_task(void *arg)
{
    struct aloft_idf *d = arg;
    aloft_idf_lock(d);
    if (!md5[0]) /* reads the whole running image: once, here rather than at start */
        aloft_pull_describe(&d->agent, md5, sha256);
    bool www = d->agent.www[0] != NULL;
    aloft_idf_unlock(d);
    check(d, false);
    if (www)
        check(d, true);
    if (d->cfg.check_interval_s) {
        aloft_idf_lock(d);
        uint32_t ms = aloft_pull_check_interval_ms(&d->agent, d->cfg.check_interval_s);
        aloft_idf_unlock(d);
        esp_timer_start_once(timer, ms * 1000ull);
    }
    vTaskDelete(NULL);
}

static void due(void *arg)
{
    struct aloft_idf *d = arg;
    if (xTaskCreate(round_task, "aloft_check", d->cfg.task_stack_size, d, tskIDLE_PRIORITY + 4, NULL) == pdPASS)
        return;
    ESP_LOGE(TAG, "check: cannot start a task; trying again in %d s", RETRY_MS / 1000);
    esp_timer_start_once(timer, RETRY_MS * 1000ull);
}

esp_err_t aloft_idf_check_start(struct aloft_idf *d)
{
    const esp_timer_create_args_t args = {.callback = due, .arg = d, .name = "aloft_check"};
    esp_err_t err = esp_timer_create(&args, &timer);
    if (err != ESP_OK)
        return err;
    uint32_t first_s = d->cfg.confirm_timeout_s ? d->cfg.confirm_timeout_s + 1 : 0;
    if (d->cfg.check_interval_s)
        ESP_LOGI(TAG, "check: asking %s for updates in %u s, then every %u s (±10 %%)", d->cfg.server_url,
                 (unsigned)first_s, (unsigned)d->cfg.check_interval_s);
    else
        ESP_LOGI(TAG, "check: asking %s for updates once, in %u s", d->cfg.server_url, (unsigned)first_s);
    if (!first_s) {
        due(d);
        return ESP_OK;
    }
    return esp_timer_start_once(timer, first_s * 1000000ull);
}
