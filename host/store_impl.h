/* aloft host: what the database backends share (not for the programs). */
#ifndef ALOFT_HOST_STORE_IMPL_H
#define ALOFT_HOST_STORE_IMPL_H

#include <stdarg.h>
#include <stddef.h>

#include "store.h"

/* A row of a generic query (aloft_store_<b>_vexec): every column as text,
 * "" for NULL. A non-zero return stops the query and is returned. */
typedef int (*aloft_store_row_cb)(void *ctx, int ncols, const char *const *cols);
#define ALOFT_STORE_COLS_MAX 24

/* A transaction of the open backend: aloft_store_<b>_transaction runs
 * body, whose statements go through aloft_store_<b>_tx_vexec(t, ...) (the
 * same as vexec, inside it), and commits; a non-zero return of body rolls
 * it all back and is returned. */
struct aloft_store_tx {
    struct aloft_store_sqlite *sqlite; /* the open backend: one is set */
    struct aloft_store_pg *pg;
    void *conn; /* PostgreSQL: the connection the transaction runs on */
};
typedef int (*aloft_store_tx_body)(void *ctx, struct aloft_store_tx *t);

/* The calling thread's last database error (aloft_store_error()). */
#define ALOFT_STORE_ERROR_MAX 300
extern _Thread_local char aloft_store_last_error[ALOFT_STORE_ERROR_MAX];

/* A backend implements the interface of store.h as aloft_store_<b>_<fn>
 * (store.c picks one by the URL's scheme). open takes what follows the
 * scheme: a path for sqlite, the whole URL for pg. */
#define ALOFT_STORE_BACKEND(b)                                                                                    \
    struct aloft_store_##b;                                                                                       \
    int aloft_store_##b##_open(struct aloft_store_##b **s, const char *where, char *err, size_t errlen);          \
    void aloft_store_##b##_close(struct aloft_store_##b *s);                                                      \
    int aloft_store_##b##_token_add(struct aloft_store_##b *s, const uint8_t digest[32]);                         \
    int aloft_store_##b##_token_check(struct aloft_store_##b *s, const uint8_t digest[32], bool *ok);             \
    int aloft_store_##b##_platform_get(struct aloft_store_##b *s, const char *name, bool counts,                  \
                                       struct aloft_store_platform *p);                                           \
    int aloft_store_##b##_platforms(struct aloft_store_##b *s, aloft_store_platform_cb cb, void *ctx);            \
    int aloft_store_##b##_release_add(struct aloft_store_##b *s, struct aloft_store_release *r, bool *existed);   \
    int aloft_store_##b##_release_get(struct aloft_store_##b *s, const char *platform, enum aloft_store_kind kind, \
                                      const char *version, struct aloft_store_release *r);                        \
    int aloft_store_##b##_releases(struct aloft_store_##b *s, const char *platform, enum aloft_store_kind kind,    \
                                   aloft_store_release_cb cb, void *ctx);                                         \
    int aloft_store_##b##_current(struct aloft_store_##b *s, const char *platform, enum aloft_store_kind kind,     \
                                  struct aloft_store_release *r);                                                 \
    int aloft_store_##b##_pin(struct aloft_store_##b *s, const char *platform, enum aloft_store_kind kind,         \
                              const char *version);                                                               \
    int aloft_store_##b##_blob_get(struct aloft_store_##b *s, const char *sha256, uint64_t *size);                \
    int aloft_store_##b##_devices(struct aloft_store_##b *s, const char *platform, aloft_store_device_cb cb,       \
                                  void *ctx);                                                                     \
    int aloft_store_##b##_checkin_batch(struct aloft_store_##b *s, const struct aloft_store_device *d, size_t n); \
    int aloft_store_##b##_vexec(struct aloft_store_##b *s, enum aloft_store_query id, aloft_store_row_cb cb,     \
                                void *ctx, int64_t *changed, const char *types, va_list ap);                      \
    int aloft_store_##b##_transaction(struct aloft_store_##b *s, aloft_store_tx_body body, void *ctx);            \
    int aloft_store_##b##_sql_exec(struct aloft_store_##b *s, const char *sql, aloft_store_row_cb cb, void *ctx,  \
                                   int n, const char *const *values);                                             \
    int aloft_store_##b##_tx_vexec(struct aloft_store_tx *t, enum aloft_store_query id, aloft_store_row_cb cb,    \
                                   void *ctx, int64_t *changed, const char *types, va_list ap);


/* name in lower case into out (cap bytes): the key platforms are stored by. */
void aloft_store_key(const char *name, char *out, size_t cap);

/* The schema, one migration per entry, in order: migration i takes the
 * schema from version i to i + 1. Portable SQL, run as one script each. */
extern const char *const aloft_store_migrations[];
extern const size_t aloft_store_migration_count;
/* The table that records them (created before the first). */
extern const char aloft_store_migrations_table[];

/* The queries (store_schema.c), in portable SQL with ? parameters. */
enum aloft_store_query {
    Q_TOKEN_COUNT,
    Q_TOKEN_ADD,
    Q_TOKEN_ALL,
    Q_SECRET_ADD,
    Q_SECRET_GET,
    Q_CHECKINS_SETTLE,
    Q_PIN_HOLDS,
    Q_PUBLISH_MANUAL,
    Q_TOKEN_KEEP_ONLY,
    Q_PLATFORM_GET,
    Q_PLATFORM_GET_COUNTS,
    Q_PLATFORMS,
    Q_PLATFORM_ADD,
    Q_BLOB_GET,
    Q_BLOB_ADD,
    Q_RELEASE_GET,
    Q_RELEASES_DESC,
    Q_RELEASES_ASC,
    Q_CURRENT_FIRMWARE,
    Q_CURRENT_FRONTEND,
    Q_SEQ_NEXT,
    Q_RELEASE_ADD,
    Q_SET_FIRMWARE,
    Q_SET_FRONTEND,
    Q_CHECKIN_BATCH,
    Q_DEVICES_ALL,
    Q_DEVICES_PLATFORM,
    Q_FILES_UNSHARED,
    Q_DEVICE_VERSIONS,
    Q_DEVICE_IMAGE,
    Q_DEVICE_IMAGES,
    Q_EVENT_CHECKIN,
    Q_EVENT_ADD,
    Q_DEVICE_EVENTS,
    Q_DELTA_GET,
    Q_DELTAS_TO,
    Q_DELTA_ADD,
    Q_RELEASE_HAS_SHA,
    Q_SCHEMA_VERSION,
    Q_WHITELIST_CHECK,
    Q_WHITELIST_ENABLED,
    Q_WHITELIST_SET,
    Q_WHITELIST_ADD,
    Q_WHITELIST_REMOVE,
    Q_WHITELIST_MACS,
    Q_SIGNING_KEY_ADD,
    Q_SIGNING_KEY_REMOVE,
    Q_SIGNING_KEYS,
    Q_DEVICE_PLATFORM,
    Q_REPORT_ADD,
    Q_REPORTS,
    Q_ROLLOUT_NEXT_ID,
    Q_ROLLOUT_ADD,
    Q_ROLLOUT_GET,
    Q_ROLLOUT_GOVERNING,
    Q_ROLLOUT_RUNNING,
    Q_ROLLOUTS,
    Q_ROLLOUT_SET,
    Q_ROLLOUT_OFFERED,
    Q_ROLLOUT_STAGE_OFFERED,
    Q_ROLLOUT_STAGES,
    Q_ROLLOUT_DEVICE,
    Q_ROLLOUT_RESULT,
    Q_ROLLOUT_SETTLE,
    Q_ROLLOUT_STAGE_MOVE,
    Q_ROLLOUT_HISTORY_NOTE,
    Q_ROLLOUT_HISTORY,
    Q_COUNT
};
extern const char *const aloft_store_sql[Q_COUNT];
/* Q_EVENT_CHECKIN's arguments: mac, at, kind, version, status, detail,
 * mac; then the device row it must differ from: mac, version, status,
 * reason. Q_EVENT_ADD takes the first seven. */
#define ALOFT_STORE_EVENT_CHECKIN_TYPES "sississ" "ssis"
#define ALOFT_STORE_EVENT_ADD_TYPES "sississ"

/* For the parts of the store in files of their own (store_devices.c,
 * store_rollout.c):
 * a query of the open backend by id ('s' text, 'i' int64 arguments), or a
 * statement made for this call (sql with n ? parameters, all text). */
int aloft_store_exec(struct aloft_store *s, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                     int64_t *changed, const char *types, ...);
int aloft_store_exec_sql(struct aloft_store *s, const char *sql, aloft_store_row_cb cb, void *ctx, int n,
                         const char *const *values);
/* Whether text compares byte by byte, so that the strings starting with a
 * prefix are one range of an index (SQLite; PostgreSQL in the C collation). */
bool aloft_store_bytewise_text(struct aloft_store *s);
/* A transaction of the open backend (see struct aloft_store_tx), and a
 * query inside one (as aloft_store_exec). */
int aloft_store_transaction(struct aloft_store *s, aloft_store_tx_body body, void *ctx);
int aloft_store_tx_exec(struct aloft_store_tx *t, enum aloft_store_query id, aloft_store_row_cb cb, void *ctx,
                        int64_t *changed, const char *types, ...);
/* A report from the nine columns of a row that starts at c (mac, version,
 * result, reason, partition, state, reset_reason, reported_at, reports). */
void aloft_store_report_cols(const char *const *c, struct aloft_store_report *r);
/* The platform's key, or ALOFT_E_NOTFOUND when the name is not one. */
int aloft_store_key_of(const char *platform, char key[ALOFT_STORE_NAME_MAX + 1]);
/* A row of up to four integers (aloft_store_read_ints as the row callback). */
struct aloft_store_ints {
    int64_t v[4];
    int n;
};
int aloft_store_read_ints(void *ctx, int n, const char *const *cols);
/* Releases, pins, whitelists or rollouts changed: the decision cache is
 * dropped here, and other processes on PostgreSQL are told. */
void aloft_store_views_changed(struct aloft_store *s);

/* store_rollout.c: what a process keeps of its rollouts (made at open,
 * freed at close), and writing the offers and successes it queued (before
 * every read of a rollout, and with every batch of check-ins). */
struct aloft_store_rollout_state;
struct aloft_store_rollout_state *aloft_store_rollout_state_new(void);
void aloft_store_rollout_state_free(struct aloft_store_rollout_state *st);
struct aloft_store_rollout_state *aloft_store_rollout_state(struct aloft_store *s);
int aloft_store_settle_flush(struct aloft_store *s);

ALOFT_STORE_BACKEND(sqlite)
ALOFT_STORE_BACKEND(pg)

/* PostgreSQL only (store.c's decision cache): NOTIFY every process that
 * listens that releases, pins, whitelists or rollouts changed; and a
 * thread of its own connection that LISTENs, calling event(ctx, e) with
 * e = 0 on a notification, 1 when it listens (again), 2 when it no longer
 * does (the connection broke; it reconnects). */
int aloft_store_pg_notify(struct aloft_store_pg *s);
/* PostgreSQL only: a file's bytes in blob_chunks (aloft_store_file_put,
 * aloft_store_file_read). */
int aloft_store_pg_file_put(struct aloft_store_pg *s, const char *sha256, const void *data, uint64_t size);
int aloft_store_pg_file_read(struct aloft_store_pg *s, const char *sha256, uint64_t size, aloft_store_bytes_cb cb,
                             void *ctx);
int aloft_store_pg_listen_start(struct aloft_store_pg *s, void (*event)(void *ctx, int e), void *ctx);
void aloft_store_pg_listen_stop(struct aloft_store_pg *s);

/* Which of n releases (in upload order) is current when nothing is pinned:
 * for firmware the latest upload among those no other release is newer
 * than; for frontends the latest upload. Returns its index (n > 0). */
size_t aloft_store_pick_current(const struct aloft_store_release *r, size_t n, enum aloft_store_kind kind);

#endif
