/* aloft: the device's MQTT documents (PROTOCOLS.md §3.2). The glue owns the
 * client (libmosquitto, esp-mqtt); the agent names the topics, reads the
 * commands and writes the state (aloft_agent_state_json, published
 * retained on the state topic at every change through port->state; the
 * last will is the state with "offline"). */
#ifndef ALOFT_MQTT_H
#define ALOFT_MQTT_H

#include <stdbool.h>
#include <stddef.h>

#include "aloft/agent.h"
#include "aloft/pull.h"

struct aloft_mqtt_topics {
    char state[128];     /* aloft/<platform>/<device-id>/state */
    char device[128];    /* aloft/<platform>/<device-id>/cmd */
    char platform[128];  /* aloft/<platform>/cmd */
    const char *sub[3];  /* the command topics to subscribe to (QoS 1) */
    int count;           /* 2, or 3 with the configured extra topic */
};

/* Fill the topics from the agent's platform, device id and cmd_topic. */
void aloft_mqtt_topics(const struct aloft_agent *a, struct aloft_mqtt_topics *t);

enum aloft_mqtt_action {
    ALOFT_MQTT_IGNORED, /* not for the agent (another type, a retained message): logged */
    ALOFT_MQTT_BAD,     /* not a valid trigger: logged, the state says bad_trigger */
    ALOFT_MQTT_TRIGGER, /* *r is a trigger: aloft_pull_start it */
};

/* A message on a command topic. Retained commands are ignored (the broker
 * hands them over at every connection). While an update runs, a bad
 * command is only logged, so that it does not hide the progress. */
enum aloft_mqtt_action aloft_mqtt_command(struct aloft_agent *a, const char *topic, const void *payload, size_t len,
                                          bool retained, struct aloft_pull_req *r);

#endif
