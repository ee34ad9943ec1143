/* wg_probe: a WireGuard peer made of moontun's core/wg modules and a UDP socket, for the
 * interop test against wireguard-go (tests/integration/test_wg_interop.sh). No tun device: it
 * writes and reads inner IPv4 ICMP packets itself.
 *   initiate: handshake as initiator, ping the peer's inner address through the tunnel and
 *             check the decrypted reply; then check that a replayed data message, one under a
 *             wrong key, a handshake with an unknown static key and one with a wrong preshared
 *             key are all refused, and that the session still works afterwards.
 *   respond:  wait for the peer's initiation, answer it, and answer its pings (echo replies
 *             sealed back); checks that a replayed message is refused on our side. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "wg/cookie.h"
#include "wg/data.h"
#include "wg/key.h"
#include "wg/noise.h"

#define BUF 2048

static int fails;
static int sock;
static struct sockaddr_in peer_addr;
static struct mt_wg_identity id;
static struct mt_wg_noise_peer peer;
static struct mt_wg_cookie_checker checker;
static struct mt_wg_cookie_gen gen;
static struct mt_wg_keypair kp;
static struct in_addr inner_src, inner_dst;

static void check(int ok, const char *what)
{
    printf("  %s: %s\n", ok ? "ok" : "FAIL", what);
    fflush(stdout);
    fails += !ok;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void timestamp(uint8_t ts[MT_WG_TIMESTAMP_LEN])
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    mt_wg_tai64n(ts, t.tv_sec, t.tv_nsec);
}

static uint32_t random32(void)
{
    uint32_t v;
    mt_wg_random(&v, sizeof(v));
    return v;
}

static struct mt_wg_noise_peer *by_key(void *ctx, const uint8_t pub[MT_WG_KEY_LEN])
{
    struct mt_wg_noise_peer *p = ctx;
    return mt_wg_equal(p->pub, pub, MT_WG_KEY_LEN) ? p : NULL;
}

static struct mt_wg_noise_peer *by_index(void *ctx, uint32_t index)
{
    struct mt_wg_noise_peer *p = ctx;
    return p->hs.local_index == index ? p : NULL;
}

/* Receives one datagram within ms; its length, 0 on timeout. Records the sender. */
static size_t recv_wait(uint8_t *buf, int ms)
{
    struct pollfd pfd = {.fd = sock, .events = POLLIN};
    if (poll(&pfd, 1, ms) <= 0)
        return 0;
    socklen_t sl = sizeof(peer_addr);
    ssize_t n = recvfrom(sock, buf, BUF, 0, (struct sockaddr *)&peer_addr, &sl);
    return n > 0 ? (size_t)n : 0;
}

static void send_raw(const uint8_t *buf, size_t n)
{
    if (sendto(sock, buf, n, 0, (struct sockaddr *)&peer_addr, sizeof(peer_addr)) != (ssize_t)n)
        perror("wg_probe: sendto");
}

static uint16_t csum(const uint8_t *p, size_t n)
{
    uint32_t s = 0;
    for (size_t i = 0; i + 1 < n; i += 2)
        s += (uint32_t)(p[i] << 8 | p[i + 1]);
    if (n & 1)
        s += (uint32_t)p[n - 1] << 8;
    while (s >> 16)
        s = (s & 0xFFFF) + (s >> 16);
    return (uint16_t)~s;
}

/* An IPv4 ICMP echo (type 8 request, 0 reply) of 32 payload bytes at p; returns its length. */
static size_t icmp_echo(uint8_t *p, struct in_addr src, struct in_addr dst, int type,
                        uint16_t ident, uint16_t seq)
{
    size_t len = 20 + 8 + 32;
    memset(p, 0, len);
    p[0] = 0x45;
    p[3] = (uint8_t)len;
    p[8] = 64;
    p[9] = 1;
    memcpy(p + 12, &src, 4);
    memcpy(p + 16, &dst, 4);
    uint16_t c = csum(p, 20);
    p[10] = (uint8_t)(c >> 8), p[11] = (uint8_t)c;
    uint8_t *icmp = p + 20;
    icmp[0] = (uint8_t)type;
    icmp[4] = (uint8_t)(ident >> 8), icmp[5] = (uint8_t)ident;
    icmp[6] = (uint8_t)(seq >> 8), icmp[7] = (uint8_t)seq;
    memcpy(icmp + 8, "moontun-wg-probe-plaintext-mark!", 32);
    c = csum(icmp, 8 + 32);
    icmp[2] = (uint8_t)(c >> 8), icmp[3] = (uint8_t)c;
    return len;
}

/* Seals an echo request with seq into out; returns the message length. */
static size_t sealed_echo(uint8_t *out, struct mt_wg_keypair *k, uint16_t seq)
{
    size_t len = icmp_echo(out + MT_WG_DATA_HEADER, inner_src, inner_dst, 8, 0x4d54, seq), n = 0;
    if (mt_wg_data_seal(k, out, BUF, len, 1420, &n) < 0)
        return 0;
    return n;
}

/* Waits up to ms for an echo reply with seq; true when one decrypted and checked out. Data
 * that does not open (or keepalives) is skipped. *copy gets the last data message received. */
static int wait_reply(uint16_t seq, int ms, uint8_t *copy, size_t *copylen)
{
    uint8_t buf[BUF];
    uint64_t end = now_ns() + (uint64_t)ms * 1000000ull;
    while (now_ns() < end) {
        size_t n = recv_wait(buf, (int)((end - now_ns()) / 1000000ull) + 1), pt = 0;
        if (n == 0 || mt_wg_msg_type(buf, n) != MT_WG_MSG_DATA)
            continue;
        if (copy) {
            memcpy(copy, buf, n);
            *copylen = n;
        }
        if (mt_wg_data_open(&kp, buf, n, &pt) < 0 || pt == 0)
            continue;
        uint8_t *ip = buf + MT_WG_DATA_HEADER;
        size_t len = mt_wg_data_inner_len(ip, pt);
        if (len == 60 && ip[9] == 1 && ip[20] == 0 && !memcmp(ip + 12, &inner_dst, 4) &&
            (ip[26] << 8 | ip[27]) == seq &&
            !memcmp(ip + 28, "moontun-wg-probe-plaintext-mark!", 32))
            return 1;
    }
    return 0;
}

/* One handshake as initiator with p (its psk may be wrong on purpose). 0 when keys were
 * derived; otherwise the error from consuming the response, or -ETIMEDOUT. */
static int handshake(struct mt_wg_noise_peer *p, struct mt_wg_identity *me, int tries)
{
    uint8_t msg[BUF], ts[MT_WG_TIMESTAMP_LEN];
    struct mt_wg_cookie_gen g;
    mt_wg_cookie_gen_init(&g, p->pub);
    struct mt_wg_cookie_checker ours;
    mt_wg_cookie_checker_init(&ours, me->pub);
    for (int t = 0; t < tries; t++) {
        usleep(50000); /* TAI64N is whitened to ~16 ms: keep each initiation newer */
        timestamp(ts);
        if (mt_wg_noise_create_initiation(me, p, random32(), ts, msg) < 0 ||
            mt_wg_cookie_add_macs(&g, msg, MT_WG_INITIATION_LEN, now_ns()) < 0)
            return -EIO;
        send_raw(msg, MT_WG_INITIATION_LEN);
        uint64_t end = now_ns() + 2000000000ull;
        while (now_ns() < end) {
            size_t n = recv_wait(msg, 200);
            if (n == 0 || mt_wg_msg_type(msg, n) != MT_WG_MSG_RESPONSE)
                continue;
            struct mt_wg_noise_peer *who;
            if (!mt_wg_cookie_check_mac1(&ours, msg, n))
                return -EBADMSG;
            int rc = mt_wg_noise_consume_response(me, msg, n, by_index, p, &who);
            if (rc < 0)
                return rc;
            return mt_wg_noise_derive(p, now_ns(), &kp);
        }
    }
    return -ETIMEDOUT;
}

static int initiate(void)
{
    uint8_t buf[BUF], copy[BUF];
    size_t n;
    check(handshake(&peer, &id, 3) == 0,
          "handshake as initiator: response authenticated, keys derived");
    if (fails)
        return 1;
    n = sealed_echo(buf, &kp, 1);
    memcpy(copy, buf, n);
    send_raw(buf, n);
    uint8_t got[BUF];
    size_t gotlen = 0;
    check(wait_reply(1, 3000, got, &gotlen),
          "echo request sealed by us, echo reply from wireguard-go decrypted");

    /* Our side refuses a replay of wireguard-go's message and a tampered one. */
    uint8_t again[BUF];
    size_t pt;
    memcpy(again, got, gotlen);
    check(gotlen && mt_wg_data_open(&kp, again, gotlen, &pt) == -EALREADY,
          "a replayed data message from wireguard-go is refused here (counter seen)");
    memcpy(again, got, gotlen);
    again[gotlen - 1] ^= 1;
    struct mt_wg_replay saved = kp.replay;
    mt_wg_replay_init(&kp.replay); /* so only the tag can refuse it */
    check(gotlen && mt_wg_data_open(&kp, again, gotlen, &pt) == -EBADMSG,
          "a tampered data message is refused here (tag)");
    kp.replay = saved;

    /* wireguard-go refuses our replayed message: no second reply to seq 1. */
    send_raw(copy, n);
    check(!wait_reply(1, 1500, NULL, NULL),
          "wireguard-go refuses a replayed data message (no reply)");
    /* ... and one sealed under a wrong key with a fresh counter. */
    struct mt_wg_keypair wrong = kp;
    mt_wg_random(wrong.send, sizeof(wrong.send));
    n = sealed_echo(buf, &wrong, 3);
    kp.send_counter = wrong.send_counter;
    send_raw(buf, n);
    check(!wait_reply(3, 1500, NULL, NULL),
          "wireguard-go refuses a data message under a wrong key");
    n = sealed_echo(buf, &kp, 4);
    send_raw(buf, n);
    check(wait_reply(4, 3000, NULL, NULL), "the session still works after the refused messages");

    /* A stranger (unknown static key) gets no response. */
    struct mt_wg_identity stranger;
    uint8_t spriv[MT_WG_KEY_LEN];
    mt_wg_genkey(spriv);
    mt_wg_identity_init(&stranger, spriv);
    struct mt_wg_noise_peer sp;
    mt_wg_noise_peer_init(&sp, &stranger, peer.pub, peer.psk);
    struct mt_wg_keypair keep = kp;
    check(handshake(&sp, &stranger, 1) == -ETIMEDOUT,
          "wireguard-go does not answer an initiation from an unknown key");
    /* A wrong preshared key: wireguard-go answers, the response does not authenticate. */
    struct mt_wg_noise_peer wp;
    mt_wg_noise_peer_init(&wp, &id, peer.pub, NULL);
    mt_wg_random(wp.psk, sizeof(wp.psk));
    check(handshake(&wp, &id, 2) == -EBADMSG,
          "a response under a different preshared key is refused");
    kp = keep;
    mt_wg_wipe(spriv, sizeof(spriv));
    /* A fresh handshake with the right keys works again (rekey). */
    check(handshake(&peer, &id, 3) == 0, "a second handshake (rekey) succeeds");
    n = sealed_echo(buf, &kp, 5);
    send_raw(buf, n);
    check(wait_reply(5, 3000, NULL, NULL), "echo through the new session");
    return fails ? 1 : 0;
}

static int respond(int pings)
{
    uint8_t buf[BUF], out[BUF];
    struct mt_wg_noise_peer *who = NULL;
    uint64_t end = now_ns() + 15000000000ull;
    int answered = 0, replay_checked = 0;
    while (now_ns() < end && answered < pings) {
        size_t n = recv_wait(buf, 200), pt = 0;
        int type = n ? mt_wg_msg_type(buf, n) : 0;
        if (type == MT_WG_MSG_INITIATION) {
            if (!mt_wg_cookie_check_mac1(&checker, buf, n))
                continue;
            if (mt_wg_noise_consume_initiation(&id, buf, n, now_ns(), by_key, &peer, &who) < 0)
                continue;
            if (mt_wg_noise_create_response(who, random32(), out) < 0 ||
                mt_wg_cookie_add_macs(&gen, out, MT_WG_RESPONSE_LEN, now_ns()) < 0 ||
                mt_wg_noise_derive(who, now_ns(), &kp) < 0)
                return 1;
            send_raw(out, MT_WG_RESPONSE_LEN);
            check(1, "initiation from wireguard-go consumed, response sent");
        } else if (type == MT_WG_MSG_DATA && kp.local_index) {
            uint8_t copy[BUF];
            memcpy(copy, buf, n);
            if (mt_wg_data_open(&kp, buf, n, &pt) < 0 || pt == 0)
                continue;
            if (!replay_checked) {
                replay_checked = 1;
                size_t ignored;
                check(mt_wg_data_open(&kp, copy, n, &ignored) == -EALREADY,
                      "a replay of wireguard-go's first data message is refused here");
            }
            uint8_t *ip = buf + MT_WG_DATA_HEADER;
            size_t len = mt_wg_data_inner_len(ip, pt);
            if (len < 28 || ip[9] != 1 || ip[(ip[0] & 15) * 4] != 8 ||
                memcmp(ip + 16, &inner_src, 4) != 0)
                continue;
            /* Echo reply: swap the addresses, type 0, fix the ICMP checksum. */
            size_t ihl = (size_t)(ip[0] & 15) * 4;
            uint8_t *r = out + MT_WG_DATA_HEADER;
            memcpy(r, ip, len);
            memcpy(r + 12, ip + 16, 4);
            memcpy(r + 16, ip + 12, 4);
            r[ihl] = 0;
            r[ihl + 2] = r[ihl + 3] = 0;
            uint16_t c = csum(r + ihl, len - ihl);
            r[ihl + 2] = (uint8_t)(c >> 8), r[ihl + 3] = (uint8_t)c;
            size_t m = 0;
            if (mt_wg_data_seal(&kp, out, BUF, len, 1420, &m) < 0)
                return 1;
            send_raw(out, m);
            answered++;
        }
    }
    check(answered == pings, "echo requests from wireguard-go decrypted and answered");
    return fails ? 1 : 0;
}

static int parse_addr(struct sockaddr_in *sa, const char *text)
{
    char host[64];
    const char *colon = strrchr(text, ':');
    if (!colon || (size_t)(colon - text) >= sizeof(host))
        return -1;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sa->sin_addr) == 1 ? 0 : -1;
}

int main(int argc, char **argv)
{
    if (argc < 8 || argc > 9) {
        fprintf(stderr, "usage: wg_probe initiate|respond PRIVKEY PEERPUB PSK|- LISTEN:PORT "
                        "PEER:PORT INNER_SRC:INNER_DST [PINGS]\n");
        return 2;
    }
    uint8_t priv[MT_WG_KEY_LEN], pub[MT_WG_KEY_LEN], psk[MT_WG_KEY_LEN];
    struct sockaddr_in local;
    char inner[64];
    snprintf(inner, sizeof(inner), "%s", argv[7]);
    char *colon = strchr(inner, ':');
    if (mt_wg_key_from_base64(priv, argv[2]) < 0 || mt_wg_key_from_base64(pub, argv[3]) < 0 ||
        (strcmp(argv[4], "-") && mt_wg_key_from_base64(psk, argv[4]) < 0) ||
        parse_addr(&local, argv[5]) < 0 || parse_addr(&peer_addr, argv[6]) < 0 || !colon) {
        fprintf(stderr, "wg_probe: bad key or address\n");
        return 2;
    }
    *colon = '\0';
    if (inet_pton(AF_INET, inner, &inner_src) != 1 ||
        inet_pton(AF_INET, colon + 1, &inner_dst) != 1)
        return 2;
    if (mt_wg_identity_init(&id, priv) < 0 ||
        mt_wg_noise_peer_init(&peer, &id, pub, strcmp(argv[4], "-") ? psk : NULL) < 0 ||
        mt_wg_cookie_checker_init(&checker, id.pub) < 0 || mt_wg_cookie_gen_init(&gen, pub) < 0)
        return 1;
    mt_wg_wipe(priv, sizeof(priv));
    sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || bind(sock, (struct sockaddr *)&local, sizeof(local)) < 0) {
        perror("wg_probe: bind");
        return 1;
    }
    int rc = !strcmp(argv[1], "initiate")  ? initiate()
             : !strcmp(argv[1], "respond") ? respond(argc > 8 ? atoi(argv[8]) : 3)
                                           : 2;
    mt_wg_noise_peer_wipe(&peer);
    mt_wg_wipe(&kp, sizeof(kp));
    mt_wg_wipe(&id, sizeof(id));
    mt_wg_crypto_fini();
    close(sock);
    return rc;
}
