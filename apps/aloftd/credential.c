/* aloftd: device credentials. A device signs each outcome report with its
 * credential: ?auth= is the HMAC-SHA256 of the body under it. A credential
 * is derived from the server's device key and the MAC,
 *   hex(HMAC-SHA256(device key, "aloft device credential " MAC)),
 * so aloftd keeps nothing per device, and every instance on one database
 * (which keeps the key) checks the same way. An operator reads a device's
 * credential from the admin API and provisions it into the device
 * (security/server_key). */
#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>

#include "aloftd.h"
#include "hex.h"

int aloftd_credential_setup(struct aloftd *d)
{
    char fresh[65];
    if (aloftd_random_hex(fresh)) {
        aloftd_log("cannot make a device key: no randomness");
        return -1;
    }
    if (aloft_store_secret(d->store, "device_key", fresh, d->device_key, sizeof d->device_key) ||
        strlen(d->device_key) != 64) {
        aloftd_log("cannot read or store the device key: %s", aloft_store_error());
        return -1;
    }
    return 0;
}

void aloftd_credential(const struct aloftd *d, const char *mac, char out[65])
{
    char msg[64];
    uint8_t h[32];
    int n = snprintf(msg, sizeof msg, "aloft device credential %s", mac);
    HMAC(EVP_sha256(), d->device_key, (int)strlen(d->device_key), (const uint8_t *)msg, (size_t)n, h, NULL);
    aloft_hex(h, sizeof h, out);
}

bool aloftd_credential_check(const struct aloftd *d, const char *mac, const char *body, size_t len, const char *auth)
{
    char cred[65], want[65];
    uint8_t h[32];
    if (!auth || strlen(auth) != 64)
        return false;
    aloftd_credential(d, mac, cred);
    HMAC(EVP_sha256(), cred, 64, (const uint8_t *)(body ? body : ""), len, h, NULL);
    aloft_hex(h, sizeof h, want);
    return CRYPTO_memcmp(want, auth, 64) == 0; /* constant time: no byte-by-byte guessing */
}

enum MHD_Result aloftd_credential_route(struct aloftd *d, struct MHD_Connection *c, const char *rest, bool get)
{
    char id[40], mac[18], cred[65];
    size_t n = strcspn(rest, "/");
    if (n >= sizeof id || strcmp(rest + n, "/credential"))
        return aloftd_reply_error(c, 404, "not_found", "no such endpoint: GET /api/devices/<MAC>/credential");
    if (!get)
        return aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    memcpy(id, rest, n);
    id[n] = 0;
    if (!aloftd_mac_normalize(id, mac))
        return aloftd_reply_error(c, 400, "bad_parameter", "the device id is its MAC: AA:BB:CC:DD:EE:FF");
    aloftd_credential(d, mac, cred);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "mac", mac);
    cJSON_AddStringToObject(j, "credential", cred);
    return aloftd_reply_json(c, 200, j);
}

/* GET/POST /api/platforms/<p>/checkins {"settle": true|false}: may a
 * check-in, which no device signs (HTTPUpdate clients cannot), settle a
 * device in a rollout? On (the default) a plain HTTPUpdate fleet's
 * rollouts advance and halt; off, only signed reports count, so nobody
 * who can reach /update can halt or advance a rollout. */
enum MHD_Result aloftd_checkins(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_platform *p,
                                bool post, const char *body, size_t len, bool too_big)
{
    bool settle = p->checkins_settle;
    if (post) {
        if (too_big)
            return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
        cJSON *in = cJSON_ParseWithLength(body ? body : "", len);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(in, "settle");
        bool ok = cJSON_IsObject(in) && cJSON_IsBool(s) && cJSON_GetArraySize(in) == 1;
        settle = cJSON_IsTrue(s);
        cJSON_Delete(in);
        if (!ok)
            return aloftd_reply_error(c, 400, "bad_parameter", "send {\"settle\": true} or {\"settle\": false}");
        int rc = aloft_store_checkins_settle(d->store, p->name, settle);
        if (rc)
            return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
        if (settle != p->checkins_settle)
            aloftd_log("%s: check-ins %s settle rollouts%s", p->name, settle ? "now" : "no longer",
                       settle ? "" : ": only signed reports count");
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "platform", p->name);
    cJSON_AddBoolToObject(j, "settle", settle);
    return aloftd_reply_json(c, 200, j);
}
