/* Version ordering: semver precedence, git describe strings (the real
 * fixtures' among them), ESP-IDF's 31-byte cut, and what cannot be ordered. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "semver.h"

#define OLDER ALOFT_SEMVER_OLDER
#define SAME ALOFT_SEMVER_SAME
#define NEWER ALOFT_SEMVER_NEWER
#define UNORDERED ALOFT_SEMVER_UNORDERED

/* a against b is want, and b against a the opposite. */
static void check_order(const char *a, const char *b, int want)
{
    int got = aloft_semver_compare(a, b);
    int back = aloft_semver_compare(b, a);
    int want_back = want == UNORDERED ? UNORDERED : -want;
    if (got != want || back != want_back) {
        fprintf(stderr, "%s vs %s: %s (want %s); reversed: %s (want %s)\n", a, b, aloft_semver_order_name(got),
                aloft_semver_order_name(want), aloft_semver_order_name(back), aloft_semver_order_name(want_back));
        fail();
    }
}

static void test_parse_fields(void **state)
{
    (void)state;
    struct aloft_semver v;
    assert_int_equal(aloft_semver_parse("1.2.3", &v), 0);
    assert_int_equal(v.nnum, 3);
    assert_int_equal(v.num[0], 1);
    assert_int_equal(v.num[1], 2);
    assert_int_equal(v.num[2], 3);
    assert_string_equal(v.suffix, "");
    assert_false(v.describe);
    assert_false(v.dirty);

    assert_int_equal(aloft_semver_parse("v1.2.3-rc.1+build.5", &v), 0);
    assert_string_equal(v.suffix, "rc.1");
    assert_false(v.describe);

    assert_int_equal(aloft_semver_parse("V10.0", &v), 0);
    assert_int_equal(v.nnum, 2);
    assert_int_equal(v.num[0], 10);

    assert_int_equal(aloft_semver_parse("v2.1.0-14-gDEADBEEF-dirty", &v), 0);
    assert_true(v.describe);
    assert_int_equal(v.commits, 14);
    assert_string_equal(v.hash, "deadbeef");
    assert_true(v.dirty);
    assert_string_equal(v.suffix, "");

    assert_int_equal(aloft_semver_parse("1.0.0-rc.2-3-gabcd", &v), 0);
    assert_string_equal(v.suffix, "rc.2");
    assert_int_equal(v.commits, 3);
    assert_string_equal(v.hash, "abcd");

    assert_int_equal(aloft_semver_parse("1.2.3-dirty", &v), 0);
    assert_true(v.dirty);
    assert_false(v.describe);
    assert_string_equal(v.suffix, "");

    assert_int_equal(aloft_semver_parse("18446744073.0.999999999999999999", &v), 0);
    assert_int_equal(v.num[2], 999999999999999999ull);

    /* git describe --long at the tag itself */
    assert_int_equal(aloft_semver_parse("v3.0.0-0-g0123456789abcdef0123456789abcdef01234567", &v), 0);
    assert_true(v.describe);
    assert_int_equal(v.commits, 0);
    assert_int_equal(strlen(v.hash), 40);
}

/* The 0.4.3 fixture's version: a describe string ESP-IDF cut at 31 bytes. */
static void test_parse_fixture_version(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.4.3.bin", &len);
    struct aloft_image_verifier iv;
    aloft_image_begin(&iv, ALOFT_CHIP_ANY, 0);
    assert_int_equal(aloft_image_feed(&iv, img, len), 0);
    assert_int_equal(aloft_image_end(&iv), 0);
    free(img);
    const char *ver = iv.info.desc.version;
    assert_string_equal(ver, "v0.4.3.1-esp32-3-g66e2fa083-dir");
    assert_int_equal(strlen(ver), 31);

    struct aloft_semver v;
    assert_int_equal(aloft_semver_parse(ver, &v), 0);
    assert_int_equal(v.nnum, 4);
    assert_int_equal(v.num[0], 0);
    assert_int_equal(v.num[1], 4);
    assert_int_equal(v.num[2], 3);
    assert_int_equal(v.num[3], 1);
    assert_string_equal(v.suffix, "esp32");
    assert_true(v.describe);
    assert_int_equal(v.commits, 3);
    assert_string_equal(v.hash, "66e2fa083");
    assert_true(v.dirty); /* "-dir" is "-dirty" cut short */

    /* every cut of "-dirty" at 31 bytes; a hash cut short too */
    const char *cuts[] = {"v10.4.3.12-esp32s3-3-g66e2fa0-d", "v0.4.3.12-esp32s3-3-g66e2fa08-d",
                          "v0.4.3.1-esp32s3-3-g66e2fa08-di", "v0.4.3.1-esp32-3-g66e2fa08-dirt"};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        assert_int_equal(strlen(cuts[i]), 31);
        assert_int_equal(aloft_semver_parse(cuts[i], &v), 0);
        assert_true(v.describe);
        assert_true(v.dirty);
        assert_int_equal(v.commits, 3);
    }
    assert_int_equal(aloft_semver_parse("v0.4.3.1-esp32s3-long-3-g66e2f", &v), 0); /* 30 bytes: not cut */
    assert_true(v.describe);
    assert_int_equal(aloft_semver_parse("v0.4.3.1-esp32s3-longerxy-3-g66", &v), 0); /* 31: hash cut to 2 */
    assert_true(v.describe);
    assert_string_equal(v.hash, "66");
    assert_string_equal(v.suffix, "esp32s3-longerxy");
    /* below 31 bytes a 2-digit "hash" is not one: a label then */
    assert_int_equal(aloft_semver_parse("v0.4.3.1-esp32-3-g66", &v), 0);
    assert_false(v.describe);
    assert_string_equal(v.suffix, "esp32-3-g66");
    /* "-dir" below 31 bytes is a label, not a cut "-dirty" */
    assert_int_equal(aloft_semver_parse("v0.4.3.1-3-g66e2fa083-dir", &v), 0);
    assert_false(v.dirty);
    assert_false(v.describe);
}

static void test_parse_rejects(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "", "v", "V", "vv1.0", "x1.0", "1.", ".1", "1..2", "1.2.", "1.2.x", "1.2.3.", "abc", "dev",
        "1.2.3 ", " 1.2.3", "1.2.3-", "1.2.3-a..b", "1.2.3-.a", "1.2.3-a.", "1.2.3+", "1.2.3+a+b",
        "1.2.3-a_b", "1.2.3-ü", "1.2.3beta", "1.2.3/4", "1,2,3", "-1.2.3", "1.2.3\n",
        "1234567890123456789.0.0",      /* 19 digits */
        "1.2.3.4.5.6.7.8.9",            /* 9 numbers */
        "1.0.0-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 bytes */
    };
    struct aloft_semver v;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (aloft_semver_parse(bad[i], &v) != ALOFT_E_SYNTAX) {
            fprintf(stderr, "parsed: \"%s\"\n", bad[i]);
            fail();
        }
    }
    assert_int_equal(aloft_semver_parse(NULL, &v), ALOFT_E_SYNTAX);
    assert_int_equal(aloft_semver_parse("1.2.3.4.5.6.7.8", &v), 0);
    assert_int_equal(aloft_semver_parse("123456789012345678.0.0", &v), 0);
}

/* semver.org §11's example chain, every pair. */
static void test_semver_precedence(void **state)
{
    (void)state;
    static const char *const chain[] = {
        "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2",
        "1.0.0-beta.11", "1.0.0-rc.1", "1.0.0", "1.0.1-0", "1.0.1", "1.1.0", "1.10.0", "2.0.0",
    };
    size_t n = sizeof chain / sizeof chain[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++)
            check_order(chain[i], chain[j], i < j ? OLDER : i > j ? NEWER : SAME);
}

static void test_semver_details(void **state)
{
    (void)state;
    check_order("1.2.3", "v1.2.3", SAME);
    check_order("V1.2.3", "v1.2.3", SAME);
    check_order("1.2.3+build.1", "1.2.3+build.2", SAME); /* build metadata never orders */
    check_order("1.2.3+build", "1.2.3", SAME);
    check_order("1.2", "1.2.0", SAME);
    check_order("1", "1.0.0", SAME);
    check_order("1.2", "1.2.1", OLDER);
    check_order("1.9.9", "1.10.0", OLDER); /* numbers, not text */
    check_order("0.9", "0.10", OLDER);
    check_order("1.0.0-rc.9", "1.0.0-rc.10", OLDER);
    check_order("1.0.0-rc.01", "1.0.0-rc.1", SAME); /* leading zeros: same number */
    check_order("1.0.0-1", "1.0.0-a", OLDER);        /* numeric below alphanumeric */
    check_order("1.0.0-B", "1.0.0-a", OLDER);        /* ASCII order */
    check_order("1.0.0-a-b", "1.0.0-a", NEWER);
    check_order("1.0.0-99999999999999999999999", "1.0.0-100000000000000000000000", OLDER);
    check_order("999999999999999999.0.0", "1.0.0", NEWER);
}

static void test_git_describe(void **state)
{
    (void)state;
    const char *v043 = "v0.4.3.1-esp32-3-g66e2fa083-dir";
    check_order(v043, "0.6.4", OLDER);  /* the fixtures: 0.4.3.1 < 0.6.4 */
    check_order(v043, "v0.6.4", OLDER);
    check_order(v043, "0.4.3", NEWER);  /* 0.4.3.1 > 0.4.3.0 */
    check_order(v043, "0.4.4", OLDER);
    check_order(v043, v043, SAME);
    /* same tag: by commit count */
    check_order("v0.4.3.1-esp32-3-g66e2fa0", "v0.4.3.1-esp32-5-g1234567", OLDER);
    check_order("v0.4.3.1-esp32-12-g66e2fa0", "v0.4.3.1-esp32-5-g1234567", NEWER);
    check_order("v0.4.3.1-esp32", "v0.4.3.1-esp32-1-g1234567", OLDER); /* the tag itself counts 0 */
    check_order("v1.2.3", "v1.2.3-4-gabcdef0", OLDER);
    check_order("v1.2.3-4-gabcdef0", "v1.2.4", OLDER);
    check_order("v1.2.3-4-gabcdef0", "v1.2.4-rc.1", OLDER);
    check_order("v1.2.3-0-gabcdef0", "v1.2.3", SAME); /* --long at the tag */
    check_order("v1.2.3-0-gabcdef0", "v1.2.3-0-g1234567", SAME); /* the tag names the commit */
    /* a describe of a pre-release tag */
    check_order("1.0.0-rc.1-7-gabcdef0", "1.0.0-rc.2", OLDER);
    check_order("1.0.0-rc.1-7-gabcdef0", "1.0.0-rc.1", NEWER);
    check_order("1.0.0-rc.1-7-gabcdef0", "1.0.0", OLDER);
    check_order("1.0.0-7-gabcdef0", "1.0.0-rc.1", NEWER);
    /* one commit, abbreviated differently */
    check_order("v1.2.3-4-gabcdef0", "v1.2.3-4-gabcdef0123", SAME);
    check_order("v1.2.3-4-gABCDEF0", "v1.2.3-4-gabcdef0", SAME);
    /* the same count from one tag on two branches: no order */
    check_order("v1.2.3-4-gabcdef0", "v1.2.3-4-g1234567", UNORDERED);
    /* local changes: no order against the clean build of the commit */
    check_order("v1.2.3-4-gabcdef0-dirty", "v1.2.3-4-gabcdef0", UNORDERED);
    check_order("v1.2.3-dirty", "v1.2.3", UNORDERED);
    check_order("v1.2.3-dirty", "v1.2.3-dirty", SAME);
    /* but a dirty build is still older than a later commit or tag */
    check_order("v1.2.3-4-gabcdef0-dirty", "v1.2.3-5-g1234567", OLDER);
    check_order(v043, "v0.4.3.1-esp32-4-g1234567", OLDER);
    check_order(v043, "v0.4.3.1-esp32-3-g66e2fa083", UNORDERED);
    /* labels after a longer numeric part name builds, not an order */
    check_order("v0.4.3.1-esp32-3-g66e2fa0", "v0.4.3.1-esp32s3-3-g66e2fa0", UNORDERED);
    check_order("0.4.3.1-esp32", "0.4.3.1", UNORDERED);
    check_order("0.4.3.1-esp32", "0.4.3.2", OLDER); /* the numbers still decide first */
}

static void test_unordered(void **state)
{
    (void)state;
    static const char *const junk[] = {"", "dev", "latest", "1.2.x", "build 7", "1.0.0-", "v", "2024-05-01T12:00"};
    static const char *const real[] = {"0.0.0", "1.0.0", "0.6.4", "v0.4.3.1-esp32-3-g66e2fa083-dir", "99.0.0-rc.1"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        for (size_t j = 0; j < sizeof real / sizeof real[0]; j++)
            check_order(junk[i], real[j], UNORDERED);
        check_order(junk[i], junk[i], UNORDERED); /* not even with itself: nothing to compare */
    }
    assert_int_equal(aloft_semver_compare(NULL, "1.0.0"), UNORDERED);
    assert_int_equal(aloft_semver_compare("1.0.0", NULL), UNORDERED);
    assert_string_equal(aloft_semver_order_name(OLDER), "older");
    assert_string_equal(aloft_semver_order_name(SAME), "same");
    assert_string_equal(aloft_semver_order_name(NEWER), "newer");
    assert_string_equal(aloft_semver_order_name(UNORDERED), "unordered");
}

/* Ordered pairs are consistent: over a mixed set, no a < b < c with c < a,
 * and SAME is an equivalence. */
static void test_consistency(void **state)
{
    (void)state;
    static const char *const set[] = {
        "0.1", "0.4.3", "0.4.3.1", "v0.4.3.1-esp32", "v0.4.3.1-esp32-3-g66e2fa083-dir", "v0.4.3.1-esp32-4-gabcd",
        "0.6.4", "v0.6.4", "0.6.4-1-g1234567", "0.6.4-2-g1234567-dirty", "1.0.0-alpha", "1.0.0-rc.1",
        "1.0.0-rc.1-2-gabcdef0", "1.0.0", "1.0", "1.0.0+meta", "1.0.1", "2", "1.2.3.4.5.6.7.8", "dev",
    };
    size_t n = sizeof set / sizeof set[0];
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n; j++) {
            int ij = aloft_semver_compare(set[i], set[j]);
            int ji = aloft_semver_compare(set[j], set[i]);
            assert_int_equal(ij == UNORDERED ? UNORDERED : -ij, ji);
            for (size_t k = 0; k < n; k++) {
                int jk = aloft_semver_compare(set[j], set[k]);
                int ik = aloft_semver_compare(set[i], set[k]);
                if (ij == OLDER && jk == OLDER && ik != OLDER) {
                    fprintf(stderr, "%s < %s < %s but %s vs %s: %s\n", set[i], set[j], set[k], set[i], set[k],
                            aloft_semver_order_name(ik));
                    fail();
                }
                if (ij == SAME && jk != UNORDERED)
                    assert_int_equal(ik, jk);
            }
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_fields),     cmocka_unit_test(test_parse_fixture_version),
        cmocka_unit_test(test_parse_rejects),    cmocka_unit_test(test_semver_precedence),
        cmocka_unit_test(test_semver_details),   cmocka_unit_test(test_git_describe),
        cmocka_unit_test(test_unordered),        cmocka_unit_test(test_consistency),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
