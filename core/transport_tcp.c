/* TCP transport with simpletun's framing (2-byte big-endian length + packet): the server's
 * listener, the client's connection with capped exponential back-off, and per-connection
 * receive (deframing) and send (queue, one write per flush) buffers. */
#include <errno.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "handshake.h"
#include "moontun/frame.h"
#include "moontun/log.h"
#include "moontun/vnet.h"
#include "tunnel.h"
#include "util.h"

#define MT_TX_QUEUE (512 * 1024) /* send queue per peer */
#define MT_TX_HIGH  (256 * 1024) /* above this the peer is congested (back-pressure) */

#define BACKOFF_FIRST    0.5
#define BACKOFF_MAX      8.0
#define CONNECT_TIMEOUT  5.0
#define READS_PER_WAKEUP 16 /* so one busy peer cannot starve the others */
/* A frame of at most 64 KiB that has not completed in this long is not slow, it is a
 * slowloris holding a connection (and a --max-peers slot) with half a frame. */
#define FRAME_STALL_TIMEOUT 10.0

/* The transport's state (t->tr): the server's listener, or the client's connection in
 * progress and its back-off. */
struct tcp {
    struct mt_tunnel *t;
    int listen_fd; /* server, or -1 */
    ev_io listen_w;
    ev_timer tick_w;         /* stalled frames */
    ev_timer accept_pause_w; /* out of fds: stop accepting for a moment */
    /* client */
    struct sockaddr_storage server_sa;
    socklen_t server_salen;
    ev_timer reconnect_w;
    double backoff;
    int connect_fd; /* connection in progress, or -1 */
    ev_io connect_w;
};

/* One connection: the generic peer and its socket, buffers and wire state. */
struct tcp_peer {
    struct mt_tpeer base;
    int fd;
    ev_io rio, wio;
    uint8_t *rxbuf; /* MT_RX_BUF bytes */
    size_t rxlen;
    uint8_t *txbuf; /* MT_TX_QUEUE bytes: frames waiting for the socket */
    size_t txoff, txlen;
    struct mt_wire wire;    /* framing, skipping, offload handshake (handshake.h) */
    double last_read;       /* ev_now of the last read that returned bytes */
    double oversize_logged; /* ev_now of the last "oversized frame" warning */
};

static struct tcp *tcp_of(struct mt_tunnel *t)
{
    return t->tr;
}

static struct tcp_peer *tcp_peer(struct mt_tpeer *p)
{
    return mt_container_of(p, struct tcp_peer, base);
}

/* Low latency for small packets, and dead-peer detection: TCP keepalive finds a silent
 * peer, TCP_USER_TIMEOUT one that stopped acknowledging what we send. */
static void tune_socket(int fd)
{
    int one = 1, idle = 20, intvl = 5, cnt = 3;
    unsigned user_timeout_ms = 30000;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof(cnt));
    setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout_ms, sizeof(user_timeout_ms));
}

/* At most one "oversized frame" line per peer in this long; the count says what was skipped. */
#define OVERSIZE_LOG_INTERVAL 5.0

/* Appends one frame to p's queue: an ordinary frame (simpletun's), or with extended an
 * extended frame carrying vnet (NULL: all zero) before the packet. -ENOBUFS when the queue
 * is full: the peer is not keeping up, and back-pressure has kicked in. */
static int queue_frame(struct tcp_peer *p, bool extended, const struct mt_vnet_hdr *vnet,
                       const uint8_t *data, size_t len)
{
    static const struct mt_vnet_hdr none;
    if (p->fd < 0 || len == 0 || len > MT_MAX_PACKET)
        return -EINVAL;
    size_t hdr = extended ? MT_XFRAME_HDR + MT_XFRAME_VNET : MT_FRAME_HDR;
    size_t need = hdr + len;
    if (need > MT_TX_QUEUE - p->txoff - p->txlen) {
        if (p->txoff > 0) {
            memmove(p->txbuf, p->txbuf + p->txoff, p->txlen);
            p->txoff = 0;
        }
        if (need > MT_TX_QUEUE - p->txlen)
            return -ENOBUFS;
    }
    uint8_t *dst = p->txbuf + p->txoff + p->txlen;
    if (extended) {
        mt_xframe_header(dst, MT_XFRAME_VNET + len);
        mt_vnet_write(dst + MT_XFRAME_HDR, vnet ? vnet : &none);
    } else {
        mt_frame_header(dst, len);
    }
    memcpy(dst + hdr, data, len);
    p->txlen += need;
    return 0;
}

/* The handshake (handshake.c) goes out as an ordinary frame, the only one that may hold it. */
static int send_handshake(struct tcp_peer *p, enum mt_hs_msg m)
{
    uint8_t msg[MT_HS_LEN];
    mt_hs_message(msg, m);
    int rc = queue_frame(p, false, NULL, msg, sizeof(msg));
    if (rc == 0)
        mt__tunnel_queued(&p->base);
    return rc;
}

static void schedule_reconnect(struct tcp *tcp);
static void read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void write_cb(struct ev_loop *loop, ev_io *w, int revents);

static void close_peer(struct tcp_peer *p, const char *reason)
{
    struct mt_tunnel *t = p->base.tun;
    ev_io_stop(t->loop, &p->rio);
    ev_io_stop(t->loop, &p->wio);
    close(p->fd);
    p->fd = -1;
    mt__peer_free(&p->base, reason);
    if (t->cfg->role == MT_ROLE_CLIENT && !t->stopping)
        schedule_reconnect(tcp_of(t));
}

static int kill_peer(struct mt_tpeer *base, const char *reason)
{
    close_peer(tcp_peer(base), reason);
    return 0;
}

static void peer_release(struct mt_tpeer *base)
{
    struct tcp_peer *p = tcp_peer(base);
    free(p->rxbuf);
    free(p->txbuf);
}

/* Turns a connected socket into a peer. Returns NULL (socket closed) when out of memory. */
static struct tcp_peer *attach(struct mt_tunnel *t, int fd, const struct sockaddr *sa,
                               socklen_t salen)
{
    struct mt_tpeer *base = mt__peer_new(t, sa, salen);
    struct tcp_peer *p = base ? tcp_peer(base) : NULL;
    if (p) {
        p->fd = -1;
        p->rxbuf = malloc(MT_RX_BUF);
        p->txbuf = malloc(MT_TX_QUEUE);
    }
    if (!p || !p->rxbuf || !p->txbuf) {
        mt_error("out of memory for a new peer");
        if (p)
            mt__peer_free(base, "out of memory");
        close(fd);
        return NULL;
    }
    p->fd = fd;
    tune_socket(fd);
    ev_io_init(&p->rio, read_cb, fd, EV_READ);
    ev_io_init(&p->wio, write_cb, fd, EV_WRITE);
    ev_io_start(t->loop, &p->rio);
    mt_info("peer %s up (tcp)", base->pub.addr);
    enum mt_hs_msg first = mt_wire_start(&p->wire, t->cfg->role == MT_ROLE_CLIENT, t->vnet);
    if (first != MT_HS_NONE)
        send_handshake(p, first); /* into an empty queue: cannot fail */
    return p;
}

static void log_oversize(struct tcp_peer *p, const struct mt_wire_item *it)
{
    struct mt_tunnel *t = p->base.tun;
    double now = ev_now(t->loop);
    if (p->wire.oversized > 1 && now - p->oversize_logged < OVERSIZE_LOG_INTERVAL)
        return;
    p->oversize_logged = now;
    mt_warn("peer %s: oversized frame length %zu, longer than this end takes (%zu, from --mtu "
            "%d; is the other end's larger?): skipped, %llu so far",
            mt_peer_label(&p->base.pub), it->claimed, it->limit, t->cfg->mtu,
            (unsigned long long)p->wire.oversized);
}

/* Acts on one item of the peer's stream. False when the connection was closed. */
static bool take_item(struct tcp_peer *p, const struct mt_wire_item *it)
{
    struct mt_tunnel *t = p->base.tun;
    switch (it->ev) {
    case MT_WIRE_PACKET:
        mt__tunnel_from_peer(t, &p->base, it->data, it->len, NULL);
        return true;
    case MT_WIRE_XPACKET: {
        struct mt_vnet_hdr vnet;
        mt_vnet_read(it->data, &vnet);
        mt__tunnel_from_peer(t, &p->base, it->data + MT_XFRAME_VNET, it->len - MT_XFRAME_VNET,
                             &vnet);
        return true;
    }
    case MT_WIRE_HANDSHAKE:
        if (it->reply != MT_HS_NONE) {
            /* The SWITCH must go before any extended frame; a queue too full to take 46
             * bytes would leave the peer reading extended frames as ordinary ones. */
            if (send_handshake(p, it->reply) < 0) {
                close_peer(p, "send queue full during the offload handshake");
                return false;
            }
            mt_info("peer %s: offloads on (super-packets up to 64 KiB)", p->base.pub.addr);
        }
        p->base.offload = p->wire.xsend; /* from here on the tunnel sends extended frames */
        return true;
    case MT_WIRE_OVERSIZE:
        t->stats.bad_frames++;
        p->base.pub.stats.drops++;
        log_oversize(p, it);
        return true;
    case MT_WIRE_SKIPPED:
        return true;
    case MT_WIRE_BAD:
    default: {
        char reason[96];
        snprintf(reason, sizeof(reason), "bad frame length %zu (allowed %d-%zu)", it->claimed,
                 it->extended ? MT_XFRAME_VNET + 1 : 1, it->limit);
        t->stats.bad_frames++;
        mt_warn("peer %s: %s, closing", mt_peer_label(&p->base.pub), reason);
        close_peer(p, reason);
        return false;
    }
    case MT_WIRE_MORE:
        return true;
    }
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tcp_peer *p = mt_container_of(w, struct tcp_peer, rio);
    struct mt_tunnel *t = p->base.tun;
    for (int i = 0; i < READS_PER_WAKEUP; i++) {
        ssize_t n = read(p->fd, p->rxbuf + p->rxlen, MT_RX_BUF - p->rxlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            close_peer(p, n == 0 ? "connection closed by peer" : strerror(errno));
            return;
        }
        p->rxlen += (size_t)n;
        p->last_read = ev_now(loop);
        size_t off = 0;
        for (;;) {
            struct mt_wire_item it;
            off += mt_wire_next(&p->wire, p->rxbuf + off, p->rxlen - off, t->frame_max, &it);
            if (it.ev == MT_WIRE_MORE)
                break;
            if (!take_item(p, &it))
                return; /* p is closed and freed */
        }
        /* Keep the partial frame at the front; at most one frame's worth is left. */
        memmove(p->rxbuf, p->rxbuf + off, p->rxlen - off);
        p->rxlen -= off;
    }
}

/* Writes p's queue until the socket is full (then waits for it to drain). May close p. */
static void flush_peer(struct tcp_peer *p)
{
    struct mt_tunnel *t = p->base.tun;
    while (p->txlen > 0) {
        ssize_t n = write(p->fd, p->txbuf + p->txoff, p->txlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            ev_io_start(t->loop, &p->wio);
            return;
        }
        if (n < 0) {
            close_peer(p, strerror(errno));
            return;
        }
        p->txoff += (size_t)n;
        p->txlen -= (size_t)n;
    }
    p->txoff = 0;
    ev_io_stop(t->loop, &p->wio);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tcp_peer *p = mt_container_of(w, struct tcp_peer, wio);
    struct mt_tunnel *t = p->base.tun;
    flush_peer(p); /* may free p */
    mt__tunnel_update_pressure(t);
}

static void tcp_flush(struct mt_tunnel *t)
{
    struct mt_tpeer *next;
    for (struct mt_tpeer *p = t->peers; p; p = next) {
        next = p->next; /* flushing may close p */
        if (tcp_peer(p)->txlen > 0)
            flush_peer(tcp_peer(p));
    }
}

static bool tcp_congested(const struct mt_tpeer *p)
{
    return mt_container_of(p, const struct tcp_peer, base)->txlen > MT_TX_HIGH;
}

static int tcp_send(struct mt_tpeer *base, const struct mt_vnet_hdr *vnet, const uint8_t *data,
                    size_t len)
{
    struct tcp_peer *p = tcp_peer(base);
    if (base->offload)
        return queue_frame(p, true, vnet, data, len);
    /* A packet that is byte for byte a handshake message (a peer's, relayed; one crafted on a
     * tap segment) would make a moontun peer waiting for SWITCH switch framing mid-stream. It
     * is no packet any kernel accepts, so nothing is lost by not sending it. */
    if (mt_hs_parse(data, len) != MT_HS_NONE) {
        mt_debug("peer %s: a packet that looks like an offload handshake, not sent",
                 mt_peer_label(&base->pub));
        return -EPROTO;
    }
    return queue_frame(p, false, NULL, data, len);
}

/* Closes connections stalled in the middle of a frame. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mt_tunnel *t = mt_container_of(w, struct tcp, tick_w)->t;
    double now = ev_now(loop);
    struct mt_tpeer *next;
    for (struct mt_tpeer *base = t->peers; base; base = next) {
        next = base->next;
        struct tcp_peer *p = tcp_peer(base);
        if ((p->rxlen > 0 || p->wire.skip > 0) && now - p->last_read > FRAME_STALL_TIMEOUT) {
            t->stats.bad_frames++;
            mt_warn("peer %s: half a frame for %.0f s, closing", mt_peer_label(&base->pub),
                    now - p->last_read);
            close_peer(p, "stalled mid-frame");
        }
    }
}

/* --- server ------------------------------------------------------------------------------ */

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tcp *tcp = mt_container_of(w, struct tcp, accept_pause_w);
    ev_io_start(loop, &tcp->listen_w);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tcp *tcp = mt_container_of(w, struct tcp, listen_w);
    struct mt_tunnel *t = tcp->t;
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd =
            accept4(tcp->listen_fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the pending connection stays in the backlog; stop
                 * asking for a second instead of spinning on it. */
                mt_warn("accept: %s; pausing new connections for 1 s", strerror(errno));
                ev_io_stop(loop, w);
                ev_timer_set(&tcp->accept_pause_w, 1.0, 0.0);
                ev_timer_start(loop, &tcp->accept_pause_w);
            }
            return;
        }
        if (!mt__peer_admit(t, (struct sockaddr *)&ss)) {
            close(fd);
            continue;
        }
        attach(t, fd, (struct sockaddr *)&ss, sslen);
    }
}

/* --- client ------------------------------------------------------------------------------ */

static void connect_failed(struct tcp *tcp, const char *why)
{
    char name[MT_PEER_ADDRSTRLEN];
    mt_sockaddr_str((struct sockaddr *)&tcp->server_sa, name, sizeof(name));
    ev_io_stop(tcp->t->loop, &tcp->connect_w);
    close(tcp->connect_fd);
    tcp->connect_fd = -1;
    mt_warn("connect to %s failed: %s; retrying in %.1f s", name, why, tcp->backoff);
    schedule_reconnect(tcp);
}

static void connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct tcp *tcp = mt_container_of(w, struct tcp, connect_w);
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(tcp->connect_fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr) {
        connect_failed(tcp, strerror(soerr));
        return;
    }
    ev_io_stop(loop, w);
    ev_timer_stop(loop, &tcp->reconnect_w);
    int fd = tcp->connect_fd;
    tcp->connect_fd = -1;
    if (attach(tcp->t, fd, (struct sockaddr *)&tcp->server_sa, tcp->server_salen))
        tcp->backoff = BACKOFF_FIRST;
    else
        schedule_reconnect(tcp);
}

static void start_connect(struct tcp *tcp)
{
    struct mt_tunnel *t = tcp->t;
    char err[256];
    int fd = socket(tcp->server_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mt_warn("socket: %s", strerror(errno));
        schedule_reconnect(tcp);
        return;
    }
    tcp->connect_fd = fd;
    if (mt__bind_client(t, fd, SOCK_STREAM, err, sizeof(err)) < 0) {
        connect_failed(tcp, err);
        return;
    }
    if (connect(fd, (struct sockaddr *)&tcp->server_sa, tcp->server_salen) < 0 &&
        errno != EINPROGRESS) {
        connect_failed(tcp, strerror(errno));
        return;
    }
    ev_io_init(&tcp->connect_w, connect_cb, fd, EV_WRITE);
    ev_io_start(t->loop, &tcp->connect_w);
    /* A SYN into a black hole would otherwise wait minutes. */
    ev_timer_set(&tcp->reconnect_w, CONNECT_TIMEOUT, 0.0);
    ev_timer_start(t->loop, &tcp->reconnect_w);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct tcp *tcp = mt_container_of(w, struct tcp, reconnect_w);
    if (tcp->connect_fd >= 0) {
        connect_failed(tcp, "timed out");
        return;
    }
    start_connect(tcp);
}

static void schedule_reconnect(struct tcp *tcp)
{
    struct ev_loop *loop = tcp->t->loop;
    ev_timer_stop(loop, &tcp->reconnect_w);
    ev_timer_set(&tcp->reconnect_w, tcp->backoff, 0.0);
    ev_timer_start(loop, &tcp->reconnect_w);
    tcp->backoff = tcp->backoff * 2 < BACKOFF_MAX ? tcp->backoff * 2 : BACKOFF_MAX;
}

static int tcp_start(struct mt_tunnel *t, char *err, size_t errsz)
{
    struct tcp *tcp = calloc(1, sizeof(*tcp));
    if (!tcp) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    t->tr = tcp;
    tcp->t = t;
    tcp->listen_fd = tcp->connect_fd = -1;
    ev_timer_init(&tcp->reconnect_w, reconnect_cb, 0.0, 0.0);
    ev_timer_init(&tcp->accept_pause_w, accept_pause_cb, 0.0, 0.0);
    tcp->backoff = BACKOFF_FIRST;
    ev_timer_init(&tcp->tick_w, tick_cb, 1.0, 1.0);
    ev_timer_start(t->loop, &tcp->tick_w);
    if (t->cfg->role == MT_ROLE_CLIENT) {
        int rc = mt__resolve(t->cfg->host, t->cfg->port, SOCK_STREAM, false, &tcp->server_sa,
                             &tcp->server_salen, err, errsz);
        if (rc < 0)
            return rc;
        start_connect(tcp);
        return 0;
    }
    int fd = mt__bind_server(t, SOCK_STREAM, err, errsz);
    if (fd < 0)
        return fd;
    if (listen(fd, 128) < 0) {
        snprintf(err, errsz, "listen: %s", strerror(errno));
        close(fd);
        return -errno;
    }
    tcp->listen_fd = fd;
    ev_io_init(&tcp->listen_w, accept_cb, fd, EV_READ);
    ev_io_start(t->loop, &tcp->listen_w);
    return 0;
}

static void tcp_stop(struct mt_tunnel *t)
{
    struct tcp *tcp = tcp_of(t);
    if (!tcp)
        return;
    ev_timer_stop(t->loop, &tcp->reconnect_w);
    ev_timer_stop(t->loop, &tcp->accept_pause_w);
    ev_timer_stop(t->loop, &tcp->tick_w);
    if (tcp->connect_fd >= 0) {
        ev_io_stop(t->loop, &tcp->connect_w);
        close(tcp->connect_fd);
        tcp->connect_fd = -1;
    }
    /* Hand over what is queued before closing: a clean stop should not lose packets. */
    while (t->peers) {
        struct tcp_peer *p = tcp_peer(t->peers);
        if (p->txlen > 0 && write(p->fd, p->txbuf + p->txoff, p->txlen) < 0)
            p->base.pub.stats.drops++;
        close_peer(p, "shutting down");
    }
    if (tcp->listen_fd >= 0) {
        ev_io_stop(t->loop, &tcp->listen_w);
        close(tcp->listen_fd);
    }
    free(tcp);
    t->tr = NULL;
}

const struct mt_transport_ops mt__tcp_transport = {
    .name = "tcp",
    .peer_size = sizeof(struct tcp_peer),
    .start = tcp_start,
    .send = tcp_send,
    .flush = tcp_flush,
    .congested = tcp_congested,
    .peer_release = peer_release,
    .kill = kill_peer,
    .stop = tcp_stop,
};
