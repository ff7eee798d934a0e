/* fake-idf: the default event loop, esp_netif and a Wi-Fi station. The
 * host is on the network already, so the station "joins" at once: start
 * posts WIFI_EVENT_STA_START, connect posts IP_EVENT_STA_GOT_IP. Handlers
 * run one at a time on the loop's own thread, as ESP-IDF's default loop
 * runs them on its task, so a handler may call esp_wifi_connect. */
#include <arpa/inet.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "esp_event.h"
#include "esp_netif.h"
#include "esp_wifi.h"

esp_event_base_t const WIFI_EVENT = "WIFI_EVENT";
esp_event_base_t const IP_EVENT = "IP_EVENT";

#define HANDLERS 16
#define QUEUE 16

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t posted = PTHREAD_COND_INITIALIZER;
static struct {
    esp_event_base_t base;
    int32_t id;
    esp_event_handler_t fn;
    void *arg;
} handlers[HANDLERS];
static struct {
    esp_event_base_t base;
    int32_t id;
} queue[QUEUE];
static unsigned head, count, n_handlers;
static bool loop_up, netif_up, wifi_init, started;
static wifi_mode_t mode;

static void *loop(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!count)
            pthread_cond_wait(&posted, &lock);
        esp_event_base_t base = queue[head].base;
        int32_t id = queue[head].id;
        head = (head + 1) % QUEUE;
        count--;
        for (unsigned i = 0; i < n_handlers; i++)
            if (handlers[i].base == base && (handlers[i].id == ESP_EVENT_ANY_ID || handlers[i].id == id)) {
                esp_event_handler_t fn = handlers[i].fn;
                void *arg = handlers[i].arg;
                pthread_mutex_unlock(&lock);
                fn(arg, base, id, NULL);
                pthread_mutex_lock(&lock);
            }
    }
    return NULL;
}

static esp_err_t post(esp_event_base_t base, int32_t id)
{
    pthread_mutex_lock(&lock);
    esp_err_t err = ESP_OK;
    if (!loop_up)
        err = ESP_ERR_INVALID_STATE;
    else if (count == QUEUE)
        err = ESP_ERR_TIMEOUT;
    else {
        queue[(head + count++) % QUEUE].base = base;
        queue[(head + count - 1) % QUEUE].id = id;
        pthread_cond_signal(&posted);
    }
    pthread_mutex_unlock(&lock);
    return err;
}

esp_err_t esp_event_loop_create_default(void)
{
    pthread_mutex_lock(&lock);
    esp_err_t err = ESP_ERR_INVALID_STATE;
    pthread_t t;
    if (!loop_up && pthread_create(&t, NULL, loop, NULL) == 0) {
        pthread_detach(t);
        loop_up = true;
        err = ESP_OK;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

esp_err_t esp_event_handler_register(esp_event_base_t event_base, int32_t event_id,
                                     esp_event_handler_t event_handler, void *event_handler_arg)
{
    if (!event_base || !event_handler)
        return ESP_ERR_INVALID_ARG;
    pthread_mutex_lock(&lock);
    esp_err_t err = ESP_ERR_NO_MEM;
    if (n_handlers < HANDLERS) {
        handlers[n_handlers].base = event_base;
        handlers[n_handlers].id = event_id;
        handlers[n_handlers].fn = event_handler;
        handlers[n_handlers++].arg = event_handler_arg;
        err = ESP_OK;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

esp_err_t esp_netif_init(void)
{
    netif_up = true;
    return ESP_OK;
}

static int sta;
static bool sta_made;

esp_netif_t *esp_netif_create_default_wifi_sta(void)
{
    sta_made = netif_up;
    return netif_up ? (esp_netif_t *)&sta : NULL;
}

esp_netif_t *esp_netif_get_default_netif(void)
{
    return sta_made ? (esp_netif_t *)&sta : NULL;
}

esp_err_t esp_netif_get_ip_info(esp_netif_t *esp_netif, esp_netif_ip_info_t *ip_info)
{
    const char *ip = getenv("FAKE_IDF_IP");
    if (!esp_netif || !ip_info)
        return ESP_ERR_INVALID_ARG;
    memset(ip_info, 0, sizeof *ip_info);
    if (started && ip && inet_pton(AF_INET, ip, &ip_info->ip.addr) != 1)
        ip_info->ip.addr = 0;
    return ESP_OK;
}

esp_err_t esp_wifi_init(const wifi_init_config_t *config)
{
    if (!config || config->magic != 0x1F2F3F4F)
        return ESP_ERR_INVALID_ARG;
    wifi_init = netif_up;
    return wifi_init ? ESP_OK : ESP_ERR_INVALID_STATE;
}

esp_err_t esp_wifi_set_mode(wifi_mode_t m)
{
    if (!wifi_init)
        return ESP_ERR_INVALID_STATE;
    mode = m;
    return ESP_OK;
}

esp_err_t esp_wifi_set_config(wifi_interface_t interface, wifi_config_t *conf)
{
    if (!wifi_init)
        return ESP_ERR_INVALID_STATE;
    return interface == WIFI_IF_STA && conf && conf->sta.ssid[0] ? ESP_OK : ESP_ERR_INVALID_ARG;
}

esp_err_t esp_wifi_start(void)
{
    if (!wifi_init || mode != WIFI_MODE_STA)
        return ESP_ERR_INVALID_STATE;
    started = true;
    return post(WIFI_EVENT, WIFI_EVENT_STA_START);
}

esp_err_t esp_wifi_connect(void)
{
    return started ? post(IP_EVENT, IP_EVENT_STA_GOT_IP) : ESP_ERR_INVALID_STATE;
}
