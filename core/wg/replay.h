/* The sliding window that refuses a data message counter seen before or too old (RFC 6479's
 * bitmap ring, as wireguard-go and the kernel keep it): 8,128 messages behind the newest. */
#ifndef MOONTUN_WG_REPLAY_H
#define MOONTUN_WG_REPLAY_H

#include <stdbool.h>
#include <stdint.h>

#define MT_WG_REPLAY_BLOCKS 128 /* 64-bit words in the ring; a power of two */
#define MT_WG_REPLAY_WINDOW ((MT_WG_REPLAY_BLOCKS - 1) * 64)
/* After this many messages a key must not be used any more (whitepaper: 2^64 - 2^13 - 1). */
#define MT_WG_REJECT_AFTER_MESSAGES (UINT64_MAX - (UINT64_C(1) << 13))

struct mt_wg_replay {
    uint64_t last; /* the greatest counter accepted */
    uint64_t ring[MT_WG_REPLAY_BLOCKS];
};

void mt_wg_replay_init(struct mt_wg_replay *r);
/* True when counter is new, below limit and inside the window; it is then recorded. Call only
 * after the message authenticated, or a forger could move the window. */
bool mt_wg_replay_check(struct mt_wg_replay *r, uint64_t counter, uint64_t limit);

#endif
