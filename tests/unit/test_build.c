/* Unit tests for lua/lbuild.c, the mt.packet builder: field placement, lengths, defaults, the
 * lies a spec may ask for, and the errors that name the field. Checksums are verified by a
 * naive RFC 1071 routine written here, independently of core/proto.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "binding.h"
#include "testlib.h"

/* The transport checksum over the pseudo-header verifies (0 after folding). */
static int l4_ok(const uint8_t *ip, size_t iphl, size_t l4len, unsigned proto)
{
    uint32_t s;
    if (ip[0] >> 4 == 4)
        s = proto == 1 ? 0 : mt_test_sum(0, ip + 12, 8) + proto + (uint32_t)l4len;
    else
        s = mt_test_sum(0, ip + 8, 32) + proto + (uint32_t)l4len;
    return mt_test_fold(mt_test_sum(s, ip + iphl, l4len)) == 0;
}

static lua_State *L;
static uint8_t out[70000];
static size_t outlen;

static int setup(void **state)
{
    L = luaL_newstate();
    luaL_openlibs(L);
    lua_pushcfunction(L, mt__lbuild_packet);
    lua_setglobal(L, "packet");
    return 0;
}

static int teardown(void **state)
{
    lua_close(L);
    return 0;
}

/* Runs "return packet{...}" and copies the bytes to out. */
static void build(const char *spec)
{
    char src[2048];
    snprintf(src, sizeof src, "return packet%s", spec);
    if (luaL_dostring(L, src) != LUA_OK)
        fail_msg("%s: %s", spec, lua_tostring(L, -1));
    size_t n;
    const char *p = lua_tolstring(L, -1, &n);
    assert_non_null(p);
    assert_true(n <= sizeof out);
    memcpy(out, p, n);
    outlen = n;
    lua_pop(L, 1);
}

/* Runs the spec and returns its error message (the test fails if it builds). */
static const char *build_error(const char *spec)
{
    static char msg[512];
    char src[2048];
    snprintf(src, sizeof src, "return packet%s", spec);
    if (luaL_dostring(L, src) == LUA_OK)
        fail_msg("%s built, expected an error", spec);
    snprintf(msg, sizeof msg, "%s", lua_tostring(L, -1));
    lua_pop(L, 1);
    return msg;
}

static void test_tcp4(void **state)
{
    build("{ ip = { src = '10.0.0.2', dst = '10.0.0.1', ttl = 7, id = 513, df = true }, "
          "tcp = { sport = 40000, dport = 22, flags = 'SA', seq = 1, ack = 0x01020304, mss = "
          "1460 }, payload = 'hello' }");
    assert_int_equal(outlen, 20 + 24 + 5);
    assert_int_equal(out[0], 0x45);
    assert_int_equal(mt_test_get16(out + 2), outlen);
    assert_int_equal(mt_test_get16(out + 4), 513);
    assert_int_equal(out[6], 0x40); /* DF */
    assert_int_equal(out[8], 7);
    assert_int_equal(out[9], 6);
    assert_memory_equal(out + 12, "\x0a\x00\x00\x02\x0a\x00\x00\x01", 8);
    assert_int_equal(mt_test_fold(mt_test_sum(0, out, 20)), 0);
    const uint8_t *t = out + 20;
    assert_int_equal(mt_test_get16(t), 40000);
    assert_int_equal(mt_test_get16(t + 2), 22);
    assert_memory_equal(t + 4, "\0\0\0\1\1\2\3\4", 8);
    assert_int_equal(t[12], 6 << 4); /* 24 bytes: the MSS option */
    assert_int_equal(t[13], 0x12);   /* SYN|ACK */
    assert_memory_equal(t + 20, "\x02\x04\x05\xb4", 4);
    assert_memory_equal(t + 24, "hello", 5);
    assert_true(l4_ok(out, 20, outlen - 20, 6));
}

static void test_defaults_and_flags(void **state)
{
    build("{ ip = {}, tcp = {} }");
    assert_int_equal(outlen, 40);
    assert_int_equal(out[8], 64);                                         /* ttl */
    assert_memory_equal(out + 12, "\x0a\x00\x00\x01\x0a\x00\x00\x02", 8); /* 10.0.0.1 > .2 */
    assert_int_equal(out[20 + 13], 0x02);                                 /* SYN, as Scapy */
    build("{ ip = {}, tcp = { flags = 'FA' } }");
    assert_int_equal(out[33], 0x11);
    build("{ ip = {}, tcp = { flags = '.' } }");
    assert_int_equal(out[33], 0x10);
    build("{ ip = {}, tcp = { flags = 0x29 } }");
    assert_int_equal(out[33], 0x29);
    build("{ ip = {}, payload = 3 }"); /* raw: protocol 253 (experimental), zero bytes */
    assert_int_equal(outlen, 23);
    assert_int_equal(out[9], 253);
    assert_memory_equal(out + 20, "\0\0\0", 3);
}

static void test_udp6(void **state)
{
    build("{ ip = { src = 'fd00::2', dst = 'fd00::1', tos = 0xb8, flow = 0x12345 }, "
          "udp = { sport = 1, dport = 53 }, payload = 'abc' }");
    assert_int_equal(outlen, 40 + 8 + 3);
    assert_int_equal(out[0], 0x6b); /* version 6, traffic class 0xb8 */
    assert_int_equal(out[1], 0x81);
    assert_int_equal(mt_test_get16(out + 2), 0x2345);
    assert_int_equal(mt_test_get16(out + 4), 11); /* payload length */
    assert_int_equal(out[6], 17);
    assert_int_equal(mt_test_get16(out + 40 + 4), 11); /* UDP length */
    assert_true(l4_ok(out, 40, 11, 17));
    assert_int_not_equal(mt_test_get16(out + 46), 0);
}

static void test_icmp(void **state)
{
    build("{ ip = { src = '10.0.0.2', dst = '10.0.0.1' }, icmp = { id = 7, seq = 9 }, "
          "payload = 'ping' }");
    assert_int_equal(out[9], 1);
    assert_int_equal(out[20], 8); /* echo request */
    assert_int_equal(mt_test_get16(out + 24), 7);
    assert_int_equal(mt_test_get16(out + 26), 9);
    assert_true(l4_ok(out, 20, outlen - 20, 1));
    build("{ ip = { src = 'fd00::2', dst = 'fd00::1' }, icmp = { id = 7 } }");
    assert_int_equal(out[6], 58);
    assert_int_equal(out[40], 128); /* ICMPv6 echo request */
    assert_true(l4_ok(out, 40, 8, 58));
    build("{ ip = { src = 'fd00::2', dst = 'fd00::1' }, icmp = { type = 2, mtu = 1280 } }");
    assert_memory_equal(out + 44, "\0\0\x05\x00", 4);
}

static void test_eth_vlan(void **state)
{
    build("{ eth = { src = '02:00:00:00:00:aa', dst = 'ff:ff:ff:ff:ff:ff', vlan = 5 }, "
          "ip = { src = 'fd00::1', dst = 'fd00::2' }, udp = {} }");
    assert_int_equal(outlen, 18 + 40 + 8);
    assert_memory_equal(out, "\xff\xff\xff\xff\xff\xff\x02\x00\x00\x00\x00\xaa", 12);
    assert_int_equal(mt_test_get16(out + 12), 0x8100);
    assert_int_equal(mt_test_get16(out + 14), 5);
    assert_int_equal(mt_test_get16(out + 16), 0x86dd);
    assert_true(l4_ok(out + 18, 40, 8, 17));
    build("{ eth = { type = 0x0806 }, payload = 28 }");
    assert_int_equal(outlen, 14 + 28);
    assert_int_equal(mt_test_get16(out + 12), 0x0806);
}

static void test_lies(void **state)
{
    /* A total length beyond the packet, with a header checksum that still verifies. */
    build("{ ip = { len = 900 }, tcp = {} }");
    assert_int_equal(outlen, 40);
    assert_int_equal(mt_test_get16(out + 2), 900);
    assert_int_equal(mt_test_fold(mt_test_sum(0, out, 20)), 0);
    /* A data offset past the end; explicit checksums; UDP without a checksum. */
    build("{ ip = { csum = 0x1234 }, tcp = { off = 15, csum = 0xbeef } }");
    assert_int_equal(out[32] >> 4, 15);
    assert_int_equal(mt_test_get16(out + 10), 0x1234);
    assert_int_equal(mt_test_get16(out + 36), 0xbeef);
    build("{ ip = {}, udp = { len = 4000, csum = 0 } }");
    assert_int_equal(mt_test_get16(out + 24), 4000);
    assert_int_equal(mt_test_get16(out + 26), 0);
    /* A fragment: offset in bytes, MF. */
    build("{ ip = { frag = 1480, mf = true, proto = 17 }, payload = 8 }");
    assert_int_equal(mt_test_get16(out + 6), 0x2000 | 185);
    assert_int_equal(mt_test_fold(mt_test_sum(0, out, 20)), 0);
}

static void test_errors_name_the_field(void **state)
{
    assert_non_null(strstr(build_error("{ ip = {}, tpc = {} }"), "unknown field packet.tpc"));
    assert_non_null(strstr(build_error("{ ip = {}, tcp = { dprot = 1 } }"), "tcp.dprot"));
    assert_non_null(strstr(build_error("{ ip = { src = '10.0.0.300' } }"), "ip.src"));
    assert_non_null(strstr(build_error("{ ip = { src = '10.0.0.1', dst = 'fd00::1' } }"),
                           "both IPv4 or both IPv6"));
    assert_non_null(strstr(build_error("{ ip = {}, tcp = { flags = 'SX' } }"), "'X'"));
    assert_non_null(strstr(build_error("{ ip = { ttl = 256 } }"), "ip.ttl"));
    assert_non_null(strstr(build_error("{ ip = {}, tcp = {}, udp = {} }"), "at most one"));
    assert_non_null(strstr(build_error("{ tcp = {} }"), "need an ip table"));
    assert_non_null(strstr(build_error("{ ip = {}, payload = 70000 }"), "payload"));
    assert_non_null(strstr(build_error("{ ip = {}, payload = 65520 }"), "over the largest"));
    assert_non_null(strstr(build_error("{ eth = { src = 'nope' } }"), "eth.src"));
    assert_non_null(strstr(build_error("{ ip = { frag = 3 } }"), "multiple of 8"));
    assert_non_null(strstr(build_error("(5)"), "table expected"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcp4, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults_and_flags, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_icmp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eth_vlan, setup, teardown),
        cmocka_unit_test_setup_teardown(test_lies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_errors_name_the_field, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
