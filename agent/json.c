/* aloft agent: JSON without a heap (json.h). The writer escapes what JSON
 * requires; the reader checks a whole document once, then finds members by
 * walking the text — no tree is built, so nothing is allocated. */
#include "json.h"

#include <stdio.h>
#include <string.h>

#include "aloft/err.h"

/* ---- writer ---- */

static void put(struct aloft_jw *w, const char *s, size_t n)
{
    if (w->over || w->len + n >= w->cap) {
        w->over = true;
        return;
    }
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = 0;
}

static void put_str(struct aloft_jw *w, const char *s)
{
    put(w, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c;
            put(w, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            put(w, esc, 6);
        } else {
            put(w, s, 1);
        }
    }
    put(w, "\"", 1);
}

static void key(struct aloft_jw *w, const char *k)
{
    if (!w->first)
        put(w, ",", 1);
    w->first = false;
    if (k) {
        put_str(w, k);
        put(w, ":", 1);
    }
}

void aloft_jw_begin(struct aloft_jw *w, char *buf, size_t cap)
{
    *w = (struct aloft_jw){.buf = buf, .cap = cap, .first = true};
    if (cap)
        buf[0] = 0;
    put(w, "{", 1);
}

void aloft_jw_str(struct aloft_jw *w, const char *k, const char *val)
{
    key(w, k);
    put_str(w, val ? val : "");
}

void aloft_jw_num(struct aloft_jw *w, const char *k, uint64_t val)
{
    char num[24];
    key(w, k);
    put(w, num, (size_t)snprintf(num, sizeof num, "%llu", (unsigned long long)val));
}

void aloft_jw_bool(struct aloft_jw *w, const char *k, bool val)
{
    key(w, k);
    put(w, val ? "true" : "false", val ? 4 : 5);
}

void aloft_jw_null(struct aloft_jw *w, const char *k)
{
    key(w, k);
    put(w, "null", 4);
}

void aloft_jw_object(struct aloft_jw *w, const char *k)
{
    key(w, k);
    put(w, "{", 1);
    w->first = true;
}

void aloft_jw_array(struct aloft_jw *w, const char *k)
{
    key(w, k);
    put(w, "[", 1);
    w->first = true;
}

void aloft_jw_close(struct aloft_jw *w, char bracket)
{
    put(w, &bracket, 1);
    w->first = false;
}

int aloft_jw_end(struct aloft_jw *w)
{
    put(w, "}", 1);
    return w->over ? ALOFT_E_NOSPC : (int)w->len;
}

/* ---- reader ---- */

#define DEPTH_MAX 32

struct cursor {
    const char *p, *end;
};

static void ws(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool hex4(const char *p)
{
    for (int i = 0; i < 4; i++)
        if (!p[i] || !strchr("0123456789abcdefABCDEF", p[i]))
            return false;
    return true;
}

static unsigned hexval(char h)
{
    return (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
}

static uint32_t hex16(const char *p)
{
    return hexval(p[0]) << 12 | hexval(p[1]) << 8 | hexval(p[2]) << 4 | hexval(p[3]);
}

#define NO_CHAR UINT32_MAX

/* The code point of the \u escape at *pp (at its 'u'), a surrogate pair
 * taken whole; *pp is left at its last digit. NO_CHAR for a bad escape or
 * half a pair: UTF-8 has no character for a half, and cJSON refuses it. */
static uint32_t esc_u(const char **pp, const char *end)
{
    const char *p = *pp;
    if (end - p < 5 || !hex4(p + 1))
        return NO_CHAR;
    uint32_t u = hex16(p + 1);
    p += 4;
    if (u >= 0xD800 && u < 0xDC00 && end - p > 6 && p[1] == '\\' && p[2] == 'u' && hex4(p + 3)) {
        uint32_t lo = hex16(p + 3);
        if (lo >= 0xDC00 && lo < 0xE000) {
            u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
            p += 6;
        }
    }
    *pp = p;
    return u >= 0xD800 && u < 0xE000 ? NO_CHAR : u;
}

/* A string at c->p (at its quote): past it, or false. */
static bool skip_string(struct cursor *c)
{
    if (c->p >= c->end || *c->p != '"')
        return false;
    for (c->p++; c->p < c->end; c->p++) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch < 0x20)
            return false;
        if (ch == '\\') {
            if (++c->p >= c->end)
                return false;
            if (*c->p == 'u') {
                if (esc_u(&c->p, c->end) == NO_CHAR)
                    return false;
            } else if (!*c->p || !strchr("\"\\/bfnrt", *c->p)) {
                return false;
            }
        }
    }
    return false;
}

static bool digits(struct cursor *c)
{
    const char *s = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return c->p > s;
}

static bool skip_number(struct cursor *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (!digits(c))
        return false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!digits(c))
            return false;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!digits(c))
            return false;
    }
    return true;
}

static bool word(struct cursor *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n))
        return false;
    c->p += n;
    return true;
}

/* One value of any kind, nested ones included, without recursion: the
 * open brackets are kept as bits (1: object). */
static bool skip_value(struct cursor *c)
{
    uint32_t kinds = 0;
    int depth = 0;
    for (;;) {
        ws(c);
        if (c->p >= c->end)
            return false;
        char ch = *c->p;
        bool opened = false;
        if (ch == '{' || ch == '[') {
            if (depth == DEPTH_MAX)
                return false;
            kinds = (kinds << 1) | (ch == '{');
            depth++;
            c->p++;
            ws(c);
            if (c->p < c->end && *c->p == (ch == '{' ? '}' : ']')) {
                c->p++;
                kinds >>= 1;
                depth--;
            } else {
                opened = true;
            }
        } else if (ch == '"') {
            if (!skip_string(c))
                return false;
        } else if (ch == 't' || ch == 'f' || ch == 'n') {
            if (!word(c, ch == 't' ? "true" : ch == 'f' ? "false" : "null"))
                return false;
        } else if (!skip_number(c)) {
            return false;
        }
        /* after a value (or an opening bracket): a member's key, or what follows */
        for (;;) {
            if (!depth)
                return true;
            ws(c);
            if (opened) {
                opened = false;
            } else if (c->p < c->end && *c->p == ',') {
                c->p++;
                ws(c);
            } else if (c->p < c->end && *c->p == ((kinds & 1) ? '}' : ']')) {
                c->p++;
                kinds >>= 1;
                depth--;
                continue;
            } else {
                return false;
            }
            if (kinds & 1) { /* "key": */
                if (!skip_string(c))
                    return false;
                ws(c);
                if (c->p >= c->end || *c->p != ':')
                    return false;
                c->p++;
            }
            break;
        }
    }
}

bool aloft_json_valid(const char *text, size_t len)
{
    struct cursor c = {text, text + len};
    if (!skip_value(&c))
        return false;
    ws(&c);
    return c.p == c.end;
}

bool aloft_json_is_object(const char *text, size_t len)
{
    struct cursor c = {text, text + len};
    ws(&c);
    return c.p < c.end && *c.p == '{' && aloft_json_valid(text, len);
}

/* Is the string token at p (quote to quote) equal to key? Keys are
 * compared as written: an escaped key never matches. */
static bool key_is(const char *p, const char *end, const char *key)
{
    size_t n = strlen(key);
    return end - p == (ptrdiff_t)n + 2 && !memcmp(p + 1, key, n);
}

struct aloft_json_val aloft_json_get(const char *text, size_t len, const char *key)
{
    struct aloft_json_val v = {0};
    struct cursor c = {text, text + len};
    ws(&c);
    if (c.p >= c.end || *c.p != '{')
        return v;
    c.p++;
    for (;;) {
        ws(&c);
        const char *k = c.p;
        if (!skip_string(&c))
            return v;
        bool match = key_is(k, c.p, key);
        ws(&c);
        if (c.p >= c.end || *c.p != ':')
            return v;
        c.p++;
        ws(&c);
        const char *start = c.p;
        if (!skip_value(&c))
            return v;
        if (match) {
            v.p = start;
            v.len = (size_t)(c.p - start);
            switch (*start) {
            case '"': v.type = ALOFT_JSON_STRING, v.p++, v.len -= 2; break;
            case '{': v.type = ALOFT_JSON_OBJECT; break;
            case '[': v.type = ALOFT_JSON_ARRAY; break;
            case 't': v.type = ALOFT_JSON_BOOL, v.truth = true; break;
            case 'f': v.type = ALOFT_JSON_BOOL; break;
            case 'n': v.type = ALOFT_JSON_NULL; break;
            default: v.type = ALOFT_JSON_NUMBER; break;
            }
            return v;
        }
        ws(&c);
        if (c.p >= c.end || *c.p != ',')
            return v;
        c.p++;
    }
}

/* Append code point u as UTF-8; false when it does not fit. */
static bool utf8(char *out, size_t cap, size_t *n, uint32_t u)
{
    char b[4];
    size_t k;
    if (u < 0x80)
        b[0] = (char)u, k = 1;
    else if (u < 0x800)
        b[0] = (char)(0xC0 | u >> 6), b[1] = (char)(0x80 | (u & 0x3F)), k = 2;
    else if (u < 0x10000)
        b[0] = (char)(0xE0 | u >> 12), b[1] = (char)(0x80 | ((u >> 6) & 0x3F)), b[2] = (char)(0x80 | (u & 0x3F)), k = 3;
    else
        b[0] = (char)(0xF0 | u >> 18), b[1] = (char)(0x80 | ((u >> 12) & 0x3F)), b[2] = (char)(0x80 | ((u >> 6) & 0x3F)),
        b[3] = (char)(0x80 | (u & 0x3F)), k = 4;
    if (*n + k >= cap)
        return false;
    memcpy(out + *n, b, k);
    *n += k;
    return true;
}

int aloft_json_str(const struct aloft_json_val *v, char *out, size_t cap)
{
    if (v->type != ALOFT_JSON_STRING || !cap)
        return -1;
    size_t n = 0;
    for (const char *p = v->p, *end = v->p + v->len; p < end; p++) {
        uint32_t u = (unsigned char)*p;
        if (*p == '\\') {
            char e = *++p;
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            if (e == 'u') {
                u = esc_u(&p, end);
                if (!u || u == NO_CHAR) /* no NUL inside a C string */
                    return -1;
            } else {
                u = (unsigned char)to[strchr(from, e) - from];
            }
            if (!utf8(out, cap, &n, u))
                return -1;
            continue;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = *p;
    }
    out[n] = 0;
    return (int)n;
}

int aloft_json_uint(const struct aloft_json_val *v, uint64_t *out)
{
    if (v->type != ALOFT_JSON_NUMBER || v->p[0] == '-')
        return -1;
    const char *p = v->p, *end = v->p + v->len;
    uint64_t n = 0;
    int exp = 0;
    const uint64_t max = 1ull << 53;
    for (; p < end && *p >= '0' && *p <= '9'; p++) {
        if (n > max / 10)
            return -1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    if (p < end && *p == '.') /* digits after the point: each one scales, zeros only at the end */
        for (p++; p < end && *p >= '0' && *p <= '9'; p++) {
            if (n > max / 10)
                return -1;
            n = n * 10 + (uint64_t)(*p - '0');
            exp--;
        }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        bool neg = *p == '-';
        if (*p == '+' || *p == '-')
            p++;
        int e = 0;
        for (; p < end; p++)
            e = e > 400 ? e : e * 10 + (*p - '0');
        exp += neg ? -e : e;
    }
    for (; exp < 0 && n; exp++) { /* a fraction must cancel exactly */
        if (n % 10)
            return -1;
        n /= 10;
    }
    for (; exp > 0 && n; exp--) {
        if (n > max / 10)
            return -1;
        n *= 10;
    }
    if (n > max)
        return -1;
    *out = n;
    return 0;
}
