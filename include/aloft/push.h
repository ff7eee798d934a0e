/* aloft: the device's HTTP API (PROTOCOLS.md §1 and §2) as functions. The
 * glue parses the request line and the few headers that matter, calls
 * aloft_push_begin, then aloft_push_body with each chunk of the body as it
 * arrives, then aloft_push_end; the agent fills the reply. Once the request
 * is over — replied, or its connection gone early — aloft_push_abort.
 *
 *   GET  /ota/status                firmware status (no auth)
 *   POST /ota                       raw app image → the next update slot
 *   GET  /api/ota/status            www slots and firmware status
 *   POST /api/ota/frontend          raw LittleFS image → the inactive www slot
 *   POST /api/ota/frontend/rollback switch back to the other www slot
 *   POST /api/ota/pull              a trigger, as MQTT brings it (pull.h):
 *                                   the glue runs the job (start_pull)
 *   GET  /api/ota/state             the update state document
 *   GET  anything else              a file of the active www slot
 *
 * A request that changes the device (every POST) needs the PSK when one is
 * provisioned, is refused without one unless the agent runs open, takes
 * exactly one content type (never one a page of another site can send
 * without a CORS preflight, which the device never allows), and is refused
 * (403 cross_site) when a browser says it comes from a page of another
 * origin.
 *
 * With trusted signing keys (agent.h, security/trusted_keys) an app or
 * frontend image not signed by one is refused with 422 and the code
 * unsigned, bad_signature or untrusted_key, once the whole body is in.
 *
 * Every refusal is a JSON body {"status":"error","error":CODE,"message":…}
 * and leaves the running image, otadata, the settings and the active www
 * slot as they were (the slot being written may be left erased). A successful update asks port->restart after its
 * reply: the glue sends the reply first. */
#ifndef ALOFT_PUSH_H
#define ALOFT_PUSH_H

#include <stdbool.h>
#include <stdint.h>

#include "aloft/agent.h"
#include "aloft/pull.h"
#include "aloft/update.h"

#define ALOFT_PUSH_TRIGGER_MAX 2048 /* a trigger's JSON body */
#define ALOFT_PUSH_PATH_MAX 256     /* a static file's path */

/* What the glue parsed. Absent headers are NULL; content_length is -1
 * without Content-Length (a chunked body). */
struct aloft_push_request {
    const char *method;          /* "GET", "HEAD", "POST"… */
    const char *path;            /* without the query */
    const char *authorization;
    const char *content_type;
    const char *accept_encoding;
    const char *host;            /* Host, Origin and Sec-Fetch-Site: whether a */
    const char *origin;          /* browser sent it from a page of another site */
    const char *fetch_site;
    int64_t content_length;
};

/* The answer. body points into the caller's buffer (aloft_push_begin's
 * buf) for JSON; for a file (file_len > 0 or file) the glue reads the body
 * with aloft_push_read. */
struct aloft_push_reply {
    int status;
    const char *content_type;
    const char *content_encoding; /* "gzip" or NULL */
    bool vary_encoding;           /* add Vary: Accept-Encoding */
    bool file;                    /* body: aloft_push_read, file_len bytes */
    uint32_t file_len;
    const char *body;
    size_t len;
    bool start_pull;              /* not final: the glue calls aloft_pull_start
                                   * with the request's pull, then
                                   * aloft_push_pull_reply */
};

/* One request. Caller-allocated, one per connection; at most one of them
 * holds the update slot (agent->busy). */
struct aloft_push {
    uint8_t kind;            /* private */
    bool holds;              /* holds agent->busy */
    bool started;            /* the target is erased / the update begun, not ended */
    int status;              /* refusal decided: replied once the body is in */
    const char *code;
    char message[200];
    uint64_t received, expected;
    uint32_t resume;         /* a delta push resumed at this patch offset (0: from the start) */
    uint32_t owner;          /* a patch's: what its checkpoint is kept with (a->dck.owner) */
    const struct aloft_part *slot;
    struct aloft_update u;
    char path[ALOFT_PUSH_PATH_MAX + 16]; /* + "index.html.gz" */
    size_t trigger_len;
    char trigger[ALOFT_PUSH_TRIGGER_MAX];
    struct aloft_pull_req pull; /* the parsed trigger (reply.start_pull) */
    char *buf;               /* the reply buffer */
    size_t cap;
};

/* A new request. buf (cap bytes, at least 1 KB) holds JSON replies and
 * must live until the reply is sent. Returns 1 when *reply is final (the
 * body, if any, is to be discarded), 0 when the body is wanted: then
 * aloft_push_body for each chunk and aloft_push_end. */
int aloft_push_begin(struct aloft_agent *a, struct aloft_push *p, const struct aloft_push_request *r, char *buf,
                     size_t cap, struct aloft_push_reply *reply);

/* The next len bytes of the body. A refusal decided here (an image error,
 * a flash error) is kept and replied by aloft_push_end once the whole body
 * is in, as clients expect (curl may not read a reply sent while it is
 * still sending); the rest of the body is discarded. */
void aloft_push_body(struct aloft_agent *a, struct aloft_push *p, const void *data, size_t len);

/* The body is complete: verify, switch, reply. Fills *reply, or, for a
 * trigger that parses, sets only reply->start_pull. */
void aloft_push_end(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply);

/* The request is over (reply sent, or the connection dropped): release
 * what it holds. Idempotent. An unfinished update is abandoned: otadata and
 * the running image were never touched. */
void aloft_push_abort(struct aloft_agent *a, struct aloft_push *p);

/* POST /api/ota/pull's reply once the glue started the job: rc is what
 * aloft_pull_start(a, job, &p->pull) returned. 202 accepted, 409 busy or
 * already_handled, or the refusal in job->code and job->reason. */
void aloft_push_pull_reply(struct aloft_agent *a, struct aloft_push *p, int rc, const struct aloft_pull *job,
                           struct aloft_push_reply *reply);

/* A file reply's bytes [off, off + len). Returns the count or an error. */
int aloft_push_read(struct aloft_agent *a, struct aloft_push *p, uint32_t off, void *buf, size_t len);

#endif
