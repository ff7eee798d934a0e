/* aloft host: talking to many devices at once over HTTP (libcurl multi):
 * their status (GET /ota/status) and what it says. */
#ifndef ALOFT_HOST_FLEET_H
#define ALOFT_HOST_FLEET_H

#include <curl/curl.h>
#include <stdbool.h>
#include <stddef.h>

/* What a device says about itself (PROTOCOLS.md §1 GET /ota/status). */
struct aloft_devstatus {
    bool ok;            /* answered 200 with the JSON of an aloft/RuView device */
    bool answered;      /* something answered HTTP there, device or not */
    char error[160];    /* why not */
    char version[40], project[40], chip[20], running[20], next[20], state[20], reset_reason[20], mac[20];
    long boot_count;    /* -1 when the device does not say */
    long uptime_s;
    long www_slot;      /* -1 without frontend slots */
    long max_size;
    bool busy;
    bool delta;         /* it takes delta patches (POST /ota, application/x-aloft-delta) */
    char sha256[65];    /* the running image's appended SHA-256 ("" when it has none) */
};

/* Parse a /ota/status body. Returns true when it is one (version and
 * running_partition present). */
bool aloft_devstatus_parse(const char *json, struct aloft_devstatus *s);

/* A response body collected by libcurl, capped. */
struct aloft_body {
    char data[16384];
    size_t len;
};

/* libcurl write callback filling a struct aloft_body (excess is dropped). */
size_t aloft_body_write(char *ptr, size_t size, size_t n, void *userdata);

/* A GET of http://addr/ota/status as an easy handle (not yet added to a
 * multi handle). body must outlive the transfer. */
CURL *aloft_status_request(const char *addr, struct aloft_body *body, long timeout_ms);

/* Turn a finished status transfer into *s. */
void aloft_status_result(CURL *easy, CURLcode rc, const struct aloft_body *body, struct aloft_devstatus *s);

/* Probe n addresses, at most parallel at a time, each bounded by timeout_ms. */
void aloft_fleet_probe(const char *const *addrs, size_t n, unsigned parallel, long timeout_ms,
                       struct aloft_devstatus *out);

#endif
