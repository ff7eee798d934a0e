/* aloft tests: shared helpers. Include after <cmocka.h>'s prerequisites. */
#ifndef ALOFT_TESTUTIL_H
#define ALOFT_TESTUTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <cmocka.h>

#include "hex.h" /* aloft_sha256_hex */

/* Load ../shared/fixtures/<rel> (e.g. "esp-idf/partitions-8mb.csv"); fails the
 * test when missing. The buffer is NUL-terminated one past *len; free() it. */
uint8_t *aloft_test_fixture(const char *rel, size_t *len);

/* Run a program (argv[0] relative to build/bin, e.g. "aloft"), capture its
 * stdout into a malloc'd, NUL-terminated *out (may be NULL) and return its
 * exit status (or -1 when it could not run / was killed). */
int aloft_test_run(char **out, const char *const argv[]);

/* A fresh temporary directory for this test process (created once, removed
 * with its contents at exit). */
const char *aloft_test_tmpdir(void);

/* Deterministic pseudo-random bytes (xorshift), for test payloads. */
void aloft_test_fill(uint8_t *buf, size_t len, uint32_t seed);

/* MD5 of data as 32 lower-case hex digits and a NUL (x-MD5). */
void aloft_test_md5_hex(const void *data, size_t len, char out[33]);

#endif
