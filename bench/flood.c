/* bench/flood (the client; bench/flood.sh runs aloftd and prints the table):
 * devices on their own loopback addresses ask GET /update with HTTPUpdate's
 * headers, one request at a time, for a while, and their latency is
 * measured; optionally one address floods aloftd meanwhile with idle
 * sockets and sockets that trickle one header byte every 5 s, opening
 * again every socket aloftd closes (as an attacker holding them would).
 *
 * usage: bench_flood --server ADDR:PORT --mac-prefix 24:0A:C4:0F [--seconds S]
 *                    [--devices N] [--idle N --trickle N --from ADDR]
 * prints one line: requests answered, refused (no status line, a failed
 * connection or a status other than 200/304), p50, p99 and max latency in
 * microseconds, and the flood's sockets opened in all. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

static struct sockaddr_in server;
static const char *mac_prefix = "24:0A:C4:0F";
static unsigned seconds = 30, devices = 50, idle, trickle;
static const char *flood_from = "127.0.10.5";
static volatile bool stop;
static unsigned long flood_opened;

static uint64_t now_us(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000u + (uint64_t)t.tv_nsec / 1000u;
}

static int open_from(const char *addr, bool nonblock)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one); /* ports per destination */
    struct sockaddr_in from = {.sin_family = AF_INET};
    inet_pton(AF_INET, addr, &from.sin_addr);
    if (bind(fd, (struct sockaddr *)&from, sizeof from) ||
        (connect(fd, (struct sockaddr *)&server, sizeof server) && errno != EINPROGRESS)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* The flood: keep idle + trickle sockets open from one address. */
static void *flood(void *arg)
{
    (void)arg;
    unsigned n = idle + trickle;
    int *fds = calloc(n, sizeof *fds);
    struct pollfd *p = calloc(n, sizeof *p);
    static const char head[] = "GET /update HTTP/1.1\r\nX-Pad: ";
    unsigned *sent = calloc(n, sizeof *sent);
    uint64_t next_byte = now_us();
    for (unsigned i = 0; i < n; i++)
        fds[i] = -1;
    while (!stop) {
        uint64_t round = now_us();
        for (unsigned i = 0; i < n; i++)
            if (fds[i] < 0 && (fds[i] = open_from(flood_from, true)) >= 0) {
                flood_opened++;
                sent[i] = 0;
            }
        bool byte = now_us() >= next_byte;
        if (byte)
            next_byte += 5000000;
        for (unsigned i = 0; i < n; i++) {
            p[i] = (struct pollfd){.fd = fds[i], .events = POLLIN};
            if (byte && i >= idle && fds[i] >= 0) {
                char b = sent[i] < sizeof head - 1 ? head[sent[i]] : 'a';
                if (send(fds[i], &b, 1, MSG_NOSIGNAL) == 1)
                    sent[i]++;
            }
        }
        if (poll(p, n, 1000) > 0)
            for (unsigned i = 0; i < n; i++)
                if (p[i].revents) { /* closed by aloftd: open it again next round */
                    close(fds[i]);
                    fds[i] = -1;
                }
        uint64_t took = now_us() - round;
        if (took < 1000000) /* a round a second: the flood, not a connection storm */
            usleep((useconds_t)(1000000 - took));
    }
    for (unsigned i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    free(fds);
    free(p);
    free(sent);
    return NULL;
}

/* One device's check-in; its latency in µs, or 0 when it was refused. */
static uint64_t check_in(unsigned device)
{
    char addr[20], req[600];
    snprintf(addr, sizeof addr, "127.0.11.%u", 10 + device % 240);
    int len = snprintf(req, sizeof req,
                       "GET /update?dev=bench&ver=1.0.0 HTTP/1.1\r\nHost: aloftd\r\nUser-Agent: ESP32-http-Update\r\n"
                       "Connection: close\r\nx-ESP32-STA-MAC: %s:%02X:%02X\r\nx-ESP32-free-space: 1310720\r\n"
                       "x-ESP32-sketch-size: 1048576\r\nx-ESP32-chip-size: 4194304\r\n"
                       "x-ESP32-sdk-version: v5.1.2\r\nx-ESP32-mode: sketch\r\n\r\n",
                       mac_prefix, device / 256 % 256, device % 256);
    uint64_t t0 = now_us();
    int fd = open_from(addr, false);
    if (fd < 0)
        return 0;
    struct timeval tv = {.tv_sec = 20};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char reply[2048];
    size_t got = 0;
    ssize_t r = send(fd, req, (size_t)len, MSG_NOSIGNAL) == len ? 1 : -1;
    while (r > 0 && got < sizeof reply - 1)
        if ((r = recv(fd, reply + got, sizeof reply - 1 - got, 0)) > 0)
            got += (size_t)r;
    close(fd);
    uint64_t took = now_us() - t0;
    reply[got] = 0;
    bool ok = !strncmp(reply, "HTTP/1.1 304", 12) || !strncmp(reply, "HTTP/1.1 200", 12);
    return ok ? (took ? took : 1) : 0;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"server", required_argument, NULL, 's'},  {"mac-prefix", required_argument, NULL, 'm'},
        {"seconds", required_argument, NULL, 't'}, {"devices", required_argument, NULL, 'd'},
        {"idle", required_argument, NULL, 'i'},    {"trickle", required_argument, NULL, 'k'},
        {"from", required_argument, NULL, 'f'},    {NULL, 0, NULL, 0},
    };
    const char *srv = NULL;
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 's': srv = optarg; break;
        case 'm': mac_prefix = optarg; break;
        case 't': seconds = (unsigned)atoi(optarg); break;
        case 'd': devices = (unsigned)atoi(optarg); break;
        case 'i': idle = (unsigned)atoi(optarg); break;
        case 'k': trickle = (unsigned)atoi(optarg); break;
        case 'f': flood_from = optarg; break;
        default: return 2;
        }
    }
    const char *colon = srv ? strrchr(srv, ':') : NULL;
    char host[64];
    if (!colon || !seconds || !devices) {
        fprintf(stderr, "usage: bench_flood --server ADDR:PORT [--mac-prefix P] [--seconds S] [--devices N] "
                        "[--idle N --trickle N --from ADDR]\n");
        return 2;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - srv), srv);
    server = (struct sockaddr_in){.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    inet_pton(AF_INET, host, &server.sin_addr);
    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur < idle + trickle + 64) {
        fprintf(stderr, "bench_flood: %u sockets need a higher ulimit -Hn than %llu\n", idle + trickle,
                (unsigned long long)rl.rlim_cur);
        return 1;
    }

    pthread_t t;
    bool flooding = idle + trickle > 0;
    if (flooding) {
        pthread_create(&t, NULL, flood, NULL);
        sleep(3); /* the flood is in place before the first device asks */
    }
    size_t cap = 1 << 16, n = 0, refused = 0;
    uint64_t *lat = malloc(cap * sizeof *lat);
    uint64_t end = now_us() + (uint64_t)seconds * 1000000u;
    for (unsigned d = 0; now_us() < end; d = (d + 1) % devices) {
        uint64_t us = check_in(d);
        if (!us)
            refused++;
        else if (n < cap)
            lat[n++] = us;
        usleep(2000);
    }
    stop = true;
    if (flooding)
        pthread_join(t, NULL);
    qsort(lat, n, sizeof *lat, cmp);
    printf("answered %zu refused %zu p50_us %llu p99_us %llu max_us %llu flood_opened %lu\n", n, refused,
           (unsigned long long)(n ? lat[n / 2] : 0), (unsigned long long)(n ? lat[n * 99 / 100] : 0),
           (unsigned long long)(n ? lat[n - 1] : 0), flood_opened);
    free(lat);
    return 0;
}
