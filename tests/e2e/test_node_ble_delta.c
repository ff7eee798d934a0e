/* Delta patches over BLE's extended mode (docs/ble.md, "Patches") on a real
 * aloft-node over the simulated link, driven by host/ble_central.c: Status
 * says the node takes patches; a patch made from another image is refused
 * (END_NAK wrong_base) before the update slot is erased, the running slot
 * and otadata byte-identical; a patch installs and boots byte for byte; a
 * patch transfer cut by a dropped link, or by a power loss (kill -9) after
 * the node kept a checkpoint, resumes from the decoder's checkpoint (Status
 * shows it) instead of starting over, and installs. `aloft ble push
 * --delta-from` sends a patch when the node runs OLD, and the whole image
 * when it runs another (the node refuses the patch first). BEGIN's kind is
 * checked. */
#include "e2e.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/crypto.h"
#include "ble_central.h"

static struct e2e_node node;
static char ble[32];
static char img[7][300];
static const char *const versions[] = {"1.0.0", "1.5.0", "2.0.0", "3.0.0", "4.0.0", "5.0.0", "6.0.0"};
static const size_t sizes[] = {300000, 300000, 320000, 400000, 600000, 620000, 330000};
enum { V1, OTHER, V2, V3, V4, V5, V6 };

static const char *patch(int from, int to)
{
    static char out[8][300];
    static int n;
    char name[40];
    snprintf(name, sizeof name, "%d-%d.delta", from, to);
    char *o = out[n++ % 8];
    snprintf(o, 300, "%s", e2e_path(name));
    const char *argv[] = {"aloft", "delta", "make", img[from], img[to], "-o", o, "-q", NULL};
    assert_int_equal(aloft_test_run(NULL, argv), 0);
    return o;
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 7; i++) {
        snprintf(img[i], sizeof img[i], "%s", e2e_path(versions[i]));
        e2e_image(img[i], e2e_chip(), versions[i], sizes[i], NULL);
    }
    e2e_node_init(&node, "ble-delta");
    snprintf(ble, sizeof ble, "%.*s:%u", (int)(strchr(node.listen, ':') - node.listen), node.listen,
             (unsigned)e2e_free_port());
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", img[V1], "--ble", ble,
                          "--ble-interval", "1", "--idle-timeout", "5", NULL};
    return e2e_node_start(&node, args);
}

static void running(int v)
{
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "version"), versions[v]);
    cJSON_Delete(st);
}

/* One push of file on a new connection: its result (0, 1, -1). */
static int push(const char *file, struct ble_push *o)
{
    struct ble_central c;
    size_t len;
    uint8_t *b = e2e_file_read(file, &len);
    assert_int_equal(ble_central_connect(&c, ble, 247), 0);
    int rc = ble_push_image(&c, o, b, len);
    if (rc)
        fprintf(stderr, "push: %d %s\n", rc, c.why);
    ble_central_close(&c);
    free(b);
    return rc;
}

/* The patch installs: the node restarts into v, byte for byte. */
static void installed(const char *file, struct ble_push *o, int v)
{
    unsigned boots = node.serving;
    assert_int_equal(push(file, o), 0);
    assert_string_equal(o->boots, versions[v]);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
    running(v);
    assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
    cJSON *st = e2e_status(&node);
    uint32_t off, size;
    e2e_part(&node, e2e_jstr(st, "running_partition"), &off, &size);
    cJSON_Delete(st);
    size_t n;
    uint8_t *want = e2e_file_read(img[v], &n), *got = e2e_flash_read(&node, off, (uint32_t)n);
    assert_memory_equal(got, want, n);
    free(want);
    free(got);
}

struct status {
    uint8_t state, target, flags;
    uint32_t size, offset;
};

static struct status read_status(void)
{
    struct ble_central c;
    uint8_t v[64];
    size_t n = 0;
    assert_int_equal(ble_central_connect(&c, ble, 23), 0);
    assert_int_equal(ble_central_request(&c, 0x02, ALOFT_BLE_STATUS, NULL, 0, v, &n), 0);
    ble_central_close(&c);
    assert_int_equal(n, ALOFT_BLE_STATUS_LEN);
    struct status s = {v[1], v[2], v[3], (uint32_t)v[4] | (uint32_t)v[5] << 8 | (uint32_t)v[6] << 16 | (uint32_t)v[7] << 24,
                       (uint32_t)v[8] | (uint32_t)v[9] << 8 | (uint32_t)v[10] << 16 | (uint32_t)v[11] << 24};
    return s;
}

static void wrong_base_refused_then_a_patch_installs(void **state)
{
    (void)state;
    struct status st = read_status();
    assert_int_equal(st.state, ALOFT_BLE_IDLE);
    assert_int_equal(st.flags, ALOFT_BLE_TAKES_PATCHES);

    /* made from another image: refused once its header is in, before the slot is erased */
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    cJSON *j = e2e_status(&node);
    uint32_t off, size;
    e2e_part(&node, e2e_jstr(j, "next_partition"), &off, &size);
    cJSON_Delete(j);
    uint8_t *slot = e2e_flash_read(&node, off, size);
    struct ble_push o = {.psk = node.psk, .delta = true};
    assert_int_equal(push(patch(OTHER, V2), &o), 1);
    assert_int_equal(e2e_node_wait_log(&node, "ble: refused: wrong_base", 1, 5000), 0);
    e2e_snap_app_unchanged(&s, &node); /* the settings may keep a resume point */
    e2e_snap_free(&s);
    uint8_t *now = e2e_flash_read(&node, off, size);
    assert_memory_equal(now, slot, size);
    free(now);
    free(slot);
    running(V1);
    assert_int_equal(read_status().state, ALOFT_BLE_IDLE);

    /* sent as an image, a patch is no image */
    struct ble_push as_image = {.psk = node.psk};
    assert_int_equal(push(patch(V1, V2), &as_image), 1);
    assert_int_equal(e2e_node_wait_log(&node, "ble: refused: bad_magic", 1, 5000), 0);

    struct ble_push ok = {.psk = node.psk, .delta = true};
    installed(patch(V1, V2), &ok, V2);
    assert_int_equal(ok.resumed_at, 0);
}

static void dropped_patch_resumes_at_the_checkpoint(void **state)
{
    (void)state;
    const char *p = patch(V2, V3);
    size_t len;
    free(e2e_file_read(p, &len));
    struct ble_push o = {.psk = node.psk, .delta = true, .drop_at = (uint32_t)(len * 3 / 4)};
    assert_int_equal(push(p, &o), -1);
    assert_int_equal(e2e_node_wait_log(&node, "kept for a resume", 1, 5000), 0);
    struct status st = read_status();
    assert_int_equal(st.state, ALOFT_BLE_SAVED);
    assert_int_equal(st.flags, ALOFT_BLE_TAKES_PATCHES | ALOFT_BLE_IS_PATCH);
    assert_int_equal(st.size, len);
    assert_true(st.offset > 0 && st.offset <= o.drop_at); /* the decoder's checkpoint */
    running(V2);
    struct ble_push again = {.psk = node.psk, .delta = true};
    installed(p, &again, V3);
    assert_int_equal(again.resumed_at, st.offset / 4096 * 4096); /* from that sector on */
    assert_int_equal(read_status().state, ALOFT_BLE_IDLE);
}

struct bg {
    const char *file;
    struct ble_push o;
    int rc;
};

static void *push_bg(void *arg)
{
    struct bg *b = arg;
    b->rc = push(b->file, &b->o);
    return NULL;
}

static void power_cut_patch_resumes(void **state)
{
    (void)state;
    const char *p = patch(V3, V4);
    /* the default link timing: slow enough to cut it after a checkpoint and before its end */
    e2e_node_stop(&node);
    const char *slow[] = {"--ble", ble, "--ble-interval", "30", NULL};
    assert_int_equal(e2e_node_start(&node, slow), 0);
    unsigned kept = e2e_log_count(&node, "patch checkpoint kept");
    struct bg b = {.file = p, .o = {.psk = node.psk, .delta = true}};
    pthread_t t;
    pthread_create(&t, NULL, push_bg, &b);
    assert_int_equal(e2e_node_wait_log(&node, "patch checkpoint kept", kept + 1, 30000), 0);
    e2e_node_kill9(&node);
    pthread_join(t, NULL);
    assert_int_equal(b.rc, -1);
    const char *fast[] = {"--ble", ble, "--ble-interval", "1", "--idle-timeout", "5", NULL};
    assert_int_equal(e2e_node_start(&node, fast), 0);
    running(V3);
    struct status st = read_status();
    assert_int_equal(st.state, ALOFT_BLE_SAVED);
    assert_int_equal(st.flags, ALOFT_BLE_TAKES_PATCHES | ALOFT_BLE_IS_PATCH);
    assert_true(st.offset >= 32768); /* what the settings kept */
    struct ble_push again = {.psk = node.psk, .delta = true};
    installed(p, &again, V4);
    assert_int_equal(again.resumed_at, st.offset / 4096 * 4096);
}

/* aloft ble push --delta-from: a patch to a node that runs OLD; the whole
 * image to one that runs another image, after the node refused the patch. */
static void cli_push_delta_from(void **state)
{
    (void)state;
    char *out = NULL;
    char sport[8];
    snprintf(sport, sizeof sport, "%s", strrchr(node.listen, ':') + 1);
    const char *argv[] = {"aloft", "ble", "push", img[V5], ble, "--delta-from", img[V4], "--psk", node.psk,
                          "--status-port", sport, NULL};
    int rc = aloft_test_run(&out, argv);
    if (rc)
        fprintf(stderr, "aloft ble push: %d\n%s\n", rc, out ? out : "");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "sending a "));
    assert_non_null(strstr(out, ": updated: "));
    free(out);
    assert_int_equal(e2e_node_wait_boot(&node), 0); /* the restart the CLI saw */
    running(V5);

    /* no status to ask (an unused port): the node itself refuses the patch */
    unsigned boots = node.serving;
    snprintf(sport, sizeof sport, "%u", (unsigned)e2e_free_port());
    const char *wrong[] = {"aloft", "ble", "push", img[V6], ble, "--delta-from", img[V4], "--psk", node.psk,
                           "--status-port", sport, NULL};
    out = NULL;
    rc = aloft_test_run(&out, wrong);
    if (rc)
        fprintf(stderr, "aloft ble push: %d\n%s\n", rc, out ? out : "");
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "does not run"));
    assert_non_null(strstr(out, "wrong_base"));
    assert_non_null(strstr(out, ": sent (END_ACK): boots 6.0.0"));
    free(out);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
    running(V6);
}

/* BEGIN's kind is checked: an unknown kind, a patch for the frontend, an
 * unknown target and a 9-byte BEGIN are refused, and nothing changes. */
static void begin_kind_checked(void **state)
{
    (void)state;
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    struct ble_central c;
    struct ble_note n;
    assert_int_equal(ble_central_connect(&c, ble, 23), 0);
    assert_int_equal(ble_central_request(&c, 0x05, ALOFT_BLE_CONTROL, NULL, 0, NULL, NULL), 0);
    uint8_t m[1 + ALOFT_BLE_NONCE] = {ALOFT_BLE_X_CHALLENGE}, d[32];
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, m, 1, NULL, NULL), 0);
    assert_true(ble_central_note(&c, ALOFT_BLE_CONTROL, &n, 5000) > 0);
    assert_int_equal(n.v[0], ALOFT_BLE_X_NONCE);
    struct aloft_hmac_sha256 h;
    aloft_hmac_sha256_key(&h, node.psk, strlen(node.psk));
    aloft_hmac_sha256_sum(&h, n.v + 1, ALOFT_BLE_NONCE, d);
    m[0] = ALOFT_BLE_X_AUTH;
    memcpy(m + 1, d, ALOFT_BLE_NONCE);
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, m, sizeof m, NULL, NULL), 0);
    assert_true(ble_central_note(&c, ALOFT_BLE_CONTROL, &n, 5000) > 0);
    assert_int_equal(n.v[0], ALOFT_BLE_X_AUTH_ACK);
    static const uint8_t bad[][8] = {
        {ALOFT_BLE_X_BEGIN, 1, 0, 0, 0x10, 0, 0, 2}, /* kind 2 */
        {ALOFT_BLE_X_BEGIN, 1, 1, 0, 0x10, 0, 0, 1}, /* a patch for the frontend */
        {ALOFT_BLE_X_BEGIN, 1, 2, 0, 0x10, 0, 0, 0}, /* target 2 */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        uint8_t hash[18] = {ALOFT_BLE_X_HASH, 0};
        assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, hash, 18, NULL, NULL), 0);
        hash[1] = 1;
        assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, hash, 18, NULL, NULL), 0);
        assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, bad[i], i == 2 ? 7 : 8, NULL, NULL), 0);
        assert_true(ble_central_note(&c, ALOFT_BLE_CONTROL, &n, 5000) > 0);
        assert_int_equal(n.v[0], ALOFT_BLE_X_BEGIN_NAK);
        assert_int_equal(memcmp(n.v + 1, "bad_request", 11), 0);
    }
    uint8_t nine[9] = {ALOFT_BLE_X_BEGIN, 1, 0, 0, 0x10, 0, 0, 1, 0};
    assert_int_equal(ble_central_request(&c, 0x03, ALOFT_BLE_CONTROL, nine, 9, NULL, NULL), 0x0D);
    ble_central_close(&c);
    assert_null(e2e_snap_diff(&s, &node));
    e2e_snap_free(&s);
}

int main(void)
{
    e2e_init(46);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(begin_kind_checked),
        cmocka_unit_test(wrong_base_refused_then_a_patch_installs),
        cmocka_unit_test(dropped_patch_resumes_at_the_checkpoint),
        cmocka_unit_test(power_cut_patch_resumes),
        cmocka_unit_test(cli_push_delta_from),
    };
    return cmocka_run_group_tests(tests, setup, e2e_teardown);
}
