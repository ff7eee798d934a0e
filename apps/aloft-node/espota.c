/* aloft-node: the ArduinoOTA upload's sockets (espota.h). One thread polls
 * the UDP port and, during a transfer, the connection to the host, and
 * hands the agent what arrives; what to answer and whether to go on is the
 * agent's. */
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

#include "aloft/espota.h"
#include "node.h"

#define CONNECT_MS 5000 /* the host accepts within this, or nothing happens */
#define CHUNK 1460      /* a TCP segment, as ArduinoOTA reads */

static struct aloft_espota espota;
static struct sockaddr_in self; /* the device's address, port 0 */
static int udp = -1;

/* Connect to the host that authenticated, from the device's own address. */
static int connect_host(struct node *n, struct sockaddr_in host)
{
    int one = 1, rcvbuf = 5744, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    /* a simulated link: buffers an ESP32's size (http.c says why) */
    if (n->cfg.link_rate)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int err = 0;
    socklen_t len = sizeof err;
    if (bind(fd, (struct sockaddr *)&self, sizeof self) ||
        (connect(fd, (struct sockaddr *)&host, sizeof host) && errno != EINPROGRESS) ||
        poll(&p, 1, CONNECT_MS) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, 0);
    return fd;
}

static void send_all(int fd, const char *s, int len)
{
    for (ssize_t w; len > 0; s += w, len -= (int)w)
        if ((w = send(fd, s, (size_t)len, MSG_NOSIGNAL)) <= 0)
            return;
}

/* The simulated Wi-Fi link: no faster than --link-rate. */
static void throttle(struct node *n, const struct timespec *t0, uint64_t received)
{
    if (!n->cfg.link_rate)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - t0->tv_sec) + (double)(now.tv_nsec - t0->tv_nsec) / 1e9;
    double due = (double)received / (double)n->cfg.link_rate;
    if (due > elapsed)
        usleep((useconds_t)((due - elapsed) * 1e6));
}

static void *serve(void *arg)
{
    struct node *n = arg;
    char buf[CHUNK], out[ALOFT_ESPOTA_ANSWER_MAX];
    int tcp = -1;
    uint64_t received = 0;
    struct timespec t0;
    for (;;) {
        struct pollfd p[2] = {{.fd = udp, .events = POLLIN}, {.fd = tcp, .events = POLLIN}};
        int ready = poll(p, tcp >= 0 ? 2 : 1, tcp >= 0 ? (int)n->cfg.idle_timeout_s * 1000 : -1);
        if (ready < 0 && errno == EINTR)
            continue;
        if (p[0].revents & POLLIN) {
            struct sockaddr_in from;
            socklen_t fl = sizeof from;
            ssize_t got = recvfrom(udp, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
            pthread_mutex_lock(&n->lock);
            int len = got > 0 ? aloft_espota_datagram(&n->agent, &espota, buf, (size_t)got, out, sizeof out) : 0;
            bool go = espota.state == ALOFT_ESPOTA_CONNECT && tcp < 0;
            pthread_mutex_unlock(&n->lock);
            if (len > 0)
                sendto(udp, out, (size_t)len, 0, (struct sockaddr *)&from, fl);
            if (go) {
                from.sin_port = htons(espota.port);
                tcp = connect_host(n, from);
                pthread_mutex_lock(&n->lock);
                if (tcp < 0)
                    aloft_espota_abort(&n->agent, &espota, "the host did not take the connection");
                else
                    len = aloft_espota_connected(&n->agent, &espota, out, sizeof out);
                pthread_mutex_unlock(&n->lock);
                if (tcp >= 0 && len > 0) {
                    send_all(tcp, out, len);
                    close(tcp);
                    tcp = -1;
                }
                received = 0;
                clock_gettime(CLOCK_MONOTONIC, &t0);
            }
            continue;
        }
        if (tcp < 0 || (ready > 0 && !p[1].revents))
            continue;
        ssize_t got = ready > 0 ? recv(tcp, buf, sizeof buf, 0) : 0;
        pthread_mutex_lock(&n->lock);
        int len = 0;
        if (got > 0)
            len = aloft_espota_data(&n->agent, &espota, buf, (size_t)got, out, sizeof out);
        else
            aloft_espota_abort(&n->agent, &espota,
                               ready == 0 ? "the host sent nothing for too long" : "the host closed early");
        bool over = espota.state == ALOFT_ESPOTA_IDLE;
        pthread_mutex_unlock(&n->lock);
        if (got > 0) {
            throttle(n, &t0, received += (uint64_t)got);
            send_all(tcp, out, len);
        }
        if (over) {
            close(tcp);
            tcp = -1;
        }
    }
    return NULL;
}

int node_espota_start(struct node *n)
{
    const char *spec = n->cfg.espota, *colon = strrchr(spec, ':');
    char host[64];
    bool bare_port = !colon && strspn(spec, "0123456789") == strlen(spec);
    if (colon || !bare_port)
        snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
    else /* the device's own address */
        snprintf(host, sizeof host, "%.*s", (int)(strrchr(n->cfg.listen, ':') - n->cfg.listen), n->cfg.listen);
    int port = colon ? atoi(colon + 1) : bare_port ? atoi(spec) : ALOFT_ESPOTA_PORT;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1",
                                               &addr.sin_addr) != 1)
        return node_error("--espota %s: not [ADDR:]PORT with an IPv4 address", spec);
    self = addr;
    self.sin_port = 0;
    n->espota_addr = addr.sin_addr;
    n->espota_port = (uint16_t)port;
    if ((udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 || bind(udp, (struct sockaddr *)&addr, sizeof addr)) {
        int e = errno;
        return node_error("espota: cannot listen on UDP %s:%d: %s", host, port, strerror(e));
    }
    pthread_t t;
    if (pthread_create(&t, NULL, serve, n))
        return node_error("espota: no thread");
    pthread_detach(t);
    node_log(n, "espota: listening on udp://%s:%d/ (Arduino IDE, PlatformIO: upload_protocol = espota)", host, port);
    return 0;
}
