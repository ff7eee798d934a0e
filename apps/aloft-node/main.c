/* aloft-node: boots a flash image through aloft's boot logic, then behaves
 * as the firmware it booted (DESIGN.md "The simulator's firmware"). */
#include <errno.h>
#include <fcntl.h>
#include <ctype.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft/otadata.h"
#include "aloft_version.h"
#include "default_tables.h"
#include "file.h"
#include "flashimg.h"
#include "hex.h"
#include "node.h"

static const char usage[] =
    "usage: aloft-node --flash FLASH.img [options]\n"
    "       aloft-node --create --flash-size SIZE --firmware FILE [--partitions CSV] [--www DIR|IMG] --flash FLASH.img [options]\n"
    "       aloft-node --version\n"
    "\n"
    "A simulated ESP32 running aloft. It boots FLASH.img through the bootloader's logic\n"
    "(otadata, verification, rollback), prints\n"
    "  boot: reset_reason=<REASON> running_partition=<label>\n"
    "as its first line on every boot, then behaves as the firmware it booted: it serves the\n"
    "device API (GET /ota/status, POST /ota, GET /api/ota/status, POST /api/ota/frontend,\n"
    "POST /api/ota/frontend/rollback) and the update page from the active www slot.\n"
    "POST /api/ota/pull takes a trigger as MQTT would ({\"type\":\"ota_trigger\",\"url\":...}, the\n"
    "upload PSK; 202, 409 busy/already_handled, 400 bad_trigger); GET /api/ota/state shows the state.\n"
    "A restart re-executes the process (same PID), keeping reset reason and boot count.\n"
    "\n"
    "  --flash FILE            the flash image (made with --create or `aloft flash init`)\n"
    "  --listen ADDR:PORT      where to serve HTTP (default 127.0.0.1:8032)\n"
    "  --psk SECRET            provision this PSK into the settings store (security/ota_psk);\n"
    "                          every change then needs `Authorization: Bearer SECRET`; without\n"
    "                          a PSK the device refuses every change (fail-closed)\n"
    "  --open                  without a PSK, take changes from anyone on the network (a bench\n"
    "                          device only: logged as a warning at every boot)\n"
    "  --trusted-keys HEX[,HEX[,HEX]]  provision up to three public key digests (aloft keygen\n"
    "                          prints them) into the settings (security/trusted_keys): from then\n"
    "                          on only images signed by one of these keys are installed, pushed,\n"
    "                          pulled or frontend alike; 'none' removes them\n"
    "  --rollback on|off       bootloader app rollback (default on)\n"
    "  --flash-timing none|esp32  emulate SPI NOR erase/program times (default none)\n"
    "  --link-rate BYTES/S     throttle uploads like a Wi-Fi link, e.g. 1M (default unlimited)\n"
    "  --power-cut-after N     lose power at flash operation N of this run, then boot again\n"
    "  --restart-delay MS      pause between a successful update's reply and the restart (1000)\n"
    "  --idle-timeout S        drop an upload (or a BLE central) that sends nothing for S seconds (30)\n"
    "  --max-sockets N         open connections at most, as ESP-IDF's max_open_sockets (7);\n"
    "                          a new one beyond closes the least recently active one\n"
    "  --log FILE              also append every line to FILE\n"
    "  --espota [ADDR:]PORT    take ArduinoOTA uploads (Arduino IDE, PlatformIO's upload_protocol =\n"
    "                          espota) on this UDP port (3232 as ArduinoOTA; ADDR alone: port\n"
    "                          3232; default ADDR: --listen's); the password is the PSK\n"
    "  --mdns [ADDR][:PORT]    announce the ArduinoOTA service over mDNS (DNS-SD _arduino._tcp), so\n"
    "                          that the Arduino IDE lists the device under Tools > Port > Network\n"
    "                          ports; needs --espota. Default 224.0.0.251:5353: joins the group\n"
    "                          on every interface, as a device on a LAN. Another ADDR answers each\n"
    "                          query to its sender and announces nothing, for tests on loopback:\n"
    "                          --mdns 127.0.0.5:5399; dig -p 5399 @127.0.0.5 _arduino._tcp.local PTR\n"
    "  --mdns-name NAME        the name it answers for: NAME.local, NAME._arduino._tcp.local\n"
    "                          (default aloft-<the MAC's 12 hex digits>)\n"
    "  --ble HOST:PORT         take BLE centrals over a simulated link on this TCP address\n"
    "                          (docs/ble.md; also --ble-name, --ble-mtu, --ble-interval,\n"
    "                          --ble-packets); with a PSK, updates need its challenge-response\n"
    "  --ble-legacy            with a PSK, take the esp32-ble-ota protocol anyway, which cannot\n"
    "                          authenticate: anyone in radio range may then install an image\n"
    "\n"
    "Pull updates:\n"
    "  --mqtt HOST:PORT        take ota_trigger commands from this MQTT broker; subscribes to\n"
    "                          aloft/<platform>/<device-id>/cmd and aloft/<platform>/cmd and\n"
    "                          publishes its state, retained, on aloft/<platform>/<device-id>/state\n"
    "  --mqtt-tls-ca FILE      connect to the broker with TLS, trusting this CA\n"
    "  --mqtt-user U --mqtt-password P   broker credentials\n"
    "  --device-id ID          the id in topics and reports (default: the MAC, AA:BB:CC:DD:EE:FF)\n"
    "  --platform NAME         the platform in topics (default: the running image's project)\n"
    "  --cmd-topic TOPIC       also take commands on TOPIC (e.g. /switch/cmd/root)\n"
    "  --server URL            aloftd: ask GET URL/update for updates, report outcomes to it\n"
    "  --mac MAC               the device's MAC (default: made from --listen and --flash at the\n"
    "                          first boot, then kept in the settings)\n"
    "  --server-key KEY        provision the credential aloftd derived for this device\n"
    "                          (`aloft server credential MAC`) into security/server_key: reports\n"
    "                          are signed with it, and aloftd counts no report that is not\n"
    "  --check-every S         ask every S seconds (±10 % jitter; default: once at boot)\n"
    "  --ca-file FILE          trust this CA for HTTPS downloads (default: the system's CAs)\n"
    "  --insecure              do NOT verify HTTPS certificates (anyone on the path can then\n"
    "                          serve this device an image; for tests only)\n"
    "\n"
    "  --create                make FLASH.img first (refused if it exists):\n"
    "  --flash-size SIZE         4M, 8M or 16M\n"
    "  --firmware FILE           app image for ota_0 (`aloft image make` or an ESP-IDF build)\n"
    "  --partitions CSV          ESP-IDF partition CSV (default: aloft's table for the size,\n"
    "                            with www_0/www_1 frontend slots)\n"
    "  --www DIR|IMG             frontend for www_0: a directory (made into LittleFS) or an image\n"
    "\n"
    "The firmware's simulator record (`aloft image make --sim`) sets its behaviour:\n"
    "panic-on-boot, hang, no-confirm, confirm-after=SECONDS; without one it confirms at once.\n"
    "\n"
    "example:\n"
    "  aloft image make --chip esp32s3 --project demo --version 1.0.0 -o fw.bin\n"
    "  aloft-node --create --flash-size 4M --firmware fw.bin --flash dev.img --listen 127.0.0.2:8032\n"
    "  curl http://127.0.0.2:8032/ota/status\n";

static FILE *log_file;

void node_log(struct node *n, const char *fmt, ...)
{
    (void)n;
    va_list ap;
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
    if (log_file) {
        va_start(ap, fmt);
        vfprintf(log_file, fmt, ap);
        va_end(ap);
        fputc('\n', log_file);
        fflush(log_file);
    }
}

/* Re-execute with what RTC memory keeps across a reset. Its presence also
 * marks a restart: no --create and no --power-cut-after then. */
static void __attribute__((noreturn)) reexec(struct node *n, const char *reason, unsigned boot_count)
{
    char rtc[64];
    snprintf(rtc, sizeof rtc, "%s %u", reason, boot_count);
    setenv("ALOFT_NODE_RTC", rtc, 1);
    fflush(NULL);
    execv("/proc/self/exe", n->argv);
    fprintf(stderr, "aloft-node: cannot restart: %s\n", strerror(errno));
    _exit(1);
}

void node_power_lost(struct node *n)
{
    node_log(n, "power lost at flash operation %llu", (unsigned long long)n->pf.ops);
    reexec(n, "POWERON", 0);
}

/* An error on standard error and in --log (whoever started the node may
 * read only the log). Returns 1. */
static int vfail(const char *fmt, va_list ap)
{
    va_list again;
    va_copy(again, ap);
    fputs("aloft-node: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    if (log_file) {
        fputs("aloft-node: ", log_file);
        vfprintf(log_file, fmt, again);
        fputc('\n', log_file);
        fflush(log_file);
    }
    va_end(again);
    return 1;
}

static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
    return 1;
}

int node_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vfail(fmt, ap);
    va_end(ap);
    return 1;
}

/* One node per flash file: an exclusive flock on a descriptor of its own,
 * kept open across the re-execution of a restart or a power cut (its
 * number travels in ALOFT_NODE_LOCK_FD), so the lock is never let go
 * while the device lives. Returns 0, or 1 with the reason printed. */
static int lock_flash(const char *path)
{
    struct stat want, have;
    if (stat(path, &want))
        return fail("%s: %s", path, strerror(errno));
    const char *inherited = getenv("ALOFT_NODE_LOCK_FD");
    int fd = inherited ? atoi(inherited) : -1;
    if (fd > 2 && !fstat(fd, &have) && have.st_dev == want.st_dev && have.st_ino == want.st_ino)
        return 0; /* held since before the restart */
    if ((fd = open(path, O_RDONLY)) < 0) /* no O_CLOEXEC: a restart keeps it */
        return fail("%s: %s", path, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB)) {
        int e = errno;
        close(fd);
        if (e == EWOULDBLOCK)
            return fail("%s is in use by another aloft-node: one flash file is one device", path);
        return fail("%s: cannot lock it: %s", path, strerror(e));
    }
    char num[16];
    snprintf(num, sizeof num, "%d", fd);
    setenv("ALOFT_NODE_LOCK_FD", num, 1);
    return 0;
}

struct create_opts {
    const char *partitions, *firmware, *www;
    uint32_t flash_size;
};

/* --create: lay out a new flash file. Nothing is written unless all inputs are good. */
static int create_flash(const char *path, const struct create_opts *c)
{
    struct stat st;
    if (stat(path, &st) == 0)
        return fail("%s exists; delete it first or drop --create to boot it", path);
    if (!c->flash_size || !c->firmware)
        return fail("--create needs --flash-size and --firmware");
    uint8_t *csv = NULL, *app = NULL, *www = NULL;
    size_t csv_len = 0, app_len, www_len = 0;
    int status = 1;
    static struct aloft_part_table t;
    uint32_t line = 0;
    const char *table = c->partitions ? NULL : aloft_default_table(c->flash_size);
    if (!c->partitions && !table) {
        fail("no default partition table for %u bytes of flash: use 4M, 8M or 16M, or give --partitions", c->flash_size);
        goto out;
    }
    if (c->partitions && aloft_file_read(c->partitions, &csv, &csv_len) != 0) {
        fail("%s: %s", c->partitions, strerror(errno));
        goto out;
    }
    int rc = aloft_part_csv_parse(&t, csv ? (const char *)csv : table, csv ? csv_len : strlen(table),
                                  ALOFT_PART_TABLE_OFFSET, &line);
    if (rc == 0)
        rc = aloft_part_validate(&t, ALOFT_PART_TABLE_OFFSET, c->flash_size);
    if (rc) {
        fail("%s:%u: %s", c->partitions ? c->partitions : "default table", line, aloft_strerror(rc));
        goto out;
    }
    if (aloft_file_read(c->firmware, &app, &app_len) != 0) {
        fail("%s: %s", c->firmware, strerror(errno));
        goto out;
    }
    struct aloft_image_info info;
    rc = aloft_image_verify(app, app_len, ALOFT_CHIP_ANY, 0, &info);
    if (rc) {
        fail("%s is not a bootable app: %s", c->firmware, aloft_strerror(rc));
        goto out;
    }
    const struct aloft_part *slot = aloft_flashimg_app_slot(&t);
    if (!slot) {
        fail("%s has no factory or ota_0 app partition", c->partitions ? c->partitions : "the default table");
        goto out;
    }
    if (app_len > slot->size) {
        fail("%s (%zu bytes) does not fit partition %s (%u bytes)", c->firmware, app_len, slot->label, slot->size);
        goto out;
    }
    const struct aloft_part *www0 = aloft_part_find_label(&t, "www_0");
    if (c->www) {
        if (!www0) {
            fail("--www given but the partition table has no www_0 partition");
            goto out;
        }
        if (stat(c->www, &st) == 0 && S_ISDIR(st.st_mode)) {
            struct aloft_lfs_mkfs_err e;
            rc = aloft_lfs_mkfs(c->www, www0->size, 4096, ALOFT_LFS_VERSION_2_1, &www, &www_len, &e);
            if (rc) {
                fail("%s: cannot make a LittleFS image of it: %s", c->www, aloft_strerror(rc));
                goto out;
            }
        } else if (aloft_file_read(c->www, &www, &www_len) != 0) {
            fail("%s: %s", c->www, strerror(errno));
            goto out;
        }
        struct aloft_lfs fs;
        if (www_len > www0->size || aloft_lfs_mount(&fs, www, www_len, 0) != 0) {
            fail("%s is not a LittleFS image that fits www_0 (%u bytes)", c->www, www0->size);
            goto out;
        }
    }
    struct aloft_posix_flash pf;
    if (aloft_posix_flash_open(&pf, path, c->flash_size, true) != 0) {
        fail("%s: %s", path, strerror(errno));
        goto out;
    }
    rc = aloft_flashimg_init(&pf.port, &t, ALOFT_PART_TABLE_OFFSET, app, app_len);
    if (rc == 0 && www)
        rc = aloft_flash_write(&pf.port, www0->offset, www, www_len);
    struct aloft_posix_kv kv;
    const struct aloft_part *nvs = aloft_part_find(&t, ALOFT_PART_DATA, ALOFT_PART_NVS);
    if (rc == 0 && nvs) {
        /* the chip is the hardware's: uploads for another chip are refused */
        const char *chip = aloft_chip_name(info.chip_id);
        rc = aloft_posix_kv_open(&kv, &pf.port, nvs);
        if (rc == 0)
            rc = aloft_posix_kv_set(&kv, "sys/chip", chip, strlen(chip));
    }
    aloft_posix_flash_close(&pf);
    if (rc) {
        unlink(path);
        fail("%s: %s", path, aloft_strerror(rc));
        goto out;
    }
    status = 0;
out:
    free(csv);
    free(app);
    free(www);
    return status;
}

static int parse_listen(const char *s)
{
    const char *colon = strrchr(s, ':');
    return colon && colon != s && atoi(colon + 1) > 0 && atoi(colon + 1) < 65536 ? 0 : -1;
}

/* The MAC is the device's identity: made once from the flash file's first
 * listen address and kept in the settings store. Locally administered. */
static void load_mac(struct node *n)
{
    char buf[18];
    int len = aloft_posix_kv_get(&n->kv, "sys/mac", buf, sizeof buf - 1);
    if (len == 17) {
        memcpy(n->mac, buf, 17);
        n->mac[17] = 0;
        return;
    }
    struct aloft_sha256 s;
    uint8_t h[32];
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, n->cfg.listen, strlen(n->cfg.listen));
    aloft_sha256_update(&s, n->cfg.flash_path, strlen(n->cfg.flash_path));
    aloft_sha256_final(&s, h);
    snprintf(n->mac, sizeof n->mac, "%02X:%02X:%02X:%02X:%02X:%02X", (h[0] & 0xFC) | 0x02, h[1], h[2], h[3], h[4], h[5]);
    aloft_posix_kv_set(&n->kv, "sys/mac", n->mac, 17);
}

static void *confirm_later(void *arg)
{
    struct node *n = arg;
    sleep(n->sim.confirm_after_s);
    node_log(n, "app: healthy for %us, marked valid", n->sim.confirm_after_s);
    pthread_mutex_lock(&n->lock);
    aloft_agent_confirm(&n->agent);
    pthread_mutex_unlock(&n->lock);
    return NULL;
}

/* The firmware's simulated behaviour, from the record in its image. */
static void load_sim(struct node *n)
{
    const struct aloft_part *run = n->boot.running;
    uint8_t *img = malloc(n->agent.app.image_len);
    n->sim.present = false;
    n->sim.behaviour = ALOFT_SIM_HEALTHY;
    if (img && aloft_flash_read(&n->flash, run->offset, img, n->agent.app.image_len) == 0)
        aloft_sim_record_parse(img, n->agent.app.image_len, &n->sim);
    free(img);
}

static int run(struct node *n)
{
    const char *rtc = getenv("ALOFT_NODE_RTC");
    unsigned prev_boots = 0;
    char reset_reason[16] = "POWERON";
    bool restarted = rtc != NULL;
    if (rtc)
        sscanf(rtc, "%15s %u", reset_reason, &prev_boots);
    unsetenv("ALOFT_NODE_RTC");

    if (lock_flash(n->cfg.flash_path))
        return 1;
    if (aloft_posix_flash_open(&n->pf, n->cfg.flash_path, 0, false) != 0)
        return fail("%s: %s", n->cfg.flash_path,
                    errno == EINVAL ? "not a flash image (size must be a multiple of 4096)" : strerror(errno));
    if (n->cfg.flash_timing)
        n->pf.timing = &aloft_posix_timing_esp32;
    if (n->cfg.power_cut_after && !restarted)
        aloft_posix_flash_cut(&n->pf, n->cfg.power_cut_after, false);
    node_port_init(n);

    /* the second-stage bootloader */
    int rc = aloft_boot_init(&n->boot, &n->flash, ALOFT_PART_TABLE_OFFSET, ALOFT_CHIP_ANY, n->cfg.rollback);
    if (rc)
        return fail("%s: no valid partition table: %s", n->cfg.flash_path, aloft_strerror(rc));
    const struct aloft_part *nvs = aloft_part_find(&n->boot.table, ALOFT_PART_DATA, ALOFT_PART_NVS);
    if (!nvs)
        return fail("%s: the partition table has no nvs partition for settings", n->cfg.flash_path);
    if ((rc = aloft_posix_kv_open(&n->kv, &n->flash, nvs)) != 0)
        return fail("settings store: %s", aloft_strerror(rc));
    char chip[16] = "";
    int len = aloft_posix_kv_get(&n->kv, "sys/chip", chip, sizeof chip - 1);
    if (len > 0) {
        chip[len] = 0;
        n->boot.chip = (uint16_t)aloft_chip_id(chip);
    }
    rc = aloft_boot_select(&n->boot);
    if (rc) {
        node_log(n, "boot: reset_reason=%s running_partition=none", reset_reason);
        return fail("bootloader: %s", aloft_strerror(rc));
    }

    /* the factory's provisioning: PSK from the command line, the MAC */
    if (n->cfg.psk && (rc = aloft_posix_kv_set(&n->kv, "security/ota_psk", n->cfg.psk, strlen(n->cfg.psk))) != 0)
        return fail("cannot store the PSK: %s", aloft_strerror(rc));
    const char *keys = n->cfg.trusted_keys;
    if (keys && (rc = strcmp(keys, "none") ? aloft_posix_kv_set(&n->kv, "security/trusted_keys", keys, strlen(keys))
                                           : aloft_posix_kv_del(&n->kv, "security/trusted_keys")) != 0 &&
        rc != ALOFT_E_NOTFOUND)
        return fail("cannot store the trusted keys: %s", aloft_strerror(rc));
    if (n->cfg.mac && (rc = aloft_posix_kv_set(&n->kv, "sys/mac", n->cfg.mac, 17)) != 0)
        return fail("cannot store the MAC: %s", aloft_strerror(rc));
    const char *skey = n->cfg.server_key;
    if (skey && (rc = aloft_posix_kv_set(&n->kv, "security/server_key", skey, strlen(skey))) != 0)
        return fail("cannot store the server key: %s", aloft_strerror(rc));
    load_mac(n);

    /* the application: the agent, then the firmware's behaviour */
    static struct aloft_delta_update delta; /* as a device keeps it: one, static */
    struct aloft_agent_config cfg = {
        .mac = n->mac,
        .reset_reason = reset_reason,
        .boot_count = prev_boots + 1,
        .device_id = n->cfg.device_id,
        .platform = n->cfg.platform,
        .server = n->cfg.server,
        .cmd_topic = n->cfg.cmd_topic,
        .open = n->cfg.open,
        .delta = &delta,
    };
    if ((rc = aloft_agent_start(&n->agent, &n->port, &n->boot, &cfg)) != 0)
        return fail("agent: %s", aloft_strerror(rc));
    load_sim(n);
    if (n->sim.behaviour == ALOFT_SIM_PANIC_ON_BOOT) {
        node_log(n, "Guru Meditation Error: Core  0 panic'ed (simulated: panic-on-boot)");
        usleep(n->cfg.restart_delay_ms * 1000u);
        reexec(n, "PANIC", n->agent.boot_count);
    }
    if (n->sim.behaviour == ALOFT_SIM_HANG) {
        node_log(n, "app: hangs (simulated): no network service");
        for (;;)
            pause();
    }

    if (node_http_start(n) != 0)
        return 1;
    if (n->cfg.mqtt && node_mqtt_start(n) != 0)
        return 1;
    if (n->cfg.espota && node_espota_start(n) != 0)
        return 1;
    if (n->cfg.mdns && node_mdns_start(n) != 0)
        return 1;
    if (n->cfg.ble && node_ble_start(n) != 0)
        return 1;
    if (n->sim.behaviour == ALOFT_SIM_HEALTHY) {
        pthread_mutex_lock(&n->lock);
        aloft_agent_confirm(&n->agent);
        pthread_mutex_unlock(&n->lock);
    } else if (n->sim.behaviour == ALOFT_SIM_CONFIRM_AFTER) {
        pthread_t t;
        pthread_create(&t, NULL, confirm_later, n);
        pthread_detach(t);
    } else {
        node_log(n, "app: never confirms itself (simulated: no-confirm)");
    }
    /* an interrupted download continues */
    struct aloft_pull *job = node_pull_new();
    pthread_mutex_lock(&n->lock);
    rc = job ? aloft_pull_boot(&n->agent, job) : 0;
    pthread_mutex_unlock(&n->lock);
    if (rc == 1)
        node_pull_spawn(n, job);
    else
        free(job);
    if (n->cfg.server && node_check_start(n) != 0)
        return 1;

    pthread_mutex_lock(&n->restart_lock);
    while (!n->restart_reason)
        pthread_cond_wait(&n->restart_cond, &n->restart_lock);
    pthread_mutex_unlock(&n->restart_lock);
    usleep(n->cfg.restart_delay_ms * 1000u);
    node_log(n, "restarting (%s)", n->restart_reason);
    node_mqtt_stop(n);
    node_mdns_stop(n);
    node_http_stop();
    aloft_posix_flash_close(&n->pf);
    reexec(n, n->restart_reason, n->agent.boot_count);
}

/* "none", or 1..3 comma-separated digests of 64 hex digits. */
static bool trusted_keys_ok(const char *s)
{
    if (!strcmp(s, "none"))
        return true;
    for (int k = 0; k < 3; k++, s++) {
        size_t n = strspn(s, "0123456789abcdefABCDEF");
        if (n != 64 || (s[n] && s[n] != ','))
            return false;
        s += n;
        if (!*s)
            return true;
    }
    return false;
}

enum {
    OPT_FLASH = 256, OPT_VERSION, OPT_LISTEN, OPT_PSK, OPT_OPEN, OPT_ROLLBACK, OPT_TIMING, OPT_LINK_RATE, OPT_CUT,
    OPT_RESTART_DELAY, OPT_IDLE, OPT_LOG, OPT_CREATE, OPT_PARTITIONS, OPT_FLASH_SIZE, OPT_FIRMWARE, OPT_WWW,
    OPT_MQTT, OPT_MQTT_CA, OPT_MQTT_USER, OPT_MQTT_PASSWORD, OPT_DEVICE_ID, OPT_PLATFORM, OPT_CMD_TOPIC, OPT_SERVER,
    OPT_CHECK_EVERY, OPT_CA_FILE, OPT_INSECURE, OPT_MAX_SOCKETS, OPT_TRUSTED_KEYS, OPT_SERVER_KEY, OPT_MAC, OPT_ESPOTA,
    OPT_BLE, OPT_BLE_NAME, OPT_BLE_MTU, OPT_BLE_INTERVAL, OPT_BLE_PACKETS, OPT_BLE_LEGACY, OPT_MDNS, OPT_MDNS_NAME,
};

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"flash", required_argument, NULL, OPT_FLASH},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"psk", required_argument, NULL, OPT_PSK},
        {"open", no_argument, NULL, OPT_OPEN},
        {"trusted-keys", required_argument, NULL, OPT_TRUSTED_KEYS},
        {"rollback", required_argument, NULL, OPT_ROLLBACK},
        {"flash-timing", required_argument, NULL, OPT_TIMING},
        {"link-rate", required_argument, NULL, OPT_LINK_RATE},
        {"power-cut-after", required_argument, NULL, OPT_CUT},
        {"restart-delay", required_argument, NULL, OPT_RESTART_DELAY},
        {"idle-timeout", required_argument, NULL, OPT_IDLE},
        {"max-sockets", required_argument, NULL, OPT_MAX_SOCKETS},
        {"log", required_argument, NULL, OPT_LOG},
        {"create", no_argument, NULL, OPT_CREATE},
        {"partitions", required_argument, NULL, OPT_PARTITIONS},
        {"flash-size", required_argument, NULL, OPT_FLASH_SIZE},
        {"firmware", required_argument, NULL, OPT_FIRMWARE},
        {"www", required_argument, NULL, OPT_WWW},
        {"mqtt", required_argument, NULL, OPT_MQTT},
        {"mqtt-tls-ca", required_argument, NULL, OPT_MQTT_CA},
        {"mqtt-user", required_argument, NULL, OPT_MQTT_USER},
        {"mqtt-password", required_argument, NULL, OPT_MQTT_PASSWORD},
        {"device-id", required_argument, NULL, OPT_DEVICE_ID},
        {"platform", required_argument, NULL, OPT_PLATFORM},
        {"cmd-topic", required_argument, NULL, OPT_CMD_TOPIC},
        {"server", required_argument, NULL, OPT_SERVER},
        {"server-key", required_argument, NULL, OPT_SERVER_KEY},
        {"mac", required_argument, NULL, OPT_MAC},
        {"check-every", required_argument, NULL, OPT_CHECK_EVERY},
        {"ca-file", required_argument, NULL, OPT_CA_FILE},
        {"insecure", no_argument, NULL, OPT_INSECURE},
        {"espota", required_argument, NULL, OPT_ESPOTA},
        {"mdns", optional_argument, NULL, OPT_MDNS},
        {"mdns-name", required_argument, NULL, OPT_MDNS_NAME},
        {"ble", required_argument, NULL, OPT_BLE},
        {"ble-name", required_argument, NULL, OPT_BLE_NAME},
        {"ble-mtu", required_argument, NULL, OPT_BLE_MTU},
        {"ble-interval", required_argument, NULL, OPT_BLE_INTERVAL},
        {"ble-packets", required_argument, NULL, OPT_BLE_PACKETS},
        {"ble-legacy", no_argument, NULL, OPT_BLE_LEGACY},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, OPT_VERSION},
        {NULL, 0, NULL, 0},
    };
    static struct node n = {
        .cfg = {.listen = "127.0.0.1:8032", .rollback = true, .restart_delay_ms = 1000, .idle_timeout_s = 30,
                .max_sockets = 7, .ble_name = "esp32", .ble_mtu = 256, .ble_interval_ms = 30, .ble_packets = 4},
        .lock = PTHREAD_MUTEX_INITIALIZER,
        .restart_lock = PTHREAD_MUTEX_INITIALIZER,
        .restart_cond = PTHREAD_COND_INITIALIZER,
    };
    struct create_opts c = {0};
    bool create = false;
    uint32_t v;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case OPT_FLASH: n.cfg.flash_path = optarg; break;
        case OPT_LISTEN:
            if (parse_listen(optarg))
                return fail("--listen '%s' is not ADDR:PORT, e.g. 127.0.0.2:8032", optarg), 2;
            n.cfg.listen = optarg;
            break;
        case OPT_PSK:
            if (!*optarg || strlen(optarg) > ALOFT_AGENT_PSK_MAX)
                return fail("--psk must be 1 to %d characters", ALOFT_AGENT_PSK_MAX), 2;
            n.cfg.psk = optarg;
            break;
        case OPT_OPEN: n.cfg.open = true; break;
        case OPT_MAC: {
            bool ok = strlen(optarg) == 17;
            for (int i = 0; ok && i < 17; i++)
                ok = i % 3 == 2 ? optarg[i] == ':' : isxdigit((unsigned char)optarg[i]);
            if (!ok)
                return fail("--mac '%s' is not a MAC: AA:BB:CC:DD:EE:FF", optarg), 2;
            for (char *p = optarg; *p; p++) /* as the agent writes it */
                *p = (char)toupper((unsigned char)*p);
            n.cfg.mac = optarg;
            break;
        }
        case OPT_SERVER_KEY:
            if (!*optarg || strlen(optarg) > ALOFT_AGENT_SERVER_KEY_MAX)
                return fail("--server-key must be 1 to %d characters", ALOFT_AGENT_SERVER_KEY_MAX), 2;
            n.cfg.server_key = optarg;
            break;
        case OPT_TRUSTED_KEYS:
            if (!trusted_keys_ok(optarg))
                return fail("--trusted-keys takes 1 to 3 key digests of 64 hex digits, comma-separated, or none"), 2;
            n.cfg.trusted_keys = optarg;
            break;
        case OPT_ROLLBACK:
            if (strcmp(optarg, "on") && strcmp(optarg, "off"))
                return fail("--rollback takes on or off"), 2;
            n.cfg.rollback = !strcmp(optarg, "on");
            break;
        case OPT_TIMING:
            if (strcmp(optarg, "none") && strcmp(optarg, "esp32"))
                return fail("--flash-timing takes none or esp32"), 2;
            n.cfg.flash_timing = !strcmp(optarg, "esp32");
            break;
        case OPT_LINK_RATE:
            if (aloft_parse_size(optarg, &v) || !v)
                return fail("--link-rate '%s' is not a rate in bytes/s such as 1M", optarg), 2;
            n.cfg.link_rate = v;
            break;
        case OPT_CUT:
            if (aloft_parse_size(optarg, &v) || !v)
                return fail("--power-cut-after takes a flash operation number (1 or more)"), 2;
            n.cfg.power_cut_after = v;
            break;
        case OPT_RESTART_DELAY:
            if (aloft_parse_size(optarg, &v) || v > 600000)
                return fail("--restart-delay takes milliseconds (0..600000)"), 2;
            n.cfg.restart_delay_ms = v;
            break;
        case OPT_IDLE:
            if (aloft_parse_size(optarg, &v) || !v || v > 3600)
                return fail("--idle-timeout takes seconds (1..3600)"), 2;
            n.cfg.idle_timeout_s = v;
            break;
        case OPT_MAX_SOCKETS:
            if (aloft_parse_size(optarg, &v) || !v || v > 64)
                return fail("--max-sockets takes 1..64"), 2;
            n.cfg.max_sockets = v;
            break;
        case OPT_LOG: n.cfg.log_path = optarg; break;
        case OPT_CREATE: create = true; break;
        case OPT_PARTITIONS: c.partitions = optarg; break;
        case OPT_FLASH_SIZE:
            if (aloft_parse_size(optarg, &c.flash_size) || !c.flash_size || c.flash_size % 4096)
                return fail("--flash-size '%s' is not a size such as 4M", optarg), 2;
            break;
        case OPT_FIRMWARE: c.firmware = optarg; break;
        case OPT_WWW: c.www = optarg; break;
        case OPT_MQTT:
            if (parse_listen(optarg))
                return fail("--mqtt '%s' is not HOST:PORT, e.g. 127.0.0.1:1883", optarg), 2;
            n.cfg.mqtt = optarg;
            break;
        case OPT_MQTT_CA: n.cfg.mqtt_tls_ca = optarg; break;
        case OPT_MQTT_USER: n.cfg.mqtt_user = optarg; break;
        case OPT_MQTT_PASSWORD: n.cfg.mqtt_password = optarg; break;
        case OPT_DEVICE_ID:
            if (!*optarg || strlen(optarg) >= sizeof n.agent.device_id || strpbrk(optarg, "/+#"))
                return fail("--device-id must be 1 to %zu characters without / + #", sizeof n.agent.device_id - 1), 2;
            n.cfg.device_id = optarg;
            break;
        case OPT_PLATFORM:
            if (!*optarg || strlen(optarg) >= sizeof n.agent.platform || strpbrk(optarg, "/+#"))
                return fail("--platform must be 1 to %zu characters without / + #", sizeof n.agent.platform - 1), 2;
            n.cfg.platform = optarg;
            break;
        case OPT_CMD_TOPIC: n.cfg.cmd_topic = optarg; break;
        case OPT_SERVER:
            if (strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8))
                return fail("--server '%s' is not an http:// or https:// URL", optarg), 2;
            n.cfg.server = optarg;
            break;
        case OPT_CHECK_EVERY:
            if (aloft_parse_size(optarg, &v) || !v || v > 86400)
                return fail("--check-every takes seconds (1..86400)"), 2;
            n.cfg.check_every_s = v;
            break;
        case OPT_CA_FILE: n.cfg.ca_file = optarg; break;
        case OPT_INSECURE: n.cfg.insecure = true; break;
        case OPT_ESPOTA: n.cfg.espota = optarg; break;
        case OPT_MDNS: /* the address may follow as the next word */
            if (!optarg && optind < argc && argv[optind][0] != '-')
                optarg = argv[optind++];
            n.cfg.mdns = optarg ? optarg : "";
            break;
        case OPT_MDNS_NAME: n.cfg.mdns_name = optarg; break;
        case OPT_BLE:
            if (parse_listen(optarg))
                return fail("--ble '%s' is not HOST:PORT, e.g. 127.0.0.2:8033", optarg), 2;
            n.cfg.ble = optarg;
            break;
        case OPT_BLE_NAME:
            if (!*optarg || strlen(optarg) > 29)
                return fail("--ble-name must be 1 to 29 characters (an advertisement's room)"), 2;
            n.cfg.ble_name = optarg;
            break;
        case OPT_BLE_MTU:
            if (aloft_parse_size(optarg, &v) || v < 23 || v > 517)
                return fail("--ble-mtu takes 23..517"), 2;
            n.cfg.ble_mtu = v;
            break;
        case OPT_BLE_INTERVAL:
            if (aloft_parse_size(optarg, &v) || !v || v > 4000)
                return fail("--ble-interval takes milliseconds (1..4000)"), 2;
            n.cfg.ble_interval_ms = v;
            break;
        case OPT_BLE_PACKETS:
            if (aloft_parse_size(optarg, &v) || !v || v > 64)
                return fail("--ble-packets takes 1..64"), 2;
            n.cfg.ble_packets = v;
            break;
        case OPT_BLE_LEGACY: n.cfg.ble_legacy = true; break;
        case 'h': fputs(usage, stdout); return 0;
        case OPT_VERSION: printf("aloft-node %s\n", ALOFT_VERSION); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (!n.cfg.flash_path || optind != argc) {
        fprintf(stderr, "aloft-node: --flash FLASH.img is required\n\n%s", usage);
        return 2;
    }
    if (n.cfg.mdns && !n.cfg.espota)
        return fail("--mdns announces the ArduinoOTA service: it needs --espota (the Arduino IDE can only "
                    "upload to a device that takes espota)"), 2;
    n.argv = argv;
    /* close-on-exec ("e"): a restart opens it again */
    if (n.cfg.log_path && !(log_file = fopen(n.cfg.log_path, "ae")))
        return fail("--log %s: %s", n.cfg.log_path, strerror(errno));
    /* a restart (RTC memory set) boots what is there, it never re-creates */
    if (create && !getenv("ALOFT_NODE_RTC") && create_flash(n.cfg.flash_path, &c) != 0)
        return 1;
    return run(&n);
}
