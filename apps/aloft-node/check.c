/* aloft-node: scheduled checks against aloftd's GET /update (PROTOCOLS.md
 * §3.1), with the headers of Arduino's HTTPUpdate so that the seed's
 * servers understand it too: at boot, then every --check-every seconds
 * ±10 % (a fleet that booted together does not ask together). A 200's body
 * is applied like a trigger (pull.c); a 304 changes nothing. With www slots
 * the frontend is asked for as well (x-ESP32-mode: spiffs). */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aloft/otadata.h"
#include "hex.h"
#include "node.h"

struct check {
    struct node *n;
    char md5[33], sha256[65], ap_mac[18];
    unsigned seed;
};

/* What HTTPUpdate sends about the running sketch: its size and digests. */
static void describe(struct check *k)
{
    struct node *n = k->n;
    struct aloft_md5 m;
    struct aloft_sha256 s;
    uint8_t buf[4096], h[32];
    aloft_md5_init(&m);
    aloft_sha256_init(&s);
    const struct aloft_part *run = n->boot.running;
    for (uint32_t pos = 0; pos < n->app.image_len; pos += sizeof buf) {
        uint32_t len = n->app.image_len - pos < sizeof buf ? n->app.image_len - pos : (uint32_t)sizeof buf;
        if (aloft_flash_read(&n->pf.port, run->offset + pos, buf, len))
            break;
        aloft_md5_update(&m, buf, len);
        aloft_sha256_update(&s, buf, len);
    }
    aloft_md5_final(&m, h);
    aloft_hex(h, 16, k->md5);
    aloft_sha256_final(&s, h);
    aloft_hex(h, 32, k->sha256);
    /* an ESP32's soft-AP MAC is its station MAC + 1 */
    unsigned b[6];
    sscanf(n->mac, "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]);
    snprintf(k->ap_mac, sizeof k->ap_mac, "%02X:%02X:%02X:%02X:%02X:%02X", b[0], b[1], b[2], b[3], b[4],
             (b[5] + 1) & 0xFF);
}

static struct curl_slist *add(struct curl_slist *h, const char *name, const char *value)
{
    char line[300];
    snprintf(line, sizeof line, "%s: %s", name, value);
    return curl_slist_append(h, line);
}

static void check(struct check *k, bool frontend)
{
    struct node *n = k->n;
    if (aloft_boot_state(&n->boot) == ALOFT_OTA_PENDING_VERIFY) {
        node_log(n, "check: skipped: the running image has not confirmed itself yet");
        return;
    }
    const char *version = n->app.has_desc ? n->app.desc.version : "";
    CURL *c = curl_easy_init();
    char *dev = c ? curl_easy_escape(c, n->platform, 0) : NULL;
    char *ver = c ? curl_easy_escape(c, version[0] ? version : "0", 0) : NULL;
    char url[700], num[24], www[80] = "";
    size_t len = strlen(n->cfg.server);
    while (len && n->cfg.server[len - 1] == '/')
        len--;
    snprintf(url, sizeof url, "%.*s/update?dev=%s&ver=%s", (int)len, n->cfg.server, dev ? dev : "", ver ? ver : "");
    curl_free(dev);
    curl_free(ver);
    curl_easy_cleanup(c);

    const struct aloft_part *next = aloft_part_next_update(&n->boot.table, n->boot.running);
    struct curl_slist *h = add(NULL, "User-Agent", "ESP32-http-Update");
    h = add(h, "x-ESP32-STA-MAC", n->mac);
    h = add(h, "x-ESP32-AP-MAC", k->ap_mac);
    snprintf(num, sizeof num, "%u", next ? next->size : 0);
    h = add(h, "x-ESP32-free-space", num);
    snprintf(num, sizeof num, "%u", n->app.image_len);
    h = add(h, "x-ESP32-sketch-size", num);
    h = add(h, "x-ESP32-sketch-md5", k->md5);
    h = add(h, "x-ESP32-sketch-sha256", k->sha256);
    snprintf(num, sizeof num, "%u", n->pf.size);
    h = add(h, "x-ESP32-chip-size", num);
    h = add(h, "x-ESP32-sdk-version", n->app.has_desc && n->app.desc.idf_ver[0] ? n->app.desc.idf_ver : "unknown");
    h = add(h, "x-ESP32-mode", frontend ? "spiffs" : "sketch");
    if (frontend) { /* the frontend it has, as the last pull installed it */
        pthread_mutex_lock(&n->lock);
        int wl = aloft_posix_kv_get(&n->kv, "pull/www", www, sizeof www - 1);
        pthread_mutex_unlock(&n->lock);
        www[wl > 0 ? wl : 0] = 0;
        if (www[0])
            h = add(h, "x-ESP32-version", www);
    } else if (version[0]) {
        h = add(h, "x-ESP32-version", version);
    }
    int status = node_pull_check(n, url, h, frontend);
    if (status < 0)
        node_log(n, "check: skipped: an update is in progress");
    curl_slist_free_all(h);
}

static void *check_thread(void *arg)
{
    struct check *k = arg;
    struct node *n = k->n;
    for (;;) {
        check(k, false);
        if (n->www[0])
            check(k, true);
        if (!n->cfg.check_every_s)
            break;
        double wait = n->cfg.check_every_s * (0.9 + 0.2 * (double)rand_r(&k->seed) / RAND_MAX);
        struct timespec ts = {(time_t)wait, (long)((wait - (double)(time_t)wait) * 1e9)};
        nanosleep(&ts, NULL);
    }
    free(k);
    return NULL;
}

int node_check_start(struct node *n)
{
    struct check *k = calloc(1, sizeof *k);
    if (!k)
        return -1;
    k->n = n;
    k->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    describe(k);
    pthread_t t;
    if (pthread_create(&t, NULL, check_thread, k)) {
        free(k);
        return -1;
    }
    pthread_detach(t);
    if (n->cfg.check_every_s)
        node_log(n, "check: asking %s for updates at boot and every %u s (±10 %%)", n->cfg.server, n->cfg.check_every_s);
    else
        node_log(n, "check: asking %s for updates at boot", n->cfg.server);
    return 0;
}
