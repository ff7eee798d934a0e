/* aloft-node: pull jobs on libcurl. The agent (aloft_pull_*) decides every
 * request, checks every response and writes the flash; this makes the
 * requests it names, hands it the headers and body as they arrive, and
 * throttles to the simulated link rate. Also the outcome reports to
 * aloftd, posted in the background. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "node.h"

#define CONNECT_TIMEOUT_S 10L
#define REPORT_TRIES 6

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void node_curl_options(const struct node *n, void *curl)
{
    CURL *c = curl;
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROXY, "");
    if (n->cfg.ca_file)
        curl_easy_setopt(c, CURLOPT_CAINFO, n->cfg.ca_file);
    if (n->cfg.insecure) {
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    /* the address it serves on as the source, as a device on a LAN would
     * (aloftd's inventory then shows each simulated device's own IP) */
    char host[64] = "host!";
    const char *colon = strrchr(n->cfg.listen, ':');
    size_t len = colon ? (size_t)(colon - n->cfg.listen) : 0;
    if (!len || len > sizeof host - 6 || !strncmp(n->cfg.listen, "0.0.0.0", len))
        return;
    memcpy(host + 5, n->cfg.listen, len);
    host[5 + len] = 0;
    curl_easy_setopt(c, CURLOPT_INTERFACE, host);
}

/* One transfer of a job. */
struct transfer {
    struct node *n;
    struct aloft_pull *job;
    CURL *curl;
    bool stopped;             /* the agent asked to stop */
    struct timespec t0;
    uint64_t received;
    char err[CURL_ERROR_SIZE];
};

static void throttle(struct transfer *t)
{
    if (!t->n->cfg.link_rate)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double elapsed = (double)(now.tv_sec - t->t0.tv_sec) + (double)(now.tv_nsec - t->t0.tv_nsec) / 1e9;
    double due = (double)t->received / (double)t->n->cfg.link_rate;
    if (due > elapsed)
        usleep((useconds_t)((due - elapsed) * 1e6));
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * nmemb;
    struct node *n = t->n;
    int rc = 0;
    pthread_mutex_lock(&n->lock);
    if (len >= 5 && !strncasecmp(p, "HTTP/", 5)) { /* a new response (redirects have several) */
        aloft_pull_head_begin(t->job);
    } else if (len <= 2) { /* the blank line: its headers are complete */
        long status = 0;
        curl_easy_getinfo(t->curl, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && (status < 300 || status >= 400))
            rc = aloft_pull_head_end(&n->agent, t->job, (int)status);
    } else {
        const char *colon = memchr(p, ':', len), *end = p + len;
        if (colon) {
            char name[64], value[160];
            const char *v = colon + 1;
            while (v < end && (*v == ' ' || *v == '\t'))
                v++;
            while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
                end--;
            snprintf(name, sizeof name, "%.*s", (int)(colon - p), p);
            snprintf(value, sizeof value, "%.*s", (int)(end - v), v);
            aloft_pull_header(t->job, name, value);
        }
    }
    pthread_mutex_unlock(&n->lock);
    t->stopped |= rc < 0;
    return rc < 0 ? 0 : len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
    struct transfer *t = ud;
    size_t len = size * nmemb;
    pthread_mutex_lock(&t->n->lock);
    int rc = aloft_pull_body(&t->n->agent, t->job, p, len);
    pthread_mutex_unlock(&t->n->lock);
    if (rc < 0) {
        t->stopped = true;
        return 0;
    }
    t->received += len;
    throttle(t);
    return len;
}

static bool tls_error(CURLcode rc)
{
    return rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE || rc == CURLE_SSL_CONNECT_ERROR ||
           rc == CURLE_SSL_CERTPROBLEM || rc == CURLE_SSL_ISSUER_ERROR;
}

static enum aloft_net classify(CURLcode rc, bool stopped)
{
    if (stopped)
        return ALOFT_NET_STOPPED;
    if (rc == CURLE_OK || rc == CURLE_HTTP_RETURNED_ERROR)
        return ALOFT_NET_OK;
    if (tls_error(rc))
        return ALOFT_NET_TLS;
    if (rc == CURLE_UNSUPPORTED_PROTOCOL || rc == CURLE_TOO_MANY_REDIRECTS)
        return ALOFT_NET_REDIRECT;
    return ALOFT_NET_DROPPED;
}

/* Make the request the agent names; tell it how the transfer ended. */
static void transfer(struct transfer *t, const struct aloft_pull_request *req)
{
    struct node *n = t->n;
    CURL *c = t->curl;
    curl_easy_reset(c);
    struct curl_slist *h = NULL;
    char line[1400];
    for (const char *p = req->headers, *eol; *p; p = eol + 2) {
        if (!(eol = strstr(p, "\r\n")))
            break;
        snprintf(line, sizeof line, "%.*s", (int)(eol - p), p);
        h = curl_slist_append(h, line);
    }
    bool https = !strncmp(req->url, "https://", 8);
    curl_easy_setopt(c, CURLOPT_URL, req->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_USERAGENT, req->user_agent);
    node_curl_options(n, c);
    curl_easy_setopt(c, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)(n->cfg.idle_timeout_s ? n->cfg.idle_timeout_s : 30));
    /* redirects stay on the scheme asked for: never from HTTPS down to HTTP */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, https ? "https" : "http");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 5L);
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, https ? "https" : "http");
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, t->err);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, t);
    t->err[0] = 0;
    t->stopped = false;
    t->received = 0;
    clock_gettime(CLOCK_MONOTONIC, &t->t0);
    if (https && n->cfg.insecure)
        node_log(n, "pull: WARNING: --insecure: the certificate of %s is NOT verified; anyone on the path can "
                    "serve this device an image", req->url);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(h);
    pthread_mutex_lock(&n->lock);
    aloft_pull_done(&n->agent, t->job, classify(rc, t->stopped), (int)status,
                    t->err[0] ? t->err : curl_easy_strerror(rc));
    pthread_mutex_unlock(&n->lock);
}

int node_pull_run(struct node *n, struct aloft_pull *job)
{
    pthread_once(&curl_once, curl_init);
    struct transfer t = {.n = n, .job = job, .curl = curl_easy_init()};
    struct aloft_pull_request req;
    for (;;) {
        pthread_mutex_lock(&n->lock);
        int more = t.curl ? aloft_pull_request(&n->agent, job, &req) == 0 : 0;
        if (!t.curl)
            aloft_pull_done(&n->agent, job, ALOFT_NET_STOPPED, 0, "cannot make an HTTP client");
        pthread_mutex_unlock(&n->lock);
        if (!more)
            break;
        if (req.delay_ms)
            usleep(req.delay_ms * 1000u);
        transfer(&t, &req);
    }
    curl_easy_cleanup(t.curl);
    return aloft_pull_result(job);
}

/* A job and the node it runs on: the job first, so that it is what
 * node_pull_new hands out. */
struct node_job {
    struct aloft_pull job;
    struct node *n;
};

struct aloft_pull *node_pull_new(void)
{
    struct node_job *nj = calloc(1, sizeof *nj);
    return nj ? &nj->job : NULL;
}

static void *job_thread(void *arg)
{
    struct node_job *nj = arg;
    node_pull_run(nj->n, &nj->job);
    free(nj);
    return NULL;
}

void node_pull_spawn(struct node *n, struct aloft_pull *job)
{
    struct node_job *nj = (struct node_job *)job;
    nj->n = n;
    pthread_t t;
    if (pthread_create(&t, NULL, job_thread, nj) == 0) {
        pthread_detach(t);
        return;
    }
    /* the agent holds the update slot for this job: end it */
    pthread_mutex_lock(&n->lock);
    aloft_pull_abort(&n->agent, job, "no_thread", "cannot start a thread for the download");
    pthread_mutex_unlock(&n->lock);
    free(job);
}

/* ---- outcome reports to aloftd ---- */

struct report {
    struct node *n;
    char url[600];
    char body[1024];
};

static size_t discard(char *p, size_t size, size_t nmemb, void *ud)
{
    (void)p, (void)ud;
    return size * nmemb;
}

static void *report_thread(void *arg)
{
    struct report *r = arg;
    pthread_once(&curl_once, curl_init);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    long status = 0;
    for (int i = 0; c && i < REPORT_TRIES && status != 200; i++) {
        if (i)
            sleep((unsigned)i); /* aloftd knows a device from its first check-in on */
        curl_easy_reset(c);
        curl_easy_setopt(c, CURLOPT_URL, r->url);
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body);
        node_curl_options(r->n, c);
        curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
        CURLcode rc = curl_easy_perform(c);
        status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        node_log(r->n, "pull: report %s to %s: %s%ld", r->body, r->url, rc ? curl_easy_strerror(rc) : "",
                 rc ? 0L : status);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    free(r);
    return NULL;
}

void node_report(struct node *n, const char *url, const char *json)
{
    struct report *r = calloc(1, sizeof *r);
    if (!r)
        return;
    r->n = n;
    snprintf(r->url, sizeof r->url, "%s", url);
    snprintf(r->body, sizeof r->body, "%s", json);
    pthread_t t;
    if (pthread_create(&t, NULL, report_thread, r)) {
        free(r);
        return;
    }
    pthread_detach(t);
}
