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
int aloft_cmd_part_csv2bin(int argc, char **argv);
int aloft_cmd_part_bin2csv(int argc, char **argv);
int aloft_cmd_part_show(int argc, char **argv);
int aloft_cmd_flash_init(int argc, char **argv);
int aloft_cmd_flash_show(int argc, char **argv);
int aloft_cmd_lfs_mkfs(int argc, char **argv);
int aloft_cmd_lfs_ls(int argc, char **argv);
int aloft_cmd_lfs_cat(int argc, char **argv);

int aloft_cmd_deploy(int argc, char **argv);
int aloft_cmd_discover(int argc, char **argv);
int aloft_cmd_status(int argc, char **argv);
int aloft_cmd_trigger(int argc, char **argv);

int aloft_cmd_server_upload(int argc, char **argv);
int aloft_cmd_server_releases(int argc, char **argv);
int aloft_cmd_server_pin(int argc, char **argv);
int aloft_cmd_server_unpin(int argc, char **argv);
int aloft_cmd_server_devices(int argc, char **argv);
int aloft_cmd_server_rollout(int argc, char **argv);
int aloft_cmd_server_whitelist(int argc, char **argv);
int aloft_cmd_server_signing(int argc, char **argv);

int aloft_cmd_fleet_simulate(int argc, char **argv);

/* The signature blocks of a file, for aloft image info (cmd_sign.c). */
#include <stddef.h>
#include <stdint.h>
#include <cjson/cJSON.h>
void aloft_cmd_sig_text(const uint8_t *img, size_t len);
cJSON *aloft_cmd_sig_json(const uint8_t *img, size_t len);

#endif
