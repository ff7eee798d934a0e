/* aloft-node: the mDNS responder's socket (mdns.h), so that the Arduino IDE
 * lists the simulated device among its network ports. One thread reads
 * the queries and sends what the agent answers; the records are the
 * agent's.
 *
 * --mdns with a multicast address (224.0.0.251 by default) is a device on a
 * LAN: it binds the port on every interface, joins the group, answers to
 * it and announces itself there. With any other address (the tests' 127.x)
 * there is no group: it binds that address, answers every query to its
 * sender and announces nothing. */
#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aloft/mdns.h"
#include "node.h"

#define GROUP "224.0.0.251"

static struct aloft_mdns mdns;
static struct sockaddr_in group; /* sin_port 0: no group */
static int udp = -1;

static void announce(struct node *n, bool goodbye)
{
    uint8_t out[ALOFT_MDNS_PACKET_MAX];
    if (!group.sin_port)
        return;
    pthread_mutex_lock(&n->lock);
    int len = aloft_mdns_announce(&n->agent, &mdns, goodbye, out, sizeof out);
    pthread_mutex_unlock(&n->lock);
    if (len > 0)
        sendto(udp, out, (size_t)len, 0, (struct sockaddr *)&group, sizeof group);
}

static void *serve(void *arg)
{
    struct node *n = arg;
    uint8_t in[1500], out[ALOFT_MDNS_PACKET_MAX];
    int again = 1000; /* the second announcement, a second after the first (RFC 6762 §8.3) */
    announce(n, false);
    for (;;) {
        struct pollfd p = {.fd = udp, .events = POLLIN};
        int ready = poll(&p, 1, again);
        if (ready == 0 && again > 0) {
            announce(n, false);
            again = -1;
        }
        if (ready <= 0)
            continue;
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t got = recvfrom(udp, in, sizeof in, 0, (struct sockaddr *)&from, &fl);
        if (got <= 0)
            continue;
        bool unicast;
        pthread_mutex_lock(&n->lock);
        int len = aloft_mdns_answer(&n->agent, &mdns, in, (size_t)got, ntohs(from.sin_port), out, sizeof out, &unicast);
        pthread_mutex_unlock(&n->lock);
        if (len > 0)
            sendto(udp, out, (size_t)len, 0,
                   (struct sockaddr *)(unicast || !group.sin_port ? &from : &group), sizeof from);
    }
    return NULL;
}

/* The A record's address: espota's, or on every interface the first that
 * is not loopback (the LAN's), else loopback's. */
static struct in_addr own_address(const struct node *n)
{
    struct in_addr a = n->espota_addr;
    struct ifaddrs *ifs, *i;
    if (a.s_addr != htonl(INADDR_ANY) || getifaddrs(&ifs))
        return a.s_addr != htonl(INADDR_ANY) ? a : (struct in_addr){htonl(INADDR_LOOPBACK)};
    a.s_addr = htonl(INADDR_LOOPBACK);
    for (i = ifs; i; i = i->ifa_next)
        if (i->ifa_addr && i->ifa_addr->sa_family == AF_INET && (i->ifa_flags & IFF_UP) &&
            !(i->ifa_flags & IFF_LOOPBACK)) {
            a = ((struct sockaddr_in *)i->ifa_addr)->sin_addr;
            break;
        }
    freeifaddrs(ifs);
    return a;
}

int node_mdns_start(struct node *n)
{
    const char *spec = n->cfg.mdns, *colon = strrchr(spec, ':');
    char host[64];
    snprintf(host, sizeof host, "%.*s", colon ? (int)(colon - spec) : (int)strlen(spec), spec);
    if (!host[0])
        snprintf(host, sizeof host, GROUP);
    int port = colon ? atoi(colon + 1) : ALOFT_MDNS_PORT;
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (port <= 0 || port > 65535 || inet_pton(AF_INET, host, &addr.sin_addr) != 1)
        return node_error("--mdns %s: not [ADDR][:PORT] with an IPv4 address", spec);
    struct in_addr ip = own_address(n);
    int rc = aloft_mdns_init(&mdns, &n->agent, n->cfg.mdns_name, (const uint8_t *)&ip.s_addr, n->espota_port);
    if (rc)
        return node_error("--mdns-name %s: 1 to %d letters, digits and '-' (not first)", n->cfg.mdns_name,
                          ALOFT_MDNS_NAME_MAX);
    bool multicast = IN_MULTICAST(ntohl(addr.sin_addr.s_addr));
    int one = 1, ttl = 255;
    if (multicast) { /* the group on every interface; other responders (avahi) share the port */
        group = addr;
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
    }
    struct ip_mreq join = {.imr_multiaddr = group.sin_addr, .imr_interface = {htonl(INADDR_ANY)}};
    if ((udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) < 0 ||
        setsockopt(udp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (multicast && setsockopt(udp, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one)) ||
        bind(udp, (struct sockaddr *)&addr, sizeof addr) ||
        (multicast && (setsockopt(udp, IPPROTO_IP, IP_ADD_MEMBERSHIP, &join, sizeof join) ||
                       setsockopt(udp, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl)))) {
        int e = errno;
        return node_error("mdns: cannot listen on UDP %s:%d: %s", host, port, strerror(e));
    }
    pthread_t t;
    if (pthread_create(&t, NULL, serve, n))
        return node_error("mdns: no thread");
    pthread_detach(t);
    char a[16];
    inet_ntop(AF_INET, &ip, a, sizeof a);
    node_log(n, "mdns: %s.local (%s) offers _arduino._tcp port %u, answering on udp://%s:%d/%s", mdns.name, a,
             n->espota_port, host, port, multicast ? "" : " (no group: to each sender)");
    return 0;
}

void node_mdns_stop(struct node *n)
{
    if (udp >= 0)
        announce(n, true);
}
