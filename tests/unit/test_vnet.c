/* Unit tests for the virtio-net header and the software offload fallbacks (core/vnet.c):
 * super-packets built here the way Linux's tun hands them out (checked against a real kernel:
 * IP lengths and IPv4 header checksum valid for the whole super-packet, the TCP field holding
 * the folded but uncomplemented pseudo-header sum), cut and verified with a naive checksum
 * written here, independent of core/proto.c; and liars, which must emit nothing. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "moontun/vnet.h"

#define TCP_FIN 0x01
#define TCP_SYN 0x02
#define TCP_PSH 0x08
#define TCP_ACK 0x10
#define TCP_ECE 0x40
#define TCP_CWR 0x80

static uint16_t rd16(const uint8_t *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t rd32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static void wr16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void wr32(uint8_t *p, uint32_t v)
{
    wr16(p, (uint16_t)(v >> 16));
    wr16(p + 2, (uint16_t)v);
}

/* The reference: RFC 1071 one word at a time, nothing clever. */
static uint32_t naive_sum(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n % 2)
        sum += (uint32_t)p[n - 1] << 8;
    return sum;
}

static uint16_t naive_fold(uint32_t sum)
{
    while (sum > 0xffff)
        sum = (sum & 0xffff) + (sum >> 16);
    return (uint16_t)sum;
}

/* Pseudo-header sum (not folded) for an L4 segment of l4len bytes behind the IP header. */
static uint32_t naive_pseudo(const uint8_t *ip, int ipver, uint8_t proto, size_t l4len)
{
    if (ipver == 4)
        return naive_sum(0, ip + 12, 8) + proto + (uint32_t)l4len;
    return naive_sum(0, ip + 8, 32) + proto + (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffff);
}

static bool naive_l4_ok(const uint8_t *ip, int ipver, uint8_t proto, const uint8_t *l4,
                        size_t l4len)
{
    return naive_fold(naive_sum(naive_pseudo(ip, ipver, proto, l4len), l4, l4len)) == 0xffff;
}

/* What a super-packet looks like, and where its parts ended up. */
struct spec {
    bool tap;
    bool vlan;      /* tap: one 802.1Q tag */
    int ipver;      /* 4 or 6 */
    size_t ip4opt;  /* IPv4 option bytes (multiple of 4) */
    bool ip6ext;    /* IPv6: a destination options header before the transport header */
    bool udp;       /* UDP (for UDP_L4 and checksum-only), else TCP */
    size_t tcpopt;  /* TCP option bytes (multiple of 4) */
    size_t paylen;  /* L4 payload bytes */
    uint8_t flags;  /* TCP flags */
    uint32_t seq;   /* TCP sequence number */
    uint16_t ip_id; /* IPv4 id */
};

struct built {
    size_t len, l3, l4, hdrlen;
    struct mt_vnet_hdr vh;
};

static uint8_t payload_byte(size_t i)
{
    return (uint8_t)(i * 7 + (i >> 8) + 3);
}

/* Builds the super-packet into p the way Linux's tun gives it out with TSO on: IP lengths
 * for the whole thing, a valid IPv4 header checksum, the L4 field holding the folded
 * pseudo-header sum over the super length (not complemented), NEEDS_CSUM with csum_start
 * from the first byte of the frame, hdr_len the full header length. */
static void build(const struct spec *s, uint8_t *p, struct built *b)
{
    size_t off = 0;
    if (s->tap) {
        static const uint8_t macs[12] = {2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1};
        memcpy(p, macs, 12);
        off = 12;
        if (s->vlan) {
            wr16(p + off, 0x8100);
            wr16(p + off + 2, 42);
            off += 4;
        }
        wr16(p + off, s->ipver == 4 ? 0x0800 : 0x86dd);
        off += 2;
    }
    b->l3 = off;
    uint8_t proto = s->udp ? 17 : 6;
    size_t l4hlen = s->udp ? 8 : 20 + s->tcpopt;
    uint8_t *ip = p + off;
    size_t iphlen;
    if (s->ipver == 4) {
        iphlen = 20 + s->ip4opt;
        memset(ip, 0, iphlen);
        ip[0] = (uint8_t)(0x40 | iphlen / 4);
        wr16(ip + 4, s->ip_id);
        wr16(ip + 6, 0x4000); /* DF */
        ip[8] = 64;
        ip[9] = proto;
        memcpy(ip + 12, (uint8_t[]){10, 9, 0, 1, 10, 9, 0, 2}, 8);
        for (size_t i = 0; i < s->ip4opt; i++)
            ip[20 + i] = 1; /* NOP */
    } else {
        iphlen = 40 + (s->ip6ext ? 8 : 0);
        memset(ip, 0, iphlen);
        ip[0] = 0x60;
        ip[1] = 0x0a; /* a flow label, to be copied untouched */
        ip[6] = s->ip6ext ? 60 : proto;
        ip[7] = 64;
        memcpy(ip + 8, (uint8_t[]){0xfd, 0, 0, 9, [15] = 1}, 16);
        memcpy(ip + 24, (uint8_t[]){0xfd, 0, 0, 9, [15] = 2}, 16);
        if (s->ip6ext) {
            ip[40] = proto; /* next header; length 0 = 8 bytes of PadN */
            ip[42] = 1;
            ip[43] = 4;
        }
    }
    b->l4 = off + iphlen;
    b->hdrlen = b->l4 + l4hlen;
    b->len = b->hdrlen + s->paylen;
    size_t l3len = b->len - b->l3, l4len = b->len - b->l4;
    if (s->ipver == 4) {
        wr16(ip + 2, (uint16_t)l3len);
        wr16(ip + 10, (uint16_t)~naive_fold(naive_sum(0, ip, iphlen)));
    } else {
        wr16(ip + 4, (uint16_t)(l3len - 40));
    }
    uint8_t *l4 = p + b->l4;
    memset(l4, 0, l4hlen);
    wr16(l4, 40000);
    wr16(l4 + 2, s->udp ? 5353 : 80);
    if (s->udp) {
        wr16(l4 + 4, (uint16_t)l4len);
    } else {
        wr32(l4 + 4, s->seq);
        wr32(l4 + 8, 0x01020304);
        l4[12] = (uint8_t)((l4hlen / 4) << 4);
        l4[13] = s->flags;
        wr16(l4 + 14, 502);
        /* NOP NOP timestamps, then NOPs: what a Linux sender puts there. */
        for (size_t i = 0; i < s->tcpopt; i++)
            l4[20 + i] = 1;
        if (s->tcpopt >= 12) {
            l4[22] = 8;
            l4[23] = 10;
            wr32(l4 + 24, 0xaabbccdd);
            wr32(l4 + 28, 0x11223344);
        }
    }
    for (size_t i = 0; i < s->paylen; i++)
        p[b->hdrlen + i] = payload_byte(i);
    size_t field = s->udp ? 6 : 16;
    wr16(l4 + field, naive_fold(naive_pseudo(ip, s->ipver, proto, l4len)));
    b->vh = (struct mt_vnet_hdr){
        .flags = MT_VNET_F_NEEDS_CSUM,
        .gso_type =
            s->udp ? MT_VNET_GSO_UDP_L4 : (s->ipver == 4 ? MT_VNET_GSO_TCPV4 : MT_VNET_GSO_TCPV6),
        .hdr_len = (uint16_t)b->hdrlen,
        .gso_size = 1388,
        .csum_start = (uint16_t)b->l4,
        .csum_offset = (uint16_t)field,
    };
}

/* Every segment emit received, copied. */
#define MAX_SEGS 64
static struct {
    uint8_t data[MAX_SEGS][2048];
    size_t len[MAX_SEGS];
    int n;
    int fail_at; /* emit returns -EIO for this index (-1: never) */
} got;

static void got_reset(void)
{
    memset(got.len, 0, sizeof(got.len));
    got.n = 0;
    got.fail_at = -1;
}

static int collect(void *ctx, const uint8_t *seg, size_t seglen)
{
    assert_ptr_equal(ctx, &got);
    if (got.n == got.fail_at)
        return -EIO;
    assert_true(got.n < MAX_SEGS);
    assert_true(seglen <= sizeof(got.data[0]));
    memcpy(got.data[got.n], seg, seglen);
    got.len[got.n] = seglen;
    got.n++;
    return 0;
}

static uint8_t pkt[70000];
static uint8_t scratch[4096];

static int segment(const struct built *b, bool tap)
{
    got_reset();
    return mt_vnet_segment(pkt, b->len, &b->vh, tap ? MT_LINK_ETH : MT_LINK_IP, scratch,
                           sizeof(scratch), collect, &got);
}

/* Checks every segment of a segmented super-packet built from s (in pkt). */
static void check_segments(const struct spec *s, const struct built *b, int rc)
{
    size_t mss = b->vh.gso_size;
    int want = s->paylen == 0 ? 1 : (int)((s->paylen + mss - 1) / mss);
    assert_int_equal(rc, want);
    assert_int_equal(got.n, want);
    static uint8_t cat[70000];
    size_t catlen = 0;
    const uint8_t *sip = pkt + b->l3, *sl4 = pkt + b->l4;
    for (int i = 0; i < got.n; i++) {
        const uint8_t *seg = got.data[i];
        size_t seglen = got.len[i];
        size_t chunk = s->paylen - catlen < mss ? s->paylen - catlen : mss;
        assert_int_equal(seglen, b->hdrlen + chunk);
        /* Link and IP headers: only the lengths, id and checksum may differ. */
        assert_memory_equal(seg, pkt, b->l3);
        const uint8_t *ip = seg + b->l3, *l4 = seg + b->l4;
        if (s->ipver == 4) {
            size_t ihl = (size_t)(ip[0] & 15) * 4;
            assert_int_equal(rd16(ip + 2), seglen - b->l3);
            assert_int_equal(rd16(ip + 4), (uint16_t)(s->ip_id + i));
            assert_int_equal(naive_fold(naive_sum(0, ip, ihl)), 0xffff);
            assert_memory_equal(ip + 6, sip + 6, 4);          /* frag, ttl, proto */
            assert_memory_equal(ip + 12, sip + 12, ihl - 12); /* addresses, options */
        } else {
            assert_int_equal(rd16(ip + 4), seglen - b->l3 - 40);
            assert_memory_equal(ip, sip, 4);
            assert_memory_equal(ip + 6, sip + 6, b->l4 - b->l3 - 6);
        }
        size_t l4len = seglen - b->l4;
        if (s->udp) {
            assert_memory_equal(l4, sl4, 4);
            assert_int_equal(rd16(l4 + 4), l4len);
            assert_true(naive_l4_ok(ip, s->ipver, 17, l4, l4len));
            assert_int_not_equal(rd16(l4 + 6), 0);
        } else {
            assert_memory_equal(l4, sl4, 4);
            assert_int_equal(rd32(l4 + 4), (uint32_t)(s->seq + catlen));
            assert_memory_equal(l4 + 8, sl4 + 8, 5); /* ack, data offset */
            uint8_t f = s->flags;
            if (i + 1 < got.n)
                f &= (uint8_t) ~(TCP_FIN | TCP_PSH);
            if (i > 0)
                f &= (uint8_t)~TCP_CWR;
            assert_int_equal(l4[13], f);
            assert_memory_equal(l4 + 14, sl4 + 14, 2);
            assert_memory_equal(l4 + 18, sl4 + 18, b->hdrlen - b->l4 - 18); /* urg, opts */
            assert_true(naive_l4_ok(ip, s->ipver, 6, l4, l4len));
        }
        memcpy(cat + catlen, seg + b->hdrlen, chunk);
        catlen += chunk;
    }
    assert_int_equal(catlen, s->paylen);
    assert_memory_equal(cat, pkt + b->hdrlen, s->paylen);
}

static void run(const struct spec *s)
{
    struct built b;
    build(s, pkt, &b);
    int rc = segment(&b, s->tap);
    check_segments(s, &b, rc);
}

/* The brief's super-packet: TCP with timestamps, 10 000 bytes, FIN|PSH set. */
static struct spec big(void)
{
    return (struct spec){.ipver = 4,
                         .tcpopt = 12,
                         .paylen = 10000,
                         .flags = TCP_ACK | TCP_PSH | TCP_FIN,
                         .seq = 123456789,
                         .ip_id = 4242};
}

static void test_hdr_read_write_little_endian(void **state)
{
    (void)state;
    const uint8_t wire[MT_VNET_HDR_LEN] = {0x01, 0x81, 0x36, 0x00, 0x6c,
                                           0x05, 0x22, 0x00, 0x10, 0x00};
    struct mt_vnet_hdr h;
    mt_vnet_read(wire, &h);
    assert_int_equal(h.flags, MT_VNET_F_NEEDS_CSUM);
    assert_int_equal(h.gso_type, MT_VNET_GSO_TCPV4 | MT_VNET_GSO_ECN);
    assert_int_equal(h.hdr_len, 0x36);
    assert_int_equal(h.gso_size, 1388);
    assert_int_equal(h.csum_start, 34);
    assert_int_equal(h.csum_offset, 16);
    uint8_t out[MT_VNET_HDR_LEN];
    memset(out, 0xee, sizeof(out));
    mt_vnet_write(out, &h);
    assert_memory_equal(out, wire, sizeof(wire));
    h = (struct mt_vnet_hdr){2, 5, 0xa1b2, 0xc3d4, 0xe5f6, 0x0708};
    mt_vnet_write(out, &h);
    const uint8_t want[MT_VNET_HDR_LEN] = {2, 5, 0xb2, 0xa1, 0xd4, 0xc3, 0xf6, 0xe5, 0x08, 0x07};
    assert_memory_equal(out, want, sizeof(want));
}

static void test_tso4_tun(void **state)
{
    (void)state;
    struct spec s = big();
    s.ipver = 4;
    run(&s);
}

static void test_tso6_tun(void **state)
{
    (void)state;
    struct spec s = big();
    s.ipver = 6;
    run(&s);
}

static void test_tso4_tap(void **state)
{
    (void)state;
    struct spec s = big();
    s.ipver = 4;
    s.tap = true;
    run(&s);
}

static void test_tso6_tap_vlan(void **state)
{
    (void)state;
    struct spec s = big();
    s.ipver = 6;
    s.tap = true;
    s.vlan = true;
    run(&s);
}

static void test_tso4_tap_vlan_ip_options(void **state)
{
    (void)state;
    struct spec s = big();
    s.ipver = 4;
    s.tap = true;
    s.vlan = true;
    s.ip4opt = 8;
    s.tcpopt = 20;
    run(&s);
}

static void test_tso6_extension_header(void **state)
{
    (void)state;
    struct spec s = big();
    s.ipver = 6;
    s.ip6ext = true;
    run(&s);
}

static void test_tso_cwr_only_first(void **state)
{
    (void)state;
    struct spec s = big();
    s.flags = TCP_ACK | TCP_CWR | TCP_ECE | TCP_PSH;
    struct built b;
    build(&s, pkt, &b);
    b.vh.gso_type |= MT_VNET_GSO_ECN;
    check_segments(&s, &b, segment(&b, false));
    assert_int_equal(got.data[0][b.l4 + 13], TCP_ACK | TCP_CWR | TCP_ECE);
    assert_int_equal(got.data[1][b.l4 + 13], TCP_ACK | TCP_ECE);
    assert_int_equal(got.data[got.n - 1][b.l4 + 13], TCP_ACK | TCP_ECE | TCP_PSH);
}

static void test_tso_exact_multiple(void **state)
{
    (void)state;
    struct spec s = big();
    s.paylen = 3 * 1388;
    run(&s);
}

static void test_tso_one_segment_keeps_all_flags(void **state)
{
    (void)state;
    struct spec s = big();
    s.paylen = 100;
    s.flags = TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR;
    run(&s);
    assert_int_equal(got.n, 1);
}

static void test_tso_empty_payload(void **state)
{
    (void)state;
    struct spec s = big();
    s.paylen = 0;
    run(&s);
}

static void test_tso_seq_and_id_wrap(void **state)
{
    (void)state;
    struct spec s = big();
    s.seq = 0xffffffffu - 3000;
    s.ip_id = 0xfffe;
    run(&s);
}

static void test_tso_biggest_ipv4(void **state)
{
    (void)state;
    /* The largest total length IPv4 can state: 47 full segments and a short one. */
    struct spec s = big();
    s.paylen = 65535 - 20 - 32;
    run(&s);
}

static void test_tso_hdr_len_is_a_hint(void **state)
{
    (void)state;
    struct spec s = big();
    s.ipver = 6;
    s.tap = true;
    struct built b;
    build(&s, pkt, &b);
    /* Some senders leave it 0, some name only the IP header; the real length is parsed. */
    const uint16_t hints[] = {0, 14, (uint16_t)(b.hdrlen - 1), (uint16_t)(b.hdrlen + 500)};
    for (size_t i = 0; i < sizeof(hints) / sizeof(hints[0]); i++) {
        b.vh.hdr_len = hints[i];
        check_segments(&s, &b, segment(&b, true));
    }
}

static void test_tso_without_needs_csum(void **state)
{
    (void)state;
    /* Not what Linux sends, but the checksum is recomputed anyway, whatever the field. */
    struct spec s = big();
    struct built b;
    build(&s, pkt, &b);
    b.vh.flags = 0;
    b.vh.csum_start = b.vh.csum_offset = 0;
    wr16(pkt + b.l4 + 16, 0xdead);
    check_segments(&s, &b, segment(&b, false));
}

static void test_udp_l4(void **state)
{
    (void)state;
    struct spec s = big();
    s.udp = true;
    s.paylen = 5000;
    run(&s);
    s.ipver = 6;
    s.tap = true;
    s.paylen = 4 * 1388;
    run(&s);
}

static void test_scratch_too_small(void **state)
{
    (void)state;
    struct built b;
    struct spec s = big();
    build(&s, pkt, &b);
    got_reset();
    int rc =
        mt_vnet_segment(pkt, b.len, &b.vh, MT_LINK_IP, scratch, b.hdrlen + 1387, collect, &got);
    assert_int_equal(rc, -ENOSPC);
    assert_int_equal(got.n, 0);
    rc = mt_vnet_segment(pkt, b.len, &b.vh, MT_LINK_IP, scratch, b.hdrlen + 1388, collect, &got);
    assert_int_equal(rc, 8);
}

static void test_emit_error_stops(void **state)
{
    (void)state;
    struct built b;
    struct spec s = big();
    build(&s, pkt, &b);
    got_reset();
    got.fail_at = 2;
    int rc =
        mt_vnet_segment(pkt, b.len, &b.vh, MT_LINK_IP, scratch, sizeof(scratch), collect, &got);
    assert_int_equal(rc, -EIO);
    assert_int_equal(got.n, 2);
}

/* A non-GSO packet with a partial checksum: emitted once, complete, and pkt untouched. */
static void check_csum_only(struct spec s)
{
    struct built b;
    build(&s, pkt, &b);
    b.vh.gso_type = MT_VNET_GSO_NONE;
    b.vh.gso_size = 0;
    b.vh.hdr_len = 0;
    static uint8_t before[70000];
    memcpy(before, pkt, b.len);
    assert_int_equal(segment(&b, s.tap), 1);
    assert_int_equal(got.n, 1);
    assert_int_equal(got.len[0], b.len);
    const uint8_t *seg = got.data[0];
    assert_true(naive_l4_ok(seg + b.l3, s.ipver, s.udp ? 17 : 6, seg + b.l4, b.len - b.l4));
    size_t field = b.l4 + (s.udp ? 6 : 16);
    assert_memory_equal(seg, pkt, field);
    assert_memory_equal(seg + field + 2, pkt + field + 2, b.len - field - 2);
    assert_memory_equal(pkt, before, b.len);
}

static void test_csum_only(void **state)
{
    (void)state;
    struct spec s = big();
    s.paylen = 1000;
    check_csum_only(s);
    s.paylen = 999; /* odd: the last byte is summed as a padded word */
    s.ipver = 6;
    s.tap = s.vlan = true;
    check_csum_only(s);
    s = big();
    s.udp = s.tap = true;
    s.paylen = 13;
    check_csum_only(s);
    s.tap = false;
    s.ipver = 6;
    s.paylen = 1;
    check_csum_only(s);
}

static void test_plain_passthrough(void **state)
{
    (void)state;
    struct built b;
    struct spec s = big();
    s.paylen = 1000;
    build(&s, pkt, &b);
    wr16(pkt + b.l4 + 16, 0x1234); /* whatever is there goes out as is */
    b.vh = (struct mt_vnet_hdr){0};
    assert_int_equal(segment(&b, false), 1);
    assert_int_equal(got.len[0], b.len);
    assert_memory_equal(got.data[0], pkt, b.len);
}

static void test_complete_csum(void **state)
{
    (void)state;
    struct built b;
    struct spec s = big();
    s.paylen = 333;
    s.tap = true;
    build(&s, pkt, &b);
    struct mt_vnet_hdr h = b.vh;
    assert_int_equal(mt_vnet_complete_csum(pkt, b.len, &h), 0);
    assert_int_equal(h.flags & MT_VNET_F_NEEDS_CSUM, 0);
    assert_true(naive_l4_ok(pkt + b.l3, 4, 6, pkt + b.l4, b.len - b.l4));
    /* Without the flag there is nothing to do. */
    uint16_t was = rd16(pkt + b.l4 + 16);
    h.csum_start = 60000;
    assert_int_equal(mt_vnet_complete_csum(pkt, b.len, &h), 0);
    assert_int_equal(rd16(pkt + b.l4 + 16), was);
}

static void test_complete_csum_liars(void **state)
{
    (void)state;
    uint8_t p[64];
    memset(p, 0x5a, sizeof(p));
    struct {
        uint16_t start, off;
        int rc;
    } cases[] = {
        {64, 0, -EINVAL},     /* start at the end */
        {65535, 16, -EINVAL}, /* start far beyond */
        {60, 3, -EINVAL},     /* field's second byte past the end */
        {48, 16, -EINVAL},    /* field starts at the end */
        {0, 65535, -EINVAL},  /* offset far beyond */
        {62, 0, 0},           /* field is the last two bytes: fine */
        {0, 62, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t q[64];
        memcpy(q, p, sizeof(q));
        struct mt_vnet_hdr h = {.flags = MT_VNET_F_NEEDS_CSUM,
                                .csum_start = cases[i].start,
                                .csum_offset = cases[i].off};
        assert_int_equal(mt_vnet_complete_csum(q, sizeof(q), &h), cases[i].rc);
        if (cases[i].rc < 0) {
            assert_memory_equal(q, p, sizeof(q));
            assert_int_equal(h.flags, MT_VNET_F_NEEDS_CSUM);
        } else {
            /* The field held the pseudo-header sum (0x5a5a here); a receiver adds that back. */
            assert_int_equal(naive_fold(naive_sum(0x5a5a, q + cases[i].start, 64 - cases[i].start)),
                             0xffff);
        }
    }
}

/* Each liar: builds a good packet from s, lets lie() spoil it, expects -EINVAL, no emit. */
static void expect_liar(struct spec s, void (*lie)(struct built *b))
{
    struct built b;
    build(&s, pkt, &b);
    lie(&b);
    assert_int_equal(segment(&b, s.tap), -EINVAL);
    assert_int_equal(got.n, 0);
}

static void lie_csum_start_beyond(struct built *b)
{
    b->vh.csum_start = (uint16_t)(b->len + 10);
}
static void lie_csum_start_in_ip(struct built *b)
{
    b->vh.csum_start = (uint16_t)b->l3;
}
static void lie_csum_offset(struct built *b)
{
    b->vh.csum_offset = 60000;
}
static void lie_gso_size_zero(struct built *b)
{
    b->vh.gso_size = 0;
}
static void lie_hdr_len_beyond(struct built *b)
{
    b->vh.hdr_len = (uint16_t)(b->len + 1);
}
static void lie_ihl_beyond(struct built *b)
{
    pkt[b->l3] = 0x4f; /* 60 bytes of IP header, reaching into TCP */
}
static void lie_ihl_small(struct built *b)
{
    pkt[b->l3] = 0x44;
}
static void lie_tot_len_long(struct built *b)
{
    wr16(pkt + b->l3 + 2, (uint16_t)(b->len - b->l3 + 1));
}
static void lie_tot_len_short(struct built *b)
{
    wr16(pkt + b->l3 + 2, (uint16_t)(b->len - b->l3 - 1));
}
static void lie_tot_len_zero(struct built *b)
{
    wr16(pkt + b->l3 + 2, 0);
}
static void lie_plen_long(struct built *b)
{
    wr16(pkt + b->l3 + 4, (uint16_t)(b->len - b->l3 - 40 + 1));
}
static void lie_plen_zero(struct built *b)
{
    wr16(pkt + b->l3 + 4, 0); /* a jumbogram without its option, or BIG TCP */
}
static void lie_tcp_doff_small(struct built *b)
{
    pkt[b->l4 + 12] = 0x30; /* 12 bytes: below the minimum */
}
static void lie_tcp_doff_beyond(struct built *b)
{
    pkt[b->l4 + 12] = 0xf0; /* 60 bytes of TCP header in a 30-byte segment */
}
static void lie_truncated(struct built *b)
{
    b->len = b->l4 + 10; /* cut inside the TCP header, IP lengths to match */
    if (pkt[b->l3] >> 4 == 4)
        wr16(pkt + b->l3 + 2, (uint16_t)(b->len - b->l3));
    else
        wr16(pkt + b->l3 + 4, (uint16_t)(b->len - b->l3 - 40));
    b->vh.csum_start = 0;
    b->vh.hdr_len = 0;
}
static void lie_truncated_ip(struct built *b)
{
    b->len = b->l3 + 10;
    b->vh.flags = 0;
    b->vh.hdr_len = 0;
}
static void lie_udp_as_tcpv4(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_TCPV4;
}
static void lie_tcpv6_on_v4(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_TCPV6;
}
static void lie_tcpv4_on_v6(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_TCPV4;
}
static void lie_ufo(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_UDP;
}
static void lie_unknown_type(struct built *b)
{
    b->vh.gso_type = 2;
}
static void lie_ecn_alone(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_ECN;
}
static void lie_udp_l4_ecn(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_UDP_L4 | MT_VNET_GSO_ECN;
}
static void lie_fragment(struct built *b)
{
    uint8_t *ip = pkt + b->l3;
    wr16(ip + 6, 0x2000); /* MF */
    wr16(ip + 10, 0);
    wr16(ip + 10, (uint16_t)~naive_fold(naive_sum(0, ip, 20)));
}
static void lie_not_ip(struct built *b)
{
    (void)b;
    pkt[0] = 0x55; /* version 5: no IP header at all */
}
static void lie_csum_only_beyond(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_NONE;
    b->vh.csum_start = (uint16_t)(b->len - 1);
}
static void lie_csum_only_hdr_len(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_NONE;
    b->vh.hdr_len = (uint16_t)(b->len + 1);
}

static void test_liars(void **state)
{
    (void)state;
    struct spec v4 = big(), v6 = big(), tap4 = big(), udp = big(), tiny = big(), tiny6 = big();
    v6.ipver = 6;
    tap4.tap = tap4.vlan = true;
    udp.udp = true;
    udp.paylen = 3000;
    /* So small that a header length claim can reach past the end. */
    tiny.tcpopt = tiny6.tcpopt = 0;
    tiny.paylen = tiny6.paylen = 10;
    tiny6.ipver = 6;
    expect_liar(v4, lie_csum_start_beyond);
    expect_liar(tap4, lie_csum_start_beyond);
    expect_liar(v4, lie_csum_start_in_ip);
    expect_liar(v6, lie_csum_offset);
    expect_liar(v4, lie_gso_size_zero);
    expect_liar(v6, lie_gso_size_zero);
    expect_liar(v4, lie_hdr_len_beyond);
    expect_liar(v4, lie_ihl_beyond);
    expect_liar(tap4, lie_ihl_beyond);
    expect_liar(v4, lie_ihl_small);
    expect_liar(v4, lie_tot_len_long);
    expect_liar(v4, lie_tot_len_short);
    expect_liar(tap4, lie_tot_len_zero);
    expect_liar(v6, lie_plen_long);
    expect_liar(v6, lie_plen_zero);
    expect_liar(tiny, lie_ihl_beyond);
    expect_liar(v4, lie_tcp_doff_small);
    expect_liar(tiny, lie_tcp_doff_beyond);
    expect_liar(tiny6, lie_tcp_doff_beyond);
    expect_liar(v4, lie_truncated);
    expect_liar(v6, lie_truncated);
    expect_liar(v4, lie_truncated_ip);
    expect_liar(udp, lie_udp_as_tcpv4);
    expect_liar(v4, lie_tcpv6_on_v4);
    expect_liar(v6, lie_tcpv4_on_v6);
    expect_liar(udp, lie_ufo);
    expect_liar(v4, lie_unknown_type);
    expect_liar(v4, lie_ecn_alone);
    expect_liar(udp, lie_udp_l4_ecn);
    expect_liar(v4, lie_fragment);
    expect_liar(v4, lie_not_ip);
    expect_liar(v4, lie_csum_only_beyond);
    expect_liar(v4, lie_csum_only_hdr_len);
}

/* mt_vnet_check: what a peer's offload header must be before it reaches a device or another
 * peer. Every liar the segmenter refuses is refused here too, and then some. */
static int check(const struct built *b, bool tap, struct mt_vnet_hdr *vh, size_t max_seg)
{
    *vh = b->vh;
    return mt_vnet_check(pkt, b->len, vh, tap ? MT_LINK_ETH : MT_LINK_IP, max_seg);
}

static void expect_check_liar(struct spec s, void (*lie)(struct built *b))
{
    struct built b;
    struct mt_vnet_hdr vh;
    build(&s, pkt, &b);
    lie(&b);
    assert_int_equal(check(&b, s.tap, &vh, 1500), -EINVAL);
}

static void lie_gso_size_one(struct built *b)
{
    b->vh.gso_size = 1; /* one frame, 65,000 segments */
}
static void lie_gso_size_below_floor(struct built *b)
{
    b->vh.gso_size = MT_VNET_GSO_MIN - 1;
}
static void lie_gso_size_past_mtu(struct built *b)
{
    b->vh.gso_size = 4000; /* segments larger than anything this end accepts */
}
static void lie_unknown_flag(struct built *b)
{
    b->vh.flags |= 0x80;
}
static void lie_csum_only_on_ip_header(struct built *b)
{
    b->vh.gso_type = MT_VNET_GSO_NONE;
    b->vh.csum_start = 10; /* the kernel would write two bytes into the IP header */
}

static void test_check_refuses_liars(void **state)
{
    (void)state;
    struct spec v4 = big(), v6 = big(), tap4 = big(), udp = big(), tiny = big();
    v6.ipver = 6;
    tap4.tap = tap4.vlan = true;
    udp.udp = true;
    udp.paylen = 3000;
    tiny.tcpopt = 0;
    tiny.paylen = 10;
    void (*segmenter_liars[])(struct built *) = {
        lie_csum_start_beyond,
        lie_csum_start_in_ip,
        lie_csum_offset,
        lie_gso_size_zero,
        lie_hdr_len_beyond,
        lie_ihl_beyond,
        lie_ihl_small,
        lie_tot_len_long,
        lie_tot_len_short,
        lie_tot_len_zero,
        lie_tcp_doff_small,
        lie_truncated,
        lie_tcpv6_on_v4,
        lie_unknown_type,
        lie_ecn_alone,
        lie_fragment,
        lie_not_ip,
        lie_csum_only_beyond,
        lie_gso_size_one,
        lie_gso_size_below_floor,
        lie_gso_size_past_mtu,
        lie_unknown_flag,
        lie_csum_only_on_ip_header,
    };
    for (size_t i = 0; i < sizeof(segmenter_liars) / sizeof(segmenter_liars[0]); i++) {
        expect_check_liar(v4, segmenter_liars[i]);
        if (segmenter_liars[i] != lie_not_ip) /* in tap, byte 0 is a MAC address */
            expect_check_liar(tap4, segmenter_liars[i]);
    }
    expect_check_liar(v6, lie_plen_long);
    expect_check_liar(v6, lie_plen_zero);
    expect_check_liar(v6, lie_tcpv4_on_v6);
    expect_check_liar(v6, lie_gso_size_one);
    expect_check_liar(udp, lie_udp_as_tcpv4);
    expect_check_liar(udp, lie_ufo);
    expect_check_liar(udp, lie_udp_l4_ecn);
    expect_check_liar(tiny, lie_tcp_doff_beyond);

    /* Seen from a hostile peer: TCPv4 GSO, hdr_len 65535, gso_size 0, csum_start 60000 on a
     * 28-byte UDP packet. */
    uint8_t udp28[28] = {0x45, 0, 0,  28, 0, 0, 0,    0,    64, 17, 0, 0, 10, 0,
                         0,    1, 10, 0,  0, 2, 0x9c, 0x40, 0,  53, 0, 8, 0,  0};
    struct mt_vnet_hdr vh = {.flags = MT_VNET_F_NEEDS_CSUM,
                             .gso_type = MT_VNET_GSO_TCPV4,
                             .hdr_len = 65535,
                             .gso_size = 0,
                             .csum_start = 60000,
                             .csum_offset = 6};
    assert_int_equal(mt_vnet_check(udp28, sizeof(udp28), &vh, MT_LINK_IP, 1500), -EINVAL);
}

static void test_check_accepts_and_normalises(void **state)
{
    (void)state;
    struct spec v4 = big(), v6 = big(), tap4 = big(), udp = big();
    v6.ipver = 6;
    tap4.tap = tap4.vlan = true;
    udp.udp = true;
    udp.paylen = 3000;
    struct spec *good[] = {&v4, &v6, &tap4, &udp};
    for (size_t i = 0; i < 4; i++) {
        struct built b;
        struct mt_vnet_hdr vh;
        build(good[i], pkt, &b);
        b.vh.hdr_len = 3;                   /* a hint, and a wrong one */
        b.vh.flags |= MT_VNET_F_DATA_VALID; /* a peer's word is not a verified checksum */
        assert_int_equal(check(&b, good[i]->tap, &vh, 1500), 0);
        assert_int_equal(vh.hdr_len, b.hdrlen);
        assert_int_equal(vh.flags, MT_VNET_F_NEEDS_CSUM);
        assert_int_equal(vh.gso_size, 1388);
        /* The same packet against a smaller segment limit is refused, not cut blindly. */
        assert_int_equal(check(&b, good[i]->tap, &vh, 1000), -EINVAL);
    }
    /* An ordinary packet: unused fields are zeroed, whatever a peer put there. */
    struct built b;
    struct mt_vnet_hdr vh;
    build(&v4, pkt, &b);
    b.vh = (struct mt_vnet_hdr){.hdr_len = 9, .gso_size = 7, .csum_start = 5, .csum_offset = 3};
    assert_int_equal(check(&b, false, &vh, 1500), 0);
    struct mt_vnet_hdr zero = {0};
    assert_memory_equal(&vh, &zero, sizeof(vh));
    /* A partial checksum alone, at the TCP field. */
    build(&v4, pkt, &b);
    b.vh.gso_type = MT_VNET_GSO_NONE;
    assert_int_equal(check(&b, false, &vh, 1500), 0);
    assert_int_equal(vh.gso_size, 0);
    assert_int_equal(vh.hdr_len, 0);
    /* A super-packet whose checksum a script finished (pkt:bytes()) is given the partial
     * form back, and cuts into right segments. */
    struct spec s = big();
    build(&s, pkt, &b);
    uint8_t *ip = pkt + b.l3, *l4 = pkt + b.l4;
    size_t l4len = b.len - b.l4;
    wr16(l4 + 16, 0);
    wr16(l4 + 16, (uint16_t)~naive_fold(naive_sum(naive_pseudo(ip, 4, 6, l4len), l4, l4len)));
    b.vh.flags = 0;
    b.vh.csum_start = b.vh.csum_offset = 0;
    assert_int_equal(check(&b, false, &vh, 1500), 0);
    assert_int_equal(vh.flags, MT_VNET_F_NEEDS_CSUM);
    assert_int_equal(vh.csum_start, b.l4);
    assert_int_equal(vh.csum_offset, 16);
    assert_int_equal(rd16(l4 + 16), naive_fold(naive_pseudo(ip, 4, 6, l4len)));
    b.vh = vh;
    check_segments(&s, &b, segment(&b, false));
}

/* mt_vnet_make_super: a script's finished copy of a super-packet becomes a super-packet
 * again, whose segments are right (checked by the segmenter and the naive checksum). */
static void test_make_super(void **state)
{
    (void)state;
    struct spec s = big();
    struct built b;
    build(&s, pkt, &b);
    /* Finish it as pkt:bytes() does: a full checksum over the whole. */
    uint8_t *ip = pkt + b.l3, *l4 = pkt + b.l4;
    size_t l4len = b.len - b.l4;
    wr16(l4 + 16, 0);
    wr16(l4 + 16, (uint16_t)~naive_fold(naive_sum(naive_pseudo(ip, 4, 6, l4len), l4, l4len)));
    struct mt_vnet_hdr vh;
    assert_int_equal(mt_vnet_make_super(pkt, b.len, MT_LINK_IP, 1440, &vh), 0);
    assert_int_equal(vh.gso_type, MT_VNET_GSO_TCPV4);
    assert_int_equal(vh.flags, MT_VNET_F_NEEDS_CSUM);
    assert_int_equal(vh.gso_size, 1440 - (b.hdrlen - b.l3));
    assert_int_equal(vh.csum_start, b.l4);
    assert_int_equal(mt_vnet_check(pkt, b.len, &vh, MT_LINK_IP, 1440), 0);
    struct built nb = b;
    nb.vh = vh;
    check_segments(&s, &nb, segment(&nb, false));
    /* Not TCP: nothing to describe. */
    struct spec u = big();
    u.udp = true;
    build(&u, pkt, &b);
    assert_int_equal(mt_vnet_make_super(pkt, b.len, MT_LINK_IP, 1440, &vh), -EINVAL);
}

/* Fault: a super-packet whose gso_size made segments larger than a plain peer's MTU was cut
 * twice, the second time in place, corrupting sequence numbers and flags. It is re-planned
 * at the peer's MTU instead, and one pass of the segmenter gives right segments. */
static void test_fit_mtu(void **state)
{
    (void)state;
    struct spec s = big();
    struct built b;
    build(&s, pkt, &b);
    b.vh.gso_size = 4000;
    mt_vnet_fit_mtu(pkt, b.len, MT_LINK_IP, 1400, &b.vh);
    assert_int_equal(b.vh.gso_size, 1400 - (b.hdrlen - b.l3));
    check_segments(&s, &b, segment(&b, false));
    for (int i = 0; i < got.n; i++)
        assert_true(got.len[i] - b.l3 <= 1400);
    /* Already small enough: untouched. */
    b.vh.gso_size = 500;
    mt_vnet_fit_mtu(pkt, b.len, MT_LINK_IP, 1400, &b.vh);
    assert_int_equal(b.vh.gso_size, 500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hdr_read_write_little_endian),
        cmocka_unit_test(test_tso4_tun),
        cmocka_unit_test(test_tso6_tun),
        cmocka_unit_test(test_tso4_tap),
        cmocka_unit_test(test_tso6_tap_vlan),
        cmocka_unit_test(test_tso4_tap_vlan_ip_options),
        cmocka_unit_test(test_tso6_extension_header),
        cmocka_unit_test(test_tso_cwr_only_first),
        cmocka_unit_test(test_tso_exact_multiple),
        cmocka_unit_test(test_tso_one_segment_keeps_all_flags),
        cmocka_unit_test(test_tso_empty_payload),
        cmocka_unit_test(test_tso_seq_and_id_wrap),
        cmocka_unit_test(test_tso_biggest_ipv4),
        cmocka_unit_test(test_tso_hdr_len_is_a_hint),
        cmocka_unit_test(test_tso_without_needs_csum),
        cmocka_unit_test(test_udp_l4),
        cmocka_unit_test(test_scratch_too_small),
        cmocka_unit_test(test_emit_error_stops),
        cmocka_unit_test(test_csum_only),
        cmocka_unit_test(test_plain_passthrough),
        cmocka_unit_test(test_complete_csum),
        cmocka_unit_test(test_complete_csum_liars),
        cmocka_unit_test(test_liars),
        cmocka_unit_test(test_check_refuses_liars),
        cmocka_unit_test(test_check_accepts_and_normalises),
        cmocka_unit_test(test_make_super),
        cmocka_unit_test(test_fit_mtu),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
