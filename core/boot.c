/* aloft: the bootloader's choice of app and rollback, and the app-side
 * calls, as ESP-IDF does them with CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE.
 * State changes rewrite one otadata copy in place (erase, program): a cut
 * in between leaves that copy invalid, so the other copy (the previous
 * choice) or the default wins — an old or a new app, never none. */
#include "aloft/boot.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/otadata.h"

int aloft_boot_init(struct aloft_boot *b, const struct aloft_flash *f, uint32_t table_offset, uint16_t chip,
                    bool rollback)
{
    uint8_t raw[ALOFT_PART_TABLE_BYTES];
    memset(b, 0, sizeof *b);
    b->flash = f;
    b->table_offset = table_offset;
    b->chip = chip;
    b->rollback = rollback;
    int rc = aloft_flash_read(f, table_offset, raw, sizeof raw);
    if (rc == 0)
        rc = aloft_part_parse(&b->table, raw, sizeof raw, table_offset, f->size);
    if (rc)
        return rc;
    b->otadata = aloft_part_find(&b->table, ALOFT_PART_DATA, ALOFT_PART_OTADATA);
    return 0;
}

static bool verifies(const struct aloft_boot *b, const struct aloft_part *p)
{
    return p && aloft_image_verify_flash(b->flash, p->offset, p->size, b->chip, NULL) == 0;
}

/* Ota slots whose newest entry says INVALID or ABORTED: the app there was
 * rejected, so the fallback search tries them last. */
static uint32_t rejected_slots(const struct aloft_otadata *od, uint32_t n)
{
    uint32_t mask = 0;
    for (int i = 0; i < 2; i++) {
        const struct aloft_otadata_entry *e = &od->e[i], *o = &od->e[!i];
        if (e->seq == 0xFFFFFFFFu || e->crc != aloft_otadata_crc(e->seq))
            continue;
        bool newest = o->seq == 0xFFFFFFFFu || o->crc != aloft_otadata_crc(o->seq) ||
                      aloft_otadata_slot(o, n) != aloft_otadata_slot(e, n) || e->seq >= o->seq;
        if (newest && (e->state == ALOFT_OTA_INVALID || e->state == ALOFT_OTA_ABORTED))
            mask |= 1u << aloft_otadata_slot(e, n);
    }
    return mask;
}

/* The app at position i of the bootloader's order: -1 factory, 0..n-1 ota. */
static const struct aloft_part *app_at(const struct aloft_boot *b, int i)
{
    return i < 0 ? aloft_part_find(&b->table, ALOFT_PART_APP, ALOFT_PART_FACTORY)
                 : aloft_part_ota(&b->table, (uint32_t)i);
}

/* ESP-IDF's order after the chosen app fails: down to factory, then up,
 * then the test app. Apps rejected by otadata come only after all others. */
static const struct aloft_part *fallback(const struct aloft_boot *b, int start, uint32_t rejected)
{
    int n = (int)aloft_part_ota_count(&b->table);
    for (int pass = 0; pass < 2; pass++) {
        for (int k = 1; k <= n; k++) {
            /* k-th candidate: start-1 ... -1 (factory), then start+1 ... n-1 */
            int i = k <= start + 1 ? start - k : k - 1;
            bool demoted = i >= 0 && (rejected >> i & 1);
            if (demoted != (pass == 1))
                continue;
            if (verifies(b, app_at(b, i)))
                return app_at(b, i);
        }
    }
    const struct aloft_part *test = aloft_part_find(&b->table, ALOFT_PART_APP, ALOFT_PART_TEST);
    return verifies(b, test) ? test : NULL;
}

int aloft_boot_select(struct aloft_boot *b)
{
    uint32_t n = aloft_part_ota_count(&b->table);
    struct aloft_otadata od;
    int start = -1;
    uint32_t rejected = 0;
    b->running = NULL;
    b->why = ALOFT_BOOT_DEFAULT;
    if (b->otadata && n) {
        int rc = aloft_otadata_read(b->flash, b->otadata, &od);
        if (rc)
            return rc;
        for (int i = 0; b->rollback && i < 2; i++) {
            /* An app that never confirmed itself before this reset failed. */
            if (aloft_otadata_entry_valid(&od.e[i]) && od.e[i].state == ALOFT_OTA_PENDING_VERIFY &&
                (rc = aloft_otadata_write_state(b->flash, b->otadata, &od, i, ALOFT_OTA_ABORTED)))
                return rc;
        }
        int active = aloft_otadata_active(&od);
        if (active >= 0) {
            start = (int)aloft_otadata_slot(&od.e[active], n);
            b->why = ALOFT_BOOT_OTADATA;
            /* A new app gets one boot to confirm itself. */
            if (b->rollback && od.e[active].state == ALOFT_OTA_NEW &&
                (rc = aloft_otadata_write_state(b->flash, b->otadata, &od, active, ALOFT_OTA_PENDING_VERIFY)))
                return rc;
        }
        rejected = rejected_slots(&od, n);
    }
    const struct aloft_part *p = app_at(b, start);
    if (!p && start < 0) { /* no factory: ota_0 */
        start = 0;
        p = app_at(b, 0);
    }
    if (verifies(b, p)) {
        b->running = p;
        return 0;
    }
    b->running = fallback(b, start, rejected);
    b->why = ALOFT_BOOT_FALLBACK;
    return b->running ? 0 : ALOFT_E_NOBOOT;
}

/* The copy that chose the running app, or -1. */
static int running_entry(const struct aloft_boot *b, struct aloft_otadata *od, int *err)
{
    *err = 0;
    if (!b->running || !b->otadata || b->why != ALOFT_BOOT_OTADATA)
        return -1;
    if ((*err = aloft_otadata_read(b->flash, b->otadata, od)))
        return -1;
    int active = aloft_otadata_active(od);
    uint32_t n = aloft_part_ota_count(&b->table);
    if (active < 0 || aloft_part_ota(&b->table, aloft_otadata_slot(&od->e[active], n)) != b->running)
        return -1;
    return active;
}

int64_t aloft_boot_state(const struct aloft_boot *b)
{
    struct aloft_otadata od;
    int err, i = running_entry(b, &od, &err);
    if (err)
        return err;
    return i < 0 ? ALOFT_OTA_UNDEFINED : od.e[i].state;
}

int aloft_boot_mark_valid(struct aloft_boot *b)
{
    struct aloft_otadata od;
    int err, i = running_entry(b, &od, &err);
    if (err || i < 0 || od.e[i].state == ALOFT_OTA_VALID)
        return err;
    return aloft_otadata_write_state(b->flash, b->otadata, &od, i, ALOFT_OTA_VALID);
}

int aloft_boot_mark_invalid(struct aloft_boot *b)
{
    if (!aloft_boot_rollback_possible(b))
        return ALOFT_E_NOROLLBACK;
    struct aloft_otadata od;
    int err, i = running_entry(b, &od, &err);
    if (err)
        return err;
    if (i < 0) /* not chosen by otadata (factory, fallback): nothing to mark */
        return ALOFT_E_STATE;
    return aloft_otadata_write_state(b->flash, b->otadata, &od, i, ALOFT_OTA_INVALID);
}

bool aloft_boot_rollback_possible(const struct aloft_boot *b)
{
    int n = (int)aloft_part_ota_count(&b->table);
    for (int i = -1; i < n; i++) {
        const struct aloft_part *p = app_at(b, i);
        if (p && p != b->running && verifies(b, p))
            return true;
    }
    return false;
}
