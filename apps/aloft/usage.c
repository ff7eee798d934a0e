/* aloft CLI: usage errors, worded one way in every command:
 *   aloft image info: missing FILE
 *   usage: aloft image info FILE [--json] [--chip CHIP]
 *   (aloft image info --help for more)
 * and exit status 2. */
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cmd.h"

int aloft_usage_error(const char *cmd, const char *help, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s: ", cmd);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    const char *end = strstr(help, "\n\n"); /* the usage lines: up to the first blank line */
    int len = end ? (int)(end - help) : (int)strlen(help);
    while (len && help[len - 1] == '\n')
        len--;
    fprintf(stderr, "\n%.*s\n(%s --help for more)\n", len, help, cmd);
    return 2;
}

int aloft_usage_bad_option(const char *cmd, const char *help, int ch, char *const argv[])
{
    /* as typed (--name of --name=value), but one letter of a group such as -xq */
    const char *typed = argv[optind - 1];
    bool is_long = !strncmp(typed, "--", 2);
    char shortopt[3] = {'-', (char)optopt, 0};
    const char *opt = is_long || ch == ':' ? typed : shortopt;
    int len = (int)strcspn(opt, "=");
    if (ch == ':')
        return aloft_usage_error(cmd, help, "option '%.*s' needs a value", len, opt);
    if (is_long && optopt) /* a known option that takes none */
        return aloft_usage_error(cmd, help, "option '%.*s' takes no value", len, opt);
    return aloft_usage_error(cmd, help, "unknown option '%.*s'", len, opt);
}
