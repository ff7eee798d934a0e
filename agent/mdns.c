/* aloft agent: the mDNS/DNS-SD responder that shows the device to the
 * Arduino IDE (mdns.h). Names are compared in their uncompressed wire form,
 * lower case; answers compress each name after its first use. */
#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/mdns.h"

enum { T_A = 1, T_PTR = 12, T_TXT = 16, T_SRV = 33, T_ANY = 255 };
enum { R_SD = 1, R_PTR = 2, R_SRV = 4, R_TXT = 8, R_A = 16, R_ALL = 31 };

/* The names: their own labels, then their parent's; N_INST and N_HOST
 * begin with the device's name. */
enum { N_LOCAL, N_SVC, N_SD, N_INST, N_HOST, N_END };
static const uint8_t parent[] = {N_END, N_LOCAL, N_LOCAL, N_SVC, N_LOCAL};
static const char *const heads[] = {"\5local", "\10_arduino\4_tcp", "\11_services\7_dns-sd\4_udp"};

/* The records, by bit: owner name, type, rdata's name (0: not a name). */
static const uint8_t owner[] = {N_SD, N_SVC, N_INST, N_INST, N_HOST};
static const uint8_t rtype[] = {T_PTR, T_PTR, T_SRV, T_TXT, T_A};
static const uint8_t target[] = {N_SVC, N_INST, N_HOST, 0, 0};

/* not inlined: a dozen callers, each a byte swap on rv32 otherwise */
static __attribute__((noinline)) unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint8_t lower(uint8_t c)
{
    return (uint8_t)((unsigned)(c - 'A') < 26 ? c + 32 : c);
}

/* Name id's own labels in wire form into buf; their length. */
static size_t head(const struct aloft_mdns *m, unsigned id, uint8_t *buf)
{
    if (id < N_INST) {
        memcpy(buf, heads[id], strlen(heads[id]));
        return strlen(heads[id]);
    }
    size_t n = strlen(m->name);
    buf[0] = (uint8_t)n;
    memcpy(buf + 1, m->name, n);
    return n + 1;
}

/* Is the wire name q (ql bytes) name id? */
static bool is(const struct aloft_mdns *m, unsigned id, const uint8_t *q, size_t ql)
{
    uint8_t w[2 * ALOFT_MDNS_NAME_MAX];
    size_t n = 0;
    for (; id != N_END; id = parent[id])
        n += head(m, id, w + n);
    w[n++] = 0;
    return n == ql && !memcmp(w, q, n);
}

/* The name at p[at] (pointers followed) into q, uncompressed, lower case,
 * its length in *ql. Returns the offset after it in p, 0 when malformed.
 * Pointers must point back (and past the header): with the 255-byte
 * limit no loop can last. */
static size_t name_get(const uint8_t *p, size_t len, size_t at, uint8_t q[256], size_t *ql)
{
    size_t end = 0, n = 0;
    for (;;) {
        if (at >= len)
            return 0;
        unsigned c = p[at];
        if (c >= 0xC0) {
            /* never into the header: a question echoed to a legacy resolver follows another one */
            if (at + 1 >= len || ((c & 0x3F) << 8 | p[at + 1]) >= at || ((c & 0x3F) << 8 | p[at + 1]) < 12)
                return 0;
            end = end ? end : at + 2;
            at = (c & 0x3F) << 8 | p[at + 1];
            continue;
        }
        if (c > 63 || n + c >= 255 || at + c >= len)
            return 0;
        q[n++] = (uint8_t)c;
        for (unsigned i = 1; i <= c; i++)
            q[n++] = lower(p[at + i]);
        at += c + 1;
        if (!c) {
            *ql = n;
            return end ? end : at;
        }
    }
}

/* The records a question (or a known answer) of type about name q is for. */
static unsigned asked(const struct aloft_mdns *m, const uint8_t *q, size_t ql, unsigned type)
{
    unsigned r = 0;
    for (unsigned i = 0; i < sizeof owner; i++)
        if ((type == rtype[i] || type == T_ANY) && is(m, owner[i], q, ql))
            r |= 1u << i;
    return r;
}

struct out {
    uint8_t *o;
    size_t n, cap;      /* n may pass cap: nothing is written there, the record is dropped */
    uint16_t at[N_END]; /* where each name was written first, for pointers */
};

static void put(struct out *w, const void *d, size_t n)
{
    if (w->n + n <= w->cap)
        memcpy(w->o + w->n, d, n);
    w->n += n;
}

static void put16(struct out *w, unsigned v)
{
    put(w, (uint8_t[]){(uint8_t)(v >> 8), (uint8_t)v}, 2);
}

static void put_name(struct out *w, const struct aloft_mdns *m, unsigned id)
{
    uint8_t buf[ALOFT_MDNS_NAME_MAX + 1];
    for (; id != N_END; id = parent[id]) {
        if (w->at[id]) {
            put16(w, 0xC000 | w->at[id]);
            return;
        }
        if (w->n < 0x3FFF)
            w->at[id] = (uint16_t)w->n;
        put(w, buf, head(m, id, buf));
    }
    put(w, "", 1);
}

/* Record i with ttl; cache-flush bit on the unique ones (not PTRs) unless
 * legacy. Returns whether it fitted (else nothing of it stays). */
static bool rr(struct out *w, const struct aloft_agent *a, const struct aloft_mdns *m, unsigned i, uint32_t ttl,
               bool legacy)
{
    struct out was = *w;
    put_name(w, m, owner[i]);
    const uint8_t fixed[16] = {0, rtype[i], i >= 2 && !legacy ? 0x80 : 0, 1, (uint8_t)(ttl >> 24), (uint8_t)(ttl >> 16),
                               (uint8_t)(ttl >> 8), (uint8_t)ttl, 0, 0, 0, 0, 0, 0, (uint8_t)(m->port >> 8),
                               (uint8_t)m->port};
    size_t len_at = w->n + 8;
    put(w, fixed, i == 2 ? 16 : 10); /* type, class, TTL, length; SRV: priority, weight, port */
    if (target[i]) {
        put_name(w, m, target[i]);
    } else if (i == 3) {
        const char *chip = aloft_chip_name(a->app.chip_id);
        chip = chip ? chip : "esp32";
        bool auth = a->psk[0];
        put(w, (uint8_t[]){(uint8_t)(6 + strlen(chip))}, 1);
        put(w, "board=", 6);
        put(w, chip, strlen(chip));
        put(w, "\14tcp_check=no\15ssh_upload=no", 27);
        put(w, auth ? "\17auth_upload=yes" : "\16auth_upload=no", 15u + auth);
    } else {
        put(w, m->ip, 4);
    }
    if (w->n > w->cap) {
        *w = was;
        return false;
    }
    w->o[len_at] = (uint8_t)((w->n - len_at - 2) >> 8);
    w->o[len_at + 1] = (uint8_t)(w->n - len_at - 2);
    return true;
}

/* The header and the records of answers, then of extra, TTLs at most max.
 * An answer that does not fit sets TC; an additional one is left out. */
static int respond(struct out *w, const struct aloft_agent *a, const struct aloft_mdns *m, unsigned answers,
                   unsigned extra, uint32_t max, bool legacy)
{
    unsigned count[2] = {0, 0};
    for (unsigned sec = 0; sec < 2; sec++)
        for (unsigned i = 0; i < sizeof owner; i++) {
            if (!((sec ? extra : answers) >> i & 1))
                continue;
            uint32_t ttl = i == 2 || i == 4 ? ALOFT_MDNS_HOST_TTL : ALOFT_MDNS_TTL;
            if (rr(w, a, m, i, ttl < max ? ttl : max, legacy))
                count[sec]++;
            else if (!sec)
                w->o[2] |= 0x02; /* TC */
        }
    w->o[7] = (uint8_t)count[0];
    w->o[11] = (uint8_t)count[1];
    return (int)w->n;
}

int aloft_mdns_answer(const struct aloft_agent *a, const struct aloft_mdns *m, const void *in, size_t len,
                      uint16_t from, uint8_t *out, size_t cap, bool *unicast)
{
    const uint8_t *p = in;
    uint8_t q[256];
    size_t at = 12, ql;
    unsigned want = 0, known = 0;
    bool legacy = from != ALOFT_MDNS_PORT;
    *unicast = legacy;
    /* queries only: no response (QR), standard opcode, no error code */
    if (len < 12 || p[2] & 0xF8 || p[3] & 0x0F)
        return 0;
    for (unsigned i = be16(p + 4); i; i--) {
        if (!(at = name_get(p, len, at, q, &ql)) || at + 4 > len)
            return 0;
        unsigned cls = be16(p + at + 2), r = (cls & 0x7FFF) == 1 || (cls & 0x7FFF) == 255
                                                 ? asked(m, q, ql, be16(p + at)) : 0;
        if (r && cls & 0x8000) /* QU: a unicast answer is asked for */
            *unicast = true;
        want |= r;
        at += 4;
    }
    size_t questions = at;
    for (unsigned i = be16(p + 6); i; i--) { /* known answers */
        if (!(at = name_get(p, len, at, q, &ql)) || at + 10 > len || at + 10 + be16(p + at + 8) > len)
            return 0;
        unsigned r = asked(m, q, ql, be16(p + at)) & (R_SD | R_PTR), type = be16(p + at);
        uint32_t ttl = (uint32_t)be16(p + at + 4) << 16 | be16(p + at + 6);
        size_t rdata = at + 10;
        at = rdata + be16(p + at + 8);
        if (r && type == T_PTR && ttl >= ALOFT_MDNS_TTL / 2 && name_get(p, at, rdata, q, &ql) &&
            is(m, r == R_SD ? N_SVC : N_INST, q, ql))
            known |= r;
    }
    want &= ~known;
    if (!want || cap < 12 || (legacy && questions > cap))
        return 0;
    struct out w = {.o = out, .n = 12, .cap = cap};
    memset(out, 0, 12);
    out[2] = 0x84; /* a response, authoritative */
    if (legacy) { /* ID and questions as asked: at the same offsets, their pointers still hold */
        memcpy(out, p, 2);
        memcpy(out + 4, p + 4, 2);
        memcpy(out + 12, p + 12, questions - 12);
        w.n = questions;
    }
    unsigned extra = (want & R_PTR ? R_SRV | R_TXT | R_A : 0) | (want & R_SRV ? R_A : 0);
    return respond(&w, a, m, want, extra & ~want, legacy ? ALOFT_MDNS_LEGACY_TTL : UINT32_MAX, legacy);
}

int aloft_mdns_announce(const struct aloft_agent *a, const struct aloft_mdns *m, bool goodbye, uint8_t *out,
                        size_t cap)
{
    if (cap < 12)
        return 0;
    struct out w = {.o = out, .n = 12, .cap = cap};
    memset(out, 0, 12);
    out[2] = 0x84;
    return respond(&w, a, m, R_ALL, 0, goodbye ? 0 : UINT32_MAX, false) == 12 || out[2] & 0x02 ? 0 : (int)w.n;
}

int aloft_mdns_init(struct aloft_mdns *m, const struct aloft_agent *a, const char *name, const uint8_t ip[4],
                    uint16_t port)
{
    char def[19] = "aloft-", *o = m->name;
    size_t n = 6;
    if (!name) { /* "aloft-" and the MAC's digits */
        for (const char *s = a->mac; *s && n < 18; s++)
            if (*s != ':')
                def[n++] = *s;
        name = def;
    }
    for (n = 0; name[n] && n <= ALOFT_MDNS_NAME_MAX; n++)
        o[n] = (char)lower((uint8_t)name[n]);
    if (!n || n > ALOFT_MDNS_NAME_MAX)
        return ALOFT_E_INVAL;
    o[n] = 0;
    if (o[0] == '-' || o[strspn(o, "abcdefghijklmnopqrstuvwxyz0123456789-")])
        return ALOFT_E_INVAL;
    memcpy(m->ip, ip, 4);
    m->port = port;
    return 0;
}
