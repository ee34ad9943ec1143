/* Unit tests for routing addresses and the learning table (core/route.c): extraction from
 * packets, multicast, formatting, learn/lookup/move/forget, that the table holds its whole
 * capacity before evicting, eviction when full, moving and touching a peer's routes, and that
 * deletions never hide other entries (checked against a simple model). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moontun/route.h"

static struct mt_addr ip4(uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    struct mt_addr x = {.kind = MT_ADDR_IP4, .b = {a, b, c, d}};
    return x;
}

static struct mt_addr ip4n(uint32_t n)
{
    return ip4(10, (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n);
}

static void test_addr_from_packet(void **state)
{
    /* IPv4 UDP 10.0.0.1 -> 10.0.0.2 */
    uint8_t v4[28] = {0x45, 0, 0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2};
    struct mt_addr a;
    char s[64];
    assert_int_equal(mt_addr_from_packet(v4, sizeof(v4), MT_LINK_IP, false, &a), 0);
    assert_int_equal(a.kind, MT_ADDR_IP4);
    assert_string_equal(mt_addr_str(&a, s, sizeof(s)), "10.0.0.1");
    for (size_t i = 4; i < 16; i++)
        assert_int_equal(a.b[i], 0);
    assert_int_equal(mt_addr_from_packet(v4, sizeof(v4), MT_LINK_IP, true, &a), 0);
    assert_string_equal(mt_addr_str(&a, s, sizeof(s)), "10.0.0.2");
    /* Cut inside the addresses: none. */
    assert_int_equal(mt_addr_from_packet(v4, 19, MT_LINK_IP, true, &a), -EINVAL);
    assert_int_equal(a.kind, MT_ADDR_NONE);

    uint8_t v6[40] = {0x60, 0, 0, 0, 0, 0, 59, 64, 0xfd, 0, [23] = 1, [24] = 0xfd, [39] = 2};
    assert_int_equal(mt_addr_from_packet(v6, sizeof(v6), MT_LINK_IP, false, &a), 0);
    assert_int_equal(a.kind, MT_ADDR_IP6);
    assert_string_equal(mt_addr_str(&a, s, sizeof(s)), "fd00::1");
    assert_int_equal(mt_addr_from_packet(v6, sizeof(v6), MT_LINK_IP, true, &a), 0);
    assert_string_equal(mt_addr_str(&a, s, sizeof(s)), "fd00::2");
    assert_int_equal(mt_addr_from_packet(v6, 39, MT_LINK_IP, true, &a), -EINVAL);

    uint8_t eth[14] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02,
                       0x11, 0x22, 0x33, 0x44, 0x55, 0x08, 0x06};
    assert_int_equal(mt_addr_from_packet(eth, sizeof(eth), MT_LINK_ETH, false, &a), 0);
    assert_int_equal(a.kind, MT_ADDR_MAC);
    assert_string_equal(mt_addr_str(&a, s, sizeof(s)), "02:11:22:33:44:55");
    assert_false(mt_addr_is_multicast(&a));
    assert_int_equal(mt_addr_from_packet(eth, sizeof(eth), MT_LINK_ETH, true, &a), 0);
    assert_string_equal(mt_addr_str(&a, s, sizeof(s)), "ff:ff:ff:ff:ff:ff");
    assert_true(mt_addr_is_multicast(&a));
    assert_int_equal(mt_addr_from_packet(eth, 13, MT_LINK_ETH, true, &a), -EINVAL);

    uint8_t junk[30] = {0x55};
    assert_int_equal(mt_addr_from_packet(junk, sizeof(junk), MT_LINK_IP, true, &a), -EINVAL);
}

static void test_multicast(void **state)
{
    struct mt_addr a = ip4(224, 0, 0, 1);
    assert_true(mt_addr_is_multicast(&a));
    a = ip4(239, 255, 255, 250);
    assert_true(mt_addr_is_multicast(&a));
    a = ip4(255, 255, 255, 255);
    assert_true(mt_addr_is_multicast(&a));
    a = ip4(223, 255, 255, 255);
    assert_false(mt_addr_is_multicast(&a));
    a = ip4(240, 0, 0, 1);
    assert_false(mt_addr_is_multicast(&a));
    a = ip4(10, 0, 0, 255); /* a subnet broadcast is not knowable without the prefix */
    assert_false(mt_addr_is_multicast(&a));
    struct mt_addr m = {.kind = MT_ADDR_IP6, .b = {0xff, 0x02, [15] = 1}};
    assert_true(mt_addr_is_multicast(&m));
    m.b[0] = 0xfe;
    assert_false(mt_addr_is_multicast(&m));
    struct mt_addr mac = {.kind = MT_ADDR_MAC, .b = {0x01, 0x00, 0x5e, 0, 0, 1}};
    assert_true(mt_addr_is_multicast(&mac));
    mac.b[0] = 0x02;
    assert_false(mt_addr_is_multicast(&mac));
    struct mt_addr none = {0};
    assert_false(mt_addr_is_multicast(&none));
}

static void test_addr_str(void **state)
{
    char s[64];
    struct mt_addr a = {.kind = MT_ADDR_IP6,
                        .b = {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 1}};
    /* RFC 5952: the longest zero run is compressed, lower case. */
    assert_string_equal(mt_addr_str(&a, s, sizeof(s)), "2001:db8::1:0:0:1");
    struct mt_addr n = {0};
    assert_string_equal(mt_addr_str(&n, s, sizeof(s)), "none");
    struct mt_addr v4 = ip4(192, 168, 100, 200);
    char small[8];
    assert_ptr_equal(mt_addr_str(&v4, small, sizeof(small)), small);
    assert_string_equal(small, "192.168");
}

static void test_init_sizes(void **state)
{
    struct mt_route_table t;
    size_t caps[] = {0, 1, 8, 9, 100, 1000, 4096};
    for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
        assert_int_equal(mt_route_init(&t, caps[i]), 0);
        assert_true(t.nslots >= 2 * caps[i]);
        assert_true(t.capacity >= caps[i]);
        assert_int_equal(t.capacity, t.nslots / 2);
        assert_int_equal(t.nslots & (t.nslots - 1), 0);
        assert_int_equal(t.used, 0);
        mt_route_free(&t);
    }
    assert_int_equal(mt_route_init(&t, SIZE_MAX / 2), -ENOMEM);
}

static int peer_a, peer_b, peer_c;

static void test_learn_lookup_move(void **state)
{
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 64), 0);
    struct mt_addr x = ip4(10, 0, 0, 1), y = ip4(10, 0, 0, 2);
    assert_null(mt_route_lookup(&t, &x));
    assert_int_equal(mt_route_learn(&t, &x, &peer_a, 1.0), 1);
    assert_int_equal(mt_route_learn(&t, &x, &peer_a, 2.0), 0); /* refresh */
    assert_ptr_equal(mt_route_lookup(&t, &x), &peer_a);
    assert_null(mt_route_lookup(&t, &y));
    assert_int_equal(mt_route_learn(&t, &x, &peer_b, 3.0), 1); /* moved */
    assert_ptr_equal(mt_route_lookup(&t, &x), &peer_b);
    assert_int_equal(t.used, 1);

    /* The same bytes as another kind are another key. */
    struct mt_addr mac = {.kind = MT_ADDR_MAC, .b = {10, 0, 0, 1}};
    assert_null(mt_route_lookup(&t, &mac));
    assert_int_equal(mt_route_learn(&t, &mac, &peer_c, 3.0), 1);
    assert_ptr_equal(mt_route_lookup(&t, &mac), &peer_c);
    assert_ptr_equal(mt_route_lookup(&t, &x), &peer_b);

    /* Forged sources and missing owners are refused. */
    struct mt_addr mc = ip4(224, 0, 0, 5), bc = ip4(255, 255, 255, 255), none = {0};
    assert_int_equal(mt_route_learn(&t, &mc, &peer_a, 4.0), -EINVAL);
    assert_int_equal(mt_route_learn(&t, &bc, &peer_a, 4.0), -EINVAL);
    assert_int_equal(mt_route_learn(&t, &none, &peer_a, 4.0), -EINVAL);
    assert_int_equal(mt_route_learn(&t, &y, NULL, 4.0), -EINVAL);
    assert_null(mt_route_lookup(&t, &mc));
    assert_null(mt_route_lookup(&t, &none));
    assert_int_equal(t.used, 2);
    mt_route_free(&t);
}

static void test_forget(void **state)
{
    /* Roomy: 900 of 4096, nothing is evicted. */
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 4096), 0);
    void *owners[3] = {&peer_a, &peer_b, &peer_c};
    for (uint32_t i = 0; i < 900; i++) {
        struct mt_addr a = ip4n(i);
        assert_int_equal(mt_route_learn(&t, &a, owners[i % 3], i), 1);
    }
    assert_int_equal(t.used, 900);
    mt_route_forget(&t, &peer_b);
    assert_int_equal(t.used, 600);
    for (uint32_t i = 0; i < 900; i++) {
        struct mt_addr a = ip4n(i);
        if (i % 3 == 1)
            assert_null(mt_route_lookup(&t, &a));
        else
            assert_ptr_equal(mt_route_lookup(&t, &a), owners[i % 3]);
    }
    mt_route_forget(&t, &peer_b); /* nothing left: harmless */
    mt_route_forget(&t, NULL);
    assert_int_equal(t.used, 600);
    mt_route_forget(&t, &peer_a);
    mt_route_forget(&t, &peer_c);
    assert_int_equal(t.used, 0);
    for (size_t i = 0; i < t.nslots; i++)
        assert_null(t.slots[i].owner);
    mt_route_free(&t);
}

static void test_eviction_when_full(void **state)
{
    /* A table small enough that the eviction window covers it all: once it holds its
     * capacity, the globally stalest entry is the one that goes. */
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 4), 0);
    assert_int_equal(t.nslots, 16);
    assert_int_equal(t.capacity, 8);
    for (uint32_t i = 0; i < 8; i++) {
        struct mt_addr a = ip4n(i);
        /* Times deliberately out of order: entry 5 is the stalest. */
        double seen = i == 5 ? 0.5 : 10.0 + i;
        assert_int_equal(mt_route_learn(&t, &a, &peer_a, seen), 1);
    }
    assert_int_equal(t.used, 8);
    struct mt_addr fresh = ip4n(100);
    assert_int_equal(mt_route_learn(&t, &fresh, &peer_b, 50.0), 1);
    assert_int_equal(t.used, 8);
    assert_ptr_equal(mt_route_lookup(&t, &fresh), &peer_b);
    struct mt_addr gone = ip4n(5);
    assert_null(mt_route_lookup(&t, &gone));
    for (uint32_t i = 0; i < 8; i++) {
        struct mt_addr a = ip4n(i);
        if (i != 5)
            assert_ptr_equal(mt_route_lookup(&t, &a), &peer_a);
    }
    /* A refresh makes an entry young again: now 0 (seen 10) is the stalest. */
    struct mt_addr zero = ip4n(0), one = ip4n(1);
    assert_int_equal(mt_route_learn(&t, &one, &peer_a, 60.0), 0);
    struct mt_addr another = ip4n(101);
    assert_int_equal(mt_route_learn(&t, &another, &peer_c, 61.0), 1);
    assert_null(mt_route_lookup(&t, &zero));
    assert_ptr_equal(mt_route_lookup(&t, &one), &peer_a);
    assert_ptr_equal(mt_route_lookup(&t, &another), &peer_c);

    /* After a forget on a full table, the rest are still found. */
    mt_route_forget(&t, &peer_b);
    assert_int_equal(t.used, 7);
    assert_null(mt_route_lookup(&t, &fresh));
    assert_ptr_equal(mt_route_lookup(&t, &another), &peer_c);
    for (uint32_t i = 1; i < 8; i++) {
        struct mt_addr a = ip4n(i);
        if (i != 5)
            assert_ptr_equal(mt_route_lookup(&t, &a), &peer_a);
    }
    mt_route_free(&t);
}

/* The table holds as many addresses as it claims: 4096 addresses in a 4096 table, none
 * evicted (a 16-slot probe window used to evict from about a third full), in every kind and
 * in adversarial-looking patterns (consecutive addresses, one /16). */
static void test_holds_capacity(void **state)
{
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 4096), 0);
    assert_int_equal(t.capacity, 4096);
    for (int round = 0; round < 3; round++) {
        for (uint32_t i = 0; i < 4096; i++) {
            struct mt_addr a = ip4n(i);
            if (round == 1) {
                a.kind = MT_ADDR_IP6;
                a.b[0] = 0xfd;
            } else if (round == 2) {
                a.kind = MT_ADDR_MAC;
                a.b[0] = 0x02;
            }
            assert_int_equal(mt_route_learn(&t, &a, &peer_a, i), 1);
        }
        assert_int_equal(t.used, 4096);
        for (uint32_t i = 0; i < 4096; i++) {
            struct mt_addr a = ip4n(i);
            if (round == 1) {
                a.kind = MT_ADDR_IP6;
                a.b[0] = 0xfd;
            } else if (round == 2) {
                a.kind = MT_ADDR_MAC;
                a.b[0] = 0x02;
            }
            assert_ptr_equal(mt_route_lookup(&t, &a), &peer_a);
        }
        /* One more evicts exactly one, the stalest nearby, and the newcomer is found. */
        struct mt_addr extra = ip4(192, 168, 7, (uint8_t)round);
        assert_int_equal(mt_route_learn(&t, &extra, &peer_b, 1e9), 1);
        assert_int_equal(t.used, 4096);
        assert_ptr_equal(mt_route_lookup(&t, &extra), &peer_b);
        mt_route_forget(&t, &peer_a);
        mt_route_forget(&t, &peer_b);
        assert_int_equal(t.used, 0);
    }
    mt_route_free(&t);
}

/* A peer that moved to a new outer address takes its routes along; a keepalive makes its
 * routes young, so a full table evicts someone else's. */
static void test_move_and_touch(void **state)
{
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 4), 0); /* capacity 8, one eviction window */
    for (uint32_t i = 0; i < 4; i++) {
        struct mt_addr a = ip4n(i), b = ip4n(100 + i);
        assert_int_equal(mt_route_learn(&t, &a, &peer_a, 1.0 + i), 1);
        assert_int_equal(mt_route_learn(&t, &b, &peer_b, 10.0 + i), 1);
    }
    mt_route_move(&t, &peer_a, &peer_c);
    for (uint32_t i = 0; i < 4; i++) {
        struct mt_addr a = ip4n(i), b = ip4n(100 + i);
        assert_ptr_equal(mt_route_lookup(&t, &a), &peer_c);
        assert_ptr_equal(mt_route_lookup(&t, &b), &peer_b);
    }
    mt_route_move(&t, NULL, &peer_a); /* harmless */
    mt_route_move(&t, &peer_a, NULL);
    /* peer_c's routes are the stalest (1-4) until a keepalive touches them at 20. */
    mt_route_touch(&t, &peer_c, 20.0);
    struct mt_addr n1 = ip4n(200);
    assert_int_equal(mt_route_learn(&t, &n1, &peer_a, 21.0), 1);
    struct mt_addr b0 = ip4n(100);
    assert_null(mt_route_lookup(&t, &b0)); /* peer_b's stalest went, not peer_c's */
    for (uint32_t i = 0; i < 4; i++) {
        struct mt_addr a = ip4n(i);
        assert_ptr_equal(mt_route_lookup(&t, &a), &peer_c);
    }
    mt_route_free(&t);
}

static void test_spray_stays_bounded(void **state)
{
    /* A peer spraying spoofed sources: the table never grows and the newest is found. */
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 256), 0);
    size_t nslots = t.nslots;
    for (uint32_t i = 0; i < 100000; i++) {
        struct mt_addr a = ip4n(i);
        assert_int_equal(mt_route_learn(&t, &a, &peer_a, i), 1);
        assert_ptr_equal(mt_route_lookup(&t, &a), &peer_a);
        assert_true(t.used <= t.capacity);
    }
    assert_int_equal(t.nslots, nslots);
    mt_route_forget(&t, &peer_a);
    assert_int_equal(t.used, 0);
    mt_route_free(&t);
}

/* Random learn/move/forget against a model, at a load where clusters are long and wrap
 * around the end of the table: backward-shift deletion must never hide an entry. With at
 * most 8 live keys (the capacity), nothing is ever evicted, so the table must agree with the
 * model exactly. */
static void test_model_random_ops(void **state)
{
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 8), 0);
    assert_int_equal(t.nslots, 16);
    assert_int_equal(t.capacity, 8);
    enum { KEYS = 40, OWNERS = 4 };
    int owner_tag[OWNERS];
    void *model[KEYS] = {0};
    size_t live = 0;
    srand(31337);
    for (int iter = 0; iter < 200000; iter++) {
        int op = rand() % 10;
        uint32_t k = (uint32_t)rand() % KEYS;
        struct mt_addr a = ip4n(k * 7919);
        if (op < 6) {
            void *o = &owner_tag[rand() % OWNERS];
            if (!model[k] && live == 8)
                continue; /* would evict; the model does not */
            int r = mt_route_learn(&t, &a, o, iter);
            assert_int_equal(r, model[k] != o ? 1 : 0);
            if (!model[k])
                live++;
            model[k] = o;
        } else if (op < 7) {
            void *o = &owner_tag[rand() % OWNERS];
            mt_route_forget(&t, o);
            for (int j = 0; j < KEYS; j++) {
                if (model[j] == o) {
                    model[j] = NULL;
                    live--;
                }
            }
        } else {
            assert_ptr_equal(mt_route_lookup(&t, &a), model[k]);
        }
        assert_int_equal(t.used, live);
    }
    for (uint32_t k = 0; k < KEYS; k++) {
        struct mt_addr a = ip4n(k * 7919);
        assert_ptr_equal(mt_route_lookup(&t, &a), model[k]);
    }
    mt_route_free(&t);
}

/* The same at a realistic size with IPv6 and MAC keys mixed in. */
static void test_model_mixed_kinds(void **state)
{
    struct mt_route_table t;
    assert_int_equal(mt_route_init(&t, 1024), 0);
    enum { KEYS = 600 };
    static struct mt_addr keys[KEYS];
    void *model[KEYS] = {0};
    int tags[8];
    srand(5);
    for (int i = 0; i < KEYS; i++) {
        keys[i].kind = i % 3 == 0 ? MT_ADDR_IP4 : i % 3 == 1 ? MT_ADDR_IP6 : MT_ADDR_MAC;
        size_t n = keys[i].kind == MT_ADDR_IP4 ? 4 : keys[i].kind == MT_ADDR_IP6 ? 16 : 6;
        for (size_t j = 0; j < n; j++)
            keys[i].b[j] = (uint8_t)rand();
        keys[i].b[0] = 0x02 | 0x20; /* unicast in every kind */
        keys[i].b[1] = (uint8_t)i;
        keys[i].b[2] = (uint8_t)(i >> 8);
    }
    for (int iter = 0; iter < 100000; iter++) {
        int k = rand() % KEYS;
        int op = rand() % 20;
        if (op < 12) {
            void *o = &tags[rand() % 8];
            mt_route_learn(&t, &keys[k], o, iter);
            model[k] = o;
        } else if (op == 12) {
            void *o = &tags[rand() % 8];
            mt_route_forget(&t, o);
            for (int j = 0; j < KEYS; j++)
                if (model[j] == o)
                    model[j] = NULL;
        } else {
            /* 600 keys in a table of 1024: nothing is ever evicted. */
            assert_ptr_equal(mt_route_lookup(&t, &keys[k]), model[k]);
        }
    }
    size_t found = 0, expected = 0;
    for (int k = 0; k < KEYS; k++) {
        expected += model[k] != NULL;
        found += mt_route_lookup(&t, &keys[k]) != NULL;
    }
    assert_int_equal(found, t.used);
    assert_int_equal(found, expected);
    mt_route_free(&t);
}

/* Script routes: longest prefix first, replace, remove, by name or id, a bad length refused. */
static void test_sroutes(void **state)
{
    (void)state;
    static struct mt_sroutes t;
    struct mt_addr wide = ip4(10, 77, 0, 0), narrow = ip4(10, 77, 1, 99), other = ip4(10, 78, 1, 1);
    assert_int_equal(mt_sroute_set(&t, MT_ADDR_IP4, wide.b, 16, 0, "wide"), 0);
    assert_int_equal(mt_sroute_set(&t, MT_ADDR_IP4, narrow.b, 24, 7, NULL), 0); /* host bits */
    assert_int_equal(t.n, 2);
    const struct mt_sroute *r = mt_sroute_lookup(&t, &narrow);
    assert_non_null(r);
    assert_int_equal(r->peer_id, 7);
    struct mt_addr in_wide = ip4(10, 77, 200, 1);
    assert_string_equal(mt_sroute_lookup(&t, &in_wide)->name, "wide");
    assert_null(mt_sroute_lookup(&t, &other));
    assert_int_equal(mt_sroute_set(&t, MT_ADDR_IP4, wide.b, 16, 0, "again"), 0); /* replaces */
    assert_int_equal(t.n, 2);
    assert_string_equal(mt_sroute_lookup(&t, &in_wide)->name, "again");
    struct mt_addr net = ip4(10, 77, 1, 0);
    assert_int_equal(mt_sroute_del(&t, MT_ADDR_IP4, net.b, 24), 0);
    assert_int_equal(mt_sroute_del(&t, MT_ADDR_IP4, net.b, 24), -ENOENT);
    assert_string_equal(mt_sroute_lookup(&t, &narrow)->name, "again");
    assert_int_equal(mt_sroute_set(&t, MT_ADDR_IP4, net.b, 33, 0, "x"), -EINVAL);
    for (int i = t.n; i < MT_SROUTE_MAX; i++) {
        struct mt_addr a = ip4(192, 168, (uint8_t)i, 0);
        assert_int_equal(mt_sroute_set(&t, MT_ADDR_IP4, a.b, 24, 1, NULL), 0);
    }
    assert_int_equal(mt_sroute_set(&t, MT_ADDR_IP4, other.b, 32, 1, NULL), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_addr_from_packet),
        cmocka_unit_test(test_multicast),
        cmocka_unit_test(test_addr_str),
        cmocka_unit_test(test_init_sizes),
        cmocka_unit_test(test_learn_lookup_move),
        cmocka_unit_test(test_forget),
        cmocka_unit_test(test_eviction_when_full),
        cmocka_unit_test(test_spray_stays_bounded),
        cmocka_unit_test(test_model_random_ops),
        cmocka_unit_test(test_model_mixed_kinds),
        cmocka_unit_test(test_holds_capacity),
        cmocka_unit_test(test_move_and_touch),
        cmocka_unit_test(test_sroutes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
