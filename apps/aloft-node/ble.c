/* aloft-node: the simulated BLE link (PROTOCOLS.md §4.1). One thread owns
 * a TCP listener; one connection is one central. It frames bytes, keeps
 * the link's rules (connection events, packets per event, one outstanding
 * request, one central) and hands every GATT access to the agent's BLE
 * service (ble.h); what to answer is the agent's. */
#define _GNU_SOURCE /* POLLRDHUP */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "aloft/ble.h"
#include "node.h"

enum { CONNECT = 0x01, READ, WRITE, WRITE_CMD, SUBSCRIBE, UNSUBSCRIBE, NOTIFY = 0x87 };
#define FRAME_MAX 600
#define QUEUE 64 /* frames waiting for a connection event */

struct frame {
    uint16_t len;
    bool answer; /* the answer to the outstanding request */
    uint8_t b[2 + FRAME_MAX];
};

static struct aloft_ble ble;
static struct node *node;
static int conn = -1;
static bool connected, outstanding, broken;
static uint16_t mtu;
static struct frame queue[QUEUE];
static unsigned head, count;
static uint8_t in[2 + FRAME_MAX];
static size_t have;

static uint64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000 + (uint64_t)t.tv_nsec / 1000000;
}

/* A frame to send at the next event: op, then the parts. */
static struct frame *push(uint8_t op, const uint8_t *uuid, const void *v, size_t len)
{
    if (count == QUEUE) { /* a central that never reads: drop it */
        broken = true;
        return NULL;
    }
    struct frame *f = &queue[(head + count++) % QUEUE];
    size_t n = 1;
    f->b[2] = op;
    f->answer = false;
    if (uuid)
        memcpy(f->b + 3, uuid, 16), n += 16;
    if (len)
        memcpy(f->b + 2 + n, v, len), n += len;
    f->len = (uint16_t)n;
    f->b[0] = (uint8_t)n;
    f->b[1] = (uint8_t)(n >> 8);
    return f;
}

/* the agent's notifications (called with node->lock held) */
static void notify(void *ctx, int chr, const void *v, size_t len)
{
    (void)ctx;
    push(NOTIFY, aloft_ble_uuid[1 + chr], v, len);
}

static void hang_up(const char *why)
{
    if (conn < 0)
        return;
    pthread_mutex_lock(&node->lock);
    if (connected)
        aloft_ble_disconnect(&node->agent, &ble);
    pthread_mutex_unlock(&node->lock);
    node_log(node, "ble: central gone (%s)", why);
    close(conn);
    conn = -1;
    connected = outstanding = broken = false;
    count = 0;
    have = 0;
}

/* One whole frame from the central. false: it broke the link's rules. */
static bool frame(const uint8_t *f, size_t len)
{
    uint8_t op = f[0];
    if (op == CONNECT) {
        uint16_t want = len == 3 ? (uint16_t)(f[1] | f[2] << 8) : 0;
        if (connected || want < 23 || want > 517)
            return false;
        mtu = want < node->cfg.ble_mtu ? want : (uint16_t)node->cfg.ble_mtu;
        uint8_t r[3 + 32] = {(uint8_t)mtu, (uint8_t)(mtu >> 8), (uint8_t)strlen(node->cfg.ble_name)};
        memcpy(r + 3, node->cfg.ble_name, r[2]);
        push(0x81, NULL, r, 3u + r[2]);
        pthread_mutex_lock(&node->lock);
        aloft_ble_connect(&node->agent, &ble, mtu);
        pthread_mutex_unlock(&node->lock);
        connected = true;
        node_log(node, "ble: central connected, MTU %u", (unsigned)mtu);
        return true;
    }
    if (!connected || op < READ || op > UNSUBSCRIBE || len < 17 || (op != WRITE && op != WRITE_CMD && len != 17))
        return false;
    if (op != WRITE_CMD && outstanding)
        return false; /* ATT: one request at a time */
    int chr = aloft_ble_chr(f + 1);
    struct frame *r = op == WRITE_CMD ? NULL : push((uint8_t)(op | 0x80), NULL, NULL, 0);
    if (op != WRITE_CMD && !r)
        return false;
    uint8_t v[FRAME_MAX];
    int rc;
    pthread_mutex_lock(&node->lock);
    if (op == READ)
        rc = chr < 0 ? -0x0A : aloft_ble_read(&node->agent, &ble, chr, v, (size_t)mtu - 1);
    else if (op == WRITE || op == WRITE_CMD)
        rc = chr < 0 ? 0x0A : aloft_ble_write(&node->agent, &ble, chr, f + 17, len - 17);
    else
        rc = chr < 0 ? 0x0A : aloft_ble_subscribe(&node->agent, &ble, chr, op == SUBSCRIBE);
    pthread_mutex_unlock(&node->lock);
    if (!r)
        return true;
    r->answer = outstanding = true;
    r->b[3] = (uint8_t)(rc < 0 ? -rc : op == READ ? 0 : rc);
    size_t n = 2 + (op == READ && rc > 0 ? (size_t)rc : 0);
    if (op == READ && rc > 0)
        memcpy(r->b + 4, v, (size_t)rc);
    r->len = (uint16_t)n;
    r->b[0] = (uint8_t)n;
    r->b[1] = (uint8_t)(n >> 8);
    return true;
}

/* Take at most budget frames from what arrived (reading more as needed).
 * Returns the count taken, or -1 when the link is gone. */
static int take(unsigned budget)
{
    unsigned taken = 0;
    while (taken < budget) {
        size_t need = have < 2 ? 2 : 2 + (size_t)(in[0] | in[1] << 8);
        if (have >= 2 && (need < 3 || need > 2 + FRAME_MAX)) {
            hang_up("a malformed frame");
            return -1;
        }
        if (have < need) {
            ssize_t got = recv(conn, in + have, need - have, MSG_DONTWAIT);
            if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) {
                hang_up(got == 0 ? "disconnected" : strerror(errno));
                return -1;
            }
            if (got < 0)
                break;
            have += (size_t)got;
            continue;
        }
        have = 0;
        if (!frame(in + 2, need - 2) || broken) {
            hang_up(broken ? "it does not read" : "it broke the protocol");
            return -1;
        }
        taken++;
    }
    return (int)taken;
}

/* A connection event: what is queued goes out, at most --ble-packets frames. */
static void event(void)
{
    for (unsigned sent = 0; count && sent < node->cfg.ble_packets; sent++) {
        struct frame *f = &queue[head];
        head = (head + 1) % QUEUE;
        count--;
        if (f->answer)
            outstanding = false;
        for (size_t off = 0, len = 2u + f->len; off < len;) {
            /* a full socket buffer means megabytes unread: a central that does not read */
            ssize_t w = send(conn, f->b + off, len - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w <= 0) {
                hang_up(w < 0 && errno == EAGAIN ? "it does not read" : "disconnected");
                return;
            }
            off += (size_t)w;
        }
    }
}

static void *serve(void *arg)
{
    int lfd = (int)(intptr_t)arg;
    uint64_t next = now_ms(), last = next;
    unsigned taken = 0;
    for (;;) {
        uint64_t now = now_ms();
        if (conn >= 0 && now >= next) {
            event();
            taken = 0;
            next += node->cfg.ble_interval_ms;
            if (next <= now)
                next = now + node->cfg.ble_interval_ms;
        }
        if (conn >= 0 && taken < node->cfg.ble_packets) {
            int got = take(node->cfg.ble_packets - taken);
            if (got > 0)
                last = now;
            taken += got > 0 ? (unsigned)got : 0;
        }
        if (conn >= 0 && now - last > node->cfg.idle_timeout_s * 1000ull)
            hang_up("idle too long");
        struct pollfd p[2] = {{.fd = lfd, .events = POLLIN}, {.fd = conn, .events = POLLIN}};
        bool more = conn >= 0 && taken < node->cfg.ble_packets;
        int wait = conn < 0 ? 1000 : (int)(next > now_ms() ? next - now_ms() : 0);
        if (poll(p, more ? 2 : 1, wait) < 0 && errno != EINTR)
            continue;
        if (!(p[0].revents & POLLIN))
            continue;
        int c = accept(lfd, NULL, NULL);
        if (c < 0)
            continue;
        fcntl(c, F_SETFD, FD_CLOEXEC);
        struct pollfd old = {.fd = conn, .events = POLLRDHUP};
        if (conn >= 0 && poll(&old, 1, 0) == 1 && old.revents & (POLLRDHUP | POLLHUP | POLLERR))
            hang_up("disconnected"); /* gone before it was noticed: the newcomer is the only one */
        if (conn >= 0) { /* one central at a time */
            close(c);
            node_log(node, "ble: a second central refused");
            continue;
        }
        int one = 1;
        setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        conn = c;
        next = last = now_ms();
        taken = 0;
    }
    return NULL;
}

int node_ble_start(struct node *n)
{
    const char *spec = n->cfg.ble, *colon = strrchr(spec, ':');
    char host[64];
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - spec) : 0, spec);
    int port = colon ? atoi(colon + 1) : 0, one = 1;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 ||
        inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &addr.sin_addr) != 1)
        return node_error("--ble %s: not HOST:PORT with an IPv4 address", spec);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 4)) {
        int e = errno;
        return node_error("ble: cannot listen on %s: %s", spec, strerror(e));
    }
    node = n;
    ble.notify = notify;
    ble.legacy = n->cfg.ble_legacy;
    pthread_t t;
    if (pthread_create(&t, NULL, serve, (void *)(intptr_t)fd))
        return node_error("ble: no thread");
    pthread_detach(t);
    node_log(n, "ble: advertising \"%s\" on tcp://%s:%d/ (MTU %u, every %u ms, %u packets per event)",
             n->cfg.ble_name, host, port, n->cfg.ble_mtu, n->cfg.ble_interval_ms, n->cfg.ble_packets);
    if (n->cfg.ble_legacy)
        node_log(n, "ble: WARNING: --ble-legacy: the esp32-ble-ota protocol takes images from any central");
    return 0;
}
