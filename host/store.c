/* aloft host: store logic that does not depend on the database backend. */
#include "store_impl.h"

#include <string.h>

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
