/* SHA-256, its HMAC, MD5 and CRC-32 against published vectors (and
 * OpenSSL), in every chunking. */
#include "testutil.h"

#include <stdio.h>
#include <string.h>

#include <openssl/hmac.h>

#include "aloft/crypto.h"
#include "hex.h"

static void sha_hex(const void *data, size_t len, size_t chunk, char out[65])
{
    struct aloft_sha256 s;
    uint8_t d[32];
    aloft_sha256_init(&s);
    for (size_t off = 0; off < len; off += chunk)
        aloft_sha256_update(&s, (const uint8_t *)data + off, len - off < chunk ? len - off : chunk);
    aloft_sha256_final(&s, d);
    aloft_hex(d, 32, out);
}

static void test_sha256_vectors(void **state)
{
    (void)state;
    char h[65];
    sha_hex("", 0, 1, h);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    sha_hex("abc", 3, 1, h);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    for (size_t chunk = 1; chunk <= 64; chunk++) {
        sha_hex(two, strlen(two), chunk, h);
        assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    }
}

static void test_sha256_fixture(void **state)
{
    (void)state;
    size_t len;
    uint8_t *img = aloft_test_fixture("esp-idf/esp32s3-csi-node-v0.6.4.bin", &len);
    char h[65];
    size_t chunks[] = {1, 63, 64, 65, 4096, len};
    for (size_t i = 0; i < sizeof chunks / sizeof chunks[0]; i++) {
        sha_hex(img, len, chunks[i], h);
        assert_string_equal(h, "0066d74d35b0dbca9bbb930db99768ff37b3bff9d027c7aee15b330f3d6ea477");
    }
    free(img);
}

static void hmac(const void *key, size_t klen, const void *msg, size_t len, uint8_t out[32])
{
    struct aloft_hmac_sha256 h;
    aloft_hmac_sha256_key(&h, key, klen);
    aloft_hmac_sha256_sum(&h, msg, len, out);
}

/* RFC 4231's cases 1, 2 and 6 (a key longer than a block), then every key
 * length from 0 to 130 bytes against OpenSSL, and one key's states used twice. */
static void test_hmac_sha256(void **state)
{
    (void)state;
    uint8_t key[131], d[32], want[32];
    char h[65], hx[65];
    memset(key, 0x0b, 20);
    hmac(key, 20, "Hi There", 8, d);
    aloft_hex(d, 32, h);
    assert_string_equal(h, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    const char *m2 = "what do ya want for nothing?";
    hmac("Jefe", 4, m2, strlen(m2), d);
    aloft_hex(d, 32, h);
    assert_string_equal(h, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    memset(key, 0xaa, sizeof key);
    const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
    hmac(key, 131, m6, strlen(m6), d);
    aloft_hex(d, 32, h);
    assert_string_equal(h, "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
    for (size_t n = 0; n <= sizeof key; n++) {
        key[n % sizeof key] = (uint8_t)(n * 37);
        unsigned len = 32;
        assert_non_null(HMAC(EVP_sha256(), key, (int)n, (const uint8_t *)m6, n % 55, want, &len));
        hmac(key, n, m6, n % 55, d);
        assert_memory_equal(d, want, 32);
    }
    struct aloft_hmac_sha256 jefe, once;
    aloft_hmac_sha256_key(&jefe, "Jefe", 4);
    once = jefe;
    aloft_hmac_sha256_sum(&once, m6, strlen(m6), d);
    once = jefe;
    aloft_hmac_sha256_sum(&once, m2, strlen(m2), d);
    aloft_hex(d, 32, hx);
    assert_string_equal(hx, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_md5_vectors(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } v[] = {
        {"", "d41d8cd98f00b204e9800998ecf8427e"},
        {"a", "0cc175b9c0f1b6a831c399e269772661"},
        {"abc", "900150983cd24fb0d6963f7d28e17f72"},
        {"message digest", "f96b697d7cb7938d525a2f31aaf161d0"},
        {"12345678901234567890123456789012345678901234567890123456789012345678901234567890",
         "57edf4a22be3c955ac49da2e2107b67a"},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        for (size_t chunk = 1; chunk <= 80; chunk += 13) {
            struct aloft_md5 m;
            uint8_t d[16];
            char h[33];
            size_t len = strlen(v[i].in);
            aloft_md5_init(&m);
            for (size_t off = 0; off < len; off += chunk)
                aloft_md5_update(&m, v[i].in + off, len - off < chunk ? len - off : chunk);
            aloft_md5_final(&m, d);
            aloft_hex(d, 16, h);
            assert_string_equal(h, v[i].out);
        }
    }
}

static void test_crc32_variants(void **state)
{
    (void)state;
    /* zlib's check value */
    assert_int_equal(~aloft_crc32(0xFFFFFFFFu, "123456789", 9), 0xCBF43926u);
    /* otadata: binascii.crc32(seq_le, 0xFFFFFFFF), FORMATS.md §2 */
    static const struct {
        uint32_t seq, crc;
    } v[] = {{1, 0x4743989Au}, {2, 0x55F63774u}, {3, 0xED4A5011u}, {16, 0xAFE6A860u}};
    for (size_t i = 0; i < 4; i++) {
        uint8_t le[4] = {(uint8_t)v[i].seq, 0, 0, 0};
        assert_int_equal(~aloft_crc32(0, le, 4), v[i].crc);
    }
    /* plain crc32 of seq 1 is the wrong one for otadata */
    uint8_t one[4] = {1, 0, 0, 0};
    assert_int_equal(~aloft_crc32(0xFFFFFFFFu, one, 4), 0x99F8B879u);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha256_vectors),
        cmocka_unit_test(test_sha256_fixture),
        cmocka_unit_test(test_hmac_sha256),
        cmocka_unit_test(test_md5_vectors),
        cmocka_unit_test(test_crc32_variants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
