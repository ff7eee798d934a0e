/* Usage errors are worded one way in every aloft command: "aloft CMD:
 * <what is wrong>" naming the missing argument or the bad option as typed,
 * then the usage lines, "(aloft CMD --help for more)" and exit status 2. */
#include "testutil.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>

static const struct {
    const char *args;  /* after "aloft"; plain words */
    const char *first; /* the first line of standard error */
} cases[] = {
    {"deploy --bogus", "aloft deploy: unknown option '--bogus'"},
    {"deploy", "aloft deploy: missing FIRMWARE and TARGET"},
    {"discover", "aloft discover: missing TARGET"},
    {"status --timeout", "aloft status: option '--timeout' needs a value"},
    {"trigger --bogus", "aloft trigger: unknown option '--bogus'"},
    {"image info", "aloft image info: missing FILE"},
    {"image info --json=1 app.bin", "aloft image info: option '--json' takes no value"},
    {"image make --project p --version 1", "aloft image make: missing --chip CHIP"},
    {"image sign app.bin -o out.bin", "aloft image sign: missing --key KEY.pem"},
    {"image verify", "aloft image verify: missing FILE"},
    {"keygen --scheme rsa3072", "aloft keygen: missing -o KEY.pem"},
    {"part csv2bin", "aloft part csv2bin: missing IN.csv"},
    {"part bin2csv table.bin --offset", "aloft part bin2csv: option '--offset' needs a value"},
    {"part show -Z table.bin", "aloft part show: unknown option '-Z'"},
    {"flash init --partitions p.csv --app app.bin -o f.img", "aloft flash init: missing --flash-size SIZE"},
    {"flash show", "aloft flash show: missing FLASH.img"},
    {"lfs ls", "aloft lfs ls: missing IMAGE"},
    {"lfs cat www.bin", "aloft lfs cat: missing PATH"},
    {"mkfs dir", "aloft mkfs: missing -o IMAGE"},
    {"server upload", "aloft server upload: missing FILE"},
    {"server pin demo", "aloft server pin: missing VERSION"},
    {"server rollout advance", "aloft server rollout: missing ID"},
    {"server whitelist demo bogus", "aloft server whitelist: unknown verb 'bogus' (on, off, add or remove)"},
    {"server signing demo add", "aloft server signing: missing KEY"},
    {"server devices --bogus", "aloft server devices: unknown option '--bogus'"},
};

static void test_usage_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cmd[600], err[4096];
        snprintf(cmd, sizeof cmd, "'%s/aloft' %s 2>&1 >/dev/null </dev/null", ALOFT_BIN, cases[i].args);
        FILE *p = popen(cmd, "r");
        assert_non_null(p);
        size_t n = fread(err, 1, sizeof err - 1, p);
        err[n] = 0;
        int status = pclose(p);
        /* the command's name as typed: "aloft server devices" */
        char name[100], help_line[160];
        const char *colon = strchr(cases[i].first, ':');
        snprintf(name, sizeof name, "%.*s", (int)(colon - cases[i].first), cases[i].first);
        snprintf(help_line, sizeof help_line, "\n(%s --help for more)\n", name);
        size_t flen = strlen(cases[i].first);
        bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 2 && !strncmp(err, cases[i].first, flen) &&
                  err[flen] == '\n' && !strncmp(err + flen + 1, "usage: aloft ", 13) && strstr(err, help_line);
        if (!ok)
            fprintf(stderr, "aloft %s: status %d, said:\n%s(want '%s', the usage lines, '%s')\n", cases[i].args,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1, err, cases[i].first, help_line + 1);
        assert_true(ok);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_usage_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
