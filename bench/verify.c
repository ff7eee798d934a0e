/* bench/verify: what checking a signed 1 MB image costs on the host, per
 * scheme — the digest of the padded image (SHA-256, or SHA-384 for P-384)
 * and the signature check of its block (OpenSSL), as `aloft image verify`,
 * aloftd's upload check and aloft-node do. The image is the ~1 MB ESP32-S3
 * fixture, signed here with each fixture key. Wall times, best of RUNS.
 *
 * usage: bench_verify */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/err.h"
#include "file.h"
#include "signing.h"

#define RUNS 20
#define DIR ALOFT_FIXTURES "/esp-idf/"

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fail(const char *what)
{
    fprintf(stderr, "bench_verify: %s\n", what);
    exit(1);
}

int main(void)
{
    static const char *const keys[] = {"rsa3072", "ecdsa256", "ecdsa384"};
    size_t raw_len;
    uint8_t *raw;
    if (aloft_file_read(DIR "esp32s3-csi-node-v0.6.4.bin", &raw, &raw_len))
        fail("cannot read the fixture image");
    size_t at = (raw_len + ALOFT_SIG_SECTOR_BYTES - 1) / ALOFT_SIG_SECTOR_BYTES * ALOFT_SIG_SECTOR_BYTES;
    uint8_t *img = malloc(at + ALOFT_SIG_SECTOR_BYTES);
    if (!img)
        fail("out of memory");
    printf("\nbench/verify: a %zu-byte image signed (padded to %zu bytes), checked on the host with OpenSSL;\n"
           "wall time, best of %d\n\n",
           raw_len, at, RUNS);
    printf("%-10s %16s %18s %12s %10s\n", "scheme", "digest (ms)", "signature (us)", "total (ms)", "MB/s");
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) {
        char path[600], err[200];
        snprintf(path, sizeof path, DIR "signed/test-key-%s.pem", keys[k]);
        int scheme;
        EVP_PKEY *key = aloft_signing_load(path, &scheme, err, sizeof err);
        if (!key)
            fail(err);
        memcpy(img, raw, raw_len);
        memset(img + raw_len, 0xFF, at + ALOFT_SIG_SECTOR_BYTES - raw_len);
        if (aloft_signing_block(key, img, at, img + at, err, sizeof err))
            fail(err);
        EVP_PKEY_free(key);
        struct aloft_sig_block b;
        if (aloft_sig_parse(img + at, &b))
            fail("the block does not parse");
        double best_digest = 1e9, best_sig = 1e9, best_all = 1e9;
        for (int run = 0; run < RUNS; run++) {
            uint8_t digest[48];
            struct aloft_signing_check c[ALOFT_SIG_BLOCKS_MAX];
            double t0 = now();
            aloft_signing_digest(scheme, img, at, digest);
            double t1 = now();
            bool ok = aloft_signing_verify(&b, digest);
            double t2 = now();
            int n = aloft_signing_check(img, at, c);
            double t3 = now();
            if (!ok || n != 1 || !c[0].valid)
                fail("the signature does not verify");
            best_digest = t1 - t0 < best_digest ? t1 - t0 : best_digest;
            best_sig = t2 - t1 < best_sig ? t2 - t1 : best_sig;
            best_all = t3 - t2 < best_all ? t3 - t2 : best_all;
        }
        printf("%-10s %16.3f %18.1f %12.3f %10.1f\n", keys[k], best_digest * 1e3, best_sig * 1e6, best_all * 1e3,
               (double)at / 1e6 / best_all);
    }
    printf("(total: aloft_signing_check, the digest and the block's check, as aloft image verify runs it)\n");
    free(img);
    free(raw);
    return 0;
}
