/* Userspace GRO: TCP segments that arrive one datagram each from a UDP peer are joined back
 * into a super-packet with a virtio-net header, so the device (and the kernel's TCP) takes
 * 64 KiB per write instead of one MTU. The same rules as Linux's tcp_gro_receive: same flow,
 * contiguous sequence numbers, identical headers (options included) but for lengths and the
 * IPv4 id, equal-sized segments with only the last allowed to be shorter. */
#include "gro.h"
#include "bytes.h"

#include <string.h>

#include "moontun/proto.h"
#include "moontun/vnet.h"

/* A TCP data segment we may join: IPv4 without fragments or IPv6 without extension headers,
 * only ACK/PSH set, some payload, a checksum that verifies. Fills the header geometry. */
static bool segment_shape(const uint8_t *pkt, size_t len, size_t *l4, size_t *hdrlen,
                          uint8_t *ipver)
{
    struct mt_hdrs h;
    mt_proto_parse(pkt, len, MT_LINK_IP, &h);
    if (h.l4 < 0 || h.l4proto != MT_IPPROTO_TCP || h.fragment || h.l3 != 0)
        return false;
    if (h.ipver == 6 ? h.l4 != 40 : pkt[0] != 0x45)
        return false; /* IP options or extension headers: rare, leave them to the kernel */
    if (h.l3len != len)
        return false; /* trailing bytes or a lying length */
    size_t thl = (size_t)(pkt[h.l4 + 12] >> 4) * 4;
    uint8_t flags = pkt[h.l4 + 13];
    if ((flags & ~(MT_TCP_ACK | MT_TCP_PSH)) != 0 || !(flags & MT_TCP_ACK))
        return false;
    if ((size_t)h.l4 + thl >= len)
        return false; /* no payload: a pure ACK goes as it is */
    if (!mt_proto_checksums_ok_h(pkt, len, &h))
        return false; /* let the kernel drop it and count it */
    *l4 = (size_t)h.l4;
    *hdrlen = (size_t)h.l4 + thl;
    *ipver = h.ipver;
    return true;
}

bool mt_gro_start(struct mt_gro *g, const void *owner, const uint8_t *pkt, size_t len)
{
    size_t l4, hdrlen;
    uint8_t ipver;
    if (!segment_shape(pkt, len, &l4, &hdrlen, &ipver))
        return false;
    memcpy(g->buf, pkt, len);
    g->len = len;
    g->owner = owner;
    g->l4 = l4;
    g->hdrlen = hdrlen;
    g->ipver = ipver;
    g->mss = (uint16_t)(len - hdrlen);
    g->next_seq = rd32(pkt + l4 + 4) + g->mss;
    g->segs = 1;
    g->closed = (pkt[l4 + 13] & MT_TCP_PSH) != 0;
    return true;
}

bool mt_gro_fits(const struct mt_gro *g, const void *owner, const uint8_t *pkt, size_t len)
{
    if (g->len == 0 || g->closed || owner != g->owner || len <= g->hdrlen)
        return false;
    size_t payload = len - g->hdrlen;
    if (payload > g->mss || payload > MT_MAX_PACKET - g->len)
        return false;
    const uint8_t *h = g->buf;
    /* Same addresses, and every header byte but lengths, ids, checksums, seq and flags. */
    if (g->ipver == 4) {
        if ((pkt[0] != 0x45) || pkt[1] != h[1] || pkt[8] != h[8] || pkt[9] != h[9] ||
            memcmp(pkt + 12, h + 12, 8) != 0 || (pkt[6] & 0x3F) != 0 || pkt[7] != 0)
            return false;
    } else {
        if ((pkt[0] >> 4) != 6 || memcmp(pkt, h, 4) != 0 || pkt[6] != h[6] || pkt[7] != h[7] ||
            memcmp(pkt + 8, h + 8, 32) != 0)
            return false;
    }
    const uint8_t *t = pkt + g->l4, *ht = h + g->l4;
    if (memcmp(t, ht, 4) != 0 || rd32(t + 4) != g->next_seq || memcmp(t + 8, ht + 8, 5) != 0 ||
        memcmp(t + 14, ht + 14, 2) != 0 || memcmp(t + 18, ht + 18, g->hdrlen - g->l4 - 18) != 0)
        return false; /* ports, seq, ack, data offset, window, options */
    size_t l4dummy, hdrlen;
    uint8_t ipver;
    return segment_shape(pkt, len, &l4dummy, &hdrlen, &ipver) && hdrlen == g->hdrlen;
}

void mt_gro_append(struct mt_gro *g, const uint8_t *pkt, size_t len)
{
    size_t payload = len - g->hdrlen;
    memcpy(g->buf + g->len, pkt + g->hdrlen, payload);
    g->len += payload;
    g->next_seq += (uint32_t)payload;
    g->segs++;
    uint8_t flags = pkt[g->l4 + 13];
    if (flags & MT_TCP_PSH)
        g->buf[g->l4 + 13] |= MT_TCP_PSH;
    /* A short or pushed segment ends a burst; the next one starts a new super-packet. */
    g->closed = payload < g->mss || (flags & MT_TCP_PSH) || g->len + g->mss > MT_MAX_PACKET;
}

size_t mt_gro_finish(struct mt_gro *g, struct mt_vnet_hdr *vnet)
{
    size_t len = g->len;
    memset(vnet, 0, sizeof(*vnet));
    g->len = 0;
    if (len == 0 || g->segs == 1)
        return len;
    uint8_t *p = g->buf;
    if (g->ipver == 4) {
        wr16(p + 2, (uint16_t)len);
        wr16(p + 10, 0);
        wr16(p + 10, mt_csum_fold(mt_csum_add(0, p, 20)));
    } else {
        wr16(p + 4, (uint16_t)(len - 40));
    }
    /* The kernel completes the TCP checksum (it trusts a partial one from the device): the
     * field holds the pseudo-header sum, as a NIC's TSO input would. The lengths above are
     * the whole's, so the sum is. */
    mt_proto_set_partial_csum(p, len, MT_LINK_IP);
    vnet->flags = MT_VNET_F_NEEDS_CSUM;
    vnet->gso_type = g->ipver == 4 ? MT_VNET_GSO_TCPV4 : MT_VNET_GSO_TCPV6;
    vnet->gso_size = g->mss;
    vnet->hdr_len = (uint16_t)g->hdrlen;
    vnet->csum_start = (uint16_t)g->l4;
    vnet->csum_offset = 16;
    return len;
}
