/* aloft host: the store on PostgreSQL (libpq), for several aloftd instances
 * sharing one fleet's database. The schema and the queries are SQLite's
 * (store_schema.c); their ? parameters are numbered $1, $2, ... once.
 *
 * Connections: a small pool, opened when first needed, one per thread at a
 * time (a PGconn must not be used by two threads at once). A single locked
 * connection would make every request wait for the one before it, also
 * while it waits for the network; the pool lets aloftd's worker threads
 * query in parallel, as the database can serve them.
 *
 * A connection that breaks (the server stopped or restarted) is dropped:
 * the call fails with ALOFT_E_IO, aloftd answers 503, and the next call
 * connects again. A pooled connection the server closed while it was idle
 * (a restart) is replaced before use, or when its first statement finds it
 * broken, so the first request after an outage is served.
 *
 * Several aloftd instances: migrations run in one transaction under an
 * advisory lock, so instances starting together run each migration once;
 * adding a release and pinning take another advisory lock for their
 * transaction, so the current release is computed from the whole history
 * whatever another instance commits meanwhile. */
#include <libpq-fe.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"
#include "store_impl.h"
#include "hex.h"

#define POOL_MAX 8
#define PARAMS_MAX 16
/* pg_advisory_xact_lock keys: any constants other programs are unlikely to use */
#define LOCK_MIGRATIONS "7021700001"
#define LOCK_RELEASES "7021700002"

struct conn {
    PGconn *pg; /* NULL: not connected */
    bool busy;
    bool reused; /* kept from an earlier call and not used yet in this one */
    bool prepared[Q_COUNT];
};

struct aloft_store_pg {
    char *url;
    char *sql[Q_COUNT]; /* with $n parameters */
    pthread_mutex_t lock;
    pthread_cond_t freed;
    struct conn conns[POOL_MAX];
    /* the LISTEN thread (aloft_store_pg_listen_start) */
    pthread_t listener;
    bool listening, listen_stop;
    void (*event)(void *ctx, int e);
    void *event_ctx;
};

/* The query with each ? replaced by $1, $2, ... (none of them contains a ?
 * in a string literal). */
static char *number_params(const char *q)
{
    size_t n = 0;
    for (const char *p = q; *p; p++)
        n += *p == '?';
    char *out = malloc(strlen(q) + 3 * n + 1);
    if (!out)
        return NULL;
    char *w = out;
    unsigned k = 0;
    for (const char *p = q; *p; p++) {
        if (*p == '?')
            w += sprintf(w, "$%u", ++k);
        else
            *w++ = *p;
    }
    *w = 0;
    return out;
}

/* Record the error; a connection that broke is dropped (the next call
 * connects again). */
static int fail(struct conn *c, const char *what, const PGresult *res)
{
    const char *msg = res ? PQresultErrorMessage(res) : "";
    if (!msg[0])
        msg = c->pg ? PQerrorMessage(c->pg) : "not connected";
    snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "%s: %s", what, msg);
    char *w = aloft_store_last_error; /* one line: libpq's messages have several */
    for (const char *r = w; *r; r++)
        if (*r != '\n' && *r != '\t')
            *w++ = *r;
        else if (w > aloft_store_last_error && w[-1] != ' ')
            *w++ = ' ';
    while (w > aloft_store_last_error && w[-1] == ' ')
        w--;
    *w = 0;
    if (c->pg && PQstatus(c->pg) != CONNECTION_OK) {
        PQfinish(c->pg);
        c->pg = NULL;
    }
    return ALOFT_E_IO;
}

static int connect_db(struct aloft_store_pg *s, struct conn *c)
{
    /* An idle connection the server closed reads as end of file here. */
    c->reused = c->pg && PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE &&
                PQconsumeInput(c->pg) && PQstatus(c->pg) == CONNECTION_OK;
    if (c->reused)
        return 0;
    PQfinish(c->pg);
    /* Earlier keywords are defaults the URL's own parameters override. */
    const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
    const char *const values[] = {"5", "aloftd", s->url, NULL};
    c->pg = PQconnectdbParams(keys, values, 1);
    memset(c->prepared, 0, sizeof c->prepared);
    if (!c->pg) {
        snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "cannot connect to PostgreSQL: out of memory");
        return ALOFT_E_IO;
    }
    if (PQstatus(c->pg) != CONNECTION_OK)
        return fail(c, "cannot connect to PostgreSQL", NULL);
    return 0;
}

/* A connection of the pool for this call, connected; NULL (the error
 * recorded) when the database cannot be reached. */
static struct conn *acquire(struct aloft_store_pg *s)
{
    pthread_mutex_lock(&s->lock);
    struct conn *c = NULL;
    for (;;) {
        for (int i = 0; i < POOL_MAX && !c; i++)
            if (!s->conns[i].busy)
                c = &s->conns[i];
        if (c)
            break;
        pthread_cond_wait(&s->freed, &s->lock);
    }
    c->busy = true;
    pthread_mutex_unlock(&s->lock);
    if (connect_db(s, c) == 0)
        return c;
    pthread_mutex_lock(&s->lock);
    c->busy = false;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

static void release(struct aloft_store_pg *s, struct conn *c)
{
    pthread_mutex_lock(&s->lock);
    c->busy = false;
    pthread_cond_signal(&s->freed);
    pthread_mutex_unlock(&s->lock);
}

/* After a failed statement: may it run again on a new connection? Only
 * the first statement of a call on a pooled connection that turned out to
 * be broken (the server restarted while it was idle): it never reached a
 * server, and the database is back when the new connection succeeds. */
static bool retry(struct aloft_store_pg *s, struct conn *c)
{
    bool stale = c->reused && !c->pg;
    c->reused = false;
    return stale && connect_db(s, c) == 0;
}

/* Run a statement without parameters (several, separated by ;). */
static int exec(struct aloft_store_pg *s, struct conn *c, const char *text, const char *what)
{
    for (;;) {
        if (!c->pg)
            return fail(c, what, NULL);
        PGresult *res = PQexec(c->pg, text);
        ExecStatusType st = PQresultStatus(res);
        int rc = st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK ? 0 : fail(c, what, res);
        PQclear(res);
        if (rc == 0 || !retry(s, c)) {
            c->reused = false;
            return rc;
        }
    }
}

/* Run query id with arguments: 's' text (NULL: SQL NULL), 'i' int64.
 * Returns its result (PQclear it) or NULL with the error recorded. */
static PGresult *vquery(struct aloft_store_pg *s, struct conn *c, enum aloft_store_query id, const char *what,
                        const char *types, va_list ap)
{
    const char *values[PARAMS_MAX];
    char numbers[PARAMS_MAX][24];
    int n = 0;
    for (; types[n] && n < PARAMS_MAX; n++) {
        if (types[n] == 's') {
            values[n] = va_arg(ap, const char *);
        } else {
            snprintf(numbers[n], sizeof numbers[n], "%lld", (long long)va_arg(ap, int64_t));
            values[n] = numbers[n];
        }
    }
    char name[16];
    snprintf(name, sizeof name, "q%d", (int)id);
    for (;;) {
        if (!c->pg) {
            fail(c, what, NULL);
            return NULL;
        }
        PGresult *res = NULL;
        if (!c->prepared[id]) { /* once per connection */
            res = PQprepare(c->pg, name, s->sql[id], 0, NULL);
            c->prepared[id] = PQresultStatus(res) == PGRES_COMMAND_OK;
            if (c->prepared[id]) {
                PQclear(res);
                res = NULL;
            }
        }
        if (!res)
            res = PQexecPrepared(c->pg, name, n, values, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK) {
            c->reused = false;
            return res;
        }
        fail(c, what, res);
        PQclear(res);
        if (!retry(s, c))
            return NULL;
    }
}

static PGresult *query(struct aloft_store_pg *s, struct conn *c, enum aloft_store_query id, const char *what,
                       const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    PGresult *res = vquery(s, c, id, what, types, ap);
    va_end(ap);
    return res;
}

/* A statement whose rows are not wanted: 0 or ALOFT_E_IO. */
static int run(struct aloft_store_pg *s, struct conn *c, enum aloft_store_query id, const char *what,
               const char *types, ...)
{
    va_list ap;
    va_start(ap, types);
    PGresult *res = vquery(s, c, id, what, types, ap);
    va_end(ap);
    PQclear(res);
    return res ? 0 : ALOFT_E_IO;
}

static void col_text(const PGresult *res, int row, int col, char *out, size_t cap)
{
    snprintf(out, cap, "%s", PQgetisnull(res, row, col) ? "" : PQgetvalue(res, row, col));
}

static int64_t col_int(const PGresult *res, int row, int col)
{
    return PQgetisnull(res, row, col) ? 0 : strtoll(PQgetvalue(res, row, col), NULL, 10);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

static int migrate(struct aloft_store_pg *s, struct conn *c)
{
    int rc = exec(s, c, "BEGIN; SELECT pg_advisory_xact_lock(" LOCK_MIGRATIONS ")", "lock the schema");
    if (rc == 0)
        rc = exec(s, c, aloft_store_migrations_table, "schema_migrations");
    PGresult *res = rc ? NULL : query(s, c, Q_SCHEMA_VERSION, "schema version", "");
    if (!rc && !res)
        rc = ALOFT_E_IO;
    int version = res ? (int)col_int(res, 0, 0) : 0;
    PQclear(res);
    if (rc == 0 && (size_t)version > aloft_store_migration_count) {
        snprintf(aloft_store_last_error, sizeof aloft_store_last_error,
                 "the schema is at version %d, newer than this aloftd knows (%zu): upgrade aloftd", version,
                 aloft_store_migration_count);
        rc = ALOFT_E_STATE;
    }
    for (size_t i = (size_t)version; rc == 0 && i < aloft_store_migration_count; i++) {
        char what[40], record[120];
        snprintf(what, sizeof what, "migration %zu", i + 1);
        snprintf(record, sizeof record, "INSERT INTO schema_migrations (version, applied_at) VALUES (%zu, %lld)", i + 1,
                 (long long)now_s());
        rc = exec(s, c, aloft_store_migrations[i], what);
        if (rc == 0)
            rc = exec(s, c, record, what);
    }
    if (rc == 0)
        rc = exec(s, c, "COMMIT", "commit");
    if (rc && c->pg) {
        char saved[ALOFT_STORE_ERROR_MAX];
        memcpy(saved, aloft_store_last_error, sizeof saved);
        exec(s, c, "ROLLBACK", "rollback");
        memcpy(aloft_store_last_error, saved, sizeof saved);
    }
    return rc;
}

int aloft_store_pg_open(struct aloft_store_pg **out, const char *url, char *err, size_t errlen)
{
    *out = NULL;
    struct aloft_store_pg *s = calloc(1, sizeof *s);
    if (!s || !(s->url = strdup(url))) {
        free(s);
        snprintf(err, errlen, "out of memory");
        return ALOFT_E_IO;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->freed, NULL);
    for (int i = 0; i < Q_COUNT; i++)
        if (!(s->sql[i] = number_params(aloft_store_sql[i]))) {
            snprintf(err, errlen, "out of memory");
            aloft_store_pg_close(s);
            return ALOFT_E_IO;
        }
    struct conn *c = acquire(s);
    int rc = c ? migrate(s, c) : ALOFT_E_IO;
    if (c)
        release(s, c);
    if (rc) {
        snprintf(err, errlen, "PostgreSQL: %s", aloft_store_last_error);
        aloft_store_pg_close(s);
        return rc == ALOFT_E_STATE ? ALOFT_E_STATE : ALOFT_E_IO;
    }
    *out = s;
    return 0;
}

void aloft_store_pg_close(struct aloft_store_pg *s)
{
    if (!s)
        return;
    aloft_store_pg_listen_stop(s);
    for (int i = 0; i < POOL_MAX; i++)
        PQfinish(s->conns[i].pg);
    for (int i = 0; i < Q_COUNT; i++)
        free(s->sql[i]);
    pthread_cond_destroy(&s->freed);
    pthread_mutex_destroy(&s->lock);
    free(s->url);
    free(s);
}

/* A connection of the pool for the rest of the function, or ALOFT_E_IO. */
#define WITH_CONN(s, c)                  \
    struct conn *c = acquire(s);         \
    if (!c)                              \
        return ALOFT_E_IO;

int aloft_store_pg_token_add(struct aloft_store_pg *s, const uint8_t digest[32])
{
    char h[65];
    aloft_hex(digest, 32, h);
    WITH_CONN(s, c);
    int rc = run(s, c, Q_TOKEN_ADD, "add token", "si", h, now_s());
    release(s, c);
    return rc;
}

int aloft_store_pg_token_check(struct aloft_store_pg *s, const uint8_t digest[32], bool *ok)
{
    char h[65];
    aloft_hex(digest, 32, h);
    *ok = false;
    WITH_CONN(s, c);
    PGresult *res = query(s, c, Q_TOKEN_ALL, "read tokens", "");
    unsigned match = 0;
    for (int row = 0; res && row < PQntuples(res); row++) {
        const char *t = PQgetvalue(res, row, 0);
        if (strlen(t) != 64)
            continue;
        unsigned diff = 0; /* every byte, every row: the time does not depend on where they differ */
        for (int i = 0; i < 64; i++)
            diff |= (unsigned)((unsigned char)t[i] ^ (unsigned char)h[i]);
        match |= diff == 0;
    }
    PQclear(res);
    release(s, c);
    *ok = res && match;
    return res ? 0 : ALOFT_E_IO;
}

static void read_platform(const PGresult *res, int row, struct aloft_store_platform *p)
{
    memset(p, 0, sizeof *p);
    col_text(res, row, 0, p->name, sizeof p->name);
    col_text(res, row, 1, p->chip, sizeof p->chip);
    col_text(res, row, 2, p->project, sizeof p->project);
    p->created_at = col_int(res, row, 3);
    col_text(res, row, 4, p->current[ALOFT_STORE_FIRMWARE], sizeof p->current[0]);
    col_text(res, row, 5, p->pinned[ALOFT_STORE_FIRMWARE], sizeof p->pinned[0]);
    col_text(res, row, 6, p->current[ALOFT_STORE_FRONTEND], sizeof p->current[0]);
    col_text(res, row, 7, p->pinned[ALOFT_STORE_FRONTEND], sizeof p->pinned[0]);
    p->checkins_settle = col_int(res, row, 8) != 0;
    p->pin_holds = col_int(res, row, 9) != 0;
    p->publish_manual = col_int(res, row, 10) != 0;
    p->releases = (uint64_t)col_int(res, row, 11);
    p->devices = (uint64_t)col_int(res, row, 12);
}

static void read_release(const PGresult *res, int row, struct aloft_store_release *r)
{
    memset(r, 0, sizeof *r);
    char kind[16];
    col_text(res, row, 0, r->platform, sizeof r->platform);
    col_text(res, row, 1, kind, sizeof kind);
    r->kind = strcmp(kind, "frontend") ? ALOFT_STORE_FIRMWARE : ALOFT_STORE_FRONTEND;
    col_text(res, row, 2, r->version, sizeof r->version);
    col_text(res, row, 3, r->sha256, sizeof r->sha256);
    col_text(res, row, 4, r->md5, sizeof r->md5);
    r->size = (uint64_t)col_int(res, row, 5);
    r->secure_version = (uint32_t)col_int(res, row, 6);
    col_text(res, row, 7, r->chip, sizeof r->chip);
    col_text(res, row, 8, r->project, sizeof r->project);
    col_text(res, row, 9, r->idf_ver, sizeof r->idf_ver);
    r->uploaded_at = col_int(res, row, 10);
    r->seq = col_int(res, row, 11);
    col_text(res, row, 12, r->signer, sizeof r->signer);
}

static void read_device(const PGresult *res, int row, struct aloft_store_device *d)
{
    memset(d, 0, sizeof *d);
    col_text(res, row, 0, d->mac, sizeof d->mac);
    col_text(res, row, 1, d->platform, sizeof d->platform);
    col_text(res, row, 2, d->version, sizeof d->version);
    col_text(res, row, 3, d->ip, sizeof d->ip);
    d->free_space = col_int(res, row, 4);
    d->sketch_size = col_int(res, row, 5);
    col_text(res, row, 6, d->sdk_version, sizeof d->sdk_version);
    col_text(res, row, 7, d->mode, sizeof d->mode);
    d->first_seen = col_int(res, row, 8);
    d->last_seen = col_int(res, row, 9);
    d->checkins = (uint64_t)col_int(res, row, 10);
    d->last_status = (int)col_int(res, row, 11);
    col_text(res, row, 12, d->last_reason, sizeof d->last_reason);
    col_text(res, row, 13, d->image, sizeof d->image);
}

/* The platform with this key into *p. */
static int platform_get(struct aloft_store_pg *s, struct conn *c, const char *key, bool counts,
                        struct aloft_store_platform *p)
{
    PGresult *res = query(s, c, counts ? Q_PLATFORM_GET_COUNTS : Q_PLATFORM_GET, "read platform", "s", key);
    if (!res)
        return ALOFT_E_IO;
    int rc = PQntuples(res) ? 0 : ALOFT_E_NOTFOUND;
    if (rc == 0)
        read_platform(res, 0, p);
    PQclear(res);
    return rc;
}

int aloft_store_pg_platform_get(struct aloft_store_pg *s, const char *name, bool counts, struct aloft_store_platform *p)
{
    if (!aloft_store_name_ok(name))
        return ALOFT_E_NOTFOUND;
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(name, key, sizeof key);
    WITH_CONN(s, c);
    int rc = platform_get(s, c, key, counts, p);
    release(s, c);
    return rc;
}

int aloft_store_pg_platforms(struct aloft_store_pg *s, aloft_store_platform_cb cb, void *ctx)
{
    WITH_CONN(s, c);
    PGresult *res = query(s, c, Q_PLATFORMS, "list platforms", "");
    release(s, c);
    int stop = 0;
    for (int row = 0; res && !stop && row < PQntuples(res); row++) {
        struct aloft_store_platform p;
        read_platform(res, row, &p);
        stop = cb(ctx, &p);
    }
    PQclear(res);
    return stop ? stop : res ? 0 : ALOFT_E_IO;
}

static int release_get(struct aloft_store_pg *s, struct conn *c, const char *key, enum aloft_store_kind kind,
                       const char *version, struct aloft_store_release *r)
{
    PGresult *res = query(s, c, Q_RELEASE_GET, "read release", "sss", key, aloft_store_kind_name(kind), version);
    if (!res)
        return ALOFT_E_IO;
    int rc = PQntuples(res) ? 0 : ALOFT_E_NOTFOUND;
    if (rc == 0)
        read_release(res, 0, r);
    PQclear(res);
    return rc;
}

/* Set the platform's current release of kind from its pin or, unless it
 * publishes by hand, its history; inside the caller's transaction. */
static int update_current(struct aloft_store_pg *s, struct conn *c, const char *key, enum aloft_store_kind kind,
                          const char *pinned, bool manual)
{
    PGresult *res = query(s, c, Q_RELEASES_ASC, "read releases", "ss", key, aloft_store_kind_name(kind));
    if (!res)
        return ALOFT_E_IO;
    size_t n = (size_t)PQntuples(res);
    struct aloft_store_release *all = n ? calloc(n, sizeof *all) : NULL;
    if (n && !all) {
        PQclear(res);
        snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "read releases: out of memory");
        return ALOFT_E_IO;
    }
    for (size_t i = 0; i < n; i++)
        read_release(res, (int)i, &all[i]);
    PQclear(res);
    const char *current = pinned ? pinned : n && !manual ? all[aloft_store_pick_current(all, n, kind)].version : NULL;
    int rc = run(s, c, kind == ALOFT_STORE_FIRMWARE ? Q_SET_FIRMWARE : Q_SET_FRONTEND, "set current release", "sss",
                 current, pinned, key);
    free(all);
    return rc;
}

/* A transaction that changes which release is current: one at a time
 * across every aloftd sharing the database. */
static int begin_release(struct aloft_store_pg *s, struct conn *c)
{
    return exec(s, c, "BEGIN; SELECT pg_advisory_xact_lock(" LOCK_RELEASES ")", "begin");
}

static int end_release(struct aloft_store_pg *s, struct conn *c, int rc)
{
    if (rc == 0)
        rc = exec(s, c, "COMMIT", "commit");
    if (rc && c->pg) {
        char saved[ALOFT_STORE_ERROR_MAX];
        memcpy(saved, aloft_store_last_error, sizeof saved);
        exec(s, c, "ROLLBACK", "rollback");
        memcpy(aloft_store_last_error, saved, sizeof saved);
    }
    return rc;
}

static int release_add(struct aloft_store_pg *s, struct conn *c, struct aloft_store_release *r, bool *existed)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(r->platform, key, sizeof key);
    struct aloft_store_platform p;
    int rc = platform_get(s, c, key, false, &p);
    if (rc == ALOFT_E_NOTFOUND && r->kind == ALOFT_STORE_FIRMWARE) {
        rc = run(s, c, Q_PLATFORM_ADD, "add platform", "ssssii", key, r->platform, r->chip, r->project, now_s(),
                 (int64_t)0);
        if (rc == 0)
            rc = platform_get(s, c, key, false, &p);
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
    rc = release_get(s, c, key, r->kind, r->version, &old);
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
    rc = run(s, c, Q_BLOB_ADD, "add file", "sisi", r->sha256, (int64_t)r->size, r->md5, now);
    PGresult *res = rc ? NULL : query(s, c, Q_SEQ_NEXT, "next sequence number", "");
    if (!rc && !res)
        rc = ALOFT_E_IO;
    if (!rc) {
        r->seq = col_int(res, 0, 0);
        r->uploaded_at = now;
        rc = run(s, c, Q_RELEASE_ADD, "add release", "ssssisssiis", key, aloft_store_kind_name(r->kind), r->version,
                 r->sha256, (int64_t)r->secure_version, r->chip, r->project, r->idf_ver, now, r->seq, r->signer);
    }
    PQclear(res);
    if (!rc)
        rc = update_current(s, c, key, r->kind, p.pinned[r->kind][0] ? p.pinned[r->kind] : NULL, p.publish_manual);
    if (!rc)
        snprintf(r->platform, sizeof r->platform, "%s", p.name);
    return rc;
}

int aloft_store_pg_release_add(struct aloft_store_pg *s, struct aloft_store_release *r, bool *existed)
{
    *existed = false;
    if (!aloft_store_name_ok(r->platform) || !r->version[0] || strlen(r->sha256) != 64)
        return ALOFT_E_INVAL;
    WITH_CONN(s, c);
    int rc = begin_release(s, c);
    if (rc == 0)
        rc = end_release(s, c, release_add(s, c, r, existed));
    release(s, c);
    return rc;
}

int aloft_store_pg_release_get(struct aloft_store_pg *s, const char *platform, enum aloft_store_kind kind,
                               const char *version, struct aloft_store_release *r)
{
    if (!aloft_store_name_ok(platform))
        return ALOFT_E_NOTFOUND;
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    WITH_CONN(s, c);
    int rc = release_get(s, c, key, kind, version, r);
    release(s, c);
    return rc;
}

int aloft_store_pg_releases(struct aloft_store_pg *s, const char *platform, enum aloft_store_kind kind,
                            aloft_store_release_cb cb, void *ctx)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    WITH_CONN(s, c);
    PGresult *res = query(s, c, Q_RELEASES_DESC, "list releases", "ss", key, aloft_store_kind_name(kind));
    release(s, c);
    int stop = 0;
    for (int row = 0; res && !stop && row < PQntuples(res); row++) {
        struct aloft_store_release r;
        read_release(res, row, &r);
        stop = cb(ctx, &r);
    }
    PQclear(res);
    return stop ? stop : res ? 0 : ALOFT_E_IO;
}

int aloft_store_pg_current(struct aloft_store_pg *s, const char *platform, enum aloft_store_kind kind,
                           struct aloft_store_release *r)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    WITH_CONN(s, c);
    PGresult *res = query(s, c, kind == ALOFT_STORE_FIRMWARE ? Q_CURRENT_FIRMWARE : Q_CURRENT_FRONTEND,
                          "read current release", "s", key);
    release(s, c);
    int rc = !res ? ALOFT_E_IO : PQntuples(res) ? 0 : ALOFT_E_NOTFOUND;
    if (rc == 0)
        read_release(res, 0, r);
    PQclear(res);
    return rc;
}

static int pin(struct aloft_store_pg *s, struct conn *c, const char *key, enum aloft_store_kind kind,
               const char *version)
{
    struct aloft_store_platform p;
    int rc = platform_get(s, c, key, false, &p);
    struct aloft_store_release r;
    if (rc == 0 && version)
        rc = release_get(s, c, key, kind, version, &r);
    return rc ? rc : update_current(s, c, key, kind, version, p.publish_manual);
}

int aloft_store_pg_pin(struct aloft_store_pg *s, const char *platform, enum aloft_store_kind kind, const char *version)
{
    if (!aloft_store_name_ok(platform))
        return ALOFT_E_NOTFOUND;
    char key[ALOFT_STORE_NAME_MAX + 1];
    aloft_store_key(platform, key, sizeof key);
    WITH_CONN(s, c);
    int rc = begin_release(s, c);
    if (rc == 0)
        rc = end_release(s, c, pin(s, c, key, kind, version));
    release(s, c);
    return rc;
}

int aloft_store_pg_blob_get(struct aloft_store_pg *s, const char *sha256, uint64_t *size)
{
    WITH_CONN(s, c);
    PGresult *res = query(s, c, Q_BLOB_GET, "read file record", "s", sha256);
    release(s, c);
    int rc = !res ? ALOFT_E_IO : PQntuples(res) ? 0 : ALOFT_E_NOTFOUND;
    if (rc == 0 && size)
        *size = (uint64_t)col_int(res, 0, 0);
    PQclear(res);
    return rc;
}

int aloft_store_pg_checkin_batch(struct aloft_store_pg *s, const struct aloft_store_device *d, size_t n)
{
    WITH_CONN(s, c);
    int rc = exec(s, c, "BEGIN", "begin");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        char key[ALOFT_STORE_NAME_MAX + 1];
        aloft_store_key(d[i].platform, key, sizeof key);
        rc = run(s, c, Q_EVENT_CHECKIN, "record a device's event", ALOFT_STORE_EVENT_CHECKIN_TYPES, d[i].mac,
                 d[i].last_seen, d[i].last_status == 200 ? "offer" : "checkin", d[i].version,
                 (int64_t)d[i].last_status, d[i].last_reason, d[i].mac, d[i].mac, d[i].version,
                 (int64_t)d[i].last_status, d[i].last_reason);
        if (rc == 0)
            rc = run(s, c, Q_CHECKIN_BATCH, "record check-ins", "ssssiissiiiiss", d[i].mac, key, d[i].version, d[i].ip,
                 d[i].free_space, d[i].sketch_size, d[i].sdk_version, d[i].mode, d[i].first_seen, d[i].last_seen,
                 (int64_t)d[i].checkins, (int64_t)d[i].last_status, d[i].last_reason, d[i].image);
    }
    rc = end_release(s, c, rc);
    release(s, c);
    return rc;
}

int aloft_store_pg_devices(struct aloft_store_pg *s, const char *platform, aloft_store_device_cb cb, void *ctx)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    if (platform)
        aloft_store_key(platform, key, sizeof key);
    WITH_CONN(s, c);
    PGresult *res = platform ? query(s, c, Q_DEVICES_PLATFORM, "list devices", "s", key)
                             : query(s, c, Q_DEVICES_ALL, "list devices", "");
    release(s, c);
    int stop = 0;
    for (int row = 0; res && !stop && row < PQntuples(res); row++) {
        struct aloft_store_device d;
        read_device(res, row, &d);
        stop = cb(ctx, &d);
    }
    PQclear(res);
    return stop ? stop : res ? 0 : ALOFT_E_IO;
}

/* The rows of a result to cb; the result is cleared. */
static int rows(PGresult *res, aloft_store_row_cb cb, void *ctx, int64_t *changed)
{
    if (changed)
        *changed = res ? strtoll(PQcmdTuples(res), NULL, 10) : 0;
    int stop = 0;
    int n = res ? PQnfields(res) : 0;
    if (n > ALOFT_STORE_COLS_MAX)
        n = ALOFT_STORE_COLS_MAX;
    for (int row = 0; res && cb && !stop && row < PQntuples(res); row++) {
        const char *cols[ALOFT_STORE_COLS_MAX];
        for (int i = 0; i < n; i++)
            cols[i] = PQgetisnull(res, row, i) ? "" : PQgetvalue(res, row, i);
        stop = cb(ctx, n, cols);
    }
    PQclear(res);
    return stop ? stop : res ? 0 : ALOFT_E_IO;
}

int aloft_store_pg_vexec(struct aloft_store_pg *s, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                         int64_t *changed, const char *types, va_list ap)
{
    WITH_CONN(s, c);
    PGresult *res = vquery(s, c, id, "query", types, ap);
    release(s, c);
    return rows(res, cb, ctx, changed);
}

int aloft_store_pg_transaction(struct aloft_store_pg *s, aloft_store_tx_body body, void *ctx)
{
    WITH_CONN(s, c);
    struct aloft_store_tx t = {NULL, s, c};
    int rc = exec(s, c, "BEGIN", "begin");
    if (rc == 0)
        rc = body(ctx, &t);
    rc = end_release(s, c, rc);
    release(s, c);
    return rc;
}

int aloft_store_pg_sql_exec(struct aloft_store_pg *s, const char *sql, aloft_store_row_cb cb, void *ctx, int n,
                            const char *const *values)
{
    char *text = number_params(sql);
    if (!text) {
        snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "out of memory");
        return ALOFT_E_IO;
    }
    struct conn *c = acquire(s);
    PGresult *res = NULL;
    while (c) {
        if (!c->pg) {
            fail(c, "query", NULL);
            break;
        }
        res = PQexecParams(c->pg, text, n, NULL, values, NULL, NULL, 0);
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
            break;
        fail(c, "query", res);
        PQclear(res);
        res = NULL;
        if (!retry(s, c))
            break;
    }
    if (c) {
        c->reused = false;
        release(s, c);
    }
    free(text);
    return c ? rows(res, cb, ctx, NULL) : ALOFT_E_IO;
}

int aloft_store_pg_tx_vexec(struct aloft_store_tx *t, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                            int64_t *changed, const char *types, va_list ap)
{
    return rows(vquery(t->pg, t->conn, id, "query", types, ap), cb, ctx, changed);
}

/* Files in the database: pieces of FILE_CHUNK bytes, sent and read as
 * binary (bytea), one piece per statement so that neither side holds more
 * than a piece of a large file. */
#define FILE_CHUNK (256 * 1024)

/* A statement with binary parameters of lengths len (text where len is 0)
 * and binary results. Returns its result (PQclear it) or NULL with the error
 * recorded. */
static PGresult *binary(struct conn *c, const char *sql, int n, const char *const *values, const int *len,
                        const char *what)
{
    int formats[4];
    for (int i = 0; i < n; i++)
        formats[i] = len[i] != 0;
    if (!c->pg) {
        fail(c, what, NULL);
        return NULL;
    }
    PGresult *res = PQexecParams(c->pg, sql, n, NULL, values, len, formats, 1);
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK)
        return res;
    fail(c, what, res);
    PQclear(res);
    return NULL;
}

int aloft_store_pg_file_put(struct aloft_store_pg *s, const char *sha256, const void *data, uint64_t size)
{
    WITH_CONN(s, c);
    int rc = exec(s, c, "BEGIN", "begin");
    const char *have[] = {sha256};
    const int text[] = {0};
    PGresult *res = rc ? NULL : binary(c, "SELECT 1 FROM blob_chunks WHERE sha256 = $1 AND seq = 0", 1, have, text,
                                       "look for a stored file");
    if (!rc && !res)
        rc = ALOFT_E_IO;
    bool stored = res && PQntuples(res) > 0; /* whole: its pieces were written in one transaction */
    PQclear(res);
    const char *p = data;
    for (uint64_t off = 0, seq = 0; rc == 0 && !stored && (off < size || seq == 0); off += FILE_CHUNK, seq++) {
        char number[24];
        snprintf(number, sizeof number, "%llu", (unsigned long long)seq);
        uint64_t n = size - off < FILE_CHUNK ? size - off : FILE_CHUNK;
        const char *values[] = {sha256, number, p + off};
        const int len[] = {0, 0, (int)n};
        /* an empty piece (an empty file) would read as text: send it as '' */
        res = binary(c,
                     n ? "INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"
                       : "INSERT INTO blob_chunks (sha256, seq, data) VALUES ($1, $2, ''::bytea) ON CONFLICT DO NOTHING",
                     n ? 3 : 2, values, len, "store a file's bytes");
        rc = res ? 0 : ALOFT_E_IO;
        PQclear(res);
    }
    rc = end_release(s, c, rc);
    release(s, c);
    return rc;
}

int aloft_store_pg_file_read(struct aloft_store_pg *s, const char *sha256, uint64_t size, aloft_store_bytes_cb cb,
                             void *ctx)
{
    WITH_CONN(s, c);
    int rc = 0;
    uint64_t got = 0;
    for (uint64_t seq = 0; rc == 0 && (got < size || seq == 0); seq++) {
        char number[24];
        snprintf(number, sizeof number, "%llu", (unsigned long long)seq);
        const char *values[] = {sha256, number};
        const int len[] = {0, 0};
        PGresult *res = binary(c, "SELECT data FROM blob_chunks WHERE sha256 = $1 AND seq = $2", 2, values, len,
                               "read a file's bytes");
        if (!res) {
            rc = ALOFT_E_IO;
            break;
        }
        if (PQntuples(res) == 0) {
            snprintf(aloft_store_last_error, sizeof aloft_store_last_error,
                     "the database holds %llu of the file's %llu bytes", (unsigned long long)got,
                     (unsigned long long)size);
            rc = ALOFT_E_NOTFOUND;
        } else {
            size_t n = (size_t)PQgetlength(res, 0, 0);
            if (n > size - got) {
                snprintf(aloft_store_last_error, sizeof aloft_store_last_error,
                         "the database holds more than the file's %llu bytes", (unsigned long long)size);
                rc = ALOFT_E_CORRUPT;
            } else {
                got += n;
                rc = n ? cb(ctx, PQgetvalue(res, 0, 0), n) : got < size ? ALOFT_E_CORRUPT : 0;
                if (rc == ALOFT_E_CORRUPT && !n)
                    snprintf(aloft_store_last_error, sizeof aloft_store_last_error, "a piece of the file is empty");
            }
        }
        PQclear(res);
    }
    release(s, c);
    return rc;
}

#define CHANNEL "aloft_changes"

int aloft_store_pg_notify(struct aloft_store_pg *s)
{
    WITH_CONN(s, c);
    int rc = exec(s, c, "NOTIFY " CHANNEL, "notify");
    release(s, c);
    return rc;
}

static void *listen_thread(void *arg)
{
    struct aloft_store_pg *s = arg;
    PGconn *pg = NULL;
    bool up = false;
    while (!__atomic_load_n(&s->listen_stop, __ATOMIC_ACQUIRE)) {
        if (!pg) {
            const char *const keys[] = {"connect_timeout", "application_name", "dbname", NULL};
            const char *const values[] = {"5", "aloftd-listen", s->url, NULL};
            pg = PQconnectdbParams(keys, values, 1);
            PGresult *res = pg && PQstatus(pg) == CONNECTION_OK ? PQexec(pg, "LISTEN " CHANNEL) : NULL;
            bool ok = res && PQresultStatus(res) == PGRES_COMMAND_OK;
            PQclear(res);
            if (!ok) {
                PQfinish(pg);
                pg = NULL;
                nanosleep(&(struct timespec){0, 100000000L}, NULL);
                continue;
            }
            up = true;
            s->event(s->event_ctx, 1);
        }
        struct pollfd p = {PQsocket(pg), POLLIN, 0};
        int n = poll(&p, 1, 100);
        if (n == 0)
            continue;
        bool any = false;
        if (n > 0 && PQconsumeInput(pg)) {
            PGnotify *nf;
            while ((nf = PQnotifies(pg))) {
                any = true;
                PQfreemem(nf);
            }
        }
        if (any)
            s->event(s->event_ctx, 0);
        if (n < 0 || PQstatus(pg) != CONNECTION_OK) {
            PQfinish(pg);
            pg = NULL;
            up = false;
            s->event(s->event_ctx, 2);
        }
    }
    PQfinish(pg);
    if (up)
        s->event(s->event_ctx, 2);
    return NULL;
}

int aloft_store_pg_listen_start(struct aloft_store_pg *s, void (*event)(void *ctx, int e), void *ctx)
{
    s->event = event;
    s->event_ctx = ctx;
    s->listen_stop = false;
    if (pthread_create(&s->listener, NULL, listen_thread, s))
        return ALOFT_E_IO;
    s->listening = true;
    return 0;
}

void aloft_store_pg_listen_stop(struct aloft_store_pg *s)
{
    if (!s->listening)
        return;
    __atomic_store_n(&s->listen_stop, true, __ATOMIC_RELEASE);
    pthread_join(s->listener, NULL);
    s->listening = false;
}
