/* Header parsing and Internet checksums for the packets moontun carries: Ethernet (tap),
 * IPv4, IPv6 with extension headers, TCP, UDP, ICMP and ICMPv6. No allocation, no state:
 * every function reads only the bytes it is given and checks every length first. */
#ifndef MOONTUN_PROTO_H
#define MOONTUN_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/packet.h"

#define MT_ETH_HLEN       14
#define MT_ETHERTYPE_IP4  0x0800
#define MT_ETHERTYPE_IP6  0x86DD
#define MT_ETHERTYPE_VLAN 0x8100
#define MT_IPPROTO_ICMP   1
#define MT_IPPROTO_TCP    6
#define MT_IPPROTO_UDP    17
#define MT_IPPROTO_ICMP6  58
#define MT_IP4_HLEN       20 /* without options */
#define MT_IP6_HLEN       40 /* without extension headers */
#define MT_TCP_HLEN       20 /* without options */
#define MT_UDP_HLEN       8
#define MT_TCP_FIN        0x01 /* TCP flags (byte 13 of the header) */
#define MT_TCP_SYN        0x02
#define MT_TCP_RST        0x04
#define MT_TCP_PSH        0x08
#define MT_TCP_ACK        0x10
#define MT_TCP_CWR        0x80

/* Parses what is there; never fails: absent or truncated headers just stay -1.
 * A liar's header (IHL < 5, total length beyond the packet) leaves l3 valid only when the
 * fixed header is whole, and never lets l4 point past the end. */
void mt_proto_parse(const uint8_t *p, size_t len, enum mt_link link, struct mt_hdrs *h);
/* How many times mt_proto_parse ran in this process: the unit tests hold the data path to
 * one parse per packet with it. */
extern uint64_t mt_proto_parse_count;
/* The packet's headers: parsed on the first call, then kept in the packet until a write
 * that may move them (mt_packet_changed, push, pull, put, resize). Every reader on the data
 * path (routes, the log, the Lua views) asks here. */
const struct mt_hdrs *mt_packet_hdrs(struct mt_packet *pkt);

/* One's-complement sum over data, added to sum (not folded). Any length, any alignment. */
uint32_t mt_csum_add(uint32_t sum, const void *data, size_t len);
/* Folds a sum to 16 bits and complements it: the value that goes in a checksum field
 * (host byte order). */
uint16_t mt_csum_fold(uint32_t sum);
/* RFC 1624 eqn. 3: the new checksum field after a 16-bit word changed from old to new.
 * All three in host byte order. */
uint16_t mt_csum_update16(uint16_t csum, uint16_t old_word, uint16_t new_word);
/* The same for a span of bytes (an address) that changed from old to new (len even). */
uint16_t mt_csum_update(uint16_t csum, const uint8_t *old_bytes, const uint8_t *new_bytes,
                        size_t len);

/* Writes into the TCP or UDP checksum field the pseudo-header sum that a partial (offloaded)
 * checksum holds: what the kernel, or the segmenter, completes over the transport bytes.
 * Returns 0, or -EINVAL when the packet has no whole TCP/UDP header (or is a fragment). */
int mt_proto_set_partial_csum(uint8_t *p, size_t len, enum mt_link link);

/* Recomputes every checksum the packet has (IPv4 header, TCP, UDP, ICMP, ICMPv6) from
 * scratch. Returns 0, or -EINVAL when there is nothing it can checksum. */
int mt_proto_fix_checksums(uint8_t *p, size_t len, enum mt_link link);
/* True when every checksum present in the packet verifies (gro.c before joining a segment;
 * the checksum assertion of moontun test). The _h form takes headers already parsed. */
bool mt_proto_checksums_ok(const uint8_t *p, size_t len, enum mt_link link);
bool mt_proto_checksums_ok_h(const uint8_t *p, size_t len, const struct mt_hdrs *h);

/* A tcpdump-like one-line summary ("IP 10.0.0.1 > 10.0.0.2: ICMP echo request id 7 seq 1,
 * length 84"). Always NUL-terminates; returns the length written. */
size_t mt_proto_summary(const uint8_t *p, size_t len, enum mt_link link, char *out, size_t outsz);
/* The same for a packet, with the headers it carries (the -d log of the tunnel). */
size_t mt_packet_summary(struct mt_packet *pkt, char *out, size_t outsz);

#endif
