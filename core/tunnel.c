/* The tunnel: one libev loop driving the device, the transport and the scripts, and the fate
 * of every packet. from_device() and mt__tunnel_from_peer() are the two places that decide
 * where a packet goes: script verdict first, then the learning table. */
#include "tunnel.h"
#include "addrwatch.h"
#include "capture.h"
#include "util.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "moontun/device.h"
#include "moontun/log.h"
#include "moontun/proto.h"
#include "moontun/trace.h"
#include "moontun/vnet.h"
#include "report.h"

#define TUNNEL_OF(w, field) mt_container_of(w, struct mt_tunnel, field)

static void log_packet(const char *what, struct mt_packet *pkt)
{
    char line[256];
    mt_packet_summary(pkt, line, sizeof(line));
    mt_debug("%s %s", what, line);
}

/* True once in every 5 s per *last: what a peer can trigger must not flood the log. */
static bool log_ok(struct mt_tunnel *t, double *last)
{
    double now = ev_now(t->loop);
    if (now - *last < 5.0)
        return false;
    *last = now;
    return true;
}

static bool is_offloaded(const struct mt_vnet_hdr *v)
{
    return v->gso_type != MT_VNET_GSO_NONE || (v->flags & MT_VNET_F_NEEDS_CSUM);
}

static ssize_t write_device(struct mt_tunnel *t, const uint8_t *data, size_t len,
                            const struct mt_vnet_hdr *vnet)
{
    if (!t->vnet)
        return write(t->dev_fd, data, len);
    static const struct mt_vnet_hdr none;
    uint8_t hdr[MT_VNET_HDR_LEN];
    mt_vnet_write(hdr, vnet ? vnet : &none);
    struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};
    ssize_t n = writev(t->dev_fd, iov, 2);
    return n >= (ssize_t)sizeof(hdr) ? n - (ssize_t)sizeof(hdr) : n;
}

static int to_device(struct mt_tunnel *t, const uint8_t *data, size_t len,
                     const struct mt_vnet_hdr *vnet);

static int emit_to_device(void *ctx, const uint8_t *seg, size_t len)
{
    to_device(ctx, seg, len, NULL);
    return 0;
}

/* True when the device cannot take the offloaded packet vnet describes: none without a
 * virtio-net header, no UDP super-packet without USO. */
static bool device_refuses(const struct mt_tunnel *t, const struct mt_vnet_hdr *vnet)
{
    if (!vnet || !is_offloaded(vnet))
        return false;
    return !t->vnet ||
           (!t->uso && (vnet->gso_type & (uint8_t)~MT_VNET_GSO_ECN) == MT_VNET_GSO_UDP_L4);
}

/* Writes a packet to the device; vnet is its offload header (NULL: an ordinary packet). A
 * device without that offload gets the packet finished and cut in software. */
static int to_device(struct mt_tunnel *t, const uint8_t *data, size_t len,
                     const struct mt_vnet_hdr *vnet)
{
    if (t->dev_fd < 0)
        return -ENODEV;
    if (device_refuses(t, vnet))
        return mt_vnet_segment(data, len, vnet, t->link, t->seg_buf + MT_HEADROOM,
                               MT_PKT_BUFSIZE - MT_HEADROOM, emit_to_device, t) < 0
                   ? -EINVAL
                   : 0;
    ssize_t n = write_device(t, data, len, vnet);
    int e = n < 0 ? errno : 0;
    if (mt_unlikely(t->captures))
        mt__capture(t, MT_CAP_DEVICE_OUT, data, len,
                    &(struct mt_fate){.verdict = e ? MT_VERDICT_DROP : MT_VERDICT_PASS, .err = e});
    if (n < 0) {
        t->stats.dev_tx_errors++;
        /* EIO: the link is down; EAGAIN: the kernel's queue is full; EINVAL: a packet the
         * kernel refused. None is fatal, and none should flood the log. */
        double now = ev_now(t->loop);
        if (now - t->dev_err_logged >= 5.0) {
            t->dev_err_logged = now;
            mt_warn("write to %s failed: %s (packet dropped; %llu so far)", t->ifname, strerror(e),
                    (unsigned long long)t->stats.dev_tx_errors);
        }
        return -e;
    }
    t->stats.dev_tx_packets++;
    t->stats.dev_tx_bytes += (uint64_t)n;
    return 0;
}

/* Bytes that are final (encode already ran, or there is none) to the peer's transport. vnet is
 * the offload header, for a peer that takes extended frames (NULL: none). A plain peer (a
 * simpletun peer, UDP) never gets a frame longer than it accepts: it would close the
 * connection, or overflow a simpletun peer's 2000-byte buffer. */
static int send_raw(struct mt_tpeer *p, const uint8_t *data, size_t len,
                    const struct mt_vnet_hdr *vnet)
{
    struct mt_tunnel *t = p->tun;
    if (!p->pub.up)
        return -ENOTCONN;
    if (!p->offload && len > t->frame_max) {
        p->pub.stats.drops++;
        t->stats.too_big++;
        if (mt_unlikely(t->captures))
            mt__capture(t, MT_CAP_NET_OUT, data, len,
                        &(struct mt_fate){.verdict = MT_VERDICT_DROP,
                                          .peer = &p->pub,
                                          .reason = "too big for the peer's frames"});
        if (log_ok(t, &t->oversize_logged))
            mt_warn("peer %s: %zu-byte packet exceeds its %zu-byte frames and cannot be cut, "
                    "dropped (%llu so far)",
                    mt_peer_label(&p->pub), len, t->frame_max,
                    (unsigned long long)t->stats.too_big);
        return -EMSGSIZE;
    }
    int rc = t->ops->send(p, p->offload ? vnet : NULL, data, len);
    if (mt_unlikely(t->captures))
        mt__capture(t, MT_CAP_NET_OUT, data, len,
                    &(struct mt_fate){.verdict = rc < 0 ? MT_VERDICT_DROP : MT_VERDICT_PASS,
                                      .peer = &p->pub,
                                      .reason = rc < 0 ? "not sent" : NULL,
                                      .err = rc < 0 ? -rc : 0});
    if (rc < 0) {
        p->pub.stats.drops++;
        t->stats.queue_drops++;
        return rc;
    }
    p->pub.stats.tx_packets++;
    p->pub.stats.tx_bytes += len;
    t->stats.net_tx_packets++;
    t->stats.net_tx_bytes += len;
    mt__tunnel_queued(p);
    return 0;
}

/* The last step of every packet to a peer: the encode hooks (which may rewrite it), then the
 * transport. Never cuts: a packet arrives here at a size the peer takes, or is dropped. */
static void encode_and_send(struct mt_tunnel *t, struct mt_tpeer *p, struct mt_packet *pkt)
{
    if (t->hooks & MT_HOOK_ENCODE) {
        if (mt_scripts_encode(t->scripts, pkt, &p->pub) == MT_VERDICT_DROP) {
            t->stats.script_drops += !mt_scripts_failed(t->scripts); /* a failure is an error */
            if (mt_unlikely(t->captures))
                mt__capture(t, MT_CAP_NET_OUT, pkt->data, pkt->len,
                            &(struct mt_fate){
                                .verdict = MT_VERDICT_DROP, .peer = &p->pub, .scripted = true});
            return;
        }
    }
    send_raw(p, pkt->data, pkt->len, &pkt->vnet);
}

struct segment_ctx {
    struct mt_tunnel *t;
    struct mt_tpeer *p;
    const struct mt_packet *super;
    uint8_t *buf; /* where the segment is built: its packet view starts after the headroom */
    bool encoded; /* the bytes went through encode already (mt.send): send as they are */
};

/* One segment of a super-packet cut in software, built in c->buf after its headroom. It goes
 * through encode as an ordinary packet and is never cut again: the super-packet was planned
 * at the peer's MTU (mt_vnet_fit_mtu), and cutting in place would rewrite the headers that the
 * next segment's are computed from. */
static int emit_segment(void *ctx, const uint8_t *seg, size_t len)
{
    struct segment_ctx *c = ctx;
    if (c->encoded) {
        send_raw(c->p, seg, len, NULL); /* a full queue drops it, counted there */
        return 0;
    }
    struct mt_packet pkt;
    mt_packet_init(&pkt, c->buf, MT_PKT_BUFSIZE, MT_HEADROOM);
    if (seg != pkt.data)
        memmove(pkt.data, seg, len);
    pkt.len = len;
    pkt.link = c->super->link;
    pkt.dir = c->super->dir;
    pkt.peer = c->super->peer;
    encode_and_send(c->t, c->p, &pkt);
    return 0;
}

/* Cuts an offloaded packet into ordinary ones at the MTU, each to emit_segment. */
static void segment_to_peer(struct mt_tunnel *t, struct mt_tpeer *p, struct mt_packet *pkt,
                            uint8_t *segbuf, bool encoded)
{
    struct segment_ctx c = {t, p, pkt, segbuf, encoded};
    mt_vnet_fit_mtu(pkt->data, pkt->len, pkt->link, (size_t)t->cfg->mtu, &pkt->vnet);
    if (mt_vnet_segment(pkt->data, pkt->len, &pkt->vnet, pkt->link, segbuf + MT_HEADROOM,
                        MT_PKT_BUFSIZE - MT_HEADROOM, emit_segment, &c) < 0)
        t->stats.bad_offloads++; /* an offload header we cannot honour */
}

/* Sends pkt to p. A peer that does not take offloaded packets (a simpletun peer, UDP) gets a
 * super-packet (or an ordinary TCP packet too large for its frames, e.g. a script's copy of
 * a super-packet) cut into ordinary packets, each through encode, checksums completed. */
static void to_peer(struct mt_tunnel *t, struct mt_tpeer *p, struct mt_packet *pkt)
{
    if (!p->offload) {
        bool offloaded = is_offloaded(&pkt->vnet);
        if (!offloaded && pkt->len > t->frame_max)
            offloaded = mt_vnet_make_super(pkt->data, pkt->len, pkt->link, (size_t)t->cfg->mtu,
                                           &pkt->vnet) == 0;
        if (offloaded) {
            segment_to_peer(t, p, pkt, t->seg_buf, false);
            return;
        }
    }
    encode_and_send(t, p, pkt);
}

/* Sends to p a copy of pkt when encode (or cutting) may rewrite it and the original is still
 * needed. */
static void to_peer_copy(struct mt_tunnel *t, struct mt_tpeer *p, const struct mt_packet *pkt)
{
    if (!(t->hooks & MT_HOOK_ENCODE) && !is_offloaded(&pkt->vnet) &&
        (p->offload || pkt->len <= t->frame_max)) {
        send_raw(p, pkt->data, pkt->len, NULL);
        return;
    }
    struct mt_packet copy;
    if (mt_packet_copy(&copy, t->out_buf, MT_PKT_BUFSIZE, pkt) < 0) {
        t->stats.too_big++;
        return;
    }
    to_peer(t, p, &copy);
}

static void to_all_peers(struct mt_tunnel *t, const struct mt_packet *pkt,
                         const struct mt_tpeer *except)
{
    for (struct mt_tpeer *p = t->peers; p; p = p->next)
        if (p != except)
            to_peer_copy(t, p, pkt);
}

/* Default routing of an egress packet the scripts passed. */
/* The peer a script route (mt.route) sends dst to, when one matches and that peer is up;
 * else the learning table decides. A route by name scans the peers: only packets to a
 * script-routed prefix pay for it. */
static struct mt_tpeer *script_route(struct mt_tunnel *t, const struct mt_addr *dst)
{
    const struct mt_sroute *r = mt_sroute_lookup(&t->sroutes, dst);
    if (!r)
        return NULL;
    for (struct mt_tpeer *p = t->peers; p; p = p->next)
        if (r->peer_id ? p->pub.id == r->peer_id : strcmp(p->pub.name, r->name) == 0)
            return p;
    return NULL;
}

static void route_egress(struct mt_tunnel *t, struct mt_packet *pkt)
{
    struct mt_tpeer *p = NULL;
    if (t->ops->route) {
        p = t->ops->route(t, pkt); /* the transport's own routing (cryptokey routing) */
    } else if (t->cfg->role == MT_ROLE_CLIENT) {
        p = t->peers; /* a client has at most one peer: its server */
    } else {
        struct mt_addr dst;
        if (mt_addr_of_packet(pkt, true, &dst) == 0) {
            if (mt_addr_is_multicast(&dst)) {
                if (mt_unlikely(t->captures))
                    mt__capture(t, MT_CAP_DEVICE_IN, pkt->data, pkt->len,
                                &(struct mt_fate){.verdict = MT_VERDICT_PASS});
                to_all_peers(t, pkt, NULL);
                return;
            }
            p = t->sroutes.n > 0 ? script_route(t, &dst) : NULL;
            if (!p)
                p = mt_route_lookup(&t->routes, &dst);
        }
        /* Point-to-point, as simpletun: with one peer there is nowhere else to go. */
        if (!p && t->npeers == 1)
            p = t->peers;
    }
    if (mt_unlikely(t->captures)) /* the one test a packet from the device pays for capture */
        mt__capture(t, MT_CAP_DEVICE_IN, pkt->data, pkt->len,
                    &(struct mt_fate){.verdict = p ? MT_VERDICT_PASS : MT_VERDICT_DROP,
                                      .peer = p ? &p->pub : NULL,
                                      .reason = p ? NULL : "no route"});
    if (!p) {
        /* No peer at all (a client before its connection is up) is not a routing problem. */
        bool alone = t->npeers == 0;
        if (alone)
            t->stats.not_connected++;
        else
            t->stats.no_route++;
        if (mt_log_level >= MT_LOG_DEBUG)
            log_packet(alone ? "not connected, dropped:" : "no route, dropped:", pkt);
        return;
    }
    to_peer(t, p, pkt);
}

static void route_verdict(struct mt_tunnel *t, enum mt_verdict v, struct mt_peer *route,
                          struct mt_packet *pkt)
{
    if (v == MT_VERDICT_DROP) {
        t->stats.script_drops += !mt_scripts_failed(t->scripts); /* a failure is an error */
    } else if (v == MT_VERDICT_ROUTE) {
        to_peer(t, (struct mt_tpeer *)route, pkt);
    }
}

static void from_device(struct mt_tunnel *t, struct mt_packet *pkt)
{
    t->stats.dev_rx_packets++;
    t->stats.dev_rx_bytes += pkt->len;
    bool trace = mt_log_level >= MT_LOG_DEBUG; /* -d: the one branch a packet pays */
    if (trace)
        mt_trace_begin(pkt, t->stats.script_errors);
    enum mt_verdict v = MT_VERDICT_PASS;
    struct mt_peer *route = NULL;
    if (t->hooks & MT_HOOK_EGRESS)
        v = mt_scripts_egress(t->scripts, pkt, &route);
    if (trace)
        mt_trace_end("egress", pkt, v, route, t->hooks & MT_HOOK_EGRESS ? t->scripts : NULL,
                     t->stats.script_errors);
    if (mt_unlikely(t->captures) && v != MT_VERDICT_PASS) /* a pass is captured when routed */
        mt__capture(t, MT_CAP_DEVICE_IN, pkt->data, pkt->len,
                    &(struct mt_fate){.verdict = v, .peer = route, .scripted = true});
    switch (v) {
    case MT_VERDICT_PASS:
        route_egress(t, pkt);
        break;
    case MT_VERDICT_REPLY:
        t->stats.script_replies++;
        to_device(t, pkt->data, pkt->len, &pkt->vnet);
        break;
    default:
        route_verdict(t, v, route, pkt);
    }
}

/* Learns which peer owns the packet's inner source address (server only: a client has
 * one peer and routes everything to it). */
static void learn_source(struct mt_tunnel *t, struct mt_tpeer *p, struct mt_packet *pkt)
{
    struct mt_addr src;
    if (t->cfg->role != MT_ROLE_SERVER || mt_addr_of_packet(pkt, false, &src) < 0 ||
        mt_addr_is_multicast(&src))
        return;
    if (mt_route_learn(&t->routes, &src, p, ev_now(t->loop)) == 1 && mt_log_level >= MT_LOG_DEBUG) {
        char buf[64];
        mt_debug("learned %s via peer %s", mt_addr_str(&src, buf, sizeof(buf)),
                 mt_peer_label(&p->pub));
    }
}

/* Default delivery of an ingress packet the scripts passed: the device, or, on a server,
 * another peer that owns the destination (client-to-client without the kernel). */
static void route_ingress(struct mt_tunnel *t, struct mt_tpeer *from, struct mt_packet *pkt)
{
    if (mt_unlikely(t->captures)) /* the one test a packet from a peer pays for capture */
        mt__capture(t, MT_CAP_NET_IN, pkt->data, pkt->len,
                    &(struct mt_fate){.verdict = MT_VERDICT_PASS, .peer = &from->pub});
    if (t->cfg->role == MT_ROLE_SERVER) {
        struct mt_addr dst;
        if (mt_addr_of_packet(pkt, true, &dst) == 0) {
            if (mt_addr_is_multicast(&dst)) {
                to_all_peers(t, pkt, from);
            } else {
                struct mt_tpeer *owner = t->sroutes.n > 0 ? script_route(t, &dst) : NULL;
                if (!owner)
                    owner = mt_route_lookup(&t->routes, &dst);
                if (owner && owner != from) {
                    to_peer(t, owner, pkt);
                    return;
                }
            }
        }
    }
    to_device(t, pkt->data, pkt->len, &pkt->vnet);
}

void mt__tunnel_from_peer(struct mt_tunnel *t, struct mt_tpeer *p, const uint8_t *data, size_t len,
                          const struct mt_vnet_hdr *vnet)
{
    t->stats.net_rx_packets++;
    t->stats.net_rx_bytes += len;
    p->pub.stats.rx_packets++;
    p->pub.stats.rx_bytes += len;
    p->last_rx = ev_now(t->loop);

    /* The transports bound what they accept; this is the line no packet crosses whatever a
     * transport lets through: the buffers below hold MT_MAX_PACKET bytes behind headroom. */
    if (len == 0 || len > MT_MAX_PACKET) {
        t->stats.too_big++;
        if (mt_unlikely(t->captures))
            mt__capture(t, MT_CAP_NET_IN, data, len,
                        &(struct mt_fate){
                            .verdict = MT_VERDICT_DROP, .peer = &p->pub, .reason = "too big"});
        return;
    }
    struct mt_packet pkt;
    if (t->scripts) {
        /* Hooks may rewrite, grow or shrink it: give them a buffer with head- and tailroom. */
        mt_packet_init(&pkt, t->net_buf, MT_PKT_BUFSIZE, MT_HEADROOM);
        memcpy(pkt.data, data, len);
        pkt.len = len;
    } else {
        pkt.base = pkt.data = (uint8_t *)data;
        pkt.len = pkt.cap = len;
        pkt.hdrs_ok = false;
    }
    if (vnet)
        pkt.vnet = *vnet;
    else
        memset(&pkt.vnet, 0, sizeof(pkt.vnet));
    pkt.link = t->link;
    pkt.dir = MT_DIR_INGRESS;
    pkt.peer = &p->pub;

    if (t->hooks & MT_HOOK_DECODE) {
        if (mt_scripts_decode(t->scripts, &pkt, &p->pub) == MT_VERDICT_DROP) {
            t->stats.script_drops += !mt_scripts_failed(t->scripts);
            if (mt_unlikely(t->captures))
                mt__capture(t, MT_CAP_NET_IN, pkt.data, pkt.len,
                            &(struct mt_fate){
                                .verdict = MT_VERDICT_DROP, .peer = &p->pub, .scripted = true});
            return;
        }
    }
    /* A peer's offload header reaches the kernel's GSO entry points (normally only
     * CAP_NET_ADMIN's) and other peers' segmenters: judged here, after decode has restored the
     * packet it describes, before any script or route sees it. */
    if (is_offloaded(&pkt.vnet) &&
        mt_vnet_check(pkt.data, pkt.len, &pkt.vnet, pkt.link, t->frame_max) < 0) {
        t->stats.bad_offloads++;
        if (mt_unlikely(t->captures))
            mt__capture(t, MT_CAP_NET_IN, pkt.data, pkt.len,
                        &(struct mt_fate){.verdict = MT_VERDICT_DROP,
                                          .peer = &p->pub,
                                          .reason = "bad offload header"});
        if (log_ok(t, &t->offload_logged))
            mt_warn("peer %s: offload header does not describe its packet, dropped (%llu so "
                    "far)",
                    mt_peer_label(&p->pub), (unsigned long long)t->stats.bad_offloads);
        return;
    }
    /* A transport whose peers own fixed prefixes refuses the rest before anything trusts
     * the source: routes, scripts, the device. */
    if (t->ops->source_ok && !t->ops->source_ok(p, &pkt)) {
        p->pub.stats.drops++;
        if (mt_unlikely(t->captures))
            mt__capture(t, MT_CAP_NET_IN, pkt.data, pkt.len,
                        &(struct mt_fate){.verdict = MT_VERDICT_DROP,
                                          .peer = &p->pub,
                                          .reason = "source not allowed for this peer"});
        return;
    }
    learn_source(t, p, &pkt);
    bool trace = mt_log_level >= MT_LOG_DEBUG;
    if (trace)
        mt_trace_begin(&pkt, t->stats.script_errors);
    enum mt_verdict v = MT_VERDICT_PASS;
    struct mt_peer *route = NULL;
    if (t->hooks & MT_HOOK_INGRESS)
        v = mt_scripts_ingress(t->scripts, &pkt, &route);
    if (trace)
        mt_trace_end("ingress", &pkt, v, route, t->hooks & MT_HOOK_INGRESS ? t->scripts : NULL,
                     t->stats.script_errors);
    if (mt_unlikely(t->captures) && v != MT_VERDICT_PASS) /* a pass is captured when routed */
        mt__capture(t, MT_CAP_NET_IN, pkt.data, pkt.len,
                    &(struct mt_fate){.verdict = v, .peer = &p->pub, .scripted = true});
    switch (v) {
    case MT_VERDICT_PASS:
        route_ingress(t, p, &pkt);
        break;
    case MT_VERDICT_REPLY:
        t->stats.script_replies++;
        to_peer(t, p, &pkt);
        break;
    default:
        route_verdict(t, v, route, &pkt);
    }
}

void mt__tunnel_queued(struct mt_tpeer *p)
{
    struct mt_tunnel *t = p->tun;
    t->tx_pending = true; /* sends from timers happen outside any batch: flush them too */
    if (!t->dev_paused && t->ops->congested(p)) {
        t->dev_paused = true;
        ev_io_stop(t->loop, &t->dev_w);
    }
}

void mt__tunnel_update_pressure(struct mt_tunnel *t)
{
    /* Only mt__tunnel_queued pauses, the moment a queue passes its mark; here the device
     * resumes once every queue is below it. */
    if (!t->dev_paused)
        return;
    for (struct mt_tpeer *p = t->peers; p; p = p->next)
        if (t->ops->congested(p))
            return;
    t->dev_paused = false;
    if (t->dev_fd >= 0)
        ev_io_start(t->loop, &t->dev_w);
}

static void dev_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_tunnel *t = TUNNEL_OF(w, dev_w);
    for (int i = 0; i < MT_DEV_BATCH && !t->dev_paused; i++) {
        struct mt_packet pkt;
        mt_packet_init(&pkt, t->dev_buf, MT_PKT_BUFSIZE, MT_HEADROOM);
        /* With offloads the virtio-net header lands just before the packet, in headroom. */
        size_t hdr = t->vnet ? MT_VNET_HDR_LEN : 0;
        ssize_t n = read(t->dev_fd, pkt.data - hdr, MT_MAX_PACKET + hdr);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            /* The device was deleted under us (ip link del): nothing more will come. */
            mt_error("device %s is gone (%s): exiting", t->ifname,
                     n == 0 ? "end of file" : strerror(errno));
            t->exit_code = 1;
            ev_io_stop(loop, w);
            ev_break(loop, EVBREAK_ALL);
            return;
        }
        if ((size_t)n <= hdr)
            continue; /* nothing behind the header: not a packet */
        if (hdr)
            mt_vnet_read(pkt.data - hdr, &pkt.vnet);
        pkt.len = (size_t)n - hdr;
        pkt.link = t->link;
        pkt.dir = MT_DIR_EGRESS;
        pkt.peer = NULL;
        from_device(t, &pkt);
    }
}

static void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
    struct mt_tunnel *t = TUNNEL_OF(w, flush_w);
    if (!t->tx_pending)
        return;
    t->tx_pending = false;
    t->ops->flush(t);
    mt__tunnel_update_pressure(t);
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    mt_info("caught signal %d (%s), stopping", w->signum, strsignal(w->signum));
    ev_break(loop, EVBREAK_ALL);
}

/* SIGUSR1, SIGUSR2: the status in the log, as OpenVPN's SIGUSR2 does; the tunnel goes on. */
static void status_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    struct mt_tunnel *t = w->data;
    mt_report_status(t, w->signum == SIGUSR1 ? "SIGUSR1" : "SIGUSR2");
}

int mt__tunnel_reload(struct mt_tunnel *t, const char *why, char *err, size_t errsz)
{
    if (!t->scripts) {
        mt_info("%s: no scripts to reload", why);
        snprintf(err, errsz, "no scripts to reload");
        return 0;
    }
    int rc = mt_scripts_reload(&t->scripts, err, errsz);
    if (rc < 0) {
        mt_error("reload failed, keeping the running scripts: %s", err);
        return rc;
    }
    t->hooks = mt_scripts_hooks(t->scripts);
    mt_info("scripts reloaded (%s)", why);
    return 0;
}

static void sighup_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
    char err[512];
    mt__tunnel_reload(w->data, "SIGHUP", err, sizeof(err));
}

/* No catchable signal ends the process without its summary: those whose default action is to
 * end it (SIGQUIT, SIGALRM, the real-time ones ...) stop the loop like SIGTERM does. Left
 * alone: the signals of a crash (SIGSEGV, SIGABRT ...), which must dump core, and those
 * ignored by default. SIGPIPE (a closed TCP peer) and SIGXFSZ (a log past its size limit)
 * are ignored: errors returned, not deaths. */
static void watch_signal(struct mt_tunnel *t, void (*cb)(struct ev_loop *, ev_signal *, int),
                         int sig)
{
    ev_signal *w = &t->sig_w[t->nsig++];
    ev_signal_init(w, cb, sig);
    w->data = t;
    ev_signal_start(t->loop, w);
}

static void watch_signals(struct mt_tunnel *t)
{
    static const int stop[] = {SIGINT,  SIGTERM, SIGQUIT,   SIGALRM, SIGVTALRM,
                               SIGPROF, SIGIO,   SIGSTKFLT, SIGPWR,  SIGXCPU};
    for (size_t i = 0; i < sizeof stop / sizeof stop[0]; i++)
        watch_signal(t, signal_cb, stop[i]);
    int room = (int)(sizeof t->sig_w / sizeof t->sig_w[0]) - 3;
    for (int sig = SIGRTMIN; sig <= SIGRTMAX && sig < NSIG && t->nsig < room; sig++)
        watch_signal(t, signal_cb, sig);
    watch_signal(t, sighup_cb, SIGHUP);
    watch_signal(t, status_cb, SIGUSR1);
    watch_signal(t, status_cb, SIGUSR2);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN);
}

/* A script's bytes, longer than the MTU, for a receiver that cuts offloaded packets (the
 * device, an offloading peer): a TCP packet is described as a super-packet in xmit_buf, so
 * it is cut at the MTU instead of travelling as one 64 KiB packet that no gateway forwards.
 * NULL when it stays as it is. */
static const struct mt_packet *script_super(struct mt_tunnel *t, const uint8_t *data, size_t len,
                                            struct mt_packet *pkt)
{
    if (len <= (size_t)t->cfg->mtu || len > MT_MAX_PACKET)
        return NULL;
    mt_packet_init(pkt, t->xmit_buf, MT_PKT_BUFSIZE, MT_HEADROOM);
    memcpy(pkt->data, data, len);
    pkt->len = len;
    pkt->link = t->link;
    if (mt_vnet_make_super(pkt->data, len, t->link, (size_t)t->cfg->mtu, &pkt->vnet) < 0)
        return NULL;
    return pkt;
}

/* What scripts may ask for (struct mt_host). */
static int host_inject(void *ctx, const uint8_t *data, size_t len)
{
    struct mt_tunnel *t = ctx;
    struct mt_packet pkt;
    const struct mt_packet *super = t->vnet ? script_super(t, data, len, &pkt) : NULL;
    if (super)
        return to_device(t, super->data, super->len, &super->vnet);
    return to_device(t, data, len, NULL);
}

static int host_route(void *ctx, const struct mt_prefix *p, const struct mt_peer *peer,
                      const char *name)
{
    struct mt_tunnel *t = ctx;
    if (peer == NULL && name == NULL)
        return mt_sroute_del(&t->sroutes, p->addr.kind, p->addr.b, p->len);
    return mt_sroute_set(&t->sroutes, p->addr.kind, p->addr.b, p->len, peer ? peer->id : 0, name);
}

static int host_send(void *ctx, struct mt_peer *peer, const uint8_t *data, size_t len)
{
    struct mt_tunnel *t = ctx;
    struct mt_tpeer *p = (struct mt_tpeer *)peer;
    /* Its encode hooks already ran on the whole: what is left is cutting it to size. */
    struct mt_packet pkt;
    const struct mt_packet *super =
        p->offload || len > t->frame_max ? script_super(t, data, len, &pkt) : NULL;
    if (!super)
        return send_raw(p, data, len, NULL);
    if (p->offload)
        return send_raw(p, super->data, super->len, &super->vnet);
    segment_to_peer(t, p, &pkt, t->xmit_seg_buf, true);
    return 0;
}

static size_t host_peers(void *ctx, struct mt_peer **out, size_t max)
{
    struct mt_tunnel *t = ctx;
    size_t n = 0;
    for (struct mt_tpeer *p = t->peers; p && n < max; p = p->next)
        out[n++] = &p->pub;
    return n;
}

int mt_tunnel_init(struct mt_tunnel *t, struct ev_loop *loop, const struct mt_config *cfg,
                   char *err, size_t errsz)
{
    memset(t, 0, sizeof(*t));
    t->loop = loop;
    t->cfg = cfg;
    t->ops = mt__transport_pick(cfg->transport);
    t->link = cfg->tap ? MT_LINK_ETH : MT_LINK_IP;
    t->dev_fd = -1;
    /* What may arrive from the network: an MTU-sized packet (plus an Ethernet header and a
     * VLAN tag in tap mode) and room for a header a script's encode hook adds. */
    size_t max = (size_t)cfg->mtu + (cfg->tap ? 18 : 0) + MT_HEADROOM;
    t->frame_max = max < MT_MAX_PACKET ? max : MT_MAX_PACKET;
    t->dev_buf = malloc(MT_PKT_BUFSIZE);
    t->net_buf = malloc(MT_PKT_BUFSIZE);
    t->out_buf = malloc(MT_PKT_BUFSIZE);
    t->seg_buf = malloc(MT_PKT_BUFSIZE);
    t->xmit_buf = malloc(MT_PKT_BUFSIZE);
    t->xmit_seg_buf = malloc(MT_PKT_BUFSIZE);
    if (!t->dev_buf || !t->net_buf || !t->out_buf || !t->seg_buf || !t->xmit_buf ||
        !t->xmit_seg_buf || mt_route_init(&t->routes, MT_ROUTES) < 0) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    t->host.ctx = t;
    t->host.loop = loop;
    t->host.cfg = cfg;
    t->host.stats = &t->stats;
    t->host.inject = host_inject;
    t->host.send = host_send;
    t->host.peers = host_peers;
    t->host.route = host_route;
    /* Scripts load before any device exists: a broken one costs nothing but its error.
     * With --user they must not run as root: only compile them now, run them after the
     * privileges are dropped (mt_tunnel_load_scripts). */
    if (cfg->user[0])
        return mt_scripts_check(cfg, err, errsz);
    return mt_tunnel_load_scripts(t, err, errsz);
}

int mt_tunnel_load_scripts(struct mt_tunnel *t, char *err, size_t errsz)
{
    int rc = mt_scripts_load(&t->scripts, t->cfg, &t->host, err, errsz);
    if (rc < 0)
        return rc;
    t->hooks = t->scripts ? mt_scripts_hooks(t->scripts) : 0;
    return 0;
}

void mt__tunnel_use_device(struct mt_tunnel *t, int fd, bool vnet)
{
    t->dev_fd = fd;
    t->vnet = vnet;
    ev_io_init(&t->dev_w, dev_cb, fd, EV_READ);
    ev_io_start(t->loop, &t->dev_w);
    ev_prepare_init(&t->flush_w, flush_cb);
    ev_prepare_start(t->loop, &t->flush_w);
}

int mt_tunnel_open(struct mt_tunnel *t, char *err, size_t errsz)
{
    const struct mt_config *cfg = t->cfg;
    /* Sockets first: a port in use should fail before a device appears. */
    int rc = t->ops->start(t, err, errsz);
    if (rc < 0)
        return rc;
    /* Offloads (64 KiB super-packets per read, tun or tap): between moontun peers over TCP
     * they cross whole; a UDP peer gets them cut at the MTU, one GSO send (see README,
     * offloads). */
    bool want_vnet = !cfg->no_offload;
    rc = mt_device_open(cfg->ifname, cfg->tap, want_vnet, t->ifname);
    if (rc < 0) {
        snprintf(err, errsz, "cannot open %s device%s%s: %s", cfg->tap ? "tap" : "tun",
                 cfg->ifname[0] ? " " : "", cfg->ifname, strerror(-rc));
        return rc;
    }
    int fd = rc;
    bool uso = false;
    if (want_vnet && mt_device_enable_offload(fd, &uso) < 0)
        mt_warn("%s: the kernel refused offloads; reading ordinary packets", t->ifname);
    else if (want_vnet)
        mt_info("%s: offloads TSO%s", t->ifname,
                uso ? " and USO" : " (the kernel has no USO: UDP super-packets are cut here)");
    t->uso = uso;
    rc = mt_device_set_mtu(t->ifname, cfg->mtu);
    if (rc < 0) {
        snprintf(err, errsz, "cannot set MTU %d on %s: %s", cfg->mtu, t->ifname, strerror(-rc));
        return rc;
    }
    if (mt_device_set_txqueuelen(t->ifname, MT_DEVICE_TXQUEUELEN) < 0) /* room for bursts */
        mt_warn("%s: cannot set txqueuelen %d", t->ifname, MT_DEVICE_TXQUEUELEN);
    if (cfg->naddrs > 0) {
        rc = mt_device_set_up(t->ifname);
        unsigned ipv4s = 0;
        for (int i = 0; i < cfg->naddrs && rc >= 0; i++) {
            bool v4 = cfg->addrs[i].addr.kind == MT_ADDR_IP4;
            rc = mt_device_add_addr(t->ifname, &cfg->addrs[i], v4 ? ipv4s++ : 0);
        }
        if (rc < 0) {
            snprintf(err, errsz, "cannot configure %s: %s", t->ifname, strerror(-rc));
            return rc;
        }
        mt__addrwatch_open(&t->addrwatch, t->loop, t->ifname, cfg); /* not fatal: logged */
    }
    mt__tunnel_use_device(t, fd, want_vnet);
    watch_signals(t);
    mt_info("%s %s up (mtu %d), %s %s on %s port %u", cfg->tap ? "tap" : "tun", t->ifname, cfg->mtu,
            t->ops->name, cfg->role == MT_ROLE_SERVER ? "server" : "client",
            cfg->role == MT_ROLE_SERVER ? (cfg->listen[0] ? cfg->listen : "any") : cfg->host,
            cfg->port);
    return 0;
}

void mt_tunnel_run(struct mt_tunnel *t)
{
    ev_run(t->loop, 0);
}

void mt_tunnel_close(struct mt_tunnel *t)
{
    t->stopping = true;
    for (int i = 0; i < t->nsig; i++)
        ev_signal_stop(t->loop, &t->sig_w[i]);
    t->nsig = 0;
    /* Scripts stop first: their stop handlers may still log or look at peers. */
    mt_scripts_free(t->scripts);
    t->scripts = NULL;
    t->hooks = 0;
    t->ops->stop(t);
    while (t->peers)
        mt__peer_free(t->peers, "shutting down");
    mt__addrwatch_close(t->addrwatch);
    t->addrwatch = NULL;
    if (t->dev_fd >= 0) {
        ev_io_stop(t->loop, &t->dev_w);
        close(t->dev_fd);
        t->dev_fd = -1;
    }
    ev_prepare_stop(t->loop, &t->flush_w);
    mt_route_free(&t->routes);
    free(t->dev_buf);
    free(t->net_buf);
    free(t->out_buf);
    free(t->seg_buf);
    free(t->xmit_buf);
    free(t->xmit_seg_buf);
    t->dev_buf = t->net_buf = t->out_buf = t->seg_buf = t->xmit_buf = t->xmit_seg_buf = NULL;
}
