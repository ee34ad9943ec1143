/* UDP transport: one packet per datagram on one socket. The server learns peers by source
 * address and follows a client's session identity when that address changes; replies leave
 * from the address each peer's datagrams arrived on; every peer gets a keepalive when we
 * have been quiet, and the server forgets a peer it has heard nothing from for
 * --idle-timeout, or at once when the client says goodbye. */
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gro.h"
#include "moontun/log.h"
#include "tunnel.h"
#include "udp_gso.h"
#include "util.h"

/* Older C libraries lack the kernel's names (Linux 4.18 and 5.0 have the options). */
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
#ifndef UDP_GRO
#define UDP_GRO 104
#endif

#define RX_BATCH  64  /* datagrams per recvmmsg: a 64 KiB super-packet's worth of segments */
#define TX_BATCH  64  /* datagrams per sendmmsg: one device batch's worth */
#define LOG_EVERY 5.0 /* seconds between two log lines about the same kind of drop */

/* Control datagrams, client to server (see README, wire format). 12 bytes: shorter than an
 * IPv4 header (20) and an Ethernet header (14), so no packet can look like one. Byte 0 the
 * type, byte 1 zero, bytes 2-3 the client's keepalive interval in tenths of a second (big
 * endian), bytes 4-11 its session identity, random per process run. */
#define CTL_LEN   12
#define CTL_HELLO 0x01 /* I am session S (sent at start and every keepalive interval) */
#define CTL_BYE   0x02 /* session S is over (clean exit): free my slot now */

/* Room for the cmsgs we send or want: the arrival address of a datagram, and the segment
 * size of a GSO send (uint16_t) or a GRO read (int). */
union udp_cmsg {
    union mt_pktinfo_cmsg pktinfo; /* the arrival address alone (socket.c) */
    struct cmsghdr align;
    uint8_t buf[CMSG_SPACE(sizeof(struct in6_pktinfo)) + CMSG_SPACE(sizeof(struct in_pktinfo)) +
                CMSG_SPACE(sizeof(int))];
};

/* Receive buffers for one recvmmsg batch, allocated once. */
struct mt_udp_rx {
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    struct sockaddr_storage from[RX_BATCH];
    union udp_cmsg ctl[RX_BATCH];
    uint8_t *bufs; /* RX_BATCH * MT_MAX_PACKET */
    double oversize_logged;
    uint64_t oversize_unlogged;
    double dead_slot_checked; /* when a full server last looked for a dead peer */
};

/* Datagrams waiting for the next sendmmsg, with copies of their bytes, destinations and
 * source addresses (a peer may be freed before the flush). Allocated once. */
struct mt_udp_tx {
    struct mmsghdr msgs[TX_BATCH];
    struct iovec iov[TX_BATCH];
    struct sockaddr_storage to[TX_BATCH];
    union udp_cmsg ctl[TX_BATCH];
    uint8_t *bufs; /* TX_BATCH * MT_MAX_PACKET */
    int n;
    uint64_t sid;      /* client: our session identity (never 0) */
    double hello_sent; /* client: when the last HELLO left */
    int family;        /* the socket's address family */
    double err_logged;
    uint64_t errs_unlogged;
    /* With kernel GSO: what one flush hands to sendmmsg, a run of queued datagrams per
     * message (first, count), and the cmsgs of the runs. */
    struct mmsghdr out[TX_BATCH];
    union udp_cmsg out_ctl[TX_BATCH];
    int out_first[TX_BATCH], out_count[TX_BATCH];
};

/* The transport's state (t->tr): the one socket, its batches, the GRO buffer. */
struct udp {
    struct mt_tunnel *t;
    int fd;
    ev_io sock_w;
    ev_timer tick_w;                   /* keepalives and idle timeouts */
    struct sockaddr_storage server_sa; /* client: the server */
    socklen_t server_salen;
    struct mt_udp_rx *rx; /* receive batch buffers */
    struct mt_udp_tx *tx; /* send batch (sendmmsg) */
    struct mt_gro *gro;   /* segments being joined into a super-packet */
    bool gso;             /* the kernel cuts our runs of datagrams (UDP_SEGMENT) */
    bool kgro;            /* the kernel joins datagrams it receives (UDP_GRO) */
};

/* A peer and its session: the generic peer (whose sid is the session identity) and what the
 * server learned from its control datagrams. */
struct udp_peer {
    struct mt_tpeer base;
    double ka_interval;       /* keepalive interval the client announced; 0: unknown */
    double routes_touched;    /* when a keepalive last marked its routes alive */
    struct in6_pktinfo local; /* server: our address its last datagram arrived on (IPv4 as
                               * v4-mapped); all zero: unknown */
};

static struct udp *udp_of(const struct mt_tunnel *t)
{
    return t->tr;
}

static struct udp_peer *udp_peer(struct mt_tpeer *p)
{
    return mt_container_of(p, struct udp_peer, base);
}

/* Fills ctl with the cmsg that makes a datagram leave from local (our address the peer's
 * datagrams arrived on); returns its length, 0 when there is nothing to say. Only a server
 * answers on an address of its choosing; a client's socket is connected. */
static size_t source_cmsg(const struct mt_tunnel *t, const struct in6_pktinfo *local,
                          union udp_cmsg *ctl)
{
    if (t->cfg->role != MT_ROLE_SERVER)
        return 0;
    return mt__pktinfo_source(udp_of(t)->tx->family, local, &ctl->pktinfo);
}

static int send_datagram(struct mt_tpeer *p, const uint8_t *data, size_t len)
{
    struct mt_tunnel *t = p->tun;
    ssize_t n;
    if (t->cfg->role == MT_ROLE_CLIENT) {
        n = send(udp_of(t)->fd, data, len, 0);
    } else {
        union udp_cmsg ctl;
        struct iovec iov = {(void *)data, len};
        struct msghdr mh = {
            .msg_name = &p->sa, .msg_namelen = p->salen, .msg_iov = &iov, .msg_iovlen = 1};
        mh.msg_controllen = source_cmsg(t, &udp_peer(p)->local, &ctl);
        mh.msg_control = mh.msg_controllen ? ctl.buf : NULL;
        n = sendmsg(udp_of(t)->fd, &mh, 0);
    }
    if (n < 0)
        return -errno; /* EAGAIN/ENOBUFS: full; ECONNREFUSED: nobody listens (yet) */
    p->last_tx = ev_now(t->loop);
    return 0;
}

/* A control datagram from the client: HELLO or BYE with our session identity. */
static void send_control(struct mt_tpeer *p, uint8_t type)
{
    struct mt_tunnel *t = p->tun;
    uint8_t msg[CTL_LEN] = {type, 0};
    double ds = t->cfg->keepalive * 10.0;
    uint16_t ka = ds > 65535.0 ? 65535 : (uint16_t)ds;
    msg[2] = (uint8_t)(ka >> 8);
    msg[3] = (uint8_t)ka;
    memcpy(msg + 4, &udp_of(t)->tx->sid, 8);
    send_datagram(p, msg, sizeof(msg));
    udp_of(t)->tx->hello_sent = ev_now(t->loop);
}

/* One datagram of a batch the kernel refused (ENETUNREACH for one peer, EADDRNOTAVAIL for a
 * source address that went away, ...): dropped and counted, logged at most every 5 s. */
static void send_failed(struct mt_tunnel *t, const struct msghdr *mh, int err, uint64_t count)
{
    struct mt_udp_tx *tx = udp_of(t)->tx;
    t->stats.queue_drops += count;
    double now = ev_now(t->loop);
    if (now - tx->err_logged < LOG_EVERY) {
        tx->errs_unlogged += count;
        return;
    }
    char name[MT_PEER_ADDRSTRLEN] = "the server";
    if (mh->msg_name)
        mt_sockaddr_str(mh->msg_name, name, sizeof(name));
    mt_warn("udp send to %s failed: %s (%llu datagram%s dropped; %llu more since the last "
            "report)",
            name, strerror(err), (unsigned long long)count, count == 1 ? "" : "s",
            (unsigned long long)tx->errs_unlogged);
    tx->err_logged = now;
    tx->errs_unlogged = 0;
}

/* Sends n prepared datagrams (msgs) with sendmmsg, each its own message. */
static void send_each(struct mt_tunnel *t, struct mmsghdr *msgs, int count)
{
    int done = 0;
    while (done < count) {
        int n = sendmmsg(udp_of(t)->fd, msgs + done, (unsigned)(count - done), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            /* The socket buffer is full: the rest would fail the same way. UDP promises
             * nothing: drop them and count. */
            send_failed(t, &msgs[done].msg_hdr, errno, (uint64_t)(count - done));
            break;
        }
        if (n <= 0) {
            /* sendmmsg stops at the first message that fails and reports it alone: that
             * one is dropped, the messages after it still go. */
            send_failed(t, &msgs[done].msg_hdr, n < 0 ? errno : EIO, 1);
            done++;
            continue;
        }
        done += n;
    }
}

/* True when queued datagrams a and b (of the ctx array of messages) go to the same peer from
 * the same source address: the kernel sends a GSO run to one destination. */
static bool same_route(void *ctx, size_t a, size_t b)
{
    const struct msghdr *x = &((struct mmsghdr *)ctx)[a].msg_hdr;
    const struct msghdr *y = &((struct mmsghdr *)ctx)[b].msg_hdr;
    return x->msg_namelen == y->msg_namelen && x->msg_controllen == y->msg_controllen &&
           (x->msg_namelen == 0 || memcmp(x->msg_name, y->msg_name, x->msg_namelen) == 0) &&
           (x->msg_controllen == 0 ||
            memcmp(x->msg_control, y->msg_control, x->msg_controllen) == 0);
}

/* Makes out message o one GSO send of the run of count queued datagrams from first: their
 * iovecs in order (contiguous in tx->iov), the first one's cmsgs plus UDP_SEGMENT. */
static void plan_run(struct mt_udp_tx *tx, int o, int first, int count)
{
    struct msghdr *mh = &tx->out[o].msg_hdr;
    *mh = tx->msgs[first].msg_hdr;
    tx->out_first[o] = first;
    tx->out_count[o] = count;
    if (count == 1)
        return;
    union udp_cmsg *ctl = &tx->out_ctl[o];
    memset(ctl, 0, sizeof(*ctl));
    if (mh->msg_controllen)
        memcpy(ctl->buf, mh->msg_control, mh->msg_controllen);
    struct cmsghdr *c = (struct cmsghdr *)(ctl->buf + mh->msg_controllen);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    uint16_t size = (uint16_t)tx->iov[first].iov_len;
    memcpy(CMSG_DATA(c), &size, sizeof(size));
    mh->msg_iovlen = (size_t)count;
    mh->msg_control = ctl->buf;
    mh->msg_controllen += CMSG_SPACE(sizeof(uint16_t));
}

/* The kernel refused a GSO send: its datagrams go one by one, which either works or fails
 * each alone. EMSGSIZE, EINVAL and EIO mean GSO itself cannot work here (a route whose MTU
 * is below the datagrams, which --outer-df off lets the kernel fragment, but never a GSO
 * send; a device without checksum offload), and would fail again on every flush: GSO goes
 * off for good, as wireguard-go does. */
static void gso_refused(struct mt_tunnel *t, int err, int first, int count)
{
    struct mt_udp_tx *tx = udp_of(t)->tx;
    if (err == EMSGSIZE || err == EINVAL || err == EIO) {
        mt_warn("udp kernel GSO: a send of %d datagrams refused (%s); GSO off from now on", count,
                strerror(err));
        udp_of(t)->gso = false;
    }
    send_each(t, tx->msgs + first, count);
}

/* With kernel GSO: every run of same-sized datagrams to one peer (a super-packet cut at the
 * MTU) is one message with a UDP_SEGMENT cmsg, the rest one message each, all in one
 * sendmmsg. */
static void flush_gso(struct mt_tunnel *t)
{
    struct mt_udp_tx *tx = udp_of(t)->tx;
    size_t lens[TX_BATCH];
    for (int i = 0; i < tx->n; i++)
        lens[i] = tx->iov[i].iov_len;
    int nout = 0;
    for (int i = 0; i < tx->n; nout++) {
        int run = (int)mt_udp_gso_run(lens + i, (size_t)(tx->n - i), same_route, tx->msgs + i);
        plan_run(tx, nout, i, run);
        i += run;
    }
    int done = 0;
    while (done < nout) {
        int n = sendmmsg(udp_of(t)->fd, tx->out + done, (unsigned)(nout - done), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            uint64_t left = 0;
            for (int o = done; o < nout; o++)
                left += (uint64_t)tx->out_count[o];
            send_failed(t, &tx->out[done].msg_hdr, errno, left);
            break;
        }
        if (n <= 0) {
            int e = n < 0 ? errno : EIO;
            if (tx->out_count[done] > 1)
                gso_refused(t, e, tx->out_first[done], tx->out_count[done]);
            else
                send_failed(t, &tx->out[done].msg_hdr, e, 1);
            done++;
            continue;
        }
        for (int o = done; o < done + n; o++)
            t->stats.udp_gso_sends += tx->out_count[o] > 1;
        done += n;
    }
}

static void udp_flush(struct mt_tunnel *t)
{
    struct mt_udp_tx *tx = udp_of(t)->tx;
    if (udp_of(t)->gso)
        flush_gso(t);
    else
        send_each(t, tx->msgs, tx->n);
    tx->n = 0;
}

static int udp_send(struct mt_tpeer *p, const struct mt_vnet_hdr *vnet, const uint8_t *data,
                    size_t len)
{
    struct mt_tunnel *t = p->tun;
    struct mt_udp_tx *tx = udp_of(t)->tx;
    if (len == 0 || len > MT_MAX_PACKET)
        return -EINVAL; /* an empty datagram means keepalive, never a packet */
    if (tx->n == TX_BATCH)
        udp_flush(t);
    int i = tx->n++;
    uint8_t *buf = tx->bufs + (size_t)i * MT_MAX_PACKET;
    memcpy(buf, data, len);
    tx->iov[i].iov_base = buf;
    tx->iov[i].iov_len = len;
    struct msghdr *mh = &tx->msgs[i].msg_hdr;
    memset(mh, 0, sizeof(*mh));
    mh->msg_iov = &tx->iov[i];
    mh->msg_iovlen = 1;
    if (t->cfg->role == MT_ROLE_SERVER) { /* a client's socket is connected */
        memcpy(&tx->to[i], &p->sa, p->salen);
        mh->msg_name = &tx->to[i];
        mh->msg_namelen = p->salen;
        mh->msg_controllen = source_cmsg(t, &udp_peer(p)->local, &tx->ctl[i]);
        mh->msg_control = mh->msg_controllen ? tx->ctl[i].buf : NULL;
    }
    p->last_tx = ev_now(t->loop); /* flushed before the loop sleeps, or when the batch is full */
    return 0;
}

/* Hands the coalesced segments (if any) on as one packet. */
static void gro_flush(struct mt_tunnel *t)
{
    struct mt_gro *g = udp_of(t)->gro;
    if (!g || g->len == 0)
        return;
    struct mt_tpeer *p = (struct mt_tpeer *)g->owner;
    struct mt_vnet_hdr vnet;
    unsigned segs = g->segs;
    size_t len = mt_gro_finish(g, &vnet);
    /* Counted as what arrived: the segments, not the one packet they became. */
    t->stats.net_rx_packets += segs - 1;
    p->pub.stats.rx_packets += segs - 1;
    mt__tunnel_from_peer(t, p, g->buf, len, segs > 1 ? &vnet : NULL);
}

/* A packet from a peer: joined to the super-packet being built when it can be (offloads on,
 * tun mode, no decode hook that must see each datagram), else delivered as it is. */
static void deliver(struct mt_tunnel *t, struct mt_tpeer *p, const uint8_t *data, size_t len)
{
    struct mt_gro *g = udp_of(t)->gro;
    if (!g || !t->vnet || t->link != MT_LINK_IP || (t->hooks & MT_HOOK_DECODE)) {
        mt__tunnel_from_peer(t, p, data, len, NULL);
        return;
    }
    if (mt_gro_fits(g, p, data, len)) {
        mt_gro_append(g, data, len);
        return;
    }
    gro_flush(t);
    if (!mt_gro_start(g, p, data, len))
        mt__tunnel_from_peer(t, p, data, len, NULL);
}

/* A peer is about to be freed or merged: segments it owns in the GRO buffer go first. */
static void before_peer_change(struct mt_tunnel *t)
{
    gro_flush(t);
}

/* The server is full and a moontun client announces itself: a peer that has missed two of
 * its keepalives (plus a second of slack) is most likely gone (a client killed and
 * restarted, a laptop that left), so it makes way instead of blocking the newcomer until
 * --idle-timeout (the newcomer's next HELLO tries again). Returns true when a slot was
 * freed. */
static bool free_a_dead_slot(struct mt_tunnel *t, double now)
{
    /* A walk of every peer: a flood of HELLOs at a full server gets ten a second. */
    if (now - udp_of(t)->rx->dead_slot_checked < 0.1)
        return false;
    udp_of(t)->rx->dead_slot_checked = now;
    struct mt_tpeer *stalest = NULL;
    for (struct mt_tpeer *q = t->peers; q; q = q->next)
        if (!stalest || q->last_rx < stalest->last_rx)
            stalest = q;
    if (!stalest)
        return false;
    double interval =
        udp_peer(stalest)->ka_interval > 0 ? udp_peer(stalest)->ka_interval : t->cfg->keepalive;
    double silent = now - stalest->last_rx;
    if (silent <= 2 * interval + 1.0)
        return false;
    char reason[96];
    snprintf(reason, sizeof(reason), "silent for %.1f s, its slot goes to a new client", silent);
    before_peer_change(t);
    mt__peer_free(stalest, reason);
    return true;
}

/* A new peer at from, when --allow and --max-peers let it in; NULL otherwise. */
static struct mt_tpeer *admit_peer(struct mt_tunnel *t, const struct sockaddr *from,
                                   socklen_t fromlen)
{
    if (!mt__peer_admit(t, from))
        return NULL;
    struct mt_tpeer *p = mt__peer_new(t, from, fromlen);
    if (p)
        mt_info("peer %s up (udp)", p->pub.addr);
    return p;
}

/* HELLO or BYE from a client (server side). A session identity binds a peer to the client
 * rather than to an address: the same identity from a new address moves the peer there,
 * with its learned routes (a NAT rebinding, a roaming client). */
static void handle_control(struct mt_tunnel *t, const struct sockaddr *from, socklen_t fromlen,
                           const struct in6_pktinfo *local, const uint8_t *msg)
{
    uint64_t sid;
    memcpy(&sid, msg + 4, 8);
    if (sid == 0)
        return; /* not an identity: a liar, or garbage */
    double now = ev_now(t->loop);
    struct mt_tpeer *p = mt__peer_by_sockaddr(t, from, fromlen);
    if (msg[0] == CTL_BYE) {
        /* Only the session that lives at this address may end itself: a spoofed source
         * without the identity frees nothing. */
        if (p && p->sid == sid) {
            before_peer_change(t);
            mt__peer_free(p, "said goodbye");
        }
        return;
    }
    struct mt_tpeer *q = mt__peer_by_sid(t, sid);
    if (q && q != p) {
        char old[MT_PEER_ADDRSTRLEN];
        memcpy(old, q->pub.addr, sizeof(old));
        before_peer_change(t);
        if (p) {
            /* Data from the new address came first and made a peer: fold it into q. */
            mt_route_move(&t->routes, p, q);
            mt__peer_free(p, "same session as an older peer, merged");
        }
        mt__peer_set_addr(q, from, fromlen);
        mt_info("peer %s moved to %s (same session)", old, q->pub.addr);
        p = q;
    } else if (!p) {
        if (t->npeers >= t->cfg->max_peers && mt__peer_allowed(t, from))
            free_a_dead_slot(t, now);
        p = admit_peer(t, from, fromlen);
        if (!p)
            return;
    }
    if (p->sid != sid) {
        if (p->sid) {
            /* The client restarted and got the same address: its old routes are history. */
            mt_info("peer %s: new session (the client restarted)", mt_peer_label(&p->pub));
            before_peer_change(t);
            mt_route_forget(&t->routes, p);
        }
        mt__peer_set_sid(p, sid);
    }
    udp_peer(p)->ka_interval = (double)((unsigned)msg[2] << 8 | msg[3]) / 10.0;
    udp_peer(p)->local = *local;
    p->last_rx = now;
    /* The peer is alive, so are its routes: a full table evicts someone else's. A walk of
     * the table, so at most once a second whatever the client sends. */
    if (now - udp_peer(p)->routes_touched >= 1.0) {
        mt_route_touch(&t->routes, p, now);
        udp_peer(p)->routes_touched = now;
    }
}

static bool is_control(const uint8_t *data, size_t len)
{
    return len == CTL_LEN && (data[0] == CTL_HELLO || data[0] == CTL_BYE) && data[1] == 0;
}

static void oversize(struct mt_tunnel *t, const char *who, size_t len)
{
    struct mt_udp_rx *rx = udp_of(t)->rx;
    t->stats.bad_frames++;
    double now = ev_now(t->loop);
    if (now - rx->oversize_logged < LOG_EVERY) {
        rx->oversize_unlogged++;
        return;
    }
    mt_warn("peer %s: %zu-byte datagram exceeds the %zu-byte limit, dropped (is --mtu the same "
            "on both ends? %llu more since the last report)",
            who, len, t->frame_max, (unsigned long long)rx->oversize_unlogged);
    rx->oversize_logged = now;
    rx->oversize_unlogged = 0;
}

static void handle_datagram(struct mt_tunnel *t, const struct sockaddr *from, socklen_t fromlen,
                            const struct in6_pktinfo *local, const uint8_t *data, size_t len)
{
    struct mt_tpeer *p;
    if (t->cfg->role == MT_ROLE_CLIENT) {
        p = t->peers; /* the socket is connected: only the server can reach it */
        if (p && is_control(data, len)) {
            p->last_rx = ev_now(t->loop);
            return; /* servers send none; nothing to act on */
        }
    } else {
        if (is_control(data, len)) {
            handle_control(t, from, fromlen, local, data);
            return;
        }
        p = mt__peer_by_sockaddr(t, from, fromlen);
        if (!p) {
            p = admit_peer(t, from, fromlen);
            if (!p)
                return;
        }
        udp_peer(p)->local = *local;
    }
    if (!p)
        return;
    p->last_rx = ev_now(t->loop);
    if (len == 0)
        return; /* keepalive */
    if (len > t->frame_max) {
        /* A liar (or a misconfigured peer with a larger MTU): drop it, keep the peer. */
        oversize(t, mt_peer_label(&p->pub), len);
        return;
    }
    deliver(t, p, data, len);
}

/* One read: a datagram, or several the kernel joined (cut back at their segment size). */
static void read_datagrams(struct mt_tunnel *t, const struct sockaddr *from,
                           const struct msghdr *mh, const struct in6_pktinfo *local,
                           const uint8_t *buf, size_t len)
{
    size_t size = mt__udp_gro_size(mh);
    if (size == 0 || len <= size) {
        handle_datagram(t, from, mh->msg_namelen, local, buf, len);
        return;
    }
    t->stats.udp_gro_reads++;
    size_t off = 0, seg;
    while ((seg = mt_udp_gro_next(len, size, &off)) != 0)
        handle_datagram(t, from, mh->msg_namelen, local, buf + off - seg, seg);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_tunnel *t = mt_container_of(w, struct udp, sock_w)->t;
    struct mt_udp_rx *rx = udp_of(t)->rx;
    bool server = t->cfg->role == MT_ROLE_SERVER;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < RX_BATCH; i++) {
            rx->iov[i].iov_base = rx->bufs + (size_t)i * MT_MAX_PACKET;
            rx->iov[i].iov_len = MT_MAX_PACKET;
            struct msghdr *mh = &rx->msgs[i].msg_hdr;
            memset(mh, 0, sizeof(*mh));
            mh->msg_iov = &rx->iov[i];
            mh->msg_iovlen = 1;
            mh->msg_name = &rx->from[i];
            mh->msg_namelen = sizeof(rx->from[i]);
            if (server || udp_of(t)->kgro) {
                mh->msg_control = rx->ctl[i].buf;
                mh->msg_controllen = sizeof(rx->ctl[i].buf);
            }
        }
        int n = recvmmsg(udp_of(t)->fd, rx->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            /* ECONNREFUSED on a client: an earlier send found nobody; not fatal. */
            if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
                mt_warn("udp receive: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            const struct msghdr *mh = &rx->msgs[i].msg_hdr;
            char name[MT_PEER_ADDRSTRLEN];
            if (mh->msg_flags & MSG_TRUNC) {
                /* Longer than any packet can be. */
                mt_sockaddr_str((struct sockaddr *)&rx->from[i], name, sizeof(name));
                oversize(t, name, rx->msgs[i].msg_len);
                continue;
            }
            struct in6_pktinfo local;
            mt__pktinfo_arrival(mh, &local);
            read_datagrams(t, (struct sockaddr *)&rx->from[i], mh, &local,
                           rx->bufs + (size_t)i * MT_MAX_PACKET, rx->msgs[i].msg_len);
        }
        if (n < RX_BATCH)
            break;
    }
    gro_flush(t); /* never hold segments across a wait: they would gain latency */
}

/* Keepalives and idle timeouts, checked on one tunnel-wide tick. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mt_tunnel *t = mt_container_of(w, struct udp, tick_w)->t;
    double now = ev_now(loop);
    struct mt_tpeer *next;
    for (struct mt_tpeer *p = t->peers; p; p = next) {
        next = p->next;
        double silent = now - p->last_rx;
        if (silent > t->cfg->idle_timeout) {
            if (t->cfg->role == MT_ROLE_SERVER) {
                char reason[64];
                snprintf(reason, sizeof(reason), "silent for %.0f s", silent);
                mt__peer_free(p, reason);
                continue;
            }
            /* A client keeps its one server and keeps knocking; say so once per timeout. */
            mt_warn("server %s silent for %.0f s", mt_peer_label(&p->pub), silent);
            p->last_rx = now;
        }
        if (t->cfg->role == MT_ROLE_CLIENT) {
            /* The HELLO is the client's keepalive, and is sent even when traffic flows: it
             * is how the server finds us again after our address changed. */
            if (now - udp_of(t)->tx->hello_sent >= t->cfg->keepalive)
                send_control(p, CTL_HELLO);
        } else if (now - p->last_tx >= t->cfg->keepalive) {
            send_datagram(p, (const uint8_t *)"", 0);
        }
    }
}

/* Kernel GSO and GRO on the socket where the kernel has them (Linux 4.18 and 5.0): a run of
 * datagrams leaves in one send, and datagrams of one flow arrive joined in one read. Where
 * the kernel refuses, or with --udp-offload off, one datagram per sendmmsg/recvmmsg slot. */
static void kernel_offloads(struct udp *u, const struct mt_config *cfg)
{
    if (cfg->no_udp_offload) {
        mt_info("udp kernel offloads off (--udp-offload off)");
        return;
    }
    int zero = 0, one = 1;
    char why[128] = "";
    if (setsockopt(u->fd, SOL_UDP, UDP_SEGMENT, &zero, sizeof(zero)) == 0)
        u->gso = true;
    else
        snprintf(why, sizeof(why), "; GSO: %s", strerror(errno));
    if (setsockopt(u->fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0)
        u->kgro = true;
    else
        snprintf(why + strlen(why), sizeof(why) - strlen(why), "; GRO: %s", strerror(errno));
    if (u->gso && u->kgro)
        mt_info("udp kernel offloads: GSO and GRO on");
    else
        mt_warn("udp kernel offloads: GSO %s, GRO %s%s (one datagram per send/read there)",
                u->gso ? "on" : "off", u->kgro ? "on" : "off", why);
}

static int udp_start(struct mt_tunnel *t, char *err, size_t errsz)
{
    struct udp *u = calloc(1, sizeof(*u));
    if (!u) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    t->tr = u;
    u->t = t;
    u->fd = -1;
    u->rx = calloc(1, sizeof(*u->rx));
    u->tx = calloc(1, sizeof(*u->tx));
    if (u->rx)
        u->rx->bufs = malloc((size_t)RX_BATCH * MT_MAX_PACKET);
    if (u->tx)
        u->tx->bufs = malloc((size_t)TX_BATCH * MT_MAX_PACKET);
    u->gro = calloc(1, sizeof(*u->gro));
    if (u->gro)
        u->gro->buf = malloc(MT_MAX_PACKET);
    if (!u->rx || !u->rx->bufs || !u->tx || !u->tx->bufs || !u->gro || !u->gro->buf) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    int fd;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (t->cfg->role == MT_ROLE_CLIENT) {
        int rc = mt__resolve(t->cfg->host, t->cfg->port, SOCK_DGRAM, false, &u->server_sa,
                             &u->server_salen, err, errsz);
        if (rc < 0)
            return rc;
        fd = socket(u->server_sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errsz, "socket: %s", strerror(errno));
            return -errno;
        }
        u->fd = fd;
        rc = mt__bind_client(t, fd, SOCK_DGRAM, err, errsz);
        if (rc < 0)
            return rc;
        if (connect(fd, (struct sockaddr *)&u->server_sa, u->server_salen) < 0) {
            snprintf(err, errsz, "connect %s: %s", t->cfg->host, strerror(errno));
            return -errno;
        }
        /* The session identity: random, so a restarted client is a new session and nobody
         * can predict it; never 0, which means "none". */
        while (u->tx->sid == 0)
            if (getrandom(&u->tx->sid, sizeof(u->tx->sid), 0) < 0 && errno != EINTR) {
                snprintf(err, errsz, "getrandom: %s", strerror(errno));
                return -errno;
            }
    } else {
        fd = mt__bind_server(t, SOCK_DGRAM, err, errsz);
        if (fd < 0)
            return fd;
        u->fd = fd;
    }
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(err, errsz, "getsockname: %s", strerror(errno));
        return -errno;
    }
    u->tx->family = ss.ss_family;
    int rc =
        mt__udp_socket_options(fd, ss.ss_family, t->cfg->outer_df, t->cfg->role == MT_ROLE_SERVER);
    if (rc < 0)
        mt_warn("udp socket options: %s (DF or the reply source address may be the kernel's "
                "choice)",
                strerror(-rc));
    kernel_offloads(u, t->cfg);
    if (t->cfg->role == MT_ROLE_CLIENT) {
        struct mt_tpeer *p = mt__peer_new(t, (struct sockaddr *)&u->server_sa, u->server_salen);
        if (!p) {
            snprintf(err, errsz, "out of memory");
            return -ENOMEM;
        }
        mt_info("peer %s up (udp)", p->pub.addr);
        send_control(p, CTL_HELLO); /* introduce ourselves at once */
    }
    ev_io_init(&u->sock_w, read_cb, fd, EV_READ);
    ev_io_start(t->loop, &u->sock_w);
    double tick = t->cfg->keepalive / 2 < 1.0 ? t->cfg->keepalive / 2 : 1.0;
    ev_timer_init(&u->tick_w, tick_cb, tick, tick);
    ev_timer_start(t->loop, &u->tick_w);
    return 0;
}

static void udp_stop(struct mt_tunnel *t)
{
    struct udp *u = udp_of(t);
    if (!u)
        return;
    ev_timer_stop(t->loop, &u->tick_w);
    if (u->tx && u->fd >= 0) {
        udp_flush(t); /* a clean stop sends what is queued */
        /* A client says goodbye, so the server frees its slot and routes at once. */
        if (t->cfg->role == MT_ROLE_CLIENT && t->peers && u->tx->sid)
            send_control(t->peers, CTL_BYE);
    }
    if (u->fd >= 0) {
        ev_io_stop(t->loop, &u->sock_w);
        close(u->fd);
    }
    if (u->tx)
        free(u->tx->bufs);
    if (u->gro)
        free(u->gro->buf);
    if (u->rx)
        free(u->rx->bufs);
    free(u->tx);
    free(u->gro);
    free(u->rx);
    free(u);
    t->tr = NULL;
}

/* The kernel's socket buffer is the only queue; a full one drops (UDP promises nothing), so
 * a UDP peer never holds the device back. */
static bool udp_congested(const struct mt_tpeer *p)
{
    return false;
}

/* A server forgets the peer (it comes back with its next datagram); a client keeps its one
 * server, which nothing would bring back. */
static int udp_kill(struct mt_tpeer *p, const char *reason)
{
    if (p->tun->cfg->role == MT_ROLE_CLIENT)
        return -EPERM;
    mt__peer_free(p, reason);
    return 0;
}

const struct mt_transport_ops mt__udp_transport = {
    .name = "udp",
    .peer_size = sizeof(struct udp_peer),
    .start = udp_start,
    .send = udp_send,
    .flush = udp_flush,
    .congested = udp_congested,
    .kill = udp_kill,
    .stop = udp_stop,
};
