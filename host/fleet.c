/* aloft host: device status over HTTP, many devices at once. */
#include "fleet.h"

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t aloft_body_write(char *ptr, size_t size, size_t n, void *userdata)
{
    struct aloft_body *b = userdata;
    size_t len = size * n, room = sizeof b->data - 1 - b->len;
    memcpy(b->data + b->len, ptr, len < room ? len : room);
    b->len += len < room ? len : room;
    b->data[b->len] = 0;
    return len;
}

static void copy_str(const cJSON *j, const char *key, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    snprintf(out, cap, "%s", cJSON_IsString(v) ? v->valuestring : "");
}

static long get_num(const cJSON *j, const char *key, long dflt)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    /* a device's number is data: out of range (or NaN) is refused, not cast */
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -2147483648.0 && v->valuedouble <= 2147483647.0))
        return dflt;
    return (long)v->valuedouble;
}

bool aloft_devstatus_parse(const char *json, struct aloft_devstatus *s)
{
    memset(s, 0, sizeof *s);
    cJSON *j = cJSON_Parse(json);
    if (!cJSON_IsObject(j) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "version")) ||
        !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(j, "running_partition"))) {
        snprintf(s->error, sizeof s->error, "a web server, but not an aloft device (GET /ota/status: no device status)");
        cJSON_Delete(j);
        return false;
    }
    copy_str(j, "version", s->version, sizeof s->version);
    copy_str(j, "project", s->project, sizeof s->project);
    copy_str(j, "chip", s->chip, sizeof s->chip);
    copy_str(j, "running_partition", s->running, sizeof s->running);
    copy_str(j, "next_partition", s->next, sizeof s->next);
    copy_str(j, "state", s->state, sizeof s->state);
    copy_str(j, "reset_reason", s->reset_reason, sizeof s->reset_reason);
    copy_str(j, "mac", s->mac, sizeof s->mac);
    s->boot_count = get_num(j, "boot_count", -1);
    s->uptime_s = get_num(j, "uptime_s", -1);
    s->www_slot = get_num(j, "www_slot", -1);
    s->max_size = get_num(j, "max_size", 0);
    s->busy = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "busy"));
    s->delta = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "delta"));
    copy_str(j, "sha256", s->sha256, sizeof s->sha256);
    s->ok = true;
    cJSON_Delete(j);
    return true;
}

CURL *aloft_status_request(const char *addr, struct aloft_body *body, long timeout_ms)
{
    char url[128];
    snprintf(url, sizeof url, "http://%s/ota/status", addr);
    CURL *e = curl_easy_init();
    if (!e)
        return NULL;
    body->len = 0;
    body->data[0] = 0;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, aloft_body_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, ""); /* devices are on the LAN: never via a proxy */
    return e;
}

void aloft_status_result(CURL *easy, CURLcode rc, const struct aloft_body *body, struct aloft_devstatus *s)
{
    long code = 0;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &code);
    if (rc != CURLE_OK) {
        memset(s, 0, sizeof *s);
        snprintf(s->error, sizeof s->error, "%s", curl_easy_strerror(rc));
    } else if (code != 200) {
        memset(s, 0, sizeof *s);
        snprintf(s->error, sizeof s->error, "a web server, but not an aloft device (GET /ota/status: HTTP %ld)", code);
    } else {
        aloft_devstatus_parse(body->data, s);
    }
    s->answered = rc == CURLE_OK;
}

void aloft_fleet_probe(const char *const *addrs, size_t n, unsigned parallel, long timeout_ms,
                       struct aloft_devstatus *out)
{
    CURLM *m = curl_multi_init();
    struct aloft_body *bodies = calloc(n ? n : 1, sizeof *bodies);
    size_t next = 0, running = 0;
    if (!parallel)
        parallel = 1;
    for (;;) {
        while (next < n && running < parallel) {
            CURL *e = aloft_status_request(addrs[next], &bodies[next], timeout_ms);
            curl_easy_setopt(e, CURLOPT_PRIVATE, (void *)(uintptr_t)next);
            curl_multi_add_handle(m, e);
            next++, running++;
        }
        if (!running)
            break;
        int still;
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            void *priv;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            size_t i = (size_t)(uintptr_t)priv;
            aloft_status_result(msg->easy_handle, msg->data.result, &bodies[i], &out[i]);
            curl_multi_remove_handle(m, msg->easy_handle);
            curl_easy_cleanup(msg->easy_handle);
            running--;
        }
        curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    free(bodies);
    curl_multi_cleanup(m);
}
