/* aloftd: POST /api/firmware — an image arrives as the raw body, streams
 * into a temporary file through the image verifier, SHA-256 and MD5, and is
 * identified by its app descriptor (chip, project, version), never by
 * strings found in it. Only a complete, verified file is fsynced and renamed
 * to firmware/<sha256>.bin, and only then is the release recorded, in one
 * transaction: a release never points at a missing or partial file.
 *
 * Query: ?platform=NAME (default: the descriptor's project), and for a
 * frontend ?kind=frontend&platform=NAME[&version=LABEL] (a LittleFS image;
 * the label defaults to the first 12 hex digits of its SHA-256). A platform
 * with signing keys takes only uploads signed by one of them (signing.c):
 * 422 unsigned, bad_signature or untrusted_key otherwise. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "aloftd.h"
#include "littlefs.h"
#include "semver.h"
#include "hex.h"

struct aloftd_upload {
    enum aloft_store_kind kind;
    char platform[ALOFT_STORE_NAME_MAX + 1]; /* "" : from the descriptor */
    char version[ALOFT_STORE_VERSION_MAX + 1];
    uint64_t expected, received;
    int fd;
    char tmp[4200];
    struct aloft_image_verifier v;
    struct aloft_sha256 sha;
    struct aloft_md5 md5;
    /* a refusal decided while the body streams in, sent once it is in */
    unsigned status;
    const char *code;
    char message[300];
};

static void refuse(struct aloftd_upload *up, unsigned status, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void refuse(struct aloftd_upload *up, unsigned status, const char *code, const char *fmt, ...)
{
    if (up->status)
        return;
    up->status = status;
    up->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(up->message, sizeof up->message, fmt, ap);
    va_end(ap);
}

void aloftd_upload_free(struct aloftd_upload *up)
{
    if (!up)
        return;
    if (up->fd >= 0) {
        close(up->fd);
        unlink(up->tmp);
    }
    free(up);
}

/* Why an image is refused, as an error code for the JSON reply. */
static const char *image_error_code(int err)
{
    static const struct {
        int err;
        const char *code;
    } map[] = {
        {ALOFT_E_MAGIC, "not_an_image"},     {ALOFT_E_ESP8266, "esp8266_image"}, {ALOFT_E_SEGMENTS, "bad_segments"},
        {ALOFT_E_SEGMENT, "bad_segment"},    {ALOFT_E_HEADER, "bad_header"},     {ALOFT_E_CHIP, "unknown_chip"},
        {ALOFT_E_CHECKSUM, "bad_checksum"},  {ALOFT_E_HASH, "bad_sha256"},       {ALOFT_E_TRUNCATED, "truncated"},
        {ALOFT_E_TRAILING, "trailing_data"},  {ALOFT_E_NOSPC, "bad_segment"}, /* segments larger than the body may be */
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (map[i].err == err)
            return map[i].code;
    return "bad_image";
}

/* Checks that need only the headers and the query. Returns 0, or queues the
 * refusal and returns its HTTP status. */
static unsigned preflight(struct aloftd *d, struct MHD_Connection *c, struct aloftd_upload *up, enum MHD_Result *ret)
{
    const char *kind = aloftd_arg(c, "kind"), *platform = aloftd_arg(c, "platform"), *version = aloftd_arg(c, "version");
    const char *ct = aloftd_header(c, MHD_HTTP_HEADER_CONTENT_TYPE);
    const char *cl = aloftd_header(c, MHD_HTTP_HEADER_CONTENT_LENGTH);
    char *end = NULL;
    unsigned long long len = cl && *cl >= '0' && *cl <= '9' ? strtoull(cl, &end, 10) : 0;
    if (kind && strcmp(kind, "firmware") && strcmp(kind, "frontend"))
        return *ret = aloftd_reply_error(c, 400, "bad_parameter", "kind must be firmware or frontend, not '%s'", kind), 400;
    up->kind = kind && !strcmp(kind, "frontend") ? ALOFT_STORE_FRONTEND : ALOFT_STORE_FIRMWARE;
    if (platform && !aloft_store_name_ok(platform))
        return *ret = aloftd_reply_error(c, 400, "bad_parameter",
                                         "platform must be 1 to %d characters of A-Z a-z 0-9 . _ -",
                                         ALOFT_STORE_NAME_MAX), 400;
    if (up->kind == ALOFT_STORE_FRONTEND && !platform)
        return *ret = aloftd_reply_error(c, 400, "missing_parameter",
                                         "a frontend image is uploaded for a platform: ?kind=frontend&platform=NAME"), 400;
    if (version && (up->kind == ALOFT_STORE_FIRMWARE || !*version || strlen(version) > ALOFT_STORE_VERSION_MAX))
        return *ret = aloftd_reply_error(c, 400, "bad_parameter",
                                         up->kind == ALOFT_STORE_FIRMWARE
                                             ? "a firmware's version comes from its app descriptor; drop ?version="
                                             : "version must be 1 to 64 characters"), 400;
    if (ct && !strncasecmp(ct, "multipart/", 10))
        return *ret = aloftd_reply_error(c, 415, "unsupported_media_type",
                                         "send the image as the raw body: curl --data-binary @fw.bin "
                                         "-H 'Content-Type: application/octet-stream'"), 415;
    if (!cl || !end || *end)
        return *ret = aloftd_reply_error(c, 411, "length_required",
                                         "Content-Length is required (chunked uploads are not accepted)"), 411;
    if (len > d->max_upload)
        return *ret = aloftd_reply_error(c, 413, "too_large", "the body is %llu bytes; this server takes at most %llu",
                                         len, (unsigned long long)d->max_upload), 413;
    if (len == 0)
        return *ret = aloftd_reply_error(c, 400, "empty", "the body is empty: send the image"), 400;
    snprintf(up->platform, sizeof up->platform, "%s", platform ? platform : "");
    snprintf(up->version, sizeof up->version, "%s", version ? version : "");
    up->expected = len;
    return 0;
}

static int write_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void take(struct aloftd_upload *up, const char *data, size_t n)
{
    if (up->status)
        return; /* refused already: the rest of the body is read and dropped */
    up->received += n;
    if (up->received > up->expected) {
        refuse(up, 400, "bad_length", "more body than Content-Length announced");
        return;
    }
    if (up->kind == ALOFT_STORE_FIRMWARE) {
        int rc = aloft_image_feed(&up->v, data, n);
        if (rc) {
            refuse(up, 400, image_error_code(rc), "not a valid ESP app image: %s (at byte %u)", aloft_strerror(rc),
                   up->v.pos);
            return;
        }
    }
    aloft_sha256_update(&up->sha, data, n);
    aloft_md5_update(&up->md5, data, n);
    if (write_all(up->fd, data, n))
        refuse(up, 507, "storage_full", "cannot write the upload: %s", strerror(errno));
}

static bool printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < ' ' || (unsigned char)*s > '~')
            return false;
    return true;
}

/* The identity of a complete firmware from its descriptor into r. */
static void identify_firmware(struct aloftd_upload *up, struct aloft_store_release *r)
{
    int rc = aloft_image_end(&up->v);
    if (rc) {
        refuse(up, 400, image_error_code(rc), "not a valid ESP app image: %s", aloft_strerror(rc));
        return;
    }
    const struct aloft_image_info *in = &up->v.info;
    if (!in->has_desc) {
        refuse(up, 400, "no_app_descriptor",
               "the image has no app descriptor (esp_app_desc_t), so its project and version are unknown: "
               "build it with ESP-IDF or Arduino-ESP32");
        return;
    }
    const char *chip = aloft_chip_name(in->chip_id);
    const char *version = in->desc.version, *project = in->desc.project_name;
    if (!version[0] || !printable(version)) {
        refuse(up, 400, "bad_version", "the app descriptor's version is empty or not printable text");
        return;
    }
    if (!up->platform[0] && !aloft_store_name_ok(project)) {
        refuse(up, 400, "bad_project",
               "the app descriptor's project name '%s' cannot name a platform (1 to %d of A-Z a-z 0-9 . _ -): "
               "give ?platform=NAME",
               printable(project) ? project : "?", ALOFT_STORE_NAME_MAX);
        return;
    }
    snprintf(r->platform, sizeof r->platform, "%s", up->platform[0] ? up->platform : project);
    snprintf(r->version, sizeof r->version, "%s", version);
    snprintf(r->chip, sizeof r->chip, "%s", chip ? chip : "unknown");
    snprintf(r->project, sizeof r->project, "%s", printable(project) ? project : "");
    snprintf(r->idf_ver, sizeof r->idf_ver, "%s", printable(in->desc.idf_ver) ? in->desc.idf_ver : "");
    r->secure_version = in->desc.secure_version;
}

/* A frontend must be a LittleFS image that mounts. */
static void check_frontend(struct aloftd_upload *up)
{
    void *map = mmap(NULL, up->received, PROT_READ, MAP_PRIVATE, up->fd, 0);
    if (map == MAP_FAILED) {
        refuse(up, 500, "io_error", "cannot read the upload back: %s", strerror(errno));
        return;
    }
    struct aloft_lfs fs;
    int rc = aloft_lfs_mount(&fs, map, up->received, 0);
    if (rc)
        refuse(up, 400, "not_littlefs", "not a LittleFS image that mounts: %s", fs.why[0] ? fs.why : aloft_strerror(rc));
    munmap(map, up->received);
}

/* The platform's signing policy (signing.c); the release's signer. */
static void check_signature(struct aloftd *d, struct aloftd_upload *up, struct aloft_store_release *r)
{
    void *map = mmap(NULL, up->received, PROT_READ, MAP_PRIVATE, up->fd, 0);
    if (map == MAP_FAILED) {
        refuse(up, 500, "io_error", "cannot read the upload back: %s", strerror(errno));
        return;
    }
    char why[300];
    const char *code = aloftd_signature_check(d, r->platform, map, up->received, r->signer, why, sizeof why);
    if (code)
        refuse(up, strcmp(code, "io_error") ? 422 : 500, code, "%s", why);
    munmap(map, up->received);
}

/* Refuse what the database would refuse, before the file is kept. */
static void precheck(struct aloftd *d, struct aloftd_upload *up, const struct aloft_store_release *r)
{
    struct aloft_store_platform p;
    int rc = aloft_store_platform_get(d->store, r->platform, false, &p);
    if (rc == ALOFT_E_NOTFOUND && r->kind == ALOFT_STORE_FRONTEND) {
        refuse(up, 404, "unknown_platform",
               "no platform '%s': upload a firmware for it first, or create it (aloft server platform add)",
               r->platform);
        return;
    }
    if (rc == 0 && r->kind == ALOFT_STORE_FIRMWARE && strcmp(p.chip, r->chip)) {
        refuse(up, 409, "chip_mismatch",
               "platform '%s' is for %s and this image is for %s: upload it to another platform with ?platform=NAME",
               p.name, p.chip, r->chip);
        return;
    }
    struct aloft_store_release old;
    if (rc == 0 && aloft_store_release_get(d->store, r->platform, r->kind, r->version, &old) == 0 &&
        strcmp(old.sha256, r->sha256))
        refuse(up, 409, "version_exists",
               "platform '%s' already has %s %s with other bytes (sha256 %.12s…); a version names one build: "
               "give this one a new version",
               p.name, aloft_store_kind_name(r->kind), r->version, old.sha256);
}

/* fsync the file, rename it to its content address, fsync the directory. */
static int keep_file(struct aloftd *d, struct aloftd_upload *up, const char *sha256)
{
    char path[4300];
    aloftd_blob_path(d, sha256, path, sizeof path);
    if (fsync(up->fd) || fchmod(up->fd, 0644) || rename(up->tmp, path))
        return -1;
    close(up->fd);
    up->fd = -1;
    int dir = open(d->firmware_dir, O_RDONLY | O_DIRECTORY);
    if (dir < 0)
        return -1;
    int rc = fsync(dir);
    close(dir);
    return rc;
}

static enum MHD_Result finish(struct aloftd *d, struct MHD_Connection *c, struct aloftd_upload *up)
{
    if (!up->status && up->received != up->expected)
        refuse(up, 400, "truncated", "the body ended after %llu of %llu bytes", (unsigned long long)up->received,
               (unsigned long long)up->expected);
    struct aloft_store_release r;
    memset(&r, 0, sizeof r);
    r.kind = up->kind;
    uint8_t digest[32], md5[16];
    aloft_sha256_final(&up->sha, digest);
    aloft_md5_final(&up->md5, md5);
    aloft_hex(digest, 32, r.sha256);
    aloft_hex(md5, 16, r.md5);
    r.size = up->received;
    if (!up->status && up->kind == ALOFT_STORE_FIRMWARE) {
        identify_firmware(up, &r);
    } else if (!up->status) {
        check_frontend(up);
        snprintf(r.platform, sizeof r.platform, "%s", up->platform);
        if (up->version[0])
            snprintf(r.version, sizeof r.version, "%s", up->version);
        else
            snprintf(r.version, sizeof r.version, "%.12s", r.sha256);
    }
    if (!up->status)
        check_signature(d, up, &r);
    if (!up->status)
        precheck(d, up, &r);
    /* the other instances' copy first: a release they see has its bytes */
    if (!up->status && aloftd_file_share(d, up->fd, r.sha256, r.size))
        refuse(up, 503, "database_unavailable", "cannot store the file in the database: %s", aloft_store_error());
    if (!up->status && keep_file(d, up, r.sha256))
        refuse(up, 500, "io_error", "cannot store the file: %s", strerror(errno));
    if (up->status) {
        aloftd_log("upload refused: %u %s: %s", up->status, up->code, up->message);
        return aloftd_reply_error(c, up->status, up->code, "%s", up->message);
    }
    bool existed;
    int rc = aloft_store_release_add(d->store, &r, &existed);
    if (rc == ALOFT_E_STATE)
        return aloftd_reply_error(c, 409, "version_exists", "%s %s is already recorded with other bytes",
                                  aloft_store_kind_name(r.kind), r.version);
    if (rc == ALOFT_E_CHIP)
        return aloftd_reply_error(c, 409, "chip_mismatch", "platform '%s' is for another chip", r.platform);
    if (rc)
        return aloftd_reply_store_error(c, rc, "unknown_platform", "no such platform: upload a firmware for it first");
    struct aloft_store_release cur;
    struct aloft_store_platform p;
    bool current = aloft_store_current(d->store, r.platform, r.kind, &cur) == 0 && !strcmp(cur.version, r.version);
    bool manual = aloft_store_platform_get(d->store, r.platform, false, &p) == 0 && p.publish_manual;
    aloftd_log("%s %s %s %s (%llu bytes, sha256 %s); %s", existed ? "already have" : "stored", r.platform,
               aloft_store_kind_name(r.kind), r.version, (unsigned long long)r.size, r.sha256,
               current  ? "served to the platform's devices"
               : manual ? "not served: the platform publishes by hand (pin it or roll it out)"
                        : "not served: another release is pinned or newer");
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "status", "ok");
    cJSON_AddBoolToObject(j, "created", !existed);
    cJSON_AddItemToObject(j, "release", aloftd_release_json(&r, current));
    return aloftd_reply_json(c, existed ? 200 : 201, j);
}

enum MHD_Result aloftd_upload(struct aloftd *d, struct MHD_Connection *c, struct aloftd_request *req,
                              const char *data, size_t *data_size)
{
    struct aloftd_upload *up = req->upload;
    if (!up) {
        if (!(up = calloc(1, sizeof *up)))
            return MHD_NO;
        up->fd = -1;
        enum MHD_Result ret;
        if (preflight(d, c, up, &ret)) { /* answered before the body is read */
            free(up);
            return ret;
        }
        snprintf(up->tmp, sizeof up->tmp, "%s/upload-XXXXXX", d->tmp_dir);
        up->fd = mkstemp(up->tmp);
        if (up->fd < 0) {
            free(up);
            return aloftd_reply_error(c, 500, "io_error", "cannot create a temporary file in %s: %s", d->tmp_dir,
                                      strerror(errno));
        }
        aloft_image_begin(&up->v, ALOFT_CHIP_ANY, d->max_upload > UINT32_MAX ? 0 : (uint32_t)d->max_upload);
        aloft_sha256_init(&up->sha);
        aloft_md5_init(&up->md5);
        req->upload = up;
        return MHD_YES;
    }
    if (*data_size) {
        take(up, data, *data_size);
        *data_size = 0;
        return MHD_YES;
    }
    return finish(d, c, up);
}
