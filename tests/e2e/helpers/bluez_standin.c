/* A stand-in for BlueZ (bluetoothd) on a test's private bus, for
 * test_node_bluez: it owns org.bluez and exports, as BlueZ's documented
 * D-Bus API has them, an adapter (/org/bluez/hci0, Adapter1), one device
 * (Device1) that appears on StartDiscovery while the node takes a central,
 * and after Connect its GATT service and characteristics (GattService1,
 * GattCharacteristic1: UUID, Flags, MTU, Value, ReadValue, WriteValue,
 * StartNotify, StopNotify, PropertiesChanged on Value). Every GATT
 * operation is forwarded to a real aloft-node --ble over the simulated link
 * (host/ble_central.c).
 *
 * usage: bluez-standin NODE_HOST:PORT ADDRESS [VANISH_AFTER]
 * VANISH_AFTER: after that many writes to Data the device goes out of range
 * (the link drops, the device and its objects are removed, and it is never
 * found again). Prints "ready" once it owns org.bluez. */
#include <dbus/dbus.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ble_central.h"

static DBusConnection *bus;
static const char *node, *address;
static char name[33], dev[80], svc[100], chr[ALOFT_BLE_CHRS][120], uuids[1 + ALOFT_BLE_CHRS][37];
static bool discovering, present, connected, vanished, notifying[ALOFT_BLE_CHRS];
static unsigned data_writes, vanish_after;
static uint16_t mtu = 23;
static struct ble_central central;
static const char *const flags[ALOFT_BLE_CHRS][4] = {
    {"read", "write", "write-without-response", "notify"},
    {"write", "write-without-response", NULL, NULL},
    {"read", "notify", NULL, NULL},
};

static void var_s(DBusMessageIter *d, const char *key, int type, const void *v)
{
    DBusMessageIter e, var;
    char sig[2] = {(char)type, 0};
    dbus_message_iter_open_container(d, DBUS_TYPE_DICT_ENTRY, NULL, &e);
    dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key);
    dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, sig, &var);
    dbus_message_iter_append_basic(&var, type, v);
    dbus_message_iter_close_container(&e, &var);
    dbus_message_iter_close_container(d, &e);
}

static void var_strings(DBusMessageIter *d, const char *key, const char *const *s, int n)
{
    DBusMessageIter e, var, a;
    dbus_message_iter_open_container(d, DBUS_TYPE_DICT_ENTRY, NULL, &e);
    dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key);
    dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "as", &var);
    dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "s", &a);
    for (int i = 0; i < n && s[i]; i++)
        dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &s[i]);
    dbus_message_iter_close_container(&var, &a);
    dbus_message_iter_close_container(&e, &var);
    dbus_message_iter_close_container(d, &e);
}

static void var_bytes(DBusMessageIter *d, const char *key, const uint8_t *v, int n)
{
    DBusMessageIter e, var, a;
    dbus_message_iter_open_container(d, DBUS_TYPE_DICT_ENTRY, NULL, &e);
    dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &key);
    dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "ay", &var);
    dbus_message_iter_open_container(&var, DBUS_TYPE_ARRAY, "y", &a);
    dbus_message_iter_append_fixed_array(&a, DBUS_TYPE_BYTE, &v, n);
    dbus_message_iter_close_container(&var, &a);
    dbus_message_iter_close_container(&e, &var);
    dbus_message_iter_close_container(d, &e);
}

/* One interface's properties as a{sv}. */
static void props(DBusMessageIter *it, const char *path, const char *iface)
{
    DBusMessageIter d;
    dbus_bool_t t = TRUE, f = FALSE;
    dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sv}", &d);
    if (!strcmp(iface, "org.bluez.Adapter1")) {
        const char *a = "00:1A:7D:DA:71:13";
        var_s(&d, "Address", DBUS_TYPE_STRING, &a);
        var_s(&d, "Powered", DBUS_TYPE_BOOLEAN, &t);
        var_s(&d, "Discovering", DBUS_TYPE_BOOLEAN, discovering ? &t : &f);
    } else if (!strcmp(iface, "org.bluez.Device1")) {
        const char *n = name, *adapter = "/org/bluez/hci0", *u[] = {uuids[0]};
        var_s(&d, "Address", DBUS_TYPE_STRING, &address);
        var_s(&d, "Name", DBUS_TYPE_STRING, &n);
        var_s(&d, "Alias", DBUS_TYPE_STRING, &n);
        var_s(&d, "Adapter", DBUS_TYPE_OBJECT_PATH, &adapter);
        var_strings(&d, "UUIDs", u, 1);
        var_s(&d, "Connected", DBUS_TYPE_BOOLEAN, connected ? &t : &f);
        var_s(&d, "ServicesResolved", DBUS_TYPE_BOOLEAN, connected ? &t : &f);
    } else if (!strcmp(iface, "org.bluez.GattService1")) {
        const char *u = uuids[0], *dp = dev;
        var_s(&d, "UUID", DBUS_TYPE_STRING, &u);
        var_s(&d, "Primary", DBUS_TYPE_BOOLEAN, &t);
        var_s(&d, "Device", DBUS_TYPE_OBJECT_PATH, &dp);
    } else {
        for (int i = 0; i < ALOFT_BLE_CHRS; i++)
            if (!strcmp(path, chr[i])) {
                const char *u = uuids[1 + i], *sp = svc;
                var_s(&d, "UUID", DBUS_TYPE_STRING, &u);
                var_s(&d, "Service", DBUS_TYPE_OBJECT_PATH, &sp);
                var_strings(&d, "Flags", flags[i], 4);
                var_s(&d, "Notifying", DBUS_TYPE_BOOLEAN, notifying[i] ? &t : &f);
                var_s(&d, "MTU", DBUS_TYPE_UINT16, &mtu);
                var_bytes(&d, "Value", NULL, 0);
            }
    }
    dbus_message_iter_close_container(it, &d);
}

/* An object's interfaces as a{sa{sv}}. */
static void object(DBusMessageIter *it, const char *path, const char *iface)
{
    DBusMessageIter a, e;
    dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{sa{sv}}", &a);
    dbus_message_iter_open_container(&a, DBUS_TYPE_DICT_ENTRY, NULL, &e);
    dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &iface);
    props(&e, path, iface);
    dbus_message_iter_close_container(&a, &e);
    dbus_message_iter_close_container(it, &a);
}

static void emit_added(const char *path, const char *iface)
{
    DBusMessage *s = dbus_message_new_signal("/", "org.freedesktop.DBus.ObjectManager", "InterfacesAdded");
    DBusMessageIter it;
    dbus_message_iter_init_append(s, &it);
    dbus_message_iter_append_basic(&it, DBUS_TYPE_OBJECT_PATH, &path);
    object(&it, path, iface);
    dbus_connection_send(bus, s, NULL);
    dbus_message_unref(s);
}

static void emit_removed(const char *path, const char *iface)
{
    DBusMessage *s = dbus_message_new_signal("/", "org.freedesktop.DBus.ObjectManager", "InterfacesRemoved");
    DBusMessageIter it, a;
    dbus_message_iter_init_append(s, &it);
    dbus_message_iter_append_basic(&it, DBUS_TYPE_OBJECT_PATH, &path);
    dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &a);
    dbus_message_iter_append_basic(&a, DBUS_TYPE_STRING, &iface);
    dbus_message_iter_close_container(&it, &a);
    dbus_connection_send(bus, s, NULL);
    dbus_message_unref(s);
}

/* PropertiesChanged(iface, {key: value}, []) on path. */
static void emit_changed(const char *path, const char *iface, const char *key, int type, const void *v, int n)
{
    DBusMessage *s = dbus_message_new_signal(path, "org.freedesktop.DBus.Properties", "PropertiesChanged");
    DBusMessageIter it, d, a;
    dbus_message_iter_init_append(s, &it);
    dbus_message_iter_append_basic(&it, DBUS_TYPE_STRING, &iface);
    dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d);
    if (type == DBUS_TYPE_ARRAY)
        var_bytes(&d, key, v, n);
    else
        var_s(&d, key, type, v);
    dbus_message_iter_close_container(&it, &d);
    dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "s", &a);
    dbus_message_iter_close_container(&it, &a);
    dbus_connection_send(bus, s, NULL);
    dbus_message_unref(s);
}

static void disconnect(void)
{
    if (!connected)
        return;
    ble_central_close(&central);
    connected = false;
    memset(notifying, 0, sizeof notifying);
    dbus_bool_t f = FALSE;
    emit_changed(dev, "org.bluez.Device1", "ServicesResolved", DBUS_TYPE_BOOLEAN, &f, 0);
    emit_changed(dev, "org.bluez.Device1", "Connected", DBUS_TYPE_BOOLEAN, &f, 0);
    for (int i = ALOFT_BLE_CHRS - 1; i >= 0; i--)
        emit_removed(chr[i], "org.bluez.GattCharacteristic1");
    emit_removed(svc, "org.bluez.GattService1");
}

static void vanish(void)
{
    disconnect();
    vanished = true;
    if (present)
        emit_removed(dev, "org.bluez.Device1");
    present = false;
}

static void append_managed(DBusMessageIter *it)
{
    DBusMessageIter objs, e;
    const char *paths[3 + ALOFT_BLE_CHRS] = {"/org/bluez/hci0", dev, svc, chr[0], chr[1], chr[2]};
    const char *ifaces[3 + ALOFT_BLE_CHRS] = {"org.bluez.Adapter1", "org.bluez.Device1", "org.bluez.GattService1",
                                             "org.bluez.GattCharacteristic1", "org.bluez.GattCharacteristic1",
                                             "org.bluez.GattCharacteristic1"};
    int n = !present ? 1 : !connected ? 2 : 3 + ALOFT_BLE_CHRS;
    dbus_message_iter_open_container(it, DBUS_TYPE_ARRAY, "{oa{sa{sv}}}", &objs);
    for (int i = 0; i < n; i++) {
        dbus_message_iter_open_container(&objs, DBUS_TYPE_DICT_ENTRY, NULL, &e);
        dbus_message_iter_append_basic(&e, DBUS_TYPE_OBJECT_PATH, &paths[i]);
        object(&e, paths[i], ifaces[i]);
        dbus_message_iter_close_container(&objs, &e);
    }
    dbus_message_iter_close_container(it, &objs);
}

static DBusMessage *error(DBusMessage *m, const char *name, const char *msg)
{
    return dbus_message_new_error(m, name, msg);
}

/* An ATT error as BlueZ reports it. */
static DBusMessage *att(DBusMessage *m, int e)
{
    char msg[64];
    if (e < 0) {
        disconnect();
        return error(m, "org.bluez.Error.Failed", "Not connected");
    }
    if (e == 0x02 || e == 0x03)
        return error(m, "org.bluez.Error.NotPermitted", e == 0x02 ? "Read not permitted" : "Write not permitted");
    snprintf(msg, sizeof msg, "Operation failed with ATT error: 0x%02x", e);
    return error(m, "org.bluez.Error.Failed", msg);
}

static int chr_of(const char *path)
{
    for (int i = 0; i < ALOFT_BLE_CHRS; i++)
        if (path && !strcmp(path, chr[i]))
            return i;
    return -1;
}

/* WriteValue(ay value, a{sv} options): "type" "command" is a write
 * without response. */
static DBusMessage *write_value(DBusMessage *m, int c)
{
    DBusMessageIter it, a, opts, e, v;
    const uint8_t *bytes = NULL;
    int n = 0;
    bool cmd = false;
    if (!dbus_message_iter_init(m, &it) || dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
        return error(m, "org.bluez.Error.InvalidArguments", "Invalid arguments in method call");
    dbus_message_iter_recurse(&it, &a);
    dbus_message_iter_get_fixed_array(&a, &bytes, &n);
    if (dbus_message_iter_next(&it) && dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY)
        for (dbus_message_iter_recurse(&it, &opts); dbus_message_iter_get_arg_type(&opts) == DBUS_TYPE_DICT_ENTRY;
             dbus_message_iter_next(&opts)) {
            const char *key, *s;
            dbus_message_iter_recurse(&opts, &e);
            dbus_message_iter_get_basic(&e, &key);
            dbus_message_iter_next(&e);
            dbus_message_iter_recurse(&e, &v);
            if (!strcmp(key, "type") && dbus_message_iter_get_arg_type(&v) == DBUS_TYPE_STRING) {
                dbus_message_iter_get_basic(&v, &s);
                cmd = !strcmp(s, "command");
            }
        }
    if (c == ALOFT_BLE_DATA && vanish_after && ++data_writes >= vanish_after) {
        vanish();
        return error(m, "org.bluez.Error.Failed", "Not connected");
    }
    int rc = cmd ? ble_central_write_cmd(&central, c, bytes, (size_t)n)
                 : ble_central_request(&central, 0x03, c, bytes, (size_t)n, NULL, NULL);
    return rc ? att(m, rc) : dbus_message_new_method_return(m);
}

static DBusMessage *handle(DBusMessage *m)
{
    const char *path = dbus_message_get_path(m), *iface = dbus_message_get_interface(m);
    const char *member = dbus_message_get_member(m);
    int c = chr_of(path);
    if (!iface || !member || !path)
        return NULL;
    if (!strcmp(iface, "org.freedesktop.DBus.ObjectManager") && !strcmp(member, "GetManagedObjects")) {
        DBusMessage *r = dbus_message_new_method_return(m);
        DBusMessageIter it;
        dbus_message_iter_init_append(r, &it);
        append_managed(&it);
        return r;
    }
    if (!strcmp(iface, "org.freedesktop.DBus.Properties") && !strcmp(member, "GetAll")) {
        const char *want = "";
        dbus_message_get_args(m, NULL, DBUS_TYPE_STRING, &want, DBUS_TYPE_INVALID);
        DBusMessage *r = dbus_message_new_method_return(m);
        DBusMessageIter it;
        dbus_message_iter_init_append(r, &it);
        props(&it, path, want);
        return r;
    }
    if (!strcmp(path, "/org/bluez/hci0") && !strcmp(iface, "org.bluez.Adapter1")) {
        if (!strcmp(member, "StartDiscovery")) {
            if (discovering)
                return error(m, "org.bluez.Error.InProgress", "Operation already in progress");
            discovering = true;
            /* the device advertises while it takes a central: it answers CONNECT */
            if (!present && !vanished && !ble_central_connect(&central, node, 517)) {
                snprintf(name, sizeof name, "%s", central.name);
                ble_central_close(&central);
                present = true;
                emit_added(dev, "org.bluez.Device1");
            }
            return dbus_message_new_method_return(m);
        }
        if (!strcmp(member, "StopDiscovery")) {
            if (!discovering)
                return error(m, "org.bluez.Error.Failed", "No discovery started");
            discovering = false;
            return dbus_message_new_method_return(m);
        }
    }
    if (present && !strcmp(path, dev) && !strcmp(iface, "org.bluez.Device1")) {
        if (!strcmp(member, "Connect")) {
            if (connected)
                return dbus_message_new_method_return(m);
            /* the node may not have seen discovery's connection go yet */
            for (int i = 0; i < 50 && ble_central_connect(&central, node, 517); i++)
                usleep(10000);
            if (central.fd < 0)
                return error(m, "org.bluez.Error.Failed", "le-connection-abort-by-local");
            mtu = central.mtu;
            connected = true;
            dbus_bool_t t = TRUE;
            emit_changed(dev, "org.bluez.Device1", "Connected", DBUS_TYPE_BOOLEAN, &t, 0);
            emit_added(svc, "org.bluez.GattService1");
            for (int i = 0; i < ALOFT_BLE_CHRS; i++)
                emit_added(chr[i], "org.bluez.GattCharacteristic1");
            emit_changed(dev, "org.bluez.Device1", "ServicesResolved", DBUS_TYPE_BOOLEAN, &t, 0);
            return dbus_message_new_method_return(m);
        }
        if (!strcmp(member, "Disconnect")) {
            disconnect();
            return dbus_message_new_method_return(m);
        }
    }
    if (c >= 0 && connected && !strcmp(iface, "org.bluez.GattCharacteristic1")) {
        if (!strcmp(member, "WriteValue"))
            return write_value(m, c);
        if (!strcmp(member, "ReadValue")) {
            uint8_t v[600];
            size_t n = 0;
            int rc = ble_central_request(&central, 0x02, c, NULL, 0, v, &n);
            if (rc)
                return att(m, rc);
            DBusMessage *r = dbus_message_new_method_return(m);
            const uint8_t *p = v;
            dbus_message_append_args(r, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &p, (int)n, DBUS_TYPE_INVALID);
            emit_changed(chr[c], "org.bluez.GattCharacteristic1", "Value", DBUS_TYPE_ARRAY, v, (int)n);
            return r;
        }
        if (!strcmp(member, "StartNotify") || !strcmp(member, "StopNotify")) {
            bool on = !strcmp(member, "StartNotify");
            if (on && notifying[c])
                return dbus_message_new_method_return(m);
            int rc = ble_central_request(&central, on ? 0x05 : 0x06, c, NULL, 0, NULL, NULL);
            if (rc < 0)
                return att(m, rc);
            if (rc)
                return error(m, "org.bluez.Error.NotSupported", "Operation is not supported");
            notifying[c] = on;
            dbus_bool_t b = on;
            emit_changed(chr[c], "org.bluez.GattCharacteristic1", "Notifying", DBUS_TYPE_BOOLEAN, &b, 0);
            return dbus_message_new_method_return(m);
        }
    }
    return error(m, "org.freedesktop.DBus.Error.UnknownMethod", "no such object, interface or method");
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bluez-standin NODE_HOST:PORT ADDRESS [VANISH_AFTER]\n");
        return 2;
    }
    node = argv[1];
    address = argv[2];
    vanish_after = argc > 3 ? (unsigned)atoi(argv[3]) : 0;
    snprintf(dev, sizeof dev, "/org/bluez/hci0/dev_%s", address);
    for (char *p = dev; *p; p++)
        *p = *p == ':' ? '_' : *p;
    snprintf(svc, sizeof svc, "%s/service000a", dev);
    for (int i = 0; i < ALOFT_BLE_CHRS; i++)
        snprintf(chr[i], sizeof chr[i], "%s/char%04x", svc, 0x0b + 3 * i);
    for (int i = 0; i <= ALOFT_BLE_CHRS; i++) {
        const uint8_t *u = aloft_ble_uuid[i];
        snprintf(uuids[i], sizeof uuids[i], "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                 u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
    }
    central.fd = -1;
    DBusError err;
    dbus_error_init(&err);
    bus = dbus_bus_get_private(DBUS_BUS_SYSTEM, &err);
    if (!bus || dbus_bus_request_name(bus, "org.bluez", DBUS_NAME_FLAG_DO_NOT_QUEUE, &err) !=
                    DBUS_REQUEST_NAME_REPLY_PRIMARY_OWNER) {
        fprintf(stderr, "bluez-standin: %s\n", dbus_error_is_set(&err) ? err.message : "org.bluez is taken");
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    int fd = -1;
    dbus_connection_get_unix_fd(bus, &fd);
    for (;;) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = connected ? central.fd : -1, .events = POLLIN}};
        poll(p, 2, 100);
        if (!dbus_connection_read_write(bus, 0))
            return 0; /* the bus is gone: so are we */
        for (DBusMessage *m; (m = dbus_connection_pop_message(bus)); dbus_message_unref(m)) {
            if (dbus_message_get_type(m) != DBUS_MESSAGE_TYPE_METHOD_CALL)
                continue;
            DBusMessage *r = handle(m);
            if (r && !dbus_message_get_no_reply(m))
                dbus_connection_send(bus, r, NULL);
            if (r)
                dbus_message_unref(r);
        }
        /* the device's notifications, as BlueZ passes them on (the first
         * look reads the central: a timeout of 0 only looks at what is kept) */
        for (int i = 0; connected && i < ALOFT_BLE_CHRS; i++) {
            struct ble_note n;
            int got;
            while (connected && (got = ble_central_note(&central, i, &n, i == 0)) != 0) {
                if (got < 0) {
                    disconnect();
                    break;
                }
                if (notifying[i])
                    emit_changed(chr[i], "org.bluez.GattCharacteristic1", "Value", DBUS_TYPE_ARRAY, n.v, n.len);
            }
        }
        dbus_connection_flush(bus);
    }
}
