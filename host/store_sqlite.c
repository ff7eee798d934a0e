/* aloft host: the store on SQLite (embedded, the default). One connection,
 * one lock; statements are prepared once and kept. WAL journal: readers never
 * wait for the writer, and a check-in commits without an fsync
 * (synchronous=NORMAL survives a crash of the process); a release or a pin
 * commits with synchronous=FULL, so it also survives losing power. */
#include <pthread.h>
#include <stdarg.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"
#include "store_impl.h"
#include "hex.h"

struct aloft_store_sqlite {
    sqlite3 *db;
    pthread_mutex_t lock;
    sqlite3_stmt *st[Q_COUNT];
};

static int db_fail(struct aloft_store_sqlite *s, const char *what)
{
    snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "%s: %s", what, sqlite3_errmsg(s->db));
    return ALOFT_E_IO;
}

static sqlite3_stmt *stmt(struct aloft_store_sqlite *s, enum aloft_store_query id)
{
    if (!s->st[id] && sqlite3_prepare_v2(s->db, aloft_store_sql[id], -1, &s->st[id], NULL) != SQLITE_OK) {
        db_fail(s, "prepare");
        s->st[id] = NULL;
    }
    return s->st[id];
}

/* Bind a list of arguments: 's' text (NULL binds NULL), 'i' int64. */
static sqlite3_stmt *bind(struct aloft_store_sqlite *s, enum aloft_store_query id, const char *types, ...)
{
    sqlite3_stmt *st = stmt(s, id);
    if (!st)
        return NULL;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    va_list ap;
    va_start(ap, types);
    for (int i = 0; types[i]; i++) {
        int rc;
        if (types[i] == 's') {
            const char *v = va_arg(ap, const char *);
            rc = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
        } else {
            rc = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
        }
        if (rc != SQLITE_OK) {
            va_end(ap);
            db_fail(s, "bind");
            return NULL;
        }
    }
    va_end(ap);
    return st;
}

/* Step a statement that returns no rows (or whose rows are not wanted). */
static int run(struct aloft_store_sqlite *s, sqlite3_stmt *st, const char *what)
{
    if (!st)
        return ALOFT_E_IO;
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : db_fail(s, what);
}

static int exec(struct aloft_store_sqlite *s, const char *text, const char *what)
{
    char *msg = NULL;
    if (sqlite3_exec(s->db, text, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "%s: %s", what,
                 msg ? msg : sqlite3_errmsg(s->db));
        sqlite3_free(msg);
        return ALOFT_E_IO;
    }
    return 0;
}

static void col_text(sqlite3_stmt *st, int i, char *out, size_t cap)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(out, cap, "%s", t ? (const char *)t : "");
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

int aloft_store_sqlite_open(struct aloft_store_sqlite **out, const char *path, char *err, size_t errlen)
{
    *out = NULL;
    struct aloft_store_sqlite *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return ALOFT_E_IO;
    }
    pthread_mutex_init(&s->lock, NULL);
    int rc = sqlite3_open_v2(path, &s->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, NULL);
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "%s: cannot open the database: %s", path, s->db ? sqlite3_errmsg(s->db) : "no memory");
        aloft_store_sqlite_close(s);
        return ALOFT_E_IO;
    }
    sqlite3_busy_timeout(s->db, 5000); /* another aloftd on the same file holds the write lock briefly */
    if (exec(s, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;", "pragmas") ||
        exec(s, aloft_store_migrations_table, "schema_migrations") ||
        exec(s, "BEGIN IMMEDIATE", "begin")) {
        snprintf(err, errlen, "%s: %s", path, aloft_store_last_error);
        aloft_store_sqlite_close(s);
        return ALOFT_E_IO;
    }
    int version = 0;
    sqlite3_stmt *st = stmt(s, Q_SCHEMA_VERSION);
    if (!st || sqlite3_step(st) != SQLITE_ROW) {
        rc = db_fail(s, "schema version");
    } else {
        version = sqlite3_column_int(st, 0);
        sqlite3_reset(st);
        rc = 0;
    }
    if (rc == 0 && (size_t)version > aloft_store_migration_count) {
        snprintf(aloft_store_last_error, sizeof aloft_store_last_error,
                 "the schema is at version %d, newer than this aloftd knows (%zu): upgrade aloftd", version,
                 aloft_store_migration_count);
        rc = ALOFT_E_STATE;
    }
    for (size_t i = (size_t)version; rc == 0 && i < aloft_store_migration_count; i++) {
        char what[40];
        snprintf(what, sizeof what, "migration %zu", i + 1);
        char record[120];
        snprintf(record, sizeof record, "INSERT INTO schema_migrations (version, applied_at) VALUES (%zu, %lld)", i + 1,
                 (long long)now_s());
        rc = exec(s, aloft_store_migrations[i], what);
        if (rc == 0)
            rc = exec(s, record, what);
    }
    if (rc == 0)
        rc = exec(s, "COMMIT", "commit");
    if (rc) {
        snprintf(err, errlen, "%s: %s", path, aloft_store_last_error);
        exec(s, "ROLLBACK", "rollback");
        aloft_store_sqlite_close(s);
        return rc == ALOFT_E_STATE ? ALOFT_E_STATE : ALOFT_E_IO;
    }
    *out = s;
    return 0;
}

void aloft_store_sqlite_close(struct aloft_store_sqlite *s)
{
    if (!s)
        return;
    for (int i = 0; i < Q_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    sqlite3_close(s->db);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

int aloft_store_sqlite_token_add(struct aloft_store_sqlite *s, const uint8_t digest[32])
{
    char h[65];
    aloft_hex(digest, 32, h);
    pthread_mutex_lock(&s->lock);
    int rc = run(s, bind(s, Q_TOKEN_ADD, "si", h, now_s()), "add token");
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_token_check(struct aloft_store_sqlite *s, const uint8_t digest[32], bool *ok)
{
    char h[65];
    aloft_hex(digest, 32, h);
    *ok = false;
    unsigned match = 0;
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, Q_TOKEN_ALL);
    int rc = st ? SQLITE_ROW : SQLITE_ERROR;
    while (st && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        if (!t || strlen((const char *)t) != 64)
            continue;
        unsigned diff = 0; /* every byte, every row: the time does not depend on where they differ */
        for (int i = 0; i < 64; i++)
            diff |= (unsigned)(t[i] ^ (unsigned char)h[i]);
        match |= diff == 0;
    }
    if (st)
        sqlite3_reset(st);
    rc = rc == SQLITE_DONE ? 0 : db_fail(s, "read tokens");
    pthread_mutex_unlock(&s->lock);
    *ok = rc == 0 && match;
    return rc;
}

static void read_platform(sqlite3_stmt *st, struct aloft_store_platform *p)
{
    memset(p, 0, sizeof *p);
    col_text(st, 0, p->name, sizeof p->name);
    col_text(st, 1, p->chip, sizeof p->chip);
    col_text(st, 2, p->project, sizeof p->project);
    p->created_at = sqlite3_column_int64(st, 3);
    col_text(st, 4, p->current[ALOFT_STORE_FIRMWARE], sizeof p->current[0]);
    col_text(st, 5, p->pinned[ALOFT_STORE_FIRMWARE], sizeof p->pinned[0]);
    col_text(st, 6, p->current[ALOFT_STORE_FRONTEND], sizeof p->current[0]);
    col_text(st, 7, p->pinned[ALOFT_STORE_FRONTEND], sizeof p->pinned[0]);
    p->checkins_settle = sqlite3_column_int64(st, 8) != 0;
    p->pin_holds = sqlite3_column_int64(st, 9) != 0;
    p->publish_manual = sqlite3_column_int64(st, 10) != 0;
    p->releases = (uint64_t)sqlite3_column_int64(st, 11);
    p->devices = (uint64_t)sqlite3_column_int64(st, 12);
}

static void read_release(sqlite3_stmt *st, struct aloft_store_release *r)
{
    memset(r, 0, sizeof *r);
    char kind[16];
    col_text(st, 0, r->platform, sizeof r->platform);
    col_text(st, 1, kind, sizeof kind);
    r->kind = strcmp(kind, "frontend") ? ALOFT_STORE_FIRMWARE : ALOFT_STORE_FRONTEND;
    col_text(st, 2, r->version, sizeof r->version);
    col_text(st, 3, r->sha256, sizeof r->sha256);
    col_text(st, 4, r->md5, sizeof r->md5);
    r->size = (uint64_t)sqlite3_column_int64(st, 5);
    r->secure_version = (uint32_t)sqlite3_column_int64(st, 6);
    col_text(st, 7, r->chip, sizeof r->chip);
    col_text(st, 8, r->project, sizeof r->project);
    col_text(st, 9, r->idf_ver, sizeof r->idf_ver);
    r->uploaded_at = sqlite3_column_int64(st, 10);
    r->seq = sqlite3_column_int64(st, 11);
    col_text(st, 12, r->signer, sizeof r->signer);
}

static void read_device(sqlite3_stmt *st, struct aloft_store_device *d)
{
    memset(d, 0, sizeof *d);
    col_text(st, 0, d->mac, sizeof d->mac);
    col_text(st, 1, d->platform, sizeof d->platform);
    col_text(st, 2, d->version, sizeof d->version);
    col_text(st, 3, d->ip, sizeof d->ip);
    d->free_space = sqlite3_column_int64(st, 4);
    d->sketch_size = sqlite3_column_int64(st, 5);
    col_text(st, 6, d->sdk_version, sizeof d->sdk_version);
    col_text(st, 7, d->mode, sizeof d->mode);
    d->first_seen = sqlite3_column_int64(st, 8);
    d->last_seen = sqlite3_column_int64(st, 9);
    d->checkins = (uint64_t)sqlite3_column_int64(st, 10);
    d->last_status = sqlite3_column_int(st, 11);
    col_text(st, 12, d->last_reason, sizeof d->last_reason);
    col_text(st, 13, d->image, sizeof d->image);
}

/* One row into *p; lock held. */
static int platform_get(struct aloft_store_sqlite *s, const char *key, bool counts, struct aloft_store_platform *p)
{
    sqlite3_stmt *st = bind(s, counts ? Q_PLATFORM_GET_COUNTS : Q_PLATFORM_GET, "s", key);
    if (!st)
        return ALOFT_E_IO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_platform(st, p);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ALOFT_E_NOTFOUND : db_fail(s, "read platform");
}

int aloft_store_sqlite_platform_get(struct aloft_store_sqlite *s, const char *name, bool counts,
                                    struct aloft_store_platform *p)
{
    if (!aloft_store_name_ok(name))
        return ALOFT_E_NOTFOUND;
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(name, key, sizeof key);
    pthread_mutex_lock(&s->lock);
    int rc = platform_get(s, key, counts, p);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_platforms(struct aloft_store_sqlite *s, aloft_store_platform_cb cb, void *ctx)
{
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = stmt(s, Q_PLATFORMS);
    int rc = st ? SQLITE_ROW : SQLITE_ERROR, stop = 0;
    while (st && !stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct aloft_store_platform p;
        read_platform(st, &p);
        stop = cb(ctx, &p);
    }
    if (st)
        sqlite3_reset(st);
    int ret = stop ? stop : rc == SQLITE_DONE ? 0 : db_fail(s, "list platforms");
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* The release (platform key, kind, version) into *r; lock held. */
static int release_get(struct aloft_store_sqlite *s, const char *key, enum aloft_store_kind kind, const char *version,
                       struct aloft_store_release *r)
{
    sqlite3_stmt *st = bind(s, Q_RELEASE_GET, "sss", key, aloft_store_kind_name(kind), version);
    if (!st)
        return ALOFT_E_IO;
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        read_release(st, r);
    sqlite3_reset(st);
    return rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ALOFT_E_NOTFOUND : db_fail(s, "read release");
}

/* Set the platform's current release of kind from its pin or, unless it
 * publishes by hand, its history; lock held, inside a transaction. */
static int update_current(struct aloft_store_sqlite *s, const char *key, enum aloft_store_kind kind, const char *pinned,
                          bool manual)
{
    sqlite3_stmt *st = bind(s, Q_RELEASES_ASC, "ss", key, aloft_store_kind_name(kind));
    if (!st)
        return ALOFT_E_IO;
    size_t n = 0, cap = 0;
    struct aloft_store_release *all = NULL;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            struct aloft_store_release *bigger = realloc(all, (cap ? cap * 2 : 16) * sizeof *all);
            if (!bigger) {
                rc = SQLITE_NOMEM;
                break;
            }
            all = bigger;
            cap = cap ? cap * 2 : 16;
        }
        read_release(st, &all[n++]);
    }
    sqlite3_reset(st);
    if (rc != SQLITE_DONE) {
        free(all);
        return db_fail(s, "read releases");
    }
    const char *current = pinned ? pinned : n && !manual ? all[aloft_store_pick_current(all, n, kind)].version : NULL;
    rc = run(s, bind(s, kind == ALOFT_STORE_FIRMWARE ? Q_SET_FIRMWARE : Q_SET_FRONTEND, "sss", current, pinned, key),
             "set current release");
    free(all);
    return rc;
}

/* Run body between BEGIN IMMEDIATE and COMMIT with synchronous=FULL. */
static int begin_durable(struct aloft_store_sqlite *s)
{
    int rc = exec(s, "PRAGMA synchronous = FULL", "pragma");
    return rc ? rc : exec(s, "BEGIN IMMEDIATE", "begin");
}

/* End a transaction: COMMIT after rc 0, else ROLLBACK, keeping the first
 * error's message. */
static int end_tx(struct aloft_store_sqlite *s, int rc)
{
    if (rc == 0)
        rc = exec(s, "COMMIT", "commit");
    if (rc) {
        char saved[sizeof aloft_store_last_error];
        memcpy(saved, aloft_store_last_error, sizeof saved);
        exec(s, "ROLLBACK", "rollback");
        memcpy(aloft_store_last_error, saved, sizeof saved);
    }
    return rc;
}

static int end_durable(struct aloft_store_sqlite *s, int rc)
{
    rc = end_tx(s, rc);
    exec(s, "PRAGMA synchronous = NORMAL", "pragma");
    return rc;
}

static int release_add(struct aloft_store_sqlite *s, struct aloft_store_release *r, bool *existed)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(r->platform, key, sizeof key);
    struct aloft_store_platform p;
    int rc = platform_get(s, key, false, &p);
    if (rc == ALOFT_E_NOTFOUND && r->kind == ALOFT_STORE_FIRMWARE) {
        rc = run(s, bind(s, Q_PLATFORM_ADD, "ssssii", key, r->platform, r->chip, r->project, now_s(), (int64_t)0), "add platform");
        if (rc == 0)
            rc = platform_get(s, key, false, &p);
    }
    if (rc)
        return rc;
    if (r->kind == ALOFT_STORE_FIRMWARE && strcmp(p.chip, r->chip))
        return ALOFT_E_CHIP;
    if (r->kind == ALOFT_STORE_FRONTEND) { /* a frontend belongs to the platform's chip */
        snprintf(r->chip, sizeof r->chip, "%s", p.chip);
        snprintf(r->project, sizeof r->project, "%s", p.project);
    }
    struct aloft_store_release old;
    rc = release_get(s, key, r->kind, r->version, &old);
    if (rc == 0) {
        if (strcmp(old.sha256, r->sha256))
            return ALOFT_E_STATE;
        *r = old;
        *existed = true;
        return 0;
    }
    if (rc != ALOFT_E_NOTFOUND)
        return rc;
    int64_t now = now_s();
    rc = run(s, bind(s, Q_BLOB_ADD, "sisi", r->sha256, (int64_t)r->size, r->md5, now), "add file");
    sqlite3_stmt *st = rc ? NULL : stmt(s, Q_SEQ_NEXT);
    if (!rc && (!st || sqlite3_step(st) != SQLITE_ROW))
        rc = db_fail(s, "next sequence number");
    if (!rc) {
        r->seq = sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        r->uploaded_at = now;
        rc = run(s,
                 bind(s, Q_RELEASE_ADD, "ssssisssiis", key, aloft_store_kind_name(r->kind), r->version, r->sha256,
                      (int64_t)r->secure_version, r->chip, r->project, r->idf_ver, now, r->seq, r->signer),
                 "add release");
    }
    if (!rc)
        rc = update_current(s, key, r->kind, p.pinned[r->kind][0] ? p.pinned[r->kind] : NULL, p.publish_manual);
    if (!rc)
        snprintf(r->platform, sizeof r->platform, "%s", p.name);
    return rc;
}

int aloft_store_sqlite_release_add(struct aloft_store_sqlite *s, struct aloft_store_release *r, bool *existed)
{
    *existed = false;
    if (!aloft_store_name_ok(r->platform) || !r->version[0] || strlen(r->sha256) != 64)
        return ALOFT_E_INVAL;
    pthread_mutex_lock(&s->lock);
    int rc = begin_durable(s);
    if (rc == 0)
        rc = end_durable(s, release_add(s, r, existed));
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int list_releases(struct aloft_store_sqlite *s, sqlite3_stmt *st, aloft_store_release_cb cb, void *ctx)
{
    int rc = st ? SQLITE_ROW : SQLITE_ERROR, stop = 0;
    while (st && !stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct aloft_store_release r;
        read_release(st, &r);
        stop = cb(ctx, &r);
    }
    if (st)
        sqlite3_reset(st);
    return stop ? stop : rc == SQLITE_DONE ? 0 : db_fail(s, "list releases");
}

int aloft_store_sqlite_release_get(struct aloft_store_sqlite *s, const char *platform, enum aloft_store_kind kind,
                            const char *version, struct aloft_store_release *r)
{
    if (!aloft_store_name_ok(platform))
        return ALOFT_E_NOTFOUND;
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    pthread_mutex_lock(&s->lock);
    int rc = release_get(s, key, kind, version, r);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_releases(struct aloft_store_sqlite *s, const char *platform, enum aloft_store_kind kind,
                         aloft_store_release_cb cb, void *ctx)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    pthread_mutex_lock(&s->lock);
    int rc = list_releases(s, bind(s, Q_RELEASES_DESC, "ss", key, aloft_store_kind_name(kind)), cb, ctx);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_current(struct aloft_store_sqlite *s, const char *platform, enum aloft_store_kind kind,
                        struct aloft_store_release *r)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = bind(s, kind == ALOFT_STORE_FIRMWARE ? Q_CURRENT_FIRMWARE : Q_CURRENT_FRONTEND, "s", key);
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW)
        read_release(st, r);
    if (st)
        sqlite3_reset(st);
    rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ALOFT_E_NOTFOUND : db_fail(s, "read current release");
    pthread_mutex_unlock(&s->lock);
    return rc;
}

static int pin(struct aloft_store_sqlite *s, const char *key, enum aloft_store_kind kind, const char *version)
{
    struct aloft_store_platform p;
    int rc = platform_get(s, key, false, &p);
    struct aloft_store_release r;
    if (rc == 0 && version)
        rc = release_get(s, key, kind, version, &r);
    return rc ? rc : update_current(s, key, kind, version, p.publish_manual);
}

int aloft_store_sqlite_pin(struct aloft_store_sqlite *s, const char *platform, enum aloft_store_kind kind,
                           const char *version)
{
    if (!aloft_store_name_ok(platform))
        return ALOFT_E_NOTFOUND;
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    pthread_mutex_lock(&s->lock);
    int rc = begin_durable(s);
    if (rc == 0)
        rc = end_durable(s, pin(s, key, kind, version));
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_blob_get(struct aloft_store_sqlite *s, const char *sha256, uint64_t *size)
{
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = bind(s, Q_BLOB_GET, "s", sha256);
    int rc = st ? sqlite3_step(st) : SQLITE_ERROR;
    if (rc == SQLITE_ROW && size)
        *size = (uint64_t)sqlite3_column_int64(st, 0);
    if (st)
        sqlite3_reset(st);
    rc = rc == SQLITE_ROW ? 0 : rc == SQLITE_DONE ? ALOFT_E_NOTFOUND : db_fail(s, "read file record");
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_checkin_batch(struct aloft_store_sqlite *s, const struct aloft_store_device *d, size_t n)
{
    pthread_mutex_lock(&s->lock);
    int rc = exec(s, "BEGIN IMMEDIATE", "begin");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char key[ALOFT_STORE_NAME_MAX + 1];
        aloft_store_key(d[i].platform, key, sizeof key);
        rc = run(s,
                 bind(s, Q_EVENT_CHECKIN, ALOFT_STORE_EVENT_CHECKIN_TYPES, d[i].mac, d[i].last_seen,
                      d[i].last_status == 200 ? "offer" : "checkin", d[i].version, (int64_t)d[i].last_status,
                      d[i].last_reason, d[i].mac, d[i].mac, d[i].version, (int64_t)d[i].last_status,
                      d[i].last_reason),
                 "record a device's event");
        if (rc == 0)
            rc = run(s,
                 bind(s, Q_CHECKIN_BATCH, "ssssiissiiiiss", d[i].mac, key, d[i].version, d[i].ip, d[i].free_space,
                      d[i].sketch_size, d[i].sdk_version, d[i].mode, d[i].first_seen, d[i].last_seen,
                      (int64_t)d[i].checkins, (int64_t)d[i].last_status, d[i].last_reason, d[i].image),
                 "record check-ins");
    }
    rc = end_tx(s, rc);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_devices(struct aloft_store_sqlite *s, const char *platform, aloft_store_device_cb cb, void *ctx)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    if (platform)
        aloft_store_key(platform, key, sizeof key);
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = platform ? bind(s, Q_DEVICES_PLATFORM, "s", key) : stmt(s, Q_DEVICES_ALL);
    if (st && !platform)
        sqlite3_reset(st);
    int rc = st ? SQLITE_ROW : SQLITE_ERROR, stop = 0;
    while (st && !stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct aloft_store_device d;
        read_device(st, &d);
        stop = cb(ctx, &d);
    }
    if (st)
        sqlite3_reset(st);
    int ret = stop ? stop : rc == SQLITE_DONE ? 0 : db_fail(s, "list devices");
    pthread_mutex_unlock(&s->lock);
    return ret;
}

/* Bind, step and reset st (the lock held). */
static int stmt_vexec(struct aloft_store_sqlite *s, sqlite3_stmt *st, aloft_store_row_cb cb, void *ctx,
                      int64_t *changed, const char *types, va_list ap)
{
    int rc = st ? SQLITE_ROW : SQLITE_ERROR, stop = 0;
    if (st) {
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        for (int i = 0; types[i] && rc == SQLITE_ROW; i++) {
            int b;
            if (types[i] == 's') {
                const char *v = va_arg(ap, const char *);
                b = v ? sqlite3_bind_text(st, i + 1, v, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i + 1);
            } else {
                b = sqlite3_bind_int64(st, i + 1, va_arg(ap, int64_t));
            }
            if (b != SQLITE_OK)
                rc = SQLITE_ERROR;
        }
    }
    while (st && rc == SQLITE_ROW && !stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        int n = sqlite3_column_count(st);
        if (n > ALOFT_STORE_COLS_MAX)
            n = ALOFT_STORE_COLS_MAX;
        const char *cols[ALOFT_STORE_COLS_MAX];
        for (int i = 0; i < n; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            cols[i] = t ? (const char *)t : "";
        }
        stop = cb ? cb(ctx, n, cols) : 0;
    }
    if (changed)
        *changed = sqlite3_changes(s->db);
    int ret = stop ? stop : rc == SQLITE_DONE ? 0 : db_fail(s, "query");
    if (st)
        sqlite3_reset(st);
    return ret;
}

/* vexec with the lock held. */
static int vexec(struct aloft_store_sqlite *s, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                 int64_t *changed, const char *types, va_list ap)
{
    return stmt_vexec(s, stmt(s, id), cb, ctx, changed, types, ap);
}

int aloft_store_sqlite_sql_exec(struct aloft_store_sqlite *s, const char *sql, aloft_store_row_cb cb, void *ctx,
                                int n, const char *const *values)
{
    pthread_mutex_lock(&s->lock);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL) == SQLITE_OK ? 0 : db_fail(s, "prepare");
    for (int i = 0; rc == 0 && i < n; i++)
        if (sqlite3_bind_text(st, i + 1, values[i], -1, SQLITE_TRANSIENT) != SQLITE_OK)
            rc = db_fail(s, "bind");
    int step = SQLITE_ROW;
    while (rc == 0 && (step = sqlite3_step(st)) == SQLITE_ROW) {
        int k = sqlite3_column_count(st);
        if (k > ALOFT_STORE_COLS_MAX)
            k = ALOFT_STORE_COLS_MAX;
        const char *cols[ALOFT_STORE_COLS_MAX];
        for (int i = 0; i < k; i++) {
            const unsigned char *t = sqlite3_column_text(st, i);
            cols[i] = t ? (const char *)t : "";
        }
        rc = cb ? cb(ctx, k, cols) : 0;
    }
    if (rc == 0 && step != SQLITE_DONE)
        rc = db_fail(s, "query");
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_vexec(struct aloft_store_sqlite *s, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                             int64_t *changed, const char *types, va_list ap)
{
    pthread_mutex_lock(&s->lock);
    int rc = vexec(s, id, cb, ctx, changed, types, ap);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

/* The lock is held from BEGIN to COMMIT: one transaction at a time. */
int aloft_store_sqlite_transaction(struct aloft_store_sqlite *s, aloft_store_tx_body body, void *ctx)
{
    struct aloft_store_tx t = {s, NULL, NULL};
    pthread_mutex_lock(&s->lock);
    int rc = exec(s, "BEGIN IMMEDIATE", "begin");
    if (rc == 0)
        rc = body(ctx, &t);
    rc = end_tx(s, rc);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

int aloft_store_sqlite_tx_vexec(struct aloft_store_tx *t, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                                int64_t *changed, const char *types, va_list ap)
{
    return vexec(t->sqlite, id, cb, ctx, changed, types, ap);
}
