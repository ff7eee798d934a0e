/* aloft POSIX port: the settings store (what NVS is on ESP-IDF), kept in
 * the flash image's nvs partition so settings live and die with the flash.
 *
 * Layout: each 4 KB sector starts with a 16-byte header {magic "aKV1",
 * generation, CRC}; records follow back to back: {u16 length (4-aligned,
 * header to CRC), u8 key length, u8 flags, u16 value length, u16 0xFFFF,
 * key, value, u32 CRC}. The sector with the highest valid generation is
 * active; the last valid record of a key wins. A set is one program (a
 * torn one fails its CRC and the old value stands); when the sector is
 * full, the live records are copied to the next sector, whose header is
 * written last. So a power cut at any point leaves the old or the new
 * value, never neither. */
#ifndef ALOFT_POSIX_KV_H
#define ALOFT_POSIX_KV_H

#include <stddef.h>
#include <stdint.h>

#include "aloft/agent.h"
#include "aloft/part.h"
#include "aloft/port.h"

#define ALOFT_KV_KEY_MAX 48u
#define ALOFT_KV_VALUE_MAX 1024u

struct aloft_posix_kv {
    const struct aloft_flash *flash;
    uint32_t offset; /* of the nvs partition */
    uint32_t sectors;
    uint32_t active; /* sector index */
    uint32_t gen;
    uint32_t end;    /* first free byte in the active sector; 0: must compact */
};

/* Open the store in partition p (at least two sectors), formatting it when
 * it holds no valid sector. Returns 0, ALOFT_E_INVAL or a flash error. */
int aloft_posix_kv_open(struct aloft_posix_kv *kv, const struct aloft_flash *f, const struct aloft_part *p);

/* Copy the value of key ("namespace/key") into buf (cap bytes). Returns its
 * length, ALOFT_E_NOTFOUND, ALOFT_E_NOSPC (buf too small) or a flash error. */
int aloft_posix_kv_get(struct aloft_posix_kv *kv, const char *key, void *buf, size_t cap);

/* Set key to len bytes. Returns 0, ALOFT_E_INVAL (key/value too long),
 * ALOFT_E_NOSPC (live settings do not fit a sector) or a flash error. */
int aloft_posix_kv_set(struct aloft_posix_kv *kv, const char *key, const void *val, size_t len);

/* Remove key (no error when absent). */
int aloft_posix_kv_del(struct aloft_posix_kv *kv, const char *key);

/* The store as the device agent's settings port (ctx: kv). */
struct aloft_settings aloft_posix_kv_settings(struct aloft_posix_kv *kv);

#endif
