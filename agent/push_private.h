/* aloft agent (private): what push.c (the device API's requests and
 * updates) and www.c (the frontend slots and their files) share. */
#ifndef ALOFT_PUSH_PRIVATE_H
#define ALOFT_PUSH_PRIVATE_H

#include "aloft/push.h"

/* What a request is (aloft_push.kind); ble.c starts patches too. */
enum aloft_push_kind { KIND_REPLIED, KIND_FIRMWARE, KIND_FRONTEND, KIND_PULL, KIND_DELTA };

/* A patch's checkpoint is saved (delta/ck) whenever this many more bytes of
 * the patch are behind it: a power cut costs at most about this much again
 * (15 s over BLE at MTU 23, a quarter second at 1 Mbit/s), the settings'
 * flash is not written for every block, and a short patch never writes them. */
#define ALOFT_DELTA_SAVE_EVERY 32768

/* push.c: keep a->dck as the patch's resume point, in RAM and in the
 * settings (keep), or forget it (the settings are written only if it was
 * there). */
void aloft_push_delta_keep(struct aloft_agent *a, bool keep);
/* push.c: keep the decoder's checkpoint as the patch's resume point (with
 * owner: 0 for POST /ota, ALOFT_PULL_CK_OWNER for a pull, odd for BLE) once
 * it is at least `ahead` patch bytes past the one kept. */
void aloft_push_delta_checkpoint(struct aloft_agent *a, uint32_t owner, uint32_t ahead);
#define ALOFT_PULL_CK_OWNER 2

/* push.c: a JSON reply of len bytes already in p->buf (an error reply when
 * len is negative: it did not fit), and an error reply (its code and
 * message also in p->code and p->message). */
void aloft_push_json(struct aloft_push *p, struct aloft_push_reply *reply, int status, int len);
void aloft_push_error(struct aloft_push *p, struct aloft_push_reply *reply, int status, const char *code,
                      const char *message);

/* push.c: start an upload of len bytes into the next app slot or, for
 * frontend, the inactive www slot, once the caller has authorised it (the
 * HTTP API, espota.c): checks the size, takes the update slot, erases the
 * target. p is zeroed but for buf and cap, and received: a multiple of the
 * flash sector already in the target from an interrupted upload (ble.c),
 * which is read back and verified (aloft_update_resume) instead of erased.
 * Returns 0, then aloft_push_body,
 * aloft_push_end and aloft_push_abort as for a request; or 1 with the
 * refusal in *reply. */
int aloft_push_upload_begin(struct aloft_agent *a, struct aloft_push *p, bool frontend, uint64_t len,
                            struct aloft_push_reply *reply);

/* www.c: GET /api/ota/status, POST /api/ota/frontend/rollback (the caller
 * checked the PSK) and GET of a file of the active slot. */
void aloft_www_status(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply);
void aloft_www_rollback(struct aloft_agent *a, struct aloft_push *p, struct aloft_push_reply *reply);
void aloft_www_file(struct aloft_agent *a, struct aloft_push *p, const struct aloft_push_request *r,
                    struct aloft_push_reply *reply);

/* www.c: make the written slot the active one from the next boot. Returns
 * 0, 1 when it holds no LittleFS image that mounts, or a settings error. */
int aloft_www_commit(struct aloft_agent *a, const struct aloft_part *slot);

#endif
