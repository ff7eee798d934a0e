/* aloft agent: pull jobs (pull.h) — a download into the update slot or the
 * inactive www slot. The glue's HTTP client carries out each request; every
 * decision is here: what to ask for, whether a response continues the body,
 * when to retry, what to refuse, and what the boot after the restart tells.
 *
 * The settings keep the job so that a restart resumes it:
 *   pull/url, pull/token   what to download
 *   pull/offset            bytes safely in flash (a multiple of 64 KB)
 *   pull/job               {version, sha256, size, trigger, target, slot, etag, md5, check[, delta]}
 *   delta/ck               a patch's: the decoder's checkpoint (push.c keeps it)
 *   pull/trigger           the last trigger id taken (a repeat is ignored)
 *   pull/pending           {version, trigger, target, slot, seq}: what should come up
 *   pull/rolled_back       the last version that did not come up
 *   pull/www               the frontend the last pull installed, else the SHA-256
 *                          of the one flashed with the app (checks send it) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent_private.h"
#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloft/otadata.h"
#include "pull_job.h"
#include "push_private.h"

#define PENDING_MAX 512 /* pull/pending's JSON: a few short strings */
#define DELTA_TYPE "application/x-aloft-delta"
#define REASON_MAX 200  /* in a report: the server takes at most 199 characters */

/* ---- small helpers ---- */

static uint64_t now(const struct aloft_agent *a)
{
    return a->port->now_ms ? a->port->now_ms(a->port->ctx) : 0;
}

static const char *target_name(bool frontend)
{
    return frontend ? "frontend" : "firmware";
}

/* The update writer of a firmware job: its own, or the delta decoder's. */
static struct aloft_update *writer(struct aloft_agent *a, struct aloft_pull *j)
{
    return j->delta ? &a->delta->u : &j->u;
}

void aloft_pull_server_url(const struct aloft_agent *a, const char *path, char *out, size_t cap)
{
    size_t len = strlen(a->server);
    while (len && a->server[len - 1] == '/')
        len--;
    snprintf(out, cap, "%.*s%s", (int)len, a->server, path);
}

/* A string member of a JSON object, "" when absent or too long. */
static void json_str(const char *text, size_t len, const char *key, char *out, size_t cap)
{
    struct aloft_json_val v = aloft_json_get(text, len, key);
    if (aloft_json_str(&v, out, cap) < 0)
        out[0] = 0;
}

/* ---- the job ---- */

void aloft_pull_init(struct aloft_pull *j, const struct aloft_pull_req *r)
{
    memset(j, 0, sizeof *j);
    if (r)
        j->r = *r;
    snprintf(j->url, sizeof j->url, "%s", j->r.url);
    aloft_sha256_init(&j->sha);
    aloft_md5_init(&j->md5c);
}

static int fail(struct aloft_pull *j, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct aloft_pull *j, const char *code, const char *fmt, ...)
{
    if (!j->code[0]) { /* the first reason is the real one */
        snprintf(j->code, sizeof j->code, "%s", code);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(j->reason, sizeof j->reason, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* An error of the image verifier, the update writer or the flash. */
static int image_fail(struct aloft_agent *a, struct aloft_pull *j, int err)
{
    static const struct {
        int err;
        const char *code;
    } map[] = {
        {ALOFT_E_MAGIC, "not_an_image"},     {ALOFT_E_SEGMENTS, "not_an_image"}, {ALOFT_E_HEADER, "not_an_image"},
        {ALOFT_E_CHIP, "wrong_chip"},        {ALOFT_E_ESP8266, "wrong_chip"},    {ALOFT_E_SEGMENT, "corrupt_image"},
        {ALOFT_E_CHECKSUM, "corrupt_image"}, {ALOFT_E_HASH, "corrupt_image"},    {ALOFT_E_TRAILING, "corrupt_image"},
        {ALOFT_E_TRUNCATED, "truncated"},    {ALOFT_E_NOSPC, "too_large"},       {ALOFT_E_STATE, "pending_verify"},
        {ALOFT_E_SIGNATURE, "bad_signature"}, {ALOFT_E_BASE, "wrong_base"},     {ALOFT_E_CORRUPT, "bad_patch"},
    };
    const char *code = "flash_error";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].err == err)
            code = map[i].code;
    char why[sizeof j->reason];
    aloft_agent_why(a, err, why, sizeof why);
    return fail(j, code, "%s", why);
}

static void publish(struct aloft_agent *a, struct aloft_pull *j, uint8_t phase)
{
    struct aloft_agent_state s = {.phase = phase, .frontend = j->r.frontend, .bytes = j->done, .total = j->total};
    snprintf(s.trigger, sizeof s.trigger, "%s", j->r.trigger);
    snprintf(s.version, sizeof s.version, "%s", j->r.version);
    if (phase == ALOFT_PHASE_FAILED) {
        snprintf(s.code, sizeof s.code, "%s", j->code);
        snprintf(s.reason, sizeof s.reason, "%s", j->reason);
    }
    aloft_agent_set_state(a, &s);
    j->last_pub_ms = now(a);
    j->last_pct = j->total ? (unsigned)(j->done * 100 / j->total) : 0;
}

static void clear_job(struct aloft_agent *a)
{
    aloft_agent_put(a, "pull/job", NULL);
    aloft_agent_put(a, "pull/url", NULL);
    aloft_agent_put(a, "pull/token", NULL);
    aloft_agent_put(a, "pull/offset", NULL);
}

/* The job as the settings keep it, so that a restart resumes it: an image
 * from pull/offset, a patch from the decoder's checkpoint kept in delta/ck
 * (every ALOFT_DELTA_SAVE_EVERY bytes of patch, as an upload's). */
static void save_job(struct aloft_agent *a, struct aloft_pull *j)
{
    j->saved = 0;
    struct aloft_jw w;
    aloft_jw_begin(&w, j->text, sizeof j->text);
    aloft_jw_str(&w, "version", j->r.version);
    aloft_jw_str(&w, "sha256", j->r.sha256);
    aloft_jw_num(&w, "size", j->r.size);
    aloft_jw_str(&w, "trigger", j->r.trigger);
    aloft_jw_str(&w, "target", target_name(j->r.frontend));
    aloft_jw_str(&w, "slot", j->slot->label);
    aloft_jw_str(&w, "etag", j->etag);
    aloft_jw_str(&w, "md5", j->md5);
    aloft_jw_bool(&w, "check", j->check);
    if (j->r.delta) /* a patch's job: an image's reads as it always did */
        aloft_jw_bool(&w, "delta", true);
    bool fits = aloft_jw_end(&w) > 0;
    aloft_agent_put(a, "pull/url", j->r.url);
    aloft_agent_put(a, "pull/token", j->r.token[0] ? j->r.token : NULL);
    aloft_agent_put(a, "pull/offset", "0");
    aloft_agent_put(a, "pull/job", fits ? j->text : NULL);
}

/* POST the outcome of the update to target to the update server
 * (port->report does it in the background), signed with the credential
 * the server derived for this device when it has one: ?auth= is the
 * HMAC-SHA256 of the body under it. reason: under REASON_MAX characters;
 * body: room for the JSON (the caller's, to keep the stack small). */
static void report(struct aloft_agent *a, const char *result, const char *reason, const char *target, char *body,
                   size_t cap)
{
    if (!a->server[0] || !a->port->report)
        return;
    union { /* one after the other, to keep the stack small: the signature's state, then the URL */
        struct aloft_hmac_sha256 h;
        char url[368]; /* the longest server URL, /api/devices/, the MAC, /report and ?auth= */
    } u;
    char key[ALOFT_AGENT_SERVER_KEY_MAX + 1];
    uint8_t mac[32];
    int64_t st = aloft_boot_state(a->boot);
    struct aloft_jw w;
    aloft_jw_begin(&w, body, cap);
    aloft_jw_str(&w, "version", a->app.has_desc && a->app.desc.version[0] ? a->app.desc.version : "unknown");
    aloft_jw_str(&w, "result", result);
    aloft_jw_str(&w, "target", target);
    aloft_jw_str(&w, "reason", reason);
    aloft_jw_str(&w, "partition", a->boot->running->label);
    aloft_jw_str(&w, "state", st < 0 ? "unknown" : aloft_otadata_state_name((uint32_t)st));
    aloft_jw_str(&w, "reset_reason", a->reset_reason);
    int n = aloft_jw_end(&w);
    if (n <= 0)
        return;
    aloft_agent_get(a, "security/server_key", key, sizeof key);
    if (key[0]) {
        aloft_hmac_sha256_key(&u.h, key, strlen(key));
        aloft_hmac_sha256_sum(&u.h, body, (size_t)n, mac);
    }
    aloft_pull_server_url(a, "/api/devices/", u.url, sizeof u.url);
    snprintf(u.url + strlen(u.url), sizeof u.url - strlen(u.url), "%s/report%s", a->mac, key[0] ? "?auth=" : "");
    if (key[0])
        aloft_agent_hex(mac, sizeof mac, u.url + strlen(u.url));
    a->port->report(a->port->ctx, u.url, body);
}

static void job_failed(struct aloft_agent *a, struct aloft_pull *j)
{
    if (j->started && !j->r.frontend)
        aloft_update_abort(writer(a, j));
    if (j->delta) /* nothing to resume any more */
        aloft_push_delta_keep(a, false);
    clear_job(a);
    aloft_agent_log(a, "pull: failed: %s (%s); nothing changed", j->code, j->reason);
    publish(a, j, ALOFT_PHASE_FAILED);
    /* refusing what runs already or was rolled back is no update's outcome */
    if (strcmp(j->code, "same_version") && strcmp(j->code, "rolled_back_before")) {
        char *why = j->text + sizeof j->text - REASON_MAX; /* the job is over: j->text is free */
        snprintf(why, REASON_MAX, "%.*s", REASON_MAX - 1, j->reason);
        report(a, "failed", why, j->r.version, j->text, sizeof j->text - REASON_MAX);
    }
    a->busy = false;
    j->end = ALOFT_PULL_FAILED;
}

const struct aloft_part *aloft_pull_target(struct aloft_agent *a, struct aloft_pull *j)
{
    if (j->r.frontend) {
        int i = aloft_agent_www_inactive(a);
        if (i < 0 || !a->port->www.check) {
            fail(j, "no_frontend_slots", "%s", aloft_agent_no_www);
            return NULL;
        }
        return a->www[i];
    }
    const struct aloft_part *p = aloft_part_next_update(&a->boot->table, a->boot->running);
    if (!p)
        fail(j, "no_slot", "this device's partition table has no slot to update into");
    else if (aloft_boot_state(a->boot) == ALOFT_OTA_PENDING_VERIFY)
        fail(j, "pending_verify", "%s", aloft_agent_pending_verify);
    return j->code[0] ? NULL : p;
}

int aloft_pull_start(struct aloft_agent *a, struct aloft_pull *j, const struct aloft_pull_req *r)
{
    char last[sizeof r->trigger];
    aloft_agent_get(a, "pull/trigger", last, sizeof last);
    if (r->trigger[0] && !strcmp(last, r->trigger)) {
        aloft_agent_log(a, "pull: trigger %s was handled already; ignored", r->trigger);
        return ALOFT_E_STATE;
    }
    if (a->busy) { /* j may be the running job's: leave it alone */
        struct aloft_agent_state s = {.phase = ALOFT_PHASE_FAILED, .frontend = r->frontend};
        snprintf(s.trigger, sizeof s.trigger, "%s", r->trigger);
        snprintf(s.version, sizeof s.version, "%s", r->version);
        snprintf(s.code, sizeof s.code, "busy");
        snprintf(s.reason, sizeof s.reason, "%s", aloft_agent_busy);
        aloft_agent_log(a, "pull: refused %s: %s", r->url, s.reason);
        aloft_agent_set_state(a, &s);
        return ALOFT_E_BUSY;
    }
    aloft_pull_init(j, r);
    a->busy = true;
    if (r->trigger[0])
        aloft_agent_put(a, "pull/trigger", r->trigger);
    j->slot = aloft_pull_target(a, j);
    if (!j->slot) {
        job_failed(a, j);
        return strcmp(j->code, "pending_verify") ? ALOFT_E_NOTFOUND : ALOFT_E_INVAL;
    }
    /* the trigger's patch, when it is from the image this device runs */
    char run[65];
    j->r.delta = false;
    if (r->delta_url[0] && !r->frontend && a->delta && !aloft_pull_describe(a, NULL, run) &&
        !strcmp(run, r->delta_base)) {
        j->r.delta = true;
        snprintf(j->r.url, sizeof j->r.url, "%s", r->delta_url);
        snprintf(j->url, sizeof j->url, "%s", r->delta_url);
    }
    aloft_agent_log(a, "pull: %s %s%s into %s%s%s", target_name(r->frontend), j->r.delta ? "patch " : "", j->r.url,
                    j->slot->label, r->trigger[0] ? " for trigger " : "", r->trigger);
    save_job(a, j);
    publish(a, j, ALOFT_PHASE_DOWNLOADING);
    j->end = ALOFT_PULL_RUNNING;
    return 0;
}

/* ---- the body ---- */

static int vet(struct aloft_agent *a, struct aloft_pull *j, const struct aloft_image_info *in);

/* Identify the image from its head; refuse what must not be installed. */
static int identify(struct aloft_agent *a, struct aloft_pull *j)
{
    struct aloft_image_verifier *v = &j->u.v; /* the update has not begun: its verifier is free */
    aloft_image_begin(v, a->boot->chip, j->slot->size);
    int rc = aloft_image_feed(v, j->head, j->head_len);
    if (rc)
        return image_fail(a, j, rc);
    if (!aloft_image_ident_ready(v))
        return fail(j, j->head_len ? "truncated" : "not_an_image", "the body is %u bytes: %s", (unsigned)j->head_len,
                    j->head_len ? "it ends inside the image header" : "empty");
    return vet(a, j, &v->info);
}

/* Refuse an image the device must not install, from its head's info. */
static int vet(struct aloft_agent *a, struct aloft_pull *j, const struct aloft_image_info *in)
{
    const struct aloft_app_desc *run = &a->app.desc;
    if (a->app.has_desc && (!in->has_desc || strcmp(in->desc.project_name, run->project_name)))
        return fail(j, "wrong_project", "the image is for project '%s'; this device runs '%s'",
                    in->has_desc ? in->desc.project_name : "(no app descriptor)", run->project_name);
    char why[160];
    if (!aloft_agent_secure_version_ok(a, in, why, sizeof why))
        return fail(j, "secure_version", "%s", why);
    if (in->has_desc && a->app.has_desc && !strcmp(in->desc.version, run->version))
        return fail(j, "same_version", "the image is version %s, which this device runs already", in->desc.version);
    char bad[sizeof in->desc.version];
    aloft_agent_get(a, "pull/rolled_back", bad, sizeof bad);
    /* a check would offer it again and again: only a trigger retries it */
    if (j->check && in->has_desc && !strcmp(in->desc.version, bad))
        return fail(j, "rolled_back_before",
                    "version %s was rolled back on this device; not installed again unless triggered", bad);
    if (j->r.version[0] && in->has_desc && strcmp(in->desc.version, j->r.version))
        return fail(j, "wrong_version", "expected version %s; the image is %s", j->r.version, in->desc.version);
    if (in->has_desc)
        snprintf(j->r.version, sizeof j->r.version, "%s", in->desc.version);
    return 0;
}

/* Erase the target: the last moment before the first write. */
static int begin(struct aloft_agent *a, struct aloft_pull *j)
{
    int rc = j->r.frontend ? aloft_flash_erase(a->port->flash, j->slot->offset, j->slot->size)
                           : aloft_update_begin(&j->u, a->boot, j->slot);
    if (rc)
        return image_fail(a, j, rc);
    j->started = true;
    return 0;
}

/* Write body bytes [at, at + len) into the slot. */
static int put(struct aloft_agent *a, struct aloft_pull *j, uint64_t at, const void *p, size_t len)
{
    int rc;
    if (!j->r.frontend)
        rc = aloft_update_write(&j->u, p, len);
    else if (at + len > j->slot->size)
        rc = ALOFT_E_NOSPC;
    else
        rc = aloft_flash_write(a->port->flash, j->slot->offset + (uint32_t)at, p, len);
    return rc ? image_fail(a, j, rc) : 0;
}

/* Body bytes [at, at + len) of an image. */
static int take_image(struct aloft_agent *a, struct aloft_pull *j, uint64_t at, const uint8_t *p, size_t len)
{
    if (!j->started && j->r.frontend && begin(a, j))
        return -1;
    if (!j->started) { /* firmware: nothing is erased before the head is identified */
        size_t k = sizeof j->head - j->head_len < len ? sizeof j->head - j->head_len : len;
        memcpy(j->head + j->head_len, p, k);
        j->head_len += k;
        p += k;
        len -= k;
        if (j->head_len < sizeof j->head)
            return 0;
        if (identify(a, j) || begin(a, j) || put(a, j, 0, j->head, j->head_len))
            return -1;
        at = j->head_len;
    }
    if (len && put(a, j, at, p, len))
        return -1;
    uint64_t safe = j->done / ALOFT_PULL_SAVE_EVERY * ALOFT_PULL_SAVE_EVERY;
    if (safe > j->saved) {
        char v[24];
        snprintf(v, sizeof v, "%llu", (unsigned long long)safe);
        aloft_agent_put(a, "pull/offset", v);
        j->saved = safe;
    }
    return 0;
}

/* Patch bytes [at, at + len), through the decoder: it checks the base
 * before its writer erases anything, and the result's head is vetted as an
 * image's is. The header is kept: a resume feeds it again. */
static int take_patch(struct aloft_agent *a, struct aloft_pull *j, uint64_t at, const uint8_t *p, size_t len)
{
    struct aloft_update *u = writer(a, j);
    if (at < ALOFT_DELTA_HEADER_BYTES)
        memcpy(a->dck.header + at, p, ALOFT_DELTA_HEADER_BYTES - at < len ? ALOFT_DELTA_HEADER_BYTES - at : len);
    int rc = aloft_delta_update_write(a->delta, p, len);
    j->started = u->state != 0;
    if (rc) /* a header the decoder refused, before its writer began: not a patch */
        return image_fail(a, j, !u->state && (rc == ALOFT_E_MAGIC || rc == ALOFT_E_HEADER) ? ALOFT_E_CORRUPT : rc);
    aloft_push_delta_checkpoint(a, ALOFT_PULL_CK_OWNER, ALOFT_DELTA_SAVE_EVERY); /* a restart resumes there */
    if (!j->vetted && u->state && aloft_image_ident_ready(&u->v)) {
        j->vetted = true;
        return vet(a, j, &u->v.info);
    }
    return 0;
}

/* The next len bytes of the body. */
static int take(struct aloft_agent *a, struct aloft_pull *j, const uint8_t *p, size_t len)
{
    aloft_sha256_update(&j->sha, p, len);
    aloft_md5_update(&j->md5c, p, len);
    uint64_t at = j->done;
    j->done += len;
    if (j->delta ? take_patch(a, j, at, p, len) : take_image(a, j, at, p, len))
        return -1;
    unsigned pct = j->total ? (unsigned)(j->done * 100 / j->total) : 0;
    if (pct >= j->last_pct + 5 || now(a) - j->last_pub_ms >= 1000)
        publish(a, j, ALOFT_PHASE_DOWNLOADING);
    return 0;
}

/* Back to byte 0: the server sent another file or ignored the range. */
static void start_over(struct aloft_agent *a, struct aloft_pull *j)
{
    if (j->started && !j->r.frontend)
        aloft_update_abort(writer(a, j));
    j->started = j->vetted = false;
    j->done = j->head_len = 0;
    j->etag[0] = 0;
    aloft_sha256_init(&j->sha);
    aloft_md5_init(&j->md5c);
    if (j->saved) {
        aloft_agent_put(a, "pull/offset", "0");
        j->saved = 0;
    }
}

/* The final response's headers are in: does it continue the body? */
static int validate(struct aloft_agent *a, struct aloft_pull *j)
{
    j->validated = true;
    if (j->status == 206) {
        if (!j->has_range || j->range_start != j->done) {
            aloft_agent_log(a, "pull: the server answered the range from %llu with another range; starting over",
                            (unsigned long long)j->done);
            start_over(a, j);
            j->restart = true;
            return -1;
        }
        j->total = j->range_total;
    } else if (j->status == 200) {
        if (j->done) {
            aloft_agent_log(a, "pull: the server sent the whole file instead of the rest (changed, or no Range "
                               "support); starting over");
            start_over(a, j);
        }
        j->total = j->resp_len;
        /* a patch: the check's answer says so, or the trigger did (every
         * retry of the job then asks for the patch) */
        j->delta = j->r.delta = a->delta && !j->r.frontend && (j->resp_delta || j->r.delta);
        if (!j->r.frontend) /* the update slot is this job's now: no patch upload resumes */
            aloft_push_delta_keep(a, false);
        if (j->delta)
            aloft_delta_update_begin(a->delta, a->boot, j->slot);
        if (!j->md5[0] && aloft_agent_is_hex(j->resp_md5, 32)) {
            memcpy(j->md5, j->resp_md5, sizeof j->md5);
            aloft_agent_lower(j->md5);
        }
    } else {
        return fail(j, "http_status", "the server answered %d, not 200 with the image", j->status);
    }
    if (!j->etag[0])
        snprintf(j->etag, sizeof j->etag, "%s", j->resp_etag);
    j->answered = true;
    if (j->check && j->status == 200) {
        /* aloftd's ETag is the file's SHA-256, and /firmware/<sha256>.bin
         * serves the same bytes with Range: resume there */
        char sha[65] = "";
        if (strlen(j->etag) == 66 && j->etag[0] == '"')
            memcpy(sha, j->etag + 1, 64);
        if (aloft_agent_is_hex(sha, 64)) {
            aloft_agent_lower(sha);
            if (!j->delta) /* a patch's result is checked against its own header */
                memcpy(j->r.sha256, sha, sizeof sha);
            char path[80];
            snprintf(path, sizeof path, "/firmware/%s.bin", sha);
            aloft_pull_server_url(a, path, j->r.url, sizeof j->r.url);
        }
        snprintf(j->r.version, sizeof j->r.version, "%s", j->resp_version);
    }
    if (j->status == 200) /* the body starts: a restart resumes it with this ETag and x-MD5 */
        save_job(a, j);
    if (!j->delta && j->r.size && j->total && j->total != j->r.size)
        return fail(j, "size_mismatch", "the server sends %llu bytes; the trigger says %llu",
                    (unsigned long long)j->total, (unsigned long long)j->r.size);
    if (j->total > j->slot->size)
        return fail(j, "too_large", "the body is %llu bytes; %s holds %u", (unsigned long long)j->total,
                    j->slot->label, (unsigned)j->slot->size);
    publish(a, j, ALOFT_PHASE_DOWNLOADING);
    return 0;
}

/* ---- the requests ---- */

/* Append one header line; one that does not fit is left out whole. */
static void add_header(struct aloft_pull_request *req, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add_header(struct aloft_pull_request *req, const char *fmt, ...)
{
    size_t len = strlen(req->headers);
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(req->headers + len, sizeof req->headers - len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof req->headers - len)
        req->headers[len] = 0;
}

int aloft_pull_request(struct aloft_agent *a, struct aloft_pull *j, struct aloft_pull_request *req)
{
    if (j->end != ALOFT_PULL_RUNNING)
        return 1;
    snprintf(req->url, sizeof req->url, "%s", j->url);
    req->user_agent = j->check ? "ESP32-http-Update" : "aloft";
    req->delay_ms = j->delay_ms;
    req->headers[0] = 0;
    if (j->check && !j->first_sent)
        add_header(req, "%s", j->text);
    j->first_sent = true;
    if (j->r.token[0])
        add_header(req, "Authorization: Bearer %s\r\n", j->r.token);
    if (j->done) {
        add_header(req, "Range: bytes=%llu-\r\n", (unsigned long long)j->done);
        if (j->etag[0])
            add_header(req, "If-Range: %s\r\n", j->etag);
        aloft_agent_log(a, "pull: resuming %s at byte %llu%s%s", j->url, (unsigned long long)j->done,
                        j->etag[0] ? " if still " : "", j->etag);
    }
    j->delay_ms = 0;
    j->status = 0;
    j->validated = j->restart = false;
    j->before = j->done;
    return 0;
}

void aloft_pull_head_begin(struct aloft_pull *j)
{
    j->resp_len = j->range_start = j->range_total = 0;
    j->has_range = j->resp_delta = false;
    j->resp_etag[0] = j->resp_md5[0] = j->resp_version[0] = 0;
}

/* A decimal number at *p (digits only); moves *p past it. */
static bool number(const char **p, uint64_t *out)
{
    if (**p < '0' || **p > '9')
        return false;
    char *end;
    *out = strtoull(*p, &end, 10);
    *p = end;
    return true;
}

/* Content-Range: bytes START-END/TOTAL */
static bool content_range(const char *v, uint64_t *start, uint64_t *total)
{
    uint64_t last;
    if (strncasecmp(v, "bytes ", 6))
        return false;
    v += 6;
    if (!number(&v, start) || *v++ != '-' || !number(&v, &last) || *v++ != '/')
        return false;
    return number(&v, total);
}

/* A header value without the line's end. */
static void copy_trimmed(char *out, size_t cap, const char *v)
{
    size_t n = strlen(v);
    while (n && (v[n - 1] == ' ' || v[n - 1] == '\t' || v[n - 1] == '\r' || v[n - 1] == '\n'))
        n--;
    snprintf(out, cap, "%.*s", (int)n, v);
}

void aloft_pull_header(struct aloft_pull *j, const char *name, const char *value)
{
    while (*value == ' ' || *value == '\t')
        value++;
    if (!strcasecmp(name, "Content-Length")) {
        number(&value, &j->resp_len);
    } else if (!strcasecmp(name, "Content-Range")) {
        j->has_range = content_range(value, &j->range_start, &j->range_total);
    } else if (!strcasecmp(name, "ETag")) {
        copy_trimmed(j->resp_etag, sizeof j->resp_etag, value);
    } else if (!strcasecmp(name, "x-MD5")) {
        copy_trimmed(j->resp_md5, sizeof j->resp_md5, value);
    } else if (!strcasecmp(name, "X-Aloft-Version")) {
        copy_trimmed(j->resp_version, sizeof j->resp_version, value);
    } else if (!strcasecmp(name, "Content-Type")) {
        j->resp_delta = !strncasecmp(value, DELTA_TYPE, strlen(DELTA_TYPE));
    }
}

int aloft_pull_head_end(struct aloft_agent *a, struct aloft_pull *j, int status)
{
    if (j->end != ALOFT_PULL_RUNNING)
        return -1;
    j->status = status;
    if (status != 200 && status != 206)
        return -1; /* no body wanted: aloft_pull_done tells what the status means */
    return validate(a, j);
}

int aloft_pull_body(struct aloft_agent *a, struct aloft_pull *j, const void *data, size_t len)
{
    if (j->end != ALOFT_PULL_RUNNING || j->code[0])
        return -1;
    if (!j->validated && validate(a, j))
        return -1;
    return take(a, j, data, len);
}

/* ---- the end of the job ---- */

/* The highest sequence number otadata holds, whatever its state: the
 * switch to a new image writes a higher one (a rollback keeps it). */
static uint32_t otadata_seq(const struct aloft_agent *a)
{
    struct aloft_otadata od;
    uint32_t top = 0;
    if (a->boot->otadata && aloft_otadata_read(a->boot->flash, a->boot->otadata, &od) == 0)
        for (int i = 0; i < 2; i++)
            if (od.e[i].seq != 0xFFFFFFFFu && od.e[i].crc == aloft_otadata_crc(od.e[i].seq) && od.e[i].seq > top)
                top = od.e[i].seq;
    return top;
}

/* What the outcome looks at after the restart. Returns 0 or an error. */
static int save_pending(struct aloft_agent *a, struct aloft_pull *j)
{
    const struct aloft_image_info *in = &writer(a, j)->v.info;
    if (!j->r.frontend && in->has_desc) /* a resumed job may not have seen the head */
        snprintf(j->r.version, sizeof j->r.version, "%s", in->desc.version);
    struct aloft_jw w;
    aloft_jw_begin(&w, j->text, sizeof j->text);
    aloft_jw_str(&w, "version", j->r.version);
    aloft_jw_str(&w, "trigger", j->r.trigger);
    aloft_jw_str(&w, "target", target_name(j->r.frontend));
    aloft_jw_str(&w, "slot", j->slot->label);
    aloft_jw_num(&w, "seq", otadata_seq(a));
    int rc = aloft_jw_end(&w);
    return rc < 0 ? rc : aloft_agent_put(a, "pull/pending", j->text);
}

/* Does the www slot hold a LittleFS image that mounts? 0, 1 (no) or a
 * flash error. */
static int www_check(struct aloft_agent *a, const struct aloft_part *p)
{
    int rc = a->port->www.check(a->port->www.ctx, p);
    return rc == 0 || rc == ALOFT_E_IO || rc == ALOFT_E_POWER ? rc : 1;
}

/* The body is in: check it whole, make it boot, restart. */
static int complete(struct aloft_agent *a, struct aloft_pull *j)
{
    struct aloft_update *u = writer(a, j);
    if (!j->started && !j->r.frontend && !j->delta &&
        (identify(a, j) || begin(a, j) || put(a, j, 0, j->head, j->head_len)))
        return -1;
    if (!j->started && j->r.frontend && begin(a, j))
        return -1;
    if (j->total && j->done != j->total)
        return fail(j, "truncated", "the body ended at byte %llu of %llu", (unsigned long long)j->done,
                    (unsigned long long)j->total);
    /* a trigger's size and SHA-256 name the image: a patch's result */
    uint8_t h[32];
    char hex[65];
    uint64_t size = j->done;
    aloft_sha256_final(&j->sha, h);
    int rc = j->delta ? aloft_delta_update_end(a->delta) : 0; /* the result's size and SHA-256 as its header says */
    if (rc)
        return image_fail(a, j, rc);
    if (j->delta) {
        size = a->delta->d.h.result_size;
        memcpy(h, a->delta->d.h.result_sha256, sizeof h);
    }
    if (j->r.size && size != j->r.size)
        return fail(j, "size_mismatch", "the image is %llu bytes; expected %llu", (unsigned long long)size,
                    (unsigned long long)j->r.size);
    aloft_agent_hex(h, 32, hex);
    if (j->r.sha256[0] && strcmp(hex, j->r.sha256))
        return fail(j, "bad_sha256", "the image's SHA-256 is %s; expected %s", hex, j->r.sha256);
    aloft_md5_final(&j->md5c, h);
    aloft_agent_hex(h, 16, hex);
    if (j->md5[0] && strcmp(hex, j->md5))
        return fail(j, "bad_md5", "the body's MD5 is %s; x-MD5 says %s", hex, j->md5);
    publish(a, j, ALOFT_PHASE_VERIFYING);
    rc = j->r.frontend ? www_check(a, j->slot) : j->delta ? 0 : aloft_update_end(u);
    const char *code = NULL;
    if (rc == 0)
        rc = aloft_agent_sig_check(a, j->slot->offset, (uint32_t)j->done, j->r.frontend ? NULL : &u->v.info, &code,
                                   j->reason, sizeof j->reason);
    if (rc == ALOFT_E_SIGNATURE && code) {
        snprintf(j->code, sizeof j->code, "%s", code);
        return -1;
    }
    if (rc == 0 && j->delta) /* applied: nothing to resume (a cut before the switch starts over) */
        aloft_push_delta_keep(a, false);
    if (rc == 0)
        rc = save_pending(a, j);
    if (rc == 0) {
        /* pending before the switch: power lost right after it still
         * leaves an outcome to report (the outcome sees whether it happened) */
        rc = j->r.frontend ? aloft_agent_put(a, "www/slot", j->slot == a->www[1] ? "1" : "0")
                           : aloft_update_set_boot(u);
        if (rc)
            aloft_agent_put(a, "pull/pending", NULL);
    }
    if (rc == 1)
        return fail(j, "not_littlefs", "the body is not a LittleFS image that mounts");
    if (rc)
        return image_fail(a, j, rc);
    if (j->r.frontend && (j->r.version[0] || j->r.sha256[0])) /* what a check names as its frontend */
        aloft_agent_put(a, "pull/www", j->r.version[0] ? j->r.version : j->r.sha256);
    clear_job(a);
    aloft_agent_log(a, "pull: %llu bytes%s verified into %s%s%s; restarting", (unsigned long long)j->done,
                    j->delta ? " of patch" : "", j->slot->label, j->r.version[0] ? ", version " : "", j->r.version);
    publish(a, j, ALOFT_PHASE_RESTARTING);
    j->end = ALOFT_PULL_INSTALLED;
    aloft_agent_restart(a); /* busy stays: nothing else starts now */
    return 0;
}

enum verdict { COMPLETE, FAILED, NOTHING, RETRY };

/* Did the attempt that ended bring something a retry keeps: bytes, or for
 * a patch a checkpoint further on? */
static bool progressed(struct aloft_agent *a, struct aloft_pull *j)
{
    if (!j->delta)
        return j->done > j->before;
    uint32_t ck, out;
    aloft_delta_checkpoint(&a->delta->d, &ck, &out);
    bool on = ck > j->ck;
    j->ck = ck;
    return on;
}

/* A patch whose download dropped goes on from a checkpoint of the decoder
 * (its header again, then Range from there; the bytes in the slot are
 * verified again), else from its start. */
static void resume_patch(struct aloft_agent *a, struct aloft_pull *j, uint32_t ck, uint32_t out)
{
    j->delta = j->r.delta = true;
    if (ck && j->etag[0]) {
        aloft_delta_update_resume(a->delta, a->boot, j->slot, ck, out);
        if (aloft_delta_update_write(a->delta, a->dck.header, ALOFT_DELTA_HEADER_BYTES) == 0) {
            j->done = ck;
            j->started = true;
            j->md5[0] = 0; /* the body's digest misses what is not sent again; the result's is checked */
            return;
        }
    }
    start_over(a, j);
}

/* What a transfer that ended means (aloft-node's download loop). */
static enum verdict judge(struct aloft_agent *a, struct aloft_pull *j, enum aloft_net result, const char *err)
{
    int st = j->status;
    bool whole = result == ALOFT_NET_OK || (result == ALOFT_NET_STOPPED && !j->restart);
    bool http_error = st >= 400;
    if (j->code[0])
        return FAILED;
    if (whole && (st == 200 || st == 206) && j->validated)
        return COMPLETE;
    if (whole && st == 200) /* an empty body */
        return validate(a, j) ? FAILED : COMPLETE;
    /* a check that got no image: nothing to do, or nothing it can do */
    if (j->check && !j->answered && result != ALOFT_NET_TLS) {
        if (whole || http_error)
            aloft_agent_log(a, "pull: check: %s answered %d%s", j->url, st, st == 304 ? " (nothing to do)" : "");
        else
            aloft_agent_log(a, "pull: check: %s: %s", j->url, err);
        return NOTHING;
    }
    char code[32];
    snprintf(code, sizeof code, "http_%d", st);
    if (result == ALOFT_NET_TLS)
        fail(j, "tls", "%s: %s", j->url, err);
    else if (whole && !http_error)
        fail(j, "http_status", "%s answered %d, not 200 with the image", j->url, st);
    else if (result == ALOFT_NET_REDIRECT)
        fail(j, "redirect", "%s: %s", j->url, err);
    else if (http_error && st < 500 && st != 408 && st != 429)
        fail(j, code, "%s answered %d", j->url, st);
    if (j->code[0])
        return FAILED;
    j->stalls = j->restart ? j->stalls : progressed(a, j) ? 0 : j->stalls + 1;
    if (j->stalls < ALOFT_PULL_MAX_STALLS)
        return RETRY;
    if (http_error)
        fail(j, code, "%s answered %d, %u times in a row", j->url, st, j->stalls);
    else if (j->done)
        fail(j, "truncated", "the download stopped at byte %llu of %llu %u times in a row: %s",
             (unsigned long long)j->done, (unsigned long long)j->total, j->stalls, err);
    else
        fail(j, "unreachable", "%s: %s", j->url, err);
    return FAILED;
}

/* The glue's words for a transfer's end when it has none. */
static const char *const net_words[] = {
    [ALOFT_NET_OK] = "the transfer ended",         [ALOFT_NET_DROPPED] = "the connection dropped",
    [ALOFT_NET_TLS] = "the TLS handshake failed",  [ALOFT_NET_REDIRECT] = "a redirect was refused",
    [ALOFT_NET_STOPPED] = "the transfer was stopped",
};

void aloft_pull_done(struct aloft_agent *a, struct aloft_pull *j, enum aloft_net result, int status,
                     const char *detail)
{
    if (j->end != ALOFT_PULL_RUNNING)
        return;
    if (!j->status)
        j->status = status;
    char err[128];
    if (detail && detail[0])
        snprintf(err, sizeof err, "%s", detail);
    else if (j->status >= 400)
        snprintf(err, sizeof err, "the server answered %d", j->status);
    else
        snprintf(err, sizeof err, "%s",
                 (unsigned)result < sizeof net_words / sizeof *net_words ? net_words[result] : "the transfer failed");
    switch (judge(a, j, result, err)) {
    case COMPLETE:
        if (complete(a, j))
            job_failed(a, j);
        break;
    case FAILED:
        job_failed(a, j);
        break;
    case NOTHING:
        a->busy = false;
        j->end = ALOFT_PULL_NOTHING;
        break;
    case RETRY:
        aloft_agent_log(a, "pull: the download stopped at byte %llu of %llu (%s); retrying",
                        (unsigned long long)j->done, (unsigned long long)j->total, err);
        j->delay_ms = j->stalls ? 250u << (j->stalls - 1 < 4 ? j->stalls - 1 : 4) : 100u;
        snprintf(j->url, sizeof j->url, "%s", j->r.url);
        if (j->delta) {
            uint32_t ck, out;
            aloft_delta_checkpoint(&a->delta->d, &ck, &out);
            resume_patch(a, j, ck, out);
        }
        break;
    }
}

void aloft_pull_abort(struct aloft_agent *a, struct aloft_pull *j, const char *code, const char *reason)
{
    if (j->end != ALOFT_PULL_RUNNING)
        return;
    fail(j, code, "%s", reason);
    job_failed(a, j);
}

int aloft_pull_result(const struct aloft_pull *j)
{
    switch (j->end) {
    case ALOFT_PULL_INSTALLED:
        return 0;
    case ALOFT_PULL_NONE:
    case ALOFT_PULL_NOTHING:
        return 1;
    }
    return -1;
}

/* ---- after a restart ---- */

void aloft_pull_outcome(struct aloft_agent *a, bool confirmed)
{
    struct aloft_agent_state s = {0};
    char slot[ALOFT_PART_LABEL_MAX + 1], target[16];
    char p[PENDING_MAX]; /* pull/pending, then the report */
    aloft_agent_get(a, "pull/pending", p, sizeof p);
    size_t len = strlen(p);
    if (!len || !aloft_json_is_object(p, len))
        return;
    json_str(p, len, "version", s.version, sizeof s.version);
    json_str(p, len, "trigger", s.trigger, sizeof s.trigger);
    json_str(p, len, "target", target, sizeof target);
    json_str(p, len, "slot", slot, sizeof slot);
    uint64_t seq = 0;
    struct aloft_json_val v = aloft_json_get(p, len, "seq");
    bool has_seq = aloft_json_uint(&v, &seq) == 0;
    s.frontend = !strcmp(target, "frontend");
    const char *running = a->app.has_desc ? a->app.desc.version : "";
    bool switched, there;
    if (s.frontend) {
        switched = a->www[0] && !strcmp(a->www[a->www_slot]->label, slot);
        there = switched && a->www_ok;
    } else {
        switched = !has_seq || otadata_seq(a) > seq;
        there = !strcmp(a->boot->running->label, slot) && !strcmp(running, s.version);
    }
    if (!there && !switched) {
        /* power lost between saving this and the switch: the job resumes */
        aloft_agent_put(a, "pull/pending", NULL);
        aloft_agent_log(a, "pull: %s was verified in %s but the device restarted before switching to it", s.version,
                        slot);
        return;
    }
    /* marked valid already: the power went between the confirm and its report */
    confirmed = confirmed || aloft_boot_state(a->boot) == ALOFT_OTA_VALID;
    if (there && !s.frontend && !confirmed) {
        /* the new image runs but has not confirmed itself yet */
        s.phase = ALOFT_PHASE_VERIFYING;
        snprintf(s.reason, sizeof s.reason, "%s runs; waiting for it to mark itself valid", s.version);
        aloft_agent_set_state(a, &s);
        return;
    }
    if (there) {
        s.phase = ALOFT_PHASE_UPDATED;
        aloft_agent_log(a, "pull: updated: %s %s is running%s%s%s", target_name(s.frontend), s.version,
                        s.trigger[0] ? " (trigger " : "", s.trigger, s.trigger[0] ? ")" : "");
    } else if (s.frontend) {
        s.phase = ALOFT_PHASE_FAILED;
        snprintf(s.code, sizeof s.code, "not_littlefs");
        snprintf(s.reason, sizeof s.reason, "the new frontend in %s did not mount; the old one is served", slot);
    } else {
        s.phase = ALOFT_PHASE_ROLLED_BACK;
        snprintf(s.code, sizeof s.code, "rolled_back");
        snprintf(s.reason, REASON_MAX, "%s did not come up in %s; back on %s %s (reset reason %s)", s.version,
                 slot, a->boot->running->label, running, a->reset_reason);
        aloft_agent_log(a, "pull: rolled back: %s", s.reason);
        aloft_agent_put(a, "pull/rolled_back", s.version);
        /* the switch happened: a job still kept (power lost before it was
         * cleared) would only install the same image again */
        if (!a->busy)
            clear_job(a);
    }
    int kept = aloft_agent_put(a, "pull/pending", NULL);
    aloft_agent_set_state(a, &s);
    /* the update server's reports are about firmware, and each is sent
     * once: while pull/pending stays, the next boot tells again */
    if (!s.frontend && !kept)
        report(a, s.phase == ALOFT_PHASE_UPDATED ? "updated" : "rolled_back",
               s.phase == ALOFT_PHASE_UPDATED ? "" : s.reason, s.version, p, sizeof p);
}

/* Continue an interrupted job where flash says. Returns 1 when j runs. */
static int resume_job(struct aloft_agent *a, struct aloft_pull *j)
{
    aloft_pull_init(j, NULL);
    struct aloft_pull_req *r = &j->r;
    if (a->busy)
        return 0;
    char target[16], slot[ALOFT_PART_LABEL_MAX + 1], off[24];
    aloft_agent_get(a, "pull/job", j->text, sizeof j->text);
    aloft_agent_get(a, "pull/url", r->url, sizeof r->url);
    aloft_agent_get(a, "pull/token", r->token, sizeof r->token);
    aloft_agent_get(a, "pull/offset", off, sizeof off);
    const char *t = j->text;
    size_t len = strlen(t);
    if (!len || !aloft_json_is_object(t, len) || !r->url[0]) {
        /* saved or cleared in part when the power went: nothing to resume */
        if (len || r->url[0] || r->token[0] || off[0])
            clear_job(a);
        return 0;
    }
    json_str(t, len, "version", r->version, sizeof r->version);
    json_str(t, len, "sha256", r->sha256, sizeof r->sha256);
    json_str(t, len, "trigger", r->trigger, sizeof r->trigger);
    json_str(t, len, "target", target, sizeof target);
    json_str(t, len, "slot", slot, sizeof slot);
    json_str(t, len, "etag", j->etag, sizeof j->etag);
    json_str(t, len, "md5", j->md5, sizeof j->md5);
    struct aloft_json_val v = aloft_json_get(t, len, "size");
    if (aloft_json_uint(&v, &r->size))
        r->size = 0;
    v = aloft_json_get(t, len, "check");
    j->check = j->answered = v.type == ALOFT_JSON_BOOL && v.truth;
    v = aloft_json_get(t, len, "delta");
    bool patch = a->delta && v.type == ALOFT_JSON_BOOL && v.truth;
    j->first_sent = true; /* a check's own headers went with its first request */
    r->frontend = !strcmp(target, "frontend");
    snprintf(j->url, sizeof j->url, "%s", r->url);
    uint64_t at = strtoull(off, NULL, 10);
    a->busy = true;
    j->slot = aloft_part_find_label(&a->boot->table, slot);
    if (j->slot && j->slot == a->boot->running) {
        /* it was complete and made the boot image just before the power went */
        aloft_agent_log(a, "pull: the download into %s had completed; it runs now", slot);
        clear_job(a);
        a->busy = false;
        return 0;
    }
    const struct aloft_part *want = aloft_pull_target(a, j);
    if (!j->slot || j->slot != want) {
        fail(j, "restarted", "the device restarted into another slot; the download is abandoned");
        job_failed(a, j);
        return 0;
    }
    int rc = 0;
    if (patch) /* from the checkpoint this job kept, else from its start */
        resume_patch(a, j, a->delta_ck && a->dck.owner == ALOFT_PULL_CK_OWNER ? a->dck.patch : 0, a->dck.out);
    else if (at && at <= j->slot->size) {
        const struct aloft_flash *f = a->port->flash;
        rc = r->frontend ? aloft_flash_erase(f, j->slot->offset + (uint32_t)at, j->slot->size - (uint32_t)at)
                         : aloft_update_resume(&j->u, a->boot, j->slot, (uint32_t)at);
        /* what the flash holds counts into the body's digests (j->text is free now) */
        for (uint64_t pos = 0; rc == 0 && pos < at; pos += sizeof j->text) {
            size_t n = at - pos < sizeof j->text ? (size_t)(at - pos) : sizeof j->text;
            rc = aloft_flash_read(f, j->slot->offset + (uint32_t)pos, j->text, n);
            aloft_sha256_update(&j->sha, j->text, n);
            aloft_md5_update(&j->md5c, j->text, n);
        }
        if (rc == 0) {
            j->started = true;
            j->done = j->saved = at;
        } else {
            aloft_agent_log(a, "pull: the %llu bytes in %s do not verify (%s); starting over", (unsigned long long)at,
                            slot, aloft_strerror(rc));
            j->saved = at; /* what pull/offset says: start_over resets it */
            start_over(a, j);
        }
    }
    aloft_agent_log(a, "pull: resuming the %s download of %s at byte %llu%s%s", target_name(r->frontend), r->url,
                    (unsigned long long)j->done, r->trigger[0] ? " for trigger " : "", r->trigger);
    publish(a, j, ALOFT_PHASE_DOWNLOADING);
    j->end = ALOFT_PULL_RUNNING;
    return 1;
}

int aloft_pull_boot(struct aloft_agent *a, struct aloft_pull *j)
{
    aloft_pull_outcome(a, false);
    return resume_job(a, j);
}
