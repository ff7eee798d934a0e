/* aloft tests: a simulated device flash (table, otadata, apps) in memory. */
#ifndef ALOFT_TESTDEV_H
#define ALOFT_TESTDEV_H

#include "testutil.h"

#include "aloft/boot.h"
#include "aloft/update.h"
#include "aloft_posix_flash.h"

/* Two 256 KB ota slots in 1 MB: small enough to cut power at every operation. */
#define ALOFT_TEST_CSV_SMALL                                                                       \
    "nvs,      data, nvs,   0x9000,  0x4000,\n"                                                    \
    "otadata,  data, ota,   0xd000,  0x2000,\n"                                                    \
    "phy_init, data, phy,   0xf000,  0x1000,\n"                                                    \
    "ota_0,    app,  ota_0, 0x10000, 0x40000,\n"                                                   \
    "ota_1,    app,  ota_1, 0x50000, 0x40000,\n"

struct aloft_test_dev {
    struct aloft_posix_flash pf;
    struct aloft_boot boot;
    bool rollback;
};

/* A flash of flash_size laid out from csv with app in factory/ota_0, as
 * `aloft flash init` makes it. */
void aloft_test_dev_init(struct aloft_test_dev *d, uint32_t flash_size, const char *csv, const uint8_t *app,
                         size_t len, bool rollback);

/* Restart: power on, read the table, run the boot logic. Returns its result. */
int aloft_test_dev_boot(struct aloft_test_dev *d);

/* begin / write in chunks / end / set_boot; returns the first error. */
int aloft_test_update(struct aloft_boot *b, const uint8_t *img, size_t len, size_t chunk);

/* The rest of an update whose begin or resume returned rc: write img[from,
 * len) in chunks, end, set_boot; aborts on the first error and returns it. */
int aloft_test_update_finish(struct aloft_update *u, int rc, const uint8_t *img, size_t len, size_t from,
                             size_t chunk);

/* Version string of the running app ("" when none). */
const char *aloft_test_running_version(const struct aloft_test_dev *d);

/* A synthesised image (aloft image make) for chip ("esp32s3"...), version
 * and total size (0: small default); sim may be NULL. free() it. */
uint8_t *aloft_test_image(const char *chip, const char *version, size_t size, const char *sim, size_t *len);

#endif
