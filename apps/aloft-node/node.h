/* aloft-node: a simulated ESP32 running aloft. One process is one device;
 * a restart re-executes the process, carrying what RTC memory would. */
#ifndef ALOFT_NODE_H
#define ALOFT_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "aloft/boot.h"
#include "aloft/image.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"
#include "image_make.h"
#include "littlefs.h"

#define NODE_PSK_MAX 64

struct node_config {
    const char *flash_path;
    const char *listen;          /* ADDR:PORT */
    const char *psk;             /* provisioned into the settings store */
    bool require_psk;
    bool rollback;
    bool flash_timing;           /* esp32 datasheet timing */
    uint64_t link_rate;          /* bytes/s of the simulated Wi-Fi link; 0 = unlimited */
    uint64_t power_cut_after;    /* flash operation that loses power; 0 = never */
    unsigned restart_delay_ms;   /* between a successful update's reply and the restart */
    unsigned idle_timeout_s;     /* an upload that stalls this long is dropped */
    const char *log_path;
    /* pull updates (pull.c, check.c, mqtt.c) */
    const char *mqtt;            /* broker HOST:PORT; NULL: no MQTT */
    const char *mqtt_tls_ca, *mqtt_user, *mqtt_password;
    const char *device_id;       /* NULL: the MAC */
    const char *platform;        /* NULL: the running image's project */
    const char *cmd_topic;       /* extra command topic, e.g. /switch/cmd/root */
    const char *server;          /* aloftd URL for scheduled checks and reports */
    unsigned check_every_s;      /* 0: check once at boot only when --server is set */
    const char *ca_file;         /* CA bundle for HTTPS downloads; NULL: the system's */
    bool insecure;               /* do not verify HTTPS certificates */
};

/* What the device is doing about updates: published retained on
 * aloft/<platform>/<device-id>/state (PROTOCOLS.md §3.2) at each phase. */
enum node_phase { NODE_IDLE, NODE_DOWNLOADING, NODE_VERIFYING, NODE_RESTARTING, NODE_UPDATED, NODE_FAILED, NODE_ROLLED_BACK };

struct node_state {
    enum node_phase phase;
    char trigger[48];            /* id of the trigger being or last handled ("" if none) */
    bool frontend;               /* target: the www slot, not the app */
    char version[32];            /* the version being installed, installed or refused */
    uint64_t bytes, total;       /* downloading: progress (total 0: unknown) */
    char code[32];               /* failed: machine-readable reason, e.g. bad_sha256 */
    char reason[256];            /* failed or rolled back: for people */
};

struct node {
    struct node_config cfg;
    char **argv;                 /* to re-execute on restart */
    struct aloft_posix_flash pf;
    struct aloft_boot boot;
    struct aloft_posix_kv kv;
    struct aloft_image_info app; /* the running image */
    struct aloft_sim_record sim;
    char psk[NODE_PSK_MAX + 1];  /* empty: none provisioned */
    char reset_reason[16];
    unsigned boot_count;
    char mac[18];
    time_t started;
    /* frontend: the active www slot mounted from a copy in memory */
    const struct aloft_part *www[2];
    int www_slot;
    uint8_t *www_img;
    struct aloft_lfs www_fs;
    bool www_ok;
    /* one upload at a time; settings and flash writes happen under it */
    pthread_mutex_t lock;
    bool busy;
    /* restart request from a handler: reason, or NULL */
    pthread_mutex_t restart_lock;
    pthread_cond_t restart_cond;
    const char *restart_reason;
    /* identity for pull updates: --device-id or the MAC; --platform or the project */
    char device_id[64];
    char platform[33];           /* a project name is up to 32 characters */
    /* update state; on_state (set by mqtt.c) publishes each change */
    pthread_mutex_t state_lock;
    struct node_state state;
    void (*on_state)(struct node *n);
};

/* Print a line to stdout (flushed) and the log file. */
void node_log(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ask the main thread to restart the device with reset reason `reason`
 * after the configured delay (the reply is flushed first). */
void node_request_restart(struct node *n, const char *reason);

/* Power lost at a flash operation: come back as a fresh power-on boot,
 * now, from whatever thread noticed. Never returns. */
void node_power_lost(struct node *n) __attribute__((noreturn));

/* The www slot index that is not active, or -1 without www slots. */
int node_www_inactive(const struct node *n);

/* Does the partition hold a LittleFS image that mounts? */
bool node_www_valid(struct node *n, const struct aloft_part *p);

/* Shared by pushed and pulled updates (apply.c). Is the image's
 * secure_version at least the running image's? (false: why says so) */
bool node_secure_version_ok(const struct node *n, const struct aloft_image_info *in, char *why, size_t cap);
/* Make the www slot written the active one from the next boot: 0, 1 when it
 * holds no LittleFS image that mounts, or an aloft error from the settings. */
int node_www_commit(struct node *n, const struct aloft_part *slot);

struct cJSON;

/* State (state.c): replace the state and publish it; a copy as JSON
 * (device, platform, running version and partition, and the state). */
void node_state_set(struct node *n, const struct node_state *s);
struct cJSON *node_state_json(struct node *n);
const char *node_phase_name(enum node_phase p);

/* A pull update (pull.c): download url and apply it like an upload, in a
 * thread of its own. */
struct node_pull_req {
    char url[512];
    char version[32];            /* optional: expected version */
    char sha256[65];             /* optional: expected SHA-256 of the body, hex */
    uint64_t size;               /* optional: expected size; 0: unknown */
    char token[256];             /* optional: bearer token for the download */
    char trigger[48];            /* the trigger's id, echoed in the state */
    bool frontend;               /* the www slot, not the app */
};
/* Parse a trigger (trigger.c) {"type":"ota_trigger","url":…, optional "version",
 * "sha256", "size", "token", "id" (≤ 47 characters), "target":
 * "firmware"|"frontend"}. Returns 0, or -1 with a reason in why. */
int node_pull_parse(const char *json, size_t len, struct node_pull_req *r, char *why, size_t why_len);
/* Start it. Returns 0; -1 when an update is already running (state: failed,
 * busy); -2 when a trigger with this id was handled already (ignored: the
 * state does not change); -3 when it is refused at once (state: failed with
 * the code, e.g. no_frontend_slots, pending_verify). */
int node_pull_start(struct node *n, const struct node_pull_req *r);
/* A scheduled check (check.c): GET url with these request headers and, on
 * a 200, apply the body like a trigger (frontend: the www slot), in the
 * caller's thread. A 304 or an error status changes nothing; it is logged.
 * Returns the HTTP status, or -1 when it cannot run now (an update is
 * running already, or there is no slot to write). */
struct curl_slist;
int node_pull_check(struct node *n, const char *url, const struct curl_slist *headers, bool frontend);
/* At boot, once the app runs: resume an interrupted download, or report the
 * outcome of the update that restarted the device (updated, rolled back). */
void node_pull_boot(struct node *n);
/* The running image was just marked valid: an update into it succeeded. */
void node_pull_confirmed(struct node *n);

/* Scheduled checks against aloftd's GET /update (check.c). */
int node_check_start(struct node *n);

/* MQTT (mqtt.c): subscribe to the command topics, publish the state.
 * node_mqtt_stop publishes the last state and disconnects (before a restart). */
int node_mqtt_start(struct node *n);
void node_mqtt_stop(struct node *n);

/* HTTP server (http.c). Returns 0 or -1 with a message printed. */
int node_http_start(struct node *n);
void node_http_stop(void);

#endif
