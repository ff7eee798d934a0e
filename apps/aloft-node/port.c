/* aloft-node: the agent's port on a POSIX process — the flash file (a cut
 * ends the process as power loss would), the settings store in its nvs
 * partition, the frontend's LittleFS read from a copy of the active www
 * slot, and the events: restart, state (MQTT) and reports (libcurl). */
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "aloft/err.h"
#include "node.h"

static int flash_read(void *ctx, uint32_t addr, void *buf, size_t len)
{
    struct node *n = ctx;
    int rc = n->pf.port.read(n->pf.port.ctx, addr, buf, len);
    if (rc == ALOFT_E_POWER)
        node_power_lost(n);
    return rc;
}

static int flash_write(void *ctx, uint32_t addr, const void *buf, size_t len)
{
    struct node *n = ctx;
    int rc = n->pf.port.write(n->pf.port.ctx, addr, buf, len);
    if (rc == ALOFT_E_POWER)
        node_power_lost(n);
    return rc;
}

static int flash_erase(void *ctx, uint32_t addr, size_t len)
{
    struct node *n = ctx;
    int rc = n->pf.port.erase(n->pf.port.ctx, addr, len);
    if (rc == ALOFT_E_POWER)
        node_power_lost(n);
    return rc;
}

static int kv_get(void *ctx, const char *key, void *buf, size_t cap)
{
    return aloft_posix_kv_get(&((struct node *)ctx)->kv, key, buf, cap);
}

static int kv_set(void *ctx, const char *key, const void *val, size_t len)
{
    return aloft_posix_kv_set(&((struct node *)ctx)->kv, key, val, len);
}

static int kv_del(void *ctx, const char *key)
{
    return aloft_posix_kv_del(&((struct node *)ctx)->kv, key);
}

/* A copy of partition p, mounted (what esp_littlefs reads on a device). */
static int www_load(struct node *n, const struct aloft_part *p, uint8_t **img, struct aloft_lfs *fs)
{
    if (!(*img = malloc(p->size)))
        return ALOFT_E_NOSPC;
    int rc = aloft_flash_read(&n->flash, p->offset, *img, p->size);
    if (rc == 0)
        rc = aloft_lfs_mount(fs, *img, p->size, 0);
    if (rc) {
        free(*img);
        *img = NULL;
    }
    return rc;
}

static int www_check(void *ctx, const struct aloft_part *p)
{
    uint8_t *img;
    struct aloft_lfs fs;
    int rc = www_load(ctx, p, &img, &fs);
    free(img);
    return rc;
}

static int www_mount(void *ctx, const struct aloft_part *p)
{
    struct node *n = ctx;
    free(n->www_img);
    int rc = www_load(n, p, &n->www_img, &n->www_fs);
    n->www_mounted = rc == 0;
    return rc;
}

static int www_stat(void *ctx, const char *path, uint32_t *size)
{
    struct node *n = ctx;
    struct aloft_lfs_info info;
    if (!n->www_mounted || aloft_lfs_stat(&n->www_fs, path, &info) || info.type != ALOFT_LFS_REG)
        return ALOFT_E_NOTFOUND;
    *size = info.size;
    return 0;
}

static int www_read(void *ctx, const char *path, uint32_t off, void *buf, size_t len)
{
    struct node *n = ctx;
    struct aloft_lfs_info info;
    if (!n->www_mounted || aloft_lfs_stat(&n->www_fs, path, &info))
        return ALOFT_E_NOTFOUND;
    return aloft_lfs_read(&n->www_fs, &info, off, buf, len);
}

static uint64_t now_ms(void *ctx)
{
    (void)ctx;
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000u + (uint64_t)t.tv_nsec / 1000000u;
}

static void restart(void *ctx, const char *reason)
{
    struct node *n = ctx;
    pthread_mutex_lock(&n->restart_lock);
    n->restart_reason = reason;
    pthread_cond_signal(&n->restart_cond);
    pthread_mutex_unlock(&n->restart_lock);
}

static void random_bytes(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    if (getrandom(buf, len, 0) != (ssize_t)len) /* never short for len <= 256 */
        memset(buf, 0, len);
}

static void log_line(void *ctx, const char *line)
{
    node_log(ctx, "%s", line);
}

static void state(void *ctx, const char *json, size_t len)
{
    struct node *n = ctx;
    if (n->on_state)
        n->on_state(n, json, len);
}

static void report(void *ctx, const char *url, const char *json)
{
    node_report(ctx, url, json);
}

void node_port_init(struct node *n)
{
    n->flash = n->pf.port;
    n->flash.ctx = n;
    n->flash.read = flash_read;
    n->flash.write = flash_write;
    n->flash.erase = flash_erase;
    n->port = (struct aloft_agent_port){
        .ctx = n,
        .flash = &n->flash,
        .settings = {kv_get, kv_set, kv_del},
        .www = {www_check, www_mount, www_stat, www_read},
        .now_ms = now_ms,
        .restart = restart,
        .random = random_bytes,
        .log = log_line,
        .state = state,
        .report = report,
    };
}
