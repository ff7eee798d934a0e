/* aloft agent: the device's facts at start-up, its confirm policy, its
 * status and state documents, and the ports' small helpers. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agent_private.h"
#include "aloft/err.h"
#include "aloft/otadata.h"

#define LOG_LINE_MAX 320

void aloft_agent_log(struct aloft_agent *a, const char *fmt, ...)
{
    if (!a->port->log)
        return;
    char line[LOG_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    a->port->log(a->port->ctx, line);
}

void aloft_agent_get(struct aloft_agent *a, const char *key, char *buf, size_t cap)
{
    const struct aloft_settings *s = &a->port->settings;
    int len = s->get(s->ctx, key, buf, cap - 1);
    buf[len > 0 ? len : 0] = 0;
}

int aloft_agent_put(struct aloft_agent *a, const char *key, const char *val)
{
    const struct aloft_settings *s = &a->port->settings;
    int rc = val ? s->set(s->ctx, key, val, strlen(val)) : s->del(s->ctx, key);
    if (rc)
        aloft_agent_log(a, "settings: cannot keep %s: %s", key, aloft_strerror(rc));
    return rc;
}

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

static const char *state_name(const struct aloft_agent *a)
{
    int64_t st = aloft_boot_state(a->boot);
    return st < 0 ? "unknown" : aloft_otadata_state_name((uint32_t)st);
}

static const char *chip_name(uint16_t id)
{
    const char *name = aloft_chip_name(id);
    return name ? name : "unknown";
}

int aloft_agent_start(struct aloft_agent *a, const struct aloft_agent_port *port, struct aloft_boot *b,
                      const struct aloft_agent_config *cfg)
{
    if (!port || !port->flash || !port->settings.get || !port->settings.set || !port->settings.del || !b ||
        !b->running || !cfg)
        return ALOFT_E_INVAL;
    memset(a, 0, sizeof *a);
    a->port = port;
    a->boot = b;
    a->started_ms = port->now_ms ? port->now_ms(port->ctx) : 0;
    copy(a->mac, sizeof a->mac, cfg->mac);
    copy(a->reset_reason, sizeof a->reset_reason, cfg->reset_reason ? cfg->reset_reason : "POWERON");
    copy(a->server, sizeof a->server, cfg->server);
    copy(a->cmd_topic, sizeof a->cmd_topic, cfg->cmd_topic);
    a->boot_count = cfg->boot_count;
    a->open = cfg->open;
    a->delta = cfg->delta;
    /* a patch upload cut by a restart resumes from its last saved checkpoint */
    a->delta_ck = a->delta && port->settings.get(port->settings.ctx, "delta/ck", &a->dck, sizeof a->dck) ==
                                  (int)sizeof a->dck;
    aloft_agent_log(a, "boot: reset_reason=%s running_partition=%s", a->reset_reason, b->running->label);

    /* what the running firmware is: its header and descriptor */
    const struct aloft_part *run = b->running;
    int rc = aloft_image_verify_flash(port->flash, run->offset, run->size, ALOFT_CHIP_ANY, &a->app);
    if (rc == ALOFT_E_IO || rc == ALOFT_E_POWER)
        return rc;
    if (b->chip == ALOFT_CHIP_ANY)
        b->chip = a->app.chip_id;
    const struct aloft_app_desc *d = &a->app.desc;
    aloft_agent_log(a, "app: %s %s on %s, state %s, boot %u", a->app.has_desc ? d->project_name : "(no descriptor)",
                    a->app.has_desc ? d->version : "", chip_name(a->app.chip_id), state_name(a), a->boot_count);
    copy(a->device_id, sizeof a->device_id, cfg->device_id ? cfg->device_id : a->mac);
    copy(a->platform, sizeof a->platform,
         cfg->platform ? cfg->platform : a->app.has_desc && d->project_name[0] ? d->project_name : "unknown");

    aloft_agent_get(a, "security/ota_psk", a->psk, sizeof a->psk);
    if (!a->psk[0])
        aloft_agent_log(a, a->open ? "security: WARNING: no PSK provisioned and open: anyone on the network can "
                                     "update this device"
                                   : "security: no PSK provisioned: updates are refused");

    aloft_agent_sig_load(a, cfg->trusted_keys);
    char sv[12];
    aloft_agent_get(a, "security/min_secure_version", sv, sizeof sv);
    a->min_secure_version = (uint32_t)strtoul(sv, NULL, 10);
    if (a->min_secure_version < cfg->min_secure_version)
        a->min_secure_version = cfg->min_secure_version;

    a->www[0] = aloft_part_find_label(&b->table, "www_0");
    a->www[1] = aloft_part_find_label(&b->table, "www_1");
    if (a->www[0] && port->www.mount) {
        char slot[2];
        aloft_agent_get(a, "www/slot", slot, sizeof slot);
        a->www_slot = slot[0] == '1' && a->www[1] ? 1 : 0;
        a->www_ok = port->www.mount(port->www.ctx, a->www[a->www_slot]) == 0;
    }
    return 0;
}

void aloft_agent_restart(struct aloft_agent *a)
{
    a->restarting = true;
    a->port->restart(a->port->ctx, "SW");
}

int aloft_agent_confirm(struct aloft_agent *a)
{
    /* otadata names the next image already: what runs now has nothing to
     * confirm, and its outcome would be judged against the wrong slot */
    if (a->restarting)
        return ALOFT_E_STATE;
    int rc = aloft_boot_mark_valid(a->boot);
    if (rc) {
        aloft_agent_log(a, "app: cannot mark the running image valid: %s", aloft_strerror(rc));
        return rc;
    }
    /* anti-rollback: the floor rises only once the new image proved itself */
    uint32_t sv = a->app.has_desc ? a->app.desc.secure_version : 0;
    if (sv > a->min_secure_version) {
        char v[12];
        snprintf(v, sizeof v, "%u", (unsigned)sv);
        if (aloft_agent_put(a, "security/min_secure_version", v) == 0)
            a->min_secure_version = sv;
    }
    aloft_pull_outcome(a, true);
    return 0;
}

int aloft_agent_reject(struct aloft_agent *a)
{
    int rc = aloft_boot_mark_invalid(a->boot);
    if (rc) {
        aloft_agent_log(a, "app: the health check failed, but it cannot roll back: %s", aloft_strerror(rc));
        return rc;
    }
    aloft_agent_log(a, "app: the health check failed; rolling back");
    aloft_agent_restart(a);
    return 0;
}

bool aloft_agent_secure_version_ok(const struct aloft_agent *a, const struct aloft_image_info *in, char *why,
                                   size_t cap)
{
    uint32_t running = a->app.has_desc ? a->app.desc.secure_version : 0;
    uint32_t floor = running > a->min_secure_version ? running : a->min_secure_version;
    if (!in->has_desc || in->desc.secure_version >= floor)
        return true;
    snprintf(why, cap, "secure_version %u is below %s %u", (unsigned)in->desc.secure_version,
             floor == running ? "the running image's" : "this device's minimum", (unsigned)floor);
    return false;
}

int aloft_agent_www_inactive(const struct aloft_agent *a)
{
    return a->www[0] && a->www[1] ? !a->www_slot : -1;
}

void aloft_agent_hex(const uint8_t *b, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[b[i] >> 4];
        out[2 * i + 1] = digits[b[i] & 15];
    }
    out[2 * n] = 0;
}

bool aloft_agent_is_hex(const char *s, size_t len)
{
    if (strlen(s) != len)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789abcdefABCDEF", *s))
            return false;
    return true;
}

void aloft_agent_lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'F')
            *s = (char)(*s - 'A' + 'a');
}

const char aloft_agent_pending_verify[] =
    "the running image is still pending verification; wait until it confirms itself";
const char aloft_agent_busy[] = "another update is in progress; try again when it is done";
const char aloft_agent_no_www[] = "this device's partition table has no www_0/www_1 slots";

void aloft_agent_why(const struct aloft_agent *a, int err, char *out, size_t cap)
{
    const char *chip = aloft_chip_name(a->boot->chip);
    if (err == ALOFT_E_CHIP)
        snprintf(out, cap, "%s: this device is %s", aloft_strerror(err), chip ? chip : "an unknown chip");
    else
        snprintf(out, cap, "%s", err == ALOFT_E_STATE ? aloft_agent_pending_verify : aloft_strerror(err));
}

void aloft_agent_status_fields(struct aloft_agent *a, struct aloft_jw *w)
{
    const struct aloft_app_desc *d = &a->app.desc;
    bool desc = a->app.has_desc;
    const struct aloft_part *next = aloft_part_next_update(&a->boot->table, a->boot->running);
    char sha[65];
    aloft_agent_hex(a->app.sha256, 32, sha);
    uint64_t now = a->port->now_ms ? a->port->now_ms(a->port->ctx) : a->started_ms;
    aloft_jw_str(w, "version", desc ? d->version : "");
    aloft_jw_str(w, "date", desc ? d->date : "");
    aloft_jw_str(w, "time", desc ? d->time : "");
    aloft_jw_str(w, "running_partition", a->boot->running->label);
    aloft_jw_str(w, "next_partition", next ? next->label : "");
    aloft_jw_num(w, "max_size", next ? next->size : 0);
    aloft_jw_str(w, "project", desc ? d->project_name : "");
    aloft_jw_str(w, "chip", chip_name(a->app.chip_id));
    aloft_jw_str(w, "idf_ver", desc ? d->idf_ver : "");
    aloft_jw_num(w, "secure_version", desc ? d->secure_version : 0);
    aloft_jw_str(w, "state", state_name(a));
    aloft_jw_str(w, "reset_reason", a->reset_reason);
    aloft_jw_num(w, "boot_count", a->boot_count);
    aloft_jw_num(w, "uptime_s", (now - a->started_ms) / 1000);
    aloft_jw_str(w, "mac", a->mac);
    aloft_jw_str(w, "sha256", a->app.hash_appended ? sha : "");
    if (a->www[0])
        aloft_jw_num(w, "www_slot", a->www_slot);
    else
        aloft_jw_null(w, "www_slot");
    aloft_jw_bool(w, "busy", a->busy);
    aloft_jw_bool(w, "delta", a->delta != NULL);
    if (a->delta_ck)
        aloft_jw_num(w, "delta_resume", a->dck.patch);
}

int aloft_agent_status_json(struct aloft_agent *a, char *buf, size_t cap)
{
    struct aloft_jw w;
    aloft_jw_begin(&w, buf, cap);
    aloft_agent_status_fields(a, &w);
    return aloft_jw_end(&w);
}

const char *aloft_agent_phase_name(int phase)
{
    static const char *const names[] = {"idle", "downloading", "verifying", "restarting", "updated", "failed",
                                        "rolled_back"};
    return (unsigned)phase < sizeof names / sizeof names[0] ? names[phase] : "unknown";
}

int aloft_agent_state_json(struct aloft_agent *a, const char *phase, const char *reason, char *buf, size_t cap)
{
    const struct aloft_agent_state *s = &a->state;
    struct aloft_jw w;
    aloft_jw_begin(&w, buf, cap);
    aloft_jw_str(&w, "device", a->device_id);
    aloft_jw_str(&w, "platform", a->platform);
    aloft_jw_str(&w, "mac", a->mac);
    aloft_jw_str(&w, "version", a->app.has_desc ? a->app.desc.version : "");
    aloft_jw_str(&w, "partition", a->boot->running->label);
    aloft_jw_num(&w, "boot_count", a->boot_count);
    aloft_jw_str(&w, "reset_reason", a->reset_reason);
    aloft_jw_str(&w, "state", phase ? phase : aloft_agent_phase_name(s->phase));
    aloft_jw_str(&w, "trigger", s->trigger);
    aloft_jw_str(&w, "target", s->frontend ? "frontend" : "firmware");
    aloft_jw_str(&w, "target_version", s->version);
    aloft_jw_num(&w, "bytes", s->bytes);
    aloft_jw_num(&w, "total", s->total);
    aloft_jw_num(&w, "progress", s->total ? s->bytes * 100 / s->total : 0);
    aloft_jw_str(&w, "code", s->code);
    aloft_jw_str(&w, "reason", reason ? reason : s->reason);
    return aloft_jw_end(&w);
}

void aloft_agent_set_state(struct aloft_agent *a, const struct aloft_agent_state *s)
{
    a->state = *s;
    if (!a->port->state)
        return;
    int len = aloft_agent_state_json(a, NULL, NULL, a->doc, sizeof a->doc);
    if (len > 0)
        a->port->state(a->port->ctx, a->doc, (size_t)len);
}
