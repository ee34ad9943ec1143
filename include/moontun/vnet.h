/* Offloads: the virtio-net header a tun/tap device opened with IFF_VNET_HDR puts before every
 * packet (and expects before every write), and the software fallbacks for a peer that cannot
 * take offloaded packets: completing a partial checksum and segmenting a GSO super-packet. */
#ifndef MOONTUN_VNET_H
#define MOONTUN_VNET_H

#include <stddef.h>
#include <stdint.h>

#include "moontun/packet.h"

#define MT_VNET_HDR_LEN 10 /* struct virtio_net_hdr, without num_buffers */

/* flags */
#define MT_VNET_F_NEEDS_CSUM 1 /* the L4 checksum field holds only the pseudo-header sum */
#define MT_VNET_F_DATA_VALID 2
/* gso_type */
#define MT_VNET_GSO_NONE   0
#define MT_VNET_GSO_TCPV4  1
#define MT_VNET_GSO_UDP    3
#define MT_VNET_GSO_TCPV6  4
#define MT_VNET_GSO_UDP_L4 5
#define MT_VNET_GSO_ECN    0x80

/* The smallest gso_size taken from a peer: Linux's TCP_MIN_MSS. A liar's gso_size of 1 would
 * fan one frame out into 65,000 segments. */
#define MT_VNET_GSO_MIN 88

void mt_vnet_read(const uint8_t *src, struct mt_vnet_hdr *h);
void mt_vnet_write(uint8_t *dst, const struct mt_vnet_hdr *h);

/* Completes the checksum of a NEEDS_CSUM packet in place (sums from csum_start to the end into
 * the field at csum_start + csum_offset) and clears the flag. Returns 0, or -EINVAL when the
 * offsets lie outside the packet (a liar's header). */
int mt_vnet_complete_csum(uint8_t *pkt, size_t len, struct mt_vnet_hdr *h);

/* Splits a TCP GSO super-packet (IPv4 or IPv6, tun or tap) into ordinary packets carrying at
 * most gso_size payload bytes each, with IP lengths, IPv4 ids and header checksums, TCP
 * sequence numbers, flags (FIN/PSH only on the last, CWR only on the first) and full TCP
 * checksums right, and calls emit for each. A packet without GSO is passed through emit once,
 * its checksum completed if NEEDS_CSUM. scratch holds one segment (>= hdr_len + gso_size).
 * Returns the number of packets emitted, or a negative errno (-EINVAL for a malformed or
 * unsupported super-packet: nothing is emitted then). */
int mt_vnet_segment(const uint8_t *pkt, size_t len, const struct mt_vnet_hdr *h, enum mt_link link,
                    uint8_t *scratch, size_t scratchsz,
                    int (*emit)(void *ctx, const uint8_t *seg, size_t seglen), void *ctx);

/* Judges an offload header that came from the network against the packet it describes,
 * before the packet reaches the device or another peer: known flags and GSO types only, a
 * partial checksum exactly at the TCP/UDP checksum field, a GSO type that matches the
 * headers, an IP length that is the whole packet, and a gso_size in [MT_VNET_GSO_MIN,
 * max_seg - headers] so every segment (IP header on) is at most max_seg bytes. What the
 * kernel treats as hints is normalised in h: hdr_len becomes the real header length, the
 * unused fields of an ordinary packet 0, and DATA_VALID (a peer's word that the checksum was
 * verified) is dropped; a super-packet whose checksum a script finished gets the partial
 * form back (in pkt too). Returns 0, or -EINVAL for a header to refuse. */
int mt_vnet_check(uint8_t *pkt, size_t len, struct mt_vnet_hdr *h, enum mt_link link,
                  size_t max_seg);

/* Describes an ordinary TCP packet longer than mtu (a script's copy of a super-packet) as a
 * TCP GSO super-packet whose segments fit mtu (IP header on): its checksum field gets the
 * partial sum and h the offload header, so the device or an offloading peer cuts it.
 * Returns 0, or -EINVAL when it is not TCP or its headers alone fill the MTU. */
int mt_vnet_make_super(uint8_t *pkt, size_t len, enum mt_link link, size_t mtu,
                       struct mt_vnet_hdr *h);

/* Lowers a TCP super-packet's gso_size so that each segment (IP header on) fits mtu: a peer
 * with a smaller MTU than the sender's takes segments cut at its own size. UDP datagrams
 * cannot be re-cut; they and non-GSO packets are left alone. */
void mt_vnet_fit_mtu(const uint8_t *pkt, size_t len, enum mt_link link, size_t mtu,
                     struct mt_vnet_hdr *h);

#endif
