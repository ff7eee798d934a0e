/* aloftd: GET /metrics, Prometheus' text format (version 0.0.4). Counters
 * live in this process (they start at zero with it; Prometheus handles the
 * resets); rollout progress is read from the database, so every aloftd
 * sharing one reports the same.
 *
 * Behind the admin token, like /api/: the names of platforms, versions and
 * the fleet's size are the operator's business, and aloftd usually listens
 * where devices (not only the operator's network) reach it. Prometheus sends
 * the token with `authorization: {credentials_file: ...}` in its scrape
 * config. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloftd.h"

#define STATUS_MAX 600

_Thread_local bool aloftd_head_request;

static const char *const endpoint_names[ALOFTD_EP_COUNT] = {
    [ALOFTD_EP_UPDATE] = "update",   [ALOFTD_EP_FIRMWARE] = "firmware", [ALOFTD_EP_REPORT] = "report",
    [ALOFTD_EP_UPLOAD] = "upload",   [ALOFTD_EP_API] = "api",           [ALOFTD_EP_METRICS] = "metrics",
    [ALOFTD_EP_HEALTH] = "health", [ALOFTD_EP_OTHER] = "other",
};

static uint64_t requests[ALOFTD_EP_COUNT][STATUS_MAX];
static uint64_t checkins[STATUS_MAX];
static uint64_t downloads, bytes_sent, reports[3], rollout_events;
static uint64_t patches_made[2], patches_sent, patch_bytes_saved; /* made: [0] not worth it, [1] worth it */

static void inc(uint64_t *v, uint64_t n)
{
    __atomic_add_fetch(v, n, __ATOMIC_RELAXED);
}

static uint64_t get(const uint64_t *v)
{
    return __atomic_load_n(v, __ATOMIC_RELAXED);
}

void aloftd_metrics_request(int endpoint, unsigned status)
{
    if (endpoint >= 0 && endpoint < ALOFTD_EP_COUNT && status < STATUS_MAX)
        inc(&requests[endpoint][status], 1);
}

void aloftd_metrics_checkin(unsigned status)
{
    if (status < STATUS_MAX)
        inc(&checkins[status], 1);
}

void aloftd_metrics_download(uint64_t bytes)
{
    inc(&downloads, 1);
    inc(&bytes_sent, bytes);
}

void aloftd_metrics_report(const char *result)
{
    inc(&reports[!strcmp(result, "updated") ? 0 : !strcmp(result, "rolled_back") ? 1 : 2], 1);
}

void aloftd_metrics_patch_made(bool worth)
{
    inc(&patches_made[worth], 1);
}

void aloftd_metrics_patch_sent(uint64_t saved)
{
    inc(&patches_sent, 1);
    inc(&patch_bytes_saved, saved);
}

void aloftd_metrics_rollout_event(void)
{
    inc(&rollout_events, 1);
}

struct out {
    char *buf;
    size_t len, cap;
    bool failed;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->failed = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = (o->cap + (size_t)n) * 2;
        char *bigger = realloc(o->buf, cap);
        if (!bigger) {
            o->failed = true;
            return;
        }
        o->buf = bigger;
        o->cap = cap;
    }
}

/* Label values: platform names and versions are printable ASCII; \ and "
 * are escaped as the format asks. */
static void label(const char *in, char *out, size_t cap)
{
    size_t k = 0;
    for (; *in && k + 3 < cap; in++) {
        if (*in == '\\' || *in == '"')
            out[k++] = '\\';
        out[k++] = *in;
    }
    out[k] = 0;
}

static const char *const statuses[] = {"active", "paused", "halted", "aborted", "completed"};

static int put_rollout(void *ctx, const struct aloft_store_rollout *r)
{
    struct out *o = ctx;
    char platform[80], version[150];
    label(r->platform, platform, sizeof platform);
    label(r->version, version, sizeof version);
#define L "{rollout=\"%lld\",platform=\"%s\",version=\"%s\"}"
    long long id = (long long)r->id;
    put(o, "aloft_rollout_percent" L " %d\n", id, platform, version,
        !strcmp(r->status, "completed") ? 100 : r->stages[r->stage]);
    put(o, "aloft_rollout_stage" L " %d\n", id, platform, version, r->stage);
    put(o, "aloft_rollout_stages" L " %d\n", id, platform, version, r->nstages);
    put(o, "aloft_rollout_devices_offered" L " %llu\n", id, platform, version, (unsigned long long)r->offered);
    put(o, "aloft_rollout_devices_failed" L " %llu\n", id, platform, version, (unsigned long long)r->failures);
    put(o, "aloft_rollout_devices_updated" L " %llu\n", id, platform, version, (unsigned long long)r->successes);
    for (size_t i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        put(o, "aloft_rollout_status{rollout=\"%lld\",platform=\"%s\",version=\"%s\",status=\"%s\"} %d\n", id,
            platform, version, statuses[i], !strcmp(r->status, statuses[i]));
#undef L
    return 0;
}

enum MHD_Result aloftd_metrics(struct aloftd *d, struct MHD_Connection *c)
{
    struct out o = {malloc(8192), 0, 8192, false};
    if (!o.buf)
        return MHD_NO;
    put(&o, "# HELP aloft_http_requests_total HTTP requests answered, by endpoint and status.\n"
            "# TYPE aloft_http_requests_total counter\n");
    for (int e = 0; e < ALOFTD_EP_COUNT; e++)
        for (unsigned s = 0; s < STATUS_MAX; s++)
            if (get(&requests[e][s]))
                put(&o, "aloft_http_requests_total{endpoint=\"%s\",status=\"%u\"} %llu\n", endpoint_names[e], s,
                    (unsigned long long)get(&requests[e][s]));
    put(&o, "# HELP aloft_checkins_total Device check-ins (GET /update), by the status answered.\n"
            "# TYPE aloft_checkins_total counter\n");
    for (unsigned s = 0; s < STATUS_MAX; s++)
        if (get(&checkins[s]))
            put(&o, "aloft_checkins_total{status=\"%u\"} %llu\n", s, (unsigned long long)get(&checkins[s]));
    struct aloft_store_checkin_stats q;
    aloft_store_checkin_stats(d->store, &q);
    put(&o,
        "# HELP aloft_inventory_updates_written_total Device rows written from the check-in queue (coalesced by MAC).\n"
        "# TYPE aloft_inventory_updates_written_total counter\n"
        "aloft_inventory_updates_written_total %llu\n"
        "# HELP aloft_inventory_updates_dropped_total Coalesced check-ins dropped because the queue was full.\n"
        "# TYPE aloft_inventory_updates_dropped_total counter\n"
        "aloft_inventory_updates_dropped_total %llu\n"
        "# HELP aloft_inventory_updates_failed_total Device rows lost to database errors.\n"
        "# TYPE aloft_inventory_updates_failed_total counter\n"
        "aloft_inventory_updates_failed_total %llu\n"
        "# HELP aloft_inventory_queue_devices Devices whose check-in waits to be written.\n"
        "# TYPE aloft_inventory_queue_devices gauge\n"
        "aloft_inventory_queue_devices %llu\n",
        (unsigned long long)q.written, (unsigned long long)q.dropped, (unsigned long long)q.failed,
        (unsigned long long)q.waiting);
    put(&o,
        "# HELP aloft_downloads_total Firmware bodies sent (/update 200, /firmware 200 and 206; not HEAD).\n"
        "# TYPE aloft_downloads_total counter\n"
        "aloft_downloads_total %llu\n"
        "# HELP aloft_download_bytes_total Bytes of firmware bodies queued for sending.\n"
        "# TYPE aloft_download_bytes_total counter\n"
        "aloft_download_bytes_total %llu\n"
        "# HELP aloft_device_reports_total Outcome reports of devices, by result.\n"
        "# TYPE aloft_device_reports_total counter\n"
        "aloft_device_reports_total{result=\"updated\"} %llu\n"
        "aloft_device_reports_total{result=\"rolled_back\"} %llu\n"
        "aloft_device_reports_total{result=\"failed\"} %llu\n"
        "# HELP aloft_rollout_changes_total Rollouts started, advanced, paused, resumed, aborted or halted.\n"
        "# TYPE aloft_rollout_changes_total counter\n"
        "aloft_rollout_changes_total %llu\n",
        (unsigned long long)get(&downloads), (unsigned long long)get(&bytes_sent),
        (unsigned long long)get(&reports[0]), (unsigned long long)get(&reports[1]),
        (unsigned long long)get(&reports[2]), (unsigned long long)get(&rollout_events));
    put(&o,
        "# HELP aloft_delta_patches_made_total Delta patches this process made, by whether they were worth sending.\n"
        "# TYPE aloft_delta_patches_made_total counter\n"
        "aloft_delta_patches_made_total{worth=\"yes\"} %llu\n"
        "aloft_delta_patches_made_total{worth=\"no\"} %llu\n"
        "# HELP aloft_delta_patches_sent_total /update 200s that sent a delta patch instead of the image.\n"
        "# TYPE aloft_delta_patches_sent_total counter\n"
        "aloft_delta_patches_sent_total %llu\n"
        "# HELP aloft_delta_bytes_saved_total Bytes not sent because a patch went instead of the image.\n"
        "# TYPE aloft_delta_bytes_saved_total counter\n"
        "aloft_delta_bytes_saved_total %llu\n",
        (unsigned long long)get(&patches_made[1]), (unsigned long long)get(&patches_made[0]),
        (unsigned long long)get(&patches_sent), (unsigned long long)get(&patch_bytes_saved));
    put(&o, "# HELP aloft_rollout_percent The share of the platform's devices the rollout offers its release to.\n"
            "# TYPE aloft_rollout_percent gauge\n"
            "# HELP aloft_rollout_stage Index of the rollout's current stage.\n"
            "# TYPE aloft_rollout_stage gauge\n"
            "# HELP aloft_rollout_stages Number of stages.\n"
            "# TYPE aloft_rollout_stages gauge\n"
            "# HELP aloft_rollout_devices_offered Devices offered the rollout's release.\n"
            "# TYPE aloft_rollout_devices_offered gauge\n"
            "# HELP aloft_rollout_devices_failed Of them, devices that reported failed or rolled_back.\n"
            "# TYPE aloft_rollout_devices_failed gauge\n"
            "# HELP aloft_rollout_devices_updated Of them, devices that reported updated.\n"
            "# TYPE aloft_rollout_devices_updated gauge\n"
            "# HELP aloft_rollout_status 1 for the rollout's status.\n"
            "# TYPE aloft_rollout_status gauge\n");
    int rc = aloft_store_rollouts(d->store, put_rollout, &o);
    if (rc) {
        free(o.buf);
        return aloftd_reply_store_error(c, rc, "", "");
    }
    if (o.failed) {
        free(o.buf);
        return MHD_NO;
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(o.len, o.buf, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(o.buf);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}
