/* aloftd end-to-end tests: the server's process and its HTTP calls, and
 * the PostgreSQL server the suite runs on with ALOFT_TEST_DB=postgres. */
#define _XOPEN_SOURCE 700 /* nftw */
#include "aloftd_harness.h"

#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <grp.h>
#include <libpq-fe.h>
#include <openssl/hmac.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "file.h"

#define MAX_SERVERS 16

static struct aloftd_proc *servers[MAX_SERVERS];

static void print_tail(const struct aloftd_proc *s, const char *why);

static void stop_all(void)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i])
            aloftd_stop(servers[i]);
}

int aloftd_teardown(void **state)
{
    int rc = 0;
    for (int i = 0; i < MAX_SERVERS; i++) {
        struct aloftd_proc *s = servers[i];
        if (s && aloftd_stop(s) != 0) { /* a crash, a sanitizer report or a hang on SIGTERM */
            print_tail(s, "did not stop cleanly");
            rc = -1;
        }
    }
    e2e_teardown(state);
    return rc;
}

void aloftd_init(struct aloftd_proc *s, const char *name)
{
    static bool registered;
    if (!registered) {
        atexit(stop_all);
        registered = true;
    }
    memset(s, 0, sizeof *s);
    snprintf(s->data, sizeof s->data, "%s/%s", e2e_dir(), name);
    snprintf(s->log, sizeof s->log, "%s/%s.log", e2e_dir(), name);
    if (aloftd_on_pg())
        aloftd_pg_create(name, s->db, sizeof s->db);
}

void aloftd_https_url(struct aloftd_proc *s)
{
    char *log = aloftd_log_read(s);
    const char *u = NULL;
    for (const char *p = log; (p = strstr(p, "serving on https://")); p++)
        u = p + strlen("serving on ");
    assert_non_null(u);
    snprintf(s->url, sizeof s->url, "%.*s", (int)strcspn(u + 8, "/\n") + 8, u);
    free(log);
}

char *aloftd_log_read(const struct aloftd_proc *s)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (aloft_file_read(s->log, &data, &len) != 0) {
        data = NULL;
        len = 0;
    }
    char *text = realloc(data, len + 1);
    assert_non_null(text);
    text[len] = 0;
    return text;
}

static unsigned count(const char *text, const char *needle)
{
    unsigned n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

static void print_tail(const struct aloftd_proc *s, const char *why)
{
    char *log = aloftd_log_read(s);
    size_t len = strlen(log);
    fprintf(stderr, "aloftd (%s): %s; the end of %s:\n%s\n", s->data, why, s->log, log + (len > 3000 ? len - 3000 : 0));
    free(log);
}

static bool exited(struct aloftd_proc *s, int *status)
{
    if (s->pid <= 0)
        return true;
    if (waitpid(s->pid, status, WNOHANG) == s->pid) {
        s->pid = 0;
        return true;
    }
    return false;
}

static void forget(const struct aloftd_proc *s)
{
    for (int i = 0; i < MAX_SERVERS; i++)
        if (servers[i] == s)
            servers[i] = NULL;
}

/* From this start's output (from): the URL of its `serving on
 * http://ADDR:PORT/` line, and the admin token when it printed one. */
static void read_start(struct aloftd_proc *s, const char *from)
{
    const char *u = strstr(from, "serving on http://");
    if (u) {
        u += strlen("serving on ");
        size_t n = 7 + strcspn(u + 7, "/\n");
        snprintf(s->url, sizeof s->url, "%.*s", (int)n, u);
    }
    const char *tok = strstr(from, "admin token (");
    const char *colon = tok ? strstr(tok, "): ") : NULL;
    if (colon)
        sscanf(colon + 3, "%127s", s->token);
    snprintf(s->auth, sizeof s->auth, "Authorization: Bearer %s", s->token);
}

void aloftd_spawn(struct aloftd_proc *s, const char *const args[])
{
    assert_int_equal(s->pid, 0);
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/aloftd", ALOFT_BIN);
    const char *argv[48] = {exe, "--data", s->data, "--listen", ALOFTD_TEST_ADDR ":0", "--threads", "2"};
    size_t k = 7;
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(k < 47);
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    char *before = aloftd_log_read(s);
    s->starts = count(before, "serving on ");
    free(before);

    /* this server's database, unless the test gave ALOFT_DB itself */
    bool set_db = s->db[0] && !getenv("ALOFT_DB");
    if (set_db)
        setenv("ALOFT_DB", s->db, 1);
    pid_t pid = e2e_spawn(exe, argv, s->log, O_APPEND, true);
    if (set_db)
        unsetenv("ALOFT_DB");
    s->pid = pid;
    int slot = -1;
    for (int i = 0; i < MAX_SERVERS && slot < 0; i++)
        if (!servers[i] || servers[i] == s)
            slot = i;
    assert_true(slot >= 0);
    servers[slot] = s;
}

int aloftd_wait_serving(struct aloftd_proc *s)
{
    uint64_t end = e2e_now_ms() + ALOFTD_START_TIMEOUT_MS;
    for (;;) {
        char *log = aloftd_log_read(s);
        size_t len = strlen(log);
        /* only a whole line counts: the port is complete */
        bool up = count(log, "serving on ") > s->starts && len && log[len - 1] == '\n';
        if (up) {
            const char *from = log; /* past the earlier starts' lines */
            for (unsigned i = 0; i < s->starts; i++)
                from = strchr(strstr(from, "serving on "), '\n') + 1;
            read_start(s, from);
            s->starts++;
            free(log);
            return 0;
        }
        free(log);
        int status;
        if (exited(s, &status)) {
            forget(s);
            print_tail(s, "exited before serving");
            return -1;
        }
        if (e2e_now_ms() > end) {
            print_tail(s, "did not serve in time");
            aloftd_stop(s);
            return -1;
        }
        e2e_sleep_ms(5);
    }
}

int aloftd_start(struct aloftd_proc *s, const char *const args[])
{
    aloftd_spawn(s, args);
    return aloftd_wait_serving(s);
}

int aloftd_stop(struct aloftd_proc *s)
{
    if (s->pid <= 0) {
        s->pid = 0;
        forget(s);
        return 0;
    }
    kill(s->pid, SIGTERM);
    uint64_t end = e2e_now_ms() + 3000;
    int status = 0, rc = -1;
    for (;;) {
        if (exited(s, &status)) {
            rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            break;
        }
        if (e2e_now_ms() > end) {
            kill(s->pid, SIGKILL);
            waitpid(s->pid, NULL, 0);
            s->pid = 0;
            break;
        }
        e2e_sleep_ms(5);
    }
    forget(s);
    return rc;
}

int aloftd_get(struct aloftd_proc *s, struct e2e_http *r, const char *path, const char *const args[])
{
    char url[600];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    const char *argv[48];
    size_t k = 0;
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(k < 46);
        argv[k++] = args[i];
    }
    argv[k++] = url;
    argv[k] = NULL;
    return e2e_curl(r, argv);
}

struct grow {
    char *p;
    size_t n;
};

static size_t grow(char *data, size_t size, size_t n, void *ctx)
{
    struct grow *g = ctx;
    char *bigger = realloc(g->p, g->n + size * n + 1);
    assert_non_null(bigger);
    memcpy(bigger + g->n, data, size * n);
    g->n += size * n;
    bigger[g->n] = 0;
    g->p = bigger;
    return size * n;
}

int aloftd_fetch(struct aloftd_proc *s, struct e2e_http *r, const char *path, const char *const headers[],
                 const char *body)
{
    static bool ready;
    if (!ready)
        ready = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
    char url[600], agent[64];
    snprintf(url, sizeof url, "%s%s", s->url, path);
    snprintf(agent, sizeof agent, "curl/%s", curl_version_info(CURLVERSION_NOW)->version);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    struct curl_slist *hs = NULL;
    for (size_t i = 0; headers && headers[i]; i++)
        hs = curl_slist_append(hs, headers[i]);
    struct grow b = {calloc(1, 1), 0}, hd = {calloc(1, 1), 0};
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, grow);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, grow);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, &hd);
    if (body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
    long code = 0;
    CURLcode rc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_cleanup(h);
    curl_slist_free_all(hs);
    struct e2e_http tmp = {(int)code, (int)rc, b.p, b.n, hd.p};
    if (r)
        *r = tmp;
    else
        e2e_http_free(&tmp);
    return (int)code;
}

int aloftd_admin_get(struct aloftd_proc *s, struct e2e_http *r, const char *path)
{
    const char *args[] = {"-H", s->auth, NULL};
    return aloftd_get(s, r, path, args);
}

int aloftd_admin_post(struct aloftd_proc *s, struct e2e_http *r, const char *path, const char *json)
{
    const char *args[] = {"-H", s->auth, "-H", "Content-Type: application/json", "--data-binary", json, NULL};
    return aloftd_get(s, r, path, args);
}

int aloftd_upload(struct aloftd_proc *s, struct e2e_http *r, const char *file, const char *query,
                  const char *const extra[])
{
    char data[400], path[300];
    snprintf(data, sizeof data, "@%s", file);
    snprintf(path, sizeof path, "/api/firmware%s", query ? query : "");
    const char *args[48] = {"-H", s->auth, "-H", "Content-Type: application/octet-stream", "--data-binary", data};
    size_t k = 6;
    for (size_t i = 0; extra && extra[i]; i++) {
        assert_true(k < 46);
        args[k++] = extra[i];
    }
    args[k] = NULL;
    return aloftd_get(s, r, path, args);
}

cJSON *aloftd_json(struct aloftd_proc *s, const char *path)
{
    struct e2e_http r;
    int code = aloftd_admin_get(s, &r, path);
    cJSON *j = code == 200 ? cJSON_Parse(r.body) : NULL;
    if (!j)
        fprintf(stderr, "aloftd: GET %s: status %d, body '%s'\n", path, code, r.body);
    e2e_http_free(&r);
    assert_non_null(j);
    return j;
}

void aloftd_credential(struct aloftd_proc *s, const char *ca, const char *mac, char out[65])
{
    char path[80];
    snprintf(path, sizeof path, "/api/devices/%.40s/credential", mac);
    struct e2e_http h;
    const char *args[] = {"-H", s->auth, ca ? "--cacert" : NULL, ca, NULL};
    assert_int_equal(aloftd_get(s, &h, path, args), 200);
    cJSON *j = cJSON_Parse(h.body);
    snprintf(out, 65, "%s", e2e_jstr(j, "credential"));
    assert_int_equal(strlen(out), 64);
    cJSON_Delete(j);
    e2e_http_free(&h);
}

void aloftd_report_auth(struct aloftd_proc *s, const char *mac, const char *body, char out[65])
{
    char cred[65];
    uint8_t h[32];
    aloftd_credential(s, NULL, mac, cred);
    HMAC(EVP_sha256(), cred, 64, (const uint8_t *)body, strlen(body), h, NULL);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", h[i]);
}

const char *aloftd_header_value(const struct e2e_http *r, const char *name)
{
    static char value[512];
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t n = strcspn(v, "\r\n");
            snprintf(value, sizeof value, "%.*s", (int)n, v);
            return value;
        }
    }
    return NULL;
}

unsigned aloftd_count_files(const struct aloftd_proc *s, const char *sub)
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", s->data, sub);
    DIR *d = opendir(path);
    if (!d)
        return 0;
    unsigned n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

/* PostgreSQL for the tests. */

#define PG_START_TIMEOUT_MS 20000u
#define PG_STOP_TIMEOUT_MS 15000u

static struct {
    char bin[256];  /* .../postgresql/N/bin */
    char dir[64];   /* the cluster's directory: data/, the socket, postgres.log */
    uint16_t port;
    pid_t pid;      /* the postmaster; 0: not running */
    uid_t uid;      /* whom it runs as (nobody when we are root) */
    gid_t gid;
    bool drop;      /* run it as uid/gid */
} pg;

bool aloftd_on_pg(void)
{
    const char *db = getenv("ALOFT_TEST_DB");
    return db && !strcmp(db, "postgres");
}

/* In a child: become the server's user (root may not run postgres). */
static void pg_become(void)
{
    if (pg.drop && (setgroups(0, NULL) || setgid(pg.gid) || setuid(pg.uid)))
        _exit(126);
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void pg_cleanup(void)
{
    aloftd_pg_stop();
    if (pg.dir[0])
        nftw(pg.dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    pg.dir[0] = 0;
}

static void pg_print_log(const char *why)
{
    char path[128];
    snprintf(path, sizeof path, "%s/postgres.log", pg.dir);
    uint8_t *data = NULL;
    size_t len = 0;
    aloft_file_read(path, &data, &len);
    fprintf(stderr, "postgres (%s): %s; the end of %s:\n%.*s\n", pg.dir, why, path,
            (int)(len > 3000 ? 3000 : len), data ? (const char *)data + (len > 3000 ? len - 3000 : 0) : "");
    free(data);
}

/* Debian's server binaries: /usr/lib/postgresql/<version>/bin, the newest. */
static int pg_find_bin(void)
{
    glob_t g;
    if (glob("/usr/lib/postgresql/*/bin/postgres", 0, NULL, &g) || g.gl_pathc == 0) {
        fprintf(stderr, "aloftd tests: no PostgreSQL server in /usr/lib/postgresql/*/bin: install Debian's "
                        "postgresql (scripts/deps.sh)\n");
        globfree(&g);
        return -1;
    }
    const char *best = g.gl_pathv[0];
    for (size_t i = 1; i < g.gl_pathc; i++) /* by the version number, not as text (9 < 15) */
        if (atoi(g.gl_pathv[i] + strlen("/usr/lib/postgresql/")) > atoi(best + strlen("/usr/lib/postgresql/")))
            best = g.gl_pathv[i];
    snprintf(pg.bin, sizeof pg.bin, "%.*s", (int)(strlen(best) - strlen("/postgres")), best);
    globfree(&g);
    return 0;
}

/* Run a server program as the server's user, output to postgres.log;
 * returns the child's PID. */
static pid_t pg_spawn(const char *const argv[])
{
    char log[128];
    snprintf(log, sizeof log, "%s/postgres.log", pg.dir);
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0 || chdir(pg.dir))
            _exit(127);
        if (pg.drop && fchown(fd, pg.uid, pg.gid))
            _exit(127);
        dup2(in, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        close(in);
        pg_become();
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* after the user change, which clears it */
        if (getppid() != parent)
            _exit(127);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int pg_init(void)
{
    if (pg_find_bin())
        return -1;
    snprintf(pg.dir, sizeof pg.dir, "/tmp/aloft-pg-XXXXXX");
    assert_non_null(mkdtemp(pg.dir));
    atexit(pg_cleanup);
    pg.drop = geteuid() == 0;
    if (pg.drop) {
        struct passwd *pw = getpwnam("nobody");
        assert_non_null(pw);
        pg.uid = pw->pw_uid;
        pg.gid = pw->pw_gid;
        assert_int_equal(chown(pg.dir, pg.uid, pg.gid), 0);
    }
    char initdb[300], data[128];
    snprintf(initdb, sizeof initdb, "%s/initdb", pg.bin);
    snprintf(data, sizeof data, "%s/data", pg.dir);
    const char *argv[] = {initdb, "-D", data, "-U", "aloft", "--auth=trust", "--no-sync", "-E", "UTF8",
                          "--locale=C", NULL};
    int status;
    pid_t pid = pg_spawn(argv);
    waitpid(pid, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status)) {
        pg_print_log("initdb failed");
        return -1;
    }
    pg.port = e2e_free_port();
    return 0;
}

int aloftd_db_init(const char *suite)
{
    if (!aloftd_on_pg())
        return 0;
    printf("%s on PostgreSQL (ALOFT_TEST_DB=postgres)\n", suite);
    return aloftd_pg_start();
}

int aloftd_pg_start(void)
{
    if (pg.pid)
        return 0;
    if (!pg.dir[0] && pg_init())
        return -1;
    char exe[300], data[128], port[16];
    snprintf(exe, sizeof exe, "%s/postgres", pg.bin);
    snprintf(data, sizeof data, "%s/data", pg.dir);
    snprintf(port, sizeof port, "%u", pg.port);
    /* Tests need no durability: no fsync. */
    const char *argv[] = {exe, "-D", data, "-k", pg.dir, "-p", port, "-c", "listen_addresses=127.0.0.1",
                          "-c", "fsync=off", "-c", "full_page_writes=off", "-c", "synchronous_commit=off", NULL};
    pg.pid = pg_spawn(argv);
    char conninfo[200];
    snprintf(conninfo, sizeof conninfo, "host=127.0.0.1 port=%u user=aloft dbname=postgres connect_timeout=2", pg.port);
    uint64_t end = e2e_now_ms() + PG_START_TIMEOUT_MS;
    while (PQping(conninfo) != PQPING_OK) {
        int status;
        if (waitpid(pg.pid, &status, WNOHANG) == pg.pid) {
            pg.pid = 0;
            pg_print_log("exited before accepting connections");
            return -1;
        }
        if (e2e_now_ms() > end) {
            pg_print_log("did not accept connections in time");
            aloftd_pg_stop();
            return -1;
        }
        e2e_sleep_ms(20);
    }
    return 0;
}

int aloftd_pg_stop(void)
{
    if (!pg.pid)
        return 0;
    kill(pg.pid, SIGINT); /* fast shutdown: clients are disconnected, the data is kept */
    uint64_t end = e2e_now_ms() + PG_STOP_TIMEOUT_MS;
    int rc = -1;
    for (;;) {
        int status;
        if (waitpid(pg.pid, &status, WNOHANG) == pg.pid) {
            rc = WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
            break;
        }
        if (e2e_now_ms() > end) {
            kill(pg.pid, SIGKILL);
            waitpid(pg.pid, NULL, 0);
            break;
        }
        e2e_sleep_ms(10);
    }
    pg.pid = 0;
    return rc;
}

static PGconn *pg_connect(const char *url)
{
    PGconn *c = PQconnectdb(url);
    if (PQstatus(c) != CONNECTION_OK)
        fprintf(stderr, "aloftd tests: %s: %s\n", url, PQerrorMessage(c));
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    return c;
}

static void pg_exec(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "aloftd tests: %s: %s\n", sql, PQresultErrorMessage(r));
    assert_true(PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK);
    PQclear(r);
}

void aloftd_pg_create(const char *name, char *url, size_t cap)
{
    assert_int_not_equal(pg.pid, 0); /* aloftd_pg_start first */
    char db[64];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof db; i++) /* a plain identifier: no quoting in URLs or SQL */
        db[i] = (char)((name[i] >= 'a' && name[i] <= 'z') || (name[i] >= '0' && name[i] <= '9') ? name[i] : '_');
    db[i] = 0;
    char admin[160], sql[200];
    snprintf(admin, sizeof admin, "postgres://aloft@127.0.0.1:%u/postgres", pg.port);
    PGconn *c = pg_connect(admin);
    snprintf(sql, sizeof sql, "DROP DATABASE IF EXISTS t_%s", db);
    pg_exec(c, sql);
    snprintf(sql, sizeof sql, "CREATE DATABASE t_%s", db);
    pg_exec(c, sql);
    PQfinish(c);
    snprintf(url, cap, "postgres://aloft@127.0.0.1:%u/t_%s", pg.port, db);
}

char *aloftd_pg_query(const char *url, const char *sql)
{
    PGconn *c = pg_connect(url);
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fprintf(stderr, "aloftd tests: %s: %s\n", sql, PQresultErrorMessage(r));
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    size_t cap = 1;
    for (int row = 0; row < PQntuples(r); row++)
        for (int col = 0; col < PQnfields(r); col++)
            cap += strlen(PQgetvalue(r, row, col)) + 1;
    char *out = malloc(cap), *w = out;
    assert_non_null(out);
    for (int row = 0; row < PQntuples(r); row++)
        for (int col = 0; col < PQnfields(r); col++)
            w += sprintf(w, "%s\n", PQgetvalue(r, row, col));
    *w = 0;
    PQclear(r);
    PQfinish(c);
    return out;
}

unsigned aloftd_bucket(long long id, const char *mac)
{
    char key[64];
    snprintf(key, sizeof key, "%lld/%.17s", id, mac);
    uint64_t h = 1469598103934665603ull;
    for (const char *p = key; *p; p++) {
        h ^= (unsigned char)*p;
        h *= 1099511628211ull;
    }
    return (unsigned)(h % 100);
}
