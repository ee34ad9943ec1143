/* Cookies (whitepaper 5.4.7): mac1 = MAC(HASH("mac1----" || Spub), msg up to mac1);
 * cookie = MAC(Rm, source address); mac2 = MAC(cookie, msg up to mac2); the reply carries the
 * cookie under XAEAD(HASH("cookie--" || Spub), nonce, cookie, mac1 of the message). */
#include "wg/cookie.h"

#include <errno.h>
#include <string.h>

static const char LABEL_MAC1[] = "mac1----";
static const char LABEL_COOKIE[] = "cookie--";

static int keys(uint8_t mac1_key[MT_WG_HASH_LEN], uint8_t cookie_key[MT_WG_HASH_LEN],
                const uint8_t pub[MT_WG_KEY_LEN])
{
    int rc = mt_wg_hash(mac1_key, LABEL_MAC1, sizeof(LABEL_MAC1) - 1, pub, MT_WG_KEY_LEN);
    if (rc == 0)
        rc = mt_wg_hash(cookie_key, LABEL_COOKIE, sizeof(LABEL_COOKIE) - 1, pub, MT_WG_KEY_LEN);
    return rc;
}

static bool handshake_len(size_t len)
{
    return len == MT_WG_INITIATION_LEN || len == MT_WG_RESPONSE_LEN;
}

int mt_wg_cookie_checker_init(struct mt_wg_cookie_checker *c, const uint8_t pub[MT_WG_KEY_LEN])
{
    memset(c, 0, sizeof(*c));
    return keys(c->mac1_key, c->cookie_key, pub);
}

bool mt_wg_cookie_check_mac1(const struct mt_wg_cookie_checker *c, const uint8_t *msg, size_t len)
{
    uint8_t mac[MT_WG_MAC_LEN];
    if (!handshake_len(len))
        return false;
    size_t at = len - MT_WG_MAC1_FROM_END;
    return mt_wg_mac(mac, c->mac1_key, MT_WG_HASH_LEN, msg, at) == 0 &&
           mt_wg_equal(mac, msg + at, MT_WG_MAC_LEN);
}

bool mt_wg_cookie_check_mac2(const struct mt_wg_cookie_checker *c, const uint8_t *msg, size_t len,
                             const uint8_t *src, size_t srclen, uint64_t now)
{
    uint8_t cookie[MT_WG_MAC_LEN], mac[MT_WG_MAC_LEN];
    /* A stale secret makes every cookie stale: the next reply brings a new one. */
    if (!handshake_len(len) || !c->secret_ns || now - c->secret_ns > MT_WG_COOKIE_REFRESH_NS)
        return false;
    size_t at = len - MT_WG_MAC2_FROM_END;
    bool ok = mt_wg_mac(cookie, c->secret, MT_WG_KEY_LEN, src, srclen) == 0 &&
              mt_wg_mac(mac, cookie, MT_WG_MAC_LEN, msg, at) == 0 &&
              mt_wg_equal(mac, msg + at, MT_WG_MAC_LEN);
    mt_wg_wipe(cookie, sizeof(cookie));
    return ok;
}

int mt_wg_cookie_create_reply(struct mt_wg_cookie_checker *c, const uint8_t *msg, size_t len,
                              const uint8_t *src, size_t srclen, uint64_t now,
                              uint8_t out[MT_WG_COOKIE_LEN])
{
    uint8_t cookie[MT_WG_MAC_LEN];
    if (!handshake_len(len))
        return -EINVAL;
    int rc = 0;
    if (!c->secret_ns || now - c->secret_ns > MT_WG_COOKIE_REFRESH_NS) {
        rc = mt_wg_random(c->secret, sizeof(c->secret));
        c->secret_ns = now ? now : 1;
    }
    memset(out, 0, MT_WG_COOKIE_LEN);
    mt_wg_put32(out, MT_WG_MSG_COOKIE);
    memcpy(out + MT_WG_OFF_INDEX, msg + MT_WG_OFF_INDEX, 4); /* the sender's index */
    if (rc == 0)
        rc = mt_wg_random(out + MT_WG_OFF_COOKIE_NONCE, MT_WG_XNONCE_LEN);
    if (rc == 0)
        rc = mt_wg_mac(cookie, c->secret, MT_WG_KEY_LEN, src, srclen);
    if (rc == 0)
        rc = mt_wg_xaead_seal(out + MT_WG_OFF_COOKIE_BODY, c->cookie_key,
                              out + MT_WG_OFF_COOKIE_NONCE, cookie, sizeof(cookie),
                              msg + len - MT_WG_MAC1_FROM_END, MT_WG_MAC_LEN);
    mt_wg_wipe(cookie, sizeof(cookie));
    return rc;
}

int mt_wg_cookie_gen_init(struct mt_wg_cookie_gen *g, const uint8_t peer_pub[MT_WG_KEY_LEN])
{
    memset(g, 0, sizeof(*g));
    return keys(g->mac1_key, g->cookie_key, peer_pub);
}

int mt_wg_cookie_add_macs(struct mt_wg_cookie_gen *g, uint8_t *msg, size_t len, uint64_t now)
{
    if (!handshake_len(len))
        return -EINVAL;
    uint8_t *mac1 = msg + len - MT_WG_MAC1_FROM_END, *mac2 = msg + len - MT_WG_MAC2_FROM_END;
    int rc = mt_wg_mac(mac1, g->mac1_key, MT_WG_HASH_LEN, msg, len - MT_WG_MAC1_FROM_END);
    if (rc < 0)
        return rc;
    memcpy(g->last_mac1, mac1, MT_WG_MAC_LEN);
    g->have_last_mac1 = true;
    if (g->cookie_ns && now - g->cookie_ns <= MT_WG_COOKIE_REFRESH_NS)
        return mt_wg_mac(mac2, g->cookie, MT_WG_MAC_LEN, msg, len - MT_WG_MAC2_FROM_END);
    memset(mac2, 0, MT_WG_MAC_LEN);
    return 0;
}

int mt_wg_cookie_consume_reply(struct mt_wg_cookie_gen *g, const uint8_t *msg, size_t len,
                               uint64_t now)
{
    uint8_t cookie[MT_WG_MAC_LEN];
    /* A liar sends another size or type, or a reply nobody asked for. */
    if (len != MT_WG_COOKIE_LEN || mt_wg_msg_type(msg, len) != MT_WG_MSG_COOKIE ||
        !g->have_last_mac1)
        return -EBADMSG;
    if (mt_wg_xaead_open(cookie, g->cookie_key, msg + MT_WG_OFF_COOKIE_NONCE,
                         msg + MT_WG_OFF_COOKIE_BODY, MT_WG_MAC_LEN + MT_WG_TAG_LEN, g->last_mac1,
                         MT_WG_MAC_LEN) < 0)
        return -EBADMSG;
    memcpy(g->cookie, cookie, sizeof(cookie));
    mt_wg_wipe(cookie, sizeof(cookie));
    g->cookie_ns = now ? now : 1;
    g->have_last_mac1 = false;
    return 0;
}
