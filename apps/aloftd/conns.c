/* aloftd: holding the fleet's connections against floods and slow clients.
 *
 * libmicrohttpd (epoll, a thread pool) holds the sockets; this decides
 * which it keeps:
 *   - a total limit and a per-address limit, checked when a connection is
 *     accepted (MHD's accept policy, before it allocates anything) and
 *     again when it is set up (two workers may pass the first check at
 *     once: the second check makes the limit exact);
 *   - a deadline for the whole request head, counted from the accept (or
 *     from the end of the previous request on a kept-alive connection).
 *     MHD's own timeout restarts at every byte, so a client trickling a
 *     header byte every few seconds would hold its socket for ever; a
 *     sweeping thread shuts such sockets down (MHD then sees the end and
 *     closes them). The body's idle timeout is MHD's own;
 *   - one log line per interval that says what the limits refused, and
 *     libmicrohttpd's messages in aloftd's log, a repeated one counted
 *     instead of printed again.
 * One mutex guards it all: a socket is shut down only while its
 * connection is known open, so its descriptor cannot have been reused. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>

#include "aloftd.h"

#define LOG_INTERVAL_S 10
#define ADDR_BUCKETS 4096
#define FD_RESERVE 256 /* descriptors kept for the database, files and downloads */

/* Open connections from one client address. */
struct addr_count {
    uint32_t addr; /* network order */
    unsigned open;
    unsigned refused;  /* in the interval numbered below */
    uint64_t interval;
    struct addr_count *next;
};

/* One open connection (MHD's socket context). */
struct conn {
    int fd;
    struct addr_count *from;
    struct timespec head_since; /* while in head: when its head began */
    bool in_head;
    struct conn *prev, *next; /* the heads in order of head_since */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t sweeper;
    bool running;
    unsigned max_total, max_per_addr, head_timeout_s;
    unsigned open;
    struct addr_count *addrs[ADDR_BUCKETS];
    struct conn *heads, *heads_tail;
    /* this interval's counts, for its log line */
    uint64_t interval;
    unsigned over_total, over_addr, head_late;
    uint32_t worst;           /* the address refused most, and how often */
    unsigned worst_refused;
    /* libmicrohttpd's last message and how often it came again */
    char mhd_last[512];
    unsigned mhd_repeats;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static struct timespec now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t;
}

static struct addr_count **bucket(uint32_t addr)
{
    return &g.addrs[(addr * 2654435761u) >> 20 & (ADDR_BUCKETS - 1)];
}

static struct addr_count *addr_find(uint32_t addr)
{
    struct addr_count *a = *bucket(addr);
    while (a && a->addr != addr)
        a = a->next;
    return a;
}

static void addr_release(struct addr_count *a)
{
    if (--a->open)
        return;
    for (struct addr_count **p = bucket(a->addr); *p; p = &(*p)->next)
        if (*p == a) {
            *p = a->next;
            break;
        }
    free(a);
}

static uint32_t ipv4(const struct sockaddr *sa)
{
    return sa && sa->sa_family == AF_INET ? ((const struct sockaddr_in *)sa)->sin_addr.s_addr : 0;
}

/* Would one more connection from addr break a limit? Counts the refusal. */
static bool refuse(uint32_t addr, unsigned open_from_addr)
{
    if (g.open >= g.max_total) {
        g.over_total++;
        return true;
    }
    if (open_from_addr < g.max_per_addr)
        return false;
    g.over_addr++;
    struct addr_count *a = addr_find(addr);
    if (a) {
        if (a->interval != g.interval)
            a->refused = 0, a->interval = g.interval;
        if (++a->refused > g.worst_refused)
            g.worst = addr, g.worst_refused = a->refused;
    }
    return true;
}

enum MHD_Result aloftd_conns_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)cls, (void)len;
    uint32_t a = ipv4(addr);
    pthread_mutex_lock(&g.lock);
    struct addr_count *from = addr_find(a);
    bool no = refuse(a, from ? from->open : 0);
    pthread_mutex_unlock(&g.lock);
    return no ? MHD_NO : MHD_YES;
}

static void head_unlink(struct conn *k)
{
    if (!k->in_head)
        return;
    *(k->prev ? &k->prev->next : &g.heads) = k->next;
    *(k->next ? &k->next->prev : &g.heads_tail) = k->prev;
    k->prev = k->next = NULL;
    k->in_head = false;
}

static void head_append(struct conn *k)
{
    k->head_since = now();
    k->in_head = true;
    k->prev = g.heads_tail;
    k->next = NULL;
    *(g.heads_tail ? &g.heads_tail->next : &g.heads) = k;
    g.heads_tail = k;
}

void aloftd_conns_notify(void *cls, struct MHD_Connection *c, void **socket_context,
                         enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    pthread_mutex_lock(&g.lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ca = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        uint32_t addr = ipv4(ca ? ca->client_addr : NULL);
        struct addr_count *from = addr_find(addr);
        bool over = refuse(addr, from ? from->open : 0);
        struct conn *k = fd ? calloc(1, sizeof *k) : NULL;
        if (k && !from && (from = calloc(1, sizeof *from))) {
            from->addr = addr;
            from->next = *bucket(addr);
            *bucket(addr) = from;
        }
        if (k && from) {
            k->fd = fd->connect_fd;
            k->from = from;
            from->open++;
            g.open++;
            if (!over)
                head_append(k);
        } else {
            free(k);
            k = NULL;
        }
        if ((over || !k) && fd)
            shutdown(fd->connect_fd, SHUT_RDWR); /* MHD sees the end and closes it */
        *socket_context = k;
    } else if (*socket_context) {
        struct conn *k = *socket_context;
        head_unlink(k);
        addr_release(k->from);
        g.open--;
        free(k);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&g.lock);
}

static struct conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

void aloftd_conns_head_done(struct MHD_Connection *c)
{
    pthread_mutex_lock(&g.lock);
    struct conn *k = conn_of(c);
    if (k)
        head_unlink(k);
    pthread_mutex_unlock(&g.lock);
}

void aloftd_conns_request_done(struct MHD_Connection *c)
{
    pthread_mutex_lock(&g.lock);
    struct conn *k = conn_of(c);
    if (k && !k->in_head)
        head_append(k); /* kept alive: the next head's deadline starts now */
    pthread_mutex_unlock(&g.lock);
}

void aloftd_conns_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[sizeof g.mhd_last];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\r\n")] = 0;
    pthread_mutex_lock(&g.lock);
    bool again = !strcmp(line, g.mhd_last);
    if (again)
        g.mhd_repeats++;
    else
        memcpy(g.mhd_last, line, sizeof line);
    pthread_mutex_unlock(&g.lock);
    if (!again)
        aloftd_log("libmicrohttpd: %s", line);
}

/* The interval's line, when a limit refused or closed anything; under g.lock. */
static void report(unsigned seconds)
{
    if (g.over_total || g.over_addr || g.head_late) {
        char worst[80] = "";
        if (g.worst_refused) {
            char ip[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &g.worst, ip, sizeof ip);
            snprintf(worst, sizeof worst, ", most from %s: %u", ip, g.worst_refused);
        }
        aloftd_log("connections: in the last %u s refused %u over the total limit of %u and %u over the "
                   "per-address limit of %u%s; closed %u whose request head took over %u s; %u open",
                   seconds, g.over_total, g.max_total, g.over_addr, g.max_per_addr, worst, g.head_late,
                   g.head_timeout_s, g.open);
    }
    if (g.mhd_repeats)
        aloftd_log("libmicrohttpd: \"%.200s\" %u more times", g.mhd_last, g.mhd_repeats);
    g.over_total = g.over_addr = g.head_late = g.mhd_repeats = 0;
    g.mhd_last[0] = 0;
    g.worst_refused = 0;
    g.interval++;
}

/* Shut down the sockets whose head is late; say what each interval refused. */
static void *sweep(void *arg)
{
    (void)arg;
    struct timespec t = now(), last_log = t;
    pthread_mutex_lock(&g.lock);
    while (g.running) {
        t = now();
        for (unsigned n = 1; g.heads && t.tv_sec - g.heads->head_since.tv_sec >= (time_t)g.head_timeout_s; n++) {
            struct conn *k = g.heads;
            head_unlink(k);
            shutdown(k->fd, SHUT_RDWR);
            g.head_late++;
            if (n % 64 == 0) { /* thousands at once: let new connections in between */
                pthread_mutex_unlock(&g.lock);
                pthread_mutex_lock(&g.lock);
            }
        }
        if (t.tv_sec - last_log.tv_sec >= LOG_INTERVAL_S) {
            report(LOG_INTERVAL_S);
            last_log.tv_sec += LOG_INTERVAL_S;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250000000;
        if (until.tv_nsec >= 1000000000)
            until.tv_sec++, until.tv_nsec -= 1000000000;
        pthread_cond_timedwait(&g.wake, &g.lock, &until);
    }
    report((unsigned)(now().tv_sec - last_log.tv_sec)); /* what the last interval refused, at the stop */
    pthread_mutex_unlock(&g.lock);
    return NULL;
}

/* Each connection is a descriptor: take the hard limit, and hold no more
 * connections than the descriptors allow (accept would fail otherwise). */
static unsigned fit_to_files(unsigned max_total)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl))
        return max_total;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= (rlim_t)max_total + FD_RESERVE)
        return max_total;
    unsigned fit = rl.rlim_cur > 2 * FD_RESERVE ? (unsigned)(rl.rlim_cur - FD_RESERVE) : (unsigned)rl.rlim_cur / 2;
    aloftd_log("max-connections %u: only %llu open files are allowed (ulimit -n); holding at most %u connections",
               max_total, (unsigned long long)rl.rlim_cur, fit);
    return fit;
}

int aloftd_conns_start(struct aloftd *d)
{
    g.max_total = fit_to_files(d->max_connections);
    g.max_per_addr = d->max_per_address;
    g.head_timeout_s = d->head_timeout_s;
    d->max_connections = g.max_total;
    g.running = true;
    if (pthread_create(&g.sweeper, NULL, sweep, NULL)) {
        g.running = false;
        fprintf(stderr, "aloftd: cannot start a thread: %s\n", strerror(errno));
        return -1;
    }
    return 0;
}

void aloftd_conns_stop(void)
{
    pthread_mutex_lock(&g.lock);
    bool was = g.running;
    g.running = false;
    pthread_cond_signal(&g.wake);
    pthread_mutex_unlock(&g.lock);
    if (was)
        pthread_join(g.sweeper, NULL);
}
