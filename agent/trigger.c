/* aloft agent: the ota_trigger command (PROTOCOLS.md §3.2), as MQTT and
 * POST /api/ota/pull bring it: untrusted JSON, so every field is checked
 * for type and size before a job sees it. */
#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/pull.h"
#include "agent_private.h"

#define SIZE_MAX_BYTES 1000000000000000ull /* 1e15: more than any flash */

static int refuse(char *why, size_t why_len, const char *fmt, const char *arg)
{
    snprintf(why, why_len, fmt, arg);
    return ALOFT_E_SYNTAX;
}

static bool web_url(const char *u)
{
    return !strncmp(u, "http://", 7) || !strncmp(u, "https://", 8);
}

/* An optional string member into dst; ALOFT_E_SYNTAX (with why) when it is
 * not a string or too long. */
static int opt_str(const char *json, size_t len, const char *key, char *dst, size_t cap, char *why, size_t why_len)
{
    struct aloft_json_val v = aloft_json_get(json, len, key);
    if (v.type == ALOFT_JSON_NONE || v.type == ALOFT_JSON_NULL)
        return 0;
    if (aloft_json_str(&v, dst, cap) < 0) {
        dst[0] = 0;
        snprintf(why, why_len, "\"%s\" must be a string of at most %u characters", key, (unsigned)(cap - 1));
        return ALOFT_E_SYNTAX;
    }
    return 0;
}

int aloft_trigger_parse(const char *json, size_t len, struct aloft_pull_req *r, char *why, size_t why_len)
{
    memset(r, 0, sizeof *r);
    if (!aloft_json_is_object(json, len))
        return refuse(why, why_len, "%s", "not a JSON object");
    char type[16];
    struct aloft_json_val v = aloft_json_get(json, len, "type");
    if (aloft_json_str(&v, type, sizeof type) < 0 || strcmp(type, "ota_trigger"))
        return refuse(why, why_len, "%s", "\"type\" must be \"ota_trigger\"");
    v = aloft_json_get(json, len, "url");
    if (v.type != ALOFT_JSON_STRING || !v.len)
        return refuse(why, why_len, "%s", "\"url\" is missing");
    if (aloft_json_str(&v, r->url, sizeof r->url) < 0) {
        snprintf(why, why_len, "\"url\" is longer than %u characters", (unsigned)sizeof r->url - 1);
        return ALOFT_E_SYNTAX;
    }
    if (!web_url(r->url))
        return refuse(why, why_len, "%s", "\"url\" must be an http:// or https:// URL");
    int rc = opt_str(json, len, "version", r->version, sizeof r->version, why, why_len);
    if (!rc)
        rc = opt_str(json, len, "sha256", r->sha256, sizeof r->sha256, why, why_len);
    if (!rc)
        rc = opt_str(json, len, "token", r->token, sizeof r->token, why, why_len);
    if (!rc)
        rc = opt_str(json, len, "id", r->trigger, sizeof r->trigger, why, why_len);
    if (!rc)
        rc = opt_str(json, len, "delta_url", r->delta_url, sizeof r->delta_url, why, why_len);
    if (!rc)
        rc = opt_str(json, len, "delta_base", r->delta_base, sizeof r->delta_base, why, why_len);
    if (rc)
        return rc;
    if ((r->delta_url[0] || r->delta_base[0]) && (!web_url(r->delta_url) || !aloft_agent_is_hex(r->delta_base, 64)))
        return refuse(why, why_len, "%s",
                      "\"delta_url\" (an http(s) URL) and \"delta_base\" (64 hex digits) go together");
    aloft_agent_lower(r->delta_base);
    if (r->sha256[0] && !aloft_agent_is_hex(r->sha256, 64))
        return refuse(why, why_len, "%s", "\"sha256\" must be 64 hex digits");
    aloft_agent_lower(r->sha256); /* compared in lower case */
    v = aloft_json_get(json, len, "size");
    if (v.type != ALOFT_JSON_NONE && v.type != ALOFT_JSON_NULL &&
        (aloft_json_uint(&v, &r->size) || r->size < 1 || r->size > SIZE_MAX_BYTES))
        return refuse(why, why_len, "%s", "\"size\" must be a positive whole number of bytes");
    v = aloft_json_get(json, len, "target");
    if (v.type != ALOFT_JSON_NONE && v.type != ALOFT_JSON_NULL) {
        char target[16];
        if (aloft_json_str(&v, target, sizeof target) < 0 || (strcmp(target, "firmware") && strcmp(target, "frontend")))
            return refuse(why, why_len, "%s", "\"target\" must be \"firmware\" or \"frontend\"");
        r->frontend = !strcmp(target, "frontend");
    }
    return 0;
}
