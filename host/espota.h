/* aloft host: the ArduinoOTA upload client (espota, PROTOCOLS.md §5), for
 * `aloft deploy --espota` and the tests: any device that speaks it, aloft's
 * or a plain Arduino sketch's. Blocking, every wait bounded; one device per
 * client (deploy runs one thread per device).
 *
 * Steps: invite (UDP invitation; its answer), auth (if the answer was
 * AUTH), accept (the device connects back), send (the image; the device's
 * answers). aloft_espota_push does all four. */
#ifndef ALOFT_HOST_ESPOTA_H
#define ALOFT_HOST_ESPOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "aloft/espota.h" /* the protocol's numbers */

struct aloft_espota_client {
    int udp, listener, conn;  /* -1 when closed */
    char answer[128];         /* the device's last answer over UDP */
    char nonce[65];
    char why[240];            /* what went wrong, for people */
    size_t sent;              /* image bytes written so far (progress) */
};

/* Open the sockets and invite host:port (IPv4) to take len bytes of command
 * cmd with MD5 md5 (32 hex digits): up to 5 tries, 2 s each. Returns 0 with
 * the answer in c->answer ("OK", "AUTH <nonce>", or a refusal), or -1 (no
 * answer: why says so). */
int aloft_espota_invite(struct aloft_espota_client *c, const char *host, uint16_t port, int cmd, size_t len,
                        const char *md5);

/* Answer c->answer's AUTH challenge with password: MD5 (classic espota)
 * for a 32-digit nonce, or digits 32 (the classic client reading only the
 * first 32 of a longer one); PBKDF2-HMAC-SHA256 for 64. Returns 0 once the
 * device says OK, 1 refused (why: its answer), -1 no answer. */
int aloft_espota_auth(struct aloft_espota_client *c, const char *password, size_t digits);

/* Wait up to timeout_ms for the device to connect back. 0 or -1. */
int aloft_espota_accept(struct aloft_espota_client *c, unsigned timeout_ms);

/* Send the image's bytes from c->sent up to len (total: the whole image;
 * less to stop early, and call again to go on) and read the device's
 * answers; once all of the image is sent, wait up to 60 s
 * for its OK. Returns 0 (OK), 1 (refused: why holds the device's "ERROR:
 * code: message"), -1 (the connection failed or stalled for 10 s). */
int aloft_espota_send(struct aloft_espota_client *c, const uint8_t *image, size_t len, size_t total);

void aloft_espota_close(struct aloft_espota_client *c);

/* The whole upload: invite, auth when asked (a device that asks and no
 * password: refused), accept, send; closes. Returns 0, 1 (refused) or -1
 * (unreachable or failed in transit), with why. */
int aloft_espota_push(struct aloft_espota_client *c, const char *host, uint16_t port, bool fs,
                      const uint8_t *image, size_t len, const char *password);

#endif
