/* The live peers of a tunnel: creation (with --allow and --max-peers), lookup by outer
 * address, and removal, which also forgets the peer's learned routes and tells the scripts. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moontun/log.h"
#include "tunnel.h"

void mt__sockaddr_str(const struct sockaddr *sa, char *buf, size_t bufsz)
{
    char host[INET6_ADDRSTRLEN] = "?";
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
        snprintf(buf, bufsz, "%s:%u", host, ntohs(sin->sin_port));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        /* A v4-mapped address (dual-stack socket) reads better as plain IPv4. */
        if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
            inet_ntop(AF_INET, &sin6->sin6_addr.s6_addr[12], host, sizeof(host));
            snprintf(buf, bufsz, "%s:%u", host, ntohs(sin6->sin6_port));
        } else {
            inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
            snprintf(buf, bufsz, "[%s]:%u", host, ntohs(sin6->sin6_port));
        }
    } else {
        snprintf(buf, bufsz, "?");
    }
}

/* The outer source address as an mt_addr, unmapping v4-mapped IPv6 so that --allow
 * 10.0.0.0/8 matches a peer that reached a dual-stack socket. */
static void sockaddr_to_addr(const struct sockaddr *sa, struct mt_addr *a)
{
    memset(a, 0, sizeof(*a));
    if (sa->sa_family == AF_INET) {
        a->kind = MT_ADDR_IP4;
        memcpy(a->b, &((const struct sockaddr_in *)sa)->sin_addr, 4);
    } else if (sa->sa_family == AF_INET6) {
        const struct in6_addr *in6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(in6)) {
            a->kind = MT_ADDR_IP4;
            memcpy(a->b, &in6->s6_addr[12], 4);
        } else {
            a->kind = MT_ADDR_IP6;
            memcpy(a->b, in6, 16);
        }
    }
}

/* A refused UDP sender may send thousands of datagrams: one log line per second at most. */
static bool refusal_log_ok(struct mt_tunnel *t)
{
    double now = ev_now(t->loop);
    if (now - t->refusal_logged < 1.0) {
        t->refusals_suppressed++;
        return false;
    }
    if (t->refusals_suppressed)
        mt_warn("%llu more refusals not logged", (unsigned long long)t->refusals_suppressed);
    t->refusal_logged = now;
    t->refusals_suppressed = 0;
    return true;
}

bool mt__peer_admit(struct mt_tunnel *t, const struct sockaddr *sa)
{
    char name[MT_PEER_ADDRSTRLEN];
    if (t->cfg->nallow > 0) {
        struct mt_addr a;
        sockaddr_to_addr(sa, &a);
        bool ok = false;
        for (int i = 0; i < t->cfg->nallow && !ok; i++)
            ok = mt_prefix_contains(&t->cfg->allow[i], &a);
        if (!ok) {
            t->stats.peers_refused++;
            if (refusal_log_ok(t)) {
                mt__sockaddr_str(sa, name, sizeof(name));
                mt_warn("peer %s refused: not in --allow", name);
            }
            return false;
        }
    }
    if (t->npeers >= t->cfg->max_peers) {
        t->stats.peers_refused++;
        if (refusal_log_ok(t)) {
            mt__sockaddr_str(sa, name, sizeof(name));
            mt_warn("peer %s refused: --max-peers %d reached", name, t->cfg->max_peers);
        }
        return false;
    }
    return true;
}

struct mt_tpeer *mt__peer_new(struct mt_tunnel *t, const struct sockaddr *sa, socklen_t salen)
{
    struct mt_tpeer *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->tun = t;
    p->fd = -1;
    if (salen > sizeof(p->sa))
        salen = sizeof(p->sa);
    memcpy(&p->sa, sa, salen);
    p->salen = salen;
    mt__sockaddr_str(sa, p->pub.addr, sizeof(p->pub.addr));
    snprintf(p->pub.name, sizeof(p->pub.name), "%s", p->pub.addr);
    p->pub.id = ++t->next_peer_id;
    p->pub.up = true;
    p->last_rx = p->last_tx = ev_now(t->loop);
    p->next = t->peers;
    t->peers = p;
    t->npeers++;
    t->stats.peers_up++;
    return p;
}

void mt__peer_free(struct mt_tpeer *p, const char *reason)
{
    struct mt_tunnel *t = p->tun;
    for (struct mt_tpeer **pp = &t->peers; *pp; pp = &(*pp)->next) {
        if (*pp == p) {
            *pp = p->next;
            break;
        }
    }
    t->npeers--;
    t->stats.peers_down++;
    mt_info("peer %s down: %s (rx %llu packets, tx %llu packets, %llu dropped)", p->pub.addr,
            reason, (unsigned long long)p->pub.stats.rx_packets,
            (unsigned long long)p->pub.stats.tx_packets, (unsigned long long)p->pub.stats.drops);
    p->pub.up = false;
    mt_route_forget(&t->routes, p);
    if (t->scripts)
        mt_scripts_peer_gone(t->scripts, &p->pub);
    free(p->rxbuf);
    free(p->txbuf);
    free(p);
    /* A stalled peer may have been the reason the device was paused. */
    mt__tunnel_update_pressure(t);
}

static bool sockaddr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
    if (a->sa_family != b->sa_family)
        return false;
    if (a->sa_family == AF_INET) {
        const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
        return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->sa_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)) == 0;
    }
    return false;
}

struct mt_tpeer *mt__peer_by_sockaddr(struct mt_tunnel *t, const struct sockaddr *sa,
                                      socklen_t salen)
{
    (void)salen;
    for (struct mt_tpeer *p = t->peers; p; p = p->next)
        if (sockaddr_equal((const struct sockaddr *)&p->sa, sa))
            return p;
    return NULL;
}
