/* aloft CLI: every sub-command is a function taking the words after its
 * name; main.c holds the table. Exit codes: 0 success, 1 the operation
 * failed or the input is bad, 2 usage error. */
#ifndef ALOFT_CLI_CMD_H
#define ALOFT_CLI_CMD_H

int aloft_cmd_image_info(int argc, char **argv);
int aloft_cmd_image_make(int argc, char **argv);
int aloft_cmd_image_sign(int argc, char **argv);
int aloft_cmd_image_verify(int argc, char **argv);
int aloft_cmd_keygen(int argc, char **argv);
int aloft_cmd_delta_make(int argc, char **argv);
int aloft_cmd_delta_apply(int argc, char **argv);
int aloft_cmd_delta_info(int argc, char **argv);
int aloft_cmd_part_csv2bin(int argc, char **argv);
int aloft_cmd_part_bin2csv(int argc, char **argv);
int aloft_cmd_part_show(int argc, char **argv);
int aloft_cmd_flash_init(int argc, char **argv);
int aloft_cmd_flash_show(int argc, char **argv);
int aloft_cmd_lfs_mkfs(int argc, char **argv);
int aloft_cmd_lfs_ls(int argc, char **argv);
int aloft_cmd_lfs_cat(int argc, char **argv);

/* Usage errors (usage.c): "CMD: <what>", help's usage lines, exit status 2.
 * cmd is the command's argv[0] ("aloft image info"); bad_option takes
 * getopt_long's '?' or ':' (optstring starting with ':', opterr 0). */
int aloft_usage_error(const char *cmd, const char *help, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int aloft_usage_bad_option(const char *cmd, const char *help, int ch, char *const argv[]);

int aloft_cmd_deploy(int argc, char **argv);
int aloft_cmd_discover(int argc, char **argv);
int aloft_cmd_status(int argc, char **argv);
int aloft_cmd_trigger(int argc, char **argv);
int aloft_cmd_ble_scan(int argc, char **argv);
int aloft_cmd_ble_push(int argc, char **argv);

int aloft_cmd_server_upload(int argc, char **argv);
int aloft_cmd_server_releases(int argc, char **argv);
int aloft_cmd_server_pin(int argc, char **argv);
int aloft_cmd_server_unpin(int argc, char **argv);
int aloft_cmd_server_devices(int argc, char **argv);
int aloft_cmd_server_rollout(int argc, char **argv);
int aloft_cmd_server_whitelist(int argc, char **argv);
int aloft_cmd_server_signing(int argc, char **argv);
/* aloftd's admin token from a flag, a file, or ALOFT_TOKEN / ALOFT_TOKEN_FILE
 * (malloc'd); NULL with a message when there is none. */
char *aloft_cmd_admin_token(const char *token, const char *file);
int aloft_cmd_server_credential(int argc, char **argv);
int aloft_cmd_server_checkins(int argc, char **argv);
int aloft_cmd_server_platform(int argc, char **argv);
int aloft_cmd_server_publish(int argc, char **argv);

int aloft_cmd_fleet_simulate(int argc, char **argv);

/* The signature blocks of a file, for aloft image info (cmd_sign.c). */
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
void aloft_cmd_sig_text(const uint8_t *img, size_t len);
cJSON *aloft_cmd_sig_json(const uint8_t *img, size_t len);

/* An ESP-IDF bootloader's own descriptor (cmd_image.c): 1 and *bd filled
 * when the image has one (so it is a bootloader, not an app), else 0. */
#include "aloft/image.h"
struct aloft_cmd_boot_desc {
    char idf_ver[33];
    char date_time[25];
};
int aloft_cmd_bootloader_desc(const struct aloft_image_info *in, const uint8_t *img, size_t len,
                              struct aloft_cmd_boot_desc *bd);

#endif
