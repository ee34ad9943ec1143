/* Kernel UDP offloads, the pure part (core/udp_gso.c): which queued datagrams form one
 * UDP_SEGMENT send, and how a UDP_GRO read is cut back into its datagrams. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "udp_gso.h"

/* Destinations by index: datagram i goes to dest[i]. */
static bool same_dest(void *ctx, size_t a, size_t b)
{
    const int *dest = ctx;
    return dest[a] == dest[b];
}

static void test_run_equal_then_shorter(void **state)
{
    (void)state;
    size_t lens[] = {1400, 1400, 1400, 700, 1400};
    int dest[] = {0, 0, 0, 0, 0};
    /* The shorter one closes the run; the next starts a new one. */
    assert_int_equal(mt_udp_gso_run(lens, 5, same_dest, dest), 4);
    assert_int_equal(mt_udp_gso_run(lens + 4, 1, same_dest, dest + 4), 1);
}

static void test_run_longer_breaks(void **state)
{
    (void)state;
    size_t lens[] = {700, 1400, 1400};
    int dest[] = {0, 0, 0};
    assert_int_equal(mt_udp_gso_run(lens, 3, same_dest, dest), 1);
    assert_int_equal(mt_udp_gso_run(lens + 1, 2, same_dest, dest + 1), 2);
}

static void test_run_other_destination_breaks(void **state)
{
    (void)state;
    size_t lens[] = {1400, 1400, 1400, 1400};
    int dest[] = {0, 0, 1, 1};
    assert_int_equal(mt_udp_gso_run(lens, 4, same_dest, dest), 2);
    assert_int_equal(mt_udp_gso_run(lens + 2, 2, same_dest, dest + 2), 2);
}

static void test_run_limits(void **state)
{
    (void)state;
    static size_t lens[100];
    static int dest[100];
    for (int i = 0; i < 100; i++)
        lens[i] = 100;
    /* 64 segments at most. */
    assert_int_equal(mt_udp_gso_run(lens, 100, same_dest, dest), MT_UDP_GSO_MAX_SEGS);
    /* Bytes: 1400-byte datagrams stop where the next would pass the IP packet's limit. */
    for (int i = 0; i < 100; i++)
        lens[i] = 1400;
    size_t run = mt_udp_gso_run(lens, 100, same_dest, dest);
    assert_int_equal(run, MT_UDP_GSO_MAX_BYTES / 1400);
    assert_true(run * 1400 <= MT_UDP_GSO_MAX_BYTES);
    assert_int_equal(mt_udp_gso_run(lens, 0, same_dest, dest), 0);
}

static void test_gro_split(void **state)
{
    (void)state;
    size_t off = 0, seg;
    size_t got[8], n = 0;
    /* 3 x 1000 and a 500-byte tail. */
    while ((seg = mt_udp_gro_next(3500, 1000, &off)) != 0 && n < 8)
        got[n++] = seg;
    assert_int_equal(n, 4);
    assert_int_equal(got[0], 1000);
    assert_int_equal(got[2], 1000);
    assert_int_equal(got[3], 500);
    assert_int_equal(off, 3500);
    /* No gso_size: one datagram, whole. */
    off = 0;
    assert_int_equal(mt_udp_gro_next(1234, 0, &off), 1234);
    assert_int_equal(mt_udp_gro_next(1234, 0, &off), 0);
    /* An exact multiple has no tail; an empty read has nothing. */
    off = 0;
    n = 0;
    while (mt_udp_gro_next(2000, 1000, &off) != 0)
        n++;
    assert_int_equal(n, 2);
    off = 0;
    assert_int_equal(mt_udp_gro_next(0, 1000, &off), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_run_equal_then_shorter),
        cmocka_unit_test(test_run_longer_breaks),
        cmocka_unit_test(test_run_other_destination_breaks),
        cmocka_unit_test(test_run_limits),
        cmocka_unit_test(test_gro_split),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
