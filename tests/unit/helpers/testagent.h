/* aloft tests: a device agent on an in-memory flash, with no network: the
 * real POSIX flash (power cuts included) and settings store, the frontend
 * served by the host's LittleFS reader (www_fs.h), and every event the agent sends
 * recorded (log lines, state documents, reports, restart requests). */
#ifndef ALOFT_TESTAGENT_H
#define ALOFT_TESTAGENT_H

#include "testdev.h"

#include "aloft/agent.h"
#include "aloft_posix_kv.h"
#include "www_fs.h"

struct aloft_test_agent {
    struct aloft_test_dev dev;        /* flash and boot */
    struct aloft_posix_kv kv;
    struct aloft_agent_port port;
    struct aloft_agent a;
    struct aloft_agent_config cfg;
    uint64_t now_ms;                  /* the clock: tests move it */
    struct aloft_www_lfs www;         /* the mounted www slot */
    /* what the agent did */
    char log[16384];                  /* every line, '\n'-separated (oldest dropped) */
    char state[1024];                 /* the last state document */
    unsigned states;                  /* state documents sent */
    char report_url[600], report[1024];
    unsigned reports;
    const char *restart;              /* the last restart reason asked for, or NULL */
};

/* A device: flash_size bytes laid out from csv (NULL: ALOFT_TEST_CSV_WWW),
 * app in ota_0, www (a LittleFS image, may be NULL) in www_0, booted and
 * the agent started with cfg (NULL: MAC 02:00:00:00:00:01, POWERON). */
void aloft_test_agent_init(struct aloft_test_agent *t, uint32_t flash_size, const char *csv, const uint8_t *app,
                           size_t app_len, const uint8_t *www, size_t www_len, const struct aloft_agent_config *cfg);

/* Restart as the device would (power on, boot logic, agent start), with
 * reset reason reason. Returns aloft_boot_select's result. */
int aloft_test_agent_reboot(struct aloft_test_agent *t, const char *reason);

/* Release what init allocated. */
void aloft_test_agent_free(struct aloft_test_agent *t);

/* Does the log hold a line containing s? */
bool aloft_test_agent_logged(const struct aloft_test_agent *t, const char *s);

/* A 4 MB table with two 1 MB app slots, nvs and two 256 KB www slots. */
#define ALOFT_TEST_CSV_WWW                                                                         \
    "nvs,      data, nvs,    0x9000,  0x6000,\n"                                                   \
    "otadata,  data, ota,    0xf000,  0x2000,\n"                                                   \
    "phy_init, data, phy,    0x11000, 0x1000,\n"                                                   \
    "ota_0,    app,  ota_0,  0x20000, 0x100000,\n"                                                 \
    "ota_1,    app,  ota_1,  0x120000,0x100000,\n"                                                 \
    "www_0,    data, spiffs, 0x220000,0x40000,\n"                                                  \
    "www_1,    data, spiffs, 0x260000,0x40000,\n"

#endif
