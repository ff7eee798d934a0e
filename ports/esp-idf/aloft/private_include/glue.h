/* aloft on ESP-IDF: what the glue's files share. Everything a device does
 * about updates is the agent's (agent/); these files move bytes between it
 * and ESP-IDF, as apps/aloft-node does on POSIX.
 *
 * Locking: one mutex around every agent call. Callbacks the agent makes
 * (the port's) run with it held, so they never wait for anything that may
 * wait for the agent: they copy, start a timer or spawn a task. esp-mqtt
 * runs its event handlers under its own lock, so nothing calls esp-mqtt
 * while holding the agent's mutex (mqtt.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "aloft/agent.h"
#include "aloft/boot.h"
#include "aloft/pull.h"
#include "aloft/push.h"
#include "aloft_idf.h"
#include "esp_partition.h"
#include "esp_timer.h"
#include "freertos/FreeRTOS.h"
#include "freertos/semphr.h"

/* The flash as the agent sees it (flash.c): absolute addresses, each
 * access inside one partition of the table and done by esp_partition_*,
 * which encrypts and decrypts where flash encryption is on. */
struct aloft_idf_flash {
    struct aloft_flash port;
    const esp_partition_t *part[ALOFT_PART_MAX]; /* entry i of the boot table */
    const struct aloft_part_table *table;
    /* an encrypted partition is written in whole 16-byte blocks: the one
     * being filled (pend_len bytes from pend_addr) */
    const esp_partition_t *pend_part;
    uint32_t pend_addr;
    uint8_t pend[16];
    uint8_t pend_len;
};

/* The frontend's LittleFS (www.c): the mounted slot and the file open for
 * the reply being sent. */
struct aloft_idf_www {
    char mounted[ALOFT_PART_LABEL_MAX + 1];
};

struct aloft_idf {
    aloft_config_t cfg;
    SemaphoreHandle_t lock;
    struct aloft_idf_flash flash;
    struct aloft_boot boot;
    struct aloft_idf_www www;
    struct aloft_agent_port port;
    struct aloft_agent agent;
    char mac[18];
    const char *reset_reason;
    unsigned boot_count;
    esp_timer_handle_t restart_timer;
};

void aloft_idf_lock(struct aloft_idf *d);
void aloft_idf_unlock(struct aloft_idf *d);

/* "" → NULL, for the optional strings of aloft_config_t. */
const char *aloft_idf_opt(const char *s);

/* The partition table and the app that runs (boot.c): b from
 * esp_partition_find and esp_ota_get_running_partition. Returns ESP_OK or
 * ESP_ERR_NOT_FOUND. */
esp_err_t aloft_idf_boot_init(struct aloft_boot *b, struct aloft_idf_flash *f);

/* The flash port over the table's partitions (flash.c). */
void aloft_idf_flash_init(struct aloft_idf_flash *f, const struct aloft_part_table *t, uint32_t size);

/* Settings over NVS (settings.c) and the frontend's files (www.c). */
struct aloft_settings aloft_idf_settings(void);
struct aloft_www_fs aloft_idf_www(struct aloft_idf_www *w);

/* The station MAC, the reset reason and the boot count (device.c). */
void aloft_idf_device_facts(struct aloft_idf *d);

/* The agent's port: clock, restart, random, log and the events (port.c).
 * Returns ESP_OK or the error of the restart timer. */
esp_err_t aloft_idf_port_init(struct aloft_idf *d);

/* The port's verify: a signature block by the ROM's RSA-PSS (verify.c). */
int aloft_idf_verify(void *ctx, const struct aloft_sig_block *b, const uint8_t *digest);

/* The HTTP update API (http.c). */
esp_err_t aloft_idf_http_start(struct aloft_idf *d);

/* ArduinoOTA uploads on UDP port cfg.espota_port (espota.c). */
esp_err_t aloft_idf_espota_start(struct aloft_idf *d);

/* The ArduinoOTA service announced over mDNS (mdns.c; CONFIG_ALOFT_MDNS),
 * for the Arduino IDE. ESP_OK or an error. */
esp_err_t aloft_idf_mdns_start(struct aloft_idf *d);

/* The BLE OTA service on NimBLE (ble.c; CONFIG_ALOFT_BLE_OTA): starts the
 * NimBLE host, registers the service and advertises. ESP_OK or an error. */
esp_err_t aloft_idf_ble_start(struct aloft_idf *d);

/* Pull jobs (pull.c): a zeroed job (free() it), or NULL; run a started
 * job in the caller's task (returns aloft_pull_result); or hand it to a
 * task of its own that runs and frees it — when no task can start, the
 * job fails (state and report say so) and is freed. */
struct aloft_pull *aloft_idf_pull_new(void);
int aloft_idf_pull_run(struct aloft_idf *d, struct aloft_pull *job);
void aloft_idf_pull_spawn(struct aloft_idf *d, struct aloft_pull *job);

/* POST json to url in a task of its own, a few tries (report.c). */
void aloft_idf_report(struct aloft_idf *d, const char *url, const char *json);

/* What HTTPS and MQTTS trust besides cfg.ca_pem (tls.c): without it, the
 * certificate bundle's attach function, when the project has the bundle. */
typedef esp_err_t (*aloft_idf_bundle_fn)(void *conf);
aloft_idf_bundle_fn aloft_idf_bundle(const struct aloft_idf *d);

/* Scheduled checks against the update server (check.c). */
esp_err_t aloft_idf_check_start(struct aloft_idf *d);

/* MQTT (mqtt.c). state: publish this state document (from the agent, its
 * lock held). restart: publish "restarting", disconnect, restart; false
 * when MQTT does not run (the caller restarts). */
esp_err_t aloft_idf_mqtt_start(struct aloft_idf *d);
void aloft_idf_mqtt_state(const char *json, size_t len);
bool aloft_idf_mqtt_restart(void);

/* The confirm of a new app after cfg.confirm_timeout_s (confirm.c). */
esp_err_t aloft_idf_confirm_start(struct aloft_idf *d);
