/* fake-idf tests: an HTTP server on 127.0.0.1 (libmicrohttpd) serving one
 * image at /fw.bin with an ETag and Range, that can drop the first
 * download mid-body, as a flaky network would. */
#pragma once

#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

struct img_server {
    struct MHD_Daemon *d;
    char url[64]; /* http://127.0.0.1:PORT/fw.bin */
    const uint8_t *img;
    size_t len;
    size_t drop_after; /* the first download without Range closes after this many bytes; 0: never */
    pthread_mutex_t lock;
    unsigned requests, ranged; /* downloads; those with a Range */
    char range[64];            /* the last Range asked for */
};

/* Start serving img (kept by the caller). Returns 0 or -1. */
int img_server_start(struct img_server *s, const uint8_t *img, size_t len, size_t drop_after);
void img_server_stop(struct img_server *s);
