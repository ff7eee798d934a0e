/* aloft host: a BLE central on the simulated link (PROTOCOLS.md §4.1) and
 * the two ways to push an image through the BLE OTA service (ble.h): the
 * esp32-ble-ota protocol and aloft's extended mode (docs/ble.md). For `aloft ble`,
 * the benchmark and the tests. Blocking, every wait bounded. */
#ifndef ALOFT_HOST_BLE_CENTRAL_H
#define ALOFT_HOST_BLE_CENTRAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/ble.h" /* the service's UUIDs and opcodes */

#define BLE_NOTES 256 /* notifications kept until read */

struct ble_note {
    uint8_t chr;
    uint16_t len;
    uint8_t v[600];
};

struct ble_bluez;

/* One connection over either transport: the simulated link (fd), or a real
 * device through BlueZ (bz, host/ble_bluez.c). */
struct ble_central {
    int fd;                       /* the simulated link; -1 when closed */
    struct ble_bluez *bz;         /* BlueZ; NULL when closed or not used */
    uint16_t mtu;                 /* agreed */
    char name[33];                /* the device's advertised name */
    char why[240];                /* what went wrong, for people */
    struct ble_note notes[BLE_NOTES];
    unsigned head, count;
    uint8_t in[602];              /* a frame being read */
    size_t have;
};

/* Connect to HOST:PORT asking for ATT MTU mtu (23..517). 0, or -1 with
 * why (refused, closed: another central is connected). */
int ble_central_connect(struct ble_central *c, const char *target, uint16_t mtu);

/* The same, where target may also be a real device's Bluetooth address
 * (AA:BB:CC:DD:EE:FF) or advertised name, reached through BlueZ: found
 * by discovery within find_ms, its MTU the one BlueZ shows (capped at mtu)
 * or assume_mtu when BlueZ does not show one. */
int ble_central_open(struct ble_central *c, const char *target, uint16_t mtu, uint16_t assume_mtu, unsigned find_ms);
void ble_central_close(struct ble_central *c);

/* A request: op 0x02 READ, 0x03 WRITE, 0x05 SUBSCRIBE, 0x06 UNSUBSCRIBE on
 * characteristic chr (enum aloft_ble_chr). Waits up to 10 s for the
 * answer (notifications meanwhile are kept). Returns the ATT error (0
 * success) with a read's value in out (*out_len), or -1 (link gone). */
int ble_central_request(struct ble_central *c, uint8_t op, int chr, const void *v, size_t len, uint8_t *out,
                        size_t *out_len);

/* A write without response (the frame is written; notifications that
 * arrive meanwhile are kept). 0 or -1. */
int ble_central_write_cmd(struct ble_central *c, int chr, const void *v, size_t len);

/* The next notification of chr, waiting up to timeout_ms (0: only what is
 * here). Returns its length (value in n), 0 none in time, -1 link gone. */
int ble_central_note(struct ble_central *c, int chr, struct ble_note *n, unsigned timeout_ms);

/* Pushing an image. */
struct ble_push {
    bool frontend;     /* extended mode only: the www slot */
    bool legacy;       /* the esp32-ble-ota protocol (it cannot authenticate) */
    const char *psk;   /* extended: authenticate with it (CHALLENGE, AUTH); NULL: an open device */
    bool delta;        /* extended: the bytes are a delta patch for the running app (BEGIN's kind) */
    /* progress: bytes safely on the device (extended) or sent (esp32-ble-ota) */
    void (*progress)(void *ctx, uint64_t done, uint64_t total);
    void *ctx;
    /* for tests: corrupt the packet holding this offset once (0: never;
     * extended), hang up once this many bytes are sent (0: never) */
    uint32_t corrupt_at, drop_at;
    /* out */
    uint32_t resumed_at;   /* extended: where the device had us start */
    unsigned naks;         /* extended: sector NAKs seen */
    char boots[40];        /* extended: what the device says will boot */
};

/* Push image (len bytes) over a connected central. Returns 0 (the device
 * took it and restarts), 1 (refused: why holds the device's answer), -1
 * (the link failed or stalled: why). */
int ble_push_image(struct ble_central *c, struct ble_push *o, const uint8_t *image, size_t len);

#endif
