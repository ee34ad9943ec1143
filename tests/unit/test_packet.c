/* Unit tests for the packet view (core/packet.c): headroom and tailroom accounting, the
 * MT_MAX_PACKET ceiling, and that failures leave the packet untouched. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "moontun/packet.h"
#include "moontun/vnet.h"

static uint8_t buf[MT_PKT_BUFSIZE];

static void fresh(struct mt_packet *pkt)
{
    memset(buf, 0xaa, sizeof(buf));
    mt_packet_init(pkt, buf, sizeof(buf), MT_HEADROOM);
}

static void test_init(void **state)
{
    struct mt_packet pkt;
    memset(&pkt, 0x77, sizeof(pkt));
    fresh(&pkt);
    assert_ptr_equal(pkt.base, buf);
    assert_ptr_equal(pkt.data, buf + MT_HEADROOM);
    assert_int_equal(pkt.len, 0);
    assert_int_equal(pkt.cap, sizeof(buf));
    assert_null(pkt.peer);
    assert_int_equal(mt_packet_headroom(&pkt), MT_HEADROOM);
    assert_int_equal(mt_packet_tailroom(&pkt), MT_MAX_PACKET + MT_TAILROOM);

    /* More headroom than buffer: clipped, the view stays inside. */
    mt_packet_init(&pkt, buf, 16, 64);
    assert_ptr_equal(pkt.data, buf + 16);
    assert_int_equal(mt_packet_tailroom(&pkt), 0);
}

static void test_push_pull_put(void **state)
{
    struct mt_packet pkt;
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, 100), 0);
    assert_int_equal(pkt.len, 100);
    pkt.data[0] = 0x45;
    assert_int_equal(mt_packet_push(&pkt, 4), 0);
    assert_ptr_equal(pkt.data, buf + MT_HEADROOM - 4);
    assert_int_equal(pkt.len, 104);
    assert_int_equal(pkt.data[4], 0x45);
    assert_int_equal(mt_packet_pull(&pkt, 4), 0);
    assert_int_equal(pkt.data[0], 0x45);
    assert_int_equal(pkt.len, 100);
    assert_int_equal(mt_packet_pull(&pkt, 100), 0);
    assert_int_equal(pkt.len, 0);
    /* Zero-sized moves are no-ops, not errors. */
    assert_int_equal(mt_packet_push(&pkt, 0), 0);
    assert_int_equal(mt_packet_pull(&pkt, 0), 0);
    assert_int_equal(mt_packet_put(&pkt, 0), 0);
}

static void test_push_past_headroom(void **state)
{
    struct mt_packet pkt;
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, 10), 0);
    uint8_t *data = pkt.data;
    assert_int_equal(mt_packet_push(&pkt, MT_HEADROOM + 1), -ENOSPC);
    assert_ptr_equal(pkt.data, data);
    assert_int_equal(pkt.len, 10);
    assert_int_equal(mt_packet_push(&pkt, SIZE_MAX), -ENOSPC);
    assert_int_equal(mt_packet_push(&pkt, MT_HEADROOM), 0);
    assert_ptr_equal(pkt.data, buf);
    assert_int_equal(mt_packet_push(&pkt, 1), -ENOSPC);
}

static void test_pull_more_than_len(void **state)
{
    struct mt_packet pkt;
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, 10), 0);
    assert_int_equal(mt_packet_pull(&pkt, 11), -EINVAL);
    assert_int_equal(mt_packet_pull(&pkt, SIZE_MAX), -EINVAL);
    assert_int_equal(pkt.len, 10);
    assert_ptr_equal(pkt.data, buf + MT_HEADROOM);
}

static void test_put_past_tailroom(void **state)
{
    /* A small buffer so that tailroom, not MT_MAX_PACKET, is the limit. */
    uint8_t small[64];
    struct mt_packet pkt;
    mt_packet_init(&pkt, small, sizeof(small), 16);
    assert_int_equal(mt_packet_put(&pkt, 49), -ENOSPC);
    assert_int_equal(pkt.len, 0);
    assert_int_equal(mt_packet_put(&pkt, 48), 0);
    assert_int_equal(mt_packet_put(&pkt, 1), -ENOSPC);
    assert_int_equal(mt_packet_put(&pkt, SIZE_MAX), -ENOSPC);
    assert_int_equal(pkt.len, 48);
}

static void test_max_packet_ceiling(void **state)
{
    struct mt_packet pkt;
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, MT_MAX_PACKET), 0);
    /* Tailroom is left, but the framing cannot carry one byte more. */
    assert_true(mt_packet_tailroom(&pkt) > 0);
    assert_int_equal(mt_packet_put(&pkt, 1), -ENOSPC);
    assert_int_equal(mt_packet_push(&pkt, 1), -ENOSPC);
    assert_int_equal(mt_packet_resize(&pkt, MT_MAX_PACKET + 1), -ENOSPC);
    assert_int_equal(pkt.len, MT_MAX_PACKET);
    assert_int_equal(mt_packet_pull(&pkt, 1), 0);
    assert_int_equal(mt_packet_push(&pkt, 1), 0);
    assert_int_equal(pkt.len, MT_MAX_PACKET);
}

static void test_resize_zeroes_new_bytes(void **state)
{
    struct mt_packet pkt;
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, 8), 0);
    memset(pkt.data, 0x11, 8);
    /* Shrink keeps the head and leaves the stale tail in the buffer... */
    assert_int_equal(mt_packet_resize(&pkt, 4), 0);
    assert_int_equal(pkt.len, 4);
    /* ...which growing again must not expose. */
    assert_int_equal(mt_packet_resize(&pkt, 100), 0);
    assert_int_equal(pkt.len, 100);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(pkt.data[i], 0x11);
    for (size_t i = 4; i < 100; i++)
        assert_int_equal(pkt.data[i], 0);
    /* The byte after the new end is untouched. */
    assert_int_equal(pkt.data[100], 0xaa);
    assert_int_equal(mt_packet_resize(&pkt, 0), 0);
    assert_int_equal(pkt.len, 0);
}

static void test_resize_past_tailroom(void **state)
{
    uint8_t small[64];
    struct mt_packet pkt;
    mt_packet_init(&pkt, small, sizeof(small), 16);
    assert_int_equal(mt_packet_resize(&pkt, 10), 0);
    assert_int_equal(mt_packet_resize(&pkt, 49), -ENOSPC);
    assert_int_equal(mt_packet_resize(&pkt, SIZE_MAX), -ENOSPC);
    assert_int_equal(pkt.len, 10);
    assert_int_equal(mt_packet_resize(&pkt, 48), 0);
}

/* Fault: a packet that arrived longer than the ceiling (an extended frame of 65,791 bytes)
 * made "MT_MAX_PACKET - len" wrap, so push and put let it grow past its buffer. */
static void test_overlong_packet_cannot_grow(void **state)
{
    struct mt_packet pkt;
    fresh(&pkt);
    pkt.len = MT_MAX_PACKET + 256; /* as a liar's frame once filled the buffer */
    assert_int_equal(mt_packet_push(&pkt, 4), -ENOSPC);
    assert_int_equal(mt_packet_put(&pkt, 1), -ENOSPC);
    assert_ptr_equal(pkt.data, buf + MT_HEADROOM);
    assert_int_equal(pkt.len, MT_MAX_PACKET + 256);
}

/* Every copy between buffers is bounded by the destination's room. */
static void test_copy_is_bounded(void **state)
{
    static uint8_t dstbuf[MT_PKT_BUFSIZE];
    struct mt_packet src, dst;
    fresh(&src);
    assert_int_equal(mt_packet_put(&src, 100), 0);
    memset(src.data, 0x5a, 100);
    src.dir = MT_DIR_INGRESS;
    src.vnet.flags = MT_VNET_F_NEEDS_CSUM;
    src.vnet.csum_start = 20;
    src.vnet.csum_offset = 16;
    assert_int_equal(mt_packet_copy(&dst, dstbuf, sizeof(dstbuf), &src), 0);
    assert_int_equal(dst.len, 100);
    assert_ptr_equal(dst.data, dstbuf + MT_HEADROOM);
    assert_memory_equal(dst.data, src.data, 100);
    assert_int_equal(dst.dir, MT_DIR_INGRESS);
    assert_int_equal(dst.vnet.csum_start, 20);

    src.len = MT_MAX_PACKET + 4; /* longer than any packet may be */
    assert_int_equal(mt_packet_copy(&dst, dstbuf, sizeof(dstbuf), &src), -EMSGSIZE);
    assert_int_equal(dst.len, 0);
    src.len = 1000; /* fits the ceiling, not this small buffer */
    uint8_t small[MT_HEADROOM + 999];
    assert_int_equal(mt_packet_copy(&dst, small, sizeof(small), &src), -EMSGSIZE);
}

/* Fault: a header pushed in front of an offloaded packet left csum_start and hdr_len at the
 * old offsets, so the kernel (or the segmenter) put the checksum in the wrong place. */
static void test_push_pull_move_offload_offsets(void **state)
{
    struct mt_packet pkt;
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, 1000), 0);
    pkt.vnet.flags = MT_VNET_F_NEEDS_CSUM;
    pkt.vnet.gso_type = MT_VNET_GSO_TCPV4;
    pkt.vnet.gso_size = 500;
    pkt.vnet.hdr_len = 40;
    pkt.vnet.csum_start = 20;
    pkt.vnet.csum_offset = 16;
    assert_int_equal(mt_packet_push(&pkt, 8), 0);
    assert_int_equal(pkt.vnet.csum_start, 28);
    assert_int_equal(pkt.vnet.hdr_len, 48);
    assert_int_equal(pkt.vnet.csum_offset, 16);
    assert_int_equal(mt_packet_pull(&pkt, 8), 0);
    assert_int_equal(pkt.vnet.csum_start, 20);
    assert_int_equal(pkt.vnet.hdr_len, 40);
    /* Pulling away the transport header leaves nothing the offload header can describe. */
    assert_int_equal(mt_packet_pull(&pkt, 30), 0);
    assert_int_equal(pkt.vnet.gso_type, MT_VNET_GSO_NONE);
    assert_int_equal(pkt.vnet.flags, 0);
    /* A partial checksum without GSO has no hdr_len: push and pull move csum_start alone
     * (found by fuzz_vnet: pull once forgot the offload because hdr_len 0 < n). */
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, 100), 0);
    pkt.vnet =
        (struct mt_vnet_hdr){.flags = MT_VNET_F_NEEDS_CSUM, .csum_start = 20, .csum_offset = 16};
    assert_int_equal(mt_packet_push(&pkt, 4), 0);
    assert_int_equal(mt_packet_pull(&pkt, 4), 0);
    assert_int_equal(pkt.vnet.flags, MT_VNET_F_NEEDS_CSUM);
    assert_int_equal(pkt.vnet.csum_start, 20);
    assert_int_equal(pkt.vnet.hdr_len, 0);
    /* An ordinary packet's (meaningless) offsets are left alone. */
    fresh(&pkt);
    assert_int_equal(mt_packet_put(&pkt, 100), 0);
    pkt.vnet.csum_start = 7;
    assert_int_equal(mt_packet_push(&pkt, 4), 0);
    assert_int_equal(pkt.vnet.csum_start, 7);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_init),
        cmocka_unit_test(test_push_pull_put),
        cmocka_unit_test(test_push_past_headroom),
        cmocka_unit_test(test_pull_more_than_len),
        cmocka_unit_test(test_put_past_tailroom),
        cmocka_unit_test(test_max_packet_ceiling),
        cmocka_unit_test(test_resize_zeroes_new_bytes),
        cmocka_unit_test(test_resize_past_tailroom),
        cmocka_unit_test(test_overlong_packet_cannot_grow),
        cmocka_unit_test(test_copy_is_bounded),
        cmocka_unit_test(test_push_pull_move_offload_offsets),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
