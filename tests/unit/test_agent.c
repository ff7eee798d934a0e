/* The agent's start-up, confirm policy and documents (agent.h) and its
 * MQTT commands (mqtt.h, PROTOCOLS.md §3.2), with no network: the boot
 * line and facts, the status and state JSON, confirm and reject, the
 * topics, and every kind of command — a trigger, a retained one, another
 * type, and the bad ones, which leave the state failed with the reason. */
#include "testagent.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/mqtt.h"
#include "aloft/otadata.h"
#include "aloft/pull.h"
#include "aloft/update.h"

#define FLASH_4M 0x400000u

static uint8_t *v1, *v2;
static size_t v1_len, v2_len;

static int setup(void **state)
{
    (void)state;
    v1 = aloft_test_image("esp32s3", "1.0.0", 0, NULL, &v1_len);
    v2 = aloft_test_image("esp32s3", "2.0.0", 0, NULL, &v2_len);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(v1);
    free(v2);
    return 0;
}

static cJSON *state_doc(struct aloft_test_agent *t, const char *phase)
{
    char doc[1024];
    int len = aloft_agent_state_json(&t->a, phase, NULL, doc, sizeof doc);
    assert_true(len > 0);
    cJSON *j = cJSON_Parse(doc);
    assert_non_null(j);
    return j;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    assert_true(cJSON_IsString(v));
    return v->valuestring;
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    assert_true(cJSON_IsNumber(v));
    return v->valuedouble;
}

/* The boot line comes first, then the app line; the facts are the running image's. */
static void test_start_logs_and_reports_the_running_image(void **state)
{
    (void)state;
    static struct aloft_test_agent t;
    struct aloft_agent_config cfg = {.mac = "02:00:00:00:00:07", .platform = "plat", .device_id = "dev-7"};
    aloft_test_agent_init(&t, FLASH_4M, NULL, v1, v1_len, NULL, 0, &cfg);
    assert_int_equal(strncmp(t.log, "boot: reset_reason=POWERON running_partition=ota_0\napp: aloft-test 1.0.0 on esp32s3",
                             strlen("boot: reset_reason=POWERON running_partition=ota_0\napp: aloft-test 1.0.0 on esp32s3")),
                     0);
    assert_true(aloft_test_agent_logged(&t, "security: no PSK provisioned: updates are refused"));

    char doc[1024];
    t.now_ms += 5000;
    int len = aloft_agent_status_json(&t.a, doc, sizeof doc);
    assert_true(len > 0 && (size_t)len == strlen(doc));
    cJSON *j = cJSON_Parse(doc);
    assert_non_null(j);
    assert_string_equal(str(j, "version"), "1.0.0");
    assert_string_equal(str(j, "project"), "aloft-test");
    assert_string_equal(str(j, "chip"), "esp32s3");
    assert_string_equal(str(j, "running_partition"), "ota_0");
    assert_string_equal(str(j, "next_partition"), "ota_1");
    assert_int_equal((int)num(j, "max_size"), 0x100000);
    assert_string_equal(str(j, "reset_reason"), "POWERON");
    assert_string_equal(str(j, "mac"), "02:00:00:00:00:07");
    assert_int_equal((int)num(j, "uptime_s"), 5);
    assert_int_equal((int)num(j, "www_slot"), 0);
    assert_int_equal(strlen(str(j, "sha256")), 64);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "busy")));
    cJSON_Delete(j);
    /* a buffer too small is said so, never cut */
    assert_int_equal(aloft_agent_status_json(&t.a, doc, 100), ALOFT_E_NOSPC);

    j = state_doc(&t, NULL);
    assert_string_equal(str(j, "device"), "dev-7");
    assert_string_equal(str(j, "platform"), "plat");
    assert_string_equal(str(j, "state"), "idle");
    assert_string_equal(str(j, "partition"), "ota_0");
    cJSON_Delete(j);
    j = state_doc(&t, "offline");
    assert_string_equal(str(j, "state"), "offline");
    cJSON_Delete(j);
    aloft_test_agent_free(&t);
}

/* Device id and platform default to the MAC and the image's project. */
static void test_identity_defaults_and_topics(void **state)
{
    (void)state;
    static struct aloft_test_agent t;
    aloft_test_agent_init(&t, FLASH_4M, NULL, v1, v1_len, NULL, 0, NULL);
    assert_string_equal(t.a.device_id, "02:00:00:00:00:01");
    assert_string_equal(t.a.platform, "aloft-test");
    struct aloft_mqtt_topics top;
    aloft_mqtt_topics(&t.a, &top);
    assert_string_equal(top.state, "aloft/aloft-test/02:00:00:00:00:01/state");
    assert_int_equal(top.count, 2);
    assert_string_equal(top.sub[0], "aloft/aloft-test/02:00:00:00:00:01/cmd");
    assert_string_equal(top.sub[1], "aloft/aloft-test/cmd");
    aloft_test_agent_free(&t);

    struct aloft_agent_config cfg = {.mac = "02:00:00:00:00:01", .cmd_topic = "/switch/cmd/root"};
    aloft_test_agent_init(&t, FLASH_4M, NULL, v1, v1_len, NULL, 0, &cfg);
    aloft_mqtt_topics(&t.a, &top);
    assert_int_equal(top.count, 3);
    assert_string_equal(top.sub[2], "/switch/cmd/root");
    aloft_test_agent_free(&t);
}

/* An update boots pending; confirm makes it valid, reject rolls back. */
static void test_confirm_and_reject(void **state)
{
    (void)state;
    static struct aloft_test_agent t;
    for (int reject = 0; reject < 2; reject++) {
        aloft_test_agent_init(&t, FLASH_4M, NULL, v1, v1_len, NULL, 0, NULL);
        assert_int_equal(aloft_test_update(&t.dev.boot, v2, v2_len, 4096), 0);
        assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
        assert_string_equal(t.a.app.desc.version, "2.0.0");
        assert_int_equal(aloft_boot_state(&t.a.boot[0]), ALOFT_OTA_PENDING_VERIFY);
        if (!reject) {
            assert_int_equal(aloft_agent_confirm(&t.a), 0);
            assert_int_equal(aloft_boot_state(t.a.boot), ALOFT_OTA_VALID);
            assert_null(t.restart);
            assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
            assert_string_equal(t.a.app.desc.version, "2.0.0");
        } else {
            assert_int_equal(aloft_agent_reject(&t.a), 0);
            assert_string_equal(t.restart, "SW");
            assert_true(aloft_test_agent_logged(&t, "rolling back"));
            assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
            assert_string_equal(t.a.app.desc.version, "1.0.0");
            /* booted by default (otadata never chose 1.0.0): nothing to mark */
            assert_int_equal(aloft_agent_reject(&t.a), ALOFT_E_STATE);
            assert_int_equal(aloft_boot_state(t.a.boot), ALOFT_OTA_UNDEFINED);
        }
        aloft_test_agent_free(&t);
    }
}

/* Every kind of command on a command topic. */
static void test_mqtt_commands(void **state)
{
    (void)state;
    static struct aloft_test_agent t;
    aloft_test_agent_init(&t, FLASH_4M, NULL, v1, v1_len, NULL, 0, NULL);
    struct aloft_pull_req r;
    const char *topic = "aloft/aloft-test/cmd";
    const char *good = "{\"type\":\"ota_trigger\",\"url\":\"https://ota.example/fw.bin\",\"id\":\"t-1\","
                       "\"sha256\":\"ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789\",\"size\":1e3}";
    unsigned states = t.states;
    assert_int_equal(aloft_mqtt_command(&t.a, topic, good, strlen(good), false, &r), ALOFT_MQTT_TRIGGER);
    assert_string_equal(r.url, "https://ota.example/fw.bin");
    assert_string_equal(r.trigger, "t-1");
    assert_string_equal(r.sha256, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_int_equal(r.size, 1000);
    assert_false(r.frontend);
    assert_int_equal(t.states, states); /* a trigger is the job's to report */

    /* retained: the broker would hand it over at every connection */
    assert_int_equal(aloft_mqtt_command(&t.a, topic, good, strlen(good), true, &r), ALOFT_MQTT_IGNORED);
    assert_true(aloft_test_agent_logged(&t, "ignored a retained command"));
    const char *other = "{\"type\":\"reboot\"}";
    assert_int_equal(aloft_mqtt_command(&t.a, topic, other, strlen(other), false, &r), ALOFT_MQTT_IGNORED);
    assert_true(aloft_test_agent_logged(&t, "ignored a \"reboot\" command"));
    assert_int_equal(t.states, states);

    static const struct {
        const char *payload, *why;
        const char *id; /* echoed */
    } bad[] = {
        {"not json", "not JSON", ""},
        {"[1,2]", "not a JSON object", ""},
        {"{\"type\":\"ota_trigger\"}", "\"url\" is missing", ""},
        {"{\"type\":\"ota_trigger\",\"url\":\"ftp://x/fw.bin\",\"id\":\"t-2\"}", "http:// or https://", "t-2"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b\",\"sha256\":\"xyz\",\"id\":\"t-3\"}", "64 hex digits", "t-3"},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b\",\"size\":1.5}", "positive whole number", ""},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b\",\"size\":0}", "positive whole number", ""},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b\",\"target\":\"bootloader\"}", "\"firmware\" or \"frontend\"", ""},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b\",\"version\":7}", "\"version\" must be a string", ""},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b\",\"id\":\"\\u0000\"}", "\"id\" must be a string", ""},
        {"{\"type\":\"ota_trigger\",\"url\":\"http://a/b\",}", "not JSON", ""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned before = t.states;
        if (aloft_mqtt_command(&t.a, topic, bad[i].payload, strlen(bad[i].payload), false, &r) != ALOFT_MQTT_BAD)
            fail_msg("%s: not refused", bad[i].payload);
        assert_int_equal(t.states, before + 1);
        cJSON *j = cJSON_Parse(t.state);
        assert_non_null(j);
        assert_string_equal(str(j, "state"), "failed");
        assert_string_equal(str(j, "code"), "bad_trigger");
        if (!strstr(str(j, "reason"), bad[i].why) || !strstr(str(j, "reason"), topic))
            fail_msg("%s: reason '%s' (want '%s')", bad[i].payload, str(j, "reason"), bad[i].why);
        assert_string_equal(str(j, "trigger"), bad[i].id);
        cJSON_Delete(j);
    }

    /* while an update runs, a bad command is only logged */
    t.a.state.phase = ALOFT_PHASE_DOWNLOADING;
    unsigned before = t.states;
    assert_int_equal(aloft_mqtt_command(&t.a, topic, "{}", 2, false, &r), ALOFT_MQTT_BAD);
    assert_int_equal(t.states, before);
    assert_int_equal(t.a.state.phase, ALOFT_PHASE_DOWNLOADING);
    aloft_test_agent_free(&t);
}

/* JSON strings with escapes come out as the text they stand for. */
static void test_trigger_strings_are_unescaped(void **state)
{
    (void)state;
    struct aloft_pull_req r;
    char why[200];
    const char *json = "{\"type\":\"ota_trigger\",\"url\":\"https:\\/\\/h\\u00e9.example\\/a b.bin\","
                       "\"token\":\"x\\\"y\\\\z\\ud83d\\ude00\",\"target\":null,\"version\":null}";
    assert_int_equal(aloft_trigger_parse(json, strlen(json), &r, why, sizeof why), 0);
    assert_string_equal(r.url, "https://h\xc3\xa9.example/a b.bin");
    assert_string_equal(r.token, "x\"y\\z\xf0\x9f\x98\x80");
    assert_string_equal(r.version, "");
    /* a URL one byte too long for the field */
    char long_url[700];
    snprintf(long_url, sizeof long_url, "{\"type\":\"ota_trigger\",\"url\":\"http://%0505d\"}", 0);
    assert_int_equal(aloft_trigger_parse(long_url, strlen(long_url), &r, why, sizeof why), ALOFT_E_SYNTAX);
    assert_non_null(strstr(why, "longer than 511"));
    /* half a surrogate pair is no character: refused, as cJSON refuses it */
    static const char *const lone[] = {"\\udddd", "\\ud83d", "\\ud83dx", "\\ude00\\ud83d"};
    for (size_t i = 0; i < sizeof lone / sizeof lone[0]; i++) {
        char bad[200];
        snprintf(bad, sizeof bad, "{\"type\":\"ota_trigger\",\"url\":\"http://h/%s.bin\"}", lone[i]);
        assert_int_equal(aloft_trigger_parse(bad, strlen(bad), &r, why, sizeof why), ALOFT_E_SYNTAX);
        /* in a field nobody reads too: the document is not JSON */
        snprintf(bad, sizeof bad, "{\"type\":\"ota_trigger\",\"url\":\"http://h/\",\"x\":\"%s\"}", lone[i]);
        assert_int_equal(aloft_trigger_parse(bad, strlen(bad), &r, why, sizeof why), ALOFT_E_SYNTAX);
    }
}

/* A trigger's delta patch: its URL and base come together, each checked;
 * the base is compared in lower case. */
static void test_trigger_delta_fields(void **state)
{
    (void)state;
    struct aloft_pull_req r;
    char why[200], json[400];
    const char *base = "ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef0123456789";
    snprintf(json, sizeof json,
             "{\"type\":\"ota_trigger\",\"url\":\"http://h/f.bin\",\"delta_url\":\"https://h/p.delta\","
             "\"delta_base\":\"%s\"}", base);
    assert_int_equal(aloft_trigger_parse(json, strlen(json), &r, why, sizeof why), 0);
    assert_string_equal(r.url, "http://h/f.bin");
    assert_string_equal(r.delta_url, "https://h/p.delta");
    assert_string_equal(r.delta_base, "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_false(r.delta); /* aloft_pull_start decides, from the running image */
    static const char *const bad[] = {
        "\"delta_url\":\"http://h/p\"",                          /* no base */
        "\"delta_base\":\"%s\"",                                  /* no URL */
        "\"delta_url\":\"ftp://h/p\",\"delta_base\":\"%s\"",       /* not http(s) */
        "\"delta_url\":\"http://h/p\",\"delta_base\":\"%.63s\"",   /* 63 digits */
        "\"delta_url\":\"http://h/p\",\"delta_base\":\"%.63sg\"",  /* not hex */
        "\"delta_url\":7,\"delta_base\":\"%s\"",                    /* not a string */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char fields[200];
        snprintf(fields, sizeof fields, bad[i], base);
        snprintf(json, sizeof json, "{\"type\":\"ota_trigger\",\"url\":\"http://h/f.bin\",%s}", fields);
        assert_int_equal(aloft_trigger_parse(json, strlen(json), &r, why, sizeof why), ALOFT_E_SYNTAX);
        assert_non_null(strstr(why, "delta_"));
    }
}

/* Scheduled checks spread over ±10 % of the interval, from the port's random bytes. */
static void test_check_interval_is_jittered(void **state)
{
    (void)state;
    static struct aloft_test_agent t;
    aloft_test_agent_init(&t, FLASH_4M, NULL, v1, v1_len, NULL, 0, NULL);
    uint32_t lo = UINT32_MAX, hi = 0;
    for (int i = 0; i < 200; i++) {
        uint32_t ms = aloft_pull_check_interval_ms(&t.a, 60);
        assert_in_range(ms, 54000, 66000);
        lo = ms < lo ? ms : lo;
        hi = ms > hi ? ms : hi;
    }
    assert_true(hi - lo > 6000); /* spread, not one value */
    t.port.random = NULL;
    assert_int_equal(aloft_pull_check_interval_ms(&t.a, 60), 60000);
    aloft_test_agent_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_logs_and_reports_the_running_image),
        cmocka_unit_test(test_identity_defaults_and_topics),
        cmocka_unit_test(test_confirm_and_reject),
        cmocka_unit_test(test_mqtt_commands),
        cmocka_unit_test(test_trigger_strings_are_unescaped),
        cmocka_unit_test(test_trigger_delta_fields),
        cmocka_unit_test(test_check_interval_is_jittered),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
