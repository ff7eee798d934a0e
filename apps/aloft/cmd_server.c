/* aloft server ...: the admin API of an aloftd (issue 5) from the command
 * line. The server and token come from flags or ALOFT_SERVER / ALOFT_TOKEN /
 * ALOFT_TOKEN_FILE. */
#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cmd.h"
#include "file.h"
#include "hex.h"
#include "signing.h"

enum action { UPLOAD, RELEASES, PIN, UNPIN, DEVICES, ROLLOUT, WHITELIST, SIGNING, CREDENTIAL, CHECKINS, PLATFORM, PUBLISH };

/* Each page: what the command does, the options only it takes, and examples. */
static const struct {
    const char *name, *args, *what, *options, *examples;
} actions[] = {
    [UPLOAD] = {"upload", "FILE [--platform P] [--frontend --platform P [--version LABEL]]",
                "Upload a firmware image (identified by the server from its app descriptor) or,\n"
                "with --frontend, a LittleFS frontend image for platform P.",
                "  --platform P       the platform the release belongs to (firmware: default the\n"
                "                     project name in its app descriptor; a frontend: required)\n"
                "  --frontend         FILE is a LittleFS frontend image (aloft mkfs), not firmware\n"
                "  --version LABEL    the frontend release's label (default: the first 12 hex\n"
                "                     digits of its SHA-256)\n",
                "  aloft server upload build/hello-aloft.bin\n"
                "  aloft server upload build/www.bin --frontend --platform hello-aloft --version 2.0\n"},
    [RELEASES] = {"releases", "[PLATFORM [--frontend]]",
                  "A platform's release history, newest upload first; * marks the current one.\n"
                  "Under each firmware release, the delta patches the server made to it for\n"
                  "devices on an earlier one (their size and URL, or that one was not worth it).\n"
                  "Without PLATFORM: every platform with its chip, current release and counts.",
                  "  --frontend         the platform's frontend releases instead of its firmware\n",
                  "  aloft server releases\n"
                  "  aloft server releases hello-aloft --frontend\n"},
    [PIN] = {"pin", "PLATFORM VERSION [--frontend]",
             "Serve VERSION to the platform's devices, older or not: this is how to downgrade.\n"
             "The pin holds until unpin, whatever is uploaded meanwhile.",
             "  --frontend         pin a frontend release (VERSION: its label) instead of firmware\n",
             "  aloft server pin hello-aloft 1.0.0      # devices on 1.1.0 are offered 1.0.0\n"},
    [UNPIN] = {"unpin", "PLATFORM [--frontend]", "Back to serving the newest release.",
               "  --frontend         unpin the platform's frontend instead of its firmware\n",
               "  aloft server unpin hello-aloft\n"},
    [DEVICES] = {"devices", "[PLATFORM]",
                 "The device inventory: every device's last check-in and outcome report; with\n"
                 "PLATFORM only that platform's devices.",
                 "", "  aloft server devices hello-aloft --json\n"},
    [ROLLOUT] = {"rollout",
                 "start PLATFORM VERSION [--stages 1,10,50,100] [--max-failures N|N%] [--auto-advance N|N%]\n"
                 "       aloft server rollout advance|pause|resume|abort|show ID\n"
                 "       aloft server rollout show",
                 "Staged rollouts: VERSION is offered to a growing share of PLATFORM's devices\n"
                 "(stages in percent, chosen by a stable hash of each MAC); the others keep the\n"
                 "release current before. A device offered VERSION succeeded when it reports\n"
                 "\"updated\" or checks in again running VERSION, and failed when it reports a\n"
                 "failure or checks in again on another version. More failures than --max-failures\n"
                 "(a count, or a percentage of the devices offered; default 5%) halt it.\n"
                 "--auto-advance: open the next stage by itself once N devices offered in the\n"
                 "current stage (or N% of them, at least one) succeeded; else only on command.\n"
                 "advance opens the next stage (after the last: completed); pause stops offering\n"
                 "VERSION to new devices until resume; abort ends it and holds the devices that did\n"
                 "not take VERSION on the release before (pinned, but no device that took VERSION is\n"
                 "offered the older one: pin it yourself to revert); show without ID lists all.",
                 "  --stages LIST      the stages' shares of the devices in percent, ascending,\n"
                 "                     1 to 10 of them (default 1,10,50,100)\n"
                 "  --max-failures N|N%  halt after more than N failures, or more than N% of the\n"
                 "                     devices offered (default 5%)\n"
                 "  --auto-advance N|N%  open the next stage once N devices (or N%) of the current\n"
                 "                     one succeeded (default: only on `advance`)\n",
                 "  aloft server rollout start hello-aloft 1.2.0 --stages 5,50,100 --auto-advance 90%\n"
                 "  aloft server rollout show 1\n"
                 "  aloft server rollout abort 1\n"},
    [WHITELIST] = {"whitelist", "PLATFORM [on | off | add MAC... | remove MAC...]",
                   "A platform's MAC whitelist (off by default). When on, even empty, only the\n"
                   "devices on it are offered updates; the others get 403. Without a verb: show it.\n"
                   "on/off: turn it on or off; add/remove: MACs such as 24:0A:C4:00:00:01.",
                   "", "  aloft server whitelist hello-aloft add 24:0A:C4:00:00:01 24:0A:C4:00:00:02\n"
                       "  aloft server whitelist hello-aloft on\n"},
    [SIGNING] = {"signing", "PLATFORM [add KEY... | remove KEY...]",
                 "A platform's signing policy. Once it has a key, every upload must carry a secure\n"
                 "boot v2 signature (aloft image sign) by one of its keys; others are refused with\n"
                 "422. KEY: a public key digest (64 hex digits) or a PEM key file, whose digest is\n"
                 "sent. With no key left, unsigned uploads are taken again. Without a verb: show it.",
                 "", "  aloft keygen --scheme rsa3072 -o signing.pem\n"
                     "  aloft server signing hello-aloft add signing.pem\n"},
    [CREDENTIAL] = {"credential", "MAC",
                    "The secret the device with this MAC signs its outcome reports with: provision it\n"
                    "into the device (aloft-node --server-key, or the NVS key security/server_key on\n"
                    "an ESP32). aloftd refuses a report that is not signed, so a forged one never\n"
                    "halts or advances a rollout. Derived from the server's device key: nothing to\n"
                    "store per device.",
                    "", "  aloft-node --flash dev1.bin --server http://aloftd:8080 --mac 24:0A:C4:00:00:01 \\\n"
                        "      --server-key \"$(aloft server credential 24:0A:C4:00:00:01)\"\n"},
    [CHECKINS] = {"checkins", "PLATFORM [settle | report-only]",
                  "Whether a check-in may settle a device in a rollout (settle, the default): back\n"
                  "on the release it succeeded, on another version it failed. Check-ins are not\n"
                  "signed (plain HTTPUpdate clients cannot sign), so anyone who reaches /update can\n"
                  "forge them. report-only: only signed reports count, for fleets of aloft devices\n"
                  "(they report every outcome). Without a verb: show it.",
                  "", "  aloft server checkins hello-aloft report-only\n"},
    [PLATFORM] = {"platform", "add NAME --chip CHIP [--publish auto|manual]\n"
                              "       aloft server platform show NAME",
                  "A platform is created by its first firmware upload, or beforehand with add, so\n"
                  "that its signing policy and publish policy already hold for that first upload.\n"
                  "show: its chip, what its devices are offered, and each of its settings.",
                  "  --chip CHIP        the chip as ESP-IDF names it: esp32, esp32s2, esp32s3,\n"
                  "                     esp32c2, esp32c3, esp32c5, esp32c6, esp32c61, esp32h2, esp32p4\n"
                  "  --publish auto|manual  see aloft server publish (default auto)\n",
                  "  aloft server platform add hello-aloft --chip esp32c3 --publish manual\n"
                  "  aloft server signing hello-aloft add signing.pem\n"
                  "  aloft server platform show hello-aloft\n"},
    [PUBLISH] = {"publish", "PLATFORM [auto | manual]",
                 "What an upload does. auto (the default): the newest release is offered to the\n"
                 "platform's devices as soon as it is uploaded, unless one is pinned. manual: an\n"
                 "upload is only stored; devices are offered a release once it is pinned (aloft\n"
                 "server pin) or its rollout completes (aloft server rollout). Turning manual on\n"
                 "pins what is offered now, so the fleet sees no change. Without a verb: show it.",
                 "", "  aloft server publish hello-aloft manual\n"
                     "  aloft server upload build/hello-aloft.bin     # stored, not offered\n"
                     "  aloft server rollout start hello-aloft 1.2.0 --auto-advance 90%\n"},
};

struct opts {
    const char *server, *token, *platform, *version, *stages, *max_failures, *auto_advance, *chip, *publish;
    bool frontend, json;
};

struct buf {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t n, void *userdata)
{
    struct buf *b = userdata;
    char *bigger = realloc(b->data, b->len + size * n + 1);
    if (!bigger)
        return 0;
    b->data = bigger;
    memcpy(b->data + b->len, ptr, size * n);
    b->len += size * n;
    b->data[b->len] = 0;
    return size * n;
}

/* One request to the server. body_file: upload it raw; json: POST it.
 * Returns the HTTP status (the reply in *out, parsed), or -1 with a message
 * printed when the server could not be reached. */
static long request(const struct opts *o, const char *path, const char *body_file, const char *json, cJSON **out)
{
    *out = NULL;
    char url[1200], auth[600];
    snprintf(url, sizeof url, "%s%s", o->server, path);
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", o->token);
    CURL *e = curl_easy_init();
    if (!e)
        return -1;
    struct buf b = {0};
    struct curl_slist *h = curl_slist_append(NULL, auth);
    FILE *f = NULL;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT, 10L);
    if (body_file) {
        struct stat st;
        if (!(f = fopen(body_file, "rb")) || fstat(fileno(f), &st) != 0) {
            fprintf(stderr, "aloft server: %s: %s\n", body_file, strerror(errno));
            if (f)
                fclose(f);
            curl_slist_free_all(h);
            curl_easy_cleanup(e);
            return -1;
        }
        h = curl_slist_append(h, "Content-Type: application/octet-stream");
        h = curl_slist_append(h, "Expect: 100-continue"); /* a refusal comes before the body is sent */
        curl_easy_setopt(e, CURLOPT_POST, 1L);
        curl_easy_setopt(e, CURLOPT_READDATA, f);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)st.st_size);
    } else if (json) {
        h = curl_slist_append(h, "Content-Type: application/json");
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, json);
    }
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    CURLcode rc = curl_easy_perform(e);
    long code = -1;
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
    else
        fprintf(stderr, "aloft server: %s: %s\n", url, curl_easy_strerror(rc));
    if (f)
        fclose(f);
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
    if (code > 0) {
        *out = b.data ? cJSON_Parse(b.data) : NULL;
        if (!*out) {
            fprintf(stderr, "aloft server: %s answered %ld without JSON: is it an aloftd?\n", url, code);
            code = -1;
        }
    }
    free(b.data);
    return code;
}

/* A key for the signing policy: 64 hex digits as given, or a PEM file's
 * public key digest. 0, or -1 with a message. */
static int key_digest_arg(const char *arg, char hex[65])
{
    size_t n = strspn(arg, "0123456789abcdefABCDEF");
    if (n == 64 && !arg[n]) {
        snprintf(hex, 65, "%s", arg);
        return 0;
    }
    char err[200];
    int scheme;
    uint8_t d[ALOFT_SIG_KEY_DIGEST_BYTES];
    EVP_PKEY *k = aloft_signing_load(arg, &scheme, err, sizeof err);
    if (!k || aloft_signing_key_digest(k, d)) {
        fprintf(stderr, "aloft server signing: %s (a KEY is 64 hex digits or a PEM key file)\n", err);
        EVP_PKEY_free(k);
        return -1;
    }
    EVP_PKEY_free(k);
    aloft_hex(d, sizeof d, hex);
    return 0;
}

static const char *str(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "-";
}

static double num(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* 2xx: 0; an error reply: its message, 1. */
static int check(long code, const cJSON *reply)
{
    if (code < 0)
        return 1;
    if (code >= 200 && code < 300)
        return 0;
    fprintf(stderr, "aloft server: %ld %s: %s\n", code, str(reply, "error"), str(reply, "message"));
    return 1;
}

/* A column as wide as its widest value (versions from ESP-IDF's git
 * describe run long) and at least min, so the table stays aligned. */
static int width(const cJSON *rows, const char *key, int min)
{
    const cJSON *r;
    cJSON_ArrayForEach(r, rows) if ((int)strlen(str(r, key)) > min) min = (int)strlen(str(r, key));
    return min;
}

static void print_platforms(const cJSON *reply)
{
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(reply, "platforms"), *p;
    int nw = width(all, "name", 24), vw = width(all, "current", 16);
    printf("%-*s %-9s %-*s %-8s %8s %8s\n", nw, "PLATFORM", "CHIP", vw, "CURRENT", "PINNED", "RELEASES", "DEVICES");
    cJSON_ArrayForEach(p, all)
        printf("%-*s %-9s %-*s %-8s %8.0f %8.0f\n", nw, str(p, "name"), str(p, "chip"), vw, str(p, "current"),
               cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, "pinned")) ? "yes" : "no", num(p, "releases"),
               num(p, "devices"));
}

/* A platform's settings, and what its devices are offered. */
static void print_platform(const cJSON *p)
{
    bool manual = !strcmp(str(p, "publish"), "manual");
    printf("platform %s (%s, %.0f firmware release%s, %.0f device%s)\n", str(p, "name"), str(p, "chip"),
           num(p, "releases"), num(p, "releases") == 1 ? "" : "s", num(p, "devices"), num(p, "devices") == 1 ? "" : "s");
    for (int k = 0; k < 2; k++) {
        const char *cur = str(p, k ? "current_frontend" : "current");
        bool pinned = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(p, k ? "pinned_frontend" : "pinned"));
        printf("  %-9s %s%s\n", k ? "frontend" : "firmware", strcmp(cur, "-") ? cur : "none offered",
               !pinned                                                             ? ""
               : !k && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "pin_holds")) ? " (pinned by an aborted rollout: "
                                                                                     "holds devices back, never downgrades)"
                                                                                   : " (pinned)");
    }
    printf("  publish   %s\n", manual ? "manual: an upload is offered once pinned or rolled out"
                                       : "auto: the newest upload is offered unless one is pinned");
    printf("  check-ins %s\n", cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(p, "checkins_settle"))
                                    ? "settle devices in rollouts (settle)"
                                    : "settle nothing: only signed reports count (report-only)");
}

static void print_releases(const cJSON *reply)
{
    printf("%s %s: current %s%s\n", str(reply, "platform"), str(reply, "kind"), str(reply, "current"),
           cJSON_IsString(cJSON_GetObjectItemCaseSensitive(reply, "pinned")) ? " (pinned)" : "");
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(reply, "releases"), *r;
    int vw = width(all, "version", 16);
    printf("  %-*s %10s  %-20s  %-17s  %s\n", vw, "VERSION", "SIZE", "UPLOADED", "SHA-256", "SIGNED BY");
    cJSON_ArrayForEach(r, all) {
        printf("%c %-*s %10.0f  %-20s  %.16s…  %.16s%s\n",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "current")) ? '*' : ' ', vw, str(r, "version"),
               num(r, "size"), str(r, "uploaded_at"), str(r, "sha256"), str(r, "signer"),
               cJSON_IsString(cJSON_GetObjectItemCaseSensitive(r, "signer")) ? "…" : "");
        const cJSON *d; /* the delta patches the server made to it */
        cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r, "deltas")) {
            /* the release it is from, else the image's SHA-256 (no longer a release) */
            bool named = cJSON_IsString(cJSON_GetObjectItemCaseSensitive(d, "base_version"));
            const char *from = named ? str(d, "base_version") : str(d, "base"), *more = named ? "" : "…";
            if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "worth")))
                printf("    delta from %.16s%s: %.0f bytes, %.1f %% of the image, %s\n", from, more, num(d, "size"),
                       num(d, "percent"), str(d, "url"));
            else
                printf("    delta from %.16s%s: not worth it (%.1f %% of the image): the image is sent\n", from, more,
                       num(d, "percent"));
        }
    }
}

static void print_devices(const cJSON *reply)
{
    const cJSON *all = cJSON_GetObjectItemCaseSensitive(reply, "devices"), *d;
    int pw = width(all, "platform", 20), vw = width(all, "version", 16);
    printf("%-17s %-*s %-*s %-15s %-20s %4s  %s\n", "MAC", pw, "PLATFORM", vw, "VERSION", "IP", "LAST SEEN", "LAST",
           "WHY");
    cJSON_ArrayForEach(d, all)
        printf("%-17s %-*s %-*s %-15s %-20s %4.0f  %s\n", str(d, "mac"), pw, str(d, "platform"), vw, str(d, "version"),
               str(d, "ip"), str(d, "last_seen"), num(d, "last_status"), str(d, "last_reason"));
}

/* A threshold of the server's: a count, or a string "5%". */
static void threshold_text(const cJSON *r, const char *key, char *out, size_t cap)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(r, key);
    if (cJSON_IsString(v))
        snprintf(out, cap, "%s", v->valuestring);
    else
        snprintf(out, cap, "%.0f", num(r, key));
}

static void print_rollout(const cJSON *r)
{
    char stages[80] = "";
    size_t k = 0;
    const cJSON *st;
    cJSON_ArrayForEach(st, cJSON_GetObjectItemCaseSensitive(r, "stages")) if (k < sizeof stages) k +=
        (size_t)snprintf(stages + k, sizeof stages - k, "%s%.0f", k ? "," : "", st->valuedouble);
    char maxf[24], autoa[24];
    threshold_text(r, "max_failures", maxf, sizeof maxf);
    threshold_text(r, "auto_advance", autoa, sizeof autoa);
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(r, "stage_counts");
    printf("rollout %.0f: %s %s, %s at %.0f%% (stages %s; others get %s)\n"
           "  offered %.0f, updated %.0f, failed %.0f (max %s)%s%s\n"
           "  this stage: offered %.0f, updated %.0f, failed %.0f; advances %s%s\n",
           num(r, "id"), str(r, "platform"), str(r, "version"), str(r, "status"), num(r, "percent"), stages,
           str(r, "previous"), num(r, "offered"), num(r, "successes"), num(r, "failures"), maxf,
           *str(r, "reason") && strcmp(str(r, "reason"), "-") ? "; " : "", strcmp(str(r, "reason"), "-") ? str(r, "reason") : "",
           num(sc, "offered"), num(sc, "succeeded"), num(sc, "failed"),
           cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "auto_advance")) ? "on command" : "by itself at ",
           cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(r, "auto_advance")) ? "" : autoa);
}

/* A count as a JSON number, anything else ("5%") as a string: the server checks. */
static void add_threshold(cJSON *body, const char *key, const char *arg)
{
    if (!arg)
        return;
    char *end;
    long v = strtol(arg, &end, 10);
    if (!*end && end != arg)
        cJSON_AddNumberToObject(body, key, (double)v);
    else
        cJSON_AddStringToObject(body, key, arg);
}

/* The usage line of an action, into buf. */
static const char *synopsis(enum action a, char *buf, size_t cap)
{
    snprintf(buf, cap, "usage: aloft server %s %s [--server URL] [--token T | --token-file F] [--json]\n",
             actions[a].name, actions[a].args);
    return buf;
}

static int usage_error(char *const argv[], enum action a, int ch)
{
    char syn[600];
    return aloft_usage_bad_option(argv[0], synopsis(a, syn, sizeof syn), ch, argv);
}

/* The words after the action (n of them) and the options: what is missing
 * or out of place, into why; false when they go together. */
static bool wrong_words(enum action a, const struct opts *o, int n, char *const w[], char *why, size_t cap)
{
    static const char *const first[] = {[UPLOAD] = "FILE", [PIN] = "PLATFORM and VERSION", [UNPIN] = "PLATFORM",
                                         [ROLLOUT] = "start, advance, pause, resume, abort or show",
                                         [WHITELIST] = "PLATFORM", [SIGNING] = "PLATFORM", [CREDENTIAL] = "MAC",
                                         [CHECKINS] = "PLATFORM", [PLATFORM] = "add or show",
                                         [PUBLISH] = "PLATFORM"};
    bool listing = a == WHITELIST || a == SIGNING, start = a == ROLLOUT && n && !strcmp(w[0], "start");
    int max = a == PIN || a == CHECKINS || a == PUBLISH || a == PLATFORM ? 2 : a == ROLLOUT ? 3 : listing ? 64 : 1;
    const char *verb = n >= 2 ? w[1] : "";
    if (!n && first[a])
        snprintf(why, cap, "missing %s", first[a]);
    else if (a == PIN && n == 1)
        snprintf(why, cap, "missing VERSION");
    else if (n > max)
        snprintf(why, cap, "unexpected argument '%s'", w[max]);
    else if ((o->platform || o->version) && a != UPLOAD)
        snprintf(why, cap, "--platform and --version go with upload");
    else if (o->frontend && (a == DEVICES || a == ROLLOUT || a == CREDENTIAL || a == CHECKINS || a == PLATFORM ||
                             a == PUBLISH || listing || (a == RELEASES && !n)))
        snprintf(why, cap, "--frontend goes with upload, pin, unpin and releases PLATFORM");
    else if (a == UPLOAD && o->frontend && !o->platform)
        snprintf(why, cap, "missing --platform P: a frontend is uploaded for a platform");
    else if (a == UPLOAD && !o->frontend && o->version)
        snprintf(why, cap, "--version labels a frontend (--frontend); a firmware's is in its app descriptor");
    else if ((o->stages || o->max_failures || o->auto_advance) && !start)
        snprintf(why, cap, "--stages, --max-failures and --auto-advance go with rollout start");
    else if (a == ROLLOUT && start && n < 3)
        snprintf(why, cap, "missing %s", n == 1 ? "PLATFORM and VERSION" : "VERSION");
    else if (a == ROLLOUT && !start && strcmp(w[0], "show") && strcmp(w[0], "advance") && strcmp(w[0], "pause") &&
             strcmp(w[0], "resume") && strcmp(w[0], "abort"))
        snprintf(why, cap, "unknown rollout command '%s' (start, advance, pause, resume, abort or show)", w[0]);
    else if (a == ROLLOUT && !start && n > 2)
        snprintf(why, cap, "unexpected argument '%s'", w[2]);
    else if (a == ROLLOUT && !start && strcmp(w[0], "show") && n < 2)
        snprintf(why, cap, "missing ID");
    else if (a == WHITELIST && n >= 2 && (!strcmp(verb, "on") || !strcmp(verb, "off")) && n > 2)
        snprintf(why, cap, "unexpected argument '%s'", w[2]);
    else if (listing && n >= 2 && strcmp(verb, "add") && strcmp(verb, "remove") &&
             (a == SIGNING || (strcmp(verb, "on") && strcmp(verb, "off"))))
        snprintf(why, cap, "unknown verb '%s' (%s)", verb, a == SIGNING ? "add or remove" : "on, off, add or remove");
    else if (a == CHECKINS && n == 2 && strcmp(verb, "settle") && strcmp(verb, "report-only"))
        snprintf(why, cap, "unknown verb '%s' (settle or report-only)", verb);
    else if (a == PUBLISH && n == 2 && strcmp(verb, "auto") && strcmp(verb, "manual"))
        snprintf(why, cap, "unknown verb '%s' (auto or manual)", verb);
    else if (a == PLATFORM && strcmp(w[0], "add") && strcmp(w[0], "show"))
        snprintf(why, cap, "unknown platform command '%s' (add or show)", w[0]);
    else if (a == PLATFORM && n < 2)
        snprintf(why, cap, "missing NAME");
    else if ((o->chip || o->publish) && !(a == PLATFORM && !strcmp(w[0], "add")))
        snprintf(why, cap, "--chip and --publish go with platform add");
    else if (a == PLATFORM && !strcmp(w[0], "add") && !o->chip)
        snprintf(why, cap, "missing --chip CHIP: the chip the platform's firmware is built for");
    else if (o->publish && strcmp(o->publish, "auto") && strcmp(o->publish, "manual"))
        snprintf(why, cap, "--publish %s: give auto or manual", o->publish);
    else if (listing && n == 2 && (!strcmp(verb, "add") || !strcmp(verb, "remove")))
        snprintf(why, cap, "missing %s", a == SIGNING ? "KEY" : "MAC");
    else
        return false;
    return true;
}

static int help(enum action a)
{
    char syn[600];
    printf("%s\n%s\n\n"
           "%s"
           "  --server URL       the aloftd (default $ALOFT_SERVER, else http://127.0.0.1:8080)\n"
           "  --token T          the admin token (default $ALOFT_TOKEN)\n"
           "  --token-file F     read the token from F (default $ALOFT_TOKEN_FILE); aloftd\n"
           "                     prints the token on its first start, or writes it to its\n"
           "                     --admin-token-file\n"
           "  --json             print the server's JSON reply (for scripts)\n"
           "\nexample:\n%s"
           "\nexit status: 0 done, 1 the server refused or could not be reached, 2 usage error\n",
           synopsis(a, syn, sizeof syn), actions[a].what, actions[a].options, actions[a].examples);
    return 0;
}

char *aloft_cmd_admin_token(const char *token, const char *file)
{
    if (!token && !file)
        token = getenv("ALOFT_TOKEN");
    if (!token && !file)
        file = getenv("ALOFT_TOKEN_FILE");
    if (token)
        return strdup(token);
    if (!file) {
        fprintf(stderr, "aloft server: no admin token: give --token, --token-file, ALOFT_TOKEN or ALOFT_TOKEN_FILE "
                        "(aloftd prints it on its first start)\n");
        return NULL;
    }
    uint8_t *text;
    size_t len;
    if (aloft_file_read(file, &text, &len) != 0) {
        fprintf(stderr, "aloft server: %s: %s\n", file, strerror(errno));
        return NULL;
    }
    while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
        text[--len] = 0;
    return (char *)text;
}

static int server(int argc, char **argv, enum action a)
{
    static const struct option lopts[] = {
        {"server", required_argument, NULL, 's'},     {"token", required_argument, NULL, 't'},
        {"token-file", required_argument, NULL, 'f'}, {"platform", required_argument, NULL, 'p'},
        {"version", required_argument, NULL, 'v'},    {"frontend", no_argument, NULL, 'F'},
        {"json", no_argument, NULL, 'j'},             {"help", no_argument, NULL, 'h'},
        {"stages", required_argument, NULL, 'S'},     {"max-failures", required_argument, NULL, 'M'},
        {"auto-advance", required_argument, NULL, 'A'}, {"chip", required_argument, NULL, 'C'},
        {"publish", required_argument, NULL, 'P'},    {NULL, 0, NULL, 0},
    };
    struct opts o = {0};
    const char *token = NULL, *token_file = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", lopts, NULL)) != -1) {
        switch (c) {
        case 's': o.server = optarg; break;
        case 't': token = optarg; break;
        case 'f': token_file = optarg; break;
        case 'p': o.platform = optarg; break;
        case 'v': o.version = optarg; break;
        case 'F': o.frontend = true; break;
        case 'j': o.json = true; break;
        case 'S': o.stages = optarg; break;
        case 'M': o.max_failures = optarg; break;
        case 'A': o.auto_advance = optarg; break;
        case 'C': o.chip = optarg; break;
        case 'P': o.publish = optarg; break;
        case 'h': return help(a);
        default: return usage_error(argv, a, c);
        }
    }
    int nargs = argc - optind;
    char why[300];
    if (wrong_words(a, &o, nargs, argv + optind, why, sizeof why)) {
        char syn[600];
        return aloft_usage_error(argv[0], synopsis(a, syn, sizeof syn), "%s", why);
    }
    const char *verb = nargs > 0 ? argv[optind] : "";
    bool start = a == ROLLOUT && !strcmp(verb, "start");
    if (!o.server)
        o.server = getenv("ALOFT_SERVER") && *getenv("ALOFT_SERVER") ? getenv("ALOFT_SERVER") : "http://127.0.0.1:8080";
    char *tok = aloft_cmd_admin_token(token, token_file);
    if (!tok)
        return 1;
    o.token = tok;

    char path[600];
    char *esc[2] = {NULL, NULL};
    CURL *e = curl_easy_init();
    if (!e) {
        free(tok);
        return 1;
    }
    for (int i = 0; i < nargs && i < 2; i++)
        esc[i] = curl_easy_escape(e, argv[optind + i], 0);
    const char *kind = o.frontend ? "frontend" : "firmware";
    long code = -1;
    cJSON *reply = NULL, *body = NULL;
    char *json = NULL;
    switch (a) {
    case UPLOAD: {
        char *p = o.platform ? curl_easy_escape(e, o.platform, 0) : NULL;
        char *v = o.version ? curl_easy_escape(e, o.version, 0) : NULL;
        snprintf(path, sizeof path, "/api/firmware%s%s%s%s%s%s", o.frontend || p ? "?" : "",
                 o.frontend ? "kind=frontend&" : "", p ? "platform=" : "", p ? p : "", v ? "&version=" : "", v ? v : "");
        curl_free(p);
        curl_free(v);
        code = request(&o, path, argv[optind], NULL, &reply);
        break;
    }
    case RELEASES:
        if (nargs)
            snprintf(path, sizeof path, "/api/platforms/%s/releases?kind=%s", esc[0], kind);
        code = request(&o, nargs ? path : "/api/platforms", NULL, NULL, &reply);
        break;
    case PIN:
    case UNPIN:
        body = cJSON_CreateObject();
        cJSON_AddStringToObject(body, "kind", kind);
        if (a == PIN)
            cJSON_AddStringToObject(body, "version", argv[optind + 1]);
        json = cJSON_PrintUnformatted(body);
        snprintf(path, sizeof path, "/api/platforms/%s/%s", esc[0], a == PIN ? "pin" : "unpin");
        code = request(&o, path, NULL, json, &reply);
        break;
    case DEVICES:
        snprintf(path, sizeof path, "/api/devices%s%s", nargs ? "?platform=" : "", nargs ? esc[0] : "");
        code = request(&o, path, NULL, NULL, &reply);
        break;
    case ROLLOUT:
        if (start) {
            char *p = curl_easy_escape(e, argv[optind + 1], 0);
            body = cJSON_CreateObject();
            cJSON_AddStringToObject(body, "version", argv[optind + 2]);
            if (o.stages) {
                cJSON *st = cJSON_AddArrayToObject(body, "stages");
                for (const char *q = o.stages; *q;) {
                    char *end;
                    long v = strtol(q, &end, 10);
                    if (end == q || (*end && *end != ',')) {
                        fprintf(stderr, "aloft server rollout: --stages %s: give percentages, e.g. 1,10,50,100\n",
                                o.stages);
                        curl_free(p);
                        code = -2;
                        break;
                    }
                    cJSON_AddItemToArray(st, cJSON_CreateNumber((double)v));
                    q = *end ? end + 1 : end;
                }
            }
            add_threshold(body, "max_failures", o.max_failures);
            add_threshold(body, "auto_advance", o.auto_advance);
            if (code == -2)
                break;
            json = cJSON_PrintUnformatted(body);
            snprintf(path, sizeof path, "/api/platforms/%s/rollouts", p);
            curl_free(p);
            code = request(&o, path, NULL, json, &reply);
        } else if (!strcmp(verb, "show")) {
            char *id = nargs > 1 ? curl_easy_escape(e, argv[optind + 1], 0) : NULL;
            snprintf(path, sizeof path, "/api/rollouts%s%s", id ? "/" : "", id ? id : "");
            curl_free(id);
            code = request(&o, path, NULL, NULL, &reply);
        } else {
            char *id = curl_easy_escape(e, argv[optind + 1], 0);
            snprintf(path, sizeof path, "/api/rollouts/%s/%s", id, verb);
            curl_free(id);
            code = request(&o, path, NULL, "{}", &reply);
        }
        break;
    case WHITELIST:
        snprintf(path, sizeof path, "/api/platforms/%s/whitelist", esc[0]);
        if (nargs >= 2) {
            const char *w = argv[optind + 1];
            body = cJSON_CreateObject();
            if (!strcmp(w, "on") || !strcmp(w, "off")) {
                cJSON_AddBoolToObject(body, "enabled", !strcmp(w, "on"));
            } else {
                cJSON *list = cJSON_AddArrayToObject(body, w);
                for (int i = 2; i < nargs; i++)
                    cJSON_AddItemToArray(list, cJSON_CreateString(argv[optind + i]));
            }
            json = cJSON_PrintUnformatted(body);
        }
        code = request(&o, path, NULL, json, &reply);
        break;
    case CREDENTIAL:
        snprintf(path, sizeof path, "/api/devices/%s/credential", esc[0]);
        code = request(&o, path, NULL, NULL, &reply);
        break;
    case CHECKINS:
        snprintf(path, sizeof path, "/api/platforms/%s/checkins", esc[0]);
        code = request(&o, path, NULL,
                       nargs < 2                              ? NULL
                       : !strcmp(argv[optind + 1], "settle") ? "{\"settle\":true}"
                                                              : "{\"settle\":false}",
                       &reply);
        break;
    case PUBLISH:
        snprintf(path, sizeof path, "/api/platforms/%s/publish", esc[0]);
        code = request(&o, path, NULL,
                       nargs < 2                            ? NULL
                       : !strcmp(argv[optind + 1], "manual") ? "{\"publish\":\"manual\"}"
                                                            : "{\"publish\":\"auto\"}",
                       &reply);
        break;
    case PLATFORM:
        if (!strcmp(verb, "add")) {
            body = cJSON_CreateObject();
            cJSON_AddStringToObject(body, "name", argv[optind + 1]);
            cJSON_AddStringToObject(body, "chip", o.chip);
            cJSON_AddStringToObject(body, "publish", o.publish ? o.publish : "auto");
            json = cJSON_PrintUnformatted(body);
            code = request(&o, "/api/platforms", NULL, json, &reply);
        } else {
            snprintf(path, sizeof path, "/api/platforms/%s", esc[1]);
            code = request(&o, path, NULL, NULL, &reply);
        }
        break;
    case SIGNING:
        snprintf(path, sizeof path, "/api/platforms/%s/signing", esc[0]);
        if (nargs >= 2) {
            body = cJSON_CreateObject();
            cJSON *list = cJSON_AddArrayToObject(body, argv[optind + 1]);
            for (int i = 2; i < nargs && code != -3; i++) {
                char hex[65];
                if (key_digest_arg(argv[optind + i], hex))
                    code = -3; /* bad input: nothing is sent */
                else
                    cJSON_AddItemToArray(list, cJSON_CreateString(hex));
            }
            json = cJSON_PrintUnformatted(body);
        }
        if (code != -3)
            code = request(&o, path, NULL, json, &reply);
        break;
    }
    if (code == -2 || code == -3) { /* a usage error or bad input found late */
        cJSON_Delete(body);
        for (int i = 0; i < 2; i++)
            curl_free(esc[i]);
        curl_easy_cleanup(e);
        free(tok);
        free(json);
        return code == -2 ? 2 : 1;
    }
    int status = check(code, reply);
    if (status == 0 && o.json) {
        char *text = cJSON_Print(reply);
        puts(text);
        free(text);
    } else if (status == 0) {
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(reply, "release");
        switch (a) {
        case UPLOAD:
            printf("%s %s %s %s: %.0f bytes, sha256 %s%s\n",
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "created")) ? "stored" : "already stored",
                   str(r, "platform"), str(r, "kind"), str(r, "version"), num(r, "size"), str(r, "sha256"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "current")) ? " (current)" : "");
            break;
        case RELEASES:
            if (nargs)
                print_releases(reply);
            else
                print_platforms(reply);
            break;
        case PIN:
        case UNPIN:
            printf("%s %s: current %s%s\n", str(reply, "platform"), str(reply, "kind"), str(reply, "current"),
                   a == PIN ? " (pinned)" : "");
            break;
        case DEVICES: print_devices(reply); break;
        case ROLLOUT:
            if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(reply, "rollouts"))) {
                const cJSON *ro;
                cJSON_ArrayForEach(ro, cJSON_GetObjectItemCaseSensitive(reply, "rollouts")) print_rollout(ro);
            } else {
                print_rollout(reply);
            }
            break;
        case WHITELIST: {
            const cJSON *macs = cJSON_GetObjectItemCaseSensitive(reply, "macs");
            printf("%s whitelist: %s, %d MAC%s\n", str(reply, "platform"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "enabled")) ? "on" : "off",
                   cJSON_GetArraySize(macs), cJSON_GetArraySize(macs) == 1 ? "" : "s");
            const cJSON *m;
            cJSON_ArrayForEach(m, macs) printf("  %s\n", cJSON_IsString(m) ? m->valuestring : "-");
            break;
        }
        case CREDENTIAL: printf("%s\n", str(reply, "credential")); break;
        case CHECKINS:
            printf("%s: check-ins %s\n", str(reply, "platform"),
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(reply, "settle"))
                       ? "settle devices in rollouts (settle)"
                       : "settle nothing: only signed reports count (report-only)");
            break;
        case PLATFORM:
        case PUBLISH: print_platform(reply); break;
        case SIGNING: {
            const cJSON *keys = cJSON_GetObjectItemCaseSensitive(reply, "keys"), *k;
            printf("%s signing: %s, %d key%s\n", str(reply, "platform"),
                   cJSON_GetArraySize(keys) ? "required" : "not required", cJSON_GetArraySize(keys),
                   cJSON_GetArraySize(keys) == 1 ? "" : "s");
            cJSON_ArrayForEach(k, keys) printf("  %s\n", cJSON_IsString(k) ? k->valuestring : "-");
            break;
        }
        }
    }
    cJSON_Delete(reply);
    cJSON_Delete(body);
    free(json);
    for (int i = 0; i < 2; i++)
        curl_free(esc[i]);
    curl_easy_cleanup(e);
    free(tok);
    return status;
}

int aloft_cmd_server_upload(int argc, char **argv)
{
    return server(argc, argv, UPLOAD);
}

int aloft_cmd_server_releases(int argc, char **argv)
{
    return server(argc, argv, RELEASES);
}

int aloft_cmd_server_pin(int argc, char **argv)
{
    return server(argc, argv, PIN);
}

int aloft_cmd_server_unpin(int argc, char **argv)
{
    return server(argc, argv, UNPIN);
}

int aloft_cmd_server_devices(int argc, char **argv)
{
    return server(argc, argv, DEVICES);
}

int aloft_cmd_server_rollout(int argc, char **argv)
{
    return server(argc, argv, ROLLOUT);
}

int aloft_cmd_server_whitelist(int argc, char **argv)
{
    return server(argc, argv, WHITELIST);
}

int aloft_cmd_server_signing(int argc, char **argv)
{
    return server(argc, argv, SIGNING);
}

int aloft_cmd_server_credential(int argc, char **argv)
{
    return server(argc, argv, CREDENTIAL);
}

int aloft_cmd_server_checkins(int argc, char **argv)
{
    return server(argc, argv, CHECKINS);
}

int aloft_cmd_server_platform(int argc, char **argv)
{
    return server(argc, argv, PLATFORM);
}

int aloft_cmd_server_publish(int argc, char **argv)
{
    return server(argc, argv, PUBLISH);
}
