/* The handshake load meter (core/wg/load.c): under load only past the limit within one
 * second, for one second after, and a new window starts the count again. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "wg/load.h"

#define S 1000000000ull

static void below_the_limit_never(void **state)
{
    struct mt_wg_load l;
    mt_wg_load_init(&l);
    /* 10 a second for 5 seconds with a limit of 10: never under load. */
    for (uint64_t i = 0; i < 50; i++) {
        mt_wg_load_count(&l, 100 * S + i * (S / 10), 10);
        assert_false(mt_wg_load_under(&l, 100 * S + i * (S / 10)));
    }
}

static void past_the_limit_for_one_second(void **state)
{
    struct mt_wg_load l;
    mt_wg_load_init(&l);
    uint64_t t = 100 * S;
    for (int i = 0; i < 10; i++)
        mt_wg_load_count(&l, t + (uint64_t)i, 10);
    assert_false(mt_wg_load_under(&l, t + 10));
    mt_wg_load_count(&l, t + 10, 10); /* the 11th in the same second */
    assert_true(mt_wg_load_under(&l, t + 10));
    assert_true(mt_wg_load_under(&l, t + 10 + S - 1));
    assert_false(mt_wg_load_under(&l, t + 10 + S));
}

static void a_flood_keeps_it_under_load(void **state)
{
    struct mt_wg_load l;
    mt_wg_load_init(&l);
    uint64_t t = 100 * S;
    /* 1,000 a second for 3 seconds, limit 64: under load throughout once it started. */
    for (uint64_t i = 0; i < 3000; i++) {
        uint64_t now = t + i * (S / 1000);
        mt_wg_load_count(&l, now, 64);
        if (i >= 64)
            assert_true(mt_wg_load_under(&l, now));
    }
    /* Then quiet: a second later it is over, and a trickle does not restart it. */
    uint64_t later = t + 3 * S + S;
    assert_false(mt_wg_load_under(&l, later));
    mt_wg_load_count(&l, later, 64);
    assert_false(mt_wg_load_under(&l, later));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(below_the_limit_never),
        cmocka_unit_test(past_the_limit_for_one_second),
        cmocka_unit_test(a_flood_keeps_it_under_load),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
