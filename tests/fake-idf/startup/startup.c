/* The host build of an ESP-IDF application over the fakes: what happens on
 * a chip before app_main — the factory provisioned the PSK, menuconfig
 * chose the options, the ROM powered it on — from a command line in
 * aloft-node's words, so the end-to-end suites drive it as they drive
 * aloft-node (they write the flash as `idf.py flash` would):
 *
 *   hello-aloft-host --flash F --listen ADDR:PORT [--psk SECRET]
 *       [--mqtt HOST:PORT [--mqtt-tls-ca CA] [--mqtt-user U --mqtt-password P]]
 *       [--device-id ID] [--platform P] [--cmd-topic T] [--server URL [--ca-file CA]]
 *       [--check-every S] [--confirm-timeout S] [--link-rate BYTES/S] [--espota [ADDR:]PORT]
 *
 * Then app_main runs on the main task, as ESP-IDF runs it; the process
 * lives until it is stopped (esp_restart re-executes it: another boot).
 * A CA (--ca-file, --mqtt-tls-ca) is what the device's certificate bundle
 * holds; --link-rate is its Wi-Fi link for downloads. What only a
 * simulator has (power cuts, flash timing, --open, which is a build option
 * here) is refused with exit status 3. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "freertos/FreeRTOS.h"
#include "freertos/task.h"
#include "nvs.h"
#include "nvs_flash.h"
#include "sdkconfig.h"

void app_main(void);

static struct {
    const char *name;
    char value[300];
    bool set;
} options[] = {{.name = "push-port"}, {.name = "check-interval"}, {.name = "confirm-timeout"}, {.name = "mqtt"},
               {.name = "device-id"}, {.name = "platform"}, {.name = "cmd-topic"}, {.name = "server"},
               {.name = "mdns-name"},
               /* ArduinoOTA only when asked for (--espota): suites that do not use it
                * run several devices on one address, where only one could bind its port */
               {.name = "espota-port", .value = "0", .set = true}};

static void set_option(const char *name, const char *value)
{
    for (size_t i = 0; i < sizeof options / sizeof *options; i++)
        if (!strcmp(options[i].name, name)) {
            snprintf(options[i].value, sizeof options[i].value, "%s", value);
            options[i].set = true;
        }
}

const char *fake_idf_kconfig_str(const char *name, const char *built)
{
    for (size_t i = 0; i < sizeof options / sizeof *options; i++)
        if (options[i].set && !strcmp(options[i].name, name))
            return options[i].value;
    return built;
}

int fake_idf_kconfig_int(const char *name, int built)
{
    const char *v = fake_idf_kconfig_str(name, NULL);
    return v ? atoi(v) : built;
}

static int usage(const char *why)
{
    fprintf(stderr, "hello-aloft-host: %s\n", why);
    return 2;
}

/* The factory's provisioning: a secret into NVS, where the component reads
 * it (the PSK, or the credential towards the update server). */
static int provision(const char *ns, const char *key, const char *value)
{
    nvs_handle_t h;
    esp_err_t err = nvs_flash_init();
    if (err == ESP_OK && (err = nvs_open(ns, NVS_READWRITE, &h)) == ESP_OK) {
        err = nvs_set_str(h, key, value);
        if (err == ESP_OK)
            err = nvs_commit(h);
        nvs_close(h);
    }
    if (err != ESP_OK)
        fprintf(stderr, "hello-aloft-host: cannot provision %s/%s: %s\n", ns, key, esp_err_to_name(err));
    return err == ESP_OK ? 0 : 1;
}

static void main_task(void *arg)
{
    (void)arg;
    app_main();
    vTaskDelete(NULL); /* as ESP-IDF's main task does when app_main returns */
}

int main(int argc, char **argv)
{
    enum { O_FLASH = 256, O_LISTEN, O_PSK, O_MQTT, O_ID, O_TOPIC, O_SERVER,
           O_EVERY, O_CONFIRM, O_DELAY, O_RATE, O_PLATFORM, O_CA, O_MQTT_CA, O_MQTT_USER, O_MQTT_PASSWORD, O_ESPOTA, O_SIM, O_MAC,
           O_SERVER_KEY, O_MDNS_NAME };
    static const struct option longs[] = {
        {"flash", required_argument, NULL, O_FLASH},       {"listen", required_argument, NULL, O_LISTEN},
        {"psk", required_argument, NULL, O_PSK},           {"mqtt", required_argument, NULL, O_MQTT},
        {"device-id", required_argument, NULL, O_ID},      {"cmd-topic", required_argument, NULL, O_TOPIC},
        {"server", required_argument, NULL, O_SERVER},     {"check-every", required_argument, NULL, O_EVERY},
        {"confirm-timeout", required_argument, NULL, O_CONFIRM}, {"restart-delay", required_argument, NULL, O_DELAY},
        {"open", no_argument, NULL, O_SIM},                {"power-cut-after", required_argument, NULL, O_SIM},
        {"link-rate", required_argument, NULL, O_RATE},     {"flash-timing", required_argument, NULL, O_SIM},
        {"rollback", required_argument, NULL, O_SIM},      {"idle-timeout", required_argument, NULL, O_SIM},
        {"platform", required_argument, NULL, O_PLATFORM}, {"ca-file", required_argument, NULL, O_CA},
        {"mqtt-tls-ca", required_argument, NULL, O_MQTT_CA}, {"mqtt-user", required_argument, NULL, O_MQTT_USER},
        {"mqtt-password", required_argument, NULL, O_MQTT_PASSWORD}, {"insecure", no_argument, NULL, O_SIM},
        {"mac", required_argument, NULL, O_MAC},           {"server-key", required_argument, NULL, O_SERVER_KEY},
        {"espota", required_argument, NULL, O_ESPOTA},     {"mdns-name", required_argument, NULL, O_MDNS_NAME},
        {NULL, 0, NULL, 0},
    };
    const char *flash = NULL, *psk = NULL, *server_key = NULL, *broker = NULL, *user = NULL, *password = "";
    bool mqtts = false;
    char uri[300];
    int c, idx = 0;
    while ((c = getopt_long(argc, argv, "", longs, &idx)) != -1) {
        switch (c) {
        case O_FLASH: flash = optarg; break;
        case O_LISTEN: {
            const char *colon = strrchr(optarg, ':');
            if (!colon)
                return usage("--listen ADDR:PORT");
            char ip[64];
            snprintf(ip, sizeof ip, "%.*s", (int)(colon - optarg), optarg);
            setenv("FAKE_IDF_IP", ip, 1);
            set_option("push-port", colon + 1);
            break;
        }
        case O_PSK: psk = optarg; break;
        case O_SERVER_KEY: server_key = optarg; break;
        case O_MAC: setenv("FAKE_IDF_MAC", optarg, 1); break; /* the chip's eFuse MAC */
        case O_MQTT: broker = optarg; break;
        case O_MQTT_USER: user = optarg; break;
        case O_MQTT_PASSWORD: password = optarg; break;
        case O_PLATFORM: set_option("platform", optarg); break;
        /* the certificate bundle the device was built with holds this CA */
        case O_MQTT_CA: mqtts = true; /* fall through */
        case O_CA: setenv("FAKE_IDF_CA_BUNDLE", optarg, 1); break;
        case O_ID: set_option("device-id", optarg); break;
        case O_TOPIC: set_option("cmd-topic", optarg); break;
        case O_SERVER: set_option("server", optarg); break;
        case O_EVERY: set_option("check-interval", optarg); break;
        case O_CONFIRM: set_option("confirm-timeout", optarg); break;
        case O_DELAY: break; /* the component restarts when it restarts */
        case O_MDNS_NAME: set_option("mdns-name", optarg); break; /* mDNS is built in, on port 5353 */
        case O_ESPOTA: { /* the port (ADDR alone: 3232); the address is the device's own, --listen's */
            const char *colon = strrchr(optarg, ':');
            set_option("espota-port", colon ? colon + 1 : strspn(optarg, "0123456789") == strlen(optarg) ? optarg : "3232");
            break;
        }
        case O_RATE: { /* the Wi-Fi link's rate, for downloads: 250000, 100K, 1M */
            char *end, rate[24];
            double v = strtod(optarg, &end);
            v *= *end == 'K' ? 1024 : *end == 'M' ? 1048576 : 1;
            snprintf(rate, sizeof rate, "%.0f", v);
            setenv("FAKE_IDF_LINK_RATE", rate, 1);
            break;
        }
        case O_SIM:
            fprintf(stderr, "hello-aloft-host: --%s is aloft-node's (a simulator's or a build option); "
                            "this is the example as built\n", longs[idx].name);
            return 3;
        default: return usage("unknown option");
        }
    }
    if (!flash)
        return usage("--flash FILE is required");
    if (broker) {
        snprintf(uri, sizeof uri, "%s://%s%s%s%s%s", mqtts ? "mqtts" : "mqtt", user ? user : "", user ? ":" : "",
                 user ? password : "", user ? "@" : "", broker);
        set_option("mqtt", uri);
    }
    setenv("FAKE_IDF_FLASH", flash, 1);
    if ((psk && provision(CONFIG_ALOFT_PSK_NVS_NAMESPACE, CONFIG_ALOFT_PSK_NVS_KEY, psk)) ||
        (server_key && provision("security", "server_key", server_key)))
        return 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    TaskHandle_t t;
    if (xTaskCreatePinnedToCore(main_task, "main", 3584, NULL, 1, &t, 0) != pdPASS)
        return 1;
    for (;;)
        pause();
}
