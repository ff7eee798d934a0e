/* aloft host: store logic that does not depend on the database backend,
 * and the choice of backend by the database URL's scheme. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"
#include "semver.h"

bool aloft_store_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > ALOFT_STORE_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

const char *aloft_store_kind_name(enum aloft_store_kind kind)
{
    return kind == ALOFT_STORE_FRONTEND ? "frontend" : "firmware";
}

size_t aloft_store_pick_current(const struct aloft_store_release *r, size_t n, enum aloft_store_kind kind)
{
    if (kind == ALOFT_STORE_FRONTEND)
        return n - 1;
    /* The newest: a release no other is newer than. Versions that cannot be
     * ordered leave several such; then the operator's latest upload wins. */
    for (size_t i = n; i-- > 0;) {
        struct aloft_semver vi;
        bool parsed = aloft_semver_parse(r[i].version, &vi) == 0;
        bool beaten = false;
        for (size_t j = 0; j < n && parsed && !beaten; j++) {
            struct aloft_semver vj;
            beaten = j != i && aloft_semver_parse(r[j].version, &vj) == 0 &&
                     aloft_semver_order(&vj, &vi) == ALOFT_SEMVER_NEWER;
        }
        if (!beaten)
            return i;
    }
    return n - 1;
}

void aloft_store_key(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    out[i] = 0;
}

_Thread_local char aloft_store_last_error[ALOFT_STORE_ERROR_MAX];

const char *aloft_store_error(void)
{
    return aloft_store_last_error[0] ? aloft_store_last_error : "no database error";
}

/* One backend is open: the other pointer is NULL. */
struct aloft_store {
    struct aloft_store_sqlite *sqlite;
    struct aloft_store_pg *pg;
};

#define DISPATCH(fn, ...) \
    (s->pg ? aloft_store_pg_##fn(s->pg, __VA_ARGS__) : aloft_store_sqlite_##fn(s->sqlite, __VA_ARGS__))

int aloft_store_open(struct aloft_store **out, const char *url, char *err, size_t errlen)
{
    *out = NULL;
    bool pg = !strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13);
    if (!pg && (strncmp(url, "sqlite:", 7) || !url[7])) {
        snprintf(err, errlen, "%s: give the database as sqlite:PATH or postgres://[USER@]HOST[:PORT]/DBNAME", url);
        return ALOFT_E_INVAL;
    }
    struct aloft_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return ALOFT_E_IO;
    }
    int rc = pg ? aloft_store_pg_open(&s->pg, url, err, errlen)
                : aloft_store_sqlite_open(&s->sqlite, url + 7, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void aloft_store_close(struct aloft_store *s)
{
    if (!s)
        return;
    if (s->pg)
        aloft_store_pg_close(s->pg);
    else
        aloft_store_sqlite_close(s->sqlite);
    free(s);
}

int aloft_store_schema_version(struct aloft_store *s, int *version)
{
    return DISPATCH(schema_version, version);
}

int aloft_store_token_count(struct aloft_store *s, uint64_t *n)
{
    return DISPATCH(token_count, n);
}

int aloft_store_token_add(struct aloft_store *s, const uint8_t digest[32])
{
    return DISPATCH(token_add, digest);
}

int aloft_store_token_check(struct aloft_store *s, const uint8_t digest[32], bool *ok)
{
    return DISPATCH(token_check, digest, ok);
}

int aloft_store_platform_get(struct aloft_store *s, const char *name, bool counts, struct aloft_store_platform *p)
{
    return DISPATCH(platform_get, name, counts, p);
}

int aloft_store_platforms(struct aloft_store *s, aloft_store_platform_cb cb, void *ctx)
{
    return DISPATCH(platforms, cb, ctx);
}

int aloft_store_release_add(struct aloft_store *s, struct aloft_store_release *r, bool *existed)
{
    return DISPATCH(release_add, r, existed);
}

int aloft_store_release_get(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                            const char *version, struct aloft_store_release *r)
{
    return DISPATCH(release_get, platform, kind, version, r);
}

int aloft_store_releases(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                         aloft_store_release_cb cb, void *ctx)
{
    return DISPATCH(releases, platform, kind, cb, ctx);
}

int aloft_store_current(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                        struct aloft_store_release *r)
{
    return DISPATCH(current, platform, kind, r);
}

int aloft_store_pin(struct aloft_store *s, const char *platform, enum aloft_store_kind kind, const char *version)
{
    return DISPATCH(pin, platform, kind, version);
}

int aloft_store_blob_get(struct aloft_store *s, const char *sha256, uint64_t *size)
{
    return DISPATCH(blob_get, sha256, size);
}

int aloft_store_checkin(struct aloft_store *s, const struct aloft_store_device *d, int64_t now)
{
    return DISPATCH(checkin, d, now);
}

int aloft_store_devices(struct aloft_store *s, const char *platform, aloft_store_device_cb cb, void *ctx)
{
    return DISPATCH(devices, platform, cb, ctx);
}

/* The generic query of the open backend. */
static int sexec(struct aloft_store *s, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx, int64_t *changed,
                 const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = s->pg ? aloft_store_pg_vexec(s->pg, id, cb, ctx, changed, types, ap)
                   : aloft_store_sqlite_vexec(s->sqlite, id, cb, ctx, changed, types, ap);
    va_end(ap);
    return rc;
}

/* The platform's key, or ALOFT_E_NOTFOUND when the name is not one. */
static int key_of(const char *platform, char key[ALOFT_STORE_NAME_MAX + 1])
{
    if (!aloft_store_name_ok(platform))
        return ALOFT_E_NOTFOUND;
    aloft_store_key(platform, key, ALOFT_STORE_NAME_MAX + 1);
    return 0;
}

struct ints {
    int64_t v[4];
    int n;
};

static int read_ints(void *ctx, int n, const char *const *cols)
{
    struct ints *x = ctx;
    for (int i = 0; i < n && i < 4; i++)
        x->v[i] = strtoll(cols[i], NULL, 10);
    x->n = n;
    return 0;
}

int aloft_store_whitelist_check(struct aloft_store *s, const char *platform, const char *mac, bool *allowed)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = key_of(platform, key);
    struct ints x = {{0}, 0};
    if (!rc)
        rc = sexec(s, Q_WHITELIST_CHECK, read_ints, &x, NULL, "sss", key, key, mac ? mac : "");
    *allowed = rc == 0 && (x.v[0] == 0 || x.v[1] > 0);
    return rc;
}

int aloft_store_whitelist_enable(struct aloft_store *s, const char *platform, bool on)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = key_of(platform, key);
    return rc ? rc : sexec(s, Q_WHITELIST_SET, NULL, NULL, NULL, "si", key, (int64_t)on);
}

int aloft_store_whitelist_add(struct aloft_store *s, const char *platform, const char *mac)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = key_of(platform, key);
    return rc ? rc : sexec(s, Q_WHITELIST_ADD, NULL, NULL, NULL, "ssi", key, mac, (int64_t)time(NULL));
}

int aloft_store_whitelist_remove(struct aloft_store *s, const char *platform, const char *mac)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int64_t n = 0;
    int rc = key_of(platform, key);
    if (!rc)
        rc = sexec(s, Q_WHITELIST_REMOVE, NULL, NULL, &n, "ss", key, mac);
    return rc ? rc : n ? 0 : ALOFT_E_NOTFOUND;
}

struct mac_list {
    aloft_store_mac_cb cb;
    void *ctx;
};

static int read_mac(void *ctx, int n, const char *const *cols)
{
    struct mac_list *l = ctx;
    return n ? l->cb(l->ctx, cols[0]) : 0;
}

int aloft_store_whitelist(struct aloft_store *s, const char *platform, bool *enabled, aloft_store_mac_cb cb, void *ctx)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    struct ints x = {{0}, 0};
    int rc = key_of(platform, key);
    if (!rc)
        rc = sexec(s, Q_WHITELIST_ENABLED, read_ints, &x, NULL, "s", key);
    *enabled = x.v[0] != 0;
    struct mac_list l = {cb, ctx};
    return rc ? rc : sexec(s, Q_WHITELIST_MACS, read_mac, &l, NULL, "s", key);
}

static int read_text(void *ctx, int n, const char *const *cols)
{
    char *out = ctx; /* ALOFT_STORE_VERSION_MAX + 1 */
    if (n)
        snprintf(out, ALOFT_STORE_VERSION_MAX + 1, "%s", cols[0]);
    return 0;
}

int aloft_store_report_add(struct aloft_store *s, const struct aloft_store_report *r, int64_t now,
                           char platform[ALOFT_STORE_NAME_MAX + 1])
{
    char key[ALOFT_STORE_VERSION_MAX + 1] = "";
    int rc = sexec(s, Q_DEVICE_PLATFORM, read_text, key, NULL, "s", r->mac);
    if (rc)
        return rc;
    if (!key[0])
        return ALOFT_E_NOTFOUND;
    if (platform)
        snprintf(platform, ALOFT_STORE_NAME_MAX + 1, "%s", key);
    return sexec(s, Q_REPORT_ADD, NULL, NULL, NULL, "sssssssi", r->mac, r->version, r->result, r->reason,
                 r->partition, r->state, r->reset_reason, now);
}

struct report_list {
    aloft_store_report_cb cb;
    void *ctx;
};

static int read_report(void *ctx, int n, const char *const *c)
{
    struct report_list *l = ctx;
    if (n < 9)
        return 0;
    struct aloft_store_report r;
    memset(&r, 0, sizeof r);
    snprintf(r.mac, sizeof r.mac, "%s", c[0]);
    snprintf(r.version, sizeof r.version, "%s", c[1]);
    snprintf(r.result, sizeof r.result, "%s", c[2]);
    snprintf(r.reason, sizeof r.reason, "%s", c[3]);
    snprintf(r.partition, sizeof r.partition, "%s", c[4]);
    snprintf(r.state, sizeof r.state, "%s", c[5]);
    snprintf(r.reset_reason, sizeof r.reset_reason, "%s", c[6]);
    r.reported_at = strtoll(c[7], NULL, 10);
    r.reports = strtoull(c[8], NULL, 10);
    return l->cb(l->ctx, &r);
}

int aloft_store_reports(struct aloft_store *s, aloft_store_report_cb cb, void *ctx)
{
    struct report_list l = {cb, ctx};
    return sexec(s, Q_REPORTS, read_report, &l, NULL, "");
}

/* "1,10,50,100" */
static void stages_text(const struct aloft_store_rollout *r, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < r->nstages && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%d", i ? "," : "", r->stages[i]);
}

struct rollout_read {
    struct aloft_store_rollout *r; /* one row */
    aloft_store_rollout_cb cb;     /* or every row */
    void *ctx;
    bool found;
};

static int read_rollout(void *ctx, int n, const char *const *c)
{
    struct rollout_read *x = ctx;
    if (n < 15)
        return 0;
    struct aloft_store_rollout r;
    memset(&r, 0, sizeof r);
    r.id = strtoll(c[0], NULL, 10);
    snprintf(r.platform, sizeof r.platform, "%s", c[1]);
    snprintf(r.version, sizeof r.version, "%s", c[2]);
    snprintf(r.previous, sizeof r.previous, "%s", c[3]);
    for (const char *p = c[4]; *p && r.nstages < ALOFT_STORE_STAGES_MAX;) {
        r.stages[r.nstages++] = (int)strtol(p, NULL, 10);
        p += strcspn(p, ",");
        p += *p == ',';
    }
    r.stage = (int)strtol(c[5], NULL, 10);
    snprintf(r.status, sizeof r.status, "%s", c[6]);
    r.max_failures = strtoll(c[7], NULL, 10);
    r.max_failures_percent = strtol(c[8], NULL, 10) != 0;
    snprintf(r.reason, sizeof r.reason, "%s", c[9]);
    r.created_at = strtoll(c[10], NULL, 10);
    r.updated_at = strtoll(c[11], NULL, 10);
    r.offered = strtoull(c[12], NULL, 10);
    r.failures = strtoull(c[13], NULL, 10);
    r.successes = strtoull(c[14], NULL, 10);
    x->found = true;
    if (x->r) {
        *x->r = r;
        return 0;
    }
    return x->cb(x->ctx, &r);
}

struct release_vec {
    struct aloft_store_release *all;
    size_t n, cap;
    const char *skip;
};

static int collect_release(void *ctx, const struct aloft_store_release *r)
{
    struct release_vec *v = ctx;
    if (!strcmp(r->version, v->skip))
        return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct aloft_store_release *bigger = realloc(v->all, cap * sizeof *bigger);
        if (!bigger)
            return ALOFT_E_IO;
        v->all = bigger;
        v->cap = cap;
    }
    v->all[v->n++] = *r;
    return 0;
}

int aloft_store_rollout_add(struct aloft_store *s, struct aloft_store_rollout *r)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = key_of(r->platform, key);
    struct aloft_store_release rel;
    if (!rc)
        rc = aloft_store_release_get(s, r->platform, ALOFT_STORE_FIRMWARE, r->version, &rel);
    if (rc)
        return rc;
    snprintf(r->version, sizeof r->version, "%s", rel.version);
    struct ints running = {{0}, 0};
    rc = sexec(s, Q_ROLLOUT_RUNNING, read_ints, &running, NULL, "s", key);
    if (rc)
        return rc;
    if (running.n)
        return ALOFT_E_STATE;
    /* previous: what would be current without this release (a pin wins) */
    struct aloft_store_platform p;
    rc = aloft_store_platform_get(s, r->platform, false, &p);
    if (rc)
        return rc;
    r->previous[0] = 0;
    if (p.pinned[ALOFT_STORE_FIRMWARE][0] && strcmp(p.pinned[ALOFT_STORE_FIRMWARE], r->version)) {
        snprintf(r->previous, sizeof r->previous, "%s", p.pinned[ALOFT_STORE_FIRMWARE]);
    } else {
        struct release_vec v = {NULL, 0, 0, r->version};
        rc = aloft_store_releases(s, r->platform, ALOFT_STORE_FIRMWARE, collect_release, &v);
        for (size_t i = 0; i < v.n / 2; i++) { /* newest first: into upload order */
            struct aloft_store_release t = v.all[i];
            v.all[i] = v.all[v.n - 1 - i];
            v.all[v.n - 1 - i] = t;
        }
        if (!rc && v.n)
            snprintf(r->previous, sizeof r->previous, "%s",
                     v.all[aloft_store_pick_current(v.all, v.n, ALOFT_STORE_FIRMWARE)].version);
        free(v.all);
        if (rc)
            return rc;
    }
    struct ints next = {{0}, 0};
    rc = sexec(s, Q_ROLLOUT_NEXT_ID, read_ints, &next, NULL, "");
    if (rc)
        return rc;
    r->id = next.v[0];
    r->created_at = r->updated_at = (int64_t)time(NULL);
    char stages[80];
    stages_text(r, stages, sizeof stages);
    rc = sexec(s, Q_ROLLOUT_ADD, NULL, NULL, NULL, "issssiiii", r->id, key, r->version, r->previous, stages,
               r->max_failures, (int64_t)r->max_failures_percent, r->created_at, r->updated_at);
    if (rc) { /* another instance started one at the same moment */
        running.n = 0;
        if (sexec(s, Q_ROLLOUT_RUNNING, read_ints, &running, NULL, "s", key) == 0 && running.n)
            return ALOFT_E_STATE;
        return rc;
    }
    return aloft_store_rollout_get(s, r->id, r);
}

int aloft_store_rollout_get(struct aloft_store *s, int64_t id, struct aloft_store_rollout *r)
{
    struct rollout_read x = {r, NULL, NULL, false};
    int rc = sexec(s, Q_ROLLOUT_GET, read_rollout, &x, NULL, "i", id);
    return rc ? rc : x.found ? 0 : ALOFT_E_NOTFOUND;
}

int aloft_store_rollout_governing(struct aloft_store *s, const char *platform, struct aloft_store_rollout *r)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = key_of(platform, key);
    struct rollout_read x = {r, NULL, NULL, false};
    if (!rc)
        rc = sexec(s, Q_ROLLOUT_GOVERNING, read_rollout, &x, NULL, "s", key);
    return rc ? rc : x.found ? 0 : ALOFT_E_NOTFOUND;
}

int aloft_store_rollouts(struct aloft_store *s, aloft_store_rollout_cb cb, void *ctx)
{
    struct rollout_read x = {NULL, cb, ctx, false};
    return sexec(s, Q_ROLLOUTS, read_rollout, &x, NULL, "");
}

int aloft_store_rollout_set(struct aloft_store *s, int64_t id, const char *from, int stage, const char *status,
                            const char *reason)
{
    int64_t n = 0;
    int rc = sexec(s, Q_ROLLOUT_SET, NULL, NULL, &n, "issiis", (int64_t)stage, status, reason ? reason : "",
                   (int64_t)time(NULL), id, from);
    return rc ? rc : n ? 0 : ALOFT_E_STATE;
}

int aloft_store_rollout_offered(struct aloft_store *s, int64_t id, const char *mac)
{
    return sexec(s, Q_ROLLOUT_OFFERED, NULL, NULL, NULL, "isi", id, mac, (int64_t)time(NULL));
}

int aloft_store_rollout_result(struct aloft_store *s, int64_t id, const char *mac, const char *result, bool *counted)
{
    int64_t n = 0;
    int rc = sexec(s, Q_ROLLOUT_RESULT, NULL, NULL, &n, "sis", result, id, mac);
    *counted = rc == 0 && n > 0;
    return rc;
}
