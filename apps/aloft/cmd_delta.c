/* aloft CLI: `aloft delta make`, `aloft delta apply` and `aloft delta info`. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "aloft/delta.h"
#include "aloft/err.h"
#include "cmd.h"
#include "delta.h"
#include "file.h"
#include "hex.h"

static const char make_help[] =
    "usage: aloft delta make OLD NEW -o PATCH [--block-size N] [--quiet]\n"
    "\n"
    "Make a patch that turns the image OLD (what a device runs) into NEW. A\n"
    "device applies it in about 8 KB of RAM, reading OLD from its running slot,\n"
    "and refuses it unless its running image is exactly OLD (the patch names\n"
    "OLD's SHA-256, and NEW's size and SHA-256). Making one takes a few seconds\n"
    "and about 15 times the two images' size of memory.\n"
    "\n"
    "options:\n"
    "  -o, --output PATCH  where to write the patch ('-': standard output)\n"
    "  --block-size N      a cut or a dropped link resumes at the last block start\n"
    "                      (4K..1M, a power of two; default 64K): each block starts\n"
    "                      its model afresh, so smaller blocks cost a little size\n"
    "  -q, --quiet         no progress on standard error\n"
    "\n"
    "example:\n"
    "  aloft delta make app-1.0.bin app-1.1.bin -o app-1.0-to-1.1.delta\n"
    "  aloft delta info app-1.0-to-1.1.delta\n";

static const char apply_help[] =
    "usage: aloft delta apply OLD PATCH -o NEW\n"
    "\n"
    "Apply a patch to OLD with the decoder a device runs, and write the result.\n"
    "Refused (exit 1, nothing written) when OLD is not the image the patch was\n"
    "made from, or the patch is truncated or corrupted: the result must have the\n"
    "size and SHA-256 the patch names.\n"
    "\n"
    "options:\n"
    "  -o, --output NEW    where to write the result ('-': standard output)\n"
    "\n"
    "example:\n"
    "  aloft delta apply app-1.0.bin app-1.0-to-1.1.delta -o app-1.1.bin\n";

static const char info_help[] =
    "usage: aloft delta info PATCH [--json]\n"
    "\n"
    "Show what a patch is for: the image it applies to (size, SHA-256), the\n"
    "image it makes, its block size, and its size as a share of the result.\n"
    "\n"
    "options:\n"
    "  --json    print one JSON object instead of text\n"
    "\n"
    "example:\n"
    "  aloft delta info app-1.0-to-1.1.delta\n";

enum { OPT_BLOCK_SIZE = 256, OPT_JSON };

static void progress(void *ctx, size_t done, size_t total)
{
    (void)ctx;
    fprintf(stderr, "\raloft delta make: %3u%%", (unsigned)(done * 100 / total));
    if (done == total)
        fputc('\n', stderr);
}

/* What to do about a refused patch, beyond aloft_strerror's sentence. */
static const char *advice(int rc)
{
    switch (rc) {
    case ALOFT_E_BASE: return " (make the patch from the image the device runs)";
    case ALOFT_E_MAGIC: return " (not an aloft delta patch)";
    case ALOFT_E_HEADER: return " (made by a newer aloft?)";
    case ALOFT_E_TRUNCATED: return " (the patch is cut short: copy it again)";
    case ALOFT_E_CORRUPT:
    case ALOFT_E_HASH:
    case ALOFT_E_TRAILING: return " (the patch is damaged: copy it again)";
    default: return "";
    }
}

int aloft_cmd_delta_make(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"block-size", required_argument, NULL, OPT_BLOCK_SIZE},
        {"quiet", no_argument, NULL, 'q'},         {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    unsigned shift = 16;
    bool quiet = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'q': quiet = true; break;
        case OPT_BLOCK_SIZE: {
            uint32_t bs;
            if (aloft_parse_size(optarg, &bs) || bs < 4096 || bs > (1u << 20) || (bs & (bs - 1)))
                return aloft_usage_error(argv[0], make_help, "--block-size '%s' is not a power of two from 4K to 1M",
                                         optarg);
            for (shift = 12; (1u << shift) < bs; shift++)
                ;
            break;
        }
        case 'h': fputs(make_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], make_help, c, argv);
        }
    }
    if (argc - optind < 2)
        return aloft_usage_error(argv[0], make_help, optind == argc ? "missing OLD and NEW" : "missing NEW");
    if (argc - optind > 2)
        return aloft_usage_error(argv[0], make_help, "unexpected argument '%s'", argv[optind + 2]);
    if (!out)
        return aloft_usage_error(argv[0], make_help, "missing -o PATCH");
    const char *old_path = argv[optind], *new_path = argv[optind + 1];
    uint8_t *a = NULL, *b = NULL, *p = NULL;
    size_t na, nb, np;
    int st = 1;
    if (aloft_file_read(old_path, &a, &na)) {
        fprintf(stderr, "aloft delta make: %s: %s\n", old_path, strerror(errno));
        goto out;
    }
    if (aloft_file_read(new_path, &b, &nb)) {
        fprintf(stderr, "aloft delta make: %s: %s\n", new_path, strerror(errno));
        goto out;
    }
    if (!na || !nb) {
        fprintf(stderr, "aloft delta make: %s is empty\n", na ? new_path : old_path);
        goto out;
    }
    int rc = aloft_delta_make(a, na, b, nb, shift, quiet || !isatty(2) ? NULL : progress, NULL, &p, &np);
    if (rc) {
        fprintf(stderr, "aloft delta make: %s%s\n", aloft_strerror(rc),
                rc == ALOFT_E_INVAL ? " (each image must be under 1 GB)" : "");
        goto out;
    }
    if (aloft_file_write(out, p, np)) {
        fprintf(stderr, "aloft delta make: %s: %s\n", out, strerror(errno));
        goto out;
    }
    if (!quiet)
        fprintf(stderr, "aloft delta make: %s: %zu bytes, %.2f%% of %s (%zu bytes)\n", out, np,
                100.0 * (double)np / (double)nb, new_path, nb);
    st = 0;
out:
    free(a);
    free(b);
    free(p);
    return st;
}

int aloft_cmd_delta_apply(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'h': fputs(apply_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], apply_help, c, argv);
        }
    }
    if (argc - optind < 2)
        return aloft_usage_error(argv[0], apply_help, optind == argc ? "missing OLD and PATCH" : "missing PATCH");
    if (argc - optind > 2)
        return aloft_usage_error(argv[0], apply_help, "unexpected argument '%s'", argv[optind + 2]);
    if (!out)
        return aloft_usage_error(argv[0], apply_help, "missing -o NEW");
    const char *old_path = argv[optind], *patch_path = argv[optind + 1];
    uint8_t *a = NULL, *p = NULL, *r = NULL;
    size_t na, np, nr;
    int st = 1;
    if (aloft_file_read(old_path, &a, &na)) {
        fprintf(stderr, "aloft delta apply: %s: %s\n", old_path, strerror(errno));
        goto out;
    }
    if (aloft_file_read(patch_path, &p, &np)) {
        fprintf(stderr, "aloft delta apply: %s: %s\n", patch_path, strerror(errno));
        goto out;
    }
    int rc = aloft_delta_apply(a, na, p, np, &r, &nr);
    if (rc) {
        fprintf(stderr, "aloft delta apply: %s: %s%s\n", rc == ALOFT_E_BASE ? old_path : patch_path,
                aloft_strerror(rc), advice(rc));
        goto out;
    }
    if (aloft_file_write(out, r, nr)) {
        fprintf(stderr, "aloft delta apply: %s: %s\n", out, strerror(errno));
        goto out;
    }
    st = 0;
out:
    free(a);
    free(p);
    free(r);
    return st;
}

int aloft_cmd_delta_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: json = true; break;
        case 'h': fputs(info_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], info_help, c, argv);
        }
    }
    if (optind == argc)
        return aloft_usage_error(argv[0], info_help, "missing PATCH");
    if (argc - optind > 1)
        return aloft_usage_error(argv[0], info_help, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    uint8_t *p;
    size_t np;
    if (aloft_file_read(path, &p, &np)) {
        fprintf(stderr, "aloft delta info: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct aloft_delta_header h;
    int rc = np < ALOFT_DELTA_HEADER_BYTES ? (np >= 4 && memcmp(p, ALOFT_DELTA_MAGIC, 4) ? ALOFT_E_MAGIC : ALOFT_E_TRUNCATED)
                                           : aloft_delta_header_parse(&h, p);
    if (rc) {
        fprintf(stderr, "aloft delta info: %s: %s%s\n", path, aloft_strerror(rc), advice(rc));
        free(p);
        return 1;
    }
    char base[65], result[65];
    aloft_hex(h.base_sha256, 32, base);
    aloft_hex(h.result_sha256, 32, result);
    double pct = 100.0 * (double)np / (double)h.result_size;
    if (json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddNumberToObject(o, "size", (double)np);
        cJSON_AddNumberToObject(o, "version", ALOFT_DELTA_VERSION);
        cJSON_AddNumberToObject(o, "block_size", (double)(1u << h.block_shift));
        cJSON_AddNumberToObject(o, "base_size", h.base_size);
        cJSON_AddStringToObject(o, "base_sha256", base);
        cJSON_AddNumberToObject(o, "result_size", h.result_size);
        cJSON_AddStringToObject(o, "result_sha256", result);
        cJSON_AddNumberToObject(o, "percent_of_result", (double)(int)(pct * 100 + 0.5) / 100);
        char *s = cJSON_Print(o);
        puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("patch:       %s (%zu bytes, %.2f%% of the result)\n", path, np, pct);
        printf("applies to:  %u bytes, SHA-256 %s\n", h.base_size, base);
        printf("makes:       %u bytes, SHA-256 %s\n", h.result_size, result);
        printf("block size:  %u bytes (a cut or a dropped link resumes at a block start)\n", 1u << h.block_shift);
    }
    free(p);
    return 0;
}
