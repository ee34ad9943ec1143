/* The learning table: which peer owns an inner address (IPv4, IPv6 or, in tap mode, a MAC),
 * learned from the source addresses of what each peer sends, like a switch's MAC table or
 * OpenVPN's learned routes. Fixed size, allocated once; it holds its whole capacity, and only
 * when full is the stalest entry near the new one's slot evicted, so a peer spraying spoofed
 * sources cannot grow it. */
#ifndef MOONTUN_ROUTE_H
#define MOONTUN_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/addr.h"
#include "moontun/packet.h"

/* Extracts the source or destination address that routing uses: the IP address in tun mode,
 * the MAC in tap mode. Returns 0, or -EINVAL when the packet has none. */
int mt_addr_from_packet(const uint8_t *p, size_t len, enum mt_link link, bool dst,
                        struct mt_addr *out);
/* The same for a packet, from the headers it carries (parsed at most once). */
int mt_addr_of_packet(struct mt_packet *pkt, bool dst, struct mt_addr *out);

struct mt_route_entry {
    struct mt_addr addr;
    void *owner; /* the peer; NULL marks a free slot */
    double seen; /* when last learned (monotonic seconds) */
};

struct mt_route_table {
    struct mt_route_entry *slots; /* private */
    size_t nslots;                /* ro: a power of two */
    size_t capacity;              /* ro: addresses held before any is evicted (nslots / 2) */
    size_t used;                  /* ro */
};

/* Allocates the table (at start-up, never per packet) for at least capacity addresses.
 * Returns 0 or -ENOMEM. */
int mt_route_init(struct mt_route_table *t, size_t capacity);
void mt_route_free(struct mt_route_table *t);
/* Records that owner sent from addr. Returns 1 when this is new or moved, 0 when refreshed. */
int mt_route_learn(struct mt_route_table *t, const struct mt_addr *addr, void *owner, double now);
/* The owner of addr, or NULL. */
void *mt_route_lookup(const struct mt_route_table *t, const struct mt_addr *addr);
/* Forgets every address owned by owner (the peer went away). */
void mt_route_forget(struct mt_route_table *t, void *owner);
/* Gives every address owned by from to to (a peer that moved to a new outer address).
 * A walk of the whole table: for rare events, never per packet. */
void mt_route_move(struct mt_route_table *t, void *from, void *to);
/* Marks every address owned by owner as seen now (a keepalive: the peer is alive, so its
 * routes are not the stalest). A walk of the whole table, once per keepalive interval. */
void mt_route_touch(struct mt_route_table *t, void *owner, double now);

/* Script routes (mt.route): prefixes a script sends to a peer, by the peer's id or by name
 * (a name is looked up per packet, so a route may name a client before it connects). The
 * core asks them before the learning table, on the egress and client-to-client paths. A
 * small fixed array, longest prefix first: scripts set a handful, never per packet. */
#define MT_SROUTE_MAX 64

struct mt_sroute {
    uint8_t kind, len; /* the prefix: MT_ADDR_IP4/IP6 and its length */
    uint8_t b[16];     /* its address, host bits cleared */
    uint32_t peer_id;  /* the peer, or 0 for by name */
    char name[64];
};

struct mt_sroutes {
    struct mt_sroute r[MT_SROUTE_MAX]; /* sorted: longest prefix first */
    int n;
};

/* Sets (or replaces) the route for kind/b/len. Returns 0, -EINVAL (a bad prefix) or -ENOSPC. */
int mt_sroute_set(struct mt_sroutes *t, uint8_t kind, const uint8_t *b, uint8_t len,
                  uint32_t peer_id, const char *name);
/* Removes it. Returns 0 or -ENOENT. */
int mt_sroute_del(struct mt_sroutes *t, uint8_t kind, const uint8_t *b, uint8_t len);
/* The longest route containing a, or NULL. */
const struct mt_sroute *mt_sroute_lookup(const struct mt_sroutes *t, const struct mt_addr *a);

#endif
