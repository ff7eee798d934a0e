/* Signed updates and anti-rollback on the device (agent/sig.c): with
 * trusted key digests set, a pushed app or frontend image becomes bootable
 * only when a block by a trusted key verifies; every refusal has its code
 * and leaves the running image, otadata and the settings byte-identical.
 * The secure_version floor rises only when an image is confirmed. */
#include "testagent.h"
#include "testsign.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "aloft/err.h"
#include "aloft/push.h"
#include "aloft/sig.h"
#include "image_make.h"
#include "littlefs.h"

#define FLASH_4M 0x400000u
#define CHUNK 1460

static struct aloft_push push;
static char buf[1024];
static char key_rsa[65], key_rsa_b[65], key_ec[65], key_ec384[65];

struct res {
    struct aloft_push_reply r;
    cJSON *j;
};

static struct res *post(struct aloft_test_agent *t, const char *path, const uint8_t *body, size_t n)
{
    static struct res o;
    cJSON_Delete(o.j);
    memset(&o, 0, sizeof o);
    struct aloft_push_request rq = {.method = "POST", .path = path, .content_type = "application/octet-stream",
                                    .content_length = (int64_t)n};
    if (aloft_push_begin(&t->a, &push, &rq, buf, sizeof buf, &o.r) == 0) {
        for (size_t off = 0; off < n; off += CHUNK)
            aloft_push_body(&t->a, &push, body + off, n - off < CHUNK ? n - off : CHUNK);
        aloft_push_end(&t->a, &push, &o.r);
    }
    aloft_push_abort(&t->a, &push);
    o.j = cJSON_ParseWithLength(o.r.body, o.r.len);
    assert_non_null(o.j);
    return &o;
}

static void refused(const struct res *o, int status, const char *code, const char *message_part)
{
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(o->j, "error"));
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(o->j, "message"));
    if (o->r.status != status || !c || strcmp(c, code) || !m || !strstr(m, message_part))
        fail_msg("expected %d %s (%s), got %d: %.*s", status, code, message_part, o->r.status, (int)o->r.len,
                 o->r.body);
}

static uint8_t *snap(const struct aloft_test_agent *t)
{
    uint8_t *s = malloc(t->dev.pf.size);
    memcpy(s, t->dev.pf.mem, t->dev.pf.size);
    return s;
}

/* Every byte outside the partition written (the running image, otadata,
 * the settings, the other slots) is as before. */
static void unchanged_but(const struct aloft_test_agent *t, uint8_t *before, const char *written)
{
    const struct aloft_part *p = aloft_part_find_label(&t->dev.boot.table, written);
    assert_non_null(p);
    memcpy(before + p->offset, t->dev.pf.mem + p->offset, p->size);
    assert_memory_equal(t->dev.pf.mem, before, t->dev.pf.size);
    free(before);
}

static uint8_t *image(const char *version, uint32_t secure_version, size_t *len)
{
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32s3"), .project = "aloft-test",
                                      .version = version, .secure_version = secure_version};
    uint8_t *img = NULL;
    assert_int_equal(aloft_image_make(&o, &img, len), 0);
    return img;
}

static uint8_t *signed_image(const char *version, uint32_t secure_version, const char *k1, const char *k2,
                             size_t *len)
{
    size_t n;
    uint8_t *img = image(version, secure_version, &n);
    const char *keys[] = {k1, k2, NULL};
    uint8_t *s = aloft_test_sign(img, n, keys, len);
    free(img);
    return s;
}

static void device(struct aloft_test_agent *t, const char *keys)
{
    size_t n;
    uint8_t *v1 = image("1.0.0", 1, &n);
    aloft_test_agent_init(t, FLASH_4M, NULL, v1, n, NULL, 0, NULL);
    free(v1);
    if (keys) {
        assert_int_equal(aloft_posix_kv_set(&t->kv, "security/trusted_keys", keys, strlen(keys)), 0);
        assert_int_equal(aloft_test_agent_reboot(t, "SW"), 0);
    }
}

static int setup(void **state)
{
    (void)state;
    aloft_test_key_hex(ALOFT_TEST_KEY_RSA, key_rsa);
    aloft_test_key_hex(ALOFT_TEST_KEY_RSA_B, key_rsa_b);
    aloft_test_key_hex(ALOFT_TEST_KEY_EC, key_ec);
    aloft_test_key_hex(ALOFT_TEST_KEY_EC384, key_ec384);
    return 0;
}

static void test_firmware_refusals(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    char keys[140];
    snprintf(keys, sizeof keys, "%s,%s", key_ec, key_rsa_b); /* key_rsa is not (or no longer) trusted */
    device(&t, keys);
    assert_true(aloft_test_agent_logged(&t, "security: 2 trusted keys: signed images only"));
    size_t n, m;
    uint8_t *plain = image("2.0.0", 1, &n);
    uint8_t *by_a = signed_image("2.0.0", 1, ALOFT_TEST_KEY_RSA, NULL, &m);

    struct {
        const char *name, *code, *why;
        uint8_t *img;
        size_t len;
        int status;
    } cases[] = {
        {"unsigned", "unsigned", "no signature sector", plain, n, 422},
        {"untrusted key", "untrusted_key", "no block by a trusted key", by_a, m, 422},
        {"truncated sector", "truncated", "", by_a, m - 100, 400},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint8_t *before = snap(&t);
        refused(post(&t, "/ota", cases[i].img, cases[i].len), cases[i].status, cases[i].code, cases[i].why);
        assert_null(t.restart);
        unchanged_but(&t, before, "ota_1");
    }

    /* a trusted block whose signature was altered (CRC made right again) */
    size_t s_len;
    uint8_t *good = signed_image("2.0.0", 1, ALOFT_TEST_KEY_EC, NULL, &s_len);
    uint8_t *blk = good + s_len - ALOFT_SIG_SECTOR_BYTES;
    blk[101 + 3] ^= 0x40;
    uint32_t crc = ~aloft_crc32(0xFFFFFFFFu, blk, ALOFT_SIG_CRC_BYTES);
    for (int i = 0; i < 4; i++)
        blk[ALOFT_SIG_CRC_BYTES + i] = (uint8_t)(crc >> (8 * i));
    uint8_t *before = snap(&t);
    refused(post(&t, "/ota", good, s_len), 422, "bad_signature", "a trusted block does not verify");
    unchanged_but(&t, before, "ota_1");
    /* damaged (CRC wrong) */
    blk[200] ^= 1;
    before = snap(&t);
    refused(post(&t, "/ota", good, s_len), 422, "bad_signature", "a block is damaged");
    unchanged_but(&t, before, "ota_1");
    free(good);

    /* another valid image under a trusted block: the block signs other bytes */
    size_t o_len;
    uint8_t *other = signed_image("3.0.0", 1, ALOFT_TEST_KEY_EC, NULL, &o_len);
    good = signed_image("2.0.0", 1, ALOFT_TEST_KEY_EC, NULL, &s_len);
    assert_int_equal(o_len, s_len);
    memcpy(other + o_len - ALOFT_SIG_SECTOR_BYTES, good + s_len - ALOFT_SIG_SECTOR_BYTES, ALOFT_SIG_SECTOR_BYTES);
    before = snap(&t);
    refused(post(&t, "/ota", other, o_len), 422, "bad_signature", "a trusted block signs other bytes");
    unchanged_but(&t, before, "ota_1");
    assert_true(aloft_test_agent_logged(&t, "ota: refused: bad_signature"));

    /* two blocks, the first by a key no longer trusted: the second carries it */
    size_t two_len;
    uint8_t *two = signed_image("2.0.0", 1, ALOFT_TEST_KEY_RSA, ALOFT_TEST_KEY_RSA_B, &two_len);
    struct res *o = post(&t, "/ota", two, two_len);
    assert_int_equal(o->r.status, 200);
    assert_string_equal(t.restart, "SW");
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_string_equal(aloft_test_running_version(&t.dev), "2.0.0");
    free(plain), free(by_a), free(good), free(other), free(two);
    aloft_test_agent_free(&t);
}

/* No trusted key: signed and unsigned images alike are taken. */
static void test_no_keys_no_policy(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    size_t n;
    uint8_t *s = signed_image("2.0.0", 1, ALOFT_TEST_KEY_RSA, NULL, &n);
    assert_int_equal(post(&t, "/ota", s, n)->r.status, 200);
    free(s);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_int_equal(aloft_agent_confirm(&t.a), 0);
    uint8_t *plain = image("3.0.0", 1, &n);
    assert_int_equal(post(&t, "/ota", plain, n)->r.status, 200);
    free(plain);
    aloft_test_agent_free(&t);
}

/* A P-384 block signs the image's SHA-384, which the port computes from
 * flash: verified, refused over other bytes, and refused by a port that
 * has no SHA-384, with nothing changed. */
static void test_p384(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, key_ec384);
    size_t n, o_len;
    uint8_t *good = signed_image("2.0.0", 1, ALOFT_TEST_KEY_EC384, NULL, &n);
    uint8_t *other = signed_image("3.0.0", 1, ALOFT_TEST_KEY_EC384, NULL, &o_len);
    assert_int_equal(o_len, n);
    memcpy(other + n - ALOFT_SIG_SECTOR_BYTES, good + n - ALOFT_SIG_SECTOR_BYTES, ALOFT_SIG_SECTOR_BYTES);
    uint8_t *before = snap(&t);
    refused(post(&t, "/ota", other, n), 422, "bad_signature", "a trusted block signs other bytes");
    unchanged_but(&t, before, "ota_1");
    t.port.sha384_is = NULL;
    before = snap(&t);
    refused(post(&t, "/ota", good, n), 422, "bad_signature", "a P-384 block, and no SHA-384 here");
    unchanged_but(&t, before, "ota_1");
    aloft_test_agent_free(&t);
    device(&t, key_ec384);
    assert_int_equal(post(&t, "/ota", good, n)->r.status, 200);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_string_equal(aloft_test_running_version(&t.dev), "2.0.0");
    free(good), free(other);
    aloft_test_agent_free(&t);
}

/* The policy lives in the settings: a restart keeps it; the built-in list
 * (Kconfig) wins over the setting; a list that does not parse trusts
 * nothing. */
static void test_policy_sources(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, key_ec);
    assert_int_equal(aloft_test_agent_reboot(&t, "POWERON"), 0);
    size_t n;
    uint8_t *plain = image("2.0.0", 1, &n);
    refused(post(&t, "/ota", plain, n), 422, "unsigned", "no signature sector");
    uint8_t *by_ec = NULL;
    size_t e;
    by_ec = signed_image("2.0.0", 1, ALOFT_TEST_KEY_EC, NULL, &e);
    t.cfg.trusted_keys = key_rsa; /* built in: the setting is not looked at */
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    refused(post(&t, "/ota", by_ec, e), 422, "untrusted_key", "");
    t.cfg.trusted_keys = NULL;
    assert_int_equal(aloft_posix_kv_set(&t.kv, "security/trusted_keys", "not-hex", 7), 0);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    refused(post(&t, "/ota", by_ec, e), 422, "untrusted_key", "");
    refused(post(&t, "/ota", plain, n), 422, "unsigned", "");
    free(plain), free(by_ec);
    aloft_test_agent_free(&t);
}

/* A frontend image is signed the same way: LittleFS, then the sector. */
static void test_frontend(void **state)
{
    (void)state;
    char dir[400], path[420];
    snprintf(dir, sizeof dir, "%s/www-sig", aloft_test_tmpdir());
    snprintf(path, sizeof path, "%s/index.html", dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    FILE *f = fopen(path, "w");
    fputs("<h1>signed</h1>", f);
    fclose(f);
    uint8_t *fs;
    size_t fs_len, s_len, u_len;
    struct aloft_lfs_mkfs_err err;
    assert_int_equal(aloft_lfs_mkfs(dir, 0x20000, 4096, ALOFT_LFS_VERSION_2_1, &fs, &fs_len, &err), 0);
    const char *ec[] = {ALOFT_TEST_KEY_EC, NULL}, *rsa[] = {ALOFT_TEST_KEY_RSA, NULL};
    uint8_t *good = aloft_test_sign(fs, fs_len, ec, &s_len);
    uint8_t *untrusted = aloft_test_sign(fs, fs_len, rsa, &u_len);

    struct aloft_test_agent t;
    device(&t, key_ec);
    uint8_t *before = snap(&t);
    refused(post(&t, "/api/ota/frontend", fs, fs_len), 422, "unsigned", "no signature sector");
    unchanged_but(&t, before, "www_1");
    before = snap(&t);
    refused(post(&t, "/api/ota/frontend", untrusted, u_len), 422, "untrusted_key", "");
    unchanged_but(&t, before, "www_1");
    good[100] ^= 1; /* a byte of the filesystem */
    before = snap(&t);
    refused(post(&t, "/api/ota/frontend", good, s_len), 422, "bad_signature", "signs other bytes");
    unchanged_but(&t, before, "www_1");
    good[100] ^= 1;
    assert_int_equal(post(&t, "/api/ota/frontend", good, s_len)->r.status, 200);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_int_equal(t.a.www_slot, 1);
    assert_true(t.a.www_ok);
    free(fs), free(good), free(untrusted);
    aloft_test_agent_free(&t);
}

static const char *min_sv(struct aloft_test_agent *t)
{
    static char v[16];
    int n = aloft_posix_kv_get(&t->kv, "security/min_secure_version", v, sizeof v - 1);
    if (n < 0)
        return "";
    v[n] = 0;
    return v;
}

/* Anti-rollback: the floor rises only once an image is confirmed. */
static void test_secure_version_floor(void **state)
{
    (void)state;
    struct aloft_test_agent t;
    device(&t, NULL);
    assert_int_equal(aloft_agent_confirm(&t.a), 0);
    assert_string_equal(min_sv(&t), "1");
    size_t n;
    uint8_t *v5 = image("5.0.0", 5, &n);
    assert_int_equal(post(&t, "/ota", v5, n)->r.status, 200);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_string_equal(aloft_test_running_version(&t.dev), "5.0.0");
    assert_string_equal(min_sv(&t), "1"); /* not before the confirm */
    assert_int_equal(aloft_agent_reject(&t.a), 0);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_string_equal(aloft_test_running_version(&t.dev), "1.0.0");
    assert_string_equal(min_sv(&t), "1");
    uint8_t *v3 = image("3.0.0", 3, &n);
    assert_int_equal(post(&t, "/ota", v3, n)->r.status, 200); /* 3 >= 1: the rejected 5 raised nothing */
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    assert_int_equal(aloft_agent_confirm(&t.a), 0);
    assert_string_equal(min_sv(&t), "3");
    free(v3);
    /* the floor holds even over a running image below it (a stored eFuse) */
    assert_int_equal(aloft_posix_kv_set(&t.kv, "security/min_secure_version", "7", 1), 0);
    assert_int_equal(aloft_test_agent_reboot(&t, "SW"), 0);
    uint8_t *before = snap(&t);
    refused(post(&t, "/ota", v5, n), 422, "secure_version", "secure_version 5 is below this device's minimum 7");
    unchanged_but(&t, before, "ota_0"); /* running is ota_1 now */
    free(v5);
    aloft_test_agent_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_firmware_refusals), cmocka_unit_test(test_no_keys_no_policy),
        cmocka_unit_test(test_policy_sources),    cmocka_unit_test(test_frontend),
        cmocka_unit_test(test_secure_version_floor), cmocka_unit_test(test_p384),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
