/* Delta patches: made on the host (host/delta.c), applied by the device's
 * decoder (core/delta.c) in memory and on a simulated device through the
 * update writer. Round trips on the real ESP-IDF pair and on generated pairs;
 * a wrong base, a corrupted or truncated patch are refused with nothing of
 * the device changed; resume from a checkpoint; power cut at every flash
 * operation of a delta apply boots the old or the new image. */
#include "testdev.h"

#include <stdio.h>
#include <string.h>

#include "aloft/delta.h"
#include "aloft/err.h"
#include "delta.h"
#include "file.h"

#define FLASH 0x100000u

/* ---- in memory, fed in chunks of any size ---- */

struct mem {
    const uint8_t *base;
    size_t base_len;
    uint8_t out[1 << 21];
    size_t len;
};

static int m_read(void *ctx, uint32_t pos, void *buf, size_t len)
{
    struct mem *m = ctx;
    if (pos < m->base_len) {
        assert_true(pos + len <= m->base_len); /* one read never spans base and result */
        memcpy(buf, m->base + pos, len);
    } else {
        assert_true(pos - m->base_len + len <= m->len); /* only what was written */
        memcpy(buf, m->out + (pos - m->base_len), len);
    }
    return 0;
}

static int m_start(void *ctx, const struct aloft_delta_header *h, uint32_t from)
{
    struct mem *m = ctx;
    assert_true(h->result_size <= sizeof m->out);
    m->len = from;
    return 0;
}

static int m_write(void *ctx, const void *buf, size_t len)
{
    struct mem *m = ctx;
    assert_true(m->len + len <= sizeof m->out);
    memcpy(m->out + m->len, buf, len);
    m->len += len;
    return 0;
}

static struct mem mem;
static struct aloft_delta dec;

/* Apply patch to base feeding chunk bytes at a time; returns the first error. */
static int apply_chunked(const uint8_t *base, size_t base_len, const uint8_t *patch, size_t len, size_t chunk)
{
    mem.base = base, mem.base_len = base_len, mem.len = 0;
    struct aloft_delta_io io = {&mem, m_read, m_start, m_write};
    aloft_delta_begin(&dec, &io);
    for (size_t off = 0; off < len; off += chunk) {
        int rc = aloft_delta_write(&dec, patch + off, len - off < chunk ? len - off : chunk);
        if (rc)
            return rc;
    }
    return aloft_delta_end(&dec);
}

static uint8_t *make(const uint8_t *a, size_t na, const uint8_t *b, size_t nb, size_t *np)
{
    uint8_t *p = NULL;
    assert_int_equal(aloft_delta_make(a, na, b, nb, 0, NULL, NULL, &p, np), 0);
    return p;
}

/* Round trip old -> new, fed whole and in odd chunks; returns the patch size. */
static size_t round_trip(const uint8_t *a, size_t na, const uint8_t *b, size_t nb)
{
    size_t np;
    uint8_t *p = make(a, na, b, nb, &np);
    static const size_t chunks[] = {1, 7, 1000, 1 << 30};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        if (chunks[i] < 100 && np > 50000)
            continue; /* tiny chunks on the small pairs only: they are slow */
        assert_int_equal(apply_chunked(a, na, p, np, chunks[i]), 0);
        assert_int_equal(mem.len, nb);
        assert_memory_equal(mem.out, b, nb);
    }
    uint8_t *r = NULL;
    size_t nr = 0;
    assert_int_equal(aloft_delta_apply(a, na, p, np, &r, &nr), 0);
    assert_int_equal(nr, nb);
    assert_memory_equal(r, b, nb);
    free(r);
    free(p);
    return np;
}

static void test_real_pair_round_trips_within_11_percent(void **state)
{
    (void)state;
    uint8_t *a, *b;
    size_t na, nb;
    assert_int_equal(aloft_file_read(ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-v0.4.3.bin", &a, &na), 0);
    assert_int_equal(aloft_file_read(ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-v0.6.4.bin", &b, &nb), 0);
    size_t np = round_trip(a, na, b, nb);
    printf("real pair: %zu -> %zu bytes, patch %zu (%.2f%%)\n", na, nb, np, 100.0 * (double)np / (double)nb);
    assert_true(np * 100 <= nb * 11);
    free(a);
    free(b);
}

static uint32_t get_le(const uint8_t *p, unsigned w)
{
    uint32_t v = 0;
    for (unsigned i = 0; i < w; i++)
        v |= (uint32_t)p[i] << 8 * i;
    return v;
}

static void put_le(uint8_t *p, uint32_t v, unsigned w)
{
    for (unsigned i = 0; i < w; i++)
        p[i] = (uint8_t)(v >> 8 * i);
}

static uint32_t rng = 12345;
static uint8_t rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return (uint8_t)(rng >> 16);
}

static void test_generated_pairs_round_trip_small(void **state)
{
    (void)state;
    size_t na, nb;
    uint8_t *a = aloft_test_image("esp32s3", "1.0.0", 300000, NULL, &na);
    /* a new version that appended code (--size grows IROM) */
    uint8_t *b = aloft_test_image("esp32s3", "1.1.0", 340000, NULL, &nb);
    size_t np = round_trip(a, na, b, nb);
    printf("appended: %zu -> %zu, patch %zu\n", na, nb, np);
    assert_true(np < (nb - na) + 8192); /* the appended part, and the version's small segments */
    free(b);

    /* inserted code: 5000 new bytes in the middle */
    uint8_t *c = malloc(na + 5000);
    memcpy(c, a, 100000);
    for (int i = 0; i < 5000; i++)
        c[100000 + i] = rnd();
    memcpy(c + 105000, a + 100000, na - 100000);
    np = round_trip(a, na, c, na + 5000);
    assert_true(np < 5000 + 1024);

    /* code that moved by a few bytes at many places: 1..3 bytes inserted
     * every 4 KB, so each region is a little further than the one before (a
     * near match: a repeat distance and the small step, not a new distance) */
    size_t nc = 0, nins = 0;
    for (size_t i = 0; i < na; i += 4096, nins++) {
        size_t n = na - i < 4096 ? na - i : 4096;
        memcpy(c + nc, a + i, n);
        nc += n;
        for (size_t k = 0; k <= nins % 3 && nc < na + 5000; k++)
            c[nc++] = rnd();
    }
    np = round_trip(a, na, c, nc);
    printf("shifted: %zu insertions, patch %zu\n", nins, np);
    assert_true(np < nins * 8); /* ~7.5 B each; 8.8 B each before near matches */

    /* moved segments: two 40 KB blocks swapped */
    memcpy(c, a, na);
    memcpy(c + 50000, a + 200000, 40000);
    memcpy(c + 200000, a + 50000, 40000);
    np = round_trip(a, na, c, na);
    assert_true(np < 1024);

    /* the same image, and one with nothing in common */
    np = round_trip(a, na, a, na);
    assert_true(np < 512);
    for (size_t i = 0; i < 20000; i++)
        c[i] = rnd();
    np = round_trip(a, na, c, 20000);
    printf("unrelated: 20000 bytes, patch %zu\n", np);
    assert_true(np < 20000 + 20000 / 20 + 256); /* at most ~5% over on random bytes */
    free(c);
    free(a);
}

/* Code that moved changes every reference across the move alike: pointers
 * (by the move), Xtensa L32R and CALL8 offsets (by how far the code moved
 * from what it refers to). A field codes each as the old one plus a recent
 * delta: about 3 bits, where format 2's diff literals took 16. */
static void test_moved_references_cost_little(void **state)
{
    (void)state;
    size_t na, refs = 0;
    uint8_t *a = aloft_test_image("esp32s3", "1.0.0", 300000, NULL, &na);
    for (size_t at = 100000; at < 200000; at += 16) {
        uint8_t *c = a + at;
        c[4] = 0x81, c[5] = rnd(), c[6] = rnd();  /* L32R a8, a literal */
        c[8] = 0xe5, c[9] = rnd(), c[10] = rnd(); /* CALL8 */
        put_le(c + 12, 0x3c0c0000u | rnd() << 8 | rnd(), 4); /* a pointer to rodata */
    }
    uint8_t *b = malloc(na);
    memcpy(b, a, na);
    for (size_t at = 100000; at < 200000; at += 16, refs += 3) {
        uint8_t *c = b + at;
        put_le(c + 4, get_le(c + 4, 3) + ((uint32_t)-6802 << 8), 3);
        put_le(c + 8, get_le(c + 8, 3) + ((uint32_t)-126 << 6), 3);
        put_le(c + 12, get_le(c + 12, 4) + 0x11234, 4);
    }
    size_t np = round_trip(a, na, b, na);
    printf("moved references: %zu, patch %zu\n", refs, np);
    assert_true(np * 8 < refs * 4); /* under 4 bits each (7,938 B; format 2: 37,194 B) */
    free(a);
    free(b);
}

static void test_refused_patches(void **state)
{
    (void)state;
    size_t na, nb, np;
    uint8_t *a = aloft_test_image("esp32c3", "1.0.0", 80000, NULL, &na);
    uint8_t *b = aloft_test_image("esp32c3", "2.0.0", 90000, NULL, &nb);
    uint8_t *p = make(a, na, b, nb, &np);

    /* another base: one byte differs, or a shorter one */
    a[30000] ^= 1;
    assert_int_equal(apply_chunked(a, na, p, np, 4096), ALOFT_E_BASE);
    assert_int_equal(mem.len, 0); /* start() was never called: nothing written */
    a[30000] ^= 1;
    uint8_t *r;
    size_t nr;
    assert_int_equal(aloft_delta_apply(a, na - 16, p, np, &r, &nr), ALOFT_E_BASE);

    /* truncated anywhere */
    static const size_t cuts[] = {0, 1, ALOFT_DELTA_HEADER_BYTES - 1, ALOFT_DELTA_HEADER_BYTES,
                                  ALOFT_DELTA_HEADER_BYTES + 3, 1000};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++)
        assert_int_equal(apply_chunked(a, na, p, cuts[i], 100), ALOFT_E_TRUNCATED);
    for (size_t cut = np / 2; cut < np; cut += (np - cut + 1) / 2)
        assert_int_not_equal(apply_chunked(a, na, p, cut, 100), 0);

    /* a corrupted header, then bytes flipped through the body */
    p[10] ^= 0x40;
    assert_int_equal(apply_chunked(a, na, p, np, 100), ALOFT_E_CORRUPT);
    p[10] ^= 0x40;
    memcpy(p, "ALDX", 4);
    assert_int_equal(apply_chunked(a, na, p, np, 100), ALOFT_E_MAGIC);
    memcpy(p, ALOFT_DELTA_MAGIC, 4);
    for (size_t at = ALOFT_DELTA_HEADER_BYTES; at < np; at += np / 23 + 1) {
        p[at] ^= 0x10;
        int rc = apply_chunked(a, na, p, np, 512);
        if (rc == 0) /* a flip the coder absorbed must still give the exact result */
            assert_memory_equal(mem.out, b, nb);
        p[at] ^= 0x10;
    }
    /* well-coded matches whose distance is impossible: a near match at the
     * first repeat distance + 2^31 (past the dictionary), a plain one of
     * 2^32 (wraps to 0: the byte being decoded). Corrupt, nothing copied. */
    static const uint8_t bad_dist[2][10] = {{0x00, 0x82, 0x3d, 0xf7, 0xff, 0xff, 0xf8, 0x00, 0x00, 0x00},
                                            {0x00, 0x81, 0xff, 0xf7, 0xff, 0xff, 0xe0, 0x00, 0x00, 0x00}};
    uint8_t crafted[ALOFT_DELTA_HEADER_BYTES + sizeof bad_dist[0]];
    for (int i = 0; i < 2; i++) {
        memcpy(crafted, p, ALOFT_DELTA_HEADER_BYTES);
        memcpy(crafted + ALOFT_DELTA_HEADER_BYTES, bad_dist[i], sizeof bad_dist[i]);
        assert_int_equal(apply_chunked(a, na, crafted, sizeof crafted, 100), ALOFT_E_CORRUPT);
        assert_int_equal(mem.len, 0);
    }

    /* a well-coded field (the first token: a 32-bit one, the first recent
     * delta) in a result of 2 bytes: it would run past the end. Corrupt,
     * nothing written. */
    static const uint8_t field_past_end[10] = {0x00, 0x47, 0xff, 0xf8, 0x00};
    memcpy(crafted, p, ALOFT_DELTA_HEADER_BYTES);
    put_le(crafted + 12, 2, 4);
    put_le(crafted + 80, ~aloft_crc32(0xFFFFFFFFu, crafted, 80), 4);
    memcpy(crafted + ALOFT_DELTA_HEADER_BYTES, field_past_end, sizeof field_past_end);
    assert_int_equal(apply_chunked(a, na, crafted, sizeof crafted, 100), ALOFT_E_CORRUPT);
    assert_int_equal(mem.len, 0);

    /* bytes after the end */
    uint8_t *longer = malloc(np + 3);
    memcpy(longer, p, np);
    memset(longer + np, 0, 3);
    assert_int_equal(apply_chunked(a, na, longer, np + 3, 100), ALOFT_E_TRAILING);
    free(longer);
    assert_int_equal(apply_chunked(a, na, p, np, 100), 0);
    free(p);
    free(a);
    free(b);
}

/* ---- on a simulated device, through the update writer ---- */

static uint8_t *img_a, *img_b, *img_c, *patch_ab, *patch_cb;
static size_t len_a, len_b, len_c, len_ab, len_cb;
static struct aloft_delta_update du;

static int setup(void **state)
{
    (void)state;
    img_a = aloft_test_image("esp32c3", "1.0.0", 100000, NULL, &len_a);
    img_b = aloft_test_image("esp32c3", "2.0.0", 120000, NULL, &len_b);
    img_c = aloft_test_image("esp32c3", "3.0.0", 100000, NULL, &len_c);
    assert_int_equal(aloft_delta_make(img_a, len_a, img_b, len_b, 12, NULL, NULL, &patch_ab, &len_ab), 0);
    assert_int_equal(aloft_delta_make(img_c, len_c, img_b, len_b, 12, NULL, NULL, &patch_cb, &len_cb), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(img_a), free(img_b), free(img_c), free(patch_ab), free(patch_cb);
    return 0;
}

static void booted(struct aloft_test_dev *d)
{
    aloft_test_dev_init(d, FLASH, ALOFT_TEST_CSV_SMALL, img_a, len_a, true);
    assert_int_equal(aloft_test_dev_boot(d), 0);
}

/* Feed patch[from, to) in chunks. */
static int feed(const uint8_t *p, size_t from, size_t to, size_t chunk)
{
    for (size_t off = from; off < to; off += chunk) {
        int rc = aloft_delta_update_write(&du, p + off, to - off < chunk ? to - off : chunk);
        if (rc)
            return rc;
    }
    return 0;
}

static int device_apply(struct aloft_test_dev *d, const uint8_t *p, size_t len, size_t chunk)
{
    aloft_delta_update_begin(&du, &d->boot, NULL);
    int rc = feed(p, 0, len, chunk);
    if (rc == 0)
        rc = aloft_delta_update_end(&du);
    if (rc == 0)
        rc = aloft_update_set_boot(&du.u);
    return rc;
}

static void test_device_applies_and_boots_the_result(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d);
    const struct aloft_part *run = d.boot.running;
    uint8_t *before = malloc(run->size);
    memcpy(before, d.pf.mem + run->offset, run->size);
    assert_int_equal(device_apply(&d, patch_ab, len_ab, 1460), 0);
    assert_memory_equal(d.pf.mem + run->offset, before, run->size); /* the base was only read */
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(aloft_test_running_version(&d), "2.0.0");
    assert_memory_equal(d.pf.mem + d.boot.running->offset, img_b, len_b);
    aloft_posix_flash_close(&d.pf);
    free(before);
}

/* A refused patch leaves every byte of the flash as it was (wrong base: not
 * even the update slot is erased), or at least the running slot, otadata and
 * nvs (a corrupted or truncated body is found while writing). */
static void test_device_refusals_change_nothing(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d);
    uint8_t *before = malloc(FLASH);
    memcpy(before, d.pf.mem, FLASH);

    assert_int_equal(device_apply(&d, patch_cb, len_cb, 4096), ALOFT_E_BASE);
    assert_memory_equal(d.pf.mem, before, FLASH);

    uint8_t *bad = malloc(len_ab);
    memcpy(bad, patch_ab, len_ab);
    bad[len_ab / 2] ^= 0x01;
    int rc = device_apply(&d, bad, len_ab, 4096);
    assert_true(rc == ALOFT_E_HASH || rc == ALOFT_E_CORRUPT || rc == ALOFT_E_TRUNCATED || rc == ALOFT_E_TRAILING ||
                rc == ALOFT_E_CHECKSUM || rc == ALOFT_E_SEGMENT || rc == ALOFT_E_NOSPC);
    assert_int_equal(device_apply(&d, patch_ab, len_ab - 100, 4096), ALOFT_E_TRUNCATED);
    free(bad);

    const struct aloft_part *run = d.boot.running;
    assert_memory_equal(d.pf.mem + run->offset, before + run->offset, run->size);
    assert_memory_equal(d.pf.mem + 0x9000, before + 0x9000, 0x6000); /* nvs and otadata */
    assert_int_equal(aloft_test_dev_boot(&d), 0);
    assert_string_equal(aloft_test_running_version(&d), "1.0.0");
    aloft_posix_flash_close(&d.pf);
    free(before);
}

/* A link drops part way: the next session resumes from the last checkpoint,
 * sending the header and then the patch from the checkpoint's offset. */
static void test_device_resumes_from_a_checkpoint(void **state)
{
    (void)state;
    static const size_t drops[] = {100, 3000, 20000};
    for (size_t i = 0; i < sizeof drops / sizeof drops[0]; i++) {
        size_t drop = drops[i] < len_ab ? drops[i] : len_ab - 1;
        struct aloft_test_dev d;
        booted(&d);
        aloft_delta_update_begin(&du, &d.boot, NULL);
        assert_int_equal(feed(patch_ab, 0, drop, 700), 0);
        uint32_t ck_patch, ck_out;
        aloft_delta_checkpoint(&du.d, &ck_patch, &ck_out);
        assert_true(ck_patch <= drop);
        assert_int_equal(ck_out % 4096, 0);
        if (drop > 5000)
            assert_true(ck_out > 0); /* some blocks were done */

        aloft_delta_update_resume(&du, &d.boot, NULL, ck_patch, ck_out);
        assert_int_equal(feed(patch_ab, 0, ALOFT_DELTA_HEADER_BYTES, 50), 0);
        assert_int_equal(feed(patch_ab, ck_patch > ALOFT_DELTA_HEADER_BYTES ? ck_patch : ALOFT_DELTA_HEADER_BYTES,
                              len_ab, 999), 0);
        assert_int_equal(aloft_delta_update_end(&du), 0);
        assert_int_equal(aloft_update_set_boot(&du.u), 0);
        assert_int_equal(aloft_test_dev_boot(&d), 0);
        assert_string_equal(aloft_test_running_version(&d), "2.0.0");
        aloft_posix_flash_close(&d.pf);
    }
}

/* Power cut before every flash operation of a delta apply: the device boots
 * the old image or the new one, never neither, and a new apply then works. */
static void test_power_cut_at_every_operation(void **state)
{
    (void)state;
    struct aloft_test_dev d;
    booted(&d);
    d.pf.ops = 0;
    assert_int_equal(device_apply(&d, patch_ab, len_ab, 4096), 0);
    uint64_t n = d.pf.ops;
    assert_true(n > 30);
    unsigned olds = 0, news = 0;
    aloft_posix_flash_close(&d.pf);
    for (uint64_t k = 1; k <= n; k++) {
        booted(&d);
        aloft_posix_flash_cut(&d.pf, k, false);
        assert_int_not_equal(device_apply(&d, patch_ab, len_ab, 4096), 0);
        assert_int_equal(aloft_test_dev_boot(&d), 0);
        const char *v = aloft_test_running_version(&d);
        if (!strcmp(v, "1.0.0")) {
            olds++;
            if (k % 64 && k != n)
                goto next; /* the retry is checked on a sample: it is the slow half */
            assert_int_equal(device_apply(&d, patch_ab, len_ab, 4096), 0);
            assert_int_equal(aloft_test_dev_boot(&d), 0);
            assert_string_equal(aloft_test_running_version(&d), "2.0.0");
        } else {
            assert_string_equal(v, "2.0.0");
            news++;
        }
    next:
        aloft_posix_flash_close(&d.pf);
    }
    printf("%llu cut points: %u booted the old image, %u the new\n", (unsigned long long)n, olds, news);
    assert_true(olds > 0);
}

int main(int argc, char **argv)
{
    if (argc > 1)
        cmocka_set_test_filter(argv[1]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_pair_round_trips_within_11_percent),
        cmocka_unit_test(test_generated_pairs_round_trip_small),
        cmocka_unit_test(test_moved_references_cost_little),
        cmocka_unit_test(test_refused_patches),
        cmocka_unit_test(test_device_applies_and_boots_the_result),
        cmocka_unit_test(test_device_refusals_change_nothing),
        cmocka_unit_test(test_device_resumes_from_a_checkpoint),
        cmocka_unit_test(test_power_cut_at_every_operation),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
