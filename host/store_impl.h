/* aloft host: what the database backends share (not for the programs). */
#ifndef ALOFT_HOST_STORE_IMPL_H
#define ALOFT_HOST_STORE_IMPL_H

#include <stddef.h>

#include "store.h"

/* The schema, one migration per entry, in order: migration i takes the
 * schema from version i to i + 1. Portable SQL, run as one script each. */
extern const char *const aloft_store_migrations[];
extern const size_t aloft_store_migration_count;

/* Which of n releases (in upload order) is current when nothing is pinned:
 * for firmware the latest upload among those no other release is newer
 * than; for frontends the latest upload. Returns its index (n > 0). */
size_t aloft_store_pick_current(const struct aloft_store_release *r, size_t n, enum aloft_store_kind kind);

#endif
