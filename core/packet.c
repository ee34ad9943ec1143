/* The packet view: moves (data, len) inside a caller-owned buffer. Owns the invariant that
 * the view never leaves [base, base + cap) and never grows past MT_MAX_PACKET, the most the
 * 2-byte TCP framing (and an IP length) can carry, and that an offloaded packet's
 * virtio-net offsets keep pointing at the bytes they described when the front moves. */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "moontun/packet.h"
#include "moontun/vnet.h"

void mt_packet_init(struct mt_packet *pkt, uint8_t *buf, size_t cap, size_t headroom)
{
    /* A caller asking for more headroom than the buffer has gets all of it rather than a view
     * that starts outside the buffer. */
    if (headroom > cap)
        headroom = cap;
    pkt->base = buf;
    pkt->cap = cap;
    pkt->data = buf + headroom;
    pkt->len = 0;
    /* The buffer is reused for the next packet: nothing from the last one may leak through. */
    pkt->link = MT_LINK_IP;
    pkt->dir = MT_DIR_EGRESS;
    pkt->peer = NULL;
    memset(&pkt->vnet, 0, sizeof(pkt->vnet));
    pkt->hdrs_ok = false;
}

/* True when len + n stays within MT_MAX_PACKET. Subtract form, and len itself is checked
 * first: a packet that arrived longer than the ceiling must not make the subtraction wrap and
 * let it grow further (a liar's 65,791-byte frame plus a script's 4-byte tag once did). */
static bool fits(const struct mt_packet *pkt, size_t n)
{
    return pkt->len <= MT_MAX_PACKET && n <= MT_MAX_PACKET - pkt->len;
}

/* Whether the virtio-net offsets mean anything: they are read only for a packet with a
 * partial checksum or a GSO type. */
static bool offloaded(const struct mt_packet *pkt)
{
    return pkt->vnet.gso_type != MT_VNET_GSO_NONE || (pkt->vnet.flags & MT_VNET_F_NEEDS_CSUM);
}

int mt_packet_push(struct mt_packet *pkt, size_t n)
{
    if (n > mt_packet_headroom(pkt) || !fits(pkt, n))
        return -ENOSPC;
    if (offloaded(pkt)) {
        /* The offsets count from the first byte: a header in front moves the transport
         * header (and the checksum field) back by n. Both stay below len <= 65535. */
        if (n > 0xffffu - pkt->vnet.csum_start || n > 0xffffu - pkt->vnet.hdr_len)
            return -ENOSPC;
        pkt->vnet.csum_start = (uint16_t)(pkt->vnet.csum_start + n);
        if (pkt->vnet.hdr_len)
            pkt->vnet.hdr_len = (uint16_t)(pkt->vnet.hdr_len + n);
    }
    pkt->data -= n;
    pkt->len += n;
    mt_packet_changed(pkt);
    return 0;
}

int mt_packet_pull(struct mt_packet *pkt, size_t n)
{
    if (n > pkt->len)
        return -EINVAL;
    if (offloaded(pkt)) {
        /* hdr_len 0 means "not given" (a partial checksum without GSO): it stays 0. */
        if (n <= pkt->vnet.csum_start && (pkt->vnet.hdr_len == 0 || n <= pkt->vnet.hdr_len)) {
            pkt->vnet.csum_start = (uint16_t)(pkt->vnet.csum_start - n);
            if (pkt->vnet.hdr_len)
                pkt->vnet.hdr_len = (uint16_t)(pkt->vnet.hdr_len - n);
        } else {
            /* The bytes the offload header described (the transport header) are gone: what
             * is left is no packet the kernel or a segmenter could finish. Forget the
             * offload; the validation before the device or a peer judges the rest. */
            memset(&pkt->vnet, 0, sizeof(pkt->vnet));
        }
    }
    pkt->data += n;
    pkt->len -= n;
    mt_packet_changed(pkt);
    return 0;
}

int mt_packet_put(struct mt_packet *pkt, size_t n)
{
    if (n > mt_packet_tailroom(pkt) || !fits(pkt, n))
        return -ENOSPC;
    pkt->len += n;
    mt_packet_changed(pkt);
    return 0;
}

int mt_packet_copy(struct mt_packet *dst, uint8_t *buf, size_t cap, const struct mt_packet *src)
{
    mt_packet_init(dst, buf, cap, MT_HEADROOM);
    /* The one place a packet moves between buffers: a source longer than the room behind the
     * destination's headroom would be a heap overflow, whatever produced it. */
    if (src->len > MT_MAX_PACKET || src->len > mt_packet_tailroom(dst))
        return -EMSGSIZE;
    memcpy(dst->data, src->data, src->len);
    dst->len = src->len;
    dst->link = src->link;
    dst->dir = src->dir;
    dst->peer = src->peer;
    dst->vnet = src->vnet;
    dst->hdrs = src->hdrs; /* offsets from the first byte: the same in the copy */
    dst->hdrs_ok = src->hdrs_ok;
    return 0;
}

int mt_packet_resize(struct mt_packet *pkt, size_t n)
{
    if (n > MT_MAX_PACKET)
        return -ENOSPC;
    if (n <= pkt->len) {
        pkt->len = n;
        mt_packet_changed(pkt);
        return 0;
    }
    if (n - pkt->len > mt_packet_tailroom(pkt))
        return -ENOSPC;
    /* The tail may hold bytes of an earlier, longer packet: a script that grows a packet must
     * never see (or send) them. */
    memset(pkt->data + pkt->len, 0, n - pkt->len);
    pkt->len = n;
    mt_packet_changed(pkt);
    return 0;
}
