/* libFuzzer harness: the ota_trigger parser of aloft-node
 * (apps/aloft-node/trigger.c), fed what an MQTT message or POST
 * /api/ota/pull may carry. Checked: a refusal says why; an accepted
 * trigger has an http(s) URL, a sha256 that is empty or 64 lower-case hex
 * digits, and every string terminated inside its field. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "node.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_trigger: %s\n", what);
    abort();
}

#define TERMINATED(field)                                                                                              \
    do {                                                                                                               \
        if (!memchr(r.field, 0, sizeof r.field))                                                                       \
            fail(#field " is not terminated");                                                                         \
    } while (0)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct node_pull_req r;
    char why[200];
    memset(why, 0, sizeof why);
    int rc = node_pull_parse((const char *)data, size, &r, why, sizeof why);
    if (rc != 0 && rc != -1)
        fail("returned neither 0 nor -1");
    if (rc) {
        if (!why[0] || !memchr(why, 0, sizeof why))
            fail("a refusal without a reason");
        return 0;
    }
    TERMINATED(url);
    TERMINATED(version);
    TERMINATED(sha256);
    TERMINATED(token);
    TERMINATED(trigger);
    if (strncmp(r.url, "http://", 7) && strncmp(r.url, "https://", 8))
        fail("accepted a URL that is not http(s)");
    if (r.sha256[0] && (strlen(r.sha256) != 64 || strspn(r.sha256, "0123456789abcdef") != 64))
        fail("accepted a sha256 that is not 64 lower-case hex digits");
    return 0;
}
