/* aloft: the update writer. Every byte is verified before it is written,
 * the slot is erased whole first, and otadata is the last thing touched. */
#include "aloft/update.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/otadata.h"

enum { U_IDLE, U_WRITING, U_VERIFIED, U_FAILED };

/* Position of p among the ota slots: what otadata's seq counts in. */
static int slot_of(const struct aloft_part_table *t, const struct aloft_part *p)
{
    for (uint32_t i = 0; i < aloft_part_ota_count(t); i++)
        if (aloft_part_ota(t, i) == p)
            return (int)i;
    return -1;
}

/* What begin and resume share: pick the target and refuse what may not be updated. */
static int prepare(struct aloft_update *u, struct aloft_boot *b, const struct aloft_part *target)
{
    if (!u || !b || !b->running)
        return ALOFT_E_INVAL;
    u->state = U_IDLE;
    u->boot = b;
    u->written = 0;
    u->target = target ? target : aloft_part_next_update(&b->table, b->running);
    if (!u->target)
        return ALOFT_E_NOTFOUND;
    if (slot_of(&b->table, u->target) < 0)
        return ALOFT_E_INVAL;
    if (u->target->offset == b->running->offset)
        return ALOFT_E_RUNNING;
    /* A new update over an unconfirmed app would leave no known-good one. */
    int64_t st = aloft_boot_state(b);
    if (st < 0)
        return (int)st;
    if (st == ALOFT_OTA_PENDING_VERIFY)
        return ALOFT_E_STATE;
    return 0;
}

int aloft_update_begin(struct aloft_update *u, struct aloft_boot *b, const struct aloft_part *target)
{
    int rc = prepare(u, b, target);
    if (rc)
        return rc;
    rc = aloft_flash_erase(b->flash, u->target->offset, u->target->size);
    if (rc) {
        u->state = U_FAILED;
        return rc;
    }
    aloft_image_begin(&u->v, b->chip, u->target->size);
    u->state = U_WRITING;
    return 0;
}

int aloft_update_resume(struct aloft_update *u, struct aloft_boot *b, const struct aloft_part *target,
                        uint32_t written)
{
    int rc = prepare(u, b, target);
    if (rc)
        return rc;
    const struct aloft_part *t = u->target;
    if (written > t->size || written % b->flash->sector_size)
        return ALOFT_E_INVAL;
    aloft_image_begin(&u->v, b->chip, t->size);
    uint8_t buf[128]; /* small: this runs on the update path's stack */
    for (uint32_t pos = 0; pos < written && rc == 0;) {
        uint32_t n = written - pos < sizeof buf ? written - pos : (uint32_t)sizeof buf;
        rc = aloft_flash_read(b->flash, t->offset + pos, buf, n);
        if (rc == 0)
            rc = aloft_image_feed(&u->v, buf, n);
        pos += n;
    }
    if (rc == 0)
        rc = aloft_flash_erase(b->flash, t->offset + written, t->size - written);
    if (rc) {
        u->state = U_FAILED;
        return rc;
    }
    u->written = written;
    u->state = U_WRITING;
    return 0;
}

int aloft_update_write(struct aloft_update *u, const void *data, size_t len)
{
    if (!u || u->state != U_WRITING)
        return ALOFT_E_STATE;
    int rc = aloft_image_feed(&u->v, data, len);
    if (rc == 0 && len > u->target->size - u->written)
        rc = ALOFT_E_NOSPC;
    if (rc == 0)
        rc = aloft_flash_write(u->boot->flash, u->target->offset + u->written, data, len);
    if (rc) {
        u->state = U_FAILED;
        return rc;
    }
    u->written += (uint32_t)len;
    return 0;
}

int aloft_update_end(struct aloft_update *u)
{
    if (!u || u->state != U_WRITING)
        return ALOFT_E_STATE;
    int rc = aloft_image_end(&u->v);
    u->state = rc ? U_FAILED : U_VERIFIED;
    return rc;
}

int aloft_update_set_boot(struct aloft_update *u)
{
    if (!u || u->state != U_VERIFIED)
        return ALOFT_E_STATE;
    struct aloft_boot *b = u->boot;
    struct aloft_otadata od;
    if (!b->otadata)
        return ALOFT_E_NOTFOUND;
    int rc = aloft_otadata_read(b->flash, b->otadata, &od);
    if (rc == 0)
        rc = aloft_otadata_select(b->flash, b->otadata, &od, (uint32_t)slot_of(&b->table, u->target),
                                  aloft_part_ota_count(&b->table), b->rollback);
    u->state = rc ? U_FAILED : U_IDLE;
    return rc;
}

void aloft_update_abort(struct aloft_update *u)
{
    if (u)
        u->state = U_IDLE;
}
