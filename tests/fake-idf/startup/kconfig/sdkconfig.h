/* The host build of the example: sdkconfig.h as menuconfig made it
 * (tests/fake-idf/sdkconfig.sh), except that aloft's strings and numbers
 * come from the startup's command line when it gives them (kconfig.c), so
 * one binary stands for the builds the end-to-end suites need: each device
 * on its own port, broker and server. Booleans stay as built. */
#pragma once

#include_next "sdkconfig.h"

const char *fake_idf_kconfig_str(const char *name, const char *built);
int fake_idf_kconfig_int(const char *name, int built);

enum {
    FAKE_IDF_BUILT_PUSH_PORT = CONFIG_ALOFT_PUSH_PORT,
    FAKE_IDF_BUILT_CHECK_INTERVAL_S = CONFIG_ALOFT_CHECK_INTERVAL_S,
    FAKE_IDF_BUILT_CONFIRM_TIMEOUT_S = CONFIG_ALOFT_CONFIRM_TIMEOUT_S,
    FAKE_IDF_BUILT_ESPOTA_PORT = CONFIG_ALOFT_ESPOTA_PORT,
};
static inline const char *fake_idf_built_mqtt(void) { return CONFIG_ALOFT_MQTT_BROKER_URI; }
static inline const char *fake_idf_built_device_id(void) { return CONFIG_ALOFT_DEVICE_ID; }
static inline const char *fake_idf_built_platform(void) { return CONFIG_ALOFT_PLATFORM; }
static inline const char *fake_idf_built_cmd_topic(void) { return CONFIG_ALOFT_CMD_TOPIC; }
static inline const char *fake_idf_built_server(void) { return CONFIG_ALOFT_SERVER_URL; }
static inline const char *fake_idf_built_mdns_name(void) { return CONFIG_ALOFT_MDNS_NAME; }

#undef CONFIG_ALOFT_PUSH_PORT
#undef CONFIG_ALOFT_CHECK_INTERVAL_S
#undef CONFIG_ALOFT_CONFIRM_TIMEOUT_S
#undef CONFIG_ALOFT_ESPOTA_PORT
#undef CONFIG_ALOFT_MQTT_BROKER_URI
#undef CONFIG_ALOFT_DEVICE_ID
#undef CONFIG_ALOFT_PLATFORM
#undef CONFIG_ALOFT_CMD_TOPIC
#undef CONFIG_ALOFT_SERVER_URL
#undef CONFIG_ALOFT_MDNS_NAME
#define CONFIG_ALOFT_PUSH_PORT fake_idf_kconfig_int("push-port", FAKE_IDF_BUILT_PUSH_PORT)
#define CONFIG_ALOFT_CHECK_INTERVAL_S fake_idf_kconfig_int("check-interval", FAKE_IDF_BUILT_CHECK_INTERVAL_S)
#define CONFIG_ALOFT_CONFIRM_TIMEOUT_S fake_idf_kconfig_int("confirm-timeout", FAKE_IDF_BUILT_CONFIRM_TIMEOUT_S)
#define CONFIG_ALOFT_ESPOTA_PORT fake_idf_kconfig_int("espota-port", FAKE_IDF_BUILT_ESPOTA_PORT)
#define CONFIG_ALOFT_MQTT_BROKER_URI fake_idf_kconfig_str("mqtt", fake_idf_built_mqtt())
#define CONFIG_ALOFT_DEVICE_ID fake_idf_kconfig_str("device-id", fake_idf_built_device_id())
#define CONFIG_ALOFT_PLATFORM fake_idf_kconfig_str("platform", fake_idf_built_platform())
#define CONFIG_ALOFT_CMD_TOPIC fake_idf_kconfig_str("cmd-topic", fake_idf_built_cmd_topic())
#define CONFIG_ALOFT_SERVER_URL fake_idf_kconfig_str("server", fake_idf_built_server())
#define CONFIG_ALOFT_MDNS_NAME fake_idf_kconfig_str("mdns-name", fake_idf_built_mdns_name())
