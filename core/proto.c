/* Header parsing, Internet checksums and one-line summaries for what the tunnel carries:
 * Ethernet (with up to two VLAN tags), IPv4, IPv6 and its extension headers, TCP, UDP, ICMP
 * and ICMPv6. Every offset is checked against the bytes we were given before it is read. */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "moontun/addr.h"
#include "moontun/proto.h"
#include "bytes.h"

#define ETHERTYPE_ARP  0x0806
#define ETHERTYPE_QINQ 0x88A8
/* Every ICMP message (RFC 792) and every ICMPv6 message a tunnel meets (echo, errors, ND) has
 * at least type, code, checksum and four more bytes; asking for 8 lets callers read id/seq. */
#define ICMP_HLEN 8

/* IPv6 extension headers we walk through (RFC 8200 section 4). */
#define IP6_HOPOPTS  0
#define IP6_ROUTING  43
#define IP6_FRAGMENT 44
#define IP6_AH       51
#define IP6_NONEXT   59
#define IP6_DSTOPTS  60

/* Walks the Ethernet header and up to two VLAN tags (802.1Q or 802.1ad outer tag).
 * Returns the offset of the L2 payload, or 0 when the frame is too short for what it
 * announces; *type is the inner ethertype and *vlan the innermost VLAN id (or -1). */
static size_t eth_walk(const uint8_t *p, size_t len, uint16_t *type, int *vlan)
{
    *vlan = -1;
    if (len < MT_ETH_HLEN)
        return 0;
    size_t off = MT_ETH_HLEN;
    *type = rd16(p + 12);
    for (int i = 0; i < 2 && (*type == MT_ETHERTYPE_VLAN || *type == ETHERTYPE_QINQ); i++) {
        /* A tag is 4 bytes (TCI, then the next type); a frame cut inside one has no payload
         * we can name. */
        if (len - off < 4)
            return 0;
        *vlan = rd16(p + off) & 0x0fff;
        *type = rd16(p + off + 2);
        off += 4;
    }
    return off;
}

static bool l4_known(uint8_t ipver, uint8_t proto)
{
    return proto == MT_IPPROTO_TCP || proto == MT_IPPROTO_UDP ||
           (ipver == 4 && proto == MT_IPPROTO_ICMP) || (ipver == 6 && proto == MT_IPPROTO_ICMP6);
}

/* Sets h->l4 when the transport header at p[off..] is whole within the IP payload of l4len
 * bytes. */
static void parse_l4(const uint8_t *p, size_t off, struct mt_hdrs *h)
{
    if (!l4_known(h->ipver, h->l4proto))
        return;
    size_t need = h->l4proto == MT_IPPROTO_TCP   ? MT_TCP_HLEN
                  : h->l4proto == MT_IPPROTO_UDP ? MT_UDP_HLEN
                                                 : ICMP_HLEN;
    if (h->l4len < need)
        return;
    if (h->l4proto == MT_IPPROTO_TCP) {
        /* A liar sets the data offset below 5 or past the segment; either way the options
         * and payload boundaries would be nonsense, so there is no usable TCP header. */
        size_t doff = (size_t)(p[off + 12] >> 4) * 4;
        if (doff < MT_TCP_HLEN || doff > h->l4len)
            return;
    }
    h->l4 = (int32_t)off;
}

static void parse_ip4(const uint8_t *p, size_t len, size_t off, struct mt_hdrs *h)
{
    if (len - off < MT_IP4_HLEN)
        return;
    const uint8_t *ip = p + off;
    h->l3 = (int32_t)off;
    h->ipver = 4;
    h->l4proto = ip[9];
    size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
    size_t tot = rd16(ip + 2);
    /* A liar claims more bytes than arrived; we believe only what is here. The claim is
     * still honoured when shorter, because a tap frame carries padding after a small IP
     * packet that belongs to no header. */
    h->l3len = (uint32_t)(tot < len - off ? tot : len - off);
    uint16_t frag = rd16(ip + 6);
    h->fragment = (frag & 0x3fff) != 0; /* MF set or a non-zero offset */
    /* IHL below 5 would overlap the fixed header with the payload; IHL past the claimed
     * length (IHL 15 on a 20-byte packet) would put the transport header past the end. */
    if (ihl < MT_IP4_HLEN || ihl > h->l3len)
        return;
    h->l4len = h->l3len - (uint32_t)ihl;
    /* Only the first fragment holds the transport header. */
    if ((frag & 0x1fff) != 0)
        return;
    parse_l4(p, off + ihl, h);
}

static void parse_ip6(const uint8_t *p, size_t len, size_t off, struct mt_hdrs *h)
{
    if (len - off < MT_IP6_HLEN)
        return;
    const uint8_t *ip = p + off;
    h->l3 = (int32_t)off;
    h->ipver = 6;
    size_t plen = rd16(ip + 4);
    /* Payload length 0 is a jumbogram (RFC 2675), which a 64 KiB buffer cannot hold; the
     * clip below then leaves just the fixed header. A liar's larger claim is clipped too. */
    size_t l3len = MT_IP6_HLEN + plen;
    if (l3len > len - off)
        l3len = len - off;
    h->l3len = (uint32_t)l3len;
    uint8_t next = ip[6];
    size_t pos = MT_IP6_HLEN;
    for (;;) {
        size_t hl;
        if (next == IP6_HOPOPTS || next == IP6_ROUTING || next == IP6_DSTOPTS ||
            next == IP6_FRAGMENT || next == IP6_AH) {
            /* Each of these starts with (next header, length); a packet cut before those two
             * bytes names no transport protocol. */
            if (l3len - pos < 2) {
                h->l4proto = next;
                return;
            }
            if (next == IP6_FRAGMENT)
                hl = 8;
            else if (next == IP6_AH)
                hl = ((size_t)ip[pos + 1] + 2) * 4;
            else
                hl = ((size_t)ip[pos + 1] + 1) * 8;
            /* A liar's length would walk us past the end of the packet. */
            if (hl > l3len - pos) {
                h->l4proto = next;
                return;
            }
            if (next == IP6_FRAGMENT) {
                h->fragment = true;
                /* Only the fragment at offset 0 holds the transport header. */
                if ((rd16(ip + pos + 2) & 0xfff8) != 0) {
                    h->l4proto = ip[pos];
                    h->l4len = (uint32_t)(l3len - pos - hl);
                    return;
                }
            }
            next = ip[pos];
            pos += hl; /* each header is at least 8 bytes, so this loop ends */
            continue;
        }
        break; /* 59 (no next header), the transport protocol, or one we do not know */
    }
    h->l4proto = next;
    h->l4len = (uint32_t)(l3len - pos);
    if (next == IP6_NONEXT)
        return;
    parse_l4(p, off + pos, h);
}

uint64_t mt_proto_parse_count;

const struct mt_hdrs *mt_packet_hdrs(struct mt_packet *pkt)
{
    if (!pkt->hdrs_ok) {
        mt_proto_parse(pkt->data, pkt->len, pkt->link, &pkt->hdrs);
        pkt->hdrs_ok = true;
    }
    return &pkt->hdrs;
}

void mt_proto_parse(const uint8_t *p, size_t len, enum mt_link link, struct mt_hdrs *h)
{
    mt_proto_parse_count++;
    memset(h, 0, sizeof(*h));
    h->l2 = h->l3 = h->l4 = -1;
    size_t off = 0;
    if (link == MT_LINK_ETH) {
        int vlan;
        off = eth_walk(p, len, &h->ethertype, &vlan);
        if (off == 0)
            return;
        h->l2 = 0;
    } else {
        if (len < 1)
            return;
        /* tun (IFF_NO_PI) has no link header: the version nibble is all we have. */
        unsigned v = p[0] >> 4;
        h->ethertype = v == 4 ? MT_ETHERTYPE_IP4 : v == 6 ? MT_ETHERTYPE_IP6 : 0;
    }
    /* The first nibble must agree with the ethertype, or it is not the header it claims. */
    if (len - off < 1)
        return;
    unsigned v = p[off] >> 4;
    if (h->ethertype == MT_ETHERTYPE_IP4 && v == 4)
        parse_ip4(p, len, off, h);
    else if (h->ethertype == MT_ETHERTYPE_IP6 && v == 6)
        parse_ip6(p, len, off, h);
}

/* Checksums (RFC 1071). The sum is of big-endian 16-bit words; a chunk with an odd length is
 * padded with a zero byte at its end, which is right only for the last chunk of the data:
 * when summing in pieces, every piece except the last must have an even length (an odd one
 * would shift the byte lanes of everything after it). Pseudo-headers and headers are even,
 * so the pieces we sum always are. */
uint32_t mt_csum_add(uint32_t sum, const void *data, size_t len)
{
    const uint8_t *p = data;
    uint64_t acc = sum;
    /* 8 bytes at a time as two big-endian 32-bit words: since 2^16 = 1 (mod 0xffff), a sum of
     * 32-bit words folds to the same value as the sum of their 16-bit halves. memcpy keeps
     * this legal at any alignment. A 64-bit accumulator cannot overflow below 16 GiB. */
    while (len >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        w = be64toh(w);
        acc += (w >> 32) + (w & 0xffffffffu);
        p += 8;
        len -= 8;
    }
    while (len >= 2) {
        acc += rd16(p);
        p += 2;
        len -= 2;
    }
    if (len)
        acc += (uint32_t)p[0] << 8;
    /* Fold to 16 bits so callers can keep adding words without overflowing the uint32_t. */
    while (acc >> 16)
        acc = (acc & 0xffff) + (acc >> 16);
    return (uint32_t)acc;
}

uint16_t mt_csum_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

uint16_t mt_csum_update16(uint16_t csum, uint16_t old_word, uint16_t new_word)
{
    /* RFC 1624 eqn. 3, HC' = ~(~HC + ~m + m'): unlike eqn. 2 it never yields +0 where a full
     * recompute would give -0, so the two always agree. */
    uint32_t sum = (uint16_t)~csum;
    sum += (uint16_t)~old_word;
    sum += new_word;
    return mt_csum_fold(sum);
}

uint16_t mt_csum_update(uint16_t csum, const uint8_t *old_bytes, const uint8_t *new_bytes,
                        size_t len)
{
    /* The span must start at an even offset from the start of what the checksum covers, as
     * every address does; an odd trailing byte is taken as the high byte of its word. */
    uint32_t sum = (uint16_t)~csum;
    size_t i;
    for (i = 0; len - i >= 2; i += 2) {
        sum += (uint16_t)~rd16(old_bytes + i);
        sum += rd16(new_bytes + i);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if (i < len) {
        sum += (uint16_t) ~(old_bytes[i] << 8);
        sum += (uint32_t)new_bytes[i] << 8;
    }
    return mt_csum_fold(sum);
}

/* Where the transport protocol keeps its checksum, relative to its header. */
static size_t l4_csum_off(uint8_t proto)
{
    return proto == MT_IPPROTO_TCP ? 16 : proto == MT_IPPROTO_UDP ? 6 : 2;
}

/* The sum of the pseudo-header (RFC 793/768 for IPv4, RFC 8200 8.1 for IPv6). ICMPv4 has
 * none. Uses the IPv6 header's destination even when a routing header names a later one. */
static uint32_t pseudo_sum(const uint8_t *p, const struct mt_hdrs *h)
{
    const uint8_t *ip = p + h->l3;
    if (h->ipver == 4) {
        if (h->l4proto == MT_IPPROTO_ICMP)
            return 0;
        uint32_t sum = mt_csum_add(0, ip + 12, 8);
        return sum + h->l4proto + h->l4len;
    }
    uint32_t sum = mt_csum_add(0, ip + 8, 32);
    return sum + (h->l4len >> 16) + (h->l4len & 0xffff) + h->l4proto;
}

static bool ip4_header_whole(const uint8_t *p, size_t len, const struct mt_hdrs *h, size_t *ihl)
{
    if (h->ipver != 4)
        return false;
    *ihl = (size_t)(p[h->l3] & 0x0f) * 4;
    /* A liar's IHL below 5 or past the end leaves no header we can checksum. */
    return *ihl >= MT_IP4_HLEN && *ihl <= len - (size_t)h->l3;
}

/* Fragments carry a piece of a checksum that covers the whole datagram; it cannot be judged
 * or recomputed from one piece. */
static bool l4_checksummable(const struct mt_hdrs *h)
{
    return h->l4 >= 0 && !h->fragment;
}

int mt_proto_fix_checksums(uint8_t *p, size_t len, enum mt_link link)
{
    struct mt_hdrs h;
    mt_proto_parse(p, len, link, &h);
    if (h.l3 < 0)
        return -EINVAL;
    bool done = false;
    size_t ihl;
    if (ip4_header_whole(p, len, &h, &ihl)) {
        uint8_t *ip = p + h.l3;
        wr16(ip + 10, 0);
        wr16(ip + 10, mt_csum_fold(mt_csum_add(0, ip, ihl)));
        done = true;
    }
    if (l4_checksummable(&h)) {
        uint8_t *l4 = p + h.l4;
        uint8_t *field = l4 + l4_csum_off(h.l4proto);
        /* UDP over IPv4 may send no checksum (0); keep that choice rather than invent one. */
        if (h.ipver == 4 && h.l4proto == MT_IPPROTO_UDP && rd16(field) == 0)
            return 0;
        wr16(field, 0);
        uint16_t c = mt_csum_fold(mt_csum_add(pseudo_sum(p, &h), l4, h.l4len));
        /* For UDP a computed 0 goes out as 0xFFFF, because 0 means "no checksum". */
        if (c == 0 && h.l4proto == MT_IPPROTO_UDP)
            c = 0xffff;
        wr16(field, c);
        done = true;
    }
    return done ? 0 : -EINVAL;
}

int mt_proto_set_partial_csum(uint8_t *p, size_t len, enum mt_link link)
{
    struct mt_hdrs h;
    mt_proto_parse(p, len, link, &h);
    if (!l4_checksummable(&h) || (h.l4proto != MT_IPPROTO_TCP && h.l4proto != MT_IPPROTO_UDP))
        return -EINVAL;
    /* Not complemented: the completion sums over it and complements the total. */
    wr16(p + h.l4 + l4_csum_off(h.l4proto), (uint16_t)~mt_csum_fold(pseudo_sum(p, &h)));
    return 0;
}

bool mt_proto_checksums_ok_h(const uint8_t *p, size_t len, const struct mt_hdrs *h)
{
    if (h->l3 < 0)
        return true; /* nothing there carries a checksum */
    size_t ihl;
    if (ip4_header_whole(p, len, h, &ihl) && mt_csum_fold(mt_csum_add(0, p + h->l3, ihl)) != 0)
        return false;
    if (!l4_checksummable(h))
        return true;
    const uint8_t *l4 = p + h->l4;
    if (h->ipver == 4 && h->l4proto == MT_IPPROTO_UDP && rd16(l4 + 6) == 0)
        return true;
    return mt_csum_fold(mt_csum_add(pseudo_sum(p, h), l4, h->l4len)) == 0;
}

bool mt_proto_checksums_ok(const uint8_t *p, size_t len, enum mt_link link)
{
    struct mt_hdrs h;
    mt_proto_parse(p, len, link, &h);
    return mt_proto_checksums_ok_h(p, len, &h);
}

/* Summaries. Appends with snprintf semantics but never runs pos past the buffer, so a long
 * line is cut, not overflowed. */
struct sbuf {
    char *s;
    size_t sz;
    size_t pos;
};

__attribute__((format(printf, 2, 3))) static void sb_printf(struct sbuf *b, const char *fmt, ...)
{
    if (b->sz == 0 || b->pos >= b->sz - 1)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b->s + b->pos, b->sz - b->pos, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > b->sz - 1 - b->pos)
        b->pos = b->sz - 1;
    else
        b->pos += (size_t)n;
}

static const char *icmp4_name(uint8_t type)
{
    switch (type) {
    case 0:
        return "echo reply";
    case 3:
        return "unreachable";
    case 5:
        return "redirect";
    case 8:
        return "echo request";
    case 11:
        return "time exceeded";
    case 12:
        return "parameter problem";
    default:
        return NULL;
    }
}

static const char *icmp6_name(uint8_t type)
{
    switch (type) {
    case 1:
        return "destination unreachable";
    case 2:
        return "packet too big";
    case 3:
        return "time exceeded";
    case 4:
        return "parameter problem";
    case 128:
        return "echo request";
    case 129:
        return "echo reply";
    case 133:
        return "router solicitation";
    case 134:
        return "router advertisement";
    case 135:
        return "neighbor solicitation";
    case 136:
        return "neighbor advertisement";
    default:
        return NULL;
    }
}

static const char *proto_name(uint8_t proto)
{
    switch (proto) {
    case MT_IPPROTO_TCP:
        return "tcp";
    case MT_IPPROTO_UDP:
        return "udp";
    case MT_IPPROTO_ICMP:
        return "ICMP";
    case MT_IPPROTO_ICMP6:
        return "ICMP6";
    default:
        return NULL;
    }
}

static void summary_l4(struct sbuf *b, const uint8_t *p, const struct mt_hdrs *h, const char *src,
                       const char *dst)
{
    const uint8_t *l4 = p + h->l4;
    if (h->l4proto == MT_IPPROTO_TCP || h->l4proto == MT_IPPROTO_UDP) {
        sb_printf(b, "%s.%u > %s.%u: ", src, rd16(l4), dst, rd16(l4 + 2));
        if (h->l4proto == MT_IPPROTO_UDP) {
            sb_printf(b, "udp");
            return;
        }
        uint8_t f = l4[13];
        char flags[10];
        size_t n = 0;
        /* tcpdump's letters, in its order; '.' is ACK. */
        if (f & 0x02)
            flags[n++] = 'S';
        if (f & 0x01)
            flags[n++] = 'F';
        if (f & 0x08)
            flags[n++] = 'P';
        if (f & 0x04)
            flags[n++] = 'R';
        if (f & 0x20)
            flags[n++] = 'U';
        if (f & 0x40)
            flags[n++] = 'E';
        if (f & 0x80)
            flags[n++] = 'W';
        if (f & 0x10)
            flags[n++] = '.';
        flags[n] = '\0';
        sb_printf(b, "tcp [%s] seq %u", n ? flags : "none", rd32(l4 + 4));
        if (f & 0x10)
            sb_printf(b, " ack %u", rd32(l4 + 8));
        sb_printf(b, " win %u", rd16(l4 + 14));
        return;
    }
    bool v6 = h->l4proto == MT_IPPROTO_ICMP6;
    const char *name = v6 ? icmp6_name(l4[0]) : icmp4_name(l4[0]);
    sb_printf(b, "%s > %s: %s ", src, dst, v6 ? "ICMP6" : "ICMP");
    if (name)
        sb_printf(b, "%s", name);
    else
        sb_printf(b, "type %u", l4[0]);
    if (l4[1] != 0 || !name)
        sb_printf(b, " code %u", l4[1]);
    bool echo = v6 ? (l4[0] == 128 || l4[0] == 129) : (l4[0] == 0 || l4[0] == 8);
    if (echo)
        sb_printf(b, ", id %u, seq %u", rd16(l4 + 4), rd16(l4 + 6));
}

/* The text of the 4 or 16 address bytes at b (addr.c formats every address). */
static void addr_text(enum mt_addr_kind kind, const uint8_t *b, char *buf, size_t bufsz)
{
    struct mt_addr a = {.kind = (uint8_t)kind};
    memcpy(a.b, b, kind == MT_ADDR_IP4 ? 4 : 16);
    mt_addr_str(&a, buf, bufsz);
}

static void summary_ip(struct sbuf *b, const uint8_t *p, const struct mt_hdrs *h)
{
    char src[INET6_ADDRSTRLEN], dst[INET6_ADDRSTRLEN];
    const uint8_t *ip = p + h->l3;
    if (h->ipver == 4) {
        addr_text(MT_ADDR_IP4, ip + 12, src, sizeof(src));
        addr_text(MT_ADDR_IP4, ip + 16, dst, sizeof(dst));
        sb_printf(b, "IP ");
    } else {
        addr_text(MT_ADDR_IP6, ip + 8, src, sizeof(src));
        addr_text(MT_ADDR_IP6, ip + 24, dst, sizeof(dst));
        sb_printf(b, "IP6 ");
    }
    if (h->l4 >= 0) {
        summary_l4(b, p, h, src, dst);
        if (h->fragment)
            sb_printf(b, " (first fragment)");
        return;
    }
    sb_printf(b, "%s > %s: ", src, dst);
    const char *name = proto_name(h->l4proto);
    bool first = true;
    if (h->fragment) {
        /* Recover the offset from whichever header holds it, to tell first from rest. */
        if (h->ipver == 4)
            first = (rd16(ip + 6) & 0x1fff) == 0;
        else
            first = false; /* parse only stops at a fragment header that is not first */
    }
    if (!first) {
        if (name)
            sb_printf(b, "%s fragment", name);
        else
            sb_printf(b, "ip-proto-%u fragment", h->l4proto);
    } else if (name && l4_known(h->ipver, h->l4proto)) {
        sb_printf(b, "truncated %s", name);
    } else if (h->l4proto == IP6_NONEXT && h->ipver == 6) {
        sb_printf(b, "no next header");
    } else {
        sb_printf(b, "ip-proto-%u", h->l4proto);
    }
}

static void summary_arp(struct sbuf *b, const uint8_t *a, size_t alen)
{
    /* Ethernet/IPv4 ARP only: 28 bytes, hardware type 1, protocol 0x0800, sizes 6 and 4. */
    if (alen < 28 || rd16(a) != 1 || rd16(a + 2) != MT_ETHERTYPE_IP4 || a[4] != 6 || a[5] != 4) {
        sb_printf(b, "ARP");
        return;
    }
    char spa[INET_ADDRSTRLEN], tpa[INET_ADDRSTRLEN];
    addr_text(MT_ADDR_IP4, a + 14, spa, sizeof(spa));
    addr_text(MT_ADDR_IP4, a + 24, tpa, sizeof(tpa));
    uint16_t op = rd16(a + 6);
    if (op == 1)
        sb_printf(b, "ARP, request who-has %s tell %s", tpa, spa);
    else if (op == 2)
        sb_printf(b, "ARP, reply %s is-at %02x:%02x:%02x:%02x:%02x:%02x", spa, a[8], a[9], a[10],
                  a[11], a[12], a[13]);
    else
        sb_printf(b, "ARP, op %u", op);
}

static size_t summary(const uint8_t *p, size_t len, enum mt_link link, const struct mt_hdrs *hp,
                      char *out, size_t outsz)
{
    struct sbuf b = {out, outsz, 0};
    if (outsz == 0)
        return 0;
    out[0] = '\0';
    const struct mt_hdrs h = *hp;
    if (link == MT_LINK_ETH) {
        uint16_t type = 0;
        int vlan;
        size_t off = eth_walk(p, len, &type, &vlan);
        if (off == 0) {
            sb_printf(&b, "truncated ether, length %zu", len);
            return b.pos;
        }
        if (vlan >= 0)
            sb_printf(&b, "vlan %d, ", vlan);
        if (type == ETHERTYPE_ARP) {
            summary_arp(&b, p + off, len - off);
            sb_printf(&b, ", length %zu", len);
            return b.pos;
        }
        if (h.l3 < 0) {
            if (type == MT_ETHERTYPE_IP4 || type == MT_ETHERTYPE_IP6) {
                sb_printf(&b, "truncated %s, length %zu", type == MT_ETHERTYPE_IP4 ? "IP" : "IP6",
                          len);
                return b.pos;
            }
            sb_printf(&b,
                      "ether %02x:%02x:%02x:%02x:%02x:%02x > %02x:%02x:%02x:%02x:%02x:%02x, "
                      "type 0x%04x, length %zu",
                      p[6], p[7], p[8], p[9], p[10], p[11], p[0], p[1], p[2], p[3], p[4], p[5],
                      type, len);
            return b.pos;
        }
    } else if (h.l3 < 0) {
        /* Junk with any other version nibble is reported as IP too: tun carries nothing else. */
        if (len >= 1 && (p[0] >> 4) == 6)
            sb_printf(&b, "truncated IP6, length %zu", len);
        else
            sb_printf(&b, "truncated IP, length %zu", len);
        return b.pos;
    }
    summary_ip(&b, p, &h);
    /* "length" is always the whole packet (frame, in tap mode) as handed to us. */
    sb_printf(&b, ", length %zu", len);
    return b.pos;
}

size_t mt_proto_summary(const uint8_t *p, size_t len, enum mt_link link, char *out, size_t outsz)
{
    struct mt_hdrs h;
    mt_proto_parse(p, len, link, &h);
    return summary(p, len, link, &h, out, outsz);
}

size_t mt_packet_summary(struct mt_packet *pkt, char *out, size_t outsz)
{
    return summary(pkt->data, pkt->len, pkt->link, mt_packet_hdrs(pkt), out, outsz);
}
