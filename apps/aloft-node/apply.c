/* aloft-node: the rules an update must pass whichever way it arrives
 * (pushed to /ota and /api/ota/frontend, or pulled by pull.c). */
#include <stdio.h>

#include "aloft/err.h"
#include "node.h"

bool node_secure_version_ok(const struct node *n, const struct aloft_image_info *in, char *why, size_t cap)
{
    /* anti-rollback: never go below the running image's secure_version */
    if (!in->has_desc || !n->app.has_desc || in->desc.secure_version >= n->app.desc.secure_version)
        return true;
    snprintf(why, cap, "secure_version %u is below the running image's %u", in->desc.secure_version,
             n->app.desc.secure_version);
    return false;
}

int node_www_commit(struct node *n, const struct aloft_part *slot)
{
    if (!node_www_valid(n, slot))
        return 1;
    return aloft_posix_kv_set(&n->kv, "www/slot", slot == n->www[1] ? "1" : "0", 1);
}
