/* The address watch: a netlink socket (RTMGRP_LINK) on the event loop that notices the
 * device coming back up after someone took it down, and adds the IPv6 --addr addresses that
 * the kernel flushed on the way down. One log line per restore. */
#include "addrwatch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "moontun/device.h"
#include "moontun/log.h"

struct mt_addrwatch {
    ev_io w;
    struct ev_loop *loop;
    int fd;
    int ifindex;
    bool up; /* the device's IFF_UP as last seen */
    char ifname[IFNAMSIZ];
    const struct mt_config *cfg;
};

/* Adds every IPv6 --addr back (one already there is fine) and says so in one line. */
static void restore(struct mt_addrwatch *aw)
{
    char done[512] = "", failed[160] = "";
    size_t used = 0;
    int n = 0;
    for (int i = 0; i < aw->cfg->naddrs; i++) {
        const struct mt_prefix *p = &aw->cfg->addrs[i];
        if (p->addr.kind != MT_ADDR_IP6)
            continue;
        char text[MT_ADDR_STRLEN];
        mt_addr_str(&p->addr, text, sizeof(text));
        int rc = mt_device_add_addr(aw->ifname, p, 0);
        if (rc < 0 && rc != -EEXIST) {
            if (failed[0] == '\0')
                snprintf(failed, sizeof(failed), "; %s/%u failed: %s", text, (unsigned)p->len,
                         strerror(-rc));
            continue;
        }
        int w = snprintf(done + used, sizeof(done) - used, "%s%s/%u", n ? ", " : "", text,
                         (unsigned)p->len);
        if (w > 0 && (size_t)w < sizeof(done) - used)
            used += (size_t)w;
        n++;
    }
    if (failed[0] != '\0')
        mt_warn("%s is up again: restored %d IPv6 address%s%s%s%s", aw->ifname, n,
                n == 1 ? "" : "es", n ? " " : "", n ? done : "", failed);
    else
        mt_info("%s is up again: restored %d IPv6 address%s %s", aw->ifname, n, n == 1 ? "" : "es",
                done);
}

/* The device's IFF_UP now, asked directly: after lost notifications. */
static int link_is_up(const char *ifname)
{
    struct ifreq ifr;
    memset(&ifr, 0, sizeof(ifr));
    snprintf(ifr.ifr_name, IFNAMSIZ, "%s", ifname);
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -errno;
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr) < 0 ? -errno : (ifr.ifr_flags & IFF_UP) != 0;
    close(s);
    return rc;
}

static void on_link(struct mt_addrwatch *aw, bool up)
{
    if (up && !aw->up)
        restore(aw);
    aw->up = up;
}

static void netlink_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_addrwatch *aw = (struct mt_addrwatch *)w;
    (void)loop;
    (void)revents;
    for (;;) {
        _Alignas(struct nlmsghdr) char buf[16384];
        struct sockaddr_nl from;
        socklen_t fromlen = sizeof(from);
        ssize_t n = recvfrom(aw->fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fromlen);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == ENOBUFS) { /* notifications were lost: look at the link itself */
                int up = link_is_up(aw->ifname);
                if (up >= 0)
                    on_link(aw, up);
                continue;
            }
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                mt_warn("%s: address watch: %s", aw->ifname, strerror(errno));
            return;
        }
        if (fromlen < sizeof(from) || from.nl_pid != 0)
            continue; /* only the kernel speaks for the link */
        /* NLMSG_OK checks each header's length against what is left: a message that claims
         * more than arrived ends the walk. */
        size_t left = (size_t)n;
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, left);
             h = NLMSG_NEXT(h, left)) {
            if (h->nlmsg_type != RTM_NEWLINK ||
                h->nlmsg_len - NLMSG_HDRLEN < sizeof(struct ifinfomsg))
                continue;
            const struct ifinfomsg *ifi = NLMSG_DATA(h);
            if (ifi->ifi_index == aw->ifindex)
                on_link(aw, (ifi->ifi_flags & IFF_UP) != 0);
        }
    }
}

int mt__addrwatch_open(struct mt_addrwatch **out, struct ev_loop *loop, const char *ifname,
                       const struct mt_config *cfg)
{
    *out = NULL;
    bool any6 = false;
    for (int i = 0; i < cfg->naddrs; i++)
        any6 |= cfg->addrs[i].addr.kind == MT_ADDR_IP6;
    if (!any6)
        return 0;

    struct mt_addrwatch *aw = calloc(1, sizeof(*aw));
    if (aw == NULL) {
        mt_warn("%s: no address watch: out of memory", ifname);
        return -ENOMEM;
    }
    int rc;
    aw->loop = loop;
    aw->cfg = cfg;
    aw->up = true; /* the tunnel has just brought it up */
    snprintf(aw->ifname, sizeof(aw->ifname), "%s", ifname);
    aw->ifindex = (int)if_nametoindex(ifname);
    aw->fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC, NETLINK_ROUTE);
    if (aw->ifindex == 0 || aw->fd < 0) {
        rc = -errno;
        goto fail;
    }
    struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = RTMGRP_LINK};
    if (bind(aw->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        rc = -errno;
        goto fail;
    }
    ev_io_init(&aw->w, netlink_cb, aw->fd, EV_READ);
    ev_io_start(loop, &aw->w);
    *out = aw;
    return 0;

fail:
    mt_warn("%s: no address watch (IPv6 addresses will not come back after the device goes "
            "down and up): %s",
            ifname, strerror(-rc));
    if (aw->fd >= 0)
        close(aw->fd);
    free(aw);
    return rc;
}

void mt__addrwatch_close(struct mt_addrwatch *aw)
{
    if (aw == NULL)
        return;
    ev_io_stop(aw->loop, &aw->w);
    close(aw->fd);
    free(aw);
}
