/* wg(8) configuration files (core/wg/config.c), base64 keys (key.c) and cryptokey routing
 * (allowedips.c): what wg accepts is accepted, anything else is one error naming the line and
 * the key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "wg/config.h"
#include "wg/key.h"
#include "wg_hex.h"

#define ALICE_PRIV "dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo="
#define ALICE_PUB  "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo="

static char notes[1024];

static void note(void *ctx, int line, const char *msg)
{
    size_t n = strlen(notes);
    snprintf(notes + n, sizeof(notes) - n, "%d:%s|", line, msg);
}

static void keys_base64(void **state)
{
    uint8_t k[32], pub[32];
    char text[45];
    assert_int_equal(mt_wg_key_from_base64(k, ALICE_PRIV), 0);
    assert_int_equal(mt_wg_pubkey(pub, k), 0);
    mt_wg_key_to_base64(text, pub);
    assert_string_equal(text, ALICE_PUB); /* RFC 7748 6.1's Alice, as wg pubkey prints it */
    /* Not canonical (the last character's low bits), wrong length, bad characters. */
    assert_int_equal(mt_wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp="),
                     -EINVAL);
    assert_int_equal(mt_wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo"),
                     -EINVAL);
    assert_int_equal(mt_wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm=="),
                     -EINVAL);
    assert_int_equal(mt_wg_key_from_base64(k, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066Spjqqb mo="),
                     -EINVAL);
    assert_int_equal(mt_wg_key_from_base64(k, ""), -EINVAL);
}

static const char GOOD[] = "# moontun's end\n"
                           "[Interface]\n"
                           "PrivateKey = " ALICE_PRIV "\n"
                           "ListenPort=51820\n"
                           "Address = 10.7.0.1/24, fd07::1/64\n"
                           "MTU = 1420\n"
                           "DNS = 1.1.1.1\n"
                           "fwmark = 0x42\n"
                           "\n"
                           "[Peer]\n"
                           "# Name = laptop\n"
                           "PublicKey = " ALICE_PUB "\n"
                           "PresharedKey = " ALICE_PRIV "\n"
                           "AllowedIPs = 10.7.0.2/32, fd07::2/128\n"
                           "AllowedIPs = 192.168.5.0/24 # a second line adds to the first\n"
                           "Endpoint = [fd00::1]:51821\n"
                           "PersistentKeepalive = 25\r\n"
                           "[peer]\n"
                           "publickey = dwdtCnMYpX08FsFyUbJmRd9ML4frwJkqsXf7pR25LCo=\n"
                           "Endpoint = vpn.example.org:443\n"
                           "PersistentKeepalive = off\n";

static void good_file(void **state)
{
    struct mt_wg_config c;
    char err[256] = "";
    notes[0] = '\0';
    assert_int_equal(mt_wg_config_parse(&c, GOOD, strlen(GOOD), note, NULL, err, sizeof(err)), 0);
    assert_true(c.has_priv);
    assert_int_equal(c.listen_port, 51820);
    assert_int_equal(c.n_addresses, 2);
    assert_int_equal(c.addresses[1].family, 6);
    assert_int_equal(c.mtu, 1420);
    assert_int_equal(c.n_peers, 2);
    struct mt_wg_config_peer *p = &c.peers[0];
    assert_string_equal(p->name, "laptop");
    assert_true(p->has_psk);
    assert_int_equal(p->n_allowed, 3);
    assert_int_equal(p->allowed[2].bits, 24);
    assert_string_equal(p->endpoint_host, "fd00::1");
    assert_int_equal(p->endpoint_port, 51821);
    assert_int_equal(p->keepalive, 25);
    assert_int_equal(p->line, 10);
    assert_string_equal(c.peers[1].endpoint_host, "vpn.example.org");
    assert_int_equal(c.peers[1].keepalive, 0);
    assert_false(c.peers[1].has_psk);
    assert_string_equal(notes,
                        "7:DNS ignored (a wg-quick setting)|8:FwMark ignored: moontun does not "
                        "mark packets|");
    mt_wg_config_free(&c);
}

/* Each bad file gives exactly this error. */
static void bad_files(void **state)
{
    static const struct {
        const char *text, *err;
    } cases[] = {
        {"PrivateKey = " ALICE_PRIV "\n",
         "line 1: PrivateKey: outside any section ([Interface] or [Peer])"},
        {"[Interface]\nPrivateKey = abc\n",
         "line 2: PrivateKey: not a base64 key of 32 bytes (44 characters, as wg genkey writes)"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\nListenPort = 65536\n",
         "line 3: ListenPort: '65536' is not a port (0-65535)"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\nColour = blue\n",
         "line 3: unknown key 'Colour' in [Interface]"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\n[Peer]\nAllowedIPs = 10.0.0.0/8\n",
         "line 3: [Peer] without PublicKey"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\n[Peer]\nPublicKey = " ALICE_PUB
         "\nAllowedIPs = 10.0.0.0/33\n",
         "line 5: AllowedIPs: '10.0.0.0/33' is not an address or prefix"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\n[Peer]\nPublicKey = " ALICE_PUB
         "\nEndpoint = fd00::1:51820\n",
         "line 5: Endpoint: an IPv6 address needs brackets: [fd00::1:51820]:port"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\n[Peer]\nPublicKey = " ALICE_PUB
         "\nEndpoint = host\n",
         "line 5: Endpoint: 'host' is not host:port"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\n[Peer]\nPublicKey = " ALICE_PUB
         "\nPersistentKeepalive = -1\n",
         "line 5: PersistentKeepalive: '-1' is not off or 0-65535 seconds"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\n[Peer]\nPublicKey = " ALICE_PUB
         "\n[Peer]\nPublicKey = " ALICE_PUB "\n",
         "line 5: PublicKey: the same peer as the one at line 3"},
        {"[Interface]\nPrivateKey = " ALICE_PRIV "\n[Wat]\n",
         "line 3: unknown section [Wat] (only [Interface] and [Peer])"},
        {"[Interface]\nPrivateKey\n", "line 2: expected Key = Value, got 'PrivateKey'"},
        {"[Interface]\nPrivateKey =\n", "line 2: PrivateKey: no value"},
        {"[Interface]\nListenPort = 1\n", "no PrivateKey in [Interface]"},
        {"[Interface]\nMTU = 20\nPrivateKey = " ALICE_PRIV "\n",
         "line 2: MTU: '20' is not an MTU (68-65535)"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct mt_wg_config c;
        char err[256] = "";
        assert_int_equal(mt_wg_config_parse(&c, cases[i].text, strlen(cases[i].text), NULL, NULL,
                                            err, sizeof(err)),
                         -EINVAL);
        assert_string_equal(err, cases[i].err);
        assert_int_equal(c.n_peers, 0);
    }
    /* A NUL byte inside a line. */
    struct mt_wg_config c;
    char err[256];
    assert_int_equal(
        mt_wg_config_parse(&c, "[Interface]\nA\0B = c\n", 19, NULL, NULL, err, sizeof(err)),
        -EINVAL);
    assert_string_equal(err, "line 2: a NUL byte");
}

static void load_file(void **state)
{
    char path[] = "/tmp/test_wg_config.XXXXXX", err[512];
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, GOOD, strlen(GOOD)), (ssize_t)strlen(GOOD));
    close(fd);
    struct mt_wg_config c;
    chmod(path, 0644);
    notes[0] = '\0';
    assert_int_equal(mt_wg_config_load(&c, path, note, NULL, err, sizeof(err)), 0);
    assert_non_null(strstr(notes, "0:the file is readable by others"));
    mt_wg_config_free(&c);
    fd = open(path, O_WRONLY | O_APPEND);
    assert_int_equal(write(fd, "Oops\n", 5), 5);
    close(fd);
    assert_int_equal(mt_wg_config_load(&c, path, NULL, NULL, err, sizeof(err)), -EINVAL);
    char want[600];
    snprintf(want, sizeof(want), "%s: line 22: expected Key = Value, got 'Oops'", path);
    assert_string_equal(err, want);
    unlink(path);
    assert_true(mt_wg_config_load(&c, path, NULL, NULL, err, sizeof(err)) < 0);
}

static void allowed_ips(void **state)
{
    struct mt_wg_allowedips t;
    struct mt_wg_prefix p;
    int a, b, c;
    uint8_t addr[16];
    mt_wg_allowedips_init(&t);
    assert_int_equal(mt_wg_prefix_parse(&p, "10.0.0.0/8"), 0);
    assert_int_equal(mt_wg_allowedips_insert(&t, &p, &a), 0);
    assert_int_equal(mt_wg_prefix_parse(&p, "10.1.2.99/24"), 0); /* host bits cleared */
    assert_int_equal(mt_wg_allowedips_insert(&t, &p, &b), 0);
    assert_int_equal(mt_wg_prefix_parse(&p, "0.0.0.0/0"), 0);
    assert_int_equal(mt_wg_allowedips_insert(&t, &p, &c), 0);
    assert_int_equal(mt_wg_prefix_parse(&p, "fd00::/64"), 0);
    assert_int_equal(mt_wg_allowedips_insert(&t, &p, &a), 0);
    assert_int_equal(mt_wg_prefix_parse(&p, "fd00::7"), 0);
    assert_int_equal(mt_wg_allowedips_insert(&t, &p, &b), 0);
    unhex(addr, "0a010263");
    assert_ptr_equal(mt_wg_allowedips_lookup(&t, 4, addr), &b); /* longest prefix wins */
    unhex(addr, "0a010363");
    assert_ptr_equal(mt_wg_allowedips_lookup(&t, 4, addr), &a);
    unhex(addr, "08080808");
    assert_ptr_equal(mt_wg_allowedips_lookup(&t, 4, addr), &c);
    unhex(addr, "fd000000000000000000000000000007");
    assert_ptr_equal(mt_wg_allowedips_lookup(&t, 6, addr), &b);
    assert_true(mt_wg_allowedips_allowed(&t, &b, 6, addr));
    assert_false(mt_wg_allowedips_allowed(&t, &a, 6, addr)); /* a spoofing b's address */
    unhex(addr, "fd000000000000000000000000000008");
    assert_true(mt_wg_allowedips_allowed(&t, &a, 6, addr));
    unhex(addr, "fe800000000000000000000000000008");
    assert_null(mt_wg_allowedips_lookup(&t, 6, addr));
    /* The same prefix moves to the last peer that claims it; removing a peer removes its. */
    assert_int_equal(mt_wg_prefix_parse(&p, "10.1.2.0/24"), 0);
    assert_int_equal(mt_wg_allowedips_insert(&t, &p, &c), 0);
    unhex(addr, "0a010263");
    assert_ptr_equal(mt_wg_allowedips_lookup(&t, 4, addr), &c);
    mt_wg_allowedips_remove_peer(&t, &c);
    assert_ptr_equal(mt_wg_allowedips_lookup(&t, 4, addr), &a);
    unhex(addr, "08080808");
    assert_null(mt_wg_allowedips_lookup(&t, 4, addr));
    /* Bad prefixes. */
    assert_int_equal(mt_wg_prefix_parse(&p, "10.0.0.0/"), -EINVAL);
    assert_int_equal(mt_wg_prefix_parse(&p, "fd00::/129"), -EINVAL);
    assert_int_equal(mt_wg_prefix_parse(&p, "10.0.0/8"), -EINVAL);
    p.family = 5;
    assert_int_equal(mt_wg_allowedips_insert(&t, &p, &a), -EINVAL);
    mt_wg_allowedips_free(&t);
}

/* The linear reference: every (prefix, peer) in a list, the longest match found by a scan,
 * as allowedips.c did before its hash table. */
#define REF_MAX 2000
static struct mt_wg_prefix ref_p[REF_MAX];
static void *ref_peer[REF_MAX];
static size_t ref_n;

static bool ref_matches(const struct mt_wg_prefix *p, int family, const uint8_t *addr)
{
    if (p->family != family)
        return false;
    for (unsigned bit = 0; bit < p->bits; bit++) {
        unsigned byte = bit / 8, m = 0x80u >> (bit % 8);
        if ((p->addr[byte] & m) != (addr[byte] & m))
            return false;
    }
    return true;
}

static void ref_insert(const struct mt_wg_prefix *in, void *peer)
{
    struct mt_wg_prefix p = *in;
    for (unsigned bit = p.bits; bit < 128; bit++)
        p.addr[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
    for (size_t i = 0; i < ref_n; i++)
        if (ref_p[i].family == p.family && ref_p[i].bits == p.bits &&
            !memcmp(ref_p[i].addr, p.addr, 16)) {
            ref_peer[i] = peer;
            return;
        }
    assert_true(ref_n < REF_MAX);
    ref_p[ref_n] = p;
    ref_peer[ref_n++] = peer;
}

static void *ref_lookup(int family, const uint8_t *addr)
{
    void *best = NULL;
    int best_bits = -1;
    for (size_t i = 0; i < ref_n; i++)
        if (ref_peer[i] && (int)ref_p[i].bits > best_bits && ref_matches(&ref_p[i], family, addr)) {
            best = ref_peer[i];
            best_bits = ref_p[i].bits;
        }
    return best;
}

/* 2,000 random, nested prefixes of both families for 500 peers: every lookup agrees
 * with the linear reference, before and after peers are removed. */
static void allowed_ips_random(void **state)
{
    static char peers[500];
    struct mt_wg_allowedips t;
    mt_wg_allowedips_init(&t);
    ref_n = 0;
    srandom(7);
    /* A few base networks so that prefixes nest and share lengths, as real ones do. */
    static const uint8_t base4[3][4] = {{10, 0, 0, 0}, {10, 77, 0, 0}, {192, 168, 1, 0}};
    static const uint8_t base6[2][16] = {{0xfd, 0x77}, {0x20, 0x01, 0x0d, 0xb8, 0, 1}};
    for (int i = 0; i < 2000; i++) {
        struct mt_wg_prefix p;
        memset(&p, 0, sizeof(p));
        if (random() % 2) {
            p.family = 4;
            memcpy(p.addr, base4[random() % 3], 4);
            for (int b = 1; b < 4; b++)
                if (random() % 3)
                    p.addr[b] = (uint8_t)random();
            p.bits = (uint8_t)(random() % 4 ? 24 + random() % 9 : random() % 33);
        } else {
            p.family = 6;
            memcpy(p.addr, base6[random() % 2], 16);
            for (int b = 6; b < 16; b++)
                if (random() % 3)
                    p.addr[b] = (uint8_t)random();
            p.bits = (uint8_t)(random() % 4 ? 96 + random() % 33 : random() % 129);
        }
        void *peer = &peers[random() % 500];
        assert_int_equal(mt_wg_allowedips_insert(&t, &p, peer), 0);
        ref_insert(&p, peer);
    }
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < 4000; i++) {
            /* Near a known prefix (its address with some low bits changed), or anywhere. */
            const struct mt_wg_prefix *near = &ref_p[random() % ref_n];
            int family = near->family;
            uint8_t addr[16];
            memcpy(addr, near->addr, 16);
            if (random() % 8 == 0)
                for (int b = 0; b < 16; b++)
                    addr[b] = (uint8_t)random();
            else
                addr[family == 4 ? 3 : 15] ^= (uint8_t)random();
            void *want = ref_lookup(family, addr);
            assert_ptr_equal(mt_wg_allowedips_lookup(&t, family, addr), want);
            if (want)
                assert_true(mt_wg_allowedips_allowed(&t, want, family, addr));
        }
        /* Some peers go: their prefixes must stop matching, shorter ones show through. */
        for (int k = 0; k < 100; k++) {
            void *gone = &peers[random() % 500];
            mt_wg_allowedips_remove_peer(&t, gone);
            for (size_t i = 0; i < ref_n; i++)
                if (ref_peer[i] == gone)
                    ref_peer[i] = NULL;
        }
    }
    mt_wg_allowedips_free(&t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_base64), cmocka_unit_test(good_file),
        cmocka_unit_test(bad_files),   cmocka_unit_test(load_file),
        cmocka_unit_test(allowed_ips), cmocka_unit_test(allowed_ips_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
