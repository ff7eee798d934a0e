/* aloft host: ordering firmware version strings, as the update server must
 * (PROTOCOLS.md §3.1): is the device's version older than a release's?
 *
 * What parses:
 *   [v|V] N(.N)*  [-SUFFIX] [+BUILD]  [-COUNT-gHASH] [-dirty]
 * - the numeric part: 1 to ALOFT_SEMVER_NUMS_MAX dot-separated decimal
 *   numbers, so semantic versions (1.2.3) and longer tags (0.4.3.1) alike;
 * - SUFFIX: dot-separated identifiers of [0-9A-Za-z-], a semver pre-release
 *   (rc.1) or, after a numeric part of more than three numbers, a label
 *   (esp32); BUILD: semver build metadata, which never affects order;
 * - git describe's tail: COUNT commits after the tag, at commit HASH (4 to 40
 *   hex digits), and "-dirty". ESP-IDF keeps 31 bytes of a version, so a
 *   31-byte string may end in a cut-off "-dirty" ("-dir") or hash; both are
 *   recognised there, e.g. v0.4.3.1-esp32-3-g66e2fa083-dir.
 *
 * How two versions order (first difference decides):
 *   1. the numeric parts, number by number; missing numbers count as 0;
 *   2. the suffixes: when both numeric parts have at most three numbers, by
 *      semver pre-release precedence (1.0.0-rc.1 < 1.0.0); otherwise labels
 *      that differ cannot be ordered;
 *   3. the commit count (a tag itself counts 0);
 *   4. the same count (above 0) at different commits, or a dirty build against a clean
 *      one, cannot be ordered.
 * A version that does not parse cannot be ordered against anything: the
 * server never assumes it is older, so it never pushes an update on a guess. */
#ifndef ALOFT_HOST_SEMVER_H
#define ALOFT_HOST_SEMVER_H

#include <stdbool.h>
#include <stdint.h>

#define ALOFT_SEMVER_NUMS_MAX 8
#define ALOFT_SEMVER_LEN_MAX 64 /* longer strings do not parse */

enum aloft_semver_order {
    ALOFT_SEMVER_OLDER = -1,
    ALOFT_SEMVER_SAME = 0,
    ALOFT_SEMVER_NEWER = 1,
    ALOFT_SEMVER_UNORDERED = 2,
};

struct aloft_semver {
    uint64_t num[ALOFT_SEMVER_NUMS_MAX];
    unsigned nnum;
    char suffix[ALOFT_SEMVER_LEN_MAX + 1]; /* without its '-'; "" when none */
    bool describe;                         /* has a git describe tail */
    uint64_t commits;                      /* 0 unless describe */
    char hash[41];                         /* lower-case; "" unless describe */
    bool dirty;
};

/* Parse s. Returns 0, or ALOFT_E_SYNTAX (NULL, empty, longer than
 * ALOFT_SEMVER_LEN_MAX, a number above 18 digits, more than
 * ALOFT_SEMVER_NUMS_MAX numbers, or anything outside the grammar above). */
int aloft_semver_parse(const char *s, struct aloft_semver *v);

/* Order a relative to b: ALOFT_SEMVER_OLDER when a is older than b, _SAME,
 * _NEWER or _UNORDERED. Symmetric: swapping a and b negates the answer. */
int aloft_semver_order(const struct aloft_semver *a, const struct aloft_semver *b);

/* The same on strings; _UNORDERED when either does not parse. */
int aloft_semver_compare(const char *a, const char *b);

/* A word for an order ("older", "same", "newer", "unordered"). */
const char *aloft_semver_order_name(int order);

#endif
