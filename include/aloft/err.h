/* aloft: the one error enum. Negative values, 0 for success, so a function can
 * return a size or an error. Append only: values are part of the ABI. */
#ifndef ALOFT_ERR_H
#define ALOFT_ERR_H

enum aloft_err {
    ALOFT_OK = 0,
    ALOFT_E_IO = -1,          /* flash or port I/O failed */
    ALOFT_E_INVAL = -2,       /* bad argument from the caller */
    ALOFT_E_CORRUPT = -3,     /* data failed a consistency check */
    ALOFT_E_MAGIC = -4,       /* not an ESP image: first byte is not 0xE9 */
    ALOFT_E_CHIP = -5,        /* image is for another chip */
    ALOFT_E_SEGMENTS = -6,    /* segment count is 0 or above 16 */
    ALOFT_E_SEGMENT = -7,     /* a segment header is impossible (length) */
    ALOFT_E_CHECKSUM = -8,    /* XOR checksum of segment data differs */
    ALOFT_E_HASH = -9,        /* appended SHA-256 differs */
    ALOFT_E_TRUNCATED = -10,  /* data ended before the structure did */
    ALOFT_E_NOSPC = -11,      /* does not fit the partition or buffer */
    ALOFT_E_ESP8266 = -12,    /* an ESP8266 image, not an ESP32-family one */
    ALOFT_E_HEADER = -13,     /* an image header field has an impossible value */
    ALOFT_E_TRAILING = -14,   /* bytes after the end of the image */
    ALOFT_E_BUSY = -15,       /* another operation is in progress */
    ALOFT_E_STATE = -16,      /* not allowed in the current state */
    ALOFT_E_RUNNING = -17,    /* target is the running partition */
    ALOFT_E_NOTFOUND = -18,   /* no such partition / entry */
    ALOFT_E_AUTH = -19,       /* authentication failed */
    ALOFT_E_SIGNATURE = -20,  /* signature missing or invalid */
    ALOFT_E_PART_MAGIC = -21, /* partition entry magic is wrong */
    ALOFT_E_PART_MD5 = -22,   /* partition table MD5 entry does not match */
    ALOFT_E_PART_ALIGN = -23, /* partition offset or size misaligned */
    ALOFT_E_PART_OVERLAP = -24, /* two partitions overlap */
    ALOFT_E_PART_RANGE = -25, /* partition outside the flash or before the table */
    ALOFT_E_PART_LABEL = -26, /* label empty or duplicated */
    ALOFT_E_PART_TYPE = -27,  /* unknown type/subtype name or illegal combination */
    ALOFT_E_SYNTAX = -28,     /* text (CSV) does not parse */
    ALOFT_E_NOBOOT = -29,     /* no bootable image on the flash */
    ALOFT_E_NOROLLBACK = -30, /* no other valid image to roll back to */
    ALOFT_E_POWER = -31,      /* simulated power loss: flash is gone until reboot */
    ALOFT_E_NOR = -32,        /* program would set a bit: the sector was not erased */
    ALOFT_E_TOOMANY = -33,    /* too many entries for a fixed-size table */
    ALOFT_E_PART_KIND = -34,  /* partition breaks a rule for its kind (otadata size/count, ota slots, nvs) */
    ALOFT_E_BASE = -35,       /* a delta patch made from another image than the running one */
};

/* A sentence describing err (never NULL; unknown codes get a generic text). */
const char *aloft_strerror(int err);

#endif
