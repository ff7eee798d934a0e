/* aloft-node: a simulated ESP32 running aloft. One process is one device;
 * a restart re-executes the process, carrying what RTC memory would. */
#ifndef ALOFT_NODE_H
#define ALOFT_NODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "aloft/boot.h"
#include "aloft/image.h"
#include "aloft_posix_flash.h"
#include "aloft_posix_kv.h"
#include "image_make.h"
#include "littlefs.h"

#define NODE_PSK_MAX 64

struct node_config {
    const char *flash_path;
    const char *listen;          /* ADDR:PORT */
    const char *psk;             /* provisioned into the settings store */
    bool require_psk;
    bool rollback;
    bool flash_timing;           /* esp32 datasheet timing */
    uint64_t link_rate;          /* bytes/s of the simulated Wi-Fi link; 0 = unlimited */
    uint64_t power_cut_after;    /* flash operation that loses power; 0 = never */
    unsigned restart_delay_ms;   /* between a successful update's reply and the restart */
    unsigned idle_timeout_s;     /* an upload that stalls this long is dropped */
    const char *log_path;
};

struct node {
    struct node_config cfg;
    char **argv;                 /* to re-execute on restart */
    struct aloft_posix_flash pf;
    struct aloft_boot boot;
    struct aloft_posix_kv kv;
    struct aloft_image_info app; /* the running image */
    struct aloft_sim_record sim;
    char psk[NODE_PSK_MAX + 1];  /* empty: none provisioned */
    char reset_reason[16];
    unsigned boot_count;
    char mac[18];
    time_t started;
    /* frontend: the active www slot mounted from a copy in memory */
    const struct aloft_part *www[2];
    int www_slot;
    uint8_t *www_img;
    struct aloft_lfs www_fs;
    bool www_ok;
    /* one upload at a time; settings and flash writes happen under it */
    pthread_mutex_t lock;
    bool busy;
    /* restart request from a handler: reason, or NULL */
    pthread_mutex_t restart_lock;
    pthread_cond_t restart_cond;
    const char *restart_reason;
};

/* Print a line to stdout (flushed) and the log file. */
void node_log(struct node *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Ask the main thread to restart the device with reset reason `reason`
 * after the configured delay (the reply is flushed first). */
void node_request_restart(struct node *n, const char *reason);

/* Power lost at a flash operation: come back as a fresh power-on boot,
 * now, from whatever thread noticed. Never returns. */
void node_power_lost(struct node *n) __attribute__((noreturn));

/* The www slot index that is not active, or -1 without www slots. */
int node_www_inactive(const struct node *n);

/* Does the partition hold a LittleFS image that mounts? */
bool node_www_valid(struct node *n, const struct aloft_part *p);

/* HTTP server (http.c). Returns 0 or -1 with a message printed. */
int node_http_start(struct node *n);
void node_http_stop(void);

#endif
