/* The POSIX settings store: values, deletion, compaction, and power cuts
 * at every flash operation of a set. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"

static const struct aloft_part nvs = {.type = ALOFT_PART_DATA, .subtype = ALOFT_PART_NVS, .offset = 0x9000,
                                      .size = 0x6000, .label = "nvs"};

static void get_str(struct aloft_posix_kv *kv, const char *key, const char *expect)
{
    char buf[ALOFT_KV_VALUE_MAX + 1];
    int n = aloft_posix_kv_get(kv, key, buf, sizeof buf - 1);
    if (!expect) {
        assert_int_equal(n, ALOFT_E_NOTFOUND);
        return;
    }
    assert_true(n >= 0);
    buf[n] = 0;
    assert_string_equal(buf, expect);
}

static void test_set_get_delete_persist(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 0x10000), 0);
    struct aloft_posix_kv kv;
    assert_int_equal(aloft_posix_kv_open(&kv, &pf.port, &nvs), 0);
    get_str(&kv, "security/ota_psk", NULL);
    assert_int_equal(aloft_posix_kv_set(&kv, "security/ota_psk", "s3cret", 6), 0);
    assert_int_equal(aloft_posix_kv_set(&kv, "www/slot", "1", 1), 0);
    get_str(&kv, "security/ota_psk", "s3cret");
    assert_int_equal(aloft_posix_kv_set(&kv, "security/ota_psk", "other", 5), 0);
    get_str(&kv, "security/ota_psk", "other");
    char small[2];
    assert_int_equal(aloft_posix_kv_get(&kv, "security/ota_psk", small, sizeof small), ALOFT_E_NOSPC);
    assert_int_equal(aloft_posix_kv_del(&kv, "security/ota_psk"), 0);
    get_str(&kv, "security/ota_psk", NULL);
    get_str(&kv, "www/slot", "1");
    /* an empty value is a value */
    assert_int_equal(aloft_posix_kv_set(&kv, "x/empty", "", 0), 0);
    get_str(&kv, "x/empty", "");

    struct aloft_posix_kv again; /* reopened, as after a restart */
    assert_int_equal(aloft_posix_kv_open(&again, &pf.port, &nvs), 0);
    get_str(&again, "www/slot", "1");
    get_str(&again, "security/ota_psk", NULL);

    char big[ALOFT_KV_VALUE_MAX + 1];
    memset(big, 'v', sizeof big);
    assert_int_equal(aloft_posix_kv_set(&kv, "a/b", big, sizeof big), ALOFT_E_INVAL);
    assert_int_equal(aloft_posix_kv_set(&kv, "", "x", 1), ALOFT_E_INVAL);
    char long_key[ALOFT_KV_KEY_MAX + 2];
    memset(long_key, 'k', sizeof long_key - 1);
    long_key[sizeof long_key - 1] = 0;
    assert_int_equal(aloft_posix_kv_set(&kv, long_key, "x", 1), ALOFT_E_INVAL);
    aloft_posix_flash_close(&pf);
}

/* Thousands of writes cycle through every sector; the live set survives. */
static void test_compaction_keeps_live_values(void **state)
{
    (void)state;
    struct aloft_posix_flash pf;
    assert_int_equal(aloft_posix_flash_mem(&pf, 0x10000), 0);
    struct aloft_posix_kv kv;
    assert_int_equal(aloft_posix_kv_open(&kv, &pf.port, &nvs), 0);
    assert_int_equal(aloft_posix_kv_set(&kv, "security/ota_psk", "keep-me", 7), 0);
    uint32_t first_gen = kv.gen;
    char v[32];
    for (int i = 0; i < 3000; i++) {
        snprintf(v, sizeof v, "%d", i);
        assert_int_equal(aloft_posix_kv_set(&kv, i % 2 ? "www/slot" : "boot/count", v, strlen(v)), 0);
    }
    assert_true(kv.gen > first_gen + 10);
    get_str(&kv, "security/ota_psk", "keep-me");
    get_str(&kv, "www/slot", "2999");
    get_str(&kv, "boot/count", "2998");
    /* live values that cannot fit one sector are refused, not lost */
    char big[1000];
    memset(big, 'x', sizeof big);
    int rc = 0, i;
    for (i = 0; i < 8 && rc == 0; i++) {
        char key[16];
        snprintf(key, sizeof key, "big/%d", i);
        rc = aloft_posix_kv_set(&kv, key, big, sizeof big);
    }
    assert_int_equal(rc, ALOFT_E_NOSPC);
    get_str(&kv, "security/ota_psk", "keep-me");
    aloft_posix_flash_close(&pf);
}

/* Cut power before (and tearing) every operation of sets that append and
 * sets that compact: afterwards the key holds the old or the new value and
 * every other key is intact. */
static void test_power_cut_at_every_operation(void **state)
{
    (void)state;
    unsigned long points = 0;
    for (int fill = 0; fill < 2; fill++) {
        struct aloft_posix_flash base;
        assert_int_equal(aloft_posix_flash_mem(&base, 0x10000), 0);
        struct aloft_posix_kv kv;
        assert_int_equal(aloft_posix_kv_open(&kv, &base.port, &nvs), 0);
        assert_int_equal(aloft_posix_kv_set(&kv, "security/ota_psk", "psk", 3), 0);
        assert_int_equal(aloft_posix_kv_set(&kv, "www/slot", "0", 1), 0);
        /* fill: the next set of www/slot must compact into a new sector */
        while (fill && kv.end && kv.end + 24 <= 4096)
            assert_int_equal(aloft_posix_kv_set(&kv, "pad/x", "0123456789", 10), 0);
        uint64_t n = 0;
        for (uint64_t step = 2;; step++) {
            uint64_t k = step / 2; /* each operation cut before, then torn */
            struct aloft_posix_flash pf;
            assert_int_equal(aloft_posix_flash_mem(&pf, 0x10000), 0);
            memcpy(pf.mem, base.mem, 0x10000);
            assert_int_equal(aloft_posix_kv_open(&kv, &pf.port, &nvs), 0);
            pf.ops = 0;
            aloft_posix_flash_cut(&pf, k, step % 2);
            int rc = aloft_posix_kv_set(&kv, "www/slot", "1", 1);
            aloft_posix_flash_power_on(&pf);
            struct aloft_posix_kv after;
            assert_int_equal(aloft_posix_kv_open(&after, &pf.port, &nvs), 0);
            char buf[8];
            int len = aloft_posix_kv_get(&after, "www/slot", buf, sizeof buf);
            assert_int_equal(len, 1);
            assert_true(buf[0] == '0' || buf[0] == '1');
            if (rc == 0)
                assert_int_equal(buf[0], '1');
            get_str(&after, "security/ota_psk", "psk");
            /* and the store still takes writes */
            assert_int_equal(aloft_posix_kv_set(&after, "www/slot", "1", 1), 0);
            get_str(&after, "www/slot", "1");
            aloft_posix_flash_close(&pf);
            if (rc == 0) {
                n = k - 1;
                break;
            }
            points++;
        }
        assert_true(n >= (fill ? 3u : 1u));
        aloft_posix_flash_close(&base);
    }
    printf("settings store: %lu power-cut points tested\n", points);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_delete_persist),
        cmocka_unit_test(test_compaction_keeps_live_values),
        cmocka_unit_test(test_power_cut_at_every_operation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
