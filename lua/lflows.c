/* mt.flows{...}: the flow table (core/flows.c) for scripts. A table is one userdata holding
 * the whole preallocated table; each flow has one entry userdata, made when it is inserted and
 * kept in the table's entry list (a Lua array by slot), so a lookup returns it without
 * allocating. An entry holds (slot, gen): once its flow is gone (removed, expired, evicted)
 * the slot's gen has moved on and any use of the entry raises, except entry.live (false).
 * Expiry: a lookup or insert that meets an expired flow ends it, and a timer (every `sweep`
 * seconds) ends the others among the MT_FLOWS_STEP least recently used; either way on_expire(entry,
 * why) runs first, with the entry still readable. */
#include <math.h>
#include <stdalign.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>

#include "binding.h"
#include "moontun/addr.h"
#include "moontun/flows.h"

#define MT_LFLOWS_META "moontun.flows"
#define MT_LFLOW_META  "moontun.flow"

#define GONE_MSG "flow entry is gone (removed, expired or evicted); check entry.live"

enum { UV_ENTRIES = 1, UV_EXPIRE = 2 }; /* the table's user values */
enum { EV_VALUE = 1, EV_TABLE = 2 };    /* an entry's: its value, and its table (kept alive) */
/* upvalues of every method: the two metatables and the packet's */
enum { UP_FLOWS = 1, UP_ENTRY = 2, UP_PACKET = 3, UP_NAMES = 4 };

struct lflows {
    struct mt_scripts *s;
    struct mt_flows *ft; /* inside this userdata, after it */
    bool evict;          /* full: end the least recently used flow (else the insert fails) */
    bool sided;          /* a flow's packets go forward only from the side that started it */
    int expiring;        /* on_expire calls in progress: a sweep does not nest */
};

struct lentry {
    struct lflows *lf;
    uint32_t idx, gen;
};

/* Field codes of an entry, by a name table in an upvalue (one hash probe per read). */
enum efield {
    E_VALUE = 1,
    E_PROTO,
    E_SRC,
    E_SPORT,
    E_DST,
    E_DPORT,
    E_PACKETS,
    E_BYTES,
    E_RPACKETS,
    E_RBYTES,
    E_FIRST,
    E_LAST,
    E_EXPIRES,
    E_LIVE,
    E_COUNT
};
static const char *const efield_names[E_COUNT] = {
    NULL,    "value",    "proto",  "src",   "sport", "dst",     "dport", "packets",
    "bytes", "rpackets", "rbytes", "first", "last",  "expires", "live"};

/* mt.now()'s clock: the virtual one under moontun replay/test, else the monotonic clock at
 * the kernel's tick (a few ms coarse, a third of the cost: timeouts are seconds). */
static double now_of(const struct lflows *lf)
{
    if (lf->s->host.now != NULL)
        return lf->s->host.now(lf->s->host.ctx);
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The table at idx: checked by pointer against the metatable in an upvalue. */
static struct lflows *check_flows(lua_State *L, int idx)
{
    struct lflows *lf = lua_touserdata(L, idx);
    if (lf == NULL || !lua_getmetatable(L, idx) || !lua_rawequal(L, -1, lua_upvalueindex(UP_FLOWS)))
        luaL_typeerror(L, idx, MT_LFLOWS_META);
    lua_pop(L, 1);
    return lf;
}

/* The flow of the entry at idx; raises when it is gone (allow_gone: returns NULL). */
static struct mt_flow *entry_flow(lua_State *L, int idx, struct lentry **out, bool allow_gone)
{
    struct lentry *e = lua_touserdata(L, idx);
    if (e == NULL || !lua_getmetatable(L, idx) || !lua_rawequal(L, -1, lua_upvalueindex(UP_ENTRY)))
        luaL_typeerror(L, idx, MT_LFLOW_META);
    lua_pop(L, 1);
    if (out != NULL)
        *out = e;
    struct mt_flow *f = &e->lf->ft->flows[e->idx];
    if (f->gen != e->gen) {
        if (allow_gone)
            return NULL;
        luaL_error(L, GONE_MSG);
    }
    return f;
}

/* Entries live in chunks of ENTRY_CHUNK (a table of tables by slot): the collector then
 * traverses a million entries in many short steps, not in one table at once. */
#define ENTRY_CHUNK_BITS 12
#define ENTRY_CHUNK      (1 << ENTRY_CHUNK_BITS)

/* Pushes the chunk table of slot i (made when needed, unless make is false: then nil). */
static void push_chunk(lua_State *L, int tidx, uint32_t i, bool make)
{
    lua_getiuservalue(L, tidx, UV_ENTRIES);
    if (lua_rawgeti(L, -1, (lua_Integer)(i >> ENTRY_CHUNK_BITS) + 1) != LUA_TTABLE && make) {
        lua_pop(L, 1);
        lua_createtable(L, ENTRY_CHUNK, 0);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (lua_Integer)(i >> ENTRY_CHUNK_BITS) + 1);
    }
    lua_replace(L, -2); /* as lua_remove(L, -2), without its rotation: per lookup */
}

/* Pushes f's entry (the table is at tidx), made on first use: a flow a script never looks at
 * (restored after a reload, say) costs no Lua object. Needs the methods' upvalues. */
static void push_entry(lua_State *L, int tidx, struct lflows *lf, struct mt_flow *f)
{
    uint32_t i = mt_flows_index(lf->ft, f);
    tidx = lua_absindex(L, tidx);
    push_chunk(L, tidx, i, true);
    if (lua_rawgeti(L, -1, (lua_Integer)(i & (ENTRY_CHUNK - 1)) + 1) != LUA_TUSERDATA) {
        lua_pop(L, 1);
        struct lentry *e = lua_newuserdatauv(L, sizeof *e, 2);
        e->lf = lf;
        e->idx = i;
        e->gen = f->gen;
        lua_pushvalue(L, lua_upvalueindex(UP_ENTRY));
        lua_setmetatable(L, -2);
        lua_pushvalue(L, tidx); /* the table lives while its entries do */
        lua_setiuservalue(L, -2, EV_TABLE);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -3, (lua_Integer)(i & (ENTRY_CHUNK - 1)) + 1);
    }
    lua_replace(L, -2);
}

/* Ends f: out of the index, on_expire(entry, why) (why NULL: removed by the script, no
 * callback), then its slot is freed and its entry goes stale. An error of the callback is
 * raised again once the slot is free, so the table stays whole. */
static void end_flow(lua_State *L, int tidx, struct lflows *lf, struct mt_flow *f, const char *why)
{
    struct mt_flows *ft = lf->ft;
    if (!f->used) /* already ending: a callback removed its own entry */
        return;
    mt_flows_unlink(ft, f);
    int status = LUA_OK;
    if (why != NULL) {
        if (lua_getiuservalue(L, tidx, UV_EXPIRE) == LUA_TFUNCTION) {
            push_entry(L, tidx, lf, f);
            lua_pushstring(L, why);
            lf->expiring++;
            status = lua_pcall(L, 2, 0, 0);
            lf->expiring--;
        } else {
            lua_pop(L, 1);
        }
    }
    uint32_t i = mt_flows_index(ft, f);
    push_chunk(L, tidx, i, false);
    if (lua_istable(L, -1)) {
        lua_pushnil(L);
        lua_rawseti(L, -2, (lua_Integer)(i & (ENTRY_CHUNK - 1)) + 1);
    }
    lua_pop(L, 1);
    mt_flows_release(ft, f);
    if (status != LUA_OK)
        lua_error(L); /* the callback's error, as it was */
}

/* --- mt.flows{...} --------------------------------------------------------------------------- */

static double opt_number(lua_State *L, const char *name, double def, double lo, double hi)
{
    lua_getfield(L, 1, name);
    double v = luaL_optnumber(L, -1, def);
    lua_pop(L, 1);
    if (!(v >= lo && v <= hi))
        luaL_error(L, "mt.flows: %s must be a number from %f to %f", name, lo, hi);
    return v;
}

static int flows_sweep_timer(lua_State *L);

/* upvalues: the methods' four, then mt.every */
static int flows_new(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    uint32_t max = (uint32_t)opt_number(L, "max", 65536, 1, MT_FLOWS_MAX);
    double timeout = opt_number(L, "timeout", 300, 1e-3, 1e9);
    double sweep = opt_number(L, "sweep", 1, 0, 3600);
    lua_getfield(L, 1, "key");
    const char *by = luaL_optstring(L, -1, "flow");
    enum mt_flows_by kind = strcmp(by, "flow") == 0  ? MT_FLOWS_BY_FLOW
                            : strcmp(by, "src") == 0 ? MT_FLOWS_BY_SRC
                            : strcmp(by, "dst") == 0 ? MT_FLOWS_BY_DST
                                                     : (enum mt_flows_by) - 1;
    if ((int)kind < 0)
        return luaL_error(L, "mt.flows: key must be \"flow\", \"src\" or \"dst\", not \"%s\"", by);
    lua_getfield(L, 1, "evict");
    bool evict = lua_isnil(L, -1) || lua_toboolean(L, -1);
    lua_getfield(L, 1, "sided");
    bool sided = lua_toboolean(L, -1);
    lua_pop(L, 3);

    size_t head = (sizeof(struct lflows) + alignof(max_align_t) - 1) & ~(alignof(max_align_t) - 1);
    struct lflows *lf = lua_newuserdatauv(L, head + mt_flows_size(max), 2);
    lf->s = s;
    lf->evict = evict;
    lf->sided = sided;
    lf->expiring = 0;
    lf->ft = mt_flows_init((char *)lf + head, max, timeout, kind, 0);
    lua_pushvalue(L, lua_upvalueindex(UP_FLOWS));
    lua_setmetatable(L, -2);
    lua_createtable(L, (int)(max >> ENTRY_CHUNK_BITS) + 1, 0);
    lua_setiuservalue(L, -2, UV_ENTRIES);

    if (sweep > 0) { /* mt.every(sweep, function() flows:sweep() end) */
        lua_pushvalue(L, lua_upvalueindex(5));
        lua_pushnumber(L, sweep);
        for (int i = 1; i <= 3; i++)
            lua_pushvalue(L, lua_upvalueindex(i));
        lua_pushvalue(L, -6); /* the table */
        lua_pushcclosure(L, flows_sweep_timer, 4);
        lua_call(L, 2, 0);
    }
    return 1;
}

/* --- lookups --------------------------------------------------------------------------------- */

/* In a sided table, a packet seen from the side that started its flow (egress or ingress)
 * goes forward, from the other side it is a reply: one that claims the other orientation (a
 * packet from the tunnel with this host's end as its source) is not of that flow. */
static inline bool side_ok(const struct lflows *lf, const struct mt_flow *f,
                           const struct mt_packet *pkt, bool reply)
{
    return !lf->sided || ((enum mt_dir)f->side != pkt->dir) == reply;
}

/* flows:lookup(pkt) -> entry, reply | nil. Counts the packet on the flow and keeps it alive. */
static int flows_lookup(lua_State *L)
{
    struct lflows *lf = check_flows(L, 1);
    struct mt_packet *pkt = mt__lpacket_arg(L, 2, lua_upvalueindex(UP_PACKET));
    struct mt_flow_key k;
    bool reply;
    struct mt_flow *f;
    if (!mt_flow_key_of(lf->ft->by, pkt, &k) || (f = mt_flows_find(lf->ft, &k, &reply)) == NULL ||
        !side_ok(lf, f, pkt, reply)) {
        lua_pushnil(L);
        return 1;
    }
    double now = now_of(lf);
    if (f->deadline < now) {
        lf->ft->expirations++;
        end_flow(L, 1, lf, f, "expired");
        lua_pushnil(L);
        return 1;
    }
    mt_flows_touch(lf->ft, f, reply, pkt->len, now);
    push_entry(L, 1, lf, f);
    lua_pushboolean(L, reply);
    return 2;
}

/* Makes a flow for key k (not in the table), ending the least recently used one when full
 * (an expired one always; a live one when the table evicts). NULL when it cannot. */
static struct mt_flow *make_flow(lua_State *L, struct lflows *lf, const struct mt_flow_key *k,
                                 double now)
{
    struct mt_flows *ft = lf->ft;
    struct mt_flow *f;
    /* an on_expire that inserts could fill the slot again: a few rounds, then give up */
    for (int round = 0; (f = mt_flows_insert(ft, k, now)) == NULL; round++) {
        struct mt_flow *v = mt_flows_victim(ft);
        bool expired = v != NULL && v->deadline < now;
        if (v == NULL || round == 4 || (!expired && !lf->evict))
            return NULL;
        if (expired)
            ft->expirations++;
        else
            ft->evictions++;
        end_flow(L, 1, lf, v, expired ? "expired" : "evicted");
        bool reply;
        if (mt_flows_find(ft, k, &reply) != NULL) /* the callback made it */
            return NULL;
    }
    return f;
}

/* flows:insert(pkt [, value]) -> entry (a new flow, or the existing one in either direction,
 * its value replaced when one is given), or nil when the packet has no IP header or the table
 * is full and does not evict. Counts the packet on the flow. */
static int flows_insert_or_add(lua_State *L, bool set_value)
{
    struct lflows *lf = check_flows(L, 1);
    struct mt_packet *pkt = mt__lpacket_arg(L, 2, lua_upvalueindex(UP_PACKET));
    bool has_value = set_value && !lua_isnone(L, 3);
    lua_settop(L, 3);
    struct mt_flow_key k;
    if (!mt_flow_key_of(lf->ft->by, pkt, &k)) {
        lua_pushnil(L);
        return 1;
    }
    double now = now_of(lf);
    bool reply = false, created = false;
    struct mt_flow *f = mt_flows_find(lf->ft, &k, &reply);
    if (f != NULL && f->deadline < now) {
        lf->ft->expirations++;
        end_flow(L, 1, lf, f, "expired");
        f = mt_flows_find(lf->ft, &k, &reply); /* its callback may have made it again */
    }
    if (f != NULL && !side_ok(lf, f, pkt, reply)) {
        lua_pushnil(L); /* its 5-tuple is taken by a flow of the other orientation */
        return 1;
    }
    if (f == NULL) {
        reply = false;
        created = true;
        if ((f = make_flow(L, lf, &k, now)) == NULL) {
            lua_pushnil(L);
            return 1;
        }
        f->side = (uint8_t)pkt->dir;
    }
    mt_flows_touch(lf->ft, f, reply, pkt->len, now);
    push_entry(L, 1, lf, f);
    if (has_value) {
        lua_pushvalue(L, 3);
        lua_setiuservalue(L, -2, EV_VALUE);
    }
    lua_pushboolean(L, reply);
    lua_pushboolean(L, created);
    return 3;
}

static int flows_insert(lua_State *L)
{
    return flows_insert_or_add(L, true);
}

/* flows:add(pkt) -> entry, reply, created: lookup, or insert when there is none. */
static int flows_add(lua_State *L)
{
    lua_settop(L, 2);
    return flows_insert_or_add(L, false);
}

/* --- the table ------------------------------------------------------------------------------- */

/* flows:sweep(): ends the expired flows among the MT_FLOWS_STEP least recently used. -> how
 * many */
static int flows_sweep(lua_State *L)
{
    struct lflows *lf = check_flows(L, 1);
    lua_settop(L, 1);
    lua_Integer n = 0;
    if (lf->expiring == 0) {
        double now = now_of(lf);
        uint32_t budget = MT_FLOWS_STEP;
        struct mt_flow *f;
        lf->ft->sweep = MT_FLOW_NONE;
        while ((f = mt_flows_next_expired(lf->ft, now, &budget)) != NULL) {
            lf->ft->expirations++;
            end_flow(L, 1, lf, f, "expired");
            n++;
        }
    }
    lua_pushinteger(L, n);
    return 1;
}

/* the sweep timer: upvalue 4 is the table */
static int flows_sweep_timer(lua_State *L)
{
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(4));
    return flows_sweep(L);
}

/* flows:on_expire(fn | nil) */
static int flows_on_expire(lua_State *L)
{
    check_flows(L, 1);
    if (!lua_isnil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    lua_setiuservalue(L, 1, UV_EXPIRE);
    return 0;
}

/* flows:stats() -> { count, max, evictions, expirations } */
static int flows_stats(lua_State *L)
{
    struct mt_flows *ft = check_flows(L, 1)->ft;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, ft->count);
    lua_setfield(L, -2, "count");
    lua_pushinteger(L, ft->max);
    lua_setfield(L, -2, "max");
    lua_pushinteger(L, (lua_Integer)ft->evictions);
    lua_setfield(L, -2, "evictions");
    lua_pushinteger(L, (lua_Integer)ft->expirations);
    lua_setfield(L, -2, "expirations");
    return 1;
}

static int flows_len(lua_State *L)
{
    lua_pushinteger(L, check_flows(L, 1)->ft->count);
    return 1;
}

/* for e in flows:each(): the live flows in slot order. A flow removed during the loop is not
 * seen again; one added may or may not be. upvalue 1-3 as the methods; state: table, slot. */
static int flows_each_next(lua_State *L)
{
    struct lflows *lf = check_flows(L, 1);
    double now = now_of(lf);
    lua_Integer i = lua_tointeger(L, 2);
    while (i < (lua_Integer)lf->ft->fresh) {
        struct mt_flow *f = &lf->ft->flows[i++];
        mt__sandbox_step(lf->s, L);
        if (f->used && f->deadline >= now) {
            lua_pushinteger(L, i);
            push_entry(L, 1, lf, f);
            return 2;
        }
    }
    lua_pushnil(L);
    return 1;
}

/* The generic for's control variable is the slot: each() returns a stepper that hides it. */
static int flows_each_iter(lua_State *L)
{
    lua_settop(L, 0);
    lua_pushvalue(L, lua_upvalueindex(4)); /* the table */
    lua_pushvalue(L, lua_upvalueindex(5)); /* the slot to look at next */
    int n = flows_each_next(L);
    if (n == 2) {
        lua_copy(L, -2, lua_upvalueindex(5));
        return 1;
    }
    return 1;
}

static int flows_each(lua_State *L)
{
    check_flows(L, 1);
    for (int i = 1; i <= 3; i++)
        lua_pushvalue(L, lua_upvalueindex(i));
    lua_pushvalue(L, 1);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, flows_each_iter, 5);
    return 1;
}

/* --- carrying flows over a reload ------------------------------------------------------------- */

/* What flows:save() keeps of a flow: everything but the links, as bytes. */
struct saved_flow {
    struct mt_flow_key key;
    double deadline, first, last;
    uint64_t packets[2], bytes[2];
    float timeout;
    uint8_t side, pad[3];
};

#define SAVE_FORMAT "moontun.flows 1"

/* flows:save() -> { format =, data = the flows as bytes, values = { [n] = value } }: what
 * mt.state carries over a reload (stop saves it, the new script's reload(state) hands it to
 * flows:restore). One string however many flows: a million cross in one copy. The values
 * cross as mt.state's plain data does. */
static int flows_save(lua_State *L)
{
    struct lflows *lf = check_flows(L, 1);
    struct mt_flows *ft = lf->ft;
    lua_settop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushliteral(L, SAVE_FORMAT);
    lua_setfield(L, 2, "format");
    lua_newtable(L); /* 3: values */
    luaL_Buffer b;
    struct saved_flow *out =
        (struct saved_flow *)luaL_buffinitsize(L, &b, (size_t)ft->count * sizeof *out + 1);
    lua_Integer n = 0;
    int top = lua_gettop(L);
    uint32_t chunk = UINT32_MAX;
    for (uint32_t i = 0; i < ft->fresh && n < ft->count; i++) {
        struct mt_flow *f = &ft->flows[i];
        if (!f->used)
            continue;
        struct saved_flow *r = &out[n++];
        memset(r, 0, sizeof *r);
        r->key = f->key;
        r->deadline = f->deadline;
        r->first = f->first;
        r->last = f->last;
        memcpy(r->packets, f->packets, sizeof r->packets);
        memcpy(r->bytes, f->bytes, sizeof r->bytes);
        r->timeout = f->timeout;
        r->side = f->side;
        /* a value lives in the entry, if the flow has one yet: look, do not make it; the
         * chunk of entries is fetched once per ENTRY_CHUNK slots */
        if (chunk != (i >> ENTRY_CHUNK_BITS)) {
            lua_settop(L, top);
            chunk = i >> ENTRY_CHUNK_BITS;
            push_chunk(L, 1, i, false);
        }
        if (lua_istable(L, top + 1) &&
            lua_rawgeti(L, top + 1, (lua_Integer)(i & (ENTRY_CHUNK - 1)) + 1) == LUA_TUSERDATA &&
            lua_getiuservalue(L, -1, EV_VALUE) != LUA_TNIL)
            lua_rawseti(L, 3, n);
        lua_settop(L, top + 1);
    }
    lua_settop(L, top);
    luaL_pushresultsize(&b, (size_t)n * sizeof *out);
    lua_setfield(L, 2, "data");
    lua_setfield(L, 2, "values");
    return 1;
}

/* flows:restore(saved) -> how many flows came back: those of a flows:save() still alive, not in
 * the table yet, while it has room. Anything else (another format, a liar's bytes) restores
 * nothing or skips the row. */
static int flows_restore(lua_State *L)
{
    struct lflows *lf = check_flows(L, 1);
    struct mt_flows *ft = lf->ft;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_getfield(L, 2, "format"); /* 3 */
    lua_getfield(L, 2, "data");   /* 4 */
    lua_getfield(L, 2, "values"); /* 5 */
    size_t len = 0;
    const char *data = lua_tolstring(L, 4, &len);
    const char *format = lua_tostring(L, 3);
    lua_Integer n = 0;
    if (data == NULL || format == NULL || strcmp(format, SAVE_FORMAT) != 0 ||
        len % sizeof(struct saved_flow) != 0) {
        lua_pushinteger(L, 0);
        return 1;
    }
    double now = now_of(lf);
    bool values = lua_istable(L, 5);
    for (size_t i = 0; i < len / sizeof(struct saved_flow); i++) {
        struct saved_flow r;
        memcpy(&r, data + i * sizeof r, sizeof r); /* the string's bytes need not be aligned */
        bool reply;
        if ((r.key.ver != 4 && r.key.ver != 6) || r.key.pad[0] != 0 || r.key.pad[1] != 0 ||
            !(r.deadline >= now) || !isfinite(r.deadline) || !(r.timeout > 0) ||
            mt_flows_find(ft, &r.key, &reply) != NULL)
            continue;
        struct mt_flow *f = mt_flows_insert(ft, &r.key, now);
        if (f == NULL)
            break; /* full */
        f->deadline = r.deadline;
        f->first = r.first;
        f->last = r.last;
        memcpy(f->packets, r.packets, sizeof f->packets);
        memcpy(f->bytes, r.bytes, sizeof f->bytes);
        f->timeout = r.timeout;
        f->side = r.side == MT_DIR_INGRESS ? MT_DIR_INGRESS : MT_DIR_EGRESS;
        n++;
        if (values && lua_rawgeti(L, 5, (lua_Integer)i + 1) != LUA_TNIL) {
            push_entry(L, 1, lf, f);
            lua_insert(L, -2);
            lua_setiuservalue(L, -2, EV_VALUE);
        }
        lua_settop(L, 5);
    }
    lua_pushinteger(L, n);
    return 1;
}

/* --- entries --------------------------------------------------------------------------------- */

static void push_proto(lua_State *L, uint8_t proto)
{
    if (proto == 6)
        lua_pushliteral(L, "tcp");
    else if (proto == 17)
        lua_pushliteral(L, "udp");
    else if (proto == 1 || proto == 58)
        lua_pushliteral(L, "icmp");
    else
        lua_pushinteger(L, proto);
}

static void push_key_addr(lua_State *L, const struct mt_flow_key *k, const uint8_t *a)
{
    struct mt_addr addr = {.kind = k->ver == 4 ? MT_ADDR_IP4 : MT_ADDR_IP6};
    char buf[MT_ADDR_STRLEN];
    memcpy(addr.b, a, 16);
    lua_pushstring(L, mt_addr_str(&addr, buf, sizeof buf));
}

/* upvalue UP_NAMES: field codes and the methods */
static int entry_index(lua_State *L)
{
    lua_settop(L, 2);
    lua_pushvalue(L, 2);
    if (lua_rawget(L, lua_upvalueindex(UP_NAMES)) != LUA_TNUMBER)
        return 1; /* a method, or nil */
    int code = (int)lua_tointeger(L, -1);
    struct mt_flow *f = entry_flow(L, 1, NULL, code == E_LIVE);
    switch (code) {
    case E_LIVE:
        lua_pushboolean(L, f != NULL);
        break;
    case E_VALUE:
        lua_getiuservalue(L, 1, EV_VALUE);
        break;
    case E_PROTO:
        push_proto(L, f->key.proto);
        break;
    case E_SRC:
        push_key_addr(L, &f->key, f->key.src);
        break;
    case E_DST:
        push_key_addr(L, &f->key, f->key.dst);
        break;
    case E_SPORT:
        lua_pushinteger(L, f->key.sport);
        break;
    case E_DPORT:
        lua_pushinteger(L, f->key.dport);
        break;
    case E_PACKETS:
    case E_RPACKETS:
        lua_pushinteger(L, (lua_Integer)f->packets[code == E_RPACKETS]);
        break;
    case E_BYTES:
    case E_RBYTES:
        lua_pushinteger(L, (lua_Integer)f->bytes[code == E_RBYTES]);
        break;
    case E_FIRST:
        lua_pushnumber(L, f->first);
        break;
    case E_LAST:
        lua_pushnumber(L, f->last);
        break;
    case E_EXPIRES:
        lua_pushnumber(L, f->deadline);
        break;
    default:
        lua_pushnil(L);
    }
    return 1;
}

static int entry_newindex(lua_State *L)
{
    entry_flow(L, 1, NULL, false);
    const char *k = lua_tostring(L, 2);
    if (k == NULL || strcmp(k, "value") != 0)
        return luaL_error(L, "cannot assign entry.%s: only entry.value is writable",
                          k != NULL ? k : "?");
    lua_settop(L, 3);
    lua_setiuservalue(L, 1, EV_VALUE);
    return 0;
}

/* entry:timeout([sec]) -> the idle timeout; with sec, sets it and the deadline (now + sec) */
static int entry_timeout(lua_State *L)
{
    struct lentry *e;
    struct mt_flow *f = entry_flow(L, 1, &e, false);
    if (!lua_isnoneornil(L, 2)) {
        double sec = luaL_checknumber(L, 2);
        luaL_argcheck(L, sec > 0 && sec <= 1e9, 2, "timeout must be above 0 seconds");
        mt_flows_set_timeout(f, sec, now_of(e->lf));
    }
    lua_pushnumber(L, f->timeout);
    return 1;
}

/* entry:remove(): ends the flow now, without on_expire. -> false when already gone */
static int entry_remove(lua_State *L)
{
    struct lentry *e;
    struct mt_flow *f = entry_flow(L, 1, &e, true);
    if (f == NULL || !f->used) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_settop(L, 1);
    lua_getiuservalue(L, 1, EV_TABLE);
    end_flow(L, 2, e->lf, f, NULL);
    lua_pushboolean(L, 1);
    return 1;
}

static int entry_tostring(lua_State *L)
{
    struct mt_flow *f = entry_flow(L, 1, NULL, true);
    if (f == NULL) {
        lua_pushliteral(L, "flow (gone)");
        return 1;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    lua_pushliteral(L, "flow ");
    luaL_addvalue(&b);
    push_proto(L, f->key.proto);
    luaL_addvalue(&b);
    luaL_addchar(&b, ' ');
    push_key_addr(L, &f->key, f->key.src);
    luaL_addvalue(&b);
    lua_pushfstring(L, ":%d > ", (int)f->key.sport);
    luaL_addvalue(&b);
    push_key_addr(L, &f->key, f->key.dst);
    luaL_addvalue(&b);
    lua_pushfstring(L, ":%d", (int)f->key.dport);
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    return 1;
}

/* --- registration ---------------------------------------------------------------------------- */

static const luaL_Reg flows_methods[] = {
    {"lookup", flows_lookup},
    {"insert", flows_insert},
    {"add", flows_add},
    {"sweep", flows_sweep},
    {"on_expire", flows_on_expire},
    {"stats", flows_stats},
    {"each", flows_each},
    {"save", flows_save},
    {"restore", flows_restore},
    {NULL, NULL},
};

static const luaL_Reg entry_methods[] = {
    {"timeout", entry_timeout},
    {"remove", entry_remove},
    {NULL, NULL},
};

/* Pushes the upvalues every function here gets: the two metatables, the packet's, the names. */
static void push_upvalues(lua_State *L)
{
    luaL_getmetatable(L, MT_LFLOWS_META);
    luaL_getmetatable(L, MT_LFLOW_META);
    luaL_getmetatable(L, MT_LPACKET_META);
    lua_newtable(L);
}

void mt__lflows_open(lua_State *L, int module)
{
    module = lua_absindex(L, module);
    luaL_newmetatable(L, MT_LFLOWS_META);
    lua_pushliteral(L, MT_LFLOWS_META);
    lua_setfield(L, -2, "__metatable");
    luaL_newmetatable(L, MT_LFLOW_META);
    lua_pushliteral(L, MT_LFLOW_META);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    /* the table's metatable: __index is the method table, __len */
    luaL_getmetatable(L, MT_LFLOWS_META);
    lua_createtable(L, 0, 12);
    push_upvalues(L);
    luaL_setfuncs(L, flows_methods, 4);
    lua_setfield(L, -2, "__index");
    push_upvalues(L);
    lua_pushcclosure(L, flows_len, 4);
    lua_setfield(L, -2, "__len");
    lua_pop(L, 1);

    /* the entry's: a name table of field codes and methods, shared as an upvalue */
    luaL_getmetatable(L, MT_LFLOW_META);
    push_upvalues(L); /* flows, flow, packet, names */
    for (int i = 1; i < E_COUNT; i++) {
        lua_pushinteger(L, i);
        lua_setfield(L, -2, efield_names[i]);
    }
    for (const luaL_Reg *r = entry_methods; r->name != NULL; r++) {
        for (int i = 1; i <= 4; i++)
            lua_pushvalue(L, -4);
        lua_pushcclosure(L, r->func, 4);
        lua_setfield(L, -2, r->name);
    }
    static const luaL_Reg entry_meta[] = {
        {"__index", entry_index},
        {"__newindex", entry_newindex},
        {"__tostring", entry_tostring},
        {NULL, NULL},
    };
    for (const luaL_Reg *r = entry_meta; r->name != NULL; r++) {
        for (int i = 1; i <= 4; i++)
            lua_pushvalue(L, -4);
        lua_pushcclosure(L, r->func, 4);
        lua_setfield(L, -6, r->name);
    }
    lua_pop(L, 5);

    /* mt.flows, with mt.every for its sweep timer */
    push_upvalues(L);
    lua_getfield(L, module, "every");
    lua_pushcclosure(L, flows_new, 5);
    lua_setfield(L, module, "flows");
}
