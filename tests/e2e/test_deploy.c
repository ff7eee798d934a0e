/* aloft deploy, discover and status against a fleet of real aloft-node
 * processes, each on its own loopback address standing in for a LAN
 * (issue 4 "Tests"; PROTOCOLS.md §1; seed 001 §3-4).
 *
 * The nodes listen on 127.0.0.97..110 (the hosts of 127.0.0.96/28), all on
 * one port chosen at start that is free on every one of those addresses and
 * below the harness's own range, so `aloft discover 127.0.0.96/28 --port P`
 * sees exactly this executable's running nodes. Every test starts its own
 * nodes from fresh flash files and stops them by PID in its teardown. */
#include "aloftd_harness.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define NET "127.0.0.96/28"
#define HOST0 97u    /* first node address: 127.0.0.97 */
#define HOSTS 14u    /* .97 .. .110 */
#define MAX_NODES 12
#define PSK "fleet-psk"
#define RUN_LIMIT_MS 90000u

static unsigned port;
static char port_s[8];
static struct e2e_node nodes[MAX_NODES];
static size_t n_nodes;

/* images, made once in main; the esp32c3 one has a version as long as an
 * app descriptor holds, as ESP-IDF's git describe writes them */
#define LONG_VERSION "v5.5.5-1234-g0123456789ab-dirty"
static char fw_v1[300], fw_v2[300], fw_c3[300], fw_panic[300], fw_noconfirm[300], fw_big[300], www_bin[300],
    not_an_image[300];

/* ---- addresses and nodes ---- */

static bool port_free_everywhere(unsigned p)
{
    for (unsigned i = 0; i < HOSTS; i++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};
        sa.sin_addr.s_addr = htonl(0x7f000000u | (HOST0 + i));
        bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (!ok)
            return false;
    }
    return true;
}

/* A port in 18000..19999 (below the harness's 20000..32000) free on all of
 * 127.0.0.97..110; another run of this executable starts elsewhere. */
static void pick_port(void)
{
    unsigned start = (unsigned)(getpid() % 125) * 16;
    for (unsigned k = 0; k < 2000; k++) {
        unsigned p = 18000 + (start + k) % 2000;
        if (port_free_everywhere(p)) {
            port = p;
            snprintf(port_s, sizeof port_s, "%u", p);
            return;
        }
    }
    fprintf(stderr, "test_deploy: no port free on all of 127.0.0.%u..%u\n", HOST0, HOST0 + HOSTS - 1);
    exit(1);
}

/* A node on 127.0.0.(HOST0 + host):port with a fresh 4 MB flash holding fw;
 * psk provisioned, or none and --open (NULL); extra args (NULL-terminated,
 * may be NULL). */
static struct e2e_node *node(const char *name, unsigned host, const char *fw, const char *psk,
                             const char *const extra[])
{
    assert_true(n_nodes < MAX_NODES && host < HOSTS);
    struct e2e_node *n = &nodes[n_nodes++];
    e2e_node_init(n, name);
    char listen[32];
    snprintf(listen, sizeof listen, "127.0.0.%u:%u", HOST0 + host, port);
    snprintf(n->listen, sizeof n->listen, "%s", listen);
    snprintf(n->url, sizeof n->url, "http://%s", listen);
    unlink(n->flash);
    unlink(n->log);
    const char *args[24] = {"--create", "--flash-size", "4M", "--firmware", fw};
    size_t k = 5;
    n->psk[0] = 0;
    if (psk) {
        args[k++] = "--psk";
        args[k++] = psk;
    } else {
        args[k++] = "--open";
    }
    for (size_t i = 0; extra && extra[i]; i++)
        args[k++] = extra[i];
    args[k] = NULL;
    assert_int_equal(e2e_node_start(n, args), 0);
    return n;
}

static int setup(void **state)
{
    (void)state;
    n_nodes = 0;
    return 0;
}

static int teardown(void **state)
{
    e2e_teardown(state);
    for (size_t i = 0; i < n_nodes; i++)
        unlink(nodes[i].flash);
    n_nodes = 0;
    return 0;
}

/* ---- running aloft ---- */

struct run {
    int code;        /* exit status; -1 killed */
    char *out, *err; /* stdout, stderr */
    unsigned ms;     /* wall time */
    cJSON *json;     /* stdout parsed, when it is JSON */
};

struct args {
    const char *v[80];
    size_t n;
};

static void add(struct args *a, const char *s)
{
    assert_true(a->n < 79);
    a->v[a->n++] = s;
    a->v[a->n] = NULL;
}

static void add_nodes(struct args *a, struct e2e_node *const *ns, size_t count)
{
    for (size_t i = 0; i < count; i++)
        add(a, ns[i]->listen);
}

static char *slurp(const char *path)
{
    size_t len = 0;
    uint8_t *data = e2e_file_read(path, &len);
    char *s = realloc(data, len + 1);
    s[len] = 0;
    unlink(path);
    return s;
}

/* Run build/bin/aloft args... with stdout and stderr to files; send SIGINT
 * int1_ms (and again int2_ms) after the start when nonzero. */
static int run_aloft_int(struct run *r, const char *const args[], unsigned int1_ms, unsigned int2_ms)
{
    static unsigned seq;
    unsigned id = seq++;
    char out[300], err[300], exe[1024];
    snprintf(out, sizeof out, "%s/aloft-%u.out", e2e_dir(), id);
    snprintf(err, sizeof err, "%s/aloft-%u.err", e2e_dir(), id);
    snprintf(exe, sizeof exe, "%s/aloft", ALOFT_BIN);
    const char *argv[82] = {"aloft"};
    size_t k = 1;
    for (size_t i = 0; args[i]; i++)
        argv[k++] = args[i];
    argv[k] = NULL;
    fflush(NULL);
    pid_t parent = getpid();
    uint64_t t0 = e2e_now_ms();
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fo = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644), fe = open(err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (fo < 0 || fe < 0 || in < 0)
            _exit(127);
        dup2(in, STDIN_FILENO);
        dup2(fo, STDOUT_FILENO);
        dup2(fe, STDERR_FILENO);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    int status = 0;
    bool sent1 = false, sent2 = false, killed = false;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        uint64_t el = e2e_now_ms() - t0;
        if (int1_ms && !sent1 && el >= int1_ms) {
            kill(pid, SIGINT);
            sent1 = true;
        }
        if (int2_ms && !sent2 && el >= int2_ms) {
            kill(pid, SIGINT);
            sent2 = true;
        }
        if (el > RUN_LIMIT_MS) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            killed = true;
            break;
        }
        e2e_sleep_ms(5);
    }
    r->ms = (unsigned)(e2e_now_ms() - t0);
    r->code = !killed && WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->out = slurp(out);
    r->err = slurp(err);
    r->json = cJSON_Parse(r->out);
    if (killed)
        fprintf(stderr, "test_deploy: aloft did not finish within %u ms:\n%s\n%s\n", RUN_LIMIT_MS, r->out, r->err);
    assert_false(killed);
    return r->code;
}

static int run_aloft(struct run *r, const char *const args[])
{
    return run_aloft_int(r, args, 0, 0);
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    cJSON_Delete(r->json);
    memset(r, 0, sizeof *r);
}

static void dump(const struct run *r)
{
    fprintf(stderr, "--- aloft exit %d after %u ms; stdout:\n%s\n--- stderr:\n%s\n", r->code, r->ms, r->out, r->err);
}

/* ---- the JSON report ---- */

static const cJSON *device(const struct run *r, const struct e2e_node *n)
{
    const cJSON *d;
    cJSON_ArrayForEach(d, cJSON_GetObjectItemCaseSensitive(r->json, "devices"))
        if (!strcmp(e2e_jstr(d, "address"), n->listen))
            return d;
    fprintf(stderr, "test_deploy: %s (%s) is not in the report\n", n->listen, n->name);
    dump(r);
    fail();
    return NULL;
}

/* The device's outcome is `outcome` and its reason contains `why` (may be NULL). */
static void expect_dev(const struct run *r, const struct e2e_node *n, const char *outcome, const char *why)
{
    const cJSON *d = device(r, n);
    const char *got = e2e_jstr(d, "outcome"), *reason = e2e_jstr(d, "reason");
    if (strcmp(got, outcome) || (why && !strstr(reason, why))) {
        fprintf(stderr, "test_deploy: %s (%s): expected %s (\"%s\"), got %s (\"%s\")\n", n->listen, n->name, outcome,
                why ? why : "", got, reason);
        dump(r);
        fail();
    }
}

enum { S_UPDATED, S_ROLLED_BACK, S_REJECTED, S_UNREACHABLE, S_UNCONFIRMED, S_UNCHANGED, S_SKIPPED, S_SENT,
       S_INTERRUPTED, S_N };
static const char *const summary_key[S_N] = {"updated",   "rolled_back", "rejected", "unreachable", "unconfirmed",
                                             "unchanged", "skipped",     "sent",     "interrupted"};

/* The summary counts (S_N numbers in summary_key's order), the exit status and
 * the report's exit_code. */
static void expect_summary(const struct run *r, const int want[S_N], int code)
{
    if (!r->json) {
        fprintf(stderr, "test_deploy: the report is not JSON\n");
        dump(r);
        fail();
    }
    const cJSON *sum = cJSON_GetObjectItemCaseSensitive(r->json, "summary");
    bool ok = r->code == code && (int)e2e_jnum(r->json, "exit_code") == code;
    for (int i = 0; i < S_N; i++)
        ok &= (int)e2e_jnum(sum, summary_key[i]) == want[i];
    int devices = cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(r->json, "devices")), total = 0;
    for (int i = 0; i < S_N; i++)
        total += want[i];
    ok &= devices == total;
    if (!ok) {
        fprintf(stderr, "test_deploy: expected exit %d and summary", code);
        for (int i = 0; i < S_N; i++)
            fprintf(stderr, " %s=%d", summary_key[i], want[i]);
        fprintf(stderr, "\n");
        dump(r);
        fail();
    }
}

/* ---- device state ---- */

/* What must not change on a device nobody updated. */
struct before {
    char version[40], running[20], state[20], sha256[80], reset[20];
    double boot_count;
    struct e2e_snap snap;
};

static void before_take(struct before *b, struct e2e_node *n)
{
    cJSON *st = e2e_status(n);
    snprintf(b->version, sizeof b->version, "%s", e2e_jstr(st, "version"));
    snprintf(b->running, sizeof b->running, "%s", e2e_jstr(st, "running_partition"));
    snprintf(b->state, sizeof b->state, "%s", e2e_jstr(st, "state"));
    snprintf(b->sha256, sizeof b->sha256, "%s", e2e_jstr(st, "sha256"));
    snprintf(b->reset, sizeof b->reset, "%s", e2e_jstr(st, "reset_reason"));
    b->boot_count = e2e_jnum(st, "boot_count");
    cJSON_Delete(st);
    e2e_snap_take(&b->snap, n);
}

/* The device never restarted, runs what it ran, and its running slot,
 * otadata and nvs are byte-identical. */
static void expect_untouched(struct before *b, struct e2e_node *n)
{
    cJSON *st = e2e_status(n);
    assert_string_equal(e2e_jstr(st, "version"), b->version);
    assert_string_equal(e2e_jstr(st, "running_partition"), b->running);
    assert_string_equal(e2e_jstr(st, "state"), b->state);
    assert_string_equal(e2e_jstr(st, "sha256"), b->sha256);
    assert_string_equal(e2e_jstr(st, "reset_reason"), b->reset);
    assert_true(e2e_jnum(st, "boot_count") == b->boot_count);
    cJSON_Delete(st);
    const char *diff = e2e_snap_diff(&b->snap, n);
    if (diff)
        fprintf(stderr, "test_deploy: %s: the %s changed\n", n->name, diff);
    assert_null(diff);
    e2e_snap_free(&b->snap);
}

/* /ota/status says version on partition in state. */
static void expect_runs(struct e2e_node *n, const char *version, const char *part, const char *state)
{
    cJSON *st = e2e_status(n);
    if (strcmp(e2e_jstr(st, "version"), version) || strcmp(e2e_jstr(st, "running_partition"), part) ||
        (state && strcmp(e2e_jstr(st, "state"), state))) {
        char *s = cJSON_PrintUnformatted(st);
        fprintf(stderr, "test_deploy: %s: expected %s on %s (%s), status %s\n", n->name, version, part,
                state ? state : "any state", s);
        free(s);
        fail();
    }
    cJSON_Delete(st);
}

/* The www slot the device serves from (GET /api/ota/status active_slot). */
static int www_slot(struct e2e_node *n)
{
    cJSON *j = e2e_get_json(n, "/api/ota/status");
    int slot = (int)e2e_jnum(j, "active_slot");
    cJSON_Delete(j);
    return slot;
}

/* ---- tests ---- */

/* Nine nodes, one deploy: every class a fleet of one image can produce. Then
 * the same fleet again (nothing to do), a panicking image (rolled back), an
 * image that never confirms (unconfirmed) and a version mismatch (unchanged). */
static void test_fleet_outcomes(void **state)
{
    (void)state;
    struct e2e_node *plain0 = node("f-plain0", 0, fw_v1, NULL, NULL);
    struct e2e_node *plain1 = node("f-plain1", 1, fw_v1, NULL, NULL);
    struct e2e_node *psk0 = node("f-psk0", 2, fw_v1, PSK, NULL);
    struct e2e_node *psk1 = node("f-psk1", 3, fw_v1, PSK, NULL);
    struct e2e_node *psk2 = node("f-psk2", 4, fw_v1, PSK, NULL);
    struct e2e_node *wrong = node("f-wrongpsk", 5, fw_v1, "not-the-fleet-psk", NULL);
    struct e2e_node *c3 = node("f-esp32c3", 6, fw_c3, NULL, NULL);
    struct e2e_node *off = node("f-stopped", 7, fw_v1, NULL, NULL);
    struct e2e_node *done = node("f-already", 8, fw_v2, PSK, NULL);
    e2e_node_stop(off);
    struct e2e_node *all[] = {plain0, plain1, psk0, psk1, psk2, wrong, c3, off, done};

    /* the refusing device's own reason, asked directly */
    char url[100];
    snprintf(url, sizeof url, "%s/ota", wrong->url);
    struct e2e_http h;
    const char *cargs[] = {"-X", "POST", "--data-binary", "x", "-H", "Content-Type: application/octet-stream",
                           "-H", "Authorization: Bearer " PSK, url, NULL};
    assert_int_equal(e2e_curl(&h, cargs), 401);
    cJSON *hj = cJSON_Parse(h.body);
    char device_msg[200];
    snprintf(device_msg, sizeof device_msg, "%s", e2e_jstr(hj, "message"));
    cJSON_Delete(hj);
    e2e_http_free(&h);
    assert_true(device_msg[0]);

    struct before b_wrong, b_c3, b_done;
    before_take(&b_wrong, wrong);
    before_take(&b_c3, c3);
    before_take(&b_done, done);

    struct run r;
    struct args a = {0};
    add(&a, "deploy");
    add(&a, fw_v2);
    add_nodes(&a, all, 9);
    const char *opts[] = {"--psk", PSK, "--timeout", "15", "--json", NULL};
    for (size_t i = 0; opts[i]; i++)
        add(&a, opts[i]);
    run_aloft(&r, a.v);
    expect_summary(&r, (int[S_N]){[S_UPDATED] = 5, [S_REJECTED] = 1, [S_UNREACHABLE] = 1, [S_SKIPPED] = 2}, 1);
    struct e2e_node *ok[] = {plain0, plain1, psk0, psk1, psk2};
    for (size_t i = 0; i < 5; i++) {
        expect_dev(&r, ok[i], "updated", "ota_0 -> ota_1, 1.0.0 -> 2.0.0");
        const cJSON *after = cJSON_GetObjectItemCaseSensitive(device(&r, ok[i]), "after");
        assert_string_equal(e2e_jstr(after, "version"), "2.0.0");
        assert_string_equal(e2e_jstr(after, "partition"), "ota_1");
        assert_string_equal(e2e_jstr(after, "state"), "valid");
        expect_runs(ok[i], "2.0.0", "ota_1", "valid");
    }
    expect_dev(&r, wrong, "rejected", "HTTP 401");
    expect_dev(&r, wrong, "rejected", device_msg);
    expect_dev(&r, c3, "skipped", "esp32c3");
    expect_dev(&r, off, "unreachable", "before the upload");
    expect_dev(&r, done, "skipped", "already runs 2.0.0");
    expect_untouched(&b_wrong, wrong);
    expect_untouched(&b_c3, c3);
    expect_untouched(&b_done, done);
    assert_int_equal(e2e_log_count(c3, "ota:"), 0);
    assert_int_equal(e2e_log_count(done, "ota:"), 0);
    run_free(&r);

    /* only devices the image is not for: nothing deployed, exit 2 */
    struct args others = {0};
    add(&others, "deploy");
    add(&others, fw_v2);
    add_nodes(&others, &c3, 1);
    for (size_t i = 0; opts[i]; i++)
        add(&others, opts[i]);
    run_aloft(&r, others.v);
    expect_summary(&r, (int[S_N]){[S_SKIPPED] = 1}, 2);
    run_free(&r);

    /* the same again: nothing left to do, every device skipped, success */
    struct args again = {0};
    add(&again, "deploy");
    add(&again, fw_v2);
    add_nodes(&again, ok, 5);
    for (size_t i = 0; opts[i]; i++)
        add(&again, opts[i]);
    run_aloft(&r, again.v);
    expect_summary(&r, (int[S_N]){[S_SKIPPED] = 5}, 0);
    run_free(&r);

    /* an image that panics at boot: the bootloader rolls back to 2.0.0 */
    const char *panic[] = {"deploy", fw_panic, psk2->listen, "--psk", PSK, "--timeout", "15", "--json", NULL};
    run_aloft(&r, panic);
    expect_summary(&r, (int[S_N]){[S_ROLLED_BACK] = 1}, 1);
    expect_dev(&r, psk2, "rolled_back", "PANIC");
    assert_string_equal(e2e_jstr(cJSON_GetObjectItemCaseSensitive(device(&r, psk2), "after"), "reset_reason"),
                        "PANIC");
    expect_runs(psk2, "2.0.0", "ota_1", "valid");
    assert_int_equal(e2e_log_count(psk2, "Guru Meditation"), 1);
    run_free(&r);

    /* an image that runs but never confirms itself */
    const char *noconf[] = {"deploy", fw_noconfirm, plain0->listen, "--timeout", "3", "--json", NULL};
    run_aloft(&r, noconf);
    expect_summary(&r, (int[S_N]){[S_UNCONFIRMED] = 1}, 1);
    expect_dev(&r, plain0, "unconfirmed", "pending_verify");
    expect_runs(plain0, "4.0.0", "ota_0", "pending_verify");
    run_free(&r);

    /* the device restarts into the image, but it is not the version asked for */
    const char *other[] = {"deploy", fw_v1, plain1->listen, "--expect-version", "9.9.9", "--timeout", "15", "--json",
                           NULL};
    run_aloft(&r, other);
    expect_summary(&r, (int[S_N]){[S_UNCHANGED] = 1}, 1);
    expect_dev(&r, plain1, "unchanged", "expected 9.9.9");
    assert_string_equal(e2e_jstr(r.json, "expected_version"), "9.9.9");
    run_free(&r);
}

/* The same classification as text: a table row per device and a summary. */
static void test_text_report(void **state)
{
    (void)state;
    struct e2e_node *good = node("t-good", 0, fw_v1, NULL, NULL);
    struct e2e_node *bad = node("t-wrongpsk", 1, fw_v1, "other", NULL);
    const char *args[] = {"deploy", fw_v2, good->listen, bad->listen, "--psk", PSK, "--timeout", "15", NULL};
    struct run r;
    run_aloft(&r, args);
    assert_int_equal(r.code, 1);
    assert_null(r.json);
    char row[200];
    snprintf(row, sizeof row, "\n%-22s %-12s %s", good->listen, "updated", "ota_0 -> ota_1");
    assert_non_null(strstr(r.out, row));
    snprintf(row, sizeof row, "\n%-22s %-12s %s", bad->listen, "rejected", "HTTP 401");
    assert_non_null(strstr(r.out, row));
    if (!strstr(r.out, "summary: 1 updated, 1 rejected, of 2 devices"))
        dump(&r);
    assert_non_null(strstr(r.out, "summary: 1 updated, 1 rejected, of 2 devices"));
    run_free(&r);
}

/* --canary 1: the first device still to update gets the image first; when it
 * fails nobody else is touched. An unreachable device does not count as a
 * failed canary; a healthy canary lets the rest through. */
static void test_canary(void **state)
{
    (void)state;
    struct e2e_node *off = node("c-stopped", 0, fw_v1, NULL, NULL);
    e2e_node_stop(off);
    struct e2e_node *ns[4];
    for (unsigned i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "c-node%u", i);
        ns[i] = node(name, 1 + i, fw_v1, NULL, NULL);
    }
    struct before b[4];
    for (int i = 1; i < 4; i++)
        before_take(&b[i], ns[i]);

    struct run r;
    const char *bad[] = {"deploy", fw_panic, off->listen, ns[0]->listen, ns[1]->listen, ns[2]->listen, ns[3]->listen,
                         "--canary", "1", "--timeout", "15", "--json", NULL};
    run_aloft(&r, bad);
    expect_summary(&r, (int[S_N]){[S_ROLLED_BACK] = 1, [S_UNREACHABLE] = 1, [S_SKIPPED] = 3}, 1);
    expect_dev(&r, off, "unreachable", NULL);
    expect_dev(&r, ns[0], "rolled_back", "PANIC");
    for (int i = 1; i < 4; i++) {
        expect_dev(&r, ns[i], "skipped", "a canary failed");
        expect_untouched(&b[i], ns[i]);
        assert_int_equal(e2e_log_count(ns[i], "ota:"), 0);
    }
    run_free(&r);

    /* the text report says why it stopped */
    const char *bad_text[] = {"deploy", fw_panic, ns[0]->listen, ns[1]->listen, "--canary", "1", "--timeout", "15",
                              NULL};
    run_aloft(&r, bad_text);
    assert_int_equal(r.code, 1);
    assert_non_null(strstr(r.out, "stopped: a canary failed"));
    run_free(&r);
    assert_int_equal(e2e_log_count(ns[1], "ota:"), 0);

    /* a healthy canary: the rest follow; the stopped device still fails the run */
    const char *good[] = {"deploy", fw_v2, off->listen, ns[0]->listen, ns[1]->listen, ns[2]->listen, ns[3]->listen,
                          "--canary", "1", "--timeout", "15", "--json", NULL};
    run_aloft(&r, good);
    expect_summary(&r, (int[S_N]){[S_UPDATED] = 4, [S_UNREACHABLE] = 1}, 1);
    for (int i = 0; i < 4; i++)
        expect_runs(ns[i], "2.0.0", "ota_1", "valid");
    run_free(&r);
}

/* --max-failures F --parallel 1: after the F-th failure no new upload starts,
 * whether the failure is a refusal or a rollback seen only after the restart. */
static void test_max_failures(void **state)
{
    (void)state;
    struct e2e_node *wrong = node("m-wrongpsk", 0, fw_v1, "other", NULL);
    struct e2e_node *ns[4];
    for (unsigned i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "m-node%u", i);
        ns[i] = node(name, 1 + i, fw_v1, NULL, NULL);
    }
    struct before b[4];
    for (int i = 1; i < 4; i++)
        before_take(&b[i], ns[i]);

    struct run r;
    const char *two[] = {"deploy", fw_panic, wrong->listen, ns[0]->listen, ns[1]->listen, ns[2]->listen,
                         ns[3]->listen, "--psk", PSK, "--parallel", "1", "--max-failures", "2", "--timeout", "15",
                         "--json", NULL};
    run_aloft(&r, two);
    expect_summary(&r, (int[S_N]){[S_REJECTED] = 1, [S_ROLLED_BACK] = 1, [S_SKIPPED] = 3}, 1);
    expect_dev(&r, wrong, "rejected", "401");
    expect_dev(&r, ns[0], "rolled_back", NULL);
    for (int i = 1; i < 4; i++) {
        expect_dev(&r, ns[i], "skipped", "--max-failures 2 reached");
        expect_untouched(&b[i], ns[i]);
    }
    run_free(&r);

    /* --max-failures 1: the first refusal stops everything */
    const char *one[] = {"deploy", fw_v2, wrong->listen, ns[1]->listen, ns[2]->listen, "--psk", PSK, "--parallel",
                         "1", "--max-failures", "1", "--timeout", "15", "--json", NULL};
    run_aloft(&r, one);
    expect_summary(&r, (int[S_N]){[S_REJECTED] = 1, [S_SKIPPED] = 2}, 1);
    expect_dev(&r, ns[1], "skipped", "--max-failures 1 reached");
    run_free(&r);
    assert_int_equal(e2e_log_count(ns[1], "ota:"), 0);
    assert_int_equal(e2e_log_count(ns[2], "ota:"), 0);
}

/* --no-verify is the seed's trust in the reply: "sent", exit 0, no polling
 * (no after-state in the report), even for an image that then panics. A
 * refusal is still a failure. */
static void test_no_verify(void **state)
{
    (void)state;
    struct e2e_node *a = node("n-plain", 0, fw_v1, NULL, NULL);
    struct e2e_node *b = node("n-psk", 1, fw_v1, PSK, NULL);
    struct e2e_node *c = node("n-panic", 2, fw_v1, NULL, NULL);
    struct run r;
    const char *good[] = {"deploy", fw_v2, a->listen, b->listen, "--psk", PSK, "--no-verify", "--timeout", "15",
                          "--json", NULL};
    run_aloft(&r, good);
    expect_summary(&r, (int[S_N]){[S_SENT] = 2}, 0);
    expect_dev(&r, a, "sent", "not verified");
    expect_dev(&r, b, "sent", "not verified");
    assert_null(cJSON_GetObjectItemCaseSensitive(device(&r, a), "after"));
    assert_null(cJSON_GetObjectItemCaseSensitive(device(&r, b), "after"));
    run_free(&r);
    /* the devices did take it */
    assert_int_equal(e2e_node_wait_boot(a), 0);
    assert_int_equal(e2e_node_wait_boot(b), 0);
    expect_runs(a, "2.0.0", "ota_1", NULL);
    expect_runs(b, "2.0.0", "ota_1", NULL);

    /* the seed's blind spot: a panicking image is "sent", exit 0 */
    const char *panic[] = {"deploy", fw_panic, c->listen, "--no-verify", "--json", NULL};
    run_aloft(&r, panic);
    expect_summary(&r, (int[S_N]){[S_SENT] = 1}, 0);
    run_free(&r);
    assert_int_equal(e2e_node_wait_log(c, "reset_reason=PANIC", 1, E2E_BOOT_TIMEOUT_MS), 0);

    /* a refusal is reported even without verification */
    struct e2e_node *d = node("n-psk2", 3, fw_v1, PSK, NULL);
    const char *refused[] = {"deploy", fw_v2, d->listen, "--psk", "nope", "--no-verify", "--json", NULL};
    run_aloft(&r, refused);
    expect_summary(&r, (int[S_N]){[S_REJECTED] = 1}, 1);
    run_free(&r);
}

/* discover over a CIDR range finds exactly the running nodes; status has a
 * row for every target, answering or not. */
static void test_discover_status(void **state)
{
    (void)state;
    struct e2e_node *run_[5];
    run_[0] = node("d-a", 0, fw_v1, NULL, NULL);
    run_[1] = node("d-b", 3, fw_v1, PSK, NULL);
    run_[2] = node("d-c", 6, fw_c3, NULL, NULL);
    run_[3] = node("d-d", 9, fw_v2, NULL, NULL);
    run_[4] = node("d-e", 13, fw_v1, NULL, NULL); /* 127.0.0.110, the last host of the /28 */
    struct e2e_node *off = node("d-off", 1, fw_v1, NULL, NULL);
    e2e_node_stop(off);

    struct run r;
    const char *disc[] = {"discover", NET, "--port", port_s, "--json", NULL};
    run_aloft(&r, disc);
    assert_int_equal(r.code, 0);
    assert_non_null(r.json);
    assert_int_equal(cJSON_GetArraySize(r.json), 5);
    for (int i = 0; i < 5; i++) {
        bool found = false;
        const cJSON *d;
        cJSON_ArrayForEach(d, r.json)
        {
            if (strcmp(e2e_jstr(d, "address"), run_[i]->listen))
                continue;
            found = true;
            assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "ok")));
            assert_string_equal(e2e_jstr(d, "chip"), i == 2 ? "esp32c3" : "esp32s3");
            assert_string_equal(e2e_jstr(d, "version"), i == 3 ? "2.0.0" : i == 2 ? LONG_VERSION : "1.0.0");
            assert_string_equal(e2e_jstr(d, "project"), "demo");
            assert_string_equal(e2e_jstr(d, "running_partition"), "ota_0");
        }
        if (!found)
            dump(&r);
        assert_true(found);
    }
    run_free(&r);

    /* the table: a header and one row per running node */
    const char *disc_text[] = {"discover", NET, "--port", port_s, NULL};
    run_aloft(&r, disc_text);
    assert_int_equal(r.code, 0);
    unsigned lines = 0;
    for (const char *p = r.out; (p = strchr(p, '\n')); p++)
        lines++;
    assert_int_equal(lines, 6);
    assert_non_null(strstr(r.out, run_[2]->listen));
    /* aligned, the long version included: every row's partition under the header's */
    size_t col = (size_t)(strstr(r.out, "partition") - r.out);
    for (const char *p = strchr(r.out, '\n') + 1; *p; p = strchr(p, '\n') + 1)
        assert_memory_equal(p + col, "ota_0 ", 6);
    assert_null(strstr(r.out, off->listen));
    run_free(&r);

    /* a range where nothing answers: exit 1 */
    const char *none[] = {"discover", "127.0.0.112/30", "--port", port_s, "--json", NULL};
    run_aloft(&r, none);
    assert_int_equal(r.code, 1);
    run_free(&r);

    /* status: one row each, the stopped one unreachable, exit 1 */
    const char *st[] = {"status", run_[0]->listen, off->listen, run_[2]->listen, NULL};
    run_aloft(&r, st);
    assert_int_equal(r.code, 1);
    char row[200];
    /* the version column as wide as the longest version */
    snprintf(row, sizeof row, "\n%-22s %-18s %-9s %-31s %-9s %-15s %-9s", run_[0]->listen, "demo", "esp32s3", "1.0.0",
             "ota_0", "undefined", "POWERON");
    if (!strstr(r.out, row))
        dump(&r);
    assert_non_null(strstr(r.out, row));
    snprintf(row, sizeof row, "\n%-22s %-18s %-9s %s ota_0", run_[2]->listen, "demo", "esp32c3", LONG_VERSION);
    assert_non_null(strstr(r.out, row));
    snprintf(row, sizeof row, "\n%-22s unreachable: ", off->listen);
    assert_non_null(strstr(r.out, row));
    run_free(&r);

    const char *st_json[] = {"status", run_[0]->listen, run_[1]->listen, off->listen, "--json", NULL};
    run_aloft(&r, st_json);
    assert_int_equal(r.code, 1);
    assert_int_equal(cJSON_GetArraySize(r.json), 3);
    const cJSON *d0 = cJSON_GetArrayItem(r.json, 0), *d2 = cJSON_GetArrayItem(r.json, 2);
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d0, "ok")));
    assert_string_equal(e2e_jstr(d0, "state"), "undefined");
    assert_true(e2e_jnum(d0, "boot_count") == 1);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(d2, "ok")));
    assert_true(e2e_jstr(d2, "error")[0] != 0);
    run_free(&r);

    const char *all_up[] = {"status", run_[0]->listen, run_[1]->listen, NULL};
    run_aloft(&r, all_up);
    if (r.code != 0)
        dump(&r);
    assert_int_equal(r.code, 0);
    run_free(&r);
}

/* A web server that is not an aloft device (aloftd: GET /ota/status is 404
 * there) answered: aloft status says so, never "unreachable". */
static void test_not_a_device(void **state)
{
    (void)state;
    struct aloftd_proc web;
    aloftd_init(&web, "not-a-device");
    assert_int_equal(aloftd_start(&web, NULL), 0);
    const char *addr = web.url + strlen("http://");
    struct run r;
    const char *st[] = {"status", addr, NULL};
    run_aloft(&r, st);
    assert_int_equal(r.code, 1);
    char row[1200];
    snprintf(row, sizeof row, "%-22s a web server, but not an aloft device (GET /ota/status: HTTP 404)", addr);
    if (!strstr(r.out, row))
        dump(&r);
    assert_non_null(strstr(r.out, row));
    assert_null(strstr(r.out, "unreachable"));
    run_free(&r);

    const char *st_json[] = {"status", addr, "--json", NULL};
    run_aloft(&r, st_json);
    assert_int_equal(r.code, 1);
    const cJSON *d = cJSON_GetArrayItem(r.json, 0);
    assert_true(cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(d, "ok")));
    assert_true(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(d, "reachable")));
    assert_non_null(strstr(e2e_jstr(d, "error"), "not an aloft device"));
    run_free(&r);

    /* deploy skips it for what it is, and with no device to update exits 2 */
    const char *dep[] = {"deploy", fw_v1, addr, NULL};
    run_aloft(&r, dep);
    assert_int_equal(r.code, 2);
    snprintf(row, sizeof row, "%-22s %-12s a web server, but not an aloft device", addr, "skipped");
    if (!strstr(r.out, row))
        dump(&r);
    assert_non_null(strstr(r.out, row));
    assert_null(strstr(r.out, "unreachable"));
    run_free(&r);
    assert_int_equal(aloftd_stop(&web), 0);
}

/* deploy --frontend flips the active www slot on every node, and back. */
static void test_frontend(void **state)
{
    (void)state;
    struct e2e_node *ns[4];
    ns[0] = node("w-a", 0, fw_v1, NULL, NULL);
    ns[1] = node("w-b", 1, fw_v1, PSK, NULL);
    ns[2] = node("w-c", 2, fw_v2, PSK, NULL);
    ns[3] = node("w-d", 3, fw_c3, NULL, NULL); /* a frontend is not chip-specific */
    int before[4];
    for (int i = 0; i < 4; i++)
        before[i] = www_slot(ns[i]);

    struct run r;
    for (int round = 0; round < 2; round++) {
        const char *args[] = {"deploy", "--frontend", www_bin, ns[0]->listen, ns[1]->listen, ns[2]->listen,
                              ns[3]->listen, "--psk", PSK, "--timeout", "15", "--json", NULL};
        run_aloft(&r, args);
        expect_summary(&r, (int[S_N]){[S_UPDATED] = 4}, 0);
        assert_string_equal(e2e_jstr(cJSON_GetObjectItemCaseSensitive(r.json, "image"), "kind"), "frontend");
        for (int i = 0; i < 4; i++) {
            int now = www_slot(ns[i]);
            assert_int_equal(now, round == 0 ? 1 - before[i] : before[i]);
            expect_dev(&r, ns[i], "updated", "www slot");
            /* the page now comes from the new slot */
            char url[100];
            snprintf(url, sizeof url, "%s/", ns[i]->url);
            struct e2e_http h;
            const char *g[] = {url, NULL};
            assert_int_equal(e2e_curl(&h, g), 200);
            assert_non_null(strstr(h.body, "aloft-e2e-deploy-www"));
            e2e_http_free(&h);
        }
        run_free(&r);
    }
    /* firmware untouched by frontend updates */
    expect_runs(ns[0], "1.0.0", "ota_0", NULL);

    /* not a LittleFS image: exit 2 before any device is touched; an app
     * image is called one, and no advice names the given file as an output */
    const char *bad[] = {"deploy", "--frontend", fw_v2, ns[0]->listen, "--json", NULL};
    run_aloft(&r, bad);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "is an app image, not a frontend's LittleFS image: deploy it without --frontend"));
    run_free(&r);
    const char *junk = e2e_path("junk.bin");
    e2e_file_write(junk, "not a filesystem", 16);
    const char *bad2[] = {"deploy", "--frontend", junk, ns[0]->listen, "--json", NULL};
    run_aloft(&r, bad2);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "not a LittleFS image"));
    assert_non_null(strstr(r.err, "aloft mkfs DIR -o www.bin"));
    assert_null(strstr(r.err, "-o /"));
    run_free(&r);
    assert_int_equal(www_slot(ns[0]), before[0]);
}

/* Ctrl-C while uploads run (100 KB/s links, 400 KB image, two at a time):
 * no new upload starts, the started ones finish and are verified, exit 130
 * with a report. A second Ctrl-C stops at once. */
static void test_sigint(void **state)
{
    (void)state;
    const char *slow[] = {"--link-rate", "100K", NULL};
    struct e2e_node *ns[4];
    for (unsigned i = 0; i < 4; i++) {
        char name[16];
        snprintf(name, sizeof name, "i-node%u", i);
        ns[i] = node(name, i, fw_v1, NULL, slow);
    }
    struct before b[4];
    for (int i = 2; i < 4; i++)
        before_take(&b[i], ns[i]);

    struct run r;
    const char *args[] = {"deploy", fw_big, ns[0]->listen, ns[1]->listen, ns[2]->listen, ns[3]->listen,
                          "--parallel", "2", "--timeout", "15", "--json", NULL};
    run_aloft_int(&r, args, 1500, 0);
    expect_summary(&r, (int[S_N]){[S_UPDATED] = 2, [S_SKIPPED] = 2}, 130);
    expect_dev(&r, ns[0], "updated", NULL);
    expect_dev(&r, ns[1], "updated", NULL);
    expect_dev(&r, ns[2], "skipped", "interrupted");
    expect_dev(&r, ns[3], "skipped", "interrupted");
    run_free(&r);
    for (int i = 2; i < 4; i++) {
        expect_untouched(&b[i], ns[i]);
        assert_int_equal(e2e_log_count(ns[i], "ota:"), 0);
    }
    expect_runs(ns[0], "2.1.0", "ota_1", "valid");

    /* twice: aloft stops without waiting for the devices and still reports.
     * The devices it cut off are reported as interrupted, state unknown: a
     * device may still finish an image whose bytes were all sent. Only wait
     * until each has settled. */
    const char *args2[] = {"deploy", fw_big, ns[2]->listen, ns[3]->listen, "--timeout", "15", "--json", NULL};
    run_aloft_int(&r, args2, 1000, 1300);
    expect_summary(&r, (int[S_N]){[S_INTERRUPTED] = 2}, 130);
    expect_dev(&r, ns[2], "interrupted", "state is unknown");
    expect_dev(&r, ns[3], "interrupted", "state is unknown");
    run_free(&r);
    for (int i = 2; i < 4; i++) {
        uint64_t end = e2e_now_ms() + 15000;
        while (e2e_log_count(ns[i], "ota: upload dropped") + e2e_log_count(ns[i], "bytes verified into") == 0) {
            assert_true(e2e_now_ms() < end);
            e2e_sleep_ms(50);
        }
        if (e2e_log_count(ns[i], "bytes verified into"))
            assert_int_equal(e2e_node_wait_boot(ns[i]), 0);
        cJSON *st = e2e_status(ns[i]);
        assert_false(cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(st, "busy")));
        cJSON_Delete(st);
    }
}

/* --help teaches each command (exit 0); usage and image errors exit 2. */
static void test_help_and_errors(void **state)
{
    (void)state;
    const char *cmds[] = {"deploy", "discover", "status"};
    struct run r;
    for (int i = 0; i < 3; i++) {
        const char *args[] = {cmds[i], "--help", NULL};
        run_aloft(&r, args);
        assert_int_equal(r.code, 0);
        assert_non_null(strstr(r.out, "usage: aloft "));
        assert_non_null(strstr(r.out, "example"));
        run_free(&r);
    }
    struct e2e_node *n = node("h-node", 0, fw_v1, NULL, NULL);
    const char *missing[] = {"deploy", e2e_path("no-such.bin"), n->listen, NULL};
    run_aloft(&r, missing);
    assert_int_equal(r.code, 2);
    run_free(&r);
    const char *garbage[] = {"deploy", not_an_image, n->listen, NULL};
    run_aloft(&r, garbage);
    assert_int_equal(r.code, 2);
    assert_non_null(strstr(r.err, "not a usable image"));
    run_free(&r);
    const char *no_target[] = {"deploy", fw_v2, NULL};
    run_aloft(&r, no_target);
    assert_int_equal(r.code, 2);
    run_free(&r);
    /* a range where nothing answers: no targets */
    const char *nobody[] = {"deploy", fw_v2, "127.0.0.112/30", "--port", port_s, NULL};
    run_aloft(&r, nobody);
    assert_int_equal(r.code, 2);
    run_free(&r);
    const char *bad_opt[] = {"deploy", fw_v2, n->listen, "--parallel", "0", NULL};
    run_aloft(&r, bad_opt);
    assert_int_equal(r.code, 2);
    run_free(&r);
    assert_int_equal(e2e_log_count(n, "ota:"), 0);
}

int main(void)
{
    e2e_init(40);
    pick_port();
    printf("test_deploy: fleet on 127.0.0.%u..%u port %u\n", HOST0, HOST0 + HOSTS - 1, port);
    fflush(stdout);
    snprintf(fw_v1, sizeof fw_v1, "%s", e2e_path("v1.bin"));
    snprintf(fw_v2, sizeof fw_v2, "%s", e2e_path("v2.bin"));
    snprintf(fw_c3, sizeof fw_c3, "%s", e2e_path("c3.bin"));
    snprintf(fw_panic, sizeof fw_panic, "%s", e2e_path("panic.bin"));
    snprintf(fw_noconfirm, sizeof fw_noconfirm, "%s", e2e_path("noconfirm.bin"));
    snprintf(fw_big, sizeof fw_big, "%s", e2e_path("big.bin"));
    snprintf(www_bin, sizeof www_bin, "%s", e2e_path("www.bin"));
    snprintf(not_an_image, sizeof not_an_image, "%s", e2e_path("garbage.bin"));
    e2e_image(fw_v1, "esp32s3", "1.0.0", 0, NULL);
    e2e_image(fw_v2, "esp32s3", "2.0.0", 0, NULL);
    e2e_image(fw_c3, "esp32c3", LONG_VERSION, 0, NULL);
    e2e_image(fw_panic, "esp32s3", "3.0.0", 0, "panic-on-boot");
    e2e_image(fw_noconfirm, "esp32s3", "4.0.0", 0, "no-confirm");
    e2e_image(fw_big, "esp32s3", "2.1.0", 400000, NULL);
    e2e_file_write(not_an_image, "this is not an ESP app image\n", 29);
    const char *wwwdir = e2e_path("www");
    mkdir(wwwdir, 0755);
    char index[400];
    snprintf(index, sizeof index, "%s/index.html", wwwdir);
    const char *page = "<!doctype html><title>aloft-e2e-deploy-www</title>\n";
    e2e_file_write(index, page, strlen(page));
    const char *mkfs[] = {"aloft", "mkfs", wwwdir, "-o", www_bin, NULL};
    if (aloft_test_run(NULL, mkfs) != 0) {
        fprintf(stderr, "test_deploy: aloft mkfs failed\n");
        return 1;
    }

    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fleet_outcomes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canary, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_failures, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_verify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_discover_status, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_device, setup, teardown),
        cmocka_unit_test_setup_teardown(test_frontend, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sigint, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_and_errors, setup, teardown),
    };
    /* ALOFT_E2E_ONLY=test_canary runs only the tests whose names contain it */
    const char *only = getenv("ALOFT_E2E_ONLY");
    struct CMUnitTest chosen[sizeof tests / sizeof tests[0]];
    size_t k = 0;
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++)
        if (!only || strstr(tests[i].name, only))
            chosen[k++] = tests[i];
    return _cmocka_run_group_tests("test_deploy", chosen, k, NULL, NULL);
}
