/* aloft end-to-end tests: real aloft-node processes on loopback, curl as
 * the client (DESIGN.md "Tests").
 *
 * Every process a test starts is registered here and stopped by PID from
 * e2e_teardown (use it as each test's cmocka teardown) and again at exit;
 * children also die with the test process (PR_SET_PDEATHSIG). Each test
 * executable calls e2e_init with its own id: its nodes listen on
 * 127.0.0.(20 + id) on ports nobody else holds, so executables running in
 * parallel never meet. */
#ifndef ALOFT_E2E_H
#define ALOFT_E2E_H

#include "testutil.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define E2E_BOOT_TIMEOUT_MS 20000u /* from start or restart to `http: serving` */

/* The default 4 MB table (partitions/aloft-4mb.csv). */
#define E2E_NVS_OFF 0x9000u
#define E2E_NVS_SIZE 0x6000u
#define E2E_OTADATA_OFF 0xf000u
#define E2E_OTADATA_SIZE 0x2000u
#define E2E_SLOT_SIZE_4M 0xf0000u

struct e2e_node {
    pid_t pid;             /* 0: not running */
    char name[32];
    char flash[300];       /* the flash file */
    char log[300];         /* stdout and stderr of every run, appended */
    char listen[32];       /* 127.0.0.X:PORT */
    char url[64];          /* http://127.0.0.X:PORT */
    unsigned serving;      /* `http: serving` lines seen so far */
    char psk[40];          /* provisioned by e2e_node_start ("" for none) */
    char auth[80];         /* "Authorization: Bearer <psk>", or "" */
};

struct e2e_http {
    int code;              /* HTTP status; 0 when no reply came */
    int rc;                /* curl's exit status (0 ok, 52 empty reply, 56 recv failure, 28 timeout...) */
    char *body;            /* NUL-terminated */
    size_t len;
    char *headers;         /* the response header block, NUL-terminated */
};

struct e2e_curl_job {
    pid_t pid;
    char out[300], body[300], hdr[300];
};

/* Call once from main, before the tests: id (1..200) unique per test
 * executable. Prints the address and the random seed (ALOFT_E2E_SEED
 * overrides it). */
void e2e_init(unsigned id);

/* The test process's temporary directory (removed at exit). */
const char *e2e_dir(void);

/* "<e2e_dir>/<name>" into a static ring of buffers (valid for a while). */
const char *e2e_path(const char *name);

/* Name a node: its flash and log files under e2e_dir, a free port and a
 * PSK of its own (devices refuse every change without one). A test of
 * devices without a PSK clears psk[0]. Nothing runs yet. */
void e2e_node_init(struct e2e_node *n, const char *name);

/* Start aloft-node --flash <flash> --listen <listen> --restart-delay 100
 * [--psk <psk>] <args...> (NULL-terminated; later options override those;
 * a --psk among them becomes the node's psk), stdout and
 * stderr appended to the log, and wait for its next `http: serving` line.
 * Returns 0, or -1 (with the log's tail printed) when it exited or did not
 * serve within E2E_BOOT_TIMEOUT_MS. */
int e2e_node_start(struct e2e_node *n, const char *const args[]);

/* e2e_node_init, then a new 4 MB flash (the default partition table) with
 * firmware in ota_0, started with extra (NULL-terminated, may be NULL). */
void e2e_node_start_with(struct e2e_node *n, const char *name, const char *firmware, const char *const extra[]);

/* The same node restarts itself (same PID) after an update, a panic or a
 * power cut: wait for the next `http: serving` line. Returns 0 or -1. */
int e2e_node_wait_boot(struct e2e_node *n);

/* Is the device the ESP-IDF example built for the host (ALOFT_E2E_DEVICE)
 * rather than aloft-node? Its options are the example's menuconfig and its
 * environment (tests/fake-idf/startup); it is an ESP32-C3, and e2e_image
 * swaps esp32s3 and esp32c3 for it. */
bool e2e_example(void);

/* The device's chip: "esp32s3" (aloft-node in the suites) or "esp32c3". */
const char *e2e_chip(void);

/* Skip the test (cmocka's skip) against the example, saying why: it needs
 * what only the simulator has, or what the example was not built for. */
void e2e_simulator_only(const char *what);

/* Wait until the log holds needle at least count times. Returns 0 or -1. */
int e2e_node_wait_log(struct e2e_node *n, const char *needle, unsigned count, unsigned timeout_ms);

/* How often needle occurs in the node's log. */
unsigned e2e_log_count(const struct e2e_node *n, const char *needle);

/* The whole log, malloc'd and NUL-terminated. */
char *e2e_log_read(const struct e2e_node *n);

/* The last boot line's reset reason and partition, e.g. "SW" "ota_1",
 * into 16-byte buffers. Returns 0 or -1 when the log has no boot line. */
int e2e_last_boot(const struct e2e_node *n, char reason[16], char part[17]);

/* Fork and exec exe (a path, or a name looked up in PATH) with stdin from
 * /dev/null and stdout (and stderr when err_too) into out, opened with
 * O_CREAT | O_WRONLY | mode (O_APPEND or O_TRUNC). The child never outlives
 * the test, even when it is killed. Returns its PID. */
pid_t e2e_spawn(const char *exe, const char *const argv[], const char *out, int mode, bool err_too);

/* Stop by PID: SIGTERM, SIGKILL after 3 s; reaped. No-op when not running. */
void e2e_node_stop(struct e2e_node *n);

/* Power off now: SIGKILL, reaped. */
void e2e_node_kill9(struct e2e_node *n);

/* Has the process exited (reaped then)? */
bool e2e_node_exited(struct e2e_node *n);

/* cmocka teardown: stop every node and curl this process started. */
int e2e_teardown(void **state);

/* Run curl -q -s --noproxy '*' --max-time 60 -o BODY -D HEADERS
 * -w '%{http_code}' <args...> and wait. Returns the HTTP status (0: none). */
int e2e_curl(struct e2e_http *r, const char *const args[]);

/* The same in the background; e2e_curl_wait collects it (r may be NULL). */
void e2e_curl_start(struct e2e_curl_job *j, const char *const args[]);
int e2e_curl_wait(struct e2e_curl_job *j, struct e2e_http *r);
void e2e_http_free(struct e2e_http *r);

/* The `error` code of a JSON error body, or "" when there is none. */
const char *e2e_http_error(const struct e2e_http *r);

/* Has the response header name (case-insensitive) the value (prefix)? */
bool e2e_http_header(const struct e2e_http *r, const char *name, const char *value);

/* POST file raw to url path as application/octet-stream (curl --data-binary),
 * with the node's PSK and extra curl args (NULL-terminated, may be NULL; a
 * "Content-Type: ..." or "Authorization: ..." among them replaces the
 * default one). Returns the status. */
int e2e_upload(struct e2e_node *n, const char *path, const char *file, struct e2e_http *r,
               const char *const extra[]);

/* GET path as JSON; NULL (test failure) unless 200 with JSON. cJSON_Delete it. */
cJSON *e2e_get_json(struct e2e_node *n, const char *path);
cJSON *e2e_status(struct e2e_node *n); /* GET /ota/status */

/* GET path as JSON, or NULL when there is no 200 JSON reply (a node that is
 * restarting): for polling. */
cJSON *e2e_try_json(struct e2e_node *n, const char *path);

/* Poll /ota/status until its state is `state` (a healthy image marks
 * itself valid just after it starts serving). Returns 0 or -1. */
int e2e_wait_state(struct e2e_node *n, const char *state, unsigned timeout_ms);

/* A string member ("" when absent) / a number member (-1 when absent). */
const char *e2e_jstr(const cJSON *j, const char *key);
double e2e_jnum(const cJSON *j, const char *key);

/* A TCP connection to the node (blocking), for clients curl cannot play
 * (one that stalls mid-body). Fails the test when it cannot connect. */
int e2e_connect(const struct e2e_node *n);

/* A port on 127.0.0.1 that the kernel picked as free just now, for servers
 * that cannot be told to pick one themselves (mosquitto, PostgreSQL). */
uint16_t e2e_free_port(void);

/* Does something accept connections on 127.0.0.1:port? */
bool e2e_port_open(uint16_t port);

/* Bytes of the flash file; malloc'd. */
uint8_t *e2e_flash_read(const struct e2e_node *n, uint32_t off, uint32_t len);

/* Offset and size of a partition from the flash file's table. Fails the test
 * when there is no such partition. */
void e2e_part(const struct e2e_node *n, const char *label, uint32_t *off, uint32_t *size);

/* What a failed update must not touch: the running slot, otadata, nvs. */
struct e2e_snap {
    char running[17];
    uint32_t run_off, run_size;
    uint8_t *run, *otadata, *nvs;
};

/* Take it (the running slot named by /ota/status). */
void e2e_snap_take(struct e2e_snap *s, struct e2e_node *n);

/* NULL when all three ranges are byte-identical now, else the name of the
 * first that differs ("running slot", "otadata", "nvs"). */
const char *e2e_snap_diff(const struct e2e_snap *s, const struct e2e_node *n);
/* Assert that the running slot and otadata are as they were; the settings
 * (nvs) may have changed (a resume point, a pull job). */
void e2e_snap_app_unchanged(const struct e2e_snap *s, const struct e2e_node *n);
void e2e_snap_free(struct e2e_snap *s);

/* aloft image make --chip chip --project demo --version version [--size
 * size] [--sim sim] -o out (size 0 / sim NULL: not given). */
void e2e_image(const char *out, const char *chip, const char *version, size_t size, const char *sim);

/* A throwaway CA (ca.pem, ca.key) and a server certificate it signs for the
 * IP address ip (srv.pem, srv.key) in e2e_dir(), made with the openssl CLI
 * (its output in openssl.log); fails the test when openssl does. */
void e2e_make_ca(const char *ip);

/* Whole files. e2e_file_read fails the test when the file is missing. */
uint8_t *e2e_file_read(const char *path, size_t *len);
void e2e_file_write(const char *path, const void *data, size_t len);

/* Deterministic random numbers from the seed e2e_init printed. */
uint32_t e2e_rand(void);

/* Milliseconds: sleep / a monotonic clock. */
void e2e_sleep_ms(unsigned ms);
uint64_t e2e_now_ms(void);

#endif
