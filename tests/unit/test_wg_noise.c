/* The WireGuard handshake (core/wg/noise.c), cookies (cookie.c) and data messages (data.c)
 * between two in-process peers: keys agree, and every forgery, replay or wrong key is refused
 * without changing the state it attacks. (Interop with a real peer: test_wg_interop.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>

#include "wg/cookie.h"
#include "wg/data.h"
#include "wg/noise.h"

#define SEC 1000000000ull

struct side {
    struct mt_wg_identity id;
    struct mt_wg_noise_peer peer; /* the other side */
    struct mt_wg_cookie_checker checker;
    struct mt_wg_cookie_gen gen;
    struct mt_wg_keypair kp;
};

static struct side A, B; /* A initiates to B */

static struct mt_wg_noise_peer *by_key(void *ctx, const uint8_t pub[MT_WG_KEY_LEN])
{
    struct mt_wg_noise_peer *p = ctx;
    return !memcmp(p->pub, pub, MT_WG_KEY_LEN) ? p : NULL;
}

static struct mt_wg_noise_peer *by_index(void *ctx, uint32_t index)
{
    struct mt_wg_noise_peer *p = ctx;
    return p->hs.local_index == index ? p : NULL;
}

static void make_side(struct side *s, const uint8_t *priv)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(mt_wg_identity_init(&s->id, priv), 0);
}

static int setup(void **state)
{
    uint8_t a[32], b[32], psk[32];
    mt_wg_genkey(a);
    mt_wg_genkey(b);
    mt_wg_random(psk, sizeof(psk));
    make_side(&A, a);
    make_side(&B, b);
    assert_int_equal(mt_wg_noise_peer_init(&A.peer, &A.id, B.id.pub, psk), 0);
    assert_int_equal(mt_wg_noise_peer_init(&B.peer, &B.id, A.id.pub, psk), 0);
    mt_wg_cookie_checker_init(&A.checker, A.id.pub);
    mt_wg_cookie_checker_init(&B.checker, B.id.pub);
    mt_wg_cookie_gen_init(&A.gen, B.id.pub);
    mt_wg_cookie_gen_init(&B.gen, A.id.pub);
    return 0;
}

static void ts_at(uint8_t ts[12], int64_t sec)
{
    mt_wg_tai64n(ts, sec, 0);
}

static void initiation(uint8_t msg[MT_WG_INITIATION_LEN], int64_t sec)
{
    uint8_t ts[12];
    ts_at(ts, sec);
    assert_int_equal(mt_wg_noise_create_initiation(&A.id, &A.peer, 0x11111111, ts, msg), 0);
    assert_int_equal(mt_wg_cookie_add_macs(&A.gen, msg, MT_WG_INITIATION_LEN, 1), 0);
}

/* A full handshake at wall-clock second sec and monotonic now. */
static void handshake(int64_t sec, uint64_t now)
{
    uint8_t m1[MT_WG_INITIATION_LEN], m2[MT_WG_RESPONSE_LEN];
    struct mt_wg_noise_peer *who;
    initiation(m1, sec);
    assert_true(mt_wg_cookie_check_mac1(&B.checker, m1, sizeof(m1)));
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), now, by_key, &B.peer, &who), 0);
    assert_ptr_equal(who, &B.peer);
    assert_int_equal(mt_wg_noise_create_response(&B.peer, 0x22222222, m2), 0);
    assert_int_equal(mt_wg_cookie_add_macs(&B.gen, m2, sizeof(m2), now), 0);
    assert_int_equal(mt_wg_noise_derive(&B.peer, now, &B.kp), 0);
    assert_true(mt_wg_cookie_check_mac1(&A.checker, m2, sizeof(m2)));
    assert_int_equal(mt_wg_noise_consume_response(&A.id, m2, sizeof(m2), by_index, &A.peer, &who),
                     0);
    assert_int_equal(mt_wg_noise_derive(&A.peer, now, &A.kp), 0);
}

static void keys_agree(void **state)
{
    handshake(1000, SEC);
    assert_memory_equal(A.kp.send, B.kp.recv, 32);
    assert_memory_equal(A.kp.recv, B.kp.send, 32);
    assert_memory_not_equal(A.kp.send, A.kp.recv, 32);
    assert_int_equal(A.kp.remote_index, 0x22222222);
    assert_int_equal(B.kp.remote_index, 0x11111111);
    assert_true(A.kp.initiator);
    assert_false(B.kp.initiator);
    /* Handshake secrets are gone once the keys exist. */
    uint8_t zero[32] = {0};
    assert_memory_equal(A.peer.hs.eph_priv, zero, 32);
    assert_memory_equal(B.peer.hs.chain, zero, 32);
}

static void initiation_replay_and_flood(void **state)
{
    uint8_t m1[MT_WG_INITIATION_LEN];
    struct mt_wg_noise_peer *who;
    handshake(2000, 10 * SEC);
    initiation(m1, 2000); /* same timestamp: a replay of a captured initiation */
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), 20 * SEC, by_key, &B.peer, &who),
        -EALREADY);
    initiation(m1, 1999); /* older */
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), 20 * SEC, by_key, &B.peer, &who),
        -EALREADY);
    initiation(m1, 2001); /* newer but 1 ms after the last: a flood */
    assert_int_equal(mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), 10 * SEC + 1000000,
                                                    by_key, &B.peer, &who),
                     -EAGAIN);
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), 11 * SEC, by_key, &B.peer, &who), 0);
}

static void forgeries_refused(void **state)
{
    uint8_t m1[MT_WG_INITIATION_LEN], bad[MT_WG_INITIATION_LEN];
    struct mt_wg_noise_peer *who;
    initiation(m1, 5000);
    /* Every byte of the Noise part matters; mac1 catches changes anywhere before it. */
    for (size_t i = 0; i < MT_WG_INITIATION_LEN - 32; i++) {
        memcpy(bad, m1, sizeof(bad));
        bad[i] ^= 0x40;
        assert_false(mt_wg_cookie_check_mac1(&B.checker, bad, sizeof(bad)));
        if (i >= 8) /* past type and sender index, Noise itself refuses it too */
            assert_int_not_equal(mt_wg_noise_consume_initiation(&B.id, bad, sizeof(bad), 100 * SEC,
                                                                by_key, &B.peer, &who),
                                 0);
    }
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1) - 1, 100 * SEC, by_key, &B.peer, &who),
        -EBADMSG);
    /* A stranger's initiation: its static key is unknown. */
    struct side C;
    uint8_t c[32];
    mt_wg_genkey(c);
    make_side(&C, c);
    mt_wg_noise_peer_init(&C.peer, &C.id, B.id.pub, NULL);
    uint8_t ts[12];
    ts_at(ts, 6000);
    assert_int_equal(mt_wg_noise_create_initiation(&C.id, &C.peer, 3, ts, m1), 0);
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), 100 * SEC, by_key, &B.peer, &who),
        -ENOENT);
    /* The real one still goes through: nothing above changed B's state. */
    initiation(m1, 5001);
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), 100 * SEC, by_key, &B.peer, &who), 0);
}

static void wrong_psk_refused(void **state)
{
    uint8_t m1[MT_WG_INITIATION_LEN], m2[MT_WG_RESPONSE_LEN];
    struct mt_wg_noise_peer *who;
    B.peer.psk[0] ^= 1;
    initiation(m1, 7000);
    assert_int_equal(
        mt_wg_noise_consume_initiation(&B.id, m1, sizeof(m1), 200 * SEC, by_key, &B.peer, &who), 0);
    assert_int_equal(mt_wg_noise_create_response(&B.peer, 9, m2), 0);
    assert_int_equal(mt_wg_noise_consume_response(&A.id, m2, sizeof(m2), by_index, &A.peer, &who),
                     -EBADMSG);
    assert_int_equal(A.peer.hs.state,
                     MT_WG_HS_INIT_SENT); /* still waiting: a forgery changes nothing */
    B.peer.psk[0] ^= 1;
    /* A response to nobody (unknown index). */
    mt_wg_put32(m2 + MT_WG_OFF_RECEIVER2, 0xdeadbeef);
    assert_int_equal(mt_wg_noise_consume_response(&A.id, m2, sizeof(m2), by_index, &A.peer, &who),
                     -ENOENT);
    struct mt_wg_keypair kp;
    assert_int_equal(mt_wg_noise_derive(&A.peer, 0, &kp), -EINVAL);
}

static void cookie_round_trip(void **state)
{
    uint8_t m1[MT_WG_INITIATION_LEN], reply[MT_WG_COOKIE_LEN];
    const uint8_t src[6] = {172, 31, 0, 2, 0xC8, 0x2D}, other[6] = {172, 31, 0, 3, 0xC8, 0x2D};
    uint64_t now = 1000 * SEC;
    initiation(m1, 8000);
    /* Under load B wants mac2; A has no cookie yet, so mac2 is zero and invalid. */
    assert_false(mt_wg_cookie_check_mac2(&B.checker, m1, sizeof(m1), src, 6, now));
    assert_int_equal(mt_wg_cookie_create_reply(&B.checker, m1, sizeof(m1), src, 6, now, reply), 0);
    assert_int_equal(mt_wg_get32(reply + 4), 0x11111111);
    /* A forged or corrupted reply is refused. */
    reply[40] ^= 1;
    assert_int_equal(mt_wg_cookie_consume_reply(&A.gen, reply, sizeof(reply), now), -EBADMSG);
    reply[40] ^= 1;
    assert_int_equal(mt_wg_cookie_consume_reply(&A.gen, reply, sizeof(reply), now), 0);
    /* Only one reply per message sent. */
    assert_int_equal(mt_wg_cookie_consume_reply(&A.gen, reply, sizeof(reply), now), -EBADMSG);
    uint8_t ts[12];
    ts_at(ts, 8001);
    mt_wg_noise_create_initiation(&A.id, &A.peer, 0x11111111, ts, m1);
    mt_wg_cookie_add_macs(&A.gen, m1, sizeof(m1), now + SEC);
    assert_true(mt_wg_cookie_check_mac1(&B.checker, m1, sizeof(m1)));
    assert_true(mt_wg_cookie_check_mac2(&B.checker, m1, sizeof(m1), src, 6, now + SEC));
    /* The cookie is bound to the source address, and dies with the secret after 2 minutes. */
    assert_false(mt_wg_cookie_check_mac2(&B.checker, m1, sizeof(m1), other, 6, now + SEC));
    assert_false(mt_wg_cookie_check_mac2(&B.checker, m1, sizeof(m1), src, 6, now + 121 * SEC));
    /* A's cookie expires too: mac2 is zero again after 2 minutes. */
    mt_wg_cookie_add_macs(&A.gen, m1, sizeof(m1), now + 122 * SEC);
    uint8_t zero[16] = {0};
    assert_memory_equal(m1 + sizeof(m1) - 16, zero, 16);
    /* The secret is renewed: an old cookie reply's cookie no longer validates. */
    assert_int_equal(
        mt_wg_cookie_create_reply(&B.checker, m1, sizeof(m1), src, 6, now + 200 * SEC, reply), 0);
}

static void data_round_trip(void **state)
{
    uint8_t buf[2048];
    size_t n, pt;
    handshake(9000, 300 * SEC);
    /* A 45-byte IPv4 packet pads to 48. */
    memset(buf, 0, sizeof(buf));
    uint8_t *ip = buf + MT_WG_DATA_HEADER;
    ip[0] = 0x45;
    ip[3] = 45;
    memset(ip + 20, 'x', 25);
    assert_int_equal(mt_wg_data_seal(&A.kp, buf, sizeof(buf), 45, 1420, &n), 0);
    assert_int_equal(n, 16 + 48 + 16);
    assert_int_equal(buf[0], 4);
    assert_int_equal(mt_wg_get32(buf + 4), B.kp.local_index);
    assert_int_equal(mt_wg_get64(buf + 8), 0);
    uint8_t copy[2048];
    memcpy(copy, buf, n);
    assert_int_equal(mt_wg_data_open(&B.kp, buf, n, &pt), 0);
    assert_int_equal(pt, 48);
    assert_int_equal(mt_wg_data_inner_len(buf + 16, pt), 45);
    /* Replay refused; tampering refused (and does not burn the counter). */
    memcpy(buf, copy, n);
    assert_int_equal(mt_wg_data_open(&B.kp, buf, n, &pt), -EALREADY);
    assert_int_equal(mt_wg_data_seal(&A.kp, buf, sizeof(buf), 0, 1420, &n), 0); /* keepalive */
    assert_int_equal(n, 32);
    memcpy(copy, buf, n);
    buf[20] ^= 1;
    assert_int_equal(mt_wg_data_open(&B.kp, buf, n, &pt), -EBADMSG);
    assert_int_equal(mt_wg_data_open(&B.kp, copy, n, &pt), 0);
    assert_int_equal(pt, 0);
    /* Wrong direction key, short message, no room, key exhausted. */
    assert_int_equal(mt_wg_data_seal(&A.kp, buf, sizeof(buf), 16, 0, &n), 0);
    assert_int_equal(mt_wg_data_open(&A.kp, buf, n, &pt), -EBADMSG);
    assert_int_equal(mt_wg_data_open(&B.kp, buf, 31, &pt), -EBADMSG);
    assert_int_equal(mt_wg_data_seal(&A.kp, buf, 40, 16, 0, &n), -EMSGSIZE);
    A.kp.send_counter = MT_WG_REJECT_AFTER_MESSAGES;
    assert_int_equal(mt_wg_data_seal(&A.kp, buf, sizeof(buf), 16, 0, &n), -EKEYEXPIRED);
    /* Padding never goes past the MTU. */
    A.kp.send_counter = 10;
    assert_int_equal(mt_wg_data_seal(&A.kp, buf, sizeof(buf), 1419, 1420, &n), 0);
    assert_int_equal(n, 16 + 1420 + 16);
    /* inner_len refuses headers that lie. */
    uint8_t liar[40] = {0x45, 0, 0x05, 0xDC};
    assert_int_equal(mt_wg_data_inner_len(liar, sizeof(liar)), 0);
    liar[2] = 0, liar[3] = 10;
    assert_int_equal(mt_wg_data_inner_len(liar, sizeof(liar)), 0);
}

static void tai64n_order(void **state)
{
    uint8_t a[12], b[12];
    mt_wg_tai64n(a, 1700000000, 999999999);
    mt_wg_tai64n(b, 1700000001, 0);
    assert_true(memcmp(a, b, 12) < 0);
    assert_int_equal(a[0], 0x40);
    assert_int_equal(a[11], 0); /* nanoseconds rounded down to 2^24 */
    assert_int_equal(a[10], 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keys_agree),        cmocka_unit_test(initiation_replay_and_flood),
        cmocka_unit_test(forgeries_refused), cmocka_unit_test(wrong_psk_refused),
        cmocka_unit_test(cookie_round_trip), cmocka_unit_test(data_round_trip),
        cmocka_unit_test(tai64n_order),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
