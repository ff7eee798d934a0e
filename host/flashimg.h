/* aloft host: lay out a whole flash image, as `idf.py flash` would leave a
 * new device: partition table, initial (erased) otadata, one app. */
#ifndef ALOFT_HOST_FLASHIMG_H
#define ALOFT_HOST_FLASHIMG_H

#include <stddef.h>
#include <stdint.h>

#include "aloft/part.h"
#include "aloft/port.h"

/* Write table t at table_offset, erase otadata, and put app (an ESP image)
 * into the factory slot, else ota_0. The app must fit (ALOFT_E_NOSPC) and
 * there must be a slot (ALOFT_E_NOTFOUND). Returns 0 or an aloft error. */
int aloft_flashimg_init(const struct aloft_flash *f, const struct aloft_part_table *t, uint32_t table_offset,
                        const uint8_t *app, size_t len);

/* The slot aloft_flashimg_init puts the app in, or NULL. */
const struct aloft_part *aloft_flashimg_app_slot(const struct aloft_part_table *t);

#endif
