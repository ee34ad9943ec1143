/* moontun test: runs Lua test files in the same sandbox as real scripts, with the moontun.test
 * module (ltest.c) preloaded. Each file runs first (declaring its tests with T.test), then each
 * test in order under the instruction budget; one line per test, a closing count, status 1
 * when any test failed. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "moontun/log.h"
#include "moontun/script.h"

#include "binding.h"
#include "ltest.h"
#include "verbs.h"

#define TEST_BUDGET "200000000" /* instructions per test: loops over thousands of packets */
#define TEST_MEM_MB "512"
#define TEST_CLOCK  1000.0 /* the virtual clock's start: far from 0, as a real clock is */

static struct mt_trun *current; /* where the log sink files lines */
static bool verbose;

static void sink(enum mt_log_level level, const char *line)
{
    static const char *const names[] = {"error: ", "warning: ", "", "debug: "};
    char buf[1100];
    snprintf(buf, sizeof buf, "%s%s", names[level], line);
    if (current != NULL)
        mt__ltest_log(current, buf);
    if (verbose || current == NULL)
        fprintf(stderr, "# %s\n", buf);
}

static void usage(FILE *out)
{
    fputs("Usage: moontun test [-v] [-k TEXT] FILE.lua...\n"
          "Runs script tests offline, without root: each FILE is Lua in the scripts' sandbox\n"
          "that requires \"moontun.test\" and declares tests with T.test(name, fn).\n"
          "Prints one line per test and 'N passed, N failed'; exits 1 when any failed.\n"
          "\n"
          "  -k, --only TEXT   run only the tests whose name contains TEXT\n"
          "  -v, --verbose     print every log line of the scripts as it comes\n"
          "  -h, --help        this text\n",
          out);
}

/* Message handler: the error plus file:line of the test file's frame that raised it, when
 * the message does not already start with one (assert() and T.eq() messages do not). */
static int msgh(lua_State *L)
{
    const char *path = lua_tostring(L, lua_upvalueindex(1));
    const char *msg = lua_tostring(L, 1);
    if (msg == NULL)
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    lua_Debug ar;
    for (int level = 0; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "Sl", &ar) || ar.currentline <= 0 || ar.source[0] != '@' ||
            strcmp(ar.source + 1, path) != 0)
            continue;
        const char *prefix = lua_pushfstring(L, "%s:%d:", ar.short_src, ar.currentline);
        if (strncmp(msg, prefix, strlen(prefix)) != 0)
            lua_pushfstring(L, "%s %s", prefix, msg);
        else
            lua_pushstring(L, msg);
        return 1;
    }
    lua_pushstring(L, msg);
    return 1;
}

/* Protected, inside the chain's call wrapper (budget, memory cap): calls the function at 1
 * under msgh and returns true, or false and the message. */
static int protect(lua_State *L)
{
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_pushcclosure(L, msgh, 1);
    lua_insert(L, 1);
    if (lua_pcall(L, 0, 0, 1) == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_insert(L, -2);
    return 2;
}

/* Runs the function on top of L's stack; returns NULL or the failure (valid until the next
 * call: it is kept in buf). */
static const char *run_protected(struct mt_trun *run, lua_State *L, char *buf, size_t bufsz)
{
    lua_pushstring(L, run->path);
    lua_pushcclosure(L, protect, 1);
    lua_insert(L, -2);
    if (mt__scripts_call(run->ts, L, 1, 2, "test", -1) != MT_CALL_OK) {
        /* The budget or the memory cap stopped it: the wrapper logged why. */
        snprintf(buf, bufsz, "%s",
                 run->nlogs > 0 ? run->logs[run->nlogs - 1]
                                : "stopped by the budget or memory cap");
        return buf;
    }
    const char *fail = NULL;
    if (!lua_toboolean(L, -2)) {
        snprintf(buf, bufsz, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "error");
        fail = buf;
    }
    lua_pop(L, 2);
    return fail;
}

static int preload(lua_State *L)
{
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushcfunction(L, mt__ltest_open);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    lua_setfield(L, -2, "moontun.test");
    return 0;
}

static void print_logs(struct mt_trun *run)
{
    for (size_t i = 0; i < run->nlogs; i++)
        printf("#   %s\n", run->logs[i]);
}

/* Runs one file; adds to *passed and *failed. */
static void run_file(const char *path, const char *only, int *passed, int *failed)
{
    static struct mt_trun R;
    struct mt_trun *run = &R;
    static const char *const extra[] = {"--lua-budget", TEST_BUDGET, "--lua-mem", TEST_MEM_MB};
    char err[1024], msg[2048];
    int np = 0, nf = 0;

    memset(run, 0, sizeof *run);
    run->path = path;
    mt_vhost_init(&run->vh, TEST_CLOCK);
    current = run;
    printf("# %s\n", path);
    if (mt_vhost_config(&run->cfg, NULL, 0, extra, 4, err, sizeof err) < 0) {
        printf("not ok - %s: %s\n", path, err);
        (*failed)++;
        goto done;
    }
    run->host.ctx = &run->vh;
    run->host.cfg = &run->cfg;
    run->host.stats = &run->stats;
    run->host.peers = mt_vhost_peers_cb;
    run->host.now = mt_vhost_now_cb;
    run->host.timer_start = mt_vhost_start_cb;
    run->host.timer_stop = mt_vhost_stop_cb;
    if (mt_scripts_sandbox(&run->ts, &run->cfg, &run->host, err, sizeof err) < 0) {
        printf("not ok - %s: %s\n", path, err);
        (*failed)++;
        goto done;
    }
    lua_State *L = run->ts->L;
    lua_pushcfunction(L, preload);
    lua_pushlightuserdata(L, run);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        printf("not ok - %s: cannot set up moontun.test: %s\n", path, lua_tostring(L, -1));
        lua_pop(L, 1);
        (*failed)++;
        goto done;
    }
    if (luaL_loadfilex(L, path, "t") != LUA_OK) {
        printf("not ok - %s\n", lua_tostring(L, -1));
        lua_pop(L, 1);
        (*failed)++;
        goto done;
    }
    const char *fail = run_protected(run, L, msg, sizeof msg);
    if (fail != NULL) {
        printf("not ok - %s: %s\n", path, fail);
        print_logs(run);
        (*failed)++;
        goto done;
    }

    lua_rawgeti(L, LUA_REGISTRYINDEX, run->tests_ref);
    int ntests = (int)luaL_len(L, -1);
    for (int i = 1; i <= ntests; i++) {
        lua_geti(L, -1, i);
        lua_geti(L, -1, 1);
        char name[256];
        snprintf(name, sizeof name, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        if (only != NULL && strstr(name, only) == NULL) {
            lua_pop(L, 1);
            continue;
        }
        lua_geti(L, -1, 2);
        lua_remove(L, -2);
        mt__ltest_clear_logs(run);
        fail = run_protected(run, L, msg, sizeof msg);
        if (fail == NULL) {
            printf("ok %d - %s\n", i, name);
            np++;
        } else {
            printf("not ok %d - %s: %s\n", i, name, fail);
            print_logs(run);
            nf++;
        }
        fflush(stdout);
        lua_gc(L, LUA_GCCOLLECT); /* chains the test dropped stop now, not in the next test */
    }
    lua_pop(L, 1);
    if (ntests == 0) {
        printf("not ok - %s: declares no tests (T.test)\n", path);
        nf++;
    }
    printf("# %s: %d passed, %d failed\n", path, np, nf);
    *passed += np;
    *failed += nf;
done:
    mt_scripts_free(run->ts); /* closes the chains: their stop handlers log into run */
    mt__ltest_clear_logs(run);
    free(run->logs);
    current = NULL;
    mt_vhost_free(&run->vh);
    mt_config_free(&run->cfg);
}

static const struct option options[] = {
    {"only", required_argument, NULL, 'k'},
    {"verbose", no_argument, NULL, 'v'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int mt_test_main(int argc, char **argv)
{
    const char *only = NULL;
    optind = 0;
    opterr = 0;
    for (;;) {
        int opt = getopt_long(argc, argv, ":k:vh", options, NULL);
        if (opt == -1)
            break;
        switch (opt) {
        case 'k':
            only = optarg;
            break;
        case 'v':
            verbose = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "moontun test: bad option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind == argc) {
        fprintf(stderr, "moontun test: no test files (see --help)\n");
        return 2;
    }
    int passed = 0, failed = 0;
    mt_log_level = MT_LOG_DEBUG; /* every line the scripts log reaches T.logs() */
    mt_log_sink = sink;
    for (int i = optind; i < argc; i++)
        run_file(argv[i], only, &passed, &failed);
    mt_log_sink = NULL;
    printf("%d passed, %d failed\n", passed, failed);
    return failed > 0 ? 1 : 0;
}
