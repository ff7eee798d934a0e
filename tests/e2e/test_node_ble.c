/* BLE OTA (PROTOCOLS.md §4, docs/ble.md) on real nodes over the simulated
 * link (§4.1), driven by host/ble_central.c: a client that behaves as the
 * seed's documented one (MTU − 3 packets, write with response, REQUEST /
 * DONE) updates a node with an image whose size is no multiple of the
 * packet size; a wrong chip gets DONE_NAK with nothing switched; hanging up
 * at random points leaves the running slot, otadata and settings
 * byte-identical. The extended mode: a corrupted packet is NAKed and sent
 * again, a reconnect resumes from the device's offset, a power cut
 * mid-transfer resumes, ABORT forgets, a frontend goes to the www slot. The
 * link's rules: a second central is refused, malformed frames and a second
 * outstanding request drop the link and change nothing. `aloft ble push`
 * resumes an interrupted transfer and verifies the device as aloft deploy
 * does; `aloft ble scan` shows it.
 *
 * Fail closed: with no PSK nothing is taken (seed or extended); with one,
 * the extended mode's BEGIN and ABORT wait for AUTH (HMAC of a fresh,
 * single-use nonce) on the connection, a wrong or replayed answer is
 * refused, and the seed's protocol (which cannot authenticate) is refused
 * unless the node runs with --ble-legacy. Every refusal changes nothing.
 *
 * A 1 ms connection interval keeps it fast: timing is bench/ble.sh's. */
#include "e2e.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloft/crypto.h"
#include "ble_central.h"

static struct e2e_node node;
static char ble[32];                      /* the node's link, HOST:PORT */
static const char *link_to = ble;         /* where connect_ok goes */
static const char *v1;
static char fw[7][300], c3[300], www[300];
static const char *const versions[] = {"2.1.0", "2.2.0", "2.3.0", "2.4.0", "2.5.0", "2.6.0", "2.7.0"};

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 7; i++) {
        snprintf(fw[i], sizeof fw[i], "%s", e2e_path(versions[i]));
        e2e_image(fw[i], "esp32s3", versions[i], 150000 + 7 * (size_t)i, NULL);
    }
    snprintf(c3, sizeof c3, "%s", e2e_path("c3.bin"));
    e2e_image(c3, "esp32c3", "9.0.0", 70000, NULL);
    char dir[300], index[400];
    snprintf(dir, sizeof dir, "%s", e2e_path("site"));
    assert_int_equal(mkdir(dir, 0755), 0);
    snprintf(index, sizeof index, "%s/index.html", dir);
    e2e_file_write(index, "<h1>over BLE</h1>\n", 18);
    snprintf(www, sizeof www, "%s", e2e_path("www.bin"));
    const char *mkfs[] = {"aloft", "mkfs", dir, "-o", www, NULL};
    assert_int_equal(aloft_test_run(NULL, mkfs), 0);

    v1 = e2e_path("v1.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_node_init(&node, "ble");
    snprintf(ble, sizeof ble, "%.*s:%u", (int)(strchr(node.listen, ':') - node.listen), node.listen,
             (unsigned)e2e_free_port());
    /* node.psk is provisioned; the seed tests need the seed's protocol allowed */
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--www", dir, "--ble", ble,
                          "--ble-interval", "1", "--idle-timeout", "5", "--ble-legacy", NULL};
    return e2e_node_start(&node, args);
}

static int teardown(void **state)
{
    return e2e_teardown(state);
}

static void version_is(const char *want)
{
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "version"), want);
    cJSON_Delete(st);
}

static void connect_ok(struct ble_central *c, uint16_t mtu)
{
    int rc = ble_central_connect(c, link_to, mtu);
    if (rc) {
        char *log = e2e_log_read(&node);
        size_t n = strlen(log);
        fprintf(stderr, "connect: %s\n%s\n", c->why, log + (n > 1500 ? n - 1500 : 0));
        free(log);
    }
    assert_int_equal(rc, 0);
    assert_string_equal(c->name, "esp32");
}

/* One push on a new connection: its result (0, 1, -1); the link is closed. */
static int push(const char *file, uint16_t mtu, struct ble_push *o)
{
    struct ble_central c;
    size_t len;
    uint8_t *img = e2e_file_read(file, &len);
    connect_ok(&c, mtu);
    int rc = ble_push_image(&c, o, img, len);
    if (rc)
        fprintf(stderr, "push: %d %s\n", rc, c.why);
    ble_central_close(&c);
    free(img);
    return rc;
}

static void pushed(const char *file, uint16_t mtu, struct ble_push *o, const char *version)
{
    unsigned boots = node.serving;
    assert_int_equal(push(file, mtu, o), 0);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
    version_is(version);
    assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
}

/* The Status characteristic (docs/ble.md). */
struct status {
    uint8_t state, target;
    uint32_t size, offset;
};

static struct status read_status(void)
{
    struct ble_central c;
    uint8_t v[64];
    size_t n = 0;
    connect_ok(&c, 23);
    assert_int_equal(ble_central_request(&c, 0x02, ALOFT_BLE_STATUS, NULL, 0, v, &n), 0);
    ble_central_close(&c);
    assert_int_equal(n, ALOFT_BLE_STATUS_LEN);
    assert_int_equal(v[0], ALOFT_BLE_VERSION);
    struct status s = {v[1], v[2], (uint32_t)v[4] | (uint32_t)v[5] << 8 | (uint32_t)v[6] << 16 | (uint32_t)v[7] << 24,
                       (uint32_t)v[8] | (uint32_t)v[9] << 8 | (uint32_t)v[10] << 16 | (uint32_t)v[11] << 24};
    return s;
}

/* Write v to Control (with response); the answer's opcode (in n). */
static uint8_t ask(struct ble_central *c, const void *v, size_t len, struct ble_note *n)
{
    assert_int_equal(ble_central_request(c, 0x03, ALOFT_BLE_CONTROL, v, len, NULL, NULL), 0);
    assert_true(ble_central_note(c, ALOFT_BLE_CONTROL, n, 5000) > 0);
    return n->v[0];
}

static void challenge(struct ble_central *c, uint8_t nonce[ALOFT_BLE_NONCE])
{
    struct ble_note n;
    uint8_t op = ALOFT_BLE_X_CHALLENGE;
    assert_int_equal(ask(c, &op, 1, &n), ALOFT_BLE_X_NONCE);
    assert_int_equal(n.len, 1 + ALOFT_BLE_NONCE);
    memcpy(nonce, n.v + 1, ALOFT_BLE_NONCE);
}

/* AUTH with the first 16 bytes of HMAC-SHA256(psk, nonce): the answer. */
static uint8_t auth(struct ble_central *c, const char *psk, const uint8_t nonce[ALOFT_BLE_NONCE])
{
    uint8_t m[1 + ALOFT_BLE_NONCE] = {ALOFT_BLE_X_AUTH}, d[32];
    struct aloft_hmac_sha256 h;
    struct ble_note n;
    aloft_hmac_sha256_key(&h, psk, strlen(psk));
    aloft_hmac_sha256_sum(&h, nonce, ALOFT_BLE_NONCE, d);
    memcpy(m + 1, d, ALOFT_BLE_NONCE);
    return ask(c, m, sizeof m, &n);
}

static void authenticated(struct ble_central *c)
{
    uint8_t nonce[ALOFT_BLE_NONCE];
    challenge(c, nonce);
    assert_int_equal(auth(c, node.psk, nonce), ALOFT_BLE_X_AUTH_ACK);
}

/* HASH, HASH, BEGIN of a 4 KB app: the answer (in n). */
static uint8_t begin(struct ble_central *c, struct ble_note *n)
{
    uint8_t v[18] = {ALOFT_BLE_X_HASH, 0};
    assert_int_equal(ble_central_request(c, 0x03, ALOFT_BLE_CONTROL, v, 18, NULL, NULL), 0);
    v[1] = 1;
    assert_int_equal(ble_central_request(c, 0x03, ALOFT_BLE_CONTROL, v, 18, NULL, NULL), 0);
    uint8_t b[7] = {ALOFT_BLE_X_BEGIN, 1, 0, 0, 0x10, 0, 0};
    return ask(c, b, sizeof b, n);
}

static bool says(const struct ble_note *n, const char *text)
{
    return n->len > strlen(text) && !memcmp(n->v + 1, text, strlen(text));
}

/* A device with no PSK that is not open takes nothing: not the seed's
 * protocol (--ble-legacy or not), not the extended mode, with or without a
 * PSK offered. Open, it takes the extended mode without AUTH. */
static void no_psk_refuses_everything(void **state)
{
    (void)state;
    static struct e2e_node bare;
    static char at[32];
    e2e_node_init(&bare, "ble-bare");
    bare.psk[0] = 0;
    snprintf(at, sizeof at, "%.*s:%u", (int)(strchr(bare.listen, ':') - bare.listen), bare.listen,
             (unsigned)e2e_free_port());
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--ble", at,
                          "--ble-interval", "1", "--ble-legacy", NULL};
    assert_int_equal(e2e_node_start(&bare, args), 0);
    link_to = at;
    struct e2e_snap s;
    e2e_snap_take(&s, &bare);
    struct ble_push seed = {.legacy = true}, ext = {0}, ext_psk = {.psk = "a-guess"};
    assert_int_equal(push(fw[0], 185, &seed), 1);
    assert_int_equal(push(fw[0], 185, &ext), 1);
    assert_int_equal(push(fw[0], 185, &ext_psk), 1);
    struct ble_central c;
    struct ble_note n;
    connect_ok(&c, 100); /* room for the reasons */
    assert_int_equal(ble_central_request(&c, 0x05, ALOFT_BLE_CONTROL, NULL, 0, NULL, NULL), 0);
    assert_int_equal(begin(&c, &n), ALOFT_BLE_X_BEGIN_NAK);
    assert_true(says(&n, "unauthorized: no PSK"));
    ble_central_close(&c);
    link_to = ble;
    assert_int_equal(e2e_log_count(&bare, "ble: refused: unauthorized (no PSK is provisioned)"), 3);
    assert_int_equal(e2e_log_count(&bare, "ble: authentication failed"), 1);
    assert_int_equal(e2e_log_count(&bare, "update begins"), 0);
    assert_null(e2e_snap_diff(&s, &bare));
    e2e_snap_free(&s);
    /* told to be open (a bench device), it takes an update with no AUTH */
    e2e_node_stop(&bare);
    const char *open[] = {"--ble", at, "--ble-interval", "1", "--open", NULL};
    assert_int_equal(e2e_node_start(&bare, open), 0);
    unsigned boots = bare.serving;
    link_to = at;
    assert_int_equal(push(fw[0], 185, &ext), 0);
    link_to = ble;
    assert_int_equal(e2e_node_wait_boot(&bare), 0);
    assert_true(bare.serving > boots);
    cJSON *st = e2e_status(&bare);
    assert_string_equal(e2e_jstr(st, "version"), versions[0]);
    cJSON_Delete(st);
    e2e_node_stop(&bare);
}

/* With a PSK and without --ble-legacy, the seed's protocol is refused:
 * it cannot authenticate. */
static void seed_refused_without_legacy(void **state)
{
    (void)state;
    e2e_node_stop(&node);
    const char *strict[] = {"--ble", ble, "--ble-interval", "1", "--idle-timeout", "5", NULL};
    assert_int_equal(e2e_node_start(&node, strict), 0);
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_push o = {.legacy = true};
    assert_int_equal(push(fw[0], 185, &o), 1);
    assert_int_equal(e2e_log_count(&node, "ble: refused: unauthorized (esp32-ble-ota cannot authenticate)"), 1);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
    /* the rest runs with it allowed (seed_update_odd_size: then it works) */
    e2e_node_stop(&node);
    const char *legacy[] = {"--ble", ble, "--ble-interval", "1", "--idle-timeout", "5", "--ble-legacy", NULL};
    assert_int_equal(e2e_node_start(&node, legacy), 0);
}

/* The extended mode wants AUTH on this connection before BEGIN or ABORT;
 * a wrong answer, an answer without a nonce and a replayed nonce are
 * refused and leave the connection unauthenticated. */
static void ext_needs_auth(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_central c;
    struct ble_note n;
    uint8_t nonce[ALOFT_BLE_NONCE], other[ALOFT_BLE_NONCE], abort_op = ALOFT_BLE_X_ABORT;
    unsigned failed = e2e_log_count(&node, "ble: authentication failed");
    connect_ok(&c, 100); /* room for the reasons */
    assert_int_equal(ble_central_request(&c, 0x05, ALOFT_BLE_CONTROL, NULL, 0, NULL, NULL), 0);
    assert_int_equal(begin(&c, &n), ALOFT_BLE_X_BEGIN_NAK);
    assert_true(says(&n, "unauthorized: authenticate first"));
    assert_int_equal(ask(&c, &abort_op, 1, &n), ALOFT_BLE_X_END_NAK);
    assert_true(says(&n, "unauthorized"));
    memset(nonce, 0, sizeof nonce);
    assert_int_equal(auth(&c, node.psk, nonce), ALOFT_BLE_X_AUTH_NAK); /* no CHALLENGE yet */
    challenge(&c, nonce);
    assert_int_equal(auth(&c, "not-the-psk", nonce), ALOFT_BLE_X_AUTH_NAK);
    assert_int_equal(begin(&c, &n), ALOFT_BLE_X_BEGIN_NAK); /* still unauthenticated */
    assert_true(says(&n, "unauthorized"));
    assert_int_equal(auth(&c, node.psk, nonce), ALOFT_BLE_X_AUTH_NAK); /* the nonce was used up */
    challenge(&c, other);
    assert_true(memcmp(nonce, other, sizeof nonce) != 0);
    assert_int_equal(auth(&c, node.psk, other), ALOFT_BLE_X_AUTH_ACK); /* (ext_abort_forgets: then ABORT) */
    ble_central_close(&c);
    assert_int_equal(e2e_log_count(&node, "ble: authentication failed"), failed + 3);
    /* authentication is per connection; the client's own refusals */
    struct ble_push none = {0}, wrong = {.psk = "not-the-psk"};
    assert_int_equal(push(fw[2], 185, &none), 1);
    assert_int_equal(push(fw[2], 185, &wrong), 1);
    assert_int_equal(e2e_log_count(&node, "ble: authentication failed"), failed + 4);
    assert_int_equal(e2e_log_count(&node, "update begins (extended"), 0);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
}

static void seed_update_odd_size(void **state)
{
    (void)state;
    size_t len;
    free(e2e_file_read(fw[0], &len));
    uint16_t mtu = 247;
    while (len % (mtu - 3u) == 0)
        mtu--;
    assert_true(len % (mtu - 3u) != 0); /* the last packet is short */
    struct ble_push o = {.legacy = true};
    pushed(fw[0], mtu, &o, versions[0]);
    assert_int_equal(e2e_log_count(&node, "ble: update begins (esp32-ble-ota protocol"), 1);
}

static void seed_wrong_chip_done_nak(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_push o = {.legacy = true};
    assert_int_equal(push(c3, 185, &o), 1);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
    version_is(versions[0]);
}

static void seed_disconnects_leave_it_clean(void **state)
{
    (void)state;
    size_t len;
    free(e2e_file_read(fw[1], &len));
    for (int i = 0; i < 4; i++) {
        unsigned gone = e2e_log_count(&node, "ble: central gone");
        struct e2e_snap s;
        e2e_snap_take(&s, &node);
        struct ble_push o = {.legacy = true, .drop_at = 1 + e2e_rand() % (uint32_t)len};
        assert_int_equal(push(fw[1], 100 + e2e_rand() % 400, &o), -1);
        /* the device notices the hang-up, then nothing of it remains */
        assert_int_equal(e2e_node_wait_log(&node, "ble: central gone", gone + 1, 5000), 0);
        assert_null(e2e_snap_diff(&s, &node));
        e2e_snap_free(&s);
    }
    struct ble_push o = {.legacy = true};
    pushed(fw[1], 23, &o, versions[1]); /* and the next attempt works, at the smallest MTU */
}

static void ext_corrupted_packet_resent(void **state)
{
    (void)state;
    size_t len;
    free(e2e_file_read(fw[2], &len));
    struct ble_push o = {.psk = node.psk, .corrupt_at = 4096 * 3 + e2e_rand() % 4096};
    pushed(fw[2], 256, &o, versions[2]);
    assert_true(o.naks >= 1);
    assert_int_equal(o.resumed_at, 0);
    assert_string_equal(o.boots, versions[2]);
    assert_int_equal(read_status().state, ALOFT_BLE_IDLE);
}

static void ext_reconnect_resumes(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_push o = {.psk = node.psk, .drop_at = 70000 + e2e_rand() % 50000};
    assert_int_equal(push(fw[3], 185, &o), -1);
    assert_int_equal(e2e_node_wait_log(&node, "kept for a resume", 1, 5000), 0);
    e2e_snap_app_unchanged(&s, &node); /* the settings may keep a resume point */
    e2e_snap_free(&s);
    struct status st = read_status();
    assert_int_equal(st.state, ALOFT_BLE_SAVED);
    assert_int_equal(st.target, 0);
    assert_true(st.offset > 0 && st.offset % 4096 == 0 && st.offset <= o.drop_at);
    struct ble_push again = {.psk = node.psk};
    pushed(fw[3], 185, &again, versions[3]);
    assert_int_equal(again.resumed_at, st.offset);
}

struct bg {
    const char *file;
    struct ble_push o;
    int rc;
};

static void *push_bg(void *arg)
{
    struct bg *b = arg;
    b->rc = push(b->file, 247, &b->o);
    return NULL;
}

static void ext_power_cut_resumes(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    /* slow enough to be cut mid-transfer: the default link timing */
    e2e_node_stop(&node);
    const char *slow[] = {"--ble", ble, "--ble-interval", "30", NULL};
    assert_int_equal(e2e_node_start(&node, slow), 0);
    struct bg b = {.file = fw[4], .o = {.psk = node.psk}};
    pthread_t t;
    pthread_create(&t, NULL, push_bg, &b);
    assert_int_equal(e2e_node_wait_log(&node, "ble: update begins (extended", 1, 10000), 0);
    e2e_sleep_ms(1500 + e2e_rand() % 1000);
    e2e_node_kill9(&node);
    pthread_join(t, NULL);
    assert_int_equal(b.rc, -1);
    const char *fast[] = {"--ble", ble, "--ble-interval", "1", "--idle-timeout", "5", NULL};
    assert_int_equal(e2e_node_start(&node, fast), 0);
    e2e_snap_app_unchanged(&s, &node); /* the settings may keep a resume point */
    e2e_snap_free(&s);
    struct status st = read_status();
    assert_int_equal(st.state, ALOFT_BLE_SAVED);
    assert_true(st.offset % 65536 == 0);
    struct ble_push again = {.psk = node.psk};
    pushed(fw[4], 247, &again, versions[4]);
    assert_int_equal(again.resumed_at, st.offset);
}

static void ext_abort_forgets(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_push o = {.psk = node.psk, .drop_at = 40000};
    assert_int_equal(push(fw[5], 256, &o), -1);
    assert_int_equal(e2e_node_wait_log(&node, "kept for a resume", 2, 5000), 0);
    assert_int_equal(read_status().state, ALOFT_BLE_SAVED);
    struct ble_central c;
    struct ble_note n;
    uint8_t op = ALOFT_BLE_X_ABORT;
    connect_ok(&c, 256);
    assert_int_equal(ble_central_request(&c, 0x05, ALOFT_BLE_CONTROL, NULL, 0, NULL, NULL), 0);
    /* unauthenticated, ABORT is refused and the resume point stays */
    assert_int_equal(ask(&c, &op, 1, &n), ALOFT_BLE_X_END_NAK);
    assert_true(says(&n, "unauthorized"));
    ble_central_close(&c);
    assert_int_equal(read_status().state, ALOFT_BLE_SAVED);
    connect_ok(&c, 256);
    assert_int_equal(ble_central_request(&c, 0x05, ALOFT_BLE_CONTROL, NULL, 0, NULL, NULL), 0);
    authenticated(&c);
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, &op, 1, NULL, NULL), 0);
    assert_true(ble_central_note(&c, ALOFT_BLE_CONTROL, &n, 5000) > 0);
    assert_int_equal(n.v[0], ALOFT_BLE_X_ABORT_ACK);
    ble_central_close(&c);
    struct status st = read_status();
    assert_int_equal(st.state, ALOFT_BLE_IDLE);
    assert_int_equal(st.offset, 0);
    e2e_snap_app_unchanged(&s, &node); /* the settings may keep a resume point */
    e2e_snap_free(&s);
    /* the next push starts from nothing */
    struct ble_push again = {.psk = node.psk};
    pushed(fw[5], 256, &again, versions[5]);
    assert_int_equal(again.resumed_at, 0);
}

static void ext_wrong_chip_refused(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_central c;
    size_t len;
    uint8_t *img = e2e_file_read(c3, &len);
    struct ble_push o = {.psk = node.psk};
    connect_ok(&c, 256);
    assert_int_equal(ble_push_image(&c, &o, img, len), 1);
    assert_non_null(strstr(c.why, "wrong_chip"));
    ble_central_close(&c);
    free(img);
    e2e_snap_app_unchanged(&s, &node); /* the settings may keep a resume point */
    e2e_snap_free(&s);
    assert_int_equal(read_status().state, ALOFT_BLE_IDLE);
}

/* With trusted keys, BLE refuses an image no trusted key signed, as every
 * other way in does (nothing switched), and takes a signed one. */
static void ext_signed_only(void **state)
{
    (void)state;
    static struct e2e_node sn;
    static char at[32];
    char key[300], digest[65], signed_img[300], *out;
    snprintf(key, sizeof key, "%s", e2e_path("ble-release.pem"));
    const char *kg[] = {"aloft", "keygen", "--scheme", "ecdsa256", "-o", key, NULL};
    assert_int_equal(aloft_test_run(&out, kg), 0);
    const char *d = strstr(out, "public key digest ");
    assert_non_null(d);
    snprintf(digest, sizeof digest, "%.64s", d + 18);
    free(out);
    snprintf(signed_img, sizeof signed_img, "%s", e2e_path("ble-signed.bin"));
    const char *sg[] = {"aloft", "image", "sign", fw[1], "--key", key, "-o", signed_img, NULL};
    assert_int_equal(aloft_test_run(NULL, sg), 0);
    e2e_node_init(&sn, "ble-signed");
    snprintf(at, sizeof at, "%.*s:%u", (int)(strchr(sn.listen, ':') - sn.listen), sn.listen,
             (unsigned)e2e_free_port());
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--ble", at,
                          "--ble-interval", "1", "--trusted-keys", digest, NULL};
    assert_int_equal(e2e_node_start(&sn, args), 0);
    link_to = at;
    struct e2e_snap s;
    e2e_snap_take(&s, &sn);
    struct ble_push o = {.psk = sn.psk};
    struct ble_central c;
    size_t len;
    uint8_t *img = e2e_file_read(fw[0], &len);
    connect_ok(&c, 256);
    assert_int_equal(ble_push_image(&c, &o, img, len), 1);
    if (!strstr(c.why, "unsigned"))
        fprintf(stderr, "refused as: %s\n", c.why);
    assert_non_null(strstr(c.why, "unsigned"));
    ble_central_close(&c);
    free(img);
    e2e_snap_app_unchanged(&s, &sn); /* the settings may keep a resume point */
    e2e_snap_free(&s);
    unsigned boots = sn.serving;
    assert_int_equal(push(signed_img, 256, &o), 0);
    link_to = ble;
    assert_int_equal(e2e_node_wait_boot(&sn), 0);
    assert_true(sn.serving > boots);
    cJSON *st = e2e_status(&sn);
    assert_string_equal(e2e_jstr(st, "version"), versions[1]);
    cJSON_Delete(st);
    e2e_node_stop(&sn);
}

static void frontend_over_ble(void **state)
{
    (void)state;
    cJSON *st = e2e_get_json(&node, "/api/ota/status");
    int before = (int)e2e_jnum(st, "active_slot");
    cJSON_Delete(st);
    struct ble_push o = {.frontend = true, .psk = node.psk};
    unsigned boots = node.serving;
    assert_int_equal(push(www, 256, &o), 0);
    assert_string_equal(o.boots, before ? "www_0" : "www_1");
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
    st = e2e_get_json(&node, "/api/ota/status");
    assert_int_equal((int)e2e_jnum(st, "active_slot"), !before);
    cJSON_Delete(st);
    struct e2e_http r;
    char url[100];
    snprintf(url, sizeof url, "%s/", node.url);
    const char *get[] = {url, NULL};
    assert_int_equal(e2e_curl(&r, get), 200);
    assert_non_null(strstr(r.body, "over BLE"));
    e2e_http_free(&r);
}

static void second_central_refused(void **state)
{
    (void)state;
    struct ble_central a, b;
    connect_ok(&a, 100);
    assert_int_equal(ble_central_connect(&b, ble, 100), -1);
    /* the first is still served */
    uint8_t v[64];
    size_t n;
    assert_int_equal(ble_central_request(&a, 0x02, ALOFT_BLE_STATUS, NULL, 0, v, &n), 0);
    assert_int_equal(n, ALOFT_BLE_STATUS_LEN);
    ble_central_close(&a);
    read_status(); /* and the next one once it is gone */
}

/* Raw bytes on a new connection: does the device hang up? */
static bool hangs_up(const void *bytes, size_t len)
{
    const char *colon = strrchr(ble, ':');
    char host[32];
    snprintf(host, sizeof host, "%.*s", (int)(colon - ble), ble);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &a.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    assert_int_equal(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    uint8_t buf[700];
    ssize_t got;
    while ((got = recv(fd, buf, sizeof buf, 0)) > 0)
        ;
    int e = errno;
    close(fd);
    return got == 0 || (got < 0 && e == ECONNRESET); /* reset: it left bytes unread */
}

static void malformed_frames_drop_the_link(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    static const uint8_t connect[] = {3, 0, 0x01, 0x00, 0x01};
    uint8_t f[200];
    /* a zero length; a length past 600; an unknown op; a short uuid; a
     * write before CONNECT; an MTU out of range */
    static const uint8_t zero[] = {0, 0}, huge[] = {0x59, 0x02, 0x02}, mtu[] = {3, 0, 0x01, 22, 0};
    assert_true(hangs_up(zero, sizeof zero));
    assert_true(hangs_up(huge, sizeof huge));
    assert_true(hangs_up(mtu, sizeof mtu));
    memcpy(f, connect, 5);
    memcpy(f + 5, (uint8_t[]){2, 0, 0x42, 0}, 4);
    assert_true(hangs_up(f, 9));
    memcpy(f + 5, (uint8_t[]){9, 0, 0x02, 0xd6, 0xf1, 0xd9, 0x6d, 0x59, 0x4c, 0x4c, 0x53}, 11);
    assert_true(hangs_up(f, 16));
    f[0] = 18, f[1] = 0, f[2] = 0x03;
    memcpy(f + 3, aloft_ble_uuid[1 + ALOFT_BLE_CONTROL], 16);
    f[19] = ALOFT_BLE_REQUEST;
    assert_true(hangs_up(f, 20));
    /* the broken rule: a second request before the first one's answer,
     * mid-transfer (REQUEST began one) */
    memcpy(f, connect, 5);
    f[5] = 18, f[6] = 0, f[7] = 0x03;
    memcpy(f + 8, aloft_ble_uuid[1 + ALOFT_BLE_CONTROL], 16);
    f[24] = ALOFT_BLE_REQUEST;
    f[25] = 17, f[26] = 0, f[27] = 0x02;
    memcpy(f + 28, aloft_ble_uuid[1 + ALOFT_BLE_STATUS], 16);
    assert_true(hangs_up(f, 44));
    assert_int_equal(e2e_node_wait_log(&node, "it broke the protocol", 5, 5000), 0);
    assert_int_equal(e2e_node_wait_log(&node, "a malformed frame", 2, 5000), 0);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
    assert_int_equal(read_status().state, ALOFT_BLE_IDLE);
}

/* What the service refuses, with the ATT error or the NAK docs/ble.md
 * names; nothing changes. */
static void att_errors_and_bad_requests(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_central c;
    struct ble_note n;
    uint8_t v[64] = {0}, out[64];
    size_t len;
    connect_ok(&c, 23);
    assert_int_equal(ble_central_request(&c, 0x05, ALOFT_BLE_CONTROL, NULL, 0, NULL, NULL), 0);
    authenticated(&c); /* BEGIN's own checks, past the PSK's */
    assert_int_equal(ble_central_request(&c, 0x02, ALOFT_BLE_DATA, NULL, 0, out, &len), 0x02);
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_STATUS, v, 1, NULL, NULL), 0x03);
    assert_int_equal(ble_central_request(&c, 0x05, ALOFT_BLE_DATA, NULL, 0, NULL, NULL), 0x03);
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, v, 21, NULL, NULL), 0x0D); /* > MTU - 3 */
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_DATA, v, 3, NULL, NULL), 0x0D);     /* not a size */
    v[0] = 0x7f;
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, v, 1, NULL, NULL), 0x0E);
    v[0] = ALOFT_BLE_X_BEGIN;
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, v, 6, NULL, NULL), 0x0D); /* short */
    v[1] = 1, v[4] = 0x10; /* version 1, the app, 4 KB */
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, v, 7, NULL, NULL), 0);
    assert_true(ble_central_note(&c, ALOFT_BLE_CONTROL, &n, 5000) > 0);
    assert_int_equal(n.v[0], ALOFT_BLE_X_BEGIN_NAK); /* no SHA-256 given */
    assert_int_equal(memcmp(n.v + 1, "bad_request", 11), 0);
    v[0] = ALOFT_BLE_X_END;
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, v, 1, NULL, NULL), 0);
    assert_true(ble_central_note(&c, ALOFT_BLE_CONTROL, &n, 5000) > 0);
    assert_int_equal(n.v[0], ALOFT_BLE_X_END_NAK);
    assert_int_equal(memcmp(n.v + 1, "incomplete", 10), 0);
    v[0] = ALOFT_BLE_DONE; /* DONE without REQUEST */
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, v, 1, NULL, NULL), 0);
    assert_true(ble_central_note(&c, ALOFT_BLE_CONTROL, &n, 5000) > 0);
    assert_int_equal(n.v[0], ALOFT_BLE_DONE_NAK);
    /* Control reads back the last answer */
    assert_int_equal(ble_central_request(&c, 0x02, ALOFT_BLE_CONTROL, NULL, 0, out, &len), 0);
    assert_int_equal(len, 1);
    assert_int_equal(out[0], ALOFT_BLE_DONE_NAK);
    ble_central_close(&c);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
}

static void cli_push_resumes_and_verifies(void **state)
{
    (void)state;
    struct ble_push o = {.psk = node.psk, .drop_at = 50000};
    assert_int_equal(push(fw[6], 185, &o), -1);
    assert_int_equal(read_status().state, ALOFT_BLE_SAVED);
    char *out = NULL, port[8];
    const char *scan[] = {"aloft", "ble", "scan", ble, NULL};
    assert_int_equal(aloft_test_run(&out, scan), 0);
    assert_non_null(strstr(out, "\"esp32\""));
    assert_non_null(strstr(out, "interrupted (resumable): app"));
    free(out);
    snprintf(port, sizeof port, "%s", strchr(node.listen, ':') + 1);
    /* without the PSK: refused, the resume point kept */
    const char *nopsk[] = {"aloft", "ble", "push", fw[6], ble, "--status-port", port, "--tries", "1", NULL};
    assert_int_equal(aloft_test_run(&out, nopsk), 1);
    assert_non_null(strstr(out, "unauthorized"));
    free(out);
    assert_int_equal(read_status().state, ALOFT_BLE_SAVED);
    unsigned boots = node.serving;
    const char *cmd[] = {"aloft", "ble", "push", fw[6], ble, "--status-port", port, "--timeout", "20",
                         "--psk", node.psk, NULL};
    int rc = aloft_test_run(&out, cmd);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, ": updated: "));
    assert_non_null(strstr(out, "(resumed at "));
    free(out);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
    version_is(versions[6]);
    /* refused: nothing switched, exit 1 */
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    const char *bad[] = {"aloft", "ble", "push", c3, ble, "--legacy", "--mtu", "100", "--status-port", port, NULL};
    assert_int_equal(aloft_test_run(&out, bad), 1);
    assert_non_null(strstr(out, ": rejected: "));
    free(out);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
    const char *usage[] = {"aloft", "ble", "push", www, ble, "--frontend", "--legacy", NULL};
    assert_int_equal(aloft_test_run(NULL, usage), 2);
}

int main(void)
{
    e2e_init(176);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_psk_refuses_everything),
        cmocka_unit_test(seed_refused_without_legacy),
        cmocka_unit_test(ext_needs_auth),
        cmocka_unit_test(seed_update_odd_size),
        cmocka_unit_test(seed_wrong_chip_done_nak),
        cmocka_unit_test(seed_disconnects_leave_it_clean),
        cmocka_unit_test(ext_corrupted_packet_resent),
        cmocka_unit_test(ext_reconnect_resumes),
        cmocka_unit_test(ext_wrong_chip_refused),
        cmocka_unit_test(ext_signed_only),
        cmocka_unit_test(ext_abort_forgets),
        cmocka_unit_test(second_central_refused),
        cmocka_unit_test(malformed_frames_drop_the_link),
        cmocka_unit_test(att_errors_and_bad_requests),
        cmocka_unit_test(frontend_over_ble),
        cmocka_unit_test(cli_push_resumes_and_verifies),
        cmocka_unit_test(ext_power_cut_resumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
