/* aloft flash init|show, run as a user would. */
#include "testutil.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "file.h"

static char dir[256], app[300], big[300], csv[300], img[300];

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s", aloft_test_tmpdir());
    snprintf(app, sizeof app, "%s/app.bin", dir);
    snprintf(big, sizeof big, "%s/big.bin", dir);
    snprintf(csv, sizeof csv, "%s/two.csv", dir);
    snprintf(img, sizeof img, "%s/flash.img", dir);
    const char *mk[] = {"aloft", "image", "make", "--chip", "esp32c6", "--project", "cli-test", "--version",
                        "4.5.6", "-o", app, NULL};
    assert_int_equal(aloft_test_run(NULL, mk), 0);
    const char *mkbig[] = {"aloft", "image", "make", "--chip", "esp32c6", "--project", "cli-test", "--version",
                           "9.9.9", "--size", "1100000", "-o", big, NULL};
    assert_int_equal(aloft_test_run(NULL, mkbig), 0);
    FILE *f = fopen(csv, "w");
    fputs("# two slots\nnvs, data, nvs, , 0x4000,\notadata, data, ota, , 0x2000,\n"
          "ota_0, app, ota_0, , 1M,\nota_1, app, ota_1, , 1M,\n",
          f);
    fclose(f);
    return 0;
}

static cJSON *show_json(void)
{
    char *out;
    const char *show[] = {"aloft", "flash", "show", img, "--json", NULL};
    assert_int_equal(aloft_test_run(&out, show), 0);
    cJSON *j = cJSON_Parse(out);
    assert_non_null(j);
    free(out);
    return j;
}

static void test_init_then_show(void **state)
{
    (void)state;
    const char *init[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", app, "-o",
                          img, NULL};
    assert_int_equal(aloft_test_run(NULL, init), 0);
    struct stat st;
    assert_int_equal(stat(img, &st), 0);
    assert_int_equal(st.st_size, 4 * 1024 * 1024);
    /* the size as esptool writes it: the same image */
    char img2[320];
    snprintf(img2, sizeof img2, "%s.mb", img);
    const char *mb[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4MB", "--app", app, "-o",
                        img2, NULL};
    assert_int_equal(aloft_test_run(NULL, mb), 0);
    size_t l1, l2;
    uint8_t *a, *b;
    assert_int_equal(aloft_file_read(img, &a, &l1), 0);
    assert_int_equal(aloft_file_read(img2, &b, &l2), 0);
    assert_int_equal(l1, l2);
    assert_memory_equal(a, b, l1);
    free(a);
    free(b);

    cJSON *j = show_json();
    cJSON *boot = cJSON_GetObjectItem(j, "boot");
    assert_string_equal(cJSON_GetObjectItem(boot, "partition")->valuestring, "ota_0");
    assert_string_equal(cJSON_GetObjectItem(boot, "why")->valuestring, "default");
    cJSON *parts = cJSON_GetObjectItem(j, "partitions");
    assert_int_equal(cJSON_GetArraySize(parts), 4);
    cJSON *ota0 = cJSON_GetArrayItem(parts, 2), *ota1 = cJSON_GetArrayItem(parts, 3);
    assert_string_equal(cJSON_GetObjectItem(ota0, "label")->valuestring, "ota_0");
    assert_int_equal(cJSON_GetObjectItem(ota0, "offset")->valueint, 0x10000);
    cJSON *a0 = cJSON_GetObjectItem(ota0, "app");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(a0, "valid")));
    assert_string_equal(cJSON_GetObjectItem(a0, "version")->valuestring, "4.5.6");
    assert_string_equal(cJSON_GetObjectItem(a0, "chip")->valuestring, "esp32c6");
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(ota1, "app"), "error")->valuestring, "empty");
    cJSON *od = cJSON_GetObjectItem(j, "otadata");
    assert_int_equal(cJSON_GetArraySize(od), 2);
    assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(od, 0), "state")->valuestring, "undefined");
    cJSON_Delete(j);

    /* the text form names the booting slot and the reason */
    char *out;
    const char *show[] = {"aloft", "flash", "show", img, NULL};
    assert_int_equal(aloft_test_run(&out, show), 0);
    assert_non_null(strstr(out, "boots: ota_0 (no valid otadata entry"));
    assert_non_null(strstr(out, "cli-test 4.5.6"));
    free(out);
}

static void test_bad_input_is_refused(void **state)
{
    (void)state;
    char bad[300], missing[300], out_img[300];
    snprintf(bad, sizeof bad, "%s/bad.bin", dir);
    snprintf(missing, sizeof missing, "%s/nope.bin", dir);
    snprintf(out_img, sizeof out_img, "%s/never.img", dir);
    FILE *f = fopen(bad, "w");
    fputs("this is not firmware", f);
    fclose(f);
    struct stat st;
    const char *corrupt[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", bad, "-o",
                             out_img, NULL};
    assert_int_equal(aloft_test_run(NULL, corrupt), 1);
    const char *absent[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", missing,
                            "-o", out_img, NULL};
    assert_int_equal(aloft_test_run(NULL, absent), 1);
    const char *too_big[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", big, "-o",
                             out_img, NULL};
    assert_int_equal(aloft_test_run(NULL, too_big), 1);
    const char *small_flash[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "1M", "--app", app,
                                 "-o", out_img, NULL};
    assert_int_equal(aloft_test_run(NULL, small_flash), 1);
    assert_int_not_equal(stat(out_img, &st), 0); /* nothing written */

    const char *no_args[] = {"aloft", "flash", "init", NULL};
    assert_int_equal(aloft_test_run(NULL, no_args), 2);
    const char *bad_size[] = {"aloft", "flash", "init", "--flash-size", "lots", NULL};
    assert_int_equal(aloft_test_run(NULL, bad_size), 2);
    const char *bad_unit[] = {"aloft", "flash", "init", "--flash-size", "4B", NULL};
    assert_int_equal(aloft_test_run(NULL, bad_unit), 2);
    /* a folder given as a file is said to be one (it read as an I/O error) */
    uint8_t *data = NULL;
    size_t len;
    errno = 0;
    assert_int_equal(aloft_file_read(dir, &data, &len), -1);
    assert_int_equal(errno, EISDIR);
    assert_null(data);
    const char *show_bad[] = {"aloft", "flash", "show", bad, NULL};
    assert_int_equal(aloft_test_run(NULL, show_bad), 1);
    char *out;
    const char *help[] = {"aloft", "flash", "init", "--help", NULL};
    assert_int_equal(aloft_test_run(&out, help), 0);
    assert_non_null(strstr(out, "example:"));
    free(out);
}

/* --bootloader: ESP-IDF's own bootloader at the chip's offset, so the file
 * is what esptool writes at 0; a bootloader is refused as the app, an app
 * and another chip's bootloader as the bootloader, and nothing is written. */
static void test_bootloader(void **state)
{
    (void)state;
    char s3[300], out_img[300], never[300];
    const char *boot = ALOFT_FIXTURES "/esp-idf/esp32s3-bootloader.bin";
    snprintf(s3, sizeof s3, "%s/s3.bin", dir);
    snprintf(out_img, sizeof out_img, "%s/with-boot.img", dir);
    snprintf(never, sizeof never, "%s/never-boot.img", dir);
    const char *mk[] = {"aloft", "image", "make", "--chip", "esp32s3", "--project", "cli-test", "--version",
                        "1.0.0", "-o", s3, NULL};
    assert_int_equal(aloft_test_run(NULL, mk), 0);

    const char *init[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", s3,
                          "--bootloader", boot, "-o", out_img, NULL};
    char *out;
    assert_int_equal(aloft_test_run(&out, init), 0);
    assert_non_null(strstr(out, "bootloader at 0x0, partition table at 0x8000"));
    free(out);
    size_t blen, flen;
    uint8_t *bl = aloft_test_fixture("esp-idf/esp32s3-bootloader.bin", &blen);
    uint8_t *flash;
    assert_int_equal(aloft_file_read(out_img, &flash, &flen), 0);
    assert_int_equal(flen, 4 * 1024 * 1024);
    assert_memory_equal(flash, bl, blen); /* ESP32-S3: the bootloader at 0 */
    assert_int_equal(flash[blen], 0xFF);
    assert_int_equal(flash[0x8000], 0xAA); /* the partition table's first entry */
    assert_int_equal(flash[0x8001], 0x50);
    free(flash);
    free(bl);

    struct stat st;
    const char *boot_as_app[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", boot,
                                 "-o", never, NULL};
    assert_int_equal(aloft_test_run(NULL, boot_as_app), 1);
    const char *app_as_boot[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", s3,
                                 "--bootloader", s3, "-o", never, NULL};
    assert_int_equal(aloft_test_run(NULL, app_as_boot), 1);
    const char *other_chip[] = {"aloft", "flash", "init", "--partitions", csv, "--flash-size", "4M", "--app", app,
                                "--bootloader", boot, "-o", never, NULL}; /* an ESP32-C6 app */
    assert_int_equal(aloft_test_run(NULL, other_chip), 1);
    assert_int_not_equal(stat(never, &st), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init_then_show),
        cmocka_unit_test(test_bad_input_is_refused),
        cmocka_unit_test(test_bootloader),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
