/* aloft-node: the agent's port on a POSIX process — the flash file (a cut
 * ends the process as power loss would), the settings store in its nvs
 * partition (ports/posix), the frontend's LittleFS (host/www_fs.c), and
 * the events: restart, state (MQTT) and reports (libcurl). */
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "aloft/err.h"
#include "node.h"
#include "signing.h"

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

/* Signed updates: OpenSSL checks the block (the agent matched its key),
 * and hashes for P-384 blocks. */
static int verify(void *ctx, const struct aloft_sig_block *b, const uint8_t *digest)
{
    (void)ctx;
    return aloft_signing_verify(b, digest) ? 0 : ALOFT_E_SIGNATURE;
}

static int sha384_is(void *ctx, uint32_t addr, uint32_t len, const uint8_t digest[48])
{
    struct node *n = ctx;
    return aloft_signing_flash_sha384_is(&n->flash, addr, len, digest);
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
        .settings = aloft_posix_kv_settings(&n->kv),
        .www = aloft_www_lfs_port(&n->www, &n->flash),
        .now_ms = now_ms,
        .restart = restart,
        .random = random_bytes,
        .log = log_line,
        .state = state,
        .report = report,
        .verify = verify,
        .sha384_is = sha384_is,
    };
}
