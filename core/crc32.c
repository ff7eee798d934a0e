/* aloft: reflected CRC-32 (poly 0xEDB88320), nibble-table driven: 64 bytes
 * of table instead of 1 KB, fast enough for the small blocks it covers. */
#include "aloft/crypto.h"

uint32_t aloft_crc32(uint32_t reg, const void *data, size_t len)
{
    static const uint32_t table[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4, 0x4db26158, 0x5005713c,
        0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c, 0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
    };
    const uint8_t *p = data;
    while (len--) {
        reg ^= *p++;
        reg = (reg >> 4) ^ table[reg & 15];
        reg = (reg >> 4) ^ table[reg & 15];
    }
    return reg;
}
