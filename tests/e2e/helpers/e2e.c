/* aloft end-to-end tests: start, watch and stop aloft-node processes, run
 * curl, compare flash bytes. */
#include "e2e.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aloft/part.h"
#include "file.h"

#define MAX_PROCS 64
#define CURL "/usr/bin/curl"

static char addr[16];
static uint16_t next_port;
static uint32_t rng;
static struct e2e_node *nodes[MAX_PROCS];
static pid_t curls[MAX_PROCS];

void e2e_sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

uint64_t e2e_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint32_t e2e_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static void stop_all(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        if (nodes[i])
            e2e_node_stop(nodes[i]);
        nodes[i] = NULL;
        if (curls[i] > 0) {
            kill(curls[i], SIGKILL);
            waitpid(curls[i], NULL, 0);
        }
        curls[i] = 0;
    }
}

int e2e_teardown(void **state)
{
    (void)state;
    stop_all();
    return 0;
}

void e2e_init(unsigned id)
{
    snprintf(addr, sizeof addr, "127.0.0.%u", 20 + id % 200);
    /* Another run of this same executable (another build directory) uses the
     * same address: start elsewhere in the port range, and probe anyway. */
    next_port = (uint16_t)(20000 + (getpid() % 700) * 16);
    const char *seed = getenv("ALOFT_E2E_SEED");
    rng = seed ? (uint32_t)strtoul(seed, NULL, 0) : 0x5eed0000u + id;
    if (!rng)
        rng = 1;
    printf("e2e: nodes on %s from port %u; random seed %#x (ALOFT_E2E_SEED)\n", addr, next_port, rng);
    fflush(stdout);
    atexit(stop_all);
    e2e_dir();
}

const char *e2e_dir(void)
{
    return aloft_test_tmpdir();
}

const char *e2e_path(const char *name)
{
    static char ring[16][300];
    static unsigned i;
    char *p = ring[i++ % 16];
    snprintf(p, sizeof ring[0], "%s/%s", e2e_dir(), name);
    return p;
}

/* A port on addr that nothing listens on (bound without SO_REUSEPORT, so a
 * listener that shares ports is found too). */
static uint16_t free_port(void)
{
    for (int tries = 0; tries < 500; tries++) {
        uint16_t port = next_port++;
        if (next_port >= 32000)
            next_port = 20000;
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, addr, &sa.sin_addr);
        int ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    fprintf(stderr, "e2e: no free port on %s\n", addr);
    fail();
    return 0;
}

void e2e_node_init(struct e2e_node *n, const char *name)
{
    assert_non_null(addr[0] ? addr : NULL); /* e2e_init first */
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->flash, sizeof n->flash, "%s/%s.img", e2e_dir(), name);
    snprintf(n->log, sizeof n->log, "%s/%s.log", e2e_dir(), name);
    snprintf(n->listen, sizeof n->listen, "%s:%u", addr, free_port());
    snprintf(n->url, sizeof n->url, "http://%s", n->listen);
    snprintf(n->psk, sizeof n->psk, "psk-of-%.24s", name);
}

char *e2e_log_read(const struct e2e_node *n)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (aloft_file_read(n->log, &data, &len) != 0) {
        data = malloc(1);
        len = 0;
    }
    char *s = realloc(data, len + 1);
    s[len] = 0;
    return s;
}

unsigned e2e_log_count(const struct e2e_node *n, const char *needle)
{
    char *log = e2e_log_read(n);
    unsigned count = 0;
    for (const char *p = log; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        count++;
    free(log);
    return count;
}

int e2e_last_boot(const struct e2e_node *n, char reason[16], char part[17])
{
    char *log = e2e_log_read(n), *last = NULL;
    for (char *p = log; (p = strstr(p, "boot: reset_reason=")) != NULL; p++)
        last = p;
    int rc = last && sscanf(last, "boot: reset_reason=%15s running_partition=%16s", reason, part) == 2 ? 0 : -1;
    free(log);
    return rc;
}

static void print_tail(const struct e2e_node *n, const char *why)
{
    char *log = e2e_log_read(n);
    size_t len = strlen(log);
    fprintf(stderr, "e2e: node %s (%s): %s; the end of %s:\n%s\n", n->name, n->listen, why, n->log,
            log + (len > 3000 ? len - 3000 : 0));
    free(log);
}

bool e2e_node_exited(struct e2e_node *n)
{
    if (n->pid <= 0)
        return true;
    int status;
    if (waitpid(n->pid, &status, WNOHANG) == n->pid) {
        n->pid = 0;
        return true;
    }
    return false;
}

static void forget(const struct e2e_node *n)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (nodes[i] == n)
            nodes[i] = NULL;
}

int e2e_node_wait_log(struct e2e_node *n, const char *needle, unsigned count, unsigned timeout_ms)
{
    uint64_t end = e2e_now_ms() + timeout_ms;
    for (;;) {
        if (e2e_log_count(n, needle) >= count)
            return 0;
        if (e2e_node_exited(n)) {
            forget(n);
            if (e2e_log_count(n, needle) >= count)
                return 0;
            print_tail(n, "exited");
            return -1;
        }
        if (e2e_now_ms() > end) {
            char why[120];
            snprintf(why, sizeof why, "no %u x '%s' within %u ms", count, needle, timeout_ms);
            print_tail(n, why);
            return -1;
        }
        e2e_sleep_ms(10);
    }
}

int e2e_node_wait_boot(struct e2e_node *n)
{
    if (e2e_node_wait_log(n, "http: serving on", n->serving + 1, E2E_BOOT_TIMEOUT_MS) != 0)
        return -1;
    n->serving = e2e_log_count(n, "http: serving on");
    return 0;
}

pid_t e2e_spawn(const char *exe, const char *const argv[], const char *out, int mode, bool err_too)
{
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(out, O_WRONLY | O_CREAT | mode, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fd < 0 || in < 0)
            _exit(127);
        dup2(in, STDIN_FILENO);
        dup2(fd, STDOUT_FILENO);
        if (err_too)
            dup2(fd, STDERR_FILENO);
        close(fd);
        close(in);
        execvp(exe, (char *const *)argv);
        _exit(127);
    }
    return pid;
}

/* ALOFT_E2E_DEVICE: the ESP-IDF example built for the host, in place of
 * aloft-node (its partition table: ALOFT_E2E_PARTITIONS). */
static const char *example(void)
{
    const char *d = getenv("ALOFT_E2E_DEVICE");
    return d && *d ? d : NULL;
}

bool e2e_example(void)
{
    return example() != NULL;
}

const char *e2e_chip(void)
{
    return example() ? "esp32c3" : "esp32s3";
}

void e2e_simulator_only(const char *what)
{
    if (example()) {
        printf("e2e: skipped against the example: %s\n", what);
        skip();
    }
}

/* What the example's `idf.py flash` leaves: its table and the app, the
 * update page in www_0. --create, --flash-size, --firmware and --www are
 * taken out of args (a copy in out). */
static void flash_example(struct e2e_node *n, const char *const args[], const char *out[], size_t cap)
{
    const char *size = "4M", *fw = NULL, *www = NULL;
    bool create = false;
    size_t k = 0;
    for (size_t i = 0; args && args[i]; i++) {
        if (!strcmp(args[i], "--create"))
            create = true;
        else if (!strcmp(args[i], "--flash-size") && args[i + 1])
            size = args[++i];
        else if (!strcmp(args[i], "--firmware") && args[i + 1])
            fw = args[++i];
        else if (!strcmp(args[i], "--www") && args[i + 1])
            www = args[++i];
        else if (k + 1 < cap)
            out[k++] = args[i];
    }
    out[k] = NULL;
    if (!create)
        return;
    assert_non_null(fw);
    const char *init[] = {"aloft", "flash", "init", "--partitions", getenv("ALOFT_E2E_PARTITIONS"), "--flash-size",
                          size, "--app", fw, "-o", n->flash, NULL};
    assert_non_null(init[4]);
    assert_int_equal(aloft_test_run(NULL, init), 0);
    if (www) {
        uint32_t off, part;
        size_t len;
        e2e_part(n, "www_0", &off, &part);
        struct stat st;
        char img_path[320], size_arg[16];
        if (stat(www, &st) == 0 && S_ISDIR(st.st_mode)) { /* a folder: its LittleFS image */
            snprintf(img_path, sizeof img_path, "%s.www0.bin", n->flash);
            snprintf(size_arg, sizeof size_arg, "%u", (unsigned)part);
            const char *mkfs[] = {"aloft", "mkfs", www, "-o", img_path, "--size", size_arg, NULL};
            assert_int_equal(aloft_test_run(NULL, mkfs), 0);
            www = img_path;
        }
        uint8_t *img = e2e_file_read(www, &len);
        assert_true(len <= part);
        int fd = open(n->flash, O_WRONLY | O_CLOEXEC);
        assert_true(fd >= 0);
        assert_int_equal(pwrite(fd, img, len, off), (ssize_t)len);
        close(fd);
        free(img);
    }
}

int e2e_node_start(struct e2e_node *n, const char *const args[])
{
    assert_int_equal(n->pid, 0);
    const char *argv[64], *rest[48];
    char exe[1024];
    snprintf(exe, sizeof exe, "%s/aloft-node", ALOFT_BIN);
    if (example()) {
        /* a MAC of its own, as each aloft-node makes one from its address */
        unsigned a, b, c, d, port;
        char mac[18];
        assert_int_equal(sscanf(n->listen, "%u.%u.%u.%u:%u", &a, &b, &c, &d, &port), 5);
        snprintf(mac, sizeof mac, "02:A1:%02X:%02X:%02X:%02X", d & 0xFF, (port >> 8) & 0xFF, port & 0xFF, c & 0xFF);
        setenv("FAKE_IDF_MAC", mac, 1);
        snprintf(exe, sizeof exe, "%s", example());
        flash_example(n, args, rest, 46);
        /* aloft-node's apps confirm once they serve; the example after this */
        size_t r = 0;
        while (rest[r])
            r++;
        rest[r++] = "--confirm-timeout";
        rest[r++] = "1";
        rest[r] = NULL;
        args = rest;
    }
    size_t k = 0;
    argv[k++] = exe;
    argv[k++] = "--flash";
    argv[k++] = n->flash;
    argv[k++] = "--listen";
    argv[k++] = n->listen;
    argv[k++] = "--restart-delay";
    argv[k++] = "100";
    for (size_t i = 0; args && args[i] && args[i + 1]; i++)
        if (!strcmp(args[i], "--psk")) /* the test's own PSK */
            snprintf(n->psk, sizeof n->psk, "%s", args[i + 1]);
    if (n->psk[0]) {
        argv[k++] = "--psk";
        argv[k++] = n->psk;
        snprintf(n->auth, sizeof n->auth, "Authorization: Bearer %s", n->psk);
    } else {
        n->auth[0] = 0;
    }
    for (size_t i = 0; args && args[i]; i++) {
        assert_true(k < 63);
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    n->serving = e2e_log_count(n, "http: serving on");

    n->pid = e2e_spawn(exe, argv, n->log, O_APPEND, true);
    int slot = -1;
    for (int i = 0; i < MAX_PROCS; i++)
        if (!nodes[i] || nodes[i] == n) {
            slot = i;
            break;
        }
    assert_true(slot >= 0);
    nodes[slot] = n;
    return e2e_node_wait_boot(n);
}

void e2e_node_start_with(struct e2e_node *n, const char *name, const char *firmware, const char *const extra[])
{
    e2e_node_init(n, name);
    const char *args[24] = {"--create", "--flash-size", "4M", "--firmware", firmware};
    size_t k = 5;
    for (size_t i = 0; extra && extra[i] && k < 23; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    assert_int_equal(e2e_node_start(n, args), 0);
}

static void reap(struct e2e_node *n, int sig, unsigned grace_ms)
{
    if (n->pid <= 0) {
        n->pid = 0;
        forget(n);
        return;
    }
    kill(n->pid, sig);
    uint64_t end = e2e_now_ms() + grace_ms;
    while (!e2e_node_exited(n)) {
        if (e2e_now_ms() > end) {
            kill(n->pid, SIGKILL);
            waitpid(n->pid, NULL, 0);
            n->pid = 0;
            break;
        }
        e2e_sleep_ms(5);
    }
    forget(n);
}

void e2e_node_stop(struct e2e_node *n)
{
    reap(n, SIGTERM, 3000);
}

void e2e_node_kill9(struct e2e_node *n)
{
    reap(n, SIGKILL, 3000);
}

/* curl */

void e2e_curl_start(struct e2e_curl_job *j, const char *const args[])
{
    static unsigned seq;
    unsigned id = seq++;
    snprintf(j->out, sizeof j->out, "%s/curl-%u.out", e2e_dir(), id);
    snprintf(j->body, sizeof j->body, "%s/curl-%u.body", e2e_dir(), id);
    snprintf(j->hdr, sizeof j->hdr, "%s/curl-%u.hdr", e2e_dir(), id);
    const char *argv[64];
    size_t k = 0;
    const char *fixed[] = {"curl", "-q", "-s", "--noproxy", "*", "--max-time", "60", "-o", j->body, "-D", j->hdr,
                           "-w", "%{http_code}"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        argv[k++] = fixed[i];
    for (size_t i = 0; args[i]; i++) {
        assert_true(k < 63);
        argv[k++] = args[i];
    }
    argv[k] = NULL;
    j->pid = e2e_spawn(CURL, argv, j->out, O_TRUNC, false);
    for (int i = 0; i < MAX_PROCS; i++)
        if (curls[i] <= 0) {
            curls[i] = j->pid;
            break;
        }
}

static char *slurp(const char *path, size_t *len)
{
    uint8_t *data = NULL;
    size_t n = 0;
    if (aloft_file_read(path, &data, &n) != 0) {
        data = NULL;
        n = 0;
    }
    char *s = realloc(data, n + 1);
    s[n] = 0;
    if (len)
        *len = n;
    unlink(path);
    return s;
}

int e2e_curl_wait(struct e2e_curl_job *j, struct e2e_http *r)
{
    int status = 0;
    waitpid(j->pid, &status, 0);
    for (int i = 0; i < MAX_PROCS; i++)
        if (curls[i] == j->pid)
            curls[i] = 0;
    j->pid = 0;
    char *out = slurp(j->out, NULL);
    int code = atoi(out);
    free(out);
    struct e2e_http tmp;
    struct e2e_http *h = r ? r : &tmp;
    h->code = code;
    h->rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    h->body = slurp(j->body, &h->len);
    h->headers = slurp(j->hdr, NULL);
    if (!r)
        e2e_http_free(&tmp);
    return code;
}

int e2e_curl(struct e2e_http *r, const char *const args[])
{
    struct e2e_curl_job j;
    e2e_curl_start(&j, args);
    return e2e_curl_wait(&j, r);
}

void e2e_http_free(struct e2e_http *r)
{
    free(r->body);
    free(r->headers);
    r->body = r->headers = NULL;
}

const char *e2e_http_error(const struct e2e_http *r)
{
    static char code[64];
    code[0] = 0;
    cJSON *j = r->body ? cJSON_Parse(r->body) : NULL;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, "error");
    if (cJSON_IsString(e))
        snprintf(code, sizeof code, "%s", e->valuestring);
    cJSON_Delete(j);
    return code;
}

bool e2e_http_header(const struct e2e_http *r, const char *name, const char *value)
{
    size_t nl = strlen(name);
    for (const char *line = r->headers; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (!strncasecmp(line, name, nl) && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            if (!strncasecmp(v, value, strlen(value)))
                return true;
        }
    }
    return false;
}

int e2e_upload(struct e2e_node *n, const char *path, const char *file, struct e2e_http *r, const char *const extra[])
{
    char url[200], data[400];
    snprintf(url, sizeof url, "%s%s", n->url, path);
    snprintf(data, sizeof data, "@%s", file);
    const char *args[48] = {"-X", "POST", "--data-binary", data};
    size_t k = 4;
    bool typed = false, authed = !n->auth[0];
    for (size_t i = 0; extra && extra[i]; i++) {
        typed |= !strncasecmp(extra[i], "Content-Type:", 13);
        authed |= !strncasecmp(extra[i], "Authorization:", 14);
    }
    if (!typed) {
        args[k++] = "-H";
        args[k++] = "Content-Type: application/octet-stream";
    }
    if (!authed) {
        args[k++] = "-H";
        args[k++] = n->auth;
    }
    for (size_t i = 0; extra && extra[i]; i++) {
        assert_true(k < 46);
        args[k++] = extra[i];
    }
    args[k++] = url;
    args[k] = NULL;
    return e2e_curl(r, args);
}

cJSON *e2e_get_json(struct e2e_node *n, const char *path)
{
    char url[200];
    snprintf(url, sizeof url, "%s%s", n->url, path);
    struct e2e_http r;
    const char *args[] = {"--max-time", "10", url, NULL};
    int code = e2e_curl(&r, args);
    cJSON *j = code == 200 ? cJSON_Parse(r.body) : NULL;
    if (!j)
        fprintf(stderr, "e2e: GET %s: status %d, curl %d, body '%s'\n", url, code, r.rc, r.body);
    e2e_http_free(&r);
    assert_non_null(j);
    return j;
}

cJSON *e2e_try_json(struct e2e_node *n, const char *path)
{
    char url[200];
    snprintf(url, sizeof url, "%s%s", n->url, path);
    struct e2e_http r;
    const char *args[] = {"--max-time", "5", url, NULL};
    cJSON *j = e2e_curl(&r, args) == 200 ? cJSON_Parse(r.body) : NULL;
    e2e_http_free(&r);
    return j;
}

cJSON *e2e_status(struct e2e_node *n)
{
    return e2e_get_json(n, "/ota/status");
}

int e2e_wait_state(struct e2e_node *n, const char *state, unsigned timeout_ms)
{
    char last[32] = "";
    for (uint64_t end = e2e_now_ms() + timeout_ms;; e2e_sleep_ms(10)) {
        cJSON *st = e2e_try_json(n, "/ota/status");
        if (st)
            snprintf(last, sizeof last, "%s", e2e_jstr(st, "state"));
        cJSON_Delete(st);
        if (!strcmp(last, state))
            return 0;
        if (e2e_now_ms() > end) {
            fprintf(stderr, "e2e: node %s: state '%s', not '%s' after %u ms\n", n->name, last, state, timeout_ms);
            return -1;
        }
    }
}

const char *e2e_jstr(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

double e2e_jnum(const cJSON *j, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

int e2e_connect(const struct e2e_node *n)
{
    char host[32];
    snprintf(host, sizeof host, "%s", n->listen);
    char *colon = strrchr(host, ':');
    *colon = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &sa.sin_addr);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    return fd;
}

void e2e_make_ca(const char *ip)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "cd %s && (openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout ca.key "
             "-out ca.pem -days 2 -subj /CN=aloft-test-ca"
             " && openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout srv.key -out srv.csr "
             "-subj /CN=%s"
             " && printf 'subjectAltName=IP:%s\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' "
             ">srv.ext"
             " && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out srv.pem -days 2 "
             "-extfile srv.ext) >openssl.log 2>&1",
             e2e_dir(), ip, ip);
    fflush(NULL);
    int rc = system(cmd);
    if (rc)
        fprintf(stderr, "openssl (scripts/deps.sh installs it) failed: see %s/openssl.log\n", e2e_dir());
    assert_int_equal(rc, 0);
}

uint16_t e2e_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

bool e2e_port_open(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* flash */

uint8_t *e2e_flash_read(const struct e2e_node *n, uint32_t off, uint32_t len)
{
    uint8_t *buf = malloc(len ? len : 1);
    int fd = open(n->flash, O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    ssize_t got = pread(fd, buf, len, off);
    close(fd);
    assert_int_equal(got, (ssize_t)len);
    return buf;
}

void e2e_part(const struct e2e_node *n, const char *label, uint32_t *off, uint32_t *size)
{
    uint8_t *bin = e2e_flash_read(n, ALOFT_PART_TABLE_OFFSET, 0xC00);
    static struct aloft_part_table t;
    assert_int_equal(aloft_part_parse(&t, bin, 0xC00, ALOFT_PART_TABLE_OFFSET, 0), 0);
    free(bin);
    const struct aloft_part *p = aloft_part_find_label(&t, label);
    if (!p)
        fprintf(stderr, "e2e: %s has no partition '%s'\n", n->flash, label);
    assert_non_null(p);
    *off = p->offset;
    *size = p->size;
}

void e2e_snap_take(struct e2e_snap *s, struct e2e_node *n)
{
    cJSON *st = e2e_status(n);
    snprintf(s->running, sizeof s->running, "%s", e2e_jstr(st, "running_partition"));
    cJSON_Delete(st);
    e2e_part(n, s->running, &s->run_off, &s->run_size);
    s->run = e2e_flash_read(n, s->run_off, s->run_size);
    s->otadata = e2e_flash_read(n, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    s->nvs = e2e_flash_read(n, E2E_NVS_OFF, E2E_NVS_SIZE);
}

const char *e2e_snap_diff(const struct e2e_snap *s, const struct e2e_node *n)
{
    const char *why = NULL;
    uint8_t *run = e2e_flash_read(n, s->run_off, s->run_size);
    uint8_t *od = e2e_flash_read(n, E2E_OTADATA_OFF, E2E_OTADATA_SIZE);
    uint8_t *nvs = e2e_flash_read(n, E2E_NVS_OFF, E2E_NVS_SIZE);
    if (memcmp(run, s->run, s->run_size))
        why = "running slot";
    else if (memcmp(od, s->otadata, E2E_OTADATA_SIZE))
        why = "otadata";
    else if (memcmp(nvs, s->nvs, E2E_NVS_SIZE))
        why = "nvs";
    free(run);
    free(od);
    free(nvs);
    return why;
}

void e2e_snap_app_unchanged(const struct e2e_snap *s, const struct e2e_node *n)
{
    const char *d = e2e_snap_diff(s, n);
    if (d && strcmp(d, "nvs"))
        fprintf(stderr, "changed: the %s\n", d);
    assert_true(!d || !strcmp(d, "nvs"));
}

void e2e_snap_free(struct e2e_snap *s)
{
    free(s->run);
    free(s->otadata);
    free(s->nvs);
    s->run = s->otadata = s->nvs = NULL;
}

/* files and images */

void e2e_image(const char *out, const char *chip, const char *version, size_t size, const char *sim)
{
    char sz[32];
    /* the suites are written for an ESP32-S3; the example is built for an
     * ESP32-C3: the two swap places, so a wrong chip stays wrong */
    if (example())
        chip = !strcmp(chip, "esp32s3") ? "esp32c3" : !strcmp(chip, "esp32c3") ? "esp32s3" : chip;
    const char *argv[20] = {"aloft", "image", "make", "--chip", chip, "--project", "demo", "--version", version};
    size_t k = 9;
    if (size) {
        snprintf(sz, sizeof sz, "%zu", size);
        argv[k++] = "--size";
        argv[k++] = sz;
    }
    if (sim) {
        argv[k++] = "--sim";
        argv[k++] = sim;
    }
    argv[k++] = "-o";
    argv[k++] = out;
    argv[k] = NULL;
    assert_int_equal(aloft_test_run(NULL, argv), 0);
}

uint8_t *e2e_file_read(const char *path, size_t *len)
{
    uint8_t *data = NULL;
    if (aloft_file_read(path, &data, len) != 0) {
        fprintf(stderr, "e2e: cannot read %s\n", path);
        fail();
    }
    return data;
}

void e2e_file_write(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}
