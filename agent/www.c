/* aloft agent: the frontend's A/B slots (PROTOCOLS.md §2) — their status,
 * the switch after an upload or a rollback, and the files of the active
 * slot. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "agent_private.h"
#include "aloft/err.h"
#include "push_private.h"

/* Does slot p hold a LittleFS image that mounts? */
static bool slot_valid(struct aloft_agent *a, const struct aloft_part *p)
{
    return a->port->www.check && a->port->www.check(a->port->www.ctx, p) == 0;
}

void aloft_www_status(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply)
{
    struct aloft_jw w;
    aloft_jw_begin(&w, p->buf, p->cap);
    if (a->www[0])
        aloft_jw_num(&w, "active_slot", a->www_slot);
    else
        aloft_jw_null(&w, "active_slot");
    aloft_jw_array(&w, "slots");
    for (int i = 0; i < 2; i++) {
        if (!a->www[i])
            continue;
        aloft_jw_object(&w, NULL);
        aloft_jw_str(&w, "label", a->www[i]->label);
        aloft_jw_num(&w, "size", a->www[i]->size);
        /* the active slot was mounted at start; the other is checked now */
        aloft_jw_bool(&w, "valid", i == a->www_slot ? a->www_ok : slot_valid(a, a->www[i]));
        aloft_jw_close(&w, '}');
    }
    aloft_jw_close(&w, ']');
    aloft_jw_object(&w, "firmware");
    aloft_agent_status_fields(a, &w);
    aloft_jw_close(&w, '}');
    aloft_push_json(p, reply, 200, aloft_jw_end(&w));
}

int aloft_www_commit(struct aloft_agent *a, const struct aloft_part *slot)
{
    if (!slot_valid(a, slot))
        return 1;
    return aloft_agent_put(a, "www/slot", slot == a->www[1] ? "1" : "0");
}

void aloft_www_rollback(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply)
{
    int other = aloft_agent_www_inactive(a);
    if (other < 0) {
        aloft_push_error(p, reply, 404, "no_frontend_slots", aloft_agent_no_www);
        return;
    }
    if (a->busy || !slot_valid(a, a->www[other])) {
        aloft_push_error(p, reply, 409, "no_rollback",
                         a->busy ? "an upload is in progress" : "the other frontend slot holds no valid LittleFS image");
        return;
    }
    int rc = aloft_agent_put(a, "www/slot", other ? "1" : "0");
    if (rc) {
        aloft_push_error(p, reply, 500, "flash_error", aloft_strerror(rc));
        return;
    }
    struct aloft_jw w;
    aloft_jw_begin(&w, p->buf, p->cap);
    aloft_jw_str(&w, "status", "ok");
    aloft_jw_str(&w, "message", "Frontend rolled back. Rebooting...");
    aloft_jw_num(&w, "active_slot", (uint64_t)other);
    aloft_push_json(p, reply, 200, aloft_jw_end(&w));
    aloft_agent_log(a, "ota: frontend rolled back to %s; rebooting", a->www[other]->label);
    aloft_agent_restart(a);
}

static const char *mime_type(const char *path)
{
    static const char *const types[][2] = {
        {".html", "text/html; charset=utf-8"}, {".htm", "text/html; charset=utf-8"},
        {".js", "text/javascript"},            {".mjs", "text/javascript"},
        {".css", "text/css"},                  {".json", "application/json"},
        {".svg", "image/svg+xml"},             {".png", "image/png"},
        {".ico", "image/x-icon"},              {".txt", "text/plain; charset=utf-8"},
        {".wasm", "application/wasm"},         {".woff2", "font/woff2"},
        {".map", "application/json"},          {".jpg", "image/jpeg"},
    };
    const char *dot = strrchr(path, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof types[0]; i++)
        if (!strcasecmp(dot, types[i][0]))
            return types[i][1];
    return "application/octet-stream";
}

void aloft_www_file(struct aloft_agent *a, struct aloft_push *p, const struct aloft_push_request *r,
                    struct aloft_push_reply *reply)
{
    const struct aloft_www_fs *fs = &a->port->www;
    void *ctx = fs->ctx;
    if (!a->www_ok) { /* advice only where it can be followed */
        aloft_push_error(p, reply, 404, a->www[0] ? "no_frontend" : "no_frontend_slots",
                         a->www[0] ? "no frontend is installed: POST a www.bin to /api/ota/frontend"
                                   : aloft_agent_no_www);
        return;
    }
    size_t n = strlen(r->path);
    if (!n || n >= ALOFT_PUSH_PATH_MAX || strstr(r->path, "..")) {
        aloft_push_error(p, reply, 404, "not_found", "no such file");
        return;
    }
    char path[ALOFT_PUSH_PATH_MAX + 16], gz[sizeof path];
    const char *index = r->path[n - 1] == '/' ? "index.html" : "";
    snprintf(path, sizeof path, "%s%s", r->path, index);
    snprintf(gz, sizeof gz, "%s%s.gz", r->path, index);
    /* name.gz when the client takes gzip, or when it is the only copy */
    uint32_t size;
    bool gzip = false;
    if (fs->stat(ctx, gz, &size) == 0 && r->accept_encoding && strstr(r->accept_encoding, "gzip"))
        gzip = true;
    else if (fs->stat(ctx, path, &size) != 0 && fs->stat(ctx, gz, &size) == 0)
        gzip = true;
    else if (fs->stat(ctx, path, &size) != 0) {
        aloft_push_error(p, reply, 404, "not_found", "no such file");
        return;
    }
    snprintf(p->path, sizeof p->path, "%s", gzip ? gz : path);
    /* a file that stats but does not read is refused before the headers go */
    uint8_t first;
    int rc = size ? fs->read(ctx, p->path, 0, &first, 1) : 0;
    if (rc < 0) {
        aloft_push_error(p, reply, 500, "frontend_corrupt", aloft_strerror(rc));
        return;
    }
    reply->status = 200;
    reply->content_type = mime_type(path);
    reply->content_encoding = gzip ? "gzip" : NULL;
    reply->vary_encoding = true;
    reply->file = true;
    reply->file_len = size;
}
