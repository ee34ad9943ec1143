/* UDP transport: one packet per datagram on one socket. The server learns peers by source
 * address; every peer gets a keepalive (an empty datagram) when we have been quiet, and the
 * server forgets a peer it has heard nothing from for --idle-timeout. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "gro.h"
#include "moontun/log.h"
#include "tunnel.h"

#define RX_BATCH 64 /* datagrams per recvmmsg: a 64 KiB super-packet's worth of segments */
#define TX_BATCH 64 /* datagrams per sendmmsg: one device batch's worth */

/* Receive buffers for one recvmmsg batch, allocated once. */
struct mt_udp_rx {
    struct mmsghdr msgs[RX_BATCH];
    struct iovec iov[RX_BATCH];
    struct sockaddr_storage from[RX_BATCH];
    uint8_t *bufs; /* RX_BATCH * MT_MAX_PACKET */
};

/* Datagrams waiting for the next sendmmsg, with copies of their bytes and destinations (a peer
 * may be freed before the flush). Allocated once. */
struct mt_udp_tx {
    struct mmsghdr msgs[TX_BATCH];
    struct iovec iov[TX_BATCH];
    struct sockaddr_storage to[TX_BATCH];
    uint8_t *bufs; /* TX_BATCH * MT_MAX_PACKET */
    int n;
};

static struct mt_tunnel *tunnel_of_sock(ev_io *w)
{
    return (struct mt_tunnel *)((char *)w - offsetof(struct mt_tunnel, sock_w));
}

static int send_datagram(struct mt_tpeer *p, const uint8_t *data, size_t len)
{
    struct mt_tunnel *t = p->tun;
    ssize_t n;
    if (t->cfg->role == MT_ROLE_CLIENT)
        n = send(t->sock_fd, data, len, 0);
    else
        n = sendto(t->sock_fd, data, len, 0, (struct sockaddr *)&p->sa, p->salen);
    if (n < 0)
        return -errno; /* EAGAIN/ENOBUFS: full; ECONNREFUSED: nobody listens (yet) */
    p->last_tx = ev_now(t->loop);
    return 0;
}

void mt__udp_flush(struct mt_tunnel *t)
{
    struct mt_udp_tx *tx = t->udp_tx;
    int done = 0;
    while (done < tx->n) {
        int n = sendmmsg(t->sock_fd, tx->msgs + done, (unsigned)(tx->n - done), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            /* EAGAIN/ENOBUFS: the socket is full; ECONNREFUSED: nobody listens (yet). UDP
             * promises nothing: drop the rest of the batch and count it. */
            t->stats.queue_drops += (uint64_t)(tx->n - done);
            break;
        }
        done += n;
    }
    tx->n = 0;
}

int mt__udp_send(struct mt_tpeer *p, const uint8_t *data, size_t len)
{
    struct mt_tunnel *t = p->tun;
    struct mt_udp_tx *tx = t->udp_tx;
    if (len == 0 || len > MT_MAX_PACKET)
        return -EINVAL; /* an empty datagram means keepalive, never a packet */
    if (tx->n == TX_BATCH)
        mt__udp_flush(t);
    int i = tx->n++;
    uint8_t *buf = tx->bufs + (size_t)i * MT_MAX_PACKET;
    memcpy(buf, data, len);
    tx->iov[i].iov_base = buf;
    tx->iov[i].iov_len = len;
    memset(&tx->msgs[i].msg_hdr, 0, sizeof(tx->msgs[i].msg_hdr));
    tx->msgs[i].msg_hdr.msg_iov = &tx->iov[i];
    tx->msgs[i].msg_hdr.msg_iovlen = 1;
    if (t->cfg->role == MT_ROLE_SERVER) { /* a client's socket is connected */
        memcpy(&tx->to[i], &p->sa, p->salen);
        tx->msgs[i].msg_hdr.msg_name = &tx->to[i];
        tx->msgs[i].msg_hdr.msg_namelen = p->salen;
    }
    p->last_tx = ev_now(t->loop);
    t->tx_pending = true; /* flushed before the loop sleeps, or when the batch is full */
    return 0;
}

/* Hands the coalesced segments (if any) on as one packet. */
static void gro_flush(struct mt_tunnel *t)
{
    struct mt_gro *g = t->gro;
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
    struct mt_gro *g = t->gro;
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

static void handle_datagram(struct mt_tunnel *t, const struct sockaddr *from, socklen_t fromlen,
                            const uint8_t *data, size_t len)
{
    struct mt_tpeer *p;
    if (t->cfg->role == MT_ROLE_CLIENT) {
        p = t->peers; /* the socket is connected: only the server can reach it */
    } else {
        p = mt__peer_by_sockaddr(t, from, fromlen);
        if (!p) {
            if (!mt__peer_admit(t, from))
                return;
            p = mt__peer_new(t, from, fromlen);
            if (!p)
                return;
            mt_info("peer %s up (udp)", p->pub.addr);
        }
    }
    if (!p)
        return;
    p->last_rx = ev_now(t->loop);
    if (len == 0)
        return; /* keepalive */
    if (len > t->frame_max) {
        /* A liar (or a misconfigured peer with a larger MTU): drop it, keep the peer. */
        t->stats.bad_frames++;
        mt_debug("peer %s: %zu-byte datagram exceeds %zu, dropped", p->pub.addr, len, t->frame_max);
        return;
    }
    deliver(t, p, data, len);
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_tunnel *t = tunnel_of_sock(w);
    struct mt_udp_rx *rx = t->udp_rx;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < RX_BATCH; i++) {
            rx->iov[i].iov_base = rx->bufs + (size_t)i * MT_MAX_PACKET;
            rx->iov[i].iov_len = MT_MAX_PACKET;
            memset(&rx->msgs[i].msg_hdr, 0, sizeof(rx->msgs[i].msg_hdr));
            rx->msgs[i].msg_hdr.msg_iov = &rx->iov[i];
            rx->msgs[i].msg_hdr.msg_iovlen = 1;
            rx->msgs[i].msg_hdr.msg_name = &rx->from[i];
            rx->msgs[i].msg_hdr.msg_namelen = sizeof(rx->from[i]);
        }
        int n = recvmmsg(t->sock_fd, rx->msgs, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            /* ECONNREFUSED on a client: an earlier send found nobody; not fatal. */
            if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
                mt_warn("udp receive: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n; i++) {
            if (rx->msgs[i].msg_hdr.msg_flags & MSG_TRUNC) {
                t->stats.bad_frames++; /* longer than any packet can be */
                continue;
            }
            handle_datagram(t, (struct sockaddr *)&rx->from[i], rx->msgs[i].msg_hdr.msg_namelen,
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
    struct mt_tunnel *t = (struct mt_tunnel *)((char *)w - offsetof(struct mt_tunnel, tick_w));
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
            mt_warn("server %s silent for %.0f s", p->pub.addr, silent);
            p->last_rx = now;
        }
        if (now - p->last_tx >= t->cfg->keepalive)
            send_datagram(p, (const uint8_t *)"", 0);
    }
}

int mt__udp_start(struct mt_tunnel *t, char *err, size_t errsz)
{
    t->udp_rx = calloc(1, sizeof(*t->udp_rx));
    t->udp_tx = calloc(1, sizeof(*t->udp_tx));
    if (t->udp_rx)
        t->udp_rx->bufs = malloc((size_t)RX_BATCH * MT_MAX_PACKET);
    if (t->udp_tx)
        t->udp_tx->bufs = malloc((size_t)TX_BATCH * MT_MAX_PACKET);
    t->gro = calloc(1, sizeof(*t->gro));
    if (t->gro)
        t->gro->buf = malloc(MT_MAX_PACKET);
    if (!t->udp_rx || !t->udp_rx->bufs || !t->udp_tx || !t->udp_tx->bufs || !t->gro ||
        !t->gro->buf) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    int fd;
    if (t->cfg->role == MT_ROLE_CLIENT) {
        int rc = mt__resolve(t->cfg->host, t->cfg->port, SOCK_DGRAM, false, &t->server_sa,
                             &t->server_salen, err, errsz);
        if (rc < 0)
            return rc;
        fd = socket(t->server_sa.ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errsz, "socket: %s", strerror(errno));
            return -errno;
        }
        t->sock_fd = fd;
        rc = mt__bind_client(t, fd, SOCK_DGRAM, err, errsz);
        if (rc < 0)
            return rc;
        if (connect(fd, (struct sockaddr *)&t->server_sa, t->server_salen) < 0) {
            snprintf(err, errsz, "connect %s: %s", t->cfg->host, strerror(errno));
            return -errno;
        }
        struct mt_tpeer *p = mt__peer_new(t, (struct sockaddr *)&t->server_sa, t->server_salen);
        if (!p) {
            snprintf(err, errsz, "out of memory");
            return -ENOMEM;
        }
        mt_info("peer %s up (udp)", p->pub.addr);
        send_datagram(p, (const uint8_t *)"", 0); /* introduce ourselves at once */
    } else {
        fd = mt__bind_server(t, SOCK_DGRAM, err, errsz);
        if (fd < 0)
            return fd;
        t->sock_fd = fd;
    }
    /* A burst from the device arrives faster than one loop turn drains it; the kernel's
     * default 208 KiB socket buffers drop datagrams that larger ones keep. */
    int bufsz = 4 * 1024 * 1024;
    /* As root the FORCE variants pass net.core.rmem_max; otherwise take what we may. */
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &bufsz, sizeof(bufsz));
    if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &bufsz, sizeof(bufsz)) < 0)
        setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &bufsz, sizeof(bufsz));
    ev_io_init(&t->sock_w, read_cb, fd, EV_READ);
    ev_io_start(t->loop, &t->sock_w);
    double tick = t->cfg->keepalive / 2 < 1.0 ? t->cfg->keepalive / 2 : 1.0;
    ev_timer_init(&t->tick_w, tick_cb, tick, tick);
    ev_timer_start(t->loop, &t->tick_w);
    return 0;
}

void mt__udp_stop(struct mt_tunnel *t)
{
    ev_timer_stop(t->loop, &t->tick_w);
    if (t->udp_tx && t->sock_fd >= 0)
        mt__udp_flush(t); /* a clean stop sends what is queued */
    if (t->sock_fd >= 0) {
        ev_io_stop(t->loop, &t->sock_w);
        close(t->sock_fd);
        t->sock_fd = -1;
    }
    if (t->udp_tx) {
        free(t->udp_tx->bufs);
        free(t->udp_tx);
        t->udp_tx = NULL;
    }
    if (t->gro) {
        free(t->gro->buf);
        free(t->gro);
        t->gro = NULL;
    }
    if (t->udp_rx) {
        free(t->udp_rx->bufs);
        free(t->udp_rx);
        t->udp_rx = NULL;
    }
}
