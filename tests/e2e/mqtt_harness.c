/* MQTT for end-to-end tests (mqtt_harness.h): a real mosquitto broker and a
 * recording libmosquitto client. */
#include "mqtt_harness.h"

#include <fcntl.h>
#include <mosquitto.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file.h"

/* ---- the broker ---- */

static struct mqtt_broker *brokers[8];

static void print_log_file(const char *log, const char *why)
{
    uint8_t *data = NULL;
    size_t len = 0;
    aloft_file_read(log, &data, &len);
    fprintf(stderr, "mosquitto: %s; %s:\n%.*s\n", why, log, (int)(len > 3000 ? 3000 : len),
            data ? (const char *)data + (len > 3000 ? len - 3000 : 0) : "");
    free(data);
}

static void stop_all(void)
{
    for (size_t i = 0; i < sizeof brokers / sizeof brokers[0]; i++)
        if (brokers[i] && brokers[i]->pid > 0) {
            kill(brokers[i]->pid, SIGKILL);
            waitpid(brokers[i]->pid, NULL, 0);
            brokers[i]->pid = 0;
        }
}

/* Every listener has its own settings: anonymous on the plain and TLS ones. */
static void write_conf(const struct mqtt_broker *b)
{
    char conf[2000];
    int n = snprintf(conf, sizeof conf, "per_listener_settings true\npersistence false\n%s"
                     "listener %u 127.0.0.1\nallow_anonymous true\n", geteuid() == 0 ? "user root\n" : "", b->port);
    if (b->tls_port)
        n += snprintf(conf + n, sizeof conf - (size_t)n,
                      "listener %u 127.0.0.1\nallow_anonymous true\ncertfile %s\nkeyfile %s\n", b->tls_port, b->cert,
                      b->key);
    if (b->auth_port)
        n += snprintf(conf + n, sizeof conf - (size_t)n, "listener %u 127.0.0.1\nallow_anonymous false\npassword_file %s\n",
                      b->auth_port, b->passwd);
    assert_true(n < (int)sizeof conf);
    e2e_file_write(b->conf, conf, (size_t)n);
}

static uint16_t another_port(const struct mqtt_broker *b)
{
    uint16_t p;
    do
        p = e2e_free_port();
    while (p == b->port || p == b->tls_port || p == b->auth_port);
    return p;
}

void mqtt_broker_init(struct mqtt_broker *b, const char *name, const char *cert, const char *key)
{
    static bool registered;
    if (!registered) {
        atexit(stop_all);
        registered = true;
    }
    size_t slot = 0;
    while (slot < sizeof brokers / sizeof brokers[0] && brokers[slot] && brokers[slot] != b)
        slot++;
    assert_true(slot < sizeof brokers / sizeof brokers[0]);
    brokers[slot] = b;
    memset(b, 0, sizeof *b);
    b->port = e2e_free_port();
    snprintf(b->addr, sizeof b->addr, "127.0.0.1:%u", b->port);
    char file[64];
    snprintf(file, sizeof file, "%s.conf", name);
    snprintf(b->conf, sizeof b->conf, "%s", e2e_path(file));
    snprintf(file, sizeof file, "%s.log", name);
    snprintf(b->log, sizeof b->log, "%s", e2e_path(file));
    snprintf(file, sizeof file, "%s.passwd", name);
    snprintf(b->passwd, sizeof b->passwd, "%s", e2e_path(file));
    if (cert) {
        b->tls_port = another_port(b);
        snprintf(b->tls_addr, sizeof b->tls_addr, "127.0.0.1:%u", b->tls_port);
        snprintf(b->cert, sizeof b->cert, "%s", cert);
        snprintf(b->key, sizeof b->key, "%s", key);
    }
    write_conf(b);
}

void mqtt_broker_add_password(struct mqtt_broker *b, const char *user, const char *password)
{
    assert_int_equal(b->pid, 0);
    const char *argv[] = {"mosquitto_passwd", "-b", "-c", b->passwd, user, password, NULL};
    pid_t pid = e2e_spawn("mosquitto_passwd", argv, b->log, O_APPEND, true);
    int status = -1;
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status))
        print_log_file(b->log, "mosquitto_passwd failed");
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    b->auth_port = another_port(b);
    snprintf(b->auth_addr, sizeof b->auth_addr, "127.0.0.1:%u", b->auth_port);
    write_conf(b);
}

static void print_log(const struct mqtt_broker *b, const char *why)
{
    print_log_file(b->log, why);
}

void mqtt_broker_start(struct mqtt_broker *b)
{
    assert_int_equal(b->pid, 0);
    const char *argv[] = {"mosquitto", "-c", b->conf, NULL};
    b->pid = e2e_spawn("mosquitto", argv, b->log, O_APPEND, true);
    uint64_t end = e2e_now_ms() + MQTT_WAIT_MS;
    while (!e2e_port_open(b->port) || (b->tls_port && !e2e_port_open(b->tls_port)) ||
           (b->auth_port && !e2e_port_open(b->auth_port))) {
        if (waitpid(b->pid, NULL, WNOHANG) == b->pid) {
            b->pid = 0;
            print_log(b, "exited (is Debian's mosquitto installed? scripts/deps.sh)");
            fail();
        }
        if (e2e_now_ms() > end) {
            print_log(b, "did not listen in time");
            mqtt_broker_stop(b);
            fail();
        }
        e2e_sleep_ms(20);
    }
}

void mqtt_broker_stop(struct mqtt_broker *b)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGTERM);
    uint64_t end = e2e_now_ms() + 3000;
    while (waitpid(b->pid, NULL, WNOHANG) != b->pid) {
        if (e2e_now_ms() > end) {
            kill(b->pid, SIGKILL);
            waitpid(b->pid, NULL, 0);
            break;
        }
        e2e_sleep_ms(10);
    }
    b->pid = 0;
}

void mqtt_broker_kill9(struct mqtt_broker *b)
{
    if (b->pid <= 0)
        return;
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
}

/* ---- the recording client ---- */

#define MAX_MSGS 4096

static struct {
    struct mosquitto *m;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    char filter[2][200];
    unsigned subscribed; /* SUBACKs seen */
    int wait_mid;
    bool published;
    unsigned n;
    char topic[MAX_MSGS][128];
    char *payload[MAX_MSGS];
    int qos[MAX_MSGS];
    bool retain[MAX_MSGS];
} sub = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)obj;
    if (rc)
        return;
    /* a clean session: subscribe again on every connection */
    for (int i = 0; i < 2; i++)
        if (sub.filter[i][0])
            mosquitto_subscribe(m, NULL, sub.filter[i], 1);
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    (void)m, (void)obj, (void)mid, (void)n, (void)granted;
    pthread_mutex_lock(&sub.lock);
    sub.subscribed++;
    pthread_cond_broadcast(&sub.cond);
    pthread_mutex_unlock(&sub.lock);
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m, (void)obj;
    pthread_mutex_lock(&sub.lock);
    if (mid == sub.wait_mid)
        sub.published = true;
    pthread_cond_broadcast(&sub.cond);
    pthread_mutex_unlock(&sub.lock);
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m, (void)obj;
    pthread_mutex_lock(&sub.lock);
    if (sub.n < MAX_MSGS) {
        snprintf(sub.topic[sub.n], sizeof sub.topic[0], "%s", msg->topic);
        sub.payload[sub.n] = strndup(msg->payload ? (const char *)msg->payload : "", (size_t)msg->payloadlen);
        sub.qos[sub.n] = msg->qos;
        sub.retain[sub.n] = msg->retain;
        sub.n++;
    }
    pthread_cond_broadcast(&sub.cond);
    pthread_mutex_unlock(&sub.lock);
}

unsigned mqtt_sub_subscribed(void)
{
    pthread_mutex_lock(&sub.lock);
    unsigned n = sub.subscribed;
    pthread_mutex_unlock(&sub.lock);
    return n;
}

void mqtt_sub_wait_subscribed(unsigned before)
{
    unsigned want = before + (sub.filter[1][0] ? 2 : 1);
    uint64_t end = e2e_now_ms() + 3 * MQTT_WAIT_MS; /* after a broker restart: libmosquitto's backoff */
    while (mqtt_sub_subscribed() < want && e2e_now_ms() < end)
        e2e_sleep_ms(10);
    if (mqtt_sub_subscribed() < want)
        fprintf(stderr, "the recording MQTT client did not subscribe in time\n");
    assert_true(mqtt_sub_subscribed() >= want);
}

void mqtt_sub_start(const struct mqtt_broker *b, const char *filter, const char *filter2)
{
    assert_null(sub.m);
    mosquitto_lib_init();
    snprintf(sub.filter[0], sizeof sub.filter[0], "%s", filter);
    snprintf(sub.filter[1], sizeof sub.filter[1], "%s", filter2 ? filter2 : "");
    char id[40];
    snprintf(id, sizeof id, "e2e-recorder-%ld", (long)getpid());
    sub.m = mosquitto_new(id, true, NULL);
    assert_non_null(sub.m);
    mosquitto_connect_callback_set(sub.m, on_connect);
    mosquitto_subscribe_callback_set(sub.m, on_subscribe);
    mosquitto_message_callback_set(sub.m, on_message);
    mosquitto_publish_callback_set(sub.m, on_publish);
    mosquitto_reconnect_delay_set(sub.m, 1, 1, false);
    unsigned before = mqtt_sub_subscribed();
    assert_int_equal(mosquitto_connect(sub.m, "127.0.0.1", b->port, 30), MOSQ_ERR_SUCCESS);
    assert_int_equal(mosquitto_loop_start(sub.m), MOSQ_ERR_SUCCESS);
    mqtt_sub_wait_subscribed(before);
}

void mqtt_sub_stop(void)
{
    if (sub.m) {
        mosquitto_disconnect(sub.m);
        mosquitto_loop_stop(sub.m, false);
        mosquitto_destroy(sub.m);
        sub.m = NULL;
    }
    mqtt_sub_clear();
}

void mqtt_sub_clear(void)
{
    pthread_mutex_lock(&sub.lock);
    for (unsigned i = 0; i < sub.n; i++)
        free(sub.payload[i]);
    sub.n = 0;
    pthread_mutex_unlock(&sub.lock);
}

unsigned mqtt_sub_count(void)
{
    pthread_mutex_lock(&sub.lock);
    unsigned n = sub.n;
    pthread_mutex_unlock(&sub.lock);
    return n;
}

bool mqtt_sub_retained(unsigned i)
{
    pthread_mutex_lock(&sub.lock);
    bool r = i < sub.n && sub.retain[i];
    pthread_mutex_unlock(&sub.lock);
    return r;
}

cJSON *mqtt_sub_message(unsigned i, char topic[128], int *qos, bool *retain)
{
    pthread_mutex_lock(&sub.lock);
    bool have = i < sub.n;
    if (have) {
        snprintf(topic, 128, "%s", sub.topic[i]);
        *qos = sub.qos[i];
        *retain = sub.retain[i];
    }
    cJSON *j = have ? cJSON_Parse(sub.payload[i]) : NULL;
    pthread_mutex_unlock(&sub.lock);
    if (!have)
        fprintf(stderr, "no MQTT message %u: %u arrived\n", i, mqtt_sub_count());
    assert_true(have);
    return j;
}

/* Message i matches (called with the lock held); its JSON when it does. */
static cJSON *match(unsigned i, const char *topic, const char *key, const char *value)
{
    if (strcmp(sub.topic[i], topic))
        return NULL;
    cJSON *j = cJSON_Parse(sub.payload[i]);
    if (!key)
        return j ? j : cJSON_CreateString(sub.payload[i]);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (cJSON_IsString(v) && !strcmp(v->valuestring, value))
        return j;
    cJSON_Delete(j);
    return NULL;
}

cJSON *mqtt_sub_wait(unsigned *from, const char *topic, const char *key, const char *value, unsigned timeout_ms)
{
    uint64_t end = e2e_now_ms() + timeout_ms;
    pthread_mutex_lock(&sub.lock);
    for (;;) {
        for (; *from < sub.n; (*from)++) {
            cJSON *j = match(*from, topic, key, value);
            if (j) {
                (*from)++;
                pthread_mutex_unlock(&sub.lock);
                return j;
            }
        }
        if (e2e_now_ms() >= end)
            break;
        pthread_mutex_unlock(&sub.lock);
        e2e_sleep_ms(10);
        pthread_mutex_lock(&sub.lock);
    }
    pthread_mutex_unlock(&sub.lock);
    return NULL;
}

unsigned mqtt_sub_matching(const char *topic, const char *key, const char *value)
{
    unsigned count = 0;
    pthread_mutex_lock(&sub.lock);
    for (unsigned i = 0; i < sub.n; i++) {
        cJSON *j = match(i, topic, key, value);
        count += j != NULL;
        cJSON_Delete(j);
    }
    pthread_mutex_unlock(&sub.lock);
    return count;
}

void mqtt_publish(const char *topic, const char *payload, bool retain)
{
    assert_non_null(sub.m);
    pthread_mutex_lock(&sub.lock);
    sub.published = false;
    int mid;
    int rc = mosquitto_publish(sub.m, &mid, topic, (int)strlen(payload), payload, 1, retain);
    sub.wait_mid = mid;
    pthread_mutex_unlock(&sub.lock);
    assert_int_equal(rc, MOSQ_ERR_SUCCESS);
    uint64_t end = e2e_now_ms() + MQTT_WAIT_MS;
    pthread_mutex_lock(&sub.lock);
    while (!sub.published && e2e_now_ms() < end) {
        pthread_mutex_unlock(&sub.lock);
        e2e_sleep_ms(5);
        pthread_mutex_lock(&sub.lock);
    }
    bool ok = sub.published;
    pthread_mutex_unlock(&sub.lock);
    if (!ok)
        fprintf(stderr, "the broker did not acknowledge the message to %s\n", topic);
    assert_true(ok);
}

void mqtt_unretain(const char *topic)
{
    mqtt_publish(topic, "", true);
}
