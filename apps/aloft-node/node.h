/* aloft-node: a simulated ESP32 running aloft. One process is one device;
 * a restart re-executes the process, carrying what RTC memory would.
 *
 * Everything the device does about updates is the agent's (agent/, the
 * code an ESP32 runs); this program is its POSIX glue — libmicrohttpd,
 * libcurl, libmosquitto and threads move the bytes — plus what only a
 * simulator has: a flash file, power cuts, flash and link timing, the
 * firmware's simulated behaviour and re-execution as a restart. */
#ifndef ALOFT_NODE_H
#define ALOFT_NODE_H

#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/agent.h"
#include "aloft/boot.h"
#include "aloft/pull.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"
#include "image_make.h"
#include "www_fs.h"

struct node_config {
    const char *flash_path;
    const char *listen;          /* ADDR:PORT */
    const char *psk;             /* provisioned into the settings store */
    const char *trusted_keys;    /* the same: security/trusted_keys ("none" deletes it) */
    const char *server_key;      /* the same: security/server_key, for signed reports */
    const char *mac;             /* the same: sys/mac (else made at the first boot) */
    bool open;
    bool rollback;
    bool flash_timing;           /* esp32 datasheet timing */
    uint64_t link_rate;          /* bytes/s of the simulated Wi-Fi link; 0 = unlimited */
    uint64_t power_cut_after;    /* flash operation that loses power; 0 = never */
    unsigned restart_delay_ms;   /* between a successful update's reply and the restart */
    unsigned idle_timeout_s;     /* an upload that stalls this long is dropped */
    unsigned max_sockets;        /* open at once; a new one beyond closes the least recently active */
    const char *log_path;
    const char *mqtt;            /* broker HOST:PORT; NULL: no MQTT */
    const char *mqtt_tls_ca, *mqtt_user, *mqtt_password;
    const char *device_id;       /* NULL: the MAC */
    const char *platform;        /* NULL: the running image's project */
    const char *cmd_topic;       /* extra command topic, e.g. /switch/cmd/root */
    const char *server;          /* aloftd URL for scheduled checks and reports */
    unsigned check_every_s;      /* 0: check once at boot only when --server is set */
    const char *ca_file;         /* CA bundle for HTTPS downloads; NULL: the system's */
    bool insecure;               /* do not verify HTTPS certificates */
    const char *espota;          /* ArduinoOTA's UDP [ADDR:]PORT; NULL: none */
    const char *mdns;            /* the mDNS responder's [ADDR][:PORT] ("": the group); NULL: none */
    const char *mdns_name;       /* its host name; NULL: aloft-<MAC digits> */
    const char *ble;             /* the simulated BLE link's HOST:PORT; NULL: none */
    const char *ble_name;        /* advertised name */
    unsigned ble_mtu, ble_interval_ms, ble_packets;
    bool ble_legacy;             /* with a PSK, take the esp32-ble-ota protocol anyway */
};

struct node {
    struct node_config cfg;
    char **argv;                 /* to re-execute on restart */
    struct aloft_posix_flash pf;
    struct aloft_flash flash;    /* pf's, with a power cut ending the process */
    struct aloft_boot boot;
    struct aloft_posix_kv kv;
    struct aloft_sim_record sim;
    char mac[18];
    /* the agent; every call into it holds lock */
    pthread_mutex_t lock;
    struct aloft_agent_port port;
    struct aloft_agent agent;
    struct aloft_www_lfs www;    /* the mounted www slot */
    struct in_addr espota_addr;  /* where ArduinoOTA listens (espota.c), for mDNS */
    uint16_t espota_port;
    /* restart request from the agent: reason, or NULL */
    pthread_mutex_t restart_lock;
    pthread_cond_t restart_cond;
    const char *restart_reason;
    /* MQTT publishes each state document (mqtt.c), when connected */
    void (*on_state)(struct node *n, const char *json, size_t len);
};

/* An error: "aloft-node: <message>" on stderr and in the log file. Returns 1. */
int node_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Print a line to stdout (flushed) and the log file. */
void node_log(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Power lost at a flash operation: come back as a fresh power-on boot,
 * now, from whatever thread noticed. Never returns. */
void node_power_lost(struct node *n) __attribute__((noreturn));

/* The agent's port on this process (port.c): flash, settings, LittleFS,
 * clock, restart, random, log, state and reports. */
void node_port_init(struct node *n);

/* The options every request of the device has (pull.c): no proxy, its TLS
 * trust, and its own address as the source. */
void node_curl_options(const struct node *n, void *curl);

/* Pull jobs (pull.c). node_pull_new: a zeroed job (free() it); spawn: run
 * a started job in a thread of its own, which frees it (without a thread
 * the job is aborted and freed); run: in the caller's thread (returns
 * aloft_pull_result). */
struct aloft_pull *node_pull_new(void);
void node_pull_spawn(struct node *n, struct aloft_pull *job);
int node_pull_run(struct node *n, struct aloft_pull *job);

/* POST json to url in the background, a few tries (pull.c). */
void node_report(struct node *n, const char *url, const char *json);

/* Scheduled checks against aloftd's GET /update (check.c). */
int node_check_start(struct node *n);

/* MQTT (mqtt.c): subscribe to the command topics, publish the state.
 * node_mqtt_stop publishes the last state and disconnects (before a restart). */
int node_mqtt_start(struct node *n);
void node_mqtt_stop(struct node *n);

/* ArduinoOTA uploads (espota.c) on cfg.espota. Returns 0 or 1 with a
 * message printed. */
int node_espota_start(struct node *n);

/* The mDNS responder (mdns.c) on cfg.mdns, for the ArduinoOTA service that
 * node_espota_start opened. Returns 0 or 1 with a message printed.
 * node_mdns_stop says goodbye to the group (before a restart). */
int node_mdns_start(struct node *n);
void node_mdns_stop(struct node *n);

/* The BLE OTA service on the simulated link (ble.c) on cfg.ble. Returns 0
 * or 1 with a message printed. */
int node_ble_start(struct node *n);

/* HTTP server (http.c). Returns 0 or -1 with a message printed. */
int node_http_start(struct node *n);
void node_http_stop(void);

#endif
