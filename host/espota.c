/* aloft host: the ArduinoOTA upload client (espota.h), written from the
 * protocol; MD5, SHA-256 and PBKDF2 are OpenSSL's. */
#include "espota.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "hex.h"

#define TRIES 5
#define TRY_MS 2000
#define AUTH_MS 10000   /* PBKDF2's 10000 rounds take a while on a device */
#define STALL_MS 10000  /* no progress for this long: the transfer failed */
#define RESULT_MS 60000 /* the device verifies the whole image before its OK */

static int fail(struct aloft_espota_client *c, int rc, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(struct aloft_espota_client *c, int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->why, sizeof c->why, fmt, ap);
    va_end(ap);
    return rc;
}

/* A datagram into c->answer within ms. 0 or -1. */
static int receive(struct aloft_espota_client *c, unsigned ms)
{
    struct pollfd p = {.fd = c->udp, .events = POLLIN};
    if (poll(&p, 1, (int)ms) != 1)
        return -1;
    ssize_t n = recv(c->udp, c->answer, sizeof c->answer - 1, 0);
    if (n < 0)
        return -1;
    c->answer[n] = 0;
    return 0;
}

int aloft_espota_invite(struct aloft_espota_client *c, const char *host, uint16_t port, int cmd, size_t len,
                        const char *md5)
{
    memset(c, 0, sizeof *c);
    c->udp = c->listener = c->conn = -1;
    struct sockaddr_in dev = {.sin_family = AF_INET, .sin_port = htons(port)}, self;
    socklen_t sl = sizeof self;
    if (inet_pton(AF_INET, host, &dev.sin_addr) != 1)
        return fail(c, -1, "%s is not an IPv4 address", host);
    /* the connected UDP socket says which of this host's addresses the
     * device reaches: the TCP port to connect back to listens there */
    c->udp = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    c->listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->udp < 0 || c->listener < 0 || connect(c->udp, (struct sockaddr *)&dev, sizeof dev) ||
        getsockname(c->udp, (struct sockaddr *)&self, &sl))
        return fail(c, -1, "cannot reach it: %s", strerror(errno));
    self.sin_port = 0;
    sl = sizeof self;
    if (bind(c->listener, (struct sockaddr *)&self, sizeof self) || listen(c->listener, 1) ||
        getsockname(c->listener, (struct sockaddr *)&self, &sl))
        return fail(c, -1, "cannot listen for the device: %s", strerror(errno));
    char inv[96];
    int n = snprintf(inv, sizeof inv, "%d %u %zu %s\n", cmd, ntohs(self.sin_port), len, md5);
    for (int i = 0; i < TRIES; i++) {
        if (send(c->udp, inv, (size_t)n, 0) < 0)
            return fail(c, -1, "cannot send the invitation: %s", strerror(errno));
        if (receive(c, TRY_MS) == 0)
            return 0;
    }
    return fail(c, -1, "no answer to the invitation (is ArduinoOTA listening on that UDP port?)");
}

static void hex_digest(const EVP_MD *md, const void *data, size_t len, char *out)
{
    unsigned char d[32];
    unsigned dl = 0;
    EVP_Digest(data, len, d, &dl, md, NULL);
    aloft_hex(d, dl, out);
}

int aloft_espota_auth(struct aloft_espota_client *c, const char *password, size_t digits)
{
    const char *nonce = c->answer + 5;
    size_t nl = strlen(nonce);
    if (strncmp(c->answer, "AUTH ", 5) || (nl != 32 && nl != 64) || digits > nl || (digits != 32 && digits != 64))
        return fail(c, 1, "not a challenge: %s", c->answer);
    snprintf(c->nonce, sizeof c->nonce, "%.*s", (int)digits, nonce);
    const EVP_MD *md = digits == 32 ? EVP_md5() : EVP_sha256();
    unsigned char r[32];
    char cnonce[65], key[65], text[3 * 64 + 3], response[65];
    RAND_bytes(r, sizeof r);
    aloft_hex(r, digits / 2, cnonce);
    hex_digest(md, password, strlen(password), key);
    if (digits == 64) { /* arduino-esp32 3.3.1+: the key stretched with PBKDF2 */
        unsigned char dk[32];
        snprintf(text, sizeof text, "%s:%s", c->nonce, cnonce);
        PKCS5_PBKDF2_HMAC(key, 64, (unsigned char *)text, (int)strlen(text), ALOFT_ESPOTA_PBKDF2_ROUNDS, EVP_sha256(),
                          sizeof dk, dk);
        aloft_hex(dk, sizeof dk, key);
    }
    snprintf(text, sizeof text, "%s:%s:%s", key, c->nonce, cnonce);
    hex_digest(md, text, strlen(text), response);
    char msg[160];
    int n = snprintf(msg, sizeof msg, "%d %s %s\n", ALOFT_ESPOTA_CMD_AUTH, cnonce, response);
    if (send(c->udp, msg, (size_t)n, 0) < 0 || receive(c, AUTH_MS))
        return fail(c, -1, "no answer to the authentication");
    if (strcmp(c->answer, "OK"))
        return fail(c, 1, "%s (the password is the device's PSK)", c->answer);
    return 0;
}

int aloft_espota_accept(struct aloft_espota_client *c, unsigned timeout_ms)
{
    struct pollfd p = {.fd = c->listener, .events = POLLIN};
    if (poll(&p, 1, (int)timeout_ms) != 1 || (c->conn = accept(c->listener, NULL, NULL)) < 0)
        return fail(c, -1, "the device did not connect back (a firewall on this host?)");
    return 0;
}

int aloft_espota_send(struct aloft_espota_client *c, const uint8_t *image, size_t len, size_t total)
{
    char tail[256] = ""; /* the end of what the device said, counts dropped */
    size_t tl = 0;
    for (;;) {
        /* a refusal is read until the device closes; then it is whole */
        const char *err = strstr(tail, "ERROR"); /* aloft's and Arduino's Update.printError */
        if (!err && tl >= 2 && !strcmp(tail + tl - 2, "OK"))
            return 0;
        if (!err && c->sent == len && len < total)
            return fail(c, -1, "stopped after %zu bytes, as asked", len);
        struct pollfd p = {.fd = c->conn, .events = POLLIN | (c->sent < len && !err ? POLLOUT : 0)};
        int ready = poll(&p, 1, c->sent < len && !err ? STALL_MS : RESULT_MS);
        ssize_t n = 0;
        char buf[100];
        if (ready == 1 && (p.revents & POLLOUT) && !(p.revents & POLLIN)) {
            size_t k = len - c->sent < 4096 ? len - c->sent : 4096;
            if ((n = send(c->conn, image + c->sent, k, MSG_NOSIGNAL)) > 0) {
                c->sent += (size_t)n;
                continue;
            }
        } else if (ready == 1) {
            n = recv(c->conn, buf, sizeof buf, 0);
        }
        if (n <= 0 && err)
            return fail(c, 1, "%s", err);
        if (n <= 0)
            return fail(c, -1, "%s", ready != 1 ? (c->sent < len ? "the device stalled" : "no OK after the image")
                                     : c->sent < total ? "the connection ended before the end of the image"
                                                       : "the connection ended without the device's OK");
        if (tl + (size_t)n >= sizeof tail) { /* keep the last half */
            memmove(tail, tail + tl - sizeof tail / 2, sizeof tail / 2);
            tl = sizeof tail / 2;
        }
        memcpy(tail + tl, buf, (size_t)n);
        tail[tl += (size_t)n] = 0;
        size_t counts = strspn(tail, "0123456789 \r\n");
        memmove(tail, tail + counts, tl - counts + 1);
        tl -= counts;
    }
}

void aloft_espota_close(struct aloft_espota_client *c)
{
    int *fds[] = {&c->udp, &c->listener, &c->conn};
    for (size_t i = 0; i < 3; i++)
        if (*fds[i] >= 0)
            close(*fds[i]), *fds[i] = -1;
}

int aloft_espota_push(struct aloft_espota_client *c, const char *host, uint16_t port, bool fs,
                      const uint8_t *image, size_t len, const char *password)
{
    unsigned char d[16];
    unsigned dl = 0;
    char md5[33];
    EVP_Digest(image, len, d, &dl, EVP_md5(), NULL);
    aloft_hex(d, dl, md5);
    int rc = aloft_espota_invite(c, host, port, fs ? ALOFT_ESPOTA_CMD_FS : ALOFT_ESPOTA_CMD_FLASH, len, md5);
    if (rc == 0 && !strncmp(c->answer, "AUTH ", 5))
        rc = password ? aloft_espota_auth(c, password, strlen(c->answer + 5) == 64 ? 64 : 32)
                      : fail(c, 1, "the device asks for a password: give its PSK (--psk)");
    else if (rc == 0 && strcmp(c->answer, "OK"))
        rc = fail(c, 1, "%s", c->answer);
    if (rc == 0)
        rc = aloft_espota_accept(c, 10000);
    if (rc == 0)
        rc = aloft_espota_send(c, image, len, len);
    aloft_espota_close(c);
    return rc;
}
