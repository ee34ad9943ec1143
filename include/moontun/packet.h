/* A packet: a view (data, len) inside a preallocated buffer with headroom in front, so a
 * header can be prepended without copying, and tailroom behind, so a trailer can be added. */
#ifndef MOONTUN_PACKET_H
#define MOONTUN_PACKET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MT_MAX_PACKET  65535 /* largest packet the TCP framing (2-byte length) can carry */
#define MT_HEADROOM    256
#define MT_TAILROOM    256
#define MT_PKT_BUFSIZE (MT_HEADROOM + MT_MAX_PACKET + MT_TAILROOM)

enum mt_link {
    MT_LINK_IP = 0,  /* tun: raw IPv4/IPv6 packets */
    MT_LINK_ETH = 1, /* tap: Ethernet frames */
};

enum mt_dir {
    MT_DIR_EGRESS = 0,  /* read from the device, going to the tunnel */
    MT_DIR_INGRESS = 1, /* arrived from a peer, going to the device */
};

struct mt_peer;

/* Offload state of a packet: the virtio-net header of a device opened with IFF_VNET_HDR
 * (include/moontun/vnet.h), in host order. All zero for an ordinary packet. On the wire and
 * at the device it is little-endian. */
struct mt_vnet_hdr {
    uint8_t flags;     /* MT_VNET_F_NEEDS_CSUM: the L4 checksum holds only the pseudo-header sum */
    uint8_t gso_type;  /* MT_VNET_GSO_*: a super-packet to be cut into gso_size segments */
    uint16_t hdr_len;  /* length of the headers to copy to every segment */
    uint16_t gso_size; /* payload bytes per segment */
    uint16_t csum_start;  /* where checksumming starts (from the first byte of the packet) */
    uint16_t csum_offset; /* where the checksum goes, from csum_start */
};

/* Where each header starts; -1 when absent or not fully present. Offsets are from the first
 * byte of the packet. l4 is -1 for a non-first fragment (it holds no transport header). */
struct mt_hdrs {
    int32_t l2;         /* Ethernet header (tap only) */
    int32_t l3;         /* IPv4/IPv6 header */
    int32_t l4;         /* TCP/UDP/ICMP/ICMPv6 header of a known protocol, fully present */
    uint16_t ethertype; /* tap: the (inner, after VLAN tags) ethertype; tun: from the version */
    uint8_t ipver;      /* 4, 6, or 0 when there is no IP header */
    uint8_t l4proto;    /* protocol number of the transport header (even when l4 is -1) */
    uint32_t l3len;     /* IP header + payload as the IP header claims it, clipped to the packet */
    uint32_t l4len;     /* transport header + payload (l3len - IP header lengths) */
    bool fragment;      /* the IP packet is a fragment (first or not) */
};

struct mt_packet {
    uint8_t *data;           /* rw: first byte of the packet */
    size_t len;              /* rw: bytes from data */
    uint8_t *base;           /* ro: start of the buffer */
    size_t cap;              /* ro: size of the buffer */
    enum mt_link link;       /* ro: what the first byte is */
    enum mt_dir dir;         /* ro */
    struct mt_peer *peer;    /* ro: ingress: who sent it; egress: NULL until routed */
    struct mt_vnet_hdr vnet; /* rw: offloads (super-packet, partial checksum) */
    /* private: the parsed headers (mt_packet_hdrs in proto.h), valid while hdrs_ok. Parsed
     * once, on first use; a write that may move a header calls mt_packet_changed. */
    struct mt_hdrs hdrs;
    bool hdrs_ok;
};

/* The bytes changed where a header's offset or length may come from (a raw write, a new
 * ethertype): the next mt_packet_hdrs parses again. */
static inline void mt_packet_changed(struct mt_packet *pkt)
{
    pkt->hdrs_ok = false;
}

/* Points the packet at an empty area of buf that leaves `headroom` bytes in front. */
void mt_packet_init(struct mt_packet *pkt, uint8_t *buf, size_t cap, size_t headroom);

static inline size_t mt_packet_headroom(const struct mt_packet *pkt)
{
    return (size_t)(pkt->data - pkt->base);
}

static inline size_t mt_packet_tailroom(const struct mt_packet *pkt)
{
    return pkt->cap - mt_packet_headroom(pkt) - pkt->len;
}

/* Each returns 0, or -ENOSPC / -EINVAL and leaves the packet unchanged. push and pull move
 * an offloaded packet's csum_start and hdr_len with its front (pull past the transport
 * header forgets the offload state, which no longer describes the bytes). */
int mt_packet_push(struct mt_packet *pkt, size_t n);   /* grow at the front by n bytes */
int mt_packet_pull(struct mt_packet *pkt, size_t n);   /* strip n bytes from the front */
int mt_packet_put(struct mt_packet *pkt, size_t n);    /* grow at the back by n bytes */
int mt_packet_resize(struct mt_packet *pkt, size_t n); /* set the length, zeroing new bytes */

/* Copies src (bytes, link, direction, peer, offload state) into buf, after MT_HEADROOM bytes
 * of headroom. Returns 0, or -EMSGSIZE (dst empty) when src does not fit: src is longer than
 * MT_MAX_PACKET or than the buffer's room behind the headroom. */
int mt_packet_copy(struct mt_packet *dst, uint8_t *buf, size_t cap, const struct mt_packet *src);

#endif
