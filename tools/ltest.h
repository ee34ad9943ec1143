/* The moontun.test module (ltest.c) and the state of one test file's run, shared with the
 * runner (test.c): its virtual host, its sandbox, the scripts' log lines, its chains. */
#ifndef MOONTUN_TOOLS_LTEST_H
#define MOONTUN_TOOLS_LTEST_H

#include <stdbool.h>
#include <stddef.h>

#include <lua.h>

#include "moontun/config.h"
#include "moontun/script.h"
#include "moontun/stats.h"

#include "vhost.h"

#define MT_TEST_MAX_LOGS 10000 /* lines kept between two T.logs(); the rest are counted */

struct mt_tchain;

struct mt_trun {
    struct mt_vhost vh; /* first: the test state's host ctx points here */
    const char *path;   /* the test file */
    struct mt_config cfg;
    struct mt_stats stats;
    struct mt_host host;
    struct mt_scripts *ts; /* the sandbox the test file runs in */
    char **logs;           /* lines logged since the last T.logs() */
    size_t nlogs;
    unsigned long lost_logs;
    struct mt_tchain *chains; /* open chains, so peer:down() reaches every one */
    int tests_ref;            /* registry: array of {name, fn} from T.test */
    int peers_ref;            /* registry: lightuserdata(struct mt_peer *) -> peer object */
    struct mt_peer *default_peer;
};

/* Pushes the module table for run (its functions keep run as an upvalue). Raises on memory. */
int mt__ltest_open(lua_State *L);
/* Appends a log line to run (the runner's mt_log_sink calls this). */
void mt__ltest_log(struct mt_trun *run, const char *line);
/* Forgets the lines kept so far. */
void mt__ltest_clear_logs(struct mt_trun *run);

#endif
