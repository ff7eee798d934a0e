/* aloft agent: the scheduled check against an update server's GET /update
 * (PROTOCOLS.md §3.1), with the headers of Arduino's HTTPUpdate so that the
 * servers written for HTTPUpdate understand it too. The glue decides when (at boot, then
 * every so often); a 200's body is installed like a trigger's (pull.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_private.h"
#include "aloft/err.h"
#include "aloft/otadata.h"
#include "pull_job.h"

#define CHUNK 256 /* flash read per step: the agent runs on a small stack */

/* The MD5 (md5 may be NULL) and SHA-256 of len bytes of flash at off, in hex. */
static int digest_flash(struct aloft_agent *a, uint32_t off, uint32_t len, char *md5, char sha256[65])
{
    struct aloft_md5 m;
    struct aloft_sha256 s;
    uint8_t buf[CHUNK];
    aloft_md5_init(&m);
    aloft_sha256_init(&s);
    for (uint32_t pos = 0; pos < len; pos += CHUNK) {
        uint32_t n = len - pos < CHUNK ? len - pos : CHUNK;
        int rc = aloft_flash_read(a->port->flash, off + pos, buf, n);
        if (rc)
            return rc;
        if (md5)
            aloft_md5_update(&m, buf, n);
        aloft_sha256_update(&s, buf, n);
    }
    if (md5) {
        aloft_md5_final(&m, buf);
        aloft_agent_hex(buf, 16, md5);
    }
    aloft_sha256_final(&s, buf);
    aloft_agent_hex(buf, 32, sha256);
    return 0;
}

int aloft_pull_describe(struct aloft_agent *a, char md5[33], char sha256[65])
{
    if (md5)
        md5[0] = 0;
    sha256[0] = 0;
    return digest_flash(a, a->boot->running->offset, a->app.image_len, md5, sha256);
}

/* The frontend in the active www slot when no pull installed one (it was
 * flashed with the app), named as a pull names what it installs: the
 * SHA-256 of its LittleFS image, as long as its superblock says (block
 * size x block count). The superblock is block 0's first commit: the
 * revision, the tag of the name "littlefs" (0x0ff00008, XORed with
 * 0xffffffff), then that of the 24-byte inline struct (0x20100018, XORed
 * with the first), as big-endian words. Kept once found; "" if unknown. */
static void flashed_frontend(struct aloft_agent *a, char out[65])
{
    const struct aloft_part *p = a->www[a->www_slot];
    uint8_t b[32];
    out[0] = 0;
    if (!p || !a->www_ok || aloft_flash_read(a->port->flash, p->offset, b, sizeof b) ||
        memcmp(b + 4, "\xf0\x0f\xff\xf7littlefs\x2f\xe0\x00\x10", 16))
        return;
    uint64_t len = (uint64_t)(b[24] | b[25] << 8 | b[26] << 16 | (uint32_t)b[27] << 24) *
                   (b[28] | b[29] << 8 | b[30] << 16 | (uint32_t)b[31] << 24);
    if (len && len <= p->size && !digest_flash(a, p->offset, (uint32_t)len, NULL, out))
        aloft_agent_put(a, "pull/www", out);
}

uint32_t aloft_pull_check_interval_ms(struct aloft_agent *a, uint32_t every_s)
{
    uint32_t base = every_s * 1000u, spread = base / 5, r; /* 20 %: -10 % .. +10 % */
    if (!a->port->random)
        return base;
    a->port->random(a->port->ctx, &r, sizeof r);
    return base - spread / 2 + r % (spread + 1);
}

/* Append s percent-encoded (all but RFC 3986's unreserved characters, as
 * curl_easy_escape does). */
static void escape(char *out, size_t cap, const char *s)
{
    static const char digits[] = "0123456789ABCDEF";
    size_t len = strlen(out);
    for (; *s && len + 4 <= cap; s++) {
        unsigned char c = (unsigned char)*s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("-._~", c)) {
            out[len++] = (char)c;
        } else {
            out[len++] = '%';
            out[len++] = digits[c >> 4];
            out[len++] = digits[c & 15];
        }
    }
    out[len] = 0;
}

/* An ESP32's soft-AP MAC is its station MAC + 1 (in the last byte). */
static void ap_mac(const char *sta, char out[18])
{
    snprintf(out, 18, "%s", sta);
    for (char *c = out; *c; c++)
        if (*c >= 'a' && *c <= 'f')
            *c = (char)(*c - 'a' + 'A');
    if (strlen(out) == 17)
        snprintf(out + 15, 3, "%02X", (unsigned)(strtoul(out + 15, NULL, 16) + 1) & 0xFFu);
}

static void header(char *buf, size_t cap, const char *name, const char *value)
{
    size_t len = strlen(buf);
    snprintf(buf + len, cap - len, "%s: %s\r\n", name, value);
}

static void header_num(char *buf, size_t cap, const char *name, uint32_t value)
{
    char num[12];
    snprintf(num, sizeof num, "%u", (unsigned)value);
    header(buf, cap, name, num);
}

int aloft_pull_check(struct aloft_agent *a, struct aloft_pull *j, bool frontend, const char sketch_md5[33],
                     const char sketch_sha256[65])
{
    if (aloft_boot_state(a->boot) == ALOFT_OTA_PENDING_VERIFY) {
        aloft_agent_log(a, "check: skipped: the running image has not confirmed itself yet");
        return ALOFT_E_STATE;
    }
    if (a->busy) { /* j may be the running job's: leave it alone */
        aloft_agent_log(a, "check: skipped: an update is in progress");
        return ALOFT_E_BUSY;
    }
    if (!a->server[0]) {
        aloft_agent_log(a, "check: skipped: no update server is set");
        return ALOFT_E_NOTFOUND;
    }
    aloft_pull_init(j, NULL);
    j->r.frontend = frontend;
    j->slot = aloft_pull_target(a, j);
    if (!j->slot) {
        aloft_agent_log(a, "pull: check: skipped: %s", j->reason);
        return ALOFT_E_NOTFOUND;
    }
    const char *version = a->app.has_desc ? a->app.desc.version : "";
    char *url = j->r.url;
    aloft_pull_server_url(a, "/update?dev=", url, sizeof j->r.url);
    escape(url, sizeof j->r.url, a->platform);
    snprintf(url + strlen(url), sizeof j->r.url - strlen(url), "&ver=");
    escape(url, sizeof j->r.url, version[0] ? version : "0");
    snprintf(j->url, sizeof j->url, "%s", url);

    /* what HTTPUpdate sends, for the first request only */
    const struct aloft_part *next = aloft_part_next_update(&a->boot->table, a->boot->running);
    char *h = j->text, ap[18], www[80]; /* a version, or the SHA-256 of a frontend without one */
    size_t cap = sizeof j->text;
    ap_mac(a->mac, ap);
    header(h, cap, "x-ESP32-STA-MAC", a->mac);
    header(h, cap, "x-ESP32-AP-MAC", ap);
    header_num(h, cap, "x-ESP32-free-space", next ? next->size : 0);
    header_num(h, cap, "x-ESP32-sketch-size", a->app.image_len);
    header(h, cap, "x-ESP32-sketch-md5", sketch_md5);
    header(h, cap, "x-ESP32-sketch-sha256", sketch_sha256);
    header_num(h, cap, "x-ESP32-chip-size", a->port->flash->size);
    header(h, cap, "x-ESP32-sdk-version", a->app.has_desc && a->app.desc.idf_ver[0] ? a->app.desc.idf_ver : "unknown");
    header(h, cap, "x-ESP32-mode", frontend ? "spiffs" : "sketch");
    if (frontend) { /* the frontend it has, as the last pull installed it */
        aloft_agent_get(a, "pull/www", www, sizeof www);
        if (!www[0])
            flashed_frontend(a, www);
        if (www[0])
            header(h, cap, "x-ESP32-version", www);
    } else if (version[0]) {
        header(h, cap, "x-ESP32-version", version);
    }
    /* a patch from the running image will do, when this build decodes them */
    if (!frontend && a->delta && aloft_agent_is_hex(sketch_sha256, 64))
        header(h, cap, "X-Aloft-Delta", sketch_sha256);
    j->check = true;
    a->busy = true;
    j->end = ALOFT_PULL_RUNNING;
    return 0;
}
