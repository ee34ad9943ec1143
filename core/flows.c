/* The flow table (include/moontun/flows.h): chained hashing into a preallocated slot array,
 * with an intrusive LRU list and a free list through the same slots. A flow is hashed in a
 * direction-free order (the lower endpoint first), so one probe finds it from either side. */
#include <string.h>
#include <sys/random.h>

#include "bytes.h"
#include "moontun/flows.h"
#include "moontun/proto.h"

static uint32_t pow2_at_least(uint32_t n)
{
    uint32_t p = 1;
    while (p < n)
        p <<= 1;
    return p;
}

size_t mt_flows_size(uint32_t max)
{
    if (max == 0 || max > MT_FLOWS_MAX)
        return 0;
    return sizeof(struct mt_flows) + (size_t)max * sizeof(struct mt_flow) +
           (size_t)pow2_at_least(max) * sizeof(uint32_t);
}

struct mt_flows *mt_flows_init(void *mem, uint32_t max, double timeout, enum mt_flows_by by,
                               uint64_t seed)
{
    struct mt_flows *ft = mem;
    memset(ft, 0, sizeof *ft);
    ft->max = max;
    ft->nbuckets = pow2_at_least(max); /* load factor at most 1: chains stay short */
    ft->timeout = timeout;
    ft->by = by;
    ft->head = ft->tail = MT_FLOW_NONE;
    ft->flows = (struct mt_flow *)(ft + 1);
    ft->buckets = (uint32_t *)(ft->flows + max);
    if (seed == 0 && getrandom(&seed, sizeof seed, GRND_NONBLOCK) != sizeof seed)
        seed = 0x6a09e667f3bcc908ull; /* no entropy yet: still a table, just a guessable one */
    ft->seed = seed | 1;
    memset(ft->buckets, 0xff, (size_t)ft->nbuckets * sizeof(uint32_t));
    /* slots are laid out when first used (ft->fresh): a big table costs nothing until it fills */
    ft->free = MT_FLOW_NONE;
    ft->fresh = 0;
    return ft;
}

/* --- keys ------------------------------------------------------------------------------------ */

bool mt_flow_key_of(enum mt_flows_by by, struct mt_packet *pkt, struct mt_flow_key *k)
{
    const struct mt_hdrs *h = mt_packet_hdrs(pkt);
    /* the parser leaves l3 set only when the fixed IP header is whole: the addresses are in */
    if (h->l3 < 0 || (h->ipver != 4 && h->ipver != 6))
        return false;
    const uint8_t *ip = pkt->data + h->l3;
    memset(k, 0, sizeof *k);
    k->ver = h->ipver;
    size_t alen = h->ipver == 4 ? 4 : 16;
    const uint8_t *src = ip + (h->ipver == 4 ? 12 : 8), *dst = src + alen;
    if (by == MT_FLOWS_BY_SRC) {
        memcpy(k->src, src, alen);
        return true;
    }
    if (by == MT_FLOWS_BY_DST) {
        memcpy(k->dst, dst, alen);
        return true;
    }
    memcpy(k->src, src, alen);
    memcpy(k->dst, dst, alen);
    k->proto = h->l4proto;
    if (h->l4 < 0) /* another protocol, or a fragment after the first */
        return true;
    /* the parser sets l4 only when the whole fixed transport header (ICMP: 8 bytes) is in */
    const uint8_t *t = pkt->data + h->l4;
    switch (h->l4proto) {
    case MT_IPPROTO_TCP:
    case MT_IPPROTO_UDP:
        k->sport = rd16(t);
        k->dport = rd16(t + 2);
        break;
    case MT_IPPROTO_ICMP:
    case MT_IPPROTO_ICMP6: {
        bool echo = h->ipver == 4 ? (t[0] == 8 || t[0] == 0) : (t[0] == 128 || t[0] == 129);
        if (echo)
            k->sport = k->dport = rd16(t + 4);
        break;
    }
    }
    return true;
}

static void reverse(const struct mt_flow_key *k, struct mt_flow_key *r)
{
    memcpy(r->src, k->dst, 16);
    memcpy(r->dst, k->src, 16);
    r->sport = k->dport;
    r->dport = k->sport;
    r->proto = k->proto;
    r->ver = k->ver;
    r->pad[0] = r->pad[1] = 0;
}

static inline uint64_t load64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline uint64_t mix(uint64_t h, uint64_t w)
{
    h ^= w;
    h *= 0x9e3779b97f4a7c15ull;
    return h ^ (h >> 29);
}

/* The same for a key and its reverse: the endpoints are hashed lower one first. */
static uint32_t bucket_of(const struct mt_flows *ft, const struct mt_flow_key *k)
{
    int c = memcmp(k->src, k->dst, 16);
    bool swap = c > 0 || (c == 0 && k->sport > k->dport);
    const uint8_t *a = swap ? k->dst : k->src, *b = swap ? k->src : k->dst;
    uint64_t ports = swap ? (uint64_t)k->dport | (uint64_t)k->sport << 16
                          : (uint64_t)k->sport | (uint64_t)k->dport << 16;
    uint64_t h = ft->seed;
    h = mix(h, load64(a));
    h = mix(h, load64(a + 8));
    h = mix(h, load64(b));
    h = mix(h, load64(b + 8));
    h = mix(h, ports | (uint64_t)k->proto << 32 | (uint64_t)k->ver << 40);
    h ^= h >> 32;
    return (uint32_t)h & (ft->nbuckets - 1);
}

/* --- lookups --------------------------------------------------------------------------------- */

struct mt_flow *mt_flows_find(struct mt_flows *ft, const struct mt_flow_key *k, bool *reply)
{
    struct mt_flow_key r;
    bool have_r = false;
    for (uint32_t i = ft->buckets[bucket_of(ft, k)]; i != MT_FLOW_NONE; i = ft->flows[i].hnext) {
        struct mt_flow *f = &ft->flows[i];
        if (memcmp(&f->key, k, sizeof *k) == 0) {
            *reply = false;
            return f;
        }
        if (ft->by != MT_FLOWS_BY_FLOW)
            continue;
        if (!have_r) {
            reverse(k, &r);
            have_r = true;
        }
        if (memcmp(&f->key, &r, sizeof r) == 0) {
            *reply = true;
            return f;
        }
    }
    return NULL;
}

static void lru_unlink(struct mt_flows *ft, struct mt_flow *f)
{
    if (f->prev != MT_FLOW_NONE)
        ft->flows[f->prev].next = f->next;
    else
        ft->head = f->next;
    if (f->next != MT_FLOW_NONE)
        ft->flows[f->next].prev = f->prev;
    else
        ft->tail = f->prev;
}

static void lru_push_head(struct mt_flows *ft, struct mt_flow *f)
{
    uint32_t i = mt_flows_index(ft, f);
    f->prev = MT_FLOW_NONE;
    f->next = ft->head;
    if (ft->head != MT_FLOW_NONE)
        ft->flows[ft->head].prev = i;
    else
        ft->tail = i;
    ft->head = i;
}

void mt_flows_set_timeout(struct mt_flow *f, double timeout, double now)
{
    f->timeout = (float)timeout;
    f->deadline = now + timeout;
}

void mt_flows_touch(struct mt_flows *ft, struct mt_flow *f, bool reply, size_t len, double now)
{
    f->packets[reply]++;
    f->bytes[reply] += len;
    f->last = now;
    f->deadline = now + f->timeout;
    if (ft->head != mt_flows_index(ft, f)) {
        lru_unlink(ft, f);
        lru_push_head(ft, f);
    }
}

/* --- insertion and removal ------------------------------------------------------------------- */

struct mt_flow *mt_flows_insert(struct mt_flows *ft, const struct mt_flow_key *k, double now)
{
    uint32_t i, gen = 0;
    if (ft->free != MT_FLOW_NONE) {
        i = ft->free;
        ft->free = ft->flows[i].next;
        gen = ft->flows[i].gen;
    } else if (ft->fresh < ft->max) {
        i = ft->fresh++;
    } else {
        return NULL;
    }
    struct mt_flow *f = &ft->flows[i];
    memset(f, 0, sizeof *f);
    f->gen = gen;
    f->key = *k;
    f->used = true;
    f->first = f->last = now;
    mt_flows_set_timeout(f, ft->timeout, now);
    uint32_t b = bucket_of(ft, k);
    f->hnext = ft->buckets[b];
    ft->buckets[b] = i;
    lru_push_head(ft, f);
    ft->count++;
    return f;
}

struct mt_flow *mt_flows_victim(struct mt_flows *ft)
{
    return ft->tail == MT_FLOW_NONE ? NULL : &ft->flows[ft->tail];
}

void mt_flows_unlink(struct mt_flows *ft, struct mt_flow *f)
{
    if (!f->used)
        return;
    uint32_t i = mt_flows_index(ft, f);
    uint32_t *link = &ft->buckets[bucket_of(ft, &f->key)];
    while (*link != i && *link != MT_FLOW_NONE)
        link = &ft->flows[*link].hnext;
    if (*link == i)
        *link = f->hnext;
    lru_unlink(ft, f);
    f->used = false;
    f->prev = f->next = f->hnext = MT_FLOW_NONE;
    ft->count--;
}

void mt_flows_release(struct mt_flows *ft, struct mt_flow *f)
{
    if (f->used)
        mt_flows_unlink(ft, f);
    f->gen++;
    f->next = ft->free;
    ft->free = mt_flows_index(ft, f);
}

struct mt_flow *mt_flows_next_expired(struct mt_flows *ft, double now, uint32_t *budget)
{
    uint32_t i = ft->sweep;
    if (i >= ft->fresh || !ft->flows[i].used) /* a new sweep, or its place was freed */
        i = ft->tail;
    while (i != MT_FLOW_NONE && *budget > 0) {
        (*budget)--;
        struct mt_flow *f = &ft->flows[i];
        i = f->prev;
        if (f->deadline < now) {
            ft->sweep = i;
            return f;
        }
    }
    ft->sweep = MT_FLOW_NONE;
    return NULL;
}
