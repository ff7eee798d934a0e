/* aloft on ESP-IDF: the outcome reports to the update server (the agent
 * names the URL and writes the JSON), posted from a task of their own so
 * that the agent never waits for the network; a few tries, further apart
 * each time: aloftd knows a device from its first check-in on. */
#include <stdlib.h>
#include <string.h>

#include "esp_http_client.h"
#include "esp_log.h"
#include "glue.h"

#define TRIES 6
#define TIMEOUT_MS 10000

static const char *TAG = "aloft";

struct report {
    struct aloft_idf *d;
    char url[600];
    char body[1024];
};

static int post(const struct report *r)
{
    const esp_http_client_config_t cfg = {
        .url = r->url,
        .method = HTTP_METHOD_POST,
        .timeout_ms = TIMEOUT_MS,
        .cert_pem = aloft_idf_opt(r->d->cfg.ca_pem),
        .crt_bundle_attach = aloft_idf_bundle(r->d),
    };
    esp_http_client_handle_t c = esp_http_client_init(&cfg);
    if (!c)
        return 0;
    esp_http_client_set_header(c, "Content-Type", "application/json");
    esp_http_client_set_post_field(c, r->body, (int)strlen(r->body));
    esp_err_t err = esp_http_client_perform(c);
    int status = err == ESP_OK ? esp_http_client_get_status_code(c) : 0;
    esp_http_client_cleanup(c);
    if (status)
        ESP_LOGI(TAG, "pull: report %s to %s: %d", r->body, r->url, status);
    else
        ESP_LOGW(TAG, "pull: report %s to %s: %s", r->body, r->url, esp_err_to_name(err));
    return status;
}

static void report_task(void *arg)
{
    struct report *r = arg;
    for (int i = 0; i < TRIES; i++) {
        if (i)
            vTaskDelay(pdMS_TO_TICKS(1000 * i));
        if (post(r) == 200)
            break;
    }
    free(r);
    vTaskDelete(NULL);
}

void aloft_idf_report(struct aloft_idf *d, const char *url, const char *json)
{
    struct report *r = calloc(1, sizeof *r);
    if (!r) {
        ESP_LOGE(TAG, "pull: no memory to report %s", json);
        return;
    }
    r->d = d;
    snprintf(r->url, sizeof r->url, "%s", url);
    snprintf(r->body, sizeof r->body, "%s", json);
    if (xTaskCreate(report_task, "aloft_report", d->cfg.task_stack_size, r, tskIDLE_PRIORITY + 4, NULL) != pdPASS) {
        ESP_LOGE(TAG, "pull: cannot start a task to report %s", json);
        free(r);
    }
}
