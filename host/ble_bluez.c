/* aloft host: a BLE central through BlueZ's D-Bus API (ble_bluez.h):
 * Adapter1 discovery, Device1.Connect, the service's GattCharacteristic1
 * objects by UUID, WriteValue / ReadValue / StartNotify, notifications as
 * PropertiesChanged "Value" signals. libdbus-1, blocking, every wait
 * bounded. */
#include "ble_bluez.h"

#include <ctype.h>
#include <dbus/dbus.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CALL_MS 10000     /* a method's answer */
#define CONNECT_MS 30000  /* Device1.Connect */
#define RESOLVE_MS 15000  /* the GATT service after Connect */

struct ble_bluez {
    DBusConnection *bus;
    char adapter[128], dev[160], chr[ALOFT_BLE_CHRS][200];
    bool notifying[ALOFT_BLE_CHRS], resolved, gone;
    uint16_t chr_mtu;
    char name[33];
};

/* A scan's or a connect's view of BlueZ's objects. */
struct view {
    const char *want;       /* connect: an address or a name */
    char adapter[128], dev[160], chr[ALOFT_BLE_CHRS][200];
    bool resolved;
    uint16_t mtu;
    char name[33];
    void (*found)(void *ctx, const char *address, const char *name);
    void *ctx;
};

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

static void uuid_str(int i, char out[37])
{
    const uint8_t *u = aloft_ble_uuid[i];
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", u[0], u[1], u[2], u[3],
             u[4], u[5], u[6], u[7], u[8], u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
}

bool ble_bluez_target(const char *t)
{
    size_t n = strlen(t);
    bool mac = n == 17;
    for (size_t i = 0; mac && i < n; i++)
        mac = i % 3 == 2 ? t[i] == ':' : isxdigit((unsigned char)t[i]) != 0;
    if (mac)
        return true;
    const char *colon = strrchr(t, ':');
    if (!colon || colon == t || !colon[1])
        return true; /* a name */
    for (const char *p = colon + 1; *p; p++)
        if (!isdigit((unsigned char)*p))
            return true;
    return false;
}

static int fail(struct ble_central *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    ble_bluez_close(c);
    return -1;
}

/* One object's interfaces (a{sa{sv}}) into v. */
static void object(struct view *v, const char *path, DBusMessageIter *ifaces)
{
    char addr[40] = "", name[33] = "", uuid[40] = "";
    bool ota = false, resolved = false, is_dev = false, is_chr = false, is_adapter = false;
    uint16_t mtu = 0;
    char want_uuid[37];
    uuid_str(0, want_uuid);
    for (DBusMessageIter e; dbus_message_iter_get_arg_type(ifaces) == DBUS_TYPE_DICT_ENTRY; dbus_message_iter_next(ifaces)) {
        DBusMessageIter props;
        const char *iface;
        dbus_message_iter_recurse(ifaces, &e);
        dbus_message_iter_get_basic(&e, &iface);
        dbus_message_iter_next(&e);
        dbus_message_iter_recurse(&e, &props);
        is_adapter |= !strcmp(iface, "org.bluez.Adapter1");
        is_dev |= !strcmp(iface, "org.bluez.Device1");
        is_chr |= !strcmp(iface, "org.bluez.GattCharacteristic1");
        for (DBusMessageIter p; dbus_message_iter_get_arg_type(&props) == DBUS_TYPE_DICT_ENTRY;
             dbus_message_iter_next(&props)) {
            DBusMessageIter val;
            const char *key;
            dbus_message_iter_recurse(&props, &p);
            dbus_message_iter_get_basic(&p, &key);
            dbus_message_iter_next(&p);
            dbus_message_iter_recurse(&p, &val);
            int t = dbus_message_iter_get_arg_type(&val);
            const char *s = NULL;
            if (t == DBUS_TYPE_STRING)
                dbus_message_iter_get_basic(&val, &s);
            if (s && !strcmp(key, "Address"))
                snprintf(addr, sizeof addr, "%s", s);
            else if (s && (!strcmp(key, "Name") || (!strcmp(key, "Alias") && !name[0])))
                snprintf(name, sizeof name, "%s", s);
            else if (s && !strcmp(key, "UUID"))
                snprintf(uuid, sizeof uuid, "%s", s);
            else if (t == DBUS_TYPE_BOOLEAN && !strcmp(key, "ServicesResolved")) {
                dbus_bool_t b;
                dbus_message_iter_get_basic(&val, &b);
                resolved = b;
            } else if (t == DBUS_TYPE_UINT16 && !strcmp(key, "MTU")) {
                dbus_message_iter_get_basic(&val, &mtu);
            } else if (t == DBUS_TYPE_ARRAY && !strcmp(key, "UUIDs")) {
                DBusMessageIter a;
                for (dbus_message_iter_recurse(&val, &a); dbus_message_iter_get_arg_type(&a) == DBUS_TYPE_STRING;
                     dbus_message_iter_next(&a)) {
                    dbus_message_iter_get_basic(&a, &s);
                    ota |= !strcasecmp(s, want_uuid);
                }
            }
        }
    }
    if (is_adapter && !v->adapter[0])
        snprintf(v->adapter, sizeof v->adapter, "%s", path);
    if (is_dev && v->found && ota)
        v->found(v->ctx, addr, name);
    if (is_dev && v->want && !v->dev[0] &&
        (!strcasecmp(addr, v->want) || (name[0] && !strcmp(name, v->want)))) {
        snprintf(v->dev, sizeof v->dev, "%s", path);
        snprintf(v->name, sizeof v->name, "%s", name);
        v->resolved = resolved;
    } else if (is_dev && v->dev[0] && !strcmp(path, v->dev)) {
        v->resolved = resolved;
    }
    size_t dl = strlen(v->dev);
    if (is_chr && dl && !strncmp(path, v->dev, dl) && path[dl] == '/')
        for (int i = 0; i < ALOFT_BLE_CHRS; i++) {
            char u[37];
            uuid_str(1 + i, u);
            if (!strcasecmp(uuid, u)) {
                snprintf(v->chr[i], sizeof v->chr[i], "%s", path);
                if (i == ALOFT_BLE_CONTROL)
                    v->mtu = mtu;
            }
        }
}

static DBusMessage *call(DBusConnection *bus, const char *path, const char *iface, const char *method, int ms,
                         DBusError *err, int first, ...)
{
    DBusMessage *m = dbus_message_new_method_call("org.bluez", path, iface, method), *r;
    va_list ap;
    va_start(ap, first);
    if (first != DBUS_TYPE_INVALID)
        dbus_message_append_args_valist(m, first, ap);
    va_end(ap);
    r = dbus_connection_send_with_reply_and_block(bus, m, ms, err);
    dbus_message_unref(m);
    return r;
}

/* GetManagedObjects into v. */
static int survey(DBusConnection *bus, struct view *v, DBusError *err)
{
    DBusMessage *r = call(bus, "/", "org.freedesktop.DBus.ObjectManager", "GetManagedObjects", CALL_MS, err,
                          DBUS_TYPE_INVALID);
    if (!r)
        return -1;
    DBusMessageIter it, objs, o, ifaces;
    memset(v->chr, 0, sizeof v->chr);
    if (dbus_message_iter_init(r, &it) && dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY)
        for (dbus_message_iter_recurse(&it, &objs); dbus_message_iter_get_arg_type(&objs) == DBUS_TYPE_DICT_ENTRY;
             dbus_message_iter_next(&objs)) {
            const char *path;
            dbus_message_iter_recurse(&objs, &o);
            dbus_message_iter_get_basic(&o, &path);
            dbus_message_iter_next(&o);
            dbus_message_iter_recurse(&o, &ifaces);
            object(v, path, &ifaces);
        }
    dbus_message_unref(r);
    return 0;
}

/* Take the signals that arrived (waiting up to ms for the first):
 * InterfacesAdded into v (when given), notifications into c's ring (when
 * given), a disconnect of c's device. */
static void signals(DBusConnection *bus, unsigned ms, struct view *v, struct ble_central *c)
{
    /* a blocking call leaves what came meanwhile queued: take that first
     * rather than wait for more */
    bool queued = dbus_connection_get_dispatch_status(bus) == DBUS_DISPATCH_DATA_REMAINS;
    dbus_connection_read_write(bus, queued ? 0 : (int)ms);
    for (DBusMessage *m; (m = dbus_connection_pop_message(bus)); dbus_message_unref(m)) {
        DBusMessageIter it, sub;
        const char *path = dbus_message_get_path(m), *iface;
        if (v && dbus_message_is_signal(m, "org.freedesktop.DBus.ObjectManager", "InterfacesAdded") &&
            dbus_message_iter_init(m, &it) && dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_OBJECT_PATH) {
            dbus_message_iter_get_basic(&it, &path);
            dbus_message_iter_next(&it);
            dbus_message_iter_recurse(&it, &sub);
            object(v, path, &sub);
        }
        if (!c || !c->bz || !path || !dbus_message_is_signal(m, "org.freedesktop.DBus.Properties", "PropertiesChanged") ||
            !dbus_message_iter_init(m, &it) || dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_STRING)
            continue;
        struct ble_bluez *b = c->bz;
        dbus_message_iter_get_basic(&it, &iface);
        dbus_message_iter_next(&it);
        if (dbus_message_iter_get_arg_type(&it) != DBUS_TYPE_ARRAY)
            continue;
        int chr = -1;
        for (int i = 0; i < ALOFT_BLE_CHRS; i++)
            if (b->notifying[i] && !strcmp(path, b->chr[i]))
                chr = i;
        bool dev = !strcmp(path, b->dev) && !strcmp(iface, "org.bluez.Device1");
        if (chr < 0 && !dev)
            continue;
        for (dbus_message_iter_recurse(&it, &sub); dbus_message_iter_get_arg_type(&sub) == DBUS_TYPE_DICT_ENTRY;
             dbus_message_iter_next(&sub)) {
            DBusMessageIter e, val, a;
            const char *key;
            dbus_message_iter_recurse(&sub, &e);
            dbus_message_iter_get_basic(&e, &key);
            dbus_message_iter_next(&e);
            dbus_message_iter_recurse(&e, &val);
            if (dev && !strcmp(key, "Connected") && dbus_message_iter_get_arg_type(&val) == DBUS_TYPE_BOOLEAN) {
                dbus_bool_t on;
                dbus_message_iter_get_basic(&val, &on);
                b->gone |= !on;
            } else if (chr >= 0 && !strcmp(key, "Value") && dbus_message_iter_get_arg_type(&val) == DBUS_TYPE_ARRAY) {
                const uint8_t *bytes;
                int n;
                dbus_message_iter_recurse(&val, &a);
                dbus_message_iter_get_fixed_array(&a, &bytes, &n);
                if (c->count == BLE_NOTES || n < 0 || (size_t)n > sizeof c->notes[0].v)
                    continue; /* never read, or not the service's: dropped */
                struct ble_note *note = &c->notes[(c->head + c->count++) % BLE_NOTES];
                note->chr = (uint8_t)chr;
                note->len = (uint16_t)n;
                memcpy(note->v, bytes, (size_t)n);
            }
        }
    }
}

static DBusConnection *system_bus(char *why, size_t why_len)
{
    DBusError err;
    dbus_error_init(&err);
    DBusConnection *bus = dbus_bus_get_private(DBUS_BUS_SYSTEM, &err);
    if (!bus) {
        snprintf(why, why_len, "cannot reach the system bus (BlueZ's): %s", err.message);
        dbus_error_free(&err);
        return NULL;
    }
    dbus_connection_set_exit_on_disconnect(bus, FALSE);
    dbus_bus_add_match(bus, "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.ObjectManager'", NULL);
    dbus_bus_add_match(bus, "type='signal',sender='org.bluez',interface='org.freedesktop.DBus.Properties'", NULL);
    return bus;
}

static void bus_close(DBusConnection *bus)
{
    dbus_connection_close(bus);
    dbus_connection_unref(bus);
}

/* Adapter1.StartDiscovery, signals and surveys into v until stop(v) or
 * timeout_ms, StopDiscovery. 0 or -1 (why). */
static int discover(DBusConnection *bus, struct view *v, unsigned timeout_ms, bool (*stop)(const struct view *),
                    char *why, size_t why_len)
{
    DBusError err;
    dbus_error_init(&err);
    if (survey(bus, v, &err)) {
        snprintf(why, why_len, "BlueZ does not answer on the system bus (is bluetoothd running?): %s", err.message);
        dbus_error_free(&err);
        return -1;
    }
    if (stop && stop(v))
        return 0;
    if (!v->adapter[0]) {
        snprintf(why, why_len, "BlueZ has no Bluetooth adapter");
        return -1;
    }
    DBusMessage *r = call(bus, v->adapter, "org.bluez.Adapter1", "StartDiscovery", CALL_MS, &err, DBUS_TYPE_INVALID);
    if (!r && strcmp(err.name, "org.bluez.Error.InProgress")) {
        snprintf(why, why_len, "%s: StartDiscovery: %s", v->adapter, err.message);
        dbus_error_free(&err);
        return -1;
    }
    if (r)
        dbus_message_unref(r);
    dbus_error_free(&err);
    for (uint64_t end = now_ms() + timeout_ms, next = 0; now_ms() < end && !(stop && stop(v));) {
        if (now_ms() >= next) { /* a name that comes with a later advertisement is a property change */
            survey(bus, v, &err);
            dbus_error_free(&err);
            next = now_ms() + 500;
        }
        signals(bus, 100, v, NULL);
    }
    r = call(bus, v->adapter, "org.bluez.Adapter1", "StopDiscovery", CALL_MS, &err, DBUS_TYPE_INVALID);
    if (r)
        dbus_message_unref(r);
    dbus_error_free(&err);
    return 0;
}

static bool have_dev(const struct view *v)
{
    return v->dev[0] != 0;
}

int ble_bluez_scan(unsigned timeout_ms, void (*found)(void *, const char *, const char *), void *ctx, char *why,
                   size_t why_len)
{
    DBusConnection *bus = system_bus(why, why_len);
    if (!bus)
        return -1;
    struct view v = {.found = found, .ctx = ctx};
    int rc = discover(bus, &v, timeout_ms, NULL, why, why_len);
    bus_close(bus);
    return rc;
}

int ble_bluez_connect(struct ble_central *c, const char *target, uint16_t mtu, uint16_t assume_mtu, unsigned find_ms)
{
    struct ble_bluez *b = calloc(1, sizeof *b);
    c->bz = b;
    if (!b)
        return fail(c, "out of memory");
    char why[sizeof c->why];
    b->bus = system_bus(why, sizeof why);
    if (!b->bus)
        return fail(c, "%s", why);
    struct view v = {.want = target};
    if (discover(b->bus, &v, find_ms, have_dev, why, sizeof why))
        return fail(c, "%s", why);
    if (!v.dev[0])
        return fail(c, "no device %s found (out of range, off, or not advertising)", target);
    snprintf(b->dev, sizeof b->dev, "%s", v.dev);
    DBusError err;
    dbus_error_init(&err);
    DBusMessage *r = call(b->bus, v.dev, "org.bluez.Device1", "Connect", CONNECT_MS, &err, DBUS_TYPE_INVALID);
    if (!r) {
        fail(c, "cannot connect to %s: %s", target, err.message);
        dbus_error_free(&err);
        return -1;
    }
    dbus_message_unref(r);
    for (uint64_t end = now_ms() + RESOLVE_MS;;) {
        if (survey(b->bus, &v, &err)) {
            fail(c, "%s: %s", target, err.message);
            dbus_error_free(&err);
            return -1;
        }
        bool all = v.resolved;
        for (int i = 0; i < ALOFT_BLE_CHRS; i++)
            all &= v.chr[i][0] != 0;
        if (all)
            break;
        if (now_ms() >= end)
            return fail(c, "%s connected but shows no BLE OTA service (%s)", target,
                        v.resolved ? "not an aloft device?" : "its services were not resolved");
        signals(b->bus, 100, NULL, NULL);
    }
    memcpy(b->chr, v.chr, sizeof b->chr);
    c->mtu = v.mtu ? (v.mtu < mtu ? v.mtu : mtu) : assume_mtu;
    snprintf(c->name, sizeof c->name, "%s", v.name);
    return 0;
}

/* A D-Bus error: an ATT error the device answered (> 0), or the link gone
 * (-1, why). BlueZ reports an ATT error as NotPermitted, InvalidValueLength,
 * NotSupported, or Failed with "ATT error: 0x.." in its message. */
static int att_error(struct ble_central *c, DBusError *err, uint8_t op, const char *what)
{
    const char *x = err->message ? strstr(err->message, "ATT error: 0x") : NULL;
    int att = 0;
    if (!strcmp(err->name, "org.bluez.Error.NotPermitted"))
        att = op == 0x02 ? 0x02 : 0x03;
    else if (!strcmp(err->name, "org.bluez.Error.InvalidValueLength"))
        att = 0x0D;
    else if (!strcmp(err->name, "org.bluez.Error.NotSupported"))
        att = 0x06;
    else if (x)
        att = (int)strtol(x + 13, NULL, 16);
    if (att <= 0 || att > 0xff) {
        fail(c, "the device is gone (%s: %s)", what, err->message);
        att = -1;
    }
    dbus_error_free(err);
    return att;
}

static void append_options(DBusMessage *m, const char *type)
{
    DBusMessageIter it, d, e, var;
    dbus_message_iter_init_append(m, &it);
    dbus_message_iter_open_container(&it, DBUS_TYPE_ARRAY, "{sv}", &d);
    if (type) {
        const char *k = "type";
        dbus_message_iter_open_container(&d, DBUS_TYPE_DICT_ENTRY, NULL, &e);
        dbus_message_iter_append_basic(&e, DBUS_TYPE_STRING, &k);
        dbus_message_iter_open_container(&e, DBUS_TYPE_VARIANT, "s", &var);
        dbus_message_iter_append_basic(&var, DBUS_TYPE_STRING, &type);
        dbus_message_iter_close_container(&e, &var);
        dbus_message_iter_close_container(&d, &e);
    }
    dbus_message_iter_close_container(&it, &d);
}

/* WriteValue(value, {"type": type}). */
static int write_value(struct ble_central *c, int chr, const void *v, size_t len, const char *type)
{
    struct ble_bluez *b = c->bz;
    if (!b || b->gone)
        return b ? fail(c, "the device disconnected") : -1;
    DBusMessage *m = dbus_message_new_method_call("org.bluez", b->chr[chr], "org.bluez.GattCharacteristic1", "WriteValue");
    const uint8_t *bytes = v;
    int n = (int)len;
    dbus_message_append_args(m, DBUS_TYPE_ARRAY, DBUS_TYPE_BYTE, &bytes, n, DBUS_TYPE_INVALID);
    append_options(m, type);
    DBusError err;
    dbus_error_init(&err);
    DBusMessage *r = dbus_connection_send_with_reply_and_block(b->bus, m, CALL_MS, &err);
    dbus_message_unref(m);
    if (!r)
        return att_error(c, &err, 0x03, "WriteValue");
    dbus_message_unref(r);
    return 0;
}

int ble_bluez_request(struct ble_central *c, uint8_t op, int chr, const void *v, size_t len, uint8_t *out,
                      size_t *out_len)
{
    struct ble_bluez *b = c->bz;
    if (!b || chr < 0 || chr >= ALOFT_BLE_CHRS)
        return -1;
    if (b->gone)
        return fail(c, "the device disconnected");
    if (op == 0x03)
        return write_value(c, chr, v, len, "request");
    DBusError err;
    dbus_error_init(&err);
    const char *method = op == 0x02 ? "ReadValue" : op == 0x05 ? "StartNotify" : "StopNotify";
    DBusMessage *m = dbus_message_new_method_call("org.bluez", b->chr[chr], "org.bluez.GattCharacteristic1", method);
    if (op == 0x02)
        append_options(m, NULL);
    DBusMessage *r = dbus_connection_send_with_reply_and_block(b->bus, m, CALL_MS, &err);
    dbus_message_unref(m);
    if (!r)
        return att_error(c, &err, op, method);
    if (op == 0x02 && out) {
        DBusMessageIter it, a;
        const uint8_t *bytes = NULL;
        int n = 0;
        if (dbus_message_iter_init(r, &it) && dbus_message_iter_get_arg_type(&it) == DBUS_TYPE_ARRAY) {
            dbus_message_iter_recurse(&it, &a);
            dbus_message_iter_get_fixed_array(&a, &bytes, &n);
        }
        n = n > 600 ? 600 : n;
        if (n > 0)
            memcpy(out, bytes, (size_t)n);
        *out_len = (size_t)n;
    }
    if (op == 0x05 || op == 0x06)
        b->notifying[chr] = op == 0x05;
    dbus_message_unref(r);
    signals(b->bus, 0, NULL, c); /* what came while waiting */
    return b->gone ? fail(c, "the device disconnected") : 0;
}

int ble_bluez_write_cmd(struct ble_central *c, int chr, const void *v, size_t len)
{
    if (!c->bz || chr < 0 || chr >= ALOFT_BLE_CHRS)
        return -1;
    int rc = write_value(c, chr, v, len, "command");
    if (rc < 0)
        return -1;
    if (rc > 0)
        return fail(c, "a write without response was refused (ATT error 0x%02x)", rc);
    signals(c->bz->bus, 0, NULL, c);
    return c->bz->gone ? fail(c, "the device disconnected") : 0;
}

int ble_bluez_wait(struct ble_central *c, unsigned timeout_ms)
{
    if (!c->bz)
        return -1;
    signals(c->bz->bus, timeout_ms, NULL, c);
    return c->bz->gone ? fail(c, "the device disconnected") : 0; /* what is kept stays readable */
}

void ble_bluez_close(struct ble_central *c)
{
    struct ble_bluez *b = c->bz;
    if (!b)
        return;
    c->bz = NULL;
    if (b->bus) {
        if (b->dev[0] && !b->gone) {
            DBusError err;
            dbus_error_init(&err);
            DBusMessage *r = call(b->bus, b->dev, "org.bluez.Device1", "Disconnect", CALL_MS, &err, DBUS_TYPE_INVALID);
            if (r)
                dbus_message_unref(r);
            dbus_error_free(&err);
        }
        bus_close(b->bus);
    }
    free(b);
}
