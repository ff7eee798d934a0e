/* aloft-node: the device HTTP API (PROTOCOLS.md §1, §2) on libmicrohttpd.
 * What to answer is the agent's (aloft_push_*); this moves the bytes.
 * Uploads stream straight into the agent from MHD's fixed connection
 * buffer, so memory does not grow with the image.
 *
 * Sockets as ESP-IDF's httpd keeps them: at most --max-sockets
 * (max_open_sockets, 7) open; a new connection beyond that closes the
 * least recently active one (lru_purge_enable), so a flood costs the
 * flooder's oldest sockets. A connection whose upload is in the agent is
 * spared, as ESP-IDF accepts nothing while its task runs a handler. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "aloft/push.h"
#include "node.h"

static struct MHD_Daemon *daemon_;

/* One open socket (MHD's socket context). */
struct session {
    int fd;
    unsigned long lru; /* the session counter when it was last active */
    bool busy;         /* its upload is in the agent */
    struct session *next;
};

static struct {
    pthread_mutex_t lock;
    struct session *list;
    unsigned open, max;
    unsigned long counter;
} sessions = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)cls;
    pthread_mutex_lock(&sessions.lock);
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct session *s = fd ? calloc(1, sizeof *s) : NULL;
        if (s) {
            s->fd = fd->connect_fd;
            s->lru = ++sessions.counter;
            s->next = sessions.list;
            sessions.list = s;
            sessions.open++;
        }
        *socket_context = s;
        struct session *old = NULL;
        for (struct session *e = sessions.list; sessions.open > sessions.max && e; e = e->next)
            if (e != s && !e->busy && (!old || e->lru < old->lru))
                old = e;
        if (old) {
            shutdown(old->fd, SHUT_RDWR); /* MHD sees the end and closes it */
            old->busy = true;             /* closing: not purged twice */
        } else if (sessions.open > sessions.max && s) {
            shutdown(s->fd, SHUT_RDWR); /* every other one is busy */
        }
    } else if (*socket_context) {
        for (struct session **p = &sessions.list; *p; p = &(*p)->next)
            if (*p == *socket_context) {
                *p = (*p)->next;
                sessions.open--;
                break;
            }
        free(*socket_context);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&sessions.lock);
}

/* The connection was active; busy: its upload is (or is no longer) in the agent. */
static void session_active(struct MHD_Connection *c, bool busy)
{
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    pthread_mutex_lock(&sessions.lock);
    struct session *s = i ? i->socket_context : NULL;
    if (s) {
        s->lru = ++sessions.counter;
        s->busy = busy;
    }
    pthread_mutex_unlock(&sessions.lock);
}

/* One request: the agent's state for it and its reply buffer. */
struct conn {
    struct aloft_push p;
    struct aloft_push_reply reply;
    bool replied;
    uint64_t received;
    struct timespec t0;
    char buf[2048];
};

/* The simulated Wi-Fi link: no faster than --link-rate. */
static void throttle(struct node *n, struct conn *k, size_t len)
{
    k->received += len;
    if (!n->cfg.link_rate)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - k->t0.tv_sec) + (double)(now.tv_nsec - k->t0.tv_nsec) / 1e9;
    double due = (double)k->received / (double)n->cfg.link_rate;
    if (due > elapsed)
        usleep((useconds_t)((due - elapsed) * 1e6));
}

/* A file's bytes from the agent, whole (the update page's files are small). */
static struct MHD_Response *file_response(struct node *n, struct conn *k)
{
    uint32_t len = k->reply.file_len;
    char *body = malloc(len ? len : 1);
    int got = 0;
    pthread_mutex_lock(&n->lock);
    for (int rc = 1; body && got < (int)len && rc > 0; got += rc > 0 ? rc : 0)
        rc = aloft_push_read(&n->agent, &k->p, (uint32_t)got, body + got, len - (uint32_t)got);
    pthread_mutex_unlock(&n->lock);
    if (!body || got != (int)len) {
        free(body);
        return NULL;
    }
    return MHD_create_response_from_buffer(len, body, MHD_RESPMEM_MUST_FREE);
}

/* A trigger the agent accepted: start its job here, and say so. */
static bool start_pull(struct node *n, struct conn *k)
{
    struct aloft_pull *job = node_pull_new();
    if (!job)
        return false;
    pthread_mutex_lock(&n->lock);
    int rc = aloft_pull_start(&n->agent, job, &k->p.pull);
    aloft_push_pull_reply(&n->agent, &k->p, rc, job, &k->reply);
    pthread_mutex_unlock(&n->lock);
    if (rc == 0)
        node_pull_spawn(n, job);
    else
        free(job);
    return true;
}

static enum MHD_Result send_reply(struct MHD_Connection *c, struct node *n, struct conn *k)
{
    k->replied = true;
    if (k->reply.start_pull && !start_pull(n, k))
        return MHD_NO;
    const struct aloft_push_reply *r = &k->reply;
    struct MHD_Response *resp = r->file ? file_response(n, k)
                                        : MHD_create_response_from_buffer(r->len, (void *)r->body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", r->content_type);
    if (!r->file)
        MHD_add_response_header(resp, "Cache-Control", "no-store");
    if (r->content_encoding)
        MHD_add_response_header(resp, "Content-Encoding", r->content_encoding);
    if (r->vary_encoding)
        MHD_add_response_header(resp, "Vary", "Accept-Encoding");
    enum MHD_Result ret = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static const char *header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    struct node *n = cls;
    struct conn *k = *con_cls;
    if (!k) {
        if (!(k = calloc(1, sizeof *k)))
            return MHD_NO;
        *con_cls = k;
        clock_gettime(CLOCK_MONOTONIC, &k->t0);
        const char *cl = header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
        char *end = NULL;
        long long len = cl && *cl ? strtoll(cl, &end, 10) : -1;
        struct aloft_push_request r = {
            .method = method,
            .path = url,
            .authorization = header(c, MHD_HTTP_HEADER_AUTHORIZATION),
            .content_type = header(c, MHD_HTTP_HEADER_CONTENT_TYPE),
            .accept_encoding = header(c, MHD_HTTP_HEADER_ACCEPT_ENCODING),
            .host = header(c, MHD_HTTP_HEADER_HOST),
            .origin = header(c, MHD_HTTP_HEADER_ORIGIN),
            .fetch_site = header(c, "Sec-Fetch-Site"),
            .content_length = end && !*end && len >= 0 ? len : -1, /* not a number: as if absent */
        };
        pthread_mutex_lock(&n->lock);
        int final = aloft_push_begin(&n->agent, &k->p, &r, k->buf, sizeof k->buf, &k->reply);
        pthread_mutex_unlock(&n->lock);
        session_active(c, !final);
        return final ? send_reply(c, n, k) : MHD_YES;
    }
    session_active(c, !k->replied && *data_size);
    if (k->replied) { /* refused already: the rest of the body is discarded */
        *data_size = 0;
        return MHD_YES;
    }
    if (*data_size) {
        pthread_mutex_lock(&n->lock);
        aloft_push_body(&n->agent, &k->p, data, *data_size);
        pthread_mutex_unlock(&n->lock);
        throttle(n, k, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    pthread_mutex_lock(&n->lock);
    aloft_push_end(&n->agent, &k->p, &k->reply);
    pthread_mutex_unlock(&n->lock);
    return send_reply(c, n, k);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    session_active(c, false);
    struct node *n = cls;
    struct conn *k = *con_cls;
    if (!k)
        return;
    pthread_mutex_lock(&n->lock);
    aloft_push_abort(&n->agent, &k->p);
    pthread_mutex_unlock(&n->lock);
    free(k);
    *con_cls = NULL;
}

/* libmicrohttpd's own messages, in the device's log. */
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    line[strcspn(line, "\r\n")] = 0;
    node_log(cls, "http: libmicrohttpd: %s", line);
}

int node_http_start(struct node *n)
{
    char host[64];
    const char *colon = strrchr(n->cfg.listen, ':');
    snprintf(host, sizeof host, "%.*s", (int)(colon - n->cfg.listen), n->cfg.listen);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &addr.sin_addr) != 1)
        return node_error("--listen %s: not an IPv4 address", n->cfg.listen);
    /* The socket is bound here, so a failure names the address and the
     * reason. With a simulated Wi-Fi link, also make the socket buffers an
     * ESP32's size (lwIP: about 4 segments of 1436 bytes): otherwise the
     * kernel takes a whole image into its buffers at once on loopback and
     * the sender's progress says nothing about what the device has received. */
    int one = 1, rcvbuf = 5744, mss = 1436;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) ||
        (n->cfg.link_rate && (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) ||
                              setsockopt(fd, IPPROTO_TCP, TCP_MAXSEG, &mss, sizeof mss))) ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) || listen(fd, 16)) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return node_error("http: cannot listen on %s: %s%s", n->cfg.listen, strerror(e),
                          e == EADDRINUSE ? " (another device or program is there)"
                          : e == EADDRNOTAVAIL ? " (not an address of this machine)"
                                               : "");
    }
    sessions.max = n->cfg.max_sockets;
    /* MHD's own limit only backs the purge up while purged sockets close */
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                               0, NULL, NULL, handler, n, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, n,
                               MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_TIMEOUT, n->cfg.idle_timeout_s,
                               MHD_OPTION_CONNECTION_LIMIT, 4 * n->cfg.max_sockets + 16, MHD_OPTION_NOTIFY_CONNECTION,
                               on_connection, n, MHD_OPTION_NOTIFY_COMPLETED, completed, n, MHD_OPTION_END);
    if (!daemon_) {
        close(fd);
        return node_error("http: cannot serve on %s (see libmicrohttpd's line above)", n->cfg.listen);
    }
    node_log(n, "http: serving on http://%s/", n->cfg.listen);
    return 0;
}

void node_http_stop(void)
{
    if (daemon_)
        MHD_stop_daemon(daemon_);
    daemon_ = NULL;
}
