/* aloftd end to end: per-platform MAC whitelists, device outcome reports,
 * staged rollouts with 100 simulated devices (halted by failures, advanced
 * by successes), and /metrics. Real aloftd processes on loopback; the
 * devices' check-ins and reports are libcurl in this process (a curl
 * program each cost most of the time), the admin calls curl. Runs twice like test_aloftd (CTest: test_aloftd_rollout on
 * SQLite, test_aloftd_rollout_pg on a PostgreSQL server the harness
 * starts). */
#include "aloftd_harness.h"

#include <stdio.h>
#include <string.h>

#include "aloft/image.h"
#include "image_make.h"

#define MAC1 "24:0A:C4:00:00:01"
#define MAC2 "24:0A:C4:00:00:02"
#define NDEV 100

static struct aloftd_proc srv;

static const char *make_image(const char *name, const char *project, const char *version)
{
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32s3"), .project = project,
                                      .version = version};
    uint8_t *img;
    size_t len;
    assert_int_equal(aloft_image_make(&o, &img, &len), 0);
    const char *path = e2e_path(name);
    e2e_file_write(path, img, len);
    free(img);
    return path;
}

static void start(const char *name)
{
    aloftd_init(&srv, name);
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    assert_int_equal(strlen(srv.token), 64);
}

static void upload_ok(const char *file)
{
    struct e2e_http r;
    int code = aloftd_upload(&srv, &r, file, NULL, NULL);
    if (code != 201)
        fprintf(stderr, "upload %s: %d %s\n", file, code, r.body);
    assert_int_equal(code, 201);
    e2e_http_free(&r);
}

/* GET /update as an ESP32 (or, esp8266, an ESP8266) with this MAC (NULL:
 * none) running ver; returns the status. */
static int checkin(const char *platform, const char *ver, const char *mac, bool esp8266, struct e2e_http *out)
{
    char path[200], h_mac[80];
    snprintf(path, sizeof path, "/update?dev=%s&ver=%s", platform, ver);
    snprintf(h_mac, sizeof h_mac, "%s: %s", esp8266 ? "x-ESP8266-STA-MAC" : "x-ESP32-STA-MAC", mac ? mac : "");
    const char *headers[] = {esp8266 ? "User-Agent: ESP8266-http-Update" : "User-Agent: ESP32-http-Update",
                             "x-ESP32-free-space: 1900544", "x-ESP32-mode: sketch", mac ? h_mac : NULL, NULL};
    struct e2e_http r;
    int code = aloftd_fetch(&srv, &r, path, headers, NULL);
    if (out)
        *out = r;
    else
        e2e_http_free(&r);
    return code;
}

static void expect(int got, int want, const char *what)
{
    if (got != want)
        fprintf(stderr, "%s: %d, want %d\n", what, got, want);
    assert_int_equal(got, want);
}

static int admin_post(const char *path, const char *json, cJSON **reply)
{
    struct e2e_http r;
    int code = aloftd_admin_post(&srv, &r, path, json);
    if (reply)
        *reply = cJSON_Parse(r.body);
    e2e_http_free(&r);
    return code;
}

/* POST a device's report (no token), signed as the device would. */
static int report(const char *mac, const char *json, cJSON **reply)
{
    char path[200], auth[65];
    aloftd_report_auth(&srv, mac, json, auth);
    snprintf(path, sizeof path, "/api/devices/%.40s/report?auth=%s", mac, auth);
    const char *headers[] = {"Content-Type: application/json", NULL};
    struct e2e_http r;
    int code = aloftd_fetch(&srv, &r, path, headers, json);
    if (reply)
        *reply = cJSON_Parse(r.body);
    e2e_http_free(&r);
    return code;
}

static char macs[NDEV][18];

static void make_macs(void)
{
    for (int i = 0; i < NDEV; i++)
        snprintf(macs[i], sizeof macs[i], "24:0A:C4:10:%02X:%02X", i / 16 * 7 % 256, i);
}

/* aloftd with demo 1.0.0 and 1.1.0, and the NDEV device MACs. */
static void start_fleet(const char *name)
{
    char v0[64], v1[64];
    snprintf(v0, sizeof v0, "%s-1.0.0.bin", name);
    snprintf(v1, sizeof v1, "%s-1.1.0.bin", name);
    start(name);
    make_macs();
    upload_ok(make_image(v0, "demo", "1.0.0"));
    upload_ok(make_image(v1, "demo", "1.1.0"));
}

/* Every device checks in on ver: which got 200 (offered), which 304. Any
 * other answer fails. Returns how many were offered. */
static int fleet_checkin(const char *platform, const char *ver, bool offered[NDEV])
{
    int n = 0;
    for (int i = 0; i < NDEV; i++) {
        int code = checkin(platform, ver, macs[i], false, NULL);
        if (code != 200 && code != 304)
            fprintf(stderr, "device %s: %d\n", macs[i], code);
        assert_true(code == 200 || code == 304);
        offered[i] = code == 200;
        n += offered[i];
    }
    return n;
}

/* Exactly the devices whose bucket is below percent were offered. */
static void expect_share(long long id, int percent, const bool offered[NDEV], int n)
{
    int want = 0;
    for (int i = 0; i < NDEV; i++) {
        bool in = aloftd_bucket(id, macs[i]) < (unsigned)percent;
        if (in != offered[i])
            fprintf(stderr, "rollout %lld at %d%%: device %s (bucket %u) %s\n", id, percent, macs[i],
                    aloftd_bucket(id, macs[i]), offered[i] ? "offered but outside" : "not offered but inside");
        assert_int_equal(in, offered[i]);
        want += in;
    }
    assert_int_equal(n, want);
}

/* Like fleet_checkin, but the devices with updated[i] run 1.1.0 (they
 * installed it when they were offered it) and the others 1.0.0. */
static int fleet_checkin_mixed(const char *platform, const bool updated[NDEV], bool offered[NDEV])
{
    int n = 0;
    for (int i = 0; i < NDEV; i++) {
        int code = checkin(platform, updated[i] ? "1.1.0" : "1.0.0", macs[i], false, NULL);
        if (code != 200 && code != 304)
            fprintf(stderr, "device %s: %d\n", macs[i], code);
        assert_true(code == 200 || code == 304);
        offered[i] = code == 200;
        n += offered[i];
    }
    return n;
}

/* Exactly the devices whose bucket is below percent were offered it or
 * run it already (never both: it is not offered again). */
static void expect_share_mixed(long long id, int percent, const bool updated[NDEV], const bool offered[NDEV])
{
    bool in[NDEV];
    int n = 0;
    for (int i = 0; i < NDEV; i++) {
        assert_false(updated[i] && offered[i]);
        in[i] = updated[i] || offered[i];
        n += in[i];
    }
    expect_share(id, percent, in, n);
}

static cJSON *rollout_get(long long id)
{
    char path[64];
    snprintf(path, sizeof path, "/api/rollouts/%lld", id);
    return aloftd_json(&srv, path);
}

/* ---- whitelist ---- */

static void test_whitelist(void **state)
{
    (void)state;
    start("whitelist");
    upload_ok(make_image("w-1.0.0.bin", "demo", "1.0.0"));
    upload_ok(make_image("w-1.1.0.bin", "demo", "1.1.0"));

    /* off by default */
    expect(checkin("demo", "1.0.0", MAC1, false, NULL), 200, "whitelist off");
    cJSON *w = aloftd_json(&srv, "/api/platforms/demo/whitelist");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(w, "enabled")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(w, "macs")), 0);
    cJSON_Delete(w);

    /* on and empty: 403 for every device, and nothing crashes */
    expect(admin_post("/api/platforms/demo/whitelist", "{\"enabled\": true}", NULL), 200, "enable");
    struct e2e_http r;
    expect(checkin("demo", "1.0.0", MAC1, false, &r), 403, "empty whitelist");
    assert_string_equal(e2e_http_error(&r), "not_whitelisted");
    e2e_http_free(&r);
    expect(checkin("demo", "1.0.0", NULL, false, NULL), 403, "no MAC");
    expect(checkin("demo", "1.1.0", MAC2, false, NULL), 403, "current but not listed");
    expect(checkin("nosuch", "1.0.0", MAC1, false, NULL), 404, "unknown platform");

    /* listed: served as usual, on both ESP32 and ESP8266 headers, any MAC spelling */
    cJSON *reply;
    expect(admin_post("/api/platforms/DEMO/whitelist", "{\"add\": [\"24:0a:c4:00:00:01\", \"240AC4000003\"]}",
                      &reply),
           200, "add");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "enabled")));
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(reply, "macs");
    assert_int_equal(cJSON_GetArraySize(list), 2);
    assert_string_equal(cJSON_GetArrayItem(list, 0)->valuestring, MAC1);
    assert_string_equal(cJSON_GetArrayItem(list, 1)->valuestring, "24:0A:C4:00:00:03");
    cJSON_Delete(reply);
    expect(checkin("demo", "1.0.0", MAC1, false, NULL), 200, "listed");
    expect(checkin("demo", "1.0.0", "24:0a:c4:00:00:03", true, NULL), 200, "listed, ESP8266");
    expect(checkin("demo", "1.1.0", MAC1, false, NULL), 304, "listed, current");
    expect(checkin("demo", "1.0.0", MAC2, true, NULL), 403, "not listed, ESP8266");
    /* the refused check-in is in the inventory with its reason */
    cJSON *devs = aloftd_json(&srv, "/api/devices");
    const cJSON *d;
    bool seen = false;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(devs, "devices")) if (!strcmp(e2e_jstr(d, "mac"), MAC2))
    {
        seen = true;
        assert_int_equal(e2e_jnum(d, "last_status"), 403);
        assert_non_null(strstr(e2e_jstr(d, "last_reason"), "whitelist"));
    }
    assert_true(seen);
    cJSON_Delete(devs);

    /* remove; removing what is not listed is 404 */
    expect(admin_post("/api/platforms/demo/whitelist", "{\"remove\": [\"" MAC1 "\"]}", NULL), 200, "remove");
    expect(checkin("demo", "1.0.0", MAC1, false, NULL), 403, "removed");
    struct e2e_http e;
    expect(aloftd_admin_post(&srv, &e, "/api/platforms/demo/whitelist", "{\"remove\": [\"" MAC2 "\"]}"), 404,
           "remove unlisted");
    assert_string_equal(e2e_http_error(&e), "not_listed");
    e2e_http_free(&e);

    /* bad input */
    static const char *const bad[] = {"{\"add\": [\"24:0A:C4\"]}", "{\"add\": \"" MAC1 "\"}", "{\"enabled\": 1}",
                                      "{}", "[]", "nonsense", "{\"add\": [\"ZZ:0A:C4:00:00:01\"]}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = admin_post("/api/platforms/demo/whitelist", bad[i], NULL);
        if (code != 400)
            fprintf(stderr, "%s: %d\n", bad[i], code);
        assert_int_equal(code, 400);
    }
    expect(admin_post("/api/platforms/nosuch/whitelist", "{\"enabled\": true}", NULL), 404, "unknown platform");
    const char *noauth[] = {"-H", "Content-Type: application/json", "--data-binary", "{\"enabled\": false}", NULL};
    expect(aloftd_get(&srv, &e, "/api/platforms/demo/whitelist", noauth), 401, "no token");
    e2e_http_free(&e);
    expect(checkin("demo", "1.0.0", MAC2, false, NULL), 403, "still on");

    /* off again: everyone */
    expect(admin_post("/api/platforms/demo/whitelist", "{\"enabled\": false}", NULL), 200, "disable");
    expect(checkin("demo", "1.0.0", MAC2, false, NULL), 200, "whitelist off again");
    expect(checkin("demo", "1.0.0", NULL, false, NULL), 200, "no MAC, whitelist off");
}

/* ---- device reports ---- */

static void test_reports(void **state)
{
    (void)state;
    start("reports");
    upload_ok(make_image("r-1.0.0.bin", "demo", "1.0.0"));
    upload_ok(make_image("r-1.1.0.bin", "demo", "1.1.0"));
    expect(checkin("demo", "1.0.0", MAC1, false, NULL), 200, "offered");
    expect(checkin("demo", "1.0.0", MAC2, false, NULL), 200, "offered");

    cJSON *reply;
    expect(report(MAC1,
                  "{\"version\": \"1.1.0\", \"result\": \"updated\", \"reason\": \"verified\", \"partition\": \"ota_1\", "
                  "\"state\": \"valid\", \"reset_reason\": \"software\"}",
                  &reply),
           200, "report");
    assert_string_equal(e2e_jstr(reply, "status"), "ok");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "counted"))); /* no rollout */
    cJSON_Delete(reply);
    expect(report("240ac4000002", "{\"version\": \"1.0.0\", \"result\": \"rolled_back\", \"reason\": \"boot loop\"}",
                  NULL),
           200, "report, MAC without colons");
    expect(report(MAC2, "{\"version\": \"1.0.0\", \"result\": \"failed\", \"reason\": \"md5 mismatch\"}", NULL), 200,
           "second report");

    cJSON *devs = aloftd_json(&srv, "/api/devices");
    const cJSON *d;
    int found = 0;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(devs, "devices"))
    {
        const cJSON *rep = cJSON_GetObjectItemCaseSensitive(d, "report");
        if (!strcmp(e2e_jstr(d, "mac"), MAC1)) {
            found++;
            assert_string_equal(e2e_jstr(rep, "version"), "1.1.0");
            assert_string_equal(e2e_jstr(rep, "result"), "updated");
            assert_string_equal(e2e_jstr(rep, "reason"), "verified");
            assert_string_equal(e2e_jstr(rep, "partition"), "ota_1");
            assert_string_equal(e2e_jstr(rep, "state"), "valid");
            assert_string_equal(e2e_jstr(rep, "reset_reason"), "software");
            assert_int_equal(e2e_jnum(rep, "reports"), 1);
        } else if (!strcmp(e2e_jstr(d, "mac"), MAC2)) {
            found++;
            assert_string_equal(e2e_jstr(rep, "result"), "failed"); /* the last one */
            assert_string_equal(e2e_jstr(rep, "reason"), "md5 mismatch");
            assert_int_equal(e2e_jnum(rep, "reports"), 2);
        }
    }
    assert_int_equal(found, 2);
    cJSON_Delete(devs);

    /* refused: never checked in, bad ids, bad bodies; nothing recorded */
    struct e2e_http r;
    const char *args[] = {"-H", "Content-Type: application/json", "--data-binary",
                          "{\"version\": \"1.0.0\", \"result\": \"updated\"}", NULL};
    expect(report("24:0A:C4:00:00:99", "{\"version\": \"1.0.0\", \"result\": \"updated\"}", &reply), 404,
           "unknown device");
    assert_string_equal(e2e_jstr(reply, "error"), "unknown_device");
    cJSON_Delete(reply);
    expect(aloftd_get(&srv, &r, "/api/devices/not-a-mac/report", args), 400, "bad id");
    e2e_http_free(&r);
    expect(aloftd_get(&srv, &r, "/api/devices/" MAC1 "/other", args), 404, "bad path");
    e2e_http_free(&r);
    static const char *const bad[] = {"{\"version\": \"1.0.0\", \"result\": \"great\"}", "{\"result\": \"updated\"}",
                                      "{\"version\": \"1.0.0\"}", "not json", "",
                                      "{\"version\": \"1.0.0\", \"result\": \"failed\", \"reason\": 5}",
                                      "{\"version\": \"1\\n0\", \"result\": \"failed\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = report(MAC1, bad[i], NULL);
        if (code != 400)
            fprintf(stderr, "'%s': %d\n", bad[i], code);
        assert_int_equal(code, 400);
    }
    /* GET on it is an admin call: the token is needed */
    expect(aloftd_get(&srv, &r, "/api/devices/" MAC1 "/report", NULL), 401, "GET without token");
    e2e_http_free(&r);
}

/* ---- rollouts ---- */

static long long start_rollout(const char *json)
{
    cJSON *reply;
    int code = admin_post("/api/platforms/demo/rollouts", json, &reply);
    if (code != 201)
        fprintf(stderr, "rollout %s: %d\n", json, code);
    assert_int_equal(code, 201);
    long long id = (long long)e2e_jnum(reply, "id");
    assert_string_equal(e2e_jstr(reply, "status"), "active");
    cJSON_Delete(reply);
    return id;
}

static void action(long long id, const char *what, int want, const char *status)
{
    char path[80];
    snprintf(path, sizeof path, "/api/rollouts/%lld/%s", id, what);
    cJSON *reply;
    int code = admin_post(path, "{}", &reply);
    if (code != want)
        fprintf(stderr, "%s: %d, want %d\n", path, code, want);
    assert_int_equal(code, want);
    if (status)
        assert_string_equal(e2e_jstr(reply, "status"), status);
    cJSON_Delete(reply);
}

/* 100 devices on 1.0.0 check in at every stage: exactly the devices
 * whose bucket is under the stage's percentage are offered 1.1.0, the same
 * ones every time; advancing widens the share; paused offers nothing new;
 * completed leaves the platform's current release to everyone. */
static void test_rollout_stages(void **state)
{
    (void)state;
    start_fleet("stages");

    /* refusals */
    expect(admin_post("/api/platforms/demo/rollouts", "{\"version\": \"9.9.9\"}", NULL), 404, "unknown version");
    expect(admin_post("/api/platforms/nosuch/rollouts", "{\"version\": \"1.1.0\"}", NULL), 404, "unknown platform");
    static const char *const bad[] = {"{}", "{\"version\": \"1.1.0\", \"stages\": [10, 5]}",
                                      "{\"version\": \"1.1.0\", \"stages\": [0, 100]}",
                                      "{\"version\": \"1.1.0\", \"stages\": [101]}",
                                      "{\"version\": \"1.1.0\", \"stages\": []}",
                                      "{\"version\": \"1.1.0\", \"max_failures\": \"x%\"}",
                                      "{\"version\": \"1.1.0\", \"max_failures\": -1}", "nonsense"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int code = admin_post("/api/platforms/demo/rollouts", bad[i], NULL);
        if (code != 400)
            fprintf(stderr, "%s: %d\n", bad[i], code);
        assert_int_equal(code, 400);
    }

    long long id = start_rollout("{\"version\": \"1.1.0\", \"stages\": [1, 10, 50, 100], \"max_failures\": 100}");
    expect(admin_post("/api/platforms/demo/rollouts", "{\"version\": \"1.1.0\"}", NULL), 409, "second rollout");
    cJSON *ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "version"), "1.1.0");
    assert_string_equal(e2e_jstr(ro, "previous"), "1.0.0");
    assert_int_equal(e2e_jnum(ro, "percent"), 1);
    assert_int_equal(e2e_jnum(ro, "max_failures"), 100);
    cJSON_Delete(ro);

    bool offered[NDEV], again[NDEV];
    static const int percents[] = {1, 10, 50, 100};
    for (int s = 0; s < 4; s++) {
        if (s)
            action(id, "advance", 200, "active");
        int n = fleet_checkin("demo", "1.0.0", offered);
        printf("rollout %lld at %d%%: %d of %d devices offered 1.1.0\n", id, percents[s], n, NDEV);
        expect_share(id, percents[s], offered, n);
        int m = fleet_checkin("demo", "1.0.0", again); /* deterministic */
        assert_int_equal(m, n);
        assert_memory_equal(offered, again, sizeof offered);
        if (s == 1) { /* a device outside the share learns why */
            for (int i = 0; i < NDEV; i++) {
                if (offered[i])
                    continue;
                struct e2e_http r;
                expect(checkin("demo", "1.0.0", macs[i], false, &r), 304, "outside");
                const char *note = aloftd_header_value(&r, "X-Aloft-Rollout");
                assert_non_null(note);
                assert_non_null(strstr(note, "out"));
                e2e_http_free(&r);
                break;
            }
        }
        if (s == 2) { /* paused: nobody is offered it; resumed: the same share again */
            action(id, "pause", 200, "paused");
            assert_int_equal(fleet_checkin("demo", "1.0.0", again), 0);
            action(id, "resume", 200, "active");
            assert_int_equal(fleet_checkin("demo", "1.0.0", again), n);
            ro = rollout_get(id);
            assert_int_equal(e2e_jnum(ro, "offered"), n); /* each device counted once */
            cJSON_Delete(ro);
        }
    }
    /* a device without a MAC is never inside a share below 100 %, but 100 % is everyone... */
    expect(checkin("demo", "1.0.0", NULL, false, NULL), 304, "no MAC");
    action(id, "advance", 200, "completed");
    action(id, "advance", 409, NULL);
    action(id, "pause", 409, NULL);
    /* completed: the platform's current release (1.1.0) for everyone */
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), NDEV);
    expect(checkin("demo", "1.0.0", NULL, false, NULL), 200, "no MAC, completed");
    expect(admin_post("/api/rollouts/99/advance", "{}", NULL), 404, "unknown rollout");
    cJSON *all = aloftd_json(&srv, "/api/rollouts");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(all, "rollouts")), 1);
    cJSON_Delete(all);
}

/* Failures reported by devices offered the release, beyond max_failures,
 * halt the rollout; then nobody is offered it. As a count, and as a
 * percentage of the devices offered. */
static void test_rollout_halt(void **state)
{
    (void)state;
    start_fleet("halt");

    long long id = start_rollout("{\"version\": \"1.1.0\", \"stages\": [50, 100], \"max_failures\": 2}");
    bool offered[NDEV];
    int n = fleet_checkin("demo", "1.0.0", offered);
    expect_share(id, 50, offered, n);
    assert_true(n > 5);
    /* a device that was not offered it: recorded, not counted */
    int outside = -1;
    for (int i = 0; i < NDEV && outside < 0; i++)
        if (!offered[i])
            outside = i;
    cJSON *reply;
    expect(report(macs[outside], "{\"version\": \"1.0.0\", \"target\": \"1.1.0\", \"result\": \"failed\", \"reason\": \"x\"}", &reply), 200,
           "report outside");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "counted")));
    cJSON_Delete(reply);
    int failed = 0, updated = 0;
    for (int i = 0; i < NDEV && failed < 3; i++) {
        if (!offered[i])
            continue;
        if (updated < 2) { /* successes never halt it */
            expect(report(macs[i], "{\"version\": \"1.1.0\", \"target\": \"1.1.0\", \"result\": \"updated\"}", NULL), 200, "updated");
            updated++;
            continue;
        }
        expect(report(macs[i],
                      failed % 2 ? "{\"version\": \"1.0.0\", \"target\": \"1.1.0\", \"result\": \"rolled_back\", \"reason\": \"boot loop\"}"
                                 : "{\"version\": \"1.0.0\", \"target\": \"1.1.0\", \"result\": \"failed\", \"reason\": \"crash\"}",
                      &reply),
               200, "failure");
        failed++;
        assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "counted")));
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(reply, "rollout");
        assert_int_equal(e2e_jnum(r, "failures"), failed);
        assert_string_equal(e2e_jstr(r, "status"), failed <= 2 ? "active" : "halted"); /* past 2 */
        cJSON_Delete(reply);
    }
    cJSON *ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "status"), "halted");
    assert_int_equal(e2e_jnum(ro, "failures"), 3);
    assert_int_equal(e2e_jnum(ro, "successes"), 2);
    assert_int_equal(e2e_jnum(ro, "offered"), n);
    assert_non_null(strstr(e2e_jstr(ro, "reason"), "3 failures"));
    cJSON_Delete(ro);
    /* halted: it stops offering, advancing is refused */
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), 0);
    action(id, "advance", 409, NULL);
    action(id, "resume", 409, NULL);

    /* a new rollout of the same release, threshold 10 % of the devices offered */
    long long id2 = start_rollout("{\"version\": \"1.1.0\", \"stages\": [50, 100], \"max_failures\": \"10%\"}");
    assert_true(id2 > id);
    n = fleet_checkin("demo", "1.0.0", offered);
    expect_share(id2, 50, offered, n);
    int allowed = n / 10; /* failures * 100 > 10 * n halts */
    failed = 0;
    for (int i = 0; i < NDEV; i++) {
        if (!offered[i])
            continue;
        expect(report(macs[i], "{\"version\": \"1.0.0\", \"target\": \"1.1.0\", \"result\": \"failed\"}", &reply), 200, "failure");
        failed++;
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(reply, "rollout");
        assert_string_equal(e2e_jstr(r, "status"), failed <= allowed ? "active" : "halted");
        assert_string_equal(e2e_jstr(r, "max_failures"), "10%");
        cJSON_Delete(reply);
        if (failed > allowed)
            break;
    }
    assert_int_equal(failed, allowed + 1);
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), 0);
    action(id2, "abort", 200, "aborted");
    /* aborted: the previous release is pinned, so nobody gets the new one */
    cJSON *p = aloftd_json(&srv, "/api/platforms/demo");
    assert_string_equal(e2e_jstr(p, "pinned"), "1.0.0");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "pin_holds")));
    cJSON_Delete(p);
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), 0);
    action(id2, "resume", 409, NULL);
    /* and the devices that took it are not offered the previous one: the
     * abort's pin only holds; the operator's own pin is a revert */
    struct e2e_http r;
    expect(checkin("demo", "1.1.0", macs[0], false, &r), 304, "took the aborted release");
    assert_non_null(strstr(aloftd_header_value(&r, "X-Aloft-Reason"), "no downgrade"));
    e2e_http_free(&r);
    expect(admin_post("/api/platforms/demo/pin", "{\"version\": \"1.0.0\"}", NULL), 200, "revert");
    expect(checkin("demo", "1.1.0", macs[0], false, NULL), 200, "reverted by the operator");
}

/* The safe way to roll out: pin the running release, upload the new one
 * (nobody gets it), start the rollout; once completed the pin has moved to
 * the new release. */
static void test_rollout_pinned(void **state)
{
    (void)state;
    start("pinned");
    make_macs();
    upload_ok(make_image("p-1.0.0.bin", "demo", "1.0.0"));
    expect(admin_post("/api/platforms/demo/pin", "{\"version\": \"1.0.0\"}", NULL), 200, "pin");
    upload_ok(make_image("p-1.1.0.bin", "demo", "1.1.0"));
    bool offered[NDEV];
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), 0);
    long long id = start_rollout("{\"version\": \"1.1.0\", \"stages\": [25, 100]}");
    cJSON *ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "previous"), "1.0.0");
    assert_string_equal(e2e_jstr(ro, "max_failures"), "5%"); /* the default */
    cJSON_Delete(ro);
    int n = fleet_checkin("demo", "1.0.0", offered);
    expect_share(id, 25, offered, n);
    /* they install it: their next check-in, on 1.1.0, is their success */
    bool updated[NDEV];
    memcpy(updated, offered, sizeof updated);
    assert_int_equal(fleet_checkin_mixed("demo", updated, offered), 0);
    ro = rollout_get(id);
    assert_int_equal(e2e_jnum(ro, "successes"), n);
    assert_int_equal(e2e_jnum(ro, "failures"), 0);
    cJSON_Delete(ro);
    action(id, "advance", 200, "active");
    assert_int_equal(fleet_checkin_mixed("demo", updated, offered), NDEV - n); /* all the others */
    expect_share_mixed(id, 100, updated, offered);
    action(id, "advance", 200, "completed");
    cJSON *p = aloftd_json(&srv, "/api/platforms/demo");
    assert_string_equal(e2e_jstr(p, "pinned"), "1.1.0");
    cJSON_Delete(p);
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), NDEV);
    expect(checkin("demo", "1.1.0", macs[0], false, NULL), 304, "updated device");
}

/* A device offered the release that checks in again: on it, a success
 * even without a report; on the old version, a failure (once per device)
 * that halts the rollout past max_failures. The check-in that gets the 200
 * is not one, nor a device that reported "updated". */
static void test_rollout_old_version(void **state)
{
    (void)state;
    start_fleet("oldver");
    long long id = start_rollout("{\"version\": \"1.1.0\", \"stages\": [50, 100], \"max_failures\": 1}");
    bool offered[NDEV];
    int n = fleet_checkin("demo", "1.0.0", offered);
    expect_share(id, 50, offered, n);
    int idx[NDEV], k = 0;
    for (int i = 0; i < NDEV; i++)
        if (offered[i])
            idx[k++] = i;
    assert_true(n >= 7);
    cJSON *ro = rollout_get(id);
    assert_int_equal(e2e_jnum(ro, "offered"), n);
    assert_int_equal(e2e_jnum(ro, "failures"), 0); /* the 200s themselves */
    assert_int_equal(e2e_jnum(ro, "successes"), 0);
    assert_int_equal(e2e_jnum(cJSON_GetObjectItemCaseSensitive(ro, "stage_counts"), "offered"), n);
    cJSON_Delete(ro);

    /* reported "updated", then on the release: one success */
    cJSON *reply;
    expect(report(macs[idx[0]], "{\"version\": \"1.1.0\", \"target\": \"1.1.0\", \"result\": \"updated\"}", &reply), 200, "updated");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "counted")));
    cJSON_Delete(reply);
    expect(checkin("demo", "1.1.0", macs[idx[0]], false, NULL), 304, "on the release after its report");
    /* reported "updated": its report is its outcome, whatever it runs next */
    expect(report(macs[idx[1]], "{\"version\": \"1.1.0\", \"target\": \"1.1.0\", \"result\": \"updated\"}", NULL), 200, "updated");
    expect(checkin("demo", "1.0.0", macs[idx[1]], false, NULL), 200, "on the old version after its report");
    /* no report, back on the release: a success */
    expect(checkin("demo", "1.1.0", macs[idx[2]], false, NULL), 304, "on the release");
    /* past the release is no failure of it; a version it cannot order settles nothing */
    expect(checkin("demo", "1.2.0", macs[idx[5]], false, NULL), 304, "newer than the release");
    checkin("demo", "nightly-3", macs[idx[6]], false, NULL);
    ro = rollout_get(id);
    assert_int_equal(e2e_jnum(ro, "successes"), 4);
    assert_int_equal(e2e_jnum(ro, "failures"), 0);
    assert_string_equal(e2e_jstr(ro, "status"), "active");
    cJSON_Delete(ro);

    /* back on the old version: a failure, counted once however often it comes */
    for (int t = 0; t < 3; t++) {
        expect(checkin("demo", "1.0.0", macs[idx[3]], false, NULL), 200, "on the old version: offered again");
        ro = rollout_get(id);
        assert_int_equal(e2e_jnum(ro, "failures"), 1);
        assert_int_equal(e2e_jnum(cJSON_GetObjectItemCaseSensitive(ro, "stage_counts"), "failed"), 1);
        assert_string_equal(e2e_jstr(ro, "status"), "active"); /* not more than max_failures 1 */
        cJSON_Delete(ro);
    }
    /* a second one: more than max_failures, halted; it is answered by the halted rollout */
    struct e2e_http r;
    expect(checkin("demo", "1.0.0", macs[idx[4]], false, &r), 304, "the second failure");
    assert_non_null(strstr(aloftd_header_value(&r, "X-Aloft-Rollout"), "status=halted"));
    e2e_http_free(&r);
    ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "status"), "halted");
    assert_int_equal(e2e_jnum(ro, "failures"), 2);
    assert_int_equal(e2e_jnum(ro, "successes"), 4);
    assert_non_null(strstr(e2e_jstr(ro, "reason"), "2 failures"));
    cJSON_Delete(ro);
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), 0);
}

/* Success rate of stage s
 * = devices offered it in s that succeeded / devices offered it in s (at
 * least one). auto_advance "50%" opens the next stage exactly when it is
 * reached, by a report or a check-in on the release; the devices the new
 * stage adds are offered it; paused, it waits; at the last stage it
 * completes. */
static void test_rollout_auto_advance(void **state)
{
    (void)state;
    start_fleet("auto");
    static const char *const bad[] = {"{\"version\": \"1.1.0\", \"auto_advance\": 0}",
                                      "{\"version\": \"1.1.0\", \"auto_advance\": \"0%\"}",
                                      "{\"version\": \"1.1.0\", \"auto_advance\": \"101%\"}",
                                      "{\"version\": \"1.1.0\", \"auto_advance\": \"most\"}",
                                      "{\"version\": \"1.1.0\", \"auto_advance\": 2.5}",
                                      "{\"version\": \"1.1.0\", \"auto_advance\": true}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct e2e_http r;
        int code = aloftd_admin_post(&srv, &r, "/api/platforms/demo/rollouts", bad[i]);
        if (code != 400)
            fprintf(stderr, "%s: %d\n", bad[i], code);
        assert_int_equal(code, 400);
        assert_string_equal(e2e_http_error(&r), "bad_parameter");
        e2e_http_free(&r);
    }
    cJSON *all = aloftd_json(&srv, "/api/rollouts");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(all, "rollouts")), 0);
    cJSON_Delete(all);

    long long id = start_rollout("{\"version\": \"1.1.0\", \"stages\": [10, 50, 100], \"auto_advance\": \"50%\", "
                                 "\"max_failures\": 100}");
    cJSON *ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "auto_advance"), "50%");
    cJSON_Delete(ro);
    bool offered[NDEV], updated[NDEV] = {false};
    int n = fleet_checkin("demo", "1.0.0", offered);
    expect_share(id, 10, offered, n);
    assert_true(n >= 3);
    int idx[NDEV], k = 0;
    for (int i = 0; i < NDEV; i++)
        if (offered[i])
            idx[k++] = i;
    int need = (n + 1) / 2; /* 50 % of the n devices offered, rounded up */
    printf("rollout %lld at 10%%: %d devices offered, %d successes advance it\n", id, n, need);

    /* a failure is no success */
    cJSON *reply;
    expect(report(macs[idx[0]], "{\"version\": \"1.0.0\", \"target\": \"1.1.0\", \"result\": \"failed\"}", &reply), 200, "failed");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(reply, "rollout"),
                                                       "stage_counts");
    assert_int_equal(e2e_jnum(sc, "offered"), n);
    assert_int_equal(e2e_jnum(sc, "failed"), 1);
    assert_int_equal(e2e_jnum(sc, "succeeded"), 0);
    cJSON_Delete(reply);
    /* successes, by reports and by check-ins on the release: at 10 % until the need-th */
    for (int s = 1; s <= need; s++) {
        const char *mac = macs[idx[s]];
        if (s % 2)
            expect(report(mac, "{\"version\": \"1.1.0\", \"target\": \"1.1.0\", \"result\": \"updated\"}", NULL), 200, "updated");
        else
            expect(checkin("demo", "1.1.0", mac, false, NULL), 304, "on the release");
        updated[idx[s]] = true;
        ro = rollout_get(id);
        sc = cJSON_GetObjectItemCaseSensitive(ro, "stage_counts");
        if (s < need) {
            assert_int_equal(e2e_jnum(ro, "percent"), 10);
            assert_int_equal(e2e_jnum(sc, "succeeded"), s);
        } else {
            assert_int_equal(e2e_jnum(ro, "percent"), 50);
            assert_int_equal(e2e_jnum(ro, "stage"), 1);
            assert_string_equal(e2e_jstr(ro, "status"), "active");
            assert_non_null(strstr(e2e_jstr(ro, "reason"), "advanced by itself"));
            assert_int_equal(e2e_jnum(sc, "offered"), 0); /* the new stage's */
        }
        cJSON_Delete(ro);
    }

    /* the devices the new stage adds are offered it (and the ones offered
     * before that still run 1.0.0 again: failures, under max_failures) */
    int added = 0;
    for (int i = 0; i < NDEV; i++)
        added += aloftd_bucket(id, macs[i]) >= 10 && aloftd_bucket(id, macs[i]) < 50;
    fleet_checkin_mixed("demo", updated, offered);
    expect_share_mixed(id, 50, updated, offered);
    ro = rollout_get(id);
    sc = cJSON_GetObjectItemCaseSensitive(ro, "stage_counts");
    assert_int_equal(e2e_jnum(sc, "offered"), added);
    assert_int_equal(e2e_jnum(sc, "succeeded"), 0);
    assert_int_equal(e2e_jnum(ro, "failures"), n - need); /* idx[0] reported; need + 1 .. n - 1 came back */
    cJSON_Delete(ro);

    /* paused, it does not advance by itself, however many succeed */
    action(id, "pause", 200, "paused");
    for (int i = 0; i < NDEV; i++)
        if (aloftd_bucket(id, macs[i]) >= 10 && aloftd_bucket(id, macs[i]) < 50)
            updated[i] = true;
    assert_int_equal(fleet_checkin_mixed("demo", updated, offered), 0);
    ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "status"), "paused");
    assert_int_equal(e2e_jnum(ro, "percent"), 50);
    assert_int_equal(e2e_jnum(cJSON_GetObjectItemCaseSensitive(ro, "stage_counts"), "succeeded"), added);
    cJSON_Delete(ro);
    /* resumed: what came meanwhile counts */
    char path[80];
    snprintf(path, sizeof path, "/api/rollouts/%lld/resume", id);
    expect(admin_post(path, "{}", &reply), 200, "resume");
    assert_string_equal(e2e_jstr(reply, "status"), "active");
    assert_int_equal(e2e_jnum(reply, "percent"), 100);
    cJSON_Delete(reply);

    /* the last stage: everyone else is offered it; done, it completes */
    int rest = fleet_checkin_mixed("demo", updated, offered);
    expect_share_mixed(id, 100, updated, offered);
    int last = 0, lidx[NDEV];
    for (int i = 0; i < NDEV; i++)
        if (aloftd_bucket(id, macs[i]) >= 50)
            lidx[last++] = i;
    assert_true(rest >= last);
    int need2 = (last + 1) / 2;
    for (int s = 1; s <= need2; s++) {
        expect(checkin("demo", "1.1.0", macs[lidx[s - 1]], false, NULL), 304, "on the release");
        ro = rollout_get(id);
        assert_string_equal(e2e_jstr(ro, "status"), s < need2 ? "active" : "completed");
        cJSON_Delete(ro);
    }
    /* completed: the platform's current release, 1.1.0, for everyone */
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), NDEV);
}

/* Reports count only signed with the device's credential, and only for
 * the release they name; unsigned check-ins settle nothing on a platform
 * that says so. */
static void test_reports_are_signed(void **state)
{
    (void)state;
    start_fleet("signed");
    long long id = start_rollout("{\"version\": \"1.1.0\", \"stages\": [100], \"max_failures\": 1}");
    bool offered[NDEV];
    assert_int_equal(fleet_checkin("demo", "1.0.0", offered), NDEV);
    static const char fail[] = "{\"version\": \"1.0.0\", \"target\": \"1.1.0\", \"result\": \"rolled_back\"}";
    char path[200], auth[65];
    struct e2e_http r;
    /* unsigned, signed with another device's credential, or for a changed body: 401 */
    const char *args[] = {"-H", "Content-Type: application/json", "--data-binary", fail, NULL};
    snprintf(path, sizeof path, "/api/devices/%s/report", macs[0]);
    expect(aloftd_get(&srv, &r, path, args), 401, "unsigned");
    assert_string_equal(e2e_http_error(&r), "unauthenticated");
    e2e_http_free(&r);
    aloftd_report_auth(&srv, macs[1], fail, auth);
    snprintf(path, sizeof path, "/api/devices/%s/report?auth=%s", macs[0], auth);
    expect(aloftd_get(&srv, &r, path, args), 401, "another device's credential");
    e2e_http_free(&r);
    aloftd_report_auth(&srv, macs[0], "{\"version\": \"1.1.0\", \"target\": \"1.1.0\", \"result\": \"updated\"}", auth);
    snprintf(path, sizeof path, "/api/devices/%s/report?auth=%s", macs[0], auth);
    expect(aloftd_get(&srv, &r, path, args), 401, "the signature of another body");
    e2e_http_free(&r);
    /* the credential is an admin's to read */
    snprintf(path, sizeof path, "/api/devices/%s/credential", macs[0]);
    expect(aloftd_get(&srv, &r, path, NULL), 401, "credential without token");
    e2e_http_free(&r);
    cJSON *devs = aloftd_json(&srv, "/api/devices");
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(devs, "devices"))
        assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(d, "report"))); /* nothing recorded */
    cJSON_Delete(devs);
    /* signed, but about another release (a copy of an older report): recorded, not counted */
    cJSON *reply;
    expect(report(macs[0], "{\"version\": \"1.0.0\", \"target\": \"1.0.5\", \"result\": \"rolled_back\"}",
                  &reply),
           200, "about another release");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "counted")));
    cJSON_Delete(reply);
    cJSON *ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "status"), "active");
    assert_int_equal(e2e_jnum(ro, "failures"), 0);
    cJSON_Delete(ro);

    /* report-only: a device back on the old version settles nothing */
    expect(admin_post("/api/platforms/demo/checkins", "{\"settle\": false}", &reply), 200, "report-only");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "settle")));
    cJSON_Delete(reply);
    expect(admin_post("/api/platforms/demo/checkins", "{\"settle\": 0}", NULL), 400, "not a boolean");
    expect(checkin("demo", "1.0.0", macs[1], false, NULL), 200, "offered again");
    ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "status"), "active");
    assert_int_equal(e2e_jnum(ro, "failures"), 0);
    cJSON_Delete(ro);
    /* a signed report about this release counts */
    expect(report(macs[0], fail, &reply), 200, "signed, about this release");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "counted")));
    assert_int_equal(e2e_jnum(cJSON_GetObjectItemCaseSensitive(reply, "rollout"), "failures"), 1);
    cJSON_Delete(reply);
    /* settle again (the default): the next such check-in is a failure, the second: halted */
    expect(admin_post("/api/platforms/demo/checkins", "{\"settle\": true}", NULL), 200, "settle");
    expect(checkin("demo", "1.0.0", macs[1], false, NULL), 304, "halted by the check-in");
    ro = rollout_get(id);
    assert_string_equal(e2e_jstr(ro, "status"), "halted");
    assert_int_equal(e2e_jnum(ro, "failures"), 2);
    cJSON_Delete(ro);
}

/* ---- metrics ---- */

static unsigned long long metric(const char *text, const char *line)
{
    char want[300]; /* at the start of a line: not the # HELP line */
    snprintf(want, sizeof want, "\n%s ", line);
    const char *p = strstr(text, want);
    if (!p)
        fprintf(stderr, "no '%s' in\n%s\n", line, text);
    assert_non_null(p);
    p += strlen(want) - 1;
    assert_true(*p == ' ');
    return strtoull(p + 1, NULL, 10);
}

static void test_metrics(void **state)
{
    (void)state;
    start("metrics");
    const char *v1 = make_image("m-1.0.0.bin", "demo", "1.0.0");
    upload_ok(v1);
    size_t size;
    free(e2e_file_read(v1, &size));
    expect(checkin("demo", "0.9.0", MAC1, false, NULL), 200, "offered");
    expect(checkin("demo", "0.9.0", MAC2, false, NULL), 200, "offered");
    expect(checkin("demo", "1.0.0", MAC1, false, NULL), 304, "current");
    expect(checkin("nosuch", "1.0.0", MAC1, false, NULL), 404, "unknown");
    expect(report(MAC1, "{\"version\": \"1.0.0\", \"result\": \"updated\"}", NULL), 200, "report");
    long long id = 0;
    {
        cJSON *reply;
        expect(admin_post("/api/platforms/demo/rollouts", "{\"version\": \"1.0.0\", \"stages\": [10, 100]}", &reply),
               201, "rollout");
        id = (long long)e2e_jnum(reply, "id");
        cJSON_Delete(reply);
    }

    struct e2e_http r;
    expect(aloftd_get(&srv, &r, "/metrics", NULL), 401, "metrics without token");
    e2e_http_free(&r);
    const char *auth[] = {"-H", srv.auth, NULL};
    expect(aloftd_get(&srv, &r, "/metrics", auth), 200, "metrics");
    assert_non_null(strstr(aloftd_header_value(&r, "Content-Type"), "text/plain; version=0.0.4"));
    assert_non_null(strstr(r.body, "# TYPE aloft_http_requests_total counter\n"));
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"update\",status=\"200\"}"), 2);
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"update\",status=\"304\"}"), 1);
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"update\",status=\"404\"}"), 1);
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"upload\",status=\"201\"}"), 1);
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"report\",status=\"200\"}"), 1);
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"metrics\",status=\"401\"}"), 1);
    assert_int_equal(metric(r.body, "aloft_checkins_total{status=\"200\"}"), 2);
    assert_int_equal(metric(r.body, "aloft_checkins_total{status=\"304\"}"), 1);
    assert_int_equal(metric(r.body, "aloft_downloads_total"), 2);
    assert_int_equal(metric(r.body, "aloft_download_bytes_total"), 2 * size);
    assert_int_equal(metric(r.body, "aloft_device_reports_total{result=\"updated\"}"), 1);
    char line[200];
    snprintf(line, sizeof line, "aloft_rollout_percent{rollout=\"%lld\",platform=\"demo\",version=\"1.0.0\"}", id);
    assert_int_equal(metric(r.body, line), 10);
    snprintf(line, sizeof line,
             "aloft_rollout_status{rollout=\"%lld\",platform=\"demo\",version=\"1.0.0\",status=\"active\"}", id);
    assert_int_equal(metric(r.body, line), 1);
    e2e_http_free(&r);

    /* downloads by /firmware: a whole file and a range; HEAD sends no body */
    char path[120];
    cJSON *rel = aloftd_json(&srv, "/api/platforms/demo/releases");
    snprintf(path, sizeof path, "%s", e2e_jstr(cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rel, "releases"), 0),
                                               "url"));
    cJSON_Delete(rel);
    expect(aloftd_get(&srv, &r, path, NULL), 200, "download");
    e2e_http_free(&r);
    const char *range[] = {"-H", "Range: bytes=0-99", NULL};
    expect(aloftd_get(&srv, &r, path, range), 206, "range");
    e2e_http_free(&r);
    const char *head[] = {"-I", NULL};
    expect(aloftd_get(&srv, &r, path, head), 200, "HEAD");
    e2e_http_free(&r);
    expect(aloftd_get(&srv, &r, "/metrics", auth), 200, "metrics");
    assert_int_equal(metric(r.body, "aloft_downloads_total"), 4);
    assert_int_equal(metric(r.body, "aloft_download_bytes_total"), 3 * size + 100);
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"firmware\",status=\"206\"}"), 1);
    assert_int_equal(metric(r.body, "aloft_http_requests_total{endpoint=\"firmware\",status=\"200\"}"), 2);
    e2e_http_free(&r);
}

/* ---- aloft server rollout / whitelist ---- */

static int cli(char **out, const char *const words[])
{
    const char *argv[32] = {"aloft", "server"};
    size_t k = 2;
    for (size_t i = 0; words[i]; i++)
        argv[k++] = words[i];
    argv[k++] = "--server";
    argv[k++] = srv.url;
    argv[k++] = "--token";
    argv[k++] = srv.token;
    argv[k] = NULL;
    return aloft_test_run(out, argv);
}

static void cli_ok(const char *const words[], const char *want)
{
    char *out;
    int rc = cli(&out, words);
    if (rc != 0 || !strstr(out, want))
        fprintf(stderr, "aloft server %s ...: %d, want '%s' in:\n%s\n", words[0], rc, want, out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, want));
    free(out);
}

static void test_cli(void **state)
{
    (void)state;
    start_fleet("cli");

    const char *wl_show[] = {"whitelist", "demo", NULL};
    cli_ok(wl_show, "demo whitelist: off, 0 MACs");
    const char *wl_add[] = {"whitelist", "demo", "add", MAC1, "24:0a:c4:00:00:02", NULL};
    cli_ok(wl_add, "demo whitelist: off, 2 MACs\n  " MAC1 "\n  " MAC2);
    const char *wl_on[] = {"whitelist", "demo", "on", NULL};
    cli_ok(wl_on, "demo whitelist: on, 2 MACs");
    expect(checkin("demo", "1.0.0", "24:0A:C4:00:00:09", false, NULL), 403, "not listed");
    expect(checkin("demo", "1.0.0", MAC2, false, NULL), 200, "listed");
    const char *wl_rm[] = {"whitelist", "demo", "remove", MAC2, NULL};
    cli_ok(wl_rm, "demo whitelist: on, 1 MAC\n");
    expect(checkin("demo", "1.0.0", MAC2, false, NULL), 403, "removed");
    const char *wl_off[] = {"whitelist", "demo", "off", NULL};
    cli_ok(wl_off, "demo whitelist: off, 1 MAC");

    const char *start_ro[] = {"rollout", "start", "demo", "1.1.0", "--stages", "10,50,100", "--max-failures", "20%",
                              NULL};
    cli_ok(start_ro, "rollout 1: demo 1.1.0, active at 10% (stages 10,50,100; others get 1.0.0)");
    bool offered[NDEV];
    int n = fleet_checkin("demo", "1.0.0", offered);
    expect_share(1, 10, offered, n);
    char want[120];
    snprintf(want, sizeof want, "offered %d, updated 0, failed 0 (max 20%%)", n);
    const char *show[] = {"rollout", "show", "1", NULL};
    cli_ok(show, want);
    snprintf(want, sizeof want, "this stage: offered %d, updated 0, failed 0; advances on command", n);
    cli_ok(show, want);
    /* they install it: their next check-in, on 1.1.0, is their success */
    bool updated[NDEV];
    memcpy(updated, offered, sizeof updated);
    assert_int_equal(fleet_checkin_mixed("demo", updated, offered), 0);
    snprintf(want, sizeof want, "offered %d, updated %d, failed 0 (max 20%%)", n, n);
    cli_ok(show, want);
    const char *adv[] = {"rollout", "advance", "1", NULL};
    cli_ok(adv, "active at 50%");
    const char *pause[] = {"rollout", "pause", "1", NULL};
    cli_ok(pause, "paused at 50%");
    const char *resume[] = {"rollout", "resume", "1", NULL};
    cli_ok(resume, "active at 50%");
    fleet_checkin_mixed("demo", updated, offered);
    expect_share_mixed(1, 50, updated, offered);
    const char *abort_ro[] = {"rollout", "abort", "1", NULL};
    cli_ok(abort_ro, "aborted at 50%");
    const char *list[] = {"rollout", "show", NULL};
    cli_ok(list, "rollout 1: demo 1.1.0, aborted");
    const char *json[] = {"rollout", "show", "1", "--json", NULL};
    cli_ok(json, "\"status\":\t\"aborted\"");

    /* --auto-advance */
    const char *start_auto[] = {"rollout", "start", "demo", "1.1.0", "--stages", "50,100", "--auto-advance", "90%",
                                NULL};
    cli_ok(start_auto, "rollout 2: demo 1.1.0, active at 50%");
    const char *show2[] = {"rollout", "show", "2", NULL};
    cli_ok(show2, "this stage: offered 0, updated 0, failed 0; advances by itself at 90%");
    const char *json2[] = {"rollout", "show", "2", "--json", NULL};
    cli_ok(json2, "\"auto_advance\":\t\"90%\"");
    const char *abort2[] = {"rollout", "abort", "2", NULL};
    cli_ok(abort2, "aborted at 50%");

    /* refused by the server: exit 1 with its words; bad usage: exit 2 */
    char *out;
    assert_int_equal(cli(&out, adv), 1);
    free(out);
    const char *zero[] = {"rollout", "start", "demo", "1.1.0", "--auto-advance", "0", NULL};
    assert_int_equal(cli(&out, zero), 1); /* auto_advance: at least 1 */
    free(out);

    const char *bad[][8] = {{"rollout", NULL},
                            {"rollout", "start", "demo", NULL},
                            {"rollout", "jump", "1", NULL},
                            {"rollout", "advance", NULL},
                            {"rollout", "show", "1", "--stages", "1,2", NULL},
                            {"rollout", "advance", "1", "--auto-advance", "5", NULL},
                            {"rollout", "start", "demo", "1.1.0", "--stages", "1,x", NULL},
                            {"whitelist", NULL},
                            {"whitelist", "demo", "add", NULL},
                            {"whitelist", "demo", "maybe", NULL}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = cli(&out, bad[i]);
        if (rc != 2)
            fprintf(stderr, "case %zu: %d\n%s\n", i, rc, out);
        assert_int_equal(rc, 2);
        free(out);
    }
}

int main(void)
{
    e2e_init(152);
    if (aloftd_db_init("aloftd rollout tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_whitelist, aloftd_teardown),
        cmocka_unit_test_teardown(test_reports, aloftd_teardown),
        cmocka_unit_test_teardown(test_reports_are_signed, aloftd_teardown),
        cmocka_unit_test_teardown(test_rollout_stages, aloftd_teardown),
        cmocka_unit_test_teardown(test_rollout_halt, aloftd_teardown),
        cmocka_unit_test_teardown(test_rollout_pinned, aloftd_teardown),
        cmocka_unit_test_teardown(test_rollout_old_version, aloftd_teardown),
        cmocka_unit_test_teardown(test_rollout_auto_advance, aloftd_teardown),
        cmocka_unit_test_teardown(test_metrics, aloftd_teardown),
        cmocka_unit_test_teardown(test_cli, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
