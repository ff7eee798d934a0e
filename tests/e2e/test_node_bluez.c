/* `aloft ble` to a real device through BlueZ's D-Bus API (ble_bluez.c),
 * against a stand-in for bluetoothd (helpers/bluez_standin.c) on a private
 * dbus-daemon that this test starts and stops by PID; aloft finds it through
 * DBUS_SYSTEM_BUS_ADDRESS. The stand-in implements BlueZ's documented
 * objects and signals and forwards every GATT operation to a real
 * aloft-node --ble. Shown: discovery lists the node by name and address;
 * `aloft ble push` by address (extended mode) and by name (--legacy) updates
 * the node; a device that goes out of range mid-transfer is "unreachable"
 * and the node's running image and otadata are unchanged. What this does
 * not show: real bluetoothd, radios, pairing, MTU negotiation. */
#include "e2e.h"
#include "file.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define ADDR "24:6F:28:1A:2B:3C"

static struct e2e_node node;
static char ble[48], port[8], host[32], fw[3][300];
static pid_t bus_pid, standin_pid;
static const char *const versions[] = {"3.1.0", "3.2.0", "3.3.0"};

static void stop(pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

/* The stand-in, vanishing after that many Data writes (0: never). */
static void standin_start(unsigned vanish_after)
{
    char out[300], n[16];
    stop(&standin_pid);
    snprintf(out, sizeof out, "%s", e2e_path("standin.out"));
    snprintf(n, sizeof n, "%u", vanish_after);
    const char *args[] = {ALOFT_BLUEZ_STANDIN, ble, ADDR, n, NULL};
    standin_pid = e2e_spawn(ALOFT_BLUEZ_STANDIN, args, out, O_TRUNC, true);
    for (int i = 0; i < 500; i++) {
        size_t len = 0;
        uint8_t *s = NULL;
        if (!aloft_file_read(out, &s, &len) && len >= 5 && !memcmp(s, "ready", 5)) {
            free(s);
            return;
        }
        free(s);
        e2e_sleep_ms(10);
    }
    fail_msg("the stand-in did not start");
}

static int setup(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        snprintf(fw[i], sizeof fw[i], "%s", e2e_path(versions[i]));
        e2e_image(fw[i], "esp32s3", versions[i], 70000 + 11 * (size_t)i, NULL);
    }
    const char *v1 = e2e_path("v1.bin");
    e2e_image(v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_node_init(&node, "bluez");
    snprintf(host, sizeof host, "%.*s", (int)(strchr(node.listen, ':') - node.listen), node.listen);
    snprintf(port, sizeof port, "%s", strchr(node.listen, ':') + 1);
    snprintf(ble, sizeof ble, "%s:%u", host, (unsigned)e2e_free_port());
    const char *args[] = {"--create", "--flash-size", "4M", "--firmware", v1, "--ble", ble, "--ble-name", "aloft-bz",
                          "--ble-interval", "1", "--idle-timeout", "5", "--ble-legacy", NULL};
    /* the node has a PSK (the extended pushes prove it); --ble-legacy lets
     * the esp32-ble-ota protocol, which cannot, in too */
    if (e2e_node_start(&node, args))
        return -1;
    /* a private bus: its own socket, the session bus's policy */
    char sock[300], addr[320], out[300];
    snprintf(sock, sizeof sock, "%s", e2e_path("bus"));
    snprintf(addr, sizeof addr, "unix:path=%s", sock);
    snprintf(out, sizeof out, "%s", e2e_path("bus.out"));
    const char *dbus[] = {"dbus-daemon", "--session", "--nofork", "--nopidfile", "--address", addr, NULL};
    bus_pid = e2e_spawn("dbus-daemon", dbus, out, O_TRUNC, true);
    struct stat st;
    for (int i = 0; i < 500 && stat(sock, &st); i++)
        e2e_sleep_ms(10);
    setenv("DBUS_SYSTEM_BUS_ADDRESS", addr, 1);
    standin_start(0);
    return 0;
}

static int teardown(void **state)
{
    stop(&standin_pid);
    stop(&bus_pid);
    return e2e_teardown(state);
}

static void version_is(const char *want)
{
    cJSON *st = e2e_status(&node);
    assert_string_equal(e2e_jstr(st, "version"), want);
    cJSON_Delete(st);
}

static void scan_lists_the_node(void **state)
{
    (void)state;
    char *out = NULL;
    const char *scan[] = {"aloft", "ble", "scan", "--timeout", "2", NULL};
    int rc = aloft_test_run(&out, scan);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, ADDR));
    assert_non_null(strstr(out, "\"aloft-bz\""));
    assert_non_null(strstr(out, "idle"));
    free(out);
    /* and by name: the MTU is the one the stand-in shows (the node's 256) */
    const char *named[] = {"aloft", "ble", "scan", "aloft-bz", NULL};
    assert_int_equal(aloft_test_run(&out, named), 0);
    assert_non_null(strstr(out, "MTU 256"));
    free(out);
}

/* aloft ble push FILE TARGET [extra], verified through the node's HTTP. */
static void pushed(const char *file, const char *target, const char *extra, const char *version)
{
    char *out = NULL;
    unsigned boots = node.serving;
    const char *cmd[] = {"aloft", "ble", "push", file, target, "--status-host", host, "--status-port", port,
                         "--timeout", "20", "--psk", node.psk, extra, NULL};
    int rc = aloft_test_run(&out, cmd);
    printf("%s", out);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, ": updated: "));
    free(out);
    assert_int_equal(e2e_node_wait_boot(&node), 0);
    assert_true(node.serving > boots);
    version_is(version);
    assert_int_equal(e2e_wait_state(&node, "valid", 10000), 0);
}

static void push_by_address_extended(void **state)
{
    (void)state;
    pushed(fw[0], ADDR, NULL, versions[0]);
}

static void push_by_name_legacy(void **state)
{
    (void)state;
    pushed(fw[1], "aloft-bz", "--legacy", versions[1]);
}

static void device_vanishes_mid_transfer(void **state)
{
    (void)state;
    standin_start(40); /* out of range after 40 packets */
    struct e2e_snap s;
    e2e_snap_take(&s, &node);
    char *out = NULL;
    const char *cmd[] = {"aloft", "ble", "push", fw[2], ADDR, "--tries", "2", "--status-host", host,
                         "--status-port", port, "--psk", node.psk, NULL};
    int rc = aloft_test_run(&out, cmd);
    printf("%s", out);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(out, ADDR ": unreachable: "));
    free(out);
    /* the transfer had begun: the device took packets, then went */
    size_t len;
    char begun[80];
    free(e2e_file_read(fw[2], &len));
    snprintf(begun, sizeof begun, "update begins (extended, %zu bytes", len);
    out = e2e_log_read(&node);
    assert_non_null(strstr(out, begun));
    free(out);
    e2e_snap_app_unchanged(&s, &node); /* the resume point is in the settings */
    e2e_snap_free(&s);
    version_is(versions[1]);
}

int main(void)
{
    e2e_init(177);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(scan_lists_the_node),
        cmocka_unit_test(push_by_address_extended),
        cmocka_unit_test(push_by_name_legacy),
        cmocka_unit_test(device_vanishes_mid_transfer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
