/* aloft: the command line. Commands come from one table; a row without a
 * sub-command name is a command of its own (aloft deploy ...). */
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "aloft_version.h"
#include "cmd.h"

struct command {
    const char *group;
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"deploy", NULL, aloft_cmd_deploy, "push an image to many devices and verify each one"},
    {"discover", NULL, aloft_cmd_discover, "find the devices on a network or in a list"},
    {"status", NULL, aloft_cmd_status, "what each device runs, and why it last restarted"},
    {"trigger", NULL, aloft_cmd_trigger, "publish an OTA trigger over MQTT and follow the devices' outcomes"},
    {"ble", "scan", aloft_cmd_ble_scan, "BLE OTA devices (BlueZ or simulated): name, MTU and transfer state"},
    {"ble", "push", aloft_cmd_ble_push, "push an image over BLE (resumable), then verify the device"},
    {"image", "info", aloft_cmd_image_info, "check an ESP app image and show its header and app descriptor"},
    {"image", "make", aloft_cmd_image_make, "synthesise a valid ESP app image (for tests and the simulator)"},
    {"image", "sign", aloft_cmd_image_sign, "add a secure boot v2 signature (espsecure's layout) to an image"},
    {"image", "verify", aloft_cmd_image_verify, "check an image's signature against trusted keys"},
    {"delta", "make", aloft_cmd_delta_make, "make a patch from the image a device runs to a new one"},
    {"delta", "apply", aloft_cmd_delta_apply, "apply a patch to an image (the device's own decoder)"},
    {"delta", "info", aloft_cmd_delta_info, "show which image a patch applies to and what it makes"},
    {"keygen", NULL, aloft_cmd_keygen, "make a signing key (RSA-3072, ECDSA P-256 or P-384)"},
    {"part", "csv2bin", aloft_cmd_part_csv2bin, "compile an ESP-IDF partition CSV to the binary table"},
    {"part", "bin2csv", aloft_cmd_part_bin2csv, "print a binary partition table as CSV"},
    {"part", "show", aloft_cmd_part_show, "show a partition table (CSV or binary)"},
    {"flash", "init", aloft_cmd_flash_init, "build a whole bootable flash image"},
    {"flash", "show", aloft_cmd_flash_show, "show a flash image: partitions, otadata, what boots and why"},
    {"lfs", "mkfs", aloft_cmd_lfs_mkfs, "build a LittleFS image of a directory"},
    {"lfs", "ls", aloft_cmd_lfs_ls, "list every entry of a LittleFS image with its size and SHA-256"},
    {"lfs", "cat", aloft_cmd_lfs_cat, "write one file of a LittleFS image to standard output"},
    {"mkfs", NULL, aloft_cmd_lfs_mkfs, "the same as aloft lfs mkfs"},
    {"server", "upload", aloft_cmd_server_upload, "upload a firmware or frontend image to an aloftd"},
    {"server", "releases", aloft_cmd_server_releases, "a platform's release history on an aloftd (or every platform)"},
    {"server", "pin", aloft_cmd_server_pin, "serve one release of a platform (also to downgrade)"},
    {"server", "unpin", aloft_cmd_server_unpin, "serve a platform's newest release again"},
    {"server", "devices", aloft_cmd_server_devices, "the devices that checked in with an aloftd"},
    {"server", "rollout", aloft_cmd_server_rollout, "staged rollouts: start, advance, pause, resume, abort, show"},
    {"server", "whitelist", aloft_cmd_server_whitelist, "a platform's MAC whitelist: show, on, off, add, remove"},
    {"server", "signing", aloft_cmd_server_signing, "a platform's signing policy: show, add KEY, remove KEY"},
    {"server", "credential", aloft_cmd_server_credential, "the secret a device signs its reports with"},
    {"server", "platform", aloft_cmd_server_platform, "create a platform before its first upload, or show one"},
    {"server", "publish", aloft_cmd_server_publish, "what an upload does: offered at once (auto) or held (manual)"},
    {"server", "checkins", aloft_cmd_server_checkins, "may check-ins settle rollouts: settle or report-only"},
    {"fleet", "simulate", aloft_cmd_fleet_simulate, "many virtual devices polling an update server, to rehearse a rollout"},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *out, const char *group)
{
    fprintf(out, "usage: aloft <command> [<sub-command>] [options]   (each takes --help)\n"
                 "       aloft --version\n\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (!group || !strcmp(group, commands[i].group))
            fprintf(out, "  aloft %-8s %-8s %s\n", commands[i].group, commands[i].name ? commands[i].name : "",
                    commands[i].summary);
    fprintf(out, "\nexit status: 0 success, 1 failure or bad input, 2 usage error\n");
}

int main(int argc, char **argv)
{
    if (argc == 2 && !strcmp(argv[1], "--version")) {
        printf("aloft %s\n", ALOFT_VERSION);
        return 0;
    }
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout, NULL);
        return argc < 2 ? 2 : 0;
    }
    bool known_group = false;
    char name[64]; /* argv[0] of the command: getopt's messages start with it */
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(argv[1], commands[i].group))
            continue;
        snprintf(name, sizeof name, "aloft %s%s%s", commands[i].group, commands[i].name ? " " : "",
                 commands[i].name ? commands[i].name : "");
        if (!commands[i].name) {
            argv[1] = name;
            return commands[i].run(argc - 1, argv + 1);
        }
        known_group = true;
        if (argc >= 3 && !strcmp(argv[2], commands[i].name)) {
            argv[2] = name;
            return commands[i].run(argc - 2, argv + 2);
        }
    }
    if (!known_group) {
        fprintf(stderr, "aloft: unknown command '%s'\n\n", argv[1]);
        usage(stderr, NULL);
        return 2;
    }
    if (argc >= 3 && strcmp(argv[2], "--help") && strcmp(argv[2], "-h"))
        fprintf(stderr, "aloft %s: unknown sub-command '%s'\n\n", argv[1], argv[2]);
    usage(argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) ? stdout : stderr, argv[1]);
    return argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")) ? 0 : 2;
}
