/* The mDNS/DNS-SD responder (agent/mdns.c) packet by packet: which
 * questions get which records, the legacy unicast rules (ID and questions
 * echoed, TTL at most 10, no cache-flush bit), QU, known-answer
 * suppression, the announcement and its goodbye, auth_upload following the
 * PSK, and malformed packets (pointer loops, forward pointers, pointers
 * into the header, names and records cut short, responses) that get no
 * answer. The answers are read
 * back by a decoder written here from RFC 1035. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/mdns.h"

static struct aloft_agent agent;
static struct aloft_mdns m;
static uint8_t out[ALOFT_MDNS_PACKET_MAX];
static bool unicast;

static int setup(void **state)
{
    (void)state;
    memset(&agent, 0, sizeof agent);
    strcpy(agent.mac, "24:0A:C4:12:AB:EF");
    agent.app.chip_id = (uint16_t)aloft_chip_id("esp32s3");
    strcpy(agent.psk, "secret");
    assert_int_equal(aloft_mdns_init(&m, &agent, "Desk-Lamp", (const uint8_t[]){192, 168, 1, 40}, 3232), 0);
    return 0;
}

/* ---- a query builder ---- */

struct q {
    uint8_t b[600];
    size_t n;
};

static void q_begin(struct q *q, uint16_t id, unsigned questions, unsigned answers)
{
    memset(q, 0, sizeof *q);
    q->b[0] = (uint8_t)(id >> 8), q->b[1] = (uint8_t)id;
    q->b[5] = (uint8_t)questions, q->b[7] = (uint8_t)answers;
    q->n = 12;
}

static void q_name(struct q *q, const char *dotted)
{
    while (*dotted) {
        size_t l = strcspn(dotted, ".");
        q->b[q->n++] = (uint8_t)l;
        memcpy(q->b + q->n, dotted, l);
        q->n += l;
        dotted += l + (dotted[l] == '.');
    }
    q->b[q->n++] = 0;
}

static void q_u16(struct q *q, unsigned v)
{
    q->b[q->n++] = (uint8_t)(v >> 8), q->b[q->n++] = (uint8_t)v;
}

static void q_question(struct q *q, const char *name, unsigned type, unsigned cls)
{
    q_name(q, name);
    q_u16(q, type);
    q_u16(q, cls);
}

static int ask(const struct q *q, uint16_t from)
{
    return aloft_mdns_answer(&agent, &m, q->b, q->n, from, out, sizeof out, &unicast);
}

/* ---- a response decoder ---- */

struct rec {
    char name[256], target[256], txt[256];
    unsigned type, cls, port;
    uint32_t ttl;
    uint8_t ip[4];
};

struct resp {
    unsigned id, flags, qd, an, ar;
    struct rec r[8];
};

/* A name at off in p (len) as dotted text; returns the offset after it. */
static size_t get_name(const uint8_t *p, size_t len, size_t off, char *s)
{
    size_t end = 0, n = 0;
    for (int hops = 0; hops < 20; hops++) {
        assert_true(off < len);
        if (p[off] >= 0xC0) {
            end = end ? end : off + 2;
            off = (size_t)(p[off] & 0x3F) << 8 | p[off + 1];
            continue;
        }
        size_t l = p[off];
        if (!l) {
            s[n ? n - 1 : 0] = 0;
            return end ? end : off + 1;
        }
        assert_true(off + 1 + l <= len);
        memcpy(s + n, p + off + 1, l);
        n += l;
        s[n++] = '.';
        off += l + 1;
    }
    fail_msg("a name with a pointer loop in the answer");
    return 0;
}

static unsigned u16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void decode(const uint8_t *p, int len, struct resp *r)
{
    assert_true(len >= 12);
    memset(r, 0, sizeof *r);
    r->id = u16(p), r->flags = u16(p + 2), r->qd = u16(p + 4), r->an = u16(p + 6), r->ar = u16(p + 10);
    assert_int_equal(u16(p + 8), 0);
    size_t off = 12;
    char skip[256];
    for (unsigned i = 0; i < r->qd; i++)
        off = get_name(p, (size_t)len, off, skip) + 4;
    assert_true(r->an + r->ar <= 8);
    for (unsigned i = 0; i < r->an + r->ar; i++) {
        struct rec *x = &r->r[i];
        off = get_name(p, (size_t)len, off, x->name);
        x->type = u16(p + off), x->cls = u16(p + off + 2);
        x->ttl = (uint32_t)u16(p + off + 4) << 16 | u16(p + off + 6);
        size_t rdlen = u16(p + off + 8), rd = off + 10;
        off = rd + rdlen;
        assert_true(off <= (size_t)len);
        if (x->type == 12)
            assert_int_equal(get_name(p, (size_t)len, rd, x->target), off);
        if (x->type == 33) {
            x->port = u16(p + rd + 4);
            assert_int_equal(get_name(p, (size_t)len, rd + 6, x->target), off);
        }
        if (x->type == 1) {
            assert_int_equal(rdlen, 4);
            memcpy(x->ip, p + rd, 4);
        }
        if (x->type == 16) /* the strings, space-separated */
            for (size_t k = rd, n = 0; k < off; k += 1 + p[k]) {
                memcpy(x->txt + n, p + k + 1, p[k]);
                n += p[k];
                x->txt[n++] = k + 1 + p[k] < off ? ' ' : 0;
            }
    }
    assert_int_equal(off, (size_t)len);
}

static const struct rec *find(const struct resp *r, unsigned type, bool additional)
{
    unsigned from = additional ? r->an : 0, to = additional ? r->an + r->ar : r->an;
    for (unsigned i = from; i < to; i++)
        if (r->r[i].type == type)
            return &r->r[i];
    return NULL;
}

/* ---- tests ---- */

static void ptr_query_gets_the_service_with_its_records(void **state)
{
    (void)state;
    struct q q;
    struct resp r;
    q_begin(&q, 0, 1, 0);
    q_question(&q, "_arduino._tcp.local", 12, 1);
    int len = ask(&q, 5353);
    assert_true(len > 12);
    assert_false(unicast);
    decode(out, len, &r);
    assert_int_equal(r.id, 0);
    assert_int_equal(r.flags, 0x8400);
    assert_int_equal(r.qd, 0);
    assert_int_equal(r.an, 1);
    assert_int_equal(r.ar, 3);
    const struct rec *ptr = find(&r, 12, false), *srv = find(&r, 33, true), *txt = find(&r, 16, true),
                     *a = find(&r, 1, true);
    assert_non_null(ptr), assert_non_null(srv), assert_non_null(txt), assert_non_null(a);
    assert_string_equal(ptr->name, "_arduino._tcp.local");
    assert_string_equal(ptr->target, "desk-lamp._arduino._tcp.local");
    assert_int_equal(ptr->cls, 1); /* shared: no cache-flush bit */
    assert_int_equal(ptr->ttl, 4500);
    assert_string_equal(srv->name, "desk-lamp._arduino._tcp.local");
    assert_string_equal(srv->target, "desk-lamp.local");
    assert_int_equal(srv->port, 3232);
    assert_int_equal(srv->cls, 0x8001);
    assert_int_equal(srv->ttl, 120);
    assert_string_equal(txt->txt, "board=esp32s3 tcp_check=no ssh_upload=no auth_upload=yes");
    assert_int_equal(txt->cls, 0x8001);
    assert_string_equal(a->name, "desk-lamp.local");
    assert_memory_equal(a->ip, ((uint8_t[]){192, 168, 1, 40}), 4);
    assert_int_equal(a->ttl, 120);
}

static void legacy_unicast_echoes_id_and_question(void **state)
{
    (void)state;
    struct q q;
    struct resp r;
    q_begin(&q, 0xBEEF, 1, 0);
    q_question(&q, "DESK-LAMP.local", 1, 1); /* names compare without case */
    int len = ask(&q, 40123);
    assert_true(len > 12);
    assert_true(unicast);
    decode(out, len, &r);
    assert_int_equal(r.id, 0xBEEF);
    assert_int_equal(r.qd, 1);
    assert_memory_equal(out + 12, q.b + 12, q.n - 12);
    assert_int_equal(r.an, 1);
    assert_int_equal(r.ar, 0);
    assert_int_equal(r.r[0].type, 1);
    assert_int_equal(r.r[0].cls, 1); /* no cache-flush bit to a legacy resolver */
    assert_int_equal(r.r[0].ttl, 10);
    assert_memory_equal(r.r[0].ip, ((uint8_t[]){192, 168, 1, 40}), 4);

    q_begin(&q, 7, 1, 0);
    q_question(&q, "_arduino._tcp.local", 12, 1);
    decode(out, ask(&q, 40124), &r);
    assert_int_equal(r.an + r.ar, 4);
    for (unsigned i = 0; i < 4; i++) {
        assert_true(r.r[i].ttl <= 10);
        assert_int_equal(r.r[i].cls, 1);
    }
}

static void srv_txt_any_and_services(void **state)
{
    (void)state;
    struct q q;
    struct resp r;
    q_begin(&q, 0, 1, 0);
    q_question(&q, "desk-lamp._arduino._tcp.local", 33, 1);
    decode(out, ask(&q, 5353), &r);
    assert_int_equal(r.an, 1);
    assert_int_equal(r.r[0].type, 33);
    assert_int_equal(r.ar, 1);
    assert_non_null(find(&r, 1, true));

    q_begin(&q, 0, 1, 0);
    q_question(&q, "desk-lamp._arduino._tcp.local", 255, 1); /* ANY: SRV and TXT */
    decode(out, ask(&q, 5353), &r);
    assert_int_equal(r.an, 2);
    assert_non_null(find(&r, 33, false));
    assert_non_null(find(&r, 16, false));

    q_begin(&q, 0, 1, 0);
    q_question(&q, "_services._dns-sd._udp.local", 12, 1);
    decode(out, ask(&q, 5353), &r);
    assert_int_equal(r.an, 1);
    assert_int_equal(r.ar, 0);
    assert_string_equal(r.r[0].target, "_arduino._tcp.local");
}

static void other_questions_get_nothing(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        unsigned type, cls;
    } no[] = {
        {"_http._tcp.local", 12, 1},          {"other._arduino._tcp.local", 33, 1},
        {"desk-lamp.local", 28, 1},           {"desk-lamp.local", 1, 3}, /* class CH */
        {"desk-lamp.localx", 1, 1},           {"desk-lamp", 1, 1},
        {"desk-lamp._arduino._tcp.local", 1, 1},
    };
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        struct q q;
        q_begin(&q, 1, 1, 0);
        q_question(&q, no[i].name, no[i].type, no[i].cls);
        assert_int_equal(ask(&q, 5353), 0);
        assert_int_equal(ask(&q, 1234), 0);
    }
}

static void qu_bit_asks_for_unicast(void **state)
{
    (void)state;
    struct q q;
    q_begin(&q, 0, 1, 0);
    q_question(&q, "desk-lamp.local", 1, 0x8001);
    struct resp r;
    decode(out, ask(&q, 5353), &r);
    assert_true(unicast);
    assert_int_equal(r.id, 0);
    assert_int_equal(r.qd, 0);
    assert_int_equal(r.r[0].cls, 0x8001);
}

static void known_answer_suppresses_the_ptr(void **state)
{
    (void)state;
    struct q q;
    struct resp r;
    /* the question, and our PTR as known with a pointer to the question's name */
    for (unsigned ttl = 4500, k = 0; k < 2; k++, ttl = 2000) {
        q_begin(&q, 0, 1, 1);
        q_question(&q, "_arduino._tcp.local", 12, 1);
        q_u16(&q, 0xC00C), q_u16(&q, 12), q_u16(&q, 1), q_u16(&q, 0), q_u16(&q, ttl);
        size_t rdlen_at = q.n;
        q_u16(&q, 0);
        q.b[q.n++] = 9;
        memcpy(q.b + q.n, "Desk-Lamp", 9);
        q.n += 9;
        q_u16(&q, 0xC00C);
        q.b[rdlen_at + 1] = (uint8_t)(q.n - rdlen_at - 2);
        int len = ask(&q, 5353);
        if (ttl == 4500) { /* known, and fresh: nothing to say */
            assert_int_equal(len, 0);
        } else { /* less than half its TTL left: answered again */
            decode(out, len, &r);
            assert_int_equal(r.an, 1);
            assert_int_equal(r.r[0].type, 12);
        }
    }
    /* another device's PTR suppresses nothing */
    q_begin(&q, 0, 1, 1);
    q_question(&q, "_arduino._tcp.local", 12, 1);
    q_u16(&q, 0xC00C), q_u16(&q, 12), q_u16(&q, 1), q_u16(&q, 0), q_u16(&q, 4500), q_u16(&q, 8);
    q.b[q.n++] = 5;
    memcpy(q.b + q.n, "other", 5);
    q.n += 5;
    q_u16(&q, 0xC00C);
    decode(out, ask(&q, 5353), &r);
    assert_int_equal(r.an, 1);
}

static void auth_upload_follows_the_psk(void **state)
{
    (void)state;
    struct q q;
    struct resp r;
    q_begin(&q, 0, 1, 0);
    q_question(&q, "desk-lamp._arduino._tcp.local", 16, 1);
    agent.psk[0] = 0;
    agent.app.chip_id = (uint16_t)aloft_chip_id("esp32c3");
    decode(out, ask(&q, 5353), &r);
    assert_string_equal(r.r[0].txt, "board=esp32c3 tcp_check=no ssh_upload=no auth_upload=no");
    strcpy(agent.psk, "x");
    decode(out, ask(&q, 5353), &r);
    assert_string_equal(r.r[0].txt, "board=esp32c3 tcp_check=no ssh_upload=no auth_upload=yes");
}

static void announce_and_goodbye(void **state)
{
    (void)state;
    struct resp r;
    decode(out, aloft_mdns_announce(&agent, &m, false, out, sizeof out), &r);
    assert_int_equal(r.id, 0);
    assert_int_equal(r.flags, 0x8400);
    assert_int_equal(r.an, 5);
    assert_int_equal(r.ar, 0);
    const unsigned types[] = {12, 12, 33, 16, 1}, ttls[] = {4500, 4500, 120, 4500, 120};
    for (unsigned i = 0; i < 5; i++) {
        assert_int_equal(r.r[i].type, types[i]);
        assert_int_equal(r.r[i].ttl, ttls[i]);
    }
    assert_string_equal(r.r[0].name, "_services._dns-sd._udp.local");
    decode(out, aloft_mdns_announce(&agent, &m, true, out, sizeof out), &r);
    assert_int_equal(r.an, 5);
    for (unsigned i = 0; i < 5; i++)
        assert_int_equal(r.r[i].ttl, 0);
    /* no room: nothing, not half an announcement */
    assert_int_equal(aloft_mdns_announce(&agent, &m, false, out, 100), 0);
}

static void small_buffer_drops_additionals_then_truncates(void **state)
{
    (void)state;
    struct q q;
    struct resp r;
    q_begin(&q, 0, 1, 0);
    q_question(&q, "_arduino._tcp.local", 12, 1);
    int full = ask(&q, 5353);
    int len = aloft_mdns_answer(&agent, &m, q.b, q.n, 5353, out, (size_t)full - 1, &unicast);
    decode(out, len, &r);
    assert_int_equal(r.an, 1);
    assert_true(r.ar < 3);
    assert_int_equal(r.flags & 0x0200, 0);
    len = aloft_mdns_answer(&agent, &m, q.b, q.n, 5353, out, 30, &unicast);
    decode(out, len, &r);
    assert_int_equal(r.an, 0);
    assert_int_equal(r.flags & 0x0200, 0x0200); /* TC */
}

static void malformed_packets_get_nothing(void **state)
{
    (void)state;
    struct q q, good;
    q_begin(&good, 0, 1, 0);
    q_question(&good, "desk-lamp.local", 1, 1);
    assert_true(ask(&good, 5353) > 0);
    /* every truncation of a good query */
    for (size_t n = 0; n < good.n; n++)
        assert_int_equal(aloft_mdns_answer(&agent, &m, good.b, n, 5353, out, sizeof out, &unicast), 0);
    /* a response, another opcode, an error code */
    const uint8_t flags[][2] = {{0x84, 0}, {0x28, 0}, {0, 3}};
    for (size_t i = 0; i < 3; i++) {
        q = good;
        q.b[2] = flags[i][0], q.b[3] = flags[i][1];
        assert_int_equal(ask(&q, 5353), 0);
    }
    /* a pointer to itself, one forward, a loop of two */
    q_begin(&q, 0, 1, 0);
    q_u16(&q, 0xC00C), q_u16(&q, 1), q_u16(&q, 1);
    assert_int_equal(ask(&q, 5353), 0);
    q_begin(&q, 0, 1, 0);
    q_u16(&q, 0xC00E), q_u16(&q, 1), q_u16(&q, 1);
    assert_int_equal(ask(&q, 5353), 0);
    /* a pointer into the header: echoed to a legacy resolver, it would read other bytes there */
    q_begin(&q, 0, 1, 0); /* desk-lamp.local, its root the zero of the flags byte */
    q.b[q.n++] = 9;
    memcpy(q.b + q.n, "desk-lamp\5local", 15);
    q.n += 15;
    q_u16(&q, 0xC002), q_u16(&q, 1), q_u16(&q, 1);
    assert_int_equal(ask(&q, 1234), 0);
    q_begin(&q, 0, 2, 0);
    q.b[q.n++] = 1, q.b[q.n++] = 'x', q_u16(&q, 0xC014); /* x -> the second name: forward */
    q_u16(&q, 1), q_u16(&q, 1);
    q_u16(&q, 0xC00C), q_u16(&q, 1), q_u16(&q, 1); /* at 0x14: back to x: x x x ... */
    assert_int_equal(ask(&q, 5353), 0);
    /* a label over 63, a name over 255 */
    q_begin(&q, 0, 1, 0);
    q.b[q.n++] = 64;
    memset(q.b + q.n, 'a', 64);
    q.n += 64;
    q.b[q.n++] = 0;
    q_u16(&q, 1), q_u16(&q, 1);
    assert_int_equal(ask(&q, 5353), 0);
    q_begin(&q, 0, 1, 0);
    for (int i = 0; i < 5; i++) {
        q.b[q.n++] = 60;
        memset(q.b + q.n, 'a', 60);
        q.n += 60;
    }
    q.b[q.n++] = 0;
    q_u16(&q, 1), q_u16(&q, 1);
    assert_int_equal(ask(&q, 5353), 0);
    /* more questions than there are: the good one is not answered either */
    q = good;
    q.b[5] = 2;
    assert_int_equal(ask(&q, 5353), 0);
    /* a known answer whose rdata runs past the packet */
    q = good;
    q.b[7] = 1;
    q_u16(&q, 0xC00C), q_u16(&q, 12), q_u16(&q, 1), q_u16(&q, 0), q_u16(&q, 4500), q_u16(&q, 40);
    assert_int_equal(ask(&q, 5353), 0);
}

static void names(void **state)
{
    (void)state;
    struct aloft_mdns x;
    const uint8_t ip[4] = {10, 0, 0, 1};
    assert_int_equal(aloft_mdns_init(&x, &agent, NULL, ip, 3232), 0);
    assert_string_equal(x.name, "aloft-240ac412abef");
    assert_int_equal(aloft_mdns_init(&x, &agent, "a", ip, 1), 0);
    assert_int_equal(aloft_mdns_init(&x, &agent, "abcdefghijabcdefghijabcdefghij12", ip, 1), 0);
    const char *bad[] = {"", "-lamp", "desk lamp", "desk.lamp", "lämp", "abcdefghijabcdefghijabcdefghij123"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(aloft_mdns_init(&x, &agent, bad[i], ip, 1), ALOFT_E_INVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(ptr_query_gets_the_service_with_its_records, setup),
        cmocka_unit_test_setup(legacy_unicast_echoes_id_and_question, setup),
        cmocka_unit_test_setup(srv_txt_any_and_services, setup),
        cmocka_unit_test_setup(other_questions_get_nothing, setup),
        cmocka_unit_test_setup(qu_bit_asks_for_unicast, setup),
        cmocka_unit_test_setup(known_answer_suppresses_the_ptr, setup),
        cmocka_unit_test_setup(auth_upload_follows_the_psk, setup),
        cmocka_unit_test_setup(announce_and_goodbye, setup),
        cmocka_unit_test_setup(small_buffer_drops_additionals_then_truncates, setup),
        cmocka_unit_test_setup(malformed_packets_get_nothing, setup),
        cmocka_unit_test_setup(names, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
