/* aloft delta make|apply|info, run as a user would. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"

static char dir[256], v1[300], v2[300], other[300], patch[300], out[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", aloft_test_tmpdir());
    snprintf(v1, sizeof v1, "%s/v1.bin", dir);
    snprintf(v2, sizeof v2, "%s/v2.bin", dir);
    snprintf(other, sizeof other, "%s/other.bin", dir);
    snprintf(patch, sizeof patch, "%s/v1-v2.delta", dir);
    snprintf(out, sizeof out, "%s/out.bin", dir);
    const char *mk1[] = {"aloft", "image", "make", "--chip", "esp32s3", "--project", "cli-delta", "--version",
                         "1.0.0", "--size", "200000", "-o", v1, NULL};
    const char *mk2[] = {"aloft", "image", "make", "--chip", "esp32s3", "--project", "cli-delta", "--version",
                         "1.1.0", "--size", "220000", "-o", v2, NULL};
    const char *mk3[] = {"aloft", "image", "make", "--chip", "esp32s3", "--project", "cli-other", "--version",
                         "1.0.0", "--size", "200000", "-o", other, NULL};
    assert_int_equal(aloft_test_run(NULL, mk1), 0);
    assert_int_equal(aloft_test_run(NULL, mk2), 0);
    assert_int_equal(aloft_test_run(NULL, mk3), 0);
    return 0;
}

static int same_file(const char *a, const char *b)
{
    uint8_t *x, *y;
    size_t nx, ny;
    assert_int_equal(aloft_file_read(a, &x, &nx), 0);
    assert_int_equal(aloft_file_read(b, &y, &ny), 0);
    int same = nx == ny && !memcmp(x, y, nx);
    free(x);
    free(y);
    return same;
}

static void test_make_info_apply(void **state)
{
    (void)state;
    const char *make[] = {"aloft", "delta", "make", v1, v2, "-o", patch, "--quiet", NULL};
    assert_int_equal(aloft_test_run(NULL, make), 0);
    struct stat st;
    assert_int_equal(stat(patch, &st), 0);
    assert_true(st.st_size < 40000); /* the 20 KB appended and the version's small segments */

    char *text;
    const char *info[] = {"aloft", "delta", "info", patch, "--json", NULL};
    assert_int_equal(aloft_test_run(&text, info), 0);
    cJSON *j = cJSON_Parse(text);
    assert_non_null(j);
    assert_int_equal(cJSON_GetObjectItem(j, "base_size")->valuedouble, 200000);
    assert_int_equal(cJSON_GetObjectItem(j, "result_size")->valuedouble, 220000);
    assert_int_equal(cJSON_GetObjectItem(j, "size")->valuedouble, st.st_size);
    assert_int_equal(strlen(cJSON_GetObjectItem(j, "base_sha256")->valuestring), 64);
    cJSON_Delete(j);
    free(text);

    const char *apply[] = {"aloft", "delta", "apply", v1, patch, "-o", out, NULL};
    assert_int_equal(aloft_test_run(NULL, apply), 0);
    assert_true(same_file(out, v2));
}

static void test_refusals(void **state)
{
    (void)state;
    const char *make[] = {"aloft", "delta", "make", v1, v2, "-o", patch, "-q", NULL};
    assert_int_equal(aloft_test_run(NULL, make), 0);
    remove(out);

    /* the wrong base: exit 1, nothing written */
    const char *wrong[] = {"aloft", "delta", "apply", other, patch, "-o", out, NULL};
    assert_int_equal(aloft_test_run(NULL, wrong), 1);
    struct stat st;
    assert_int_not_equal(stat(out, &st), 0);

    /* truncated and corrupted */
    uint8_t *p;
    size_t np;
    assert_int_equal(aloft_file_read(patch, &p, &np), 0);
    char bad[320];
    snprintf(bad, sizeof bad, "%s/bad.delta", dir);
    assert_int_equal(aloft_file_write(bad, p, np - 10), 0);
    const char *apply[] = {"aloft", "delta", "apply", v1, bad, "-o", out, NULL};
    assert_int_equal(aloft_test_run(NULL, apply), 1);
    p[np / 2] ^= 0x80;
    assert_int_equal(aloft_file_write(bad, p, np), 0);
    assert_int_equal(aloft_test_run(NULL, apply), 1);
    assert_int_not_equal(stat(out, &st), 0);
    p[np / 2] ^= 0x80;
    p[20] ^= 1; /* the header's CRC catches it */
    assert_int_equal(aloft_file_write(bad, p, np), 0);
    const char *info[] = {"aloft", "delta", "info", bad, NULL};
    assert_int_equal(aloft_test_run(NULL, info), 1);
    const char *info_img[] = {"aloft", "delta", "info", v1, NULL};
    assert_int_equal(aloft_test_run(NULL, info_img), 1);
    free(p);

    /* usage errors */
    const char *missing[] = {"aloft", "delta", "make", v1, v2, NULL};
    assert_int_equal(aloft_test_run(NULL, missing), 2);
    const char *bs[] = {"aloft", "delta", "make", v1, v2, "-o", patch, "--block-size", "3000", NULL};
    assert_int_equal(aloft_test_run(NULL, bs), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_info_apply),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
