/* aloft: pull updates (PROTOCOLS.md §3) — a job that downloads an image
 * into the update slot (or the inactive www slot), and the scheduled check
 * against an update server's GET /update.
 *
 * The agent decides every request and the glue makes it (libcurl,
 * esp_http_client):
 *
 *   while (aloft_pull_request(a, j, &req) == 0) {
 *       wait req.delay_ms; GET req.url with req.headers;
 *       for each response (redirects have several): aloft_pull_head_begin,
 *           aloft_pull_header per header line, then, once the final
 *           response's headers are in, aloft_pull_head_end(status)
 *           (a negative return: stop this transfer);
 *       each body chunk: aloft_pull_body (negative: stop this transfer);
 *       aloft_pull_done(result, status, detail);
 *   }
 *
 * The image's head is identified before anything is erased: another chip,
 * another project, a lower secure_version, the running version or
 * (checks only) a version that was rolled back are refused with the slot
 * untouched. A dropped transfer resumes with Range and If-Range (the first
 * response's ETag). The job and, every 64 KB, the bytes safely in flash are
 * kept in the settings, so a restart resumes it (aloft_pull_boot). When the
 * device trusts signing keys, a whole image not signed by one is refused
 * (unsigned, bad_signature, untrusted_key) before anything switches. A
 * delta patch (a check's application/x-aloft-delta, a trigger's
 * delta_url) goes through the delta decoder: the base is checked before
 * anything is erased (wrong_base), the result through the same checks; a
 * dropped patch download resumes from the decoder's last checkpoint (the
 * patch's header again, then Range), and a restart abandons it. A
 * verified image is made the boot image after "pull/pending" is saved, and
 * the boot after the restart tells: updated (once confirmed) or
 * rolled_back, in the state and in a report to the update server. */
#ifndef ALOFT_PULL_H
#define ALOFT_PULL_H

#include <stdbool.h>
#include <stdint.h>

#include "aloft/agent.h"
#include "aloft/update.h"

#define ALOFT_PULL_SAVE_EVERY (64u * 1024u) /* progress kept in the settings */
#define ALOFT_PULL_MAX_STALLS 5             /* attempts in a row that bring no byte */

/* A trigger {"type":"ota_trigger","url":…} and its optional fields. */
struct aloft_pull_req {
    char url[512];
    char version[33];  /* expected version */
    char sha256[65];   /* expected SHA-256 of the body, lower-case hex */
    uint64_t size;     /* expected size; 0: unknown */
    char token[256];   /* bearer token for the download */
    char trigger[48];  /* the trigger's id, echoed in the state */
    bool frontend;     /* the www slot, not the app */
    /* a delta patch from the image delta_base (SHA-256, lower-case hex) to
     * this one: taken instead of url when the device runs that image and
     * takes patches (version, sha256 and size still name the image) */
    char delta_url[512];
    char delta_base[65];
    bool delta;        /* url is the patch (aloft_pull_start decided) */
};

/* Parse an ota_trigger: untrusted JSON, every field checked for type and
 * size. "url" (http:// or https://) is required; "version", "sha256" (64
 * hex digits), "size" (a positive whole number), "token", "id" (at most 47
 * characters), "target" ("firmware" or "frontend") and "delta_url" with
 * "delta_base" (both or neither: an http(s) URL, 64 hex digits) are optional. Returns
 * 0, or ALOFT_E_SYNTAX with a reason in why. */
int aloft_trigger_parse(const char *json, size_t len, struct aloft_pull_req *r, char *why, size_t why_len);

/* How a transfer ended, as the glue saw it. */
enum aloft_net {
    ALOFT_NET_OK,       /* a complete response (any status) */
    ALOFT_NET_DROPPED,  /* no connection, a reset, a timeout, a short body */
    ALOFT_NET_TLS,      /* the certificate was not trusted, or the handshake failed */
    ALOFT_NET_REDIRECT, /* too many redirects, or one to another scheme */
    ALOFT_NET_STOPPED,  /* the agent asked to stop (a negative return) */
};

/* The next request. headers: "Name: value\r\n" lines. */
struct aloft_pull_request {
    char url[600];
    char headers[1400];
    const char *user_agent; /* "ESP32-http-Update" for checks, "aloft" otherwise */
    uint32_t delay_ms;      /* wait this long first (backoff after a drop) */
};

/* One job. Caller-allocated (about 4.5 KB: what would not fit a small
 * stack lives here); one at a time per device. */
struct aloft_pull {
    struct aloft_pull_req r;
    bool check;                  /* from a scheduled check */
    bool answered;               /* a response carried the body */
    bool first_sent;             /* a check's headers went with the first request */
    char url[600];               /* this request's */
    char md5[33];                /* expected MD5 of the body (x-MD5), "" if none */
    char etag[80];               /* of the first response: If-Range when resuming */
    char text[ALOFT_AGENT_SETTING_MAX + 1]; /* a check's HTTPUpdate headers until its
                                             * first request; then the settings' JSON */
    /* the response being read */
    int status;
    bool validated, restart, has_range, resp_delta;
    uint64_t resp_len, range_start, range_total;
    char resp_etag[80], resp_md5[40], resp_version[33];
    /* the body */
    uint64_t total, done, saved;
    bool started;                /* slot erased / update begun */
    bool delta;                  /* the body is a delta patch (a->delta decodes it) */
    bool vetted;                 /* a patch's result: its head was checked */
    uint32_t ck;                 /* a patch: the decoder's checkpoint when the last attempt ended */
    unsigned stalls;
    uint64_t before;             /* done at the start of this attempt */
    uint32_t delay_ms;           /* before the next request */
    uint64_t last_pub_ms;
    unsigned last_pct;
    uint8_t head[ALOFT_IMAGE_IDENT_BYTES];
    size_t head_len;
    const struct aloft_part *slot;
    struct aloft_update u;
    struct aloft_sha256 sha;
    struct aloft_md5 md5c;
    char code[32], reason[256];  /* why it failed */
    uint8_t end;                 /* private: running, or how the job ended */
};

/* Start a job from a trigger (r is copied; not j->r itself). Returns 0
 * (run it), ALOFT_E_STATE (a trigger with this id was handled already;
 * ignored), ALOFT_E_BUSY (an update runs already: j is left alone, the
 * state says failed/busy), or when it is refused at once, with the code
 * and reason in the state and in j->code and j->reason: ALOFT_E_NOTFOUND
 * (no slot to write: no_frontend_slots, no_slot) or ALOFT_E_INVAL
 * (pending_verify: the running image still waits for its confirm). */
int aloft_pull_start(struct aloft_agent *a, struct aloft_pull *j, const struct aloft_pull_req *r);

/* Start a scheduled check (GET <server>/update?dev=…&ver=… with the
 * HTTPUpdate headers; frontend: x-ESP32-mode: spiffs). sketch_md5 and
 * sketch_sha256 are the running image's digests (aloft_pull_describe).
 * A device that takes delta patches (cfg->delta) also sends
 * X-Aloft-Delta: <sketch_sha256>; a 200 with Content-Type
 * application/x-aloft-delta is then a patch from the running image,
 * decoded into the slot.
 * A 200's body is installed like a trigger's; a 304, an error status or
 * no answer ends the job with nothing to do. Returns 0 (run it), or when
 * it cannot run now (logged): ALOFT_E_STATE (the running image waits for
 * its confirm), ALOFT_E_BUSY (an update runs: j is left alone) or
 * ALOFT_E_NOTFOUND (no update server, or no slot to write). */
int aloft_pull_check(struct aloft_agent *a, struct aloft_pull *j, bool frontend, const char sketch_md5[33],
                     const char sketch_sha256[65]);

/* How long until the next scheduled check: every_s seconds ±10 %, from
 * port->random (without it, exactly every_s), so that a fleet that booted
 * together does not ask together. */
uint32_t aloft_pull_check_interval_ms(struct aloft_agent *a, uint32_t every_s);

/* MD5 (md5 may be NULL) and SHA-256 of the running image, as hex, for the
 * checks' headers. Returns 0 or a flash error. */
int aloft_pull_describe(struct aloft_agent *a, char md5[33], char sha256[65]);

/* At boot, after aloft_agent_start: tell the outcome of the update that
 * restarted the device (or wait for the confirm), then load an interrupted
 * job. Returns 1 when j holds a job to run, 0 when there is none. */
int aloft_pull_boot(struct aloft_agent *a, struct aloft_pull *j);

/* The job's next request. Returns 0 (make it) or 1 when the job is over. */
int aloft_pull_request(struct aloft_agent *a, struct aloft_pull *j, struct aloft_pull_request *req);

/* A response begins; a header of it; its headers are complete (status: its
 * HTTP status). head_end returns 0 (read the body) or a negative value to
 * stop the transfer: a status other than 200/206, or a response that does
 * not continue the body (aloft_pull_done then tells what it means). */
void aloft_pull_head_begin(struct aloft_pull *j);
void aloft_pull_header(struct aloft_pull *j, const char *name, const char *value);
int aloft_pull_head_end(struct aloft_agent *a, struct aloft_pull *j, int status);

/* Body bytes. Returns 0, or a negative value to stop the transfer. */
int aloft_pull_body(struct aloft_agent *a, struct aloft_pull *j, const void *data, size_t len);

/* The transfer ended: result, the HTTP status (0 if none) and the glue's
 * words for a failure (may be NULL). The agent decides: retry, complete
 * (verify, switch, restart), or fail. */
void aloft_pull_done(struct aloft_agent *a, struct aloft_pull *j, enum aloft_net result, int status,
                     const char *detail);

/* The glue cannot run a started job (no thread, no memory): end it as
 * failed with code and reason — nothing changed, the update slot is
 * released and the state and the update server are told. Nothing happens
 * to a job that is not running. */
void aloft_pull_abort(struct aloft_agent *a, struct aloft_pull *j, const char *code, const char *reason);

/* How a finished job ended: 0 installed (a restart is requested), 1
 * nothing to install (a check's 304), or -1 failed (j->code, j->reason)
 * or not over yet. */
int aloft_pull_result(const struct aloft_pull *j);

#endif
