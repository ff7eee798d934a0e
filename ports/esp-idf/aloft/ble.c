/* aloft on ESP-IDF: the BLE OTA service (the agent's ble.h) on NimBLE: the
 * GATT table with the service's three characteristics, advertising under
 * CONFIG_ALOFT_BLE_NAME, one central at a time. Every GATT access of that
 * central goes to the agent; what to answer (an ATT error, notifications)
 * is the agent's, as in aloft-node's simulated link. Only with
 * CONFIG_ALOFT_BLE_OTA (which needs NimBLE). */
#include "sdkconfig.h"

#ifdef CONFIG_ALOFT_BLE_OTA

#include <string.h>

#include "aloft/ble.h"
#include "esp_log.h"
#include "glue.h"
#include "host/ble_hs.h"
#include "host/util/util.h"
#include "nimble/nimble_port.h"
#include "nimble/nimble_port_freertos.h"
#include "services/gap/ble_svc_gap.h"
#include "services/gatt/ble_svc_gatt.h"

#define IDLE_US (30 * 1000000LL) /* a central silent this long is let go (a stalled transfer holds the slot) */

static const char *TAG = "aloft";
static struct aloft_idf *dev;
static struct aloft_ble ble;
static ble_uuid128_t uuid[1 + ALOFT_BLE_CHRS]; /* the agent's, in NimBLE's byte order */
static uint16_t handle[ALOFT_BLE_CHRS];
static uint16_t conn = BLE_HS_CONN_HANDLE_NONE;
static uint8_t own_addr_type;
static int64_t last_us; /* the central's last access */
static esp_timer_handle_t idle;

static int chr_of(uint16_t attr)
{
    for (int i = 0; i < ALOFT_BLE_CHRS; i++)
        if (handle[i] == attr)
            return i;
    return -1;
}

/* the agent's notifications (called with the agent's lock held) */
static void notify(void *ctx, int chr, const void *v, size_t len)
{
    struct os_mbuf *om = ble_hs_mbuf_from_flat(v, (uint16_t)len);
    if (om && ble_gatts_notify_custom(conn, handle[chr], om) != 0)
        ESP_LOGW(TAG, "ble: a notification was not sent");
}

static int access(uint16_t conn_handle, uint16_t attr_handle, struct ble_gatt_access_ctxt *ctxt, void *arg)
{
    static uint8_t buf[520]; /* one access at a time: NimBLE's host task */
    int chr = (int)(intptr_t)arg, rc = BLE_ATT_ERR_UNLIKELY;
    uint16_t len = 0;
    if (conn_handle != conn)
        return BLE_ATT_ERR_UNLIKELY;
    last_us = esp_timer_get_time();
    if (ctxt->op == BLE_GATT_ACCESS_OP_READ_CHR) {
        aloft_idf_lock(dev);
        int n = aloft_ble_read(&dev->agent, &ble, chr, buf, sizeof buf);
        aloft_idf_unlock(dev);
        if (n < 0)
            return -n;
        return os_mbuf_append(ctxt->om, buf, (uint16_t)n) ? BLE_ATT_ERR_INSUFFICIENT_RES : 0;
    }
    if (ctxt->op == BLE_GATT_ACCESS_OP_WRITE_CHR) {
        if (OS_MBUF_PKTLEN(ctxt->om) > sizeof buf || ble_hs_mbuf_to_flat(ctxt->om, buf, sizeof buf, &len))
            return BLE_ATT_ERR_INVALID_ATTR_VALUE_LEN;
        aloft_idf_lock(dev);
        rc = aloft_ble_write(&dev->agent, &ble, chr, buf, len);
        aloft_idf_unlock(dev);
    }
    return rc;
}

static const struct ble_gatt_svc_def service[] = {
    {
        .type = BLE_GATT_SVC_TYPE_PRIMARY,
        .uuid = &uuid[0].u,
        .characteristics =
            (struct ble_gatt_chr_def[]){
                {.uuid = &uuid[1 + ALOFT_BLE_CONTROL].u, .access_cb = access, .arg = (void *)ALOFT_BLE_CONTROL,
                 .flags = BLE_GATT_CHR_F_READ | BLE_GATT_CHR_F_WRITE | BLE_GATT_CHR_F_WRITE_NO_RSP |
                          BLE_GATT_CHR_F_NOTIFY,
                 .val_handle = &handle[ALOFT_BLE_CONTROL]},
                {.uuid = &uuid[1 + ALOFT_BLE_DATA].u, .access_cb = access, .arg = (void *)ALOFT_BLE_DATA,
                 .flags = BLE_GATT_CHR_F_WRITE | BLE_GATT_CHR_F_WRITE_NO_RSP,
                 .val_handle = &handle[ALOFT_BLE_DATA]},
                {.uuid = &uuid[1 + ALOFT_BLE_STATUS].u, .access_cb = access, .arg = (void *)ALOFT_BLE_STATUS,
                 .flags = BLE_GATT_CHR_F_READ | BLE_GATT_CHR_F_NOTIFY,
                 .val_handle = &handle[ALOFT_BLE_STATUS]},
                {0},
            },
    },
    {0},
};

static int gap_event(struct ble_gap_event *event, void *arg);

/* Advertise the name and the service, connectable, until a central connects. */
static void advertise(void)
{
    struct ble_hs_adv_fields f = {0};
    const char *name = ble_svc_gap_device_name();
    f.flags = BLE_HS_ADV_F_DISC_GEN | BLE_HS_ADV_F_BREDR_UNSUP;
    f.name = (const uint8_t *)name;
    f.name_len = (uint8_t)strlen(name);
    f.name_is_complete = 1;
    f.uuids128 = &uuid[0];
    f.num_uuids128 = 1;
    f.uuids128_is_complete = 1;
    struct ble_gap_adv_params p = {.conn_mode = BLE_GAP_CONN_MODE_UND, .disc_mode = BLE_GAP_DISC_MODE_GEN};
    int rc = ble_gap_adv_set_fields(&f);
    if (rc == 0)
        rc = ble_gap_adv_start(own_addr_type, NULL, BLE_HS_FOREVER, &p, gap_event, NULL);
    if (rc)
        ESP_LOGE(TAG, "ble: cannot advertise (NimBLE error %d)", rc);
}

static int gap_event(struct ble_gap_event *event, void *arg)
{
    switch (event->type) {
    case BLE_GAP_EVENT_CONNECT:
        if (event->connect.status != 0) {
            advertise();
        } else if (conn != BLE_HS_CONN_HANDLE_NONE) { /* one central at a time */
            ble_gap_terminate(event->connect.conn_handle, BLE_ERR_CONN_LIMIT);
        } else {
            conn = event->connect.conn_handle;
            last_us = esp_timer_get_time();
            aloft_idf_lock(dev);
            aloft_ble_connect(&dev->agent, &ble, ble_att_mtu(conn));
            aloft_idf_unlock(dev);
            ESP_LOGI(TAG, "ble: central connected");
        }
        break;
    case BLE_GAP_EVENT_DISCONNECT:
        if (event->disconnect.conn.conn_handle == conn) {
            aloft_idf_lock(dev);
            aloft_ble_disconnect(&dev->agent, &ble);
            aloft_idf_unlock(dev);
            conn = BLE_HS_CONN_HANDLE_NONE;
            ESP_LOGI(TAG, "ble: central gone (reason %d)", event->disconnect.reason);
        }
        advertise();
        break;
    case BLE_GAP_EVENT_MTU:
        if (event->mtu.conn_handle == conn) {
            aloft_idf_lock(dev);
            aloft_ble_mtu(&ble, event->mtu.value);
            aloft_idf_unlock(dev);
        }
        break;
    case BLE_GAP_EVENT_SUBSCRIBE: {
        int chr = chr_of(event->subscribe.attr_handle);
        if (event->subscribe.conn_handle == conn && chr >= 0) {
            aloft_idf_lock(dev);
            aloft_ble_subscribe(&dev->agent, &ble, chr, event->subscribe.cur_notify);
            aloft_idf_unlock(dev);
        }
        break;
    }
    case BLE_GAP_EVENT_ADV_COMPLETE: advertise(); break;
    default: break;
    }
    return 0;
}

/* every second: hang up on a central that went quiet */
static void idle_check(void *arg)
{
    uint16_t c = conn;
    if (c != BLE_HS_CONN_HANDLE_NONE && esp_timer_get_time() - last_us > IDLE_US) {
        ESP_LOGW(TAG, "ble: the central sent nothing for %lld s: disconnecting", IDLE_US / 1000000);
        last_us = esp_timer_get_time(); /* once per silence */
        ble_gap_terminate(c, BLE_ERR_REM_USER_CONN_TERM);
    }
}

static void on_sync(void)
{
    if (ble_hs_util_ensure_addr(0) || ble_hs_id_infer_auto(0, &own_addr_type)) {
        ESP_LOGE(TAG, "ble: no address to advertise from");
        return;
    }
    advertise();
}

static void on_reset(int reason)
{
    ESP_LOGW(TAG, "ble: the host reset (reason %d)", reason);
}

static void host_task(void *param)
{
    nimble_port_run(); /* until nimble_port_stop */
    nimble_port_freertos_deinit();
}

esp_err_t aloft_idf_ble_start(struct aloft_idf *d)
{
    dev = d;
    ble.notify = notify;
#ifdef CONFIG_ALOFT_BLE_LEGACY
    ble.legacy = true; /* the operator accepts the esp32-ble-ota protocol unauthenticated (pairing) */
#endif
    for (int i = 0; i < 1 + ALOFT_BLE_CHRS; i++) {
        uuid[i].u.type = BLE_UUID_TYPE_128;
        for (int k = 0; k < 16; k++) /* NimBLE keeps a UUID's bytes least significant first */
            uuid[i].value[k] = aloft_ble_uuid[i][15 - k];
    }
    esp_err_t err = nimble_port_init();
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "ble: NimBLE does not start: %s", esp_err_to_name(err));
        return err;
    }
    ble_hs_cfg.sync_cb = on_sync;
    ble_hs_cfg.reset_cb = on_reset;
    ble_svc_gap_init();
    ble_svc_gatt_init();
    int rc = ble_gatts_count_cfg(service);
    if (rc == 0)
        rc = ble_gatts_add_svcs(service);
    if (rc == 0)
        rc = ble_svc_gap_device_name_set(CONFIG_ALOFT_BLE_NAME);
    if (rc) {
        ESP_LOGE(TAG, "ble: the GATT service does not register (NimBLE error %d)", rc);
        return ESP_FAIL;
    }
    const esp_timer_create_args_t args = {.callback = idle_check, .name = "aloft_ble"};
    if (esp_timer_create(&args, &idle) != ESP_OK || esp_timer_start_periodic(idle, 1000000) != ESP_OK)
        ESP_LOGW(TAG, "ble: no idle timer: a silent central is not let go");
    nimble_port_freertos_init(host_task);
    ESP_LOGI(TAG, "ble: OTA service advertised as \"%s\"", CONFIG_ALOFT_BLE_NAME);
    return ESP_OK;
}

#endif
