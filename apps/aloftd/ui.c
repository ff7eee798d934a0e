/* aloftd: the admin web UI (web/admin, built by web/admin/build.sh) as static
 * files: GET / and /admin redirect to /admin/, GET /admin/<path> serves
 * <ui dir>/<path> (index.html for the directory). The files need no token;
 * the page sends the token with its API calls. Paths are restricted to
 * segments of A-Z a-z 0-9 . _ - that do not start with a dot, so neither
 * ../ (libmicrohttpd has already decoded %2e%2e and %2f) nor hidden files
 * can be reached. A client that accepts gzip gets <path>.gz when the build
 * made one, with Content-Encoding: gzip. */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloftd.h"

/* Next to the program: a build's <build>/bin/aloftd serves <build>/admin
 * (make www), an installed <prefix>/bin/aloftd <prefix>/share/aloft/admin
 * (make install): the installed one when it has an index.html. */
void aloftd_ui_default(char *out, size_t cap)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        snprintf(out, cap, "admin");
        return;
    }
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (slash)
        *slash = 0;
    const char *dir = slash ? exe : ".";
    char index[PATH_MAX + 64];
    snprintf(index, sizeof index, "%s/../share/aloft/admin/index.html", dir);
    if (access(index, R_OK) == 0)
        snprintf(out, cap, "%s/../share/aloft/admin", dir);
    else
        snprintf(out, cap, "%s/../admin", dir);
}

void aloftd_ui_log(const struct aloftd *d)
{
    char index[4400];
    snprintf(index, sizeof index, "%s/index.html", d->ui);
    if (access(index, R_OK) == 0)
        aloftd_log("admin UI at /admin/ from %s", d->ui);
    else
        aloftd_log("admin UI: %s has no index.html (make www builds it; or --ui DIR)", d->ui);
}

static const struct {
    const char *ext, *type;
} types[] = {
    {".html", "text/html; charset=utf-8"}, {".js", "text/javascript; charset=utf-8"},
    {".css", "text/css; charset=utf-8"},   {".svg", "image/svg+xml"},
    {".png", "image/png"},                 {".ico", "image/x-icon"},
    {".json", "application/json"},         {".txt", "text/plain; charset=utf-8"},
    {".woff2", "font/woff2"},              {".map", "application/json"},
};

static const char *content_type(const char *path)
{
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(dot, types[i].ext))
            return types[i].type;
    return "application/octet-stream";
}

static bool safe_path(const char *p)
{
    if (!*p)
        return true; /* the directory: index.html */
    bool start = true;
    for (; *p; p++) {
        char ch = *p;
        if (ch == '/') {
            if (start)
                return false; /* an empty segment */
            start = true;
            continue;
        }
        if (start && ch == '.')
            return false; /* ".", "..", hidden files */
        start = false;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

/* Does Accept-Encoding take gzip (with no q=0)? */
static bool accepts_gzip(const char *ae)
{
    for (const char *p = ae; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",");
        if (strcspn(p, " \t;,") == 4 && !strncasecmp(p, "gzip", 4)) {
            const char *q = strstr(p, "q=");
            return !q || q >= p + n || strtod(q + 2, NULL) > 0;
        }
        p += n;
    }
    return false;
}

static enum MHD_Result redirect(struct MHD_Connection *c, const char *to)
{
    static const char body[] = "see /admin/\n";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body, MHD_RESPMEM_PERSISTENT);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Location", to);
    MHD_add_response_header(r, "Content-Type", "text/plain; charset=utf-8");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_FOUND, r);
    MHD_destroy_response(r);
    return ret;
}

/* The UI is not built: say how, in a page a browser shows. */
static enum MHD_Result not_built(struct aloftd *d, struct MHD_Connection *c)
{
    char page[5200];
    int n = snprintf(page, sizeof page,
                     "<!doctype html><meta charset=utf-8><title>aloftd: admin UI not built</title>\n"
                     "<h1>The admin UI is not built</h1>\n"
                     "<p>aloftd serves it from <code>%s</code>, which has no index.html.</p>\n"
                     "<p>Build it with <code>make www</code> (or <code>web/admin/build.sh BUILD/admin</code>), "
                     "or point aloftd at a built copy with <code>--ui DIR</code> (env ALOFT_UI).</p>\n"
                     "<p>The JSON API under <code>/api/</code> works without it.</p>\n",
                     d->ui);
    struct MHD_Response *r =
        MHD_create_response_from_buffer(n > 0 && (size_t)n < sizeof page ? (size_t)n : strlen(page), page,
                                        MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", "text/html; charset=utf-8");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_NOT_FOUND, r);
    MHD_destroy_response(r);
    return ret;
}

/* Open path as a regular file; -1 if it is not one. */
static int open_file(const char *path, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, st) || !S_ISREG(st->st_mode)) {
        close(fd);
        return -1;
    }
    return fd;
}

enum MHD_Result aloftd_ui(struct aloftd *d, struct MHD_Connection *c, const char *url, bool get)
{
    if (!get)
        return aloftd_reply_error(c, 405, "method_not_allowed", "use GET");
    if (!strcmp(url, "/") || !strcmp(url, "/admin"))
        return redirect(c, "/admin/");
    const char *rel = url + 7; /* after "/admin/" */
    if (!safe_path(rel))
        return aloftd_reply_error(c, 400, "bad_path",
                                  "the admin UI's files are named with A-Z a-z 0-9 . _ - and / only, "
                                  "with no segment starting with a dot");
    bool index = !*rel || rel[strlen(rel) - 1] == '/';
    char path[4400], gzpath[4410];
    int n = snprintf(path, sizeof path, "%s/%s%s", d->ui, rel, index ? "index.html" : "");
    if (n < 0 || (size_t)n >= sizeof path)
        return aloftd_reply_error(c, 404, "not_found", "the admin UI has no such file");
    snprintf(gzpath, sizeof gzpath, "%s.gz", path);
    struct stat st;
    bool gz = false;
    int fd = -1;
    if (accepts_gzip(aloftd_header(c, MHD_HTTP_HEADER_ACCEPT_ENCODING)))
        gz = (fd = open_file(gzpath, &st)) >= 0;
    if (fd < 0 && (fd = open_file(path, &st)) < 0) {
        if (!strcmp(rel, "") || !strcmp(rel, "index.html"))
            return not_built(d, c);
        return aloftd_reply_error(c, 404, "not_found", "the admin UI has no file /admin/%s", rel);
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd); /* closes fd */
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", content_type(path));
    MHD_add_response_header(r, "Vary", "Accept-Encoding");
    if (gz)
        MHD_add_response_header(r, "Content-Encoding", "gzip");
    /* vite names assets by their content hash; index.html must be re-read */
    MHD_add_response_header(r, "Cache-Control",
                            !strncmp(rel, "assets/", 7) ? "public, max-age=31536000, immutable" : "no-cache");
    MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    enum MHD_Result ret = MHD_queue_response(c, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return ret;
}
