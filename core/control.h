/* The control plane of a running tunnel: a Unix socket speaking the line protocol of
 * ctlproto.h (moontun show, metrics, reload, peer kill) and, when asked, an HTTP listener for
 * GET /metrics. Both are served on the tunnel's libev loop; no client can hold the loop or
 * take memory beyond its own bounded buffers. */
#ifndef MOONTUN_CORE_CONTROL_H
#define MOONTUN_CORE_CONTROL_H

#include <stddef.h>

#include "tunnel.h"

#define MT_CONTROL_DIR         "/run/moontun"
#define MT_CONTROL_MAX_CLIENTS 128 /* more are accepted and closed at once, with a reason */
#define MT_CONTROL_IDLE        10  /* s: a client that neither completes a line nor reads */

struct mt_control;

/* The default socket path for ifname: MT_CONTROL_DIR/IFNAME.sock, or IFNAME@NS.sock inside
 * a network namespace NS made by `ip netns add` (interface names are per namespace: the
 * tunnels "mt0" of two namespaces must not share a socket). */
void mt_control_default_path(const char *ifname, char *buf, size_t bufsz);
/* "@NS" inside the named network namespace NS, else "". */
void mt_control_netns_tag(char *buf, size_t bufsz);

/* Opens the control socket at cfg->control (default: the path above, its directory made if
 * missing) with mode 0600, owned by --user's user when given, and the --metrics-listen
 * listener. A live socket at the path (another instance) is an error; a stale one is
 * replaced. Call after the device exists, before privileges are dropped. 0 or a negative
 * errno with one line in err. */
int mt_control_open(struct mt_control **out, struct mt_tunnel *t, char *err, size_t errsz);
/* Closes every client and listener and removes the socket. NULL is fine. */
void mt_control_close(struct mt_control *c);

#endif
