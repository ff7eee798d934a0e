/* aloftd end to end: MQTT triggers (PROTOCOLS.md §3.2) at a real mosquitto
 * broker the test starts (mqtt_harness.h), whose recording client subscribed
 * to aloft/# collects what arrives. The operator's trigger to the platform's
 * topic and to one device's; a rollout's start and advances (the operator's,
 * or its own once a stage succeeded) publish to exactly the devices of each
 * new stage share; a broker that is down when aloftd starts
 * is connected to once it is up (and again after it restarts). Runs twice
 * like test_aloftd (CTest: test_aloftd_mqtt on SQLite, test_aloftd_mqtt_pg
 * on a PostgreSQL server the harness starts). */
#include "aloftd_harness.h"
#include "mqtt_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/image.h"
#include "image_make.h"

#define NDEV 100
#define WAIT_MS 10000u       /* for a message, a connection */
#define QUIET_MS 500u        /* after the expected messages: nothing more comes */
#define RECONNECT_MS 20000u  /* aloftd's backoff is 0.5 s doubling: a few tries */

static struct aloftd_proc srv;
static struct mqtt_broker broker;

/* The broker, and the recording client subscribed to aloft/#. */
static void broker_up(void)
{
    mqtt_broker_init(&broker, "mosquitto", NULL, NULL);
    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", NULL);
}

static int teardown(void **state)
{
    mqtt_sub_stop();
    int rc = aloftd_teardown(state);
    mqtt_broker_stop(&broker);
    return rc;
}

/* Wait for n messages (test failure when they do not come), then QUIET_MS
 * more: no more than n came. */
static void sub_expect(unsigned n)
{
    uint64_t end = e2e_now_ms() + WAIT_MS;
    while (mqtt_sub_count() < n && e2e_now_ms() < end)
        e2e_sleep_ms(10);
    if (mqtt_sub_count() < n)
        fprintf(stderr, "%u MQTT messages arrived, want %u\n", mqtt_sub_count(), n);
    assert_int_equal(mqtt_sub_count(), n);
    e2e_sleep_ms(QUIET_MS);
    if (mqtt_sub_count() != n)
        fprintf(stderr, "%u MQTT messages arrived, want only %u\n", mqtt_sub_count(), n);
    assert_int_equal(mqtt_sub_count(), n);
}

/* Message i: on topic, the trigger of a release; its payload parsed. */
static cJSON *sub_trigger(unsigned i, const char *topic, const cJSON *release)
{
    char got[128];
    int qos;
    bool retain;
    cJSON *j = mqtt_sub_message(i, got, &qos, &retain);
    assert_string_equal(got, topic);
    assert_int_equal(qos, 1);
    assert_false(retain);
    assert_non_null(j);
    assert_string_equal(e2e_jstr(j, "type"), "ota_trigger");
    assert_string_equal(e2e_jstr(j, "version"), e2e_jstr(release, "version"));
    assert_string_equal(e2e_jstr(j, "sha256"), e2e_jstr(release, "sha256"));
    assert_true(e2e_jnum(j, "size") == e2e_jnum(release, "size"));
    return j;
}

/* ---- aloftd ---- */

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

/* Upload; the release's JSON (the caller deletes it). */
static cJSON *upload(const char *file)
{
    struct e2e_http r;
    int code = aloftd_upload(&srv, &r, file, NULL, NULL);
    if (code != 201)
        fprintf(stderr, "upload %s: %d %s\n", file, code, r.body);
    assert_int_equal(code, 201);
    cJSON *j = cJSON_Parse(r.body);
    e2e_http_free(&r);
    assert_non_null(j);
    cJSON *rel = cJSON_DetachItemFromObject(j, "release");
    cJSON_Delete(j);
    assert_non_null(rel);
    return rel;
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

static void expect(int got, int want, const char *what)
{
    if (got != want)
        fprintf(stderr, "%s: %d, want %d\n", what, got, want);
    assert_int_equal(got, want);
}

static unsigned log_count(const char *needle)
{
    char *log = aloftd_log_read(&srv);
    unsigned n = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(log);
    return n;
}

/* Wait until aloftd has logged `mqtt: connected` more than `before` times. */
static void wait_connected(unsigned before, unsigned timeout_ms)
{
    uint64_t end = e2e_now_ms() + timeout_ms;
    while (log_count("mqtt: connected to ") <= before) {
        if (e2e_now_ms() > end) {
            char *log = aloftd_log_read(&srv);
            fprintf(stderr, "aloftd did not connect to %s in time; its log:\n%s\n", broker.addr, log);
            free(log);
            fail();
        }
        e2e_sleep_ms(20);
    }
}

/* Start aloftd with args (NULL: --mqtt <the broker>). */
static void start(const char *name, const char *const args[])
{
    aloftd_init(&srv, name);
    const char *mqtt[] = {"--mqtt", broker.addr, NULL};
    assert_int_equal(aloftd_start(&srv, args ? args : mqtt), 0);
    assert_int_equal(strlen(srv.token), 64);
}

/* The trigger's URL serves the release's exact size. */
static void expect_download(const cJSON *trigger)
{
    struct e2e_http r;
    const char *argv[] = {e2e_jstr(trigger, "url"), NULL};
    expect(e2e_curl(&r, argv), 200, e2e_jstr(trigger, "url"));
    assert_true((double)r.len == e2e_jnum(trigger, "size"));
    e2e_http_free(&r);
}

/* ---- the operator's trigger ---- */

static void test_operator_trigger(void **state)
{
    (void)state;
    broker_up();
    /* the flags; the password is never logged (the broker takes anyone) */
    const char *args[] = {"--mqtt", broker.addr, "--public-url", "http://updates.example.com:8080/", "--mqtt-user",
                          "aloft", "--mqtt-password", "s3cret-pw", NULL};
    start("operator", args);
    wait_connected(0, WAIT_MS);
    char *log = aloftd_log_read(&srv);
    assert_null(strstr(log, "s3cret-pw"));
    assert_non_null(strstr(log, "setting mqtt-password = *** (flag --mqtt-password)"));
    free(log);
    cJSON *rel = upload(make_image("o-1.0.0.bin", "demo", "1.0.0"));

    /* every device of the platform: the current release; a platform's name in any case */
    cJSON *reply;
    expect(admin_post("/api/platforms/DEMO/trigger", "", &reply), 200, "trigger the platform");
    assert_string_equal(e2e_jstr(reply, "topic"), "aloft/demo/cmd");
    cJSON_Delete(reply);
    sub_expect(1);
    cJSON *t = sub_trigger(0, "aloft/demo/cmd", rel);
    char url[200];
    snprintf(url, sizeof url, "http://updates.example.com:8080/firmware/%s.bin", e2e_jstr(rel, "sha256"));
    assert_string_equal(e2e_jstr(t, "url"), url);
    cJSON_Delete(t);

    /* one device, its MAC in any spelling */
    mqtt_sub_clear();
    expect(admin_post("/api/platforms/demo/trigger", "{\"device\": \"240ac4000001\"}", &reply), 200,
           "trigger a device");
    assert_string_equal(e2e_jstr(reply, "topic"), "aloft/demo/24:0A:C4:00:00:01/cmd");
    cJSON_Delete(reply);
    sub_expect(1);
    cJSON_Delete(sub_trigger(0, "aloft/demo/24:0A:C4:00:00:01/cmd", rel));

    /* an older release by version */
    cJSON *rel2 = upload(make_image("o-1.1.0.bin", "demo", "1.1.0"));
    mqtt_sub_clear();
    expect(admin_post("/api/platforms/demo/trigger", "{\"version\": \"1.0.0\", \"device\": \"24:0A:C4:00:00:02\"}",
                      NULL),
           200, "trigger a version");
    expect(admin_post("/api/platforms/demo/trigger", "{}", NULL), 200, "trigger the current");
    sub_expect(2);
    cJSON_Delete(sub_trigger(0, "aloft/demo/24:0A:C4:00:00:02/cmd", rel));
    cJSON_Delete(sub_trigger(1, "aloft/demo/cmd", rel2));

    /* refusals publish nothing */
    mqtt_sub_clear();
    expect(admin_post("/api/platforms/demo/trigger", "{\"device\": \"nonsense\"}", NULL), 400, "bad device");
    expect(admin_post("/api/platforms/demo/trigger", "[1]", NULL), 400, "not an object");
    expect(admin_post("/api/platforms/demo/trigger", "{\"version\": \"9.9.9\"}", NULL), 404, "unknown version");
    expect(admin_post("/api/platforms/nosuch/trigger", "{}", NULL), 404, "unknown platform");
    struct e2e_http r;
    expect(aloftd_get(&srv, &r, "/api/platforms/demo/trigger", (const char *const[]){"-X", "POST", NULL}), 401,
           "no token");
    e2e_http_free(&r);
    e2e_sleep_ms(QUIET_MS);
    assert_int_equal(mqtt_sub_count(), 0);
    cJSON_Delete(rel);
    cJSON_Delete(rel2);
}

/* ---- rollouts ---- */

static char macs[NDEV][18];

static void checkin(const char *mac, const char *ver)
{
    char path[200], h_mac[80];
    snprintf(path, sizeof path, "/update?dev=demo&ver=%s", ver);
    snprintf(h_mac, sizeof h_mac, "x-ESP32-STA-MAC: %s", mac);
    const char *args[] = {"-H", "User-Agent: ESP32-http-Update", "-H", "x-ESP32-free-space: 1900544",
                          "-H", "x-ESP32-mode: sketch", "-H", h_mac, NULL};
    struct e2e_http r;
    int code = aloftd_get(&srv, &r, path, args);
    e2e_http_free(&r);
    if (code != 200 && code != 304)
        fprintf(stderr, "check-in of %s: %d\n", mac, code);
    assert_true(code == 200 || code == 304);
}

/* The messages are the triggers of rel to exactly the devices whose bucket
 * is in [from, to). */
static void expect_devices(long long id, unsigned from, unsigned to, const cJSON *rel)
{
    unsigned want = 0;
    for (int i = 0; i < NDEV; i++)
        want += aloftd_bucket(id, macs[i]) >= from && aloftd_bucket(id, macs[i]) < to;
    printf("rollout %lld: %u%% to %u%%: %u of %d devices triggered\n", id, from, to, want, NDEV);
    sub_expect(want);
    bool seen[NDEV] = {false};
    for (unsigned k = 0; k < want; k++) {
        char topic[128];
        int qos;
        bool retain;
        cJSON_Delete(mqtt_sub_message(k, topic, &qos, &retain));
        int found = -1;
        for (int i = 0; i < NDEV && found < 0; i++) {
            char t[128];
            snprintf(t, sizeof t, "aloft/demo/%.17s/cmd", macs[i]);
            if (!strcmp(t, topic))
                found = i;
        }
        if (found < 0)
            fprintf(stderr, "a trigger on %s: no device of the share\n", topic);
        assert_true(found >= 0);
        unsigned b = aloftd_bucket(id, macs[found]);
        if (b < from || b >= to || seen[found])
            fprintf(stderr, "%s (bucket %u) triggered%s, outside [%u, %u)\n", macs[found], b,
                    seen[found] ? " twice" : "", from, to);
        assert_true(b >= from && b < to && !seen[found]);
        seen[found] = true;
        cJSON *t = sub_trigger(k, topic, rel);
        if (k == 0)
            expect_download(t);
        cJSON_Delete(t);
    }
}

static void test_rollout_triggers(void **state)
{
    (void)state;
    broker_up();
    /* the config file; downloads from aloftd's own address */
    char conf[200];
    int n = snprintf(conf, sizeof conf, "# MQTT triggers\nmqtt = \"%s\"\n", broker.addr);
    e2e_file_write(e2e_path("aloftd.conf"), conf, (size_t)n);
    const char *args[] = {"--config", e2e_path("aloftd.conf"), NULL};
    start("rollout", args);
    wait_connected(0, WAIT_MS);
    for (int i = 0; i < NDEV; i++)
        snprintf(macs[i], sizeof macs[i], "24:0A:C4:20:%02X:%02X", i * 3 % 256, i);
    cJSON *old = upload(make_image("r-1.0.0.bin", "demo", "1.0.0"));
    for (int i = 0; i < NDEV; i++)
        checkin(macs[i], "1.0.0");
    checkin("24:0A:C4:30:00:01", "1.1.0"); /* runs it already: inside the share or not, never triggered */
    cJSON *rel = upload(make_image("r-1.1.0.bin", "demo", "1.1.0"));
    assert_int_equal(mqtt_sub_count(), 0); /* uploads trigger nothing */

    cJSON *reply;
    expect(admin_post("/api/platforms/demo/rollouts", "{\"version\": \"1.1.0\", \"stages\": [10, 50, 100]}", &reply),
           201, "start");
    long long id = (long long)e2e_jnum(reply, "id");
    cJSON_Delete(reply);
    expect_devices(id, 0, 10, rel);

    char path[80];
    snprintf(path, sizeof path, "/api/rollouts/%lld/pause", id);
    mqtt_sub_clear();
    expect(admin_post(path, "{}", NULL), 200, "pause");
    snprintf(path, sizeof path, "/api/rollouts/%lld/resume", id);
    expect(admin_post(path, "{}", NULL), 200, "resume");
    e2e_sleep_ms(QUIET_MS);
    assert_int_equal(mqtt_sub_count(), 0); /* no new stage: nothing */

    snprintf(path, sizeof path, "/api/rollouts/%lld/advance", id);
    expect(admin_post(path, "{}", NULL), 200, "advance to 50 %");
    expect_devices(id, 10, 50, rel); /* only the devices the stage adds */

    mqtt_sub_clear();
    expect(admin_post(path, "{}", NULL), 200, "advance to 100 %");
    sub_expect(1); /* everyone: the platform's topic */
    cJSON *t = sub_trigger(0, "aloft/demo/cmd", rel);
    expect_download(t);
    cJSON_Delete(t);

    mqtt_sub_clear();
    expect(admin_post(path, "{}", NULL), 200, "complete");
    e2e_sleep_ms(QUIET_MS);
    assert_int_equal(mqtt_sub_count(), 0);
    cJSON_Delete(old);
    cJSON_Delete(rel);
}

/* A rollout that advances by itself (auto_advance 1: one device of the
 * stage back on the release) triggers the devices of the new stage share,
 * as the operator's advance does. */
static void test_rollout_auto_triggers(void **state)
{
    (void)state;
    broker_up();
    start("auto", NULL);
    wait_connected(0, WAIT_MS);
    for (int i = 0; i < NDEV; i++)
        snprintf(macs[i], sizeof macs[i], "24:0A:C4:40:%02X:%02X", i * 5 % 256, i);
    cJSON *old = upload(make_image("a-1.0.0.bin", "demo", "1.0.0"));
    for (int i = 0; i < NDEV; i++)
        checkin(macs[i], "1.0.0");
    cJSON *rel = upload(make_image("a-1.1.0.bin", "demo", "1.1.0"));

    cJSON *reply;
    expect(admin_post("/api/platforms/demo/rollouts",
                      "{\"version\": \"1.1.0\", \"stages\": [10, 50, 100], \"auto_advance\": 1}", &reply),
           201, "start");
    long long id = (long long)e2e_jnum(reply, "id");
    cJSON_Delete(reply);
    expect_devices(id, 0, 10, rel);

    int first = -1;
    for (int i = 0; i < NDEV && first < 0; i++)
        if (aloftd_bucket(id, macs[i]) < 10)
            first = i;
    assert_true(first >= 0);
    mqtt_sub_clear();
    checkin(macs[first], "1.0.0"); /* offered it: no outcome yet */
    e2e_sleep_ms(QUIET_MS);
    assert_int_equal(mqtt_sub_count(), 0);
    char path[80];
    snprintf(path, sizeof path, "/api/rollouts/%lld", id);
    cJSON *ro = aloftd_json(&srv, path);
    assert_int_equal(e2e_jnum(ro, "percent"), 10);
    cJSON_Delete(ro);

    checkin(macs[first], "1.1.0"); /* back on it: the stage is done */
    expect_devices(id, 10, 50, rel);
    ro = aloftd_json(&srv, path);
    assert_int_equal(e2e_jnum(ro, "percent"), 50);
    assert_string_equal(e2e_jstr(ro, "status"), "active");
    cJSON_Delete(ro);
    cJSON_Delete(old);
    cJSON_Delete(rel);
}

/* ---- a broker that comes later, and goes and comes back ---- */

static void test_broker_down(void **state)
{
    (void)state;
    mqtt_broker_init(&broker, "mosquitto", NULL, NULL); /* its port, nothing listening */
    setenv("ALOFT_MQTT", broker.addr, 1); /* the environment */
    const char *args[] = {NULL};
    start("late", args);
    unsetenv("ALOFT_MQTT");
    char *log = aloftd_log_read(&srv);
    assert_non_null(strstr(log, "(environment ALOFT_MQTT)"));
    free(log);
    cJSON *rel = upload(make_image("l-1.0.0.bin", "demo", "1.0.0"));
    struct e2e_http r;
    int code = aloftd_admin_post(&srv, &r, "/api/platforms/demo/trigger", "{}");
    expect(code, 503, "trigger without a broker");
    assert_string_equal(e2e_http_error(&r), "mqtt_unavailable");
    e2e_http_free(&r);
    /* the rest of the server works meanwhile */
    cJSON_Delete(aloftd_json(&srv, "/api/platforms/demo"));
    e2e_sleep_ms(1500); /* a few failed attempts */

    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", NULL);
    wait_connected(0, RECONNECT_MS);
    expect(admin_post("/api/platforms/demo/trigger", "{\"device\": \"24:0A:C4:00:00:09\"}", NULL), 200,
           "trigger once connected");
    sub_expect(1);
    cJSON_Delete(sub_trigger(0, "aloft/demo/24:0A:C4:00:00:09/cmd", rel));

    /* the broker restarts: aloftd reconnects by itself */
    unsigned subs = mqtt_sub_subscribed();
    mqtt_broker_stop(&broker);
    e2e_sleep_ms(300);
    mqtt_broker_start(&broker);
    mqtt_sub_wait_subscribed(subs);
    wait_connected(1, RECONNECT_MS);
    mqtt_sub_clear();
    expect(admin_post("/api/platforms/demo/trigger", "{}", NULL), 200, "trigger after the restart");
    sub_expect(1);
    cJSON_Delete(sub_trigger(0, "aloft/demo/cmd", rel));
    cJSON_Delete(rel);
}

int main(void)
{
    e2e_init(153);
    if (aloftd_db_init("aloftd MQTT tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_operator_trigger, teardown),
        cmocka_unit_test_teardown(test_rollout_triggers, teardown),
        cmocka_unit_test_teardown(test_rollout_auto_triggers, teardown),
        cmocka_unit_test_teardown(test_broker_down, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
