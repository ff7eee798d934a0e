/* aloft host: store logic that does not depend on the database backend,
 * and the choice of backend by the database URL's scheme. */
#include "store_impl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"
#include "hex.h"
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

/* The check-in queue (see aloft_store_checkin_flush): a ring of waiting
 * devices in arrival order of their first waiting check-in, found by MAC
 * through hash chains. */
#define CQ_CAP 16384
#define CQ_BATCH 2048
#define CQ_INTERVAL_NS 100000000L
#define CQ_BUCKETS 32768

struct cq_entry {
    struct aloft_store_device d;
    uint32_t next; /* ring position + 1 of the next in the chain; 0: none */
    uint32_t bucket;
};

struct checkin_queue {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_mutex_t flush_lock; /* one writer at a time, so batches land in order */
    pthread_t thread;
    bool started, stop;
    struct cq_entry *ring;
    uint32_t *buckets; /* ring position + 1 of the chain's first; 0: empty */
    size_t head, n;
    struct aloft_store_device *batch; /* the flush's copy (flush_lock) */
    uint64_t queued, written, dropped, failed;
};

/* The decision cache (see aloft_store_update_view): a few platforms, each
 * valid while the store's generation is the one it was read at. */
#define VC_MAX 64
#define VC_TTL_MS 1000 /* PostgreSQL: a view is read again after this long at most */

struct view_entry {
    char key[ALOFT_STORE_NAME_MAX + 1]; /* "": unused */
    uint64_t gen;
    int64_t loaded_ms;
    struct aloft_store_update_view v;
    bool whitelist_on;
    char (*macs)[18]; /* sorted */
    size_t nmacs;
};

/* One backend is open: the other pointer is NULL. */
struct aloft_store {
    struct aloft_store_sqlite *sqlite;
    struct aloft_store_pg *pg;
    struct checkin_queue q;
    pthread_rwlock_t view_lock;
    struct view_entry views[VC_MAX];
    size_t view_next;  /* the entry replaced next when all are used */
    uint64_t gen;      /* bumped (atomically) by every change of what the views hold */
    bool views_usable; /* may views be kept at all (see aloft_store_update_view) */
    struct aloft_store_rollout_state *ro; /* store_rollout.c's */
    bool bytewise; /* text compares byte by byte (SQLite; PostgreSQL in the C collation) */
};

#define DISPATCH(fn, ...) \
    (s->pg ? aloft_store_pg_##fn(s->pg, __VA_ARGS__) : aloft_store_sqlite_##fn(s->sqlite, __VA_ARGS__))

void aloft_store_views_changed(struct aloft_store *s)
{
    __atomic_add_fetch(&s->gen, 1, __ATOMIC_SEQ_CST);
    /* the other processes sharing the database; a lost notification
     * still expires their copies after VC_TTL_MS */
    if (s->pg && aloft_store_pg_notify(s->pg))
        fprintf(stderr, "aloft store: cannot notify the other servers of a change: %s\n", aloft_store_error());
}

/* The LISTEN thread's news (store_impl.h). */
static void pg_event(void *ctx, int e)
{
    struct aloft_store *s = ctx;
    if (e == 2)
        __atomic_store_n(&s->views_usable, false, __ATOMIC_SEQ_CST);
    __atomic_add_fetch(&s->gen, 1, __ATOMIC_SEQ_CST);
    if (e == 1)
        __atomic_store_n(&s->views_usable, true, __ATOMIC_SEQ_CST);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static uint32_t mac_hash(const char *mac)
{
    uint32_t h = 2166136261u;
    for (; *mac; mac++)
        h = (h ^ (unsigned char)*mac) * 16777619u;
    return h % CQ_BUCKETS;
}

/* Everything waiting into q->batch, emptying the queue; lock held. */
static size_t queue_take(struct checkin_queue *q)
{
    size_t n = q->n;
    for (size_t i = 0; i < n; i++)
        q->batch[i] = q->ring[(q->head + i) % CQ_CAP].d;
    if (n)
        memset(q->buckets, 0, CQ_BUCKETS * sizeof *q->buckets);
    q->head = q->n = 0;
    return n;
}


int aloft_store_checkin_flush(struct aloft_store *s)
{
    struct checkin_queue *q = &s->q;
    if (!q->ring)
        return 0;
    pthread_mutex_lock(&q->flush_lock);
    pthread_mutex_lock(&q->lock);
    size_t n = queue_take(q);
    pthread_mutex_unlock(&q->lock);
    int rc = 0;
    if (n) {
        rc = s->pg ? aloft_store_pg_checkin_batch(s->pg, q->batch, n)
                   : aloft_store_sqlite_checkin_batch(s->sqlite, q->batch, n);
        __atomic_add_fetch(rc ? &q->failed : &q->written, n, __ATOMIC_RELAXED);
        if (rc)
            fprintf(stderr, "aloft store: %zu check-ins not recorded: %s\n", n, aloft_store_error());
    }
    pthread_mutex_unlock(&q->flush_lock);
    int src = aloft_store_settle_flush(s);
    return rc ? rc : src;
}

static void *queue_thread(void *arg)
{
    struct aloft_store *s = arg;
    struct checkin_queue *q = &s->q;
    pthread_mutex_lock(&q->lock);
    while (!q->stop) {
        if (q->n < CQ_BATCH) {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += CQ_INTERVAL_NS;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!q->stop && q->n < CQ_BATCH && pthread_cond_timedwait(&q->wake, &q->lock, &until) == 0) {
            }
        }
        if (!q->n)
            continue;
        pthread_mutex_unlock(&q->lock);
        aloft_store_checkin_flush(s);
        pthread_mutex_lock(&q->lock);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

static int queue_start(struct aloft_store *s)
{
    struct checkin_queue *q = &s->q;
    pthread_mutex_init(&q->lock, NULL);
    pthread_mutex_init(&q->flush_lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    q->ring = calloc(CQ_CAP, sizeof *q->ring);
    q->buckets = calloc(CQ_BUCKETS, sizeof *q->buckets);
    q->batch = calloc(CQ_CAP, sizeof *q->batch);
    if (!q->ring || !q->buckets || !q->batch)
        return -1;
    if (pthread_create(&q->thread, NULL, queue_thread, s))
        return -1;
    q->started = true;
    return 0;
}

/* Stop the thread and write what waits. */
static void queue_stop(struct aloft_store *s)
{
    struct checkin_queue *q = &s->q;
    if (q->started) {
        pthread_mutex_lock(&q->lock);
        q->stop = true;
        pthread_cond_signal(&q->wake);
        pthread_mutex_unlock(&q->lock);
        pthread_join(q->thread, NULL);
        q->started = false;
    }
    if (q->ring && q->buckets && q->batch)
        aloft_store_checkin_flush(s);
    free(q->ring);
    free(q->buckets);
    free(q->batch);
    q->ring = NULL;
    q->buckets = NULL;
    q->batch = NULL;
}

void aloft_store_checkin_stats(struct aloft_store *s, struct aloft_store_checkin_stats *st)
{
    struct checkin_queue *q = &s->q;
    pthread_mutex_lock(&q->lock);
    st->waiting = q->n;
    st->queued = q->queued;
    st->dropped = q->dropped;
    pthread_mutex_unlock(&q->lock);
    st->written = __atomic_load_n(&q->written, __ATOMIC_RELAXED);
    st->failed = __atomic_load_n(&q->failed, __ATOMIC_RELAXED);
}

/* Unlink ring position pos from its chain; lock held. */
static void queue_unlink(struct checkin_queue *q, size_t pos)
{
    uint32_t *link = &q->buckets[q->ring[pos].bucket];
    while (*link && *link != pos + 1)
        link = &q->ring[*link - 1].next;
    if (*link)
        *link = q->ring[pos].next;
}

int aloft_store_checkin(struct aloft_store *s, const struct aloft_store_device *d, int64_t now)
{
    struct checkin_queue *q = &s->q;
    uint32_t h = mac_hash(d->mac);
    pthread_mutex_lock(&q->lock);
    q->queued++;
    for (uint32_t p = q->buckets[h]; p; p = q->ring[p - 1].next) {
        struct cq_entry *e = &q->ring[p - 1];
        if (!strcmp(e->d.mac, d->mac)) { /* coalesce: the latest wins */
            int64_t first = e->d.first_seen;
            uint64_t count = e->d.checkins;
            char image[65];
            memcpy(image, e->d.image, sizeof image);
            e->d = *d;
            if (!strcmp(d->mode, "spiffs")) /* a frontend check-in says nothing of the running image */
                memcpy(e->d.image, image, sizeof image);
            e->d.first_seen = first;
            e->d.last_seen = now;
            e->d.checkins = count + 1;
            pthread_mutex_unlock(&q->lock);
            return 0;
        }
    }
    if (q->n == CQ_CAP) { /* full: the oldest waiting device's update goes */
        queue_unlink(q, q->head);
        q->head = (q->head + 1) % CQ_CAP;
        q->n--;
        q->dropped++;
    }
    size_t pos = (q->head + q->n) % CQ_CAP;
    struct cq_entry *e = &q->ring[pos];
    e->d = *d;
    e->d.first_seen = e->d.last_seen = now;
    e->d.checkins = 1;
    e->bucket = h;
    e->next = q->buckets[h];
    q->buckets[h] = (uint32_t)pos + 1;
    if (++q->n == CQ_BATCH)
        pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

static int read_collation(void *ctx, int n, const char *const *c)
{
    if (n >= 1)
        snprintf(ctx, 64, "%s", c[0]);
    return 0;
}

/* Does the database compare text byte by byte (a prefix is then a range
 * of an index)? Its default collation says: C or POSIX. */
static bool pg_bytewise(struct aloft_store *s)
{
    char coll[64] = "";
    aloft_store_exec_sql(s, "SELECT datcollate FROM pg_database WHERE datname = current_database()", read_collation,
                         coll, 0, NULL);
    return !strcmp(coll, "C") || !strcmp(coll, "POSIX") || !strncmp(coll, "C.", 2);
}

bool aloft_store_bytewise_text(struct aloft_store *s)
{
    return s->bytewise;
}

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
    pthread_rwlock_init(&s->view_lock, NULL);
    if (!(s->ro = aloft_store_rollout_state_new()) || queue_start(s)) {
        snprintf(err, errlen, "out of memory or threads for the check-in queue");
        aloft_store_close(s);
        return ALOFT_E_IO;
    }
    s->bytewise = s->sqlite != NULL || pg_bytewise(s);
    /* SQLite: one process owns the file (only this store changes it).
     * PostgreSQL: other processes may change it; views are kept only
     * while the LISTEN connection is up (pg_event), VC_TTL_MS at most. */
    s->views_usable = s->sqlite != NULL;
    if (s->pg && aloft_store_pg_listen_start(s->pg, pg_event, s)) {
        snprintf(err, errlen, "cannot start the PostgreSQL LISTEN thread");
        aloft_store_close(s);
        return ALOFT_E_IO;
    }
    *out = s;
    return 0;
}

void aloft_store_close(struct aloft_store *s)
{
    if (!s)
        return;
    if (s->pg)
        aloft_store_pg_listen_stop(s->pg);
    queue_stop(s);
    for (size_t i = 0; i < VC_MAX; i++)
        free(s->views[i].macs);
    pthread_rwlock_destroy(&s->view_lock);
    aloft_store_rollout_state_free(s->ro);
    if (s->pg)
        aloft_store_pg_close(s->pg);
    else
        aloft_store_sqlite_close(s->sqlite);
    free(s);
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
    if (counts)
        aloft_store_checkin_flush(s);
    return DISPATCH(platform_get, name, counts, p);
}

int aloft_store_platforms(struct aloft_store *s, aloft_store_platform_cb cb, void *ctx)
{
    aloft_store_checkin_flush(s);
    return DISPATCH(platforms, cb, ctx);
}

int aloft_store_release_add(struct aloft_store *s, struct aloft_store_release *r, bool *existed)
{
    int rc = DISPATCH(release_add, r, existed);
    aloft_store_views_changed(s);
    return rc;
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
    int rc = DISPATCH(pin, platform, kind, version);
    aloft_store_views_changed(s);
    return rc;
}

int aloft_store_blob_get(struct aloft_store *s, const char *sha256, uint64_t *size)
{
    return DISPATCH(blob_get, sha256, size);
}


int aloft_store_devices(struct aloft_store *s, const char *platform, aloft_store_device_cb cb, void *ctx)
{
    aloft_store_checkin_flush(s);
    return DISPATCH(devices, platform, cb, ctx);
}

/* The generic query of the open backend. */
int aloft_store_exec(struct aloft_store *s, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                     int64_t *changed, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = s->pg ? aloft_store_pg_vexec(s->pg, id, cb, ctx, changed, types, ap)
                   : aloft_store_sqlite_vexec(s->sqlite, id, cb, ctx, changed, types, ap);
    va_end(ap);
    return rc;
}

int aloft_store_transaction(struct aloft_store *s, aloft_store_tx_body body, void *ctx)
{
    return s->pg ? aloft_store_pg_transaction(s->pg, body, ctx) : aloft_store_sqlite_transaction(s->sqlite, body, ctx);
}

int aloft_store_tx_exec(struct aloft_store_tx *t, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                        int64_t *changed, const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    int rc = t->pg ? aloft_store_pg_tx_vexec(t, id, cb, ctx, changed, types, ap)
                   : aloft_store_sqlite_tx_vexec(t, id, cb, ctx, changed, types, ap);
    va_end(ap);
    return rc;
}

struct aloft_store_rollout_state *aloft_store_rollout_state(struct aloft_store *s)
{
    return s->ro;
}

int aloft_store_exec_sql(struct aloft_store *s, const char *sql, aloft_store_row_cb cb, void *ctx, int n,
                         const char *const *values)
{
    return s->pg ? aloft_store_pg_sql_exec(s->pg, sql, cb, ctx, n, values)
                 : aloft_store_sqlite_sql_exec(s->sqlite, sql, cb, ctx, n, values);
}

bool aloft_store_files_shared(struct aloft_store *s)
{
    return s->pg != NULL;
}

int aloft_store_file_put(struct aloft_store *s, const char *sha256, const void *data, uint64_t size)
{
    return s->pg ? aloft_store_pg_file_put(s->pg, sha256, data, size) : 0;
}

int aloft_store_file_read(struct aloft_store *s, const char *sha256, uint64_t size, aloft_store_bytes_cb cb,
                          void *ctx)
{
    if (!s->pg) {
        snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "SQLite keeps no files");
        return ALOFT_E_NOTFOUND;
    }
    return aloft_store_pg_file_read(s->pg, sha256, size, cb, ctx);
}

struct unshared {
    aloft_store_file_cb cb;
    void *ctx;
};

static int read_unshared(void *ctx, int n, const char *const *cols)
{
    struct unshared *u = ctx;
    return n == 2 ? u->cb(u->ctx, cols[0], strtoull(cols[1], NULL, 10)) : ALOFT_E_IO;
}

int aloft_store_files_unshared(struct aloft_store *s, aloft_store_file_cb cb, void *ctx)
{
    struct unshared u = {cb, ctx};
    return s->pg ? aloft_store_exec(s, Q_FILES_UNSHARED, read_unshared, &u, NULL, "") : 0;
}

int aloft_store_key_of(const char *platform, char key[ALOFT_STORE_NAME_MAX + 1])
{
    if (!aloft_store_name_ok(platform))
        return ALOFT_E_NOTFOUND;
    aloft_store_key(platform, key, ALOFT_STORE_NAME_MAX + 1);
    return 0;
}

int aloft_store_read_ints(void *ctx, int n, const char *const *cols)
{
    struct aloft_store_ints *x = ctx;
    for (int i = 0; i < n && i < 4; i++)
        x->v[i] = strtoll(cols[i], NULL, 10);
    x->n = n;
    return 0;
}

int aloft_store_schema_version(struct aloft_store *s, int *version)
{
    struct aloft_store_ints x = {{0}, 0};
    int rc = aloft_store_exec(s, Q_SCHEMA_VERSION, aloft_store_read_ints, &x, NULL, "");
    *version = (int)x.v[0];
    return rc;
}

int aloft_store_schema_wanted(void)
{
    return (int)aloft_store_migration_count;
}

int aloft_store_token_count(struct aloft_store *s, uint64_t *n)
{
    struct aloft_store_ints x = {{0}, 0};
    int rc = aloft_store_exec(s, Q_TOKEN_COUNT, aloft_store_read_ints, &x, NULL, "");
    *n = (uint64_t)x.v[0];
    return rc;
}

int aloft_store_token_keep_only(struct aloft_store *s, const uint8_t digest[32])
{
    char h[65];
    aloft_hex(digest, 32, h);
    return aloft_store_exec(s, Q_TOKEN_KEEP_ONLY, NULL, NULL, NULL, "s", h);
}

int aloft_store_whitelist_check(struct aloft_store *s, const char *platform, const char *mac, bool *allowed)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_key_of(platform, key);
    struct aloft_store_ints x = {{0}, 0};
    if (!rc)
        rc = aloft_store_exec(s, Q_WHITELIST_CHECK, aloft_store_read_ints, &x, NULL, "sss", key, key, mac ? mac : "");
    *allowed = rc == 0 && (x.v[0] == 0 || x.v[1] > 0);
    return rc;
}

int aloft_store_whitelist_enable(struct aloft_store *s, const char *platform, bool on)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_key_of(platform, key);
    if (!rc)
        rc = aloft_store_exec(s, Q_WHITELIST_SET, NULL, NULL, NULL, "si", key, (int64_t)on);
    aloft_store_views_changed(s);
    return rc;
}

int aloft_store_whitelist_add(struct aloft_store *s, const char *platform, const char *mac)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_key_of(platform, key);
    if (!rc)
        rc = aloft_store_exec(s, Q_WHITELIST_ADD, NULL, NULL, NULL, "ssi", key, mac, (int64_t)time(NULL));
    aloft_store_views_changed(s);
    return rc;
}

int aloft_store_whitelist_remove(struct aloft_store *s, const char *platform, const char *mac)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int64_t n = 0;
    int rc = aloft_store_key_of(platform, key);
    if (!rc)
        rc = aloft_store_exec(s, Q_WHITELIST_REMOVE, NULL, NULL, &n, "ss", key, mac);
    aloft_store_views_changed(s);
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
    struct aloft_store_ints x = {{0}, 0};
    int rc = aloft_store_key_of(platform, key);
    if (!rc)
        rc = aloft_store_exec(s, Q_WHITELIST_ENABLED, aloft_store_read_ints, &x, NULL, "s", key);
    *enabled = x.v[0] != 0;
    struct mac_list l = {cb, ctx};
    return rc ? rc : aloft_store_exec(s, Q_WHITELIST_MACS, read_mac, &l, NULL, "s", key);
}

struct value {
    char *out;
    size_t cap;
    bool found;
};

static int read_value(void *ctx, int n, const char *const *cols)
{
    struct value *t = ctx;
    t->found = n > 0 && snprintf(t->out, t->cap, "%s", cols[0]) < (int)t->cap;
    return 0;
}

int aloft_store_secret(struct aloft_store *s, const char *name, const char *fresh, char *out, size_t cap)
{
    struct value t = {out, cap, false};
    int rc = aloft_store_exec(s, Q_SECRET_ADD, NULL, NULL, NULL, "ss", name, fresh);
    if (!rc)
        rc = aloft_store_exec(s, Q_SECRET_GET, read_value, &t, NULL, "s", name);
    return rc ? rc : t.found ? 0 : ALOFT_E_IO;
}

/* Set one of a platform's yes/no settings (query q: value, key); /update's
 * decisions read it, so their cache is dropped. */
static int platform_flag(struct aloft_store *s, enum aloft_store_query q, const char *platform, bool on)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int64_t n = 0;
    int rc = aloft_store_key_of(platform, key);
    if (!rc)
        rc = aloft_store_exec(s, q, NULL, NULL, &n, "is", (int64_t)on, key);
    aloft_store_views_changed(s);
    return rc ? rc : n ? 0 : ALOFT_E_NOTFOUND;
}

int aloft_store_pin_holds(struct aloft_store *s, const char *platform, bool holds)
{
    return platform_flag(s, Q_PIN_HOLDS, platform, holds);
}

int aloft_store_checkins_settle(struct aloft_store *s, const char *platform, bool on)
{
    return platform_flag(s, Q_CHECKINS_SETTLE, platform, on);
}

int aloft_store_platform_add(struct aloft_store *s, const char *name, const char *chip, bool publish_manual)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int64_t n = 0;
    int rc = aloft_store_key_of(name, key);
    if (!rc)
        rc = aloft_store_exec(s, Q_PLATFORM_ADD, NULL, NULL, &n, "ssssii", key, name, chip, "", (int64_t)time(NULL),
                              (int64_t)publish_manual);
    aloft_store_views_changed(s);
    return rc ? rc : n ? 0 : ALOFT_E_STATE;
}

int aloft_store_publish_manual(struct aloft_store *s, const char *platform, bool manual)
{
    struct aloft_store_platform p;
    int rc = aloft_store_platform_get(s, platform, false, &p);
    for (int k = 0; !rc && manual && k < 2; k++)
        if (!p.pinned[k][0] && p.current[k][0])
            rc = aloft_store_pin(s, p.name, (enum aloft_store_kind)k, p.current[k]);
    if (!rc)
        rc = platform_flag(s, Q_PUBLISH_MANUAL, p.name, manual);
    for (int k = 0; !rc && !manual && k < 2; k++)
        rc = aloft_store_pin(s, p.name, (enum aloft_store_kind)k, p.pinned[k][0] ? p.pinned[k] : NULL);
    return rc;
}

int aloft_store_signing_key_add(struct aloft_store *s, const char *platform, const char *digest)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_key_of(platform, key);
    return rc ? rc : aloft_store_exec(s, Q_SIGNING_KEY_ADD, NULL, NULL, NULL, "ssi", key, digest, (int64_t)time(NULL));
}

int aloft_store_signing_key_remove(struct aloft_store *s, const char *platform, const char *digest)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int64_t n = 0;
    int rc = aloft_store_key_of(platform, key);
    if (!rc)
        rc = aloft_store_exec(s, Q_SIGNING_KEY_REMOVE, NULL, NULL, &n, "ss", key, digest);
    return rc ? rc : n ? 0 : ALOFT_E_NOTFOUND;
}

int aloft_store_signing_keys(struct aloft_store *s, const char *platform, aloft_store_key_cb cb, void *ctx)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    struct mac_list l = {cb, ctx}; /* one text column, as the whitelist's */
    int rc = aloft_store_key_of(platform, key);
    return rc ? rc : aloft_store_exec(s, Q_SIGNING_KEYS, read_mac, &l, NULL, "s", key);
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
    aloft_store_checkin_flush(s); /* the device's check-in may still wait */
    int rc = aloft_store_exec(s, Q_DEVICE_PLATFORM, read_text, key, NULL, "s", r->mac);
    if (rc)
        return rc;
    if (!key[0])
        return ALOFT_E_NOTFOUND;
    if (platform)
        snprintf(platform, ALOFT_STORE_NAME_MAX + 1, "%.*s", (int)ALOFT_STORE_NAME_MAX, key);
    rc = aloft_store_exec(s, Q_REPORT_ADD, NULL, NULL, NULL, "sssssssi", r->mac, r->version, r->result, r->reason,
                          r->partition, r->state, r->reset_reason, now);
    char detail[sizeof r->result + sizeof r->reason + 2];
    snprintf(detail, sizeof detail, "%s%s%s", r->result, r->reason[0] ? ": " : "", r->reason);
    if (rc == 0) /* the device's history */
        rc = aloft_store_exec(s, Q_EVENT_ADD, NULL, NULL, NULL, ALOFT_STORE_EVENT_ADD_TYPES, r->mac, now, "report",
                              r->version, (int64_t)0, detail, r->mac);
    return rc;
}

struct report_list {
    aloft_store_report_cb cb;
    void *ctx;
};

void aloft_store_report_cols(const char *const *c, struct aloft_store_report *r)
{
    memset(r, 0, sizeof *r);
    snprintf(r->mac, sizeof r->mac, "%s", c[0]);
    snprintf(r->version, sizeof r->version, "%s", c[1]);
    snprintf(r->result, sizeof r->result, "%s", c[2]);
    snprintf(r->reason, sizeof r->reason, "%s", c[3]);
    snprintf(r->partition, sizeof r->partition, "%s", c[4]);
    snprintf(r->state, sizeof r->state, "%s", c[5]);
    snprintf(r->reset_reason, sizeof r->reset_reason, "%s", c[6]);
    r->reported_at = strtoll(c[7], NULL, 10);
    r->reports = strtoull(c[8], NULL, 10);
}

static int read_report(void *ctx, int n, const char *const *c)
{
    struct report_list *l = ctx;
    if (n < 9)
        return 0;
    struct aloft_store_report r;
    aloft_store_report_cols(c, &r);
    return l->cb(l->ctx, &r);
}

int aloft_store_reports(struct aloft_store *s, aloft_store_report_cb cb, void *ctx)
{
    struct report_list l = {cb, ctx};
    return aloft_store_exec(s, Q_REPORTS, read_report, &l, NULL, "");
}

/* The decision cache of GET /update (aloft_store_update_view). */

struct mac_vec {
    char (*macs)[18];
    size_t n, cap;
};

static int collect_mac(void *ctx, const char *mac)
{
    struct mac_vec *v = ctx;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 64;
        char(*bigger)[18] = realloc(v->macs, cap * sizeof *bigger);
        if (!bigger)
            return ALOFT_E_IO;
        v->macs = bigger;
        v->cap = cap;
    }
    snprintf(v->macs[v->n++], 18, "%s", mac);
    return 0;
}

static int mac_cmp(const void *a, const void *b)
{
    return strcmp(a, b);
}

/* Read a platform's view from the database into e (its macs allocated). */
static int view_read(struct aloft_store *s, const char *platform, struct view_entry *e)
{
    struct aloft_store_update_view *v = &e->v;
    memset(e, 0, sizeof *e);
    int rc = DISPATCH(platform_get, platform, false, &v->p);
    if (rc)
        return rc;
    struct mac_vec macs = {NULL, 0, 0};
    rc = aloft_store_whitelist(s, v->p.name, &e->whitelist_on, collect_mac, &macs);
    e->macs = macs.macs;
    e->nmacs = macs.n;
    if (rc)
        return rc;
    if (e->nmacs)
        qsort(e->macs, e->nmacs, sizeof *e->macs, mac_cmp);
    v->governing_rc = aloft_store_rollout_governing(s, v->p.name, &v->ro);
    if (v->governing_rc && v->governing_rc != ALOFT_E_NOTFOUND)
        return v->governing_rc;
    v->rollout_rc[0] = v->rollout_rc[1] = ALOFT_E_NOTFOUND;
    for (int i = 0; v->governing_rc == 0 && i < 2; i++) {
        const char *version = i ? v->ro.previous : v->ro.version;
        if (version[0])
            v->rollout_rc[i] =
                DISPATCH(release_get, v->p.name, ALOFT_STORE_FIRMWARE, version, &v->rollout_release[i]);
        if (v->rollout_rc[i] && v->rollout_rc[i] != ALOFT_E_NOTFOUND)
            return v->rollout_rc[i];
    }
    for (int k = 0; k < 2; k++) {
        v->current_rc[k] = DISPATCH(current, v->p.name, (enum aloft_store_kind)k, &v->current[k]);
        if (v->current_rc[k] && v->current_rc[k] != ALOFT_E_NOTFOUND)
            return v->current_rc[k];
    }
    return 0;
}

/* e's answer for mac into *v. */
static void view_answer(const struct view_entry *e, const char *mac, struct aloft_store_update_view *v)
{
    *v = e->v;
    v->allowed = !e->whitelist_on ||
                 (mac && mac[0] && e->nmacs && bsearch(mac, e->macs, e->nmacs, sizeof *e->macs, mac_cmp));
}

int aloft_store_update_view(struct aloft_store *s, const char *platform, const char *mac,
                            struct aloft_store_update_view *v)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_key_of(platform, key);
    if (rc)
        return rc;
    bool keep = __atomic_load_n(&s->views_usable, __ATOMIC_ACQUIRE);
    uint64_t gen = __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE);
    int64_t now = now_ms();
    if (keep) {
        pthread_rwlock_rdlock(&s->view_lock);
        for (size_t i = 0; i < VC_MAX; i++) {
            struct view_entry *e = &s->views[i];
            if (e->key[0] && e->gen == gen && !strcmp(e->key, key) && (!s->pg || now - e->loaded_ms < VC_TTL_MS)) {
                view_answer(e, mac, v);
                pthread_rwlock_unlock(&s->view_lock);
                return 0;
            }
        }
        pthread_rwlock_unlock(&s->view_lock);
    }
    struct view_entry fresh;
    rc = view_read(s, platform, &fresh);
    if (rc) {
        free(fresh.macs);
        return rc;
    }
    view_answer(&fresh, mac, v);
    snprintf(fresh.key, sizeof fresh.key, "%s", key);
    fresh.gen = gen;
    fresh.loaded_ms = now;
    pthread_rwlock_wrlock(&s->view_lock);
    /* kept only if nothing changed since the reading began (a change
     * committed meanwhile bumped gen after its commit) */
    if (keep && __atomic_load_n(&s->views_usable, __ATOMIC_ACQUIRE) &&
        __atomic_load_n(&s->gen, __ATOMIC_ACQUIRE) == gen) {
        size_t slot = VC_MAX;
        for (size_t i = 0; i < VC_MAX && slot == VC_MAX; i++)
            if (!strcmp(s->views[i].key, key))
                slot = i;
        for (size_t i = 0; i < VC_MAX && slot == VC_MAX; i++)
            if (!s->views[i].key[0] || s->views[i].gen != gen)
                slot = i;
        if (slot == VC_MAX)
            slot = s->view_next++ % VC_MAX;
        free(s->views[slot].macs);
        s->views[slot] = fresh;
        fresh.macs = NULL;
    }
    pthread_rwlock_unlock(&s->view_lock);
    free(fresh.macs);
    return 0;
}
