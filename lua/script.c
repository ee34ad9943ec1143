/* The script chain: one Lua state holding every -S script, the sandbox it runs in, the one
 * protected-call wrapper every call into Lua goes through (traceback, instruction budget,
 * wall-clock bound and its watchdog thread, memory cap, rate-limited error log, --on-error
 * verdict), the per-packet chain and reload. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "moontun/log.h"
#include "moontun/script.h"

#include "binding.h"

#define MT_LOAD_BUDGET     10000000L /* a chunk's top level may build tables: allow more */
#define MT_LOAD_TIME_MIN   1.0 /* s: a chunk's top level and start() get 20 bounds, at least this */
#define MT_HOOK_STEP       1000 /* the count hook fires this often; see budget_hook */
#define MT_ERRLOG_PER_SEC  5
#define MT_LOG_PER_SEC     20   /* mt.log, print and warnings together: lines a second */
#define MT_LOG_BURST       200  /* ... after a burst of this many */
#define MT_LOG_LINE        2048 /* bytes of a script's log line */
#define MT_ERRLINE         768
#define MT_WD_SIGNAL       SIGURG /* ignored by default: a stray one before we install is harmless */
#define MT_WD_TICK_NS      5000000LL    /* the watchdog looks this often (5 ms) */
#define MT_STALL_NS        5000000000LL /* past a call's bound by this much: the process ends */
#define MT_COPY_DEPTH      100          /* mt.state nesting carried over a reload */
#define MT_WIN_SHARE       0.25   /* s of stopped calls per second before calls are overloaded */
#define MT_OVERLOAD_BOUND  0.005  /* s: the bound of a call in an overloaded second */
#define MT_OVERLOAD_BUDGET 10000L /* instructions (and C steps) of such a call */

#ifndef MOONTUN_LUA_DIR
#define MOONTUN_LUA_DIR "/usr/local/share/moontun/lua"
#endif
#ifndef MOONTUN_LUA_RELDIR
#define MOONTUN_LUA_RELDIR "../share/moontun/lua"
#endif

static const char *const slot_names[MT_NSLOTS] = {
    "egress", "ingress", "encode", "decode", "start", "stop", "reload",
};

static const unsigned slot_hooks[MT_NSLOTS] = {
    MT_HOOK_EGRESS, MT_HOOK_INGRESS, MT_HOOK_ENCODE, MT_HOOK_DECODE, 0, 0, 0,
};

/* The coarse clock (a tick of 1-10 ms, 4 ms here) costs 6 ns where the precise one costs 28:
 * it is read twice per call and every 1,000 instructions, and the bound is tens of ms. The
 * watchdog reads the same clock (mono_ns), so deadlines compare. */
#define MT_CLOCK CLOCK_MONOTONIC_COARSE

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(MT_CLOCK, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static const char *cur_name(const struct mt_scripts *s, int script)
{
    return script >= 0 && script < s->nscripts ? s->names[script] : "lua";
}

/* mt.log, print and warnings: a script logging per packet, or 20,000 finalizer warnings,
 * must not flood the log (or the disk behind it). A token bucket: bursts of MT_LOG_BURST
 * lines (a script that reports on a burst of packets), MT_LOG_PER_SEC lines a second after. */
void mt__scripts_log(struct mt_scripts *s, int level, const char *msg)
{
    double now = mono_s();
    s->log_tokens += (now - s->log_last) * MT_LOG_PER_SEC;
    if (s->log_tokens > MT_LOG_BURST)
        s->log_tokens = MT_LOG_BURST;
    s->log_last = now;
    if (s->log_tokens < 1) {
        s->log_suppressed++;
        return;
    }
    s->log_tokens -= 1;
    if (s->log_suppressed > 0) {
        mt_warn("lua: %lu script log lines suppressed", s->log_suppressed);
        s->log_suppressed = 0;
    }
    s->log_lines++;
    /* A 60 MB print would be one blocking write of 60 MB: a line is at most MT_LOG_LINE. */
    size_t len = strlen(msg);
    mt_log((enum mt_log_level)level, "%s: %.*s%s", cur_name(s, s->cur_script),
           (int)(len > MT_LOG_LINE ? MT_LOG_LINE : len), msg, len > MT_LOG_LINE ? "..." : "");
}

/* --- limits: memory and instructions ------------------------------------------------------- */

/* Like HAProxy's hlua_alloc: tracks what the state holds and refuses growth past the cap. Lua
 * turns the refusal into a memory error (after an emergency collection), which the wrapper
 * counts as a memory abort. */
static void *l_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct mt_scripts *s = ud;
    size_t old = ptr != NULL ? osize : 0; /* for a new block, osize is a type tag */

    if (nsize == 0) {
        free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old) {
        size_t grow = nsize - old;
        if (grow > s->mem_limit || s->mem_used > s->mem_limit - grow) {
            s->mem_refused = true;
            return NULL;
        }
    }
    void *p = realloc(ptr, nsize);
    if (p == NULL) {
        s->mem_refused = true;
        return NULL;
    }
    s->mem_used = s->mem_used - old + nsize;
    if (s->mem_used > s->mem_peak)
        s->mem_peak = s->mem_used;
    return p;
}

/* Stops the call in progress from thread L: from now on every instruction of L and of the
 * main thread raises (as Redis's script_lua.c does), so a script's own pcall may catch the
 * error but cannot run one more instruction of its own afterwards. level: where to report. */
static int raise_abort(struct mt_scripts *s, lua_State *L, int level)
{
    s->aborting = true;
    mt__scripts_arm(s, L);
    /* A coroutine's error is caught by its resume like by a pcall: the thread that made the
     * outer call must stop at its next instruction too. */
    if (L != s->L)
        mt__scripts_arm(s, s->L);
    luaL_where(L, level);
    if (s->timed_out)
        lua_pushfstring(L, "time limit exceeded (%d ms)", s->bound_ms);
    else
        lua_pushfstring(L, "instruction budget exceeded (%I instructions)", (lua_Integer)s->budget);
    lua_concat(L, 2);
    return lua_error(L);
}

/* The watchdog has seen this call's deadline pass. */
static bool wd_expired(struct mt_scripts *s)
{
    int64_t dl = atomic_load_explicit(&s->wd_deadline_ns, memory_order_relaxed);
    return dl != 0 && atomic_load_explicit(&s->expired_dl, memory_order_relaxed) == dl;
}

static bool call_late(struct mt_scripts *s)
{
    return wd_expired(s) || mono_s() >= s->deadline;
}

/* Counts instructions in steps for the whole call, whichever thread runs them (coroutines
 * inherit the hook, and all of them draw from one budget), and looks at the clock. The count
 * hook is periodic: it is never re-armed while all is well (lua_sethook walks the whole call
 * stack, which made deep recursion cost seconds). The watchdog arms it at every instruction
 * of the running thread once the bound has passed, for instructions that are slow on their
 * own (== on two 20 MB strings). */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct mt_scripts *s = mt__scripts_of(L);

    (void)ar;
    if (s->active == 0)
        return; /* armed for a call that has ended */
    if (!s->aborting) {
        s->used += lua_gethookcount(L);
        bool late = call_late(s);
        if (s->used < s->budget && !late)
            return;
        s->timed_out = late && s->used < s->budget;
    }
    raise_abort(s, L, 0);
}

void mt__scripts_arm(struct mt_scripts *s, lua_State *co)
{
    int count = s->aborting || wd_expired(s) ? 1 : s->step;
    if (co == s->L) { /* never collected, so its address names it; see main_armed */
        if (s->main_armed == count)
            return;
        s->main_armed = count;
    }
    if (count == 0) { /* no instruction budget: no hook until the watchdog arms one */
        if (lua_gethook(co) != NULL)
            lua_sethook(co, NULL, 0, 0);
        return;
    }
    if (lua_gethook(co) != budget_hook || lua_gethookcount(co) != count ||
        lua_gethookmask(co) != LUA_MASKCOUNT)
        lua_sethook(co, budget_hook, LUA_MASKCOUNT, count);
}

void mt__scripts_tick(struct mt_scripts *s, lua_State *L)
{
    if (s->active == 0)
        return;
    if (s->overloaded && !s->aborting) { /* C steps count as instructions then */
        s->used += 1024;
        if (s->used >= s->budget) {
            s->timed_out = false;
            raise_abort(s, L, 1);
        }
    }
    if (s->aborting || call_late(s)) {
        if (!s->aborting)
            s->timed_out = true;
        raise_abort(s, L, 1);
    }
}

/* --- the watchdog -------------------------------------------------------------------------- */

/* A thread per state looks every 5 ms at the call in progress. Past its bound, it sets
 * `expired_dl` and signals the loop thread, whose handler arms the count hook at every
 * instruction of the running Lua thread (as lua.c does from its SIGINT handler). Past the
 * bound by MT_STALL_NS, the loop is stuck where no hook reaches (a C function we did not
 * bound): it logs what ran and ends the process with MT_EXIT_STALL for a supervisor. */

static struct mt_scripts *_Atomic calling_state; /* the state with a call in progress */

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(MT_CLOCK, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void wd_signal(int sig)
{
    (void)sig;
    struct mt_scripts *s = atomic_load(&calling_state);
    if (s == NULL || s->active == 0 || !wd_expired(s))
        return;
    lua_State *L = s->running;
    s->main_armed = -1;
    if (L != NULL)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT, 1); /* documented as signal-safe */
}

static void *watchdog(void *arg)
{
    struct mt_scripts *s = arg;
    const struct timespec tick = {0, MT_WD_TICK_NS};

    while (!atomic_load(&s->wd_stop)) {
        nanosleep(&tick, NULL);
        int64_t dl = atomic_load(&s->wd_deadline_ns);
        if (dl == 0)
            continue;
        int64_t now = mono_ns();
        if (now < dl)
            continue;
        if (atomic_exchange(&s->expired_dl, dl) != dl)
            pthread_kill(s->loop_thread, MT_WD_SIGNAL);
        if (now - dl > MT_STALL_NS && atomic_load(&s->wd_deadline_ns) == dl) {
            int script = s->cur_script;
            mt_error("lua: %s %s has run %.1f s past its time bound where no limit reaches; "
                     "exiting with status %d so that a supervisor restarts moontun",
                     script >= 0 && script < s->nscripts ? s->names[script] : "lua",
                     s->what != NULL ? s->what : "call", (double)(now - dl) / 1e9, MT_EXIT_STALL);
            _exit(MT_EXIT_STALL);
        }
    }
    return NULL;
}

static void wd_install(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = wd_signal;
    sa.sa_flags = SA_RESTART; /* read/write in the core go on; epoll_wait's EINTR is libev's */
    sigemptyset(&sa.sa_mask);
    sigaction(MT_WD_SIGNAL, &sa, NULL);
}

static int watchdog_start(struct mt_scripts *s)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;

    s->loop_thread = pthread_self();
    atomic_init(&s->wd_stop, false);
    atomic_init(&s->wd_deadline_ns, 0);
    atomic_init(&s->expired_dl, 0);
    pthread_once(&once, wd_install);
    /* The thread takes no signal of the process: libev may block SIGTERM, SIGUSR1, ... in the
     * loop thread only (to read them from a signalfd), and the kernel would then deliver them
     * here, where their default action ends the process without its summary. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&s->wd_thread, NULL, watchdog, s);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0)
        return -rc;
    s->wd_running = true;
    return 0;
}

static void watchdog_stop(struct mt_scripts *s)
{
    if (!s->wd_running)
        return;
    atomic_store(&s->wd_stop, true);
    pthread_join(s->wd_thread, NULL);
    s->wd_running = false;
}

/* --- the call wrapper ---------------------------------------------------------------------- */

/* Message handler, as in lua.c's msghandler: the message plus a traceback. */
static int msgh(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            msg = lua_tostring(L, -1);
        else
            msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void err_append(char *out, size_t outsz, size_t *n, const char *p, size_t len)
{
    if (*n + 1 >= outsz)
        return;
    size_t room = outsz - 1 - *n;
    if (len > room)
        len = room;
    memcpy(out + *n, p, len);
    *n += len;
    out[*n] = '\0';
}

/* Makes one log line of a message and its traceback: "msg [at f.lua:3 < f.lua:9 < ...]".
 * with_trace false keeps only the message (start-up errors, which name file and line). */
static void err_condense(const char *in, char *out, size_t outsz, bool with_trace)
{
    size_t n = 0;
    bool in_trace = false, first_frame = true;

    out[0] = '\0';
    while (*in != '\0') {
        const char *eol = strchr(in, '\n');
        size_t len = eol != NULL ? (size_t)(eol - in) : strlen(in);
        const char *line = in;
        in += len + (eol != NULL);

        if (!in_trace && len == 16 && memcmp(line, "stack traceback:", 16) == 0) {
            in_trace = true;
            if (!with_trace)
                break;
            continue;
        }
        if (!in_trace) {
            if (n > 0)
                err_append(out, outsz, &n, " ", 1);
            err_append(out, outsz, &n, line, len);
            continue;
        }
        while (len > 0 && (*line == '\t' || *line == ' ')) {
            line++;
            len--;
        }
        if (len == 0 || strncmp(line, "[C]: in ?", len) == 0)
            continue;
        err_append(out, outsz, &n, first_frame ? " [" : " < ", first_frame ? 2 : 3);
        err_append(out, outsz, &n, line, len);
        first_frame = false;
    }
    if (!first_frame)
        err_append(out, outsz, &n, "]", 1);
    if (n + 1 >= outsz && outsz > 4)
        memcpy(out + outsz - 4, "...", 4);
}

/* Logs at most MT_ERRLOG_PER_SEC errors a second; the rest are summed up in one line. */
static void log_error(struct mt_scripts *s, const char *line)
{
    double now = mono_s();
    if (now - s->err_window >= 1.0) {
        if (s->err_suppressed > 0)
            mt_error("lua: %lu more script errors suppressed", s->err_suppressed);
        s->err_window = now;
        s->err_logged = 0;
        s->err_suppressed = 0;
    }
    if (s->err_logged < MT_ERRLOG_PER_SEC) {
        s->err_logged++;
        mt_error("%s", line);
    } else {
        s->err_suppressed++;
    }
}

/* Counts and logs one failed call (or a handler's invalid verdict). */
static void call_failed(struct mt_scripts *s, enum mt_call_status kind, const char *what,
                        int script, const char *msg, bool count_budget)
{
    char cond[MT_ERRLINE], line[MT_ERRLINE + 128];

    s->errors++;
    if (script >= 0) {
        s->counts[script].errors++;
        s->counts[script].budget_aborts += kind == MT_CALL_BUDGET && count_budget;
        s->counts[script].memory_aborts += kind == MT_CALL_MEMORY;
    }
    if (s->host.stats != NULL) {
        s->host.stats->script_errors++;
        if (kind == MT_CALL_BUDGET && count_budget)
            s->host.stats->budget_aborts++;
        if (kind == MT_CALL_MEMORY)
            s->host.stats->memory_aborts++;
    }
    err_condense(msg != NULL ? msg : "(no message)", cond, sizeof cond, true);
    snprintf(s->last_error, sizeof s->last_error, "%s%.140s",
             kind == MT_CALL_BUDGET   ? "aborted: "
             : kind == MT_CALL_MEMORY ? "out of memory: "
                                      : "",
             cond);
    char after[32] = "";
    if (kind == MT_CALL_BUDGET && count_budget) /* how long the stopped call really took */
        snprintf(after, sizeof after, " after %d ms", (int)(s->last_elapsed * 1000 + 0.5));
    snprintf(line, sizeof line, "%s: %s %s%s: %s", cur_name(s, script), what,
             kind == MT_CALL_BUDGET   ? "aborted"
             : kind == MT_CALL_MEMORY ? "out of memory"
                                      : "failed",
             after, cond);
    log_error(s, line);
}

/* Each call is bounded, but a flood of packets that each make a script spin would still hold
 * the loop (and SIGTERM) for a bound per packet: once calls stopped by a limit have taken
 * MT_WIN_SHARE of the current second, every call of a script until the next second is
 * overloaded: it gets MT_OVERLOAD_BOUND and MT_OVERLOAD_BUDGET instructions, the steps of
 * bounded C functions counting as instructions (a handler that does its job needs a few
 * hundred). Scripts that are merely busy never get there. Loading is exempt: start-up runs
 * nothing else. */
static bool overloaded(struct mt_scripts *s, double now)
{
    if (now - s->win_start >= 1.0) {
        s->win_start = now;
        s->win_used = 0;
        s->win_warned = false;
    }
    if (s->loading || s->win_used < MT_WIN_SHARE)
        return false;
    if (!s->win_warned) {
        s->win_warned = true;
        mt_warn("lua: calls stopped by the limits took %.0f ms of the last second; until the "
                "next, calls get %.0f ms and %ld instructions",
                s->win_used * 1000, MT_OVERLOAD_BOUND * 1000, MT_OVERLOAD_BUDGET);
    }
    return true;
}

/* The wrapper behind mt__scripts_call. With err, a failure is written there (one line, no
 * traceback) instead of being logged and counted: loading reports its errors to the caller;
 * with err and count, it is both (a script command's error goes to its caller and counts).
 * msgh_idx: where msgh already is on L's stack (run_chain pushes it once per packet, below
 * its calls: inserting and removing it per call cost 10% of an empty handler), or 0: it is
 * pushed below the function here and removed after. */
static enum mt_call_status call_at(struct mt_scripts *s, lua_State *L, int nargs, int nres,
                                   const char *what, int script, char *err, size_t errsz,
                                   bool count, int msgh_idx)
{
    int base = lua_gettop(L) - nargs; /* the function */
    int prev_script = s->cur_script;
    bool outer = s->active == 0;

    if (msgh_idx == 0) {
        lua_pushcfunction(L, msgh);
        lua_insert(L, base);
    }
    if (outer) {
        double now = mono_s();
        s->overloaded = script >= 0 && overloaded(s, now);
        double bound =
            s->overloaded && s->call_time > MT_OVERLOAD_BOUND ? MT_OVERLOAD_BOUND : s->call_time;
        if (s->time_cap > 0 && s->time_cap < bound)
            bound = s->time_cap;
        s->time_cap = 0;
        s->budget = s->overloaded && (s->call_budget == 0 || s->call_budget > MT_OVERLOAD_BUDGET)
                        ? MT_OVERLOAD_BUDGET
                        : s->call_budget;
        s->step = s->budget < MT_HOOK_STEP ? (int)s->budget : MT_HOOK_STEP;
        if (s->budget == 0) /* --lua-budget 0: the time bound alone, no count hook */
            s->budget = LONG_MAX;
        s->used = 0;
        s->aborting = false;
        s->timed_out = false;
        s->mem_refused = false;
        s->gc_done = false;
        s->co_nest = 0;
        s->what = what;
        s->running = L;
        s->bound_ms = (int)(bound * 1000 + 0.5);
        s->started = now;
        s->deadline = s->started + bound;
        /* Plain stores on x86 (release): the watchdog only needs to see them eventually. */
        atomic_store_explicit(&s->wd_deadline_ns, (int64_t)(s->deadline * 1e9),
                              memory_order_release);
        atomic_store_explicit(&calling_state, s, memory_order_release);
        mt__scripts_arm(s, L);
    }
    s->active++;
    s->cur_script = script;
    s->calls++;
    int status = lua_pcall(L, nargs, nres, msgh_idx != 0 ? msgh_idx : base);
    s->active--;
    s->cur_script = prev_script;
    if (outer) {
        atomic_store_explicit(&s->wd_deadline_ns, 0, memory_order_release);
        atomic_store_explicit(&calling_state, NULL, memory_order_release);
        s->running = NULL;
        /* a packet handler's (msgh_idx) that returned needs no second clock read */
        if (status != LUA_OK || msgh_idx == 0)
            s->last_elapsed = mono_s() - s->started;
    }

    if (status == LUA_OK) {
        if (msgh_idx == 0)
            lua_remove(L, base);
        return MT_CALL_OK;
    }

    enum mt_call_status kind = s->aborting                              ? MT_CALL_BUDGET
                               : status == LUA_ERRMEM || s->mem_refused ? MT_CALL_MEMORY
                                                                        : MT_CALL_ERROR;
    if (outer && kind == MT_CALL_BUDGET) /* only stopped calls count towards an overload */
        s->win_used += s->last_elapsed;
    const char *msg = lua_tostring(L, -1);
    if (err != NULL) {
        char cond[MT_ERRLINE];
        const char *name = cur_name(s, script);
        err_condense(msg != NULL ? msg : "(no message)", cond, sizeof cond, false);
        /* Lua's messages start with "file:line:" already; others get the file in front. */
        if (strstr(cond, name) != NULL)
            snprintf(err, errsz, "%s", cond);
        else
            snprintf(err, errsz, "%s: %s: %s", script >= 0 ? s->cfg->scripts[script].path : "lua",
                     what, cond);
    }
    if (err == NULL || count)
        call_failed(s, kind, what, script, msg, outer);
    lua_settop(L, base - 1);
    if (kind == MT_CALL_MEMORY)
        lua_gc(L, LUA_GCCOLLECT); /* give the next call its memory back */
    if (outer) {
        s->aborting = false;
        s->timed_out = false;
        s->mem_refused = false;
    }
    return kind;
}

static enum mt_call_status call_protected(struct mt_scripts *s, lua_State *L, int nargs, int nres,
                                          const char *what, int script, char *err, size_t errsz)
{
    return call_at(s, L, nargs, nres, what, script, err, errsz, false, 0);
}

enum mt_call_status mt__scripts_call(struct mt_scripts *s, lua_State *L, int nargs, int nres,
                                     const char *what, int script)
{
    return call_protected(s, L, nargs, nres, what, script, NULL, 0);
}

enum mt_call_status mt__scripts_call_report(struct mt_scripts *s, lua_State *L, int nargs, int nres,
                                            const char *what, int script, char *err, size_t errsz)
{
    return call_at(s, L, nargs, nres, what, script, err, errsz, true, 0);
}

/* --- the chain ----------------------------------------------------------------------------- */

static enum mt_verdict on_error_verdict(const struct mt_scripts *s)
{
    return s->cfg->on_error == MT_ON_ERROR_PASS ? MT_VERDICT_PASS : MT_VERDICT_DROP;
}

/* The verdict when this script fails: its own on_error=, else --on-error. Marks the chain as
 * failed, so the core counts the drop once, as the error it is (mt_scripts_failed). */
static enum mt_verdict on_error_of(struct mt_scripts *s, int script)
{
    int own = script >= 0 && script < s->nscripts ? s->on_error[script] : -1;
    enum mt_verdict v = own < 0                   ? on_error_verdict(s)
                        : own == MT_ON_ERROR_PASS ? MT_VERDICT_PASS
                                                  : MT_VERDICT_DROP;
    s->chain_failed = v == MT_VERDICT_DROP;
    return v;
}

/* A handler routed its packet to a peer that has gone: dropped, counted, and said (at most
 * once per 5 s, with the count), since a script cannot see it happen. */
static void dead_route(struct mt_scripts *s, int slot, int script)
{
    s->dead_routes++;
    double now = mono_s();
    if (now - s->dead_logged < 5.0 && s->dead_logged > 0)
        return;
    s->dead_logged = now;
    mt_warn("%s: %s returned a peer that is gone (peer.up is false): packet dropped (%llu so "
            "far)",
            cur_name(s, script), slot_names[slot], (unsigned long long)s->dead_routes);
}

static int lpeer_push_cf(lua_State *L)
{
    mt__lpeer_push(L, lua_touserdata(L, 1));
    return 1;
}

/* Pushes the peer's object; making it the first time allocates, so that is protected. */
static void push_peer(lua_State *L, struct mt_peer *peer)
{
    if (peer == NULL) {
        lua_pushnil(L);
        return;
    }
    if (mt__lpeer_push_cached(L, peer))
        return;
    lua_pushcfunction(L, lpeer_push_cf);
    lua_pushlightuserdata(L, peer);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        lua_pushnil(L);
    }
}

/* " \"drop\"", " 1", " true": the value a handler returned, when it is one a message can
 * show (a string cut at 40 bytes), so the log says what came back, not only its type. */
static void verdict_value(lua_State *L, char *out, size_t outsz)
{
    switch (lua_type(L, -1)) {
    case LUA_TSTRING: {
        size_t n;
        const char *p = lua_tolstring(L, -1, &n);
        snprintf(out, outsz, " \"%.*s\"%s", (int)(n > 40 ? 40 : n), p, n > 40 ? "..." : "");
        break;
    }
    case LUA_TNUMBER:
        if (lua_isinteger(L, -1))
            snprintf(out, outsz, " %lld", (long long)lua_tointeger(L, -1));
        else
            snprintf(out, outsz, " %g", lua_tonumber(L, -1));
        break;
    case LUA_TBOOLEAN:
        snprintf(out, outsz, " %s", lua_toboolean(L, -1) ? "true" : "false");
        break;
    default:
        break;
    }
}

/* Reads the handler's result on top of the stack (and pops it). Returns true to go on to the
 * next script. route is NULL for encode/decode, where only PASS and DROP are allowed. */
static bool read_verdict(struct mt_scripts *s, lua_State *L, int slot, int idx, enum mt_verdict *v,
                         struct mt_peer **route)
{
    int t = lua_type(L, -1);
    const char *bad = NULL;
    char what[80] = "";

    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return true;
    }
    if (t == LUA_TLIGHTUSERDATA) {
        const void *p = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if (p == &mt__verdict_pass)
            return true;
        if (p == &mt__verdict_drop) {
            *v = MT_VERDICT_DROP;
            return false;
        }
        if (p == &mt__verdict_reply && route != NULL) {
            *v = MT_VERDICT_REPLY;
            return false;
        }
        bad = p == &mt__verdict_reply ? "REPLY" : "light userdata";
    } else {
        struct mt_peer *peer;
        if (t == LUA_TUSERDATA && mt__lpeer_check(L, -1, &peer)) {
            lua_pop(L, 1);
            if (route != NULL) {
                if (peer == NULL) { /* routed to a peer that has gone: nowhere to send it */
                    dead_route(s, slot, s->owner[slot][idx]);
                    *v = MT_VERDICT_DROP;
                } else {
                    *route = peer;
                    *v = MT_VERDICT_ROUTE;
                }
                return false;
            }
            bad = "peer";
        } else {
            bad = lua_typename(L, t);
            verdict_value(L, what, sizeof what);
            lua_pop(L, 1);
        }
    }

    /* Errors are rare: only now find where the handler is defined, for the log. */
    lua_Debug ar;
    char where[128] = "";
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->refs[slot][idx]);
    if (lua_getinfo(L, ">S", &ar))
        snprintf(where, sizeof where, "%s:%d: ", ar.short_src, ar.linedefined);
    char msg[400];
    snprintf(msg, sizeof msg, "%shandler returned %s %s%s (expected %s)", where,
             strcmp(bad, "REPLY") == 0 || strcmp(bad, "peer") == 0 ? "a" : "a value of type", bad,
             what, route != NULL ? "nil, PASS, DROP, REPLY or a peer" : "nil, PASS or DROP");
    call_failed(s, MT_CALL_ERROR, slot_names[slot], s->owner[slot][idx], msg, false);
    *v = on_error_of(s, s->owner[slot][idx]);
    return *v == MT_VERDICT_PASS;
}

/* Runs slot's handlers in chain order on pkt. Never raises; L is the running thread (the main
 * thread from the core, a coroutine when mt.send is called from one). */
static enum mt_verdict run_chain(struct mt_scripts *s, lua_State *L, int slot,
                                 struct mt_packet *pkt, struct mt_peer *peer,
                                 struct mt_peer **route)
{
    int n = s->nrefs[slot];
    enum mt_verdict v = MT_VERDICT_PASS;

    if (route != NULL)
        *route = NULL;
    s->decided = -1;
    s->chain_failed = false;
    if (n == 0)
        return MT_VERDICT_PASS;
    if (s->depth >= MT_CHAIN_DEPTH) { /* mt.send guards against this; belt and braces */
        call_failed(s, MT_CALL_ERROR, slot_names[slot], -1, "packet hooks nested too deep", false);
        return on_error_verdict(s);
    }

    int top = lua_gettop(L);
    int nargs = slot == MT_SLOT_EGRESS ? 1 : 2;
    int midx = top + 1, pidx = top + 2;
    lua_pushcfunction(L, msgh); /* once for the chain's calls (call_at) */
    void *block = s->pkt_blocks[s->depth];
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->pkt_refs[s->depth++]);
    mt__lpacket_bind(block, pkt);
    if (nargs == 2)
        push_peer(L, peer);
    if (slot == MT_SLOT_ENCODE)
        s->in_encode++;

    int i;
    for (i = 0; i < n; i++) {
        int script = s->owner[slot][i];
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->refs[slot][i]);
        lua_pushvalue(L, pidx);
        if (nargs == 2)
            lua_pushvalue(L, pidx + 1);
        struct mt__script_counts *c = &s->counts[script];
        /* every MT_HOOK_EVERY-th call is timed: two clock reads, not two per packet */
        bool timed = (c->calls++ % MT_HOOK_EVERY) == 0;
        struct timespec t0, t1;
        if (timed)
            clock_gettime(CLOCK_MONOTONIC, &t0);
        enum mt_call_status st =
            call_at(s, L, nargs, 1, slot_names[slot], script, NULL, 0, false, midx);
        if (timed) {
            clock_gettime(CLOCK_MONOTONIC, &t1);
            c->hook_time[c->nsamples++ % MT_HOOK_SAMPLES] =
                (float)(t1.tv_sec - t0.tv_sec) + (float)(t1.tv_nsec - t0.tv_nsec) * 1e-9f;
        }
        if (st != MT_CALL_OK) {
            v = on_error_of(s, script);
            if (v == MT_VERDICT_PASS)
                continue;
            break;
        }
        bool more = read_verdict(s, L, slot, i, &v, route);
        c->verdicts[v & 3]++;
        if (!more)
            break;
    }
    s->decided = i < n ? s->owner[slot][i] : -1; /* break leaves i on the deciding script */
    s->decided_slot = slot;
    s->decided_idx = i;

    if (slot == MT_SLOT_ENCODE)
        s->in_encode--;
    mt__lpacket_expire(block);
    lua_settop(L, top);
    s->depth--;
    /* script_drops/script_replies are counted by the core, which acts on the verdict. */
    return v;
}

enum mt_verdict mt_scripts_egress(struct mt_scripts *s, struct mt_packet *pkt,
                                  struct mt_peer **route)
{
    if (s == NULL)
        return MT_VERDICT_PASS;
    struct mt_peer *dummy;
    return run_chain(s, s->L, MT_SLOT_EGRESS, pkt, NULL, route != NULL ? route : &dummy);
}

enum mt_verdict mt_scripts_ingress(struct mt_scripts *s, struct mt_packet *pkt,
                                   struct mt_peer **route)
{
    if (s == NULL)
        return MT_VERDICT_PASS;
    struct mt_peer *dummy;
    return run_chain(s, s->L, MT_SLOT_INGRESS, pkt, pkt->peer, route != NULL ? route : &dummy);
}

/* For the wire hooks pkt.peer is the peer at the other end of the wire, whatever the core
 * left in pkt->peer; the field is put back afterwards. */
static enum mt_verdict wire_chain(struct mt_scripts *s, int slot, struct mt_packet *pkt,
                                  struct mt_peer *peer)
{
    if (s == NULL)
        return MT_VERDICT_PASS;
    struct mt_peer *saved = pkt->peer;
    pkt->peer = peer;
    enum mt_verdict v = run_chain(s, s->L, slot, pkt, peer, NULL);
    pkt->peer = saved;
    return v;
}

enum mt_verdict mt_scripts_encode(struct mt_scripts *s, struct mt_packet *pkt, struct mt_peer *peer)
{
    return wire_chain(s, MT_SLOT_ENCODE, pkt, peer);
}

enum mt_verdict mt_scripts_decode(struct mt_scripts *s, struct mt_packet *pkt, struct mt_peer *peer)
{
    return wire_chain(s, MT_SLOT_DECODE, pkt, peer);
}

unsigned mt_scripts_hooks(const struct mt_scripts *s)
{
    return s != NULL ? s->hooks : 0;
}

const char *mt_scripts_decider(const struct mt_scripts *s, const char **hook)
{
    if (s == NULL || s->decided < 0)
        return NULL;
    *hook = slot_names[s->decided_slot];
    return s->names[s->decided];
}

bool mt_scripts_failed(const struct mt_scripts *s)
{
    return s != NULL && s->chain_failed;
}

const char *mt_scripts_error(const struct mt_scripts *s)
{
    return s != NULL ? s->last_error : "";
}

/* Only the -d trace asks, once per packet that a script decided: a lua_getinfo is fine. */
int mt_scripts_decider_line(const struct mt_scripts *s)
{
    if (s == NULL || s->decided < 0)
        return 0;
    lua_Debug ar;
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->refs[s->decided_slot][s->decided_idx]);
    return lua_getinfo(s->L, ">S", &ar) ? ar.linedefined : 0;
}

void mt_scripts_peer_gone(struct mt_scripts *s, struct mt_peer *peer)
{
    if (s != NULL && peer != NULL)
        mt__lpeer_gone(s->L, peer);
}

int mt__scripts_send(struct mt_scripts *s, lua_State *L, struct mt_peer *peer, const uint8_t *data,
                     size_t len)
{
    /* encode -> send -> encode would recurse without end; one level is all a script needs. */
    if (s->in_encode > 0 || s->sending)
        return luaL_error(L, "mt.send cannot be used inside encode");
    if (len == 0 || len > MT_MAX_PACKET)
        return luaL_error(L, "mt.send: packet must be 1..%d bytes", MT_MAX_PACKET);
    if (s->host.send == NULL)
        return -ENOTSUP;

    struct mt_packet pkt;
    mt_packet_init(&pkt, s->scratch, MT_PKT_BUFSIZE, MT_HEADROOM);
    if (mt_packet_put(&pkt, len) < 0)
        return -EMSGSIZE;
    memcpy(pkt.data, data, len);
    pkt.link = s->cfg->tap ? MT_LINK_ETH : MT_LINK_IP;
    pkt.dir = MT_DIR_EGRESS;
    pkt.peer = peer;

    s->sending = true;
    enum mt_verdict v = run_chain(s, L, MT_SLOT_ENCODE, &pkt, peer, NULL);
    s->sending = false;
    if (v == MT_VERDICT_DROP) {
        if (s->host.stats != NULL) /* the core never sees this packet: count it here */
            s->host.stats->script_drops += !s->chain_failed;
        return 0;
    }
    int rc = s->host.send(s->host.ctx, peer, pkt.data, pkt.len);
    return rc < 0 ? rc : 1;
}

/* --- the sandbox --------------------------------------------------------------------------- */

/* print goes to the log (stdout may be anything in a daemon). */
static int sb_print(lua_State *L)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    mt__scripts_log(mt__scripts_of(L), MT_LOG_INFO, lua_tostring(L, -1));
    return 0;
}

static bool module_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 128 || name[0] == '.' || strstr(name, "..") != NULL || name[n - 1] == '.')
        return false;
    for (const char *p = name; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.'))
            return false;
    return true;
}

/* Expands one template ("dir/?.lua", or a bare directory) for name; true if readable. */
static bool try_path(const char *tmpl, size_t tlen, const char *name, char *out, size_t outsz,
                     luaL_Buffer *tried)
{
    char rel[160];
    size_t n = 0, k = 0;
    bool has_q = memchr(tmpl, '?', tlen) != NULL;

    for (const char *p = name; *p && k + 1 < sizeof rel; p++)
        rel[k++] = *p == '.' ? '/' : *p;
    rel[k] = '\0';
    if (!has_q) {
        int w = snprintf(out, outsz, "%.*s/%s.lua", (int)tlen, tmpl, rel);
        if (w < 0 || (size_t)w >= outsz)
            return false;
    } else {
        for (size_t i = 0; i < tlen; i++) {
            const char *piece = tmpl[i] == '?' ? rel : &tmpl[i];
            size_t plen = tmpl[i] == '?' ? k : 1;
            if (plen >= outsz - n)
                return false;
            memcpy(out + n, piece, plen);
            n += plen;
        }
        out[n] = '\0';
    }
    if (access(out, R_OK) == 0)
        return true;
    luaL_addstring(tried, "\n\tno file '");
    luaL_addstring(tried, out);
    luaL_addstring(tried, "'");
    return false;
}

static bool try_list(const char *list, const char *name, char *out, size_t outsz,
                     luaL_Buffer *tried)
{
    while (list != NULL && *list) {
        const char *end = strchr(list, ';');
        size_t len = end != NULL ? (size_t)(end - list) : strlen(list);
        if (len > 0 && try_path(list, len, name, out, outsz, tried))
            return true;
        list = end != NULL ? end + 1 : NULL;
    }
    return false;
}

/* The installed module directories, or the source tree's for a binary in the build tree.
 * Installed: MOONTUN_LUA_RELDIR beside the running binary first (a tree unpacked anywhere, as
 * `dpkg -x` does, finds its own modules), then the compiled-in MOONTUN_LUA_DIR. In the build
 * tree (MOONTUN_BUILD_DIR), the source's lua/ comes first, so a checkout runs without
 * installing and never picks up an older installed copy. */
static void module_dirs(char *out, size_t outsz)
{
    char exe[PATH_MAX], dir[PATH_MAX] = "";
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash != NULL && slash != exe)
            snprintf(dir, sizeof dir, "%.*s", (int)(slash - exe), exe);
    }
#if defined(MOONTUN_LUA_SRCDIR) && defined(MOONTUN_BUILD_DIR)
    char build[PATH_MAX];
    if (dir[0] && realpath(MOONTUN_BUILD_DIR, build) != NULL && strcmp(dir, build) == 0) {
        snprintf(out, outsz, "%s;%s", MOONTUN_LUA_SRCDIR, MOONTUN_LUA_DIR);
        return;
    }
#endif
    if (dir[0])
        snprintf(out, outsz, "%s/%s;%s", dir, MOONTUN_LUA_RELDIR, MOONTUN_LUA_DIR);
    else
        snprintf(out, outsz, "%s", MOONTUN_LUA_DIR);
}

/* require: "moontun" (preloaded), and pure-Lua helpers found next to the running script, in
 * $MOONTUN_LUA_PATH (";"-separated templates with "?" or directories), then in the installed
 * or source-tree directories (module_dirs). No C modules. */
static int sb_require(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    const char *name = luaL_checkstring(L, 1);
    char path[PATH_MAX];

    lua_settop(L, 1);
    if (s->cur_script >= 0) /* 2: this script's modules; no other script sees them */
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->loaded_refs[s->cur_script]);
    else
        luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, 2, name) != LUA_TNIL)
        return 1;
    lua_pop(L, 1);
    if (!module_name_ok(name))
        return luaL_error(L, "module '%s' not found: not a valid module name", name);

    luaL_Buffer tried;
    luaL_buffinit(L, &tried); /* 3 */
    bool found = false;
    if (s->cur_script >= 0) {
        const char *d = s->dirs[s->cur_script];
        found = try_path(d, strlen(d), name, path, sizeof path, &tried);
    }
    if (!found)
        found = try_list(getenv("MOONTUN_LUA_PATH"), name, path, sizeof path, &tried);
    if (!found) {
        char dirs[3 * PATH_MAX];
        module_dirs(dirs, sizeof dirs);
        found = try_list(dirs, name, path, sizeof path, &tried);
    }
    if (!found) {
        luaL_pushresult(&tried);
        return luaL_error(L, "module '%s' not found (only pure-Lua modules):%s", name,
                          lua_tostring(L, -1));
    }
    lua_settop(L, 2);
    if (luaL_loadfilex(L, path, "t") != LUA_OK)
        return luaL_error(L, "error loading module '%s': %s", name, lua_tostring(L, -1));
    if (s->cur_script >= 0) { /* the module's globals are the requiring script's */
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->env_refs[s->cur_script]);
        if (lua_setupvalue(L, -2, 1) == NULL)
            lua_pop(L, 1);
    }
    lua_pushstring(L, name);
    lua_pushstring(L, path);
    lua_call(L, 2, 1);
    if (!lua_isnil(L, -1))
        lua_setfield(L, 2, name);
    else
        lua_pop(L, 1);
    if (lua_getfield(L, 2, name) == LUA_TNIL) {
        lua_pushboolean(L, 1);
        lua_copy(L, -1, -2);
        lua_setfield(L, 2, name);
    }
    return 1;
}

/* Builds the sandbox: allow-listed libraries only (as Redis does), then our classes and the
 * reusable objects of the chain. Runs protected. */
static int setup_state(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    static const luaL_Reg libs[] = {
        {LUA_GNAME, luaopen_base},
        {LUA_STRLIBNAME, luaopen_string},
        {LUA_TABLIBNAME, luaopen_table},
        {LUA_MATHLIBNAME, luaopen_math},
        {LUA_UTF8LIBNAME, luaopen_utf8},
        {LUA_COLIBNAME, luaopen_coroutine},
        {NULL, NULL},
    };
    for (const luaL_Reg *lib = libs; lib->func != NULL; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }

    /* os: the clock and the calendar, nothing that touches the system. */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushcfunction(L, luaopen_os);
    lua_call(L, 0, 1);
    lua_createtable(L, 0, 3);
    static const char *const os_allowed[] = {"time", "clock", "date"};
    for (size_t i = 0; i < sizeof os_allowed / sizeof os_allowed[0]; i++) {
        lua_getfield(L, -2, os_allowed[i]);
        lua_setfield(L, -2, os_allowed[i]);
    }
    lua_pushvalue(L, -1);
    lua_setglobal(L, "os");
    lua_setfield(L, -3, "os");
    lua_pop(L, 1);

    lua_pushnil(L);
    lua_setglobal(L, "dofile");
    lua_pushnil(L);
    lua_setglobal(L, "loadfile");
    mt__sandbox_open(L);
    lua_pushcfunction(L, sb_print);
    lua_setglobal(L, "print");
    lua_pushcfunction(L, sb_require);
    lua_setglobal(L, "require");

    mt__lpacket_open(L);
    for (int d = 0; d < MT_CHAIN_DEPTH; d++) {
        mt__lpacket_new(L);
        s->pkt_blocks[d] = lua_touserdata(L, -1);
        s->pkt_refs[d] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_newtable(L);
    s->peer_cache_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    mt__lmoontun_open(L); /* loaded, module */
    lua_setfield(L, -2, "moontun");
    lua_pop(L, 1);
    for (int i = 0; i < s->nscripts; i++)
        mt__sandbox_env(L, s, i);
    return 0;
}

static void warnf(void *ud, const char *msg, int tocont)
{
    struct mt_scripts *s = ud;
    size_t len = strlen(msg);

    if (s->warnlen == 0 && !tocont && msg[0] == '@') /* control message ("@on", "@off") */
        return;
    if (len > sizeof s->warnbuf - 1 - s->warnlen)
        len = sizeof s->warnbuf - 1 - s->warnlen;
    memcpy(s->warnbuf + s->warnlen, msg, len);
    s->warnlen += len;
    s->warnbuf[s->warnlen] = '\0';
    if (!tocont) {
        char line[sizeof s->warnbuf + 16];
        snprintf(line, sizeof line, "warning: %s", s->warnbuf);
        mt__scripts_log(s, MT_LOG_WARN, line);
        s->warnlen = 0;
    }
}

static int at_panic(lua_State *L)
{
    mt_error("lua: unprotected error: %s", lua_tostring(L, -1));
    abort();
}

/* --- carrying mt.state over a reload ------------------------------------------------------- */

/* Copies the value at oidx of the old state O to the top of N and returns 1, or pushes
 * nothing and returns 0 for what cannot cross (functions, userdata, threads). Nothing here
 * allocates in O: its stack was grown for MT_COPY_DEPTH levels before (carry_over), so an
 * error can only be N's, and this runs protected in N. Tables are mapped through seen, so
 * shared subtables and cycles come out the same shape. */
/* Where the copy is in mt.state ("conns.k1"), to name what cannot cross: one warning per value
 * on the copy before the new scripts run (a reload handler's second copy stays quiet), at
 * most MT_CARRY_WARNINGS a reload. One loop thread: a static serves. */
#define MT_CARRY_WARNINGS 8
static struct {
    bool on;
    int script, warned;
    size_t len;
    char path[160];
} close_log;

/* Appends the key at kidx of O to the path; returns the length to put back. Reads the key
 * without converting it (lua_tostring on a number would allocate in O). */
static size_t clog_push(lua_State *O, int kidx)
{
    size_t old = close_log.len, room = sizeof close_log.path - old;
    if (!close_log.on || room < 2)
        return old;
    int n;
    switch (lua_type(O, kidx)) {
    case LUA_TSTRING:
        n = snprintf(close_log.path + old, room, "%s%s", old > 0 ? "." : "", lua_tostring(O, kidx));
        break;
    case LUA_TNUMBER:
        if (lua_isinteger(O, kidx))
            n = snprintf(close_log.path + old, room, "[%lld]", (long long)lua_tointeger(O, kidx));
        else
            n = snprintf(close_log.path + old, room, "[%g]", lua_tonumber(O, kidx));
        break;
    default:
        n = snprintf(close_log.path + old, room, "[%s key]", lua_typename(O, lua_type(O, kidx)));
    }
    close_log.len = n > 0 && (size_t)n < room ? old + (size_t)n : sizeof close_log.path - 1;
    return old;
}

static void clog_drop(lua_State *O, int idx, const struct mt_scripts *s, bool deep)
{
    if (!close_log.on || close_log.warned++ >= MT_CARRY_WARNINGS)
        return;
    mt_warn("%s: mt.state.%s is not carried over the reload: %s%s", s->names[close_log.script],
            close_log.len > 0 ? close_log.path : "?",
            deep ? "nested deeper than " : lua_typename(O, lua_type(O, idx)),
            deep ? "100 tables" : " (only strings, numbers, booleans and tables of them cross)");
}

static int copy_value(lua_State *O, int oidx, lua_State *N, int seen, int depth)
{
    switch (lua_type(O, oidx)) {
    case LUA_TBOOLEAN:
        lua_pushboolean(N, lua_toboolean(O, oidx));
        return 1;
    case LUA_TNUMBER:
        if (lua_isinteger(O, oidx))
            lua_pushinteger(N, lua_tointeger(O, oidx));
        else
            lua_pushnumber(N, lua_tonumber(O, oidx));
        return 1;
    case LUA_TSTRING: {
        size_t n;
        const char *p = lua_tolstring(O, oidx, &n);
        lua_pushlstring(N, p, n);
        return 1;
    }
    case LUA_TLIGHTUSERDATA: /* the verdict constants: the same in every state */
        lua_pushlightuserdata(N, lua_touserdata(O, oidx));
        return 1;
    case LUA_TTABLE: {
        const void *key = lua_topointer(O, oidx);
        if (lua_rawgetp(N, seen, key) != LUA_TNIL)
            return 1;
        lua_pop(N, 1);
        if (depth >= MT_COPY_DEPTH) {
            clog_drop(O, oidx, mt__scripts_of(N), true);
            return 0;
        }
        luaL_checkstack(N, 6, "mt.state too deep");
        lua_newtable(N);
        lua_pushvalue(N, -1);
        lua_rawsetp(N, seen, key);
        oidx = lua_absindex(O, oidx);
        lua_pushnil(O); /* each level holds a key and a value in O */
        while (lua_next(O, oidx)) {
            size_t at = clog_push(O, -2);
            if (copy_value(O, -2, N, seen, depth + 1)) {
                if (copy_value(O, -1, N, seen, depth + 1))
                    lua_rawset(N, -3);
                else
                    lua_pop(N, 1);
            }
            close_log.len = at;
            close_log.path[at] = '\0';
            lua_pop(O, 1);
        }
        return 1;
    }
    default:
        clog_drop(O, oidx, mt__scripts_of(N), false);
        return 0;
    }
}

/* Protected in the new state: for each script, module.state = a copy of the old state's
 * module.state of the script in the same place. Leaves values on O's stack when it fails:
 * carry_over puts O's stack back. */
static int carry_state(lua_State *N)
{
    struct mt_scripts *s = mt__scripts_of(N);
    struct mt_scripts *old = lua_touserdata(N, 1);
    lua_State *O = old->L;
    int otop = lua_gettop(O);
    int n = s->nscripts < old->nscripts ? s->nscripts : old->nscripts;

    lua_newtable(N); /* 2: seen */
    for (int i = 0; i < n; i++) {
        lua_rawgeti(O, LUA_REGISTRYINDEX, old->mod_refs[i]);
        lua_rawgeti(N, LUA_REGISTRYINDEX, s->mod_refs[i]); /* 3 */
        if (lua_type(O, -1) == LUA_TTABLE) {
            /* Find "state" by walking the module: pushing the key could allocate in O. */
            lua_pushnil(O);
            while (lua_next(O, -2)) {
                if (lua_type(O, -2) == LUA_TSTRING && strcmp(lua_tostring(O, -2), "state") == 0) {
                    close_log.on = true;
                    close_log.script = i;
                    close_log.len = 0;
                    close_log.path[0] = '\0';
                    if (lua_type(O, -1) == LUA_TTABLE && copy_value(O, -1, N, 2, 0))
                        lua_setfield(N, 3, "state");
                    close_log.on = false;
                    break;
                }
                lua_pop(O, 1);
            }
        }
        lua_settop(O, otop);
        lua_settop(N, 2);
    }
    return 0;
}

/* Protected in the new state: pushes a copy of the old script arg 2's mt.state (nil when it
 * has none), for its reload(state) handler. Quiet: the first copy named what cannot cross. */
static int handover_state(lua_State *N)
{
    struct mt_scripts *old = lua_touserdata(N, 1);
    int script = (int)lua_tointeger(N, 2);
    lua_State *O = old->L;
    int otop = lua_gettop(O);
    lua_newtable(N); /* 3: seen */
    lua_pushnil(N);  /* the result when nothing is found */
    lua_rawgeti(O, LUA_REGISTRYINDEX, old->mod_refs[script]);
    if (lua_type(O, -1) == LUA_TTABLE) {
        lua_pushnil(O);
        while (lua_next(O, -2)) {
            if (lua_type(O, -2) == LUA_TSTRING && strcmp(lua_tostring(O, -2), "state") == 0) {
                if (lua_type(O, -1) == LUA_TTABLE && copy_value(O, -1, N, 3, 0))
                    lua_remove(N, -2);
                break;
            }
            lua_pop(O, 1);
        }
    }
    lua_settop(O, otop);
    return 1;
}

/* After the old stop handlers ran: each new reload(state) handler gets what its old script's
 * mt.state then held (what stop saved included), as a copy. A failure is the handler's own
 * error, logged and counted; the reload stands. */
static void handover(struct mt_scripts *s, struct mt_scripts *old)
{
    for (int k = 0; k < s->nrefs[MT_SLOT_RELOAD]; k++) {
        int script = s->owner[MT_SLOT_RELOAD][k];
        lua_State *L = s->L, *O = old->L;
        int top = lua_gettop(L), otop = lua_gettop(O);
        if (script >= old->nscripts || !lua_checkstack(O, 2 * MT_COPY_DEPTH + 8))
            continue;
        lua_rawgeti(L, LUA_REGISTRYINDEX, s->refs[MT_SLOT_RELOAD][k]);
        lua_pushcfunction(L, handover_state);
        lua_pushlightuserdata(L, old);
        lua_pushinteger(L, script);
        int rc = lua_pcall(L, 2, 1, 0);
        lua_settop(O, otop);
        if (rc != LUA_OK) {
            mt_warn("%s: reload: cannot copy mt.state: %s", s->names[script], lua_tostring(L, -1));
            lua_settop(L, top);
            continue;
        }
        mt__scripts_call(s, L, 1, 0, "reload", script);
        lua_settop(L, top);
    }
}

/* Carries mt.state from old into s. The copy may run out of memory in s at any point and
 * longjmp out of carry_state, past its cleanup: the old stack is put back here. Its room
 * is made before (lua_checkstack fails without raising), never while copying. */
static int carry_over(struct mt_scripts *s, struct mt_scripts *old, char *err, size_t errsz)
{
    lua_State *O = old->L;
    int otop = lua_gettop(O);

    if (!lua_checkstack(O, 2 * MT_COPY_DEPTH + 8)) {
        snprintf(err, errsz, "cannot carry mt.state over: out of memory");
        return -ENOMEM;
    }
    lua_pushcfunction(s->L, carry_state);
    lua_pushlightuserdata(s->L, old);
    close_log.warned = 0;
    int rc = lua_pcall(s->L, 1, 0, 0);
    close_log.on = false; /* also when the copy ran out of memory half-way */
    lua_settop(O, otop);
    if (rc != LUA_OK) {
        snprintf(err, errsz, "cannot carry mt.state over: %s", lua_tostring(s->L, -1));
        lua_pop(s->L, 1);
        return -ENOMEM;
    }
    return 0;
}

/* --- loading ------------------------------------------------------------------------------- */

/* Protected: loads the script's file (text only) and pushes it with its settings table. */
static int prepare(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    const struct mt_script_spec *spec = lua_touserdata(L, 1);
    if (luaL_loadfilex(L, spec->path, "t") != LUA_OK)
        return lua_error(L);
    /* Its globals are its own (sandbox.c): what it changes there, no other script sees. */
    lua_rawgeti(L, LUA_REGISTRYINDEX, s->env_refs[spec - s->cfg->scripts]);
    if (lua_setupvalue(L, -2, 1) == NULL)
        lua_pop(L, 1);
    lua_createtable(L, 0, spec->nargs);
    for (int i = 0; i < spec->nargs; i++) {
        if (strcmp(spec->keys[i], "on_error") == 0)
            continue; /* the chain's setting (script_on_error), not the script's */
        lua_pushstring(L, spec->values[i]);
        lua_setfield(L, -2, spec->keys[i]);
    }
    return 2;
}

/* Protected: checks what the chunk returned and takes its handlers. */
static int collect(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    int script = (int)lua_tointeger(L, 2);
    const char *path = s->cfg->scripts[script].path;

    if (!lua_istable(L, 1))
        return luaL_error(L,
                          "%s: must return a table of handlers (egress, ingress, encode, decode, "
                          "start, stop, reload), not %s",
                          path, lua_isnil(L, 1) ? "nil" : luaL_typename(L, 1));
    for (int slot = 0; slot < MT_NSLOTS; slot++) {
        int t = lua_getfield(L, 1, slot_names[slot]);
        if (t == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        if (t != LUA_TFUNCTION)
            return luaL_error(L, "%s: handler '%s' must be a function, not a %s", path,
                              slot_names[slot], luaL_typename(L, -1));
        int n = s->nrefs[slot];
        s->refs[slot][n] = luaL_ref(L, LUA_REGISTRYINDEX);
        s->owner[slot][n] = script;
        s->nrefs[slot] = n + 1;
        s->hooks |= slot_hooks[slot];
    }
    return 0;
}

static int load_script(struct mt_scripts *s, int i, char *err, size_t errsz)
{
    lua_State *L = s->L;
    const struct mt_script_spec *spec = &s->cfg->scripts[i];

    lua_pushcfunction(L, prepare);
    lua_pushlightuserdata(L, (void *)spec);
    if (call_protected(s, L, 1, 2, "load", i, err, errsz) != MT_CALL_OK)
        return -EINVAL;
    if (call_protected(s, L, 1, 1, "load", i, err, errsz) != MT_CALL_OK)
        return -EINVAL;
    lua_pushcfunction(L, collect);
    lua_insert(L, -2);
    lua_pushinteger(L, i);
    if (call_protected(s, L, 2, 0, "load", i, err, errsz) != MT_CALL_OK)
        return -EINVAL;
    return 0;
}

/* -S "FILE on_error=pass|drop": what this script's failure does to its packet, instead of
 * --on-error (a logging-only script with pass cannot cut the tunnel when it breaks). */
static int script_on_error(struct mt_scripts *s, char *err, size_t errsz)
{
    for (int i = 0; i < s->nscripts; i++) {
        const struct mt_script_spec *sp = &s->cfg->scripts[i];
        s->on_error[i] = -1;
        for (int k = 0; k < sp->nargs; k++) {
            if (strcmp(sp->keys[k], "on_error") != 0)
                continue;
            if (strcmp(sp->values[k], "pass") == 0) {
                s->on_error[i] = MT_ON_ERROR_PASS;
            } else if (strcmp(sp->values[k], "drop") == 0) {
                s->on_error[i] = MT_ON_ERROR_DROP;
            } else {
                snprintf(err, errsz, "%s: setting on_error=%s is not pass or drop", s->names[i],
                         sp->values[k]);
                return -EINVAL;
            }
        }
    }
    return 0;
}

static void run_stop_hooks(struct mt_scripts *s)
{
    for (int i = 0; i < s->nrefs[MT_SLOT_STOP]; i++) {
        lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->refs[MT_SLOT_STOP][i]);
        mt__scripts_call(s, s->L, 0, 0, "stop", s->owner[MT_SLOT_STOP][i]);
    }
}

static void destroy(struct mt_scripts *s, bool run_stop)
{
    if (s == NULL)
        return;
    if (s->L != NULL) {
        if (run_stop)
            run_stop_hooks(s);
        if (s->err_suppressed > 0)
            mt_error("lua: %lu more script errors suppressed", s->err_suppressed);
        if (s->log_suppressed > 0)
            mt_warn("lua: %lu script log lines suppressed", s->log_suppressed);
        /* Finalizers run now: only ours (timers stop in theirs), scripts cannot make any. */
        s->budget = s->call_budget > 0 ? s->call_budget : LONG_MAX;
        s->used = 0;
        s->aborting = false;
        s->closing = true;
        lua_close(s->L);
    }
    mt__lcontrol_free(s);
    watchdog_stop(s);
    free(s->scratch);
    free(s->peerbuf);
    free(s);
}

static void base_name(const char *path, char *out, size_t outsz, char *dir, size_t dirsz)
{
    const char *slash = strrchr(path, '/');
    snprintf(out, outsz, "%s", slash != NULL ? slash + 1 : path);
    if (slash == NULL)
        snprintf(dir, dirsz, ".");
    else if (slash == path)
        snprintf(dir, dirsz, "/");
    else
        snprintf(dir, dirsz, "%.*s", (int)(slash - path), path);
}

static int create_state(struct mt_scripts **out, const struct mt_config *cfg,
                        const struct mt_host *host, struct mt_scripts *carry, char *err,
                        size_t errsz)
{
    struct mt_scripts *s;
    int rc;

    *out = NULL;
    if (cfg->nscripts < 0 || cfg->nscripts > MT_MAX_SCRIPTS) {
        snprintf(err, errsz, "too many scripts (at most %d)", MT_MAX_SCRIPTS);
        return -EINVAL;
    }
    /* A missing file is the common mistake: say so plainly, before building anything. */
    for (int i = 0; i < cfg->nscripts; i++) {
        if (access(cfg->scripts[i].path, R_OK) != 0) {
            rc = -errno;
            snprintf(err, errsz, "%s: %s", cfg->scripts[i].path, strerror(errno));
            return rc;
        }
    }

    s = calloc(1, sizeof *s);
    if (s == NULL)
        goto nomem;
    s->cfg = cfg;
    s->host = *host;
    s->nscripts = cfg->nscripts;
    s->cur_script = -1;
    s->decided = -1;
    s->call_budget = cfg->lua_budget > 0 ? cfg->lua_budget : 0;
    s->call_time = (double)(cfg->lua_time_ms > 0 ? cfg->lua_time_ms : MT_DEFAULT_LUA_TIME) / 1e3;
    for (int i = 0; i < MT_MAX_SCRIPTS; i++)
        s->env_refs[i] = s->loaded_refs[i] = s->mod_refs[i] = LUA_NOREF;
    long mb = cfg->lua_mem_mb > 0 ? cfg->lua_mem_mb : MT_DEFAULT_LUA_MEM;
    s->mem_limit = (size_t)mb << 20;
    s->npeerbuf = cfg->max_peers > 0 ? (size_t)cfg->max_peers : MT_DEFAULT_MAX_PEERS;
    s->peerbuf = calloc(s->npeerbuf, sizeof *s->peerbuf);
    s->scratch = malloc(MT_PKT_BUFSIZE);
    if (s->peerbuf == NULL || s->scratch == NULL)
        goto nomem;
    for (int i = 0; i < cfg->nscripts; i++)
        base_name(cfg->scripts[i].path, s->names[i], sizeof s->names[i], s->dirs[i],
                  sizeof s->dirs[i]);
    rc = script_on_error(s, err, errsz);
    if (rc < 0)
        goto fail;

    s->main_armed = -1;
    s->L = lua_newstate(l_alloc, s);
    if (s->L == NULL)
        goto nomem;
    *(struct mt_scripts **)lua_getextraspace(s->L) = s;
    lua_atpanic(s->L, at_panic);
    lua_setwarnf(s->L, warnf, s);

    lua_pushcfunction(s->L, setup_state);
    if (lua_pcall(s->L, 0, 0, 0) != LUA_OK) {
        snprintf(err, errsz, "cannot set up Lua: %s", lua_tostring(s->L, -1));
        rc = -ENOMEM;
        goto fail;
    }
    if (carry != NULL) {
        rc = carry_over(s, carry, err, errsz);
        if (rc < 0)
            goto fail;
    }
    rc = watchdog_start(s);
    if (rc < 0) {
        snprintf(err, errsz, "cannot start the script watchdog: %s", strerror(-rc));
        goto fail;
    }

    /* A chunk's top level and start() may build tables: more instructions and time, but
     * bounded all the same (a stall there must not hang start-up or a reload). */
    long budget = s->call_budget;
    double time = s->call_time;
    s->call_budget = budget == 0 || budget > MT_LOAD_BUDGET ? budget : MT_LOAD_BUDGET;
    s->call_time = 20 * time > MT_LOAD_TIME_MIN ? 20 * time : MT_LOAD_TIME_MIN;
    s->loading = true;
    for (int i = 0; i < cfg->nscripts; i++) {
        rc = load_script(s, i, err, errsz);
        if (rc < 0)
            goto fail;
    }
    s->call_budget = budget;
    for (int i = 0; i < s->nrefs[MT_SLOT_START]; i++) {
        lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->refs[MT_SLOT_START][i]);
        if (call_protected(s, s->L, 0, 0, "start", s->owner[MT_SLOT_START][i], err, errsz) !=
            MT_CALL_OK) {
            rc = -EINVAL;
            goto fail;
        }
    }
    s->call_time = time;
    s->loading = false;
    *out = s;
    return 0;

nomem:
    snprintf(err, errsz, "cannot set up Lua: out of memory");
    rc = -ENOMEM;
fail:
    if (s != NULL) {
        s->call_budget = cfg->lua_budget > 0 ? cfg->lua_budget : 0;
        s->call_time =
            (double)(cfg->lua_time_ms > 0 ? cfg->lua_time_ms : MT_DEFAULT_LUA_TIME) / 1e3;
    }
    destroy(s, false);
    return rc;
}

int mt_scripts_load(struct mt_scripts **out, const struct mt_config *cfg,
                    const struct mt_host *host, char *err, size_t errsz)
{
    char dummy[8];
    if (err == NULL || errsz == 0) {
        err = dummy;
        errsz = sizeof dummy;
    }
    err[0] = '\0';
    *out = NULL;
    if (cfg->nscripts == 0)
        return 0;
    return create_state(out, cfg, host, NULL, err, errsz);
}

int mt_scripts_sandbox(struct mt_scripts **out, const struct mt_config *cfg,
                       const struct mt_host *host, char *err, size_t errsz)
{
    return create_state(out, cfg, host, NULL, err, errsz);
}

int mt_scripts_check(const struct mt_config *cfg, char *err, size_t errsz)
{
    for (int i = 0; i < cfg->nscripts; i++) {
        lua_State *L = luaL_newstate();
        if (L == NULL) {
            snprintf(err, errsz, "out of memory");
            return -ENOMEM;
        }
        int rc = luaL_loadfilex(L, cfg->scripts[i].path, "t");
        if (rc != LUA_OK) {
            char msg[MT_ERRLINE];
            err_condense(lua_tostring(L, -1), msg, sizeof msg, false);
            snprintf(err, errsz, "%s", msg);
        }
        lua_close(L);
        if (rc != LUA_OK)
            return rc == LUA_ERRMEM ? -ENOMEM : -EINVAL;
    }
    return 0;
}

void mt_scripts_free(struct mt_scripts *s)
{
    destroy(s, true);
}

/* The new state is built completely before the old one is touched: mt.state is copied in
 * first (so the new scripts' top level and start handlers see it), then the scripts load and
 * start; only then do the old stop handlers run, then the new reload(state) handlers with a
 * copy of their old script's mt.state as stop left it (how stop hands state over), and the
 * old state, with its timers, goes. Only plain data crosses: strings, numbers,
 * booleans, the verdict constants and tables of those (shared subtables and cycles keep
 * their shape); functions, userdata (peers, timers, prefixes) and coroutines are dropped. */
int mt_scripts_reload(struct mt_scripts **sp, char *err, size_t errsz)
{
    struct mt_scripts *old = *sp, *s;
    char dummy[8];

    if (err == NULL || errsz == 0) {
        err = dummy;
        errsz = sizeof dummy;
    }
    err[0] = '\0';
    if (old == NULL)
        return 0; /* no scripts configured: nothing to reload */
    int rc = create_state(&s, old->cfg, &old->host, old, err, errsz);
    if (rc < 0) {
        if (old->host.stats != NULL)
            old->host.stats->reload_failures++;
        return rc;
    }
    memcpy(s->counts, old->counts, sizeof s->counts); /* counters go on across reloads */
    run_stop_hooks(old);
    handover(s, old);
    destroy(old, false);
    *sp = s;
    if (s->host.stats != NULL)
        s->host.stats->reloads++;
    return 0;
}
