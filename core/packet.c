/* The packet view: moves (data, len) inside a caller-owned buffer. Owns the invariant that
 * the view never leaves [base, base + cap) and never grows past MT_MAX_PACKET, the most the
 * 2-byte TCP framing can carry. */
#include <errno.h>
#include <string.h>

#include "moontun/packet.h"

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
}

int mt_packet_push(struct mt_packet *pkt, size_t n)
{
    /* Subtract form throughout: n comes from scripts, and len + n could wrap. */
    if (n > mt_packet_headroom(pkt) || n > MT_MAX_PACKET - pkt->len)
        return -ENOSPC;
    pkt->data -= n;
    pkt->len += n;
    return 0;
}

int mt_packet_pull(struct mt_packet *pkt, size_t n)
{
    if (n > pkt->len)
        return -EINVAL;
    pkt->data += n;
    pkt->len -= n;
    return 0;
}

int mt_packet_put(struct mt_packet *pkt, size_t n)
{
    if (n > mt_packet_tailroom(pkt) || n > MT_MAX_PACKET - pkt->len)
        return -ENOSPC;
    pkt->len += n;
    return 0;
}

int mt_packet_resize(struct mt_packet *pkt, size_t n)
{
    if (n > MT_MAX_PACKET)
        return -ENOSPC;
    if (n <= pkt->len) {
        pkt->len = n;
        return 0;
    }
    if (n - pkt->len > mt_packet_tailroom(pkt))
        return -ENOSPC;
    /* The tail may hold bytes of an earlier, longer packet: a script that grows a packet must
     * never see (or send) them. */
    memset(pkt->data + pkt->len, 0, n - pkt->len);
    pkt->len = n;
    return 0;
}
