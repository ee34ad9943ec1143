/* string.find, string.match, string.gmatch and string.gsub for scripts: Lua's pattern syntax
 * and results, with a matcher that counts its steps. The library's own matcher backtracks in
 * C without ever returning to the VM, so no hook sees it: ("a-"):rep(5) .. "b" against a
 * packet's bytes would hold the event loop for minutes. This one asks the chain every 1,024
 * steps whether the call's time is up (mt__sandbox_step), so a match costs at most the bound. */
#include <ctype.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "binding.h"

#define MT_MAXCAPT     32  /* as Lua's LUA_MAXCAPTURES */
#define MT_MATCH_DEPTH 200 /* nested matcher calls: beyond, "pattern too complex" */
#define CAP_UNF        (-1)
#define CAP_POS        (-2)
#define SPECIALS       "^$*+?.([%-"

struct mstate {
    const char *src, *src_end; /* the subject */
    const char *pat_end;       /* the pattern's end (patterns are NUL-terminated Lua strings) */
    lua_State *L;
    struct mt_scripts *s;
    int depth; /* recursion of do_match */
    int level; /* captures open or closed so far */
    struct {
        const char *init;
        ptrdiff_t len; /* or CAP_UNF, CAP_POS */
    } cap[MT_MAXCAPT];
};

static const char *do_match(struct mstate *ms, const char *s, const char *p);

static inline void step(struct mstate *ms)
{
    mt__sandbox_step(ms->s, ms->L);
}

/* Where the single-character class starting at p ends. */
static const char *class_end(struct mstate *ms, const char *p)
{
    char c = *p++;
    if (c == '%') {
        if (p >= ms->pat_end)
            luaL_error(ms->L, "malformed pattern (ends with '%%')");
        return p + 1;
    }
    if (c == '[') {
        if (*p == '^')
            p++;
        do { /* the first character after [ or [^ belongs to the set, even a ']' */
            if (p >= ms->pat_end)
                luaL_error(ms->L, "malformed pattern (missing ']')");
            if (*p++ == '%' && p < ms->pat_end)
                p++;
        } while (*p != ']');
        return p + 1;
    }
    return p;
}

static bool class_match(int c, int cl)
{
    bool r;
    switch (tolower(cl)) {
    case 'a':
        r = isalpha(c);
        break;
    case 'c':
        r = iscntrl(c);
        break;
    case 'd':
        r = isdigit(c);
        break;
    case 'g':
        r = isgraph(c);
        break;
    case 'l':
        r = islower(c);
        break;
    case 'p':
        r = ispunct(c);
        break;
    case 's':
        r = isspace(c);
        break;
    case 'u':
        r = isupper(c);
        break;
    case 'w':
        r = isalnum(c);
        break;
    case 'x':
        r = isxdigit(c);
        break;
    default:
        return cl == c; /* an escaped literal: %. %% %] ... */
    }
    return isupper(cl) ? !r : r;
}

/* p points at '[', ec at the closing ']'. */
static bool set_match(int c, const char *p, const char *ec)
{
    bool want = true;
    p++;
    if (*p == '^') {
        want = false;
        p++;
    }
    while (p < ec) {
        if (*p == '%' && p + 1 < ec) {
            if (class_match(c, (unsigned char)p[1]))
                return want;
            p += 2;
        } else if (p[1] == '-' && p + 2 < ec) {
            if ((unsigned char)p[0] <= c && c <= (unsigned char)p[2])
                return want;
            p += 3;
        } else {
            if ((unsigned char)*p == c)
                return want;
            p++;
        }
    }
    return !want;
}

static bool single_match(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    if (s >= ms->src_end)
        return false;
    int c = (unsigned char)*s;
    switch (*p) {
    case '.':
        return true;
    case '%':
        return class_match(c, (unsigned char)p[1]);
    case '[':
        return set_match(c, p, ep - 1);
    default:
        return (unsigned char)*p == c;
    }
}

static const char *match_balance(struct mstate *ms, const char *s, const char *p)
{
    if (p + 1 >= ms->pat_end)
        luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p)
        return NULL;
    char open = p[0], close = p[1];
    int depth = 1;
    while (++s < ms->src_end) {
        step(ms);
        if (*s == close) {
            if (--depth == 0)
                return s + 1;
        } else if (*s == open) {
            depth++;
        }
    }
    return NULL;
}

static const char *max_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    ptrdiff_t n = 0;
    while (single_match(ms, s + n, p, ep)) {
        step(ms);
        n++;
    }
    for (; n >= 0; n--) { /* longest first, then give back one at a time */
        const char *r = do_match(ms, s + n, ep + 1);
        if (r != NULL)
            return r;
    }
    return NULL;
}

static const char *min_expand(struct mstate *ms, const char *s, const char *p, const char *ep)
{
    for (;;) {
        const char *r = do_match(ms, s, ep + 1);
        if (r != NULL)
            return r;
        if (!single_match(ms, s, p, ep))
            return NULL;
        s++;
    }
}

static const char *start_capture(struct mstate *ms, const char *s, const char *p, ptrdiff_t what)
{
    if (ms->level >= MT_MAXCAPT)
        luaL_error(ms->L, "too many captures");
    ms->cap[ms->level].init = s;
    ms->cap[ms->level].len = what;
    ms->level++;
    const char *r = do_match(ms, s, p);
    if (r == NULL)
        ms->level--;
    return r;
}

static const char *end_capture(struct mstate *ms, const char *s, const char *p)
{
    int l = ms->level - 1;
    while (l >= 0 && ms->cap[l].len != CAP_UNF)
        l--;
    if (l < 0)
        luaL_error(ms->L, "invalid pattern capture");
    ms->cap[l].len = s - ms->cap[l].init;
    const char *r = do_match(ms, s, p);
    if (r == NULL)
        ms->cap[l].len = CAP_UNF;
    return r;
}

static int check_capture(struct mstate *ms, int digit)
{
    int l = digit - '1';
    if (l < 0 || l >= ms->level || ms->cap[l].len == CAP_UNF)
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    return l;
}

static const char *match_capture(struct mstate *ms, const char *s, int digit)
{
    int l = check_capture(ms, digit);
    size_t len = (size_t)ms->cap[l].len; /* a position capture is huge here: never matches */
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->cap[l].init, s, len) == 0)
        return s + len;
    return NULL;
}

/* Matches pattern p at subject position s: the end of the match, or NULL. */
static const char *do_match(struct mstate *ms, const char *s, const char *p)
{
    if (ms->depth++ >= MT_MATCH_DEPTH)
        luaL_error(ms->L, "pattern too complex");
    step(ms);
    while (s != NULL && p < ms->pat_end) {
        const char *ep;
        switch (*p) {
        case '(':
            s = p[1] == ')' ? start_capture(ms, s, p + 2, CAP_POS)
                            : start_capture(ms, s, p + 1, CAP_UNF);
            goto done;
        case ')':
            s = end_capture(ms, s, p + 1);
            goto done;
        case '$':
            if (p + 1 == ms->pat_end) {
                if (s != ms->src_end)
                    s = NULL;
                goto done;
            }
            break;
        case '%':
            if (p[1] == 'b') {
                s = match_balance(ms, s, p + 2);
                p += 4;
                continue;
            }
            if (p[1] == 'f') {
                p += 2;
                if (*p != '[')
                    luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                ep = class_end(ms, p);
                int prev = s == ms->src ? 0 : (unsigned char)s[-1];
                int cur = s < ms->src_end ? (unsigned char)*s : 0;
                if (set_match(prev, p, ep - 1) || !set_match(cur, p, ep - 1))
                    s = NULL;
                p = ep;
                continue;
            }
            if (isdigit((unsigned char)p[1])) {
                s = match_capture(ms, s, (unsigned char)p[1]);
                p += 2;
                continue;
            }
            break;
        default:
            break;
        }
        /* A single-character class, perhaps with a quantifier. */
        ep = class_end(ms, p);
        if (!single_match(ms, s, p, ep)) {
            if (*ep == '*' || *ep == '?' || *ep == '-') { /* zero repetitions are fine */
                p = ep + 1;
                continue;
            }
            s = NULL;
            goto done;
        }
        switch (*ep) {
        case '?': {
            const char *r = do_match(ms, s + 1, ep + 1);
            if (r != NULL) {
                s = r;
                goto done;
            }
            p = ep + 1;
            continue;
        }
        case '+':
            s = max_expand(ms, s + 1, p, ep);
            goto done;
        case '*':
            s = max_expand(ms, s, p, ep);
            goto done;
        case '-':
            s = min_expand(ms, s, p, ep);
            goto done;
        default:
            s++;
            p = ep;
            continue;
        }
    }
done:
    ms->depth--;
    return s;
}

static void push_one(struct mstate *ms, int i, const char *s, const char *e)
{
    if (i >= ms->level) {
        if (i != 0)
            luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s)); /* no captures: the whole match */
        return;
    }
    ptrdiff_t l = ms->cap[i].len;
    if (l == CAP_UNF)
        luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POS)
        lua_pushinteger(ms->L, (ms->cap[i].init - ms->src) + 1);
    else
        lua_pushlstring(ms->L, ms->cap[i].init, (size_t)l);
}

static int push_captures(struct mstate *ms, const char *s, const char *e)
{
    int n = ms->level == 0 && s != NULL ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++)
        push_one(ms, i, s, e);
    return n;
}

static void ms_init(struct mstate *ms, lua_State *L, const char *s, size_t ls, const char *p,
                    size_t lp)
{
    ms->L = L;
    ms->s = mt__scripts_of(L);
    ms->src = s;
    ms->src_end = s + ls;
    ms->pat_end = p + lp;
    ms->depth = 0;
    ms->level = 0;
}

/* Lua's rule for a start position: negative counts from the end, 0 means 1. */
static size_t start_pos(lua_Integer pos, size_t len)
{
    if (pos > 0)
        return (size_t)pos;
    if (pos == 0 || pos < -(lua_Integer)len)
        return 1;
    return len + (size_t)pos + 1;
}

static bool no_specials(const char *p, size_t lp)
{
    for (size_t i = 0; i < lp; i++)
        if (p[i] != '\0' && strchr(SPECIALS, p[i]) != NULL)
            return false;
    return true;
}

static int find_aux(lua_State *L, bool find)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls);

    if (init > ls + 1) {
        lua_pushnil(L);
        return 1;
    }
    if (find && (lua_toboolean(L, 4) || no_specials(p, lp))) {
        /* A plain search is linear (memmem), nothing to bound. */
        const char *hit = memmem(s + init - 1, ls - (init - 1), p, lp);
        if (hit != NULL) {
            lua_pushinteger(L, (hit - s) + 1);
            lua_pushinteger(L, (lua_Integer)((size_t)(hit - s) + lp));
            return 2;
        }
        lua_pushnil(L);
        return 1;
    }
    struct mstate ms;
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    ms_init(&ms, L, s, ls, p, lp);
    const char *s1 = s + init - 1;
    do {
        ms.level = 0;
        ms.depth = 0;
        const char *e = do_match(&ms, s1, p);
        if (e != NULL) {
            if (!find)
                return push_captures(&ms, s1, e);
            lua_pushinteger(L, (s1 - s) + 1);
            lua_pushinteger(L, e - s);
            return push_captures(&ms, NULL, NULL) + 2;
        }
    } while (s1++ < ms.src_end && !anchor);
    lua_pushnil(L);
    return 1;
}

static int str_find(lua_State *L)
{
    return find_aux(L, true);
}

static int str_match(lua_State *L)
{
    return find_aux(L, false);
}

/* gmatch's iterator: upvalues are the subject, the pattern and this state. */
struct gmatch {
    struct mstate ms;
    const char *next;      /* where the next search starts */
    const char *lastmatch; /* end of the last match: an empty match there is skipped */
};

static int gmatch_next(lua_State *L)
{
    struct gmatch *g = lua_touserdata(L, lua_upvalueindex(3));
    size_t lp;
    const char *p = lua_tolstring(L, lua_upvalueindex(2), &lp);

    g->ms.L = L;
    g->ms.s = mt__scripts_of(L);
    for (const char *src = g->next; src <= g->ms.src_end; src++) {
        g->ms.level = 0;
        g->ms.depth = 0;
        const char *e = do_match(&g->ms, src, p);
        if (e != NULL && e != g->lastmatch) {
            g->next = g->lastmatch = e;
            return push_captures(&g->ms, src, e);
        }
    }
    g->next = g->ms.src_end + 1; /* exhausted: later calls return nothing at once */
    return 0;
}

static int str_gmatch(lua_State *L)
{
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = start_pos(luaL_optinteger(L, 3, 1), ls);

    lua_settop(L, 2);
    struct gmatch *g = lua_newuserdatauv(L, sizeof *g, 0);
    ms_init(&g->ms, L, s, ls, p, lp);
    /* Past the end (the string's NUL is the last byte there): nothing matches at all. */
    g->next = init > ls + 1 ? s + ls + 1 : s + init - 1;
    g->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

static void add_string(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e)
{
    size_t l;
    lua_State *L = ms->L;
    const char *news = lua_tolstring(L, 3, &l);

    for (size_t i = 0; i < l; i++) {
        if (news[i] != '%') {
            luaL_addchar(b, news[i]);
            continue;
        }
        i++;
        if (i < l && news[i] == '%') {
            luaL_addchar(b, '%');
        } else if (i < l && isdigit((unsigned char)news[i])) {
            if (news[i] == '0')
                luaL_addlstring(b, s, (size_t)(e - s));
            else {
                push_one(ms, news[i] - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", '%');
        }
    }
}

static void add_value(struct mstate *ms, luaL_Buffer *b, const char *s, const char *e, int tr)
{
    lua_State *L = ms->L;
    switch (tr) {
    case LUA_TFUNCTION: {
        lua_pushvalue(L, 3);
        int n = push_captures(ms, s, e);
        lua_call(L, n, 1);
        break;
    }
    case LUA_TTABLE:
        push_one(ms, 0, s, e);
        lua_gettable(L, 3);
        break;
    default:
        add_string(ms, b, s, e);
        return;
    }
    if (!lua_toboolean(L, -1)) { /* nil or false: keep the original text */
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
    } else if (!lua_isstring(L, -1)) {
        luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    } else {
        luaL_addvalue(b);
    }
}

static int str_gsub(lua_State *L)
{
    size_t ls, lp;
    const char *src = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
    lua_Integer n = 0;
    bool changed = false;

    luaL_argexpected(
        L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
        "string/function/table");
    bool anchor = *p == '^';
    if (anchor) {
        p++;
        lp--;
    }
    struct mstate ms;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    ms_init(&ms, L, src, ls, p, lp);
    while (n < max_s) {
        ms.level = 0;
        ms.depth = 0;
        const char *e = do_match(&ms, src, p);
        if (e != NULL && e != lastmatch) {
            n++;
            add_value(&ms, &b, src, e, tr);
            src = lastmatch = e;
            changed = true;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor)
            break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void mt__lmatch_install(lua_State *L, int idx)
{
    static const luaL_Reg funcs[] = {
        {"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch},
        {"gsub", str_gsub}, {NULL, NULL},
    };
    idx = lua_absindex(L, idx);
    for (const luaL_Reg *f = funcs; f->name != NULL; f++) {
        lua_pushcfunction(L, f->func);
        lua_setfield(L, idx, f->name);
    }
}
