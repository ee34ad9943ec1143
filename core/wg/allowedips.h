/* Cryptokey routing (AllowedIPs): the longest prefix that holds an inner address names the
 * peer a packet goes to, and a packet that arrives from a peer is accepted only when its inner
 * source routes back to that same peer. */
#ifndef MOONTUN_WG_ALLOWEDIPS_H
#define MOONTUN_WG_ALLOWEDIPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mt_wg_prefix {
    uint8_t family; /* 4 or 6 */
    uint8_t bits;   /* prefix length */
    uint8_t addr[16];
};

/* One hash table of (prefix, peer) for every length and family (a per-length hash, as in
 * "longest-prefix match by binary search on lengths" without the search): a lookup probes
 * only the lengths some prefix has, longest first. */
struct mt_wg_allowedips {
    struct mt_wg_route {
        struct mt_wg_prefix prefix; /* family 0: a free slot */
        void *peer;
    } * slots;         /* open addressing, cap a power of two, at most half full */
    size_t n, cap;     /* prefixes held; slots */
    uint32_t len4[33]; /* prefixes of each length, IPv4 */
    uint32_t len6[129];
};

void mt_wg_allowedips_init(struct mt_wg_allowedips *t);
void mt_wg_allowedips_free(struct mt_wg_allowedips *t);
/* Adds prefix for peer; a prefix another peer had moves to this one (as wg(8) does). The host
 * bits of the address are cleared. -EINVAL (bad family or length), -ENOMEM. */
int mt_wg_allowedips_insert(struct mt_wg_allowedips *t, const struct mt_wg_prefix *prefix,
                            void *peer);
/* Removes every prefix of peer. */
void mt_wg_allowedips_remove_peer(struct mt_wg_allowedips *t, const void *peer);
/* The peer for an inner destination (addr: 4 or 16 bytes by family), NULL when none. */
void *mt_wg_allowedips_lookup(const struct mt_wg_allowedips *t, int family, const uint8_t *addr);
/* True when a packet from peer may carry this inner source address. */
bool mt_wg_allowedips_allowed(const struct mt_wg_allowedips *t, const void *peer, int family,
                              const uint8_t *src);
/* Parses "10.0.0.0/8", "fd00::/64" or a bare address (a host prefix). -EINVAL. */
int mt_wg_prefix_parse(struct mt_wg_prefix *p, const char *text);

#endif
