/* aloft agent: the ArduinoOTA network upload (espota.h). The handshake and
 * its two authentication schemes are here; the image goes through push.c's
 * upload path, so it is checked as an HTTP upload is. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_private.h"
#include "aloft/espota.h"
#include "push_private.h"

/* Is s exactly n hex digits followed by end (a newline: or nothing)? */
static bool hex_field(const char *s, size_t n, char end)
{
    for (size_t i = 0; i < n; i++)
        if (!s[i] || !strchr("0123456789abcdefABCDEF", s[i]))
            return false;
    return s[n] == end || (end == '\n' && !s[n]);
}

/* Constant-time: the answer must not leak how much of it was right. */
static bool same(const char *x, const char *y, size_t n)
{
    unsigned diff = 0;
    for (size_t i = 0; i < n; i++)
        diff |= (unsigned char)x[i] ^ (unsigned char)y[i];
    return diff == 0;
}

/* The digest of len bytes as hex into out: MD5 (n 32) or SHA-256 (n 64). */
static void digest(size_t n, const void *data, size_t len, char *out)
{
    uint8_t d[32];
    if (n == 32) {
        struct aloft_md5 m;
        aloft_md5_init(&m);
        aloft_md5_update(&m, data, len);
        aloft_md5_final(&m, d);
    } else {
        struct aloft_sha256 s;
        aloft_sha256_init(&s);
        aloft_sha256_update(&s, data, len);
        aloft_sha256_final(&s, d);
    }
    aloft_agent_hex(d, n / 2, out);
}

/* The answer the scheme of n-digit nonces (32: MD5, 64: SHA-256) expects,
 * as hex into want: H(key ":" nonce ":" cnonce) with key hex(H(psk)), and
 * with SHA-256 then hex(PBKDF2(key, nonce ":" cnonce)). Classic clients
 * read only the first 32 digits of the nonce. */
static void expected(const struct aloft_agent *a, const struct aloft_espota *e, const char *cnonce, size_t n,
                     char *want)
{
    char t[3 * 64 + 2 + 4]; /* key ":" nonce ":" cnonce, and PBKDF2's block index */
    char *salt = t + n + 1;
    digest(n, a->psk, strlen(a->psk), t);
    t[n] = ':';
    memcpy(salt, e->nonce, n);
    salt[n] = ':';
    memcpy(salt + n + 1, cnonce, n);
    if (n == 64) {
        struct aloft_hmac_sha256 h;
        uint8_t u[32], dk[32];
        memcpy(salt + 2 * n + 1, "\0\0\0\1", 4);
        aloft_hmac_sha256_key(&h, t, n); /* the key: a 64-digit hex hash */
        struct aloft_hmac_sha256 once = h;
        aloft_hmac_sha256_sum(&once, salt, 2 * n + 1 + 4, u);
        memcpy(dk, u, sizeof dk);
        for (unsigned i = 1; i < ALOFT_ESPOTA_PBKDF2_ROUNDS; i++) {
            once = h;
            aloft_hmac_sha256_sum(&once, u, sizeof u, u);
            for (size_t k = 0; k < sizeof dk; k++)
                dk[k] ^= u[k];
        }
        aloft_agent_hex(dk, sizeof dk, t);
        t[n] = ':';
    }
    digest(n, t, 3 * n + 2, want);
}

static int say(char *out, size_t cap, const char *text)
{
    int n = snprintf(out, cap, "%s", text);
    return n < (int)cap ? n : (int)cap - 1;
}

/* "<command> <port> <size> <md5>\n" */
static int invitation(struct aloft_agent *a, struct aloft_espota *e, long cmd, char *s, char *out, size_t cap)
{
    char *end;
    unsigned long port = strtoul(s, &end, 10), size = *end == ' ' ? strtoul(end + 1, &end, 10) : 0;
    if ((cmd != ALOFT_ESPOTA_CMD_FLASH && cmd != ALOFT_ESPOTA_CMD_FS) || !port || port > 65535 || !size ||
        size > UINT32_MAX || *end != ' ' || !hex_field(end + 1, 32, '\n'))
        return say(out, cap, "ERROR: bad_invitation");
    if (e->state >= ALOFT_ESPOTA_CONNECT || a->busy)
        return snprintf(out, cap, "ERROR: busy: %s", aloft_agent_busy);
    if (!a->psk[0] && !a->open)
        return say(out, cap, "ERROR: unauthorized: no PSK is provisioned");
    e->frontend = cmd == ALOFT_ESPOTA_CMD_FS;
    e->port = (uint16_t)port;
    e->size = (uint32_t)size;
    memcpy(e->md5, end + 1, 32);
    e->md5[32] = 0;
    aloft_agent_lower(e->md5);
    if (!a->psk[0]) {
        e->state = ALOFT_ESPOTA_CONNECT;
        return say(out, cap, "OK");
    }
    uint8_t r[32];
    a->port->random(a->port->ctx, r, sizeof r);
    aloft_agent_hex(r, sizeof r, e->nonce);
    e->state = ALOFT_ESPOTA_AUTH;
    e->deadline_ms = a->port->now_ms(a->port->ctx) + ALOFT_ESPOTA_AUTH_MS;
    return snprintf(out, cap, "AUTH %s", e->nonce);
}

/* "200 <cnonce> <response>\n", both 32 (MD5) or both 64 (SHA-256) digits,
 * to the challenge that stands (a transfer in progress is left alone) */
static int answer(struct aloft_agent *a, struct aloft_espota *e, const char *s, char *out, size_t cap)
{
    size_t n = strcspn(s, " ");
    char want[65];
    bool pending = e->state == ALOFT_ESPOTA_AUTH;
    bool ok = pending && a->port->now_ms(a->port->ctx) <= e->deadline_ms && (n == 32 || n == 64) &&
              hex_field(s, n, ' ') && hex_field(s + n + 1, n, '\n');
    if (ok) {
        expected(a, e, s, n, want);
        ok = same(want, s + n + 1, n);
    }
    if (pending)
        e->state = ok ? ALOFT_ESPOTA_CONNECT : ALOFT_ESPOTA_IDLE;
    if (ok)
        return say(out, cap, "OK");
    aloft_agent_log(a, "espota: authentication failed");
    return say(out, cap, "Authentication Failed");
}

int aloft_espota_datagram(struct aloft_agent *a, struct aloft_espota *e, const void *data, size_t len, char *out,
                          size_t cap)
{
    char s[ALOFT_ESPOTA_DATAGRAM_MAX + 1];
    out[0] = 0;
    if (len == 0 || len > ALOFT_ESPOTA_DATAGRAM_MAX || memchr(data, 0, len))
        return 0;
    memcpy(s, data, len);
    s[len] = 0;
    char *end;
    long cmd = strtol(s, &end, 10);
    if (end == s || *end != ' ')
        return 0;
    if (cmd == ALOFT_ESPOTA_CMD_AUTH)
        return answer(a, e, end + 1, out, cap);
    return invitation(a, e, cmd, end + 1, out, cap);
}

/* The update's refusal as "ERROR: <code>: <message>"; the transfer is over. */
static int refusal(struct aloft_agent *a, struct aloft_espota *e, char *out, size_t cap)
{
    aloft_push_abort(a, &e->p);
    e->state = ALOFT_ESPOTA_IDLE;
    int n = snprintf(out, cap, "ERROR: %s: %s", e->p.code, e->p.message);
    return n < (int)cap ? n : (int)cap - 1;
}

int aloft_espota_connected(struct aloft_agent *a, struct aloft_espota *e, char *out, size_t cap)
{
    out[0] = 0;
    if (e->state != ALOFT_ESPOTA_CONNECT)
        return 0;
    memset(&e->p, 0, sizeof e->p);
    e->p.buf = e->buf;
    e->p.cap = sizeof e->buf;
    aloft_agent_log(a, "espota: %u bytes for the %s", (unsigned)e->size, e->frontend ? "frontend" : "app");
    if (aloft_push_upload_begin(a, &e->p, e->frontend, e->size, &e->reply))
        return refusal(a, e, out, cap);
    aloft_md5_init(&e->sum);
    e->state = ALOFT_ESPOTA_TRANSFER;
    return 0;
}

int aloft_espota_data(struct aloft_agent *a, struct aloft_espota *e, const void *data, size_t len, char *out,
                      size_t cap)
{
    out[0] = 0;
    if (e->state != ALOFT_ESPOTA_TRANSFER)
        return 0;
    /* bytes past the size announced fail the MD5, which covers all received */
    aloft_push_body(a, &e->p, data, len);
    aloft_md5_update(&e->sum, data, len);
    int n = snprintf(out, cap, "%u", (unsigned)len);
    if (!e->p.status && e->p.received < e->size)
        return n;
    if (!e->p.status) {
        /* e->buf is free until aloft_push_end: the digest, then its hex */
        aloft_md5_final(&e->sum, (uint8_t *)e->buf);
        aloft_agent_hex((uint8_t *)e->buf, 16, e->buf + 16);
        if (!same(e->buf + 16, e->md5, 32)) { /* the app update is dropped before aloft_push_end forgets it */
            e->p.status = 400;
            e->p.code = "bad_md5";
            if (!e->frontend)
                aloft_update_abort(&e->p.u);
            snprintf(e->p.message, sizeof e->p.message, "the image's MD5 is %s, not %s", e->buf + 16, e->md5);
        }
    }
    aloft_push_end(a, &e->p, &e->reply);
    if (e->p.status)
        return n + refusal(a, e, out + n, cap - (size_t)n);
    aloft_push_abort(a, &e->p);
    e->state = ALOFT_ESPOTA_IDLE;
    return n + say(out + n, cap - (size_t)n, "OK");
}

void aloft_espota_abort(struct aloft_agent *a, struct aloft_espota *e, const char *why)
{
    if (e->state == ALOFT_ESPOTA_IDLE)
        return;
    if (e->state == ALOFT_ESPOTA_TRANSFER)
        aloft_push_abort(a, &e->p);
    aloft_agent_log(a, "espota: %s; nothing changed", why);
    e->state = ALOFT_ESPOTA_IDLE;
}
