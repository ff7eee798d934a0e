/* aloft on ESP-IDF: the agent's settings in NVS (nvs_flash_init() first).
 *
 * The agent's key "ns/key" is NVS namespace "ns", key "key". NVS allows 15
 * characters for each: a longer part becomes its first 6 characters, '~'
 * and the FNV-1a hash of the whole part as 8 hex digits, so
 * "pull/a_very_long_name" is namespace "pull", key "a_very~" + 8 digits —
 * the same on every device and every boot. The PSK lives where menuconfig
 * says (security/ota_psk by default, where RuView's firmware keeps it).
 * Values are blobs; a string also reads, as RuView and
 * nvs_partition_gen.py provision the PSK. Each set is committed at once:
 * NVS writes a key atomically, as the agent needs. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "glue.h"
#include "nvs.h"

#define NAME_MAX_LEN 15 /* NVS_KEY_NAME_MAX_SIZE without its NUL */

static void name(char out[NAME_MAX_LEN + 1], const char *s, size_t len)
{
    if (len <= NAME_MAX_LEN) {
        memcpy(out, s, len);
        out[len] = 0;
        return;
    }
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    snprintf(out, NAME_MAX_LEN + 1, "%.6s~%08" PRIx32, s, h);
}

/* The NVS namespace and key of an agent key; false when it has no "ns/". */
static bool split(const char *key, char ns[NAME_MAX_LEN + 1], char k[NAME_MAX_LEN + 1])
{
    if (!strcmp(key, "security/ota_psk")) {
        snprintf(ns, NAME_MAX_LEN + 1, "%s", CONFIG_ALOFT_PSK_NVS_NAMESPACE);
        snprintf(k, NAME_MAX_LEN + 1, "%s", CONFIG_ALOFT_PSK_NVS_KEY);
        return true;
    }
    const char *slash = strchr(key, '/');
    if (!slash || slash == key || !slash[1])
        return false;
    name(ns, key, (size_t)(slash - key));
    name(k, slash + 1, strlen(slash + 1));
    return true;
}

static int status(esp_err_t err)
{
    switch (err) {
    case ESP_OK: return 0;
    case ESP_ERR_NVS_NOT_FOUND: return ALOFT_E_NOTFOUND;
    case ESP_ERR_NVS_INVALID_LENGTH: return ALOFT_E_NOSPC;
    case ESP_ERR_NVS_NOT_ENOUGH_SPACE: return ALOFT_E_NOSPC;
    default: return ALOFT_E_IO;
    }
}

/* A string value into buf without its NUL: a string as long as buf (a
 * 64-character PSK) goes through a copy that has room for the NUL. */
static esp_err_t get_str(nvs_handle_t h, const char *k, void *buf, size_t *len)
{
    size_t need = 0;
    esp_err_t err = nvs_get_str(h, k, NULL, &need);
    if (err == ESP_OK && (!need || need - 1 > *len))
        return ESP_ERR_NVS_INVALID_LENGTH;
    char *s = err == ESP_OK ? malloc(need) : NULL;
    if (err == ESP_OK && !s)
        err = ESP_ERR_NO_MEM;
    if (err == ESP_OK && (err = nvs_get_str(h, k, s, &need)) == ESP_OK)
        memcpy(buf, s, need - 1);
    free(s);
    *len = need ? need - 1 : 0;
    return err;
}

static int get(void *ctx, const char *key, void *buf, size_t cap)
{
    (void)ctx;
    char ns[NAME_MAX_LEN + 1], k[NAME_MAX_LEN + 1];
    nvs_handle_t h;
    if (!split(key, ns, k))
        return ALOFT_E_INVAL;
    esp_err_t err = nvs_open(ns, NVS_READONLY, &h);
    if (err != ESP_OK)
        return status(err);
    size_t len = cap;
    err = nvs_get_blob(h, k, buf, &len);
    if (err == ESP_ERR_NVS_NOT_FOUND || err == ESP_ERR_NVS_TYPE_MISMATCH) {
        len = cap;
        err = get_str(h, k, buf, &len);
    }
    nvs_close(h);
    return err == ESP_OK ? (int)len : status(err == ESP_ERR_NVS_TYPE_MISMATCH ? ESP_ERR_NVS_NOT_FOUND : err);
}

/* Open ns read-write, set (val) or erase (NULL) the key, commit. */
static int put(const char *key, const void *val, size_t len)
{
    char ns[NAME_MAX_LEN + 1], k[NAME_MAX_LEN + 1];
    nvs_handle_t h;
    if (!split(key, ns, k))
        return ALOFT_E_INVAL;
    esp_err_t err = nvs_open(ns, NVS_READWRITE, &h);
    if (err != ESP_OK)
        return status(err);
    err = val ? nvs_set_blob(h, k, val, len) : nvs_erase_key(h, k);
    if (err == ESP_ERR_NVS_NOT_FOUND) /* deleting what is not there */
        err = ESP_OK;
    if (err == ESP_OK)
        err = nvs_commit(h);
    nvs_close(h);
    return status(err);
}

static int set(void *ctx, const char *key, const void *val, size_t len)
{
    (void)ctx;
    return put(key, val, len);
}

static int del(void *ctx, const char *key)
{
    (void)ctx;
    return put(key, NULL, 0);
}

struct aloft_settings aloft_idf_settings(void)
{
    return (struct aloft_settings){.get = get, .set = set, .del = del};
}
