/* aloft on ESP-IDF: the mDNS responder (the agent's mdns.h) over lwIP's
 * sockets, so that the Arduino IDE lists the device among its network
 * ports. One task reads UDP port 5353 (the group 224.0.0.251 joined) and
 * sends what the agent answers, to the group or to the sender; the records
 * are the agent's, as in aloft-node. Not ESP-IDF's mdns component (a
 * managed one since v5.0, and tens of KB for one service). Only with
 * CONFIG_ALOFT_MDNS (which needs CONFIG_ALOFT_ESPOTA). */
#include "sdkconfig.h"

#ifdef CONFIG_ALOFT_MDNS

#include <errno.h>
#include <string.h>
#include <sys/poll.h>

#include "aloft/mdns.h"
#include "esp_log.h"
#include "esp_netif.h"
#include "glue.h"
#include "lwip/sockets.h"

#define GROUP 0xE00000FBu /* 224.0.0.251 */
#define RETRY_MS 5000     /* no address or no group yet: try again this often */
#define STACK 4096        /* the agent's answer takes 640 B (scripts/size.sh), lwIP's sendto and the log the rest */

static const char *TAG = "aloft";
static struct aloft_mdns mdns;
static uint8_t in[1472], out[ALOFT_MDNS_PACKET_MAX]; /* one task: off its stack */
static int udp = -1;

/* The default interface's IPv4 address now (DHCP may change it) into the A
 * record. false while it has none. */
static bool own_ip(void)
{
    esp_netif_ip_info_t info;
    esp_netif_t *n = esp_netif_get_default_netif();
    if (!n || esp_netif_get_ip_info(n, &info) != ESP_OK || !info.ip.addr)
        return false;
    memcpy(mdns.ip, &info.ip.addr, 4);
    return true;
}

static void to_group(int len)
{
    struct sockaddr_in g = {.sin_family = AF_INET, .sin_port = htons(ALOFT_MDNS_PORT), .sin_addr.s_addr = htonl(GROUP)};
    if (len > 0)
        sendto(udp, out, (size_t)len, 0, (struct sockaddr *)&g, sizeof g);
}

/* Join the group once there is an address; announce twice, a second apart
 * (RFC 6762 §8.3). Returns poll's next timeout. */
static int next_step(struct aloft_idf *d, int *announced)
{
    struct ip_mreq join = {.imr_multiaddr.s_addr = htonl(GROUP), .imr_interface.s_addr = htonl(INADDR_ANY)};
    if (!*announced && (!own_ip() || setsockopt(udp, IPPROTO_IP, IP_ADD_MEMBERSHIP, &join, sizeof join)))
        return RETRY_MS;
    if (*announced == 2)
        return -1;
    aloft_idf_lock(d);
    int len = aloft_mdns_announce(&d->agent, &mdns, false, out, sizeof out);
    aloft_idf_unlock(d);
    to_group(len);
    if (!(*announced)++)
        ESP_LOGI(TAG, "mdns: %s.local offers ArduinoOTA (_arduino._tcp) on port %u", mdns.name, mdns.port);
    return 1000;
}

static void mdns_task(void *arg)
{
    struct aloft_idf *d = arg;
    int announced = 0, wait = next_step(d, &announced);
    for (;;) {
        struct pollfd p = {.fd = udp, .events = POLLIN};
        int n = poll(&p, 1, wait);
        if (n == 0)
            wait = next_step(d, &announced);
        if (n <= 0)
            continue;
        struct sockaddr_in from;
        socklen_t fl = sizeof from;
        ssize_t got = recvfrom(udp, in, sizeof in, 0, (struct sockaddr *)&from, &fl);
        if (got <= 0)
            continue;
        bool unicast;
        own_ip();
        aloft_idf_lock(d);
        int len = aloft_mdns_answer(&d->agent, &mdns, in, (size_t)got, ntohs(from.sin_port), out, sizeof out, &unicast);
        aloft_idf_unlock(d);
        if (unicast && len > 0)
            sendto(udp, out, (size_t)len, 0, (struct sockaddr *)&from, fl);
        else
            to_group(len);
    }
}

esp_err_t aloft_idf_mdns_start(struct aloft_idf *d)
{
    static const uint8_t none[4];
    int one = 1, ttl = 255;
    if (aloft_mdns_init(&mdns, &d->agent, aloft_idf_opt(d->cfg.mdns_name), none, d->cfg.espota_port)) {
        ESP_LOGE(TAG, "mdns: the name '%s' is not 1 to %d letters, digits and '-'", d->cfg.mdns_name,
                 ALOFT_MDNS_NAME_MAX);
        return ESP_ERR_INVALID_ARG;
    }
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(ALOFT_MDNS_PORT)};
    if ((udp = socket(AF_INET, SOCK_DGRAM, 0)) < 0 || setsockopt(udp, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        bind(udp, (struct sockaddr *)&addr, sizeof addr) ||
        setsockopt(udp, IPPROTO_IP, IP_MULTICAST_TTL, &ttl, sizeof ttl)) {
        ESP_LOGE(TAG, "mdns: cannot listen on UDP port %d: errno %d", ALOFT_MDNS_PORT, errno);
        return ESP_FAIL;
    }
    if (xTaskCreate(mdns_task, "aloft_mdns", STACK, d, tskIDLE_PRIORITY + 5, NULL) != pdPASS)
        return ESP_ERR_NO_MEM;
    return ESP_OK;
}

#endif
