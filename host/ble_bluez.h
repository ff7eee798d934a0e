/* aloft host: the BLE central's second transport, a real device through
 * BlueZ's D-Bus API (org.bluez on the system bus, or DBUS_SYSTEM_BUS_ADDRESS).
 * ble_central.c hands a struct ble_central whose target is a Bluetooth
 * address or an advertised name to these; the pushes run unchanged on top. */
#ifndef ALOFT_HOST_BLE_BLUEZ_H
#define ALOFT_HOST_BLE_BLUEZ_H

#include "ble_central.h"

/* Is target a Bluetooth address or a name rather than HOST:PORT? */
bool ble_bluez_target(const char *target);

/* Find the device (known to BlueZ, or by discovery for up to find_ms),
 * Device1.Connect it, wait for its GATT service. The MTU: the
 * characteristic's MTU property capped at mtu, else assume_mtu. 0 or -1
 * with why. */
int ble_bluez_connect(struct ble_central *c, const char *target, uint16_t mtu, uint16_t assume_mtu, unsigned find_ms);
int ble_bluez_request(struct ble_central *c, uint8_t op, int chr, const void *v, size_t len, uint8_t *out,
                      size_t *out_len);
int ble_bluez_write_cmd(struct ble_central *c, int chr, const void *v, size_t len);
/* Take what BlueZ sent within timeout_ms (notifications into the ring).
 * 0, or -1 when the device is gone. */
int ble_bluez_wait(struct ble_central *c, unsigned timeout_ms);
void ble_bluez_close(struct ble_central *c);

/* Discover for timeout_ms; found() once per device that advertises the
 * BLE OTA service. 0, or -1 with why (no bus, no adapter). */
int ble_bluez_scan(unsigned timeout_ms, void (*found)(void *ctx, const char *address, const char *name), void *ctx,
                   char *why, size_t why_len);

#endif
