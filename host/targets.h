/* aloft host: device targets as users write them: host, host:port,
 * CIDR range (127.0.0.0/28) or @FILE (one target per line, # comments). */
#ifndef ALOFT_HOST_TARGETS_H
#define ALOFT_HOST_TARGETS_H

#include <stdbool.h>
#include <stddef.h>

#define ALOFT_TARGETS_MAX 4096 /* addresses one command may probe: a /20 */

struct aloft_target {
    char addr[80];   /* "host:port" */
    bool from_range; /* found by scanning a range: silence is not an error */
};

struct aloft_targets {
    struct aloft_target *t;
    size_t n, cap;
};

/* Add the targets words describe, with default_port where none is given.
 * Duplicates are dropped. Returns 0, or -1 with a message in err. */
int aloft_targets_add(struct aloft_targets *ts, const char *word, unsigned default_port, char *err, size_t errlen);

void aloft_targets_free(struct aloft_targets *ts);

#endif
