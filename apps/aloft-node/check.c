/* aloft-node: scheduled checks against aloftd's GET /update (PROTOCOLS.md
 * §3.1): at boot, then every --check-every seconds ±10 %. The agent builds
 * each request (aloft_pull_check), installs a 200's body and picks the
 * interval; this runs them. */
#include <stdlib.h>
#include <time.h>

#include "node.h"

struct check {
    struct node *n;
    char md5[33], sha256[65];
};

static void check(struct check *k, bool frontend)
{
    struct node *n = k->n;
    struct aloft_pull *job = node_pull_new();
    if (!job)
        return;
    pthread_mutex_lock(&n->lock);
    int rc = aloft_pull_check(&n->agent, job, frontend, k->md5, k->sha256);
    pthread_mutex_unlock(&n->lock);
    if (rc == 0)
        node_pull_run(n, job);
    free(job);
}

static void *check_thread(void *arg)
{
    struct check *k = arg;
    struct node *n = k->n;
    for (;;) {
        check(k, false);
        if (n->agent.www[0])
            check(k, true);
        if (!n->cfg.check_every_s)
            break;
        pthread_mutex_lock(&n->lock);
        uint32_t wait_ms = aloft_pull_check_interval_ms(&n->agent, n->cfg.check_every_s);
        pthread_mutex_unlock(&n->lock);
        struct timespec ts = {wait_ms / 1000, (long)(wait_ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
    free(k);
    return NULL;
}

int node_check_start(struct node *n)
{
    struct check *k = calloc(1, sizeof *k);
    if (!k)
        return -1;
    k->n = n;
    pthread_mutex_lock(&n->lock);
    aloft_pull_describe(&n->agent, k->md5, k->sha256);
    pthread_mutex_unlock(&n->lock);
    pthread_t t;
    if (pthread_create(&t, NULL, check_thread, k)) {
        free(k);
        return -1;
    }
    pthread_detach(t);
    if (n->cfg.check_every_s)
        node_log(n, "check: asking %s for updates at boot and every %u s (±10 %%)", n->cfg.server, n->cfg.check_every_s);
    else
        node_log(n, "check: asking %s for updates at boot", n->cfg.server);
    return 0;
}
