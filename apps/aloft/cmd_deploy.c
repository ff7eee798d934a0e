/* aloft deploy: push one image to a fleet, verify every device after its
 * restart, and say exactly what happened to each, so that an operator can
 * run it from CI and believe it. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "cmd.h"
#include "delta.h"
#include "espota.h"
#include "file.h"
#include "fleet.h"
#include "hex.h"
#include "littlefs.h"
#include "targets.h"

static const char help[] =
    "usage: aloft deploy FIRMWARE TARGET... [options]\n"
    "       aloft deploy --frontend www.bin TARGET... [options]\n"
    "       aloft deploy --espota [--frontend] IMAGE TARGET... [options]\n"
    "\n"
    "Push an image to every device, at most --parallel at a time, then verify each one\n"
    "after its restart. A device counts as updated only when it answers, runs from the\n"
    "other partition, and runs the expected version, confirmed (not pending verification).\n"
    "Every device ends in one class:\n"
    "  updated      the new image runs and has confirmed itself\n"
    "  rolled back  the device restarted but runs the old image (e.g. the new one panicked)\n"
    "  rejected     the device refused the upload (its reason is shown)\n"
    "  unreachable  no answer (before the upload, or after it within --timeout)\n"
    "  unconfirmed  the new image runs but had not confirmed itself by --timeout\n"
    "  unchanged    the device answers but does not run the new image (it never restarted\n"
    "               into it, or it runs another version than expected)\n"
    "  skipped      not attempted: other chip or project, already on the version, not\n"
    "               an aloft device, or stopped by --canary, --max-failures or Ctrl-C\n"
    "  sent         the device took the image but could not be verified (--no-verify, or\n"
    "               an --espota device without aloft's status endpoint)\n"
    "  interrupted  a second Ctrl-C stopped it mid-way: its state is unknown\n"
    "TARGET: host, host:port, CIDR range (only devices that answer count), or @FILE.\n"
    "\n"
    "  --psk SECRET         bearer PSK for devices that require one (or env ALOFT_PSK)\n"
    "  --parallel N         devices updated at once, upload to verification (default 8)\n"
    "  --canary K           update K devices first; stop (exit 1) if any of them fails\n"
    "  --max-failures F     start no new upload once F devices have failed\n"
    "  --expect-version V   version to verify (default: the image's own)\n"
    "  --force-project      also update devices running another project\n"
    "  --force              also update devices already running the version\n"
    "  --no-verify          trust the upload reply (no polling after the restart)\n"
    "  --timeout S          per device: how long to wait for it after the upload (default 30)\n"
    "  --port N             port for targets without one (default 8032; 3232 with --espota)\n"
    "  --frontend           FIRMWARE is a LittleFS www.bin for POST /api/ota/frontend;\n"
    "                       verified by the device's active www slot flipping\n"
    "  --json               one JSON report on standard output instead of text\n"
    "  --espota             push with the ArduinoOTA protocol (espota, as the Arduino IDE and\n"
    "                       PlatformIO do) to devices that speak only that: aloft devices and\n"
    "                       plain Arduino sketches; TARGET's port is then the UDP port (3232\n"
    "                       unless given or --port) and --psk the OTA password. A device that\n"
    "                       also answers aloft's status endpoint (--status-port) is verified as\n"
    "                       usual; one that does not ends as \"sent\" (its OK is all there is)\n"
    "  --status-port N      with --espota: port of the devices' GET /ota/status (default 8032)\n"
    "  --delta-from OLD     an image devices may run now (repeatable, up to 8): a device that runs\n"
    "                       it and takes patches gets a delta patch from OLD instead of the whole\n"
    "                       image when the patch is under 80%% of it (aloft delta make; a few\n"
    "                       seconds per OLD, made once)\n"
    "\n"
    "exit status: 0 every targeted device confirmed (or already ran the version, or was sent), 1 any\n"
    "failure, 2 unusable image or no targets (none answered, or every device that did is\n"
    "another chip or project, or has no frontend slots), 130 interrupted (Ctrl-C stops new\n"
    "uploads; a second Ctrl-C stops at once)\n"
    "\n"
    "examples:\n"
    "  aloft deploy build/app.bin 192.168.1.0/24 --canary 1 --psk \"$OTA_PSK\"\n"
    "  aloft deploy --frontend build/www.bin @fleet.txt --parallel 16\n"
    "  aloft deploy --espota .pio/build/esp32dev/firmware.bin 192.168.1.40 --psk \"$OTA_PASSWORD\"\n"
    "  aloft deploy app-1.1.bin @fleet.txt --delta-from app-1.0.bin --psk \"$OTA_PSK\"\n";

enum outcome { O_NONE, O_UPDATED, O_ROLLED_BACK, O_REJECTED, O_UNREACHABLE, O_UNCONFIRMED, O_UNCHANGED, O_SKIPPED,
               O_SENT, O_INTERRUPTED, O_COUNT };
static const char *const outcome_name[O_COUNT] = {"", "updated", "rolled back", "rejected", "unreachable",
                                                  "unconfirmed", "unchanged", "skipped", "sent", "interrupted"};
static const char *const outcome_key[O_COUNT] = {"", "updated", "rolled_back", "rejected", "unreachable",
                                                 "unconfirmed", "unchanged", "skipped", "sent", "interrupted"};
enum phase { P_QUEUED, P_UPLOAD, P_WAIT, P_POLL, P_DONE };
static const char *const phase_name[] = {"queued", "uploading", "restarting", "verifying", "done"};

struct dev {
    const char *addr;
    bool from_range;
    struct aloft_devstatus before, after;
    enum phase phase;
    enum outcome outcome;
    bool other;           /* skipped as no target: another chip or project, no frontend slots */
    char reason[240];
    /* upload */
    CURL *easy;
    struct curl_slist *headers;
    struct aloft_body body;
    const uint8_t *image; /* shared, read-only: the image, or a delta patch to it */
    size_t len;
    const struct base *delta; /* the patch's base, or NULL: the whole image */
    size_t offset;        /* this transfer's own read position */
    double t_start, t_end;
    uint64_t sent;
    /* verification */
    double next_poll, deadline, backoff;
    /* --espota: the upload runs in a thread of its own */
    char host[64], status_addr[80];
    uint16_t udp_port;
    bool fs;
    const char *psk;
    pthread_t thread;
    bool done;            /* the thread has finished (atomic) */
    int rc;
    struct aloft_espota_client espota;
};

/* An image devices may run now (--delta-from) and the patch from it. */
struct base {
    const char *path;
    uint8_t *image, *patch;
    size_t len, patch_len;
    char sha256[65];      /* its appended SHA-256, as devices report it */
    bool tried;           /* the patch was made (or failed) */
};

#define MAX_BASES 8

struct deploy {
    struct base bases[MAX_BASES];
    unsigned nbases;
    const uint8_t *image;
    size_t len;
    bool frontend, verify, json, tty, espota;
    const char *psk, *expect;
    char chip[20], project[40];
    unsigned parallel, canary, max_failures;
    double timeout;
    struct dev *devs;
    size_t n;
    CURLM *multi;
    unsigned failures;
};

static volatile sig_atomic_t interrupted;

static void on_sigint(int sig)
{
    (void)sig;
    interrupted++;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool failed(enum outcome o)
{
    return o != O_UPDATED && o != O_SENT && o != O_SKIPPED && o != O_NONE;
}

/* Plain progress lines (off a terminal, and not in --json). */
static void note(const struct deploy *d, const struct dev *v, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void note(const struct deploy *d, const struct dev *v, const char *fmt, ...)
{
    if (d->json || d->tty)
        return;
    va_list ap;
    va_start(ap, fmt);
    printf("%-22s ", v->addr);
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    va_end(ap);
}

static void finish(struct deploy *d, struct dev *v, enum outcome o, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void finish(struct deploy *d, struct dev *v, enum outcome o, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->reason, sizeof v->reason, fmt, ap);
    va_end(ap);
    v->outcome = o;
    v->phase = P_DONE;
    if (failed(o))
        d->failures++;
    note(d, v, "%s: %s", outcome_name[o], v->reason);
}

static size_t read_image(char *buf, size_t size, size_t n, void *userdata)
{
    struct dev *v = userdata;
    size_t left = v->len - v->offset, take = size * n < left ? size * n : left;
    memcpy(buf, v->image + v->offset, take);
    v->offset += take;
    return take;
}

/* A small send buffer keeps the kernel from swallowing a whole image on a
 * fast link: what curl reports sent is then close to what the device has. */
static int small_sndbuf(void *clientp, curl_socket_t fd, curlsocktype purpose)
{
    (void)clientp, (void)purpose;
    int size = 64 * 1024;
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size);
    return CURL_SOCKOPT_OK;
}

static void *espota_thread(void *arg)
{
    struct dev *v = arg;
    v->rc = aloft_espota_push(&v->espota, v->host, v->udp_port, v->fs, v->image, v->len, v->psk);
    __atomic_store_n(&v->done, true, __ATOMIC_RELEASE);
    return NULL;
}

static void start_espota(struct deploy *d, struct dev *v)
{
    v->image = d->image;
    v->len = d->len;
    v->fs = d->frontend;
    v->psk = d->psk;
    v->phase = P_UPLOAD;
    v->t_start = now();
    note(d, v, "uploading %zu bytes over ArduinoOTA", d->len);
    if (pthread_create(&v->thread, NULL, espota_thread, v)) {
        v->done = true;
        v->rc = -1;
        snprintf(v->espota.why, sizeof v->espota.why, "no thread for it");
    }
}

static void espota_done(struct deploy *d, struct dev *v)
{
    pthread_join(v->thread, NULL);
    v->sent = v->offset = v->espota.sent;
    v->t_end = now();
    if (v->rc > 0) {
        finish(d, v, O_REJECTED, "%s", v->espota.why);
        return;
    }
    if (v->rc < 0 && !v->espota.sent) {
        finish(d, v, O_UNREACHABLE, "%s", v->espota.why);
        return;
    }
    if (v->rc < 0) {
        finish(d, v, O_UNREACHABLE, "upload failed after %zu bytes: %s", v->espota.sent, v->espota.why);
        return;
    }
    note(d, v, "uploaded in %.1fs (device said OK)", v->t_end - v->t_start);
    if (!d->verify) {
        finish(d, v, O_SENT, "the device said OK; not verified (--no-verify)");
        return;
    }
    if (!v->before.ok) {
        finish(d, v, O_SENT, "the device said OK; not verified: nothing answers GET /ota/status on %s (a plain "
                             "ArduinoOTA device?)", v->status_addr);
        return;
    }
    v->phase = P_WAIT;
    v->backoff = 0.5;
    v->next_poll = now() + 1.0;
    v->deadline = now() + d->timeout;
}

static void start_upload(struct deploy *d, struct dev *v)
{
    if (d->espota) {
        start_espota(d, v);
        return;
    }
    char url[160], auth[128];
    snprintf(url, sizeof url, "http://%s%s", v->addr, d->frontend ? "/api/ota/frontend" : "/ota");
    v->easy = curl_easy_init();
    v->headers = curl_slist_append(NULL, v->delta ? "Content-Type: application/x-aloft-delta"
                                                  : "Content-Type: application/octet-stream");
    if (d->psk) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", d->psk);
        v->headers = curl_slist_append(v->headers, auth);
    }
    v->image = v->delta ? v->delta->patch : d->image;
    v->len = v->delta ? v->delta->patch_len : d->len;
    v->offset = 0;
    v->body.len = 0;
    curl_easy_setopt(v->easy, CURLOPT_URL, url);
    curl_easy_setopt(v->easy, CURLOPT_POST, 1L);
    curl_easy_setopt(v->easy, CURLOPT_READFUNCTION, read_image);
    curl_easy_setopt(v->easy, CURLOPT_READDATA, v);
    curl_easy_setopt(v->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)v->len);
    curl_easy_setopt(v->easy, CURLOPT_HTTPHEADER, v->headers);
    curl_easy_setopt(v->easy, CURLOPT_WRITEFUNCTION, aloft_body_write);
    curl_easy_setopt(v->easy, CURLOPT_WRITEDATA, &v->body);
    curl_easy_setopt(v->easy, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(v->easy, CURLOPT_LOW_SPEED_LIMIT, 1L); /* a stalled device: give up after 30 s */
    curl_easy_setopt(v->easy, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(v->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(v->easy, CURLOPT_PROXY, "");
    curl_easy_setopt(v->easy, CURLOPT_SOCKOPTFUNCTION, small_sndbuf);
    curl_easy_setopt(v->easy, CURLOPT_PRIVATE, v);
    curl_multi_add_handle(d->multi, v->easy);
    v->phase = P_UPLOAD;
    v->t_start = now();
    if (v->delta)
        note(d, v, "uploading a %zu-byte patch from %s (%.1f%% of the image)", v->len, v->delta->path,
             100.0 * (double)v->len / (double)d->len);
    else
        note(d, v, "uploading %zu bytes", d->len);
}

static void drop_easy(struct deploy *d, struct dev *v)
{
    curl_multi_remove_handle(d->multi, v->easy);
    curl_easy_cleanup(v->easy);
    curl_slist_free_all(v->headers);
    v->easy = NULL;
    v->headers = NULL;
}

static void upload_done(struct deploy *d, struct dev *v, CURLcode rc)
{
    long code = 0;
    curl_off_t sent = 0;
    curl_easy_getinfo(v->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(v->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
    v->sent = (uint64_t)sent;
    v->t_end = now();
    drop_easy(d, v);
    /* the device restarts ~1 s after replying: a reply lost to the restart,
     * once the whole body was sent, is the normal "maybe" */
    bool maybe = rc != CURLE_OK && v->offset == v->len &&
                 (rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING || rc == CURLE_SEND_ERROR ||
                  rc == CURLE_PARTIAL_FILE || rc == CURLE_OPERATION_TIMEDOUT);
    if (rc == CURLE_OK && code >= 300) {
        cJSON *j = cJSON_Parse(v->body.data);
        const cJSON *msg = j ? cJSON_GetObjectItemCaseSensitive(j, "message") : NULL;
        const cJSON *err = j ? cJSON_GetObjectItemCaseSensitive(j, "error") : NULL;
        finish(d, v, O_REJECTED, "HTTP %ld%s%s%s%s", code, cJSON_IsString(err) ? " " : "",
               cJSON_IsString(err) ? err->valuestring : "", cJSON_IsString(msg) ? ": " : "",
               cJSON_IsString(msg) ? msg->valuestring : (j ? "" : v->body.data));
        cJSON_Delete(j);
        return;
    }
    if (rc != CURLE_OK && !maybe) {
        finish(d, v, O_UNREACHABLE, "upload failed after %llu bytes: %s", (unsigned long long)v->sent,
               curl_easy_strerror(rc));
        return;
    }
    note(d, v, "uploaded in %.1fs (%s)", v->t_end - v->t_start, rc == CURLE_OK ? "device replied ok"
                                                                                : "reply lost in the restart");
    if (!d->verify) {
        finish(d, v, O_SENT, "%s; not verified (--no-verify)", rc == CURLE_OK ? "accepted" : "sent");
        return;
    }
    v->phase = P_WAIT;
    v->backoff = 0.5;
    v->next_poll = now() + 1.0;
    v->deadline = now() + d->timeout;
}

static bool restarted(const struct aloft_devstatus *b, const struct aloft_devstatus *a)
{
    return strcmp(a->reset_reason, b->reset_reason) || a->boot_count != b->boot_count;
}

/* One verification answer: decide, or poll again with backoff. */
static void judge(struct deploy *d, struct dev *v)
{
    const struct aloft_devstatus *b = &v->before, *a = &v->after;
    bool last = now() >= v->deadline;
    if (!a->ok) {
        if (last)
            finish(d, v, O_UNREACHABLE, "no answer within %.0fs of the upload: %s", d->timeout, a->error);
        return;
    }
    bool moved = d->frontend ? a->www_slot != b->www_slot : strcmp(a->running, b->running) != 0;
    if (moved && (d->frontend || !strcmp(a->version, d->expect))) {
        if (!d->frontend && !strcmp(a->state, "pending_verify")) {
            if (last)
                finish(d, v, O_UNCONFIRMED, "runs %s on %s but has not confirmed it (still pending_verify)",
                       a->version, a->running);
            return;
        }
        if (d->frontend)
            finish(d, v, O_UPDATED, "www slot %ld -> %ld", b->www_slot, a->www_slot);
        else
            finish(d, v, O_UPDATED, "%s -> %s, %s -> %s (%s)", b->running, a->running, b->version, a->version,
                   a->state);
        return;
    }
    if (moved) {
        finish(d, v, O_UNCHANGED, "runs %s on %s, expected %s", a->version, a->running, d->expect);
        return;
    }
    if (restarted(b, a)) {
        finish(d, v, O_ROLLED_BACK, "restarted (reset reason %s, boot %ld) but still runs %s on %s", a->reset_reason,
               a->boot_count, a->version, a->running);
        return;
    }
    if (last)
        finish(d, v, O_UNCHANGED, "still runs %s on %s and never restarted", a->version, a->running);
}

static void start_poll(struct deploy *d, struct dev *v)
{
    v->easy = aloft_status_request(v->status_addr[0] ? v->status_addr : v->addr, &v->body, 2000);
    curl_easy_setopt(v->easy, CURLOPT_PRIVATE, v);
    curl_multi_add_handle(d->multi, v->easy);
    v->phase = P_POLL;
}

static void poll_done(struct deploy *d, struct dev *v, CURLcode rc)
{
    aloft_status_result(v->easy, rc, &v->body, &v->after);
    drop_easy(d, v);
    v->phase = P_WAIT;
    judge(d, v);
    if (v->phase != P_DONE) {
        v->backoff = v->backoff * 1.5 > 3 ? 3 : v->backoff * 1.5;
        v->next_poll = now() + v->backoff;
    }
}

static void human(double bytes, char *out, size_t n)
{
    if (bytes >= 1 << 20)
        snprintf(out, n, "%.1f MiB", bytes / (1 << 20));
    else
        snprintf(out, n, "%.0f KiB", bytes / 1024);
}

/* On a terminal: one live line per device in flight, redrawn in place. */
static void draw(const struct deploy *d, int *lines)
{
    if (!d->tty || d->json)
        return;
    for (int i = 0; i < *lines; i++)
        fputs("\033[1A\033[2K", stdout);
    *lines = 0;
    for (size_t i = 0; i < d->n; i++) {
        const struct dev *v = &d->devs[i];
        if (v->phase == P_QUEUED || v->phase == P_DONE)
            continue;
        char done[32], total[32], rate[32] = "";
        curl_off_t sent = (curl_off_t)v->offset, speed = 0;
        if (v->phase == P_UPLOAD && v->easy)
            curl_easy_getinfo(v->easy, CURLINFO_SPEED_UPLOAD_T, &speed);
        human((double)sent, done, sizeof done);
        human((double)d->len, total, sizeof total);
        if (speed)
            human((double)speed, rate, sizeof rate), strcat(rate, "/s");
        printf("%-22s %-10s %9s / %-9s %3.0f%% %s\n", v->addr, phase_name[v->phase], done, total,
               d->len ? 100.0 * (double)sent / (double)d->len : 0, rate);
        (*lines)++;
    }
    fflush(stdout);
}

/* Run uploads and verifications for devs[from, to) until all are done. */
static void run_batch(struct deploy *d, size_t from, size_t to)
{
    int lines = 0;
    double last_draw = 0;
    for (;;) {
        /* a device stays in flight until it is verified: with --parallel 1 and
         * --max-failures 1 a panicking image reaches one device, not all */
        unsigned in_flight = 0;
        bool busy = false;
        for (size_t i = from; i < to; i++) {
            struct dev *v = &d->devs[i];
            in_flight += v->phase != P_QUEUED && v->phase != P_DONE;
            if (v->phase == P_WAIT && now() >= v->next_poll)
                start_poll(d, v);
            if (d->espota && v->phase == P_UPLOAD) {
                v->offset = __atomic_load_n(&v->espota.sent, __ATOMIC_RELAXED);
                if (__atomic_load_n(&v->done, __ATOMIC_ACQUIRE))
                    espota_done(d, v);
            }
            if (interrupted > 1 && v->phase != P_DONE && v->phase != P_QUEUED) {
                if (v->easy)
                    drop_easy(d, v);
                if (d->espota && v->phase == P_UPLOAD) /* its waits are bounded */
                    pthread_join(v->thread, NULL);
                finish(d, v, O_INTERRUPTED, "stopped while %s: the device's state is unknown (check with aloft status)",
                       phase_name[v->phase]);
            }
        }
        bool may_start = !interrupted && (!d->max_failures || d->failures < d->max_failures);
        for (size_t i = from; i < to; i++) {
            struct dev *v = &d->devs[i];
            if (v->phase == P_QUEUED && may_start && in_flight < d->parallel) {
                start_upload(d, v);
                in_flight++;
            }
            busy |= v->phase != P_QUEUED && v->phase != P_DONE;
        }
        if (!busy)
            break;
        int still;
        curl_multi_perform(d->multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(d->multi, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct dev *v;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&v);
            if (v->phase == P_UPLOAD)
                upload_done(d, v, msg->data.result);
            else
                poll_done(d, v, msg->data.result);
        }
        if (now() - last_draw > 0.2) {
            draw(d, &lines);
            last_draw = now();
        }
        curl_multi_poll(d->multi, NULL, 0, 50, NULL);
    }
    draw(d, &lines);
    /* what was never started */
    for (size_t i = from; i < to; i++) {
        struct dev *v = &d->devs[i];
        if (v->phase == P_QUEUED)
            finish(d, v, O_SKIPPED, interrupted ? "not started: interrupted"
                                               : "not started: --max-failures %u reached", d->max_failures);
    }
}

static int check_image(struct deploy *d, const char *path)
{
    if (d->frontend) {
        struct aloft_lfs fs;
        int rc = aloft_lfs_mount(&fs, d->image, d->len, 0);
        struct aloft_image_info app;
        if (rc && aloft_image_verify(d->image, d->len, ALOFT_CHIP_ANY, 0, &app) == 0) {
            fprintf(stderr, "aloft deploy: %s is an app image, not a frontend's LittleFS image: deploy it without "
                            "--frontend\n", path);
            return 2;
        }
        if (rc) { /* never advise an -o that would overwrite the file given */
            fprintf(stderr, "aloft deploy: %s is not a LittleFS image (%s); make one from the frontend's folder with "
                            "`aloft mkfs DIR -o www.bin`\n",
                    path, fs.why[0] ? fs.why : aloft_strerror(rc));
            return 2;
        }
        return 0;
    }
    struct aloft_image_info info;
    int rc = aloft_image_verify(d->image, d->len, ALOFT_CHIP_ANY, 0, &info);
    if (rc) {
        fprintf(stderr, "aloft deploy: %s is not a usable image: %s (see `aloft image info %s`)\n", path,
                aloft_strerror(rc), path);
        return 2;
    }
    if (!info.has_desc) {
        fprintf(stderr, "aloft deploy: %s has no app descriptor, so its version cannot be verified on the devices\n",
                path);
        return 2;
    }
    snprintf(d->chip, sizeof d->chip, "%s", aloft_chip_name(info.chip_id));
    snprintf(d->project, sizeof d->project, "%s", info.desc.project_name);
    if (!d->expect)
        d->expect = strdup(info.desc.version);
    return 0;
}

/* --delta-from OLD: read it and note its appended SHA-256. Returns 0 or 2. */
static int add_base(struct deploy *d, const char *path)
{
    if (d->nbases == MAX_BASES) {
        fprintf(stderr, "aloft deploy: at most %d --delta-from images\n", MAX_BASES);
        return 2;
    }
    struct base *b = &d->bases[d->nbases];
    struct aloft_image_info info;
    if (aloft_file_read(path, &b->image, &b->len)) {
        fprintf(stderr, "aloft deploy: --delta-from %s: %s\n", path, strerror(errno));
        return 2;
    }
    int rc = aloft_image_verify(b->image, b->len, ALOFT_CHIP_ANY, 0, &info);
    if (rc || !info.hash_appended) {
        fprintf(stderr, "aloft deploy: --delta-from %s: %s\n", path,
                rc ? aloft_strerror(rc) : "the image has no appended SHA-256, so no device can be matched to it");
        free(b->image);
        return 2;
    }
    b->path = path;
    aloft_hex(info.sha256, 32, b->sha256);
    d->nbases++;
    return 0;
}

/* The patch for a device that runs one of the --delta-from images and takes
 * patches, made on first use; NULL when none applies or it does not help. */
static const struct base *delta_for(struct deploy *d, const struct aloft_devstatus *st)
{
    if (d->frontend || d->espota || !st->delta || !st->sha256[0])
        return NULL;
    for (unsigned i = 0; i < d->nbases; i++) {
        struct base *b = &d->bases[i];
        if (strcmp(b->sha256, st->sha256))
            continue;
        if (!b->tried) {
            b->tried = true;
            if (!d->json)
                printf("making a patch from %s...\n", b->path);
            fflush(stdout);
            int rc = aloft_delta_make(b->image, b->len, d->image, d->len, 0, NULL, NULL, &b->patch, &b->patch_len);
            if (rc) {
                fprintf(stderr, "aloft deploy: a patch from %s: %s; sending the whole image\n", b->path,
                        aloft_strerror(rc));
                b->patch = NULL;
            }
        }
        /* a patch that saves little is not worth the device's extra work */
        return b->patch && b->patch_len * 10 < d->len * 8 ? b : NULL;
    }
    return NULL;
}

static void report(const struct deploy *d, const char *path, int exit_code)
{
    unsigned count[O_COUNT] = {0};
    for (size_t i = 0; i < d->n; i++)
        count[d->devs[i].outcome]++;
    if (d->json) {
        cJSON *j = cJSON_CreateObject();
        cJSON *img = cJSON_AddObjectToObject(j, "image");
        cJSON_AddStringToObject(img, "path", path);
        cJSON_AddStringToObject(img, "kind", d->frontend ? "frontend" : "firmware");
        cJSON_AddNumberToObject(img, "size", (double)d->len);
        if (!d->frontend) {
            cJSON_AddStringToObject(img, "chip", d->chip);
            cJSON_AddStringToObject(img, "project", d->project);
            cJSON_AddStringToObject(j, "expected_version", d->expect);
        }
        cJSON *arr = cJSON_AddArrayToObject(j, "devices");
        for (size_t i = 0; i < d->n; i++) {
            const struct dev *v = &d->devs[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "address", v->addr);
            cJSON_AddStringToObject(o, "outcome", outcome_key[v->outcome]);
            cJSON_AddStringToObject(o, "reason", v->reason);
            if (v->before.ok) {
                cJSON *b = cJSON_AddObjectToObject(o, "before");
                cJSON_AddStringToObject(b, "partition", v->before.running);
                cJSON_AddStringToObject(b, "version", v->before.version);
                cJSON_AddNumberToObject(b, "www_slot", (double)v->before.www_slot);
            }
            if (v->after.ok) {
                cJSON *a = cJSON_AddObjectToObject(o, "after");
                cJSON_AddStringToObject(a, "partition", v->after.running);
                cJSON_AddStringToObject(a, "version", v->after.version);
                cJSON_AddStringToObject(a, "state", v->after.state);
                cJSON_AddStringToObject(a, "reset_reason", v->after.reset_reason);
                cJSON_AddNumberToObject(a, "www_slot", (double)v->after.www_slot);
            }
            if (v->sent)
                cJSON_AddNumberToObject(o, "upload_seconds", v->t_end - v->t_start);
            if (v->sent)
                cJSON_AddNumberToObject(o, "upload_bytes", (double)v->sent);
            if (v->delta)
                cJSON_AddStringToObject(o, "delta_from", v->delta->path);
            cJSON_AddItemToArray(arr, o);
        }
        cJSON *sum = cJSON_AddObjectToObject(j, "summary");
        for (int o = 1; o < O_COUNT; o++)
            cJSON_AddNumberToObject(sum, outcome_key[o], count[o]);
        cJSON_AddNumberToObject(j, "exit_code", exit_code);
        char *s = cJSON_Print(j);
        puts(s);
        free(s);
        cJSON_Delete(j);
        return;
    }
    printf("\n%-22s %-12s %s\n", "device", "outcome", "details");
    for (size_t i = 0; i < d->n; i++)
        printf("%-22s %-12s %s\n", d->devs[i].addr, outcome_name[d->devs[i].outcome], d->devs[i].reason);
    printf("\nsummary:");
    for (int o = 1; o < O_COUNT; o++)
        if (count[o])
            printf(" %u %s,", count[o], outcome_name[o]);
    printf(" of %zu device%s\n", d->n, d->n == 1 ? "" : "s");
}

int aloft_cmd_deploy(int argc, char **argv)
{
    static const struct option opts[] = {
        {"psk", required_argument, NULL, 'k'},          {"parallel", required_argument, NULL, 'P'},
        {"canary", required_argument, NULL, 'c'},       {"max-failures", required_argument, NULL, 'F'},
        {"expect-version", required_argument, NULL, 'e'}, {"force-project", no_argument, NULL, 'p'},
        {"force", no_argument, NULL, 'f'},              {"no-verify", no_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},      {"port", required_argument, NULL, 'o'},
        {"frontend", no_argument, NULL, 'w'},           {"json", no_argument, NULL, 'j'},
        {"espota", no_argument, NULL, 'E'},             {"status-port", required_argument, NULL, 'S'},
        {"delta-from", required_argument, NULL, 'D'},   {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    static struct deploy d;
    memset(&d, 0, sizeof d);
    d.parallel = 8;
    d.verify = true;
    d.timeout = 30;
    d.psk = getenv("ALOFT_PSK");
    bool force_project = false, force = false;
    unsigned port = 0, status_port = 8032;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end = NULL;
        unsigned long v = 0;
        if (strchr("PcFoS", c)) {
            v = strtoul(optarg, &end, 10);
            if (*end || v > 65535 || (c != 'F' && c != 'c' && !v)) {
                fprintf(stderr, "aloft deploy: --%s takes a number\n", c == 'P' ? "parallel" : c == 'c' ? "canary"
                                                                          : c == 'F' ? "max-failures" : c == 'S' ? "status-port" : "port");
                return 2;
            }
        }
        switch (c) {
        case 'k': d.psk = optarg; break;
        case 'P': d.parallel = (unsigned)v; break;
        case 'c': d.canary = (unsigned)v; break;
        case 'F': d.max_failures = (unsigned)v; break;
        case 'o': port = (unsigned)v; break;
        case 'S': status_port = (unsigned)v; break;
        case 'E': d.espota = true; break;
        case 'D':
            if (add_base(&d, optarg))
                return 2;
            break;
        case 'e': d.expect = optarg; break;
        case 'p': force_project = true; break;
        case 'f': force = true; break;
        case 'n': d.verify = false; break;
        case 'w': d.frontend = true; break;
        case 'j': d.json = true; break;
        case 't':
            d.timeout = strtod(optarg, &end);
            if (*end || d.timeout <= 0 || d.timeout > 3600) {
                fprintf(stderr, "aloft deploy: --timeout takes seconds (up to 3600)\n");
                return 2;
            }
            break;
        case 'h': fputs(help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], help, c, argv);
        }
    }
    if (argc - optind < 2)
        return aloft_usage_error(argv[0], help, "missing %s", optind == argc ? "FIRMWARE and TARGET" : "TARGET");
    const char *path = argv[optind];
    uint8_t *image;
    if (aloft_file_read(path, &image, &d.len) != 0) {
        fprintf(stderr, "aloft deploy: %s: %s\n", path, strerror(errno));
        return 2;
    }
    d.image = image;
    int rc = check_image(&d, path);
    struct aloft_targets ts = {0};
    char err[200];
    if (!port)
        port = d.espota ? 3232 : 8032;
    for (int i = optind + 1; rc == 0 && i < argc; i++)
        if (aloft_targets_add(&ts, argv[i], port, err, sizeof err)) {
            fprintf(stderr, "aloft deploy: %s\n", err);
            rc = 2;
        }
    if (rc) {
        free(image);
        aloft_targets_free(&ts);
        return rc;
    }
    d.tty = isatty(STDOUT_FILENO);
    curl_global_init(CURL_GLOBAL_DEFAULT);

    if (!d.json && d.frontend)
        printf("deploying frontend %s (%zu bytes)\n", path, d.len);
    else if (!d.json)
        printf("deploying %s: %s %s for %s (%zu bytes)\n", path, d.project, d.expect, d.chip, d.len);
    fflush(stdout);

    /* discover and snapshot; devices found by a range scan count only if they answer */
    const char **addrs = malloc(ts.n * sizeof *addrs), **probe = malloc(ts.n * sizeof *probe);
    struct aloft_devstatus *st = calloc(ts.n, sizeof *st);
    d.devs = calloc(ts.n, sizeof *d.devs);
    for (size_t i = 0; i < ts.n; i++) {
        struct dev *v = &d.devs[i];
        addrs[i] = probe[i] = ts.t[i].addr;
        if (d.espota) { /* host:udp_port; the status endpoint on status_port */
            const char *colon = strrchr(addrs[i], ':');
            snprintf(v->host, sizeof v->host, "%.*s", (int)(colon - addrs[i]), addrs[i]);
            v->udp_port = (uint16_t)atoi(colon + 1);
            snprintf(v->status_addr, sizeof v->status_addr, "%s:%u", v->host, status_port);
            probe[i] = v->status_addr;
        }
    }
    aloft_fleet_probe(probe, ts.n, 64, 3000, st);
    for (size_t i = 0; i < ts.n; i++) {
        if (ts.t[i].from_range && !st[i].ok)
            continue;
        struct dev *v = &d.devs[d.n];
        if (v != &d.devs[i])
            *v = d.devs[i];
        d.n++;
        v->addr = addrs[i];
        v->before = st[i];
        if (!st[i].ok) { /* over espota, maybe a plain ArduinoOTA device: the upload tells */
            if (!d.espota && (v->other = st[i].answered)) /* reachable, but nothing to deploy to */
                finish(&d, v, O_SKIPPED, "%s", st[i].error);
            else if (!d.espota)
                finish(&d, v, O_UNREACHABLE, "no answer before the upload: %s", st[i].error);
        } else if ((v->other = !d.frontend && strcmp(st[i].chip, d.chip)))
            finish(&d, v, O_SKIPPED, "device is %s, the image is for %s", st[i].chip, d.chip);
        else if ((v->other = !d.frontend && !force_project && strcmp(st[i].project, d.project)))
            finish(&d, v, O_SKIPPED, "device runs project '%s', the image is '%s' (--force-project to override)",
                   st[i].project, d.project);
        else if (!d.frontend && !force && !strcmp(st[i].version, d.expect))
            finish(&d, v, O_SKIPPED, "already runs %s (--force to push anyway)", d.expect);
        else if ((v->other = d.frontend && st[i].www_slot < 0))
            finish(&d, v, O_SKIPPED, "device has no frontend slots");
        else
            v->delta = delta_for(&d, &st[i]);
    }
    free(st);
    free(probe);
    if (d.n == 0) {
        fprintf(stderr, "aloft deploy: no device answered on the %zu target address%s\n", ts.n, ts.n == 1 ? "" : "es");
        free(addrs);
        free(d.devs);
        free(image);
        aloft_targets_free(&ts);
        return 2;
    }

    struct sigaction sa = {.sa_handler = on_sigint}, old;
    sigaction(SIGINT, &sa, &old);
    d.multi = curl_multi_init();
    size_t canary_end = d.n;
    if (d.canary) { /* the canaries are the first K devices still to update */
        size_t k = 0;
        for (canary_end = 0; canary_end < d.n && k < d.canary; canary_end++)
            k += d.devs[canary_end].phase == P_QUEUED;
    }
    /* only the canaries' own failures stop the rest, not devices that were
     * already unreachable before any upload */
    unsigned failures_before = d.failures;
    run_batch(&d, 0, canary_end);
    bool canary_failed = d.canary && d.failures > failures_before;
    if (canary_failed) {
        for (size_t i = canary_end; i < d.n; i++)
            if (d.devs[i].phase == P_QUEUED)
                finish(&d, &d.devs[i], O_SKIPPED, "not started: a canary failed");
    } else if (canary_end < d.n) {
        run_batch(&d, canary_end, d.n);
    }
    curl_multi_cleanup(d.multi);
    sigaction(SIGINT, &old, NULL);

    bool any_failed = false, any_target = false;
    for (size_t i = 0; i < d.n; i++) {
        any_failed |= failed(d.devs[i].outcome) || (d.devs[i].outcome == O_SKIPPED && strstr(d.devs[i].reason, "not started"));
        any_target |= !d.devs[i].other;
    }
    /* nothing answered that this image is for: not a success */
    int code = interrupted ? 130 : any_failed ? 1 : any_target ? 0 : 2;
    report(&d, path, code);
    if (canary_failed && !d.json)
        printf("stopped: a canary failed; the other devices were not touched\n");
    if (code == 2)
        fprintf(stderr, "aloft deploy: no device this image is for answered (see why each was skipped)\n");
    free(addrs);
    free(d.devs);
    free(image);
    for (unsigned i = 0; i < d.nbases; i++)
        free(d.bases[i].image), free(d.bases[i].patch);
    aloft_targets_free(&ts);
    curl_global_cleanup();
    return code;
}
