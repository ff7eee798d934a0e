/* The upload PSK (PROTOCOLS.md §1): none provisioned accepts uploads with a
 * warning at boot, --require-psk refuses them, a provisioned PSK needs the
 * right bearer; a refusal changes nothing. */
#include "e2e.h"

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

static void start(struct e2e_node *n, const char *name, const char *const extra[])
{
    e2e_node_init(n, name);
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

static void test_no_psk_accepts_with_a_warning(void **state)
{
    (void)state;
    struct e2e_node n;
    start(&n, "open", NULL);
    assert_int_equal(e2e_log_count(&n, "security: WARNING: no PSK provisioned"), 1);
    accepted(&n, v2, NULL, "2.0.0");
    /* every boot warns again */
    assert_int_equal(e2e_log_count(&n, "security: WARNING: no PSK provisioned"), 2);
    e2e_node_stop(&n);
}

static void test_require_psk_without_one_refuses(void **state)
{
    (void)state;
    struct e2e_node n;
    const char *req[] = {"--require-psk", NULL};
    start(&n, "required", req);
    assert_int_equal(e2e_log_count(&n, "no PSK provisioned: uploads are refused"), 1);
    refused(&n, NULL);
    const char *any[] = {"-H", "Authorization: Bearer anything", NULL};
    refused(&n, any);
    assert_string_equal(version(&n), "1.0.0");
    e2e_node_stop(&n);
}

static void test_psk_needs_the_right_bearer(void **state)
{
    (void)state;
    struct e2e_node n;
    const char *psk[] = {"--psk", "s3cret-token", NULL};
    start(&n, "psk", psk);
    assert_int_equal(e2e_log_count(&n, "no PSK provisioned"), 0);
    refused(&n, NULL);
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
    assert_int_equal(e2e_node_start(&n, NULL), 0);
    assert_int_equal(e2e_log_count(&n, "no PSK provisioned"), 0);
    refused(&n, NULL);
    accepted(&n, v3, right, "3.0.0");
    e2e_node_stop(&n);
}

int main(void)
{
    e2e_init(2);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_no_psk_accepts_with_a_warning, e2e_teardown),
        cmocka_unit_test_teardown(test_require_psk_without_one_refuses, e2e_teardown),
        cmocka_unit_test_teardown(test_psk_needs_the_right_bearer, e2e_teardown),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
