/* Private to the core: the tunnel (device + transport + peers + scripts on one libev loop)
 * and the transport-side peer. Transports call into tunnel.c for every packet's fate. */
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
#include "handshake.h"

#define MT_TX_QUEUE      (512 * 1024) /* TCP send queue per peer */
#define MT_TX_HIGH       (256 * 1024) /* above this, stop reading the device (back-pressure) */
#define MT_RX_BUF        (2 * (MT_FRAME_MAX_ANY + 2))
#define MT_FRAME_MAX_ANY 65535
#define MT_DEV_BATCH     64 /* packets read from the device per wake-up */
#define MT_ROUTES        4096

struct mt_tunnel;
struct mt_udp_rx;
struct mt_udp_tx;
struct mt_gro;

/* A peer as the core sees it: the public part first, so a struct mt_peer * from a script
 * converts back with a cast. */
struct mt_tpeer {
    struct mt_peer pub;
    struct mt_tunnel *tun;      /* ro */
    struct mt_tpeer *next;      /* private: list of live peers */
    struct sockaddr_storage sa; /* ro: outer address */
    socklen_t salen;
    double last_rx, last_tx; /* ev_now of the last datagram/frame received/sent */
    double last_read;        /* TCP: ev_now of the last read that returned bytes */
    /* TCP only */
    int fd;
    ev_io rio, wio;
    uint8_t *rxbuf; /* MT_RX_BUF bytes */
    size_t rxlen;
    uint8_t *txbuf; /* MT_TX_QUEUE bytes: frames waiting for the socket */
    size_t txoff, txlen;
    bool connecting; /* client: non-blocking connect in progress */
    bool xsend;      /* offload handshake done our way: we send extended frames */
    bool xrecv;      /* the peer switched: what follows in its stream is extended frames */

    struct mt_wire wire;    /* TCP: framing, skipping, offload handshake (handshake.h) */
    double oversize_logged; /* TCP: ev_now of the last "oversized frame" warning */
    /* Peer hashes (peer.c) and UDP session state (transport_udp.c) */
    struct mt_tpeer *hnext;   /* chain in the by-address hash */
    struct mt_tpeer *snext;   /* chain in the by-session hash */
    uint64_t sid;             /* UDP: the client's session identity; 0: none (an older client) */
    double ka_interval;       /* UDP: keepalive interval the client announced; 0: unknown */
    double routes_touched;    /* UDP: when a keepalive last marked its routes alive */
    struct in6_pktinfo local; /* UDP server: our address its last datagram arrived on (IPv4
                               * as v4-mapped); all zero: unknown */
};

struct mt_tunnel {
    struct ev_loop *loop;
    const struct mt_config *cfg;
    enum mt_link link;
    int dev_fd;
    char ifname[IFNAMSIZ];
    ev_io dev_w;
    bool dev_paused;  /* back-pressure: a peer's queue is over MT_TX_HIGH */
    size_t frame_max; /* largest packet accepted from the network */
    bool vnet;        /* the device reads and writes a virtio-net header (offloads on) */

    int sock_fd; /* TCP server: listener; UDP: the one socket */
    ev_io sock_w;
    ev_timer tick_w;          /* UDP keepalives and idle timeouts; TCP stalled frames */
    struct mt_udp_rx *udp_rx; /* UDP receive batch buffers */
    struct mt_udp_tx *udp_tx; /* UDP send batch (sendmmsg) */
    struct mt_gro *gro;       /* UDP: segments being joined into a super-packet */

    /* client */
    struct sockaddr_storage server_sa;
    socklen_t server_salen;
    ev_timer reconnect_w;
    double backoff;

    struct mt_tpeer *peers;
    int npeers;
    /* peer.c: peers by outer address and by UDP session identity (buckets: peer_hmask + 1) */
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

    ev_prepare flush_w; /* flushes TCP queues once per loop iteration, before blocking */
    bool tx_pending;    /* some TCP queue has unflushed frames */
    int connect_fd;     /* client TCP: connection in progress, or -1 */
    ev_io connect_w;
    ev_timer accept_pause_w; /* out of fds: stop accepting for a moment */
    int exit_code;
    bool stopping; /* shutting down: no reconnects */

    ev_signal sigint_w, sigterm_w, sighup_w;
    double dev_err_logged; /* rate limit for device write errors */
    double refusal_logged; /* rate limit for refused peers */
    uint64_t refusals_suppressed;
    struct mt_addrwatch *addrwatch; /* core/addrwatch.c: IPv6 --addr back after down/up */
};

/* tunnel.c: set-up and the fate of every packet */
int mt_tunnel_init(struct mt_tunnel *t, struct ev_loop *loop, const struct mt_config *cfg,
                   char *err, size_t errsz);
int mt_tunnel_open(struct mt_tunnel *t, char *err, size_t errsz);
/* Loads and starts the -S scripts (init does it, unless --user defers it past the drop). */
int mt_tunnel_load_scripts(struct mt_tunnel *t, char *err, size_t errsz);
void mt_tunnel_run(struct mt_tunnel *t);
void mt_tunnel_close(struct mt_tunnel *t);
/* A packet arrived from a peer (already deframed); data is not modified. vnet: its offload
 * header from an extended frame, or NULL. */
void mt__tunnel_from_peer(struct mt_tunnel *t, struct mt_tpeer *p, const uint8_t *data, size_t len,
                          const struct mt_vnet_hdr *vnet);
/* Flushes transports after a batch (TCP queues); re-evaluates back-pressure. */
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
void mt__sockaddr_str(const struct sockaddr *sa, char *buf, size_t bufsz);

/* transport_tcp.c / transport_udp.c */
int mt__tcp_start(struct mt_tunnel *t, char *err, size_t errsz);
int mt__tcp_send(struct mt_tpeer *p, const uint8_t *data, size_t len);
/* An extended frame (only once p->xsend): the offload header (NULL: none) and the packet. */
int mt__tcp_send_x(struct mt_tpeer *p, const struct mt_vnet_hdr *vnet, const uint8_t *data,
                   size_t len);
void mt__tcp_flush(struct mt_tpeer *p);
void mt__tcp_close_peer(struct mt_tpeer *p);
void mt__tcp_stop(struct mt_tunnel *t);
int mt__udp_start(struct mt_tunnel *t, char *err, size_t errsz);
int mt__udp_send(struct mt_tpeer *p, const uint8_t *data, size_t len);
void mt__udp_flush(struct mt_tunnel *t);
void mt__udp_stop(struct mt_tunnel *t);

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

#endif
