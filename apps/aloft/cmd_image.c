/* aloft CLI: `aloft image info` and `aloft image make`. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/err.h"
#include "aloft/image.h"
#include "cmd.h"
#include "file.h"
#include "image_make.h"
#include "hex.h"

#define EXIT_USAGE 2

static const char *const spi_modes[] = {"QIO", "QOUT", "DIO", "DOUT", "FAST_READ", "SLOW_READ"};

/* The known chips, "esp32, esp32s2, ...", for messages. */
static const char *chip_list(void)
{
    static char buf[160];
    size_t n = 0;
    buf[0] = 0;
    for (unsigned id = 0; id < 64; id++) {
        const char *name = aloft_chip_name((uint16_t)id);
        if (name)
            n += (size_t)snprintf(buf + n, sizeof buf - n, "%s%s", n ? ", " : "", name);
    }
    return buf;
}

/* Flash clock for the header's speed code: esptool's names per chip. */
static const char *spi_speed_name(uint16_t chip, uint8_t code)
{
    static const char *const common[16] = {[0x0] = "40m", [0x1] = "26m", [0x2] = "20m", [0xF] = "80m"};
    static const char *const c2[16] = {[0x0] = "30m", [0x1] = "20m", [0x2] = "15m", [0xF] = "60m"};
    static const char *const h2[16] = {[0x0] = "24m", [0x1] = "16m", [0x2] = "12m", [0xF] = "48m"};
    const char *const *t = chip == 0x000C ? c2 : chip == 0x0010 ? h2 : common;
    return t[code & 15] ? t[code & 15] : "unknown";
}

static void spi_size_name(uint8_t code, char *buf, size_t n)
{
    if (code <= 7)
        snprintf(buf, n, "%uMB", 1u << code);
    else
        snprintf(buf, n, "unknown");
}

static uint32_t rd32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ESP-IDF's second-stage bootloader has no app descriptor but its own
 * esp_bootloader_desc_t at the start of segment 0: magic byte 0x50, version
 * u32 @4, idf_ver[32] @8, date_time[24] @40. */
int aloft_cmd_bootloader_desc(const struct aloft_image_info *in, const uint8_t *img, size_t len,
                              struct aloft_cmd_boot_desc *bd)
{
    uint32_t off = in->seg_offset[0];
    if (in->has_desc || !in->segment_count || in->seg_len[0] < 80 || off + 80u > len)
        return 0;
    const uint8_t *d = img + off;
    if (d[0] != 0x50 || rd32(d + 4) != 1)
        return 0;
    snprintf(bd->idf_ver, sizeof bd->idf_ver, "%.32s", (const char *)d + 8);
    snprintf(bd->date_time, sizeof bd->date_time, "%.24s", (const char *)d + 40);
    return 1;
}

/* What to do about an error, beyond aloft_strerror's sentence. */
static void explain(int rc, const struct aloft_image_info *in, uint16_t want, const uint8_t *img, size_t len)
{
    const char *chip = aloft_chip_name(in->chip_id);
    switch (rc) {
    case ALOFT_E_MAGIC:
        if (len >= 4 && !memcmp(img, "\x7f" "ELF", 4))
            fprintf(stderr, "  this is an ELF file: flash or upload build/<project>.bin, or convert it with `esptool.py elf2image`\n");
        else
            fprintf(stderr, "  pass the app .bin from your build (build/<project>.bin), not an ELF, a partition table or a data file\n");
        break;
    case ALOFT_E_ESP8266:
        fprintf(stderr, "  the chips aloft knows: %s\n", chip_list());
        break;
    case ALOFT_E_CHIP:
        if (!chip)
            fprintf(stderr, "  chip id %u is not one aloft knows (%s): the file is corrupt or for a newer chip\n",
                    in->chip_id, chip_list());
        else
            fprintf(stderr, "  the image is built for %s, not %s: build it for the right target (idf.py set-target %s)\n",
                    chip, aloft_chip_name(want), aloft_chip_name(want));
        break;
    case ALOFT_E_SEGMENTS:
    case ALOFT_E_SEGMENT:
    case ALOFT_E_HEADER:
        fprintf(stderr, "  the file is corrupt or not an ESP app image\n");
        break;
    case ALOFT_E_CHECKSUM:
    case ALOFT_E_HASH:
        fprintf(stderr, "  the contents do not match the image's own check: the file is corrupt; build or download it again\n");
        break;
    case ALOFT_E_TRUNCATED:
        fprintf(stderr, "  the file (%zu bytes) ends inside the image: the copy or download was cut short; fetch it again\n", len);
        break;
    case ALOFT_E_TRAILING:
        fprintf(stderr, "  the image ends at byte %u but the file has %zu: a merged flash image (bootloader, partition table, app) "
                        "is not an app image; use build/<project>.bin\n", (unsigned)in->image_len, len);
        break;
    default:
        break;
    }
}

static void print_text(const char *path, const uint8_t *img, size_t len, int rc, const struct aloft_image_info *in,
                       const struct aloft_cmd_boot_desc *bd, const struct aloft_sim_record *rec, int rec_rc)
{
    char buf[80];
    const char *chip = aloft_chip_name(in->chip_id);
    printf("%s: %s\n", path, rc ? "INVALID" : "valid ESP image");
    printf("  chip:             %s (id %u)\n", chip ? chip : "unknown", in->chip_id);
    if (in->max_chip_rev_full == 0 || in->max_chip_rev_full == 0xFFFF)
        snprintf(buf, sizeof buf, "any");
    else
        snprintf(buf, sizeof buf, "v%u.%u", in->max_chip_rev_full / 100, in->max_chip_rev_full % 100);
    printf("  chip revision:    v%u.%u to %s\n", in->min_chip_rev_full / 100, in->min_chip_rev_full % 100, buf);
    spi_size_name(in->spi_size, buf, sizeof buf);
    printf("  flash:            %s, %s, %s\n", in->spi_mode < 6 ? spi_modes[in->spi_mode] : "unknown",
           spi_speed_name(in->chip_id, in->spi_speed), buf);
    printf("  entry:            0x%08x\n", (unsigned)in->entry_addr);
    printf("  segments:         %u\n", in->segment_count);
    if (in->seg_offset[0])
        printf("     #  load addr   length      file offset\n");
    for (unsigned i = 0; i < in->segment_count && i < ALOFT_IMAGE_SEGMENTS_MAX && in->seg_offset[i]; i++)
        printf("    %2u  0x%08x  0x%08x  0x%08x%s\n", i, (unsigned)in->seg_load_addr[i], (unsigned)in->seg_len[i],
               (unsigned)in->seg_offset[i], in->seg_load_addr[i] < 0x10000000u ? "  not loaded (padding)" : "");
    if (rc == 0 || rc == ALOFT_E_HASH || rc == ALOFT_E_TRAILING)
        printf("  checksum:         0x%02x ok\n", in->checksum);
    else if (rc == ALOFT_E_CHECKSUM)
        printf("  checksum:         0x%02x MISMATCH\n", in->checksum);
    char h[65];
    if (!in->hash_appended) {
        printf("  appended SHA-256: none\n");
    } else if (rc == 0 || rc == ALOFT_E_HASH || rc == ALOFT_E_TRAILING) {
        aloft_hex(in->sha256, 32, h);
        printf("  appended SHA-256: %s %s (of the image, checked at boot)\n", h, rc == ALOFT_E_HASH ? "MISMATCH" : "ok");
    }
    aloft_sha256_hex(img, len, h); /* what aloftd and aloft trigger call its SHA-256 */
    printf("  file SHA-256:     %s (its name on aloftd, aloft trigger --sha256)\n", h);
    if (in->image_len) {
        printf("  image length:     %u bytes\n", (unsigned)in->image_len);
        if (len > in->image_len)
            printf("  after the image:  %zu bytes%s\n", len - in->image_len,
                   rc ? "" : " (secure boot v2 padding and signature sector)");
    }
    if (in->has_desc) {
        const struct aloft_app_desc *d = &in->desc;
        char h[65];
        aloft_hex(d->app_elf_sha256, 32, h);
        printf("  app descriptor:\n");
        printf("    project:        %s\n", d->project_name);
        printf("    version:        %s\n", d->version);
        printf("    secure_version: %u\n", (unsigned)d->secure_version);
        printf("    built:          %s %s\n", d->date, d->time);
        printf("    idf_ver:        %s\n", d->idf_ver);
        printf("    app_elf_sha256: %s\n", h);
    } else if (bd) {
        printf("  app descriptor:   none: an ESP-IDF bootloader (ESP-IDF %s, built %s); "
               "it belongs at the bootloader offset, not in an app slot\n", bd->idf_ver, bd->date_time);
    } else if (rc == 0) {
        printf("  app descriptor:   none (not an ESP-IDF app: no project or version to show)\n");
    }
    if (rc == 0) {
        if (rec_rc)
            printf("  simulator record: INVALID (%s)\n", aloft_strerror(rec_rc));
        else if (rec->present)
            printf("  simulator record: %s\n", aloft_sim_behaviour_format(rec, buf, sizeof buf));
        else
            printf("  simulator record: none (aloft-node runs it as healthy firmware)\n");
    }
}

static void print_json(const char *path, const uint8_t *img, size_t len, int rc, const struct aloft_image_info *in,
                       bool header, const struct aloft_cmd_boot_desc *bd, const struct aloft_sim_record *rec, int rec_rc)
{
    char buf[80], h[65];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "file", path);
    cJSON_AddNumberToObject(o, "file_len", (double)len);
    aloft_sha256_hex(img, len, h);
    cJSON_AddStringToObject(o, "file_sha256", h);
    cJSON_AddBoolToObject(o, "ok", rc == 0 && rec_rc == 0);
    if (rc || rec_rc) {
        cJSON *e = cJSON_AddObjectToObject(o, "error");
        cJSON_AddNumberToObject(e, "code", rc ? rc : rec_rc);
        cJSON_AddStringToObject(e, "message", aloft_strerror(rc ? rc : rec_rc));
    } else {
        cJSON_AddNullToObject(o, "error");
    }
    if (header) {
        const char *chip = aloft_chip_name(in->chip_id);
        if (chip)
            cJSON_AddStringToObject(o, "chip", chip);
        else
            cJSON_AddNullToObject(o, "chip");
        cJSON_AddNumberToObject(o, "chip_id", in->chip_id);
        cJSON_AddNumberToObject(o, "min_chip_rev_full", in->min_chip_rev_full);
        cJSON_AddNumberToObject(o, "max_chip_rev_full", in->max_chip_rev_full);
        cJSON_AddStringToObject(o, "spi_mode", in->spi_mode < 6 ? spi_modes[in->spi_mode] : "unknown");
        cJSON_AddStringToObject(o, "spi_speed", spi_speed_name(in->chip_id, in->spi_speed));
        spi_size_name(in->spi_size, buf, sizeof buf);
        cJSON_AddStringToObject(o, "spi_size", buf);
        cJSON_AddNumberToObject(o, "entry_addr", in->entry_addr);
        cJSON *segs = cJSON_AddArrayToObject(o, "segments");
        for (unsigned i = 0; i < in->segment_count && i < ALOFT_IMAGE_SEGMENTS_MAX && in->seg_offset[i]; i++) {
            cJSON *s = cJSON_CreateObject();
            cJSON_AddNumberToObject(s, "index", i);
            cJSON_AddNumberToObject(s, "load_addr", in->seg_load_addr[i]);
            cJSON_AddNumberToObject(s, "length", in->seg_len[i]);
            cJSON_AddNumberToObject(s, "offset", in->seg_offset[i]);
            cJSON_AddItemToArray(segs, s);
        }
        bool past_checksum = rc == 0 || rc == ALOFT_E_HASH || rc == ALOFT_E_TRAILING;
        if (past_checksum || rc == ALOFT_E_CHECKSUM)
            cJSON_AddBoolToObject(o, "checksum_ok", past_checksum);
        else
            cJSON_AddNullToObject(o, "checksum_ok");
        cJSON_AddBoolToObject(o, "hash_appended", in->hash_appended);
        if (in->hash_appended && past_checksum) {
            aloft_hex(in->sha256, 32, h);
            cJSON_AddStringToObject(o, "sha256", h);
            cJSON_AddBoolToObject(o, "sha256_ok", rc != ALOFT_E_HASH);
        } else {
            cJSON_AddNullToObject(o, "sha256_ok");
        }
        if (in->image_len)
            cJSON_AddNumberToObject(o, "image_len", in->image_len);
        if (in->has_desc) {
            const struct aloft_app_desc *d = &in->desc;
            cJSON *a = cJSON_AddObjectToObject(o, "app_desc");
            cJSON_AddStringToObject(a, "project_name", d->project_name);
            cJSON_AddStringToObject(a, "version", d->version);
            cJSON_AddNumberToObject(a, "secure_version", d->secure_version);
            cJSON_AddStringToObject(a, "date", d->date);
            cJSON_AddStringToObject(a, "time", d->time);
            cJSON_AddStringToObject(a, "idf_ver", d->idf_ver);
            aloft_hex(d->app_elf_sha256, 32, h);
            cJSON_AddStringToObject(a, "app_elf_sha256", h);
            cJSON_AddNumberToObject(a, "min_efuse_blk_rev_full", d->min_efuse_blk_rev_full);
            cJSON_AddNumberToObject(a, "max_efuse_blk_rev_full", d->max_efuse_blk_rev_full);
            cJSON_AddNumberToObject(a, "mmu_page_size", d->mmu_page_size);
        } else {
            cJSON_AddNullToObject(o, "app_desc");
        }
        if (bd) {
            cJSON *b = cJSON_AddObjectToObject(o, "bootloader_desc");
            cJSON_AddStringToObject(b, "idf_ver", bd->idf_ver);
            cJSON_AddStringToObject(b, "date_time", bd->date_time);
        }
    }
    if (rc == 0 && rec_rc == 0) {
        cJSON *s = cJSON_AddObjectToObject(o, "sim");
        cJSON_AddBoolToObject(s, "record", rec->present);
        cJSON_AddStringToObject(s, "behaviour", aloft_sim_behaviour_format(rec, buf, sizeof buf));
        if (rec->behaviour == ALOFT_SIM_CONFIRM_AFTER)
            cJSON_AddNumberToObject(s, "confirm_after_s", rec->confirm_after_s);
    }
    cJSON_AddItemToObject(o, "signatures", aloft_cmd_sig_json(img, len));
    char *text = cJSON_Print(o);
    if (text)
        printf("%s\n", text);
    free(text);
    cJSON_Delete(o);
}

/* A chip name from an option, or -1 with a message. */
static int chip_arg(const char *cmd, const char *name)
{
    int id = aloft_chip_id(name);
    if (id < 0)
        fprintf(stderr, "aloft image %s: unknown chip '%s' (known: %s)\n", cmd, name, chip_list());
    return id;
}

/* The usage lines, also for usage errors. */
static const char info_synopsis[] = "usage: aloft image info FILE [--json] [--chip CHIP]\n";
static const char make_synopsis[] = "usage: aloft image make --chip CHIP --project NAME --version VER [--secure-version N]\n"
                                    "                        [--size BYTES] [--sim BEHAVIOUR] -o FILE\n";

static void info_help(void)
{
    fputs(info_synopsis, stdout);
    printf(
            "\n"
            "Check an ESP app image the way the bootloader does (header, segments, checksum,\n"
            "SHA-256) and show its header, segments and app descriptor (project, version,\n"
            "secure_version), the simulator record of an image from `aloft image make`, and\n"
            "each secure boot v2 signature block: scheme, public key digest, valid or not.\n"
            "\n"
            "  --chip CHIP   also require the image to be built for CHIP, one of\n"
            "                %s\n"
            "  --json        print one JSON object instead of text\n"
            "\n"
            "example: aloft image info build/app.bin --chip esp32s3\n"
            "exit status: 0 valid, 1 invalid or unreadable, 2 usage error\n",
            chip_list());
}

int aloft_cmd_image_info(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, 'j'},
        {"chip", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    bool json = false;
    int want = ALOFT_CHIP_ANY, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case 'j':
            json = true;
            break;
        case 'c':
            if ((want = chip_arg("info", optarg)) < 0)
                return EXIT_USAGE;
            break;
        case 'h':
            info_help();
            return 0;
        default:
            return aloft_usage_bad_option(argv[0], info_synopsis, c, argv);
        }
    }
    if (optind == argc)
        return aloft_usage_error(argv[0], info_synopsis, "missing FILE");
    if (optind < argc - 1)
        return aloft_usage_error(argv[0], info_synopsis, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    uint8_t *img;
    size_t len;
    if (aloft_file_read(path, &img, &len)) {
        fprintf(stderr, "aloft image info: %s: %s\n", path, strerror(errno));
        return 1;
    }
    struct aloft_image_verifier *v = malloc(sizeof *v);
    if (!v) {
        free(img);
        fprintf(stderr, "aloft image info: out of memory\n");
        return 1;
    }
    aloft_image_begin(v, (uint16_t)want, 0);
    aloft_image_feed(v, img, len);
    int rc = aloft_image_end(v);
    const struct aloft_image_info *in = &v->info;
    struct aloft_sim_record rec = {0};
    int rec_rc = rc ? 0 : aloft_sim_record_parse(img, len, &rec);
    struct aloft_cmd_boot_desc bdesc;
    const struct aloft_cmd_boot_desc *bd = aloft_cmd_bootloader_desc(in, img, len, &bdesc) ? &bdesc : NULL;
    /* The header fields mean something once the header passed the ESP8266 check. */
    bool header = in->total_len >= ALOFT_IMAGE_HEADER_BYTES && rc != ALOFT_E_MAGIC && rc != ALOFT_E_ESP8266;
    if (json)
        print_json(path, img, len, rc, in, header, bd, &rec, rec_rc);
    else if (header)
        print_text(path, img, len, rc, in, bd, &rec, rec_rc);
    if (!json && header)
        aloft_cmd_sig_text(img, len);
    if (rc) {
        fprintf(stderr, "aloft image info: %s: %s\n", path, aloft_strerror(rc));
        explain(rc, in, (uint16_t)want, img, len);
    } else if (rec_rc) {
        fprintf(stderr, "aloft image info: %s: the simulator record is malformed (%s); make the image again "
                        "with `aloft image make --sim ...`\n", path, aloft_strerror(rec_rc));
    }
    free(v);
    free(img);
    return rc || rec_rc ? 1 : 0;
}

static void make_help(void)
{
    fputs(make_synopsis, stdout);
    printf(
            "\n"
            "Synthesise a valid ESP app image (header, segments, checksum, SHA-256, app\n"
            "descriptor) for tests and for the simulated device aloft-node. The same\n"
            "arguments always give the same bytes.\n"
            "\n"
            "  --chip CHIP          one of %s\n"
            "  --project NAME       project_name of the app descriptor (1..31 bytes)\n"
            "  --version VER        version of the app descriptor (1..31 bytes)\n"
            "  --secure-version N   anti-rollback counter (default 0)\n"
            "  --size BYTES         grow the code with incompressible bytes so that the file is\n"
            "                       BYTES long, rounded down to a multiple of 16 (K and M suffixes\n"
            "                       allowed; at least about 64 KB: the tool says the minimum)\n"
            "  --sim BEHAVIOUR      embed a simulator record: panic-on-boot, hang, no-confirm or\n"
            "                       confirm-after=SECONDS (0..%u); without it the firmware is healthy\n"
            "  -o, --output FILE    where to write the image ('-' for standard output)\n"
            "\n"
            "example: aloft image make --chip esp32s3 --project demo --version 1.2.0 --size 1M \\\n"
            "             --sim confirm-after=5 -o demo-1.2.0.bin\n",
            chip_list(), ALOFT_SIM_CONFIRM_AFTER_MAX);
}

static int parse_u32(const char *s, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v > 0xFFFFFFFFull)
        return -1;
    *out = (uint32_t)v;
    return 0;
}

int aloft_cmd_image_make(int argc, char **argv)
{
    static const struct option opts[] = {
        {"chip", required_argument, NULL, 'c'},
        {"project", required_argument, NULL, 'p'},
        {"version", required_argument, NULL, 'v'},
        {"secure-version", required_argument, NULL, 's'},
        {"size", required_argument, NULL, 'S'},
        {"sim", required_argument, NULL, 'm'},
        {"output", required_argument, NULL, 'o'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    struct aloft_image_make_opts mo = {0};
    const char *output = NULL;
    int chip = -1, c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            if ((chip = chip_arg("make", optarg)) < 0)
                return EXIT_USAGE;
            break;
        case 'p':
            mo.project = optarg;
            break;
        case 'v':
            mo.version = optarg;
            break;
        case 's':
            if (parse_u32(optarg, &mo.secure_version)) {
                fprintf(stderr, "aloft image make: --secure-version wants a number 0..4294967295, not '%s'\n", optarg);
                return EXIT_USAGE;
            }
            break;
        case 'S':
            if (aloft_parse_size(optarg, &mo.size) || !mo.size) {
                fprintf(stderr, "aloft image make: --size wants a byte count such as 1048576, 0x100000 or 1M, not '%s'\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        case 'm':
            mo.sim = optarg;
            break;
        case 'o':
            output = optarg;
            break;
        case 'h':
            make_help();
            return 0;
        default:
            return aloft_usage_bad_option(argv[0], make_synopsis, c, argv);
        }
    }
    if (optind != argc)
        return aloft_usage_error(argv[0], make_synopsis, "unexpected argument '%s'", argv[optind]);
    if (chip < 0 || !mo.project || !mo.version || !output)
        return aloft_usage_error(argv[0], make_synopsis, "missing %s",
                                 chip < 0       ? "--chip CHIP"
                                 : !mo.project  ? "--project NAME"
                                 : !mo.version  ? "--version VER"
                                                : "-o FILE");
    mo.chip_id = (uint16_t)chip;
    struct aloft_sim_record rec;
    if (mo.sim && aloft_sim_behaviour_parse(mo.sim, &rec)) {
        fprintf(stderr, "aloft image make: unknown --sim '%s': use panic-on-boot, hang, no-confirm or "
                        "confirm-after=SECONDS (0..%u)\n", mo.sim, ALOFT_SIM_CONFIRM_AFTER_MAX);
        return EXIT_USAGE;
    }
    if (!*mo.project || strlen(mo.project) > 31 || !*mo.version || strlen(mo.version) > 31) {
        fprintf(stderr, "aloft image make: --project and --version must be 1..31 bytes (the descriptor's fields are 32 bytes with the NUL)\n");
        return EXIT_USAGE;
    }
    uint8_t *img;
    size_t len;
    int rc = aloft_image_make(&mo, &img, &len);
    if (rc == ALOFT_E_NOSPC) {
        fprintf(stderr, "aloft image make: --size %u is too small: the smallest image is %zu bytes\n",
                (unsigned)mo.size, len);
        return EXIT_USAGE;
    }
    if (rc == ALOFT_E_INVAL) {
        fprintf(stderr, "aloft image make: --size %u is too large: the code segment must stay below 16 MB\n",
                (unsigned)mo.size);
        return EXIT_USAGE;
    }
    if (rc) {
        fprintf(stderr, "aloft image make: %s\n", aloft_strerror(rc));
        return 1;
    }
    if (aloft_file_write(output, img, len)) {
        fprintf(stderr, "aloft image make: %s: %s\n", output, strerror(errno));
        free(img);
        return 1;
    }
    if (strcmp(output, "-"))
        printf("%s: %s app '%s' version %s, %zu bytes%s%s\n", output, aloft_chip_name(mo.chip_id), mo.project,
               mo.version, len, mo.sim ? ", simulator: " : "", mo.sim ? mo.sim : "");
    free(img);
    return 0;
}
