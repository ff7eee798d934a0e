/* aloft tests: shared helpers. */
#define _XOPEN_SOURCE 700
#include "testutil.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ftw.h>
#include <sys/wait.h>
#include <unistd.h>

#include "aloft/crypto.h"
#include "file.h"
#include "hex.h"

uint8_t *aloft_test_fixture(const char *rel, size_t *len)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", ALOFT_FIXTURES, rel);
    uint8_t *data = NULL;
    if (aloft_file_read(path, &data, len) != 0) {
        fprintf(stderr, "missing fixture %s\n", path);
        fail();
    }
    return data;
}

int aloft_test_run(char **out, const char *const argv[])
{
    fflush(NULL);
    int pipefd[2];
    if (pipe(pipefd) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        char exe[1024];
        snprintf(exe, sizeof exe, "%s/%s", ALOFT_BIN, argv[0]);
        dup2(pipefd[1], STDOUT_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ssize_t r;
    while (buf && (r = read(pipefd[0], buf + n, cap - n - 1)) > 0) {
        n += (size_t)r;
        if (cap - n < 2) {
            char *bigger = realloc(buf, cap * 2);
            if (!bigger)
                break;
            buf = bigger;
            cap *= 2;
        }
    }
    close(pipefd[0]);
    if (buf)
        buf[n] = 0;
    int status;
    waitpid(pid, &status, 0);
    if (out)
        *out = buf;
    else
        free(buf);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char tmpdir[64];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    return remove(path);
}

/* ALOFT_TEST_KEEP=1 keeps it (logs, flash files) to look at afterwards. */
static void remove_tmpdir(void)
{
    if (getenv("ALOFT_TEST_KEEP"))
        fprintf(stderr, "kept %s\n", tmpdir);
    else
        nftw(tmpdir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *aloft_test_tmpdir(void)
{
    if (!tmpdir[0]) {
        snprintf(tmpdir, sizeof tmpdir, "/tmp/aloft-test-XXXXXX");
        if (!mkdtemp(tmpdir))
            fail();
        atexit(remove_tmpdir);
    }
    return tmpdir;
}

void aloft_test_fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed ? seed : 0x9e3779b9u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

void aloft_test_md5_hex(const void *data, size_t len, char out[33])
{
    struct aloft_md5 m;
    uint8_t d[16];
    aloft_md5_init(&m);
    aloft_md5_update(&m, data, len);
    aloft_md5_final(&m, d);
    aloft_hex(d, 16, out);
}
