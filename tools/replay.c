/* moontun replay: runs the script chain over a capture (pcap or pcapng, read with libpcap) as
 * an ordinary user, with no device and no socket. The clock is the packets' timestamps, so
 * timers fire in capture time; one line per packet says what the chain decided, and the
 * packets that passed, and those the scripts answered or sent, can be written out as pcap. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <pcap/pcap.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "moontun/config.h"
#include "moontun/log.h"
#include "moontun/packet.h"
#include "moontun/proto.h"
#include "moontun/script.h"

#include "verbs.h"
#include "vhost.h"

#define SUMMARY_LEN 256

struct replay {
    struct mt_vhost vh;
    struct mt_config cfg;
    struct mt_stats stats;
    struct mt_host host;
    struct mt_scripts *s;
    enum mt_link link;
    enum mt_dir dir;
    int dlt; /* the capture's link type */
    bool quiet;
    double t0; /* the first packet's time: lines show time since it */
    pcap_t *dead;
    pcap_dumper_t *out, *replies;
    uint8_t *buf;
    uint8_t orig[MT_MAX_PACKET];

    unsigned long long packets, skipped, truncated, rewritten, errors, injected, sent;
    unsigned long long verdicts[4]; /* by enum mt_verdict */
    unsigned long long hook_ns;
    size_t pending; /* timers still armed after the last packet (and --drain) */
};

static void usage(FILE *out)
{
    fputs("Usage: moontun replay -S \"SCRIPT [key=value ...]\" [-S ...] -r IN.pcap [options]\n"
          "Runs the script chain over a capture (pcap or pcapng) without a device or root.\n"
          "The clock is the packets' timestamps: mt.now(), mt.every and mt.after run in\n"
          "capture time. One line per packet: time since the first, direction, verdict, the\n"
          "script and hook that decided, 'rewritten' when the bytes changed, a summary.\n"
          "\n"
          "  -S, --script \"FILE [key=value ...]\"  as for the tunnel; repeat to chain\n"
          "  -r, --read FILE       the capture (raw IP, Ethernet, Linux cooked or BSD loopback;\n"
          "                        tun mode strips the link header)\n"
          "      --dir egress|ingress\n"
          "                        which hook sees the packets (default egress: read from the\n"
          "                        device); ingress packets come from the first peer\n"
          "  -a, --tap             tap mode: Ethernet frames (needs an Ethernet capture)\n"
          "  -w, --write FILE      write the packets that passed (as rewritten) as pcap\n"
          "      --replies FILE    write what scripts answered (REPLY), sent and injected\n"
          "      --peer ADDR[=NAME]\n"
          "                        a peer mt.peers() lists (repeatable; default\n"
          "                        192.0.2.1:55555)\n"
          "      --drain SEC       after the last packet, run the clock SEC further (timers)\n"
          "      --on-error pass|drop, --lua-budget N, --lua-mem MB   as for the tunnel\n"
          "  -q, --quiet           only the closing counts (and script errors)\n"
          "  -d, --debug           also the scripts' mt.debug lines\n"
          "  -h, --help            this text\n",
          out);
}

/* --- output -------------------------------------------------------------------------------- */

static void dump(struct replay *r, pcap_dumper_t *d, const uint8_t *data, size_t len)
{
    if (d == NULL)
        return;
    struct pcap_pkthdr h;
    memset(&h, 0, sizeof h);
    long long us = llround(r->vh.now * 1e6); /* 0.1 s is 99999.99... us in binary */
    h.ts.tv_sec = (time_t)(us / 1000000);
    h.ts.tv_usec = (suseconds_t)(us % 1000000);
    h.caplen = h.len = (bpf_u_int32)len;
    pcap_dump((u_char *)d, &h, data);
}

static void line(struct replay *r, const char *what, const char *verdict, const char *who,
                 const char *flags, const uint8_t *data, size_t len)
{
    if (r->quiet)
        return;
    char sum[SUMMARY_LEN];
    mt_proto_summary(data, len, r->link, sum, sizeof sum);
    printf("%.6f %-7s %-5s %-22s %s%s\n", r->vh.now - r->t0, what, verdict, who, flags, sum);
}

/* Scripts' log lines go to stdout between the packet lines, stamped with capture time. */
static struct replay *log_target;

static void log_sink(enum mt_log_level level, const char *msg)
{
    static const char *const names[] = {"error: ", "warning: ", "", "debug: "};
    printf("%.6f   | %s%s\n", log_target->vh.now - log_target->t0, names[level], msg);
}

/* --- the host ------------------------------------------------------------------------------ */

static int host_inject(void *ctx, const uint8_t *data, size_t len)
{
    struct replay *r = ctx;
    r->injected++;
    line(r, "inject", "-", "-", "", data, len);
    dump(r, r->replies, data, len);
    return 0;
}

static int host_send(void *ctx, struct mt_peer *peer, const uint8_t *data, size_t len)
{
    struct replay *r = ctx;
    char to[80];
    r->sent++;
    snprintf(to, sizeof to, "to %s", peer->name);
    line(r, "send", "-", to, "", data, len);
    dump(r, r->replies, data, len);
    return 0;
}

static double host_now(void *ctx)
{
    return ((struct replay *)ctx)->vh.now;
}

static void host_timer_start(void *ctx, struct ev_timer *w)
{
    mt_vhost_timer_start(&((struct replay *)ctx)->vh, w);
}

static void host_timer_stop(void *ctx, struct ev_timer *w)
{
    mt_vhost_timer_stop(&((struct replay *)ctx)->vh, w);
}

static size_t host_peers(void *ctx, struct mt_peer **out, size_t max)
{
    return mt_vhost_live_peers(&((struct replay *)ctx)->vh, out, max);
}

/* --- reading ------------------------------------------------------------------------------- */

/* Finds the packet the chain sees in a captured frame: the IP packet in tun mode, the
 * Ethernet frame in tap mode. Returns false for a frame that holds neither (ARP in tun mode,
 * a truncated link header). caplen is what libpcap read, never more than its snapshot. */
static bool unwrap(const struct replay *r, const uint8_t *p, size_t caplen, const uint8_t **out,
                   size_t *outlen)
{
    size_t skip = 0;
    uint16_t type = 0;

    if (r->link == MT_LINK_ETH) { /* checked at open: an Ethernet capture */
        *out = p;
        *outlen = caplen;
        return caplen >= MT_ETH_HLEN;
    }
    switch (r->dlt) {
    case DLT_RAW:
    case DLT_IPV4:
    case DLT_IPV6:
        *out = p;
        *outlen = caplen;
        return caplen > 0;
    case DLT_EN10MB:
        skip = MT_ETH_HLEN;
        if (caplen < skip)
            return false;
        type = (uint16_t)(p[12] << 8 | p[13]);
        while (type == MT_ETHERTYPE_VLAN && caplen - skip >= 4) { /* 802.1Q tags */
            type = (uint16_t)(p[skip + 2] << 8 | p[skip + 3]);
            skip += 4;
        }
        break;
    case DLT_LINUX_SLL: /* 16-byte cooked header, protocol last */
        skip = 16;
        if (caplen < skip)
            return false;
        type = (uint16_t)(p[14] << 8 | p[15]);
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2: /* 20-byte cooked header, protocol first */
        skip = 20;
        if (caplen < skip)
            return false;
        type = (uint16_t)(p[0] << 8 | p[1]);
        break;
#endif
    case DLT_NULL:
    case DLT_LOOP: /* a 4-byte address family, any byte order: the IP version tells */
        skip = 4;
        if (caplen <= skip)
            return false;
        type = (p[4] >> 4) == 6 ? MT_ETHERTYPE_IP6 : MT_ETHERTYPE_IP4;
        break;
    default:
        return false;
    }
    if (type != MT_ETHERTYPE_IP4 && type != MT_ETHERTYPE_IP6)
        return false;
    *out = p + skip;
    *outlen = caplen - skip;
    return *outlen > 0;
}

static bool link_ok(int dlt, bool tap)
{
    if (tap)
        return dlt == DLT_EN10MB;
    return dlt == DLT_RAW || dlt == DLT_IPV4 || dlt == DLT_IPV6 || dlt == DLT_EN10MB ||
           dlt == DLT_LINUX_SLL || dlt == DLT_NULL || dlt == DLT_LOOP
#ifdef DLT_LINUX_SLL2
           || dlt == DLT_LINUX_SLL2
#endif
        ;
}

/* --- one packet ---------------------------------------------------------------------------- */

static const char *verdict_name(enum mt_verdict v)
{
    static const char *const names[] = {"pass", "drop", "reply", "route"};
    return (unsigned)v < 4 ? names[v] : "?";
}

static void run_packet(struct replay *r, const uint8_t *data, size_t len)
{
    struct mt_packet pkt;
    struct mt_peer *route = NULL, *peer = &r->vh.peers[0];
    unsigned hooks = mt_scripts_hooks(r->s);
    const char *who = NULL, *hook = NULL;
    enum mt_verdict v = MT_VERDICT_PASS;
    uint64_t errors = r->stats.script_errors;
    struct timespec a, b;

    mt_packet_init(&pkt, r->buf, MT_PKT_BUFSIZE, MT_HEADROOM);
    mt_packet_put(&pkt, len); /* len <= MT_MAX_PACKET: checked by the caller */
    memcpy(pkt.data, data, len);
    memcpy(r->orig, data, len);
    pkt.link = r->link;
    pkt.dir = r->dir;
    pkt.peer = r->dir == MT_DIR_INGRESS ? peer : NULL;

    /* The hooks the tunnel would run, in its order: decode before ingress; encode after an
     * egress packet passed, on its way to the peer. */
    clock_gettime(CLOCK_MONOTONIC, &a);
    if (r->dir == MT_DIR_EGRESS) {
        v = mt_scripts_egress(r->s, &pkt, &route);
        who = mt_scripts_decider(r->s, &hook);
        if ((v == MT_VERDICT_PASS || v == MT_VERDICT_ROUTE) && (hooks & MT_HOOK_ENCODE) &&
            mt_scripts_encode(r->s, &pkt, route != NULL ? route : peer) == MT_VERDICT_DROP) {
            v = MT_VERDICT_DROP;
            who = mt_scripts_decider(r->s, &hook);
        }
    } else {
        if ((hooks & MT_HOOK_DECODE) && mt_scripts_decode(r->s, &pkt, peer) == MT_VERDICT_DROP) {
            v = MT_VERDICT_DROP;
            who = mt_scripts_decider(r->s, &hook);
        } else {
            v = mt_scripts_ingress(r->s, &pkt, &route);
            who = mt_scripts_decider(r->s, &hook);
            /* A REPLY or a route goes to a peer: through encode, as in the tunnel. */
            if ((v == MT_VERDICT_REPLY || v == MT_VERDICT_ROUTE) && (hooks & MT_HOOK_ENCODE) &&
                mt_scripts_encode(r->s, &pkt, route != NULL ? route : peer) == MT_VERDICT_DROP) {
                v = MT_VERDICT_DROP;
                who = mt_scripts_decider(r->s, &hook);
            }
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    r->hook_ns +=
        (unsigned long long)((b.tv_sec - a.tv_sec) * 1000000000LL + b.tv_nsec - a.tv_nsec);

    bool failed = r->stats.script_errors != errors;
    bool changed = pkt.len != len || memcmp(pkt.data, r->orig, len) != 0;
    r->verdicts[v]++;
    r->errors += failed;
    r->rewritten += changed;

    char whobuf[96], verdict[80], flags[32];
    if (who != NULL)
        snprintf(whobuf, sizeof whobuf, "%s:%s", who, hook);
    else
        snprintf(whobuf, sizeof whobuf, "-");
    snprintf(verdict, sizeof verdict, "%s", verdict_name(v));
    if (v == MT_VERDICT_ROUTE)
        snprintf(verdict, sizeof verdict, "route:%s", route->name);
    snprintf(flags, sizeof flags, "%s%s", failed ? "error " : "", changed ? "rewritten " : "");
    line(r, r->dir == MT_DIR_EGRESS ? "egress" : "ingress", verdict, whobuf, flags, pkt.data,
         pkt.len);

    if (v == MT_VERDICT_PASS || v == MT_VERDICT_ROUTE)
        dump(r, r->out, pkt.data, pkt.len);
    else if (v == MT_VERDICT_REPLY)
        dump(r, r->replies, pkt.data, pkt.len);
}

/* --- main ---------------------------------------------------------------------------------- */

static pcap_dumper_t *open_out(struct replay *r, const char *path)
{
    if (r->dead == NULL)
        r->dead = pcap_open_dead(r->link == MT_LINK_ETH ? DLT_EN10MB : DLT_RAW, MT_MAX_PACKET);
    pcap_dumper_t *d = r->dead != NULL ? pcap_dump_open(r->dead, path) : NULL;
    if (d == NULL)
        fprintf(stderr, "moontun replay: cannot write %s: %s\n", path,
                r->dead != NULL ? pcap_geterr(r->dead) : "out of memory");
    return d;
}

static void print_counts(const struct replay *r)
{
    double ns = r->packets > 0 ? (double)r->hook_ns / (double)r->packets : 0.;
    printf("replay: %llu packets (%s), %llu skipped (not IP), %llu truncated: pass %llu, drop "
           "%llu, reply %llu, route %llu; rewritten %llu; script errors %llu; injected %llu, "
           "sent %llu; hook %.0f ns/packet\n",
           r->packets, r->dir == MT_DIR_EGRESS ? "egress" : "ingress", r->skipped, r->truncated,
           r->verdicts[MT_VERDICT_PASS], r->verdicts[MT_VERDICT_DROP],
           r->verdicts[MT_VERDICT_REPLY], r->verdicts[MT_VERDICT_ROUTE], r->rewritten,
           (unsigned long long)r->stats.script_errors, r->injected, r->sent, ns);
    if (r->pending > 0)
        printf("replay: %zu timers still armed at the end (--drain SEC runs the clock on)\n",
               r->pending);
}

enum { OPT_DIR = 1000, OPT_REPLIES, OPT_PEER, OPT_DRAIN, OPT_ON_ERROR, OPT_BUDGET, OPT_MEM };

static const struct option options[] = {
    {"script", required_argument, NULL, 'S'},
    {"read", required_argument, NULL, 'r'},
    {"write", required_argument, NULL, 'w'},
    {"tap", no_argument, NULL, 'a'},
    {"dir", required_argument, NULL, OPT_DIR},
    {"replies", required_argument, NULL, OPT_REPLIES},
    {"peer", required_argument, NULL, OPT_PEER},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"on-error", required_argument, NULL, OPT_ON_ERROR},
    {"lua-budget", required_argument, NULL, OPT_BUDGET},
    {"lua-mem", required_argument, NULL, OPT_MEM},
    {"quiet", no_argument, NULL, 'q'},
    {"debug", no_argument, NULL, 'd'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

int mt_replay_main(int argc, char **argv)
{
    static struct replay R;
    struct replay *r = &R;
    const char *specs[MT_MAX_SCRIPTS], *extra[8];
    const char *in_path = NULL, *out_path = NULL, *replies_path = NULL;
    int nspecs = 0, nextra = 0, status = 1;
    double drain = 0;
    bool tap = false, debug = false;
    char err[512];

    memset(r, 0, sizeof *r);
    mt_vhost_init(&r->vh, 0);
    r->dir = MT_DIR_EGRESS;
    optind = 0;
    opterr = 0;
    for (;;) {
        int opt = getopt_long(argc, argv, ":S:r:w:aqdh", options, NULL);
        if (opt == -1)
            break;
        switch (opt) {
        case 'S':
            if (nspecs == MT_MAX_SCRIPTS) {
                fprintf(stderr, "moontun replay: -S: at most %d scripts\n", MT_MAX_SCRIPTS);
                return 2;
            }
            specs[nspecs++] = optarg;
            break;
        case 'r':
            in_path = optarg;
            break;
        case 'w':
            out_path = optarg;
            break;
        case 'a':
            tap = true;
            break;
        case OPT_DIR:
            if (strcmp(optarg, "egress") != 0 && strcmp(optarg, "ingress") != 0) {
                fprintf(stderr, "moontun replay: --dir: '%s' is neither egress nor ingress\n",
                        optarg);
                return 2;
            }
            r->dir = optarg[0] == 'e' ? MT_DIR_EGRESS : MT_DIR_INGRESS;
            break;
        case OPT_REPLIES:
            replies_path = optarg;
            break;
        case OPT_PEER: {
            char addr[MT_PEER_ADDRSTRLEN];
            const char *eq = strchr(optarg, '=');
            snprintf(addr, sizeof addr, "%.*s",
                     eq != NULL ? (int)(eq - optarg) : (int)strlen(optarg), optarg);
            if (addr[0] == '\0' ||
                mt_vhost_peer(&r->vh, addr, eq != NULL ? eq + 1 : NULL) == NULL) {
                fprintf(stderr, "moontun replay: --peer: '%s' is empty or one too many\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_DRAIN: {
            char *end;
            drain = strtod(optarg, &end);
            if (*end != '\0' || !(drain >= 0 && drain <= 86400 * 365)) {
                fprintf(stderr, "moontun replay: --drain: '%s' is not seconds\n", optarg);
                return 2;
            }
            break;
        }
        case OPT_ON_ERROR:
        case OPT_BUDGET:
        case OPT_MEM:
            /* Handed to the tunnel's parser, which checks them as it always does. */
            extra[nextra++] = opt == OPT_ON_ERROR ? "--on-error"
                              : opt == OPT_BUDGET ? "--lua-budget"
                                                  : "--lua-mem";
            extra[nextra++] = optarg;
            if (nextra > 6) {
                fprintf(stderr, "moontun replay: too many options\n");
                return 2;
            }
            break;
        case 'q':
            r->quiet = true;
            break;
        case 'd':
            debug = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            fprintf(stderr, "moontun replay: option '%s' needs a value (see --help)\n",
                    argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "moontun replay: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "moontun replay: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (in_path == NULL || nspecs == 0) {
        fprintf(stderr, "moontun replay: needs -S SCRIPT and -r CAPTURE (see --help)\n");
        return 2;
    }
    if (tap)
        extra[nextra++] = "-a";
    if (mt_vhost_config(&r->cfg, specs, nspecs, extra, nextra, err, sizeof err) < 0) {
        fprintf(stderr, "moontun replay: %s\n", err);
        mt_config_free(&r->cfg);
        return 2;
    }
    r->link = tap ? MT_LINK_ETH : MT_LINK_IP;
    if (r->vh.npeers == 0)
        mt_vhost_peer(&r->vh, "192.0.2.1:55555", NULL);
    mt_log_level = debug ? MT_LOG_DEBUG : r->quiet ? MT_LOG_ERROR : MT_LOG_INFO;

    char perr[PCAP_ERRBUF_SIZE] = "";
    pcap_t *in = pcap_open_offline_with_tstamp_precision(in_path, PCAP_TSTAMP_PRECISION_NANO, perr);
    if (in == NULL) {
        fprintf(stderr, "moontun replay: %s\n", perr);
        goto out;
    }
    r->dlt = pcap_datalink(in);
    if (!link_ok(r->dlt, tap)) {
        fprintf(stderr, "moontun replay: %s: link type %s is not %s\n", in_path,
                pcap_datalink_val_to_name(r->dlt) ? pcap_datalink_val_to_name(r->dlt) : "?",
                tap ? "Ethernet (--tap)" : "raw IP, Ethernet, Linux cooked or loopback");
        goto out;
    }
    if ((out_path != NULL && (r->out = open_out(r, out_path)) == NULL) ||
        (replies_path != NULL && (r->replies = open_out(r, replies_path)) == NULL))
        goto out;
    r->buf = malloc(MT_PKT_BUFSIZE);
    if (r->buf == NULL) {
        fprintf(stderr, "moontun replay: out of memory\n");
        goto out;
    }

    /* The first packet sets the clock before the scripts load: their start handlers arm
     * timers in capture time too. */
    struct pcap_pkthdr *h;
    const u_char *data;
    int rc = pcap_next_ex(in, &h, &data);
    if (rc == 1)
        r->vh.now = r->t0 = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e9;

    r->host.ctx = r;
    r->host.cfg = &r->cfg;
    r->host.stats = &r->stats;
    r->host.inject = host_inject;
    r->host.send = host_send;
    r->host.peers = host_peers;
    r->host.now = host_now;
    r->host.timer_start = host_timer_start;
    r->host.timer_stop = host_timer_stop;
    log_target = r;
    if (!r->quiet)
        mt_log_sink = log_sink;
    if (mt_scripts_load(&r->s, &r->cfg, &r->host, err, sizeof err) < 0) {
        mt_log_sink = NULL;
        fprintf(stderr, "moontun replay: %s\n", err);
        goto out;
    }

    for (; rc == 1; rc = pcap_next_ex(in, &h, &data)) {
        double ts = (double)h->ts.tv_sec + (double)h->ts.tv_usec / 1e9;
        mt_vhost_advance(&r->vh, ts); /* never backwards: an out-of-order packet keeps now */
        const uint8_t *p;
        size_t n;
        if (!unwrap(r, data, h->caplen, &p, &n) || n > MT_MAX_PACKET) {
            r->skipped++;
            continue;
        }
        r->truncated += h->caplen < h->len;
        r->packets++;
        run_packet(r, p, n);
    }
    if (rc == PCAP_ERROR)
        fprintf(stderr, "moontun replay: %s: %s (stopped there)\n", in_path, pcap_geterr(in));
    if (drain > 0)
        mt_vhost_advance(&r->vh, r->vh.now + drain);
    r->pending = r->vh.ntimers;
    mt_scripts_free(r->s); /* stop handlers run (and may log) before the counts */
    r->s = NULL;
    mt_log_sink = NULL;
    print_counts(r);
    status = rc == PCAP_ERROR ? 1 : 0;
out:
    mt_log_sink = NULL;
    mt_scripts_free(r->s);
    if (r->out != NULL)
        pcap_dump_close(r->out);
    if (r->replies != NULL)
        pcap_dump_close(r->replies);
    if (r->dead != NULL)
        pcap_close(r->dead);
    if (in != NULL)
        pcap_close(in);
    free(r->buf);
    mt_vhost_free(&r->vh);
    mt_config_free(&r->cfg);
    return status;
}
