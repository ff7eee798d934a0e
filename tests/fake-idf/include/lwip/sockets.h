/* fake-idf: lwip/sockets.h — on the host, lwIP's BSD socket calls are the
 * host's own sockets (poll, fcntl and close come from the VFS on a chip). */
#pragma once

#ifndef FAKE_IDF_DECLS_CHECK
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#endif
