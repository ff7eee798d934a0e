/* aloftd: signed uploads. A platform may require that every upload carry a
 * secure boot v2 signature block (FORMATS.md §6) by one of its keys; each
 * release records the digest of the key whose block verified (its signer).
 *
 * Admin (the token is checked by the caller):
 *   GET  /api/platforms/<p>/signing
 *   POST /api/platforms/<p>/signing  {"add": [DIGEST...], "remove": [DIGEST...]}
 *        A DIGEST is a public key digest, 64 hex digits (aloft keygen and
 *        espsecure digest_sbv2_public_key print it). With no key left, the
 *        platform takes unsigned uploads again. */
#include <ctype.h>
#include <string.h>

#include "aloft/err.h"
#include "aloftd.h"
#include "hex.h"
#include "signing.h"

/* 64 hex digits into out in lower case; false when s is not that. */
static bool digest_ok(const char *s, char out[65])
{
    size_t i = 0;
    for (; s[i] && i < 64; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return false;
        out[i] = (char)tolower((unsigned char)s[i]);
    }
    out[i] = 0;
    return i == 64 && !s[i];
}

static int add_key(void *ctx, const char *digest)
{
    cJSON_AddItemToArray(ctx, cJSON_CreateString(digest));
    return 0;
}

static enum MHD_Result reply(struct aloftd *d, struct MHD_Connection *c, const char *platform)
{
    cJSON *keys = cJSON_CreateArray();
    int rc = aloft_store_signing_keys(d->store, platform, add_key, keys);
    if (rc) {
        cJSON_Delete(keys);
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "platform", platform);
    cJSON_AddBoolToObject(j, "required", cJSON_GetArraySize(keys) > 0);
    cJSON_AddItemToObject(j, "keys", keys);
    return aloftd_reply_json(c, 200, j);
}

enum MHD_Result aloftd_signing(struct aloftd *d, struct MHD_Connection *c, const char *platform, bool post,
                               const char *body, size_t len, bool too_big)
{
    if (!post)
        return reply(d, c, platform);
    if (too_big)
        return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
    cJSON *in = cJSON_ParseWithLength(body, len);
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(in, "add");
    const cJSON *rem = cJSON_GetObjectItemCaseSensitive(in, "remove");
    const char *bad = !cJSON_IsObject(in) ? "send a JSON object: {\"add\": [DIGEST], \"remove\": [DIGEST]}"
                      : (add && !cJSON_IsArray(add)) || (rem && !cJSON_IsArray(rem)) ? "add and remove are lists"
                      : !add && !rem ? "give add or remove" : NULL;
    const cJSON *k;
    char hex[65];
    cJSON_ArrayForEach(k, add) if (!bad && (!cJSON_IsString(k) || !digest_ok(k->valuestring, hex))) bad =
        "a key is its public key digest: 64 hex digits";
    cJSON_ArrayForEach(k, rem) if (!bad && (!cJSON_IsString(k) || !digest_ok(k->valuestring, hex))) bad =
        "a key is its public key digest: 64 hex digits";
    if (bad) {
        cJSON_Delete(in);
        return aloftd_reply_error(c, 400, "bad_parameter", "%s", bad);
    }
    int rc = 0;
    char missing[65] = "";
    cJSON_ArrayForEach(k, add) if (!rc && digest_ok(k->valuestring, hex)) {
        if (!(rc = aloft_store_signing_key_add(d->store, platform, hex)))
            aloftd_log("%s: signing key %s added: uploads must be signed by a listed key", platform, hex);
    }
    cJSON_ArrayForEach(k, rem) if (!rc && digest_ok(k->valuestring, hex)) {
        rc = aloft_store_signing_key_remove(d->store, platform, hex);
        if (rc == ALOFT_E_NOTFOUND)
            snprintf(missing, sizeof missing, "%s", hex), rc = 0;
        else if (!rc)
            aloftd_log("%s: signing key %s removed", platform, hex);
    }
    cJSON_Delete(in);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    if (missing[0])
        return aloftd_reply_error(c, 404, "not_listed", "%s is not a signing key of %s (the rest was done)", missing,
                                  platform);
    return reply(d, c, platform);
}

struct keys {
    char hex[8][65];
    int n;
};

static int keep_key(void *ctx, const char *digest)
{
    struct keys *k = ctx;
    if (k->n < 8)
        snprintf(k->hex[k->n++], 65, "%s", digest);
    return 0;
}

const char *aloftd_signature_check(struct aloftd *d, const char *platform, const uint8_t *data, size_t len,
                                   char signer[65], char *why, size_t cap)
{
    struct keys policy = {.n = 0};
    if (aloft_store_signing_keys(d->store, platform, keep_key, &policy)) {
        snprintf(why, cap, "cannot read the signing policy of %s", platform);
        return "io_error";
    }
    struct aloft_signing_check ch[ALOFT_SIG_BLOCKS_MAX];
    size_t at = aloft_signing_sector(data, len);
    int n = at && at + ALOFT_SIG_SECTOR_BYTES == len ? aloft_signing_check(data, at, ch) : 0;
    bool listed_seen = false;
    signer[0] = 0;
    for (int i = 0; i < n; i++) {
        char hex[65];
        if (ch[i].parse)
            continue;
        aloft_hex(ch[i].b.key_digest, ALOFT_SIG_KEY_DIGEST_BYTES, hex);
        bool listed = !policy.n;
        for (int k = 0; k < policy.n; k++)
            listed |= !strcmp(policy.hex[k], hex);
        listed_seen |= listed && policy.n;
        if (ch[i].valid && listed) {
            memcpy(signer, hex, 65);
            return NULL;
        }
    }
    if (!policy.n)
        return NULL; /* no policy: an unsigned or badly signed upload is taken, signer "" */
    snprintf(why, cap,
             !n ? "platform %s requires a signature by one of its keys; the upload has none (aloft image sign)"
             : listed_seen ? "platform %s requires a signature by one of its keys; that key's block does not verify"
                           : "platform %s requires a signature by one of its keys; no block is by one of them",
             platform);
    return !n ? "unsigned" : listed_seen ? "bad_signature" : "untrusted_key";
}
