/* --config FILE: a deployment as a file of long options, one a line ("mtu 1400",
 * "script examples/firewall.lua allow=tcp/22", "server"), # comments. The file's options are
 * put in front of the command line's, so a flag given there overrides the file (a repeatable
 * option given there, -S, --addr, --allow, replaces the file's list; -s/-c its role). Each
 * line is validated on its own by the option parser, so an error names FILE:LINE. */
#ifndef MOONTUN_CORE_CONFFILE_H
#define MOONTUN_CORE_CONFFILE_H

#include <stddef.h>

#define MT_CONFFILE_MAX_LINES 512
#define MT_CONFFILE_LINE_MAX  1024

struct mt_argv {
    int argc;
    char **argv;  /* argv[argc] is NULL */
    char *text;   /* the file's words point into it */
    char **owned; /* "--key" strings made for the file */
    int nowned;
};

/* Parses text (a file's contents, NUL-terminated; modified) named file into options
 * appended to out (argv words "--key" [value]). Returns 0, or -EINVAL with
 * "FILE:LINE: problem" in err. Validates each line with mt_config_parse. */
int mt_conffile_parse(const char *file, char *text, struct mt_argv *out, char *err, size_t errsz);

/* When argv holds --config FILE (or --config=FILE): *out is the file's options followed by
 * the rest of argv, the overridden file options left out; returns 1. Without --config, 0 and
 * *out untouched. A negative errno with one line in err (unreadable file, bad line). */
int mt_conffile_expand(int argc, char **argv, struct mt_argv *out, char *err, size_t errsz);
void mt_argv_free(struct mt_argv *a);

#endif
