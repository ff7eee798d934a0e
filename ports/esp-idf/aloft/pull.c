/* aloft on ESP-IDF: pull jobs on esp_http_client. The agent (aloft_pull_*)
 * decides every request, checks every response and writes the flash; this
 * makes the requests it names, hands it each response's headers (from the
 * client's event handler) and body as they arrive, and tells it how each
 * transfer ended. A job runs in a task of its own: it blocks on the
 * network for minutes, and a TLS handshake needs a deep stack. */
#include <stdlib.h>
#include <string.h>

#include "esp_http_client.h"
#include "esp_log.h"
#include "glue.h"

#define TIMEOUT_MS 15000  /* to connect, and for each read */
#define MAX_REDIRECTS 5
#define HEADER_MAX 320    /* one request header line: Authorization with a 255-byte token fits */

static const char *TAG = "aloft";

/* A job with what its transfers need; the job first, so that it is what
 * aloft_idf_pull_new hands out. */
struct job {
    struct aloft_pull j;
    struct aloft_pull_request req;
    struct aloft_idf *d;
    char buf[1024];
    char url[sizeof(((struct aloft_pull_request *)0)->url)]; /* after a redirect */
    char detail[96];                                          /* why a connection failed */
};

struct aloft_pull *aloft_idf_pull_new(void)
{
    struct job *job = calloc(1, sizeof *job);
    return job ? &job->j : NULL;
}

static esp_err_t on_event(esp_http_client_event_t *e)
{
    struct job *job = e->user_data;
    if (e->event_id == HTTP_EVENT_ON_HEADER) {
        aloft_idf_lock(job->d);
        aloft_pull_header(&job->j, e->header_key, e->header_value);
        aloft_idf_unlock(job->d);
    }
    return ESP_OK;
}

/* The request's "Name: value\r\n" lines onto the client. */
static void set_headers(esp_http_client_handle_t c, const char *headers)
{
    char line[HEADER_MAX];
    for (const char *p = headers, *eol; (eol = strstr(p, "\r\n")); p = eol + 2) {
        const char *colon = memchr(p, ':', (size_t)(eol - p));
        if (!colon || eol - p >= (long)sizeof line)
            continue;
        snprintf(line, sizeof line, "%.*s", (int)(eol - p), p);
        line[colon - p] = 0;
        const char *v = line + (colon - p) + 1;
        esp_http_client_set_header(c, line, v + strspn(v, " "));
    }
}

static bool redirect(int status)
{
    return status == 301 || status == 302 || status == 303 || status == 307 || status == 308;
}

static bool same_scheme(const char *a, const char *b)
{
    return !strncmp(a, "https://", 8) == !strncmp(b, "https://", 8);
}

/* A connection that failed: a certificate not trusted (final: the agent
 * does not retry) or anything else, the handshake included, which may be
 * the network's doing (retried). detail names what esp-tls saw. */
static enum aloft_net open_failed(struct job *job, esp_http_client_handle_t c, esp_err_t err, const char **detail)
{
    int code = 0, flags = 0;
    esp_http_client_get_and_clear_last_tls_error(c, &code, &flags);
    if (flags)
        snprintf(job->detail, sizeof job->detail, "the server's certificate is not trusted (verify flags 0x%x)",
                 (unsigned)flags);
    else if (code)
        snprintf(job->detail, sizeof job->detail, "%s (TLS error -0x%04x)", esp_err_to_name(err), (unsigned)-code);
    else
        snprintf(job->detail, sizeof job->detail, "%s", esp_err_to_name(err));
    *detail = job->detail;
    return flags && !strncmp(job->req.url, "https://", 8) ? ALOFT_NET_TLS : ALOFT_NET_DROPPED;
}

/* The final response's headers: follow redirects (never to another
 * scheme: no HTTPS to HTTP). Returns ALOFT_NET_OK with *status, or how it
 * failed with detail. */
static enum aloft_net open_final(struct job *job, esp_http_client_handle_t c, int *status, const char **detail)
{
    for (int hops = 0;; hops++) {
        aloft_idf_lock(job->d);
        aloft_pull_head_begin(&job->j);
        aloft_idf_unlock(job->d);
        esp_err_t err = esp_http_client_open(c, 0);
        if (err != ESP_OK)
            return open_failed(job, c, err, detail);
        if (esp_http_client_fetch_headers(c) < 0) {
            *detail = "no response";
            return ALOFT_NET_DROPPED;
        }
        *status = esp_http_client_get_status_code(c);
        if (!redirect(*status))
            return ALOFT_NET_OK;
        esp_http_client_flush_response(c, NULL);
        if (hops == MAX_REDIRECTS) {
            *detail = "too many redirects";
            return ALOFT_NET_REDIRECT;
        }
        if (esp_http_client_set_redirection(c) != ESP_OK ||
            esp_http_client_get_url(c, job->url, sizeof job->url) != ESP_OK || !same_scheme(job->url, job->req.url)) {
            *detail = "a redirect without a Location, or to another scheme";
            return ALOFT_NET_REDIRECT;
        }
    }
}

/* The body, chunk by chunk, into the agent. */
static enum aloft_net read_body(struct job *job, esp_http_client_handle_t c, const char **detail)
{
    for (;;) {
        int n = esp_http_client_read(c, job->buf, sizeof job->buf);
        if (n < 0) {
            *detail = "the connection dropped";
            return ALOFT_NET_DROPPED;
        }
        if (n == 0) {
            *detail = "the connection closed before the end of the body";
            return esp_http_client_is_complete_data_received(c) ? ALOFT_NET_OK : ALOFT_NET_DROPPED;
        }
        aloft_idf_lock(job->d);
        int rc = aloft_pull_body(&job->d->agent, &job->j, job->buf, (size_t)n);
        aloft_idf_unlock(job->d);
        if (rc < 0)
            return ALOFT_NET_STOPPED;
    }
}

/* Make the request the agent names; tell it how the transfer ended. */
static void transfer(struct job *job)
{
    struct aloft_idf *d = job->d;
    const esp_http_client_config_t cfg = {
        .url = job->req.url,
        .user_agent = job->req.user_agent,
        .timeout_ms = TIMEOUT_MS,
        .disable_auto_redirect = true, /* open_final follows them, checking the scheme */
        .event_handler = on_event,
        .user_data = job,
        .buffer_size_tx = sizeof job->req.url + sizeof job->req.headers,
        .cert_pem = aloft_idf_opt(d->cfg.ca_pem),
        .crt_bundle_attach = aloft_idf_bundle(d),
    };
    enum aloft_net result = ALOFT_NET_DROPPED;
    const char *detail = "cannot make an HTTP client (out of memory)";
    int status = 0;
    esp_http_client_handle_t c = esp_http_client_init(&cfg);
    if (c) {
        set_headers(c, job->req.headers);
        result = open_final(job, c, &status, &detail);
    }
    if (result == ALOFT_NET_OK && (status < 300 || status >= 400)) {
        aloft_idf_lock(d);
        int rc = aloft_pull_head_end(&d->agent, &job->j, status);
        aloft_idf_unlock(d);
        if (rc < 0) /* not a body the agent wants: aloft_pull_done says what the status means */
            result = ALOFT_NET_STOPPED;
        else
            result = read_body(job, c, &detail);
    }
    if (c) {
        esp_http_client_close(c);
        esp_http_client_cleanup(c);
    }
    aloft_idf_lock(d);
    aloft_pull_done(&d->agent, &job->j, result, status,
                    result == ALOFT_NET_OK || result == ALOFT_NET_STOPPED ? NULL : detail);
    aloft_idf_unlock(d);
}

int aloft_idf_pull_run(struct aloft_idf *d, struct aloft_pull *j)
{
    struct job *job = (struct job *)j;
    job->d = d;
    for (;;) {
        aloft_idf_lock(d);
        int more = aloft_pull_request(&d->agent, j, &job->req) == 0;
        aloft_idf_unlock(d);
        if (!more)
            break;
        if (job->req.delay_ms)
            vTaskDelay(pdMS_TO_TICKS(job->req.delay_ms));
        transfer(job);
    }
    return aloft_pull_result(j);
}

static void job_task(void *arg)
{
    struct job *job = arg;
    aloft_idf_pull_run(job->d, &job->j);
    free(job);
    vTaskDelete(NULL);
}

void aloft_idf_pull_spawn(struct aloft_idf *d, struct aloft_pull *j)
{
    struct job *job = (struct job *)j;
    job->d = d;
    if (xTaskCreate(job_task, "aloft_pull", d->cfg.task_stack_size, job, tskIDLE_PRIORITY + 5, NULL) == pdPASS)
        return;
    ESP_LOGE(TAG, "pull: cannot start a task for the download");
    /* the agent started the job and holds the update slot for it: end it */
    aloft_idf_lock(d);
    aloft_pull_abort(&d->agent, j, "no_memory", "the device could not start a task for the download");
    aloft_idf_unlock(d);
    free(job);
}
