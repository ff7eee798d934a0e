/* aloftd: delta patches for /update, made in the background. A check-in
 * that says which image the device runs (X-Aloft-Delta) and that is offered
 * a release asks for the patch between the two; until it exists the image
 * is sent. One worker thread makes patches from a short queue, one job per
 * pair at a time, never on a request's path: it makes a patch only from an
 * image that is an earlier firmware release of the platform, with
 * host/delta.c, and records what came of it (store_deltas.c). A patch of
 * 80 % of the image or more is not worth the device's extra work (as aloft
 * deploy decides): it is remembered, and the image is sent. A patch worth
 * sending is stored like a release's file (firmware/<sha256>.bin, and in
 * the database on PostgreSQL), so every instance serves it. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloftd.h"
#include "delta.h"
#include "file.h"
#include "hex.h"

#define QUEUE_MAX 16 /* pairs waiting; more are dropped (asked for again at the next check-in) */

struct job {
    char platform[ALOFT_STORE_NAME_MAX + 1];
    char base[65], target[65];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t wake = PTHREAD_COND_INITIALIZER;
static struct job queue[QUEUE_MAX], current;
static size_t queued;
static bool busy, running, stopping;
static pthread_t worker;
static struct aloftd *server;

static bool same(const struct job *j, const char *base, const char *target)
{
    return !strcmp(j->base, base) && !strcmp(j->target, target);
}

void aloftd_deltas_want(const char *platform, const char *base, const struct aloft_store_release *target)
{
    pthread_mutex_lock(&lock);
    bool known = busy && same(&current, base, target->sha256);
    for (size_t i = 0; i < queued && !known; i++)
        known = same(&queue[i], base, target->sha256);
    if (!known && running && !stopping && queued < QUEUE_MAX) {
        struct job *j = &queue[queued++];
        snprintf(j->platform, sizeof j->platform, "%s", platform);
        snprintf(j->base, sizeof j->base, "%s", base);
        snprintf(j->target, sizeof j->target, "%s", target->sha256);
        pthread_cond_signal(&wake);
    }
    pthread_mutex_unlock(&lock);
}

/* A stored file, taken from the database first when this instance lacks
 * it, checked against its name. NULL (logged) when it cannot be had. */
static uint8_t *load(struct aloftd *d, const char *sha256, size_t *len)
{
    char path[4300], got[65];
    uint8_t *data = NULL;
    uint64_t size;
    aloftd_blob_path(d, sha256, path, sizeof path);
    if (aloft_file_read(path, &data, len) &&
        (aloft_store_blob_get(d->store, sha256, &size) || aloftd_file_fetch(d, sha256, size) ||
         aloft_file_read(path, &data, len))) {
        aloftd_log("delta: cannot read the stored file %s", sha256);
        return NULL;
    }
    aloft_sha256_hex(data, *len, got);
    if (strcmp(got, sha256)) {
        aloftd_log("delta: the stored file %s is damaged (its SHA-256 is %s); no patch from or to it", sha256, got);
        free(data);
        return NULL;
    }
    return data;
}

/* The patch file into firmware/ (and the database when files are shared). */
static int keep(struct aloftd *d, const uint8_t *patch, size_t len, struct aloft_store_delta *dl)
{
    char path[4300];
    uint8_t md5[16];
    struct aloft_md5 m;
    aloft_sha256_hex(patch, len, dl->sha256);
    aloft_md5_init(&m);
    aloft_md5_update(&m, patch, len);
    aloft_md5_final(&m, md5);
    aloft_hex(md5, sizeof md5, dl->md5);
    aloftd_blob_path(d, dl->sha256, path, sizeof path);
    if (aloft_file_write(path, patch, len)) {
        aloftd_log("delta: cannot write %s", path);
        return ALOFT_E_IO;
    }
    if (aloft_store_files_shared(d->store) && aloft_store_file_put(d->store, dl->sha256, patch, len)) {
        aloftd_log("delta: cannot store the patch %s in the database: %s", dl->sha256, aloft_store_error());
        return ALOFT_E_IO;
    }
    return 0;
}

static void make(struct aloftd *d, const struct job *j)
{
    struct aloft_store_delta dl;
    bool has = false;
    if (aloft_store_delta_get(d->store, j->base, j->target, &dl) == 0)
        return; /* another instance made it meanwhile */
    if (aloft_store_release_has(d->store, j->platform, j->base, &has) || !has)
        return; /* not an image of this platform this server has: the device gets the image */
    size_t blen = 0, tlen = 0, plen = 0;
    uint8_t *base = load(d, j->base, &blen), *target = base ? load(d, j->target, &tlen) : NULL, *patch = NULL;
    int rc = target ? aloft_delta_make(base, blen, target, tlen, 0, NULL, NULL, &patch, &plen) : ALOFT_E_IO;
    free(base);
    free(target);
    if (rc) {
        if (rc != ALOFT_E_IO)
            aloftd_log("delta: cannot make the patch %.12s -> %.12s: %s", j->base, j->target, aloft_strerror(rc));
        return;
    }
    memset(&dl, 0, sizeof dl);
    snprintf(dl.base, sizeof dl.base, "%s", j->base);
    snprintf(dl.target, sizeof dl.target, "%s", j->target);
    dl.size = plen;
    dl.target_size = tlen;
    dl.worth = (uint64_t)plen * 100 < (uint64_t)tlen * 80;
    rc = dl.worth ? keep(d, patch, plen, &dl) : 0;
    free(patch);
    if (rc == 0 && aloft_store_delta_add(d->store, &dl)) {
        aloftd_log("delta: cannot record the patch %.12s -> %.12s: %s", j->base, j->target, aloft_store_error());
        rc = ALOFT_E_IO;
    }
    if (rc)
        return;
    aloftd_metrics_patch_made(dl.worth);
    aloftd_log("delta: %s %.12s -> %.12s (%s): %zu bytes, %.1f%% of the image%s", dl.worth ? "made" : "not worth it:",
               j->base, j->target, j->platform, plen, tlen ? 100.0 * (double)plen / (double)tlen : 0.0,
               dl.worth ? "" : "; the image is sent");
}

static void *run(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&lock);
    for (;;) {
        while (!queued && !stopping)
            pthread_cond_wait(&wake, &lock);
        if (stopping)
            break;
        current = queue[0];
        memmove(queue, queue + 1, --queued * sizeof *queue);
        busy = true;
        pthread_mutex_unlock(&lock);
        make(server, &current);
        pthread_mutex_lock(&lock);
        busy = false;
    }
    pthread_mutex_unlock(&lock);
    return NULL;
}

int aloftd_deltas_start(struct aloftd *d)
{
    server = d;
    stopping = false;
    if (pthread_create(&worker, NULL, run, NULL)) {
        aloftd_log("delta: cannot start the patch worker; devices get whole images");
        return -1;
    }
    pthread_mutex_lock(&lock);
    running = true;
    pthread_mutex_unlock(&lock);
    return 0;
}

void aloftd_deltas_stop(void)
{
    pthread_mutex_lock(&lock);
    bool was = running;
    running = false;
    stopping = true;
    queued = 0;
    pthread_cond_broadcast(&wake);
    pthread_mutex_unlock(&lock);
    if (was)
        pthread_join(worker, NULL); /* a patch being made is finished first */
}
