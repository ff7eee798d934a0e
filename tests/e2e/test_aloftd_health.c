/* aloftd end to end: GET /healthz and GET /readyz, without a token. Ready
 * means the database answers and has every migration: a schema row newer
 * than aloftd's makes it 503 schema_mismatch until it is gone, and on
 * PostgreSQL a stopped database server makes it 503 database_unavailable
 * (while /healthz stays 200) until the server is back. Runs on SQLite
 * (test_aloftd_health) and on the harness's PostgreSQL
 * (test_aloftd_health_pg). */
#include "aloftd_harness.h"

#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>

static struct aloftd_proc srv;

/* GET (or another method) path without a token: the status; *error: the
 * JSON error code ("" when none). */
static int probe(const char *method, const char *path, char error[64])
{
    const char *head[] = {"--head", NULL}, *other[] = {"-X", method, NULL};
    const char *const *args = strcmp(method, "HEAD") ? other : head;
    struct e2e_http r;
    int code = aloftd_get(&srv, &r, path, args);
    cJSON *j = cJSON_Parse(r.body);
    snprintf(error, 64, "%s", j ? e2e_jstr(j, "error") : "");
    if (code == 200 && !strcmp(path, "/readyz"))
        assert_string_equal(e2e_jstr(j, "status"), "ready");
    cJSON_Delete(j);
    e2e_http_free(&r);
    return code;
}

/* Run sql on the server's database, from outside it. */
static void db_run(const char *sql)
{
    if (aloftd_on_pg()) {
        PGconn *c = PQconnectdb(srv.db);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(c);
        return;
    }
    char path[400];
    snprintf(path, sizeof path, "%s/aloft.db", srv.data);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void test_health(void **state)
{
    (void)state;
    aloftd_init(&srv, "health");
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    char err[64];
    assert_int_equal(probe("GET", "/healthz", err), 200);
    assert_int_equal(probe("HEAD", "/healthz", err), 200);
    assert_int_equal(probe("GET", "/readyz", err), 200);
    assert_int_equal(probe("POST", "/readyz", err), 405);
    assert_string_equal(err, "method_not_allowed");
    assert_int_equal(probe("DELETE", "/healthz", err), 405);

    /* a schema newer than this aloftd (another instance upgraded it) */
    db_run("INSERT INTO schema_migrations (version, applied_at) VALUES (1000, 0)");
    assert_int_equal(probe("GET", "/readyz", err), 503);
    assert_string_equal(err, "schema_mismatch");
    assert_int_equal(probe("GET", "/healthz", err), 200);
    db_run("DELETE FROM schema_migrations WHERE version = 1000");
    assert_int_equal(probe("GET", "/readyz", err), 200);

    if (aloftd_on_pg()) { /* the database server goes away, and comes back */
        assert_int_equal(aloftd_pg_stop(), 0);
        assert_int_equal(probe("GET", "/readyz", err), 503);
        assert_string_equal(err, "database_unavailable");
        assert_int_equal(probe("GET", "/healthz", err), 200);
        assert_int_equal(aloftd_pg_start(), 0);
        assert_int_equal(probe("GET", "/readyz", err), 200);
    }
}

int main(void)
{
    e2e_init(174);
    if (aloftd_db_init("aloftd health tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_health, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
