/* hello-aloft: a device that joins Wi-Fi and takes updates with aloft
 * (docs/esp-idf.md). Its health check is the network: an app that gets no
 * IP address restarts before aloft confirms it, and the bootloader rolls
 * a new app back at that restart. */
#include "aloft_idf.h"
#include "esp_event.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "esp_system.h"
#include "esp_wifi.h"
#include "freertos/FreeRTOS.h"
#include "freertos/event_groups.h"
#include "nvs_flash.h"

#define GOT_IP BIT0
#define IP_WAIT_MS 60000

static const char *TAG = "hello-aloft";
static EventGroupHandle_t net;

static void on_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    if (base == WIFI_EVENT && (id == WIFI_EVENT_STA_START || id == WIFI_EVENT_STA_DISCONNECTED))
        esp_wifi_connect(); /* at start, and again after every loss */
    else if (base == IP_EVENT && id == IP_EVENT_STA_GOT_IP)
        xEventGroupSetBits(net, GOT_IP);
}

static bool wifi_up(void)
{
    net = xEventGroupCreate();
    ESP_ERROR_CHECK(esp_netif_init());
    ESP_ERROR_CHECK(esp_event_loop_create_default());
    esp_netif_create_default_wifi_sta();
    wifi_init_config_t init = WIFI_INIT_CONFIG_DEFAULT();
    ESP_ERROR_CHECK(esp_wifi_init(&init));
    ESP_ERROR_CHECK(esp_event_handler_register(WIFI_EVENT, ESP_EVENT_ANY_ID, on_event, NULL));
    ESP_ERROR_CHECK(esp_event_handler_register(IP_EVENT, IP_EVENT_STA_GOT_IP, on_event, NULL));
    wifi_config_t sta = {.sta = {.ssid = CONFIG_HELLO_WIFI_SSID, .password = CONFIG_HELLO_WIFI_PASSWORD}};
    ESP_ERROR_CHECK(esp_wifi_set_mode(WIFI_MODE_STA));
    ESP_ERROR_CHECK(esp_wifi_set_config(WIFI_IF_STA, &sta));
    ESP_ERROR_CHECK(esp_wifi_start());
    return xEventGroupWaitBits(net, GOT_IP, pdFALSE, pdTRUE, pdMS_TO_TICKS(IP_WAIT_MS)) & GOT_IP;
}

void app_main(void)
{
    /* never erase NVS here to make it initialise: it holds the PSK */
    ESP_ERROR_CHECK(nvs_flash_init());
    if (!wifi_up()) {
        ESP_LOGE(TAG, "no IP address after %d s on %s: restarting", IP_WAIT_MS / 1000, CONFIG_HELLO_WIFI_SSID);
        esp_restart();
    }
    aloft_config_t cfg = ALOFT_CONFIG_DEFAULT();
    esp_err_t err = aloft_start(&cfg);
    if (err != ESP_OK)
        ESP_LOGE(TAG, "aloft: %s", esp_err_to_name(err));
}
