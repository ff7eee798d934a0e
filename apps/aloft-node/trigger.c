/* aloft-node: the ota_trigger command (PROTOCOLS.md §3.2), as MQTT and
 * POST /api/ota/pull bring it: untrusted JSON, so every field is checked
 * for type and size before pull.c sees it. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "node.h"

/* Copy an optional string field; -1 (with why) when it is not a string or too long. */
static int opt_str(const cJSON *j, const char *key, char *dst, size_t cap, char *why, size_t why_len)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v))
        return 0;
    if (!cJSON_IsString(v) || strlen(v->valuestring) >= cap) {
        snprintf(why, why_len, "\"%s\" must be a string of at most %zu characters", key, cap - 1);
        return -1;
    }
    memcpy(dst, v->valuestring, strlen(v->valuestring) + 1);
    return 0;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))
            return false;
    return true;
}

int node_pull_parse(const char *json, size_t len, struct node_pull_req *r, char *why, size_t why_len)
{
    memset(r, 0, sizeof *r);
    cJSON *j = cJSON_ParseWithLength(json, len);
    int rc = -1;
    if (!j || !cJSON_IsObject(j)) {
        snprintf(why, why_len, "not a JSON object");
        goto out;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "ota_trigger")) {
        snprintf(why, why_len, "\"type\" must be \"ota_trigger\"");
        goto out;
    }
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (!cJSON_IsString(url) || !*url->valuestring) {
        snprintf(why, why_len, "\"url\" is missing");
        goto out;
    }
    if (strlen(url->valuestring) >= sizeof r->url) {
        snprintf(why, why_len, "\"url\" is longer than %zu characters", sizeof r->url - 1);
        goto out;
    }
    if (strncmp(url->valuestring, "http://", 7) && strncmp(url->valuestring, "https://", 8)) {
        snprintf(why, why_len, "\"url\" must be an http:// or https:// URL");
        goto out;
    }
    strcpy(r->url, url->valuestring);
    if (opt_str(j, "version", r->version, sizeof r->version, why, why_len) ||
        opt_str(j, "sha256", r->sha256, sizeof r->sha256, why, why_len) ||
        opt_str(j, "token", r->token, sizeof r->token, why, why_len) ||
        opt_str(j, "id", r->trigger, sizeof r->trigger, why, why_len))
        goto out;
    if (r->sha256[0] && !is_hex64(r->sha256)) {
        snprintf(why, why_len, "\"sha256\" must be 64 hex digits");
        goto out;
    }
    for (char *c = r->sha256; *c; c++) /* compare in lower case */
        if (*c >= 'A' && *c <= 'F')
            *c = (char)(*c - 'A' + 'a');
    const cJSON *size = cJSON_GetObjectItemCaseSensitive(j, "size");
    if (size && !cJSON_IsNull(size)) {
        if (!cJSON_IsNumber(size) || size->valuedouble < 1 || size->valuedouble > 1e15 ||
            size->valuedouble != (double)(uint64_t)size->valuedouble) {
            snprintf(why, why_len, "\"size\" must be a positive whole number of bytes");
            goto out;
        }
        r->size = (uint64_t)size->valuedouble;
    }
    const cJSON *target = cJSON_GetObjectItemCaseSensitive(j, "target");
    if (target && !cJSON_IsNull(target)) {
        if (cJSON_IsString(target) && !strcmp(target->valuestring, "frontend"))
            r->frontend = true;
        else if (!cJSON_IsString(target) || strcmp(target->valuestring, "firmware")) {
            snprintf(why, why_len, "\"target\" must be \"firmware\" or \"frontend\"");
            goto out;
        }
    }
    rc = 0;
out:
    cJSON_Delete(j);
    return rc;
}
