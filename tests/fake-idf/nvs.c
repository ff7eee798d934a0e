/* fake-idf: NVS over the POSIX port's key-value store (ports/posix/kv.c)
 * in the chip's nvs partition, with NVS's rules as the glue meets them:
 * names of 15 characters at most, a namespace that does not exist cannot
 * be opened read-only, a value is a string or a blob and reading it as the
 * other is a type mismatch, a buffer too small is INVALID_LENGTH with the
 * size needed, a read-only handle writes nothing. A value is stored as
 * "<ns>/<key>" = its type byte and bytes, so values are limited to the
 * store's ALOFT_KV_VALUE_MAX - 1 bytes (NVS allows 4000-byte strings and
 * larger blobs: VALUE_TOO_LONG here is earlier than on a chip). Every set
 * is durable at once; nvs_commit has nothing left to do. */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft_posix_kv.h"
#include "chip.h"
#include "nvs.h"
#include "nvs_flash.h"

#define HANDLES 32
#define T_STR 's'
#define T_BLOB 'b'

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct aloft_posix_kv kv;
static bool opened;
static struct {
    bool used, readonly;
    char ns[NVS_NS_NAME_MAX_SIZE];
} handles[HANDLES];
static uint8_t val[ALOFT_KV_VALUE_MAX];

static bool name_ok(const char *s)
{
    return s && *s && strlen(s) < NVS_KEY_NAME_MAX_SIZE;
}

static esp_err_t store(void)
{
    if (opened)
        return ESP_OK;
    struct fake_idf_chip *c = fake_idf_chip();
    const struct aloft_part *p = c ? aloft_part_find(&c->boot.table, ALOFT_PART_DATA, ALOFT_PART_NVS) : NULL;
    if (!p || aloft_posix_kv_open(&kv, c->boot.flash, p))
        return ESP_ERR_NVS_NOT_INITIALIZED;
    opened = true;
    return ESP_OK;
}

esp_err_t nvs_flash_init(void)
{
    pthread_mutex_lock(&lock);
    esp_err_t err = store();
    pthread_mutex_unlock(&lock);
    return err;
}

static void ns_key(char *out, size_t cap, const char *ns)
{
    snprintf(out, cap, "nvs:ns/%s", ns); /* that the namespace exists */
}

esp_err_t nvs_open(const char *namespace_name, nvs_open_mode_t open_mode, nvs_handle_t *out_handle)
{
    char k[ALOFT_KV_KEY_MAX];
    esp_err_t err;
    if (!name_ok(namespace_name))
        return ESP_ERR_NVS_INVALID_NAME;
    pthread_mutex_lock(&lock);
    if ((err = store()) == ESP_OK) {
        ns_key(k, sizeof k, namespace_name);
        int rc = aloft_posix_kv_get(&kv, k, val, sizeof val);
        if (rc == ALOFT_E_NOTFOUND && open_mode == NVS_READWRITE)
            rc = aloft_posix_kv_set(&kv, k, "", 0);
        err = rc == ALOFT_E_NOTFOUND ? ESP_ERR_NVS_NOT_FOUND : rc < 0 ? ESP_FAIL : ESP_OK;
    }
    uint32_t i = 0;
    while (err == ESP_OK && i < HANDLES && handles[i].used)
        i++;
    if (err == ESP_OK && i == HANDLES)
        err = ESP_ERR_NO_MEM;
    if (err == ESP_OK) {
        handles[i].used = true;
        handles[i].readonly = open_mode == NVS_READONLY;
        snprintf(handles[i].ns, sizeof handles[i].ns, "%s", namespace_name);
        *out_handle = i + 1;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

void nvs_close(nvs_handle_t handle)
{
    pthread_mutex_lock(&lock);
    if (handle >= 1 && handle <= HANDLES)
        handles[handle - 1].used = false;
    pthread_mutex_unlock(&lock);
}

esp_err_t nvs_commit(nvs_handle_t handle)
{
    return handle >= 1 && handle <= HANDLES && handles[handle - 1].used ? ESP_OK : ESP_ERR_NVS_INVALID_HANDLE;
}

/* The kv key of (handle, key) into out; checks the handle and the name. */
static esp_err_t item(nvs_handle_t h, const char *key, bool write, char out[ALOFT_KV_KEY_MAX])
{
    if (h < 1 || h > HANDLES || !handles[h - 1].used)
        return ESP_ERR_NVS_INVALID_HANDLE;
    if (!key || !*key)
        return ESP_ERR_NVS_INVALID_NAME;
    if (strlen(key) >= NVS_KEY_NAME_MAX_SIZE)
        return ESP_ERR_NVS_KEY_TOO_LONG;
    if (write && handles[h - 1].readonly)
        return ESP_ERR_NVS_READ_ONLY;
    snprintf(out, ALOFT_KV_KEY_MAX, "%s/%s", handles[h - 1].ns, key);
    return ESP_OK;
}

static esp_err_t set(nvs_handle_t h, const char *key, char type, const void *value, size_t len)
{
    char k[ALOFT_KV_KEY_MAX];
    pthread_mutex_lock(&lock);
    esp_err_t err = item(h, key, true, k);
    if (err == ESP_OK && len + 1 > sizeof val)
        err = ESP_ERR_NVS_VALUE_TOO_LONG;
    if (err == ESP_OK) {
        val[0] = (uint8_t)type;
        memcpy(val + 1, value, len);
        int rc = aloft_posix_kv_set(&kv, k, val, len + 1);
        err = rc == ALOFT_E_NOSPC ? ESP_ERR_NVS_NOT_ENOUGH_SPACE : rc ? ESP_FAIL : ESP_OK;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

esp_err_t nvs_set_str(nvs_handle_t handle, const char *key, const char *value)
{
    return value ? set(handle, key, T_STR, value, strlen(value) + 1) : ESP_ERR_INVALID_ARG;
}

esp_err_t nvs_set_blob(nvs_handle_t handle, const char *key, const void *value, size_t length)
{
    return value || !length ? set(handle, key, T_BLOB, value, length) : ESP_ERR_INVALID_ARG;
}

/* As nvs_get_str_or_blob: NULL out_value asks for the size. */
static esp_err_t get(nvs_handle_t h, const char *key, char type, void *out, size_t *length)
{
    char k[ALOFT_KV_KEY_MAX];
    if (!length)
        return ESP_ERR_NVS_INVALID_LENGTH;
    pthread_mutex_lock(&lock);
    esp_err_t err = item(h, key, false, k);
    int rc = err == ESP_OK ? aloft_posix_kv_get(&kv, k, val, sizeof val) : 0;
    if (err == ESP_OK && rc < 1)
        err = rc == ALOFT_E_NOTFOUND || rc == 0 ? ESP_ERR_NVS_NOT_FOUND : ESP_FAIL;
    if (err == ESP_OK && val[0] != (uint8_t)type)
        err = ESP_ERR_NVS_TYPE_MISMATCH;
    if (err == ESP_OK) {
        size_t size = (size_t)rc - 1;
        if (out && *length < size)
            err = ESP_ERR_NVS_INVALID_LENGTH;
        else if (out)
            memcpy(out, val + 1, size);
        *length = size;
    }
    pthread_mutex_unlock(&lock);
    return err;
}

esp_err_t nvs_get_str(nvs_handle_t handle, const char *key, char *out_value, size_t *length)
{
    return get(handle, key, T_STR, out_value, length);
}

esp_err_t nvs_get_blob(nvs_handle_t handle, const char *key, void *out_value, size_t *length)
{
    return get(handle, key, T_BLOB, out_value, length);
}

esp_err_t nvs_erase_key(nvs_handle_t handle, const char *key)
{
    char k[ALOFT_KV_KEY_MAX];
    pthread_mutex_lock(&lock);
    esp_err_t err = item(handle, key, true, k);
    if (err == ESP_OK) {
        int rc = aloft_posix_kv_get(&kv, k, val, sizeof val);
        err = rc == ALOFT_E_NOTFOUND ? ESP_ERR_NVS_NOT_FOUND : rc < 0 ? ESP_FAIL : aloft_posix_kv_del(&kv, k) ? ESP_FAIL : ESP_OK;
    }
    pthread_mutex_unlock(&lock);
    return err;
}
