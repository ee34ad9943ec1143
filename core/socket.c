/* Outer sockets shared by the transports: the choice of one (mt__transport_pick), name
 * resolution (at start-up only, never on the data path), the server's bound socket
 * (dual-stack by default) and the UDP socket options that decide how outer datagrams leave
 * (DF, reply source address, buffer sizes). */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/udp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "tunnel.h"

#ifndef UDP_GRO
#define UDP_GRO 104 /* Linux 5.0; older C libraries lack the name */
#endif

int mt__resolve(const char *host, uint16_t port, int socktype, bool passive,
                struct sockaddr_storage *out, socklen_t *outlen, char *err, size_t errsz)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = socktype;
    hints.ai_flags = passive ? AI_PASSIVE : AI_ADDRCONFIG;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc == EAI_BADFLAGS || (rc != 0 && !passive && hints.ai_flags)) {
        /* AI_ADDRCONFIG hides loopback-only families in a bare namespace; ask again. */
        hints.ai_flags = passive ? AI_PASSIVE : 0;
        rc = getaddrinfo(host, portstr, &hints, &res);
    }
    if (rc != 0) {
        snprintf(err, errsz, "cannot resolve '%s': %s", host, gai_strerror(rc));
        return -EHOSTUNREACH;
    }
    memcpy(out, res->ai_addr, res->ai_addrlen);
    *outlen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int mt__bind_server(struct mt_tunnel *t, int socktype, char *err, size_t errsz)
{
    const struct mt_config *cfg = t->cfg;
    struct sockaddr_storage ss;
    socklen_t sslen;
    memset(&ss, 0, sizeof(ss));
    if (cfg->listen[0]) {
        int rc = mt__resolve(cfg->listen, cfg->port, socktype, true, &ss, &sslen, err, errsz);
        if (rc < 0)
            return rc;
    } else {
        /* Any address, IPv6 and IPv4 on one socket; plain IPv4 where IPv6 is off. */
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_addr = in6addr_any;
        sin6->sin6_port = htons(cfg->port);
        sslen = sizeof(*sin6);
    }
    int fd = socket(ss.ss_family, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0 && !cfg->listen[0] && errno == EAFNOSUPPORT) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof(ss));
        sin->sin_family = AF_INET;
        sin->sin_port = htons(cfg->port);
        sslen = sizeof(*sin);
        fd = socket(AF_INET, socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    }
    if (fd < 0) {
        snprintf(err, errsz, "socket: %s", strerror(errno));
        return -errno;
    }
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ss.ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        int e = errno;
        char name[MT_PEER_ADDRSTRLEN];
        mt_sockaddr_str((struct sockaddr *)&ss, name, sizeof(name));
        snprintf(err, errsz, "cannot bind %s %s: %s", socktype == SOCK_STREAM ? "tcp" : "udp", name,
                 strerror(e));
        close(fd);
        return -e;
    }
    return fd;
}

int mt__bind_client(struct mt_tunnel *t, int fd, int socktype, char *err, size_t errsz)
{
    const struct mt_config *cfg = t->cfg;
    if (!cfg->listen[0])
        return 0;
    struct sockaddr_storage ss;
    socklen_t sslen;
    /* Port 0: the client's source port stays ephemeral; -l chooses only the address. */
    int rc = mt__resolve(cfg->listen, 0, socktype, true, &ss, &sslen, err, errsz);
    if (rc < 0)
        return rc;
    if (bind(fd, (struct sockaddr *)&ss, sslen) < 0) {
        snprintf(err, errsz, "cannot bind to %s: %s", cfg->listen, strerror(errno));
        return -errno;
    }
    return 0;
}

int mt__udp_socket_options(int fd, int family, bool outer_df, bool server)
{
    int rc = 0;
    /* A burst from thousands of peers (or from the device) arrives faster than one loop turn
     * drains it. As root the FORCE variants pass net.core.[rw]mem_max; otherwise take what
     * we may. */
    int bufsz = MT_UDP_SOCKBUF;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    /* DF on outer IPv4 datagrams (also the v4-mapped ones of a dual-stack socket): on is the
     * kernel's default (path-MTU discovery, which needs ICMP to come back); off lets a
     * narrower hop fragment them, so filtered ICMP cannot black-hole full-size packets.
     * IPv6 routers never fragment: there the kernel's default stays. */
    int pmtu = outer_df ? IP_PMTUDISC_WANT : IP_PMTUDISC_DONT;
    if (setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &pmtu, sizeof(pmtu)) < 0 && family == AF_INET)
        rc = -errno;
    if (server) {
        /* Where each datagram arrived, so replies leave from that address (a multihomed
         * server); an IPv6 socket reports IPv4 arrivals as v4-mapped IPV6_PKTINFO. */
        int one = 1;
        if (family == AF_INET6 &&
            setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &one, sizeof(one)) < 0)
            rc = -errno;
        if (family == AF_INET && setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &one, sizeof(one)) < 0)
            rc = -errno;
    }
    return rc;
}

const struct mt_transport_ops *mt__transport_pick(enum mt_transport kind)
{
    if (kind == MT_TRANSPORT_WG)
        return &mt__wg_transport;
    return kind == MT_TRANSPORT_UDP ? &mt__udp_transport : &mt__tcp_transport;
}

void mt__pktinfo_arrival(const struct msghdr *mh, struct in6_pktinfo *out)
{
    memset(out, 0, sizeof(*out));
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c)) {
        if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_PKTINFO &&
            c->cmsg_len >= CMSG_LEN(sizeof(struct in_pktinfo))) {
            struct in_pktinfo v4;
            memcpy(&v4, CMSG_DATA(c), sizeof(v4));
            out->ipi6_addr.s6_addr[10] = 0xff;
            out->ipi6_addr.s6_addr[11] = 0xff;
            memcpy(out->ipi6_addr.s6_addr + 12, &v4.ipi_addr, sizeof(v4.ipi_addr));
            return;
        }
        if (c->cmsg_level != IPPROTO_IPV6 || c->cmsg_type != IPV6_PKTINFO ||
            c->cmsg_len < CMSG_LEN(sizeof(struct in6_pktinfo)))
            continue;
        memcpy(out, CMSG_DATA(c), sizeof(*out));
        /* Routing picks the interface (an asymmetric path still works), except for a
         * link-local address, which means nothing without one. */
        if (!IN6_IS_ADDR_LINKLOCAL(&out->ipi6_addr))
            out->ipi6_ifindex = 0;
        return;
    }
}

size_t mt__pktinfo_source(int family, const struct in6_pktinfo *local, union mt_pktinfo_cmsg *c)
{
    static const struct in6_pktinfo none;
    if (!memcmp(local, &none, sizeof(none)))
        return 0;
    memset(c, 0, sizeof(*c));
    struct cmsghdr *h = &c->align;
    if (family == AF_INET) {
        struct in_pktinfo v4;
        memset(&v4, 0, sizeof(v4));
        memcpy(&v4.ipi_spec_dst, local->ipi6_addr.s6_addr + 12, sizeof(v4.ipi_spec_dst));
        *h = (struct cmsghdr){
            .cmsg_len = CMSG_LEN(sizeof(v4)), .cmsg_level = IPPROTO_IP, .cmsg_type = IP_PKTINFO};
        memcpy(CMSG_DATA(h), &v4, sizeof(v4));
        return CMSG_SPACE(sizeof(v4));
    }
    /* An IPv6 socket sends IPv4 too: a v4-mapped source works there as well. */
    *h = (struct cmsghdr){.cmsg_len = CMSG_LEN(sizeof(*local)),
                          .cmsg_level = IPPROTO_IPV6,
                          .cmsg_type = IPV6_PKTINFO};
    memcpy(CMSG_DATA(h), local, sizeof(*local));
    return CMSG_SPACE(sizeof(*local));
}

size_t mt__udp_gro_size(const struct msghdr *mh)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR((struct msghdr *)mh, c))
        if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
            int size;
            memcpy(&size, CMSG_DATA(c), sizeof(size));
            return size > 0 ? (size_t)size : 0;
        }
    return 0;
}
