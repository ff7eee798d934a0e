/* aloft: ESP-IDF partition table CSV (gen_esp32part.py syntax), parse and
 * write. Freestanding: only memcpy/memset/memcmp from libc. */
#include "aloft/part.h"

#include <string.h>

#include "aloft/err.h"

#define TABLE_SECTOR 0x1000u
#define APP_ALIGN 0x10000u
#define DATA_ALIGN 0x1000u
#define NVS_RW_MIN 0x3000u /* NVS needs this much to be writable */
#define U32_LIMIT 0x100000000ull
#define FIELDS 6           /* Name, Type, SubType, Offset, Size, Flags */
#define BOOTLOADER_OTA 0x01

struct span {
    const char *p;
    size_t n;
};

/* Python's str.strip() set, ASCII part. */
static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

static struct span trim(struct span s)
{
    while (s.n && is_space(s.p[0])) {
        s.p++;
        s.n--;
    }
    while (s.n && is_space(s.p[s.n - 1]))
        s.n--;
    return s;
}

static size_t cstr_len(const char *s)
{
    size_t n = 0;
    while (s[n])
        n++;
    return n;
}

static bool span_eq(struct span s, const char *name)
{
    return s.n == cstr_len(name) && !memcmp(s.p, name, s.n);
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

/* Case-insensitive match against a lower-case name, as parse_int's
 * keywords[v.lower()]. */
static bool span_is(struct span s, const char *name)
{
    size_t i = 0;
    for (; i < s.n; i++)
        if (!name[i] || lower(s.p[i]) != name[i])
            return false;
    return name[i] == 0;
}

static int digit(char c, unsigned base)
{
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    return d >= 0 && (unsigned)d < base ? d : -1;
}

/* gen_esp32part.py's parse_int without keywords: int(v, 0), i.e. decimal
 * without leading zeros or 0x hex, times 1024 or 1024*1024 for a k/m suffix.
 * Values above 32 bits saturate at U32_LIMIT so callers can report them. */
static bool parse_number(struct span s, uint64_t *out)
{
    uint64_t mul = 1;
    if (s.n && (lower(s.p[s.n - 1]) == 'k' || lower(s.p[s.n - 1]) == 'm')) {
        mul = lower(s.p[s.n - 1]) == 'k' ? 1024u : 1024u * 1024u;
        s.n--;
    }
    unsigned base = 10;
    if (s.n > 2 && s.p[0] == '0' && lower(s.p[1]) == 'x') {
        base = 16;
        s.p += 2;
        s.n -= 2;
    } else {
        for (size_t i = 1; i < s.n && s.p[0] == '0'; i++)
            if (s.p[i] != '0')
                return false; /* int("010", 0) is an error in Python */
    }
    if (s.n == 0)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.n; i++) {
        int d = digit(lower(s.p[i]), base);
        if (d < 0)
            return false;
        v = v * base + (unsigned)d;
        if (v > U32_LIMIT)
            v = U32_LIMIT;
    }
    v *= mul;
    *out = v > U32_LIMIT ? U32_LIMIT : v;
    return true;
}

static int parse_u32(struct span s, uint32_t *out)
{
    uint64_t v;
    if (!parse_number(s, &v))
        return ALOFT_E_SYNTAX;
    if (v >= U32_LIMIT)
        return ALOFT_E_PART_RANGE;
    *out = (uint32_t)v;
    return 0;
}

/* A type (is_type) or a subtype of `type`: a number first, as parse_int
 * tries, else a name. */
static int parse_kind(struct span s, bool is_type, uint8_t type, uint8_t *out)
{
    uint64_t v;
    if (parse_number(s, &v)) {
        if (v > 0xFF)
            return ALOFT_E_PART_TYPE;
        *out = (uint8_t)v;
        return 0;
    }
    for (unsigned k = 0; k <= 0xFF; k++) {
        const char *name = is_type ? aloft_part_type_name((uint8_t)k)
                                   : aloft_part_subtype_name(type, (uint8_t)k);
        if (name && span_is(s, name)) {
            *out = (uint8_t)k;
            return 0;
        }
    }
    return ALOFT_E_PART_TYPE;
}

/* Colon-separated, matched exactly (no spaces), empty items allowed. */
static int parse_flags(struct span s, uint32_t *flags)
{
    size_t at = 0;
    while (at <= s.n) {
        size_t end = at;
        while (end < s.n && s.p[end] != ':')
            end++;
        struct span f = {s.p + at, end - at};
        if (span_eq(f, "encrypted"))
            *flags |= ALOFT_PART_FLAG_ENCRYPTED;
        else if (span_eq(f, "readonly"))
            *flags |= ALOFT_PART_FLAG_READONLY;
        else if (f.n)
            return ALOFT_E_SYNTAX;
        at = end + 1;
    }
    return 0;
}

static bool is_primary_system(const struct aloft_part *p)
{
    return (p->type == ALOFT_PART_BOOTLOADER || p->type == ALOFT_PART_TABLE) && p->subtype == 0;
}

/* One non-comment line into p; *placed says whether the offset is known
 * (given, or fixed by the entry's kind). */
static int parse_row(struct span line, uint32_t table_offset, struct aloft_part *p, bool *placed)
{
    /* Missing trailing fields are empty, extra ones ignored: gen_esp32part.py
     * appends ",,,," and reads the first six. */
    struct span f[FIELDS];
    size_t at = 0;
    for (int i = 0; i < FIELDS; i++) {
        if (at > line.n) {
            f[i] = (struct span){line.p + line.n, 0};
            continue;
        }
        size_t end = at;
        while (end < line.n && line.p[end] != ',')
            end++;
        f[i] = trim((struct span){line.p + at, end - at});
        at = end + 1;
    }

    memset(p, 0, sizeof *p);
    if (f[0].n == 0 || f[0].n > ALOFT_PART_LABEL_MAX)
        return ALOFT_E_PART_LABEL;
    for (size_t i = 0; i < f[0].n; i++)
        if (!f[0].p[i]) /* a NUL would cut the label short */
            return ALOFT_E_PART_LABEL;
    memcpy(p->label, f[0].p, f[0].n);

    if (f[1].n == 0)
        return ALOFT_E_SYNTAX;
    int rc = parse_kind(f[1], true, 0, &p->type);
    if (rc)
        return rc;
    if (f[2].n == 0) {
        if (p->type == ALOFT_PART_APP)
            return ALOFT_E_PART_TYPE;
        p->subtype = ALOFT_PART_UNDEFINED;
    } else if ((rc = parse_kind(f[2], false, p->type, &p->subtype))) {
        return rc;
    }

    /* gen_esp32part.py fixes the primary table at table_offset and every
     * table entry at one sector. It derives bootloader offsets and sizes from
     * the chip, which a CSV does not name: here they must be written out. */
    *placed = f[3].n != 0;
    if (*placed && (rc = parse_u32(f[3], &p->offset)))
        return rc;
    if (p->type == ALOFT_PART_TABLE) {
        p->size = TABLE_SECTOR;
        if (p->subtype == 0) {
            p->offset = table_offset;
            *placed = true;
        }
    } else if (f[4].n == 0) {
        return ALOFT_E_SYNTAX;
    } else if ((rc = parse_u32(f[4], &p->size))) {
        return rc;
    }
    if (p->type == ALOFT_PART_BOOTLOADER && p->subtype != BOOTLOADER_OTA && !*placed)
        return ALOFT_E_SYNTAX;

    if ((rc = parse_flags(f[5], &p->flags)))
        return rc;

    /* Rules gen_esp32part.py checks when generating. */
    if (p->type == ALOFT_PART_DATA) {
        bool ro = p->flags & ALOFT_PART_FLAG_READONLY;
        if (ro && (p->subtype == ALOFT_PART_OTADATA || p->subtype == ALOFT_PART_COREDUMP))
            return ALOFT_E_PART_KIND;
        if (!ro && p->subtype == ALOFT_PART_NVS && p->size < NVS_RW_MIN)
            return ALOFT_E_PART_KIND;
    }
    return 0;
}

int aloft_part_csv_parse(struct aloft_part_table *t, const char *csv, size_t len,
                         uint32_t table_offset, uint32_t *err_line)
{
    uint32_t lines[ALOFT_PART_MAX];
    uint64_t last_end = (uint64_t)table_offset + TABLE_SECTOR;
    uint32_t line_no = 0;
    int rc = 0;

    memset(t, 0, sizeof *t);
    t->md5 = true;
    if (err_line)
        *err_line = 0;
    size_t pos = len >= 3 && !memcmp(csv, "\xEF\xBB\xBF", 3) ? 3 : 0; /* UTF-8 BOM */
    while (pos < len) {
        size_t start = pos;
        while (pos < len && csv[pos] != '\n' && csv[pos] != '\r')
            pos++;
        struct span line = trim((struct span){csv + start, pos - start});
        if (pos < len)
            pos += csv[pos] == '\r' && pos + 1 < len && csv[pos + 1] == '\n' ? 2 : 1;
        line_no++;
        if (line.n == 0 || line.p[0] == '#')
            continue;

        if (t->count == ALOFT_PART_MAX) {
            rc = ALOFT_E_TOOMANY;
            break;
        }
        struct aloft_part *p = &t->p[t->count];
        bool placed;
        if ((rc = parse_row(line, table_offset, p, &placed)))
            break;
        if (!is_primary_system(p)) {
            if (placed && p->offset < (uint64_t)table_offset + TABLE_SECTOR) {
                rc = ALOFT_E_PART_RANGE;
                break;
            }
            if (placed && p->offset < last_end) {
                rc = ALOFT_E_PART_OVERLAP;
                break;
            }
            if (!placed) {
                uint32_t align = p->type == ALOFT_PART_APP ? APP_ALIGN : DATA_ALIGN;
                last_end = (last_end + align - 1) & ~(uint64_t)(align - 1); /* no 64-bit divide on MCUs */
                if (last_end >= U32_LIMIT) {
                    rc = ALOFT_E_PART_RANGE;
                    break;
                }
                p->offset = (uint32_t)last_end;
            }
            last_end = (uint64_t)p->offset + p->size;
        }
        lines[t->count++] = line_no;
    }
    if (rc) {
        if (err_line)
            *err_line = line_no;
        return rc;
    }
    uint32_t bad;
    rc = aloft_part_check(t, table_offset, 0, &bad);
    if (rc && err_line && bad < t->count)
        *err_line = lines[bad];
    return rc;
}

struct out {
    char *p;
    size_t n, cap;
    bool full;
};

static void put(struct out *o, const char *s, size_t n)
{
    if (o->full || o->cap - o->n <= n) { /* keep room for the NUL */
        o->full = true;
        return;
    }
    memcpy(o->p + o->n, s, n);
    o->n += n;
}

static void put_str(struct out *o, const char *s)
{
    put(o, s, cstr_len(s));
}

static void put_num(struct out *o, uint32_t v, unsigned base)
{
    char buf[10];
    size_t i = sizeof buf;
    do {
        buf[--i] = "0123456789abcdef"[v % base];
        v /= base;
    } while (v);
    if (base == 16)
        put_str(o, "0x");
    put(o, buf + i, sizeof buf - i);
}

static void put_kind(struct out *o, const char *name, uint8_t v)
{
    if (name)
        put_str(o, name);
    else
        put_num(o, v, 10);
}

/* to_csv's addr_format for sizes: whole MiB, else whole KiB, else hex. */
static void put_size(struct out *o, uint32_t v)
{
    if (v % 0x100000 == 0) {
        put_num(o, v / 0x100000, 10);
        put_str(o, "M");
    } else if (v % 0x400 == 0) {
        put_num(o, v / 0x400, 10);
        put_str(o, "K");
    } else {
        put_num(o, v, 16);
    }
}

/* A label reads back from CSV only without separators, line breaks,
 * surrounding whitespace (stripped) or a leading '#' (a comment). */
static bool csv_safe(const char *label, size_t n)
{
    if (n == 0 || is_space(label[0]) || is_space(label[n - 1]) || label[0] == '#')
        return false;
    for (size_t i = 0; i < n; i++)
        if (label[i] == ',' || (is_space(label[i]) && label[i] != ' ' && label[i] != '\t'))
            return false;
    return true;
}

int aloft_part_csv_write(const struct aloft_part_table *t, char *out, size_t cap)
{
    struct out o = {out, 0, cap, cap == 0};
    put_str(&o, "# ESP-IDF Partition Table\n# Name, Type, SubType, Offset, Size, Flags\n");
    for (uint32_t i = 0; i < t->count && i < ALOFT_PART_MAX; i++) {
        const struct aloft_part *p = &t->p[i];
        size_t n = 0;
        while (n < ALOFT_PART_LABEL_MAX && p->label[n])
            n++;
        if (!csv_safe(p->label, n))
            return ALOFT_E_PART_LABEL;
        put(&o, p->label, n);
        put_str(&o, ",");
        put_kind(&o, aloft_part_type_name(p->type), p->type);
        put_str(&o, ",");
        put_kind(&o, aloft_part_subtype_name(p->type, p->subtype), p->subtype);
        put_str(&o, ",");
        put_num(&o, p->offset, 16);
        put_str(&o, ",");
        put_size(&o, p->size);
        put_str(&o, ",");
        if (p->flags & ALOFT_PART_FLAG_ENCRYPTED)
            put_str(&o, (p->flags & ALOFT_PART_FLAG_READONLY) ? "encrypted:readonly" : "encrypted");
        else if (p->flags & ALOFT_PART_FLAG_READONLY)
            put_str(&o, "readonly");
        put_str(&o, "\n");
    }
    if (o.full)
        return ALOFT_E_NOSPC;
    out[o.n] = 0;
    return (int)o.n;
}
