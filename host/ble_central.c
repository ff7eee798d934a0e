/* aloft host: a central on the simulated BLE link and the BLE OTA pushes
 * (ble_central.h). */
#include "ble_central.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aloft/crypto.h"
#include "ble_bluez.h"

#define ANSWER_MS 10000 /* a request's answer */
#define BEGIN_MS 60000  /* BEGIN and END: an erase or a verification of the slot */
#define ACK_MS 10000    /* a sector's ACK */

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static int gone(struct ble_central *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    ble_bluez_close(c);
    return -1;
}

/* Read what arrived within timeout_ms and take whole frames: notifications
 * into the ring; an answer (op >= 0x81, not NOTIFY) into ans (returns 1).
 * 0 nothing more, -1 link gone. */
static int pump(struct ble_central *c, int timeout_ms, uint8_t *ans, size_t *ans_len)
{
    struct pollfd p = {.fd = c->fd, .events = POLLIN};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno != EINTR)
        return gone(c, "poll: %s", strerror(errno));
    if (r <= 0)
        return 0;
    for (;;) {
        size_t need = c->have < 2 ? 2 : 2 + (size_t)(c->in[0] | c->in[1] << 8);
        if (need > sizeof c->in)
            return gone(c, "the device sent a malformed frame");
        if (c->have < need) {
            ssize_t got = recv(c->fd, c->in + c->have, need - c->have, MSG_DONTWAIT);
            if (got == 0)
                return gone(c, "the device closed the link");
            if (got < 0)
                return errno == EAGAIN || errno == EINTR ? 0 : gone(c, "recv: %s", strerror(errno));
            c->have += (size_t)got;
            continue;
        }
        c->have = 0;
        const uint8_t *f = c->in + 2;
        size_t n = need - 2;
        if (n >= 17 && f[0] == 0x87) {
            int chr = aloft_ble_chr(f + 1);
            if (chr < 0 || c->count == BLE_NOTES)
                continue; /* not the service's, or never read: dropped */
            struct ble_note *note = &c->notes[(c->head + c->count++) % BLE_NOTES];
            note->chr = (uint8_t)chr;
            note->len = (uint16_t)(n - 17);
            memcpy(note->v, f + 17, n - 17);
        } else if (ans && n >= 1) {
            memcpy(ans, f, n);
            *ans_len = n;
            return 1;
        }
    }
}

/* Write a frame, reading what comes meanwhile. */
static int send_frame(struct ble_central *c, const uint8_t *f, size_t len)
{
    for (size_t off = 0; off < len;) {
        struct pollfd p = {.fd = c->fd, .events = POLLOUT | POLLIN};
        if (poll(&p, 1, ANSWER_MS) <= 0)
            return gone(c, "the link stalled");
        if (p.revents & POLLIN && pump(c, 0, NULL, NULL) < 0)
            return -1;
        if (!(p.revents & (POLLOUT | POLLERR | POLLHUP)))
            continue;
        ssize_t w = send(c->fd, f + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return gone(c, "send: %s", strerror(errno));
        off += w > 0 ? (size_t)w : 0;
    }
    return 0;
}

static int frame(struct ble_central *c, uint8_t op, int chr, const void *v, size_t len)
{
    uint8_t f[2 + 1 + 16 + 600];
    if (c->fd < 0)
        return -1;
    size_t n = 1 + (chr >= 0 ? 16 : 0) + len;
    f[0] = (uint8_t)n;
    f[1] = (uint8_t)(n >> 8);
    f[2] = op;
    if (chr >= 0)
        memcpy(f + 3, aloft_ble_uuid[1 + chr], 16);
    if (len) /* v may be NULL for an empty value */
        memcpy(f + 3 + (chr >= 0 ? 16 : 0), v, len);
    return send_frame(c, f, 2 + n);
}

static int answer(struct ble_central *c, uint8_t *ans, size_t *len, unsigned timeout_ms)
{
    for (uint64_t end = now_ms() + timeout_ms;;) {
        uint64_t t = now_ms();
        if (t >= end)
            return gone(c, "no answer from the device");
        int r = pump(c, (int)(end - t), ans, len);
        if (r)
            return r < 0 ? -1 : 0;
    }
}

int ble_central_open(struct ble_central *c, const char *target, uint16_t mtu, uint16_t assume_mtu, unsigned find_ms)
{
    if (!ble_bluez_target(target)) {
        return ble_central_connect(c, target, mtu);
    }
    memset(c, 0, sizeof *c);
    c->fd = -1;
    return ble_bluez_connect(c, target, mtu, assume_mtu, find_ms);
}

int ble_central_connect(struct ble_central *c, const char *target, uint16_t mtu)
{
    memset(c, 0, sizeof *c);
    c->fd = -1;
    const char *colon = strrchr(target, ':');
    char host[64];
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - target) : 0, target);
    int port = colon ? atoi(colon + 1) : 0, one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &a.sin_addr) != 1)
        return gone(c, "%s is not HOST:PORT with an IPv4 address", target);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&a, sizeof a))
        return gone(c, "cannot connect to %s: %s", target, strerror(errno));
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    uint8_t m[2] = {(uint8_t)mtu, (uint8_t)(mtu >> 8)}, ans[600];
    size_t n;
    if (frame(c, 0x01, -1, m, 2) || answer(c, ans, &n, ANSWER_MS)) {
        char why[sizeof c->why];
        snprintf(why, sizeof why, "%s", c->why);
        return gone(c, "%s did not take the connection (another central connected?): %s", target, why);
    }
    if (ans[0] != 0x81 || n < 4 || n < 4u + ans[3])
        return gone(c, "%s answered CONNECT with something else", target);
    c->mtu = (uint16_t)(ans[1] | ans[2] << 8);
    snprintf(c->name, sizeof c->name, "%.*s", ans[3], (const char *)ans + 4);
    return 0;
}

void ble_central_close(struct ble_central *c)
{
    ble_bluez_close(c);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

int ble_central_request(struct ble_central *c, uint8_t op, int chr, const void *v, size_t len, uint8_t *out,
                        size_t *out_len)
{
    uint8_t ans[600];
    size_t n;
    if (c->bz)
        return ble_bluez_request(c, op, chr, v, len, out, out_len);
    if (frame(c, op, chr, v, len) || answer(c, ans, &n, ANSWER_MS))
        return -1;
    if (ans[0] != (op | 0x80) || n < 2)
        return gone(c, "the device answered op 0x%02x with 0x%02x", op, ans[0]);
    if (out) {
        memcpy(out, ans + 2, n - 2);
        *out_len = n - 2;
    }
    return ans[1];
}

int ble_central_write_cmd(struct ble_central *c, int chr, const void *v, size_t len)
{
    return c->bz ? ble_bluez_write_cmd(c, chr, v, len) : frame(c, 0x04, chr, v, len);
}

int ble_central_note(struct ble_central *c, int chr, struct ble_note *n, unsigned timeout_ms)
{
    for (uint64_t end = now_ms() + timeout_ms;;) {
        for (unsigned i = 0; i < c->count; i++) {
            struct ble_note *x = &c->notes[(c->head + i) % BLE_NOTES];
            if (x->chr != chr)
                continue;
            *n = *x;
            for (unsigned k = i; k > 0; k--) /* keep the others in order */
                c->notes[(c->head + k) % BLE_NOTES] = c->notes[(c->head + k - 1) % BLE_NOTES];
            c->head = (c->head + 1) % BLE_NOTES;
            c->count--;
            return n->len ? n->len : 1;
        }
        if (c->fd < 0 && !c->bz)
            return -1;
        uint64_t t = now_ms();
        if (t >= end)
            return 0;
        if ((c->bz ? ble_bluez_wait(c, (unsigned)(end - t)) : pump(c, (int)(end - t), NULL, NULL)) < 0)
            return -1;
    }
}

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

/* The device's answer on Control to what was just asked. */
static int control_note(struct ble_central *c, struct ble_note *n, unsigned timeout_ms, const char *what)
{
    int r = ble_central_note(c, ALOFT_BLE_CONTROL, n, timeout_ms);
    if (r == 0)
        return gone(c, "no answer to %s", what);
    return r < 0 ? -1 : 0;
}

static int write_req(struct ble_central *c, int chr, const void *v, size_t len, const char *what)
{
    int att = ble_central_request(c, 0x03, chr, v, len, NULL, NULL);
    if (att > 0)
        snprintf(c->why, sizeof c->why, "%s: the device answered ATT error 0x%02x", what, att);
    return att;
}

/* the esp32-ble-ota protocol: packet size, REQUEST, packets of MTU - 3 bytes by
 * write with response, DONE. */
static int push_legacy(struct ble_central *c, struct ble_push *o, const uint8_t *img, size_t len)
{
    uint16_t pkt = (uint16_t)(c->mtu - 3);
    uint8_t m[2] = {(uint8_t)pkt, (uint8_t)(pkt >> 8)}, op = ALOFT_BLE_REQUEST;
    struct ble_note n;
    if (write_req(c, ALOFT_BLE_DATA, m, 2, "the packet size") || write_req(c, ALOFT_BLE_CONTROL, &op, 1, "REQUEST") ||
        control_note(c, &n, BEGIN_MS, "REQUEST"))
        return -1;
    if (n.v[0] != ALOFT_BLE_REQUEST_ACK) {
        snprintf(c->why, sizeof c->why,
                 "the device refused the update (REQUEST_NAK: busy, no slot to take it, or it takes no "
                 "unauthenticated esp32-ble-ota update)");
        return 1;
    }
    if (o->progress)
        o->progress(o->ctx, 0, len);
    for (size_t off = 0; off < len; off += pkt) {
        size_t k = len - off < pkt ? len - off : pkt;
        if (o->drop_at && off >= o->drop_at)
            return gone(c, "hung up after %zu bytes (as asked)", off);
        if (write_req(c, ALOFT_BLE_DATA, img + off, k, "a data packet"))
            return -1;
        if (o->progress)
            o->progress(o->ctx, off + k, len);
    }
    op = ALOFT_BLE_DONE;
    if (write_req(c, ALOFT_BLE_CONTROL, &op, 1, "DONE") || control_note(c, &n, BEGIN_MS, "DONE"))
        return -1;
    if (n.v[0] != ALOFT_BLE_DONE_ACK) {
        snprintf(c->why, sizeof c->why, "the device refused the image (DONE_NAK): nothing was switched");
        return 1;
    }
    return 0;
}

/* A NAK or END_NAK's text into why. */
static int refused(struct ble_central *c, const struct ble_note *n, const char *what)
{
    snprintf(c->why, sizeof c->why, "%s: %.*s", what, n->len - 1, (const char *)n->v + 1);
    return 1;
}

/* CHALLENGE, then AUTH with the first 16 bytes of HMAC-SHA256(psk, nonce). */
static int authenticate(struct ble_central *c, const char *psk)
{
    uint8_t m[1 + ALOFT_BLE_NONCE] = {ALOFT_BLE_X_CHALLENGE}, d[32];
    struct ble_note n;
    if (write_req(c, ALOFT_BLE_CONTROL, m, 1, "CHALLENGE") ||
        control_note(c, &n, ACK_MS, "CHALLENGE (a device without the extended mode answers nothing: try --legacy)"))
        return -1;
    if (n.v[0] != ALOFT_BLE_X_NONCE || n.len != 1 + ALOFT_BLE_NONCE)
        return gone(c, "the device sent no nonce: it does not authenticate (an aloft older than its PSK check?)");
    struct aloft_hmac_sha256 h;
    aloft_hmac_sha256_key(&h, psk, strlen(psk));
    aloft_hmac_sha256_sum(&h, n.v + 1, ALOFT_BLE_NONCE, d);
    m[0] = ALOFT_BLE_X_AUTH;
    memcpy(m + 1, d, ALOFT_BLE_NONCE);
    if (write_req(c, ALOFT_BLE_CONTROL, m, sizeof m, "AUTH") || control_note(c, &n, ACK_MS, "AUTH"))
        return -1;
    if (n.v[0] == ALOFT_BLE_X_AUTH_NAK)
        return refused(c, &n, "authentication refused");
    return n.v[0] == ALOFT_BLE_X_AUTH_ACK ? 0 : gone(c, "no answer to AUTH");
}

static int push_ext(struct ble_central *c, struct ble_push *o, const uint8_t *img, size_t len)
{
    uint8_t sha[32], m[20];
    struct aloft_sha256 s;
    int r = o->psk ? authenticate(c, o->psk) : 0;
    if (r)
        return r;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, img, len);
    aloft_sha256_final(&s, sha);
    for (int half = 0; half < 2; half++) {
        m[0] = ALOFT_BLE_X_HASH;
        m[1] = (uint8_t)half;
        memcpy(m + 2, sha + 16 * half, 16);
        if (write_req(c, ALOFT_BLE_CONTROL, m, 18, "HASH"))
            return -1;
    }
    m[0] = ALOFT_BLE_X_BEGIN;
    m[1] = ALOFT_BLE_VERSION;
    m[2] = o->frontend;
    put32(m + 3, (uint32_t)len);
    m[7] = ALOFT_BLE_KIND_PATCH; /* sent only for a patch: a device older than patches takes 7 bytes */
    struct ble_note n;
    if (write_req(c, ALOFT_BLE_CONTROL, m, o->delta ? 8 : 7, "BEGIN") || control_note(c, &n, BEGIN_MS, "BEGIN"))
        return -1;
    if (n.v[0] == ALOFT_BLE_X_BEGIN_NAK)
        return refused(c, &n, "refused");
    if (n.v[0] != ALOFT_BLE_X_BEGIN_ACK || n.len < 9)
        return gone(c, "the device does not speak the extended mode (try --legacy)");
    uint32_t acked = le32(n.v + 2), sector = (uint32_t)(n.v[6] | n.v[7] << 8), window = n.v[8] ? n.v[8] : 1;
    uint32_t pos = acked, stale = UINT32_MAX, payload = (uint32_t)c->mtu - 3 - 2;
    o->resumed_at = acked;
    bool corrupted = false;
    if (o->progress)
        o->progress(o->ctx, acked, len);
    uint8_t pkt[600];
    while (acked < len) {
        while (pos < len && pos < acked + window * sector) {
            uint32_t start = pos - pos % sector, stop = start + sector < len ? start + sector : (uint32_t)len;
            uint32_t k = stop - pos < payload ? stop - pos : payload;
            if (o->drop_at && pos >= o->drop_at)
                return gone(c, "hung up after %u bytes (as asked)", (unsigned)pos);
            pkt[0] = (uint8_t)pos;
            pkt[1] = (uint8_t)(pos >> 8);
            memcpy(pkt + 2, img + pos, k);
            if (o->corrupt_at && !corrupted && o->corrupt_at >= pos && o->corrupt_at < pos + k) {
                pkt[2 + o->corrupt_at - pos] ^= 0x5a;
                corrupted = true;
            }
            if (ble_central_write_cmd(c, ALOFT_BLE_DATA, pkt, 2 + k))
                return -1;
            pos += k;
            if (pos == stop) {
                m[0] = ALOFT_BLE_X_SECTOR;
                put32(m + 1, start);
                put32(m + 5, ~aloft_crc32(0xFFFFFFFF, img + start, stop - start));
                if (ble_central_write_cmd(c, ALOFT_BLE_CONTROL, m, 9))
                    return -1;
                if (start == stale)
                    stale = UINT32_MAX; /* a NAK of it from now on is news */
            }
        }
        if (control_note(c, &n, ACK_MS, "the sectors sent"))
            return -1;
        if (n.v[0] == ALOFT_BLE_X_SECTOR_ACK && n.len >= 5) {
            uint32_t at = le32(n.v + 1);
            acked = at > acked ? at : acked;
            if (o->progress)
                o->progress(o->ctx, acked, len);
        } else if (n.v[0] == ALOFT_BLE_X_SECTOR_NAK && n.len >= 5) {
            uint32_t at = le32(n.v + 1);
            if (at != stale) { /* one rewind per NAK: the rest were about what was sent before it */
                o->naks++;
                pos = stale = at;
                acked = at > acked ? at : acked;
            }
        } else if (n.v[0] == ALOFT_BLE_X_END_NAK) {
            return refused(c, &n, "refused");
        }
    }
    m[0] = ALOFT_BLE_X_END;
    if (write_req(c, ALOFT_BLE_CONTROL, m, 1, "END"))
        return -1;
    for (;;) { /* late ACKs first */
        if (control_note(c, &n, BEGIN_MS, "END"))
            return -1;
        if (n.v[0] == ALOFT_BLE_X_END_NAK)
            return refused(c, &n, "refused");
        if (n.v[0] == ALOFT_BLE_X_END_ACK) {
            snprintf(o->boots, sizeof o->boots, "%.*s", n.len - 2, (const char *)n.v + 2);
            return 0;
        }
    }
}

int ble_push_image(struct ble_central *c, struct ble_push *o, const uint8_t *image, size_t len)
{
    int att = ble_central_request(c, 0x05, ALOFT_BLE_CONTROL, NULL, 0, NULL, NULL);
    if (att) {
        if (att > 0)
            snprintf(c->why, sizeof c->why, "cannot subscribe to Control: ATT error 0x%02x", att);
        return -1;
    }
    return o->legacy ? push_legacy(c, o, image, len) : push_ext(c, o, image, len);
}
