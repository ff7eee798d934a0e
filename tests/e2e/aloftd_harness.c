/* aloftd end-to-end tests: the server's process and its HTTP calls. */
#include "aloftd_harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
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

int aloftd_start(struct aloftd_proc *s, const char *const args[])
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

    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the test */
        if (getppid() != parent)
            _exit(127);
        int fd = open(s->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(127);
        dup2(in, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        close(in);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    s->pid = pid;
    int slot = -1;
    for (int i = 0; i < MAX_SERVERS && slot < 0; i++)
        if (!servers[i] || servers[i] == s)
            slot = i;
    assert_true(slot >= 0);
    servers[slot] = s;

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
