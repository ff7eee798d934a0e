/* aloft agent: MQTT topics and commands (PROTOCOLS.md §3.2). Commands come
 * on aloft/<platform>/<device-id>/cmd, aloft/<platform>/cmd and the
 * configured extra topic (for older fleets, e.g. /switch/cmd/root). */
#include <stdio.h>
#include <string.h>

#include "aloft/mqtt.h"
#include "json.h"

void aloft_mqtt_topics(const struct aloft_agent *a, struct aloft_mqtt_topics *t)
{
    snprintf(t->state, sizeof t->state, "aloft/%s/%s/state", a->platform, a->device_id);
    snprintf(t->device, sizeof t->device, "aloft/%s/%s/cmd", a->platform, a->device_id);
    snprintf(t->platform, sizeof t->platform, "aloft/%s/cmd", a->platform);
    t->sub[0] = t->device;
    t->sub[1] = t->platform;
    t->sub[2] = a->cmd_topic[0] ? a->cmd_topic : NULL;
    t->count = a->cmd_topic[0] ? 3 : 2;
}

/* While an update runs, a bad command must not hide its progress. */
static bool updating(const struct aloft_agent *a)
{
    uint8_t p = a->state.phase;
    return p == ALOFT_PHASE_DOWNLOADING || p == ALOFT_PHASE_VERIFYING || p == ALOFT_PHASE_RESTARTING;
}

static enum aloft_mqtt_action bad(struct aloft_agent *a, const char *json, size_t len, const char *topic,
                                  const char *why)
{
    aloft_agent_log(a, "mqtt: bad trigger on %s: %s", topic, why);
    if (updating(a))
        return ALOFT_MQTT_BAD;
    struct aloft_agent_state s = {.phase = ALOFT_PHASE_FAILED};
    /* echo the id when there is a usable one: its sender waits for an answer */
    if (json) {
        struct aloft_json_val id = aloft_json_get(json, len, "id");
        if (aloft_json_str(&id, s.trigger, sizeof s.trigger) < 0)
            s.trigger[0] = 0;
    }
    snprintf(s.code, sizeof s.code, "bad_trigger");
    snprintf(s.reason, sizeof s.reason, "bad trigger on %s: %s", topic, why);
    aloft_agent_set_state(a, &s);
    return ALOFT_MQTT_BAD;
}

enum aloft_mqtt_action aloft_mqtt_command(struct aloft_agent *a, const char *topic, const void *payload, size_t len,
                                          bool retained, struct aloft_pull_req *r)
{
    const char *json = payload ? payload : "";
    if (retained) {
        aloft_agent_log(a, "mqtt: ignored a retained command on %s (publish triggers without retain)", topic);
        return ALOFT_MQTT_IGNORED;
    }
    if (!aloft_json_valid(json, len))
        return bad(a, NULL, 0, topic, "not JSON");
    struct aloft_json_val v = aloft_json_get(json, len, "type");
    if (v.type == ALOFT_JSON_STRING && (v.len != 11 || memcmp(v.p, "ota_trigger", 11))) {
        aloft_agent_log(a, "mqtt: ignored a \"%.*s\" command on %s (only ota_trigger is known)",
                        (int)(v.len < 40 ? v.len : 40), v.p, topic);
        return ALOFT_MQTT_IGNORED;
    }
    char why[200];
    if (aloft_trigger_parse(json, len, r, why, sizeof why))
        return bad(a, json, len, topic, why);
    aloft_agent_log(a, "mqtt: trigger%s%s on %s: %s%s%s%s", r->trigger[0] ? " " : "", r->trigger, topic,
                    r->frontend ? "frontend " : "", r->url, r->version[0] ? " version " : "", r->version);
    return ALOFT_MQTT_TRIGGER;
}
