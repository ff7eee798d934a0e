/* aloft: the BLE OTA service (PROTOCOLS.md §4, docs/ble.md) as functions.
 * The glue owns the BLE stack (NimBLE on a device, the simulated link in
 * aloft-node): it advertises the service, keeps one central at a time and
 * hands the agent each GATT access of that central; the agent answers with
 * the ATT error to send and, through ble->notify, the notifications.
 *
 *   connected              → aloft_ble_connect(mtu agreed)
 *   read / write / write without response / CCCD write
 *                          → aloft_ble_read / aloft_ble_write / aloft_ble_subscribe
 *   disconnected           → aloft_ble_disconnect
 *
 * Characteristics are named by their index (aloft_ble_chr maps a UUID).
 *
 * Two modes on the same characteristics. esp32-ble-ota's (obe711/esp32-ble-ota):
 * packet size to Data, REQUEST, data packets, DONE → DONE_ACK or DONE_NAK,
 * a restart. aloft's extended mode (opcodes 0x10 and up, which esp32-ble-ota clients
 * never send): the image's size, SHA-256 and target up front, data packets
 * carrying their offset, a CRC-32 per 4 KB sector answered by ACK or NAK,
 * ABORT, resume after a disconnect or a restart from the Status
 * characteristic's offset, and a final answer naming what will boot.
 *
 * Every image takes the path of an HTTP upload (push.h): the update writer
 * with its checks, the signature policy, the LittleFS check of a frontend.
 * A refused image switches nothing; a disconnect leaves the running image,
 * otadata and the settings as they were (an extended transfer keeps only
 * its resume point: settings ble/job and ble/offset, cleared by ABORT or
 * its end). The service is on only where the glue enables it (ESP-IDF:
 * CONFIG_ALOFT_BLE_OTA; aloft-node: --ble). Fail closed, as HTTP push:
 * with a PSK, the extended mode's BEGIN and ABORT wait for AUTH (an HMAC of
 * a fresh nonce with the PSK) on this connection, and esp32-ble-ota's REQUEST is
 * refused unless legacy; with no PSK, nothing is taken unless the device
 * is open. */
#ifndef ALOFT_BLE_H
#define ALOFT_BLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/agent.h"
#include "aloft/push.h"

enum aloft_ble_chr { ALOFT_BLE_CONTROL, ALOFT_BLE_DATA, ALOFT_BLE_STATUS, ALOFT_BLE_CHRS };

/* The service's UUID, then each characteristic's (enum aloft_ble_chr + 1),
 * 16 bytes in the order the string form writes them. */
extern const uint8_t aloft_ble_uuid[1 + ALOFT_BLE_CHRS][16];

/* Opcodes on Control. esp32-ble-ota's: */
#define ALOFT_BLE_NOP 0x00
#define ALOFT_BLE_REQUEST 0x01
#define ALOFT_BLE_REQUEST_ACK 0x02
#define ALOFT_BLE_REQUEST_NAK 0x03
#define ALOFT_BLE_DONE 0x04
#define ALOFT_BLE_DONE_ACK 0x05
#define ALOFT_BLE_DONE_NAK 0x06
/* the extended mode's, client → device: */
#define ALOFT_BLE_X_BEGIN 0x10  /* version u8, target u8, size u32[, kind u8] */
#define ALOFT_BLE_X_HASH 0x11   /* half u8 (0, 1), 16 bytes of the SHA-256 */
#define ALOFT_BLE_X_SECTOR 0x12 /* offset u32, crc32 u32 */
#define ALOFT_BLE_X_END 0x13
#define ALOFT_BLE_X_ABORT 0x14
#define ALOFT_BLE_X_CHALLENGE 0x15 /* — : a fresh nonce, please */
#define ALOFT_BLE_X_AUTH 0x16   /* the first 16 bytes of HMAC-SHA256(psk, nonce) */
/* device → client (notifications): */
#define ALOFT_BLE_X_BEGIN_ACK 0x20  /* version u8, offset u32, sector u16, window u8 */
#define ALOFT_BLE_X_BEGIN_NAK 0x21  /* "code: message" */
#define ALOFT_BLE_X_SECTOR_ACK 0x22 /* offset u32: everything before it is in flash */
#define ALOFT_BLE_X_SECTOR_NAK 0x23 /* offset u32 wanted, reason u8 */
#define ALOFT_BLE_X_END_ACK 0x24    /* target u8, what boots: version or www slot */
#define ALOFT_BLE_X_END_NAK 0x25    /* "code: message" */
#define ALOFT_BLE_X_ABORT_ACK 0x26
#define ALOFT_BLE_X_NONCE 0x27      /* 16 random bytes, for one AUTH */
#define ALOFT_BLE_X_AUTH_ACK 0x28
#define ALOFT_BLE_X_AUTH_NAK 0x29   /* "code: message" */

#define ALOFT_BLE_VERSION 1       /* of the extended mode */
#define ALOFT_BLE_SECTOR 4096     /* bytes per CRC-32 */
#define ALOFT_BLE_WINDOW 4        /* sectors a client may send ahead of the ACKs */
#define ALOFT_BLE_SAVE_EVERY 65536 /* the resume point is saved this often */
#define ALOFT_BLE_STATUS_LEN 20   /* fits MTU 23 */
#define ALOFT_BLE_NONCE 16        /* bytes of the nonce, and of AUTH's HMAC */

/* BEGIN's kind (absent: an image) */
#define ALOFT_BLE_KIND_IMAGE 0
#define ALOFT_BLE_KIND_PATCH 1 /* a delta patch (docs/delta.md) for the running app */

/* Status byte 3 */
#define ALOFT_BLE_TAKES_PATCHES 0x01 /* the device takes BEGIN's kind PATCH */
#define ALOFT_BLE_IS_PATCH 0x02      /* the transfer (or the interrupted one) is a patch */

/* SECTOR_NAK reasons */
#define ALOFT_BLE_NAK_CRC 1    /* the sector's bytes do not match its CRC */
#define ALOFT_BLE_NAK_GAP 2    /* a packet was missing or out of order */

/* Status states */
enum aloft_ble_state { ALOFT_BLE_IDLE, ALOFT_BLE_LEGACY, ALOFT_BLE_EXT, ALOFT_BLE_SAVED, ALOFT_BLE_RESTARTING };

/* Caller-allocated, one per device; zero it and set notify (and legacy)
 * before the first call. notify(ctx, chr, value, len): send a notification
 * of chr (the agent calls it only for a subscribed characteristic).
 * legacy: a device with a PSK takes the esp32-ble-ota protocol, which cannot
 * authenticate, from any central (the operator relies on BLE pairing);
 * off, only a central that authenticated (AUTH) may use it. */
struct aloft_ble {
    void *ctx;
    void (*notify)(void *ctx, int chr, const void *value, size_t len);
    bool legacy;
    /* private */
    bool authed;                   /* this connection passed AUTH */
    uint8_t nonce[1 + ALOFT_BLE_NONCE]; /* NONCE's notification; [0] 0 when used up */
    uint8_t state, target, hashed; /* hashed: bit per SHA-256 half staged */
    bool delta;                    /* the transfer is a patch: HASH and size are the patch's */
    uint16_t skip;                 /* a resumed patch: bytes of the first sector the decoder has */
    bool sub[ALOFT_BLE_CHRS];
    bool resync;                   /* dropping packets until the one at done */
    uint16_t mtu, packet;          /* packet: esp32-ble-ota's announced size */
    uint32_t size, done, fill, saved, slot;
    uint8_t sha[32], want[32];
    uint8_t last[ALOFT_BLE_STATUS_LEN]; /* Control's value: the last answer */
    uint8_t last_len;
    struct aloft_push p;
    struct aloft_push_reply reply;
    char buf[320];                 /* the update's replies */
    uint8_t sector[ALOFT_BLE_SECTOR];
};

/* The characteristic of a 16-byte UUID, or -1. */
int aloft_ble_chr(const uint8_t uuid[16]);

/* A central connected; mtu is the ATT MTU agreed (23..517). */
void aloft_ble_connect(struct aloft_agent *a, struct aloft_ble *b, uint16_t mtu);

/* The central and the device agreed on another ATT MTU (an MTU exchange
 * after the connection). */
void aloft_ble_mtu(struct aloft_ble *b, uint16_t mtu);

/* A write (with or without response) of len bytes to chr. Returns the ATT
 * error (0 success); without response the glue sends nothing back. */
int aloft_ble_write(struct aloft_agent *a, struct aloft_ble *b, int chr, const void *value, size_t len);

/* A read of chr into out (cap bytes, at least ALOFT_BLE_STATUS_LEN).
 * Returns the value's length, or minus the ATT error. */
int aloft_ble_read(struct aloft_agent *a, struct aloft_ble *b, int chr, void *out, size_t cap);

/* The central wrote chr's CCCD: notifications on or off. Returns the ATT
 * error. */
int aloft_ble_subscribe(struct aloft_agent *a, struct aloft_ble *b, int chr, bool on);

/* The central is gone (at any moment): esp32-ble-ota's transfer is dropped, an
 * extended one keeps its resume point. Idempotent. */
void aloft_ble_disconnect(struct aloft_agent *a, struct aloft_ble *b);

#endif
