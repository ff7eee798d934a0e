/* libFuzzer harness: the device status JSON parser (host/fleet.c), fed the
 * way a status transfer is: the body collected by aloft_body_write in the
 * pieces libcurl delivers (sizes from the first byte), then parsed. Checked:
 * the body stays capped and NUL-terminated, every string of the result is
 * terminated inside its field, and ok matches the return value. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fleet.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_devstatus: %s\n", what);
    abort();
}

#define TERMINATED(field)                                                                                              \
    do {                                                                                                               \
        if (!memchr(s.field, 0, sizeof s.field))                                                                       \
            fail(#field " is not terminated");                                                                         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t piece = (size_t)data[0] * 97 + 1;
    data++;
    size--;

    static struct aloft_body body;
    body.len = 0;
    body.data[0] = 0;
    for (size_t at = 0; at < size;) {
        size_t n = size - at < piece ? size - at : piece;
        char *copy = malloc(n);
        if (!copy)
            abort();
        memcpy(copy, data + at, n);
        if (aloft_body_write(copy, 1, n, &body) != n)
            fail("aloft_body_write did not take every byte");
        free(copy);
        at += n;
    }
    if (body.len >= sizeof body.data || body.data[body.len] != 0)
        fail("the body overflowed or is not terminated");
    size_t expect = size < sizeof body.data - 1 ? size : sizeof body.data - 1;
    if (body.len != expect || memcmp(body.data, data, expect))
        fail("the body is not the bytes written");

    struct aloft_devstatus s;
    bool ok = aloft_devstatus_parse(body.data, &s);
    if (ok != s.ok)
        fail("the return value and s.ok disagree");
    TERMINATED(error);
    TERMINATED(version);
    TERMINATED(project);
    TERMINATED(chip);
    TERMINATED(running);
    TERMINATED(next);
    TERMINATED(state);
    TERMINATED(reset_reason);
    TERMINATED(mac);
    if (!ok && s.error[0] == 0)
        fail("a failure says nothing");
    return 0;
}
