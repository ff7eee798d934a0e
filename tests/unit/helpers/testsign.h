/* aloft tests: images signed in memory with the fixtures' espsecure keys. */
#ifndef ALOFT_TESTSIGN_H
#define ALOFT_TESTSIGN_H

#include <stddef.h>
#include <stdint.h>

/* The fixture keys (esp-idf/signed/test-key-<name>.pem). */
#define ALOFT_TEST_KEY_RSA "rsa3072"
#define ALOFT_TEST_KEY_RSA_B "rsa3072-b"
#define ALOFT_TEST_KEY_EC "ecdsa256"
#define ALOFT_TEST_KEY_EC384 "ecdsa384"

/* img padded with 0xFF to 4 KB and a signature sector with one block per
 * key named in keys (NULL-terminated). malloc'd; *out_len set. */
uint8_t *aloft_test_sign(const uint8_t *img, size_t len, const char *const *keys, size_t *out_len);

/* A key's digest as 64 hex digits (what security/trusted_keys holds). */
void aloft_test_key_hex(const char *key, char out[65]);

#endif
