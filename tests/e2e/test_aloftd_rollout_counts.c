/* aloftd end to end: a rollout's counters, exactly. Hundreds of devices are
 * offered a release over two stages and come back updated, still on the old
 * version, rolled back (reported), failed then updated (two reports), or not
 * at all, some of them several times; GET /api/rollouts/<id> must count each
 * device once, in the stage it was offered in, by its last outcome. Then the
 * database is taken back to the schema before the counters existed and
 * aloftd started on it again: the migration must rebuild the same counters
 * from the devices offered. The rollout's history (each stage's counters
 * over time, one point a stage a second here: --rollout-step 1) must end
 * on the same counters and hold, before a second's boundary, what the
 * rollout counted before it. Runs on SQLite (test_aloftd_rollout_counts) and
 * on the harness's PostgreSQL (test_aloftd_rollout_counts_pg). The devices
 * are one libcurl handle (a kept-alive connection), so hundreds stay quick. */
#include "aloftd_harness.h"

#include <curl/curl.h>
#include <libpq-fe.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "aloft/image.h"
#include "image_make.h"

#define NDEV 240

static struct aloftd_proc srv;
static CURL *curl;
static char macs[NDEV][18];

/* What a device does after its offer (offered in stage 0, by i % 5). */
enum fate { BACK_UPDATED, BACK_OLD, ROLLED_BACK, FAILED_THEN_UPDATED, NEVER_BACK };

static const char *make_image(const char *name, const char *version)
{
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32s3"), .project = "demo",
                                      .version = version};
    uint8_t *img;
    size_t len;
    assert_int_equal(aloft_image_make(&o, &img, &len), 0);
    const char *path = e2e_path(name);
    e2e_file_write(path, img, len);
    free(img);
    return path;
}

static size_t discard(char *p, size_t size, size_t n, void *ctx)
{
    (void)p;
    (void)ctx;
    return size * n;
}

/* GET /update as device i running ver: the status. */
static long checkin(int i, const char *ver)
{
    char url[200], h_mac[60];
    snprintf(url, sizeof url, "%s/update?dev=demo&ver=%s", srv.url, ver);
    snprintf(h_mac, sizeof h_mac, "x-ESP32-STA-MAC: %s", macs[i]);
    struct curl_slist *h = curl_slist_append(NULL, h_mac);
    h = curl_slist_append(h, "x-ESP32-mode: sketch");
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    long code = 0;
    CURLcode rc = curl_easy_perform(curl);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    if (rc != CURLE_OK || (code != 200 && code != 304))
        fprintf(stderr, "device %s on %s: %s, status %ld\n", macs[i], ver, curl_easy_strerror(rc), code);
    assert_true(rc == CURLE_OK && (code == 200 || code == 304));
    return code;
}

/* POST device i's report about 1.1.0 (no token), signed with its
 * credential as the agent signs it. */
static void report(int i, const char *version, const char *result)
{
    char url[300], body[160], auth[65];
    snprintf(body, sizeof body, "{\"version\": \"%s\", \"target\": \"1.1.0\", \"result\": \"%s\"}", version,
             result);
    aloftd_report_auth(&srv, macs[i], body, auth);
    snprintf(url, sizeof url, "%s/api/devices/%s/report?auth=%s", srv.url, macs[i], auth);
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_reset(curl);
    curl_easy_setopt(curl, CURLOPT_URL, url);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT, 30L);
    long code = 0;
    assert_int_equal(curl_easy_perform(curl), CURLE_OK);
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    curl_slist_free_all(h);
    assert_int_equal(code, 200);
}

struct counts {
    double offered, updated, failed, rolled_back, old_version;
};

static void expect_same(const struct counts *got, const struct counts *want)
{
    if (memcmp(got, want, sizeof *got))
        fprintf(stderr, "history: offered %.0f updated %.0f failed %.0f rolled_back %.0f old_version %.0f; want %.0f "
                "%.0f %.0f %.0f %.0f\n", got->offered, got->updated, got->failed, got->rolled_back, got->old_version,
                want->offered, want->updated, want->failed, want->rolled_back, want->old_version);
    assert_memory_equal(got, want, sizeof *got);
}

static void expect_stage(const cJSON *ro, int stage, const struct counts *want)
{
    const cJSON *k = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ro, "by_stage"), stage);
    assert_non_null(k);
    const struct counts got = {e2e_jnum(k, "offered"), e2e_jnum(k, "updated"), e2e_jnum(k, "failed"),
                               e2e_jnum(k, "rolled_back"), e2e_jnum(k, "old_version")};
    if (memcmp(&got, want, sizeof got))
        fprintf(stderr,
                "stage %d: offered %.0f updated %.0f failed %.0f rolled_back %.0f old_version %.0f; want %.0f %.0f "
                "%.0f %.0f %.0f\n",
                stage, got.offered, got.updated, got.failed, got.rolled_back, got.old_version, want->offered,
                want->updated, want->failed, want->rolled_back, want->old_version);
    assert_memory_equal(&got, want, sizeof got);
}

/* The last point of each stage in id's history at or before `before`
 * (INT64_MAX: all) into got[2]; each stage's offered never goes down. */
static void history(long long id, int64_t before, struct counts got[2])
{
    char path[64];
    snprintf(path, sizeof path, "/api/rollouts/%lld/history", id);
    cJSON *h = aloftd_json(&srv, path);
    memset(got, 0, 2 * sizeof *got);
    double last_at = 0;
    const cJSON *p;
    cJSON_ArrayForEach(p, cJSON_GetObjectItemCaseSensitive(h, "points"))
    {
        int stage = (int)e2e_jnum(p, "stage");
        double at = e2e_jnum(p, "at");
        assert_true(stage == 0 || stage == 1);
        assert_true(at >= last_at); /* in time order */
        last_at = at;
        if (at > (double)before)
            continue;
        assert_true(e2e_jnum(p, "offered") >= got[stage].offered);
        got[stage] = (struct counts){e2e_jnum(p, "offered"), e2e_jnum(p, "updated"), e2e_jnum(p, "failed"),
                                     e2e_jnum(p, "rolled_back"), e2e_jnum(p, "old_version")};
    }
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(h, "truncated")));
    cJSON_Delete(h);
}

/* The history ends where the counters are. */
static void expect_history(long long id, const struct counts want[2])
{
    struct counts got[2];
    history(id, INT64_MAX, got);
    expect_same(&got[0], &want[0]);
    expect_same(&got[1], &want[1]);
}

/* The rollout's counters: by stage, in all, and of its current stage. */
static void expect_counts(long long id, const struct counts want[2], int current)
{
    char path[64];
    snprintf(path, sizeof path, "/api/rollouts/%lld", id);
    cJSON *ro = aloftd_json(&srv, path);
    expect_stage(ro, 0, &want[0]);
    expect_stage(ro, 1, &want[1]);
    double offered = want[0].offered + want[1].offered, updated = want[0].updated + want[1].updated;
    double failures = 0;
    for (int s = 0; s < 2; s++)
        failures += want[s].failed + want[s].rolled_back + want[s].old_version;
    assert_true(e2e_jnum(ro, "offered") == offered);
    assert_true(e2e_jnum(ro, "successes") == updated);
    assert_true(e2e_jnum(ro, "failures") == failures);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(ro, "stage_counts");
    const struct counts *c = &want[current];
    assert_true(e2e_jnum(sc, "offered") == c->offered);
    assert_true(e2e_jnum(sc, "succeeded") == c->updated);
    assert_true(e2e_jnum(sc, "failed") == c->failed + c->rolled_back + c->old_version);
    cJSON_Delete(ro);
}

/* Take the stopped server's database back to schema 4: no counters (nor
 * what came after them: the device key, the check-in setting, the pin's
 * hold, the publish policy). */
static void downgrade(void)
{
    const char *sql = "DROP TABLE rollout_history; DROP TABLE rollout_stages; DROP INDEX rollouts_by_platform; DROP TABLE server_secrets; "
                      "ALTER TABLE platforms DROP COLUMN checkins_settle; ALTER TABLE platforms DROP COLUMN pin_holds; "
                      "ALTER TABLE platforms DROP COLUMN publish_manual; "
                      /* migrations 8 and 9 */
                      "DROP TABLE blob_chunks; DROP TABLE device_events; DROP INDEX devices_by_version; "
                      "DROP INDEX devices_by_last_seen; DROP INDEX devices_by_ip; DROP INDEX devices_by_status; "
                      "DROP INDEX devices_by_platform; CREATE INDEX devices_by_platform ON devices (platform); "
                      /* migrations 10 and 11 */
                      "DROP TABLE deltas; "
                      /* migration 12 */
                      "ALTER TABLE devices DROP COLUMN image; "
                      "DELETE FROM schema_migrations WHERE version >= 5";
    if (aloftd_on_pg()) {
        PGconn *c = PQconnectdb(srv.db);
        assert_int_equal(PQstatus(c), CONNECTION_OK);
        PGresult *r = PQexec(c, sql);
        if (PQresultStatus(r) != PGRES_COMMAND_OK)
            fprintf(stderr, "downgrade: %s\n", PQresultErrorMessage(r));
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        PQfinish(c);
        return;
    }
    char path[400];
    snprintf(path, sizeof path, "%s/aloft.db", srv.data);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    char *err = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
        fprintf(stderr, "downgrade: %s\n", err);
    assert_null(err);
    sqlite3_close(db);
}

static void test_counts(void **state)
{
    (void)state;
    aloftd_init(&srv, "counts");
    static const char *const step[] = {"--rollout-step", "1", NULL};
    assert_int_equal(aloftd_start(&srv, step), 0);
    struct e2e_http r;
    assert_int_equal(aloftd_upload(&srv, &r, make_image("c-1.0.0.bin", "1.0.0"), NULL, NULL), 201);
    e2e_http_free(&r);
    assert_int_equal(aloftd_upload(&srv, &r, make_image("c-1.1.0.bin", "1.1.0"), NULL, NULL), 201);
    e2e_http_free(&r);
    /* no halt, no advance by itself: every outcome is only counted */
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/demo/rollouts",
                                       "{\"version\": \"1.1.0\", \"stages\": [50, 100], \"max_failures\": \"100%\"}"),
                     201);
    cJSON *j = cJSON_Parse(r.body);
    long long id = (long long)e2e_jnum(j, "id");
    cJSON_Delete(j);
    e2e_http_free(&r);
    for (int i = 0; i < NDEV; i++)
        snprintf(macs[i], sizeof macs[i], "24:0A:C4:20:%02X:%02X", i / 256, i % 256);

    /* stage 0 (50 %): first contacts; the devices offered do what their fate says */
    struct counts want[2];
    memset(want, 0, sizeof want);
    bool offered[NDEV];
    int fate_of[NDEV], n_offered = 0;
    for (int i = 0; i < NDEV; i++) {
        offered[i] = checkin(i, "1.0.0") == 200;
        fate_of[i] = n_offered % 5;
        n_offered += offered[i];
    }
    assert_true(n_offered > NDEV / 4 && n_offered < NDEV * 3 / 4);
    want[0].offered = n_offered;
    for (int i = 0; i < NDEV; i++) {
        if (!offered[i])
            continue;
        switch (fate_of[i]) {
        case BACK_UPDATED: /* twice: counted once */
            assert_int_equal(checkin(i, "1.1.0"), 304);
            assert_int_equal(checkin(i, "1.1.0"), 304);
            want[0].updated++;
            break;
        case BACK_OLD: /* offered again, not again counted */
            assert_int_equal(checkin(i, "1.0.0"), 200);
            assert_int_equal(checkin(i, "1.0.0"), 200);
            want[0].old_version++;
            break;
        case ROLLED_BACK: /* the report is the outcome; the check-in after it changes nothing */
            report(i, "1.0.0", "rolled_back");
            assert_int_equal(checkin(i, "1.0.0"), 200);
            want[0].rolled_back++;
            break;
        case FAILED_THEN_UPDATED: /* the last report wins: moved from failed to updated */
            report(i, "1.0.0", "failed");
            report(i, "1.1.0", "updated");
            assert_int_equal(checkin(i, "1.1.0"), 304);
            want[0].updated++;
            break;
        default: /* never back */
            break;
        }
    }
    expect_counts(id, want, 0);
    expect_history(id, want);
    /* a second's boundary: what the history holds before it stays */
    struct counts stage0 = want[0], got[2];
    int64_t boundary = (int64_t)time(NULL) + 1;
    while ((int64_t)time(NULL) < boundary)
        e2e_sleep_ms(20);

    /* stage 1 (100 %): the others are offered it there; half of them come back updated */
    char path_advance[64];
    snprintf(path_advance, sizeof path_advance, "/api/rollouts/%lld/advance", id);
    assert_int_equal(aloftd_admin_post(&srv, &r, path_advance, "{}"), 200);
    e2e_http_free(&r);
    int k = 0;
    for (int i = 0; i < NDEV; i++) {
        if (offered[i])
            continue;
        assert_int_equal(checkin(i, "1.0.0"), 200);
        want[1].offered++;
        if (k++ % 2 == 0) {
            assert_int_equal(checkin(i, "1.1.0"), 304);
            want[1].updated++;
        }
    }
    /* a stage-0 device still on the old version: offered again, counted nowhere new */
    for (int i = 0; i < NDEV; i++)
        if (offered[i] && fate_of[i] == BACK_OLD)
            assert_int_equal(checkin(i, "1.0.0"), 200);
    /* a late report moves a stage-0 device's outcome inside stage 0 */
    for (int i = 0; i < NDEV; i++)
        if (offered[i] && fate_of[i] == BACK_OLD) {
            report(i, "1.1.0", "updated");
            want[0].old_version--;
            want[0].updated++;
            break;
        }
    expect_counts(id, want, 1);
    expect_history(id, want);
    history(id, boundary - 1, got);
    expect_same(&got[0], &stage0);
    assert_true(got[1].offered == 0);

    /* the migration builds the same counters from the devices offered */
    assert_int_equal(aloftd_stop(&srv), 0);
    downgrade();
    assert_int_equal(aloftd_start(&srv, step), 0);
    expect_counts(id, want, 1);
}

int main(void)
{
    e2e_init(173);
    if (aloftd_db_init("aloftd rollout counter tests"))
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    curl = curl_easy_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_counts, aloftd_teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_easy_cleanup(curl);
    curl_global_cleanup();
    return rc;
}
