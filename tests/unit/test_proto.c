/* Unit tests for header parsing, checksums and summaries (core/proto.c), on packets captured
 * from a real kernel (Linux loopback, in a network namespace) and on crafted liars. Every
 * checksum is compared with a naive reference written here, independent of core/proto.c. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moontun/proto.h"

/* Captured with an AF_PACKET socket on lo (Ethernet header stripped). Those marked "full"
 * carry checksums the kernel computed completely; the rest were sent with checksum offload,
 * so their TCP/UDP field holds only the pseudo-header sum and they serve for parsing and
 * fix_checksums tests. */
static const char ICMP_ECHO_REQ[] = /* full: ping -p 41 -s 56 10.0.0.1 */
    "4500005473fe40004001b2a90a0000010a00000108006c0211ab0001124b086b000000003f82070000000000"
    "41414141414141414141414141414141414141414141414141414141414141414141414141414141";
static const char ICMP_ECHO_REPLY[] = /* full */
    "4500005473ff00004001f2a80a0000010a0000010000740211ab0001124b086b000000003f82070000000000"
    "41414141414141414141414141414141414141414141414141414141414141414141414141414141";
static const char ICMP6_ECHO_REQ[] = /* full: ping -6 -s 16 fd00::1 */
    "6005acc400183a40fd000000000000000000000000000001fd000000000000000000000000000001"
    "800075b011ac0001124b086b00000000dc95070000000000";
static const char ICMP6_ECHO_REPLY[] = /* full */
    "6005afeb00183a40fd000000000000000000000000000001fd000000000000000000000000000001"
    "810074b011ac0001124b086b00000000dc95070000000000";
static const char UDP4[] = /* offloaded: "hello moontun" to port 5353 */
    "45000029d7a4400040114f1e0a0000010a000001abf214e90015142868656c6c6f206d6f6f6e74756e";
static const char ICMP_PORT_UNREACH[] = /* full: the kernel's answer to UDP4 */
    "45c00045740000004001f1f60a0000010a0000010303249e0000000045000029d7a4400040114f1e0a000001"
    "0a000001abf214e90015142868656c6c6f206d6f6f6e74756e";
static const char UDP6[] = /* offloaded: "hello6" to port 5353 */
    "600b4bf9000e1140fd000000000000000000000000000001fd000000000000000000000000000001"
    "936514e9000efa2268656c6c6f36";
static const char ICMP6_PORT_UNREACH[] = /* full */
    "60034ea4003e3a40fd000000000000000000000000000001fd000000000000000000000000000001"
    "010466a100000000600b4bf9000e1140fd000000000000000000000000000001fd0000000000000000000000"
    "00000001936514e9000efa2268656c6c6f36";
static const char TCP_SYN[] = /* offloaded: connect() to port 80, with MSS/SACK/TS/WS */
    "4500003c9785400040068f350a0000010a000001e64a0050da19459000000000a002ffd71430000002"
    "04ffd70402080aa002b281000000000103030a";
static const char TCP_RST[] = /* full: the kernel's answer to TCP_SYN */
    "4500002800004000400626cf0a0000010a0000010050e64a00000000da1945915014000095890000";

static size_t unhex(const char *hex, uint8_t *out, size_t outsz)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= outsz);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        assert_int_equal(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

/* ---- the reference: RFC 1071 done the slow, obvious way ---- */

static uint16_t ref_csum(const uint8_t *p, size_t len)
{
    uint32_t sum = 0;
    for (size_t i = 0; i < len; i += 2) {
        uint16_t w = (uint16_t)(p[i] << 8);
        if (i + 1 < len)
            w |= p[i + 1];
        sum += w;
    }
    while (sum > 0xffff)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)~sum;
}

/* The transport checksum of an IP packet at p, with the pseudo-header laid out in a buffer,
 * the checksum field taken as zero. */
static uint16_t ref_l4_csum(const uint8_t *p, size_t l3, size_t l4, size_t l4len, int ipver,
                            uint8_t proto)
{
    static uint8_t buf[40 + 65536];
    size_t n = 0;
    if (ipver == 4 && proto != 1) {
        memcpy(buf, p + l3 + 12, 8);
        buf[8] = 0;
        buf[9] = proto;
        buf[10] = (uint8_t)(l4len >> 8);
        buf[11] = (uint8_t)l4len;
        n = 12;
    } else if (ipver == 6) {
        memcpy(buf, p + l3 + 8, 32);
        buf[32] = (uint8_t)(l4len >> 24);
        buf[33] = (uint8_t)(l4len >> 16);
        buf[34] = (uint8_t)(l4len >> 8);
        buf[35] = (uint8_t)l4len;
        buf[36] = buf[37] = buf[38] = 0;
        buf[39] = proto;
        n = 40;
    }
    memcpy(buf + n, p + l4, l4len);
    size_t field = proto == 6 ? 16 : proto == 17 ? 6 : 2;
    buf[n + field] = buf[n + field + 1] = 0;
    uint16_t c = ref_csum(buf, n + l4len);
    if (c == 0 && proto == 17)
        c = 0xffff;
    return c;
}

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* ---- parsing ---- */

static void test_parse_ipv4_icmp_echo(void **state)
{
    uint8_t p[128];
    size_t n = unhex(ICMP_ECHO_REQ, p, sizeof(p));
    struct mt_hdrs h;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l2, -1);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, 20);
    assert_int_equal(h.ipver, 4);
    assert_int_equal(h.ethertype, MT_ETHERTYPE_IP4);
    assert_int_equal(h.l4proto, MT_IPPROTO_ICMP);
    assert_int_equal(h.l3len, 84);
    assert_int_equal(h.l4len, 64);
    assert_false(h.fragment);
}

static void test_parse_tcp_syn_with_options(void **state)
{
    uint8_t p[128];
    size_t n = unhex(TCP_SYN, p, sizeof(p));
    assert_int_equal(n, 60);
    struct mt_hdrs h;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, 20);
    assert_int_equal(h.l4proto, MT_IPPROTO_TCP);
    assert_int_equal(h.l4len, 40);
    assert_int_equal(p[h.l4 + 12] >> 4, 10); /* 20 bytes of options are inside l4len */
}

static void test_parse_udp(void **state)
{
    uint8_t p[128];
    size_t n = unhex(UDP4, p, sizeof(p));
    struct mt_hdrs h;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, 20);
    assert_int_equal(h.l4proto, MT_IPPROTO_UDP);
    assert_int_equal(h.l4len, 21);
    n = unhex(UDP6, p, sizeof(p));
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.ipver, 6);
    assert_int_equal(h.ethertype, MT_ETHERTYPE_IP6);
    assert_int_equal(h.l4, 40);
    assert_int_equal(h.l4len, 14);
    assert_int_equal(h.l3len, 54);
}

static void test_parse_ipv6_icmp6_echo(void **state)
{
    uint8_t p[128];
    size_t n = unhex(ICMP6_ECHO_REQ, p, sizeof(p));
    struct mt_hdrs h;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, 40);
    assert_int_equal(h.l4proto, MT_IPPROTO_ICMP6);
    assert_int_equal(h.l4len, 24);
    assert_false(h.fragment);
}

/* IPv6 + hop-by-hop (8) + destination options (16) + [fragment (8)] + UDP "hello6". */
static size_t build_v6_chain(uint8_t *p, bool with_frag, uint16_t frag_field)
{
    uint8_t udp6[64];
    size_t un = unhex(UDP6, udp6, sizeof(udp6));
    size_t n = 0;
    memcpy(p, udp6, 40);
    p[6] = 0; /* hop-by-hop next */
    n = 40;
    const uint8_t hbh[8] = {60, 0, 1, 4, 0, 0, 0, 0}; /* PadN */
    memcpy(p + n, hbh, 8);
    n += 8;
    uint8_t dst[16] = {with_frag ? 44 : 17, 1, 1, 12};
    memcpy(p + n, dst, 16);
    n += 16;
    if (with_frag) {
        const uint8_t frag[8] = {
            17, 0, (uint8_t)(frag_field >> 8), (uint8_t)frag_field, 0xde, 0xad, 0xbe, 0xef};
        memcpy(p + n, frag, 8);
        n += 8;
    }
    memcpy(p + n, udp6 + 40, un - 40);
    n += un - 40;
    wr16(p + 4, (uint16_t)(n - 40));
    return n;
}

static void test_parse_ipv6_extension_chain(void **state)
{
    uint8_t p[256];
    struct mt_hdrs h;

    /* First fragment (offset 0, M=1): the transport header is there. */
    size_t n = build_v6_chain(p, true, 0x0001);
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, 40 + 8 + 16 + 8);
    assert_int_equal(h.l4proto, MT_IPPROTO_UDP);
    assert_int_equal(h.l4len, 14);
    assert_int_equal(h.l3len, n);
    assert_true(h.fragment);
    assert_int_equal(rd16(p + h.l4 + 2), 5353);

    /* A later fragment (offset 185 * 8) holds no transport header. */
    n = build_v6_chain(p, true, 185 << 3);
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, -1);
    assert_int_equal(h.l4proto, MT_IPPROTO_UDP);
    assert_true(h.fragment);

    /* Without the fragment header, not a fragment. */
    n = build_v6_chain(p, false, 0);
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, 40 + 8 + 16);
    assert_false(h.fragment);

    /* A destination-options header claiming 2 KiB walks past the end: no l4. */
    n = build_v6_chain(p, false, 0);
    p[40 + 8 + 1] = 255;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, -1);

    /* No next header (59) after hop-by-hop: stop there. */
    n = build_v6_chain(p, false, 0);
    p[40] = 59;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, -1);
    assert_int_equal(h.l4proto, 59);

    /* An unknown next header ends the walk and names the protocol. */
    n = build_v6_chain(p, false, 0);
    p[40] = 47; /* GRE */
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, -1);
    assert_int_equal(h.l4proto, 47);

    /* AH: length in 4-byte units minus 2. */
    n = build_v6_chain(p, false, 0);
    p[40] = 51;        /* the destination options become an AH... */
    p[40 + 8 + 1] = 2; /* ...of (2 + 2) * 4 = 16 bytes */
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, 40 + 8 + 16);
    assert_int_equal(h.l4proto, MT_IPPROTO_UDP);

    /* Payload length cut mid-chain: the chain cannot be walked. */
    n = build_v6_chain(p, true, 0x0001);
    wr16(p + 4, 8 + 4);
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3len, 40 + 12);
    assert_int_equal(h.l4, -1);
}

static size_t build_eth(uint8_t *f, const char *ip_hex, int ntags)
{
    const uint8_t mac[12] = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
    memcpy(f, mac, 12);
    size_t n = 12;
    for (int i = 0; i < ntags; i++) {
        wr16(f + n, i == 0 && ntags > 1 ? 0x88a8 : MT_ETHERTYPE_VLAN);
        wr16(f + n + 2, (uint16_t)(100 + i));
        n += 4;
    }
    wr16(f + n, MT_ETHERTYPE_IP4);
    n += 2;
    return n + unhex(ip_hex, f + n, 256);
}

static void test_parse_ethernet_vlan(void **state)
{
    uint8_t f[300];
    struct mt_hdrs h;
    size_t n = build_eth(f, ICMP_ECHO_REQ, 0);
    mt_proto_parse(f, n, MT_LINK_ETH, &h);
    assert_int_equal(h.l2, 0);
    assert_int_equal(h.l3, 14);
    assert_int_equal(h.l4, 34);
    assert_int_equal(h.ethertype, MT_ETHERTYPE_IP4);

    n = build_eth(f, ICMP_ECHO_REQ, 1);
    mt_proto_parse(f, n, MT_LINK_ETH, &h);
    assert_int_equal(h.l3, 18);
    assert_int_equal(h.l4, 38);
    assert_int_equal(h.l4proto, MT_IPPROTO_ICMP);
    assert_int_equal(h.l3len, 84);

    n = build_eth(f, ICMP_ECHO_REQ, 2); /* 802.1ad outer, 802.1Q inner */
    mt_proto_parse(f, n, MT_LINK_ETH, &h);
    assert_int_equal(h.l3, 22);
    assert_int_equal(h.l4, 42);

    /* A third tag is past what we skip: no IP header is claimed. */
    n = build_eth(f, ICMP_ECHO_REQ, 3);
    mt_proto_parse(f, n, MT_LINK_ETH, &h);
    assert_int_equal(h.l2, 0);
    assert_int_equal(h.l3, -1);
    assert_int_equal(h.ethertype, MT_ETHERTYPE_VLAN);

    /* A frame cut inside the tag. */
    mt_proto_parse(f, 16, MT_LINK_ETH, &h);
    assert_int_equal(h.l2, -1);
    mt_proto_parse(f, 13, MT_LINK_ETH, &h);
    assert_int_equal(h.l2, -1);

    /* A minimum-size frame pads a short IP packet: l3len follows the IP header. */
    uint8_t rst[64];
    size_t rn = unhex(TCP_RST, rst, sizeof(rst));
    memset(f, 0, sizeof(f));
    n = build_eth(f, TCP_RST, 0);
    assert_int_equal(n, 14 + rn);
    mt_proto_parse(f, 60, MT_LINK_ETH, &h);
    assert_int_equal(h.l3len, 40);
    assert_int_equal(h.l4len, 20);

    /* The ethertype says IPv4 but the header says 6: not an IPv4 header. */
    n = build_eth(f, ICMP_ECHO_REQ, 0);
    f[14] = 0x65;
    mt_proto_parse(f, n, MT_LINK_ETH, &h);
    assert_int_equal(h.l3, -1);
}

static void test_parse_liars(void **state)
{
    uint8_t p[128];
    struct mt_hdrs h;

    /* IHL 15 (60 bytes) on a 20-byte packet. */
    unhex(TCP_RST, p, sizeof(p));
    p[0] = 0x4f;
    wr16(p + 2, 20);
    mt_proto_parse(p, 20, MT_LINK_IP, &h);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, -1);
    /* ... and on a 40-byte packet that claims 40: the header would eat the TCP header. */
    wr16(p + 2, 40);
    mt_proto_parse(p, 40, MT_LINK_IP, &h);
    assert_int_equal(h.l4, -1);

    /* IHL below 5. */
    size_t n = unhex(TCP_RST, p, sizeof(p));
    p[0] = 0x44;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, -1);

    /* Total length 60000 on a 60-byte packet: clipped to what arrived. */
    n = unhex(TCP_SYN, p, sizeof(p));
    wr16(p + 2, 60000);
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3len, 60);
    assert_int_equal(h.l4len, 40);
    assert_int_equal(h.l4, 20);
    assert_true((size_t)h.l4 + h.l4len <= n);

    /* Total length shorter than the headers. */
    n = unhex(TCP_SYN, p, sizeof(p));
    wr16(p + 2, 30);
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3len, 30);
    assert_int_equal(h.l4, -1);

    /* TCP data offset past the end (15 * 4 = 60 > 40), and below 5. */
    n = unhex(TCP_SYN, p, sizeof(p));
    p[32] = 0xf0;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, -1);
    assert_int_equal(h.l4proto, MT_IPPROTO_TCP);
    p[32] = 0x40;
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_int_equal(h.l4, -1);

    /* Truncated: 19 bytes of IPv4, 39 of IPv6, a UDP header cut short. */
    n = unhex(UDP4, p, sizeof(p));
    mt_proto_parse(p, 19, MT_LINK_IP, &h);
    assert_int_equal(h.l3, -1);
    assert_int_equal(h.ipver, 0);
    mt_proto_parse(p, 27, MT_LINK_IP, &h);
    assert_int_equal(h.l3, 0);
    assert_int_equal(h.l4, -1);
    n = unhex(UDP6, p, sizeof(p));
    mt_proto_parse(p, 39, MT_LINK_IP, &h);
    assert_int_equal(h.l3, -1);
    mt_proto_parse(p, 0, MT_LINK_IP, &h);
    assert_int_equal(h.l3, -1);

    /* Not IP at all. */
    memset(p, 0x55, 64);
    mt_proto_parse(p, 64, MT_LINK_IP, &h);
    assert_int_equal(h.l3, -1);
    assert_int_equal(h.ipver, 0);
}

static void test_parse_ipv4_fragments(void **state)
{
    uint8_t p[128];
    struct mt_hdrs h;
    size_t n = unhex(UDP4, p, sizeof(p));
    wr16(p + 6, 0x2000); /* MF, offset 0: the first fragment */
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_true(h.fragment);
    assert_int_equal(h.l4, 20);
    wr16(p + 6, 0x00b9); /* offset 185 * 8, last fragment */
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_true(h.fragment);
    assert_int_equal(h.l4, -1);
    assert_int_equal(h.l4proto, MT_IPPROTO_UDP);
    wr16(p + 6, 0x4000); /* DF only */
    mt_proto_parse(p, n, MT_LINK_IP, &h);
    assert_false(h.fragment);
}

/* Parsing random bytes and random cuts of real packets never points past the end. */
static void test_parse_never_past_end(void **state)
{
    const char *pkts[] = {ICMP_ECHO_REQ, ICMP6_ECHO_REQ,    UDP4, UDP6, TCP_SYN,
                          TCP_RST,       ICMP6_PORT_UNREACH};
    uint8_t p[256];
    srand(7);
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = unhex(pkts[iter % 7], p, sizeof(p));
        /* Flip a few bytes and cut somewhere. */
        for (int k = 0; k < 3; k++)
            p[(size_t)rand() % n] = (uint8_t)rand();
        n = (size_t)rand() % (n + 1);
        struct mt_hdrs h;
        mt_proto_parse(p, n, (enum mt_link)(iter & 1), &h);
        if (h.l3 >= 0)
            assert_true((size_t)h.l3 + h.l3len <= n);
        if (h.l4 >= 0) {
            assert_true(h.l3 >= 0);
            assert_true((size_t)h.l4 + h.l4len <= n);
            assert_true(h.l4len >= 8);
        }
        char line[256];
        mt_proto_summary(p, n, (enum mt_link)(iter & 1), line, sizeof(line));
        uint8_t copy[256];
        memcpy(copy, p, n);
        mt_proto_fix_checksums(copy, n, (enum mt_link)(iter & 1));
        if (mt_proto_fix_checksums(copy, n, (enum mt_link)(iter & 1)) == 0)
            assert_true(mt_proto_checksums_ok(copy, n, (enum mt_link)(iter & 1)));
    }
}

/* ---- checksums ---- */

static void test_csum_matches_reference(void **state)
{
    static uint8_t buf[2048 + 8];
    srand(42);
    for (int iter = 0; iter < 5000; iter++) {
        size_t align = (size_t)rand() % 8; /* any alignment */
        size_t len = (size_t)rand() % 2048;
        for (size_t i = 0; i < len; i++)
            buf[align + i] = (uint8_t)rand();
        if (iter % 10 == 0)
            memset(buf + align, 0xff, len); /* sums that carry a lot */
        assert_int_equal(mt_csum_fold(mt_csum_add(0, buf + align, len)),
                         ref_csum(buf + align, len));

        /* In pieces: every piece but the last of even length. */
        uint32_t sum = 0;
        size_t off = 0;
        while (off < len) {
            size_t piece = (size_t)rand() % 64;
            if (piece >= len - off)
                piece = len - off;
            else
                piece &= ~(size_t)1;
            sum = mt_csum_add(sum, buf + align + off, piece);
            off += piece;
        }
        assert_int_equal(mt_csum_fold(sum), ref_csum(buf + align, len));
    }
}

static void test_csum_edges(void **state)
{
    const uint8_t one[] = {0xab};
    assert_int_equal(mt_csum_fold(0), 0xffff);
    assert_int_equal(mt_csum_fold(mt_csum_add(0, one, 1)), (uint16_t)~0xab00);
    assert_int_equal(mt_csum_fold(mt_csum_add(0, one, 0)), 0xffff);
    /* RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2. */
    const uint8_t ex[] = {0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7};
    assert_int_equal(mt_csum_fold(mt_csum_add(0, ex, sizeof(ex))), (uint16_t)~0xddf2);
    /* A running sum near the top of uint32_t still folds right. */
    assert_int_equal(mt_csum_fold(mt_csum_add(0xffffffffu, ex, sizeof(ex))),
                     mt_csum_fold((uint32_t)0xddf2 + 0xffff));
}

static const char *const GOOD[] = {ICMP_ECHO_REQ,    ICMP_ECHO_REPLY,   ICMP6_ECHO_REQ,
                                   ICMP6_ECHO_REPLY, ICMP_PORT_UNREACH, ICMP6_PORT_UNREACH,
                                   TCP_RST};

static void test_kernel_checksums_verify(void **state)
{
    uint8_t p[256], orig[256];
    for (size_t i = 0; i < sizeof(GOOD) / sizeof(GOOD[0]); i++) {
        size_t n = unhex(GOOD[i], p, sizeof(p));
        memcpy(orig, p, n);
        assert_true(mt_proto_checksums_ok(p, n, MT_LINK_IP));
        struct mt_hdrs h;
        mt_proto_parse(p, n, MT_LINK_IP, &h);
        assert_true(h.l4 >= 0);
        /* The reference agrees with the kernel... */
        size_t field = h.l4proto == MT_IPPROTO_TCP ? 16 : 2;
        assert_int_equal(ref_l4_csum(p, 0, (size_t)h.l4, h.l4len, h.ipver, h.l4proto),
                         rd16(p + h.l4 + field));
        /* ...and recomputing from scratch gives back the kernel's exact bytes. */
        memset(p + h.l4 + field, 0, 2);
        if (h.ipver == 4)
            memset(p + 10, 0, 2);
        assert_false(mt_proto_checksums_ok(p, n, MT_LINK_IP));
        assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
        assert_memory_equal(p, orig, n);
        /* Any single corrupted byte a checksum covers is caught: for IPv4 all but the
         * version (corrupt it and this is no IP packet); IPv6 has no header checksum, and
         * the pseudo-header starts at the addresses. */
        for (size_t k = h.ipver == 4 ? 1 : 8; k < n; k += 3) {
            p[k] ^= 0x10;
            assert_false(mt_proto_checksums_ok(p, n, MT_LINK_IP));
            p[k] ^= 0x10;
        }
    }
}

static void test_fix_offloaded_packets(void **state)
{
    const char *pkts[] = {TCP_SYN, UDP4, UDP6};
    uint8_t p[256];
    for (size_t i = 0; i < 3; i++) {
        size_t n = unhex(pkts[i], p, sizeof(p));
        assert_false(mt_proto_checksums_ok(p, n, MT_LINK_IP));
        assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
        assert_true(mt_proto_checksums_ok(p, n, MT_LINK_IP));
        struct mt_hdrs h;
        mt_proto_parse(p, n, MT_LINK_IP, &h);
        size_t field = h.l4proto == MT_IPPROTO_TCP ? 16 : 6;
        assert_int_equal(rd16(p + h.l4 + field),
                         ref_l4_csum(p, 0, (size_t)h.l4, h.l4len, h.ipver, h.l4proto));
        if (h.ipver == 4)
            assert_int_equal(ref_csum(p, 20), 0);
    }
}

static void test_fix_ipv6_extension_headers_pseudo_length(void **state)
{
    /* The pseudo-header length is the UDP length, not the IPv6 payload length. */
    uint8_t p[256];
    size_t n = build_v6_chain(p, false, 0);
    assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
    assert_int_equal(rd16(p + 64 + 6), ref_l4_csum(p, 0, 64, 14, 6, 17));
    assert_true(mt_proto_checksums_ok(p, n, MT_LINK_IP));
    /* It is the same UDP datagram as the plain one, so the same checksum. */
    uint8_t q[64];
    size_t qn = unhex(UDP6, q, sizeof(q));
    assert_int_equal(mt_proto_fix_checksums(q, qn, MT_LINK_IP), 0);
    assert_int_equal(rd16(q + 46), rd16(p + 70));
}

static void test_fix_in_tap_frames(void **state)
{
    uint8_t f[300];
    size_t n = build_eth(f, TCP_SYN, 1);
    assert_false(mt_proto_checksums_ok(f, n, MT_LINK_ETH));
    assert_int_equal(mt_proto_fix_checksums(f, n, MT_LINK_ETH), 0);
    assert_true(mt_proto_checksums_ok(f, n, MT_LINK_ETH));
    assert_int_equal(rd16(f + 18 + 20 + 16), ref_l4_csum(f, 18, 38, 40, 4, 6));
}

static void test_udp_zero_checksum_rules(void **state)
{
    uint8_t p[128];
    /* IPv4: 0 means the sender chose no checksum; it stays 0 and verifies. */
    size_t n = unhex(UDP4, p, sizeof(p));
    wr16(p + 26, 0);
    assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
    assert_int_equal(rd16(p + 26), 0);
    assert_true(mt_proto_checksums_ok(p, n, MT_LINK_IP));

    /* IPv6: 0 is not allowed, so it is computed. */
    n = unhex(UDP6, p, sizeof(p));
    wr16(p + 46, 0);
    assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
    assert_int_not_equal(rd16(p + 46), 0);

    /* A datagram whose checksum computes to 0 is sent as 0xFFFF, for v4 and v6. Put the
     * current checksum into a zero payload word: the sum becomes 0xffff, the checksum 0. */
    const char *pkts[] = {UDP4, UDP6};
    for (int i = 0; i < 2; i++) {
        n = unhex(pkts[i], p, sizeof(p));
        size_t l4 = i == 0 ? 20 : 40;
        wr16(p + l4 + 8, 0); /* first payload word */
        assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
        uint16_t c = rd16(p + l4 + 6);
        wr16(p + l4 + 8, c);
        assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
        assert_int_equal(rd16(p + l4 + 6), 0xffff);
        assert_true(mt_proto_checksums_ok(p, n, MT_LINK_IP));
        assert_int_equal(ref_l4_csum(p, 0, l4, n - l4, i == 0 ? 4 : 6, 17), 0xffff);
    }
}

static void test_fix_nothing_to_do(void **state)
{
    uint8_t junk[10] = {0x45};
    assert_int_equal(mt_proto_fix_checksums(junk, sizeof(junk), MT_LINK_IP), -EINVAL);
    assert_true(mt_proto_checksums_ok(junk, sizeof(junk), MT_LINK_IP));
    uint8_t arp[42] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 2, 0, 0, 0, 0, 1, 0x08, 0x06};
    assert_int_equal(mt_proto_fix_checksums(arp, sizeof(arp), MT_LINK_ETH), -EINVAL);
    /* An IPv6 later fragment has no checksum we can compute. */
    uint8_t p[256];
    size_t n = build_v6_chain(p, true, 185 << 3);
    assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), -EINVAL);
    /* An IPv4 fragment still gets its header checksum, but its UDP field is left alone. */
    n = unhex(UDP4, p, sizeof(p));
    wr16(p + 6, 0x2000);
    assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
    assert_int_equal(ref_csum(p, 20), 0);
    assert_int_equal(rd16(p + 26), 0x1428);
}

/* ---- incremental update (RFC 1624) ---- */

static void test_rfc1624_example(void **state)
{
    /* RFC 1624 section 4: eqn. 3 must give 0x0000 where eqn. 2 gives 0xFFFF. */
    assert_int_equal(mt_csum_update16(0xdd2f, 0x5555, 0x3285), 0x0000);
}

static void test_incremental_equals_recompute(void **state)
{
    uint8_t p[128];
    srand(2024);
    size_t n = unhex(TCP_SYN, p, sizeof(p));
    assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
    for (int iter = 0; iter < 20000; iter++) {
        /* A random word of the IPv4 header other than its checksum. */
        size_t w = 2 * ((size_t)rand() % 10);
        if (w == 10)
            w = 8;
        uint16_t old = rd16(p + w), neu = (uint16_t)rand();
        if (iter % 50 == 0)
            neu = (uint16_t)~old; /* edge: words that cancel */
        wr16(p + w, neu);
        uint16_t inc = mt_csum_update16(rd16(p + 10), old, neu);
        wr16(p + 10, 0);
        assert_int_equal(inc, ref_csum(p, 20));
        wr16(p + 10, inc);
        /* Keep the header sane so the packet stays parseable for the TCP half. */
        p[0] = 0x45;
        wr16(p + 2, (uint16_t)n);
        p[9] = 6;
        wr16(p + 6, 0x4000);
        assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);

        /* An address change, which also touches the TCP pseudo-header. */
        uint8_t oldaddr[4], newaddr[4];
        memcpy(oldaddr, p + 12 + 4 * (iter & 1), 4);
        for (int k = 0; k < 4; k++)
            newaddr[k] = (uint8_t)rand();
        memcpy(p + 12 + 4 * (iter & 1), newaddr, 4);
        uint16_t ipc = mt_csum_update(rd16(p + 10), oldaddr, newaddr, 4);
        uint16_t tcpc = mt_csum_update(rd16(p + 36), oldaddr, newaddr, 4);
        assert_int_equal(tcpc, ref_l4_csum(p, 0, 20, 40, 4, 6));
        wr16(p + 10, 0);
        assert_int_equal(ipc, ref_csum(p, 20));
        wr16(p + 10, ipc);
        wr16(p + 36, tcpc);
        assert_true(mt_proto_checksums_ok(p, n, MT_LINK_IP));
    }
}

static void test_incremental_ipv6_address(void **state)
{
    uint8_t p[128];
    srand(6);
    size_t n = unhex(UDP6, p, sizeof(p));
    assert_int_equal(mt_proto_fix_checksums(p, n, MT_LINK_IP), 0);
    for (int iter = 0; iter < 5000; iter++) {
        uint8_t oldaddr[16], newaddr[16];
        size_t off = 8 + 16 * (size_t)(iter & 1);
        memcpy(oldaddr, p + off, 16);
        for (int k = 0; k < 16; k++)
            newaddr[k] = (uint8_t)rand();
        memcpy(p + off, newaddr, 16);
        uint16_t c = mt_csum_update(rd16(p + 46), oldaddr, newaddr, 16);
        /* Zero transmitted as 0xffff is a UDP rule the caller applies; compare modulo it. */
        uint16_t ref = ref_l4_csum(p, 0, 40, 14, 6, 17);
        assert_int_equal(c == 0 ? 0xffff : c, ref);
        wr16(p + 46, ref);
    }
}

/* ---- summaries ---- */

static void expect_summary(const char *hex, enum mt_link link, const char *want)
{
    uint8_t p[256];
    size_t n = unhex(hex, p, sizeof(p));
    char line[200];
    size_t k = mt_proto_summary(p, n, link, line, sizeof(line));
    assert_string_equal(line, want);
    assert_int_equal(k, strlen(want));
}

static void test_summary_lines(void **state)
{
    expect_summary(ICMP_ECHO_REQ, MT_LINK_IP,
                   "IP 10.0.0.1 > 10.0.0.1: ICMP echo request, id 4523, seq 1, length 84");
    expect_summary(ICMP_ECHO_REPLY, MT_LINK_IP,
                   "IP 10.0.0.1 > 10.0.0.1: ICMP echo reply, id 4523, seq 1, length 84");
    expect_summary(ICMP_PORT_UNREACH, MT_LINK_IP,
                   "IP 10.0.0.1 > 10.0.0.1: ICMP unreachable code 3, length 69");
    expect_summary(TCP_SYN, MT_LINK_IP,
                   "IP 10.0.0.1.58954 > 10.0.0.1.80: tcp [S] seq 3659089296 win 65495, length 60");
    expect_summary(TCP_RST, MT_LINK_IP,
                   "IP 10.0.0.1.80 > 10.0.0.1.58954: tcp [R.] seq 0 ack 3659089297 win 0, "
                   "length 40");
    expect_summary(UDP4, MT_LINK_IP, "IP 10.0.0.1.44018 > 10.0.0.1.5353: udp, length 41");
    expect_summary(UDP6, MT_LINK_IP, "IP6 fd00::1.37733 > fd00::1.5353: udp, length 54");
    expect_summary(ICMP6_ECHO_REQ, MT_LINK_IP,
                   "IP6 fd00::1 > fd00::1: ICMP6 echo request, id 4524, seq 1, length 64");
    expect_summary(ICMP6_PORT_UNREACH, MT_LINK_IP,
                   "IP6 fd00::1 > fd00::1: ICMP6 destination unreachable code 4, length 102");
    expect_summary("45000000112233", MT_LINK_IP, "truncated IP, length 7");
    expect_summary("00112233445566778899", MT_LINK_IP, "truncated IP, length 10");
    expect_summary("6000", MT_LINK_IP, "truncated IP6, length 2");
    expect_summary("", MT_LINK_IP, "truncated IP, length 0");
}

static void test_summary_fragments_and_liars(void **state)
{
    uint8_t p[256];
    char line[200];
    size_t n = unhex(UDP4, p, sizeof(p));
    wr16(p + 6, 0x00b9);
    mt_proto_summary(p, n, MT_LINK_IP, line, sizeof(line));
    assert_string_equal(line, "IP 10.0.0.1 > 10.0.0.1: udp fragment, length 41");
    n = unhex(TCP_SYN, p, sizeof(p));
    p[32] = 0xf0;
    mt_proto_summary(p, n, MT_LINK_IP, line, sizeof(line));
    assert_string_equal(line, "IP 10.0.0.1 > 10.0.0.1: truncated tcp, length 60");
    n = build_v6_chain(p, true, 0x0001);
    mt_proto_summary(p, n, MT_LINK_IP, line, sizeof(line));
    assert_string_equal(line, "IP6 fd00::1.37733 > fd00::1.5353: udp (first fragment), length 86");
    n = build_v6_chain(p, false, 0);
    p[40] = 47;
    mt_proto_summary(p, n, MT_LINK_IP, line, sizeof(line));
    assert_string_equal(line, "IP6 fd00::1 > fd00::1: ip-proto-47, length 78");
}

static void test_summary_tap(void **state)
{
    uint8_t f[300];
    char line[200];
    size_t n = build_eth(f, ICMP_ECHO_REQ, 1);
    mt_proto_summary(f, n, MT_LINK_ETH, line, sizeof(line));
    assert_string_equal(line, "vlan 100, IP 10.0.0.1 > 10.0.0.1: ICMP echo request, id 4523, "
                              "seq 1, length 102");

    /* An ARP request as the kernel sends it, padded to nothing (42 bytes). */
    const char arp[] = "ffffffffffff020000000001080600010800060400010200000000010a000001"
                       "0000000000000a000002";
    expect_summary(arp, MT_LINK_ETH, "ARP, request who-has 10.0.0.2 tell 10.0.0.1, length 42");
    const char lldp[] = "0180c200000e0200000000aa88cc0000";
    expect_summary(lldp, MT_LINK_ETH,
                   "ether 02:00:00:00:00:aa > 01:80:c2:00:00:0e, type 0x88cc, length 16");
    expect_summary("0180c200000e0200", MT_LINK_ETH, "truncated ether, length 8");
    expect_summary("ffffffffffff02000000000108004500", MT_LINK_ETH, "truncated IP, length 16");
}

static void test_summary_small_buffer(void **state)
{
    uint8_t p[128];
    size_t n = unhex(TCP_SYN, p, sizeof(p));
    char line[16];
    memset(line, 'x', sizeof(line));
    size_t k = mt_proto_summary(p, n, MT_LINK_IP, line, sizeof(line));
    assert_int_equal(k, 15);
    assert_int_equal(line[15], '\0');
    assert_memory_equal(line, "IP 10.0.0.1.589", 15);
    char one[1] = {'x'};
    assert_int_equal(mt_proto_summary(p, n, MT_LINK_IP, one, 1), 0);
    assert_int_equal(one[0], '\0');
    assert_int_equal(mt_proto_summary(p, n, MT_LINK_IP, NULL, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ipv4_icmp_echo),
        cmocka_unit_test(test_parse_tcp_syn_with_options),
        cmocka_unit_test(test_parse_udp),
        cmocka_unit_test(test_parse_ipv6_icmp6_echo),
        cmocka_unit_test(test_parse_ipv6_extension_chain),
        cmocka_unit_test(test_parse_ethernet_vlan),
        cmocka_unit_test(test_parse_liars),
        cmocka_unit_test(test_parse_ipv4_fragments),
        cmocka_unit_test(test_parse_never_past_end),
        cmocka_unit_test(test_csum_matches_reference),
        cmocka_unit_test(test_csum_edges),
        cmocka_unit_test(test_kernel_checksums_verify),
        cmocka_unit_test(test_fix_offloaded_packets),
        cmocka_unit_test(test_fix_ipv6_extension_headers_pseudo_length),
        cmocka_unit_test(test_fix_in_tap_frames),
        cmocka_unit_test(test_udp_zero_checksum_rules),
        cmocka_unit_test(test_fix_nothing_to_do),
        cmocka_unit_test(test_rfc1624_example),
        cmocka_unit_test(test_incremental_equals_recompute),
        cmocka_unit_test(test_incremental_ipv6_address),
        cmocka_unit_test(test_summary_lines),
        cmocka_unit_test(test_summary_fragments_and_liars),
        cmocka_unit_test(test_summary_tap),
        cmocka_unit_test(test_summary_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
