/* aloft: otadata, two select entries in two sectors (FORMATS.md §2). */
#include "aloft/otadata.h"
#include "bytes.h"

#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"

uint32_t aloft_otadata_crc(uint32_t seq)
{
    uint8_t b[4];
    aloft_put_le32(b, seq);
    return ~aloft_crc32(0, b, 4);
}

bool aloft_otadata_entry_valid(const struct aloft_otadata_entry *e)
{
    return e->seq != 0xFFFFFFFFu && e->crc == aloft_otadata_crc(e->seq) &&
           e->state != ALOFT_OTA_INVALID && e->state != ALOFT_OTA_ABORTED;
}

int aloft_otadata_read(const struct aloft_flash *f, const struct aloft_part *p, struct aloft_otadata *od)
{
    if (!p || p->size != ALOFT_OTADATA_SIZE)
        return ALOFT_E_INVAL;
    for (int i = 0; i < 2; i++) {
        uint8_t raw[32];
        int rc = aloft_flash_read(f, p->offset + (uint32_t)i * ALOFT_OTADATA_COPY, raw, sizeof raw);
        if (rc)
            return rc;
        /* Decode field by field: flash is little-endian whatever the host is. */
        od->e[i].seq = aloft_le32(raw);
        memcpy(od->e[i].seq_label, raw + 4, 20);
        od->e[i].state = aloft_le32(raw + 24);
        od->e[i].crc = aloft_le32(raw + 28);
    }
    return 0;
}

int aloft_otadata_active(const struct aloft_otadata *od)
{
    bool v0 = aloft_otadata_entry_valid(&od->e[0]), v1 = aloft_otadata_entry_valid(&od->e[1]);
    if (v0 && v1)
        return od->e[1].seq > od->e[0].seq ? 1 : 0;
    return v0 ? 0 : v1 ? 1 : -1;
}

uint32_t aloft_otadata_slot(const struct aloft_otadata_entry *e, uint32_t n_slots)
{
    return n_slots ? (e->seq - 1) % n_slots : 0;
}

static int write_copy(const struct aloft_flash *f, const struct aloft_part *p, const struct aloft_otadata_entry *e,
                      int i)
{
    uint8_t raw[32];
    aloft_put_le32(raw, e->seq);
    memcpy(raw + 4, e->seq_label, 20);
    aloft_put_le32(raw + 24, e->state);
    aloft_put_le32(raw + 28, e->crc);
    uint32_t addr = p->offset + (uint32_t)i * ALOFT_OTADATA_COPY;
    int rc = aloft_flash_erase(f, addr, ALOFT_OTADATA_COPY);
    return rc ? rc : aloft_flash_write(f, addr, raw, sizeof raw);
}

int aloft_otadata_select(const struct aloft_flash *f, const struct aloft_part *p, struct aloft_otadata *od,
                         uint32_t slot, uint32_t n_slots, bool rollback)
{
    if (!p || p->size != ALOFT_OTADATA_SIZE || slot >= n_slots)
        return ALOFT_E_INVAL;
    int active = aloft_otadata_active(od);
    /* As esp_ota_set_boot_partition computes it, so that the bootloader
     * reads exactly what ESP-IDF would have left: the smallest seq of the
     * form (slot + 1) % n + k * n that is not below the active one (equal
     * when the active entry names slot already). */
    uint32_t seq = slot + 1;
    if (active >= 0) {
        uint32_t cur = od->e[active].seq;
        seq = (slot + 1) % n_slots;
        if (cur > seq)
            seq += (cur - seq + n_slots - 1) / n_slots * n_slots;
        if (seq < cur || seq == 0xFFFFFFFFu) /* wrapped: the counter is exhausted */
            return ALOFT_E_STATE;
    }
    int next = active >= 0 ? !active : 0;
    /* the copy's label bytes stay as they were, as ESP-IDF rewrites them */
    struct aloft_otadata_entry e = od->e[next];
    e.seq = seq;
    e.state = rollback ? ALOFT_OTA_NEW : ALOFT_OTA_UNDEFINED;
    e.crc = aloft_otadata_crc(seq);
    int rc = write_copy(f, p, &e, next);
    if (rc == 0)
        od->e[next] = e;
    return rc;
}

int aloft_otadata_write_state(const struct aloft_flash *f, const struct aloft_part *p, struct aloft_otadata *od,
                              int i, uint32_t state)
{
    if (!p || p->size != ALOFT_OTADATA_SIZE || i < 0 || i > 1)
        return ALOFT_E_INVAL;
    struct aloft_otadata_entry e = od->e[i];
    e.state = state;
    e.crc = aloft_otadata_crc(e.seq);
    int rc = write_copy(f, p, &e, i);
    if (rc == 0)
        od->e[i] = e;
    return rc;
}

const char *aloft_otadata_state_name(uint32_t state)
{
    switch (state) {
    case ALOFT_OTA_NEW: return "new";
    case ALOFT_OTA_PENDING_VERIFY: return "pending_verify";
    case ALOFT_OTA_VALID: return "valid";
    case ALOFT_OTA_INVALID: return "invalid";
    case ALOFT_OTA_ABORTED: return "aborted";
    case ALOFT_OTA_UNDEFINED: return "undefined";
    default: return "unknown";
    }
}
