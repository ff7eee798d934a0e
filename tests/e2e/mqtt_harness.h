/* MQTT for end-to-end tests: a real mosquitto broker on 127.0.0.1 and a
 * free port (a temporary config; as root with `user root`, else mosquitto
 * would drop to the user mosquitto), optionally with a TLS listener too,
 * started and stopped by PID (also at exit); and one libmosquitto client
 * that records every message under its filters and publishes for the test. */
#ifndef MQTT_HARNESS_H
#define MQTT_HARNESS_H

#include "e2e.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define MQTT_WAIT_MS 10000u

struct mqtt_broker {
    pid_t pid;             /* 0: not running */
    uint16_t port, tls_port;
    char addr[32];         /* 127.0.0.1:PORT */
    char tls_addr[32];     /* 127.0.0.1:TLS_PORT ("" without TLS) */
    uint16_t auth_port;
    char auth_addr[32];    /* 127.0.0.1:AUTH_PORT: a user and password needed ("" without) */
    char conf[300], log[300];
    char cert[300], key[300], passwd[300];
};

/* Choose the ports and write the config; nothing runs yet. cert and key
 * (PEM, may be NULL): also a TLS listener with them. */
void mqtt_broker_init(struct mqtt_broker *b, const char *name, const char *cert, const char *key);

/* Also a listener that takes only user with password (mosquitto_passwd
 * makes the password file); after mqtt_broker_init, before the start. */
void mqtt_broker_add_password(struct mqtt_broker *b, const char *user, const char *password);

/* Start it and wait until it listens (test failure otherwise). */
void mqtt_broker_start(struct mqtt_broker *b);

/* SIGTERM (SIGKILL after 3 s), reaped; kill9: SIGKILL at once. */
void mqtt_broker_stop(struct mqtt_broker *b);
void mqtt_broker_kill9(struct mqtt_broker *b);

/* The recording client: connect to b (plain) and subscribe to filter
 * (and filter2 unless NULL) with QoS 1; returns once subscribed. It
 * reconnects (and subscribes again) by itself when the broker restarts. */
void mqtt_sub_start(const struct mqtt_broker *b, const char *filter, const char *filter2);
void mqtt_sub_stop(void);
void mqtt_sub_clear(void);
unsigned mqtt_sub_count(void);
/* SUBACKs so far: one more after each (re)connection. */
unsigned mqtt_sub_subscribed(void);
void mqtt_sub_wait_subscribed(unsigned before);

/* Wait (up to timeout_ms) for a message from index *from on, on topic,
 * whose JSON has key == value (key NULL: any message on the topic). Returns
 * it parsed (cJSON_Delete it) and sets *from past it, or NULL. */
cJSON *mqtt_sub_wait(unsigned *from, const char *topic, const char *key, const char *value, unsigned timeout_ms);

/* Message i: its retain flag. */
bool mqtt_sub_retained(unsigned i);

/* Message i (test failure when fewer came): its topic, QoS and retain flag,
 * and its payload parsed (NULL when not JSON; cJSON_Delete it). */
cJSON *mqtt_sub_message(unsigned i, char topic[128], int *qos, bool *retain);

/* How many messages on topic have key == value (key NULL: all on topic). */
unsigned mqtt_sub_matching(const char *topic, const char *key, const char *value);

/* Publish through the recording client (QoS 1) and wait for the PUBACK. */
void mqtt_publish(const char *topic, const char *payload, bool retain);

/* Delete the retained message of topic (publish an empty retained one). */
void mqtt_unretain(const char *topic);

#endif
