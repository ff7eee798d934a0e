/* aloft on ESP-IDF: MQTT commands and state (PROTOCOLS.md §3.2) through
 * esp-mqtt. The agent names the topics, reads the commands
 * (aloft_mqtt_command) and writes the state documents; this moves them.
 *
 * esp-mqtt runs its event handlers on its task holding its own lock, and
 * its publish takes that lock: a task holding the agent's mutex that
 * published would deadlock with a command being handled. So a state
 * document the agent hands over (its mutex held) is only copied here, and
 * a small task of this file publishes the latest one (the state is
 * retained: one skipped in between is never missed). Handlers may take
 * the agent's mutex, since nothing that holds it waits for esp-mqtt.
 *
 * Commands: QoS 1 on the agent's topics, whole messages only (a message
 * longer than the client's buffer arrives in pieces and is refused; the
 * buffer holds the longest trigger the agent takes). State: retained,
 * QoS 1, at every connection and every change, none while disconnected
 * (the next connection sends the current one). The last will, retained on
 * the same topic, is that state with "offline"; a restart publishes
 * "restarting" and disconnects first, so the will is not sent then. The
 * client reconnects by itself after a loss. */
#include <stdlib.h>
#include <string.h>

#include "aloft/mqtt.h"
#include "esp_log.h"
#include "esp_system.h"
#include "glue.h"
#include "mqtt_client.h"

#define BUFFER_SIZE (ALOFT_PUSH_TRIGGER_MAX + 512) /* a whole trigger and its topic */
#define KEEPALIVE_S 30
#define RESTART_WAIT_MS 2000                     /* for the broker to take "restarting" */
#define SENDER_STACK 4096                        /* a publish writes through TLS on it */
#define SEND_STATE (1u << 0)
#define SEND_RESTART (1u << 1)
#define ACKED (1u << 2)

static const char *TAG = "aloft";
static struct aloft_idf *dev;
static esp_mqtt_client_handle_t client;
static struct aloft_mqtt_topics topics;
static TaskHandle_t sender;
static SemaphoreHandle_t doc_lock; /* doc and doc_len */
static char doc[1024], out[1024];
static size_t doc_len;
static volatile bool connected;
static bool was_connected;
static int subscribed; /* SUBACKs of this connection */
static volatile int restart_mid = -1;

/* The broker for the log, without the user:password@ of its URI. */
static const char *broker(void)
{
    const char *at = strrchr(dev->cfg.mqtt_uri, '@');
    return at ? at + 1 : dev->cfg.mqtt_uri;
}

void aloft_idf_mqtt_state(const char *json, size_t len)
{
    if (!sender || len > sizeof doc)
        return;
    xSemaphoreTake(doc_lock, portMAX_DELAY);
    memcpy(doc, json, len);
    doc_len = len;
    xSemaphoreGive(doc_lock);
    xTaskNotify(sender, SEND_STATE, eSetBits);
}

bool aloft_idf_mqtt_restart(void)
{
    if (!sender)
        return false;
    xTaskNotify(sender, SEND_RESTART, eSetBits);
    return true;
}

static void send_state(void)
{
    xSemaphoreTake(doc_lock, portMAX_DELAY);
    size_t len = doc_len;
    memcpy(out, doc, len);
    xSemaphoreGive(doc_lock);
    if (connected && len)
        esp_mqtt_client_publish(client, topics.state, out, (int)len, 1, 1);
}

/* "restarting", acknowledged or given up on after a while, a clean
 * disconnect (no will), then the restart. */
static void restart(void)
{
    aloft_idf_lock(dev);
    int len = aloft_agent_state_json(&dev->agent, "restarting", NULL, out, sizeof out);
    aloft_idf_unlock(dev);
    if (connected && len > 0) {
        restart_mid = esp_mqtt_client_publish(client, topics.state, out, len, 1, 1);
        TickType_t start = xTaskGetTickCount(), wait = pdMS_TO_TICKS(RESTART_WAIT_MS);
        uint32_t bits = 0;
        while (restart_mid >= 0 && !(bits & ACKED) && xTaskGetTickCount() - start < wait)
            xTaskNotifyWait(0, UINT32_MAX, &bits, wait - (xTaskGetTickCount() - start));
        if (!(bits & ACKED))
            ESP_LOGW(TAG, "mqtt: the broker did not take the restarting state");
        esp_mqtt_client_disconnect(client);
    }
    esp_restart();
}

static void sender_task(void *arg)
{
    (void)arg;
    for (;;) {
        uint32_t bits = 0;
        xTaskNotifyWait(0, UINT32_MAX, &bits, portMAX_DELAY);
        if (bits & SEND_RESTART)
            restart();
        if (bits & SEND_STATE)
            send_state();
    }
}

/* Clean session: subscribe again on every connection; then the state. */
static void on_connected(void)
{
    ESP_LOGI(TAG, "mqtt: %s %s as %s", was_connected ? "reconnected to" : "connected to", broker(),
             dev->agent.device_id);
    connected = was_connected = true;
    subscribed = 0;
    for (int i = 0; i < topics.count; i++)
        if (esp_mqtt_client_subscribe(client, topics.sub[i], 1) < 0)
            ESP_LOGE(TAG, "mqtt: cannot subscribe to %s", topics.sub[i]);
    aloft_idf_lock(dev);
    xSemaphoreTake(doc_lock, portMAX_DELAY);
    int len = aloft_agent_state_json(&dev->agent, NULL, NULL, doc, sizeof doc);
    doc_len = len > 0 ? (size_t)len : 0;
    xSemaphoreGive(doc_lock);
    aloft_idf_unlock(dev);
    xTaskNotify(sender, SEND_STATE, eSetBits);
}

/* A command; a trigger starts a job. */
static void on_data(const esp_mqtt_event_t *e)
{
    static struct aloft_pull_req r; /* only this handler, on the client's task, uses it */
    char topic[160];
    if (e->current_data_offset || e->data_len != e->total_data_len) {
        if (!e->current_data_offset)
            ESP_LOGW(TAG, "mqtt: a %d-byte message on %.*s is longer than a command can be: ignored",
                     e->total_data_len, e->topic_len, e->topic);
        return;
    }
    if (e->topic_len <= 0 || e->topic_len >= (int)sizeof topic)
        return;
    memcpy(topic, e->topic, (size_t)e->topic_len);
    topic[e->topic_len] = 0;
    struct aloft_pull *job = NULL;
    int rc = -1;
    aloft_idf_lock(dev);
    if (aloft_mqtt_command(&dev->agent, topic, e->data, (size_t)e->data_len, e->retain, &r) == ALOFT_MQTT_TRIGGER &&
        (job = aloft_idf_pull_new()))
        rc = aloft_pull_start(&dev->agent, job, &r);
    aloft_idf_unlock(dev);
    if (rc == 0)
        aloft_idf_pull_spawn(dev, job);
    else
        free(job);
}

static void on_event(void *arg, esp_event_base_t base, int32_t id, void *data)
{
    (void)arg, (void)base;
    const esp_mqtt_event_t *e = data;
    switch ((esp_mqtt_event_id_t)id) {
    case MQTT_EVENT_CONNECTED:
        on_connected();
        break;
    case MQTT_EVENT_DISCONNECTED:
        if (connected)
            ESP_LOGW(TAG, "mqtt: lost the connection to %s; reconnecting", broker());
        connected = false;
        break;
    case MQTT_EVENT_SUBSCRIBED: /* commands arrive from here on */
        if (++subscribed == topics.count)
            ESP_LOGI(TAG, "mqtt: subscribed to %d topic%s", subscribed, subscribed == 1 ? "" : "s");
        break;
    case MQTT_EVENT_ERROR:
        if (e->error_handle && e->error_handle->error_type == MQTT_ERROR_TYPE_CONNECTION_REFUSED)
            ESP_LOGW(TAG, "mqtt: %s refused the connection (return code %d): check the user and password",
                     broker(), (int)e->error_handle->connect_return_code);
        break;
    case MQTT_EVENT_PUBLISHED:
        if (e->msg_id == restart_mid)
            xTaskNotify(sender, ACKED, eSetBits);
        break;
    case MQTT_EVENT_DATA:
        on_data(e);
        break;
    default:
        break;
    }
}

esp_err_t aloft_idf_mqtt_start(struct aloft_idf *d)
{
    static char will[1024], client_id[80];
    dev = d;
    aloft_idf_lock(d);
    aloft_mqtt_topics(&d->agent, &topics);
    int len = aloft_agent_state_json(&d->agent, "offline", "the broker lost the connection (last will)", will,
                                     sizeof will);
    aloft_idf_unlock(d);
    snprintf(client_id, sizeof client_id, "aloft-%s", d->agent.device_id);
    const esp_mqtt_client_config_t cfg = {
        .broker.address.uri = d->cfg.mqtt_uri,
        .broker.verification.certificate = aloft_idf_opt(d->cfg.ca_pem),
        .broker.verification.crt_bundle_attach = aloft_idf_bundle(d),
        .credentials.client_id = client_id,
        .session.last_will = {.topic = topics.state, .msg = will, .msg_len = len, .qos = 1, .retain = 1},
        .session.keepalive = KEEPALIVE_S,
        .buffer.size = BUFFER_SIZE,
        .task.stack_size = (int)d->cfg.task_stack_size, /* commands start jobs on it; TLS runs on it */
    };
    doc_lock = xSemaphoreCreateMutex();
    client = doc_lock && len > 0 ? esp_mqtt_client_init(&cfg) : NULL;
    esp_err_t err = client ? esp_mqtt_client_register_event(client, MQTT_EVENT_ANY, on_event, NULL) : ESP_ERR_NO_MEM;
    if (err == ESP_OK && xTaskCreate(sender_task, "aloft_mqtt", SENDER_STACK, NULL, tskIDLE_PRIORITY + 5, &sender) != pdPASS)
        err = ESP_ERR_NO_MEM;
    if (err == ESP_OK)
        err = esp_mqtt_client_start(client);
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "mqtt: cannot start the client for %s: %s", broker(), esp_err_to_name(err));
        return err;
    }
    ESP_LOGI(TAG, "mqtt: broker %s; commands on %s, %s%s%s; state on %s", broker(), topics.device, topics.platform,
             topics.count > 2 ? ", " : "", topics.count > 2 ? topics.sub[2] : "", topics.state);
    return ESP_OK;
}
