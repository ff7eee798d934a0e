/* aloftd end to end: stateless instances. On PostgreSQL
 * (test_aloftd_shared_pg) two aloftd share one database and nothing else
 * (separate data directories): a firmware and a frontend uploaded to the
 * first are served by the second, byte-exact, as /firmware/<sha256>.bin
 * and as /update's 200, from the database's copy it took and checked; a
 * file whose database copy was damaged is refused (500 file_damaged) and
 * not kept, and served again once the copy is whole; a file lost from an
 * instance's disk is taken from the database again. On SQLite
 * (test_aloftd_shared) there is no database copy: the lost file is 500
 * file_missing. */
#include "aloftd_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "littlefs.h"

static struct aloftd_proc a, b;

struct file {
    char path[300];
    char url[100]; /* /firmware/<sha256>.bin */
    char sha[65];
    uint8_t *bytes;
    size_t len;
};

static void load(struct file *f)
{
    f->bytes = e2e_file_read(f->path, &f->len);
    aloft_sha256_hex(f->bytes, f->len, f->sha);
    snprintf(f->url, sizeof f->url, "/firmware/%s.bin", f->sha);
}

/* A firmware of the platform "shared", several database pieces long. */
static void firmware(struct file *f, const char *version, size_t size)
{
    char name[40];
    snprintf(name, sizeof name, "shared-%s.bin", version);
    snprintf(f->path, sizeof f->path, "%s", e2e_path(name));
    e2e_image(f->path, "esp32s3", version, size, NULL);
    load(f);
}

static void frontend(struct file *f)
{
    const char *site = e2e_path("site");
    assert_int_equal(mkdir(site, 0755), 0);
    char index[400];
    snprintf(index, sizeof index, "%s/index.html", site);
    e2e_file_write(index, "<h1>shared</h1>\n", 16);
    uint8_t *img;
    size_t len;
    struct aloft_lfs_mkfs_err err;
    assert_int_equal(aloft_lfs_mkfs(site, 64 * 1024, 4096, ALOFT_LFS_VERSION_2_1, &img, &len, &err), 0);
    snprintf(f->path, sizeof f->path, "%s", e2e_path("www.bin"));
    e2e_file_write(f->path, img, len);
    free(img);
    load(f);
}

static void upload(struct aloftd_proc *s, const struct file *f, const char *query)
{
    struct e2e_http r;
    int code = aloftd_upload(s, &r, f->path, query, NULL);
    if (code != 201)
        fprintf(stderr, "upload: %d %s\n", code, r.body);
    assert_int_equal(code, 201);
    e2e_http_free(&r);
}

static void expect_file(const struct e2e_http *r, const struct file *f)
{
    assert_int_equal(r->code, 200);
    assert_int_equal(r->len, f->len);
    assert_memory_equal(r->body, f->bytes, f->len);
}

static void expect_error(const struct e2e_http *r, int code, const char *error)
{
    if (r->code != code)
        fprintf(stderr, "want %d %s, got %d: %s\n", code, error, r->code, r->body);
    assert_int_equal(r->code, code);
    assert_string_equal(e2e_http_error(r), error);
}

/* GET /update as an ESP32's HTTPUpdate of the platform on version ver. */
static int device_update(struct aloftd_proc *s, struct e2e_http *r, const char *ver, const char *mode)
{
    char path[200], h_mode[60];
    snprintf(path, sizeof path, "/update?dev=shared&ver=%s", ver);
    snprintf(h_mode, sizeof h_mode, "x-ESP32-mode: %s", mode);
    const char *args[] = {"-H", "User-Agent: ESP32-http-Update", "-H", "x-ESP32-STA-MAC: 24:0A:C4:00:15:01",
                          "-H", "x-ESP32-free-space: 4194304", "-H", h_mode, NULL};
    return aloftd_get(s, r, path, args);
}

static bool has_file(const struct aloftd_proc *s, const struct file *f)
{
    char path[500];
    snprintf(path, sizeof path, "%s/firmware/%s.bin", s->data, f->sha);
    return access(path, F_OK) == 0;
}

/* Flip one byte of the database's copy of f, at offset 1000 of piece seq
 * (flipping it twice restores it). */
static void flip(const struct file *f, int seq)
{
    char sql[400];
    snprintf(sql, sizeof sql,
             "UPDATE blob_chunks SET data = set_byte(data, 1000, 255 - get_byte(data, 1000)) "
             "WHERE sha256 = '%s' AND seq = %d RETURNING seq",
             f->sha, seq);
    char *out = aloftd_pg_query(a.db, sql);
    char want[16];
    snprintf(want, sizeof want, "%d\n", seq);
    assert_string_equal(out, want);
    free(out);
}

static void test_shared(void **state)
{
    (void)state;
    struct file v1, v2, www;
    firmware(&v1, "1.0.0", 600 * 1024); /* three pieces of 256 KiB */
    firmware(&v2, "2.0.0", 300 * 1024);
    frontend(&www);
    aloftd_init(&a, "shared-a");
    assert_int_equal(aloftd_start(&a, NULL), 0);
    upload(&a, &v1, "?platform=shared");
    upload(&a, &www, "?kind=frontend&platform=shared&version=web-1");
    struct e2e_http r;

    if (!aloftd_on_pg()) { /* one instance, its files on its disk only */
        char path[500];
        snprintf(path, sizeof path, "%s/firmware/%s.bin", a.data, v1.sha);
        assert_int_equal(unlink(path), 0);
        aloftd_get(&a, &r, v1.url, NULL);
        expect_error(&r, 500, "file_missing");
        e2e_http_free(&r);
        assert_int_equal(aloftd_stop(&a), 0);
        goto done;
    }

    /* the second instance: the same database, a data directory of its own */
    aloftd_init(&b, "shared-b");
    snprintf(b.db, sizeof b.db, "%s", a.db);
    assert_int_equal(aloftd_start(&b, NULL), 0);
    snprintf(b.token, sizeof b.token, "%s", a.token);
    snprintf(b.auth, sizeof b.auth, "%s", a.auth);
    assert_false(has_file(&b, &v1));

    aloftd_get(&b, &r, v1.url, NULL);
    expect_file(&r, &v1);
    e2e_http_free(&r);
    assert_true(has_file(&b, &v1)); /* kept: the next download is from disk */
    device_update(&b, &r, "0.9.0", "sketch");
    expect_file(&r, &v1);
    const char *md5 = aloftd_header_value(&r, "x-MD5");
    assert_non_null(md5);
    char want_md5[33];
    aloft_test_md5_hex(v1.bytes, v1.len, want_md5);
    assert_string_equal(md5, want_md5);
    e2e_http_free(&r);
    device_update(&b, &r, "1.0.0", "spiffs"); /* the frontend, never asked for on b before */
    expect_file(&r, &www);
    e2e_http_free(&r);

    /* a damaged database copy: refused, not kept, on both paths */
    upload(&a, &v2, "?platform=shared");
    flip(&v2, 1);
    aloftd_get(&b, &r, v2.url, NULL);
    expect_error(&r, 500, "file_damaged");
    e2e_http_free(&r);
    device_update(&b, &r, "1.0.0", "sketch");
    expect_error(&r, 500, "file_damaged");
    e2e_http_free(&r);
    assert_false(has_file(&b, &v2));
    assert_int_equal(aloftd_count_files(&b, "tmp"), 0);
    aloftd_get(&a, &r, v2.url, NULL); /* the uploader's own copy is whole */
    expect_file(&r, &v2);
    e2e_http_free(&r);
    flip(&v2, 1); /* repaired */
    device_update(&b, &r, "1.0.0", "sketch");
    expect_file(&r, &v2);
    e2e_http_free(&r);

    /* a file lost from an instance's disk comes back from the database */
    char path[500];
    snprintf(path, sizeof path, "%s/firmware/%s.bin", a.data, www.sha);
    assert_int_equal(unlink(path), 0);
    aloftd_get(&a, &r, www.url, NULL);
    expect_file(&r, &www);
    e2e_http_free(&r);
    assert_true(has_file(&a, &www));

    char *log = aloftd_log_read(&b);
    assert_non_null(strstr(log, "is damaged"));
    free(log);
    assert_int_equal(aloftd_stop(&b), 0);
    assert_int_equal(aloftd_stop(&a), 0);
done:
    free(v1.bytes);
    free(v2.bytes);
    free(www.bytes);
}

int main(void)
{
    e2e_init(181);
    if (aloftd_db_init("aloftd shared-file tests"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_shared, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
