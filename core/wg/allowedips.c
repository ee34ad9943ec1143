/* AllowedIPs as an array sorted by prefix length, longest first: a lookup is a scan that stops
 * at the first match. Peers have a handful of prefixes each; the array is only reallocated
 * when the configuration changes, never per packet. */
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
    free(t->routes);
    memset(t, 0, sizeof(*t));
}

static size_t addr_len(int family)
{
    return family == 4 ? 4 : family == 6 ? 16 : 0;
}

static bool matches(const struct mt_wg_prefix *p, const uint8_t *addr)
{
    unsigned full = p->bits / 8, rest = p->bits % 8;
    if (memcmp(p->addr, addr, full) != 0)
        return false;
    return rest == 0 || ((p->addr[full] ^ addr[full]) & (uint8_t)(0xFF << (8 - rest))) == 0;
}

int mt_wg_allowedips_insert(struct mt_wg_allowedips *t, const struct mt_wg_prefix *prefix,
                            void *peer)
{
    size_t alen = addr_len(prefix->family);
    if (!alen || prefix->bits > alen * 8)
        return -EINVAL;
    struct mt_wg_prefix p = *prefix;
    for (size_t i = 0; i < sizeof(p.addr); i++) {
        unsigned keep = i * 8 >= p.bits ? 0 : p.bits - i * 8 >= 8 ? 8 : p.bits - i * 8;
        p.addr[i] &= (uint8_t)(0xFF00 >> keep);
    }
    for (size_t i = 0; i < t->n; i++) {
        struct mt_wg_prefix *q = &t->routes[i].prefix;
        if (q->family == p.family && q->bits == p.bits && !memcmp(q->addr, p.addr, alen)) {
            t->routes[i].peer = peer;
            return 0;
        }
    }
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 8;
        struct mt_wg_route *r = realloc(t->routes, cap * sizeof(*r));
        if (!r)
            return -ENOMEM;
        t->routes = r;
        t->cap = cap;
    }
    size_t at = 0;
    while (at < t->n && t->routes[at].prefix.bits >= p.bits)
        at++;
    memmove(&t->routes[at + 1], &t->routes[at], (t->n - at) * sizeof(*t->routes));
    t->routes[at].prefix = p;
    t->routes[at].peer = peer;
    t->n++;
    return 0;
}

void mt_wg_allowedips_remove_peer(struct mt_wg_allowedips *t, const void *peer)
{
    size_t j = 0;
    for (size_t i = 0; i < t->n; i++)
        if (t->routes[i].peer != peer)
            t->routes[j++] = t->routes[i];
    t->n = j;
}

void *mt_wg_allowedips_lookup(const struct mt_wg_allowedips *t, int family, const uint8_t *addr)
{
    for (size_t i = 0; i < t->n; i++)
        if (t->routes[i].prefix.family == family && matches(&t->routes[i].prefix, addr))
            return t->routes[i].peer;
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
