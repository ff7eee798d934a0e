/* fake-idf: the chip — restart, reset reason, MAC, random bytes.
 * esp_restart re-executes the process (same PID, like aloft-node's
 * restarts) and carries what survives a software reset in an environment
 * variable: the reset reason and RTC_NOINIT_ATTR memory (esp_attr.h). A
 * fresh process is a power-on. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "esp_mac.h"
#include "esp_random.h"
#include "esp_system.h"

#define ENV "FAKE_IDF_RESET" /* "<reason>:<hex of RTC noinit memory>" */

/* the RTC_NOINIT_ATTR section; absent (NULL) when nothing is in it */
extern char __start_fake_idf_rtc_noinit[] __attribute__((weak));
extern char __stop_fake_idf_rtc_noinit[] __attribute__((weak));

static esp_reset_reason_t reason = ESP_RST_POWERON;

static size_t rtc_len(void)
{
    return __start_fake_idf_rtc_noinit ? (size_t)(__stop_fake_idf_rtc_noinit - __start_fake_idf_rtc_noinit) : 0;
}

__attribute__((constructor)) static void power_on_or_reset(void)
{
    const char *v = getenv(ENV);
    unsigned r;
    int at = 0;
    if (!v || sscanf(v, "%u:%n", &r, &at) != 1 || !at)
        return;
    reason = (esp_reset_reason_t)r;
    if (strlen(v + at) == 2 * rtc_len())
        for (size_t i = 0; i < rtc_len(); i++)
            sscanf(v + at + 2 * i, "%2hhx", (unsigned char *)&__start_fake_idf_rtc_noinit[i]);
    unsetenv(ENV);
}

esp_reset_reason_t esp_reset_reason(void)
{
    return reason;
}

void esp_restart(void)
{
    static char cmdline[64 * 1024];
    char *argv[256], *env = malloc(16 + 2 * rtc_len());
    size_t len = 0, argc = 0;
    FILE *f = fopen("/proc/self/cmdline", "rb");
    if (f) {
        len = fread(cmdline, 1, sizeof cmdline - 1, f);
        fclose(f);
    }
    for (size_t i = 0; i < len && argc < 255; i += strlen(cmdline + i) + 1)
        argv[argc++] = cmdline + i;
    argv[argc] = NULL;
    if (env && argc) {
        int n = sprintf(env, "%u:", (unsigned)ESP_RST_SW);
        for (size_t i = 0; i < rtc_len(); i++)
            n += sprintf(env + n, "%02x", (unsigned char)__start_fake_idf_rtc_noinit[i]);
        setenv(ENV, env, 1);
        fflush(NULL);
        execv("/proc/self/exe", argv);
    }
    perror("esp_restart: cannot re-execute");
    abort();
}

/* FAKE_IDF_MAC=AA:BB:CC:DD:EE:FF gives a device its own MAC. */
esp_err_t esp_read_mac(uint8_t *mac, esp_mac_type_t type)
{
    static const uint8_t fallback[6] = {0x24, 0x0A, 0xC4, 0x00, 0x00, 0x01};
    const char *v = getenv("FAKE_IDF_MAC");
    if (!mac || type != ESP_MAC_WIFI_STA)
        return ESP_ERR_INVALID_ARG;
    memcpy(mac, fallback, 6);
    if (v)
        sscanf(v, "%2hhx:%2hhx:%2hhx:%2hhx:%2hhx:%2hhx", &mac[0], &mac[1], &mac[2], &mac[3], &mac[4], &mac[5]);
    return ESP_OK;
}

void esp_fill_random(void *buf, size_t len)
{
    for (size_t got = 0; got < len;) {
        ssize_t n = getrandom((char *)buf + got, len - got, 0);
        if (n > 0)
            got += (size_t)n;
    }
}
