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
};

const size_t aloft_store_migration_count = sizeof aloft_store_migrations / sizeof aloft_store_migrations[0];
