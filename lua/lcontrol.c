/* What scripts add to the control plane: commands (mt.command, run by `moontun call`, as
 * HAProxy's core.register_cli) and metrics (mt.counter, mt.gauge, shown by `moontun show` and
 * `moontun metrics`). They are declared while a script loads and belong to its Lua state:
 * a reload builds a new state, so the new scripts declare afresh and the old ones are gone.
 * Values live in C, so the control socket reads them without calling into Lua. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "moontun/script.h"

#include "binding.h"

#define MAX_COMMANDS      32
#define MAX_METRICS       64
#define MAX_SERIES        256 /* label sets of one metric: a label per flow would be a leak */
#define MAX_NAME          64
#define MAX_HELP          200
#define MAX_LABEL_VALUE   128
#define MAX_COMMAND_REPLY (1u << 20)

struct series {
    int nlabels;
    char *packed; /* "key\0value\0" per label, keys sorted: the series' identity */
    size_t plen;
    double value;
};

struct metric {
    char name[MAX_NAME + 1];
    char help[MAX_HELP + 1];
    bool gauge;
    int script;
    int nseries;
    struct series series[MAX_SERIES];
};

struct command {
    char name[MAX_NAME + 1];
    int script;
    int ref; /* the function, in the registry */
};

struct mt__lcontrol {
    struct command commands[MAX_COMMANDS];
    int ncommands;
    struct metric *metrics[MAX_METRICS];
    int nmetrics;
};

/* The built-in per-script families of `moontun metrics` (core/report.c): a script's metric
 * of the same name would make a second family of that name. */
static const char *const reserved[] = {
    "calls_total",         "errors_total",   "budget_aborts_total",
    "memory_aborts_total", "verdicts_total", "hook_seconds",
};

static struct mt__lcontrol *ctl_of(lua_State *L)
{
    struct mt_scripts *s = mt__scripts_of(L);
    if (s->ctl == NULL) {
        s->ctl = calloc(1, sizeof *s->ctl);
        if (s->ctl == NULL)
            luaL_error(L, "out of memory");
    }
    return s->ctl;
}

/* Declarations are made while the script loads (its top level or start()), like handlers: a
 * command or metric that appears later, from a packet, would be a surprise to operators. */
static int loading_script(lua_State *L, const char *fn)
{
    struct mt_scripts *s = mt__scripts_of(L);
    if (!s->loading || s->cur_script < 0)
        luaL_error(L, "%s: only while the script loads (at its top level or in start)", fn);
    return s->cur_script;
}

/* Prometheus' metric and label names, without the colon (kept for recording rules). */
static bool name_ok(const char *p, size_t len)
{
    if (len == 0 || len > MAX_NAME || (*p >= '0' && *p <= '9'))
        return false;
    for (size_t i = 0; i < len; i++)
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') ||
              (p[i] >= '0' && p[i] <= '9') || p[i] == '_'))
            return false;
    return true;
}

/* --- commands ------------------------------------------------------------------------------ */

/* mt.command(name, fn): `moontun call IFNAME name args...` runs fn(args...). */
static int mod_command(lua_State *L)
{
    size_t len;
    const char *name = luaL_checklstring(L, 1, &len);
    luaL_checktype(L, 2, LUA_TFUNCTION);
    int script = loading_script(L, "mt.command");
    /* A word of the control line: printable, no spaces; a dash reads well ("show-rules"). */
    bool ok = len > 0 && len <= MAX_NAME;
    for (size_t i = 0; ok && i < len; i++)
        ok = (name[i] >= 'a' && name[i] <= 'z') || (name[i] >= 'A' && name[i] <= 'Z') ||
             (name[i] >= '0' && name[i] <= '9') || name[i] == '_' || name[i] == '-';
    if (!ok)
        return luaL_error(L,
                          "mt.command: '%s' is not a command name (letters, digits, _ and -, "
                          "at most %d)",
                          name, MAX_NAME);
    struct mt__lcontrol *c = ctl_of(L);
    struct mt_scripts *s = mt__scripts_of(L);
    for (int i = 0; i < c->ncommands; i++)
        if (strcmp(c->commands[i].name, name) == 0)
            return luaL_error(L, "mt.command: '%s' is already registered by %s", name,
                              s->names[c->commands[i].script]);
    if (c->ncommands == MAX_COMMANDS)
        return luaL_error(L, "mt.command: at most %d commands", MAX_COMMANDS);
    struct command *cmd = &c->commands[c->ncommands];
    lua_pushvalue(L, 2);
    cmd->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    memcpy(cmd->name, name, len + 1);
    cmd->script = script;
    c->ncommands++;
    return 0;
}

/* Protected, under the bounds: (fn, argv, argc) pushes the arguments (strings allocate: a
 * script at its memory cap must fail the call, not the process), calls fn and checks what it
 * returned. */
static int command_run(lua_State *L)
{
    char **argv = lua_touserdata(L, 2);
    int argc = (int)lua_tointeger(L, 3);
    lua_settop(L, 1);
    luaL_checkstack(L, argc + 2, "too many arguments");
    for (int i = 0; i < argc; i++)
        lua_pushstring(L, argv[i]);
    lua_call(L, argc, 1);
    int t = lua_type(L, -1);
    if (t == LUA_TNIL)
        return 0;
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
        return luaL_error(L, "returned a %s (expected a string or nothing)", luaL_typename(L, -1));
    lua_tostring(L, -1);
    return 1;
}

int mt_scripts_command(struct mt_scripts *s, const char *name, int argc, char **argv, char **reply,
                       size_t *len, char *err, size_t errsz)
{
    const struct mt__lcontrol *c = s != NULL ? s->ctl : NULL;
    const struct command *cmd = NULL;
    *reply = NULL;
    *len = 0;
    for (int i = 0; c != NULL && i < c->ncommands && cmd == NULL; i++)
        if (strcmp(c->commands[i].name, name) == 0)
            cmd = &c->commands[i];
    if (cmd == NULL) {
        int n = snprintf(err, errsz, "no script command '%s' (", name);
        for (int i = 0; c != NULL && i < c->ncommands && n >= 0 && (size_t)n < errsz; i++)
            n += snprintf(err + n, errsz - (size_t)n, "%s%s",
                          i ? ", " : "registered: ", c->commands[i].name);
        if (n >= 0 && (size_t)n < errsz)
            snprintf(err + n, errsz - (size_t)n, "%s)",
                     c == NULL || c->ncommands == 0 ? "no script registers one" : "");
        return -ENOENT;
    }
    lua_State *L = s->L;
    int top = lua_gettop(L);
    if (!lua_checkstack(L, 8)) { /* nothing pushed here allocates beyond the stack */
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    lua_pushcfunction(L, command_run);
    lua_rawgeti(L, LUA_REGISTRYINDEX, cmd->ref);
    lua_pushlightuserdata(L, argv);
    lua_pushinteger(L, argc);
    char what[MAX_NAME + 16];
    snprintf(what, sizeof what, "command %s", cmd->name);
    if (mt__scripts_call_report(s, L, 3, 1, what, cmd->script, err, errsz) != MT_CALL_OK)
        return -EINVAL;
    int rc = 0;
    if (lua_type(L, -1) == LUA_TSTRING) {
        const char *p = lua_tolstring(L, -1, len);
        *reply = *len <= MAX_COMMAND_REPLY ? malloc(*len + 1) : NULL;
        if (*reply != NULL)
            memcpy(*reply, p, *len + 1);
        else {
            snprintf(err, errsz, "%s: reply of %zu bytes: too long or out of memory", what, *len);
            *len = 0;
            rc = -EINVAL;
        }
    }
    lua_settop(L, top);
    return rc;
}

const char *mt_scripts_command_name(const struct mt_scripts *s, int k, int *script)
{
    if (s == NULL || s->ctl == NULL || k < 0 || k >= s->ctl->ncommands)
        return NULL;
    *script = s->ctl->commands[k].script;
    return s->ctl->commands[k].name;
}

/* --- metrics ------------------------------------------------------------------------------- */

struct lmetric {
    struct metric *m;
    int series; /* -1, or the series this object is bound to (m:labels{...}) */
};

static int declare(lua_State *L, bool gauge)
{
    const char *fn = gauge ? "mt.gauge" : "mt.counter";
    size_t len, hlen = 0;
    const char *name = luaL_checklstring(L, 1, &len);
    const char *help = luaL_optlstring(L, 2, "", &hlen);
    int script = loading_script(L, fn);
    struct mt_scripts *s = mt__scripts_of(L);
    if (!name_ok(name, len))
        return luaL_error(L,
                          "%s: '%s' is not a metric name (letters, digits and _, not first a "
                          "digit, at most %d)",
                          fn, name, MAX_NAME);
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++)
        if (strcmp(name, reserved[i]) == 0)
            return luaL_error(L, "%s: moontun_script_%s is moontun's own metric", fn, name);
    if (hlen > MAX_HELP)
        return luaL_error(L, "%s: help longer than %d bytes", fn, MAX_HELP);
    for (size_t i = 0; i < hlen; i++)
        if ((unsigned char)help[i] < 0x20 || help[i] == 0x7f)
            return luaL_error(L, "%s: help has control characters", fn);
    struct mt__lcontrol *c = ctl_of(L);
    for (int i = 0; i < c->nmetrics; i++) {
        const struct metric *o = c->metrics[i];
        if (strcmp(o->name, name) != 0)
            continue;
        /* Two scripts may share a family (their series differ by the script label), if
         * they agree on what it is. */
        if (o->script == script || o->gauge != gauge)
            return luaL_error(L, "%s: '%s' is already declared by %s as a %s", fn, name,
                              s->names[o->script], o->gauge ? "gauge" : "counter");
    }
    if (c->nmetrics == MAX_METRICS)
        return luaL_error(L, "%s: at most %d metrics", fn, MAX_METRICS);
    struct lmetric *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->m = NULL;
    u->series = -1;
    luaL_setmetatable(L, MT_LMETRIC_META);
    struct metric *m = calloc(1, sizeof *m);
    if (m == NULL)
        return luaL_error(L, "out of memory");
    memcpy(m->name, name, len + 1);
    memcpy(m->help, help, hlen + 1);
    m->gauge = gauge;
    m->script = script;
    c->metrics[c->nmetrics++] = m;
    u->m = m;
    return 1;
}

static int mod_counter(lua_State *L)
{
    return declare(L, false);
}

static int mod_gauge(lua_State *L)
{
    return declare(L, true);
}

static int cmp_label(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The series of m named by the label table at idx (none: the one without labels), made on
 * first use. */
static struct series *series_of(lua_State *L, struct metric *m, int idx)
{
    const char *pairs[MT_METRIC_LABELS][2];
    size_t vlen[MT_METRIC_LABELS];
    int n = 0;
    if (!lua_isnoneornil(L, idx)) {
        luaL_checktype(L, idx, LUA_TTABLE);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            size_t klen;
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "%s: label names are strings", m->name);
            const char *k = lua_tolstring(L, -2, &klen);
            if (!name_ok(k, klen) || strncmp(k, "__", 2) == 0 || strcmp(k, "script") == 0 ||
                strcmp(k, "index") == 0)
                luaL_error(L, "%s: '%s' is not a label name (script and index are moontun's)",
                           m->name, k);
            if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "%s: label %s: a string or number, not a %s", m->name, k,
                           luaL_typename(L, -1));
            if (n == MT_METRIC_LABELS)
                luaL_error(L, "%s: at most %d labels", m->name, MT_METRIC_LABELS);
            /* The value as a string: a copy converted, moved below the key so that it stays
             * on the stack (alive) while lua_next goes on. The key is the table's own. */
            lua_pushvalue(L, -1);
            pairs[n][1] = lua_tolstring(L, -1, &vlen[n]);
            if (vlen[n] > MAX_LABEL_VALUE || memchr(pairs[n][1], '\0', vlen[n]) != NULL)
                luaL_error(L, "%s: label %s: longer than %d bytes or holds a NUL", m->name, k,
                           MAX_LABEL_VALUE);
            pairs[n][0] = k;
            lua_insert(L, -3);
            lua_pop(L, 1);
            n++;
        }
    }
    qsort(pairs, (size_t)n, sizeof pairs[0], cmp_label);
    char packed[MT_METRIC_LABELS * (MAX_NAME + MAX_LABEL_VALUE + 2)];
    size_t plen = 0;
    for (int i = 0; i < n; i++) {
        size_t kl = strlen(pairs[i][0]) + 1, vl = strlen(pairs[i][1]) + 1;
        memcpy(packed + plen, pairs[i][0], kl);
        memcpy(packed + plen + kl, pairs[i][1], vl);
        plen += kl + vl;
    }
    for (int i = 0; i < m->nseries; i++)
        if (m->series[i].plen == plen && memcmp(m->series[i].packed, packed, plen) == 0)
            return &m->series[i];
    if (m->nseries == MAX_SERIES)
        luaL_error(L, "%s: at most %d label sets", m->name, MAX_SERIES);
    struct series *se = &m->series[m->nseries];
    se->packed = malloc(plen + 1);
    if (se->packed == NULL)
        luaL_error(L, "out of memory");
    memcpy(se->packed, packed, plen);
    se->plen = plen;
    se->nlabels = n;
    se->value = 0;
    m->nseries++;
    return se;
}

static struct metric *check_metric(lua_State *L)
{
    struct lmetric *u = luaL_checkudata(L, 1, MT_LMETRIC_META);
    if (u->m == NULL)
        luaL_error(L, "metric was never declared");
    return u->m;
}

/* The series a method works on: the labels given at idx, else the bound one, else none. */
static struct series *target(lua_State *L, struct metric *m, int idx)
{
    const struct lmetric *u = lua_touserdata(L, 1);
    if (lua_isnoneornil(L, idx) && u->series >= 0)
        return &m->series[u->series];
    return series_of(L, m, idx);
}

/* m:labels{rule="ssh"}: the same metric bound to one series, for a hot path that would
 * otherwise build the label table per packet. */
static int m_labels(lua_State *L)
{
    struct metric *m = check_metric(L);
    luaL_checktype(L, 2, LUA_TTABLE);
    int j = (int)(series_of(L, m, 2) - m->series);
    struct lmetric *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->m = m;
    u->series = j;
    luaL_setmetatable(L, MT_LMETRIC_META);
    return 1;
}

/* c:inc(n, labels), c:add(n, labels): a counter only goes up. */
static int change(lua_State *L, double sign)
{
    struct metric *m = check_metric(L);
    double n = luaL_optnumber(L, 2, 1) * sign;
    if (!isfinite(n))
        return luaL_error(L, "%s: not a finite number", m->name);
    if (!m->gauge && n < 0)
        return luaL_error(L, "%s: a counter only goes up (use a gauge)", m->name);
    struct series *se = target(L, m, 3);
    if (!isfinite(se->value + n))
        return luaL_error(L, "%s: the value would no longer be a finite number", m->name);
    se->value += n;
    return 0;
}

static int m_inc(lua_State *L)
{
    return change(L, 1);
}

static int m_dec(lua_State *L)
{
    return change(L, -1);
}

static int m_set(lua_State *L)
{
    struct metric *m = check_metric(L);
    double v = luaL_checknumber(L, 2);
    if (!m->gauge)
        return luaL_error(L, "%s: a counter is not set, only increased (use a gauge)", m->name);
    if (!isfinite(v))
        return luaL_error(L, "%s: not a finite number", m->name);
    target(L, m, 3)->value = v;
    return 0;
}

static int m_get(lua_State *L)
{
    struct metric *m = check_metric(L);
    lua_pushnumber(L, target(L, m, 2)->value);
    return 1;
}

static int m_tostring(lua_State *L)
{
    struct metric *m = check_metric(L);
    lua_pushfstring(L, "%s moontun_script_%s", m->gauge ? "gauge" : "counter", m->name);
    return 1;
}

const luaL_Reg mt__lmetric_metamethods[] = {
    {"__tostring", m_tostring},
    {"__index", NULL}, /* the method table */
    {NULL, NULL},
};

const luaL_Reg mt__lmetric_methods[] = {
    {"inc", m_inc}, {"add", m_inc},       {"dec", m_dec}, {"set", m_set},
    {"get", m_get}, {"labels", m_labels}, {NULL, NULL},
};

const luaL_Reg mt__lcontrol_funcs[] = {
    {"command", mod_command},
    {"counter", mod_counter},
    {"gauge", mod_gauge},
    {NULL, NULL},
};

void mt__lcontrol_free(struct mt_scripts *s)
{
    if (s->ctl == NULL)
        return;
    for (int i = 0; i < s->ctl->nmetrics; i++) {
        struct metric *m = s->ctl->metrics[i];
        for (int j = 0; j < m->nseries; j++)
            free(m->series[j].packed);
        free(m);
    }
    free(s->ctl);
    s->ctl = NULL;
}

int mt_scripts_metric(const struct mt_scripts *s, int k, struct mt_script_metric *out)
{
    if (s == NULL || s->ctl == NULL || k < 0 || k >= s->ctl->nmetrics)
        return -ENOENT;
    const struct metric *m = s->ctl->metrics[k];
    out->name = m->name;
    out->help = m->help;
    out->gauge = m->gauge;
    out->script = m->script;
    out->nseries = m->nseries;
    return 0;
}

int mt_scripts_series(const struct mt_scripts *s, int k, int j, struct mt_script_series *out)
{
    if (s == NULL || s->ctl == NULL || k < 0 || k >= s->ctl->nmetrics || j < 0 ||
        j >= s->ctl->metrics[k]->nseries)
        return -ENOENT;
    const struct series *se = &s->ctl->metrics[k]->series[j];
    const char *p = se->packed;
    out->nlabels = se->nlabels;
    for (int i = 0; i < se->nlabels; i++) {
        out->keys[i] = p;
        p += strlen(p) + 1;
        out->values[i] = p;
        p += strlen(p) + 1;
    }
    out->value = se->value;
    return 0;
}
