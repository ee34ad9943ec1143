/* The one private header of the Lua binding (lua/): the chain and its state (script.c), the
 * sandbox's bounds (sandbox.c, lmatch.c), the packet userdata (lpacket.c), the peer userdata
 * (lpeer.c), the moontun module (lmoontun.c) and the packet builder (lbuild.c). The core sees
 * none of it: it calls the scripts through include/moontun/script.h only. */
#ifndef MOONTUN_LUA_BINDING_H
#define MOONTUN_LUA_BINDING_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <lauxlib.h>
#include <lua.h>

#include "moontun/packet.h"
#include "moontun/peer.h"
#include "moontun/script.h"

#define MT_CHAIN_DEPTH 3 /* packet userdata kept per state: one per nesting level */

enum mt_hook_slot {
    MT_SLOT_EGRESS = 0,
    MT_SLOT_INGRESS = 1,
    MT_SLOT_ENCODE = 2,
    MT_SLOT_DECODE = 3,
    MT_SLOT_START = 4,
    MT_SLOT_STOP = 5,
    MT_SLOT_RELOAD = 6, /* reload(state): the old script's mt.state after its stop() ran */
    MT_NSLOTS = 7,
};

/* How a call into Lua ended (mt__scripts_call). */
enum mt_call_status {
    MT_CALL_OK = 0,
    MT_CALL_ERROR = 1,  /* the script raised an error */
    MT_CALL_BUDGET = 2, /* stopped by the instruction budget */
    MT_CALL_MEMORY = 3, /* stopped by the memory cap */
};

/* What one script of the chain did. hook_time is a ring of the durations of its last
 * MT_HOOK_SAMPLES timed packet handler calls; one call in MT_HOOK_EVERY is timed. */
#define MT_HOOK_SAMPLES 256
#define MT_HOOK_EVERY   16
struct mt__script_counts {
    uint64_t calls, errors, budget_aborts, memory_aborts;
    uint64_t verdicts[4]; /* enum mt_verdict of its packet handlers' successful calls */
    uint32_t nsamples;
    float hook_time[MT_HOOK_SAMPLES];
};

struct mt_scripts {
    lua_State *L;                /* ro: the main thread */
    const struct mt_config *cfg; /* ro */
    struct mt_host host;         /* ro: a copy of what the core gave us */

    /* Handlers, as registry references, per hook in chain order: a per-packet call is one
     * rawgeti per script, no string lookups. */
    int refs[MT_NSLOTS][MT_MAX_SCRIPTS];
    int owner[MT_NSLOTS][MT_MAX_SCRIPTS]; /* index of the script each handler came from */
    int nrefs[MT_NSLOTS];
    unsigned hooks; /* MT_HOOK_* */
    int nscripts;
    char names[MT_MAX_SCRIPTS][64]; /* basenames, for logs */
    char dirs[MT_MAX_SCRIPTS][256]; /* where each script lives, for require */

    int pkt_refs[MT_CHAIN_DEPTH];     /* the reusable packet userdata */
    void *pkt_blocks[MT_CHAIN_DEPTH]; /* ... their blocks (a userdata never moves) */
    int depth;                        /* packet userdata in use (nested chains) */
    int in_encode;                    /* encode handlers running: mt.send is refused then */
    bool sending;                     /* the scratch packet is in use */
    uint8_t *scratch;                 /* MT_PKT_BUFSIZE bytes for mt.send, allocated at load */

    /* Per-script environments (sandbox.c): globals, require's loaded table, moontun module
     * (whose `state` is carried over reloads), as registry references. */
    int env_refs[MT_MAX_SCRIPTS];
    int loaded_refs[MT_MAX_SCRIPTS];
    int mod_refs[MT_MAX_SCRIPTS];

    int peer_cache_ref;       /* registry table: lightuserdata(struct mt_peer *) -> peer object */
    int peer_meta_ref;        /* the peer metatable: recognises peers without a lookup by name */
    struct mt_peer **peerbuf; /* for mt.peers(), allocated at load */
    size_t npeerbuf;

    /* The call in progress. */
    int active;       /* nesting of mt__scripts_call */
    int cur_script;   /* whose code runs, for log prefixes and require; -1: none */
    long call_budget; /* instructions per call (cfg->lua_budget, or more while loading) */
    long budget;      /* instructions allowed for this outer call */
    long used;        /* instructions counted so far (in steps) */
    int step;         /* the count hook fires every step instructions */
    bool aborting;    /* budget exceeded: every instruction raises until the call unwinds */
    bool timed_out;   /* ... because of the wall-clock bound, not the instruction count */
    bool mem_refused;
    bool gc_done;                /* collectgarbage has run a full pass in this call */
    int co_nest;                 /* coroutines resumed or closed inside one another */
    unsigned csteps;             /* steps of bounded C functions (mt__sandbox_step) */
    lua_State *volatile running; /* the Lua thread running now: the watchdog arms its hook */
    /* The count the main thread's hook was last set to by mt__scripts_arm (-1: unknown, as
     * after the watchdog's signal armed it): an outer call then skips lua_gethook & co. */
    volatile int main_armed;

    /* Wall-clock bound. */
    double call_time;    /* seconds per outer call (--lua-time; more while loading) */
    double time_cap;     /* > 0: the next outer call gets at most this (timers: the loop turn) */
    double started;      /* when the outer call in progress began */
    double deadline;     /* when it must end */
    int bound_ms;        /* deadline - started, for the message */
    double last_elapsed; /* how long the last outer call took (a packet handler's: if it failed) */
    unsigned turn_iter;  /* the loop iteration timers last ran in */
    double turn_used;    /* seconds of timer calls in that iteration */
    uint64_t timer_deferred; /* timer runs put off to a later loop turn */
    const char *what;        /* the call in progress, for the stall log */
    bool loading;            /* top levels and start(): the overload bound does not apply */
    double win_start;        /* the current second, for the overload bound */
    double win_used;         /* seconds of Lua in it */
    bool win_warned;
    bool overloaded; /* the call in progress is in an overloaded second */

    /* The watchdog thread (script.c): shared with the loop thread through these atomics. */
    pthread_t wd_thread;
    pthread_t loop_thread;
    bool wd_running;
    atomic_bool wd_stop;
    atomic_int_fast64_t wd_deadline_ns; /* of the call in progress; 0: none */
    /* Set by the watchdog to the deadline it saw pass. The call is late only if that is its
     * own deadline (wd_deadline_ns): a slow watchdog must not condemn the next call. */
    atomic_int_fast64_t expired_dl;
    bool closing; /* lua_close is running finalizers: no new timers */

    /* Memory cap. */
    size_t mem_used;
    size_t mem_limit;
    size_t mem_peak;

    /* Log rate limit for mt.log, print and warnings. */
    double log_tokens; /* lines that may be logged now */
    double log_last;   /* when the bucket was last filled */
    unsigned long log_lines;
    unsigned long log_suppressed;

    /* Error log rate limit. */
    double err_window;
    unsigned err_logged;
    unsigned long err_suppressed;

    /* Counters of our own, shown by mt.stats(). */
    uint64_t calls;
    uint64_t errors;
    uint64_t dead_routes;
    uint64_t timer_calls;

    int decided, decided_slot;       /* whose handler ended the last chain (-1: none), for replay */
    int decided_idx;                 /* and its place in the slot's handlers (refs[slot][idx]) */
    bool chain_failed;               /* the last chain's verdict came from a failure (--on-error) */
    char last_error[160];            /* the last failure, condensed (mt_scripts_error) */
    int8_t on_error[MT_MAX_SCRIPTS]; /* -S "... on_error=pass|drop": -1 = --on-error's */
    double dead_logged;              /* when a route to a gone peer was last logged */

    /* Per-script counters for moontun show and metrics (lua/scriptstats.c reads them);
     * carried over a reload. */
    struct mt__script_counts counts[MT_MAX_SCRIPTS];

    /* What the scripts added to the control plane: mt.command, mt.counter, mt.gauge
     * (lcontrol.c). NULL until one is used; each state has its own, so a reload re-registers. */
    struct mt__lcontrol *ctl;

    char warnbuf[256]; /* pieces of a Lua warning being assembled */
    size_t warnlen;
};

/* Makes a class metatable as liolib's createmeta does: metamethods on it, methods (if any) in
 * a table behind __index, and __metatable so scripts cannot tamper with it. */
static inline void mt__lua_class(lua_State *L, const char *name, const luaL_Reg *metamethods,
                                 const luaL_Reg *methods)
{
    luaL_newmetatable(L, name);
    luaL_setfuncs(L, metamethods, 0);
    if (methods != NULL) {
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pushstring(L, name);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 1);
}

static inline struct mt_scripts *mt__scripts_of(lua_State *L)
{
    return *(struct mt_scripts **)lua_getextraspace(L);
}

/* The one wrapper for every call into Lua. The function and its nargs arguments are on top
 * of L's stack. Sets the budget (unless nested in another call, whose budget it shares), calls
 * under a traceback handler, and on failure logs one rate-limited line naming `what` and the
 * script, counts it, and leaves the stack as it was before the function was pushed. On success
 * the nres results are on the stack. Never raises. */
enum mt_call_status mt__scripts_call(struct mt_scripts *s, lua_State *L, int nargs, int nres,
                                     const char *what, int script);

/* Like mt__scripts_call, and a failure also goes to err as one line without its traceback,
 * for a caller that reports it (moontun call): logged, counted and told. */
enum mt_call_status mt__scripts_call_report(struct mt_scripts *s, lua_State *L, int nargs, int nres,
                                            const char *what, int script, char *err, size_t errsz);

/* mt.send: runs the encode hooks on a copy of data and hands the result to host->send.
 * Returns 1 when sent, 0 when encode dropped it, or a negative errno from the host.
 * May raise (called from Lua): nested inside encode, or too long. */
int mt__scripts_send(struct mt_scripts *s, lua_State *L, struct mt_peer *peer, const uint8_t *data,
                     size_t len);

/* Logs msg with the current script's name as prefix, at most MT_LOG_PER_SEC lines a second
 * (the rest are counted and summed up in one line). */
void mt__scripts_log(struct mt_scripts *s, int level, const char *msg);

/* Raises "time limit exceeded" in L if the call in progress is past its bound (or already
 * aborting; in an overloaded second, also when its steps exceed the instruction budget). For
 * C functions that loop: they call mt__sandbox_step once per step. */
void mt__scripts_tick(struct mt_scripts *s, lua_State *L);
static inline void mt__sandbox_step(struct mt_scripts *s, lua_State *L)
{
    if ((++s->csteps & 1023u) == 0)
        mt__scripts_tick(s, L);
}
/* Gives thread co our hook at the current step (coroutines are resumed through this). */
void mt__scripts_arm(struct mt_scripts *s, lua_State *co);

/* --- sandbox.c, lmatch.c ------------------------------------------------------------------- */

/* Replaces the unbounded library functions in the global tables. Before mt__sandbox_env. */
void mt__sandbox_open(lua_State *L);
/* Makes script's environment, loaded table and module copy (see struct mt_scripts). */
void mt__sandbox_env(lua_State *L, struct mt_scripts *s, int script);
/* Sets find, match, gmatch and gsub of the string table at idx to the bounded matcher. */
void mt__lmatch_install(lua_State *L, int idx);

/* --- lmoontun.c: the module -------------------------------------------------------------- */

/* The verdict constants handed to scripts as light userdata: unique and unforgeable. */
extern const char mt__verdict_pass, mt__verdict_drop, mt__verdict_reply;

/* Creates the module table and the metatables of the timer and prefix classes (and, through
 * mt__lpeer_open, the peer class); pushes the module. Needs s->peer_cache_ref set. */
int mt__lmoontun_open(lua_State *L);

/* --- lpacket.c: the packet view ---------------------------------------------------------- */

#define MT_LPACKET_META "moontun.packet"

/* Registers the packet metatable and the header-view metatables in L. */
void mt__lpacket_open(lua_State *L);
/* Pushes a new, expired packet userdata. The chain makes a few at load time and reuses them
 * for every call (no allocation per packet). */
void mt__lpacket_new(lua_State *L);
/* Points the packet userdata ud (its block, as lua_touserdata gave it when the chain made it:
 * per packet, no index lookup) to pkt, making it valid until mt__lpacket_expire. */
void mt__lpacket_bind(void *ud, struct mt_packet *pkt);
/* Makes the userdata ud raise an "expired" error on any further use. */
void mt__lpacket_expire(void *ud);
/* The live packet of the packet userdata at idx (its metatable compared with the one at meta,
 * an upvalue of the caller: no registry lookup); raises for anything else or an expired one. */
struct mt_packet *mt__lpacket_arg(lua_State *L, int idx, int meta);

/* --- lflows.c: mt.flows ------------------------------------------------------------------- */

/* Registers the flow table's metatables and sets module.flows (module at idx, with every). */
void mt__lflows_open(lua_State *L, int module);

/* --- lpeer.c: the peer userdata ---------------------------------------------------------- */

#define MT_LPEER_META "moontun.peer"

/* Registers the peer metatable and keeps a reference to it in s->peer_meta_ref. */
void mt__lpeer_open(lua_State *L);
/* Pushes the one Lua object for peer (made on first use, cached per state), or nil. */
void mt__lpeer_push(lua_State *L, struct mt_peer *peer);
/* Pushes the cached object for peer and returns true, or pushes nothing and returns false
 * (it has none yet; mt__lpeer_push would allocate one). Never raises. */
bool mt__lpeer_push_cached(lua_State *L, struct mt_peer *peer);
/* 1 if the value at idx is a peer object (then *out is the peer, or NULL when it is gone),
 * else 0. Never raises. */
int mt__lpeer_check(lua_State *L, int idx, struct mt_peer **out);
/* The peer object argument idx (raises when it is not one): its peer, or NULL when gone. */
struct mt_peer *mt__lpeer_arg(lua_State *L, int idx);
/* Detaches the cached object of peer: it keeps a snapshot and reports up = false. */
void mt__lpeer_gone(lua_State *L, struct mt_peer *peer);

/* --- lbuild.c ------------------------------------------------------------------------------ */

/* mt.packet(spec) -> string: Ethernet (optional), IPv4 or IPv6, TCP/UDP/ICMP/ICMPv6 or raw,
 * with every length and checksum right unless the spec asks for a lie. */
int mt__lbuild_packet(lua_State *L);

/* --- lcontrol.c ---------------------------------------------------------------------------- */

/* mt.command, mt.counter and mt.gauge, for the module table. */
extern const luaL_Reg mt__lcontrol_funcs[];
/* The class of the objects mt.counter and mt.gauge return (lmoontun.c makes its metatable). */
#define MT_LMETRIC_META "moontun.metric"
extern const luaL_Reg mt__lmetric_metamethods[], mt__lmetric_methods[];
/* Frees what the scripts registered (after lua_close). */
void mt__lcontrol_free(struct mt_scripts *s);

#endif
