/* aloft host: parse device targets. */
#include "targets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int push(struct aloft_targets *ts, const char *host, unsigned port, bool from_range, char *err, size_t errlen)
{
    char addr[80];
    if (snprintf(addr, sizeof addr, "%s:%u", host, port) >= (int)sizeof addr) {
        snprintf(err, errlen, "target '%s' is too long", host);
        return -1;
    }
    for (size_t i = 0; i < ts->n; i++)
        if (!strcmp(ts->t[i].addr, addr))
            return 0;
    if (ts->n >= ALOFT_TARGETS_MAX) {
        snprintf(err, errlen, "more than %d targets", ALOFT_TARGETS_MAX);
        return -1;
    }
    if (ts->n == ts->cap) {
        size_t cap = ts->cap ? ts->cap * 2 : 16;
        struct aloft_target *t = realloc(ts->t, cap * sizeof *t);
        if (!t) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        ts->t = t;
        ts->cap = cap;
    }
    snprintf(ts->t[ts->n].addr, sizeof ts->t[ts->n].addr, "%s", addr);
    ts->t[ts->n++].from_range = from_range;
    return 0;
}

static int add_file(struct aloft_targets *ts, const char *path, unsigned port, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "@%s: %s", path, strerror(errno));
        return -1;
    }
    char line[256];
    int rc = 0;
    while (rc == 0 && fgets(line, sizeof line, f)) {
        char *p = line + strspn(line, " \t");
        p[strcspn(p, "#\r\n")] = 0;
        char *end = p + strlen(p);
        while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
            *--end = 0;
        if (*p == '@') {
            snprintf(err, errlen, "@%s: nested @FILE is not allowed", path);
            rc = -1;
        } else if (*p) {
            rc = aloft_targets_add(ts, p, port, err, errlen);
        }
    }
    fclose(f);
    return rc;
}

int aloft_targets_add(struct aloft_targets *ts, const char *word, unsigned default_port, char *err, size_t errlen)
{
    if (word[0] == '@')
        return add_file(ts, word + 1, default_port, err, errlen);
    char host[80];
    unsigned port = default_port;
    snprintf(host, sizeof host, "%s", word);
    char *slash = strchr(host, '/'), *colon = strrchr(host, ':');
    if (colon && (!slash || colon > slash)) {
        char *end;
        unsigned long p = strtoul(colon + 1, &end, 10);
        if (*end || !p || p > 65535) {
            snprintf(err, errlen, "target '%s': bad port", word);
            return -1;
        }
        port = (unsigned)p;
        *colon = 0;
    }
    if (!host[0]) {
        snprintf(err, errlen, "target '%s': no host", word);
        return -1;
    }
    if (!slash)
        return push(ts, host, port, false, err, errlen);
    *slash = 0;
    char *end;
    unsigned long bits = strtoul(slash + 1, &end, 10);
    struct in_addr a;
    if (*end || end == slash + 1 || bits > 32 || inet_pton(AF_INET, host, &a) != 1) {
        snprintf(err, errlen, "target '%s' is not a CIDR range like 127.0.0.0/28", word);
        return -1;
    }
    if (bits < 20) {
        snprintf(err, errlen, "range '%s' is too large (at most a /20, %d addresses)", word, ALOFT_TARGETS_MAX);
        return -1;
    }
    uint32_t base = ntohl(a.s_addr), mask = bits ? ~0u << (32 - bits) : 0, count = ~mask + 1;
    base &= mask;
    for (uint32_t i = 0; i < count; i++) {
        /* a /31 or /32 has no network or broadcast address to skip */
        if (count > 2 && (i == 0 || i == count - 1))
            continue;
        struct in_addr x = {.s_addr = htonl(base + i)};
        char ip[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &x, ip, sizeof ip);
        if (push(ts, ip, port, true, err, errlen))
            return -1;
    }
    return 0;
}

void aloft_targets_free(struct aloft_targets *ts)
{
    free(ts->t);
    ts->t = NULL;
    ts->n = ts->cap = 0;
}
