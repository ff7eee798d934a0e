/* aloft host: synthesised ESP app images for tests and the simulator, and the
 * simulator record that tells aloft-node how such a firmware behaves.
 *
 * A made image is a valid ESP app image (FORMATS.md §3) for the chosen chip:
 * the bootloader, esptool image_info and aloft_image_feed accept it. Layout,
 * like what esptool elf2image writes:
 *
 *   #  load address              contents
 *   0  DROM (flash-mapped)       esp_app_desc_t (so at file offset 0x20), rodata
 *   1  DRAM                      initialised data
 *   2  IRAM                      code; the entry point is in here
 *   3  0x00000000 (padding)      the simulator record if any, then zeros, so
 *                                that segment 4's data lands on file offset
 *                                0x10020: flash-mapped segments must sit at
 *                                their load address modulo the 64 KB MMU page
 *   4  IROM (flash-mapped)       code; --size grows it
 *
 * then the checksum and the appended SHA-256. Every byte is derived from the
 * options: the same options give the same bytes. Segment contents are
 * pseudo-random (incompressible); IROM's depend only on chip and project, so
 * two versions of one project differ mostly in the small segments, like two
 * real releases.
 *
 * The simulator record. A real bootloader never loads a segment whose load
 * address is below 0x10000000 (ESP-IDF reserves those for padding), so the
 * record rides in such a segment without changing what a device would do:
 *
 *   off  size  field
 *   0    16    magic "aloft-sim-rec-1\0"
 *   16   n     text, NUL-terminated, inside the segment: lines "key=value"
 *              separated by '\n'. Keys: "behaviour" (required), one of
 *                panic-on-boot        panics during boot, every boot
 *                hang                 boots but never serves nor confirms;
 *                                     only a reset ends it
 *                no-confirm           runs and serves, never marks itself valid
 *                confirm-after=SECS   runs, marks itself valid after SECS
 *                                     seconds (0..86400)
 *              Unknown keys are ignored, so later records stay readable.
 *
 * An image without a record (every real ESP-IDF image) is healthy firmware:
 * it boots, serves and confirms itself at once. */
#ifndef ALOFT_HOST_IMAGE_MAKE_H
#define ALOFT_HOST_IMAGE_MAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ALOFT_SIM_RECORD_MAGIC "aloft-sim-rec-1" /* 16 bytes with its NUL */
#define ALOFT_SIM_RECORD_MAGIC_BYTES 16u
#define ALOFT_SIM_CONFIRM_AFTER_MAX 86400u

enum aloft_sim_behaviour {
    ALOFT_SIM_HEALTHY,       /* no record: boots, serves, confirms at once */
    ALOFT_SIM_PANIC_ON_BOOT,
    ALOFT_SIM_HANG,
    ALOFT_SIM_NO_CONFIRM,
    ALOFT_SIM_CONFIRM_AFTER, /* confirm_after_s */
};

struct aloft_sim_record {
    bool present; /* the image carries a record */
    enum aloft_sim_behaviour behaviour;
    uint32_t confirm_after_s;
};

struct aloft_image_make_opts {
    uint16_t chip_id;        /* aloft_chip_id("esp32s3")... */
    const char *project;     /* 1..31 bytes */
    const char *version;     /* 1..31 bytes */
    uint32_t secure_version; /* anti-rollback counter */
    uint32_t size;           /* 0: the natural size (about 70 KB); else the file
                              * is exactly size rounded down to a multiple of 16 */
    const char *sim;         /* NULL: no record; else a behaviour, e.g. "hang" */
};

/* Build an image into a malloc'd *out of *len bytes. Returns 0,
 * ALOFT_E_CHIP (unknown chip id), ALOFT_E_INVAL (project or version empty or
 * longer than 31 bytes, unknown sim behaviour, size above 16 MB),
 * ALOFT_E_NOSPC (size below the smallest image: *len is set to that
 * smallest size, *out to NULL), or ALOFT_E_IO (out of memory). */
int aloft_image_make(const struct aloft_image_make_opts *o, uint8_t **out, size_t *len);

/* Parse a behaviour as given to --sim ("hang", "confirm-after=30") into
 * *rec (present = true). Returns 0 or ALOFT_E_INVAL. */
int aloft_sim_behaviour_parse(const char *text, struct aloft_sim_record *rec);

/* The behaviour as text ("healthy", "confirm-after=30"), into buf (n bytes,
 * 32 are enough). Returns buf. */
const char *aloft_sim_behaviour_format(const struct aloft_sim_record *rec, char *buf, size_t n);

/* Find the record of an image through its segment table. Returns 0 with
 * *rec filled (present = false, behaviour ALOFT_SIM_HEALTHY when there is no
 * record), ALOFT_E_MAGIC or ALOFT_E_SEGMENTS (not an ESP image),
 * ALOFT_E_TRUNCATED (the segment table runs past len) or ALOFT_E_CORRUPT (a
 * record whose text is unterminated or has no valid behaviour). It does not
 * verify the image: that is aloft_image_feed's job. */
int aloft_sim_record_parse(const uint8_t *image, size_t len, struct aloft_sim_record *rec);

#endif
