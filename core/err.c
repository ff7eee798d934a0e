/* aloft: error sentences. */
#include "aloft/err.h"

const char *aloft_strerror(int err)
{
    switch (err) {
    case ALOFT_OK: return "success";
    case ALOFT_E_IO: return "flash I/O failed";
    case ALOFT_E_INVAL: return "invalid argument";
    case ALOFT_E_CORRUPT: return "data is corrupt";
    case ALOFT_E_MAGIC: return "not an ESP app image (first byte is not 0xE9)";
    case ALOFT_E_CHIP: return "image is built for another chip";
    case ALOFT_E_SEGMENTS: return "image segment count is 0 or more than 16";
    case ALOFT_E_SEGMENT: return "image segment header is invalid (length not a multiple of 4, too large, or past the end)";
    case ALOFT_E_CHECKSUM: return "image checksum does not match its segment data";
    case ALOFT_E_HASH: return "image SHA-256 does not match its contents";
    case ALOFT_E_TRUNCATED: return "data ended too early (truncated)";
    case ALOFT_E_NOSPC: return "does not fit in the partition";
    case ALOFT_E_ESP8266: return "this is an ESP8266 image; aloft updates ESP32-family chips";
    case ALOFT_E_HEADER: return "image header has an impossible value";
    case ALOFT_E_TRAILING: return "unexpected data after the end of the image";
    case ALOFT_E_BUSY: return "another operation is in progress";
    case ALOFT_E_STATE: return "not allowed in the current state";
    case ALOFT_E_RUNNING: return "refusing to write the running partition";
    case ALOFT_E_NOTFOUND: return "no such partition";
    case ALOFT_E_AUTH: return "authentication failed";
    case ALOFT_E_SIGNATURE: return "signature is missing or invalid";
    case ALOFT_E_PART_MAGIC: return "partition table entry has a bad magic";
    case ALOFT_E_PART_MD5: return "partition table MD5 does not match";
    case ALOFT_E_PART_ALIGN: return "partition offset or size is misaligned";
    case ALOFT_E_PART_OVERLAP: return "partitions overlap";
    case ALOFT_E_PART_RANGE: return "partition lies outside the flash or over the partition table";
    case ALOFT_E_PART_LABEL: return "partition label is empty or used twice";
    case ALOFT_E_PART_TYPE: return "unknown partition type or subtype";
    case ALOFT_E_SYNTAX: return "syntax error";
    case ALOFT_E_NOBOOT: return "no bootable app image on the flash";
    case ALOFT_E_NOROLLBACK: return "no other valid app to roll back to";
    case ALOFT_E_POWER: return "power lost (simulated)";
    case ALOFT_E_NOR: return "flash program would set a bit: the sector was not erased";
    case ALOFT_E_TOOMANY: return "too many entries";
    case ALOFT_E_PART_KIND: return "partition breaks a rule for its kind (one otadata of exactly 8 KB, ota_0..ota_N without gaps or repeats, writable nvs at least 12 KB, otadata and coredump never read-only)";
    case ALOFT_E_BASE: return "the patch is for another image";
    default: return "unknown error";
    }
}
