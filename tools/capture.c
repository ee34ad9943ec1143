/* moontun capture: asks a running tunnel for a live capture with verdicts (core/capture.c)
 * and writes the pcapng stream to a file or stdout. Only complete blocks are written, so the
 * file is valid whenever the capture ends: -c COUNT reached, Ctrl-C (the client closes its
 * side, the tunnel sends the closing statistics block and hangs up), or the tunnel gone. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "ctlproto.h"
#include "moontun/packet.h"
#include "pcapng.h"
#include "verbs.h"

#define BLOCK_MAX  (MT_MAX_PACKET + 4096) /* the longest block a tunnel writes, and then some */
#define END_WAIT_S 5                      /* after Ctrl-C: how long the closing block may take */

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: moontun capture [IFNAME] [--point POINTS] [--verdict VERDICTS]\n"
            "                       [--filter \"BPF EXPRESSION\"] [-c COUNT] -w FILE|-\n"
            "                       [--control PATH]\n"
            "Streams a running tunnel's packets as pcapng, each with a comment saying its fate:\n"
            "  point=net-in peer=NAME script=firewall.lua:41 handler=ingress verdict=drop\n"
            "  --point    device-in, device-out, net-in, net-out (comma-separated) or all\n"
            "             (default all)\n"
            "  --verdict  drop, reply, pass, route (comma-separated) or any (default any)\n"
            "  --filter   a pcap-filter(7) expression, compiled by the tunnel with libpcap\n"
            "  -c COUNT   stop after COUNT packets; Ctrl-C stops too, with a valid file\n"
            "  -w FILE    the pcapng file, or - for stdout (tshark -r -)\n"
            "The end line on stderr counts the packets and those lost to a slow reader.\n");
}

/* The reply's first line, a byte at a time (the stream follows it). 0 on "stream pcapng",
 * else -1 after saying why. */
static int read_header(int fd)
{
    char line[MT_CTL_LINE_MAX];
    size_t n = 0;
    for (;;) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        char ch;
        if (poll(&pfd, 1, 10000) <= 0 || recv(fd, &ch, 1, 0) != 1 || n == sizeof line - 1) {
            fprintf(stderr, "moontun capture: the tunnel closed before answering\n");
            return -1;
        }
        if (ch == '\n')
            break;
        line[n++] = ch;
    }
    line[n] = '\0';
    if (strcmp(line, "stream pcapng") == 0)
        return 0;
    if (strncmp(line, "error ", 6) == 0)
        fprintf(stderr, "moontun capture: %s\n", line + 6);
    else
        fprintf(stderr, "moontun capture: not a moontun reply: %s\n", line);
    return -1;
}

struct stream {
    uint8_t *buf;
    size_t len;
    unsigned long long packets, lost;
    bool ended; /* the closing statistics block arrived */
};

/* Writes every complete block in s->buf to out; -1 on a broken stream or a failed write. */
static int drain(struct stream *s, FILE *out)
{
    size_t at = 0;
    for (;;) {
        uint32_t type;
        long n = mt_pcapng_next(s->buf + at, s->len - at, BLOCK_MAX, &type);
        if (n < 0) {
            fprintf(stderr, "moontun capture: the stream is not pcapng\n");
            return -1;
        }
        if (n == 0)
            break;
        if (fwrite(s->buf + at, 1, (size_t)n, out) != (size_t)n)
            return -1;
        s->packets += type == MT_PCAPNG_EPB;
        if (type == MT_PCAPNG_ISB) {
            s->lost = mt_pcapng_isb_drops(s->buf + at, (size_t)n);
            s->ended = true;
        }
        at += (size_t)n;
    }
    memmove(s->buf, s->buf + at, s->len - at);
    s->len -= at;
    return fflush(out) == 0 ? 0 : -1;
}

/* Reads the stream until the tunnel hangs up; a signal closes our side first. */
static int pump(int fd, FILE *out, struct stream *s)
{
    bool closed = false;
    time_t deadline = 0;
    for (;;) {
        if (interrupted && !closed) {
            shutdown(fd, SHUT_WR); /* "that is enough": the closing block follows */
            closed = true;
            deadline = time(NULL) + END_WAIT_S;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN};
        int k = poll(&pfd, 1, 500);
        if (k < 0 && errno == EINTR)
            continue;
        if (closed && time(NULL) > deadline)
            return 0;
        if (k == 0)
            continue;
        ssize_t n = recv(fd, s->buf + s->len, BLOCK_MAX - s->len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 0; /* the tunnel hung up: the end, or it is gone */
        s->len += (size_t)n;
        if (drain(s, out) < 0)
            return -1;
        if (s->len == BLOCK_MAX) {
            fprintf(stderr, "moontun capture: a block longer than %d bytes\n", BLOCK_MAX);
            return -1;
        }
    }
}

int mt_capture_main(int argc, char **argv)
{
    static const struct option longs[] = {
        {"point", required_argument, NULL, 'P'},  {"verdict", required_argument, NULL, 'V'},
        {"filter", required_argument, NULL, 'f'}, {"count", required_argument, NULL, 'c'},
        {"write", required_argument, NULL, 'w'},  {"control", required_argument, NULL, 'C'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    const char *point = "all", *verdict = "any", *filter = NULL, *file = NULL, *control = NULL;
    unsigned long long count = 0;
    optind = 0;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "P:V:f:c:w:C:h", longs, NULL)) != -1) {
        char *end;
        switch (c) {
        case 'P':
            point = optarg;
            break;
        case 'V':
            verdict = optarg;
            break;
        case 'f':
            filter = optarg;
            break;
        case 'c':
            errno = 0;
            count = strtoull(optarg, &end, 10);
            if (errno || *end || optarg[0] == '-' || count == 0) {
                fprintf(stderr, "moontun capture: -c: '%s' is not a count\n", optarg);
                return 2;
            }
            break;
        case 'w':
            file = optarg;
            break;
        case 'C':
            control = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            fprintf(stderr, "moontun capture: unknown option or missing value '%s' (see --help)\n",
                    argv[optind - 1]);
            return 2;
        }
    }
    const char *ifname = optind < argc ? argv[optind++] : NULL;
    if (optind < argc || !file || (!ifname && !control)) {
        fprintf(stderr, "moontun capture: usage: moontun capture IFNAME [options] -w FILE|- "
                        "(see --help)\n");
        return 2;
    }
    char line[MT_CTL_LINE_MAX], path[256];
    int n = snprintf(line, sizeof line, "capture %s %s %llu%s%s\n", point, verdict, count,
                     filter ? " " : "", filter ? filter : "");
    if (n < 0 || (size_t)n >= sizeof line || strchr(point, ' ') || strchr(verdict, ' ') ||
        strchr(line, '\n') != line + n - 1) {
        fprintf(stderr, "moontun capture: the request is too long or holds a line break\n");
        return 2;
    }
    if (control)
        snprintf(path, sizeof path, "%s", control);
    else
        mt_control_default_path(ifname, path, sizeof path);

    int fd = mt_ctl_connect(path, ifname);
    if (fd < 0)
        return 1;
    if (send(fd, line, (size_t)n, MSG_NOSIGNAL) != n || read_header(fd) < 0) {
        close(fd);
        return 1;
    }
    FILE *out = strcmp(file, "-") == 0 ? stdout : fopen(file, "wb");
    if (!out) {
        fprintf(stderr, "moontun capture: %s: %s\n", file, strerror(errno));
        close(fd);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: poll returns */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN); /* a reader of stdout that quits is a failed write */

    struct stream s = {.buf = malloc(BLOCK_MAX)};
    int rc = s.buf ? pump(fd, out, &s) : -1;
    close(fd);
    if (out != stdout && fclose(out) != 0)
        rc = -1;
    else if (out == stdout)
        fflush(stdout);
    fprintf(stderr, "moontun capture: %llu packets captured, %llu lost (slow reader)%s\n",
            s.packets, s.lost, s.ended ? "" : "; the tunnel ended the capture");
    free(s.buf);
    return rc < 0 ? 1 : 0;
}
