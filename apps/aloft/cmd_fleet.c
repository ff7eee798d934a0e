/* aloft fleet simulate: many virtual devices in one process, polling an
 * update server with Arduino HTTPUpdate's check-in (PROTOCOLS.md §3.1) the
 * way a fleet does, to rehearse a rollout or load a server. One event loop
 * over libcurl's multi interface; the devices waiting for their next poll
 * sit in a heap ordered by time, so a device costs memory, not a thread.
 * Nothing blocks the loop (a credential is one more request in it), and a
 * request allocates nothing: each slot keeps its curl handle, its
 * connection and its header lists, and only the MAC in them changes. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <openssl/hmac.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cmd.h"
#include "hex.h"

static const char help[] =
    "usage: aloft fleet simulate --devices N --server URL --platform NAME --version V [options]\n"
    "\n"
    "Simulate a fleet of N devices in this one process, each with its own MAC, polling an update\n"
    "server's GET /update the way Arduino's HTTPUpdate does (its x-ESP32-* headers). A device that\n"
    "is offered a release (200) takes it: downloads it (throttled to --link-rate, or not at all\n"
    "with --no-download), restarts, and reports the outcome to POST /api/devices/<MAC>/report as\n"
    "the aloft agent does: \"updated\" and from then on it runs the new version (the server's\n"
    "X-Aloft-Version header), or \"rolled_back\" and it stays on its version and declines that\n"
    "release from then on. Some devices never come back after an update (--vanish-share).\n"
    "A report counts only signed with the device's credential: with the admin token (--token,\n"
    "or $ALOFT_TOKEN / $ALOFT_TOKEN_FILE as for aloft server) each device reads its credential\n"
    "from the server before its first report, as a factory would provision it; without, the\n"
    "reports are refused (counted as failed) and only check-ins tell the server the outcomes.\n"
    "Point it at your own aloftd to rehearse a staged rollout before your real devices get it.\n"
    "\n"
    "  --devices N          how many devices (1 to 1000000)\n"
    "  --server URL         the update server, e.g. http://127.0.0.1:8080\n"
    "  --platform NAME      the platform the devices ask for (?dev=NAME)\n"
    "  --version V          the version every device runs at the start (?ver=V)\n"
    "  --interval S         seconds between a device's polls (default 60; decimals allowed)\n"
    "  --jitter             each poll comes up to 10 % early or late, at random, as real devices\n"
    "                       drift; the first polls are spread over one interval either way\n"
    "  --rollback-share P   percent of the devices that roll back each update they take\n"
    "                       (default 0); which ones is fixed by the MAC, so runs repeat\n"
    "  --vanish-share P     percent of the devices that never come back after an update\n"
    "                       (default 0), like devices that lose power for good\n"
    "  --no-download        take an offered update without downloading it (the transfer is cut\n"
    "                       after the headers): loads only the server's check-in path\n"
    "  --link-rate R        download at most R bytes/s per device, e.g. 100k or 1M (default:\n"
    "                       as fast as the server sends)\n"
    "  --duration S         stop after S seconds (default: until Ctrl-C, or --until-version)\n"
    "  --until-version V    stop once every device that is still around and did not roll back\n"
    "                       runs V (its report sent)\n"
    "  --concurrency N      requests in flight at most (default 64); a device due while all\n"
    "                       are busy waits its turn (its wait shows in the latency). They all\n"
    "                       come from this host's address: aloftd allows 256 connections per\n"
    "                       address unless told otherwise (--max-per-address)\n"
    "  --mac-prefix XX:XX:XX   the MACs' first three bytes (default 02:A1:0F, locally\n"
    "                       administered); the devices are <prefix>:00:00:00 upwards\n"
    "  --free-space BYTES   the free space devices announce (default 1900544)\n"
    "  --token T            the admin token, to read the devices' credentials (default\n"
    "                       $ALOFT_TOKEN, else the file $ALOFT_TOKEN_FILE names)\n"
    "\n"
    "While it runs, a summary line on standard error: elapsed time, check-ins and their rate,\n"
    "the answers (200, 304, errors), updates, rollbacks, vanished devices, and the versions the\n"
    "fleet runs. When it stops (Ctrl-C, --duration or --until-version), one JSON report on\n"
    "standard output: check-ins by answer, their latency (p50, p99, max), the updates by\n"
    "outcome, reports, bytes downloaded, and the devices by version.\n"
    "\n"
    "exit status: 0 it ran (whatever the server answered), 1 the server never answered,\n"
    "2 usage error\n"
    "\n"
    "examples:\n"
    "  # 10,000 devices on 1.0.0 polling every 60 s through a staged rollout; 2 % roll back\n"
    "  aloft fleet simulate --devices 10000 --server http://127.0.0.1:8080 --platform demo \\\n"
    "      --version 1.0.0 --jitter --rollback-share 2 --link-rate 1M --until-version 1.1.0\n"
    "  # the server's check-in path only: 100,000 devices, no downloads, for five minutes\n"
    "  aloft fleet simulate --devices 100000 --server http://10.0.0.5:8080 --platform demo \\\n"
    "      --version 1.0.0 --no-download --duration 300 > report.json\n";

#define DEVICES_MAX 1000000
#define VERSION_MAX 64
#define VERSIONS_MAX 32      /* distinct versions tallied; more are counted as "other" */
#define LAT_BUCKETS 100000   /* latency histogram: 0.1 ms buckets up to 10 s */
#define RESTART_S 1.0        /* from the end of a download to the report after the restart */

enum dev_state { D_IDLE, D_BUSY, D_GONE };
enum req_kind { R_CHECKIN, R_REPORT, R_CREDENTIAL };
enum fate { F_UPDATE, F_ROLL_BACK, F_VANISH };

struct device {
    char mac[18];
    char version[VERSION_MAX + 1];
    char declined[VERSION_MAX + 1]; /* the version it rolled back from */
    char pending[VERSION_MAX + 1];  /* taken, to report after the restart */
    char credential[65];            /* read from the server before the first report */
    bool asked;                     /* for its credential, for this report */
    enum fate fate;
    enum dev_state state;
    enum req_kind next; /* what it does when due */
    double due;         /* monotonic seconds */
};

/* The MAC's place in a check-in's header lists: "x-ESP32-STA-MAC: " */
#define MAC_AT 17

struct transfer {
    CURL *h;
    struct curl_slist *checkin_headers; /* made once; the MAC written into the first two */
    struct curl_slist *json_headers, *auth_headers;
    struct device *d;
    enum req_kind kind;
    double started;
    char offered[VERSION_MAX + 1]; /* X-Aloft-Version of a 200 */
    bool cut;                      /* the body was not wanted */
    char body[512];                /* a report's JSON; a credential's answer */
    char url[600];
};

struct opts {
    long devices;
    const char *server, *platform, *version, *until, *token;
    char *token_buf; /* the token read, owned */
    char *platform_q; /* the platform as a URL query value */
    double interval, duration, link_rate, rollback_share, vanish_share;
    bool jitter, no_download;
    long concurrency, free_space;
    unsigned prefix[3];
};

struct stats {
    uint64_t checkins, c200, c304, c403, c404, cother, errors;
    uint64_t taken, downloaded, declined, updated, rolled_back, vanished;
    uint64_t reports, report_errors, bytes;
    uint64_t rolled_devices; /* devices that rolled back at least once */
    uint64_t lat[LAT_BUCKETS + 1];
    double lat_max;
};

struct fleet {
    struct opts o;
    struct device *dev;
    size_t *heap; /* device indices by due time */
    size_t nheap;
    CURLM *multi;
    struct transfer *slots;
    size_t nfree, *free_slots;
    struct stats st;
    char versions[VERSIONS_MAX][VERSION_MAX + 1];
    uint64_t by_version[VERSIONS_MAX + 1]; /* the last: other */
    size_t nversions;
    uint64_t rng;
    double start;
};

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aloft fleet simulate: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs(" (see aloft fleet simulate --help)\n", stderr);
    return 2;
}

/* uniform in [0, 1) (xorshift64*: runs repeat) */
static double rnd(struct fleet *f)
{
    f->rng ^= f->rng >> 12;
    f->rng ^= f->rng << 25;
    f->rng ^= f->rng >> 27;
    return (double)((f->rng * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

/* ---- versions the fleet runs ---- */

static uint64_t *version_count(struct fleet *f, const char *v)
{
    for (size_t i = 0; i < f->nversions; i++)
        if (!strcmp(f->versions[i], v))
            return &f->by_version[i];
    if (f->nversions == VERSIONS_MAX)
        return &f->by_version[VERSIONS_MAX];
    snprintf(f->versions[f->nversions], sizeof f->versions[0], "%s", v);
    return &f->by_version[f->nversions++];
}

static void set_version(struct fleet *f, struct device *d, const char *v)
{
    (*version_count(f, d->version))--;
    snprintf(d->version, sizeof d->version, "%s", v);
    (*version_count(f, d->version))++;
}

/* ---- the heap of idle devices, earliest due first ---- */

static bool earlier(struct fleet *f, size_t a, size_t b)
{
    return f->dev[f->heap[a]].due < f->dev[f->heap[b]].due;
}

static void swap(struct fleet *f, size_t a, size_t b)
{
    size_t t = f->heap[a];
    f->heap[a] = f->heap[b];
    f->heap[b] = t;
}

static void schedule(struct fleet *f, struct device *d, enum req_kind what, double due)
{
    d->state = D_IDLE;
    d->next = what;
    d->due = due;
    size_t i = f->nheap++;
    f->heap[i] = (size_t)(d - f->dev);
    while (i && earlier(f, i, (i - 1) / 2)) {
        swap(f, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static struct device *pop(struct fleet *f)
{
    struct device *d = &f->dev[f->heap[0]];
    f->heap[0] = f->heap[--f->nheap];
    for (size_t i = 0;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < f->nheap && earlier(f, l, m))
            m = l;
        if (r < f->nheap && earlier(f, r, m))
            m = r;
        if (m == i)
            break;
        swap(f, i, m);
        i = m;
    }
    return d;
}

/* The next poll: one interval on, up to 10 % either way with --jitter. */
static double next_poll(struct fleet *f, double from)
{
    double s = f->o.interval;
    if (f->o.jitter)
        s *= 0.9 + 0.2 * rnd(f);
    return from + s;
}

/* ---- requests ---- */

static size_t collect(char *p, size_t size, size_t n, void *ctx)
{
    char *out = ctx; /* a short JSON reply; the rest is dropped */
    size_t have = strlen(out), take = size * n < 511 - have ? size * n : 511 - have;
    memcpy(out + have, p, take);
    out[have + take] = 0;
    return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ctx)
{
    struct transfer *t = ctx;
    size_t len = size * n;
    static const char key[] = "x-aloft-version:";
    if (len > sizeof key && !strncasecmp(p, key, sizeof key - 1)) {
        const char *v = p + sizeof key - 1;
        while (*v == ' ')
            v++;
        size_t vl = (size_t)(p + len - v);
        while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        snprintf(t->offered, sizeof t->offered, "%.*s", (int)(vl < VERSION_MAX ? vl : VERSION_MAX), v);
        if (!strcmp(t->offered, t->d->declined))
            t->cut = true;
    }
    return len;
}

/* The body of a check-in's 200 is the image: counted, not kept; cut when
 * it is not wanted (--no-download, or a release this device rolled back).
 * A credential's answer is kept (short). */
static size_t on_body(char *p, size_t size, size_t n, void *ctx)
{
    struct transfer *t = ctx;
    if (t->kind == R_CREDENTIAL)
        return collect(p, size, n, t->body);
    long code = 0;
    curl_easy_getinfo(t->h, CURLINFO_RESPONSE_CODE, &code);
    return t->kind == R_CHECKIN && code == 200 && t->cut ? 0 : size * n;
}

/* v into out as a URL query value (unreserved characters kept, the rest %XX). */
static void query_value(const char *v, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t k = 0;
    for (; *v; v++) {
        unsigned char c = (unsigned char)*v;
        bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~", c);
        if (k + (keep ? 1 : 3) >= cap)
            break;
        if (keep) {
            out[k++] = (char)c;
        } else {
            out[k++] = '%';
            out[k++] = hex[c >> 4];
            out[k++] = hex[c & 15];
        }
    }
    out[k] = 0;
}

/* A slot's handle and header lists, made once: what is the same for every
 * request of a kind is set here, not per request. -1: out of memory. */
static int slot_init(struct fleet *f, struct transfer *t)
{
    char h[120];
    struct curl_slist *hs = NULL;
    snprintf(h, sizeof h, "x-ESP32-STA-MAC: %s", "00:00:00:00:00:00");
    hs = curl_slist_append(hs, h);
    snprintf(h, sizeof h, "x-ESP32-AP-MAC: %s", "00:00:00:00:00:00");
    hs = hs ? curl_slist_append(hs, h) : NULL;
    snprintf(h, sizeof h, "x-ESP32-free-space: %ld", f->o.free_space);
    static const char *const same[] = {"User-Agent: ESP32-http-Update", "x-ESP32-sketch-size: 1048576",
                                       "x-ESP32-chip-size: 4194304", "x-ESP32-sdk-version: v5.1.2",
                                       "x-ESP32-mode: sketch"};
    hs = hs ? curl_slist_append(hs, h) : NULL;
    for (size_t i = 0; hs && i < sizeof same / sizeof same[0]; i++)
        hs = curl_slist_append(hs, same[i]);
    t->checkin_headers = hs;
    t->json_headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (f->o.token) {
        char auth[600];
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", f->o.token);
        t->auth_headers = curl_slist_append(NULL, auth);
    }
    if (!(t->h = curl_easy_init()) || !t->checkin_headers || !t->json_headers || (f->o.token && !t->auth_headers))
        return -1;
    curl_easy_setopt(t->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(t->h, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(t->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(t->h, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(t->h, CURLOPT_PRIVATE, t);
    curl_easy_setopt(t->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(t->h, CURLOPT_CONNECTTIMEOUT, 10L);
    curl_easy_setopt(t->h, CURLOPT_TIMEOUT, 600L);
    return 0;
}

static void start(struct fleet *f, struct device *d, double now)
{
    struct transfer *t = &f->slots[f->free_slots[--f->nfree]];
    t->d = d;
    t->kind = d->next;
    /* a report wants the device's credential first, read with the admin token */
    if (t->kind == R_REPORT && f->o.token && !d->credential[0] && !d->asked)
        t->kind = R_CREDENTIAL;
    t->started = now;
    t->offered[0] = 0;
    t->cut = f->o.no_download;
    t->body[0] = 0;
    if (t->kind == R_CHECKIN) {
        char ver[3 * VERSION_MAX + 1];
        query_value(d->version, ver, sizeof ver);
        snprintf(t->url, sizeof t->url, "%s/update?dev=%s&ver=%s", f->o.server, f->o.platform_q, ver);
        memcpy(t->checkin_headers->data + MAC_AT, d->mac, 17);
        memcpy(t->checkin_headers->next->data + MAC_AT - 1, d->mac, 17); /* "x-ESP32-AP-MAC: " */
        curl_easy_setopt(t->h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(t->h, CURLOPT_HTTPHEADER, t->checkin_headers);
        if (f->o.link_rate > 0)
            curl_easy_setopt(t->h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)f->o.link_rate);
    } else if (t->kind == R_CREDENTIAL) {
        snprintf(t->url, sizeof t->url, "%s/api/devices/%s/credential", f->o.server, d->mac);
        curl_easy_setopt(t->h, CURLOPT_HTTPGET, 1L);
        curl_easy_setopt(t->h, CURLOPT_HTTPHEADER, t->auth_headers);
        curl_easy_setopt(t->h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)0);
    } else {
        bool back = d->fate == F_ROLL_BACK;
        if (back)
            snprintf(t->body, sizeof t->body,
                     "{\"version\": \"%s\", \"result\": \"rolled_back\", \"target\": \"%s\", \"reason\": \"%s did "
                     "not come up in ota_1; back on ota_0 %s (reset reason panic)\", \"partition\": \"ota_0\", "
                     "\"state\": \"valid\", \"reset_reason\": \"panic\"}",
                     d->version, d->pending, d->pending, d->version);
        else
            snprintf(t->body, sizeof t->body,
                     "{\"version\": \"%s\", \"result\": \"updated\", \"target\": \"%s\", \"reason\": \"\", "
                     "\"partition\": \"ota_1\", \"state\": \"valid\", \"reset_reason\": \"sw\"}",
                     d->pending, d->pending);
        char auth[65] = "";
        if (d->credential[0]) { /* signed as the agent signs: HMAC-SHA256 of the body */
            uint8_t mac[32];
            HMAC(EVP_sha256(), d->credential, 64, (const uint8_t *)t->body, strlen(t->body), mac, NULL);
            aloft_hex(mac, sizeof mac, auth);
        }
        snprintf(t->url, sizeof t->url, "%s/api/devices/%s/report%s%s", f->o.server, d->mac,
                 auth[0] ? "?auth=" : "", auth);
        curl_easy_setopt(t->h, CURLOPT_HTTPHEADER, t->json_headers);
        curl_easy_setopt(t->h, CURLOPT_POSTFIELDS, t->body);
        curl_easy_setopt(t->h, CURLOPT_MAX_RECV_SPEED_LARGE, (curl_off_t)0);
    }
    curl_easy_setopt(t->h, CURLOPT_URL, t->url);
    d->state = D_BUSY;
    curl_multi_add_handle(f->multi, t->h);
}

static void latency(struct stats *st, double s)
{
    size_t b = (size_t)(s * 1e4);
    st->lat[b < LAT_BUCKETS ? b : LAT_BUCKETS]++;
    if (s > st->lat_max)
        st->lat_max = s;
}

/* A check-in answered: what the device does next. */
static void checkin_done(struct fleet *f, struct transfer *t, CURLcode rc, long code, double now)
{
    struct device *d = t->d;
    struct stats *st = &f->st;
    bool answered = rc == CURLE_OK || (rc == CURLE_WRITE_ERROR && code == 200 && t->cut);
    if (!answered) {
        st->errors++;
        schedule(f, d, R_CHECKIN, next_poll(f, now));
        return;
    }
    st->checkins++;
    latency(st, now - t->started);
    if (code != 200) {
        st->c304 += code == 304;
        st->c403 += code == 403;
        st->c404 += code == 404;
        st->cother += code != 304 && code != 403 && code != 404;
        schedule(f, d, R_CHECKIN, next_poll(f, now));
        return;
    }
    st->c200++;
    curl_off_t got = 0;
    curl_easy_getinfo(t->h, CURLINFO_SIZE_DOWNLOAD_T, &got);
    st->bytes += (uint64_t)got;
    if (!t->offered[0] || !strcmp(t->offered, d->declined)) { /* nothing it can take */
        st->declined++;
        schedule(f, d, R_CHECKIN, next_poll(f, now));
        return;
    }
    st->taken++;
    st->downloaded += rc == CURLE_OK;
    snprintf(d->pending, sizeof d->pending, "%s", t->offered);
    if (d->fate == F_VANISH) {
        st->vanished++;
        (*version_count(f, d->version))--;
        d->state = D_GONE;
        return;
    }
    schedule(f, d, R_REPORT, now + (f->o.interval < RESTART_S ? f->o.interval : RESTART_S));
}

/* The credential read (or not: the report goes unsigned, and is refused);
 * the report goes now. */
static void credential_done(struct fleet *f, struct transfer *t, CURLcode rc, long code, double now)
{
    struct device *d = t->d;
    cJSON *j = rc == CURLE_OK && code == 200 ? cJSON_Parse(t->body) : NULL;
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, "credential"));
    if (c && strlen(c) == 64)
        memcpy(d->credential, c, 65);
    cJSON_Delete(j);
    d->asked = true;
    schedule(f, d, R_REPORT, now);
}

static void report_done(struct fleet *f, struct transfer *t, CURLcode rc, long code, double now)
{
    struct device *d = t->d;
    d->asked = false;
    if (rc != CURLE_OK || code != 200)
        f->st.report_errors++;
    else
        f->st.reports++;
    if (d->fate == F_ROLL_BACK) {
        f->st.rolled_back++;
        f->st.rolled_devices += !d->declined[0];
        snprintf(d->declined, sizeof d->declined, "%s", d->pending);
    } else {
        f->st.updated++;
        set_version(f, d, d->pending);
    }
    d->pending[0] = 0;
    schedule(f, d, R_CHECKIN, next_poll(f, now));
}

static void reap(struct fleet *f, double now)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(f->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        struct transfer *t;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        long code = 0;
        curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &code);
        CURLcode rc = m->data.result;
        curl_multi_remove_handle(f->multi, m->easy_handle);
        if (t->kind == R_CHECKIN)
            checkin_done(f, t, rc, code, now);
        else if (t->kind == R_CREDENTIAL)
            credential_done(f, t, rc, code, now);
        else
            report_done(f, t, rc, code, now);
        f->free_slots[f->nfree++] = (size_t)(t - f->slots);
    }
}

/* ---- what it shows ---- */

static double percentile(const struct stats *st, double p)
{
    uint64_t n = 0, want;
    for (size_t i = 0; i <= LAT_BUCKETS; i++)
        n += st->lat[i];
    if (!n)
        return 0;
    want = (uint64_t)(p * (double)n);
    if (want >= n)
        want = n - 1;
    uint64_t seen = 0;
    for (size_t i = 0; i <= LAT_BUCKETS; i++) {
        seen += st->lat[i];
        if (seen > want)
            return (double)(i + 1) / 10.0; /* the bucket's upper edge, in ms */
    }
    return st->lat_max * 1e3;
}

static void summary(struct fleet *f, double now, bool tty)
{
    const struct stats *st = &f->st;
    double t = now - f->start;
    char versions[200] = "";
    size_t k = 0;
    for (size_t i = 0; i < f->nversions && k < sizeof versions; i++)
        if (f->by_version[i])
            k += (size_t)snprintf(versions + k, sizeof versions - k, " %s:%llu", f->versions[i],
                                  (unsigned long long)f->by_version[i]);
    fprintf(stderr,
            "%s%.0fs %llu check-ins (%.0f/s, p99 %.1f ms) 200:%llu 304:%llu errors:%llu | updated %llu, rolled "
            "back %llu, vanished %llu | versions%s%s",
            tty ? "\r\033[K" : "", t, (unsigned long long)st->checkins, t > 0 ? (double)st->checkins / t : 0.0,
            percentile(st, 0.99), (unsigned long long)st->c200, (unsigned long long)st->c304,
            (unsigned long long)(st->errors + st->c403 + st->c404 + st->cother), (unsigned long long)st->updated,
            (unsigned long long)st->rolled_back, (unsigned long long)st->vanished, versions, tty ? "" : "\n");
}

static void report_json(struct fleet *f, double now)
{
    const struct stats *st = &f->st;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "server", f->o.server);
    cJSON_AddStringToObject(j, "platform", f->o.platform);
    cJSON_AddNumberToObject(j, "devices", (double)f->o.devices);
    cJSON_AddNumberToObject(j, "seconds", (double)(long long)((now - f->start) * 10) / 10);
    cJSON *c = cJSON_AddObjectToObject(j, "checkins");
    cJSON_AddNumberToObject(c, "answered", (double)st->checkins);
    cJSON_AddNumberToObject(c, "200", (double)st->c200);
    cJSON_AddNumberToObject(c, "304", (double)st->c304);
    cJSON_AddNumberToObject(c, "403", (double)st->c403);
    cJSON_AddNumberToObject(c, "404", (double)st->c404);
    cJSON_AddNumberToObject(c, "other_status", (double)st->cother);
    cJSON_AddNumberToObject(c, "failed", (double)st->errors); /* no answer: refused, timed out, cut */
    cJSON *l = cJSON_AddObjectToObject(j, "latency_ms");
    cJSON_AddNumberToObject(l, "p50", percentile(st, 0.5));
    cJSON_AddNumberToObject(l, "p99", percentile(st, 0.99));
    cJSON_AddNumberToObject(l, "max", (double)(long long)(st->lat_max * 1e4) / 10);
    cJSON *u = cJSON_AddObjectToObject(j, "updates");
    cJSON_AddNumberToObject(u, "taken", (double)st->taken);
    cJSON_AddNumberToObject(u, "downloaded", (double)st->downloaded);
    cJSON_AddNumberToObject(u, "declined", (double)st->declined);
    cJSON_AddNumberToObject(u, "updated", (double)st->updated);
    cJSON_AddNumberToObject(u, "rolled_back", (double)st->rolled_back);
    cJSON_AddNumberToObject(u, "vanished", (double)st->vanished);
    cJSON_AddNumberToObject(u, "bytes", (double)st->bytes);
    cJSON *r = cJSON_AddObjectToObject(j, "reports");
    cJSON_AddNumberToObject(r, "sent", (double)st->reports);
    cJSON_AddNumberToObject(r, "failed", (double)st->report_errors);
    cJSON *v = cJSON_AddObjectToObject(j, "versions"); /* the devices still around, by what they run */
    for (size_t i = 0; i < f->nversions; i++)
        if (f->by_version[i])
            cJSON_AddNumberToObject(v, f->versions[i], (double)f->by_version[i]);
    if (f->by_version[VERSIONS_MAX])
        cJSON_AddNumberToObject(v, "other", (double)f->by_version[VERSIONS_MAX]);
    char *text = cJSON_Print(j);
    if (text)
        printf("%s\n", text);
    free(text);
    cJSON_Delete(j);
}

/* Does every device still around, not rolled back, run V with its report sent? */
static bool reached(const struct fleet *f, const char *v)
{
    uint64_t on = 0;
    for (size_t i = 0; i < f->nversions; i++)
        if (!strcmp(f->versions[i], v))
            on = f->by_version[i];
    /* a device that rolled back stays off V (it never vanishes: fates are one each) */
    return on + f->st.rolled_devices >= (uint64_t)f->o.devices - f->st.vanished;
}

/* ---- options ---- */

static bool parse_number(const char *s, double min, double max, double *out)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= min && v <= max))
        return false;
    *out = v;
    return true;
}

/* 100k, 1M, 250000: bytes per second */
static bool parse_rate(const char *s, double *out)
{
    char *end;
    double v = strtod(s, &end);
    double mul = !*end ? 1 : !strcasecmp(end, "k") ? 1e3 : !strcasecmp(end, "M") ? 1e6 : -1;
    if (end == s || mul < 0 || !(v > 0) || v * mul > 1e10)
        return false;
    *out = v * mul;
    return true;
}

static int parse(int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.interval = 60, .concurrency = 64, .free_space = 1900544, .prefix = {0x02, 0xA1, 0x0F}};
    static const struct option opts[] = {
        {"devices", required_argument, NULL, 'n'},  {"server", required_argument, NULL, 's'},
        {"platform", required_argument, NULL, 'p'}, {"version", required_argument, NULL, 'V'},
        {"interval", required_argument, NULL, 'i'}, {"jitter", no_argument, NULL, 'j'},
        {"rollback-share", required_argument, NULL, 'r'}, {"vanish-share", required_argument, NULL, 'v'},
        {"no-download", no_argument, NULL, 'N'},    {"link-rate", required_argument, NULL, 'l'},
        {"duration", required_argument, NULL, 'd'}, {"until-version", required_argument, NULL, 'u'},
        {"concurrency", required_argument, NULL, 'c'}, {"mac-prefix", required_argument, NULL, 'm'},
        {"free-space", required_argument, NULL, 'f'}, {"token", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int ch;
    double x;
    optind = 1;
    opterr = 0;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (ch) {
        case 'n':
            if (!parse_number(optarg, 1, DEVICES_MAX, &x) || x != (long)x)
                return usage_error("--devices takes a whole number from 1 to %d", DEVICES_MAX);
            o->devices = (long)x;
            break;
        case 's': o->server = optarg; break;
        case 'p': o->platform = optarg; break;
        case 'V': o->version = optarg; break;
        case 'i':
            if (!parse_number(optarg, 0.01, 86400, &o->interval))
                return usage_error("--interval takes seconds, from 0.01 to 86400");
            break;
        case 'j': o->jitter = true; break;
        case 'r':
        case 'v':
            if (!parse_number(optarg, 0, 100, ch == 'r' ? &o->rollback_share : &o->vanish_share))
                return usage_error("--%s takes a percentage from 0 to 100", ch == 'r' ? "rollback-share" : "vanish-share");
            break;
        case 'N': o->no_download = true; break;
        case 'l':
            if (!parse_rate(optarg, &o->link_rate))
                return usage_error("--link-rate takes bytes per second, e.g. 250000, 100k or 1M");
            break;
        case 'd':
            if (!parse_number(optarg, 0.1, 30 * 86400, &o->duration))
                return usage_error("--duration takes seconds (more than 0)");
            break;
        case 'u': o->until = optarg; break;
        case 'c':
            if (!parse_number(optarg, 1, 10000, &x) || x != (long)x)
                return usage_error("--concurrency takes a whole number from 1 to 10000");
            o->concurrency = (long)x;
            break;
        case 'm':
            if (sscanf(optarg, "%2x:%2x:%2x%n", &o->prefix[0], &o->prefix[1], &o->prefix[2], &(int){0}) != 3 ||
                strlen(optarg) != 8)
                return usage_error("--mac-prefix takes three bytes in hex, e.g. 02:A1:0F");
            break;
        case 'f':
            if (!parse_number(optarg, 0, 1e12, &x) || x != (long)x)
                return usage_error("--free-space takes a number of bytes");
            o->free_space = (long)x;
            break;
        case 't': o->token = optarg; break;
        case 'h': fputs(help, stdout); return -1;
        default: return usage_error("unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->devices)
        return usage_error("say how many devices: --devices N");
    if (!o->server || (strncmp(o->server, "http://", 7) && strncmp(o->server, "https://", 8)))
        return usage_error("give the update server: --server http(s)://HOST:PORT");
    if (!o->platform || !o->platform[0])
        return usage_error("give the devices' platform: --platform NAME");
    if (!o->version || !o->version[0] || strlen(o->version) > VERSION_MAX)
        return usage_error("give the version the devices run: --version V (at most %d characters)", VERSION_MAX);
    if (o->until && (!o->until[0] || strlen(o->until) > VERSION_MAX))
        return usage_error("--until-version takes a version of at most %d characters", VERSION_MAX);
    if (o->rollback_share + o->vanish_share > 100)
        return usage_error("--rollback-share and --vanish-share add up to more than 100 %%");
    /* optional: without it the reports go unsigned (and are refused) */
    if (o->token || (getenv("ALOFT_TOKEN") && *getenv("ALOFT_TOKEN")) || getenv("ALOFT_TOKEN_FILE"))
        o->token = o->token_buf = aloft_cmd_admin_token(o->token, NULL); /* kept for the run */
    return 0;
}

/* ---- the run ---- */

static int setup(struct fleet *f)
{
    long n = f->o.devices;
    f->dev = calloc((size_t)n, sizeof *f->dev);
    f->heap = calloc((size_t)n, sizeof *f->heap);
    f->slots = calloc((size_t)f->o.concurrency, sizeof *f->slots);
    f->free_slots = calloc((size_t)f->o.concurrency, sizeof *f->free_slots);
    f->multi = curl_multi_init();
    if (!f->dev || !f->heap || !f->slots || !f->free_slots || !f->multi)
        return -1;
    if (!(f->o.platform_q = malloc(3 * strlen(f->o.platform) + 1)))
        return -1;
    query_value(f->o.platform, f->o.platform_q, 3 * strlen(f->o.platform) + 1);
    for (long i = 0; i < f->o.concurrency; i++) {
        if (slot_init(f, &f->slots[i]))
            return -1;
        f->free_slots[f->nfree++] = (size_t)i;
    }
    curl_multi_setopt(f->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, f->o.concurrency);
    f->rng = 0x9E3779B97F4A7C15ull;
    f->start = now_s();
    *version_count(f, f->o.version) = (uint64_t)n;
    for (long i = 0; i < n; i++) {
        struct device *d = &f->dev[i];
        snprintf(d->mac, sizeof d->mac, "%02X:%02X:%02X:%02X:%02X:%02X", f->o.prefix[0], f->o.prefix[1],
                 f->o.prefix[2], (unsigned)(i >> 16) & 0xFF, (unsigned)(i >> 8) & 0xFF, (unsigned)i & 0xFF);
        snprintf(d->version, sizeof d->version, "%s", f->o.version);
        /* its fate from its index, so the same devices roll back in every run */
        double share = (double)((uint64_t)i * 2654435761u % 10000) / 100.0;
        d->fate = share < f->o.rollback_share                       ? F_ROLL_BACK
                  : share < f->o.rollback_share + f->o.vanish_share ? F_VANISH
                                                                    : F_UPDATE;
        /* the first polls spread over one interval, not all at once */
        schedule(f, d, R_CHECKIN, f->start + f->o.interval * (f->o.jitter ? rnd(f) : (double)i / (double)n));
    }
    return 0;
}

static void teardown(struct fleet *f)
{
    for (long i = 0; f->slots && i < f->o.concurrency; i++) {
        if (f->slots[i].h && f->slots[i].d && f->slots[i].d->state == D_BUSY)
            curl_multi_remove_handle(f->multi, f->slots[i].h);
        curl_slist_free_all(f->slots[i].checkin_headers);
        curl_slist_free_all(f->slots[i].json_headers);
        curl_slist_free_all(f->slots[i].auth_headers);
        curl_easy_cleanup(f->slots[i].h);
    }
    curl_multi_cleanup(f->multi);
    free(f->dev);
    free(f->heap);
    free(f->slots);
    free(f->free_slots);
    free(f->o.token_buf);
    free(f->o.platform_q);
}

int aloft_cmd_fleet_simulate(int argc, char **argv)
{
    struct fleet f;
    memset(&f, 0, sizeof f);
    int rc = parse(argc, argv, &f.o);
    if (rc)
        return rc < 0 ? 0 : rc;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (setup(&f)) {
        fprintf(stderr, "aloft fleet simulate: out of memory for %ld devices\n", f.o.devices);
        teardown(&f);
        curl_global_cleanup();
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    bool tty = isatty(2);
    double last_line = f.start;
    while (!interrupted) {
        double now = now_s();
        if (f.o.duration && now - f.start >= f.o.duration)
            break;
        if (f.o.until && reached(&f, f.o.until))
            break;
        if (!f.nheap && f.nfree == (size_t)f.o.concurrency) /* every device vanished */
            break;
        while (f.nheap && f.nfree && f.dev[f.heap[0]].due <= now)
            start(&f, pop(&f), now);
        int running;
        curl_multi_perform(f.multi, &running);
        reap(&f, now_s());
        if (now - last_line >= (tty ? 1 : 10)) {
            summary(&f, now, tty);
            last_line = now;
        }
        double wait = f.nheap && f.nfree ? f.dev[f.heap[0]].due - now_s() : 0.1;
        int ms = wait <= 0 ? 0 : wait > 0.1 ? 100 : (int)(wait * 1000) + 1;
        curl_multi_poll(f.multi, NULL, 0, ms, NULL);
    }
    double end = now_s();
    summary(&f, end, tty);
    if (tty)
        fputc('\n', stderr);
    report_json(&f, end);
    rc = f.st.checkins || !(f.st.errors) ? 0 : 1;
    if (rc)
        fprintf(stderr, "aloft fleet simulate: %s never answered a check-in\n", f.o.server);
    teardown(&f);
    curl_global_cleanup();
    return rc;
}
