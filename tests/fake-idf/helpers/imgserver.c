/* fake-idf tests: the image server (imgserver.h). */
#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imgserver.h"

#define ETAG "\"img-1\""

struct body {
    struct img_server *s;
    size_t start, end; /* end: where the connection drops, or len */
};

static ssize_t read_body(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct body *b = cls;
    size_t off = b->start + (size_t)pos;
    if (off >= b->end)
        return off >= b->s->len ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
    size_t n = b->end - off < max ? b->end - off : max;
    memcpy(buf, b->s->img + off, n);
    return (ssize_t)n;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                              const char *version, const char *upload, size_t *upload_len, void **req)
{
    (void)version, (void)upload, (void)upload_len;
    struct img_server *s = cls;
    if (!*req) { /* the headers: answer once they are all in */
        *req = s;
        return MHD_YES;
    }
    if (strcmp(method, "GET") || strcmp(url, "/fw.bin")) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
        enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_NOT_FOUND, r);
        MHD_destroy_response(r);
        return rc;
    }
    const char *range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Range");
    const char *if_range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "If-Range");
    size_t start = 0;
    if (range && (!if_range || !strcmp(if_range, ETAG)))
        sscanf(range, "bytes=%zu-", &start);
    struct body *b = malloc(sizeof *b);
    if (!b || start >= s->len) {
        free(b);
        return MHD_NO;
    }
    pthread_mutex_lock(&s->lock);
    s->requests++;
    if (range) {
        s->ranged++;
        snprintf(s->range, sizeof s->range, "%s", range);
    }
    *b = (struct body){.s = s, .start = start, .end = s->len};
    if (!range && s->drop_after) {
        b->end = s->drop_after;
        s->drop_after = 0;
    }
    pthread_mutex_unlock(&s->lock);
    struct MHD_Response *r = MHD_create_response_from_callback(s->len - start, 16 * 1024, read_body, b, free);
    MHD_add_response_header(r, "ETag", ETAG);
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    if (start) {
        char cr[96];
        snprintf(cr, sizeof cr, "bytes %zu-%zu/%zu", start, s->len - 1, s->len);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    enum MHD_Result rc = MHD_queue_response(conn, start ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

int img_server_start(struct img_server *s, const uint8_t *img, size_t len, size_t drop_after)
{
    *s = (struct img_server){.img = img, .len = len, .drop_after = drop_after};
    pthread_mutex_init(&s->lock, NULL);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL, handle, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!s->d)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    snprintf(s->url, sizeof s->url, "http://127.0.0.1:%u/fw.bin", (unsigned)info->port);
    return 0;
}

void img_server_stop(struct img_server *s)
{
    if (s->d)
        MHD_stop_daemon(s->d);
    s->d = NULL;
}
