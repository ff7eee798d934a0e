/* Signed updates on a real node: aloft-node --trusted-keys provisions the
 * key digests into its settings; pushed app and frontend images are then
 * taken only when signed (aloft keygen, aloft image sign) by a trusted key,
 * every refusal with its code and nothing changed; the policy outlives
 * restarts until --trusted-keys none. */
#include "e2e.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char key[300], other[300], digest[65];
static char v1[300], v2[300], v2s[300], v2x[300], v3s[300], v4[300], www[300], wwws[300];

/* aloft keygen prints "<file>: <scheme> key; public key digest <hex>". */
static void keygen(const char *scheme, const char *out, char hex[65])
{
    char *o;
    const char *kg[] = {"aloft", "keygen", "--scheme", scheme, "-o", out, NULL};
    assert_int_equal(aloft_test_run(&o, kg), 0);
    const char *d = strstr(o, "public key digest ");
    assert_non_null(d);
    if (hex)
        snprintf(hex, 65, "%.64s", d + 18);
    free(o);
}

static void sign(const char *in, const char *k, const char *out)
{
    const char *s[] = {"aloft", "image", "sign", in, "--key", k, "-o", out, NULL};
    assert_int_equal(aloft_test_run(NULL, s), 0);
}

static int setup(void **state)
{
    (void)state;
    snprintf(key, sizeof key, "%s", e2e_path("release.pem"));
    snprintf(other, sizeof other, "%s", e2e_path("other.pem"));
    keygen("ecdsa256", key, digest);
    keygen("ecdsa256", other, NULL);
    snprintf(v1, sizeof v1, "%s", e2e_path("s-1.bin"));
    snprintf(v2, sizeof v2, "%s", e2e_path("s-2.bin"));
    snprintf(v2s, sizeof v2s, "%s", e2e_path("s-2.signed.bin"));
    snprintf(v2x, sizeof v2x, "%s", e2e_path("s-2.other.bin"));
    snprintf(v3s, sizeof v3s, "%s", e2e_path("s-3.signed.bin"));
    snprintf(v4, sizeof v4, "%s", e2e_path("s-4.bin"));
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 0, NULL);
    e2e_image(v4, "esp32s3", "4.0.0", 0, NULL);
    const char *v3 = e2e_path("s-3.bin");
    e2e_image(v3, "esp32s3", "3.0.0", 0, NULL);
    sign(v2, key, v2s);
    sign(v2, other, v2x);
    sign(v3, key, v3s);
    /* a frontend 4 KB smaller than its 1 MB slot: the sector goes after it */
    const char *dir = e2e_path("www");
    assert_int_equal(mkdir(dir, 0755), 0);
    char index[400];
    snprintf(index, sizeof index, "%s/index.html", dir);
    e2e_file_write(index, "<h1>signed frontend</h1>", 24);
    snprintf(www, sizeof www, "%s", e2e_path("www.bin"));
    snprintf(wwws, sizeof wwws, "%s", e2e_path("www.signed.bin"));
    const char *mkfs[] = {"aloft", "mkfs", dir, "--size", "1020K", "-o", www, NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);
    sign(www, key, wwws);
    return 0;
}

static const char *version(struct e2e_node *n)
{
    static char v[32];
    cJSON *st = e2e_status(n);
    snprintf(v, sizeof v, "%s", e2e_jstr(st, "version"));
    cJSON_Delete(st);
    return v;
}

/* An upload refused with 422 code, the running slot, otadata and the
 * settings byte-identical. */
static void refused(struct e2e_node *n, const char *path, const char *file, const char *code)
{
    struct e2e_snap s;
    e2e_snap_take(&s, n);
    struct e2e_http r;
    int status = e2e_upload(n, path, file, &r, NULL);
    if (status != 422 || strcmp(e2e_http_error(&r), code))
        fail_msg("%s: expected 422 %s, got %d: %s", file, code, status, r.body);
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, n));
    e2e_snap_free(&s);
}

static void accepted(struct e2e_node *n, const char *path, const char *file)
{
    struct e2e_http r;
    int status = e2e_upload(n, path, file, &r, NULL);
    if (status != 200)
        fail_msg("%s: expected 200, got %d: %s", file, status, r.body);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
}

static void test_signed_only(void **state)
{
    (void)state;
    struct e2e_node n;
    e2e_node_init(&n, "signed");
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--trusted-keys", digest, NULL};
    assert_int_equal(e2e_node_start(&n, args), 0);
    assert_int_equal(e2e_log_count(&n, "security: 1 trusted keys: signed images only"), 1);

    refused(&n, "/ota", v2, "unsigned");
    refused(&n, "/ota", v2x, "untrusted_key");
    refused(&n, "/api/ota/frontend", www, "unsigned");
    assert_string_equal(version(&n), "1.0.0");
    accepted(&n, "/ota", v2s);
    assert_string_equal(version(&n), "2.0.0");
    assert_int_equal(e2e_wait_state(&n, "valid", 5000), 0);
    accepted(&n, "/api/ota/frontend", wwws);
    struct e2e_http r;
    cJSON *st = e2e_get_json(&n, "/api/ota/status");
    assert_int_equal((int)e2e_jnum(st, "active_slot"), 1);
    cJSON_Delete(st);

    /* the keys live in the settings: a start without the option keeps them */
    e2e_node_stop(&n);
    assert_int_equal(e2e_node_start(&n, NULL), 0);
    refused(&n, "/ota", v4, "unsigned");
    accepted(&n, "/ota", v3s);
    assert_string_equal(version(&n), "3.0.0");
    assert_int_equal(e2e_wait_state(&n, "valid", 5000), 0);

    /* until they are removed */
    e2e_node_stop(&n);
    const char *none[] = {"--trusted-keys", "none", NULL};
    assert_int_equal(e2e_node_start(&n, none), 0);
    assert_int_equal(e2e_upload(&n, "/ota", v4, &r, NULL), 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(&n), 0);
    assert_string_equal(version(&n), "4.0.0");
    e2e_node_stop(&n);
}

static void test_bad_option(void **state)
{
    (void)state;
    const char *bad[] = {"aloft-node", "--flash", e2e_path("none.img"), "--trusted-keys", "abcd", NULL};
    assert_int_equal(aloft_test_run(NULL, bad), 2);
}

int main(void)
{
    e2e_init(7);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_signed_only, e2e_teardown),
        cmocka_unit_test(test_bad_option),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
