/* aloft agent: the device HTTP API (PROTOCOLS.md §1, §2; push.h). Uploads
 * stream straight into the update writer or the inactive www slot, chunk by
 * chunk, so memory does not grow with the image; the frontend's own
 * endpoints and files are in www.c. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "agent_private.h"
#include "aloft/err.h"
#include "push_private.h"

#define JSON "application/json"
#define DELTA "application/x-aloft-delta"

void aloft_push_json(struct aloft_push *p, struct aloft_push_reply *reply, int status, int len)
{
    if (len < 0) { /* did not fit: a buffer below the 1 KB push.h asks for */
        status = 500;
        len = snprintf(p->buf, p->cap, "{\"status\":\"error\",\"error\":\"no_space\",\"message\":\"%s\"}",
                       "the reply does not fit its buffer");
        len = len < (int)p->cap ? len : 0;
    }
    reply->status = status;
    reply->content_type = "application/json";
    reply->body = p->buf;
    reply->len = (size_t)len;
}

void aloft_push_error(struct aloft_push *p, struct aloft_push_reply *reply, int status, const char *code,
                      const char *message)
{
    p->code = code; /* kept for a way in that answers in text (espota.c) */
    if (message != p->message)
        snprintf(p->message, sizeof p->message, "%s", message);
    struct aloft_jw w;
    aloft_jw_begin(&w, p->buf, p->cap);
    aloft_jw_str(&w, "status", "error");
    aloft_jw_str(&w, "error", code);
    aloft_jw_str(&w, "message", message);
    aloft_push_json(p, reply, status, aloft_jw_end(&w));
}

/* Bearer PSK, compared in constant time. "": allowed; else why not. */
static const char *auth_error(const struct aloft_agent *a, const struct aloft_push_request *r)
{
    if (!a->psk[0])
        return a->open ? "" : "this device takes no update until a PSK is provisioned (setting security/ota_psk)";
    const char *h = r->authorization;
    if (!h || strncasecmp(h, "Bearer ", 7))
        return "missing Authorization: Bearer <psk>";
    const char *given = h + 7;
    size_t gl = strlen(given), pl = strlen(a->psk);
    unsigned diff = (unsigned)(gl ^ pl);
    for (size_t i = 0; i < pl; i++)
        diff |= (unsigned char)a->psk[i] ^ (unsigned char)(i < gl ? given[i] : 0);
    return diff ? "wrong PSK" : "";
}

/* Did a browser send this from a page of another origin? It says so in
 * Sec-Fetch-Site, or in an Origin that is not http(s)://<Host> ("null"
 * included); a client that is no browser sends neither. */
static bool cross_site(const struct aloft_push_request *r)
{
    if (r->fetch_site && !strcmp(r->fetch_site, "cross-site"))
        return true;
    const char *o = r->origin;
    if (!o)
        return false;
    o += !strncmp(o, "http://", 7) ? 7 : !strncmp(o, "https://", 8) ? 8 : 0;
    return o == r->origin || !r->host || strcasecmp(o, r->host);
}

/* A request that changes the device: same origin, authorised, of the one
 * content type the endpoint takes (refused with why). Fills *reply on a
 * refusal. */
static bool may_change(struct aloft_agent *a, struct aloft_push *p, const struct aloft_push_request *r,
                       const char *type, const char *why_type, struct aloft_push_reply *reply)
{
    const char *why = auth_error(a, r);
    if (cross_site(r)) {
        aloft_push_error(p, reply, 403, "cross_site", "refused: a page of another site sent this request");
    } else if (*why) {
        aloft_push_error(p, reply, 401, "unauthorized", why);
    } else if (!r->content_type || strncasecmp(r->content_type, type, strlen(type))) {
        aloft_push_error(p, reply, 415, "unsupported_media_type", why_type);
    } else {
        return true;
    }
    return false;
}

static void refuse(struct aloft_push *p, int status, const char *code, const char *message)
{
    p->status = status;
    p->code = code;
    snprintf(p->message, sizeof p->message, "%s", message);
}

/* An error from the update writer, the flash or the settings: the HTTP
 * status, code and message of the refusal. */
static void classify(const struct aloft_agent *a, struct aloft_push *p, int err)
{
    static const struct {
        int err;
        int status;
        const char *code;
    } map[] = {
        {ALOFT_E_MAGIC, 400, "bad_magic"},       {ALOFT_E_SEGMENTS, 400, "bad_segments"},
        {ALOFT_E_SEGMENT, 400, "bad_segment"},   {ALOFT_E_HEADER, 400, "bad_header"},
        {ALOFT_E_CHECKSUM, 400, "bad_checksum"}, {ALOFT_E_HASH, 400, "bad_sha256"},
        {ALOFT_E_TRUNCATED, 400, "truncated"},   {ALOFT_E_TRAILING, 400, "trailing_data"},
        {ALOFT_E_CHIP, 422, "wrong_chip"},       {ALOFT_E_ESP8266, 422, "wrong_chip"},
        {ALOFT_E_NOSPC, 413, "too_large"},       {ALOFT_E_STATE, 409, "pending_verify"},
        {ALOFT_E_SIGNATURE, 422, "bad_signature"}, {ALOFT_E_BASE, 422, "wrong_base"},
        {ALOFT_E_CORRUPT, 400, "bad_patch"},
    };
    p->status = 500;
    p->code = "flash_error";
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].err == err)
            p->status = map[i].status, p->code = map[i].code;
    aloft_agent_why(a, err, p->message, sizeof p->message);
}

/* Checks that need only the headers; fills *reply on a refusal. */
static bool preflight(struct aloft_agent *a, struct aloft_push *p, const struct aloft_push_request *r,
                      bool delta, struct aloft_push_reply *reply)
{
    if (delta) {
        if (!may_change(a, p, r, DELTA, "send a patch as " DELTA, reply))
            return false;
        if (!a->delta) {
            aloft_push_error(p, reply, 415, "unsupported_media_type",
                             "this device takes no patches: send the image as application/octet-stream");
            return false;
        }
    } else if (!may_change(a, p, r, "application/octet-stream",
                    "send it as application/octet-stream: curl --data-binary @fw.bin -H 'Content-Type: "
                    "application/octet-stream' (curl -d strips newlines and corrupts binaries)",
                    reply))
        return false;
    if (r->content_length < 0) {
        aloft_push_error(p, reply, 411, "length_required",
                         "Content-Length is required (chunked uploads are not accepted)");
        return false;
    }
    return true;
}

/* The update writer of a firmware upload: the request's own, or for a patch
 * the one the delta decoder writes through. */
static struct aloft_update *writer(struct aloft_agent *a, struct aloft_push *p)
{
    return p->kind == KIND_DELTA ? &a->delta->u : &p->u;
}

int aloft_push_upload_begin(struct aloft_agent *a, struct aloft_push *p, bool frontend, uint64_t len,
                            struct aloft_push_reply *reply)
{
    if (p->kind != KIND_DELTA)
        p->kind = frontend ? KIND_FRONTEND : KIND_FIRMWARE;
    uint32_t room = 0;
    if (!frontend) {
        const struct aloft_part *next = aloft_part_next_update(&a->boot->table, a->boot->running);
        room = next ? next->size : 0;
    } else if (aloft_agent_www_inactive(a) >= 0) {
        room = a->www[aloft_agent_www_inactive(a)]->size;
    } else {
        aloft_push_error(p, reply, 404, "no_frontend_slots", aloft_agent_no_www);
        return 1;
    }
    p->expected = len;
    if (p->expected > room) {
        char m[160];
        snprintf(m, sizeof m, "the body is %llu bytes; the update slot holds %u", (unsigned long long)p->expected,
                 (unsigned)room);
        aloft_push_error(p, reply, 413, "too_large", m);
        return 1;
    }
    if (p->expected == 0) {
        aloft_push_error(p, reply, 400, "empty", "the body is empty: send the image");
        return 1;
    }
    if (a->busy) {
        aloft_push_error(p, reply, 409, "busy", aloft_agent_busy);
        return 1;
    }
    a->busy = p->holds = true;
    int rc = 0;
    uint32_t at = (uint32_t)p->received; /* ble.c resumes: bytes already in the slot */
    if (!p->resume)
        aloft_push_delta_keep(a, false); /* the slot is rewritten: nothing to resume any more */
    if (p->kind == KIND_DELTA && p->resume) {
        /* the header again, then the patch from the checkpoint; the base and the
         * result's first bytes are checked again before anything is written */
        aloft_delta_update_resume(a->delta, a->boot, NULL, a->dck.patch, a->dck.out);
    } else if (p->kind == KIND_DELTA) {
        /* nothing is erased until the patch's header names the running image */
        aloft_delta_update_begin(a->delta, a->boot, NULL);
    } else if (!frontend) {
        rc = at ? aloft_update_resume(&p->u, a->boot, NULL, at) : aloft_update_begin(&p->u, a->boot, NULL);
    } else {
        p->slot = a->www[aloft_agent_www_inactive(a)];
        rc = aloft_flash_erase(a->port->flash, p->slot->offset + at, p->slot->size - at);
    }
    if (rc) {
        classify(a, p, rc);
        aloft_push_error(p, reply, p->status, p->code, p->message);
        return 1;
    }
    p->started = true;
    return 0;
}

void aloft_push_delta_keep(struct aloft_agent *a, bool keep)
{
    const struct aloft_settings *s = &a->port->settings;
    if (keep)
        s->set(s->ctx, "delta/ck", &a->dck, sizeof a->dck);
    else if (a->delta_ck)
        s->del(s->ctx, "delta/ck");
    a->delta_ck = keep;
}

/* The decoder's checkpoint as the patch's resume point, once it is at least
 * `ahead` patch bytes past the one kept (a dropped link: any newer one). */
void aloft_push_delta_checkpoint(struct aloft_agent *a, uint32_t owner, uint32_t ahead)
{
    struct aloft_delta *d = &a->delta->d;
    uint32_t ck_patch, ck_out;
    aloft_delta_checkpoint(d, &ck_patch, &ck_out);
    if (!ck_out || !d->h.result_size || ck_patch < (a->delta_ck ? a->dck.patch : 0) + ahead)
        return;
    a->dck.patch = ck_patch, a->dck.out = ck_out, a->dck.owner = owner;
    aloft_push_delta_keep(a, true);
    aloft_agent_log(a, "delta: patch checkpoint kept: it can resume at byte %u (%u bytes written)", (unsigned)ck_patch,
                    (unsigned)ck_out);
}

static void upload_body(struct aloft_agent *a, struct aloft_push *p, const void *data, size_t len)
{
    if (p->status)
        return; /* refused already: the rest of the body is discarded */
    int rc;
    if (p->kind == KIND_DELTA && !p->resume && p->received < ALOFT_DELTA_HEADER_BYTES) {
        /* kept for a resume: one delta update at a time, and no checkpoint is kept meanwhile */
        size_t n = ALOFT_DELTA_HEADER_BYTES - p->received < len ? ALOFT_DELTA_HEADER_BYTES - p->received : len;
        memcpy(a->dck.header + p->received, data, n);
    }
    if (p->resume && p->received < ALOFT_DELTA_HEADER_BYTES) {
        /* a resumed patch must be the interrupted one */
        size_t n = ALOFT_DELTA_HEADER_BYTES - p->received < len ? ALOFT_DELTA_HEADER_BYTES - p->received : len;
        if (memcmp(data, a->dck.header + p->received, n)) {
            refuse(p, 409, "cannot_resume", "not the patch whose upload dropped: send the whole patch");
            return;
        }
    }
    if (p->kind == KIND_FIRMWARE || p->kind == KIND_DELTA) {
        struct aloft_update *u = writer(a, p);
        /* checked once, when the head is in (a patch's writer starts after its header) */
        bool known = u->state != 0 && aloft_image_ident_ready(&u->v);
        rc = p->kind == KIND_DELTA ? aloft_delta_update_write(a->delta, data, len) : aloft_update_write(u, data, len);
        if (rc == 0 && !known && u->state != 0 && aloft_image_ident_ready(&u->v) &&
            !aloft_agent_secure_version_ok(a, &u->v.info, p->message, sizeof p->message)) {
            p->status = 422;
            p->code = "secure_version";
            aloft_update_abort(u);
            return;
        }
    } else if (p->received + len > p->expected) { /* past Content-Length: never past the slot */
        rc = ALOFT_E_NOSPC;
    } else {
        rc = aloft_flash_write(a->port->flash, p->slot->offset + (uint32_t)p->received, data, len);
    }
    if (rc) {
        classify(a, p, rc);
        if (p->kind != KIND_FRONTEND)
            aloft_update_abort(writer(a, p));
        return;
    }
    p->received += len;
    if (p->kind == KIND_DELTA)
        aloft_push_delta_checkpoint(a, p->owner, ALOFT_DELTA_SAVE_EVERY);
}

/* Not inlined: its reply buffers would sit on the stack under the signature
 * check too (the agent's entry points have 2 KB). */
static void firmware_ok(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply)
    __attribute__((noinline));
static void firmware_ok(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply)
{
    const struct aloft_update *u = writer(a, p);
    const struct aloft_image_info *in = &u->v.info;
    char sha[65];
    aloft_agent_hex(in->sha256, 32, sha);
    struct aloft_jw w;
    aloft_jw_begin(&w, p->buf, p->cap);
    aloft_jw_str(&w, "status", "ok");
    aloft_jw_str(&w, "message", "OTA update successful. Rebooting...");
    aloft_jw_str(&w, "partition", u->target->label);
    aloft_jw_str(&w, "version", in->has_desc ? in->desc.version : "");
    aloft_jw_str(&w, "sha256", in->hash_appended ? sha : "");
    if (p->kind == KIND_DELTA)
        aloft_jw_num(&w, "image_bytes", u->written);
    aloft_push_json(p, reply, 200, aloft_jw_end(&w));
    aloft_agent_log(a, "ota: %llu bytes%s verified into %s, version %s; rebooting", (unsigned long long)p->received,
                    p->kind == KIND_DELTA ? " of patch" : "", u->target->label, in->has_desc ? in->desc.version : "?");
}

static void frontend_ok(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply)
{
    struct aloft_jw w;
    aloft_jw_begin(&w, p->buf, p->cap);
    aloft_jw_str(&w, "status", "ok");
    aloft_jw_str(&w, "message", "Frontend update successful. Rebooting...");
    aloft_jw_str(&w, "partition", p->slot->label);
    aloft_jw_num(&w, "active_slot", p->slot == a->www[1]);
    aloft_push_json(p, reply, 200, aloft_jw_end(&w));
    aloft_agent_log(a, "ota: frontend %llu bytes into %s; rebooting", (unsigned long long)p->received,
                    p->slot->label);
}

static void upload_end(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply)
{
    int rc = 0;
    const char *code = NULL;
    if (p->kind == KIND_DELTA && a->delta->d.h.result_size)
        aloft_push_delta_keep(a, false); /* applied or refused: nothing to resume (a resume with
                                          * another patch's header never reached the decoder) */
    if (!p->status && p->kind != KIND_FRONTEND) {
        struct aloft_update *u = writer(a, p);
        rc = p->kind == KIND_DELTA ? aloft_delta_update_end(a->delta) : aloft_update_end(u);
        if (rc == 0)
            rc = aloft_agent_sig_check(a, u->target->offset, 0, &u->v.info, &code, p->message, sizeof p->message);
        if (rc == 0)
            rc = aloft_update_set_boot(u);
        if (rc)
            aloft_update_abort(u);
    } else if (!p->status) {
        rc = aloft_agent_sig_check(a, p->slot->offset, (uint32_t)p->received, NULL, &code, p->message,
                                   sizeof p->message);
        if (rc == 0)
            rc = aloft_www_commit(a, p->slot);
        if (rc == 1)
            refuse(p, 400, "not_littlefs", "the body is not a LittleFS image that mounts (make one with aloft mkfs)");
    }
    if (rc == ALOFT_E_SIGNATURE && code)
        p->status = 422, p->code = code;
    else if (rc < 0)
        classify(a, p, rc);
    p->started = false; /* finished either way: aloft_push_abort has nothing to drop */
    if (p->status) {
        aloft_agent_log(a, "ota: refused: %s (%s)", p->code, p->message);
        aloft_push_error(p, reply, p->status, p->code, p->message);
        return;
    }
    if (p->kind != KIND_FRONTEND)
        firmware_ok(a, p, reply);
    else
        frontend_ok(a, p, reply);
    aloft_agent_restart(a);
}

/* POST /api/ota/pull once its body is in: the glue runs a trigger that
 * parses (reply->start_pull). */
static void pull_end(struct aloft_push *p, struct aloft_push_reply *reply)
{
    char why[200];
    if (p->trigger_len >= sizeof p->trigger)
        aloft_push_error(p, reply, 413, "too_large", "a trigger is at most 2 KB of JSON");
    else if (aloft_trigger_parse(p->trigger, p->trigger_len, &p->pull, why, sizeof why))
        aloft_push_error(p, reply, 400, "bad_trigger", why);
    else
        reply->start_pull = true;
}

void aloft_push_pull_reply(struct aloft_agent *a, struct aloft_push *p, int rc, const struct aloft_pull *job,
                           struct aloft_push_reply *reply)
{
    (void)a;
    memset(reply, 0, sizeof *reply);
    if (rc == ALOFT_E_BUSY) {
        aloft_push_error(p, reply, 409, "busy", aloft_agent_busy);
    } else if (rc == ALOFT_E_STATE) {
        aloft_push_error(p, reply, 409, "already_handled", "a trigger with this id was handled already");
    } else if (rc) {
        aloft_push_error(p, reply, strcmp(job->code, "pending_verify") ? 422 : 409, job->code, job->reason);
    } else {
        struct aloft_jw w;
        aloft_jw_begin(&w, p->buf, p->cap);
        aloft_jw_str(&w, "status", "accepted");
        aloft_jw_str(&w, "trigger", p->pull.trigger);
        aloft_jw_str(&w, "message", "Downloading; follow GET /api/ota/state");
        aloft_push_json(p, reply, 202, aloft_jw_end(&w));
    }
}

int aloft_push_begin(struct aloft_agent *a, struct aloft_push *p, const struct aloft_push_request *r, char *buf,
                     size_t cap, struct aloft_push_reply *reply)
{
    memset(p, 0, sizeof *p);
    memset(reply, 0, sizeof *reply);
    p->buf = buf;
    p->cap = cap;
    const char *url = r->path;
    bool get = !strcmp(r->method, "GET") || !strcmp(r->method, "HEAD");
    bool post = !strcmp(r->method, "POST");
    if (post && (!strcmp(url, "/ota") || !strcmp(url, "/api/ota/frontend"))) {
        bool delta = !strcmp(url, "/ota") && r->content_type && !strncasecmp(r->content_type, DELTA, strlen(DELTA));
        if (!preflight(a, p, r, delta, reply))
            return 1;
        if (delta) {
            p->kind = KIND_DELTA;
            /* "; resume=N": the rest of a patch whose link dropped (GET /ota/status's delta_resume) */
            const char *rs = strstr(r->content_type, "resume=");
            if (rs && (!a->delta_ck || strtoul(rs + 7, NULL, 10) != a->dck.patch)) {
                aloft_push_error(p, reply, 409, "cannot_resume",
                                 "nothing to resume at that offset: send the whole patch");
                return 1;
            }
            p->resume = rs ? a->dck.patch : 0;
        }
        return aloft_push_upload_begin(a, p, strcmp(url, "/ota") != 0, (uint64_t)r->content_length, reply);
    }
    if (post && !strcmp(url, "/api/ota/pull")) {
        if (!may_change(a, p, r, JSON, "send it as " JSON, reply))
            return 1;
        p->kind = KIND_PULL;
        return 0;
    }
    if (get && !strcmp(url, "/ota/status")) {
        aloft_push_json(p, reply, 200, aloft_agent_status_json(a, buf, cap));
    } else if (get && !strcmp(url, "/api/ota/status")) {
        aloft_www_status(a, p, reply);
    } else if (get && !strcmp(url, "/api/ota/state")) {
        aloft_push_json(p, reply, 200, aloft_agent_state_json(a, NULL, NULL, buf, cap));
    } else if (post && !strcmp(url, "/api/ota/frontend/rollback")) {
        if (may_change(a, p, r, JSON, "send it as " JSON, reply))
            aloft_www_rollback(a, p, reply);
    } else if (!strcmp(url, "/ota") || !strncmp(url, "/api/", 5)) {
        aloft_push_error(p, reply, 405, "method_not_allowed", "wrong method for this endpoint");
    } else if (get) {
        aloft_www_file(a, p, r, reply);
    } else {
        aloft_push_error(p, reply, 405, "method_not_allowed", "only GET and HEAD are served here");
    }
    return 1;
}

void aloft_push_body(struct aloft_agent *a, struct aloft_push *p, const void *data, size_t len)
{
    if (p->kind == KIND_FIRMWARE || p->kind == KIND_FRONTEND || p->kind == KIND_DELTA) {
        upload_body(a, p, data, len);
    } else if (p->kind == KIND_PULL) {
        /* past the limit only the length is kept: pull_end refuses it */
        if (p->trigger_len + len < sizeof p->trigger)
            memcpy(p->trigger + p->trigger_len, data, len);
        p->trigger_len += len;
    }
}

void aloft_push_end(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply)
{
    if (p->kind == KIND_REPLIED)
        return; /* aloft_push_begin's reply stands */
    memset(reply, 0, sizeof *reply);
    if (p->kind == KIND_PULL)
        pull_end(p, reply);
    else
        upload_end(a, p, reply);
}

void aloft_push_abort(struct aloft_agent *a, struct aloft_push *p)
{
    if (p->kind == KIND_DELTA && p->started) {
        /* keep where a new request can take the patch up again; a refused one is forgotten */
        if (!p->status)
            aloft_push_delta_checkpoint(a, p->owner, 1);
        else if (a->delta->d.h.result_size)
            aloft_push_delta_keep(a, false);
    }
    if ((p->kind == KIND_FIRMWARE || p->kind == KIND_DELTA) && p->started) {
        /* the client went away: otadata and the running image were never touched */
        aloft_update_abort(writer(a, p));
        aloft_agent_log(a, "ota: upload dropped after %llu bytes; nothing changed", (unsigned long long)p->received);
    }
    p->started = false;
    if (p->holds)
        a->busy = false;
    p->holds = false;
}

int aloft_push_read(struct aloft_agent *a, struct aloft_push *p, uint32_t off, void *buf, size_t len)
{
    if (!p->path[0])
        return ALOFT_E_STATE;
    return a->port->www.read(a->port->www.ctx, p->path, off, buf, len);
}
