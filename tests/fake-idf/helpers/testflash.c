/* fake-idf tests: a flash file for the fake chip, as `aloft flash init`
 * makes one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft_posix_flash.h"
#include "flashimg.h"
#include "testdev.h"
#include "testflash.h"

int fake_idf_test_flash(const char *name)
{
    static char path[512];
    struct aloft_posix_flash pf;
    struct aloft_part_table t;
    size_t len;
    uint8_t *app = aloft_test_image("esp32c3", "1.0.0", 0, NULL, &len);
    snprintf(path, sizeof path, "%s/%s", aloft_test_tmpdir(), name);
    remove(path);
    int rc = !app || aloft_posix_flash_open(&pf, path, 1024 * 1024, true) ? -1 : 0;
    if (rc == 0) {
        if (aloft_part_csv_parse(&t, ALOFT_TEST_CSV_SMALL, strlen(ALOFT_TEST_CSV_SMALL), ALOFT_PART_TABLE_OFFSET, NULL) ||
            aloft_flashimg_init(&pf.port, &t, ALOFT_PART_TABLE_OFFSET, app, len))
            rc = -1;
        aloft_posix_flash_close(&pf);
    }
    free(app);
    if (rc == 0)
        setenv("FAKE_IDF_FLASH", path, 1);
    return rc;
}
