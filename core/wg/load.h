/* Whether the handshake path is under load: more handshake messages in one second than a
 * limit puts it under load for the next second, during which initiators must prove their
 * source address with mac2 (a cookie) before any Diffie-Hellman is spent on them. Pure: the
 * caller passes a monotonic clock in nanoseconds. */
#ifndef MOONTUN_WG_LOAD_H
#define MOONTUN_WG_LOAD_H

#include <stdbool.h>
#include <stdint.h>

struct mt_wg_load {
    uint64_t window_start; /* when the current one-second window began */
    unsigned count;        /* handshake messages in it */
    uint64_t loaded_until; /* under load before this time */
};

void mt_wg_load_init(struct mt_wg_load *l);
/* Counts one handshake message received at now. */
void mt_wg_load_count(struct mt_wg_load *l, uint64_t now, unsigned limit);
bool mt_wg_load_under(const struct mt_wg_load *l, uint64_t now);

#endif
