/* aloft: a delta patch applied to the running image through the update
 * writer. The base is read from the running slot, the result written and
 * read back in the update slot; the running slot is never written. */
#include "aloft/delta.h"

#include "aloft/err.h"

static int du_read(void *ctx, uint32_t pos, void *buf, size_t len)
{
    struct aloft_delta_update *du = ctx;
    const struct aloft_part *run = du->b->running;
    uint32_t base = du->d.h.base_size;
    if (pos < base) {
        if (base > run->size)
            return ALOFT_E_BASE; /* the running slot cannot hold the base */
        return aloft_flash_read(du->b->flash, run->offset + pos, buf, len);
    }
    return aloft_flash_read(du->b->flash, du->u.target->offset + (pos - base), buf, len);
}

static int du_start(void *ctx, const struct aloft_delta_header *h, uint32_t from)
{
    struct aloft_delta_update *du = ctx;
    const struct aloft_part *t = du->target ? du->target : aloft_part_next_update(&du->b->table, du->b->running);
    if (t && h->result_size > t->size)
        return ALOFT_E_NOSPC; /* before anything is erased */
    return from ? aloft_update_resume(&du->u, du->b, du->target, from) : aloft_update_begin(&du->u, du->b, du->target);
}

static int du_write(void *ctx, const void *buf, size_t len)
{
    struct aloft_delta_update *du = ctx;
    return aloft_update_write(&du->u, buf, len);
}

static void bind(struct aloft_delta_update *du, struct aloft_boot *b, const struct aloft_part *target,
                 struct aloft_delta_io *io)
{
    du->b = b;
    du->target = target;
    du->u.state = 0;
    *io = (struct aloft_delta_io){du, du_read, du_start, du_write};
}

void aloft_delta_update_begin(struct aloft_delta_update *du, struct aloft_boot *b, const struct aloft_part *target)
{
    struct aloft_delta_io io;
    bind(du, b, target, &io);
    aloft_delta_begin(&du->d, &io);
}

void aloft_delta_update_resume(struct aloft_delta_update *du, struct aloft_boot *b, const struct aloft_part *target,
                               uint32_t ck_patch, uint32_t ck_out)
{
    struct aloft_delta_io io;
    bind(du, b, target, &io);
    aloft_delta_resume(&du->d, &io, ck_patch, ck_out);
}

int aloft_delta_update_write(struct aloft_delta_update *du, const void *data, size_t len)
{
    return aloft_delta_write(&du->d, data, len);
}

int aloft_delta_update_end(struct aloft_delta_update *du)
{
    int rc = aloft_delta_end(&du->d);
    return rc ? rc : aloft_update_end(&du->u);
}
