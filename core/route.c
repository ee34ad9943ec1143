/* Routing addresses and the learning table that maps an inner address to the peer that last
 * sent from it. The table is open addressing with linear probing limited to MT_ROUTE_PROBE
 * slots, backward-shift deletion (no tombstones to pile up) and eviction of the stalest
 * entry in the probe window, so its size and its worst-case lookup are both fixed. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "moontun/proto.h"
#include "moontun/route.h"

#define MT_ROUTE_PROBE     16
#define MT_ROUTE_MIN_SLOTS 16

int mt_addr_from_packet(const uint8_t *p, size_t len, enum mt_link link, bool dst,
                        struct mt_addr *out)
{
    memset(out, 0, sizeof(*out));
    if (link == MT_LINK_ETH) {
        if (len < MT_ETH_HLEN)
            return -EINVAL;
        out->kind = MT_ADDR_MAC;
        memcpy(out->b, dst ? p : p + 6, 6);
        return 0;
    }
    struct mt_hdrs h;
    mt_proto_parse(p, len, link, &h);
    /* The parser sets l3 only when the fixed header is whole, so the addresses are there. */
    if (h.l3 < 0)
        return -EINVAL;
    if (h.ipver == 4) {
        out->kind = MT_ADDR_IP4;
        memcpy(out->b, p + h.l3 + (dst ? 16 : 12), 4);
    } else {
        out->kind = MT_ADDR_IP6;
        memcpy(out->b, p + h.l3 + (dst ? 24 : 8), 16);
    }
    return 0;
}

bool mt_addr_is_multicast(const struct mt_addr *a)
{
    switch (a->kind) {
    case MT_ADDR_MAC:
        return a->b[0] & 1; /* the group bit; broadcast ff:ff:.. has it too */
    case MT_ADDR_IP4:
        return (a->b[0] >= 224 && a->b[0] <= 239) ||
               (a->b[0] == 255 && a->b[1] == 255 && a->b[2] == 255 && a->b[3] == 255);
    case MT_ADDR_IP6:
        return a->b[0] == 0xff;
    default:
        return false;
    }
}

const char *mt_addr_str(const struct mt_addr *a, char *buf, size_t bufsz)
{
    char tmp[INET6_ADDRSTRLEN];
    if (bufsz == 0)
        return buf;
    switch (a->kind) {
    case MT_ADDR_IP4:
        inet_ntop(AF_INET, a->b, tmp, sizeof(tmp));
        break;
    case MT_ADDR_IP6:
        inet_ntop(AF_INET6, a->b, tmp, sizeof(tmp));
        break;
    case MT_ADDR_MAC:
        snprintf(tmp, sizeof(tmp), "%02x:%02x:%02x:%02x:%02x:%02x", a->b[0], a->b[1], a->b[2],
                 a->b[3], a->b[4], a->b[5]);
        break;
    default:
        snprintf(tmp, sizeof(tmp), "none");
        break;
    }
    /* Cut rather than fail on a small buffer: this is for log lines. */
    snprintf(buf, bufsz, "%s", tmp);
    return buf;
}

/* The hash is keyed by a per-process secret so that a peer cannot pick sources that all land
 * in one window from outside. Even if it could, the bounded probe means the damage is the
 * eviction of entries near that window, which spraying random sources achieves anyway. */
static uint64_t route_seed;

static uint64_t mix64(uint64_t x)
{
    /* The splitmix64/murmur3 finaliser: every input bit flips about half the output bits. */
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

static size_t addr_hash(const struct mt_addr *a, size_t mask)
{
    uint64_t lo, hi;
    memcpy(&lo, a->b, 8);
    memcpy(&hi, a->b + 8, 8);
    uint64_t h = mix64(route_seed ^ a->kind);
    h = mix64(h ^ lo);
    h = mix64(h ^ hi);
    return (size_t)h & mask;
}

static bool addr_eq(const struct mt_addr *x, const struct mt_addr *y)
{
    return x->kind == y->kind && memcmp(x->b, y->b, sizeof(x->b)) == 0;
}

static size_t probe_len(const struct mt_route_table *t)
{
    return t->nslots < MT_ROUTE_PROBE ? t->nslots : MT_ROUTE_PROBE;
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
    return 0;
}

void mt_route_free(struct mt_route_table *t)
{
    free(t->slots);
    t->slots = NULL;
    t->nslots = 0;
    t->used = 0;
}

int mt_route_learn(struct mt_route_table *t, const struct mt_addr *addr, void *owner, double now)
{
    /* A multicast or broadcast source is always forged; learning it would send every
     * multicast packet to the forger instead of to everyone. */
    if (!owner || addr->kind == MT_ADDR_NONE || mt_addr_is_multicast(addr) || !t->slots)
        return -EINVAL;
    size_t mask = t->nslots - 1, home = addr_hash(addr, mask);
    struct mt_route_entry *oldest = NULL;
    for (size_t i = 0; i < probe_len(t); i++) {
        struct mt_route_entry *e = &t->slots[(home + i) & mask];
        if (!e->owner) {
            /* No tombstones: an empty slot ends every chain, so the address is not further. */
            e->addr = *addr;
            e->owner = owner;
            e->seen = now;
            t->used++;
            return 1;
        }
        if (addr_eq(&e->addr, addr)) {
            int moved = e->owner != owner;
            e->owner = owner;
            e->seen = now;
            return moved;
        }
        if (!oldest || e->seen < oldest->seen)
            oldest = e;
    }
    /* The window is full: the stalest neighbour makes way. Replacing in place keeps every
     * other entry within MT_ROUTE_PROBE slots of its home. */
    oldest->addr = *addr;
    oldest->owner = owner;
    oldest->seen = now;
    return 1;
}

void *mt_route_lookup(const struct mt_route_table *t, const struct mt_addr *addr)
{
    if (!t->slots || addr->kind == MT_ADDR_NONE)
        return NULL;
    size_t mask = t->nslots - 1, home = addr_hash(addr, mask);
    for (size_t i = 0; i < probe_len(t); i++) {
        const struct mt_route_entry *e = &t->slots[(home + i) & mask];
        if (!e->owner)
            return NULL;
        if (addr_eq(&e->addr, addr))
            return e->owner;
    }
    return NULL;
}

/* Empties slot hole and pulls later entries back, so that no entry is left with an empty
 * slot between its home and itself (which would hide it from lookups). An entry sits at most
 * MT_ROUTE_PROBE - 1 slots past its home, so only the slots that close after the hole can
 * need it; the walk restarts from each new hole. Measuring from the moving hole (not from
 * where we began) matters in a table full to the last slot, where the hole can travel around
 * the whole ring and come back inside a path it already passed. Every move brings an entry
 * closer to home, so the walk ends. */
static void route_delete(struct mt_route_table *t, size_t hole)
{
    size_t mask = t->nslots - 1;
    for (size_t dist = 1; dist < probe_len(t); dist++) {
        size_t j = (hole + dist) & mask;
        struct mt_route_entry *e = &t->slots[j];
        if (!e->owner)
            break;
        /* e may move into the hole only if the hole lies on its probe path. */
        if (((j - addr_hash(&e->addr, mask)) & mask) >= dist) {
            t->slots[hole] = *e;
            hole = j;
            dist = 0;
        }
    }
    memset(&t->slots[hole], 0, sizeof(t->slots[hole]));
    t->used--;
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
