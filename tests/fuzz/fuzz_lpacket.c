/* Fuzzes the Lua packet binding (lua/lpacket.c) through the real script chain: one Lua state,
 * loaded once with a fixed script whose egress and ingress handlers interpret a fuzzer-chosen
 * "program" of accessor, mutator and header-view calls with fuzzer-chosen offsets, lengths and
 * values against a fuzzer-chosen packet. Every call runs under pcall (bounds errors are
 * expected); what must hold is checked after each one, in Lua against what C sees and in C:
 * the view stays inside its buffer, reads return the packet's bytes, writes read back, header
 * writes keep checksums valid, views agree with the parser, a kept packet expires.
 *
 * The buffer outside [data, data + len) is poisoned for ASan while the script runs, so a
 * binding that reads or writes past the packet (but inside the buffer) is caught too; the
 * script opens the whole buffer before the calls that may grow the packet.
 *
 * Input: [flags][program length][program][packet]. flags: bit 0 tap (Ethernet) link, bit 1
 * ingress instead of egress, bits 2-3 the headroom (256, 0, 3, or all: no tailroom). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <sanitizer/asan_interface.h>

#include "moontun/config.h"
#include "moontun/log.h"
#include "moontun/packet.h"
#include "moontun/proto.h"
#include "moontun/script.h"
#include "moontun/stats.h"

#include "binding.h"

static const char SCRIPT[] =
    "local mt = require 'moontun'\n"
    "local VIEWS = { 'eth', 'ip', 'tcp', 'udp', 'icmp' }\n"
    "local FIELDS = { 'src', 'dst', 'type', 'version', 'hlen', 'tos', 'len', 'id', 'ttl',\n"
    "  'proto', 'sport', 'dport', 'seq', 'ack', 'flags', 'window', 'code', 'nosuch', 1, true }\n"
    "local TEXT = { '10.0.0.1', '192.0.2.255', '0.0.0.0', '255.255.255.255', '::', '::1',\n"
    "  'fd00::2', '2001:db8::ffff:1', '1.2.3', 'not an address', '02:00:00:00:00:01',\n"
    "  'ff-ff-ff-ff-ff-ff', 'aa:bb:cc:dd:ee:f', '', '10.0.0.1\\0x', '1::2::3' }\n"
    "-- what reads back as written\n"
    "local CANON = {}\n"
    "for i = 1, 8 do CANON[TEXT[i]] = true end\n"
    "CANON['02:00:00:00:00:01'] = true\n"
    "local SIZES = { 255, 256, 1024, 2048, 65279, 65535, 65536, 70000 }\n"
    "local VERDICTS = { mt.PASS, mt.DROP, mt.REPLY }\n"
    "local F, P, pos, pkt\n"
    "local SV -- a view kept across operations (and packets)\n"
    "\n"
    "local function must(cond, what)\n"
    "  if not cond then F.fail(what) end\n"
    "end\n"
    "local function I(v) return math.tointeger(v) end\n"
    "local function byte()\n"
    "  pos = pos + 1\n"
    "  return string.byte(P, pos) or 0\n"
    "end\n"
    "local function u(n)\n"
    "  local v = 0\n"
    "  for _ = 1, n do v = v << 8 | byte() end\n"
    "  return v\n"
    "end\n"
    "local function special(k)\n"
    "  local len = #pkt\n"
    "  local S = { -1, -2, len, len - 1, len - 2, len - 4, len + 1, 255, 256, 65535, 65536,\n"
    "    0xfffff, 0x100000, 0xffffffff, 0x100000000, math.maxinteger, math.mininteger, 1e12,\n"
    "    2 ^ 53, 1.5, 0 / 0, '12', 'x', true, {}, -0.0, 3.0, false }\n"
    "  return S[k % 29 + 1] -- 29: nil\n"
    "end\n"
    "local function off()\n"
    "  local b = byte()\n"
    "  if b < 0x80 then return b end\n"
    "  if b < 0xc0 then return (b - 0x80) << 8 | byte() end\n"
    "  return special(b - 0xc0)\n"
    "end\n"
    "local function val()\n"
    "  local b = byte()\n"
    "  local m = b >> 6\n"
    "  if m == 0 then return b end\n"
    "  if m == 1 then return u(1) end\n"
    "  if m == 2 then return b & 1 == 0 and u(2) or u(4) end\n"
    "  return special(b & 63)\n"
    "end\n"
    "local function str()\n"
    "  local b = byte()\n"
    "  if b < 0xf0 then\n"
    "    local n = b % 48\n"
    "    local s = P:sub(pos + 1, pos + n)\n"
    "    pos = pos + n\n"
    "    return s\n"
    "  end\n"
    "  -- the big ones (past what a packet can hold) rarely: they cost a copy each\n"
    "  return string.rep('\\171', SIZES[b < 0xfc and b % 4 + 1 or b % 4 + 5])\n"
    "end\n"
    "local function view()\n"
    "  local k = byte() % 6\n"
    "  if k == 5 then return SV end\n"
    "  return pkt[VIEWS[k + 1]]\n"
    "end\n"
    "\n"
    "local OPS = {\n"
    "  function() local o = off(); must(pkt:u8(o) == F.peek(o), 'u8') end,\n"
    "  function()\n"
    "    local o = off(); local v = pkt:u16(o)\n"
    "    must(v == F.peek(o) << 8 | F.peek(o + 1), 'u16')\n"
    "  end,\n"
    "  function()\n"
    "    local o = off(); local v = pkt:u32(o)\n"
    "    must(v == F.peek(o) << 24 | F.peek(o + 1) << 16 | F.peek(o + 2) << 8 | F.peek(o + 3),\n"
    "      'u32')\n"
    "  end,\n"
    "  function() local o, v = off(), val(); pkt:set_u8(o, v); must(pkt:u8(o) == I(v), 'set_u8') "
    "end,\n"
    "  function()\n"
    "    local o, v = off(), val(); pkt:set_u16(o, v); must(pkt:u16(o) == I(v), 'set_u16')\n"
    "  end,\n"
    "  function()\n"
    "    local o, v = off(), val(); pkt:set_u32(o, v); must(pkt:u32(o) == I(v), 'set_u32')\n"
    "  end,\n"
    "  function()\n"
    "    local k, o, n = byte() % 3, off(), off()\n"
    "    if k == 0 then must(pkt:bytes() == F.bytes(0, #pkt), 'bytes()')\n"
    "    elseif k == 1 then must(pkt:bytes(o) == F.bytes(I(o), #pkt - I(o)), 'bytes(o)')\n"
    "    else must(pkt:bytes(o, n) == F.bytes(I(o), I(n)), 'bytes(o, n)') end\n"
    "  end,\n"
    "  function()\n"
    "    local s, o = str(), off(); pkt:set_bytes(o, s)\n"
    "    must(F.bytes(I(o), #s) == s, 'set_bytes')\n"
    "  end,\n"
    "  function()\n"
    "    local n, old = val(), #pkt\n"
    "    F.open(); pkt:resize(n)\n"
    "    n = I(n)\n"
    "    must(#pkt == n, 'resize: length')\n"
    "    if n > old then must(F.zero(old, n - old), 'resize: "
    "zeroes') end\n"
    "  end,\n"
    "  function()\n"
    "    local s, old = str(), #pkt\n"
    "    F.open(); pkt:push(s)\n"
    "    must(#pkt == old + #s and F.bytes(0, #s) == s, 'push')\n"
    "  end,\n"
    "  function() local n, old = off(), #pkt; pkt:pull(n); must(#pkt == old - I(n), 'pull') end,\n"
    "  function()\n"
    "    local s, old = str(), #pkt\n"
    "    F.open(); pkt:append(s)\n"
    "    must(#pkt == old + #s and F.bytes(old, #s) == s, 'append')\n"
    "  end,\n"
    "  function()\n"
    "    local ok = pkt:checksum()\n"
    "    must(type(ok) == 'boolean', 'checksum result')\n"
    "    must(F.csum_ok(), 'checksum() left a checksum that does not verify')\n"
    "  end,\n"
    "  function() must(tostring(pkt) == F.summary(), 'tostring') end,\n"
    "  function() must(#pkt == F.len(), '#pkt') end,\n"
    "  function() -- read a view field\n"
    "    local v = view()\n"
    "    if v == nil then return end\n"
    "    local f = v[FIELDS[byte() % #FIELDS + 1]]\n"
    "    local t = type(f)\n"
    "    must(t == 'nil' or t == 'string' or math.type(f) == 'integer', 'field type')\n"
    "  end,\n"
    "  function() -- write a view field\n"
    "    local v = view()\n"
    "    if v == nil then return end\n"
    "    local f = FIELDS[byte() % #FIELDS + 1]\n"
    "    local kind = byte()\n"
    "    local value\n"
    "    if kind < 0x50 then value = TEXT[kind % #TEXT + 1] else value = val() end\n"
    "    local before, zero6 = F.csum_ok()\n"
    "    local name = tostring(v)\n"
    "    v[f] = value\n"
    "    if before and not zero6 and not name:find('eth', 1, true) then\n"
    "      must(F.csum_ok(), 'checksum broken by writing ' .. name .. ' ' .. tostring(f))\n"
    "    end\n"
    "    local back = v[f]\n"
    "    if type(value) == 'string' and CANON[value] then\n"
    "      must(back == value, 'read back ' .. tostring(f))\n"
    "    elseif type(value) ~= 'string' and I(value) then\n"
    "      must(back == I(value), 'read back ' .. tostring(f))\n"
    "    end\n"
    "  end,\n"
    "  function() SV = pkt[VIEWS[byte() % 5 + 1]] end,\n"
    "  function() -- packet fields and misuse\n"
    "    local k = byte() % 7\n"
    "    if k == 0 then must(pkt.dir == (F.ingress() and 'ingress' or 'egress'), 'dir')\n"
    "    elseif k == 1 then must((pkt.peer == nil) == not F.ingress(), 'peer')\n"
    "    elseif k == 2 then local _ = pkt[off()]\n"
    "    elseif k == 3 then pkt.ip = 1; F.fail('pkt field assignment did not raise')\n"
    "    elseif k == 4 then pkt.u8(SV or 'x', 0); F.fail('u8 on a non-packet did not raise')\n"
    "    elseif k == 5 then local v = view(); if v then v.u8 = 3; F.fail('v.u8 = 3 did not raise') "
    "end\n"
    "    else local v = view(); if v then must(tostring(v):find('header', 1, true), 'view name') "
    "end end\n"
    "  end,\n"
    "  function() -- the views agree with the parser\n"
    "    local l3, l4, proto, ipver = F.parse()\n"
    "    if pkt.eth then must(F.tap() and #pkt >= 14, 'eth view') end\n"
    "    local ip = pkt.ip\n"
    "    if ip then must(l3 >= 0 and ip.version == ipver, 'ip view') end\n"
    "    if pkt.tcp then must(ip and l4 >= 0 and proto == 6, 'tcp view') end\n"
    "    if pkt.udp then must(ip and l4 >= 0 and proto == 17, 'udp view') end\n"
    "    if pkt.icmp then\n"
    "      must(ip and l4 >= 0 and (proto == 1 or proto == 58), 'icmp view')\n"
    "    end\n"
    "  end,\n"
    "}\n"
    "\n"
    "local function run(p)\n"
    "  F, P, pos, pkt = FUZZ, PROG, 0, p\n"
    "  while pos < #P do\n"
    "    local op = OPS[byte() % #OPS + 1]\n"
    "    pcall(op)\n"
    "    F.check()\n"
    "  end\n"
    "  OLD, OLDV = p, SV\n"
    "  return VERDICTS[byte() % 4 + 1]\n"
    "end\n"
    "\n"
    "-- Called by the harness between packets: what a handler kept has expired.\n"
    "function fuzz_after()\n"
    "  if OLD == nil then return end\n"
    "  local function dead(f, ...)\n"
    "    local ok, err = pcall(f, ...)\n"
    "    must(not ok and tostring(err):find('expired', 1, true), 'kept packet still usable')\n"
    "  end\n"
    "  dead(function() return OLD:u8(0) end)\n"
    "  dead(function() return #OLD end)\n"
    "  dead(function() return tostring(OLD) end)\n"
    "  dead(function() return OLD.ip end)\n"
    "  dead(function() OLD:resize(0) end)\n"
    "  dead(function() OLD:push('xx') end)\n"
    "  if OLDV then\n"
    "    dead(function() return OLDV.ttl end)\n"
    "    dead(function() OLDV.ttl = 1 end)\n"
    "    dead(function() return tostring(OLDV) end)\n"
    "  end\n"
    "end\n"
    "\n"
    "return { egress = run, ingress = function(p, peer) return run(p) end }\n";

static struct mt_scripts *S;
static struct mt_config CFG;
static struct mt_host HOST;
static struct mt_stats ST;
static struct mt_peer PEER;
static struct mt_packet PKT;
static uint8_t *BUF; /* MT_PKT_BUFSIZE bytes */
static enum mt_link LINK;
static enum mt_dir DIR;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_lpacket: check failed at line %d: %s\n", __LINE__, #cond);       \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* --- the fake host ------------------------------------------------------------------------- */

static int fake_inject(void *ctx, const uint8_t *data, size_t len)
{
    return 0;
}

static int fake_send(void *ctx, struct mt_peer *peer, const uint8_t *data, size_t len)
{
    return 0;
}

static size_t fake_peers(void *ctx, struct mt_peer **out, size_t max)
{
    if (max == 0)
        return 0;
    out[0] = &PEER;
    return 1;
}

/* --- the packet's invariants and the poisoned buffer ---------------------------------------- */

static void open_buffer(void)
{
    ASAN_UNPOISON_MEMORY_REGION(BUF, MT_PKT_BUFSIZE);
}

/* packet.h's promise: the view never leaves its buffer and never outgrows the framing. */
static void check_packet(void)
{
    CHECK(PKT.base == BUF && PKT.cap == MT_PKT_BUFSIZE);
    CHECK(PKT.data >= PKT.base && PKT.data <= PKT.base + PKT.cap);
    CHECK(PKT.len <= PKT.cap - (size_t)(PKT.data - PKT.base));
    CHECK(PKT.len <= MT_MAX_PACKET);
    CHECK(PKT.link == LINK && PKT.dir == DIR);
    CHECK(PKT.peer == (DIR == MT_DIR_INGRESS ? &PEER : NULL));
}

static void close_buffer(void)
{
    open_buffer();
    size_t head = (size_t)(PKT.data - PKT.base);
    ASAN_POISON_MEMORY_REGION(BUF, head);
    ASAN_POISON_MEMORY_REGION(PKT.data + PKT.len, PKT.cap - head - PKT.len);
}

/* --- FUZZ: what the script can ask the harness ---------------------------------------------- */

static int f_fail(lua_State *L)
{
    luaL_traceback(L, L, NULL, 1);
    fprintf(stderr, "fuzz_lpacket: %s\n%s\n", luaL_optstring(L, 1, "?"), lua_tostring(L, -1));
    abort();
}

static int f_check(lua_State *L)
{
    check_packet();
    close_buffer();
    return 0;
}

static int f_open(lua_State *L)
{
    open_buffer();
    return 0;
}

/* The byte at an offset the script already used successfully, or -1 out of bounds (so a
 * comparison with it fails the check). */
static int f_peek(lua_State *L)
{
    lua_Integer i = luaL_checkinteger(L, 1);
    lua_pushinteger(L, i >= 0 && (lua_Unsigned)i < PKT.len ? PKT.data[i] : -1);
    return 1;
}

static int f_bytes(lua_State *L)
{
    lua_Integer off = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
    if (off < 0 || n < 0 || (lua_Unsigned)off > PKT.len || (lua_Unsigned)n > PKT.len - off)
        lua_pushnil(L);
    else
        lua_pushlstring(L, (const char *)PKT.data + off, (size_t)n);
    return 1;
}

/* Whether n bytes at off are all zero (without making two strings to compare). */
static int f_zero(lua_State *L)
{
    lua_Integer off = luaL_checkinteger(L, 1), n = luaL_checkinteger(L, 2);
    bool zero =
        off >= 0 && n >= 0 && (lua_Unsigned)off <= PKT.len && (lua_Unsigned)n <= PKT.len - off;
    for (lua_Integer i = 0; zero && i < n; i++)
        zero = PKT.data[off + i] == 0;
    lua_pushboolean(L, zero);
    return 1;
}

static int f_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)PKT.len);
    return 1;
}

/* Whether every checksum verifies, and whether the packet is IPv6 UDP with a zero checksum:
 * proto.c judges that one as a checksum while the views keep a zero as "none" (RFC 6935
 * allows it for tunnels), so a header write there cannot be held to checksums_ok. */
static int f_csum_ok(lua_State *L)
{
    struct mt_hdrs h;
    mt_proto_parse(PKT.data, PKT.len, PKT.link, &h);
    bool zero6 = h.ipver == 6 && h.l4 >= 0 && h.l4proto == MT_IPPROTO_UDP &&
                 PKT.data[h.l4 + 6] == 0 && PKT.data[h.l4 + 7] == 0;
    lua_pushboolean(L, mt_proto_checksums_ok(PKT.data, PKT.len, PKT.link));
    lua_pushboolean(L, zero6);
    return 2;
}

static int f_summary(lua_State *L)
{
    char buf[256];
    mt_proto_summary(PKT.data, PKT.len, PKT.link, buf, sizeof buf);
    lua_pushstring(L, buf);
    return 1;
}

static int f_parse(lua_State *L)
{
    struct mt_hdrs h;
    mt_proto_parse(PKT.data, PKT.len, PKT.link, &h);
    lua_pushinteger(L, h.l3);
    lua_pushinteger(L, h.l4);
    lua_pushinteger(L, h.l4proto);
    lua_pushinteger(L, h.ipver);
    return 4;
}

static int f_tap(lua_State *L)
{
    lua_pushboolean(L, PKT.link == MT_LINK_ETH);
    return 1;
}

static int f_ingress(lua_State *L)
{
    lua_pushboolean(L, DIR == MT_DIR_INGRESS);
    return 1;
}

static const luaL_Reg fuzz_funcs[] = {
    {"fail", f_fail},       {"check", f_check}, {"open", f_open}, {"peek", f_peek},
    {"bytes", f_bytes},     {"zero", f_zero},   {"len", f_len},   {"csum_ok", f_csum_ok},
    {"summary", f_summary}, {"parse", f_parse}, {"tap", f_tap},   {"ingress", f_ingress},
    {NULL, NULL},
};

/* --- libFuzzer ------------------------------------------------------------------------------ */

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    mt_log_level = MT_LOG_ERROR; /* handler errors are expected (and rate-limited) */
    BUF = malloc(MT_PKT_BUFSIZE);
    CHECK(BUF != NULL);

    char path[] = "/tmp/fuzz_lpacketXXXXXX.lua";
    int fd = mkstemps(path, 4);
    CHECK(fd >= 0);
    CHECK(write(fd, SCRIPT, sizeof SCRIPT - 1) == (ssize_t)(sizeof SCRIPT - 1));
    close(fd);

    CFG.port = 55555;
    CFG.transport = MT_TRANSPORT_UDP;
    CFG.mtu = 1400;
    CFG.on_error = MT_ON_ERROR_DROP;
    CFG.lua_budget = 10000000;
    CFG.lua_mem_mb = 64;
    CFG.lua_time_ms = 10000; /* a sanitized harness on a busy machine: the budget bounds it */
    CFG.max_peers = 16;
    CFG.scripts[0].path = strdup(path);
    CFG.nscripts = 1;
    snprintf(PEER.addr, sizeof PEER.addr, "192.0.2.1:55555");
    snprintf(PEER.name, sizeof PEER.name, "fuzz");
    PEER.id = 1;
    PEER.up = true;
    HOST.ctx = NULL;
    HOST.loop = NULL;
    HOST.cfg = &CFG;
    HOST.stats = &ST;
    HOST.inject = fake_inject;
    HOST.send = fake_send;
    HOST.peers = fake_peers;

    char err[512] = "";
    int rc = mt_scripts_load(&S, &CFG, &HOST, err, sizeof err);
    unlink(path);
    if (rc != 0) {
        fprintf(stderr, "fuzz_lpacket: the harness script does not load: %s\n", err);
        abort();
    }
    /* The script's globals are its own environment, not the state's global table. */
    lua_rawgeti(S->L, LUA_REGISTRYINDEX, S->env_refs[0]);
    luaL_newlib(S->L, fuzz_funcs);
    lua_setfield(S->L, -2, "FUZZ");
    lua_pop(S->L, 1);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* the core's, none, a little, and all of it (so no tailroom) */
    static const size_t headrooms[4] = {MT_HEADROOM, 0, 3, MT_PKT_BUFSIZE};
    if (size < 2)
        return 0;
    uint8_t flags = data[0];
    size_t plen = data[1];
    if (plen > size - 2)
        plen = size - 2;
    const uint8_t *prog = data + 2, *bytes = prog + plen;
    size_t len = size - 2 - plen;
    if (len > MT_MAX_PACKET)
        return 0;

    LINK = flags & 1 ? MT_LINK_ETH : MT_LINK_IP;
    DIR = flags & 2 ? MT_DIR_INGRESS : MT_DIR_EGRESS;
    size_t head = headrooms[(flags >> 2) & 3];
    if (head > MT_PKT_BUFSIZE - len)
        head = MT_PKT_BUFSIZE - len;
    open_buffer();
    mt_packet_init(&PKT, BUF, MT_PKT_BUFSIZE, head);
    CHECK(mt_packet_put(&PKT, len) == 0);
    memcpy(PKT.data, bytes, len);
    PKT.link = LINK;
    PKT.dir = DIR;
    PKT.peer = DIR == MT_DIR_INGRESS ? &PEER : NULL;

    lua_State *L = S->L;
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->env_refs[0]); /* the script's globals */
    lua_pushlstring(L, (const char *)prog, plen);
    lua_setfield(L, -2, "PROG");
    lua_pop(L, 1);

    close_buffer();
    struct mt_peer *route = NULL;
    enum mt_verdict v = DIR == MT_DIR_INGRESS ? mt_scripts_ingress(S, &PKT, &route)
                                              : mt_scripts_egress(S, &PKT, &route);
    check_packet();
    open_buffer();
    CHECK(v == MT_VERDICT_PASS || v == MT_VERDICT_DROP || v == MT_VERDICT_REPLY);
    CHECK(route == NULL);

    /* Outside any handler: what the script kept must refuse to work. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, S->env_refs[0]);
    lua_getfield(L, -1, "fuzz_after");
    lua_remove(L, -2);
    CHECK(mt__scripts_call(S, L, 0, 0, "fuzz_after", -1) == MT_CALL_OK);
    lua_settop(L, 0);
    /* Free this input's garbage now: runs stay independent of each other, and libFuzzer's
     * leak check (which runs whenever an input mallocs more than it frees) stays quiet. */
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}
