/* aloft host: the server's schema as numbered migrations. Append only: a
 * database records how many it has run. The SQL runs unchanged on SQLite and
 * PostgreSQL: TEXT, BIGINT and INTEGER only, natural keys instead of
 * auto-increment ids, and times as Unix seconds. */
#include "store_impl.h"

const char *const aloft_store_migrations[] = {
    /* 1: platforms, content-addressed files, releases, devices, admin tokens */
    "CREATE TABLE platforms ("
    "  name_key TEXT PRIMARY KEY," /* lower-case name: devices ask case-insensitively */
    "  name TEXT NOT NULL,"
    "  chip TEXT NOT NULL,"
    "  project TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  current_firmware TEXT,"     /* what devices are offered: the pin, else the newest */
    "  pinned_firmware TEXT,"
    "  current_frontend TEXT,"
    "  pinned_frontend TEXT"
    ");"
    "CREATE TABLE blobs ("
    "  sha256 TEXT PRIMARY KEY,"   /* the file is firmware/<sha256>.bin */
    "  size BIGINT NOT NULL,"
    "  md5 TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL"
    ");"
    "CREATE TABLE releases ("
    "  platform TEXT NOT NULL REFERENCES platforms (name_key),"
    "  kind TEXT NOT NULL,"        /* firmware or frontend */
    "  version TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL REFERENCES blobs (sha256),"
    "  secure_version BIGINT NOT NULL,"
    "  chip TEXT NOT NULL,"
    "  project TEXT NOT NULL,"
    "  idf_ver TEXT NOT NULL,"
    "  uploaded_at BIGINT NOT NULL,"
    "  seq BIGINT NOT NULL,"       /* upload order */
    "  PRIMARY KEY (platform, kind, version)"
    ");"
    "CREATE INDEX releases_by_sha256 ON releases (sha256);"
    "CREATE TABLE devices ("
    "  mac TEXT PRIMARY KEY,"
    "  platform TEXT NOT NULL REFERENCES platforms (name_key),"
    "  version TEXT NOT NULL,"
    "  ip TEXT NOT NULL,"
    "  free_space BIGINT NOT NULL," /* -1: not sent */
    "  sketch_size BIGINT NOT NULL,"
    "  sdk_version TEXT NOT NULL,"
    "  mode TEXT NOT NULL,"
    "  first_seen BIGINT NOT NULL,"
    "  last_seen BIGINT NOT NULL,"
    "  checkins BIGINT NOT NULL,"
    "  last_status INTEGER NOT NULL,"
    "  last_reason TEXT NOT NULL"
    ");"
    "CREATE INDEX devices_by_platform ON devices (platform);"
    "CREATE TABLE admin_tokens ("
    "  sha256 TEXT PRIMARY KEY,"   /* of the token; the token itself is never stored */
    "  created_at BIGINT NOT NULL"
    ");",
    /* 2: per-platform MAC whitelists, device outcome reports, staged rollouts */
    "CREATE TABLE whitelists ("
    "  platform TEXT PRIMARY KEY REFERENCES platforms (name_key),"
    "  enabled INTEGER NOT NULL"   /* 0: every device may update (the default) */
    ");"
    "CREATE TABLE whitelist_macs ("
    "  platform TEXT NOT NULL REFERENCES platforms (name_key),"
    "  mac TEXT NOT NULL,"         /* AA:BB:CC:DD:EE:FF */
    "  added_at BIGINT NOT NULL,"
    "  PRIMARY KEY (platform, mac)"
    ");"
    "CREATE TABLE device_reports ("
    "  mac TEXT PRIMARY KEY REFERENCES devices (mac)," /* the last report of each device */
    "  version TEXT NOT NULL,"
    "  result TEXT NOT NULL,"      /* updated, rolled_back or failed */
    "  reason TEXT NOT NULL,"
    "  partition_label TEXT NOT NULL,"
    "  state TEXT NOT NULL,"
    "  reset_reason TEXT NOT NULL,"
    "  reported_at BIGINT NOT NULL,"
    "  reports BIGINT NOT NULL"
    ");"
    "CREATE TABLE rollouts ("
    "  id BIGINT PRIMARY KEY,"
    "  platform TEXT NOT NULL REFERENCES platforms (name_key),"
    "  version TEXT NOT NULL,"     /* the release rolled out */
    "  previous TEXT NOT NULL,"    /* what the others are offered ('' : nothing) */
    "  stages TEXT NOT NULL,"      /* percentages, e.g. 1,10,50,100 */
    "  stage INTEGER NOT NULL,"    /* index into stages */
    "  status TEXT NOT NULL,"      /* active, paused, halted, aborted, completed */
    "  max_failures BIGINT NOT NULL,"
    "  max_failures_percent INTEGER NOT NULL," /* 1: max_failures is a percentage of the devices offered */
    "  reason TEXT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  updated_at BIGINT NOT NULL"
    ");"
    "CREATE UNIQUE INDEX rollouts_one_running ON rollouts (platform) WHERE status IN ('active', 'paused');"
    "CREATE TABLE rollout_devices ("
    "  rollout BIGINT NOT NULL REFERENCES rollouts (id),"
    "  mac TEXT NOT NULL,"         /* offered the rollout's release */
    "  result TEXT NOT NULL,"      /* '' until the device reports */
    "  offered_at BIGINT NOT NULL,"
    "  PRIMARY KEY (rollout, mac)"
    ");",
    /* 3: rollouts that advance by themselves once a stage's devices succeed;
     * the stage each device was offered in (0 for older rows); a device
     * that checked in again still on another version is result
     * 'old_version', a failure like 'failed' and 'rolled_back' */
    "ALTER TABLE rollouts ADD COLUMN auto_advance BIGINT NOT NULL DEFAULT 0;" /* 0: only on command */
    "ALTER TABLE rollouts ADD COLUMN auto_advance_percent INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE rollout_devices ADD COLUMN stage INTEGER NOT NULL DEFAULT 0;",
    /* 4: signed updates: a platform's trusted signing keys (any row: every
     * upload must be signed by one), and who signed each release */
    "CREATE TABLE signing_keys ("
    "  platform TEXT NOT NULL REFERENCES platforms (name_key),"
    "  digest TEXT NOT NULL,"      /* the public key digest, 64 lower-case hex digits */
    "  added_at BIGINT NOT NULL,"
    "  PRIMARY KEY (platform, digest)"
    ");"
    "ALTER TABLE releases ADD COLUMN signer TEXT NOT NULL DEFAULT '';", /* '' : unsigned */
    /* 5: each rollout stage's counters, kept in the transaction that offers
     * a device or changes its outcome, so reading a rollout costs the same
     * with ten devices or a million; built here from the devices offered so
     * far. The governing rollout of a platform is found by index. */
    "CREATE TABLE rollout_stages ("
    "  rollout BIGINT NOT NULL REFERENCES rollouts (id),"
    "  stage INTEGER NOT NULL,"    /* the stage its devices were offered in */
    "  offered BIGINT NOT NULL,"
    "  updated BIGINT NOT NULL,"   /* then the devices by outcome */
    "  failed BIGINT NOT NULL,"
    "  rolled_back BIGINT NOT NULL,"
    "  old_version BIGINT NOT NULL,"
    "  PRIMARY KEY (rollout, stage)"
    ");"
    "INSERT INTO rollout_stages (rollout, stage, offered, updated, failed, rolled_back, old_version) "
    "SELECT rollout, stage, COUNT(*), "
    "SUM(CASE WHEN result = 'updated' THEN 1 ELSE 0 END), SUM(CASE WHEN result = 'failed' THEN 1 ELSE 0 END), "
    "SUM(CASE WHEN result = 'rolled_back' THEN 1 ELSE 0 END), SUM(CASE WHEN result = 'old_version' THEN 1 ELSE 0 END) "
    "FROM rollout_devices GROUP BY rollout, stage;"
    "CREATE INDEX rollouts_by_platform ON rollouts (platform, id);",
    /* 6: device credentials: the server's secrets (the device key each
     * device's credential is derived from), and whether a check-in that
     * nobody signed may settle a device in a rollout */
    "CREATE TABLE server_secrets ("
    "  name TEXT PRIMARY KEY,"
    "  value TEXT NOT NULL"
    ");"
    "ALTER TABLE platforms ADD COLUMN checkins_settle INTEGER NOT NULL DEFAULT 1;",
    /* 7: a pin that only holds devices back (an aborted rollout's) and
     * never offers a device a release older than the one it runs */
    "ALTER TABLE platforms ADD COLUMN pin_holds INTEGER NOT NULL DEFAULT 0;",
    /* 8: the publish policy: manual, an upload is stored but served only
     * once pinned or rolled out; auto (0), the newest upload is served */
    "ALTER TABLE platforms ADD COLUMN publish_manual INTEGER NOT NULL DEFAULT 0;",
    /* 9: the stored files themselves, in pieces, so that aloftd instances
     * sharing a PostgreSQL database need nothing else in common: one that
     * lacks a file takes it from here and checks its SHA-256. SQLite keeps
     * none (its one aloftd has every file on disk); BYTEA is only a name
     * there. Rows of a file are written in one transaction with it. */
    "CREATE TABLE blob_chunks ("
    "  sha256 TEXT NOT NULL,"      /* the file's; no reference: its bytes go in before its blobs row */
    "  seq INTEGER NOT NULL,"      /* 0, 1, ...: the pieces in order */
    "  data BYTEA NOT NULL,"
    "  PRIMARY KEY (sha256, seq)"
    ");"
    /* and the admin UI at fleet size: a page of a platform's devices,
     * filtered and sorted by one of these (the MAC last, so pages never
     * overlap), with its count; and each device's recent history */
    "DROP INDEX devices_by_platform;"
    "CREATE INDEX devices_by_platform ON devices (platform, mac);"
    "CREATE INDEX devices_by_version ON devices (platform, version, mac);"
    "CREATE INDEX devices_by_last_seen ON devices (platform, last_seen, mac);"
    "CREATE INDEX devices_by_ip ON devices (platform, ip, mac);"
    "CREATE INDEX devices_by_status ON devices (platform, last_status, mac);"
    "CREATE TABLE device_events ("
    "  mac TEXT NOT NULL,"
    "  slot INTEGER NOT NULL,"     /* seq modulo 32: a ring, the oldest overwritten */
    "  seq BIGINT NOT NULL,"       /* 1, 2, ... per device */
    "  at BIGINT NOT NULL,"
    "  kind TEXT NOT NULL,"        /* checkin (its answer or version changed), offer (a 200), report */
    "  version TEXT NOT NULL,"     /* the device's; a report's: the version it is about */
    "  status INTEGER NOT NULL,"   /* the answer to the check-in; 0 for a report */
    "  detail TEXT NOT NULL,"      /* the answer's reason; a report's result and reason */
    "  PRIMARY KEY (mac, slot)"
    ");",
    /* 10: delta patches between firmware images, made by aloftd in the
     * background: one row per (base, target) pair of SHA-256s, with what
     * came of it. A patch worth sending is a stored file like a release's
     * (a blobs row, its bytes in blob_chunks on PostgreSQL); one that is
     * not is remembered so that it is not made again. */
    "CREATE TABLE deltas ("
    "  base TEXT NOT NULL,"        /* the image a device runs */
    "  target TEXT NOT NULL,"      /* the image it is offered */
    "  worth INTEGER NOT NULL,"    /* 0: the patch is 80 % of the image or more: the image is sent */
    "  sha256 TEXT NOT NULL,"      /* the patch file's ('' when not worth it) */
    "  size BIGINT NOT NULL,"      /* the patch's bytes */
    "  target_size BIGINT NOT NULL,"
    "  created_at BIGINT NOT NULL,"
    "  PRIMARY KEY (base, target)"
    ");"
    "CREATE INDEX deltas_by_target ON deltas (target);",
    /* 11: each rollout's progress over time: a stage's counters as they
     * stood at the end of each step of time (a minute by default) in which
     * one changed, written with the change (see rollout_stages) */
    "CREATE TABLE rollout_history ("
    "  rollout BIGINT NOT NULL REFERENCES rollouts (id),"
    "  at BIGINT NOT NULL,"        /* the step's start, a multiple of its length */
    "  stage INTEGER NOT NULL,"
    "  offered BIGINT NOT NULL,"
    "  updated BIGINT NOT NULL,"
    "  failed BIGINT NOT NULL,"
    "  rolled_back BIGINT NOT NULL,"
    "  old_version BIGINT NOT NULL,"
    "  PRIMARY KEY (rollout, at, stage)"
    ");",
    /* 12: the image each device runs, as it named it when it checked in
     * for firmware (X-Aloft-Delta: it takes patches from it), so that
     * aloftd's MQTT triggers can carry the patch from it */
    "ALTER TABLE devices ADD COLUMN image TEXT NOT NULL DEFAULT '';", /* '' : unknown */
};

const size_t aloft_store_migration_count = sizeof aloft_store_migrations / sizeof aloft_store_migrations[0];

const char aloft_store_migrations_table[] =
    "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)";

/* The queries both backends run, with ? parameters (store_pg.c numbers
 * them $1, $2, ... as PostgreSQL wants). */
#define PLATFORM_COLS                                                                                        \
    "p.name, p.chip, p.project, p.created_at, p.current_firmware, p.pinned_firmware, p.current_frontend, " \
    "p.pinned_frontend, p.checkins_settle, p.pin_holds, p.publish_manual"
/* Counting a platform's devices walks its index: not on the /update path. */
#define PLATFORM_COUNTS                                                                          \
    ", (SELECT COUNT(*) FROM releases r WHERE r.platform = p.name_key AND r.kind = 'firmware'), " \
    "(SELECT COUNT(*) FROM devices d WHERE d.platform = p.name_key)"
#define RELEASE_COLS                                                                                          \
    "p.name, r.kind, r.version, r.sha256, b.md5, b.size, r.secure_version, r.chip, r.project, r.idf_ver, " \
    "r.uploaded_at, r.seq, r.signer FROM releases r JOIN blobs b ON b.sha256 = r.sha256 JOIN platforms p ON p.name_key = r.platform"
#define DELTA_COLS                                                                                         \
    "d.base, d.target, d.worth, d.sha256, COALESCE(b.md5, ''), d.size, d.target_size, d.created_at "     \
    "FROM deltas d LEFT JOIN blobs b ON b.sha256 = d.sha256"
#define DEVICE_COLS                                                                                               \
    "d.mac, p.name, d.version, d.ip, d.free_space, d.sketch_size, d.sdk_version, d.mode, d.first_seen, d.last_seen, " \
    "d.checkins, d.last_status, d.last_reason, d.image FROM devices d JOIN platforms p ON p.name_key = d.platform"

#define TEXT_OF_(x) #x
#define TEXT_OF(x) TEXT_OF_(x)
#define HISTORY_MAX TEXT_OF(ALOFT_STORE_HISTORY_MAX)

/* a rollout; its counters are read apart (Q_ROLLOUT_STAGES) */
#define ROLLOUT_COLS                                                                                              \
    "o.id, p.name, o.version, o.previous, o.stages, o.stage, o.status, o.max_failures, o.max_failures_percent, " \
    "o.reason, o.created_at, o.updated_at, o.auto_advance, o.auto_advance_percent "                          \
    "FROM rollouts o JOIN platforms p ON p.name_key = o.platform"

/* A device's event into its ring of ALOFT_STORE_EVENTS slots: mac, mac,
 * at, kind, version, status, detail (then the WHERE's own parameters). */
#define EVENT_INSERT                                                                                                \
    "INSERT INTO device_events (mac, slot, seq, at, kind, version, status, detail) "                               \
    "SELECT ?, n.seq % 32, n.seq, CAST(? AS BIGINT), ?, ?, CAST(? AS INTEGER), ? "                                 \
    "FROM (SELECT COALESCE(MAX(e.seq), 0) + 1 AS seq FROM device_events e WHERE e.mac = ?) n "
#define EVENT_UPSERT                                                                                                \
    " ON CONFLICT (mac, slot) DO UPDATE SET seq = excluded.seq, at = excluded.at, kind = excluded.kind, "          \
    "version = excluded.version, status = excluded.status, detail = excluded.detail"

const char *const aloft_store_sql[Q_COUNT] = {
    [Q_TOKEN_COUNT] = "SELECT COUNT(*) FROM admin_tokens",
    [Q_TOKEN_ADD] = "INSERT INTO admin_tokens (sha256, created_at) VALUES (?, ?) ON CONFLICT (sha256) DO NOTHING",
    [Q_TOKEN_ALL] = "SELECT sha256 FROM admin_tokens",
    [Q_SECRET_ADD] = "INSERT INTO server_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING",
    [Q_SECRET_GET] = "SELECT value FROM server_secrets WHERE name = ?",
    [Q_CHECKINS_SETTLE] = "UPDATE platforms SET checkins_settle = ? WHERE name_key = ?",
    [Q_PIN_HOLDS] = "UPDATE platforms SET pin_holds = ? WHERE name_key = ?",
    [Q_PUBLISH_MANUAL] = "UPDATE platforms SET publish_manual = ? WHERE name_key = ?",
    [Q_TOKEN_KEEP_ONLY] = "DELETE FROM admin_tokens WHERE sha256 <> ?",
    [Q_PLATFORM_GET] = "SELECT " PLATFORM_COLS ", 0, 0 FROM platforms p WHERE p.name_key = ?",
    [Q_PLATFORM_GET_COUNTS] = "SELECT " PLATFORM_COLS PLATFORM_COUNTS " FROM platforms p WHERE p.name_key = ?",
    [Q_PLATFORMS] = "SELECT " PLATFORM_COLS PLATFORM_COUNTS " FROM platforms p ORDER BY p.name_key",
    [Q_PLATFORM_ADD] = "INSERT INTO platforms (name_key, name, chip, project, created_at, publish_manual) "
                       "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (name_key) DO NOTHING",
    [Q_BLOB_GET] = "SELECT size FROM blobs WHERE sha256 = ?",
    [Q_BLOB_ADD] = "INSERT INTO blobs (sha256, size, md5, created_at) VALUES (?, ?, ?, ?) "
                   "ON CONFLICT (sha256) DO NOTHING",
    [Q_RELEASE_GET] = "SELECT " RELEASE_COLS " WHERE r.platform = ? AND r.kind = ? AND r.version = ?",
    [Q_RELEASES_DESC] = "SELECT " RELEASE_COLS " WHERE r.platform = ? AND r.kind = ? ORDER BY r.seq DESC",
    [Q_RELEASES_ASC] = "SELECT " RELEASE_COLS " WHERE r.platform = ? AND r.kind = ? ORDER BY r.seq",
    [Q_CURRENT_FIRMWARE] = "SELECT " RELEASE_COLS " WHERE r.platform = ? AND r.kind = 'firmware' "
                           "AND r.version = p.current_firmware",
    [Q_CURRENT_FRONTEND] = "SELECT " RELEASE_COLS " WHERE r.platform = ? AND r.kind = 'frontend' "
                           "AND r.version = p.current_frontend",
    [Q_SEQ_NEXT] = "SELECT COALESCE(MAX(seq), 0) + 1 FROM releases",
    [Q_RELEASE_ADD] = "INSERT INTO releases (platform, kind, version, sha256, secure_version, chip, project, "
                      "idf_ver, uploaded_at, seq, signer) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    [Q_SET_FIRMWARE] = "UPDATE platforms SET current_firmware = ?, pinned_firmware = ? WHERE name_key = ?",
    [Q_SET_FRONTEND] = "UPDATE platforms SET current_frontend = ?, pinned_frontend = ? WHERE name_key = ?",
    /* coalesced check-ins (store.c's queue): first_seen, last_seen and the
     * count of check-ins since the last flush */
    [Q_CHECKIN_BATCH] = "INSERT INTO devices (mac, platform, version, ip, free_space, sketch_size, sdk_version, mode, "
                        "first_seen, last_seen, checkins, last_status, last_reason, image) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (mac) DO UPDATE SET "
                        "platform = excluded.platform, version = excluded.version, ip = excluded.ip, "
                        "free_space = excluded.free_space, sketch_size = excluded.sketch_size, "
                        "sdk_version = excluded.sdk_version, mode = excluded.mode, last_seen = excluded.last_seen, "
                        "checkins = devices.checkins + excluded.checkins, last_status = excluded.last_status, "
                        "last_reason = excluded.last_reason, "
                        /* a frontend check-in says nothing of the running image */
                        "image = CASE WHEN excluded.mode = 'spiffs' THEN devices.image ELSE excluded.image END",
    [Q_DEVICES_ALL] = "SELECT " DEVICE_COLS " ORDER BY d.mac",
    [Q_DEVICES_PLATFORM] = "SELECT " DEVICE_COLS " WHERE d.platform = ? ORDER BY d.mac",
    /* recorded files whose bytes the database does not hold (stored before migration 9) */
    [Q_FILES_UNSHARED] = "SELECT b.sha256, b.size FROM blobs b WHERE NOT EXISTS "
                         "(SELECT 1 FROM blob_chunks c WHERE c.sha256 = b.sha256 AND c.seq = 0) ORDER BY b.sha256",
    [Q_DEVICE_IMAGE] = "SELECT image FROM devices WHERE platform = ? AND mac = ?",
    [Q_DEVICE_IMAGES] = "SELECT image, COUNT(*) FROM devices WHERE platform = ? AND image <> '' GROUP BY image "
                        "ORDER BY COUNT(*) DESC, image LIMIT " TEXT_OF(ALOFT_STORE_IMAGES_MAX),
    [Q_DEVICE_VERSIONS] = "SELECT version, COUNT(*) FROM devices WHERE platform = ? GROUP BY version "
                          "ORDER BY COUNT(*) DESC, version",
    /* a check-in that changed the device's version or answer: one event,
     * in the same batch as the device's row (before it, to compare) */
    [Q_EVENT_CHECKIN] = EVENT_INSERT "WHERE NOT EXISTS (SELECT 1 FROM devices d WHERE d.mac = ? AND d.version = ? "
                        "AND d.last_status = ? AND d.last_reason = ?)" EVENT_UPSERT,
    [Q_EVENT_ADD] = EVENT_INSERT "WHERE 1 = 1" EVENT_UPSERT,
    [Q_DEVICE_EVENTS] = "SELECT seq, at, kind, version, status, detail FROM device_events WHERE mac = ? "
                        "ORDER BY seq DESC",
    [Q_DELTA_GET] = "SELECT " DELTA_COLS " WHERE d.base = ? AND d.target = ?",
    [Q_DELTAS_TO] = "SELECT " DELTA_COLS " WHERE d.target = ? ORDER BY d.created_at, d.base",
    [Q_DELTA_ADD] = "INSERT INTO deltas (base, target, worth, sha256, size, target_size, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (base, target) DO NOTHING",
    [Q_RELEASE_HAS_SHA] = "SELECT COUNT(*) FROM releases WHERE platform = ? AND kind = 'firmware' AND sha256 = ?",
    [Q_SCHEMA_VERSION] = "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
    [Q_WHITELIST_CHECK] = "SELECT COALESCE((SELECT w.enabled FROM whitelists w WHERE w.platform = ?), 0), "
                          "(SELECT COUNT(*) FROM whitelist_macs m WHERE m.platform = ? AND m.mac = ?)",
    [Q_WHITELIST_ENABLED] = "SELECT COALESCE((SELECT w.enabled FROM whitelists w WHERE w.platform = ?), 0)",
    [Q_WHITELIST_SET] = "INSERT INTO whitelists (platform, enabled) VALUES (?, ?) "
                        "ON CONFLICT (platform) DO UPDATE SET enabled = excluded.enabled",
    [Q_WHITELIST_ADD] = "INSERT INTO whitelist_macs (platform, mac, added_at) VALUES (?, ?, ?) "
                        "ON CONFLICT (platform, mac) DO NOTHING",
    [Q_WHITELIST_REMOVE] = "DELETE FROM whitelist_macs WHERE platform = ? AND mac = ?",
    [Q_WHITELIST_MACS] = "SELECT mac FROM whitelist_macs WHERE platform = ? ORDER BY mac",
    [Q_SIGNING_KEY_ADD] = "INSERT INTO signing_keys (platform, digest, added_at) VALUES (?, ?, ?) "
                          "ON CONFLICT (platform, digest) DO NOTHING",
    [Q_SIGNING_KEY_REMOVE] = "DELETE FROM signing_keys WHERE platform = ? AND digest = ?",
    [Q_SIGNING_KEYS] = "SELECT digest FROM signing_keys WHERE platform = ? ORDER BY digest",
    [Q_DEVICE_PLATFORM] = "SELECT platform FROM devices WHERE mac = ?",
    [Q_REPORT_ADD] = "INSERT INTO device_reports (mac, version, result, reason, partition_label, state, reset_reason, "
                     "reported_at, reports) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1) ON CONFLICT (mac) DO UPDATE SET "
                     "version = excluded.version, result = excluded.result, reason = excluded.reason, "
                     "partition_label = excluded.partition_label, state = excluded.state, "
                     "reset_reason = excluded.reset_reason, reported_at = excluded.reported_at, "
                     "reports = device_reports.reports + 1",
    [Q_REPORTS] = "SELECT mac, version, result, reason, partition_label, state, reset_reason, reported_at, reports "
                  "FROM device_reports ORDER BY mac",
    [Q_ROLLOUT_NEXT_ID] = "SELECT COALESCE(MAX(id), 0) + 1 FROM rollouts",
    [Q_ROLLOUT_ADD] = "INSERT INTO rollouts (id, platform, version, previous, stages, stage, status, max_failures, "
                      "max_failures_percent, auto_advance, auto_advance_percent, reason, created_at, updated_at) "
                      "VALUES (?, ?, ?, ?, ?, 0, 'active', ?, ?, ?, ?, '', ?, ?)",
    [Q_ROLLOUT_GET] = "SELECT " ROLLOUT_COLS " WHERE o.id = ?",
    /* the rollout that decides /update: the platform's newest one, unless it is over */
    [Q_ROLLOUT_GOVERNING] = "SELECT " ROLLOUT_COLS " WHERE o.platform = ? AND o.status NOT IN ('completed', 'aborted') "
                            "AND o.id = (SELECT MAX(id) FROM rollouts x WHERE x.platform = o.platform)",
    [Q_ROLLOUT_RUNNING] = "SELECT id FROM rollouts WHERE platform = ? AND status IN ('active', 'paused')",
    [Q_ROLLOUTS] = "SELECT " ROLLOUT_COLS " ORDER BY o.id",
    /* a change of stage or status, only from the status and stage the
     * caller saw: of two servers advancing at once, one does */
    [Q_ROLLOUT_SET] = "UPDATE rollouts SET stage = ?, status = ?, reason = ?, updated_at = ? "
                      "WHERE id = ? AND status = ? AND stage = ?",
    [Q_ROLLOUT_OFFERED] = "INSERT INTO rollout_devices (rollout, mac, result, offered_at, stage) "
                          "VALUES (?, ?, '', ?, ?) ON CONFLICT (rollout, mac) DO NOTHING",
    /* the first offer to a device counts in the stage it was offered in */
    [Q_ROLLOUT_STAGE_OFFERED] = "INSERT INTO rollout_stages (rollout, stage, offered, updated, failed, rolled_back, "
                                "old_version) VALUES (?, ?, 1, 0, 0, 0, 0) ON CONFLICT (rollout, stage) DO UPDATE "
                                "SET offered = rollout_stages.offered + 1",
    [Q_ROLLOUT_STAGES] = "SELECT stage, offered, updated, failed, rolled_back, old_version FROM rollout_stages "
                         "WHERE rollout = ? ORDER BY stage",
    [Q_ROLLOUT_DEVICE] = "SELECT stage, result FROM rollout_devices WHERE rollout = ? AND mac = ?",
    /* only from the outcome the caller read: of two changes at once, one
     * does, and the other reads again */
    [Q_ROLLOUT_RESULT] = "UPDATE rollout_devices SET result = ? WHERE rollout = ? AND mac = ? AND result = ?",
    /* a check-in settles only a device that has no outcome yet */
    [Q_ROLLOUT_SETTLE] = "UPDATE rollout_devices SET result = ? WHERE rollout = ? AND mac = ? AND result = '' "
                         "RETURNING stage",
    [Q_ROLLOUT_STAGE_MOVE] = "UPDATE rollout_stages SET updated = updated + ?, failed = failed + ?, "
                             "rolled_back = rolled_back + ?, old_version = old_version + ? "
                             "WHERE rollout = ? AND stage = ? "
                             "RETURNING stage, offered, updated, failed, rolled_back, old_version",
    /* a stage's counters now, as the point of this step: at, rollout, stage */
    [Q_ROLLOUT_HISTORY_NOTE] = "INSERT INTO rollout_history (rollout, at, stage, offered, updated, failed, rolled_back, "
                               "old_version) SELECT rollout, CAST(? AS BIGINT), stage, offered, updated, failed, "
                               "rolled_back, old_version FROM rollout_stages WHERE rollout = ? AND stage = ? "
                               "ON CONFLICT (rollout, at, stage) DO UPDATE SET offered = excluded.offered, "
                               "updated = excluded.updated, failed = excluded.failed, "
                               "rolled_back = excluded.rolled_back, old_version = excluded.old_version",
    /* the newest points (ALOFT_STORE_HISTORY_MAX), read back into time order */
    [Q_ROLLOUT_HISTORY] = "SELECT at, stage, offered, updated, failed, rolled_back, old_version FROM "
                          "(SELECT * FROM rollout_history WHERE rollout = ? ORDER BY at DESC, stage DESC LIMIT " HISTORY_MAX ") h "
                          "ORDER BY at, stage",
};
