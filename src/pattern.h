/*
 * pattern.h - a value a match key compares with: an exact string, or a
 * regular expression (PCRE2, JIT-compiled when the platform has the JIT).
 *
 * PCRE2 rather than POSIX regex: it compiles once to machine code (the
 * JIT), matches length-carrying strings without a NUL (SIP header values
 * point into the packet), and says where a bad expression is wrong, which
 * the configuration's FILE:LINE:COL errors report.  Pure: no I/O.
 */
#ifndef HEPROUTER_PATTERN_H
#define HEPROUTER_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

#define PATTERN_REGEX_MARK '~'      /* a value written "~REGEX" is a regular expression */
#define PATTERN_WHY_MAX 160         /* room for a compile error and its offset */

struct pattern {
    char *text;                     /* as written, "~" included for a regex */
    size_t len;                     /* of text */
    bool regex;
    bool jit;                       /* code is JIT-compiled: matched by pcre2_jit_match() */
    bool caseless;                  /* exact: compared ignoring ASCII case; regex: PCRE2_CASELESS */
    void *code;                     /* pcre2_code_8 *, NULL for an exact string */
};

/*
 * Compiles text ("~REGEX" or an exact string) into *p (zeroed first).
 * Returns 0, or -1 with the reason in why (the compiler's message and the
 * offset in the expression), or -2 when out of memory.
 */
int pattern_compile(struct pattern *p, const char *text, bool caseless, char *why, size_t whylen);

/*
 * Whether s[0..len) matches: equal to an exact string (ignoring case when
 * caseless), or containing a match of the regex (anchor it with ^...$ to
 * match the whole value).
 */
bool pattern_match(const struct pattern *p, const char *s, size_t len);

/* Frees what pattern_compile() allocated; a zeroed pattern is fine. */
void pattern_free(struct pattern *p);

#endif
