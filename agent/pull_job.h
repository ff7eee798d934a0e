/* aloft agent (private): what the pull job (pull.c) shares with the
 * scheduled check that starts one (check.c). */
#ifndef ALOFT_AGENT_PULL_JOB_H
#define ALOFT_AGENT_PULL_JOB_H

#include <stddef.h>
#include <stdint.h>

#include "aloft/pull.h"

/* j->end */
enum { ALOFT_PULL_NONE, ALOFT_PULL_RUNNING, ALOFT_PULL_INSTALLED, ALOFT_PULL_NOTHING, ALOFT_PULL_FAILED };

/* A fresh job for r (NULL: an empty request). */
void aloft_pull_init(struct aloft_pull *j, const struct aloft_pull_req *r);

/* The slot j->r writes, or NULL with j->code and j->reason saying why
 * (no_frontend_slots, no_slot, pending_verify). */
const struct aloft_part *aloft_pull_target(struct aloft_agent *a, struct aloft_pull *j);

/* The update server's URL with path appended (one slash between). */
void aloft_pull_server_url(const struct aloft_agent *a, const char *path, char *out, size_t cap);

#endif
