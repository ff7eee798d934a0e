/* aloft agent: the BLE OTA service (ble.h, docs/ble.md). esp32-ble-ota's
 * protocol and the extended mode share Control and Data; both hand the
 * image to push.c's upload path, so it is checked as an HTTP upload is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_private.h"
#include "aloft/ble.h"
#include "aloft/crypto.h"
#include "push_private.h"

/* ATT errors (Bluetooth Core, Vol 3 Part F 3.4.1.1) */
#define ATT_READ 0x02    /* read not permitted */
#define ATT_WRITE 0x03   /* write not permitted */
#define ATT_LEN 0x0D     /* invalid attribute value length */
#define ATT_UNLIKELY 0x0E

/* Kept out of the entry points' frames: their buffers must not sit on the
 * stack under aloft_push_end's signature check (2 KB for the whole path). */
#define COLD __attribute__((noinline))

const uint8_t aloft_ble_uuid[1 + ALOFT_BLE_CHRS][16] = {
    {0xd6, 0xf1, 0xd9, 0x6d, 0x59, 0x4c, 0x4c, 0x53, 0xb1, 0xc6, 0x24, 0x4a, 0x1d, 0xfd, 0xe6, 0xd8},
    {0x7a, 0xd6, 0x71, 0xaa, 0x21, 0xc0, 0x46, 0xa4, 0xb7, 0x22, 0x27, 0x0e, 0x3a, 0xe3, 0xd8, 0x30},
    {0x23, 0x40, 0x88, 0x88, 0x1f, 0x40, 0x4c, 0xd8, 0x9b, 0x89, 0xca, 0x8d, 0x45, 0xf8, 0xa5, 0xb0},
    {0x15, 0x4a, 0x21, 0x2b, 0xcc, 0xbf, 0x4f, 0x0c, 0x97, 0xc4, 0x4d, 0x65, 0x78, 0xd0, 0x38, 0x8c},
};

static uint32_t le(const uint8_t *p, int n)
{
    uint32_t v = 0;
    while (n--)
        v = v << 8 | p[n];
    return v;
}

static void put(uint8_t *p, uint32_t v, int n)
{
    for (int i = 0; i < n; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

int aloft_ble_chr(const uint8_t uuid[16])
{
    for (int i = 0; i < ALOFT_BLE_CHRS; i++)
        if (!memcmp(uuid, aloft_ble_uuid[1 + i], 16))
            return i;
    return -1;
}

/* A notification on chr, when the central subscribed (Control's is also
 * its readable value). len is cut to what the MTU carries. */
static void notify(struct aloft_ble *b, int chr, const uint8_t *v, size_t len)
{
    if (len > (size_t)b->mtu - 3)
        len = (size_t)b->mtu - 3;
    if (chr == ALOFT_BLE_CONTROL) {
        b->last_len = (uint8_t)(len < sizeof b->last ? len : sizeof b->last);
        memcpy(b->last, v, b->last_len);
    }
    if (b->sub[chr] && b->notify)
        b->notify(b->ctx, chr, v, len);
}

static void say(struct aloft_ble *b, uint8_t op)
{
    notify(b, ALOFT_BLE_CONTROL, &op, 1);
}

/* op, then "code: message" (BEGIN_NAK, END_NAK) */
COLD static void refuse(struct aloft_ble *b, uint8_t op, const char *code, const char *message)
{
    uint8_t m[120];
    m[0] = op;
    int n = snprintf((char *)m + 1, sizeof m - 1, "%s: %s", code, message);
    notify(b, ALOFT_BLE_CONTROL, m, 1 + (size_t)(n < (int)sizeof m - 1 ? n : (int)sizeof m - 2));
}

/* What a patch's checkpoint is kept with (a->dck.owner): its SHA-256's. */
static uint32_t owner_of(const uint8_t sha[32])
{
    return le(sha, 4) | 1;
}

/* The saved job (ble/job "kind,size,slot,sha256", kind: the target, + 2 for
 * a patch): 0 and its fields, or -1. */
COLD static int saved_job(struct aloft_agent *a, uint8_t *target, uint32_t *size, uint8_t sha[32], uint32_t *slot,
                     uint32_t *offset)
{
    char s[100], *e;
    aloft_agent_get(a, "ble/job", s, sizeof s);
    unsigned long t = strtoul(s, &e, 10), z = *e == ',' ? strtoul(e + 1, &e, 10) : 0;
    *slot = *e == ',' ? (uint32_t)strtoul(e + 1, &e, 10) : 0;
    if (t > 2 || *e != ',' || !aloft_agent_is_hex(e + 1, 64))
        return -1;
    for (int i = 0; i < 32; i++) {
        char h[3] = {e[1 + 2 * i], e[2 + 2 * i], 0};
        sha[i] = (uint8_t)strtoul(h, NULL, 16);
    }
    *target = (uint8_t)t;
    *size = (uint32_t)z;
    aloft_agent_get(a, "ble/offset", s, sizeof s);
    *offset = (uint32_t)strtoul(s, NULL, 10) / ALOFT_BLE_SECTOR * ALOFT_BLE_SECTOR;
    if (t & 2) /* a patch resumes at its decoder's checkpoint (push.c keeps it), if this one's */
        *offset = a->delta_ck && a->dck.owner == owner_of(sha) ? a->dck.patch : 0;
    return *offset <= *size ? 0 : -1;
}

COLD static void save_offset(struct aloft_agent *a, struct aloft_ble *b)
{
    char v[12];
    snprintf(v, sizeof v, "%lu", (unsigned long)b->done);
    if (aloft_agent_put(a, "ble/offset", v) == 0)
        b->saved = b->done;
}

/* The target's address: the app slot or the www slot being written. */
static uint32_t slot_of(const struct aloft_ble *b)
{
    return b->target ? b->p.slot->offset : b->p.u.target->offset;
}

/* Drop the transfer in memory (the slot stays as it is). */
static void drop(struct aloft_agent *a, struct aloft_ble *b)
{
    if (b->state == ALOFT_BLE_LEGACY || b->state == ALOFT_BLE_EXT)
        aloft_push_abort(a, &b->p);
    b->state = ALOFT_BLE_IDLE;
    b->fill = 0;
    b->resync = false;
}

/* Forget the extended job, saved and in memory (a patch's checkpoint too). */
static void forget(struct aloft_agent *a, struct aloft_ble *b)
{
    drop(a, b);
    aloft_agent_put(a, "ble/job", NULL);
    aloft_agent_put(a, "ble/offset", NULL);
    if (a->dck.owner)
        aloft_push_delta_keep(a, false);
}

/* Start the update of size bytes (at: already in the slot). 0, or 1 with
 * the refusal in b->p.code and b->p.message. */
static int start(struct aloft_agent *a, struct aloft_ble *b, bool frontend, uint32_t size, uint32_t at)
{
    memset(&b->p, 0, sizeof b->p);
    b->p.buf = b->buf;
    b->p.cap = sizeof b->buf;
    if (b->delta) { /* at: the checkpoint's patch offset */
        b->p.kind = KIND_DELTA;
        b->p.resume = at;
        b->p.owner = owner_of(b->sha);
    } else {
        b->p.received = at;
    }
    if (aloft_push_upload_begin(a, &b->p, frontend, size, &b->reply)) {
        aloft_push_abort(a, &b->p);
        return 1;
    }
    if (b->delta && at) /* the decoder starts again from the header this device kept */
        aloft_push_body(a, &b->p, a->dck.header, ALOFT_DELTA_HEADER_BYTES);
    if (b->p.status) {
        aloft_push_abort(a, &b->p);
        return 1;
    }
    /* a resumed app's head was checked before the interruption, not since */
    if (at && !frontend && aloft_image_ident_ready(&b->p.u.v) &&
        !aloft_agent_secure_version_ok(a, &b->p.u.v.info, b->p.message, sizeof b->p.message)) {
        b->p.code = "secure_version";
        aloft_push_abort(a, &b->p);
        return 1;
    }
    return 0;
}

/* ---- who may change anything ---- */

/* Why this central may not start or drop an update, or NULL. As HTTP push:
 * with a PSK it passed AUTH on this connection; with none, the device is
 * open. */
static const char *denied(const struct aloft_agent *a, const struct aloft_ble *b)
{
    if (b->authed || (!a->psk[0] && a->open))
        return NULL;
    return a->psk[0] ? "authenticate first" : "no PSK is provisioned";
}

/* AUTH: the first 16 bytes of HMAC-SHA256(psk, nonce), compared in
 * constant time. The nonce (nonce[1..], nonce[0] its NONCE opcode while
 * it is out) is used up, right or wrong. */
COLD static void auth(struct aloft_agent *a, struct aloft_ble *b, const uint8_t *v)
{
    struct aloft_hmac_sha256 h;
    uint8_t d[32], diff = (b->nonce[0] ^ ALOFT_BLE_X_NONCE) | !a->psk[0];
    aloft_hmac_sha256_key(&h, a->psk, strlen(a->psk));
    aloft_hmac_sha256_sum(&h, b->nonce + 1, ALOFT_BLE_NONCE, d);
    for (int i = 0; i < ALOFT_BLE_NONCE; i++)
        diff |= d[i] ^ v[1 + i];
    b->nonce[0] = 0;
    b->authed = !diff;
    if (!diff) {
        say(b, ALOFT_BLE_X_AUTH_ACK);
        return;
    }
    aloft_agent_log(a, "ble: authentication failed");
    refuse(b, ALOFT_BLE_X_AUTH_NAK, "unauthorized", a->psk[0] ? "wrong PSK or nonce" : "no PSK is provisioned");
}

/* ---- the esp32-ble-ota protocol ---- */

COLD static void request(struct aloft_agent *a, struct aloft_ble *b)
{
    const char *why = denied(a, b);
    if (why && a->psk[0]) /* it cannot authenticate: only where the operator said so */
        why = b->legacy ? NULL : "esp32-ble-ota cannot authenticate";
    if (why) {
        aloft_agent_log(a, "ble: refused: unauthorized (%s)", why);
        say(b, ALOFT_BLE_REQUEST_NAK);
        return;
    }
    drop(a, b);
    b->delta = false;
    const struct aloft_part *next = aloft_part_next_update(&a->boot->table, a->boot->running);
    if (start(a, b, false, next ? next->size : 1, 0)) {
        aloft_agent_log(a, "ble: REQUEST refused: %s (%s)", b->p.code, b->p.message);
        say(b, ALOFT_BLE_REQUEST_NAK);
        return;
    }
    aloft_agent_log(a, "ble: update begins (esp32-ble-ota protocol, packets of %u bytes)", (unsigned)b->packet);
    b->state = ALOFT_BLE_LEGACY;
    say(b, ALOFT_BLE_REQUEST_ACK);
}

/* The image is in: verify, switch, answer. 0 or the refusal's code. */
static inline __attribute__((always_inline)) const char *finish(struct aloft_agent *a, struct aloft_ble *b)
{
    aloft_push_end(a, &b->p, &b->reply);
    const char *code = b->p.status ? b->p.code : NULL;
    aloft_push_abort(a, &b->p);
    b->state = code ? ALOFT_BLE_IDLE : ALOFT_BLE_RESTARTING;
    return code;
}

/* (returns 0: a tail call, so that no caller's frame sits under the checks) */
COLD static int done(struct aloft_agent *a, struct aloft_ble *b)
{
    if (b->state != ALOFT_BLE_LEGACY) {
        say(b, ALOFT_BLE_DONE_NAK);
        return 0;
    }
    say(b, finish(a, b) ? ALOFT_BLE_DONE_NAK : ALOFT_BLE_DONE_ACK);
    return 0;
}

/* An esp32-ble-ota data packet: its real length counts. An image the checks refuse
 * is answered at DONE; the write fails only when nothing can go on. */
static int legacy_data(struct aloft_agent *a, struct aloft_ble *b, const uint8_t *v, size_t len)
{
    aloft_push_body(a, &b->p, v, len);
    return b->p.status == 500 ? ATT_UNLIKELY : b->p.status == 413 ? ATT_LEN : 0;
}

/* ---- the extended mode ---- */

COLD static void begin_ack(struct aloft_ble *b)
{
    uint8_t m[9] = {ALOFT_BLE_X_BEGIN_ACK, ALOFT_BLE_VERSION};
    put(m + 2, b->done, 4);
    put(m + 6, ALOFT_BLE_SECTOR, 2);
    m[8] = ALOFT_BLE_WINDOW;
    notify(b, ALOFT_BLE_CONTROL, m, sizeof m);
}

COLD static void begin(struct aloft_agent *a, struct aloft_ble *b, const uint8_t *v, size_t len)
{
    uint8_t target = v[2], delta = len > 7 ? v[7] : ALOFT_BLE_KIND_IMAGE, kind = target | delta << 1;
    uint32_t size = le(v + 3, 4);
    bool bad = (target | delta) > 1 || kind > 2; /* a patch is for the app only */
    if (v[1] < 1 || bad || b->hashed != 3) {
        refuse(b, ALOFT_BLE_X_BEGIN_NAK, "bad_request",
               bad ? "target: 0 firmware, 1 frontend; kind: 0 image, 1 patch of the firmware"
                        : "send both halves of the SHA-256 (0x11) first");
        return;
    }
    if (delta && !a->delta) {
        refuse(b, ALOFT_BLE_X_BEGIN_NAK, "no_patches", "this device takes no patches: send the image");
        return;
    }
    b->hashed = 0;
    bool same = b->target == target && b->delta == delta && b->size == size && !memcmp(b->sha, b->want, 32);
    if (b->state == ALOFT_BLE_EXT && same) { /* a repeated BEGIN: go on from the last whole sector */
        b->fill = 0;
        b->resync = false;
        begin_ack(b);
        return;
    }
    drop(a, b);
    uint8_t st, sha[32];
    uint32_t sz, slot, at = 0;
    const struct aloft_part *next = target ? a->www[aloft_agent_www_inactive(a) & 1]
                                           : aloft_part_next_update(&a->boot->table, a->boot->running);
    if (saved_job(a, &st, &sz, sha, &slot, &at) ||
        !(st == kind && sz == size && !memcmp(sha, b->want, 32) && next && next->offset == slot))
        at = 0;
    b->target = target;
    b->delta = delta;
    b->size = size;
    memcpy(b->sha, b->want, 32);
    if (at && start(a, b, target, size, at)) {
        aloft_agent_log(a, "ble: cannot resume at %lu (%s): starting over", (unsigned long)at, b->p.code);
        at = 0;
    }
    if (!at && start(a, b, target, size, 0)) {
        aloft_agent_log(a, "ble: BEGIN refused: %s (%s)", b->p.code, b->p.message);
        refuse(b, ALOFT_BLE_X_BEGIN_NAK, b->p.code, b->p.message);
        return;
    }
    char job[100];
    snprintf(job, sizeof job, "%u,%lu,%lu,", (unsigned)kind, (unsigned long)size, (unsigned long)next->offset);
    aloft_agent_hex(b->sha, 32, job + strlen(job));
    b->state = ALOFT_BLE_EXT;
    b->skip = (uint16_t)(at % ALOFT_BLE_SECTOR); /* a patch's checkpoint may fall inside a sector */
    b->done = b->saved = at - b->skip;
    if (!at && (aloft_agent_put(a, "ble/job", job) || aloft_agent_put(a, "ble/offset", "0")))
        b->saved = UINT32_MAX; /* no resume point: still an update */
    aloft_agent_log(a, "ble: update begins (extended, %lu bytes for the %s, from %lu)", (unsigned long)size,
                    target ? "frontend" : delta ? "app as a patch" : "app", (unsigned long)at);
    begin_ack(b);
}

COLD static void sector_nak(struct aloft_ble *b, uint8_t why)
{
    uint8_t m[6] = {ALOFT_BLE_X_SECTOR_NAK};
    put(m + 1, b->done, 4);
    m[5] = why;
    notify(b, ALOFT_BLE_CONTROL, m, sizeof m);
    b->fill = 0;
    b->resync = true;
}

/* The transfer cannot go on: END_NAK now, and the job is forgotten. */
COLD static void fail(struct aloft_agent *a, struct aloft_ble *b, const char *code, const char *message)
{
    aloft_agent_log(a, "ble: refused: %s (%s)", code, message);
    refuse(b, ALOFT_BLE_X_END_NAK, code, message);
    forget(a, b);
}

static void status(struct aloft_agent *a, struct aloft_ble *b, uint8_t out[ALOFT_BLE_STATUS_LEN]);

COLD static void sector(struct aloft_agent *a, struct aloft_ble *b, const uint8_t *v)
{
    uint32_t off = le(v + 1, 4), want = b->size - b->done < ALOFT_BLE_SECTOR ? b->size - b->done : ALOFT_BLE_SECTOR;
    if (off != b->done || !want)
        return; /* sent ahead before a NAK, or a repeat: the NAK stands */
    if (b->fill != want || aloft_crc32(0xFFFFFFFF, b->sector, want) != ~le(v + 5, 4)) {
        sector_nak(b, b->fill == want ? ALOFT_BLE_NAK_CRC : ALOFT_BLE_NAK_GAP);
        return;
    }
    aloft_push_body(a, &b->p, b->sector + b->skip, want - b->skip);
    b->skip = 0;
    if (b->p.status) {
        fail(a, b, b->p.code, b->p.message);
        return;
    }
    b->done += want;
    b->fill = 0;
    uint8_t m[5] = {ALOFT_BLE_X_SECTOR_ACK};
    put(m + 1, b->done, 4);
    notify(b, ALOFT_BLE_CONTROL, m, sizeof m);
    if (b->done % ALOFT_BLE_SAVE_EVERY == 0 && b->saved != UINT32_MAX) {
        if (!b->delta) /* a patch's resume point is its decoder's checkpoint */
            save_offset(a, b);
        uint8_t s[ALOFT_BLE_STATUS_LEN];
        status(a, b, s);
        notify(b, ALOFT_BLE_STATUS, s, sizeof s);
    }
}

/* A packet: offset u16 (its low bits), then bytes, in order into the sector. */
static int ext_data(struct aloft_ble *b, const uint8_t *v, size_t len)
{
    if (len < 3)
        return ATT_LEN;
    uint32_t at = b->done + b->fill;
    len -= 2;
    if (le(v, 2) != (at & 0xFFFF) || (b->resync && b->fill) || len > ALOFT_BLE_SECTOR - b->fill ||
        len > b->size - at) {
        b->fill = 0; /* lost: the SECTOR that follows gets its NAK */
        b->resync = true;
        return 0;
    }
    b->resync = false;
    memcpy(b->sector + b->fill, v + 2, len);
    b->fill += (uint32_t)len;
    return 0;
}

COLD static void incomplete(struct aloft_ble *b)
{
    char m[64];
    snprintf(m, sizeof m, "%lu of %lu bytes are in", (unsigned long)(b->state == ALOFT_BLE_EXT ? b->done : 0),
             (unsigned long)b->size);
    refuse(b, ALOFT_BLE_X_END_NAK, "incomplete", m);
}

/* Has the whole image, as flash holds it (resumed parts included), the
 * SHA-256 BEGIN gave? If not, the transfer has failed. */
COLD static bool image_ok(struct aloft_agent *a, struct aloft_ble *b)
{
    struct aloft_sha256 s;
    uint8_t d[32];
    aloft_sha256_init(&s);
    for (uint32_t pos = 0; pos < b->size; pos += ALOFT_BLE_SECTOR) {
        uint32_t n = b->size - pos < ALOFT_BLE_SECTOR ? b->size - pos : ALOFT_BLE_SECTOR;
        if (aloft_flash_read(a->port->flash, slot_of(b) + pos, b->sector, n)) {
            fail(a, b, "flash_error", "cannot read the slot back");
            return false;
        }
        aloft_sha256_update(&s, b->sector, n);
    }
    aloft_sha256_final(&s, d);
    if (memcmp(d, b->sha, 32)) {
        fail(a, b, "bad_sha256", "the bytes received do not have the SHA-256 BEGIN gave");
        return false;
    }
    return true;
}

/* END_ACK: what boots next, the app's version or the www slot's label. */
COLD static void end_ack(struct aloft_agent *a, struct aloft_ble *b, bool frontend)
{
    aloft_agent_put(a, "ble/job", NULL);
    aloft_agent_put(a, "ble/offset", NULL);
    uint8_t m[2 + 32] = {ALOFT_BLE_X_END_ACK, frontend};
    const char *what = frontend ? b->p.slot->label : (b->delta ? &a->delta->u : &b->p.u)->v.info.desc.version;
    size_t n = strlen(what) < 32 ? strlen(what) : 32;
    memcpy(m + 2, what, n);
    notify(b, ALOFT_BLE_CONTROL, m, 2 + n);
}

COLD static int end(struct aloft_agent *a, struct aloft_ble *b)
{
    if (b->state != ALOFT_BLE_EXT || b->done != b->size) {
        incomplete(b);
        return 0;
    }
    if (!b->delta && !image_ok(a, b)) /* a patch: the decoder checks the result's SHA-256 */
        return 0;
    bool frontend = b->target;
    const char *code = finish(a, b);
    if (code)
        fail(a, b, code, b->p.message);
    else
        end_ack(a, b, frontend);
    return 0;
}

COLD static int control(struct aloft_agent *a, struct aloft_ble *b, const uint8_t *v, size_t len)
{
    static const uint8_t need[] = {[ALOFT_BLE_X_BEGIN - 0x10] = 7, 18, 9, 1, 1, 1, 1 + ALOFT_BLE_NONCE};
    uint8_t op = v[0];
    const char *why;
    if (op >= 0x10 && op <= ALOFT_BLE_X_AUTH && len != need[op - 0x10] && !(op == ALOFT_BLE_X_BEGIN && len == 8))
        return ATT_LEN; /* BEGIN: 8 bytes with its kind */
    if (b->state == ALOFT_BLE_RESTARTING)
        return ATT_UNLIKELY; /* the answer is given: the device restarts */
    if ((op == ALOFT_BLE_X_BEGIN || op == ALOFT_BLE_X_ABORT) && (why = denied(a, b))) {
        aloft_agent_log(a, "ble: refused: unauthorized (%s)", why);
        refuse(b, op == ALOFT_BLE_X_BEGIN ? ALOFT_BLE_X_BEGIN_NAK : ALOFT_BLE_X_END_NAK, "unauthorized", why);
        return 0;
    }
    switch (op) {
    case ALOFT_BLE_NOP: return 0;
    case ALOFT_BLE_REQUEST: request(a, b); return 0;
    case ALOFT_BLE_DONE: return ATT_LEN; /* one byte: aloft_ble_write takes it */
    case ALOFT_BLE_X_HASH:
        if (v[1] > 1)
            return ATT_UNLIKELY;
        memcpy(b->want + 16 * v[1], v + 2, 16);
        b->hashed |= (uint8_t)(1 << v[1]);
        return 0;
    case ALOFT_BLE_X_BEGIN: begin(a, b, v, len); return 0;
    case ALOFT_BLE_X_CHALLENGE: /* a fresh nonce for one AUTH */
        b->nonce[0] = ALOFT_BLE_X_NONCE;
        a->port->random(a->port->ctx, b->nonce + 1, ALOFT_BLE_NONCE);
        notify(b, ALOFT_BLE_CONTROL, b->nonce, sizeof b->nonce);
        return 0;
    case ALOFT_BLE_X_AUTH: auth(a, b, v); return 0;
    case ALOFT_BLE_X_SECTOR:
        if (b->state == ALOFT_BLE_EXT)
            sector(a, b, v);
        return 0;
    case ALOFT_BLE_X_ABORT:
        if (b->state != ALOFT_BLE_IDLE)
            aloft_agent_log(a, "ble: aborted by the central; nothing changed");
        forget(a, b);
        say(b, ALOFT_BLE_X_ABORT_ACK);
        return 0;
    default: return ATT_UNLIKELY;
    }
}

void aloft_ble_mtu(struct aloft_ble *b, uint16_t mtu)
{
    b->mtu = mtu < 23 ? 23 : mtu;
}

void aloft_ble_connect(struct aloft_agent *a, struct aloft_ble *b, uint16_t mtu)
{
    aloft_ble_disconnect(a, b);
    aloft_ble_mtu(b, mtu);
    b->packet = 0;
    b->hashed = 0;
    b->last_len = 0;
}

COLD static int write(struct aloft_agent *a, struct aloft_ble *b, int chr, const uint8_t *v, size_t len)
{
    if (chr == ALOFT_BLE_STATUS)
        return ATT_WRITE;
    if (chr < 0 || chr >= ALOFT_BLE_CHRS || !len || len > (size_t)b->mtu - 3)
        return chr < 0 || chr >= ALOFT_BLE_CHRS ? 0x0A : ATT_LEN;
    if (chr == ALOFT_BLE_CONTROL)
        return control(a, b, v, len);
    if (b->state == ALOFT_BLE_LEGACY)
        return legacy_data(a, b, v, len);
    if (b->state == ALOFT_BLE_EXT)
        return ext_data(b, v, len);
    if (b->state == ALOFT_BLE_RESTARTING)
        return ATT_UNLIKELY;
    if (len != 2) /* before REQUEST, Data takes the packet size */
        return ATT_LEN;
    b->packet = (uint16_t)le(v, 2);
    return 0;
}

int aloft_ble_write(struct aloft_agent *a, struct aloft_ble *b, int chr, const void *value, size_t len)
{
    const uint8_t *v = value;
    /* DONE and END straight from here: the checks under them take the
     * stack the entry points may use, less this frame and theirs */
    if (chr == ALOFT_BLE_CONTROL && len == 1 && b->state != ALOFT_BLE_RESTARTING)
        if (v[0] == ALOFT_BLE_DONE || v[0] == ALOFT_BLE_X_END)
            return v[0] == ALOFT_BLE_DONE ? done(a, b) : end(a, b);
    return write(a, b, chr, v, len);
}

COLD static void status(struct aloft_agent *a, struct aloft_ble *b, uint8_t out[ALOFT_BLE_STATUS_LEN])
{
    uint8_t st = b->state, target = b->target | b->delta << 1, sha[32];
    uint32_t size = b->size, off = b->done, slot;
    memcpy(sha, b->sha, 32);
    if (st == ALOFT_BLE_LEGACY)
        size = 0, off = (uint32_t)b->p.received, memset(sha, 0, 32);
    if (st == ALOFT_BLE_IDLE && !saved_job(a, &target, &size, sha, &slot, &off))
        st = ALOFT_BLE_SAVED;
    if (st == ALOFT_BLE_IDLE)
        target = 0, size = off = 0, memset(sha, 0, 32);
    out[0] = ALOFT_BLE_VERSION;
    out[1] = st;
    out[2] = target & 1;
    out[3] = (a->delta ? ALOFT_BLE_TAKES_PATCHES : 0) | (target & 2);
    put(out + 4, size, 4);
    put(out + 8, off, 4);
    memcpy(out + 12, sha, 8);
}

int aloft_ble_read(struct aloft_agent *a, struct aloft_ble *b, int chr, void *out, size_t cap)
{
    if (chr < 0 || chr >= ALOFT_BLE_CHRS)
        return -0x0A;
    if (chr == ALOFT_BLE_DATA)
        return -ATT_READ;
    if (cap < ALOFT_BLE_STATUS_LEN)
        return -ATT_LEN;
    if (chr == ALOFT_BLE_STATUS) {
        status(a, b, out);
        return ALOFT_BLE_STATUS_LEN;
    }
    memcpy(out, b->last, b->last_len);
    return b->last_len;
}

int aloft_ble_subscribe(struct aloft_agent *a, struct aloft_ble *b, int chr, bool on)
{
    (void)a;
    if (chr < 0 || chr >= ALOFT_BLE_CHRS)
        return 0x0A;
    if (chr == ALOFT_BLE_DATA)
        return ATT_WRITE; /* Data has no CCCD */
    b->sub[chr] = on;
    return 0;
}

void aloft_ble_disconnect(struct aloft_agent *a, struct aloft_ble *b)
{
    if (b->state == ALOFT_BLE_LEGACY)
        aloft_agent_log(a, "ble: disconnected mid-transfer after %lu bytes; nothing changed",
                        (unsigned long)b->p.received);
    if (b->state == ALOFT_BLE_EXT) {
        if (b->saved != UINT32_MAX && b->done != b->saved && !b->delta)
            save_offset(a, b);
        aloft_agent_log(a, "ble: disconnected; %lu of %lu bytes kept for a resume", (unsigned long)b->done,
                        (unsigned long)b->size);
    }
    if (b->state != ALOFT_BLE_RESTARTING)
        drop(a, b);
    memset(b->sub, 0, sizeof b->sub);
    b->authed = false; /* authentication is per connection */
    b->nonce[0] = 0;
}
