/* libFuzzer harness: the agent's MQTT command handling (agent/mqtt.c), fed
 * any message on a command topic. The first byte's low bit says whether it
 * was retained; the rest is the payload. Checked: a trigger is handed on
 * only for a valid, non-retained ota_trigger (its URL http(s), its strings
 * terminated); a bad command leaves the state failed with bad_trigger and a
 * reason; nothing else ever changes the state. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/mqtt.h"

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_mqtt_cmd: %s\n", what);
    abort();
}

static void log_line(void *ctx, const char *line)
{
    (void)ctx;
    if (!memchr(line, 0, 400))
        fail("a log line that does not end");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const struct aloft_agent_port port = {.log = log_line};
    struct aloft_agent a;
    memset(&a, 0, sizeof a);
    a.port = &port;
    struct aloft_pull_req r;
    memset(&r, 0x55, sizeof r);
    bool retained = data[0] & 1;
    enum aloft_mqtt_action act = aloft_mqtt_command(&a, "aloft/p/d/cmd", data + 1, size - 1, retained, &r);
    if (act == ALOFT_MQTT_TRIGGER) {
        if (retained)
            fail("a retained command was taken");
        if (!memchr(r.url, 0, sizeof r.url) || !memchr(r.trigger, 0, sizeof r.trigger))
            fail("a trigger string is not terminated");
        if (strncmp(r.url, "http://", 7) && strncmp(r.url, "https://", 8))
            fail("a trigger without an http(s) URL");
        if (a.state.phase != ALOFT_PHASE_IDLE)
            fail("a good trigger changed the state");
    } else if (act == ALOFT_MQTT_BAD) {
        if (a.state.phase != ALOFT_PHASE_FAILED || strcmp(a.state.code, "bad_trigger") || !a.state.reason[0])
            fail("a bad command without a failed state saying why");
        if (!memchr(a.state.trigger, 0, sizeof a.state.trigger))
            fail("the echoed id is not terminated");
    } else if (act != ALOFT_MQTT_IGNORED || a.state.phase != ALOFT_PHASE_IDLE) {
        fail("an ignored command changed the state");
    }
    return 0;
}
