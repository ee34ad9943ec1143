/* The virtio-net header of a tun/tap device opened with IFF_VNET_HDR, and the software
 * fallbacks for offloads a peer cannot take: completing a partial checksum and cutting a TCP
 * (or UDP_L4) GSO super-packet into ordinary packets. No allocation: segments go to scratch. */
#include <errno.h>
#include <string.h>

#include "moontun/proto.h"
#include "moontun/vnet.h"
#include "bytes.h"

/* The device speaks little-endian whatever the host is (TUNSETVNETLE is never used), so the
 * fields are assembled byte by byte rather than copied from a host struct. */
static inline uint16_t rdle16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}

static inline void wrle16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}

void mt_vnet_read(const uint8_t *src, struct mt_vnet_hdr *h)
{
    h->flags = src[0];
    h->gso_type = src[1];
    h->hdr_len = rdle16(src + 2);
    h->gso_size = rdle16(src + 4);
    h->csum_start = rdle16(src + 6);
    h->csum_offset = rdle16(src + 8);
}

void mt_vnet_write(uint8_t *dst, const struct mt_vnet_hdr *h)
{
    dst[0] = h->flags;
    dst[1] = h->gso_type;
    wrle16(dst + 2, h->hdr_len);
    wrle16(dst + 4, h->gso_size);
    wrle16(dst + 6, h->csum_start);
    wrle16(dst + 8, h->csum_offset);
}

static bool csum_offsets_ok(const struct mt_vnet_hdr *h, size_t len)
{
    size_t start = h->csum_start, off = h->csum_offset;
    /* A liar points csum_start past the end (we would sum bytes that are not there) or puts
     * the field's two bytes past the end (we would write outside the packet). */
    return start < len && off <= len - start && len - start - off >= 2;
}

int mt_vnet_complete_csum(uint8_t *pkt, size_t len, struct mt_vnet_hdr *h)
{
    if (!(h->flags & MT_VNET_F_NEEDS_CSUM))
        return 0;
    if (!csum_offsets_ok(h, len))
        return -EINVAL;
    size_t start = h->csum_start, off = h->csum_offset;
    /* The field holds the pseudo-header sum, so summing over it folds that in; the result is
     * written big-endian at whatever offset, which gives the same bytes Linux's
     * skb_checksum_help writes. */
    wr16(pkt + start + off, mt_csum_fold(mt_csum_add(0, pkt + start, len - start)));
    h->flags &= (uint8_t)~MT_VNET_F_NEEDS_CSUM;
    return 0;
}

/* What the up-front checks learned about a super-packet; nothing after them can fail. */
struct gso_plan {
    size_t l3;     /* IP header offset */
    size_t l4;     /* TCP/UDP header offset */
    size_t hdrlen; /* every header up to the L4 payload: copied to each segment */
    size_t paylen; /* L4 payload bytes of the whole super-packet */
    size_t mss;    /* payload bytes per segment */
    uint8_t ipver; /* 4 or 6 */
    bool tcp;      /* TCP, else UDP (UDP_L4) */
};

/* Checks a GSO super-packet against its header; 0 and the plan, or -EINVAL. Linux's own
 * rules (virtio_net_hdr_to_skb, tcp_gso_segment) are the model: a packet the kernel would
 * refuse we refuse too. */
static int gso_check(const uint8_t *pkt, size_t len, const struct mt_vnet_hdr *vh,
                     enum mt_link link, struct gso_plan *plan)
{
    uint8_t type = vh->gso_type & (uint8_t)~MT_VNET_GSO_ECN;
    uint8_t want_ver, want_proto;
    if (type == MT_VNET_GSO_TCPV4) {
        want_ver = 4;
        want_proto = MT_IPPROTO_TCP;
    } else if (type == MT_VNET_GSO_TCPV6) {
        want_ver = 6;
        want_proto = MT_IPPROTO_TCP;
    } else if (type == MT_VNET_GSO_UDP_L4) {
        /* ECN (the CWR rule) means nothing for UDP, so Linux refuses the pair. */
        if (vh->gso_type & MT_VNET_GSO_ECN)
            return -EINVAL;
        want_ver = 0; /* either version */
        want_proto = MT_IPPROTO_UDP;
    } else {
        /* UFO (GSO_UDP: IP fragmentation of one big datagram) moontun never enables, and
         * GSO_NONE with the ECN bit or an unknown type is a header we do not understand. */
        return -EINVAL;
    }
    /* A gso_size of 0 would loop forever, or divide by zero; a tiny one fans one packet out
     * into tens of thousands of segments. */
    if (vh->gso_size < MT_VNET_GSO_MIN)
        return -EINVAL;

    struct mt_hdrs h;
    mt_proto_parse(pkt, len, link, &h);
    /* TCPV4 on an IPv6 packet, UDP_L4 on TCP, a transport header cut short or a TCP data
     * offset past the end: parse leaves l4 at -1 or names another protocol. */
    if (h.l4 < 0 || h.l4proto != want_proto || (want_ver && h.ipver != want_ver))
        return -EINVAL;
    /* A fragment's transport header and payload cannot be re-cut (and TCP never fragments). */
    if (h.fragment)
        return -EINVAL;
    const uint8_t *ip = pkt + h.l3;
    size_t l3len = len - (size_t)h.l3;
    /* The IP length must be the whole super-packet, as the kernel writes it (<= 64 KiB). A
     * 0 (BIG TCP, IPv6 jumbo) or any other claim means bytes we cannot account for: trailing
     * junk that would become payload, or a packet longer than a 16-bit length can say. */
    if (h.ipver == 4 && rd16(ip + 2) != l3len)
        return -EINVAL;
    if (h.ipver == 6 && (l3len < MT_IP6_HLEN || rd16(ip + 4) != l3len - MT_IP6_HLEN))
        return -EINVAL;

    size_t l4 = (size_t)h.l4;
    size_t l4hlen = want_proto == MT_IPPROTO_TCP ? (size_t)(pkt[l4 + 12] >> 4) * 4 : MT_UDP_HLEN;
    /* parse checked the TCP data offset (and UDP's 8 bytes) against the L4 length, so the
     * headers end inside the packet; the payload may be empty. */
    size_t hdrlen = l4 + l4hlen;
    /* hdr_len is only a hint (Linux computes the real one, as we do), but the kernel refuses
     * one that claims more than the packet, and so do we: a liar's header lies elsewhere. */
    if (vh->hdr_len > len)
        return -EINVAL;
    if (vh->flags & MT_VNET_F_NEEDS_CSUM) {
        /* The partial checksum must be the transport header's own field; a csum_start
         * elsewhere (past the end, inside the IP header) is a liar's, as recent Linux also
         * decides (tcp_gso_segment refuses a csum_start that is not the transport header). */
        size_t field = want_proto == MT_IPPROTO_TCP ? 16 : 6;
        if (vh->csum_start != l4 || vh->csum_offset != field)
            return -EINVAL;
    }
    plan->l3 = (size_t)h.l3;
    plan->l4 = l4;
    plan->hdrlen = hdrlen;
    plan->paylen = len - hdrlen;
    plan->mss = vh->gso_size;
    plan->ipver = h.ipver;
    plan->tcp = want_proto == MT_IPPROTO_TCP;
    return 0;
}

/* Rewrites the copied headers in seg for segment i of n, carrying seglen bytes in total. */
static void gso_fix(uint8_t *seg, size_t seglen, const struct gso_plan *plan, const uint8_t *pkt,
                    size_t i, size_t n, enum mt_link link)
{
    uint8_t *ip = seg + plan->l3;
    if (plan->ipver == 4) {
        wr16(ip + 2, (uint16_t)(seglen - plan->l3));
        /* Consecutive ids, as Linux's GSO gives each segment (unless FIXEDID). */
        wr16(ip + 4, (uint16_t)(rd16(pkt + plan->l3 + 4) + i));
    } else {
        wr16(ip + 4, (uint16_t)(seglen - plan->l3 - MT_IP6_HLEN));
    }
    uint8_t *l4 = seg + plan->l4;
    if (plan->tcp) {
        wr32(l4 + 4, rd32(pkt + plan->l4 + 4) + (uint32_t)(i * plan->mss));
        uint8_t flags = pkt[plan->l4 + 13];
        /* The stream ends and is pushed once, after the last byte; a congestion window cut is
         * announced once, by the first. */
        if (i + 1 < n)
            flags &= (uint8_t) ~(MT_TCP_FIN | MT_TCP_PSH);
        if (i > 0)
            flags &= (uint8_t)~MT_TCP_CWR;
        l4[13] = flags;
    } else {
        wr16(l4 + 4, (uint16_t)(seglen - plan->l4));
        /* Non-zero, so fix_checksums computes one rather than keeping IPv4's "no checksum":
         * every GSO datagram had a partial one to complete. */
        wr16(l4 + 6, 0xffff);
    }
    /* From scratch: the super-packet's partial sum covered the super length, and the IP
     * header checksum (if any) its total length. Cannot fail: the headers were checked. */
    (void)mt_proto_fix_checksums(seg, seglen, link);
}

int mt_vnet_segment(const uint8_t *pkt, size_t len, const struct mt_vnet_hdr *h, enum mt_link link,
                    uint8_t *scratch, size_t scratchsz,
                    int (*emit)(void *ctx, const uint8_t *seg, size_t seglen), void *ctx)
{
    int rc;
    if (h->gso_type == MT_VNET_GSO_NONE) {
        /* Linux refuses hdr_len past the packet on every write, GSO or not. */
        if (h->hdr_len > len)
            return -EINVAL;
        if (!(h->flags & MT_VNET_F_NEEDS_CSUM)) {
            rc = emit(ctx, pkt, len);
            return rc < 0 ? rc : 1;
        }
        /* A liar's offsets are refused before the caller's scratch size is judged. */
        if (!csum_offsets_ok(h, len))
            return -EINVAL;
        if (scratchsz < len)
            return -ENOSPC;
        memcpy(scratch, pkt, len);
        struct mt_vnet_hdr tmp = *h;
        rc = mt_vnet_complete_csum(scratch, len, &tmp);
        if (rc < 0)
            return rc;
        rc = emit(ctx, scratch, len);
        return rc < 0 ? rc : 1;
    }

    struct gso_plan plan;
    rc = gso_check(pkt, len, h, link, &plan);
    if (rc < 0)
        return rc;
    size_t n = plan.paylen == 0 ? 1 : (plan.paylen - 1) / plan.mss + 1;
    size_t first = plan.paylen < plan.mss ? plan.paylen : plan.mss;
    if (scratchsz < plan.hdrlen || scratchsz - plan.hdrlen < first)
        return -ENOSPC;
    for (size_t i = 0; i < n; i++) {
        size_t off = i * plan.mss;
        size_t chunk = plan.paylen - off < plan.mss ? plan.paylen - off : plan.mss;
        /* The headers again each time: emit may have written over the last segment. */
        memcpy(scratch, pkt, plan.hdrlen);
        memcpy(scratch + plan.hdrlen, pkt + plan.hdrlen + off, chunk);
        gso_fix(scratch, plan.hdrlen + chunk, &plan, pkt, i, n, link);
        rc = emit(ctx, scratch, plan.hdrlen + chunk);
        /* The caller's error, part-way: the segments before it are already out, and the
         * sender's retransmission covers the rest, as after any drop. */
        if (rc < 0)
            return rc;
    }
    return (int)n;
}

int mt_vnet_check(uint8_t *pkt, size_t len, struct mt_vnet_hdr *h, enum mt_link link,
                  size_t max_seg)
{
    /* A flag we do not know may mean something to a later kernel; refuse rather than pass
     * it on. DATA_VALID would make the kernel skip checking a checksum nobody checked. */
    if (h->flags & (uint8_t) ~(MT_VNET_F_NEEDS_CSUM | MT_VNET_F_DATA_VALID))
        return -EINVAL;
    h->flags &= (uint8_t)~MT_VNET_F_DATA_VALID;
    if (h->gso_type == MT_VNET_GSO_NONE) {
        if (!(h->flags & MT_VNET_F_NEEDS_CSUM)) {
            memset(h, 0, sizeof(*h));
            return 0;
        }
        struct mt_hdrs hd;
        mt_proto_parse(pkt, len, link, &hd);
        /* A partial checksum is the TCP or UDP field of a whole, unfragmented header: a
         * csum_start anywhere else makes the kernel write two bytes where a liar chose. */
        size_t field = hd.l4proto == MT_IPPROTO_TCP ? 16 : 6;
        if (hd.l4 < 0 || hd.fragment ||
            (hd.l4proto != MT_IPPROTO_TCP && hd.l4proto != MT_IPPROTO_UDP) ||
            h->csum_start != (size_t)hd.l4 || h->csum_offset != field)
            return -EINVAL;
        h->hdr_len = 0;
        h->gso_size = 0;
        return 0;
    }
    struct gso_plan plan;
    if (gso_check(pkt, len, h, link, &plan) < 0)
        return -EINVAL;
    size_t headers = plan.hdrlen - plan.l3; /* what each segment repeats, from the IP header */
    if (headers >= max_seg || plan.mss > max_seg - headers)
        return -EINVAL;
    h->hdr_len = (uint16_t)plan.hdrlen;
    if (!(h->flags & MT_VNET_F_NEEDS_CSUM)) {
        /* A script finished the checksum of the whole (pkt:bytes()); the kernel and the
         * segmenter expect the partial form every super-packet from a device has. */
        mt_proto_set_partial_csum(pkt, len, link);
        h->flags |= MT_VNET_F_NEEDS_CSUM;
        h->csum_start = (uint16_t)plan.l4;
        h->csum_offset = plan.tcp ? 16 : 6;
    }
    return 0;
}

int mt_vnet_make_super(uint8_t *pkt, size_t len, enum mt_link link, size_t mtu,
                       struct mt_vnet_hdr *h)
{
    struct mt_hdrs hd;
    mt_proto_parse(pkt, len, link, &hd);
    if (hd.l4 < 0 || hd.l4proto != MT_IPPROTO_TCP || hd.fragment)
        return -EINVAL;
    size_t l4 = (size_t)hd.l4, thl = (size_t)(pkt[l4 + 12] >> 4) * 4;
    size_t headers = l4 - (size_t)hd.l3 + thl;
    if (headers >= mtu || mtu - headers < MT_VNET_GSO_MIN || mtu - headers > 0xffff)
        return -EINVAL;
    struct mt_vnet_hdr v = {
        .flags = MT_VNET_F_NEEDS_CSUM,
        .gso_type = hd.ipver == 4 ? MT_VNET_GSO_TCPV4 : MT_VNET_GSO_TCPV6,
        .hdr_len = (uint16_t)(l4 + thl),
        .gso_size = (uint16_t)(mtu - headers),
        .csum_start = (uint16_t)l4,
        .csum_offset = 16,
    };
    /* Only a packet the segmenter (and the kernel) would cut: IP lengths for the whole. */
    struct gso_plan plan;
    if (gso_check(pkt, len, &v, link, &plan) < 0 || mt_proto_set_partial_csum(pkt, len, link) < 0)
        return -EINVAL;
    *h = v;
    return 0;
}

void mt_vnet_fit_mtu(const uint8_t *pkt, size_t len, enum mt_link link, size_t mtu,
                     struct mt_vnet_hdr *h)
{
    uint8_t type = h->gso_type & (uint8_t)~MT_VNET_GSO_ECN;
    if (type != MT_VNET_GSO_TCPV4 && type != MT_VNET_GSO_TCPV6)
        return;
    struct mt_hdrs hd;
    mt_proto_parse(pkt, len, link, &hd);
    if (hd.l4 < 0 || hd.l4proto != MT_IPPROTO_TCP)
        return; /* the segmenter refuses it anyway */
    size_t l4 = (size_t)hd.l4, thl = (size_t)(pkt[l4 + 12] >> 4) * 4;
    size_t headers = l4 - (size_t)hd.l3 + thl;
    if (headers < mtu && h->gso_size > mtu - headers && mtu - headers >= MT_VNET_GSO_MIN)
        h->gso_size = (uint16_t)(mtu - headers);
}
