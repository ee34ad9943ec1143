/* WireGuard's timers (core/wg/timers.c) driven by a clock made here: what is due, and when. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "wg/timers.h"

#define S MT_WG_SEC

static void keepalive_after_received_data(void **state)
{
    struct mt_wg_timers t;
    uint64_t next;
    mt_wg_timers_init(&t, 0);
    mt_wg_timers_data_received(&t, 100 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 109 * S, &next), 0);
    assert_int_equal(next, 110 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 110 * S, &next), MT_WG_DO_KEEPALIVE);
    assert_int_equal(next, 0);
    /* Sending anything before the deadline makes the keepalive unneeded. */
    mt_wg_timers_data_received(&t, 200 * S);
    mt_wg_timers_any_sent(&t, 201 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 300 * S, &next), 0);
    /* More data while one is pending: one more keepalive interval after it fires. */
    mt_wg_timers_data_received(&t, 400 * S);
    mt_wg_timers_data_received(&t, 401 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 410 * S, &next), MT_WG_DO_KEEPALIVE);
    assert_int_equal(next, 420 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 420 * S, &next), MT_WG_DO_KEEPALIVE);
}

static void new_handshake_when_sent_data_is_not_answered(void **state)
{
    struct mt_wg_timers t;
    uint64_t next, jitter = S / 10;
    mt_wg_timers_init(&t, 0);
    mt_wg_timers_data_sent(&t, 100 * S, jitter);
    assert_int_equal(mt_wg_timers_poll(&t, 114 * S, &next), 0);
    assert_int_equal(next, 115 * S + jitter); /* KEEPALIVE_TIMEOUT + REKEY_TIMEOUT + jitter */
    assert_int_equal(mt_wg_timers_poll(&t, next, &next), MT_WG_DO_INITIATE);
    /* An authenticated packet back stops it. */
    mt_wg_timers_data_sent(&t, 200 * S, 0);
    mt_wg_timers_any_received(&t, 201 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 300 * S, &next), 0);
}

static void retransmit_then_give_up(void **state)
{
    struct mt_wg_timers t;
    uint64_t next, now = 1000 * S;
    unsigned tries = 0, act;
    mt_wg_timers_init(&t, 0);
    assert_true(mt_wg_timers_may_initiate(&t, now));
    mt_wg_timers_handshake_initiated(&t, now, S / 4);
    assert_false(mt_wg_timers_may_initiate(&t, now + 4 * S));
    assert_true(mt_wg_timers_may_initiate(&t, now + 5 * S));
    /* Retries every REKEY_TIMEOUT + jitter until REKEY_ATTEMPT_TIME is spent. */
    for (;;) {
        assert_int_equal(mt_wg_timers_poll(&t, now, &next), 0);
        now = next;
        act = mt_wg_timers_poll(&t, now, &next);
        if (act & MT_WG_DO_GIVE_UP)
            break;
        assert_int_equal(act, MT_WG_DO_INITIATE);
        tries++;
        mt_wg_timers_handshake_initiated(&t, now, S / 4);
        assert_true(tries < 100);
    }
    assert_int_equal(tries, MT_WG_MAX_HANDSHAKE_TRIES);
    assert_true(now - 1000 * S >= MT_WG_REKEY_ATTEMPT_TIME);
    /* Then the keys are wiped if nothing happens for 3 * REJECT_AFTER_TIME. */
    assert_int_equal(next, now + 3 * MT_WG_REJECT_AFTER_TIME);
    assert_int_equal(mt_wg_timers_poll(&t, next, &next), MT_WG_DO_ZERO_KEYS);
    /* A completed handshake stops the retries. */
    mt_wg_timers_handshake_initiated(&t, now, 0);
    mt_wg_timers_handshake_complete(&t, now + S);
    assert_int_equal(mt_wg_timers_poll(&t, now + 100 * S, &next), 0);
    assert_int_equal(t.last_handshake_ns, now + S);
}

static void persistent_keepalive_and_zero_keys(void **state)
{
    struct mt_wg_timers t;
    uint64_t next;
    mt_wg_timers_init(&t, 25);
    mt_wg_timers_session_derived(&t, 0 + S);
    mt_wg_timers_traversal(&t, 10 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 34 * S, &next), 0);
    assert_int_equal(next, 35 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 35 * S, &next), MT_WG_DO_KEEPALIVE);
    assert_int_equal(next, S + 3 * MT_WG_REJECT_AFTER_TIME);
    assert_int_equal(mt_wg_timers_poll(&t, next, &next), MT_WG_DO_ZERO_KEYS);
    /* Off: traversal arms nothing. */
    mt_wg_timers_init(&t, 0);
    mt_wg_timers_traversal(&t, 10 * S);
    assert_int_equal(mt_wg_timers_poll(&t, 1000 * S, &next), 0);
    assert_int_equal(next, 0);
}

static void key_ages(void **state)
{
    struct mt_wg_keypair kp;
    memset(&kp, 0, sizeof(kp));
    kp.birth_ns = 1000 * S;
    kp.initiator = true;
    assert_false(mt_wg_rekey_on_send(&kp, 1000 * S + MT_WG_REKEY_AFTER_TIME));
    assert_true(mt_wg_rekey_on_send(&kp, 1001 * S + MT_WG_REKEY_AFTER_TIME));
    assert_false(mt_wg_rekey_on_receive(&kp, 1164 * S));
    assert_true(mt_wg_rekey_on_receive(&kp, 1166 * S)); /* 180 - 10 - 5 = 165 s */
    assert_false(mt_wg_key_expired(&kp, 1179 * S));
    assert_true(mt_wg_key_expired(&kp, 1180 * S));
    /* The responder does not rekey on age (the initiator does), but does on messages. */
    kp.initiator = false;
    assert_false(mt_wg_rekey_on_send(&kp, 1150 * S));
    assert_false(mt_wg_rekey_on_receive(&kp, 1170 * S));
    kp.send_counter = MT_WG_REKEY_AFTER_MESSAGES + 1;
    assert_true(mt_wg_rekey_on_send(&kp, 1001 * S));
    kp.send_counter = MT_WG_REJECT_AFTER_MESSAGES;
    assert_true(mt_wg_key_expired(&kp, 1001 * S));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(keepalive_after_received_data),
        cmocka_unit_test(new_handshake_when_sent_data_is_not_answered),
        cmocka_unit_test(retransmit_then_give_up),
        cmocka_unit_test(persistent_keepalive_and_zero_keys),
        cmocka_unit_test(key_ages),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
