/* aloft host: version ordering (semver.h has the rules). */
#include "semver.h"

#include <stddef.h>
#include <string.h>

#include "aloft/err.h"

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool is_hex(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static bool is_ident_char(char c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

/* Dot-separated, non-empty identifiers of [0-9A-Za-z-] in [p, e). */
static bool idents_ok(const char *p, const char *e)
{
    if (p == e)
        return false;
    bool empty = true;
    for (; p < e; p++) {
        if (*p == '.') {
            if (empty)
                return false;
            empty = true;
        } else if (is_ident_char(*p)) {
            empty = false;
        } else {
            return false;
        }
    }
    return !empty;
}

/* git describe's "-COUNT-gHASH" at the end of [p, e). cut: the string was
 * cut at 31 bytes, so the hash may be shorter than git ever writes. On a
 * match fills commits and hash and sets *tag_end to where the tail starts. */
static bool describe_tail(const char *p, const char *e, bool cut, struct aloft_semver *v, const char **tag_end)
{
    const char *h = e;
    while (h > p && is_hex(h[-1]))
        h--;
    size_t hl = (size_t)(e - h);
    if (hl < (cut ? 1u : 4u) || hl > 40 || h - p < 2 || h[-1] != 'g' || h[-2] != '-')
        return false;
    const char *c_end = h - 2, *c = c_end;
    while (c > p && is_digit(c[-1]))
        c--;
    size_t cl = (size_t)(c_end - c);
    if (cl == 0 || cl > 18 || c - p < 1 || c[-1] != '-')
        return false;
    v->commits = 0;
    for (const char *q = c; q < c_end; q++)
        v->commits = v->commits * 10 + (uint64_t)(*q - '0');
    for (size_t i = 0; i < hl; i++)
        v->hash[i] = (char)(h[i] >= 'A' && h[i] <= 'F' ? h[i] - 'A' + 'a' : h[i]);
    v->hash[hl] = 0;
    *tag_end = c - 1;
    return true;
}

int aloft_semver_parse(const char *s, struct aloft_semver *v)
{
    memset(v, 0, sizeof *v);
    size_t len = s ? strlen(s) : 0;
    if (len == 0 || len > ALOFT_SEMVER_LEN_MAX)
        return ALOFT_E_SYNTAX;
    const char *p = s, *e = s + len;
    if (*p == 'v' || *p == 'V')
        p++;
    for (;;) {
        size_t d = 0;
        uint64_t n = 0;
        while (p + d < e && is_digit(p[d]))
            n = n * 10 + (uint64_t)(p[d++] - '0');
        if (d == 0 || d > 18 || v->nnum == ALOFT_SEMVER_NUMS_MAX)
            return ALOFT_E_SYNTAX;
        v->num[v->nnum++] = n;
        p += d;
        if (p == e || *p != '.')
            break;
        p++;
    }

    /* ESP-IDF's version field holds 31 bytes: a longer describe string
     * arrives with its "-dirty" or hash cut short. */
    bool cut = len == 31;
    const char *tag_end;
    if (e - p >= 6 && !memcmp(e - 6, "-dirty", 6)) {
        v->dirty = true;
        e -= 6;
    }
    if (describe_tail(p, e, cut && !v->dirty, v, &tag_end)) {
        v->describe = true;
        e = tag_end;
    } else if (cut && !v->dirty) {
        for (size_t k = 5; k >= 2; k--) {
            if (e - p >= (ptrdiff_t)k && !memcmp(e - k, "-dirty", k) && describe_tail(p, e - k, false, v, &tag_end)) {
                v->describe = v->dirty = true;
                e = tag_end;
                break;
            }
        }
    }

    /* What is left is the tag's own "-SUFFIX" and "+BUILD". */
    const char *plus = NULL;
    for (const char *q = p; q < e && !plus; q++)
        plus = *q == '+' ? q : NULL;
    if (plus && !idents_ok(plus + 1, e))
        return ALOFT_E_SYNTAX;
    const char *sfx_end = plus ? plus : e;
    if (p < sfx_end) {
        if (*p != '-' || !idents_ok(p + 1, sfx_end))
            return ALOFT_E_SYNTAX;
        memcpy(v->suffix, p + 1, (size_t)(sfx_end - p - 1));
        v->suffix[sfx_end - p - 1] = 0;
    }
    return 0;
}

/* Compare two identifiers of [p, p+n): numeric ones by value, below any
 * alphanumeric one, which compare in ASCII order (semver 2.0.0 §11). */
static int ident_cmp(const char *a, size_t an, const char *b, size_t bn)
{
    bool a_num = true, b_num = true;
    for (size_t i = 0; i < an; i++)
        a_num = a_num && is_digit(a[i]);
    for (size_t i = 0; i < bn; i++)
        b_num = b_num && is_digit(b[i]);
    if (a_num != b_num)
        return a_num ? -1 : 1;
    if (a_num) { /* any length: by magnitude, leading zeros ignored */
        while (an > 1 && *a == '0')
            a++, an--;
        while (bn > 1 && *b == '0')
            b++, bn--;
        if (an != bn)
            return an < bn ? -1 : 1;
    }
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c)
        return c < 0 ? -1 : 1;
    return an == bn ? 0 : an < bn ? -1 : 1;
}

/* Pre-release precedence: none ranks above any; else identifier by
 * identifier, and a longer list above its own prefix. */
static int prerelease_cmp(const char *a, const char *b)
{
    if (!*a || !*b)
        return !*a && !*b ? 0 : !*a ? 1 : -1;
    for (;;) {
        size_t an = strcspn(a, "."), bn = strcspn(b, ".");
        int c = ident_cmp(a, an, b, bn);
        if (c)
            return c;
        a += an, b += bn;
        if (!*a || !*b)
            return !*a && !*b ? 0 : !*a ? -1 : 1;
        a++, b++;
    }
}

/* Abbreviated hashes of one commit: one is a prefix of the other. */
static bool same_commit(const char *a, const char *b)
{
    size_t an = strlen(a), bn = strlen(b);
    return !memcmp(a, b, an < bn ? an : bn);
}

int aloft_semver_order(const struct aloft_semver *a, const struct aloft_semver *b)
{
    unsigned n = a->nnum > b->nnum ? a->nnum : b->nnum;
    for (unsigned i = 0; i < n; i++) {
        uint64_t x = i < a->nnum ? a->num[i] : 0, y = i < b->nnum ? b->num[i] : 0;
        if (x != y)
            return x < y ? ALOFT_SEMVER_OLDER : ALOFT_SEMVER_NEWER;
    }
    if (strcmp(a->suffix, b->suffix)) {
        if (a->nnum > 3 || b->nnum > 3)
            return ALOFT_SEMVER_UNORDERED; /* labels such as esp32 name builds, not an order */
        int c = prerelease_cmp(a->suffix, b->suffix);
        if (c) /* 0 only for numbers spelled with leading zeros */
            return c < 0 ? ALOFT_SEMVER_OLDER : ALOFT_SEMVER_NEWER;
    }
    if (a->commits != b->commits)
        return a->commits < b->commits ? ALOFT_SEMVER_OLDER : ALOFT_SEMVER_NEWER;
    if (a->commits && !same_commit(a->hash, b->hash))
        return ALOFT_SEMVER_UNORDERED; /* two branches as far from one tag */
    if (a->dirty != b->dirty)
        return ALOFT_SEMVER_UNORDERED; /* local changes of unknown age */
    return ALOFT_SEMVER_SAME;
}

int aloft_semver_compare(const char *a, const char *b)
{
    struct aloft_semver va, vb;
    if (aloft_semver_parse(a, &va) || aloft_semver_parse(b, &vb))
        return ALOFT_SEMVER_UNORDERED;
    return aloft_semver_order(&va, &vb);
}

const char *aloft_semver_order_name(int order)
{
    switch (order) {
    case ALOFT_SEMVER_OLDER:
        return "older";
    case ALOFT_SEMVER_SAME:
        return "same";
    case ALOFT_SEMVER_NEWER:
        return "newer";
    default:
        return "unordered";
    }
}
