/* fake-idf: the app_update calls the glue makes, on the bootloader's
 * choice of this boot (chip.c). */
#include "chip.h"
#include "esp_ota_ops.h"

const esp_partition_t *esp_ota_get_running_partition(void)
{
    struct fake_idf_chip *c = fake_idf_chip();
    return c ? c->running : NULL;
}

/* aloft_boot_mark_valid writes otadata as ESP-IDF's does (the core is
 * bit-exact with it); no eFuse here for the secure version. */
esp_err_t esp_ota_mark_app_valid_cancel_rollback(void)
{
    struct fake_idf_chip *c = fake_idf_chip();
    if (!c || !c->running)
        return ESP_FAIL;
    return aloft_boot_mark_valid(&c->boot) ? ESP_FAIL : ESP_OK;
}
