/* aloft-node: the device's update state, as published retained on
 * aloft/<platform>/<device-id>/state (PROTOCOLS.md §3.2):
 *   {"device": ID, "platform": P, "mac": MAC, "version": running version,
 *    "partition": running slot, "boot_count": N, "reset_reason": R,
 *    "state": "idle|downloading|verifying|restarting|updated|failed|rolled_back",
 *    "trigger": id of the trigger it answers ("" if none), "target": "firmware|frontend",
 *    "target_version": V, "bytes": N, "total": N, "progress": 0..100,
 *    "code": machine-readable reason ("" unless failed/rolled back), "reason": text} */
#include <cjson/cJSON.h>
#include <string.h>

#include "node.h"

const char *node_phase_name(enum node_phase p)
{
    static const char *const names[] = {"idle", "downloading", "verifying", "restarting", "updated", "failed", "rolled_back"};
    return (unsigned)p < sizeof names / sizeof names[0] ? names[p] : "unknown";
}

void node_state_set(struct node *n, const struct node_state *s)
{
    pthread_mutex_lock(&n->state_lock);
    n->state = *s;
    pthread_mutex_unlock(&n->state_lock);
    if (n->on_state)
        n->on_state(n);
}

cJSON *node_state_json(struct node *n)
{
    pthread_mutex_lock(&n->state_lock);
    struct node_state s = n->state;
    pthread_mutex_unlock(&n->state_lock);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "device", n->device_id);
    cJSON_AddStringToObject(j, "platform", n->platform);
    cJSON_AddStringToObject(j, "mac", n->mac);
    cJSON_AddStringToObject(j, "version", n->app.has_desc ? n->app.desc.version : "");
    cJSON_AddStringToObject(j, "partition", n->boot.running->label);
    cJSON_AddNumberToObject(j, "boot_count", n->boot_count);
    cJSON_AddStringToObject(j, "reset_reason", n->reset_reason);
    cJSON_AddStringToObject(j, "state", node_phase_name(s.phase));
    cJSON_AddStringToObject(j, "trigger", s.trigger);
    cJSON_AddStringToObject(j, "target", s.frontend ? "frontend" : "firmware");
    cJSON_AddStringToObject(j, "target_version", s.version);
    cJSON_AddNumberToObject(j, "bytes", (double)s.bytes);
    cJSON_AddNumberToObject(j, "total", (double)s.total);
    cJSON_AddNumberToObject(j, "progress", s.total ? (double)(s.bytes * 100 / s.total) : 0);
    cJSON_AddStringToObject(j, "code", s.code);
    cJSON_AddStringToObject(j, "reason", s.reason);
    return j;
}
