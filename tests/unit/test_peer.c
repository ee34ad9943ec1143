/* Unit tests for the peer list (core/peer.c): lookup by outer address and by session
 * identity through the hashes, with thousands of peers, after removals, after a peer moved to
 * a new address, and for IPv4, IPv6 and v4-mapped addresses that differ only in the port. */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "moontun/log.h"
#include "tunnel.h"

enum { NPEERS = 3000 };

static struct ev_loop *loop;
static struct mt_config cfg;
static struct mt_tunnel tun;

static int setup(void **state)
{
    mt_log_level = MT_LOG_ERROR;
    loop = ev_default_loop(0);
    memset(&cfg, 0, sizeof(cfg));
    cfg.max_peers = 4096;
    cfg.role = MT_ROLE_SERVER;
    memset(&tun, 0, sizeof(tun));
    tun.loop = loop;
    tun.cfg = &cfg;
    tun.dev_fd = -1;
    tun.ops = &mt__udp_transport; /* its peer size; no socket is opened */
    return mt_route_init(&tun.routes, 64);
}

static int teardown(void **state)
{
    while (tun.peers)
        mt__peer_free(tun.peers, "test over");
    assert_null(tun.peer_by_addr); /* the buckets go with the last peer */
    mt_route_free(&tun.routes);
    return 0;
}

/* Peer i: 192.0.2.(i / 250).x, port 10000 + i; every 3rd is IPv6, every 5th v4-mapped. */
static socklen_t addr_of(uint32_t i, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (i % 3 == 0) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)(10000 + i));
        s6->sin6_addr.s6_addr[0] = 0xfd;
        s6->sin6_addr.s6_addr[14] = (uint8_t)(i >> 8);
        s6->sin6_addr.s6_addr[15] = (uint8_t)i;
        return sizeof(*s6);
    }
    if (i % 5 == 0) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)(10000 + i));
        s6->sin6_addr.s6_addr[10] = s6->sin6_addr.s6_addr[11] = 0xff;
        s6->sin6_addr.s6_addr[12] = 192;
        s6->sin6_addr.s6_addr[13] = 0;
        s6->sin6_addr.s6_addr[14] = 2;
        s6->sin6_addr.s6_addr[15] = (uint8_t)(i % 250);
        return sizeof(*s6);
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)(10000 + i));
    s4->sin_addr.s_addr = htonl(0xC0000200u | (i % 250));
    return sizeof(*s4);
}

static struct mt_tpeer *peers[NPEERS];

static void add_all(void)
{
    for (uint32_t i = 0; i < NPEERS; i++) {
        struct sockaddr_storage ss;
        socklen_t len = addr_of(i, &ss);
        peers[i] = mt__peer_new(&tun, (struct sockaddr *)&ss, len);
        assert_non_null(peers[i]);
    }
    assert_int_equal(tun.npeers, NPEERS);
}

static void test_lookup_thousands(void **state)
{
    add_all();
    for (uint32_t i = 0; i < NPEERS; i++) {
        struct sockaddr_storage ss;
        socklen_t len = addr_of(i, &ss);
        assert_ptr_equal(mt__peer_by_sockaddr(&tun, (struct sockaddr *)&ss, len), peers[i]);
        /* The same address on another port is someone else. */
        ((struct sockaddr_in *)&ss)->sin_port = htons(9);
        assert_null(mt__peer_by_sockaddr(&tun, (struct sockaddr *)&ss, len));
    }
    /* Remove every other peer: the rest are still found, the removed ones are not. */
    for (uint32_t i = 0; i < NPEERS; i += 2) {
        mt__peer_free(peers[i], "test");
        peers[i] = NULL;
    }
    for (uint32_t i = 0; i < NPEERS; i++) {
        struct sockaddr_storage ss;
        socklen_t len = addr_of(i, &ss);
        assert_ptr_equal(mt__peer_by_sockaddr(&tun, (struct sockaddr *)&ss, len), peers[i]);
    }
}

static void test_sid_and_move(void **state)
{
    add_all();
    for (uint32_t i = 0; i < NPEERS; i++)
        mt__peer_set_sid(peers[i], 0x1000000000ULL + i);
    for (uint32_t i = 0; i < NPEERS; i++)
        assert_ptr_equal(mt__peer_by_sid(&tun, 0x1000000000ULL + i), peers[i]);
    assert_null(mt__peer_by_sid(&tun, 0)); /* 0 means none, never a match */
    assert_null(mt__peer_by_sid(&tun, 42));

    /* A new identity replaces the old one. */
    mt__peer_set_sid(peers[7], 0xABCDEF);
    assert_null(mt__peer_by_sid(&tun, 0x1000000000ULL + 7));
    assert_ptr_equal(mt__peer_by_sid(&tun, 0xABCDEF), peers[7]);

    /* A peer that moves is found at its new address only; its renamed name stays. */
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(4242)};
    to.sin_addr.s_addr = htonl(0xC6336401); /* 198.51.100.1 */
    struct sockaddr_storage old;
    socklen_t oldlen = addr_of(11, &old);
    snprintf(peers[11]->pub.name, sizeof(peers[11]->pub.name), "laptop");
    mt__peer_set_addr(peers[11], (struct sockaddr *)&to, sizeof(to));
    assert_null(mt__peer_by_sockaddr(&tun, (struct sockaddr *)&old, oldlen));
    assert_ptr_equal(mt__peer_by_sockaddr(&tun, (struct sockaddr *)&to, sizeof(to)), peers[11]);
    assert_string_equal(peers[11]->pub.addr, "198.51.100.1:4242");
    assert_string_equal(peers[11]->pub.name, "laptop");
    assert_ptr_equal(mt__peer_by_sid(&tun, 0x1000000000ULL + 11), peers[11]);
    mt__peer_set_addr(peers[13], (struct sockaddr *)&old, oldlen);
    assert_string_equal(peers[13]->pub.name, peers[13]->pub.addr); /* default name follows */

    /* Freed peers leave both hashes. */
    mt__peer_free(peers[11], "test");
    assert_null(mt__peer_by_sockaddr(&tun, (struct sockaddr *)&to, sizeof(to)));
    assert_null(mt__peer_by_sid(&tun, 0x1000000000ULL + 11));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lookup_thousands, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sid_and_move, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
