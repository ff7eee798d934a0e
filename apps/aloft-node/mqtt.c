/* aloft-node: MQTT commands and state (PROTOCOLS.md §3.2) through
 * libmosquitto, on a network thread of its own. The agent names the
 * topics, reads the commands (aloft_mqtt_command) and writes the state
 * documents; this moves them.
 *
 * Commands: subscribed with QoS 1 to the agent's command topics. State:
 * retained with QoS 1, at every (re)connection and every change (the
 * port's state event). The last will, retained on the same topic, is that
 * state with "state":"offline": a device that vanishes (power, crash,
 * network) must not keep looking idle. A restart disconnects cleanly after
 * publishing "restarting", so the will is not sent then.
 *
 * Sessions are clean: a trigger reaches the devices connected when it is
 * published; the others find the release with their scheduled check
 * (--server). The broker going away: the network thread connects again
 * (1 s doubling to 30 s); losses and reconnections are logged. */
#include <errno.h>
#include <fcntl.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/mqtt.h"
#include "node.h"

#define KEEPALIVE_S 30
#define STOP_WAIT_MS 2000 /* for the broker to take the last state before a restart */

static struct mosquitto *mosq;
static struct node *node;
static char broker[300];
static char host[256];
static int port;
static struct aloft_mqtt_topics topics;
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

/* The state document, its "state" replaced when phase is not NULL. */
static int state_text(const char *phase, const char *reason, char *buf, size_t cap)
{
    pthread_mutex_lock(&node->lock);
    int len = aloft_agent_state_json(&node->agent, phase, reason, buf, cap);
    pthread_mutex_unlock(&node->lock);
    return len;
}

static int publish_state(const char *phase, int *mid)
{
    char text[1024];
    int len = state_text(phase, NULL, text, sizeof text);
    return len < 0 ? MOSQ_ERR_NOMEM : mosquitto_publish(mosq, mid, topics.state, len, text, 1, true);
}

/* From inside the agent (its lock held): the document comes with the call. */
static void on_state(struct node *n, const char *json, size_t len)
{
    (void)n;
    /* not connected: the state goes out at the next connection */
    mosquitto_publish(mosq, NULL, topics.state, (int)len, json, 1, true);
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
    node_log(node, "mqtt: %s %s as %s", was_connected ? "reconnected to" : "connected to", broker, node->agent.device_id);
    was_connected = connected = true;
    /* clean session: subscribe again on every connection, all in one SUBACK */
    int s = mosquitto_subscribe_multiple(m, NULL, topics.count, (char *const *)topics.sub, 1, 0, NULL);
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
            node_log(node, "mqtt: the broker refused the subscription to %s", topics.sub[i]);
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

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m, (void)obj;
    struct aloft_pull_req r;
    struct aloft_pull *job = NULL;
    int rc = -1;
    pthread_mutex_lock(&node->lock);
    if (aloft_mqtt_command(&node->agent, msg->topic, msg->payload, (size_t)msg->payloadlen, msg->retain, &r) ==
            ALOFT_MQTT_TRIGGER &&
        (job = node_pull_new()))
        rc = aloft_pull_start(&node->agent, job, &r);
    pthread_mutex_unlock(&node->lock);
    if (rc == 0)
        node_pull_spawn(node, job);
    else
        free(job);
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
    pthread_mutex_lock(&n->lock);
    aloft_mqtt_topics(&n->agent, &topics);
    pthread_mutex_unlock(&n->lock);
    if (n->cfg.cmd_topic && mosquitto_sub_topic_check(n->cfg.cmd_topic) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "aloft-node: --cmd-topic '%s' is not a valid MQTT topic filter\n", n->cfg.cmd_topic);
        return -1;
    }

    mosquitto_lib_init();
    char id[80];
    snprintf(id, sizeof id, "aloft-node-%s", n->agent.device_id);
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
    char will[1024];
    int len = state_text("offline", "the broker lost the connection (last will)", will, sizeof will);
    rc = len < 0 ? MOSQ_ERR_NOMEM : mosquitto_will_set(mosq, topics.state, len, will, 1, true);
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
    node_log(n, "mqtt: broker %s; commands on %s, %s%s%s; state on %s", broker, topics.device, topics.platform,
             n->cfg.cmd_topic ? ", " : "", n->cfg.cmd_topic ? n->cfg.cmd_topic : "", topics.state);
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
