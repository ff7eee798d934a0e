/* aloftd: MAC whitelists, device outcome reports and staged rollouts.
 *
 * Admin (the token is checked by the caller):
 *   GET  /api/platforms/<p>/whitelist
 *   POST /api/platforms/<p>/whitelist  {"enabled": true|false, "add": [MAC...], "remove": [MAC...]}
 *        (each member optional). An enabled whitelist, empty or not, lets only
 *        its MACs update: /update answers 403 not_whitelisted to the others.
 *   POST /api/platforms/<p>/rollouts   {"version": V, "stages": [1, 10, 50, 100],
 *                                       "max_failures": 3 | "5%", "auto_advance": 20 | "90%"}
 *   GET  /api/rollouts, /api/rollouts/<id>
 *   POST /api/rollouts/<id>/advance|pause|resume|abort
 * Device (no token: signed with its credential, credential.c):
 *   POST /api/devices/<mac>/report?auth=<HMAC>  {"version": V, "result": "updated"|"rolled_back"|"failed",
 *                  "target": the release it is about, "reason": ..., "partition": ..., "state": ...,
 *                  "reset_reason": ...}
 *
 * A rollout offers its release to the devices whose bucket — a hash of the
 * rollout id and the MAC into [0, 100) — is below the current stage's
 * percentage, and the release that was current before it (`previous`) to
 * the others — whatever is pinned meanwhile. Paused or halted, it offers
 * `previous` to every device. Then the platform's pin or newest release
 * decides again once it is over: aborted, it pins `previous` (so that a
 * rollout of the newest upload is really undone; unpin to serve the newest
 * again) as a pin that only holds: a device that took the release is never
 * offered `previous` (an operator's own pin is what downgrades); completed
 * (advanced past its last stage), it moves a pin the platform has to its
 * own release, and pins it on a platform that publishes by hand (the way to
 * roll out safely: publish by hand, or pin the running release, then
 * upload and start the rollout).
 * Each device it was offered to (a 200 from /update) gets one outcome: its
 * report's, or else what its next check-in shows. Back on the rollout's
 * version, it succeeded ("updated") even without a report; on any other
 * version it failed ("old_version"; newer counts as updated, one it cannot
 * order settles nothing): a device gets the 200 only when it
 * does not run the release, and downloads, flashes and restarts before it
 * asks again, so the next check-in after the 200 comes from what it
 * booted. The check-in that gets the 200 is not that one; a device with an
 * outcome keeps it (a later report replaces it, a check-in does not).
 * Failures (failed, rolled_back, old_version) beyond max_failures — a
 * count, or a percentage of the devices offered — halt it by itself.
 * auto_advance (a count, or a percentage) advances it by itself, as the
 * operator's advance would, once that many of the devices offered in the
 * current stage succeeded (at least one offered): looked at whenever an
 * outcome arrives while it is active, and when it is resumed (paused, it
 * stays). Both rules read each stage's counters, which the store keeps with
 * every offer and outcome (store.h): never a count over the devices. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "aloft/err.h"
#include "aloftd.h"
#include "semver.h"

unsigned aloftd_rollout_bucket(int64_t id, const char *mac)
{
    char key[64];
    snprintf(key, sizeof key, "%lld/%s", (long long)id, mac);
    uint64_t h = 1469598103934665603ull; /* FNV-1a, 64 bits */
    for (const char *p = key; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    return (unsigned)(h % 100);
}

bool aloftd_mac_normalize(const char *s, char out[18])
{
    char hex[13];
    size_t n = 0;
    for (const char *p = s; *p; p++) {
        char ch = *p;
        if (ch == ':' || ch == '-')
            continue;
        if (n == 12 || !((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
            return false;
        hex[n++] = (char)(ch >= 'a' && ch <= 'f' ? ch - 'a' + 'A' : ch);
    }
    if (n != 12 || (strlen(s) != 12 && strlen(s) != 17))
        return false;
    for (int i = 0; i < 6; i++) {
        out[3 * i] = hex[2 * i];
        out[3 * i + 1] = hex[2 * i + 1];
        out[3 * i + 2] = i < 5 ? ':' : 0;
    }
    return true;
}

static cJSON *parse_body(const char *body, size_t len)
{
    cJSON *in = len ? cJSON_ParseWithLength(body, len) : NULL;
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return NULL;
    }
    return in;
}

/* ---- whitelist ---- */

static int add_mac(void *ctx, const char *mac)
{
    cJSON_AddItemToArray(ctx, cJSON_CreateString(mac));
    return 0;
}

static enum MHD_Result whitelist_reply(struct aloftd *d, struct MHD_Connection *c, const char *platform)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "platform", platform);
    cJSON *macs = cJSON_CreateArray();
    bool on = false;
    int rc = aloft_store_whitelist(d->store, platform, &on, add_mac, macs);
    if (rc) {
        cJSON_Delete(macs);
        cJSON_Delete(j);
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    }
    cJSON_AddBoolToObject(j, "enabled", on);
    cJSON_AddItemToObject(j, "macs", macs);
    return aloftd_reply_json(c, 200, j);
}

enum MHD_Result aloftd_whitelist(struct aloftd *d, struct MHD_Connection *c, const char *platform, bool post,
                                 const char *body, size_t len, bool too_big)
{
    if (!post)
        return whitelist_reply(d, c, platform);
    if (too_big)
        return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
    cJSON *in = parse_body(body, len);
    if (!in)
        return aloftd_reply_error(c, 400, "bad_json",
                                  "send a JSON object: {\"enabled\": true, \"add\": [\"AA:BB:CC:DD:EE:FF\"], "
                                  "\"remove\": [...]}");
    const cJSON *en = cJSON_GetObjectItemCaseSensitive(in, "enabled");
    const cJSON *add = cJSON_GetObjectItemCaseSensitive(in, "add");
    const cJSON *rem = cJSON_GetObjectItemCaseSensitive(in, "remove");
    const char *bad = en && !cJSON_IsBool(en) ? "enabled must be true or false"
                      : add && !cJSON_IsArray(add) ? "add must be a list of MACs"
                      : rem && !cJSON_IsArray(rem) ? "remove must be a list of MACs"
                      : !en && !add && !rem ? "give enabled, add or remove" : NULL;
    const cJSON *m;
    char mac[18];
    cJSON_ArrayForEach(m, add) if (!bad && (!cJSON_IsString(m) || !aloftd_mac_normalize(m->valuestring, mac))) bad =
        "a MAC looks like AA:BB:CC:DD:EE:FF";
    cJSON_ArrayForEach(m, rem) if (!bad && (!cJSON_IsString(m) || !aloftd_mac_normalize(m->valuestring, mac))) bad =
        "a MAC looks like AA:BB:CC:DD:EE:FF";
    if (bad) {
        cJSON_Delete(in);
        return aloftd_reply_error(c, 400, "bad_parameter", "%s", bad);
    }
    int rc = 0;
    cJSON_ArrayForEach(m, add) if (!rc && aloftd_mac_normalize(m->valuestring, mac)) rc =
        aloft_store_whitelist_add(d->store, platform, mac);
    char missing[18] = "";
    cJSON_ArrayForEach(m, rem) if (!rc && aloftd_mac_normalize(m->valuestring, mac)) {
        rc = aloft_store_whitelist_remove(d->store, platform, mac);
        if (rc == ALOFT_E_NOTFOUND) {
            snprintf(missing, sizeof missing, "%s", mac);
            rc = 0;
        }
    }
    if (!rc && en)
        rc = aloft_store_whitelist_enable(d->store, platform, cJSON_IsTrue(en));
    if (!rc && en)
        aloftd_log("%s: whitelist %s", platform, cJSON_IsTrue(en) ? "on" : "off");
    cJSON_Delete(in);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    if (missing[0])
        return aloftd_reply_error(c, 404, "not_listed", "%s is not on the whitelist of %s (the rest was done)",
                                  missing, platform);
    return whitelist_reply(d, c, platform);
}

/* ---- rollouts ---- */

static void time_text(int64_t t, cJSON *j, const char *key)
{
    char buf[21];
    aloftd_time(t, buf);
    cJSON_AddStringToObject(j, key, buf);
}

/* A threshold as JSON: a count, or "N%". */
static void threshold_json(cJSON *j, const char *key, int64_t n, bool percent)
{
    char pct[24];
    snprintf(pct, sizeof pct, "%lld%%", (long long)n);
    cJSON_AddItemToObject(j, key, percent ? cJSON_CreateString(pct) : cJSON_CreateNumber((double)n));
}

/* A threshold from JSON: a whole count from min, or a string "N%" with N
 * from min to 100. */
static bool threshold_parse(const cJSON *j, int64_t min, int64_t *n, bool *percent)
{
    if (cJSON_IsNumber(j) && j->valuedouble >= (double)min && j->valuedouble == (int64_t)j->valuedouble &&
        j->valuedouble < 1e9) {
        *n = (int64_t)j->valuedouble;
        *percent = false;
        return true;
    }
    char *end = NULL;
    long x = cJSON_IsString(j) ? strtol(j->valuestring, &end, 10) : -1;
    if (!end || end == j->valuestring || strcmp(end, "%") || x < min || x > 100)
        return false;
    *n = x;
    *percent = true;
    return true;
}

cJSON *aloftd_rollout_json(const struct aloft_store_rollout *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "id", (double)r->id);
    cJSON_AddStringToObject(j, "platform", r->platform);
    cJSON_AddStringToObject(j, "version", r->version);
    if (r->previous[0])
        cJSON_AddStringToObject(j, "previous", r->previous);
    else
        cJSON_AddNullToObject(j, "previous");
    cJSON_AddStringToObject(j, "status", r->status);
    cJSON *st = cJSON_AddArrayToObject(j, "stages");
    for (int i = 0; i < r->nstages; i++)
        cJSON_AddItemToArray(st, cJSON_CreateNumber(r->stages[i]));
    cJSON_AddNumberToObject(j, "stage", r->stage);
    cJSON_AddNumberToObject(j, "percent", !strcmp(r->status, "completed") ? 100 : r->stages[r->stage]);
    threshold_json(j, "max_failures", r->max_failures, r->max_failures_percent);
    if (r->auto_advance)
        threshold_json(j, "auto_advance", r->auto_advance, r->auto_advance_percent);
    else
        cJSON_AddNullToObject(j, "auto_advance");
    cJSON_AddNumberToObject(j, "offered", (double)r->offered);
    cJSON_AddNumberToObject(j, "failures", (double)r->failures);
    cJSON_AddNumberToObject(j, "successes", (double)r->successes);
    cJSON *cs = cJSON_AddObjectToObject(j, "stage_counts"); /* of the devices offered in the current stage */
    cJSON_AddNumberToObject(cs, "offered", (double)r->stage_offered);
    cJSON_AddNumberToObject(cs, "succeeded", (double)r->stage_successes);
    cJSON_AddNumberToObject(cs, "failed", (double)r->stage_failures);
    cJSON *by = cJSON_AddArrayToObject(j, "by_stage"); /* each stage's devices, by outcome */
    for (int i = 0; i < r->nstages; i++) {
        const struct aloft_store_stage_counts *k = &r->counts[i];
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "percent", r->stages[i]);
        cJSON_AddNumberToObject(o, "offered", (double)k->offered);
        cJSON_AddNumberToObject(o, "updated", (double)k->updated);
        cJSON_AddNumberToObject(o, "failed", (double)k->failed);
        cJSON_AddNumberToObject(o, "rolled_back", (double)k->rolled_back);
        cJSON_AddNumberToObject(o, "old_version", (double)k->old_version);
        cJSON_AddItemToArray(by, o);
    }
    cJSON_AddStringToObject(j, "reason", r->reason);
    time_text(r->created_at, j, "created_at");
    time_text(r->updated_at, j, "updated_at");
    return j;
}

enum MHD_Result aloftd_rollout_start(struct aloftd *d, struct MHD_Connection *c, const char *platform,
                                     const char *body, size_t len, bool too_big)
{
    if (too_big)
        return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
    cJSON *in = parse_body(body, len);
    if (!in)
        return aloftd_reply_error(c, 400, "bad_json",
                                  "send a JSON object: {\"version\": \"1.2.3\", \"stages\": [1, 10, 50, 100], "
                                  "\"max_failures\": \"5%%\", \"auto_advance\": \"90%%\"}");
    struct aloft_store_rollout r;
    memset(&r, 0, sizeof r);
    snprintf(r.platform, sizeof r.platform, "%s", platform);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "version");
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(in, "stages");
    const cJSON *mf = cJSON_GetObjectItemCaseSensitive(in, "max_failures");
    const cJSON *aa = cJSON_GetObjectItemCaseSensitive(in, "auto_advance");
    const char *bad = NULL;
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) > ALOFT_STORE_VERSION_MAX)
        bad = "give the release's version: \"version\": \"1.2.3\"";
    else
        snprintf(r.version, sizeof r.version, "%s", v->valuestring);
    if (!st) {
        static const int def[] = {1, 10, 50, 100};
        memcpy(r.stages, def, sizeof def);
        r.nstages = 4;
    } else if (!cJSON_IsArray(st) || cJSON_GetArraySize(st) < 1 || cJSON_GetArraySize(st) > ALOFT_STORE_STAGES_MAX) {
        bad = bad ? bad : "stages: a list of 1 to 10 percentages, e.g. [1, 10, 50, 100]";
    } else {
        const cJSON *s;
        cJSON_ArrayForEach(s, st)
        {
            double x = cJSON_IsNumber(s) ? s->valuedouble : -1;
            if (x < 1 || x > 100 || x != (int)x || (r.nstages && (int)x <= r.stages[r.nstages - 1])) {
                bad = bad ? bad : "stages: whole percentages from 1 to 100, each larger than the one before";
                break;
            }
            r.stages[r.nstages++] = (int)x;
        }
    }
    if (!mf) {
        r.max_failures = 5;
        r.max_failures_percent = true;
    } else if (!threshold_parse(mf, 0, &r.max_failures, &r.max_failures_percent)) {
        bad = bad ? bad : "max_failures: a count (3) or a percentage of the devices offered (\"5%\")";
    }
    if (aa && !cJSON_IsNull(aa) && !threshold_parse(aa, 1, &r.auto_advance, &r.auto_advance_percent))
        bad = bad ? bad
                  : "auto_advance: how many devices offered in a stage must succeed before the next one opens by "
                    "itself, a count (20) or a percentage of them (\"90%\"), at least 1";
    cJSON_Delete(in);
    if (bad)
        return aloftd_reply_error(c, 400, "bad_parameter", "%s", bad);
    int rc = aloft_store_rollout_add(d->store, &r);
    if (rc == ALOFT_E_NOTFOUND)
        return aloftd_reply_error(c, 404, "unknown_version", "platform '%s' has no firmware release '%s'", platform,
                                  r.version);
    if (rc == ALOFT_E_STATE)
        return aloftd_reply_error(c, 409, "rollout_running",
                                  "platform '%s' has a rollout active or paused: advance, abort or finish it first",
                                  platform);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    aloftd_log("%s: rollout %lld of %s started at %d%% (others: %s)%s", r.platform, (long long)r.id, r.version,
               r.stages[0], r.previous[0] ? r.previous : "nothing", r.auto_advance ? ", advancing by itself" : "");
    aloftd_metrics_rollout_event();
    aloftd_mqtt_rollout(d, &r, 0); /* MQTT triggers to the first stage's devices */
    return aloftd_reply_json(c, 201, aloftd_rollout_json(&r));
}

static int add_rollout(void *ctx, const struct aloft_store_rollout *r)
{
    cJSON_AddItemToArray(ctx, aloftd_rollout_json(r));
    return 0;
}

/* Does r have more failures than it allows? */
static bool over_threshold(const struct aloft_store_rollout *r)
{
    if (r->max_failures_percent)
        return r->failures * 100 > (uint64_t)r->max_failures * r->offered;
    return r->failures > (uint64_t)r->max_failures;
}

/* Have enough of the devices offered in r's current stage succeeded for it
 * to advance by itself? */
static bool stage_done(const struct aloft_store_rollout *r)
{
    if (!r->auto_advance || !r->stage_offered)
        return false;
    if (r->auto_advance_percent)
        return r->stage_successes * 100 >= (uint64_t)r->auto_advance * r->stage_offered;
    return r->stage_successes >= (uint64_t)r->auto_advance;
}

/* Move r, as it was read, to (stage, to) for why; hand the platform back to
 * its pin when it is over (see the top of the file); trigger the devices a
 * new stage adds. r is read again. ALOFT_E_STATE: it changed meanwhile. */
static int move(struct aloftd *d, struct aloft_store_rollout *r, int stage, const char *to, const char *why)
{
    int stage_before = r->stage;
    int rc = aloft_store_rollout_set(d->store, r->id, r->status, r->stage, stage, to, why);
    struct aloft_store_platform p;
    if (rc == 0 && (!strcmp(to, "aborted") || !strcmp(to, "completed")))
        rc = aloft_store_platform_get(d->store, r->platform, false, &p);
    /* an abort holds the devices outside back on previous and never
     * downgrades one that took the release: the pin only holds */
    if (rc == 0 && !strcmp(to, "aborted") && r->previous[0] &&
        (rc = aloft_store_pin_holds(d->store, r->platform, true)) == 0)
        rc = aloft_store_pin(d->store, r->platform, ALOFT_STORE_FIRMWARE, r->previous);
    if (rc == 0 && !strcmp(to, "completed") && (p.pinned[ALOFT_STORE_FIRMWARE][0] || p.publish_manual) &&
        strcmp(p.pinned[ALOFT_STORE_FIRMWARE], r->version))
        rc = aloft_store_pin(d->store, r->platform, ALOFT_STORE_FIRMWARE, r->version);
    if (rc == 0)
        rc = aloft_store_rollout_get(d->store, r->id, r);
    if (rc)
        return rc;
    aloftd_log("%s: rollout %lld: %s; %s at %d%%%s%s%s", r->platform, (long long)r->id, why, r->status,
               r->stages[r->stage], !strcmp(to, "aborted") && r->previous[0] ? "; held at " : "",
               !strcmp(to, "aborted") && r->previous[0] ? r->previous : "",
               !strcmp(to, "aborted") && r->previous[0] ? " (no device that took it is downgraded)" : "");
    aloftd_metrics_rollout_event();
    if (r->stage > stage_before) /* the devices the new stage adds */
        aloftd_mqtt_rollout(d, r, r->stages[stage_before]);
    return 0;
}

/* A device's outcome was counted for rollout id: halt it when failures are
 * over max_failures, else advance it when its stage is done. *r: the
 * rollout now. *changed: it halted or advanced. */
static int judge(struct aloftd *d, int64_t id, struct aloft_store_rollout *r, bool *changed)
{
    *changed = false;
    for (int tries = 0; tries < 3; tries++) { /* again when another request or server moved it first */
        int rc = aloft_store_rollout_get(d->store, id, r);
        if (rc)
            return rc;
        bool running = !strcmp(r->status, "active") || !strcmp(r->status, "paused");
        char why[200];
        if (running && over_threshold(r)) {
            snprintf(why, sizeof why, "halted: %llu failures of %llu devices offered, more than max_failures %lld%s",
                     (unsigned long long)r->failures, (unsigned long long)r->offered, (long long)r->max_failures,
                     r->max_failures_percent ? "%" : "");
            rc = move(d, r, r->stage, "halted", why);
        } else if (!strcmp(r->status, "active") && stage_done(r)) {
            bool last = r->stage + 1 == r->nstages;
            snprintf(why, sizeof why,
                     "advanced by itself: %llu of %llu devices offered at %d%% updated (auto_advance %lld%s)",
                     (unsigned long long)r->stage_successes, (unsigned long long)r->stage_offered,
                     r->stages[r->stage], (long long)r->auto_advance, r->auto_advance_percent ? "%" : "");
            rc = move(d, r, last ? r->stage : r->stage + 1, last ? "completed" : "active", why);
        } else {
            return 0;
        }
        if (rc != ALOFT_E_STATE) {
            *changed = rc == 0;
            return rc;
        }
    }
    return aloft_store_rollout_get(d->store, id, r);
}

bool aloftd_rollout_checkin(struct aloftd *d, const struct aloft_store_rollout *ro, const char *mac, const char *ver)
{
    /* only a device inside the current share can have been offered it
     * (shares only grow): the others cost no database work */
    if (!mac[0] || (strcmp(ro->status, "active") && strcmp(ro->status, "paused")) ||
        aloftd_rollout_bucket(ro->id, mac) >= (unsigned)ro->stages[ro->stage])
        return false;
    /* newer than the release is no failure of it; a version the server
     * cannot order is never assumed older, so it settles nothing */
    int order = strcmp(ver, ro->version) ? aloft_semver_compare(ver, ro->version) : ALOFT_SEMVER_SAME;
    if (order == ALOFT_SEMVER_UNORDERED)
        return false;
    bool on_release = order != ALOFT_SEMVER_OLDER;
    bool counted = false, changed = false;
    int stage = -1;
    struct aloft_store_stage_counts k;
    /* A success changes neither the failures nor the devices offered, so
     * it can only complete the stage it was offered in: without
     * auto_advance it changes nothing now, and is written with the next
     * batch of check-ins; else the rollout is read and judged only when
     * that is its current stage and its counters (from the same
     * transaction) say it is done. A failure always is. */
    int rc = aloft_store_rollout_settle(d->store, ro->id, mac, on_release, !ro->auto_advance, &counted, &stage, &k);
    struct aloft_store_rollout r = *ro;
    r.stage_offered = k.offered;
    r.stage_successes = k.updated;
    if (rc == 0 && counted && (!on_release || (stage == ro->stage && stage_done(&r))))
        rc = judge(d, ro->id, &r, &changed);
    if (rc)
        aloftd_log("rollout %lld: the check-in of %s: %s", (long long)ro->id, mac, aloft_store_error());
    return changed;
}

static int add_point(void *ctx, const struct aloft_store_rollout_point *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "at", (double)p->at);
    cJSON_AddNumberToObject(o, "stage", p->stage);
    cJSON_AddNumberToObject(o, "offered", (double)p->k.offered);
    cJSON_AddNumberToObject(o, "updated", (double)p->k.updated);
    cJSON_AddNumberToObject(o, "failed", (double)p->k.failed);
    cJSON_AddNumberToObject(o, "rolled_back", (double)p->k.rolled_back);
    cJSON_AddNumberToObject(o, "old_version", (double)p->k.old_version);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

/* r's progress over time: each stage's counters at the end of each step
 * in which they changed (Unix seconds; a stage keeps its last values
 * until its next point), after r as it is now. */
static enum MHD_Result history_reply(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_rollout *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "id", (double)r->id);
    cJSON_AddNumberToObject(j, "created_at", (double)r->created_at);
    cJSON_AddNumberToObject(j, "updated_at", (double)r->updated_at);
    cJSON *points = cJSON_AddArrayToObject(j, "points");
    int rc = aloft_store_rollout_history(d->store, r->id, add_point, points);
    if (rc) {
        cJSON_Delete(j);
        return aloftd_reply_store_error(c, rc, "", "");
    }
    cJSON_AddBoolToObject(j, "truncated", cJSON_GetArraySize(points) >= ALOFT_STORE_HISTORY_MAX);
    cJSON_AddItemToObject(j, "rollout", aloftd_rollout_json(r));
    return aloftd_reply_json(c, 200, j);
}

enum MHD_Result aloftd_rollout_route(struct aloftd *d, struct MHD_Connection *c, const char *rest, bool get,
                                     bool post)
{
    if (!*rest) {
        if (!get)
            return aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
        cJSON *j = cJSON_CreateObject();
        int rc = aloft_store_rollouts(d->store, add_rollout, cJSON_AddArrayToObject(j, "rollouts"));
        if (rc) {
            cJSON_Delete(j);
            return aloftd_reply_store_error(c, rc, "", "");
        }
        return aloftd_reply_json(c, 200, j);
    }
    char *end;
    long long id = strtoll(rest, &end, 10);
    if (end == rest || id <= 0 || (*end && *end != '/'))
        return aloftd_reply_error(c, 404, "unknown_rollout", "no such rollout");
    const char *action = *end ? end + 1 : NULL;
    struct aloft_store_rollout r;
    int rc = aloft_store_rollout_get(d->store, id, &r);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_rollout", "no such rollout");
    if (!action)
        return get ? aloftd_reply_json(c, 200, aloftd_rollout_json(&r))
                   : aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    if (!strcmp(action, "history"))
        return get ? history_reply(d, c, &r) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    if (!post)
        return aloftd_reply_error(c, 405, "method_not_allowed", "use POST");
    int stage = r.stage;
    const char *to;
    bool running = !strcmp(r.status, "active") || !strcmp(r.status, "paused");
    if (!strcmp(action, "advance") && running) {
        to = r.stage + 1 < r.nstages ? "active" : "completed";
        stage = r.stage + 1 < r.nstages ? r.stage + 1 : r.stage;
    } else if (!strcmp(action, "pause") && !strcmp(r.status, "active")) {
        to = "paused";
    } else if (!strcmp(action, "resume") && !strcmp(r.status, "paused")) {
        to = "active";
    } else if (!strcmp(action, "abort") && (running || !strcmp(r.status, "halted"))) {
        to = "aborted";
    } else if (!strcmp(action, "advance") || !strcmp(action, "pause") || !strcmp(action, "resume") ||
               !strcmp(action, "abort")) {
        return aloftd_reply_error(c, 409, "bad_state", "rollout %lld is %s: cannot %s it", id, r.status, action);
    } else {
        return aloftd_reply_error(c, 404, "not_found", "no such action: advance, pause, resume or abort");
    }
    char why[80];
    snprintf(why, sizeof why, "%s by the operator", action);
    rc = move(d, &r, stage, to, why);
    bool changed;
    if (rc == 0 && !strcmp(action, "resume")) /* the outcomes that came meanwhile may have done the stage */
        rc = judge(d, id, &r, &changed);
    if (rc == ALOFT_E_STATE)
        return aloftd_reply_error(c, 409, "bad_state", "rollout %lld changed meanwhile: try again", id);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_rollout", "no such rollout");
    return aloftd_reply_json(c, 200, aloftd_rollout_json(&r));
}

/* ---- device reports ---- */

static bool text_ok(const cJSON *j, size_t max)
{
    if (!j)
        return true;
    if (!cJSON_IsString(j) || strlen(j->valuestring) > max)
        return false;
    for (const char *p = j->valuestring; *p; p++)
        if ((unsigned char)*p < ' ' || (unsigned char)*p > '~')
            return false;
    return true;
}

static void copy_text(const cJSON *in, const char *key, char *out, size_t cap)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(in, key);
    snprintf(out, cap, "%s", cJSON_IsString(j) ? j->valuestring : "");
}

enum MHD_Result aloftd_report(struct aloftd *d, struct MHD_Connection *c, const char *rest, const char *body,
                              size_t len, bool too_big)
{
    char mac[18], id[40];
    size_t n = strcspn(rest, "/");
    if (n >= sizeof id || strcmp(rest + n, "/report"))
        return aloftd_reply_error(c, 404, "not_found", "devices report to POST /api/devices/<MAC>/report");
    memcpy(id, rest, n);
    id[n] = 0;
    if (!aloftd_mac_normalize(id, mac))
        return aloftd_reply_error(c, 400, "bad_parameter", "the device id is its MAC: AA:BB:CC:DD:EE:FF");
    if (too_big)
        return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
    if (!aloftd_credential_check(d, mac, body, len, aloftd_arg(c, "auth")))
        return aloftd_reply_error(c, 401, "unauthenticated",
                                  "a report counts only signed with the device's credential: ?auth= the "
                                  "HMAC-SHA256 of the body (aloft server credential %s)", mac);
    cJSON *in = parse_body(body, len);
    if (!in)
        return aloftd_reply_error(c, 400, "bad_json",
                                  "send a JSON object: {\"version\": \"1.2.3\", \"result\": \"updated\", "
                                  "\"target\": \"1.2.3\", \"reason\": \"...\"}");
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "version");
    const cJSON *res = cJSON_GetObjectItemCaseSensitive(in, "result");
    const char *bad = NULL;
    if (!cJSON_IsString(v) || !v->valuestring[0] || !text_ok(v, ALOFT_STORE_VERSION_MAX))
        bad = "version: the version the device runs now";
    else if (!cJSON_IsString(res) || (strcmp(res->valuestring, "updated") && strcmp(res->valuestring, "rolled_back") &&
                                      strcmp(res->valuestring, "failed")))
        bad = "result: updated, rolled_back or failed";
    else if (!text_ok(cJSON_GetObjectItemCaseSensitive(in, "target"), ALOFT_STORE_VERSION_MAX) ||
             !text_ok(cJSON_GetObjectItemCaseSensitive(in, "reason"), 199) ||
             !text_ok(cJSON_GetObjectItemCaseSensitive(in, "partition"), 16) ||
             !text_ok(cJSON_GetObjectItemCaseSensitive(in, "state"), 23) ||
             !text_ok(cJSON_GetObjectItemCaseSensitive(in, "reset_reason"), 23))
        bad = "target (64), reason (199), partition (16), state and reset_reason (23): printable text of at most "
              "that length";
    if (bad) {
        cJSON_Delete(in);
        return aloftd_reply_error(c, 400, "bad_parameter", "%s", bad);
    }
    struct aloft_store_report r;
    memset(&r, 0, sizeof r);
    snprintf(r.mac, sizeof r.mac, "%s", mac);
    copy_text(in, "version", r.version, sizeof r.version);
    copy_text(in, "result", r.result, sizeof r.result);
    copy_text(in, "reason", r.reason, sizeof r.reason);
    char target[ALOFT_STORE_VERSION_MAX + 1];
    copy_text(in, "target", target, sizeof target);
    copy_text(in, "partition", r.partition, sizeof r.partition);
    copy_text(in, "state", r.state, sizeof r.state);
    copy_text(in, "reset_reason", r.reset_reason, sizeof r.reset_reason);
    cJSON_Delete(in);
    char platform[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_report_add(d->store, &r, (int64_t)time(NULL), platform);
    if (rc == ALOFT_E_NOTFOUND)
        return aloftd_reply_error(c, 404, "unknown_device", "device %s has never checked in", mac);
    if (rc)
        return aloftd_reply_store_error(c, rc, "", "");
    aloftd_metrics_report(r.result);

    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddStringToObject(j, "mac", mac);
    struct aloft_store_rollout ro;
    rc = aloft_store_rollout_governing(d->store, platform, &ro);
    bool counted = false, changed;
    /* a report counts for the rollout of the release it is about: a copy
     * of an older report, sent again, is about another one */
    if (rc == 0 && (!strcmp(ro.status, "active") || !strcmp(ro.status, "paused")) && !strcmp(target, ro.version))
        rc = aloft_store_rollout_result(d->store, ro.id, mac, r.result, &counted);
    if (rc == 0 && counted)
        rc = judge(d, ro.id, &ro, &changed);
    if (rc && rc != ALOFT_E_NOTFOUND) {
        cJSON_Delete(j);
        return aloftd_reply_store_error(c, rc, "", "");
    }
    cJSON_AddBoolToObject(j, "counted", counted);
    if (counted)
        cJSON_AddItemToObject(j, "rollout", aloftd_rollout_json(&ro));
    return aloftd_reply_json(c, 200, j);
}
