/* aloft: the bootloader's choice of app, its rollback, and the app-side
 * calls (mark valid / invalid). Mirrors ESP-IDF with
 * CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE. */
#ifndef ALOFT_BOOT_H
#define ALOFT_BOOT_H

#include <stdbool.h>
#include <stdint.h>

#include "aloft/part.h"
#include "aloft/port.h"

/* Why the running app was chosen. */
enum aloft_boot_why {
    ALOFT_BOOT_OTADATA = 0,  /* the valid otadata entry selected it */
    ALOFT_BOOT_DEFAULT = 1,  /* no valid otadata: factory, else ota_0 */
    ALOFT_BOOT_FALLBACK = 2, /* the chosen app failed verification: next one that passed */
};

struct aloft_boot {
    const struct aloft_flash *flash;
    struct aloft_part_table table;
    uint32_t table_offset;
    uint16_t chip;                  /* this device's chip id, or ALOFT_CHIP_ANY */
    bool rollback;                  /* app rollback enabled */
    const struct aloft_part *otadata; /* NULL when the table has none */
    const struct aloft_part *running; /* set by aloft_boot_select */
    uint8_t why;
};

/* Read and validate the partition table at table_offset.
 * Returns 0 or a part/IO error. */
int aloft_boot_init(struct aloft_boot *b, const struct aloft_flash *f, uint32_t table_offset,
                    uint16_t chip, bool rollback);

/* Do what the second-stage bootloader does: with rollback on, every
 * PENDING_VERIFY entry becomes ABORTED and a NEW one becomes
 * PENDING_VERIFY; choose the app from otadata (factory or ota_0 without
 * it); verify it in full and, if it fails, try the others (down to factory,
 * then up). Sets b->running and b->why.
 * Returns 0, ALOFT_E_NOBOOT (nothing verifies) or ALOFT_E_IO. */
int aloft_boot_select(struct aloft_boot *b);

/* The otadata state of the running app: ALOFT_OTA_* or ALOFT_OTA_UNDEFINED
 * when the running app was not chosen by a valid entry (factory, default,
 * fallback). Negative on I/O error. */
int64_t aloft_boot_state(const struct aloft_boot *b);

/* App side, after its health check: the running app is good; cancels the
 * rollback. Idempotent. Returns 0 or ALOFT_E_IO. */
int aloft_boot_mark_valid(struct aloft_boot *b);

/* App side: the running app is bad. Marks its entry INVALID so the next boot
 * takes the previous app; the caller then restarts. Returns 0,
 * ALOFT_E_NOROLLBACK (no other app verifies), ALOFT_E_STATE (otadata did
 * not choose the running app: factory, default or fallback) or ALOFT_E_IO. */
int aloft_boot_mark_invalid(struct aloft_boot *b);

/* True when another app slot holds an image that verifies. */
bool aloft_boot_rollback_possible(const struct aloft_boot *b);

#endif
