/* aloft tests: a device agent on an in-memory flash (testagent.h). */
#include "testagent.h"

#include <stdio.h>
#include <string.h>

#include "aloft/err.h"
#include "signing.h"

static uint64_t now_ms(void *ctx)
{
    return ((struct aloft_test_agent *)ctx)->now_ms;
}

static void restart(void *ctx, const char *reason)
{
    ((struct aloft_test_agent *)ctx)->restart = reason;
}

static void random_bytes(void *ctx, void *buf, size_t len)
{
    (void)ctx;
    static uint32_t seed = 1;
    aloft_test_fill(buf, len, seed++);
}

static void log_line(void *ctx, const char *line)
{
    struct aloft_test_agent *t = ctx;
    size_t len = strlen(line) + 1, have = strlen(t->log);
    if (len >= sizeof t->log)
        return;
    if (have + len >= sizeof t->log) { /* drop the oldest half */
        memmove(t->log, t->log + have / 2, have - have / 2 + 1);
        have = strlen(t->log);
    }
    snprintf(t->log + have, sizeof t->log - have, "%s\n", line);
}

static void state(void *ctx, const char *json, size_t len)
{
    struct aloft_test_agent *t = ctx;
    snprintf(t->state, sizeof t->state, "%.*s", (int)len, json);
    t->states++;
}

static void report(void *ctx, const char *url, const char *json)
{
    struct aloft_test_agent *t = ctx;
    snprintf(t->report_url, sizeof t->report_url, "%s", url);
    snprintf(t->report, sizeof t->report, "%s", json);
    t->reports++;
}

/* Signed updates: OpenSSL, as aloft-node does. */
static int verify(void *ctx, const struct aloft_sig_block *b, const uint8_t *digest)
{
    (void)ctx;
    return aloft_signing_verify(b, digest) ? 0 : ALOFT_E_SIGNATURE;
}

static int sha384_is(void *ctx, uint32_t addr, uint32_t len, const uint8_t digest[48])
{
    struct aloft_test_agent *t = ctx;
    return aloft_signing_flash_sha384_is(&t->dev.pf.port, addr, len, digest);
}

void aloft_test_agent_init(struct aloft_test_agent *t, uint32_t flash_size, const char *csv, const uint8_t *app,
                           size_t app_len, const uint8_t *www, size_t www_len, const struct aloft_agent_config *cfg)
{
    memset(t, 0, sizeof *t);
    aloft_test_dev_init(&t->dev, flash_size, csv ? csv : ALOFT_TEST_CSV_WWW, app, app_len, true);
    t->cfg = cfg ? *cfg : (struct aloft_agent_config){.mac = "02:00:00:00:00:01", .open = true};
    t->port = (struct aloft_agent_port){
        .ctx = t,
        .flash = &t->dev.pf.port,
        .settings = aloft_posix_kv_settings(&t->kv),
        .www = aloft_www_lfs_port(&t->www, &t->dev.pf.port),
        .now_ms = now_ms,
        .restart = restart,
        .random = random_bytes,
        .log = log_line,
        .state = state,
        .report = report,
        .verify = verify,
        .sha384_is = sha384_is,
    };
    assert_int_equal(aloft_test_dev_boot(&t->dev), 0);
    if (www) {
        const struct aloft_part *p = aloft_part_find_label(&t->dev.boot.table, "www_0");
        assert_non_null(p);
        assert_true(www_len <= p->size);
        assert_int_equal(aloft_flash_write(&t->dev.pf.port, p->offset, www, www_len), 0);
    }
    t->dev.pf.ops = 0;
    assert_int_equal(aloft_test_agent_reboot(t, "POWERON"), 0);
}

int aloft_test_agent_reboot(struct aloft_test_agent *t, const char *reason)
{
    t->restart = NULL;
    t->cfg.reset_reason = reason;
    t->cfg.boot_count++;
    int rc = aloft_test_dev_boot(&t->dev);
    if (rc)
        return rc;
    const struct aloft_part *nvs = aloft_part_find(&t->dev.boot.table, ALOFT_PART_DATA, ALOFT_PART_NVS);
    if (!nvs || (rc = aloft_posix_kv_open(&t->kv, &t->dev.pf.port, nvs)) != 0)
        return rc ? rc : ALOFT_E_NOTFOUND;
    return aloft_agent_start(&t->a, &t->port, &t->dev.boot, &t->cfg);
}

void aloft_test_agent_free(struct aloft_test_agent *t)
{
    aloft_www_lfs_free(&t->www);
    aloft_posix_flash_close(&t->dev.pf);
}

bool aloft_test_agent_logged(const struct aloft_test_agent *t, const char *s)
{
    return strstr(t->log, s) != NULL;
}
