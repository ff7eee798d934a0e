/* aloftd's settings end to end: HTTPS with --tls-cert/--tls-key (a
 * throwaway CA and a server certificate for 127.0.0.1 made with the openssl
 * CLI; curl trusts the server with --cacert and refuses it without), clear
 * refusals of unreadable, non-PEM and mismatched files; and --config /
 * ALOFT_CONFIG with the precedence flags > environment > config file >
 * defaults, each setting's source logged. */
#include "aloftd_harness.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>


static struct aloftd_proc srv;

/* sh -c "cmd" with stderr joined to stdout; its exit status, the output in *out. */
static int sh(char **out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sh(char **out, const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof full, "(%s) 2>&1", cmd);
    fflush(NULL);
    FILE *p = popen(full, "r");
    assert_non_null(p);
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    size_t r;
    while ((r = fread(buf + n, 1, cap - n - 1, p)) > 0)
        n += r;
    buf[n] = 0;
    int status = pclose(p);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* aloftd with argv (NULL-terminated, after "aloftd --data D --listen
 * 127.0.0.1:0"), expected to refuse to start: its status, output in *out. */
static int refused(char **out, const char *args)
{
    char data[400];
    snprintf(data, sizeof data, "%s/refused", e2e_dir());
    return sh(out, "timeout 10 %s/aloftd --data %s --listen 127.0.0.1:0 %s </dev/null", ALOFT_BIN, data, args);
}

static void expect_refusal(const char *args, int status, const char *message)
{
    char *out;
    int rc = refused(&out, args);
    if (rc != status || !strstr(out, message))
        fprintf(stderr, "aloftd %s: status %d (want %d), output:\n%s\n(want '%s')\n", args, rc, status, out, message);
    assert_int_equal(rc, status);
    assert_non_null(strstr(out, message));
    free(out);
}

static void test_tls(void **state)
{
    (void)state;
    const char *dir = e2e_dir();
    char *out;
    /* a CA, and a certificate for 127.0.0.1 it signs; a second, unrelated key */
    e2e_make_ca("127.0.0.1");
    int rc = sh(&out,
                "cd %s && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out other.key"
                " && printf 'not a certificate\\n' >junk.pem",
                dir);
    if (rc)
        fprintf(stderr, "openssl (scripts/deps.sh installs it) failed:\n%s\n", out);
    free(out);
    assert_int_equal(rc, 0);
    const char *ca = e2e_path("ca.pem"), *cert = e2e_path("srv.pem"), *key = e2e_path("srv.key");

    aloftd_init(&srv, "tls");
    const char *args[] = {"--listen", "127.0.0.1:0", "--tls-cert", cert, "--tls-key", key, NULL};
    assert_int_equal(aloftd_start(&srv, args), 0);
    aloftd_https_url(&srv);

    /* trusted through the CA: the device endpoint and an upload + download */
    const char *trust[] = {"--cacert", ca, NULL};
    struct e2e_http r;
    assert_int_equal(aloftd_get(&srv, &r, "/update?dev=demo&ver=1.0.0", trust), 404);
    assert_int_equal(r.rc, 0);
    e2e_http_free(&r);
    const char *img = e2e_path("tls.bin");
    e2e_image(img, "esp32s3", "1.0.0", 300000, NULL);
    assert_int_equal(aloftd_upload(&srv, &r, img, NULL, trust), 201);
    e2e_http_free(&r);
    size_t len;
    uint8_t *bytes = e2e_file_read(img, &len);
    char sha[65], path[100];
    aloft_sha256_hex(bytes, len, sha);
    free(bytes);
    snprintf(path, sizeof path, "/firmware/%s.bin", sha);
    assert_int_equal(aloftd_get(&srv, &r, path, trust), 200);
    char got[65];
    assert_int_equal(r.len, len);
    aloft_sha256_hex(r.body, r.len, got);
    assert_string_equal(got, sha);
    e2e_http_free(&r);

    /* without the CA: curl refuses the certificate (60), no reply */
    assert_int_equal(aloftd_get(&srv, &r, "/update?dev=demo&ver=1.0.0", NULL), 0);
    assert_int_equal(r.rc, 60);
    e2e_http_free(&r);
    /* plain HTTP to the HTTPS port gets no HTTP reply */
    char plain[80];
    snprintf(plain, sizeof plain, "http://%.60s", srv.url + 8);
    const char *argv[] = {plain, NULL};
    assert_int_not_equal(e2e_curl(&r, argv), 200);
    e2e_http_free(&r);
    assert_int_equal(aloftd_stop(&srv), 0);

    /* refusals, each naming the file and the reason */
    char a[1200];
    snprintf(a, sizeof a, "--tls-cert %s --tls-key %s", cert, e2e_path("other.key"));
    expect_refusal(a, 1, "The certificate and the given key do not match");
    expect_refusal(a, 1, "the key does not match the certificate");
    snprintf(a, sizeof a, "--tls-cert %s --tls-key %s/missing.key", cert, dir);
    expect_refusal(a, 1, "missing.key: cannot read it: No such file or directory");
    snprintf(a, sizeof a, "--tls-cert %s --tls-key %s", e2e_path("junk.pem"), key);
    expect_refusal(a, 1, "junk.pem: not a PEM certificate");
    snprintf(a, sizeof a, "--tls-cert %s --tls-key %s", cert, cert);
    expect_refusal(a, 1, "not a PEM private key");
    snprintf(a, sizeof a, "--tls-cert %s", cert);
    expect_refusal(a, 2, "HTTPS needs both tls-cert and tls-key");
}

static void write_text(const char *path, const char *text)
{
    e2e_file_write(path, text, strlen(text));
}

static bool log_has(const struct aloftd_proc *s, const char *needle)
{
    char *log = aloftd_log_read(s);
    bool yes = strstr(log, needle) != NULL;
    if (!yes)
        fprintf(stderr, "aloftd log lacks '%s':\n%s\n", needle, log);
    free(log);
    return yes;
}

static int upload_status(const char *img)
{
    struct e2e_http r;
    int code = aloftd_upload(&srv, &r, img, NULL, NULL);
    e2e_http_free(&r);
    return code;
}

static void test_config(void **state)
{
    (void)state;
    const char *img = e2e_path("cfg.bin"), *conf = e2e_path("aloftd.conf"), *other = e2e_path("other.conf");
    e2e_image(img, "esp32s3", "1.0.0", 100000, NULL); /* over 20K, under 1M */
    char text[1000], want[1000];
    snprintf(text, sizeof text,
             "# aloftd settings\n"
             "\n"
             "max-upload = 16K\n"
             "  threads=3\n"
             "admin_token_file = \"%s\"\n",
             e2e_path("cfg-token"));
    write_text(conf, text);
    write_text(other, "max-upload = 1M\n");

    /* the config file over the defaults; the harness's --threads flag over it */
    aloftd_init(&srv, "config");
    const char *with_conf[] = {"--config", conf, NULL};
    assert_int_equal(aloftd_start(&srv, with_conf), 0);
    snprintf(want, sizeof want, "setting max-upload = 16K (config %s:3)", conf);
    assert_true(log_has(&srv, want));
    snprintf(want, sizeof want, "setting admin-token-file = %s (config %s:5)", e2e_path("cfg-token"), conf);
    assert_true(log_has(&srv, want));
    assert_true(log_has(&srv, "setting threads = 2 (flag --threads)"));
    assert_int_equal(access(e2e_path("cfg-token"), F_OK), 0); /* written where the config said */
    assert_int_equal(upload_status(img), 413);
    assert_int_equal(aloftd_stop(&srv), 0);

    /* the environment over the config file */
    setenv("ALOFT_MAX_UPLOAD", "1M", 1);
    int rc = aloftd_start(&srv, with_conf);
    unsetenv("ALOFT_MAX_UPLOAD");
    assert_int_equal(rc, 0);
    assert_true(log_has(&srv, "setting max-upload = 1M (environment ALOFT_MAX_UPLOAD)"));
    assert_int_equal(upload_status(img), 201);
    assert_int_equal(aloftd_stop(&srv), 0);

    /* the flag over the environment over the config file */
    const char *flag[] = {"--config", conf, "--max-upload", "20K", NULL};
    setenv("ALOFT_MAX_UPLOAD", "1M", 1);
    rc = aloftd_start(&srv, flag);
    unsetenv("ALOFT_MAX_UPLOAD");
    assert_int_equal(rc, 0);
    assert_true(log_has(&srv, "setting max-upload = 20K (flag --max-upload)"));
    assert_int_equal(upload_status(img), 413);
    assert_int_equal(aloftd_stop(&srv), 0);

    /* ALOFT_CONFIG names the file; --config wins over it */
    setenv("ALOFT_CONFIG", conf, 1);
    rc = aloftd_start(&srv, NULL);
    assert_int_equal(rc, 0);
    snprintf(want, sizeof want, "setting max-upload = 16K (config %s:3)", conf);
    assert_true(log_has(&srv, want));
    assert_int_equal(aloftd_stop(&srv), 0);
    const char *over[] = {"--config", other, NULL};
    rc = aloftd_start(&srv, over);
    unsetenv("ALOFT_CONFIG");
    assert_int_equal(rc, 0);
    snprintf(want, sizeof want, "setting max-upload = 1M (config %s:1)", other);
    assert_true(log_has(&srv, want));
    assert_int_equal(aloftd_stop(&srv), 0);

    /* a bad config file stops aloftd before it serves, naming the line */
    char a[600];
    const char *bad = e2e_path("bad.conf");
    write_text(bad, "listen = 127.0.0.1:0\nbogus = 1\n");
    snprintf(a, sizeof a, "--config %s", bad);
    expect_refusal(a, 2, "bad.conf:2: unknown setting 'bogus'");
    write_text(bad, "max-upload 16K\n");
    expect_refusal(a, 2, "bad.conf:1: expected `key = value`");
    write_text(bad, "threads = 2\nthreads = 3\n");
    expect_refusal(a, 2, "bad.conf:2: threads is already set on line 1");
    write_text(bad, "max-upload = lots\n");
    snprintf(want, sizeof want, "max-upload 'lots' (config %s:1): give a size", bad);
    expect_refusal(a, 2, want);
    snprintf(a, sizeof a, "--config %s/none.conf", e2e_dir());
    expect_refusal(a, 2, "none.conf: No such file or directory");
}

int main(void)
{
    e2e_init(151);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_tls, aloftd_teardown),
        cmocka_unit_test_teardown(test_config, aloftd_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
