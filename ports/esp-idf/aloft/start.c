/* aloft on ESP-IDF: aloft_start — the agent on this device's partitions,
 * NVS and LittleFS, then what the configuration asks for: the HTTP update
 * API, MQTT, ArduinoOTA uploads (announced over mDNS), the confirm of a new app, an interrupted download carried on,
 * scheduled checks. The order is aloft-node's. */
#include <stdlib.h>

#include "aloft/err.h"
#include "esp_efuse.h"
#include "esp_log.h"
#include "glue.h"

static const char *TAG = "aloft";
static struct aloft_idf dev; /* one device; the agent's state lives here */

void aloft_idf_lock(struct aloft_idf *d)
{
    xSemaphoreTake(d->lock, portMAX_DELAY);
}

void aloft_idf_unlock(struct aloft_idf *d)
{
    xSemaphoreGive(d->lock);
}

const char *aloft_idf_opt(const char *s)
{
    return s && *s ? s : NULL;
}

/* The agent itself: table, facts, port, start. */
static esp_err_t start_agent(struct aloft_idf *d)
{
    esp_err_t err = aloft_idf_boot_init(&d->boot, &d->flash);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "boot: the running app is in no partition of the table: %s", esp_err_to_name(err));
        return err;
    }
    aloft_idf_device_facts(d);
    if ((err = aloft_idf_port_init(d)) != ESP_OK)
        return err;
#if CONFIG_ALOFT_DELTA
    static struct aloft_delta_update delta; /* ~8 KB: POST /ota takes delta patches */
#endif
    const struct aloft_agent_config cfg = {
        .mac = d->mac,
        .reset_reason = d->reset_reason,
        .boot_count = d->boot_count,
        .device_id = aloft_idf_opt(d->cfg.device_id),
        .platform = aloft_idf_opt(d->cfg.platform),
        .server = aloft_idf_opt(d->cfg.server_url),
        .cmd_topic = aloft_idf_opt(d->cfg.cmd_topic),
        .open = !d->cfg.require_psk,
        .trusted_keys = aloft_idf_opt(d->cfg.trusted_keys),
        /* with anti-rollback on, the bootloader's floor is in eFuse */
        .min_secure_version = esp_efuse_read_secure_version(),
#if CONFIG_ALOFT_DELTA
        .delta = &delta,
#endif
    };
    aloft_idf_lock(d);
    int rc = aloft_agent_start(&d->agent, &d->port, &d->boot, &cfg);
    aloft_idf_unlock(d);
    if (rc) {
        ESP_LOGE(TAG, "agent: %s", aloft_strerror(rc));
        return ESP_FAIL;
    }
    return ESP_OK;
}

/* A download that a restart interrupted carries on. */
static void resume_pull(struct aloft_idf *d)
{
    struct aloft_pull *job = aloft_idf_pull_new();
    if (!job)
        return;
    aloft_idf_lock(d);
    int rc = aloft_pull_boot(&d->agent, job);
    aloft_idf_unlock(d);
    if (rc == 1)
        aloft_idf_pull_spawn(d, job);
    else
        free(job);
}

esp_err_t aloft_start(const aloft_config_t *cfg)
{
    struct aloft_idf *d = &dev;
    if (!cfg)
        return ESP_ERR_INVALID_ARG;
    if (d->lock)
        return ESP_ERR_INVALID_STATE;
    d->cfg = *cfg;
    if (!(d->lock = xSemaphoreCreateMutex()))
        return ESP_ERR_NO_MEM;
    esp_err_t err = start_agent(d);
    if (err != ESP_OK)
        return err;
    /* from here on a part that fails is logged and the others still run:
     * the first error is returned */
    esp_err_t first = ESP_OK, e;
    if (cfg->push_server && (e = aloft_idf_http_start(d)) != ESP_OK && first == ESP_OK)
        first = e;
    if (aloft_idf_opt(cfg->mqtt_uri) && (e = aloft_idf_mqtt_start(d)) != ESP_OK && first == ESP_OK)
        first = e;
#ifdef CONFIG_ALOFT_ESPOTA /* off, the linker leaves its task and 6.7 KB of RAM out */
    if (cfg->espota_port && (e = aloft_idf_espota_start(d)) != ESP_OK && first == ESP_OK)
        first = e;
#endif
#ifdef CONFIG_ALOFT_MDNS /* the Arduino IDE lists it: only with ArduinoOTA */
    if (cfg->espota_port && (e = aloft_idf_mdns_start(d)) != ESP_OK && first == ESP_OK)
        first = e;
#endif
#ifdef CONFIG_ALOFT_BLE_OTA /* needs NimBLE: off, none of it is built */
    if ((e = aloft_idf_ble_start(d)) != ESP_OK && first == ESP_OK)
        first = e;
#endif
    if ((e = aloft_idf_confirm_start(d)) != ESP_OK && first == ESP_OK)
        first = e;
    resume_pull(d);
    if (aloft_idf_opt(cfg->server_url) && (e = aloft_idf_check_start(d)) != ESP_OK && first == ESP_OK)
        first = e;
    return first;
}
