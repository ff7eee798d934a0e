/* aloft: the ArduinoOTA network upload (espota, PROTOCOLS.md §5) as
 * functions, so that the Arduino IDE and PlatformIO (upload_protocol =
 * espota) push to an aloft device. The glue owns one UDP socket (port 3232)
 * and, during a transfer, one TCP connection to the host:
 *
 *   1. each datagram → aloft_espota_datagram; send back the answer it gives.
 *      Once e->state is ALOFT_ESPOTA_CONNECT, connect to the sender of that
 *      datagram at port e->port (a few seconds at most).
 *   2. connected → aloft_espota_connected; not connected → aloft_espota_abort.
 *   3. each chunk read → aloft_espota_data; send back the answer it gives.
 *      When e->state is ALOFT_ESPOTA_IDLE again the transfer is over: close.
 *      Nothing read for a few seconds, or the host closed early →
 *      aloft_espota_abort.
 *
 * The password is the device's PSK. The answer to an invitation is "AUTH
 * <64 hex digits>" and the device takes either scheme in reply: classic
 * espota.py reads the first 32 digits and answers MD5(MD5(psk) ":" nonce32
 * ":" cnonce); arduino-esp32 3.3.1 and later take all 64 and answer
 * SHA-256(hex(PBKDF2-HMAC-SHA256(hex(SHA-256(psk)), nonce ":" cnonce,
 * 10000)) ":" nonce ":" cnonce). Without a PSK the invitation is refused,
 * unless the agent runs open ("OK" at once).
 *
 * The image takes the path of every other way in (push.h): the update
 * writer with its checks, the signature policy, the LittleFS check of a
 * frontend image (command 100: the inactive www slot); and before anything
 * becomes bootable, the MD5 the invitation gave. A refusal is the text
 * "ERROR: <code>: <message>" and leaves the running image, otadata and the
 * settings as they were. One transfer at a time: another invitation during
 * one is refused. */
#ifndef ALOFT_ESPOTA_H
#define ALOFT_ESPOTA_H

#include <stddef.h>
#include <stdint.h>

#include "aloft/agent.h"
#include "aloft/crypto.h"
#include "aloft/push.h"

#define ALOFT_ESPOTA_PORT 3232        /* ArduinoOTA's on ESP32 */
#define ALOFT_ESPOTA_CMD_FLASH 0      /* the invitation's commands: an app image, */
#define ALOFT_ESPOTA_CMD_FS 100       /* a filesystem image, */
#define ALOFT_ESPOTA_CMD_AUTH 200     /* and the answer to AUTH */
#define ALOFT_ESPOTA_PBKDF2_ROUNDS 10000 /* arduino-esp32 3.3.1's */
#define ALOFT_ESPOTA_AUTH_MS 10000    /* an AUTH challenge stands this long */
#define ALOFT_ESPOTA_DATAGRAM_MAX 200 /* longer datagrams are not the protocol's */
#define ALOFT_ESPOTA_ANSWER_MAX 320   /* out's size for every call */

enum aloft_espota_state { ALOFT_ESPOTA_IDLE, ALOFT_ESPOTA_AUTH, ALOFT_ESPOTA_CONNECT, ALOFT_ESPOTA_TRANSFER };

/* Caller-allocated, one per device; zero it before the first call. */
struct aloft_espota {
    uint8_t state;         /* enum aloft_espota_state */
    bool frontend;         /* command 100: a filesystem image */
    uint16_t port;         /* the host's TCP port */
    uint32_t size;
    uint64_t deadline_ms;  /* AUTH: the answer is due by then */
    char md5[33];          /* the image's, from the invitation */
    char nonce[65];
    struct aloft_md5 sum;  /* of the bytes received */
    struct aloft_push p;
    struct aloft_push_reply reply;     /* the update's, and its JSON: */
    char buf[ALOFT_ESPOTA_ANSWER_MAX];
};

/* A datagram (len bytes, any content). Writes the answer into out
 * (ALOFT_ESPOTA_ANSWER_MAX bytes, NUL-terminated) and returns its length:
 * "OK", "AUTH <nonce>", "Authentication Failed" or "ERROR: …"; 0 when the
 * datagram is not the protocol's (no answer). */
int aloft_espota_datagram(struct aloft_agent *a, struct aloft_espota *e, const void *data, size_t len, char *out,
                          size_t cap);

/* The TCP connection to the host is up: begin the update. Returns 0 (read
 * the image), or the length of a refusal in out (send it and close). */
int aloft_espota_connected(struct aloft_agent *a, struct aloft_espota *e, char *out, size_t cap);

/* The next len bytes of the image. Returns the length of the answer in
 * out: the count taken (decimal), followed, once the whole image is in,
 * by "OK" (a restart is requested: the glue sends this first) or by the
 * refusal; a refusal ends the transfer early. */
int aloft_espota_data(struct aloft_agent *a, struct aloft_espota *e, const void *data, size_t len, char *out,
                      size_t cap);

/* The transfer or handshake ended without its image (why, for the log):
 * nothing changed. Idempotent. */
void aloft_espota_abort(struct aloft_agent *a, struct aloft_espota *e, const char *why);

#endif
