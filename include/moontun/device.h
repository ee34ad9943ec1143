/* The tun/tap device: opening it and configuring it from inside the program (ioctl), so
 * moontun never runs `ip`. A device is not persistent: closing its fd removes it. */
#ifndef MOONTUN_DEVICE_H
#define MOONTUN_DEVICE_H

#include <net/if.h>
#include <stdbool.h>

#include "moontun/config.h"

/* Opens /dev/net/tun as a tun (IFF_TUN|IFF_NO_PI) or tap device named name (empty: the
 * kernel picks) and stores the actual name in ifname. Non-blocking. With vnet, every read and
 * write carries a virtio-net header first (IFF_VNET_HDR). Returns the fd or a negative errno. */
int mt_device_open(const char *name, bool tap, bool vnet, char ifname[IFNAMSIZ]);
/* Asks the kernel for checksum and TCP segmentation offload (TSO4/TSO6/ECN) on a vnet device:
 * reads may then return 64 KiB super-packets with partial checksums. 0 or a negative errno. */
int mt_device_enable_offload(int fd, bool *uso);
int mt_device_set_mtu(const char *ifname, int mtu);
/* The device's transmit queue: what the kernel holds for us while we are busy elsewhere (the
 * tun default, 500, drops the replies to a burst from thousands of peers). */
#define MT_DEVICE_TXQUEUELEN 8192
int mt_device_set_txqueuelen(const char *ifname, int qlen);
int mt_device_set_up(const char *ifname);
/* Adds an IPv4 or IPv6 address with its prefix length. alias numbers the IPv4 addresses after
 * the first (0 for the first): the kernel's ioctl keeps one address per label. */
int mt_device_add_addr(const char *ifname, const struct mt_prefix *addr, unsigned alias);

#endif
