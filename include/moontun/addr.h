/* Addresses and prefixes, parsed and formatted in one place: inner addresses (IPv4, IPv6 and,
 * in tap mode, MAC) as routes, --addr, --allow and scripts see them, and the outer socket
 * addresses of peers as logs and --allow see them. */
#ifndef MOONTUN_ADDR_H
#define MOONTUN_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct sockaddr;

enum mt_addr_kind {
    MT_ADDR_NONE = 0,
    MT_ADDR_IP4 = 4,
    MT_ADDR_IP6 = 6,
    MT_ADDR_MAC = 48,
};

struct mt_addr {
    uint8_t kind;  /* enum mt_addr_kind */
    uint8_t b[16]; /* the address bytes, network order; unused bytes are zero */
};

struct mt_prefix {
    struct mt_addr addr; /* kind MT_ADDR_IP4 or MT_ADDR_IP6, host bits as given */
    uint8_t len;         /* prefix length */
};

#define MT_ADDR_STRLEN   46                   /* INET6_ADDRSTRLEN: any address as text */
#define MT_PREFIX_STRLEN (MT_ADDR_STRLEN + 4) /* and "/128" */

/* "10.0.0.1" or "fd00::1" (no prefix length). 0, or -EINVAL with out->kind MT_ADDR_NONE. */
int mt_addr_parse(const char *text, struct mt_addr *out);
/* Formats as text (dotted quad, RFC 5952 IPv6, aa:bb:cc:dd:ee:ff, "none"); cuts rather than
 * fails on a small buffer. Returns buf. */
const char *mt_addr_str(const struct mt_addr *a, char *buf, size_t bufsz);
/* True for addresses that go to every peer: Ethernet broadcast/multicast, IPv4 broadcast
 * (255.255.255.255) and multicast, IPv6 multicast. */
bool mt_addr_is_multicast(const struct mt_addr *a);

/* "10.0.0.1/24", "fd00::1/64", "10.0.0.0/8"; a bare address gets /32 or /128. 0 or -EINVAL. */
int mt_prefix_parse(const char *text, struct mt_prefix *out);
bool mt_prefix_contains(const struct mt_prefix *p, const struct mt_addr *a);
/* "address/len". Returns buf. */
const char *mt_prefix_str(const struct mt_prefix *p, char *buf, size_t bufsz);

/* The address of an outer socket address, v4-mapped IPv6 unmapped (so that --allow
 * 10.0.0.0/8 matches a peer that reached a dual-stack socket); kind MT_ADDR_NONE for other
 * families. */
void mt_addr_from_sockaddr(const struct sockaddr *sa, struct mt_addr *out);
/* "host:port", "[v6]:port" (v4-mapped as plain IPv4), "?" for other families. */
void mt_sockaddr_str(const struct sockaddr *sa, char *buf, size_t bufsz);

#endif
