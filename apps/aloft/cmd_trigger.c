/* aloft trigger: publish an ota_trigger to MQTT (PROTOCOLS.md §3.2) and,
 * with --wait, follow the devices' retained state topics until each one
 * has answered this trigger, classified like aloft deploy. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <mosquitto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "file.h"
#include "hex.h"

static const char help[] =
    "usage: aloft trigger --broker HOST:PORT (--platform NAME | --device ID [--platform NAME] | --topic T)\n"
    "                     --url URL [options]\n"
    "\n"
    "Publish an OTA trigger {\"type\":\"ota_trigger\",\"url\":URL,...} over MQTT. Devices (aloft-node\n"
    "--mqtt, or firmware running the aloft agent) download URL themselves and apply it.\n"
    "Topics: aloft/<platform>/cmd reaches every device of a platform, aloft/<platform>/<id>/cmd\n"
    "one device; --topic publishes anywhere (e.g. /switch/cmd/root, where existing\n"
    "firmware listens). Devices answer on their retained state topic\n"
    "aloft/<platform>/<id>/state, echoing the trigger's id.\n"
    "\n"
    "  --broker HOST:PORT   the MQTT broker (or env ALOFT_BROKER)\n"
    "  --platform NAME      every device of the platform (with --device: the device's platform)\n"
    "  --device ID          one device: its id, by default its MAC (in any spelling); without\n"
    "                       --platform, the platform is taken from the device's retained state\n"
    "  --topic T            publish to T instead (with --wait, --platform says whose states to follow)\n"
    "  --url URL            where the devices download the image (http:// or https://)\n"
    "  --version V          the image's version (devices refuse another one)\n"
    "  --sha256 HEX         the image's SHA-256 (devices check it)\n"
    "  --size N             the image's size in bytes (devices check it)\n"
    "  --token T            bearer token the devices send with the download\n"
    "  --target firmware|frontend   the app (default) or the www slot\n"
    "  --id ID              the trigger's id (default: random); a device never applies one id twice\n"
    "  --tls-ca FILE        connect with TLS, trusting this CA\n"
    "  --user U --password P   broker credentials (or env ALOFT_BROKER_PASSWORD)\n"
    "  --wait               follow the devices until each has an outcome:\n"
    "    updated      restarted into the new image and confirmed it\n"
    "    rolled back  came back on the old image (e.g. the new one panicked)\n"
    "    rejected     refused or failed the update (its reason is shown; nothing changed)\n"
    "    unchanged    already ran that version: nothing to do (not a failure)\n"
    "    unconfirmed  started, but no outcome by --timeout\n"
    "    unreachable  offline, or no answer to the trigger by --timeout\n"
    "    interrupted  Ctrl-C stopped the wait: the update may still go on\n"
    "  --timeout S          how long --wait follows the devices (default 300)\n"
    "  --expect N           with --wait: wait (up to --timeout) until N devices are known\n"
    "                       before publishing, and fail unless N answer\n"
    "  --json               with --wait: one JSON report on standard output\n"
    "\n"
    "Devices are known from their retained states: subscribe first, publish after (a device that\n"
    "is offline then does not get the trigger: it finds the release with its scheduled check).\n"
    "\n"
    "exit status: 0 published (and, with --wait, every device updated or unchanged), 1 any\n"
    "failure or the broker unreachable, 2 usage error or no device found, 130 interrupted\n"
    "\n"
    "examples:\n"
    "  aloft trigger --broker 127.0.0.1:1883 --platform demo --url http://127.0.0.1:8080/firmware/ab12.bin \\\n"
    "      --version 1.1.0 --wait\n"
    "  aloft trigger --broker mqtt.lan:8883 --tls-ca ca.pem --device 24:0A:C4:00:00:01 \\\n"
    "      --url https://updates.lan/fw.bin --sha256 \"$(sha256sum fw.bin | cut -c1-64)\" --wait --timeout 120\n"
    "  aloft trigger --broker 127.0.0.1:1883 --topic /switch/cmd/root --url http://192.168.1.100:8000/fw.bin\n";

#define CONNECT_WAIT_S 10
#define SETTLE_MS 500     /* retained states come right after the SUBACK: quiet this long = all there */
#define SETTLE_MAX_MS 3000
#define MAX_DEVICES 4096

enum outcome { O_NONE, O_UPDATED, O_ROLLED_BACK, O_REJECTED, O_UNCHANGED, O_UNCONFIRMED, O_UNREACHABLE, O_INTERRUPTED,
               O_COUNT };
static const char *const outcome_name[O_COUNT] = {"", "updated", "rolled back", "rejected", "unchanged",
                                                  "unconfirmed", "unreachable", "interrupted"};
static const char *const outcome_key[O_COUNT] = {"", "updated", "rolled_back", "rejected", "unchanged",
                                                 "unconfirmed", "unreachable", "interrupted"};

struct dev {
    char id[64], platform[64];
    char version[32], partition[20];  /* from its last state */
    char last[32];                    /* its last state answering this trigger ("" none) */
    unsigned progress;                /* last progress printed, in quarters */
    unsigned percent;                 /* last progress seen */
    bool offline;
    enum outcome outcome;
    char reason[300];
};

static struct {
    struct mosquitto *m;
    bool json, tty, published;
    const char *trigger_id, *state_filter;
    bool connack, lost;
    int connack_rc;
    bool subacked, puback;
    int pub_mid;
    uint64_t last_retained;           /* ms: when the last retained state arrived */
    struct dev *devs;
    size_t n;
} t;

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    char what[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return aloft_usage_error("aloft trigger", help, "%s", what);
}

static void note(const struct dev *v, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(const struct dev *v, const char *fmt, ...)
{
    if (t.json || t.tty)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("%-22s ", v->id);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

static void finish(struct dev *v, enum outcome o, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void finish(struct dev *v, enum outcome o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
    v->outcome = o;
    note(v, "%s: %s", outcome_name[o], v->reason);
}

static struct dev *find_dev(const char *id, bool add)
{
    for (size_t i = 0; i < t.n; i++)
        if (!strcmp(t.devs[i].id, id))
            return &t.devs[i];
    if (!add || t.n == MAX_DEVICES)
        return NULL;
    struct dev *v = &t.devs[t.n++];
    memset(v, 0, sizeof *v);
    snprintf(v->id, sizeof v->id, "%s", id);
    return v;
}

static const char *jstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* The platform and device id of aloft/<platform>/<id>/state; false for other topics. */
static bool state_topic(const char *topic, char platform[64], char id[64])
{
    const char *p = strchr(topic, '/'), *q = p ? strchr(p + 1, '/') : NULL, *r = q ? strchr(q + 1, '/') : NULL;
    if (!r || strcmp(r, "/state") || q - p - 1 >= 64 || r - q - 1 >= 64 || r == q + 1)
        return false;
    snprintf(platform, 64, "%.*s", (int)(q - p - 1), p + 1);
    snprintf(id, 64, "%.*s", (int)(r - q - 1), q + 1);
    return true;
}

/* One state message: learn the device (retained states before the trigger),
 * or judge its answer to the trigger. */
static void on_state(const char *topic, const char *payload, int len, bool retained)
{
    char platform[64], id[64];
    if (!state_topic(topic, platform, id))
        return;
    cJSON *j = cJSON_ParseWithLength(payload, (size_t)len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return;
    }
    const char *state = jstr(j, "state");
    /* an answer comes after the trigger; retained ones too after a reconnection */
    bool ours = !strcmp(jstr(j, "trigger"), t.trigger_id) && t.published;
    /* before publishing, every state names a device; after it, only
     * devices answering the trigger are added */
    struct dev *v = find_dev(id, !t.published || ours);
    if (!v || v->outcome != O_NONE) {
        cJSON_Delete(j);
        return;
    }
    if (retained)
        t.last_retained = now_ms();
    snprintf(v->platform, sizeof v->platform, "%s", platform);
    if (!strcmp(state, "offline")) {
        v->offline = true;
        if (t.published && v->last[0])
            note(v, "offline (%s)", jstr(j, "reason"));
        cJSON_Delete(j);
        return;
    }
    v->offline = false;
    snprintf(v->version, sizeof v->version, "%s", jstr(j, "version"));
    snprintf(v->partition, sizeof v->partition, "%s", jstr(j, "partition"));
    if (!ours) {
        cJSON_Delete(j);
        return;
    }
    const char *code = jstr(j, "code"), *reason = jstr(j, "reason"), *target = jstr(j, "target_version");
    if (!strcmp(state, "updated")) {
        finish(v, O_UPDATED, "runs %s%s on %s", target[0] ? target : v->version,
               !strcmp(jstr(j, "target"), "frontend") ? " (frontend)" : "", v->partition);
    } else if (!strcmp(state, "rolled_back")) {
        if (reason[0])
            finish(v, O_ROLLED_BACK, "%s", reason);
        else
            finish(v, O_ROLLED_BACK, "back on %s %s", v->version, v->partition);
    } else if (!strcmp(state, "failed") && !strcmp(code, "same_version")) {
        finish(v, O_UNCHANGED, "already runs %s", v->version);
    } else if (!strcmp(state, "failed")) {
        finish(v, O_REJECTED, "%s: %s", code[0] ? code : "failed", reason);
    } else {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "progress");
        unsigned quarter = cJSON_IsNumber(p) ? (unsigned)p->valuedouble / 25 : 0;
        if (strcmp(v->last, state) || (!strcmp(state, "downloading") && quarter > v->progress)) {
            if (!strcmp(state, "downloading") && cJSON_IsNumber(p))
                note(v, "downloading %.0f%%", p->valuedouble);
            else
                note(v, "%s", state);
        }
        v->progress = quarter;
        v->percent = cJSON_IsNumber(p) ? (unsigned)p->valuedouble : 0;
        snprintf(v->last, sizeof v->last, "%s", state);
    }
    cJSON_Delete(j);
}

static void on_connect(struct mosquitto *m, void *obj, int rc)
{
    (void)m, (void)obj;
    t.connack = true;
    t.connack_rc = rc;
}

static void on_subscribe(struct mosquitto *m, void *obj, int mid, int n, const int *granted)
{
    (void)m, (void)obj, (void)mid;
    t.subacked = n > 0 && granted[0] <= 2;
    if (!t.subacked)
        t.connack_rc = -1;
}

static void on_publish(struct mosquitto *m, void *obj, int mid)
{
    (void)m, (void)obj;
    if (mid == t.pub_mid)
        t.puback = true;
}

static void on_message(struct mosquitto *m, void *obj, const struct mosquitto_message *msg)
{
    (void)m, (void)obj;
    on_state(msg->topic, msg->payload ? (const char *)msg->payload : "", msg->payloadlen, msg->retain);
}

/* Run the network until *flag, the deadline or Ctrl-C; false unless *flag.
 * A failed connection sets t.lost. */
static bool loop_until(const bool *flag, uint64_t deadline)
{
    while (!*flag && !interrupted && !t.lost && now_ms() < deadline) {
        int rc = mosquitto_loop(t.m, 100, 1);
        if (rc != MOSQ_ERR_SUCCESS) {
            if (!t.connack_rc) /* a refusal is told by whoever waited for the CONNACK */
                fprintf(stderr, "aloft trigger: the broker connection failed: %s\n",
                        rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
            t.lost = true;
        }
    }
    return *flag;
}

/* While waiting: connect again (every second until the deadline) and
 * subscribe again; the retained states bring what was missed. */
static bool reconnect(uint64_t deadline)
{
    while (!interrupted && now_ms() < deadline) {
        usleep(1000 * 1000);
        if (mosquitto_reconnect(t.m) != MOSQ_ERR_SUCCESS)
            continue;
        t.lost = t.connack = t.subacked = false;
        if (!loop_until(&t.connack, now_ms() + CONNECT_WAIT_S * 1000u) || t.connack_rc ||
            mosquitto_subscribe(t.m, NULL, t.state_filter, 1) != MOSQ_ERR_SUCCESS ||
            !loop_until(&t.subacked, now_ms() + CONNECT_WAIT_S * 1000u)) {
            t.lost = true;
            continue;
        }
        if (!t.json)
            printf("reconnected to the broker\n");
        return true;
    }
    return false;
}

/* On a terminal: one live line per device still under way, redrawn in place. */
#define DRAW_MAX 20

static void draw(int *lines, bool final)
{
    if (!t.tty)
        return;
    for (int i = 0; i < *lines; i++)
        fputs("\033[1A\033[2K", stdout);
    *lines = 0;
    if (final) /* the live lines go; the outcomes stay */
        return;
    size_t more = 0;
    for (size_t i = 0; i < t.n; i++) {
        const struct dev *v = &t.devs[i];
        if (v->outcome != O_NONE)
            continue;
        if (*lines == DRAW_MAX) {
            more++;
            continue;
        }
        if (!strcmp(v->last, "downloading"))
            printf("%-22s %-12s %3u%%\n", v->id, v->last, v->percent);
        else
            printf("%-22s %s\n", v->id, v->last[0] ? v->last : v->offline ? "offline" : "waiting for an answer");
        (*lines)++;
    }
    if (more) {
        printf("... and %zu more\n", more);
        (*lines)++;
    }
    fflush(stdout);
}

static bool all_done(void)
{
    for (size_t i = 0; i < t.n; i++)
        if (t.devs[i].outcome == O_NONE)
            return false;
    return true;
}

static void report(const cJSON *trigger, const char *topic, size_t expect, int code)
{
    unsigned count[O_COUNT] = {0};
    for (size_t i = 0; i < t.n; i++)
        count[t.devs[i].outcome]++;
    if (t.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "topic", topic);
        cJSON_AddItemToObject(j, "trigger", cJSON_Duplicate(trigger, true));
        cJSON *arr = cJSON_AddArrayToObject(j, "devices");
        for (size_t i = 0; i < t.n; i++) {
            const struct dev *v = &t.devs[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "device", v->id);
            cJSON_AddStringToObject(o, "outcome", outcome_key[v->outcome]);
            cJSON_AddStringToObject(o, "reason", v->reason);
            cJSON_AddStringToObject(o, "version", v->version);
            cJSON_AddStringToObject(o, "partition", v->partition);
            cJSON_AddItemToArray(arr, o);
        }
        cJSON *sum = cJSON_AddObjectToObject(j, "summary");
        for (int o = 1; o < O_COUNT; o++)
            cJSON_AddNumberToObject(sum, outcome_key[o], count[o]);
        if (expect)
            cJSON_AddNumberToObject(j, "expected", (double)expect);
        cJSON_AddNumberToObject(j, "exit_code", code);
        char *s = cJSON_Print(j);
        puts(s);
        free(s);
        cJSON_Delete(j);
        return;
    }
    printf("\n%-22s %-12s %s\n", "device", "outcome", "details");
    for (size_t i = 0; i < t.n; i++)
        printf("%-22s %-12s %s\n", t.devs[i].id, outcome_name[t.devs[i].outcome], t.devs[i].reason);
    printf("\nsummary:");
    for (int o = 1; o < O_COUNT; o++)
        if (count[o])
            printf(" %u %s,", count[o], outcome_name[o]);
    printf(" of %zu device%s\n", t.n, t.n == 1 ? "" : "s");
    if (expect && t.n < expect)
        printf("expected %zu devices: %zu never showed up\n", expect, expect - t.n);
}

static bool topic_word(const char *s)
{
    return *s && !strpbrk(s, "/+#");
}

/* A MAC in any spelling (240ac4000001, 24-0a-c4-00-00-01) becomes the
 * device id aloft-node uses by default: 24:0A:C4:00:00:01. Other ids stay. */
static const char *device_id(const char *s, char out[18])
{
    char hex[13];
    size_t n = 0;
    for (const char *c = s; *c; c++) {
        if (*c == ':' || *c == '-')
            continue;
        if (n == 12 || !strchr("0123456789abcdefABCDEF", *c))
            return s;
        hex[n++] = *c >= 'a' ? (char)(*c - 'a' + 'A') : *c;
    }
    if (n != 12)
        return s;
    for (int i = 0; i < 6; i++)
        snprintf(out + 3 * i, 4, "%c%c%s", hex[2 * i], hex[2 * i + 1], i < 5 ? ":" : "");
    return out;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdefABCDEF", *s))
            return false;
    return true;
}

struct args {
    const char *broker, *platform, *device, *topic, *url, *version, *sha256, *token, *target, *id;
    const char *tls_ca, *user, *password;
    unsigned long long size;
    bool wait;
    double timeout;
    size_t expect;
};

static int parse(int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'},   {"platform", required_argument, NULL, 'p'},
        {"device", required_argument, NULL, 'd'},   {"topic", required_argument, NULL, 'T'},
        {"url", required_argument, NULL, 'u'},      {"version", required_argument, NULL, 'v'},
        {"sha256", required_argument, NULL, 's'},   {"size", required_argument, NULL, 'S'},
        {"token", required_argument, NULL, 'k'},    {"target", required_argument, NULL, 'g'},
        {"id", required_argument, NULL, 'i'},       {"tls-ca", required_argument, NULL, 'c'},
        {"user", required_argument, NULL, 'U'},     {"password", required_argument, NULL, 'P'},
        {"wait", no_argument, NULL, 'w'},           {"timeout", required_argument, NULL, 't'},
        {"expect", required_argument, NULL, 'e'},   {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    a->broker = getenv("ALOFT_BROKER");
    a->password = getenv("ALOFT_BROKER_PASSWORD");
    a->target = "firmware";
    a->timeout = 300;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (c) {
        case 'b': a->broker = optarg; break;
        case 'p': a->platform = optarg; break;
        case 'd': a->device = optarg; break;
        case 'T': a->topic = optarg; break;
        case 'u': a->url = optarg; break;
        case 'v': a->version = optarg; break;
        case 's': a->sha256 = optarg; break;
        case 'k': a->token = optarg; break;
        case 'g': a->target = optarg; break;
        case 'i': a->id = optarg; break;
        case 'c': a->tls_ca = optarg; break;
        case 'U': a->user = optarg; break;
        case 'P': a->password = optarg; break;
        case 'w': a->wait = true; break;
        case 'j': t.json = true; break;
        case 'S':
            errno = 0;
            a->size = strtoull(optarg, &end, 10);
            if (errno || *end || !a->size || *optarg == '-')
                return usage_error("--size takes the image's size in bytes");
            break;
        case 't':
            a->timeout = strtod(optarg, &end);
            if (*end || !(a->timeout > 0) || a->timeout > 86400)
                return usage_error("--timeout takes seconds (up to 86400)");
            break;
        case 'e': {
            unsigned long v = strtoul(optarg, &end, 10);
            if (*end || !v || v > MAX_DEVICES || *optarg == '-')
                return usage_error("--expect takes a number of devices (1 to %d)", MAX_DEVICES);
            a->expect = v;
            break;
        }
        case 'h': fputs(help, stdout); return 1;
        default: return aloft_usage_bad_option(argv[0], help, c, argv);
        }
    }
    const char *colon = a->broker ? strrchr(a->broker, ':') : NULL;
    if (optind != argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!a->broker)
        return usage_error("give the broker: --broker HOST:PORT or ALOFT_BROKER");
    if (!colon || colon == a->broker || atoi(colon + 1) <= 0 || atoi(colon + 1) > 65535)
        return usage_error("--broker '%s' is not HOST:PORT, e.g. 127.0.0.1:1883", a->broker);
    if (!a->topic && !a->platform && !a->device)
        return usage_error("say whom to trigger: --platform NAME, --device ID or --topic T");
    if (a->topic && a->device)
        return usage_error("--topic and --device exclude each other");
    if (a->topic && (!*a->topic || strpbrk(a->topic, "+#")))
        return usage_error("--topic '%s' must be a topic without wildcards", a->topic);
    if (a->platform && !topic_word(a->platform))
        return usage_error("--platform '%s' must be a name without / + #", a->platform);
    static char mac[18];
    if (a->device && !topic_word(a->device))
        return usage_error("--device '%s' must be an id without / + #", a->device);
    if (a->device)
        a->device = device_id(a->device, mac);
    if (a->wait && a->topic && !a->platform)
        return usage_error("--wait with --topic needs --platform: the devices whose states to follow");
    if (!a->url)
        return usage_error("give the image's URL: --url http(s)://...");
    if (strncmp(a->url, "http://", 7) && strncmp(a->url, "https://", 8))
        return usage_error("--url '%s' is not an http:// or https:// URL", a->url);
    if (strlen(a->url) > 511)
        return usage_error("--url is longer than 511 characters");
    if (a->sha256 && !is_hex64(a->sha256))
        return usage_error("--sha256 takes 64 hex digits");
    if (a->version && (!*a->version || strlen(a->version) > 31))
        return usage_error("--version takes 1 to 31 characters");
    if (a->token && (!*a->token || strlen(a->token) > 255))
        return usage_error("--token takes 1 to 255 characters");
    if (strcmp(a->target, "firmware") && strcmp(a->target, "frontend"))
        return usage_error("--target takes firmware or frontend");
    if (a->id && (!*a->id || strlen(a->id) > 47))
        return usage_error("--id takes 1 to 47 characters");
    if ((a->expect || t.json) && !a->wait)
        return usage_error("--expect and --json go with --wait");
    if (a->password && !a->user)
        return usage_error("--password needs --user");
    return 0;
}

static cJSON *trigger_json(const struct args *a)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "type", "ota_trigger");
    cJSON_AddStringToObject(j, "url", a->url);
    if (a->version)
        cJSON_AddStringToObject(j, "version", a->version);
    if (a->sha256)
        cJSON_AddStringToObject(j, "sha256", a->sha256);
    if (a->size)
        cJSON_AddNumberToObject(j, "size", (double)a->size);
    if (a->token)
        cJSON_AddStringToObject(j, "token", a->token);
    if (!strcmp(a->target, "frontend"))
        cJSON_AddStringToObject(j, "target", "frontend");
    cJSON_AddStringToObject(j, "id", t.trigger_id);
    return j;
}

/* Connect and wait for the CONNACK. Returns 0 or 1 with a message. */
static int connect_broker(const struct args *a)
{
    const char *colon = strrchr(a->broker, ':');
    char host[256];
    snprintf(host, sizeof host, "%.*s", (int)(colon - a->broker), a->broker);
    char cid[64];
    snprintf(cid, sizeof cid, "aloft-trigger-%.16s", t.trigger_id);
    t.m = mosquitto_new(cid, true, NULL);
    if (!t.m) {
        fprintf(stderr, "aloft trigger: cannot make an MQTT client: %s\n", strerror(errno));
        return 1;
    }
    int rc = MOSQ_ERR_SUCCESS;
    if (a->tls_ca && (rc = mosquitto_tls_set(t.m, a->tls_ca, NULL, NULL, NULL, NULL)) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "aloft trigger: --tls-ca %s: %s\n", a->tls_ca,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return 1;
    }
    if (a->user && (rc = mosquitto_username_pw_set(t.m, a->user, a->password)) != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "aloft trigger: --user: %s\n", mosquitto_strerror(rc));
        return 1;
    }
    mosquitto_connect_callback_set(t.m, on_connect);
    mosquitto_subscribe_callback_set(t.m, on_subscribe);
    mosquitto_publish_callback_set(t.m, on_publish);
    mosquitto_message_callback_set(t.m, on_message);
    rc = mosquitto_connect(t.m, host, atoi(colon + 1), 30);
    if (rc != MOSQ_ERR_SUCCESS) {
        fprintf(stderr, "aloft trigger: cannot connect to the broker %s: %s\n", a->broker,
                rc == MOSQ_ERR_ERRNO ? strerror(errno) : mosquitto_strerror(rc));
        return 1;
    }
    if (!loop_until(&t.connack, now_ms() + CONNECT_WAIT_S * 1000u) || t.connack_rc) {
        if (!t.connack)
            fprintf(stderr, "aloft trigger: the broker %s did not answer the connection\n", a->broker);
        else
            fprintf(stderr, "aloft trigger: the broker %s refused the connection: %s%s\n", a->broker,
                    mosquitto_connack_string(t.connack_rc), a->user ? " (check --user and --password)" : "");
        return interrupted ? 130 : 1;
    }
    return 0;
}

/* Subscribe to the devices' states and take in the retained ones: until
 * they stop coming (or, with --expect, until that many devices are known). */
static int learn_devices(const struct args *a, char *filter, size_t cap, uint64_t deadline)
{
    if (a->device)
        snprintf(filter, cap, "aloft/%s/%s/state", a->platform ? a->platform : "+", a->device);
    else
        snprintf(filter, cap, "aloft/%s/+/state", a->platform);
    t.state_filter = filter;
    int rc = mosquitto_subscribe(t.m, NULL, filter, 1);
    if (rc != MOSQ_ERR_SUCCESS || !loop_until(&t.subacked, now_ms() + CONNECT_WAIT_S * 1000u)) {
        if (!interrupted)
            fprintf(stderr, "aloft trigger: cannot subscribe to %s: %s\n", filter,
                    rc ? mosquitto_strerror(rc) : t.connack_rc ? "refused by the broker" : "no answer");
        return interrupted ? 130 : 1;
    }
    uint64_t start = now_ms();
    t.last_retained = start;
    bool never = false;
    for (;;) {
        uint64_t now = now_ms();
        if (a->expect ? t.n >= a->expect || now >= deadline
                      : now - t.last_retained >= SETTLE_MS || now - start >= SETTLE_MAX_MS)
            break;
        loop_until(&never, now + 50);
        if (interrupted || t.lost)
            return interrupted ? 130 : 1;
    }
    return 0;
}

int aloft_cmd_trigger(int argc, char **argv)
{
    static struct args a;
    memset(&t, 0, sizeof t);
    interrupted = 0;
    int rc = parse(argc, argv, &a);
    if (rc)
        return rc == 1 ? 0 : rc; /* 1: --help */
    char idbuf[17];
    if (!a.id) {
        uint8_t rnd[8];
        FILE *f = fopen("/dev/urandom", "rb");
        if (!f || fread(rnd, 1, sizeof rnd, f) != sizeof rnd) {
            fprintf(stderr, "aloft trigger: /dev/urandom: %s\n", strerror(errno));
            if (f)
                fclose(f);
            return 1;
        }
        fclose(f);
        aloft_hex(rnd, sizeof rnd, idbuf);
        a.id = idbuf;
    }
    t.trigger_id = a.id;
    t.tty = !t.json && isatty(STDOUT_FILENO);
    t.devs = calloc(MAX_DEVICES, sizeof *t.devs);
    if (!t.devs)
        return 1;

    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigaction(SIGINT, &sa, &old);
    mosquitto_lib_init();
    uint64_t deadline = now_ms() + (uint64_t)(a.timeout * 1000);
    char filter[200] = "", topic[300];
    cJSON *trigger = NULL;
    int code = connect_broker(&a);
    /* --device without --platform: the platform comes from its retained state */
    bool follow = a.wait || (a.device && !a.platform);
    if (code == 0 && follow)
        code = learn_devices(&a, filter, sizeof filter, deadline);
    if (code == 0 && a.device && !a.platform) {
        if (t.n != 1) {
            fprintf(stderr, "aloft trigger: device '%s' %s on %s: give --platform\n", a.device,
                    t.n ? "has states under several platforms" : "has no retained state", a.broker);
            code = 2;
        } else {
            a.platform = t.devs[0].platform;
        }
    }
    if (code)
        goto out;
    if (a.topic)
        snprintf(topic, sizeof topic, "%s", a.topic);
    else if (a.device)
        snprintf(topic, sizeof topic, "aloft/%s/%s/cmd", a.platform, a.device);
    else
        snprintf(topic, sizeof topic, "aloft/%s/cmd", a.platform);
    if (a.wait && !a.device && t.n == 0) {
        fprintf(stderr, "aloft trigger: no device of platform '%s' has a state on %s: nothing to wait for\n",
                a.platform, a.broker);
        code = 2;
        goto out;
    }
    if (a.wait && a.device && !find_dev(a.device, false)) /* not seen yet: waited for all the same */
        snprintf(find_dev(a.device, true)->platform, sizeof t.devs[0].platform, "%s", a.platform);
    trigger = trigger_json(&a);
    char *text = cJSON_PrintUnformatted(trigger);
    rc = mosquitto_publish(t.m, &t.pub_mid, topic, (int)strlen(text), text, 1, false);
    free(text);
    if (rc != MOSQ_ERR_SUCCESS || !loop_until(&t.puback, now_ms() + CONNECT_WAIT_S * 1000u)) {
        fprintf(stderr, "aloft trigger: the broker did not take the trigger on %s: %s\n", topic,
                rc ? mosquitto_strerror(rc) : interrupted ? "interrupted" : "no acknowledgement");
        code = interrupted ? 130 : 1;
        goto out;
    }
    t.published = true;
    if (!t.json)
        printf("published trigger %s to %s: %s%s%s\n", t.trigger_id, topic, a.url, a.version ? " version " : "",
               a.version ? a.version : "");
    fflush(stdout);
    if (!a.wait)
        goto out;

    for (size_t i = 0; i < t.n; i++)
        if (t.devs[i].offline)
            finish(&t.devs[i], O_UNREACHABLE, "offline: not connected to the broker when the trigger was sent");
    bool never = false;
    int lines = 0;
    while (!all_done() && !interrupted && now_ms() < deadline) {
        draw(&lines, false);
        loop_until(&never, now_ms() + 200);
        if (t.lost && !reconnect(deadline))
            break;
    }
    draw(&lines, true);
    for (size_t i = 0; i < t.n; i++) {
        struct dev *v = &t.devs[i];
        if (v->outcome != O_NONE)
            continue;
        if (interrupted)
            finish(v, O_INTERRUPTED, "stopped waiting while %s: the device may still update",
                   v->last[0] ? v->last : "it had not answered");
        else if (v->offline)
            finish(v, O_UNREACHABLE, "went offline%s%s and did not come back within %.0fs",
                   v->last[0] ? " while " : "", v->last, a.timeout);
        else if (v->last[0])
            finish(v, O_UNCONFIRMED, "still %s after %.0fs", v->last, a.timeout);
        else
            finish(v, O_UNREACHABLE, "no answer to the trigger within %.0fs", a.timeout);
    }
    bool failed = a.expect && t.n < a.expect;
    for (size_t i = 0; i < t.n; i++)
        failed |= t.devs[i].outcome != O_UPDATED && t.devs[i].outcome != O_UNCHANGED;
    code = interrupted ? 130 : failed ? 1 : 0;
    report(trigger, topic, a.expect, code);
out:
    cJSON_Delete(trigger);
    if (t.m) {
        mosquitto_disconnect(t.m);
        mosquitto_destroy(t.m);
    }
    mosquitto_lib_cleanup();
    sigaction(SIGINT, &old, NULL);
    free(t.devs);
    return code;
}
