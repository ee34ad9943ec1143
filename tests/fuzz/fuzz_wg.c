/* Fuzzes WireGuard's message parsers (core/wg): arbitrary bytes as message 1 to a responder,
 * message 2 to an initiator waiting for it, message 3 (cookie reply) to that initiator, and
 * message 4 (data) to an established session. Nothing may crash, and nothing may be accepted
 * without the keys: every consume/open must fail and leave the state it attacked unchanged.
 * A last mode seals fuzzer plaintext and opens it again (must round-trip). Each call gets an
 * exactly-sized heap copy, so a read past the message is an ASan report.
 *
 * Input: [mode][message bytes]. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wg/cookie.h"
#include "wg/data.h"
#include "wg/noise.h"

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "fuzz_wg: check failed at line %d: %s\n", __LINE__, #cond);            \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static struct mt_wg_identity I, R;
static struct mt_wg_noise_peer r_sees_i, i_sees_r;
static struct mt_wg_cookie_checker r_checker, i_checker;
static struct mt_wg_cookie_gen i_gen;
static struct mt_wg_keypair kp_i, kp_r;
static struct mt_wg_handshake waiting; /* i_sees_r.hs while it waits for a response */

static struct mt_wg_noise_peer *by_key(void *ctx, const uint8_t pub[MT_WG_KEY_LEN])
{
    return memcmp(r_sees_i.pub, pub, MT_WG_KEY_LEN) ? NULL : &r_sees_i;
}

static struct mt_wg_noise_peer *by_index(void *ctx, uint32_t index)
{
    return i_sees_r.hs.local_index == index ? &i_sees_r : NULL;
}

static void setup(void)
{
    uint8_t a[32], b[32], psk[32], m1[MT_WG_INITIATION_LEN], m2[MT_WG_RESPONSE_LEN], ts[12];
    struct mt_wg_noise_peer *who;
    memset(a, 0x11, 32);
    memset(b, 0x22, 32);
    memset(psk, 0x33, 32);
    CHECK(mt_wg_identity_init(&I, a) == 0 && mt_wg_identity_init(&R, b) == 0);
    CHECK(mt_wg_noise_peer_init(&i_sees_r, &I, R.pub, psk) == 0);
    CHECK(mt_wg_noise_peer_init(&r_sees_i, &R, I.pub, psk) == 0);
    mt_wg_cookie_checker_init(&r_checker, R.pub);
    mt_wg_cookie_checker_init(&i_checker, I.pub);
    mt_wg_cookie_gen_init(&i_gen, R.pub);
    /* One real session, for the data mode. */
    mt_wg_tai64n(ts, 1000, 0);
    CHECK(mt_wg_noise_create_initiation(&I, &i_sees_r, 1, ts, m1) == 0);
    CHECK(mt_wg_noise_consume_initiation(&R, m1, sizeof(m1), 1, by_key, NULL, &who) == 0);
    CHECK(mt_wg_noise_create_response(&r_sees_i, 2, m2) == 0);
    CHECK(mt_wg_noise_derive(&r_sees_i, 1, &kp_r) == 0);
    CHECK(mt_wg_noise_consume_response(&I, m2, sizeof(m2), by_index, NULL, &who) == 0);
    CHECK(mt_wg_noise_derive(&i_sees_r, 1, &kp_i) == 0);
    /* And a handshake left waiting for its response, with a message whose cookie may come. */
    mt_wg_tai64n(ts, 2000, 0);
    CHECK(mt_wg_noise_create_initiation(&I, &i_sees_r, 7, ts, m1) == 0);
    CHECK(mt_wg_cookie_add_macs(&i_gen, m1, sizeof(m1), 1) == 0);
    waiting = i_sees_r.hs;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    if (!ready) {
        setup();
        ready = 1;
    }
    if (size < 1)
        return 0;
    size_t n = size - 1;
    uint8_t *msg = malloc(n ? n : 1);
    memcpy(msg, data + 1, n);
    struct mt_wg_noise_peer *who = (void *)1;
    size_t pt;
    uint32_t rx;
    uint64_t ctr;
    switch (data[0] % 5) {
    case 0: {
        struct mt_wg_handshake before = r_sees_i.hs;
        (void)mt_wg_cookie_check_mac1(&r_checker, msg, n);
        (void)mt_wg_cookie_check_mac2(&r_checker, msg, n, data, size < 18 ? size : 18, 5);
        CHECK(mt_wg_noise_consume_initiation(&R, msg, n, 1000000000000ull, by_key, NULL, &who) < 0);
        CHECK(who == NULL && !memcmp(&before, &r_sees_i.hs, sizeof(before)));
        break;
    }
    case 1:
        (void)mt_wg_cookie_check_mac1(&i_checker, msg, n);
        CHECK(mt_wg_noise_consume_response(&I, msg, n, by_index, NULL, &who) < 0);
        CHECK(who == NULL && !memcmp(&waiting, &i_sees_r.hs, sizeof(waiting)));
        break;
    case 2: {
        struct mt_wg_cookie_gen before = i_gen;
        CHECK(mt_wg_cookie_consume_reply(&i_gen, msg, n, 5) < 0);
        CHECK(!memcmp(&before, &i_gen, sizeof(before)));
        break;
    }
    case 3: {
        struct mt_wg_replay before = kp_r.replay;
        if (mt_wg_data_header(msg, n, &rx, &ctr) == 0)
            CHECK(n >= MT_WG_DATA_MIN);
        CHECK(mt_wg_data_open(&kp_r, msg, n, &pt) < 0);
        CHECK(!memcmp(&before, &kp_r.replay, sizeof(before)));
        size_t inner = mt_wg_data_inner_len(data + 1, n);
        CHECK(inner <= n);
        break;
    }
    default: {
        /* Seal the bytes as plaintext, open them on the other side: the same bytes, padded. */
        size_t cap = MT_WG_DATA_OVERHEAD + n + MT_WG_PADDING, len = 0;
        uint8_t *buf = malloc(cap);
        memcpy(buf + MT_WG_DATA_HEADER, msg, n);
        int rc = mt_wg_data_seal(&kp_i, buf, cap, n, 0, &len);
        CHECK(rc == 0 && len <= cap && (len - MT_WG_DATA_OVERHEAD) % MT_WG_PADDING == 0);
        CHECK(mt_wg_data_open(&kp_r, buf, len, &pt) == 0);
        CHECK(pt >= n && !memcmp(buf + MT_WG_DATA_HEADER, msg, n));
        CHECK(mt_wg_data_inner_len(buf + MT_WG_DATA_HEADER, pt) <= pt);
        free(buf);
        break;
    }
    }
    free(msg);
    return 0;
}
