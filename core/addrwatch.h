/* Puts the device's IPv6 --addr addresses back after it goes down and up again: the kernel
 * flushes IPv6 addresses when a device goes down (IPv4 ones stay). Private to the core. */
#ifndef MOONTUN_CORE_ADDRWATCH_H
#define MOONTUN_CORE_ADDRWATCH_H

#include <ev.h>

#include "moontun/config.h"

struct mt_addrwatch;

/* Starts watching ifname's link (a netlink socket on loop) when cfg has IPv6 addresses;
 * otherwise sets *out to NULL and does nothing. The device must be up with its addresses set.
 * 0, or a negative errno (logged here: the tunnel runs on without the watch). */
int mt__addrwatch_open(struct mt_addrwatch **out, struct ev_loop *loop, const char *ifname,
                       const struct mt_config *cfg);
/* Stops the watch and frees it; NULL is fine. */
void mt__addrwatch_close(struct mt_addrwatch *aw);

#endif
