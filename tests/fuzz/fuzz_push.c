/* libFuzzer harness: the agent's push API (agent/push.c, www.c), the way a
 * device's HTTP server hands it requests. Input: a method byte, then
 * '\n'-separated path, Authorization, Content-Type, Content-Length,
 * Accept-Encoding, Origin and Host, then the body, delivered in pieces whose size the
 * second byte sets. The device is a real one in memory (partition table,
 * otadata, an app, settings with a PSK). Checked: every reply has a status
 * and a JSON body that parses (or a file); a reply that is not 200 left
 * the running app, otadata and the settings byte-identical (202: a pull job
 * was started, which the harness ends at once); the update slot is never
 * left held. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/pull.h"
#include "aloft/push.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"
#include "flashimg.h"
#include "image_make.h"
#include "json.h"

#define FLASH (1u << 20)
#define CSV                                                                                                            \
    "nvs, data, nvs, 0x9000, 0x4000,\n"                                                                                \
    "otadata, data, ota, 0xd000, 0x2000,\n"                                                                            \
    "ota_0, app, ota_0, 0x10000, 0x40000,\n"                                                                           \
    "ota_1, app, ota_1, 0x50000, 0x40000,\n"

static struct aloft_posix_flash pf;
static struct aloft_posix_kv kv;
static struct aloft_boot boot;
static struct aloft_agent agent;
static uint8_t pristine[FLASH];
static bool restarted;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_push: %s\n", what);
    abort();
}

static void restart(void *c, const char *why) { (void)c, (void)why; restarted = true; }

static struct aloft_agent_port port = {.restart = restart};

static void setup(void)
{
    struct aloft_part_table t;
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32"), .project = "fz", .version = "1.0.0"};
    uint8_t *app;
    size_t len;
    if (aloft_posix_flash_mem(&pf, FLASH) || aloft_part_csv_parse(&t, CSV, strlen(CSV), ALOFT_PART_TABLE_OFFSET, NULL) ||
        aloft_image_make(&o, &app, &len) || aloft_flashimg_init(&pf.port, &t, ALOFT_PART_TABLE_OFFSET, app, len) ||
        aloft_boot_init(&boot, &pf.port, ALOFT_PART_TABLE_OFFSET, ALOFT_CHIP_ANY, true) || aloft_boot_select(&boot) ||
        aloft_posix_kv_open(&kv, &pf.port, aloft_part_find_label(&boot.table, "nvs")) ||
        aloft_posix_kv_set(&kv, "security/ota_psk", "secret", 6))
        fail("cannot set up the device");
    free(app);
    port.flash = &pf.port;
    port.settings = aloft_posix_kv_settings(&kv);
    memcpy(pristine, pf.mem, FLASH);
}

/* The next '\n'-terminated field, or NULL (absent) when it is empty. */
static const char *field(const uint8_t **p, const uint8_t *end, char *out, size_t cap)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
    size_t n = nl ? (size_t)(nl - *p) : (size_t)(end - *p);
    snprintf(out, cap, "%.*s", (int)n, (const char *)*p);
    *p += nl ? n + 1 : n;
    return out[0] ? out : NULL;
}

static void check_reply(const struct aloft_push_reply *r)
{
    if (r->status < 200 || r->status > 599 || !r->content_type)
        fail("a reply without a status or type");
    if (!r->file && (!r->body || !aloft_json_valid(r->body, r->len)))
        fail("a reply body that is not JSON");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 2)
        return 0;
    static const char *const methods[] = {"GET", "POST", "HEAD", "PUT"};
    const uint8_t *p = data + 2, *end = data + size;
    size_t piece = (size_t)data[1] * 13 + 1;
    char path[300], auth[100], type[100], length[40], enc[60], origin[60], host[60];
    struct aloft_push_request rq = {.method = methods[data[0] & 3]};
    rq.path = field(&p, end, path, sizeof path);
    rq.path = rq.path ? rq.path : "/";
    rq.authorization = field(&p, end, auth, sizeof auth);
    rq.content_type = field(&p, end, type, sizeof type);
    rq.content_length = field(&p, end, length, sizeof length) ? strtoll(length, NULL, 10) : (int64_t)(end - p);
    rq.accept_encoding = field(&p, end, enc, sizeof enc);
    rq.origin = field(&p, end, origin, sizeof origin);
    rq.host = field(&p, end, host, sizeof host);

    restarted = false;
    if (aloft_agent_start(&agent, &port, &boot, &(struct aloft_agent_config){.mac = "02:00:00:00:00:01", .open = true}))
        fail("the agent does not start");
    static struct aloft_push push;
    static char buf[2048];
    struct aloft_push_reply reply;
    memset(&reply, 0, sizeof reply);
    int final = aloft_push_begin(&agent, &push, &rq, buf, sizeof buf, &reply);
    for (const uint8_t *q = p; !final && q < end; q += piece)
        aloft_push_body(&agent, &push, q, (size_t)(end - q) < piece ? (size_t)(end - q) : piece);
    if (!final)
        aloft_push_end(&agent, &push, &reply);
    if (reply.start_pull) { /* a trigger: start its job as the glue would, and end it at once */
        static struct aloft_pull job;
        static struct aloft_pull_request req;
        int rc = aloft_pull_start(&agent, &job, &push.pull);
        aloft_push_pull_reply(&agent, &push, rc, &job, &reply);
        while (rc == 0 && aloft_pull_request(&agent, &job, &req) == 0)
            aloft_pull_done(&agent, &job, ALOFT_NET_TLS, 0, "fuzz: no network");
    }
    check_reply(&reply);
    aloft_push_abort(&agent, &push);
    if (agent.busy)
        fail("the update slot is still held");
    const struct aloft_part *od = aloft_part_find_label(&boot.table, "otadata"), *nvs = aloft_part_find_label(&boot.table, "nvs");
    if (reply.status != 200 && reply.status != 202 && (memcmp(pf.mem + od->offset, pristine + od->offset, od->size) ||
                                memcmp(pf.mem + nvs->offset, pristine + nvs->offset, nvs->size) ||
                                memcmp(pf.mem + boot.running->offset, pristine + boot.running->offset, boot.running->size)))
        fail("a refused request changed otadata, the settings or the running app");
    if (restarted && reply.status != 200)
        fail("a restart without success");
    memcpy(pf.mem, pristine, FLASH); /* the next input starts from the same device */
    aloft_posix_kv_open(&kv, &pf.port, nvs);
    return 0;
}
