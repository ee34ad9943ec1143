/* Unit tests for the TCP framing decoders (core/frame.c): whole, split, merged, oversized and
 * zero-length frames, streams fed byte by byte and in random chunks, and the extended frames
 * of two moontun ends (4-byte length, virtio-net header, packet). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moontun/frame.h"

#define MAX 1500

static void test_short_header_needs_more(void **state)
{
    const uint8_t buf[] = {0x00, 0x05};
    const uint8_t *pl = NULL;
    size_t plen = 0;
    assert_int_equal(mt_frame_decode(buf, 0, MAX, &pl, &plen), 0);
    assert_int_equal(mt_frame_decode(buf, 1, MAX, &pl, &plen), 0);
    /* Header whole, payload not yet: still 0, and nothing returned. */
    assert_int_equal(mt_frame_decode(buf, 2, MAX, &pl, &plen), 0);
    assert_null(pl);
}

static void test_whole_frame(void **state)
{
    const uint8_t buf[] = {0x00, 0x03, 'a', 'b', 'c', 0x99};
    const uint8_t *pl = NULL;
    size_t plen = 0;
    assert_int_equal(mt_frame_decode(buf, 4, MAX, &pl, &plen), 0);
    assert_int_equal(mt_frame_decode(buf, 5, MAX, &pl, &plen), 5);
    assert_ptr_equal(pl, buf + 2);
    assert_int_equal(plen, 3);
    /* Trailing bytes of the next frame do not change the answer. */
    assert_int_equal(mt_frame_decode(buf, 6, MAX, &pl, &plen), 5);
}

static void test_zero_length_is_protocol_error(void **state)
{
    const uint8_t buf[] = {0x00, 0x00, 0x01, 0x02};
    const uint8_t *pl;
    size_t plen;
    assert_int_equal(mt_frame_decode(buf, 2, MAX, &pl, &plen), -EPROTO);
    assert_int_equal(mt_frame_decode(buf, 4, MAX, &pl, &plen), -EPROTO);
}

static void test_oversized_rejected_from_header_alone(void **state)
{
    uint8_t buf[2 + MAX + 1];
    const uint8_t *pl;
    size_t plen;
    memset(buf, 0x5a, sizeof(buf));
    mt_frame_header(buf, MAX + 1);
    /* Refused as soon as the header is in, before the liar's bytes are buffered. */
    assert_int_equal(mt_frame_decode(buf, 2, MAX, &pl, &plen), -EMSGSIZE);
    assert_int_equal(mt_frame_decode(buf, sizeof(buf), MAX, &pl, &plen), -EMSGSIZE);
    mt_frame_header(buf, 0xffff);
    assert_int_equal(mt_frame_decode(buf, 2, MAX, &pl, &plen), -EMSGSIZE);
    /* Exactly max is fine. */
    mt_frame_header(buf, MAX);
    assert_int_equal(mt_frame_decode(buf, 2 + MAX, MAX, &pl, &plen), 2 + MAX);
    assert_int_equal(plen, MAX);
    /* The largest frame the 2-byte length can express, with max at its limit. */
    static uint8_t big[2 + 65535];
    mt_frame_header(big, 65535);
    assert_int_equal(mt_frame_decode(big, sizeof(big), 65535, &pl, &plen), sizeof(big));
    assert_int_equal(plen, 65535);
}

static void test_header_roundtrip(void **state)
{
    uint8_t h[2];
    mt_frame_header(h, 0x1234);
    assert_int_equal(h[0], 0x12);
    assert_int_equal(h[1], 0x34);
    mt_frame_header(h, 1);
    assert_int_equal(h[0], 0);
    assert_int_equal(h[1], 1);
}

static void test_merged_frames(void **state)
{
    const uint8_t buf[] = {0, 1, 'x', 0, 2, 'y', 'z', 0, 3, 'a'};
    const uint8_t *pl;
    size_t plen;
    size_t off = 0;
    ssize_t n = mt_frame_decode(buf + off, sizeof(buf) - off, MAX, &pl, &plen);
    assert_int_equal(n, 3);
    assert_memory_equal(pl, "x", 1);
    off += (size_t)n;
    n = mt_frame_decode(buf + off, sizeof(buf) - off, MAX, &pl, &plen);
    assert_int_equal(n, 4);
    assert_memory_equal(pl, "yz", 2);
    off += (size_t)n;
    /* The third is cut short. */
    assert_int_equal(mt_frame_decode(buf + off, sizeof(buf) - off, MAX, &pl, &plen), 0);
}

/* A reader like the TCP transport's: a fixed buffer it appends to and consumes frames from. */
struct reader {
    uint8_t buf[2 * (2 + MAX)];
    size_t have;
    uint8_t out[64 * (2 + MAX)];
    size_t outlen;
    size_t frames;
    int error;
};

static void reader_feed(struct reader *r, const uint8_t *p, size_t n)
{
    assert_true(n <= sizeof(r->buf) - r->have);
    memcpy(r->buf + r->have, p, n);
    r->have += n;
    size_t off = 0;
    for (;;) {
        const uint8_t *pl;
        size_t plen;
        ssize_t k = mt_frame_decode(r->buf + off, r->have - off, MAX, &pl, &plen);
        if (k < 0) {
            r->error = (int)k;
            return;
        }
        if (k == 0)
            break;
        assert_true(plen >= 1 && plen <= MAX);
        assert_ptr_equal(pl, r->buf + off + 2);
        memcpy(r->out + r->outlen, pl, plen);
        r->outlen += plen;
        r->frames++;
        off += (size_t)k;
    }
    memmove(r->buf, r->buf + off, r->have - off);
    r->have -= off;
}

#define NFRAMES 40

static size_t make_stream(uint8_t *stream, uint8_t *payloads, size_t *plen_total)
{
    size_t s = 0, p = 0;
    for (int i = 0; i < NFRAMES; i++) {
        /* Include the edges: 1 byte and exactly max. */
        size_t n = i == 0 ? 1 : i == 1 ? MAX : 1 + (size_t)rand() % MAX;
        mt_frame_header(stream + s, n);
        s += 2;
        for (size_t j = 0; j < n; j++) {
            uint8_t b = (uint8_t)rand();
            stream[s++] = b;
            payloads[p++] = b;
        }
    }
    *plen_total = p;
    return s;
}

static void test_stream_byte_by_byte(void **state)
{
    static uint8_t stream[NFRAMES * (2 + MAX)], payloads[NFRAMES * MAX];
    static struct reader r;
    memset(&r, 0, sizeof(r));
    srand(1234);
    size_t ptotal;
    size_t slen = make_stream(stream, payloads, &ptotal);
    for (size_t i = 0; i < slen; i++)
        reader_feed(&r, stream + i, 1);
    assert_int_equal(r.error, 0);
    assert_int_equal(r.frames, NFRAMES);
    assert_int_equal(r.have, 0);
    assert_int_equal(r.outlen, ptotal);
    assert_memory_equal(r.out, payloads, ptotal);
}

static void test_stream_random_chunks(void **state)
{
    static uint8_t stream[NFRAMES * (2 + MAX)], payloads[NFRAMES * MAX];
    static struct reader r;
    srand(99);
    for (int round = 0; round < 50; round++) {
        memset(&r, 0, sizeof(r));
        size_t ptotal;
        size_t slen = make_stream(stream, payloads, &ptotal);
        size_t i = 0;
        while (i < slen) {
            size_t chunk = 1 + (size_t)rand() % (2 + MAX);
            if (chunk > slen - i)
                chunk = slen - i;
            reader_feed(&r, stream + i, chunk);
            i += chunk;
        }
        assert_int_equal(r.error, 0);
        assert_int_equal(r.frames, NFRAMES);
        assert_int_equal(r.outlen, ptotal);
        assert_memory_equal(r.out, payloads, ptotal);
    }
}

static void test_stream_error_stops_at_bad_frame(void **state)
{
    /* Two good frames, then a zero-length one, then a good one that must not come out. */
    const uint8_t s1[] = {0, 2, 'a', 'b', 0, 1, 'c', 0, 0, 0, 1, 'd'};
    static struct reader r;
    memset(&r, 0, sizeof(r));
    for (size_t i = 0; i < sizeof(s1) && r.error == 0; i++)
        reader_feed(&r, s1 + i, 1);
    assert_int_equal(r.error, -EPROTO);
    assert_int_equal(r.frames, 2);
    assert_memory_equal(r.out, "abc", 3);

    /* Oversized mid-stream. */
    uint8_t s2[] = {0, 1, 'z', 0, 0};
    mt_frame_header(s2 + 3, MAX + 1);
    memset(&r, 0, sizeof(r));
    reader_feed(&r, s2, sizeof(s2));
    assert_int_equal(r.error, -EMSGSIZE);
    assert_int_equal(r.frames, 1);
}

#define XMAX (MT_XFRAME_VNET + 65535 + 256)

static void test_xframe_needs_more(void **state)
{
    uint8_t buf[4 + MT_XFRAME_VNET + 3] = {0};
    const uint8_t *pl = NULL;
    size_t plen = 0;
    mt_xframe_header(buf, MT_XFRAME_VNET + 3);
    for (size_t n = 0; n < sizeof(buf); n++)
        assert_int_equal(mt_xframe_decode(buf, n, XMAX, &pl, &plen), 0);
    assert_null(pl);
    assert_int_equal(mt_xframe_decode(buf, sizeof(buf), XMAX, &pl, &plen), sizeof(buf));
    assert_ptr_equal(pl, buf + 4);
    assert_int_equal(plen, MT_XFRAME_VNET + 3);
}

static void test_xframe_header_roundtrip(void **state)
{
    uint8_t h[4];
    mt_xframe_header(h, 0x01020304);
    assert_int_equal(h[0], 1);
    assert_int_equal(h[1], 2);
    assert_int_equal(h[2], 3);
    assert_int_equal(h[3], 4);
}

static void test_xframe_without_packet_is_protocol_error(void **state)
{
    /* Every extended frame holds a virtio-net header and at least one byte of packet: a
     * shorter length (0 .. 10) is a stream out of step, decided from the header alone. */
    uint8_t buf[4 + MT_XFRAME_VNET] = {0};
    const uint8_t *pl;
    size_t plen;
    for (size_t n = 0; n <= MT_XFRAME_VNET; n++) {
        mt_xframe_header(buf, n);
        assert_int_equal(mt_xframe_decode(buf, 4, XMAX, &pl, &plen), -EPROTO);
        assert_int_equal(mt_xframe_decode(buf, sizeof(buf), XMAX, &pl, &plen), -EPROTO);
    }
    mt_xframe_header(buf, MT_XFRAME_VNET + 1);
    assert_int_equal(mt_xframe_decode(buf, sizeof(buf), XMAX, &pl, &plen), 0);
}

static void test_xframe_oversized_from_header_alone(void **state)
{
    static uint8_t big[4 + XMAX];
    const uint8_t *pl;
    size_t plen;
    /* What the old handshake fault produced: an ordinary stream read as extended frames. */
    const uint32_t liars[] = {XMAX + 1, 3997695, 0x7fffffff, 0xffffffff};
    for (size_t i = 0; i < sizeof(liars) / sizeof(liars[0]); i++) {
        mt_xframe_header(big, liars[i]);
        assert_int_equal(mt_xframe_decode(big, 4, XMAX, &pl, &plen), -EMSGSIZE);
    }
    /* Exactly the largest: a 64 KiB packet with full tailroom. */
    mt_xframe_header(big, XMAX);
    assert_int_equal(mt_xframe_decode(big, 4, XMAX, &pl, &plen), 0);
    assert_int_equal(mt_xframe_decode(big, sizeof(big), XMAX, &pl, &plen), sizeof(big));
    assert_int_equal(plen, XMAX);
}

static void test_xframe_merged(void **state)
{
    uint8_t buf[2 * (4 + MT_XFRAME_VNET + 2)] = {0};
    const uint8_t *pl;
    size_t plen;
    size_t one = 4 + MT_XFRAME_VNET + 2;
    mt_xframe_header(buf, MT_XFRAME_VNET + 2);
    mt_xframe_header(buf + one, MT_XFRAME_VNET + 2);
    buf[one + 4 + MT_XFRAME_VNET] = 'q';
    assert_int_equal(mt_xframe_decode(buf, sizeof(buf), XMAX, &pl, &plen), one);
    assert_int_equal(mt_xframe_decode(buf + one, sizeof(buf) - one, XMAX, &pl, &plen), one);
    assert_int_equal(pl[MT_XFRAME_VNET], 'q');
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_short_header_needs_more),
        cmocka_unit_test(test_whole_frame),
        cmocka_unit_test(test_zero_length_is_protocol_error),
        cmocka_unit_test(test_oversized_rejected_from_header_alone),
        cmocka_unit_test(test_header_roundtrip),
        cmocka_unit_test(test_merged_frames),
        cmocka_unit_test(test_stream_byte_by_byte),
        cmocka_unit_test(test_stream_random_chunks),
        cmocka_unit_test(test_stream_error_stops_at_bad_frame),
        cmocka_unit_test(test_xframe_needs_more),
        cmocka_unit_test(test_xframe_header_roundtrip),
        cmocka_unit_test(test_xframe_without_packet_is_protocol_error),
        cmocka_unit_test(test_xframe_oversized_from_header_alone),
        cmocka_unit_test(test_xframe_merged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
