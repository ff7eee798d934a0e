/* aloft tests: a simulated device flash in memory. */
#include "testdev.h"

#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "flashimg.h"
#include "image_make.h"

void aloft_test_dev_init(struct aloft_test_dev *d, uint32_t flash_size, const char *csv, const uint8_t *app,
                         size_t len, bool rollback)
{
    memset(d, 0, sizeof *d);
    d->rollback = rollback;
    assert_int_equal(aloft_posix_flash_mem(&d->pf, flash_size), 0);
    struct aloft_part_table t;
    assert_int_equal(aloft_part_csv_parse(&t, csv, strlen(csv), ALOFT_PART_TABLE_OFFSET, NULL), 0);
    assert_int_equal(aloft_flashimg_init(&d->pf.port, &t, ALOFT_PART_TABLE_OFFSET, app, len), 0);
    d->pf.ops = 0;
}

int aloft_test_dev_boot(struct aloft_test_dev *d)
{
    aloft_posix_flash_power_on(&d->pf);
    int rc = aloft_boot_init(&d->boot, &d->pf.port, ALOFT_PART_TABLE_OFFSET, ALOFT_CHIP_ANY, d->rollback);
    return rc ? rc : aloft_boot_select(&d->boot);
}

int aloft_test_update(struct aloft_boot *b, const uint8_t *img, size_t len, size_t chunk)
{
    static struct aloft_update u;
    return aloft_test_update_finish(&u, aloft_update_begin(&u, b, NULL), img, len, 0, chunk);
}

int aloft_test_update_finish(struct aloft_update *u, int rc, const uint8_t *img, size_t len, size_t from,
                             size_t chunk)
{
    for (size_t off = from; rc == 0 && off < len; off += chunk)
        rc = aloft_update_write(u, img + off, len - off < chunk ? len - off : chunk);
    if (rc == 0)
        rc = aloft_update_end(u);
    if (rc == 0)
        rc = aloft_update_set_boot(u);
    if (rc)
        aloft_update_abort(u);
    return rc;
}

const char *aloft_test_running_version(const struct aloft_test_dev *d)
{
    static struct aloft_image_info info;
    const struct aloft_part *p = d->boot.running;
    if (!p || aloft_image_verify_flash(&d->pf.port, p->offset, p->size, ALOFT_CHIP_ANY, &info) != 0)
        return "";
    return info.desc.version;
}

uint8_t *aloft_test_image(const char *chip, const char *version, size_t size, const char *sim, size_t *len)
{
    struct aloft_image_make_opts o = {
        .chip_id = (uint16_t)aloft_chip_id(chip),
        .project = "aloft-test",
        .version = version,
        .size = (uint32_t)size,
        .sim = sim,
    };
    uint8_t *img = NULL;
    assert_int_equal(aloft_image_make(&o, &img, len), 0);
    return img;
}
