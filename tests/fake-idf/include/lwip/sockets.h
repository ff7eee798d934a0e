/* fake-idf: lwip/sockets.h — on the host, lwIP's BSD socket calls are the
 * host's own sockets (poll, fcntl and close come from the VFS on a chip),
 * but for two (sockets.c): a device has one address, FAKE_IDF_IP, where it
 * binds "any", so devices on one host do not share their ports; and its
 * sockets close when it restarts (esp_restart re-executes the process);
 * and the host's network is no LAN of its own: a device joins no multicast
 * group, and what it sends to one goes nowhere.
 * lwIP raises no SIGPIPE: a send to a closed connection just fails. */
#pragma once

#ifndef FAKE_IDF_DECLS_CHECK
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int fake_idf_bind(int fd, const struct sockaddr *addr, socklen_t len);
int fake_idf_socket(int domain, int type, int protocol);
int fake_idf_setsockopt(int fd, int level, int name, const void *value, socklen_t len);
ssize_t fake_idf_sendto(int fd, const void *data, size_t len, int flags, const struct sockaddr *to, socklen_t tolen);
#define bind(fd, addr, len) fake_idf_bind(fd, addr, len)
#define socket(domain, type, protocol) fake_idf_socket(domain, type, protocol)
#define send(fd, data, len, flags) send(fd, data, len, (flags) | MSG_NOSIGNAL)
#define setsockopt(fd, level, name, value, len) fake_idf_setsockopt(fd, level, name, value, len)
#define sendto(fd, data, len, flags, to, tolen) fake_idf_sendto(fd, data, len, flags, to, tolen)
#endif
