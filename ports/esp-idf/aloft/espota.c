/* aloft on ESP-IDF: the ArduinoOTA upload's sockets (the agent's espota.h)
 * over lwIP, so that the Arduino IDE and PlatformIO push to the device. One
 * task polls the UDP port and, during a transfer, the connection
 * back to the host (poll, which ESP-IDF's VFS gives lwIP's sockets), and
 * hands the agent what arrives; what to answer and
 * whether to go on is the agent's, as in aloft-node. */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/poll.h>
#include <unistd.h>

#include "aloft/espota.h"
#include "esp_log.h"
#include "glue.h"
#include "lwip/sockets.h"

#define CONNECT_MS 5000 /* the host accepts within this, or nothing happens */
#define IDLE_MS 10000   /* the host sends nothing for this long: the transfer failed */
#define CHUNK 1460      /* a TCP segment */

static const char *TAG = "aloft";
static struct aloft_espota espota;
static char buf[CHUNK], out[ALOFT_ESPOTA_ANSWER_MAX]; /* one task: off its stack */
static int udp = -1;

/* Connect to the host that authenticated, at most CONNECT_MS. */
static int connect_host(struct sockaddr_in host)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0), err = 0;
    socklen_t len = sizeof err;
    if (fd < 0)
        return -1;
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    if ((connect(fd, (struct sockaddr *)&host, sizeof host) && errno != EINPROGRESS) || poll(&p, 1, CONNECT_MS) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, 0);
    return fd;
}

static void send_all(int fd, const char *s, int len)
{
    for (ssize_t w; len > 0; s += w, len -= (int)w)
        if ((w = send(fd, s, (size_t)len, 0)) <= 0)
            return;
}

/* A datagram: answer it; once the agent agreed to a transfer, connect back
 * to its sender. Returns the connection, or -1. */
static int datagram(struct aloft_idf *d)
{
    struct sockaddr_in from;
    socklen_t fl = sizeof from;
    ssize_t got = recvfrom(udp, buf, sizeof buf, 0, (struct sockaddr *)&from, &fl);
    aloft_idf_lock(d);
    int len = got > 0 ? aloft_espota_datagram(&d->agent, &espota, buf, (size_t)got, out, sizeof out) : 0;
    bool go = espota.state == ALOFT_ESPOTA_CONNECT;
    aloft_idf_unlock(d);
    if (len > 0)
        sendto(udp, out, (size_t)len, 0, (struct sockaddr *)&from, fl);
    if (!go)
        return -1;
    from.sin_port = htons(espota.port);
    int tcp = connect_host(from);
    aloft_idf_lock(d);
    if (tcp < 0)
        aloft_espota_abort(&d->agent, &espota, "the host did not take the connection");
    else
        len = aloft_espota_connected(&d->agent, &espota, out, sizeof out);
    aloft_idf_unlock(d);
    if (tcp >= 0 && len > 0) {
        send_all(tcp, out, len);
        close(tcp);
        tcp = -1;
    }
    return tcp;
}

static void espota_task(void *arg)
{
    struct aloft_idf *d = arg;
    int tcp = -1;
    for (;;) {
        struct pollfd p[2] = {{.fd = udp, .events = POLLIN}, {.fd = tcp, .events = POLLIN}};
        int n = poll(p, tcp >= 0 ? 2 : 1, tcp >= 0 ? IDLE_MS : -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (p[0].revents & POLLIN) {
            if (tcp < 0)
                tcp = datagram(d);
            else /* during a transfer the agent refuses another invitation */
                datagram(d);
            continue;
        }
        if (tcp < 0 || (n > 0 && !p[1].revents))
            continue;
        ssize_t got = n > 0 ? recv(tcp, buf, sizeof buf, 0) : 0;
        int len = 0;
        aloft_idf_lock(d);
        if (got > 0)
            len = aloft_espota_data(&d->agent, &espota, buf, (size_t)got, out, sizeof out);
        else
            aloft_espota_abort(&d->agent, &espota,
                               n == 0 ? "the host sent nothing for too long" : "the host closed early");
        bool over = espota.state == ALOFT_ESPOTA_IDLE;
        aloft_idf_unlock(d);
        if (len > 0)
            send_all(tcp, out, len);
        if (over) {
            close(tcp);
            tcp = -1;
        }
    }
}

esp_err_t aloft_idf_espota_start(struct aloft_idf *d)
{
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(d->cfg.espota_port)};
    if ((udp = socket(AF_INET, SOCK_DGRAM, 0)) < 0 || bind(udp, (struct sockaddr *)&addr, sizeof addr)) {
        ESP_LOGE(TAG, "espota: cannot listen on UDP port %u: errno %d", d->cfg.espota_port, errno);
        return ESP_FAIL;
    }
    if (xTaskCreate(espota_task, "aloft_espota", d->cfg.task_stack_size, d, tskIDLE_PRIORITY + 5, NULL) != pdPASS)
        return ESP_ERR_NO_MEM;
    ESP_LOGI(TAG, "espota: ArduinoOTA uploads on UDP port %u", d->cfg.espota_port);
    return ESP_OK;
}
