/* aloft host: the delta patches between firmware images that aloftd makes
 * (migration 10). A patch worth sending is a stored file like a release's,
 * so it is served, cached and shared between instances the same way. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"

static void copy(char *out, size_t cap, const char *in)
{
    snprintf(out, cap, "%s", in);
}

/* A row of DELTA_COLS (store_schema.c). */
static int read_delta(const char *const *c, struct aloft_store_delta *d)
{
    memset(d, 0, sizeof *d);
    copy(d->base, sizeof d->base, c[0]);
    copy(d->target, sizeof d->target, c[1]);
    d->worth = strtol(c[2], NULL, 10) != 0;
    copy(d->sha256, sizeof d->sha256, c[3]);
    copy(d->md5, sizeof d->md5, c[4]);
    d->size = strtoull(c[5], NULL, 10);
    d->target_size = strtoull(c[6], NULL, 10);
    d->created_at = strtoll(c[7], NULL, 10);
    return 0;
}

struct one {
    struct aloft_store_delta *d;
    bool found;
};

static int read_one(void *ctx, int n, const char *const *cols)
{
    struct one *o = ctx;
    if (n != 8)
        return ALOFT_E_IO;
    o->found = true;
    return read_delta(cols, o->d);
}

int aloft_store_delta_get(struct aloft_store *s, const char *base, const char *target, struct aloft_store_delta *d)
{
    struct one o = {d, false};
    int rc = aloft_store_exec(s, Q_DELTA_GET, read_one, &o, NULL, "ss", base, target);
    return rc ? rc : o.found ? 0 : ALOFT_E_NOTFOUND;
}

static int add_body(void *ctx, struct aloft_store_tx *t)
{
    const struct aloft_store_delta *d = ctx;
    int64_t now = (int64_t)time(NULL);
    int rc = d->worth ? aloft_store_tx_exec(t, Q_BLOB_ADD, NULL, NULL, NULL, "sisi", d->sha256, (int64_t)d->size,
                                            d->md5, now)
                      : 0;
    return rc ? rc
              : aloft_store_tx_exec(t, Q_DELTA_ADD, NULL, NULL, NULL, "ssisiii", d->base, d->target,
                                    (int64_t)d->worth, d->worth ? d->sha256 : "", (int64_t)d->size,
                                    (int64_t)d->target_size, now);
}

int aloft_store_delta_add(struct aloft_store *s, const struct aloft_store_delta *d)
{
    return aloft_store_transaction(s, add_body, (void *)d);
}

struct each {
    aloft_store_delta_cb cb;
    void *ctx;
};

static int read_each(void *ctx, int n, const char *const *cols)
{
    struct each *e = ctx;
    struct aloft_store_delta d;
    if (n != 8)
        return ALOFT_E_IO;
    read_delta(cols, &d);
    return e->cb(e->ctx, &d);
}

int aloft_store_deltas(struct aloft_store *s, const char *target, aloft_store_delta_cb cb, void *ctx)
{
    struct each e = {cb, ctx};
    return aloft_store_exec(s, Q_DELTAS_TO, read_each, &e, NULL, "s", target);
}

int aloft_store_release_has(struct aloft_store *s, const char *platform, const char *sha256, bool *has)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    *has = false;
    if (aloft_store_key_of(platform, key))
        return 0;
    struct aloft_store_ints x = {{0}, 0};
    int rc = aloft_store_exec(s, Q_RELEASE_HAS_SHA, aloft_store_read_ints, &x, NULL, "ss", key, sha256);
    *has = rc == 0 && x.v[0] > 0;
    return rc;
}
