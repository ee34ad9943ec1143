/* The Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s handshake exactly as WireGuard runs it: message 1
 * (initiation), message 2 (response), TAI64N timestamps that must grow, and the transport keys
 * derived at the end. mac1/mac2 are cookie.c's; sessions, indices tables and timers are the
 * caller's. */
#ifndef MOONTUN_WG_NOISE_H
#define MOONTUN_WG_NOISE_H

#include <stdbool.h>
#include <stdint.h>

#include "wg/crypto.h"
#include "wg/replay.h"
#include "wg/wire.h"

/* An initiation consumed less than this after the previous one from the same peer is a flood
 * (wireguard-go: 50 per second). */
#define MT_WG_INITIATION_RATE_NS (1000000000ull / 50)

struct mt_wg_identity {
    uint8_t priv[MT_WG_KEY_LEN], pub[MT_WG_KEY_LEN];
};

enum mt_wg_hs_state {
    MT_WG_HS_NONE,
    MT_WG_HS_INIT_SENT,     /* we are the initiator, waiting for the response */
    MT_WG_HS_INIT_CONSUMED, /* we are the responder, a response may be created */
    MT_WG_HS_RESP_SENT,     /* responder: keys may be derived */
    MT_WG_HS_RESP_CONSUMED, /* initiator: keys may be derived */
};

struct mt_wg_handshake {
    enum mt_wg_hs_state state;
    uint8_t hash[MT_WG_HASH_LEN], chain[MT_WG_HASH_LEN];
    uint8_t eph_priv[MT_WG_KEY_LEN], remote_eph[MT_WG_KEY_LEN];
    uint32_t local_index, remote_index;
    uint8_t last_timestamp[MT_WG_TIMESTAMP_LEN]; /* the greatest accepted from this peer */
    uint64_t last_initiation_ns;                 /* when it was accepted (0: never) */
};

/* One remote peer as the handshake knows it. */
struct mt_wg_noise_peer {
    uint8_t pub[MT_WG_KEY_LEN];
    uint8_t psk[MT_WG_KEY_LEN]; /* all zero without a preshared key, as in WireGuard */
    uint8_t ss[MT_WG_KEY_LEN];  /* DH(our static, its static), computed once */
    struct mt_wg_handshake hs;
};

/* The keys of one session (a "keypair" in wireguard-go). */
struct mt_wg_keypair {
    uint8_t send[MT_WG_KEY_LEN], recv[MT_WG_KEY_LEN];
    uint32_t local_index, remote_index;
    uint64_t send_counter; /* the next counter to send */
    uint64_t birth_ns;     /* when it was derived */
    bool initiator;
    struct mt_wg_replay replay;
};

int mt_wg_identity_init(struct mt_wg_identity *id, const uint8_t priv[MT_WG_KEY_LEN]);
/* psk NULL: none. -EINVAL when DH with that public key is all zero (a low-order point). */
int mt_wg_noise_peer_init(struct mt_wg_noise_peer *p, const struct mt_wg_identity *id,
                          const uint8_t pub[MT_WG_KEY_LEN], const uint8_t *psk);
/* Wipes every secret of the peer, handshake and keys alike. */
void mt_wg_noise_peer_wipe(struct mt_wg_noise_peer *p);

/* TAI64N of a wall-clock time (seconds, nanoseconds since 1970), the nanoseconds rounded down
 * to 2^24 as wireguard-go does, so the timestamp does not fingerprint the clock. */
void mt_wg_tai64n(uint8_t out[MT_WG_TIMESTAMP_LEN], int64_t sec, long nsec);

/* Writes message 1 to msg (mac1/mac2 zero: add them with cookie.c). */
int mt_wg_noise_create_initiation(const struct mt_wg_identity *id, struct mt_wg_noise_peer *p,
                                  uint32_t local_index,
                                  const uint8_t timestamp[MT_WG_TIMESTAMP_LEN],
                                  uint8_t msg[MT_WG_INITIATION_LEN]);

/* Finds the peer of a decrypted static key, NULL when unknown. */
typedef struct mt_wg_noise_peer *(*mt_wg_peer_by_key)(void *ctx, const uint8_t pub[MT_WG_KEY_LEN]);
/* Finds the peer whose handshake has this local index, NULL when none. */
typedef struct mt_wg_noise_peer *(*mt_wg_peer_by_index)(void *ctx, uint32_t local_index);

/* Consumes message 1 (mac1 already checked). On success *peer is the initiator and its
 * handshake is ready for a response. Errors: -EBADMSG (size, type, authentication), -ENOENT
 * (unknown static key), -EALREADY (timestamp not newer: a replay), -EAGAIN (flood: too soon
 * after the last one). Nothing of the peer changes on error. now: a monotonic clock in ns. */
int mt_wg_noise_consume_initiation(const struct mt_wg_identity *id, const uint8_t *msg, size_t len,
                                   uint64_t now, mt_wg_peer_by_key lookup, void *ctx,
                                   struct mt_wg_noise_peer **peer);
/* Writes message 2 for a consumed initiation (macs zero). */
int mt_wg_noise_create_response(struct mt_wg_noise_peer *p, uint32_t local_index,
                                uint8_t msg[MT_WG_RESPONSE_LEN]);
/* Consumes message 2 (mac1 already checked). Errors: -EBADMSG, -ENOENT (no handshake waits
 * with that index). */
int mt_wg_noise_consume_response(const struct mt_wg_identity *id, const uint8_t *msg, size_t len,
                                 mt_wg_peer_by_index lookup, void *ctx,
                                 struct mt_wg_noise_peer **peer);
/* After a response was sent or consumed: the transport keys; the handshake state is wiped.
 * -EINVAL when the handshake is not at that point. */
int mt_wg_noise_derive(struct mt_wg_noise_peer *p, uint64_t now, struct mt_wg_keypair *kp);

#endif
