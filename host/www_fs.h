/* aloft host: the device agent's frontend filesystem (struct aloft_www_fs)
 * on a POSIX device — a www slot read from the flash into memory and
 * mounted with the LittleFS reader, as esp_littlefs mounts it on an ESP32. */
#ifndef ALOFT_HOST_WWW_FS_H
#define ALOFT_HOST_WWW_FS_H

#include <stdbool.h>
#include <stdint.h>

#include "aloft/agent.h"
#include "littlefs.h"

struct aloft_www_lfs {
    const struct aloft_flash *flash;
    uint8_t *img;          /* the mounted slot's copy, or NULL */
    struct aloft_lfs fs;
    bool mounted;
};

/* The port (ctx: w) for the www slots on flash. */
struct aloft_www_fs aloft_www_lfs_port(struct aloft_www_lfs *w, const struct aloft_flash *flash);

/* Unmount: free the copy. */
void aloft_www_lfs_free(struct aloft_www_lfs *w);

#endif
