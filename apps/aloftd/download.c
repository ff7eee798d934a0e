/* aloftd: serving stored files. GET/HEAD /firmware/<sha256>.bin with Range
 * (one range: 206, or 416 when it starts past the end), If-Range,
 * If-None-Match and an ETag that is the SHA-256 itself: a content-addressed
 * file never changes. Only files the database records are served, so a file
 * left by an interrupted upload never is. Bodies are never read into
 * memory: a whole file goes from a read-only mapping (see whole_file), a
 * range from the descriptor (sendfile); the whole-file responses of recent
 * downloads and of /update's 200s are kept (see cache_put). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloftd.h"

void aloftd_blob_path(const struct aloftd *d, const char *sha256, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.bin", d->firmware_dir, sha256);
}

/* Exactly 64 lower-case hex digits and ".bin": nothing else names a file,
 * so no path (../, %2e%2e, /) ever reaches the file system. */
static bool blob_name(const char *name, char sha[65])
{
    if (strlen(name) != 68 || strcmp(name + 64, ".bin"))
        return false;
    for (int i = 0; i < 64; i++) {
        char ch = name[i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return false;
        sha[i] = ch;
    }
    sha[64] = 0;
    return true;
}

/* Open a recorded file and check its size. Returns the descriptor, or -1
 * with *status and a reply queued. */
static int open_blob(struct aloftd *d, struct MHD_Connection *c, const char *sha256, uint64_t size, unsigned *status,
                     enum MHD_Result *ret)
{
    char path[4300];
    aloftd_blob_path(d, sha256, path, sizeof path);
    int saved = 0, fetched = 1;
    for (int round = 0; round < 2; round++) {
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && (uint64_t)st.st_size == size)
            return fd;
        saved = fd < 0 ? errno : 0;
        if (fd >= 0)
            close(fd);
        /* another instance's upload, or a file lost here: the database's copy */
        if (round || (fetched = aloftd_file_fetch(d, sha256, size)) != 0)
            break;
    }
    if (fetched == 1 || fetched == ALOFT_E_NOTFOUND)
        aloftd_log("stored file %s is %s", path, saved ? strerror(saved) : "not the size recorded");
    *status = 500;
    if (fetched == ALOFT_E_HASH)
        *ret = aloftd_reply_error(c, 500, "file_damaged",
                                  "the database's copy of this file does not match its SHA-256; see the server log");
    else
        *ret = aloftd_reply_error(c, 500, "file_missing", "the stored file of this release is %s; see the server log",
                                  saved ? "missing" : "damaged");
    return -1;
}

static void common_headers(struct MHD_Response *r, const char *sha256, const char *type)
{
    char etag[70];
    snprintf(etag, sizeof etag, "\"%s\"", sha256);
    MHD_add_response_header(r, "Content-Type", type);
    MHD_add_response_header(r, "ETag", etag);
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
}

/* Characters safe inside a quoted filename. */
static void safe_name(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; *in && i + 1 < cap; in++)
        out[i++] = (*in >= '0' && *in <= '9') || (*in >= 'a' && *in <= 'z') || (*in >= 'A' && *in <= 'Z') ||
                           *in == '.' || *in == '-' || *in == '_'
                       ? *in
                       : '_';
    out[i] = 0;
}

enum range { RANGE_NONE, RANGE_OK, RANGE_UNSATISFIABLE };

static bool parse_u64(const char **p, uint64_t *out)
{
    const char *s = *p;
    uint64_t v = 0;
    int n = 0;
    for (; *s >= '0' && *s <= '9'; s++, n++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *p = s;
    *out = v;
    return n > 0;
}

/* One "bytes=" range against size. Several ranges, or a malformed one, are
 * ignored (the whole file is sent), as RFC 9110 allows. */
static enum range parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
    if (strncasecmp(h, "bytes=", 6) || strchr(h, ','))
        return RANGE_NONE;
    const char *p = h + 6;
    while (*p == ' ')
        p++;
    uint64_t a = 0, b = 0;
    bool has_a = parse_u64(&p, &a);
    if (*p++ != '-')
        return RANGE_NONE;
    bool has_b = parse_u64(&p, &b);
    while (*p == ' ')
        p++;
    if (*p || (!has_a && !has_b))
        return RANGE_NONE;
    if (!has_a) { /* the last b bytes */
        if (b == 0)
            return RANGE_UNSATISFIABLE;
        *first = b >= size ? 0 : size - b;
        *last = size - 1;
        return RANGE_OK;
    }
    if (has_b && b < a)
        return RANGE_NONE;
    if (a >= size)
        return RANGE_UNSATISFIABLE;
    *first = a;
    *last = has_b && b < size ? b : size - 1;
    return RANGE_OK;
}

static bool etag_matches(const char *list, const char *etag)
{
    return !strcmp(list, "*") || strstr(list, etag) != NULL;
}

/* The whole-file 200 responses of the files most recently downloaded, with
 * their mappings (or, with TLS, descriptors) open. A stored file is
 * content-addressed: it never changes and is never removed, so once the
 * database has named it, later downloads need neither a query nor an open(),
 * and libmicrohttpd queues one response on any number of connections (it
 * counts its references, so an evicted response lives until its last send
 * ends). It reads a mapping or a descriptor at explicit offsets (sendmsg,
 * pread), so sharing it is safe. */
#define CACHE_SLOTS 16

static struct cached {
    char key[200]; /* the SHA-256; for /update's 200, "<sha256> <platform> <version>" */
    uint64_t size;
    struct MHD_Response *resp;
    uint64_t used; /* for LRU eviction */
} cache[CACHE_SLOTS];
static uint64_t cache_clock;
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static struct cached *cache_find(const char *key)
{
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].resp && !strcmp(cache[i].key, key))
            return &cache[i];
    return NULL;
}

/* The size of a cached file: true when sha is cached. */
static bool cache_size(const char *sha, uint64_t *size)
{
    pthread_mutex_lock(&cache_lock);
    struct cached *e = cache_find(sha);
    if (e)
        *size = e->size;
    pthread_mutex_unlock(&cache_lock);
    return e != NULL;
}

/* Queue key's cached response, under the lock so that no eviction destroys
 * it first: true when it was cached, *ret then MHD's answer. */
static bool cache_queue(struct MHD_Connection *c, const char *key, enum MHD_Result *ret)
{
    pthread_mutex_lock(&cache_lock);
    struct cached *e = cache_find(key);
    if (e) {
        e->used = ++cache_clock;
        *ret = MHD_queue_response(c, MHD_HTTP_OK, e->resp);
    }
    pthread_mutex_unlock(&cache_lock);
    return e != NULL;
}

/* Keep r (the caller's reference) as key's response, in place of the least
 * recently used one; a response another thread cached first stays. */
static void cache_put(const char *key, uint64_t size, struct MHD_Response *r)
{
    struct MHD_Response *drop = r;
    pthread_mutex_lock(&cache_lock);
    if (!cache_find(key)) {
        struct cached *e = &cache[0];
        for (int i = 1; i < CACHE_SLOTS; i++)
            if (cache[i].used < e->used)
                e = &cache[i];
        drop = e->resp;
        snprintf(e->key, sizeof e->key, "%s", key);
        e->size = size;
        e->resp = r;
        e->used = ++cache_clock;
    }
    pthread_mutex_unlock(&cache_lock);
    if (drop)
        MHD_destroy_response(drop);
}

struct mapping {
    void *addr;
    size_t len;
};

static void unmap(void *cls)
{
    struct mapping *m = cls;
    munmap(m->addr, m->len);
    free(m);
}

/* The whole file as a response; takes fd. Without TLS the file is mapped
 * and the kernel copies it from the page cache into the socket, header and
 * body in one send: on loopback this runs 2-3x faster than libmicrohttpd's
 * sendfile path, which pushes the header alone and then sends 128 KiB per
 * round (bench/server.sh). Nothing is read into aloftd's memory: only the
 * kernel touches the mapping (with TLS, GnuTLS would read it in user space,
 * where a file truncated behind aloftd's back would raise SIGBUS, so TLS
 * keeps the descriptor and libmicrohttpd's pread). */
static struct MHD_Response *whole_file(const struct aloftd *d, int fd, uint64_t size)
{
    struct mapping *m = d->tls_cert || size == 0 || size > SIZE_MAX ? NULL : malloc(sizeof *m);
    if (m) {
        m->len = (size_t)size;
        m->addr = mmap(NULL, m->len, PROT_READ, MAP_SHARED, fd, 0);
        struct MHD_Response *r = m->addr == MAP_FAILED
                                     ? NULL
                                     : MHD_create_response_from_buffer_with_free_callback_cls(m->len, m->addr,
                                                                                              unmap, m);
        if (r) {
            close(fd);
            return r;
        }
        if (m->addr != MAP_FAILED)
            munmap(m->addr, m->len);
        free(m);
    }
    return MHD_create_response_from_fd64(size, fd);
}

/* /update's 200: the whole file, as a download is sent (mapped, one send
 * for header and body) and kept like one, with HTTPUpdate's headers: one
 * response per release (and per patch to it), shared by every device
 * offered it. p: the patch from the device's image to r's, sent instead. */
static enum MHD_Result send_update(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_release *r,
                                   const struct aloft_store_delta *p, unsigned *status)
{
    const char *sha = p ? p->sha256 : r->sha256;
    uint64_t size = p ? p->size : r->size, saved = p ? r->size - p->size : 0;
    char key[200];
    snprintf(key, sizeof key, "%s %s %s", sha, r->platform, r->version);
    enum MHD_Result ret;
    *status = 200;
    if (cache_queue(c, key, &ret)) {
        if (ret == MHD_YES && !aloftd_head_request) {
            aloftd_metrics_download(size);
            if (p)
                aloftd_metrics_patch_sent(saved);
        }
        return ret;
    }
    int fd = open_blob(d, c, sha, size, status, &ret);
    if (fd < 0)
        return ret;
    struct MHD_Response *resp = whole_file(d, fd, size);
    if (!resp) {
        close(fd);
        return MHD_NO;
    }
    char platform[40], version[80], disposition[160], num[24];
    safe_name(r->platform, platform, sizeof platform);
    safe_name(r->version, version, sizeof version);
    snprintf(disposition, sizeof disposition, "attachment; filename=\"%s-%s.%s\"", platform, version,
             p ? "delta" : "bin");
    common_headers(resp, sha, p ? "application/x-aloft-delta" : "application/octet-stream");
    MHD_add_response_header(resp, "x-MD5", p ? p->md5 : r->md5); /* HTTPUpdate checks the body against it */
    MHD_add_response_header(resp, "Content-Disposition", disposition);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "X-Aloft-Version", r->version);
    if (p) { /* what the patch makes, and from what */
        MHD_add_response_header(resp, "X-Aloft-Delta-Base", p->base);
        MHD_add_response_header(resp, "X-Aloft-Image-SHA256", r->sha256);
        snprintf(num, sizeof num, "%llu", (unsigned long long)r->size);
        MHD_add_response_header(resp, "X-Aloft-Image-Size", num);
    }
    ret = MHD_queue_response(c, MHD_HTTP_OK, resp);
    if (ret == MHD_YES && !aloftd_head_request) {
        aloftd_metrics_download(size);
        if (p)
            aloftd_metrics_patch_sent(saved);
    }
    cache_put(key, size, resp);
    return ret;
}

enum MHD_Result aloftd_send_release(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_release *r,
                                    unsigned *status)
{
    return send_update(d, c, r, NULL, status);
}

enum MHD_Result aloftd_send_patch(struct aloftd *d, struct MHD_Connection *c, const struct aloft_store_release *r,
                                  const struct aloft_store_delta *p, unsigned *status)
{
    return send_update(d, c, r, p, status);
}

void aloftd_download_stop(void)
{
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].resp)
            MHD_destroy_response(cache[i].resp);
        cache[i].resp = NULL;
    }
}

enum MHD_Result aloftd_download(struct aloftd *d, struct MHD_Connection *c, const char *name)
{
    char sha[65];
    if (!blob_name(name, sha))
        return aloftd_reply_error(c, 404, "not_found", "no such file: files are /firmware/<sha256>.bin");
    uint64_t size;
    int rc = cache_size(sha, &size) ? 0 : aloft_store_blob_get(d->store, sha, &size);
    if (rc)
        return aloftd_reply_store_error(c, rc, "not_found", "no such file");
    char etag[70];
    snprintf(etag, sizeof etag, "\"%s\"", sha);

    const char *inm = aloftd_header(c, MHD_HTTP_HEADER_IF_NONE_MATCH);
    if (inm && etag_matches(inm, etag)) {
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "ETag", etag);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NOT_MODIFIED, r);
        MHD_destroy_response(r);
        return ret;
    }

    uint64_t first = 0, last = size - 1;
    const char *range = aloftd_header(c, MHD_HTTP_HEADER_RANGE);
    const char *if_range = aloftd_header(c, MHD_HTTP_HEADER_IF_RANGE);
    enum range kind = range && (!if_range || !strcmp(if_range, etag)) ? parse_range(range, size, &first, &last)
                                                                      : RANGE_NONE;
    if (kind == RANGE_UNSATISFIABLE) {
        char cr[48];
        snprintf(cr, sizeof cr, "bytes */%llu", (unsigned long long)size);
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "status", "error");
        cJSON_AddStringToObject(j, "error", "range_not_satisfiable");
        cJSON_AddStringToObject(j, "message", "the range starts past the end of the file");
        char *body = cJSON_PrintUnformatted(j);
        cJSON_Delete(j);
        struct MHD_Response *r = body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
        if (!r) {
            free(body);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Content-Range", cr);
        enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_RANGE_NOT_SATISFIABLE, r);
        MHD_destroy_response(r);
        return ret;
    }

    enum MHD_Result ret;
    uint64_t len = last - first + 1;
    if (kind == RANGE_NONE && cache_queue(c, sha, &ret)) {
        if (ret == MHD_YES && !aloftd_head_request)
            aloftd_metrics_download(len);
        return ret;
    }
    unsigned status;
    int fd = open_blob(d, c, sha, size, &status, &ret);
    if (fd < 0)
        return ret;
    struct MHD_Response *r =
        kind == RANGE_NONE ? whole_file(d, fd, size) : MHD_create_response_from_fd_at_offset64(len, fd, first);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    common_headers(r, sha, "application/octet-stream");
    MHD_add_response_header(r, "Cache-Control", "public, max-age=31536000, immutable");
    if (kind == RANGE_OK) {
        char cr[80];
        snprintf(cr, sizeof cr, "bytes %llu-%llu/%llu", (unsigned long long)first, (unsigned long long)last,
                 (unsigned long long)size);
        MHD_add_response_header(r, "Content-Range", cr);
    }
    ret = MHD_queue_response(c, kind == RANGE_OK ? MHD_HTTP_PARTIAL_CONTENT : MHD_HTTP_OK, r);
    if (ret == MHD_YES && !aloftd_head_request)
        aloftd_metrics_download(len);
    if (kind == RANGE_NONE)
        cache_put(sha, size, r); /* the whole file: kept for the next download */
    else
        MHD_destroy_response(r);
    return ret;
}
