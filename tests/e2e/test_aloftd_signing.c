/* aloftd's per-platform signing policy (on SQLite, and on PostgreSQL as
 * test_aloftd_signing_pg): set with `aloft server signing`, it refuses
 * uploads that are unsigned, signed by another key or whose signature does
 * not verify (422 with the reason), records each release's signer, logs
 * every change, outlives a restart, and lifts when its last key goes. Then
 * real nodes pull a signed release: the one trusting its key installs it,
 * the one trusting another refuses it. */
#include "aloftd_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct aloftd_proc srv;
static char key[300], other[300], digest[65], other_digest[65];

static void keygen(const char *out, char hex[65])
{
    char *o;
    const char *kg[] = {"aloft", "keygen", "--scheme", "ecdsa256", "-o", out, NULL};
    assert_int_equal(aloft_test_run(&o, kg), 0);
    const char *d = strstr(o, "public key digest ");
    assert_non_null(d);
    if (hex)
        snprintf(hex, 65, "%.64s", d + 18);
    free(o);
}

static const char *image(const char *version, const char *signer)
{
    static char out[4][300];
    static int i;
    char name[64];
    snprintf(name, sizeof name, "fw-%s.bin", version);
    const char *raw = e2e_path(name);
    e2e_image(raw, "esp32s3", version, 0, NULL);
    if (!signer)
        return raw;
    char *o = out[i++ % 4];
    snprintf(o, 300, "%s.%s.signed", raw, signer == key ? "key" : "other");
    const char *s[] = {"aloft", "image", "sign", raw, "--key", signer, "-o", o, NULL};
    assert_int_equal(aloft_test_run(NULL, s), 0);
    return o;
}

/* aloft server signing sig ... against srv; returns its exit status. */
static int signing(const char *verb, const char *k)
{
    const char *args[] = {"aloft", "server", "signing", "sig", verb, k, "--server", srv.url, "--token", srv.token, NULL};
    if (!verb) {
        args[4] = "--server", args[5] = srv.url, args[6] = "--token", args[7] = srv.token, args[8] = NULL;
    }
    return aloft_test_run(NULL, args);
}

static void refused(const char *file, const char *query, const char *code, const char *why)
{
    struct e2e_http r;
    int status = aloftd_upload(&srv, &r, file, query, NULL);
    if (status != 422 || strcmp(e2e_http_error(&r), code) || !strstr(r.body, why))
        fail_msg("%s: expected 422 %s (%s), got %d: %s", file, code, why, status, r.body);
    e2e_http_free(&r);
}

static void stored(const char *file, const char *query, const char *signer)
{
    struct e2e_http r;
    int status = aloftd_upload(&srv, &r, file, query, NULL);
    if (status != 201)
        fail_msg("%s: expected 201, got %d: %s", file, status, r.body);
    cJSON *j = cJSON_Parse(r.body);
    const cJSON *s = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "release"), "signer");
    if (signer)
        assert_string_equal(cJSON_GetStringValue(s), signer);
    else
        assert_true(cJSON_IsNull(s));
    cJSON_Delete(j);
    e2e_http_free(&r);
}

static void test_signing_policy(void **state)
{
    (void)state;
    snprintf(key, sizeof key, "%s", e2e_path("release.pem"));
    snprintf(other, sizeof other, "%s", e2e_path("other.pem"));
    keygen(key, digest);
    keygen(other, other_digest);
    aloftd_init(&srv, "signing");
    assert_int_equal(aloftd_start(&srv, NULL), 0);

    stored(image("1.0.0", NULL), "?platform=sig", NULL); /* no policy yet */
    assert_int_equal(signing("add", key), 0);           /* by its PEM: the digest is sent */
    cJSON *p = aloftd_json(&srv, "/api/platforms/sig/signing");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(p, "required")));
    assert_string_equal(cJSON_GetStringValue(cJSON_GetArrayItem(cJSON_GetObjectItem(p, "keys"), 0)), digest);
    cJSON_Delete(p);

    refused(image("2.0.0", NULL), "?platform=sig", "unsigned", "requires a signature by one of its keys");
    refused(image("2.0.0", other), "?platform=sig", "untrusted_key", "no block is by one of them");
    /* another image's block by the right key: it signs other bytes */
    size_t a_len, b_len;
    uint8_t *a = e2e_file_read(image("2.0.0", key), &a_len);
    uint8_t *b = e2e_file_read(image("3.0.0", key), &b_len);
    assert_int_equal(a_len, b_len);
    memcpy(a + a_len - 4096, b + b_len - 4096, 4096);
    const char *forged = e2e_path("forged.bin");
    e2e_file_write(forged, a, a_len);
    free(a), free(b);
    refused(forged, "?platform=sig", "bad_signature", "does not verify");

    stored(image("2.0.0", key), "?platform=sig", digest);
    char *out;
    const char *rel[] = {"aloft", "server", "releases", "sig", "--server", srv.url, "--token", srv.token, NULL};
    assert_int_equal(aloft_test_run(&out, rel), 0);
    char prefix[17];
    snprintf(prefix, sizeof prefix, "%.16s", digest);
    assert_non_null(strstr(out, prefix));
    free(out);

    /* a frontend is signed the same way */
    const char *dir = e2e_path("www");
    assert_int_equal(mkdir(dir, 0755), 0);
    char index[400];
    snprintf(index, sizeof index, "%s/index.html", dir);
    e2e_file_write(index, "<h1>x</h1>", 10);
    const char *www = e2e_path("www.bin"), *wwws = e2e_path("www.signed.bin");
    const char *mkfs[] = {"aloft", "mkfs", dir, "--size", "124K", "-o", www, NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);
    const char *s[] = {"aloft", "image", "sign", www, "--key", key, "-o", wwws, NULL};
    assert_int_equal(aloft_test_run(NULL, s), 0);
    refused(www, "?kind=frontend&platform=sig&version=w1", "unsigned", "has none");
    stored(wwws, "?kind=frontend&platform=sig&version=w1", digest);

    /* the policy is in the database: a restart keeps it */
    assert_int_equal(aloftd_stop(&srv), 0);
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    refused(image("4.0.0", NULL), "?platform=sig", "unsigned", "has none");

    /* bad keys change nothing; the last key removed lifts the policy */
    assert_int_equal(signing("add", "0123"), 1); /* neither a digest nor a PEM file */
    struct e2e_http r;
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/sig/signing", "{\"add\":[\"xyz\"]}"), 400);
    e2e_http_free(&r);
    char body[120];
    snprintf(body, sizeof body, "{\"remove\":[\"%064d\"]}", 0);
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/sig/signing", body), 404);
    e2e_http_free(&r);
    assert_int_equal(signing("remove", digest), 0);
    stored(image("4.0.0", NULL), "?platform=sig", NULL);

    char *log = aloftd_log_read(&srv);
    char line[200];
    snprintf(line, sizeof line, "sig: signing key %s added", digest);
    assert_non_null(strstr(log, line));
    snprintf(line, sizeof line, "sig: signing key %s removed", digest);
    assert_non_null(strstr(log, line));
    assert_non_null(strstr(log, "upload refused: 422 untrusted_key"));
    free(log);
}

/* Devices pull a signed release from aloftd: one that trusts its key
 * installs it; one that trusts another key refuses it and keeps running
 * what it ran. */
static void test_devices_pull_signed(void **state)
{
    (void)state;
    aloftd_init(&srv, "signing-pull");
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    stored(image("1.0.0", NULL), "", NULL);
    stored(image("2.0.0", key), "", digest); /* platform "demo": the descriptor's project */
    const char *v1 = e2e_path("fw-1.0.0.bin");
    struct e2e_node a, b;
    e2e_node_init(&a, "trusts-it");
    const char *a_args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--server", srv.url,
                            "--trusted-keys", digest, NULL};
    assert_int_equal(e2e_node_start(&a, a_args), 0);
    e2e_node_init(&b, "trusts-another");
    const char *b_args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--server", srv.url,
                            "--trusted-keys", other_digest, NULL};
    assert_int_equal(e2e_node_start(&b, b_args), 0);
    assert_int_equal(e2e_node_wait_log(&a, "pull: updated: firmware 2.0.0 is running", 1, 30000), 0);
    assert_int_equal(e2e_node_wait_log(&b, "pull: failed: untrusted_key", 1, 30000), 0);
    cJSON *st = e2e_status(&b);
    assert_string_equal(e2e_jstr(st, "version"), "1.0.0");
    cJSON_Delete(st);
    e2e_node_stop(&a);
    e2e_node_stop(&b);
}

int main(void)
{
    e2e_init(156);
    if (aloftd_db_init("aloftd signing test"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_signing_policy, aloftd_teardown),
        cmocka_unit_test_teardown(test_devices_pull_signed, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
