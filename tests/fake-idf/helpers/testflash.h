/* fake-idf tests: a flash file for the fake chip. */
#pragma once

/* Make <tmpdir>/<name> — 1 MB, ALOFT_TEST_CSV_SMALL's table, an ESP32-C3
 * app 1.0.0 in ota_0 — and point FAKE_IDF_FLASH at it, before anything
 * powers the chip on. Returns 0 or -1 (a cmocka group setup). */
int fake_idf_test_flash(const char *name);
