/* aloft host: the device inventory at fleet size — a page of devices
 * filtered and sorted by the database, the versions the fleet runs, and a
 * device's history. The page's statement is made for each call from the
 * filters given (each one a condition the indexes of migration 9 serve;
 * a page deep in the list starts after a device, by the same index),
 * with every value a parameter: only numbers this file formats and column
 * names from its own table are written into the SQL. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"

static const struct {
    const char *name, *column;
    bool number; /* an integer column: a cursor's value is written as a number */
} sorts[] = {
    {"mac", "d.mac", false},        {"version", "d.version", false},   {"ip", "d.ip", false},
    {"last_seen", "d.last_seen", true}, {"status", "d.last_status", true},
};

static const struct {
    const char *name, *where; /* "?" : the name is its parameter */
    bool report;              /* of the last report: the reports are joined */
} states[] = {
    {"offered", "d.last_status = 200", false},
    {"current", "d.last_status = 304", false},
    {"refused", "d.last_status >= 400", false},
    {"updated", "r.result = ?", true},
    {"rolled_back", "r.result = ?", true},
    {"failed", "r.result = ?", true},
    {"unreported", "r.mac IS NULL", true},
};

#define PAGE_COLS                                                                                                  \
    "d.mac, p.name, d.version, d.ip, d.free_space, d.sketch_size, d.sdk_version, d.mode, d.first_seen, "        \
    "d.last_seen, d.checkins, d.last_status, d.last_reason, r.mac, r.version, r.result, r.reason, "               \
    "r.partition_label, r.state, r.reset_reason, r.reported_at, r.reports "
#define PAGE_FROM                                                                                                  \
    "FROM devices d JOIN platforms p ON p.name_key = d.platform LEFT JOIN device_reports r ON r.mac = d.mac "

struct where {
    char sql[512];
    size_t len;
    const char *values[12];
    int n;
    char key[ALOFT_STORE_NAME_MAX + 1];
    char upper[64]; /* the end of an address prefix's range */
    bool reports; /* a condition is on the reports */
};

static void cond(struct where *w, const char *text, const char *value)
{
    int k = snprintf(w->sql + w->len, sizeof w->sql - w->len, " AND %s", text);
    if (k > 0 && (size_t)k < sizeof w->sql - w->len)
        w->len += (size_t)k;
    if (value)
        w->values[w->n++] = value;
}

/* The WHERE clause of q, or ALOFT_E_INVAL. */
static int where_of(struct aloft_store *s, const struct aloft_store_device_query *q, struct where *w)
{
    memset(w, 0, sizeof *w);
    w->len = (size_t)snprintf(w->sql, sizeof w->sql, "WHERE 1 = 1");
    if (q->platform) {
        aloft_store_key(q->platform, w->key, sizeof w->key);
        cond(w, "d.platform = ?", w->key);
    }
    if (q->mac)
        cond(w, "d.mac = ?", q->mac);
    if (q->version)
        cond(w, "d.version = ?", q->version);
    if (q->state) {
        size_t i = 0;
        while (i < sizeof states / sizeof states[0] && strcmp(states[i].name, q->state))
            i++;
        if (i == sizeof states / sizeof states[0])
            return ALOFT_E_INVAL;
        cond(w, states[i].where, strchr(states[i].where, '?') ? states[i].name : NULL);
        w->reports = states[i].report;
    }
    if (q->address && q->address[0]) {
        char text[64];
        size_t n = strlen(q->address);
        /* the addresses starting with it are [it, it with its last byte one up): a range of devices_by_ip */
        if (n < sizeof w->upper && (unsigned char)q->address[n - 1] < 0x7F && aloft_store_bytewise_text(s)) {
            memcpy(w->upper, q->address, n + 1);
            w->upper[n - 1]++;
            cond(w, "d.ip >= ?", q->address);
            cond(w, "d.ip < ?", w->upper);
        }
        snprintf(text, sizeof text, "substr(d.ip, 1, %zu) = ?", n);
        cond(w, text, q->address);
    }
    char text[64];
    if (q->seen_after) {
        snprintf(text, sizeof text, "d.last_seen >= %lld", (long long)q->seen_after);
        cond(w, text, NULL);
    }
    if (q->seen_before) {
        snprintf(text, sizeof text, "d.last_seen < %lld", (long long)q->seen_before);
        cond(w, text, NULL);
    }
    return 0;
}

static int read_count(void *ctx, int n, const char *const *cols)
{
    *(uint64_t *)ctx = n ? strtoull(cols[0], NULL, 10) : 0;
    return 0;
}

struct page {
    aloft_store_device_page_cb cb;
    void *ctx;
};

static int read_page_row(void *ctx, int n, const char *const *c)
{
    struct page *pg = ctx;
    if (n < 22)
        return ALOFT_E_IO;
    struct aloft_store_device d;
    memset(&d, 0, sizeof d);
    snprintf(d.mac, sizeof d.mac, "%s", c[0]);
    snprintf(d.platform, sizeof d.platform, "%s", c[1]);
    snprintf(d.version, sizeof d.version, "%s", c[2]);
    snprintf(d.ip, sizeof d.ip, "%s", c[3]);
    d.free_space = strtoll(c[4], NULL, 10);
    d.sketch_size = strtoll(c[5], NULL, 10);
    snprintf(d.sdk_version, sizeof d.sdk_version, "%s", c[6]);
    snprintf(d.mode, sizeof d.mode, "%s", c[7]);
    d.first_seen = strtoll(c[8], NULL, 10);
    d.last_seen = strtoll(c[9], NULL, 10);
    d.checkins = strtoull(c[10], NULL, 10);
    d.last_status = (int)strtol(c[11], NULL, 10);
    snprintf(d.last_reason, sizeof d.last_reason, "%s", c[12]);
    struct aloft_store_report r;
    aloft_store_report_cols(c + 13, &r); /* the device's last report, if any */
    return pg->cb(pg->ctx, &d, r.mac[0] ? &r : NULL);
}

int aloft_store_devices_page(struct aloft_store *s, const struct aloft_store_device_query *q, uint64_t *total,
                             aloft_store_device_page_cb cb, void *ctx)
{
    size_t k = 0;
    while (q->sort && k < sizeof sorts / sizeof sorts[0] && strcmp(sorts[k].name, q->sort))
        k++;
    if (k == sizeof sorts / sizeof sorts[0] || q->limit < 1 || q->limit > ALOFT_STORE_PAGE_MAX)
        return ALOFT_E_INVAL;
    struct where w;
    if (where_of(s, q, &w) || (q->after_mac && strlen(q->after_mac) != 17))
        return ALOFT_E_INVAL;
    aloft_store_checkin_flush(s); /* what was checked in before this call */
    char sql[1200]; /* the count joins the reports only when a filter needs them */
    snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM devices d %s%s",
             w.reports ? "LEFT JOIN device_reports r ON r.mac = d.mac " : "", w.sql);
    *total = 0;
    int rc = aloft_store_exec_sql(s, sql, read_count, total, w.n, w.values);
    if (rc)
        return rc;
    if (q->after_mac) { /* after this device in the page's order: the index's range, not an offset */
        const char *op = q->desc ? "<" : ">";
        char text[96];
        if (!k) {
            snprintf(text, sizeof text, "d.mac %s ?", op);
            cond(&w, text, q->after_mac);
        } else if (sorts[k].number) {
            char *end;
            long long v = q->after_value ? strtoll(q->after_value, &end, 10) : 0;
            if (!q->after_value || !*q->after_value || *end)
                return ALOFT_E_INVAL;
            snprintf(text, sizeof text, "(%s, d.mac) %s (%lld, ?)", sorts[k].column, op, v);
            cond(&w, text, q->after_mac);
        } else {
            if (!q->after_value)
                return ALOFT_E_INVAL;
            snprintf(text, sizeof text, "(%s, d.mac) %s (?, ?)", sorts[k].column, op);
            cond(&w, text, q->after_value);
            w.values[w.n++] = q->after_mac;
        }
    }
    const char *dir = q->desc ? "DESC" : "ASC";
    snprintf(sql, sizeof sql, "SELECT " PAGE_COLS PAGE_FROM "%s ORDER BY %s %s%s%s LIMIT %llu OFFSET %llu", w.sql,
             sorts[k].column, dir, k ? ", d.mac " : "", k ? dir : "", (unsigned long long)q->limit,
             (unsigned long long)q->offset);
    struct page pg = {cb, ctx};
    return aloft_store_exec_sql(s, sql, read_page_row, &pg, w.n, w.values);
}

struct counts {
    aloft_store_count_cb cb;
    void *ctx;
};

static int read_value_count(void *ctx, int n, const char *const *c)
{
    struct counts *x = ctx;
    return n < 2 ? ALOFT_E_IO : x->cb(x->ctx, c[0], strtoull(c[1], NULL, 10));
}

/* A platform's devices counted by a value (query q: value, count). */
static int platform_counts(struct aloft_store *s, enum aloft_store_query q, const char *platform, aloft_store_count_cb cb, void *ctx)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    aloft_store_checkin_flush(s);
    struct counts x = {cb, ctx};
    return aloft_store_exec(s, q, read_value_count, &x, NULL, "s", key);
}

int aloft_store_device_versions(struct aloft_store *s, const char *platform, aloft_store_count_cb cb, void *ctx)
{
    return platform_counts(s, Q_DEVICE_VERSIONS, platform, cb, ctx);
}

struct events {
    aloft_store_event_cb cb;
    void *ctx;
};

static int read_event(void *ctx, int n, const char *const *c)
{
    struct events *x = ctx;
    if (n < 6)
        return ALOFT_E_IO;
    struct aloft_store_event e;
    memset(&e, 0, sizeof e);
    e.seq = strtoll(c[0], NULL, 10);
    e.at = strtoll(c[1], NULL, 10);
    snprintf(e.kind, sizeof e.kind, "%s", c[2]);
    snprintf(e.version, sizeof e.version, "%s", c[3]);
    e.status = (int)strtol(c[4], NULL, 10);
    snprintf(e.detail, sizeof e.detail, "%s", c[5]);
    return x->cb(x->ctx, &e);
}

int aloft_store_device_events(struct aloft_store *s, const char *mac, aloft_store_event_cb cb, void *ctx)
{
    aloft_store_checkin_flush(s);
    struct events x = {cb, ctx};
    return aloft_store_exec(s, Q_DEVICE_EVENTS, read_event, &x, NULL, "s", mac);
}

static int read_text(void *ctx, int n, const char *const *c)
{
    if (n >= 1)
        snprintf(ctx, 65, "%s", c[0]);
    return 0;
}

int aloft_store_device_image(struct aloft_store *s, const char *platform, const char *mac, char image[65])
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    image[0] = 0;
    aloft_store_checkin_flush(s); /* its last check-in may still wait */
    return aloft_store_exec(s, Q_DEVICE_IMAGE, read_text, image, NULL, "ss", key, mac);
}

int aloft_store_device_images(struct aloft_store *s, const char *platform, aloft_store_count_cb cb, void *ctx)
{
    return platform_counts(s, Q_DEVICE_IMAGES, platform, cb, ctx);
}
