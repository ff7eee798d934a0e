/* bench/ingest: what taking an update costs per byte, next to hashing the
 * same bytes with the same SHA-256 and nothing else.
 *
 * A 4 MB POSIX flash (in memory) gets the real 4 MB partition table at
 * 0x8000 and a real app in ota_0, boots through the boot logic, then takes a
 * real ~1 MB image through aloft_update_begin/write/end in 4096-byte chunks.
 * A second such device runs the agent (settings in its nvs partition, a PSK
 * provisioned) and takes the same image as POST /ota through the agent's
 * handler, in 1460-byte chunks as TCP delivers them; its end also writes
 * otadata (set-boot). A third device trusts a signing key and takes the
 * same image signed by espsecure (RSA-3072, its signature sector after it)
 * through the same handler: the signature is checked before set-boot, by
 * OpenSSL in the port here (the ROM's RSA routine on a device). The
 * measured phases are the functions bench_phase_sha256, bench_phase_update,
 * bench_phase_push and bench_phase_push_signed; the port's
 * erase and program go through bench_flash_erase and bench_flash_program so
 * their cost can be told apart. bench/run.sh counts instructions in each
 * with callgrind; run alone, this program prints wall times.
 *
 * usage: bench_ingest [--once] [IMAGE]   (--once: a single run, for valgrind) */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aloft/agent.h"
#include "aloft/boot.h"
#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/part.h"
#include "aloft/push.h"
#include "aloft/update.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"
#include "file.h"
#include "hex.h"
#include "signing.h"

#define CHUNK 4096u
#define PUSH_CHUNK 1460u /* a TCP segment's payload on Ethernet/Wi-Fi */
#define PSK "bench-psk-0123456789abcdef"
#define FLASH_BYTES (4u << 20)
#define RUNS 5

static const char *image_path = ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-v0.6.4.bin";
static const char *running_path = ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-4mb-v0.4.3.bin";
static const char *table_path = ALOFT_FIXTURES "/esp-idf/partitions-4mb.csv";
static const char *signed_path = ALOFT_FIXTURES "/esp-idf/signed/esp32s3-csi-node-v0.6.4.signed-rsa3072.bin";
static const char *key_path = ALOFT_FIXTURES "/esp-idf/signed/test-key-rsa3072.digest.bin";

/* The POSIX flash's own callbacks, called through these wrappers. */
static struct aloft_flash posix;

__attribute__((noipa)) /* not inlined, cloned nor folded with a twin */ static int bench_flash_erase(void *ctx, uint32_t addr, size_t len)
{
    (void)ctx;
    return posix.erase(posix.ctx, addr, len);
}

__attribute__((noipa)) /* not inlined, cloned nor folded with a twin */ static int bench_flash_program(void *ctx, uint32_t addr,
                                                                 const void *buf, size_t len)
{
    (void)ctx;
    return posix.write(posix.ctx, addr, buf, len);
}

static void fail(const char *what, int rc)
{
    fprintf(stderr, "bench_ingest: %s: %s\n", what, rc < 0 ? aloft_strerror(rc) : "failed");
    exit(1);
}

static uint8_t *load(const char *path, size_t *len)
{
    uint8_t *data;
    if (aloft_file_read(path, &data, len)) {
        perror(path);
        exit(1);
    }
    return data;
}

__attribute__((noipa)) /* not inlined, cloned nor folded with a twin */ static void bench_phase_sha256(const uint8_t *img, size_t len,
                                                                 uint8_t out[32])
{
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    for (size_t off = 0; off < len; off += CHUNK)
        aloft_sha256_update(&s, img + off, len - off < CHUNK ? len - off : CHUNK);
    aloft_sha256_final(&s, out);
}

__attribute__((noipa)) /* not inlined, cloned nor folded with a twin */ static int bench_phase_update(struct aloft_update *u,
                                                                struct aloft_boot *b,
                                                                const uint8_t *img, size_t len)
{
    int rc = aloft_update_begin(u, b, NULL);
    for (size_t off = 0; rc == 0 && off < len; off += CHUNK)
        rc = aloft_update_write(u, img + off, len - off < CHUNK ? len - off : CHUNK);
    return rc ? rc : aloft_update_end(u);
}

/* POST /ota as aloft-node's HTTP glue makes it: the headers, the body as
 * TCP delivers it, the end (verify, set-boot, the JSON reply), the release.
 * Inlined into each phase, so that each is counted on its own. */
static inline __attribute__((always_inline)) void post_ota(struct aloft_agent *a, struct aloft_push *p,
                                                           const uint8_t *img, size_t len,
                                                           struct aloft_push_reply *reply)
{
    static char buf[1024];
    const struct aloft_push_request r = {
        .method = "POST",
        .path = "/ota",
        .authorization = "Bearer " PSK,
        .content_type = "application/octet-stream",
        .content_length = (int64_t)len,
    };
    if (aloft_push_begin(a, p, &r, buf, sizeof buf, reply) == 0) {
        for (size_t off = 0; off < len; off += PUSH_CHUNK)
            aloft_push_body(a, p, img + off, len - off < PUSH_CHUNK ? len - off : PUSH_CHUNK);
        aloft_push_end(a, p, reply);
    }
    aloft_push_abort(a, p);
}

__attribute__((noipa)) /* not inlined, cloned nor folded with a twin */ static void bench_phase_push(struct aloft_agent *a, struct aloft_push *p,
                                                               const uint8_t *img, size_t len,
                                                               struct aloft_push_reply *reply)
{
    post_ota(a, p, img, len, reply);
}

/* The same with a signed image, to a device that trusts its key. */
__attribute__((noipa)) /* not inlined, cloned nor folded with a twin */ static void bench_phase_push_signed(struct aloft_agent *a, struct aloft_push *p,
                                                                      const uint8_t *img, size_t len,
                                                                      struct aloft_push_reply *reply)
{
    post_ota(a, p, img, len, reply);
}

/* The port's signature check: OpenSSL, as aloft-node's. */
static int verify(void *ctx, const struct aloft_sig_block *b, const uint8_t digest[32])
{
    (void)ctx;
    return aloft_signing_verify(b, digest) ? 0 : ALOFT_E_SIGNATURE;
}

/* A device as it leaves the factory: table at 0x8000, the running app in
 * ota_0, blank otadata; booted. Port calls go through the wrappers. */
static void device(struct aloft_posix_flash *pf, struct aloft_flash *port, struct aloft_boot *b,
                   const char *csv, size_t csv_len, const uint8_t *app, size_t app_len)
{
    static struct aloft_part_table t;
    static uint8_t bin[ALOFT_PART_TABLE_BYTES];
    uint32_t line = 0;
    int rc = aloft_part_csv_parse(&t, csv, csv_len, ALOFT_PART_TABLE_OFFSET, &line);
    if (rc)
        fail(table_path, rc);
    rc = aloft_part_build(&t, bin, sizeof bin);
    if (rc < 0)
        fail("building the partition table", rc);
    if (aloft_posix_flash_mem(pf, FLASH_BYTES))
        fail("making the flash", 0);
    posix = pf->port;
    *port = pf->port;
    port->erase = bench_flash_erase;
    port->write = bench_flash_program;

    const struct aloft_part *ota0 = aloft_part_ota(&t, 0);
    if (!ota0)
        fail("the partition table has no ota_0", ALOFT_E_NOTFOUND);
    if ((rc = aloft_flash_write(port, ALOFT_PART_TABLE_OFFSET, bin, (size_t)rc)) ||
        (rc = aloft_flash_write(port, ota0->offset, app, app_len)))
        fail("writing the factory flash", rc);
    int chip = aloft_chip_id("esp32s3");
    if ((rc = aloft_boot_init(b, port, ALOFT_PART_TABLE_OFFSET, (uint16_t)chip, true)) ||
        (rc = aloft_boot_select(b)))
        fail("booting the factory flash", rc);
}

static void restart(void *ctx, const char *reason)
{
    (void)ctx;
    (void)reason;
}

/* The agent on a device booted by device(), with the PSK provisioned in its
 * settings as aloft-node --psk does, trusting the signing keys keys (NULL:
 * none). */
static void start_agent(struct aloft_agent *a, const struct aloft_flash *port, struct aloft_boot *b,
                        const char *keys)
{
    static struct aloft_posix_kv kv;
    static struct aloft_agent_port ap;
    static struct aloft_agent_config cfg = {.mac = "02:00:00:00:00:01"};
    cfg.trusted_keys = keys;
    ap = (struct aloft_agent_port){
        .flash = port,
        .settings = aloft_posix_kv_settings(&kv),
        .restart = restart, /* the device would restart into the update here */
        .verify = verify,
    };
    const struct aloft_part *nvs = aloft_part_find(&b->table, ALOFT_PART_DATA, ALOFT_PART_NVS);
    int rc = nvs ? aloft_posix_kv_open(&kv, port, nvs) : ALOFT_E_NOTFOUND;
    if (rc == 0)
        rc = aloft_posix_kv_set(&kv, "security/ota_psk", PSK, strlen(PSK));
    if (rc == 0)
        rc = aloft_agent_start(a, &ap, b, &cfg);
    if (rc)
        fail("starting the agent", rc);
}

/* The update must have landed: booting again runs the slot after b's. */
static void check_boots(const struct aloft_flash *port, const struct aloft_boot *b)
{
    static struct aloft_boot again;
    int rc;
    if ((rc = aloft_boot_init(&again, port, ALOFT_PART_TABLE_OFFSET, b->chip, true)) ||
        (rc = aloft_boot_select(&again)))
        fail("booting the update", rc);
    if (again.running->offset != aloft_part_next_update(&b->table, b->running)->offset)
        fail("the update did not boot", ALOFT_E_NOBOOT);
}

static double least(double a, double b)
{
    return a < b ? a : b;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    bool once = false;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--once"))
            once = true;
        else if (argv[i][0] == '-') {
            fprintf(stderr, "usage: bench_ingest [--once] [IMAGE]\n");
            return 2;
        } else
            image_path = argv[i];
    }

    size_t len, app_len, csv_len;
    uint8_t *img = load(image_path, &len);
    uint8_t *app = load(running_path, &app_len);
    char *csv = (char *)load(table_path, &csv_len);
    size_t signed_len, key_len;
    uint8_t *signed_img = load(signed_path, &signed_len);
    uint8_t *key = load(key_path, &key_len);
    char keys[65];
    aloft_hex(key, key_len < 32 ? key_len : 32, keys);
    const char *name = strrchr(image_path, '/') ? strrchr(image_path, '/') + 1 : image_path;
    printf("image %s\nbytes %zu\nchunk %u\npush_chunk %u\nsigned_bytes %zu\n", name, len, CHUNK, PUSH_CHUNK,
           signed_len);

    double best_sha = 1e9, best_update = 1e9, best_push = 1e9, best_signed = 1e9;
    for (int run = 0; run < (once ? 1 : RUNS); run++) {
        static struct aloft_posix_flash pf;
        static struct aloft_flash port;
        static struct aloft_boot boot;
        static struct aloft_update u;
        static struct aloft_agent agent;
        static struct aloft_push push;
        struct aloft_push_reply reply;
        uint8_t digest[32];

        double t0 = now();
        bench_phase_sha256(img, len, digest);
        double t1 = now();

        device(&pf, &port, &boot, csv, csv_len, app, app_len);
        double t2 = now();
        int rc = bench_phase_update(&u, &boot, img, len);
        double t3 = now();
        if (rc)
            fail("update", rc);
        if ((rc = aloft_update_set_boot(&u)))
            fail("set-boot", rc);
        check_boots(&port, &boot);
        aloft_posix_flash_close(&pf);

        device(&pf, &port, &boot, csv, csv_len, app, app_len);
        start_agent(&agent, &port, &boot, NULL);
        double t4 = now();
        bench_phase_push(&agent, &push, img, len, &reply);
        double t5 = now();
        if (reply.status != 200) {
            fprintf(stderr, "bench_ingest: push: HTTP %d %.*s\n", reply.status, (int)reply.len, reply.body);
            exit(1);
        }
        check_boots(&port, &boot);
        aloft_posix_flash_close(&pf);

        best_sha = least(best_sha, t1 - t0);
        best_update = least(best_update, t3 - t2);
        best_push = least(best_push, t5 - t4);

        device(&pf, &port, &boot, csv, csv_len, app, app_len);
        start_agent(&agent, &port, &boot, keys);
        double t6 = now();
        bench_phase_push_signed(&agent, &push, signed_img, signed_len, &reply);
        double t7 = now();
        if (reply.status != 200) {
            fprintf(stderr, "bench_ingest: signed push: HTTP %d %.*s\n", reply.status, (int)reply.len, reply.body);
            exit(1);
        }
        check_boots(&port, &boot);
        aloft_posix_flash_close(&pf);
        best_signed = least(best_signed, t7 - t6);
    }
    if (!once) {
        double mb = (double)len / 1e6;
        printf("\nwall time, best of %d (the table of record is bench/run.sh's instruction count)\n", RUNS);
        printf("  %-36s %9.2f ms %8.1f MB/s\n", "SHA-256 alone", best_sha * 1e3, mb / best_sha);
        printf("  %-36s %9.2f ms %8.1f MB/s\n", "update begin/write/end (all)", best_update * 1e3,
               mb / best_update);
        printf("  %-36s %9.2f ms %8.1f MB/s\n", "push POST /ota via the agent (all)", best_push * 1e3,
               mb / best_push);
        printf("  %-36s %9.2f ms %8.1f MB/s\n", "the same, signed, verification on", best_signed * 1e3,
               (double)signed_len / 1e6 / best_signed);
    }
    free(signed_img);
    free(key);
    free(img);
    free(app);
    free(csv);
    return 0;
}
