/* fake-idf: esp_http_client over libcurl's multi interface, driven from
 * the caller's task as ESP-IDF's client is: open connects (TLS included)
 * and sends the request, fetch_headers reads the response's head, read
 * its body; perform does all three and follows redirects unless told not
 * to. The events reach the config's handler from the caller's task, in
 * ESP-IDF's order. Failures read as ESP-IDF's: a connection or handshake
 * that fails is ESP_ERR_HTTP_CONNECT with esp-tls's last error (the
 * verify flags for an untrusted certificate); a connection the server
 * closes mid-body reads 0 with the data incomplete, any other loss -1.
 * The chip's network: connections leave from FAKE_IDF_IP (the device's
 * address) and FAKE_IDF_LINK_RATE bytes/s, when set, is its Wi-Fi link. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "chip.h"
#include "esp_http_client.h"

#define DEFAULT_TIMEOUT_MS 5000 /* ESP-IDF's, when timeout_ms is 0 */
#define DEFAULT_REDIRECTS 10

/* esp_tls_errors.h and mbedTLS: what esp-tls records for a failure */
#define ESP_ERR_ESP_TLS_CANNOT_RESOLVE_HOSTNAME 0x8001
#define ESP_ERR_ESP_TLS_FAILED_CONNECT_TO_HOST 0x8004
#define ESP_ERR_ESP_TLS_CONNECTION_TIMEOUT 0x8006
#define ESP_ERR_MBEDTLS_SSL_SETUP_FAILED 0x8017
#define ESP_ERR_MBEDTLS_SSL_HANDSHAKE_FAILED 0x801A
#define MBEDTLS_ERR_X509_CERT_VERIFY_FAILED (-0x2700)
#define MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE (-0x7780)
#define MBEDTLS_X509_BADCERT_NOT_TRUSTED 0x08

enum until { CONNECTED, HEAD, BODY };

struct esp_http_client {
    esp_http_client_config_t cfg;
    char *url;
    CURL *easy;
    CURLM *multi;
    struct curl_slist *headers; /* "Key: value" */
    const char *post;
    int post_len;
    bool attached, connected, sent; /* sent: this transfer's request */
    /* the response being read */
    bool head_done, done, finished;
    CURLcode result;
    int status;
    int64_t length;
    char *body;
    size_t body_len, body_off, body_cap;
    /* the link: bytes/s (0: unlimited), and what was handed over since t0 */
    uint64_t rate, handed;
    struct timespec t0;
    /* esp-tls's last error */
    int tls_err, tls_code, tls_flags;
};

static void dispatch(esp_http_client_handle_t c, esp_http_client_event_id_t id, void *data, int len, char *key,
                     char *value)
{
    if (!c->cfg.event_handler)
        return;
    esp_http_client_event_t e = {
        .event_id = id,
        .client = c,
        .data = data,
        .data_len = len,
        .user_data = c->cfg.user_data,
        .header_key = key,
        .header_value = value,
    };
    c->cfg.event_handler(&e);
}

/* curl has connected (and shaken hands), or reuses a connection, and is
 * about to send the request */
static int on_connected(void *arg, char *primary_ip, char *local_ip, int primary_port, int local_port)
{
    (void)primary_ip, (void)local_ip, (void)primary_port, (void)local_port;
    esp_http_client_handle_t c = arg;
    if (!c->connected) {
        c->connected = true;
        dispatch(c, HTTP_EVENT_ON_CONNECTED, NULL, 0, NULL, NULL);
    }
    c->sent = true;
    dispatch(c, HTTP_EVENT_HEADERS_SENT, NULL, 0, NULL, NULL);
    return CURL_PREREQFUNC_OK;
}

/* One line of a response head: a status line begins a response (1xx and
 * followed redirects have several), each header is an event. */
static size_t on_header(char *buf, size_t size, size_t n, void *arg)
{
    esp_http_client_handle_t c = arg;
    size_t len = size * n;
    char line[1024];
    snprintf(line, sizeof line, "%.*s", (int)len, buf);
    line[strcspn(line, "\r\n")] = 0;
    if (!strncmp(line, "HTTP/", 5)) {
        const char *sp = strchr(line, ' ');
        c->status = sp ? atoi(sp + 1) : 0;
        c->head_done = false;
        c->length = 0;
    } else if (!line[0]) {
        c->head_done = c->status >= 200;
    } else {
        char *colon = strchr(line, ':');
        if (!colon)
            return len;
        *colon = 0;
        char *value = colon + 1 + strspn(colon + 1, " \t");
        if (!strcasecmp(line, "Content-Length"))
            c->length = strtoll(value, NULL, 10);
        dispatch(c, HTTP_EVENT_ON_HEADER, NULL, 0, line, value);
    }
    return len;
}

static size_t on_body(char *buf, size_t size, size_t n, void *arg)
{
    esp_http_client_handle_t c = arg;
    size_t len = size * n;
    if (c->body_len + len > c->body_cap) {
        size_t cap = (c->body_len + len) * 2;
        char *p = realloc(c->body, cap);
        if (!p)
            return 0; /* curl fails the transfer */
        c->body = p;
        c->body_cap = cap;
    }
    memcpy(c->body + c->body_len, buf, len);
    c->body_len += len;
    return len;
}

static bool reached(esp_http_client_handle_t c, enum until u)
{
    switch (u) {
    case CONNECTED: return c->sent;
    case HEAD: return c->head_done;
    default: return c->body_off < c->body_len;
    }
}

/* A link of c->rate bytes/s: hand n more bytes over no sooner than it
 * would. (curl's own limit reads 100 buffers in a burst before it waits.) */
static void pace(esp_http_client_handle_t c, size_t n)
{
    if (!c->rate)
        return;
    c->handed += n;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t due_us = (int64_t)(c->handed * 1000000 / c->rate);
    int64_t spent_us = (now.tv_sec - c->t0.tv_sec) * 1000000 + (now.tv_nsec - c->t0.tv_nsec) / 1000;
    if (due_us > spent_us)
        usleep((useconds_t)(due_us - spent_us));
}

/* Run the transfer until u or its end; curl's own timeouts bound it. */
static void drive(esp_http_client_handle_t c, enum until u)
{
    while (!c->done && !reached(c, u)) {
        int running, left;
        curl_multi_perform(c->multi, &running);
        for (CURLMsg *m; (m = curl_multi_info_read(c->multi, &left));)
            if (m->msg == CURLMSG_DONE) {
                c->done = true;
                c->result = m->data.result;
            }
        if (!c->done && !reached(c, u))
            curl_multi_poll(c->multi, NULL, 0, 100, NULL);
    }
}

/* What esp-tls would have recorded for a connection that failed. */
static void record_connect_error(esp_http_client_handle_t c, CURLcode rc)
{
    c->tls_code = c->tls_flags = 0;
    switch (rc) {
    case CURLE_PEER_FAILED_VERIFICATION:
        c->tls_err = ESP_ERR_MBEDTLS_SSL_HANDSHAKE_FAILED;
        c->tls_code = MBEDTLS_ERR_X509_CERT_VERIFY_FAILED;
        c->tls_flags = MBEDTLS_X509_BADCERT_NOT_TRUSTED;
        break;
    case CURLE_SSL_CONNECT_ERROR:
        c->tls_err = ESP_ERR_MBEDTLS_SSL_HANDSHAKE_FAILED;
        c->tls_code = MBEDTLS_ERR_SSL_FATAL_ALERT_MESSAGE;
        break;
    case CURLE_COULDNT_RESOLVE_HOST: c->tls_err = ESP_ERR_ESP_TLS_CANNOT_RESOLVE_HOSTNAME; break;
    case CURLE_OPERATION_TIMEDOUT: c->tls_err = ESP_ERR_ESP_TLS_CONNECTION_TIMEOUT; break;
    default: c->tls_err = ESP_ERR_ESP_TLS_FAILED_CONNECT_TO_HOST; break;
    }
}

static void detach(esp_http_client_handle_t c)
{
    if (c->attached)
        curl_multi_remove_handle(c->multi, c->easy);
    c->attached = false;
}

/* A new transfer on the easy handle; follow: perform's redirects. */
static esp_err_t start(esp_http_client_handle_t c, bool follow)
{
    detach(c);
    c->sent = c->head_done = c->done = c->finished = false;
    c->status = 0;
    c->length = 0;
    c->body_len = c->body_off = 0;
    bool https = !strncmp(c->url, "https://", 8);
    if (https && !c->cfg.cert_pem && !c->cfg.crt_bundle_attach) {
        c->tls_err = ESP_ERR_MBEDTLS_SSL_SETUP_FAILED; /* esp-tls: no server verification option set */
        dispatch(c, HTTP_EVENT_ERROR, NULL, 0, NULL, NULL);
        return ESP_ERR_HTTP_CONNECT;
    }
    int timeout_ms = c->cfg.timeout_ms ? c->cfg.timeout_ms : DEFAULT_TIMEOUT_MS;
    CURL *e = c->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_URL, c->url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, c->cfg.user_agent ? c->cfg.user_agent : "ESP32 HTTP Client/1.0");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    /* a read that waits timeout_ms for a byte fails, as ESP-IDF's does */
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (long)(timeout_ms + 999) / 1000);
    const char *ip = getenv("FAKE_IDF_IP"), *rate = getenv("FAKE_IDF_LINK_RATE");
    char host[80];
    if (ip && *ip) {
        snprintf(host, sizeof host, "host!%s", ip);
        curl_easy_setopt(e, CURLOPT_INTERFACE, host);
    }
    c->rate = rate ? strtoull(rate, NULL, 10) : 0;
    c->handed = 0;
    clock_gettime(CLOCK_MONOTONIC, &c->t0);
    if (c->cfg.cert_pem) {
        struct curl_blob ca = {.data = (void *)c->cfg.cert_pem, .len = strlen(c->cfg.cert_pem)};
        curl_easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
    } else if (fake_idf_ca_bundle()) { /* the bundle; without one curl's default, the system's CAs */
        curl_easy_setopt(e, CURLOPT_CAINFO, fake_idf_ca_bundle());
    }
    if (c->cfg.method == HTTP_METHOD_POST) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->post ? c->post : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(c->post ? c->post_len : 0));
    }
    if (follow) {
        curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
        curl_easy_setopt(e, CURLOPT_MAXREDIRS,
                         (long)(c->cfg.max_redirection_count ? c->cfg.max_redirection_count : DEFAULT_REDIRECTS));
    }
    curl_easy_setopt(e, CURLOPT_PREREQFUNCTION, on_connected);
    curl_easy_setopt(e, CURLOPT_PREREQDATA, c);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK)
        return ESP_FAIL;
    c->attached = true;
    drive(c, CONNECTED);
    if (!c->sent) {
        record_connect_error(c, c->result);
        dispatch(c, HTTP_EVENT_ERROR, NULL, 0, NULL, NULL);
        return ESP_ERR_HTTP_CONNECT;
    }
    return ESP_OK;
}

esp_http_client_handle_t esp_http_client_init(const esp_http_client_config_t *config)
{
    if (!config || !config->url)
        return NULL;
    esp_http_client_handle_t c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->cfg = *config;
    c->url = strdup(config->url);
    c->easy = curl_easy_init();
    c->multi = curl_multi_init();
    if (!c->url || !c->easy || !c->multi) {
        esp_http_client_cleanup(c);
        return NULL;
    }
    return c;
}

esp_err_t esp_http_client_set_header(esp_http_client_handle_t c, const char *key, const char *value)
{
    if (!c || !key || !value)
        return ESP_ERR_INVALID_ARG;
    size_t klen = strlen(key);
    struct curl_slist *kept = NULL;
    for (struct curl_slist *h = c->headers; h; h = h->next) /* a key set again replaces its value */
        if (strncasecmp(h->data, key, klen) || h->data[klen] != ':')
            kept = curl_slist_append(kept, h->data);
    curl_slist_free_all(c->headers);
    char *line = malloc(klen + strlen(value) + 3);
    if (!line)
        return ESP_ERR_NO_MEM;
    sprintf(line, "%s: %s", key, value);
    c->headers = curl_slist_append(kept, line);
    free(line);
    return c->headers ? ESP_OK : ESP_ERR_NO_MEM;
}

esp_err_t esp_http_client_set_post_field(esp_http_client_handle_t c, const char *data, int len)
{
    if (!c)
        return ESP_ERR_INVALID_ARG;
    c->post = data;
    c->post_len = data ? len : 0;
    if (data)
        c->cfg.method = HTTP_METHOD_POST; /* as ESP-IDF does for a GET client */
    return ESP_OK;
}

esp_err_t esp_http_client_open(esp_http_client_handle_t c, int write_len)
{
    (void)write_len; /* the glue writes no request body through open */
    return c ? start(c, false) : ESP_ERR_INVALID_ARG;
}

int64_t esp_http_client_fetch_headers(esp_http_client_handle_t c)
{
    if (!c || !c->attached)
        return ESP_FAIL;
    drive(c, HEAD);
    if (!c->head_done) {
        dispatch(c, HTTP_EVENT_ERROR, NULL, 0, NULL, NULL);
        return ESP_FAIL;
    }
    return c->length; /* 0: no Content-Length (chunked) */
}

int esp_http_client_get_status_code(esp_http_client_handle_t c)
{
    return c ? c->status : ESP_FAIL;
}

int esp_http_client_read(esp_http_client_handle_t c, char *buffer, int len)
{
    if (!c || !c->attached || len <= 0)
        return ESP_FAIL;
    drive(c, BODY);
    size_t n = c->body_len - c->body_off;
    if (n) {
        if (n > (size_t)len)
            n = (size_t)len;
        memcpy(buffer, c->body + c->body_off, n);
        c->body_off += n;
        pace(c, n);
        dispatch(c, HTTP_EVENT_ON_DATA, buffer, (int)n, NULL, NULL);
        return (int)n;
    }
    if (c->result == CURLE_OK) {
        if (!c->finished)
            dispatch(c, HTTP_EVENT_ON_FINISH, NULL, 0, NULL, NULL);
        c->finished = true;
        return 0;
    }
    if (c->result == CURLE_PARTIAL_FILE) /* the server closed early: a FIN reads as the end */
        return 0;
    dispatch(c, HTTP_EVENT_ERROR, NULL, 0, NULL, NULL);
    return ESP_FAIL;
}

bool esp_http_client_is_complete_data_received(esp_http_client_handle_t c)
{
    return c && c->done && c->result == CURLE_OK && c->body_off == c->body_len;
}

esp_err_t esp_http_client_flush_response(esp_http_client_handle_t c, int *len)
{
    char buf[512];
    int n, total = 0;
    while ((n = esp_http_client_read(c, buf, sizeof buf)) > 0)
        total += n;
    if (len)
        *len = total;
    return n < 0 ? ESP_FAIL : ESP_OK;
}

/* The Location of the response read, as the URL of the next open. */
esp_err_t esp_http_client_set_redirection(esp_http_client_handle_t c)
{
    char *location = NULL;
    if (!c || curl_easy_getinfo(c->easy, CURLINFO_REDIRECT_URL, &location) != CURLE_OK || !location)
        return ESP_ERR_INVALID_ARG;
    char *url = strdup(location);
    if (!url)
        return ESP_ERR_NO_MEM;
    free(c->url);
    c->url = url;
    return ESP_OK;
}

esp_err_t esp_http_client_get_url(esp_http_client_handle_t c, char *url, const int len)
{
    if (!c || !url || len <= 0)
        return ESP_ERR_INVALID_ARG;
    if ((int)strlen(c->url) >= len)
        return ESP_ERR_NO_MEM;
    strcpy(url, c->url);
    return ESP_OK;
}

esp_err_t esp_http_client_get_and_clear_last_tls_error(esp_http_client_handle_t c, int *esp_tls_error_code,
                                                       int *esp_tls_flags)
{
    if (!c)
        return ESP_ERR_INVALID_ARG;
    esp_err_t err = c->tls_err;
    if (esp_tls_error_code)
        *esp_tls_error_code = c->tls_code;
    if (esp_tls_flags)
        *esp_tls_flags = c->tls_flags;
    c->tls_err = c->tls_code = c->tls_flags = 0;
    return err;
}

esp_err_t esp_http_client_perform(esp_http_client_handle_t c)
{
    if (!c)
        return ESP_ERR_INVALID_ARG;
    esp_err_t err = start(c, !c->cfg.disable_auto_redirect);
    if (err != ESP_OK)
        return err;
    if (esp_http_client_fetch_headers(c) < 0)
        return ESP_ERR_HTTP_FETCH_HEADER;
    if (esp_http_client_flush_response(c, NULL) != ESP_OK || !esp_http_client_is_complete_data_received(c))
        return ESP_ERR_HTTP_INCOMPLETE_DATA;
    return ESP_OK;
}

esp_err_t esp_http_client_close(esp_http_client_handle_t c)
{
    if (!c)
        return ESP_ERR_INVALID_ARG;
    detach(c);
    if (c->connected)
        dispatch(c, HTTP_EVENT_DISCONNECTED, NULL, 0, NULL, NULL);
    c->connected = false;
    return ESP_OK;
}

esp_err_t esp_http_client_cleanup(esp_http_client_handle_t c)
{
    if (!c)
        return ESP_FAIL;
    esp_http_client_close(c);
    if (c->easy)
        curl_easy_cleanup(c->easy);
    if (c->multi)
        curl_multi_cleanup(c->multi);
    curl_slist_free_all(c->headers);
    free(c->url);
    free(c->body);
    free(c);
    return ESP_OK;
}
