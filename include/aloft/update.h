/* aloft: the update writer (begin, write, end, set-boot, abort), as ESP-IDF's
 * esp_ota_begin/write/end/set_boot_partition but verifying as it writes. */
#ifndef ALOFT_UPDATE_H
#define ALOFT_UPDATE_H

#include <stddef.h>
#include <stdint.h>

#include "aloft/boot.h"
#include "aloft/image.h"

struct aloft_update {
    struct aloft_boot *boot;
    const struct aloft_part *target;
    uint32_t written;
    uint8_t state; /* private: idle, writing, verified, failed */
    struct aloft_image_verifier v;
};

/* Start an update of target (NULL: the next update slot). Refuses the running
 * slot (ALOFT_E_RUNNING) and any update while the running app is still
 * PENDING_VERIFY (ALOFT_E_STATE); erases the whole target slot so no stale
 * tail of an older image survives. Returns 0, ALOFT_E_NOTFOUND (no slot),
 * ALOFT_E_INVAL, ALOFT_E_RUNNING, ALOFT_E_STATE or ALOFT_E_IO. */
int aloft_update_begin(struct aloft_update *u, struct aloft_boot *b, const struct aloft_part *target);

/* Continue an interrupted update of target (NULL: the next update slot)
 * whose first `written` bytes are already in the slot: the same checks as
 * begin, then those bytes are read back from flash through the verifier
 * (nothing from before the interruption is trusted), and only then is the
 * rest of the slot erased — an interrupted program may have left bytes past
 * `written` that continuing would have to set bits in. So written must be a
 * multiple of the sector size (ALOFT_E_INVAL otherwise, or past the slot).
 * Returns 0 (write continues at `written`), begin's errors, or the image
 * error the bytes in flash give (the slot is then left as it was). */
int aloft_update_resume(struct aloft_update *u, struct aloft_boot *b, const struct aloft_part *target,
                        uint32_t written);

/* Append len bytes (any size). They are verified before they are written, so
 * nothing that fails a check reaches flash. Returns 0, ALOFT_E_STATE, an
 * image error (aloft_image_feed) or ALOFT_E_IO/ALOFT_E_POWER. After an
 * error the update is failed: only abort is allowed. */
int aloft_update_write(struct aloft_update *u, const void *data, size_t len);

/* The body has ended: complete verification. Returns 0, ALOFT_E_STATE or an
 * image error (ALOFT_E_TRUNCATED...). Nothing else on flash changes. */
int aloft_update_end(struct aloft_update *u);

/* After a successful end: make the target boot next (otadata written last).
 * Returns 0, ALOFT_E_STATE or ALOFT_E_IO. */
int aloft_update_set_boot(struct aloft_update *u);

/* Give up. Otadata and the running app are untouched. */
void aloft_update_abort(struct aloft_update *u);

#endif
