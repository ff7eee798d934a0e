/* aloft-node: the device HTTP API (PROTOCOLS.md §1, §2) on libmicrohttpd.
 * Uploads stream straight into the update writer from MHD's fixed
 * connection buffer, so memory does not grow with the image. */
#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft/otadata.h"
#include "aloft/update.h"
#include "node.h"
#include "hex.h"

static struct MHD_Daemon *daemon_;

enum kind { FIRMWARE, FRONTEND, PULL };

/* One upload in flight (at most one: n->busy), or a pull trigger's body. */
struct upload {
    enum kind kind;
    bool started;          /* holds n->busy */
    int status;            /* error decided: reply with it once the body is in */
    const char *code;
    char message[200];
    uint64_t received;
    struct timespec t0;
    const struct aloft_part *slot; /* frontend target */
    struct aloft_update u;
    char trigger[2048];    /* PULL: the JSON */
    size_t trigger_len;
};

static enum MHD_Result reply_json(struct MHD_Connection *c, unsigned status, cJSON *j)
{
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result reply_error(struct MHD_Connection *c, unsigned status, const char *code, const char *message)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "error");
    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", message);
    return reply_json(c, status, j);
}

static cJSON *firmware_status(struct node *n)
{
    const struct aloft_app_desc *d = &n->app.desc;
    const struct aloft_part *next = aloft_part_next_update(&n->boot.table, n->boot.running);
    const struct aloft_part *target = next ? next : NULL;
    char sha[65];
    aloft_hex(n->app.sha256, 32, sha);
    int64_t state = aloft_boot_state(&n->boot);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", n->app.has_desc ? d->version : "");
    cJSON_AddStringToObject(j, "date", n->app.has_desc ? d->date : "");
    cJSON_AddStringToObject(j, "time", n->app.has_desc ? d->time : "");
    cJSON_AddStringToObject(j, "running_partition", n->boot.running->label);
    cJSON_AddStringToObject(j, "next_partition", target ? target->label : "");
    cJSON_AddNumberToObject(j, "max_size", target ? target->size : 0);
    cJSON_AddStringToObject(j, "project", n->app.has_desc ? d->project_name : "");
    cJSON_AddStringToObject(j, "chip", aloft_chip_name(n->app.chip_id) ? aloft_chip_name(n->app.chip_id) : "unknown");
    cJSON_AddStringToObject(j, "idf_ver", n->app.has_desc ? d->idf_ver : "");
    cJSON_AddNumberToObject(j, "secure_version", n->app.has_desc ? d->secure_version : 0);
    cJSON_AddStringToObject(j, "state", state < 0 ? "unknown" : aloft_otadata_state_name((uint32_t)state));
    cJSON_AddStringToObject(j, "reset_reason", n->reset_reason);
    cJSON_AddNumberToObject(j, "boot_count", n->boot_count);
    cJSON_AddNumberToObject(j, "uptime_s", (double)(time(NULL) - n->started));
    cJSON_AddStringToObject(j, "mac", n->mac);
    cJSON_AddStringToObject(j, "sha256", n->app.hash_appended ? sha : "");
    if (n->www[0])
        cJSON_AddNumberToObject(j, "www_slot", n->www_slot);
    else
        cJSON_AddNullToObject(j, "www_slot");
    cJSON_AddBoolToObject(j, "busy", n->busy);
    return j;
}

static enum MHD_Result frontend_status(struct MHD_Connection *c, struct node *n)
{
    cJSON *j = cJSON_CreateObject();
    if (n->www[0])
        cJSON_AddNumberToObject(j, "active_slot", n->www_slot);
    else
        cJSON_AddNullToObject(j, "active_slot");
    cJSON *slots = cJSON_AddArrayToObject(j, "slots");
    pthread_mutex_lock(&n->lock);
    for (int i = 0; i < 2; i++) {
        if (!n->www[i])
            continue;
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "label", n->www[i]->label);
        cJSON_AddNumberToObject(s, "size", n->www[i]->size);
        cJSON_AddBoolToObject(s, "valid", i == n->www_slot ? n->www_ok : node_www_valid(n, n->www[i]));
        cJSON_AddItemToArray(slots, s);
    }
    pthread_mutex_unlock(&n->lock);
    cJSON_AddItemToObject(j, "firmware", firmware_status(n));
    return reply_json(c, MHD_HTTP_OK, j);
}

/* Bearer PSK, compared in constant time. Empty string: allowed. */
static const char *auth_error(struct MHD_Connection *c, struct node *n)
{
    if (!n->psk[0])
        return n->cfg.require_psk ? "this device requires a PSK and none is provisioned (aloft-node --psk)" : "";
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7))
        return "missing Authorization: Bearer <psk>";
    const char *given = h + 7;
    size_t gl = strlen(given), pl = strlen(n->psk);
    unsigned diff = (unsigned)(gl ^ pl);
    for (size_t i = 0; i < pl; i++)
        diff |= (unsigned char)n->psk[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff ? "wrong PSK" : "";
}

/* An aloft error from the update writer: HTTP status and error code. */
static void classify(struct upload *up, int err, struct node *n)
{
    static const struct {
        int err;
        int status;
        const char *code;
    } map[] = {
        {ALOFT_E_MAGIC, 400, "bad_magic"},       {ALOFT_E_SEGMENTS, 400, "bad_segments"},
        {ALOFT_E_SEGMENT, 400, "bad_segment"},   {ALOFT_E_HEADER, 400, "bad_header"},
        {ALOFT_E_CHECKSUM, 400, "bad_checksum"}, {ALOFT_E_HASH, 400, "bad_sha256"},
        {ALOFT_E_TRUNCATED, 400, "truncated"},   {ALOFT_E_TRAILING, 400, "trailing_data"},
        {ALOFT_E_CHIP, 422, "wrong_chip"},       {ALOFT_E_ESP8266, 422, "wrong_chip"},
        {ALOFT_E_NOSPC, 413, "too_large"},       {ALOFT_E_STATE, 409, "pending_verify"},
        {ALOFT_E_SIGNATURE, 422, "bad_signature"},
    };
    up->status = 500;
    up->code = "flash_error";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].err == err)
            up->status = map[i].status, up->code = map[i].code;
    if (err == ALOFT_E_CHIP)
        snprintf(up->message, sizeof up->message, "%s: this device is %s", aloft_strerror(err),
                 aloft_chip_name(n->boot.chip) ? aloft_chip_name(n->boot.chip) : "unknown chip");
    else if (err == ALOFT_E_STATE)
        snprintf(up->message, sizeof up->message,
                 "the running image is still pending verification; wait until it confirms itself");
    else
        snprintf(up->message, sizeof up->message, "%s", aloft_strerror(err));
}

static void upload_fail(struct upload *up, int status, const char *code, const char *message)
{
    up->status = status;
    up->code = code;
    snprintf(up->message, sizeof up->message, "%s", message);
}

/* Checks that need only the headers. Returns 0 or the HTTP status of a
 * reply already queued. */
static unsigned preflight(struct MHD_Connection *c, struct node *n, enum kind kind, uint64_t *len)
{
    const char *why = auth_error(c, n);
    if (*why)
        return reply_error(c, 401, "unauthorized", why) == MHD_YES ? 401 : 500;
    const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (!ct || strncasecmp(ct, "application/octet-stream", 24)) {
        reply_error(c, 415, "unsupported_media_type",
                    "send the raw image as application/octet-stream: curl --data-binary @fw.bin -H "
                    "'Content-Type: application/octet-stream' (curl -d strips newlines and corrupts binaries)");
        return 415;
    }
    const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end;
    if (!cl || !*cl || (*len = strtoull(cl, &end, 10), *end)) {
        reply_error(c, 411, "length_required", "Content-Length is required (chunked uploads are not accepted)");
        return 411;
    }
    uint32_t room = 0;
    if (kind == FIRMWARE) {
        const struct aloft_part *next = aloft_part_next_update(&n->boot.table, n->boot.running);
        room = next ? next->size : 0;
    } else if (node_www_inactive(n) >= 0) {
        room = n->www[node_www_inactive(n)]->size;
    } else {
        reply_error(c, 404, "no_frontend_slots", "this device's partition table has no www_0/www_1 slots");
        return 404;
    }
    if (*len > room) {
        char m[160];
        snprintf(m, sizeof m, "the body is %llu bytes; the update slot holds %u", (unsigned long long)*len, room);
        reply_error(c, 413, "too_large", m);
        return 413;
    }
    if (*len == 0) {
        reply_error(c, 400, "empty", "the body is empty: send the image");
        return 400;
    }
    return 0;
}

static int start_upload(struct node *n, struct upload *up)
{
    if (up->kind == FIRMWARE)
        return aloft_update_begin(&up->u, &n->boot, NULL);
    up->slot = n->www[node_www_inactive(n)];
    return aloft_flash_erase(&n->pf.port, up->slot->offset, up->slot->size);
}

static void throttle(struct node *n, struct upload *up)
{
    if (!n->cfg.link_rate)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - up->t0.tv_sec) + (double)(now.tv_nsec - up->t0.tv_nsec) / 1e9;
    double due = (double)up->received / (double)n->cfg.link_rate;
    if (due > elapsed)
        usleep((useconds_t)((due - elapsed) * 1e6));
}

static void take_data(struct node *n, struct upload *up, const char *data, size_t len)
{
    if (up->status)
        return; /* refused already: the rest of the body is discarded */
    int rc;
    if (up->kind == FIRMWARE) {
        rc = aloft_update_write(&up->u, data, len);
        if (rc == 0 && aloft_image_ident_ready(&up->u.v) &&
            !node_secure_version_ok(n, &up->u.v.info, up->message, sizeof up->message)) {
            up->status = 422;
            up->code = "secure_version";
            aloft_update_abort(&up->u);
            return;
        }
    } else {
        rc = aloft_flash_write(&n->pf.port, up->slot->offset + (uint32_t)up->received, data, len);
    }
    if (rc == ALOFT_E_POWER)
        node_power_lost(n);
    if (rc) {
        classify(up, rc, n);
        if (up->kind == FIRMWARE)
            aloft_update_abort(&up->u);
        return;
    }
    up->received += len;
    throttle(n, up);
}

static enum MHD_Result finish_upload(struct MHD_Connection *c, struct node *n, struct upload *up)
{
    if (!up->status && up->kind == FIRMWARE) {
        int rc = aloft_update_end(&up->u);
        if (rc == 0)
            rc = aloft_update_set_boot(&up->u);
        if (rc == ALOFT_E_POWER)
            node_power_lost(n);
        if (rc)
            classify(up, rc, n);
    } else if (!up->status) {
        int rc = node_www_commit(n, up->slot);
        if (rc == 1)
            upload_fail(up, 400, "not_littlefs", "the body is not a LittleFS image that mounts (make one with aloft mkfs)");
        else if (rc)
            classify(up, rc, n);
        if (rc == ALOFT_E_POWER)
            node_power_lost(n);
    }
    if (up->status) {
        node_log(n, "ota: refused: %s (%s)", up->code, up->message);
        return reply_error(c, (unsigned)up->status, up->code, up->message);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    if (up->kind == FIRMWARE) {
        const struct aloft_image_info *in = &up->u.v.info;
        char sha[65];
        aloft_hex(in->sha256, 32, sha);
        cJSON_AddStringToObject(j, "message", "OTA update successful. Rebooting...");
        cJSON_AddStringToObject(j, "partition", up->u.target->label);
        cJSON_AddStringToObject(j, "version", in->has_desc ? in->desc.version : "");
        cJSON_AddStringToObject(j, "sha256", in->hash_appended ? sha : "");
        node_log(n, "ota: %llu bytes verified into %s, version %s; flash operations %llu, flash busy %.3f s; rebooting",
                 (unsigned long long)up->received, up->u.target->label, in->has_desc ? in->desc.version : "?",
                 (unsigned long long)n->pf.ops, (double)n->pf.busy_us / 1e6);
    } else {
        cJSON_AddStringToObject(j, "message", "Frontend update successful. Rebooting...");
        cJSON_AddStringToObject(j, "partition", up->slot->label);
        cJSON_AddNumberToObject(j, "active_slot", up->slot == n->www[1]);
        node_log(n, "ota: frontend %llu bytes into %s; rebooting", (unsigned long long)up->received, up->slot->label);
    }
    enum MHD_Result ret = reply_json(c, 200, j);
    node_request_restart(n, "SW");
    return ret;
}

static enum MHD_Result upload(struct MHD_Connection *c, struct node *n, enum kind kind, const char *data,
                              size_t *data_size, void **con_cls)
{
    struct upload *up = *con_cls;
    if (!up) {
        uint64_t len = 0;
        if (preflight(c, n, kind, &len))
            return MHD_YES;
        pthread_mutex_lock(&n->lock);
        bool busy = n->busy;
        n->busy = true;
        pthread_mutex_unlock(&n->lock);
        if (busy)
            return reply_error(c, 409, "busy", "another upload is in progress; try again when it is done");
        up = calloc(1, sizeof *up);
        up->kind = kind;
        up->started = true;
        *con_cls = up;
        clock_gettime(CLOCK_MONOTONIC, &up->t0);
        int rc = start_upload(n, up);
        if (rc == ALOFT_E_POWER)
            node_power_lost(n);
        if (rc)
            classify(up, rc, n);
        if (up->status == 409 || up->status == 500) /* say so now, not after the whole body */
            return reply_error(c, (unsigned)up->status, up->code, up->message);
        return MHD_YES;
    }
    if (*data_size) {
        take_data(n, up, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    return finish_upload(c, n, up);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)c;
    struct node *n = cls;
    struct upload *up = *con_cls;
    if (!up)
        return;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && up->kind == FIRMWARE) {
        /* client gone or stalled: otadata and the running image were never touched */
        aloft_update_abort(&up->u);
        node_log(n, "ota: upload dropped after %llu bytes; nothing changed", (unsigned long long)up->received);
    }
    if (up->started) {
        pthread_mutex_lock(&n->lock);
        n->busy = false;
        pthread_mutex_unlock(&n->lock);
    }
    free(up);
    *con_cls = NULL;
}

/* POST /api/ota/pull: a trigger as MQTT brings it; pull.c downloads it. */
static enum MHD_Result pull_request(struct MHD_Connection *c, struct node *n, const char *data, size_t *data_size,
                                    void **con_cls)
{
    struct upload *up = *con_cls;
    if (!up) {
        const char *why = auth_error(c, n);
        if (*why)
            return reply_error(c, 401, "unauthorized", why);
        if (!(up = calloc(1, sizeof *up)))
            return MHD_NO;
        up->kind = PULL;
        *con_cls = up;
        return MHD_YES;
    }
    if (*data_size) {
        if (up->trigger_len + *data_size < sizeof up->trigger)
            memcpy(up->trigger + up->trigger_len, data, *data_size);
        up->trigger_len += *data_size;
        *data_size = 0;
        return MHD_YES;
    }
    if (up->trigger_len >= sizeof up->trigger)
        return reply_error(c, 413, "too_large", "a trigger is at most 2 KB of JSON");
    struct node_pull_req r;
    char why[200];
    if (node_pull_parse(up->trigger, up->trigger_len, &r, why, sizeof why))
        return reply_error(c, 400, "bad_trigger", why);
    int rc = node_pull_start(n, &r);
    if (rc == -1)
        return reply_error(c, 409, "busy", "another update is in progress; try again when it is done");
    if (rc == -2)
        return reply_error(c, 409, "already_handled", "a trigger with this id was handled already");
    if (rc) {
        cJSON *st = node_state_json(n);
        char code[32], message[256];
        snprintf(code, sizeof code, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(st, "code")));
        snprintf(message, sizeof message, "%s", cJSON_GetStringValue(cJSON_GetObjectItem(st, "reason")));
        cJSON_Delete(st);
        return reply_error(c, strcmp(code, "pending_verify") ? 422 : 409, code, message);
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "accepted");
    cJSON_AddStringToObject(j, "trigger", r.trigger);
    cJSON_AddStringToObject(j, "message", "Downloading; follow GET /api/ota/state");
    return reply_json(c, 202, j);
}

static enum MHD_Result frontend_rollback(struct MHD_Connection *c, struct node *n)
{
    const char *why = auth_error(c, n);
    if (*why)
        return reply_error(c, 401, "unauthorized", why);
    int other = node_www_inactive(n);
    if (other < 0)
        return reply_error(c, 404, "no_frontend_slots", "this device's partition table has no www_0/www_1 slots");
    pthread_mutex_lock(&n->lock);
    int rc = 0;
    bool ok = !n->busy && node_www_valid(n, n->www[other]);
    if (ok)
        rc = aloft_posix_kv_set(&n->kv, "www/slot", other ? "1" : "0", 1);
    pthread_mutex_unlock(&n->lock);
    if (rc == ALOFT_E_POWER)
        node_power_lost(n);
    if (!ok)
        return reply_error(c, 409, "no_rollback", n->busy ? "an upload is in progress"
                                                          : "the other frontend slot holds no valid LittleFS image");
    if (rc)
        return reply_error(c, 500, "flash_error", aloft_strerror(rc));
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddStringToObject(j, "message", "Frontend rolled back. Rebooting...");
    cJSON_AddNumberToObject(j, "active_slot", other);
    node_log(n, "ota: frontend rolled back to %s; rebooting", n->www[other]->label);
    enum MHD_Result ret = reply_json(c, 200, j);
    node_request_restart(n, "SW");
    return ret;
}

static const char *mime_type(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript"},            {".mjs", "text/javascript"},
        {".css", "text/css"},                  {".json", "application/json"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},
        {".ico", "image/x-icon"},              {".txt", "text/plain; charset=utf-8"},
        {".wasm", "application/wasm"},         {".woff2", "font/woff2"},
        {".map", "application/json"},          {".jpg", "image/jpeg"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(dot, types[i][0]))
            return types[i][1];
    return "application/octet-stream";
}

static enum MHD_Result static_file(struct MHD_Connection *c, struct node *n, const char *url)
{
    if (!n->www_ok)
        return reply_error(c, 404, "no_frontend", "no frontend is installed: POST a www.bin to /api/ota/frontend");
    char path[300], gz[310];
    if (strlen(url) > 255 || strstr(url, ".."))
        return reply_error(c, 404, "not_found", "no such file");
    snprintf(path, sizeof path, "%s%s", url, url[strlen(url) - 1] == '/' ? "index.html" : "");
    snprintf(gz, sizeof gz, "%s.gz", path);
    const char *accept = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT_ENCODING);
    struct aloft_lfs_info info;
    bool gzip = false;
    if (aloft_lfs_stat(&n->www_fs, gz, &info) == 0 && (accept && strstr(accept, "gzip")))
        gzip = true;
    else if (aloft_lfs_stat(&n->www_fs, path, &info) != 0 && aloft_lfs_stat(&n->www_fs, gz, &info) == 0)
        gzip = true; /* only the compressed copy exists */
    else if (aloft_lfs_stat(&n->www_fs, path, &info) != 0)
        return reply_error(c, 404, "not_found", "no such file");
    char *buf = malloc(info.size ? info.size : 1);
    int len = buf ? aloft_lfs_read_file(&n->www_fs, gzip ? gz : path, buf, info.size) : ALOFT_E_NOSPC;
    if (len < 0) {
        free(buf);
        return reply_error(c, 500, "frontend_corrupt", aloft_strerror(len));
    }
    struct MHD_Response *r = MHD_create_response_from_buffer((size_t)len, buf, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", mime_type(path));
    if (gzip)
        MHD_add_response_header(r, "Content-Encoding", "gzip");
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    struct node *n = cls;
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!strcmp(url, "/ota") && post)
        return upload(c, n, FIRMWARE, data, data_size, con_cls);
    if (!strcmp(url, "/api/ota/frontend") && post)
        return upload(c, n, FRONTEND, data, data_size, con_cls);
    if (!strcmp(url, "/api/ota/pull") && post)
        return pull_request(c, n, data, data_size, con_cls);
    if (*data_size) { /* a body nobody wants */
        *data_size = 0;
        return MHD_YES;
    }
    if (!strcmp(url, "/ota/status") && get)
        return reply_json(c, 200, firmware_status(n));
    if (!strcmp(url, "/api/ota/status") && get)
        return frontend_status(c, n);
    if (!strcmp(url, "/api/ota/state") && get)
        return reply_json(c, 200, node_state_json(n));
    if (!strcmp(url, "/api/ota/frontend/rollback") && post)
        return frontend_rollback(c, n);
    if (!strcmp(url, "/ota") || !strncmp(url, "/api/", 5))
        return reply_error(c, 405, "method_not_allowed", "wrong method for this endpoint (see PROTOCOLS.md)");
    if (get)
        return static_file(c, n, url);
    return reply_error(c, 405, "method_not_allowed", "only GET and HEAD are served here");
}

int node_http_start(struct node *n)
{
    char host[64];
    const char *colon = strrchr(n->cfg.listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - n->cfg.listen), n->cfg.listen);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &addr.sin_addr) != 1) {
        fprintf(stderr, "aloft-node: --listen %s: not an IPv4 address\n", n->cfg.listen);
        return -1;
    }
    /* With a simulated Wi-Fi link, also make the socket buffers an ESP32's
     * size (lwIP: about 4 segments of 1436 bytes): otherwise the kernel takes
     * a whole image into its buffers at once on loopback and the sender's
     * progress says nothing about what the device has received. */
    int fd = -1;
    if (n->cfg.link_rate) {
        int one = 1, rcvbuf = 5744, mss = 1436;
        fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
            setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) ||
            setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss) ||
            bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 16)) {
            fprintf(stderr, "aloft-node: cannot listen on %s (address in use or not on this machine?)\n",
                    n->cfg.listen);
            if (fd >= 0)
                close(fd);
            return -1;
        }
    }
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                               0, NULL, NULL, handler, n, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                               MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, n->cfg.idle_timeout_s,
                               MHD_OPTION_NOTIFY_COMPLETED, completed, n, MHD_OPTION_END);
    if (!daemon_) {
        fprintf(stderr, "aloft-node: cannot listen on %s (address in use or not on this machine?)\n", n->cfg.listen);
        return -1;
    }
    node_log(n, "http: serving on http://%s/", n->cfg.listen);
    return 0;
}

void node_http_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
