/* bench/ble: one push over the simulated BLE link (bench/ble.sh runs it).
 *
 *   bench_ble HOST:PORT MTU IMAGE legacy|extended [BYTES]
 *
 * Prints one line: "<bytes> <seconds> <bytes/s> <payload> ok|FAILED" —
 * the data phase, from the device's go-ahead (REQUEST_ACK, BEGIN_ACK) to
 * the last packet's answer (esp32-ble-ota) or the last sector's ACK (extended), and
 * the payload of a packet at the agreed MTU (MTU − 3). With BYTES, the
 * legacy push hangs up after that many bytes (its rate is steady: one
 * packet per write with response; a sample of it is enough). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ble_central.h"

struct clock {
    double t0, t1;
    uint64_t d0, d1;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
    (void)total;
    struct clock *c = ctx;
    if (c->t0 == 0) {
        c->t0 = now();
        c->d0 = done;
    }
    c->t1 = now();
    c->d1 = done;
}

int main(int argc, char **argv)
{
    if (argc < 5 || (strcmp(argv[4], "legacy") && strcmp(argv[4], "extended"))) {
        fprintf(stderr, "usage: bench_ble HOST:PORT MTU IMAGE legacy|extended [BYTES]\n");
        return 2;
    }
    FILE *f = fopen(argv[3], "rb");
    static uint8_t img[16 << 20];
    size_t len = f ? fread(img, 1, sizeof img, f) : 0;
    if (f)
        fclose(f);
    if (!len) {
        fprintf(stderr, "bench_ble: cannot read %s\n", argv[3]);
        return 1;
    }
    struct ble_central c;
    struct clock k = {0};
    struct ble_push o = {.legacy = !strcmp(argv[4], "legacy"), .progress = progress, .ctx = &k};
    if (argc > 5)
        o.drop_at = (uint32_t)strtoul(argv[5], NULL, 10);
    if (ble_central_connect(&c, argv[1], (uint16_t)atoi(argv[2]))) {
        fprintf(stderr, "bench_ble: %s\n", c.why);
        return 1;
    }
    int rc = ble_push_image(&c, &o, img, len);
    bool ok = rc == 0 || (o.drop_at && rc == -1 && k.d1 >= o.drop_at);
    if (!ok)
        fprintf(stderr, "bench_ble: %s\n", c.why);
    double s = k.t1 - k.t0;
    uint64_t bytes = k.d1 - k.d0;
    printf("%llu %.2f %.0f %u %s\n", (unsigned long long)bytes, s, s > 0 ? (double)bytes / s : 0,
           (unsigned)c.mtu - 3, ok ? "ok" : "FAILED");
    ble_central_close(&c);
    return ok ? 0 : 1;
}
