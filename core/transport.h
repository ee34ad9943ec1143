/* Private to the core: what a transport (TCP, UDP, later WireGuard) offers the tunnel. The
 * tunnel picks one operations table at start-up (mt__transport_pick) and calls only through
 * it; each transport keeps its sockets, timers, buffers and per-peer state in its own file. */
#ifndef MOONTUN_CORE_TRANSPORT_H
#define MOONTUN_CORE_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/config.h"
#include "moontun/packet.h"

struct mt_tunnel;
struct mt_tpeer;

struct mt_transport_ops {
    const char *name; /* "tcp", "udp", "wg": for logs */
    /* Bytes to allocate for one of its peers: a struct that starts with (or embeds, found
     * with mt_container_of) the generic struct mt_tpeer, which mt__peer_new fills in. */
    size_t peer_size;
    /* Opens its sockets and timers and stores its state in t->tr. Runs before the device
     * exists, so a port in use fails first. 0, or a negative errno with one line in err. */
    int (*start)(struct mt_tunnel *t, char *err, size_t errsz);
    /* Queues one packet (final bytes, encode already ran) for p. vnet is the packet's offload
     * header when p->offload (NULL: an ordinary packet); never set for other peers, which
     * are never given more than t->frame_max bytes. 0, or a negative errno: the packet is
     * dropped (the tunnel counts it). The tunnel then calls mt__tunnel_queued. */
    int (*send)(struct mt_tpeer *p, const struct mt_vnet_hdr *vnet, const uint8_t *data,
                size_t len);
    /* Hands every queued packet to the kernel (once per loop iteration, before it blocks).
     * May close peers. */
    void (*flush)(struct mt_tunnel *t);
    /* True while p's queue is over its high-water mark: the tunnel stops reading the device
     * until every peer says false (back-pressure). */
    bool (*congested)(const struct mt_tpeer *p);
    /* Frees the transport-private part of p (buffers; its socket is already closed). NULL:
     * nothing to free. Called by mt__peer_free just before p goes. */
    void (*peer_release)(struct mt_tpeer *p);
    /* Whether p may send from the inner source address of pkt (a transport whose peers own
     * fixed prefixes, as WireGuard's allowed IPs). NULL: any source, learned as it comes.
     * A false drops the packet before any script or route sees it. */
    bool (*source_ok)(const struct mt_tpeer *p, const struct mt_packet *pkt);
    /* The peer an egress packet the scripts did not route goes to, by the transport's own
     * rule (WireGuard: the longest AllowedIPs prefix holding the destination); NULL: no
     * route, dropped. Its answer is final. NULL op: the tunnel's learning table decides. */
    struct mt_tpeer *(*route)(struct mt_tunnel *t, struct mt_packet *pkt);
    /* Ends p at an operator's request (moontun peer ADDR kill) as its own failure would,
     * logging reason (a TCP client then reconnects). 0, or -EPERM when p cannot go (a UDP
     * client's one server). NULL: not offered. */
    int (*kill)(struct mt_tpeer *p, const char *reason);
    /* Sends what is queued, says goodbye where the protocol has one, closes its peers'
     * sockets and its own, frees t->tr. Safe when start never ran or failed half-way. */
    void (*stop)(struct mt_tunnel *t);
};

extern const struct mt_transport_ops mt__tcp_transport; /* transport_tcp.c */
extern const struct mt_transport_ops mt__udp_transport; /* transport_udp.c */
extern const struct mt_transport_ops mt__wg_transport;  /* transport_wg.c */

/* The operations table for --tcp/--udp/--wg: the one place the choice is made. */
const struct mt_transport_ops *mt__transport_pick(enum mt_transport kind);

#endif
