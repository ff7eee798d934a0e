/* aloftd crash safety (issue 5): 50 different images (aloft image make
 * --size ...) are uploaded with curl one after another while a killer
 * process sends aloftd SIGKILL at a random moment; aloftd is restarted on
 * the same --data and database each time, and an upload the kill cut short
 * is sent again. After every restart:
 *   - every blob and release row has its complete file (size and SHA-256
 *     match the row), and the release's bytes are the image of that version;
 *   - every upload acknowledged (200/201) before a kill is still recorded;
 *   - every recorded file downloads whole (its SHA-256 checked), /update
 *     offers the newest release whole, and a file the database does not
 *     record (kept on disk, killed before the commit) is never served;
 *   - on SQLite, tmp/ holds no unfinished upload.
 * Runs on SQLite, and with ALOFT_TEST_DB=postgres on the harness's
 * PostgreSQL. Bounded: the kills stop after CRASH_BUDGET_MS; the remaining
 * uploads then run without a killer. */
#include "aloftd_harness.h"

#include <dirent.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>


#define IMAGES 50
#define CRASH_BUDGET_MS 35000u
#define MIN_KILLS 10

static struct aloftd_proc srv;

static struct image {
    char path[300], version[16], sha[65];
    size_t size;
    bool acked; /* aloftd answered 200/201 for it */
} img[IMAGES];

/* Rows of a query: "a\nb\n..." values, 'cols' per row; malloc'd. */
static char *query(const char *sql)
{
    if (aloftd_on_pg())
        return aloftd_pg_query(srv.db, sql);
    char path[400];
    snprintf(path, sizeof path, "%s/aloft.db", srv.data);
    sqlite3 *db;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fprintf(stderr, "%s: %s\n", sql, sqlite3_errmsg(db));
    size_t cap = 1 << 16, n = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = 0;
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < sqlite3_column_count(st); c++) {
            const char *v = (const char *)sqlite3_column_text(st, c);
            size_t len = strlen(v ? v : "");
            if (n + len + 2 > cap) {
                cap = 2 * (n + len + 2);
                out = realloc(out, cap);
                assert_non_null(out);
            }
            n += (size_t)sprintf(out + n, "%s\n", v ? v : "");
        }
    }
    assert_int_equal(rc, SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static struct image *by_version(const char *version)
{
    for (int i = 0; i < IMAGES; i++)
        if (!strcmp(img[i].version, version))
            return &img[i];
    return NULL;
}

/* The file on disk and the download both hold exactly sha/size. */
static void check_file(const char *sha, size_t size)
{
    char path[500], got[65];
    snprintf(path, sizeof path, "%s/firmware/%s.bin", srv.data, sha);
    size_t len;
    uint8_t *bytes = e2e_file_read(path, &len);
    if (len != size)
        fprintf(stderr, "%s: %zu bytes, the row says %zu\n", path, len, size);
    assert_int_equal(len, size);
    aloft_sha256_hex(bytes, len, got);
    free(bytes);
    assert_string_equal(got, sha);

    struct e2e_http r;
    char url[100];
    snprintf(url, sizeof url, "/firmware/%s.bin", sha);
    assert_int_equal(aloftd_get(&srv, &r, url, NULL), 200);
    assert_int_equal(r.len, size);
    aloft_sha256_hex(r.body, r.len, got);
    assert_string_equal(got, sha);
    e2e_http_free(&r);
}

static unsigned orphans; /* files on disk the database did not record, summed over the checks */

static unsigned verify(void)
{
    /* blobs: every row's file complete and served whole */
    char *rows = query("SELECT sha256, size FROM blobs ORDER BY sha256");
    unsigned blobs = 0;
    for (char *p = rows; *p;) {
        char *sha = p, *size = strchr(sha, '\n') + 1;
        p = strchr(size, '\n') + 1;
        sha[64] = 0;
        check_file(sha, strtoull(size, NULL, 10));
        blobs++;
    }
    /* releases: the bytes of the image of that version */
    free(rows);
    rows = query("SELECT r.version, r.sha256, b.size FROM releases r JOIN blobs b ON b.sha256 = r.sha256");
    unsigned releases = 0;
    bool have[IMAGES] = {false};
    for (char *p = rows; *p;) {
        char *version = p, *sha = strchr(version, '\n') + 1, *size = strchr(sha, '\n') + 1;
        p = strchr(size, '\n') + 1;
        sha[-1] = 0;
        sha[64] = 0;
        struct image *im = by_version(version);
        assert_non_null(im);
        assert_string_equal(sha, im->sha);
        assert_int_equal(strtoull(size, NULL, 10), im->size);
        have[im - img] = true;
        releases++;
    }
    free(rows);
    for (int i = 0; i < IMAGES; i++)
        if (img[i].acked && !have[i]) {
            fprintf(stderr, "%s was acknowledged but is not recorded after a kill\n", img[i].version);
            fail();
        }
    /* a file on disk the database does not record is never served */
    char dir[400];
    snprintf(dir, sizeof dir, "%s/firmware", srv.data);
    DIR *dp = opendir(dir);
    assert_non_null(dp);
    struct dirent *e;
    unsigned files = 0;
    while ((e = readdir(dp))) {
        if (e->d_name[0] == '.')
            continue;
        files++;
        char sql[200];
        snprintf(sql, sizeof sql, "SELECT COUNT(*) FROM blobs WHERE sha256 = '%.64s'", e->d_name);
        char *n = query(sql);
        if (atoi(n) == 0) {
            orphans++;
            struct e2e_http r;
            char url[400];
            snprintf(url, sizeof url, "/firmware/%s", e->d_name);
            assert_int_equal(aloftd_get(&srv, &r, url, NULL), 404);
            e2e_http_free(&r);
        }
        free(n);
    }
    closedir(dp);
    assert_true(files >= blobs);
    if (!aloftd_on_pg()) /* shared (PostgreSQL) data keeps recent tmp files: another aloftd may be writing them */
        assert_int_equal(aloftd_count_files(&srv, "tmp"), 0);
    /* /update offers the newest release, whole */
    if (releases) {
        rows = query("SELECT version FROM releases ORDER BY seq DESC LIMIT 1");
        rows[strcspn(rows, "\n")] = 0;
        struct image *newest = by_version(rows);
        free(rows);
        assert_non_null(newest);
        struct e2e_http r;
        const char *h[] = {"-H", "User-Agent: ESP32-http-Update", "-H", "x-ESP32-STA-MAC: 24:0A:C4:00:00:01", NULL};
        assert_int_equal(aloftd_get(&srv, &r, "/update?dev=demo&ver=0.0.1", h), 200);
        char got[65];
        assert_int_equal(r.len, newest->size);
        aloft_sha256_hex(r.body, r.len, got);
        assert_string_equal(got, newest->sha);
        e2e_http_free(&r);
    }
    return releases;
}

/* A process that sends aloftd SIGKILL after ms milliseconds. */
static pid_t killer(pid_t victim, unsigned ms)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(1);
        usleep(ms * 1000u);
        kill(victim, SIGKILL);
        _exit(0);
    }
    return pid;
}

static int upload(int i, bool slow)
{
    struct e2e_http r;
    const char *extra[] = {"--max-time", "20", slow ? "--limit-rate" : NULL, "16M", NULL};
    int code = aloftd_upload(&srv, &r, img[i].path, NULL, extra);
    if (code && code != 200 && code != 201)
        fprintf(stderr, "upload of %s: %d %s\n", img[i].version, code, r.body);
    e2e_http_free(&r);
    return code;
}

static void test_crash(void **state)
{
    (void)state;
    for (int i = 0; i < IMAGES; i++) {
        struct image *im = &img[i];
        snprintf(im->version, sizeof im->version, "1.0.%d", i);
        snprintf(im->path, sizeof im->path, "%s", e2e_path(im->version));
        e2e_image(im->path, "esp32s3", im->version, 66000 + e2e_rand() % 700000, NULL);
        uint8_t *bytes = e2e_file_read(im->path, &im->size);
        aloft_sha256_hex(bytes, im->size, im->sha);
        free(bytes);
    }
    aloftd_init(&srv, "crash");
    const char *args[] = {"--admin-token-file", e2e_path("crash-token"), NULL};
    uint64_t end = e2e_now_ms() + CRASH_BUDGET_MS;
    unsigned kills = 0, cut = 0;
    int next = 0;   /* images acknowledged so far, in order */
    unsigned n = 0; /* uploads sent: past IMAGES they repeat (idempotent) */
    /* Kill until every image is in and at least MIN_KILLS kills happened,
     * however fast the uploads go: once all are in, the same bytes are sent
     * again, which must change nothing. */
    while (next < IMAGES || kills < MIN_KILLS) {
        assert_int_equal(aloftd_start(&srv, args), 0);
        verify();
        bool crash = e2e_now_ms() < end;
        if (!crash)
            assert_true(kills >= MIN_KILLS); /* the budget ran out first */
        pid_t k = crash ? killer(srv.pid, 5 + e2e_rand() % 250) : 0;
        while (crash || next < IMAGES) {
            int i = next < IMAGES ? next : (int)(n % IMAGES);
            int code = upload(i, e2e_rand() % 2);
            n++;
            if (code != 200 && code != 201) {
                assert_int_equal(code, 0); /* no reply: the kill; never a wrong answer */
                cut++;
                break;
            }
            if (next < IMAGES)
                img[next++].acked = true;
        }
        if (!crash)
            break;
        int status;
        assert_int_equal(waitpid(k, &status, 0), k);
        assert_int_equal(waitpid(srv.pid, &status, 0), srv.pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        srv.pid = 0;
        kills++;
    }
    if (srv.pid == 0)
        assert_int_equal(aloftd_start(&srv, args), 0);
    unsigned releases = verify();
    printf("crash: %u kills (%u uploads got no reply), %u releases, every file whole; a file kept but not "
           "recorded (killed before the commit) seen %u times, never served\n",
           kills, cut, releases, orphans);
    assert_int_equal(releases, IMAGES);
    assert_true(kills >= MIN_KILLS);
    assert_int_equal(aloftd_stop(&srv), 0);
}

int main(void)
{
    e2e_init(152);
    if (aloftd_db_init("aloftd crash test"))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_crash, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
