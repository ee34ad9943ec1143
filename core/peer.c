/* The live peers of a tunnel: creation (with --allow and --max-peers), lookup by outer
 * address and by UDP session identity (keyed hashes, so thousands of peers cost one bucket
 * per datagram), moving to a new address, and removal, which also forgets the peer's learned
 * routes and tells the scripts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "moontun/log.h"
#include "tunnel.h"
#include "util.h"

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

bool mt__peer_allowed(const struct mt_tunnel *t, const struct sockaddr *sa)
{
    if (t->cfg->nallow == 0)
        return true;
    struct mt_addr a;
    mt_addr_from_sockaddr(sa, &a);
    for (int i = 0; i < t->cfg->nallow; i++)
        if (mt_prefix_contains(&t->cfg->allow[i], &a))
            return true;
    return false;
}

bool mt__peer_admit(struct mt_tunnel *t, const struct sockaddr *sa)
{
    char name[MT_PEER_ADDRSTRLEN];
    if (!mt__peer_allowed(t, sa)) {
        t->stats.peers_refused++;
        if (refusal_log_ok(t)) {
            mt_sockaddr_str(sa, name, sizeof(name));
            mt_warn("peer %s refused: not in --allow", name);
        }
        return false;
    }
    if (t->npeers >= t->cfg->max_peers) {
        t->stats.peers_refused++;
        if (refusal_log_ok(t)) {
            mt_sockaddr_str(sa, name, sizeof(name));
            mt_warn("peer %s refused: --max-peers %d reached", name, t->cfg->max_peers);
        }
        return false;
    }
    return true;
}

/* Keyed by a per-process secret, so that nobody can choose outer ports that all land in one
 * bucket and turn lookups back into a linear scan. */
static uint64_t hash_seed;

static size_t sockaddr_hash(const struct sockaddr *sa, size_t mask)
{
    uint64_t h = mt_mix64(hash_seed ^ sa->sa_family);
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const void *)sa;
        h = mt_mix64(h ^ ((uint64_t)sin->sin_port << 32 | sin->sin_addr.s_addr));
    } else if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *sin6 = (const void *)sa;
        uint64_t lo, hi;
        memcpy(&lo, sin6->sin6_addr.s6_addr, 8);
        memcpy(&hi, sin6->sin6_addr.s6_addr + 8, 8);
        h = mt_mix64(h ^ lo);
        h = mt_mix64(h ^ hi ^ sin6->sin6_port);
    }
    return (size_t)h & mask;
}

static size_t sid_hash(uint64_t sid, size_t mask)
{
    return (size_t)mt_mix64(hash_seed ^ sid) & mask;
}

/* The buckets, allocated with the first peer (twice --max-peers, so chains stay about half a
 * peer long) and freed with the last: never on the data path. */
static bool hash_ready(struct mt_tunnel *t)
{
    if (t->peer_by_addr)
        return true;
    if (hash_seed == 0) {
        uint64_t s = 0;
        if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
            s = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
        hash_seed = s | 1;
    }
    size_t n = 16;
    while (n < 2 * (size_t)(t->cfg->max_peers > 0 ? t->cfg->max_peers : 1))
        n *= 2;
    t->peer_by_addr = calloc(n, sizeof(*t->peer_by_addr));
    t->peer_by_sid = calloc(n, sizeof(*t->peer_by_sid));
    if (!t->peer_by_addr || !t->peer_by_sid) {
        free(t->peer_by_addr);
        free(t->peer_by_sid);
        t->peer_by_addr = t->peer_by_sid = NULL;
        return false;
    }
    t->peer_hmask = n - 1;
    return true;
}

static void addr_link(struct mt_tpeer *p)
{
    struct mt_tunnel *t = p->tun;
    struct mt_tpeer **b = &t->peer_by_addr[sockaddr_hash((struct sockaddr *)&p->sa, t->peer_hmask)];
    p->hnext = *b;
    *b = p;
}

static void addr_unlink(struct mt_tpeer *p)
{
    struct mt_tunnel *t = p->tun;
    struct mt_tpeer **pp =
        &t->peer_by_addr[sockaddr_hash((struct sockaddr *)&p->sa, t->peer_hmask)];
    for (; *pp; pp = &(*pp)->hnext) {
        if (*pp == p) {
            *pp = p->hnext;
            break;
        }
    }
    p->hnext = NULL;
}

static void sid_unlink(struct mt_tpeer *p)
{
    struct mt_tunnel *t = p->tun;
    if (!p->sid)
        return;
    for (struct mt_tpeer **pp = &t->peer_by_sid[sid_hash(p->sid, t->peer_hmask)]; *pp;
         pp = &(*pp)->snext) {
        if (*pp == p) {
            *pp = p->snext;
            break;
        }
    }
    p->snext = NULL;
}

struct mt_tpeer *mt__peer_new(struct mt_tunnel *t, const struct sockaddr *sa, socklen_t salen)
{
    if (!hash_ready(t))
        return NULL;
    /* The transport's peer struct, which holds this generic part (transport.h). */
    struct mt_tpeer *p = calloc(1, t->ops->peer_size);
    if (!p) {
        if (t->npeers == 0) { /* the buckets live only while some peer does */
            free(t->peer_by_addr);
            free(t->peer_by_sid);
            t->peer_by_addr = t->peer_by_sid = NULL;
        }
        return NULL;
    }
    p->tun = t;
    if (salen > sizeof(p->sa))
        salen = sizeof(p->sa);
    memcpy(&p->sa, sa, salen);
    p->salen = salen;
    mt_sockaddr_str(sa, p->pub.addr, sizeof(p->pub.addr));
    snprintf(p->pub.name, sizeof(p->pub.name), "%s", p->pub.addr);
    p->pub.id = ++t->next_peer_id;
    p->pub.up = true;
    p->last_rx = p->last_tx = p->since = ev_now(t->loop);
    p->next = t->peers;
    t->peers = p;
    addr_link(p);
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
    addr_unlink(p);
    sid_unlink(p);
    t->npeers--;
    t->stats.peers_down++;
    mt_info("peer %s down: %s (rx %llu packets, tx %llu packets, %llu dropped)",
            mt_peer_label(&p->pub), reason, (unsigned long long)p->pub.stats.rx_packets,
            (unsigned long long)p->pub.stats.tx_packets, (unsigned long long)p->pub.stats.drops);
    p->pub.up = false;
    mt_route_forget(&t->routes, p);
    if (t->scripts)
        mt_scripts_peer_gone(t->scripts, &p->pub);
    if (t->ops->peer_release)
        t->ops->peer_release(p);
    free(p);
    if (t->npeers == 0) {
        free(t->peer_by_addr);
        free(t->peer_by_sid);
        t->peer_by_addr = t->peer_by_sid = NULL;
    }
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
    if (!t->peer_by_addr)
        return NULL;
    for (struct mt_tpeer *p = t->peer_by_addr[sockaddr_hash(sa, t->peer_hmask)]; p; p = p->hnext)
        if (sockaddr_equal((const struct sockaddr *)&p->sa, sa))
            return p;
    return NULL;
}

struct mt_tpeer *mt__peer_by_sid(struct mt_tunnel *t, uint64_t sid)
{
    if (!t->peer_by_sid || !sid)
        return NULL;
    for (struct mt_tpeer *p = t->peer_by_sid[sid_hash(sid, t->peer_hmask)]; p; p = p->snext)
        if (p->sid == sid)
            return p;
    return NULL;
}

void mt__peer_set_sid(struct mt_tpeer *p, uint64_t sid)
{
    struct mt_tunnel *t = p->tun;
    sid_unlink(p);
    p->sid = sid;
    if (!sid)
        return;
    struct mt_tpeer **b = &t->peer_by_sid[sid_hash(sid, t->peer_hmask)];
    p->snext = *b;
    *b = p;
}

void mt__peer_set_addr(struct mt_tpeer *p, const struct sockaddr *sa, socklen_t salen)
{
    addr_unlink(p);
    if (salen > sizeof(p->sa))
        salen = sizeof(p->sa);
    bool renamed = strcmp(p->pub.name, p->pub.addr) != 0; /* a script's name stays */
    memset(&p->sa, 0, sizeof(p->sa));
    memcpy(&p->sa, sa, salen);
    p->salen = salen;
    mt_sockaddr_str(sa, p->pub.addr, sizeof(p->pub.addr));
    if (!renamed)
        snprintf(p->pub.name, sizeof(p->pub.name), "%s", p->pub.addr);
    addr_link(p);
}

const char *mt_peer_label(const struct mt_peer *p)
{
    static char buf[2][sizeof p->name + MT_PEER_ADDRSTRLEN + 4];
    static int k;
    if (p->name[0] == '\0' || strcmp(p->name, p->addr) == 0)
        return p->addr;
    k ^= 1; /* two in one log line stay apart */
    snprintf(buf[k], sizeof buf[k], "%s (%s)", p->name, p->addr);
    return buf[k];
}
