/* aloft fleet simulate end to end: 200 simulated devices poll a real
 * aloftd every 0.2 s (with jitter) through a staged rollout 10 -> 50 ->
 * 100 % that advances by itself once half of a stage's devices succeeded;
 * 5 % of them roll back, 5 % never come back. The simulator stops once every
 * device left runs the release (bounded by --duration); its JSON report and
 * the rollout's counters must agree. Bad options are refused with exit
 * status 2 before any request. On SQLite (test_aloft_fleet) and on the
 * harness's PostgreSQL (test_aloft_fleet_pg). */
#include "aloftd_harness.h"

#include <stdio.h>
#include <string.h>

#include "aloft/image.h"
#include "image_make.h"

#define NDEV 200

static struct aloftd_proc srv;

static void upload(const char *version)
{
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32s3"), .project = "demo",
                                      .version = version};
    uint8_t *img;
    size_t len;
    assert_int_equal(aloft_image_make(&o, &img, &len), 0);
    char name[40];
    snprintf(name, sizeof name, "fleet-%s.bin", version);
    const char *path = e2e_path(name);
    e2e_file_write(path, img, len);
    free(img);
    struct e2e_http r;
    assert_int_equal(aloftd_upload(&srv, &r, path, NULL, NULL), 201);
    e2e_http_free(&r);
}

static double num(const cJSON *j, const char *obj, const char *key)
{
    return e2e_jnum(cJSON_GetObjectItemCaseSensitive(j, obj), key);
}

static void test_rollout_by_fleet(void **state)
{
    (void)state;
    aloftd_init(&srv, "fleet");
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    upload("1.0.0");
    upload("1.1.0");
    struct e2e_http r;
    assert_int_equal(aloftd_admin_post(&srv, &r, "/api/platforms/demo/rollouts",
                                       "{\"version\": \"1.1.0\", \"stages\": [10, 50, 100], \"auto_advance\": \"50%\", "
                                       "\"max_failures\": \"30%\"}"),
                     201);
    e2e_http_free(&r);

    char devices[16];
    snprintf(devices, sizeof devices, "%d", NDEV);
    const char *argv[] = {"aloft", "fleet", "simulate", "--devices", devices, "--server", srv.url,
                          "--platform", "demo", "--version", "1.0.0", "--interval", "0.2", "--jitter",
                          "--rollback-share", "5", "--vanish-share", "5", "--until-version", "1.1.0",
                          "--duration", "120", "--token", srv.token, NULL}; /* to sign the reports */
    char *out;
    int rc = aloft_test_run(&out, argv);
    cJSON *rep = cJSON_Parse(out);
    if (rc != 0 || !rep)
        fprintf(stderr, "aloft fleet simulate: %d\n%s\n", rc, out);
    assert_int_equal(rc, 0);
    assert_non_null(rep);
    free(out);

    /* every device took the release once; each then updated, rolled back or vanished */
    double taken = num(rep, "updates", "taken"), updated = num(rep, "updates", "updated"),
           rolled = num(rep, "updates", "rolled_back"), vanished = num(rep, "updates", "vanished");
    assert_true(taken == NDEV);
    assert_true(updated + rolled + vanished == NDEV);
    assert_true(rolled > 0 && vanished > 0);
    assert_true(num(rep, "versions", "1.1.0") == updated); /* stopped because they all run it */
    assert_true(num(rep, "versions", "1.0.0") == rolled);
    assert_true(num(rep, "reports", "sent") == updated + rolled);
    assert_true(num(rep, "reports", "failed") == 0); /* each signed with its device's credential */
    assert_true(num(rep, "checkins", "failed") == 0);
    assert_true(num(rep, "checkins", "200") >= NDEV); /* the rolled back are offered it again, and decline */

    /* the rollout went through every stage by itself, and completed */
    cJSON *ro = aloftd_json(&srv, "/api/rollouts/1");
    if (strcmp(e2e_jstr(ro, "status"), "completed"))
        fprintf(stderr, "rollout: %s (%s)\n", e2e_jstr(ro, "status"), e2e_jstr(ro, "reason"));
    assert_string_equal(e2e_jstr(ro, "status"), "completed");
    assert_non_null(strstr(e2e_jstr(ro, "reason"), "advanced by itself"));
    assert_true(e2e_jnum(ro, "offered") == NDEV);
    const cJSON *by = cJSON_GetObjectItemCaseSensitive(ro, "by_stage");
    assert_int_equal(cJSON_GetArraySize(by), 3);
    const cJSON *k;
    cJSON_ArrayForEach(k, by) assert_true(e2e_jnum(k, "offered") > 0);
    cJSON_Delete(ro);
    cJSON_Delete(rep);
}

static void test_bad_options(void **state)
{
    (void)state;
    static const char *const bad[][16] = {
        {"aloft", "fleet", "simulate", "--server", "http://127.0.0.1:1", "--platform", "p", "--version", "1", NULL},
        {"aloft", "fleet", "simulate", "--devices", "0", "--server", "http://127.0.0.1:1", "--platform", "p",
         "--version", "1", NULL},
        {"aloft", "fleet", "simulate", "--devices", "5", "--server", "127.0.0.1:1", "--platform", "p", "--version",
         "1", NULL},
        {"aloft", "fleet", "simulate", "--devices", "5", "--server", "http://127.0.0.1:1", "--platform", "p",
         "--version", "1", "--rollback-share", "101", NULL},
        {"aloft", "fleet", "simulate", "--devices", "5", "--server", "http://127.0.0.1:1", "--platform", "p",
         "--version", "1", "--link-rate", "fast", NULL},
        {"aloft", "fleet", "simulate", "--devices", "5", "--server", "http://127.0.0.1:1", "--platform", "p",
         "--version", "1", "--frobnicate", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *out;
        int rc = aloft_test_run(&out, bad[i]);
        if (rc != 2 || out[0])
            fprintf(stderr, "case %zu: exit %d, output '%s'\n", i, rc, out);
        assert_int_equal(rc, 2);
        assert_string_equal(out, ""); /* no report: nothing ran */
        free(out);
    }
    char *out;
    const char *help[] = {"aloft", "fleet", "simulate", "--help", NULL};
    assert_int_equal(aloft_test_run(&out, help), 0);
    assert_non_null(strstr(out, "--rollback-share P"));
    assert_non_null(strstr(out, "examples:"));
    free(out);
}

int main(void)
{
    e2e_init(175);
    if (aloftd_db_init("aloft fleet simulate tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_rollout_by_fleet, aloftd_teardown),
        cmocka_unit_test(test_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
