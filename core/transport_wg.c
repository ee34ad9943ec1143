/* WireGuard transport (--wg FILE): one UDP socket, peers known by public key from a wg(8)
 * file, the handshake (initiation, response, cookie replies under load), data messages,
 * WireGuard's timers on one libev timer per peer, roaming, and cryptokey routing (egress by
 * the longest AllowedIPs prefix, ingress refused unless the inner source is the sender's),
 * replies from the address a peer reached, and offloads: GSO trains out, UDP_GRO trains in,
 * decrypted TCP segments joined again by the software GRO.
 * The protocol itself is core/wg/; this file only puts it on the wire and the event loop. */
#include <errno.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "gro.h"
#include "moontun/log.h"
#include "moontun/route.h"
#include "tunnel.h"
#include "util.h"
#include "wg/config.h"
#include "wg/cookie.h"
#include "wg/data.h"
#include "wg/key.h"
#include "wg/load.h"
#include "wg/noise.h"
#include "wg/timers.h"

#define RX_BATCH 64 /* datagrams per recvmmsg */
#define TX_BATCH 64 /* data messages per sendmmsg */
/* A GSO train (UDP_SEGMENT): at most this many bytes of UDP payload in one send. */
#define GSO_BYTES 65000
#define STAGED    16 /* packets held per peer while its handshake is under way */
#define LOG_EVERY 5.0
/* Handshake messages a second above which an initiator must prove its address (mac2, from a
 * cookie reply) before any Diffie-Hellman is spent on it. */
#define LOAD_PER_SECOND 64
/* Our half of a local index: the peer's slot in the low bits, so a message finds its peer
 * without a table; the high bits are random, so indices stay unpredictable. */
#define SLOT_BITS 16
#define SLOT_MASK ((1u << SLOT_BITS) - 1)

/* The reasons a datagram is refused, each logged at most every LOG_EVERY seconds. */
enum drop_kind {
    DROP_MALFORMED,  /* not a WireGuard message, or a bad mac1 */
    DROP_HANDSHAKE,  /* a handshake that did not authenticate, a replayed or flooding one */
    DROP_DATA,       /* a data message that did not open, or a replay */
    DROP_SOURCE,     /* an inner source outside the sender's AllowedIPs */
    DROP_NO_SESSION, /* a data message for no current key */
    DROP_KINDS,
};

static const char *const drop_what[DROP_KINDS] = {
    "malformed or unauthenticated message", "handshake refused", "data message refused",
    "inner source not in the peer's AllowedIPs", "data message for no session"};

struct wg_keys {
    struct mt_wg_keypair kp;
    bool valid;
};

struct wg_peer {
    struct mt_tpeer base;
    struct mt_wg_noise_peer np;
    struct mt_wg_cookie_gen gen;
    struct mt_wg_timers timers;
    ev_timer timer_w;
    uint64_t armed_at; /* the deadline timer_w is set for (0: stopped) */
    /* current: sends and receives; previous: still receives; next: the responder's new keys,
     * used once the initiator's first data message proves it has them. */
    struct wg_keys cur, prev, next;
    unsigned slot;
    struct mt_prefix *allowed; /* its AllowedIPs as scripts see them (base.pub.allowed) */
    /* Our address its latest authenticated message arrived on: what we send from, so that a
     * multihomed host answers from the address the peer talks to (all zero: the kernel's
     * choice). */
    struct in6_pktinfo local;
    uint8_t *staged; /* STAGED packets of up to wg->staged_cap bytes, waiting for keys */
    size_t staged_len[STAGED];
    int staged_head, staged_n;
};

struct wg {
    struct mt_tunnel *t;
    int fd;
    int family; /* the socket's */
    ev_io sock_w;
    struct mt_wg_identity id;
    struct mt_wg_cookie_checker checker;
    struct mt_wg_allowedips routes;
    struct mt_wg_load load;
    struct wg_peer **slots;
    size_t nslots;
    size_t msg_cap; /* one message: header, the largest packet, padding, tag */
    size_t staged_cap;
    /* receive batch */
    struct mmsghdr rmsgs[RX_BATCH];
    struct iovec riov[RX_BATCH];
    struct sockaddr_storage rfrom[RX_BATCH];
    union {
        struct cmsghdr align;
        uint8_t buf[sizeof(union mt_pktinfo_cmsg) + CMSG_SPACE(sizeof(int))];
    } rctl[RX_BATCH]; /* the arrival address and (UDP_GRO) the size of a train's datagrams */
    size_t rx_cap;    /* one receive buffer: a message, or a train of them with UDP_GRO */
    struct in6_pktinfo rx_local; /* where the datagram being handled arrived */
    uint8_t *rbufs;
    /* send batch (data messages; handshakes leave at once) */
    struct iovec tiov[TX_BATCH];
    struct wg_peer *tpeer[TX_BATCH]; /* whose message each is */
    /* What wg_flush sends: consecutive messages to one peer, all of one size but the last,
     * as one train cut by the kernel (UDP_SEGMENT), else one datagram each. */
    struct mmsghdr tmsgs[TX_BATCH];
    int tfirst[TX_BATCH]; /* the first message of each */
    struct sockaddr_storage tto[TX_BATCH];
    union {
        struct cmsghdr align;
        uint8_t buf[sizeof(union mt_pktinfo_cmsg) + CMSG_SPACE(sizeof(uint16_t))];
    } tctl[TX_BATCH];
    bool no_gso; /* the kernel refused a train once: one datagram per message from then on */
    uint64_t sent_msgs, sent_trains; /* data messages sent, and in how many sends */
    uint64_t recv_msgs, recv_trains; /* messages received, and in how many receives */
    uint8_t *tbufs;
    int tn;
    struct mt_gro *gro; /* decrypted TCP segments being joined into a super-packet */
    double logged[DROP_KINDS];
    uint64_t drops[DROP_KINDS], unlogged[DROP_KINDS];
    uint64_t cookie_replies; /* sent to handshakes without a valid mac2 under load */
    double cookie_logged;
    double send_err_logged;
    uint64_t rekey_after_ns; /* the test hook's REKEY_AFTER_TIME (0: WireGuard's own) */
};

static struct wg *wg_of(const struct mt_tunnel *t)
{
    return t->tr;
}

static struct wg_peer *wg_peer(struct mt_tpeer *p)
{
    return mt_container_of(p, struct wg_peer, base);
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * MT_WG_SEC + (uint64_t)ts.tv_nsec;
}

/* Handshake jitter, drawn for every data message sent (the timers decide whether it is
 * used): from a pool refilled 64 draws at a time, since each call into the random generator
 * costs a getpid() system call (its fork check), which showed in profiles. */
static uint64_t jitter(void)
{
    static uint32_t pool[64];
    static size_t left;
    if (left == 0) {
        mt_wg_random(pool, sizeof(pool));
        left = sizeof(pool) / sizeof(pool[0]);
    }
    return pool[--left] % MT_WG_REKEY_JITTER_MAX;
}

/* Counts a refused datagram; one line per kind every LOG_EVERY seconds (a flood of forged
 * messages must not flood the log). who: the peer's name or the sender's address. */
static void refuse(struct wg *w, enum drop_kind k, const char *who, const char *why)
{
    struct mt_tunnel *t = w->t;
    w->drops[k]++;
    t->stats.bad_frames++;
    double now = ev_now(t->loop);
    if (now - w->logged[k] < LOG_EVERY) {
        w->unlogged[k]++;
        return;
    }
    mt_warn("wg: %s from %s: %s (%llu so far, %llu not logged since the last report)", drop_what[k],
            who, why, (unsigned long long)w->drops[k], (unsigned long long)w->unlogged[k]);
    w->logged[k] = now;
    w->unlogged[k] = 0;
}

static void refuse_from(struct wg *w, enum drop_kind k, const struct sockaddr *from,
                        const char *why)
{
    char name[MT_PEER_ADDRSTRLEN];
    mt_sockaddr_str(from, name, sizeof(name));
    refuse(w, k, name, why);
}

/* An IPv4 endpoint on an IPv6 (dual-stack) socket is written v4-mapped, the form recvmmsg
 * reports, so that roaming compares like with like. */
static void socket_form(const struct wg *w, const struct sockaddr_storage *in, socklen_t inlen,
                        struct sockaddr_storage *out, socklen_t *outlen)
{
    if (w->family == AF_INET6 && in->ss_family == AF_INET) {
        const struct sockaddr_in *v4 = (const struct sockaddr_in *)in;
        struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)out;
        memset(out, 0, sizeof(*out));
        v6->sin6_family = AF_INET6;
        v6->sin6_port = v4->sin_port;
        v6->sin6_addr.s6_addr[10] = v6->sin6_addr.s6_addr[11] = 0xff;
        memcpy(&v6->sin6_addr.s6_addr[12], &v4->sin_addr, 4);
        *outlen = sizeof(*v6);
        return;
    }
    memcpy(out, in, inlen);
    *outlen = inlen;
}

static bool same_sockaddr(const struct sockaddr_storage *a, socklen_t alen,
                          const struct sockaddr *b, socklen_t blen)
{
    if (a->ss_family != b->sa_family)
        return false;
    if (b->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (b->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return alen == blen && memcmp(a, b, blen) == 0;
}

/* Roaming: a peer's endpoint is where its latest authenticated message came from, and our
 * address it came to is the one we answer from. */
static void set_endpoint(struct wg_peer *p, const struct sockaddr *from, socklen_t fromlen)
{
    p->local = wg_of(p->base.tun)->rx_local;
    if (p->base.salen && same_sockaddr(&p->base.sa, p->base.salen, from, fromlen))
        return;
    char old[MT_PEER_ADDRSTRLEN];
    memcpy(old, p->base.pub.addr, sizeof(old));
    mt__peer_set_addr(&p->base, from, fromlen);
    mt_info("wg: peer %s: endpoint %s -> %s", p->base.pub.name, old, p->base.pub.addr);
}

/* The sender's address as mac2 binds it: the IP address bytes then the port. */
static size_t source_bytes(const struct sockaddr *sa, uint8_t out[18])
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *v4 = (const void *)sa;
        memcpy(out, &v4->sin_addr, 4);
        memcpy(out + 4, &v4->sin_port, 2);
        return 6;
    }
    const struct sockaddr_in6 *v6 = (const void *)sa;
    memcpy(out, &v6->sin6_addr, 16);
    memcpy(out + 16, &v6->sin6_port, 2);
    return 18;
}

/* A handshake message or a cookie reply: rare, so it leaves at once, from local (NULL or all
 * zero: the kernel's choice). A local address that went away is forgotten (*local cleared)
 * and the message leaves from the kernel's choice. */
static void send_now(struct wg *w, const struct sockaddr *to, socklen_t tolen,
                     struct in6_pktinfo *local, const uint8_t *msg, size_t len)
{
    union mt_pktinfo_cmsg ctl;
    struct iovec iov = {(void *)msg, len};
    struct msghdr mh = {
        .msg_name = (void *)to, .msg_namelen = tolen, .msg_iov = &iov, .msg_iovlen = 1};
    mh.msg_controllen = local ? mt__pktinfo_source(w->family, local, &ctl) : 0;
    mh.msg_control = mh.msg_controllen ? ctl.buf : NULL;
    ssize_t n = sendmsg(w->fd, &mh, 0);
    if (n < 0 && mh.msg_controllen && (errno == EINVAL || errno == EADDRNOTAVAIL)) {
        memset(local, 0, sizeof(*local));
        mh.msg_control = NULL;
        mh.msg_controllen = 0;
        n = sendmsg(w->fd, &mh, 0);
    }
    if (n < 0) {
        double now = ev_now(w->t->loop);
        if (now - w->send_err_logged >= LOG_EVERY) {
            char name[MT_PEER_ADDRSTRLEN];
            mt_sockaddr_str(to, name, sizeof(name));
            mt_warn("wg: send to %s failed: %s", name, strerror(errno));
            w->send_err_logged = now;
        }
    }
}

static void wipe_keys(struct wg_keys *k)
{
    mt_wg_wipe(k, sizeof(*k));
}

/* A fresh local index for p: its slot and random bits, unlike its other live indices. */
static uint32_t new_index(struct wg_peer *p)
{
    for (;;) {
        uint32_t r = 0;
        mt_wg_random(&r, sizeof(r));
        uint32_t idx = (r & ~SLOT_MASK) | p->slot;
        if ((r & ~SLOT_MASK) == 0)
            continue; /* never 0: 0 means "none" in the handshake state */
        if ((p->cur.valid && p->cur.kp.local_index == idx) ||
            (p->prev.valid && p->prev.kp.local_index == idx) ||
            (p->next.valid && p->next.kp.local_index == idx))
            continue;
        return idx;
    }
}

static struct wg_peer *peer_of_index(const struct wg *w, uint32_t idx)
{
    uint32_t slot = idx & SLOT_MASK;
    return slot < w->nslots ? w->slots[slot] : NULL;
}

static void service(struct wg_peer *p, uint64_t now);

static void initiate(struct wg_peer *p, uint64_t now)
{
    struct wg *w = wg_of(p->base.tun);
    if (!p->base.salen)
        return; /* no endpoint yet: it has to reach us first */
    uint8_t msg[MT_WG_INITIATION_LEN], ts[MT_WG_TIMESTAMP_LEN];
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    mt_wg_tai64n(ts, rt.tv_sec, rt.tv_nsec);
    if (mt_wg_noise_create_initiation(&w->id, &p->np, new_index(p), ts, msg) < 0 ||
        mt_wg_cookie_add_macs(&p->gen, msg, sizeof(msg), now) < 0) {
        mt_warn("wg: peer %s: cannot make a handshake initiation", p->base.pub.name);
        return;
    }
    send_now(w, (struct sockaddr *)&p->base.sa, p->base.salen, &p->local, msg, sizeof(msg));
    mt_wg_timers_handshake_initiated(&p->timers, now, jitter());
    mt_wg_timers_any_sent(&p->timers, now);
    mt_wg_timers_traversal(&p->timers, now);
    p->base.last_tx = ev_now(p->base.tun->loop);
    mt_debug("wg: peer %s: handshake initiation sent", p->base.pub.name);
}

static void maybe_initiate(struct wg_peer *p, uint64_t now)
{
    /* A handshake under way (or one just sent) is not repeated before REKEY_TIMEOUT. */
    if (mt_wg_timers_may_initiate(&p->timers, now))
        initiate(p, now);
}

/* Seals len bytes (already at buf + MT_WG_DATA_HEADER) under p's current keys into one slot
 * of the send batch. */
static int queue_sealed(struct wg *w, struct wg_peer *p, const uint8_t *data, size_t len,
                        uint64_t now)
{
    struct mt_tunnel *t = w->t;
    if (w->tn == TX_BATCH)
        t->ops->flush(t);
    int i = w->tn;
    uint8_t *buf = w->tbufs + (size_t)i * w->msg_cap;
    if (len)
        memcpy(buf + MT_WG_DATA_HEADER, data, len);
    size_t n = 0;
    int rc = mt_wg_data_seal(&p->cur.kp, buf, w->msg_cap, len, (size_t)t->cfg->mtu, &n);
    if (rc < 0)
        return rc; /* -EKEYEXPIRED: out of counters; -EMSGSIZE cannot happen (sized) */
    w->tn++;
    w->tiov[i].iov_base = buf;
    w->tiov[i].iov_len = n;
    w->tpeer[i] = p;
    if (len)
        mt_wg_timers_data_sent(&p->timers, now, jitter());
    mt_wg_timers_any_sent(&p->timers, now);
    mt_wg_timers_traversal(&p->timers, now);
    p->base.last_tx = ev_now(t->loop);
    return 0;
}

static bool can_send(const struct wg_peer *p, uint64_t now)
{
    return p->cur.valid && p->base.salen && !mt_wg_key_expired(&p->cur.kp, now);
}

static void send_keepalive(struct wg_peer *p, uint64_t now)
{
    struct wg *w = wg_of(p->base.tun);
    if (!can_send(p, now))
        return;
    if (queue_sealed(w, p, NULL, 0, now) == 0)
        mt__tunnel_queued(&p->base);
}

/* Sends what waited for keys; true when something left. */
static bool send_staged(struct wg_peer *p, uint64_t now)
{
    struct wg *w = wg_of(p->base.tun);
    bool sent = false;
    while (p->staged_n > 0 && can_send(p, now)) {
        int i = p->staged_head;
        queue_sealed(w, p, p->staged + (size_t)i * w->staged_cap, p->staged_len[i], now);
        p->staged_head = (i + 1) % STAGED;
        p->staged_n--;
        sent = true;
    }
    if (sent)
        mt__tunnel_queued(&p->base);
    return sent;
}

static void drop_staged(struct wg_peer *p)
{
    p->base.pub.stats.drops += (uint64_t)p->staged_n;
    p->staged_n = 0;
    p->staged_head = 0;
}

/* Keeps a packet until the handshake gives keys; the oldest goes when full (as
 * wireguard-go's staged queue). */
static void stage(struct wg *w, struct wg_peer *p, const uint8_t *data, size_t len)
{
    if (p->staged_n == STAGED) {
        p->staged_head = (p->staged_head + 1) % STAGED;
        p->staged_n--;
        p->base.pub.stats.drops++;
    }
    int i = (p->staged_head + p->staged_n) % STAGED;
    memcpy(p->staged + (size_t)i * w->staged_cap, data, len);
    p->staged_len[i] = len;
    p->staged_n++;
}

static void timer_cb(struct ev_loop *loop, ev_timer *tw, int revents)
{
    struct wg_peer *p = mt_container_of(tw, struct wg_peer, timer_w);
    p->armed_at = 0;
    service(p, now_ns());
}

/* Runs what WireGuard's timers say is due and arms the peer's timer at the next deadline. */
static void service(struct wg_peer *p, uint64_t now)
{
    struct ev_loop *loop = p->base.tun->loop;
    uint64_t next = 0;
    for (int round = 0; round < 4; round++) {
        unsigned act = mt_wg_timers_poll(&p->timers, now, &next);
        if (!act)
            break;
        if (act & MT_WG_DO_ZERO_KEYS) {
            wipe_keys(&p->cur);
            wipe_keys(&p->prev);
            wipe_keys(&p->next);
            drop_staged(p);
        }
        if (act & MT_WG_DO_GIVE_UP) {
            mt_info("wg: peer %s: no handshake after %d attempts, dropping its queued packets",
                    p->base.pub.name, (int)MT_WG_MAX_HANDSHAKE_TRIES);
            drop_staged(p);
        }
        if (act & MT_WG_DO_INITIATE)
            initiate(p, now);
        if (act & MT_WG_DO_KEEPALIVE)
            send_keepalive(p, now);
    }
    if (next == p->armed_at)
        return;
    ev_timer_stop(loop, &p->timer_w);
    p->armed_at = next;
    if (!next)
        return;
    /* A millisecond late rather than early: an early wake-up would find nothing due. */
    double after = (double)(next > now ? next - now : 0) / 1e9 + 0.001;
    ev_timer_set(&p->timer_w, after, 0.);
    ev_timer_start(loop, &p->timer_w);
}

static int wg_send(struct mt_tpeer *tp, const struct mt_vnet_hdr *vnet, const uint8_t *data,
                   size_t len)
{
    struct wg_peer *p = wg_peer(tp);
    struct wg *w = wg_of(tp->tun);
    (void)vnet; /* a WireGuard peer never takes offloaded packets */
    if (len == 0 || len > w->staged_cap)
        return -EINVAL; /* an empty data message is a keepalive, never a packet */
    uint64_t now = now_ns();
    int rc = 0;
    if (!can_send(p, now)) {
        stage(w, p, data, len);
        maybe_initiate(p, now);
    } else {
        rc = queue_sealed(w, p, data, len, now);
        if (mt_wg_rekey_on_send(&p->cur.kp, now) || (w->rekey_after_ns && p->cur.kp.initiator &&
                                                     now - p->cur.kp.birth_ns > w->rekey_after_ns))
            maybe_initiate(p, now);
    }
    service(p, now);
    return rc;
}

/* Groups the queued messages from message `from` on into w->tmsgs; returns how many. A
 * super-packet's segments are sealed into messages of one size (the last may be shorter):
 * those to one peer leave in one send with UDP_SEGMENT, and the kernel cuts them into
 * datagrams, which saves most of its per-datagram cost. */
static int group(struct wg *w, int from)
{
    int k = 0;
    for (int i = from; i < w->tn; k++) {
        struct wg_peer *p = w->tpeer[i];
        size_t seg = w->tiov[i].iov_len, total = seg;
        int j = i + 1;
        while (!w->no_gso && j < w->tn && w->tpeer[j] == p && w->tiov[j - 1].iov_len == seg &&
               w->tiov[j].iov_len <= seg && total + w->tiov[j].iov_len <= GSO_BYTES) {
            total += w->tiov[j].iov_len;
            j++;
        }
        struct msghdr *mh = &w->tmsgs[k].msg_hdr;
        memset(mh, 0, sizeof(*mh));
        memcpy(&w->tto[k], &p->base.sa, p->base.salen);
        mh->msg_name = &w->tto[k];
        mh->msg_namelen = p->base.salen;
        mh->msg_iov = &w->tiov[i];
        mh->msg_iovlen = (size_t)(j - i);
        union mt_pktinfo_cmsg pi;
        size_t c = mt__pktinfo_source(w->family, &p->local, &pi);
        memcpy(w->tctl[k].buf, pi.buf, c);
        if (j - i > 1) {
            struct cmsghdr *h = (struct cmsghdr *)(w->tctl[k].buf + c);
            uint16_t size = (uint16_t)seg;
            h->cmsg_level = SOL_UDP;
            h->cmsg_type = UDP_SEGMENT;
            h->cmsg_len = CMSG_LEN(sizeof(size));
            memcpy(CMSG_DATA(h), &size, sizeof(size));
            c += CMSG_SPACE(sizeof(size));
        }
        mh->msg_control = c ? w->tctl[k].buf : NULL;
        mh->msg_controllen = c;
        w->tfirst[k] = i;
        i = j;
    }
    return k;
}

static void wg_flush(struct mt_tunnel *t)
{
    struct wg *w = wg_of(t);
    int ng = group(w, 0), done = 0;
    while (done < ng) {
        int n = sendmmsg(w->fd, w->tmsgs + done, (unsigned)(ng - done), 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n > 0) {
            w->sent_trains += (uint64_t)n;
            done += n;
            w->sent_msgs += (uint64_t)((done < ng ? w->tfirst[done] : w->tn) - w->tfirst[done - n]);
            continue;
        }
        int e = n < 0 ? errno : EIO;
        int first = w->tfirst[done];
        struct wg_peer *p = w->tpeer[first];
        static const struct in6_pktinfo none;
        if ((e == EINVAL || e == EADDRNOTAVAIL) && memcmp(&p->local, &none, sizeof(none))) {
            /* The local address it was to leave from went away: forget it (the peer's next
             * message tells the new one) and let the kernel choose. */
            memset(&p->local, 0, sizeof(p->local));
            ng = group(w, first);
            done = 0;
            continue;
        }
        if (e != EAGAIN && w->tmsgs[done].msg_hdr.msg_iovlen > 1) {
            /* A train the kernel (or the device under it) does not take. */
            mt_warn("wg: the kernel refused a GSO send (%s): one datagram per message now",
                    strerror(e));
            w->no_gso = true;
            ng = group(w, first);
            done = 0;
            continue;
        }
        /* EAGAIN: the socket buffer is full (UDP promises nothing); otherwise the first
         * message failed alone. Either way what is counted is dropped. */
        uint64_t lost = e == EAGAIN ? (uint64_t)(w->tn - first) : 1;
        t->stats.queue_drops += lost;
        double now = ev_now(t->loop);
        if (now - w->send_err_logged >= LOG_EVERY) {
            mt_warn("wg: send failed: %s (%llu message%s dropped)", strerror(e),
                    (unsigned long long)lost, lost == 1 ? "" : "s");
            w->send_err_logged = now;
        }
        if (e == EAGAIN)
            break;
        done++;
    }
    w->tn = 0;
}

static bool wg_congested(const struct mt_tpeer *p)
{
    (void)p;
    return false; /* the socket buffer is the only queue, as for UDP */
}

/* The peer whose AllowedIPs hold a packet's inner address (dst: destination, else source). */
static struct wg_peer *route_of(const struct wg *w, struct mt_packet *pkt, bool dst)
{
    struct mt_addr a;
    if (mt_addr_of_packet(pkt, dst, &a) < 0 || (a.kind != MT_ADDR_IP4 && a.kind != MT_ADDR_IP6))
        return NULL;
    return mt_wg_allowedips_lookup(&w->routes, a.kind, a.b);
}

/* Egress: cryptokey routing, the longest AllowedIPs prefix holding the destination. */
static struct mt_tpeer *wg_route(struct mt_tunnel *t, struct mt_packet *pkt)
{
    struct wg_peer *p = route_of(wg_of(t), pkt, true);
    return p ? &p->base : NULL;
}

/* Ingress, after the decode hooks (which may have rewritten the packet): the source must
 * still route back to the sender. The first check ran before any script (handle_data). */
static bool wg_source_ok(const struct mt_tpeer *tp, const struct mt_packet *pkt)
{
    struct wg *w = wg_of(tp->tun);
    struct mt_packet view = *pkt; /* mt_addr_of_packet caches headers in the packet */
    struct wg_peer *owner = route_of(w, &view, false);
    if (owner && &owner->base == tp)
        return true;
    refuse(w, DROP_SOURCE, tp->pub.name, "after the decode hooks");
    return false;
}

static struct mt_wg_noise_peer *by_key(void *ctx, const uint8_t pub[MT_WG_KEY_LEN])
{
    struct wg *w = ctx;
    for (size_t i = 0; i < w->nslots; i++)
        if (mt_wg_equal(w->slots[i]->np.pub, pub, MT_WG_KEY_LEN))
            return &w->slots[i]->np;
    return NULL;
}

static struct mt_wg_noise_peer *by_index(void *ctx, uint32_t idx)
{
    struct wg_peer *p = peer_of_index(ctx, idx);
    return p && p->np.hs.state == MT_WG_HS_INIT_SENT && p->np.hs.local_index == idx ? &p->np : NULL;
}

/* Under load a handshake message must carry a valid mac2: without one the sender gets a
 * cookie reply and nothing else. True when the message may go on. */
static bool cookie_gate(struct wg *w, const struct sockaddr *from, const uint8_t *msg, size_t len,
                        uint64_t now)
{
    if (!mt_wg_load_under(&w->load, now))
        return true;
    uint8_t src[18];
    size_t srclen = source_bytes(from, src);
    if (mt_wg_cookie_check_mac2(&w->checker, msg, len, src, srclen, now))
        return true;
    uint8_t reply[MT_WG_COOKIE_LEN];
    if (mt_wg_cookie_create_reply(&w->checker, msg, len, src, srclen, now, reply) < 0)
        return false;
    send_now(w, from,
             from->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
             &w->rx_local, reply, sizeof(reply));
    w->cookie_replies++;
    /* One line per LOG_EVERY: a flood is what makes these, it must not flood the log too. */
    double t = ev_now(w->t->loop);
    if (t - w->cookie_logged >= LOG_EVERY) {
        char name[MT_PEER_ADDRSTRLEN];
        mt_sockaddr_str(from, name, sizeof(name));
        mt_warn("wg: under load: cookie reply to %s instead of a handshake (%llu sent so far)",
                name, (unsigned long long)w->cookie_replies);
        w->cookie_logged = t;
    }
    return false;
}

static void handle_initiation(struct wg *w, const struct sockaddr *from, socklen_t fromlen,
                              const uint8_t *msg, size_t len, uint64_t now)
{
    if (!mt_wg_cookie_check_mac1(&w->checker, msg, len)) {
        refuse_from(w, DROP_MALFORMED, from, "initiation with a bad mac1");
        return;
    }
    if (!cookie_gate(w, from, msg, len, now))
        return;
    struct mt_wg_noise_peer *np = NULL;
    int rc = mt_wg_noise_consume_initiation(&w->id, msg, len, now, by_key, w, &np);
    if (rc < 0) {
        refuse_from(w, DROP_HANDSHAKE, from,
                    rc == -ENOENT     ? "initiation from an unknown key"
                    : rc == -EALREADY ? "replayed initiation (old timestamp)"
                    : rc == -EAGAIN   ? "initiations too fast"
                                      : "initiation does not authenticate");
        return;
    }
    struct wg_peer *p = mt_container_of(np, struct wg_peer, np);
    uint8_t out[MT_WG_RESPONSE_LEN];
    struct wg_keys k;
    memset(&k, 0, sizeof(k));
    if (mt_wg_noise_create_response(np, new_index(p), out) < 0 ||
        mt_wg_cookie_add_macs(&p->gen, out, sizeof(out), now) < 0 ||
        mt_wg_noise_derive(np, now, &k.kp) < 0) {
        mt_warn("wg: peer %s: cannot answer its initiation", p->base.pub.name);
        return;
    }
    k.valid = true;
    wipe_keys(&p->next);
    p->next = k;
    mt_wg_wipe(&k, sizeof(k));
    set_endpoint(p, from, fromlen);
    p->base.last_rx = ev_now(w->t->loop);
    mt_wg_timers_any_received(&p->timers, now);
    mt_wg_timers_traversal(&p->timers, now);
    send_now(w, (struct sockaddr *)&p->base.sa, p->base.salen, &p->local, out, sizeof(out));
    mt_wg_timers_any_sent(&p->timers, now);
    mt_wg_timers_session_derived(&p->timers, now);
    mt_debug("wg: peer %s: initiation answered", p->base.pub.name);
    service(p, now);
}

static void handle_response(struct wg *w, const struct sockaddr *from, socklen_t fromlen,
                            const uint8_t *msg, size_t len, uint64_t now)
{
    if (!mt_wg_cookie_check_mac1(&w->checker, msg, len)) {
        refuse_from(w, DROP_MALFORMED, from, "response with a bad mac1");
        return;
    }
    if (!cookie_gate(w, from, msg, len, now))
        return;
    struct mt_wg_noise_peer *np = NULL;
    if (mt_wg_noise_consume_response(&w->id, msg, len, by_index, w, &np) < 0) {
        refuse_from(w, DROP_HANDSHAKE, from, "response does not authenticate");
        return;
    }
    struct wg_peer *p = mt_container_of(np, struct wg_peer, np);
    struct wg_keys k;
    memset(&k, 0, sizeof(k));
    if (mt_wg_noise_derive(np, now, &k.kp) < 0)
        return;
    k.valid = true;
    /* The initiator uses its new keys at once; the old ones still receive a while. */
    wipe_keys(&p->prev);
    p->prev = p->cur;
    p->cur = k;
    wipe_keys(&p->next);
    mt_wg_wipe(&k, sizeof(k));
    set_endpoint(p, from, fromlen);
    p->base.last_rx = ev_now(w->t->loop);
    mt_wg_timers_any_received(&p->timers, now);
    mt_wg_timers_traversal(&p->timers, now);
    mt_wg_timers_handshake_complete(&p->timers, now);
    mt_wg_timers_session_derived(&p->timers, now);
    p->base.pub.handshake_ns = now;
    mt_info("wg: peer %s: handshake complete (we initiated)", p->base.pub.name);
    /* The responder may send only once it has seen our keys in use: data, or a keepalive. */
    if (!send_staged(p, now))
        send_keepalive(p, now);
    service(p, now);
}

static void handle_cookie(struct wg *w, const struct sockaddr *from, const uint8_t *msg, size_t len,
                          uint64_t now)
{
    struct wg_peer *p = peer_of_index(w, mt_wg_get32(msg + MT_WG_OFF_INDEX));
    if (!p || mt_wg_cookie_consume_reply(&p->gen, msg, len, now) < 0) {
        refuse_from(w, DROP_MALFORMED, from, "cookie reply for nothing we sent");
        return;
    }
    mt_debug("wg: peer %s: cookie reply taken (it is under load)", p->base.pub.name);
}

/* Hands the joined segments (if any) to the device as one packet. */
static void gro_flush(struct wg *w)
{
    struct mt_gro *g = w->gro;
    if (g->len == 0)
        return;
    struct mt_tpeer *p = (struct mt_tpeer *)g->owner;
    struct mt_vnet_hdr vnet;
    unsigned segs = g->segs;
    size_t len = mt_gro_finish(g, &vnet);
    /* Counted as what arrived: the data messages, not the one packet they became. */
    w->t->stats.net_rx_packets += segs - 1;
    p->pub.stats.rx_packets += segs - 1;
    mt__tunnel_from_peer(w->t, p, g->buf, len, segs > 1 ? &vnet : NULL);
}

/* A decrypted packet whose source passed cryptokey routing: joined to the super-packet being
 * built when the device takes offloads (tun mode, no decode hook that must see each packet),
 * as the UDP transport does; else delivered as it is. */
static void deliver(struct wg *w, struct wg_peer *p, const uint8_t *ip, size_t n)
{
    struct mt_tunnel *t = w->t;
    if (!t->vnet || t->link != MT_LINK_IP || (t->hooks & MT_HOOK_DECODE)) {
        mt__tunnel_from_peer(t, &p->base, ip, n, NULL);
    } else if (mt_gro_fits(w->gro, p, ip, n)) {
        mt_gro_append(w->gro, ip, n);
    } else {
        gro_flush(w);
        if (!mt_gro_start(w->gro, p, ip, n))
            mt__tunnel_from_peer(t, &p->base, ip, n, NULL);
    }
}

static void handle_data(struct wg *w, const struct sockaddr *from, socklen_t fromlen, uint8_t *msg,
                        size_t len, uint64_t now)
{
    uint32_t idx;
    uint64_t counter;
    if (mt_wg_data_header(msg, len, &idx, &counter) < 0) {
        refuse_from(w, DROP_MALFORMED, from, "short data message");
        return;
    }
    struct wg_peer *p = peer_of_index(w, idx);
    struct wg_keys *k = NULL;
    if (p) {
        if (p->cur.valid && p->cur.kp.local_index == idx)
            k = &p->cur;
        else if (p->next.valid && p->next.kp.local_index == idx)
            k = &p->next;
        else if (p->prev.valid && p->prev.kp.local_index == idx)
            k = &p->prev;
    }
    if (!k || mt_wg_key_expired(&k->kp, now)) {
        refuse_from(w, DROP_NO_SESSION, from, "unknown or expired receiver index");
        return;
    }
    size_t pt = 0;
    int rc = mt_wg_data_open(&k->kp, msg, len, &pt);
    if (rc < 0) {
        refuse(w, DROP_DATA, p->base.pub.name,
               rc == -EALREADY ? "replayed or too old counter" : "does not authenticate");
        return;
    }
    if (k == &p->next) {
        /* The initiator uses the keys we answered with: they become ours to send with. */
        wipe_keys(&p->prev);
        p->prev = p->cur;
        p->cur = p->next;
        memset(&p->next, 0, sizeof(p->next));
        mt_wg_timers_handshake_complete(&p->timers, now);
        p->base.pub.handshake_ns = now;
        mt_info("wg: peer %s: handshake complete (it initiated)", p->base.pub.name);
        send_staged(p, now);
    }
    set_endpoint(p, from, fromlen);
    p->base.last_rx = ev_now(w->t->loop);
    mt_wg_timers_any_received(&p->timers, now);
    mt_wg_timers_traversal(&p->timers, now);
    if (pt > 0) {
        mt_wg_timers_data_received(&p->timers, now);
        if (k == &p->cur && mt_wg_rekey_on_receive(&k->kp, now))
            maybe_initiate(p, now);
    }
    service(p, now);
    if (pt == 0)
        return; /* keepalive */
    uint8_t *ip = msg + MT_WG_DATA_HEADER;
    size_t n = mt_wg_data_inner_len(ip, pt);
    if (n == 0 || n > w->staged_cap) {
        refuse(w, DROP_DATA, p->base.pub.name, "not an IP packet that fits");
        return;
    }
    /* Cryptokey routing, before any script: the inner source must route back to the
     * sender (a peer cannot use another's addresses, nor ones nobody gave it). */
    const uint8_t *src = ip[0] >> 4 == 4 ? ip + 12 : ip + 8;
    if (!mt_wg_allowedips_allowed(&w->routes, p, ip[0] >> 4 == 4 ? 4 : 6, src)) {
        p->base.pub.stats.drops++;
        refuse(w, DROP_SOURCE, p->base.pub.name, "dropped before any script");
        return;
    }
    deliver(w, p, ip, n);
}

static void handle_datagram(struct wg *w, const struct sockaddr *from, socklen_t fromlen,
                            uint8_t *msg, size_t len, uint64_t now)
{
    int type = mt_wg_msg_type(msg, len);
    switch (type) {
    case MT_WG_MSG_INITIATION:
    case MT_WG_MSG_RESPONSE:
        mt_wg_load_count(&w->load, now, LOAD_PER_SECOND);
        if (type == MT_WG_MSG_INITIATION)
            handle_initiation(w, from, fromlen, msg, len, now);
        else
            handle_response(w, from, fromlen, msg, len, now);
        break;
    case MT_WG_MSG_COOKIE:
        if (len == MT_WG_COOKIE_LEN)
            handle_cookie(w, from, msg, len, now);
        else
            refuse_from(w, DROP_MALFORMED, from, "cookie reply of the wrong size");
        break;
    case MT_WG_MSG_DATA:
        handle_data(w, from, fromlen, msg, len, now);
        break;
    default:
        refuse_from(w, DROP_MALFORMED, from, "not a WireGuard message");
    }
}

static void read_cb(struct ev_loop *loop, ev_io *io, int revents)
{
    struct wg *w = mt_container_of(io, struct wg, sock_w);
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < RX_BATCH; i++) {
            w->riov[i].iov_base = w->rbufs + (size_t)i * w->rx_cap;
            w->riov[i].iov_len = w->rx_cap;
            struct msghdr *mh = &w->rmsgs[i].msg_hdr;
            memset(mh, 0, sizeof(*mh));
            mh->msg_iov = &w->riov[i];
            mh->msg_iovlen = 1;
            mh->msg_name = &w->rfrom[i];
            mh->msg_namelen = sizeof(w->rfrom[i]);
            mh->msg_control = w->rctl[i].buf;
            mh->msg_controllen = sizeof(w->rctl[i].buf);
        }
        int n = recvmmsg(w->fd, w->rmsgs, RX_BATCH, MSG_DONTWAIT, NULL);
        if (n < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNREFUSED)
                mt_warn("wg: receive: %s", strerror(errno));
            break;
        }
        uint64_t now = now_ns(); /* one clock reading per batch */
        for (int i = 0; i < n; i++) {
            const struct msghdr *mh = &w->rmsgs[i].msg_hdr;
            if (mh->msg_flags & MSG_TRUNC) {
                /* Longer than any message for an MTU-sized packet: a liar. */
                refuse_from(w, DROP_MALFORMED, (struct sockaddr *)&w->rfrom[i],
                            "datagram too long for the MTU");
                continue;
            }
            /* With UDP_GRO the kernel may hand over a train of datagrams from one sender,
             * all of one size but the last: each is a message of its own. */
            uint8_t *buf = w->rbufs + (size_t)i * w->rx_cap;
            size_t len = w->rmsgs[i].msg_len, seg = mt__udp_gro_size(mh);
            if (!seg)
                seg = len;
            if (seg > w->msg_cap) {
                refuse_from(w, DROP_MALFORMED, (struct sockaddr *)&w->rfrom[i],
                            "datagram too long for the MTU");
                continue;
            }
            mt__pktinfo_arrival(mh, &w->rx_local);
            w->recv_trains++;
            w->recv_msgs += len > seg ? (len + seg - 1) / seg : 1;
            size_t off = 0;
            do { /* once for an empty datagram too: it is refused as malformed */
                size_t part = len - off < seg ? len - off : seg;
                handle_datagram(w, (struct sockaddr *)&w->rfrom[i], mh->msg_namelen, buf + off,
                                part, now);
                off += part;
            } while (off < len);
        }
        if (n < RX_BATCH)
            break;
    }
    gro_flush(w); /* never hold segments across a wait: they would gain latency */
}

/* One peer from the file: its keys, AllowedIPs, endpoint (resolved once, now), name. */
static int add_peer(struct wg *w, const struct mt_wg_config_peer *c, size_t slot, char *err,
                    size_t errsz)
{
    struct mt_tunnel *t = w->t;
    struct sockaddr_storage sa;
    socklen_t salen = 0;
    memset(&sa, 0, sizeof(sa));
    if (c->has_endpoint) {
        struct sockaddr_storage r;
        socklen_t rlen;
        int rc = mt__resolve(c->endpoint_host, c->endpoint_port, SOCK_DGRAM, false, &r, &rlen, err,
                             errsz);
        if (rc < 0)
            return rc;
        if (w->family == AF_INET && r.ss_family == AF_INET6) {
            snprintf(err, errsz, "peer at line %d: Endpoint %s is IPv6, the socket IPv4 only",
                     c->line, c->endpoint_host);
            return -EAFNOSUPPORT;
        }
        socket_form(w, &r, rlen, &sa, &salen);
    }
    struct mt_tpeer *tp = mt__peer_new(t, (struct sockaddr *)&sa, salen);
    if (!tp) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    struct wg_peer *p = wg_peer(tp);
    tp->salen = salen;
    if (!salen)
        snprintf(tp->pub.addr, sizeof(tp->pub.addr), "(no endpoint yet)");
    mt_wg_key_to_base64(tp->pub.key, c->pub);
    if (c->name[0])
        snprintf(tp->pub.name, sizeof(tp->pub.name), "%s", c->name);
    else
        snprintf(tp->pub.name, sizeof(tp->pub.name), "%.8s", tp->pub.key);
    p->slot = (unsigned)slot;
    w->slots[slot] = p;
    ev_timer_init(&p->timer_w, timer_cb, 1., 0.);
    p->staged = malloc(STAGED * w->staged_cap);
    if (!p->staged) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    if (mt_wg_noise_peer_init(&p->np, &w->id, c->pub, c->has_psk ? c->psk : NULL) < 0 ||
        mt_wg_cookie_gen_init(&p->gen, c->pub) < 0) {
        snprintf(err, errsz, "peer at line %d: its public key is unusable (a low-order point)",
                 c->line);
        return -EINVAL;
    }
    mt_wg_timers_init(&p->timers, c->keepalive);
    p->allowed = calloc(c->n_allowed ? c->n_allowed : 1, sizeof(*p->allowed));
    if (!p->allowed) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_allowed; i++) {
        if (mt_wg_allowedips_insert(&w->routes, &c->allowed[i], p) < 0) {
            snprintf(err, errsz, "peer at line %d: AllowedIPs: out of memory", c->line);
            return -ENOMEM;
        }
        struct mt_prefix *a = &p->allowed[i];
        a->addr.kind = c->allowed[i].family == 4 ? MT_ADDR_IP4 : MT_ADDR_IP6;
        memcpy(a->addr.b, c->allowed[i].addr, c->allowed[i].family == 4 ? 4 : 16);
        a->len = c->allowed[i].bits;
    }
    tp->pub.allowed = p->allowed;
    tp->pub.n_allowed = c->n_allowed;
    mt_info("wg: peer %s (%s) endpoint %s, %zu allowed prefix%s%s", tp->pub.name, tp->pub.key,
            tp->pub.addr, c->n_allowed, c->n_allowed == 1 ? "" : "es",
            c->keepalive ? ", persistent keepalive" : "");
    return 0;
}

static int wg_start(struct mt_tunnel *t, char *err, size_t errsz)
{
    const struct mt_wg_config *c = t->cfg->wg;
    if (!c) {
        snprintf(err, errsz, "--wg: no configuration");
        return -EINVAL;
    }
    if (c->n_peers > SLOT_MASK + 1) {
        snprintf(err, errsz, "--wg: at most %u peers", SLOT_MASK + 1);
        return -E2BIG;
    }
    struct wg *w = calloc(1, sizeof(*w));
    if (!w) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    t->tr = w;
    w->t = t;
    w->fd = -1;
    mt_wg_allowedips_init(&w->routes);
    mt_wg_load_init(&w->load);
    /* Test hook, read only by tests (docs/architecture.md): a shorter REKEY_AFTER_TIME, in
     * seconds, so that a test sees an initiator rekey mid-stream. */
    const char *rekey = getenv("MOONTUN_WG_REKEY_AFTER_TIME");
    if (rekey && *rekey) {
        char *end;
        unsigned long s = strtoul(rekey, &end, 10);
        if (*end || s == 0 || s > 120) {
            snprintf(err, errsz, "MOONTUN_WG_REKEY_AFTER_TIME: 1 to 120 seconds, not '%s'", rekey);
            return -EINVAL;
        }
        w->rekey_after_ns = (uint64_t)s * MT_WG_SEC;
        mt_warn("wg: test hook: REKEY_AFTER_TIME is %lu s (MOONTUN_WG_REKEY_AFTER_TIME)", s);
    }
    /* Room for the largest packet the tunnel hands us or accepts, padded, with its header
     * and tag; a datagram longer than this is truncated and refused. */
    w->staged_cap = t->frame_max;
    w->msg_cap = MT_WG_DATA_HEADER + t->frame_max + MT_WG_PADDING + MT_WG_TAG_LEN;
    w->rx_cap = w->msg_cap;
    w->rbufs = NULL; /* once the socket tells whether it takes UDP_GRO */
    w->tbufs = malloc(TX_BATCH * w->msg_cap);
    w->slots = calloc(c->n_peers ? c->n_peers : 1, sizeof(*w->slots));
    w->gro = calloc(1, sizeof(*w->gro));
    if (w->gro)
        w->gro->buf = malloc(MT_MAX_PACKET);
    if (!w->tbufs || !w->slots || !w->gro || !w->gro->buf) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    int rc = mt_wg_crypto_init();
    if (rc == 0)
        rc = mt_wg_identity_init(&w->id, c->priv);
    if (rc == 0)
        rc = mt_wg_cookie_checker_init(&w->checker, w->id.pub);
    if (rc < 0) {
        snprintf(err, errsz, "--wg: the crypto library refused our keys: %s", strerror(-rc));
        return rc;
    }
    int fd = mt__bind_server(t, SOCK_DGRAM, err, errsz);
    if (fd < 0)
        return fd;
    w->fd = fd;
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) < 0) {
        snprintf(err, errsz, "getsockname: %s", strerror(errno));
        return -errno;
    }
    w->family = ss.ss_family;
    /* As a server's: every end of WireGuard answers (and the arrival address is wanted). */
    rc = mt__udp_socket_options(fd, w->family, t->cfg->outer_df, true);
    if (rc < 0)
        mt_warn("wg: socket options: %s", strerror(-rc));
    /* Trains of datagrams in one receive (the sender's GSO kept whole, or the NIC's GRO):
     * then a receive buffer holds 64 KiB. */
    int one = 1;
    if (setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one)) == 0 && w->rx_cap < MT_MAX_PACKET + 1)
        w->rx_cap = MT_MAX_PACKET + 1;
    w->rbufs = malloc(RX_BATCH * w->rx_cap);
    if (!w->rbufs) {
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    for (size_t i = 0; i < c->n_peers; i++) {
        rc = add_peer(w, &c->peers[i], i, err, errsz);
        if (rc < 0)
            return rc;
        w->nslots = i + 1;
    }
    char pub[MT_WG_KEY_B64_LEN + 1], where[MT_PEER_ADDRSTRLEN];
    mt_wg_key_to_base64(pub, w->id.pub);
    mt_sockaddr_str((struct sockaddr *)&ss, where, sizeof(where));
    mt_info("wg: public key %s, listening on %s, %zu peer%s", pub, where, c->n_peers,
            c->n_peers == 1 ? "" : "s");
    ev_io_init(&w->sock_w, read_cb, fd, EV_READ);
    ev_io_start(t->loop, &w->sock_w);
    /* A peer with a persistent keepalive is reached at once, as wg(8) does on "up". */
    uint64_t now = now_ns();
    for (size_t i = 0; i < w->nslots; i++)
        if (w->slots[i]->timers.persistent_ns && w->slots[i]->base.salen) {
            initiate(w->slots[i], now);
            service(w->slots[i], now);
        }
    return 0;
}

static void wg_peer_release(struct mt_tpeer *tp)
{
    struct wg_peer *p = wg_peer(tp);
    struct wg *w = wg_of(tp->tun);
    ev_timer_stop(tp->tun->loop, &p->timer_w);
    mt_wg_noise_peer_wipe(&p->np);
    wipe_keys(&p->cur);
    wipe_keys(&p->prev);
    wipe_keys(&p->next);
    if (p->staged)
        mt_wg_wipe(p->staged, STAGED * w->staged_cap); /* plaintext */
    free(p->staged);
    p->base.pub.allowed = NULL;
    p->base.pub.n_allowed = 0;
    free(p->allowed);
    mt_wg_allowedips_remove_peer(&w->routes, p);
    if (p->slot < w->nslots && w->slots[p->slot] == p)
        w->slots[p->slot] = NULL;
}

static void wg_stop(struct mt_tunnel *t)
{
    struct wg *w = wg_of(t);
    if (!w)
        return;
    if (w->fd >= 0 && w->tbufs)
        wg_flush(t);
    mt_info("wg: refused: %llu malformed, %llu handshakes, %llu data, %llu sources, %llu for no "
            "session; %llu cookie replies sent",
            (unsigned long long)w->drops[DROP_MALFORMED],
            (unsigned long long)w->drops[DROP_HANDSHAKE], (unsigned long long)w->drops[DROP_DATA],
            (unsigned long long)w->drops[DROP_SOURCE],
            (unsigned long long)w->drops[DROP_NO_SESSION], (unsigned long long)w->cookie_replies);
    mt_info("wg: sent %llu data messages in %llu sends%s; received %llu messages in %llu "
            "datagrams (%s)",
            (unsigned long long)w->sent_msgs, (unsigned long long)w->sent_trains,
            w->no_gso ? " (no GSO: the kernel refused it)" : " (GSO trains)",
            (unsigned long long)w->recv_msgs, (unsigned long long)w->recv_trains,
            w->rx_cap > w->msg_cap ? "UDP_GRO trains" : "no UDP_GRO");
    /* The peers go while the state their release needs is still here. */
    while (t->peers)
        mt__peer_free(t->peers, "shutting down");
    if (w->fd >= 0) {
        ev_io_stop(t->loop, &w->sock_w);
        close(w->fd);
    }
    mt_wg_allowedips_free(&w->routes);
    mt_wg_wipe(&w->id, sizeof(w->id));
    mt_wg_wipe(&w->checker, sizeof(w->checker));
    if (w->rbufs)
        mt_wg_wipe(w->rbufs, RX_BATCH * w->rx_cap);
    if (w->tbufs)
        mt_wg_wipe(w->tbufs, TX_BATCH * w->msg_cap);
    if (w->gro && w->gro->buf)
        mt_wg_wipe(w->gro->buf, MT_MAX_PACKET); /* plaintext */
    if (w->gro)
        free(w->gro->buf);
    free(w->gro);
    free(w->rbufs);
    free(w->tbufs);
    free(w->slots);
    free(w);
    t->tr = NULL;
}

const struct mt_transport_ops mt__wg_transport = {
    .name = "wg",
    .peer_size = sizeof(struct wg_peer),
    .start = wg_start,
    .send = wg_send,
    .flush = wg_flush,
    .congested = wg_congested,
    .peer_release = wg_peer_release,
    .source_ok = wg_source_ok,
    .route = wg_route,
    .stop = wg_stop,
};
