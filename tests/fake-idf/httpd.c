/* fake-idf: esp_http_server over libmicrohttpd.
 *
 * ESP-IDF runs every handler on one server task, and a handler pulls the
 * body itself (httpd_req_recv) and pushes the reply out as it goes. MHD
 * pushes the body into its access callback instead, so each request gets
 * a thread of its own that runs the IDF handler, under a server-wide mutex
 * (one request at a time, as the server task), and two socketpairs join
 * the two sides:
 *   body: the access callback writes what MHD received, the handler's
 *         httpd_req_recv reads it — short reads of what arrived, and
 *         SO_RCVTIMEO (recv_wait_timeout) gives HTTPD_SOCK_ERR_TIMEOUT;
 *   out:  httpd_resp_send_chunk writes, MHD's content reader reads.
 * MHD runs a thread per connection, so its callbacks may block on these.
 * The access callback queues the reply once the handler has made one; a
 * handler that ends without one, or fails, closes the connection
 * (shutdown of its socket), as ESP-IDF closes the session.
 *
 * Sessions: at most max_open_sockets connections; with lru_purge_enable a
 * new one closes the least recently used idle one (ESP-IDF would not even
 * accept while its task runs a handler; here the busy one is spared).
 * FAKE_IDF_IP is the address the server binds (default: any);
 * FAKE_IDF_HTTPD_RECV_WAIT_MS stands for recv_wait_timeout, so tests need
 * not wait whole seconds. */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "esp_http_server.h"

#define LWIP_MAX_SOCKETS 10 /* CONFIG_LWIP_MAX_SOCKETS; ESP-IDF keeps 3 for itself */

struct session {
    int fd;
    unsigned lru;
    bool busy; /* its request is in the handler */
    struct session *next;
};

struct server {
    struct MHD_Daemon *mhd;
    httpd_config_t cfg;
    int recv_wait_ms;
    httpd_uri_t *uris;
    size_t nuris;
    pthread_mutex_t serve; /* the server task: one handler at a time */
    pthread_mutex_t lock;  /* sessions */
    struct session *sessions;
    unsigned nsessions, lru;
};

struct hdr {
    const char *field, *value;
};

struct request {
    httpd_req_t req;
    struct server *s;
    struct session *sess;
    int fd; /* the connection's socket */
    const httpd_uri_t *uri;
    char *hdrs; /* "name\0value\0" for each request header */
    size_t hdrs_len, left;
    int body[2], out[2]; /* [0]: the reader's end */
    pthread_t thread;
    bool threaded;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool reading, done, failed; /* the handler wants the body / returned / failed mid-reply */
    struct MHD_Response *resp;  /* the reply, once the handler made one */
    unsigned status;
    bool queued;
    /* the reply being built, as ESP-IDF keeps it: pointers */
    const char *status_line, *type;
    struct hdr *resp_hdrs;
    size_t nresp_hdrs;
};

/* ESP-IDF's matcher: a trailing '*' takes any rest, a '?' before it (or
 * last) makes the character before it optional. */
bool httpd_uri_match_wildcard(const char *uri_template, const char *uri_to_match, size_t match_upto)
{
    const size_t tpl_len = strlen(uri_template);
    const char last = tpl_len > 0 ? uri_template[tpl_len - 1] : 0;
    const char prevlast = tpl_len > 1 ? uri_template[tpl_len - 2] : 0;
    const bool asterisk = last == '*' || (prevlast == '*' && last == '?');
    const bool quest = last == '?' || (prevlast == '?' && last == '*');
    size_t exact = tpl_len;
    if (exact < (size_t)(asterisk + quest * 2))
        return false;
    exact -= (size_t)(asterisk + quest * 2);
    if (match_upto < exact)
        return false;
    if (!quest)
        return (asterisk || match_upto == exact) && !strncmp(uri_template, uri_to_match, exact);
    if (match_upto > exact && uri_template[exact] != uri_to_match[exact])
        return false;
    return !strncmp(uri_template, uri_to_match, exact) && (asterisk || match_upto <= exact + 1);
}

/* --- sessions ----------------------------------------------------------- */

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    struct server *s = cls;
    pthread_mutex_lock(&s->lock);
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        struct session *n = calloc(1, sizeof *n);
        if (n) {
            n->fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd;
            n->lru = ++s->lru;
            n->next = s->sessions;
            s->sessions = n;
            s->nsessions++;
        }
        *socket_context = n;
        struct session *old = NULL;
        for (struct session *e = s->sessions; s->nsessions > s->cfg.max_open_sockets && e; e = e->next)
            if (e != n && !e->busy && (!old || e->lru < old->lru))
                old = e;
        if (old)
            shutdown(old->fd, SHUT_RDWR); /* MHD sees the end and closes it */
    } else if (*socket_context) {
        for (struct session **p = &s->sessions; *p; p = &(*p)->next)
            if (*p == *socket_context) {
                *p = (*p)->next;
                s->nsessions--;
                break;
            }
        free(*socket_context);
        *socket_context = NULL;
    }
    pthread_mutex_unlock(&s->lock);
}

/* --- the handler's side --------------------------------------------------- */

static void set_flag(struct request *q, bool *flag)
{
    pthread_mutex_lock(&q->lock);
    *flag = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
}

static void *run_handler(void *arg)
{
    struct request *q = arg;
    struct server *s = q->s;
    pthread_mutex_lock(&s->serve);
    pthread_mutex_lock(&s->lock);
    if (q->sess) {
        q->sess->busy = true;
        q->sess->lru = ++s->lru;
    }
    pthread_mutex_unlock(&s->lock);
    esp_err_t err = q->uri->handler(&q->req);
    pthread_mutex_lock(&s->lock);
    if (q->sess)
        q->sess->busy = false;
    pthread_mutex_unlock(&s->lock);
    pthread_mutex_unlock(&s->serve);
    shutdown(q->body[0], SHUT_RDWR); /* the body's writer stops waiting for a reader */
    pthread_mutex_lock(&q->lock);
    if (q->out[1] >= 0) { /* a chunked reply: its end, or a cut one */
        q->failed = err != ESP_OK;
        shutdown(q->out[1], SHUT_WR);
    }
    if (!q->resp || err != ESP_OK)
        shutdown(q->fd, SHUT_RDWR); /* ESP-IDF closes the session */
    q->done = true;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int httpd_req_recv(httpd_req_t *r, char *buf, size_t buf_len)
{
    if (!r || !buf)
        return HTTPD_SOCK_ERR_INVALID;
    struct request *q = r->aux;
    if (buf_len > q->left)
        buf_len = q->left;
    if (!buf_len)
        return 0;
    if (!q->reading)
        set_flag(q, &q->reading);
    ssize_t n = recv(q->body[0], buf, buf_len, 0);
    if (n < 0)
        return errno == EAGAIN || errno == EWOULDBLOCK ? HTTPD_SOCK_ERR_TIMEOUT : HTTPD_SOCK_ERR_FAIL;
    q->left -= (size_t)n;
    return (int)n;
}

static const char *find_hdr(struct request *q, const char *field)
{
    for (size_t i = 0; field && i < q->hdrs_len;) {
        const char *name = q->hdrs + i, *value = name + strlen(name) + 1;
        if (!strcasecmp(name, field))
            return value;
        i = (size_t)(value + strlen(value) + 1 - q->hdrs);
    }
    return NULL;
}

size_t httpd_req_get_hdr_value_len(httpd_req_t *r, const char *field)
{
    const char *v = r ? find_hdr(r->aux, field) : NULL;
    return v ? strlen(v) : 0;
}

esp_err_t httpd_req_get_hdr_value_str(httpd_req_t *r, const char *field, char *val, size_t val_size)
{
    if (!r || !field)
        return ESP_ERR_INVALID_ARG;
    const char *v = find_hdr(r->aux, field);
    if (!v)
        return ESP_ERR_NOT_FOUND;
    if (!val || !val_size)
        return ESP_ERR_HTTPD_RESULT_TRUNC;
    snprintf(val, val_size, "%s", v);
    return val_size < strlen(v) + 1 ? ESP_ERR_HTTPD_RESULT_TRUNC : ESP_OK;
}

esp_err_t httpd_resp_set_status(httpd_req_t *r, const char *status)
{
    if (!r || !status)
        return ESP_ERR_INVALID_ARG;
    ((struct request *)r->aux)->status_line = status;
    return ESP_OK;
}

esp_err_t httpd_resp_set_type(httpd_req_t *r, const char *type)
{
    if (!r || !type)
        return ESP_ERR_INVALID_ARG;
    ((struct request *)r->aux)->type = type;
    return ESP_OK;
}

esp_err_t httpd_resp_set_hdr(httpd_req_t *r, const char *field, const char *value)
{
    if (!r || !field || !value)
        return ESP_ERR_INVALID_ARG;
    struct request *q = r->aux;
    if (q->nresp_hdrs >= q->s->cfg.max_resp_headers)
        return ESP_ERR_HTTPD_RESP_HDR;
    q->resp_hdrs[q->nresp_hdrs++] = (struct hdr){field, value};
    return ESP_OK;
}

/* The reply's status line and headers on resp, handed to MHD's side. */
static esp_err_t hand_over(struct request *q, struct MHD_Response *resp)
{
    if (!resp)
        return ESP_ERR_HTTPD_ALLOC_MEM;
    MHD_add_response_header(resp, "Content-Type", q->type);
    for (size_t i = 0; i < q->nresp_hdrs; i++)
        MHD_add_response_header(resp, q->resp_hdrs[i].field, q->resp_hdrs[i].value);
    pthread_mutex_lock(&q->lock);
    q->status = (unsigned)atoi(q->status_line);
    q->resp = resp;
    pthread_cond_broadcast(&q->cond);
    pthread_mutex_unlock(&q->lock);
    return ESP_OK;
}

esp_err_t httpd_resp_send(httpd_req_t *r, const char *buf, ssize_t buf_len)
{
    if (!r)
        return ESP_ERR_HTTPD_INVALID_REQ;
    struct request *q = r->aux;
    size_t len = buf_len == HTTPD_RESP_USE_STRLEN ? (buf ? strlen(buf) : 0) : (size_t)buf_len;
    if (q->resp)
        return ESP_ERR_HTTPD_RESP_SEND; /* MHD sends one reply per request */
    return hand_over(q, MHD_create_response_from_buffer(len, (void *)buf, MHD_RESPMEM_MUST_COPY));
}

/* MHD's side of a chunked reply: what the handler sent, as it comes. */
static ssize_t read_out(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct request *q = cls;
    ssize_t n = recv(q->out[0], buf, max, 0);
    if (n > 0)
        return n;
    pthread_mutex_lock(&q->lock);
    bool failed = q->failed || n < 0;
    pthread_mutex_unlock(&q->lock);
    return failed ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
}

static int socketpair_timeout(int sv[2], int opt, int ms)
{
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv))
        return -1;
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(opt == SO_RCVTIMEO ? sv[0] : sv[1], SOL_SOCKET, opt, &tv, sizeof tv);
    return 0;
}

esp_err_t httpd_resp_send_chunk(httpd_req_t *r, const char *buf, ssize_t buf_len)
{
    if (!r)
        return ESP_ERR_HTTPD_INVALID_REQ;
    struct request *q = r->aux;
    size_t len = buf_len == HTTPD_RESP_USE_STRLEN ? (buf ? strlen(buf) : 0) : (size_t)buf_len;
    if (q->out[1] < 0) {
        if (q->resp || socketpair_timeout(q->out, SO_SNDTIMEO, q->s->cfg.send_wait_timeout * 1000))
            return ESP_ERR_HTTPD_RESP_SEND;
        esp_err_t err = hand_over(q, MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, read_out, q, NULL));
        if (err != ESP_OK)
            return err;
    }
    if (!buf || !len) { /* the last chunk */
        shutdown(q->out[1], SHUT_WR);
        return ESP_OK;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = send(q->out[1], buf + off, len - off, MSG_NOSIGNAL);
        if (n <= 0)
            return ESP_ERR_HTTPD_RESP_SEND;
        off += (size_t)n;
    }
    return ESP_OK;
}

esp_err_t httpd_resp_send_err(httpd_req_t *req, httpd_err_code_t error, const char *msg)
{
    static const char *const lines[][2] = {
        [HTTPD_500_INTERNAL_SERVER_ERROR] = {"500 Internal Server Error", "Server has encountered an unexpected error"},
        [HTTPD_501_METHOD_NOT_IMPLEMENTED] = {"501 Method Not Implemented", "Server does not support this method"},
        [HTTPD_505_VERSION_NOT_SUPPORTED] = {"505 Version Not Supported", "HTTP version not supported by server"},
        [HTTPD_400_BAD_REQUEST] = {"400 Bad Request", "Bad request syntax"},
        [HTTPD_401_UNAUTHORIZED] = {"401 Unauthorized", "No permission -- see authorization schemes"},
        [HTTPD_403_FORBIDDEN] = {"403 Forbidden", "Request forbidden -- authorization will not help"},
        [HTTPD_404_NOT_FOUND] = {"404 Not Found", "Nothing matches the given URI"},
        [HTTPD_405_METHOD_NOT_ALLOWED] = {"405 Method Not Allowed", "Specified method is invalid for this resource"},
        [HTTPD_408_REQ_TIMEOUT] = {"408 Request Timeout", "Server closed this connection"},
        [HTTPD_411_LENGTH_REQUIRED] = {"411 Length Required", "Client must specify Content-Length"},
        [HTTPD_413_CONTENT_TOO_LARGE] = {"413 Content Too Large", "Content is too large"},
        [HTTPD_414_URI_TOO_LONG] = {"414 URI Too Long", "URI is too long"},
        [HTTPD_431_REQ_HDR_FIELDS_TOO_LARGE] = {"431 Request Header Fields Too Large", "Header fields are too long"},
    };
    if (!req || (unsigned)error >= HTTPD_ERR_CODE_MAX)
        return ESP_ERR_INVALID_ARG;
    httpd_resp_set_status(req, lines[error][0]);
    httpd_resp_set_type(req, "text/html");
    return httpd_resp_send(req, msg ? msg : lines[error][1], HTTPD_RESP_USE_STRLEN);
}

/* --- MHD's side ----------------------------------------------------------- */

static enum MHD_Result copy_hdr(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void)kind;
    struct request *q = cls;
    size_t kl = strlen(key) + 1, vl = strlen(value ? value : "") + 1;
    char *h = realloc(q->hdrs, q->hdrs_len + kl + vl);
    if (!h)
        return MHD_NO;
    memcpy(h + q->hdrs_len, key, kl);
    memcpy(h + q->hdrs_len + kl, value ? value : "", vl);
    q->hdrs = h;
    q->hdrs_len += kl + vl;
    return MHD_YES;
}

static int method_of(const char *m)
{
    static const char *const names[] = {[HTTP_DELETE] = "DELETE", [HTTP_GET] = "GET", [HTTP_HEAD] = "HEAD",
                                        [HTTP_POST] = "POST", [HTTP_PUT] = "PUT"};
    for (int i = 0; i < (int)(sizeof names / sizeof *names); i++)
        if (!strcmp(m, names[i]))
            return i;
    return -1;
}

/* The handler for the request, or the error ESP-IDF answers without one. */
static httpd_err_code_t route(struct request *q)
{
    struct server *s = q->s;
    size_t len = strcspn(q->req.uri, "?");
    bool uri_known = false;
    for (size_t i = 0; i < s->nuris; i++) {
        const httpd_uri_t *u = &s->uris[i];
        bool match = s->cfg.uri_match_fn ? s->cfg.uri_match_fn(u->uri, q->req.uri, len)
                                         : strlen(u->uri) == len && !strncmp(u->uri, q->req.uri, len);
        if (match && (int)u->method == q->req.method) {
            q->uri = u;
            return HTTPD_ERR_CODE_MAX;
        }
        uri_known |= match;
    }
    return uri_known ? HTTPD_405_METHOD_NOT_ALLOWED : HTTPD_404_NOT_FOUND;
}

static void request_free(struct request *q)
{
    for (int i = 0; i < 2; i++) {
        if (q->body[i] >= 0)
            close(q->body[i]);
        if (q->out[i] >= 0)
            close(q->out[i]);
    }
    if (q->resp && !q->queued)
        MHD_destroy_response(q->resp);
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->cond);
    free(q->resp_hdrs);
    free(q->hdrs);
    free(q);
}

static struct request *request_new(struct server *s, struct MHD_Connection *c, const char *url, const char *method)
{
    struct request *q = calloc(1, sizeof *q);
    if (!q)
        return NULL;
    q->s = s;
    q->body[0] = q->body[1] = q->out[0] = q->out[1] = -1;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->cond, NULL);
    q->resp_hdrs = calloc(s->cfg.max_resp_headers + 1u, sizeof *q->resp_hdrs);
    q->fd = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD)->connect_fd;
    q->sess = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT)->socket_context;
    q->req.handle = s;
    q->req.aux = q;
    q->req.method = method_of(method);
    q->status_line = "200 OK";
    q->type = "text/html";
    MHD_get_connection_values(c, MHD_HEADER_KIND, copy_hdr, q);
    const char *cl = find_hdr(q, "Content-Length");
    q->req.content_len = q->left = cl ? strtoull(cl, NULL, 10) : 0; /* chunked: 0, as ESP-IDF's parser leaves it */
    if (!q->resp_hdrs || socketpair_timeout(q->body, SO_RCVTIMEO, s->recv_wait_ms)) {
        request_free(q);
        return NULL;
    }
    snprintf((char *)q->req.uri, sizeof q->req.uri, "%s", url);
    httpd_err_code_t err = strlen(url) >= sizeof q->req.uri ? HTTPD_414_URI_TOO_LONG
                           : q->hdrs_len > s->cfg.max_req_hdr_len ? HTTPD_431_REQ_HDR_FIELDS_TOO_LARGE
                                                                  : route(q);
    if (err != HTTPD_ERR_CODE_MAX) {
        httpd_resp_send_err(&q->req, err, NULL);
        q->done = true;
    } else {
        q->req.user_ctx = q->uri->user_ctx;
        q->threaded = pthread_create(&q->thread, NULL, run_handler, q) == 0;
        if (!q->threaded) {
            request_free(q);
            return NULL;
        }
    }
    return q;
}

/* Has the handler replied, or returned? */
static bool settled(struct request *q)
{
    pthread_mutex_lock(&q->lock);
    bool rc = q->done || q->resp;
    pthread_mutex_unlock(&q->lock);
    return rc;
}

/* Wait until the handler has replied or returned, or (reading) asks for
 * the body. */
static void wait_for(struct request *q, bool reading)
{
    pthread_mutex_lock(&q->lock);
    while (!q->done && !q->resp && !(reading && q->reading))
        pthread_cond_wait(&q->cond, &q->lock);
    pthread_mutex_unlock(&q->lock);
}

/* Queue the handler's reply once there is one and MHD takes it (after the
 * head, or once the whole body is in: queue is false while body bytes are
 * still being handed over, where MHD_queue_response fails); MHD_NO closes
 * the connection of a handler that ended without one. */
static enum MHD_Result respond(struct request *q, struct MHD_Connection *c, bool queue)
{
    enum MHD_Result rc = MHD_YES;
    pthread_mutex_lock(&q->lock);
    if (q->resp && !q->queued) {
        if (!queue) {
            pthread_mutex_unlock(&q->lock);
            return MHD_YES;
        }
        q->queued = true;
        rc = MHD_queue_response(c, q->status, q->resp);
        MHD_destroy_response(q->resp);
    } else if (q->done && !q->resp) {
        rc = MHD_NO;
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    struct request *q = *con_cls;
    if (!q) { /* the headers: the handler starts, and asks for the body or replies */
        if (!(q = *con_cls = request_new(cls, c, url, method)))
            return MHD_NO;
        wait_for(q, true);
        return respond(q, c, true);
    }
    if (*data_size) { /* the body as it arrives; blocks while the handler does not read */
        for (size_t off = 0; off < *data_size && !settled(q);) {
            ssize_t n = send(q->body[1], data + off, *data_size - off, MSG_NOSIGNAL);
            if (n <= 0)
                break;
            off += (size_t)n;
        }
        *data_size = 0;
        return respond(q, c, false);
    }
    shutdown(q->body[1], SHUT_WR); /* all of it */
    wait_for(q, false);
    return respond(q, c, true);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)c, (void)toe;
    struct request *q = *con_cls;
    if (!q)
        return;
    /* a handler still at work sees the connection gone */
    shutdown(q->body[1], SHUT_WR);
    if (q->out[0] >= 0)
        shutdown(q->out[0], SHUT_RDWR);
    if (q->threaded)
        pthread_join(q->thread, NULL);
    request_free(q);
    *con_cls = NULL;
}

esp_err_t httpd_start(httpd_handle_t *handle, const httpd_config_t *config)
{
    if (!handle || !config || config->max_open_sockets > LWIP_MAX_SOCKETS - 3)
        return ESP_ERR_INVALID_ARG;
    struct server *s = calloc(1, sizeof *s);
    if (!s || !(s->uris = calloc(config->max_uri_handlers, sizeof *s->uris))) {
        free(s);
        return ESP_ERR_HTTPD_ALLOC_MEM;
    }
    s->cfg = *config;
    const char *ms = getenv("FAKE_IDF_HTTPD_RECV_WAIT_MS");
    s->recv_wait_ms = ms ? atoi(ms) : config->recv_wait_timeout * 1000;
    pthread_mutex_init(&s->serve, NULL);
    pthread_mutex_init(&s->lock, NULL);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(config->server_port)};
    const char *ip = getenv("FAKE_IDF_IP");
    if (!ip || inet_pton(AF_INET, ip, &addr.sin_addr) != 1)
        addr.sin_addr.s_addr = htonl(INADDR_ANY);
    s->mhd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_LISTEN_BACKLOG_SIZE,
        (unsigned)config->backlog_conn, MHD_OPTION_CONNECTION_LIMIT,
        /* without LRU purge, the sessions beyond the limit are refused */
        config->lru_purge_enable ? 64u : (unsigned)config->max_open_sockets, MHD_OPTION_NOTIFY_CONNECTION,
        on_connection, s, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s, MHD_OPTION_END);
    if (!s->mhd) {
        free(s->uris);
        free(s);
        return ESP_ERR_HTTPD_TASK;
    }
    *handle = s;
    return ESP_OK;
}

esp_err_t httpd_stop(httpd_handle_t handle)
{
    struct server *s = handle;
    if (!s)
        return ESP_ERR_INVALID_ARG;
    MHD_stop_daemon(s->mhd);
    for (size_t i = 0; i < s->nuris; i++)
        free((char *)s->uris[i].uri);
    free(s->uris);
    free(s);
    return ESP_OK;
}

esp_err_t httpd_register_uri_handler(httpd_handle_t handle, const httpd_uri_t *uri_handler)
{
    struct server *s = handle;
    if (!s || !uri_handler || !uri_handler->uri)
        return ESP_ERR_INVALID_ARG;
    for (size_t i = 0; i < s->nuris; i++)
        if (s->uris[i].method == uri_handler->method && !strcmp(s->uris[i].uri, uri_handler->uri))
            return ESP_ERR_HTTPD_HANDLER_EXISTS;
    if (s->nuris >= s->cfg.max_uri_handlers)
        return ESP_ERR_HTTPD_HANDLERS_FULL;
    httpd_uri_t u = *uri_handler;
    if (!(u.uri = strdup(u.uri)))
        return ESP_ERR_HTTPD_ALLOC_MEM;
    s->uris[s->nuris++] = u;
    return ESP_OK;
}
