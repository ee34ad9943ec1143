/* The tun/tap device: open, name, MTU, addresses and link state, all by ioctl on the
 * device's name (IPv4 through an AF_INET socket, IPv6 through an AF_INET6 one). */
#include "moontun/device.h"
#include "moontun/vnet.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* The kernel's struct in6_ifreq (linux/ipv6.h), declared here because that header clashes
 * with netinet/in.h. */
struct mt_in6_ifreq {
    struct in6_addr addr;
    uint32_t prefixlen;
    int ifindex;
};

int mt_device_open(const char *name, bool tap, bool vnet, char ifname[IFNAMSIZ])
{
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    ifr.ifr_flags = (short)((tap ? IFF_TAP : IFF_TUN) | IFF_NO_PI | (vnet ? IFF_VNET_HDR : 0));
    if (name && *name)
        snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    memcpy(ifname, ifr.ifr_name, IFNAMSIZ);
    ifname[IFNAMSIZ - 1] = '\0';
    int hdrsz = MT_VNET_HDR_LEN;
    if (vnet && ioctl(fd, TUNSETVNETHDRSZ, &hdrsz) < 0) {
        int e = -errno;
        close(fd);
        return e;
    }
    return fd;
}

/* UDP segmentation offload on tun (Linux 6.2); older headers lack the names. */
#ifndef TUN_F_USO4
#define TUN_F_USO4 0x20
#endif
#ifndef TUN_F_USO6
#define TUN_F_USO6 0x40
#endif

int mt_device_enable_offload(int fd, bool *uso)
{
    unsigned flags = TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN;
    /* UDP super-packets too where the kernel has them; an older one says EINVAL to the
     * flags it does not know, and then TCP's alone. */
    *uso = ioctl(fd, TUNSETOFFLOAD, flags | TUN_F_USO4 | TUN_F_USO6) == 0;
    if (*uso)
        return 0;
    return ioctl(fd, TUNSETOFFLOAD, flags) < 0 ? -errno : 0;
}

/* Runs one interface ioctl on a throwaway socket of the given family. */
static int if_ioctl(int family, unsigned long req, void *arg)
{
    int s = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int rc = ioctl(s, req, arg) < 0 ? -errno : 0;
    close(s);
    return rc;
}

static void ifreq_for(struct ifreq *ifr, const char *ifname)
{
    memset(ifr, 0, sizeof(*ifr));
    snprintf(ifr->ifr_name, IFNAMSIZ, "%s", ifname);
}

int mt_device_set_mtu(const char *ifname, int mtu)
{
    struct ifreq ifr;
    ifreq_for(&ifr, ifname);
    ifr.ifr_mtu = mtu;
    return if_ioctl(AF_INET, SIOCSIFMTU, &ifr);
}

int mt_device_set_txqueuelen(const char *ifname, int qlen)
{
    struct ifreq ifr;
    ifreq_for(&ifr, ifname);
    ifr.ifr_qlen = qlen;
    return if_ioctl(AF_INET, SIOCSIFTXQLEN, &ifr);
}

int mt_device_set_up(const char *ifname)
{
    struct ifreq ifr;
    ifreq_for(&ifr, ifname);
    int rc = if_ioctl(AF_INET, SIOCGIFFLAGS, &ifr);
    if (rc < 0)
        return rc;
    ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
    return if_ioctl(AF_INET, SIOCSIFFLAGS, &ifr);
}

static int add_ipv4(const char *ifname, const struct mt_prefix *p, unsigned alias)
{
    /* SIOCSIFADDR replaces the address of the name it is given: a second IPv4 address goes
     * on an alias label ("tun0:1"), the ioctl way of adding rather than replacing. */
    char label[IFNAMSIZ];
    if (alias > 0) {
        int n = snprintf(label, sizeof(label), "%s:%u", ifname, alias);
        if (n < 0 || (size_t)n >= sizeof(label))
            return -ENAMETOOLONG;
        ifname = label;
    }
    struct ifreq ifr;
    struct sockaddr_in sin = {.sin_family = AF_INET};
    memcpy(&sin.sin_addr, p->addr.b, 4);
    ifreq_for(&ifr, ifname);
    memcpy(&ifr.ifr_addr, &sin, sizeof(sin));
    int rc = if_ioctl(AF_INET, SIOCSIFADDR, &ifr);
    if (rc < 0)
        return rc;
    uint32_t mask = p->len ? htonl(0xFFFFFFFFu << (32 - p->len)) : 0;
    memcpy(&sin.sin_addr, &mask, 4);
    ifreq_for(&ifr, ifname);
    memcpy(&ifr.ifr_netmask, &sin, sizeof(sin));
    return if_ioctl(AF_INET, SIOCSIFNETMASK, &ifr);
}

static int add_ipv6(const char *ifname, const struct mt_prefix *p)
{
    struct mt_in6_ifreq req;
    memset(&req, 0, sizeof(req));
    memcpy(&req.addr, p->addr.b, 16);
    req.prefixlen = p->len;
    req.ifindex = (int)if_nametoindex(ifname);
    if (req.ifindex == 0)
        return -errno;
    return if_ioctl(AF_INET6, SIOCSIFADDR, &req);
}

int mt_device_add_addr(const char *ifname, const struct mt_prefix *addr, unsigned alias)
{
    return addr->addr.kind == MT_ADDR_IP4 ? add_ipv4(ifname, addr, alias) : add_ipv6(ifname, addr);
}
