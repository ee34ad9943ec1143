/* WireGuard's primitives (X25519, ChaCha20-Poly1305, XChaCha20-Poly1305, BLAKE2s, HMAC-BLAKE2s,
 * keyed BLAKE2s-128) on top of OpenSSL 3 libcrypto and libsodium: no cryptography is written
 * here, only the calls. Single-threaded: the contexts are fetched once and reused. */
#ifndef MOONTUN_WG_CRYPTO_H
#define MOONTUN_WG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MT_WG_KEY_LEN    32 /* X25519 keys, symmetric keys, hashes */
#define MT_WG_HASH_LEN   32
#define MT_WG_MAC_LEN    16 /* keyed BLAKE2s-128: mac1, mac2, cookies */
#define MT_WG_TAG_LEN    16 /* Poly1305 */
#define MT_WG_NONCE_LEN  12 /* ChaCha20-Poly1305 (IETF) */
#define MT_WG_XNONCE_LEN 24 /* XChaCha20-Poly1305 */

/* Fetches the algorithms (once; later calls do nothing). Every other function calls it, so an
 * explicit call only makes a missing algorithm fail early. 0 or -ENOSYS. */
int mt_wg_crypto_init(void);
/* Frees what init fetched (for leak checkers at exit). */
void mt_wg_crypto_fini(void);

/* Constant-time equality and wiping that the compiler may not remove. */
bool mt_wg_equal(const void *a, const void *b, size_t n);
void mt_wg_wipe(void *p, size_t n);
int mt_wg_random(void *buf, size_t n);

/* X25519. A private key is clamped as RFC 7748 says; pub is its public key. */
void mt_wg_clamp(uint8_t key[MT_WG_KEY_LEN]);
int mt_wg_genkey(uint8_t priv[MT_WG_KEY_LEN]);
int mt_wg_pubkey(uint8_t pub[MT_WG_KEY_LEN], const uint8_t priv[MT_WG_KEY_LEN]);
/* out = DH(priv, pub); -EINVAL when the result is all zero (a low-order point: the whitepaper
 * requires refusing it). */
int mt_wg_dh(uint8_t out[MT_WG_KEY_LEN], const uint8_t priv[MT_WG_KEY_LEN],
             const uint8_t pub[MT_WG_KEY_LEN]);

/* HASH(a || b) = BLAKE2s-256; b may be NULL with blen 0. */
int mt_wg_hash(uint8_t out[MT_WG_HASH_LEN], const void *a, size_t alen, const void *b, size_t blen);
/* HMAC(key, in) with BLAKE2s-256 (RFC 2104). */
int mt_wg_hmac(uint8_t out[MT_WG_HASH_LEN], const uint8_t *key, size_t keylen, const void *in,
               size_t n);
/* MAC(key, in) = keyed BLAKE2s with a 16-byte output (mac1, mac2, cookies); keylen 1..32. */
int mt_wg_mac(uint8_t out[MT_WG_MAC_LEN], const uint8_t *key, size_t keylen, const void *in,
              size_t n);
/* The Noise KDF: out1 (and out2, out3 when not NULL) from HMAC(HMAC(ck, in), ...). */
int mt_wg_kdf(uint8_t *out1, uint8_t *out2, uint8_t *out3, const uint8_t ck[MT_WG_HASH_LEN],
              const void *in, size_t n);

/* ChaCha20-Poly1305 (RFC 8439). seal writes n bytes of ciphertext then the tag to out (out may
 * be pt: in place); open takes n = ciphertext + tag and writes n - 16 bytes, -EBADMSG when
 * the tag is wrong (out then holds nothing meaningful; the caller drops it). */
int mt_wg_aead_seal_nonce(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                          const uint8_t nonce[MT_WG_NONCE_LEN], const uint8_t *pt, size_t n,
                          const uint8_t *ad, size_t adlen);
int mt_wg_aead_open_nonce(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                          const uint8_t nonce[MT_WG_NONCE_LEN], const uint8_t *ct, size_t n,
                          const uint8_t *ad, size_t adlen);
/* The same with WireGuard's nonce: 32 zero bits then the 64-bit counter, little-endian. */
int mt_wg_aead_seal(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN], uint64_t counter,
                    const uint8_t *pt, size_t n, const uint8_t *ad, size_t adlen);
int mt_wg_aead_open(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN], uint64_t counter,
                    const uint8_t *ct, size_t n, const uint8_t *ad, size_t adlen);
/* XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha), for cookie replies; same conventions. */
int mt_wg_xaead_seal(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                     const uint8_t nonce[MT_WG_XNONCE_LEN], const uint8_t *pt, size_t n,
                     const uint8_t *ad, size_t adlen);
int mt_wg_xaead_open(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                     const uint8_t nonce[MT_WG_XNONCE_LEN], const uint8_t *ct, size_t n,
                     const uint8_t *ad, size_t adlen);

#endif
