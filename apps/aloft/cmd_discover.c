/* aloft discover|status: what the devices on the network say about themselves. */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd.h"
#include "fleet.h"
#include "targets.h"

static const char discover_help[] =
    "usage: aloft discover TARGET... [--port 8032] [--timeout S] [--json]\n"
    "\n"
    "Find aloft (and RuView-style) devices: probe GET /ota/status on every target in\n"
    "parallel and list those that answer with a device status, one row each.\n"
    "TARGET is a host, host:port, a CIDR range (127.0.0.0/28, at most a /20), or @FILE with\n"
    "one target per line.\n"
    "\n"
    "  --port N       port for targets without one (default 8032)\n"
    "  --timeout S    how long to wait for each device (default 2)\n"
    "  --json         a JSON array instead of a table\n"
    "\n"
    "exit status: 0 devices found, 1 none, 2 usage error\n"
    "\n"
    "example:\n"
    "  aloft discover 192.168.1.0/24\n";

static const char status_help[] =
    "usage: aloft status TARGET... [--port 8032] [--timeout S] [--json]\n"
    "\n"
    "One row per target: what the device runs (project, chip, version, partition, otadata\n"
    "state), why it last restarted, its uptime; or that nothing answered (unreachable), or\n"
    "that what answered is a web server but not an aloft device. Targets as for\n"
    "`aloft discover`; silent addresses of a range are left out.\n"
    "\n"
    "  --port N       port for targets without one (default 8032)\n"
    "  --timeout S    how long to wait for each device (default 3)\n"
    "  --json         a JSON array instead of a table\n"
    "\n"
    "exit status: 0 every device answered, 1 some did not, 2 usage error\n"
    "\n"
    "example:\n"
    "  aloft status 127.0.0.2 127.0.0.3:8032 --json\n";

static cJSON *status_json(const char *addr, const struct aloft_devstatus *s)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "address", addr);
    cJSON_AddBoolToObject(j, "ok", s->ok);
    if (!s->ok) {
        cJSON_AddBoolToObject(j, "reachable", s->answered);
        cJSON_AddStringToObject(j, "error", s->error);
        return j;
    }
    cJSON_AddStringToObject(j, "project", s->project);
    cJSON_AddStringToObject(j, "chip", s->chip);
    cJSON_AddStringToObject(j, "version", s->version);
    cJSON_AddStringToObject(j, "running_partition", s->running);
    cJSON_AddStringToObject(j, "state", s->state);
    cJSON_AddStringToObject(j, "reset_reason", s->reset_reason);
    cJSON_AddNumberToObject(j, "boot_count", (double)s->boot_count);
    cJSON_AddNumberToObject(j, "uptime_s", (double)s->uptime_s);
    cJSON_AddStringToObject(j, "mac", s->mac);
    if (s->www_slot >= 0)
        cJSON_AddNumberToObject(j, "www_slot", (double)s->www_slot);
    return j;
}

static int run(int argc, char **argv, bool discover)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"timeout", required_argument, NULL, 't'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *help = discover ? discover_help : status_help, *name = discover ? "discover" : "status";
    unsigned port = 8032;
    double timeout = discover ? 2 : 3;
    bool json = false;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'p':
            port = (unsigned)strtoul(optarg, &end, 10);
            if (*end || !port || port > 65535) {
                fprintf(stderr, "aloft %s: --port takes 1..65535\n", name);
                return 2;
            }
            break;
        case 't':
            timeout = strtod(optarg, &end);
            if (*end || timeout <= 0 || timeout > 600) {
                fprintf(stderr, "aloft %s: --timeout takes seconds (0.1..600)\n", name);
                return 2;
            }
            break;
        case 'j': json = true; break;
        case 'h': fputs(help, stdout); return 0;
        default: return aloft_usage_bad_option(argv[0], help, c, argv);
        }
    }
    if (optind >= argc) {
        return aloft_usage_error(argv[0], help, "missing TARGET");
    }
    struct aloft_targets ts = {0};
    char err[200];
    for (int i = optind; i < argc; i++) {
        if (aloft_targets_add(&ts, argv[i], port, err, sizeof err)) {
            fprintf(stderr, "aloft %s: %s\n", name, err);
            aloft_targets_free(&ts);
            return 2;
        }
    }
    const char **addrs = malloc(ts.n * sizeof *addrs);
    struct aloft_devstatus *st = calloc(ts.n, sizeof *st);
    for (size_t i = 0; i < ts.n; i++)
        addrs[i] = ts.t[i].addr;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    aloft_fleet_probe(addrs, ts.n, 64, (long)(timeout * 1000), st);

    size_t shown = 0, missing = 0;
    cJSON *arr = cJSON_CreateArray();
    int pw = 18, vw = 24; /* project and version columns: as wide as the widest (ESP-IDF's git describe) */
    for (size_t i = 0; i < ts.n; i++) {
        pw = st[i].ok && (int)strlen(st[i].project) > pw ? (int)strlen(st[i].project) : pw;
        vw = st[i].ok && (int)strlen(st[i].version) > vw ? (int)strlen(st[i].version) : vw;
    }
    if (!json)
        printf("%-22s %-*s %-9s %-*s %-9s %-15s %-9s %s\n", "address", pw, "project", "chip", vw, "version",
               "partition", "state", "reset", "uptime");
    for (size_t i = 0; i < ts.n; i++) {
        /* silence from an address of a scanned range is not a missing device */
        if (!st[i].ok && (discover || ts.t[i].from_range))
            continue;
        missing += !st[i].ok;
        shown++;
        if (json) {
            cJSON_AddItemToArray(arr, status_json(addrs[i], &st[i]));
        } else if (st[i].ok) {
            printf("%-22s %-*s %-9s %-*s %-9s %-15s %-9s %lds\n", addrs[i], pw, st[i].project, st[i].chip, vw,
                   st[i].version, st[i].running, st[i].state, st[i].reset_reason, st[i].uptime_s);
        } else {
            printf("%-22s %s%s\n", addrs[i], st[i].answered ? "" : "unreachable: ", st[i].error);
        }
    }
    if (json) {
        char *s = cJSON_Print(arr);
        puts(s);
        free(s);
    }
    cJSON_Delete(arr);
    if (discover && !shown)
        fprintf(stderr, "aloft discover: no device answered on %zu address%s\n", ts.n, ts.n == 1 ? "" : "es");
    /* decided before aloft_targets_free zeroes ts.n */
    int rc = discover ? (shown ? 0 : 1) : (missing || !shown ? 1 : 0);
    free(addrs);
    free(st);
    aloft_targets_free(&ts);
    curl_global_cleanup();
    return rc;
}

int aloft_cmd_discover(int argc, char **argv) { return run(argc, argv, true); }
int aloft_cmd_status(int argc, char **argv) { return run(argc, argv, false); }
