/* aloftd end-to-end tests: start and stop real aloftd processes and talk to
 * them with curl (the e2e helpers' e2e_curl). Each server listens on
 * ALOFTD_TEST_ADDR with a port the kernel picks (--listen ADDR:0), read back
 * from its `serving on` line, so test executables never compete for ports.
 * Every server started is stopped by PID: by aloftd_stop, by
 * aloftd_teardown (a cmocka teardown) and at exit; it also dies with the
 * test process (PR_SET_PDEATHSIG).
 *
 * The suite runs on SQLite (each server's own file in its data directory)
 * or, with ALOFT_TEST_DB=postgres, on a real PostgreSQL server the harness
 * starts itself (aloftd_pg_start): each server named by aloftd_init gets a
 * fresh database of that name, given to aloftd as ALOFT_DB (so a test's own
 * ALOFT_DB or --db still wins). */
#ifndef ALOFTD_HARNESS_H
#define ALOFTD_HARNESS_H

#include "e2e.h"

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define ALOFTD_TEST_ADDR "127.0.5.1"
#define ALOFTD_START_TIMEOUT_MS 10000u

struct aloftd_proc {
    pid_t pid;             /* 0: not running */
    char data[300];        /* --data */
    char log[300];         /* stdout and stderr of every run, appended */
    char url[64];          /* http://127.0.5.1:PORT */
    char token[128];       /* the admin token the first start printed ("" if none was) */
    char auth[160];        /* "Authorization: Bearer <token>" */
    unsigned starts;       /* `serving on` lines seen */
    char db[200];          /* PostgreSQL: the database URL it is given ("" on SQLite) */
};

/* Does this run use PostgreSQL (ALOFT_TEST_DB=postgres)? */
bool aloftd_on_pg(void);

/* PostgreSQL for the tests, on 127.0.0.1 and a free port: the first call
 * makes a data directory (initdb, trust authentication, user "aloft"), every
 * call starts the server on it and waits until it accepts connections.
 * As root it runs as the user nobody (postgres refuses root). Stopped by
 * PID at exit; the directory is removed. Returns 0 or -1 (its log printed). */
int aloftd_pg_start(void);

/* From main, after e2e_init: on PostgreSQL say so and start it (suite
 * names the tests in that line). Returns 0 or -1. */
int aloftd_db_init(const char *suite);

/* Stop it by PID (SIGINT, PostgreSQL's fast shutdown; SIGKILL after 15 s)
 * and wait. The data stays: aloftd_pg_start resumes it on the same port.
 * Returns 0, or -1 when it had to be killed. */
int aloftd_pg_stop(void);

/* A fresh, empty database on it (dropped first when it exists); its URL. */
void aloftd_pg_create(const char *name, char *url, size_t cap);

/* Run sql on the database at url: every value of every row, each followed
 * by a newline, malloc'd. Fails the test on an error. */
char *aloftd_pg_query(const char *url, const char *sql);

/* Name a server: its data directory and log under e2e_dir(); on
 * PostgreSQL also a fresh database of that name. */
void aloftd_init(struct aloftd_proc *s, const char *name);

/* Start aloftd --data <data> --listen ALOFTD_TEST_ADDR:0 <args...> (NULL-
 * terminated, may be NULL) and wait for its `serving on` line. Takes the
 * admin token from the log when this start printed one. Returns 0, or -1
 * (the log's tail printed) when it exited or did not serve in time. */
int aloftd_start(struct aloftd_proc *s, const char *const args[]);

/* aloftd_start in two halves, to start several servers at once: spawn
 * the process, then wait for its `serving on` line (0 or -1 as above). */
void aloftd_spawn(struct aloftd_proc *s, const char *const args[]);
int aloftd_wait_serving(struct aloftd_proc *s);

/* SIGTERM, SIGKILL after 3 s; reaped. Returns the exit status (0: a clean
 * stop), or -1 when it had to be killed. No-op (0) when not running. */
int aloftd_stop(struct aloftd_proc *s);

/* Stop every server this process started (use as the cmocka teardown; it
 * also runs e2e_teardown for curls). Fails (-1) when a server did not exit
 * with status 0 on SIGTERM: a crash, a sanitizer report, a hang. */
int aloftd_teardown(void **state);

/* After a start with --tls-cert: s->url becomes the https:// URL of its
 * last `serving on` line. */
void aloftd_https_url(struct aloftd_proc *s);

/* The whole log, malloc'd. */
char *aloftd_log_read(const struct aloftd_proc *s);

/* curl <args...> <url><path>: the server's URL prepended to path. */
int aloftd_get(struct aloftd_proc *s, struct e2e_http *r, const char *path, const char *const args[]);

/* The same in this process (libcurl, a new connection each time as the
 * curl program makes): GET path, or POST body when it is not NULL, with
 * these request headers ("Name: value", NULL-terminated; may be NULL). For
 * tests that make hundreds of requests, where starting curl for each
 * costs most of their time. r (may be NULL) as aloftd_get fills it; rc is
 * libcurl's code (the curl program's exit status). Returns the status. */
int aloftd_fetch(struct aloftd_proc *s, struct e2e_http *r, const char *path, const char *const headers[],
                 const char *body);

/* The same with the admin token's header. */
int aloftd_admin_get(struct aloftd_proc *s, struct e2e_http *r, const char *path);
int aloftd_admin_post(struct aloftd_proc *s, struct e2e_http *r, const char *path, const char *json);

/* POST a file to /api/firmware<query> as application/octet-stream with the
 * admin token; extra curl args may be NULL. Returns the status. */
int aloftd_upload(struct aloftd_proc *s, struct e2e_http *r, const char *file, const char *query,
                  const char *const extra[]);

/* GET path with the token and parse the JSON (test failure unless 200). */
cJSON *aloftd_json(struct aloftd_proc *s, const char *path);

/* The credential aloftd derived for the device mac, read with the admin
 * token (ca: the CA of an HTTPS server, or NULL): what a factory gives the
 * device (--server-key). */
void aloftd_credential(struct aloftd_proc *s, const char *ca, const char *mac, char out[65]);

/* A report's ?auth=, as a device makes it: the HMAC-SHA256 of body under
 * mac's credential, in hex. */
void aloftd_report_auth(struct aloftd_proc *s, const char *mac, const char *body, char out[65]);

/* A header's value from a response (first match, case-insensitive name),
 * into a static buffer; NULL when absent. */
const char *aloftd_header_value(const struct e2e_http *r, const char *name);

/* Names of the files in a directory of the server's data ("firmware",
 * "tmp"): how many there are. */
unsigned aloftd_count_files(const struct aloftd_proc *s, const char *sub);

/* The server's bucket of a device in a rollout, computed independently:
 * FNV-1a (64 bits) of "<id>/<MAC>" mod 100. */
unsigned aloftd_bucket(long long id, const char *mac);

#endif
