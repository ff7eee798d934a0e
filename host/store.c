/* aloft host: store logic that does not depend on the database backend,
 * and the choice of backend by the database URL's scheme. */
#include "store_impl.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "semver.h"

bool aloft_store_name_ok(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > ALOFT_STORE_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' || c == '_' ||
              c == '-'))
            return false;
    }
    return true;
}

const char *aloft_store_kind_name(enum aloft_store_kind kind)
{
    return kind == ALOFT_STORE_FRONTEND ? "frontend" : "firmware";
}

size_t aloft_store_pick_current(const struct aloft_store_release *r, size_t n, enum aloft_store_kind kind)
{
    if (kind == ALOFT_STORE_FRONTEND)
        return n - 1;
    /* The newest: a release no other is newer than. Versions that cannot be
     * ordered leave several such; then the operator's latest upload wins. */
    for (size_t i = n; i-- > 0;) {
        struct aloft_semver vi;
        bool parsed = aloft_semver_parse(r[i].version, &vi) == 0;
        bool beaten = false;
        for (size_t j = 0; j < n && parsed && !beaten; j++) {
            struct aloft_semver vj;
            beaten = j != i && aloft_semver_parse(r[j].version, &vj) == 0 &&
                     aloft_semver_order(&vj, &vi) == ALOFT_SEMVER_NEWER;
        }
        if (!beaten)
            return i;
    }
    return n - 1;
}

void aloft_store_key(const char *name, char *out, size_t cap)
{
    size_t i = 0;
    for (; name[i] && i + 1 < cap; i++)
        out[i] = (char)(name[i] >= 'A' && name[i] <= 'Z' ? name[i] - 'A' + 'a' : name[i]);
    out[i] = 0;
}

_Thread_local char aloft_store_last_error[ALOFT_STORE_ERROR_MAX];

const char *aloft_store_error(void)
{
    return aloft_store_last_error[0] ? aloft_store_last_error : "no database error";
}

/* One backend is open: the other pointer is NULL. */
struct aloft_store {
    struct aloft_store_sqlite *sqlite;
    struct aloft_store_pg *pg;
};

#define DISPATCH(fn, ...) \
    (s->pg ? aloft_store_pg_##fn(s->pg, __VA_ARGS__) : aloft_store_sqlite_##fn(s->sqlite, __VA_ARGS__))

int aloft_store_open(struct aloft_store **out, const char *url, char *err, size_t errlen)
{
    *out = NULL;
    bool pg = !strncmp(url, "postgres://", 11) || !strncmp(url, "postgresql://", 13);
    if (!pg && (strncmp(url, "sqlite:", 7) || !url[7])) {
        snprintf(err, errlen, "%s: give the database as sqlite:PATH or postgres://[USER@]HOST[:PORT]/DBNAME", url);
        return ALOFT_E_INVAL;
    }
    struct aloft_store *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return ALOFT_E_IO;
    }
    int rc = pg ? aloft_store_pg_open(&s->pg, url, err, errlen)
                : aloft_store_sqlite_open(&s->sqlite, url + 7, err, errlen);
    if (rc) {
        free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void aloft_store_close(struct aloft_store *s)
{
    if (!s)
        return;
    if (s->pg)
        aloft_store_pg_close(s->pg);
    else
        aloft_store_sqlite_close(s->sqlite);
    free(s);
}

int aloft_store_schema_version(struct aloft_store *s, int *version)
{
    return DISPATCH(schema_version, version);
}

int aloft_store_token_count(struct aloft_store *s, uint64_t *n)
{
    return DISPATCH(token_count, n);
}

int aloft_store_token_add(struct aloft_store *s, const uint8_t digest[32])
{
    return DISPATCH(token_add, digest);
}

int aloft_store_token_check(struct aloft_store *s, const uint8_t digest[32], bool *ok)
{
    return DISPATCH(token_check, digest, ok);
}

int aloft_store_platform_get(struct aloft_store *s, const char *name, bool counts, struct aloft_store_platform *p)
{
    return DISPATCH(platform_get, name, counts, p);
}

int aloft_store_platforms(struct aloft_store *s, aloft_store_platform_cb cb, void *ctx)
{
    return DISPATCH(platforms, cb, ctx);
}

int aloft_store_release_add(struct aloft_store *s, struct aloft_store_release *r, bool *existed)
{
    return DISPATCH(release_add, r, existed);
}

int aloft_store_release_get(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                            const char *version, struct aloft_store_release *r)
{
    return DISPATCH(release_get, platform, kind, version, r);
}

int aloft_store_releases(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                         aloft_store_release_cb cb, void *ctx)
{
    return DISPATCH(releases, platform, kind, cb, ctx);
}

int aloft_store_current(struct aloft_store *s, const char *platform, enum aloft_store_kind kind,
                        struct aloft_store_release *r)
{
    return DISPATCH(current, platform, kind, r);
}

int aloft_store_pin(struct aloft_store *s, const char *platform, enum aloft_store_kind kind, const char *version)
{
    return DISPATCH(pin, platform, kind, version);
}

int aloft_store_blob_get(struct aloft_store *s, const char *sha256, uint64_t *size)
{
    return DISPATCH(blob_get, sha256, size);
}

int aloft_store_checkin(struct aloft_store *s, const struct aloft_store_device *d, int64_t now)
{
    return DISPATCH(checkin, d, now);
}

int aloft_store_devices(struct aloft_store *s, const char *platform, aloft_store_device_cb cb, void *ctx)
{
    return DISPATCH(devices, platform, cb, ctx);
}
