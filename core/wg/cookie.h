/* mac1, mac2 and cookie replies (message 3): what lets a responder under load make an
 * initiator prove it owns its source address before any Diffie-Hellman is spent on it. The
 * checker is ours (messages to us); a generator per peer stamps what we send it. */
#ifndef MOONTUN_WG_COOKIE_H
#define MOONTUN_WG_COOKIE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "wg/crypto.h"
#include "wg/wire.h"

/* A cookie, and the secret that makes cookies, live two minutes. */
#define MT_WG_COOKIE_REFRESH_NS (120ull * 1000000000ull)

struct mt_wg_cookie_checker {
    uint8_t mac1_key[MT_WG_HASH_LEN];   /* HASH("mac1----" || our public key) */
    uint8_t cookie_key[MT_WG_HASH_LEN]; /* HASH("cookie--" || our public key) */
    uint8_t secret[MT_WG_KEY_LEN];      /* Rm: changed every two minutes */
    uint64_t secret_ns;                 /* when it was made (0: never) */
};

struct mt_wg_cookie_gen {
    uint8_t mac1_key[MT_WG_HASH_LEN]; /* from the peer's public key */
    uint8_t cookie_key[MT_WG_HASH_LEN];
    uint8_t cookie[MT_WG_MAC_LEN];
    uint64_t cookie_ns; /* when it came (0: no cookie) */
    uint8_t last_mac1[MT_WG_MAC_LEN];
    bool have_last_mac1; /* a cookie reply is only taken for the last message we sent */
};

int mt_wg_cookie_checker_init(struct mt_wg_cookie_checker *c, const uint8_t pub[MT_WG_KEY_LEN]);
/* msg is a whole message 1 or 2 (len 148 or 92; anything else is false). */
bool mt_wg_cookie_check_mac1(const struct mt_wg_cookie_checker *c, const uint8_t *msg, size_t len);
/* src: the sender's address bytes (IP then port), as the transport sees it. */
bool mt_wg_cookie_check_mac2(const struct mt_wg_cookie_checker *c, const uint8_t *msg, size_t len,
                             const uint8_t *src, size_t srclen, uint64_t now);
/* Writes the cookie reply to msg (whose mac1 was valid) for src; renews the secret when it is
 * two minutes old. */
int mt_wg_cookie_create_reply(struct mt_wg_cookie_checker *c, const uint8_t *msg, size_t len,
                              const uint8_t *src, size_t srclen, uint64_t now,
                              uint8_t out[MT_WG_COOKIE_LEN]);

int mt_wg_cookie_gen_init(struct mt_wg_cookie_gen *g, const uint8_t peer_pub[MT_WG_KEY_LEN]);
/* Fills mac1 and mac2 (zero without a fresh cookie) of message 1 or 2 about to be sent. */
int mt_wg_cookie_add_macs(struct mt_wg_cookie_gen *g, uint8_t *msg, size_t len, uint64_t now);
/* Takes a cookie reply: -EBADMSG when it is not one, not for our last message, or forged. The
 * caller finds g by the reply's receiver index. */
int mt_wg_cookie_consume_reply(struct mt_wg_cookie_gen *g, const uint8_t *msg, size_t len,
                               uint64_t now);

#endif
