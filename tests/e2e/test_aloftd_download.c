/* aloftd's downloads when it keeps files open: GET /firmware/<sha256>.bin
 * keeps the whole-file responses of the 16 files last downloaded (mapped,
 * shared by every connection). More files than that, downloaded in turn
 * and many at once, each still comes whole and byte-exact; a range, HEAD
 * and If-None-Match of a kept file answer as for any other; a kept file
 * removed from disk behind aloftd's back is still served whole (the
 * mapping holds it); and aloftd stops cleanly with files kept. */
#include "aloftd_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define FILES 20 /* more than the 16 kept */
#define AT_ONCE 10

static struct aloftd_proc srv;

static struct {
    char path[300]; /* the image on disk */
    char url[100];  /* /firmware/<sha256>.bin */
    uint8_t *bytes;
    size_t len;
} img[FILES];

/* FILES images of different sizes, uploaded. */
static void upload_all(void)
{
    for (int i = 0; i < FILES; i++) {
        char name[40], version[20];
        snprintf(name, sizeof name, "dl-%d.bin", i);
        snprintf(version, sizeof version, "1.0.%d", i);
        snprintf(img[i].path, sizeof img[i].path, "%s", e2e_path(name));
        e2e_image(img[i].path, "esp32s3", version, 131072 + 4096 * (size_t)i, NULL);
        img[i].bytes = e2e_file_read(img[i].path, &img[i].len);
        char sha[65];
        aloft_sha256_hex(img[i].bytes, img[i].len, sha);
        snprintf(img[i].url, sizeof img[i].url, "/firmware/%s.bin", sha);
        struct e2e_http r;
        assert_int_equal(aloftd_upload(&srv, &r, img[i].path, "?platform=dl", NULL), 201);
        e2e_http_free(&r);
    }
}

static void expect_whole(int i, const struct e2e_http *r)
{
    assert_int_equal(r->code, 200);
    assert_int_equal(r->len, img[i].len);
    assert_memory_equal(r->body, img[i].bytes, img[i].len);
}

static void test_more_files_than_kept(void **state)
{
    (void)state;
    aloftd_init(&srv, "download");
    assert_int_equal(aloftd_start(&srv, NULL), 0);
    upload_all();

    /* in turn, three times: every pass evicts what the last one kept */
    for (int pass = 0; pass < 3; pass++)
        for (int i = 0; i < FILES; i++) {
            struct e2e_http r;
            aloftd_get(&srv, &r, img[i].url, NULL);
            expect_whole(i, &r);
            e2e_http_free(&r);
        }

    /* many at once, kept and evicted files mixed */
    for (int round = 0; round < 4; round++) {
        struct e2e_curl_job job[AT_ONCE];
        char url[AT_ONCE][200];
        int which[AT_ONCE];
        for (int k = 0; k < AT_ONCE; k++) {
            which[k] = (int)(e2e_rand() % FILES);
            snprintf(url[k], sizeof url[k], "%s%s", srv.url, img[which[k]].url);
            const char *args[] = {url[k], NULL};
            e2e_curl_start(&job[k], args);
        }
        for (int k = 0; k < AT_ONCE; k++) {
            struct e2e_http r;
            assert_int_equal(e2e_curl_wait(&job[k], &r), 200);
            expect_whole(which[k], &r);
            e2e_http_free(&r);
        }
    }

    /* a kept file: HEAD, a range, If-None-Match */
    int last = FILES - 1;
    struct e2e_http r;
    const char *head[] = {"-I", NULL};
    assert_int_equal(aloftd_get(&srv, &r, img[last].url, head), 200);
    char len[32];
    snprintf(len, sizeof len, "%zu", img[last].len);
    assert_string_equal(aloftd_header_value(&r, "Content-Length"), len);
    assert_int_equal(r.len, strlen(r.headers)); /* no body */
    e2e_http_free(&r);
    const char *range[] = {"-r", "100-199", NULL};
    assert_int_equal(aloftd_get(&srv, &r, img[last].url, range), 206);
    assert_int_equal(r.len, 100);
    assert_memory_equal(r.body, img[last].bytes + 100, 100);
    e2e_http_free(&r);
    char inm[120];
    snprintf(inm, sizeof inm, "If-None-Match: \"%.64s\"", img[last].url + 10);
    const char *cached[] = {"-H", inm, NULL};
    assert_int_equal(aloftd_get(&srv, &r, img[last].url, cached), 304);
    e2e_http_free(&r);

    /* removed from disk after it was kept: the mapping still holds it */
    char stored[500];
    snprintf(stored, sizeof stored, "%s/firmware/%.64s.bin", srv.data, img[last].url + 10);
    assert_int_equal(unlink(stored), 0);
    aloftd_get(&srv, &r, img[last].url, NULL);
    expect_whole(last, &r);
    e2e_http_free(&r);

    assert_int_equal(aloftd_stop(&srv), 0);
    for (int i = 0; i < FILES; i++)
        free(img[i].bytes);
}

int main(void)
{
    e2e_init(155);
    if (aloftd_db_init("aloftd download test"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_more_files_than_kept, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
