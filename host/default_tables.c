/* aloft host: the partition tables aloft ships, embedded at build time. */
#include "default_tables.h"

#include <stddef.h>

extern const char aloft_embed_aloft_4mb_csv[], aloft_embed_aloft_8mb_csv[], aloft_embed_aloft_16mb_csv[];

const char *aloft_default_table(uint32_t flash_size)
{
    switch (flash_size) {
    case 4u << 20: return aloft_embed_aloft_4mb_csv;
    case 8u << 20: return aloft_embed_aloft_8mb_csv;
    case 16u << 20: return aloft_embed_aloft_16mb_csv;
    default: return NULL;
    }
}
