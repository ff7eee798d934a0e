/* aloftd: admin tokens. The database keeps only each token's SHA-256, so a
 * copy of it grants nothing; a request's token is hashed and compared with
 * every stored hash in full (aloft_store_token_check). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "aloft/crypto.h"
#include "aloftd.h"
#include "file.h"
#include "hex.h"

#define TOKEN_MIN 16 /* characters: a token from a file must be at least this long */

static void digest(const char *token, size_t len, uint8_t out[32])
{
    struct aloft_sha256 s;
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, token, len);
    aloft_sha256_final(&s, out);
}

int aloftd_auth(struct aloftd *d, struct MHD_Connection *c, enum MHD_Result *reply)
{
    const char *h = aloftd_header(c, MHD_HTTP_HEADER_AUTHORIZATION);
    if (!h || strncasecmp(h, "Bearer ", 7) || !h[7]) {
        *reply = aloftd_reply_error(c, 401, "unauthorized", "send the admin token: Authorization: Bearer <token>");
        return -1;
    }
    uint8_t dg[32];
    digest(h + 7, strlen(h + 7), dg);
    bool ok;
    int rc = aloft_store_token_check(d->store, dg, &ok);
    if (rc) {
        *reply = aloftd_reply_store_error(c, rc, "", "");
        return -1;
    }
    if (!ok) {
        *reply = aloftd_reply_error(c, 401, "unauthorized", "the token is not an admin token of this server");
        return -1;
    }
    return 0;
}

bool aloftd_cross_site(struct MHD_Connection *c)
{
    const char *site = aloftd_header(c, "Sec-Fetch-Site"), *origin = aloftd_header(c, MHD_HTTP_HEADER_ORIGIN);
    const char *host = aloftd_header(c, MHD_HTTP_HEADER_HOST);
    if (site && !strcmp(site, "cross-site"))
        return true;
    if (!origin)
        return false; /* not a browser, or a same-origin GET */
    const char *o = !strncmp(origin, "http://", 7) ? origin + 7 : !strncmp(origin, "https://", 8) ? origin + 8 : NULL;
    return !o || !host || strcasecmp(o, host);
}

int aloftd_random_hex(char out[65])
{
    uint8_t raw[32];
    size_t got = 0;
    while (got < sizeof raw) {
        ssize_t n = getrandom(raw + got, sizeof raw - got, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        got += (size_t)n;
    }
    aloft_hex(raw, sizeof raw, out);
    return 0;
}

/* Write a new token file readable by its owner only; never overwrite. */
static int write_token_file(const char *path, const char *token)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    if (fd < 0)
        return -1;
    size_t len = strlen(token);
    int ok = write(fd, token, len) == (ssize_t)len && write(fd, "\n", 1) == 1 && fsync(fd) == 0;
    int saved = errno;
    close(fd);
    if (!ok) {
        unlink(path);
        errno = saved;
        return -1;
    }
    return 0;
}

int aloftd_token_setup(struct aloftd *d)
{
    uint8_t dg[32];
    if (d->token_file && access(d->token_file, F_OK) == 0) {
        /* the operator's token: accepted from now on */
        uint8_t *text;
        size_t len;
        if (aloft_file_read(d->token_file, &text, &len) != 0) {
            fprintf(stderr, "aloftd: %s: %s\n", d->token_file, strerror(errno));
            return -1;
        }
        while (len && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' '))
            len--;
        bool printable = len >= TOKEN_MIN;
        for (size_t i = 0; i < len; i++)
            printable = printable && text[i] > ' ' && text[i] < 127;
        if (!printable) {
            free(text);
            fprintf(stderr, "aloftd: %s: the admin token must be one line of at least %d printable characters\n",
                    d->token_file, TOKEN_MIN);
            return -1;
        }
        digest((const char *)text, len, dg);
        free(text);
        if (aloft_store_token_add(d->store, dg)) {
            fprintf(stderr, "aloftd: %s\n", aloft_store_error());
            return -1;
        }
        return 0;
    }
    uint64_t n;
    if (aloft_store_token_count(d->store, &n)) {
        fprintf(stderr, "aloftd: %s\n", aloft_store_error());
        return -1;
    }
    if (n && !d->token_file)
        return 0;
    char token[65];
    if (aloftd_random_hex(token)) {
        fprintf(stderr, "aloftd: no random numbers for a token: %s\n", strerror(errno));
        return -1;
    }
    if (d->token_file && write_token_file(d->token_file, token)) {
        fprintf(stderr, "aloftd: %s: %s\n", d->token_file, strerror(errno));
        return -1;
    }
    digest(token, strlen(token), dg);
    if (aloft_store_token_add(d->store, dg)) {
        fprintf(stderr, "aloftd: %s\n", aloft_store_error());
        if (d->token_file)
            unlink(d->token_file);
        return -1;
    }
    aloftd_log("admin token (shown once; only its SHA-256 is stored%s%s): %s", d->token_file ? "; also in " : "",
               d->token_file ? d->token_file : "", token);
    return 0;
}

/* The new token is stored before any old one is dropped and its file is
 * replaced whole (rename), so a failure at any step leaves a token that
 * works: the old ones, or the new one beside them. */
int aloftd_token_rotate(struct aloftd *d)
{
    char token[65], tmp[4200];
    uint8_t dg[32];
    if (aloftd_random_hex(token)) {
        fprintf(stderr, "aloftd: no random numbers for a token: %s\n", strerror(errno));
        return 1;
    }
    digest(token, strlen(token), dg);
    if (d->token_file) {
        snprintf(tmp, sizeof tmp, "%s.new", d->token_file);
        unlink(tmp); /* a rotation that stopped half way */
        if (write_token_file(tmp, token)) {
            fprintf(stderr, "aloftd: %s: %s; the admin token is unchanged\n", tmp, strerror(errno));
            return 1;
        }
    }
    if (aloft_store_token_add(d->store, dg)) {
        fprintf(stderr, "aloftd: %s; the admin token is unchanged\n", aloft_store_error());
        if (d->token_file)
            unlink(tmp);
        return 1;
    }
    if (d->token_file && rename(tmp, d->token_file)) {
        fprintf(stderr, "aloftd: %s: %s; the old tokens still work, and so does the new one: %s\n", d->token_file,
                strerror(errno), token);
        unlink(tmp);
        return 1;
    }
    if (aloft_store_token_keep_only(d->store, dg)) {
        fprintf(stderr, "aloftd: %s; the old tokens still work, and so does the new one%s%s\n", aloft_store_error(),
                d->token_file ? " in " : ": ", d->token_file ? d->token_file : token);
        return 1;
    }
    aloftd_log("admin token rotated; every earlier token is refused from now on (shown once; only its SHA-256 is "
               "stored%s%s): %s",
               d->token_file ? "; also in " : "", d->token_file ? d->token_file : "", token);
    return 0;
}
