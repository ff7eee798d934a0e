/* libFuzzer harness: the agent's mDNS responder (agent/mdns.c), handed
 * datagrams as a device's glue hands them. Input: a flags byte (bit 0: a
 * PSK is set; bit 1: from port 5353, else a legacy resolver's port; bit 2:
 * named desk-lamp, else by its MAC; bit 3: the announcement says goodbye;
 * bits 4-7: the answer buffer is cut to 12 + 32 * that many bytes, else
 * full), then the datagram. Checked: the answer fits its buffer (bytes past it
 * untouched), and is a well-formed DNS response: a header, as many
 * questions and records as it says, every name inside the message with
 * pointers that point back, every record's data inside it; a legacy
 * answer echoes the ID and the question section. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/image.h"
#include "aloft/mdns.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_mdns: %s\n", what);
    abort();
}

/* The offset after the name at off, or fail. */
static size_t name_end(const uint8_t *p, size_t len, size_t off)
{
    size_t end = 0;
    for (int hops = 0; hops < 128; hops++) {
        if (off >= len)
            fail("a name runs past the answer");
        if (p[off] >= 0xC0) {
            size_t to = (size_t)(p[off] & 0x3F) << 8 | (off + 1 < len ? p[off + 1] : 0);
            if (off + 1 >= len || to >= off)
                fail("a pointer past the answer or not back");
            end = end ? end : off + 2;
            off = to;
            continue;
        }
        if (p[off] > 63)
            fail("a label over 63 bytes");
        if (!p[off])
            return end ? end : off + 1;
        off += 1 + p[off];
    }
    fail("a name of too many labels");
    return 0;
}

static void well_formed(const uint8_t *p, size_t len)
{
    if (len < 12 || (p[2] & 0xFC) != 0x84 || p[8] || p[9])
        fail("not a DNS response header");
    size_t off = 12;
    for (unsigned i = (unsigned)p[4] << 8 | p[5]; i; i--)
        off = name_end(p, len, off) + 4;
    for (unsigned i = ((unsigned)p[6] << 8 | p[7]) + ((unsigned)p[10] << 8 | p[11]); i; i--) {
        off = name_end(p, len, off);
        if (off + 10 > len)
            fail("a record cut short");
        off += 10 + ((size_t)p[off + 8] << 8 | p[off + 9]);
    }
    if (off != len)
        fail("the counts do not say what is in the answer");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct aloft_agent agent;
    static struct aloft_mdns m;
    static uint8_t out[ALOFT_MDNS_PACKET_MAX + 64];
    if (size < 1)
        return 0;
    memset(&agent, 0, sizeof agent);
    strcpy(agent.mac, "02:00:00:00:00:01");
    agent.app.chip_id = (uint16_t)aloft_chip_id("esp32c3");
    if (data[0] & 1)
        strcpy(agent.psk, "secret");
    if (aloft_mdns_init(&m, &agent, data[0] & 4 ? "desk-lamp" : NULL, (const uint8_t[]){10, 0, 0, 7}, 3232))
        fail("the name does not take");
    size_t cap = data[0] >> 4 ? 12 + 32 * (size_t)(data[0] >> 4) : ALOFT_MDNS_PACKET_MAX;
    cap = cap < ALOFT_MDNS_PACKET_MAX ? cap : ALOFT_MDNS_PACKET_MAX;
    memset(out, 0xA5, sizeof out);
    bool unicast;
    uint16_t from = data[0] & 2 ? ALOFT_MDNS_PORT : 40000;
    int len = aloft_mdns_answer(&agent, &m, data + 1, size - 1, from, out, cap, &unicast);
    if (len < 0 || (size_t)len > cap)
        fail("an answer longer than its buffer");
    for (size_t i = cap; i < sizeof out; i++)
        if (out[i] != 0xA5)
            fail("a byte written past the buffer");
    if (len) {
        well_formed(out, (size_t)len);
        if (from != ALOFT_MDNS_PORT && (!unicast || memcmp(out, data + 1, 2) || memcmp(out + 4, data + 5, 2)))
            fail("a legacy answer that is not sent back with the query's ID and question count");
    }
    len = aloft_mdns_announce(&agent, &m, data[0] & 8, out, cap);
    if (len < 0 || (size_t)len > cap)
        fail("an announcement longer than its buffer");
    if (len)
        well_formed(out, (size_t)len);
    return 0;
}
