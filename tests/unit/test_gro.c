/* Userspace GRO (core/gro.c): segments cut from a super-packet by the software segmenter join
 * back into one packet with the same bytes; anything that must not join does not. Checksums
 * are verified with a naive RFC 1071 sum written here. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gro.h"
#include "moontun/proto.h"
#include "moontun/vnet.h"

#define PAYLOAD 20000
#define MSS     1388

static uint8_t super_pkt[MT_MAX_PACKET];
static size_t super_len;
static uint8_t segs[64][2048];
static size_t seglen[64];
static int nsegs;

static uint32_t naive_sum(uint32_t sum, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i + 1 < n; i += 2)
        sum += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        sum += (uint32_t)p[n - 1] << 8;
    return sum;
}

static uint16_t naive_fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)sum;
}

/* True when the TCP checksum of an ordinary packet (IPv4 or IPv6, no extension headers) is
 * right. */
static bool tcp_ok(const uint8_t *p, size_t len)
{
    int v6 = p[0] >> 4 == 6;
    size_t l4 = v6 ? 40 : (size_t)(p[0] & 15) * 4;
    uint32_t s = naive_sum(0, p + (v6 ? 8 : 12), v6 ? 32 : 8);
    s += 6 + (uint32_t)(len - l4);
    s = naive_sum(s, p + l4, len - l4);
    return naive_fold(s) == 0xFFFF;
}

static int collect(void *ctx, const uint8_t *seg, size_t len)
{
    (void)ctx;
    memcpy(segs[nsegs], seg, len);
    seglen[nsegs++] = len;
    return 0;
}

/* A TCP super-packet as the kernel hands one over (lengths for the whole, ACK|PSH), cut. */
static void make_segments(int v6)
{
    uint8_t *p = super_pkt;
    size_t l4 = v6 ? 40 : 20, thl = 32; /* TCP with a 12-byte timestamp option */
    super_len = l4 + thl + PAYLOAD;
    memset(p, 0, l4 + thl);
    if (v6) {
        p[0] = 0x60;
        p[4] = (uint8_t)((super_len - 40) >> 8);
        p[5] = (uint8_t)(super_len - 40);
        p[6] = 6;
        p[7] = 64;
        p[8] = 0xfd, p[23] = 2, p[24] = 0xfd, p[39] = 1;
    } else {
        p[0] = 0x45;
        p[2] = (uint8_t)(super_len >> 8);
        p[3] = (uint8_t)super_len;
        p[6] = 0x40;
        p[8] = 64;
        p[9] = 6;
        p[12] = 10, p[15] = 2, p[16] = 10, p[19] = 1;
    }
    uint8_t *t = p + l4;
    t[0] = 0x9c, t[1] = 0x40, t[2] = 0x14, t[3] = 0x51; /* 40000 -> 5201 */
    t[4] = 0xff, t[5] = 0xff, t[6] = 0xf0;              /* seq wraps inside */
    t[11] = 7;
    t[12] = (uint8_t)(thl / 4) << 4;
    t[13] = 0x18; /* ACK|PSH */
    t[15] = 0xff;
    t[20] = 1, t[21] = 1, t[22] = 8, t[23] = 10, t[27] = 42; /* NOP NOP TS */
    for (size_t i = 0; i < PAYLOAD; i++)
        p[l4 + thl + i] = (uint8_t)(i * 7 + 3);
    mt_proto_fix_checksums(p, super_len, MT_LINK_IP);
    struct mt_vnet_hdr h = {.gso_type = v6 ? MT_VNET_GSO_TCPV6 : MT_VNET_GSO_TCPV4,
                            .gso_size = MSS,
                            .hdr_len = (uint16_t)(l4 + thl)};
    static uint8_t scratch[4096];
    nsegs = 0;
    assert_true(
        mt_vnet_segment(p, super_len, &h, MT_LINK_IP, scratch, sizeof scratch, collect, NULL) > 1);
}

static void roundtrip(int v6)
{
    make_segments(v6);
    static uint8_t buf[MT_MAX_PACKET];
    struct mt_gro g = {.buf = buf};
    int owner;
    assert_true(mt_gro_start(&g, &owner, segs[0], seglen[0]));
    for (int i = 1; i < nsegs; i++) {
        assert_true(mt_gro_fits(&g, &owner, segs[i], seglen[i]));
        mt_gro_append(&g, segs[i], seglen[i]);
    }
    struct mt_vnet_hdr v;
    size_t len = mt_gro_finish(&g, &v);
    assert_int_equal(len, super_len);
    assert_int_equal(v.gso_size, MSS);
    assert_int_equal(v.gso_type, v6 ? MT_VNET_GSO_TCPV6 : MT_VNET_GSO_TCPV4);
    assert_true(v.flags & MT_VNET_F_NEEDS_CSUM);
    /* Every byte but the checksums (and the IPv4 id/checksum) is the original's. */
    size_t l4 = v6 ? 40 : 20;
    assert_memory_equal(buf + l4 + 32, super_pkt + l4 + 32, PAYLOAD);
    assert_memory_equal(buf + l4, super_pkt + l4, 16);
    /* Completing the partial checksum gives a right one. */
    assert_int_equal(mt_vnet_complete_csum(buf, len, &v), 0);
    assert_true(tcp_ok(buf, len));
    if (!v6)
        assert_int_equal(naive_fold(naive_sum(0, buf, 20)), 0xFFFF);
    assert_int_equal(g.len, 0);
}

static void test_roundtrip_ipv4(void **state)
{
    (void)state;
    roundtrip(0);
}

static void test_roundtrip_ipv6(void **state)
{
    (void)state;
    roundtrip(1);
}

static void test_refusals(void **state)
{
    (void)state;
    make_segments(0);
    static uint8_t buf[MT_MAX_PACKET];
    struct mt_gro g = {.buf = buf};
    int a, b;
    /* The last segment is shorter and carries PSH: nothing may follow it, and it cannot be
     * first of a join either way round. Start with segment 0. */
    assert_true(mt_gro_start(&g, &a, segs[0], seglen[0]));
    assert_false(mt_gro_fits(&g, &b, segs[1], seglen[1])); /* another peer */
    assert_false(mt_gro_fits(&g, &a, segs[2], seglen[2])); /* a gap */
    uint8_t bad[2048];
    memcpy(bad, segs[1], seglen[1]);
    bad[seglen[1] - 1] ^= 1; /* a corrupted byte: the checksum no longer holds */
    assert_false(mt_gro_fits(&g, &a, bad, seglen[1]));
    memcpy(bad, segs[1], seglen[1]);
    bad[20 + 31] ^= 1; /* a different timestamp option */
    mt_proto_fix_checksums(bad, seglen[1], MT_LINK_IP);
    assert_false(mt_gro_fits(&g, &a, bad, seglen[1]));
    memcpy(bad, segs[1], seglen[1]);
    bad[20 + 13] |= 0x01; /* FIN */
    mt_proto_fix_checksums(bad, seglen[1], MT_LINK_IP);
    assert_false(mt_gro_fits(&g, &a, bad, seglen[1]));
    assert_true(mt_gro_fits(&g, &a, segs[1], seglen[1]));
    /* A single held segment comes back unchanged, with no offload header. */
    struct mt_gro one = {.buf = buf};
    assert_true(mt_gro_start(&one, &a, segs[3], seglen[3]));
    struct mt_vnet_hdr v;
    assert_int_equal(mt_gro_finish(&one, &v), seglen[3]);
    assert_int_equal(v.gso_type, MT_VNET_GSO_NONE);
    assert_memory_equal(buf, segs[3], seglen[3]);
    /* A pure ACK or a UDP packet never starts one. */
    memcpy(bad, segs[0], 52);
    bad[2] = 0, bad[3] = 52;
    mt_proto_fix_checksums(bad, 52, MT_LINK_IP);
    assert_false(mt_gro_start(&one, &a, bad, 52));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_ipv4),
        cmocka_unit_test(test_roundtrip_ipv6),
        cmocka_unit_test(test_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
