/* aloft host: the update server's database — platforms, releases, the
 * content-addressed files they point at, devices and admin tokens.
 *
 * The schema comes from numbered migrations (store_schema.c) written in SQL
 * that SQLite and PostgreSQL both run: plain types, no AUTOINCREMENT, no
 * backend-only syntax. Two backends: SQLite ("sqlite:PATH", embedded, one
 * locked connection) and PostgreSQL ("postgres://USER@HOST:PORT/DB", a pool
 * of connections; several aloftd instances may share the database). Threads
 * may share a store.
 *
 * Errors: ALOFT_E_IO (the database failed: aloft_store_error() says how),
 * ALOFT_E_NOTFOUND, ALOFT_E_INVAL, and the conflicts documented below. */
#ifndef ALOFT_HOST_STORE_H
#define ALOFT_HOST_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALOFT_STORE_NAME_MAX 32 /* platform names: [A-Za-z0-9._-]{1,32} */
#define ALOFT_STORE_VERSION_MAX 64

enum aloft_store_kind { ALOFT_STORE_FIRMWARE, ALOFT_STORE_FRONTEND };

struct aloft_store;

struct aloft_store_platform {
    char name[ALOFT_STORE_NAME_MAX + 1];
    char chip[16];
    char project[33];
    int64_t created_at;                             /* Unix seconds */
    char current[2][ALOFT_STORE_VERSION_MAX + 1];   /* by kind; "" when none */
    char pinned[2][ALOFT_STORE_VERSION_MAX + 1];    /* by kind; "" when not pinned */
    bool checkins_settle;                           /* may an unsigned check-in settle a rollout */
    bool pin_holds;                                 /* the firmware pin never downgrades a device */
    bool publish_manual;                            /* only a pin serves a release: uploads wait */
    uint64_t releases;                              /* firmware releases */
    uint64_t devices;
};

struct aloft_store_release {
    char platform[ALOFT_STORE_NAME_MAX + 1];
    enum aloft_store_kind kind;
    char version[ALOFT_STORE_VERSION_MAX + 1];
    char sha256[65]; /* lower-case hex: the file is firmware/<sha256>.bin */
    char md5[33];
    uint64_t size;
    uint32_t secure_version;
    char chip[16];
    char project[33];
    char idf_ver[33];
    int64_t uploaded_at;
    int64_t seq;     /* upload order within the database */
    char signer[65]; /* public key digest of the signature block that verified
                      * (a policy key's when the platform has any), "" unsigned */
};

struct aloft_store_device {
    char mac[18];    /* AA:BB:CC:DD:EE:FF */
    char platform[ALOFT_STORE_NAME_MAX + 1];
    char version[ALOFT_STORE_VERSION_MAX + 1];
    char ip[48];
    int64_t free_space;  /* -1: not sent */
    int64_t sketch_size; /* -1: not sent */
    char sdk_version[48];
    char mode[8];        /* "sketch" or "spiffs" */
    int64_t first_seen, last_seen;
    uint64_t checkins;
    int last_status;     /* what /update answered last time */
    char last_reason[320];
    char image[65];      /* SHA-256 of the running image the device named in X-Aloft-Delta at its last
                          * firmware check-in (it takes patches from it); "" unknown */
};

/* Open (creating an SQLite file) and migrate to the newest schema. url:
 * "sqlite:PATH", or a libpq URL "postgres://..." / "postgresql://...".
 * Returns 0 or ALOFT_E_INVAL (unknown scheme), ALOFT_E_IO (cannot open or
 * connect), ALOFT_E_STATE (the schema is newer than this build), with a
 * sentence in err. A PostgreSQL database that goes away later makes calls
 * fail with ALOFT_E_IO until it is back: each call connects again. */
int aloft_store_open(struct aloft_store **s, const char *url, char *err, size_t errlen);
void aloft_store_close(struct aloft_store *s);

/* The calling thread's last database error, as text. */
const char *aloft_store_error(void);

/* The schema version now in the database (the count of migrations run),
 * and the one this build migrates to. */
int aloft_store_schema_version(struct aloft_store *s, int *version);
int aloft_store_schema_wanted(void);

/* Admin tokens are stored as the SHA-256 of the token, never the token. */
int aloft_store_token_count(struct aloft_store *s, uint64_t *n);
int aloft_store_token_add(struct aloft_store *s, const uint8_t digest[32]);
/* *ok: digest is a stored token's; every stored digest is compared in full. */
int aloft_store_token_check(struct aloft_store *s, const uint8_t digest[32], bool *ok);
/* Every stored token but digest's is refused from now on (a rotation). */
int aloft_store_token_keep_only(struct aloft_store *s, const uint8_t digest[32]);

/* Is name a valid platform name? */
bool aloft_store_name_ok(const char *name);

/* Look a platform up by name, case-insensitively. counts: also count its
 * releases and devices (else 0). ALOFT_E_NOTFOUND. */
int aloft_store_platform_get(struct aloft_store *s, const char *name, bool counts, struct aloft_store_platform *p);

typedef int (*aloft_store_platform_cb)(void *ctx, const struct aloft_store_platform *p);
typedef int (*aloft_store_release_cb)(void *ctx, const struct aloft_store_release *r);
typedef int (*aloft_store_device_cb)(void *ctx, const struct aloft_store_device *d);

/* Every platform by name, with counts. A non-zero return from cb stops and is returned. */
int aloft_store_platforms(struct aloft_store *s, aloft_store_platform_cb cb, void *ctx);

/* Record a release whose file is already stored, in one transaction: the
 * file's row, the platform (created on its first firmware, with the chip and
 * project of r), the release, and the platform's new current release.
 * *existed is set when this exact release was recorded before (uploading the
 * same bytes twice changes nothing). r->seq and r->uploaded_at are filled.
 * Conflicts: ALOFT_E_STATE (the version is recorded with other bytes),
 * ALOFT_E_CHIP (the platform is for another chip), ALOFT_E_NOTFOUND (a
 * frontend for a platform that has no firmware yet). */
int aloft_store_release_add(struct aloft_store *s, struct aloft_store_release *r, bool *existed);

/* One release of a platform (case-insensitive) by kind and version.
 * ALOFT_E_NOTFOUND. */
int aloft_store_release_get(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                            const char *version, struct aloft_store_release *r);

/* A platform's releases of kind, newest upload first. */
int aloft_store_releases(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                         aloft_store_release_cb cb, void *ctx);

/* The release of kind that devices of platform are offered: the pinned one,
 * else for firmware the newest by version (among versions nothing else is
 * newer than, the latest upload), for frontends the latest upload.
 * ALOFT_E_NOTFOUND when the platform has none. */
int aloft_store_current(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                        struct aloft_store_release *r);

/* Pin version (it must be a release of kind: ALOFT_E_NOTFOUND) as current,
 * older or not; version NULL unpins. */
int aloft_store_pin(struct aloft_store *s, const char *platform, enum aloft_store_kind kind, const char *version);

/* Is the file with this SHA-256 recorded? Fills size (may be NULL). */
int aloft_store_blob_get(struct aloft_store *s, const char *sha256, uint64_t *size);

/* The bytes of stored files, kept in the database on PostgreSQL so that
 * aloftd instances sharing it need no shared disk: one that lacks a file
 * reads it from there (and checks its SHA-256: the database is trusted no
 * more than a disk). SQLite keeps none: its one aloftd has its files. */
bool aloft_store_files_shared(struct aloft_store *s);
/* Keep size bytes at data as the file sha256 (64 lower-case hex digits),
 * all or nothing; keeping a file twice is fine. SQLite: 0, nothing kept. */
int aloft_store_file_put(struct aloft_store *s, const char *sha256, const void *data, uint64_t size);
/* The file's size bytes, in order, to cb (a non-zero return stops and is
 * returned). ALOFT_E_NOTFOUND: the database has not all of them (SQLite:
 * never any); ALOFT_E_CORRUPT: it has more. The caller checks the SHA-256. */
typedef int (*aloft_store_bytes_cb)(void *ctx, const void *p, size_t n);
int aloft_store_file_read(struct aloft_store *s, const char *sha256, uint64_t size, aloft_store_bytes_cb cb,
                          void *ctx);
/* The recorded files whose bytes the database does not hold (recorded
 * before it kept any): none on SQLite. */
typedef int (*aloft_store_file_cb)(void *ctx, const char *sha256, uint64_t size);
int aloft_store_files_unshared(struct aloft_store *s, aloft_store_file_cb cb, void *ctx);

/* A delta patch between two firmware images (aloftd makes them in the
 * background, aloftd/deltas.c). */
struct aloft_store_delta {
    char base[65];      /* SHA-256 of the image a device runs */
    char target[65];    /* SHA-256 of the image it is offered */
    bool worth;         /* false: the patch is 80 % of the image or more; the image is sent */
    char sha256[65];    /* the patch file's (firmware/<sha256>.bin), "" when not worth it */
    char md5[33];       /* the patch file's, "" when not worth it */
    uint64_t size;      /* the patch's bytes */
    uint64_t target_size;
    int64_t created_at;
};
/* The patch from base to target: 0 or ALOFT_E_NOTFOUND (not made yet). */
int aloft_store_delta_get(struct aloft_store *s, const char *base, const char *target, struct aloft_store_delta *d);
/* Record what came of making a patch, with its file's row when it is worth
 * sending (its bytes are stored already, as a release's are), in one
 * transaction. A pair recorded already (another instance made it) stays. */
int aloft_store_delta_add(struct aloft_store *s, const struct aloft_store_delta *d);
/* The patches made to target, oldest first. */
typedef int (*aloft_store_delta_cb)(void *ctx, const struct aloft_store_delta *d);
int aloft_store_deltas(struct aloft_store *s, const char *target, aloft_store_delta_cb cb, void *ctx);
/* Is the image sha256 a firmware release of platform? */
int aloft_store_release_has(struct aloft_store *s, const char *platform, const char *sha256, bool *has);

/* Record a check-in: insert the device or update it (first_seen and the
 * check-in count carry over). first_seen, last_seen and checkins of d are
 * ignored; now is the time of the check-in. Queued, never blocking on the
 * database (see aloft_store_checkin_flush); returns 0. */
int aloft_store_checkin(struct aloft_store *s, const struct aloft_store_device *d, int64_t now);

/* Check-ins are queued, not written at once: coalesced by MAC (the latest
 * check-in of a device wins; their count and the first one's time are
 * kept) and written by a background thread in one transaction every
 * 100 ms, or as soon as 2048 devices wait, and at aloft_store_close. When
 * 16384 devices wait, the oldest waiting one's update is dropped (counted)
 * rather than blocking. Every read of the inventory through this store
 * (devices, reports, platform counts) writes what is queued first, so it
 * sees every check-in made before it; another process sharing a PostgreSQL
 * database sees them within the 100 ms. Returns 0, or the database's error
 * for the check-ins written now (they are lost). */
int aloft_store_checkin_flush(struct aloft_store *s);
struct aloft_store_checkin_stats {
    uint64_t queued;  /* check-ins accepted */
    uint64_t written; /* device rows written */
    uint64_t dropped; /* coalesced updates dropped because the queue was full */
    uint64_t failed;  /* device rows lost to database errors */
    uint64_t waiting; /* devices waiting now */
};
void aloft_store_checkin_stats(struct aloft_store *s, struct aloft_store_checkin_stats *st);

/* Devices by MAC, of one platform (case-insensitive) or all (NULL). */
int aloft_store_devices(struct aloft_store *s, const char *platform, aloft_store_device_cb cb, void *ctx);

/* One page of the devices, filtered, sorted and counted by the database
 * (store_devices.c): what the admin UI lists at fleet size. Each filter is
 * off when NULL (or 0); the sort column comes from an index on (platform,
 * column, MAC) with the MAC breaking ties, so pages never overlap. */
struct aloft_store_device_query {
    const char *platform; /* NULL: every platform (then nothing is indexed) */
    const char *mac;      /* exactly this MAC */
    const char *version;  /* exactly this version */
    const char *state;    /* the last answer: offered (200), current (304), refused (4xx, 5xx); or the last
                           * report: updated, rolled_back, failed, unreported */
    const char *address;  /* IP addresses starting with this */
    int64_t seen_after;   /* last check-in at or after (Unix seconds) */
    int64_t seen_before;  /* last check-in before */
    const char *sort;     /* mac (NULL), version, ip, last_seen, status */
    bool desc;
    uint64_t offset, limit; /* limit 1 to ALOFT_STORE_PAGE_MAX */
    /* keyset paging: the page starts after this device (its MAC, and its
     * value of the sort, as text) in the sort's order, found by index
     * however deep; NULL: from the start (then offset) */
    const char *after_mac, *after_value;
};
#define ALOFT_STORE_PAGE_MAX 1000
/* A device and its last report (NULL: none). */
struct aloft_store_report;
typedef int (*aloft_store_device_page_cb)(void *ctx, const struct aloft_store_device *d,
                                          const struct aloft_store_report *r);
/* *total: how many devices pass the filters. ALOFT_E_INVAL: an unknown
 * sort or state, or a limit out of range. */
int aloft_store_devices_page(struct aloft_store *s, const struct aloft_store_device_query *q, uint64_t *total,
                             aloft_store_device_page_cb cb, void *ctx);
/* How many devices of platform run each version, most first. */
typedef int (*aloft_store_count_cb)(void *ctx, const char *value, uint64_t n);
int aloft_store_device_versions(struct aloft_store *s, const char *platform, aloft_store_count_cb cb, void *ctx);
/* The image (SHA-256) the device mac of platform last said it runs, into
 * image[65]: "" when it never said (or is not in the inventory). */
int aloft_store_device_image(struct aloft_store *s, const char *platform, const char *mac, char image[65]);
/* The running images the devices of platform said, most devices first
 * (at most ALOFT_STORE_IMAGES_MAX), with their counts. */
#define ALOFT_STORE_IMAGES_MAX 8
int aloft_store_device_images(struct aloft_store *s, const char *platform, aloft_store_count_cb cb, void *ctx);
/* A device's recent history, newest first: the last ALOFT_STORE_EVENTS
 * check-ins that changed its version or the answer it got, offers (an
 * answer 200) and outcome reports. A check-in like the one before is not
 * an event (the device's count and last_seen say it happened). */
#define ALOFT_STORE_EVENTS 32
struct aloft_store_event {
    int64_t seq, at;
    char kind[8]; /* checkin, offer, report */
    char version[ALOFT_STORE_VERSION_MAX + 1];
    int status; /* the answer; 0 for a report */
    char detail[320];
};
typedef int (*aloft_store_event_cb)(void *ctx, const struct aloft_store_event *e);
int aloft_store_device_events(struct aloft_store *s, const char *mac, aloft_store_event_cb cb, void *ctx);

const char *aloft_store_kind_name(enum aloft_store_kind kind);

/* Per-platform MAC whitelists (off by default). *allowed: the whitelist is
 * off, or mac (AA:BB:CC:DD:EE:FF) is on it. */
int aloft_store_whitelist_check(struct aloft_store *s, const char *platform, const char *mac, bool *allowed);
int aloft_store_whitelist_enable(struct aloft_store *s, const char *platform, bool on);
/* Add a MAC (adding it twice is fine); remove one (ALOFT_E_NOTFOUND when
 * it is not on the list). */
int aloft_store_whitelist_add(struct aloft_store *s, const char *platform, const char *mac);
int aloft_store_whitelist_remove(struct aloft_store *s, const char *platform, const char *mac);
typedef int (*aloft_store_mac_cb)(void *ctx, const char *mac);
int aloft_store_whitelist(struct aloft_store *s, const char *platform, bool *enabled, aloft_store_mac_cb cb,
                          void *ctx);

/* A platform's signing policy: the public key digests (64 lower-case hex
 * digits) of which one must have signed every upload; none: no policy.
 * Adding one twice is fine; removing one not there is ALOFT_E_NOTFOUND. */
/* The server's secret called name: the stored one, or fresh, stored now
 * when there was none (every instance on one database gets the same). */
int aloft_store_secret(struct aloft_store *s, const char *name, const char *fresh, char *out, size_t cap);

/* Whether platform's firmware pin only holds devices back (an aborted
 * rollout's: no device is offered a release older than the one it runs)
 * or is the operator's, who may downgrade with it. */
int aloft_store_pin_holds(struct aloft_store *s, const char *platform, bool holds);

/* Whether a check-in nobody signed may settle a device of platform in a rollout. */
int aloft_store_checkins_settle(struct aloft_store *s, const char *platform, bool on);

/* Create a platform before its first upload, so that its signing keys and
 * publish policy hold from the first one; chip as aloft names chips
 * ("esp32c3"), checked by the caller. ALOFT_E_STATE: it exists. */
int aloft_store_platform_add(struct aloft_store *s, const char *name, const char *chip, bool publish_manual);

/* The publish policy. Manual: devices are offered only what is pinned (an
 * operator's pin, or a rollout's when it completes): an upload changes
 * nothing. Turning it on pins what is offered now, so the fleet sees no
 * change; turning it off serves the newest release again unless pinned. */
int aloft_store_publish_manual(struct aloft_store *s, const char *platform, bool manual);

int aloft_store_signing_key_add(struct aloft_store *s, const char *platform, const char *digest);
int aloft_store_signing_key_remove(struct aloft_store *s, const char *platform, const char *digest);
typedef int (*aloft_store_key_cb)(void *ctx, const char *digest);
int aloft_store_signing_keys(struct aloft_store *s, const char *platform, aloft_store_key_cb cb, void *ctx);

/* A device's outcome report after its restart (the last one is kept). */
struct aloft_store_report {
    char mac[18];
    char version[ALOFT_STORE_VERSION_MAX + 1];
    char result[16]; /* updated, rolled_back, failed */
    char reason[200];
    char partition[17];
    char state[24];
    char reset_reason[24];
    int64_t reported_at;
    uint64_t reports;
};
/* Record it; the device must have checked in (ALOFT_E_NOTFOUND). platform
 * (may be NULL): the device's platform key is copied there. */
int aloft_store_report_add(struct aloft_store *s, const struct aloft_store_report *r, int64_t now,
                           char platform[ALOFT_STORE_NAME_MAX + 1]);
typedef int (*aloft_store_report_cb)(void *ctx, const struct aloft_store_report *r);
int aloft_store_reports(struct aloft_store *s, aloft_store_report_cb cb, void *ctx);

/* Staged rollouts: a release offered to a growing share of a platform's
 * devices (stages in percent); the others get `previous`. */
#define ALOFT_STORE_STAGES_MAX 10
/* The devices offered a rollout's release in one stage, and their outcomes. */
struct aloft_store_stage_counts {
    uint64_t offered, updated, failed, rolled_back, old_version;
};
struct aloft_store_rollout {
    int64_t id;
    char platform[ALOFT_STORE_NAME_MAX + 1];
    char version[ALOFT_STORE_VERSION_MAX + 1];
    char previous[ALOFT_STORE_VERSION_MAX + 1]; /* "" : none */
    int stages[ALOFT_STORE_STAGES_MAX];
    int nstages;
    int stage;      /* index into stages */
    char status[12]; /* active, paused, halted, aborted, completed */
    int64_t max_failures;
    bool max_failures_percent;
    char reason[200];
    int64_t created_at, updated_at;
    uint64_t offered, failures, successes; /* devices offered it; of them, failed (see below); updated */
    int64_t auto_advance;      /* 0: advanced only on command */
    bool auto_advance_percent; /* auto_advance is a percentage of the stage's devices offered */
    uint64_t stage_offered, stage_failures, stage_successes; /* the same, of the devices offered in this stage */
    struct aloft_store_stage_counts counts[ALOFT_STORE_STAGES_MAX]; /* by the stage devices were offered in */
};
/* A device offered the release has one outcome (result): none yet, or its
 * report's (updated, failed, rolled_back; the last report wins), or what
 * its next check-in showed: updated when it runs the release, else
 * old_version. failed, rolled_back and old_version are failures. The
 * counters of the stage it was offered in change in the same transaction
 * as its offer or outcome: a rollout is read from them, never by counting
 * its devices. */
/* Start one: r's platform, version, stages, max_failures, auto_advance; previous is
 * computed (the release that would be current without r->version), id
 * and times are filled. ALOFT_E_NOTFOUND: no such release;
 * ALOFT_E_STATE: the platform has a rollout active or paused. */
int aloft_store_rollout_add(struct aloft_store *s, struct aloft_store_rollout *r);
int aloft_store_rollout_get(struct aloft_store *s, int64_t id, struct aloft_store_rollout *r);
/* The rollout that decides the platform's /update: its newest rollout,
 * unless that one completed or was aborted, without its counters (0: the
 * /update path needs none; aloft_store_rollout_get has them).
 * ALOFT_E_NOTFOUND: none. */
int aloft_store_rollout_governing(struct aloft_store *s, const char *platform, struct aloft_store_rollout *r);
typedef int (*aloft_store_rollout_cb)(void *ctx, const struct aloft_store_rollout *r);
int aloft_store_rollouts(struct aloft_store *s, aloft_store_rollout_cb cb, void *ctx);
/* Move from status `from` at stage `from_stage` to (stage, status):
 * ALOFT_E_STATE when the rollout is no longer there (someone else changed
 * it). */
int aloft_store_rollout_set(struct aloft_store *s, int64_t id, const char *from, int from_stage, int stage,
                            const char *status, const char *reason);
/* mac was offered the rollout's release while it was at stage (an index;
 * the first offer counts). Written with the next batch of check-ins
 * (within 100 ms), before anything this store writes or reads of the
 * rollout; another process sharing a PostgreSQL database sees it then. */
int aloft_store_rollout_offered(struct aloft_store *s, int64_t id, int stage, const char *mac);
/* A report of mac for the rollout; *counted: mac had been offered it. */
int aloft_store_rollout_result(struct aloft_store *s, int64_t id, const char *mac, const char *result, bool *counted);
/* A check-in of mac: its outcome becomes updated (on_release) or
 * old_version, if it was offered the release and has no outcome yet
 * (*counted; then *k is the stage it was offered in, with its counters
 * after this outcome). A device known to have an outcome already costs no
 * database work, and one this process offered the release costs one
 * transaction: the process remembers both (an offer and an outcome are
 * never taken back). defer: a success may instead wait for the check-in
 * queue's next write (its own transaction, within 100 ms; *counted stays
 * false), for a caller that knows no success can change the rollout now;
 * every read of a rollout through this store writes what waits first.
 * Another process sharing a PostgreSQL database sees it within 100 ms. */
int aloft_store_rollout_settle(struct aloft_store *s, int64_t id, const char *mac, bool on_release, bool defer,
                               bool *counted, int *stage, struct aloft_store_stage_counts *k);
/* A rollout's progress over time: a stage's counters as they stood at
 * the end of a step of time (at: its start, a multiple of the step) in
 * which one of them changed. Kept in the transaction that changes them,
 * once per stage a batch touches: no cost at a check-in, one row a stage a
 * step at most. By (at, stage). */
struct aloft_store_rollout_point {
    int64_t at;
    int stage;
    struct aloft_store_stage_counts k;
};
#define ALOFT_STORE_HISTORY_STEP 60 /* seconds, unless aloft_store_rollout_history_step says otherwise */
#define ALOFT_STORE_HISTORY_MAX 20000 /* points a read returns at most: the newest */
void aloft_store_rollout_history_step(struct aloft_store *s, unsigned seconds);
typedef int (*aloft_store_point_cb)(void *ctx, const struct aloft_store_rollout_point *p);
int aloft_store_rollout_history(struct aloft_store *s, int64_t id, aloft_store_point_cb cb, void *ctx);

/* What GET /update decides with, for one platform (case-insensitive): the
 * platform, whether mac ("" or NULL: none) passes its whitelist, the rollout
 * governing its firmware (governing_rc 0 or ALOFT_E_NOTFOUND) with the
 * releases of its version and previous (rollout_rc[0], [1]), and the
 * current release of each kind (current_rc[kind]). Served from memory:
 * the copy of a platform is dropped whenever this process changes a
 * release, pin, whitelist or rollout, and on PostgreSQL whenever any
 * process sharing the database does (LISTEN/NOTIFY; while that channel is
 * down, nothing is kept). ALOFT_E_NOTFOUND: no such platform. */
struct aloft_store_update_view {
    struct aloft_store_platform p; /* without counts */
    bool allowed;
    int governing_rc;
    struct aloft_store_rollout ro;
    int rollout_rc[2];
    struct aloft_store_release rollout_release[2];
    int current_rc[2];
    struct aloft_store_release current[2];
};
int aloft_store_update_view(struct aloft_store *s, const char *platform, const char *mac,
                            struct aloft_store_update_view *v);

#endif
