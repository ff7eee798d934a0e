/* aloftd: the update server (DESIGN.md, issue 5). Settings come from flags,
 * then the environment, then a config file, then defaults; it serves until
 * SIGINT or SIGTERM. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aloft_version.h"
#include "aloftd.h"
#include "file.h"

static const char usage[] =
    "usage: aloftd [options]\n"
    "       aloftd --version\n"
    "\n"
    "The aloft update server: stores firmware and frontend releases, identified from\n"
    "their own app descriptors; tells devices whether to update (GET /update, the\n"
    "HTTPUpdate protocol); serves downloads with Range (GET /firmware/<sha256>.bin);\n"
    "records every device check-in; and has a JSON admin API under /api/.\n"
    "\n"
    "  --listen ADDR:PORT       where to serve HTTP (default 127.0.0.1:8080; port 0: any free\n"
    "                           port, printed on the `serving on` line)        env ALOFT_LISTEN\n"
    "  --data DIR               data directory: firmware/<sha256>.bin, tmp/ (default\n"
    "                           ./aloft-data)                                  env ALOFT_DATA\n"
    "  --db sqlite:PATH         the database (default sqlite:DIR/aloft.db)     env ALOFT_DB\n"
    "  --db postgres://USER[:PASSWORD]@HOST[:PORT]/DBNAME[?PARAMS]\n"
    "                           PostgreSQL (libpq's URL), which several aloftd may share\n"
    "                           (give them the same --data, e.g. a shared volume); while it\n"
    "                           is unreachable, calls that need it get 503 database_unavailable\n"
    "  --admin-token-file FILE  the admin token: read from FILE when it exists and accepted\n"
    "                           from then on; otherwise a new one is made and written\n"
    "                           there (mode 0600)                    env ALOFT_ADMIN_TOKEN_FILE\n"
    "  --max-upload SIZE        largest image accepted, e.g. 16M (default)  env ALOFT_MAX_UPLOAD\n"
    "  --threads N              HTTP worker threads (default 4)                env ALOFT_THREADS\n"
    "  --max-connections N      connections held open at once, from all clients (default\n"
    "                           10000; aloftd raises its open-file limit to the hard limit\n"
    "                           and holds no more than that allows)\n"
    "                                                                          env ALOFT_MAX_CONNECTIONS\n"
    "  --max-per-address N      connections held open at once from one client address\n"
    "                           (default 256; raise it when many devices share one address\n"
    "                           behind NAT)\n"
    "                                                                          env ALOFT_MAX_PER_ADDRESS\n"
    "  --head-timeout S         a request's whole head (request line and headers) must\n"
    "                           arrive within S seconds of the connection (or of the\n"
    "                           previous request), however slowly it trickles (default 10)\n"
    "                                                                          env ALOFT_HEAD_TIMEOUT\n"
    "  --idle-timeout S         a connection that sends nothing for S seconds, in a body\n"
    "                           or between requests, is closed (default 30)\n"
    "                                                                          env ALOFT_IDLE_TIMEOUT\n"
    "                           A limit that refuses connections is logged once per 10 s,\n"
    "                           with the counts.\n"
    "  --tls-cert FILE          serve HTTPS: the server's certificate (PEM; with its chain)\n"
    "                                                                          env ALOFT_TLS_CERT\n"
    "  --tls-key FILE           and its private key (PEM, unencrypted)         env ALOFT_TLS_KEY\n"
    "  --mqtt HOST:PORT         publish OTA triggers to this MQTT broker (connects in the\n"
    "                           background and reconnects; aloftd runs while it is down)\n"
    "                                                                          env ALOFT_MQTT\n"
    "  --mqtt-user USER         the broker's user name                    env ALOFT_MQTT_USER\n"
    "  --mqtt-password PASS     and password                          env ALOFT_MQTT_PASSWORD\n"
    "  --public-url URL         the base of download URLs in triggers (default\n"
    "                           http://<listen address>)                 env ALOFT_PUBLIC_URL\n"
    "  --ui DIR                 the built admin web UI, served at /admin/ (default: the\n"
    "                           installed one, <aloftd's directory>/../share/aloft/admin, or\n"
    "                           in a build, <aloftd's directory>/../admin; make www builds it)\n"
    "                                                                          env ALOFT_UI\n"
    "  --rollout-step S         a rollout's progress over time keeps each stage's counters\n"
    "                           once per S seconds in which they change (default 60)\n"
    "                                                                          env ALOFT_ROLLOUT_STEP\n"
    "  --rotate-admin-token     make a new admin token, refuse every earlier one, print the\n"
    "                           new one (and write it to admin-token-file) and exit; a\n"
    "                           running aloftd on the same database takes it at once\n"
    "  --config FILE            settings as `key = value` lines (keys: listen, data, db,\n"
    "                           admin-token-file, max-upload, threads, max-connections,\n"
    "                           max-per-address, head-timeout, idle-timeout, tls-cert,\n"
    "                           tls-key, mqtt, mqtt-user, mqtt-password, public-url, ui,\n"
    "                           rollout-step;\n"
    "                           # starts a comment line)                     env ALOFT_CONFIG\n"
    "\n"
    "A flag wins over the environment, which wins over the config file, which wins\n"
    "over the default; each setting that is not a default is logged with its source.\n"
    "\n"
    "On its first start aloftd makes an admin token, prints it once and stores only its\n"
    "SHA-256. Admin calls send it as `Authorization: Bearer <token>`:\n"
    "  POST /api/firmware                      the image as the raw body\n"
    "       ?kind=frontend&platform=P[&version=L]   a LittleFS frontend image\n"
    "  GET  /api/platforms, /api/platforms/P, /api/platforms/P/releases[?kind=frontend]\n"
    "  POST /api/platforms {\"name\": P, \"chip\": \"esp32c3\", \"publish\": \"manual\"}   a platform before its\n"
    "       first upload (else the first firmware upload creates it)\n"
    "  POST /api/platforms/P/pin {\"version\": V}   serve V (also to downgrade); /unpin\n"
    "  GET|POST /api/platforms/P/publish {\"publish\": \"manual\"}   uploads are offered only once\n"
    "       pinned or rolled out (default \"auto\": the newest upload is offered at once)\n"
    "  GET  /api/devices[?platform=P]              with each device's last outcome report\n"
    "  GET  /api/devices?platform=P&limit=50&offset=0|after=NEXT&sort=mac|version|ip|last_seen|status\n"
    "       &order=asc|desc [&version=V&state=offered|current|refused|updated|rolled_back|failed|\n"
    "       unreported&address=IP-PREFIX&seen_within=S&silent_for=S]   one page, the total, and\n"
    "       \"next\": give it as after= for the following page (found by index however deep)\n"
    "  GET  /api/devices/MAC                       the device, its last report, its last 32 events\n"
    "  GET  /api/platforms/P/versions              how many devices run each version\n"
    "  GET|POST /api/platforms/P/whitelist {\"enabled\": true, \"add\": [MAC], \"remove\": [MAC]}\n"
    "  GET|POST /api/platforms/P/signing {\"add\": [DIGEST], \"remove\": [DIGEST]}   with a key listed,\n"
    "       uploads must be signed by one (422 unsigned, bad_signature, untrusted_key)\n"
    "  POST /api/platforms/P/rollouts {\"version\": V, \"stages\": [1,10,50,100], \"max_failures\": \"5%\",\n"
    "       \"auto_advance\": \"90%\"}   the next stage opens by itself once 90% of the devices\n"
    "       offered in this one updated (reported it, or checked in on V); a device that checks\n"
    "       in again still on another version failed\n"
    "  GET  /api/rollouts[/ID]; POST /api/rollouts/ID/advance|pause|resume|abort\n"
    "  GET  /api/rollouts/ID/history               each stage's counters over time\n"
    "  POST /api/platforms/P/trigger {\"device\": MAC, \"version\": V}   (both optional) an MQTT\n"
    "       trigger to aloft/P/cmd or aloft/P/MAC/cmd; a rollout's start and advances trigger\n"
    "       the inventory devices of each new stage (--mqtt); a trigger carries the delta\n"
    "       patch from the image the device runs (delta_url, delta_base) once one is made\n"
    "  GET  /api/devices/MAC/credential            the secret a device signs its reports with\n"
    "  GET|POST /api/platforms/P/checkins {\"settle\": false}   check-ins, which no device signs,\n"
    "       no longer settle a device in a rollout: only signed reports do (default true)\n"
    "  GET  /metrics                               Prometheus text format\n"
    "Devices check in as Arduino's HTTPUpdate does, without a token:\n"
    "  GET  /update?dev=P&ver=V                  200 the release's image, 304 nothing to do; with\n"
    "       X-Aloft-Delta: SHA256 (of the device's image) a delta patch from it instead, once\n"
    "       one worth sending is made (in the background, from an earlier release of P)\n"
    "Devices report the outcome of an update, signed with their credential (a report that\n"
    "is not is refused with 401 and never counts):\n"
    "  POST /api/devices/MAC/report?auth=HMAC {\"version\": V, \"result\": \"updated|rolled_back|failed\",\n"
    "       \"target\": the release it is about, ...}   HMAC: HMAC-SHA256 of the body, hex\n"
    "Health checks, without a token (load balancers, service managers):\n"
    "  GET  /healthz                               200 while the process serves\n"
    "  GET  /readyz                                200 when the database answers and is migrated, else 503\n"
    "\n"
    "example:\n"
    "  aloftd --data /var/lib/aloft --listen 0.0.0.0:8080\n"
    "  curl -H \"Authorization: Bearer $TOKEN\" --data-binary @build/app.bin \\\n"
    "       -H 'Content-Type: application/octet-stream' http://127.0.0.1:8080/api/firmware\n"
    "  curl -H 'x-ESP32-STA-MAC: 24:0A:C4:00:00:01' 'http://127.0.0.1:8080/update?dev=app&ver=1.0.0'\n";

void aloftd_log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("aloftd: ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

static int make_dir(const char *path)
{
    if (mkdir(path, 0755) == 0 || errno == EEXIST)
        return 0;
    fprintf(stderr, "aloftd: cannot create %s: %s\n", path, strerror(errno));
    return -1;
}

/* Uploads and files taken from the database that a previous run left
 * unfinished (a crash, a kill) are dropped. Several aloftd sharing a
 * PostgreSQL database may share the data directory too: then only files
 * untouched for an hour go, never an upload another instance is receiving
 * (a stalled one times out after 30 s). */
static void clean_tmp(const char *dir, bool shared)
{
    DIR *dp = opendir(dir);
    if (!dp)
        return;
    struct dirent *e;
    char path[4400];
    time_t now = time(NULL);
    while ((e = readdir(dp))) {
        struct stat st;
        if (strncmp(e->d_name, "upload-", 7) && strncmp(e->d_name, "fetch-", 6))
            continue;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (!shared || (stat(path, &st) == 0 && now - st.st_mtime > 3600))
            unlink(path);
    }
    closedir(dp);
}

/* The database URL for the log: a password in it is not printed. */
static void shown_url(const char *url, char *out, size_t cap)
{
    const char *auth = strstr(url, "://");
    size_t n = auth ? strcspn(auth + 3, "/?") : 0; /* USER:PASSWORD@HOST:PORT */
    const char *at = auth ? memchr(auth + 3, '@', n) : NULL;
    const char *colon = at ? memchr(auth + 3, ':', (size_t)(at - auth - 3)) : NULL;
    if (colon)
        snprintf(out, cap, "%.*s:***%s", (int)(colon - url), url, at);
    else
        snprintf(out, cap, "%s", url);
}

/* Every setting, once: its flag (--KEY), its config file key (KEY; '_' may
 * stand for '-'), its environment variable and its default. Flags, the
 * environment and the config file all go through this table, in that order
 * of precedence. */
enum { S_LISTEN, S_DATA, S_DB, S_TOKEN_FILE, S_MAX_UPLOAD, S_THREADS, S_MAX_CONNECTIONS, S_MAX_PER_ADDRESS,
       S_HEAD_TIMEOUT, S_IDLE_TIMEOUT, S_TLS_CERT, S_TLS_KEY, S_MQTT, S_MQTT_USER,
       S_MQTT_PASSWORD, S_PUBLIC_URL, S_UI, S_ROLLOUT_STEP, S_COUNT };

static struct setting {
    const char *key, *env, *fallback;
    const char *value;  /* the winner, NULL: unset */
    char source[300];   /* where it came from, for the log */
    char *from_file;    /* the config file's value (malloc'd) */
    unsigned line;
} settings[S_COUNT] = {
    [S_LISTEN] = {"listen", "ALOFT_LISTEN", "127.0.0.1:8080"},
    [S_DATA] = {"data", "ALOFT_DATA", "./aloft-data"},
    [S_DB] = {"db", "ALOFT_DB", NULL}, /* default: sqlite:<data>/aloft.db */
    [S_TOKEN_FILE] = {"admin-token-file", "ALOFT_ADMIN_TOKEN_FILE", NULL},
    [S_MAX_UPLOAD] = {"max-upload", "ALOFT_MAX_UPLOAD", "16M"},
    [S_THREADS] = {"threads", "ALOFT_THREADS", "4"},
    [S_MAX_CONNECTIONS] = {"max-connections", "ALOFT_MAX_CONNECTIONS", "10000"},
    [S_MAX_PER_ADDRESS] = {"max-per-address", "ALOFT_MAX_PER_ADDRESS", "256"},
    [S_HEAD_TIMEOUT] = {"head-timeout", "ALOFT_HEAD_TIMEOUT", "10"},
    [S_IDLE_TIMEOUT] = {"idle-timeout", "ALOFT_IDLE_TIMEOUT", "30"},
    [S_TLS_CERT] = {"tls-cert", "ALOFT_TLS_CERT", NULL},
    [S_TLS_KEY] = {"tls-key", "ALOFT_TLS_KEY", NULL},
    [S_MQTT] = {"mqtt", "ALOFT_MQTT", NULL},
    [S_MQTT_USER] = {"mqtt-user", "ALOFT_MQTT_USER", NULL},
    [S_MQTT_PASSWORD] = {"mqtt-password", "ALOFT_MQTT_PASSWORD", NULL},
    [S_PUBLIC_URL] = {"public-url", "ALOFT_PUBLIC_URL", NULL},
    [S_UI] = {"ui", "ALOFT_UI", NULL}, /* default: aloftd_ui_default */
    [S_ROLLOUT_STEP] = {"rollout-step", "ALOFT_ROLLOUT_STEP", "60"},
};

static struct setting *setting_named(const char *key, size_t len)
{
    for (int i = 0; i < S_COUNT; i++) {
        const char *k = settings[i].key;
        if (strlen(k) != len)
            continue;
        size_t j = 0;
        while (j < len && (key[j] == k[j] || (key[j] == '_' && k[j] == '-')))
            j++;
        if (j == len)
            return &settings[i];
    }
    return NULL;
}

/* The config file: `key = value` lines; blank lines and lines starting
 * with # are skipped; the value may be in double quotes. Returns 0, or -1
 * with the reason on standard error. */
static int read_config(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "aloftd: config file %s: %s\n", path, strerror(errno));
        return -1;
    }
    char line[4200];
    unsigned n = 0;
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        n++;
        size_t len = strlen(line);
        if (len == sizeof line - 1 && line[len - 1] != '\n') {
            fprintf(stderr, "aloftd: %s:%u: the line is too long\n", path, n);
            rc = -1;
            break;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
            line[--len] = 0;
        char *p = line;
        while (*p == ' ' || *p == '\t')
            p++;
        if (!*p || *p == '#')
            continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            fprintf(stderr, "aloftd: %s:%u: expected `key = value`, got '%s'\n", path, n, p);
            rc = -1;
            break;
        }
        char *kend = eq;
        while (kend > p && (kend[-1] == ' ' || kend[-1] == '\t'))
            kend--;
        char *v = eq + 1;
        while (*v == ' ' || *v == '\t')
            v++;
        size_t vlen = strlen(v);
        if (vlen >= 2 && v[0] == '"' && v[vlen - 1] == '"') {
            v[vlen - 1] = 0;
            v++;
        }
        struct setting *s = setting_named(p, (size_t)(kend - p));
        if (!s) {
            fprintf(stderr, "aloftd: %s:%u: unknown setting '%.*s' (known:", path, n, (int)(kend - p), p);
            for (int i = 0; i < S_COUNT; i++)
                fprintf(stderr, " %s", settings[i].key);
            fputs(")\n", stderr);
            rc = -1;
        } else if (s->from_file) {
            fprintf(stderr, "aloftd: %s:%u: %s is already set on line %u\n", path, n, s->key, s->line);
            rc = -1;
        } else if (!(s->from_file = strdup(v))) {
            rc = -1;
        } else {
            s->line = n;
        }
    }
    if (ferror(f)) {
        fprintf(stderr, "aloftd: config file %s: %s\n", path, strerror(errno));
        rc = -1;
    }
    fclose(f);
    return rc;
}

/* Flags are set already; then the environment, the config file, defaults. */
static void resolve(const char *config)
{
    for (int i = 0; i < S_COUNT; i++) {
        struct setting *s = &settings[i];
        const char *env = getenv(s->env);
        if (s->value)
            continue;
        if (env && *env) {
            s->value = env;
            snprintf(s->source, sizeof s->source, "environment %s", s->env);
        } else if (s->from_file) {
            s->value = s->from_file;
            snprintf(s->source, sizeof s->source, "config %s:%u", config, s->line);
        } else {
            s->value = s->fallback;
        }
    }
}

/* A setting's value is wrong: say which, where it came from, and what to give. */
static int bad_setting(int i, const char *hint)
{
    fprintf(stderr, "aloftd: %s '%s'%s%s%s: %s\n", settings[i].key, settings[i].value, settings[i].source[0] ? " (" : "",
            settings[i].source, settings[i].source[0] ? ")" : "", hint);
    return 2;
}

/* A whole number in [lo, hi]: setting i's value into *out; false if it is not one. */
static bool number_setting(int i, long lo, long hi, unsigned *out)
{
    const char *v = settings[i].value;
    char *end;
    long n = strtol(v, &end, 10);
    if (*end || end == v || n < lo || n > hi)
        return false;
    *out = (unsigned)n;
    return true;
}

int main(int argc, char **argv)
{
    /* --KEY VALUE for every setting (getopt's val: 256 + its index), and --config */
    enum { OPT_CONFIG = 256 + S_COUNT, OPT_VERSION, OPT_ROTATE };
    struct option opts[S_COUNT + 5];
    for (int i = 0; i < S_COUNT; i++)
        opts[i] = (struct option){settings[i].key, required_argument, NULL, 256 + i};
    opts[S_COUNT] = (struct option){"config", required_argument, NULL, OPT_CONFIG};
    opts[S_COUNT + 1] = (struct option){"help", no_argument, NULL, 'h'};
    opts[S_COUNT + 2] = (struct option){"version", no_argument, NULL, OPT_VERSION};
    opts[S_COUNT + 3] = (struct option){"rotate-admin-token", no_argument, NULL, OPT_ROTATE};
    opts[S_COUNT + 4] = (struct option){NULL, 0, NULL, 0};
    const char *config = NULL;
    bool rotate = false;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (o >= 256 && o < 256 + S_COUNT) {
            settings[o - 256].value = optarg;
            snprintf(settings[o - 256].source, sizeof settings[o - 256].source, "flag --%s", settings[o - 256].key);
        } else if (o == OPT_CONFIG) {
            config = optarg;
        } else if (o == 'h') {
            fputs(usage, stdout);
            return 0;
        } else if (o == OPT_ROTATE) {
            rotate = true;
        } else if (o == OPT_VERSION) {
            printf("aloftd %s\n", ALOFT_VERSION);
            return 0;
        } else {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aloftd: unexpected argument '%s'\n\n%s", argv[optind], usage);
        return 2;
    }
    if (!config && getenv("ALOFT_CONFIG") && *getenv("ALOFT_CONFIG"))
        config = getenv("ALOFT_CONFIG");
    if (config && read_config(config))
        return 2;
    resolve(config);

    static struct aloftd d;
    d.listen = settings[S_LISTEN].value;
    d.data = settings[S_DATA].value;
    d.token_file = settings[S_TOKEN_FILE].value;
    d.tls_cert = settings[S_TLS_CERT].value;
    d.tls_key = settings[S_TLS_KEY].value;
    d.mqtt = settings[S_MQTT].value;
    d.mqtt_user = settings[S_MQTT_USER].value;
    d.mqtt_password = settings[S_MQTT_PASSWORD].value;
    d.public_url = settings[S_PUBLIC_URL].value;
    if (d.mqtt_password && !d.mqtt_user)
        return bad_setting(S_MQTT_PASSWORD, "give mqtt-user too");
    if (d.public_url && strncmp(d.public_url, "http://", 7) && strncmp(d.public_url, "https://", 8))
        return bad_setting(S_PUBLIC_URL, "give a URL such as https://updates.example.com");
    const char *size = settings[S_MAX_UPLOAD].value;
    uint32_t max;
    if (aloft_parse_size(size, &max) || max == 0)
        return bad_setting(S_MAX_UPLOAD, "give a size such as 16M");
    d.max_upload = max;
    if (!number_setting(S_THREADS, 1, 256, &d.threads))
        return bad_setting(S_THREADS, "give 1 to 256");
    if (!number_setting(S_MAX_CONNECTIONS, 1, 1000000, &d.max_connections))
        return bad_setting(S_MAX_CONNECTIONS, "give 1 to 1000000");
    if (!number_setting(S_MAX_PER_ADDRESS, 1, 1000000, &d.max_per_address))
        return bad_setting(S_MAX_PER_ADDRESS, "give 1 to 1000000");
    if (!number_setting(S_HEAD_TIMEOUT, 1, 3600, &d.head_timeout_s))
        return bad_setting(S_HEAD_TIMEOUT, "give seconds, 1 to 3600");
    if (!number_setting(S_IDLE_TIMEOUT, 1, 3600, &d.idle_timeout_s))
        return bad_setting(S_IDLE_TIMEOUT, "give seconds, 1 to 3600");
    unsigned rollout_step;
    if (!number_setting(S_ROLLOUT_STEP, 1, 86400, &rollout_step))
        return bad_setting(S_ROLLOUT_STEP, "give seconds, 1 to 86400");
    if (!d.tls_cert != !d.tls_key)
        return bad_setting(d.tls_cert ? S_TLS_CERT : S_TLS_KEY, "HTTPS needs both tls-cert and tls-key");
    char default_db[4200];
    snprintf(default_db, sizeof default_db, "sqlite:%s/aloft.db", d.data);
    d.db = settings[S_DB].value ? settings[S_DB].value : default_db;
    static char default_ui[4096];
    aloftd_ui_default(default_ui, sizeof default_ui);
    d.ui = settings[S_UI].value ? settings[S_UI].value : default_ui;
    for (int i = 0; i < S_COUNT; i++) { /* what is not a default, and why */
        char shown[4300];
        if (!settings[i].source[0])
            continue;
        if (i == S_MQTT_PASSWORD)
            snprintf(shown, sizeof shown, "***");
        else
            shown_url(settings[i].value, shown, sizeof shown);
        aloftd_log("setting %s = %s (%s)", settings[i].key, shown, settings[i].source);
    }
    snprintf(d.firmware_dir, sizeof d.firmware_dir, "%s/firmware", d.data);
    snprintf(d.tmp_dir, sizeof d.tmp_dir, "%s/tmp", d.data);
    if (make_dir(d.data) || make_dir(d.firmware_dir) || make_dir(d.tmp_dir))
        return 1;
    if (!rotate) /* a running aloftd may be receiving an upload there */
        clean_tmp(d.tmp_dir, strncmp(d.db, "sqlite:", 7) != 0);

    char err[600];
    if (aloft_store_open(&d.store, d.db, err, sizeof err)) {
        fprintf(stderr, "aloftd: %s\n", err);
        return 1;
    }
    aloft_store_rollout_history_step(d.store, rollout_step);
    int schema = 0;
    aloft_store_schema_version(d.store, &schema);
    char shown[4300];
    shown_url(d.db, shown, sizeof shown);
    aloftd_log("database %s (schema %d), files in %s", shown, schema, d.firmware_dir);
    if (rotate) {
        int rc = aloftd_token_rotate(&d);
        aloft_store_close(d.store);
        return rc;
    }
    if (aloftd_token_setup(&d) || aloftd_credential_setup(&d) || aloftd_files_share_all(&d)) {
        aloft_store_close(d.store);
        return 1;
    }

    /* Signals are taken by sigwait here; the server's threads inherit the mask. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    aloftd_deltas_start(&d); /* without it devices get whole images */
    aloftd_ui_log(&d); /* before `serving on`, which tests and scripts wait for */
    if (aloftd_http_start(&d)) {
        aloftd_deltas_stop();
        aloft_store_close(d.store);
        return 1;
    }
    if (aloftd_mqtt_start(&d)) {
        aloftd_mqtt_stop();
        aloftd_http_stop(&d);
        aloftd_deltas_stop();
        aloft_store_close(d.store);
        return 2;
    }
    int sig;
    sigwait(&stop, &sig);
    aloftd_log("stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    aloftd_http_stop(&d);
    aloftd_mqtt_stop();
    aloftd_deltas_stop();
    aloft_store_close(d.store);
    return 0;
}
