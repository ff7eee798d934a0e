/* aloft host: making delta patches (the encoder) and applying them to files
 * with the device's own decoder (core/delta.c). */
#ifndef ALOFT_HOST_DELTA_H
#define ALOFT_HOST_DELTA_H

#include <stddef.h>
#include <stdint.h>

/* Progress of a long make: done of total result bytes encoded. */
typedef void (*aloft_delta_progress_fn)(void *ctx, size_t done, size_t total);

/* Make a patch that turns base into result. block_shift: log2 of the block
 * size (12..20; 0 for the default, 16): a decode can resume at every block
 * start, and each block starts its model afresh. On success *patch is
 * malloc'd. Returns 0, ALOFT_E_INVAL (an empty image, or one of 2 GB or more),
 * ALOFT_E_NOSPC (out of memory). */
int aloft_delta_make(const uint8_t *base, size_t base_len, const uint8_t *result, size_t result_len,
                     unsigned block_shift, aloft_delta_progress_fn progress, void *progress_ctx,
                     uint8_t **patch, size_t *patch_len);

/* Apply a patch in memory, through the same decoder a device runs. On success
 * *result is malloc'd. Returns 0 or the decoder's error (ALOFT_E_BASE,
 * ALOFT_E_TRUNCATED, ALOFT_E_HASH, ALOFT_E_CORRUPT, a header error...). */
int aloft_delta_apply(const uint8_t *base, size_t base_len, const uint8_t *patch, size_t patch_len,
                      uint8_t **result, size_t *result_len);

#endif
