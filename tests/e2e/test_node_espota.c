/* The ArduinoOTA upload (espota, PROTOCOLS.md §5) on real nodes, driven by
 * host/espota.c (a client written from the protocol, OpenSSL's MD5,
 * SHA-256 and PBKDF2) step by step: both authentication schemes, a
 * filesystem image into the www slot, and every refusal — wrong password,
 * bad MD5, wrong chip, not LittleFS, an interrupted transfer, a host that
 * never takes the connection, a second invitation during a transfer, no
 * PSK — leaves the running image, otadata and settings byte-identical.
 * With python3, tests/e2e/espota_client.py speaks the protocol as the
 * Arduino tools' espota.py does (Python's hashlib), in both schemes. And
 * `aloft deploy --espota` pushes to a few nodes at once: verified through
 * their status endpoint, or "sent" when none answers there. */
#include "e2e.h"

#include <fcntl.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "espota.h"

static struct e2e_node node;
static int udp_port; /* the node's HTTP port's number: free there, and not shared with a parallel run */
static char ip[16];
static char fw[3][300], c3[300], www[300], notfs[300];

static void md5_hex(const uint8_t *d, size_t n, char out[33])
{
    unsigned char h[16];
    unsigned len = 0;
    EVP_Digest(d, n, h, &len, EVP_md5(), NULL);
    for (unsigned i = 0; i < len; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

static int setup(void **state)
{
    (void)state;
    static const char *const versions[] = {"1.1.0", "1.2.0", "1.3.0"};
    for (int i = 0; i < 3; i++) {
        snprintf(fw[i], sizeof fw[i], "%s", e2e_path(versions[i]));
        e2e_image(fw[i], "esp32s3", versions[i], 0, NULL);
    }
    snprintf(c3, sizeof c3, "%s", e2e_path("c3.bin"));
    e2e_image(c3, "esp32c3", "9.0.0", 0, NULL);
    char dir[300];
    snprintf(dir, sizeof dir, "%s", e2e_path("site"));
    assert_int_equal(mkdir(dir, 0755), 0);
    char index[400];
    snprintf(index, sizeof index, "%s/index.html", dir);
    e2e_file_write(index, "<h1>over espota</h1>\n", 21);
    snprintf(www, sizeof www, "%s", e2e_path("www.bin"));
    const char *mkfs[] = {"aloft", "mkfs", dir, "-o", www, NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);
    snprintf(notfs, sizeof notfs, "%s", e2e_path("notfs.bin"));
    e2e_file_write(notfs, "this is no filesystem", 21);

    const char *v1 = e2e_path("v1.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_node_init(&node, "espota");
    snprintf(ip, sizeof ip, "%.*s", (int)(strchr(node.listen, ':') - node.listen), node.listen);
    udp_port = atoi(strchr(node.listen, ':') + 1);
    static char espota[32];
    snprintf(espota, sizeof espota, "%s:%d", ip, udp_port);
    /* the example waits 10 s for a quiet host; the simulator as long as told */
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--www", dir,
                          "--espota", espota, e2e_example() ? NULL : "--idle-timeout", "2", NULL};
    return e2e_node_start(&node, args);
}

static int teardown(void **state)
{
    return e2e_teardown(state);
}

/* Invite for file (as a filesystem image when fs), with md5 or the file's. */
static void invite(struct aloft_espota_client *c, const char *file, bool fs, const char *md5, uint8_t **img,
                   size_t *len)
{
    char sum[33];
    *img = e2e_file_read(file, len);
    md5_hex(*img, *len, sum);
    int rc = aloft_espota_invite(c, ip, udp_port, fs ? ALOFT_ESPOTA_CMD_FS : ALOFT_ESPOTA_CMD_FLASH, *len,
                                 md5 ? md5 : sum);
    if (rc)
        fprintf(stderr, "invite: %s\n", c->why);
    assert_int_equal(rc, 0);
}

/* Invite and authenticate with digits of the nonce (32: MD5, 64: SHA-256);
 * the device connects back. */
static void ready(struct aloft_espota_client *c, const char *file, bool fs, const char *md5, size_t digits,
                  uint8_t **img, size_t *len)
{
    invite(c, file, fs, md5, img, len);
    assert_int_equal(strncmp(c->answer, "AUTH ", 5), 0);
    assert_int_equal(strlen(c->answer + 5), 64);
    int rc = aloft_espota_auth(c, node.psk, digits);
    if (rc)
        fprintf(stderr, "auth: %s\n", c->why);
    assert_int_equal(rc, 0);
    assert_int_equal(aloft_espota_accept(c, 10000), 0);
}

/* A whole upload that the device takes; it restarts into it. */
static void pushed(const char *file, bool fs, size_t digits)
{
    struct aloft_espota_client c;
    uint8_t *img;
    size_t len;
    unsigned boots = node.serving;
    ready(&c, file, fs, NULL, digits, &img, &len);
    int rc = aloft_espota_send(&c, img, len, len);
    if (rc)
        fprintf(stderr, "send: %s\n", c.why);
    assert_int_equal(rc, 0);
    aloft_espota_close(&c);
    free(img);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
}

static void refused_upload(const char *file, bool fs, const char *md5, const char *code)
{
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct aloft_espota_client c;
    uint8_t *img;
    size_t len;
    ready(&c, file, fs, md5, 64, &img, &len);
    assert_int_equal(aloft_espota_send(&c, img, len, len), 1);
    if (!strstr(c.why, code))
        fprintf(stderr, "expected %s, got: %s\n", code, c.why);
    assert_non_null(strstr(c.why, code));
    aloft_espota_close(&c);
    free(img);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
}

static void version_is(const char *want)
{
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "version"), want);
    cJSON_Delete(st);
}

static void firmware_both_schemes(void **state)
{
    (void)state;
    pushed(fw[0], false, 64); /* arduino-esp32 3.3.1+: PBKDF2-HMAC-SHA256 */
    version_is("1.1.0");
    assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
    pushed(fw[1], false, 32); /* classic espota.py: MD5 over the nonce's first 32 digits */
    version_is("1.2.0");
    assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
}

static void filesystem_image(void **state)
{
    (void)state;
    cJSON *st = e2e_get_json(&node, "/api/ota/status");
    int before = (int)e2e_jnum(st, "active_slot");
    cJSON_Delete(st);
    pushed(www, true, 64);
    st = e2e_get_json(&node, "/api/ota/status");
    assert_int_equal((int)e2e_jnum(st, "active_slot"), !before);
    cJSON_Delete(st);
    struct e2e_http r;
    char url[100];
    snprintf(url, sizeof url, "%s/", node.url);
    const char *get[] = {url, NULL};
    assert_int_equal(e2e_curl(&r, get), 200);
    assert_non_null(strstr(r.body, "over espota"));
    e2e_http_free(&r);
    refused_upload(notfs, true, NULL, "not_littlefs");
}

static void wrong_password(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    for (size_t digits = 32; digits <= 64; digits += 32) {
        struct aloft_espota_client c;
        uint8_t *img;
        size_t len;
        invite(&c, fw[2], false, NULL, &img, &len);
        assert_int_equal(aloft_espota_auth(&c, "not the psk", digits), 1);
        assert_string_equal(c.answer, "Authentication Failed");
        /* nothing was agreed: the device does not connect */
        assert_int_equal(aloft_espota_accept(&c, 1000), -1);
        aloft_espota_close(&c);
        free(img);
    }
    assert_int_equal(e2e_log_count(&node, "espota: authentication failed"), 2);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
}

static void bad_md5_and_wrong_chip(void **state)
{
    (void)state;
    refused_upload(fw[2], false, "0123456789abcdef0123456789abcdef", "bad_md5");
    refused_upload(c3, false, NULL, "wrong_chip");
}

static void interrupted_transfer(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct aloft_espota_client c;
    uint8_t *img;
    size_t len;
    ready(&c, fw[2], false, NULL, 64, &img, &len);
    assert_int_equal(aloft_espota_send(&c, img, len / 2, len), -1);
    aloft_espota_close(&c);
    free(img);
    assert_int_equal(e2e_node_wait_log(&node, "espota: the host closed early; nothing changed", 1, 10000), 0);
    assert_null(e2e_snap_diff(&s, &node));

    /* a host that stops sending: the device gives up after --idle-timeout */
    ready(&c, fw[2], false, NULL, 64, &img, &len);
    assert_int_equal(aloft_espota_send(&c, img, 8192, len), -1);
    assert_int_equal(e2e_node_wait_log(&node, "espota: the host sent nothing for too long", 1, 20000), 0);
    aloft_espota_close(&c);
    free(img);

    /* a host that never takes the connection (its port closed by then) */
    invite(&c, fw[2], false, NULL, &img, &len);
    close(c.listener);
    c.listener = -1;
    assert_int_equal(aloft_espota_auth(&c, node.psk, 64), 0);
    assert_int_equal(e2e_node_wait_log(&node, "espota: the host did not take the connection", 1, 10000), 0);
    aloft_espota_close(&c);
    free(img);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
}

static void second_invitation_refused(void **state)
{
    (void)state;
    struct aloft_espota_client a, b;
    uint8_t *img, *img2;
    size_t len, len2;
    unsigned boots = node.serving;
    ready(&a, fw[2], false, NULL, 64, &img, &len);
    assert_int_equal(aloft_espota_send(&a, img, 4096, len), -1); /* a transfer in progress */
    invite(&b, fw[0], false, NULL, &img2, &len2);
    assert_non_null(strstr(b.answer, "ERROR: busy"));
    /* nor does an answer to no challenge disturb it */
    char stray[140];
    int n = snprintf(stray, sizeof stray, "200 %064d %064d\n", 0, 0);
    assert_int_equal(send(b.udp, stray, (size_t)n, 0), n);
    struct pollfd p = {.fd = b.udp, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 5000), 1);
    assert_int_equal(recv(b.udp, stray, sizeof stray - 1, 0), 21);
    assert_int_equal(memcmp(stray, "Authentication Failed", 21), 0);
    aloft_espota_close(&b);
    free(img2);
    /* the first goes on to the end */
    assert_int_equal(aloft_espota_send(&a, img, len, len), 0);
    aloft_espota_close(&a);
    free(img);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
    version_is("1.3.0");
}

static void python_client(void **state)
{
    (void)state;
    if (system("python3 -c 'import hashlib' >/dev/null 2>&1") != 0)
        skip();
    for (int m = 0; m < 2; m++) {
        /* the previous update must have confirmed itself: until then a device takes none */
        assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
        unsigned boots = node.serving;
        char port[8];
        snprintf(port, sizeof port, "%d", udp_port);
        const char *argv[] = {"python3", ALOFT_ESPOTA_CLIENT, "-i", ip, "-p", port, "-I", "127.0.0.1",
                              "-a", node.psk, "-f", fw[m], m == 0 ? "--classic" : NULL, NULL};
        pid_t pid = e2e_spawn("python3", argv, e2e_path("python.log"), O_APPEND, true);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        assert_int_equal(e2e_node_wait_boot(&node), 0);
        assert_true(node.serving > boots);
        version_is(m == 0 ? "1.1.0" : "1.2.0");
        assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
    }
}

static void no_psk_refused(void **state)
{
    (void)state;
    struct e2e_node bare;
    e2e_node_init(&bare, "bare");
    bare.psk[0] = 0;
    int port = atoi(strchr(bare.listen, ':') + 1);
    const char *v1 = e2e_path("v1.bin");
    static char espota[32];
    snprintf(espota, sizeof espota, "%s:%d", ip, port);
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--espota", espota, NULL};
    assert_int_equal(e2e_node_start(&bare, args), 0);
    struct aloft_espota_client c;
    uint8_t *img;
    size_t len;
    char sum[33];
    img = e2e_file_read(fw[0], &len);
    md5_hex(img, len, sum);
    assert_int_equal(aloft_espota_invite(&c, ip, (uint16_t)port, ALOFT_ESPOTA_CMD_FLASH, len, sum), 0);
    assert_non_null(strstr(c.answer, "ERROR: unauthorized"));
    aloft_espota_close(&c);
    free(img);
    e2e_node_stop(&bare);
}

/* aloft deploy --espota ... --json: its exit status, and each device's outcome. */
static int deploy(const char *image, const char *const extra[], const char *want_outcome, size_t devices)
{
    const char *argv[24] = {"aloft", "deploy", "--espota", image, "--psk", "fleet-psk", "--json", "--timeout", "20"};
    size_t k = 9;
    for (size_t i = 0; extra[i]; i++)
        argv[k++] = extra[i];
    char *out = NULL;
    int code = aloft_test_run(&out, argv);
    cJSON *j = cJSON_Parse(out);
    cJSON *devs = cJSON_GetObjectItem(j, "devices");
    if (!j || cJSON_GetArraySize(devs) != (int)devices)
        fprintf(stderr, "aloft deploy said:\n%s\n", out ? out : "");
    assert_int_equal(cJSON_GetArraySize(devs), (int)devices);
    cJSON *d;
    cJSON_ArrayForEach(d, devs) {
        if (strcmp(e2e_jstr(d, "outcome"), want_outcome))
            fprintf(stderr, "%s: %s (%s)\n", e2e_jstr(d, "address"), e2e_jstr(d, "outcome"), e2e_jstr(d, "reason"));
        assert_string_equal(e2e_jstr(d, "outcome"), want_outcome);
    }
    cJSON_Delete(j);
    free(out);
    return code;
}

static void deploy_fleet(void **state)
{
    (void)state;
    /* three devices, each on an address of its own (port 8032 for the
     * status endpoint, 3232 for ArduinoOTA, as on a LAN), not those of a
     * run against the other kind of device */
    static struct e2e_node fleet[3];
    char addr[3][24];
    const char *v1 = e2e_path("v1.bin");
    for (int i = 0; i < 3; i++) {
        char name[16];
        snprintf(name, sizeof name, "fleet%d", i);
        e2e_node_init(&fleet[i], name);
        int host = e2e_example() ? 91 : 90;
        snprintf(addr[i], sizeof addr[i], "127.0.%d.%d", i + 1, host);
        snprintf(fleet[i].listen, sizeof fleet[i].listen, "127.0.%d.%d:8032", i + 1, host);
        snprintf(fleet[i].url, sizeof fleet[i].url, "http://%.23s:8032", addr[i]);
        const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--psk", "fleet-psk",
                              "--espota", addr[i], NULL};
        assert_int_equal(e2e_node_start(&fleet[i], args), 0);
    }
    const char *all[] = {addr[0], addr[1], addr[2], NULL};
    assert_int_equal(deploy(fw[0], all, "updated", 3), 0);
    for (int i = 0; i < 3; i++) {
        cJSON *st = e2e_status(&fleet[i]);
        assert_string_equal(e2e_jstr(st, "version"), "1.1.0");
        assert_string_equal(e2e_jstr(st, "running_partition"), "ota_1");
        cJSON_Delete(st);
    }
    /* no status endpoint where deploy looks: a plain ArduinoOTA device to it */
    const char *plain[] = {addr[0], addr[1], addr[2], "--status-port", "9", NULL};
    assert_int_equal(deploy(fw[1], plain, "sent", 3), 0);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(e2e_node_wait_boot(&fleet[i]), 0);
        e2e_node_stop(&fleet[i]);
    }
}

int main(void)
{
    e2e_init(90);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(firmware_both_schemes),
        cmocka_unit_test(filesystem_image),
        cmocka_unit_test(wrong_password),
        cmocka_unit_test(bad_md5_and_wrong_chip),
        cmocka_unit_test(interrupted_transfer),
        cmocka_unit_test(second_invitation_refused),
        cmocka_unit_test(python_client),
        cmocka_unit_test(no_psk_refused),
        cmocka_unit_test(deploy_fleet),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
