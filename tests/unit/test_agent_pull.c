/* Pull jobs and scheduled checks through the agent (pull.h, PROTOCOLS.md
 * §3), with no network: the test plays the server, handing each response's
 * status, headers and body chunks in as a glue would, and checks every
 * request the agent asks for. After every refusal the app slot, otadata
 * and the settings outside pull/ are compared byte for byte. Ends with
 * power cut before (and torn at) every flash operation of a whole pull:
 * the job, the restart and the confirm. */
#include "testagent.h"
#include "testsign.h"

#include <cjson/cJSON.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "aloft/err.h"
#include "aloft/otadata.h"
#include "aloft/pull.h"
#include "hex.h"
#include "image_make.h"

#define FLASH_4M 0x400000u
#define FLASH_1M 0x100000u
#define CHUNK 1460 /* a TCP segment */
#define MAC "02:00:00:00:00:01"
#define SERVER "http://srv.test"
#define URL "http://files.test/fw.bin"
#define V2_SIZE 150000 /* past two 64 KB marks */

static uint8_t *v1, *v2, *s3, *other, *low, *www2, *v2_ec, *v2_rsa;
static size_t v1_len, v2_len, s3_len, other_len, low_len, www2_len, v2_ec_len, v2_rsa_len;
static char key_ec[65];
static char v1_sha[65], v1_md5[33], v2_sha[65], v2_md5[33];

/* ---- the server the test plays ---- */

/* A file served over HTTP: 200, or 206 for a Range. */
struct file {
    const uint8_t *data;
    size_t len;
    const char *etag, *md5, *version; /* response headers (NULL: none) */
    int status;                       /* answer this without a body instead (304, 404...) */
    bool whole;                       /* ignore Range: 200 with the whole file */
    bool bad_range;                   /* answer a Range with another range (from byte 0) */
    const char *length;               /* Content-Length to claim (NULL: the real one) */
    size_t drop_at;                   /* the connection drops once the file is sent up to here (0: never) */
    unsigned drops;                   /* the first this many transfers drop (0: all) */
    unsigned dropped;
};

static struct aloft_pull_request seen[24]; /* the requests of the last run */
static unsigned nseen;

/* One response, handed in as a glue would: headers (name, value, …, NULL),
 * then body[from, to) in chunks, then how the transfer ended. */
static void transfer(struct aloft_test_agent *t, struct aloft_pull *j, int status, const char *const *h,
                     const uint8_t *body, size_t from, size_t to, enum aloft_net net, const char *detail)
{
    aloft_pull_head_begin(j);
    for (int i = 0; h && h[i]; i += 2)
        aloft_pull_header(j, h[i], h[i + 1]);
    if (aloft_pull_head_end(&t->a, j, status) == 0) {
        for (size_t at = from; at < to; at += CHUNK)
            if (aloft_pull_body(&t->a, j, body + at, to - at < CHUNK ? to - at : CHUNK)) {
                net = ALOFT_NET_STOPPED;
                break;
            }
    } else {
        net = ALOFT_NET_STOPPED;
    }
    aloft_pull_done(&t->a, j, net, status, detail);
}

/* "Range: bytes=N-" of a request, or 0. */
static size_t range_of(const struct aloft_pull_request *req)
{
    const char *r = strstr(req->headers, "Range: bytes=");
    return r && r[-1] != '-' ? (size_t)strtoull(r + 13, NULL, 10) : 0;
}

/* Answer the job's next request. Returns false when the job is over. */
static bool serve(struct aloft_test_agent *t, struct aloft_pull *j, struct file *f)
{
    assert_true(nseen < sizeof seen / sizeof seen[0]);
    struct aloft_pull_request *req = &seen[nseen];
    if (aloft_pull_request(&t->a, j, req))
        return false;
    nseen++;
    size_t from = range_of(req);
    int status = f->status ? f->status : from && !f->whole ? 206 : 200;
    size_t start = status == 206 && !f->bad_range ? from : 0;
    const char *h[16];
    int n = 0;
    char clen[24], crange[80];
    if (status == 200 || status == 206) {
        snprintf(clen, sizeof clen, "%zu", f->len - start);
        h[n++] = "Content-Length", h[n++] = f->length ? f->length : clen;
        if (status == 206) {
            snprintf(crange, sizeof crange, "bytes %zu-%zu/%zu", start, f->len - 1, f->len);
            h[n++] = "Content-Range", h[n++] = crange;
        }
    }
    if (f->etag)
        h[n++] = "ETag", h[n++] = f->etag;
    if (f->md5)
        h[n++] = "x-MD5", h[n++] = f->md5;
    if (f->version)
        h[n++] = "X-Aloft-Version", h[n++] = f->version;
    h[n] = NULL;
    size_t end = status == 200 || status == 206 ? f->len : 0;
    enum aloft_net net = ALOFT_NET_OK;
    if (f->drop_at && (!f->drops || f->dropped < f->drops)) {
        f->dropped++;
        end = f->drop_at > start ? f->drop_at : start;
        net = ALOFT_NET_DROPPED;
    }
    transfer(t, j, status, h, f->data, start, end, net, net == ALOFT_NET_DROPPED ? "Connection reset by peer" : NULL);
    return true;
}

/* Run the job to its end. Returns aloft_pull_result. */
static int run(struct aloft_test_agent *t, struct aloft_pull *j, struct file *f)
{
    nseen = 0;
    while (serve(t, j, f))
        ;
    return aloft_pull_result(j);
}

/* ---- the device ---- */

static unsigned updated_reports; /* "updated" outcomes the device sent */
static void (*helper_report)(void *ctx, const char *url, const char *json);

static void count_report(void *ctx, const char *url, const char *json)
{
    if (strstr(json, "\"result\":\"updated\""))
        updated_reports++;
    helper_report(ctx, url, json);
}

/* A device running v1 that knows the update server, with settings of its
 * own outside pull/ (they must never change). */
static void device(struct aloft_test_agent *t, uint32_t flash, const char *csv, const uint8_t *www, size_t www_len)
{
    struct aloft_agent_config cfg = {.mac = MAC, .server = SERVER};
    aloft_test_agent_init(t, flash, csv, v1, v1_len, www, www_len, &cfg);
    helper_report = t->port.report;
    t->port.report = count_report;
    updated_reports = 0;
    assert_int_equal(aloft_posix_kv_set(&t->kv, "security/ota_psk", "s3cret", 6), 0);
    assert_int_equal(aloft_posix_kv_set(&t->kv, "www/slot", "0", 1), 0);
    assert_int_equal(aloft_posix_kv_set(&t->kv, "app/color", "blue", 4), 0);
}

/* A setting's value, or NULL when absent. */
static const char *setting(struct aloft_test_agent *t, const char *key)
{
    static char buf[4][1100];
    static unsigned i;
    char *b = buf[i++ % 4];
    int n = aloft_posix_kv_get(&t->kv, key, b, sizeof buf[0] - 1);
    if (n == ALOFT_E_NOTFOUND)
        return NULL;
    assert_true(n >= 0);
    b[n] = 0;
    return b;
}

static void no_job_left(struct aloft_test_agent *t)
{
    assert_null(setting(t, "pull/job"));
    assert_null(setting(t, "pull/url"));
    assert_null(setting(t, "pull/token"));
    assert_null(setting(t, "pull/offset"));
}

static struct aloft_pull_req trigger(const char *id)
{
    struct aloft_pull_req r = {.url = URL};
    snprintf(r.trigger, sizeof r.trigger, "%s", id);
    return r;
}

/* The state document: its "state", and "code" (NULL: not checked) and a
 * part of its "reason" (NULL: not checked). */
static void state_is(struct aloft_test_agent *t, const char *state, const char *code, const char *reason)
{
    cJSON *j = cJSON_Parse(t->state);
    assert_non_null(j);
    const char *s = cJSON_GetStringValue(cJSON_GetObjectItem(j, "state"));
    if (!s || strcmp(s, state))
        fail_msg("state %s, want %s: %s", s ? s : "(none)", state, t->state);
    if (code)
        assert_string_equal(cJSON_GetStringValue(cJSON_GetObjectItem(j, "code")), code);
    if (reason && !strstr(cJSON_GetStringValue(cJSON_GetObjectItem(j, "reason")), reason))
        fail_msg("reason: '%s' is not in %s", reason, t->state);
    cJSON_Delete(j);
}

static void boots(struct aloft_test_agent *t, const char *reason, const char *version, const char *partition)
{
    assert_int_equal(aloft_test_agent_reboot(t, reason), 0);
    assert_string_equal(aloft_test_running_version(&t->dev), version);
    assert_string_equal(t->dev.boot.running->label, partition);
}

/* ---- what must not change ---- */

struct snap {
    uint8_t *flash;
    char psk[16], slot[4], color[8];
};

static void snap_take(struct aloft_test_agent *t, struct snap *s)
{
    s->flash = malloc(t->dev.pf.size);
    memcpy(s->flash, t->dev.pf.mem, t->dev.pf.size);
    snprintf(s->psk, sizeof s->psk, "%s", setting(t, "security/ota_psk"));
    snprintf(s->slot, sizeof s->slot, "%s", setting(t, "www/slot"));
    snprintf(s->color, sizeof s->color, "%s", setting(t, "app/color"));
}

/* Every byte outside the settings (and outside the update slot when
 * written is set) is as before, and so is every setting outside pull/. */
static void unchanged(struct aloft_test_agent *t, struct snap *s, const char *written)
{
    const char *skip[] = {"nvs", written};
    for (int i = 0; i < 2; i++) {
        if (!skip[i])
            continue;
        const struct aloft_part *p = aloft_part_find_label(&t->dev.boot.table, skip[i]);
        assert_non_null(p);
        memcpy(s->flash + p->offset, t->dev.pf.mem + p->offset, p->size);
    }
    assert_memory_equal(t->dev.pf.mem, s->flash, t->dev.pf.size);
    assert_string_equal(setting(t, "security/ota_psk"), s->psk);
    assert_string_equal(setting(t, "www/slot"), s->slot);
    assert_string_equal(setting(t, "app/color"), s->color);
    free(s->flash);
}

/* ---- fixtures ---- */

static uint8_t *image(const char *chip, const char *project, const char *version, uint32_t secure_version,
                      uint32_t size, size_t *len)
{
    struct aloft_image_make_opts o = {
        .chip_id = (uint16_t)aloft_chip_id(chip),
        .project = project,
        .version = version,
        .secure_version = secure_version,
        .size = size,
    };
    uint8_t *img = NULL;
    assert_int_equal(aloft_image_make(&o, &img, len), 0);
    return img;
}

/* A LittleFS image for the 256 KB www slots with one index.html. */
static uint8_t *frontend(const char *version, size_t *len)
{
    char dir[400], path[500], html[64];
    snprintf(dir, sizeof dir, "%s/www-%s", aloft_test_tmpdir(), version);
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    snprintf(html, sizeof html, "<h1>%s</h1>", version);
    fputs(html, f);
    fclose(f);
    uint8_t *img;
    assert_int_equal(aloft_lfs_mkfs(dir, 0x40000, 4096, ALOFT_LFS_VERSION_2_1, &img, len, NULL), 0);
    return img;
}

static int setup(void **state)
{
    (void)state;
    v1 = image("esp32c3", "aloft-test", "1.0.0", 1, 0, &v1_len);
    v2 = image("esp32c3", "aloft-test", "2.0.0", 1, V2_SIZE, &v2_len);
    s3 = image("esp32s3", "aloft-test", "2.0.0", 1, 0, &s3_len);
    other = image("esp32c3", "other", "2.0.0", 1, 0, &other_len);
    low = image("esp32c3", "aloft-test", "2.0.0", 0, 0, &low_len);
    www2 = frontend("w2", &www2_len);
    const char *ec[] = {ALOFT_TEST_KEY_EC, NULL}, *rsa[] = {ALOFT_TEST_KEY_RSA, NULL};
    v2_ec = aloft_test_sign(v2, v2_len, ec, &v2_ec_len);
    v2_rsa = aloft_test_sign(v2, v2_len, rsa, &v2_rsa_len);
    aloft_test_key_hex(ALOFT_TEST_KEY_EC, key_ec);
    aloft_sha256_hex(v1, v1_len, v1_sha);
    aloft_sha256_hex(v2, v2_len, v2_sha);
    aloft_test_md5_hex(v1, v1_len, v1_md5);
    aloft_test_md5_hex(v2, v2_len, v2_md5);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(v1);
    free(v2);
    free(s3);
    free(other);
    free(low);
    free(www2);
    free(v2_ec);
    free(v2_rsa);
    return 0;
}

/* ---- a triggered pull, end to end ---- */

static void test_trigger_end_to_end(void **state)
{
    (void)state;
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    struct aloft_pull_req r = trigger("t-1");
    snprintf(r.version, sizeof r.version, "2.0.0");
    snprintf(r.sha256, sizeof r.sha256, "%s", v2_sha);
    snprintf(r.token, sizeof r.token, "tok-1");
    r.size = v2_len;
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    assert_true(t.a.busy);
    assert_true(aloft_test_agent_logged(&t, "pull: firmware " URL " into ota_1 for trigger t-1"));
    state_is(&t, "downloading", "", NULL);
    assert_string_equal(setting(&t, "pull/trigger"), "t-1");
    assert_string_equal(setting(&t, "pull/url"), URL);
    assert_string_equal(setting(&t, "pull/token"), "tok-1");
    assert_string_equal(setting(&t, "pull/offset"), "0");
    char want[600];
    snprintf(want, sizeof want,
             "{\"version\":\"2.0.0\",\"sha256\":\"%s\",\"size\":%zu,\"trigger\":\"t-1\",\"target\":\"firmware\","
             "\"slot\":\"ota_1\",\"etag\":\"\",\"md5\":\"\",\"check\":false}",
             v2_sha, v2_len);
    assert_string_equal(setting(&t, "pull/job"), want);

    struct aloft_pull_request req;
    assert_int_equal(aloft_pull_request(&t.a, &job, &req), 0);
    assert_string_equal(req.url, URL);
    assert_string_equal(req.user_agent, "aloft");
    assert_string_equal(req.headers, "Authorization: Bearer tok-1\r\n");
    assert_int_equal(req.delay_ms, 0);

    /* the body, with the progress kept every 64 KB and published every 5 % */
    char clen[24];
    snprintf(clen, sizeof clen, "%zu", v2_len);
    aloft_pull_head_begin(&job);
    aloft_pull_header(&job, "content-length", clen);
    aloft_pull_header(&job, "ETag", " \"e-1\" \r\n");
    aloft_pull_header(&job, "X-MD5", v2_md5);
    assert_int_equal(aloft_pull_head_end(&t.a, &job, 200), 0);
    unsigned states = t.states;
    for (size_t at = 0; at < v2_len; at += CHUNK) {
        size_t n = v2_len - at < CHUNK ? v2_len - at : CHUNK;
        assert_int_equal(aloft_pull_body(&t.a, &job, v2 + at, n), 0);
        assert_string_equal(setting(&t, "pull/offset"), at + n < 65536 ? "0" : at + n < 131072 ? "65536" : "131072");
    }
    assert_string_equal(setting(&t, "pull/offset"), "131072");
    assert_true(t.states - states >= 19);
    assert_null(t.restart);
    aloft_pull_done(&t.a, &job, ALOFT_NET_OK, 200, NULL);

    assert_int_equal(aloft_pull_result(&job), 0);
    assert_string_equal(t.restart, "SW");
    assert_true(t.a.busy); /* nothing else starts before the restart */
    state_is(&t, "restarting", "", NULL);
    char done[120];
    snprintf(done, sizeof done, "pull: %zu bytes verified into ota_1, version 2.0.0; restarting", v2_len);
    assert_true(aloft_test_agent_logged(&t, done));
    no_job_left(&t);
    const char *pending = setting(&t, "pull/pending");
    assert_non_null(pending);
    assert_non_null(strstr(pending, "{\"version\":\"2.0.0\",\"trigger\":\"t-1\",\"target\":\"firmware\","
                                    "\"slot\":\"ota_1\",\"seq\":"));
    assert_int_equal(aloft_pull_request(&t.a, &job, &req), 1);
    assert_int_equal(t.reports, 0);

    /* the new image runs, waiting for its confirm; then it is updated */
    boots(&t, "SW", "2.0.0", "ota_1");
    assert_int_equal(aloft_boot_state(&t.dev.boot), ALOFT_OTA_PENDING_VERIFY);
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    state_is(&t, "verifying", "", "2.0.0 runs; waiting for it to mark itself valid");
    assert_int_equal(t.reports, 0);
    /* provisioned meanwhile: the credential aloftd derived for this device */
    static const char key[] = "5d0e8b1c2a3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d";
    assert_int_equal(aloft_agent_put(&t.a, "security/server_key", key), 0);
    assert_int_equal(aloft_agent_confirm(&t.a), 0);
    state_is(&t, "updated", "", NULL);
    assert_true(aloft_test_agent_logged(&t, "pull: updated: firmware 2.0.0 is running (trigger t-1)"));
    assert_int_equal(t.reports, 1);
    assert_string_equal(t.report, "{\"version\":\"2.0.0\",\"result\":\"updated\",\"target\":\"2.0.0\","
                                  "\"reason\":\"\",\"partition\":\"ota_1\",\"state\":\"valid\",\"reset_reason\":\"SW\"}");
    /* signed: ?auth= is the HMAC-SHA256 of the body under the credential */
    uint8_t h[32];
    unsigned hlen = sizeof h;
    HMAC(EVP_sha256(), key, 64, (const uint8_t *)t.report, strlen(t.report), h, &hlen);
    char want_url[300], hex[65];
    aloft_hex(h, sizeof h, hex);
    snprintf(want_url, sizeof want_url, "%s/api/devices/%s/report?auth=%s", SERVER, MAC, hex);
    assert_string_equal(t.report_url, want_url);
    assert_null(setting(&t, "pull/pending"));
    assert_false(t.a.busy);

    /* told once; the same trigger again is ignored */
    boots(&t, "SW", "2.0.0", "ota_1");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    assert_int_equal(aloft_agent_confirm(&t.a), 0);
    assert_int_equal(t.reports, 1);
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), ALOFT_E_STATE);
    assert_true(aloft_test_agent_logged(&t, "pull: trigger t-1 was handled already; ignored"));
    assert_false(t.a.busy);
    aloft_test_agent_free(&t);
}

/* Without a length the progress is published once a second. */
static void test_progress_by_time(void **state)
{
    (void)state;
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    struct aloft_pull_req r = trigger("t-1");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct aloft_pull_request req;
    assert_int_equal(aloft_pull_request(&t.a, &job, &req), 0);
    aloft_pull_head_begin(&job);
    assert_int_equal(aloft_pull_head_end(&t.a, &job, 200), 0);
    unsigned states = t.states;
    for (size_t i = 0; i < 30; i++) {
        t.now_ms += 400;
        assert_int_equal(aloft_pull_body(&t.a, &job, v2 + i * CHUNK, CHUNK), 0);
    }
    assert_int_equal(t.states - states, 10);
    state_is(&t, "downloading", "", NULL);
    aloft_test_agent_free(&t);
}

/* ---- refusals ---- */

struct refusal {
    const char *name;
    const uint8_t *img;
    size_t len;
    const char *version, *sha256; /* the trigger's */
    uint64_t size;
    struct file f;                /* how the server answers (data/len: img) */
    enum aloft_net net;           /* not OK: every transfer ends so, with no response */
    const char *code, *reason;
    bool writes;                  /* the update slot was erased (identified and written) */
    bool reported;                /* a "failed" report goes to the server */
    bool signed_only;             /* the device trusts one key (key_ec) */
};

static void refused(const struct refusal *c)
{
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    if (c->signed_only) {
        assert_int_equal(aloft_posix_kv_set(&t.kv, "security/trusted_keys", key_ec, 64), 0);
        assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    }
    struct snap before;
    snap_take(&t, &before);
    struct aloft_pull_req r = trigger("t-1");
    snprintf(r.version, sizeof r.version, "%s", c->version ? c->version : "");
    snprintf(r.sha256, sizeof r.sha256, "%s", c->sha256 ? c->sha256 : "");
    r.size = c->size;
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct file f = c->f;
    f.data = c->img, f.len = c->len;
    nseen = 0;
    struct aloft_pull_request req;
    if (c->net != ALOFT_NET_OK)
        while (aloft_pull_request(&t.a, &job, &req) == 0) {
            seen[nseen++] = req;
            aloft_pull_done(&t.a, &job, c->net, 0, c->net == ALOFT_NET_TLS ? "SSL certificate problem" : NULL);
        }
    else
        run(&t, &job, &f);
    if (aloft_pull_result(&job) != -1 || strcmp(job.code, c->code))
        fail_msg("%s: result %d, code '%s' (%s)", c->name, aloft_pull_result(&job), job.code, job.reason);
    if (!strstr(job.reason, c->reason))
        fail_msg("%s: reason '%s' lacks '%s'", c->name, job.reason, c->reason);
    state_is(&t, "failed", c->code, c->reason);
    char line[80];
    snprintf(line, sizeof line, "pull: failed: %s (", c->code);
    assert_true(aloft_test_agent_logged(&t, line));
    assert_null(t.restart);
    assert_false(t.a.busy);
    no_job_left(&t);
    assert_null(setting(&t, "pull/pending"));
    assert_string_equal(setting(&t, "pull/trigger"), "t-1");
    assert_int_equal(t.reports, c->reported);
    if (c->reported) {
        assert_non_null(strstr(t.report, "\"version\":\"1.0.0\",\"result\":\"failed\",\"target\":\""));
        assert_string_equal(t.report_url, SERVER "/api/devices/" MAC "/report"); /* no credential: unsigned */
        assert_non_null(strstr(t.report, c->reason));
    }
    unchanged(&t, &before, c->writes ? "ota_1" : NULL);
    boots(&t, "SW", "1.0.0", "ota_0");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    aloft_test_agent_free(&t);
}

static void test_refused_images(void **state)
{
    (void)state;
    static const char wrong_md5[] = "0123456789abcdef0123456789abcdef";
    char too_big[24];
    snprintf(too_big, sizeof too_big, "%u", 2u * 1024 * 1024);
    const struct refusal cases[] = {
        {"wrong chip", s3, s3_len, .code = "wrong_chip", .reason = "this device is esp32c3", .reported = true},
        {"wrong project", other, other_len, .code = "wrong_project",
         .reason = "the image is for project 'other'; this device runs 'aloft-test'", .reported = true},
        {"secure version", low, low_len, .code = "secure_version",
         .reason = "secure_version 0 is below the running image's 1", .reported = true},
        {"same version", v1, v1_len, .code = "same_version",
         .reason = "the image is version 1.0.0, which this device runs already"},
        {"wrong version", v2, v2_len, .version = "3.0.0", .code = "wrong_version",
         .reason = "expected version 3.0.0; the image is 2.0.0", .reported = true},
        {"bad sha256", v2, v2_len, .sha256 = v1_sha, .code = "bad_sha256", .reason = "; expected ",
         .writes = true, .reported = true},
        {"bad md5", v2, v2_len, .f = {.md5 = wrong_md5}, .code = "bad_md5",
         .reason = "x-MD5 says 0123456789abcdef0123456789abcdef", .writes = true, .reported = true},
        {"size from the headers", v2, v2_len, .size = V2_SIZE + 1, .code = "size_mismatch",
         .reason = "; the trigger says ", .reported = true},
        {"size from the body", v2, v2_len, .size = 1000, .f = {.length = "0"}, .code = "size_mismatch",
         .reason = "expected 1000", .writes = true, .reported = true},
        {"too large", v2, v2_len, .f = {.length = too_big}, .code = "too_large",
         .reason = "the body is 2097152 bytes; ota_1 holds 1048576", .reported = true},
        {"truncated", v2, v2_len, .f = {.drop_at = 70000}, .code = "truncated",
         .reason = "stopped at byte 70000 of ", .writes = true, .reported = true},
        {"short body", v2, v2_len, .f = {.drop_at = 100}, .code = "truncated",
         .reason = "stopped at byte 100 of ", .reported = true},
        {"http 404", v2, v2_len, .f = {.status = 404}, .code = "http_404", .reason = URL " answered 404",
         .reported = true},
        {"http 503", v2, v2_len, .f = {.status = 503}, .code = "http_503",
         .reason = URL " answered 503, 5 times in a row", .reported = true},
        {"http 204", v2, v2_len, .f = {.status = 204}, .code = "http_status",
         .reason = URL " answered 204, not 200 with the image", .reported = true},
        {"redirect", v2, v2_len, .net = ALOFT_NET_REDIRECT, .code = "redirect", .reason = URL ": a redirect was refused",
         .reported = true},
        {"tls", v2, v2_len, .net = ALOFT_NET_TLS, .code = "tls", .reason = URL ": SSL certificate problem",
         .reported = true},
        {"unreachable", v2, v2_len, .net = ALOFT_NET_DROPPED, .code = "unreachable",
         .reason = URL ": the connection dropped", .reported = true},
        {"not an image", www2, 4096, .code = "not_an_image", .reason = "not an ESP app image", .reported = true},
        {"unsigned", v2, v2_len, .code = "unsigned", .reason = "no signature sector", .writes = true,
         .reported = true, .signed_only = true},
        {"untrusted key", v2_rsa, v2_rsa_len, .code = "untrusted_key", .reason = "no block by a trusted key",
         .writes = true, .reported = true, .signed_only = true},
        {"truncated signature", v2_ec, v2_ec_len, .f = {.drop_at = v2_ec_len - 10}, .code = "truncated",
         .reason = "stopped at byte", .writes = true, .reported = true, .signed_only = true},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        refused(&cases[i]);
}

/* A device that trusts a key pulls an image signed by it, across a dropped
 * connection (the signature's digest runs on through the resume). */
static void test_signed_pull(void **state)
{
    (void)state;
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    assert_int_equal(aloft_posix_kv_set(&t.kv, "security/trusted_keys", key_ec, 64), 0);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    struct aloft_pull_req r = trigger("s-1");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct file f = {.data = v2_ec, .len = v2_ec_len, .drop_at = 100000, .drops = 1};
    assert_int_equal(run(&t, &job, &f), 0);
    assert_string_equal(t.restart, "SW");
    boots(&t, "SW", "2.0.0", "ota_1");
    aloft_test_agent_free(&t);
}

/* The retries of a transfer that brings nothing: 250 ms doubling up to 4 s
 * (100 ms after one that brought bytes), five in a row, then it fails. */
static void test_backoff(void **state)
{
    (void)state;
    refused(&(struct refusal){"unreachable", v2, v2_len, .net = ALOFT_NET_DROPPED, .code = "unreachable",
                              .reason = "the connection dropped", .reported = true});
    assert_int_equal(nseen, ALOFT_PULL_MAX_STALLS);
    const uint32_t cold[] = {0, 250, 500, 1000, 2000};
    for (unsigned i = 0; i < nseen; i++) {
        assert_int_equal(seen[i].delay_ms, cold[i]);
        assert_string_equal(seen[i].url, URL);
        assert_string_equal(seen[i].headers, "");
    }
    refused(&(struct refusal){"truncated", v2, v2_len, .f = {.drop_at = 70000}, .code = "truncated",
                              .reason = "5 times in a row", .writes = true, .reported = true});
    assert_int_equal(nseen, 1 + ALOFT_PULL_MAX_STALLS);
    const uint32_t warm[] = {0, 100, 250, 500, 1000, 2000};
    for (unsigned i = 0; i < nseen; i++) {
        assert_int_equal(seen[i].delay_ms, warm[i]);
        assert_string_equal(seen[i].headers, i ? "Range: bytes=70000-\r\n" : "");
    }
}

/* Refused before anything is written: busy (the running job goes on),
 * pending_verify, no_frontend_slots. */
static void test_refused_at_once(void **state)
{
    (void)state;
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    struct aloft_pull_req r = trigger("t-1");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct file f = {v2, v2_len, .etag = "\"e\""};
    nseen = 0;
    assert_true(serve(&t, &job, &(struct file){v2, v2_len, .drop_at = 70000, .drops = 1}));
    struct snap before;
    snap_take(&t, &before);
    unsigned reports = t.reports;
    struct aloft_pull_req r2 = trigger("t-2");
    snprintf(r2.version, sizeof r2.version, "9.9.9");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r2), ALOFT_E_BUSY); /* the same struct: left alone */
    state_is(&t, "failed", "busy", "another update is in progress; try again when it is done");
    assert_true(aloft_test_agent_logged(&t, "pull: refused " URL ": another update is in progress"));
    assert_string_equal(setting(&t, "pull/trigger"), "t-1");
    assert_int_equal(t.reports, reports);
    unchanged(&t, &before, NULL);
    assert_true(t.a.busy);
    assert_int_equal(run(&t, &job, &f), 0); /* the first job finishes */
    assert_string_equal(seen[0].headers, "Range: bytes=70000-\r\n");

    /* the new image waits for its confirm: no update now */
    boots(&t, "SW", "2.0.0", "ota_1");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    snap_take(&t, &before);
    assert_int_equal(aloft_pull_start(&t.a, &job, &r2), ALOFT_E_INVAL);
    assert_string_equal(job.code, "pending_verify");
    state_is(&t, "failed", "pending_verify", "still pending verification");
    assert_false(t.a.busy);
    unchanged(&t, &before, NULL);
    assert_int_equal(aloft_pull_check(&t.a, &job, false, v1_md5, v1_sha), ALOFT_E_STATE);
    assert_true(aloft_test_agent_logged(&t, "check: skipped: the running image has not confirmed itself yet"));
    aloft_test_agent_free(&t);

    device(&t, FLASH_1M, ALOFT_TEST_CSV_SMALL, NULL, 0);
    snap_take(&t, &before);
    r.frontend = true;
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), ALOFT_E_NOTFOUND);
    assert_string_equal(job.code, "no_frontend_slots");
    state_is(&t, "failed", "no_frontend_slots", "has no www_0/www_1 slots");
    assert_false(t.a.busy);
    unchanged(&t, &before, NULL);
    assert_int_equal(aloft_pull_check(&t.a, &job, true, v1_md5, v1_sha), ALOFT_E_NOTFOUND);
    assert_true(aloft_test_agent_logged(&t, "pull: check: skipped: this device's partition table has no www_0"));
    assert_false(t.a.busy);
    aloft_test_agent_free(&t);
}

/* A started job the glue cannot run (no thread) is aborted: failed with
 * the glue's reason, reported, the slot released, nothing changed; an
 * abort of a job that is not running does nothing. */
static void test_abort(void **state)
{
    (void)state;
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    struct snap before;
    snap_take(&t, &before);
    struct aloft_pull_req r = trigger("t-1");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    assert_true(t.a.busy);
    unsigned reports = t.reports;
    aloft_pull_abort(&t.a, &job, "no_thread", "cannot start a thread for the download");
    assert_false(t.a.busy);
    state_is(&t, "failed", "no_thread", "cannot start a thread");
    assert_int_equal(t.reports, reports + 1);
    assert_non_null(strstr(t.report, "\"result\":\"failed\""));
    assert_int_equal(aloft_pull_result(&job), -1);
    no_job_left(&t);
    unchanged(&t, &before, NULL);
    unsigned states = t.states;
    aloft_pull_abort(&t.a, &job, "again", "a second abort");
    assert_int_equal(t.states, states);
    struct aloft_pull_request req;
    assert_int_equal(aloft_pull_request(&t.a, &job, &req), 1);
    aloft_test_agent_free(&t);
}

/* ---- resuming ---- */

/* A drop at 70000, then the server's next answer; the job installs v2. */
static void resumes(struct file *f, const char *log)
{
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    struct aloft_pull_req r = trigger("t-1");
    snprintf(r.sha256, sizeof r.sha256, "%s", v2_sha);
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    f->data = v2, f->len = v2_len, f->drop_at = 70000, f->drops = 1, f->etag = "\"e-1\"";
    assert_int_equal(run(&t, &job, f), 0);
    assert_string_equal(seen[0].headers, "");
    assert_string_equal(seen[1].headers, "Range: bytes=70000-\r\nIf-Range: \"e-1\"\r\n");
    assert_int_equal(seen[1].delay_ms, 100);
    assert_true(aloft_test_agent_logged(&t, "pull: resuming " URL " at byte 70000 if still \"e-1\""));
    assert_true(aloft_test_agent_logged(&t, log));
    assert_string_equal(t.restart, "SW");
    boots(&t, "SW", "2.0.0", "ota_1");
    aloft_test_agent_free(&t);
}

static void test_resume_after_a_drop(void **state)
{
    (void)state;
    struct file f = {0};
    char dropped[120];
    snprintf(dropped, sizeof dropped, "pull: the download stopped at byte 70000 of %zu (Connection reset by peer); "
             "retrying", v2_len);
    resumes(&f, dropped);
    assert_int_equal(nseen, 2);

    /* a range from elsewhere: start over, without Range */
    f = (struct file){.bad_range = true};
    resumes(&f, "pull: the server answered the range from 70000 with another range; starting over");
    assert_int_equal(nseen, 3);
    assert_string_equal(seen[2].headers, "");

    /* the whole file instead of the rest: taken from byte 0 */
    f = (struct file){.whole = true};
    resumes(&f, "pull: the server sent the whole file instead of the rest (changed, or no Range support); "
                "starting over");
    assert_int_equal(nseen, 2);
}

/* Killed in the middle: the next boot resumes at pull/offset. */
static void test_restart_mid_download(void **state)
{
    (void)state;
    static struct aloft_pull job, again;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    struct aloft_pull_req r = trigger("t-1");
    snprintf(r.sha256, sizeof r.sha256, "%s", v2_sha);
    snprintf(r.token, sizeof r.token, "tok");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct aloft_pull_request req;
    assert_int_equal(aloft_pull_request(&t.a, &job, &req), 0);
    const char *h[] = {"ETag", "\"e-1\"", "x-MD5", v2_md5, NULL};
    aloft_pull_head_begin(&job);
    for (int i = 0; h[i]; i += 2)
        aloft_pull_header(&job, h[i], h[i + 1]);
    assert_int_equal(aloft_pull_head_end(&t.a, &job, 200), 0);
    for (size_t at = 0; at < 140000; at += 1000)
        assert_int_equal(aloft_pull_body(&t.a, &job, v2 + at, 1000), 0);
    assert_string_equal(setting(&t, "pull/offset"), "131072");

    /* the process dies here; the new boot carries on */
    boots(&t, "POWERON", "1.0.0", "ota_0");
    assert_false(t.a.busy);
    assert_int_equal(aloft_pull_boot(&t.a, &again), 1);
    assert_true(t.a.busy);
    assert_true(aloft_test_agent_logged(&t, "pull: resuming the firmware download of " URL
                                            " at byte 131072 for trigger t-1"));
    state_is(&t, "downloading", "", NULL);
    struct file f = {v2, v2_len, .etag = "\"e-1\""};
    assert_int_equal(run(&t, &again, &f), 0);
    assert_int_equal(nseen, 1);
    assert_string_equal(seen[0].headers, "Authorization: Bearer tok\r\nRange: bytes=131072-\r\nIf-Range: \"e-1\"\r\n");
    boots(&t, "SW", "2.0.0", "ota_1");
    assert_int_equal(aloft_pull_boot(&t.a, &again), 0);
    assert_int_equal(aloft_agent_confirm(&t.a), 0);
    state_is(&t, "updated", "", NULL);
    assert_int_equal(updated_reports, 1);

    /* a slot that no longer holds what pull/offset says: start over */
    struct aloft_test_agent u;
    device(&u, FLASH_4M, NULL, NULL, 0);
    assert_int_equal(aloft_pull_start(&u.a, &job, &r), 0);
    assert_true(serve(&u, &job, &(struct file){v2, v2_len, .drop_at = 70000}));
    const struct aloft_part *slot = aloft_part_find_label(&u.dev.boot.table, "ota_1");
    memset(u.dev.pf.mem + slot->offset, 0, 4096);
    boots(&u, "POWERON", "1.0.0", "ota_0");
    assert_int_equal(aloft_pull_boot(&u.a, &again), 1);
    assert_true(aloft_test_agent_logged(&u, "pull: the 65536 bytes in ota_1 do not verify"));
    assert_int_equal(run(&u, &again, &f), 0);
    assert_string_equal(seen[0].headers, "Authorization: Bearer tok\r\n");
    aloft_test_agent_free(&u);
    aloft_test_agent_free(&t);
}

/* ---- scheduled checks ---- */

static void test_check(void **state)
{
    (void)state;
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    char md5[33], sha[65];
    assert_int_equal(aloft_pull_describe(&t.a, md5, sha), 0);
    assert_string_equal(md5, v1_md5);
    assert_string_equal(sha, v1_sha);

    /* 304: nothing to do, and nothing changes */
    struct snap before;
    snap_take(&t, &before);
    unsigned states = t.states;
    assert_int_equal(aloft_pull_check(&t.a, &job, false, md5, sha), 0);
    assert_true(t.a.busy);
    struct file f = {.status = 304};
    assert_int_equal(run(&t, &job, &f), 1);
    const char *check_url = SERVER "/update?dev=aloft-test&ver=1.0.0";
    assert_string_equal(seen[0].url, check_url);
    assert_string_equal(seen[0].user_agent, "ESP32-http-Update");
    char want[1000];
    snprintf(want, sizeof want,
             "x-ESP32-STA-MAC: " MAC "\r\nx-ESP32-AP-MAC: 02:00:00:00:00:02\r\nx-ESP32-free-space: 1048576\r\n"
             "x-ESP32-sketch-size: %zu\r\nx-ESP32-sketch-md5: %s\r\nx-ESP32-sketch-sha256: %s\r\n"
             "x-ESP32-chip-size: 4194304\r\nx-ESP32-sdk-version: %s\r\nx-ESP32-mode: sketch\r\n"
             "x-ESP32-version: 1.0.0\r\n",
             v1_len, v1_md5, v1_sha, t.a.app.desc.idf_ver[0] ? t.a.app.desc.idf_ver : "unknown");
    assert_string_equal(seen[0].headers, want);
    assert_true(aloft_test_agent_logged(&t, "pull: check: http://srv.test/update?dev=aloft-test&ver=1.0.0 answered "
                                            "304 (nothing to do)"));
    assert_false(t.a.busy);
    assert_int_equal(t.states, states);
    assert_int_equal(t.reports, 0);
    unchanged(&t, &before, NULL);
    no_job_left(&t);

    /* no answer, or an error: nothing either */
    assert_int_equal(aloft_pull_check(&t.a, &job, false, md5, sha), 0);
    struct aloft_pull_request req;
    assert_int_equal(aloft_pull_request(&t.a, &job, &req), 0);
    aloft_pull_done(&t.a, &job, ALOFT_NET_DROPPED, 0, "Connection refused");
    assert_int_equal(aloft_pull_result(&job), 1);
    assert_true(aloft_test_agent_logged(&t, "pull: check: http://srv.test/update?dev=aloft-test&ver=1.0.0: "
                                            "Connection refused"));
    assert_int_equal(aloft_pull_check(&t.a, &job, false, md5, sha), 0);
    f = (struct file){.status = 403};
    assert_int_equal(run(&t, &job, &f), 1);
    assert_true(aloft_test_agent_logged(&t, "ver=1.0.0 answered 403"));
    assert_false(t.a.busy);
    assert_int_equal(t.reports, 0);

    /* 200: aloftd's ETag names /firmware/<sha256>.bin, where a drop resumes */
    char etag[80], fw_url[200];
    snprintf(etag, sizeof etag, "\"%s\"", v2_sha);
    snprintf(fw_url, sizeof fw_url, SERVER "/firmware/%s.bin", v2_sha);
    assert_int_equal(aloft_pull_check(&t.a, &job, false, md5, sha), 0);
    f = (struct file){v2, v2_len, .etag = etag, .md5 = v2_md5, .version = "2.0.0", .drop_at = 70000, .drops = 1};
    assert_true(serve(&t, &job, &f));
    assert_string_equal(setting(&t, "pull/url"), fw_url);
    snprintf(want, sizeof want,
             "{\"version\":\"2.0.0\",\"sha256\":\"%s\",\"size\":0,\"trigger\":\"\",\"target\":\"firmware\","
             "\"slot\":\"ota_1\",\"etag\":\"\\\"%s\\\"\",\"md5\":\"%s\",\"check\":true}",
             v2_sha, v2_sha, v2_md5);
    assert_string_equal(setting(&t, "pull/job"), want);
    unsigned first = nseen;
    while (serve(&t, &job, &f))
        ;
    assert_int_equal(aloft_pull_result(&job), 0);
    assert_int_equal(nseen - first, 1);
    assert_string_equal(seen[first].url, fw_url);
    snprintf(want, sizeof want, "Range: bytes=70000-\r\nIf-Range: %s\r\n", etag);
    assert_string_equal(seen[first].headers, want);
    boots(&t, "SW", "2.0.0", "ota_1");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    assert_int_equal(aloft_pull_check(&t.a, &job, false, md5, sha), ALOFT_E_STATE);
    assert_int_equal(aloft_agent_confirm(&t.a), 0);
    state_is(&t, "updated", "", NULL);
    assert_int_equal(updated_reports, 1);
    aloft_test_agent_free(&t);
}

/* An image that never confirms: the next reset comes back on the old one,
 * the state and the server are told, and checks no longer offer it. */
static void test_rolled_back(void **state)
{
    (void)state;
    static struct aloft_pull job;
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, NULL, 0);
    struct aloft_pull_req r = trigger("t-1");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct file f = {.data = v2, .len = v2_len};
    assert_int_equal(run(&t, &job, &f), 0);
    boots(&t, "SW", "2.0.0", "ota_1");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    state_is(&t, "verifying", "", NULL);
    boots(&t, "PANIC", "1.0.0", "ota_0");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    const char *why = "2.0.0 did not come up in ota_1; back on ota_0 1.0.0 (reset reason PANIC)";
    state_is(&t, "rolled_back", "rolled_back", why);
    assert_true(aloft_test_agent_logged(&t, "pull: rolled back: 2.0.0 did not come up"));
    assert_int_equal(t.reports, 1);
    char want[400];
    snprintf(want, sizeof want, "{\"version\":\"1.0.0\",\"result\":\"rolled_back\",\"target\":\"2.0.0\",\"reason\":"
                                "\"%s\",\"partition\":\"ota_0\",\"state\":", why);
    assert_non_null(strstr(t.report, want));
    assert_non_null(strstr(t.report, "\"reset_reason\":\"PANIC\"}"));
    assert_string_equal(setting(&t, "pull/rolled_back"), "2.0.0");
    assert_null(setting(&t, "pull/pending"));
    assert_int_equal(updated_reports, 0);

    /* a check is refused that version (and reports nothing); a trigger may retry it */
    struct snap before;
    snap_take(&t, &before);
    char md5[33], sha[65];
    assert_int_equal(aloft_pull_describe(&t.a, md5, sha), 0);
    assert_int_equal(aloft_pull_check(&t.a, &job, false, md5, sha), 0);
    f = (struct file){v2, v2_len, .version = "2.0.0"};
    assert_int_equal(run(&t, &job, &f), -1);
    assert_string_equal(job.code, "rolled_back_before");
    state_is(&t, "failed", "rolled_back_before", "version 2.0.0 was rolled back on this device");
    assert_int_equal(t.reports, 1);
    unchanged(&t, &before, NULL);
    r = trigger("t-2");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    assert_int_equal(run(&t, &job, &f), 0);
    aloft_test_agent_free(&t);
}

/* ---- the frontend ---- */

static void test_frontend_pull(void **state)
{
    (void)state;
    static struct aloft_pull job;
    size_t www1_len;
    uint8_t *www1 = frontend("w1", &www1_len);
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, www1, www1_len);
    assert_true(t.a.www_ok);

    /* not a filesystem: refused, www_0 stays */
    struct snap before;
    snap_take(&t, &before);
    struct aloft_pull_req r = trigger("f-0");
    r.frontend = true;
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    assert_true(aloft_test_agent_logged(&t, "pull: frontend " URL " into www_1 for trigger f-0"));
    struct file f = {.data = v2, .len = v2_len};
    assert_int_equal(run(&t, &job, &f), -1);
    state_is(&t, "failed", "not_littlefs", "the body is not a LittleFS image that mounts");
    unchanged(&t, &before, "www_1");
    assert_null(setting(&t, "pull/pending"));

    r = trigger("f-1");
    r.frontend = true;
    snprintf(r.version, sizeof r.version, "w2");
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    f = (struct file){www2, www2_len, .drop_at = 100000, .drops = 1};
    assert_int_equal(run(&t, &job, &f), 0);
    assert_string_equal(seen[1].headers, "Range: bytes=100000-\r\n");
    assert_string_equal(t.restart, "SW");
    assert_string_equal(setting(&t, "www/slot"), "1");
    assert_string_equal(setting(&t, "pull/www"), "w2");
    boots(&t, "SW", "1.0.0", "ota_0");
    assert_int_equal(t.a.www_slot, 1);
    assert_true(t.a.www_ok);
    unsigned reports = t.reports;
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    state_is(&t, "updated", "", NULL);
    assert_true(aloft_test_agent_logged(&t, "pull: updated: frontend w2 is running (trigger f-1)"));
    assert_int_equal(t.reports, reports); /* the server's reports are about firmware */
    assert_null(setting(&t, "pull/pending"));

    /* the check for the frontend names what the last pull installed */
    char md5[33], sha[65];
    assert_int_equal(aloft_pull_describe(&t.a, md5, sha), 0);
    assert_int_equal(aloft_pull_check(&t.a, &job, true, md5, sha), 0);
    f = (struct file){.status = 304};
    assert_int_equal(run(&t, &job, &f), 1);
    assert_non_null(strstr(seen[0].headers, "x-ESP32-mode: spiffs\r\nx-ESP32-version: w2\r\n"));
    aloft_test_agent_free(&t);
    free(www1);
}

/* A device that trusts a key takes a pulled frontend only when signed by
 * it: an unsigned one fails (unsigned) with www/slot and the active slot
 * unchanged; the same filesystem, 4 KB smaller than the slot and signed,
 * becomes the active one. */
static void test_signed_frontend_pull(void **state)
{
    (void)state;
    static struct aloft_pull job;
    size_t www1_len, fs_len, signed_len;
    uint8_t *www1 = frontend("sf1", &www1_len);
    char dir[400], path[500];
    snprintf(dir, sizeof dir, "%s/www-sf2", aloft_test_tmpdir());
    assert_int_equal(mkdir(dir, 0700), 0);
    snprintf(path, sizeof path, "%s/index.html", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("<h1>sf2</h1>", f);
    fclose(f);
    uint8_t *fs;
    assert_int_equal(aloft_lfs_mkfs(dir, 0x40000 - 0x1000, 4096, ALOFT_LFS_VERSION_2_1, &fs, &fs_len, NULL), 0);
    const char *ec[] = {ALOFT_TEST_KEY_EC, NULL};
    uint8_t *sfs = aloft_test_sign(fs, fs_len, ec, &signed_len);
    assert_int_equal(signed_len, 0x40000);

    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, www1, www1_len);
    assert_int_equal(aloft_posix_kv_set(&t.kv, "security/trusted_keys", key_ec, 64), 0);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    struct snap before;
    snap_take(&t, &before);
    struct aloft_pull_req r = trigger("sf-1");
    r.frontend = true;
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct file file = {.data = fs, .len = fs_len};
    assert_int_equal(run(&t, &job, &file), -1);
    state_is(&t, "failed", "unsigned", "no signature sector");
    unchanged(&t, &before, "www_1");

    r = trigger("sf-2");
    r.frontend = true;
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    file = (struct file){.data = sfs, .len = signed_len};
    assert_int_equal(run(&t, &job, &file), 0);
    assert_string_equal(setting(&t, "www/slot"), "1");
    boots(&t, "SW", "1.0.0", "ota_0");
    assert_int_equal(t.a.www_slot, 1);
    assert_true(t.a.www_ok);
    aloft_test_agent_free(&t);
    free(www1), free(fs), free(sfs);
}

/* A frontend download killed halfway resumes after the restart; one whose
 * slot became the active one is abandoned; a new frontend that does not
 * mount after the restart is said so. */
static void test_frontend_outcomes(void **state)
{
    (void)state;
    static struct aloft_pull job;
    size_t www1_len;
    uint8_t *www1 = frontend("w1b", &www1_len);
    struct aloft_test_agent t;
    device(&t, FLASH_4M, NULL, www1, www1_len);
    struct aloft_pull_req r = trigger("f-1");
    r.frontend = true;
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    struct file f = {.data = www2, .len = www2_len, .drop_at = 70000, .drops = 1};
    assert_true(serve(&t, &job, &f));
    assert_string_equal(setting(&t, "pull/offset"), "65536");
    boots(&t, "POWERON", "1.0.0", "ota_0");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 1);
    assert_true(aloft_test_agent_logged(&t, "pull: resuming the frontend download of " URL
                                            " at byte 65536 for trigger f-1"));
    assert_int_equal(run(&t, &job, &f), 0);
    assert_string_equal(seen[0].headers, "Range: bytes=65536-\r\n");

    /* www_1 is written and made active, but does not mount after the restart */
    const struct aloft_part *w1 = aloft_part_find_label(&t.dev.boot.table, "www_1");
    memset(t.dev.pf.mem + w1->offset, 0, 8192);
    boots(&t, "SW", "1.0.0", "ota_0");
    assert_int_equal(t.a.www_slot, 1);
    assert_false(t.a.www_ok);
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    state_is(&t, "failed", "not_littlefs", "the new frontend in www_1 did not mount");
    assert_null(setting(&t, "pull/pending"));
    aloft_test_agent_free(&t);

    /* the slot being written became the active one: abandoned */
    device(&t, FLASH_4M, NULL, www1, www1_len);
    assert_int_equal(aloft_pull_start(&t.a, &job, &r), 0);
    f.dropped = 0;
    assert_true(serve(&t, &job, &f));
    assert_int_equal(aloft_posix_kv_set(&t.kv, "www/slot", "1", 1), 0);
    boots(&t, "POWERON", "1.0.0", "ota_0");
    assert_int_equal(aloft_pull_boot(&t.a, &job), 0);
    state_is(&t, "failed", "restarted", "the device restarted into another slot; the download is abandoned");
    assert_false(t.a.busy);
    no_job_left(&t);
    aloft_test_agent_free(&t);
    free(www1);
}

/* ---- power cut before every flash operation ---- */

/* A restart asked for (no power cycle): unlike aloft_test_agent_reboot,
 * which powers on, a cut not yet reached stays armed through the boot. */
static void restart_armed(struct aloft_test_agent *t)
{
    t->restart = NULL;
    t->cfg.reset_reason = "SW";
    t->cfg.boot_count++;
    struct aloft_boot *b = &t->dev.boot;
    const struct aloft_part *nvs;
    if (aloft_boot_init(b, &t->dev.pf.port, ALOFT_PART_TABLE_OFFSET, ALOFT_CHIP_ANY, t->dev.rollback) ||
        aloft_boot_select(b) || !(nvs = aloft_part_find(&b->table, ALOFT_PART_DATA, ALOFT_PART_NVS)) ||
        aloft_posix_kv_open(&t->kv, &t->dev.pf.port, nvs) || aloft_agent_start(&t->a, &t->port, b, &t->cfg))
        assert_true(t->dev.pf.dead); /* only a cut stops a boot */
}

/* Trigger a pull of v2 and drive the device until nothing is left to do:
 * the job, the restart it asks for, the boot (outcome, a resumed job), the
 * confirm. A dead flash (power cut) is a reboot too. */
static void pull_and_settle(struct aloft_test_agent *t, const char *id)
{
    static struct aloft_pull job;
    struct file f = {v2, v2_len, .etag = "\"e\"", .md5 = v2_md5};
    struct aloft_pull_req r = trigger(id);
    snprintf(r.sha256, sizeof r.sha256, "%s", v2_sha);
    if (aloft_pull_start(&t->a, &job, &r) == 0)
        run(t, &job, &f);
    for (int boot = 0; boot < 8; boot++) {
        if (!t->dev.pf.dead && !t->restart) {
            if (aloft_boot_state(&t->dev.boot) == ALOFT_OTA_PENDING_VERIFY)
                aloft_agent_confirm(&t->a); /* the health check passed */
            if (!t->dev.pf.dead)
                return;
        }
        if (t->dev.pf.dead) {
            int rc = aloft_test_agent_reboot(t, "POWERON");
            if (rc)
                fail_msg("boot after the cut failed: %s", aloft_strerror(rc));
        } else {
            restart_armed(t);
            if (t->dev.pf.dead)
                continue;
        }
        if (aloft_pull_boot(&t->a, &job) == 1)
            run(t, &job, &f);
    }
    fail_msg("the device never settled");
}

static void sweep_device(struct aloft_test_agent *t)
{
    device(t, FLASH_1M, ALOFT_TEST_CSV_SMALL, NULL, 0);
    t->dev.pf.ops = 0;
}

/* Old or new, never neither; on new, "updated" told exactly once; nothing
 * left behind, so that the next pull goes through. Returns whether v2 runs. */
static bool settled(struct aloft_test_agent *t, uint64_t k, bool tear)
{
    const char *v = aloft_test_running_version(&t->dev);
    bool updated = !strcmp(v, "2.0.0");
    if (!updated && strcmp(v, "1.0.0"))
        fail_msg("cut %s op %llu: running '%s'", tear ? "tearing" : "before", (unsigned long long)k, v);
    if (updated_reports != updated)
        fail_msg("cut %s op %llu: running %s, %u updated reports", tear ? "tearing" : "before",
                 (unsigned long long)k, v, updated_reports);
    assert_false(t->a.busy);
    if (setting(t, "pull/pending") || setting(t, "pull/job") || setting(t, "pull/url") || setting(t, "pull/offset"))
        fail_msg("cut %s op %llu: left behind: pending %s, job %s, url %s, offset %s", tear ? "tearing" : "before",
                 (unsigned long long)k, setting(t, "pull/pending"), setting(t, "pull/job"), setting(t, "pull/url"),
                 setting(t, "pull/offset"));
    if (updated) {
        assert_int_equal(aloft_boot_state(&t->dev.boot), ALOFT_OTA_VALID);
        state_is(t, "updated", "", NULL);
    } else {
        pull_and_settle(t, "again");
        assert_string_equal(aloft_test_running_version(&t->dev), "2.0.0");
        assert_int_equal(updated_reports, 1);
    }
    assert_string_equal(setting(t, "app/color"), "blue");
    return updated;
}

static void test_power_cut_sweep(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    sweep_device(&t);
    pull_and_settle(&t, "t-1");
    uint64_t n = t.dev.pf.ops;
    assert_true(settled(&t, 0, false));
    aloft_test_agent_free(&t);

    unsigned took = 0, resumed = 0, unswitched = 0;
    for (int tear = 0; tear < 2; tear++) {
        for (uint64_t k = 1; k <= n; k++) {
            sweep_device(&t);
            aloft_posix_flash_cut(&t.dev.pf, k, tear);
            pull_and_settle(&t, "t-1");
            resumed += aloft_test_agent_logged(&t, "pull: resuming the firmware download");
            unswitched += aloft_test_agent_logged(&t, "but the device restarted before switching to it");
            took += settled(&t, k, tear);
            aloft_test_agent_free(&t);
        }
    }
    printf("pull: %llu flash operations (job, restart, confirm), each cut before and torn: v2 ran %u times, "
           "resumed %u times, %u of them after the image was verified\n",
           (unsigned long long)n, took, resumed, unswitched);
    assert_true(resumed > n);
    assert_true(unswitched > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trigger_end_to_end),
        cmocka_unit_test(test_progress_by_time),
        cmocka_unit_test(test_refused_images),
        cmocka_unit_test(test_signed_pull),
        cmocka_unit_test(test_signed_frontend_pull),
        cmocka_unit_test(test_backoff),
        cmocka_unit_test(test_refused_at_once),
        cmocka_unit_test(test_abort),
        cmocka_unit_test(test_resume_after_a_drop),
        cmocka_unit_test(test_restart_mid_download),
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_rolled_back),
        cmocka_unit_test(test_frontend_pull),
        cmocka_unit_test(test_frontend_outcomes),
        cmocka_unit_test(test_power_cut_sweep),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
