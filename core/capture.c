/* Live capture with verdicts (capture.h): each capture is a control client handed over by
 * core/control.c, with its points, verdicts, a BPF filter compiled by libpcap, an optional
 * packet count and a bounded buffer of pcapng blocks (core/pcapng.c) written to the socket
 * from the loop. A block that does not fit is a lost packet, counted; the tunnel never waits.
 * The client ends a capture by closing its side (the end block follows, then the socket is
 * closed); a client that is gone is freed at the first failed read or write. */
#include "capture.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "moontun/log.h"
#include "pcapng.h"
#include "tunnel.h"
#include "util.h"

#define END_ROOM   64 /* kept free in every buffer for the closing statistics block */
#define FILTER_MAX 1024

struct mt_capture {
    struct mt_tunnel *t;
    struct mt_capture *next;
    int fd;
    ev_io w;
    unsigned points;   /* MT_CAP_* */
    unsigned verdicts; /* 1 << enum mt_verdict */
    uint64_t limit;    /* -c: end after this many (0: no limit) */
    bool filtered;
    struct bpf_program prog;
    char filter[FILTER_MAX];
    uint64_t captured, lost;
    bool ending; /* the end block is queued: nothing more is added */
    uint8_t *buf;
    size_t head, len; /* bytes buf[head, len) wait to be sent */
};

static const char *const point_names[] = {"device-in", "device-out", "net-in", "net-out"};
static const char *const verdict_names[] = {"pass", "drop", "reply", "route"};

static const char *point_name(unsigned p)
{
    for (unsigned i = 0; i < 4; i++)
        if (p == 1u << i)
            return point_names[i];
    return "?";
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void watch(struct mt_capture *c)
{
    struct ev_loop *loop = c->t->loop;
    int want = EV_READ | (c->head < c->len ? EV_WRITE : 0);
    if (ev_is_active(&c->w) && (c->w.events & (EV_READ | EV_WRITE)) == want)
        return;
    ev_io_stop(loop, &c->w);
    ev_io_set(&c->w, c->fd, want);
    ev_io_start(loop, &c->w);
}

static void cap_free(struct mt_capture *c)
{
    struct mt_tunnel *t = c->t;
    for (struct mt_capture **pp = &t->captures; *pp; pp = &(*pp)->next)
        if (*pp == c) {
            *pp = c->next;
            break;
        }
    ev_io_stop(t->loop, &c->w);
    close(c->fd);
    if (c->filtered)
        pcap_freecode(&c->prog);
    free(c->buf);
    free(c);
}

/* Room for n more bytes at the end of the queue (moving what waits to the front when that
 * makes room); false when the buffer is full. keep: bytes that must stay free after them. */
static bool room(struct mt_capture *c, size_t n, size_t keep)
{
    if (n + keep > MT_CAPTURE_BUF - (c->len - c->head))
        return false;
    if (n + keep > MT_CAPTURE_BUF - c->len) {
        memmove(c->buf, c->buf + c->head, c->len - c->head);
        c->len -= c->head;
        c->head = 0;
    }
    return true;
}

/* No more packets: the statistics block (captured, lost) goes last, then the socket closes
 * once it is out. */
static void cap_end(struct mt_capture *c)
{
    if (c->ending)
        return;
    c->ending = true;
    if (room(c, END_ROOM, 0))
        c->len +=
            mt_pcapng_isb(c->buf + c->len, END_ROOM, now_ns(), c->captured + c->lost, c->lost);
    watch(c);
}

static void cap_cb(struct ev_loop *loop, ev_io *w, int revents)
{
    struct mt_capture *c = mt_container_of(w, struct mt_capture, w);
    if (revents & EV_READ) {
        char junk[256];
        ssize_t n = recv(c->fd, junk, sizeof junk, MSG_DONTWAIT);
        if (n == 0) { /* the client closed its side: it wants the end */
            cap_end(c);
        } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
            cap_free(c); /* gone: nothing to finish */
            return;
        }
    }
    if (c->head < c->len) {
        ssize_t n = send(c->fd, c->buf + c->head, c->len - c->head, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            cap_free(c);
            return;
        }
        if (n > 0)
            c->head += (size_t)n;
    }
    if (c->head == c->len) {
        c->head = c->len = 0;
        if (c->ending) {
            cap_free(c);
            return;
        }
    }
    watch(c);
}

/* "device-in,net-out" -> bit i for names[i] (of 4), all: every bit; 0 when a name is unknown.
 * Points and verdicts alike. */
static unsigned parse_names(const char *s, const char *const names[4], const char *all)
{
    if (strcmp(s, all) == 0)
        return 15;
    unsigned bits = 0;
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s", s);
    for (char *save, *tok = strtok_r(tmp, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        unsigned i = 0;
        while (i < 4 && strcmp(tok, names[i]) != 0)
            i++;
        if (i == 4)
            return 0;
        bits |= 1u << i;
    }
    return bits;
}

/* Compiles the filter with libpcap for this tunnel's link type. */
static int compile(struct mt_capture *c, char *err, size_t errsz)
{
    pcap_t *dead = pcap_open_dead(c->t->link == MT_LINK_ETH ? DLT_EN10MB : DLT_RAW, 65535);
    if (!dead) {
        snprintf(err, errsz, "cannot compile filters: out of memory");
        return -ENOMEM;
    }
    int rc = 0;
    if (pcap_compile(dead, &c->prog, c->filter, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        snprintf(err, errsz, "bad filter '%s': %s", c->filter, pcap_geterr(dead));
        rc = -EINVAL;
    }
    pcap_close(dead);
    c->filtered = rc == 0;
    return rc;
}

int mt__capture_start(struct mt_tunnel *t, int fd, char **words, int n, char *err, size_t errsz)
{
    int running = 0;
    for (struct mt_capture *c = t->captures; c; c = c->next)
        running++;
    if (running >= MT_CAPTURE_MAX) {
        snprintf(err, errsz, "%d captures are running already", running);
        return -EBUSY;
    }
    if (n < 3) {
        snprintf(err, errsz, "usage: capture POINTS VERDICTS COUNT [FILTER]");
        return -EINVAL;
    }
    struct mt_capture *c = calloc(1, sizeof *c);
    if (!c || !(c->buf = malloc(MT_CAPTURE_BUF))) {
        free(c);
        snprintf(err, errsz, "out of memory");
        return -ENOMEM;
    }
    c->t = t;
    c->fd = fd;
    c->points = parse_names(words[0], point_names, "all");
    c->verdicts = parse_names(words[1], verdict_names, "any");
    char *end;
    errno = 0;
    c->limit = strtoull(words[2], &end, 10);
    int rc = 0;
    if (!c->points) {
        snprintf(err, errsz, "unknown point '%s' (device-in, device-out, net-in, net-out, all)",
                 words[0]);
        rc = -EINVAL;
    } else if (!c->verdicts) {
        snprintf(err, errsz, "unknown verdict '%s' (pass, drop, reply, route, any)", words[1]);
        rc = -EINVAL;
    } else if (errno || *end || words[2][0] == '-') {
        snprintf(err, errsz, "count '%s' is not a number", words[2]);
        rc = -EINVAL;
    } else if (n > 3) {
        size_t at = 0;
        for (int i = 3; i < n && at < sizeof c->filter; i++)
            at += (size_t)snprintf(c->filter + at, sizeof c->filter - at, "%s%s", i > 3 ? " " : "",
                                   words[i]);
        rc = at >= sizeof c->filter ? -E2BIG : compile(c, err, errsz);
        if (rc == -E2BIG)
            snprintf(err, errsz, "filter longer than %d bytes", FILTER_MAX - 1);
    }
    if (rc < 0) {
        free(c->buf);
        free(c);
        return rc;
    }
    static const char hello[] = "stream pcapng\n";
    memcpy(c->buf, hello, sizeof hello - 1);
    c->len = sizeof hello - 1;
    c->len += mt_pcapng_shb(c->buf + c->len, 256, "moontun " MOONTUN_VERSION);
    c->len += mt_pcapng_idb(c->buf + c->len, 256,
                            t->link == MT_LINK_ETH ? MT_PCAPNG_LINK_ETHERNET : MT_PCAPNG_LINK_RAW,
                            MT_MAX_PACKET, t->ifname);
    ev_io_init(&c->w, cap_cb, fd, EV_READ);
    c->next = t->captures;
    t->captures = c;
    watch(c);
    mt_info("capture started: %s %s%s%s", words[0], words[1], c->filtered ? ", filter " : "",
            c->filter);
    return 0;
}

/* Appends "key=value" to out, quoting a value that is empty or holds blanks, quotes,
 * backslashes or bytes that are not printable ASCII (a script may name a peer anything). */
static void kv(char *out, size_t outsz, size_t *at, const char *key, const char *val)
{
    bool plain = val[0] != '\0';
    for (const char *p = val; *p && plain; p++)
        plain = *p > 0x20 && *p < 0x7f && *p != '"' && *p != '\\';
    int n = snprintf(out + *at, outsz - *at, "%s%s=%s", *at ? " " : "", key, plain ? val : "\"");
    *at = n > 0 && (size_t)n < outsz - *at ? *at + (size_t)n : outsz - 1;
    if (plain)
        return;
    for (const unsigned char *p = (const unsigned char *)val; *p && *at + 6 < outsz; p++) {
        if (*p == '"' || *p == '\\')
            *at += (size_t)snprintf(out + *at, outsz - *at, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            *at += (size_t)snprintf(out + *at, outsz - *at, "\\x%02x", *p);
        else
            out[(*at)++] = (char)*p;
    }
    if (*at + 1 < outsz)
        out[(*at)++] = '"';
    out[*at] = '\0';
}

/* The packet's comment: point, peer, script and handler that decided, verdict, reason, error. */
static void comment(const struct mt_tunnel *t, unsigned point, const struct mt_fate *f, char *out,
                    size_t outsz)
{
    size_t at = 0;
    out[0] = '\0';
    kv(out, outsz, &at, "point", point_name(point));
    kv(out, outsz, &at, "peer", f->peer ? f->peer->name : "-");
    const char *hook = NULL, *who = f->scripted ? mt_scripts_decider(t->scripts, &hook) : NULL;
    if (who) {
        char s[96];
        int line = mt_scripts_decider_line(t->scripts);
        if (line > 0)
            snprintf(s, sizeof s, "%s:%d", who, line);
        else
            snprintf(s, sizeof s, "%s", who);
        kv(out, outsz, &at, "script", s);
        kv(out, outsz, &at, "handler", hook);
    }
    kv(out, outsz, &at, "verdict", verdict_names[f->verdict & 3]);
    if (f->reason)
        kv(out, outsz, &at, "reason", f->reason);
    if (f->scripted && mt_scripts_failed(t->scripts))
        kv(out, outsz, &at, "error", mt_scripts_error(t->scripts));
    if (f->err)
        kv(out, outsz, &at, "error", strerror(f->err));
}

void mt__capture(struct mt_tunnel *t, enum mt_cap_point point, const uint8_t *data, size_t len,
                 const struct mt_fate *f)
{
    char text[512];
    bool described = false;
    uint64_t ts = 0;
    size_t caplen = len < MT_MAX_PACKET ? len : MT_MAX_PACKET;
    struct mt_capture *next;
    for (struct mt_capture *c = t->captures; c; c = next) {
        next = c->next;
        if (c->ending || !(c->points & point) || !(c->verdicts & (1u << (f->verdict & 3))))
            continue;
        if (c->filtered && bpf_filter(c->prog.bf_insns, data, (u_int)len, (u_int)caplen) == 0)
            continue;
        if (!described) { /* once per packet, whatever the number of captures */
            comment(t, point, f, text, sizeof text);
            ts = now_ns();
            described = true;
        }
        size_t need = mt_pcapng_epb_len(caplen, strlen(text));
        if (!room(c, need, END_ROOM)) {
            c->lost++; /* the reader is slow: its packet goes, the tunnel's does not */
            continue;
        }
        c->len += mt_pcapng_epb(c->buf + c->len, need, ts, data, caplen, len, text);
        c->captured++;
        if (c->limit && c->captured >= c->limit)
            cap_end(c);
        else
            watch(c);
    }
}

/* The names of the bits set in mask, separated by sep, each between quote marks. */
static void names_of(struct mt_buf *b, unsigned mask, const char *const names[4], const char *sep,
                     const char *quote)
{
    bool first = true;
    for (unsigned i = 0; i < 4; i++)
        if (mask & (1u << i)) {
            mt_buf_printf(b, "%s%s%s%s", first ? "" : sep, quote, names[i], quote);
            first = false;
        }
}

void mt__capture_show(const struct mt_tunnel *t, struct mt_buf *b)
{
    for (const struct mt_capture *c = t->captures; c; c = c->next) {
        mt_buf_printf(b, "\ncapture: ");
        names_of(b, c->points, point_names, " ", "");
        mt_buf_printf(b, "\n  verdicts: ");
        names_of(b, c->verdicts, verdict_names, " ", "");
        mt_buf_printf(b, "\n");
        if (c->filtered)
            mt_buf_printf(b, "  filter: %s\n", c->filter);
        mt_buf_printf(b, "  captured: %llu, lost (slow reader): %llu, queued: %zu bytes%s\n",
                      (unsigned long long)c->captured, (unsigned long long)c->lost,
                      c->len - c->head, c->ending ? ", ending" : "");
    }
}

void mt__capture_json(const struct mt_tunnel *t, struct mt_buf *b)
{
    for (const struct mt_capture *c = t->captures; c; c = c->next) {
        mt_buf_printf(b, "%s\n  {\"points\": [", c == t->captures ? "" : ",");
        names_of(b, c->points, point_names, ", ", "\"");
        mt_buf_printf(b, "], \"verdicts\": [");
        names_of(b, c->verdicts, verdict_names, ", ", "\"");
        mt_buf_printf(b, "], \"filter\": \"");
        mt_buf_json(b, c->filter);
        mt_buf_printf(b, "\", \"captured\": %llu, \"lost\": %llu, \"ending\": %s}",
                      (unsigned long long)c->captured, (unsigned long long)c->lost,
                      c->ending ? "true" : "false");
    }
}

void mt__capture_close_all(struct mt_tunnel *t)
{
    while (t->captures) {
        struct mt_capture *c = t->captures;
        cap_end(c);
        if (c->head < c->len) /* best effort: the loop is ending */
            (void)!send(c->fd, c->buf + c->head, c->len - c->head, MSG_NOSIGNAL | MSG_DONTWAIT);
        cap_free(c);
    }
}
