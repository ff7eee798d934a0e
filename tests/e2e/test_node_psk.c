/* Who may change a device: with no PSK provisioned it refuses every change
 * (fail-closed), unless started --open (with a warning at every boot); a
 * provisioned PSK needs the right bearer; a request a browser sends from a
 * page of another site is refused whatever it carries. A refusal changes
 * nothing. */
#include "e2e.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static char v1[300], v2[300], v3[300];

static int setup(void **state)
{
    (void)state;
    snprintf(v1, sizeof v1, "%s", e2e_path("psk-1.bin"));
    snprintf(v2, sizeof v2, "%s", e2e_path("psk-2.bin"));
    snprintf(v3, sizeof v3, "%s", e2e_path("psk-3.bin"));
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(v2, "esp32s3", "2.0.0", 0, NULL);
    e2e_image(v3, "esp32s3", "3.0.0", 0, NULL);
    return 0;
}

/* no Authorization header at all (curl drops a header given empty) */
static const char *const none[] = {"-H", "Authorization:", NULL};

/* A node with no PSK unless extra provisions one. */
static void start(struct e2e_node *n, const char *name, const char *const extra[])
{
    e2e_node_init(n, name);
    n->psk[0] = 0;
    const char *args[16] = {"--create", "--flash-size", "4M", "--firmware", v1};
    size_t k = 5;
    for (size_t i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    assert_int_equal(e2e_node_start(n, args), 0);
}

static const char *version(struct e2e_node *n)
{
    static char v[32];
    cJSON *st = e2e_status(n);
    snprintf(v, sizeof v, "%s", e2e_jstr(st, "version"));
    cJSON_Delete(st);
    return v;
}

/* An upload that must get 401 and change nothing. */
static void refused(struct e2e_node *n, const char *const auth[])
{
    struct e2e_snap s;
    e2e_snap_take(&s, n);
    struct e2e_http r;
    int code = e2e_upload(n, "/ota", v2, &r, auth);
    if (code != 401)
        fprintf(stderr, "expected 401, got %d: %s\n", code, r.body);
    assert_int_equal(code, 401);
    assert_string_equal(e2e_http_error(&r), "unauthorized");
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, n));
    e2e_snap_free(&s);
}

static void accepted(struct e2e_node *n, const char *file, const char *const auth[], const char *want)
{
    struct e2e_http r;
    int code = e2e_upload(n, "/ota", file, &r, auth);
    if (code != 200)
        fprintf(stderr, "expected 200, got %d: %s\n", code, r.body);
    assert_int_equal(code, 200);
    e2e_http_free(&r);
    assert_int_equal(e2e_node_wait_boot(n), 0);
    assert_string_equal(version(n), want);
}

static void test_no_psk_refuses_every_change(void **state)
{
    (void)state;
    struct e2e_node n;
    start(&n, "closed", NULL);
    assert_int_equal(e2e_log_count(&n, "no PSK provisioned: updates are refused"), 1);
    refused(&n, none);
    const char *any[] = {"-H", "Authorization: Bearer anything", NULL};
    refused(&n, any);
    /* a trigger and a frontend rollback too */
    struct e2e_snap s;
    e2e_snap_take(&s, &n);
    static const char *const paths[] = {"/api/ota/pull", "/api/ota/frontend/rollback"};
    for (size_t i = 0; i < 2; i++) {
        char url[200];
        snprintf(url, sizeof url, "%s%s", n.url, paths[i]);
        const char *post[] = {"-X", "POST", "-H", "Content-Type: application/json", "--data-binary",
                              "{\"type\":\"ota_trigger\",\"url\":\"http://127.0.0.1:1/x.bin\"}", url, NULL};
        struct e2e_http r;
        assert_int_equal(e2e_curl(&r, post), 401);
        assert_string_equal(e2e_http_error(&r), "unauthorized");
        e2e_http_free(&r);
    }
    assert_null(e2e_snap_diff(&s, &n));
    e2e_snap_free(&s);
    assert_string_equal(version(&n), "1.0.0");
    e2e_node_stop(&n);
}

static void test_open_accepts_with_a_warning(void **state)
{
    (void)state;
    e2e_simulator_only("--open (CONFIG_ALOFT_REQUIRE_PSK=n is a build option of the example)");
    struct e2e_node n;
    const char *open[] = {"--open", NULL};
    start(&n, "open", open);
    assert_int_equal(e2e_log_count(&n, "security: WARNING: no PSK provisioned and open"), 1);
    accepted(&n, v2, none, "2.0.0");
    /* every boot warns again */
    assert_int_equal(e2e_log_count(&n, "security: WARNING: no PSK provisioned and open"), 2);
    e2e_node_stop(&n);
}

/* A request that must get `status` with error `code` and change nothing. */
static void refused_post(struct e2e_node *n, const char *path, const char *const headers[], int status,
                         const char *code)
{
    struct e2e_snap s;
    e2e_snap_take(&s, n);
    char url[200];
    snprintf(url, sizeof url, "%s%s", n->url, path);
    char data[310] = "{}"; /* /ota gets an image, the others a JSON body */
    if (!strcmp(path, "/ota"))
        snprintf(data, sizeof data, "@%s", v2);
    const char *args[24] = {"-X", "POST", "--data-binary", data};
    size_t k = 4;
    for (size_t i = 0; headers[i]; i++) {
        args[k++] = "-H";
        args[k++] = headers[i];
    }
    args[k++] = url;
    args[k] = NULL;
    struct e2e_http r;
    int got = e2e_curl(&r, args);
    if (got != status)
        fprintf(stderr, "POST %s: expected %d, got %d: %s\n", path, status, got, r.body);
    assert_int_equal(got, status);
    assert_string_equal(e2e_http_error(&r), code);
    e2e_http_free(&r);
    assert_null(e2e_snap_diff(&s, n));
    e2e_snap_free(&s);
}

/* What a web page on another site can make a browser send — a "simple"
 * request with no preflight (text/plain, a form's type, no type), or any
 * request with its own Origin — is refused, even by an open device and
 * even with the right PSK. */
static void test_cross_site_requests_are_refused(void **state)
{
    (void)state;
    e2e_simulator_only("--open (CONFIG_ALOFT_REQUIRE_PSK=n is a build option of the example)");
    struct e2e_node n;
    const char *open[] = {"--open", NULL};
    start(&n, "cross", open);
    static const char *const simple_types[] = {"Content-Type: text/plain", "Content-Type: application/x-www-form-urlencoded",
                                               "Content-Type: multipart/form-data; boundary=x", "Content-Type:"};
    static const char *const paths[] = {"/ota", "/api/ota/frontend", "/api/ota/pull", "/api/ota/frontend/rollback"};
    for (size_t p = 0; p < 4; p++)
        for (size_t t = 0; t < 4; t++) {
            const char *h[] = {simple_types[t], NULL};
            refused_post(&n, paths[p], h, 415, "unsupported_media_type");
        }
    static const char *const foreign[] = {"Origin: http://attacker.example", "Origin: null",
                                          "Origin: http://127.0.0.1:1", "Sec-Fetch-Site: cross-site"};
    for (size_t p = 0; p < 4; p++)
        for (size_t f = 0; f < 4; f++) {
            bool upload = !strcmp(paths[p], "/ota") || !strcmp(paths[p], "/api/ota/frontend");
            const char *h[] = {upload ? "Content-Type: application/octet-stream" : "Content-Type: application/json",
                               foreign[f], NULL};
            refused_post(&n, paths[p], h, 403, "cross_site");
        }
    assert_string_equal(version(&n), "1.0.0");

    /* the device's own page (Origin its own address, same-origin) is served */
    char own[100];
    snprintf(own, sizeof own, "Origin: %s", n.url);
    const char *same[] = {"-H", own, "-H", "Sec-Fetch-Site: same-origin", NULL};
    accepted(&n, v2, same, "2.0.0");
    e2e_node_stop(&n);
}

static void test_psk_needs_the_right_bearer(void **state)
{
    (void)state;
    struct e2e_node n;
    const char *psk[] = {"--psk", "s3cret-token", NULL};
    start(&n, "psk", psk);
    assert_int_equal(e2e_log_count(&n, "no PSK provisioned"), 0);
    refused(&n, none);
    const char *wrong[] = {"-H", "Authorization: Bearer wrong", NULL};
    refused(&n, wrong);
    const char *prefix[] = {"-H", "Authorization: Bearer s3cret", NULL};
    refused(&n, prefix);
    const char *longer[] = {"-H", "Authorization: Bearer s3cret-token-and-more", NULL};
    refused(&n, longer);
    const char *basic[] = {"-H", "Authorization: Basic czNjcmV0LXRva2Vu", NULL};
    refused(&n, basic);
    /* the status stays open to everyone */
    assert_string_equal(version(&n), "1.0.0");

    const char *right[] = {"-H", "Authorization: Bearer s3cret-token", NULL};
    accepted(&n, v2, right, "2.0.0");
    assert_int_equal(e2e_wait_state(&n, "valid", 5000), 0); /* or the power cycle below rolls it back */

    /* the PSK lives in the settings store: a boot without --psk still needs it */
    e2e_node_stop(&n);
    n.psk[0] = 0;
    assert_int_equal(e2e_node_start(&n, NULL), 0);
    assert_int_equal(e2e_log_count(&n, "no PSK provisioned"), 0);
    refused(&n, none);
    accepted(&n, v3, right, "3.0.0");
    e2e_node_stop(&n);
}

int main(void)
{
    e2e_init(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_no_psk_refuses_every_change, e2e_teardown),
        cmocka_unit_test_teardown(test_open_accepts_with_a_warning, e2e_teardown),
        cmocka_unit_test_teardown(test_cross_site_requests_are_refused, e2e_teardown),
        cmocka_unit_test_teardown(test_psk_needs_the_right_bearer, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
