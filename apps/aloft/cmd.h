/* aloft CLI: every sub-command is a function taking the words after its
 * name; main.c holds the table. Exit codes: 0 success, 1 the operation
 * failed or the input is bad, 2 usage error. */
#ifndef ALOFT_CLI_CMD_H
#define ALOFT_CLI_CMD_H

int aloft_cmd_image_info(int argc, char **argv);
int aloft_cmd_image_make(int argc, char **argv);
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

#endif
