/* fake-idf: lwip/sockets.h — on the host, lwIP's BSD socket calls are the
 * host's own sockets (poll, fcntl and close come from the VFS on a chip),
 * but for two (sockets.c): a device has one address, FAKE_IDF_IP, where it
 * binds "any", so devices on one host do not share their ports; and its
 * sockets close when it restarts (esp_restart re-executes the process).
 * lwIP raises no SIGPIPE: a send to a closed connection just fails. */
#pragma once

#ifndef FAKE_IDF_DECLS_CHECK
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

int fake_idf_bind(int fd, const struct sockaddr *addr, socklen_t len);
int fake_idf_socket(int domain, int type, int protocol);
#define bind(fd, addr, len) fake_idf_bind(fd, addr, len)
#define socket(domain, type, protocol) fake_idf_socket(domain, type, protocol)
#define send(fd, data, len, flags) send(fd, data, len, (flags) | MSG_NOSIGNAL)
#endif
