/* aloft ble scan / aloft ble push: BLE OTA (docs/ble.md) to real devices
 * through BlueZ (host/ble_bluez.c) or to devices on the simulated BLE link
 * (host/ble_central.c); the pushes are the same over either. Push verifies
 * like aloft deploy: through the device's status endpoint when it has one. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "ble_bluez.h"
#include "ble_central.h"
#include "cmd.h"
#include "delta.h"
#include "file.h"
#include "fleet.h"

static const char scan_help[] =
    "usage: aloft ble scan [TARGET...] [--timeout S]\n"
    "\n"
    "Connect to each BLE device and print its advertised name, the ATT MTU it agrees to\n"
    "(of 517 asked), and its BLE OTA Status: idle, a transfer in progress, or an interrupted\n"
    "one that `aloft ble push` resumes (its size and how much of it is in flash).\n"
    "Without TARGET: discover real devices through BlueZ for --timeout seconds and do so\n"
    "for every one that advertises the BLE OTA service.\n"
    "TARGET: a real device's Bluetooth address (AA:BB:CC:DD:EE:FF) or advertised name,\n"
    "reached through BlueZ (bluetoothd on the system bus, docs/ble.md); or HOST:PORT of\n"
    "a simulated device (aloft-node --ble).\n"
    "\n"
    "  --timeout S     discovery, and per device (default 3)\n"
    "\n"
    "exit status: 0 every device answered, 1 any did not, 2 usage error\n"
    "\n"
    "example:\n"
    "  aloft ble scan\n"
    "  aloft ble scan 127.0.0.2:8033 127.0.0.3:8033\n";

static const char push_help[] =
    "usage: aloft ble push FILE TARGET [--frontend] [--legacy] [--delta-from OLD] [--mtu N] [options]\n"
    "\n"
    "Push an app image (or, with --frontend, a LittleFS www.bin) to a device over BLE,\n"
    "with a progress bar, then wait for it to come back and verify it as aloft deploy\n"
    "does. aloft's extended mode by default: the image's SHA-256 up front, a CRC-32 per\n"
    "4 KB sector (a damaged one is sent again), and a transfer that breaks off resumes\n"
    "where the device's flash ends, on the next try or the next run. --legacy speaks the\n"
    "esp32-ble-ota protocol (REQUEST, packets of MTU - 3 by write with response, DONE),\n"
    "for devices that have only that. The extended mode proves the PSK (--psk) with an\n"
    "HMAC of a fresh nonce the device draws; the esp32-ble-ota protocol cannot\n"
    "authenticate, so a device with a PSK refuses it unless told to take it (aloft-node\n"
    "--ble-legacy, CONFIG_ALOFT_BLE_LEGACY). The outcome is one of aloft deploy's classes:\n"
    "  updated      the new image runs and has confirmed itself (a frontend: the active\n"
    "               www slot flipped)\n"
    "  rolled back  the device restarted but runs the old image\n"
    "  rejected     the device refused the image (its reason is shown): nothing switched\n"
    "  unreachable  no connection, or the transfer failed after every try\n"
    "  unconfirmed  the new image runs but had not confirmed itself by --timeout\n"
    "  unchanged    the device answers but does not run the new image\n"
    "  sent         the device took the image; it has no status endpoint to verify it by\n"
    "TARGET: a real device's Bluetooth address (AA:BB:CC:DD:EE:FF) or advertised name,\n"
    "reached through BlueZ (bluetoothd on the system bus, docs/ble.md); or HOST:PORT of\n"
    "a simulated device (aloft-node --ble).\n"
    "\n"
    "  --frontend        FILE is a www.bin for the inactive www slot (extended mode)\n"
    "  --psk SECRET      the device's PSK (or env ALOFT_PSK); without one only a device\n"
    "                    that is open takes the image\n"
    "  --legacy          the esp32-ble-ota protocol instead of the extended mode (sends no\n"
    "                    PSK: it has no way to)\n"
    "  --delta-from OLD  the image the device runs now: send a delta patch from OLD to FILE\n"
    "                    (made here, as aloft delta make does) instead of FILE, when the\n"
    "                    device's Status says it takes patches and the patch is under 80%% of\n"
    "                    FILE. A device that runs another image refuses the patch before it\n"
    "                    erases anything (wrong_base); FILE is then sent whole. A patch cut\n"
    "                    off resumes from the device's last checkpoint, restarts included\n"
    "  --mtu N           the ATT MTU to ask for, 23..517 (default 517; the device may agree\n"
    "                    to less). Through BlueZ the MTU is BlueZ's: --mtu caps it, and is\n"
    "                    what is assumed when BlueZ does not show it (else 23)\n"
    "  --tries N         connections to try before giving up, resuming each time (default 3)\n"
    "  --status-port N   the device's GET /ota/status port on TARGET's host (default 8032);\n"
    "                    without an answer there the outcome is \"sent\"\n"
    "  --status-host H   the device's host for GET /ota/status (a BlueZ TARGET has none:\n"
    "                    without it the outcome is \"sent\")\n"
    "  --timeout S       how long to wait for the device after the transfer (default 30)\n"
    "\n"
    "exit status: 0 updated (or sent), 1 any other outcome, 2 unusable FILE or usage error\n"
    "\n"
    "examples:\n"
    "  aloft ble push build/app.bin 127.0.0.2:8033 --status-port 8032 --psk \"$OTA_PSK\"\n"
    "  aloft ble push build/www.bin 127.0.0.2:8033 --frontend\n"
    "  aloft ble push build/app.bin 127.0.0.2:8033 --legacy --mtu 185\n"
    "  aloft ble push app-1.1.bin 127.0.0.2:8033 --delta-from app-1.0.bin --psk \"$OTA_PSK\"\n"
    "  aloft ble push build/app.bin 24:6F:28:1A:2B:3C --status-host 192.168.1.40\n"
    "  aloft ble push build/app.bin esp32\n";

static const char *const states[] = {"idle", "esp32-ble-ota transfer", "extended transfer", "interrupted (resumable)",
                                     "restarting"};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static bool number(const char *s, unsigned lo, unsigned hi, unsigned *out)
{
    char *end;
    unsigned long v = strtoul(s, &end, 10);
    if (!*s || *end || v < lo || v > hi)
        return false;
    *out = (unsigned)v;
    return true;
}

/* The devices BlueZ's discovery found with the service. */
struct found {
    unsigned n;
    char address[32][18];
};

static void found(void *ctx, const char *address, const char *name)
{
    struct found *f = ctx;
    (void)name;
    for (unsigned i = 0; i < f->n; i++)
        if (!strcmp(f->address[i], address))
            return;
    if (f->n < sizeof f->address / sizeof f->address[0])
        snprintf(f->address[f->n++], sizeof f->address[0], "%s", address);
}

int aloft_cmd_ble_scan(int argc, char **argv)
{
    static const struct option opts[] = {
        {"timeout", required_argument, NULL, 't'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    unsigned timeout = 3;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 't':
            if (!number(optarg, 1, 600, &timeout))
                return aloft_usage_error(argv[0], scan_help, "--timeout takes seconds (1..600)");
            break;
        case 'h': fputs(scan_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], scan_help, c, argv);
        }
    }
    struct found f = {0};
    if (optind >= argc) {
        char why[240];
        if (ble_bluez_scan(timeout * 1000, found, &f, why, sizeof why)) {
            fprintf(stderr, "aloft ble scan: %s\n", why);
            return 1;
        }
        if (!f.n) {
            printf("no BLE OTA device found in %u s\n", timeout);
            return 1;
        }
    }
    int rc = 0, count = optind < argc ? argc - optind : (int)f.n;
    for (int i = 0; i < count; i++) {
        static struct ble_central ct;
        const char *target = optind < argc ? argv[optind + i] : f.address[i];
        uint8_t v[64];
        size_t n = 0;
        if (ble_central_open(&ct, target, 517, 23, timeout * 1000) ||
            ble_central_request(&ct, 0x02, ALOFT_BLE_STATUS, NULL, 0, v, &n) != 0 || n < ALOFT_BLE_STATUS_LEN) {
            printf("%-22s no BLE OTA device: %s\n", target, ct.why[0] ? ct.why : "no Status characteristic");
            ble_central_close(&ct);
            rc = 1;
            continue;
        }
        ble_central_close(&ct);
        printf("%-22s \"%s\"  MTU %u  %s", target, ct.name, (unsigned)ct.mtu,
               v[1] < sizeof states / sizeof states[0] ? states[v[1]] : "?");
        if (v[1] == ALOFT_BLE_EXT || v[1] == ALOFT_BLE_SAVED)
            printf(": %s, %lu of %lu bytes in flash", v[2] ? "frontend" : v[3] & ALOFT_BLE_IS_PATCH ? "app patch" : "app",
                   (unsigned long)le32(v + 8), (unsigned long)le32(v + 4));
        printf("%s\n", v[3] & ALOFT_BLE_TAKES_PATCHES ? "  (takes patches)" : "");
    }
    return rc;
}

/* The progress bar on standard error (a line per quarter off a terminal). */
struct bar {
    bool tty;
    double t0;
    int shown;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void progress(void *ctx, uint64_t done, uint64_t total)
{
    struct bar *b = ctx;
    int pct = total ? (int)(done * 100 / total) : 100;
    double s = now() - b->t0;
    if (b->tty) {
        char bar[31];
        memset(bar, '#', (size_t)(pct * 30 / 100));
        memset(bar + pct * 30 / 100, '.', (size_t)(30 - pct * 30 / 100));
        bar[30] = 0;
        fprintf(stderr, "\r[%s] %3d%% %llu/%llu B %.1f KB/s ", bar, pct, (unsigned long long)done,
                (unsigned long long)total, s > 0 ? (double)done / s / 1024 : 0);
    } else if (pct / 25 > b->shown / 25 || b->shown < 0) {
        fprintf(stderr, "%d%% %llu/%llu B\n", pct, (unsigned long long)done, (unsigned long long)total);
        b->shown = pct;
    }
}

/* The appended SHA-256 (hex) of the --delta-from image. */
static char patch_base[65];

/* --delta-from OLD: the patch from OLD to the image, when it is under 80 %
 * of it (a patch that saves little is not worth the device's extra work);
 * else *patch stays NULL. Returns 0, or 2 for an unusable OLD. */
static int make_patch(const char *old_path, const uint8_t *img, size_t len, uint8_t **patch, size_t *patch_len)
{
    size_t old_len;
    uint8_t *old = NULL;
    struct aloft_image_info info = {0};
    if (aloft_file_read(old_path, &old, &old_len) || aloft_image_verify(old, old_len, ALOFT_CHIP_ANY, 0, &info) ||
        !info.hash_appended) {
        fprintf(stderr, "aloft ble push: --delta-from %s: not a readable app image with an appended SHA-256\n",
                old_path);
        free(old);
        return 2;
    }
    for (int i = 0; i < 32; i++)
        snprintf(patch_base + 2 * i, 3, "%02x", info.sha256[i]);
    printf("making a patch from %s...\n", old_path);
    fflush(stdout);
    int rc = aloft_delta_make(old, old_len, img, len, 0, NULL, NULL, patch, patch_len);
    free(old);
    if (rc) {
        fprintf(stderr, "aloft ble push: a patch from %s: %s; sending the whole image\n", old_path, aloft_strerror(rc));
        *patch = NULL;
    } else if (*patch_len * 10 >= len * 8) {
        printf("the patch is %zu bytes, %.0f%% of the image: sending the whole image\n", *patch_len,
               100.0 * (double)*patch_len / (double)len);
        free(*patch), *patch = NULL;
    }
    return 0;
}

/* Does the device take patches (its Status says so)? Says why not. */
static bool takes_patches(struct ble_central *c, const char *target)
{
    uint8_t v[64];
    size_t n = 0;
    if (ble_central_request(c, 0x02, ALOFT_BLE_STATUS, NULL, 0, v, &n) == 0 && n >= ALOFT_BLE_STATUS_LEN &&
        v[3] & ALOFT_BLE_TAKES_PATCHES)
        return true;
    printf("%s takes no patches (its BLE Status says so): sending the whole image\n", target);
    return false;
}

/* The device's status over HTTP, or !ok. */
static struct aloft_devstatus status_of(const char *host, unsigned port)
{
    char addr[100];
    const char *a = addr;
    struct aloft_devstatus s;
    snprintf(addr, sizeof addr, "%s:%u", host, port);
    aloft_fleet_probe(&a, 1, 1, 2000, &s);
    return s;
}

int aloft_cmd_ble_push(int argc, char **argv)
{
    static const struct option opts[] = {
        {"frontend", no_argument, NULL, 'f'},   {"legacy", no_argument, NULL, 'l'},
        {"mtu", required_argument, NULL, 'm'},  {"tries", required_argument, NULL, 'n'},
        {"status-port", required_argument, NULL, 's'}, {"timeout", required_argument, NULL, 't'},
        {"psk", required_argument, NULL, 'k'},  {"status-host", required_argument, NULL, 'H'},
        {"delta-from", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    bool frontend = false, legacy = false, mtu_given = false;
    const char *psk = getenv("ALOFT_PSK"), *status_host = NULL, *delta_from = NULL;
    unsigned mtu = 517, tries = 3, sport = 8032, timeout = 30;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'f': frontend = true; break;
        case 'l': legacy = true; break;
        case 'k': psk = optarg; break;
        case 'm':
            if (!number(optarg, 23, 517, &mtu))
                return aloft_usage_error(argv[0], push_help, "--mtu takes 23..517");
            mtu_given = true;
            break;
        case 'H': status_host = optarg; break;
        case 'd': delta_from = optarg; break;
        case 'n':
            if (!number(optarg, 1, 100, &tries))
                return aloft_usage_error(argv[0], push_help, "--tries takes 1..100");
            break;
        case 's':
            if (!number(optarg, 1, 65535, &sport))
                return aloft_usage_error(argv[0], push_help, "--status-port takes 1..65535");
            break;
        case 't':
            if (!number(optarg, 1, 3600, &timeout))
                return aloft_usage_error(argv[0], push_help, "--timeout takes seconds (1..3600)");
            break;
        case 'h': fputs(push_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], push_help, c, argv);
        }
    }
    if (argc - optind != 2)
        return aloft_usage_error(argv[0], push_help, argc - optind < 2 ? "missing FILE or TARGET" : "too many arguments");
    if (frontend && legacy)
        return aloft_usage_error(argv[0], push_help, "--frontend needs the extended mode (not --legacy)");
    if (delta_from && (frontend || legacy))
        return aloft_usage_error(argv[0], push_help, "--delta-from is for an app image in the extended mode");
    const char *file = argv[optind], *target = argv[optind + 1], *colon = strrchr(target, ':');
    bool bluez = ble_bluez_target(target);
    if (!bluez && (!colon || colon == target))
        return aloft_usage_error(argv[0], push_help, "TARGET %s is not HOST:PORT", target);
    size_t len;
    uint8_t *img = NULL;
    if (aloft_file_read(file, &img, &len) || !len) {
        fprintf(stderr, "aloft ble push: cannot read %s\n", file);
        return 2;
    }
    struct aloft_image_info info = {0};
    int rc = frontend ? 0 : aloft_image_verify(img, len, ALOFT_CHIP_ANY, 0, &info);
    if (rc) {
        fprintf(stderr, "aloft ble push: %s is not a valid app image (%s)\n", file, aloft_strerror(rc));
        free(img);
        return 2;
    }
    uint8_t *patch = NULL;
    size_t patch_len = 0;
    if (delta_from && make_patch(delta_from, img, len, &patch, &patch_len)) {
        free(img);
        return 2;
    }
    char host[80];
    if (status_host || bluez)
        snprintf(host, sizeof host, "%s", status_host ? status_host : "");
    else
        snprintf(host, sizeof host, "%.*s", (int)(colon - target), target);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct aloft_devstatus before = {0};
    if (host[0])
        before = status_of(host, sport);

    static struct ble_central ct;
    struct bar bar = {.tty = isatty(STDERR_FILENO), .t0 = now(), .shown = -1};
    struct ble_push o = {.frontend = frontend, .legacy = legacy, .psk = psk && *psk && !legacy ? psk : NULL,
                         .progress = progress, .ctx = &bar};
    if (patch && before.ok && (!before.delta || strcmp(before.sha256, patch_base))) {
        printf("%s runs %s%s: sending the whole image\n", target, before.version,
               before.delta ? ", not the patch's base" : " and takes no patches");
        free(patch), patch = NULL;
    }
    rc = -1;
    for (unsigned t = 0; t < tries && rc < 0; t++) {
        if (t)
            fprintf(stderr, "%s%s; trying again (%u of %u)\n", bar.tty ? "\n" : "", ct.why, t + 1, tries);
        if (ble_central_open(&ct, target, (uint16_t)mtu, mtu_given ? (uint16_t)mtu : 23, 5000))
            continue;
        if (patch && !o.delta && !takes_patches(&ct, target)) {
            free(patch), patch = NULL;
        } else if (patch && !o.delta) {
            printf("%s: sending a %zu-byte patch from %s (%.1f%% of the image)\n", target, patch_len, delta_from,
                   100.0 * (double)patch_len / (double)len);
            o.delta = true;
        }
        rc = o.delta ? ble_push_image(&ct, &o, patch, patch_len) : ble_push_image(&ct, &o, img, len);
        if (rc > 0 && o.delta && strstr(ct.why, "wrong_base")) { /* it runs another image: nothing was erased */
            printf("%s does not run %s (%s): sending the whole image\n", target, delta_from, ct.why);
            free(patch), patch = NULL;
            o.delta = false;
            rc = ble_push_image(&ct, &o, img, len);
        }
        if (rc >= 0 && o.resumed_at)
            fprintf(stderr, "%sresumed at %lu bytes (what the device had %s)\n", bar.tty ? "\n" : "",
                    (unsigned long)o.resumed_at, o.delta ? "of the patch" : "in flash");
        ble_central_close(&ct);
    }
    if (bar.tty)
        fputc('\n', stderr);
    free(img);
    free(patch);
    if (rc) {
        printf("%s: %s: %s\n", target, rc > 0 ? "rejected" : "unreachable", ct.why);
        return 1;
    }
    if (!before.ok) {
        printf("%s: sent (%s)%s%s\n", target, legacy ? "DONE_ACK" : "END_ACK", o.boots[0] ? ": boots " : "",
               o.boots);
        return 0;
    }
    /* back after its restart: as aloft deploy judges it */
    const char *expect = frontend ? NULL : info.has_desc ? info.desc.version : NULL;
    struct aloft_devstatus after = {0};
    bool back = false;
    for (double end = now() + timeout; now() < end; usleep(300000)) {
        after = status_of(host, sport);
        back = after.ok && (after.boot_count > before.boot_count || after.uptime_s < before.uptime_s);
        if (back && (frontend || strcmp(after.state, "pending_verify")))
            break;
    }
    const char *outcome;
    if (!back)
        outcome = after.ok ? "unchanged" : "unreachable";
    else if (frontend)
        outcome = after.www_slot != before.www_slot ? "updated" : "unchanged";
    else if (!strcmp(after.running, before.running))
        outcome = "rolled back";
    else if (expect && strcmp(after.version, expect))
        outcome = "unchanged";
    else
        outcome = !strcmp(after.state, "pending_verify") ? "unconfirmed" : "updated";
    printf("%s: %s: %s %s -> %s %s", target, outcome, before.running, before.version, after.running, after.version);
    if (o.resumed_at)
        printf(" (resumed at %lu bytes)", (unsigned long)o.resumed_at);
    printf("\n");
    return strcmp(outcome, "updated") ? 1 : 0;
}
