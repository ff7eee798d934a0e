/* aloft host: lay out a whole flash image. */
#include "flashimg.h"

#include "aloft/err.h"

const struct aloft_part *aloft_flashimg_app_slot(const struct aloft_part_table *t)
{
    const struct aloft_part *p = aloft_part_find(t, ALOFT_PART_APP, ALOFT_PART_FACTORY);
    return p ? p : aloft_part_ota(t, 0);
}

int aloft_flashimg_init(const struct aloft_flash *f, const struct aloft_part_table *t, uint32_t table_offset,
                        const uint8_t *app, size_t len)
{
    const struct aloft_part *slot = aloft_flashimg_app_slot(t);
    if (!slot)
        return ALOFT_E_NOTFOUND;
    if (len > slot->size)
        return ALOFT_E_NOSPC;
    int rc = aloft_part_validate(t, table_offset, f->size);
    if (rc)
        return rc;
    uint8_t bin[ALOFT_PART_TABLE_BYTES];
    rc = aloft_part_build(t, bin, sizeof bin);
    if (rc < 0)
        return rc;
    rc = aloft_flash_erase(f, table_offset, f->sector_size);
    if (rc == 0)
        rc = aloft_flash_write(f, table_offset, bin, sizeof bin);
    const struct aloft_part *od = aloft_part_find(t, ALOFT_PART_DATA, ALOFT_PART_OTADATA);
    if (rc == 0 && od)
        rc = aloft_flash_erase(f, od->offset, od->size);
    if (rc == 0)
        rc = aloft_flash_erase(f, slot->offset, slot->size);
    if (rc == 0)
        rc = aloft_flash_write(f, slot->offset, app, len);
    return rc;
}
