/* aloft flash init|show: whole flash images, as a device holds them. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aloft/boot.h"
#include "aloft/err.h"
#include "aloft/image.h"
#include "aloft/otadata.h"
#include "aloft_posix_flash.h"
#include "cmd.h"
#include "file.h"
#include "flashimg.h"
#include "hex.h"

static const char init_help[] =
    "usage: aloft flash init --partitions CSV --flash-size SIZE --app FILE [--bootloader FILE] -o FLASH.img\n"
    "                        [--table-offset OFF]\n"
    "\n"
    "Build a whole flash image as a freshly flashed device holds it: the bootloader at the\n"
    "chip's bootloader offset (0x1000 on ESP32 and ESP32-S2, 0x2000 on ESP32-P4 and -C5,\n"
    "else 0), the partition table (ESP-IDF CSV, compiled as gen_esp32part.py does) at\n"
    "0x8000, erased otadata, and the app in the factory slot (or ota_0 when there is none).\n"
    "Both images are verified first; a bootloader given as the app is refused. Everything\n"
    "else reads as erased flash (0xFF). The file is written atomically. With a bootloader\n"
    "it is what esptool writes to a device at offset 0; aloft-node boots it either way.\n"
    "\n"
    "  --partitions CSV     partition table in ESP-IDF CSV syntax\n"
    "  --flash-size SIZE    4M, 8M, 16M, or bytes (a multiple of 4096)\n"
    "  --app FILE           ESP app image (.bin) to boot\n"
    "  --bootloader FILE    the second-stage bootloader (build/bootloader/bootloader.bin),\n"
    "                       for the app's chip (default: none, that region stays erased)\n"
    "  -o, --output FILE    flash image to write\n"
    "  --table-offset OFF   partition table offset (default 0x8000)\n"
    "\n"
    "example:\n"
    "  aloft image make --chip esp32s3 --project demo --version 1.0.0 -o app.bin\n"
    "  aloft flash init --partitions partitions.csv --flash-size 4M --app app.bin -o flash.img\n"
    "  aloft flash init --partitions partitions.csv --flash-size 4M --app build/hello.bin \\\n"
    "      --bootloader build/bootloader/bootloader.bin -o flash.img\n"
    "  esptool.py --chip esp32s3 write_flash 0 flash.img\n";

static const char show_help[] =
    "usage: aloft flash show FLASH.img [--json] [--no-rollback] [--table-offset OFF]\n"
    "\n"
    "Show a flash image: the partition table, the app in each app slot (project, version,\n"
    "chip, whether it verifies), both otadata copies with their states, and which app the\n"
    "bootloader would start and why. Nothing is written to the file.\n"
    "\n"
    "  --json               one JSON object instead of text\n"
    "  --no-rollback        judge the boot as a bootloader without app rollback would\n"
    "                       (default: CONFIG_BOOTLOADER_APP_ROLLBACK_ENABLE on)\n"
    "  --table-offset OFF   partition table offset (default 0x8000)\n"
    "\n"
    "example:\n"
    "  aloft flash show flash.img\n";

enum { OPT_TABLE_OFFSET = 256, OPT_NO_ROLLBACK, OPT_JSON, OPT_BOOTLOADER };

/* Where the ROM looks for the second-stage bootloader (esptool's
 * BOOTLOADER_FLASH_OFFSET); the chips not listed use 0. */
static uint32_t bootloader_offset(uint16_t chip_id)
{
    static const struct {
        const char *chip;
        uint32_t offset;
    } offsets[] = {{"esp32", 0x1000}, {"esp32s2", 0x1000}, {"esp32p4", 0x2000}, {"esp32c5", 0x2000}};
    const char *name = aloft_chip_name(chip_id);
    for (size_t i = 0; name && i < sizeof offsets / sizeof offsets[0]; i++)
        if (!strcmp(name, offsets[i].chip))
            return offsets[i].offset;
    return 0;
}

/* The --bootloader file: an ESP image for the app's chip, not an app, that
 * ends before the partition table. Returns its offset, or -1 with why. */
static long check_bootloader(const char *path, const uint8_t *img, size_t len, uint16_t chip_id, uint32_t table_offset)
{
    struct aloft_image_info info;
    int rc = aloft_image_verify(img, len, chip_id, 0, &info);
    if (rc) {
        fprintf(stderr, "aloft flash init: %s is not a bootloader for %s: %s\n", path, aloft_chip_name(chip_id),
                aloft_strerror(rc));
        return -1;
    }
    if (info.has_desc) {
        fprintf(stderr, "aloft flash init: %s is an app ('%s' %s), not a bootloader: give it as --app\n", path,
                info.desc.project_name, info.desc.version);
        return -1;
    }
    uint32_t offset = bootloader_offset(chip_id);
    if (offset + len > table_offset) {
        fprintf(stderr, "aloft flash init: %s (%zu bytes at 0x%x) runs into the partition table at 0x%x\n", path, len,
                offset, table_offset);
        return -1;
    }
    return offset;
}

int aloft_cmd_flash_init(int argc, char **argv)
{
    static const struct option opts[] = {
        {"partitions", required_argument, NULL, 'p'}, {"flash-size", required_argument, NULL, 's'},
        {"app", required_argument, NULL, 'a'},        {"output", required_argument, NULL, 'o'},
        {"table-offset", required_argument, NULL, OPT_TABLE_OFFSET}, {"help", no_argument, NULL, 'h'},
        {"bootloader", required_argument, NULL, OPT_BOOTLOADER},     {NULL, 0, NULL, 0},
    };
    const char *csv_path = NULL, *app_path = NULL, *out = NULL, *boot_path = NULL;
    uint32_t flash_size = 0, table_offset = ALOFT_PART_TABLE_OFFSET;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        switch (c) {
        case 'p': csv_path = optarg; break;
        case 'a': app_path = optarg; break;
        case OPT_BOOTLOADER: boot_path = optarg; break;
        case 'o': out = optarg; break;
        case 's':
            if (aloft_parse_size(optarg, &flash_size) || !flash_size || flash_size % 4096) {
                fprintf(stderr, "aloft flash init: --flash-size '%s' is not a size like 4M or 0x400000\n", optarg);
                return 2;
            }
            break;
        case OPT_TABLE_OFFSET:
            if (aloft_parse_size(optarg, &table_offset) || table_offset % 4096) {
                fprintf(stderr, "aloft flash init: --table-offset must be a multiple of 0x1000\n");
                return 2;
            }
            break;
        case 'h': fputs(init_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], init_help, c, argv);
        }
    }
    if (optind != argc)
        return aloft_usage_error(argv[0], init_help, "unexpected argument '%s'", argv[optind]);
    if (!csv_path || !flash_size || !app_path || !out)
        return aloft_usage_error(argv[0], init_help, "missing %s",
                                 !csv_path     ? "--partitions CSV"
                                 : !flash_size ? "--flash-size SIZE"
                                 : !app_path   ? "--app FILE"
                                               : "-o FLASH.img");

    int status = 1;
    uint8_t *csv = NULL, *app = NULL, *boot = NULL;
    size_t csv_len, app_len, boot_len = 0;
    long boot_offset = 0;
    struct aloft_posix_flash pf = {.fd = -1};
    static struct aloft_part_table t;
    uint32_t line = 0;
    int rc;
    if (aloft_file_read(csv_path, &csv, &csv_len) || aloft_file_read(app_path, &app, &app_len)) {
        fprintf(stderr, "aloft flash init: %s: %s\n", csv ? app_path : csv_path, strerror(errno));
        goto out;
    }
    if ((rc = aloft_part_csv_parse(&t, (const char *)csv, csv_len, table_offset, &line))) {
        fprintf(stderr, "aloft flash init: %s:%u: %s\n", csv_path, line, aloft_strerror(rc));
        goto out;
    }
    if ((rc = aloft_part_validate(&t, table_offset, flash_size))) {
        fprintf(stderr, "aloft flash init: %s does not fit a %u-byte flash: %s\n", csv_path, flash_size,
                aloft_strerror(rc));
        goto out;
    }
    struct aloft_image_info info;
    rc = aloft_image_verify(app, app_len, ALOFT_CHIP_ANY, 0, &info);
    if (rc) {
        fprintf(stderr, "aloft flash init: %s is not a bootable app: %s (check it with 'aloft image info %s')\n",
                app_path, aloft_strerror(rc), app_path);
        goto out;
    }
    struct aloft_cmd_boot_desc bd;
    if (aloft_cmd_bootloader_desc(&info, app, app_len, &bd)) {
        fprintf(stderr, "aloft flash init: %s is an ESP-IDF bootloader, not an app: give it as --bootloader, and the "
                        "app (build/<project>.bin) as --app\n", app_path);
        goto out;
    }
    if (boot_path && aloft_file_read(boot_path, &boot, &boot_len)) {
        fprintf(stderr, "aloft flash init: %s: %s\n", boot_path, strerror(errno));
        goto out;
    }
    if (boot && (boot_offset = check_bootloader(boot_path, boot, boot_len, info.chip_id, table_offset)) < 0)
        goto out;
    if (aloft_posix_flash_mem(&pf, flash_size)) {
        fprintf(stderr, "aloft flash init: cannot allocate %u bytes: %s\n", flash_size, strerror(errno));
        goto out;
    }
    if ((rc = aloft_flashimg_init(&pf.port, &t, table_offset, app, app_len))) {
        const struct aloft_part *slot = aloft_flashimg_app_slot(&t);
        if (rc == ALOFT_E_NOSPC)
            fprintf(stderr, "aloft flash init: %s (%zu bytes) does not fit partition %s (%u bytes)\n", app_path,
                    app_len, slot->label, slot->size);
        else if (rc == ALOFT_E_NOTFOUND)
            fprintf(stderr, "aloft flash init: %s has no factory or ota_0 app partition\n", csv_path);
        else
            fprintf(stderr, "aloft flash init: %s\n", aloft_strerror(rc));
        goto out;
    }
    if (boot && (rc = aloft_flash_write(&pf.port, (uint32_t)boot_offset, boot, boot_len))) {
        fprintf(stderr, "aloft flash init: %s\n", aloft_strerror(rc));
        goto out;
    }
    if (aloft_file_write(out, pf.mem, flash_size)) {
        fprintf(stderr, "aloft flash init: %s: %s\n", out, strerror(errno));
        goto out;
    }
    printf("%s: %u bytes, app %s %s in %s", out, flash_size, info.has_desc ? info.desc.project_name : "(no descriptor)",
           info.has_desc ? info.desc.version : "", aloft_flashimg_app_slot(&t)->label);
    if (boot)
        printf(", bootloader at 0x%lx", boot_offset);
    printf(", partition table at 0x%x\n", table_offset);
    status = 0;
out:
    aloft_posix_flash_close(&pf);
    free(csv);
    free(app);
    free(boot);
    return status;
}

static const char *why_text(uint8_t why)
{
    switch (why) {
    case ALOFT_BOOT_OTADATA: return "otadata";
    case ALOFT_BOOT_DEFAULT: return "default";
    default: return "fallback";
    }
}

/* What the bootloader would do, on a copy so the file stays untouched. */
static int predict_boot(const struct aloft_posix_flash *pf, uint32_t table_offset, bool rollback, struct aloft_boot *b,
                        int64_t *state)
{
    struct aloft_posix_flash copy;
    if (aloft_posix_flash_mem(&copy, pf->size))
        return ALOFT_E_IO;
    memcpy(copy.mem, pf->mem, pf->size);
    int rc = aloft_boot_init(b, &copy.port, table_offset, ALOFT_CHIP_ANY, rollback);
    if (rc == 0)
        rc = aloft_boot_select(b);
    *state = rc == 0 ? aloft_boot_state(b) : ALOFT_OTA_UNDEFINED;
    aloft_posix_flash_close(&copy);
    return rc;
}

int aloft_cmd_flash_show(int argc, char **argv)
{
    static const struct option opts[] = {
        {"json", no_argument, NULL, OPT_JSON},
        {"no-rollback", no_argument, NULL, OPT_NO_ROLLBACK},
        {"table-offset", required_argument, NULL, OPT_TABLE_OFFSET},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    bool json = false, rollback = true;
    uint32_t table_offset = ALOFT_PART_TABLE_OFFSET;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_JSON: json = true; break;
        case OPT_NO_ROLLBACK: rollback = false; break;
        case OPT_TABLE_OFFSET:
            if (aloft_parse_size(optarg, &table_offset) || table_offset % 4096) {
                fprintf(stderr, "aloft flash show: --table-offset must be a multiple of 0x1000\n");
                return 2;
            }
            break;
        case 'h': fputs(show_help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], show_help, c, argv);
        }
    }
    if (optind == argc)
        return aloft_usage_error(argv[0], show_help, "missing FLASH.img");
    if (optind < argc - 1)
        return aloft_usage_error(argv[0], show_help, "unexpected argument '%s'", argv[optind + 1]);
    const char *path = argv[optind];
    /* Read into memory: the file is never written, and may be read-only. */
    struct aloft_posix_flash pf;
    uint8_t *data;
    size_t len;
    if (aloft_file_read(path, &data, &len) != 0) {
        fprintf(stderr, "aloft flash show: %s: %s\n", path, strerror(errno));
        return 1;
    }
    if (len == 0 || len % 4096 || len > 0xFFFFF000u || aloft_posix_flash_mem(&pf, (uint32_t)len) != 0) {
        fprintf(stderr, "aloft flash show: %s: not a flash image (%zu bytes; the size must be a multiple of 4096)\n",
                path, len);
        free(data);
        return 1;
    }
    memcpy(pf.mem, data, len);
    free(data);
    static struct aloft_boot b, now;
    int rc = aloft_boot_init(&now, &pf.port, table_offset, ALOFT_CHIP_ANY, rollback);
    if (rc) {
        fprintf(stderr, "aloft flash show: %s: no valid partition table at 0x%x: %s\n", path, table_offset,
                aloft_strerror(rc));
        aloft_posix_flash_close(&pf);
        return 1;
    }
    int64_t state;
    int boot_rc = predict_boot(&pf, table_offset, rollback, &b, &state);
    struct aloft_otadata od;
    bool have_od = now.otadata && aloft_otadata_read(&pf.port, now.otadata, &od) == 0;
    uint32_t n = aloft_part_ota_count(&now.table);

    cJSON *root = cJSON_CreateObject(), *parts = cJSON_AddArrayToObject(root, "partitions");
    cJSON_AddNumberToObject(root, "flash_size", pf.size);
    cJSON_AddNumberToObject(root, "table_offset", table_offset);
    if (!json)
        printf("%s: %u bytes, partition table at 0x%x\n\n%-16s %-5s %-9s %-10s %-10s %s\n", path, pf.size,
               table_offset, "label", "type", "subtype", "offset", "size", "contents");
    for (uint32_t i = 0; i < now.table.count; i++) {
        const struct aloft_part *p = &now.table.p[i];
        const char *tn = aloft_part_type_name(p->type), *sn = aloft_part_subtype_name(p->type, p->subtype);
        char tbuf[8], sbuf[8];
        snprintf(tbuf, sizeof tbuf, "0x%02x", p->type);
        snprintf(sbuf, sizeof sbuf, "0x%02x", p->subtype);
        cJSON *jp = cJSON_CreateObject();
        cJSON_AddItemToArray(parts, jp);
        cJSON_AddStringToObject(jp, "label", p->label);
        cJSON_AddStringToObject(jp, "type", tn ? tn : tbuf);
        cJSON_AddStringToObject(jp, "subtype", sn ? sn : sbuf);
        cJSON_AddNumberToObject(jp, "offset", p->offset);
        cJSON_AddNumberToObject(jp, "size", p->size);
        char contents[160] = "";
        if (p->type == ALOFT_PART_APP) {
            struct aloft_image_info info;
            int irc = aloft_image_verify_flash(&pf.port, p->offset, p->size, ALOFT_CHIP_ANY, &info);
            cJSON *app = cJSON_AddObjectToObject(jp, "app");
            cJSON_AddBoolToObject(app, "valid", irc == 0);
            if (irc == 0) {
                char sha[65];
                aloft_hex(info.sha256, 32, sha);
                const char *chip = aloft_chip_name(info.chip_id);
                cJSON_AddStringToObject(app, "chip", chip ? chip : "unknown");
                cJSON_AddNumberToObject(app, "size", info.image_len);
                cJSON_AddStringToObject(app, "sha256", info.hash_appended ? sha : "");
                if (info.has_desc) {
                    cJSON_AddStringToObject(app, "project", info.desc.project_name);
                    cJSON_AddStringToObject(app, "version", info.desc.version);
                    cJSON_AddNumberToObject(app, "secure_version", info.desc.secure_version);
                    cJSON_AddStringToObject(app, "idf_ver", info.desc.idf_ver);
                }
                snprintf(contents, sizeof contents, "%s %s %s (%u bytes, verifies)", chip ? chip : "?",
                         info.has_desc ? info.desc.project_name : "(no app descriptor)",
                         info.has_desc ? info.desc.version : "", info.image_len);
            } else {
                uint8_t first = 0xFF;
                aloft_flash_read(&pf.port, p->offset, &first, 1);
                const char *why = first == 0xFF ? "empty" : aloft_strerror(irc);
                cJSON_AddStringToObject(app, "error", why);
                snprintf(contents, sizeof contents, "%s%s", first == 0xFF ? "" : "no valid app: ", why);
            }
        }
        if (!json)
            printf("%-16s %-5s %-9s 0x%-8x %-10u %s\n", p->label, tn ? tn : tbuf, sn ? sn : sbuf, p->offset, p->size,
                   contents);
    }

    if (have_od) {
        cJSON *jod = cJSON_AddArrayToObject(root, "otadata");
        if (!json)
            printf("\notadata (%s at 0x%x):\n", now.otadata->label, now.otadata->offset);
        for (int i = 0; i < 2; i++) {
            const struct aloft_otadata_entry *e = &od.e[i];
            bool crc_ok = e->crc == aloft_otadata_crc(e->seq), empty = e->seq == 0xFFFFFFFFu;
            const struct aloft_part *sel = n && !empty ? aloft_part_ota(&now.table, aloft_otadata_slot(e, n)) : NULL;
            cJSON *je = cJSON_CreateObject();
            cJSON_AddItemToArray(jod, je);
            cJSON_AddNumberToObject(je, "copy", i);
            cJSON_AddNumberToObject(je, "seq", e->seq);
            cJSON_AddStringToObject(je, "state", aloft_otadata_state_name(e->state));
            cJSON_AddBoolToObject(je, "crc_ok", crc_ok);
            cJSON_AddBoolToObject(je, "valid", aloft_otadata_entry_valid(e));
            if (sel)
                cJSON_AddStringToObject(je, "selects", sel->label);
            if (json)
                continue;
            if (empty)
                printf("  copy %d: empty\n", i);
            else
                printf("  copy %d: seq %u, state %s, crc %s -> %s%s\n", i, e->seq, aloft_otadata_state_name(e->state),
                       crc_ok ? "ok" : "BAD", sel ? sel->label : "?", aloft_otadata_entry_valid(e) ? "" : " (ignored)");
        }
    }

    cJSON *jb = cJSON_AddObjectToObject(root, "boot");
    cJSON_AddBoolToObject(jb, "rollback", rollback);
    if (boot_rc) {
        cJSON_AddStringToObject(jb, "error", aloft_strerror(boot_rc));
        if (!json)
            printf("\nboots: nothing: %s\n", aloft_strerror(boot_rc));
    } else {
        cJSON_AddStringToObject(jb, "partition", b.running->label);
        cJSON_AddStringToObject(jb, "why", why_text(b.why));
        cJSON_AddStringToObject(jb, "state", aloft_otadata_state_name((uint32_t)state));
        if (!json) {
            static const char *explain[] = {
                "chosen by the valid otadata entry with the highest seq",
                "no valid otadata entry: the factory app, else ota_0",
                "the chosen app did not verify: the next app that does",
            };
            printf("\nboots: %s (%s; state after boot: %s)\n", b.running->label, explain[b.why],
                   aloft_otadata_state_name((uint32_t)state));
        }
    }
    if (json) {
        char *s = cJSON_Print(root);
        puts(s);
        free(s);
    }
    cJSON_Delete(root);
    aloft_posix_flash_close(&pf);
    return boot_rc ? 1 : 0;
}
