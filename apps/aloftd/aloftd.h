/* aloftd: the update server. Shared state and the functions the request
 * handlers in this directory offer each other. */
#ifndef ALOFTD_H
#define ALOFTD_H

#include <microhttpd.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "store.h"

struct aloftd {
    /* settings: flags, then ALOFT_* environment, then --config, then defaults */
    const char *listen;     /* ADDR:PORT */
    const char *data;       /* data directory */
    const char *db;         /* sqlite:PATH */
    const char *token_file; /* --admin-token-file */
    const char *tls_cert;   /* --tls-cert, --tls-key: HTTPS (both or neither) */
    const char *tls_key;
    const char *mqtt;       /* --mqtt HOST:PORT: triggers (mqtt.c); NULL: none */
    const char *mqtt_user;  /* --mqtt-user, --mqtt-password */
    const char *mqtt_password;
    const char *public_url; /* --public-url: the base of download URLs in triggers */
    const char *ui;         /* --ui: the built admin UI (ui.c) */
    uint64_t max_upload;    /* bytes */
    unsigned threads;
    unsigned max_connections; /* open at once, from all clients (conns.c) */
    unsigned max_per_address; /* open at once from one client address */
    unsigned head_timeout_s;  /* a request's whole head must arrive within this */
    unsigned idle_timeout_s;  /* a connection silent this long is closed */

    char firmware_dir[4096]; /* <data>/firmware: firmware/<sha256>.bin */
    char tmp_dir[4096];      /* <data>/tmp: uploads until they are complete */
    struct aloft_store *store;
    char device_key[65]; /* devices' credentials are derived from it (credential.c) */
    struct MHD_Daemon *daemon;
    uint16_t port; /* the port bound (--listen may ask for 0) */
};

/* What one request keeps between MHD's calls (*con_cls). */
struct aloftd_request {
    struct aloftd_upload *upload; /* POST /api/firmware */
    char *body;                   /* other POSTs: the JSON body */
    size_t len;
    bool too_big;
    int endpoint; /* enum aloftd_endpoint, for /metrics */
};

/* http.c: replies. Each queues a response and returns MHD's answer. */
enum MHD_Result aloftd_reply_json(struct MHD_Connection *c, unsigned status, cJSON *j);
enum MHD_Result aloftd_reply_error(struct MHD_Connection *c, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* A store error: 404 for ALOFT_E_NOTFOUND (code, message), else 503 with
 * the database's own words. */
enum MHD_Result aloftd_reply_store_error(struct MHD_Connection *c, int err, const char *code, const char *message);

/* The request's header, case-insensitive; NULL when absent. */
const char *aloftd_header(struct MHD_Connection *c, const char *name);
/* A query argument; NULL when absent. */
const char *aloftd_arg(struct MHD_Connection *c, const char *name);

/* Did a browser send this from a page of another site (Sec-Fetch-Site:
 * cross-site, or an Origin that is not http(s)://<Host>)? Every request
 * that changes something is refused then, token or not. */
bool aloftd_cross_site(struct MHD_Connection *c);

/* auth.c: is the request's Bearer token an admin token? Returns 0 (yes) or
 * a queued 401/503 reply's MHD result via *reply (then returns -1). */
int aloftd_auth(struct aloftd *d, struct MHD_Connection *c, enum MHD_Result *reply);
/* At start: make sure an admin token exists (see main.c's usage). */
int aloftd_token_setup(struct aloftd *d);
/* 32 random bytes as 64 hex digits (a new token or key); -1: no randomness. */
int aloftd_random_hex(char out[65]);

/* credential.c: devices' credentials, derived from the server's device key.
 * At start: load the key (made once, kept in the database). */
int aloftd_credential_setup(struct aloftd *d);
/* The credential of the device with this MAC: 64 hex digits. */
void aloftd_credential(const struct aloftd *d, const char *mac, char out[65]);
/* Is auth (64 hex digits) the HMAC-SHA256 of body under mac's credential? */
bool aloftd_credential_check(const struct aloftd *d, const char *mac, const char *body, size_t len, const char *auth);
/* GET /api/devices/<MAC>/credential (admin): rest is what follows /api/devices/. */
enum MHD_Result aloftd_credential_route(struct aloftd *d, struct MHD_Connection *c, const char *rest, bool get);
/* GET/POST /api/platforms/<p>/checkins: may unsigned check-ins settle rollouts? */
enum MHD_Result aloftd_checkins(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_platform *p,
                                bool post, const char *body, size_t len, bool too_big);
/* aloftd --rotate-admin-token: a new token, and every earlier one refused. */
int aloftd_token_rotate(struct aloftd *d);

/* upload.c: POST /api/firmware, called for every piece of the body. */
enum MHD_Result aloftd_upload(struct aloftd *d, struct MHD_Connection *c, struct aloftd_request *req,
                              const char *data, size_t *data_size);
void aloftd_upload_free(struct aloftd_upload *up);

/* admin.c: the JSON admin endpoints other than uploads (authenticated). */
enum MHD_Result aloftd_admin(struct aloftd *d, struct MHD_Connection *c, const char *url, const char *method,
                             const char *body, size_t len, bool too_big);
cJSON *aloftd_release_json(const struct aloft_store_release *r, bool current);

/* device.c: GET /update, the HTTPUpdate protocol (PROTOCOLS.md §3.1). */
enum MHD_Result aloftd_update(struct aloftd *d, struct MHD_Connection *c);

/* download.c: GET/HEAD /firmware/<sha256>.bin, and the file of a release
 * as /update's 200 (*status: the status queued, 200 or 500). */
enum MHD_Result aloftd_download(struct aloftd *d, struct MHD_Connection *c, const char *name);
/* After the daemon stopped: close the files kept open for downloads. */
void aloftd_download_stop(void);
enum MHD_Result aloftd_send_release(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_release *r,
                                    unsigned *status);
/* /update's 200 with the patch p from the device's image to r's instead:
 * Content-Type application/x-aloft-delta (PROTOCOLS.md §2). */
enum MHD_Result aloftd_send_patch(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_release *r,
                                  const struct aloft_store_delta *p, unsigned *status);

/* deltas.c: delta patches made in the background, one worker thread.
 * start/stop: with the HTTP server. want: the patch from base (SHA-256 of
 * the image a device runs) to target is wanted; queued unless it is
 * queued or being made already, or the queue is full (the image is sent
 * meanwhile either way). The worker makes it only when base is a firmware
 * release of the platform. */
int aloftd_deltas_start(struct aloftd *d);
void aloftd_deltas_stop(void);
void aloftd_deltas_want(const char *platform, const char *base, const struct aloft_store_release *target);

/* "<dir>/<sha256>.bin" into out. */
void aloftd_blob_path(const struct aloftd *d, const char *sha256, char *out, size_t cap);

/* files.c: files shared through the database (PostgreSQL; SQLite: no-ops).
 * share: keep the file open at fd there (before its release is recorded);
 * fetch: take a file this instance lacks from there into firmware/, its
 * SHA-256 checked: 0, ALOFT_E_NOTFOUND (not there; always on SQLite),
 * ALOFT_E_HASH (the database's copy is damaged: not kept), ALOFT_E_IO;
 * share_all: at start, store the files recorded before the database held
 * any. Each logs why it failed. */
int aloftd_file_share(struct aloftd *d, int fd, const char *sha256, uint64_t size);
int aloftd_file_fetch(struct aloftd *d, const char *sha256, uint64_t size);
int aloftd_files_share_all(struct aloftd *d);

/* ui.c: GET /, /admin, /admin/<file>: the admin UI's static files. */
enum MHD_Result aloftd_ui(struct aloftd *d, struct MHD_Connection *c, const char *url, bool get);
/* Where the UI is: installed next to the program, or where the build puts it. */
void aloftd_ui_default(char *out, size_t cap);
/* At start: where the UI is served from, or that it is not built. */
void aloftd_ui_log(const struct aloftd *d);

/* http.c */
int aloftd_http_start(struct aloftd *d);
void aloftd_http_stop(struct aloftd *d);

/* conns.c: the connection limits and the head deadline (see there).
 * start: before the daemon (raises the open-file limit; may lower
 * d->max_connections to fit it); stop: after it. The rest are MHD's
 * callbacks, and the handler's: a request's head has arrived, a request
 * was answered (a kept-alive connection waits for the next head). */
int aloftd_conns_start(struct aloftd *d);
void aloftd_conns_stop(void);
enum MHD_Result aloftd_conns_accept(void *cls, const struct sockaddr *addr, socklen_t len);
void aloftd_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code);
void aloftd_conns_mhd_log(void *cls, const char *fmt, va_list ap);
void aloftd_conns_head_done(struct MHD_Connection *c);
void aloftd_conns_request_done(struct MHD_Connection *c);

/* main.c: a line on standard output, flushed. */
void aloftd_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* "2026-05-07T12:59:15Z" into out (21 bytes). */
void aloftd_time(int64_t t, char out[21]);

/* signing.c: GET|POST /api/platforms/<p>/signing (see there). */
enum MHD_Result aloftd_signing(struct aloftd *d, struct MHD_Connection *c, const char *platform, bool post,
                               const char *body, size_t len, bool too_big);
/* Does an upload of len bytes satisfy platform's signing policy? NULL (yes)
 * with signer set to the digest of the key whose block verified ("" when
 * none did and the platform has no policy), or the refusal's code
 * (unsigned, bad_signature, untrusted_key) with why. */
const char *aloftd_signature_check(struct aloftd *d, const char *platform, const uint8_t *data, size_t len,
                                   char signer[65], char *why, size_t cap);

/* rollout.c: whitelists, device reports, staged rollouts (see there). */
enum MHD_Result aloftd_whitelist(struct aloftd *d, struct MHD_Connection *c, const char *platform, bool post,
                                 const char *body, size_t len, bool too_big);
enum MHD_Result aloftd_rollout_start(struct aloftd *d, struct MHD_Connection *c, const char *platform,
                                     const char *body, size_t len, bool too_big);
/* /api/rollouts/<rest> ("" for the list) */
enum MHD_Result aloftd_rollout_route(struct aloftd *d, struct MHD_Connection *c, const char *rest, bool get,
                                     bool post);
/* POST /api/devices/<rest>: <MAC>/report, a device endpoint (no token). */
enum MHD_Result aloftd_report(struct aloftd *d, struct MHD_Connection *c, const char *rest, const char *body,
                              size_t len, bool too_big);
cJSON *aloftd_rollout_json(const struct aloft_store_rollout *r);
/* /update's check-in of mac running ver on a platform the rollout ro (from
 * the update view) governs: counts a device it was offered as succeeded
 * or failed. true: the rollout halted or advanced meanwhile. */
bool aloftd_rollout_checkin(struct aloftd *d, const struct aloft_store_rollout *ro, const char *mac, const char *ver);
/* The device's bucket in a rollout: FNV-1a (64 bits) of "<id>/<MAC>" mod 100. */
unsigned aloftd_rollout_bucket(int64_t id, const char *mac);
/* AA:BB:CC:DD:EE:FF, aa-bb-..., or 12 hex digits into AA:BB:CC:DD:EE:FF. */
bool aloftd_mac_normalize(const char *s, char out[18]);

/* mqtt.c: MQTT triggers (PROTOCOLS.md §3.2). Start after the HTTP server
 * (the default public URL needs its port): connects in the background,
 * reconnecting with backoff; -1 on a bad --mqtt. */
int aloftd_mqtt_start(struct aloftd *d);
void aloftd_mqtt_stop(void);
bool aloftd_mqtt_enabled(void);
/* aloft/<platform>/cmd (mac NULL) or aloft/<platform>/<mac>/cmd into out. */
void aloftd_mqtt_topic(const char *platform, const char *mac, char *out, size_t cap);
/* The trigger message of a release, with the patch p (NULL: none). */
cJSON *aloftd_mqtt_trigger_json(const struct aloft_store_release *r, const struct aloft_store_delta *p);
/* The patch a trigger of r carries to a device that runs image ("":
 * unknown) into *p: true when one worth sending exists; when none was made
 * yet it is asked for (deltas.c) and false. */
bool aloftd_mqtt_patch(struct aloftd *d, const struct aloft_store_release *r, const char *image,
                       struct aloft_store_delta *p);
/* The patch a platform's trigger of r carries: from the most common image
 * its devices run that has one worth sending. */
bool aloftd_mqtt_platform_patch(struct aloftd *d, const struct aloft_store_release *r, struct aloft_store_delta *p);
/* Publish r's trigger (QoS 1, not retained) to the platform's topic (mac
 * NULL) or the device's, with the patch p (NULL: none). 0, or -1: no
 * --mqtt, not connected, refused. */
int aloftd_mqtt_trigger(const struct aloft_store_release *r, const char *mac, const struct aloft_store_delta *p);
/* A rollout opened a stage: trigger the inventory devices of its platform
 * whose bucket is in [from_percent, the stage's percent) and that do not
 * run its release yet; at 100 % the platform's topic instead. */
void aloftd_mqtt_rollout(struct aloftd *d, const struct aloft_store_rollout *ro, int from_percent);
/* admin.c's POST /api/platforms/<p>/trigger {"device": MAC, "version": V} (both optional). */
enum MHD_Result aloftd_trigger(struct aloftd *d, struct MHD_Connection *c, const char *platform, const char *body,
                               size_t len, bool too_big);

/* health.c: GET /healthz (the process answers) and GET /readyz (the
 * database answers and has every migration): no token, for load balancers
 * and service managers. */
enum MHD_Result aloftd_healthz(struct MHD_Connection *c);
enum MHD_Result aloftd_readyz(struct aloftd *d, struct MHD_Connection *c);

/* metrics.c: GET /metrics and the counters it shows. */
enum aloftd_endpoint {
    ALOFTD_EP_OTHER,
    ALOFTD_EP_UPDATE,
    ALOFTD_EP_FIRMWARE,
    ALOFTD_EP_REPORT,
    ALOFTD_EP_UPLOAD,
    ALOFTD_EP_API,
    ALOFTD_EP_METRICS,
    ALOFTD_EP_HEALTH,
    ALOFTD_EP_COUNT
};
enum MHD_Result aloftd_metrics(struct aloftd *d, struct MHD_Connection *c);
void aloftd_metrics_request(int endpoint, unsigned status);
void aloftd_metrics_checkin(unsigned status);
void aloftd_metrics_download(uint64_t bytes);
void aloftd_metrics_report(const char *result);
void aloftd_metrics_rollout_event(void);
/* deltas.c made a patch (worth sending or not); download.c sent one, saving
 * saved bytes against the image. */
void aloftd_metrics_patch_made(bool worth);
void aloftd_metrics_patch_sent(uint64_t saved);
/* Is the request this thread is answering a HEAD (no body is sent)? */
extern _Thread_local bool aloftd_head_request;

#endif
