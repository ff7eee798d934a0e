/* aloft on ESP-IDF: the facts the agent starts with — the station MAC, why
 * the chip last reset (the names of the boot line and /ota/status) and how
 * many boots since power-on, counted in RTC memory as the simulator's
 * restarts carry it. */
#include <stdio.h>

#include "esp_attr.h"
#include "esp_mac.h"
#include "esp_system.h"
#include "glue.h"

#define BOOTS_MAGIC 0xA10F7B00u

/* Survives a reset but not a power cut; on chips without RTC memory it is
 * ordinary memory and every boot counts as the first. */
static RTC_NOINIT_ATTR struct {
    uint32_t magic;
    uint32_t count;
} boots;

static const char *const reasons[] = {
    [ESP_RST_POWERON] = "POWERON", [ESP_RST_EXT] = "EXT",         [ESP_RST_SW] = "SW",
    [ESP_RST_PANIC] = "PANIC",     [ESP_RST_INT_WDT] = "INT_WDT", [ESP_RST_TASK_WDT] = "TASK_WDT",
    [ESP_RST_WDT] = "WDT",         [ESP_RST_DEEPSLEEP] = "DEEPSLEEP", [ESP_RST_BROWNOUT] = "BROWNOUT",
    [ESP_RST_SDIO] = "SDIO",
};

void aloft_idf_device_facts(struct aloft_idf *d)
{
    esp_reset_reason_t r = esp_reset_reason();
    d->reset_reason = (unsigned)r < sizeof reasons / sizeof *reasons && reasons[r] ? reasons[r] : "UNKNOWN";
    if (r == ESP_RST_POWERON || r == ESP_RST_BROWNOUT || boots.magic != BOOTS_MAGIC) {
        boots.magic = BOOTS_MAGIC;
        boots.count = 0;
    }
    d->boot_count = ++boots.count;

    uint8_t m[6] = {0};
    esp_read_mac(m, ESP_MAC_WIFI_STA);
    snprintf(d->mac, sizeof d->mac, "%02X:%02X:%02X:%02X:%02X:%02X", m[0], m[1], m[2], m[3], m[4], m[5]);
}
