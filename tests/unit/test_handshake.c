/* Unit tests for a TCP connection's protocol state (core/handshake.c): the offload handshake
 * (only the client speaks first, HELLO only as its first frame, SWITCH only in answer to ours,
 * everything else that looks like them a packet), the switch to extended frames, frames
 * longer than this end takes skipped in step, and the lengths that close a connection. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "handshake.h"

#define MAX 1500

/* A stream under construction. */
struct stream {
    uint8_t b[4 * 70000];
    size_t n;
};

static void put(struct stream *s, const uint8_t *p, size_t len)
{
    mt_frame_header(s->b + s->n, len);
    memcpy(s->b + s->n + MT_FRAME_HDR, p, len);
    s->n += MT_FRAME_HDR + len;
}

static void put_msg(struct stream *s, enum mt_hs_msg m)
{
    uint8_t msg[MT_HS_LEN];
    mt_hs_message(msg, m);
    put(s, msg, sizeof(msg));
}

static void put_x(struct stream *s, const uint8_t *p, size_t len)
{
    mt_xframe_header(s->b + s->n, MT_XFRAME_VNET + len);
    memset(s->b + s->n + MT_XFRAME_HDR, 0, MT_XFRAME_VNET);
    memcpy(s->b + s->n + MT_XFRAME_HDR + MT_XFRAME_VNET, p, len);
    s->n += MT_XFRAME_HDR + MT_XFRAME_VNET + len;
}

/* Reads the next item of s from offset *off (whole stream available). */
static struct mt_wire_item next(struct mt_wire *w, const struct stream *s, size_t *off)
{
    struct mt_wire_item it;
    *off += mt_wire_next(w, s->b + *off, s->n - *off, MAX, &it);
    return it;
}

static void test_messages(void **state)
{
    uint8_t m[MT_HS_LEN];
    mt_hs_message(m, MT_HS_HELLO);
    assert_int_equal(mt_hs_parse(m, sizeof(m)), MT_HS_HELLO);
    /* An IPv4 packet every kernel drops: version 4, total length 44, protocol 253, 0.0.0.0
     * to 0.0.0.0, header checksum 0 (wrong). */
    assert_int_equal(m[0], 0x45);
    assert_int_equal(m[3], MT_HS_LEN);
    assert_int_equal(m[9], 253);
    assert_int_equal(m[10] | m[11] | m[12] | m[13] | m[14] | m[15] | m[16] | m[17] | m[18] | m[19],
                     0);
    mt_hs_message(m, MT_HS_SWITCH);
    assert_int_equal(mt_hs_parse(m, sizeof(m)), MT_HS_SWITCH);
    assert_int_equal(mt_hs_parse(m, sizeof(m) - 1), MT_HS_NONE);
    /* Byte for byte: any change, even in the padding, makes it a packet. */
    for (size_t i = 0; i < MT_HS_LEN; i++) {
        mt_hs_message(m, MT_HS_SWITCH);
        m[i] ^= 0x10;
        assert_int_equal(mt_hs_parse(m, sizeof(m)), MT_HS_NONE);
    }
    uint8_t longer[MT_HS_LEN + 1];
    mt_hs_message(longer, MT_HS_HELLO);
    longer[MT_HS_LEN] = 0;
    assert_int_equal(mt_hs_parse(longer, sizeof(longer)), MT_HS_NONE);
}

static void test_server_takes_hello_first_and_switches(void **state)
{
    static struct stream s;
    static const uint8_t pkt[] = {0x45, 1, 2, 3};
    struct mt_wire w;
    s.n = 0;
    /* A server sends nothing of its own first. */
    assert_int_equal(mt_wire_start(&w, false, true), MT_HS_NONE);
    put_msg(&s, MT_HS_HELLO);
    put(&s, pkt, sizeof(pkt));
    put_msg(&s, MT_HS_HELLO); /* not first: a packet */
    put_msg(&s, MT_HS_SWITCH);
    put_x(&s, pkt, sizeof(pkt));
    size_t off = 0;
    struct mt_wire_item it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_HANDSHAKE);
    assert_int_equal(it.reply, MT_HS_SWITCH);
    assert_true(w.xsend);
    assert_false(w.xrecv);
    it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_PACKET);
    assert_int_equal(it.len, sizeof(pkt));
    assert_memory_equal(it.data, pkt, sizeof(pkt));
    it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_PACKET);
    assert_int_equal(mt_hs_parse(it.data, it.len), MT_HS_HELLO);
    it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_HANDSHAKE);
    assert_int_equal(it.reply, MT_HS_NONE);
    assert_true(w.xrecv);
    it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_XPACKET);
    assert_int_equal(it.len, MT_XFRAME_VNET + sizeof(pkt));
    assert_memory_equal(it.data + MT_XFRAME_VNET, pkt, sizeof(pkt));
    assert_int_equal(off, s.n);
    assert_int_equal(next(&w, &s, &off).ev, MT_WIRE_MORE);
}

/* Fault 2: a SWITCH this end never asked for, then an extended frame holding the SWITCH
 * message. The server reads on in ordinary frames: the SWITCH is a packet, and the extended
 * frame's length field (0x0000 0036) begins with an ordinary length 0, which closes. */
static void test_unasked_switch_is_a_packet(void **state)
{
    static struct stream s;
    uint8_t msg[MT_HS_LEN];
    mt_hs_message(msg, MT_HS_SWITCH);
    for (int offloads = 0; offloads <= 1; offloads++) {
        struct mt_wire w;
        s.n = 0;
        mt_wire_start(&w, false, offloads);
        put_msg(&s, MT_HS_SWITCH);
        put_x(&s, msg, sizeof(msg));
        size_t off = 0;
        struct mt_wire_item it = next(&w, &s, &off);
        assert_int_equal(it.ev, MT_WIRE_PACKET);
        assert_false(w.xrecv);
        assert_false(w.xsend);
        it = next(&w, &s, &off);
        assert_int_equal(it.ev, MT_WIRE_BAD);
        assert_int_equal(it.claimed, 0);
    }
}

static void test_server_without_offloads(void **state)
{
    static struct stream s;
    struct mt_wire w;
    s.n = 0;
    mt_wire_start(&w, false, false);
    put_msg(&s, MT_HS_HELLO);
    put_msg(&s, MT_HS_SWITCH);
    size_t off = 0;
    struct mt_wire_item it = next(&w, &s, &off);
    /* The moontun client's HELLO is taken (not written to the device), not answered. */
    assert_int_equal(it.ev, MT_WIRE_HANDSHAKE);
    assert_int_equal(it.reply, MT_HS_NONE);
    assert_false(w.xsend);
    assert_int_equal(next(&w, &s, &off).ev, MT_WIRE_PACKET);
    assert_false(w.xrecv);
}

static void test_client(void **state)
{
    static struct stream s;
    static const uint8_t pkt[] = {0x45, 9};
    struct mt_wire w;
    s.n = 0;
    assert_int_equal(mt_wire_start(&w, true, true), MT_HS_HELLO);
    put_msg(&s, MT_HS_HELLO); /* only the client says HELLO */
    put(&s, pkt, sizeof(pkt));
    put_msg(&s, MT_HS_SWITCH); /* the server's answer, after its user's packets */
    put_x(&s, pkt, sizeof(pkt));
    size_t off = 0;
    assert_int_equal(next(&w, &s, &off).ev, MT_WIRE_PACKET);
    assert_int_equal(next(&w, &s, &off).ev, MT_WIRE_PACKET);
    struct mt_wire_item it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_HANDSHAKE);
    assert_int_equal(it.reply, MT_HS_SWITCH);
    assert_true(w.xsend);
    assert_true(w.xrecv);
    assert_int_equal(next(&w, &s, &off).ev, MT_WIRE_XPACKET);

    /* Without offloads the client says nothing and takes no SWITCH. */
    s.n = 0;
    assert_int_equal(mt_wire_start(&w, true, false), MT_HS_NONE);
    put_msg(&s, MT_HS_SWITCH);
    off = 0;
    assert_int_equal(next(&w, &s, &off).ev, MT_WIRE_PACKET);
    assert_false(w.xrecv);
    assert_false(w.xsend);
}

/* Two ends wired back to back: each one's replies become the other's input. */
static void test_pair_agrees(void **state)
{
    static struct stream c2s, s2c;
    struct mt_wire cli, srv;
    c2s.n = s2c.n = 0;
    enum mt_hs_msg first = mt_wire_start(&cli, true, true);
    assert_int_equal(mt_wire_start(&srv, false, true), MT_HS_NONE);
    put_msg(&c2s, first);
    size_t coff = 0, soff = 0;
    for (int round = 0; round < 4; round++) {
        struct mt_wire_item it;
        while ((it = next(&srv, &c2s, &soff)).ev != MT_WIRE_MORE)
            if (it.ev == MT_WIRE_HANDSHAKE && it.reply)
                put_msg(&s2c, it.reply);
        while ((it = next(&cli, &s2c, &coff)).ev != MT_WIRE_MORE)
            if (it.ev == MT_WIRE_HANDSHAKE && it.reply)
                put_msg(&c2s, it.reply);
    }
    assert_true(cli.xsend && cli.xrecv && srv.xsend && srv.xrecv);
    /* Each end sent exactly one message after which it sends extended frames. */
    assert_int_equal(c2s.n, 2 * (MT_FRAME_HDR + MT_HS_LEN));
    assert_int_equal(s2c.n, MT_FRAME_HDR + MT_HS_LEN);
}

/* Fault 12: the other end's --mtu is larger. Its frame is skipped in step, in any chunking,
 * and the stream goes on; the frame does not count as a HELLO position either. */
static void test_oversized_frame_skipped(void **state)
{
    static struct stream s;
    static uint8_t big[3042];
    static const uint8_t pkt[] = {0x45, 7, 7};
    memset(big, 0xab, sizeof(big));
    s.n = 0;
    put(&s, big, sizeof(big));
    put_msg(&s, MT_HS_HELLO);
    put(&s, pkt, sizeof(pkt));
    const size_t chunks[] = {1, 2, 3, 7, 100, 1500, 5000, 100000};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct mt_wire w;
        mt_wire_start(&w, false, true);
        static uint8_t buf[2 * 65537];
        size_t have = 0, in = 0, oversize = 0, packets = 0;
        while (in < s.n) {
            size_t k = chunks[c] < s.n - in ? chunks[c] : s.n - in;
            memcpy(buf + have, s.b + in, k);
            have += k;
            in += k;
            size_t off = 0;
            for (;;) {
                struct mt_wire_item it;
                off += mt_wire_next(&w, buf + off, have - off, MAX, &it);
                if (it.ev == MT_WIRE_MORE)
                    break;
                assert_int_not_equal(it.ev, MT_WIRE_BAD);
                assert_int_not_equal(it.ev, MT_WIRE_HANDSHAKE);
                if (it.ev == MT_WIRE_OVERSIZE) {
                    assert_int_equal(it.claimed, sizeof(big));
                    assert_int_equal(it.limit, MAX);
                    oversize++;
                }
                if (it.ev == MT_WIRE_PACKET)
                    packets++;
            }
            memmove(buf, buf + off, have - off);
            have -= off;
            /* Nothing of the skipped frame is kept. */
            assert_true(have < MT_FRAME_HDR + MAX);
        }
        assert_int_equal(oversize, 1);
        assert_int_equal(w.oversized, 1);
        assert_int_equal(packets, 2);
        assert_int_equal(have, 0);
        assert_int_equal(w.skip, 0);
        assert_false(w.xsend);
    }
}

static void test_lengths_that_close(void **state)
{
    static struct stream s;
    struct mt_wire w;
    size_t off = 0;
    /* Ordinary: only 0 (every other 16-bit length is a frame, perhaps one to skip). */
    s.n = 2;
    s.b[0] = s.b[1] = 0;
    mt_wire_start(&w, false, false);
    struct mt_wire_item it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_BAD);
    assert_false(it.extended);
    assert_int_equal(off, 0);
    s.b[0] = s.b[1] = 0xff;
    off = 0;
    it = next(&w, &s, &off);
    assert_int_equal(it.ev, MT_WIRE_OVERSIZE);
    assert_int_equal(it.claimed, 65535);
    assert_int_equal(w.skip, 65535);
    /* Extended: at most a virtio-net header, or beyond what a moontun end ever sends. */
    const uint32_t bad[] = {0, MT_XFRAME_VNET, MT_XFRAME_MAX + 1, 3997695};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        mt_wire_start(&w, false, true);
        w.xrecv = true;
        mt_xframe_header(s.b, bad[i]);
        s.n = 4;
        off = 0;
        it = next(&w, &s, &off);
        assert_int_equal(it.ev, MT_WIRE_BAD);
        assert_true(it.extended);
        assert_int_equal(it.claimed, bad[i]);
        assert_int_equal(it.limit, MT_XFRAME_MAX);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_server_takes_hello_first_and_switches),
        cmocka_unit_test(test_unasked_switch_is_a_packet),
        cmocka_unit_test(test_server_without_offloads),
        cmocka_unit_test(test_client),
        cmocka_unit_test(test_pair_agrees),
        cmocka_unit_test(test_oversized_frame_skipped),
        cmocka_unit_test(test_lengths_that_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
