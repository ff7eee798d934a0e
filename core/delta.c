/* aloft: the delta decoder. Push-fed (no blocking reads): a token is decoded
 * only while the input buffer holds more than any token can take, so the
 * range decoder never waits in the middle of one. The dictionary is the base
 * and the result written so far, read back through io. */
#include "aloft/delta.h"

#include <string.h>

#include "aloft/err.h"

enum { PH_HEADER, PH_BLOCK, PH_TOKENS, PH_DONE };

/* No token takes more than ~340 bits (six flags, a length, a slot, 26 direct
 * and 4 align bits at the coder's worst 12 bits per modelled bit; a near
 * match's flag, repeat and sign bits are three of the six). */
#define TOKEN_MAX_BYTES 48
#define TOP (1u << 24)

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int aloft_delta_header_parse(struct aloft_delta_header *h, const uint8_t raw[ALOFT_DELTA_HEADER_BYTES])
{
    if (memcmp(raw, ALOFT_DELTA_MAGIC, 4) != 0)
        return ALOFT_E_MAGIC;
    if (~aloft_crc32(0xFFFFFFFFu, raw, 80) != le32(raw + 80))
        return ALOFT_E_CORRUPT;
    h->block_shift = raw[6];
    h->base_size = le32(raw + 8);
    h->result_size = le32(raw + 12);
    memcpy(h->base_sha256, raw + 16, 32);
    memcpy(h->result_sha256, raw + 48, 32);
    if (raw[4] != ALOFT_DELTA_VERSION || raw[5] || raw[7] || h->block_shift < 12 || h->block_shift > 20 ||
        !h->base_size || !h->result_size)
        return ALOFT_E_HEADER;
    return 0;
}

static void init_probs(struct aloft_delta *d)
{
    for (size_t i = 0; i < ALOFT_DELTA_PROBS; i++)
        d->p[i] = 1u << (ALOFT_DELTA_PROB_BITS - 1); /* even odds, nothing seen */
}

static void start_common(struct aloft_delta *d, const struct aloft_delta_io *io)
{
    memset(d, 0, offsetof(struct aloft_delta, in));
    d->io = *io;
    d->phase = PH_HEADER;
}

void aloft_delta_begin(struct aloft_delta *d, const struct aloft_delta_io *io)
{
    start_common(d, io);
}

void aloft_delta_resume(struct aloft_delta *d, const struct aloft_delta_io *io, uint32_t ck_patch, uint32_t ck_out)
{
    start_common(d, io);
    d->skip_to = ck_patch;
    d->ck_out = ck_out;
}

void aloft_delta_checkpoint(const struct aloft_delta *d, uint32_t *ck_patch, uint32_t *ck_out)
{
    *ck_patch = d->ck_patch;
    *ck_out = d->ck_out;
}

/* ---- the range decoder; reading past the buffered input marks it so ---- */

static uint8_t in_byte(struct aloft_delta *d, uint16_t *at)
{
    if (*at < d->in_len)
        return d->in[(*at)++];
    d->err = ALOFT_E_TRUNCATED;
    return 0;
}

static void normalize(struct aloft_delta *d, uint16_t *at)
{
    while (d->range < TOP) {
        d->range <<= 8;
        d->code = d->code << 8 | in_byte(d, at);
    }
}

static unsigned bit(struct aloft_delta *d, uint16_t *at, uint16_t *p)
{
    uint32_t bound = (d->range >> ALOFT_DELTA_PROB_BITS) * ALOFT_DELTA_PVAL(*p);
    unsigned b = d->code >= bound;
    if (!b) {
        d->range = bound;
    } else {
        d->range -= bound;
        d->code -= bound;
    }
    aloft_delta_adapt(p, b);
    normalize(d, at);
    return b;
}

static uint32_t tree(struct aloft_delta *d, uint16_t *at, uint16_t *p, unsigned bits)
{
    uint32_t m = 1;
    for (unsigned i = 0; i < bits; i++)
        m = m << 1 | bit(d, at, p + m);
    return m - (1u << bits);
}

static uint32_t rtree(struct aloft_delta *d, uint16_t *at, uint16_t *p, unsigned bits)
{
    uint32_t m = 1, v = 0;
    for (unsigned i = 0; i < bits; i++) {
        unsigned b = bit(d, at, p + m);
        m = m << 1 | b;
        v |= (uint32_t)b << i;
    }
    return v;
}

static uint32_t direct(struct aloft_delta *d, uint16_t *at, unsigned bits)
{
    uint32_t v = 0;
    while (bits--) {
        d->range >>= 1;
        uint32_t b = d->code >= d->range;
        if (b)
            d->code -= d->range;
        v = v << 1 | b;
        normalize(d, at);
    }
    return v;
}

static uint32_t length(struct aloft_delta *d, uint16_t *at, uint16_t *p, unsigned ps)
{
    if (!bit(d, at, p))
        return ALOFT_DELTA_MIN_MATCH + tree(d, at, p + 2 + ps * 8, 3);
    if (!bit(d, at, p + 1))
        return ALOFT_DELTA_MIN_MATCH + 8 + tree(d, at, p + 2 + ALOFT_DELTA_PB * 8 + ps * 8, 3);
    return ALOFT_DELTA_MIN_MATCH + 16 + tree(d, at, p + 2 + 2 * ALOFT_DELTA_PB * 8, 8);
}

/* A distance - 1 (or a near match's offset - 1), its slot from table ls. */
static uint32_t distance(struct aloft_delta *d, uint16_t *at, unsigned ls)
{
    uint32_t slot = tree(d, at, d->p + ALOFT_DELTA_P_DIST_SLOT + ls * 64, 6);
    if (slot < 4)
        return slot;
    unsigned nd = (slot >> 1) - 1;
    uint32_t dist = (2 | (slot & 1)) << nd;
    if (slot < 14)
        dist += rtree(d, at, d->p + ALOFT_DELTA_P_DIST_SPECIAL + dist - slot - 1, nd);
    else
        dist += direct(d, at, nd - 4) << 4 | rtree(d, at, d->p + ALOFT_DELTA_P_ALIGN, 4);
    return dist;
}

/* ---- the dictionary: base ‖ result ---- */

static int flush(struct aloft_delta *d)
{
    if (!d->out_len)
        return 0;
    aloft_sha256_update(&d->sha, d->buf, d->out_len);
    int rc = d->io.write(d->io.ctx, d->buf, d->out_len);
    d->flushed += d->out_len;
    d->out_len = 0;
    return rc;
}

/* The byte at dictionary position pos (< base_size + out). */
static int dict(struct aloft_delta *d, uint32_t pos)
{
    if (pos >= d->h.base_size + d->flushed)
        return d->buf[pos - d->h.base_size - d->flushed];
    if (pos - d->cache_pos >= d->cache_len) {
        uint32_t end = d->h.base_size + d->flushed;
        uint32_t n = end - pos < sizeof d->cache ? end - pos : (uint32_t)sizeof d->cache;
        if (pos < d->h.base_size && n > d->h.base_size - pos)
            n = d->h.base_size - pos; /* one read never spans base and result */
        int rc = d->io.read(d->io.ctx, pos, d->cache, n);
        if (rc)
            return rc;
        d->cache_pos = pos;
        d->cache_len = (uint16_t)n;
    }
    return d->cache[pos - d->cache_pos];
}

static int put(struct aloft_delta *d, uint8_t c)
{
    if (d->out_len == sizeof d->buf) {
        int rc = flush(d);
        if (rc)
            return rc;
    }
    d->buf[d->out_len++] = c;
    d->out++;
    return 0;
}

/* Copy len bytes from distance dist back. */
static int copy(struct aloft_delta *d, uint32_t dist, uint32_t len)
{
    uint32_t here = d->h.base_size + d->out;
    if (dist - 1 >= here) /* 0 (a distance that wrapped) or before the dictionary */
        return ALOFT_E_CORRUPT;
    while (len--) {
        int c = dict(d, here++ - dist);
        if (c < 0)
            return c;
        int rc = put(d, (uint8_t)c);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- tokens ---- */

static unsigned after_lit(unsigned s)
{
    return s < 4 ? 0 : s < 10 ? s - 3 : s - 6;
}

/* Result bytes left in the current block: no token crosses its end. */
static uint32_t block_left(const struct aloft_delta *d)
{
    uint32_t end = ((d->out >> d->h.block_shift) + 1) << d->h.block_shift;
    return (end > d->h.result_size ? d->h.result_size : end) - d->out;
}

/* A field: the old bytes at the last distance plus a recent or a new delta. */
static int field(struct aloft_delta *d, uint16_t *at)
{
    uint32_t here = d->h.base_size + d->out, from = here - d->rep[0], delta, v = 0;
    if (d->rep[0] - 1 >= here)
        return ALOFT_E_CORRUPT;
    int c = dict(d, from);
    if (c < 0)
        return c;
    unsigned t = tree(d, at, d->p + ALOFT_DELTA_P_FIELD_TYPE + (c & 15) * 4, 2), w = ALOFT_DELTA_FIELD_W(t);
    unsigned k = ALOFT_DELTA_FIELD_MRU - 1;
    uint32_t *mru = d->field[t];
    if (bit(d, at, d->p + ALOFT_DELTA_P_FIELD_HIT + t)) {
        k = tree(d, at, d->p + ALOFT_DELTA_P_FIELD_IDX + t * ALOFT_DELTA_FIELD_MRU, ALOFT_DELTA_FIELD_MRU_BITS);
        delta = mru[k];
    } else {
        unsigned neg = bit(d, at, d->p + ALOFT_DELTA_P_FIELD_SIGN + t);
        delta = distance(d, at, 5) + 1;
        delta = neg ? 0u - delta : delta;
    }
    for (; k; k--)
        mru[k] = mru[k - 1];
    mru[0] = delta;
    if (d->rep[0] < w || w > block_left(d))
        return ALOFT_E_CORRUPT;
    for (unsigned i = w; i--;) {
        if ((c = dict(d, from + i)) < 0)
            return c;
        v = v << 8 | (unsigned)c;
    }
    v += delta << ALOFT_DELTA_FIELD_S(t);
    d->state = (uint8_t)after_lit(d->state);
    for (; w; w--, v >>= 8)
        if ((c = put(d, (uint8_t)v)) != 0)
            return c;
    return 0;
}

static int literal(struct aloft_delta *d, uint16_t *at, unsigned ps)
{
    uint32_t here = d->h.base_size + d->out;
    if (d->aligned && bit(d, at, d->p + ALOFT_DELTA_P_IS_FIELD + d->state))
        return field(d, at);
    if (d->aligned && bit(d, at, d->p + ALOFT_DELTA_P_IS_DIFF + d->state * ALOFT_DELTA_PB + ps)) {
        if (d->rep[0] - 1 >= here)
            return ALOFT_E_CORRUPT;
        int old = dict(d, here - d->rep[0]);
        if (old < 0)
            return old;
        uint32_t diff = tree(d, at, d->p + ALOFT_DELTA_P_DIFF, 8);
        d->state = (uint8_t)after_lit(d->state);
        return put(d, (uint8_t)(old + diff));
    }
    int old = d->rep[0] - 1 < here ? dict(d, here - d->rep[0]) : 0;
    if (old < 0)
        return old;
    uint16_t *lp = d->p + ALOFT_DELTA_P_LIT;
    unsigned m = (unsigned)old, c = 1;
    do {
        unsigned mb = (m >> 7) & 1;
        m <<= 1;
        unsigned b = bit(d, at, lp + 0x100 + (mb << 8) + c);
        c = c << 1 | b;
        if (mb != b) {
            while (c < 0x100)
                c = c << 1 | bit(d, at, lp + c);
            break;
        }
    } while (c < 0x100);
    c &= 0xFF;
    d->state = (uint8_t)after_lit(d->state);
    d->aligned = 0;
    return put(d, (uint8_t)c);
}

static int token(struct aloft_delta *d, uint16_t *at)
{
    unsigned s = d->state, ps = d->out & 3;
    uint16_t *p = d->p;
    if (!bit(d, at, p + ALOFT_DELTA_P_IS_MATCH + s * ALOFT_DELTA_PB + ps))
        return literal(d, at, ps);
    uint32_t len, dist;
    if (!bit(d, at, p + ALOFT_DELTA_P_IS_REP + s)) {
        len = length(d, at, p + ALOFT_DELTA_P_LEN, ps);
        if (bit(d, at, p + ALOFT_DELTA_P_IS_NEAR + s)) {
            /* near one of the repeat distances: code moved by a few bytes */
            uint32_t k = tree(d, at, p + ALOFT_DELTA_P_NEAR_REP, 2);
            unsigned neg = bit(d, at, p + ALOFT_DELTA_P_NEAR_SIGN + k);
            uint32_t off = distance(d, at, 4) + 1;
            dist = neg ? d->rep[k] - off : d->rep[k] + off;
        } else {
            dist = distance(d, at, len - ALOFT_DELTA_MIN_MATCH < 3 ? len - ALOFT_DELTA_MIN_MATCH : 3) + 1;
        }
        d->rep[3] = d->rep[2], d->rep[2] = d->rep[1], d->rep[1] = d->rep[0], d->rep[0] = dist;
        d->state = s < 7 ? 7 : 10;
    } else {
        if (!bit(d, at, p + ALOFT_DELTA_P_IS_REP_G0 + s)) {
            if (!bit(d, at, p + ALOFT_DELTA_P_IS_REP0_LONG + s * ALOFT_DELTA_PB + ps)) {
                d->state = s < 7 ? 9 : 11;
                d->aligned = 1;
                return copy(d, d->rep[0], 1);
            }
        } else {
            unsigned k = !bit(d, at, p + ALOFT_DELTA_P_IS_REP_G1 + s) ? 1
                         : !bit(d, at, p + ALOFT_DELTA_P_IS_REP_G2 + s) ? 2 : 3;
            dist = d->rep[k];
            for (; k; k--)
                d->rep[k] = d->rep[k - 1];
            d->rep[0] = dist;
        }
        len = length(d, at, p + ALOFT_DELTA_P_REP_LEN, ALOFT_DELTA_REP_LEN_CTX(s, ps));
        d->state = s < 7 ? 8 : 11;
    }
    d->aligned = 1;
    if (len > block_left(d))
        return ALOFT_E_CORRUPT;
    return copy(d, d->rep[0], len);
}

/* ---- the stream ---- */

static void block_reset(struct aloft_delta *d)
{
    init_probs(d);
    d->state = 0;
    d->aligned = 1;
    for (int i = 0; i < 4; i++)
        d->rep[i] = d->h.base_size; /* the same offset in the base */
    memset(d->field, 0, sizeof d->field);
}

static int check_base(struct aloft_delta *d)
{
    aloft_sha256_init(&d->sha);
    for (uint32_t pos = 0; pos < d->h.base_size;) {
        uint32_t n = d->h.base_size - pos < sizeof d->buf ? d->h.base_size - pos : (uint32_t)sizeof d->buf;
        int rc = d->io.read(d->io.ctx, pos, d->buf, n);
        if (rc)
            return rc;
        aloft_sha256_update(&d->sha, d->buf, n);
        pos += n;
    }
    uint8_t sum[32];
    aloft_sha256_final(&d->sha, sum);
    return memcmp(sum, d->h.base_sha256, 32) ? ALOFT_E_BASE : 0;
}

/* The result's first `from` bytes, already written, into the hash. */
static int rehash(struct aloft_delta *d, uint32_t from)
{
    aloft_sha256_init(&d->sha);
    for (uint32_t pos = 0; pos < from;) {
        uint32_t n = from - pos < sizeof d->buf ? from - pos : (uint32_t)sizeof d->buf;
        int rc = d->io.read(d->io.ctx, d->h.base_size + pos, d->buf, n);
        if (rc)
            return rc;
        aloft_sha256_update(&d->sha, d->buf, n);
        pos += n;
    }
    return 0;
}

static int header(struct aloft_delta *d)
{
    int rc = aloft_delta_header_parse(&d->h, d->buf);
    uint32_t from = d->ck_out;
    if (rc == 0 && (from > d->h.result_size || from & ((1u << d->h.block_shift) - 1)))
        rc = ALOFT_E_INVAL;
    if (rc == 0)
        rc = check_base(d);
    if (rc == 0)
        rc = d->io.start(d->io.ctx, &d->h, from);
    if (rc == 0)
        rc = rehash(d, from);
    if (rc)
        return rc;
    d->out_len = 0;
    d->out = d->flushed = from;
    d->consumed = d->skip_to > ALOFT_DELTA_HEADER_BYTES ? d->skip_to : ALOFT_DELTA_HEADER_BYTES;
    d->ck_patch = d->consumed;
    d->phase = from == d->h.result_size ? PH_DONE : PH_BLOCK;
    return 0;
}

/* Decode while the input allows (all of it when final). */
static int run(struct aloft_delta *d, int final)
{
    uint16_t at = 0;
    int rc = 0;
    while (rc == 0 && d->phase != PH_DONE && d->phase != PH_HEADER) {
        uint16_t left = d->in_len - at;
        if (!final && left < TOKEN_MAX_BYTES)
            break;
        if (final && left == 0 && d->phase == PH_BLOCK)
            break;
        uint16_t was = at;
        if (d->phase == PH_BLOCK) {
            rc = flush(d);
            if (rc)
                break;
            d->ck_patch = d->consumed;
            d->ck_out = d->out;
            block_reset(d);
            d->range = 0xFFFFFFFFu;
            d->code = 0;
            for (int i = 0; i < 5; i++)
                d->code = d->code << 8 | in_byte(d, &at);
            d->phase = PH_TOKENS;
        } else {
            rc = token(d, &at);
            if (d->out == d->h.result_size)
                d->phase = PH_DONE;
            else if ((d->out & ((1u << d->h.block_shift) - 1)) == 0)
                d->phase = PH_BLOCK;
        }
        if (d->err)
            rc = d->err;
        d->consumed += (uint32_t)(at - was);
    }
    for (uint16_t i = at; i < d->in_len; i++) /* the core has no memmove */
        d->in[i - at] = d->in[i];
    d->in_len -= at;
    return rc;
}

int aloft_delta_write(struct aloft_delta *d, const void *data, size_t len)
{
    const uint8_t *s = data;
    while (len && d->err == 0) {
        if (d->phase == PH_HEADER) {
            size_t n = ALOFT_DELTA_HEADER_BYTES - d->out_len;
            n = n < len ? n : len;
            memcpy(d->buf + d->out_len, s, n);
            d->out_len = (uint16_t)(d->out_len + n);
            s += n, len -= n;
            if (d->out_len == ALOFT_DELTA_HEADER_BYTES)
                d->err = header(d);
            continue;
        }
        if (d->phase == PH_DONE) {
            d->err = ALOFT_E_TRAILING;
            break;
        }
        size_t n = sizeof d->in - d->in_len;
        n = n < len ? n : len;
        memcpy(d->in + d->in_len, s, n);
        d->in_len = (uint16_t)(d->in_len + n);
        s += n, len -= n;
        d->err = run(d, 0);
        if (d->err == 0 && d->phase == PH_DONE && (d->in_len || len))
            d->err = ALOFT_E_TRAILING;
    }
    return d->err;
}

int aloft_delta_end(struct aloft_delta *d)
{
    if (d->err)
        return d->err;
    if (d->phase == PH_HEADER)
        return d->err = ALOFT_E_TRUNCATED;
    d->err = run(d, 1);
    if (d->err == 0 && d->phase != PH_DONE)
        d->err = ALOFT_E_TRUNCATED;
    if (d->err == 0 && d->in_len)
        d->err = ALOFT_E_TRAILING;
    if (d->err == 0)
        d->err = flush(d);
    if (d->err)
        return d->err;
    uint8_t sum[32];
    aloft_sha256_final(&d->sha, sum);
    if (memcmp(sum, d->h.result_sha256, 32))
        return d->err = ALOFT_E_HASH;
    d->ck_out = d->out; /* all written: nothing left to resume */
    d->ck_patch = d->consumed;
    return 0;
}
