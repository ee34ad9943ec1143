/* Replay window: a ring of 64-bit blocks; moving forward clears the blocks the window leaves,
 * so a check costs the same whatever the counter. */
#include "wg/replay.h"

#include <string.h>

void mt_wg_replay_init(struct mt_wg_replay *r)
{
    memset(r, 0, sizeof(*r));
}

bool mt_wg_replay_check(struct mt_wg_replay *r, uint64_t counter, uint64_t limit)
{
    if (counter >= limit)
        return false;
    uint64_t block = counter / 64;
    if (counter > r->last) {
        uint64_t current = r->last / 64, diff = block - current;
        if (diff > MT_WG_REPLAY_BLOCKS)
            diff = MT_WG_REPLAY_BLOCKS; /* a jump past the whole ring clears it once */
        for (uint64_t i = 1; i <= diff; i++)
            r->ring[(current + i) % MT_WG_REPLAY_BLOCKS] = 0;
        r->last = counter;
    } else if (r->last - counter > MT_WG_REPLAY_WINDOW) {
        return false;
    }
    uint64_t bit = UINT64_C(1) << (counter % 64), *word = &r->ring[block % MT_WG_REPLAY_BLOCKS];
    if (*word & bit)
        return false;
    *word |= bit;
    return true;
}
