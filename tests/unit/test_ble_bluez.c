/* host/ble_bluez.c without a bus: which TARGETs go to BlueZ, and that no
 * system bus (or no BlueZ on it) is a clear error, not a hang. The D-Bus
 * conversation itself is tests/e2e/test_node_bluez.c's. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ble_bluez.h"

static void targets(void **state)
{
    (void)state;
    assert_true(ble_bluez_target("24:6F:28:1A:2B:3C"));
    assert_true(ble_bluez_target("24:6f:28:1a:2b:30")); /* ends in digits: still an address */
    assert_true(ble_bluez_target("esp32"));
    assert_true(ble_bluez_target("kitchen sensor"));
    assert_true(ble_bluez_target("node:a"));
    assert_true(ble_bluez_target("node:"));
    assert_false(ble_bluez_target("127.0.0.2:8033"));
    assert_false(ble_bluez_target("localhost:8033"));
    assert_false(ble_bluez_target("24:6F:28:1A:2B:3C:8033")); /* not an address: HOST:PORT */
}

static void no_bus_is_an_error(void **state)
{
    (void)state;
    static struct ble_central c;
    setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/aloft-test-bus", 1);
    assert_int_equal(ble_central_open(&c, "24:6F:28:1A:2B:3C", 517, 23, 1000), -1);
    assert_non_null(strstr(c.why, "system bus"));
    assert_null(c.bz);
    char why[240] = "";
    assert_int_equal(ble_bluez_scan(1000, NULL, NULL, why, sizeof why), -1);
    assert_non_null(strstr(why, "system bus"));
    ble_central_close(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(targets),
        cmocka_unit_test(no_bus_is_an_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
