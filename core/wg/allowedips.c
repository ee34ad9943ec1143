/* AllowedIPs as one open-addressing hash table keyed by (family, length, masked address), and a
 * count of prefixes per length: a lookup masks the address to each length that some prefix
 * has, longest first, and probes the table once per length. Its cost grows with the number of
 * distinct lengths (a few: /32, /24, /128, /64 in practice), not with the number of peers or
 * prefixes, so thousands of peers stay fast. The table is only rebuilt when the
 * configuration changes, never per packet. */
#include "wg/allowedips.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

void mt_wg_allowedips_init(struct mt_wg_allowedips *t)
{
    memset(t, 0, sizeof(*t));
}

void mt_wg_allowedips_free(struct mt_wg_allowedips *t)
{
    free(t->slots);
    memset(t, 0, sizeof(*t));
}

static size_t addr_len(int family)
{
    return family == 4 ? 4 : family == 6 ? 16 : 0;
}

/* addr with the bits past the prefix length cleared, into out (16 bytes, zero-padded). */
static void mask(uint8_t out[16], const uint8_t *addr, size_t alen, unsigned bits)
{
    memset(out, 0, 16);
    unsigned full = bits / 8, rest = bits % 8;
    memcpy(out, addr, full);
    if (rest && full < alen)
        out[full] = addr[full] & (uint8_t)(0xFF00 >> rest);
}

/* FNV-1a over the key, then a final mix (the low bits pick the slot). The keys come from the
 * configuration, not from the network: there is no flooding to defend against. */
static size_t hash(int family, unsigned bits, const uint8_t addr[16])
{
    uint64_t h = 0xcbf29ce484222325ull ^ (uint64_t)(family * 256 + (int)bits);
    for (size_t i = 0; i < 16; i++)
        h = (h ^ addr[i]) * 0x100000001b3ull;
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    return (size_t)(h ^ (h >> 32));
}

/* The slot holding the key, or the free slot where it would go (the table is never full). */
static struct mt_wg_route *find(const struct mt_wg_allowedips *t, int family, unsigned bits,
                                const uint8_t addr[16])
{
    size_t m = t->cap - 1;
    for (size_t i = hash(family, bits, addr) & m;; i = (i + 1) & m) {
        struct mt_wg_route *r = &t->slots[i];
        if (r->prefix.family == 0 || (r->prefix.family == family && r->prefix.bits == bits &&
                                      memcmp(r->prefix.addr, addr, 16) == 0))
            return r;
    }
}

/* Puts p (masked) in the table, which has room; replaces the peer of an equal prefix. */
static void put(struct mt_wg_allowedips *t, const struct mt_wg_prefix *p, void *peer)
{
    struct mt_wg_route *r = find(t, p->family, p->bits, p->addr);
    if (r->prefix.family == 0) {
        r->prefix = *p;
        t->n++;
        if (p->family == 4)
            t->len4[p->bits]++;
        else
            t->len6[p->bits]++;
    }
    r->peer = peer;
}

/* A table of cap slots with every prefix of the old one but peer's (NULL: keeps them all). */
static int rebuild(struct mt_wg_allowedips *t, size_t cap, const void *without)
{
    struct mt_wg_allowedips fresh;
    mt_wg_allowedips_init(&fresh);
    fresh.slots = calloc(cap, sizeof(*fresh.slots));
    if (!fresh.slots)
        return -ENOMEM;
    fresh.cap = cap;
    for (size_t i = 0; i < t->cap; i++)
        if (t->slots[i].prefix.family && (!without || t->slots[i].peer != without))
            put(&fresh, &t->slots[i].prefix, t->slots[i].peer);
    free(t->slots);
    *t = fresh;
    return 0;
}

int mt_wg_allowedips_insert(struct mt_wg_allowedips *t, const struct mt_wg_prefix *prefix,
                            void *peer)
{
    size_t alen = addr_len(prefix->family);
    if (!alen || prefix->bits > alen * 8)
        return -EINVAL;
    struct mt_wg_prefix p = *prefix;
    mask(p.addr, prefix->addr, alen, p.bits);
    if ((t->n + 1) * 2 > t->cap) {
        int rc = rebuild(t, t->cap ? t->cap * 2 : 16, NULL);
        if (rc < 0)
            return rc;
    }
    put(t, &p, peer);
    return 0;
}

void mt_wg_allowedips_remove_peer(struct mt_wg_allowedips *t, const void *peer)
{
    /* Open addressing cannot just empty a slot (a later probe would stop there): the other
     * prefixes move to a new table of the same size. Without memory for it the peer's
     * prefixes stay but lead to no peer (its packets are dropped, as after a removal). */
    if (t->cap && rebuild(t, t->cap, peer) < 0)
        for (size_t i = 0; i < t->cap; i++)
            if (t->slots[i].peer == peer)
                t->slots[i].peer = NULL;
}

void *mt_wg_allowedips_lookup(const struct mt_wg_allowedips *t, int family, const uint8_t *addr)
{
    size_t alen = addr_len(family);
    if (!alen || t->n == 0)
        return NULL;
    const uint32_t *counts = family == 4 ? t->len4 : t->len6;
    uint8_t key[16];
    for (int bits = (int)alen * 8; bits >= 0; bits--) {
        if (!counts[bits])
            continue;
        mask(key, addr, alen, (unsigned)bits);
        const struct mt_wg_route *r = find(t, family, (unsigned)bits, key);
        if (r->prefix.family)
            return r->peer;
    }
    return NULL;
}

bool mt_wg_allowedips_allowed(const struct mt_wg_allowedips *t, const void *peer, int family,
                              const uint8_t *src)
{
    return peer && mt_wg_allowedips_lookup(t, family, src) == peer;
}

int mt_wg_prefix_parse(struct mt_wg_prefix *p, const char *text)
{
    char buf[64];
    size_t n = strlen(text);
    if (n >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, text, n + 1);
    char *slash = strchr(buf, '/');
    if (slash)
        *slash = '\0';
    memset(p, 0, sizeof(*p));
    if (inet_pton(AF_INET, buf, p->addr) == 1)
        p->family = 4;
    else if (inet_pton(AF_INET6, buf, p->addr) == 1)
        p->family = 6;
    else
        return -EINVAL;
    unsigned max = p->family == 4 ? 32 : 128;
    p->bits = (uint8_t)max;
    if (slash) {
        const char *s = slash + 1;
        unsigned v = 0;
        if (!*s || strlen(s) > 3)
            return -EINVAL;
        for (; *s; s++) {
            if (*s < '0' || *s > '9')
                return -EINVAL;
            v = v * 10 + (unsigned)(*s - '0');
        }
        if (v > max)
            return -EINVAL;
        p->bits = (uint8_t)v;
    }
    return 0;
}
