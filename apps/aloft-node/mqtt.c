/* aloft-node: MQTT commands and state (PROTOCOLS.md §3.2) through
 * libmosquitto, on a network thread of its own.
 *
 * Commands: subscribed with QoS 1 to aloft/<platform>/<device-id>/cmd,
 * aloft/<platform>/cmd and --cmd-topic (seed style: /switch/cmd/root). An
 * {"type":"ota_trigger",...} goes to node_pull_parse and node_pull_start;
 * other types are logged and ignored; a payload that is not a valid trigger
 * makes the state "failed" with code bad_trigger (nothing else changes).
 * Retained commands are ignored: the broker would hand them over again at
 * every reconnection.
 *
 * State: node_state_json, retained with QoS 1, on
 * aloft/<platform>/<device-id>/state at every (re)connection and every
 * change (n->on_state). The last will, retained on the same topic, is that
 * state with "state":"offline": a device that vanishes (power, crash,
 * network) must not keep looking idle. A restart disconnects cleanly after
 * publishing "restarting", so the will is not sent then.
 *
 * Sessions are clean: a trigger reaches the devices connected when it is
 * published; the others find the release with their scheduled check
 * (--server). The broker going away: the network thread connects again
 * (1 s doubling to 30 s); losses and reconnections are logged. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "node.h"

#define KEEPALIVE_S 30
#define STOP_WAIT_MS 2000 /* for the broker to take the last state before a restart */

static struct mosquitto *mosq;
static struct node *node;
static char broker[300], state_topic[128];
static char host[256];
static int port;
static const char *topics[3];
static int n_topics;
static char topic_dev[128], topic_platform[128];
static bool was_connected, connected; /* ever, now (the network thread's) */

/* the network thread; stopping and done under conn_lock, wake signals both */
static pthread_t network_thread;
static pthread_mutex_t conn_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stopping, done;

/* the "restarting" state's acknowledgement, awaited by node_mqtt_stop */
static pthread_mutex_t pub_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t pub_cond = PTHREAD_COND_INITIALIZER;
static int pub_wait_mid = -1;
static bool pub_done;

/* The state as JSON text, its "state" replaced when phase is not NULL. */
static char *state_text(const char *phase, const char *reason)
{
    cJSON *j = node_state_json(node);
    if (phase)
        cJSON_ReplaceItemInObjectCaseSensitive(j, "state", cJSON_CreateString(phase));
    if (reason)
        cJSON_ReplaceItemInObjectCaseSensitive(j, "reason", cJSON_CreateString(reason));
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    return text;
}

static int publish_state(const char *phase, int *mid)
{
    char *text = state_text(phase, NULL);
    if (!text)
        return MOSQ_ERR_NOMEM;
    int rc = mosquitto_publish(mosq, mid, state_topic, (int)strlen(text), text, 1, true);
    free(text);
    return rc;
}

static void on_state(struct node *n)
{
    (void)n;
    /* not connected: the state goes out at the next connection */
    publish_state(NULL, NULL);
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)obj;
    if (rc) {
        node_log(node, "mqtt: %s refused the connection: %s", broker, mosquitto_connack_string(rc));
        return;
    }
    /* a restart re-executes the process: it must not inherit this socket */
    int fd = mosquitto_socket(m);
    if (fd >= 0)
        fcntl(fd, F_SETFD, fcntl(fd, F_GETFD) | FD_CLOEXEC);
    node_log(node, "mqtt: %s %s as %s", was_connected ? "reconnected to" : "connected to", broker, node->device_id);
    was_connected = connected = true;
    /* clean session: subscribe again on every connection, all in one SUBACK */
    int s = mosquitto_subscribe_multiple(m, NULL, n_topics, (char *const *)topics, 1, 0, NULL);
    if (s != MOSQ_ERR_SUCCESS)
        node_log(node, "mqtt: cannot subscribe: %s", mosquitto_strerror(s));
    s = publish_state(NULL, NULL);
    if (s != MOSQ_ERR_SUCCESS)
        node_log(node, "mqtt: cannot publish the state: %s", mosquitto_strerror(s));
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m, (void)obj;
    if (rc && connected)
        node_log(node, "mqtt: lost the connection to %s (%s); reconnecting with backoff", broker,
                 rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
    connected = false;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    (void)m, (void)obj, (void)mid;
    for (int i = 0; i < n; i++)
        if (granted[i] > 2)
            node_log(node, "mqtt: the broker refused the subscription to %s", topics[i]);
    node_log(node, "mqtt: subscribed to %d topic%s", n, n == 1 ? "" : "s");
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m, (void)obj;
    pthread_mutex_lock(&pub_lock);
    if (mid == pub_wait_mid) {
        pub_done = true;
        pthread_cond_broadcast(&pub_cond);
    }
    pthread_mutex_unlock(&pub_lock);
}

/* While an update runs, a bad command must not hide its progress: it is only logged then. */
static bool updating(void)
{
    pthread_mutex_lock(&node->state_lock);
    enum node_phase p = node->state.phase;
    pthread_mutex_unlock(&node->state_lock);
    return p == NODE_DOWNLOADING || p == NODE_VERIFYING || p == NODE_RESTARTING;
}

static void bad_trigger(const cJSON *j, const char *topic, const char *why)
{
    node_log(node, "mqtt: bad trigger on %s: %s", topic, why);
    if (updating())
        return;
    struct node_state s = {.phase = NODE_FAILED};
    /* echo the id when there is a usable one: its sender waits for an answer */
    const cJSON *id = j ? cJSON_GetObjectItemCaseSensitive(j, "id") : NULL;
    if (cJSON_IsString(id) && strlen(id->valuestring) < sizeof s.trigger)
        strcpy(s.trigger, id->valuestring);
    snprintf(s.code, sizeof s.code, "bad_trigger");
    snprintf(s.reason, sizeof s.reason, "bad trigger on %s: %s", topic, why);
    node_state_set(node, &s);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m, (void)obj;
    const char *payload = msg->payload ? (const char *)msg->payload : "";
    size_t len = (size_t)msg->payloadlen;
    if (msg->retain) {
        node_log(node, "mqtt: ignored a retained command on %s (publish triggers without retain)", msg->topic);
        return;
    }
    cJSON *j = cJSON_ParseWithLength(payload, len);
    const cJSON *type = cJSON_IsObject(j) ? cJSON_GetObjectItemCaseSensitive(j, "type") : NULL;
    if (cJSON_IsString(type) && strcmp(type->valuestring, "ota_trigger")) {
        node_log(node, "mqtt: ignored a \"%.40s\" command on %s (only ota_trigger is known)", type->valuestring,
                 msg->topic);
        cJSON_Delete(j);
        return;
    }
    struct node_pull_req r;
    char why[200];
    if (!j)
        bad_trigger(NULL, msg->topic, "not JSON");
    else if (node_pull_parse(payload, len, &r, why, sizeof why))
        bad_trigger(j, msg->topic, why);
    else {
        node_log(node, "mqtt: trigger%s%s on %s: %s%s%s%s", r.trigger[0] ? " " : "", r.trigger, msg->topic,
                 r.frontend ? "frontend " : "", r.url, r.version[0] ? " version " : "", r.version);
        node_pull_start(node, &r);
    }
    cJSON_Delete(j);
}

static bool is_stopping(void)
{
    pthread_mutex_lock(&conn_lock);
    bool stop = stopping;
    pthread_mutex_unlock(&conn_lock);
    return stop;
}

/* Sleep s seconds unless node_mqtt_stop comes first. */
static void pause_s(unsigned s)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += s;
    pthread_mutex_lock(&conn_lock);
    while (!stopping && pthread_cond_timedwait(&wake, &conn_lock, &t) == 0)
        ;
    pthread_mutex_unlock(&conn_lock);
}

/* The network thread: connect, serve the connection, and after a failure
 * or a loss connect again (1 s doubling to 30 s) until node_mqtt_stop.
 * Its own loop rather than mosquitto_loop_start's: that one gives up for
 * good on a TLS error, e.g. a broker whose certificate is being replaced. */
static void *network(void *arg)
{
    (void)arg;
    unsigned delay = 1;
    int last = MOSQ_ERR_SUCCESS;
    bool ever = false;
    while (!is_stopping()) {
        int rc = ever ? mosquitto_reconnect(mosq) : mosquitto_connect(mosq, host, port, KEEPALIVE_S), err = errno;
        if (rc == MOSQ_ERR_SUCCESS) {
            ever = true;
            while (!is_stopping() && (rc = mosquitto_loop(mosq, 200, 1)) == MOSQ_ERR_SUCCESS)
                ;
            err = errno;
            if (connected) /* it was up: start the backoff over */
                delay = 1;
            connected = false;
        }
        if (is_stopping())
            break;
        if (rc != last && !was_connected)
            node_log(node, "mqtt: cannot reach %s (%s%s); trying again with backoff", broker,
                     rc == MOSQ_ERR_ERRNO ? strerror(err) : mosquitto_strerror(rc),
                     rc == MOSQ_ERR_TLS ? " - is --mqtt-tls-ca the CA of the broker's certificate?" : "");
        last = rc;
        pause_s(delay);
        delay = delay * 2 > 30 ? 30 : delay * 2;
    }
    pthread_mutex_lock(&conn_lock);
    done = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&conn_lock);
    return NULL;
}

int node_mqtt_start(struct node *n)
{
    node = n;
    const char *colon = strrchr(n->cfg.mqtt, ':');
    port = atoi(colon + 1);
    snprintf(host, sizeof host, "%.*s", (int)(colon - n->cfg.mqtt), n->cfg.mqtt);
    snprintf(broker, sizeof broker, "%s%s:%d", n->cfg.mqtt_tls_ca ? "mqtts://" : "", host, port);
    snprintf(state_topic, sizeof state_topic, "aloft/%s/%s/state", n->platform, n->device_id);
    snprintf(topic_dev, sizeof topic_dev, "aloft/%s/%s/cmd", n->platform, n->device_id);
    snprintf(topic_platform, sizeof topic_platform, "aloft/%s/cmd", n->platform);
    topics[0] = topic_dev;
    topics[1] = topic_platform;
    topics[2] = n->cfg.cmd_topic;
    n_topics = n->cfg.cmd_topic ? 3 : 2;
    if (n->cfg.cmd_topic && mosquitto_sub_topic_check(n->cfg.cmd_topic) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "aloft-node: --cmd-topic '%s' is not a valid MQTT topic filter\n", n->cfg.cmd_topic);
        return -1;
    }

    mosquitto_lib_init();
    char id[80];
    snprintf(id, sizeof id, "aloft-node-%s", n->device_id);
    mosq = mosquitto_new(id, true, n);
    if (!mosq) {
        fprintf(stderr, "aloft-node: mqtt: cannot make a client: %s\n", strerror(errno));
        return -1;
    }
    int rc = MOSQ_ERR_SUCCESS;
    if (n->cfg.mqtt_tls_ca && (rc = mosquitto_tls_set(mosq, n->cfg.mqtt_tls_ca, NULL, NULL, NULL, NULL)) != 0) {
        fprintf(stderr, "aloft-node: --mqtt-tls-ca %s: %s\n", n->cfg.mqtt_tls_ca,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return -1;
    }
    if (n->cfg.mqtt_user && (rc = mosquitto_username_pw_set(mosq, n->cfg.mqtt_user, n->cfg.mqtt_password)) != 0) {
        fprintf(stderr, "aloft-node: --mqtt-user: %s\n", mosquitto_strerror(rc));
        return -1;
    }
    char *will = state_text("offline", "the broker lost the connection (last will)");
    rc = will ? mosquitto_will_set(mosq, state_topic, (int)strlen(will), will, 1, true) : MOSQ_ERR_NOMEM;
    free(will);
    if (rc) {
        fprintf(stderr, "aloft-node: mqtt: cannot set the last will: %s\n", mosquitto_strerror(rc));
        return -1;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    mosquitto_subscribe_callback_set(mosq, on_subscribe);
    mosquitto_message_callback_set(mosq, on_message);
    mosquitto_publish_callback_set(mosq, on_publish);
    mosquitto_threaded_set(mosq, true); /* states are published from the update's threads */
    n->on_state = on_state;

    if (pthread_create(&network_thread, NULL, network, NULL)) {
        fprintf(stderr, "aloft-node: mqtt: cannot start its thread: %s\n", strerror(errno));
        n->on_state = NULL;
        return -1;
    }
    node_log(n, "mqtt: broker %s; commands on %s, %s%s%s; state on %s", broker, topic_dev, topic_platform,
             n->cfg.cmd_topic ? ", " : "", n->cfg.cmd_topic ? n->cfg.cmd_topic : "", state_topic);
    return 0;
}

void node_mqtt_stop(struct node *n)
{
    if (!mosq)
        return;
    n->on_state = NULL;
    /* the last state first, while the network thread still runs */
    int mid = -1;
    pthread_mutex_lock(&pub_lock);
    pub_done = false;
    int rc = publish_state("restarting", &mid);
    pub_wait_mid = rc == MOSQ_ERR_SUCCESS ? mid : -1;
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += STOP_WAIT_MS / 1000;
    while (rc == MOSQ_ERR_SUCCESS && !pub_done && pthread_cond_timedwait(&pub_cond, &pub_lock, &t) == 0)
        ;
    bool acked = pub_done;
    pthread_mutex_unlock(&pub_lock);
    if (!acked && rc != MOSQ_ERR_NO_CONN)
        node_log(n, "mqtt: the broker did not take the restarting state (%s)",
                 rc ? mosquitto_strerror(rc) : "no acknowledgement");
    mosquitto_disconnect(mosq);
    pthread_mutex_lock(&conn_lock);
    stopping = true;
    pthread_cond_broadcast(&wake);
    /* the thread notices within a loop's 200 ms; a connection attempt to a
     * host that does not answer may take longer: then it ends with the process */
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += STOP_WAIT_MS / 1000;
    while (!done && pthread_cond_timedwait(&wake, &conn_lock, &t) == 0)
        ;
    bool finished = done;
    pthread_mutex_unlock(&conn_lock);
    if (!finished)
        return;
    pthread_join(network_thread, NULL);
    mosquitto_destroy(mosq);
    mosq = NULL;
    mosquitto_lib_cleanup();
}
