/* The device HTTP API through the agent (push.h, PROTOCOLS.md §1–§2), with
 * no network: requests and 1460-byte body chunks handed in as a glue would,
 * every reply's JSON checked, and after every refusal the flash compared
 * byte for byte. Ends with power cut before every flash operation of a
 * firmware push and of a frontend push. */
#include "testagent.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "aloft/err.h"
#include "aloft/otadata.h"
#include "aloft/pull.h"
#include "aloft/push.h"
#include "hex.h"
#include "image_make.h"

#define CHUNK 1460 /* a TCP segment */
#define FLASH_4M 0x400000u
#define FLASH_1M 0x100000u
#define PSK "s3cret-psk"

/* Small enough to cut power at every operation: 256 KB apps, 128 KB www. */
#define CSV_SMALL_WWW                                                                              \
    "nvs,      data, nvs,    0x9000,  0x4000,\n"                                                   \
    "otadata,  data, ota,    0xd000,  0x2000,\n"                                                   \
    "phy_init, data, phy,    0xf000,  0x1000,\n"                                                   \
    "ota_0,    app,  ota_0,  0x10000, 0x40000,\n"                                                  \
    "ota_1,    app,  ota_1,  0x50000, 0x40000,\n"                                                  \
    "www_0,    data, spiffs, 0x90000, 0x20000,\n"                                                  \
    "www_1,    data, spiffs, 0xb0000, 0x20000,\n"

static uint8_t *v1, *v2, *c3;            /* esp32s3 1.0.0 / 2.0.0, esp32c3 2.0.0 */
static size_t v1_len, v2_len, c3_len;
static uint8_t *www1, *www2;             /* LittleFS for the 256 KB slots */
static uint8_t *www1_small, *www2_small; /* and for the 128 KB ones */

/* One request as a glue runs it: begin, the body in chunks, end, abort. */
struct res {
    int begin;                 /* aloft_push_begin's return */
    struct aloft_push_reply r;
    char body[8192];           /* the JSON, or the file read with aloft_push_read */
    size_t len;
    cJSON *j;
};

static struct aloft_push push;
static char buf[1024]; /* the smallest reply buffer push.h allows */
static struct res res;

/* A request with no body, or a JSON one for the endpoints that take it. */
static struct aloft_push_request req(const char *method, const char *path)
{
    bool json = !strcmp(path, "/api/ota/pull") || !strcmp(path, "/api/ota/frontend/rollback");
    return (struct aloft_push_request){
        .method = method, .path = path, .content_length = -1, .content_type = json ? "application/json" : NULL};
}

static struct aloft_push_request upload(const char *path, size_t len, const char *auth)
{
    struct aloft_push_request r = req("POST", path);
    r.content_type = "application/octet-stream";
    r.content_length = (int64_t)len;
    r.authorization = auth;
    return r;
}

static void collect(struct aloft_test_agent *t, struct res *o)
{
    if (o->r.file) {
        assert_true(o->r.file_len < sizeof o->body);
        for (uint32_t off = 0; off < o->r.file_len;) {
            size_t want = o->r.file_len - off < 700 ? o->r.file_len - off : 700;
            int n = aloft_push_read(&t->a, &push, off, o->body + off, want);
            assert_int_equal(n, (int)want);
            off += (uint32_t)n;
        }
        o->len = o->r.file_len;
        o->body[o->len] = 0;
        return;
    }
    if (o->r.start_pull)
        return;
    assert_string_equal(o->r.content_type, "application/json");
    assert_non_null(o->r.body);
    assert_true(o->r.len < sizeof o->body);
    memcpy(o->body, o->r.body, o->r.len);
    o->body[o->r.len] = 0;
    o->len = o->r.len;
    o->j = cJSON_Parse(o->body);
    if (!o->j)
        fail_msg("not JSON: %s", o->body);
}

/* The request's first part: begin and the body, without end or abort. */
static struct res *start(struct aloft_test_agent *t, const struct aloft_push_request *rq, const void *body, size_t n)
{
    cJSON_Delete(res.j);
    memset(&res, 0, sizeof res);
    res.begin = aloft_push_begin(&t->a, &push, rq, buf, sizeof buf, &res.r);
    for (size_t off = 0; res.begin == 0 && off < n; off += CHUNK)
        aloft_push_body(&t->a, &push, (const uint8_t *)body + off, n - off < CHUNK ? n - off : CHUNK);
    return &res;
}

/* A whole request. */
static struct res *run(struct aloft_test_agent *t, const struct aloft_push_request *rq, const void *body, size_t n)
{
    struct res *o = start(t, rq, body, n);
    if (o->begin == 0)
        aloft_push_end(&t->a, &push, &o->r);
    collect(t, o);
    aloft_push_abort(&t->a, &push);
    aloft_push_abort(&t->a, &push); /* idempotent */
    return o;
}

static struct res *get(struct aloft_test_agent *t, const char *path)
{
    struct aloft_push_request r = req("GET", path);
    return run(t, &r, NULL, 0);
}

static struct res *post(struct aloft_test_agent *t, const char *path, const void *body, size_t n, const char *auth)
{
    struct aloft_push_request r = upload(path, n, auth);
    r.content_type = req("POST", path).content_type ? req("POST", path).content_type : r.content_type;
    return run(t, &r, body, n);
}

static const char *jstr(const cJSON *j, const char *key)
{
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(j, key));
    if (!s)
        fail_msg("no string %s", key);
    return s;
}

static double jnum(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!cJSON_IsNumber(v))
        fail_msg("no number %s", key);
    return v->valuedouble;
}

/* An error reply, byte for byte (message NULL: any message). */
static void is_error(const struct res *o, int status, const char *code, const char *message)
{
    if (o->r.status != status || strcmp(jstr(o->j, "error"), code))
        fail_msg("expected %d %s, got %d: %s", status, code, o->r.status, o->body);
    assert_false(o->r.file);
    if (message) {
        char want[512];
        snprintf(want, sizeof want, "{\"status\":\"error\",\"error\":\"%s\",\"message\":\"%s\"}", code, message);
        assert_string_equal(o->body, want);
    } else {
        assert_string_equal(jstr(o->j, "status"), "error");
        assert_true(strlen(jstr(o->j, "message")) > 10);
    }
}

/* ---- the flash, before and after ---- */

static uint8_t *snap(const struct aloft_test_agent *t)
{
    uint8_t *s = malloc(t->dev.pf.size);
    memcpy(s, t->dev.pf.mem, t->dev.pf.size);
    return s;
}

/* Every byte but those of the partitions named (NULL: none) is as before. */
static void same_except(const struct aloft_test_agent *t, uint8_t *before, const char *label, const char *label2)
{
    const char *labels[] = {label, label2};
    for (int i = 0; i < 2; i++) {
        if (!labels[i])
            continue;
        const struct aloft_part *p = aloft_part_find_label(&t->dev.boot.table, labels[i]);
        assert_non_null(p);
        memcpy(before + p->offset, t->dev.pf.mem + p->offset, p->size);
    }
    assert_memory_equal(t->dev.pf.mem, before, t->dev.pf.size);
    free(before);
}

static void boots(struct aloft_test_agent *t, const char *version, const char *partition)
{
    assert_int_equal(aloft_test_agent_reboot(t, "SW"), 0);
    assert_string_equal(aloft_test_running_version(&t->dev), version);
    assert_string_equal(t->dev.boot.running->label, partition);
}

/* ---- fixtures ---- */

static uint8_t *image(const char *chip, const char *version, uint32_t secure_version, size_t *len)
{
    struct aloft_image_make_opts o = {
        .chip_id = (uint16_t)aloft_chip_id(chip),
        .project = "aloft-test",
        .version = version,
        .secure_version = secure_version,
    };
    uint8_t *img = NULL;
    assert_int_equal(aloft_image_make(&o, &img, len), 0);
    return img;
}

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[600];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    fclose(f);
}

/* A frontend tree (version "v1"/"v2" in index.html) as LittleFS images. */
static void frontend(const char *version, uint8_t **big, uint8_t **small)
{
    char dir[400], sub[420], html[64];
    snprintf(dir, sizeof dir, "%s/www-%s", aloft_test_tmpdir(), version);
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    assert_int_equal(mkdir(sub, 0700), 0);
    snprintf(html, sizeof html, "<h1>%s</h1>", version);
    write_file(dir, "index.html", html);
    write_file(dir, "app.js", "console.log('plain')");
    write_file(dir, "app.js.gz", "GZIP app.js");
    write_file(dir, "only.css.gz", "GZIP only.css");
    write_file(dir, "Logo.PNG", "PNG");
    write_file(dir, "data.xyz", "xyz");
    write_file(dir, "empty.txt", "");
    write_file(sub, "index.html", "<p>sub</p>");
    size_t len;
    struct aloft_lfs_mkfs_err err;
    assert_int_equal(aloft_lfs_mkfs(dir, 0x40000, 4096, ALOFT_LFS_VERSION_2_1, big, &len, &err), 0);
    assert_int_equal(aloft_lfs_mkfs(dir, 0x20000, 4096, ALOFT_LFS_VERSION_2_1, small, &len, &err), 0);
}

static int setup(void **state)
{
    (void)state;
    v1 = image("esp32s3", "1.0.0", 0, &v1_len);
    v2 = image("esp32s3", "2.0.0", 0, &v2_len);
    c3 = image("esp32c3", "2.0.0", 0, &c3_len);
    frontend("v1", &www1, &www1_small);
    frontend("v2", &www2, &www2_small);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cJSON_Delete(res.j);
    free(v1), free(v2), free(c3);
    free(www1), free(www2), free(www1_small), free(www2_small);
    return 0;
}

/* A device running v1 with the v1 frontend in www_0. */
static void device(struct aloft_test_agent *t, const struct aloft_agent_config *cfg)
{
    aloft_test_agent_init(t, FLASH_4M, NULL, v1, v1_len, www1, 0x40000, cfg);
}

static void provision_psk(struct aloft_test_agent *t)
{
    assert_int_equal(aloft_posix_kv_set(&t->kv, "security/ota_psk", PSK, strlen(PSK)), 0);
    assert_int_equal(aloft_test_agent_reboot(t, "SW"), 0);
}

/* ---- status ---- */

static void test_status_documents(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    t.now_ms += 42500;
    struct res *o = get(&t, "/ota/status");
    assert_int_equal(o->begin, 1);
    assert_int_equal(o->r.status, 200);
    cJSON *j = o->j;
    assert_string_equal(jstr(j, "version"), "1.0.0");
    assert_string_equal(jstr(j, "running_partition"), "ota_0");
    assert_string_equal(jstr(j, "next_partition"), "ota_1");
    assert_int_equal(jnum(j, "max_size"), 0x100000);
    assert_string_equal(jstr(j, "project"), "aloft-test");
    assert_string_equal(jstr(j, "chip"), "esp32s3");
    assert_int_equal(jnum(j, "secure_version"), 0);
    assert_string_equal(jstr(j, "state"), "undefined");
    assert_string_equal(jstr(j, "reset_reason"), "POWERON");
    assert_int_equal(jnum(j, "boot_count"), 1);
    assert_int_equal(jnum(j, "uptime_s"), 42);
    assert_string_equal(jstr(j, "mac"), "02:00:00:00:00:01");
    char sha[65];
    aloft_hex(v1 + v1_len - 32, 32, sha);
    assert_string_equal(jstr(j, "sha256"), sha);
    assert_int_equal(jnum(j, "www_slot"), 0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(j, "busy")));
    assert_non_null(jstr(j, "date"));
    assert_non_null(jstr(j, "time"));
    assert_non_null(jstr(j, "idf_ver"));
    cJSON *fw = cJSON_Duplicate(j, true);

    struct aloft_push_request head = req("HEAD", "/ota/status");
    o = run(&t, &head, NULL, 0);
    assert_int_equal(o->r.status, 200);
    assert_true(cJSON_Compare(o->j, fw, true));

    o = get(&t, "/api/ota/status");
    assert_int_equal(o->r.status, 200);
    assert_int_equal(jnum(o->j, "active_slot"), 0);
    cJSON *slots = cJSON_GetObjectItem(o->j, "slots");
    assert_int_equal(cJSON_GetArraySize(slots), 2);
    cJSON *s0 = cJSON_GetArrayItem(slots, 0), *s1 = cJSON_GetArrayItem(slots, 1);
    assert_string_equal(jstr(s0, "label"), "www_0");
    assert_int_equal(jnum(s0, "size"), 0x40000);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(s0, "valid")));
    assert_string_equal(jstr(s1, "label"), "www_1");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(s1, "valid")));
    assert_true(cJSON_Compare(cJSON_GetObjectItem(o->j, "firmware"), fw, true));
    assert_non_null(strstr(o->body, "{\"active_slot\":0,\"slots\":[{\"label\":\"www_0\",\"size\":262144,"
                                    "\"valid\":true},{\"label\":\"www_1\",\"size\":262144,\"valid\":false}],"
                                    "\"firmware\":{\"version\":\"1.0.0\","));
    cJSON_Delete(fw);

    /* a reply buffer too small gets an error that says so, not a cut document */
    char small[100];
    struct aloft_push_request rs = req("GET", "/ota/status");
    struct aloft_push_reply reply;
    assert_int_equal(aloft_push_begin(&t.a, &push, &rs, small, sizeof small, &reply), 1);
    assert_int_equal(reply.status, 500);
    assert_int_equal(reply.len, strlen(small));
    cJSON *e = cJSON_Parse(small);
    assert_string_equal(jstr(e, "error"), "no_space");
    cJSON_Delete(e);
    aloft_push_abort(&t.a, &push);

    o = get(&t, "/api/ota/state");
    assert_int_equal(o->r.status, 200);
    assert_string_equal(jstr(o->j, "device"), "02:00:00:00:00:01");
    assert_string_equal(jstr(o->j, "state"), "idle");
    assert_string_equal(jstr(o->j, "partition"), "ota_0");
    aloft_test_agent_free(&t);
}

/* ---- firmware ---- */

static void test_firmware_push(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    uint8_t *before = snap(&t);
    struct res *o = post(&t, "/ota", v2, v2_len, NULL);
    assert_int_equal(o->begin, 0);
    assert_int_equal(o->r.status, 200);
    char sha[65], want[512];
    aloft_hex(v2 + v2_len - 32, 32, sha); /* the hash the image carries */
    snprintf(want, sizeof want,
             "{\"status\":\"ok\",\"message\":\"OTA update successful. Rebooting...\",\"partition\":\"ota_1\","
             "\"version\":\"2.0.0\",\"sha256\":\"%s\"}",
             sha);
    assert_string_equal(o->body, want);
    assert_string_equal(t.restart, "SW");
    snprintf(want, sizeof want, "ota: %zu bytes verified into ota_1, version 2.0.0; rebooting", v2_len);
    assert_true(aloft_test_agent_logged(&t, want));
    assert_false(t.a.busy);
    same_except(&t, before, "ota_1", "otadata"); /* not the settings either */

    /* a confirm that comes before the restart (a timer, the application)
     * does nothing: marking "the" app valid now would mark the new one */
    uint8_t *switched = snap(&t);
    assert_int_equal(aloft_agent_confirm(&t.a), ALOFT_E_STATE);
    same_except(&t, switched, NULL, NULL);

    boots(&t, "2.0.0", "ota_1");
    o = get(&t, "/ota/status");
    assert_string_equal(jstr(o->j, "version"), "2.0.0");
    assert_string_equal(jstr(o->j, "running_partition"), "ota_1");
    assert_string_equal(jstr(o->j, "next_partition"), "ota_0");
    assert_string_equal(jstr(o->j, "state"), "pending_verify");
    assert_string_equal(jstr(o->j, "reset_reason"), "SW");

    /* 409 pending_verify, said at once; nothing changes */
    before = snap(&t);
    t.restart = NULL;
    o = post(&t, "/ota", v1, v1_len, NULL);
    assert_int_equal(o->begin, 1);
    is_error(o, 409, "pending_verify",
             "the running image is still pending verification; wait until it confirms itself");
    assert_null(t.restart);
    assert_false(t.a.busy);
    same_except(&t, before, NULL, NULL);

    /* once confirmed, the next update is taken */
    assert_int_equal(aloft_boot_mark_valid(&t.dev.boot), 0);
    o = post(&t, "/ota", v1, v1_len, NULL);
    assert_int_equal(o->r.status, 200);
    assert_string_equal(jstr(o->j, "partition"), "ota_0");
    boots(&t, "1.0.0", "ota_0");
    aloft_test_agent_free(&t);
}

static void test_psk(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    provision_psk(&t);
    static const char *const wrong[] = {"Bearer wrong", "Bearer " PSK "x", "Bearer s3cret-ps", "Bearer ", "Bearer  " PSK};
    static const char *const paths[] = {"/ota", "/api/ota/frontend", "/api/ota/frontend/rollback", "/api/ota/pull"};
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        uint8_t *before = snap(&t);
        struct res *o = post(&t, paths[i], v2, v2_len, NULL);
        assert_int_equal(o->begin, 1);
        is_error(o, 401, "unauthorized", "missing Authorization: Bearer <psk>");
        o = post(&t, paths[i], v2, v2_len, "Basic " PSK);
        is_error(o, 401, "unauthorized", "missing Authorization: Bearer <psk>");
        for (size_t k = 0; k < sizeof wrong / sizeof wrong[0]; k++) {
            o = post(&t, paths[i], v2, v2_len, wrong[k]);
            is_error(o, 401, "unauthorized", "wrong PSK");
        }
        same_except(&t, before, NULL, NULL);
    }
    /* status needs none */
    assert_int_equal(get(&t, "/ota/status")->r.status, 200);
    assert_int_equal(get(&t, "/api/ota/status")->r.status, 200);
    struct res *o = post(&t, "/ota", v2, v2_len, "bearer " PSK); /* the scheme is case-insensitive */
    assert_int_equal(o->r.status, 200);
    aloft_test_agent_free(&t);

    /* a device that is not open and has no PSK refuses every change */
    struct aloft_agent_config cfg = {.mac = "02:00:00:00:00:02"};
    device(&t, &cfg);
    uint8_t *before = snap(&t);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        o = post(&t, paths[i], v2, v2_len, "Bearer anything");
        is_error(o, 401, "unauthorized", "this device takes no update until a PSK is provisioned (setting security/ota_psk)");
    }
    same_except(&t, before, NULL, NULL);
    aloft_test_agent_free(&t);
}

/* What a page of another site can make a browser send: a simple request
 * (no preflight: text/plain, a form, no type) or any request that names
 * its origin. Refused on an open device and with the right PSK alike. */
static void test_cross_site_refused(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    provision_psk(&t);
    static const char *const paths[] = {"/ota", "/api/ota/frontend", "/api/ota/frontend/rollback", "/api/ota/pull"};
    static const struct {
        const char *origin, *host, *site;
    } foreign[] = {
        {"http://attacker.example", "192.168.4.1:8032", NULL},
        {"null", "192.168.4.1:8032", NULL},
        {"http://192.168.4.1:8033", "192.168.4.1:8032", NULL},
        {"http://192.168.4.1:8032", NULL, NULL},
        {"192.168.4.1:8032", "192.168.4.1:8032", NULL},
        {NULL, "192.168.4.1:8032", "cross-site"},
    };
    uint8_t *before = snap(&t);
    for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
        for (size_t k = 0; k < sizeof foreign / sizeof foreign[0]; k++) {
            struct aloft_push_request r = upload(paths[i], v2_len, "Bearer " PSK);
            r.content_type = req("POST", paths[i]).content_type ? req("POST", paths[i]).content_type : r.content_type;
            r.origin = foreign[k].origin;
            r.host = foreign[k].host;
            r.fetch_site = foreign[k].site;
            struct res *o = run(&t, &r, v2, v2_len);
            assert_int_equal(o->begin, 1);
            is_error(o, 403, "cross_site", "refused: a page of another site sent this request");
        }
        static const char *const simple[] = {NULL, "text/plain", "application/x-www-form-urlencoded",
                                             "multipart/form-data; boundary=x"};
        for (size_t k = 0; k < sizeof simple / sizeof simple[0]; k++) {
            struct aloft_push_request r = upload(paths[i], v2_len, "Bearer " PSK);
            r.content_type = simple[k];
            assert_int_equal(run(&t, &r, v2, v2_len)->r.status, 415);
        }
    }
    same_except(&t, before, NULL, NULL);
    /* the device's own page: same origin, any case of the host */
    struct aloft_push_request r = upload("/ota", v2_len, "Bearer " PSK);
    r.origin = "https://Device.local:8032";
    r.host = "device.local:8032";
    r.fetch_site = "same-origin";
    assert_int_equal(run(&t, &r, v2, v2_len)->r.status, 200);
    aloft_test_agent_free(&t);
}

static void test_refused_from_the_headers(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    static const char *const types[] = {NULL, "", "text/plain", "application/x-www-form-urlencoded",
                                        "multipart/form-data; boundary=x"};
    static const char *const paths[] = {"/ota", "/api/ota/frontend"};
    for (size_t i = 0; i < 2; i++) {
        uint8_t *before = snap(&t);
        for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
            struct aloft_push_request r = upload(paths[i], v2_len, NULL);
            r.content_type = types[k];
            struct res *o = run(&t, &r, v2, v2_len);
            assert_int_equal(o->begin, 1);
            is_error(o, 415, "unsupported_media_type",
                     "send it as application/octet-stream: curl --data-binary @fw.bin -H "
                     "'Content-Type: application/octet-stream' (curl -d strips newlines and corrupts binaries)");
        }
        struct aloft_push_request r = upload(paths[i], v2_len, NULL);
        r.content_type = "Application/Octet-Stream; charset=binary"; /* a prefix, any case */
        r.content_length = -1;
        is_error(run(&t, &r, v2, v2_len), 411, "length_required",
                 "Content-Length is required (chunked uploads are not accepted)");
        uint32_t room = i ? 0x40000 : 0x100000;
        r.content_length = room + 1;
        char m[160];
        snprintf(m, sizeof m, "the body is %u bytes; the update slot holds %u", room + 1, room);
        is_error(run(&t, &r, NULL, 0), 413, "too_large", m);
        r.content_length = 0;
        is_error(run(&t, &r, NULL, 0), 400, "empty", "the body is empty: send the image");
        same_except(&t, before, NULL, NULL);
        assert_false(t.a.busy);
    }
    aloft_test_agent_free(&t);
}

/* A copy of v2 of len bytes with byte at xored (past v2: 0x5A). */
static uint8_t *variant(size_t len, size_t at, uint8_t xor_with)
{
    uint8_t *b = malloc(len);
    memcpy(b, v2, len < v2_len ? len : v2_len);
    if (len > v2_len)
        memset(b + v2_len, 0x5A, len - v2_len);
    if (at < len)
        b[at] ^= xor_with;
    return b;
}

/* POST img to /ota: refused once the body is in, nothing but the update
 * slot changed, the log says why, and the device still boots v1. */
static void refused_image(struct aloft_test_agent *t, const uint8_t *img, size_t len, int status, const char *code,
                          const char *message)
{
    uint8_t *before = snap(t);
    t->restart = NULL;
    struct res *o = post(t, "/ota", img, len, NULL);
    assert_int_equal(o->begin, 0);
    is_error(o, status, code, message);
    char line[400];
    snprintf(line, sizeof line, "ota: refused: %s (%s)", code, jstr(o->j, "message"));
    assert_true(aloft_test_agent_logged(t, line));
    assert_null(t->restart);
    assert_false(t->a.busy);
    same_except(t, before, "ota_1", NULL);
    assert_string_equal(jstr(get(t, "/ota/status")->j, "version"), "1.0.0");
}

/* v2 cut or padded to len bytes with byte at xored with x, refused. */
static void bad(struct aloft_test_agent *t, size_t len, size_t at, uint8_t x, int status, const char *code, int err)
{
    uint8_t *b = variant(len, at, x);
    refused_image(t, b, len, status, code, aloft_strerror(err));
    free(b);
}

static void test_refused_images(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    size_t n = v2_len;
    bad(&t, n, 0, 0x01, 400, "bad_magic", ALOFT_E_MAGIC);
    bad(&t, n, 1, v2[1], 400, "bad_segments", ALOFT_E_SEGMENTS);  /* count 0 */
    bad(&t, n, 23, 0x03, 400, "bad_header", ALOFT_E_HEADER);      /* hash flag 2 */
    bad(&t, n, 24 + 4, 0x02, 400, "bad_segment", ALOFT_E_SEGMENT); /* length not a multiple of 4 */
    bad(&t, n, n / 2, 0x04, 400, "bad_checksum", ALOFT_E_CHECKSUM);
    bad(&t, n, n - 1, 0x80, 400, "bad_sha256", ALOFT_E_HASH);
    bad(&t, n / 2, n, 0, 400, "truncated", ALOFT_E_TRUNCATED);
    bad(&t, n - 1, n, 0, 400, "truncated", ALOFT_E_TRUNCATED);
    bad(&t, n + 100, n + 100, 0, 400, "trailing_data", ALOFT_E_TRAILING);
    bad(&t, n, 0, 0xE9 ^ 0xEA, 422, "wrong_chip", ALOFT_E_ESP8266);
    const char *text = "<html>not an image</html>\n";
    refused_image(&t, (const uint8_t *)text, strlen(text), 400, "bad_magic", aloft_strerror(ALOFT_E_MAGIC));
    char m[200];
    snprintf(m, sizeof m, "%s: this device is esp32s3", aloft_strerror(ALOFT_E_CHIP));
    refused_image(&t, c3, c3_len, 422, "wrong_chip", m);

    boots(&t, "1.0.0", "ota_0");
    assert_int_equal(post(&t, "/ota", v2, v2_len, NULL)->r.status, 200); /* and then a good one */
    boots(&t, "2.0.0", "ota_1");
    aloft_test_agent_free(&t);
}

static void test_secure_version(void **state)
{
    (void)state;
    size_t run_len, low_len, same_len;
    uint8_t *running = image("esp32s3", "3.0.0", 3, &run_len);
    uint8_t *low = image("esp32s3", "4.0.0", 2, &low_len);
    uint8_t *same = image("esp32s3", "5.0.0", 3, &same_len);
    struct aloft_test_agent t;
    aloft_test_agent_init(&t, FLASH_4M, NULL, running, run_len, NULL, 0, NULL);
    uint8_t *before = snap(&t);
    struct res *o = post(&t, "/ota", low, low_len, NULL);
    assert_int_equal(o->begin, 0);
    is_error(o, 422, "secure_version", "secure_version 2 is below the running image's 3");
    assert_true(aloft_test_agent_logged(&t, "ota: refused: secure_version (secure_version 2 is below"));
    same_except(&t, before, "ota_1", NULL);
    assert_int_equal(post(&t, "/ota", same, same_len, NULL)->r.status, 200); /* equal is fine */
    boots(&t, "5.0.0", "ota_1");
    aloft_test_agent_free(&t);
    free(running), free(low), free(same);
}

static void test_busy(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    /* the first upload is half in when others arrive */
    static struct aloft_push first;
    static char first_buf[1024];
    struct aloft_push_reply r1;
    struct aloft_push_request rq = upload("/ota", v2_len, NULL);
    assert_int_equal(aloft_push_begin(&t.a, &first, &rq, first_buf, sizeof first_buf, &r1), 0);
    size_t half = v2_len / 2;
    aloft_push_body(&t.a, &first, v2, half);
    assert_true(t.a.busy);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(get(&t, "/ota/status")->j, "busy")));

    uint8_t *before = snap(&t);
    struct res *o = post(&t, "/ota", v2, v2_len, NULL);
    assert_int_equal(o->begin, 1);
    is_error(o, 409, "busy", "another update is in progress; try again when it is done");
    is_error(post(&t, "/api/ota/frontend", www2, 0x40000, NULL), 409, "busy",
             "another update is in progress; try again when it is done");
    struct aloft_push_request rb = req("POST", "/api/ota/frontend/rollback");
    is_error(run(&t, &rb, NULL, 0), 409, "no_rollback", "an upload is in progress");
    same_except(&t, before, NULL, NULL);
    assert_true(t.a.busy); /* the refused ones did not release the first one's hold */

    aloft_push_body(&t.a, &first, v2 + half, v2_len - half);
    aloft_push_end(&t.a, &first, &r1);
    assert_int_equal(r1.status, 200);
    aloft_push_abort(&t.a, &first);
    assert_false(t.a.busy);
    assert_false(aloft_test_agent_logged(&t, "dropped"));
    boots(&t, "2.0.0", "ota_1");
    aloft_test_agent_free(&t);
}

static void test_dropped_upload(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    uint8_t *before = snap(&t);
    struct aloft_push_request rq = upload("/ota", v2_len, NULL);
    struct res *o = start(&t, &rq, v2, 10 * CHUNK);
    assert_int_equal(o->begin, 0);
    aloft_push_abort(&t.a, &push);
    aloft_push_abort(&t.a, &push);
    assert_false(t.a.busy);
    char line[100];
    snprintf(line, sizeof line, "ota: upload dropped after %u bytes; nothing changed", 10 * CHUNK);
    assert_true(aloft_test_agent_logged(&t, line));
    assert_null(strstr(strstr(t.log, line) + strlen(line), "dropped")); /* once */
    assert_null(t.restart);
    same_except(&t, before, "ota_1", NULL);
    boots(&t, "1.0.0", "ota_0");

    /* a frontend upload dropped: the active slot and the settings stay */
    before = snap(&t);
    rq = upload("/api/ota/frontend", 0x40000, NULL);
    o = start(&t, &rq, www2, 0x20000);
    assert_int_equal(o->begin, 0);
    aloft_push_abort(&t.a, &push);
    assert_false(t.a.busy);
    same_except(&t, before, "www_1", NULL);
    assert_int_equal(post(&t, "/ota", v2, v2_len, NULL)->r.status, 200);
    aloft_test_agent_free(&t);
}

/* ---- frontend ---- */

static void file_is(struct aloft_test_agent *t, const char *path, const char *accept, const char *type,
                    const char *encoding, const char *text)
{
    struct aloft_push_request r = req("GET", path);
    r.accept_encoding = accept;
    struct res *o = run(t, &r, NULL, 0);
    if (o->r.status != 200)
        fail_msg("GET %s: %d %s", path, o->r.status, o->body);
    assert_int_equal(o->begin, 1);
    assert_true(o->r.file);
    assert_true(o->r.vary_encoding);
    assert_string_equal(o->r.content_type, type);
    if (encoding)
        assert_string_equal(o->r.content_encoding, encoding);
    else
        assert_null(o->r.content_encoding);
    assert_int_equal(o->len, strlen(text));
    assert_string_equal(o->body, text);
}

static void test_frontend_push_and_rollback(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    uint8_t *before = snap(&t);
    struct res *o = post(&t, "/api/ota/frontend", www2, 0x40000, NULL);
    assert_int_equal(o->begin, 0);
    assert_string_equal(o->body, "{\"status\":\"ok\",\"message\":\"Frontend update successful. Rebooting...\","
                                 "\"partition\":\"www_1\",\"active_slot\":1}");
    assert_string_equal(t.restart, "SW");
    assert_true(aloft_test_agent_logged(&t, "ota: frontend 262144 bytes into www_1; rebooting"));
    const struct aloft_part *w1 = aloft_part_find_label(&t.dev.boot.table, "www_1");
    assert_memory_equal(t.dev.pf.mem + w1->offset, www2, 0x40000);
    same_except(&t, before, "www_1", "nvs"); /* the apps, otadata and www_0 are as they were */
    /* until the restart the old slot serves; the new one is valid already */
    file_is(&t, "/", NULL, "text/html; charset=utf-8", NULL, "<h1>v1</h1>");
    o = get(&t, "/api/ota/status");
    assert_int_equal(jnum(o->j, "active_slot"), 0);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o->j, "slots"), 1), "valid")));

    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_int_equal(t.a.www_slot, 1);
    file_is(&t, "/", NULL, "text/html; charset=utf-8", NULL, "<h1>v2</h1>");
    o = get(&t, "/api/ota/status");
    assert_int_equal(jnum(o->j, "active_slot"), 1);
    assert_int_equal(jnum(cJSON_GetObjectItem(o->j, "firmware"), "www_slot"), 1);

    /* rollback to www_0 */
    t.restart = NULL;
    struct aloft_push_request rb = req("POST", "/api/ota/frontend/rollback");
    o = run(&t, &rb, NULL, 0);
    assert_int_equal(o->begin, 1);
    assert_string_equal(o->body, "{\"status\":\"ok\",\"message\":\"Frontend rolled back. Rebooting...\","
                                 "\"active_slot\":0}");
    assert_string_equal(t.restart, "SW");
    assert_true(aloft_test_agent_logged(&t, "ota: frontend rolled back to www_0; rebooting"));
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_int_equal(t.a.www_slot, 0);
    file_is(&t, "/", NULL, "text/html; charset=utf-8", NULL, "<h1>v1</h1>");
    aloft_test_agent_free(&t);
}

static void test_frontend_refused(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    /* the other slot holds nothing: no rollback */
    uint8_t *before = snap(&t);
    struct aloft_push_request rb = req("POST", "/api/ota/frontend/rollback");
    is_error(run(&t, &rb, NULL, 0), 409, "no_rollback", "the other frontend slot holds no valid LittleFS image");
    same_except(&t, before, NULL, NULL);

    /* not LittleFS: the inactive slot was written, nothing else */
    before = snap(&t);
    uint8_t *junk = malloc(0x40000);
    aloft_test_fill(junk, 0x40000, 7);
    struct res *o = post(&t, "/api/ota/frontend", junk, 0x40000, NULL);
    assert_int_equal(o->begin, 0);
    is_error(o, 400, "not_littlefs", "the body is not a LittleFS image that mounts (make one with aloft mkfs)");
    assert_true(aloft_test_agent_logged(&t, "ota: refused: not_littlefs (the body is not a LittleFS image"));
    assert_null(t.restart);
    same_except(&t, before, "www_1", NULL);
    free(junk);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_int_equal(t.a.www_slot, 0);
    file_is(&t, "/", NULL, "text/html; charset=utf-8", NULL, "<h1>v1</h1>");
    aloft_test_agent_free(&t);
}

static void test_no_frontend_slots(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    aloft_test_agent_init(&t, FLASH_1M, ALOFT_TEST_CSV_SMALL, v1, v1_len, NULL, 0, NULL);
    uint8_t *before = snap(&t);
    const char *m = "this device's partition table has no www_0/www_1 slots";
    is_error(post(&t, "/api/ota/frontend", www1_small, 0x20000, NULL), 404, "no_frontend_slots", m);
    struct aloft_push_request rb = req("POST", "/api/ota/frontend/rollback");
    is_error(run(&t, &rb, NULL, 0), 404, "no_frontend_slots", m);
    is_error(get(&t, "/"), 404, "no_frontend_slots", m); /* no advice to post a www.bin it cannot take */
    struct res *o = get(&t, "/api/ota/status");
    assert_non_null(strstr(o->body, "{\"active_slot\":null,\"slots\":[],\"firmware\":{"));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetObjectItem(o->j, "firmware"), "www_slot")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(get(&t, "/ota/status")->j, "www_slot")));
    same_except(&t, before, NULL, NULL);
    aloft_test_agent_free(&t);

    /* slots, but nothing in them yet: no frontend to serve, one can be pushed */
    aloft_test_agent_init(&t, FLASH_4M, NULL, v1, v1_len, NULL, 0, NULL);
    is_error(get(&t, "/index.html"), 404, "no_frontend", "no frontend is installed: POST a www.bin to /api/ota/frontend");
    o = get(&t, "/api/ota/status");
    assert_true(cJSON_IsFalse(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(o->j, "slots"), 0), "valid")));
    assert_int_equal(post(&t, "/api/ota/frontend", www2, 0x40000, NULL)->r.status, 200);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    file_is(&t, "/", NULL, "text/html; charset=utf-8", NULL, "<h1>v2</h1>");
    aloft_test_agent_free(&t);
}

static void test_static_files(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    file_is(&t, "/", NULL, "text/html; charset=utf-8", NULL, "<h1>v1</h1>");
    file_is(&t, "/index.html", "gzip", "text/html; charset=utf-8", NULL, "<h1>v1</h1>");
    file_is(&t, "/sub/", NULL, "text/html; charset=utf-8", NULL, "<p>sub</p>");
    /* name.gz for name when the client takes gzip, or when it is all there is */
    file_is(&t, "/app.js", NULL, "text/javascript", NULL, "console.log('plain')");
    file_is(&t, "/app.js", "deflate", "text/javascript", NULL, "console.log('plain')");
    file_is(&t, "/app.js", "gzip, deflate, br", "text/javascript", "gzip", "GZIP app.js");
    file_is(&t, "/only.css", NULL, "text/css", "gzip", "GZIP only.css");
    file_is(&t, "/app.js.gz", NULL, "application/octet-stream", NULL, "GZIP app.js");
    file_is(&t, "/Logo.PNG", NULL, "image/png", NULL, "PNG");
    file_is(&t, "/data.xyz", NULL, "application/octet-stream", NULL, "xyz");
    file_is(&t, "/empty.txt", NULL, "text/plain; charset=utf-8", NULL, "");
    struct aloft_push_request head = req("HEAD", "/");
    struct res *o = run(&t, &head, NULL, 0);
    assert_true(o->r.file);
    assert_int_equal(o->r.file_len, strlen("<h1>v1</h1>"));

    const char *none = "no such file";
    is_error(get(&t, "/missing.html"), 404, "not_found", none);
    is_error(get(&t, "/sub"), 404, "not_found", none); /* a directory */
    is_error(get(&t, "/../index.html"), 404, "not_found", none);
    is_error(get(&t, "/sub/../index.html"), 404, "not_found", none);
    is_error(get(&t, "/..%2findex.html"), 404, "not_found", none);
    char longpath[300] = "/";
    memset(longpath + 1, 'a', 255);
    longpath[256] = 0;
    is_error(get(&t, longpath), 404, "not_found", none);
    longpath[255] = 0; /* 255 characters: looked up */
    is_error(get(&t, longpath), 404, "not_found", none);
    assert_int_equal(aloft_push_read(&t.a, &push, 0, buf, 1), ALOFT_E_STATE); /* not a file reply */

    /* wrong methods */
    const char *endpoint = "wrong method for this endpoint";
    const char *only_get = "only GET and HEAD are served here";
    static const char *const wrong[][2] = {
        {"GET", "/ota"},          {"PUT", "/ota"},           {"POST", "/ota/status"},   {"POST", "/api/ota/status"},
        {"GET", "/api/ota/pull"}, {"GET", "/api/ota/frontend"}, {"GET", "/api/ota/frontend/rollback"},
        {"DELETE", "/api/x"},     {"POST", "/"},             {"PUT", "/index.html"},
    };
    uint8_t *before = snap(&t);
    for (size_t i = 0; i < sizeof wrong / sizeof wrong[0]; i++) {
        struct aloft_push_request r = req(wrong[i][0], wrong[i][1]);
        bool api = !strcmp(wrong[i][1], "/ota") || !strncmp(wrong[i][1], "/api/", 5);
        o = run(&t, &r, NULL, 0);
        assert_int_equal(o->begin, 1);
        is_error(o, 405, "method_not_allowed", api ? endpoint : only_get);
    }
    same_except(&t, before, NULL, NULL);
    aloft_test_agent_free(&t);
}

/* ---- POST /api/ota/pull ---- */

static struct res *pull_reply(struct aloft_test_agent *t, int rc, const struct aloft_pull *job)
{
    cJSON_Delete(res.j);
    memset(&res, 0, sizeof res);
    aloft_push_pull_reply(&t->a, &push, rc, job, &res.r);
    collect(t, &res);
    return &res;
}

static void test_pull_endpoint(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    const char *trig = "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:9/fw.bin\",\"id\":\"t-1\"}";
    struct aloft_push_request r = req("POST", "/api/ota/pull");
    r.content_type = "application/json";
    r.content_length = (int64_t)strlen(trig);
    struct res *o = start(&t, &r, trig, strlen(trig));
    assert_int_equal(o->begin, 0);
    aloft_push_end(&t.a, &push, &o->r);
    assert_true(o->r.start_pull);
    assert_int_equal(o->r.status, 0);
    assert_string_equal(push.pull.url, "http://127.0.0.1:9/fw.bin");
    assert_string_equal(push.pull.trigger, "t-1");
    assert_false(push.pull.frontend);

    /* what the glue's aloft_pull_start answered, as replies */
    static struct aloft_pull job;
    o = pull_reply(&t, 0, &job);
    assert_int_equal(o->r.status, 202);
    assert_string_equal(o->body, "{\"status\":\"accepted\",\"trigger\":\"t-1\","
                                 "\"message\":\"Downloading; follow GET /api/ota/state\"}");
    const char *busy = "another update is in progress; try again when it is done";
    is_error(pull_reply(&t, ALOFT_E_BUSY, &job), 409, "busy", busy);
    is_error(pull_reply(&t, ALOFT_E_STATE, &job), 409, "already_handled", "a trigger with this id was handled already");
    snprintf(job.code, sizeof job.code, "pending_verify");
    snprintf(job.reason, sizeof job.reason, "the running image is still pending verification");
    is_error(pull_reply(&t, ALOFT_E_INVAL, &job), 409, "pending_verify", job.reason);
    snprintf(job.code, sizeof job.code, "no_frontend_slots");
    snprintf(job.reason, sizeof job.reason, "this device has no www slots");
    is_error(pull_reply(&t, ALOFT_E_NOTFOUND, &job), 422, "no_frontend_slots", job.reason);
    aloft_push_abort(&t.a, &push);

    /* refused here: bad JSON, too large (2048 bytes: one too many) */
    o = run(&t, &r, "{\"type\":\"ota_trigger\"", 21);
    is_error(o, 400, "bad_trigger", NULL);
    o = run(&t, &r, "[1,2]", 5);
    is_error(o, 400, "bad_trigger", NULL);
    char big[4096];
    memset(big, ' ', sizeof big);
    memcpy(big, trig, strlen(trig));
    o = run(&t, &r, big, ALOFT_PUSH_TRIGGER_MAX - 1);
    assert_true(o->r.start_pull);
    o = run(&t, &r, big, ALOFT_PUSH_TRIGGER_MAX);
    is_error(o, 413, "too_large", "a trigger is at most 2 KB of JSON");
    o = run(&t, &r, big, sizeof big);
    is_error(o, 413, "too_large", "a trigger is at most 2 KB of JSON");
    assert_false(t.a.busy);
    aloft_test_agent_free(&t);
}

/* A trigger through the endpoint, started as the glue starts it. */
static struct res *trigger(struct aloft_test_agent *t, struct aloft_pull *job, const char *json)
{
    struct aloft_push_request r = req("POST", "/api/ota/pull");
    r.content_length = (int64_t)strlen(json);
    struct res *o = start(t, &r, json, strlen(json));
    assert_int_equal(o->begin, 0);
    aloft_push_end(&t->a, &push, &o->r);
    assert_true(o->r.start_pull);
    int rc = aloft_pull_start(&t->a, job, &push.pull);
    o = pull_reply(t, rc, job);
    aloft_push_abort(&t->a, &push);
    return o;
}

static void test_pull_endpoint_with_the_job(void **state)
{
    (void)state;
    static struct aloft_pull job, other;
    struct aloft_test_agent t;
    device(&t, NULL);
    struct res *o = trigger(&t, &job, "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:9/a.bin\",\"id\":\"t-1\"}");
    assert_int_equal(o->r.status, 202);
    assert_string_equal(jstr(o->j, "trigger"), "t-1");
    assert_true(t.a.busy); /* the job holds the update slot: pushes wait */
    is_error(post(&t, "/ota", v2, v2_len, NULL), 409, "busy", NULL);
    o = trigger(&t, &other, "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:9/b.bin\",\"id\":\"t-2\"}");
    is_error(o, 409, "busy", "another update is in progress; try again when it is done");
    o = trigger(&t, &other, "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:9/a.bin\",\"id\":\"t-1\"}");
    is_error(o, 409, "already_handled", "a trigger with this id was handled already");
    aloft_test_agent_free(&t);

    /* refused at once, with the job's code and reason */
    aloft_test_agent_init(&t, FLASH_1M, ALOFT_TEST_CSV_SMALL, v1, v1_len, NULL, 0, NULL);
    o = trigger(&t, &job, "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:9/w.bin\",\"target\":\"frontend\"}");
    is_error(o, 422, "no_frontend_slots", job.reason);
    assert_false(t.a.busy);
    assert_int_equal(post(&t, "/ota", v2, v2_len, NULL)->r.status, 200);
    boots(&t, "2.0.0", "ota_1");
    o = trigger(&t, &job, "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:9/c.bin\"}");
    is_error(o, 409, "pending_verify", job.reason);
    assert_false(t.a.busy);
    aloft_test_agent_free(&t);
}

/* ---- power cut before every flash operation ---- */

struct sweep {
    const char *path;
    const uint8_t *body;
    size_t len;
};

/* The device of the sweeps, its flash operations counted from 0. */
static void sweep_device(struct aloft_test_agent *t)
{
    aloft_test_agent_init(t, FLASH_1M, CSV_SMALL_WWW, v1, v1_len, www1_small, 0x20000, NULL);
    t->dev.pf.ops = 0;
}

/* After a cut: boots v1 or v2 and serves the v1 or v2 frontend from its
 * active slot, which mounts. Returns whether the update took. */
static bool survived(struct aloft_test_agent *t, uint64_t k, bool tear, bool frontend)
{
    int rc = aloft_test_agent_reboot(t, "POWERON");
    if (rc)
        fail_msg("cut %s op %llu: boot failed: %s", tear ? "tearing" : "before", (unsigned long long)k,
                 aloft_strerror(rc));
    const char *v = aloft_test_running_version(&t->dev);
    if (strcmp(v, "1.0.0") && strcmp(v, "2.0.0"))
        fail_msg("cut at op %llu: running '%s'", (unsigned long long)k, v);
    if (!t->a.www_ok)
        fail_msg("cut at op %llu: www_%u does not mount", (unsigned long long)k, t->a.www_slot);
    struct res *o = get(t, "/");
    assert_int_equal(o->r.status, 200);
    assert_string_equal(o->body, t->a.www_slot ? "<h1>v2</h1>" : "<h1>v1</h1>");
    assert_false(t->a.busy);
    return frontend ? t->a.www_slot == 1 : !strcmp(v, "2.0.0");
}

static void cut_everywhere(const struct sweep *s, bool frontend)
{
    struct aloft_test_agent t;
    sweep_device(&t);
    struct res *o = post(&t, s->path, s->body, s->len, NULL);
    assert_int_equal(o->r.status, 200);
    uint64_t n = t.dev.pf.ops;
    assert_true(n > 0);
    assert_true(survived(&t, 0, false, frontend));
    aloft_test_agent_free(&t);

    unsigned took = 0;
    for (int tear = 0; tear < 2; tear++) {
        for (uint64_t k = 1; k <= n; k++) {
            sweep_device(&t);
            aloft_posix_flash_cut(&t.dev.pf, k, tear);
            o = post(&t, s->path, s->body, s->len, NULL);
            if (k == 1) /* the erase at begin: said at once */
                assert_int_equal(o->begin, 1);
            is_error(o, 500, "flash_error", NULL);
            took += survived(&t, k, tear, frontend);
            aloft_test_agent_free(&t);
        }
    }
    printf("%-10s %4llu flash operations, each cut before and torn: the update took %u times\n",
           frontend ? "frontend" : "firmware", (unsigned long long)n, took);
}

static void test_power_cut_firmware_push(void **state)
{
    (void)state;
    cut_everywhere(&(struct sweep){"/ota", v2, v2_len}, false);
}

static void test_power_cut_frontend_push(void **state)
{
    (void)state;
    cut_everywhere(&(struct sweep){"/api/ota/frontend", www2_small, 0x20000}, true);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_documents),
        cmocka_unit_test(test_firmware_push),
        cmocka_unit_test(test_psk),
        cmocka_unit_test(test_cross_site_refused),
        cmocka_unit_test(test_refused_from_the_headers),
        cmocka_unit_test(test_refused_images),
        cmocka_unit_test(test_secure_version),
        cmocka_unit_test(test_busy),
        cmocka_unit_test(test_dropped_upload),
        cmocka_unit_test(test_frontend_push_and_rollback),
        cmocka_unit_test(test_frontend_refused),
        cmocka_unit_test(test_no_frontend_slots),
        cmocka_unit_test(test_static_files),
        cmocka_unit_test(test_pull_endpoint),
        cmocka_unit_test(test_pull_endpoint_with_the_job),
        cmocka_unit_test(test_power_cut_firmware_push),
        cmocka_unit_test(test_power_cut_frontend_push),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
