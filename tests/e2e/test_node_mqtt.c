/* aloft-node --mqtt end to end (PROTOCOLS.md §3.2): a real mosquitto broker
 * (mqtt_harness), real aloftd (aloftd_harness) serving the image over HTTPS
 * with a certificate of a throwaway CA made with the openssl CLI, real
 * aloft-node processes. The retained state on the device's topic (ids,
 * platform, --cmd-topic seed style), the last will, bad and foreign
 * commands changing nothing; a trigger downloaded over verified HTTPS,
 * restart, "updated" on the state topic and in aloftd's report; an
 * untrusted certificate refused; the broker killed and restarted in the
 * middle of a download (the node and `aloft trigger --wait` both come
 * back); the same trigger delivered again updating once; a TLS broker; a
 * broker that wants a user and password. */
#include "aloftd_harness.h"
#include "mqtt_harness.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>


#define UPDATE_MS 60000u /* a trigger to "updated": download, flash, restart */

static struct mqtt_broker broker;
static struct aloftd_proc srv;
static char v1[300], v2[300], big1[300], big2[300];

static int setup(void **state)
{
    (void)state;
    snprintf(v1, sizeof v1, "%s", e2e_path("mq-1.0.0.bin"));
    snprintf(v2, sizeof v2, "%s", e2e_path("mq-1.1.0.bin"));
    snprintf(big1, sizeof big1, "%s", e2e_path("mq-big-1.0.0.bin"));
    snprintf(big2, sizeof big2, "%s", e2e_path("mq-big-1.1.0.bin"));
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "1.1.0", 0, NULL);
    e2e_image(big1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(big2, "esp32s3", "1.1.0", 600000, NULL);
    return 0;
}

static int teardown(void **state)
{
    mqtt_sub_stop();
    int rc = aloftd_teardown(state);
    mqtt_broker_stop(&broker);
    return rc;
}

static void start_broker(const char *name)
{
    mqtt_broker_init(&broker, name, NULL, NULL);
    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", "/switch/#");
}

/* A node running firmware with --mqtt <broker> and extra args. */
static void start_node(struct e2e_node *n, const char *name, const char *firmware, const char *const extra[])
{
    e2e_node_init(n, name);
    const char *args[32] = {"--create", "--flash-size", "4M", "--firmware", firmware, "--mqtt", broker.addr};
    size_t k = 7;
    for (size_t i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    assert_int_equal(e2e_node_start(n, args), 0);
}

static void wait_log(struct e2e_node *n, const char *needle, unsigned count)
{
    if (e2e_node_wait_log(n, needle, count, UPDATE_MS)) {
        char *log = e2e_log_read(n);
        fprintf(stderr, "%s: no %u× '%s' in its log:\n%s\n", n->name, count, needle, log);
        free(log);
        fail();
    }
}

/* The next state on topic with key == value (test failure when none comes). */
static cJSON *expect_state(unsigned *from, const char *topic, const char *key, const char *value, unsigned ms)
{
    cJSON *j = mqtt_sub_wait(from, topic, key, value, ms);
    if (!j)
        fprintf(stderr, "no state with %s=%s on %s within %u ms\n", key ? key : "-", value ? value : "-", topic, ms);
    assert_non_null(j);
    return j;
}

static void node_mac(struct e2e_node *n, char mac[18])
{
    cJSON *st = e2e_status(n);
    snprintf(mac, 18, "%s", e2e_jstr(st, "mac"));
    cJSON_Delete(st);
    assert_int_equal(strlen(mac), 17);
}

/* ---- the retained state, ids, commands that change nothing ---- */

static void test_state_and_commands(void **state)
{
    (void)state;
    start_broker("state");
    /* a retained trigger left on the platform's topic is stale: ignored */
    mqtt_publish("aloft/plat/cmd", "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:1/old.bin\",\"id\":\"stale\"}",
                 true);

    struct e2e_node a, b;
    const char *ids[] = {"--device-id", "dev-a", "--platform", "plat", "--cmd-topic", "/switch/cmd/root", NULL};
    start_node(&a, "ids", v1, ids);
    wait_log(&a, "mqtt: subscribed to 3 topics", 1);
    unsigned from = 0;
    cJSON *s = expect_state(&from, "aloft/plat/dev-a/state", NULL, NULL, MQTT_WAIT_MS);
    char mac[18];
    node_mac(&a, mac);
    assert_string_equal(e2e_jstr(s, "device"), "dev-a");
    assert_string_equal(e2e_jstr(s, "platform"), "plat");
    assert_string_equal(e2e_jstr(s, "mac"), mac);
    assert_string_equal(e2e_jstr(s, "version"), "1.0.0");
    assert_string_equal(e2e_jstr(s, "partition"), "ota_0");
    assert_string_equal(e2e_jstr(s, "state"), "idle");
    cJSON_Delete(s);
    wait_log(&a, "mqtt: ignored a retained command on aloft/plat/cmd", 1);
    mqtt_unretain("aloft/plat/cmd");

    /* defaults: the MAC and the image's project */
    start_node(&b, "defaults", v1, NULL);
    char mac_b[18], topic_b[64];
    node_mac(&b, mac_b);
    snprintf(topic_b, sizeof topic_b, "aloft/demo/%s/state", mac_b);
    unsigned from_b = 0;
    s = expect_state(&from_b, topic_b, "device", mac_b, MQTT_WAIT_MS);
    assert_string_equal(e2e_jstr(s, "platform"), "demo");
    cJSON_Delete(s);

    /* retained: a client subscribing later gets both states at once */
    mqtt_sub_stop();
    mqtt_sub_start(&broker, "aloft/+/+/state", NULL);
    unsigned k = 0;
    s = expect_state(&k, "aloft/plat/dev-a/state", NULL, NULL, MQTT_WAIT_MS);
    assert_true(mqtt_sub_retained(k - 1));
    cJSON_Delete(s);
    k = 0;
    s = expect_state(&k, topic_b, NULL, NULL, MQTT_WAIT_MS);
    assert_true(mqtt_sub_retained(k - 1));
    cJSON_Delete(s);
    mqtt_sub_stop();
    mqtt_sub_start(&broker, "aloft/#", "/switch/#");

    /* commands on the seed's topic that change nothing: another type, not
     * JSON, a trigger with a bad URL (its id echoed in the failed state) */
    struct e2e_snap snap;
    e2e_snap_take(&snap, &a);
    from = mqtt_sub_count();
    mqtt_publish("/switch/cmd/root", "{\"type\":\"reboot\"}", false);
    wait_log(&a, "mqtt: ignored a \"reboot\" command on /switch/cmd/root", 1);
    mqtt_publish("/switch/cmd/root", "ota now please", false);
    s = expect_state(&from, "aloft/plat/dev-a/state", "state", "failed", MQTT_WAIT_MS);
    assert_string_equal(e2e_jstr(s, "code"), "bad_trigger");
    assert_non_null(strstr(e2e_jstr(s, "reason"), "/switch/cmd/root"));
    cJSON_Delete(s);
    mqtt_publish("aloft/plat/dev-a/cmd", "{\"type\":\"ota_trigger\",\"url\":\"ftp://x/fw.bin\",\"id\":\"t-bad\"}", false);
    s = expect_state(&from, "aloft/plat/dev-a/state", "trigger", "t-bad", MQTT_WAIT_MS);
    assert_string_equal(e2e_jstr(s, "state"), "failed");
    assert_string_equal(e2e_jstr(s, "code"), "bad_trigger");
    assert_non_null(strstr(e2e_jstr(s, "reason"), "url"));
    cJSON_Delete(s);
    const char *diff = e2e_snap_diff(&snap, &a);
    if (diff)
        fprintf(stderr, "a bad command changed the %s\n", diff);
    assert_null(diff);
    e2e_snap_free(&snap);
    assert_int_equal(e2e_log_count(&a, "boot: "), 1);
    /* the other device saw none of it */
    assert_int_equal(mqtt_sub_matching(topic_b, "state", "failed"), 0);

    /* aloft trigger --wait on the seed's topic: the answer comes on the
     * device's state topic (here: the other node's HTTP server has no such file) */
    char url[128], *out;
    snprintf(url, sizeof url, "%s/no-such-firmware.bin", b.url);
    const char *seed[] = {"aloft", "trigger", "--broker", broker.addr, "--topic", "/switch/cmd/root", "--platform",
                          "plat", "--url", url, "--wait", "--timeout", "60", NULL};
    int rc = aloft_test_run(&out, seed);
    if (rc != 1 || !strstr(out, "summary: 1 rejected, of 1 device") || !strstr(out, "http_404"))
        fprintf(stderr, "aloft trigger --topic /switch/cmd/root --wait: exit %d (want 1, rejected http_404):\n%s\n", rc,
                out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, "summary: 1 rejected, of 1 device"));
    assert_non_null(strstr(out, "http_404"));
    free(out);

    /* the last will: a device that vanishes is marked offline, retained */
    e2e_node_kill9(&a);
    s = expect_state(&from, "aloft/plat/dev-a/state", "state", "offline", MQTT_WAIT_MS);
    assert_string_equal(e2e_jstr(s, "device"), "dev-a");
    cJSON_Delete(s);
    e2e_node_stop(&b);
}

/* ---- HTTPS download, restart, updated on MQTT and in aloftd ---- */

/* aloftd over HTTPS; its https:// URL from the log. */
static void start_https_aloftd(const char *name)
{
    e2e_make_ca("127.0.0.1");
    aloftd_init(&srv, name);
    const char *args[] = {"--listen", "127.0.0.1:0", "--tls-cert", e2e_path("srv.pem"), "--tls-key",
                          e2e_path("srv.key"), NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    aloftd_https_url(&srv);
}

/* Upload a firmware image to aloftd; the trigger JSON for it (URL on
 * aloftd, version, sha256, size) with id. */
static char *upload_trigger(const char *file, const char *id)
{
    struct e2e_http r;
    const char *trust[] = {"--cacert", e2e_path("ca.pem"), NULL};
    int code = aloftd_upload(&srv, &r, file, NULL, trust);
    if (code != 201 && code != 200) /* 200: stored already */
        fprintf(stderr, "upload %s: %d %s\n", file, code, r.body);
    assert_true(code == 201 || code == 200);
    cJSON *j = cJSON_Parse(r.body);
    e2e_http_free(&r);
    const cJSON *rel = cJSON_GetObjectItemCaseSensitive(j, "release");
    assert_non_null(rel);
    char url[300];
    snprintf(url, sizeof url, "%s/firmware/%s.bin", srv.url, e2e_jstr(rel, "sha256"));
    cJSON *t = cJSON_CreateObject();
    cJSON_AddStringToObject(t, "type", "ota_trigger");
    cJSON_AddStringToObject(t, "url", url);
    cJSON_AddStringToObject(t, "version", e2e_jstr(rel, "version"));
    cJSON_AddStringToObject(t, "sha256", e2e_jstr(rel, "sha256"));
    cJSON_AddNumberToObject(t, "size", e2e_jnum(rel, "size"));
    cJSON_AddStringToObject(t, "id", id);
    char *text = cJSON_PrintUnformatted(t);
    cJSON_Delete(t);
    cJSON_Delete(j);
    return text;
}

/* aloftd's inventory entry of mac (NULL when it has none yet). */
static cJSON *inventory(const char *mac)
{
    struct e2e_http r;
    const char *args[] = {"--cacert", e2e_path("ca.pem"), "-H", srv.auth, NULL};
    int code = aloftd_get(&srv, &r, "/api/devices", args);
    if (code != 200)
        fprintf(stderr, "aloftd: GET /api/devices: %d %s\n", code, r.body);
    assert_int_equal(code, 200);
    cJSON *list = cJSON_Parse(r.body);
    e2e_http_free(&r);
    const cJSON *devs = cJSON_IsArray(list) ? list : cJSON_GetObjectItemCaseSensitive(list, "devices");
    const cJSON *d;
    cJSON *found = NULL;
    cJSON_ArrayForEach(d, devs)
    {
        if (!strcmp(e2e_jstr(d, "mac"), mac))
            found = cJSON_Duplicate(d, true);
    }
    cJSON_Delete(list);
    return found;
}

/* Wait until aloftd's inventory has mac, with a report when want_report. */
static cJSON *wait_inventory(const char *mac, const char *want_result)
{
    uint64_t end = e2e_now_ms() + UPDATE_MS;
    for (;;) {
        cJSON *d = inventory(mac);
        const cJSON *rep = d ? cJSON_GetObjectItemCaseSensitive(d, "report") : NULL;
        if (d && (!want_result || (cJSON_IsObject(rep) && !strcmp(e2e_jstr(rep, "result"), want_result))))
            return d;
        cJSON_Delete(d);
        if (e2e_now_ms() > end) {
            fprintf(stderr, "aloftd: device %s %s\n", mac, want_result ? "did not report" : "never checked in");
            fail();
        }
        e2e_sleep_ms(100);
    }
}

static void test_https_trigger(void **state)
{
    (void)state;
    start_broker("https");
    start_https_aloftd("https");
    char *t0 = upload_trigger(v1, "unused");
    free(t0);

    /* the device checks in once at boot (304: it runs the only release) so
     * that aloftd knows it; it trusts the test CA */
    struct e2e_node n, untrusting;
    char key[65];
    aloftd_credential(&srv, e2e_path("ca.pem"), "24:0A:C4:0B:00:01", key);
    const char *args[] = {"--server", srv.url, "--ca-file", e2e_path("ca.pem"), "--mac", "24:0A:C4:0B:00:01",
                          "--server-key", key, NULL};
    start_node(&n, "https", v1, args);
    char mac[18], topic[64];
    node_mac(&n, mac);
    snprintf(topic, sizeof topic, "aloft/demo/%s/state", mac);
    cJSON_Delete(wait_inventory(mac, NULL));
    wait_log(&n, "mqtt: subscribed to 2 topics", 1);

    char *trigger = upload_trigger(v2, "t-https-1");
    unsigned from = mqtt_sub_count();
    mqtt_publish("aloft/demo/cmd", trigger, false);
    cJSON *s = expect_state(&from, topic, "state", "downloading", UPDATE_MS);
    assert_string_equal(e2e_jstr(s, "trigger"), "t-https-1");
    cJSON_Delete(s);
    s = expect_state(&from, topic, "state", "updated", UPDATE_MS);
    assert_string_equal(e2e_jstr(s, "trigger"), "t-https-1");
    assert_string_equal(e2e_jstr(s, "version"), "1.1.0");
    assert_string_equal(e2e_jstr(s, "partition"), "ota_1");
    cJSON_Delete(s);
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "version"), "1.1.0");
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
    cJSON_Delete(st);
    cJSON *d = wait_inventory(mac, "updated");
    const cJSON *rep = cJSON_GetObjectItemCaseSensitive(d, "report");
    assert_string_equal(e2e_jstr(rep, "version"), "1.1.0");
    assert_string_equal(e2e_jstr(rep, "partition"), "ota_1");
    cJSON_Delete(d);

    /* a device without the CA refuses aloftd's certificate: failed tls, nothing changed */
    start_node(&untrusting, "untrusting", v1, NULL);
    char mac_u[18], topic_u[64];
    node_mac(&untrusting, mac_u);
    snprintf(topic_u, sizeof topic_u, "aloft/demo/%s/state", mac_u);
    wait_log(&untrusting, "mqtt: subscribed to 2 topics", 1);
    struct e2e_snap snap;
    e2e_snap_take(&snap, &untrusting);
    char dev_topic[64];
    snprintf(dev_topic, sizeof dev_topic, "aloft/demo/%s/cmd", mac_u);
    char *t2 = upload_trigger(v2, "t-https-2");
    mqtt_publish(dev_topic, t2, false);
    s = expect_state(&from, topic_u, "state", "failed", UPDATE_MS);
    assert_string_equal(e2e_jstr(s, "trigger"), "t-https-2");
    assert_string_equal(e2e_jstr(s, "code"), "tls");
    assert_true(strlen(e2e_jstr(s, "reason")) > 0);
    cJSON_Delete(s);
    e2e_snap_app_unchanged(&snap, &untrusting); /* the pull job's settings may change */
    e2e_snap_free(&snap);
    assert_int_equal(e2e_log_count(&untrusting, "boot: "), 1);
    /* the first device was not addressed */
    assert_int_equal(mqtt_sub_matching(topic, "trigger", "t-https-2"), 0);
    free(trigger);
    free(t2);
    e2e_node_stop(&n);
    e2e_node_stop(&untrusting);
}

/* ---- the broker restarted mid-download; one trigger delivered twice ---- */

static void test_broker_restart_and_duplicate(void **state)
{
    (void)state;
    e2e_simulator_only("a reconnect within the download (esp-mqtt waits reconnect_timeout_ms, 10 s, between tries)");
    start_broker("restart");
    start_https_aloftd("restart");
    free(upload_trigger(big1, "unused"));
    struct e2e_node n;
    /* a slow link: the download lasts long enough to restart the broker in it */
    const char *args[] = {"--ca-file", e2e_path("ca.pem"), "--link-rate", "100K", NULL};
    start_node(&n, "restart", big1, args);
    char mac[18], topic[64];
    node_mac(&n, mac);
    snprintf(topic, sizeof topic, "aloft/demo/%s/state", mac);
    wait_log(&n, "mqtt: subscribed to 2 topics", 1);

    /* aloft trigger --wait publishes it and follows the device through the
     * broker's restart; the recorder delivers it a second time at once */
    char *trigger = upload_trigger(big2, "t-twice");
    cJSON *tj = cJSON_Parse(trigger);
    char size[32];
    snprintf(size, sizeof size, "%.0f", e2e_jnum(tj, "size"));
    const char *cli[] = {"aloft", "trigger", "--broker", broker.addr, "--platform", "demo", "--url", e2e_jstr(tj, "url"),
                         "--version", e2e_jstr(tj, "version"), "--sha256", e2e_jstr(tj, "sha256"), "--size", size,
                         "--id", "t-twice", "--wait", "--timeout", "120", "--json", NULL};
    const char *report = e2e_path("restart-report.json");
    pid_t cli_pid = e2e_spawn(ALOFT_BIN "/aloft", cli, report, O_TRUNC, false);
    cJSON_Delete(tj);
    unsigned from = mqtt_sub_count();
    cJSON_Delete(expect_state(&from, "aloft/demo/cmd", "id", "t-twice", MQTT_WAIT_MS));
    mqtt_publish("aloft/demo/cmd", trigger, false); /* redelivered */
    cJSON_Delete(expect_state(&from, topic, "state", "downloading", UPDATE_MS));

    mqtt_broker_kill9(&broker);
    wait_log(&n, "mqtt: lost the connection", 1);
    mqtt_sub_stop();
    mqtt_broker_start(&broker);
    wait_log(&n, "mqtt: reconnected to", 1);
    /* the fresh broker had no retained state: there is one only if the node
     * published it again, answering the trigger still */
    mqtt_sub_start(&broker, "aloft/#", NULL);
    unsigned k = 0;
    cJSON *s = expect_state(&k, topic, NULL, NULL, MQTT_WAIT_MS);
    assert_true(mqtt_sub_retained(k - 1));
    assert_string_equal(e2e_jstr(s, "trigger"), "t-twice");
    cJSON_Delete(s);

    from = 0;
    s = expect_state(&from, topic, "state", "updated", 2 * UPDATE_MS);
    assert_string_equal(e2e_jstr(s, "trigger"), "t-twice");
    assert_string_equal(e2e_jstr(s, "version"), "1.1.0");
    cJSON_Delete(s);

    /* aloft trigger reconnected, and saw it through */
    int status = -1;
    uint64_t end = e2e_now_ms() + UPDATE_MS;
    while (waitpid(cli_pid, &status, WNOHANG) != cli_pid) {
        if (e2e_now_ms() > end) { /* stopped by its PID, then judged */
            kill(cli_pid, SIGKILL);
            waitpid(cli_pid, &status, 0);
            break;
        }
        e2e_sleep_ms(50);
    }
    size_t len;
    char *text = (char *)e2e_file_read(report, &len);
    cJSON *rep = cJSON_ParseWithLength(text, len);
    if (!WIFEXITED(status) || WEXITSTATUS(status) || !rep)
        fprintf(stderr, "aloft trigger --wait through a broker restart: status %#x, report:\n%.*s\n", status,
                (int)len, text);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_non_null(rep);
    const cJSON *dev = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(rep, "devices"), 0);
    assert_string_equal(e2e_jstr(dev, "device"), mac);
    assert_string_equal(e2e_jstr(dev, "outcome"), "updated");
    cJSON_Delete(rep);
    free(text);

    /* delivered once more after the update: ignored, no second update */
    wait_log(&n, "mqtt: subscribed to 2 topics", 3);
    mqtt_publish("aloft/demo/cmd", trigger, false);
    wait_log(&n, "mqtt: trigger t-twice", 3);
    e2e_sleep_ms(2000);
    assert_int_equal(e2e_log_count(&n, "restarting ("), 1);
    assert_int_equal(e2e_log_count(&n, "boot: "), 2);
    cJSON *st = e2e_status(&n);
    assert_string_equal(e2e_jstr(st, "version"), "1.1.0");
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
    cJSON_Delete(st);
    free(trigger);
    e2e_node_stop(&n);
}

/* ---- a TLS broker ---- */

static void test_tls_broker(void **state)
{
    (void)state;
    e2e_make_ca("127.0.0.1");
    mqtt_broker_init(&broker, "tls", e2e_path("srv.pem"), e2e_path("srv.key"));
    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", NULL); /* on the plain listener: the same topics */
    struct e2e_node n, wrong;
    e2e_node_init(&n, "tls");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--mqtt", broker.tls_addr,
                          "--mqtt-tls-ca", e2e_path("ca.pem"), "--device-id", "tls-dev", NULL};
    assert_int_equal(e2e_node_start(&n, args), 0);
    wait_log(&n, "mqtt: subscribed to 2 topics", 1);
    unsigned from = 0;
    cJSON_Delete(expect_state(&from, "aloft/demo/tls-dev/state", "device", "tls-dev", MQTT_WAIT_MS));
    /* aloft trigger over TLS reaches it (the platform from its retained state) */
    char *out;
    const char *trig[] = {"aloft", "trigger", "--broker", broker.tls_addr, "--tls-ca", e2e_path("ca.pem"),
                          "--device", "tls-dev", "--url", "ftp://not-http/fw.bin", NULL};
    assert_int_equal(aloft_test_run(&out, trig), 2); /* refused before connecting */
    free(out);
    trig[9] = "http://127.0.0.1:1/fw.bin";
    assert_int_equal(aloft_test_run(&out, trig), 0);
    assert_non_null(strstr(out, "to aloft/demo/tls-dev/cmd"));
    free(out);
    wait_log(&n, "mqtt: trigger ", 1);

    /* a CA that did not sign the broker's certificate: never connected */
    e2e_node_init(&wrong, "tls-wrong");
    const char *bad[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--mqtt", broker.tls_addr,
                         "--mqtt-tls-ca", e2e_path("srv.pem"), "--device-id", "tls-wrong", NULL};
    assert_int_equal(e2e_node_start(&wrong, bad), 0);
    if (!e2e_example()) /* aloft-node names its option */
        wait_log(&wrong, "is --mqtt-tls-ca the CA of the broker's certificate?", 1);
    e2e_sleep_ms(1500);
    assert_int_equal(e2e_log_count(&wrong, "mqtt: connected"), 0);
    assert_int_equal(mqtt_sub_matching("aloft/demo/tls-wrong/state", NULL, NULL), 0);
    e2e_node_stop(&n);
    e2e_node_stop(&wrong);
}

/* ---- a broker that wants a user and password ---- */

static void test_password_broker(void **state)
{
    (void)state;
    mqtt_broker_init(&broker, "auth", NULL, NULL);
    mqtt_broker_add_password(&broker, "fleet", "s3cret-pw");
    mqtt_broker_start(&broker);
    mqtt_sub_start(&broker, "aloft/#", NULL); /* anonymous, on the plain listener */
    struct e2e_node n, wrong;
    e2e_node_init(&n, "auth");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--mqtt", broker.auth_addr,
                          "--mqtt-user", "fleet", "--mqtt-password", "s3cret-pw", "--device-id", "pw-dev", NULL};
    assert_int_equal(e2e_node_start(&n, args), 0);
    wait_log(&n, "mqtt: subscribed to 2 topics", 1);
    unsigned from = 0;
    cJSON_Delete(expect_state(&from, "aloft/demo/pw-dev/state", "device", "pw-dev", MQTT_WAIT_MS));
    char *out;
    const char *trig[] = {"aloft", "trigger", "--broker", broker.auth_addr, "--user", "fleet", "--password",
                          "s3cret-pw", "--device", "pw-dev", "--platform", "demo", "--url", "http://127.0.0.1:1/fw.bin",
                          NULL};
    assert_int_equal(aloft_test_run(&out, trig), 0);
    free(out);
    wait_log(&n, "mqtt: trigger ", 1);
    trig[7] = "wrong";
    assert_int_equal(aloft_test_run(&out, trig), 1); /* the broker refuses it */
    free(out);
    assert_int_equal(e2e_log_count(&n, "mqtt: trigger "), 1);

    /* a wrong password: refused, said so, never subscribed */
    e2e_node_init(&wrong, "auth-wrong");
    const char *bad[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--mqtt", broker.auth_addr,
                         "--mqtt-user", "fleet", "--mqtt-password", "wrong", "--device-id", "pw-wrong", NULL};
    assert_int_equal(e2e_node_start(&wrong, bad), 0);
    wait_log(&wrong, "refused the connection", 1);
    assert_int_equal(e2e_log_count(&wrong, "mqtt: subscribed"), 0);
    assert_int_equal(mqtt_sub_matching("aloft/demo/pw-wrong/state", NULL, NULL), 0);
    /* the password is never logged */
    char *log = e2e_log_read(&n);
    assert_null(strstr(log, "s3cret-pw"));
    free(log);
    e2e_node_stop(&n);
    e2e_node_stop(&wrong);
}

int main(void)
{
    e2e_init(70);
    if (aloftd_on_pg() && aloftd_pg_start())
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_state_and_commands, teardown),
        cmocka_unit_test_teardown(test_tls_broker, teardown),
        cmocka_unit_test_teardown(test_password_broker, teardown),
        cmocka_unit_test_teardown(test_https_trigger, teardown),
        cmocka_unit_test_teardown(test_broker_restart_and_duplicate, teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
