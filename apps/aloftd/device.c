/* aloftd: GET /update?dev=<platform>&ver=<version> — the pull protocol of
 * Arduino's HTTPUpdate and ESP8266httpUpdate (PROTOCOLS.md §3.1):
 *   200  the current release: Content-Length, x-MD5, application/octet-stream
 *   304  nothing to do: the device runs the current release, or something
 *        newer (no downgrade unless the operator pinned one: an aborted
 *        rollout's pin only holds devices back), or a version
 *        that cannot be ordered (never assumed older), or the release does
 *        not fit its free space, or the platform publishes by hand and
 *        offers nothing yet
 *   403  the platform's whitelist is on and the MAC is not on it
 *   404  unknown platform, or a platform without a release
 *   400  a parameter missing, or a header malformed
 * Every answered check-in of a known platform with a MAC is recorded in the
 * device inventory with what it was told and why (queued, written in
 * batches: aloft_store_checkin_flush); a 304 says why in
 * X-Aloft-Reason too. x-ESP32-mode: spiffs asks for the frontend image; the
 * device names the one it has in x-ESP32-version (its label or SHA-256).
 * While a rollout decides the platform's firmware (rollout.c), the release
 * considered is the rollout's for devices in its current share and the one
 * current before it for the others; a 304 then says how in X-Aloft-Rollout.
 * A check-in of a device the rollout was offered to is that device's
 * success or failure, before anything is decided (rollout.c).
 * What the decision needs of the database comes from the store's cache of
 * it (aloft_store_update_view), so a 304 touches the database not at all.
 * A device that takes delta patches names the image it runs in
 * X-Aloft-Delta: <sha256>; its 200 is the patch from that image when one
 * worth sending was made (deltas.c), else the image, and the patch is
 * asked for. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aloft/err.h"
#include "aloftd.h"
#include "semver.h"

static bool is_text(char ch)
{
    return (unsigned char)ch >= ' ' && (unsigned char)ch <= '~';
}

/* Printable ASCII only: the values go into headers, the database and JSON. */
static bool printable(const char *s)
{
    for (; *s; s++)
        if (!is_text(*s))
            return false;
    return true;
}

/* x-ESP32-<name>, or the ESP8266's x-ESP8266-<name>. */
static const char *esp_header(struct MHD_Connection *c, const char *name)
{
    char key[64];
    snprintf(key, sizeof key, "x-ESP32-%s", name);
    const char *v = aloftd_header(c, key);
    if (!v) {
        snprintf(key, sizeof key, "x-ESP8266-%s", name);
        v = aloftd_header(c, key);
    }
    return v;
}

/* "AA:BB:CC:DD:EE:FF" in either case, into upper case. */
static bool parse_mac(const char *s, char out[18])
{
    if (strlen(s) != 17)
        return false;
    for (int i = 0; i < 17; i++) {
        char ch = s[i];
        if (i % 3 == 2) {
            if (ch != ':')
                return false;
        } else if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F'))) {
            return false;
        }
        out[i] = (char)(ch >= 'a' && ch <= 'f' ? ch - 'a' + 'A' : ch);
    }
    out[17] = 0;
    return true;
}

/* A header holding a byte count: -1 when absent, -2 when malformed. */
static int64_t parse_count(const char *s)
{
    if (!s)
        return -1;
    size_t n = strlen(s);
    if (n == 0 || n > 15)
        return -2;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -2;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

static void client_ip(struct MHD_Connection *c, char *out, size_t cap)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    out[0] = 0;
    if (!ci || !ci->client_addr)
        return;
    if (ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, out, (socklen_t)cap);
    else if (ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, out, (socklen_t)cap);
}

static enum MHD_Result not_modified(struct MHD_Connection *c, const char *reason, const char *rollout)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "X-Aloft-Reason", reason);
    if (rollout && rollout[0])
        MHD_add_response_header(r, "X-Aloft-Rollout", rollout);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NOT_MODIFIED, r);
    MHD_destroy_response(r);
    return ret;
}

/* Should a device running ver get the firmware release cur? 0 = yes, else
 * the reason it should not, in why. */
static int firmware_decision(const struct aloft_store_platform *p, const struct aloft_store_release *cur,
                             const char *ver, const char *md5, int64_t free_space, char *why, size_t cap)
{
    bool pinned = p->pinned[ALOFT_STORE_FIRMWARE][0] != 0, downgrade = pinned && !p->pin_holds;
    if (md5 && strlen(md5) == 32 && !strcasecmp(md5, cur->md5)) {
        snprintf(why, cap, "runs the current release %s (same MD5)", cur->version);
        return 1;
    }
    int order = aloft_semver_compare(ver, cur->version);
    if (!strcmp(ver, cur->version) || order == ALOFT_SEMVER_SAME) {
        snprintf(why, cap, "runs the current release %s", cur->version);
        return 1;
    }
    if (!downgrade && order == ALOFT_SEMVER_NEWER) {
        snprintf(why, cap, "runs %s, newer than the current release %s (no downgrade unless %s)", ver, cur->version,
                 pinned ? "the operator pins it" : "pinned");
        return 1;
    }
    if (!downgrade && order == ALOFT_SEMVER_UNORDERED) {
        snprintf(why, cap, "cannot order %s against the current release %s, so it is not assumed older", ver,
                 cur->version);
        return 1;
    }
    if (free_space >= 0 && cur->size > (uint64_t)free_space) {
        snprintf(why, cap, "release %s (%llu bytes) does not fit the device's free space (%lld bytes)", cur->version,
                 (unsigned long long)cur->size, (long long)free_space);
        return 1;
    }
    snprintf(why, cap, "offered %s%s", cur->version, pinned ? " (pinned)" : "");
    return 0;
}

static int frontend_decision(const struct aloft_store_release *cur, const char *have, char *why, size_t cap)
{
    if (have && (!strcmp(have, cur->version) || !strcasecmp(have, cur->sha256))) {
        snprintf(why, cap, "has the current frontend %s", cur->version);
        return 1;
    }
    snprintf(why, cap, "offered frontend %s", cur->version);
    return 0;
}

/* The release to a device running the image base: the patch from it when
 * one worth sending exists (why then says so), else the image (and the
 * patch is asked for). */
static enum MHD_Result send_firmware(struct aloftd *d, struct MHD_Connection *c, const char *platform,
                                     const char *base, const struct aloft_store_release *cur, unsigned *status,
                                     char *why, size_t cap)
{
    struct aloft_store_delta p;
    int rc = aloft_store_delta_get(d->store, base, cur->sha256, &p);
    if (rc == 0 && p.worth && p.size < cur->size) {
        size_t len = strlen(why);
        snprintf(why + len, cap - len, " as a delta patch of %llu bytes", (unsigned long long)p.size);
        return aloftd_send_patch(d, c, cur, &p, status);
    }
    if (rc == ALOFT_E_NOTFOUND)
        aloftd_deltas_want(platform, base, cur);
    else if (rc)
        aloftd_log("delta: cannot look the patch up: %s; the image is sent", aloft_store_error());
    return aloftd_send_release(d, c, cur, status);
}

enum MHD_Result aloftd_update(struct aloftd *d, struct MHD_Connection *c)
{
    const char *dev = aloftd_arg(c, "dev"), *ver = aloftd_arg(c, "ver");
    if (!dev || !*dev || !ver || !*ver)
        return aloftd_reply_error(c, 400, "missing_parameter", "%s: give ?dev=<platform>&ver=<running version>",
                                  !dev || !*dev ? "dev is missing" : "ver is missing");
    if (strlen(ver) > ALOFT_STORE_VERSION_MAX || strlen(dev) > 64 || !printable(ver) || !printable(dev))
        return aloftd_reply_error(c, 400, "bad_parameter", "dev and ver are printable text of at most %d characters",
                                  ALOFT_STORE_VERSION_MAX);
    const char *mode = esp_header(c, "mode");
    if (mode && strcasecmp(mode, "sketch") && strcasecmp(mode, "spiffs"))
        return aloftd_reply_error(c, 400, "bad_header", "x-ESP32-mode must be sketch or spiffs");
    enum aloft_store_kind kind = mode && !strcasecmp(mode, "spiffs") ? ALOFT_STORE_FRONTEND : ALOFT_STORE_FIRMWARE;

    struct aloft_store_device dv;
    memset(&dv, 0, sizeof dv);
    const char *mac = esp_header(c, "STA-MAC");
    if (mac && !parse_mac(mac, dv.mac))
        return aloftd_reply_error(c, 400, "bad_header", "x-ESP32-STA-MAC must look like AA:BB:CC:DD:EE:FF");
    /* the image a device that takes patches runs: 64 hex digits */
    char base[65] = "";
    const char *delta = aloftd_header(c, "X-Aloft-Delta");
    if (delta) {
        for (size_t i = 0; i < 64 && delta[i]; i++)
            base[i] = (char)(delta[i] >= 'A' && delta[i] <= 'F' ? delta[i] - 'A' + 'a' : delta[i]);
        base[64] = 0;
        if (strlen(delta) != 64 || strspn(base, "0123456789abcdef") != 64)
            return aloftd_reply_error(c, 400, "bad_header",
                                      "X-Aloft-Delta must be the SHA-256 of the running image: 64 hex digits");
    }
    if (kind == ALOFT_STORE_FIRMWARE) /* remembered for the triggers' patches (mqtt.c) */
        memcpy(dv.image, base, sizeof dv.image);
    dv.free_space = parse_count(esp_header(c, "free-space"));
    dv.sketch_size = parse_count(esp_header(c, "sketch-size"));
    if (dv.free_space == -2 || dv.sketch_size == -2)
        return aloftd_reply_error(c, 400, "bad_header", "x-ESP32-free-space and x-ESP32-sketch-size are byte counts");
    const char *sdk = esp_header(c, "sdk-version");
    for (size_t i = 0; sdk && sdk[i] && i + 1 < sizeof dv.sdk_version; i++)
        dv.sdk_version[i] = is_text(sdk[i]) ? sdk[i] : '?';

    /* the platform, its whitelist, rollout and current releases: from
     * memory, read again only after a change (store.h) */
    struct aloft_store_update_view view;
    int rc = aloft_store_update_view(d->store, dev, dv.mac, &view);
    /* a device a rollout was offered to, back: a success or a failure
     * (rollout.c); the rollout it halted or advanced decides anew */
    if (rc == 0 && view.governing_rc == 0 && view.allowed && kind == ALOFT_STORE_FIRMWARE && dv.mac[0] &&
        view.p.checkins_settle && aloftd_rollout_checkin(d, &view.ro, dv.mac, ver))
        rc = aloft_store_update_view(d->store, dev, dv.mac, &view);
    if (rc == ALOFT_E_NOTFOUND)
        return aloftd_reply_error(c, 404, "unknown_platform", "no platform '%s' on this server", dev);
    if (rc)
        return aloftd_reply_store_error(c, rc, "", "");
    bool allowed = view.allowed;

    struct aloft_store_release cur;
    unsigned status;
    char why[320];
    /* A rollout of the platform's firmware decides which release this
     * device is offered: its own inside the stage's share, else the one
     * current before it. */
    bool in_stage = false, governed = false;
    char target[ALOFT_STORE_VERSION_MAX + 1] = "", rollout_note[120] = "";
    if (allowed && kind == ALOFT_STORE_FIRMWARE)
        governed = view.governing_rc == 0;
    if (governed) {
        unsigned bucket = dv.mac[0] ? aloftd_rollout_bucket(view.ro.id, dv.mac) : 100;
        in_stage = !strcmp(view.ro.status, "active") && bucket < (unsigned)view.ro.stages[view.ro.stage];
        snprintf(target, sizeof target, "%s", in_stage ? view.ro.version : view.ro.previous);
        snprintf(rollout_note, sizeof rollout_note, "id=%lld; status=%s; percent=%d; bucket=%u; %s",
                 (long long)view.ro.id, view.ro.status, view.ro.stages[view.ro.stage], bucket,
                 in_stage ? "in" : "out");
        int which = in_stage ? 0 : 1;
        rc = target[0] ? view.rollout_rc[which] : ALOFT_E_NOTFOUND;
        if (rc == 0)
            cur = view.rollout_release[which];
    } else {
        rc = allowed ? view.current_rc[kind] : 0;
        if (allowed && rc == 0)
            cur = view.current[kind];
    }
    if (rc && rc != ALOFT_E_NOTFOUND)
        return aloftd_reply_store_error(c, rc, "", "");
    enum MHD_Result ret;
    if (!allowed) {
        snprintf(why, sizeof why, "the whitelist of %s is on and %s is not on it", view.p.name,
                 dv.mac[0] ? dv.mac : "a device without x-ESP32-STA-MAC");
        status = 403;
        ret = aloftd_reply_error(c, 403, "not_whitelisted", "%s", why);
    } else if (governed && rc == ALOFT_E_NOTFOUND) {
        snprintf(why, sizeof why, "outside rollout %lld's share (%d%%, %s) and no release was current before it",
                 (long long)view.ro.id, view.ro.stages[view.ro.stage], view.ro.status);
        status = 304;
        ret = not_modified(c, why, rollout_note);
    } else if (rc == ALOFT_E_NOTFOUND && view.p.publish_manual) {
        snprintf(why, sizeof why, "platform %s publishes by hand and offers no %s yet", view.p.name,
                 aloft_store_kind_name(kind));
        status = 304;
        ret = not_modified(c, why, rollout_note);
    } else if (rc == ALOFT_E_NOTFOUND) {
        snprintf(why, sizeof why, "platform %s has no %s release", view.p.name, aloft_store_kind_name(kind));
        status = 404;
        ret = aloftd_reply_error(c, 404, "no_release", "%s", why);
    } else if (kind == ALOFT_STORE_FIRMWARE
                   ? firmware_decision(&view.p, &cur, ver, esp_header(c, "sketch-md5"), dv.free_space, why,
                                       sizeof why)
                   : frontend_decision(&cur, esp_header(c, "version"), why, sizeof why)) {
        status = 304;
        ret = not_modified(c, why, rollout_note);
    } else {
        ret = base[0] && kind == ALOFT_STORE_FIRMWARE && strcmp(base, cur.sha256)
                  ? send_firmware(d, c, view.p.name, base, &cur, &status, why, sizeof why)
                  : aloftd_send_release(d, c, &cur, &status);
        if (status == 200 && in_stage && dv.mac[0] &&
            aloft_store_rollout_offered(d->store, view.ro.id, view.ro.stage, dv.mac))
            aloftd_log("rollout %lld: offer to %s not recorded: %s", (long long)view.ro.id, dv.mac,
                       aloft_store_error());
    }
    aloftd_metrics_checkin(status);
    if (dv.mac[0]) {
        snprintf(dv.platform, sizeof dv.platform, "%s", view.p.name);
        snprintf(dv.version, sizeof dv.version, "%s", ver);
        snprintf(dv.mode, sizeof dv.mode, "%s", kind == ALOFT_STORE_FRONTEND ? "spiffs" : "sketch");
        client_ip(c, dv.ip, sizeof dv.ip);
        dv.last_status = (int)status;
        snprintf(dv.last_reason, sizeof dv.last_reason, "%s", why);
        if (aloft_store_checkin(d->store, &dv, (int64_t)time(NULL)))
            aloftd_log("check-in of %s not recorded: %s", dv.mac, aloft_store_error());
    }
    return ret;
}
