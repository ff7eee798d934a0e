/* aloft: the device announces its ArduinoOTA service over multicast DNS
 * (RFC 6762) and DNS-SD (RFC 6763), so that the Arduino IDE lists it under
 * its network ports. A responder as functions: the glue owns one UDP socket
 * on port 5353 (the group 224.0.0.251 joined) and hands each datagram to
 * aloft_mdns_answer; what comes back goes to the group (port 5353), or, when
 * unicast says so, to the sender.
 *
 * It answers for these records of <name> (the host and the instance):
 *   _services._dns-sd._udp.local  PTR  _arduino._tcp.local
 *   _arduino._tcp.local           PTR  <name>._arduino._tcp.local
 *   <name>._arduino._tcp.local    SRV  0 0 <espota port> <name>.local
 *   <name>._arduino._tcp.local    TXT  board=<chip> tcp_check=no ssh_upload=no
 *                                      auth_upload=yes|no (yes: a PSK is set)
 *   <name>.local                  A    the device's IPv4 address
 * with SRV, TXT and A as additional records of the PTR (and A of the SRV).
 * A query from a port other than 5353 is a legacy resolver's (dig, §6.7):
 * its answer goes back to it with its ID and questions and TTLs of at most
 * 10 s. A question with the QU bit is answered to its sender too. A PTR the
 * query already knows (known answer, TTL at least half of ours) is left
 * out. Anything malformed — a name past the packet, a compression pointer
 * that does not point back, a record cut short — gets no answer. */
#ifndef ALOFT_MDNS_H
#define ALOFT_MDNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/agent.h"

#define ALOFT_MDNS_PORT 5353
#define ALOFT_MDNS_NAME_MAX 32     /* <name>'s characters: a-z 0-9 - */
#define ALOFT_MDNS_PACKET_MAX 512  /* out's size: what any resolver takes */
#define ALOFT_MDNS_TTL 4500        /* PTR and TXT (RFC 6762 §10) */
#define ALOFT_MDNS_HOST_TTL 120    /* SRV and A: a host's records */
#define ALOFT_MDNS_LEGACY_TTL 10   /* at most, to a legacy resolver */

/* Caller-allocated, filled by aloft_mdns_init; the glue may change ip and
 * port later (a new DHCP lease). */
struct aloft_mdns {
    char name[ALOFT_MDNS_NAME_MAX + 1]; /* lower case */
    uint8_t ip[4];                      /* the A record, network order */
    uint16_t port;                      /* the SRV's: ArduinoOTA's UDP port */
};

/* Name the device: name (NULL: "aloft-" and the 12 hex digits of a->mac, as
 * ArduinoOTA names a sketch "esp32-<mac>"), its address and the ArduinoOTA
 * port. Returns 0, or ALOFT_E_INVAL when name is not 1..32 letters, digits
 * and '-' (not first). */
int aloft_mdns_init(struct aloft_mdns *m, const struct aloft_agent *a, const char *name, const uint8_t ip[4],
                    uint16_t port);

/* A datagram of len bytes (any content) from port from. Writes the answer
 * into out (cap bytes, ALOFT_MDNS_PACKET_MAX is enough) and returns its
 * length, 0 for none; *unicast: send it to the sender, not to the group.
 * auth_upload follows a's PSK as it is now. */
int aloft_mdns_answer(const struct aloft_agent *a, const struct aloft_mdns *m, const void *in, size_t len,
                      uint16_t from, uint8_t *out, size_t cap, bool *unicast);

/* An unsolicited announcement of every record, for the group: at start
 * (twice, a second apart, RFC 6762 §8.3), and with goodbye (TTL 0) when the
 * service stops. Returns its length, 0 when cap is too small. */
int aloft_mdns_announce(const struct aloft_agent *a, const struct aloft_mdns *m, bool goodbye, uint8_t *out,
                        size_t cap);

#endif
