/* --config FILE: reading the file, checking each line with the option parser, and merging it
 * with the command line (see conffile.h). Runs once at start-up. */
#include "conffile.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "moontun/config.h"

#define MT_CONFFILE_MAX_BYTES (1 << 20)

static const struct {
    char letter;
    const char *name;
} shorts[] = {{'i', "iface"},  {'u', "tun"},   {'a', "tap"},    {'s', "server"},
              {'c', "client"}, {'p', "port"},  {'l', "listen"}, {'S', "script"},
              {'d', "debug"},  {'q', "quiet"}, {'h', "help"},   {'V', "version"}};

/* The long name of a command-line word that is an option ("--mtu", "--mtu=9", "-S", "-sd"
 * by its first letter), or NULL. *len: the name's length. */
static const char *option_name(const char *word, size_t *len)
{
    if (word[0] != '-' || word[1] == '\0')
        return NULL;
    if (word[1] == '-') {
        const char *eq = strchr(word + 2, '=');
        *len = eq ? (size_t)(eq - word - 2) : strlen(word + 2);
        return word + 2;
    }
    for (size_t i = 0; i < sizeof shorts / sizeof shorts[0]; i++)
        if (shorts[i].letter == word[1]) {
            *len = strlen(shorts[i].name);
            return shorts[i].name;
        }
    return NULL;
}

static bool same(const char *name, size_t len, const char *key)
{
    return strlen(key) == len && strncmp(name, key, len) == 0;
}

static bool is_role(const char *key)
{
    return strcmp(key, "server") == 0 || strcmp(key, "client") == 0;
}

static bool is_list(const char *key)
{
    return strcmp(key, "script") == 0 || strcmp(key, "addr") == 0 || strcmp(key, "allow") == 0;
}

static int push(struct mt_argv *a, char *word)
{
    char **v = realloc(a->argv, (size_t)(a->argc + 2) * sizeof *v);
    if (!v)
        return -ENOMEM;
    a->argv = v;
    a->argv[a->argc++] = word;
    a->argv[a->argc] = NULL;
    return 0;
}

static char *own(struct mt_argv *a, const char *key)
{
    char **o = realloc(a->owned, (size_t)(a->nowned + 1) * sizeof *o);
    if (!o)
        return NULL;
    a->owned = o;
    size_t n = strlen(key) + 3;
    char *s = malloc(n);
    if (!s)
        return NULL;
    snprintf(s, n, "--%s", key);
    a->owned[a->nowned++] = s;
    return s;
}

/* Runs the option parser on this one option, with what it needs to be a complete command
 * line (a role; a keepalive shorter than any idle timeout and the other way round), so the
 * error, if any, is this line's. */
static int check_line(char *opt, char *value, char *err, size_t errsz)
{
    char *argv[8];
    int argc = 0;
    argv[argc++] = "moontun";
    const char *key = opt + 2;
    if (!is_role(key))
        argv[argc++] = "-s";
    if (strcmp(key, "idle-timeout") == 0) {
        argv[argc++] = "--keepalive";
        argv[argc++] = "0.1";
    } else if (strcmp(key, "keepalive") == 0) {
        argv[argc++] = "--idle-timeout";
        argv[argc++] = "86400";
    }
    argv[argc++] = opt;
    if (value)
        argv[argc++] = value;
    argv[argc] = NULL;
    static struct mt_config cfg; /* large: not on the stack */
    int rc = mt_config_parse(&cfg, argc, argv, err, errsz);
    mt_config_free(&cfg);
    return rc < 0 ? rc : 0;
}

int mt_conffile_parse(const char *file, char *text, struct mt_argv *out, char *err, size_t errsz)
{
    int lineno = 0;
    char *next = text;
    while (next && *next) {
        char *line = next;
        char *nl = strchr(line, '\n');
        next = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        if (++lineno > MT_CONFFILE_MAX_LINES) {
            snprintf(err, errsz, "%s:%d: more than %d lines", file, lineno, MT_CONFFILE_MAX_LINES);
            return -EINVAL;
        }
        if (strlen(line) > MT_CONFFILE_LINE_MAX) {
            snprintf(err, errsz, "%s:%d: line longer than %d bytes", file, lineno,
                     MT_CONFFILE_LINE_MAX);
            return -EINVAL;
        }
        /* '#' starts a comment at the start of a line or after a blank (a script setting
         * may hold one: "script x.lua tag=a#b") */
        for (char *p = line; *p; p++)
            if (*p == '#' && (p == line || *(p - 1) == ' ' || *(p - 1) == '\t')) {
                *p = '\0';
                break;
            }
        char *key = line + strspn(line, " \t\r");
        size_t end = strlen(key);
        while (end > 0 && strchr(" \t\r", key[end - 1]))
            key[--end] = '\0';
        if (!*key)
            continue;
        char *value = key + strcspn(key, " \t");
        if (*value) {
            *value++ = '\0';
            value += strspn(value, " \t");
        }
        if (key[0] == '-') {
            snprintf(err, errsz, "%s:%d: write '%s' without the dashes", file, lineno,
                     key + strspn(key, "-"));
            return -EINVAL;
        }
        if (strcmp(key, "config") == 0 || strcmp(key, "help") == 0 || strcmp(key, "version") == 0) {
            snprintf(err, errsz, "%s:%d: '%s' has no place in a config file", file, lineno, key);
            return -EINVAL;
        }
        char *opt = own(out, key);
        if (!opt) {
            snprintf(err, errsz, "out of memory");
            return -ENOMEM;
        }
        char msg[400];
        if (check_line(opt, *value ? value : NULL, msg, sizeof msg) < 0) {
            snprintf(err, errsz, "%s:%d: %s", file, lineno, msg);
            return -EINVAL;
        }
        if (push(out, opt) < 0 || (*value && push(out, value) < 0)) {
            snprintf(err, errsz, "out of memory");
            return -ENOMEM;
        }
    }
    return 0;
}

static char *read_file(const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errsz, "--config %s: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = malloc(MT_CONFFILE_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, MT_CONFFILE_MAX_BYTES + 1, f) : 0;
    bool bad = ferror(f);
    fclose(f);
    if (!buf || bad || n > MT_CONFFILE_MAX_BYTES || memchr(buf, '\0', n)) {
        snprintf(err, errsz, "--config %s: %s", path,
                 !buf  ? "out of memory"
                 : bad ? "cannot read it"
                       : "not a text file of at most 1 MiB");
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

int mt_conffile_expand(int argc, char **argv, struct mt_argv *out, char *err, size_t errsz)
{
    int at = -1, words = 0;
    const char *path = NULL;
    err[0] = '\0';
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--config") == 0 || strncmp(argv[i], "--config=", 9) == 0) {
            if (at >= 0) {
                snprintf(err, errsz, "--config: one file only");
                return -EINVAL;
            }
            at = i;
            words = argv[i][8] == '=' ? 1 : 2;
            path = words == 1 ? argv[i] + 9 : (i + 1 < argc ? argv[i + 1] : NULL);
            if (!path || !*path) {
                snprintf(err, errsz, "option '--config' needs a value (see --help)");
                return -EINVAL;
            }
        }
    }
    if (at < 0)
        return 0;

    struct mt_argv file = {0}, merged = {0};
    int rc = -ENOMEM;
    file.text = read_file(path, err, errsz);
    if (!file.text)
        return -EINVAL;
    rc = mt_conffile_parse(path, file.text, &file, err, errsz);
    if (rc < 0)
        goto fail;
    rc = -ENOMEM;
    if (push(&merged, argv[0]) < 0)
        goto fail;
    /* the file's options, but not those the command line gives again as a list or role */
    for (int i = 0; i < file.argc; i++) {
        const char *key = file.argv[i] + 2;
        bool overridden = false;
        if (is_role(key) || is_list(key))
            for (int k = 1; k < argc && !overridden; k++) {
                size_t len;
                const char *name = k >= at && k < at + words ? NULL : option_name(argv[k], &len);
                if (!name)
                    continue;
                overridden = is_role(key) ? same(name, len, "server") || same(name, len, "client")
                                          : same(name, len, key);
            }
        /* a word that is not one of the made "--key" strings is the value of the one before */
        bool has_value = false;
        if (i + 1 < file.argc) {
            has_value = true;
            for (int o = 0; o < file.nowned; o++)
                if (file.argv[i + 1] == file.owned[o])
                    has_value = false;
        }
        if (!overridden && push(&merged, file.argv[i]) < 0)
            goto fail;
        if (has_value && !overridden && push(&merged, file.argv[i + 1]) < 0)
            goto fail;
        i += has_value;
    }
    for (int i = 1; i < argc; i++)
        if ((i < at || i >= at + words) && push(&merged, argv[i]) < 0)
            goto fail;
    merged.text = file.text;
    merged.owned = file.owned;
    merged.nowned = file.nowned;
    free(file.argv);
    *out = merged;
    return 1;
fail:
    if (rc == -ENOMEM && !err[0])
        snprintf(err, errsz, "out of memory");
    free(merged.argv);
    mt_argv_free(&file);
    return rc;
}

void mt_argv_free(struct mt_argv *a)
{
    for (int i = 0; i < a->nowned; i++)
        free(a->owned[i]);
    free(a->owned);
    free(a->argv);
    free(a->text);
    memset(a, 0, sizeof *a);
}
