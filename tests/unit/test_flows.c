/* Unit tests for core/flows.c (the flow table) and lua/lflows.c (mt.flows): keys from both
 * directions, IPv4 and IPv6, ICMP echo ids, timeouts, LRU eviction, a single hash chain, a full
 * table; and in Lua: the expiry callback, counted evictions, entries that are gone. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <cmocka.h>

#include <ev.h>
#include <lauxlib.h>
#include <lua.h>

#include "binding.h"
#include "moontun/config.h"
#include "moontun/flows.h"
#include "moontun/log.h"
#include "moontun/packet.h"
#include "moontun/proto.h"
#include "moontun/script.h"
#include "moontun/stats.h"
#include "testlib.h"

static uint8_t BUF[MT_PKT_BUFSIZE];
static struct mt_packet PKT;

/* A packet proto (6, 17, 1 or 58) from src:sport to dst:dport; addresses in text, IPv6 when
 * they hold a ':'. ICMP: an echo request (type 8/128) with id sport, or a reply when dport is
 * 0xffff. No checksums: nothing here reads them. */
static struct mt_packet *mk(uint8_t proto, const char *src, unsigned sport, const char *dst,
                            unsigned dport)
{
    bool v6 = strchr(src, ':') != NULL;
    size_t l3 = v6 ? 40 : 20, l4 = proto == 6 ? 20 : 8;
    mt_packet_init(&PKT, BUF, sizeof BUF, MT_HEADROOM);
    assert_int_equal(mt_packet_put(&PKT, l3 + l4), 0);
    uint8_t *p = PKT.data, *t = p + l3;
    memset(p, 0, l3 + l4);
    if (v6) {
        p[0] = 0x60;
        mt_test_put16(p + 4, (uint16_t)l4);
        p[6] = proto;
        p[7] = 64;
        assert_int_equal(inet_pton(AF_INET6, src, p + 8), 1);
        assert_int_equal(inet_pton(AF_INET6, dst, p + 24), 1);
    } else {
        p[0] = 0x45;
        mt_test_put16(p + 2, (uint16_t)(l3 + l4));
        p[8] = 64;
        p[9] = proto;
        assert_int_equal(inet_pton(AF_INET, src, p + 12), 1);
        assert_int_equal(inet_pton(AF_INET, dst, p + 16), 1);
    }
    if (proto == 1 || proto == 58) {
        bool reply = dport == 0xffff;
        t[0] = proto == 1 ? (reply ? 0 : 8) : (reply ? 129 : 128);
        mt_test_put16(t + 4, (uint16_t)sport);
    } else {
        mt_test_put16(t, (uint16_t)sport);
        mt_test_put16(t + 2, (uint16_t)dport);
        if (proto == 6)
            t[12] = 0x50;
    }
    PKT.link = MT_LINK_IP;
    PKT.dir = MT_DIR_EGRESS;
    return &PKT;
}

static struct mt_flow_key key(uint8_t proto, const char *src, unsigned sport, const char *dst,
                              unsigned dport)
{
    struct mt_flow_key k;
    assert_true(mt_flow_key_of(MT_FLOWS_BY_FLOW, mk(proto, src, sport, dst, dport), &k));
    return k;
}

/* k finds f, in the direction given. */
static void found(struct mt_flows *ft, const struct mt_flow_key *k, struct mt_flow *f, bool reply)
{
    bool got = !reply;
    assert_ptr_equal(mt_flows_find(ft, k, &got), f);
    assert_int_equal(got, reply);
}

static struct mt_flows *new_table(uint32_t max, double timeout)
{
    void *mem = malloc(mt_flows_size(max));
    assert_non_null(mem);
    return mt_flows_init(mem, max, timeout, MT_FLOWS_BY_FLOW, 42);
}

/* --- the core ------------------------------------------------------------------------------- */

static void test_both_directions_v4(void **state)
{
    struct mt_flows *ft = new_table(16, 30);
    struct mt_flow_key out = key(17, "10.0.0.2", 5353, "10.0.0.1", 53);
    struct mt_flow_key back = key(17, "10.0.0.1", 53, "10.0.0.2", 5353);
    bool reply = true;
    assert_null(mt_flows_find(ft, &out, &reply));
    struct mt_flow *f = mt_flows_insert(ft, &out, 100);
    assert_non_null(f);
    found(ft, &out, f, false);
    found(ft, &back, f, true);
    reply = true;
    mt_flows_touch(ft, f, reply, 60, 101);
    assert_int_equal(f->packets[1], 1);
    assert_int_equal(f->bytes[1], 60);
    assert_int_equal(f->packets[0], 0);
    /* one field off, in either direction: another flow */
    struct mt_flow_key other = key(17, "10.0.0.2", 5354, "10.0.0.1", 53);
    assert_null(mt_flows_find(ft, &other, &reply));
    other = key(6, "10.0.0.2", 5353, "10.0.0.1", 53);
    assert_null(mt_flows_find(ft, &other, &reply));
    other = key(17, "10.0.0.3", 53, "10.0.0.2", 5353);
    assert_null(mt_flows_find(ft, &other, &reply));
    assert_int_equal(ft->count, 1);
    free(ft);
}

static void test_v6_and_icmp(void **state)
{
    struct mt_flows *ft = new_table(16, 30);
    bool reply;
    struct mt_flow_key a = key(6, "fd00::2", 40000, "2001:db8::1", 443);
    struct mt_flow *f = mt_flows_insert(ft, &a, 0);
    struct mt_flow_key b = key(6, "2001:db8::1", 443, "fd00::2", 40000);
    found(ft, &b, f, true);
    assert_int_equal(f->key.ver, 6);
    /* an echo request and its reply share the id, in both families; the families differ */
    struct mt_flow_key ping = key(1, "10.0.0.2", 7, "10.0.0.1", 0);
    struct mt_flow *p = mt_flows_insert(ft, &ping, 0);
    struct mt_flow_key pong = key(1, "10.0.0.1", 7, "10.0.0.2", 0xffff);
    found(ft, &pong, p, true);
    assert_int_equal(p->key.sport, 7);
    struct mt_flow_key other_id = key(1, "10.0.0.1", 8, "10.0.0.2", 0xffff);
    assert_null(mt_flows_find(ft, &other_id, &reply));
    struct mt_flow_key ping6 = key(58, "fd00::2", 7, "fd00::1", 0);
    assert_null(mt_flows_find(ft, &ping6, &reply));
    /* a later fragment has no ports: its flow is (proto, addresses) */
    mk(17, "10.0.0.2", 1, "10.0.0.1", 2);
    PKT.data[6] = 0x00;
    PKT.data[7] = 0x10; /* fragment offset 128: not the first */
    mt_packet_changed(&PKT);
    struct mt_flow_key frag;
    assert_true(mt_flow_key_of(MT_FLOWS_BY_FLOW, &PKT, &frag));
    assert_int_equal(frag.sport, 0);
    assert_int_equal(frag.dport, 0);
    assert_int_equal(frag.proto, 17);
    /* not IP: no key */
    mk(17, "10.0.0.2", 1, "10.0.0.1", 2);
    PKT.data[0] = 0x20;
    mt_packet_changed(&PKT);
    assert_false(mt_flow_key_of(MT_FLOWS_BY_FLOW, &PKT, &frag));
    free(ft);
}

static void test_by_source(void **state)
{
    struct mt_flow_key a, b, c;
    assert_true(mt_flow_key_of(MT_FLOWS_BY_SRC, mk(6, "10.0.0.2", 1, "10.0.0.1", 2), &a));
    assert_true(mt_flow_key_of(MT_FLOWS_BY_SRC, mk(17, "10.0.0.2", 9, "10.9.9.9", 8), &b));
    assert_true(mt_flow_key_of(MT_FLOWS_BY_SRC, mk(17, "10.0.0.1", 2, "10.0.0.2", 1), &c));
    assert_memory_equal(&a, &b, sizeof a);
    assert_memory_not_equal(&a, &c, sizeof a);
}

static void test_timeouts(void **state)
{
    struct mt_flows *ft = new_table(8, 10);
    struct mt_flow_key a = key(17, "10.0.0.2", 1, "10.0.0.1", 2);
    struct mt_flow_key b = key(17, "10.0.0.2", 3, "10.0.0.1", 4);
    struct mt_flow *fa = mt_flows_insert(ft, &a, 100);
    struct mt_flow *fb = mt_flows_insert(ft, &b, 100);
    assert_true(fa->deadline == 110);
    mt_flows_touch(ft, fa, false, 1, 105);
    assert_true(fa->deadline == 115);
    mt_flows_set_timeout(fb, 2, 100); /* a short linger */
    uint32_t budget = MT_FLOWS_STEP;
    ft->sweep = MT_FLOW_NONE;
    assert_null(mt_flows_next_expired(ft, 101, &budget));
    budget = MT_FLOWS_STEP;
    assert_ptr_equal(mt_flows_next_expired(ft, 103, &budget), fb);
    mt_flows_release(ft, fb);
    assert_null(mt_flows_next_expired(ft, 103, &budget));
    ft->sweep = MT_FLOW_NONE;
    budget = MT_FLOWS_STEP;
    assert_ptr_equal(mt_flows_next_expired(ft, 116, &budget), fa);
    /* the budget bounds a sweep */
    budget = 0;
    ft->sweep = MT_FLOW_NONE;
    assert_null(mt_flows_next_expired(ft, 116, &budget));
    free(ft);
}

static void test_lru_victim(void **state)
{
    struct mt_flows *ft = new_table(3, 10);
    struct mt_flow *f[3];
    for (unsigned i = 0; i < 3; i++) {
        struct mt_flow_key k = key(6, "10.0.0.2", 1000 + i, "10.0.0.1", 80);
        f[i] = mt_flows_insert(ft, &k, 100 + i);
    }
    struct mt_flow_key k4 = key(6, "10.0.0.2", 2000, "10.0.0.1", 80);
    assert_null(mt_flows_insert(ft, &k4, 104)); /* full */
    assert_ptr_equal(mt_flows_victim(ft), f[0]);
    mt_flows_touch(ft, f[0], true, 1, 105); /* used again: f[1] is now the oldest */
    assert_ptr_equal(mt_flows_victim(ft), f[1]);
    uint32_t gen = f[1]->gen;
    mt_flows_release(ft, mt_flows_victim(ft));
    assert_int_equal(f[1]->gen, gen + 1);                  /* stale handles see it */
    assert_ptr_equal(mt_flows_insert(ft, &k4, 106), f[1]); /* the freed slot */
    assert_ptr_equal(mt_flows_victim(ft), f[2]);
    assert_int_equal(ft->count, 3);
    free(ft);
}

/* Every flow in one hash chain (as a peer that found the seed would aim them): each is found
 * from both sides, and unlinking from the middle of the chain keeps the rest. */
static void test_collisions(void **state)
{
    enum { N = 600 };
    struct mt_flows *ft = new_table(N, 10);
    ft->nbuckets = 1; /* one chain (the table has room for more) */
    struct mt_flow *f[N];
    bool reply;
    for (unsigned i = 0; i < N; i++) {
        struct mt_flow_key k = key(17, "10.0.0.2", 1 + i, "10.0.0.1", 53);
        f[i] = mt_flows_insert(ft, &k, 0);
        assert_non_null(f[i]);
    }
    for (unsigned i = 0; i < N; i += 2)
        mt_flows_release(ft, f[i]);
    for (unsigned i = 0; i < N; i++) {
        struct mt_flow_key k = key(17, "10.0.0.1", 53, "10.0.0.2", 1 + i);
        struct mt_flow *got = mt_flows_find(ft, &k, &reply);
        if (i % 2) {
            assert_ptr_equal(got, f[i]);
            assert_true(reply);
        } else {
            assert_null(got);
        }
    }
    assert_int_equal(ft->count, N / 2);
    free(ft);
}

static void test_max(void **state)
{
    assert_int_equal(mt_flows_size(0), 0);
    assert_int_equal(mt_flows_size(MT_FLOWS_MAX + 1), 0);
    struct mt_flows *ft = new_table(100, 10);
    for (unsigned i = 0; i < 100; i++) {
        struct mt_flow_key k = key(6, "fd00::2", 1 + i, "fd00::1", 80);
        assert_non_null(mt_flows_insert(ft, &k, 0));
    }
    struct mt_flow_key k = key(6, "fd00::2", 999, "fd00::1", 80);
    assert_null(mt_flows_insert(ft, &k, 0));
    assert_int_equal(ft->count, 100);
    free(ft);
}

/* --- mt.flows in Lua ------------------------------------------------------------------------ */

static struct mt_config CFG;
static struct mt_stats ST;
static struct mt_host HOST;
static double NOW = 1000;
static char *path;

static double fake_now(void *ctx)
{
    return NOW;
}

/* Loads src as the one script, with the clock above (no event loop: sweep=0 in src). */
static struct mt_scripts *load(const char *src)
{
    char tmpl[] = "/tmp/mtflowsXXXXXX.lua", err[512] = "";
    int fd = mkstemps(tmpl, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
    close(fd);
    path = strdup(tmpl);
    memset(&CFG, 0, sizeof CFG);
    memset(&ST, 0, sizeof ST);
    CFG.transport = MT_TRANSPORT_UDP;
    CFG.on_error = MT_ON_ERROR_PASS;
    CFG.lua_budget = 1000000;
    CFG.lua_mem_mb = 16;
    CFG.scripts[0].path = path;
    CFG.nscripts = 1;
    memset(&HOST, 0, sizeof HOST);
    HOST.cfg = &CFG;
    HOST.stats = &ST;
    HOST.now = fake_now;
    struct mt_scripts *s = NULL;
    int rc = mt_scripts_load(&s, &CFG, &HOST, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "load failed: %s\n", err);
    assert_int_equal(rc, 0);
    return s;
}

static void unload(struct mt_scripts *s)
{
    mt_scripts_free(s);
    unlink(path);
    free(path);
}

/* Runs the script's egress handler on pkt with `step(pkt, mt)` running body, which asserts:
 * it returns mt.DROP when all went well (an error passes: on_error=pass). */
static void step(struct mt_scripts *s, const char *body, struct mt_packet *pkt)
{
    lua_State *L = s->L;
    char code[2048];
    snprintf(code, sizeof code, "function step(pkt, mt)\n%s  return mt.DROP\nend", body);
    assert_int_equal(luaL_loadstring(L, code), LUA_OK);
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->env_refs[0]);
    lua_setupvalue(L, -2, 1); /* _ENV: the script's globals */
    assert_int_equal(lua_pcall(L, 0, 0, 0), LUA_OK);
    struct mt_peer *route = NULL;
    uint64_t errors = ST.script_errors;
    enum mt_verdict v = mt_scripts_egress(s, pkt, &route);
    assert_int_equal(ST.script_errors, errors);
    assert_int_equal(v, MT_VERDICT_DROP);
}

static const char FLOWS_SCRIPT[] =
    "local mt = require 'moontun'\n"
    "flows = mt.flows { max = 2, timeout = 10, sweep = 0 }\n"
    "ended = {}\n"
    "flows:on_expire(function(e, why) ended[#ended + 1] = why .. ' ' .. e.sport end)\n"
    "return { egress = function(pkt) return step(pkt, mt) end }\n";

static void test_lua_expiry_and_eviction(void **state)
{
    struct mt_scripts *s = load(FLOWS_SCRIPT);
    step(s,
         "  local e, reply, new = flows:add(pkt)\n"
         "  assert(new and not reply and e.sport == 1 and e.proto == 'udp' and e.live)\n"
         "  assert(e.src == '10.0.0.2' and e.dst == '10.0.0.1' and e.packets == 1)\n"
         "  e.value = { note = 'one' }\n"
         "  first = e\n",
         mk(17, "10.0.0.2", 1, "10.0.0.1", 2));
    step(s,
         "  local e, reply = flows:lookup(pkt)\n"
         "  assert(e == first and reply and e.rpackets == 1 and e.value.note == 'one')\n"
         "  assert(#flows == 1)\n",
         mk(17, "10.0.0.1", 2, "10.0.0.2", 1));
    NOW += 5;
    /* two more flows in a table of two: the least recently used (the first) is evicted */
    step(s, "  assert(flows:insert(pkt, 'v3'))\n", mk(17, "10.0.0.2", 3, "10.0.0.1", 4));
    step(s,
         "  local e = flows:insert(pkt)\n"
         "  assert(e and e.sport == 5)\n"
         "  assert(ended[1] == 'evicted 1', tostring(ended[1]))\n"
         "  local st = flows:stats()\n"
         "  assert(st.count == 2 and st.evictions == 1 and st.expirations == 0 and st.max == 2)\n"
         "  assert(first.live == false)\n"
         "  local ok, err = pcall(function() return first.sport end)\n"
         "  assert(not ok and err:find('gone'), err)\n"
         "  local n = 0\n"
         "  for f in flows:each() do n = n + 1 end\n"
         "  assert(n == 2)\n",
         mk(17, "10.0.0.2", 5, "10.0.0.1", 6));
    /* past their timeout: a sweep ends both, each through on_expire; then a lookup misses */
    NOW += 11;
    step(s,
         "  assert(flows:sweep() == 2)\n"
         "  assert(ended[2] and ended[3] and ended[2]:find('^expired'), tostring(ended[2]))\n"
         "  assert(#flows == 0 and flows:stats().expirations == 2)\n"
         "  assert(flows:lookup(pkt) == nil)\n",
         mk(17, "10.0.0.2", 5, "10.0.0.1", 6));
    unload(s);
}

static void test_lua_timeout_remove_save(void **state)
{
    struct mt_scripts *s = load(FLOWS_SCRIPT);
    step(s,
         "  local e = flows:insert(pkt, 7)\n"
         "  assert(e:timeout() == 10)\n"
         "  e:timeout(100)\n"
         "  saved = flows:save()\n"
         "  assert(e:remove() == true and e:remove() == false and #flows == 0)\n"
         "  assert(#ended == 0)\n" /* a removal is not an expiry */
         "  assert(flows:restore(saved) == 1)\n"
         "  local again = flows:lookup(pkt)\n"
         "  assert(again and again ~= e and again.value == 7 and again:timeout() == 100)\n"
         "  assert(flows:restore(saved) == 0)\n" /* already there */
         "  assert(flows:restore({ format = 'other', data = '' }) == 0)\n",
         mk(6, "fd00::2", 40000, "fd00::1", 22));
    NOW += 50; /* inside the 100 s the entry was given */
    step(s,
         "  local e, reply = flows:lookup(pkt)\n"
         "  assert(e and reply and e.proto == 'tcp' and e.src == 'fd00::2')\n",
         mk(6, "fd00::1", 22, "fd00::2", 40000));
    unload(s);
}

int main(void)
{
    mt_log_level = MT_LOG_ERROR;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_both_directions_v4),
        cmocka_unit_test(test_v6_and_icmp),
        cmocka_unit_test(test_by_source),
        cmocka_unit_test(test_timeouts),
        cmocka_unit_test(test_lru_victim),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_max),
        cmocka_unit_test(test_lua_expiry_and_eviction),
        cmocka_unit_test(test_lua_timeout_remove_save),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
