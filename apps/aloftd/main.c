/* aloftd: the update server (DESIGN.md, issue 5). Settings come from flags,
 * then the environment, then defaults; it serves until SIGINT or SIGTERM. */
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

#include "aloftd.h"
#include "file.h"

static const char usage[] =
    "usage: aloftd [options]\n"
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
    "  --threads N              HTTP worker threads (default 4)\n"
    "\n"
    "On its first start aloftd makes an admin token, prints it once and stores only its\n"
    "SHA-256. Admin calls send it as `Authorization: Bearer <token>`:\n"
    "  POST /api/firmware                      the image as the raw body\n"
    "       ?kind=frontend&platform=P[&version=L]   a LittleFS frontend image\n"
    "  GET  /api/platforms, /api/platforms/P, /api/platforms/P/releases[?kind=frontend]\n"
    "  POST /api/platforms/P/pin {\"version\": V}   serve V (also to downgrade); /unpin\n"
    "  GET  /api/devices[?platform=P]\n"
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

/* Uploads a previous run left unfinished (a crash, a kill) are dropped.
 * Several aloftd sharing a PostgreSQL database share the data directory
 * too: then only files untouched for an hour go, never an upload another
 * instance is receiving (a stalled one times out after 30 s). */
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
        if (strncmp(e->d_name, "upload-", 7))
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

static const char *setting(const char *flag, const char *env, const char *fallback)
{
    if (flag)
        return flag;
    const char *v = getenv(env);
    return v && *v ? v : fallback;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"listen", required_argument, NULL, 'l'},     {"data", required_argument, NULL, 'd'},
        {"db", required_argument, NULL, 'b'},         {"admin-token-file", required_argument, NULL, 't'},
        {"max-upload", required_argument, NULL, 'm'}, {"threads", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    const char *listen = NULL, *data = NULL, *db = NULL, *token_file = NULL, *max_upload = NULL, *threads = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (o) {
        case 'l': listen = optarg; break;
        case 'd': data = optarg; break;
        case 'b': db = optarg; break;
        case 't': token_file = optarg; break;
        case 'm': max_upload = optarg; break;
        case 'n': threads = optarg; break;
        case 'h': fputs(usage, stdout); return 0;
        default: fputs(usage, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aloftd: unexpected argument '%s'\n\n%s", argv[optind], usage);
        return 2;
    }

    static struct aloftd d;
    d.listen = setting(listen, "ALOFT_LISTEN", "127.0.0.1:8080");
    d.data = setting(data, "ALOFT_DATA", "./aloft-data");
    d.token_file = setting(token_file, "ALOFT_ADMIN_TOKEN_FILE", NULL);
    const char *size = setting(max_upload, "ALOFT_MAX_UPLOAD", "16M");
    uint32_t max;
    if (aloft_parse_size(size, &max) || max == 0) {
        fprintf(stderr, "aloftd: --max-upload %s: give a size such as 16M\n", size);
        return 2;
    }
    d.max_upload = max;
    char *end;
    long n = threads ? strtol(threads, &end, 10) : 4;
    if (threads && (*end || n < 1 || n > 256)) {
        fprintf(stderr, "aloftd: --threads %s: give 1 to 256\n", threads);
        return 2;
    }
    d.threads = (unsigned)n;
    char default_db[4200];
    snprintf(default_db, sizeof default_db, "sqlite:%s/aloft.db", d.data);
    d.db = setting(db, "ALOFT_DB", default_db);
    snprintf(d.firmware_dir, sizeof d.firmware_dir, "%s/firmware", d.data);
    snprintf(d.tmp_dir, sizeof d.tmp_dir, "%s/tmp", d.data);
    if (make_dir(d.data) || make_dir(d.firmware_dir) || make_dir(d.tmp_dir))
        return 1;
    clean_tmp(d.tmp_dir, strncmp(d.db, "sqlite:", 7) != 0);

    char err[600];
    if (aloft_store_open(&d.store, d.db, err, sizeof err)) {
        fprintf(stderr, "aloftd: %s\n", err);
        return 1;
    }
    int schema = 0;
    aloft_store_schema_version(d.store, &schema);
    char shown[4300];
    shown_url(d.db, shown, sizeof shown);
    aloftd_log("database %s (schema %d), files in %s", shown, schema, d.firmware_dir);
    if (aloftd_token_setup(&d)) {
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
    if (aloftd_http_start(&d)) {
        aloft_store_close(d.store);
        return 1;
    }
    int sig;
    sigwait(&stop, &sig);
    aloftd_log("stopping (%s)", sig == SIGINT ? "SIGINT" : "SIGTERM");
    aloftd_http_stop(&d);
    aloft_store_close(d.store);
    return 0;
}
