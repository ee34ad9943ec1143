/* The `moontun` module scripts get from require "moontun": verdicts, logging, clock, timers,
 * inject/send, peers, prefix matchers, stats, state and config. The peer userdata is lpeer.c's. */
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <ev.h>
#include <lauxlib.h>
#include <lua.h>

#include "moontun/addr.h"
#include "moontun/config.h"
#include "moontun/log.h"
#include "moontun/packet.h"
#include "moontun/route.h"

#include "binding.h"
#include "util.h"

#define MT_LTIMER_META  "moontun.timer"
#define MT_LPREFIX_META "moontun.prefix"

/* Distinct addresses are all that matters: a script cannot forge them, and a stray number or
 * boolean returned by mistake is an error rather than a silent verdict. */
const char mt__verdict_pass = 'P';
const char mt__verdict_drop = 'D';
const char mt__verdict_reply = 'R';

/* --- timers -------------------------------------------------------------------------------- */

/* On the event loop, or on the virtual clock of moontun replay/test (mt_host.timer_start). */
static void timer_start_on(struct mt_scripts *s, ev_timer *w)
{
    if (s->host.timer_start != NULL)
        s->host.timer_start(s->host.ctx, w);
    else
        ev_timer_start(s->host.loop, w);
}

static void timer_stop_on(struct mt_scripts *s, ev_timer *w)
{
    if (s->host.timer_stop != NULL)
        s->host.timer_stop(s->host.ctx, w);
    else if (s->host.loop != NULL)
        ev_timer_stop(s->host.loop, w);
}

struct mt_ltimer {
    ev_timer w; /* first, but found through offsetof all the same */
    struct mt_scripts *s;
    int self_ref; /* keeps the userdata alive while armed; LUA_NOREF when not */
    int script;   /* who made it: its name prefixes the timer's errors */
    int fails;    /* failed runs in a row: a repeating timer is stopped at MT_TIMER_FAILS */
    double after, repeat;
};

/* A repeating timer that fails this many times in a row is broken, not unlucky: stopping it
 * beats logging its error every period forever. */
#define MT_TIMER_FAILS 10

/* Stops a repeating timer after MT_TIMER_FAILS failures in a row, with one line saying so.
 * The timer's userdata is on the caller's stack: unref'ing it here is safe. */
static void timer_failed(struct mt_ltimer *t, lua_State *L)
{
    if (++t->fails < MT_TIMER_FAILS || t->repeat == 0. || t->self_ref == LUA_NOREF)
        return;
    timer_stop_on(t->s, &t->w);
    luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
    t->self_ref = LUA_NOREF;
    mt_error("%s: a timer (every %g s) failed %d times in a row: stopped",
             t->script >= 0 && t->script < t->s->nscripts ? t->s->names[t->script] : "lua",
             t->repeat, MT_TIMER_FAILS);
}

/* Timers that fire in one loop turn share one time bound (--lua-time) between them: 3,000
 * timers that each spend their own would hold the loop for minutes. What the turn has no time
 * left for runs in a later turn: a repeating timer at its next period, a one-shot timer as
 * soon as the loop has looked at its sockets again. */
static bool timer_turn_left(struct mt_scripts *s, struct ev_loop *loop)
{
    /* A virtual host (moontun replay/test) fires timers from its own clock, one at a time:
     * each gets a whole bound. */
    unsigned iter = loop ? ev_iteration(loop) : s->turn_iter + 1;
    if (iter != s->turn_iter) {
        s->turn_iter = iter;
        s->turn_used = 0;
    }
    if (s->turn_used >= s->call_time)
        return false;
    s->time_cap = s->call_time - s->turn_used;
    return true;
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
    struct mt_ltimer *t = mt_container_of(w, struct mt_ltimer, w);
    struct mt_scripts *s = t->s;
    lua_State *L = s->L;
    int top = lua_gettop(L);
    int ref = t->self_ref;

    if (!timer_turn_left(s, loop)) {
        s->timer_deferred++;
        if (t->repeat == 0.) { /* libev has stopped it: run it again next turn */
            ev_timer_set(&t->w, 0., 0.);
            ev_timer_start(loop, &t->w);
        }
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, ref); /* on the stack, it lives through the call */
    if (t->repeat == 0.) {                  /* one-shot: libev has already stopped it */
        t->self_ref = LUA_NOREF;
        luaL_unref(L, LUA_REGISTRYINDEX, ref);
    }
    lua_getiuservalue(L, -1, 1);
    lua_pushvalue(L, -2);
    s->timer_calls++;
    if (mt__scripts_call(s, L, 1, 0, "timer", t->script) != MT_CALL_OK)
        timer_failed(t, L);
    else
        t->fails = 0;
    s->turn_used += s->last_elapsed;
    lua_settop(L, top);
}

static int timer_new(lua_State *L, bool repeat)
{
    struct mt_scripts *s = mt__scripts_of(L);
    double sec = luaL_checknumber(L, 1);

    luaL_argcheck(L, isfinite(sec) && sec > 0 && sec < 1e9, 1,
                  "interval must be a positive number of seconds");
    luaL_checktype(L, 2, LUA_TFUNCTION);
    if (s->host.loop == NULL && s->host.timer_start == NULL)
        return luaL_error(L, "timers need an event loop");
    if (s->closing) /* a finalizer made it: its own finalizer would never run */
        return luaL_error(L, "cannot start a timer while the scripts are being unloaded");

    struct mt_ltimer *t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    t->s = s;
    t->self_ref = LUA_NOREF;
    t->script = s->cur_script;
    t->after = sec;
    t->repeat = repeat ? sec : 0.;
    ev_timer_init(&t->w, timer_cb, sec, t->repeat);
    luaL_setmetatable(L, MT_LTIMER_META);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, -2, 1);
    lua_pushvalue(L, -1);
    t->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    timer_start_on(s, &t->w);
    return 1;
}

static int mod_every(lua_State *L)
{
    return timer_new(L, true);
}

static int mod_after(lua_State *L)
{
    return timer_new(L, false);
}

static int timer_cancel(lua_State *L)
{
    struct mt_ltimer *t = luaL_checkudata(L, 1, MT_LTIMER_META);
    bool armed = t->self_ref != LUA_NOREF;

    timer_stop_on(t->s, &t->w);
    if (armed) {
        luaL_unref(L, LUA_REGISTRYINDEX, t->self_ref);
        t->self_ref = LUA_NOREF;
    }
    lua_pushboolean(L, armed);
    return 1;
}

static int timer_gc(lua_State *L)
{
    struct mt_ltimer *t = luaL_checkudata(L, 1, MT_LTIMER_META);
    if (t->s != NULL)
        timer_stop_on(t->s, &t->w);
    return 0;
}

static int timer_tostring(lua_State *L)
{
    struct mt_ltimer *t = luaL_checkudata(L, 1, MT_LTIMER_META);
    const char *state = t->self_ref != LUA_NOREF ? "" : ", stopped";
    if (t->repeat > 0.)
        lua_pushfstring(L, "timer (every %fs%s)", t->repeat, state);
    else
        lua_pushfstring(L, "timer (after %fs%s)", t->after, state);
    return 1;
}

static const luaL_Reg timer_methods[] = {
    {"cancel", timer_cancel},
    {NULL, NULL},
};

static const luaL_Reg timer_metamethods[] = {
    {"__gc", timer_gc},
    {"__tostring", timer_tostring},
    {"__index", NULL}, /* the method table */
    {NULL, NULL},
};

/* --- prefix matchers ----------------------------------------------------------------------- */

static int mod_prefix(lua_State *L)
{
    const char *text = luaL_checkstring(L, 1);
    struct mt_prefix *p = lua_newuserdatauv(L, sizeof *p, 0);
    memset(p, 0, sizeof *p);
    if (mt_prefix_parse(text, p) < 0)
        return luaL_argerror(L, 1, "not an address prefix (like 10.0.0.0/8 or fd00::/64)");
    luaL_setmetatable(L, MT_LPREFIX_META);
    return 1;
}

static int prefix_contains(lua_State *L)
{
    const struct mt_prefix *p = luaL_checkudata(L, 1, MT_LPREFIX_META);
    const char *text = luaL_checkstring(L, 2);
    struct mt_addr a;
    if (mt_addr_parse(text, &a) < 0)
        return luaL_argerror(L, 2, "not an IPv4 or IPv6 address");
    lua_pushboolean(L, mt_prefix_contains(p, &a));
    return 1;
}

static int prefix_tostring(lua_State *L)
{
    const struct mt_prefix *p = luaL_checkudata(L, 1, MT_LPREFIX_META);
    char buf[MT_PREFIX_STRLEN];
    lua_pushstring(L, mt_prefix_str(p, buf, sizeof buf));
    return 1;
}

static const luaL_Reg prefix_methods[] = {
    {"contains", prefix_contains},
    {NULL, NULL},
};

static const luaL_Reg prefix_metamethods[] = {
    {"__tostring", prefix_tostring},
    {"__index", NULL},
    {NULL, NULL},
};

/* --- the module functions ------------------------------------------------------------------ */

/* mt.log, mt.debug, mt.warn. upvalue 1: string.format, as it was when the state was made;
 * upvalue 2: the level. */
static int mod_log(lua_State *L)
{
    enum mt_log_level level = (enum mt_log_level)lua_tointeger(L, lua_upvalueindex(2));
    luaL_checkstring(L, 1);
    if (level > mt_log_level)
        return 0; /* not formatting what nobody will read */
    int n = lua_gettop(L);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, n, 1);
    mt__scripts_log(mt__scripts_of(L), (int)level, lua_tostring(L, -1));
    return 0;
}

static int mod_now(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    if (s->host.now != NULL) { /* moontun replay/test: capture or virtual time */
        lua_pushnumber(L, s->host.now(s->host.ctx));
        return 1;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

static int push_result(lua_State *L, int rc)
{
    if (rc < 0) {
        lua_pushnil(L);
        lua_pushstring(L, strerror(-rc));
        return 2;
    }
    lua_pushboolean(L, rc > 0);
    return 1;
}

static int mod_inject(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    size_t len;
    const char *data = luaL_checklstring(L, 1, &len);

    luaL_argcheck(L, len > 0 && len <= MT_MAX_PACKET, 1, "packet must be 1..65535 bytes");
    if (s->host.inject == NULL)
        return push_result(L, -ENOTSUP);
    int rc = s->host.inject(s->host.ctx, (const uint8_t *)data, len);
    return push_result(L, rc < 0 ? rc : 1);
}

/* true: sent; false: an encode hook dropped it; nil, why: it could not be sent. */
static int mod_send(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    struct mt_peer *peer = mt__lpeer_arg(L, 1);
    size_t len;
    const char *data = luaL_checklstring(L, 2, &len);

    luaL_argcheck(L, len > 0 && len <= MT_MAX_PACKET, 2, "packet must be 1..65535 bytes");
    if (peer == NULL) {
        lua_pushnil(L);
        lua_pushliteral(L, "peer is gone");
        return 2;
    }
    return push_result(L, mt__scripts_send(s, L, peer, (const uint8_t *)data, len));
}

/* mt.route("10.77.1.0/24", peer_or_name) sends that prefix to a peer (on the egress and the
 * client-to-client paths, before the learning table); mt.route(prefix, nil) removes it. */
static int mod_route(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    const char *text = luaL_checkstring(L, 1);
    struct mt_prefix p;
    struct mt_peer *peer = NULL;
    const char *name = NULL;

    if (mt_prefix_parse(text, &p) < 0)
        return luaL_argerror(L, 1, "not an IPv4 or IPv6 prefix (\"10.77.1.0/24\")");
    if (lua_type(L, 2) == LUA_TSTRING) {
        size_t n;
        name = lua_tolstring(L, 2, &n);
        luaL_argcheck(L, n > 0 && n < sizeof peer->name, 2, "a peer name is 1 to 63 bytes");
    } else if (!lua_isnoneornil(L, 2)) {
        if (!mt__lpeer_check(L, 2, &peer))
            return luaL_argerror(L, 2, "expected a peer, a peer's name or nil (remove)");
        luaL_argcheck(L, peer != NULL, 2, "the peer has gone");
    }
    if (s->host.route == NULL)
        return luaL_error(L,
                          "mt.route: routes need the tunnel (none under moontun replay or test)");
    int rc = s->host.route(s->host.ctx, &p, peer, name);
    if (rc == -ENOSPC)
        return luaL_error(L, "mt.route: at most %d routes", MT_SROUTE_MAX);
    if (rc < 0 && rc != -ENOENT)
        return luaL_argerror(L, 1, "not a prefix routes can hold");
    lua_pushboolean(L, rc == 0);
    return 1;
}

static int mod_peers(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    size_t n = 0;

    if (s->host.peers != NULL)
        n = s->host.peers(s->host.ctx, s->peerbuf, s->npeerbuf);
    if (n > s->npeerbuf)
        n = s->npeerbuf;
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        mt__lpeer_push(L, s->peerbuf[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static const struct {
    const char *name;
    size_t off;
} stat_fields[] = {
#define F(x)                                                                                       \
    {                                                                                              \
#x, offsetof(struct mt_stats, x)                                                           \
    }
    F(dev_rx_packets), F(dev_rx_bytes),    F(dev_tx_packets), F(dev_tx_bytes),  F(dev_tx_errors),
    F(net_rx_packets), F(net_rx_bytes),    F(net_tx_packets), F(net_tx_bytes),  F(no_route),
    F(script_drops),   F(script_replies),  F(queue_drops),    F(bad_frames),    F(peers_up),
    F(peers_down),     F(peers_refused),   F(script_errors),  F(budget_aborts), F(memory_aborts),
    F(reloads),        F(reload_failures), F(too_big),        F(bad_offloads),  F(not_connected),
#undef F
};

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int mod_stats(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    size_t nf = sizeof stat_fields / sizeof stat_fields[0];

    lua_createtable(L, 0, (int)nf + 6);
    if (s->host.stats != NULL)
        for (size_t i = 0; i < nf; i++)
            set_int(L, stat_fields[i].name,
                    *(const uint64_t *)((const char *)s->host.stats + stat_fields[i].off));
    set_int(L, "lua_calls", s->calls);
    set_int(L, "lua_errors", s->errors);
    set_int(L, "lua_timer_calls", s->timer_calls);
    set_int(L, "lua_timer_deferred", s->timer_deferred);
    set_int(L, "lua_dead_routes", s->dead_routes);
    set_int(L, "lua_mem", s->mem_used);
    set_int(L, "lua_mem_peak", s->mem_peak);
    set_int(L, "lua_mem_limit", s->mem_limit);
    return 1;
}

static void push_config(lua_State *L, const struct mt_scripts *s)
{
    const struct mt_config *cfg = s->cfg;

    lua_createtable(L, 0, 13);
    lua_pushstring(L, cfg->ifname);
    lua_setfield(L, -2, "iface");
    lua_pushboolean(L, cfg->tap);
    lua_setfield(L, -2, "tap");
    lua_pushstring(L, cfg->role == MT_ROLE_CLIENT ? "client" : "server");
    lua_setfield(L, -2, "role");
    lua_pushstring(L, cfg->host);
    lua_setfield(L, -2, "host");
    lua_pushinteger(L, cfg->port);
    lua_setfield(L, -2, "port");
    lua_pushstring(L, cfg->listen);
    lua_setfield(L, -2, "listen");
    lua_pushstring(L, cfg->transport == MT_TRANSPORT_UDP ? "udp" : "tcp");
    lua_setfield(L, -2, "transport");
    lua_pushinteger(L, cfg->mtu);
    lua_setfield(L, -2, "mtu");
    lua_pushstring(L, cfg->on_error == MT_ON_ERROR_PASS ? "pass" : "drop");
    lua_setfield(L, -2, "on_error");
    lua_pushinteger(L, s->call_budget); /* the values in force, defaults applied */
    lua_setfield(L, -2, "lua_budget");
    lua_pushinteger(L, (lua_Integer)(s->mem_limit >> 20));
    lua_setfield(L, -2, "lua_mem");
    lua_pushinteger(L, (lua_Integer)(s->call_time * 1000 + 0.5));
    lua_setfield(L, -2, "lua_time");
    lua_pushinteger(L, cfg->max_peers);
    lua_setfield(L, -2, "max_peers");
    /* Whether the device gives super-packets (what moontun asks for; a kernel that refuses is
     * logged at start-up): scripts that copy whole packets may want to know. */
    lua_pushboolean(L, !cfg->tap && !cfg->no_offload);
    lua_setfield(L, -2, "offload");
}

static const luaL_Reg module_funcs[] = {
    {"now", mod_now},     {"every", mod_every},
    {"after", mod_after}, {"inject", mod_inject},
    {"send", mod_send},   {"peers", mod_peers},
    {"route", mod_route}, {"prefix", mod_prefix},
    {"stats", mod_stats}, {"packet", mt__lbuild_packet},
    {NULL, NULL},
};

int mt__lmoontun_open(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);

    mt__lpeer_open(L);
    mt__lua_class(L, MT_LTIMER_META, timer_metamethods, timer_methods);
    mt__lua_class(L, MT_LPREFIX_META, prefix_metamethods, prefix_methods);
    mt__lua_class(L, MT_LMETRIC_META, mt__lmetric_metamethods, mt__lmetric_methods);

    lua_createtable(L, 0, 24);
    luaL_setfuncs(L, module_funcs, 0);
    luaL_setfuncs(L, mt__lcontrol_funcs, 0);
    static const struct {
        const char *name;
        enum mt_log_level level;
    } log_funcs[] = {{"log", MT_LOG_INFO}, {"debug", MT_LOG_DEBUG}, {"warn", MT_LOG_WARN}};
    for (size_t i = 0; i < sizeof log_funcs / sizeof log_funcs[0]; i++) {
        lua_getglobal(L, "string");
        lua_getfield(L, -1, "format");
        lua_remove(L, -2);
        lua_pushinteger(L, log_funcs[i].level);
        lua_pushcclosure(L, mod_log, 2);
        lua_setfield(L, -2, log_funcs[i].name);
    }
    lua_pushlightuserdata(L, (void *)&mt__verdict_pass);
    lua_setfield(L, -2, "PASS");
    lua_pushlightuserdata(L, (void *)&mt__verdict_drop);
    lua_setfield(L, -2, "DROP");
    lua_pushlightuserdata(L, (void *)&mt__verdict_reply);
    lua_setfield(L, -2, "REPLY");
    /* Survives reloads: the chain deep-copies its plain data (not functions or userdata). */
    lua_newtable(L);
    lua_setfield(L, -2, "state");
    push_config(L, s);
    lua_setfield(L, -2, "config");
    mt__lflows_open(L, -1);
    return 1;
}
