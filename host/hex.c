/* aloft host: bytes as lower-case hex. */
#include "hex.h"

#include "aloft/crypto.h"

void aloft_hex(const uint8_t *d, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[d[i] >> 4];
        out[2 * i + 1] = digits[d[i] & 15];
    }
    out[2 * n] = 0;
}

void aloft_sha256_hex(const void *data, size_t len, char out[65])
{
    struct aloft_sha256 s;
    uint8_t d[32];
    aloft_sha256_init(&s);
    aloft_sha256_update(&s, data, len);
    aloft_sha256_final(&s, d);
    aloft_hex(d, 32, out);
}
