/* The tun/tap device: opening it and configuring it from inside the program (ioctl), so
 * moontun never runs `ip`. A device is not persistent: closing its fd removes it. */
#ifndef MOONTUN_DEVICE_H
#define MOONTUN_DEVICE_H

#include <net/if.h>
#include <stdbool.h>

#include "moontun/config.h"

/* Opens /dev/net/tun as a tun (IFF_TUN|IFF_NO_PI) or tap device named name (empty: the
 * kernel picks) and stores the actual name in ifname. Non-blocking. Returns the fd or a
 * negative errno. */
int mt_device_open(const char *name, bool tap, char ifname[IFNAMSIZ]);
int mt_device_set_mtu(const char *ifname, int mtu);
int mt_device_set_up(const char *ifname);
/* Assigns an IPv4 or IPv6 address with its prefix length. */
int mt_device_add_addr(const char *ifname, const struct mt_prefix *addr);

#endif
