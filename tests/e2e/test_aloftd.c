/* aloftd end to end: the real server on loopback, its database in a
 * temporary directory, curl as the client. Every decision of GET /update with the
 * exact HTTPUpdate headers, the kstobbe server's defects as regressions, the
 * two real ESP-IDF releases, pin and downgrade, Range and resume, admin
 * authentication and token rotation, refused uploads that store nothing, path traversal,
 * frontends, restarts and concurrent uploads.
 *
 * The suite runs twice (CTest: test_aloftd, test_aloftd_pg): on SQLite and,
 * with ALOFT_TEST_DB=postgres, on a PostgreSQL server the harness starts;
 * that run adds servers sharing one database and a database outage. */
#include "aloftd_harness.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloft/image.h"
#include "image_make.h"
#include "littlefs.h"
#include "hex.h"

#define FIX_043 "esp-idf/esp32s3-csi-node-v0.4.3.bin"
#define FIX_064 "esp-idf/esp32s3-csi-node-v0.6.4.bin"
#define VER_043 "v0.4.3.1-esp32-3-g66e2fa083-dir"
#define SHA_043 "286617dd13ad846af1794ba55408f7563f7bb474572a6c3ada8cf92f18232acb"
#define SHA_064 "0066d74d35b0dbca9bbb930db99768ff37b3bff9d027c7aee15b330f3d6ea477"
#define MAC1 "24:0A:C4:00:00:01"

static struct aloftd_proc srv;

static bool contains(const uint8_t *hay, size_t n, const char *needle)
{
    size_t m = strlen(needle);
    for (size_t i = 0; i + m <= n; i++)
        if (!memcmp(hay + i, needle, m))
            return true;
    return false;
}

/* The real fixtures, copied into the test directory (curl uploads files). */
static const char *fixture_file(const char *rel, const char *name)
{
    size_t len;
    uint8_t *data = aloft_test_fixture(rel, &len);
    const char *path = e2e_path(name);
    e2e_file_write(path, data, len);
    free(data);
    return path;
}

/* A synthesised image: project, version, chip; size 0 for the natural one. */
static const char *make_image(const char *name, const char *project, const char *version, const char *chip,
                              uint32_t size)
{
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id(chip), .project = project, .version = version,
                                      .size = size};
    uint8_t *img;
    size_t len;
    assert_int_equal(aloft_image_make(&o, &img, &len), 0);
    const char *path = e2e_path(name);
    e2e_file_write(path, img, len);
    free(img);
    return path;
}

static int start(const char *name, const char *const args[])
{
    aloftd_init(&srv, name);
    int rc = aloftd_start(&srv, args);
    assert_int_equal(rc, 0);
    assert_int_equal(strlen(srv.token), 64);
    return rc;
}

/* Upload and expect a status; returns the release object (cJSON_Delete the
 * whole reply with *reply). */
static const cJSON *upload_expect(const char *file, const char *query, int want, cJSON **reply)
{
    struct e2e_http r;
    int code = aloftd_upload(&srv, &r, file, query, NULL);
    if (code != want)
        fprintf(stderr, "upload %s%s: %d (want %d): %s\n", file, query ? query : "", code, want, r.body);
    assert_int_equal(code, want);
    *reply = cJSON_Parse(r.body);
    e2e_http_free(&r);
    assert_non_null(*reply);
    return cJSON_GetObjectItemCaseSensitive(*reply, "release");
}

static void upload_ok(const char *file, const char *query)
{
    cJSON *reply;
    upload_expect(file, query, 201, &reply);
    cJSON_Delete(reply);
}

/* A refused upload: status and error code. */
static void upload_refused(const char *file, const char *query, int want, const char *error)
{
    struct e2e_http r;
    const char *expect[] = {"-H", "Expect: 100-continue", NULL}; /* no body is sent before an early refusal */
    int code = aloftd_upload(&srv, &r, file, query, expect);
    if (code != want || strcmp(e2e_http_error(&r), error))
        fprintf(stderr, "upload %s%s: %d %s (want %d %s): %s\n", file, query ? query : "", code, e2e_http_error(&r),
                want, error, r.body);
    assert_int_equal(code, want);
    assert_string_equal(e2e_http_error(&r), error);
    e2e_http_free(&r);
}

/* GET /update?<query> with the headers an ESP32's HTTPUpdate sends. mac,
 * free_space, md5 and mode may be NULL (header not sent). */
static int device_update(struct e2e_http *r, const char *query, const char *mac, const char *free_space,
                         const char *md5, const char *mode, const char *const more[])
{
    char path[400], h_mac[80], h_free[80], h_md5[80], h_mode[80];
    snprintf(path, sizeof path, "/update?%s", query);
    const char *args[40] = {"-H", "User-Agent: ESP32-http-Update", "-H", "Cache-Control: no-cache",
                            "-H", "x-ESP32-AP-MAC: 24:0A:C4:00:00:FF", "-H", "x-ESP32-chip-size: 8388608",
                            "-H", "x-ESP32-sdk-version: v4.4.7-dirty", "-H", "x-ESP32-sketch-size: 990480"};
    size_t k = 12;
    snprintf(h_mac, sizeof h_mac, "x-ESP32-STA-MAC: %s", mac ? mac : "");
    snprintf(h_free, sizeof h_free, "x-ESP32-free-space: %s", free_space ? free_space : "");
    snprintf(h_md5, sizeof h_md5, "x-ESP32-sketch-md5: %s", md5 ? md5 : "");
    snprintf(h_mode, sizeof h_mode, "x-ESP32-mode: %s", mode ? mode : "");
    const char *given[] = {mac ? h_mac : NULL, free_space ? h_free : NULL, md5 ? h_md5 : NULL, mode ? h_mode : NULL};
    for (size_t i = 0; i < 4; i++) {
        if (!given[i])
            continue;
        args[k++] = "-H";
        args[k++] = given[i];
    }
    for (size_t i = 0; more && more[i]; i++)
        args[k++] = more[i];
    args[k] = NULL;
    return aloftd_get(&srv, r, path, args);
}

/* 200 with exactly the bytes of file and HTTPUpdate's headers. */
static void expect_offer(struct e2e_http *r, const char *file)
{
    bool app = !strstr(file, "www");
    size_t len;
    uint8_t *want = e2e_file_read(file, &len);
    char md5[33], cl[32];
    aloft_test_md5_hex(want, len, md5);
    snprintf(cl, sizeof cl, "%zu", len);
    if (r->code != 200)
        fprintf(stderr, "want 200, got %d: %s\n%s\n", r->code, r->headers, r->body);
    assert_int_equal(r->code, 200);
    assert_true(strncmp(r->headers, "HTTP/1.1 200", 12) == 0 || strncmp(r->headers, "HTTP/1.0 200", 12) == 0);
    assert_string_equal(aloftd_header_value(r, "Content-Type"), "application/octet-stream");
    assert_string_equal(aloftd_header_value(r, "Content-Length"), cl);
    assert_string_equal(aloftd_header_value(r, "x-MD5"), md5);
    assert_null(aloftd_header_value(r, "Transfer-Encoding")); /* never chunked */
    assert_int_equal(r->len, len);
    assert_memory_equal(r->body, want, len);
    if (app) /* the device refuses anything else */
        assert_int_equal((uint8_t)r->body[0], 0xE9);
    free(want);
}

static void expect_304(struct e2e_http *r, const char *reason)
{
    if (r->code != 304)
        fprintf(stderr, "want 304, got %d: %s\n%s\n", r->code, r->headers, r->body);
    assert_int_equal(r->code, 304);
    assert_int_equal(r->len, 0);
    const char *why = aloftd_header_value(r, "X-Aloft-Reason");
    assert_non_null(why);
    if (!strstr(why, reason))
        fprintf(stderr, "reason '%s' lacks '%s'\n", why, reason);
    assert_non_null(strstr(why, reason));
}

static void expect_error(struct e2e_http *r, int code, const char *error)
{
    if (r->code != code || strcmp(e2e_http_error(r), error))
        fprintf(stderr, "want %d %s, got %d: %s\n", code, error, r->code, r->body);
    assert_int_equal(r->code, code);
    assert_string_equal(e2e_http_error(r), error);
}

static cJSON *find_device(cJSON *devices, const char *mac)
{
    cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(devices, "devices"))
        if (!strcmp(e2e_jstr(d, "mac"), mac))
            return d;
    fprintf(stderr, "no device %s\n", mac);
    fail();
    return NULL;
}

/* Both real releases identified from their descriptors; a device on the
 * old one is offered the new one, and never the reverse, whatever the
 * upload order. */
static void test_real_fixtures(void **state)
{
    (void)state;
    start("fixtures", NULL);
    const char *f043 = fixture_file(FIX_043, "v043.bin"), *f064 = fixture_file(FIX_064, "v064.bin");

    cJSON *reply;
    const cJSON *rel = upload_expect(f064, NULL, 201, &reply); /* the newer one first */
    assert_string_equal(e2e_jstr(rel, "platform"), "esp32-csi-node");
    assert_string_equal(e2e_jstr(rel, "project"), "esp32-csi-node");
    assert_string_equal(e2e_jstr(rel, "chip"), "esp32s3");
    assert_string_equal(e2e_jstr(rel, "version"), "0.6.4");
    assert_string_equal(e2e_jstr(rel, "sha256"), SHA_064);
    assert_int_equal(e2e_jnum(rel, "size"), 1088608);
    assert_int_equal(e2e_jnum(rel, "secure_version"), 0);
    cJSON_Delete(reply);
    rel = upload_expect(f043, NULL, 201, &reply);
    assert_string_equal(e2e_jstr(rel, "platform"), "esp32-csi-node");
    assert_string_equal(e2e_jstr(rel, "chip"), "esp32s3");
    assert_string_equal(e2e_jstr(rel, "version"), VER_043);
    assert_string_equal(e2e_jstr(rel, "sha256"), SHA_043);
    assert_int_equal(e2e_jnum(rel, "size"), 990480);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(rel, "current")));
    cJSON_Delete(reply);

    /* same bytes again: idempotent */
    rel = upload_expect(f064, NULL, 200, &reply);
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "created")));
    assert_string_equal(e2e_jstr(rel, "version"), "0.6.4");
    cJSON_Delete(reply);

    cJSON *p = aloftd_json(&srv, "/api/platforms");
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "platforms");
    assert_int_equal(cJSON_GetArraySize(list), 1);
    const cJSON *p0 = cJSON_GetArrayItem(list, 0);
    assert_string_equal(e2e_jstr(p0, "name"), "esp32-csi-node");
    assert_string_equal(e2e_jstr(p0, "chip"), "esp32s3");
    assert_string_equal(e2e_jstr(p0, "current"), "0.6.4");
    assert_int_equal(e2e_jnum(p0, "releases"), 2);
    cJSON_Delete(p);

    cJSON *h = aloftd_json(&srv, "/api/platforms/esp32-csi-node/releases");
    assert_string_equal(e2e_jstr(h, "current"), "0.6.4");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(h, "pinned")));
    const cJSON *rels = cJSON_GetObjectItemCaseSensitive(h, "releases");
    assert_int_equal(cJSON_GetArraySize(rels), 2);
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(rels, 0), "version"), VER_043); /* newest upload first */
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rels, 0), "current")));
    assert_string_equal(e2e_jstr(cJSON_GetArrayItem(rels, 1), "version"), "0.6.4");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(rels, 1), "current")));
    cJSON_Delete(h);

    size_t len;
    uint8_t *old = e2e_file_read(f043, &len);
    char md5_043[33];
    aloft_test_md5_hex(old, len, md5_043);
    free(old);
    struct e2e_http r;
    device_update(&r, "dev=esp32-csi-node&ver=" VER_043, MAC1, "1900544", md5_043, "sketch", NULL);
    expect_offer(&r, f064);
    e2e_http_free(&r);
    device_update(&r, "dev=esp32-csi-node&ver=0.6.4", "24:0A:C4:00:00:02", "1900544", NULL, "sketch", NULL);
    expect_304(&r, "runs the current release 0.6.4");
    e2e_http_free(&r);
    device_update(&r, "dev=ESP32-CSI-NODE&ver=v0.6.4", "24:0A:C4:00:00:02", NULL, NULL, NULL, NULL);
    expect_304(&r, "runs the current release 0.6.4"); /* platform case-insensitive, leading v */
    e2e_http_free(&r);
}

/* Every decision of /update on synthesised releases of one platform. */
static void test_update_decisions(void **state)
{
    (void)state;
    start("decisions", NULL);
    const char *v100 = make_image("d-1.0.0.bin", "demo", "1.0.0", "esp32s3", 0);
    const char *v110 = make_image("d-1.1.0.bin", "demo", "1.1.0", "esp32s3", 0);
    upload_ok(v100, NULL);
    upload_ok(v110, NULL);
    size_t len;
    uint8_t *img = e2e_file_read(v110, &len);
    char md5_110[33], fits[24], tight[24];
    aloft_test_md5_hex(img, len, md5_110);
    free(img);
    snprintf(fits, sizeof fits, "%zu", len);
    snprintf(tight, sizeof tight, "%zu", len - 1);

    struct e2e_http r;
    /* missing or empty parameters: 400, never a crash */
    static const char *const missing[] = {"ver=1.0.0", "dev=demo", "dev=&ver=1.0.0", "dev=demo&ver=", "", "dev&ver"};
    for (size_t i = 0; i < sizeof missing / sizeof missing[0]; i++) {
        device_update(&r, missing[i], MAC1, NULL, NULL, NULL, NULL);
        expect_error(&r, 400, "missing_parameter");
        e2e_http_free(&r);
    }
    device_update(&r, "dev=nosuch&ver=1.0.0", MAC1, NULL, NULL, NULL, NULL);
    expect_error(&r, 404, "unknown_platform");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, "spiffs", NULL);
    expect_error(&r, 404, "no_release"); /* no frontend yet */
    e2e_http_free(&r);

    /* older: offered, with HTTPUpdate's headers */
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, fits, NULL, "sketch", NULL);
    expect_offer(&r, v110);
    e2e_http_free(&r);
    device_update(&r, "dev=Demo&ver=v1.1.0-rc.1", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, v110);
    e2e_http_free(&r);
    const char *http10[] = {"--http1.0", NULL}; /* HTTP/1.0 devices: still Content-Length */
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, NULL, http10);
    expect_offer(&r, v110);
    e2e_http_free(&r);

    /* nothing to do */
    device_update(&r, "dev=demo&ver=1.1.0", MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "runs the current release 1.1.0");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=v1.1.0", MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "runs the current release 1.1.0");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=2.0.0", MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "newer than the current release");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=nightly", MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "not assumed older");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, tight, NULL, NULL, NULL);
    expect_304(&r, "does not fit");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, md5_110, NULL, NULL); /* it runs these bytes */
    expect_304(&r, "same MD5");
    e2e_http_free(&r);

    /* malformed headers */
    device_update(&r, "dev=demo&ver=1.0.0", "24:0A:C4:00:00", NULL, NULL, NULL, NULL);
    expect_error(&r, 400, "bad_header");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, "lots", NULL, NULL, NULL);
    expect_error(&r, 400, "bad_header");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, "flash", NULL);
    expect_error(&r, 400, "bad_header");
    e2e_http_free(&r);
    static const char *const bad_params[] = {"dev=demo&ver=1.0.0%0d%0aX-Injected:%201", "dev=de%01mo&ver=1.0.0",
                                             "dev=demo&ver=12345678901234567890123456789012345678901234567890123456789012345"};
    for (size_t i = 0; i < sizeof bad_params / sizeof bad_params[0]; i++) {
        device_update(&r, bad_params[i], MAC1, NULL, NULL, NULL, NULL);
        expect_error(&r, 400, "bad_parameter");
        assert_null(aloftd_header_value(&r, "X-Injected"));
        e2e_http_free(&r);
    }
    const char *post[] = {"-X", "POST", NULL};
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, NULL, post);
    expect_error(&r, 405, "method_not_allowed");
    e2e_http_free(&r);

    /* the inventory: one device, every answered check-in counted */
    const char *esp8266[] = {"-H", "x-ESP8266-STA-MAC: 5c:cf:7f:00:00:09", "-H", "x-ESP8266-free-space: 4096",
                             "--interface", "127.0.5.9", NULL};
    device_update(&r, "dev=demo&ver=1.0.0", NULL, NULL, NULL, NULL, esp8266);
    expect_304(&r, "does not fit");
    e2e_http_free(&r);
    cJSON *devs = aloftd_json(&srv, "/api/devices");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(devs, "devices")), 2);
    cJSON *d1 = find_device(devs, MAC1);
    assert_string_equal(e2e_jstr(d1, "platform"), "demo");
    assert_string_equal(e2e_jstr(d1, "version"), "1.0.0");
    assert_string_equal(e2e_jstr(d1, "mode"), "sketch");
    assert_string_equal(e2e_jstr(d1, "sdk_version"), "v4.4.7-dirty");
    assert_int_equal(e2e_jnum(d1, "sketch_size"), 990480);
    assert_int_equal(e2e_jnum(d1, "checkins"), 10); /* 404 no_release, 3 offers, 6 not modified */
    assert_int_equal(e2e_jnum(d1, "last_status"), 304);
    assert_non_null(strstr(e2e_jstr(d1, "last_reason"), "same MD5"));
    assert_true(e2e_jstr(d1, "first_seen")[0] != 0);
    cJSON *d2 = find_device(devs, "5C:CF:7F:00:00:09");
    assert_string_equal(e2e_jstr(d2, "ip"), "127.0.5.9");
    assert_int_equal(e2e_jnum(d2, "free_space"), 4096);
    assert_int_equal(e2e_jnum(d2, "checkins"), 1);
    cJSON_Delete(devs);
    devs = aloftd_json(&srv, "/api/devices?platform=DEMO");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(devs, "devices")), 2);
    cJSON_Delete(devs);
    assert_int_equal(aloftd_admin_get(&srv, &r, "/api/devices?platform=nosuch"), 404);
    e2e_http_free(&r);
}

/* Pinning an older release is how a downgrade is done; unpinning returns
 * to the newest. */
static void test_pin_downgrade(void **state)
{
    (void)state;
    start("pin", NULL);
    const char *f043 = fixture_file(FIX_043, "pin-043.bin"), *f064 = fixture_file(FIX_064, "pin-064.bin");
    upload_ok(f043, NULL);
    upload_ok(f064, NULL);
    struct e2e_http r;
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/esp32-csi-node/pin", "{\"version\":\"" VER_043 "\"}"),
                     200);
    cJSON *j = cJSON_Parse(r.body);
    assert_string_equal(e2e_jstr(j, "current"), VER_043);
    assert_string_equal(e2e_jstr(j, "pinned"), VER_043);
    cJSON_Delete(j);
    e2e_http_free(&r);

    device_update(&r, "dev=esp32-csi-node&ver=0.6.4", MAC1, "1900544", NULL, NULL, NULL);
    expect_offer(&r, f043); /* the downgrade */
    e2e_http_free(&r);
    device_update(&r, "dev=esp32-csi-node&ver=" VER_043, MAC1, "1900544", NULL, NULL, NULL);
    expect_304(&r, "runs the current release");
    e2e_http_free(&r);
    device_update(&r, "dev=esp32-csi-node&ver=nightly", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, f043); /* pinned: whatever else runs gets the pin */
    e2e_http_free(&r);
    cJSON *h = aloftd_json(&srv, "/api/platforms/esp32-csi-node/releases");
    assert_string_equal(e2e_jstr(h, "current"), VER_043);
    assert_string_equal(e2e_jstr(h, "pinned"), VER_043);
    cJSON_Delete(h);

    /* refusals */
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/esp32-csi-node/pin", "{\"version\":\"9.9.9\"}"), 404);
    assert_string_equal(e2e_http_error(&r), "unknown_version");
    e2e_http_free(&r);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/esp32-csi-node/pin", "{}"), 400);
    e2e_http_free(&r);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/esp32-csi-node/pin", "not json"), 400);
    assert_string_equal(e2e_http_error(&r), "bad_json");
    e2e_http_free(&r);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/nosuch/pin", "{\"version\":\"0.6.4\"}"), 404);
    assert_string_equal(e2e_http_error(&r), "unknown_platform");
    e2e_http_free(&r);

    /* unpin: back to the newest, no downgrade */
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/esp32-csi-node/unpin", "{}"), 200);
    j = cJSON_Parse(r.body);
    assert_string_equal(e2e_jstr(j, "current"), "0.6.4");
    assert_true(cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "pinned")));
    cJSON_Delete(j);
    e2e_http_free(&r);
    device_update(&r, "dev=esp32-csi-node&ver=0.6.4", MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "runs the current release 0.6.4");
    e2e_http_free(&r);
    device_update(&r, "dev=esp32-csi-node&ver=" VER_043, MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, f064);
    e2e_http_free(&r);
}

/* Rewrite bytes inside segment 1's data and reseal the image (checksum and
 * appended SHA-256), so that it is valid and carries those strings. */
static void plant_strings(uint8_t *img, size_t len, const char *text, size_t text_len)
{
    struct aloft_image_verifier v;
    aloft_image_begin(&v, ALOFT_CHIP_ANY, 0);
    assert_int_equal(aloft_image_feed(&v, img, len), 0);
    assert_int_equal(aloft_image_end(&v), 0);
    const struct aloft_image_info *in = &v.info;
    assert_true(in->hash_appended);
    assert_true(in->seg_len[1] >= text_len + 64);
    uint32_t at = in->seg_offset[1] + 32, chk = in->image_len - 33;
    assert_int_equal(img[chk], in->checksum);
    for (size_t i = 0; i < text_len; i++) {
        img[chk] ^= img[at + i] ^ (uint8_t)text[i];
        img[at + i] = (uint8_t)text[i];
    }
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, img, in->image_len - 32);
    aloft_sha256_final(&s, img + in->image_len - 32);
    aloft_image_begin(&v, ALOFT_CHIP_ANY, 0);
    assert_int_equal(aloft_image_feed(&v, img, len), 0);
    assert_int_equal(aloft_image_end(&v), 0);
}

/* The seed's server found platform and version by grepping the binary: an
 * SDK's version string or another platform's name in the data fooled it,
 * so devices re-downloaded forever. It also crashed on empty input. */
static void test_kstobbe_regressions(void **state)
{
    (void)state;
    start("kstobbe", NULL);
    const char *beta = make_image("beta-2.0.0.bin", "beta", "2.0.0", "esp32", 0);
    upload_ok(beta, NULL);

    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32"), .project = "alpha", .version = "1.0.0"};
    uint8_t *img;
    size_t len;
    assert_int_equal(aloft_image_make(&o, &img, &len), 0);
    static const char planted[] = "v9.9.9\0esp-idf v5.1.2-dirty\0beta\0BETA v2.0.0\0gamma";
    plant_strings(img, len, planted, sizeof planted);
    const char *alpha = e2e_path("alpha-1.0.0.bin");
    e2e_file_write(alpha, img, len);
    free(img);

    cJSON *reply;
    const cJSON *rel = upload_expect(alpha, NULL, 201, &reply);
    assert_string_equal(e2e_jstr(rel, "platform"), "alpha");
    assert_string_equal(e2e_jstr(rel, "version"), "1.0.0");
    assert_string_equal(e2e_jstr(rel, "chip"), "esp32");
    cJSON_Delete(reply);
    cJSON *p = aloftd_json(&srv, "/api/platforms/beta");
    assert_string_equal(e2e_jstr(p, "current"), "2.0.0");
    assert_int_equal(e2e_jnum(p, "releases"), 1);
    cJSON_Delete(p);

    /* a device on the current version is not sent it again */
    struct e2e_http r;
    for (int i = 0; i < 3; i++) {
        device_update(&r, "dev=alpha&ver=1.0.0", MAC1, NULL, NULL, NULL, NULL);
        expect_304(&r, "runs the current release 1.0.0");
        e2e_http_free(&r);
    }
    /* the real fixture carries an SDK-like version string of its own */
    upload_ok(fixture_file(FIX_043, "k-043.bin"), NULL);
    device_update(&r, "dev=esp32-csi-node&ver=" VER_043, MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "runs the current release " VER_043);
    e2e_http_free(&r);

    /* empty platform, empty data: answers, no crash */
    device_update(&r, "dev=&ver=", MAC1, NULL, NULL, NULL, NULL);
    expect_error(&r, 400, "missing_parameter");
    e2e_http_free(&r);
    const char *empty = e2e_path("empty.bin");
    e2e_file_write(empty, "", 0);
    upload_refused(empty, NULL, 400, "empty");
    const char *a[] = {"-H", srv.auth, "-X", "POST", "-H", "Content-Length: 0", NULL};
    assert_int_equal(aloftd_get(&srv, &r, "/api/firmware", a), 400);
    e2e_http_free(&r);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/alpha/pin", ""), 400);
    e2e_http_free(&r);
    p = aloftd_json(&srv, "/api/platforms");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "platforms")), 3);
    cJSON_Delete(p);
    assert_true(srv.pid > 0 && kill(srv.pid, 0) == 0);
}

/* GET/HEAD /firmware/<sha256>.bin: ETag, Range, a resumed download. */
static void test_download_range(void **state)
{
    (void)state;
    start("range", NULL);
    const char *f064 = fixture_file(FIX_064, "r-064.bin");
    upload_ok(f064, NULL);
    size_t len;
    uint8_t *want = e2e_file_read(f064, &len);
    const char *path = "/firmware/" SHA_064 ".bin";
    const char *etag = "\"" SHA_064 "\"";

    struct e2e_http r;
    assert_int_equal(aloftd_get(&srv, &r, path, NULL), 200);
    assert_int_equal(r.len, len);
    assert_memory_equal(r.body, want, len);
    assert_string_equal(aloftd_header_value(&r, "ETag"), etag);
    assert_string_equal(aloftd_header_value(&r, "Accept-Ranges"), "bytes");
    assert_string_equal(aloftd_header_value(&r, "Content-Length"), "1088608");
    e2e_http_free(&r);

    const char *head[] = {"-I", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, head), 200);
    assert_int_equal(r.len, strlen(r.headers)); /* curl -I writes the headers as the output: no body came */
    assert_string_equal(aloftd_header_value(&r, "Content-Length"), "1088608");
    e2e_http_free(&r);

    /* an interrupted download, resumed from where it stopped */
    const char *slow[] = {"--limit-rate", "2M", "--max-time", "0.2", NULL};
    aloftd_get(&srv, &r, path, slow);
    size_t got = r.len;
    uint8_t *joined = malloc(len);
    memcpy(joined, r.body, got);
    e2e_http_free(&r);
    assert_true(got <= len);
    if (got < len) {
        char range[64];
        snprintf(range, sizeof range, "Range: bytes=%zu-", got);
        const char *resume[] = {"-H", range, NULL};
        assert_int_equal(aloftd_get(&srv, &r, path, resume), 206);
        char cr[80];
        snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", got, len - 1, len);
        assert_string_equal(aloftd_header_value(&r, "Content-Range"), cr);
        assert_int_equal(r.len, len - got);
        memcpy(joined + got, r.body, r.len);
        e2e_http_free(&r);
    }
    assert_memory_equal(joined, want, len);

    /* the same split at a fixed point, and the other range forms */
    const char *first[] = {"-r", "0-544303", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, first), 206);
    assert_string_equal(aloftd_header_value(&r, "Content-Range"), "bytes 0-544303/1088608");
    assert_int_equal(r.len, 544304);
    memcpy(joined, r.body, r.len);
    e2e_http_free(&r);
    const char *rest[] = {"-r", "544304-", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, rest), 206);
    assert_int_equal(r.len, len - 544304);
    memcpy(joined + 544304, r.body, r.len);
    e2e_http_free(&r);
    assert_memory_equal(joined, want, len);
    free(joined);

    const char *suffix[] = {"-H", "Range: bytes=-100", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, suffix), 206);
    assert_int_equal(r.len, 100);
    assert_memory_equal(r.body, want + len - 100, 100);
    e2e_http_free(&r);
    const char *past_end[] = {"-H", "Range: bytes=0-99999999", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, past_end), 206);
    assert_int_equal(r.len, len);
    e2e_http_free(&r);
    const char *beyond[] = {"-H", "Range: bytes=1088608-", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, beyond), 416);
    assert_string_equal(aloftd_header_value(&r, "Content-Range"), "bytes */1088608");
    e2e_http_free(&r);
    const char *multi[] = {"-H", "Range: bytes=0-1,5-6", NULL}; /* one range only: the whole file */
    assert_int_equal(aloftd_get(&srv, &r, path, multi), 200);
    assert_int_equal(r.len, len);
    e2e_http_free(&r);
    const char *garbage[] = {"-H", "Range: pages=1-2", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, garbage), 200);
    e2e_http_free(&r);
    const char *stale[] = {"-H", "Range: bytes=10-19", "-H", "If-Range: \"0000\"", NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, stale), 200);
    assert_int_equal(r.len, len);
    e2e_http_free(&r);
    char if_range[100];
    snprintf(if_range, sizeof if_range, "If-Range: %s", etag);
    const char *fresh[] = {"-H", "Range: bytes=10-19", "-H", if_range, NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, fresh), 206);
    assert_memory_equal(r.body, want + 10, 10);
    e2e_http_free(&r);
    char inm[100];
    snprintf(inm, sizeof inm, "If-None-Match: %s", etag);
    const char *cached[] = {"-H", inm, NULL};
    assert_int_equal(aloftd_get(&srv, &r, path, cached), 304);
    assert_int_equal(r.len, 0);
    e2e_http_free(&r);
    free(want);

    assert_int_equal(aloftd_get(&srv, &r, "/firmware/" SHA_043 ".bin", NULL), 404); /* not stored */
    e2e_http_free(&r);
}

/* No path reaches outside firmware/, and nothing unrecorded is served. */
static void test_path_traversal(void **state)
{
    (void)state;
    start("traversal", NULL);
    upload_ok(make_image("t-1.0.0.bin", "demo", "1.0.0", "esp32c3", 0), NULL);
    static const char *const paths[] = {
        "/firmware/../aloft.db",
        "/firmware/..%2faloft.db",
        "/firmware/%2e%2e/aloft.db",
        "/firmware/%2e%2e%2faloft.db",
        "/firmware/../../../../etc/passwd",
        "/firmware/..",
        "/firmware/",
        "/firmware/aloft.db",
        "/firmware/" SHA_064 ".bin/../../aloft.db",
        "/firmware/" SHA_064 "/../../aloft.db",
        "/firmware/0066D74D35B0DBCA9BBB930DB99768FF37B3BFF9D027C7AEE15B330F3D6EA477.bin",
        "/firmware//etc/passwd",
        "/../aloft.db",
        "/aloft.db",
        "/tmp/",
    };
    const char *raw[] = {"--path-as-is", NULL};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        struct e2e_http r;
        int code = aloftd_get(&srv, &r, paths[i], raw);
        if (code != 404)
            fprintf(stderr, "%s: %d %s\n", paths[i], code, r.body);
        assert_int_equal(code, 404);
        assert_null(strstr(r.body, "SQLite format"));
        assert_null(strstr(r.body, "root:"));
        e2e_http_free(&r);
    }
}

/* Admin calls need the admin token; only its SHA-256 is stored. */
static void test_admin_auth(void **state)
{
    (void)state;
    const char *token_file = e2e_path("auth-token");
    const char *args[] = {"--admin-token-file", token_file, NULL};
    start("auth", args);
    size_t len;
    uint8_t *saved = e2e_file_read(token_file, &len);
    assert_int_equal(len, 65);
    assert_memory_equal(saved, srv.token, 64);
    free(saved);
    struct stat st;
    assert_int_equal(stat(token_file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    const char *v1 = make_image("auth-1.0.0.bin", "demo", "1.0.0", "esp32s3", 0);
    char wrong[200], longer[200], lower_scheme[200];
    snprintf(wrong, sizeof wrong, "Authorization: Bearer %.63s0", srv.token);
    if (srv.token[63] == '0')
        snprintf(wrong, sizeof wrong, "Authorization: Bearer %.63s1", srv.token);
    snprintf(longer, sizeof longer, "Authorization: Bearer %sx", srv.token);
    snprintf(lower_scheme, sizeof lower_scheme, "authorization: bearer %s", srv.token);
    const char *const bad[] = {NULL, wrong, longer, "Authorization: Bearer ", "Authorization: Basic YWRtaW46YWRtaW4=",
                               "Authorization: Bearer x"};
    static const char *const gets[] = {"/api/platforms", "/api/devices", "/api/platforms/demo/releases",
                                       "/api/platforms/demo", "/api/nosuch"};
    char data[400];
    snprintf(data, sizeof data, "@%s", v1);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct e2e_http r;
        const char *h[] = {"-H", bad[i], NULL};
        const char *const *hdr = bad[i] ? h : NULL;
        for (size_t g = 0; g < sizeof gets / sizeof gets[0]; g++) {
            assert_int_equal(aloftd_get(&srv, &r, gets[g], hdr), 401);
            assert_string_equal(e2e_http_error(&r), "unauthorized");
            assert_non_null(aloftd_header_value(&r, "WWW-Authenticate"));
            e2e_http_free(&r);
        }
        const char *up[] = {"-H", bad[i] ? bad[i] : "X-None: 1", "-H", "Expect: 100-continue", "-H",
                            "Content-Type: application/octet-stream", "--data-binary", data, NULL};
        assert_int_equal(aloftd_get(&srv, &r, "/api/firmware", up), 401);
        e2e_http_free(&r);
        const char *pin[] = {"-H", bad[i] ? bad[i] : "X-None: 1", "--data-binary", "{\"version\":\"1.0.0\"}", NULL};
        assert_int_equal(aloftd_get(&srv, &r, "/api/platforms/demo/pin", pin), 401);
        e2e_http_free(&r);
    }
    assert_int_equal(aloftd_count_files(&srv, "firmware"), 0); /* nothing was stored */
    assert_int_equal(aloftd_count_files(&srv, "tmp"), 0);

    /* what a page of another site makes a browser send is refused, the
     * right token included: an upload, a pin, a device report */
    char right[200], own[120];
    snprintf(right, sizeof right, "Authorization: Bearer %s", srv.token);
    static const char *const foreign[] = {"Origin: http://attacker.example", "Origin: null",
                                          "Sec-Fetch-Site: cross-site"};
    for (size_t i = 0; i < sizeof foreign / sizeof foreign[0]; i++) {
        struct e2e_http r;
        const char *up[] = {"-H", right, "-H", foreign[i], "-H", "Content-Type: application/octet-stream",
                            "--data-binary", data, NULL};
        assert_int_equal(aloftd_get(&srv, &r, "/api/firmware", up), 403);
        assert_string_equal(e2e_http_error(&r), "cross_site");
        e2e_http_free(&r);
        const char *pin[] = {"-H", right, "-H", foreign[i], "--data-binary", "{\"version\":\"1.0.0\"}", NULL};
        assert_int_equal(aloftd_get(&srv, &r, "/api/platforms/demo/pin", pin), 403);
        e2e_http_free(&r);
        const char *rep[] = {"-H", foreign[i], "-H", "Content-Type: application/json", "--data-binary",
                             "{\"version\":\"1.0.0\",\"result\":\"rolled_back\"}", NULL};
        assert_int_equal(aloftd_get(&srv, &r, "/api/devices/24:0A:C4:00:00:99/report", rep), 403);
        e2e_http_free(&r);
    }
    assert_int_equal(aloftd_count_files(&srv, "firmware"), 0);

    struct e2e_http r;
    /* the admin UI's own origin is fine */
    snprintf(own, sizeof own, "Origin: %s", srv.url);
    const char *same[] = {"-H", right, "-H", own, NULL};
    assert_int_equal(aloftd_get(&srv, &r, "/api/platforms", same), 200);
    e2e_http_free(&r);
    const char *ok[] = {"-H", lower_scheme, NULL};
    assert_int_equal(aloftd_get(&srv, &r, "/api/platforms", ok), 200);
    e2e_http_free(&r);
    upload_ok(v1, NULL);

    /* a restart prints no token and keeps accepting the stored one */
    assert_int_equal(aloftd_stop(&srv), 0);
    assert_int_equal(aloftd_start(&srv, args), 0);
    char *log = aloftd_log_read(&srv);
    const char *first = strstr(log, "admin token (");
    assert_non_null(first);
    assert_null(strstr(first + 1, "admin token ("));
    free(log);
    assert_int_equal(aloftd_admin_get(&srv, &r, "/api/platforms/demo"), 200);
    e2e_http_free(&r);

    /* the database holds the token's hash, never the token */
    assert_int_equal(aloftd_stop(&srv), 0);
    char db[400], hash[65];
    snprintf(db, sizeof db, "%s/aloft.db", srv.data);
    uint8_t *bytes = aloftd_on_pg() ? (uint8_t *)aloftd_pg_query(srv.db, "SELECT * FROM admin_tokens")
                                    : e2e_file_read(db, &len);
    if (aloftd_on_pg())
        len = strlen((char *)bytes);
    aloft_sha256_hex(srv.token, 64, hash);
    assert_false(contains(bytes, len, srv.token));
    assert_true(contains(bytes, len, hash));
    free(bytes);

    /* an operator's token from a file is accepted, and printed nowhere */
    struct aloftd_proc other;
    aloftd_init(&other, "auth-file");
    const char *mine = e2e_path("my-token");
    e2e_file_write(mine, "operator-chosen-token-0123456789\n", 33);
    const char *args2[] = {"--admin-token-file", mine, NULL};
    assert_int_equal(aloftd_start(&other, args2), 0);
    assert_string_equal(other.token, "");
    log = aloftd_log_read(&other);
    assert_null(strstr(log, "operator-chosen"));
    free(log);
    const char *op[] = {"-H", "Authorization: Bearer operator-chosen-token-0123456789", NULL};
    assert_int_equal(aloftd_get(&other, &r, "/api/platforms", op), 200);
    e2e_http_free(&r);
    assert_int_equal(aloftd_stop(&other), 0);
    e2e_file_write(mine, "short\n", 6);
    assert_int_equal(aloftd_start(&other, args2), -1); /* too short to be a token */
}

/* aloftd --rotate-admin-token against the database: its output in *out. */
static int rotate(char **out, const char *token_file)
{
    const char *argv[] = {"aloftd", "--data", srv.data, "--admin-token-file", token_file, "--rotate-admin-token", NULL};
    if (srv.db[0])
        setenv("ALOFT_DB", srv.db, 1);
    int rc = aloft_test_run(out, argv);
    unsetenv("ALOFT_DB");
    return rc;
}

static int admin_status(const char *token)
{
    char auth[200];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *h[] = {"-H", auth, NULL};
    struct e2e_http r;
    int status = aloftd_get(&srv, &r, "/api/platforms", h);
    e2e_http_free(&r);
    return status;
}

/* A rotation makes a new token and refuses every earlier one, at once on a
 * running server; one that fails changes nothing. */
static void test_rotate_token(void **state)
{
    (void)state;
    const char *token_file = e2e_path("rotate-token");
    const char *args[] = {"--admin-token-file", token_file, NULL};
    start("rotate", args);
    char old[sizeof srv.token];
    snprintf(old, sizeof old, "%s", srv.token);
    assert_int_equal(admin_status(old), 200);

    char *out;
    assert_int_equal(rotate(&out, token_file), 0);
    assert_non_null(strstr(out, "admin token rotated"));
    size_t len;
    char *now = (char *)e2e_file_read(token_file, &len);
    assert_int_equal(len, 65);
    now[64] = 0;
    assert_non_null(strstr(out, now)); /* printed once, and written to the file */
    assert_string_not_equal(now, old);
    free(out);
    struct stat st;
    assert_int_equal(stat(token_file, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(admin_status(old), 401);
    assert_int_equal(admin_status(now), 200);

    /* a token file that cannot be written: nothing changes */
    assert_int_equal(rotate(&out, e2e_path("no-such-dir/token")), 1);
    free(out);
    assert_int_equal(admin_status(now), 200);

    /* a restart with the file accepts the rotated token and prints none */
    assert_int_equal(aloftd_stop(&srv), 0);
    assert_int_equal(aloftd_start(&srv, args), 0);
    assert_int_equal(admin_status(now), 200);
    assert_int_equal(admin_status(old), 401);
    free(now);
}

/* Refused uploads say why and leave nothing behind. */
static void test_upload_refusals(void **state)
{
    (void)state;
    const char *args[] = {"--max-upload", "160K", NULL};
    start("refusals", args);
    const char *big = make_image("big.bin", "demo", "1.0.0", "esp32s3", 161 * 1024);
    upload_refused(big, NULL, 413, "too_large");

    const char *junk = e2e_path("junk.bin");
    uint8_t buf[4096];
    aloft_test_fill(buf, sizeof buf, 7);
    buf[0] = 0x12; /* not the 0xE9 magic, not the ESP8266's 0xEA */
    e2e_file_write(junk, buf, sizeof buf);
    upload_refused(junk, NULL, 400, "not_an_image");
    buf[0] = 0xEA;
    const char *e8266 = e2e_path("esp8266.bin");
    e2e_file_write(e8266, buf, sizeof buf);
    upload_refused(e8266, NULL, 400, "esp8266_image");

    size_t len;
    const char *good = make_image("good.bin", "demo", "1.0.0", "esp32s3", 0);
    uint8_t *img = e2e_file_read(good, &len);
    img[len / 2] ^= 0x01;
    const char *corrupt = e2e_path("corrupt.bin");
    e2e_file_write(corrupt, img, len);
    img[len / 2] ^= 0x01;
    upload_refused(corrupt, NULL, 400, "bad_checksum");
    img[len - 1] ^= 0x80; /* the appended SHA-256 */
    e2e_file_write(corrupt, img, len);
    img[len - 1] ^= 0x80;
    upload_refused(corrupt, NULL, 400, "bad_sha256");
    e2e_file_write(corrupt, img, len - 100);
    upload_refused(corrupt, NULL, 400, "truncated");
    free(img);
    upload_refused(fixture_file("esp-idf/esp32c3-elf2image-no-desc.bin", "nodesc.bin"), NULL, 400,
                   "no_app_descriptor");
    upload_refused(fixture_file("esp-idf/esp32s3-bootloader.bin", "boot.bin"), NULL, 400, "no_app_descriptor");
    upload_refused(good, "?kind=bogus", 400, "bad_parameter");
    upload_refused(good, "?platform=../../etc", 400, "bad_parameter");
    upload_refused(good, "?version=2.0.0", 400, "bad_parameter");

    struct e2e_http r;
    char data[400];
    snprintf(data, sizeof data, "@%s", good);
    const char *chunked[] = {"-H", srv.auth, "-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue",
                             "--data-binary", data, NULL};
    assert_int_equal(aloftd_get(&srv, &r, "/api/firmware", chunked), 411);
    e2e_http_free(&r);
    char form[400];
    snprintf(form, sizeof form, "fw=@%s", good);
    const char *multipart[] = {"-H", srv.auth, "-H", "Expect: 100-continue", "-F", form, NULL};
    assert_int_equal(aloftd_get(&srv, &r, "/api/firmware", multipart), 415);
    e2e_http_free(&r);

    assert_int_equal(aloftd_count_files(&srv, "firmware"), 0);
    assert_int_equal(aloftd_count_files(&srv, "tmp"), 0);
    cJSON *p = aloftd_json(&srv, "/api/platforms");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(p, "platforms")), 0);
    cJSON_Delete(p);

    /* conflicts with what is stored: refused before the file is kept */
    upload_ok(good, NULL);
    const char *rebuilt = make_image("rebuilt.bin", "demo", "1.0.0", "esp32s3", 80 * 1024); /* same version, other bytes */
    upload_refused(rebuilt, NULL, 409, "version_exists");
    const char *c3 = make_image("c3.bin", "demo", "1.1.0", "esp32c3", 0);
    upload_refused(c3, NULL, 409, "chip_mismatch");
    upload_ok(c3, "?platform=demo-c3"); /* another platform for the other chip */
    assert_int_equal(aloftd_count_files(&srv, "firmware"), 2);
    assert_int_equal(aloftd_count_files(&srv, "tmp"), 0);
    cJSON *h = aloftd_json(&srv, "/api/platforms/demo/releases");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(h, "releases")), 1);
    cJSON_Delete(h);
}

/* A LittleFS frontend per platform, served for x-ESP32-mode: spiffs. */
static void test_frontend(void **state)
{
    (void)state;
    start("frontend", NULL);
    const char *site = e2e_path("site");
    assert_int_equal(mkdir(site, 0755), 0);
    char index[400];
    snprintf(index, sizeof index, "%s/index.html", site);
    e2e_file_write(index, "<h1>aloft</h1>\n", 15);
    uint8_t *img;
    size_t len;
    struct aloft_lfs_mkfs_err err;
    assert_int_equal(aloft_lfs_mkfs(site, 64 * 1024, 4096, ALOFT_LFS_VERSION_2_1, &img, &len, &err), 0);
    const char *www = e2e_path("www.bin");
    e2e_file_write(www, img, len);
    char sha[65];
    aloft_sha256_hex(img, len, sha);
    free(img);

    upload_refused(www, "?kind=frontend", 400, "missing_parameter");
    upload_refused(www, "?kind=frontend&platform=demo", 404, "unknown_platform");
    upload_ok(make_image("f-1.0.0.bin", "demo", "1.0.0", "esp32s3", 0), NULL);
    const char *junk = e2e_path("not-lfs.bin");
    uint8_t buf[8192];
    aloft_test_fill(buf, sizeof buf, 3);
    e2e_file_write(junk, buf, sizeof buf);
    upload_refused(junk, "?kind=frontend&platform=demo", 400, "not_littlefs");

    struct e2e_http r;
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, "spiffs", NULL);
    expect_error(&r, 404, "no_release");
    e2e_http_free(&r);
    cJSON *reply;
    const cJSON *rel = upload_expect(www, "?kind=frontend&platform=demo&version=web-1", 201, &reply);
    assert_string_equal(e2e_jstr(rel, "kind"), "frontend");
    assert_string_equal(e2e_jstr(rel, "version"), "web-1");
    assert_string_equal(e2e_jstr(rel, "sha256"), sha);
    cJSON_Delete(reply);

    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, "spiffs", NULL);
    expect_offer(&r, www);
    e2e_http_free(&r);
    const char *has[] = {"-H", "x-ESP32-version: web-1", NULL};
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, "spiffs", has);
    expect_304(&r, "has the current frontend web-1");
    e2e_http_free(&r);
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, "sketch", NULL); /* firmware is separate */
    expect_304(&r, "runs the current release 1.0.0");
    e2e_http_free(&r);
    cJSON *p = aloftd_json(&srv, "/api/platforms/demo");
    assert_string_equal(e2e_jstr(p, "current_frontend"), "web-1");
    assert_string_equal(e2e_jstr(p, "current"), "1.0.0");
    cJSON_Delete(p);
    cJSON *h = aloftd_json(&srv, "/api/platforms/demo/releases?kind=frontend");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(h, "releases")), 1);
    cJSON_Delete(h);
}

/* Everything survives a restart; an upload a crash left in tmp/ is
 * dropped; a file without a database record is never served. */
static void test_restart(void **state)
{
    (void)state;
    start("restart", NULL);
    const char *v1 = make_image("rs-1.0.0.bin", "demo", "1.0.0", "esp32s3", 0);
    const char *v2 = make_image("rs-1.1.0.bin", "demo", "1.1.0", "esp32s3", 0);
    upload_ok(v1, NULL);
    upload_ok(v2, NULL);
    assert_int_equal(aloftd_stop(&srv), 0);

    char leftover[400], receiving[400], orphan[400];
    snprintf(leftover, sizeof leftover, "%s/tmp/upload-Xy12Zq", srv.data);
    e2e_file_write(leftover, "half an image", 13);
    snprintf(receiving, sizeof receiving, "%s/tmp/upload-Ab34Cd", srv.data);
    if (aloftd_on_pg()) { /* a shared data directory: only stale uploads are another run's leftovers */
        struct timeval old[2] = {{.tv_sec = time(NULL) - 7200}, {.tv_sec = time(NULL) - 7200}};
        assert_int_equal(utimes(leftover, old), 0);
        e2e_file_write(receiving, "another aloftd's upload", 23);
    }
    const char *fake_sha = "1111111111111111111111111111111111111111111111111111111111111111";
    snprintf(orphan, sizeof orphan, "%s/firmware/%s.bin", srv.data, fake_sha);
    e2e_file_write(orphan, "not recorded", 12);

    assert_int_equal(aloftd_start(&srv, NULL), 0);
    assert_int_equal(access(leftover, F_OK), -1);
    if (aloftd_on_pg()) {
        assert_int_equal(access(receiving, F_OK), 0);
        assert_int_equal(unlink(receiving), 0);
    }
    char *log = aloftd_log_read(&srv);
    assert_null(strstr(strstr(log, "stopping") ? strstr(log, "stopping") : log, "admin token ("));
    free(log);
    struct e2e_http r;
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, v2);
    e2e_http_free(&r);
    char path[100];
    snprintf(path, sizeof path, "/firmware/%s.bin", fake_sha);
    assert_int_equal(aloftd_get(&srv, &r, path, NULL), 404);
    e2e_http_free(&r);
    cJSON *h = aloftd_json(&srv, "/api/platforms/demo/releases");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(h, "releases")), 2);
    assert_string_equal(e2e_jstr(h, "current"), "1.1.0");
    cJSON_Delete(h);
}

/* The same bytes uploaded four times at once: one release, one file. */
static void test_concurrent_uploads(void **state)
{
    (void)state;
    start("concurrent", NULL);
    const char *f064 = fixture_file(FIX_064, "c-064.bin");
    char data[400], url[200];
    snprintf(data, sizeof data, "@%s", f064);
    snprintf(url, sizeof url, "%s/api/firmware", srv.url);
    const char *args[] = {"-H", srv.auth, "-H", "Content-Type: application/octet-stream", "--data-binary", data, url,
                          NULL};
    struct e2e_curl_job jobs[4];
    for (int i = 0; i < 4; i++)
        e2e_curl_start(&jobs[i], args);
    int created = 0;
    for (int i = 0; i < 4; i++) {
        struct e2e_http r;
        int code = e2e_curl_wait(&jobs[i], &r);
        assert_true(code == 201 || code == 200);
        created += code == 201;
        e2e_http_free(&r);
    }
    assert_int_equal(created, 1);
    assert_int_equal(aloftd_count_files(&srv, "firmware"), 1);
    assert_int_equal(aloftd_count_files(&srv, "tmp"), 0);
    cJSON *h = aloftd_json(&srv, "/api/platforms/esp32-csi-node/releases");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(h, "releases")), 1);
    cJSON_Delete(h);
}

/* Settings: flags win over ALOFT_* variables, which win over defaults. */
static void test_settings(void **state)
{
    (void)state;
    char db[400], shown[400];
    if (aloftd_on_pg()) { /* with a password (trust accepts any): never logged */
        char url[300];
        aloftd_pg_create("settings-env", url, sizeof url);
        const char *at = strchr(url, '@');
        snprintf(db, sizeof db, "%.*s:hunter2%s", (int)(at - url), url, at);
        snprintf(shown, sizeof shown, "%.*s:***%s", (int)(at - url), url, at);
    } else {
        snprintf(db, sizeof db, "sqlite:%s/env.db", e2e_dir());
        snprintf(shown, sizeof shown, "%s", db);
    }
    setenv("ALOFT_DB", db, 1);
    setenv("ALOFT_LISTEN", "203.0.113.1:1", 1); /* --listen (the harness's) wins */
    setenv("ALOFT_DATA", "/nonexistent/aloft", 1); /* --data wins */
    setenv("ALOFT_MAX_UPLOAD", "16K", 1);
    aloftd_init(&srv, "settings");
    int rc = aloftd_start(&srv, NULL);
    unsetenv("ALOFT_DB");
    unsetenv("ALOFT_LISTEN");
    unsetenv("ALOFT_DATA");
    unsetenv("ALOFT_MAX_UPLOAD");
    assert_int_equal(rc, 0);
    char *log = aloftd_log_read(&srv);
    char want[500];
    snprintf(want, sizeof want, "database %s (schema 12)", shown);
    assert_non_null(strstr(log, want));
    assert_null(strstr(log, "hunter2"));
    free(log);
    upload_refused(make_image("s-1.0.0.bin", "demo", "1.0.0", "esp32s3", 0), NULL, 413, "too_large");
    assert_int_equal(aloftd_stop(&srv), 0);

    const char *flag[] = {"--max-upload", "1M", NULL}; /* the flag over the variable */
    setenv("ALOFT_MAX_UPLOAD", "16K", 1);
    rc = aloftd_start(&srv, flag);
    unsetenv("ALOFT_MAX_UPLOAD");
    assert_int_equal(rc, 0);
    upload_ok(e2e_path("s-1.0.0.bin"), NULL);

    char *out = NULL;
    const char *help[] = {"aloftd", "--help", NULL};
    assert_int_equal(aloft_test_run(&out, help), 0);
    assert_non_null(strstr(out, "--admin-token-file"));
    free(out);
    const char *bad[] = {"aloftd", "--no-such-flag", NULL};
    assert_int_equal(aloft_test_run(NULL, bad), 2);
    char data[400];
    snprintf(data, sizeof data, "%s/pg", e2e_dir());
    const char *pg[] = {"aloftd", "--data", data, "--db", "postgres://aloft@127.0.0.1:1/aloft", NULL};
    assert_int_equal(aloft_test_run(NULL, pg), 1); /* nothing listens there: said so, exit 1 */
    const char *scheme[] = {"aloftd", "--data", data, "--db", "mysql://127.0.0.1/aloft", NULL};
    assert_int_equal(aloft_test_run(NULL, scheme), 1);
}

/* aloft server ...: the admin API from the command line. */
static int cli(char **out, const char *const words[])
{
    const char *argv[32] = {"aloft", "server"};
    size_t k = 2;
    for (size_t i = 0; words[i]; i++)
        argv[k++] = words[i];
    argv[k++] = "--server";
    argv[k++] = srv.url;
    argv[k] = NULL;
    return aloft_test_run(out, argv);
}

static void test_cli(void **state)
{
    (void)state;
    const char *token_file = e2e_path("cli-token");
    const char *args[] = {"--admin-token-file", token_file, NULL};
    start("cli", args);
    const char *f043 = fixture_file(FIX_043, "cli-043.bin"), *f064 = fixture_file(FIX_064, "cli-064.bin");
    char *out;
    const char *up[] = {"upload", f064, "--token-file", token_file, NULL};
    assert_int_equal(cli(&out, up), 0);
    assert_non_null(strstr(out, "stored esp32-csi-node firmware 0.6.4: 1088608 bytes, sha256 " SHA_064 " (current)"));
    free(out);
    assert_int_equal(cli(&out, up), 0);
    assert_non_null(strstr(out, "already stored esp32-csi-node firmware 0.6.4"));
    free(out);
    setenv("ALOFT_TOKEN", srv.token, 1); /* the token from the environment from here on */
    const char *up2[] = {"upload", f043, NULL};
    assert_int_equal(cli(&out, up2), 0);
    free(out);

    const char *all[] = {"releases", NULL};
    assert_int_equal(cli(&out, all), 0);
    assert_non_null(strstr(out, "esp32-csi-node"));
    assert_non_null(strstr(out, "esp32s3"));
    free(out);
    const char *hist[] = {"releases", "esp32-csi-node", NULL};
    assert_int_equal(cli(&out, hist), 0);
    assert_non_null(strstr(out, "current 0.6.4"));
    assert_non_null(strstr(out, "* 0.6.4"));
    assert_non_null(strstr(out, "  " VER_043));
    free(out);
    const char *pin[] = {"pin", "esp32-csi-node", VER_043, NULL};
    assert_int_equal(cli(&out, pin), 0);
    assert_non_null(strstr(out, "current " VER_043 " (pinned)"));
    free(out);
    struct e2e_http r;
    device_update(&r, "dev=esp32-csi-node&ver=0.6.4", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, f043);
    e2e_http_free(&r);
    const char *unpin[] = {"unpin", "esp32-csi-node", "--json", NULL};
    assert_int_equal(cli(&out, unpin), 0);
    cJSON *j = cJSON_Parse(out);
    assert_string_equal(e2e_jstr(j, "current"), "0.6.4");
    cJSON_Delete(j);
    free(out);
    const char *devs[] = {"devices", "esp32-csi-node", NULL};
    assert_int_equal(cli(&out, devs), 0);
    assert_non_null(strstr(out, MAC1));
    assert_non_null(strstr(out, "offered " VER_043 " (pinned)"));
    free(out);

    /* refusals: the server's reason, exit 1; usage errors, exit 2 */
    const char *nosuch[] = {"releases", "nosuch", NULL};
    assert_int_equal(cli(NULL, nosuch), 1);
    const char *junk[] = {"upload", token_file, NULL};
    assert_int_equal(cli(NULL, junk), 1);
    const char *usage[] = {"pin", "esp32-csi-node", NULL};
    assert_int_equal(cli(NULL, usage), 2);
    setenv("ALOFT_TOKEN", "not-the-token-0123456789", 1);
    assert_int_equal(cli(NULL, all), 1);
    unsetenv("ALOFT_TOKEN");
    assert_int_equal(cli(NULL, all), 1); /* no token at all */
}

/* The platform's current and pinned firmware, as GET /api/platforms/pub says. */
static void expect_platform(const char *current, const char *pinned)
{
    cJSON *p = aloftd_json(&srv, "/api/platforms/pub");
    assert_string_equal(e2e_jstr(p, "current"), current);
    assert_string_equal(e2e_jstr(p, "pinned"), pinned);
    cJSON_Delete(p);
}

/* A platform created before its first upload, publishing by hand: its
 * signing policy holds for the very first upload; an upload is stored and
 * offered to nobody until pinned or rolled out; auto serves the newest
 * again, and turning manual on freezes what is served. */
static void test_publish_manual(void **state)
{
    (void)state;
    start("publish", NULL);
    setenv("ALOFT_TOKEN", srv.token, 1);
    char *out;
    const char *add[] = {"platform", "add", "pub", "--chip", "esp32c3", "--publish", "manual", NULL};
    assert_int_equal(cli(&out, add), 0);
    assert_non_null(strstr(out, "platform pub (esp32c3, 0 firmware releases, 0 devices)"));
    assert_non_null(strstr(out, "firmware  none offered"));
    assert_non_null(strstr(out, "publish   manual"));
    free(out);
    assert_int_equal(cli(NULL, add), 1); /* it exists: 409 */
    const char *bad_chip[] = {"platform", "add", "pub2", "--chip", "esp33", NULL};
    assert_int_equal(cli(NULL, bad_chip), 1);
    const char *no_chip[] = {"platform", "add", "pub2", NULL};
    assert_int_equal(cli(NULL, no_chip), 2);
    struct e2e_http r;
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms", "{\"name\":\"../x\",\"chip\":\"esp32c3\"}"), 400);
    e2e_http_free(&r);

    /* the signing policy holds for the first upload */
    const char *v1 = make_image("pub-1.bin", "pub", "1.0.0", "esp32c3", 0);
    char key[128];
    snprintf(key, sizeof key, "{\"add\":[\"%s\"]}", SHA_064);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/pub/signing", key), 200);
    e2e_http_free(&r);
    upload_refused(v1, NULL, 422, "unsigned");
    snprintf(key, sizeof key, "{\"remove\":[\"%s\"]}", SHA_064);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/pub/signing", key), 200);
    e2e_http_free(&r);

    /* manual: stored, offered to nobody; unpinning would serve nothing */
    cJSON *reply;
    assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(upload_expect(v1, NULL, 201, &reply), "current")));
    cJSON_Delete(reply);
    device_update(&r, "dev=pub&ver=0.9.0", MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "publishes by hand and offers no firmware yet");
    e2e_http_free(&r);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/pub/unpin", "{}"), 409);
    assert_string_equal(e2e_http_error(&r), "publish_manual");
    e2e_http_free(&r);
    const char *pin[] = {"pin", "pub", "1.0.0", NULL};
    assert_int_equal(cli(NULL, pin), 0);
    device_update(&r, "dev=pub&ver=0.9.0", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, v1);
    e2e_http_free(&r);

    /* the next upload changes nothing until its rollout completes */
    const char *v2 = make_image("pub-2.bin", "pub", "2.0.0", "esp32c3", 0);
    upload_ok(v2, NULL);
    device_update(&r, "dev=pub&ver=1.0.0", MAC1, NULL, NULL, NULL, NULL);
    expect_304(&r, "runs the current release");
    e2e_http_free(&r);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/pub/rollouts", "{\"version\":\"2.0.0\",\"stages\":[100]}"),
                     201);
    cJSON *ro = cJSON_Parse(r.body);
    char path[80];
    snprintf(path, sizeof path, "/api/rollouts/%.0f/advance", e2e_jnum(ro, "id"));
    cJSON_Delete(ro);
    e2e_http_free(&r);
    assert_int_equal(aloftd_admin_post(&srv, &r, path, "{}"), 200);
    e2e_http_free(&r);
    expect_platform("2.0.0", "2.0.0");
    device_update(&r, "dev=pub&ver=1.0.0", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, v2);
    e2e_http_free(&r);

    /* auto: the newest upload is served once unpinned */
    const char *to_auto[] = {"publish", "pub", "auto", NULL};
    assert_int_equal(cli(&out, to_auto), 0);
    assert_non_null(strstr(out, "firmware  2.0.0 (pinned)"));
    assert_non_null(strstr(out, "publish   auto"));
    free(out);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/pub/unpin", "{}"), 200);
    e2e_http_free(&r);
    const char *v3 = make_image("pub-3.bin", "pub", "3.0.0", "esp32c3", 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(upload_expect(v3, NULL, 201, &reply), "current")));
    cJSON_Delete(reply);
    expect_platform("3.0.0", "");

    /* manual again: what is served now is pinned, and the next upload waits */
    const char *to_manual[] = {"publish", "pub", "manual", NULL};
    assert_int_equal(cli(NULL, to_manual), 0);
    expect_platform("3.0.0", "3.0.0");
    upload_ok(make_image("pub-4.bin", "pub", "4.0.0", "esp32c3", 0), NULL);
    expect_platform("3.0.0", "3.0.0");
    char *log = aloftd_log_read(&srv);
    assert_non_null(strstr(log, "pub: platform created for esp32c3; publish manual"));
    assert_non_null(strstr(log, "stored pub firmware 4.0.0"));
    assert_non_null(strstr(log, "not served: the platform publishes by hand"));
    assert_non_null(strstr(log, "pub: publish auto"));
    free(log);
    unsetenv("ALOFT_TOKEN");
}

/* GET /update?<query> from one of several servers, with an HTTPUpdate MAC. */
static int update_via(struct aloftd_proc *s, struct e2e_http *r, const char *query, const char *mac)
{
    char path[300], h_mac[80];
    snprintf(path, sizeof path, "/update?%s", query);
    snprintf(h_mac, sizeof h_mac, "x-ESP32-STA-MAC: %s", mac);
    const char *args[] = {"-H", "User-Agent: ESP32-http-Update", "-H", h_mac, NULL};
    return aloftd_get(s, r, path, args);
}

/* PostgreSQL: three aloftd share one database (and one data directory, as
 * a shared volume would). Started at once, they run the migrations once;
 * what one records, the others serve at once. */
static void test_pg_shared(void **state)
{
    (void)state;
    if (!aloftd_on_pg())
        skip();
    static struct aloftd_proc a, b, c;
    struct aloftd_proc *all[] = {&a, &b, &c};
    aloftd_init(&a, "shared-a");
    aloftd_init(&b, "shared-b");
    aloftd_init(&c, "shared-c");
    for (int i = 1; i < 3; i++) {
        snprintf(all[i]->db, sizeof all[i]->db, "%s", a.db);
        snprintf(all[i]->data, sizeof all[i]->data, "%s", a.data);
    }
    for (int i = 0; i < 3; i++)
        aloftd_spawn(all[i], NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(aloftd_wait_serving(all[i]), 0);
    char *rows = aloftd_pg_query(a.db, "SELECT version FROM schema_migrations ORDER BY version");
    assert_string_equal(rows, "1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n"); /* each migration run once */
    free(rows);
    char token[128] = ""; /* those that found no token made one; any made is valid on all */
    for (int i = 0; i < 3; i++) {
        char *log = aloftd_log_read(all[i]);
        assert_non_null(strstr(log, "(schema 12)"));
        free(log);
        if (!token[0])
            snprintf(token, sizeof token, "%s", all[i]->token);
    }
    assert_int_equal(strlen(token), 64);
    for (int i = 0; i < 3; i++) {
        snprintf(all[i]->token, sizeof all[i]->token, "%s", token);
        snprintf(all[i]->auth, sizeof all[i]->auth, "Authorization: Bearer %s", token);
    }

    /* one device key for all: a device's credential is the same from each */
    char first[65] = "";
    for (int i = 0; i < 3; i++) {
        cJSON *j = aloftd_json(all[i], "/api/devices/" MAC1 "/credential");
        if (!first[0])
            snprintf(first, sizeof first, "%s", e2e_jstr(j, "credential"));
        assert_string_equal(e2e_jstr(j, "credential"), first);
        cJSON_Delete(j);
    }
    assert_int_equal(strlen(first), 64);

    /* uploaded through a: b and c offer it */
    const char *f043 = fixture_file(FIX_043, "sh-043.bin"), *f064 = fixture_file(FIX_064, "sh-064.bin");
    struct e2e_http r;
    assert_int_equal(aloftd_upload(&a, &r, f064, NULL, NULL), 201);
    e2e_http_free(&r);
    update_via(&b, &r, "dev=esp32-csi-node&ver=" VER_043, MAC1);
    expect_offer(&r, f064);
    e2e_http_free(&r);
    update_via(&c, &r, "dev=esp32-csi-node&ver=0.6.4", "24:0A:C4:00:00:02");
    expect_304(&r, "runs the current release 0.6.4");
    e2e_http_free(&r);

    /* the same bytes through all three at once: recorded once */
    char data[400], urls[3][200];
    snprintf(data, sizeof data, "@%s", f043);
    struct e2e_curl_job jobs[3];
    for (int i = 0; i < 3; i++) {
        snprintf(urls[i], sizeof urls[i], "%s/api/firmware", all[i]->url);
        const char *args[] = {"-H", all[i]->auth, "-H", "Content-Type: application/octet-stream", "--data-binary",
                              data, urls[i], NULL};
        e2e_curl_start(&jobs[i], args);
    }
    int created = 0;
    for (int i = 0; i < 3; i++) {
        int code = e2e_curl_wait(&jobs[i], &r);
        if (code != 201 && code != 200)
            fprintf(stderr, "upload through %d: %d %s\n", i, code, r.body);
        assert_true(code == 201 || code == 200);
        created += code == 201;
        e2e_http_free(&r);
    }
    assert_int_equal(created, 1);
    cJSON *h = aloftd_json(&c, "/api/platforms/esp32-csi-node/releases");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(h, "releases")), 2);
    assert_string_equal(e2e_jstr(h, "current"), "0.6.4"); /* the newer one, whoever recorded which */
    cJSON_Delete(h);

    /* pinned through b: a downgrades devices at once */
    assert_int_equal(aloftd_admin_post(&b, &r, "/api/platforms/esp32-csi-node/pin", "{\"version\":\"" VER_043 "\"}"),
                     200);
    e2e_http_free(&r);
    update_via(&a, &r, "dev=esp32-csi-node&ver=0.6.4", MAC1);
    expect_offer(&r, f043);
    e2e_http_free(&r);

    /* check-ins through any server land in one inventory */
    cJSON *devs = aloftd_json(&a, "/api/devices");
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(devs, "devices")), 2);
    assert_int_equal(e2e_jnum(find_device(devs, MAC1), "checkins"), 2); /* via b, then via a */
    cJSON_Delete(devs);
    for (int i = 0; i < 3; i++)
        assert_int_equal(aloftd_stop(all[i]), 0);
}

/* PostgreSQL stops under a running aloftd: every call that needs the
 * database gets 503 database_unavailable, nothing crashes, and the first
 * request after PostgreSQL is back is served. Last: it restarts the server
 * the suite shares. */
static void test_pg_outage(void **state)
{
    (void)state;
    if (!aloftd_on_pg())
        skip();
    start("outage", NULL);
    const char *v1 = make_image("o-1.0.0.bin", "demo", "1.0.0", "esp32s3", 0);
    const char *v2 = make_image("o-1.1.0.bin", "demo", "1.1.0", "esp32s3", 0);
    upload_ok(v1, NULL);
    struct e2e_http r;
    device_update(&r, "dev=demo&ver=0.9.0", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, v1);
    e2e_http_free(&r);

    assert_int_equal(aloftd_pg_stop(), 0);
    for (int i = 0; i < 3; i++) { /* also after the broken connection is gone */
        device_update(&r, "dev=demo&ver=0.9.0", MAC1, NULL, NULL, NULL, NULL);
        expect_error(&r, 503, "database_unavailable");
        assert_string_equal(aloftd_header_value(&r, "Content-Type"), "application/json");
        cJSON *j = cJSON_Parse(r.body);
        assert_string_equal(e2e_jstr(j, "status"), "error");
        assert_non_null(strstr(e2e_jstr(j, "message"), "database"));
        cJSON_Delete(j);
        e2e_http_free(&r);
    }
    assert_int_equal(aloftd_admin_get(&srv, &r, "/api/platforms"), 503);
    assert_string_equal(e2e_http_error(&r), "database_unavailable");
    e2e_http_free(&r);
    struct e2e_http up;
    assert_int_equal(aloftd_upload(&srv, &up, v2, NULL, NULL), 503);
    assert_string_equal(e2e_http_error(&up), "database_unavailable");
    e2e_http_free(&up);
    assert_int_equal(aloftd_count_files(&srv, "tmp"), 0);
    assert_true(kill(srv.pid, 0) == 0);

    assert_int_equal(aloftd_pg_start(), 0);
    device_update(&r, "dev=demo&ver=0.9.0", MAC1, NULL, NULL, NULL, NULL); /* the first request after */
    expect_offer(&r, v1);
    e2e_http_free(&r);
    upload_ok(v2, NULL);
    device_update(&r, "dev=demo&ver=1.0.0", MAC1, NULL, NULL, NULL, NULL);
    expect_offer(&r, v2);
    e2e_http_free(&r);
}

int main(void)
{
    e2e_init(150);
    if (aloftd_db_init("aloftd tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_real_fixtures, aloftd_teardown),
        cmocka_unit_test_teardown(test_update_decisions, aloftd_teardown),
        cmocka_unit_test_teardown(test_pin_downgrade, aloftd_teardown),
        cmocka_unit_test_teardown(test_publish_manual, aloftd_teardown),
        cmocka_unit_test_teardown(test_kstobbe_regressions, aloftd_teardown),
        cmocka_unit_test_teardown(test_download_range, aloftd_teardown),
        cmocka_unit_test_teardown(test_path_traversal, aloftd_teardown),
        cmocka_unit_test_teardown(test_admin_auth, aloftd_teardown),
        cmocka_unit_test_teardown(test_rotate_token, aloftd_teardown),
        cmocka_unit_test_teardown(test_upload_refusals, aloftd_teardown),
        cmocka_unit_test_teardown(test_frontend, aloftd_teardown),
        cmocka_unit_test_teardown(test_restart, aloftd_teardown),
        cmocka_unit_test_teardown(test_concurrent_uploads, aloftd_teardown),
        cmocka_unit_test_teardown(test_settings, aloftd_teardown),
        cmocka_unit_test_teardown(test_cli, aloftd_teardown),
        cmocka_unit_test_teardown(test_pg_shared, aloftd_teardown),
        cmocka_unit_test_teardown(test_pg_outage, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
