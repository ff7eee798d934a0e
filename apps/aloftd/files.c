/* aloftd: stored files shared through the database (PostgreSQL), so that
 * instances with separate data directories serve one fleet. An upload's
 * bytes go into the database before its release is recorded; an instance
 * asked for a file it lacks on disk takes it from the database into its
 * tmp directory, checks its size and SHA-256 against what was recorded,
 * and only then moves it to firmware/<sha256>.bin: a damaged copy in the
 * database is refused, never served or kept. With SQLite every file is on
 * the one instance's disk and none of this runs. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "aloft/crypto.h"
#include "aloft/err.h"
#include "aloftd.h"
#include "hex.h"

int aloftd_file_share(struct aloftd *d, int fd, const char *sha256, uint64_t size)
{
    if (!aloft_store_files_shared(d->store))
        return 0;
    if (size > SIZE_MAX)
        return ALOFT_E_INVAL;
    void *map = size ? mmap(NULL, (size_t)size, PROT_READ, MAP_PRIVATE, fd, 0) : NULL;
    if (map == MAP_FAILED) {
        aloftd_log("cannot read %s back to share it: %s", sha256, strerror(errno));
        return ALOFT_E_IO;
    }
    int rc = aloft_store_file_put(d->store, sha256, map, size);
    if (map)
        munmap(map, (size_t)size);
    if (rc)
        aloftd_log("cannot store file %s in the database: %s", sha256, aloft_store_error());
    return rc;
}

struct fetch {
    int fd;
    uint64_t got;
    struct aloft_sha256 sha;
};

static int take(void *ctx, const void *p, size_t n)
{
    struct fetch *f = ctx;
    aloft_sha256_update(&f->sha, p, n);
    f->got += n;
    for (const char *b = p; n;) {
        ssize_t w = write(f->fd, b, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return ALOFT_E_IO;
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

/* One fetch at a time: devices offered a release at once, on an instance
 * that lacks its file, wait for one copy instead of each taking its own. */
static pthread_mutex_t fetch_lock = PTHREAD_MUTEX_INITIALIZER;

static int fetch(struct aloftd *d, const char *sha256, uint64_t size);

int aloftd_file_fetch(struct aloftd *d, const char *sha256, uint64_t size)
{
    if (!aloft_store_files_shared(d->store))
        return ALOFT_E_NOTFOUND;
    pthread_mutex_lock(&fetch_lock);
    char path[4300];
    aloftd_blob_path(d, sha256, path, sizeof path);
    struct stat st; /* another request's fetch may have kept it meanwhile */
    int rc = stat(path, &st) == 0 && (uint64_t)st.st_size == size ? 0 : fetch(d, sha256, size);
    pthread_mutex_unlock(&fetch_lock);
    return rc;
}

static int fetch(struct aloftd *d, const char *sha256, uint64_t size)
{
    char tmp[4200], path[4300];
    snprintf(tmp, sizeof tmp, "%s/fetch-XXXXXX", d->tmp_dir);
    struct fetch f;
    memset(&f, 0, sizeof f);
    f.fd = mkstemp(tmp);
    if (f.fd < 0) {
        aloftd_log("cannot create a temporary file in %s: %s", d->tmp_dir, strerror(errno));
        return ALOFT_E_IO;
    }
    aloft_sha256_init(&f.sha);
    int rc = aloft_store_file_read(d->store, sha256, size, take, &f);
    if (rc == ALOFT_E_IO && f.got == 0)
        aloftd_log("cannot read file %s from the database: %s", sha256, aloft_store_error());
    else if (rc == ALOFT_E_IO)
        aloftd_log("cannot write file %s taken from the database: %s", sha256, strerror(errno));
    else if (rc)
        aloftd_log("file %s is not whole in the database: %s", sha256, aloft_store_error());
    if (rc == 0) {
        uint8_t digest[32];
        char hex[65];
        aloft_sha256_final(&f.sha, digest);
        aloft_hex(digest, 32, hex);
        if (f.got != size || strcmp(hex, sha256)) {
            aloftd_log("the database's copy of file %s is damaged: %llu bytes (%llu recorded), sha256 %s; "
                       "not served, not kept",
                       sha256, (unsigned long long)f.got, (unsigned long long)size, hex);
            rc = ALOFT_E_HASH;
        }
    }
    aloftd_blob_path(d, sha256, path, sizeof path);
    if (rc == 0 && (fsync(f.fd) || fchmod(f.fd, 0644) || rename(tmp, path))) {
        aloftd_log("cannot keep file %s: %s", path, strerror(errno));
        rc = ALOFT_E_IO;
    }
    close(f.fd);
    if (rc)
        unlink(tmp);
    else
        aloftd_log("took file %s (%llu bytes) from the database", sha256, (unsigned long long)size);
    return rc;
}

struct share_all {
    struct aloftd *d;
    unsigned shared, missing;
};

static int share_one(void *ctx, const char *sha256, uint64_t size)
{
    struct share_all *a = ctx;
    char path[4300];
    aloftd_blob_path(a->d, sha256, path, sizeof path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || (uint64_t)st.st_size != size) {
        a->missing++;
        if (fd >= 0)
            close(fd);
        return 0;
    }
    int rc = aloftd_file_share(a->d, fd, sha256, size);
    close(fd);
    a->shared += rc == 0;
    return rc;
}

int aloftd_files_share_all(struct aloftd *d)
{
    struct share_all a = {d, 0, 0};
    int rc = aloft_store_files_unshared(d->store, share_one, &a);
    if (rc)
        aloftd_log("cannot store this instance's files in the database: %s", aloft_store_error());
    if (a.shared)
        aloftd_log("stored %u file%s of this instance in the database for the other instances", a.shared,
                   a.shared == 1 ? "" : "s");
    if (a.missing)
        aloftd_log("%u recorded file%s neither here nor in the database: start the instance that has them",
                   a.missing, a.missing == 1 ? " is" : "s are");
    return rc;
}
