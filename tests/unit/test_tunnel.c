/* Unit tests for the fate of every packet (core/tunnel.c) without a device or a socket: a fake
 * transport (transport.h) records what the tunnel sends, and the device is one end of a
 * datagram socketpair. Routing and learning, client-to-client forwarding, back-pressure, script
 * verdicts, packets too big for a peer, offload headers from peers, a transport that refuses
 * sources, how often a packet is parsed, and what a live capture (moontun capture) says of each
 * fate. */
#include <arpa/inet.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "capture.h"
#include "moontun/log.h"
#include "moontun/proto.h"
#include "moontun/vnet.h"
#include "pcapng.h"
#include "testlib.h"
#include "tunnel.h"

/* --- the fake transport --------------------------------------------------------------------- */

struct fake_peer {
    struct mt_tpeer base;
    bool congested; /* what congested() answers */
    bool fail;      /* send() refuses */
};

#define MAX_SENT 64
struct sent {
    struct mt_tpeer *to;
    size_t len;
    bool vnet; /* an offload header was given */
    struct mt_vnet_hdr hdr;
    uint8_t bytes[2048];
};

static struct {
    int starts, stops, flushes;
    int nsent;
    struct sent sent[MAX_SENT];
    bool congest_after_send; /* each send makes its peer congested */
    const uint8_t *only_src; /* source_ok: the one IPv4 source allowed (NULL: any) */
} fake;

static int fake_start(struct mt_tunnel *t, char *err, size_t errsz)
{
    fake.starts++;
    t->tr = &fake;
    return 0;
}

static int fake_send(struct mt_tpeer *p, const struct mt_vnet_hdr *vnet, const uint8_t *data,
                     size_t len)
{
    struct fake_peer *f = (struct fake_peer *)p;
    if (f->fail)
        return -ENOBUFS;
    assert_true(fake.nsent < MAX_SENT);
    struct sent *s = &fake.sent[fake.nsent++];
    s->to = p;
    s->len = len;
    s->vnet = vnet != NULL;
    if (vnet)
        s->hdr = *vnet;
    memcpy(s->bytes, data, len < sizeof(s->bytes) ? len : sizeof(s->bytes));
    if (fake.congest_after_send)
        f->congested = true;
    return 0;
}

static void fake_flush(struct mt_tunnel *t)
{
    fake.flushes++;
}

static bool fake_congested(const struct mt_tpeer *p)
{
    return ((const struct fake_peer *)p)->congested;
}

static bool fake_source_ok(const struct mt_tpeer *p, const struct mt_packet *pkt)
{
    return !fake.only_src || (pkt->len >= 20 && memcmp(pkt->data + 12, fake.only_src, 4) == 0);
}

static void fake_stop(struct mt_tunnel *t)
{
    fake.stops++;
    t->tr = NULL;
}

static const struct mt_transport_ops fake_ops = {
    .name = "fake",
    .peer_size = sizeof(struct fake_peer),
    .start = fake_start,
    .send = fake_send,
    .flush = fake_flush,
    .congested = fake_congested,
    .source_ok = fake_source_ok,
    .stop = fake_stop,
};

/* --- a tunnel around it ----------------------------------------------------------------------- */

static struct ev_loop *loop;
static struct mt_config cfg;
static struct mt_tunnel tun;
static int dev[2]; /* dev[0]: the tunnel's device; dev[1]: the kernel's side, ours */
static char script_path[64];

/* A tunnel from the command line args (server, --mtu 1400 unless given) with the fake
 * transport and a socketpair for a device (vnet: with offload headers). */
static void open_tunnel(bool vnet, char **argv)
{
    char err[256] = "";
    int argc = 0;
    while (argv[argc])
        argc++;
    memset(&fake, 0, sizeof(fake));
    assert_int_equal(mt_config_parse(&cfg, argc, argv, err, sizeof(err)), MT_CONFIG_RUN);
    assert_int_equal(mt_tunnel_init(&tun, loop, &cfg, err, sizeof(err)), 0);
    tun.ops = &fake_ops; /* instead of the one --tcp/--udp picked */
    assert_int_equal(tun.ops->start(&tun, err, sizeof(err)), 0);
    assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK, 0, dev), 0);
    mt__tunnel_use_device(&tun, dev[0], vnet);
}
#define OPEN(vnet, ...) open_tunnel(vnet, (char *[]){"moontun", __VA_ARGS__, NULL})

static int teardown(void **state)
{
    mt_tunnel_close(&tun); /* closes dev[0] */
    close(dev[1]);
    mt_config_free(&cfg);
    assert_int_equal(fake.stops, 1);
    return 0;
}

static struct mt_tpeer *add_peer(int n)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)(40000 + n))};
    sin.sin_addr.s_addr = htonl(0xC0000200u | (unsigned)n); /* 192.0.2.n */
    struct mt_tpeer *p = mt__peer_new(&tun, (struct sockaddr *)&sin, sizeof(sin));
    assert_non_null(p);
    return p;
}

/* The device is read, then the queues flushed (prepare watchers run before the poll, so
 * the flush of what one iteration read comes at the start of the next). */
static void turn(void)
{
    ev_run(loop, EVRUN_NOWAIT);
    ev_run(loop, EVRUN_NOWAIT);
}

/* A packet the kernel hands the device (with vnet: its offload header before it). */
static void device_gives(const uint8_t *pkt, size_t len, const struct mt_vnet_hdr *vnet)
{
    uint8_t buf[MT_VNET_HDR_LEN + 4096];
    size_t off = 0;
    if (tun.vnet) {
        static const struct mt_vnet_hdr none;
        mt_vnet_write(buf, vnet ? vnet : &none);
        off = MT_VNET_HDR_LEN;
    }
    assert_true(len <= sizeof(buf) - off);
    memcpy(buf + off, pkt, len);
    assert_int_equal(write(dev[1], buf, off + len), (ssize_t)(off + len));
}

/* What the tunnel wrote to the device (its offload header stripped); -1 when nothing. */
static ssize_t device_got(uint8_t *out, size_t cap)
{
    uint8_t buf[MT_VNET_HDR_LEN + 70000];
    ssize_t n = read(dev[1], buf, sizeof(buf));
    if (n < 0)
        return -1;
    size_t off = tun.vnet ? MT_VNET_HDR_LEN : 0;
    assert_true((size_t)n >= off && (size_t)n - off <= cap);
    memcpy(out, buf + off, (size_t)n - off);
    return n - (ssize_t)off;
}

static const uint8_t A2[4] = {10, 9, 0, 2}, A3[4] = {10, 9, 0, 3}, A7[4] = {10, 9, 0, 7},
                     A1[4] = {10, 9, 0, 1};

/* --- routing --------------------------------------------------------------------------------- */

/* A server learns inner sources from what each peer sends, routes the device's packets by
 * them, forwards client to client without the kernel, and gives the rest to the device. */
static void test_routes_by_learned_sources(void **state)
{
    OPEN(false, "-s");
    struct mt_tpeer *a = add_peer(1), *b = add_peer(2);
    uint8_t pkt[256], got[256];
    size_t len = mt_test_ip4_udp(pkt, A2, A1, 1000, 53, 20);
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL); /* a owns 10.9.0.2; goes to the device */
    assert_int_equal(device_got(got, sizeof(got)), (ssize_t)len);
    assert_memory_equal(got, pkt, len);
    len = mt_test_ip4_udp(pkt, A3, A1, 1000, 53, 20);
    mt__tunnel_from_peer(&tun, b, pkt, len, NULL); /* b owns 10.9.0.3 */
    assert_int_equal(device_got(got, sizeof(got)), (ssize_t)len);

    len = mt_test_ip4_udp(pkt, A1, A3, 53, 1000, 30);
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 1);
    assert_ptr_equal(fake.sent[0].to, b);
    assert_false(fake.sent[0].vnet);
    assert_memory_equal(fake.sent[0].bytes, pkt, len);
    assert_true(fake.flushes >= 1); /* flushed before the loop would sleep */

    /* a to 10.9.0.3: straight to b. */
    len = mt_test_ip4_udp(pkt, A2, A3, 7, 7, 10);
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    assert_int_equal(fake.nsent, 2);
    assert_ptr_equal(fake.sent[1].to, b);
    assert_int_equal(device_got(got, sizeof(got)), -1);

    /* Nobody owns 10.9.0.7 and there are two peers: no route. */
    len = mt_test_ip4_udp(pkt, A1, A7, 53, 1000, 30);
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 2);
    assert_int_equal(tun.stats.no_route, 1);
    assert_int_equal(tun.stats.dev_rx_packets, 2);
    assert_int_equal(tun.stats.net_tx_packets, 2);
    assert_int_equal(a->pub.stats.rx_packets, 2);
    assert_int_equal(b->pub.stats.tx_packets, 2);
}

/* A client sends everything to its one peer; a transport's refusal is a counted drop. */
static void test_client_and_send_errors(void **state)
{
    OPEN(false, "-c", "127.0.0.1");
    uint8_t pkt[256];
    size_t len = mt_test_ip4_udp(pkt, A2, A7, 1, 2, 40);
    /* before the connection is up: not connected, not "no route" */
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 0);
    assert_int_equal(tun.stats.not_connected, 1);
    assert_int_equal(tun.stats.no_route, 0);
    struct mt_tpeer *srv = add_peer(1);
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 1);
    assert_int_equal(tun.stats.not_connected, 1);
    assert_ptr_equal(fake.sent[0].to, srv);
    ((struct fake_peer *)srv)->fail = true;
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 1);
    assert_int_equal(tun.stats.queue_drops, 1);
    assert_int_equal(srv->pub.stats.drops, 1);
}

/* --- back-pressure ---------------------------------------------------------------------------- */

/* The device is not read while a peer's queue is congested (the rest of the batch waits in
 * the kernel), and is read again once the transport says the queue drained. */
static void test_back_pressure(void **state)
{
    OPEN(false, "-c", "127.0.0.1");
    struct mt_tpeer *srv = add_peer(1);
    fake.congest_after_send = true;
    uint8_t pkt[256];
    size_t len = mt_test_ip4_udp(pkt, A2, A7, 1, 2, 40);
    for (int i = 0; i < 3; i++)
        device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 1);
    assert_true(tun.dev_paused);
    turn();
    assert_int_equal(fake.nsent, 1); /* still paused: the two others wait */
    mt__tunnel_update_pressure(&tun);
    assert_true(tun.dev_paused); /* still congested */
    fake.congest_after_send = false;
    ((struct fake_peer *)srv)->congested = false;
    mt__tunnel_update_pressure(&tun); /* what a transport calls once a queue drained */
    assert_false(tun.dev_paused);
    turn();
    assert_int_equal(fake.nsent, 3);
    assert_int_equal(tun.stats.dev_rx_packets, 3);
}

/* A peer that goes away while congested no longer holds the device. */
static void test_back_pressure_peer_gone(void **state)
{
    OPEN(false, "-s");
    struct mt_tpeer *a = add_peer(1);
    fake.congest_after_send = true;
    uint8_t pkt[256];
    size_t len = mt_test_ip4_udp(pkt, A2, A7, 1, 2, 40);
    device_gives(pkt, len, NULL);
    turn();
    assert_true(tun.dev_paused);
    mt__peer_free(a, "test");
    assert_false(tun.dev_paused);
}

/* --- script verdicts -------------------------------------------------------------------------- */

static const char verdicts_lua[] =
    "local mt = require 'moontun'\n"
    "return {\n"
    "  egress = function(pkt)\n"
    "    if pkt.udp and pkt.udp.dport == 9 then return mt.DROP end\n"
    "    if pkt.udp and pkt.udp.dport == 7 then return mt.REPLY end\n"
    "    if pkt.udp and pkt.udp.dport == 8 then return mt.peers()[1] end\n"
    "    if pkt.udp and pkt.udp.dport == 4 then error('boom') end\n"
    "  end,\n"
    "  ingress = function(pkt, peer)\n"
    "    if pkt.udp and pkt.udp.dport == 7 then return mt.REPLY end\n"
    "    if pkt.udp and pkt.udp.dport == 9 then return mt.DROP end\n"
    "  end,\n"
    "  encode = function(pkt, peer)\n"
    "    if pkt.udp and pkt.udp.dport == 6 then return mt.DROP end\n"
    "  end,\n"
    "}\n";

static void test_script_verdicts(void **state)
{
    mt_test_write_file(script_path, verdicts_lua);
    OPEN(false, "-s", "-S", script_path);
    struct mt_tpeer *a = add_peer(1);
    (void)add_peer(2); /* two peers: without a route nothing is sent by default */
    uint8_t pkt[256], got[256];

    size_t len = mt_test_ip4_udp(pkt, A1, A7, 1, 9, 10); /* egress DROP */
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(tun.stats.script_drops, 1);
    assert_int_equal(fake.nsent, 0);

    len = mt_test_ip4_udp(pkt, A1, A7, 1, 7, 10); /* egress REPLY: back to the device */
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(device_got(got, sizeof(got)), (ssize_t)len);
    assert_int_equal(tun.stats.script_replies, 1);

    len = mt_test_ip4_udp(pkt, A1, A7, 1, 8, 10); /* egress to a peer the script chose */
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 1);
    assert_int_equal(tun.stats.no_route, 0);

    len = mt_test_ip4_udp(pkt, A1, A7, 1, 6, 10); /* encode DROP */
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(tun.stats.no_route, 1);      /* no route first: encode never ran */
    len = mt_test_ip4_udp(pkt, A2, A1, 1, 7, 10); /* ingress REPLY: back to the peer */
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    assert_int_equal(fake.nsent, 2);
    assert_ptr_equal(fake.sent[1].to, a);
    assert_int_equal(device_got(got, sizeof(got)), -1);
    len = mt_test_ip4_udp(pkt, A1, A2, 1, 6, 10); /* a owns 10.9.0.2 now: encode drops */
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 2);
    assert_int_equal(tun.stats.script_drops, 2);
    len = mt_test_ip4_udp(pkt, A2, A1, 1, 9, 10); /* ingress DROP */
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    assert_int_equal(tun.stats.script_drops, 3);
    assert_int_equal(device_got(got, sizeof(got)), -1);
    unlink(script_path);
}

/* --- sizes and offloads ----------------------------------------------------------------------- */

/* A peer without offloads never gets more than it takes: a long UDP packet (which cannot be
 * cut) is dropped and counted, a long TCP packet is cut into MTU-sized segments with their
 * checksums complete; an offloading peer gets it whole, offload header and all. */
static void test_oversize_and_offload_peers(void **state)
{
    OPEN(true, "-c", "127.0.0.1", "--mtu", "1400");
    struct mt_tpeer *srv = add_peer(1);
    static uint8_t pkt[4000];
    size_t len = mt_test_ip4_udp(pkt, A2, A7, 1, 2, 3000);
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 0);
    assert_int_equal(tun.stats.too_big, 1);

    len = mt_test_ip4_tcp(pkt, A2, A7, 1000, 80, 3000);
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 3); /* 3000 bytes of payload at 1360 a segment */
    size_t payload = 0;
    for (int i = 0; i < fake.nsent; i++) {
        assert_true(fake.sent[i].len <= 1400);
        assert_false(fake.sent[i].vnet);
        assert_true(mt_proto_checksums_ok(fake.sent[i].bytes, fake.sent[i].len, MT_LINK_IP));
        payload += fake.sent[i].len - 40;
    }
    assert_int_equal(payload, 3000);

    srv->offload = true; /* what a transport sets once the peer takes offloaded packets */
    fake.nsent = 0;
    struct mt_vnet_hdr v = {.flags = MT_VNET_F_NEEDS_CSUM,
                            .gso_type = MT_VNET_GSO_TCPV4,
                            .hdr_len = 40,
                            .gso_size = 1360,
                            .csum_start = 20,
                            .csum_offset = 16};
    assert_int_equal(mt_proto_set_partial_csum(pkt, len, MT_LINK_IP), 0);
    device_gives(pkt, len, &v);
    turn();
    assert_int_equal(fake.nsent, 1);
    assert_int_equal(fake.sent[0].len, len);
    assert_true(fake.sent[0].vnet);
    assert_int_equal(fake.sent[0].hdr.gso_size, 1360);
    len = mt_test_ip4_udp(pkt, A2, A7, 1, 2, 3000); /* it takes what others cannot */
    device_gives(pkt, len, NULL);
    turn();
    assert_int_equal(fake.nsent, 2);
    assert_int_equal(tun.stats.too_big, 1);
}

/* A peer's offload header that does not describe its packet is refused before anything sees
 * the packet; a true one reaches the device with the packet. */
static void test_offload_headers_from_peers(void **state)
{
    OPEN(true, "-s");
    struct mt_tpeer *a = add_peer(1);
    static uint8_t pkt[4000], got[70000];
    size_t len = mt_test_ip4_tcp(pkt, A2, A1, 1000, 80, 3000);
    assert_int_equal(mt_proto_set_partial_csum(pkt, len, MT_LINK_IP), 0);
    struct mt_vnet_hdr liar = {.flags = MT_VNET_F_NEEDS_CSUM,
                               .gso_type = MT_VNET_GSO_TCPV4,
                               .hdr_len = 40,
                               .gso_size = 1, /* 3000 segments from one frame */
                               .csum_start = 20,
                               .csum_offset = 16};
    mt__tunnel_from_peer(&tun, a, pkt, len, &liar);
    assert_int_equal(tun.stats.bad_offloads, 1);
    assert_int_equal(device_got(got, sizeof(got)), -1);
    assert_null(
        mt_route_lookup(&tun.routes, &(struct mt_addr){.kind = MT_ADDR_IP4, .b = {10, 9, 0, 2}}));
    struct mt_vnet_hdr v = liar;
    v.gso_size = 1360;
    mt__tunnel_from_peer(&tun, a, pkt, len, &v);
    assert_int_equal(tun.stats.bad_offloads, 1);
    assert_int_equal(device_got(got, sizeof(got)), (ssize_t)len);
    assert_memory_equal(got, pkt, len);
}

/* A transport that decides which inner sources a peer may use (WireGuard's allowed IPs):
 * the others are dropped before learning, scripts or the device. */
static void test_transport_refuses_sources(void **state)
{
    OPEN(false, "-s");
    struct mt_tpeer *a = add_peer(1);
    fake.only_src = A2;
    uint8_t pkt[256], got[256];
    size_t len = mt_test_ip4_udp(pkt, A3, A1, 1, 2, 10);
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    assert_int_equal(device_got(got, sizeof(got)), -1);
    assert_int_equal(a->pub.stats.drops, 1);
    assert_null(
        mt_route_lookup(&tun.routes, &(struct mt_addr){.kind = MT_ADDR_IP4, .b = {10, 9, 0, 3}}));
    len = mt_test_ip4_udp(pkt, A2, A1, 1, 2, 10);
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    assert_int_equal(device_got(got, sizeof(got)), (ssize_t)len);
}

/* --- parse once ----------------------------------------------------------------------------- */

static const char views_lua[] = "return {\n"
                                "  egress = function(pkt) local d = pkt.ip.dst end,\n"
                                "  ingress = function(pkt, peer) local p = pkt.udp.dport end,\n"
                                "}\n";

/* A routed packet is parsed once, whoever reads its headers: the script's views, learning its
 * source and looking up its destination. (With -d the live trace also summarises the copy it
 * kept of the packet as it arrived: a debugging cost, not the data path's.) */
static void test_parsed_once(void **state)
{
    mt_test_write_file(script_path, views_lua);
    OPEN(false, "-s", "-S", script_path);
    enum mt_log_level saved = mt_log_level;
    mt_log_level = MT_LOG_INFO; /* the data path as it runs without -d */
    struct mt_tpeer *a = add_peer(1), *b = add_peer(2);
    uint8_t pkt[256];
    size_t len = mt_test_ip4_udp(pkt, A3, A1, 1, 2, 10);
    mt__tunnel_from_peer(&tun, b, pkt, len, NULL); /* b owns 10.9.0.3 */

    /* From a peer to another peer: decode, learn, log, ingress views, route. */
    len = mt_test_ip4_udp(pkt, A2, A3, 1, 2, 10);
    uint64_t before = mt_proto_parse_count;
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    assert_int_equal(mt_proto_parse_count - before, 1);
    assert_int_equal(fake.nsent, 1);

    /* From the device to a peer: log, egress views, route. */
    len = mt_test_ip4_udp(pkt, A1, A2, 1, 2, 10);
    device_gives(pkt, len, NULL);
    before = mt_proto_parse_count;
    turn();
    assert_int_equal(mt_proto_parse_count - before, 1);
    assert_int_equal(fake.nsent, 2);
    assert_ptr_equal(fake.sent[1].to, a);
    mt_log_level = saved;
    unlink(script_path);
}

/* --- live capture ----------------------------------------------------------------------------- */

/* Starts a capture on a stream socketpair: "POINTS VERDICTS COUNT [FILTER...]"; returns our end
 * (or -1, with err, when the tunnel refused it). */
static int capture(const char *request, char *err, size_t errsz)
{
    char text[256], *w[16];
    int sv[2], n = 0;
    snprintf(text, sizeof text, "%s", request);
    for (char *save, *tok = strtok_r(text, " ", &save); tok && n < 16;
         tok = strtok_r(NULL, " ", &save))
        w[n++] = tok;
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
    if (mt__capture_start(&tun, sv[0], w, n, err, errsz) < 0) {
        close(sv[0]);
        close(sv[1]);
        return -1;
    }
    return sv[1];
}

/* Reads what the capture sent; fills comments[] with its packets' comments, returns how many
 * (the header line and the other blocks are checked and skipped). *ended: the ISB came. */
static int captured(int fd, char comments[][256], int max, bool *ended)
{
    static uint8_t buf[4 << 20];
    size_t len = 0;
    ssize_t n;
    turn();
    while ((n = read(fd, buf + len, sizeof buf - len)) > 0)
        len += (size_t)n;
    size_t at = strlen("stream pcapng\n");
    assert_true(len >= at && memcmp(buf, "stream pcapng\n", at) == 0);
    int k = 0;
    uint32_t type;
    long blen;
    while ((blen = mt_pcapng_next(buf + at, len - at, 1 << 20, &type)) > 0) {
        const uint8_t *b = buf + at;
        if (type == MT_PCAPNG_EPB && k < max) {
            uint32_t caplen = b[20] | b[21] << 8 | (uint32_t)b[22] << 16;
            const uint8_t *opt = b + 28 + ((caplen + 3) & ~3u);
            assert_int_equal(opt[0], 1); /* opt_comment */
            snprintf(comments[k++], 256, "%.*s", opt[2] | opt[3] << 8, (const char *)opt + 4);
        }
        *ended = type == MT_PCAPNG_ISB;
        at += (size_t)blen;
    }
    assert_int_equal(at, len); /* only whole blocks */
    return k;
}

/* Each decision point names its fate: a script's drop with the script, line and handler; a
 * drop by the core with its reason; verdicts and points not asked for are left out; a bad
 * filter or point is refused with one line; -c ends with the statistics block; a reader that
 * does not read loses captured packets, counted, while the tunnel's go on. */
static void test_capture_fates(void **state)
{
    mt_test_write_file(script_path, verdicts_lua);
    OPEN(false, "-s", "-S", script_path);
    struct mt_tpeer *a = add_peer(1);
    strcpy(a->pub.name, "peer \"one\""); /* a script may name a peer anything */
    (void)add_peer(2);
    char err[256], c[8][256];
    bool ended = false;
    assert_int_equal(capture("net-in,bogus drop 0", err, sizeof err), -1);
    assert_string_equal(err, "unknown point 'net-in,bogus' (device-in, device-out, net-in, "
                             "net-out, all)");
    assert_int_equal(capture("all drop 0 udp port nope", err, sizeof err), -1);
    assert_non_null(strstr(err, "bad filter 'udp port nope': "));

    int fd = capture("all drop 0", err, sizeof err);
    assert_true(fd >= 0);
    uint8_t pkt[256];
    size_t len = mt_test_ip4_udp(pkt, A1, A7, 1, 9, 10); /* egress DROP by the script */
    device_gives(pkt, len, NULL);
    len = mt_test_ip4_udp(pkt, A1, A7, 1, 5, 10); /* passed, but no route with two peers */
    device_gives(pkt, len, NULL);
    turn();
    len = mt_test_ip4_udp(pkt, A2, A1, 1, 9, 10); /* ingress DROP */
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    len = mt_test_ip4_udp(pkt, A2, A1, 1, 5, 10); /* ingress pass: not a drop, left out */
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    len = mt_test_ip4_udp(pkt, A1, A7, 1, 4, 10); /* the handler fails: --on-error drop */
    device_gives(pkt, len, NULL);                 /* (and logs its error line) */
    turn();
    assert_int_equal(captured(fd, c, 8, &ended), 4);
    const char *name = strrchr(script_path, '/') + 1;
    char want[256];
    snprintf(want, sizeof want, "point=device-in peer=- script=%s:3 handler=egress verdict=drop",
             name);
    assert_string_equal(c[0], want);
    assert_string_equal(c[1], "point=device-in peer=- verdict=drop reason=\"no route\"");
    snprintf(want, sizeof want,
             "point=net-in peer=\"peer \\\"one\\\"\" script=%s:9 handler=ingress verdict=drop",
             name);
    assert_string_equal(c[2], want);
    snprintf(want, sizeof want,
             "point=device-in peer=- script=%s:3 handler=egress verdict=drop error=\"%s:7: boom",
             name, script_path);
    assert_memory_equal(c[3], want, strlen(want));
    assert_false(ended);

    /* -c 1 with a filter: the first matching packet, then the end block */
    int fd2 = capture("net-in any 1 udp port 5", err, sizeof err);
    assert_true(fd2 >= 0);
    len = mt_test_ip4_udp(pkt, A2, A1, 1, 9, 10);
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    len = mt_test_ip4_udp(pkt, A2, A1, 1, 5, 10);
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    mt__tunnel_from_peer(&tun, a, pkt, len, NULL);
    assert_int_equal(captured(fd2, c, 8, &ended), 1);
    assert_true(ended);
    assert_string_equal(c[0], "point=net-in peer=\"peer \\\"one\\\"\" verdict=pass");
    turn();
    assert_int_equal(read(fd2, pkt, 1), 0); /* and the tunnel hung up */
    close(fd2);

    /* 3,000 drops of 1,000 bytes while fd is not read: about 1 MiB is kept, the rest lost */
    uint64_t drops = tun.stats.script_drops;
    uint8_t big[1100];
    len = mt_test_ip4_udp(big, A2, A1, 1, 9, 1000);
    for (int i = 0; i < 3000; i++)
        mt__tunnel_from_peer(&tun, a, big, len, NULL);
    assert_int_equal(tun.stats.script_drops, drops + 3000); /* every one judged all the same */
    struct mt_buf show;
    mt_buf_init(&show, 1 << 16);
    mt__capture_show(&tun, &show);
    unsigned long long got, lost;
    const char *line = strstr(show.data, "captured: ");
    assert_non_null(line);
    assert_int_equal(sscanf(line, "captured: %llu, lost (slow reader): %llu", &got, &lost), 2);
    assert_true(got > 900 && got < 1100 && got + lost == 3005); /* and the drops above */
    mt_buf_free(&show);

    close(fd); /* gone mid-stream: freed at the next write */
    for (int i = 0; i < 3 && tun.captures; i++)
        turn();
    assert_null(tun.captures);
    unlink(script_path);
}

static int group_setup(void **state)
{
    mt_log_level = MT_LOG_ERROR;
    loop = ev_default_loop(0);
    snprintf(script_path, sizeof(script_path), "/tmp/mt_test_tunnel_%d.lua", (int)getpid());
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_routes_by_learned_sources, teardown),
        cmocka_unit_test_teardown(test_client_and_send_errors, teardown),
        cmocka_unit_test_teardown(test_back_pressure, teardown),
        cmocka_unit_test_teardown(test_back_pressure_peer_gone, teardown),
        cmocka_unit_test_teardown(test_script_verdicts, teardown),
        cmocka_unit_test_teardown(test_oversize_and_offload_peers, teardown),
        cmocka_unit_test_teardown(test_offload_headers_from_peers, teardown),
        cmocka_unit_test_teardown(test_transport_refuses_sources, teardown),
        cmocka_unit_test_teardown(test_parsed_once, teardown),
        cmocka_unit_test_teardown(test_capture_fates, teardown),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
