/* Unit tests for lua/lpacket.c: the packet userdata and its header views, driven by small Lua
 * snippets against crafted packets. Checksums after header writes are verified by the naive
 * RFC 1071 routine below, written independently of core/proto.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "binding.h"
#include "moontun/config.h"
#include "moontun/packet.h"
#include "moontun/script.h"
#include "moontun/stats.h"
#include "moontun/vnet.h"
#include "testlib.h"

/* The independent checksum (byte by byte, no tricks) and byte helpers are testlib.h's. */

static size_t csum_field(uint8_t proto)
{
    return proto == 6 ? 16 : proto == 17 ? 6 : 2;
}

/* ip: the IP header; l4off: the transport header's offset from it. */
static size_t ip_total(const uint8_t *ip)
{
    return (ip[0] >> 4) == 4 ? mt_test_get16(ip + 2) : 40u + mt_test_get16(ip + 4);
}

static uint32_t pseudo(const uint8_t *ip, size_t l4len, uint8_t proto)
{
    if ((ip[0] >> 4) == 4)
        return proto == 1 ? 0 : mt_test_sum(0, ip + 12, 8) + proto + (uint32_t)l4len;
    return mt_test_sum(0, ip + 8, 32) + (uint32_t)(l4len >> 16) + (uint32_t)(l4len & 0xffff) +
           proto;
}

static void naive_fill(uint8_t *ip, size_t l4off, uint8_t proto)
{
    if ((ip[0] >> 4) == 4) {
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
        mt_test_put16(ip + 10, 0);
        mt_test_put16(ip + 10, mt_test_fold(mt_test_sum(0, ip, ihl)));
    }
    size_t l4len = ip_total(ip) - l4off;
    uint8_t *t = ip + l4off;
    mt_test_put16(t + csum_field(proto), 0);
    uint16_t c = mt_test_fold(mt_test_sum(pseudo(ip, l4len, proto), t, l4len));
    if (proto == 17 && c == 0)
        c = 0xffff;
    mt_test_put16(t + csum_field(proto), c);
}

/* Every checksum the packet has verifies (a sum over data and checksum folds to zero). */
static void naive_check(const uint8_t *ip, size_t l4off, uint8_t proto)
{
    if ((ip[0] >> 4) == 4) {
        size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
        assert_int_equal(mt_test_fold(mt_test_sum(0, ip, ihl)), 0);
    }
    size_t l4len = ip_total(ip) - l4off;
    const uint8_t *t = ip + l4off;
    if (proto == 17 && mt_test_get16(t + 6) == 0)
        return; /* UDP without a checksum */
    assert_int_equal(mt_test_fold(mt_test_sum(pseudo(ip, l4len, proto), t, l4len)), 0);
}

/* --- crafted packets ------------------------------------------------------------------------- */

static const uint8_t TCP_SEG[24] = {
    0x30, 0x39, 0x00, 0x50,                     /* sport 12345, dport 80 */
    0x01, 0x02, 0x03, 0x04,                     /* seq */
    0xa0, 0xb0, 0xc0, 0xd0,                     /* ack */
    0x50, 0x18, 0x72, 0x10,                     /* doff 5, PSH|ACK, window 29200 */
    0x00, 0x00, 0x00, 0x00, 'a', 'b', 'c', 'd', /* csum, urg, payload */
};
static const uint8_t UDP_SEG[13] = {0x14, 0xe9, 0x00, 0x35, 0x00, 0x0d, 0x00,
                                    0x00, 'h',  'e',  'l',  'l',  'o'}; /* 5353 -> 53, len 13 */
static const uint8_t ICMP_ECHO[16] = {8, 0, 0, 0, 0x42, 0x42, 0x00, 0x07,
                                      1, 2, 3, 4, 5,    6,    7,    8}; /* id 0x4242 seq 7 */

/* IPv4 (10.0.0.1 > 10.0.0.2, tos 0x10, id 0x1234, DF, ttl 64) carrying l4. */
static size_t mk_ip4(uint8_t *b, uint8_t proto, const uint8_t *l4, size_t l4len)
{
    static const uint8_t hdr[20] = {0x45, 0x10, 0,  0, 0x12, 0x34, 0x40, 0, 64, 0,
                                    0,    0,    10, 0, 0,    1,    10,   0, 0,  2};
    memcpy(b, hdr, 20);
    b[9] = proto;
    mt_test_put16(b + 2, (uint16_t)(20 + l4len));
    memcpy(b + 20, l4, l4len);
    naive_fill(b, 20, proto);
    return 20 + l4len;
}

/* IPv6 2001:db8::1 > 2001:db8::2, traffic class 0xb8, flow 0x12345, hop limit 64, with a
 * hop-by-hop and a destination-options header (8 bytes each) when ext, then l4. */
static size_t mk_ip6(uint8_t *b, uint8_t proto, const uint8_t *l4, size_t l4len, bool ext)
{
    static const uint8_t hdr[40] = {0x6b, 0x81, 0x23, 0x45, 0,    0,    0,    64,   0x20, 0x01,
                                    0x0d, 0xb8, 0,    0,    0,    0,    0,    0,    0,    0,
                                    0,    0,    0,    1,    0x20, 0x01, 0x0d, 0xb8, 0,    0,
                                    0,    0,    0,    0,    0,    0,    0,    0,    0,    2};
    memcpy(b, hdr, 40);
    size_t off = 40;
    if (ext) {
        static const uint8_t opts[16] = {60, 0, 1, 4, 0, 0, 0, 0,  /* hop-by-hop, PadN */
                                         0,  0, 1, 4, 0, 0, 0, 0}; /* dest opts, PadN */
        memcpy(b + off, opts, 16);
        b[6] = 0; /* next: hop-by-hop */
        b[off + 8] = proto;
        off += 16;
    } else {
        b[6] = proto;
    }
    memcpy(b + off, l4, l4len);
    mt_test_put16(b + 4, (uint16_t)(off - 40 + l4len));
    naive_fill(b, off, proto);
    return off + l4len;
}

static const uint8_t ETH_HDR[14] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0, 0, 0, 0, 0x01, 0x08, 0x00};

/* --- fixture --------------------------------------------------------------------------------- */

struct fx {
    lua_State *L;
    int ref; /* the packet userdata */
    struct mt_packet pkt;
    uint8_t buf[MT_PKT_BUFSIZE];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    f->L = luaL_newstate();
    luaL_openlibs(f->L);
    mt__lpacket_open(f->L);
    mt__lpacket_new(f->L);
    f->ref = luaL_ref(f->L, LUA_REGISTRYINDEX);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    lua_close(f->L);
    free(f);
    return 0;
}

static void bind_pkt(struct fx *f)
{
    lua_rawgeti(f->L, LUA_REGISTRYINDEX, f->ref);
    mt__lpacket_bind(lua_touserdata(f->L, -1), &f->pkt);
    lua_pop(f->L, 1);
}

static void expire(struct fx *f)
{
    lua_rawgeti(f->L, LUA_REGISTRYINDEX, f->ref);
    mt__lpacket_expire(lua_touserdata(f->L, -1));
    lua_pop(f->L, 1);
}

/* Loads bytes into a fresh buffer with the default headroom and binds the packet to it. */
static uint8_t *load(struct fx *f, const uint8_t *bytes, size_t len, enum mt_link link,
                     enum mt_dir dir)
{
    mt_packet_init(&f->pkt, f->buf, sizeof f->buf, MT_HEADROOM);
    assert_int_equal(mt_packet_put(&f->pkt, len), 0);
    memcpy(f->pkt.data, bytes, len);
    f->pkt.link = link;
    f->pkt.dir = dir;
    bind_pkt(f);
    return f->pkt.data;
}

/* Runs code as a function whose local `pkt` is the packet; leaves one result on the stack. */
static int run(struct fx *f, const char *code)
{
    char chunk[2048];
    snprintf(chunk, sizeof chunk, "local pkt = ...\n%s", code);
    lua_settop(f->L, 0);
    int rc = luaL_loadstring(f->L, chunk);
    if (rc != LUA_OK)
        fail_msg("does not compile: %s: %s", code, lua_tostring(f->L, -1));
    lua_rawgeti(f->L, LUA_REGISTRYINDEX, f->ref);
    return lua_pcall(f->L, 1, 1, 0);
}

static void run_ok(struct fx *f, const char *code)
{
    if (run(f, code) != LUA_OK)
        fail_msg("%s: %s", code, lua_tostring(f->L, -1));
}

static lua_Integer run_int(struct fx *f, const char *code)
{
    run_ok(f, code);
    if (!lua_isinteger(f->L, -1))
        fail_msg("%s: integer expected, got %s", code, luaL_typename(f->L, -1));
    return lua_tointeger(f->L, -1);
}

static const char *run_str(struct fx *f, const char *code)
{
    run_ok(f, code);
    if (lua_type(f->L, -1) != LUA_TSTRING)
        fail_msg("%s: string expected, got %s", code, luaL_typename(f->L, -1));
    return lua_tostring(f->L, -1);
}

static bool run_nil(struct fx *f, const char *code)
{
    run_ok(f, code);
    return lua_isnil(f->L, -1);
}

static bool run_true(struct fx *f, const char *code)
{
    run_ok(f, code);
    return lua_toboolean(f->L, -1);
}

static void run_err(struct fx *f, const char *code, const char *needle)
{
    if (run(f, code) == LUA_OK)
        fail_msg("%s: expected an error containing \"%s\", got success", code, needle);
    const char *msg = lua_tostring(f->L, -1);
    if (msg == NULL || strstr(msg, needle) == NULL)
        fail_msg("%s: expected an error containing \"%s\", got \"%s\"", code, needle,
                 msg ? msg : "(not a string)");
}

#define FX struct fx *f = *state

/* --- packet basics --------------------------------------------------------------------------- */

static void test_len_dir_tostring(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 1, ICMP_ECHO, sizeof ICMP_ECHO);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return #pkt"), 36);
    assert_string_equal(run_str(f, "return pkt.dir"), "egress");
    const char *s = run_str(f, "return tostring(pkt)");
    assert_non_null(strstr(s, "10.0.0.1"));
    assert_non_null(strstr(s, "10.0.0.2"));
    f->pkt.dir = MT_DIR_INGRESS;
    assert_string_equal(run_str(f, "return pkt.dir"), "ingress");
    assert_true(run_nil(f, "return pkt.nosuchfield"));
    assert_true(run_nil(f, "return pkt[1]"));
    /* regression: the name table also holds the pkt.dir strings under -1 and -2 */
    assert_true(run_nil(f, "return pkt[-1]"));
    assert_true(run_nil(f, "return pkt[-2]"));
    run_err(f, "pkt.dir = 'x'", "cannot assign pkt.dir");
    assert_string_equal(run_str(f, "return getmetatable(pkt)"), MT_LPACKET_META);
    assert_string_equal(run_str(f, "return type(pkt.u8)"), "function");
}

static void test_raw_reads(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt:u8(0)"), 0x45);
    assert_int_equal(run_int(f, "return pkt:u8(8)"), 64);
    assert_int_equal(run_int(f, "return pkt:u16(2)"), 44);
    assert_int_equal(run_int(f, "return pkt:u16(4)"), 0x1234);
    assert_int_equal(run_int(f, "return pkt:u32(12)"), 0x0a000001);
    assert_int_equal(run_int(f, "return pkt:u32(24)"), 0x01020304);
    assert_int_equal(run_int(f, "return pkt:u32(28)"), 0xa0b0c0d0); /* above 2^31: no sign */
    assert_int_equal(run_int(f, "return pkt:u8(43)"), 'd');         /* last byte */
    assert_int_equal(run_int(f, "return pkt:u16(42)"), 'c' << 8 | 'd');
    assert_int_equal(run_int(f, "return pkt:u32(40)"), 0x61626364);
    assert_string_equal(run_str(f, "return pkt:bytes(40)"), "abcd");
    assert_string_equal(run_str(f, "return pkt:bytes(40, 2)"), "ab");
    assert_string_equal(run_str(f, "return pkt:bytes(44)"), "");
    assert_string_equal(run_str(f, "return pkt:bytes(41, 0)"), "");
    assert_int_equal(run_int(f, "return #pkt:bytes()"), 44);
    assert_true(run_true(f, "return pkt:bytes() == pkt:bytes(0, #pkt)"));
    assert_int_equal(run_int(f, "return pkt:bytes():byte(1)"), 0x45);
}

static void test_raw_bounds_errors(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG); /* 44 bytes */
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_err(f, "return pkt:u8(44)", "bad argument #1 to 'u8' (offset 44 out of bounds");
    run_err(f, "return pkt:u8(-1)", "bad argument #1 to 'u8' (offset -1 out of bounds");
    run_err(f, "return pkt:u8(math.maxinteger)", "out of bounds");
    run_err(f, "return pkt:u8(math.mininteger)", "out of bounds");
    run_err(f, "return pkt:u16(43)", "bad argument #1 to 'u16' (offset 43 out of bounds (2-byte");
    run_err(f, "return pkt:u32(41)", "bad argument #1 to 'u32' (offset 41 out of bounds (4-byte");
    run_err(f, "return pkt:u8('x')", "bad argument #1 to 'u8' (number expected, got string)");
    run_err(f, "return pkt:u8(1.5)", "bad argument #1 to 'u8' (number has no integer");
    run_err(f, "return pkt:u8()", "bad argument #1 to 'u8'");
    run_err(f, "pkt:set_u8(44, 1)", "bad argument #1 to 'set_u8' (offset 44 out of bounds");
    run_err(f, "pkt:set_u16(43, 1)", "bad argument #1 to 'set_u16' (offset 43 out of bounds");
    run_err(f, "pkt:set_u32(41, 1)", "bad argument #1 to 'set_u32' (offset 41 out of bounds");
    run_err(f, "pkt:set_u8(0, 256)", "bad argument #2 to 'set_u8' (value 256 out of range 0..255)");
    run_err(f, "pkt:set_u8(0, -1)", "bad argument #2 to 'set_u8' (value -1 out of range");
    run_err(f, "pkt:set_u16(0, 65536)", "bad argument #2 to 'set_u16' (value 65536 out of range");
    run_err(f, "pkt:set_u32(0, 1 << 32)", "bad argument #2 to 'set_u32' (value 4294967296 out");
    run_err(f, "pkt:set_u8(0)", "bad argument #2 to 'set_u8'");
    run_err(f, "return pkt:bytes(45)", "bad argument #1 to 'bytes' (offset 45 out of bounds");
    run_err(f, "return pkt:bytes(-1)", "bad argument #1 to 'bytes' (offset -1 out of bounds");
    run_err(f, "return pkt:bytes(40, 5)", "bad argument #2 to 'bytes' (length 5 out of bounds");
    run_err(f, "return pkt:bytes(0, -1)", "bad argument #2 to 'bytes' (length -1 out of bounds");
    run_err(f, "pkt:set_bytes(41, 'abcd')", "bad argument #1 to 'set_bytes' (offset 41 out of");
    run_err(f, "pkt:set_bytes(-1, 'a')", "bad argument #1 to 'set_bytes' (offset -1 out of");
    run_err(f, "pkt:set_bytes(0, string.rep('x', 45))", "bad argument #1 to 'set_bytes'");
    run_err(f, "pkt:set_bytes(0)", "bad argument #2 to 'set_bytes' (string expected");
    run_err(f, "pkt.u8(nil, 0)", "bad argument #1 to 'u8' (moontun.packet expected");
    run_err(f, "pkt.u8({}, 0)", "moontun.packet expected");
    run_err(f, "pkt.u8(pkt.ip, 0)", "moontun.packet expected, got moontun.header");
    /* nothing above changed a byte */
    assert_memory_equal(f->pkt.data, b, n);
    assert_int_equal(f->pkt.len, n);
}

static void test_raw_writes(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "pkt:set_u8(43, 0x7a)");
    assert_int_equal(p[43], 0x7a);
    run_ok(f, "pkt:set_u8(0, 255)");
    assert_int_equal(p[0], 0xff);
    run_ok(f, "pkt:set_u16(42, 0xbeef)");
    assert_int_equal(p[42], 0xbe);
    assert_int_equal(p[43], 0xef);
    run_ok(f, "pkt:set_u32(40, 0xdeadbeef)");
    assert_int_equal(run_int(f, "return pkt:u32(40)"), 0xdeadbeef);
    assert_int_equal(p[40], 0xde);
    assert_int_equal(p[43], 0xef);
    run_ok(f, "pkt:set_u32(0, 0)");
    assert_int_equal(run_int(f, "return pkt:u32(0)"), 0);
    run_ok(f, "pkt:set_bytes(40, 'WXYZ')");
    assert_memory_equal(p + 40, "WXYZ", 4);
    run_ok(f, "pkt:set_bytes(44, '')"); /* an empty string fits at the end */
    run_ok(f, "pkt:set_bytes(0, pkt:bytes())");
    assert_int_equal(f->pkt.len, 44);
}

static void test_push_pull_append(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "pkt:push('HDR!')");
    assert_int_equal(f->pkt.len, 48);
    assert_memory_equal(f->pkt.data, "HDR!", 4);
    assert_memory_equal(f->pkt.data + 4, b, n);
    assert_true(run_nil(f, "return pkt.ip")); /* "HDR!" is no IP header */
    run_ok(f, "pkt:pull(4)");
    assert_int_equal(f->pkt.len, 44);
    assert_memory_equal(f->pkt.data, b, n);
    assert_int_equal(run_int(f, "return pkt.ip.ttl"), 64);
    run_ok(f, "pkt:append('tail')");
    assert_int_equal(run_int(f, "return #pkt"), 48);
    assert_string_equal(run_str(f, "return pkt:bytes(40)"), "abcdtail");

    /* headroom: exactly MT_HEADROOM fits, one more byte does not */
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_err(f, "pkt:push(string.rep('x', 257))", "bad argument #1 to 'push' (257 bytes do not fit");
    assert_int_equal(f->pkt.len, n);
    run_ok(f, "pkt:push(string.rep('x', 256))");
    assert_int_equal(f->pkt.len, n + 256);
    assert_ptr_equal(f->pkt.data, f->buf);
    run_err(f, "pkt:push('y')", "do not fit in front (headroom 0");
    run_ok(f, "pkt:push('')");
    run_ok(f, "pkt:pull(256)");
    assert_memory_equal(f->pkt.data, b, n);

    /* pull: all of it is fine, more is not */
    run_err(f, "pkt:pull(45)", "bad argument #1 to 'pull' (cannot pull 45 bytes from a 44-byte");
    run_err(f, "pkt:pull(-1)", "cannot pull -1 bytes");
    run_ok(f, "pkt:pull(0)");
    run_ok(f, "pkt:pull(44)");
    assert_int_equal(run_int(f, "return #pkt"), 0);
    assert_true(run_nil(f, "return pkt.ip"));
    run_err(f, "return pkt:u8(0)", "out of bounds");

    /* tailroom: fill the buffer to the last byte, then one more fails */
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    size_t tail = mt_packet_tailroom(&f->pkt);
    char code[128];
    /* the packet cannot grow past MT_MAX_PACKET either: whichever limit is nearer holds */
    size_t room = tail < MT_MAX_PACKET - n ? tail : MT_MAX_PACKET - n;
    snprintf(code, sizeof code, "pkt:append(string.rep('z', %zu))", room + 1);
    run_err(f, code, "bad argument #1 to 'append'");
    snprintf(code, sizeof code, "pkt:append(string.rep('z', %zu))", room);
    run_ok(f, code);
    assert_int_equal(f->pkt.len, n + room);
    run_err(f, "pkt:append('!')", "do not fit behind");
    run_ok(f, "pkt:append('')");
    run_err(f, "pkt:append(nil)", "bad argument #1 to 'append' (string expected");
    run_err(f, "pkt:push()", "bad argument #1 to 'push' (string expected");
}

static void test_resize(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    memset(f->pkt.data + n, 0xee, 64); /* garbage behind the packet must not show */
    run_ok(f, "pkt:resize(60)");
    assert_int_equal(run_int(f, "return #pkt"), 60);
    assert_true(run_true(f, "return pkt:bytes(44) == string.rep('\\0', 16)"));
    assert_int_equal(run_int(f, "return pkt:u32(56)"), 0);
    run_ok(f, "pkt:resize(20)");
    assert_int_equal(f->pkt.len, 20);
    assert_memory_equal(f->pkt.data, b, 20);
    run_ok(f, "pkt:resize(0)");
    assert_int_equal(f->pkt.len, 0);
    run_err(f, "pkt:resize(-1)", "bad argument #1 to 'resize' (size -1 out of range");
    run_err(f, "pkt:resize(1e12)", "bad argument #1 to 'resize' (size 1000000000000 out of range");
    run_err(f, "pkt:resize(math.maxinteger)", "out of range");
    run_err(f, "pkt:resize(1e300)", "bad argument #1 to 'resize' (number has no integer");
    run_err(f, "pkt:resize('big')", "bad argument #1 to 'resize' (number expected");
    assert_int_equal(f->pkt.len, 0);

    /* the largest size allowed is exactly the limit */
    size_t max = f->pkt.len + mt_packet_tailroom(&f->pkt);
    if (max > MT_MAX_PACKET)
        max = MT_MAX_PACKET;
    char code[96];
    snprintf(code, sizeof code, "pkt:resize(%zu)", max + 1);
    run_err(f, code, "out of range");
    snprintf(code, sizeof code, "pkt:resize(%zu)", max);
    run_ok(f, code);
    assert_int_equal(f->pkt.len, max);
    snprintf(code, sizeof code, "return pkt:u8(%zu)", max - 1);
    assert_int_equal(run_int(f, code), 0);
}

static void test_checksum_method(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    /* raw edits break both checksums; pkt:checksum() mends them */
    run_ok(f, "pkt:set_u8(8, 3); pkt:set_u16(22, 443); pkt:set_u16(10, 0); pkt:set_u16(36, 1)");
    assert_true(run_true(f, "return pkt:checksum()"));
    naive_check(p, 20, 6);
    assert_int_equal(p[8], 3);

    n = mk_ip6(b, 17, UDP_SEG, sizeof UDP_SEG, true);
    p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "pkt:set_bytes(64, 'HELLO')");
    assert_true(run_true(f, "return pkt:checksum()"));
    naive_check(p, 56, 17);

    uint8_t junk[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    load(f, junk, sizeof junk, MT_LINK_IP, MT_DIR_EGRESS);
    assert_false(run_true(f, "return pkt:checksum()"));
}

/* --- header views: reading ------------------------------------------------------------------- */

static void test_ipv4_tcp_read(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt.eth"));
    assert_int_equal(run_int(f, "return pkt.ip.version"), 4);
    assert_int_equal(run_int(f, "return pkt.ip.hlen"), 20);
    assert_int_equal(run_int(f, "return pkt.ip.tos"), 0x10);
    assert_int_equal(run_int(f, "return pkt.ip.len"), 44);
    assert_int_equal(run_int(f, "return pkt.ip.id"), 0x1234);
    assert_int_equal(run_int(f, "return pkt.ip.ttl"), 64);
    assert_int_equal(run_int(f, "return pkt.ip.proto"), 6);
    assert_string_equal(run_str(f, "return pkt.ip.src"), "10.0.0.1");
    assert_string_equal(run_str(f, "return pkt.ip.dst"), "10.0.0.2");
    assert_int_equal(run_int(f, "return pkt.tcp.sport"), 12345);
    assert_int_equal(run_int(f, "return pkt.tcp.dport"), 80);
    assert_int_equal(run_int(f, "return pkt.tcp.seq"), 0x01020304);
    assert_int_equal(run_int(f, "return pkt.tcp.ack"), 0xa0b0c0d0);
    assert_int_equal(run_int(f, "return pkt.tcp.flags"), 0x18);
    assert_int_equal(run_int(f, "return pkt.tcp.window"), 29200);
    assert_true(run_nil(f, "return pkt.udp"));
    assert_true(run_nil(f, "return pkt.icmp"));
    /* names a view does not have are an error naming the view and its fields */
    run_err(f, "return pkt.ip.sport",
            "pkt.ip has no field 'sport' (its fields: version hlen tos dscp ecn len id ttl proto "
            "src dst off)");
    run_err(f, "return pkt.tcp.src", "pkt.tcp has no field 'src' (its fields: sport dport seq");
    run_err(f, "return pkt.tcp.nonsense", "pkt.tcp has no field 'nonsense'");
    run_err(f, "return pkt.tcp[1]", "pkt.tcp has no field 'number'");
    /* offsets: the views', the packet's, tcp.hlen; dscp and ecn beside tos */
    assert_int_equal(run_int(f, "return pkt.ip.off"), 0);
    assert_int_equal(run_int(f, "return pkt.l3"), 0);
    assert_int_equal(run_int(f, "return pkt.l4"), 20);
    assert_int_equal(run_int(f, "return pkt.tcp.off"), 20);
    assert_int_equal(run_int(f, "return pkt.tcp.hlen"), 20);
    assert_int_equal(run_int(f, "return pkt.payload"), 40);
    run_ok(f, "pkt.ip.tos = 0x01; pkt.ip.dscp = 46");
    assert_int_equal(run_int(f, "return pkt.ip.tos"), 0xb9);
    assert_int_equal(run_int(f, "return pkt.ip.dscp"), 46);
    assert_int_equal(run_int(f, "return pkt.ip.ecn"), 1);
    run_ok(f, "pkt.ip.ecn = 2");
    assert_int_equal(run_int(f, "return pkt.ip.tos"), 0xba);
    run_err(f, "pkt.ip.dscp = 64", "cannot assign ip.dscp: integer 0..63 expected, got 64");
    assert_true(run_true(f, "return pkt:checksum()"));
    assert_string_equal(run_str(f, "return tostring(pkt.tcp)"), "moontun tcp header");
}

static void test_ipv4_udp_read(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.ip.proto"), 17);
    assert_int_equal(run_int(f, "return pkt.ip.len"), 33);
    assert_int_equal(run_int(f, "return pkt.udp.sport"), 5353);
    assert_int_equal(run_int(f, "return pkt.udp.dport"), 53);
    assert_int_equal(run_int(f, "return pkt.udp.len"), 13);
    assert_true(run_nil(f, "return pkt.tcp"));
    assert_true(run_nil(f, "return pkt.icmp"));
    run_err(f, "return pkt.udp.seq",
            "pkt.udp has no field 'seq' (its fields: sport dport len off)");
    assert_int_equal(run_int(f, "return pkt.payload - pkt.l4"), 8);
}

static void test_ipv4_icmp_read(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 1, ICMP_ECHO, sizeof ICMP_ECHO);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.icmp.type"), 8);
    assert_int_equal(run_int(f, "return pkt.icmp.code"), 0);
    assert_int_equal(run_int(f, "return pkt.icmp.id"), 0x4242);
    assert_int_equal(run_int(f, "return pkt.icmp.seq"), 7);
    assert_true(run_nil(f, "return pkt.tcp"));
    assert_true(run_nil(f, "return pkt.udp"));
    /* a destination unreachable has no id/seq */
    p[20] = 3;
    p[21] = 1;
    assert_int_equal(run_int(f, "pkt:set_u8(0, 0x45) return pkt.icmp.type"), 3);
    assert_true(run_nil(f, "return pkt.icmp.id"));
    assert_true(run_nil(f, "return pkt.icmp.seq"));
}

static void test_ipv6_ext_tcp_read(void **state)
{
    FX;
    uint8_t b[160];
    size_t n = mk_ip6(b, 6, TCP_SEG, sizeof TCP_SEG, true);
    load(f, b, n, MT_LINK_IP, MT_DIR_INGRESS);
    assert_int_equal(run_int(f, "return pkt.ip.version"), 6);
    assert_int_equal(run_int(f, "return pkt.ip.hlen"), 56);
    assert_int_equal(run_int(f, "return pkt.ip.tos"), 0xb8);
    assert_int_equal(run_int(f, "return pkt.ip.len"), (lua_Integer)n);
    assert_int_equal(run_int(f, "return pkt.ip.id"), 0x12345);
    assert_int_equal(run_int(f, "return pkt.ip.ttl"), 64);
    assert_int_equal(run_int(f, "return pkt.ip.proto"), 6);
    assert_string_equal(run_str(f, "return pkt.ip.src"), "2001:db8::1");
    assert_string_equal(run_str(f, "return pkt.ip.dst"), "2001:db8::2");
    assert_int_equal(run_int(f, "return pkt.tcp.sport"), 12345);
    assert_int_equal(run_int(f, "return pkt.tcp.dport"), 80);
    assert_int_equal(run_int(f, "return pkt.tcp.seq"), 0x01020304);
    assert_int_equal(run_int(f, "return pkt.tcp.ack"), 0xa0b0c0d0);
    assert_int_equal(run_int(f, "return pkt.tcp.flags"), 0x18);
    assert_int_equal(run_int(f, "return pkt.tcp.window"), 29200);

    /* without extension headers */
    n = mk_ip6(b, 17, UDP_SEG, sizeof UDP_SEG, false);
    load(f, b, n, MT_LINK_IP, MT_DIR_INGRESS);
    assert_int_equal(run_int(f, "return pkt.ip.hlen"), 40);
    assert_int_equal(run_int(f, "return pkt.ip.proto"), 17);
    assert_int_equal(run_int(f, "return pkt.ip.len"), 53);
    assert_int_equal(run_int(f, "return pkt.udp.dport"), 53);
    assert_true(run_nil(f, "return pkt.tcp"));

    /* an unknown transport after the extension headers: no view, but hlen still skips them */
    n = mk_ip6(b, 6, TCP_SEG, sizeof TCP_SEG, true);
    b[48] = 99;
    load(f, b, n, MT_LINK_IP, MT_DIR_INGRESS);
    assert_int_equal(run_int(f, "return pkt.ip.proto"), 99);
    assert_int_equal(run_int(f, "return pkt.ip.hlen"), 56);
    assert_true(run_nil(f, "return pkt.tcp"));
}

static void test_icmpv6_echo_read(void **state)
{
    FX;
    uint8_t b[160];
    uint8_t echo[16];
    memcpy(echo, ICMP_ECHO, sizeof echo);
    echo[0] = 128;
    size_t n = mk_ip6(b, 58, echo, sizeof echo, false);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.ip.proto"), 58);
    assert_int_equal(run_int(f, "return pkt.icmp.type"), 128);
    assert_int_equal(run_int(f, "return pkt.icmp.code"), 0);
    assert_int_equal(run_int(f, "return pkt.icmp.id"), 0x4242);
    assert_int_equal(run_int(f, "return pkt.icmp.seq"), 7);
    /* ICMP (v4) type 8 inside IPv6 is not an echo */
    n = mk_ip6(b, 58, ICMP_ECHO, sizeof ICMP_ECHO, true);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.icmp.type"), 8);
    assert_true(run_nil(f, "return pkt.icmp.id"));
    /* protocol 1 inside IPv6 is nothing we know */
    n = mk_ip6(b, 1, ICMP_ECHO, sizeof ICMP_ECHO, false);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt.icmp"));
}

static void test_tap_eth_read(void **state)
{
    FX;
    uint8_t b[160];
    memcpy(b, ETH_HDR, 14);
    size_t n = 14 + mk_ip4(b + 14, 17, UDP_SEG, sizeof UDP_SEG);
    memset(b + n, 0, 60 - n); /* Ethernet padding to 60 bytes after a 33-byte IP packet */
    load(f, b, 60, MT_LINK_ETH, MT_DIR_EGRESS);
    assert_string_equal(run_str(f, "return pkt.eth.dst"), "02:00:00:00:00:02");
    assert_string_equal(run_str(f, "return pkt.eth.src"), "02:00:00:00:00:01");
    assert_int_equal(run_int(f, "return pkt.eth.type"), 0x0800);
    assert_int_equal(run_int(f, "return pkt.ip.len"), 33);
    assert_string_equal(run_str(f, "return pkt.ip.dst"), "10.0.0.2");
    assert_int_equal(run_int(f, "return pkt.udp.sport"), 5353);
    assert_int_equal(run_int(f, "return #pkt"), 60);
    run_err(f, "return pkt.eth.ttl", "pkt.eth has no field 'ttl' (its fields: src dst type off)");
    assert_int_equal(run_int(f, "return pkt.ip.off"), 14);
    assert_int_equal(run_int(f, "return pkt.l3"), 14);

    /* an ARP frame: Ethernet, nothing above */
    uint8_t arp[42] = {0};
    memcpy(arp, ETH_HDR, 14);
    arp[12] = 0x08;
    arp[13] = 0x06;
    load(f, arp, sizeof arp, MT_LINK_ETH, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.eth.type"), 0x0806);
    assert_true(run_nil(f, "return pkt.ip"));

    /* a tun packet has no Ethernet view */
    n = mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt.eth"));
}

/* --- header views: writing ------------------------------------------------------------------- */

static void test_ipv4_tcp_writes(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    static const struct {
        const char *code, *check;
        lua_Integer want;
    } cases[] = {
        {"pkt.ip.ttl = 1", "return pkt.ip.ttl", 1},
        {"pkt.ip.ttl = 255", "return pkt.ip.ttl", 255},
        {"pkt.ip.tos = 0xb8", "return pkt.ip.tos", 0xb8},
        {"pkt.ip.id = 0xfffe", "return pkt.ip.id", 0xfffe},
        {"pkt.tcp.sport = 1", "return pkt.tcp.sport", 1},
        {"pkt.tcp.dport = 8080", "return pkt.tcp.dport", 8080},
        {"pkt.tcp.seq = 0xffffffff", "return pkt.tcp.seq", 0xffffffff},
        {"pkt.tcp.ack = 12345678", "return pkt.tcp.ack", 12345678},
        {"pkt.tcp.flags = 0x02", "return pkt.tcp.flags", 0x02},
        {"pkt.tcp.window = 0", "return pkt.tcp.window", 0},
        {"pkt.tcp.dport = 8080.0", "return pkt.tcp.dport", 8080},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        run_ok(f, cases[i].code);
        assert_int_equal(run_int(f, cases[i].check), cases[i].want);
        naive_check(p, 20, 6);
    }
    run_ok(f, "pkt.ip.dst = '10.0.0.9'");
    assert_string_equal(run_str(f, "return pkt.ip.dst"), "10.0.0.9");
    naive_check(p, 20, 6);
    run_ok(f, "pkt.ip.src = '192.168.200.254'");
    assert_string_equal(run_str(f, "return pkt.ip.src"), "192.168.200.254");
    assert_int_equal(p[12], 192);
    naive_check(p, 20, 6);
    /* address text both ways, at the edges of the digit counts */
    static const char *const addrs[] = {"0.0.0.0", "255.255.255.255", "100.205.10.9",
                                        "1.20.199.250"};
    for (size_t i = 0; i < sizeof addrs / sizeof addrs[0]; i++) {
        char code[96];
        snprintf(code, sizeof code, "pkt.ip.dst = '%s' return pkt.ip.dst", addrs[i]);
        assert_string_equal(run_str(f, code), addrs[i]);
        naive_check(p, 20, 6);
    }
    /* set_addr remembers the last text it parsed: the same text again (from that cache), one
     * it starts with, and the first again are each written, with their checksums */
    static const char *const again[] = {"10.1.2.3", "10.1.2.3", "10.1.2.30", "10.1.2.3",
                                        "10.1.2.3"};
    for (size_t i = 0; i < sizeof again / sizeof again[0]; i++) {
        char code[96];
        snprintf(code, sizeof code, "pkt.ip.%s = '%s' return pkt.ip.%s", i % 2 ? "src" : "dst",
                 again[i], i % 2 ? "src" : "dst");
        assert_string_equal(run_str(f, code), again[i]);
        naive_check(p, 20, 6);
    }
    assert_int_equal(p[15], 3); /* src: the last one written to it, the cached "10.1.2.3" */
    assert_int_equal(p[19], 3);
    /* reads come from texts the ip view keeps by a hash of the last two bytes: addresses
     * that share a slot read back as themselves, the first read and the cached one alike */
    static const char *const slot1[] = {"10.0.0.1", "11.0.0.1", "10.0.1.6", "10.0.0.1", "11.0.0.1"};
    for (size_t i = 0; i < sizeof slot1 / sizeof slot1[0]; i++) {
        char code[128];
        snprintf(code, sizeof code,
                 "pkt.ip.dst = '%s' local a = pkt.ip.dst return a == pkt.ip.dst and a or 'no'",
                 slot1[i]);
        assert_string_equal(run_str(f, code), slot1[i]);
    }
    run_err(f, "pkt.ip.src = '10.1.2.3x'", "invalid IPv4 address");
    run_err(f, "pkt.ip.src = 'fd00::1'", "is an IPv6 address");
    assert_string_equal(run_str(f, "pkt.ip.dst = '0.0.0.0' return pkt.ip.dst"), "0.0.0.0");
    naive_check(p, 20, 6);
    /* the rest of the bytes are untouched: header words we did not name, and the payload */
    assert_int_equal(p[0], 0x45);
    assert_int_equal(p[9], 6);
    assert_int_equal(mt_test_get16(p + 2), 44);
    assert_int_equal(p[32], 0x50); /* data offset */
    assert_memory_equal(p + 40, "abcd", 4);
    assert_int_equal(run_int(f, "return #pkt"), 44);
}

static void test_ipv4_udp_writes(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "pkt.udp.sport = 40000");
    naive_check(p, 20, 17);
    run_ok(f, "pkt.udp.dport = 5300");
    naive_check(p, 20, 17);
    run_ok(f, "pkt.ip.dst = '172.16.0.1' pkt.ip.src = '0.0.0.0'");
    naive_check(p, 20, 17);
    assert_int_equal(run_int(f, "return pkt.udp.sport"), 40000);
    assert_int_equal(run_int(f, "return pkt.udp.dport"), 5300);
    assert_string_equal(run_str(f, "return pkt.ip.src"), "0.0.0.0");
    assert_int_not_equal(mt_test_get16(p + 26), 0);

    /* UDP over IPv4 without a checksum keeps none */
    n = mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG);
    mt_test_put16(b + 26, 0);
    p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "pkt.ip.dst = '10.9.9.9' pkt.udp.dport = 1 pkt.udp.sport = 2 pkt.ip.ttl = 9");
    assert_int_equal(mt_test_get16(p + 26), 0);
    assert_int_equal(run_int(f, "return pkt.udp.dport"), 1);
    naive_check(p, 20, 17); /* the IP header checksum still holds */

    /* a checksum whose update lands on 0 is sent as 0xffff: find such a port */
    n = mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG);
    p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    uint16_t c = mt_test_get16(p + 26);
    /* the checksum covers sport once: raising sport by c's one's complement ... brute force */
    int hit = -1;
    for (int port = 0; port < 65536 && hit < 0; port++) {
        uint8_t t[128];
        memcpy(t, b, n);
        mt_test_put16(t + 20, (uint16_t)port);
        naive_fill(t, 20, 17);
        if (mt_test_get16(t + 26) == 0xffff)
            hit = port;
    }
    assert_true(hit >= 0);
    char code[64];
    snprintf(code, sizeof code, "pkt.udp.sport = %d", hit);
    run_ok(f, code);
    assert_int_equal(mt_test_get16(p + 26), 0xffff);
    naive_check(p, 20, 17);
    (void)c;
}

static void test_ipv4_icmp_writes(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 1, ICMP_ECHO, sizeof ICMP_ECHO);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    /* turn the echo request into a reply, the way a ping responder does */
    run_ok(f, "local ip = pkt.ip\n"
              "ip.src, ip.dst = ip.dst, ip.src\n"
              "pkt.icmp.type = 0\n");
    assert_string_equal(run_str(f, "return pkt.ip.src"), "10.0.0.2");
    assert_string_equal(run_str(f, "return pkt.ip.dst"), "10.0.0.1");
    assert_int_equal(run_int(f, "return pkt.icmp.type"), 0);
    naive_check(p, 20, 1);
    run_ok(f, "pkt.icmp.code = 5");
    naive_check(p, 20, 1);
    run_ok(f, "pkt.icmp.id = 0xffff");
    naive_check(p, 20, 1);
    run_ok(f, "pkt.icmp.seq = 1234");
    naive_check(p, 20, 1);
    assert_int_equal(run_int(f, "return pkt.icmp.code"), 5);
    assert_int_equal(run_int(f, "return pkt.icmp.id"), 0xffff);
    assert_int_equal(run_int(f, "return pkt.icmp.seq"), 1234);
    /* an address change does not touch ICMPv4's checksum (no pseudo-header) */
    uint16_t c = mt_test_get16(p + 22);
    run_ok(f, "pkt.ip.dst = '1.2.3.4'");
    assert_int_equal(mt_test_get16(p + 22), c);
    naive_check(p, 20, 1);
    /* id/seq of a non-echo message */
    run_ok(f, "pkt.icmp.type = 3");
    naive_check(p, 20, 1);
    run_err(f, "pkt.icmp.id = 1", "cannot assign icmp.id: only echo");
    run_err(f, "pkt.icmp.seq = 1", "cannot assign icmp.seq: only echo");
}

/* pkt:flow() gives in one call what the views give field by field. */
static void test_flow(void **state)
{
    FX;
    uint8_t b[200];
    static const char *const same =
        "local p, s, sp, d, dp = pkt:flow()\n"
        "local ip = pkt.ip\n"
        "local l4 = pkt.tcp or pkt.udp\n"
        "local want_p = pkt.tcp and 'tcp' or pkt.udp and 'udp' or pkt.icmp and 'icmp' or ip.proto\n"
        "local want_sp = l4 and l4.sport or pkt.icmp and (pkt.icmp.id or 0) or 0\n"
        "local want_dp = l4 and l4.dport or pkt.icmp and (pkt.icmp.id or 0) or 0\n"
        "return p == want_p and s == ip.src and d == ip.dst and sp == want_sp and dp == want_dp";
    load(f, b, mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG), MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, same));
    assert_string_equal(run_str(f, "return (pkt:flow())"), "tcp");
    load(f, b, mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG), MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, same));
    load(f, b, mk_ip4(b, 1, ICMP_ECHO, sizeof ICMP_ECHO), MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, same));
    assert_int_equal(run_int(f, "local _, _, sp = pkt:flow() return sp"), 0x4242);
    load(f, b, mk_ip6(b, 6, TCP_SEG, sizeof TCP_SEG, true), MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, same));
    load(f, b, mk_ip4(b, 47, TCP_SEG, sizeof TCP_SEG), MT_LINK_IP, MT_DIR_EGRESS); /* GRE */
    assert_true(run_true(f, same));
    assert_int_equal(run_int(f, "return (pkt:flow())"), 47);
    load(f, b, mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG), MT_LINK_IP, MT_DIR_EGRESS);
    b[2] = 0xff; /* a total length past the packet: no IP view, no flow */
    load(f, b, 44, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt:flow()"));
}

/* An offloaded packet (NEEDS_CSUM: the TCP field holds only the pseudo-header sum) is finished
 * by pkt:bytes() only when the copy includes that field: a header slice leaves the offload on,
 * a whole copy is a packet anyone can send, and the packet agrees with it. A super-packet
 * stays a super-packet (it was once flattened into one 64 KiB packet). */
static void test_bytes_of_offloaded_packet(void **state)
{
    FX;
    uint8_t b[160];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    f->pkt.vnet.flags = MT_VNET_F_NEEDS_CSUM;
    f->pkt.vnet.gso_type = MT_VNET_GSO_TCPV4;
    f->pkt.vnet.gso_size = 1000;
    f->pkt.vnet.csum_start = 20;
    f->pkt.vnet.csum_offset = 16;
    uint16_t partial =
        (uint16_t)~mt_test_fold(pseudo(p, sizeof TCP_SEG, 6)); /* as a kernel leaves it */
    mt_test_put16(p + 36, partial);
    assert_int_equal(run_int(f, "return #pkt:bytes(12, 8)"), 8);
    assert_int_equal(f->pkt.vnet.flags, MT_VNET_F_NEEDS_CSUM);
    assert_int_equal(mt_test_get16(p + 36), partial);
    uint8_t copy[160];
    memcpy(copy, run_str(f, "return pkt:bytes()"), n);
    naive_check(copy, 20, 6);
    naive_check(p, 20, 6);
    assert_int_equal(f->pkt.vnet.flags, 0);
    assert_int_equal(f->pkt.vnet.gso_type, MT_VNET_GSO_TCPV4);
    assert_int_equal(f->pkt.vnet.gso_size, 1000);
}

static void test_ipv6_writes(void **state)
{
    FX;
    uint8_t b[160];
    size_t n = mk_ip6(b, 6, TCP_SEG, sizeof TCP_SEG, true);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "pkt.ip.dst = 'fd00::1234:5678'");
    assert_string_equal(run_str(f, "return pkt.ip.dst"), "fd00::1234:5678");
    naive_check(p, 56, 6);
    run_ok(f, "pkt.ip.src = '::ffff:10.0.0.1'");
    assert_string_equal(run_str(f, "return pkt.ip.src"), "::ffff:10.0.0.1");
    naive_check(p, 56, 6);
    run_ok(f, "pkt.tcp.dport = 443 pkt.tcp.seq = 1 pkt.tcp.flags = 0x11");
    naive_check(p, 56, 6);
    /* traffic class, flow label and hop limit: no checksum covers them, neighbours intact */
    run_ok(f, "pkt.ip.tos = 0x04 pkt.ip.id = 0xfffff pkt.ip.ttl = 1");
    assert_int_equal(run_int(f, "return pkt.ip.tos"), 0x04);
    assert_int_equal(run_int(f, "return pkt.ip.id"), 0xfffff);
    assert_int_equal(run_int(f, "return pkt.ip.ttl"), 1);
    assert_int_equal(p[0] >> 4, 6);
    assert_int_equal(run_int(f, "return pkt.ip.version"), 6);
    run_ok(f, "pkt.ip.tos = 0xff pkt.ip.id = 0");
    assert_int_equal(p[0], 0x6f);
    assert_int_equal(p[1], 0xf0);
    assert_int_equal(p[2], 0);
    assert_int_equal(p[3], 0);
    assert_int_equal(p[6], 0); /* next header untouched */
    run_err(f, "pkt.ip.id = 0x100000", "integer 0..1048575 expected");
    naive_check(p, 56, 6);

    /* UDP over IPv6 */
    n = mk_ip6(b, 17, UDP_SEG, sizeof UDP_SEG, false);
    p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "pkt.ip.src = '2001:db8:ffff::77' pkt.udp.dport = 5353 pkt.udp.sport = 53");
    naive_check(p, 40, 17);

    /* ICMPv6: the pseudo-header counts, so address changes fix its checksum */
    uint8_t echo[16];
    memcpy(echo, ICMP_ECHO, sizeof echo);
    echo[0] = 128;
    n = mk_ip6(b, 58, echo, sizeof echo, true);
    p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "local ip = pkt.ip\n"
              "ip.src, ip.dst = ip.dst, ip.src\n"
              "pkt.icmp.type = 129\n");
    naive_check(p, 56, 58);
    assert_string_equal(run_str(f, "return pkt.ip.src"), "2001:db8::2");
    run_ok(f, "pkt.ip.dst = 'fe80::1'");
    naive_check(p, 56, 58);
    run_ok(f, "pkt.icmp.code = 1 pkt.icmp.id = 9 pkt.icmp.seq = 65535");
    naive_check(p, 56, 58);
    assert_int_equal(run_int(f, "return pkt.icmp.type"), 129);
    assert_int_equal(run_int(f, "return pkt.icmp.seq"), 65535);
}

static void test_eth_writes(void **state)
{
    FX;
    uint8_t b[160];
    memcpy(b, ETH_HDR, 14);
    size_t n = 14 + mk_ip4(b + 14, 6, TCP_SEG, sizeof TCP_SEG);
    uint8_t *p = load(f, b, n, MT_LINK_ETH, MT_DIR_INGRESS);
    run_ok(f, "pkt.eth.src = 'AA:bb:cc:dd:ee:0F' pkt.eth.dst = '01-02-03-04-05-06'");
    assert_string_equal(run_str(f, "return pkt.eth.src"), "aa:bb:cc:dd:ee:0f");
    assert_string_equal(run_str(f, "return pkt.eth.dst"), "01:02:03:04:05:06");
    static const uint8_t want[12] = {1, 2, 3, 4, 5, 6, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0x0f};
    assert_memory_equal(p, want, 12);
    /* headers inside the frame: writes fix their checksums too */
    run_ok(f, "pkt.ip.dst = '10.1.1.1' pkt.tcp.dport = 22 pkt.ip.ttl = 2");
    naive_check(p + 14, 20, 6);
    run_err(f, "pkt.eth.src = '01:02:03:04:05'", "cannot assign eth.src: MAC address");
    run_err(f, "pkt.eth.src = '01:02:03:04:05:0g'", "cannot assign eth.src: MAC address");
    run_err(f, "pkt.eth.dst = 42", "cannot assign eth.dst: MAC address");
    run_err(f, "pkt.eth.src = '01:02:03:04:05:06:'", "MAC address");
    assert_memory_equal(p, want, 12);
    /* the type changes what follows: an IPv6 ethertype over IPv4 bytes is no IP */
    run_ok(f, "pkt.eth.type = 0x86dd");
    assert_int_equal(mt_test_get16(p + 12), 0x86dd);
    assert_true(run_nil(f, "return pkt.ip"));
    run_ok(f, "pkt.eth.type = 0x0800");
    assert_int_equal(run_int(f, "return pkt.ip.ttl"), 2);
    run_err(f, "pkt.eth.type = 65536", "cannot assign eth.type: integer 0..65535 expected");
}

static void test_write_errors(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG);
    uint8_t *p = load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    uint8_t before[128];
    memcpy(before, p, n);
    run_err(f, "pkt.ip.version = 6", "cannot assign ip.version: read-only field");
    run_err(f, "pkt.ip.hlen = 24", "cannot assign ip.hlen: read-only field");
    run_err(f, "pkt.ip.len = 10", "cannot assign ip.len: read-only field");
    run_err(f, "pkt.ip.proto = 6", "cannot assign ip.proto: read-only field");
    run_err(f, "pkt.udp.len = 10", "cannot assign udp.len: read-only field");
    run_err(f, "pkt.ip.off = 1", "cannot assign ip.off: read-only field");
    run_err(f, "pkt.ip.foo = 1", "cannot assign ip.foo: no such field");
    run_err(f, "pkt.ip.sport = 1", "cannot assign ip.sport: no such field");
    run_err(f, "pkt.udp.seq = 1", "cannot assign udp.seq: no such field");
    run_err(f, "pkt.udp[1] = 1", "cannot assign udp.?: no such field");
    run_err(f, "pkt.ip.dst = '10.0.0.300'",
            "cannot assign ip.dst: invalid IPv4 address '10.0.0.300'");
    run_err(f, "pkt.ip.src = ''", "cannot assign ip.src: invalid IPv4 address");
    run_err(f, "pkt.ip.dst = 'example.com'", "invalid IPv4 address");
    run_err(f, "pkt.ip.dst = '2001:db8::1'",
            "cannot assign ip.dst: '2001:db8::1' is an IPv6 address, the packet is IPv4");
    run_err(f, "pkt.ip.dst = 167772161", "cannot assign ip.dst: address text expected, got number");
    run_err(f, "pkt.ip.dst = nil", "address text expected, got nil");
    run_err(f, "pkt.ip.ttl = 256", "cannot assign ip.ttl: integer 0..255 expected, got 256");
    run_err(f, "pkt.ip.ttl = -1", "cannot assign ip.ttl: integer 0..255 expected, got -1");
    run_err(f, "pkt.ip.ttl = 'x'", "cannot assign ip.ttl: integer 0..255 expected, got string");
    run_err(f, "pkt.ip.ttl = 1.5", "cannot assign ip.ttl: integer 0..255 expected, got number");
    run_err(f, "pkt.ip.ttl = {}", "got table");
    run_err(f, "pkt.udp.dport = 65536", "cannot assign udp.dport: integer 0..65535 expected");
    run_err(f, "pkt.ip.id = 1 << 16", "cannot assign ip.id: integer 0..65535 expected");
    assert_memory_equal(p, before, n); /* a failed write changes nothing */

    n = mk_ip6(b, 6, TCP_SEG, sizeof TCP_SEG, false);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_err(f, "pkt.ip.src = '10.0.0.1'",
            "cannot assign ip.src: '10.0.0.1' is an IPv4 address, the packet is IPv6");
    run_err(f, "pkt.ip.src = '2001:db8::g'", "cannot assign ip.src: invalid IPv6 address");
    run_err(f, "pkt.tcp.seq = 1 << 32", "cannot assign tcp.seq: integer 0..4294967295 expected");
    run_err(f, "pkt.tcp.flags = 256", "cannot assign tcp.flags: integer 0..255");
    run_err(f, "pkt.tcp.window = -5", "cannot assign tcp.window");
    run_err(f, "pkt.tcp.len = 1", "cannot assign tcp.len: no such field");
    run_err(f, "pkt.tcp.hlen = 24", "cannot assign tcp.hlen: read-only field");
    run_err(f, "pkt.ip.id = 1 << 20", "cannot assign ip.id: integer 0..1048575 expected");
    run_err(f, "pkt.ip.dscp = 64", "cannot assign ip.dscp: integer 0..63 expected");
    run_err(f, "pkt.ip = 1", "cannot assign pkt.ip");
    run_err(f, "pkt.ip.__index = 1", "cannot assign ip.__index: no such field");
    run_err(f, "getmetatable(pkt.ip).__index = nil", "attempt to index");
}

/* --- identity, allocation, expiry ------------------------------------------------------------ */

static void test_views_reused(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "first_ip, first_tcp, first_pkt = pkt.ip, pkt.tcp, pkt");
    assert_true(run_true(f, "return rawequal(pkt.ip, pkt.ip) and rawequal(pkt.tcp, first_tcp)"));
    expire(f);
    n = mk_ip4(b, 17, UDP_SEG, sizeof UDP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, "return rawequal(pkt.ip, first_ip) and rawequal(pkt, first_pkt)"));
    /* the same view now describes the new packet */
    assert_int_equal(run_int(f, "return first_ip.proto"), 17);
    run_ok(f, "first_ip, first_tcp, first_pkt = nil");

    /* touching packets and views allocates nothing: the Lua heap does not grow */
    lua_Integer grew = run_int(f, "local function touch()\n"
                                  "  local ip, udp = pkt.ip, pkt.udp\n"
                                  "  local x = ip.ttl + ip.proto + udp.dport + #pkt + pkt:u8(0)\n"
                                  "  ip.ttl = 64 udp.dport = 53 pkt:set_u8(1, 0)\n"
                                  "  local t, e, d = pkt.tcp, pkt.eth, pkt.dir\n"
                                  "end\n"
                                  "collectgarbage('collect') collectgarbage('stop')\n"
                                  "for i = 1, 100 do touch() end -- regrow what collect shrank\n"
                                  "local before = collectgarbage('count')\n"
                                  "for i = 1, 10000 do touch() end\n"
                                  "local after = collectgarbage('count')\n"
                                  "collectgarbage('restart')\n"
                                  "return math.floor((after - before) * 1024)");
    assert_int_equal(grew, 0);
}

static void test_expired(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    run_ok(f, "saved = pkt saved_ip = pkt.ip saved_tcp = pkt.tcp saved_u8 = pkt.u8");
    expire(f);
    static const char *const uses[] = {
        "return #saved",
        "return saved.dir",
        "return saved.peer",
        "return saved.ip",
        "return saved:u8(0)",
        "return saved:u16(0)",
        "return saved:u32(0)",
        "saved:set_u8(0, 1)",
        "saved:set_u16(0, 1)",
        "saved:set_u32(0, 1)",
        "return saved:bytes()",
        "saved:set_bytes(0, 'x')",
        "saved:resize(10)",
        "saved:push('x')",
        "saved:pull(1)",
        "saved:append('x')",
        "saved:checksum()",
        "return tostring(saved)",
        "return saved_u8(saved, 0)",
        "return saved_ip.ttl",
        "return saved_ip.src",
        "saved_ip.ttl = 1",
        "saved_tcp.dport = 1",
        "return tostring(saved_tcp)",
        "return pkt.ip", /* the argument itself, too */
        "saved.x = 1",
    };
    for (size_t i = 0; i < sizeof uses / sizeof uses[0]; i++)
        run_err(f, uses[i], "attempt to use an expired packet");
    /* nothing was written through the expired packet */
    assert_memory_equal(f->pkt.data, b, n);
    assert_int_equal(f->pkt.len, n);
    /* a fresh userdata starts expired */
    lua_settop(f->L, 0);
    mt__lpacket_new(f->L);
    lua_setglobal(f->L, "fresh");
    run_err(f, "return #fresh", "expired");
    run_err(f, "return fresh.ip", "expired");
    /* bound again, the same userdata works */
    bind_pkt(f);
    assert_int_equal(run_int(f, "return #saved"), 44);
    assert_int_equal(run_int(f, "return saved_ip.ttl"), 64);
}

static void test_truncated_and_lying(void **state)
{
    FX;
    uint8_t b[160];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    const char *none = "return pkt.ip == nil and pkt.tcp == nil and pkt.udp == nil and "
                       "pkt.icmp == nil and pkt.eth == nil";

    /* total length beyond the packet */
    mt_test_put16(b + 2, 200);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    assert_non_null(run_str(f, "return tostring(pkt)"));
    /* the packet cut short of its total length */
    n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, 30, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    /* IHL past the total length, IHL below 5 */
    b[0] = 0x4f;
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    b[0] = 0x44;
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    /* total length below IHL */
    b[0] = 0x45;
    mt_test_put16(b + 2, 12);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    /* a TCP data offset past the segment, or below 5: IP yes, TCP no */
    n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    b[32] = 0xf0;
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_false(run_nil(f, "return pkt.ip"));
    assert_true(run_nil(f, "return pkt.tcp"));
    b[32] = 0x40;
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt.tcp"));
    /* a TCP header cut short by the IP total length (the bytes are there, the claim is not) */
    n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    mt_test_put16(b + 2, 30);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.ip.len"), 30);
    assert_true(run_nil(f, "return pkt.tcp"));
    /* UDP and ICMP too short */
    n = mk_ip4(b, 17, UDP_SEG, 6);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt.udp"));
    n = mk_ip4(b, 1, ICMP_ECHO, 4);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt.icmp"));
    /* a non-first fragment holds no transport header */
    n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    mt_test_put16(b + 6, 0x0010);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_false(run_nil(f, "return pkt.ip"));
    assert_true(run_nil(f, "return pkt.tcp"));

    /* IPv6: payload length beyond the packet; the fixed header cut short */
    n = mk_ip6(b, 6, TCP_SEG, sizeof TCP_SEG, true);
    mt_test_put16(b + 4, 1000);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    n = mk_ip6(b, 6, TCP_SEG, sizeof TCP_SEG, true);
    load(f, b, 39, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    /* an extension header whose length runs past the end: IP yes, transport no */
    b[41] = 200;
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_false(run_nil(f, "return pkt.ip"));
    assert_true(run_nil(f, "return pkt.tcp"));
    lua_Integer hlen = run_int(f, "return pkt.ip.hlen");
    assert_true(hlen >= 40 && hlen <= (lua_Integer)n);

    /* nothing at all, one byte, a version nibble that is neither 4 nor 6 */
    load(f, b, 0, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    assert_int_equal(run_int(f, "return #pkt"), 0);
    assert_string_equal(run_str(f, "return pkt:bytes()"), "");
    run_err(f, "return pkt:u8(0)", "out of bounds");
    assert_non_null(run_str(f, "return tostring(pkt)"));
    b[0] = 0x45;
    load(f, b, 1, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    b[0] = 0x55;
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_true(f, none));

    /* tap: a frame shorter than an Ethernet header; a frame cut inside the IP header */
    load(f, ETH_HDR, 10, MT_LINK_ETH, MT_DIR_EGRESS);
    assert_true(run_true(f, none));
    memcpy(b, ETH_HDR, 14);
    n = 14 + mk_ip4(b + 14, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, 30, MT_LINK_ETH, MT_DIR_EGRESS);
    assert_false(run_nil(f, "return pkt.eth"));
    assert_true(run_nil(f, "return pkt.ip"));
    load(f, b, n, MT_LINK_ETH, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.tcp.dport"), 80);
}

static void test_mutation_reparses(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_int_equal(run_int(f, "return pkt.tcp.dport"), 80);
    /* a raw write that changes the protocol changes the views */
    run_ok(f, "pkt:set_u8(9, 17)");
    assert_true(run_nil(f, "return pkt.tcp"));
    assert_int_equal(run_int(f, "return pkt.udp.dport"), 80);
    run_ok(f, "pkt:set_u8(9, 6)");
    /* a view held across a shrink: reads nil, writes fail, nothing out of bounds */
    run_ok(f, "held = pkt.tcp pkt:resize(30)");
    assert_true(run_nil(f, "return held.dport"));
    assert_true(run_nil(f, "return pkt.tcp"));
    assert_true(run_nil(f, "return pkt.ip"));
    run_err(f, "held.dport = 1", "cannot assign tcp.dport: the packet no longer has this header");
    /* and back again */
    run_ok(f, "pkt:resize(44)");
    memcpy(f->pkt.data, b, n);
    run_ok(f, "pkt:set_u8(0, 0x45)"); /* any mutation through Lua reparses */
    assert_int_equal(run_int(f, "return held.dport"), 80);
    /* push an Ethernet-looking header onto a tun packet: no IP at offset 0 any more */
    run_ok(f, "pkt:push(string.rep('\\0', 14))");
    assert_true(run_nil(f, "return pkt.ip"));
    run_ok(f, "pkt:pull(14)");
    assert_int_equal(run_int(f, "return pkt.ip.ttl"), 64);
    /* appending beyond the IP total length changes no header */
    run_ok(f, "pkt:append('pad')");
    assert_int_equal(run_int(f, "return pkt.ip.len"), 44);
    assert_int_equal(run_int(f, "return pkt.tcp.dport"), 80);
}

static void test_peer_nil(void **state)
{
    FX;
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    load(f, b, n, MT_LINK_IP, MT_DIR_EGRESS);
    assert_true(run_nil(f, "return pkt.peer")); /* egress, not routed yet */
}

/* pkt.peer and expiry as the real chain hands packets out: a script whose verdicts tell what
 * it saw. */
static void test_through_chain(void **state)
{
    (void)state;
    char path[] = "/tmp/test_lpacket_XXXXXX.lua";
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    static const char script[] =
        "local mt = require 'moontun'\n"
        "local M = {}\n"
        "function M.ingress(pkt, peer)\n"
        "  if saved then\n"
        "    local ok, err = pcall(function() return saved.ip end)\n"
        "    -- the same userdata is handed out again: it is live for this call\n"
        "    if not ok then return mt.REPLY end\n"
        "  end\n"
        "  if pkt.peer == peer and pkt.peer.addr == '192.0.2.7:4000' and pkt.dir == 'ingress'\n"
        "     and pkt.ip.ttl == 64 then saved = pkt return mt.DROP end\n"
        "end\n"
        "function M.egress(pkt)\n"
        "  if pkt.peer == nil and pkt.dir == 'egress' then\n"
        "    pkt.ip.ttl = 7\n"
        "    return mt.DROP\n"
        "  end\n"
        "end\n"
        "function M.stop()\n"
        "  local ok, err = pcall(function() return #saved end)\n"
        "  assert(not ok and err:find('expired'), 'stored packet still usable after its call')\n"
        "end\n"
        "return M\n";
    assert_int_equal(write(fd, script, sizeof script - 1), (ssize_t)(sizeof script - 1));
    close(fd);

    struct mt_config cfg;
    char err[512] = "";
    char *argv[] = {"moontun", "-s", "-S", path, NULL};
    int rc = mt_config_parse(&cfg, 4, argv, err, sizeof err);
    if (rc != MT_CONFIG_RUN)
        fail_msg("config: %s", err);
    struct mt_stats stats = {0};
    struct mt_host host = {.cfg = &cfg, .stats = &stats};
    struct mt_scripts *s = NULL;
    rc = mt_scripts_load(&s, &cfg, &host, err, sizeof err);
    if (rc != 0)
        fail_msg("load: %s", err);
    assert_non_null(s);

    static uint8_t buf[MT_PKT_BUFSIZE];
    uint8_t b[128];
    size_t n = mk_ip4(b, 6, TCP_SEG, sizeof TCP_SEG);
    struct mt_packet pkt;
    struct mt_peer peer = {.addr = "192.0.2.7:4000", .name = "p", .id = 1, .up = true};
    struct mt_peer *route = NULL;

    mt_packet_init(&pkt, buf, sizeof buf, MT_HEADROOM);
    assert_int_equal(mt_packet_put(&pkt, n), 0);
    memcpy(pkt.data, b, n);
    pkt.dir = MT_DIR_INGRESS;
    pkt.peer = &peer;
    assert_int_equal(mt_scripts_ingress(s, &pkt, &route), MT_VERDICT_DROP);
    assert_int_equal(stats.script_errors, 0);
    /* again: the stored packet is the userdata being reused, so it reads (not REPLY) */
    assert_int_equal(mt_scripts_ingress(s, &pkt, &route), MT_VERDICT_DROP);

    pkt.dir = MT_DIR_EGRESS;
    pkt.peer = NULL;
    assert_int_equal(mt_scripts_egress(s, &pkt, &route), MT_VERDICT_DROP);
    assert_int_equal(pkt.data[8], 7);
    naive_check(pkt.data, 20, 6);
    assert_int_equal(stats.script_errors, 0);

    mt_scripts_free(s); /* runs stop, which checks that `saved` has expired */
    assert_int_equal(stats.script_errors, 0);
    mt_config_free(&cfg);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_len_dir_tostring, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_reads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_bounds_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_push_pull_append, setup, teardown),
        cmocka_unit_test_setup_teardown(test_resize, setup, teardown),
        cmocka_unit_test_setup_teardown(test_checksum_method, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_tcp_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_udp_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_icmp_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_ext_tcp_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_icmpv6_echo_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tap_eth_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_tcp_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_udp_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv4_icmp_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bytes_of_offloaded_packet, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eth_writes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_views_reused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_expired, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncated_and_lying, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mutation_reparses, setup, teardown),
        cmocka_unit_test_setup_teardown(test_peer_nil, setup, teardown),
        cmocka_unit_test(test_through_chain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
