/* fake-idf: lwIP's socket and bind on the host (include/lwip/sockets.h): a
 * socket bound to "any" is bound to the device's own address, FAKE_IDF_IP,
 * as the HTTP server's is (httpd.c); every socket closes at a restart. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int fake_idf_bind(int fd, const struct sockaddr *addr, socklen_t len);
int fake_idf_socket(int domain, int type, int protocol);

int fake_idf_socket(int domain, int type, int protocol)
{
    return socket(domain, type | SOCK_CLOEXEC, protocol);
}

int fake_idf_bind(int fd, const struct sockaddr *addr, socklen_t len)
{
    const char *ip = getenv("FAKE_IDF_IP");
    struct sockaddr_in in;
    if (ip && addr->sa_family == AF_INET && len == sizeof in) {
        memcpy(&in, addr, sizeof in);
        if (in.sin_addr.s_addr == htonl(INADDR_ANY) && inet_pton(AF_INET, ip, &in.sin_addr) == 1)
            return bind(fd, (const struct sockaddr *)&in, sizeof in);
    }
    return bind(fd, addr, len);
}
