/* aloft part csv2bin | bin2csv | show: ESP-IDF partition tables. */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "aloft/err.h"
#include "aloft/part.h"
#include "cmd.h"
#include "file.h"

enum { OPT_OFFSET = 256, OPT_FLASH_SIZE, OPT_NO_MD5, OPT_JSON };

enum format { FMT_AUTO, FMT_CSV, FMT_BIN };

struct spec {
    const char *name;
    const char *input; /* the input's name in the usage line */
    const char *help;  /* starts with the usage line */
    const char *shortopts;
    const struct option *longopts;
};

struct opts {
    uint32_t offset;
    uint32_t flash_size;
    const char *input;
    const char *output;
    bool no_md5;
    bool json;
};

static const struct option csv2bin_longopts[] = {
    {"output", required_argument, NULL, 'o'},
    {"offset", required_argument, NULL, OPT_OFFSET},
    {"flash-size", required_argument, NULL, OPT_FLASH_SIZE},
    {"no-md5", no_argument, NULL, OPT_NO_MD5},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option bin2csv_longopts[] = {
    {"output", required_argument, NULL, 'o'},
    {"offset", required_argument, NULL, OPT_OFFSET},
    {"flash-size", required_argument, NULL, OPT_FLASH_SIZE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static const struct option show_longopts[] = {
    {"json", no_argument, NULL, OPT_JSON},
    {"offset", required_argument, NULL, OPT_OFFSET},
    {"flash-size", required_argument, NULL, OPT_FLASH_SIZE},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

#define COMMON_HELP                                                                                \
    "      --offset ADDR      flash offset of the table (default 0x8000, a multiple of\n"         \
    "                         0x1000); partitions start at ADDR + 0x1000 or later\n"              \
    "      --flash-size SIZE  check that every partition fits (4MB, 8M, 0x800000...)\n"           \
    "  -h, --help             this help\n"

static const struct spec csv2bin_spec = {
    "csv2bin",
    "IN.csv",
    "usage: aloft part csv2bin IN.csv -o OUT.bin [--offset 0x8000] [--flash-size SIZE] [--no-md5]\n"
    "\n"
    "Compile an ESP-IDF partition CSV (gen_esp32part.py syntax) into the binary\n"
    "table flashed at the table offset: 3072 bytes, byte-identical to ESP-IDF's.\n"
    "Empty offsets are placed after the previous partition.\n"
    "\n"
    "  -o, --output FILE      where to write the table (\"-\": standard output)\n"
    "      --no-md5           leave out the MD5 entry (CONFIG_PARTITION_TABLE_MD5=n)\n"
    COMMON_HELP
    "\n"
    "example:\n"
    "  aloft part csv2bin partitions.csv -o partition-table.bin --flash-size 4MB\n",
    ":o:h",
    csv2bin_longopts,
};

static const struct spec bin2csv_spec = {
    "bin2csv",
    "IN.bin",
    "usage: aloft part bin2csv IN.bin [-o OUT.csv] [--offset 0x8000] [--flash-size SIZE]\n"
    "\n"
    "Check a binary partition table (MD5, alignment, overlaps...) and print it as\n"
    "ESP-IDF CSV, as gen_esp32part.py does.\n"
    "\n"
    "  -o, --output FILE      write the CSV there instead of standard output\n"
    COMMON_HELP
    "\n"
    "example:\n"
    "  aloft part bin2csv partition-table.bin > partitions.csv\n",
    ":o:h",
    bin2csv_longopts,
};

static const struct spec show_spec = {
    "show",
    "FILE",
    "usage: aloft part show FILE [--json] [--offset 0x8000] [--flash-size SIZE]\n"
    "\n"
    "Check and show a partition table, CSV or binary (told apart by its first\n"
    "bytes): label, type, subtype, offset, size and flags of every partition.\n"
    "\n"
    "      --json             print JSON instead of a table\n"
    COMMON_HELP
    "\n"
    "examples:\n"
    "  aloft part show partitions.csv\n"
    "  aloft part show --json build/partition_table/partition-table.bin\n",
    ":h",
    show_longopts,
};

/* Flash sizes as ESP-IDF spells them ("4MB") or as aloft_parse_size does. */
static int parse_flash_size(const char *s, uint32_t *out)
{
    char buf[32];
    size_t n = strlen(s);
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, s, n + 1);
    if (n >= 3 && (buf[n - 1] == 'B' || buf[n - 1] == 'b') && strchr("KkMm", buf[n - 2]))
        buf[n - 1] = 0;
    return aloft_parse_size(buf, out) || *out == 0 ? -1 : 0;
}

/* Returns an exit status, or -1 to go on with o filled. */
static int parse_args(const struct spec *c, int argc, char **argv, struct opts *o)
{
    *o = (struct opts){.offset = ALOFT_PART_TABLE_OFFSET};
    opterr = 0;
    optind = 1;
    int ch;
    while ((ch = getopt_long(argc, argv, c->shortopts, c->longopts, NULL)) != -1) {
        switch (ch) {
        case 'h':
            fputs(c->help, stdout);
            return 0;
        case 'o':
            o->output = optarg;
            break;
        case OPT_OFFSET:
            if (aloft_parse_size(optarg, &o->offset) || o->offset % 0x1000)
                return aloft_usage_error(argv[0], c->help, "--offset wants a multiple of 0x1000, e.g. 0x8000, not %s", optarg);
            break;
        case OPT_FLASH_SIZE:
            if (parse_flash_size(optarg, &o->flash_size))
                return aloft_usage_error(argv[0], c->help, "--flash-size wants a size such as 4MB or 0x400000, not %s", optarg);
            break;
        case OPT_NO_MD5:
            o->no_md5 = true;
            break;
        case OPT_JSON:
            o->json = true;
            break;
        default:
            return aloft_usage_bad_option(argv[0], c->help, ch, argv);
        }
    }
    if (optind == argc)
        return aloft_usage_error(argv[0], c->help, "missing %s", c->input);
    if (optind + 1 < argc)
        return aloft_usage_error(argv[0], c->help, "unexpected argument '%s'", argv[optind + 1]);
    o->input = argv[optind];
    return -1;
}

/* What to do about an error, beyond aloft_strerror's sentence. */
static const char *hint(int rc)
{
    switch (rc) {
    case ALOFT_E_PART_MAGIC: return "this is not a partition table or it is damaged (every entry starts AA 50)";
    case ALOFT_E_PART_MD5: return "the table was changed after it was generated, or is damaged: regenerate it from its CSV";
    case ALOFT_E_PART_ALIGN: return "apps start on a 64 KB (0x10000) boundary and are whole 4 KB sectors; other partitions start on a 4 KB (0x1000) boundary";
    case ALOFT_E_PART_OVERLAP: return "list partitions in address order, each starting at or after the end of the one before, or leave offsets empty to place them automatically";
    case ALOFT_E_PART_RANGE: return "partitions start after the table's sector (table offset + 0x1000) and end inside the flash: check --offset and --flash-size";
    case ALOFT_E_PART_LABEL: return "every partition needs its own name of 1 to 16 bytes";
    case ALOFT_E_PART_TYPE: return "types are app, data, bootloader, partition_table or a number; app subtypes factory, test, ota_0..ota_15; data subtypes ota, phy, nvs, coredump, nvs_keys, efuse, undefined, fat, spiffs, littlefs";
    case ALOFT_E_TOOMANY: return "a table holds at most 95 partitions, 94 with the MD5 entry";
    case ALOFT_E_TRUNCATED: return "the table has no end marker (32 bytes of FF): the file is cut short";
    case ALOFT_E_SYNTAX: return "a line is Name, Type, SubType, Offset, Size, Flags; numbers are decimal or 0x hex with an optional K or M; flags are encrypted and readonly, joined by ':'";
    default: return NULL;
    }
}

/* Length of the well-formed UTF-8 sequence at s (n bytes left), 0 if none. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    if (!len || len > n)
        return 0;
    for (size_t i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0) || (c == 0xED && s[1] >= 0xA0) || (c == 0xF0 && s[1] < 0x90) ||
        (c == 0xF4 && s[1] >= 0x90))
        return 0; /* overlong, surrogate or beyond U+10FFFF */
    return len;
}

/* A label for people: raw bytes from flash may be anything, so control
 * characters and broken UTF-8 become `bad` (one character each).
 * Returns the width in characters; *clean tells whether nothing was replaced. */
#define LABEL_TEXT_MAX (ALOFT_PART_LABEL_MAX * 3 + 1)
static size_t label_text(const char *label, const char *bad, char out[LABEL_TEXT_MAX], bool *clean)
{
    const unsigned char *s = (const unsigned char *)label;
    size_t n = strlen(label), o = 0, width = 0;
    *clean = true;
    for (size_t i = 0; i < n; width++) {
        size_t len = utf8_seq(s + i, n - i);
        if (len == 0 || s[i] < 0x20 || s[i] == 0x7F) {
            memcpy(out + o, bad, strlen(bad));
            o += strlen(bad);
            *clean = false;
            i++;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
            i += len;
        }
    }
    out[o] = 0;
    return width;
}

static void report(const char *cmd, const char *file, uint32_t line, const struct aloft_part *p, int rc)
{
    fprintf(stderr, "aloft part %s: %s", cmd, file);
    if (line)
        fprintf(stderr, ":%u", (unsigned)line);
    if (p) {
        char text[LABEL_TEXT_MAX];
        bool clean;
        label_text(p->label, "?", text, &clean);
        fprintf(stderr, ": partition '%s' at 0x%x", text, (unsigned)p->offset);
    }
    fprintf(stderr, ": %s\n", aloft_strerror(rc));
    if (hint(rc))
        fprintf(stderr, "aloft part %s: %s\n", cmd, hint(rc));
}

static bool is_validation_error(int rc)
{
    return rc == ALOFT_E_PART_ALIGN || rc == ALOFT_E_PART_OVERLAP || rc == ALOFT_E_PART_RANGE ||
           rc == ALOFT_E_PART_LABEL || rc == ALOFT_E_PART_KIND;
}

/* Read o->input as fmt (FMT_AUTO: by its first bytes, like gen_esp32part.py,
 * plus the MD5-only and empty tables) and check it; prints why not. */
static int load(const struct spec *c, const struct opts *o, enum format fmt, struct aloft_part_table *t,
                enum format *got)
{
    uint8_t *data;
    size_t len;
    if (aloft_file_read(o->input, &data, &len)) {
        fprintf(stderr, "aloft part %s: cannot read %s: %s\n", c->name, o->input, strerror(errno));
        return 1;
    }
    if (fmt == FMT_AUTO)
        fmt = len >= 2 && ((data[0] == 0xAA && data[1] == 0x50) || (data[0] == 0xEB && data[1] == 0xEB) ||
                           (data[0] == 0xFF && data[1] == 0xFF))
                  ? FMT_BIN
                  : FMT_CSV;
    if (got)
        *got = fmt;
    uint32_t line = 0, bad;
    int rc;
    if (fmt == FMT_BIN) {
        rc = aloft_part_parse(t, data, len, o->offset, o->flash_size);
    } else {
        rc = aloft_part_csv_parse(t, (const char *)data, len, o->offset, &line);
        if (rc == 0)
            rc = aloft_part_validate(t, o->offset, o->flash_size);
    }
    free(data);
    if (rc == 0)
        return 0;
    /* Name the partition when the table parsed but broke a rule. */
    const struct aloft_part *p = NULL;
    if (!line && is_validation_error(rc) && aloft_part_check(t, o->offset, o->flash_size, &bad) == rc)
        p = &t->p[bad];
    report(c->name, o->input, line, p, rc);
    return 1;
}

static int write_out(const struct spec *c, const char *path, const void *data, size_t len)
{
    if (aloft_file_write(path, data, len) == 0)
        return 0;
    fprintf(stderr, "aloft part %s: cannot write %s: %s\n", c->name, strcmp(path, "-") ? path : "standard output",
            strerror(errno));
    return 1;
}

int aloft_cmd_part_csv2bin(int argc, char **argv)
{
    struct opts o;
    struct aloft_part_table t;
    uint8_t bin[ALOFT_PART_TABLE_BYTES];
    int rc = parse_args(&csv2bin_spec, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (!o.output)
        return aloft_usage_error(argv[0], csv2bin_spec.help, "missing -o OUT.bin");
    if (load(&csv2bin_spec, &o, FMT_CSV, &t, NULL))
        return 1;
    t.md5 = !o.no_md5;
    rc = aloft_part_build(&t, bin, sizeof bin);
    if (rc < 0) {
        report(csv2bin_spec.name, o.input, 0, NULL, rc);
        return 1;
    }
    return write_out(&csv2bin_spec, o.output, bin, (size_t)rc);
}

int aloft_cmd_part_bin2csv(int argc, char **argv)
{
    struct opts o;
    struct aloft_part_table t;
    char csv[ALOFT_PART_CSV_MAX];
    int rc = parse_args(&bin2csv_spec, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (load(&bin2csv_spec, &o, FMT_BIN, &t, NULL))
        return 1;
    rc = aloft_part_csv_write(&t, csv, sizeof csv);
    if (rc < 0) {
        fprintf(stderr, "aloft part bin2csv: %s: %s: a label has a comma, a line break, surrounding "
                        "spaces or a leading '#', so CSV cannot hold it\n",
                o.input, aloft_strerror(rc));
        return 1;
    }
    return write_out(&bin2csv_spec, o.output ? o.output : "-", csv, (size_t)rc);
}

static void human_size(uint64_t v, char *buf, size_t cap)
{
    static const char *const units[] = {"KiB", "MiB", "GiB"};
    if (v < 1024) {
        snprintf(buf, cap, "%u B", (unsigned)v);
        return;
    }
    int u = v >= 1u << 30 ? 2 : v >= 1u << 20 ? 1 : 0;
    uint64_t unit = 1ull << (10 * (u + 1));
    if (v % unit == 0)
        snprintf(buf, cap, "%u %s", (unsigned)(v / unit), units[u]);
    else
        snprintf(buf, cap, "%.1f %s", (double)v / (double)unit, units[u]);
}

static void kind_text(const char *name, uint8_t v, char *buf, size_t cap)
{
    if (name)
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "0x%02x", v);
}

/* "encrypted:readonly" as in the CSV, unknown bits in hex. */
static void flags_text(uint32_t flags, char *buf, size_t cap)
{
    uint32_t rest = flags & ~(ALOFT_PART_FLAG_ENCRYPTED | ALOFT_PART_FLAG_READONLY);
    size_t n = 0;
    buf[0] = 0;
    if (flags & ALOFT_PART_FLAG_ENCRYPTED)
        n += (size_t)snprintf(buf + n, cap - n, "encrypted");
    if (flags & ALOFT_PART_FLAG_READONLY)
        n += (size_t)snprintf(buf + n, cap - n, "%sreadonly", n ? ":" : "");
    if (rest)
        snprintf(buf + n, cap - n, "%s0x%x", n ? ":" : "", (unsigned)rest);
}

static uint64_t flash_end(const struct aloft_part_table *t)
{
    uint64_t end = 0;
    for (uint32_t i = 0; i < t->count; i++)
        if ((uint64_t)t->p[i].offset + t->p[i].size > end)
            end = (uint64_t)t->p[i].offset + t->p[i].size;
    return end;
}

enum { COL_LABEL, COL_TYPE, COL_SUBTYPE, COL_OFFSET, COL_SIZE, COL_HUMAN, COL_FLAGS, COLS };

struct row {
    char cell[COLS][LABEL_TEXT_MAX];
    size_t width[COLS];
};

static void show_text(const struct opts *o, const struct aloft_part_table *t, enum format fmt)
{
    static const char *const head[COLS] = {"Label", "Type", "SubType", "Offset", "Size", "Human", "Flags"};
    struct row rows[ALOFT_PART_MAX + 1];
    size_t width[COLS] = {0};
    char end_human[32];

    printf("%s: ESP-IDF partition table (%s), table at 0x%x\n", o->input, fmt == FMT_BIN ? "binary" : "CSV",
           (unsigned)o->offset);
    for (int c = 0; c < COLS; c++) {
        snprintf(rows[0].cell[c], LABEL_TEXT_MAX, "%s", head[c]);
        rows[0].width[c] = strlen(head[c]);
    }
    for (uint32_t i = 0; i < t->count; i++) {
        const struct aloft_part *p = &t->p[i];
        struct row *r = &rows[i + 1];
        bool clean;
        r->width[COL_LABEL] = label_text(p->label, "?", r->cell[COL_LABEL], &clean);
        kind_text(aloft_part_type_name(p->type), p->type, r->cell[COL_TYPE], LABEL_TEXT_MAX);
        kind_text(aloft_part_subtype_name(p->type, p->subtype), p->subtype, r->cell[COL_SUBTYPE], LABEL_TEXT_MAX);
        snprintf(r->cell[COL_OFFSET], LABEL_TEXT_MAX, "0x%x", (unsigned)p->offset);
        snprintf(r->cell[COL_SIZE], LABEL_TEXT_MAX, "0x%x", (unsigned)p->size);
        human_size(p->size, r->cell[COL_HUMAN], LABEL_TEXT_MAX);
        flags_text(p->flags, r->cell[COL_FLAGS], LABEL_TEXT_MAX);
        for (int c = COL_TYPE; c < COLS; c++)
            r->width[c] = strlen(r->cell[c]);
    }
    for (uint32_t i = 0; i <= t->count; i++)
        for (int c = 0; c < COLS; c++)
            if (rows[i].width[c] > width[c])
                width[c] = rows[i].width[c];
    for (uint32_t i = 0; i <= t->count; i++) {
        char line[COLS * (LABEL_TEXT_MAX + 2 * LABEL_TEXT_MAX)];
        size_t n = 0;
        for (int c = 0; c < COLS; c++)
            n += (size_t)snprintf(line + n, sizeof line - n, "%s%*s", rows[i].cell[c],
                                  (int)(width[c] - rows[i].width[c] + 2), "");
        while (n && line[n - 1] == ' ') /* no trailing blanks when Flags is empty */
            n--;
        printf("%.*s\n", (int)n, line);
    }
    human_size(flash_end(t), end_human, sizeof end_human);
    printf("%u partition%s, %s MD5 entry; partitions end at 0x%llx (%s)\n", (unsigned)t->count,
           t->count == 1 ? "" : "s", t->md5 ? "with" : "without", (unsigned long long)flash_end(t), end_human);
}

static int show_json(const struct opts *o, const struct aloft_part_table *t, enum format fmt)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *parts = cJSON_CreateArray();
    cJSON_AddStringToObject(root, "file", o->input);
    cJSON_AddStringToObject(root, "format", fmt == FMT_BIN ? "binary" : "csv");
    cJSON_AddNumberToObject(root, "table_offset", o->offset);
    cJSON_AddBoolToObject(root, "md5", t->md5);
    cJSON_AddNumberToObject(root, "end", (double)flash_end(t));
    cJSON_AddItemToObject(root, "partitions", parts);
    for (uint32_t i = 0; i < t->count; i++) {
        const struct aloft_part *p = &t->p[i];
        cJSON *j = cJSON_CreateObject();
        cJSON *flags = cJSON_CreateArray();
        char text[LABEL_TEXT_MAX];
        bool clean;
        const char *type = aloft_part_type_name(p->type);
        const char *subtype = aloft_part_subtype_name(p->type, p->subtype);

        /* JSON strings are UTF-8: replace what is not, and give the bytes. */
        label_text(p->label, "\xEF\xBF\xBD", text, &clean);
        cJSON_AddStringToObject(j, "label", text);
        if (!clean) {
            char hex[ALOFT_PART_LABEL_MAX * 2 + 1];
            for (size_t k = 0; p->label[k]; k++)
                snprintf(hex + 2 * k, 3, "%02x", (unsigned char)p->label[k]);
            cJSON_AddStringToObject(j, "label_hex", hex);
        }
        if (type)
            cJSON_AddStringToObject(j, "type", type);
        else
            cJSON_AddNullToObject(j, "type");
        cJSON_AddNumberToObject(j, "type_id", p->type);
        if (subtype)
            cJSON_AddStringToObject(j, "subtype", subtype);
        else
            cJSON_AddNullToObject(j, "subtype");
        cJSON_AddNumberToObject(j, "subtype_id", p->subtype);
        cJSON_AddNumberToObject(j, "offset", p->offset);
        cJSON_AddNumberToObject(j, "size", p->size);
        if (p->flags & ALOFT_PART_FLAG_ENCRYPTED)
            cJSON_AddItemToArray(flags, cJSON_CreateString("encrypted"));
        if (p->flags & ALOFT_PART_FLAG_READONLY)
            cJSON_AddItemToArray(flags, cJSON_CreateString("readonly"));
        cJSON_AddItemToObject(j, "flags", flags);
        cJSON_AddNumberToObject(j, "flags_value", p->flags);
        cJSON_AddItemToArray(parts, j);
    }
    char *s = cJSON_Print(root);
    cJSON_Delete(root);
    if (!s) {
        fprintf(stderr, "aloft part show: out of memory\n");
        return 1;
    }
    puts(s);
    cJSON_free(s);
    return 0;
}

int aloft_cmd_part_show(int argc, char **argv)
{
    struct opts o;
    struct aloft_part_table t;
    enum format fmt;
    int rc = parse_args(&show_spec, argc, argv, &o);
    if (rc >= 0)
        return rc;
    if (load(&show_spec, &o, FMT_AUTO, &t, &fmt))
        return 1;
    if (o.json)
        return show_json(&o, &t, fmt);
    show_text(&o, &t, fmt);
    return 0;
}
