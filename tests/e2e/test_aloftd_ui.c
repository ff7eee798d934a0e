/* aloftd's admin UI files (apps/aloftd/ui.c) end to end, with curl: / and
 * /admin redirect to /admin/; files come with their Content-Type, the .gz
 * copy with Content-Encoding: gzip to a client that accepts it; every form
 * of ../ (raw, percent-encoded, double-encoded) and hidden files are
 * refused with 400 bad_path and nothing outside the UI directory is
 * served; --ui, ALOFT_UI and the config file's `ui` all set the directory;
 * without a built UI, /admin/ says how to build it. The browser side is
 * tests/browser/admin_ui.test.mjs. */
#include "aloftd_harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static struct aloftd_proc srv;

static const char index_html[] = "<!doctype html><title>test UI</title><script src=\"./assets/app.js\"></script>\n";
static const char app_js[] = "console.log('the plain copy');\n";
static const char app_js_gz[] = "\x1f\x8b not really gzip, but the server does not look inside";
static const char secret[] = "SECRET-OUTSIDE-THE-UI\n";

/* <e2e dir>/ui with index.html and assets/app.js(.gz); a secret next to it
 * and in the data directory's parent. Returns the UI directory. */
static const char *make_ui(void)
{
    static char dir[400];
    char path[500];
    snprintf(dir, sizeof dir, "%s/ui", e2e_dir());
    mkdir(dir, 0755);
    snprintf(path, sizeof path, "%s/assets", dir);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/index.html", dir);
    e2e_file_write(path, index_html, strlen(index_html));
    snprintf(path, sizeof path, "%s/assets/app.js", dir);
    e2e_file_write(path, app_js, strlen(app_js));
    snprintf(path, sizeof path, "%s/assets/app.js.gz", dir);
    e2e_file_write(path, app_js_gz, strlen(app_js_gz));
    snprintf(path, sizeof path, "%s/.hidden", dir);
    e2e_file_write(path, secret, strlen(secret));
    snprintf(path, sizeof path, "%s/secret.txt", e2e_dir());
    e2e_file_write(path, secret, strlen(secret));
    return dir;
}

/* GET path sent as is (no ../ folding by curl), extra headers may be NULL. */
static int get(struct e2e_http *r, const char *path, const char *header)
{
    const char *with[] = {"--path-as-is", "-H", header, NULL};
    const char *without[] = {"--path-as-is", NULL};
    return aloftd_get(&srv, r, path, header ? with : without);
}

static void test_serving(void **state)
{
    (void)state;
    const char *ui = make_ui();
    aloftd_init(&srv, "ui");
    const char *args[] = {"--ui", ui, NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    char *log = aloftd_log_read(&srv);
    char want[500];
    snprintf(want, sizeof want, "admin UI at /admin/ from %s", ui);
    assert_non_null(strstr(log, want));
    free(log);

    struct e2e_http r;
    const char *redirects[] = {"/", "/admin"};
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(get(&r, redirects[i], NULL), 302);
        assert_string_equal(aloftd_header_value(&r, "Location"), "/admin/");
        e2e_http_free(&r);
    }

    assert_int_equal(get(&r, "/admin/", NULL), 200);
    assert_string_equal(r.body, index_html);
    assert_string_equal(aloftd_header_value(&r, "Content-Type"), "text/html; charset=utf-8");
    assert_string_equal(aloftd_header_value(&r, "Cache-Control"), "no-cache");
    e2e_http_free(&r);
    assert_int_equal(get(&r, "/admin/index.html", NULL), 200);
    assert_string_equal(r.body, index_html);
    e2e_http_free(&r);

    assert_int_equal(get(&r, "/admin/assets/app.js", NULL), 200);
    assert_string_equal(r.body, app_js);
    assert_string_equal(aloftd_header_value(&r, "Content-Type"), "text/javascript; charset=utf-8");
    assert_null(aloftd_header_value(&r, "Content-Encoding"));
    e2e_http_free(&r);
    assert_int_equal(get(&r, "/admin/assets/app.js", "Accept-Encoding: br, gzip"), 200);
    assert_string_equal(r.body, app_js_gz);
    assert_string_equal(aloftd_header_value(&r, "Content-Encoding"), "gzip");
    assert_string_equal(aloftd_header_value(&r, "Content-Type"), "text/javascript; charset=utf-8");
    e2e_http_free(&r);
    assert_int_equal(get(&r, "/admin/assets/app.js", "Accept-Encoding: gzip;q=0, deflate"), 200);
    assert_string_equal(r.body, app_js);
    e2e_http_free(&r);

    /* Up and out of the UI directory, in every spelling: the secret next to
     * it, the server's own database, /etc/passwd. */
    const char *bad[] = {
        "/admin/../secret.txt",
        "/admin/%2e%2e/secret.txt",
        "/admin/%2E%2E/secret.txt",
        "/admin/..%2fsecret.txt",
        "/admin/%2e%2e%2fsecret.txt",
        "/admin/assets/../../secret.txt",
        "/admin/assets/%2e%2e/%2e%2e/secret.txt",
        "/admin/.%2e/secret.txt",
        "/admin/%252e%252e/secret.txt",
        "/admin/..%5csecret.txt",
        "/admin//etc/passwd",
        "/admin/%2fetc/passwd",
        "/admin/assets/../../../../../../etc/passwd",
        "/admin/.hidden",
        "/admin/./index.html",
        "/admin/assets/./app.js",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(get(&r, bad[i], NULL), 400);
        assert_non_null(strstr(r.body, "\"error\":\"bad_path\""));
        assert_null(strstr(r.body, "SECRET"));
        assert_null(strstr(r.body, "root:"));
        e2e_http_free(&r);
    }

    assert_int_equal(get(&r, "/admin/assets/none.js", NULL), 404);
    assert_non_null(strstr(r.body, "\"error\":\"not_found\""));
    e2e_http_free(&r);
    const char *post[] = {"-X", "POST", NULL};
    assert_int_equal(aloftd_get(&srv, &r, "/admin/", post), 405);
    e2e_http_free(&r);
    /* The files need no token; the API still does. */
    assert_int_equal(get(&r, "/api/platforms", NULL), 401);
    e2e_http_free(&r);
    assert_int_equal(aloftd_stop(&srv), 0);
}

/* ALOFT_UI, and `ui` in the config file, name the directory as --ui does. */
static void test_setting(void **state)
{
    (void)state;
    const char *ui = make_ui();
    struct e2e_http r;
    aloftd_init(&srv, "ui-env");
    setenv("ALOFT_UI", ui, 1);
    int rc = aloftd_start(&srv, NULL);
    unsetenv("ALOFT_UI");
    assert_int_equal(rc, 0);
    assert_int_equal(get(&r, "/admin/", NULL), 200);
    assert_string_equal(r.body, index_html);
    e2e_http_free(&r);
    assert_int_equal(aloftd_stop(&srv), 0);

    char config[500], text[600];
    snprintf(config, sizeof config, "%s/ui.conf", e2e_dir());
    snprintf(text, sizeof text, "# the admin UI\nui = \"%s\"\n", ui);
    e2e_file_write(config, text, strlen(text));
    aloftd_init(&srv, "ui-config");
    const char *args[] = {"--config", config, NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    assert_int_equal(get(&r, "/admin/assets/app.js", NULL), 200);
    assert_string_equal(r.body, app_js);
    e2e_http_free(&r);
    char *log = aloftd_log_read(&srv);
    char want[600];
    snprintf(want, sizeof want, "setting ui = %s (config %s:2)", ui, config);
    assert_non_null(strstr(log, want));
    free(log);
    assert_int_equal(aloftd_stop(&srv), 0);
}

/* No UI built there: a page that says how to build it, and a log line. */
static void test_not_built(void **state)
{
    (void)state;
    char empty[400];
    snprintf(empty, sizeof empty, "%s/no-ui", e2e_dir());
    mkdir(empty, 0755);
    aloftd_init(&srv, "ui-none");
    const char *args[] = {"--ui", empty, NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    char *log = aloftd_log_read(&srv);
    assert_non_null(strstr(log, "has no index.html (make www builds it"));
    free(log);
    struct e2e_http r;
    assert_int_equal(get(&r, "/admin/", NULL), 404);
    assert_string_equal(aloftd_header_value(&r, "Content-Type"), "text/html; charset=utf-8");
    assert_non_null(strstr(r.body, "The admin UI is not built"));
    assert_non_null(strstr(r.body, "make www"));
    assert_non_null(strstr(r.body, empty));
    e2e_http_free(&r);
    assert_int_equal(get(&r, "/", NULL), 302); /* the redirect still points there */
    e2e_http_free(&r);
    assert_int_equal(aloftd_stop(&srv), 0);
}

int main(void)
{
    e2e_init(154);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_serving, aloftd_teardown),
        cmocka_unit_test_teardown(test_setting, aloftd_teardown),
        cmocka_unit_test_teardown(test_not_built, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
