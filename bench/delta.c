/* bench/delta: what decoding a delta patch costs per byte of the result,
 * next to hashing the same bytes with the same SHA-256 and nothing else.
 *
 * The patch is made (outside the measured phases) from the real ESP-IDF pair
 * in the shared fixtures, then decoded in memory by the device's decoder
 * (core/delta.c: aloft_delta_begin/write/end, fed in 1460-byte chunks as TCP
 * delivers them), reading the base and the result written so far back by
 * offset as it would from flash. The decode includes the base check (SHA-256
 * of the old image) and the result's SHA-256. The measured phases are the
 * functions bench_phase_sha256 (of NEW), bench_phase_sha256_old and
 * bench_phase_decode; bench/delta.sh counts
 * instructions in each with callgrind; run alone, this program prints wall
 * times.
 *
 * usage: bench_delta [--once] [OLD NEW] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/crypto.h"
#include "aloft/delta.h"
#include "aloft/err.h"
#include "delta.h"
#include "file.h"

#define CHUNK 1460u
#define RUNS 5

static const uint8_t *old_img, *new_img;
static size_t old_len, new_len;
static uint8_t *out;
static size_t out_len;

static int m_read(void *ctx, uint32_t pos, void *buf, size_t len)
{
    (void)ctx;
    if (pos < old_len)
        memcpy(buf, old_img + pos, len);
    else
        memcpy(buf, out + (pos - old_len), len);
    return 0;
}

static int m_start(void *ctx, const struct aloft_delta_header *h, uint32_t from)
{
    (void)ctx, (void)h, (void)from;
    out_len = 0;
    return 0;
}

static int m_write(void *ctx, const void *buf, size_t len)
{
    (void)ctx;
    memcpy(out + out_len, buf, len);
    out_len += len;
    return 0;
}

__attribute__((noinline)) void bench_phase_sha256(const uint8_t *data, size_t len, uint8_t sum[32])
{
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, data, len);
    aloft_sha256_final(&s, sum);
}

/* The decoder's base check hashes OLD: this phase tells that part apart. */
__attribute__((noinline)) void bench_phase_sha256_old(const uint8_t *data, size_t len, uint8_t sum[32])
{
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, data, len);
    aloft_sha256_final(&s, sum);
}

static struct aloft_delta dec;

__attribute__((noinline)) int bench_phase_decode(const uint8_t *patch, size_t len)
{
    struct aloft_delta_io io = {NULL, m_read, m_start, m_write};
    aloft_delta_begin(&dec, &io);
    for (size_t off = 0; off < len; off += CHUNK) {
        int rc = aloft_delta_write(&dec, patch + off, len - off < CHUNK ? len - off : CHUNK);
        if (rc)
            return rc;
    }
    return aloft_delta_end(&dec);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    int once = argc > 1 && !strcmp(argv[1], "--once");
    const char *op = ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-v0.4.3.bin";
    const char *np = ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-v0.6.4.bin";
    if (argc - once == 3)
        op = argv[1 + once], np = argv[2 + once];
    uint8_t *a, *b, *patch;
    size_t patch_len;
    if (aloft_file_read(op, &a, &old_len) || aloft_file_read(np, &b, &new_len)) {
        fprintf(stderr, "bench_delta: cannot read %s or %s\n", op, np);
        return 1;
    }
    old_img = a, new_img = b;
    out = malloc(new_len);
    int rc = aloft_delta_make(a, old_len, b, new_len, 0, NULL, NULL, &patch, &patch_len);
    if (rc) {
        fprintf(stderr, "bench_delta: make: %s\n", aloft_strerror(rc));
        return 1;
    }
    printf("old %zu\nnew %zu\npatch %zu\nchunk %u\nstate %zu\n", old_len, new_len, patch_len, CHUNK, sizeof dec);
    double t_sha = 1e9, t_dec = 1e9;
    for (int r = 0; r < (once ? 1 : RUNS); r++) {
        uint8_t sum[32];
        bench_phase_sha256_old(old_img, old_len, sum);
        double t0 = now();
        bench_phase_sha256(new_img, new_len, sum);
        double t1 = now();
        rc = bench_phase_decode(patch, patch_len);
        double t2 = now();
        if (rc || out_len != new_len || memcmp(out, new_img, new_len)) {
            fprintf(stderr, "bench_delta: decode failed: %s\n", rc ? aloft_strerror(rc) : "wrong result");
            return 1;
        }
        t_sha = t1 - t0 < t_sha ? t1 - t0 : t_sha;
        t_dec = t2 - t1 < t_dec ? t2 - t1 : t_dec;
    }
    if (!once)
        printf("wall time (best of %d): SHA-256 of the new image %.2f ms, decode %.2f ms (%.2fx)\n", RUNS,
               t_sha * 1e3, t_dec * 1e3, t_dec / t_sha);
    free(a), free(b), free(out), free(patch);
    return 0;
}
