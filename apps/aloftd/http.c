/* aloftd: the HTTP server (libmicrohttpd) and the routes. Device endpoints
 * and the health checks need no token; everything under /api/ and
 * /metrics needs the admin token. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aloft/err.h"
#include "aloftd.h"
#include "file.h"

#define JSON_BODY_MAX 4096 /* admin requests are small */

enum MHD_Result aloftd_reply_json(struct MHD_Connection *c, unsigned status, cJSON *j)
{
    char *body = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!body)
        return MHD_NO;
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(body);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (status == 401)
        MHD_add_response_header(r, "WWW-Authenticate", "Bearer realm=\"aloftd\"");
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result aloftd_reply_error(struct MHD_Connection *c, unsigned status, const char *code, const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "error");
    cJSON_AddStringToObject(j, "error", code);
    cJSON_AddStringToObject(j, "message", message);
    return aloftd_reply_json(c, status, j);
}

enum MHD_Result aloftd_reply_store_error(struct MHD_Connection *c, int err, const char *code, const char *message)
{
    if (err == ALOFT_E_NOTFOUND)
        return aloftd_reply_error(c, 404, code, "%s", message);
    aloftd_log("database error: %s", aloft_store_error());
    return aloftd_reply_error(c, 503, "database_unavailable", "the database failed: %s", aloft_store_error());
}

const char *aloftd_header(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
}

const char *aloftd_arg(struct MHD_Connection *c, const char *name)
{
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, name);
}

/* A small JSON body, collected until the last call. */
static void collect(struct aloftd_request *req, const char *data, size_t n)
{
    if (req->too_big || req->len + n > JSON_BODY_MAX) {
        req->too_big = true;
        return;
    }
    char *bigger = realloc(req->body, req->len + n + 1);
    if (!bigger) {
        req->too_big = true;
        return;
    }
    req->body = bigger;
    memcpy(req->body + req->len, data, n);
    req->len += n;
    req->body[req->len] = 0;
}

static enum MHD_Result cross_site(struct MHD_Connection *c)
{
    return aloftd_reply_error(c, 403, "cross_site", "refused: a page of another site sent this request");
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *data, size_t *data_size, void **con_cls)
{
    (void)version;
    struct aloftd *d = cls;
    struct aloftd_request *req = *con_cls;
    if (!req)
        aloftd_conns_head_done(c);
    bool get = !strcmp(method, MHD_HTTP_METHOD_GET) || !strcmp(method, MHD_HTTP_METHOD_HEAD);
    bool post = !strcmp(method, MHD_HTTP_METHOD_POST);
    aloftd_head_request = !strcmp(method, MHD_HTTP_METHOD_HEAD);

    if (!strcmp(url, "/api/firmware") && post) {
        if (!req) {
            enum MHD_Result reply;
            if (aloftd_cross_site(c))
                return cross_site(c);
            if (aloftd_auth(d, c, &reply)) /* refused before a byte of the body is read */
                return reply;
            if (!(req = calloc(1, sizeof *req)))
                return MHD_NO;
            req->endpoint = ALOFTD_EP_UPLOAD;
            *con_cls = req;
        }
        return aloftd_upload(d, c, req, data, data_size);
    }
    if (!req) { /* headers only: the body (if any) comes next. Answering now
                 * would make libmicrohttpd close the connection. */
        if (!(req = calloc(1, sizeof *req)))
            return MHD_NO;
        req->endpoint = !strcmp(url, "/update")              ? ALOFTD_EP_UPDATE
                        : !strncmp(url, "/firmware/", 10)     ? ALOFTD_EP_FIRMWARE
                        : !strncmp(url, "/api/devices/", 13) && !strstr(url, "/credential") ? ALOFTD_EP_REPORT
                        : !strncmp(url, "/api/", 5)          ? ALOFTD_EP_API
                        : !strcmp(url, "/metrics")           ? ALOFTD_EP_METRICS
                        : !strcmp(url, "/healthz") || !strcmp(url, "/readyz") ? ALOFTD_EP_HEALTH
                                                             : ALOFTD_EP_OTHER;
        *con_cls = req;
        return MHD_YES;
    }
    if (*data_size) {
        collect(req, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    if (!get && aloftd_cross_site(c))
        return cross_site(c);
    if (!strcmp(url, "/update"))
        return get ? aloftd_update(d, c) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    if (!strncmp(url, "/firmware/", 10))
        return get ? aloftd_download(d, c, url + 10)
                   : aloftd_reply_error(c, 405, "method_not_allowed", "use GET or HEAD");
    if (!strcmp(url, "/healthz"))
        return get ? aloftd_healthz(c) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET or HEAD");
    if (!strcmp(url, "/readyz"))
        return get ? aloftd_readyz(d, c) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET or HEAD");
    if (!strncmp(url, "/api/devices/", 13) && post) /* a device's outcome report: no token */
        return aloftd_report(d, c, url + 13, req->body, req->len, req->too_big);
    if (!strcmp(url, "/metrics")) {
        enum MHD_Result reply;
        if (aloftd_auth(d, c, &reply))
            return reply;
        return get ? aloftd_metrics(d, c) : aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    }
    if (!strncmp(url, "/api/", 5)) {
        enum MHD_Result reply;
        if (aloftd_auth(d, c, &reply))
            return reply;
        return aloftd_admin(d, c, url, method, req->body, req->len, req->too_big);
    }
    if (!strcmp(url, "/") || !strcmp(url, "/admin") || !strncmp(url, "/admin/", 7))
        return aloftd_ui(d, c, url, get);
    return aloftd_reply_error(c, 404, "not_found",
                              "no such endpoint (devices: /update, /firmware/; admin: /api/, the UI at /admin/; "
                              "health: /healthz, /readyz)");
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    if (toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        aloftd_conns_request_done(c);
    struct aloftd_request *req = *con_cls;
    if (!req)
        return;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_HTTP_STATUS);
    if (ci && ci->http_status)
        aloftd_metrics_request(req->endpoint, ci->http_status);
    aloftd_upload_free(req->upload); /* an upload cut short leaves no file behind */
    free(req->body);
    free(req);
    *con_cls = NULL;
}

/* HTTPS: the PEM certificate (chain) and key, read whole; libmicrohttpd
 * (GnuTLS) takes them from memory. Kept while the daemon runs. */
static char *tls_cert, *tls_key;

static char *read_pem(const char *flag, const char *path, const char *label)
{
    uint8_t *data;
    size_t len;
    if (aloft_file_read(path, &data, &len) != 0) {
        fprintf(stderr, "aloftd: --%s %s: cannot read it: %s\n", flag, path, strerror(errno));
        return NULL;
    }
    char *text = realloc(data, len + 1);
    if (!text) {
        free(data);
        return NULL;
    }
    text[len] = 0;
    const char *why = NULL;
    if (strlen(text) != len || !strstr(text, "-----BEGIN ") || !strstr(text, label))
        why = !strcmp(flag, "tls-cert") ? "not a PEM certificate (-----BEGIN CERTIFICATE-----)"
                                        : "not a PEM private key (-----BEGIN PRIVATE KEY-----)";
    else if (strstr(text, "ENCRYPTED"))
        why = "the private key is encrypted; give it unencrypted (openssl pkey -in KEY -out PLAIN), mode 0600";
    if (why) {
        fprintf(stderr, "aloftd: --%s %s: %s\n", flag, path, why);
        free(text);
        return NULL;
    }
    return text;
}

static void tls_free(void)
{
    free(tls_cert);
    free(tls_key);
    tls_cert = tls_key = NULL;
}

int aloftd_http_start(struct aloftd *d)
{
    char host[64];
    const char *colon = strrchr(d->listen, ':');
    char *end;
    long port = colon ? strtol(colon + 1, &end, 10) : -1;
    if (!colon || colon == d->listen || (size_t)(colon - d->listen) >= sizeof host || !colon[1] || *end || port < 0 ||
        port > 65535) {
        fprintf(stderr, "aloftd: --listen %s: give ADDR:PORT, e.g. 127.0.0.1:8080\n", d->listen);
        return -1;
    }
    snprintf(host, sizeof host, "%.*s", (int)(colon - d->listen), d->listen);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, strcmp(host, "localhost") ? host : "127.0.0.1", &addr.sin_addr) != 1) {
        fprintf(stderr, "aloftd: --listen %s: %s is not an IPv4 address\n", d->listen, host);
        return -1;
    }
    /* epoll: thousands of sockets cost no more than the active ones */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (d->tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            fprintf(stderr, "aloftd: --tls-cert: this libmicrohttpd (%s) is built without TLS; serve HTTP behind "
                            "a TLS proxy, or install one built with GnuTLS (Debian's is)\n",
                    MHD_get_version());
            return -1;
        }
        if (!(tls_cert = read_pem("tls-cert", d->tls_cert, "CERTIFICATE")) ||
            !(tls_key = read_pem("tls-key", d->tls_key, "PRIVATE KEY"))) {
            tls_free();
            return -1;
        }
        flags |= MHD_USE_TLS;
    }
    if (aloftd_conns_start(d)) {
        tls_free();
        return -1;
    }
    /* MHD divides its connection limit between the pool's threads; conns.c
     * keeps the real one, so each thread may take all of it. Without TLS
     * the two HTTPS options are skipped (MHD_OPTION_END ends the list there). */
    d->daemon = MHD_start_daemon(
        flags, 0, aloftd_conns_accept, d, handler, d, MHD_OPTION_EXTERNAL_LOGGER, aloftd_conns_mhd_log, d,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_THREAD_POOL_SIZE, d->threads,
        MHD_OPTION_CONNECTION_TIMEOUT, d->idle_timeout_s, MHD_OPTION_CONNECTION_LIMIT, d->max_connections * d->threads,
        MHD_OPTION_NOTIFY_CONNECTION, aloftd_conns_notify, d, MHD_OPTION_NOTIFY_COMPLETED, completed, d,
        tls_cert ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, tls_cert, MHD_OPTION_HTTPS_MEM_KEY, tls_key,
        MHD_OPTION_END);
    if (!d->daemon) {
        if (tls_cert)
            fprintf(stderr, "aloftd: cannot serve HTTPS on %s with --tls-cert %s and --tls-key %s: the key does not "
                            "match the certificate, either is not valid PEM, or the address is in use (the "
                            "libmicrohttpd line above says which)\n",
                    d->listen, d->tls_cert, d->tls_key);
        else
            fprintf(stderr, "aloftd: cannot listen on %s (address in use or not on this machine?)\n", d->listen);
        aloftd_conns_stop();
        tls_free();
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d->daemon, MHD_DAEMON_INFO_BIND_PORT);
    d->port = info ? info->port : (uint16_t)port;
    aloftd_log("serving on %s://%s:%u/", tls_cert ? "https" : "http", host, d->port);
    return 0;
}

void aloftd_http_stop(struct aloftd *d)
{
    if (d->daemon)
        MHD_stop_daemon(d->daemon);
    d->daemon = NULL;
    aloftd_conns_stop();
    aloftd_download_stop();
    tls_free();
}
