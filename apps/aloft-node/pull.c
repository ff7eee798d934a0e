/* aloft-node: pull updates — download a URL (HTTP or HTTPS, libcurl) into
 * the update writer or the inactive www slot, in a thread of its own.
 *
 * The image's head (ALOFT_IMAGE_IDENT_BYTES) is collected and identified
 * before anything is erased or written: another chip, another project, a
 * lower secure_version or the running version are refused with the slot
 * untouched. A dropped connection resumes with Range: bytes=N- and If-Range
 * (the first response's ETag), so the same file continues and a changed one
 * starts over. The job and, every 64 KB, the bytes safely in flash are kept
 * in the settings ("pull/…"), so a restart in the middle resumes there
 * (aloft_update_resume re-verifies what is in flash). A complete, verified
 * image is made the boot image, "pull/pending" says what should come up,
 * and the boot after the restart tells: updated (once the new image marked
 * itself valid) or rolled_back, in the state and to aloftd (--server). */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft/otadata.h"
#include "aloft/update.h"
#include "hex.h"
#include "node.h"

#define SAVE_EVERY (64u * 1024u) /* progress kept in the settings: a multiple of the sector size */
#define MAX_STALLS 5             /* attempts in a row that bring no byte */
#define CONNECT_TIMEOUT_S 10L
#define REPORT_TRIES 6

/* ---- settings ---- */

static void kv_put(struct node *n, const char *key, const char *val)
{
    pthread_mutex_lock(&n->lock);
    int rc = val ? aloft_posix_kv_set(&n->kv, key, val, strlen(val)) : aloft_posix_kv_del(&n->kv, key);
    pthread_mutex_unlock(&n->lock);
    if (rc == ALOFT_E_POWER)
        node_power_lost(n);
    if (rc)
        node_log(n, "pull: cannot keep %s in the settings: %s", key, aloft_strerror(rc));
}

/* The value as a string, or "" when absent. */
static void kv_str(struct node *n, const char *key, char *buf, size_t cap)
{
    pthread_mutex_lock(&n->lock);
    int len = aloft_posix_kv_get(&n->kv, key, buf, cap - 1);
    pthread_mutex_unlock(&n->lock);
    buf[len > 0 ? len : 0] = 0;
}

static cJSON *kv_json(struct node *n, const char *key)
{
    char buf[ALOFT_KV_VALUE_MAX + 1];
    kv_str(n, key, buf, sizeof buf);
    return buf[0] ? cJSON_Parse(buf) : NULL;
}

static void kv_put_json(struct node *n, const char *key, cJSON *j)
{
    char *text = cJSON_PrintUnformatted(j);
    kv_put(n, key, text);
    free(text);
    cJSON_Delete(j);
}

static void json_str(const cJSON *j, const char *key, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

/* ---- one download ---- */

struct dl {
    struct node *n;
    struct node_pull_req r;
    bool check;                        /* from a scheduled check */
    bool answered;                     /* a response carried the body (a check's 200) */
    const struct curl_slist *first_headers; /* check: its HTTPUpdate headers, first request only */
    char url[600];                     /* this request's */
    char md5[33];                      /* expected MD5 of the body (x-MD5), "" if none */
    char etag[80];                     /* of the first response: If-Range when resuming */
    CURL *curl;
    char curl_err[CURL_ERROR_SIZE];
    /* the response being read */
    long status;
    bool validated;                    /* its status and range checked at its first byte */
    bool restart;                      /* it did not continue the body: start over */
    uint64_t resp_len, range_start, range_total;
    bool has_range;
    char resp_etag[80], resp_md5[40], resp_version[sizeof ((struct node_pull_req *)0)->version];
    /* the body */
    uint64_t total;                    /* 0: unknown */
    uint64_t done;                     /* bytes taken */
    uint64_t saved;                    /* in flash and in pull/offset */
    bool started;                      /* slot erased (update begun) */
    uint8_t head[ALOFT_IMAGE_IDENT_BYTES];
    size_t head_len;
    const struct aloft_part *slot;
    struct aloft_update u;
    struct aloft_sha256 sha;
    struct aloft_md5 md5c;
    struct timespec t0, last_pub;
    uint64_t t0_done;
    unsigned last_pct;
    char code[32], reason[256];        /* why it failed */
};

static int dl_fail(struct dl *d, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int dl_fail(struct dl *d, const char *code, const char *fmt, ...)
{
    if (!d->code[0]) {
        snprintf(d->code, sizeof d->code, "%s", code);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(d->reason, sizeof d->reason, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An error of the image verifier or the update writer. */
static int image_fail(struct dl *d, int err)
{
    static const struct {
        int err;
        const char *code;
    } map[] = {
        {ALOFT_E_MAGIC, "not_an_image"},   {ALOFT_E_SEGMENTS, "not_an_image"}, {ALOFT_E_HEADER, "not_an_image"},
        {ALOFT_E_CHIP, "wrong_chip"},      {ALOFT_E_ESP8266, "wrong_chip"},    {ALOFT_E_SEGMENT, "corrupt_image"},
        {ALOFT_E_CHECKSUM, "corrupt_image"}, {ALOFT_E_HASH, "corrupt_image"}, {ALOFT_E_TRAILING, "corrupt_image"},
        {ALOFT_E_TRUNCATED, "truncated"},  {ALOFT_E_NOSPC, "too_large"},       {ALOFT_E_STATE, "pending_verify"},
        {ALOFT_E_SIGNATURE, "bad_signature"},
    };
    if (err == ALOFT_E_POWER)
        node_power_lost(d->n);
    const char *code = "flash_error";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].err == err)
            code = map[i].code;
    if (err == ALOFT_E_CHIP)
        return dl_fail(d, code, "%s: this device is %s", aloft_strerror(err),
                       aloft_chip_name(d->n->boot.chip) ? aloft_chip_name(d->n->boot.chip) : "an unknown chip");
    if (err == ALOFT_E_STATE)
        return dl_fail(d, code, "the running image is still pending verification; wait until it confirms itself");
    return dl_fail(d, code, "%s", aloft_strerror(err));
}

static void publish(struct dl *d, enum node_phase phase)
{
    struct node_state s = {.phase = phase, .frontend = d->r.frontend, .bytes = d->done, .total = d->total};
    snprintf(s.trigger, sizeof s.trigger, "%s", d->r.trigger);
    snprintf(s.version, sizeof s.version, "%s", d->r.version);
    if (phase == NODE_FAILED) {
        snprintf(s.code, sizeof s.code, "%s", d->code);
        snprintf(s.reason, sizeof s.reason, "%s", d->reason);
    }
    node_state_set(d->n, &s);
    clock_gettime(CLOCK_MONOTONIC, &d->last_pub);
    d->last_pct = d->total ? (unsigned)(d->done * 100 / d->total) : 0;
}

static double since(const struct timespec *t)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - t->tv_sec) + (double)(now.tv_nsec - t->tv_nsec) / 1e9;
}

/* The job as the settings keep it, so that a restart resumes it. */
static void save_job(struct dl *d)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", d->r.version);
    cJSON_AddStringToObject(j, "sha256", d->r.sha256);
    cJSON_AddNumberToObject(j, "size", (double)d->r.size);
    cJSON_AddStringToObject(j, "trigger", d->r.trigger);
    cJSON_AddStringToObject(j, "target", d->r.frontend ? "frontend" : "firmware");
    cJSON_AddStringToObject(j, "slot", d->slot->label);
    cJSON_AddStringToObject(j, "etag", d->etag);
    cJSON_AddStringToObject(j, "md5", d->md5);
    cJSON_AddBoolToObject(j, "check", d->check);
    kv_put(d->n, "pull/url", d->r.url);
    kv_put(d->n, "pull/token", d->r.token[0] ? d->r.token : NULL);
    kv_put(d->n, "pull/offset", "0");
    kv_put_json(d->n, "pull/job", j);
    d->saved = 0;
}

static void clear_job(struct node *n)
{
    kv_put(n, "pull/job", NULL);
    kv_put(n, "pull/url", NULL);
    kv_put(n, "pull/token", NULL);
    kv_put(n, "pull/offset", NULL);
}

/* Identify the image from its head; refuse what must not be installed. */
static int identify(struct dl *d)
{
    struct node *n = d->n;
    struct aloft_image_verifier v;
    aloft_image_begin(&v, n->boot.chip, d->slot->size);
    int rc = aloft_image_feed(&v, d->head, d->head_len);
    if (rc)
        return image_fail(d, rc);
    if (!aloft_image_ident_ready(&v))
        return dl_fail(d, d->head_len ? "truncated" : "not_an_image", "the body is %zu bytes: %s", d->head_len,
                       d->head_len ? "it ends inside the image header" : "empty");
    const struct aloft_image_info *in = &v.info;
    char why[200];
    if (n->app.has_desc && (!in->has_desc || strcmp(in->desc.project_name, n->app.desc.project_name)))
        return dl_fail(d, "wrong_project", "the image is for project '%s'; this device runs '%s'",
                       in->has_desc ? in->desc.project_name : "(no app descriptor)", n->app.desc.project_name);
    if (!node_secure_version_ok(n, in, why, sizeof why))
        return dl_fail(d, "secure_version", "%s", why);
    if (in->has_desc && n->app.has_desc && !strcmp(in->desc.version, n->app.desc.version))
        return dl_fail(d, "same_version", "the image is version %s, which this device runs already", in->desc.version);
    char bad[sizeof in->desc.version];
    kv_str(n, "pull/rolled_back", bad, sizeof bad);
    /* a check would offer it again and again: only a trigger retries it */
    if (d->check && in->has_desc && !strcmp(in->desc.version, bad))
        return dl_fail(d, "rolled_back_before", "version %s was rolled back on this device; not installed again "
                       "unless triggered", bad);
    if (d->r.version[0] && in->has_desc && strcmp(in->desc.version, d->r.version))
        return dl_fail(d, "wrong_version", "expected version %s; the image is %s", d->r.version, in->desc.version);
    if (in->has_desc)
        snprintf(d->r.version, sizeof d->r.version, "%.*s", (int)sizeof d->r.version - 1, in->desc.version);
    return 0;
}

/* Erase the target: the last moment before the first write. */
static int begin(struct dl *d)
{
    struct node *n = d->n;
    int rc;
    pthread_mutex_lock(&n->lock);
    if (d->r.frontend)
        rc = aloft_flash_erase(&n->pf.port, d->slot->offset, d->slot->size);
    else
        rc = aloft_update_begin(&d->u, &n->boot, d->slot);
    pthread_mutex_unlock(&n->lock);
    if (rc)
        return image_fail(d, rc);
    d->started = true;
    return 0;
}

/* Write body bytes [at, at + len) into the slot. */
static int put(struct dl *d, uint64_t at, const void *p, size_t len)
{
    int rc;
    if (d->r.frontend)
        rc = at + len > d->slot->size ? ALOFT_E_NOSPC
                                      : aloft_flash_write(&d->n->pf.port, d->slot->offset + (uint32_t)at, p, len);
    else
        rc = aloft_update_write(&d->u, p, len);
    return rc ? image_fail(d, rc) : 0;
}

static void throttle(struct dl *d)
{
    uint64_t rate = d->n->cfg.link_rate;
    if (!rate)
        return;
    double due = (double)(d->done - d->t0_done) / (double)rate, elapsed = since(&d->t0);
    if (due > elapsed)
        usleep((useconds_t)((due - elapsed) * 1e6));
}

/* The next len bytes of the body. */
static int take(struct dl *d, const uint8_t *p, size_t len)
{
    aloft_sha256_update(&d->sha, p, len);
    aloft_md5_update(&d->md5c, p, len);
    uint64_t at = d->done;
    d->done += len;
    if (!d->started && d->r.frontend && begin(d))
        return -1;
    if (!d->started) { /* firmware: nothing is erased before the head is identified */
        size_t k = sizeof d->head - d->head_len < len ? sizeof d->head - d->head_len : len;
        memcpy(d->head + d->head_len, p, k);
        d->head_len += k;
        p += k;
        len -= k;
        if (d->head_len < sizeof d->head)
            return 0;
        if (identify(d) || begin(d) || put(d, 0, d->head, d->head_len))
            return -1;
        at = d->head_len;
    }
    if (len && put(d, at, p, len))
        return -1;
    uint64_t safe = d->done / SAVE_EVERY * SAVE_EVERY;
    if (safe > d->saved) {
        char v[24];
        snprintf(v, sizeof v, "%" PRIu64, safe);
        kv_put(d->n, "pull/offset", v);
        d->saved = safe;
    }
    unsigned pct = d->total ? (unsigned)(d->done * 100 / d->total) : 0;
    if (pct >= d->last_pct + 5 || since(&d->last_pub) >= 1.0)
        publish(d, NODE_DOWNLOADING);
    throttle(d);
    return 0;
}

/* Back to byte 0: the server sent another file or ignored the range. */
static void start_over(struct dl *d)
{
    if (d->started && !d->r.frontend)
        aloft_update_abort(&d->u);
    d->started = false;
    d->done = d->head_len = 0;
    d->etag[0] = 0;
    aloft_sha256_init(&d->sha);
    aloft_md5_init(&d->md5c);
    if (d->saved) {
        kv_put(d->n, "pull/offset", "0");
        d->saved = 0;
    }
}

/* --server with path appended (one slash between). */
static void server_url(const struct node *n, const char *path, char *out, size_t cap)
{
    size_t len = strlen(n->cfg.server);
    while (len && n->cfg.server[len - 1] == '/')
        len--;
    snprintf(out, cap, "%.*s%s", (int)len, n->cfg.server, path);
}

static bool is_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdefABCDEF", *s))
            return false;
    return true;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'F')
            *s = (char)(*s - 'A' + 'a');
}

/* The first byte of a response: does it continue the body? */
static int validate(struct dl *d)
{
    curl_easy_getinfo(d->curl, CURLINFO_RESPONSE_CODE, &d->status);
    d->validated = true;
    if (d->status == 206) {
        if (!d->has_range || d->range_start != d->done) {
            node_log(d->n, "pull: the server answered the range from %" PRIu64 " with another range; starting over",
                     d->done);
            start_over(d);
            d->restart = true;
            return -1;
        }
        d->total = d->range_total;
    } else if (d->status == 200) {
        if (d->done) {
            node_log(d->n, "pull: the server sent the whole file instead of the rest (changed, or no Range "
                           "support); starting over");
            start_over(d);
        }
        d->total = d->resp_len;
        if (!d->md5[0] && is_hex(d->resp_md5, 32)) {
            memcpy(d->md5, d->resp_md5, sizeof d->md5);
            lower(d->md5);
        }
    } else {
        return dl_fail(d, "http_status", "the server answered %ld, not 200 with the image", d->status);
    }
    if (!d->etag[0])
        snprintf(d->etag, sizeof d->etag, "%s", d->resp_etag);
    d->answered = true;
    if (d->check && d->status == 200) {
        /* aloftd's ETag is the file's SHA-256, and /firmware/<sha256>.bin
         * serves the same bytes with Range: resume there */
        char sha[65] = "";
        if (strlen(d->etag) == 66 && d->etag[0] == '"')
            memcpy(sha, d->etag + 1, 64);
        if (is_hex(sha, 64)) {
            lower(sha);
            memcpy(d->r.sha256, sha, sizeof sha);
            char path[80];
            snprintf(path, sizeof path, "/firmware/%s.bin", sha);
            server_url(d->n, path, d->r.url, sizeof d->r.url);
        }
        snprintf(d->r.version, sizeof d->r.version, "%s", d->resp_version);
        save_job(d);
    }
    if (d->r.size && d->total && d->total != d->r.size)
        return dl_fail(d, "size_mismatch", "the server sends %" PRIu64 " bytes; the trigger says %" PRIu64, d->total,
                       d->r.size);
    if (d->total > d->slot->size)
        return dl_fail(d, "too_large", "the body is %" PRIu64 " bytes; %s holds %u", d->total, d->slot->label,
                       d->slot->size);
    publish(d, NODE_DOWNLOADING);
    return 0;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct dl *d = ud;
    size_t len = size * nmemb;
    if (!d->validated && validate(d))
        return 0;
    return take(d, (const uint8_t *)p, len) ? 0 : len;
}

/* The value of header name in line, trimmed, or NULL. */
static const char *header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl || strncasecmp(line, name, nl) || line[nl] != ':')
        return NULL;
    const char *v = line + nl + 1, *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, cap, "%.*s", (int)(end - v), v);
    return out;
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct dl *d = ud;
    size_t len = size * nmemb;
    char v[128];
    if (len >= 5 && !strncasecmp(p, "HTTP/", 5)) { /* a new response (redirects have several) */
        d->resp_len = d->range_start = d->range_total = 0;
        d->has_range = false;
        d->resp_etag[0] = d->resp_md5[0] = d->resp_version[0] = 0;
    } else if (header_value(p, len, "Content-Length", v, sizeof v)) {
        d->resp_len = strtoull(v, NULL, 10);
    } else if (header_value(p, len, "Content-Range", v, sizeof v)) {
        unsigned long long a, b, t;
        d->has_range = sscanf(v, "bytes %llu-%llu/%llu", &a, &b, &t) == 3;
        d->range_start = a, d->range_total = t;
    } else if (!header_value(p, len, "ETag", d->resp_etag, sizeof d->resp_etag) &&
               !header_value(p, len, "x-MD5", d->resp_md5, sizeof d->resp_md5)) {
        header_value(p, len, "X-Aloft-Version", d->resp_version, sizeof d->resp_version);
    }
    return len;
}

/* What every request of the device has: no proxy (a device talks to the
 * server itself), its TLS trust, and the address it serves on as the
 * source, as a device on a LAN would (aloftd's inventory then shows each
 * simulated device's own IP). */
static void device_options(const struct node *n, CURL *c)
{
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    if (n->cfg.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, n->cfg.ca_file);
    if (n->cfg.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    char host[64] = "host!";
    const char *colon = strrchr(n->cfg.listen, ':');
    size_t len = colon ? (size_t)(colon - n->cfg.listen) : 0;
    if (!len || len > sizeof host - 6 || !strncmp(n->cfg.listen, "0.0.0.0", len))
        return;
    memcpy(host + 5, n->cfg.listen, len);
    host[5 + len] = 0;
    curl_easy_setopt(c, CURLOPT_INTERFACE, host);
}

/* One request: the body from d->done on. Returns curl's result. */
static CURLcode attempt(struct dl *d)
{
    struct node *n = d->n;
    CURL *c = d->curl;
    curl_easy_reset(c);
    struct curl_slist *h = NULL;
    for (const struct curl_slist *i = d->first_headers; i; i = i->next)
        h = curl_slist_append(h, i->data);
    d->first_headers = NULL;
    char line[700];
    if (d->r.token[0]) {
        snprintf(line, sizeof line, "Authorization: Bearer %s", d->r.token);
        h = curl_slist_append(h, line);
    }
    if (d->done) {
        snprintf(line, sizeof line, "Range: bytes=%" PRIu64 "-", d->done);
        h = curl_slist_append(h, line);
        if (d->etag[0]) {
            snprintf(line, sizeof line, "If-Range: %s", d->etag);
            h = curl_slist_append(h, line);
        }
    }
    bool https = !strncmp(d->url, "https://", 8);
    curl_easy_setopt(c, CURLOPT_URL, d->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, d->check ? "ESP32-http-Update" : "aloft-node");
    device_options(n, c);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(n->cfg.idle_timeout_s ? n->cfg.idle_timeout_s : 30));
    /* redirects stay on the scheme asked for: never from HTTPS down to HTTP */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, d->curl_err);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, d);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, d);
    d->curl_err[0] = 0;
    d->status = 0;
    d->validated = d->restart = false;
    clock_gettime(CLOCK_MONOTONIC, &d->t0);
    d->t0_done = d->done;
    if (https && n->cfg.insecure)
        node_log(n, "pull: WARNING: --insecure: the certificate of %s is NOT verified; anyone on the path can "
                    "serve this device an image", d->url);
    if (d->done)
        node_log(n, "pull: resuming %s at byte %" PRIu64 "%s%s", d->url, d->done, d->etag[0] ? " if still " : "",
                 d->etag);
    CURLcode rc = curl_easy_perform(c);
    if (!d->status)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &d->status);
    curl_slist_free_all(h);
    return rc;
}

static bool tls_error(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CONNECT_ERROR ||
           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR;
}

/* Download the whole body, resuming after drops. 0: the body is in; -1:
 * failed (d->code); 1: a check that brought nothing to install. */
static int download(struct dl *d)
{
    unsigned stalls = 0;
    for (;;) {
        uint64_t before = d->done;
        CURLcode rc = attempt(d);
        if (d->code[0])
            return -1;
        const char *err = d->curl_err[0] ? d->curl_err : curl_easy_strerror(rc);
        if (rc == CURLE_OK && (d->status == 200 || d->status == 206) && d->validated)
            return 0;
        if (rc == CURLE_OK && d->status == 200) /* an empty body */
            return validate(d) ? -1 : 0;
        /* a check that got no image: nothing to do, or nothing it can do */
        if (d->check && !d->answered && rc != CURLE_OK && !tls_error(rc) && rc != CURLE_HTTP_RETURNED_ERROR) {
            node_log(d->n, "pull: check: %s: %s", d->url, err);
            return 1;
        }
        if (d->check && !d->answered && (rc == CURLE_OK || rc == CURLE_HTTP_RETURNED_ERROR)) {
            node_log(d->n, "pull: check: %s answered %ld%s", d->url, d->status,
                     d->status == 304 ? " (nothing to do)" : "");
            return 1;
        }
        if (tls_error(rc))
            return dl_fail(d, "tls", "%s: %s", d->url, err);
        if (rc == CURLE_OK)
            return dl_fail(d, "http_status", "%s answered %ld, not 200 with the image", d->url, d->status);
        if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_TOO_MANY_REDIRECTS)
            return dl_fail(d, "redirect", "%s: %s", d->url, err);
        bool server_error = rc == CURLE_HTTP_RETURNED_ERROR;
        if (server_error && d->status < 500 && d->status != 408 && d->status != 429) {
            char code[32];
            snprintf(code, sizeof code, "http_%ld", d->status);
            return dl_fail(d, code, "%s answered %ld", d->url, d->status);
        }
        stalls = d->restart ? stalls : d->done > before ? 0 : stalls + 1;
        if (stalls >= MAX_STALLS) {
            if (server_error) {
                char code[32];
                snprintf(code, sizeof code, "http_%ld", d->status);
                return dl_fail(d, code, "%s answered %ld, %u times in a row", d->url, d->status, stalls);
            }
            return d->done ? dl_fail(d, "truncated", "the download stopped at byte %" PRIu64 " of %" PRIu64
                                                     " %u times in a row: %s", d->done, d->total, stalls, err)
                           : dl_fail(d, "unreachable", "%s: %s", d->url, err);
        }
        node_log(d->n, "pull: the download stopped at byte %" PRIu64 " of %" PRIu64 " (%s); retrying", d->done,
                 d->total, err);
        usleep(stalls ? (useconds_t)(250000u << (stalls - 1 < 4 ? stalls - 1 : 4)) : 100000u);
        snprintf(d->url, sizeof d->url, "%s", d->r.url);
    }
}

/* ---- outcome reports to aloftd ---- */

struct report {
    struct node *n;
    char url[600];
    char *body;
};

static size_t discard(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p, (void)ud;
    return size * nmemb;
}

static void *report_thread(void *arg)
{
    struct report *r = arg;
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;
    for (int i = 0; c && i < REPORT_TRIES && status != 200; i++) {
        if (i)
            sleep((unsigned)i); /* aloftd knows a device from its first check-in on */
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, r->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        device_options(r->n, c);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        CURLcode rc = curl_easy_perform(c);
        status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        node_log(r->n, "pull: report %s to %s: %s%ld", r->body, r->url, rc ? curl_easy_strerror(rc) : "",
                 rc ? 0L : status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(r->body);
    free(r);
    return NULL;
}

/* POST the outcome to aloftd (--server), in the background. */
static void report(struct node *n, const char *result, const char *reason)
{
    if (!n->cfg.server)
        return;
    struct report *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->n = n;
    char path[64];
    snprintf(path, sizeof path, "/api/devices/%s/report", n->mac);
    server_url(n, path, r->url, sizeof r->url);
    int64_t st = aloft_boot_state(&n->boot);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", n->app.has_desc && n->app.desc.version[0] ? n->app.desc.version : "unknown");
    cJSON_AddStringToObject(j, "result", result);
    char why[200];
    snprintf(why, sizeof why, "%s", reason);
    cJSON_AddStringToObject(j, "reason", why);
    cJSON_AddStringToObject(j, "partition", n->boot.running->label);
    cJSON_AddStringToObject(j, "state", st < 0 ? "unknown" : aloft_otadata_state_name((uint32_t)st));
    cJSON_AddStringToObject(j, "reset_reason", n->reset_reason);
    r->body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    pthread_t t;
    if (!r->body || pthread_create(&t, NULL, report_thread, r)) {
        free(r->body);
        free(r);
        return;
    }
    pthread_detach(t);
}

/* ---- the job ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void release(struct node *n)
{
    pthread_mutex_lock(&n->lock);
    n->busy = false;
    pthread_mutex_unlock(&n->lock);
}

static void job_failed(struct dl *d)
{
    struct node *n = d->n;
    if (d->started && !d->r.frontend)
        aloft_update_abort(&d->u);
    clear_job(n);
    node_log(n, "pull: failed: %s (%s); nothing changed", d->code, d->reason);
    publish(d, NODE_FAILED);
    /* refusing what runs already or was rolled back is no update's outcome */
    if (strcmp(d->code, "same_version") && strcmp(d->code, "rolled_back_before"))
        report(n, "failed", d->reason);
    release(n);
}

/* The highest sequence number otadata holds, whatever its state: the
 * switch to a new image writes a higher one (a rollback keeps it). */
static uint32_t otadata_seq(struct node *n)
{
    struct aloft_otadata od;
    uint32_t top = 0;
    if (n->boot.otadata && aloft_otadata_read(n->boot.flash, n->boot.otadata, &od) == 0)
        for (int i = 0; i < 2; i++)
            if (od.e[i].seq != 0xFFFFFFFFu && od.e[i].crc == aloft_otadata_crc(od.e[i].seq) && od.e[i].seq > top)
                top = od.e[i].seq;
    return top;
}

/* What outcome() looks at after the restart. */
static void save_pending(struct dl *d)
{
    const struct aloft_image_info *in = &d->u.v.info;
    if (!d->r.frontend && in->has_desc) /* a resumed job may not have seen the head */
        snprintf(d->r.version, sizeof d->r.version, "%.*s", (int)sizeof d->r.version - 1, in->desc.version);
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "version", d->r.version);
    cJSON_AddStringToObject(p, "trigger", d->r.trigger);
    cJSON_AddStringToObject(p, "target", d->r.frontend ? "frontend" : "firmware");
    cJSON_AddStringToObject(p, "slot", d->slot->label);
    pthread_mutex_lock(&d->n->lock);
    cJSON_AddNumberToObject(p, "seq", otadata_seq(d->n));
    pthread_mutex_unlock(&d->n->lock);
    kv_put_json(d->n, "pull/pending", p);
}

/* The body is in: check it whole, make it boot, restart. */
static int complete(struct dl *d)
{
    struct node *n = d->n;
    if (!d->started && !d->r.frontend && (identify(d) || begin(d) || put(d, 0, d->head, d->head_len)))
        return -1;
    if (!d->started && d->r.frontend && begin(d))
        return -1;
    if (d->total && d->done != d->total)
        return dl_fail(d, "truncated", "the body ended at byte %" PRIu64 " of %" PRIu64, d->done, d->total);
    if (d->r.size && d->done != d->r.size)
        return dl_fail(d, "size_mismatch", "the body is %" PRIu64 " bytes; expected %" PRIu64, d->done, d->r.size);
    uint8_t h[32];
    char hex[65];
    aloft_sha256_final(&d->sha, h);
    aloft_hex(h, 32, hex);
    if (d->r.sha256[0] && strcmp(hex, d->r.sha256))
        return dl_fail(d, "bad_sha256", "the body's SHA-256 is %s; expected %s", hex, d->r.sha256);
    aloft_md5_final(&d->md5c, h);
    aloft_hex(h, 16, hex);
    if (d->md5[0] && strcmp(hex, d->md5))
        return dl_fail(d, "bad_md5", "the body's MD5 is %s; x-MD5 says %s", hex, d->md5);
    publish(d, NODE_VERIFYING);
    int rc;
    pthread_mutex_lock(&n->lock);
    rc = d->r.frontend ? node_www_commit(n, d->slot) : aloft_update_end(&d->u);
    pthread_mutex_unlock(&n->lock);
    if (rc == 0) /* settings take n->lock themselves */
        save_pending(d);
    if (rc == 0 && !d->r.frontend) {
        /* pending before the switch: power lost right after it still
         * leaves an outcome to report (outcome() sees whether it happened) */
        pthread_mutex_lock(&n->lock);
        rc = aloft_update_set_boot(&d->u);
        pthread_mutex_unlock(&n->lock);
        if (rc)
            kv_put(n, "pull/pending", NULL);
    }
    if (rc == 1)
        return dl_fail(d, "not_littlefs", "the body is not a LittleFS image that mounts");
    if (rc)
        return image_fail(d, rc);
    if (d->r.frontend && (d->r.version[0] || d->r.sha256[0])) /* what a check names as its frontend */
        kv_put(n, "pull/www", d->r.version[0] ? d->r.version : d->r.sha256);
    clear_job(n);
    node_log(n, "pull: %" PRIu64 " bytes verified into %s%s%s; restarting", d->done, d->slot->label,
             d->r.version[0] ? ", version " : "", d->r.version);
    publish(d, NODE_RESTARTING);
    node_request_restart(n, "SW"); /* busy stays: nothing else starts now */
    return 0;
}

static void dl_free(struct dl *d)
{
    curl_easy_cleanup(d->curl);
    free(d);
}

/* Run a job to its end and free it. Returns the HTTP status of its last response. */
static long run(struct dl *d)
{
    int rc = download(d);
    if (rc == 0)
        rc = complete(d);
    if (rc < 0)
        job_failed(d);
    else if (rc > 0)
        release(d->n);
    long status = d->status;
    dl_free(d);
    return status;
}

static void *job_thread(void *arg)
{
    run(arg);
    return NULL;
}

static struct dl *dl_new(struct node *n, const struct node_pull_req *r)
{
    pthread_once(&curl_once, curl_init);
    struct dl *d = calloc(1, sizeof *d);
    if (!d || !(d->curl = curl_easy_init())) {
        free(d);
        return NULL;
    }
    d->n = n;
    d->r = *r;
    snprintf(d->url, sizeof d->url, "%s", r->url);
    aloft_sha256_init(&d->sha);
    aloft_md5_init(&d->md5c);
    clock_gettime(CLOCK_MONOTONIC, &d->last_pub);
    return d;
}

/* The slot a request writes, or NULL with the state failed. */
static const struct aloft_part *target_slot(struct node *n, const struct node_pull_req *r, struct dl *d)
{
    if (r->frontend) {
        int i = node_www_inactive(n);
        if (i < 0)
            dl_fail(d, "no_frontend_slots", "this device's partition table has no www_0/www_1 slots");
        return i < 0 ? NULL : n->www[i];
    }
    const struct aloft_part *p = aloft_part_next_update(&n->boot.table, n->boot.running);
    if (!p)
        dl_fail(d, "no_slot", "this device's partition table has no slot to update into");
    else if (aloft_boot_state(&n->boot) == ALOFT_OTA_PENDING_VERIFY)
        dl_fail(d, "pending_verify", "the running image is still pending verification; wait until it confirms itself");
    return d->code[0] ? NULL : p;
}

/* Take n->busy; false when an update runs already. */
static bool claim(struct node *n)
{
    pthread_mutex_lock(&n->lock);
    bool was = n->busy;
    n->busy = true;
    pthread_mutex_unlock(&n->lock);
    return !was;
}

int node_pull_start(struct node *n, const struct node_pull_req *r)
{
    char last[sizeof r->trigger] = "";
    kv_str(n, "pull/trigger", last, sizeof last);
    if (r->trigger[0] && !strcmp(last, r->trigger)) {
        node_log(n, "pull: trigger %s was handled already; ignored", r->trigger);
        return -2;
    }
    struct dl *d = dl_new(n, r);
    if (!d)
        return -3;
    if (!claim(n)) {
        dl_fail(d, "busy", "another update is in progress; try again when it is done");
        node_log(n, "pull: refused %s: %s", r->url, d->reason);
        publish(d, NODE_FAILED);
        dl_free(d);
        return -1;
    }
    if (r->trigger[0])
        kv_put(n, "pull/trigger", r->trigger);
    d->slot = target_slot(n, r, d);
    if (!d->slot) {
        job_failed(d);
        dl_free(d);
        return -3;
    }
    node_log(n, "pull: %s %s into %s%s%s", r->frontend ? "frontend" : "firmware", r->url, d->slot->label,
             r->trigger[0] ? " for trigger " : "", r->trigger);
    save_job(d);
    publish(d, NODE_DOWNLOADING);
    pthread_t t;
    if (pthread_create(&t, NULL, job_thread, d)) {
        dl_fail(d, "no_thread", "cannot start the download");
        job_failed(d);
        dl_free(d);
        return -3;
    }
    pthread_detach(t);
    return 0;
}

int node_pull_check(struct node *n, const char *url, const struct curl_slist *headers, bool frontend)
{
    if (!claim(n))
        return -1;
    struct node_pull_req r = {.frontend = frontend};
    snprintf(r.url, sizeof r.url, "%s", url);
    struct dl *d = dl_new(n, &r);
    if (!d) {
        release(n);
        return -1;
    }
    d->check = true;
    d->first_headers = headers;
    d->slot = target_slot(n, &r, d);
    if (!d->slot) {
        node_log(n, "pull: check: skipped: %s", d->reason);
        release(n);
        dl_free(d);
        return -1;
    }
    return (int)run(d);
}

/* ---- after a restart ---- */

static pthread_mutex_t outcome_lock = PTHREAD_MUTEX_INITIALIZER;

/* The outcome of the update that restarted the device, once known. */
static void outcome(struct node *n, bool confirmed)
{
    pthread_mutex_lock(&outcome_lock);
    cJSON *p = kv_json(n, "pull/pending");
    if (!p) {
        pthread_mutex_unlock(&outcome_lock);
        return;
    }
    struct node_state s = {0};
    char slot[17], target[16];
    json_str(p, "version", s.version, sizeof s.version);
    json_str(p, "trigger", s.trigger, sizeof s.trigger);
    json_str(p, "target", target, sizeof target);
    json_str(p, "slot", slot, sizeof slot);
    const cJSON *seq = cJSON_GetObjectItemCaseSensitive(p, "seq");
    bool switched = !cJSON_IsNumber(seq) || otadata_seq(n) > (uint32_t)seq->valuedouble;
    cJSON_Delete(p);
    s.frontend = !strcmp(target, "frontend");
    const char *running = n->app.has_desc ? n->app.desc.version : "";
    bool there = s.frontend ? n->www[0] && !strcmp(n->www[n->www_slot]->label, slot) && n->www_ok
                            : !strcmp(n->boot.running->label, slot) && !strcmp(running, s.version);
    if (!there && !s.frontend && !switched) {
        /* power lost between saving this and the switch: the job resumes */
        kv_put(n, "pull/pending", NULL);
        pthread_mutex_unlock(&outcome_lock);
        node_log(n, "pull: %s was verified in %s but the device restarted before switching to it", s.version, slot);
        return;
    }
    if (there && !s.frontend && !confirmed) {
        /* the new image runs but has not confirmed itself yet */
        pthread_mutex_unlock(&outcome_lock);
        s.phase = NODE_VERIFYING;
        snprintf(s.reason, sizeof s.reason, "%s runs; waiting for it to mark itself valid", s.version);
        node_state_set(n, &s);
        return;
    }
    if (there) {
        s.phase = NODE_UPDATED;
        node_log(n, "pull: updated: %s %s is running%s%s%s", s.frontend ? "frontend" : "firmware", s.version,
                 s.trigger[0] ? " (trigger " : "", s.trigger, s.trigger[0] ? ")" : "");
    } else if (s.frontend) {
        s.phase = NODE_FAILED;
        snprintf(s.code, sizeof s.code, "not_littlefs");
        snprintf(s.reason, sizeof s.reason, "the new frontend in %s did not mount; the old one is served", slot);
    } else {
        s.phase = NODE_ROLLED_BACK;
        snprintf(s.code, sizeof s.code, "rolled_back");
        snprintf(s.reason, sizeof s.reason, "%s did not come up in %s; back on %s %s (reset reason %s)", s.version, slot,
                 n->boot.running->label, running, n->reset_reason);
        node_log(n, "pull: rolled back: %s", s.reason);
        kv_put(n, "pull/rolled_back", s.version);
    }
    kv_put(n, "pull/pending", NULL);
    pthread_mutex_unlock(&outcome_lock);
    node_state_set(n, &s);
    if (!s.frontend) /* aloftd's reports are about firmware */
        report(n, s.phase == NODE_UPDATED ? "updated" : "rolled_back", s.phase == NODE_UPDATED ? "" : s.reason);
}

void node_pull_confirmed(struct node *n)
{
    outcome(n, true);
}

/* A job the restart interrupted: continue it where flash says. */
static void resume_job(struct node *n)
{
    cJSON *j = kv_json(n, "pull/job");
    if (!j)
        return;
    struct node_pull_req r = {0};
    char target[16], slot[17], off[24];
    kv_str(n, "pull/url", r.url, sizeof r.url);
    kv_str(n, "pull/token", r.token, sizeof r.token);
    kv_str(n, "pull/offset", off, sizeof off);
    json_str(j, "version", r.version, sizeof r.version);
    json_str(j, "sha256", r.sha256, sizeof r.sha256);
    json_str(j, "trigger", r.trigger, sizeof r.trigger);
    json_str(j, "target", target, sizeof target);
    json_str(j, "slot", slot, sizeof slot);
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
    r.size = cJSON_IsNumber(size) ? (uint64_t)size->valuedouble : 0;
    r.frontend = !strcmp(target, "frontend");
    struct dl *d = NULL;
    if (r.url[0] && claim(n) && !(d = dl_new(n, &r)))
        release(n);
    if (!d) {
        cJSON_Delete(j);
        return;
    }
    json_str(j, "etag", d->etag, sizeof d->etag);
    json_str(j, "md5", d->md5, sizeof d->md5);
    d->check = d->answered = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "check"));
    cJSON_Delete(j);
    uint64_t at = strtoull(off, NULL, 10);
    d->slot = aloft_part_find_label(&n->boot.table, slot);
    if (d->slot && d->slot == n->boot.running) {
        /* it was complete and made the boot image just before the power went */
        node_log(n, "pull: the download into %s had completed; it runs now", slot);
        clear_job(n);
        release(n);
        dl_free(d);
        return;
    }
    const struct aloft_part *want = target_slot(n, &r, d);
    if (!d->slot || d->slot != want) {
        if (!d->code[0])
            dl_fail(d, "restarted", "the device restarted into another slot; the download is abandoned");
        job_failed(d);
        dl_free(d);
        return;
    }
    int rc = 0;
    if (at && at <= d->slot->size) {
        pthread_mutex_lock(&n->lock);
        if (r.frontend)
            rc = aloft_flash_erase(&n->pf.port, d->slot->offset + (uint32_t)at, d->slot->size - (uint32_t)at);
        else
            rc = aloft_update_resume(&d->u, &n->boot, d->slot, (uint32_t)at);
        pthread_mutex_unlock(&n->lock);
        if (rc == ALOFT_E_POWER)
            node_power_lost(n);
        /* what the flash holds counts into the body's digests */
        uint8_t buf[4096];
        for (uint64_t pos = 0; rc == 0 && pos < at; pos += sizeof buf) {
            rc = aloft_flash_read(&n->pf.port, d->slot->offset + (uint32_t)pos, buf, sizeof buf);
            aloft_sha256_update(&d->sha, buf, sizeof buf);
            aloft_md5_update(&d->md5c, buf, sizeof buf);
        }
        if (rc == 0) {
            d->started = true;
            d->done = d->saved = at;
        } else {
            node_log(n, "pull: the %" PRIu64 " bytes in %s do not verify (%s); starting over", at, slot,
                     aloft_strerror(rc));
            start_over(d);
        }
    }
    node_log(n, "pull: resuming the %s download of %s at byte %" PRIu64 "%s%s", r.frontend ? "frontend" : "firmware",
             r.url, d->done, r.trigger[0] ? " for trigger " : "", r.trigger);
    publish(d, NODE_DOWNLOADING);
    pthread_t t;
    if (pthread_create(&t, NULL, job_thread, d)) {
        dl_fail(d, "no_thread", "cannot start the download");
        job_failed(d);
        dl_free(d);
        return;
    }
    pthread_detach(t);
}

void node_pull_boot(struct node *n)
{
    outcome(n, false);
    resume_job(n);
}
