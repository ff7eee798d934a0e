/* fake-idf: esp-mqtt over libmosquitto. libmosquitto's network thread
 * stands for esp-mqtt's task: it connects, reconnects after a loss and
 * delivers the events. As in esp-mqtt, one recursive lock is held while a
 * handler runs and taken by publish and subscribe, so a glue that
 * publishes while holding what a handler waits for deadlocks here too;
 * subscribing needs a connection; a message longer than the client's
 * buffer arrives as several DATA events, the topic in the first only. */
#include <mosquitto.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "chip.h"
#include "esp_log.h"
#include "mqtt_client.h"

#define DEFAULT_BUFFER 1024   /* MQTT_BUFFER_SIZE_BYTE */
#define DEFAULT_KEEPALIVE 120
#define DEFAULT_RECONNECT_MS 10000

static const char *TAG = "mqtt_client";

struct esp_mqtt_client {
    struct mosquitto *mosq;
    pthread_mutex_t lock; /* esp-mqtt's API lock, recursive */
    char host[128], user[64], pass[64], client_id[128], cafile[64];
    int port, keepalive, buffer;
    bool tls, connected;
    esp_event_handler_t handler;
    esp_mqtt_event_id_t handler_event;
    void *handler_arg;
};

static void dispatch(esp_mqtt_client_handle_t c, esp_mqtt_event_t *e)
{
    e->client = c;
    pthread_mutex_lock(&c->lock);
    if (c->handler && (c->handler_event == MQTT_EVENT_ANY || c->handler_event == e->event_id))
        c->handler(c->handler_arg, "MQTT_EVENTS", e->event_id, e);
    pthread_mutex_unlock(&c->lock);
}

static void on_connect(struct mosquitto *m, void *arg, int rc, int flags, const mosquitto_property *props)
{
    (void)m, (void)props;
    esp_mqtt_client_handle_t c = arg;
    if (rc) {
        esp_mqtt_error_codes_t err = {.error_type = MQTT_ERROR_TYPE_CONNECTION_REFUSED,
                                      .connect_return_code = (esp_mqtt_connect_return_code_t)rc};
        dispatch(c, &(esp_mqtt_event_t){.event_id = MQTT_EVENT_ERROR, .error_handle = &err});
        dispatch(c, &(esp_mqtt_event_t){.event_id = MQTT_EVENT_DISCONNECTED});
        return;
    }
    c->connected = true;
    dispatch(c, &(esp_mqtt_event_t){.event_id = MQTT_EVENT_CONNECTED, .session_present = flags & 1});
}

static void on_disconnect(struct mosquitto *m, void *arg, int rc, const mosquitto_property *props)
{
    (void)m, (void)rc, (void)props;
    esp_mqtt_client_handle_t c = arg;
    c->connected = false;
    dispatch(c, &(esp_mqtt_event_t){.event_id = MQTT_EVENT_DISCONNECTED});
}

static void on_subscribe(struct mosquitto *m, void *arg, int mid, int n, const int *granted)
{
    (void)m, (void)n, (void)granted;
    dispatch(arg, &(esp_mqtt_event_t){.event_id = MQTT_EVENT_SUBSCRIBED, .msg_id = mid});
}

static void on_publish(struct mosquitto *m, void *arg, int mid, int rc, const mosquitto_property *props)
{
    (void)m, (void)rc, (void)props;
    dispatch(arg, &(esp_mqtt_event_t){.event_id = MQTT_EVENT_PUBLISHED, .msg_id = mid});
}

/* The PUBLISH packet as esp-mqtt reads it into its buffer: the first
 * event has the topic and what of the payload fits after the packet's
 * header, each next one a bufferful of the payload. */
static void on_message(struct mosquitto *m, void *arg, const struct mosquitto_message *msg)
{
    (void)m;
    esp_mqtt_client_handle_t c = arg;
    int topic_len = (int)strlen(msg->topic);
    int remaining = 2 + topic_len + (msg->qos ? 2 : 0) + msg->payloadlen;
    int head = 1 + (remaining < 128 ? 1 : remaining < 16384 ? 2 : 3) + 2 + topic_len + (msg->qos ? 2 : 0);
    int room = c->buffer - head > 0 ? c->buffer - head : 1;
    int off = 0;
    do {
        int n = msg->payloadlen - off < room ? msg->payloadlen - off : room;
        esp_mqtt_event_t e = {
            .event_id = MQTT_EVENT_DATA,
            .data = (char *)msg->payload + off,
            .data_len = n,
            .total_data_len = msg->payloadlen,
            .current_data_offset = off,
            .topic = off ? NULL : msg->topic,
            .topic_len = off ? 0 : topic_len,
            .msg_id = msg->mid,
            .retain = msg->retain,
            .qos = msg->qos,
        };
        dispatch(c, &e);
        off += n;
        room = c->buffer;
    } while (off < msg->payloadlen);
}

/* mqtt[s]://[user[:password]@]host[:port][/path] */
static bool parse_uri(esp_mqtt_client_handle_t c, const char *uri)
{
    const char *p;
    if (!strncmp(uri, "mqtt://", 7))
        p = uri + 7, c->port = 1883;
    else if (!strncmp(uri, "mqtts://", 8))
        p = uri + 8, c->port = 8883, c->tls = true;
    else
        return false;
    const char *end = p + strcspn(p, "/"), *at = memchr(p, '@', (size_t)(end - p));
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        snprintf(c->user, sizeof c->user, "%.*s", (int)((colon ? colon : at) - p), p);
        if (colon)
            snprintf(c->pass, sizeof c->pass, "%.*s", (int)(at - colon - 1), colon + 1);
        p = at + 1;
    }
    const char *colon = memchr(p, ':', (size_t)(end - p));
    snprintf(c->host, sizeof c->host, "%.*s", (int)((colon ? colon : end) - p), p);
    if (colon)
        c->port = atoi(colon + 1);
    return c->host[0] && c->port > 0;
}

/* mosquitto reads a CA from a file: the config's PEM goes to one. */
static bool set_tls(esp_mqtt_client_handle_t c, const esp_mqtt_client_config_t *cfg)
{
    const char *pem = cfg->broker.verification.certificate;
    if (!pem) /* the bundle */
        return cfg->broker.verification.crt_bundle_attach &&
               mosquitto_tls_set(c->mosq, fake_idf_ca_bundle(), fake_idf_ca_bundle() ? NULL : "/etc/ssl/certs", NULL,
                                 NULL, NULL) == MOSQ_ERR_SUCCESS;
    snprintf(c->cafile, sizeof c->cafile, "/tmp/fake-idf-mqtt-ca-XXXXXX");
    int fd = mkstemp(c->cafile);
    size_t len = cfg->broker.verification.certificate_len ? cfg->broker.verification.certificate_len : strlen(pem);
    bool ok = fd >= 0 && write(fd, pem, len) == (ssize_t)len;
    if (fd >= 0)
        close(fd);
    return ok && mosquitto_tls_set(c->mosq, c->cafile, NULL, NULL, NULL, NULL) == MOSQ_ERR_SUCCESS;
}

static void lib_init(void)
{
    mosquitto_lib_init();
}

esp_mqtt_client_handle_t esp_mqtt_client_init(const esp_mqtt_client_config_t *cfg)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, lib_init);
    esp_mqtt_client_handle_t c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    pthread_mutexattr_t attr;
    pthread_mutexattr_init(&attr);
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
    pthread_mutex_init(&c->lock, &attr);
    pthread_mutexattr_destroy(&attr);
    if (!cfg->broker.address.uri || !parse_uri(c, cfg->broker.address.uri)) {
        ESP_LOGE(TAG, "cannot parse the broker URI");
        free(c);
        return NULL;
    }
    if (cfg->credentials.username)
        snprintf(c->user, sizeof c->user, "%s", cfg->credentials.username);
    if (cfg->credentials.authentication.password)
        snprintf(c->pass, sizeof c->pass, "%s", cfg->credentials.authentication.password);
    snprintf(c->client_id, sizeof c->client_id, "%s", cfg->credentials.client_id ? cfg->credentials.client_id : "ESP32_000001");
    c->keepalive = cfg->session.keepalive ? cfg->session.keepalive : DEFAULT_KEEPALIVE;
    c->buffer = cfg->buffer.size ? cfg->buffer.size : DEFAULT_BUFFER;
    c->mosq = mosquitto_new(c->client_id, !cfg->session.disable_clean_session, c);
    const struct last_will_t *w = &cfg->session.last_will;
    int reconnect_s = (cfg->network.reconnect_timeout_ms ? cfg->network.reconnect_timeout_ms : DEFAULT_RECONNECT_MS) / 1000;
    bool ok = c->mosq && (!c->tls || set_tls(c, cfg)) &&
              (!c->user[0] || mosquitto_username_pw_set(c->mosq, c->user, c->pass[0] ? c->pass : NULL) == MOSQ_ERR_SUCCESS) &&
              (!w->topic || mosquitto_will_set(c->mosq, w->topic, w->msg_len ? w->msg_len : (int)strlen(w->msg), w->msg,
                                               w->qos, w->retain) == MOSQ_ERR_SUCCESS) &&
              mosquitto_reconnect_delay_set(c->mosq, reconnect_s > 0 ? (unsigned)reconnect_s : 1, reconnect_s > 0 ? (unsigned)reconnect_s : 1,
                                            false) == MOSQ_ERR_SUCCESS;
    if (!ok) {
        if (c->mosq)
            mosquitto_destroy(c->mosq);
        if (c->cafile[0])
            unlink(c->cafile);
        free(c);
        return NULL;
    }
    mosquitto_connect_v5_callback_set(c->mosq, on_connect);
    mosquitto_disconnect_v5_callback_set(c->mosq, on_disconnect);
    mosquitto_subscribe_callback_set(c->mosq, on_subscribe);
    mosquitto_publish_v5_callback_set(c->mosq, on_publish);
    mosquitto_message_callback_set(c->mosq, on_message);
    return c;
}

esp_err_t esp_mqtt_client_register_event(esp_mqtt_client_handle_t c, esp_mqtt_event_id_t event,
                                         esp_event_handler_t event_handler, void *event_handler_arg)
{
    if (!c || !event_handler)
        return ESP_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->lock);
    c->handler = event_handler;
    c->handler_event = event;
    c->handler_arg = event_handler_arg;
    pthread_mutex_unlock(&c->lock);
    return ESP_OK;
}

/* Connects in the background, as esp-mqtt's task does: a broker not there
 * yet is tried again every reconnect timeout. */
esp_err_t esp_mqtt_client_start(esp_mqtt_client_handle_t c)
{
    if (!c)
        return ESP_ERR_INVALID_ARG;
    mosquitto_connect_async(c->mosq, c->host, c->port, c->keepalive);
    return mosquitto_loop_start(c->mosq) == MOSQ_ERR_SUCCESS ? ESP_OK : ESP_FAIL;
}

esp_err_t esp_mqtt_client_disconnect(esp_mqtt_client_handle_t c)
{
    if (!c)
        return ESP_ERR_INVALID_ARG;
    pthread_mutex_lock(&c->lock);
    int rc = mosquitto_disconnect(c->mosq);
    pthread_mutex_unlock(&c->lock);
    return rc == MOSQ_ERR_SUCCESS ? ESP_OK : ESP_FAIL;
}

/* Stops its network thread and frees it (the glue never does; tests do). */
esp_err_t esp_mqtt_client_destroy(esp_mqtt_client_handle_t c)
{
    if (!c)
        return ESP_ERR_INVALID_ARG;
    mosquitto_disconnect(c->mosq);
    mosquitto_loop_stop(c->mosq, true);
    mosquitto_destroy(c->mosq);
    if (c->cafile[0])
        unlink(c->cafile);
    pthread_mutex_destroy(&c->lock);
    free(c);
    return ESP_OK;
}

int esp_mqtt_client_subscribe_single(esp_mqtt_client_handle_t c, const char *topic, int qos)
{
    if (!c || !topic)
        return -1;
    int mid = -1;
    pthread_mutex_lock(&c->lock);
    if (c->connected && mosquitto_subscribe(c->mosq, &mid, topic, qos) != MOSQ_ERR_SUCCESS)
        mid = -1;
    pthread_mutex_unlock(&c->lock);
    return mid;
}

/* The message id (0 for QoS 0), or -1. len 0: data is a string. */
int esp_mqtt_client_publish(esp_mqtt_client_handle_t c, const char *topic, const char *data, int len, int qos,
                            int retain)
{
    if (!c || !topic)
        return -1;
    if (!len && data)
        len = (int)strlen(data);
    int mid = 0;
    pthread_mutex_lock(&c->lock);
    int rc = mosquitto_publish(c->mosq, &mid, topic, len, data, qos, retain);
    pthread_mutex_unlock(&c->lock);
    return rc != MOSQ_ERR_SUCCESS ? -1 : qos ? mid : 0;
}
