/* The library functions a script could use to stall or crash the loop, replaced by bounded
 * versions (table.move/insert/remove/concat/sort, string.rep, load, collectgarbage, os.date,
 * setmetatable without __gc, xpcall, coroutine.resume/wrap/close), and the per-script
 * environments: each script gets its own globals, library tables and moontun module, so what
 * one script changes there no other script sees. The pattern functions are in lmatch.c. */
#include <limits.h>
#include <stdbool.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "binding.h"

#define MT_LOAD_MAX   (256 * 1024)      /* bytes of source a script may hand to load() */
#define MT_DATE_MAX   256               /* bytes of an os.date format */
#define MT_CO_NEST    64                /* coroutines resumed or closed inside one another */
#define MT_REP_MAX    ((size_t)INT_MAX) /* bytes string.rep makes; the memory cap is lower */
#define MT_KILLED_KEY "moontun.killed"  /* registry: coroutines stopped by an abort (weak keys) */

/* --- table ---------------------------------------------------------------------------------- */

/* Every loop below visits one element per step and calls mt__sandbox_step: a range of
 * math.maxinteger elements or a __len of 2^40 costs the call's time bound, no more. */

static lua_Integer checked_len(lua_State *L, int idx)
{
    luaL_checktype(L, idx, LUA_TTABLE);
    return luaL_len(L, idx);
}

static int tab_move(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    lua_Integer f = luaL_checkinteger(L, 2);
    lua_Integer e = luaL_checkinteger(L, 3);
    lua_Integer t = luaL_checkinteger(L, 4);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1; /* destination table */

    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, tt, LUA_TTABLE);
    if (e >= f) {
        /* A liar's f = minint or e - f overflowing: the same checks as Lua's. */
        luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
        lua_Integer n = e - f + 1;
        luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
        bool forward = t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ));
        for (lua_Integer i = 0; i < n; i++) {
            mt__sandbox_step(s, L);
            lua_Integer k = forward ? i : n - 1 - i;
            lua_geti(L, 1, f + k);
            lua_seti(L, tt, t + k);
        }
    }
    lua_pushvalue(L, tt);
    return 1;
}

static int tab_insert(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    lua_Integer e = checked_len(L, 1);
    lua_Integer pos;

    luaL_argcheck(L, e < LUA_MAXINTEGER, 1, "table length too large");
    e++; /* the first empty slot */
    switch (lua_gettop(L)) {
    case 2:
        pos = e;
        break;
    case 3:
        pos = luaL_checkinteger(L, 2);
        /* unsigned: a negative pos from a liar fails too */
        luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2, "position out of bounds");
        for (lua_Integer i = e; i > pos; i--) {
            mt__sandbox_step(s, L);
            lua_geti(L, 1, i - 1);
            lua_seti(L, 1, i);
        }
        break;
    default:
        return luaL_error(L, "wrong number of arguments to 'insert'");
    }
    lua_seti(L, 1, pos);
    return 0;
}

static int tab_remove(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    lua_Integer size = checked_len(L, 1);
    lua_Integer pos = luaL_optinteger(L, 2, size);

    if (pos != size)
        luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2, "position out of bounds");
    lua_geti(L, 1, pos);
    for (; pos < size; pos++) {
        mt__sandbox_step(s, L);
        lua_geti(L, 1, pos + 1);
        lua_seti(L, 1, pos);
    }
    lua_pushnil(L);
    lua_seti(L, 1, pos);
    return 1;
}

static int tab_concat(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    size_t lsep;
    lua_Integer last = checked_len(L, 1);
    const char *sep = luaL_optlstring(L, 2, "", &lsep);
    lua_Integer i = luaL_optinteger(L, 3, 1);
    last = luaL_optinteger(L, 4, last);
    luaL_Buffer b;

    luaL_buffinit(L, &b);
    for (; i <= last; i++) {
        mt__sandbox_step(s, L);
        lua_geti(L, 1, i);
        if (!lua_isstring(L, -1))
            return luaL_error(L, "invalid value (at index %I) in table for 'concat'",
                              (LUAI_UACINT)i);
        luaL_addvalue(&b);
        if (i < last)
            luaL_addlstring(&b, sep, lsep);
        if (i == LUA_MAXINTEGER)
            break;
    }
    luaL_pushresult(&b);
    return 1;
}

/* a[i] < a[j] by the comparator at index 2 or by '<'; a[i], a[j] are pushed and popped. */
static bool sort_less(lua_State *L, struct mt_scripts *s, lua_Integer i, lua_Integer j)
{
    mt__sandbox_step(s, L);
    bool lt;
    if (lua_isnil(L, 2)) {
        lua_geti(L, 1, i);
        lua_geti(L, 1, j);
        lt = lua_compare(L, -2, -1, LUA_OPLT);
        lua_pop(L, 2);
    } else {
        lua_pushvalue(L, 2);
        lua_geti(L, 1, i);
        lua_geti(L, 1, j);
        lua_call(L, 2, 1);
        lt = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    return lt;
}

static void sort_swap(lua_State *L, lua_Integer i, lua_Integer j)
{
    lua_geti(L, 1, i);
    lua_geti(L, 1, j);
    lua_seti(L, 1, i);
    lua_seti(L, 1, j);
}

/* Sift the element at root down the max-heap of elements first..first+n-1. */
static void sift(lua_State *L, struct mt_scripts *s, lua_Integer first, lua_Integer root,
                 lua_Integer n)
{
    for (;;) {
        lua_Integer child = 2 * root + 1;
        if (child >= n)
            return;
        if (child + 1 < n && sort_less(L, s, first + child, first + child + 1))
            child++;
        if (!sort_less(L, s, first + root, first + child))
            return;
        sort_swap(L, first + root, first + child);
        root = child;
    }
}

/* Heapsort: O(n log n) comparisons whatever the input or the comparator, no recursion, and
 * one step per comparison, so a sort of millions of elements stops at the bound. Like Lua's
 * sort it is not stable. */
static int tab_sort(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    lua_Integer n = checked_len(L, 1);

    luaL_argcheck(L, n < INT_MAX, 1, "array too big");
    if (!lua_isnoneornil(L, 2))
        luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_settop(L, 2);
    for (lua_Integer i = n / 2 - 1; i >= 0; i--)
        sift(L, s, 1, i, n);
    for (lua_Integer end = n - 1; end > 0; end--) {
        sort_swap(L, 1, 1 + end);
        sift(L, s, 1, 0, end);
    }
    return 0;
}

/* --- string, os ---------------------------------------------------------------------------- */

/* string.rep, built by doubling: the library copies the piece once per repetition, so
 * ("x"):rep(60e6) is 60 million memcpy calls (and ("" ):rep(2^62) copies nothing 2^62 times,
 * which no memory cap stops). Here the copies are log2(n) memcpy calls of growing size. */
static int str_rep(lua_State *L)
{
    size_t l, lsep;
    const char *s = luaL_checklstring(L, 1, &l);
    lua_Integer n = luaL_checkinteger(L, 2);
    const char *sep = luaL_optlstring(L, 3, "", &lsep);

    if (n <= 0 || (l == 0 && lsep == 0)) {
        lua_pushliteral(L, "");
        return 1;
    }
    /* total = n * l + (n - 1) * lsep, refused before it can wrap (a liar's n = 2^62) */
    size_t unit = l + lsep;
    if (unit < l || unit > (MT_REP_MAX + lsep) / (size_t)n)
        return luaL_error(L, "resulting string too large");
    size_t total = (size_t)n * unit - lsep;
    luaL_Buffer b;
    char *p = luaL_buffinitsize(L, &b, total);
    memcpy(p, s, l);
    size_t done = l;
    if (n > 1) { /* one unit as sep + s, then double what is there */
        memcpy(p + done, sep, lsep);
        memcpy(p + done + lsep, s, l);
        done += unit;
    }
    /* From offset l on, the result repeats [sep s] with period unit: copying what is there
     * (whole units) right after itself keeps the period, doubling it each time. */
    while (done < total) {
        size_t chunk = done - l < total - done ? done - l : total - done;
        memcpy(p + done, p + l, chunk);
        done += chunk;
    }
    luaL_pushresultsize(&b, total);
    return 1;
}

/* upvalue 1: os.date. Each conversion is a strftime call: a 60 MB format is seconds. */
static int os_date(lua_State *L)
{
    size_t len;
    luaL_optlstring(L, 1, "%c", &len);
    luaL_argcheck(L, len <= MT_DATE_MAX, 1, "format too long (at most 256 bytes)");
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* --- base ---------------------------------------------------------------------------------- */

/* As load reports a chunk it cannot compile. */
static int too_large(lua_State *L)
{
    lua_pushnil(L);
    lua_pushfstring(L, "chunk too large (at most %d bytes)", MT_LOAD_MAX);
    return 2;
}

/* upvalue 1: the library's load. Text only (binary chunks can crash the VM), at most
 * MT_LOAD_MAX bytes (the parser is C: a 20 MB chunk is a second no hook sees), and run in the
 * calling script's environment unless one is given. */
static int sb_load(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    int n = lua_gettop(L);

    if (lua_type(L, 1) == LUA_TFUNCTION) { /* gather the pieces ourselves, up to the cap */
        luaL_Buffer b;
        size_t total = 0;
        lua_settop(L, n < 4 ? 4 : n);
        luaL_buffinit(L, &b);
        for (;;) {
            lua_pushvalue(L, 1);
            lua_call(L, 0, 1);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                break;
            }
            size_t l;
            if (!lua_isstring(L, -1))
                return luaL_error(L, "reader function must return a string");
            lua_tolstring(L, -1, &l);
            if (l == 0) {
                lua_pop(L, 1);
                break;
            }
            if (l > MT_LOAD_MAX - total)
                return too_large(L);
            total += l;
            luaL_addvalue(&b);
        }
        luaL_pushresult(&b);
        lua_replace(L, 1);
    } else {
        size_t l;
        luaL_checklstring(L, 1, &l);
        if (l > MT_LOAD_MAX)
            return too_large(L);
    }
    if (n < 4)
        lua_settop(L, 4);
    lua_pushliteral(L, "t");
    lua_replace(L, 3);
    if (n < 4) {
        if (s->cur_script >= 0)
            lua_rawgeti(L, LUA_REGISTRYINDEX, s->env_refs[s->cur_script]);
        else
            lua_pushnil(L); /* no script running: no globals at all */
        lua_replace(L, 4);
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 4, LUA_MULTRET);
    return lua_gettop(L);
}

/* upvalue 1: collectgarbage, without the options that would switch the collector off or
 * retune it (the memory cap relies on it). A full collection is a pass over up to --lua-mem of
 * heap in one C call; here "collect" is a run of incremental steps that stops at the call's
 * time bound (the collector goes on from there later), at most once per call; "step" is one
 * basic step. */
static int sb_collectgarbage(lua_State *L)
{
    static const char *const opts[] = {"collect", "step", "count", "isrunning", NULL};
    struct mt_scripts *s = mt__scripts_of(L);
    int o = luaL_checkoption(L, 1, "collect", opts);

    if (o == 0) {
        if (!s->gc_done) {
            s->gc_done = true;
            while (lua_gc(L, LUA_GCSTEP, 0) == 0)
                mt__scripts_tick(s, L);
        }
        lua_pushinteger(L, 0);
        return 1;
    }
    if (o == 1) {
        lua_pushboolean(L, lua_gc(L, LUA_GCSTEP, 0));
        return 1;
    }
    lua_settop(L, 1);
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, 1, LUA_MULTRET);
    return lua_gettop(L);
}

/* upvalue 1: setmetatable. A __gc finalizer runs with hooks off, at a time no call bounds
 * (any allocation, the end of a reload, exit): no time limit can stop it, so it is refused.
 * Lua marks an object for finalization only when its metatable has __gc at this moment;
 * adding __gc to the metatable later has no effect. */
static int sb_setmetatable(lua_State *L)
{
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        bool has_gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        luaL_argcheck(L, !has_gc, 2, "__gc metamethods are not allowed in scripts");
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* xpcall's message handler runs between the error and the end of the protected call; after an
 * abort raised from our hook Lua has hooks off there, so the script's handler would run
 * unbounded. It is called for the script's own errors only. upvalue 1: the script's handler. */
static int xpcall_msgh(lua_State *L)
{
    if (mt__scripts_of(L)->aborting)
        return 1; /* the abort's message as it is */
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

static int xpcall_done(lua_State *L, int status, lua_KContext extra)
{
    if (status != LUA_OK && status != LUA_YIELD) {
        lua_pushboolean(L, 0);
        lua_pushvalue(L, -2);
        return 2;
    }
    return lua_gettop(L) - (int)extra;
}

static int sb_xpcall(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    lua_pushvalue(L, 2);
    lua_pushcclosure(L, xpcall_msgh, 1);
    lua_replace(L, 2);
    lua_pushboolean(L, 1); /* the first result if all goes well */
    lua_pushvalue(L, 1);   /* the function */
    lua_rotate(L, 3, 2);   /* under the arguments: msgh true f args... */
    int status = lua_pcallk(L, n - 2, LUA_MULTRET, 2, 2, xpcall_done);
    return xpcall_done(L, status, 2);
}

/* --- coroutines ---------------------------------------------------------------------------- */

/* Resume and close go through here, so the chain knows which Lua thread runs (the watchdog
 * arms that one), the thread's hook is ours, and nesting is capped: Lua 5.4.4 overflows the C
 * stack when thousands of coroutines close one another from __close handlers. */

static void mark_killed(lua_State *L, lua_State *co)
{
    if (lua_getfield(L, LUA_REGISTRYINDEX, MT_KILLED_KEY) == LUA_TTABLE) {
        lua_pushthread(co);
        lua_xmove(co, L, 1);
        lua_pushboolean(L, 1);
        lua_rawset(L, -3);
    }
    lua_pop(L, 1);
}

static bool was_killed(lua_State *L, lua_State *co)
{
    bool killed = false;
    if (lua_getfield(L, LUA_REGISTRYINDEX, MT_KILLED_KEY) == LUA_TTABLE) {
        lua_pushthread(co);
        lua_xmove(co, L, 1);
        killed = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return killed;
}

static void enter(lua_State *L, struct mt_scripts *s)
{
    if (s->co_nest >= MT_CO_NEST)
        luaL_error(L, "coroutines nested too deep (at most %d)", MT_CO_NEST);
    s->co_nest++;
}

/* Returns the number of results moved to L, or -1 with the error message on L. */
static int resume(lua_State *L, lua_State *co, int narg)
{
    struct mt_scripts *s = mt__scripts_of(L);
    int nres;

    if (!lua_checkstack(co, narg)) {
        lua_pushliteral(L, "too many arguments to resume");
        return -1;
    }
    if (lua_status(co) == LUA_OK && lua_gettop(co) == 0) {
        lua_pushliteral(L, "cannot resume dead coroutine");
        return -1;
    }
    enter(L, s);
    mt__scripts_arm(s, co);
    lua_xmove(L, co, narg);
    lua_State *prev = s->running;
    s->running = co;
    int status = lua_resume(co, L, narg, &nres);
    s->running = prev;
    s->co_nest--;
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    /* Stopped by the limits: its hook left Lua's hooks off in that thread, so its __close
     * handlers must never run (coroutine.close skips them). */
    if (s->aborting)
        mark_killed(L, co);
    lua_xmove(co, L, 1);
    return -1;
}

static int co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");
    int r = resume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

static int co_wrap_call(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = resume(L, co, lua_gettop(L));
    if (r >= 0)
        return r;
    int st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD && !s->aborting) {
        /* Close its to-be-closed variables, as the library's wrap does. Not after an abort:
         * the hook that stopped it left Lua's hooks off in that thread, so its __close
         * handlers would run unbounded (coroutine.close refuses it too). */
        enter(L, s);
        mt__scripts_arm(s, co);
        lua_State *prev = s->running;
        s->running = co;
        lua_resetthread(co);
        s->running = prev;
        s->co_nest--;
        lua_settop(co, 0);
    }
    if (lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, co_wrap_call, 1);
    return 1;
}

/* As coroutine.status sees it: only a suspended or dead coroutine may be closed. */
static const char *co_status(lua_State *L, lua_State *co)
{
    lua_Debug ar;
    if (co == L)
        return "running";
    switch (lua_status(co)) {
    case LUA_YIELD:
        return "suspended";
    case LUA_OK:
        if (lua_getstack(co, 0, &ar))
            return "normal"; /* it resumed another */
        return lua_gettop(co) == 0 ? "dead" : "suspended";
    default:
        return "dead"; /* stopped by an error */
    }
}

static int co_close(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co != NULL, 1, "coroutine");

    const char *st = co_status(L, co);
    if (strcmp(st, "suspended") != 0 && strcmp(st, "dead") != 0)
        return luaL_error(L, "cannot close a %s coroutine", st);
    if (was_killed(L, co)) {
        lua_pushboolean(L, 0);
        lua_pushliteral(L, "coroutine was stopped by the script limits; not closed");
        return 2;
    }
    enter(L, s);
    mt__scripts_arm(s, co);
    lua_State *prev = s->running;
    s->running = co;
    int status = lua_resetthread(co);
    s->running = prev;
    s->co_nest--;
    if (status == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

/* --- installing ---------------------------------------------------------------------------- */

static void wrap_field(lua_State *L, int tbl, const char *name, lua_CFunction f)
{
    tbl = lua_absindex(L, tbl);
    lua_getfield(L, tbl, name);
    lua_pushcclosure(L, f, 1);
    lua_setfield(L, tbl, name);
}

static void set_field(lua_State *L, int tbl, const char *name, lua_CFunction f)
{
    tbl = lua_absindex(L, tbl);
    lua_pushcfunction(L, f);
    lua_setfield(L, tbl, name);
}

void mt__sandbox_open(lua_State *L)
{
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    wrap_field(L, g, "load", sb_load);
    wrap_field(L, g, "collectgarbage", sb_collectgarbage);
    wrap_field(L, g, "setmetatable", sb_setmetatable);
    set_field(L, g, "xpcall", sb_xpcall);

    lua_getfield(L, g, "string");
    mt__lmatch_install(L, -1);
    set_field(L, -1, "rep", str_rep);
    lua_pop(L, 1);

    lua_getfield(L, g, "table");
    set_field(L, -1, "move", tab_move);
    set_field(L, -1, "insert", tab_insert);
    set_field(L, -1, "remove", tab_remove);
    set_field(L, -1, "concat", tab_concat);
    set_field(L, -1, "sort", tab_sort);
    lua_pop(L, 1);

    lua_getfield(L, g, "os");
    wrap_field(L, -1, "date", os_date);
    lua_pop(L, 1);

    lua_getfield(L, g, "coroutine");
    set_field(L, -1, "resume", co_resume);
    set_field(L, -1, "wrap", co_wrap);
    set_field(L, -1, "close", co_close);
    lua_pop(L, 1);

    /* Strings share one metatable whose __index is the string library every script's
     * ("x"):find goes through: hide it, or one script could change it for all. */
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);

    lua_newtable(L); /* coroutines killed by an abort; they must not keep each other alive */
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_setfield(L, LUA_REGISTRYINDEX, MT_KILLED_KEY);
    lua_pop(L, 1);
}

static void shallow_copy(lua_State *L, int src)
{
    src = lua_absindex(L, src);
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, src)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
}

/* Pushes a new environment for one script: a copy of the globals with copies of the library
 * tables, its own _G, its own `loaded` table (for require) holding its own copy of the
 * moontun module with its own state table. Sets s->env_refs/loaded_refs/mod_refs[script]. */
void mt__sandbox_env(lua_State *L, struct mt_scripts *s, int script)
{
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int shared_loaded = lua_gettop(L);

    lua_newtable(L); /* env */
    int env = lua_gettop(L);
    lua_newtable(L); /* loaded */
    int loaded = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, g)) {
        if (lua_type(L, -1) == LUA_TTABLE && !lua_rawequal(L, -1, g)) {
            shallow_copy(L, -1);
            lua_pushvalue(L, -3);
            lua_pushvalue(L, -2);
            lua_rawset(L, loaded); /* require "string" gives this script's copy */
            lua_remove(L, -2);
        }
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, env);
    }
    lua_pushvalue(L, env);
    lua_setfield(L, env, "_G");
    lua_pushvalue(L, env);
    lua_setfield(L, loaded, "_G");

    lua_getfield(L, shared_loaded, "moontun");
    shallow_copy(L, -1);
    lua_newtable(L);
    lua_setfield(L, -2, "state");
    lua_getfield(L, -1, "config");
    shallow_copy(L, -1);
    lua_setfield(L, -3, "config");
    lua_pop(L, 1);
    lua_pushvalue(L, -1);
    s->mod_refs[script] = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_setfield(L, loaded, "moontun");
    lua_pop(L, 1);

    s->loaded_refs[script] = luaL_ref(L, LUA_REGISTRYINDEX);
    s->env_refs[script] = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, g - 1);
}
