/* The timer state machine, following wireguard-go's timers.go: each event arms or stops a
 * deadline; poll fires what expired. Pure: no clock, no randomness, no I/O here. */
#include "wg/timers.h"

#include <string.h>

void mt_wg_timers_init(struct mt_wg_timers *t, unsigned persistent_keepalive_s)
{
    memset(t, 0, sizeof(*t));
    t->persistent_ns = (uint64_t)persistent_keepalive_s * MT_WG_SEC;
}

void mt_wg_timers_data_sent(struct mt_wg_timers *t, uint64_t now, uint64_t jitter)
{
    /* Sent data and heard nothing back for a while: the peer may have lost our keys. */
    if (!t->new_handshake_at)
        t->new_handshake_at = now + MT_WG_KEEPALIVE_TIMEOUT + MT_WG_REKEY_TIMEOUT + jitter;
}

void mt_wg_timers_data_received(struct mt_wg_timers *t, uint64_t now)
{
    /* Received data and have nothing to say: answer with a keepalive so it knows we live. */
    if (!t->send_keepalive_at)
        t->send_keepalive_at = now + MT_WG_KEEPALIVE_TIMEOUT;
    else
        t->need_another_keepalive = true;
}

void mt_wg_timers_any_sent(struct mt_wg_timers *t, uint64_t now)
{
    t->send_keepalive_at = 0;
}

void mt_wg_timers_any_received(struct mt_wg_timers *t, uint64_t now)
{
    t->new_handshake_at = 0;
}

void mt_wg_timers_traversal(struct mt_wg_timers *t, uint64_t now)
{
    if (t->persistent_ns)
        t->persistent_at = now + t->persistent_ns;
}

void mt_wg_timers_handshake_initiated(struct mt_wg_timers *t, uint64_t now, uint64_t jitter)
{
    t->last_initiation_ns = now;
    t->retransmit_at = now + MT_WG_REKEY_TIMEOUT + jitter;
}

void mt_wg_timers_handshake_complete(struct mt_wg_timers *t, uint64_t now)
{
    t->retransmit_at = 0;
    t->handshake_tries = 0;
    t->last_handshake_ns = now;
}

void mt_wg_timers_session_derived(struct mt_wg_timers *t, uint64_t now)
{
    t->zero_keys_at = now + 3 * MT_WG_REJECT_AFTER_TIME;
}

bool mt_wg_timers_may_initiate(const struct mt_wg_timers *t, uint64_t now)
{
    return !t->last_initiation_ns || now - t->last_initiation_ns >= MT_WG_REKEY_TIMEOUT;
}

static bool due(uint64_t *deadline, uint64_t now)
{
    if (!*deadline || now < *deadline)
        return false;
    *deadline = 0;
    return true;
}

static void earliest(uint64_t *next, uint64_t deadline)
{
    if (deadline && (!*next || deadline < *next))
        *next = deadline;
}

unsigned mt_wg_timers_poll(struct mt_wg_timers *t, uint64_t now, uint64_t *next)
{
    unsigned act = 0;
    if (due(&t->retransmit_at, now)) {
        if (t->handshake_tries >= MT_WG_MAX_HANDSHAKE_TRIES) {
            /* REKEY_ATTEMPT_TIME spent: stop, and forget the keys later if nothing comes. */
            act |= MT_WG_DO_GIVE_UP;
            t->send_keepalive_at = 0;
            t->handshake_tries = 0;
            if (!t->zero_keys_at)
                t->zero_keys_at = now + 3 * MT_WG_REJECT_AFTER_TIME;
        } else {
            t->handshake_tries++;
            act |= MT_WG_DO_INITIATE; /* the caller sends it and reports handshake_initiated */
        }
    }
    if (due(&t->send_keepalive_at, now)) {
        act |= MT_WG_DO_KEEPALIVE;
        if (t->need_another_keepalive) {
            t->need_another_keepalive = false;
            t->send_keepalive_at = now + MT_WG_KEEPALIVE_TIMEOUT;
        }
    }
    if (due(&t->new_handshake_at, now))
        act |= MT_WG_DO_INITIATE;
    if (due(&t->zero_keys_at, now))
        act |= MT_WG_DO_ZERO_KEYS;
    if (due(&t->persistent_at, now))
        act |= MT_WG_DO_KEEPALIVE;
    *next = 0;
    earliest(next, t->retransmit_at);
    earliest(next, t->send_keepalive_at);
    earliest(next, t->new_handshake_at);
    earliest(next, t->zero_keys_at);
    earliest(next, t->persistent_at);
    return act;
}

bool mt_wg_rekey_on_send(const struct mt_wg_keypair *kp, uint64_t now)
{
    return kp->send_counter > MT_WG_REKEY_AFTER_MESSAGES ||
           (kp->initiator && now - kp->birth_ns > MT_WG_REKEY_AFTER_TIME);
}

bool mt_wg_rekey_on_receive(const struct mt_wg_keypair *kp, uint64_t now)
{
    return kp->initiator && now - kp->birth_ns > MT_WG_REJECT_AFTER_TIME - MT_WG_KEEPALIVE_TIMEOUT -
                                                     MT_WG_REKEY_TIMEOUT;
}

bool mt_wg_key_expired(const struct mt_wg_keypair *kp, uint64_t now)
{
    return now - kp->birth_ns >= MT_WG_REJECT_AFTER_TIME ||
           kp->send_counter >= MT_WG_REJECT_AFTER_MESSAGES;
}
