/* The replay window (core/wg/replay.c): the cases of RFC 6479 and wireguard-go's filter test,
 * including a window of at least 2,048 messages and the counter limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wg/replay.h"

#define LIMIT MT_WG_REJECT_AFTER_MESSAGES

static void in_order_and_duplicates(void **state)
{
    struct mt_wg_replay r;
    mt_wg_replay_init(&r);
    assert_true(mt_wg_replay_check(&r, 0, LIMIT));
    assert_false(mt_wg_replay_check(&r, 0, LIMIT));
    for (uint64_t i = 1; i < 5000; i++)
        assert_true(mt_wg_replay_check(&r, i, LIMIT));
    assert_false(mt_wg_replay_check(&r, 4999, LIMIT));
    assert_false(mt_wg_replay_check(&r, 100, LIMIT));
}

static void reordering_inside_the_window(void **state)
{
    struct mt_wg_replay r;
    mt_wg_replay_init(&r);
    assert_true(mt_wg_replay_check(&r, 10000, LIMIT));
    /* Everything up to the window size behind the newest arrives late, once. */
    assert_true(MT_WG_REPLAY_WINDOW >= 2048);
    for (uint64_t i = 10000 - MT_WG_REPLAY_WINDOW; i < 10000; i++)
        assert_true(mt_wg_replay_check(&r, i, LIMIT));
    for (uint64_t i = 10000 - MT_WG_REPLAY_WINDOW; i < 10000; i++)
        assert_false(mt_wg_replay_check(&r, i, LIMIT));
    assert_false(mt_wg_replay_check(&r, 10000 - MT_WG_REPLAY_WINDOW - 1, LIMIT));
}

static void big_jumps_clear_the_ring(void **state)
{
    struct mt_wg_replay r;
    mt_wg_replay_init(&r);
    for (uint64_t i = 0; i < 200; i++)
        assert_true(mt_wg_replay_check(&r, i, LIMIT));
    /* A jump past the whole ring: old bits must not make new counters look replayed. */
    uint64_t base = 64 * MT_WG_REPLAY_BLOCKS * 3;
    for (uint64_t i = base; i < base + 200; i++)
        assert_true(mt_wg_replay_check(&r, i, LIMIT));
    assert_false(mt_wg_replay_check(&r, 150, LIMIT));
    /* A jump of exactly one block. */
    assert_true(mt_wg_replay_check(&r, base + 200 + 64, LIMIT));
    assert_true(mt_wg_replay_check(&r, base + 201, LIMIT));
}

static void counter_limit(void **state)
{
    struct mt_wg_replay r;
    mt_wg_replay_init(&r);
    assert_true(mt_wg_replay_check(&r, LIMIT - 1, LIMIT));
    assert_false(mt_wg_replay_check(&r, LIMIT, LIMIT));
    assert_false(mt_wg_replay_check(&r, UINT64_MAX, LIMIT));
    assert_false(mt_wg_replay_check(&r, 0, LIMIT)); /* far behind now */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order_and_duplicates),
        cmocka_unit_test(reordering_inside_the_window),
        cmocka_unit_test(big_jumps_clear_the_ring),
        cmocka_unit_test(counter_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
