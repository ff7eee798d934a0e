/* libFuzzer harness: the delta decoder (core/delta.c). The input is a
 * patch's body: the harness puts a valid header in front of it (its base is
 * a fixed 4 KB buffer, so the base check passes and the fuzzed bytes reach
 * the token decoder; the result's size comes from the first two bytes), and
 * feeds it in pieces whose size comes from the third. Checked: every
 * dictionary read stays inside the base or the result written so far, the
 * result never grows past the header's size, and a patch that decodes to the
 * end reports the size the header names. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/crypto.h"
#include "aloft/delta.h"
#include "aloft/err.h"

#define BASE 4096u

static uint8_t base[BASE], out[1u << 16];
static size_t out_len, result_size;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_delta: %s\n", what);
    abort();
}

static int f_read(void *ctx, uint32_t pos, void *buf, size_t len)
{
    (void)ctx;
    if (pos < BASE) {
        if (len > BASE - pos)
            fail("a read spans the base and the result");
        memcpy(buf, base + pos, len);
    } else {
        if (pos - BASE > out_len || len > out_len - (pos - BASE))
            fail("a read past the result written so far");
        memcpy(buf, out + (pos - BASE), len);
    }
    return 0;
}

static int f_start(void *ctx, const struct aloft_delta_header *h, uint32_t from)
{
    (void)ctx;
    if (from || h->result_size != result_size)
        fail("start with another size or offset");
    out_len = 0;
    return 0;
}

static int f_write(void *ctx, const void *buf, size_t len)
{
    (void)ctx;
    if (len > result_size - out_len)
        fail("the result grew past its size");
    memcpy(out + out_len, buf, len);
    out_len += len;
    return 0;
}

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    if (!base[1])
        for (unsigned i = 0; i < BASE; i++)
            base[i] = (uint8_t)(i * 2654435761u >> 13);
    result_size = 1 + ((size_t)data[0] | (size_t)data[1] << 8);
    size_t piece = (size_t)data[2] * 7 + 1;
    data += 3, size -= 3;

    uint8_t h[ALOFT_DELTA_HEADER_BYTES] = {0};
    memcpy(h, ALOFT_DELTA_MAGIC, 4);
    h[4] = ALOFT_DELTA_VERSION;
    h[6] = 12;
    put32(h + 8, BASE);
    put32(h + 12, (uint32_t)result_size);
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, base, BASE);
    aloft_sha256_final(&s, h + 16);
    put32(h + 80, ~aloft_crc32(0xFFFFFFFFu, h, 80));

    static struct aloft_delta d;
    struct aloft_delta_io io = {NULL, f_read, f_start, f_write};
    aloft_delta_begin(&d, &io);
    int rc = aloft_delta_write(&d, h, sizeof h);
    if (rc)
        fail("the harness's own header was refused");
    for (size_t at = 0; at < size && rc == 0; at += piece)
        rc = aloft_delta_write(&d, data + at, size - at < piece ? size - at : piece);
    if (rc == 0)
        rc = aloft_delta_end(&d);
    if ((rc == 0 || rc == ALOFT_E_HASH) && out_len != result_size)
        fail("decoded to the end with another size");
    return 0;
}
