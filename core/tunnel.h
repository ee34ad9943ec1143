/* Private to the core: the tunnel (device + transport + peers + scripts on one libev loop)
 * and the generic peer. Transports (transport.h) call into tunnel.c for every packet's fate. */
#ifndef MOONTUN_CORE_TUNNEL_H
#define MOONTUN_CORE_TUNNEL_H

#include <ev.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <sys/socket.h>

#include "moontun/config.h"
#include "moontun/packet.h"
#include "moontun/peer.h"
#include "moontun/route.h"
#include "moontun/script.h"
#include "moontun/stats.h"
#include "transport.h"

#define MT_DEV_BATCH 64 /* packets read from the device per wake-up */
#define MT_ROUTES    4096

struct mt_tunnel;

/* A peer as the core sees it: the public part first, so a struct mt_peer * from a script
 * converts back with a cast. A transport allocates ops->peer_size bytes and keeps its own
 * per-peer state (socket, buffers, session) around this generic part. */
struct mt_tpeer {
    struct mt_peer pub;
    struct mt_tunnel *tun;      /* ro */
    struct mt_tpeer *next;      /* private: list of live peers */
    struct sockaddr_storage sa; /* ro: outer address */
    socklen_t salen;
    double last_rx, last_tx; /* ev_now of the last datagram/frame received/sent */
    double since;            /* ev_now when it came up (moontun show) */
    /* Set by the transport: the peer takes offloaded packets (an offload header with a
     * packet of up to 64 KiB) and so is never given packets cut to the MTU. */
    bool offload;
    /* Peer hashes (peer.c): by outer address, and by the identity the transport knows the
     * peer by (UDP: the client's session; 0: none). */
    struct mt_tpeer *hnext; /* chain in the by-address hash */
    struct mt_tpeer *snext; /* chain in the by-identity hash */
    uint64_t sid;
};

struct mt_tunnel {
    struct ev_loop *loop;
    const struct mt_config *cfg;
    enum mt_link link;
    int dev_fd;
    char ifname[IFNAMSIZ];
    ev_io dev_w;
    bool dev_paused;  /* back-pressure: some peer's transport queue is congested */
    size_t frame_max; /* largest packet accepted from the network */
    bool vnet;        /* the device reads and writes a virtio-net header (offloads on) */
    bool uso;         /* ... and takes UDP super-packets (GSO_UDP_L4) too */

    const struct mt_transport_ops *ops; /* picked once, at init */
    void *tr;                           /* the transport's own state (its file's struct) */

    struct mt_tpeer *peers;
    int npeers;
    /* peer.c: peers by outer address and by identity (buckets: peer_hmask + 1) */
    struct mt_tpeer **peer_by_addr, **peer_by_sid;
    size_t peer_hmask;
    uint32_t next_peer_id;
    struct mt_route_table routes;
    struct mt_sroutes sroutes; /* mt.route: asked before routes on both forwarding paths */

    struct mt_stats stats;
    struct mt_scripts *scripts;
    unsigned hooks; /* MT_HOOK_* of the loaded chain */
    struct mt_host host;

    uint8_t *dev_buf; /* MT_PKT_BUFSIZE: a packet read from the device */
    uint8_t *net_buf; /* MT_PKT_BUFSIZE: a packet from a peer, copied here for the hooks */
    uint8_t *out_buf; /* MT_PKT_BUFSIZE: a packet on its way out that must not be altered */
    uint8_t *seg_buf; /* MT_PKT_BUFSIZE: one segment of a super-packet cut in software */
    /* MT_PKT_BUFSIZE: a script's mt.send/mt.inject bytes being made a super-packet, and its
     * segments. Apart from the others: a script may call them from an encode hook while a
     * packet sits in out_buf or seg_buf. */
    uint8_t *xmit_buf;
    uint8_t *xmit_seg_buf;
    double oversize_logged; /* rate limit for packets too big for a peer */
    double offload_logged;  /* rate limit for refused offload headers */

    ev_prepare flush_w; /* flushes the transport once per loop iteration, before blocking */
    bool tx_pending;    /* the transport holds queued packets (tunnel.c alone sets it) */
    int exit_code;
    bool stopping; /* shutting down: no reconnects */

    ev_signal sig_w[64]; /* every catchable signal that would end the process, SIGHUP, SIGUSR1/2 */
    int nsig;
    double dev_err_logged; /* rate limit for device write errors */
    double refusal_logged; /* rate limit for refused peers */
    uint64_t refusals_suppressed;
    struct mt_addrwatch *addrwatch; /* core/addrwatch.c: IPv6 --addr back after down/up */
    /* core/capture.c: the running captures (moontun capture); NULL while none runs, so each
     * decision point pays one test. */
    struct mt_capture *captures;
};

/* tunnel.c: set-up and the fate of every packet */
int mt_tunnel_init(struct mt_tunnel *t, struct ev_loop *loop, const struct mt_config *cfg,
                   char *err, size_t errsz);
int mt_tunnel_open(struct mt_tunnel *t, char *err, size_t errsz);
/* Loads and starts the -S scripts (init does it, unless --user defers it past the drop). */
int mt_tunnel_load_scripts(struct mt_tunnel *t, char *err, size_t errsz);
void mt_tunnel_run(struct mt_tunnel *t);
void mt_tunnel_close(struct mt_tunnel *t);
/* Reloads the scripts (SIGHUP, the control socket's reload), logging the outcome with why.
 * 0 (err may say there was nothing to reload), or a negative errno with err saying why. */
int mt__tunnel_reload(struct mt_tunnel *t, const char *why, char *err, size_t errsz);
/* A packet arrived from a peer (already deframed); data is not modified. vnet: its offload
 * header from an extended frame, or NULL. */
void mt__tunnel_from_peer(struct mt_tunnel *t, struct mt_tpeer *p, const uint8_t *data, size_t len,
                          const struct mt_vnet_hdr *vnet);
/* The device end of the tunnel: fd (a tun/tap device; a socketpair in the unit tests) is
 * read for egress and written for ingress, with a virtio-net header when vnet. Starts the
 * device and flush watchers. */
void mt__tunnel_use_device(struct mt_tunnel *t, int fd, bool vnet);
/* Back-pressure, decided here alone. A transport queued bytes for p (a packet, or its own
 * handshake): flush them before the loop sleeps, and stop reading the device at once when
 * p's queue is congested (a batch of 64 super-packets would overflow any queue). */
void mt__tunnel_queued(struct mt_tpeer *p);
/* A queue drained or a peer went: read the device again once no peer is congested. */
void mt__tunnel_update_pressure(struct mt_tunnel *t);

/* peer.c: the list of live peers */
struct mt_tpeer *mt__peer_new(struct mt_tunnel *t, const struct sockaddr *sa, socklen_t salen);
void mt__peer_free(struct mt_tpeer *p, const char *reason);
struct mt_tpeer *mt__peer_by_sockaddr(struct mt_tunnel *t, const struct sockaddr *sa,
                                      socklen_t salen);
/* The peer holding UDP session identity sid (not 0), or NULL. */
struct mt_tpeer *mt__peer_by_sid(struct mt_tunnel *t, uint64_t sid);
/* Records p's session identity (0: none), replacing an earlier one. */
void mt__peer_set_sid(struct mt_tpeer *p, uint64_t sid);
/* Moves p to a new outer address (a roaming or NAT-rebound client): lookups by sa find it. */
void mt__peer_set_addr(struct mt_tpeer *p, const struct sockaddr *sa, socklen_t salen);
/* True when --allow (if any) admits sa and --max-peers has room; logs the refusal. */
bool mt__peer_admit(struct mt_tunnel *t, const struct sockaddr *sa);
/* True when --allow (if any) admits sa; no log, no count. */
bool mt__peer_allowed(const struct mt_tunnel *t, const struct sockaddr *sa);

/* Resolves host:port for the client, or the -l address for the server (NULL: any). */
int mt__resolve(const char *host, uint16_t port, int socktype, bool passive,
                struct sockaddr_storage *out, socklen_t *outlen, char *err, size_t errsz);
/* The server's bound socket (-l, or any address dual-stack). Returns the fd or -errno. */
int mt__bind_server(struct mt_tunnel *t, int socktype, char *err, size_t errsz);
/* Binds a client socket to -l's address when one was given. */
int mt__bind_client(struct mt_tunnel *t, int fd, int socktype, char *err, size_t errsz);
/* UDP socket options: MT_UDP_SOCKBUF buffers, DF per --outer-df, and (server) the arrival
 * address of every datagram. 0 or the first negative errno (the socket stays usable). */
#define MT_UDP_SOCKBUF (8 * 1024 * 1024)
int mt__udp_socket_options(int fd, int family, bool outer_df, bool server);
/* Room for the one cmsg a reply needs: the local address it must leave from. */
union mt_pktinfo_cmsg {
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo))];
};
/* The local address a datagram arrived on (IPv4 as v4-mapped; the interface kept only for a
 * link-local address), from the IP_PKTINFO/IPV6_PKTINFO that mt__udp_socket_options asked
 * for; all zero when there is none. */
void mt__pktinfo_arrival(const struct msghdr *mh, struct in6_pktinfo *out);
/* Fills c with the cmsg that makes a datagram of a socket of this family leave from local;
 * returns its length, 0 when local is all zero (the kernel chooses). */
size_t mt__pktinfo_source(int family, const struct in6_pktinfo *local, union mt_pktinfo_cmsg *c);
/* The size of the datagrams the kernel joined into one read (the UDP_GRO cmsg); 0 for a
 * single datagram. */
size_t mt__udp_gro_size(const struct msghdr *mh);

#endif
