/* aloft: MD5 (RFC 1321), for the partition table's MD5 entry and the
 * x-MD5 header of HTTPUpdate. Not used for security. */
#include "aloft/crypto.h"

#include <string.h>

static const uint32_t T[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

static const uint8_t R[16] = {7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21};

static void block(uint32_t h[4], const uint8_t *p)
{
    uint32_t x[16];
    for (int i = 0; i < 16; i++)
        x[i] = p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 |
               (uint32_t)p[4 * i + 3] << 24;
    uint32_t a = h[0], b = h[1], c = h[2], d = h[3];
    for (int i = 0; i < 64; i++) {
        uint32_t f;
        int g;
        switch (i >> 4) {
        case 0: f = (b & c) | (~b & d); g = i; break;
        case 1: f = (d & b) | (~d & c); g = (5 * i + 1) & 15; break;
        case 2: f = b ^ c ^ d; g = (3 * i + 5) & 15; break;
        default: f = c ^ (b | ~d); g = (7 * i) & 15; break;
        }
        uint32_t t = a + f + T[i] + x[g];
        int r = R[(i >> 4) * 4 + (i & 3)];
        a = d;
        d = c;
        c = b;
        b += (t << r) | (t >> (32 - r));
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
}

void aloft_md5_init(struct aloft_md5 *m)
{
    m->h[0] = 0x67452301;
    m->h[1] = 0xefcdab89;
    m->h[2] = 0x98badcfe;
    m->h[3] = 0x10325476;
    m->len = 0;
}

void aloft_md5_update(struct aloft_md5 *m, const void *data, size_t len)
{
    const uint8_t *p = data;
    size_t fill = (size_t)(m->len & 63);
    m->len += len;
    if (fill) {
        size_t take = 64 - fill < len ? 64 - fill : len;
        memcpy(m->buf + fill, p, take);
        p += take;
        len -= take;
        if (fill + take < 64)
            return;
        block(m->h, m->buf);
    }
    for (; len >= 64; p += 64, len -= 64)
        block(m->h, p);
    memcpy(m->buf, p, len);
}

void aloft_md5_final(struct aloft_md5 *m, uint8_t out[16])
{
    /* Bit length as two words: a variable 64-bit shift needs libgcc on rv32. */
    uint32_t lo = (uint32_t)(m->len << 3), hi = (uint32_t)(m->len >> 29);
    size_t fill = (size_t)(m->len & 63);
    m->buf[fill++] = 0x80;
    if (fill > 56) {
        memset(m->buf + fill, 0, 64 - fill);
        block(m->h, m->buf);
        fill = 0;
    }
    memset(m->buf + fill, 0, 56 - fill);
    for (int i = 0; i < 4; i++) {
        m->buf[56 + i] = (uint8_t)(lo >> (8 * i));
        m->buf[60 + i] = (uint8_t)(hi >> (8 * i));
    }
    block(m->h, m->buf);
    for (int i = 0; i < 16; i++)
        out[i] = (uint8_t)(m->h[i / 4] >> (8 * (i % 4)));
}
