/* aloft on ESP-IDF: the device HTTP API (PROTOCOLS.md §1, §2) on
 * esp_http_server. What to answer is the agent's (aloft_push_*); this
 * moves the bytes. One handler takes every path and method. The server
 * runs one request at a time on its task, so an upload holds it until the
 * upload ends; the body streams from httpd_req_recv into the agent a
 * chunk at a time, so memory does not grow with the image. */
#include <stdlib.h>
#include <string.h>

#include "esp_http_server.h"
#include "esp_log.h"
#include "glue.h"

/* A stalled client: httpd_req_recv gives up after recv_wait_timeout (5 s);
 * this many in a row (30 s of silence) drop the upload, where a loop that
 * retries forever would hold the only server task for good. */
#define RECV_STALLS 6

static const char *TAG = "aloft";
static struct aloft_idf *dev;

/* One request, on the heap: struct aloft_push alone is over 4 KB. */
struct request {
    struct aloft_push p;
    struct aloft_push_reply reply;
    char status[16];
    char authorization[ALOFT_AGENT_PSK_MAX + 32], content_type[96], accept_encoding[96];
    char host[128], origin[128], fetch_site[16];
    char path[CONFIG_HTTPD_MAX_URI_LEN + 1];
    char buf[2048];   /* JSON replies */
    char chunk[2048]; /* body bytes in, file bytes out */
};

static const struct {
    int status;
    const char *line;
} lines[] = {
    {200, "200 OK"},
    {202, "202 Accepted"},
    {304, "304 Not Modified"},
    {400, "400 Bad Request"},
    {401, "401 Unauthorized"},
    {403, "403 Forbidden"},
    {404, "404 Not Found"},
    {405, "405 Method Not Allowed"},
    {409, "409 Conflict"},
    {411, "411 Length Required"},
    {413, "413 Payload Too Large"},
    {415, "415 Unsupported Media Type"},
    {422, "422 Unprocessable Entity"},
    {500, "500 Internal Server Error"},
    {503, "503 Service Unavailable"},
};

static const char *status_line(struct request *q, int status)
{
    for (size_t i = 0; i < sizeof lines / sizeof *lines; i++)
        if (lines[i].status == status)
            return lines[i].line;
    snprintf(q->status, sizeof q->status, "%d ", status);
    return q->status;
}

/* A request header, truncated to cap (a truncated PSK only fails to
 * match), or NULL when absent. */
static const char *header(httpd_req_t *req, const char *name, char *buf, size_t cap)
{
    esp_err_t err = httpd_req_get_hdr_value_str(req, name, buf, cap);
    return err == ESP_OK || err == ESP_ERR_HTTPD_RESULT_TRUNC ? buf : NULL;
}

/* The whole body into the agent; false when the client went away. */
static bool receive(struct aloft_idf *d, httpd_req_t *req, struct request *q)
{
    size_t left = req->content_len;
    for (int stalls = 0; left;) {
        int n = httpd_req_recv(req, q->chunk, left < sizeof q->chunk ? left : sizeof q->chunk);
        if (n == HTTPD_SOCK_ERR_TIMEOUT && ++stalls < RECV_STALLS)
            continue;
        if (n <= 0) {
            ESP_LOGW(TAG, "http: %s: the client sent nothing more after %u of %u bytes", q->path,
                     (unsigned)(req->content_len - left), (unsigned)req->content_len);
            return false;
        }
        stalls = 0;
        aloft_idf_lock(d);
        aloft_push_body(&d->agent, &q->p, q->chunk, (size_t)n);
        aloft_idf_unlock(d);
        left -= (size_t)n;
    }
    return true;
}

/* A trigger the agent accepted: start its job, and say so. */
static esp_err_t start_pull(struct aloft_idf *d, struct request *q)
{
    struct aloft_pull *job = aloft_idf_pull_new();
    if (!job)
        return ESP_ERR_NO_MEM;
    aloft_idf_lock(d);
    int rc = aloft_pull_start(&d->agent, job, &q->p.pull);
    aloft_push_pull_reply(&d->agent, &q->p, rc, job, &q->reply);
    aloft_idf_unlock(d);
    if (rc == 0)
        aloft_idf_pull_spawn(d, job);
    else
        free(job);
    return ESP_OK;
}

/* A file of the active www slot, read from the agent a chunk at a time. */
static esp_err_t send_file(struct aloft_idf *d, httpd_req_t *req, struct request *q)
{
    for (uint32_t off = 0; off < q->reply.file_len;) {
        uint32_t want = q->reply.file_len - off < sizeof q->chunk ? q->reply.file_len - off : sizeof q->chunk;
        aloft_idf_lock(d);
        int n = aloft_push_read(&d->agent, &q->p, off, q->chunk, want);
        aloft_idf_unlock(d);
        if (n <= 0) /* the headers are out: only closing the connection tells the client */
            return ESP_FAIL;
        esp_err_t err = httpd_resp_send_chunk(req, q->chunk, n);
        if (err != ESP_OK)
            return err;
        off += (uint32_t)n;
    }
    return httpd_resp_send_chunk(req, NULL, 0);
}

static esp_err_t reply(struct aloft_idf *d, httpd_req_t *req, struct request *q, bool head)
{
    const struct aloft_push_reply *r = &q->reply;
    if (r->start_pull && start_pull(d, q) != ESP_OK)
        return httpd_resp_send_err(req, HTTPD_500_INTERNAL_SERVER_ERROR, "out of memory");
    httpd_resp_set_status(req, status_line(q, r->status));
    httpd_resp_set_type(req, r->content_type);
    if (!r->file)
        httpd_resp_set_hdr(req, "Cache-Control", "no-store");
    if (r->content_encoding)
        httpd_resp_set_hdr(req, "Content-Encoding", r->content_encoding);
    if (r->vary_encoding)
        httpd_resp_set_hdr(req, "Vary", "Accept-Encoding");
    if (head) /* esp_http_server would send a body after a HEAD reply's headers */
        return httpd_resp_send(req, NULL, 0);
    if (!r->file)
        return httpd_resp_send(req, r->body, (ssize_t)r->len);
    return send_file(d, req, q);
}

static esp_err_t handle(httpd_req_t *req)
{
    struct aloft_idf *d = dev;
    const char *method = req->user_ctx;
    struct request *q = calloc(1, sizeof *q);
    if (!q)
        return httpd_resp_send_err(req, HTTPD_500_INTERNAL_SERVER_ERROR, "out of memory");
    size_t len = strcspn(req->uri, "?");
    snprintf(q->path, sizeof q->path, "%.*s", (int)len, req->uri);
    struct aloft_push_request r = {
        .method = method,
        .path = q->path,
        .authorization = header(req, "Authorization", q->authorization, sizeof q->authorization),
        .content_type = header(req, "Content-Type", q->content_type, sizeof q->content_type),
        .accept_encoding = header(req, "Accept-Encoding", q->accept_encoding, sizeof q->accept_encoding),
        .host = header(req, "Host", q->host, sizeof q->host),
        .origin = header(req, "Origin", q->origin, sizeof q->origin),
        .fetch_site = header(req, "Sec-Fetch-Site", q->fetch_site, sizeof q->fetch_site),
        /* a chunked body has content_len 0 and no Content-Length: -1, refused with 411 */
        .content_length = httpd_req_get_hdr_value_len(req, "Content-Length") ? (int64_t)req->content_len : -1,
    };
    aloft_idf_lock(d);
    int final = aloft_push_begin(&d->agent, &q->p, &r, q->buf, sizeof q->buf, &q->reply);
    aloft_idf_unlock(d);
    esp_err_t err = ESP_OK;
    if (!final && receive(d, req, q)) {
        aloft_idf_lock(d);
        aloft_push_end(&d->agent, &q->p, &q->reply);
        aloft_idf_unlock(d);
    } else if (!final) {
        err = ESP_FAIL; /* the client went away: nobody to answer */
    }
    if (err == ESP_OK)
        err = reply(d, req, q, !strcmp(method, "HEAD"));
    aloft_idf_lock(d);
    aloft_push_abort(&d->agent, &q->p);
    aloft_idf_unlock(d);
    free(q);
    return err;
}

esp_err_t aloft_idf_http_start(struct aloft_idf *d)
{
    static const struct {
        httpd_method_t method;
        const char *name;
    } methods[] = {
        {HTTP_GET, "GET"}, {HTTP_HEAD, "HEAD"}, {HTTP_POST, "POST"}, {HTTP_PUT, "PUT"}, {HTTP_DELETE, "DELETE"},
    };
    dev = d;
    httpd_config_t c = HTTPD_DEFAULT_CONFIG();
    c.server_port = d->cfg.push_port;
    c.ctrl_port = ESP_HTTPD_DEF_CTRL_PORT + 1; /* the application's own server keeps the default */
    c.stack_size = d->cfg.httpd_stack_size;
    c.uri_match_fn = httpd_uri_match_wildcard;
    c.lru_purge_enable = true; /* a client that left its connection open does not lock out the next */
    httpd_handle_t server = NULL;
    esp_err_t err = httpd_start(&server, &c);
    for (size_t i = 0; err == ESP_OK && i < sizeof methods / sizeof *methods; i++) {
        const httpd_uri_t uri = {.uri = "/*", .method = methods[i].method, .handler = handle,
                                 .user_ctx = (void *)methods[i].name};
        err = httpd_register_uri_handler(server, &uri);
    }
    if (err != ESP_OK) {
        ESP_LOGE(TAG, "http: cannot serve on port %u: %s", (unsigned)c.server_port, esp_err_to_name(err));
        if (server)
            httpd_stop(server);
        return err;
    }
    ESP_LOGI(TAG, "http: serving on port %u", (unsigned)c.server_port);
    return ESP_OK;
}
