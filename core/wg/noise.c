/* Noise_IKpsk2 as the WireGuard whitepaper (section 5.4) writes it. Each step works on local
 * copies of the chaining key and hash; the peer's handshake is written only when a message was
 * fully authenticated, so a forged message changes nothing. */
#include "wg/noise.h"

#include <errno.h>
#include <string.h>

static const char CONSTRUCTION[] = "Noise_IKpsk2_25519_ChaChaPoly_BLAKE2s";
static const char IDENTIFIER[] = "WireGuard v1 zx2c4 Jason@zx2c4.com";

/* Ci = HASH(CONSTRUCTION), Hi = HASH(HASH(Ci || IDENTIFIER) || responder's static key). */
static int initial_state(uint8_t chain[MT_WG_HASH_LEN], uint8_t hash[MT_WG_HASH_LEN],
                         const uint8_t responder_pub[MT_WG_KEY_LEN])
{
    int rc = mt_wg_hash(chain, CONSTRUCTION, sizeof(CONSTRUCTION) - 1, NULL, 0);
    if (rc == 0)
        rc = mt_wg_hash(hash, chain, MT_WG_HASH_LEN, IDENTIFIER, sizeof(IDENTIFIER) - 1);
    if (rc == 0)
        rc = mt_wg_hash(hash, hash, MT_WG_HASH_LEN, responder_pub, MT_WG_KEY_LEN);
    return rc;
}

static int mix_hash(uint8_t hash[MT_WG_HASH_LEN], const void *data, size_t n)
{
    return mt_wg_hash(hash, hash, MT_WG_HASH_LEN, data, n);
}

/* chain = KDF1(chain, DH(priv, pub)) or, with key, (chain, key) = KDF2(chain, DH(priv, pub)). */
static int mix_dh(uint8_t chain[MT_WG_HASH_LEN], uint8_t *key, const uint8_t *priv,
                  const uint8_t *pub)
{
    uint8_t dh[MT_WG_KEY_LEN];
    int rc = mt_wg_dh(dh, priv, pub);
    if (rc == 0)
        rc = mt_wg_kdf(chain, key, NULL, chain, dh, sizeof(dh));
    mt_wg_wipe(dh, sizeof(dh));
    return rc;
}

int mt_wg_identity_init(struct mt_wg_identity *id, const uint8_t priv[MT_WG_KEY_LEN])
{
    memcpy(id->priv, priv, MT_WG_KEY_LEN);
    mt_wg_clamp(id->priv);
    return mt_wg_pubkey(id->pub, id->priv);
}

int mt_wg_noise_peer_init(struct mt_wg_noise_peer *p, const struct mt_wg_identity *id,
                          const uint8_t pub[MT_WG_KEY_LEN], const uint8_t *psk)
{
    memset(p, 0, sizeof(*p));
    memcpy(p->pub, pub, MT_WG_KEY_LEN);
    if (psk)
        memcpy(p->psk, psk, MT_WG_KEY_LEN);
    return mt_wg_dh(p->ss, id->priv, pub);
}

void mt_wg_noise_peer_wipe(struct mt_wg_noise_peer *p)
{
    mt_wg_wipe(p, sizeof(*p));
}

static void handshake_clear(struct mt_wg_handshake *hs)
{
    /* The replay state outlives handshakes: keep it. */
    uint8_t ts[MT_WG_TIMESTAMP_LEN];
    uint64_t when = hs->last_initiation_ns;
    memcpy(ts, hs->last_timestamp, sizeof(ts));
    mt_wg_wipe(hs, sizeof(*hs));
    memcpy(hs->last_timestamp, ts, sizeof(ts));
    hs->last_initiation_ns = when;
}

void mt_wg_tai64n(uint8_t out[MT_WG_TIMESTAMP_LEN], int64_t sec, long nsec)
{
    uint64_t s = UINT64_C(0x400000000000000a) + (uint64_t)sec;
    uint32_t ns = (uint32_t)nsec & ~UINT32_C(0xFFFFFF);
    for (int i = 0; i < 8; i++)
        out[i] = (uint8_t)(s >> (56 - 8 * i));
    for (int i = 0; i < 4; i++)
        out[8 + i] = (uint8_t)(ns >> (24 - 8 * i));
}

/* E = DH-Generate(), msg.ephemeral = E.pub, chain = KDF1(chain, E.pub), hash = Hash(hash ||
 * E.pub): the first steps of both handshake messages. */
static int new_ephemeral(struct mt_wg_handshake *hs, uint8_t e[MT_WG_KEY_LEN])
{
    int rc = mt_wg_genkey(hs->eph_priv);
    if (rc == 0)
        rc = mt_wg_pubkey(e, hs->eph_priv);
    if (rc == 0)
        rc = mt_wg_kdf(hs->chain, NULL, NULL, hs->chain, e, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mix_hash(hs->hash, e, MT_WG_KEY_LEN);
    return rc;
}

/* out = AEAD(key, 0, plain, hash), hash = Hash(hash || out). */
static int seal_and_mix(uint8_t hash[MT_WG_HASH_LEN], uint8_t *out, const uint8_t *key,
                        const uint8_t *plain, size_t n)
{
    int rc = mt_wg_aead_seal(out, key, 0, plain, n, hash, MT_WG_HASH_LEN);
    return rc ? rc : mix_hash(hash, out, n + MT_WG_TAG_LEN);
}

/* The end of creating a message: the temporary key wiped, and the handshake either in its
 * new state or cleared when a step failed. */
static int created(struct mt_wg_handshake *hs, uint8_t key[MT_WG_KEY_LEN], int rc,
                   uint32_t local_index, enum mt_wg_hs_state state)
{
    mt_wg_wipe(key, MT_WG_KEY_LEN);
    if (rc < 0) {
        handshake_clear(hs);
        return rc;
    }
    hs->local_index = local_index;
    hs->state = state;
    return 0;
}

int mt_wg_noise_create_initiation(const struct mt_wg_identity *id, struct mt_wg_noise_peer *p,
                                  uint32_t local_index,
                                  const uint8_t timestamp[MT_WG_TIMESTAMP_LEN],
                                  uint8_t msg[MT_WG_INITIATION_LEN])
{
    struct mt_wg_handshake *hs = &p->hs;
    uint8_t key[MT_WG_KEY_LEN], *e = msg + MT_WG_OFF_INIT_E;
    handshake_clear(hs);
    memset(msg, 0, MT_WG_INITIATION_LEN);
    mt_wg_put32(msg, MT_WG_MSG_INITIATION);
    mt_wg_put32(msg + MT_WG_OFF_INDEX, local_index);
    int rc = initial_state(hs->chain, hs->hash, p->pub);
    if (rc == 0)
        rc = new_ephemeral(hs, e);
    if (rc == 0)
        rc = mix_dh(hs->chain, key, hs->eph_priv, p->pub);
    if (rc == 0)
        rc = seal_and_mix(hs->hash, msg + MT_WG_OFF_INIT_S, key, id->pub, MT_WG_KEY_LEN);
    /* (chain, key) = KDF2(chain, DH(Spriv_i, Spub_r)): the precomputed static-static secret */
    if (rc == 0)
        rc = mt_wg_kdf(hs->chain, key, NULL, hs->chain, p->ss, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = seal_and_mix(hs->hash, msg + MT_WG_OFF_INIT_TS, key, timestamp, MT_WG_TIMESTAMP_LEN);
    return created(hs, key, rc, local_index, MT_WG_HS_INIT_SENT);
}

int mt_wg_noise_consume_initiation(const struct mt_wg_identity *id, const uint8_t *msg, size_t len,
                                   uint64_t now, mt_wg_peer_by_key lookup, void *ctx,
                                   struct mt_wg_noise_peer **peer)
{
    uint8_t chain[MT_WG_HASH_LEN], hash[MT_WG_HASH_LEN], key[MT_WG_KEY_LEN];
    uint8_t spub[MT_WG_KEY_LEN], ts[MT_WG_TIMESTAMP_LEN];
    const uint8_t *e = msg + MT_WG_OFF_INIT_E;
    struct mt_wg_noise_peer *p = NULL;
    *peer = NULL;
    /* A liar sends another size or type: only the exact message is parsed. */
    if (len != MT_WG_INITIATION_LEN || mt_wg_msg_type(msg, len) != MT_WG_MSG_INITIATION)
        return -EBADMSG;
    int rc = initial_state(chain, hash, id->pub);
    if (rc == 0)
        rc = mt_wg_kdf(chain, NULL, NULL, chain, e, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mix_hash(hash, e, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mix_dh(chain, key, id->priv, e);
    if (rc == 0)
        rc = mt_wg_aead_open(spub, key, 0, msg + MT_WG_OFF_INIT_S, MT_WG_KEY_LEN + MT_WG_TAG_LEN,
                             hash, MT_WG_HASH_LEN);
    if (rc == 0)
        rc = mix_hash(hash, msg + MT_WG_OFF_INIT_S, MT_WG_KEY_LEN + MT_WG_TAG_LEN);
    if (rc == 0 && !(p = lookup(ctx, spub)))
        rc = -ENOENT;
    if (rc == 0)
        rc = mt_wg_kdf(chain, key, NULL, chain, p->ss, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mt_wg_aead_open(ts, key, 0, msg + MT_WG_OFF_INIT_TS,
                             MT_WG_TIMESTAMP_LEN + MT_WG_TAG_LEN, hash, MT_WG_HASH_LEN);
    if (rc == 0)
        rc = mix_hash(hash, msg + MT_WG_OFF_INIT_TS, MT_WG_TIMESTAMP_LEN + MT_WG_TAG_LEN);
    mt_wg_wipe(key, sizeof(key));
    if (rc == -EINVAL || rc == -EIO)
        rc = -EBADMSG; /* a low-order ephemeral key is a bad message like any other */
    if (rc == 0 && memcmp(ts, p->hs.last_timestamp, sizeof(ts)) <= 0)
        rc = -EALREADY; /* big-endian TAI64N: byte order is time order */
    if (rc == 0 && p->hs.last_initiation_ns &&
        now - p->hs.last_initiation_ns < MT_WG_INITIATION_RATE_NS)
        rc = -EAGAIN;
    if (rc < 0) {
        mt_wg_wipe(chain, sizeof(chain));
        mt_wg_wipe(hash, sizeof(hash));
        return rc;
    }
    struct mt_wg_handshake *hs = &p->hs;
    handshake_clear(hs);
    memcpy(hs->chain, chain, sizeof(chain));
    memcpy(hs->hash, hash, sizeof(hash));
    memcpy(hs->remote_eph, e, MT_WG_KEY_LEN);
    memcpy(hs->last_timestamp, ts, sizeof(ts));
    hs->last_initiation_ns = now;
    hs->remote_index = mt_wg_get32(msg + MT_WG_OFF_INDEX);
    hs->state = MT_WG_HS_INIT_CONSUMED;
    mt_wg_wipe(chain, sizeof(chain));
    mt_wg_wipe(hash, sizeof(hash));
    *peer = p;
    return 0;
}

/* The part of the response both sides compute alike once the DHs are mixed in:
 * (chain, tau, key) = KDF3(chain, psk); hash = HASH(hash || tau). */
static int mix_psk(uint8_t chain[MT_WG_HASH_LEN], uint8_t hash[MT_WG_HASH_LEN],
                   uint8_t key[MT_WG_KEY_LEN], const uint8_t psk[MT_WG_KEY_LEN])
{
    uint8_t tau[MT_WG_HASH_LEN];
    int rc = mt_wg_kdf(chain, tau, key, chain, psk, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mix_hash(hash, tau, sizeof(tau));
    mt_wg_wipe(tau, sizeof(tau));
    return rc;
}

int mt_wg_noise_create_response(struct mt_wg_noise_peer *p, uint32_t local_index,
                                uint8_t msg[MT_WG_RESPONSE_LEN])
{
    struct mt_wg_handshake *hs = &p->hs;
    uint8_t key[MT_WG_KEY_LEN], *e = msg + MT_WG_OFF_RESP_E;
    if (hs->state != MT_WG_HS_INIT_CONSUMED)
        return -EINVAL;
    memset(msg, 0, MT_WG_RESPONSE_LEN);
    mt_wg_put32(msg, MT_WG_MSG_RESPONSE);
    mt_wg_put32(msg + MT_WG_OFF_INDEX, local_index);
    mt_wg_put32(msg + MT_WG_OFF_RECEIVER2, hs->remote_index);
    int rc = new_ephemeral(hs, e);
    if (rc == 0)
        rc = mix_dh(hs->chain, NULL, hs->eph_priv, hs->remote_eph);
    if (rc == 0)
        rc = mix_dh(hs->chain, NULL, hs->eph_priv, p->pub);
    if (rc == 0)
        rc = mix_psk(hs->chain, hs->hash, key, p->psk);
    if (rc == 0)
        rc = seal_and_mix(hs->hash, msg + MT_WG_OFF_RESP_EMPTY, key, NULL, 0);
    return created(hs, key, rc, local_index, MT_WG_HS_RESP_SENT);
}

int mt_wg_noise_consume_response(const struct mt_wg_identity *id, const uint8_t *msg, size_t len,
                                 mt_wg_peer_by_index lookup, void *ctx,
                                 struct mt_wg_noise_peer **peer)
{
    uint8_t chain[MT_WG_HASH_LEN], hash[MT_WG_HASH_LEN], key[MT_WG_KEY_LEN];
    const uint8_t *e = msg + MT_WG_OFF_RESP_E;
    *peer = NULL;
    /* A liar sends another size or type: only the exact message is parsed. */
    if (len != MT_WG_RESPONSE_LEN || mt_wg_msg_type(msg, len) != MT_WG_MSG_RESPONSE)
        return -EBADMSG;
    uint32_t receiver = mt_wg_get32(msg + MT_WG_OFF_RECEIVER2);
    struct mt_wg_noise_peer *p = lookup(ctx, receiver);
    if (!p || p->hs.state != MT_WG_HS_INIT_SENT || p->hs.local_index != receiver)
        return -ENOENT;
    struct mt_wg_handshake *hs = &p->hs;
    memcpy(chain, hs->chain, sizeof(chain));
    memcpy(hash, hs->hash, sizeof(hash));
    int rc = mt_wg_kdf(chain, NULL, NULL, chain, e, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mix_hash(hash, e, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mix_dh(chain, NULL, hs->eph_priv, e);
    if (rc == 0)
        rc = mix_dh(chain, NULL, id->priv, e);
    if (rc == 0)
        rc = mix_psk(chain, hash, key, p->psk);
    uint8_t nothing[1];
    if (rc == 0)
        rc = mt_wg_aead_open(nothing, key, 0, msg + MT_WG_OFF_RESP_EMPTY, MT_WG_TAG_LEN, hash,
                             MT_WG_HASH_LEN);
    if (rc == 0)
        rc = mix_hash(hash, msg + MT_WG_OFF_RESP_EMPTY, MT_WG_TAG_LEN);
    mt_wg_wipe(key, sizeof(key));
    if (rc == 0) {
        memcpy(hs->chain, chain, sizeof(chain));
        memcpy(hs->hash, hash, sizeof(hash));
        mt_wg_wipe(hs->eph_priv, sizeof(hs->eph_priv));
        hs->remote_index = mt_wg_get32(msg + MT_WG_OFF_INDEX);
        hs->state = MT_WG_HS_RESP_CONSUMED;
        *peer = p;
    }
    mt_wg_wipe(chain, sizeof(chain));
    mt_wg_wipe(hash, sizeof(hash));
    return rc == 0 ? 0 : -EBADMSG;
}

int mt_wg_noise_derive(struct mt_wg_noise_peer *p, uint64_t now, struct mt_wg_keypair *kp)
{
    struct mt_wg_handshake *hs = &p->hs;
    bool initiator = hs->state == MT_WG_HS_RESP_CONSUMED;
    if (!initiator && hs->state != MT_WG_HS_RESP_SENT)
        return -EINVAL;
    memset(kp, 0, sizeof(*kp));
    /* (T_send_i, T_recv_i) = KDF2(C, empty); the responder's are the same two, swapped. */
    int rc = initiator ? mt_wg_kdf(kp->send, kp->recv, NULL, hs->chain, NULL, 0)
                       : mt_wg_kdf(kp->recv, kp->send, NULL, hs->chain, NULL, 0);
    kp->local_index = hs->local_index;
    kp->remote_index = hs->remote_index;
    kp->birth_ns = now;
    kp->initiator = initiator;
    mt_wg_replay_init(&kp->replay);
    handshake_clear(hs);
    if (rc < 0)
        mt_wg_wipe(kp, sizeof(*kp));
    return rc;
}
