/* A flow table: a fixed number of flows keyed by a packet's 5-tuple (or its source or
 * destination address), found from either direction, each with a deadline, kept in an LRU
 * list. One allocation at creation (mt_flows_size bytes, placed by the caller); nothing is
 * allocated per packet or per flow. It never calls back: removal is the caller's (the Lua
 * binding, lua/lflows.c, runs the scripts' expiry callbacks around it). Times are seconds of
 * whatever clock the caller uses (mt.now() in the binding). */
#ifndef MOONTUN_FLOWS_H
#define MOONTUN_FLOWS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/packet.h"

#define MT_FLOWS_MAX  (1u << 24) /* at most this many flows in one table */
#define MT_FLOW_NONE  UINT32_MAX /* "no flow" in the index links */
#define MT_FLOWS_STEP 65536 /* slots an expiry sweep looks at per call (mt_flows_next_expired) */

/* What identifies a flow. Addresses are IPv4 (in the first 4 bytes, the rest zero) or IPv6;
 * ports are in host order, the ICMP/ICMPv6 echo id stands for both ports, 0 when there is no
 * transport header (another protocol, a fragment after the first). Compared as raw bytes: the
 * padding is always zero. */
struct mt_flow_key {
    uint8_t src[16], dst[16];
    uint16_t sport, dport;
    uint8_t proto; /* IP protocol number (ICMPv6: 58) */
    uint8_t ver;   /* 4 or 6 */
    uint8_t pad[2];
};

enum mt_flows_by {
    MT_FLOWS_BY_FLOW = 0, /* the 5-tuple, both directions */
    MT_FLOWS_BY_SRC = 1,  /* the source address only (per-host state: rate limits) */
    MT_FLOWS_BY_DST = 2,  /* the destination address only */
};

struct mt_flow {
    struct mt_flow_key key; /* in the direction of the packet that inserted it */
    uint32_t hnext;         /* next in its hash chain */
    uint32_t prev, next;    /* LRU list: head most recently used; free list: next */
    uint32_t gen;           /* bumped when the slot is freed: stale handles see the change */
    bool used;
    uint8_t side;                  /* enum mt_dir of the packet that inserted it (for the caller) */
    float timeout;                 /* idle seconds it lives after each use */
    double deadline;               /* gone after this time */
    double first, last;            /* inserted, last looked up or inserted */
    uint64_t packets[2], bytes[2]; /* [0] the key's direction, [1] the reply direction */
};

struct mt_flows {
    uint32_t max, count, nbuckets; /* nbuckets a power of two */
    uint32_t head, tail;           /* LRU ends */
    uint32_t free;                 /* freed slots, linked through next */
    uint32_t fresh;                /* slots from here on were never used (nor initialised) */
    uint32_t sweep;                /* where the expiry sweep goes on (MT_FLOW_NONE: the tail) */
    enum mt_flows_by by;
    double timeout; /* default idle timeout of a new flow */
    uint64_t seed;  /* keys the hash: chains a peer cannot aim at without knowing it */
    uint64_t evictions, expirations;
    uint32_t *buckets;     /* nbuckets chain heads, inside the same block */
    struct mt_flow *flows; /* max slots */
};

/* Bytes mt_flows_init needs for a table of max flows (max 1..MT_FLOWS_MAX), 0 when too many. */
size_t mt_flows_size(uint32_t max);
/* Lays out a table in mem (mt_flows_size(max) bytes, aligned for a double). seed 0 picks a
 * random one. */
struct mt_flows *mt_flows_init(void *mem, uint32_t max, double timeout, enum mt_flows_by by,
                               uint64_t seed);

/* The packet's key (by the table's `by`), from the headers the packet carries; false when it
 * has no usable IP header. */
bool mt_flow_key_of(enum mt_flows_by by, struct mt_packet *pkt, struct mt_flow_key *k);

/* The live or expired flow with key k in either direction (*reply set when k is the reverse of
 * the stored key), or NULL. Looks only: the caller decides what an expired flow is. */
struct mt_flow *mt_flows_find(struct mt_flows *ft, const struct mt_flow_key *k, bool *reply);
/* Counts a packet of len bytes on f in its direction, moves it to the LRU head and pushes its
 * deadline to now + its timeout. */
void mt_flows_touch(struct mt_flows *ft, struct mt_flow *f, bool reply, size_t len, double now);
/* Sets f's timeout and deadline (now + timeout). */
void mt_flows_set_timeout(struct mt_flow *f, double timeout, double now);

/* A new flow for k (which must not be in the table) with the default timeout, or NULL when
 * every slot is in use: then mt_flows_victim names the flow to remove first. */
struct mt_flow *mt_flows_insert(struct mt_flows *ft, const struct mt_flow_key *k, double now);
/* The least recently used flow, or NULL when the table is empty. */
struct mt_flow *mt_flows_victim(struct mt_flows *ft);
/* Takes f out of the index and the LRU list; its slot stays readable (for an expiry callback)
 * until mt_flows_release. */
void mt_flows_unlink(struct mt_flows *ft, struct mt_flow *f);
/* Frees an unlinked flow's slot (its gen changes). */
void mt_flows_release(struct mt_flows *ft, struct mt_flow *f);

/* The next flow past its deadline at now, walking the LRU list from the least recently used
 * end (from where the last call stopped, when ft->sweep still names a flow; a sweep starts by
 * setting it to MT_FLOW_NONE), counting each flow looked at off *budget; NULL when the walk
 * reached the head or the budget. Flows beyond the budget (recently used, but with a shorter
 * timeout than older ones) are found by a later sweep or end when a lookup meets them. */
struct mt_flow *mt_flows_next_expired(struct mt_flows *ft, double now, uint32_t *budget);

static inline uint32_t mt_flows_index(const struct mt_flows *ft, const struct mt_flow *f)
{
    return (uint32_t)(f - ft->flows);
}

#endif
