/* aloft agent (private): what the agent's modules share and the glue
 * never calls. */
#ifndef ALOFT_AGENT_PRIVATE_H
#define ALOFT_AGENT_PRIVATE_H

#include "aloft/agent.h"
#include "json.h"

/* The fields of GET /ota/status into an open object (agent.c). */
void aloft_agent_status_fields(struct aloft_agent *a, struct aloft_jw *w);

/* n bytes as 2n lower-case hex digits and a NUL. */
void aloft_agent_hex(const uint8_t *b, size_t n, char *out);

/* Is s exactly len hex digits? lower: A-F to a-f in place. */
bool aloft_agent_is_hex(const char *s, size_t len);
void aloft_agent_lower(char *s);

/* The sentence for an update error: which chip this device is for
 * ALOFT_E_CHIP, why a pending image blocks for ALOFT_E_STATE, else
 * aloft_strerror. */
void aloft_agent_why(const struct aloft_agent *a, int err, char *out, size_t cap);

/* Ask the port to restart (the glue replies first); confirms stop here. */
void aloft_agent_restart(struct aloft_agent *a);

/* Refusals said by more than one way in (one copy each in flash): the
 * running image is pending verification; an update holds the slot; the
 * table has no frontend slots. */
extern const char aloft_agent_pending_verify[], aloft_agent_busy[], aloft_agent_no_www[];

/* The outcome of the update that restarted the device, once known
 * (pull.c): confirmed says whether the running app marked itself valid. */
void aloft_pull_outcome(struct aloft_agent *a, bool confirmed);

/* Load the trusted key digests (sig.c): list ("HEX,HEX,HEX"), or when
 * NULL or empty the setting security/trusted_keys. */
void aloft_agent_sig_load(struct aloft_agent *a, const char *list);

/* May the image written at addr become bootable? An app image (in: its
 * verifier's info) is signed up to in->signed_len; a frontend image (in
 * NULL, len bytes) when it ends in a signature sector. Returns 0 (signed by
 * a trusted key, or no key is trusted), ALOFT_E_SIGNATURE with *code
 * ("unsigned", "bad_signature", "untrusted_key") and why, or a flash error. */
struct aloft_image_info;
int aloft_agent_sig_check(struct aloft_agent *a, uint32_t addr, uint32_t len, const struct aloft_image_info *in,
                          const char **code, char *why, size_t cap);

#endif
