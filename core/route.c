/* Routing addresses and the learning table that maps an inner address to the peer that last
 * sent from it. The table is open addressing with linear probing at most half full (a keyed
 * hash keeps chains short), backward-shift deletion (no tombstones to pile up), and, once it
 * holds its capacity, eviction of the stalest of the MT_ROUTE_PROBE entries nearest the new
 * one's home, so its size is fixed and nothing is evicted before it is full. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "moontun/proto.h"
#include "moontun/route.h"
#include "util.h"

#define MT_ROUTE_PROBE     16 /* entries weighed when a full table must evict one */
#define MT_ROUTE_MIN_SLOTS 16

/* The routing address from bytes whose headers h describes (NULL: tap, none needed). */
static int addr_of(const uint8_t *p, size_t len, enum mt_link link, const struct mt_hdrs *h,
                   bool dst, struct mt_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (link == MT_LINK_ETH) {
        if (len < MT_ETH_HLEN)
            return -EINVAL;
        out->kind = MT_ADDR_MAC;
        memcpy(out->b, dst ? p : p + 6, 6);
        return 0;
    }
    /* The parser sets l3 only when the fixed header is whole, so the addresses are there. */
    if (h->l3 < 0)
        return -EINVAL;
    if (h->ipver == 4) {
        out->kind = MT_ADDR_IP4;
        memcpy(out->b, p + h->l3 + (dst ? 16 : 12), 4);
    } else {
        out->kind = MT_ADDR_IP6;
        memcpy(out->b, p + h->l3 + (dst ? 24 : 8), 16);
    }
    return 0;
}

int mt_addr_from_packet(const uint8_t *p, size_t len, enum mt_link link, bool dst,
                        struct mt_addr *out)
{
    struct mt_hdrs h;
    if (link != MT_LINK_ETH)
        mt_proto_parse(p, len, link, &h);
    return addr_of(p, len, link, &h, dst, out);
}

int mt_addr_of_packet(struct mt_packet *pkt, bool dst, struct mt_addr *out)
{
    const struct mt_hdrs *h = pkt->link == MT_LINK_ETH ? NULL : mt_packet_hdrs(pkt);
    return addr_of(pkt->data, pkt->len, pkt->link, h, dst, out);
}

/* The hash is keyed by a per-process secret so that a peer cannot pick sources that all land
 * in one cluster from outside (which would make lookups walk it). */
static uint64_t route_seed;

static size_t addr_hash(const struct mt_addr *a, size_t mask)
{
    uint64_t lo, hi;
    memcpy(&lo, a->b, 8);
    memcpy(&hi, a->b + 8, 8);
    uint64_t h = mt_mix64(route_seed ^ a->kind);
    h = mt_mix64(h ^ lo);
    h = mt_mix64(h ^ hi);
    return (size_t)h & mask;
}

static bool addr_eq(const struct mt_addr *x, const struct mt_addr *y)
{
    return x->kind == y->kind && memcmp(x->b, y->b, sizeof(x->b)) == 0;
}

int mt_route_init(struct mt_route_table *t, size_t capacity)
{
    memset(t, 0, sizeof(*t));
    if (route_seed == 0) {
        uint64_t s = 0;
        if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != (ssize_t)sizeof(s))
            s = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)t;
        route_seed = s | 1; /* never 0, so we seed once */
    }
    size_t n = MT_ROUTE_MIN_SLOTS;
    /* Subtract form: 2 * capacity could wrap for an absurd capacity. */
    while (n / 2 < capacity) {
        if (n > SIZE_MAX / 2 / sizeof(*t->slots))
            return -ENOMEM;
        n *= 2;
    }
    t->slots = calloc(n, sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    t->nslots = n;
    t->capacity = n / 2; /* at least what was asked; half full keeps every chain short */
    return 0;
}

void mt_route_free(struct mt_route_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->nslots = 0;
    t->capacity = 0;
    t->used = 0;
}

static void route_delete(struct mt_route_table *t, size_t hole);

/* The slot holding addr, or the empty slot that ends its chain. The table is never more
 * than half full, so an empty slot always exists and the walk ends. */
static size_t find_slot(const struct mt_route_table *t, const struct mt_addr *addr)
{
    size_t mask = t->nslots - 1, i = addr_hash(addr, mask);
    while (t->slots[i].owner && !addr_eq(&t->slots[i].addr, addr))
        i = (i + 1) & mask;
    return i;
}

/* A full table makes room: the stalest of the MT_ROUTE_PROBE entries that follow addr's home
 * goes (the ones a lookup near there would pass), so eviction costs a bounded walk. */
static void evict_near(struct mt_route_table *t, const struct mt_addr *addr)
{
    size_t mask = t->nslots - 1, i = addr_hash(addr, mask), oldest = SIZE_MAX;
    for (size_t seen = 0, n = 0; seen < MT_ROUTE_PROBE && n < t->nslots; n++, i = (i + 1) & mask) {
        if (!t->slots[i].owner)
            continue;
        if (oldest == SIZE_MAX || t->slots[i].seen < t->slots[oldest].seen)
            oldest = i;
        seen++;
    }
    if (oldest != SIZE_MAX)
        route_delete(t, oldest);
}

int mt_route_learn(struct mt_route_table *t, const struct mt_addr *addr, void *owner, double now)
{
    /* A multicast or broadcast source is always forged; learning it would send every
     * multicast packet to the forger instead of to everyone. */
    if (!owner || addr->kind == MT_ADDR_NONE || mt_addr_is_multicast(addr) || !t->slots)
        return -EINVAL;
    size_t i = find_slot(t, addr);
    struct mt_route_entry *e = &t->slots[i];
    if (e->owner) {
        int moved = e->owner != owner;
        e->owner = owner;
        e->seen = now;
        return moved;
    }
    if (t->used >= t->capacity) {
        /* Full: a spoofed spray ends here, replacing the stalest neighbours, never growing. */
        evict_near(t, addr);
        i = find_slot(t, addr); /* the deletion may have pulled the chain back */
        e = &t->slots[i];
    }
    e->addr = *addr;
    e->owner = owner;
    e->seen = now;
    t->used++;
    return 1;
}

void *mt_route_lookup(const struct mt_route_table *t, const struct mt_addr *addr)
{
    if (!t->slots || addr->kind == MT_ADDR_NONE)
        return NULL;
    return t->slots[find_slot(t, addr)].owner;
}

/* Empties slot hole and pulls later entries of the cluster back, so that no entry is left
 * with an empty slot between its home and itself (which would hide it from lookups): an
 * entry at j moves into the hole when the hole lies on its path from home to j. The cluster
 * ends at an empty slot, which a table at most half full always has. */
static void route_delete(struct mt_route_table *t, size_t hole)
{
    size_t mask = t->nslots - 1;
    for (size_t j = (hole + 1) & mask; t->slots[j].owner; j = (j + 1) & mask) {
        size_t home = addr_hash(&t->slots[j].addr, mask);
        /* Distances along the ring: the hole is on the path when it is no further than j. */
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    memset(&t->slots[hole], 0, sizeof(t->slots[hole]));
    t->used--;
}

void mt_route_move(struct mt_route_table *t, void *from, void *to)
{
    if (!from || !to || !t->slots)
        return;
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i].owner == from)
            t->slots[i].owner = to;
}

void mt_route_touch(struct mt_route_table *t, void *owner, double now)
{
    if (!owner || !t->slots)
        return;
    for (size_t i = 0; i < t->nslots; i++)
        if (t->slots[i].owner == owner)
            t->slots[i].seen = now;
}

void mt_route_forget(struct mt_route_table *t, void *owner)
{
    if (!owner || !t->slots)
        return;
    /* A deletion may pull one of the owner's entries from a slot not yet visited into one
     * already passed (the shift wraps around the ring), so sweep until a pass finds none.
     * Forgetting is rare: a peer went away. */
    bool again = true;
    while (again) {
        again = false;
        for (size_t i = 0; i < t->nslots; i++) {
            while (t->slots[i].owner == owner) {
                route_delete(t, i);
                again = true;
            }
        }
    }
}

/* --- script routes (mt.route) -------------------------------------------------------------- */

static bool sroute_match(const struct mt_sroute *r, const uint8_t *b, uint8_t kind)
{
    if (r->kind != kind)
        return false;
    size_t full = r->len / 8;
    if (memcmp(r->b, b, full) != 0)
        return false;
    if (r->len % 8 == 0)
        return true;
    uint8_t mask = (uint8_t)(0xFF << (8 - r->len % 8));
    return (b[full] & mask) == r->b[full];
}

/* Clears the host bits into out; false for a length the kind cannot have. */
static bool sroute_prefix(uint8_t kind, const uint8_t *b, uint8_t len, uint8_t out[16])
{
    size_t n = kind == MT_ADDR_IP4 ? 4 : kind == MT_ADDR_IP6 ? 16 : 0;
    if (n == 0 || len > n * 8)
        return false;
    memset(out, 0, 16);
    memcpy(out, b, len / 8);
    if (len % 8)
        out[len / 8] = (uint8_t)(b[len / 8] & (0xFF << (8 - len % 8)));
    return true;
}

static int sroute_find(const struct mt_sroutes *t, uint8_t kind, const uint8_t *b, uint8_t len)
{
    for (int i = 0; i < t->n; i++)
        if (t->r[i].kind == kind && t->r[i].len == len && memcmp(t->r[i].b, b, 16) == 0)
            return i;
    return -1;
}

int mt_sroute_set(struct mt_sroutes *t, uint8_t kind, const uint8_t *b, uint8_t len,
                  uint32_t peer_id, const char *name)
{
    uint8_t pfx[16];
    if (!sroute_prefix(kind, b, len, pfx))
        return -EINVAL;
    int i = sroute_find(t, kind, pfx, len);
    if (i < 0) {
        if (t->n == MT_SROUTE_MAX)
            return -ENOSPC;
        /* Keep longest first: the first match of a lookup is the most specific. */
        for (i = t->n; i > 0 && t->r[i - 1].len < len; i--)
            t->r[i] = t->r[i - 1];
        t->n++;
    }
    struct mt_sroute *r = &t->r[i];
    r->kind = kind;
    r->len = len;
    memcpy(r->b, pfx, sizeof r->b);
    r->peer_id = peer_id;
    snprintf(r->name, sizeof r->name, "%s", name != NULL ? name : "");
    return 0;
}

int mt_sroute_del(struct mt_sroutes *t, uint8_t kind, const uint8_t *b, uint8_t len)
{
    uint8_t pfx[16];
    int i = sroute_prefix(kind, b, len, pfx) ? sroute_find(t, kind, pfx, len) : -1;
    if (i < 0)
        return -ENOENT;
    memmove(&t->r[i], &t->r[i + 1], (size_t)(t->n - i - 1) * sizeof t->r[0]);
    t->n--;
    return 0;
}

const struct mt_sroute *mt_sroute_lookup(const struct mt_sroutes *t, const struct mt_addr *a)
{
    for (int i = 0; i < t->n; i++)
        if (sroute_match(&t->r[i], a->b, a->kind))
            return &t->r[i];
    return NULL;
}
