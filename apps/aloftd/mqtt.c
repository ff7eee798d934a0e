/* aloftd: MQTT triggers (PROTOCOLS.md §3.2) through libmosquitto.
 *
 * With --mqtt HOST:PORT aloftd connects to the broker in the background
 * (a thread of its own) and reconnects with a growing delay (0.5 s up
 * to 30 s) whenever the broker goes away: the server runs the same while
 * the broker is down. A trigger is published with QoS 1, not retained:
 *   {"type":"ota_trigger","url":"<public-url>/firmware/<sha256>.bin",
 *    "version":V,"sha256":H,"size":N}
 * to aloft/<platform>/cmd (every device of the platform) or to
 * aloft/<platform>/<device-id>/cmd, the device id being its MAC as the
 * inventory has it (AA:BB:CC:DD:EE:FF). With the patch from the image a
 * device runs (as it named it at its last check-in) when one worth sending
 * exists, also "delta_url":"<public-url>/firmware/<patch sha256>.bin" and
 * "delta_base":<that image>; when none was made yet it is asked for
 * (deltas.c) and the image goes. A platform's trigger is one message for
 * all: it carries the patch from the most common image its devices run
 * that has one (a device on another image takes the image at url). A
 * trigger that finds no connection is not kept: the caller learns it (the
 * operator's trigger answers 503; a rollout logs it) and devices still
 * check /update on their own. */
#include <errno.h>
#include <mosquitto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloftd.h"

static struct mosquitto *mosq;
static atomic_bool connected;
static char broker[300];
static char host[256];
static int port;
static char public_url[600];

/* The connection's thread: connect, serve the connection (mosquitto_loop),
 * and after a failure wait (0.5 s, doubling up to 30 s) and connect again,
 * until aloftd_mqtt_stop. */
static pthread_t thread;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static bool stopping, done;

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 30000

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m, (void)obj;
    if (rc == 0) {
        atomic_store(&connected, true);
        aloftd_log("mqtt: connected to %s", broker);
    } else {
        aloftd_log("mqtt: %s refused the connection: %s", broker, mosquitto_connack_string(rc));
    }
}

static void on_disconnect(struct mosquitto *m, void *obj, int rc)
{
    (void)m, (void)obj;
    bool was = atomic_exchange(&connected, false);
    if (was && rc != 0)
        aloftd_log("mqtt: lost the connection to %s; reconnecting in the background", broker);
}

/* Sleep ms unless stopping; true when stopping. */
static bool pause_ms(unsigned ms)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += ms / 1000;
    t.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&lock);
    while (!stopping && pthread_cond_timedwait(&wake, &lock, &t) == 0)
        ;
    bool stop = stopping;
    pthread_mutex_unlock(&lock);
    return stop;
}

static bool is_stopping(void)
{
    pthread_mutex_lock(&lock);
    bool stop = stopping;
    pthread_mutex_unlock(&lock);
    return stop;
}

static void *run(void *arg)
{
    (void)arg;
    unsigned backoff = BACKOFF_MIN_MS;
    bool ever = false;
    int last = MOSQ_ERR_SUCCESS;
    while (!is_stopping()) {
        int rc = ever ? mosquitto_reconnect(mosq) : mosquitto_connect(mosq, host, port, 30);
        if (rc == MOSQ_ERR_SUCCESS) {
            ever = true;
            while (!is_stopping() && (rc = mosquitto_loop(mosq, 200, 1)) == MOSQ_ERR_SUCCESS)
                ;
            if (atomic_load(&connected)) /* it was up: start the backoff over */
                backoff = BACKOFF_MIN_MS;
            atomic_store(&connected, false);
        }
        if (is_stopping())
            break;
        if (rc != last) {
            aloftd_log("mqtt: %s: %s; trying again in the background", broker,
                       rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
            last = rc;
        }
        if (pause_ms(backoff))
            break;
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
    pthread_mutex_lock(&lock);
    done = true;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    return NULL;
}

int aloftd_mqtt_start(struct aloftd *d)
{
    if (d->public_url && d->public_url[0]) {
        size_t n = strlen(d->public_url);
        while (n && d->public_url[n - 1] == '/')
            n--;
        snprintf(public_url, sizeof public_url, "%.*s", (int)n, d->public_url);
    } else {
        const char *colon = strrchr(d->listen, ':');
        snprintf(public_url, sizeof public_url, "%s://%.*s:%u", d->tls_cert ? "https" : "http",
                 colon ? (int)(colon - d->listen) : (int)strlen(d->listen), d->listen, d->port);
    }
    if (!d->mqtt || !d->mqtt[0])
        return 0;
    const char *colon = strrchr(d->mqtt, ':');
    char *end = NULL;
    long p = colon ? strtol(colon + 1, &end, 10) : 1883;
    if (colon &&
        (colon == d->mqtt || !colon[1] || *end || p < 1 || p > 65535 || (size_t)(colon - d->mqtt) >= sizeof host)) {
        fprintf(stderr, "aloftd: --mqtt %s: give HOST:PORT, e.g. 127.0.0.1:1883\n", d->mqtt);
        return -1;
    }
    port = (int)p;
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - d->mqtt) : (int)strlen(d->mqtt), d->mqtt);
    snprintf(broker, sizeof broker, "%s:%d", host, port);
    mosquitto_lib_init();
    char id[64], hostname[32] = "host";
    gethostname(hostname, sizeof hostname - 1);
    hostname[sizeof hostname - 1] = 0;
    snprintf(id, sizeof id, "aloftd-%.20s-%ld", hostname, (long)getpid());
    mosq = mosquitto_new(id, true, NULL);
    if (!mosq) {
        fprintf(stderr, "aloftd: mqtt: cannot make a client\n");
        return -1;
    }
    mosquitto_threaded_set(mosq, true); /* publishers are the HTTP threads */
    if (d->mqtt_user && d->mqtt_user[0] &&
        mosquitto_username_pw_set(mosq, d->mqtt_user, d->mqtt_password) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "aloftd: mqtt: cannot set the user name and password\n");
        mosquitto_destroy(mosq);
        mosq = NULL;
        return -1;
    }
    mosquitto_connect_callback_set(mosq, on_connect);
    mosquitto_disconnect_callback_set(mosq, on_disconnect);
    if (pthread_create(&thread, NULL, run, NULL)) {
        fprintf(stderr, "aloftd: mqtt: cannot start its thread\n");
        mosquitto_destroy(mosq);
        mosq = NULL;
        return -1;
    }
    aloftd_log("mqtt: broker %s (connecting in the background); downloads from %s", broker, public_url);
    return 0;
}

void aloftd_mqtt_stop(void)
{
    if (!mosq)
        return;
    pthread_mutex_lock(&lock);
    stopping = true;
    pthread_cond_broadcast(&wake);
    /* the thread notices within a loop's 200 ms; a connect to a host that
     * does not answer may take longer: then it is left to the exit */
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    t.tv_sec += 2;
    while (!done && pthread_cond_timedwait(&wake, &lock, &t) == 0)
        ;
    bool finished = done;
    pthread_mutex_unlock(&lock);
    if (!finished)
        return;
    pthread_join(thread, NULL);
    if (atomic_load(&connected))
        mosquitto_disconnect(mosq);
    mosquitto_destroy(mosq);
    mosq = NULL;
    mosquitto_lib_cleanup();
}

bool aloftd_mqtt_enabled(void)
{
    return mosq != NULL;
}

cJSON *aloftd_mqtt_trigger_json(const struct aloft_store_release *r, const struct aloft_store_delta *p)
{
    char url[800];
    snprintf(url, sizeof url, "%s/firmware/%s.bin", public_url, r->sha256);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "ota_trigger");
    cJSON_AddStringToObject(j, "url", url);
    cJSON_AddStringToObject(j, "version", r->version);
    cJSON_AddStringToObject(j, "sha256", r->sha256);
    cJSON_AddNumberToObject(j, "size", (double)r->size);
    if (p) {
        snprintf(url, sizeof url, "%s/firmware/%s.bin", public_url, p->sha256);
        cJSON_AddStringToObject(j, "delta_url", url);
        cJSON_AddStringToObject(j, "delta_base", p->base);
    }
    return j;
}

bool aloftd_mqtt_patch(struct aloftd *d, const struct aloft_store_release *r, const char *image,
                       struct aloft_store_delta *p)
{
    if (!image[0] || !strcmp(image, r->sha256))
        return false;
    int rc = aloft_store_delta_get(d->store, image, r->sha256, p);
    if (rc == 0)
        return p->worth && p->sha256[0] && p->size < r->size;
    if (rc == ALOFT_E_NOTFOUND)
        aloftd_deltas_want(r->platform, image, r);
    else
        aloftd_log("mqtt: cannot look the patch up: %s; the trigger sends the image", aloft_store_error());
    return false;
}

struct images {
    char sha256[ALOFT_STORE_IMAGES_MAX][65];
    size_t n;
};

static int add_image(void *ctx, const char *image, uint64_t count)
{
    struct images *x = ctx;
    (void)count;
    if (x->n < ALOFT_STORE_IMAGES_MAX && strlen(image) == 64)
        snprintf(x->sha256[x->n++], 65, "%s", image);
    return 0;
}

bool aloftd_mqtt_platform_patch(struct aloftd *d, const struct aloft_store_release *r, struct aloft_store_delta *p)
{
    struct images x = {.n = 0};
    if (aloft_store_device_images(d->store, r->platform, add_image, &x)) {
        aloftd_log("mqtt: the inventory is unavailable (%s): the trigger of %s sends the image", aloft_store_error(),
                   r->version);
        return false;
    }
    bool found = false; /* the most common image with a patch; the others' patches are asked for */
    for (size_t i = 0; i < x.n; i++) {
        struct aloft_store_delta q;
        if (aloftd_mqtt_patch(d, r, x.sha256[i], &q) && !found) {
            *p = q;
            found = true;
        }
    }
    return found;
}

void aloftd_mqtt_topic(const char *platform, const char *mac, char *out, size_t cap)
{
    if (mac)
        snprintf(out, cap, "aloft/%s/%s/cmd", platform, mac);
    else
        snprintf(out, cap, "aloft/%s/cmd", platform);
}

int aloftd_mqtt_trigger(const struct aloft_store_release *r, const char *mac, const struct aloft_store_delta *p)
{
    if (!mosq)
        return -1;
    char topic[128];
    aloftd_mqtt_topic(r->platform, mac, topic, sizeof topic);
    if (!atomic_load(&connected)) {
        aloftd_log("mqtt: not connected to %s: no trigger of %s to %s", broker, r->version, topic);
        return -1;
    }
    cJSON *j = aloftd_mqtt_trigger_json(r, p);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text)
        return -1;
    int rc = mosquitto_publish(mosq, NULL, topic, (int)strlen(text), text, 1, false);
    free(text);
    if (rc != MOSQ_ERR_SUCCESS) {
        aloftd_log("mqtt: trigger of %s to %s not published: %s", r->version, topic, mosquitto_strerror(rc));
        return -1;
    }
    if (p)
        aloftd_log("mqtt: trigger of %s %s to %s, with the patch from %.12s (%llu bytes)", r->platform, r->version,
                   topic, p->base, (unsigned long long)p->size);
    else
        aloftd_log("mqtt: trigger of %s %s to %s", r->platform, r->version, topic);
    return 0;
}

/* ---- rollouts: the devices of a stage share ---- */

struct member {
    char mac[18];
    char image[65]; /* the image it runs, "" unknown */
};

struct share {
    int64_t id;
    unsigned from, to; /* buckets [from, to) */
    const char *version;
    struct member *m;
    size_t n, cap;
};

/* The patches a stage's triggers carry, looked up once per image. */
#define PATCHES_KEPT 8
struct patches {
    struct {
        char image[65];
        bool found;
        struct aloft_store_delta p;
    } e[PATCHES_KEPT];
    size_t n;
};

static const struct aloft_store_delta *patch_of(struct aloftd *d, const struct aloft_store_release *r,
                                                struct patches *c, const char *image, struct aloft_store_delta *tmp)
{
    for (size_t i = 0; i < c->n; i++)
        if (!strcmp(c->e[i].image, image))
            return c->e[i].found ? &c->e[i].p : NULL;
    bool found = aloftd_mqtt_patch(d, r, image, tmp);
    if (c->n < PATCHES_KEPT) {
        snprintf(c->e[c->n].image, sizeof c->e[c->n].image, "%s", image);
        c->e[c->n].found = found;
        c->e[c->n].p = *tmp;
        c->n++;
    }
    return found ? tmp : NULL;
}

static int add_member(void *ctx, const struct aloft_store_device *dv)
{
    struct share *s = ctx;
    if (!dv->mac[0] || !strcmp(dv->version, s->version))
        return 0;
    unsigned b = aloftd_rollout_bucket(s->id, dv->mac);
    if (b < s->from || b >= s->to)
        return 0;
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 64;
        void *p = realloc(s->m, cap * sizeof *s->m);
        if (!p)
            return -1;
        s->m = p;
        s->cap = cap;
    }
    memcpy(s->m[s->n].mac, dv->mac, sizeof s->m[s->n].mac);
    memcpy(s->m[s->n].image, dv->image, sizeof s->m[s->n].image);
    s->n++;
    return 0;
}

void aloftd_mqtt_rollout(struct aloftd *d, const struct aloft_store_rollout *ro, int from_percent)
{
    if (!mosq || strcmp(ro->status, "active"))
        return;
    struct aloft_store_release r;
    if (aloft_store_release_get(d->store, ro->platform, ALOFT_STORE_FIRMWARE, ro->version, &r)) {
        aloftd_log("mqtt: rollout %lld: release %s not found: %s", (long long)ro->id, ro->version,
                   aloft_store_error());
        return;
    }
    int percent = ro->stages[ro->stage];
    if (!atomic_load(&connected)) { /* once, not for every device */
        aloftd_log("mqtt: not connected to %s: no triggers for rollout %lld at %d%%", broker, (long long)ro->id,
                   percent);
        return;
    }
    if (percent >= 100) { /* everyone: the platform's topic reaches devices the inventory does not know */
        struct aloft_store_delta p;
        aloftd_mqtt_trigger(&r, NULL, aloftd_mqtt_platform_patch(d, &r, &p) ? &p : NULL);
        return;
    }
    struct share s = {.id = ro->id, .from = (unsigned)from_percent, .to = (unsigned)percent, .version = ro->version};
    int rc = aloft_store_devices(d->store, ro->platform, add_member, &s);
    if (rc)
        aloftd_log("mqtt: rollout %lld: the inventory is unavailable (%s): no triggers", (long long)ro->id,
                   aloft_store_error());
    unsigned sent = 0, patched = 0;
    struct patches *cache = calloc(1, sizeof *cache);
    for (size_t i = 0; rc == 0 && i < s.n; i++) {
        struct aloft_store_delta tmp;
        const struct aloft_store_delta *p = cache ? patch_of(d, &r, cache, s.m[i].image, &tmp) : NULL;
        bool ok = aloftd_mqtt_trigger(&r, s.m[i].mac, p) == 0;
        sent += ok;
        patched += ok && p;
    }
    if (rc == 0)
        aloftd_log("mqtt: rollout %lld at %d%%: triggered %u of %zu devices (%u with a patch)", (long long)ro->id,
                   percent, sent, s.n, patched);
    free(cache);
    free(s.m);
}

/* ---- POST /api/platforms/<p>/trigger ---- */

enum MHD_Result aloftd_trigger(struct aloftd *d, struct MHD_Connection *c, const char *platform, const char *body,
                               size_t len, bool too_big)
{
    if (too_big)
        return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
    cJSON *in = len ? cJSON_ParseWithLength(body, len) : cJSON_CreateObject();
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return aloftd_reply_error(c, 400, "bad_json",
                                  "send a JSON object: {} (every device of the platform), {\"device\": "
                                  "\"AA:BB:CC:DD:EE:FF\"}, optionally with \"version\"");
    }
    const cJSON *dev = cJSON_GetObjectItemCaseSensitive(in, "device");
    const cJSON *ver = cJSON_GetObjectItemCaseSensitive(in, "version");
    char mac[18] = "", version[ALOFT_STORE_VERSION_MAX + 1] = "";
    const char *bad = NULL;
    if (dev && (!cJSON_IsString(dev) || !aloftd_mac_normalize(dev->valuestring, mac)))
        bad = "device: the device's id, its MAC (AA:BB:CC:DD:EE:FF)";
    else if (ver && (!cJSON_IsString(ver) || !ver->valuestring[0] ||
                     strlen(ver->valuestring) > ALOFT_STORE_VERSION_MAX))
        bad = "version: a release of the platform (default: its current one)";
    else if (ver)
        snprintf(version, sizeof version, "%s", ver->valuestring);
    cJSON_Delete(in);
    if (bad)
        return aloftd_reply_error(c, 400, "bad_parameter", "%s", bad);
    if (!aloftd_mqtt_enabled())
        return aloftd_reply_error(c, 409, "mqtt_off", "aloftd runs without --mqtt: no broker to publish to");
    struct aloft_store_release r;
    int rc = version[0] ? aloft_store_release_get(d->store, platform, ALOFT_STORE_FIRMWARE, version, &r)
                        : aloft_store_current(d->store, platform, ALOFT_STORE_FIRMWARE, &r);
    if (rc == ALOFT_E_NOTFOUND)
        return aloftd_reply_error(c, 404, "unknown_version", "platform '%s' has no firmware release%s%s", platform,
                                  version[0] ? " " : "", version);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_version", "no such release");
    char topic[128], image[65] = "";
    aloftd_mqtt_topic(r.platform, mac[0] ? mac : NULL, topic, sizeof topic);
    struct aloft_store_delta patch;
    bool has = false;
    if (mac[0] && aloft_store_device_image(d->store, r.platform, mac, image))
        aloftd_log("mqtt: the inventory is unavailable (%s): the trigger to %s sends the image", aloft_store_error(),
                   mac);
    else
        has = mac[0] ? aloftd_mqtt_patch(d, &r, image, &patch) : aloftd_mqtt_platform_patch(d, &r, &patch);
    if (aloftd_mqtt_trigger(&r, mac[0] ? mac : NULL, has ? &patch : NULL))
        return aloftd_reply_error(c, 503, "mqtt_unavailable", "not connected to the MQTT broker %s: try again later",
                                  broker);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "published");
    cJSON_AddStringToObject(j, "topic", topic);
    cJSON_AddItemToObject(j, "trigger", aloftd_mqtt_trigger_json(&r, has ? &patch : NULL));
    return aloftd_reply_json(c, 200, j);
}
