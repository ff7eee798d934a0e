/* aloftd: the admin API other than uploads (the token is checked by the
 * caller). JSON in and out:
 *   GET  /api/platforms
 *   POST /api/platforms  {"name": "...", "chip": "esp32c3", "publish": "auto"|"manual"}   before the first upload
 *   GET  /api/platforms/<p>
 *   GET|POST /api/platforms/<p>/publish  {"publish": "auto"|"manual"}
 *   GET  /api/platforms/<p>/releases[?kind=frontend]  full history, newest upload first
 *   POST /api/platforms/<p>/pin    {"version": "...", "kind": "firmware"}   also how to downgrade
 *   POST /api/platforms/<p>/unpin  {"kind": "firmware"}  back to the newest (refused when publishing by hand)
 *   GET  /api/devices[?platform=<p>]   with each device's last outcome report
 *   GET  /api/devices?limit=N&...      one page, filtered and sorted (devices_page)
 *   GET  /api/devices/<MAC>            the device, its last report, its history
 *   GET  /api/platforms/<p>/versions   how many devices run each version
 *   GET|POST /api/platforms/<p>/whitelist, GET|POST /api/platforms/<p>/signing, POST /api/platforms/<p>/rollouts,
 *   GET  /api/rollouts[/<id>], POST /api/rollouts/<id>/<action>: rollout.c
 *   GET  /api/devices/<MAC>/credential, GET|POST /api/platforms/<p>/checkins: credential.c */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloftd.h"

void aloftd_time(int64_t t, char out[21])
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (!gmtime_r(&tt, &tm) || !strftime(out, 21, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(out, 21, "%lld", (long long)t);
}

static void add_time(cJSON *j, const char *key, int64_t t)
{
    char buf[21];
    aloftd_time(t, buf);
    cJSON_AddStringToObject(j, key, buf);
}

static void add_string_or_null(cJSON *j, const char *key, const char *s)
{
    if (s && *s)
        cJSON_AddStringToObject(j, key, s);
    else
        cJSON_AddNullToObject(j, key);
}

cJSON *aloftd_release_json(const struct aloft_store_release *r, bool current)
{
    char url[80];
    snprintf(url, sizeof url, "/firmware/%s.bin", r->sha256);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "platform", r->platform);
    cJSON_AddStringToObject(j, "kind", aloft_store_kind_name(r->kind));
    cJSON_AddStringToObject(j, "version", r->version);
    cJSON_AddBoolToObject(j, "current", current);
    cJSON_AddNumberToObject(j, "size", (double)r->size);
    cJSON_AddStringToObject(j, "sha256", r->sha256);
    cJSON_AddStringToObject(j, "md5", r->md5);
    cJSON_AddStringToObject(j, "chip", r->chip);
    cJSON_AddStringToObject(j, "project", r->project);
    cJSON_AddNumberToObject(j, "secure_version", r->secure_version);
    cJSON_AddStringToObject(j, "idf_ver", r->idf_ver);
    add_string_or_null(j, "signer", r->signer);
    add_time(j, "uploaded_at", r->uploaded_at);
    cJSON_AddStringToObject(j, "url", url);
    return j;
}

static cJSON *platform_json(const struct aloft_store_platform *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "name", p->name);
    cJSON_AddStringToObject(j, "chip", p->chip);
    cJSON_AddStringToObject(j, "project", p->project);
    add_time(j, "created_at", p->created_at);
    add_string_or_null(j, "current", p->current[ALOFT_STORE_FIRMWARE]);
    add_string_or_null(j, "pinned", p->pinned[ALOFT_STORE_FIRMWARE]);
    add_string_or_null(j, "current_frontend", p->current[ALOFT_STORE_FRONTEND]);
    add_string_or_null(j, "pinned_frontend", p->pinned[ALOFT_STORE_FRONTEND]);
    cJSON_AddBoolToObject(j, "pin_holds", p->pin_holds); /* an aborted rollout's pin: no downgrade */
    cJSON_AddBoolToObject(j, "checkins_settle", p->checkins_settle);
    cJSON_AddStringToObject(j, "publish", p->publish_manual ? "manual" : "auto");
    cJSON_AddNumberToObject(j, "releases", (double)p->releases);
    cJSON_AddNumberToObject(j, "devices", (double)p->devices);
    return j;
}

static cJSON *device_json(const struct aloft_store_device *d)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "mac", d->mac);
    cJSON_AddStringToObject(j, "platform", d->platform);
    cJSON_AddStringToObject(j, "version", d->version);
    cJSON_AddStringToObject(j, "ip", d->ip);
    if (d->free_space >= 0)
        cJSON_AddNumberToObject(j, "free_space", (double)d->free_space);
    else
        cJSON_AddNullToObject(j, "free_space");
    if (d->sketch_size >= 0)
        cJSON_AddNumberToObject(j, "sketch_size", (double)d->sketch_size);
    else
        cJSON_AddNullToObject(j, "sketch_size");
    add_string_or_null(j, "sdk_version", d->sdk_version);
    cJSON_AddStringToObject(j, "mode", d->mode);
    add_time(j, "first_seen", d->first_seen);
    add_time(j, "last_seen", d->last_seen);
    cJSON_AddNumberToObject(j, "checkins", (double)d->checkins);
    cJSON_AddNumberToObject(j, "last_status", d->last_status);
    cJSON_AddStringToObject(j, "last_reason", d->last_reason);
    cJSON_AddNullToObject(j, "report"); /* filled by add_report */
    return j;
}

static int add_platform(void *ctx, const struct aloft_store_platform *p)
{
    cJSON_AddItemToArray(ctx, platform_json(p));
    return 0;
}

static int add_device(void *ctx, const struct aloft_store_device *d)
{
    cJSON_AddItemToArray(ctx, device_json(d));
    return 0;
}

static cJSON *report_json(const struct aloft_store_report *r)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", r->version);
    cJSON_AddStringToObject(j, "result", r->result);
    cJSON_AddStringToObject(j, "reason", r->reason);
    cJSON_AddStringToObject(j, "partition", r->partition);
    cJSON_AddStringToObject(j, "state", r->state);
    cJSON_AddStringToObject(j, "reset_reason", r->reset_reason);
    add_time(j, "reported_at", r->reported_at);
    cJSON_AddNumberToObject(j, "reports", (double)r->reports);
    return j;
}

/* The devices of the list by MAC, to find each report's device in log n:
 * sorted here (strcmp), whatever order the database's collation gave. */
struct by_mac {
    const char *mac;
    cJSON *dev;
};

struct device_index {
    struct by_mac *v;
    size_t n;
};

static int by_mac_cmp(const void *a, const void *b)
{
    return strcmp(((const struct by_mac *)a)->mac, ((const struct by_mac *)b)->mac);
}

static int index_devices(cJSON *list, struct device_index *x)
{
    x->n = 0;
    x->v = malloc(((size_t)cJSON_GetArraySize(list) + 1) * sizeof *x->v);
    if (!x->v)
        return ALOFT_E_IO;
    cJSON *dev;
    cJSON_ArrayForEach(dev, list)
    {
        const cJSON *mac = cJSON_GetObjectItemCaseSensitive(dev, "mac");
        if (cJSON_IsString(mac))
            x->v[x->n++] = (struct by_mac){mac->valuestring, dev};
    }
    qsort(x->v, x->n, sizeof *x->v, by_mac_cmp);
    return 0;
}

/* A device's last outcome report, into its object of the list ("report":
 * null for devices that never reported). */
static int add_report(void *ctx, const struct aloft_store_report *r)
{
    const struct device_index *x = ctx;
    struct by_mac key = {r->mac, NULL};
    const struct by_mac *hit = bsearch(&key, x->v, x->n, sizeof *x->v, by_mac_cmp);
    if (hit)
        cJSON_ReplaceItemInObjectCaseSensitive(hit->dev, "report", report_json(r));
    return 0;
}

static enum MHD_Result reply_list(struct MHD_Connection *c, cJSON *j, int rc)
{
    if (rc) {
        cJSON_Delete(j);
        return aloftd_reply_store_error(c, rc, "not_found", "not found");
    }
    return aloftd_reply_json(c, 200, j);
}

struct page {
    cJSON *devices;
    uint64_t n;
    struct aloft_store_device last;
};

static int add_page_device(void *ctx, const struct aloft_store_device *d, const struct aloft_store_report *r)
{
    struct page *pg = ctx;
    cJSON *j = device_json(d);
    if (r)
        cJSON_ReplaceItemInObjectCaseSensitive(j, "report", report_json(r));
    cJSON_AddItemToArray(pg->devices, j);
    pg->n++;
    pg->last = *d;
    return 0;
}

/* The cursor of the page after the one that ended with d: its MAC, then
 * (sorted by anything else) a comma and its value of the sort. */
static void cursor_of(const struct aloft_store_device *d, const char *sort, char *out, size_t cap)
{
    if (!sort || !strcmp(sort, "mac"))
        snprintf(out, cap, "%s", d->mac);
    else if (!strcmp(sort, "version"))
        snprintf(out, cap, "%s,%s", d->mac, d->version);
    else if (!strcmp(sort, "ip"))
        snprintf(out, cap, "%s,%s", d->mac, d->ip);
    else if (!strcmp(sort, "last_seen"))
        snprintf(out, cap, "%s,%lld", d->mac, (long long)d->last_seen);
    else
        snprintf(out, cap, "%s,%d", d->mac, d->last_status);
}

/* A whole number from the query in [0, max]; absent: dflt. false: bad. */
static bool arg_number(struct MHD_Connection *c, const char *name, uint64_t max, uint64_t dflt, uint64_t *out)
{
    const char *v = aloftd_arg(c, name);
    *out = dflt;
    if (!v)
        return true;
    char *end;
    unsigned long long x = *v >= '0' && *v <= '9' ? strtoull(v, &end, 10) : 0;
    if (!(*v >= '0' && *v <= '9') || *end || x > max)
        return false;
    *out = x;
    return true;
}

/* GET /api/devices?limit=N[&offset=&after=&sort=&order=&platform=&version=&state=&address=&seen_within=
 * &silent_for=]: one page, filtered and sorted by the database; "next" (after=) starts the following
 * one by index however deep, where offset= counts its way there. */
static enum MHD_Result devices_page(struct aloftd *d, struct MHD_Connection *c)
{
    struct aloft_store_device_query q;
    memset(&q, 0, sizeof q);
    const char *order = aloftd_arg(c, "order");
    uint64_t within, silent;
    if (!arg_number(c, "limit", ALOFT_STORE_PAGE_MAX, 50, &q.limit) || q.limit == 0)
        return aloftd_reply_error(c, 400, "bad_parameter", "limit: 1 to %d devices a page", ALOFT_STORE_PAGE_MAX);
    if (!arg_number(c, "offset", UINT32_MAX, 0, &q.offset))
        return aloftd_reply_error(c, 400, "bad_parameter", "offset: a whole number");
    if (!arg_number(c, "seen_within", UINT32_MAX, 0, &within) || !arg_number(c, "silent_for", UINT32_MAX, 0, &silent))
        return aloftd_reply_error(c, 400, "bad_parameter", "seen_within and silent_for: seconds");
    if (order && strcmp(order, "asc") && strcmp(order, "desc"))
        return aloftd_reply_error(c, 400, "bad_parameter", "order: asc or desc");
    q.platform = aloftd_arg(c, "platform");
    q.version = aloftd_arg(c, "version");
    q.state = aloftd_arg(c, "state");
    q.address = aloftd_arg(c, "address");
    q.mac = aloftd_arg(c, "mac");
    q.sort = aloftd_arg(c, "sort");
    q.desc = order && !strcmp(order, "desc");
    const char *after = aloftd_arg(c, "after");
    char after_mac[18], given[18];
    if (after) { /* a page's "next": MAC[,VALUE] */
        snprintf(given, sizeof given, "%s", after);
        if (strlen(after) < 17 || (after[17] && after[17] != ',') || !aloftd_mac_normalize(given, after_mac) ||
            strcmp(given, after_mac))
            return aloftd_reply_error(c, 400, "bad_parameter", "after: the \"next\" of the page before");
        q.after_mac = after_mac;
        q.after_value = after[17] ? after + 18 : NULL;
    }
    int64_t now = (int64_t)time(NULL);
    q.seen_after = within ? now - (int64_t)within : 0;
    q.seen_before = silent ? now - (int64_t)silent : 0;
    struct aloft_store_platform p;
    int rc = q.platform ? aloft_store_platform_get(d->store, q.platform, false, &p) : 0;
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    cJSON *j = cJSON_CreateObject();
    struct page pg;
    memset(&pg, 0, sizeof pg);
    pg.devices = cJSON_AddArrayToObject(j, "devices");
    uint64_t total = 0;
    rc = aloft_store_devices_page(d->store, &q, &total, add_page_device, &pg);
    if (rc == ALOFT_E_INVAL) {
        cJSON_Delete(j);
        return aloftd_reply_error(c, 400, "bad_parameter",
                                  "sort: mac, version, ip, last_seen or status; state: offered, current, refused, "
                                  "updated, rolled_back, failed or unreported; after: the \"next\" of the page "
                                  "before, with the same sort");
    }
    cJSON_AddNumberToObject(j, "total", (double)total);
    cJSON_AddNumberToObject(j, "offset", (double)q.offset);
    cJSON_AddNumberToObject(j, "limit", (double)q.limit);
    char next[200];
    cursor_of(&pg.last, q.sort, next, sizeof next);
    if (pg.n == q.limit) /* a full page: there may be more after it */
        cJSON_AddStringToObject(j, "next", next);
    else
        cJSON_AddNullToObject(j, "next");
    return reply_list(c, j, rc);
}

static int add_version_count(void *ctx, const char *version, uint64_t n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "version", version);
    cJSON_AddNumberToObject(o, "devices", (double)n);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

/* GET /api/platforms/<p>/versions: how many devices run each version. */
static enum MHD_Result versions(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_platform *p)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "platform", p->name);
    add_string_or_null(j, "current", p->current[ALOFT_STORE_FIRMWARE]);
    cJSON *a = cJSON_AddArrayToObject(j, "versions");
    return reply_list(c, j, aloft_store_device_versions(d->store, p->name, add_version_count, a));
}

static int add_event(void *ctx, const struct aloft_store_event *e)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "seq", (double)e->seq);
    add_time(o, "at", e->at);
    cJSON_AddStringToObject(o, "kind", e->kind);
    cJSON_AddStringToObject(o, "version", e->version);
    if (e->status)
        cJSON_AddNumberToObject(o, "status", e->status);
    else
        cJSON_AddNullToObject(o, "status");
    cJSON_AddStringToObject(o, "detail", e->detail);
    cJSON_AddItemToArray(ctx, o);
    return 0;
}

/* GET /api/devices/<MAC>: the device, its last report and its history. */
static enum MHD_Result device_page(struct aloftd *d, struct MHD_Connection *c, const char *mac)
{
    char up[18];
    size_t n = strlen(mac);
    for (size_t i = 0; i < n && i < sizeof up - 1; i++)
        up[i] = (char)(mac[i] >= 'a' && mac[i] <= 'f' ? mac[i] - 'a' + 'A' : mac[i]);
    up[n < sizeof up ? n : sizeof up - 1] = 0;
    if (n != 17)
        return aloftd_reply_error(c, 404, "unknown_device", "no such device: give its MAC as AA:BB:CC:DD:EE:FF");
    struct aloft_store_device_query q;
    memset(&q, 0, sizeof q);
    q.mac = up;
    q.limit = 1;
    uint64_t total = 0;
    struct page pg;
    memset(&pg, 0, sizeof pg);
    cJSON *list = pg.devices = cJSON_CreateArray();
    int rc = aloft_store_devices_page(d->store, &q, &total, add_page_device, &pg);
    if (rc == 0 && total == 0)
        rc = ALOFT_E_NOTFOUND;
    if (rc) {
        cJSON_Delete(list);
        return aloftd_reply_store_error(c, rc, "unknown_device", "no device with this MAC has checked in");
    }
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "device", cJSON_DetachItemFromArray(list, 0));
    cJSON_Delete(list);
    cJSON *events = cJSON_AddArrayToObject(j, "events");
    return reply_list(c, j, aloft_store_device_events(d->store, up, add_event, events));
}

struct release_list {
    cJSON *array;
    const char *current;
};

static int add_release(void *ctx, const struct aloft_store_release *r)
{
    struct release_list *l = ctx;
    cJSON_AddItemToArray(l->array, aloftd_release_json(r, !strcmp(r->version, l->current)));
    return 0;
}

static const char *json_str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

struct patch_list {
    cJSON *array;          /* of the release */
    const cJSON *releases; /* the list, to name each base by its version */
};

/* A patch made to a release: from which release, its size, what it saves
 * (a patch not worth sending saves nothing: the image is sent). */
static int add_patch(void *ctx, const struct aloft_store_delta *dl)
{
    struct patch_list *pl = ctx;
    const cJSON *r, *from = NULL;
    cJSON_ArrayForEach(r, pl->releases)
        if (!strcmp(json_str(r, "sha256"), dl->base))
            from = r;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "base", dl->base);
    add_string_or_null(j, "base_version", from ? json_str(from, "version") : "");
    cJSON_AddBoolToObject(j, "worth", dl->worth);
    cJSON_AddNumberToObject(j, "size", (double)dl->size);
    cJSON_AddNumberToObject(j, "percent", dl->target_size ? (double)(dl->size * 1000 / dl->target_size) / 10 : 0);
    if (dl->worth) {
        char url[80];
        snprintf(url, sizeof url, "/firmware/%s.bin", dl->sha256);
        cJSON_AddStringToObject(j, "url", url);
    }
    add_time(j, "created_at", dl->created_at);
    cJSON_AddItemToArray(pl->array, j);
    return 0;
}

/* kind from the query or a JSON body ("firmware" when absent). -1: bad. */
static int parse_kind(const char *s)
{
    return !s || !strcmp(s, "firmware") ? ALOFT_STORE_FIRMWARE : !strcmp(s, "frontend") ? ALOFT_STORE_FRONTEND : -1;
}

static enum MHD_Result releases(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_platform *p)
{
    int kind = parse_kind(aloftd_arg(c, "kind"));
    if (kind < 0)
        return aloftd_reply_error(c, 400, "bad_parameter", "kind must be firmware or frontend");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "platform", p->name);
    cJSON_AddStringToObject(j, "kind", aloft_store_kind_name((enum aloft_store_kind)kind));
    add_string_or_null(j, "current", p->current[kind]);
    add_string_or_null(j, "pinned", p->pinned[kind]);
    struct release_list l = {cJSON_AddArrayToObject(j, "releases"), p->current[kind]};
    int rc = aloft_store_releases(d->store, p->name, (enum aloft_store_kind)kind, add_release, &l);
    /* then each firmware's patches (a query of its own: not inside the list's) */
    cJSON *r;
    cJSON_ArrayForEach(r, l.array)
        if (!rc && kind == ALOFT_STORE_FIRMWARE) {
            struct patch_list pl = {cJSON_AddArrayToObject(r, "deltas"), l.array};
            rc = aloft_store_deltas(d->store, json_str(r, "sha256"), add_patch, &pl);
        }
    return reply_list(c, j, rc);
}

static enum MHD_Result pin(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_platform *p,
                           bool unpin, const char *body, size_t len, bool too_big)
{
    if (too_big)
        return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
    cJSON *in = len ? cJSON_ParseWithLength(body, len) : cJSON_CreateObject();
    if (!cJSON_IsObject(in)) {
        cJSON_Delete(in);
        return aloftd_reply_error(c, 400, "bad_json", unpin ? "send a JSON object, e.g. {\"kind\": \"firmware\"}"
                                                            : "send a JSON object: {\"version\": \"1.2.3\"}");
    }
    const cJSON *jk = cJSON_GetObjectItemCaseSensitive(in, "kind");
    const cJSON *jv = cJSON_GetObjectItemCaseSensitive(in, "version");
    int kind = jk && !cJSON_IsString(jk) ? -1 : parse_kind(jk ? jk->valuestring : NULL);
    char version[ALOFT_STORE_VERSION_MAX + 1] = "";
    bool version_ok = cJSON_IsString(jv) && jv->valuestring[0] && strlen(jv->valuestring) <= ALOFT_STORE_VERSION_MAX;
    if (version_ok)
        snprintf(version, sizeof version, "%s", jv->valuestring);
    cJSON_Delete(in);
    if (kind < 0)
        return aloftd_reply_error(c, 400, "bad_parameter", "kind must be \"firmware\" or \"frontend\"");
    if (!unpin && !version_ok)
        return aloftd_reply_error(c, 400, "bad_parameter", "give the version to pin: {\"version\": \"1.2.3\"}");
    if (unpin && p->publish_manual)
        return aloftd_reply_error(c, 409, "publish_manual",
                                  "platform '%s' publishes by hand: unpinned, it would serve nothing; pin the release "
                                  "to serve, or publish automatically (POST /api/platforms/%s/publish {\"publish\": "
                                  "\"auto\"})",
                                  p->name, p->name);
    int rc = aloft_store_pin(d->store, p->name, (enum aloft_store_kind)kind, unpin ? NULL : version);
    if (rc == 0 && kind == ALOFT_STORE_FIRMWARE) /* the operator's pin: a way to downgrade */
        rc = aloft_store_pin_holds(d->store, p->name, false);
    if (rc == ALOFT_E_NOTFOUND)
        return aloftd_reply_error(c, 404, "unknown_version", "platform '%s' has no %s release '%s'", p->name,
                                  aloft_store_kind_name((enum aloft_store_kind)kind), version);
    struct aloft_store_platform now;
    if (rc == 0)
        rc = aloft_store_platform_get(d->store, p->name, false, &now);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    if (unpin)
        aloftd_log("%s: %s unpinned; current is %s", p->name, aloft_store_kind_name((enum aloft_store_kind)kind),
                   now.current[kind][0] ? now.current[kind] : "none");
    else
        aloftd_log("%s: %s pinned to %s", p->name, aloft_store_kind_name((enum aloft_store_kind)kind), version);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddStringToObject(j, "platform", now.name);
    cJSON_AddStringToObject(j, "kind", aloft_store_kind_name((enum aloft_store_kind)kind));
    add_string_or_null(j, "current", now.current[kind]);
    add_string_or_null(j, "pinned", now.pinned[kind]);
    return aloftd_reply_json(c, 200, j);
}

/* {"publish": "auto"|"manual"}: the value, or -1 */
static int parse_publish(const cJSON *in)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(in, "publish");
    if (!v)
        return 0;
    return !cJSON_IsString(v) ? -1 : !strcmp(v->valuestring, "manual") ? 1 : !strcmp(v->valuestring, "auto") ? 0 : -1;
}

static enum MHD_Result publish(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_platform *p,
                               bool post, const char *body, size_t len, bool too_big)
{
    if (post) {
        if (too_big)
            return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
        cJSON *in = cJSON_ParseWithLength(body ? body : "", len);
        int manual = cJSON_IsObject(in) && cJSON_GetArraySize(in) == 1 ? parse_publish(in) : -1;
        bool named = cJSON_GetObjectItemCaseSensitive(in, "publish") != NULL;
        cJSON_Delete(in);
        if (manual < 0 || !named)
            return aloftd_reply_error(c, 400, "bad_parameter", "send {\"publish\": \"auto\"} or {\"publish\": \"manual\"}");
        int rc = aloft_store_publish_manual(d->store, p->name, manual);
        if (rc)
            return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
        if (manual != p->publish_manual)
            aloftd_log("%s: publish %s: %s", p->name, manual ? "manual" : "auto",
                       manual ? "uploads are served only once pinned or rolled out"
                              : "the newest upload is served, unless a release is pinned");
    }
    struct aloft_store_platform now;
    int rc = aloft_store_platform_get(d->store, p->name, true, &now);
    return rc ? aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform")
              : aloftd_reply_json(c, 200, platform_json(&now));
}

/* POST /api/platforms: a platform before its first upload, so that its
 * signing keys and publish policy already hold for that upload. */
static enum MHD_Result platform_create(struct aloftd *d, struct MHD_Connection *c, const char *body, size_t len,
                                       bool too_big)
{
    if (too_big)
        return aloftd_reply_error(c, 413, "too_large", "the JSON body is too large");
    cJSON *in = cJSON_ParseWithLength(body ? body : "", len);
    const cJSON *jn = cJSON_GetObjectItemCaseSensitive(in, "name");
    const cJSON *jc = cJSON_GetObjectItemCaseSensitive(in, "chip");
    char name[ALOFT_STORE_NAME_MAX + 1] = "", chip[16] = "";
    int manual = parse_publish(in);
    bool ok = cJSON_IsObject(in) && cJSON_IsString(jn) && cJSON_IsString(jc) && manual >= 0 &&
              aloft_store_name_ok(jn->valuestring) && aloft_chip_id(jc->valuestring) >= 0;
    if (ok) {
        snprintf(name, sizeof name, "%s", jn->valuestring);
        snprintf(chip, sizeof chip, "%s", aloft_chip_name((uint16_t)aloft_chip_id(jc->valuestring)));
    }
    cJSON_Delete(in);
    if (!ok)
        return aloftd_reply_error(c, 400, "bad_parameter",
                                  "send {\"name\": NAME, \"chip\": CHIP, \"publish\": \"auto\" or \"manual\"}: NAME "
                                  "1 to %d of A-Z a-z 0-9 . _ -, CHIP as ESP-IDF names it (esp32, esp32s3, esp32c3 ...)",
                                  ALOFT_STORE_NAME_MAX);
    int rc = aloft_store_platform_add(d->store, name, chip, manual);
    if (rc == ALOFT_E_STATE)
        return aloftd_reply_error(c, 409, "platform_exists", "platform '%s' exists", name);
    struct aloft_store_platform p;
    if (!rc)
        rc = aloft_store_platform_get(d->store, name, true, &p);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    aloftd_log("%s: platform created for %s; publish %s", p.name, p.chip, p.publish_manual ? "manual" : "auto");
    return aloftd_reply_json(c, 201, platform_json(&p));
}

static enum MHD_Result platform_route(struct aloftd *d, struct MHD_Connection *c, const char *rest, bool get,
                                      bool post, const char *body, size_t len, bool too_big)
{
    char name[ALOFT_STORE_NAME_MAX + 2];
    size_t n = strcspn(rest, "/");
    const char *action = rest[n] ? rest + n + 1 : NULL;
    if (n >= sizeof name)
        return aloftd_reply_error(c, 404, "unknown_platform", "no such platform");
    memcpy(name, rest, n);
    name[n] = 0;
    struct aloft_store_platform p;
    int rc = aloft_store_platform_get(d->store, name, true, &p);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
    if (!action) {
        if (!get)
            return aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
        return aloftd_reply_json(c, 200, platform_json(&p));
    }
    if (!strcmp(action, "releases"))
        return get ? releases(d, c, &p) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    if (!strcmp(action, "versions"))
        return get ? versions(d, c, &p) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    if (!strcmp(action, "pin") || !strcmp(action, "unpin"))
        return post ? pin(d, c, &p, !strcmp(action, "unpin"), body, len, too_big)
                    : aloftd_reply_error(c, 405, "method_not_allowed", "use POST");
    if (!strcmp(action, "whitelist"))
        return get || post ? aloftd_whitelist(d, c, p.name, post, body, len, too_big)
                           : aloftd_reply_error(c, 405, "method_not_allowed", "use GET or POST");
    if (!strcmp(action, "signing"))
        return get || post ? aloftd_signing(d, c, p.name, post, body, len, too_big)
                           : aloftd_reply_error(c, 405, "method_not_allowed", "use GET or POST");
    if (!strcmp(action, "publish"))
        return get || post ? publish(d, c, &p, post, body, len, too_big)
                           : aloftd_reply_error(c, 405, "method_not_allowed", "use GET or POST");
    if (!strcmp(action, "checkins"))
        return get || post ? aloftd_checkins(d, c, &p, post, body, len, too_big)
                           : aloftd_reply_error(c, 405, "method_not_allowed", "use GET or POST");
    if (!strcmp(action, "rollouts"))
        return post ? aloftd_rollout_start(d, c, p.name, body, len, too_big)
                    : aloftd_reply_error(c, 405, "method_not_allowed", "POST to start one; GET /api/rollouts");
    if (!strcmp(action, "trigger"))
        return post ? aloftd_trigger(d, c, p.name, body, len, too_big)
                    : aloftd_reply_error(c, 405, "method_not_allowed", "use POST");
    return aloftd_reply_error(c, 404, "not_found", "no such endpoint");
}

enum MHD_Result aloftd_admin(struct aloftd *d, struct MHD_Connection *c, const char *url, const char *method,
                             const char *body, size_t len, bool too_big)
{
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
    if (!strcmp(url, "/api/platforms")) {
        if (post)
            return platform_create(d, c, body, len, too_big);
        if (!get)
            return aloftd_reply_error(c, 405, "method_not_allowed", "use GET or POST");
        cJSON *j = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(j, "platforms");
        return reply_list(c, j, aloft_store_platforms(d->store, add_platform, a));
    }
    if (!strncmp(url, "/api/platforms/", 15))
        return platform_route(d, c, url + 15, get, post, body, len, too_big);
    if (!strcmp(url, "/api/devices")) {
        if (!get)
            return aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
        if (aloftd_arg(c, "limit")) /* one page; without: every device (the CLI's list) */
            return devices_page(d, c);
        const char *platform = aloftd_arg(c, "platform");
        struct aloft_store_platform p;
        int rc = platform ? aloft_store_platform_get(d->store, platform, false, &p) : 0;
        if (rc)
            return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform");
        cJSON *j = cJSON_CreateObject();
        cJSON *a = cJSON_AddArrayToObject(j, "devices");
        rc = aloft_store_devices(d->store, platform, add_device, a);
        struct device_index x = {NULL, 0};
        if (rc == 0)
            rc = index_devices(a, &x);
        if (rc == 0)
            rc = aloft_store_reports(d->store, add_report, &x);
        free(x.v);
        return reply_list(c, j, rc);
    }
    if (!strcmp(url, "/api/rollouts") || !strncmp(url, "/api/rollouts/", 14))
        return aloftd_rollout_route(d, c, url[13] ? url + 14 : "", get, post);
    if (!strncmp(url, "/api/devices/", 13) && !strchr(url + 13, '/'))
        return get ? device_page(d, c, url + 13) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    if (!strncmp(url, "/api/devices/", 13))
        return aloftd_credential_route(d, c, url + 13, get);
    if (!strcmp(url, "/api/firmware"))
        return aloftd_reply_error(c, 405, "method_not_allowed", "POST the image as the body");
    return aloftd_reply_error(c, 404, "not_found", "no such endpoint: %s", url);
}
