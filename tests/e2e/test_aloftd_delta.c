/* Delta patches on the pull path end to end (issue 17). A real aloftd makes
 * the patch between two of its releases in the background and answers
 * /update with it only to a device that names the image it runs
 * (X-Aloft-Delta) when that image is an earlier release; every other device
 * gets the image byte for byte, and so does one whose patch is not worth
 * it. A real aloft-node pulls the patch on its scheduled check, boots the
 * new version and reports it; an MQTT trigger with delta_url and delta_base
 * gives a node on the base the patch and a node on another image the whole
 * image, and a patch whose result is not the image the trigger names
 * changes nothing. aloftd's own triggers (an operator's to one device or
 * to the platform, a rollout stage's) carry the patch from the image each
 * device named at its last check-in, once the patch is made, and nodes
 * install it. On SQLite, and on PostgreSQL (test_aloftd_delta_pg),
 * where the patch's bytes are in the database too. */
#include "aloftd_harness.h"
#include "mqtt_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hex.h"

#define WAIT_MS 30000u

static char v1[300], v2[300], v15[300], unknown[300], unrelated[300];
static char sha1[65], sha2[65], sha15[65], sha_unknown[65];
static struct mqtt_broker broker;
static bool broker_up;

static void sha_of(const char *file, char out[65])
{
    size_t n;
    uint8_t *d = e2e_file_read(file, &n);
    aloft_sha256_hex(d, n, out);
    free(d);
}

static int setup(void **state)
{
    (void)state;
    snprintf(v1, sizeof v1, "%s", e2e_path("v1.bin"));
    snprintf(v2, sizeof v2, "%s", e2e_path("v2.bin"));
    snprintf(v15, sizeof v15, "%s", e2e_path("v15.bin"));
    snprintf(unknown, sizeof unknown, "%s", e2e_path("unknown.bin"));
    snprintf(unrelated, sizeof unrelated, "%s", e2e_path("unrelated.bin"));
    e2e_image(v1, "esp32s3", "1.0.0", 300000, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 320000, NULL);
    e2e_image(v15, "esp32s3", "1.5.0", 310000, NULL);
    e2e_image(unknown, "esp32s3", "0.9.0", 300000, NULL); /* never uploaded */
    /* another project's code: nothing in common with v1 but the layout */
    const char *argv[] = {"aloft", "image", "make", "--chip", "esp32s3", "--project", "unrelated", "--version", "3.0.0",
                          "--size", "600000", "-o", unrelated, NULL};
    assert_int_equal(aloft_test_run(NULL, argv), 0);
    sha_of(v1, sha1);
    sha_of(v2, sha2);
    sha_of(v15, sha15);
    sha_of(unknown, sha_unknown);
    return 0;
}

static int teardown(void **state)
{
    if (broker_up) {
        mqtt_sub_stop();
        mqtt_broker_stop(&broker);
        broker_up = false;
    }
    return aloftd_teardown(state);
}

static void upload(struct aloftd_proc *s, const char *file, const char *query)
{
    struct e2e_http r;
    assert_int_equal(aloftd_upload(s, &r, file, query, NULL), 201);
    e2e_http_free(&r);
}

static void start_server(struct aloftd_proc *s, const char *name)
{
    aloftd_init(s, name);
    assert_int_equal(aloftd_start(s, NULL), 0);
    upload(s, v1, NULL);
}

/* GET /update as a device running ver would ask; base: the SHA-256 of its
 * image in X-Aloft-Delta (NULL: an HTTPUpdate device, which sends none). */
static int checkin(struct aloftd_proc *s, struct e2e_http *r, const char *ver, const char *base)
{
    char path[100], h[100];
    snprintf(path, sizeof path, "/update?dev=demo&ver=%s", ver);
    snprintf(h, sizeof h, "X-Aloft-Delta: %s", base ? base : "");
    const char *args[] = {"-H", "x-ESP32-STA-MAC: 24:0A:C4:0D:00:09", base ? "-H" : NULL, h, NULL};
    return aloftd_get(s, r, path, args);
}

static void expect_file(const struct e2e_http *r, const char *file)
{
    size_t n;
    uint8_t *d = e2e_file_read(file, &n);
    assert_int_equal(r->len, n);
    assert_memory_equal(r->body, d, n);
    free(d);
}

/* A 200 with the image file, as HTTPUpdate expects it. */
static void expect_image(struct e2e_http *r, int code, const char *file)
{
    assert_int_equal(code, 200);
    assert_true(e2e_http_header(r, "Content-Type", "application/octet-stream"));
    assert_null(aloftd_header_value(r, "X-Aloft-Delta-Base"));
    expect_file(r, file);
}

/* A counter of /metrics (0 when absent). */
static double metric(struct aloftd_proc *s, const char *name)
{
    struct e2e_http r;
    const char *args[] = {"-H", s->auth, NULL};
    assert_int_equal(aloftd_get(s, &r, "/metrics", args), 200);
    double v = 0;
    for (const char *line = r.body; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL)
        if (!strncmp(line, name, strlen(name)) && line[strlen(name)] == ' ')
            v = strtod(line + strlen(name) + 1, NULL);
    e2e_http_free(&r);
    return v;
}

/* Check in as a device on base (running 1.0.0) until aloftd answers with a
 * patch; every answer until then is the image byte for byte. */
static void wait_patch(struct aloftd_proc *s, const char *base, const char *image, struct e2e_http *r)
{
    uint64_t t0 = e2e_now_ms();
    while (e2e_now_ms() - t0 < WAIT_MS) {
        int code = checkin(s, r, "1.0.0", base);
        if (code == 200 && e2e_http_header(r, "Content-Type", "application/x-aloft-delta"))
            return;
        expect_image(r, code, image);
        e2e_http_free(r);
        e2e_sleep_ms(100);
    }
    fail_msg("aloftd made no patch from %s", base);
}

/* The release list's entry of version (cJSON_Delete the list). */
static const cJSON *release_of(const cJSON *list, const char *version)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(list, "releases"))
        if (!strcmp(e2e_jstr(r, "version"), version))
            return r;
    fail_msg("no release %s", version);
    return NULL;
}

/* `aloft server releases demo` lists the patch line want under its release. */
static void cli_lists(struct aloftd_proc *s, const char *want)
{
    char *out = NULL;
    const char *argv[] = {"aloft", "server", "releases", "demo", "--server", s->url, "--token", s->token, NULL};
    assert_int_equal(aloft_test_run(&out, argv), 0);
    if (!strstr(out, want))
        fail_msg("no '%s' in:\n%s", want, out);
    free(out);
}

/* Only a device that names an earlier release's image gets the patch;
 * the patch rebuilds the release exactly; an HTTPUpdate device, a device
 * on an image aloftd does not have and a malformed header do not. */
static void test_patch_only_for_a_device_on_an_earlier_release(void **state)
{
    (void)state;
    struct aloftd_proc srv;
    start_server(&srv, "offer");
    upload(&srv, v2, NULL);
    struct e2e_http r;

    assert_int_equal(checkin(&srv, &r, "1.0.0", "not-a-sha256"), 400);
    assert_string_equal(e2e_http_error(&r), "bad_header");
    e2e_http_free(&r);
    /* an HTTPUpdate device and one on an image this server never had */
    expect_image(&r, checkin(&srv, &r, "1.0.0", NULL), v2);
    e2e_http_free(&r);
    expect_image(&r, checkin(&srv, &r, "0.9.0", sha_unknown), v2);
    e2e_http_free(&r);

    wait_patch(&srv, sha1, v2, &r);
    char patch_sha[65];
    aloft_sha256_hex(r.body, r.len, patch_sha);
    char etag[70];
    snprintf(etag, sizeof etag, "\"%s\"", patch_sha);
    assert_string_equal(aloftd_header_value(&r, "ETag"), etag);
    assert_string_equal(aloftd_header_value(&r, "X-Aloft-Delta-Base"), sha1);
    assert_string_equal(aloftd_header_value(&r, "X-Aloft-Image-SHA256"), sha2);
    assert_string_equal(aloftd_header_value(&r, "X-Aloft-Image-Size"), "320000");
    assert_string_equal(aloftd_header_value(&r, "X-Aloft-Version"), "2.0.0");
    assert_true(r.len * 100 < 320000 * 80);
    size_t patch_len = r.len;
    /* the inventory says what the device was sent */
    char reason[120];
    snprintf(reason, sizeof reason, "offered 2.0.0 as a delta patch of %zu bytes", patch_len);
    cJSON *devs = aloftd_json(&srv, "/api/devices?platform=demo");
    const cJSON *dev, *me = NULL;
    cJSON_ArrayForEach(dev, cJSON_GetObjectItem(devs, "devices"))
        if (!strcmp(e2e_jstr(dev, "mac"), "24:0A:C4:0D:00:09"))
            me = dev;
    assert_non_null(me);
    assert_string_equal(e2e_jstr(me, "last_reason"), reason);
    cJSON_Delete(devs);
    const char *patch = e2e_path("offered.delta"), *out = e2e_path("rebuilt.bin");
    e2e_file_write(patch, r.body, r.len);
    e2e_http_free(&r);
    const char *apply[] = {"aloft", "delta", "apply", v1, patch, "-o", out, NULL};
    assert_int_equal(aloft_test_run(NULL, apply), 0);
    size_t n2, nr;
    uint8_t *want = e2e_file_read(v2, &n2), *got = e2e_file_read(out, &nr);
    assert_int_equal(nr, n2);
    assert_memory_equal(got, want, n2);
    free(want);
    free(got);

    /* the patch is a stored file like a release's */
    char path[100];
    snprintf(path, sizeof path, "/firmware/%s.bin", patch_sha);
    assert_int_equal(aloftd_get(&srv, &r, path, NULL), 200);
    expect_file(&r, patch);
    e2e_http_free(&r);
    if (aloftd_on_pg()) { /* and in the database, for instances without this disk */
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT COUNT(*) > 0 FROM blob_chunks WHERE sha256 = '%s'", patch_sha);
        char *res = aloftd_pg_query(srv.db, sql);
        assert_string_equal(res, "t\n");
        free(res);
    }

    /* the worker takes its queue in order: the unknown image's job was
     * done before this patch was; it is still sent the image */
    expect_image(&r, checkin(&srv, &r, "0.9.0", sha_unknown), v2);
    e2e_http_free(&r);
    expect_image(&r, checkin(&srv, &r, "1.0.0", NULL), v2);
    e2e_http_free(&r);

    cJSON *list = aloftd_json(&srv, "/api/platforms/demo/releases");
    const cJSON *deltas = cJSON_GetObjectItem(release_of(list, "2.0.0"), "deltas");
    assert_int_equal(cJSON_GetArraySize(deltas), 1); /* none from the unknown image */
    const cJSON *d = cJSON_GetArrayItem(deltas, 0);
    assert_string_equal(e2e_jstr(d, "base"), sha1);
    assert_string_equal(e2e_jstr(d, "base_version"), "1.0.0");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "worth")));
    assert_int_equal((int)e2e_jnum(d, "size"), (int)patch_len);
    assert_string_equal(e2e_jstr(d, "url"), path);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(release_of(list, "1.0.0"), "deltas")), 0);
    cJSON_Delete(list);
    char line[200];
    snprintf(line, sizeof line, "\n    delta from 1.0.0: %zu bytes, %.1f %% of the image, %s\n", patch_len,
             (double)(patch_len * 1000 / 320000) / 10, path);
    cli_lists(&srv, line);

    assert_true(metric(&srv, "aloft_delta_patches_made_total{worth=\"yes\"}") == 1);
    assert_true(metric(&srv, "aloft_delta_patches_made_total{worth=\"no\"}") == 0);
    double sent = metric(&srv, "aloft_delta_patches_sent_total");
    assert_true(sent == 1);
    assert_true(metric(&srv, "aloft_delta_bytes_saved_total") == sent * (double)(320000 - patch_len));
    assert_int_equal(aloftd_stop(&srv), 0);
}

/* A patch of 80 % of the image or more is remembered and never sent: the
 * device gets the image. */
static void test_patch_not_worth_it_sends_the_image(void **state)
{
    (void)state;
    struct aloftd_proc srv;
    start_server(&srv, "notworth");
    upload(&srv, unrelated, "?platform=demo");
    struct e2e_http r;
    uint64_t t0 = e2e_now_ms();
    while (metric(&srv, "aloft_delta_patches_made_total{worth=\"no\"}") < 1) {
        assert_true(e2e_now_ms() - t0 < WAIT_MS);
        expect_image(&r, checkin(&srv, &r, "1.0.0", sha1), unrelated);
        e2e_http_free(&r);
        e2e_sleep_ms(100);
    }
    expect_image(&r, checkin(&srv, &r, "1.0.0", sha1), unrelated);
    e2e_http_free(&r);
    assert_true(metric(&srv, "aloft_delta_patches_made_total{worth=\"yes\"}") == 0);
    assert_true(metric(&srv, "aloft_delta_patches_sent_total") == 0);
    cJSON *list = aloftd_json(&srv, "/api/platforms/demo/releases");
    const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(release_of(list, "3.0.0"), "deltas"), 0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(d, "worth")));
    assert_true(e2e_jnum(d, "percent") >= 80);
    assert_null(cJSON_GetObjectItem(d, "url"));
    cJSON_Delete(list);
    cli_lists(&srv, "\n    delta from 1.0.0: not worth it (");
    assert_int_equal(aloftd_count_files(&srv, "firmware"), 2); /* the two images, no patch */
    assert_int_equal(aloftd_stop(&srv), 0);
}

/* The node runs 2.0.0 from ota_1, which holds exactly v2. */
static void runs_v2(struct e2e_node *n)
{
    assert_int_equal(e2e_wait_state(n, "valid", WAIT_MS), 0);
    cJSON *st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "version"), "2.0.0");
    assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
    cJSON_Delete(st);
    size_t len;
    uint8_t *want = e2e_file_read(v2, &len);
    uint32_t off, size;
    e2e_part(n, "ota_1", &off, &size);
    uint8_t *got = e2e_flash_read(n, off, (uint32_t)len);
    assert_memory_equal(got, want, len);
    free(got);
    free(want);
}

static void wait_log(struct e2e_node *n, const char *needle)
{
    if (e2e_node_wait_log(n, needle, 1, WAIT_MS)) {
        char *log = e2e_log_read(n);
        fprintf(stderr, "%s: no '%s' in its log:\n%s\n", n->name, needle, log);
        free(log);
        fail();
    }
}

/* aloftd's inventory has mac's report of result for version. */
static void wait_report(struct aloftd_proc *s, const char *mac, const char *result, const char *version)
{
    uint64_t t0 = e2e_now_ms();
    while (e2e_now_ms() - t0 < WAIT_MS) {
        cJSON *all = aloftd_json(s, "/api/devices");
        const cJSON *dev, *found = NULL;
        cJSON_ArrayForEach(dev, cJSON_GetObjectItem(all, "devices"))
            if (!strcmp(e2e_jstr(dev, "mac"), mac))
                found = cJSON_GetObjectItem(dev, "report");
        bool done = cJSON_IsObject(found) && !strcmp(e2e_jstr(found, "result"), result) &&
                    !strcmp(e2e_jstr(found, "version"), version);
        cJSON_Delete(all);
        if (done)
            return;
        e2e_sleep_ms(200);
    }
    fail_msg("no report %s %s from %s", result, version, mac);
}

/* aloft-node's scheduled check says which image it runs, gets the patch,
 * decodes it into its update slot, boots 2.0.0 and reports it. */
static void test_node_pulls_a_patch_and_boots_it(void **state)
{
    (void)state;
    struct aloftd_proc srv;
    start_server(&srv, "pull");
    upload(&srv, v2, NULL);
    struct e2e_http r;
    wait_patch(&srv, sha1, v2, &r); /* made before the node asks */
    size_t patch_len = r.len;
    e2e_http_free(&r);
    const char *mac = "24:0A:C4:0D:00:01";
    char key[65];
    aloftd_credential(&srv, NULL, mac, key);
    struct e2e_node n;
    const char *args[] = {"--server", srv.url, "--check-every", "1", "--mac", mac, "--server-key", key, NULL};
    e2e_node_start_with(&n, "pull", v1, args);
    char line[120];
    snprintf(line, sizeof line, "pull: %zu bytes of patch verified into ota_1, version 2.0.0", patch_len);
    wait_log(&n, line);
    runs_v2(&n);
    wait_report(&srv, mac, "updated", "2.0.0");
    assert_true(metric(&srv, "aloft_delta_patches_sent_total") == 2); /* ours and the node's */
    e2e_node_stop(&n);
    assert_int_equal(aloftd_stop(&srv), 0);
}

/* An MQTT trigger with delta_url and delta_base: the node on the base
 * takes the patch, a node on another image the whole image; a patch whose
 * result is not the image the trigger names (sha256) changes nothing. */
static void test_mqtt_trigger_with_a_delta(void **state)
{
    (void)state;
    struct aloftd_proc srv;
    start_server(&srv, "mqtt");
    upload(&srv, v2, NULL);
    struct e2e_http r;
    wait_patch(&srv, sha1, v2, &r);
    e2e_http_free(&r);
    cJSON *list = aloftd_json(&srv, "/api/platforms/demo/releases");
    char patch_url[200];
    snprintf(patch_url, sizeof patch_url, "%s%s", srv.url,
             e2e_jstr(cJSON_GetArrayItem(cJSON_GetObjectItem(release_of(list, "2.0.0"), "deltas"), 0), "url"));
    cJSON_Delete(list);

    mqtt_broker_init(&broker, "delta", NULL, NULL);
    mqtt_broker_start(&broker);
    broker_up = true;
    mqtt_sub_start(&broker, "aloft/#", NULL);
    struct e2e_node on_base, on_other;
    const char *a1[] = {"--mqtt", broker.addr, "--mac", "24:0A:C4:0D:00:02", NULL};
    const char *a2[] = {"--mqtt", broker.addr, "--mac", "24:0A:C4:0D:00:03", NULL};
    e2e_node_start_with(&on_base, "mqtt-base", v1, a1);
    e2e_node_start_with(&on_other, "mqtt-other", v15, a2);
    unsigned from = 0;
    cJSON_Delete(mqtt_sub_wait(&from, "aloft/demo/24:0A:C4:0D:00:02/state", NULL, NULL, MQTT_WAIT_MS));
    cJSON_Delete(mqtt_sub_wait(&from, "aloft/demo/24:0A:C4:0D:00:03/state", NULL, NULL, MQTT_WAIT_MS));

    /* the patch makes 2.0.0, not the image the trigger names */
    uint32_t off, size;
    e2e_part(&on_base, "ota_0", &off, &size);
    uint8_t *run = e2e_flash_read(&on_base, off, size);
    uint8_t *od = e2e_flash_read(&on_base, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    char msg[1200];
    snprintf(msg, sizeof msg,
             "{\"type\":\"ota_trigger\",\"url\":\"%s/firmware/%s.bin\",\"id\":\"t-wrong\",\"sha256\":\"%s\","
             "\"delta_url\":\"%s\",\"delta_base\":\"%s\"}",
             srv.url, sha15, sha15, patch_url, sha1);
    mqtt_publish("aloft/demo/24:0A:C4:0D:00:02/cmd", msg, false);
    cJSON *s = mqtt_sub_wait(&from, "aloft/demo/24:0A:C4:0D:00:02/state", "state", "failed", MQTT_WAIT_MS);
    assert_non_null(s);
    assert_string_equal(e2e_jstr(s, "code"), "bad_sha256");
    cJSON_Delete(s);
    uint8_t *run_now = e2e_flash_read(&on_base, off, size);
    uint8_t *od_now = e2e_flash_read(&on_base, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    assert_memory_equal(run_now, run, size);
    assert_memory_equal(od_now, od, E2E_OTADATA_SIZE);
    free(run);
    free(od);
    free(run_now);
    free(od_now);
    cJSON *st = e2e_status(&on_base);
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    cJSON_Delete(st);

    /* a patch that is not from the image its trigger says (and the node
     * runs) is refused before anything is erased: not even the update slot */
    e2e_part(&on_other, "ota_1", &off, &size);
    uint8_t *slot = e2e_flash_read(&on_other, off, size);
    od = e2e_flash_read(&on_other, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    snprintf(msg, sizeof msg,
             "{\"type\":\"ota_trigger\",\"url\":\"%s/firmware/%s.bin\",\"id\":\"t-base\","
             "\"delta_url\":\"%s\",\"delta_base\":\"%s\"}",
             srv.url, sha2, patch_url, sha15);
    mqtt_publish("aloft/demo/24:0A:C4:0D:00:03/cmd", msg, false);
    s = mqtt_sub_wait(&from, "aloft/demo/24:0A:C4:0D:00:03/state", "state", "failed", MQTT_WAIT_MS);
    assert_non_null(s);
    assert_string_equal(e2e_jstr(s, "code"), "wrong_base");
    cJSON_Delete(s);
    uint8_t *slot_now = e2e_flash_read(&on_other, off, size);
    od_now = e2e_flash_read(&on_other, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    assert_memory_equal(slot_now, slot, size);
    assert_memory_equal(od_now, od, E2E_OTADATA_SIZE);
    free(slot);
    free(slot_now);
    free(od);
    free(od_now);

    snprintf(msg, sizeof msg,
             "{\"type\":\"ota_trigger\",\"url\":\"%s/firmware/%s.bin\",\"id\":\"t-delta\",\"version\":\"2.0.0\","
             "\"sha256\":\"%s\",\"size\":320000,\"delta_url\":\"%s\",\"delta_base\":\"%s\"}",
             srv.url, sha2, sha2, patch_url, sha1);
    mqtt_publish("aloft/demo/cmd", msg, false);
    wait_log(&on_base, "bytes of patch verified into ota_1, version 2.0.0");
    wait_log(&on_other, "pull: 320000 bytes verified into ota_1, version 2.0.0");
    assert_int_equal(e2e_log_count(&on_other, "of patch"), 0);
    runs_v2(&on_base);
    runs_v2(&on_other);
    e2e_node_stop(&on_base);
    e2e_node_stop(&on_other);
    assert_int_equal(aloftd_stop(&srv), 0);
}

/* A node on firmware that checks once at boot and takes MQTT triggers;
 * returns once aloftd answered its check (it runs the current release). */
static void start_checking_node(struct aloftd_proc *s, struct e2e_node *n, const char *name, const char *firmware,
                                const char *mac, char key[65])
{
    aloftd_credential(s, NULL, mac, key);
    const char *args[] = {"--server", s->url, "--mqtt", broker.addr, "--mac", mac, "--server-key", key, NULL};
    e2e_node_start_with(n, name, firmware, args);
    wait_log(n, "answered 304 (nothing to do)");
}

/* POST /api/platforms/demo/trigger with body: the "trigger" aloftd
 * published (cJSON_Delete it). */
static cJSON *trigger(struct aloftd_proc *s, const char *body)
{
    struct e2e_http r;
    assert_int_equal(aloftd_admin_post(s, &r, "/api/platforms/demo/trigger", body), 200);
    cJSON *j = cJSON_Parse(r.body);
    e2e_http_free(&r);
    cJSON *t = cJSON_DetachItemFromObject(j, "trigger");
    cJSON_Delete(j);
    assert_non_null(t);
    return t;
}

/* The trigger carries no patch. */
static void no_patch(const cJSON *t)
{
    assert_null(cJSON_GetObjectItem(t, "delta_url"));
    assert_null(cJSON_GetObjectItem(t, "delta_base"));
    assert_string_equal(e2e_jstr(t, "sha256"), sha2);
}

/* The trigger carries the patch from base, as aloftd serves it. */
static void carries_patch(struct aloftd_proc *s, const cJSON *t, const char *base, const char *patch_url)
{
    assert_string_equal(e2e_jstr(t, "delta_base"), base);
    assert_string_equal(e2e_jstr(t, "delta_url"), patch_url);
    assert_string_equal(e2e_jstr(t, "sha256"), sha2);
    assert_string_equal(e2e_jstr(t, "version"), "2.0.0");
    (void)s;
}

/* aloftd's own triggers carry the patch from the image each device said
 * it runs when it checked in: a trigger to one device (once the patch is
 * made: the first trigger asks for it and sends the image), a rollout
 * stage's per-device triggers, and a platform's trigger (from the most
 * common image that has a patch); a device on an image aloftd makes no
 * patch from gets the image. The nodes install what they were sent. */
static void test_aloftd_triggers_carry_the_patch(void **state)
{
    (void)state;
    mqtt_broker_init(&broker, "dtrig", NULL, NULL);
    mqtt_broker_start(&broker);
    broker_up = true;
    mqtt_sub_start(&broker, "aloft/+/+/cmd", "aloft/+/cmd");
    struct aloftd_proc srv;
    aloftd_init(&srv, "trig");
    const char *mqtt[] = {"--mqtt", broker.addr, NULL};
    assert_int_equal(aloftd_start(&srv, mqtt), 0);
    upload(&srv, v1, NULL);
    uint64_t t0 = e2e_now_ms();
    for (;;) {
        char *log = aloftd_log_read(&srv);
        bool up = strstr(log, "mqtt: connected to ") != NULL;
        free(log);
        if (up)
            break;
        assert_true(e2e_now_ms() - t0 < WAIT_MS);
        e2e_sleep_ms(50);
    }

    /* the rollout made below is the database's first (id 1): a MAC in its 50 % share */
    char in_share[18] = "";
    for (unsigned i = 0x10; !in_share[0]; i++) {
        char mac[18];
        snprintf(mac, sizeof mac, "24:0A:C4:0E:00:%02X", i);
        if (aloftd_bucket(1, mac) < 50)
            memcpy(in_share, mac, sizeof mac);
    }
    const char *mac_first = "24:0A:C4:0E:01:01", *mac_patch = "24:0A:C4:0E:01:02", *mac_other = "24:0A:C4:0E:01:03";
    char key[65];
    struct e2e_node first, patched, rolled, other;
    start_checking_node(&srv, &first, "trig-first", v1, mac_first, key);
    start_checking_node(&srv, &patched, "trig-patch", v1, mac_patch, key);
    start_checking_node(&srv, &rolled, "trig-rollout", v1, in_share, key);
    start_checking_node(&srv, &other, "trig-other", v15, mac_other, key); /* 1.5.0: never a release here */
    upload(&srv, v2, NULL);

    /* an image aloftd has no release of: no patch, ever; the whole image */
    char body[200];
    snprintf(body, sizeof body, "{\"device\": \"%s\"}", mac_other);
    cJSON *t = trigger(&srv, body);
    no_patch(t);
    cJSON_Delete(t);
    wait_log(&other, "pull: 320000 bytes verified into ota_1, version 2.0.0");
    runs_v2(&other);

    /* on release 1.0.0, before the patch is made: the image, and the patch is asked for */
    snprintf(body, sizeof body, "{\"device\": \"%s\", \"version\": \"2.0.0\"}", mac_first);
    t = trigger(&srv, body);
    no_patch(t);
    cJSON_Delete(t);
    wait_log(&first, "pull: 320000 bytes verified into ota_1, version 2.0.0");
    runs_v2(&first);
    assert_int_equal(e2e_log_count(&first, "of patch"), 0);
    assert_int_equal(e2e_log_count(&other, "of patch"), 0);

    /* aloftd makes it in the background */
    char patch_url[200] = "";
    t0 = e2e_now_ms();
    while (!patch_url[0]) {
        assert_true(e2e_now_ms() - t0 < WAIT_MS);
        cJSON *list = aloftd_json(&srv, "/api/platforms/demo/releases");
        const cJSON *d = cJSON_GetArrayItem(cJSON_GetObjectItem(release_of(list, "2.0.0"), "deltas"), 0);
        if (d) {
            assert_string_equal(e2e_jstr(d, "base"), sha1);
            assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "worth")));
            snprintf(patch_url, sizeof patch_url, "%s%s", srv.url, e2e_jstr(d, "url"));
        }
        cJSON_Delete(list);
        if (!patch_url[0])
            e2e_sleep_ms(100);
    }

    /* a device trigger with the patch: the node installs the patch */
    snprintf(body, sizeof body, "{\"device\": \"%s\"}", mac_patch);
    t = trigger(&srv, body);
    carries_patch(&srv, t, sha1, patch_url);
    cJSON_Delete(t);
    wait_log(&patched, "bytes of patch verified into ota_1, version 2.0.0");
    runs_v2(&patched);
    assert_int_equal(e2e_log_count(&patched, "pull: 320000 bytes verified"), 0);

    /* a rollout's stage: its devices' triggers carry the patch too */
    struct e2e_http r;
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/demo/rollouts",
                                       "{\"version\": \"2.0.0\", \"stages\": [50, 100]}"),
                     201);
    cJSON *ro = cJSON_Parse(r.body);
    e2e_http_free(&r);
    assert_true(e2e_jnum(ro, "id") == 1);
    cJSON_Delete(ro);
    char topic[80];
    snprintf(topic, sizeof topic, "aloft/demo/%s/cmd", in_share);
    unsigned from = 0;
    t = mqtt_sub_wait(&from, topic, "delta_base", sha1, MQTT_WAIT_MS);
    assert_non_null(t);
    carries_patch(&srv, t, sha1, patch_url);
    cJSON_Delete(t);
    wait_log(&rolled, "bytes of patch verified into ota_1, version 2.0.0");
    runs_v2(&rolled);

    /* a platform's trigger: one message, with the patch from the most
     * common image that has one (two devices on an image aloftd has no
     * release of are more, and those on 2.0.0 more still) */
    const char *fakes[][2] = {{"24:0A:C4:0E:02:01", sha_unknown}, {"24:0A:C4:0E:02:02", sha_unknown},
                              {"24:0A:C4:0E:02:03", sha1}};
    for (size_t i = 0; i < 3; i++) {
        char path[100], h_mac[60], h_delta[100];
        snprintf(path, sizeof path, "/update?dev=demo&ver=%s", fakes[i][1] == sha1 ? "1.0.0" : "0.9.0");
        snprintf(h_mac, sizeof h_mac, "x-ESP32-STA-MAC: %s", fakes[i][0]);
        snprintf(h_delta, sizeof h_delta, "X-Aloft-Delta: %s", fakes[i][1]);
        const char *args[] = {"-H", h_mac, "-H", h_delta, NULL};
        int code = aloftd_get(&srv, &r, path, args); /* offered or not (the rollout decides): recorded */
        assert_true(code == 200 || code == 304);
        e2e_http_free(&r);
    }
    /* a frontend check-in says nothing of the running image: the last one's stays */
    const char *spiffs[] = {"-H", "x-ESP32-STA-MAC: 24:0A:C4:0E:02:03", "-H", "x-ESP32-mode: spiffs", NULL};
    assert_int_equal(aloftd_get(&srv, &r, "/update?dev=demo&ver=1.0.0", spiffs), 404); /* no frontend release */
    e2e_http_free(&r);
    t = trigger(&srv, "{}");
    carries_patch(&srv, t, sha1, patch_url);
    cJSON_Delete(t);
    t = mqtt_sub_wait(&from, "aloft/demo/cmd", "delta_base", sha1, MQTT_WAIT_MS);
    assert_non_null(t);
    cJSON_Delete(t);

    e2e_node_stop(&first);
    e2e_node_stop(&patched);
    e2e_node_stop(&rolled);
    e2e_node_stop(&other);
    assert_int_equal(aloftd_stop(&srv), 0);
}

int main(void)
{
    e2e_init(183);
    if (aloftd_db_init("aloftd delta tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_patch_only_for_a_device_on_an_earlier_release, teardown),
        cmocka_unit_test_teardown(test_patch_not_worth_it_sends_the_image, teardown),
        cmocka_unit_test_teardown(test_node_pulls_a_patch_and_boots_it, teardown),
        cmocka_unit_test_teardown(test_mqtt_trigger_with_a_delta, teardown),
        cmocka_unit_test_teardown(test_aloftd_triggers_carry_the_patch, teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
