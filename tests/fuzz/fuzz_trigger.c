/* libFuzzer harness: the agent's ota_trigger parser (agent/trigger.c) and
 * its JSON reader (agent/json.c), fed what an MQTT message or POST
 * /api/ota/pull may carry. Checked: a refusal says why; an accepted trigger
 * has an http(s) URL, a sha256 that is empty or 64 lower-case hex digits,
 * and every string terminated inside its field; and against cJSON (the
 * parser ESP-IDF bundles): what the reader takes as well-formed, cJSON
 * parses too, and an accepted trigger's URL is the one cJSON reads. */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/pull.h"
#include "json.h"

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
    const char *text = (const char *)data;
    cJSON *j = cJSON_ParseWithLength(text, size);
    if (aloft_json_valid(text, size) && !j && !memchr(text, 0, size))
        fail("the reader took as JSON what cJSON does not parse");
    struct aloft_pull_req r;
    char why[200];
    memset(why, 0, sizeof why);
    int rc = aloft_trigger_parse(text, size, &r, why, sizeof why);
    if (rc != 0 && rc != ALOFT_E_SYNTAX)
        fail("returned neither 0 nor ALOFT_E_SYNTAX");
    if (rc) {
        if (!why[0] || !memchr(why, 0, sizeof why))
            fail("a refusal without a reason");
        cJSON_Delete(j);
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
    const cJSON *url = cJSON_GetObjectItemCaseSensitive(j, "url");
    if (!cJSON_IsString(url) || strcmp(url->valuestring, r.url))
        fail("the URL differs from cJSON's");
    cJSON_Delete(j);
    return 0;
}
