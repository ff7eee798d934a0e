/* aloft host: the delta encoder. It may be slow and hungry (once per pair):
 * a suffix array over base ‖ result finds every earlier match, and a
 * windowed optimal parse (forward dynamic programming over prices taken from
 * the adaptive model) picks tokens; the token coding mirrors core/delta.c. */
#include "delta.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/crypto.h"
#include "aloft/delta.h"
#include "aloft/err.h"

/* A match this long is taken at once, ending the parse's window (so prices
 * are refreshed). */
#define NICE 160
#define WINDOW 2048   /* positions per parse window */
#define MAX_CANDS 16  /* matches kept per position */
#define PROB_ONE (1u << ALOFT_DELTA_PROB_BITS)
#define SCAN 96       /* suffix-array neighbours looked at each way */

/* ---- suffix array (prefix doubling with radix sorts) and LCP (Kasai) ---- */

static int suffix_array(const uint8_t *s, int32_t n, int32_t *sa, int32_t *rank, int32_t *lcp)
{
    int32_t *tmp = malloc(sizeof *tmp * (size_t)n), *cnt = malloc(sizeof *cnt * ((size_t)n + 257));
    if (!tmp || !cnt) {
        free(tmp);
        free(cnt);
        return -1;
    }
    memset(cnt, 0, sizeof *cnt * 257);
    for (int32_t i = 0; i < n; i++)
        cnt[s[i] + 1]++;
    for (int i = 1; i < 257; i++)
        cnt[i] += cnt[i - 1];
    for (int32_t i = 0; i < n; i++)
        sa[cnt[s[i]]++] = i;
    for (int32_t i = 0; i < n; i++)
        rank[i] = s[i];
    int32_t classes = 256;
    for (int32_t k = 1;; k <<= 1) {
        /* by second key: suffixes without one first, then in sa order */
        int32_t j = 0;
        for (int32_t i = n - k; i < n; i++)
            tmp[j++] = i;
        for (int32_t i = 0; i < n; i++)
            if (sa[i] >= k)
                tmp[j++] = sa[i] - k;
        /* stable by first key */
        memset(cnt, 0, sizeof *cnt * ((size_t)classes + 1));
        for (int32_t i = 0; i < n; i++)
            cnt[rank[i] + 1]++;
        for (int32_t i = 1; i <= classes; i++)
            cnt[i] += cnt[i - 1];
        for (int32_t i = 0; i < n; i++)
            sa[cnt[rank[tmp[i]]]++] = tmp[i];
        tmp[sa[0]] = 0;
        classes = 1;
        for (int32_t i = 1; i < n; i++) {
            int32_t a = sa[i - 1], b = sa[i];
            int32_t ra = a + k < n ? rank[a + k] : -1, rb = b + k < n ? rank[b + k] : -1;
            if (rank[a] != rank[b] || ra != rb)
                classes++;
            tmp[b] = classes - 1;
        }
        memcpy(rank, tmp, sizeof *rank * (size_t)n);
        if (classes == n)
            break;
    }
    int32_t h = 0;
    for (int32_t i = 0; i < n; i++) {
        if (rank[i] == 0) {
            lcp[0] = 0;
            h = 0;
            continue;
        }
        int32_t j = sa[rank[i] - 1];
        while (i + h < n && j + h < n && s[i + h] == s[j + h])
            h++;
        lcp[rank[i]] = h; /* lcp[r]: common prefix of sa[r-1] and sa[r] */
        if (h)
            h--;
    }
    free(tmp);
    free(cnt);
    return 0;
}

/* ---- the range encoder (LZMA's carry-propagating one) ---- */

struct rc {
    uint64_t low;
    uint32_t range;
    uint8_t cache;
    uint64_t cache_size;
    uint8_t *out;
    size_t len, cap;
    int oom;
};

static void rc_byte(struct rc *r, uint8_t b)
{
    if (r->len == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 65536;
        uint8_t *p = realloc(r->out, cap);
        if (!p) {
            r->oom = 1;
            return;
        }
        r->out = p, r->cap = cap;
    }
    r->out[r->len++] = b;
}

static void rc_shift(struct rc *r)
{
    if ((uint32_t)r->low < 0xFF000000u || (r->low >> 32)) {
        uint8_t carry = (uint8_t)(r->low >> 32);
        uint8_t c = r->cache;
        do {
            rc_byte(r, (uint8_t)(c + carry));
            c = 0xFF;
        } while (--r->cache_size);
        r->cache = (uint8_t)(r->low >> 24);
    }
    r->cache_size++;
    r->low = (r->low & 0x00FFFFFFu) << 8;
}

static void rc_start(struct rc *r)
{
    r->low = 0, r->range = 0xFFFFFFFFu, r->cache = 0, r->cache_size = 1;
}

static void rc_flush(struct rc *r)
{
    for (int i = 0; i < 5; i++)
        rc_shift(r);
}

static void rc_bit(struct rc *r, uint16_t *p, unsigned b)
{
    uint32_t bound = (r->range >> ALOFT_DELTA_PROB_BITS) * ALOFT_DELTA_PVAL(*p);
    if (!b) {
        r->range = bound;
    } else {
        r->low += bound;
        r->range -= bound;
    }
    aloft_delta_adapt(p, b);
    while (r->range < (1u << 24)) {
        r->range <<= 8;
        rc_shift(r);
    }
}

static void rc_direct(struct rc *r, uint32_t v, unsigned bits)
{
    while (bits--) {
        r->range >>= 1;
        if ((v >> bits) & 1)
            r->low += r->range;
        while (r->range < (1u << 24)) {
            r->range <<= 8;
            rc_shift(r);
        }
    }
}

static void rc_tree(struct rc *r, uint16_t *p, unsigned bits, uint32_t v)
{
    uint32_t m = 1;
    while (bits--) {
        unsigned b = (v >> bits) & 1;
        rc_bit(r, p + m, b);
        m = m << 1 | b;
    }
}

static void rc_rtree(struct rc *r, uint16_t *p, unsigned bits, uint32_t v)
{
    uint32_t m = 1;
    for (unsigned i = 0; i < bits; i++) {
        unsigned b = (v >> i) & 1;
        rc_bit(r, p + m, b);
        m = m << 1 | b;
    }
}

/* ---- prices (bits) from the model's current probabilities ---- */

static float price_tab[PROB_ONE + 1];
/* A field's new delta is priced this many bits below its cost: it joins the
 * recent deltas, and moved code reuses them (one insertion shifts every
 * reference across it alike). */
#define FIELD_NEW_BIAS 1.5f

static float pr(uint16_t p, unsigned b)
{
    p = (uint16_t)ALOFT_DELTA_PVAL(p);
    return price_tab[b ? PROB_ONE - p : p];
}

static float tree_price(const uint16_t *p, unsigned bits, uint32_t v)
{
    float c = 0;
    uint32_t m = 1;
    while (bits--) {
        unsigned b = (v >> bits) & 1;
        c += pr(p[m], b);
        m = m << 1 | b;
    }
    return c;
}

static float rtree_price(const uint16_t *p, unsigned bits, uint32_t v)
{
    float c = 0;
    uint32_t m = 1;
    for (unsigned i = 0; i < bits; i++) {
        unsigned b = (v >> i) & 1;
        c += pr(p[m], b);
        m = m << 1 | b;
    }
    return c;
}

/* LZMA's matched literal: v's bits, in the context of m's while they agree. */
static float mlit_price(const uint16_t *lp, unsigned m, unsigned v)
{
    float c = 0;
    unsigned s = 1, same = 1;
    for (int i = 7; i >= 0; i--) {
        unsigned b = (v >> i) & 1, mb = (m >> i) & 1;
        c += pr(lp[same ? 0x100 + (mb << 8) + s : s], b);
        s = s << 1 | b;
        same &= mb == b;
    }
    return c;
}

static void mlit_enc(struct rc *r, uint16_t *lp, unsigned m, unsigned v)
{
    unsigned s = 1, same = 1;
    for (int i = 7; i >= 0; i--) {
        unsigned b = (v >> i) & 1, mb = (m >> i) & 1;
        rc_bit(r, lp + (same ? 0x100 + (mb << 8) + s : s), b);
        s = s << 1 | b;
        same &= mb == b;
    }
}

/* ---- the encoder's model state (what the decoder keeps, and mirrors) ---- */

struct enc {
    const uint8_t *dict; /* base ‖ result */
    uint32_t base;       /* base size */
    uint32_t n;          /* dictionary size */
    uint16_t p[ALOFT_DELTA_PROBS];
    struct rc rc;
    /* prices frozen at a window's start */
    float len_price[2][ALOFT_DELTA_PB][ALOFT_DELTA_MAX_MATCH + 1];
    float slot_price[6][64];
    float align_price[16];
};

struct mstate {
    uint32_t rep[4];
    uint32_t field[ALOFT_DELTA_FIELD_TYPES][ALOFT_DELTA_FIELD_MRU];
    uint8_t state, aligned;
};

static unsigned after_lit(unsigned s)
{
    return s < 4 ? 0 : s < 10 ? s - 3 : s - 6;
}

static uint32_t len_state(uint32_t len)
{
    return len - ALOFT_DELTA_MIN_MATCH < 3 ? len - ALOFT_DELTA_MIN_MATCH : 3;
}

static uint32_t dist_slot(uint32_t d0) /* d0 = distance - 1 */
{
    if (d0 < 4)
        return d0;
    unsigned hb = 31 - (unsigned)__builtin_clz(d0);
    return hb * 2 + ((d0 >> (hb - 1)) & 1);
}

static float len_price_calc(const uint16_t *p, unsigned ps, uint32_t len)
{
    uint32_t l = len - ALOFT_DELTA_MIN_MATCH;
    if (l < 8)
        return pr(p[0], 0) + tree_price(p + 2 + ps * 8, 3, l);
    if (l < 16)
        return pr(p[0], 1) + pr(p[1], 0) + tree_price(p + 2 + ALOFT_DELTA_PB * 8 + ps * 8, 3, l - 8);
    return pr(p[0], 1) + pr(p[1], 1) + tree_price(p + 2 + 2 * ALOFT_DELTA_PB * 8, 8, l - 16);
}

static void update_prices(struct enc *e)
{
    for (int k = 0; k < 2; k++)
        for (unsigned ps = 0; ps < ALOFT_DELTA_PB; ps++)
            for (uint32_t len = ALOFT_DELTA_MIN_MATCH; len <= ALOFT_DELTA_MAX_MATCH; len++)
                e->len_price[k][ps][len] =
                    len_price_calc(e->p + (k ? ALOFT_DELTA_P_REP_LEN : ALOFT_DELTA_P_LEN), ps, len);
    for (int ls = 0; ls < 6; ls++)
        for (uint32_t s = 0; s < 64; s++) {
            float c = tree_price(e->p + ALOFT_DELTA_P_DIST_SLOT + ls * 64, 6, s);
            if (s >= 14)
                c += (float)((s >> 1) - 1 - 4);
            e->slot_price[ls][s] = c;
        }
    for (uint32_t a = 0; a < 16; a++)
        e->align_price[a] = rtree_price(e->p + ALOFT_DELTA_P_ALIGN, 4, a);
}

/* Price of d0 (a distance - 1, or a near offset - 1) with slot table ls. */
static float d0_price(const struct enc *e, uint32_t d0, unsigned ls)
{
    uint32_t slot = dist_slot(d0);
    float c = e->slot_price[ls][slot];
    if (slot < 4)
        return c;
    unsigned nd = (slot >> 1) - 1;
    uint32_t base = (2 | (slot & 1)) << nd;
    if (slot < 14)
        return c + rtree_price(e->p + ALOFT_DELTA_P_DIST_SPECIAL + base - slot - 1, nd, d0 - base);
    return c + e->align_price[(d0 - base) & 15];
}

/* Price of a new match's distance: plain, or near a repeat distance (then
 * *near is 1 + which one), whichever is the cheaper. */
static float dist_price(const struct enc *e, const struct mstate *m, uint32_t dist, uint32_t len, uint8_t *near)
{
    const uint16_t *isn = &e->p[ALOFT_DELTA_P_IS_NEAR + m->state];
    float best = pr(*isn, 0) + d0_price(e, dist - 1, len_state(len));
    *near = 0;
    for (unsigned k = 0; k < 4; k++) {
        if (dist == m->rep[k])
            continue;
        unsigned neg = dist < m->rep[k];
        uint32_t off = neg ? m->rep[k] - dist : dist - m->rep[k];
        if (off > best * 8.0f) /* cannot be cheaper */
            continue;
        float c = pr(*isn, 1) + tree_price(e->p + ALOFT_DELTA_P_NEAR_REP, 2, k) +
                  pr(e->p[ALOFT_DELTA_P_NEAR_SIGN + k], neg) + d0_price(e, off - 1, 4);
        if (c < best)
            best = c, *near = (uint8_t)(k + 1);
    }
    return best;
}

/* The byte at rep0 for a diff literal, or -1 when there is none. */
static int diff_base(const struct enc *e, uint32_t here, const struct mstate *m)
{
    return m->rep[0] <= here ? e->dict[here - m->rep[0]] : -1;
}

/* Price of the literal at here and whether the diff form is the cheaper. */
static float lit_price(const struct enc *e, uint32_t here, const struct mstate *m, int *use_diff)
{
    unsigned ps = (here - e->base) & 3;
    float c = pr(e->p[ALOFT_DELTA_P_IS_MATCH + m->state * ALOFT_DELTA_PB + ps], 0);
    uint8_t cur = e->dict[here];
    int old = diff_base(e, here, m);
    unsigned o = old < 0 ? 0 : (unsigned)old;
    float plain = mlit_price(e->p + ALOFT_DELTA_P_LIT, o, cur);
    *use_diff = 0;
    if (!m->aligned)
        return c + plain;
    c += pr(e->p[ALOFT_DELTA_P_IS_FIELD + m->state], 0);
    const uint16_t *isd = &e->p[ALOFT_DELTA_P_IS_DIFF + m->state * ALOFT_DELTA_PB + ps];
    plain += pr(*isd, 0);
    if (old >= 0) {
        float diff = pr(*isd, 1) +
                     tree_price(e->p + ALOFT_DELTA_P_DIFF, 8, (uint8_t)(cur - old));
        if (diff < plain) {
            *use_diff = 1;
            return c + diff;
        }
    }
    return c + plain;
}

static float rep_price(const struct enc *e, const struct mstate *m, unsigned k, unsigned ps)
{
    unsigned s = m->state;
    float c = pr(e->p[ALOFT_DELTA_P_IS_MATCH + s * ALOFT_DELTA_PB + ps], 1) + pr(e->p[ALOFT_DELTA_P_IS_REP + s], 1);
    if (k == 0)
        return c + pr(e->p[ALOFT_DELTA_P_IS_REP_G0 + s], 0) +
               pr(e->p[ALOFT_DELTA_P_IS_REP0_LONG + s * ALOFT_DELTA_PB + ps], 1);
    c += pr(e->p[ALOFT_DELTA_P_IS_REP_G0 + s], 1);
    if (k == 1)
        return c + pr(e->p[ALOFT_DELTA_P_IS_REP_G1 + s], 0);
    c += pr(e->p[ALOFT_DELTA_P_IS_REP_G1 + s], 1);
    return c + pr(e->p[ALOFT_DELTA_P_IS_REP_G2 + s], k == 3);
}

static float shortrep_price(const struct enc *e, const struct mstate *m, unsigned ps)
{
    unsigned s = m->state;
    return pr(e->p[ALOFT_DELTA_P_IS_MATCH + s * ALOFT_DELTA_PB + ps], 1) + pr(e->p[ALOFT_DELTA_P_IS_REP + s], 1) +
           pr(e->p[ALOFT_DELTA_P_IS_REP_G0 + s], 0) + pr(e->p[ALOFT_DELTA_P_IS_REP0_LONG + s * ALOFT_DELTA_PB + ps], 0);
}

/* ---- tokens: coding them and their effect on the model state ---- */

enum { T_LIT, T_DIFF, T_FIELD, T_SHORTREP, T_REP, T_MATCH };

/* rep: which repeat distance for T_REP, 1 + the one a T_MATCH is near, a
 * T_FIELD's type; k: a T_FIELD's recent delta, or FIELD_NEW; dist: a
 * T_FIELD's delta */
struct tok {
    uint8_t kind, rep;
    uint32_t len, dist;
    uint8_t k;
};
#define FIELD_NEW 0xFF

/* The field of type t at here, if the old bytes at rep0 plus a delta make
 * it: its token and price, else INFINITY. */
static float field_price(const struct enc *e, uint32_t here, const struct mstate *m, unsigned t, struct tok *out)
{
    unsigned w = ALOFT_DELTA_FIELD_W(t), sh = ALOFT_DELTA_FIELD_S(t);
    uint32_t r0 = m->rep[0];
    *out = (struct tok){T_FIELD, (uint8_t)t, w, 0, FIELD_NEW};
    if (!m->aligned || r0 < w || r0 > here || here + w > e->n)
        return INFINITY;
    uint32_t ov = 0, nv = 0, mask = w == 4 ? 0xFFFFFFFFu : 0xFFFFFFu;
    for (unsigned i = 0; i < w; i++) {
        ov |= (uint32_t)e->dict[here - r0 + i] << 8 * i;
        nv |= (uint32_t)e->dict[here + i] << 8 * i;
    }
    uint32_t diff = (nv - ov) & mask;
    if (!diff || diff & ((1u << sh) - 1))
        return INFINITY;
    unsigned ps = (here - e->base) & 3, s = m->state;
    float c = pr(e->p[ALOFT_DELTA_P_IS_MATCH + s * ALOFT_DELTA_PB + ps], 0) + pr(e->p[ALOFT_DELTA_P_IS_FIELD + s], 1) +
              tree_price(e->p + ALOFT_DELTA_P_FIELD_TYPE + (ov & 15) * 4, 2, t);
    for (unsigned k = 0; k < ALOFT_DELTA_FIELD_MRU; k++)
        if (((m->field[t][k] << sh) & mask) == diff) {
            out->k = (uint8_t)k;
            out->dist = m->field[t][k];
            return c + pr(e->p[ALOFT_DELTA_P_FIELD_HIT + t], 1) + tree_price(e->p + ALOFT_DELTA_P_FIELD_IDX + t * ALOFT_DELTA_FIELD_MRU, ALOFT_DELTA_FIELD_MRU_BITS, k);
        }
    unsigned bits = 8 * w - sh;
    uint32_t v = diff >> sh, neg = v >> (bits - 1), mag = neg ? (uint32_t)((1ull << bits) - v) : v;
    out->dist = neg ? 0u - mag : mag;
    return c + pr(e->p[ALOFT_DELTA_P_FIELD_HIT + t], 0) + pr(e->p[ALOFT_DELTA_P_FIELD_SIGN + t], neg) +
           d0_price(e, mag - 1, 5) - FIELD_NEW_BIAS;
}

static void apply(struct mstate *m, const struct tok *t)
{
    switch (t->kind) {
    case T_FIELD: {
        uint32_t *mru = m->field[t->rep];
        for (unsigned k = t->k == FIELD_NEW ? ALOFT_DELTA_FIELD_MRU - 1 : t->k; k; k--)
            mru[k] = mru[k - 1];
        mru[0] = t->dist;
        m->state = (uint8_t)after_lit(m->state);
        break;
    }
    case T_LIT:
        m->state = (uint8_t)after_lit(m->state);
        m->aligned = 0;
        break;
    case T_DIFF:
        m->state = (uint8_t)after_lit(m->state);
        break;
    case T_SHORTREP:
        m->state = m->state < 7 ? 9 : 11;
        m->aligned = 1;
        break;
    case T_REP: {
        uint32_t d = m->rep[t->rep];
        for (unsigned k = t->rep; k; k--)
            m->rep[k] = m->rep[k - 1];
        m->rep[0] = d;
        m->state = m->state < 7 ? 8 : 11;
        m->aligned = 1;
        break;
    }
    default:
        memmove(m->rep + 1, m->rep, 3 * sizeof m->rep[0]);
        m->rep[0] = t->dist;
        m->state = m->state < 7 ? 7 : 10;
        m->aligned = 1;
    }
}

static void enc_len(struct enc *e, uint16_t *p, unsigned ps, uint32_t len)
{
    uint32_t l = len - ALOFT_DELTA_MIN_MATCH;
    if (l < 8) {
        rc_bit(&e->rc, p, 0);
        rc_tree(&e->rc, p + 2 + ps * 8, 3, l);
    } else if (l < 16) {
        rc_bit(&e->rc, p, 1);
        rc_bit(&e->rc, p + 1, 0);
        rc_tree(&e->rc, p + 2 + ALOFT_DELTA_PB * 8 + ps * 8, 3, l - 8);
    } else {
        rc_bit(&e->rc, p, 1);
        rc_bit(&e->rc, p + 1, 1);
        rc_tree(&e->rc, p + 2 + 2 * ALOFT_DELTA_PB * 8, 8, l - 16);
    }
}

/* d0 (a distance - 1, a near offset - 1, a field's new delta's magnitude - 1) with slot table ls. */
static void enc_d0(struct enc *e, uint32_t d0, unsigned ls)
{
    struct rc *r = &e->rc;
    uint16_t *p = e->p;
    uint32_t slot = dist_slot(d0);
    rc_tree(r, p + ALOFT_DELTA_P_DIST_SLOT + ls * 64, 6, slot);
    if (slot >= 4) {
        unsigned nd = (slot >> 1) - 1;
        uint32_t base = (2 | (slot & 1)) << nd, v = d0 - base;
        if (slot < 14) {
            rc_rtree(r, p + ALOFT_DELTA_P_DIST_SPECIAL + base - slot - 1, nd, v);
        } else {
            rc_direct(r, v >> 4, nd - 4);
            rc_rtree(r, p + ALOFT_DELTA_P_ALIGN, 4, v & 15);
        }
    }
}

static void enc_token(struct enc *e, struct mstate *m, uint32_t here, const struct tok *t)
{
    unsigned s = m->state, ps = (here - e->base) & 3;
    uint16_t *p = e->p;
    struct rc *r = &e->rc;
    rc_bit(r, p + ALOFT_DELTA_P_IS_MATCH + s * ALOFT_DELTA_PB + ps, t->kind >= T_SHORTREP);
    switch (t->kind) {
    case T_LIT:
    case T_DIFF:
    case T_FIELD: {
        int old = diff_base(e, here, m);
        unsigned o = old < 0 ? 0 : (unsigned)old;
        if (m->aligned)
            rc_bit(r, p + ALOFT_DELTA_P_IS_FIELD + s, t->kind == T_FIELD);
        if (t->kind == T_FIELD) {
            unsigned ft = t->rep;
            rc_tree(r, p + ALOFT_DELTA_P_FIELD_TYPE + (o & 15) * 4, 2, ft);
            rc_bit(r, p + ALOFT_DELTA_P_FIELD_HIT + ft, t->k != FIELD_NEW);
            if (t->k != FIELD_NEW) {
                rc_tree(r, p + ALOFT_DELTA_P_FIELD_IDX + ft * ALOFT_DELTA_FIELD_MRU, ALOFT_DELTA_FIELD_MRU_BITS, t->k);
            } else {
                unsigned neg = t->dist >> 31;
                rc_bit(r, p + ALOFT_DELTA_P_FIELD_SIGN + ft, neg);
                enc_d0(e, (neg ? 0u - t->dist : t->dist) - 1, 5);
            }
            break;
        }
        if (m->aligned)
            rc_bit(r, p + ALOFT_DELTA_P_IS_DIFF + s * ALOFT_DELTA_PB + ps, t->kind == T_DIFF);
        if (t->kind == T_DIFF)
            rc_tree(r, p + ALOFT_DELTA_P_DIFF, 8, (uint8_t)(e->dict[here] - o));
        else
            mlit_enc(r, p + ALOFT_DELTA_P_LIT, o, e->dict[here]);
        break;
    }
    case T_SHORTREP:
        rc_bit(r, p + ALOFT_DELTA_P_IS_REP + s, 1);
        rc_bit(r, p + ALOFT_DELTA_P_IS_REP_G0 + s, 0);
        rc_bit(r, p + ALOFT_DELTA_P_IS_REP0_LONG + s * ALOFT_DELTA_PB + ps, 0);
        break;
    case T_REP:
        rc_bit(r, p + ALOFT_DELTA_P_IS_REP + s, 1);
        rc_bit(r, p + ALOFT_DELTA_P_IS_REP_G0 + s, t->rep != 0);
        if (t->rep == 0) {
            rc_bit(r, p + ALOFT_DELTA_P_IS_REP0_LONG + s * ALOFT_DELTA_PB + ps, 1);
        } else {
            rc_bit(r, p + ALOFT_DELTA_P_IS_REP_G1 + s, t->rep != 1);
            if (t->rep != 1)
                rc_bit(r, p + ALOFT_DELTA_P_IS_REP_G2 + s, t->rep == 3);
        }
        enc_len(e, p + ALOFT_DELTA_P_REP_LEN, ALOFT_DELTA_REP_LEN_CTX(s, ps), t->len);
        break;
    default: {
        rc_bit(r, p + ALOFT_DELTA_P_IS_REP + s, 0);
        enc_len(e, p + ALOFT_DELTA_P_LEN, ps, t->len);
        rc_bit(r, p + ALOFT_DELTA_P_IS_NEAR + s, t->rep != 0);
        uint32_t d0 = t->dist - 1, ls = len_state(t->len);
        if (t->rep) {
            unsigned k = t->rep - 1u, neg = t->dist < m->rep[k];
            rc_tree(r, p + ALOFT_DELTA_P_NEAR_REP, 2, k);
            rc_bit(r, p + ALOFT_DELTA_P_NEAR_SIGN + k, neg);
            d0 = (neg ? m->rep[k] - t->dist : t->dist - m->rep[k]) - 1;
            ls = 4;
        }
        enc_d0(e, d0, ls);
    }
    }
    apply(m, t);
}

/* ---- matches ---- */

struct cand {
    uint32_t len, dist;
    float price; /* of the distance, for lengths of 5 or more */
    uint8_t near;
};

struct finder {
    const int32_t *sa, *rank, *lcp;
};

/* The longest earlier matches at here (longest first, each with the
 * smallest distance found for at least its length), capped at limit. */
static uint32_t match_len(const struct enc *e, uint32_t here, uint32_t dist, uint32_t limit)
{
    if (dist > here)
        return 0;
    uint32_t l = 0;
    while (l < limit && e->dict[here + l] == e->dict[here - dist + l])
        l++;
    return l;
}

/* The earlier matches at here worth trying (longest first, each with a
 * distance cheaper than every longer one's), capped at limit. Among equally
 * long ones the suffix array's nearest comes first: it matches furthest
 * beyond the cap. */
static int find(const struct enc *e, const struct finder *f, const struct mstate *ms, uint32_t here, uint32_t limit,
                struct cand *out)
{
    int32_t r = f->rank[here];
    /* each way, the running LCP only shrinks: both lists come longest first */
    struct cand side[2][SCAN];
    int ns[2] = {0, 0};
    for (int w = 0; w < 2; w++) {
        int dir = w ? 1 : -1;
        uint32_t l = UINT32_MAX;
        int32_t i = r;
        for (int steps = 0; steps < SCAN; steps++) {
            int32_t nb = i + dir;
            if (nb < 0 || nb >= (int32_t)e->n)
                break;
            uint32_t h = (uint32_t)f->lcp[dir < 0 ? i : nb];
            l = h < l ? h : l;
            if (l < ALOFT_DELTA_MIN_MATCH)
                break;
            i = nb;
            uint32_t q = (uint32_t)f->sa[i];
            if (q < here && limit >= ALOFT_DELTA_MIN_MATCH)
                side[w][ns[w]++] = (struct cand){l < limit ? l : limit, here - q, 0, 0};
        }
    }
    int a = 0, b = 0, m = 0;
    float best = INFINITY;
    while ((a < ns[0] || b < ns[1]) && m < MAX_CANDS) {
        struct cand c;
        if (b >= ns[1] || (a < ns[0] && side[0][a].len >= side[1][b].len))
            c = side[0][a++];
        else
            c = side[1][b++];
        c.price = dist_price(e, ms, c.dist, ALOFT_DELTA_MIN_MATCH + 3, &c.near);
        if (c.price < best) {
            best = c.price;
            if (m && out[m - 1].len == c.len)
                out[m - 1] = c;
            else
                out[m++] = c;
        }
    }
    return m;
}

/* ---- the parse ---- */

struct node {
    float cost;
    uint32_t from;
    struct tok t;
    struct mstate m;
};

/* Encode the result bytes [at, end) of one block (the model already reset). */
static int encode_block(struct enc *e, const struct finder *f, uint32_t at, uint32_t end, struct node *nd,
                        struct tok *path)
{
    struct mstate m = {{e->base, e->base, e->base, e->base}, {{0}}, 0, 1};
    while (at < end) {
        update_prices(e);
        uint32_t wend = end - at > WINDOW ? at + WINDOW : end;
        uint32_t W = wend - at;
        for (uint32_t j = 0; j <= W; j++)
            nd[j].cost = INFINITY;
        nd[0].cost = 0;
        nd[0].m = m;
        uint32_t stop = W;
        for (uint32_t j = 0; j < W; j++) {
            if (nd[j].cost == INFINITY)
                continue;
            const struct node *cur = &nd[j];
            uint32_t here = at + j, limit = wend - here;
            unsigned ps = (here - e->base) & 3;
            if (limit > ALOFT_DELTA_MAX_MATCH)
                limit = ALOFT_DELTA_MAX_MATCH;
            struct node cand;
            /* literal */
            int use_diff;
            float c = cur->cost + lit_price(e, here, &cur->m, &use_diff);
            if (c < nd[j + 1].cost) {
                cand = (struct node){c, j, {use_diff ? T_DIFF : T_LIT, 0, 1, 0, 0}, cur->m};
                apply(&cand.m, &cand.t);
                nd[j + 1] = cand;
            }
            /* fields */
            for (unsigned ft = 0; ft < ALOFT_DELTA_FIELD_TYPES; ft++) {
                struct tok t;
                c = cur->cost + field_price(e, here, &cur->m, ft, &t);
                if (t.len <= limit && c < nd[j + t.len].cost) {
                    cand = (struct node){c, j, t, cur->m};
                    apply(&cand.m, &cand.t);
                    nd[j + t.len] = cand;
                }
            }
            /* repeats */
            uint32_t longest = 0;
            struct tok nice = {0};
            for (unsigned k = 0; k < 4; k++) {
                uint32_t len = match_len(e, here, cur->m.rep[k], limit);
                if (k == 0 && len >= 1) {
                    c = cur->cost + shortrep_price(e, &cur->m, ps);
                    if (c < nd[j + 1].cost) {
                        cand = (struct node){c, j, {T_SHORTREP, 0, 1, 0, 0}, cur->m};
                        apply(&cand.m, &cand.t);
                        nd[j + 1] = cand;
                    }
                }
                if (len < ALOFT_DELTA_MIN_MATCH)
                    continue;
                if (len > longest)
                    longest = len, nice = (struct tok){T_REP, (uint8_t)k, len, 0, 0};
                float base = cur->cost + rep_price(e, &cur->m, k, ps);
                for (uint32_t l = ALOFT_DELTA_MIN_MATCH; l <= len; l++) {
                    c = base + e->len_price[1][ALOFT_DELTA_REP_LEN_CTX(cur->m.state, ps)][l];
                    if (c < nd[j + l].cost) {
                        cand = (struct node){c, j, {T_REP, (uint8_t)k, l, 0, 0}, cur->m};
                        apply(&cand.m, &cand.t);
                        nd[j + l] = cand;
                    }
                }
            }
            /* new distances */
            struct cand cs[MAX_CANDS];
            int nc = longest >= NICE ? 0 : find(e, f, &cur->m, here, limit, cs);
            float mbase = cur->cost + pr(e->p[ALOFT_DELTA_P_IS_MATCH + cur->m.state * ALOFT_DELTA_PB + ps], 1) +
                          pr(e->p[ALOFT_DELTA_P_IS_REP + cur->m.state], 0);
            uint32_t lo = ALOFT_DELTA_MIN_MATCH;
            for (int k = nc - 1; k >= 0; k--) { /* shortest (closest) first */
                if (cs[k].len > longest)
                    longest = cs[k].len, nice = (struct tok){T_MATCH, cs[k].near, cs[k].len, cs[k].dist, 0};
                for (uint32_t l = lo; l <= cs[k].len; l++) {
                    uint8_t near = cs[k].near;
                    float dp = l >= ALOFT_DELTA_MIN_MATCH + 3 ? cs[k].price : dist_price(e, &cur->m, cs[k].dist, l, &near);
                    c = mbase + e->len_price[0][ps][l] + dp;
                    if (c < nd[j + l].cost) {
                        cand = (struct node){c, j, {T_MATCH, near, l, cs[k].dist, 0}, cur->m};
                        apply(&cand.m, &cand.t);
                        nd[j + l] = cand;
                    }
                }
                lo = cs[k].len + 1;
            }
            if (longest >= NICE || (longest == limit && longest >= ALOFT_DELTA_MIN_MATCH)) {
                /* take it: the path to j, then this token */
                cand = (struct node){0, j, nice, cur->m};
                apply(&cand.m, &cand.t);
                nd[j + nice.len] = cand;
                stop = j + nice.len;
                break;
            }
        }
        /* walk back, then encode forward */
        size_t np = 0;
        for (uint32_t j = stop; j > 0; j = nd[j].from)
            path[np++] = nd[j].t;
        uint32_t here = at;
        while (np) {
            const struct tok *t = &path[--np];
            enc_token(e, &m, here, t);
            here += t->len;
        }
        at = here;
        if (e->rc.oom)
            return ALOFT_E_NOSPC;
    }
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

int aloft_delta_make(const uint8_t *base, size_t base_len, const uint8_t *result, size_t result_len,
                     unsigned block_shift, aloft_delta_progress_fn progress, void *progress_ctx,
                     uint8_t **patch, size_t *patch_len)
{
    if (!block_shift)
        block_shift = 16;
    if (!base_len || !result_len || block_shift < 12 || block_shift > 20 || base_len >= (1u << 30) ||
        result_len >= (1u << 30))
        return ALOFT_E_INVAL;
    if (price_tab[1] == 0)
        for (unsigned i = 1; i <= PROB_ONE; i++)
            price_tab[i] = (float)-log2(i / (double)PROB_ONE);
    struct enc *e = calloc(1, sizeof *e);
    uint32_t n = (uint32_t)(base_len + result_len);
    uint8_t *dict = malloc(n);
    int32_t *sa = malloc(sizeof *sa * n), *rank = malloc(sizeof *rank * n), *lcp = malloc(sizeof *lcp * n);
    struct node *nd = malloc(sizeof *nd * (WINDOW + 1));
    struct tok *path = malloc(sizeof *path * (WINDOW + 1));
    int rc = ALOFT_E_NOSPC;
    if (!e || !dict || !sa || !rank || !lcp || !nd || !path)
        goto out;
    memcpy(dict, base, base_len);
    memcpy(dict + base_len, result, result_len);
    if (suffix_array(dict, (int32_t)n, sa, rank, lcp))
        goto out;
    e->dict = dict, e->base = (uint32_t)base_len, e->n = n;
    struct finder f = {sa, rank, lcp};

    uint8_t hdr[ALOFT_DELTA_HEADER_BYTES] = {0};
    memcpy(hdr, ALOFT_DELTA_MAGIC, 4);
    hdr[4] = ALOFT_DELTA_VERSION;
    hdr[6] = (uint8_t)block_shift;
    put32(hdr + 8, (uint32_t)base_len);
    put32(hdr + 12, (uint32_t)result_len);
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, base, base_len);
    aloft_sha256_final(&s, hdr + 16);
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, result, result_len);
    aloft_sha256_final(&s, hdr + 48);
    put32(hdr + 80, ~aloft_crc32(0xFFFFFFFFu, hdr, 80));
    for (size_t i = 0; i < sizeof hdr; i++)
        rc_byte(&e->rc, hdr[i]);

    uint32_t bs = 1u << block_shift;
    for (uint32_t at = 0; at < result_len && !e->rc.oom; at += bs) {
        uint32_t end = result_len - at > bs ? at + bs : (uint32_t)result_len;
        for (size_t k = 0; k < ALOFT_DELTA_PROBS; k++)
            e->p[k] = PROB_ONE / 2;
        rc_start(&e->rc);
        if ((rc = encode_block(e, &f, e->base + at, e->base + end, nd, path)) != 0)
            goto out;
        rc_flush(&e->rc);
        if (progress)
            progress(progress_ctx, end, result_len);
    }
    rc = e->rc.oom ? ALOFT_E_NOSPC : 0;
    if (rc == 0) {
        *patch = e->rc.out;
        *patch_len = e->rc.len;
        e->rc.out = NULL;
    }
out:
    if (e)
        free(e->rc.out);
    free(e);
    free(dict);
    free(sa);
    free(rank);
    free(lcp);
    free(nd);
    free(path);
    return rc;
}

/* ---- applying in memory ---- */

struct mem {
    const uint8_t *base;
    size_t base_len;
    uint8_t *out;
    size_t len, cap;
};

static int mem_read(void *ctx, uint32_t pos, void *buf, size_t len)
{
    struct mem *m = ctx;
    if (pos < m->base_len) {
        if (len > m->base_len - pos)
            return ALOFT_E_BASE; /* the header says the base is longer */
        memcpy(buf, m->base + pos, len);
        return 0;
    }
    pos -= (uint32_t)m->base_len;
    if (pos > m->len || len > m->len - pos)
        return ALOFT_E_IO;
    memcpy(buf, m->out + pos, len);
    return 0;
}

static int mem_start(void *ctx, const struct aloft_delta_header *h, uint32_t from)
{
    struct mem *m = ctx;
    (void)from;
    if (h->base_size != m->base_len)
        return ALOFT_E_BASE;
    m->cap = h->result_size;
    m->out = malloc(m->cap);
    return m->out ? 0 : ALOFT_E_NOSPC;
}

static int mem_write(void *ctx, const void *buf, size_t len)
{
    struct mem *m = ctx;
    if (len > m->cap - m->len)
        return ALOFT_E_NOSPC;
    memcpy(m->out + m->len, buf, len);
    m->len += len;
    return 0;
}

int aloft_delta_apply(const uint8_t *base, size_t base_len, const uint8_t *patch, size_t patch_len,
                      uint8_t **result, size_t *result_len)
{
    struct mem m = {base, base_len, NULL, 0, 0};
    struct aloft_delta_io io = {&m, mem_read, mem_start, mem_write};
    struct aloft_delta *d = malloc(sizeof *d);
    if (!d)
        return ALOFT_E_NOSPC;
    aloft_delta_begin(d, &io);
    int rc = aloft_delta_write(d, patch, patch_len);
    if (rc == 0)
        rc = aloft_delta_end(d);
    free(d);
    if (rc) {
        free(m.out);
        return rc;
    }
    *result = m.out;
    *result_len = m.len;
    return 0;
}
