/* The handshake load meter (load.h): a count per one-second window, and a second of "under
 * load" once the count passes the limit, so an attacker cannot slip between windows. */
#include "wg/load.h"

#include <string.h>

#define WINDOW_NS 1000000000ull

void mt_wg_load_init(struct mt_wg_load *l)
{
    memset(l, 0, sizeof(*l));
}

void mt_wg_load_count(struct mt_wg_load *l, uint64_t now, unsigned limit)
{
    if (now - l->window_start >= WINDOW_NS) {
        l->window_start = now;
        l->count = 0;
    }
    if (l->count < UINT32_MAX)
        l->count++;
    if (l->count > limit)
        l->loaded_until = now + WINDOW_NS;
}

bool mt_wg_load_under(const struct mt_wg_load *l, uint64_t now)
{
    return now < l->loaded_until;
}
