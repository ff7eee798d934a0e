/* aloft fuzz: do two partition tables hold the same entries? (the round-trip
 * property of fuzz_part and fuzz_part_csv) */
#ifndef ALOFT_FUZZ_SAME_TABLE_H
#define ALOFT_FUZZ_SAME_TABLE_H

#include <stdbool.h>
#include <string.h>

#include "aloft/part.h"

static inline bool same_table(const struct aloft_part_table *a, const struct aloft_part_table *b)
{
    if (a->count != b->count || a->md5 != b->md5)
        return false;
    for (uint32_t i = 0; i < a->count; i++) {
        const struct aloft_part *p = &a->p[i], *q = &b->p[i];
        if (p->type != q->type || p->subtype != q->subtype || p->offset != q->offset || p->size != q->size ||
            p->flags != q->flags || memcmp(p->label, q->label, sizeof p->label))
            return false;
    }
    return true;
}

#endif
