/* aloft CLI: secure boot v2 signatures — `aloft keygen`, `aloft image sign`,
 * `aloft image verify`, and the signature blocks `aloft image info` shows.
 * The sector is the one espsecure writes (FORMATS.md §6), so either tool
 * checks what the other signed. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "cmd.h"
#include "file.h"
#include "hex.h"
#include "signing.h"

#define EXIT_USAGE 2

static const char keygen_usage[] =
    "usage: aloft keygen --scheme rsa3072|ecdsa256|ecdsa384 -o KEY.pem\n"
    "\n"
    "Make a private signing key for secure boot v2 signatures (aloft image sign). The\n"
    "file is created with mode 0600 and never overwritten. ESP32-S3 and ESP32-C3 secure\n"
    "boot take RSA-3072 only; P-256 and P-384 are for the chips whose ROM verifies ECDSA.\n"
    "\n"
    "example: aloft keygen --scheme rsa3072 -o release.pem\n";

int aloft_cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {
        {"scheme", required_argument, NULL, 's'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int scheme = -1, c;
    const char *out = NULL;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        if (c == 's' && (scheme = aloft_signing_scheme_id(optarg)) < 0) {
            fprintf(stderr, "aloft keygen: unknown scheme '%s' (rsa3072, ecdsa256 or ecdsa384)\n", optarg);
            return EXIT_USAGE;
        } else if (c == 'o') {
            out = optarg;
        } else if (c == 'h') {
            printf("%s", keygen_usage);
            return 0;
        } else if (c != 's') {
            return aloft_usage_bad_option(argv[0], keygen_usage, c, argv);
        }
    }
    if (optind != argc)
        return aloft_usage_error(argv[0], keygen_usage, "unexpected argument '%s'", argv[optind]);
    if (scheme < 0 || !out)
        return aloft_usage_error(argv[0], keygen_usage, "missing %s", scheme < 0 ? "--scheme" : "-o KEY.pem");
    char err[200];
    if (aloft_signing_keygen(scheme, out, err, sizeof err)) {
        fprintf(stderr, "aloft keygen: %s\n", err);
        return 1;
    }
    EVP_PKEY *k = aloft_signing_load(out, &scheme, err, sizeof err);
    uint8_t d[ALOFT_SIG_KEY_DIGEST_BYTES];
    char hex[2 * ALOFT_SIG_KEY_DIGEST_BYTES + 1] = "?";
    if (k && !aloft_signing_key_digest(k, d))
        aloft_hex(d, sizeof d, hex);
    EVP_PKEY_free(k);
    printf("%s: %s key; public key digest %s\n", out, aloft_signing_scheme_name(scheme), hex);
    return 0;
}

static const char sign_usage[] =
    "usage: aloft image sign FILE --key KEY.pem [--key KEY2.pem ...] [--append] -o OUT\n"
    "\n"
    "Sign an app image (or a frontend www.bin) for secure boot v2, as espsecure sign_data\n"
    "--version 2 does: the file is padded with 0xFF to a 4 KB boundary and a 4 KB\n"
    "signature sector follows, with one signature block per key (at most three).\n"
    "\n"
    "  --key KEY.pem   a private key (aloft keygen, or espsecure generate_signing_key)\n"
    "  --append        FILE is signed already: keep its blocks and add these\n"
    "  -o, --output    where to write the signed file ('-' for standard output)\n"
    "\n"
    "example: aloft image sign app.bin --key release.pem -o app-signed.bin\n";

/* The bytes to sign: an image padded with 0xFF to 4 KB. With --append, the
 * file's own sector is cut off and its blocks kept in sector. */
static int prepare(const char *path, uint8_t **img, size_t *len, bool append, uint8_t *sector, unsigned *kept)
{
    if (aloft_file_read(path, img, len)) {
        fprintf(stderr, "aloft image sign: %s: %s\n", path, strerror(errno));
        return 1;
    }
    size_t at = aloft_signing_sector(*img, *len);
    if (at && !append) {
        fprintf(stderr, "aloft image sign: %s is signed already; --append adds signatures to it\n", path);
        return 1;
    }
    if (append && !at) {
        fprintf(stderr, "aloft image sign: --append: %s has no signature sector to add to\n", path);
        return 1;
    }
    if ((*img)[0] == ALOFT_IMAGE_MAGIC && !at) {
        struct aloft_image_info in;
        int rc = aloft_image_verify(*img, *len, ALOFT_CHIP_ANY, 0, &in);
        if (rc) {
            fprintf(stderr, "aloft image sign: %s: %s; only a valid image is signed\n", path, aloft_strerror(rc));
            return 1;
        }
    }
    if (at) {
        struct aloft_signing_check c[ALOFT_SIG_BLOCKS_MAX];
        *kept = (unsigned)aloft_signing_check(*img, at, c);
        memcpy(sector, *img + at, ALOFT_SIG_SECTOR_BYTES);
        *len = at;
        return 0;
    }
    size_t padded = (*len + ALOFT_SIG_SECTOR_BYTES - 1) / ALOFT_SIG_SECTOR_BYTES * ALOFT_SIG_SECTOR_BYTES;
    uint8_t *p = realloc(*img, padded + ALOFT_SIG_SECTOR_BYTES);
    if (!p) {
        fprintf(stderr, "aloft image sign: out of memory\n");
        return 1;
    }
    memset(p + *len, 0xFF, padded - *len);
    *img = p;
    *len = padded;
    memset(sector, 0xFF, ALOFT_SIG_SECTOR_BYTES);
    return 0;
}

int aloft_cmd_image_sign(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"append", no_argument, NULL, 'a'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    const char *keys[ALOFT_SIG_BLOCKS_MAX + 1], *out = NULL;
    unsigned nkeys = 0;
    bool append = false;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        if (c == 'k' && nkeys <= ALOFT_SIG_BLOCKS_MAX)
            keys[nkeys++] = optarg;
        else if (c == 'a')
            append = true;
        else if (c == 'o')
            out = optarg;
        else if (c == 'h')
            return printf("%s", sign_usage), 0;
        else if (c != 'k')
            return aloft_usage_bad_option(argv[0], sign_usage, c, argv);
    }
    if (optind == argc)
        return aloft_usage_error(argv[0], sign_usage, "missing FILE");
    if (optind < argc - 1)
        return aloft_usage_error(argv[0], sign_usage, "unexpected argument '%s'", argv[optind + 1]);
    if (!nkeys || !out)
        return aloft_usage_error(argv[0], sign_usage, "missing %s", !nkeys ? "--key KEY.pem" : "-o OUT");
    uint8_t *img = NULL, sector[ALOFT_SIG_SECTOR_BYTES];
    size_t len = 0;
    unsigned kept = 0;
    if (prepare(argv[optind], &img, &len, append, sector, &kept)) {
        free(img);
        return 1;
    }
    int rc = 0;
    if (kept + nkeys > ALOFT_SIG_BLOCKS_MAX) {
        fprintf(stderr, "aloft image sign: %u blocks with the %u kept; a sector holds at most %u\n", kept + nkeys,
                kept, ALOFT_SIG_BLOCKS_MAX);
        rc = 1;
    }
    for (unsigned i = 0; i < nkeys && !rc; i++) {
        char err[200];
        int scheme;
        EVP_PKEY *k = aloft_signing_load(keys[i], &scheme, err, sizeof err);
        if (!k || aloft_signing_block(k, img, len, sector + (kept + i) * ALOFT_SIG_BLOCK_BYTES, err, sizeof err)) {
            fprintf(stderr, "aloft image sign: %s\n", err);
            rc = 1;
        }
        EVP_PKEY_free(k);
    }
    if (!rc) {
        memcpy(img + len, sector, ALOFT_SIG_SECTOR_BYTES);
        if (aloft_file_write(out, img, len + ALOFT_SIG_SECTOR_BYTES)) {
            fprintf(stderr, "aloft image sign: %s: %s\n", out, strerror(errno));
            rc = 1;
        }
    }
    free(img);
    return rc;
}

static void print_block(unsigned i, const struct aloft_signing_check *c)
{
    char hex[2 * ALOFT_SIG_KEY_DIGEST_BYTES + 1];
    if (c->parse) {
        printf("    block %u: damaged (%s)\n", i, aloft_strerror(c->parse));
        return;
    }
    aloft_hex(c->b.key_digest, sizeof c->b.key_digest, hex);
    printf("    block %u: %s, key digest %s, %s\n", i, aloft_signing_scheme_name(c->b.scheme), hex,
           c->valid ? "valid" : c->digest_ok ? "INVALID (the signature does not verify)"
                                             : "INVALID (signs other bytes than these)");
}

void aloft_cmd_sig_text(const uint8_t *img, size_t len)
{
    struct aloft_signing_check c[ALOFT_SIG_BLOCKS_MAX];
    size_t at = aloft_signing_sector(img, len);
    if (!at) {
        printf("  signature:        none\n");
        return;
    }
    int n = aloft_signing_check(img, at, c);
    printf("  signature:        secure boot v2 sector at 0x%zx, %d block%s\n", at, n, n == 1 ? "" : "s");
    for (int i = 0; i < n; i++)
        print_block((unsigned)i, &c[i]);
}

cJSON *aloft_cmd_sig_json(const uint8_t *img, size_t len)
{
    struct aloft_signing_check c[ALOFT_SIG_BLOCKS_MAX];
    size_t at = aloft_signing_sector(img, len);
    cJSON *a = cJSON_CreateArray();
    int n = at ? aloft_signing_check(img, at, c) : 0;
    for (int i = 0; i < n; i++) {
        cJSON *o = cJSON_CreateObject();
        char hex[2 * ALOFT_SIG_KEY_DIGEST_BYTES + 1] = "";
        if (!c[i].parse)
            aloft_hex(c[i].b.key_digest, sizeof c[i].b.key_digest, hex);
        cJSON_AddStringToObject(o, "scheme", c[i].parse ? "?" : aloft_signing_scheme_name(c[i].b.scheme));
        cJSON_AddStringToObject(o, "key_digest", hex);
        cJSON_AddBoolToObject(o, "valid", c[i].valid);
        cJSON_AddItemToArray(a, o);
    }
    return a;
}

static const char verify_usage[] =
    "usage: aloft image verify FILE (--key PUB.pem | --digest HEX)...\n"
    "\n"
    "Check a signed app image or www.bin the way a device with these trusted keys does:\n"
    "valid when a block by one of the keys verifies. A key is named by its PEM (public\n"
    "or private) or by its 32-byte public key digest in hex (the eFuse value; aloft\n"
    "keygen and espsecure digest_sbv2_public_key print it).\n"
    "\n"
    "example: aloft image verify app-signed.bin --key release.pub.pem\n"
    "exit status: 0 signed by a trusted key, 1 not (unsigned, bad signature, untrusted key), 2 usage\n";

/* A trusted key digest from --key or --digest; 0 or -1 with a message. */
static int trusted_arg(int opt, const char *arg, uint8_t out[ALOFT_SIG_KEY_DIGEST_BYTES])
{
    if (opt == 'd') {
        size_t n = strlen(arg);
        for (size_t i = 0; n == 2 * ALOFT_SIG_KEY_DIGEST_BYTES && i < ALOFT_SIG_KEY_DIGEST_BYTES; i++)
            if (sscanf(arg + 2 * i, "%2hhx", &out[i]) != 1 || !strchr("0123456789abcdefABCDEF", arg[2 * i + 1]))
                n = 0;
        if (n != 2 * ALOFT_SIG_KEY_DIGEST_BYTES) {
            fprintf(stderr, "aloft image verify: --digest wants 64 hex digits, not '%s'\n", arg);
            return -1;
        }
        return 0;
    }
    char err[200];
    int scheme;
    EVP_PKEY *k = aloft_signing_load(arg, &scheme, err, sizeof err);
    int rc = k ? aloft_signing_key_digest(k, out) : -1;
    if (!k)
        fprintf(stderr, "aloft image verify: %s\n", err);
    EVP_PKEY_free(k);
    return rc;
}

int aloft_cmd_image_verify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"key", required_argument, NULL, 'k'},
        {"digest", required_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    uint8_t trusted[8][ALOFT_SIG_KEY_DIGEST_BYTES];
    unsigned nt = 0;
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        if ((c == 'k' || c == 'd') && nt < 8) {
            if (trusted_arg(c, optarg, trusted[nt++]))
                return 1;
        } else if (c == 'h') {
            return printf("%s", verify_usage), 0;
        } else {
            return aloft_usage_bad_option(argv[0], verify_usage, c, argv);
        }
    }
    if (optind == argc)
        return aloft_usage_error(argv[0], verify_usage, "missing FILE");
    if (optind < argc - 1)
        return aloft_usage_error(argv[0], verify_usage, "unexpected argument '%s'", argv[optind + 1]);
    if (!nt)
        return aloft_usage_error(argv[0], verify_usage, "missing --key PUB.pem or --digest HEX");
    const char *path = argv[optind];
    uint8_t *img;
    size_t len;
    if (aloft_file_read(path, &img, &len)) {
        fprintf(stderr, "aloft image verify: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct aloft_image_info in;
    int rc = img[0] == ALOFT_IMAGE_MAGIC ? aloft_image_verify(img, len, ALOFT_CHIP_ANY, 0, &in) : 0;
    if (rc) { /* a damaged image is that, before any question of signatures */
        fprintf(stderr, "aloft image verify: %s: not a valid image: %s (see aloft image info)\n", path,
                aloft_strerror(rc));
        free(img);
        return 1;
    }
    struct aloft_signing_check ch[ALOFT_SIG_BLOCKS_MAX];
    size_t at = aloft_signing_sector(img, len);
    int n = at ? aloft_signing_check(img, at, ch) : 0;
    int ok = -1;
    bool trusted_seen = false;
    for (int i = 0; i < n && ok < 0; i++)
        for (unsigned t = 0; t < nt && !ch[i].parse; t++)
            if (!memcmp(ch[i].b.key_digest, trusted[t], ALOFT_SIG_KEY_DIGEST_BYTES)) {
                trusted_seen = true;
                if (ch[i].valid)
                    ok = i;
            }
    for (int i = 0; i < n; i++)
        print_block((unsigned)i, &ch[i]);
    free(img);
    if (ok >= 0) {
        printf("%s: signed by a trusted key (block %d)\n", path, ok);
        return 0;
    }
    if (!n)
        fprintf(stderr, "aloft image verify: %s: unsigned: no secure boot v2 signature sector (aloft image sign "
                        "adds one)\n", path);
    else if (trusted_seen)
        fprintf(stderr, "aloft image verify: %s: bad_signature: a trusted key's block does not verify (the file "
                        "changed after signing, or the block is damaged)\n", path);
    else
        fprintf(stderr, "aloft image verify: %s: untrusted_key: no block is by a trusted key\n", path);
    return 1;
}
