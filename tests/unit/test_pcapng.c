/* Unit tests for the pcapng writer (core/pcapng.c): each block byte for byte against the
 * layout of draft-ietf-opsawg-pcapng (section header, interface description, an enhanced
 * packet block with a comment, padding to 32 bits, interface statistics), buffers too small,
 * and the stream check the client makes (mt_pcapng_next). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "pcapng.h"

static void test_shb(void **state)
{
    uint8_t b[64];
    static const uint8_t want[] = {
        0x0a, 0x0d, 0x0d, 0x0a, 40,   0,    0,    0,    /* type, total length 40 */
        0x4d, 0x3c, 0x2b, 0x1a, 1,    0,    0,    0,    /* byte-order magic, version 1.0 */
        0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* section length unknown */
        4,    0,    3,    0,    'm',  't',  '1',  0,    /* shb_userappl "mt1", padded */
        0,    0,    0,    0,                            /* opt_endofopt */
        40,   0,    0,    0,                            /* total length again */
    };
    assert_int_equal(mt_pcapng_shb(b, sizeof b, "mt1"), sizeof want);
    assert_memory_equal(b, want, sizeof want);
    assert_int_equal(mt_pcapng_shb(b, 39, "mt1"), 0); /* one byte short */
    assert_int_equal(mt_pcapng_shb(b, sizeof b, NULL), 28);
}

static void test_idb(void **state)
{
    uint8_t b[64];
    static const uint8_t want[] = {
        1,   0, 0, 0, 40,   0,    0,   0, /* type 1, length 40 */
        101, 0, 0, 0, 0xff, 0xff, 0,   0, /* LINKTYPE_RAW, reserved, snaplen 65535 */
        2,   0, 3, 0, 'm',  't',  '0', 0, /* if_name "mt0" */
        9,   0, 1, 0, 9,    0,    0,   0, /* if_tsresol 9: nanoseconds */
        0,   0, 0, 0, 40,   0,    0,   0,
    };
    assert_int_equal(mt_pcapng_idb(b, sizeof b, MT_PCAPNG_LINK_RAW, 65535, "mt0"), sizeof want);
    assert_memory_equal(b, want, sizeof want);
    assert_int_equal(mt_pcapng_idb(b, 39, MT_PCAPNG_LINK_RAW, 65535, "mt0"), 0);
}

static void test_epb_comment_padding(void **state)
{
    uint8_t b[128];
    const uint8_t pkt[5] = {0x45, 1, 2, 3, 4};
    uint64_t ts = 0x0000000100000002ull; /* high and low halves land apart */
    static const uint8_t want[] = {
        6,    0, 0, 0, 56,  0,   0,   0,                   /* type 6, length 56 */
        0,    0, 0, 0,                                     /* interface 0 */
        1,    0, 0, 0, 2,   0,   0,   0,                   /* timestamp high, low */
        5,    0, 0, 0, 9,   0,   0,   0,                   /* captured 5 of 9 bytes */
        0x45, 1, 2, 3, 4,   0,   0,   0,                   /* data padded to 8 */
        1,    0, 6, 0, 'a', '=', 'b', ' ', 'c', '=', 0, 0, /* opt_comment, 6 bytes */
        0,    0, 0, 0, 56,  0,   0,   0,
    };
    assert_int_equal(mt_pcapng_epb_len(5, 6), sizeof want);
    assert_int_equal(mt_pcapng_epb(b, sizeof b, ts, pkt, 5, 9, "a=b c="), sizeof want);
    assert_memory_equal(b, want, sizeof want);
    /* a multiple of 4 needs no padding; no comment, no options */
    assert_int_equal(mt_pcapng_epb(b, sizeof b, ts, pkt, 4, 4, NULL), 32 + 4);
    assert_int_equal(b[4], 36);
    assert_int_equal(b[32], 36);
    assert_int_equal(mt_pcapng_epb(b, sizeof want - 1, ts, pkt, 5, 9, "a=b c="), 0);
    assert_int_equal(mt_pcapng_epb(b, sizeof b, ts, pkt, 5, 4, NULL), 0); /* caplen > origlen */
}

static void test_isb_and_next(void **state)
{
    uint8_t b[128];
    size_t n = mt_pcapng_isb(b, sizeof b, 7, 12, 3);
    static const uint8_t want[] = {
        5, 0, 0, 0, 52, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, /* interface 0, ts 7 */
        4, 0, 8, 0, 12, 0, 0, 0, 0, 0, 0, 0,                         /* isb_ifrecv 12 */
        5, 0, 8, 0, 3,  0, 0, 0, 0, 0, 0, 0,                         /* isb_ifdrop 3 */
        0, 0, 0, 0, 52, 0, 0, 0,
    };
    assert_int_equal(n, sizeof want);
    assert_memory_equal(b, want, sizeof want);
    assert_int_equal(mt_pcapng_isb_drops(b, n), 3);

    uint32_t type = 0;
    assert_int_equal(mt_pcapng_next(b, n, 1024, &type), (long)n);
    assert_int_equal(type, MT_PCAPNG_ISB);
    assert_int_equal(mt_pcapng_next(b, n - 1, 1024, &type), 0); /* not all here yet */
    assert_int_equal(mt_pcapng_next(b, 7, 1024, &type), 0);
    assert_int_equal(mt_pcapng_next(b, n, 48, &type), -1); /* longer than the reader takes */
    b[n - 4] = 48;                                         /* trailing length differs */
    assert_int_equal(mt_pcapng_next(b, n, 1024, &type), -1);
    b[4] = 10; /* not a multiple of 4 */
    assert_int_equal(mt_pcapng_next(b, n, 1024, &type), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shb),
        cmocka_unit_test(test_idb),
        cmocka_unit_test(test_epb_comment_padding),
        cmocka_unit_test(test_isb_and_next),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
