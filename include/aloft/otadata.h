/* aloft: otadata, the two select entries that say which app boots
 * (FORMATS.md §2). Byte-compatible with ESP-IDF's esp_ota_select_entry_t. */
#ifndef ALOFT_OTADATA_H
#define ALOFT_OTADATA_H

#include <stdbool.h>
#include <stdint.h>

#include "aloft/part.h"
#include "aloft/port.h"

enum aloft_ota_state {
    ALOFT_OTA_NEW = 0,
    ALOFT_OTA_PENDING_VERIFY = 1,
    ALOFT_OTA_VALID = 2,
    ALOFT_OTA_INVALID = 3,
    ALOFT_OTA_ABORTED = 4,
    ALOFT_OTA_UNDEFINED = 0xFFFFFFFFu,
};

struct aloft_otadata_entry {
    uint32_t seq;
    uint8_t seq_label[20];
    uint32_t state;
    uint32_t crc;
};
_Static_assert(sizeof(struct aloft_otadata_entry) == 32, "esp_ota_select_entry_t is 32 bytes");

#define ALOFT_OTADATA_SIZE 0x2000u
#define ALOFT_OTADATA_COPY 0x1000u /* second copy's offset: its own sector */

struct aloft_otadata {
    struct aloft_otadata_entry e[2];
};

/* CRC of a select entry: binascii.crc32(seq_le, 0xFFFFFFFF). */
uint32_t aloft_otadata_crc(uint32_t seq);

/* An entry counts when seq is set, its CRC matches and it is neither
 * INVALID nor ABORTED. */
bool aloft_otadata_entry_valid(const struct aloft_otadata_entry *e);

/* Read both copies. Returns 0 or ALOFT_E_IO / ALOFT_E_INVAL (not 0x2000 bytes). */
int aloft_otadata_read(const struct aloft_flash *f, const struct aloft_part *p,
                       struct aloft_otadata *od);

/* Index (0/1) of the copy that wins (valid, largest seq; copy 0 on a tie),
 * or -1 when neither is valid. */
int aloft_otadata_active(const struct aloft_otadata *od);

/* Ota slot an entry selects: (seq - 1) % n_slots. */
uint32_t aloft_otadata_slot(const struct aloft_otadata_entry *e, uint32_t n_slots);

/* Make ota slot `slot` boot next, leaving otadata exactly as ESP-IDF's
 * esp_ota_set_boot_partition does: the smallest seq not below the active
 * one that maps to slot (the active seq itself when it names slot), written
 * into the other copy (erase its sector, program 32 bytes; its label bytes
 * kept), so a power cut leaves the old choice intact. State NEW when
 * rollback is on, else UNDEFINED. Updates *od. Returns 0, ALOFT_E_INVAL,
 * ALOFT_E_STATE (the counter is exhausted), ALOFT_E_IO. */
int aloft_otadata_select(const struct aloft_flash *f, const struct aloft_part *p,
                         struct aloft_otadata *od, uint32_t slot, uint32_t n_slots,
                         bool rollback);

/* Rewrite copy `i` with state (CRC recomputed), erasing its sector first, as
 * ESP-IDF's bootloader and esp_ota_ops do. Updates *od. Returns 0 or ALOFT_E_IO. */
int aloft_otadata_write_state(const struct aloft_flash *f, const struct aloft_part *p,
                              struct aloft_otadata *od, int i, uint32_t state);

/* "new", "pending_verify", "valid", "invalid", "aborted", "undefined", or
 * "unknown". */
const char *aloft_otadata_state_name(uint32_t state);

#endif
