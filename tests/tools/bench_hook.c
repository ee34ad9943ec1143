/* bench_hook: what the Lua data path costs per packet, with no device and no sockets.
 *
 * It crafts a mix of ~100 packets in memory (IPv4 TCP to 22/80/443 and back, SYN/ACK/FIN/RST,
 * DNS and QUIC over UDP, ICMP echo, some IPv6 TCP/UDP/ICMPv6, all with correct checksums),
 * loads a script with mt_scripts_load, and for N packets (default 2,000,000) copies the next
 * packet of the mix into the working buffer and calls mt_scripts_egress on it (with --ingress,
 * also mt_scripts_ingress with a fake peer), as the core does for a packet from the device.
 * The cost of a copy-only loop is measured next to every run and subtracted, so a row says what
 * the hook adds. Each row is the median of 5 runs, with their min and max, in ns per packet.
 * Timers the scripts start never fire (the event loop is never run) and logging is at WARN.
 *
 * Run it from a Release build:
 *   cmake -S . -B build -DCMAKE_BUILD_TYPE=Release && cmake --build build --target bench_hook
 *   build/bench_hook                    built-in cases (and examples/firewall.lua, nat.lua)
 *   build/bench_hook -n 500000 --ingress "examples/nat.lua inside=10.0.0.0/24 public=192.0.2.1"
 * Each SCRIPT argument is "FILE key=value ..." as moontun's -S, and is benchmarked on its own.
 * The Lua memory in use is not reported: mt.stats() is not reachable from C. */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/utsname.h>

#include <ev.h>

#include "moontun/config.h"
#include "moontun/log.h"
#include "moontun/packet.h"
#include "moontun/peer.h"
#include "moontun/proto.h"
#include "moontun/script.h"
#include "moontun/stats.h"
#include "util.h"

#define RUNS     5
#define MIX_MAX  128
#define MAX_CASE 24

/* --- the packet mix ------------------------------------------------------------------------- */

struct rec {
    size_t len;
    uint8_t data[1500];
};

static struct rec mix[MIX_MAX];
static int nmix;
static uint16_t ip_id = 0x1c46;

static void put16(uint8_t *p, unsigned v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xFFFF);
}

/* One's-complement sum, written independently of the core so mt_proto_checksums_ok below is
 * a cross-check and not the core agreeing with itself. */
static uint32_t sum16(uint32_t sum, const uint8_t *p, size_t n)
{
    for (; n > 1; p += 2, n -= 2)
        sum += (uint32_t)(p[0] << 8 | p[1]);
    if (n)
        sum += (uint32_t)(p[0] << 8);
    return sum;
}

static uint16_t fold(uint32_t sum)
{
    while (sum >> 16)
        sum = (sum & 0xFFFF) + (sum >> 16);
    return (uint16_t)~sum;
}

/* Appends one packet: IPv4 or IPv6 (by the form of src), then a TCP, UDP or ICMP/ICMPv6 header
 * (for ICMP, sport/dport/flags are id/seq/type), then the payload (NULL: a byte pattern). */
static void add(int proto, const char *src, const char *dst, unsigned sport, unsigned dport,
                unsigned flags, const uint8_t *payload, size_t plen)
{
    struct rec *r = &mix[nmix++];
    bool v6 = strchr(src, ':') != NULL;
    size_t l3 = v6 ? 40 : 20;
    size_t opt = proto == MT_IPPROTO_TCP && (flags & 0x02) ? 4 : 0; /* SYN carries an MSS */
    size_t l4h = proto == MT_IPPROTO_TCP ? 20 + opt : 8;
    size_t l4len = l4h + plen;
    uint8_t *p = r->data, *l4 = p + l3;

    if (nmix > MIX_MAX || l3 + l4len > sizeof r->data) {
        fprintf(stderr, "bench_hook: packet mix overflow\n");
        exit(1);
    }
    memset(p, 0, l3 + l4h);
    if (proto == MT_IPPROTO_ICMP && v6)
        proto = MT_IPPROTO_ICMP6;
    if (v6) {
        p[0] = 0x60;
        put16(p + 4, (unsigned)l4len);
        p[6] = (uint8_t)proto;
        p[7] = 64;
        inet_pton(AF_INET6, src, p + 8);
        inet_pton(AF_INET6, dst, p + 24);
    } else {
        p[0] = 0x45;
        put16(p + 2, (unsigned)(l3 + l4len));
        put16(p + 4, ip_id++);
        put16(p + 6, 0x4000); /* DF */
        p[8] = 64;
        p[9] = (uint8_t)proto;
        inet_pton(AF_INET, src, p + 12);
        inet_pton(AF_INET, dst, p + 16);
        put16(p + 10, fold(sum16(0, p, 20)));
    }

    if (proto == MT_IPPROTO_TCP) {
        put16(l4, sport);
        put16(l4 + 2, dport);
        put32(l4 + 4, 0x3a1f0000u + sport * 977u + (unsigned)plen); /* seq */
        put32(l4 + 8, flags & 0x10 ? 0x7c020000u + dport * 131u : 0);
        l4[12] = (uint8_t)((l4h / 4) << 4);
        l4[13] = (uint8_t)flags;
        put16(l4 + 14, 64240);
        if (opt)
            memcpy(l4 + 20, "\x02\x04\x05\xb4", 4); /* MSS 1460 */
    } else if (proto == MT_IPPROTO_UDP) {
        put16(l4, sport);
        put16(l4 + 2, dport);
        put16(l4 + 4, (unsigned)l4len);
    } else {
        l4[0] = (uint8_t)flags; /* type; code 0 */
        put16(l4 + 4, sport);
        put16(l4 + 6, dport);
    }
    for (size_t i = 0; i < plen; i++)
        l4[l4h + i] = payload ? payload[i] : (uint8_t)(0x20 + (i * 7 + sport) % 95);

    /* Transport checksum: over the pseudo-header, except for ICMPv4. */
    uint32_t sum = 0;
    if (v6) {
        uint8_t tail[8] = {0, 0, (uint8_t)(l4len >> 8), (uint8_t)l4len, 0, 0, 0, (uint8_t)proto};
        sum = sum16(sum16(0, p + 8, 32), tail, 8);
    } else if (proto != MT_IPPROTO_ICMP) {
        uint8_t tail[4] = {0, (uint8_t)proto, (uint8_t)(l4len >> 8), (uint8_t)l4len};
        sum = sum16(sum16(0, p + 12, 8), tail, 4);
    }
    uint16_t c = fold(sum16(sum, l4, l4len));
    if (proto == MT_IPPROTO_UDP && c == 0)
        c = 0xFFFF;
    put16(l4 + (proto == MT_IPPROTO_TCP ? 16 : proto == MT_IPPROTO_UDP ? 6 : 2), c);
    r->len = l3 + l4len;
    if (!mt_proto_checksums_ok(r->data, r->len, MT_LINK_IP)) {
        fprintf(stderr, "bench_hook: crafted packet %d has a bad checksum\n", nmix - 1);
        exit(1);
    }
}

/* A DNS query for name (type A), or its answer with one A record. Returns the length. */
static size_t dns(uint8_t *b, unsigned id, const char *name, bool answer)
{
    size_t n = 12;
    memset(b, 0, 12);
    put16(b, id);
    put16(b + 2, answer ? 0x8180 : 0x0100);
    put16(b + 4, 1);
    put16(b + 6, answer ? 1 : 0);
    for (const char *s = name; *s;) {
        size_t l = strcspn(s, ".");
        b[n++] = (uint8_t)l;
        memcpy(b + n, s, l);
        n += l;
        s += l + (s[l] == '.');
    }
    b[n++] = 0;
    memcpy(b + n, "\x00\x01\x00\x01", 4); /* A, IN */
    n += 4;
    if (answer) {
        memcpy(b + n, "\xc0\x0c\x00\x01\x00\x01\x00\x00\x0e\x10\x00\x04\x5d\xb8\xd8\x22", 16);
        n += 16;
    }
    return n;
}

static void build_mix(void)
{
    static const char *const servers[] = {"93.184.216.34", "140.82.121.4",  "151.101.1.69",
                                          "192.0.2.10",    "198.51.100.20", "203.0.113.5"};
    static const unsigned svc[] = {443, 443, 80, 22, 443, 80};
    static const char *const names[] = {"example.com", "github.com",        "deb.debian.org",
                                        "lua.org",     "www.wikipedia.org", "ntp.ubuntu.com"};
    enum { FIN = 0x01, SYN = 0x02, RST = 0x04, PSH = 0x08, ACK = 0x10 };
    char cli[16];
    uint8_t q[512];

    for (unsigned i = 0; i < 36; i++) { /* data segments, both ways */
        snprintf(cli, sizeof cli, "10.0.0.%u", 2 + i % 8);
        unsigned eph = 32768 + (i * 7919) % 28000, s = i % 6;
        if (i % 2 == 0)
            add(MT_IPPROTO_TCP, cli, servers[s], eph, svc[s], PSH | ACK, NULL, 40 + (i * 37) % 560);
        else
            add(MT_IPPROTO_TCP, servers[s], cli, svc[s], eph, PSH | ACK, NULL,
                960 + (i * 53) % 400);
    }
    for (unsigned i = 0; i < 26; i++) { /* handshakes, pure ACKs, teardown */
        snprintf(cli, sizeof cli, "10.0.0.%u", 2 + (i * 3) % 8);
        unsigned eph = 40000 + i * 131, s = (i + 1) % 6;
        if (i < 8)
            add(MT_IPPROTO_TCP, cli, servers[s], eph, svc[s], SYN, NULL, 0);
        else if (i < 12)
            add(MT_IPPROTO_TCP, servers[s], cli, svc[s], eph, SYN | ACK, NULL, 0);
        else if (i < 20)
            add(MT_IPPROTO_TCP, cli, servers[s], eph, svc[s], ACK, NULL, 0);
        else if (i < 24)
            add(MT_IPPROTO_TCP, cli, servers[s], eph, svc[s], FIN | ACK, NULL, 0);
        else
            add(MT_IPPROTO_TCP, servers[s], cli, svc[s], eph, RST | ACK, NULL, 0);
    }
    for (unsigned i = 0; i < 12; i++) { /* DNS: 8 queries, 4 answers */
        snprintf(cli, sizeof cli, "10.0.0.%u", 2 + i % 8);
        const char *res = i % 3 ? "10.0.0.1" : "8.8.8.8";
        size_t n = dns(q, 0x4d00 + i, names[i % 6], i >= 8);
        if (i < 8)
            add(MT_IPPROTO_UDP, cli, res, 50000 + i * 17, 53, 0, q, n);
        else
            add(MT_IPPROTO_UDP, res, cli, 53, 50000 + i * 17, 0, q, n);
    }
    for (unsigned i = 0; i < 6; i++) { /* QUIC and NTP */
        snprintf(cli, sizeof cli, "10.0.0.%u", 3 + i);
        if (i < 4)
            add(MT_IPPROTO_UDP, cli, servers[i], 51000 + i, 443, 0, NULL, i % 2 ? 1200 : 64);
        else
            add(MT_IPPROTO_UDP, cli, "192.0.2.123", 123, 123, 0, NULL, 48);
    }
    for (unsigned i = 0; i < 6; i++) { /* ping: 4 requests, 2 replies */
        snprintf(cli, sizeof cli, "10.0.0.%u", 2 + i);
        if (i < 4)
            add(MT_IPPROTO_ICMP, cli, servers[i], 0x0b00 + i, i + 1, 8, NULL, 56);
        else
            add(MT_IPPROTO_ICMP, servers[i], cli, 0x0b00 + i, i + 1, 0, NULL, 56);
    }
    /* IPv6: TCP data and handshake, DNS, ICMPv6 echo */
    add(MT_IPPROTO_TCP, "fd00::2", "2001:db8::443", 41002, 443, PSH | ACK, NULL, 517);
    add(MT_IPPROTO_TCP, "2001:db8::443", "fd00::2", 443, 41002, PSH | ACK, NULL, 1220);
    add(MT_IPPROTO_TCP, "fd00::3", "2001:db8::80", 41003, 80, PSH | ACK, NULL, 180);
    add(MT_IPPROTO_TCP, "2001:db8::80", "fd00::3", 80, 41003, ACK, NULL, 0);
    add(MT_IPPROTO_TCP, "fd00::4", "2001:db8::22", 41004, 22, SYN, NULL, 0);
    add(MT_IPPROTO_TCP, "2001:db8::22", "fd00::4", 22, 41004, SYN | ACK, NULL, 0);
    add(MT_IPPROTO_UDP, "fd00::2", "fd00::1", 52002, 53, 0, q, dns(q, 0x6e01, "lua.org", false));
    add(MT_IPPROTO_UDP, "fd00::1", "fd00::2", 53, 52002, 0, q, dns(q, 0x6e01, "lua.org", true));
    add(MT_IPPROTO_ICMP, "fd00::2", "2001:db8::1", 0x0c01, 1, 128, NULL, 56);
    add(MT_IPPROTO_ICMP, "fd00::3", "2001:db8::1", 0x0c02, 1, 128, NULL, 56);
    add(MT_IPPROTO_ICMP, "2001:db8::1", "fd00::2", 0x0c01, 1, 129, NULL, 56);
}

/* --- the fake host -------------------------------------------------------------------------- */

static int fake_inject(void *ctx, const uint8_t *data, size_t len)
{
    return 0;
}

static int fake_send(void *ctx, struct mt_peer *peer, const uint8_t *data, size_t len)
{
    return 0;
}

static struct mt_peer PEER = {
    .addr = "192.0.2.7:55555", .name = "192.0.2.7:55555", .id = 1, .up = true};

static size_t fake_peers(void *ctx, struct mt_peer **out, size_t max)
{
    if (max == 0)
        return 0;
    out[0] = &PEER;
    return 1;
}

static struct mt_config CFG;
static struct mt_stats ST;
static struct mt_host HOST = {
    .cfg = &CFG, .stats = &ST, .inject = fake_inject, .send = fake_send, .peers = fake_peers};

/* --- timing --------------------------------------------------------------------------------- */

static uint8_t BUF[MT_PKT_BUFSIZE];
static volatile unsigned HOOKS; /* what the core keeps in t->hooks and tests per packet */
/* What the core keeps in t->captures (NULL: no moontun capture running) and tests once per
 * decision point: the "capture test" row pays that test on top of the hooks test. */
static void *volatile CAPTURES;
static bool capture_test;
static long drops;
static double copy_ns[MAX_CASE * 2 * RUNS]; /* every copy-only run, for the footnote */
static int ncopy;

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e9 + ts.tv_nsec;
}

/* Runs n packets through the hook of dir (or only copies them); returns the elapsed ns. */
static double run(struct mt_scripts *s, enum mt_dir dir, bool copy_only, long n)
{
    struct mt_packet pkt;
    unsigned want = dir == MT_DIR_EGRESS ? MT_HOOK_EGRESS : MT_HOOK_INGRESS;
    double t0 = now_ns();
    for (long i = 0, k = 0; i < n; i++, k = k + 1 == nmix ? 0 : k + 1) {
        mt_packet_init(&pkt, BUF, sizeof BUF, MT_HEADROOM);
        memcpy(pkt.data, mix[k].data, mix[k].len);
        pkt.len = mix[k].len;
        pkt.link = MT_LINK_IP;
        pkt.dir = dir;
        pkt.peer = dir == MT_DIR_INGRESS ? &PEER : NULL;
        __asm__ volatile("" ::: "memory"); /* the copy must happen, as for a real hook */
        if (copy_only)
            continue;
        struct mt_peer *route = NULL;
        enum mt_verdict v = MT_VERDICT_PASS;
        if (HOOKS & want)
            v = dir == MT_DIR_EGRESS ? mt_scripts_egress(s, &pkt, &route)
                                     : mt_scripts_ingress(s, &pkt, &route);
        drops += v == MT_VERDICT_DROP;
        if (capture_test && mt_unlikely(CAPTURES != NULL))
            drops++; /* never: no capture runs */
    }
    return now_ns() - t0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* --- cases ---------------------------------------------------------------------------------- */

struct bench_case {
    char name[96];
    char spec[512]; /* "FILE key=value ..."; empty: no script */
    long prefill;   /* distinct UDP flows sent through egress first (a full flow table) */
};

static struct bench_case cases[MAX_CASE];
static int ncases;
static char *tmp_paths[4];
static int ntmp;

static void add_case(const char *name, const char *spec)
{
    if (ncases == MAX_CASE) {
        fprintf(stderr, "bench_hook: at most %d scripts\n", MAX_CASE);
        exit(2);
    }
    snprintf(cases[ncases].name, sizeof cases[ncases].name, "%s", name);
    snprintf(cases[ncases].spec, sizeof cases[ncases].spec, "%s", spec);
    cases[ncases].prefill = 0;
    ncases++;
}

/* Sends n packets of distinct UDP flows (10.128.0.0/9 to 192.0.2.53:53, source port and address
 * counting up) through the egress hook: the table of a flow-tracking script then holds n flows
 * besides the mix's, as on a busy gateway. Checksums are not kept: no script here reads them. */
static void prefill(struct mt_scripts *s, long n)
{
    struct mt_packet pkt;
    struct mt_peer *route = NULL;
    for (long i = 0; i < n; i++) {
        mt_packet_init(&pkt, BUF, sizeof BUF, MT_HEADROOM);
        uint8_t *p = pkt.data;
        memset(p, 0, 28);
        p[0] = 0x45;
        put16(p + 2, 28);
        p[8] = 64;
        p[9] = MT_IPPROTO_UDP;
        put32(p + 12, 0x0a800000u | (uint32_t)(i / 50000));
        put32(p + 16, 0xc0000235u); /* 192.0.2.53 */
        put16(p + 20, 10000 + (unsigned)(i % 50000));
        put16(p + 22, 53);
        put16(p + 24, 8);
        pkt.len = 28;
        pkt.link = MT_LINK_IP;
        pkt.dir = MT_DIR_EGRESS;
        mt_scripts_egress(s, &pkt, &route);
    }
}

static const char *temp_script(const char *src)
{
    char tmpl[] = "/tmp/mtbenchXXXXXX.lua";
    int fd = mkstemps(tmpl, 4);
    if (fd < 0 || write(fd, src, strlen(src)) != (ssize_t)strlen(src) || close(fd) != 0) {
        perror("bench_hook: temp script");
        exit(1);
    }
    return tmp_paths[ntmp++] = strdup(tmpl);
}

/* The directory examples/ is in: $MOONTUN_SOURCE_DIR, else the source tree this file was
 * compiled from, else the current directory. */
static void example_path(const char *file, char *out, size_t outsz)
{
    const char *root = getenv("MOONTUN_SOURCE_DIR");
    const char *me = __FILE__, *tail = strstr(me, "tests/tools/bench_hook.c");
    if (root != NULL)
        snprintf(out, outsz, "%s/examples/%s", root, file);
    else if (tail != NULL && tail > me)
        snprintf(out, outsz, "%.*sexamples/%s", (int)(tail - me), me, file);
    else
        snprintf(out, outsz, "examples/%s", file);
}

/* Adds examples/<file> with the settings of the first `-S "... file k=v ..."` in its header
 * comment, or with fallback settings when the header shows none. */
static void add_example(const char *file, const char *fallback)
{
    char path[300], line[512], name[96], spec[512];
    const char *settings = fallback;
    example_path(file, path, sizeof path);
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        printf("note: %s: %s, skipped\n", path, strerror(errno));
        return;
    }
    while (fgets(line, sizeof line, f) != NULL && strncmp(line, "--", 2) == 0) {
        char *s = strstr(line, "-S \""), *end, *at;
        if (s == NULL || (end = strchr(s + 4, '"')) == NULL)
            continue;
        *end = '\0';
        if ((at = strstr(s + 4, file)) != NULL) {
            settings = at + strlen(file) + strspn(at + strlen(file), " \t");
            break;
        }
    }
    fclose(f);
    snprintf(name, sizeof name, "examples/%s %s", file, settings);
    snprintf(spec, sizeof spec, "%s %s", path, settings);
    add_case(name, spec);
}

/* Splits spec as moontun's -S does ("FILE key=value ..." on blanks) into CFG.scripts[0]. */
static int set_script(const char *spec, char *err, size_t errsz)
{
    struct mt_script_spec *sp = &CFG.scripts[0];
    char *save = NULL, *tok;
    free(sp->text);
    memset(sp, 0, sizeof *sp);
    CFG.nscripts = 0;
    if (spec[0] == '\0')
        return 0;
    sp->text = strdup(spec);
    sp->path = strtok_r(sp->text, " \t", &save);
    if (sp->path == NULL)
        return snprintf(err, errsz, "empty script argument"), -EINVAL;
    while ((tok = strtok_r(NULL, " \t", &save)) != NULL) {
        char *eq = strchr(tok, '=');
        if (eq == NULL || eq == tok || sp->nargs == MT_MAX_ARGS)
            return snprintf(err, errsz, "setting '%s' is not key=value", tok), -EINVAL;
        *eq = '\0';
        sp->keys[sp->nargs] = tok;
        sp->values[sp->nargs++] = eq + 1;
    }
    CFG.nscripts = 1;
    return 0;
}

static void bench(const struct bench_case *c, bool ingress, long n)
{
    char err[512] = "";
    struct mt_scripts *s = NULL;
    if (set_script(c->spec, err, sizeof err) < 0 ||
        mt_scripts_load(&s, &CFG, &HOST, err, sizeof err) < 0) {
        printf("%-44s | skipped: %s\n", c->name, err);
        return;
    }
    HOOKS = s != NULL ? mt_scripts_hooks(s) : 0;
    capture_test = strstr(c->name, "capture test") != NULL;
    if (c->prefill > 0)
        prefill(s, c->prefill);
    for (int d = 0; d < (ingress ? 2 : 1); d++) {
        enum mt_dir dir = d == 0 ? MT_DIR_EGRESS : MT_DIR_INGRESS;
        double ns[RUNS];
        uint64_t errors = ST.script_errors;
        run(s, dir, false, n / 10 + 1); /* warm up caches, the Lua heap and peer objects */
        drops = 0;
        for (int r = 0; r < RUNS; r++) {
            double base = run(s, dir, true, n);
            if (ncopy < (int)(sizeof copy_ns / sizeof copy_ns[0]))
                copy_ns[ncopy++] = base / (double)n;
            ns[r] = (run(s, dir, false, n) - base) / (double)n;
        }
        qsort(ns, RUNS, sizeof ns[0], cmp_double);
        printf("%-44s | %-7s | %9.1f | %7.1f | %7.1f | %5.1f%%", c->name,
               d == 0 ? "egress" : "ingress", ns[RUNS / 2], ns[0], ns[RUNS - 1],
               100.0 * (double)drops / ((double)n * RUNS));
        if (ST.script_errors != errors)
            printf("  (%llu handler errors)", (unsigned long long)(ST.script_errors - errors));
        printf("\n");
        fflush(stdout);
    }
    mt_scripts_free(s);
}

/* --- main ----------------------------------------------------------------------------------- */

static void print_machine(long n)
{
    struct utsname u;
    char line[256], cpu[200] = "unknown", date[64];
    FILE *f = fopen("/proc/cpuinfo", "r");
    while (f != NULL && fgets(line, sizeof line, f) != NULL) {
        char *colon = strchr(line, ':');
        if (colon != NULL && (strncmp(line, "model name", 10) == 0 ||
                              (strcmp(cpu, "unknown") == 0 && strncmp(line, "Hardware", 8) == 0))) {
            snprintf(cpu, sizeof cpu, "%.*s", (int)strcspn(colon + 2, "\n"), colon + 2);
            if (line[0] == 'm')
                break;
        }
    }
    if (f != NULL)
        fclose(f);
    time_t t = time(NULL);
    strftime(date, sizeof date, "%Y-%m-%d %H:%M:%S %Z", localtime(&t));
    printf("machine: %s, %s, %ld CPUs; %s\n", uname(&u) == 0 ? u.machine : "?", cpu,
           sysconf(_SC_NPROCESSORS_ONLN), date);
    size_t bytes = 0;
    for (int i = 0; i < nmix; i++)
        bytes += mix[i].len;
    printf("mix: %d packets, %.0f bytes on average; %ld packets per run, median of %d runs, "
           "copy-only loop subtracted\n",
           nmix, (double)bytes / nmix, n, RUNS);
#ifndef __OPTIMIZE__
    printf("warning: not an optimized build; use -DCMAKE_BUILD_TYPE=Release\n");
#endif
}

/* Writes n packets of the mix, in the order the benchmark runs them, as a raw-IP pcap with one
 * packet per microsecond: the same input for `moontun replay` (scripts/bench_replay.sh). */
static int write_mix(const char *path, long n)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL) {
        fprintf(stderr, "bench_hook: %s: %s\n", path, strerror(errno));
        return 1;
    }
    /* magic, version 2.4, zone, sigfigs, snaplen, LINKTYPE_RAW (101), host byte order */
    const uint32_t head[6] = {0xa1b2c3d4, 2 | 4u << 16, 0, 0, 65535, 101};
    fwrite(head, sizeof head, 1, f);
    for (long i = 0; i < n; i++) {
        const struct rec *r = &mix[i % nmix];
        uint32_t rec[4] = {(uint32_t)(1000 + i / 1000000), (uint32_t)(i % 1000000),
                           (uint32_t)r->len, (uint32_t)r->len};
        fwrite(rec, sizeof rec, 1, f);
        fwrite(r->data, r->len, 1, f);
    }
    if (fclose(f) != 0) {
        fprintf(stderr, "bench_hook: %s: %s\n", path, strerror(errno));
        return 1;
    }
    return 0;
}

static void usage(FILE *out)
{
    fprintf(out, "usage: bench_hook [-n N] [--ingress] [--lua-budget N] [--prefill N] [--mix-pcap "
                 "FILE] [\"SCRIPT [key=value ...]\"]...\n"
                 "  -n N       packets per run (default 2000000)\n"
                 "  --ingress  also time the ingress hook (with a fake peer)\n"
                 "  --lua-budget N  instructions per call (default 0 as moontun's: no count hook)\n"
                 "  --prefill N  send N packets of distinct UDP flows through each SCRIPT first\n"
                 "  --mix-pcap FILE  write N packets of the mix as a raw-IP pcap and exit\n"
                 "  SCRIPT     benchmark these scripts instead of the built-in cases\n");
}

/* A whole decimal number of at least min. */
static bool number_arg(const char *text, long min, long *out)
{
    char *end;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || end == text || v < min)
        return false;
    *out = v;
    return true;
}

int main(int argc, char **argv)
{
    long n = 2000000;
    bool ingress = false;
    bool given = false;
    long budget = MT_DEFAULT_LUA_BUDGET, fill = 0;
    const char *mix_pcap = NULL;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc) {
            if (!number_arg(argv[++i], 1, &n))
                return usage(stderr), 2;
        } else if (strcmp(argv[i], "--lua-budget") == 0 && i + 1 < argc) {
            if (!number_arg(argv[++i], 0, &budget))
                return usage(stderr), 2;
        } else if (strcmp(argv[i], "--prefill") == 0 && i + 1 < argc) {
            if (!number_arg(argv[++i], 0, &fill))
                return usage(stderr), 2;
        } else if (strcmp(argv[i], "--ingress") == 0) {
            ingress = true;
        } else if (strcmp(argv[i], "--mix-pcap") == 0 && i + 1 < argc) {
            mix_pcap = argv[++i];
        } else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            return 0;
        } else if (argv[i][0] == '-') {
            usage(stderr);
            return 2;
        } else {
            given = true;
            add_case(argv[i], argv[i]);
            cases[ncases - 1].prefill = fill; /* a --prefill given before it */
        }
    }

    mt_log_level = MT_LOG_WARN;
    CFG.port = 55555;
    CFG.transport = MT_TRANSPORT_UDP;
    CFG.mtu = 1400;
    CFG.on_error = MT_ON_ERROR_DROP;
    CFG.lua_budget =
        budget; /* moontun's default (0: no count hook); --lua-budget for the hook's cost */
    CFG.lua_mem_mb = 1024; /* room for the 1,000,000-flow table (about 200 MB) */
    CFG.max_peers = 256;
    CFG.log_level = MT_LOG_WARN;
    HOST.loop = ev_loop_new(EVFLAG_AUTO);
    build_mix();
    if (mix_pcap != NULL) {
        ev_loop_destroy(HOST.loop);
        return write_mix(mix_pcap, n);
    }
    print_machine(n);

    if (!given) {
        add_case("no script (core fast path: hooks==0)", "");
        add_case("no script + capture test (captures==NULL)", "");
        add_case("empty egress handler",
                 temp_script("local function h(pkt) end\nreturn { egress = h, ingress = h }\n"));
        add_case(
            "five-field firewall-style handler",
            temp_script("local mt = require 'moontun'\n"
                        "local ports = { [22] = true, [53] = true, [80] = true,\n"
                        "                [123] = true, [443] = true }\n"
                        "local hosts = { ['10.0.0.2'] = true, ['10.0.0.3'] = true,\n"
                        "  ['10.0.0.4'] = true, ['10.0.0.5'] = true, ['10.0.0.6'] = true,\n"
                        "  ['10.0.0.7'] = true, ['fd00::2'] = true, ['fd00::3'] = true }\n"
                        "local function fw(pkt)\n"
                        "  local ip = pkt.ip\n"
                        "  if ip == nil then return mt.DROP end\n"
                        "  local proto, src, dst = ip.proto, ip.src, ip.dst\n"
                        "  if proto == 1 or proto == 58 then return nil end\n"
                        "  local l4 = proto == 6 and pkt.tcp or proto == 17 and pkt.udp\n"
                        "  if not l4 then return mt.DROP end\n"
                        "  local sport, dport = l4.sport, l4.dport\n"
                        "  if ports[dport] and hosts[src] or ports[sport] and hosts[dst] then\n"
                        "    return nil\n"
                        "  end\n"
                        "  return mt.DROP\n"
                        "end\n"
                        "return { egress = fw, ingress = fw }\n"));
        add_example("firewall.lua", "");
        add_example("nat.lua", "inside=10.0.0.0/24 public=192.0.2.1");
        /* the same firewall with a full table: lookups must not slow down with its size */
        static const long sizes[] = {1000, 100000, 1000000};
        for (int i = 0; i < 3; i++) {
            char path[300], name[96], spec[512];
            example_path("firewall.lua", path, sizeof path);
            snprintf(name, sizeof name, "examples/firewall.lua, %ld flows tracked", sizes[i]);
            snprintf(spec, sizeof spec,
                     "%s allow=tcp/22,tcp/80,icmp reject=1 timeout_udp=1h max=%ld", path,
                     sizes[i] + 1000);
            add_case(name, spec);
            cases[ncases - 1].prefill = sizes[i];
        }
    }

    printf("\n%-44s | %-7s | %9s | %7s | %7s | %6s\n", "case", "hook", "ns/packet", "min", "max",
           "drops");
    for (int i = 0; i < ncases; i++)
        bench(&cases[i], ingress, n);

    if (ncopy > 0) {
        qsort(copy_ns, (size_t)ncopy, sizeof copy_ns[0], cmp_double);
        printf("(copy-only loop, subtracted above: %.1f ns/packet median, %.1f..%.1f)\n",
               copy_ns[ncopy / 2], copy_ns[0], copy_ns[ncopy - 1]);
    }
    set_script("", NULL, 0);
    for (int i = 0; i < ntmp; i++) {
        unlink(tmp_paths[i]);
        free(tmp_paths[i]);
    }
    ev_loop_destroy(HOST.loop);
    return 0;
}
