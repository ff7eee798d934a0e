/* fake-idf: lwIP's socket and bind on the host (include/lwip/sockets.h): a
 * socket bound to "any" is bound to the device's own address, FAKE_IDF_IP,
 * as the HTTP server's is (httpd.c); every socket closes at a restart.
 * Multicast stays in the test: joining a group (and its TTL) is taken and
 * does nothing, a datagram to a group is dropped, so that nothing the
 * device sends leaves 127.0.0.0/8. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

int fake_idf_bind(int fd, const struct sockaddr *addr, socklen_t len);
int fake_idf_socket(int domain, int type, int protocol);
int fake_idf_setsockopt(int fd, int level, int name, const void *value, socklen_t len);
ssize_t fake_idf_sendto(int fd, const void *data, size_t len, int flags, const struct sockaddr *to, socklen_t tolen);

int fake_idf_setsockopt(int fd, int level, int name, const void *value, socklen_t len)
{
    if (level == IPPROTO_IP && (name == IP_ADD_MEMBERSHIP || name == IP_MULTICAST_TTL))
        return 0;
    return setsockopt(fd, level, name, value, len);
}

ssize_t fake_idf_sendto(int fd, const void *data, size_t len, int flags, const struct sockaddr *to, socklen_t tolen)
{
    if (to && to->sa_family == AF_INET && IN_MULTICAST(ntohl(((const struct sockaddr_in *)to)->sin_addr.s_addr)))
        return (ssize_t)len;
    return sendto(fd, data, len, flags, to, tolen);
}

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
