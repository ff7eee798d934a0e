/* aloft: delta updates. A patch turns the image in the running slot (the
 * base) into a new image; the decoder reads the base by offset, never holds
 * more of either image than a few small buffers, and writes the result
 * sequentially. docs/delta.md describes the format. */
#ifndef ALOFT_DELTA_H
#define ALOFT_DELTA_H

#include <stddef.h>
#include <stdint.h>

#include "aloft/crypto.h"
#include "aloft/update.h"

#define ALOFT_DELTA_MAGIC "ALDP"
#define ALOFT_DELTA_VERSION 3
#define ALOFT_DELTA_HEADER_BYTES 84

/* The header, little-endian on the wire:
 *   0  magic "ALDP"      4  version (3)   5  flags (0)   6  log2 of the block size   7  0
 *   8  base size        12  result size  16  base SHA-256  48  result SHA-256
 *  80  CRC-32 (zlib) of bytes 0..79 */
struct aloft_delta_header {
    uint8_t block_shift;
    uint32_t base_size, result_size;
    uint8_t base_sha256[32], result_sha256[32];
};

/* Parse and check a header (magic, version, CRC, sizes). Returns 0,
 * ALOFT_E_MAGIC (not a patch), ALOFT_E_HEADER (another version, a block size
 * outside 4 KB..1 MB, a size of 0) or ALOFT_E_CORRUPT (CRC). */
int aloft_delta_header_parse(struct aloft_delta_header *h, const uint8_t raw[ALOFT_DELTA_HEADER_BYTES]);

/* The coding model: an LZMA-like token stream (literals, matches anywhere
 * in base ‖ result-so-far, four repeat distances) with two additions: the
 * diff literal (the byte's difference from the byte at the last repeat
 * distance) and the field (a pointer or an instruction's offset that moved
 * code changed: the old one plus a recent delta), coded with an adaptive
 * binary range coder. These numbers are
 * the format: encoder and decoder share them. */
enum {
    ALOFT_DELTA_PROB_BITS = 12, /* a probability's low 12 bits: the chance of a 0, of 4096 */
    ALOFT_DELTA_STATES = 12,
    ALOFT_DELTA_PB = 4, /* position contexts: pos & 3 */
    ALOFT_DELTA_MIN_MATCH = 2,
    ALOFT_DELTA_MAX_MATCH = 273,
    ALOFT_DELTA_LEN_BYTES = 2 + 2 * ALOFT_DELTA_PB * 8 + 256,
    ALOFT_DELTA_FIELD_TYPES = 4,
    ALOFT_DELTA_FIELD_MRU_BITS = 3,
    ALOFT_DELTA_FIELD_MRU = 1 << ALOFT_DELTA_FIELD_MRU_BITS, /* recent deltas kept per field type */

    ALOFT_DELTA_P_IS_MATCH = 0,
    ALOFT_DELTA_P_IS_REP = ALOFT_DELTA_P_IS_MATCH + ALOFT_DELTA_STATES * ALOFT_DELTA_PB,
    ALOFT_DELTA_P_IS_REP_G0 = ALOFT_DELTA_P_IS_REP + ALOFT_DELTA_STATES,
    ALOFT_DELTA_P_IS_REP_G1 = ALOFT_DELTA_P_IS_REP_G0 + ALOFT_DELTA_STATES,
    ALOFT_DELTA_P_IS_REP_G2 = ALOFT_DELTA_P_IS_REP_G1 + ALOFT_DELTA_STATES,
    ALOFT_DELTA_P_IS_REP0_LONG = ALOFT_DELTA_P_IS_REP_G2 + ALOFT_DELTA_STATES,
    ALOFT_DELTA_P_IS_DIFF = ALOFT_DELTA_P_IS_REP0_LONG + ALOFT_DELTA_STATES * ALOFT_DELTA_PB,
    ALOFT_DELTA_P_LIT = ALOFT_DELTA_P_IS_DIFF + ALOFT_DELTA_STATES * ALOFT_DELTA_PB,
    ALOFT_DELTA_P_DIFF = ALOFT_DELTA_P_LIT + 0x300, /* LZMA's matched literal */
    ALOFT_DELTA_P_LEN = ALOFT_DELTA_P_DIFF + 256,
    ALOFT_DELTA_P_REP_LEN = ALOFT_DELTA_P_LEN + ALOFT_DELTA_LEN_BYTES,
    ALOFT_DELTA_P_DIST_SLOT = ALOFT_DELTA_P_REP_LEN + ALOFT_DELTA_LEN_BYTES, /* 4 length classes, then near */
    ALOFT_DELTA_P_DIST_SPECIAL = ALOFT_DELTA_P_DIST_SLOT + 6 * 64, /* 5: a field's new delta */
    ALOFT_DELTA_P_ALIGN = ALOFT_DELTA_P_DIST_SPECIAL + 114,
    ALOFT_DELTA_P_IS_NEAR = ALOFT_DELTA_P_ALIGN + 16,
    ALOFT_DELTA_P_NEAR_REP = ALOFT_DELTA_P_IS_NEAR + ALOFT_DELTA_STATES, /* 2-bit tree */
    ALOFT_DELTA_P_NEAR_SIGN = ALOFT_DELTA_P_NEAR_REP + 4,
    ALOFT_DELTA_P_IS_FIELD = ALOFT_DELTA_P_NEAR_SIGN + 4,
    ALOFT_DELTA_P_FIELD_TYPE = ALOFT_DELTA_P_IS_FIELD + ALOFT_DELTA_STATES, /* 2-bit tree per old byte's low nibble */
    ALOFT_DELTA_P_FIELD_HIT = ALOFT_DELTA_P_FIELD_TYPE + 16 * 4,
    ALOFT_DELTA_P_FIELD_IDX = ALOFT_DELTA_P_FIELD_HIT + ALOFT_DELTA_FIELD_TYPES, /* a tree of FIELD_MRU_BITS per type */
    ALOFT_DELTA_P_FIELD_SIGN = ALOFT_DELTA_P_FIELD_IDX + ALOFT_DELTA_FIELD_TYPES * ALOFT_DELTA_FIELD_MRU,
    ALOFT_DELTA_PROBS = ALOFT_DELTA_P_FIELD_SIGN + ALOFT_DELTA_FIELD_TYPES,
};

#define ALOFT_DELTA_RATE0 2     /* a new probability moves 1/4 of the way */
#define ALOFT_DELTA_RATE_STEP 4 /* one step slower every 4 bits seen */
#define ALOFT_DELTA_RATE_MAX 4  /* at most 1/16: firmware changes character often */

/* A plain literal is coded as LZMA's matched literal against the byte at the
 * last repeat distance (0 when there is none): while its bits agree with that
 * byte's they are the context (an edited instruction often keeps its opcode).
 * A diff literal has one context: fields took what its contexts told apart. */
/* A repeat's length context (of ALOFT_DELTA_PB): whether a literal came just
 * before (the run to the next changed byte) and the position's low bit. */
#define ALOFT_DELTA_REP_LEN_CTX(state, ps) (((state) < 7 ? 2 : 0) + ((ps) & 1))

/* A field: w bytes (little-endian) that are the old ones at the last repeat
 * distance plus a delta shifted left by s, modulo 2^(8w). What moved code
 * changes: a 32-bit pointer; Xtensa's L32R (16 bits at bit 8) and CALLn/J
 * (18 bits at bit 6) offsets; RISC-V's AUIPC (20 bits at bit 12). */
#define ALOFT_DELTA_FIELD_W(t) ((t) & 1 ? 3u : 4u)
#define ALOFT_DELTA_FIELD_S(t) ((t) == 0 ? 0u : (t) == 1 ? 8u : (t) == 2 ? 12u : 6u)

/* A probability's value (the chance of a 0 bit, of 1 << PROB_BITS). */
#define ALOFT_DELTA_PVAL(p) ((unsigned)(p) & ((1u << ALOFT_DELTA_PROB_BITS) - 1))

/* Learn from one coded bit. A probability's high 4 bits count the bits it
 * has seen (to 15): it moves fast while young and settles to 1/2^RATE_MAX
 * of its error per bit, so a fresh model learns quickly. Never reaches 0 or
 * 1 << PROB_BITS. */
static inline void aloft_delta_adapt(uint16_t *p, unsigned bit)
{
    unsigned n = *p >> ALOFT_DELTA_PROB_BITS, v = ALOFT_DELTA_PVAL(*p);
    unsigned sh = ALOFT_DELTA_RATE0 + n / ALOFT_DELTA_RATE_STEP;
    if (sh > ALOFT_DELTA_RATE_MAX)
        sh = ALOFT_DELTA_RATE_MAX;
    if (bit)
        v -= v >> sh;
    else
        v += ((1u << ALOFT_DELTA_PROB_BITS) - v) >> sh;
    n += n < 15;
    *p = (uint16_t)(n << ALOFT_DELTA_PROB_BITS | v);
}

/* Where the decoder reads its dictionary and puts the result. pos counts in
 * base ‖ result: below base_size it is the base, above it the result, of
 * which read is only ever asked for bytes already given to write. */
struct aloft_delta_io {
    void *ctx;
    int (*read)(void *ctx, uint32_t pos, void *buf, size_t len);
    /* The header was accepted and the base matches: get ready to take the
     * result from offset `from` on (0, or a checkpoint's when resuming).
     * An error refuses the patch. */
    int (*start)(void *ctx, const struct aloft_delta_header *h, uint32_t from);
    int (*write)(void *ctx, const void *buf, size_t len);
};

/* The decoder's whole state: caller-allocated, nothing on the heap. */
struct aloft_delta {
    struct aloft_delta_io io;
    struct aloft_delta_header h;
    struct aloft_sha256 sha;   /* of the base, then of the result */
    uint32_t consumed;         /* patch bytes taken */
    uint32_t out;              /* result bytes decoded */
    uint32_t flushed;          /* result bytes given to write */
    uint32_t skip_to;          /* resuming: patch offset of the checkpoint */
    uint32_t ck_patch, ck_out; /* last checkpoint: a block start, all before it written */
    uint32_t range, code;
    uint32_t rep[4];
    uint32_t field[ALOFT_DELTA_FIELD_TYPES][ALOFT_DELTA_FIELD_MRU]; /* recent field deltas, newest first */
    uint32_t cache_pos;        /* dictionary position of cache[0] */
    uint16_t in_len, out_len, cache_len;
    uint8_t state, aligned, phase;
    int err;                   /* sticky */
    uint8_t in[96];
    uint8_t cache[32];
    uint8_t buf[256];          /* the header, then result bytes not yet written */
    uint16_t p[ALOFT_DELTA_PROBS];
};

/* Start decoding a patch from its first byte. */
void aloft_delta_begin(struct aloft_delta *d, const struct aloft_delta_io *io);

/* Start again at a checkpoint (see aloft_delta_checkpoint): the result's
 * first ck_out bytes are in place. Feed the patch's header (its first
 * ALOFT_DELTA_HEADER_BYTES), then the patch from offset ck_patch on. The
 * base is checked again; start() is called with from = ck_out. */
void aloft_delta_resume(struct aloft_delta *d, const struct aloft_delta_io *io, uint32_t ck_patch,
                        uint32_t ck_out);

/* Feed the next len patch bytes (any chunking). Returns 0 or the first
 * error, which stays: a header error, ALOFT_E_BASE (the base is not the
 * image the patch was made from), ALOFT_E_CORRUPT (an impossible token),
 * ALOFT_E_TRAILING (bytes after the end), or what io returned. */
int aloft_delta_write(struct aloft_delta *d, const void *data, size_t len);

/* The patch has ended: decode the rest, write it, check the result's size and
 * SHA-256. Returns 0, the sticky error, ALOFT_E_TRUNCATED or ALOFT_E_HASH. */
int aloft_delta_end(struct aloft_delta *d);

/* The last point a decode can resume from: patch offset and result bytes
 * written. Both 0 until the header is accepted. */
void aloft_delta_checkpoint(const struct aloft_delta *d, uint32_t *ck_patch, uint32_t *ck_out);

/* ---- applying a patch to the running image through the update writer ---- */

/* The base is the image in the running slot (read, never written); the
 * result goes through aloft_update_write into the update slot, so it is
 * verified as any upload is, and the decoder's dictionary reads it back. */
struct aloft_delta_update {
    struct aloft_delta d;
    struct aloft_update u;
    struct aloft_boot *b;
    const struct aloft_part *target;
};

/* Start applying a patch to b's running image, the result going to target
 * (NULL: the next update slot). Nothing is erased until the header has
 * arrived and the running image's SHA-256 matches the patch's base: then
 * aloft_update_begin runs (its errors are write's). */
void aloft_delta_update_begin(struct aloft_delta_update *du, struct aloft_boot *b, const struct aloft_part *target);

/* Continue an interrupted apply from a checkpoint (aloft_delta_checkpoint
 * of the interrupted one, kept by the caller): feed the header, then the
 * patch from ck_patch on. aloft_update_resume re-verifies the ck_out bytes
 * already in the slot. */
void aloft_delta_update_resume(struct aloft_delta_update *du, struct aloft_boot *b, const struct aloft_part *target,
                               uint32_t ck_patch, uint32_t ck_out);

/* aloft_delta_write, plus ALOFT_E_BASE when the running slot is smaller than
 * the base, and aloft_update_begin/resume/write's errors. */
int aloft_delta_update_write(struct aloft_delta_update *du, const void *data, size_t len);

/* The patch has ended: aloft_delta_end, then aloft_update_end. After 0,
 * aloft_update_set_boot(&du->u) makes the result boot next. */
int aloft_delta_update_end(struct aloft_delta_update *du);

#endif
