/* moontun show, metrics, reload, peer, call: clients of a running tunnel's control socket
 * (core/control.c; the protocol is in core/ctlproto.h). One request, one reply, printed. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "control.h"
#include "ctlproto.h"
#include "verbs.h"

#define CTL_TIMEOUT_MS 10000

int mt_ctl_connect(const char *path, const char *what)
{
    struct sockaddr_un sun = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sun.sun_path) {
        fprintf(stderr, "moontun: control socket path %s is too long\n", path);
        return -1;
    }
    memcpy(sun.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sun, sizeof sun) < 0) {
        if (errno == EACCES || errno == EPERM)
            fprintf(stderr,
                    "moontun: cannot connect to %s: %s (it belongs to the instance's user)\n", path,
                    strerror(errno));
        else
            fprintf(stderr, "moontun: no moontun instance%s%s: cannot connect to %s: %s\n",
                    what ? " on " : "", what ? what : "", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    return fd;
}

/* Sends line to the socket at path and reads the reply into *body. 0, 1 (the instance said
 * error: body holds its message), or -1 after printing why (no instance, a broken reply). */
static int ask(const char *path, const char *what, const char *line, struct mt_buf *body)
{
    int fd = mt_ctl_connect(path, what);
    if (fd < 0)
        return -1;
    size_t len = strlen(line);
    if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len) {
        fprintf(stderr, "moontun: %s: %s\n", path, strerror(errno));
        close(fd);
        return -1;
    }
    /* The header, a byte at a time (it is short), then exactly LEN bytes. */
    char hdr[MT_CTL_LINE_MAX];
    size_t hl = 0, want = 0;
    int state = 0; /* 0: header, 1: body */
    int rc = -1;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        if (poll(&pfd, 1, CTL_TIMEOUT_MS) <= 0) {
            fprintf(stderr, "moontun: %s: no reply within %d s\n", path, CTL_TIMEOUT_MS / 1000);
            break;
        }
        if (state == 0) {
            char ch;
            ssize_t n = recv(fd, &ch, 1, 0);
            if (n <= 0 || hl == sizeof hdr - 1) {
                fprintf(stderr, "moontun: %s: closed before a reply\n", path);
                break;
            }
            if (ch != '\n') {
                hdr[hl++] = ch;
                continue;
            }
            hdr[hl] = '\0';
            const char *msg;
            int k = mt_ctl_parse_header(hdr, &want, &msg);
            if (k == 1) {
                mt_buf_printf(body, "%s", msg);
                rc = 1;
                break;
            }
            if (k < 0) {
                fprintf(stderr, "moontun: %s: not a moontun reply\n", path);
                break;
            }
            state = 1;
            if (want == 0) {
                rc = 0;
                break;
            }
            continue;
        }
        char buf[65536];
        size_t room = want - body->len < sizeof buf ? want - body->len : sizeof buf;
        ssize_t n = recv(fd, buf, room, 0);
        if (n <= 0) {
            fprintf(stderr, "moontun: %s: reply cut short\n", path);
            break;
        }
        mt_buf_add(body, buf, (size_t)n);
        if (body->overflow)
            break;
        if (body->len == want) {
            rc = 0;
            break;
        }
    }
    close(fd);
    return rc;
}

struct ctl_opts {
    const char *control; /* --control PATH */
    bool json;
};

static void usage(FILE *out, const char *verb)
{
    fprintf(out,
            "Usage: moontun show [IFNAME] [--json] [--control PATH]\n"
            "       moontun metrics [IFNAME] [--control PATH]\n"
            "       moontun reload IFNAME [--control PATH]\n"
            "       moontun peer IFNAME ADDR|NAME|ID kill [--control PATH]\n"
            "       moontun call IFNAME COMMAND [ARGS...]   (or --control PATH COMMAND ...)\n"
            "Ask a running moontun through its control socket (default %s/IFNAME.sock).\n"
            "Without IFNAME, show (and metrics, when there is one instance) ask every\n"
            "instance found there. call runs a command a script registered (mt.command).\n",
            MT_CONTROL_DIR);
    (void)verb;
}

/* Parses --json, --control; leaves the other words in words[]. -1: bad usage (printed). */
static int parse(int argc, char **argv, struct ctl_opts *o, char **words, int *nwords)
{
    static const struct option longs[] = {{"json", no_argument, NULL, 'j'},
                                          {"control", required_argument, NULL, 'C'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "jC:h", longs, NULL)) != -1) {
        switch (c) {
        case 'j':
            o->json = true;
            break;
        case 'C':
            o->control = optarg;
            break;
        case 'h':
            usage(stdout, argv[0]);
            return 1;
        default:
            fprintf(stderr, "moontun %s: unknown option or missing value '%s' (see --help)\n",
                    argv[0], argv[optind - 1]);
            return -1;
        }
    }
    *nwords = 0;
    for (int i = optind; i < argc && *nwords < 4; i++)
        words[(*nwords)++] = argv[i];
    if (optind + *nwords < argc) {
        fprintf(stderr, "moontun %s: too many arguments (see --help)\n", argv[0]);
        return -1;
    }
    return 0;
}

/* Asks one instance and prints the reply; 0 or 1 (exit status). */
static int run_one(const char *path, const char *ifname, const char *line, bool trailing)
{
    struct mt_buf body;
    mt_buf_init(&body, MT_CTL_REPLY_MAX);
    int rc = ask(path, ifname, line, &body);
    if (rc == 0 && body.len > 0)
        fwrite(body.data, 1, body.len, stdout);
    else if (rc == 1)
        fprintf(stderr, "moontun: %s: %s\n", ifname ? ifname : path, body.data);
    (void)trailing;
    mt_buf_free(&body);
    return rc == 0 ? 0 : 1;
}

static void path_of(const struct ctl_opts *o, const char *ifname, char *buf, size_t bufsz)
{
    if (o->control)
        snprintf(buf, bufsz, "%s", o->control);
    else
        mt_control_default_path(ifname, buf, bufsz);
}

/* Every IFNAME with a socket in MT_CONTROL_DIR, sorted; returns how many (at most max). */
static int instances(char names[][64], int max)
{
    DIR *d = opendir(MT_CONTROL_DIR);
    int n = 0;
    struct dirent *e;
    char tail[48];
    mt_control_netns_tag(tail, sizeof tail - 5);
    strcat(tail, ".sock"); /* this namespace's instances only */
    size_t tl = strlen(tail);
    while (d && (e = readdir(d)) != NULL && n < max) {
        size_t len = strlen(e->d_name);
        if (len <= tl || len - tl >= 64 || strcmp(e->d_name + len - tl, tail) != 0)
            continue;
        if (memchr(e->d_name, '@', len - tl)) /* another namespace's, seen from the host */
            continue;
        memcpy(names[n], e->d_name, len - tl);
        names[n++][len - tl] = '\0';
    }
    if (d)
        closedir(d);
    qsort(names, (size_t)n, sizeof names[0], (int (*)(const void *, const void *))strcmp);
    return n;
}

/* show and metrics: one instance, or each found. */
static int ask_some(int argc, char **argv, bool metrics)
{
    struct ctl_opts o = {0};
    char *w[4];
    int nw, rc = parse(argc, argv, &o, w, &nw);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    if (nw > 1 || (metrics && o.json)) {
        fprintf(stderr, "moontun %s: too many arguments (see --help)\n", argv[0]);
        return 2;
    }
    const char *line = metrics ? "metrics\n" : o.json ? "show json\n" : "show\n";
    char path[256];
    if (nw == 1 || o.control) {
        path_of(&o, nw ? w[0] : NULL, path, sizeof path);
        return run_one(path, nw ? w[0] : NULL, line, false);
    }
    static char names[256][64];
    int n = instances(names, 256);
    if (n == 0) {
        fprintf(stderr, "moontun: no moontun instance: no control socket in %s\n", MT_CONTROL_DIR);
        return 1;
    }
    if (metrics && n > 1) {
        fprintf(stderr, "moontun metrics: %d instances in %s: name one\n", n, MT_CONTROL_DIR);
        return 2;
    }
    int status = 0;
    if (o.json && n > 1)
        printf("[");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            printf(o.json ? ",\n" : "\n");
        fflush(stdout);
        mt_control_default_path(names[i], path, sizeof path);
        status |= run_one(path, names[i], line, false);
        fflush(stdout);
    }
    if (o.json && n > 1)
        printf("]\n");
    return status;
}

int mt_show_main(int argc, char **argv)
{
    return ask_some(argc, argv, false);
}

int mt_metrics_main(int argc, char **argv)
{
    return ask_some(argc, argv, true);
}

int mt_reload_main(int argc, char **argv)
{
    struct ctl_opts o = {0};
    char *w[4];
    int nw, rc = parse(argc, argv, &o, w, &nw);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    if (nw > 1 || (nw == 0 && !o.control)) {
        fprintf(stderr, "moontun reload: say which instance: moontun reload IFNAME\n");
        return 2;
    }
    char path[256];
    path_of(&o, nw ? w[0] : NULL, path, sizeof path);
    return run_one(path, nw ? w[0] : NULL, "reload\n", false);
}

int mt_peer_main(int argc, char **argv)
{
    struct ctl_opts o = {0};
    char *w[4];
    int nw, rc = parse(argc, argv, &o, w, &nw);
    if (rc != 0)
        return rc < 0 ? 2 : 0;
    /* moontun peer IFNAME ADDR kill; with --control the IFNAME may be left out */
    int first = nw == 3 ? 1 : 0;
    if (!(nw == 3 || (nw == 2 && o.control)) || strcmp(w[first + 1], "kill") != 0) {
        fprintf(stderr, "moontun peer: usage: moontun peer IFNAME ADDR kill\n");
        return 2;
    }
    char line[MT_CTL_LINE_MAX], path[256];
    int n = snprintf(line, sizeof line, "peer %s kill\n", w[first]);
    if (n < 0 || (size_t)n >= sizeof line || strchr(w[first], ' ')) {
        fprintf(stderr, "moontun peer: '%s' is not a peer address, name or id\n", w[first]);
        return 2;
    }
    path_of(&o, first ? w[0] : NULL, path, sizeof path);
    return run_one(path, first ? w[0] : NULL, line, false);
}

/* moontun call IFNAME COMMAND ARGS...: the words go as they are, one line ("call COMMAND
 * ARGS..."); a word the line protocol cannot carry (a space, a control byte) is refused here. */
int mt_call_main(int argc, char **argv)
{
    struct ctl_opts o = {0};
    int first = 1, i;
    /* --control PATH may come first; after IFNAME, words (even "--x") are the command's */
    while (first + 1 < argc && strcmp(argv[first], "--control") == 0) {
        o.control = argv[first + 1];
        first += 2;
    }
    if (first < argc && (strcmp(argv[first], "--help") == 0 || strcmp(argv[first], "-h") == 0)) {
        usage(stdout, argv[0]);
        return 0;
    }
    const char *ifname = o.control ? NULL : first < argc ? argv[first++] : NULL;
    if (first >= argc || (!o.control && !ifname)) {
        fprintf(stderr, "moontun call: usage: moontun call IFNAME COMMAND [ARGS...]\n");
        return 2;
    }
    char line[MT_CTL_LINE_MAX];
    size_t n = (size_t)snprintf(line, sizeof line, "call");
    for (i = first; i < argc; i++) {
        bool ok = argv[i][0] != '\0' && argc - first < MT_CTL_MAX_WORDS;
        for (const char *p = argv[i]; ok && *p; p++)
            ok = *p > 0x20 && *p < 0x7f;
        if (!ok) {
            fprintf(stderr,
                    "moontun call: '%s': arguments are printable words without spaces (at "
                    "most %d)\n",
                    argv[i], MT_CTL_MAX_WORDS - 2);
            return 2;
        }
        n += (size_t)snprintf(line + n, sizeof line - n, " %s", argv[i]);
        if (n + 2 >= sizeof line) {
            fprintf(stderr, "moontun call: the command line is longer than %d bytes\n",
                    MT_CTL_LINE_MAX - 2);
            return 2;
        }
    }
    line[n++] = '\n';
    line[n] = '\0';
    char path[256];
    path_of(&o, ifname, path, sizeof path);
    return run_one(path, ifname, line, false);
}
