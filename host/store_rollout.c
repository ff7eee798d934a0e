/* aloft host: staged rollouts in the store — a rollout's row and its
 * per-stage counters, the offers and outcomes of its devices (each changing
 * its stage's counters in the same transaction), and what this process
 * keeps so that a check-in during a rollout costs no database work: the
 * devices it knows were offered or settled, and the offers and successes
 * waiting to be written with the next batch of check-ins. */
#include "store_impl.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"

/* What this process knows of the devices offered a rollout (see
 * aloft_store_rollout_settle): (rollout, MAC) pairs, open-addressed,
 * emptied when three quarters full (they are then read again once). */
#define KNOWN_CAP 262144u
enum known { KNOWN_NOTHING, KNOWN_OFFERED, KNOWN_SETTLED };

struct known_entry {
    int64_t rollout; /* 0: empty */
    char mac[18];
    char state; /* enum known */
};

struct known_set {
    pthread_mutex_t lock;
    struct known_entry *e; /* KNOWN_CAP of them, allocated when first needed */
    size_t n;
};

/* Offers of a rollout's release and successes of the devices offered it,
 * recorded at the next write of the check-in queue rather than by the
 * request itself (aloft_store_rollout_offered, aloft_store_rollout_settle),
 * in their order. Never dropped: when full, the request writes itself. */
#define SQ_CAP 65536

struct settle_item {
    int64_t rollout;
    int64_t stage; /* an offer in this stage; -1: a success */
    char mac[18];
};

struct settle_queue {
    pthread_mutex_t lock;
    pthread_mutex_t flush_lock; /* one writer at a time */
    struct settle_item *items, *batch; /* SQ_CAP each */
    size_t n;
};

struct aloft_store_rollout_state {
    struct known_set known;
    struct settle_queue sq;
    unsigned history_step; /* seconds */
};

struct aloft_store_rollout_state *aloft_store_rollout_state_new(void)
{
    struct aloft_store_rollout_state *st = calloc(1, sizeof *st);
    if (st) {
        st->history_step = ALOFT_STORE_HISTORY_STEP;
        pthread_mutex_init(&st->known.lock, NULL);
        pthread_mutex_init(&st->sq.lock, NULL);
        pthread_mutex_init(&st->sq.flush_lock, NULL);
    }
    return st;
}

void aloft_store_rollout_state_free(struct aloft_store_rollout_state *st)
{
    if (!st)
        return;
    free(st->known.e);
    pthread_mutex_destroy(&st->known.lock);
    free(st->sq.items);
    free(st->sq.batch);
    pthread_mutex_destroy(&st->sq.lock);
    pthread_mutex_destroy(&st->sq.flush_lock);
    free(st);
}

static void known_set(struct known_set *set, int64_t id, const char *mac, enum known state);
static bool settle_defer(struct aloft_store *s, int64_t id, int64_t stage, const char *mac);

/* "1,10,50,100" */
static void stages_text(const struct aloft_store_rollout *r, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    for (int i = 0; i < r->nstages && k < cap; i++)
        k += (size_t)snprintf(out + k, cap - k, "%s%d", i ? "," : "", r->stages[i]);
}

struct rollout_read {
    struct aloft_store_rollout *all;
    size_t n, cap;
};

/* A rollout's row, without its counters (read_counts). */
static int read_rollout(void *ctx, int n, const char *const *c)
{
    struct rollout_read *x = ctx;
    if (n < 14)
        return 0;
    if (x->n == x->cap) {
        size_t cap = x->cap ? x->cap * 2 : 8;
        struct aloft_store_rollout *bigger = realloc(x->all, cap * sizeof *bigger);
        if (!bigger)
            return ALOFT_E_IO;
        x->all = bigger;
        x->cap = cap;
    }
    struct aloft_store_rollout *r = &x->all[x->n++];
    memset(r, 0, sizeof *r);
    r->id = strtoll(c[0], NULL, 10);
    snprintf(r->platform, sizeof r->platform, "%s", c[1]);
    snprintf(r->version, sizeof r->version, "%s", c[2]);
    snprintf(r->previous, sizeof r->previous, "%s", c[3]);
    for (const char *p = c[4]; *p && r->nstages < ALOFT_STORE_STAGES_MAX;) {
        r->stages[r->nstages++] = (int)strtol(p, NULL, 10);
        p += strcspn(p, ",");
        p += *p == ',';
    }
    r->stage = (int)strtol(c[5], NULL, 10);
    snprintf(r->status, sizeof r->status, "%s", c[6]);
    r->max_failures = strtoll(c[7], NULL, 10);
    r->max_failures_percent = strtol(c[8], NULL, 10) != 0;
    snprintf(r->reason, sizeof r->reason, "%s", c[9]);
    r->created_at = strtoll(c[10], NULL, 10);
    r->updated_at = strtoll(c[11], NULL, 10);
    r->auto_advance = strtoll(c[12], NULL, 10);
    r->auto_advance_percent = strtol(c[13], NULL, 10) != 0;
    return 0;
}

static int read_stage_counts(void *ctx, int n, const char *const *c)
{
    struct aloft_store_rollout *r = ctx;
    long stage = n == 6 ? strtol(c[0], NULL, 10) : -1;
    if (stage < 0 || stage >= ALOFT_STORE_STAGES_MAX)
        return 0;
    struct aloft_store_stage_counts *k = &r->counts[stage];
    k->offered = strtoull(c[1], NULL, 10);
    k->updated = strtoull(c[2], NULL, 10);
    k->failed = strtoull(c[3], NULL, 10);
    k->rolled_back = strtoull(c[4], NULL, 10);
    k->old_version = strtoull(c[5], NULL, 10);
    return 0;
}

/* r's counters, per stage (at most ALOFT_STORE_STAGES_MAX rows, by key),
 * and their sums: in all, and in the current stage. */
static int read_counts(struct aloft_store *s, struct aloft_store_rollout *r)
{
    int rc = aloft_store_settle_flush(s); /* the successes waiting count too */
    if (rc == 0)
        rc = aloft_store_exec(s, Q_ROLLOUT_STAGES, read_stage_counts, r, NULL, "i", r->id);
    for (int i = 0; rc == 0 && i < ALOFT_STORE_STAGES_MAX; i++) {
        const struct aloft_store_stage_counts *k = &r->counts[i];
        uint64_t failures = k->failed + k->rolled_back + k->old_version;
        r->offered += k->offered;
        r->failures += failures;
        r->successes += k->updated;
        if (i == r->stage) {
            r->stage_offered = k->offered;
            r->stage_failures = failures;
            r->stage_successes = k->updated;
        }
    }
    return rc;
}

/* The one rollout query id finds, with its counters if counts;
 * ALOFT_E_NOTFOUND. */
static int rollout_one(struct aloft_store *s, enum aloft_store_query id, const char *types, const void *arg,
                       bool counts, struct aloft_store_rollout *r)
{
    struct rollout_read x = {NULL, 0, 0};
    int rc = types[0] == 'i' ? aloft_store_exec(s, id, read_rollout, &x, NULL, types, *(const int64_t *)arg)
                             : aloft_store_exec(s, id, read_rollout, &x, NULL, types, (const char *)arg);
    if (rc == 0 && !x.n)
        rc = ALOFT_E_NOTFOUND;
    if (rc == 0) {
        *r = x.all[0];
        rc = counts ? read_counts(s, r) : 0;
    }
    free(x.all);
    return rc;
}

struct release_vec {
    struct aloft_store_release *all;
    size_t n, cap;
    const char *skip;
};

static int collect_release(void *ctx, const struct aloft_store_release *r)
{
    struct release_vec *v = ctx;
    if (!strcmp(r->version, v->skip))
        return 0;
    if (v->n == v->cap) {
        size_t cap = v->cap ? v->cap * 2 : 16;
        struct aloft_store_release *bigger = realloc(v->all, cap * sizeof *bigger);
        if (!bigger)
            return ALOFT_E_IO;
        v->all = bigger;
        v->cap = cap;
    }
    v->all[v->n++] = *r;
    return 0;
}

int aloft_store_rollout_add(struct aloft_store *s, struct aloft_store_rollout *r)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_key_of(r->platform, key);
    struct aloft_store_release rel;
    if (!rc)
        rc = aloft_store_release_get(s, r->platform, ALOFT_STORE_FIRMWARE, r->version, &rel);
    if (rc)
        return rc;
    snprintf(r->version, sizeof r->version, "%s", rel.version);
    struct aloft_store_ints running = {{0}, 0};
    rc = aloft_store_exec(s, Q_ROLLOUT_RUNNING, aloft_store_read_ints, &running, NULL, "s", key);
    if (rc)
        return rc;
    if (running.n)
        return ALOFT_E_STATE;
    /* previous: what would be current without this release (a pin wins;
     * a platform that publishes by hand serves nothing else) */
    struct aloft_store_platform p;
    rc = aloft_store_platform_get(s, r->platform, false, &p);
    if (rc)
        return rc;
    r->previous[0] = 0;
    if (p.pinned[ALOFT_STORE_FIRMWARE][0] && strcmp(p.pinned[ALOFT_STORE_FIRMWARE], r->version)) {
        snprintf(r->previous, sizeof r->previous, "%s", p.pinned[ALOFT_STORE_FIRMWARE]);
    } else if (!p.publish_manual) {
        struct release_vec v = {NULL, 0, 0, r->version};
        rc = aloft_store_releases(s, r->platform, ALOFT_STORE_FIRMWARE, collect_release, &v);
        for (size_t i = 0; i < v.n / 2; i++) { /* newest first: into upload order */
            struct aloft_store_release t = v.all[i];
            v.all[i] = v.all[v.n - 1 - i];
            v.all[v.n - 1 - i] = t;
        }
        if (!rc && v.n)
            snprintf(r->previous, sizeof r->previous, "%s",
                     v.all[aloft_store_pick_current(v.all, v.n, ALOFT_STORE_FIRMWARE)].version);
        free(v.all);
        if (rc)
            return rc;
    }
    struct aloft_store_ints next = {{0}, 0};
    rc = aloft_store_exec(s, Q_ROLLOUT_NEXT_ID, aloft_store_read_ints, &next, NULL, "");
    if (rc)
        return rc;
    r->id = next.v[0];
    r->created_at = r->updated_at = (int64_t)time(NULL);
    char stages[80];
    stages_text(r, stages, sizeof stages);
    rc = aloft_store_exec(s, Q_ROLLOUT_ADD, NULL, NULL, NULL, "issssiiiiii", r->id, key, r->version, r->previous, stages,
               r->max_failures, (int64_t)r->max_failures_percent, r->auto_advance,
               (int64_t)r->auto_advance_percent, r->created_at, r->updated_at);
    aloft_store_views_changed(s);
    if (rc) { /* another instance started one at the same moment */
        running.n = 0;
        if (aloft_store_exec(s, Q_ROLLOUT_RUNNING, aloft_store_read_ints, &running, NULL, "s", key) == 0 && running.n)
            return ALOFT_E_STATE;
        return rc;
    }
    return aloft_store_rollout_get(s, r->id, r);
}

int aloft_store_rollout_get(struct aloft_store *s, int64_t id, struct aloft_store_rollout *r)
{
    return rollout_one(s, Q_ROLLOUT_GET, "i", &id, true, r);
}

int aloft_store_rollout_governing(struct aloft_store *s, const char *platform, struct aloft_store_rollout *r)
{
    char key[ALOFT_STORE_NAME_MAX + 1];
    int rc = aloft_store_key_of(platform, key);
    return rc ? rc : rollout_one(s, Q_ROLLOUT_GOVERNING, "s", key, false, r);
}

int aloft_store_rollouts(struct aloft_store *s, aloft_store_rollout_cb cb, void *ctx)
{
    struct rollout_read x = {NULL, 0, 0};
    int rc = aloft_store_exec(s, Q_ROLLOUTS, read_rollout, &x, NULL, "");
    for (size_t i = 0; rc == 0 && i < x.n; i++) {
        rc = read_counts(s, &x.all[i]);
        if (rc == 0)
            rc = cb(ctx, &x.all[i]);
    }
    free(x.all);
    return rc;
}

int aloft_store_rollout_set(struct aloft_store *s, int64_t id, const char *from, int from_stage, int stage,
                            const char *status, const char *reason)
{
    int64_t n = 0;
    int rc = aloft_store_exec(s, Q_ROLLOUT_SET, NULL, NULL, &n, "issiisi", (int64_t)stage, status, reason ? reason : "",
                   (int64_t)time(NULL), id, from, (int64_t)from_stage);
    aloft_store_views_changed(s);
    return rc ? rc : n ? 0 : ALOFT_E_STATE;
}

/* The outcomes a stage counts, in Q_ROLLOUT_STAGE_MOVE's order; -1: none. */
static int outcome_index(const char *result)
{
    static const char *const names[] = {"updated", "failed", "rolled_back", "old_version"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(result, names[i]))
            return i;
    return -1;
}

void aloft_store_rollout_history_step(struct aloft_store *s, unsigned seconds)
{
    aloft_store_rollout_state(s)->history_step = seconds ? seconds : 1;
}

/* The stages whose counters a transaction changed: their points of the
 * step `at` are written once each, after the changes (a batch of
 * thousands touches a few). */
#define TOUCHED_MAX 16

struct touched {
    int64_t at;
    size_t n;
    int64_t rollout[TOUCHED_MAX], stage[TOUCHED_MAX];
};

static void touched_init(struct aloft_store *s, struct touched *x)
{
    int64_t step = aloft_store_rollout_state(s)->history_step;
    x->at = (int64_t)time(NULL) / step * step;
    x->n = 0;
}

static int touched_write(struct aloft_store_tx *t, struct touched *x)
{
    for (size_t i = 0; i < x->n; i++) {
        int rc = aloft_store_tx_exec(t, Q_ROLLOUT_HISTORY_NOTE, NULL, NULL, NULL, "iii", x->at, x->rollout[i], x->stage[i]);
        if (rc)
            return rc;
    }
    x->n = 0;
    return 0;
}

static int touch(struct aloft_store_tx *t, struct touched *x, int64_t id, int64_t stage)
{
    for (size_t i = 0; i < x->n; i++)
        if (x->rollout[i] == id && x->stage[i] == stage)
            return 0;
    int rc = x->n == TOUCHED_MAX ? touched_write(t, x) : 0;
    if (rc == 0) {
        x->rollout[x->n] = id;
        x->stage[x->n++] = stage;
    }
    return rc;
}

struct offer {
    int64_t id, stage;
    const char *mac;
    struct touched *touched;
};

static int offer_write(const struct offer *o, struct aloft_store_tx *t)
{
    int64_t n = 0;
    int rc = aloft_store_tx_exec(t, Q_ROLLOUT_OFFERED, NULL, NULL, &n, "isii", o->id, o->mac, (int64_t)time(NULL), o->stage);
    if (rc == 0 && n) /* the first offer */
        rc = aloft_store_tx_exec(t, Q_ROLLOUT_STAGE_OFFERED, NULL, NULL, NULL, "ii", o->id, o->stage);
    if (rc == 0 && n)
        rc = touch(t, o->touched, o->id, o->stage);
    return rc;
}

static int offer_body(void *ctx, struct aloft_store_tx *t)
{
    const struct offer *o = ctx;
    o->touched->n = 0; /* a transaction tried again starts afresh */
    int rc = offer_write(o, t);
    return rc ? rc : touched_write(t, o->touched);
}

int aloft_store_rollout_offered(struct aloft_store *s, int64_t id, int stage, const char *mac)
{
    struct touched touched;
    touched_init(s, &touched);
    struct offer o = {id, stage, mac, &touched};
    int rc = settle_defer(s, id, stage, mac) ? 0 : aloft_store_transaction(s, offer_body, &o);
    if (rc == 0)
        known_set(&aloft_store_rollout_state(s)->known, id, mac, KNOWN_OFFERED);
    return rc;
}

struct offered_device {
    bool found;
    int64_t stage;
    char result[16];
};

static int read_offered_device(void *ctx, int n, const char *const *c)
{
    struct offered_device *d = ctx;
    if (n == 2) {
        d->found = true;
        d->stage = strtoll(c[0], NULL, 10);
        snprintf(d->result, sizeof d->result, "%s", c[1]);
    }
    return 0;
}

struct outcome {
    int64_t id;
    const char *mac, *result;
    struct touched touched;
    bool counted; /* out */
};

/* A report: change a device's outcome, whatever it was, and its stage's
 * counters together. */
static int outcome_body(void *ctx, struct aloft_store_tx *t)
{
    struct outcome *o = ctx;
    o->counted = false;
    for (int tries = 0; tries < 10; tries++) {
        struct offered_device d = {false, 0, ""};
        int rc = aloft_store_tx_exec(t, Q_ROLLOUT_DEVICE, read_offered_device, &d, NULL, "is", o->id, o->mac);
        if (rc || !d.found)
            return rc;
        o->counted = true;
        if (!strcmp(d.result, o->result))
            return 0;
        int64_t n = 0;
        rc = aloft_store_tx_exec(t, Q_ROLLOUT_RESULT, NULL, NULL, &n, "siss", o->result, o->id, o->mac, d.result);
        if (rc)
            return rc;
        if (!n) /* another transaction changed it first (PostgreSQL): read it again */
            continue;
        int64_t delta[4] = {0, 0, 0, 0};
        int was = outcome_index(d.result), now = outcome_index(o->result);
        if (was >= 0)
            delta[was]--;
        if (now >= 0)
            delta[now]++;
        o->touched.n = 0;
        rc = aloft_store_tx_exec(t, Q_ROLLOUT_STAGE_MOVE, NULL, NULL, NULL, "iiiiii", delta[0], delta[1], delta[2], delta[3],
                     o->id, d.stage);
        if (rc == 0)
            rc = touch(t, &o->touched, o->id, d.stage);
        return rc ? rc : touched_write(t, &o->touched);
    }
    snprintf(aloft_store_last_error, sizeof aloft_store_last_error,
             "the outcome of %s kept changing under this one: try again", o->mac);
    return ALOFT_E_IO;
}

int aloft_store_rollout_result(struct aloft_store *s, int64_t id, const char *mac, const char *result, bool *counted)
{
    struct outcome o = {id, mac, result, {0, 0, {0}, {0}}, false};
    touched_init(s, &o.touched);
    int rc = aloft_store_settle_flush(s); /* its offer may wait there */
    if (rc == 0)
        rc = aloft_store_transaction(s, outcome_body, &o);
    *counted = rc == 0 && o.counted;
    return rc;
}

static size_t known_slot(const struct known_set *set, int64_t id, const char *mac)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)id; /* FNV-1a */
    for (const char *p = mac; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    size_t i = (size_t)(h % KNOWN_CAP);
    while (set->e[i].rollout && (set->e[i].rollout != id || strcmp(set->e[i].mac, mac)))
        i = (i + 1) % KNOWN_CAP;
    return i;
}

static enum known known_get(struct known_set *set, int64_t id, const char *mac)
{
    pthread_mutex_lock(&set->lock);
    enum known k = set->e ? (enum known)set->e[known_slot(set, id, mac)].state : KNOWN_NOTHING;
    pthread_mutex_unlock(&set->lock);
    return k;
}

/* Only forward: offered, then settled. */
static void known_set(struct known_set *set, int64_t id, const char *mac, enum known state)
{
    pthread_mutex_lock(&set->lock);
    if (!set->e || set->n >= KNOWN_CAP / 4 * 3) {
        free(set->e);
        set->e = calloc(KNOWN_CAP, sizeof *set->e);
        set->n = 0;
    }
    if (set->e) {
        struct known_entry *e = &set->e[known_slot(set, id, mac)];
        if (!e->rollout) {
            e->rollout = id;
            snprintf(e->mac, sizeof e->mac, "%s", mac);
            set->n++;
        }
        if (e->state < (char)state)
            e->state = (char)state;
    }
    pthread_mutex_unlock(&set->lock);
}

static int read_stage(void *ctx, int n, const char *const *c)
{
    if (n >= 1)
        *(int64_t *)ctx = strtoll(c[0], NULL, 10);
    return 0;
}

struct settle {
    int64_t id;
    const char *mac;
    bool on_release;
    struct touched touched;
    int64_t stage; /* out: -1, not settled by this one */
    struct aloft_store_rollout counts; /* out: counts[stage] */
};

/* Its outcome, if it has none yet, and its stage's counters, together. */
static int settle_body(void *ctx, struct aloft_store_tx *t)
{
    struct settle *x = ctx;
    x->stage = -1;
    int rc = aloft_store_tx_exec(t, Q_ROLLOUT_SETTLE, read_stage, &x->stage, NULL, "sis",
                     x->on_release ? "updated" : "old_version", x->id, x->mac);
    if (rc || x->stage < 0 || x->stage >= ALOFT_STORE_STAGES_MAX)
        return rc;
    x->touched.n = 0;
    rc = aloft_store_tx_exec(t, Q_ROLLOUT_STAGE_MOVE, read_stage_counts, &x->counts, NULL, "iiiiii", (int64_t)x->on_release,
                 (int64_t)0, (int64_t)0, (int64_t)!x->on_release, x->id, x->stage);
    if (rc == 0)
        rc = touch(t, &x->touched, x->id, x->stage);
    return rc ? rc : touched_write(t, &x->touched);
}

struct settle_batch {
    const struct settle_item *items;
    size_t n;
    struct touched *touched;
};

/* The waiting offers and successes, each with its stage's counter. */
static int settle_batch_body(void *ctx, struct aloft_store_tx *t)
{
    const struct settle_batch *b = ctx;
    b->touched->n = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct settle_item *it = &b->items[i];
        int rc;
        if (it->stage >= 0) {
            struct offer o = {it->rollout, it->stage, it->mac, b->touched};
            rc = offer_write(&o, t);
        } else {
            int64_t stage = -1;
            rc = aloft_store_tx_exec(t, Q_ROLLOUT_SETTLE, read_stage, &stage, NULL, "sis", "updated", it->rollout, it->mac);
            if (rc == 0 && stage >= 0)
                rc = aloft_store_tx_exec(t, Q_ROLLOUT_STAGE_MOVE, NULL, NULL, NULL, "iiiiii", (int64_t)1, (int64_t)0,
                             (int64_t)0, (int64_t)0, it->rollout, stage);
            if (rc == 0 && stage >= 0)
                rc = touch(t, b->touched, it->rollout, stage);
        }
        if (rc)
            return rc;
    }
    return touched_write(t, b->touched);
}

/* Write what waits; also waits for a write in progress, so that a read
 * after it sees everything queued before it. */
int aloft_store_settle_flush(struct aloft_store *s)
{
    struct settle_queue *q = &aloft_store_rollout_state(s)->sq;
    pthread_mutex_lock(&q->flush_lock);
    pthread_mutex_lock(&q->lock);
    struct touched touched;
    touched_init(s, &touched);
    struct settle_batch b = {q->batch, q->n, &touched};
    if (q->n) /* nothing queued yet: no batch allocated either */
        memcpy(q->batch, q->items, q->n * sizeof *q->items);
    __atomic_store_n(&q->n, 0, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&q->lock);
    int rc = b.n ? aloft_store_transaction(s, settle_batch_body, &b) : 0;
    if (rc) { /* kept for the next write, as far as there is room */
        pthread_mutex_lock(&q->lock);
        size_t room = SQ_CAP - q->n, keep = b.n < room ? b.n : room;
        memcpy(q->items + q->n, b.items, keep * sizeof *q->items);
        __atomic_store_n(&q->n, q->n + keep, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&q->lock);
        fprintf(stderr, "aloft store: %zu rollout outcomes not recorded yet%s: %s\n", b.n,
                keep < b.n ? " (some lost: too many waiting)" : "", aloft_store_error());
    }
    pthread_mutex_unlock(&q->flush_lock);
    return rc;
}

/* Queue an offer (stage >= 0) or a success (-1); false when the queue is
 * full (or cannot be made). */
static bool settle_defer(struct aloft_store *s, int64_t id, int64_t stage, const char *mac)
{
    struct settle_queue *q = &aloft_store_rollout_state(s)->sq;
    pthread_mutex_lock(&q->lock);
    if (!q->items) {
        q->items = calloc(SQ_CAP, sizeof *q->items);
        q->batch = calloc(SQ_CAP, sizeof *q->batch);
    }
    bool ok = q->items && q->batch && q->n < SQ_CAP;
    if (ok) {
        q->items[q->n].rollout = id;
        q->items[q->n].stage = stage;
        snprintf(q->items[q->n].mac, sizeof q->items[0].mac, "%s", mac);
        __atomic_store_n(&q->n, q->n + 1, __ATOMIC_RELEASE);
    }
    pthread_mutex_unlock(&q->lock);
    return ok;
}

int aloft_store_rollout_settle(struct aloft_store *s, int64_t id, const char *mac, bool on_release, bool defer,
                               bool *counted, int *stage, struct aloft_store_stage_counts *k)
{
    *counted = false;
    enum known known = known_get(&aloft_store_rollout_state(s)->known, id, mac);
    if (known == KNOWN_SETTLED)
        return 0;
    /* Not known: most such check-ins were never offered it, and need no
     * transaction. (An offer of this process still waiting in the queue
     * is known, unless the set was emptied meanwhile: a device back within
     * that instant is settled at its next check-in.) */
    if (known == KNOWN_NOTHING) {
        struct offered_device d = {false, 0, ""};
        int rc = aloft_store_exec(s, Q_ROLLOUT_DEVICE, read_offered_device, &d, NULL, "is", id, mac);
        if (rc || !d.found)
            return rc;
        if (d.result[0]) {
            known_set(&aloft_store_rollout_state(s)->known, id, mac, KNOWN_SETTLED);
            return 0;
        }
    }
    if (defer && on_release && settle_defer(s, id, -1, mac)) {
        known_set(&aloft_store_rollout_state(s)->known, id, mac, KNOWN_SETTLED);
        return 0;
    }
    int rc = aloft_store_settle_flush(s); /* its offer may wait there */
    if (rc)
        return rc;
    struct settle x;
    memset(&x, 0, sizeof x);
    x.id = id;
    x.mac = mac;
    x.on_release = on_release;
    touched_init(s, &x.touched);
    rc = aloft_store_transaction(s, settle_body, &x);
    if (rc)
        return rc;
    known_set(&aloft_store_rollout_state(s)->known, id, mac, KNOWN_SETTLED); /* by this check-in or by another */
    if (x.stage >= 0 && x.stage < ALOFT_STORE_STAGES_MAX) {
        *counted = true;
        *stage = (int)x.stage;
        *k = x.counts.counts[x.stage];
    }
    return 0;
}

struct point_read {
    aloft_store_point_cb cb;
    void *ctx;
};

static int read_point(void *ctx, int n, const char *const *c)
{
    const struct point_read *x = ctx;
    if (n < 7)
        return 0;
    struct aloft_store_rollout_point p;
    p.at = strtoll(c[0], NULL, 10);
    p.stage = (int)strtol(c[1], NULL, 10);
    p.k.offered = strtoull(c[2], NULL, 10);
    p.k.updated = strtoull(c[3], NULL, 10);
    p.k.failed = strtoull(c[4], NULL, 10);
    p.k.rolled_back = strtoull(c[5], NULL, 10);
    p.k.old_version = strtoull(c[6], NULL, 10);
    return x->cb(x->ctx, &p);
}

int aloft_store_rollout_history(struct aloft_store *s, int64_t id, aloft_store_point_cb cb, void *ctx)
{
    int rc = aloft_store_settle_flush(s); /* the changes waiting count too */
    struct point_read x = {cb, ctx};
    return rc ? rc : aloft_store_exec(s, Q_ROLLOUT_HISTORY, read_point, &x, NULL, "i", id);
}
