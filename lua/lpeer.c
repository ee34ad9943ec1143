/* The peer userdata scripts see (pkt.peer, mt.peers(), mt.route's argument): one object per
 * struct mt_peer per state, cached so identity holds (peer == pkt.peer), which outlives the
 * peer as a snapshot once the core says it is gone. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "moontun/addr.h"
#include "moontun/peer.h"

#include "binding.h"

struct mt_lpeer {
    struct mt_peer *peer; /* NULL once the core said it is gone */
    struct mt_peer snap;  /* what it was when it went */
};

static const struct mt_peer *lpeer_view(const struct mt_lpeer *u)
{
    return u->peer != NULL ? u->peer : &u->snap;
}

void mt__lpeer_push(lua_State *L, struct mt_peer *peer)
{
    struct mt_scripts *s = mt__scripts_of(L);

    if (peer == NULL) {
        lua_pushnil(L);
        return;
    }
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->peer_cache_ref);
    if (lua_rawgetp(L, -1, peer) == LUA_TNIL) {
        lua_pop(L, 1);
        struct mt_lpeer *u = lua_newuserdatauv(L, sizeof *u, 0);
        memset(u, 0, sizeof *u);
        u->peer = peer;
        luaL_setmetatable(L, MT_LPEER_META);
        lua_pushvalue(L, -1);
        lua_rawsetp(L, -3, peer);
    }
    lua_remove(L, -2);
}

bool mt__lpeer_push_cached(lua_State *L, struct mt_peer *peer)
{
    struct mt_scripts *s = mt__scripts_of(L);

    lua_rawgeti(L, LUA_REGISTRYINDEX, s->peer_cache_ref);
    if (lua_rawgetp(L, -1, peer) != LUA_TUSERDATA) {
        lua_pop(L, 2);
        return false;
    }
    lua_remove(L, -2);
    return true;
}

int mt__lpeer_check(lua_State *L, int idx, struct mt_peer **out)
{
    struct mt_scripts *s = mt__scripts_of(L);
    struct mt_lpeer *u = lua_touserdata(L, idx);

    /* By metatable identity, not luaL_testudata's lookup by name: this is per packet. */
    if (u == NULL || !lua_getmetatable(L, idx))
        return 0;
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->peer_meta_ref);
    bool is_peer = lua_rawequal(L, -1, -2);
    lua_pop(L, 2);
    if (!is_peer)
        return 0;
    *out = u->peer != NULL && u->peer->up ? u->peer : NULL;
    return 1;
}

void mt__lpeer_gone(lua_State *L, struct mt_peer *peer)
{
    struct mt_scripts *s = mt__scripts_of(L);

    /* No allocation here: called by the core between packets, outside any protected call. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->peer_cache_ref);
    if (lua_rawgetp(L, -1, peer) == LUA_TUSERDATA) {
        struct mt_lpeer *u = lua_touserdata(L, -1);
        u->snap = *peer;
        u->snap.allowed = NULL; /* the transport's, freed with the peer */
        u->snap.n_allowed = 0;
        u->snap.up = false;
        u->peer = NULL;
        lua_pushnil(L);
        lua_rawsetp(L, -3, peer); /* the struct may be reused for a new peer */
    }
    lua_pop(L, 2);
}

static struct mt_lpeer *check_peer(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, MT_LPEER_META);
}

struct mt_peer *mt__lpeer_arg(lua_State *L, int idx)
{
    struct mt_lpeer *u = check_peer(L, idx);
    return u->peer != NULL && u->peer->up ? u->peer : NULL;
}

static uint64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* the clock the transport stamps handshakes with */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* A WireGuard peer's endpoint: nil until it has one (its addr then says "(no endpoint yet)"). */
static int push_wg_endpoint(lua_State *L, const struct mt_peer *p)
{
    if (p->addr[0] == '(')
        lua_pushnil(L);
    else
        lua_pushstring(L, p->addr);
    return 1;
}

/* A fresh array of "prefix/len" strings: a script may keep or change it. */
static int push_wg_allowed(lua_State *L, const struct mt_peer *p)
{
    lua_createtable(L, (int)p->n_allowed, 0);
    for (size_t i = 0; i < p->n_allowed && p->allowed; i++) {
        char buf[MT_PREFIX_STRLEN];
        lua_pushstring(L, mt_prefix_str(&p->allowed[i], buf, sizeof buf));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* peer.host and peer.port, from addr ("192.0.2.7:40000", "[2001:db8::1]:40000"). */
static void peer_push_host_port(lua_State *L, const char *addr, bool port)
{
    const char *colon = strrchr(addr, ':');
    if (colon == NULL) {
        lua_pushnil(L);
        return;
    }
    if (port) {
        lua_pushinteger(L, (lua_Integer)strtol(colon + 1, NULL, 10));
        return;
    }
    size_t n = (size_t)(colon - addr);
    if (n >= 2 && addr[0] == '[' && addr[n - 1] == ']')
        lua_pushlstring(L, addr + 1, n - 2);
    else
        lua_pushlstring(L, addr, n);
}

static int peer_index(lua_State *L)
{
    struct mt_lpeer *u = check_peer(L, 1);
    const struct mt_peer *p = lpeer_view(u);
    const char *k = luaL_checkstring(L, 2);

    if (strcmp(k, "addr") == 0)
        lua_pushstring(L, p->addr);
    else if (strcmp(k, "name") == 0)
        lua_pushstring(L, p->name);
    else if (strcmp(k, "host") == 0 || strcmp(k, "port") == 0)
        peer_push_host_port(L, p->addr, k[0] == 'p');
    else if (strcmp(k, "id") == 0)
        lua_pushinteger(L, (lua_Integer)p->id);
    else if (strcmp(k, "key") == 0 && p->key[0]) /* WireGuard peers */
        lua_pushstring(L, p->key);
    else if (strcmp(k, "endpoint") == 0 && p->key[0])
        return push_wg_endpoint(L, p);
    else if (strcmp(k, "allowed_ips") == 0 && p->key[0])
        return push_wg_allowed(L, p);
    else if (strcmp(k, "handshake") == 0 && p->key[0] && p->handshake_ns)
        lua_pushnumber(L, (double)(mono_ns() - p->handshake_ns) / 1e9);
    else if (strcmp(k, "up") == 0)
        lua_pushboolean(L, u->peer != NULL && p->up);
    else if (strcmp(k, "rx_packets") == 0)
        lua_pushinteger(L, (lua_Integer)p->stats.rx_packets);
    else if (strcmp(k, "rx_bytes") == 0)
        lua_pushinteger(L, (lua_Integer)p->stats.rx_bytes);
    else if (strcmp(k, "tx_packets") == 0)
        lua_pushinteger(L, (lua_Integer)p->stats.tx_packets);
    else if (strcmp(k, "tx_bytes") == 0)
        lua_pushinteger(L, (lua_Integer)p->stats.tx_bytes);
    else if (strcmp(k, "drops") == 0)
        lua_pushinteger(L, (lua_Integer)p->stats.drops);
    else
        lua_pushnil(L);
    return 1;
}

static int peer_newindex(lua_State *L)
{
    struct mt_lpeer *u = check_peer(L, 1);
    const char *k = luaL_checkstring(L, 2);
    size_t len;

    if (strcmp(k, "name") != 0)
        return luaL_error(L, "cannot assign peer.%s: only name is writable", k);
    const char *name = luaL_checklstring(L, 3, &len);
    struct mt_peer *p = u->peer != NULL ? u->peer : &u->snap;
    luaL_argcheck(L, len < sizeof p->name && memchr(name, '\0', len) == NULL, 3,
                  "name must be at most 63 bytes, without NUL");
    memcpy(p->name, name, len + 1);
    return 0;
}

static int peer_tostring(lua_State *L)
{
    struct mt_lpeer *u = check_peer(L, 1);
    const struct mt_peer *p = lpeer_view(u);
    bool up = u->peer != NULL && p->up;

    if (strcmp(p->name, p->addr) == 0 || p->name[0] == '\0')
        lua_pushfstring(L, "peer %d %s%s", (int)p->id, p->addr, up ? "" : " (gone)");
    else
        lua_pushfstring(L, "peer %d %s (%s)%s", (int)p->id, p->name, p->addr, up ? "" : " (gone)");
    return 1;
}

static const luaL_Reg peer_metamethods[] = {
    {"__index", peer_index},
    {"__newindex", peer_newindex},
    {"__tostring", peer_tostring},
    {NULL, NULL},
};

void mt__lpeer_open(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);

    mt__lua_class(L, MT_LPEER_META, peer_metamethods, NULL);
    luaL_getmetatable(L, MT_LPEER_META);
    s->peer_meta_ref = luaL_ref(L, LUA_REGISTRYINDEX);
}
