/* WireGuard's timers (whitepaper 6) as pure functions of a clock the caller passes: events go
 * in (data sent, data received, handshake done, ...), and mt_wg_timers_poll says what is due
 * (send an initiation, a keepalive, wipe the keys, give up). No event loop inside: the
 * transport arms one timer at the deadline poll returns. Times are monotonic nanoseconds. */
#ifndef MOONTUN_WG_TIMERS_H
#define MOONTUN_WG_TIMERS_H

#include <stdbool.h>
#include <stdint.h>

#include "wg/noise.h"

#define MT_WG_SEC                  1000000000ull
#define MT_WG_REKEY_AFTER_MESSAGES (UINT64_C(1) << 60)
#define MT_WG_REKEY_AFTER_TIME     (120 * MT_WG_SEC)
#define MT_WG_REJECT_AFTER_TIME    (180 * MT_WG_SEC)
#define MT_WG_REKEY_ATTEMPT_TIME   (90 * MT_WG_SEC)
#define MT_WG_REKEY_TIMEOUT        (5 * MT_WG_SEC)
#define MT_WG_KEEPALIVE_TIMEOUT    (10 * MT_WG_SEC)
#define MT_WG_REKEY_JITTER_MAX     (MT_WG_SEC / 3) /* added to REKEY_TIMEOUT, at most 333 ms */
#define MT_WG_MAX_HANDSHAKE_TRIES  (MT_WG_REKEY_ATTEMPT_TIME / MT_WG_REKEY_TIMEOUT)

/* What poll asks the caller to do (a bit set). */
enum {
    MT_WG_DO_INITIATE = 1,  /* send a handshake initiation (a retry or a new one) */
    MT_WG_DO_KEEPALIVE = 2, /* send a keepalive (an empty data message) */
    MT_WG_DO_ZERO_KEYS = 4, /* wipe every key of the peer: nothing was heard for 9 minutes */
    MT_WG_DO_GIVE_UP = 8,   /* handshake attempts exhausted: drop the queued packets */
};

struct mt_wg_timers {
    /* Deadlines, 0 when not armed. */
    uint64_t retransmit_at, send_keepalive_at, new_handshake_at, zero_keys_at, persistent_at;
    uint64_t last_initiation_ns; /* when an initiation was last sent (0: never) */
    uint64_t last_handshake_ns;  /* when the last handshake completed (0: never) */
    unsigned handshake_tries;
    bool need_another_keepalive;
    uint64_t persistent_ns; /* PersistentKeepalive interval, 0: off */
};

void mt_wg_timers_init(struct mt_wg_timers *t, unsigned persistent_keepalive_s);

/* Events. jitter: a random value in [0, MT_WG_REKEY_JITTER_MAX) from the caller. */
void mt_wg_timers_data_sent(struct mt_wg_timers *t, uint64_t now, uint64_t jitter);
void mt_wg_timers_data_received(struct mt_wg_timers *t, uint64_t now);
void mt_wg_timers_any_sent(struct mt_wg_timers *t, uint64_t now); /* data, keepalive, handshake */
void mt_wg_timers_any_received(struct mt_wg_timers *t, uint64_t now); /* authenticated only */
/* Any authenticated packet in either direction (re-arms the persistent keepalive). */
void mt_wg_timers_traversal(struct mt_wg_timers *t, uint64_t now);
void mt_wg_timers_handshake_initiated(struct mt_wg_timers *t, uint64_t now, uint64_t jitter);
void mt_wg_timers_handshake_complete(struct mt_wg_timers *t, uint64_t now);
void mt_wg_timers_session_derived(struct mt_wg_timers *t, uint64_t now);

/* True when an initiation may be sent now: none in the last REKEY_TIMEOUT. */
bool mt_wg_timers_may_initiate(const struct mt_wg_timers *t, uint64_t now);
/* Fires every expired timer; returns the MT_WG_DO_ bits and sets *next to the next deadline
 * (0: none armed). */
unsigned mt_wg_timers_poll(struct mt_wg_timers *t, uint64_t now, uint64_t *next);

/* Key age rules on the current keypair. */
/* Sending: the initiator's key is older than REKEY_AFTER_TIME or has sent
 * REKEY_AFTER_MESSAGES: start a new handshake. */
bool mt_wg_rekey_on_send(const struct mt_wg_keypair *kp, uint64_t now);
/* Receiving: the initiator's key is within KEEPALIVE + REKEY_TIMEOUT of REJECT_AFTER_TIME. */
bool mt_wg_rekey_on_receive(const struct mt_wg_keypair *kp, uint64_t now);
/* The key must not be used any more: older than REJECT_AFTER_TIME or out of counters. */
bool mt_wg_key_expired(const struct mt_wg_keypair *kp, uint64_t now);

#endif
