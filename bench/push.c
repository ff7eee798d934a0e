/* bench/push: push a real ~1 MB ESP-IDF image to one aloft-node over HTTP
 * with curl, as a deploy does, and print one table:
 *
 *  - flash timing off: the time and throughput of the whole POST (erase
 *    the 3 MB slot, stream, verify, switch otadata, reply);
 *  - --flash-timing esp32: the same POST next to what the erase and the
 *    programming alone take on the chip (aloft_posix_timing_esp32 applied
 *    to the slot erase, the image's page programs and the otadata switch,
 *    exactly as the POSIX flash counts them): the physical floor;
 *  - the node's memory: resident set before the upload, its peak sampled
 *    from /proc/PID/status every millisecond during the upload, and VmHWM
 *    (since the boot, which reads the running image) — for the ~1 MB image
 *    and for a 300 KB one, to show it does not grow with the image.
 *
 * The node runs on an 8 MB flash file (aloft's 8 MB table: two 0x2f0000
 * app slots), listening on 127.0.0.30 on a free port. Timings are for
 * reference: a benchmark never fails on one.
 *
 * usage: bench_push [--node PATH] [--runs N] [IMAGE]
 *   (default: ../bin/aloft-node next to this program, 5 runs, the fixture
 *    esp-idf/esp32s3-csi-node-v0.6.4.bin) */
#define _XOPEN_SOURCE 700 /* nftw */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/part.h"
#include "aloft_posix_flash.h"
#include "default_tables.h"
#include "file.h"
#include "image_make.h"

#define ADDR "127.0.0.30"
#define FLASH_SIZE (8u << 20)
#define SECTOR 4096u
#define BLOCK 65536u
#define PAGE 256u
#define SMALL_BYTES 300000u

static char tmp[64], node_bin[1024], flash_path[300], log_path[300], listen_at[64];
static pid_t node_pid;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

static void cleanup(void)
{
    if (node_pid > 0) {
        kill(node_pid, SIGKILL);
        waitpid(node_pid, NULL, 0);
        node_pid = 0;
    }
    if (tmp[0])
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_push: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(1);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static unsigned count_in_log(const char *needle)
{
    uint8_t *data = NULL;
    size_t len = 0;
    if (aloft_file_read(log_path, &data, &len) != 0)
        return 0;
    unsigned n = 0;
    for (const char *p = (const char *)data; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(data);
    return n;
}

/* Wait for the count-th `http: serving` line (the node re-executes itself,
 * same PID, on every restart). */
static void wait_serving(unsigned count)
{
    double end = now() + 30;
    while (count_in_log("http: serving on") < count) {
        int status;
        if (waitpid(node_pid, &status, WNOHANG) == node_pid) {
            node_pid = 0;
            die("aloft-node exited; see its log %s", log_path);
        }
        if (now() > end)
            die("aloft-node did not serve within 30 s; see %s", log_path);
        sleep_ms(5);
    }
}

static uint16_t free_port(void)
{
    for (uint16_t port = (uint16_t)(21000 + getpid() % 5000); port < 32000; port++) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
        inet_pton(AF_INET, ADDR, &sa.sin_addr);
        bool ok = fd >= 0 && bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
        if (fd >= 0)
            close(fd);
        if (ok)
            return port;
    }
    die("no free port on %s", ADDR);
}

static void start_node(const char *const extra[])
{
    const char *argv[32] = {node_bin, "--flash", flash_path, "--listen", listen_at, "--restart-delay", "500", "--open"};
    size_t k = 8;
    for (size_t i = 0; extra[i]; i++)
        argv[k++] = extra[i];
    argv[k] = NULL;
    unsigned serving = count_in_log("http: serving on");
    fflush(NULL);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd < 0)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        close(fd);
        execv(node_bin, (char *const *)argv);
        _exit(127);
    }
    node_pid = pid;
    wait_serving(serving + 1);
}

static void stop_node(void)
{
    kill(node_pid, SIGTERM);
    double end = now() + 3;
    while (waitpid(node_pid, NULL, WNOHANG) != node_pid) {
        if (now() > end) {
            kill(node_pid, SIGKILL);
            waitpid(node_pid, NULL, 0);
            break;
        }
        sleep_ms(5);
    }
    node_pid = 0;
}

/* VmRSS and VmHWM of the node in kB (0 when unreadable). */
static void node_mem(unsigned long *rss, unsigned long *hwm)
{
    char path[64], buf[4096];
    snprintf(path, sizeof path, "/proc/%d/status", (int)node_pid);
    *rss = *hwm = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return;
    buf[n] = 0;
    const char *p;
    if ((p = strstr(buf, "VmRSS:")))
        *rss = strtoul(p + 6, NULL, 10);
    if ((p = strstr(buf, "VmHWM:")))
        *hwm = strtoul(p + 6, NULL, 10);
}

struct push {
    double seconds;         /* the whole POST, from curl */
    unsigned long rest_kb;  /* VmRSS before */
    unsigned long peak_kb;  /* highest VmRSS sampled during the upload */
    unsigned long hwm_kb;   /* VmHWM when the reply came (since this boot) */
};

/* POST the image with curl; sample the node's memory until curl is done;
 * wait for the node to come back. */
static struct push push(const char *image)
{
    struct push p = {0};
    unsigned long hwm;
    node_mem(&p.rest_kb, &hwm);
    char url[128], data[400], out[300];
    snprintf(url, sizeof url, "http://%s/ota", listen_at);
    snprintf(data, sizeof data, "@%s", image);
    snprintf(out, sizeof out, "%s/curl.out", tmp);
    const char *argv[] = {"curl", "-q", "-s", "--noproxy", "*", "--max-time", "120", "-o", "/dev/null", "-w",
                          "%{http_code} %{time_total}", "--data-binary", data, "-H",
                          "Content-Type: application/octet-stream", url, NULL};
    unsigned serving = count_in_log("http: serving on");
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0)
        die("fork: %s", strerror(errno));
    if (pid == 0) {
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd < 0)
            _exit(127);
        dup2(fd, STDOUT_FILENO);
        close(fd);
        execv("/usr/bin/curl", (char *const *)argv);
        _exit(127);
    }
    int status;
    while (waitpid(pid, &status, WNOHANG) != pid) {
        unsigned long rss;
        node_mem(&rss, &hwm);
        if (rss > p.peak_kb)
            p.peak_kb = rss;
        if (hwm)
            p.hwm_kb = hwm;
        usleep(1000);
    }
    uint8_t *res = NULL;
    size_t len = 0;
    int code = 0;
    if (aloft_file_read(out, &res, &len) == 0)
        sscanf((const char *)res, "%d %lf", &code, &p.seconds);
    free(res);
    if (code != 200)
        die("POST %s: HTTP %d (curl exit %d); see %s", image, code, WIFEXITED(status) ? WEXITSTATUS(status) : -1,
            log_path);
    wait_serving(serving + 1);
    return p;
}

/* What the chip itself needs: the slot erase (64 KB block erases where
 * aligned, else 4 KB sectors, as the POSIX flash issues them), the image's
 * page programs, and the otadata switch (one sector erase, one page). */
static double floor_seconds(const struct aloft_part *slot, size_t image_len)
{
    const struct aloft_posix_timing *t = &aloft_posix_timing_esp32;
    uint64_t us = 0;
    uint32_t covered = 0;
    for (uint32_t off = 0; off < slot->size; off += SECTOR) {
        if (covered == 0) {
            bool block = (slot->offset + off) % BLOCK == 0 && slot->size - off >= BLOCK;
            us += block ? t->block_erase_us : t->sector_erase_us;
            covered = block ? BLOCK : SECTOR;
        }
        covered -= SECTOR;
    }
    us += (uint64_t)t->page_program_us * ((image_len + PAGE - 1) / PAGE);
    us += t->sector_erase_us + t->page_program_us;
    return (double)us / 1e6;
}

static int by_seconds(const void *a, const void *b)
{
    double x = ((const struct push *)a)->seconds, y = ((const struct push *)b)->seconds;
    return x < y ? -1 : x > y;
}

static void row_mem(const char *what, size_t bytes, struct push *runs, int n)
{
    qsort(runs, (size_t)n, sizeof runs[0], by_seconds);
    struct push m = runs[n / 2];
    unsigned long peak = 0, hwm = 0, rest = 0;
    for (int i = 0; i < n; i++) {
        peak = runs[i].peak_kb > peak ? runs[i].peak_kb : peak;
        hwm = runs[i].hwm_kb > hwm ? runs[i].hwm_kb : hwm;
        rest = runs[i].rest_kb > rest ? runs[i].rest_kb : rest;
    }
    printf("%-30s %10zu %9.3f s %9.1f MB/s %9.1f MB %9.1f MB %9.1f MB\n", what, bytes, m.seconds,
           (double)bytes / m.seconds / 1e6, rest / 1024.0, peak / 1024.0, hwm / 1024.0);
}

int main(int argc, char **argv)
{
    const char *image = ALOFT_FIXTURES "/esp-idf/esp32s3-csi-node-v0.6.4.bin";
    int runs = 5;
    node_bin[0] = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--node") && i + 1 < argc)
            snprintf(node_bin, sizeof node_bin, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--runs") && i + 1 < argc && atoi(argv[i + 1]) > 0)
            runs = atoi(argv[++i]);
        else if (argv[i][0] != '-')
            image = argv[i];
        else {
            fprintf(stderr, "usage: bench_push [--node PATH] [--runs N] [IMAGE]\n");
            return 2;
        }
    }
    if (runs > 20)
        runs = 20;
    if (!node_bin[0]) {
        char self[1024];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            die("cannot find myself: give --node");
        self[n] = 0;
        snprintf(node_bin, sizeof node_bin, "%s/../bin/aloft-node", dirname(self));
    }
    if (access(node_bin, X_OK) != 0)
        die("%s: %s (build it, or give --node)", node_bin, strerror(errno));
    if (access("/usr/bin/curl", X_OK) != 0)
        die("/usr/bin/curl not found (apt-get install curl)");

    snprintf(tmp, sizeof tmp, "/tmp/aloft-bench-push-XXXXXX");
    if (!mkdtemp(tmp))
        die("mkdtemp: %s", strerror(errno));
    atexit(cleanup);
    signal(SIGINT, exit);
    signal(SIGTERM, exit);
    snprintf(flash_path, sizeof flash_path, "%s/flash.img", tmp);
    snprintf(log_path, sizeof log_path, "%s/node.log", tmp);
    snprintf(listen_at, sizeof listen_at, "%s:%u", ADDR, free_port());

    /* the images: the big one, a 300 KB one, and a small running firmware */
    uint8_t *big;
    size_t big_len;
    if (aloft_file_read(image, &big, &big_len) != 0)
        die("%s: %s", image, strerror(errno));
    free(big);
    char small_path[300], first_path[300];
    snprintf(small_path, sizeof small_path, "%s/small.bin", tmp);
    snprintf(first_path, sizeof first_path, "%s/first.bin", tmp);
    struct aloft_image_make_opts o = {.chip_id = (uint16_t)aloft_chip_id("esp32s3"), .project = "bench",
                                      .version = "0.3.0", .size = SMALL_BYTES};
    uint8_t *img;
    size_t small_len, first_len;
    int rc = aloft_image_make(&o, &img, &small_len);
    if (rc || aloft_file_write(small_path, img, small_len) != 0)
        die("making the 300 KB image: %s", rc ? aloft_strerror(rc) : strerror(errno));
    free(img);
    o.version = "0.1.0";
    o.size = 0;
    rc = aloft_image_make(&o, &img, &first_len);
    if (rc || aloft_file_write(first_path, img, first_len) != 0)
        die("making the first firmware: %s", rc ? aloft_strerror(rc) : strerror(errno));
    free(img);

    /* the update slots of the 8 MB table (both the same size) */
    static struct aloft_part_table t;
    const char *csv = aloft_default_table(FLASH_SIZE);
    uint32_t line = 0;
    if (!csv || aloft_part_csv_parse(&t, csv, strlen(csv), ALOFT_PART_TABLE_OFFSET, &line) != 0)
        die("no default 8 MB partition table");
    const struct aloft_part *ota0 = aloft_part_ota(&t, 0), *ota1 = aloft_part_ota(&t, 1);
    if (!ota0 || !ota1)
        die("the 8 MB table has no ota_0/ota_1");

    const char *create[] = {"--create", "--flash-size", "8M", "--firmware", first_path, NULL};
    start_node(create);

    struct push big_runs[20], small_runs[20];
    for (int i = 0; i < runs; i++)
        big_runs[i] = push(image);
    for (int i = 0; i < runs; i++)
        small_runs[i] = push(small_path);
    stop_node();

    /* the same node, booted again with the chip's erase/program times */
    const char *timed[] = {"--flash-timing", "esp32", NULL};
    start_node(timed);
    struct push big_timed = push(image);
    struct push small_timed = push(small_path);
    stop_node();
    /* every push alternates slots; equal sizes, so the floor is the same for both */
    double big_floor = floor_seconds(ota1, big_len), small_floor = floor_seconds(ota1, small_len);
    (void)ota0;

    printf("\nbench/push: POST /ota with curl over loopback to one aloft-node (8 MB flash, ota slots 0x%x bytes)\n",
           ota1->size);
    char name[1024];
    snprintf(name, sizeof name, "%s", image);
    printf("image: %s (%zu bytes, real ESP-IDF build); and a %zu-byte synthesised one\n", basename(name), big_len,
           small_len);
    printf("time: the whole POST as curl sees it (erase the whole slot, stream, verify, switch otadata, reply)\n\n");
    printf("flash timing off (median of %d; memory: highest of the runs)\n", runs);
    printf("%-30s %10s %11s %14s %12s %12s %12s\n", "", "bytes", "time", "throughput", "RSS before", "RSS peak",
           "VmHWM");
    row_mem("~1 MB real image", big_len, big_runs, runs);
    row_mem("300 KB image", small_len, small_runs, runs);
    printf("  (RSS peak: sampled every 1 ms during the upload; VmHWM: since the boot, which reads the running image)\n");
    printf("  target: RSS under 8 MB and flat in the image size\n\n");
    printf("flash timing esp32 (erase %u us/4 KB, %u us/64 KB, program %u us/256 B)\n",
           aloft_posix_timing_esp32.sector_erase_us, aloft_posix_timing_esp32.block_erase_us,
           aloft_posix_timing_esp32.page_program_us);
    printf("%-30s %10s %11s %22s %10s\n", "", "bytes", "total", "erase+program floor", "overhead");
    printf("%-30s %10zu %9.3f s %20.3f s %9.1f %%\n", "~1 MB real image", big_len, big_timed.seconds, big_floor,
           (big_timed.seconds / big_floor - 1) * 100);
    printf("%-30s %10zu %9.3f s %20.3f s %9.1f %%\n", "300 KB image", small_len, small_timed.seconds, small_floor,
           (small_timed.seconds / small_floor - 1) * 100);
    printf("  (floor: the whole-slot erase, the image's page programs and the otadata switch at those times)\n");
    return 0;
}
