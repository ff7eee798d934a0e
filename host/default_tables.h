/* aloft host: the partition tables aloft ships (partitions/aloft-*.csv). */
#ifndef ALOFT_HOST_DEFAULT_TABLES_H
#define ALOFT_HOST_DEFAULT_TABLES_H

#include <stdint.h>

/* CSV text of the default table for a 4, 8 or 16 MB flash, or NULL. */
const char *aloft_default_table(uint32_t flash_size);

#endif
