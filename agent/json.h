/* aloft agent (private): JSON without a heap. A writer into a caller
 * buffer, and a reader that finds a member of an object in place. */
#ifndef ALOFT_AGENT_JSON_H
#define ALOFT_AGENT_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Writer: aloft_jw_begin opens the top-level object; each call adds a
 * member; aloft_jw_end closes it and returns the length (the text is
 * NUL-terminated) or ALOFT_E_NOSPC when it did not fit. */
struct aloft_jw {
    char *buf;
    size_t cap, len;
    bool first, over;
};

void aloft_jw_begin(struct aloft_jw *w, char *buf, size_t cap);
void aloft_jw_str(struct aloft_jw *w, const char *key, const char *val);
void aloft_jw_num(struct aloft_jw *w, const char *key, uint64_t val);
void aloft_jw_bool(struct aloft_jw *w, const char *key, bool val);
void aloft_jw_null(struct aloft_jw *w, const char *key);
void aloft_jw_object(struct aloft_jw *w, const char *key); /* key NULL: inside an array */
void aloft_jw_array(struct aloft_jw *w, const char *key);
void aloft_jw_close(struct aloft_jw *w, char bracket);     /* '}' or ']' */
int aloft_jw_end(struct aloft_jw *w);

/* Reader. */
enum aloft_json_type { ALOFT_JSON_NONE, ALOFT_JSON_NULL, ALOFT_JSON_BOOL, ALOFT_JSON_NUMBER, ALOFT_JSON_STRING,
                       ALOFT_JSON_OBJECT, ALOFT_JSON_ARRAY };

struct aloft_json_val {
    uint8_t type;         /* enum aloft_json_type; NONE: the member is absent */
    const char *p;        /* the value's text (a string's without the quotes) */
    size_t len;
    bool truth;           /* BOOL */
};

/* Is text one well-formed JSON value (nesting at most 32 deep)? */
bool aloft_json_valid(const char *text, size_t len);

/* Is text one well-formed JSON object (nesting at most 32 deep)? */
bool aloft_json_is_object(const char *text, size_t len);

/* The first member named key of the object text (well-formed: check with
 * aloft_json_is_object first). Its type is NONE when absent. */
struct aloft_json_val aloft_json_get(const char *text, size_t len, const char *key);

/* A STRING value unescaped into out (cap bytes, NUL-terminated). Returns
 * its length, or -1 when it is not a string, does not fit or holds \u0000. */
int aloft_json_str(const struct aloft_json_val *v, char *out, size_t cap);

/* A NUMBER that is a whole number from 0 to 2^53 (1.0 and 1e3 count).
 * Returns 0 with *out, or -1 (negative, fractional, too large, not a number). */
int aloft_json_uint(const struct aloft_json_val *v, uint64_t *out);

#endif
