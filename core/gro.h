/* Receive coalescing (userspace GRO): consecutive TCP segments of one flow from one peer, as
 * a UDP peer sends them, become one super-packet written to the device in one go. Private to
 * the core. */
#ifndef MOONTUN_CORE_GRO_H
#define MOONTUN_CORE_GRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "moontun/packet.h"

struct mt_gro {
    uint8_t *buf;      /* MT_MAX_PACKET bytes: the super-packet being built */
    size_t len;        /* 0: nothing held */
    const void *owner; /* the peer the held segments came from */
    size_t l4, hdrlen; /* transport header offset; all headers */
    uint8_t ipver;
    uint16_t mss;      /* payload of the first segment: every one but the last has it */
    uint32_t next_seq; /* the sequence number the next segment must carry */
    unsigned segs;
    bool closed; /* a shorter or PSH segment ended it: nothing more may join */
};

/* True when pkt (an IP packet of a tun device) continues the held super-packet: same peer and
 * flow, next in sequence, same headers but for length and id, only ACK (and PSH) set, and a
 * valid checksum (coalesced segments are never checked again). */
bool mt_gro_fits(const struct mt_gro *g, const void *owner, const uint8_t *pkt, size_t len);
void mt_gro_append(struct mt_gro *g, const uint8_t *pkt, size_t len);
/* Starts holding pkt when it can begin a super-packet (a TCP data segment with a valid
 * checksum); false when it cannot (the caller delivers it as it is). */
bool mt_gro_start(struct mt_gro *g, const void *owner, const uint8_t *pkt, size_t len);
/* Makes the held segments one packet (lengths, IPv4 header checksum, the TCP checksum as the
 * partial pseudo-header sum) and fills vnet; returns its length and forgets it. One segment
 * comes back unchanged with vnet all zero. */
size_t mt_gro_finish(struct mt_gro *g, struct mt_vnet_hdr *vnet);

#endif
