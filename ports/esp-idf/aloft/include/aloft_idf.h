/* aloft on ESP-IDF: one call starts the device's whole update behaviour —
 * the HTTP update API, the frontend's A/B slots, pull updates, scheduled
 * checks, MQTT triggers and state, ArduinoOTA uploads, and the confirm of a
 * new app
 * (docs/esp-idf.md). The options default from menuconfig ("aloft").
 *
 *   ESP_ERROR_CHECK(nvs_flash_init());
 *   ... bring the network up ...
 *   aloft_config_t cfg = ALOFT_CONFIG_DEFAULT();
 *   ESP_ERROR_CHECK(aloft_start(&cfg));
 */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include "esp_err.h"
#include "sdkconfig.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Strings may be NULL or "" for "none"; aloft keeps the pointers, so they
 * must stay valid while the device runs (literals, or static buffers). */
typedef struct {
    bool push_server;           /* serve the HTTP update API (GET /ota/status, POST /ota, …) */
    uint16_t push_port;         /* its TCP port */
    bool require_psk;           /* no PSK provisioned: refuse every upload and trigger */
    bool www;                   /* serve the update page from the www_0/www_1 slots */
    const char *mqtt_uri;       /* broker: mqtt://host[:port] or mqtts://… (user:password@ allowed) */
    const char *device_id;      /* in topics and reports; none: the station MAC */
    const char *platform;       /* in topics and checks; none: the running app's project */
    const char *cmd_topic;      /* one more command topic, e.g. /switch/cmd/root */
    const char *server_url;     /* update server (aloftd): scheduled checks and outcome reports */
    uint32_t check_interval_s;  /* between checks (±10 %); 0: only at start */
    uint32_t confirm_timeout_s; /* a new app that ran this long is marked valid; 0: only aloft_confirm() does */
    uint32_t httpd_stack_size;  /* the HTTP server's task: every upload runs on it */
    uint32_t task_stack_size;   /* downloads, checks and reports (TLS handshakes run here) */
    const char *ca_pem;         /* the CA HTTPS and MQTTS trust; none: the certificate bundle */
    const char *trusted_keys;   /* up to 3 public key digests, "HEX,HEX,HEX": only images signed by one
                                 * of them are installed; none: NVS security/trusted_keys, if set */
    uint16_t espota_port;       /* ArduinoOTA uploads (Arduino IDE, PlatformIO's espota) on this UDP
                                 * port, the PSK their password; 0: none. Needs CONFIG_ALOFT_ESPOTA */
    const char *mdns_name;      /* with CONFIG_ALOFT_MDNS, the Arduino IDE lists the device as NAME
                                 * (NAME.local); none: aloft-<the MAC's 12 hex digits> */
} aloft_config_t;

/* Options that menuconfig hides when what they belong to is off. */
#ifdef CONFIG_ALOFT_PUSH_SERVER
#define ALOFT_KCONFIG_PUSH_SERVER true
#define ALOFT_KCONFIG_PUSH_PORT CONFIG_ALOFT_PUSH_PORT
#define ALOFT_KCONFIG_HTTPD_STACK_SIZE CONFIG_ALOFT_HTTPD_STACK_SIZE
#else
#define ALOFT_KCONFIG_PUSH_SERVER false
#define ALOFT_KCONFIG_PUSH_PORT 8032
#define ALOFT_KCONFIG_HTTPD_STACK_SIZE 6144
#endif
#ifdef CONFIG_ALOFT_REQUIRE_PSK
#define ALOFT_KCONFIG_REQUIRE_PSK true
#else
#define ALOFT_KCONFIG_REQUIRE_PSK false
#endif
#ifdef CONFIG_ALOFT_WWW
#define ALOFT_KCONFIG_WWW true
#else
#define ALOFT_KCONFIG_WWW false
#endif
#ifdef CONFIG_ALOFT_ESPOTA
#define ALOFT_KCONFIG_ESPOTA_PORT CONFIG_ALOFT_ESPOTA_PORT
#else
#define ALOFT_KCONFIG_ESPOTA_PORT 0
#endif
#ifdef CONFIG_ALOFT_MDNS
#define ALOFT_KCONFIG_MDNS_NAME CONFIG_ALOFT_MDNS_NAME
#else
#define ALOFT_KCONFIG_MDNS_NAME ""
#endif

#define ALOFT_CONFIG_DEFAULT()                                                                                     \
    {                                                                                                              \
        .push_server = ALOFT_KCONFIG_PUSH_SERVER, .push_port = ALOFT_KCONFIG_PUSH_PORT,                            \
        .require_psk = ALOFT_KCONFIG_REQUIRE_PSK, .www = ALOFT_KCONFIG_WWW,                                        \
        .mqtt_uri = CONFIG_ALOFT_MQTT_BROKER_URI, .device_id = CONFIG_ALOFT_DEVICE_ID,                             \
        .platform = CONFIG_ALOFT_PLATFORM,                                                                         \
        .cmd_topic = CONFIG_ALOFT_CMD_TOPIC, .server_url = CONFIG_ALOFT_SERVER_URL,                                \
        .check_interval_s = CONFIG_ALOFT_CHECK_INTERVAL_S, .confirm_timeout_s = CONFIG_ALOFT_CONFIRM_TIMEOUT_S,    \
        .httpd_stack_size = ALOFT_KCONFIG_HTTPD_STACK_SIZE, .task_stack_size = CONFIG_ALOFT_TASK_STACK_SIZE,       \
        .ca_pem = NULL, .trusted_keys = CONFIG_ALOFT_TRUSTED_KEYS, .espota_port = ALOFT_KCONFIG_ESPOTA_PORT,        \
        .mdns_name = ALOFT_KCONFIG_MDNS_NAME,                                                                      \
    }

/* Start aloft, once, after nvs_flash_init() (and best once the network is
 * up: the first scheduled check runs at once). Logs the boot line
 *   boot: reset_reason=<REASON> running_partition=<label>
 * Returns ESP_OK, ESP_ERR_INVALID_STATE (started already),
 * ESP_ERR_INVALID_ARG (cfg NULL), ESP_ERR_NO_MEM, ESP_ERR_NOT_FOUND (no
 * partition the app runs from), ESP_FAIL (the running image does not
 * read back), or the error of the HTTP server or MQTT client that did not
 * start. */
esp_err_t aloft_start(const aloft_config_t *cfg);

/* The application is healthy: mark the running app valid now (cancels the
 * bootloader's rollback; with anti-rollback, advances the secure version)
 * and report the outcome of the update that restarted the device. Needed
 * only with confirm_timeout_s 0, or to confirm earlier. Idempotent.
 * Returns ESP_OK, ESP_ERR_INVALID_STATE (aloft_start has not run, or an
 * update has switched to another app and the device is restarting) or
 * ESP_FAIL (otadata could not be written). To give up on a new app
 * instead, call esp_ota_mark_app_invalid_rollback_and_reboot(). */
esp_err_t aloft_confirm(void);

#ifdef __cplusplus
}
#endif
