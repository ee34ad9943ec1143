/* The moontun.test module that test files require: chains of scripts loaded exactly as -S
 * loads them (each in its own Lua state, as in the tunnel), packets run through them one at a
 * time, fake peers, the virtual clock, the scripts' log lines, a decoder for the packets that
 * come out, and assertions whose messages say what differed. */
#include "ltest.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "moontun/addr.h"
#include "moontun/packet.h"
#include "moontun/proto.h"

#include "bytes.h"
#include "binding.h"

#define TCHAIN_META    "moontun.test.chain"
#define TPEER_META     "moontun.test.peer"
#define MAX_RECORDS    4096 /* injected/sent packets kept between two reads */
#define MAX_CHAIN_ARGS 8

/* --- logs ---------------------------------------------------------------------------------- */

void mt__ltest_log(struct mt_trun *run, const char *line)
{
    if (run->logs == NULL)
        run->logs = calloc(MT_TEST_MAX_LOGS, sizeof *run->logs);
    char *copy = run->logs != NULL && run->nlogs < MT_TEST_MAX_LOGS ? strdup(line) : NULL;
    if (copy == NULL) {
        run->lost_logs++;
        return;
    }
    run->logs[run->nlogs++] = copy;
}

void mt__ltest_clear_logs(struct mt_trun *run)
{
    for (size_t i = 0; i < run->nlogs; i++)
        free(run->logs[i]);
    run->nlogs = 0;
    run->lost_logs = 0;
}

static struct mt_trun *run_of(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

/* T.logs() -> the lines the scripts logged since the last call, oldest first */
static int t_logs(lua_State *L)
{
    struct mt_trun *run = run_of(L);
    lua_createtable(L, (int)run->nlogs, 0);
    for (size_t i = 0; i < run->nlogs; i++) {
        lua_pushstring(L, run->logs[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (run->lost_logs > 0) {
        lua_pushfstring(L, "(%d more lines not kept)", (int)run->lost_logs);
        lua_rawseti(L, -2, (lua_Integer)run->nlogs + 1);
    }
    mt__ltest_clear_logs(run);
    return 1;
}

/* --- peers --------------------------------------------------------------------------------- */

/* Pushes the test-side object of a peer (one per struct mt_peer, made on first use). */
static void push_peer(lua_State *L, struct mt_trun *run, struct mt_peer *p)
{
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->peers_ref);
    if (lua_rawgetp(L, -1, p) == LUA_TNIL) {
        lua_pop(L, 1);
        struct mt_peer **u = lua_newuserdatauv(L, sizeof *u, 0);
        *u = p;
        luaL_setmetatable(L, TPEER_META);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, -3, p);
    }
    lua_remove(L, -2);
}

static struct mt_peer *check_peer(lua_State *L, int idx)
{
    return *(struct mt_peer **)luaL_checkudata(L, idx, TPEER_META);
}

/* T.peer{ addr = "192.0.2.7:40000", name = "branch1" } */
static int t_peer(lua_State *L)
{
    struct mt_trun *run = run_of(L);
    char addr[MT_PEER_ADDRSTRLEN];
    const char *name = NULL;

    snprintf(addr, sizeof addr, "192.0.2.%d:40000", (int)run->vh.npeers + 1);
    if (!lua_isnoneornil(L, 1)) {
        luaL_checktype(L, 1, LUA_TTABLE);
        if (lua_getfield(L, 1, "addr") != LUA_TNIL) {
            size_t n;
            const char *a = luaL_checklstring(L, -1, &n);
            luaL_argcheck(L, n > 0 && n < sizeof addr, 1, "addr must be \"host:port\"");
            memcpy(addr, a, n + 1);
        }
        if (lua_getfield(L, 1, "name") != LUA_TNIL) {
            size_t n;
            name = luaL_checklstring(L, -1, &n);
            luaL_argcheck(L, n < 64, 1, "name must be at most 63 bytes");
        }
    }
    struct mt_peer *p = mt_vhost_peer(&run->vh, addr, name);
    if (p == NULL)
        return luaL_error(L, "T.peer: at most %d peers per test file", MT_VHOST_MAX_PEERS);
    push_peer(L, run, p);
    return 1;
}

struct mt_tchain {
    struct mt_trun *run;
    struct mt_scripts *s;
    bool open;
    bool tap;
    struct mt_config cfg;
    struct mt_stats stats;
    struct mt_host host;
    uint8_t *buf;
    struct record {
        struct mt_peer *peer; /* NULL: injected */
        char *bytes;
        size_t len;
    } * recs;
    size_t nrecs;
    unsigned long lost_recs;
    struct mt_tchain *next;
};

/* peer:down(): the peer goes away; every chain is told, as the core tells it */
static int tpeer_down(lua_State *L)
{
    struct mt_peer *p = check_peer(L, 1);
    struct mt_trun *run = run_of(L);
    p->up = false;
    for (struct mt_tchain *c = run->chains; c != NULL; c = c->next)
        mt_scripts_peer_gone(c->s, p);
    return 0;
}

static int tpeer_index(lua_State *L)
{
    struct mt_peer *p = check_peer(L, 1);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "addr") == 0)
        lua_pushstring(L, p->addr);
    else if (strcmp(k, "name") == 0)
        lua_pushstring(L, p->name);
    else if (strcmp(k, "id") == 0)
        lua_pushinteger(L, p->id);
    else if (strcmp(k, "up") == 0)
        lua_pushboolean(L, p->up);
    else if (strcmp(k, "down") == 0)
        lua_pushvalue(L, lua_upvalueindex(2)); /* the method, bound to run */
    else
        return luaL_error(L, "test peer has no field '%s' (addr name id up down)", k);
    return 1;
}

static int tpeer_tostring(lua_State *L)
{
    struct mt_peer *p = check_peer(L, 1);
    lua_pushfstring(L, "peer %d %s (%s)%s", (int)p->id, p->name, p->addr, p->up ? "" : " (gone)");
    return 1;
}

/* --- chains -------------------------------------------------------------------------------- */

static void record(struct mt_tchain *c, struct mt_peer *peer, const uint8_t *data, size_t len)
{
    if (c->recs == NULL)
        c->recs = calloc(MAX_RECORDS, sizeof *c->recs);
    char *copy = c->recs != NULL && c->nrecs < MAX_RECORDS ? malloc(len) : NULL;
    if (copy == NULL) {
        c->lost_recs++;
        return;
    }
    memcpy(copy, data, len);
    c->recs[c->nrecs++] = (struct record){peer, copy, len};
}

static int chain_inject(void *ctx, const uint8_t *data, size_t len)
{
    record(ctx, NULL, data, len);
    return 0;
}

static int chain_send(void *ctx, struct mt_peer *peer, const uint8_t *data, size_t len)
{
    record(ctx, peer, data, len);
    return 0;
}

static double chain_now(void *ctx)
{
    return ((struct mt_tchain *)ctx)->run->vh.now;
}

static void chain_timer_start(void *ctx, struct ev_timer *w)
{
    mt_vhost_timer_start(&((struct mt_tchain *)ctx)->run->vh, w);
}

static void chain_timer_stop(void *ctx, struct ev_timer *w)
{
    mt_vhost_timer_stop(&((struct mt_tchain *)ctx)->run->vh, w);
}

static size_t chain_peers(void *ctx, struct mt_peer **out, size_t max)
{
    return mt_vhost_live_peers(&((struct mt_tchain *)ctx)->run->vh, out, max);
}

static void chain_close(struct mt_tchain *c)
{
    if (!c->open)
        return;
    c->open = false;
    for (struct mt_tchain **pp = &c->run->chains; *pp != NULL; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    mt_scripts_free(c->s); /* stop handlers run, timers leave the virtual clock */
    c->s = NULL;
    for (size_t i = 0; i < c->nrecs; i++)
        free(c->recs[i].bytes);
    free(c->recs);
    c->recs = NULL;
    c->nrecs = 0;
    free(c->buf);
    c->buf = NULL;
    mt_config_free(&c->cfg);
}

static struct mt_tchain *check_chain(lua_State *L, int idx)
{
    struct mt_tchain *c = luaL_checkudata(L, idx, TCHAIN_META);
    if (!c->open)
        luaL_error(L, "this chain is closed");
    return c;
}

static const char *opt_string(lua_State *L, int t, const char *key)
{
    lua_getfield(L, t, key);
    const char *v = lua_isnil(L, -1) ? NULL : lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive in the options table */
    return v;
}

/* T.chain{ "examples/firewall.lua allow=tcp/22", ..., tap = false, on_error = "drop",
 *          lua_budget = N, lua_mem = MB } */
static int t_chain(lua_State *L)
{
    struct mt_trun *run = run_of(L);
    const char *specs[MT_MAX_SCRIPTS], *extra[MAX_CHAIN_ARGS];
    int nspecs = 0, nextra = 0;
    char err[512];

    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    luaL_argcheck(L, n <= MT_MAX_SCRIPTS, 1, "too many scripts");
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        specs[nspecs++] = luaL_checkstring(L, -1); /* kept alive by the table */
        lua_pop(L, 1);
    }
    struct mt_tchain *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->run = run;
    lua_getfield(L, 1, "tap");
    c->tap = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (c->tap)
        extra[nextra++] = "-a";
    static const char *const passthrough[][2] = {
        {"on_error", "--on-error"}, {"lua_budget", "--lua-budget"}, {"lua_mem", "--lua-mem"}};
    for (size_t i = 0; i < 3; i++) {
        const char *v = opt_string(L, 1, passthrough[i][0]);
        if (v != NULL) {
            extra[nextra++] = passthrough[i][1];
            extra[nextra++] = v;
        }
    }
    int rc = mt_vhost_config(&c->cfg, specs, nspecs, extra, nextra, err, sizeof err);
    c->buf = rc == 0 ? malloc(MT_PKT_BUFSIZE) : NULL;
    if (rc == 0 && c->buf == NULL) {
        snprintf(err, sizeof err, "out of memory");
        rc = -ENOMEM;
    }
    if (rc == 0) {
        c->host.ctx = c;
        c->host.cfg = &c->cfg;
        c->host.stats = &c->stats;
        c->host.inject = chain_inject;
        c->host.send = chain_send;
        c->host.peers = chain_peers;
        c->host.now = chain_now;
        c->host.timer_start = chain_timer_start;
        c->host.timer_stop = chain_timer_stop;
        rc = mt_scripts_load(&c->s, &c->cfg, &c->host, err, sizeof err);
    }
    if (rc < 0) {
        free(c->buf);
        c->buf = NULL;
        mt_config_free(&c->cfg);
        return luaL_error(L, "T.chain: %s", err);
    }
    c->open = true;
    c->next = run->chains;
    run->chains = c;
    luaL_setmetatable(L, TCHAIN_META);
    return 1;
}

/* The packet argument: bytes, or a table for mt.packet. */
static const char *packet_arg(lua_State *L, int idx, size_t *len)
{
    if (lua_istable(L, idx)) {
        lua_pushcfunction(L, mt__lbuild_packet);
        lua_pushvalue(L, idx);
        lua_call(L, 1, 1);
        lua_replace(L, idx);
    }
    const char *p = luaL_checklstring(L, idx, len);
    luaL_argcheck(L, *len > 0 && *len <= MT_MAX_PACKET, idx, "packet must be 1..65535 bytes");
    return p;
}

static struct mt_peer *peer_arg(lua_State *L, int idx, struct mt_trun *run)
{
    if (!lua_isnoneornil(L, idx))
        return check_peer(L, idx);
    if (run->default_peer == NULL)
        run->default_peer = mt_vhost_peer(&run->vh, "192.0.2.1:55555", NULL);
    if (run->default_peer == NULL)
        luaL_error(L, "no room for the default peer");
    return run->default_peer;
}

static int chain_call(lua_State *L, int slot)
{
    struct mt_tchain *c = check_chain(L, 1);
    size_t len;
    const char *data = packet_arg(L, 2, &len);
    struct mt_peer *peer = slot != MT_HOOK_EGRESS ? peer_arg(L, 3, c->run) : NULL;
    struct mt_peer *route = NULL;
    struct mt_packet pkt;
    enum mt_verdict v;

    mt_packet_init(&pkt, c->buf, MT_PKT_BUFSIZE, MT_HEADROOM);
    mt_packet_put(&pkt, len);
    memcpy(pkt.data, data, len);
    pkt.link = c->tap ? MT_LINK_ETH : MT_LINK_IP;
    pkt.dir = slot == MT_HOOK_EGRESS || slot == MT_HOOK_ENCODE ? MT_DIR_EGRESS : MT_DIR_INGRESS;
    pkt.peer = peer;
    switch (slot) {
    case MT_HOOK_EGRESS:
        v = mt_scripts_egress(c->s, &pkt, &route);
        break;
    case MT_HOOK_INGRESS:
        v = mt_scripts_ingress(c->s, &pkt, &route);
        break;
    case MT_HOOK_ENCODE:
        v = mt_scripts_encode(c->s, &pkt, peer);
        break;
    default:
        v = mt_scripts_decode(c->s, &pkt, peer);
        break;
    }
    if (v == MT_VERDICT_DROP) /* as the core counts: a failure's drop is an error only */
        c->stats.script_drops += !mt_scripts_failed(c->s);
    if (v == MT_VERDICT_ROUTE && route != NULL)
        push_peer(L, c->run, route);
    else
        lua_pushstring(L, v == MT_VERDICT_DROP ? "drop" : v == MT_VERDICT_REPLY ? "reply" : "pass");
    lua_pushlstring(L, (const char *)pkt.data, pkt.len);
    return 2;
}

static int chain_egress(lua_State *L)
{
    return chain_call(L, MT_HOOK_EGRESS);
}

static int chain_ingress(lua_State *L)
{
    return chain_call(L, MT_HOOK_INGRESS);
}

static int chain_encode(lua_State *L)
{
    return chain_call(L, MT_HOOK_ENCODE);
}

static int chain_decode(lua_State *L)
{
    return chain_call(L, MT_HOOK_DECODE);
}

/* chain:injected() / chain:sent(): what mt.inject and mt.send produced since the last call;
 * injected gives byte strings, sent gives { peer = ..., bytes = ... } */
static int chain_records(lua_State *L, bool sent)
{
    struct mt_tchain *c = check_chain(L, 1);
    size_t keep = 0;
    lua_newtable(L);
    int n = 0;
    for (size_t i = 0; i < c->nrecs; i++) {
        struct record *r = &c->recs[i];
        if ((r->peer != NULL) != sent) {
            c->recs[keep++] = *r;
            continue;
        }
        if (sent) {
            lua_createtable(L, 0, 2);
            push_peer(L, c->run, r->peer);
            lua_setfield(L, -2, "peer");
            lua_pushlstring(L, r->bytes, r->len);
            lua_setfield(L, -2, "bytes");
        } else {
            lua_pushlstring(L, r->bytes, r->len);
        }
        lua_rawseti(L, -2, ++n);
        free(r->bytes);
    }
    c->nrecs = keep;
    return 1;
}

static int chain_injected(lua_State *L)
{
    return chain_records(L, false);
}

static int chain_sent(lua_State *L)
{
    return chain_records(L, true);
}

/* chain:reload() -> true, or nil and the error (the old scripts stay, as on SIGHUP) */
static int chain_reload(lua_State *L)
{
    struct mt_tchain *c = check_chain(L, 1);
    char err[512];
    if (mt_scripts_reload(&c->s, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* chain:stats() -> the counters the chain keeps in the tunnel's stats */
static int chain_stats(lua_State *L)
{
    struct mt_tchain *c = check_chain(L, 1);
    lua_createtable(L, 0, 6);
#define F(x)                                                                                       \
    lua_pushinteger(L, (lua_Integer)c->stats.x);                                                   \
    lua_setfield(L, -2, #x)
    F(script_errors);
    F(budget_aborts);
    F(memory_aborts);
    F(script_drops);
    F(reloads);
    F(reload_failures);
#undef F
    return 1;
}

static int chain_close_m(lua_State *L)
{
    chain_close(luaL_checkudata(L, 1, TCHAIN_META));
    return 0;
}

/* --- decoding ------------------------------------------------------------------------------ */

static void set_int(lua_State *L, const char *k, lua_Integer v)
{
    lua_pushinteger(L, v);
    lua_setfield(L, -2, k);
}

static void set_addr(lua_State *L, const char *k, int af, const uint8_t *a)
{
    struct mt_addr addr = {.kind = af == AF_INET6 ? MT_ADDR_IP6 : MT_ADDR_IP4};
    memcpy(addr.b, a, af == AF_INET6 ? 16 : 4);
    char buf[MT_ADDR_STRLEN];
    lua_pushstring(L, mt_addr_str(&addr, buf, sizeof buf));
    lua_setfield(L, -2, k);
}

static void set_bytes(lua_State *L, const char *k, const uint8_t *p, size_t n)
{
    lua_pushlstring(L, (const char *)p, n);
    lua_setfield(L, -2, k);
}

static void push_flags(lua_State *L, uint8_t f)
{
    static const char letters[] = "FSRPAUEC";
    char s[9];
    int n = 0;
    for (int i = 0; i < 8; i++)
        if (f & (1 << i))
            s[n++] = letters[i];
    lua_pushlstring(L, s, (size_t)n);
}

/* The transport header of a decoded packet; l4len already clipped to the packet. */
static void decode_l4(lua_State *L, const uint8_t *p, const struct mt_hdrs *h)
{
    const uint8_t *t = p + h->l4;
    size_t l4len = h->l4len;
    if (h->l4proto == MT_IPPROTO_TCP) {
        size_t hlen = (size_t)(t[12] >> 4) * 4;
        lua_createtable(L, 0, 10);
        set_int(L, "sport", rd16(t));
        set_int(L, "dport", rd16(t + 2));
        set_int(L, "seq", rd32(t + 4));
        set_int(L, "ack", rd32(t + 8));
        push_flags(L, t[13]);
        lua_setfield(L, -2, "flags");
        set_int(L, "window", rd16(t + 14));
        set_int(L, "hlen", (lua_Integer)hlen);
        /* A liar's data offset (below 20, past the end) leaves no options and no payload. */
        if (hlen >= 20 && hlen <= l4len) {
            for (size_t o = 20; o < hlen;) {
                if (t[o] == 0)
                    break;
                if (t[o] == 1) {
                    o++;
                    continue;
                }
                if (hlen - o < 2 || t[o + 1] < 2 || t[o + 1] > hlen - o)
                    break;
                if (t[o] == 2 && t[o + 1] == 4)
                    set_int(L, "mss", rd16(t + o + 2));
                o += t[o + 1];
            }
            set_bytes(L, "payload", t + hlen, l4len - hlen);
        }
        lua_setfield(L, -2, "tcp");
    } else if (h->l4proto == MT_IPPROTO_UDP) {
        lua_createtable(L, 0, 4);
        set_int(L, "sport", rd16(t));
        set_int(L, "dport", rd16(t + 2));
        set_int(L, "len", rd16(t + 4));
        set_bytes(L, "payload", t + 8, l4len - 8);
        lua_setfield(L, -2, "udp");
    } else {
        lua_createtable(L, 0, 5);
        set_int(L, "type", t[0]);
        set_int(L, "code", t[1]);
        set_int(L, "id", rd16(t + 4));
        set_int(L, "seq", rd16(t + 6));
        set_bytes(L, "payload", t + 8, l4len - 8);
        lua_setfield(L, -2, "icmp");
    }
}

/* T.decode(bytes [, tap]) -> { len, eth = {...}, ip = {...}, tcp|udp|icmp = {...},
 * checksums_ok }, fields as the header views name them (tcp.flags as letters: "SA") */
static int t_decode(lua_State *L)
{
    size_t len;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &len);
    enum mt_link link = lua_toboolean(L, 2) ? MT_LINK_ETH : MT_LINK_IP;
    struct mt_hdrs h;

    mt_proto_parse(p, len, link, &h);
    lua_createtable(L, 0, 6);
    set_int(L, "len", (lua_Integer)len);
    lua_pushboolean(L, mt_proto_checksums_ok(p, len, link));
    lua_setfield(L, -2, "checksums_ok");
    if (h.l2 >= 0) {
        char mac[18];
        lua_createtable(L, 0, 3);
        const uint8_t *e = p + h.l2;
        snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", e[0], e[1], e[2], e[3], e[4],
                 e[5]);
        lua_pushstring(L, mac);
        lua_setfield(L, -2, "dst");
        snprintf(mac, sizeof mac, "%02x:%02x:%02x:%02x:%02x:%02x", e[6], e[7], e[8], e[9], e[10],
                 e[11]);
        lua_pushstring(L, mac);
        lua_setfield(L, -2, "src");
        set_int(L, "type", h.ethertype);
        lua_setfield(L, -2, "eth");
    }
    if (h.l3 < 0)
        return 1;
    const uint8_t *ip = p + h.l3;
    lua_createtable(L, 0, 12);
    set_int(L, "version", h.ipver);
    if (h.ipver == 4) {
        set_int(L, "hlen", (ip[0] & 0x0f) * 4);
        set_int(L, "tos", ip[1]);
        set_int(L, "len", rd16(ip + 2));
        set_int(L, "id", rd16(ip + 4));
        lua_pushboolean(L, ip[6] & 0x40);
        lua_setfield(L, -2, "df");
        lua_pushboolean(L, ip[6] & 0x20);
        lua_setfield(L, -2, "mf");
        set_int(L, "frag", (rd16(ip + 6) & 0x1fff) * 8);
        set_int(L, "ttl", ip[8]);
        set_int(L, "proto", ip[9]);
        set_addr(L, "src", AF_INET, ip + 12);
        set_addr(L, "dst", AF_INET, ip + 16);
    } else {
        set_int(L, "hlen", h.l4 >= 0 ? h.l4 - h.l3 : 40);
        set_int(L, "tos", (rd16(ip) >> 4) & 0xff);
        set_int(L, "flow", rd32(ip) & 0xfffff);
        set_int(L, "len", rd16(ip + 4));
        set_int(L, "ttl", ip[7]);
        set_int(L, "proto", h.l4proto);
        set_addr(L, "src", AF_INET6, ip + 8);
        set_addr(L, "dst", AF_INET6, ip + 24);
    }
    lua_setfield(L, -2, "ip");
    if (h.l4 >= 0)
        decode_l4(L, p, &h);
    return 1;
}

/* T.summary(bytes [, tap]) -> the tcpdump-like line of -d and replay */
static int t_summary(lua_State *L)
{
    size_t len;
    const uint8_t *p = (const uint8_t *)luaL_checklstring(L, 1, &len);
    char out[256];
    mt_proto_summary(p, len, lua_toboolean(L, 2) ? MT_LINK_ETH : MT_LINK_IP, out, sizeof out);
    lua_pushstring(L, out);
    return 1;
}

/* --- assertions ---------------------------------------------------------------------------- */

/* Pushes a short readable form of the value at idx: strings quoted when printable, else their
 * length and first bytes in hex. */
static void push_repr(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TSTRING) {
        luaL_tolstring(L, idx, NULL);
        return;
    }
    size_t n;
    const unsigned char *s = (const unsigned char *)lua_tolstring(L, idx, &n);
    bool printable = n <= 80;
    for (size_t i = 0; i < n && printable; i++)
        printable = s[i] >= 0x20 && s[i] < 0x7f;
    if (printable) {
        lua_pushfstring(L, "\"%s\"", (const char *)s);
        return;
    }
    char hex[16 * 3 + 8];
    size_t k = 0;
    for (size_t i = 0; i < n && i < 16; i++)
        k += (size_t)snprintf(hex + k, sizeof hex - k, "%s%02x", i ? " " : "", s[i]);
    lua_pushfstring(L, "<%d bytes: %s%s>", (int)n, hex, n > 16 ? " ..." : "");
}

/* Compares a (at ia) and b (at ib); on a difference pushes a description and returns false. */
static bool same(lua_State *L, int ia, int ib, const char *path, int depth)
{
    ia = lua_absindex(L, ia);
    ib = lua_absindex(L, ib);
    if (lua_type(L, ia) == LUA_TTABLE && lua_type(L, ib) == LUA_TTABLE && depth < 20) {
        /* Every key of the expected table must match; extra keys in got are fine, so a
         * test can check a few fields of T.decode's result. */
        lua_pushnil(L);
        while (lua_next(L, ib)) {
            lua_pushvalue(L, -2);
            lua_gettable(L, ia);
            luaL_tolstring(L, -3, NULL);
            lua_pushfstring(L, "%s.%s", path, lua_tostring(L, -1));
            const char *sub = lua_tostring(L, -1);
            bool ok = same(L, -3, -4, sub, depth + 1);
            if (!ok) {
                lua_replace(L, -6); /* the description takes the place of the key */
                lua_pop(L, 4);
                return false;
            }
            lua_pop(L, 4);
        }
        return true;
    }
    if (lua_rawequal(L, ia, ib))
        return true;
    if (lua_type(L, ia) == LUA_TNUMBER && lua_type(L, ib) == LUA_TNUMBER &&
        lua_compare(L, ia, ib, LUA_OPEQ))
        return true;
    size_t na, nb;
    if (lua_type(L, ia) == LUA_TSTRING && lua_type(L, ib) == LUA_TSTRING) {
        const unsigned char *a = (const unsigned char *)lua_tolstring(L, ia, &na);
        const unsigned char *b = (const unsigned char *)lua_tolstring(L, ib, &nb);
        size_t i = 0;
        while (i < na && i < nb && a[i] == b[i])
            i++;
        push_repr(L, ib);
        push_repr(L, ia);
        char where[96];
        if (i < na && i < nb)
            snprintf(where, sizeof where, "first difference at byte %zu: 0x%02x, expected 0x%02x",
                     i, a[i], b[i]);
        else
            snprintf(where, sizeof where, "lengths %zu, expected %zu", na, nb);
        /* Text reads well as it is; bytes need to say where they part. */
        bool text = lua_tostring(L, -1)[0] == '"' && lua_tostring(L, -2)[0] == '"';
        lua_pushfstring(L, text ? "%s: expected %s, got %s" : "%s: expected %s, got %s (%s)", path,
                        lua_tostring(L, -2), lua_tostring(L, -1), where);
        lua_replace(L, -3);
        lua_pop(L, 1);
        return false;
    }
    push_repr(L, ib);
    push_repr(L, ia);
    lua_pushfstring(L, "%s: expected %s, got %s", path, lua_tostring(L, -2), lua_tostring(L, -1));
    lua_replace(L, -3);
    lua_pop(L, 1);
    return false;
}

/* T.eq(got, want [, what]): raises "what: expected want, got got"; tables compare by the keys
 * of want (deeply) */
static int t_eq(lua_State *L)
{
    luaL_checkany(L, 2);
    const char *what = luaL_optstring(L, 3, "value");
    if (!same(L, 1, 2, what, 0))
        return lua_error(L);
    return 0;
}

/* T.like(text, pattern [, what]): raises unless text matches the Lua pattern; a table of lines
 * (T.logs()) matches when one of them does */
static int t_like(lua_State *L)
{
    const char *pat = luaL_checkstring(L, 2);
    const char *what = luaL_optstring(L, 3, "text");
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "find");
    int find = lua_gettop(L);
    int n = lua_istable(L, 1) ? (int)luaL_len(L, 1) : 1;
    for (int i = 1; i <= n; i++) {
        lua_pushvalue(L, find);
        if (lua_istable(L, 1))
            lua_geti(L, 1, i);
        else
            lua_pushvalue(L, 1);
        lua_pushstring(L, pat);
        lua_call(L, 2, 1);
        if (!lua_isnil(L, -1))
            return 0;
        lua_pop(L, 1);
    }
    if (lua_istable(L, 1)) {
        lua_getglobal(L, "table");
        lua_getfield(L, -1, "concat");
        lua_pushvalue(L, 1);
        lua_pushliteral(L, "\n\t");
        lua_call(L, 2, 1);
        return luaL_error(L, "%s: no line matches '%s' among %d:\n\t%s", what, pat, n,
                          lua_tostring(L, -1));
    }
    push_repr(L, 1);
    return luaL_error(L, "%s: %s does not match '%s'", what, lua_tostring(L, -1), pat);
}

/* --- clock and tests ----------------------------------------------------------------------- */

/* T.advance(seconds): moves the virtual clock, firing the timers that fall due, in order */
static int t_advance(lua_State *L)
{
    struct mt_trun *run = run_of(L);
    double sec = luaL_checknumber(L, 1);
    luaL_argcheck(L, isfinite(sec) && sec >= 0 && sec < 1e9, 1, "seconds must be >= 0");
    lua_pushinteger(L, (lua_Integer)mt_vhost_advance(&run->vh, run->vh.now + sec));
    return 1;
}

static int t_now(lua_State *L)
{
    lua_pushnumber(L, run_of(L)->vh.now);
    return 1;
}

/* T.test(name, fn): declares a test; the runner calls them in order after the file ran */
static int t_test(lua_State *L)
{
    struct mt_trun *run = run_of(L);
    luaL_checkstring(L, 1);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_rawgeti(L, LUA_REGISTRYINDEX, run->tests_ref);
    lua_createtable(L, 2, 0);
    lua_pushvalue(L, 1);
    lua_rawseti(L, -2, 1);
    lua_pushvalue(L, 2);
    lua_rawseti(L, -2, 2);
    lua_rawseti(L, -2, (lua_Integer)luaL_len(L, -2) + 1);
    return 0;
}

static const luaL_Reg chain_methods[] = {
    {"egress", chain_egress},     {"ingress", chain_ingress},
    {"encode", chain_encode},     {"decode", chain_decode},
    {"injected", chain_injected}, {"sent", chain_sent},
    {"reload", chain_reload},     {"stats", chain_stats},
    {"close", chain_close_m},     {NULL, NULL},
};

static const luaL_Reg module_funcs[] = {
    {"chain", t_chain}, {"peer", t_peer}, {"advance", t_advance}, {"now", t_now},
    {"logs", t_logs},   {"test", t_test}, {"decode", t_decode},   {"summary", t_summary},
    {"eq", t_eq},       {"like", t_like}, {NULL, NULL},
};

int mt__ltest_open(lua_State *L)
{
    struct mt_trun *run = lua_touserdata(L, 1);

    static const luaL_Reg chain_metamethods[] = {{"__gc", chain_close_m}, {NULL, NULL}};
    mt__lua_class(L, TCHAIN_META, chain_metamethods, chain_methods);

    luaL_newmetatable(L, TPEER_META);
    lua_pushlightuserdata(L, run);
    lua_pushlightuserdata(L, run);
    lua_pushcclosure(L, tpeer_down, 1);
    lua_pushcclosure(L, tpeer_index, 2);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, tpeer_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);

    lua_newtable(L);
    run->tests_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_newtable(L);
    run->peers_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    lua_createtable(L, 0, 12);
    lua_pushlightuserdata(L, run);
    luaL_setfuncs(L, module_funcs, 1);
    lua_pushcfunction(L, mt__lbuild_packet);
    lua_setfield(L, -2, "packet");
    return 1;
}
