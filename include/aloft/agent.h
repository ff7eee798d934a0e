/* aloft: the device agent — everything a device does about updates, on top
 * of the core (DESIGN.md "device agent"). Portable C11: no threads, no
 * sockets, no blocking calls, no heap. The glue of a port (ESP-IDF, or the
 * simulator's POSIX glue) owns the HTTP, MQTT and BLE stacks; it hands the
 * agent what it parsed and the bytes as they arrive, and carries out what
 * the agent answers (a reply, a request to make, a restart).
 *
 * Not thread-safe: the glue calls the agent from one thread at a time (one
 * lock around every call). Every state struct is caller-allocated and its
 * size is in these headers. JSON is written into caller buffers and read by
 * a small parser that allocates nothing (agent/json.c).
 *
 * Settings (keys "namespace/key", each value written atomically):
 *   security/ota_psk   the PSK uploads need (up to 64 characters)
 *   security/trusted_keys  up to three public key digests (64 hex digits
 *                      each, comma-separated): when set, only images signed
 *                      by one of these keys are installed (sig.h)
 *   security/min_secure_version  the lowest secure_version accepted
 *                      (decimal): an emulated eFuse, raised on confirm
 *   www/slot           the active frontend slot, "0" or "1"
 *   pull/…             the pull job, its progress and outcome (pull.h) */
#ifndef ALOFT_AGENT_H
#define ALOFT_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/boot.h"
#include "aloft/delta.h"
#include "aloft/image.h"
#include "aloft/sig.h"

#define ALOFT_AGENT_PSK_MAX 64
#define ALOFT_AGENT_SERVER_KEY_MAX 64 /* security/server_key: the credential the update server derived */
#define ALOFT_AGENT_SETTING_MAX 1024 /* the longest value the agent stores */

/* Key-value settings (NVS on ESP-IDF). get returns the value's length,
 * ALOFT_E_NOTFOUND or another error; set and del return 0 or an error.
 * Each callback gets ctx. */
struct aloft_settings {
    void *ctx;
    int (*get)(void *ctx, const char *key, void *buf, size_t cap);
    int (*set)(void *ctx, const char *key, const void *val, size_t len);
    int (*del)(void *ctx, const char *key);
};

/* The frontend's filesystem (LittleFS in the www slots; esp_littlefs on a
 * device). check: does partition p hold an image that mounts (0, or an
 * error)? mount: serve p's files from now on (0 or an error). stat and read
 * look up a file of the mounted slot by its absolute path ("/index.html"):
 * stat gives its size; read copies len bytes from off and returns the count
 * or an error. Each callback gets ctx. Leave check NULL on a device without
 * www slots. */
struct aloft_www_fs {
    void *ctx;
    int (*check)(void *ctx, const struct aloft_part *p);
    int (*mount)(void *ctx, const struct aloft_part *p);
    int (*stat)(void *ctx, const char *path, uint32_t *size);
    int (*read)(void *ctx, const char *path, uint32_t off, void *buf, size_t len);
};

/* What the agent needs from the device. The callbacks here get ctx; those
 * of settings and www their own. */
struct aloft_agent_port {
    void *ctx;
    const struct aloft_flash *flash;
    struct aloft_settings settings;
    struct aloft_www_fs www;
    uint64_t (*now_ms)(void *ctx);                 /* monotonic milliseconds */
    void (*restart)(void *ctx, const char *reason); /* after the current reply ("SW") */
    void (*random)(void *ctx, void *buf, size_t len);
    void (*log)(void *ctx, const char *line);      /* one line, no newline */
    /* Optional events. state: the state document (aloft_agent_state_json)
     * changed; publish it. report: POST json to url (the update server's
     * outcome report), in the background, retrying a few times. */
    void (*state)(void *ctx, const char *json, size_t len);
    void (*report)(void *ctx, const char *url, const char *json);
    /* Signed updates: does block b's signature (its own key, already
     * matched against a trusted digest) verify digest (b->digest_len
     * bytes: SHA-256, or SHA-384 for P-384)? 0 when it does. NULL: no
     * signature ever verifies. sha384_is: is the SHA-384 of the flash
     * bytes [addr, addr + len) digest? 0 when it is. A P-384 block signs
     * that digest (the agent hashes SHA-256 itself, and keeps no room for
     * a second digest); NULL: P-384 blocks never verify. */
    int (*verify)(void *ctx, const struct aloft_sig_block *b, const uint8_t *digest);
    int (*sha384_is)(void *ctx, uint32_t addr, uint32_t len, const uint8_t digest[48]);
};

/* What the glue knows about the device before the agent starts. Strings are
 * copied. */
struct aloft_agent_config {
    const char *mac;          /* station MAC, "AA:BB:CC:DD:EE:FF" */
    const char *reset_reason; /* POWERON, SW, PANIC, TASK_WDT, INT_WDT, BROWNOUT… */
    unsigned boot_count;
    const char *device_id;    /* NULL: the MAC */
    const char *platform;     /* NULL: the running image's project */
    const char *server;       /* update server base URL (checks, reports), or NULL */
    const char *cmd_topic;    /* an extra MQTT command topic (/switch/cmd/root), or NULL */
    bool open;                /* no PSK provisioned: take changes from anyone (a
                               * bench device; logged loudly). Off: refuse them */
    const char *trusted_keys; /* "HEX,HEX,HEX" built in (Kconfig), or NULL:
                               * the setting security/trusted_keys */
    uint32_t min_secure_version; /* the device's own floor (eFuse), or 0 */
    struct aloft_delta_update *delta; /* the state of a delta update (about 8 KB; one is enough: one
                                       * update at a time), or NULL: patches are refused (415) */
};

/* What the device is doing about updates (PROTOCOLS.md §3.2 "state"). */
enum aloft_phase {
    ALOFT_PHASE_IDLE, ALOFT_PHASE_DOWNLOADING, ALOFT_PHASE_VERIFYING, ALOFT_PHASE_RESTARTING,
    ALOFT_PHASE_UPDATED, ALOFT_PHASE_FAILED, ALOFT_PHASE_ROLLED_BACK,
};

struct aloft_agent_state {
    uint8_t phase;         /* enum aloft_phase */
    bool frontend;         /* target: the www slot, not the app */
    char trigger[48];      /* id of the trigger being or last handled ("" if none) */
    char version[33];      /* the version being installed, installed or refused */
    uint64_t bytes, total; /* downloading: progress (total 0: unknown) */
    char code[32];         /* failed: machine-readable reason, e.g. bad_sha256 */
    char reason[256];      /* failed or rolled back: for people */
};

struct aloft_agent {
    const struct aloft_agent_port *port;
    struct aloft_boot *boot;
    struct aloft_image_info app; /* the running image */
    char psk[ALOFT_AGENT_PSK_MAX + 1];
    char mac[18], reset_reason[16], device_id[64], platform[33], server[256], cmd_topic[128];
    unsigned boot_count;
    bool open;
    bool sig_on;                     /* a trusted key list is set */
    uint8_t sig_keys;                /* how many of sig_key parsed */
    uint8_t sig_key[ALOFT_SIG_BLOCKS_MAX][ALOFT_SIG_KEY_DIGEST_BYTES];
    uint32_t min_secure_version;     /* anti-rollback floor */
    uint64_t started_ms;
    const struct aloft_part *www[2]; /* www_0, www_1, or NULL */
    uint8_t www_slot;                /* active */
    bool www_ok;                     /* the active slot mounted */
    bool busy;                       /* an update (push or pull) holds the update slot */
    bool restarting;                 /* asked port->restart: another image or frontend is next */
    struct aloft_delta_update *delta; /* cfg->delta */
    /* a patch upload cut after a checkpoint: where it resumes. Kept in the
     * settings as it is (delta/ck), so that a restart resumes too */
    bool delta_ck;
    struct aloft_delta_ck {
        uint32_t patch, out; /* aloft_delta_checkpoint's */
        uint32_t owner;      /* 0, or the BLE transfer's (ble.c resumes only its own) */
        uint8_t header[ALOFT_DELTA_HEADER_BYTES]; /* the interrupted patch's */
    } dck;
    struct aloft_agent_state state;
    char doc[1024];                  /* the state document sent to port->state */
};

/* Start the agent once the bootloader chose the running app (b->running):
 * reads the running image, logs the boot line
 *   boot: reset_reason=<REASON> running_partition=<label>
 * and the app line, loads the PSK and mounts the active www slot. Returns
 * 0, ALOFT_E_INVAL or a flash error. */
int aloft_agent_start(struct aloft_agent *a, const struct aloft_agent_port *port, struct aloft_boot *b,
                      const struct aloft_agent_config *cfg);

/* The application's health check passed: mark the running app valid
 * (cancels the rollback) and report the outcome of the update that
 * restarted the device, if any. Returns 0, a flash error, or ALOFT_E_STATE
 * with nothing done once an update switched to another image (restarting:
 * a glue that marks the app valid itself, as ESP-IDF's does, checks it
 * first). */
int aloft_agent_confirm(struct aloft_agent *a);

/* The health check failed: mark the running app invalid and restart into
 * the previous one. Returns 0 (a restart is requested), ALOFT_E_NOROLLBACK,
 * ALOFT_E_STATE (otadata did not choose the running app) or a flash error. */
int aloft_agent_reject(struct aloft_agent *a);

/* GET /ota/status's document (PROTOCOLS.md §1) into buf. Returns its
 * length or ALOFT_E_NOSPC. 1 KB is enough. */
int aloft_agent_status_json(struct aloft_agent *a, char *buf, size_t cap);

/* The state document (PROTOCOLS.md §3.2): device, platform, mac, running
 * version and partition, boot_count, reset_reason, and the state; phase,
 * when not NULL, replaces the state's ("offline" for a last will, with
 * reason). Returns its length or ALOFT_E_NOSPC. 1 KB is enough. */
int aloft_agent_state_json(struct aloft_agent *a, const char *phase, const char *reason, char *buf, size_t cap);

/* Name of a phase ("downloading"). */
const char *aloft_agent_phase_name(int phase);

/* Replace the state and tell port->state. */
void aloft_agent_set_state(struct aloft_agent *a, const struct aloft_agent_state *s);

/* printf-style line to port->log. */
void aloft_agent_log(struct aloft_agent *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Settings through the port. get: the value as a string ("" when absent).
 * put: set, or delete when val is NULL; returns 0 or an error (logged). */
void aloft_agent_get(struct aloft_agent *a, const char *key, char *buf, size_t cap);
int aloft_agent_put(struct aloft_agent *a, const char *key, const char *val);

/* The www slot that is not active, or -1 without www slots. */
int aloft_agent_www_inactive(const struct aloft_agent *a);

/* Is the image's secure_version at least the device's floor (the stored
 * minimum, which rises when an image is confirmed) and the running one's?
 * (false: why says so) — anti-rollback, for pushed and pulled updates. */
bool aloft_agent_secure_version_ok(const struct aloft_agent *a, const struct aloft_image_info *in, char *why,
                                   size_t cap);

#endif
