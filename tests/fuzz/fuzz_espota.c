/* libFuzzer harness: the agent's ArduinoOTA upload (agent/espota.c), the
 * way a device's glue hands it datagrams, the connection back and the
 * image's chunks. Input: a flags byte (bit 0: the device has no PSK and is
 * open, so the fuzzer reaches the transfer), then events: 'D' len bytes (a
 * datagram), 'C' (connected), 'B' len-hi len-lo bytes (a chunk), 'A'
 * (abort). The device is a real one in memory. Checked: every answer is
 * NUL-terminated text within its buffer and its length is returned; the
 * update slot is held only during a transfer; unless a transfer ended in
 * OK, otadata, the settings and the running app are byte-identical, and a
 * restart comes only with that OK. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/espota.h"
#include "aloft/err.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"
#include "flashimg.h"
#include "image_make.h"

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
static uint8_t pristine[FLASH], pristine_open[FLASH];
static bool restarted;
static uint64_t clock_ms;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_espota: %s\n", what);
    abort();
}

static void restart(void *c, const char *why) { (void)c, (void)why; restarted = true; }
static uint64_t now_ms(void *c) { (void)c; return clock_ms += 7; }
static void random_bytes(void *c, void *buf, size_t len) { (void)c; memset(buf, 0x5a, len); }

static struct aloft_agent_port port = {.restart = restart, .now_ms = now_ms, .random = random_bytes};

static void setup(void)
{
    struct aloft_part_table t;
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32"), .project = "fz", .version = "1.0.0"};
    uint8_t *app;
    size_t len;
    if (aloft_posix_flash_mem(&pf, FLASH) || aloft_part_csv_parse(&t, CSV, strlen(CSV), ALOFT_PART_TABLE_OFFSET, NULL) ||
        aloft_image_make(&o, &app, &len) || aloft_flashimg_init(&pf.port, &t, ALOFT_PART_TABLE_OFFSET, app, len) ||
        aloft_boot_init(&boot, &pf.port, ALOFT_PART_TABLE_OFFSET, ALOFT_CHIP_ANY, true) || aloft_boot_select(&boot) ||
        aloft_posix_kv_open(&kv, &pf.port, aloft_part_find_label(&boot.table, "nvs")))
        fail("cannot set up the device");
    free(app);
    memcpy(pristine_open, pf.mem, FLASH); /* no PSK */
    if (aloft_posix_kv_set(&kv, "security/ota_psk", "secret", 6))
        fail("cannot provision the PSK");
    memcpy(pristine, pf.mem, FLASH);
    port.flash = &pf.port;
}

static void check_answer(int len, const char *out)
{
    if (len < 0 || len >= ALOFT_ESPOTA_ANSWER_MAX || strlen(out) != (size_t)len)
        fail("an answer that is not the text it says");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        setup();
        ready = true;
    }
    if (size < 1)
        return 0;
    bool open = data[0] & 1;
    const uint8_t *base = open ? pristine_open : pristine;
    memcpy(pf.mem, base, FLASH);
    const struct aloft_part *od = aloft_part_find_label(&boot.table, "otadata"),
                            *nvs = aloft_part_find_label(&boot.table, "nvs");
    aloft_posix_kv_open(&kv, &pf.port, nvs);
    port.settings = aloft_posix_kv_settings(&kv);
    restarted = false;
    if (aloft_agent_start(&agent, &port, &boot, &(struct aloft_agent_config){.mac = "02:00:00:00:00:01", .open = open}))
        fail("the agent does not start");
    static struct aloft_espota e;
    memset(&e, 0, sizeof e);
    char out[ALOFT_ESPOTA_ANSWER_MAX];
    bool ok = false;
    for (const uint8_t *p = data + 1, *end = data + size; p < end && !ok;) {
        uint8_t op = *p++;
        size_t n = 0;
        if (op == 'D' && p < end) {
            n = *p++;
            n = n < (size_t)(end - p) ? n : (size_t)(end - p);
            check_answer(aloft_espota_datagram(&agent, &e, p, n, out, sizeof out), out);
        } else if (op == 'C') {
            check_answer(aloft_espota_connected(&agent, &e, out, sizeof out), out);
        } else if (op == 'B' && end - p >= 2) {
            n = (size_t)p[0] << 8 | p[1];
            p += 2;
            n = n < (size_t)(end - p) ? n : (size_t)(end - p);
            if (n) {
                int len = aloft_espota_data(&agent, &e, p, n, out, sizeof out);
                check_answer(len, out);
                ok = len >= 2 && !strcmp(out + len - 2, "OK") && e.state == ALOFT_ESPOTA_IDLE;
            }
        } else if (op == 'A') {
            aloft_espota_abort(&agent, &e, "fuzz");
        }
        p += n;
        if (agent.busy != (e.state == ALOFT_ESPOTA_TRANSFER))
            fail("the update slot is held outside a transfer, or not during one");
    }
    aloft_espota_abort(&agent, &e, "fuzz: the input ended");
    if (agent.busy)
        fail("the update slot is still held");
    if (!ok && (memcmp(pf.mem + od->offset, base + od->offset, od->size) ||
                memcmp(pf.mem + nvs->offset, base + nvs->offset, nvs->size) ||
                memcmp(pf.mem + boot.running->offset, base + boot.running->offset, boot.running->size)))
        fail("an upload that did not end in OK changed otadata, the settings or the running app");
    if (restarted && !ok)
        fail("a restart without OK");
    return 0;
}
