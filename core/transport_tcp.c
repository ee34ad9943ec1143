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

#define BACKOFF_FIRST    0.5
#define BACKOFF_MAX      8.0
#define CONNECT_TIMEOUT  5.0
#define READS_PER_WAKEUP 16 /* so one busy peer cannot starve the others */
/* A frame of at most 64 KiB that has not completed in this long is not slow, it is a
 * slowloris holding a connection (and a --max-peers slot) with half a frame. */
#define FRAME_STALL_TIMEOUT 10.0

static struct mt_tpeer *peer_of_rio(ev_io *w)
{
    return (struct mt_tpeer *)((char *)w - offsetof(struct mt_tpeer, rio));
}

static struct mt_tpeer *peer_of_wio(ev_io *w)
{
    return (struct mt_tpeer *)((char *)w - offsetof(struct mt_tpeer, wio));
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

static int queue_frame(struct mt_tpeer *p, const uint8_t *data, size_t len);

/* The handshake (handshake.c) goes out as an ordinary frame, the only one that may hold it. */
static int send_handshake(struct mt_tpeer *p, enum mt_hs_msg m)
{
    uint8_t msg[MT_HS_LEN];
    mt_hs_message(msg, m);
    return queue_frame(p, msg, sizeof(msg));
}

static void schedule_reconnect(struct mt_tunnel *t);
static void read_cb(struct ev_loop *loop, ev_io *w, int revents);
static void write_cb(struct ev_loop *loop, ev_io *w, int revents);

static void close_peer(struct mt_tpeer *p, const char *reason)
{
    struct mt_tunnel *t = p->tun;
    ev_io_stop(t->loop, &p->rio);
    ev_io_stop(t->loop, &p->wio);
    close(p->fd);
    p->fd = -1;
    mt__peer_free(p, reason);
    if (t->cfg->role == MT_ROLE_CLIENT && !t->stopping)
        schedule_reconnect(t);
}

void mt__tcp_close_peer(struct mt_tpeer *p)
{
    close_peer(p, "closed");
}

/* Turns a connected socket into a peer. Returns NULL (socket closed) when out of memory. */
static struct mt_tpeer *attach(struct mt_tunnel *t, int fd, const struct sockaddr *sa,
                               socklen_t salen)
{
    struct mt_tpeer *p = mt__peer_new(t, sa, salen);
    if (p) {
        p->rxbuf = malloc(MT_RX_BUF);
        p->txbuf = malloc(MT_TX_QUEUE);
    }
    if (!p || !p->rxbuf || !p->txbuf) {
        mt_error("out of memory for a new peer");
        if (p)
            mt__peer_free(p, "out of memory");
        close(fd);
        return NULL;
    }
    p->fd = fd;
    tune_socket(fd);
    ev_io_init(&p->rio, read_cb, fd, EV_READ);
    ev_io_init(&p->wio, write_cb, fd, EV_WRITE);
    ev_io_start(t->loop, &p->rio);
    mt_info("peer %s up (tcp)", p->pub.addr);
    enum mt_hs_msg first = mt_wire_start(&p->wire, t->cfg->role == MT_ROLE_CLIENT, t->vnet);
    if (first != MT_HS_NONE)
        send_handshake(p, first); /* into an empty queue: cannot fail */
    return p;
}

static void log_oversize(struct mt_tpeer *p, const struct mt_wire_item *it)
{
    struct mt_tunnel *t = p->tun;
    double now = ev_now(t->loop);
    if (p->wire.oversized > 1 && now - p->oversize_logged < OVERSIZE_LOG_INTERVAL)
        return;
    p->oversize_logged = now;
    mt_warn("peer %s: oversized frame length %zu, longer than this end takes (%zu, from --mtu "
            "%d; is the other end's larger?): skipped, %llu so far",
            mt_peer_label(&p->pub), it->claimed, it->limit, t->cfg->mtu,
            (unsigned long long)p->wire.oversized);
}

/* Acts on one item of the peer's stream. False when the connection was closed. */
static bool take_item(struct mt_tpeer *p, const struct mt_wire_item *it)
{
    struct mt_tunnel *t = p->tun;
    switch (it->ev) {
    case MT_WIRE_PACKET:
        mt__tunnel_from_peer(t, p, it->data, it->len, NULL);
        return true;
    case MT_WIRE_XPACKET: {
        struct mt_vnet_hdr vnet;
        mt_vnet_read(it->data, &vnet);
        mt__tunnel_from_peer(t, p, it->data + MT_XFRAME_VNET, it->len - MT_XFRAME_VNET, &vnet);
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
            mt_info("peer %s: offloads on (super-packets up to 64 KiB)", p->pub.addr);
        }
        p->xsend = p->wire.xsend;
        p->xrecv = p->wire.xrecv;
        return true;
    case MT_WIRE_OVERSIZE:
        t->stats.bad_frames++;
        p->pub.stats.drops++;
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
        mt_warn("peer %s: %s, closing", mt_peer_label(&p->pub), reason);
        close_peer(p, reason);
        return false;
    }
    case MT_WIRE_MORE:
        return true;
    }
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_tpeer *p = peer_of_rio(w);
    struct mt_tunnel *t = p->tun;
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

void mt__tcp_flush(struct mt_tpeer *p)
{
    struct mt_tunnel *t = p->tun;
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
    struct mt_tpeer *p = peer_of_wio(w);
    struct mt_tunnel *t = p->tun;
    mt__tcp_flush(p); /* may free p */
    mt__tunnel_update_pressure(t);
}

/* Stops the device at once when a queue passes the high-water mark, not after the batch: a
 * batch of 64 super-packets would otherwise overflow any queue and drop what TCP resends. */
static void note_pressure(struct mt_tpeer *p)
{
    if (p->txlen > MT_TX_HIGH && !p->tun->dev_paused)
        mt__tunnel_update_pressure(p->tun);
}

int mt__tcp_send(struct mt_tpeer *p, const uint8_t *data, size_t len)
{
    /* A packet that is byte for byte a handshake message (a peer's, relayed; one crafted on a
     * tap segment) would make a moontun peer waiting for SWITCH switch framing mid-stream. It
     * is no packet any kernel accepts, so nothing is lost by not sending it. */
    if (mt_hs_parse(data, len) != MT_HS_NONE) {
        mt_debug("peer %s: a packet that looks like an offload handshake, not sent",
                 mt_peer_label(&p->pub));
        return -EPROTO;
    }
    return queue_frame(p, data, len);
}

static int queue_frame(struct mt_tpeer *p, const uint8_t *data, size_t len)
{
    if (p->fd < 0 || len == 0 || len > MT_MAX_PACKET)
        return -EINVAL;
    size_t need = MT_FRAME_HDR + len;
    if (need > MT_TX_QUEUE - p->txoff - p->txlen) {
        if (p->txoff > 0) {
            memmove(p->txbuf, p->txbuf + p->txoff, p->txlen);
            p->txoff = 0;
        }
        if (need > MT_TX_QUEUE - p->txlen)
            return -ENOBUFS; /* the peer is not keeping up; back-pressure has kicked in */
    }
    uint8_t *dst = p->txbuf + p->txoff + p->txlen;
    mt_frame_header(dst, len);
    memcpy(dst + MT_FRAME_HDR, data, len);
    p->txlen += need;
    p->tun->tx_pending = true;
    note_pressure(p);
    return 0;
}

int mt__tcp_send_x(struct mt_tpeer *p, const struct mt_vnet_hdr *vnet, const uint8_t *data,
                   size_t len)
{
    static const struct mt_vnet_hdr none;
    if (p->fd < 0 || len == 0 || len > MT_MAX_PACKET)
        return -EINVAL;
    size_t need = MT_XFRAME_HDR + MT_XFRAME_VNET + len;
    if (need > MT_TX_QUEUE - p->txoff - p->txlen) {
        if (p->txoff > 0) {
            memmove(p->txbuf, p->txbuf + p->txoff, p->txlen);
            p->txoff = 0;
        }
        if (need > MT_TX_QUEUE - p->txlen)
            return -ENOBUFS;
    }
    uint8_t *dst = p->txbuf + p->txoff + p->txlen;
    mt_xframe_header(dst, MT_XFRAME_VNET + len);
    mt_vnet_write(dst + MT_XFRAME_HDR, vnet ? vnet : &none);
    memcpy(dst + MT_XFRAME_HDR + MT_XFRAME_VNET, data, len);
    p->txlen += need;
    p->tun->tx_pending = true;
    note_pressure(p);
    return 0;
}

/* Closes connections stalled in the middle of a frame. */
static void tick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mt_tunnel *t = (struct mt_tunnel *)((char *)w - offsetof(struct mt_tunnel, tick_w));
    double now = ev_now(loop);
    struct mt_tpeer *next;
    for (struct mt_tpeer *p = t->peers; p; p = next) {
        next = p->next;
        if ((p->rxlen > 0 || p->wire.skip > 0) && now - p->last_read > FRAME_STALL_TIMEOUT) {
            t->stats.bad_frames++;
            mt_warn("peer %s: half a frame for %.0f s, closing", mt_peer_label(&p->pub),
                    now - p->last_read);
            close_peer(p, "stalled mid-frame");
        }
    }
}

/* --- server ------------------------------------------------------------------------------ */

static void accept_pause_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mt_tunnel *t =
        (struct mt_tunnel *)((char *)w - offsetof(struct mt_tunnel, accept_pause_w));
    ev_io_start(loop, &t->sock_w);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_tunnel *t = (struct mt_tunnel *)((char *)w - offsetof(struct mt_tunnel, sock_w));
    for (int i = 0; i < 64; i++) {
        struct sockaddr_storage ss;
        socklen_t sslen = sizeof(ss);
        int fd = accept4(t->sock_fd, (struct sockaddr *)&ss, &sslen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
                /* Out of descriptors: the pending connection stays in the backlog; stop
                 * asking for a second instead of spinning on it. */
                mt_warn("accept: %s; pausing new connections for 1 s", strerror(errno));
                ev_io_stop(loop, w);
                ev_timer_set(&t->accept_pause_w, 1.0, 0.0);
                ev_timer_start(loop, &t->accept_pause_w);
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

static void connect_failed(struct mt_tunnel *t, const char *why)
{
    char name[MT_PEER_ADDRSTRLEN];
    mt__sockaddr_str((struct sockaddr *)&t->server_sa, name, sizeof(name));
    ev_io_stop(t->loop, &t->connect_w);
    close(t->connect_fd);
    t->connect_fd = -1;
    mt_warn("connect to %s failed: %s; retrying in %.1f s", name, why, t->backoff);
    schedule_reconnect(t);
}

static void connect_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_tunnel *t = (struct mt_tunnel *)((char *)w - offsetof(struct mt_tunnel, connect_w));
    int soerr = 0;
    socklen_t len = sizeof(soerr);
    if (getsockopt(t->connect_fd, SOL_SOCKET, SO_ERROR, &soerr, &len) < 0)
        soerr = errno;
    if (soerr) {
        connect_failed(t, strerror(soerr));
        return;
    }
    ev_io_stop(loop, w);
    ev_timer_stop(loop, &t->reconnect_w);
    int fd = t->connect_fd;
    t->connect_fd = -1;
    if (attach(t, fd, (struct sockaddr *)&t->server_sa, t->server_salen))
        t->backoff = BACKOFF_FIRST;
    else
        schedule_reconnect(t);
}

static void start_connect(struct mt_tunnel *t)
{
    char err[256];
    int fd = socket(t->server_sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        mt_warn("socket: %s", strerror(errno));
        schedule_reconnect(t);
        return;
    }
    t->connect_fd = fd;
    if (mt__bind_client(t, fd, SOCK_STREAM, err, sizeof(err)) < 0) {
        connect_failed(t, err);
        return;
    }
    if (connect(fd, (struct sockaddr *)&t->server_sa, t->server_salen) < 0 &&
        errno != EINPROGRESS) {
        connect_failed(t, strerror(errno));
        return;
    }
    ev_io_init(&t->connect_w, connect_cb, fd, EV_WRITE);
    ev_io_start(t->loop, &t->connect_w);
    /* A SYN into a black hole would otherwise wait minutes. */
    ev_timer_set(&t->reconnect_w, CONNECT_TIMEOUT, 0.0);
    ev_timer_start(t->loop, &t->reconnect_w);
}

static void reconnect_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mt_tunnel *t = (struct mt_tunnel *)((char *)w - offsetof(struct mt_tunnel, reconnect_w));
    if (t->connect_fd >= 0) {
        connect_failed(t, "timed out");
        return;
    }
    start_connect(t);
}

static void schedule_reconnect(struct mt_tunnel *t)
{
    ev_timer_stop(t->loop, &t->reconnect_w);
    ev_timer_set(&t->reconnect_w, t->backoff, 0.0);
    ev_timer_start(t->loop, &t->reconnect_w);
    t->backoff = t->backoff * 2 < BACKOFF_MAX ? t->backoff * 2 : BACKOFF_MAX;
}

int mt__tcp_start(struct mt_tunnel *t, char *err, size_t errsz)
{
    ev_timer_init(&t->reconnect_w, reconnect_cb, 0.0, 0.0);
    ev_timer_init(&t->accept_pause_w, accept_pause_cb, 0.0, 0.0);
    t->backoff = BACKOFF_FIRST;
    ev_timer_init(&t->tick_w, tick_cb, 1.0, 1.0);
    ev_timer_start(t->loop, &t->tick_w);
    if (t->cfg->role == MT_ROLE_CLIENT) {
        int rc = mt__resolve(t->cfg->host, t->cfg->port, SOCK_STREAM, false, &t->server_sa,
                             &t->server_salen, err, errsz);
        if (rc < 0)
            return rc;
        start_connect(t);
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
    t->sock_fd = fd;
    ev_io_init(&t->sock_w, accept_cb, fd, EV_READ);
    ev_io_start(t->loop, &t->sock_w);
    return 0;
}

void mt__tcp_stop(struct mt_tunnel *t)
{
    ev_timer_stop(t->loop, &t->reconnect_w);
    ev_timer_stop(t->loop, &t->accept_pause_w);
    ev_timer_stop(t->loop, &t->tick_w);
    if (t->connect_fd >= 0) {
        ev_io_stop(t->loop, &t->connect_w);
        close(t->connect_fd);
        t->connect_fd = -1;
    }
    /* Hand over what is queued before closing: a clean stop should not lose packets. */
    while (t->peers) {
        struct mt_tpeer *p = t->peers;
        if (p->txlen > 0 && write(p->fd, p->txbuf + p->txoff, p->txlen) < 0)
            p->pub.stats.drops++;
        close_peer(p, "shutting down");
    }
    if (t->sock_fd >= 0) {
        ev_io_stop(t->loop, &t->sock_w);
        close(t->sock_fd);
        t->sock_fd = -1;
    }
}
