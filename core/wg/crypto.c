/* WireGuard's primitives through OpenSSL 3 libcrypto (X25519, ChaCha20-Poly1305, BLAKE2s,
 * HMAC-BLAKE2s, keyed BLAKE2s-128) and libsodium (XChaCha20-Poly1305, which OpenSSL lacks).
 * Contexts are fetched once and reused so a data packet allocates nothing. */
#include "wg/crypto.h"

#include <errno.h>
#include <limits.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/rand.h>
#include <sodium.h>

#include "moontun/log.h"

static struct {
    bool ready, failed; /* failed: said once, not on every packet */
    EVP_MD *blake2s;
    EVP_MD_CTX *md;
    EVP_MAC *hmac_alg, *b2mac_alg;
    EVP_MAC_CTX *hmac, *b2mac;
    EVP_CIPHER *chapoly;
    EVP_CIPHER_CTX *cipher;
} C;

void mt_wg_crypto_fini(void)
{
    EVP_CIPHER_CTX_free(C.cipher);
    EVP_CIPHER_free(C.chapoly);
    EVP_MAC_CTX_free(C.b2mac);
    EVP_MAC_CTX_free(C.hmac);
    EVP_MAC_free(C.b2mac_alg);
    EVP_MAC_free(C.hmac_alg);
    EVP_MD_CTX_free(C.md);
    EVP_MD_free(C.blake2s);
    memset(&C, 0, sizeof(C));
}

int mt_wg_crypto_init(void)
{
    if (C.ready)
        return 0;
    if (C.failed)
        return -ENOSYS;
    char digest[] = "BLAKE2S-256";
    size_t macsize = MT_WG_MAC_LEN;
    OSSL_PARAM hp[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                       OSSL_PARAM_construct_end()};
    OSSL_PARAM bp[] = {OSSL_PARAM_construct_size_t(OSSL_MAC_PARAM_SIZE, &macsize),
                       OSSL_PARAM_construct_end()};
    C.blake2s = EVP_MD_fetch(NULL, "BLAKE2S-256", NULL);
    C.md = EVP_MD_CTX_new();
    C.hmac_alg = EVP_MAC_fetch(NULL, "HMAC", NULL);
    C.b2mac_alg = EVP_MAC_fetch(NULL, "BLAKE2SMAC", NULL);
    C.hmac = C.hmac_alg ? EVP_MAC_CTX_new(C.hmac_alg) : NULL;
    C.b2mac = C.b2mac_alg ? EVP_MAC_CTX_new(C.b2mac_alg) : NULL;
    C.chapoly = EVP_CIPHER_fetch(NULL, "ChaCha20-Poly1305", NULL);
    C.cipher = EVP_CIPHER_CTX_new();
    if (!C.blake2s || !C.md || !C.hmac || !C.b2mac || !C.chapoly || !C.cipher ||
        !EVP_MAC_CTX_set_params(C.hmac, hp) || !EVP_MAC_CTX_set_params(C.b2mac, bp) ||
        sodium_init() < 0) {
        mt_error("wireguard: OpenSSL 3 (BLAKE2s, HMAC, BLAKE2SMAC, ChaCha20-Poly1305) or "
                 "libsodium is not usable");
        mt_wg_crypto_fini();
        C.failed = true;
        return -ENOSYS;
    }
    C.ready = true;
    return 0;
}

#define NEED_INIT()                                                                                \
    do {                                                                                           \
        int rc_ = mt_wg_crypto_init();                                                             \
        if (rc_ < 0)                                                                               \
            return rc_;                                                                            \
    } while (0)

bool mt_wg_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void mt_wg_wipe(void *p, size_t n)
{
    OPENSSL_cleanse(p, n);
}

int mt_wg_random(void *buf, size_t n)
{
    if (n > INT_MAX || RAND_priv_bytes(buf, (int)n) != 1)
        return -EIO;
    return 0;
}

void mt_wg_clamp(uint8_t key[MT_WG_KEY_LEN])
{
    key[0] &= 248;
    key[31] = (key[31] & 127) | 64;
}

int mt_wg_genkey(uint8_t priv[MT_WG_KEY_LEN])
{
    int rc = mt_wg_random(priv, MT_WG_KEY_LEN);
    if (rc == 0)
        mt_wg_clamp(priv);
    return rc;
}

int mt_wg_pubkey(uint8_t pub[MT_WG_KEY_LEN], const uint8_t priv[MT_WG_KEY_LEN])
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, MT_WG_KEY_LEN);
    size_t len = MT_WG_KEY_LEN;
    int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == MT_WG_KEY_LEN;
    EVP_PKEY_free(k); /* OpenSSL cleanses the private key it copied */
    return ok ? 0 : -EIO;
}

int mt_wg_dh(uint8_t out[MT_WG_KEY_LEN], const uint8_t priv[MT_WG_KEY_LEN],
             const uint8_t pub[MT_WG_KEY_LEN])
{
    static const uint8_t zero[MT_WG_KEY_LEN];
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, MT_WG_KEY_LEN);
    EVP_PKEY *p = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, pub, MT_WG_KEY_LEN);
    EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL) : NULL;
    size_t len = MT_WG_KEY_LEN;
    /* OpenSSL itself fails the derivation when the result is all zero; the check below says
     * so for any library. */
    int ok = ctx && p && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, p) == 1 &&
             EVP_PKEY_derive(ctx, out, &len) == 1 && len == MT_WG_KEY_LEN;
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(p);
    EVP_PKEY_free(k);
    if (!ok || mt_wg_equal(out, zero, MT_WG_KEY_LEN)) {
        mt_wg_wipe(out, MT_WG_KEY_LEN);
        return -EINVAL;
    }
    return 0;
}

int mt_wg_hash(uint8_t out[MT_WG_HASH_LEN], const void *a, size_t alen, const void *b, size_t blen)
{
    NEED_INIT();
    unsigned int len = 0;
    if (EVP_DigestInit_ex2(C.md, C.blake2s, NULL) != 1 || EVP_DigestUpdate(C.md, a, alen) != 1 ||
        (blen && EVP_DigestUpdate(C.md, b, blen) != 1) ||
        EVP_DigestFinal_ex(C.md, out, &len) != 1 || len != MT_WG_HASH_LEN)
        return -EIO;
    return 0;
}

static int mac_run(EVP_MAC_CTX *ctx, uint8_t *out, size_t outlen, const uint8_t *key, size_t keylen,
                   const void *in, size_t n)
{
    size_t len = 0;
    if (EVP_MAC_init(ctx, key, keylen, NULL) != 1 || EVP_MAC_update(ctx, in, n) != 1 ||
        EVP_MAC_final(ctx, out, &len, outlen) != 1 || len != outlen)
        return -EIO;
    return 0;
}

int mt_wg_hmac(uint8_t out[MT_WG_HASH_LEN], const uint8_t *key, size_t keylen, const void *in,
               size_t n)
{
    NEED_INIT();
    return mac_run(C.hmac, out, MT_WG_HASH_LEN, key, keylen, in, n);
}

int mt_wg_mac(uint8_t out[MT_WG_MAC_LEN], const uint8_t *key, size_t keylen, const void *in,
              size_t n)
{
    NEED_INIT();
    if (keylen < 1 || keylen > MT_WG_KEY_LEN)
        return -EINVAL;
    return mac_run(C.b2mac, out, MT_WG_MAC_LEN, key, keylen, in, n);
}

int mt_wg_kdf(uint8_t *out1, uint8_t *out2, uint8_t *out3, const uint8_t ck[MT_WG_HASH_LEN],
              const void *in, size_t n)
{
    uint8_t prk[MT_WG_HASH_LEN], t[MT_WG_HASH_LEN + 1];
    int rc = mt_wg_hmac(prk, ck, MT_WG_HASH_LEN, in, n);
    t[0] = 1;
    if (rc == 0)
        rc = mt_wg_hmac(t, prk, sizeof(prk), t, 1);
    if (rc == 0 && out2) {
        memcpy(out1, t, MT_WG_HASH_LEN);
        t[MT_WG_HASH_LEN] = 2;
        rc = mt_wg_hmac(t, prk, sizeof(prk), t, MT_WG_HASH_LEN + 1);
        if (rc == 0 && out3) {
            memcpy(out2, t, MT_WG_HASH_LEN);
            t[MT_WG_HASH_LEN] = 3;
            rc = mt_wg_hmac(out3, prk, sizeof(prk), t, MT_WG_HASH_LEN + 1);
        } else if (rc == 0) {
            memcpy(out2, t, MT_WG_HASH_LEN);
        }
    } else if (rc == 0) {
        memcpy(out1, t, MT_WG_HASH_LEN);
    }
    mt_wg_wipe(prk, sizeof(prk));
    mt_wg_wipe(t, sizeof(t));
    return rc;
}

/* The cipher for EVP_*Init_ex2: only the first time. Naming it again makes OpenSSL reset the
 * context, which frees and allocates its state on every packet; NULL keeps it and sets the new
 * key and nonce. */
static const EVP_CIPHER *cipher_once(void)
{
    return EVP_CIPHER_CTX_get0_cipher(C.cipher) ? NULL : C.chapoly;
}

int mt_wg_aead_seal_nonce(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                          const uint8_t nonce[MT_WG_NONCE_LEN], const uint8_t *pt, size_t n,
                          const uint8_t *ad, size_t adlen)
{
    NEED_INIT();
    int l1 = 0, l2 = 0, la = 0;
    if (n > INT_MAX - MT_WG_TAG_LEN || adlen > INT_MAX)
        return -EMSGSIZE;
    if (EVP_EncryptInit_ex2(C.cipher, cipher_once(), key, nonce, NULL) != 1 ||
        (adlen && EVP_EncryptUpdate(C.cipher, NULL, &la, ad, (int)adlen) != 1) ||
        (n && EVP_EncryptUpdate(C.cipher, out, &l1, pt, (int)n) != 1) ||
        EVP_EncryptFinal_ex(C.cipher, out + l1, &l2) != 1 || (size_t)(l1 + l2) != n ||
        EVP_CIPHER_CTX_ctrl(C.cipher, EVP_CTRL_AEAD_GET_TAG, MT_WG_TAG_LEN, out + n) != 1)
        return -EIO;
    return 0;
}

int mt_wg_aead_open_nonce(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                          const uint8_t nonce[MT_WG_NONCE_LEN], const uint8_t *ct, size_t n,
                          const uint8_t *ad, size_t adlen)
{
    NEED_INIT();
    int l1 = 0, l2 = 0, la = 0;
    /* A liar sends fewer bytes than a tag. */
    if (n < MT_WG_TAG_LEN)
        return -EBADMSG;
    if (n > INT_MAX || adlen > INT_MAX)
        return -EMSGSIZE;
    size_t m = n - MT_WG_TAG_LEN;
    uint8_t tag[MT_WG_TAG_LEN];
    memcpy(tag, ct + m, sizeof(tag)); /* out may be ct: keep the tag before it is overwritten */
    if (EVP_DecryptInit_ex2(C.cipher, cipher_once(), key, nonce, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(C.cipher, EVP_CTRL_AEAD_SET_TAG, MT_WG_TAG_LEN, tag) != 1 ||
        (adlen && EVP_DecryptUpdate(C.cipher, NULL, &la, ad, (int)adlen) != 1) ||
        (m && EVP_DecryptUpdate(C.cipher, out, &l1, ct, (int)m) != 1))
        return -EIO;
    if (EVP_DecryptFinal_ex(C.cipher, out + l1, &l2) != 1)
        return -EBADMSG;
    return 0;
}

static void counter_nonce(uint8_t nonce[MT_WG_NONCE_LEN], uint64_t counter)
{
    memset(nonce, 0, 4);
    for (int i = 0; i < 8; i++)
        nonce[4 + i] = (uint8_t)(counter >> (8 * i));
}

int mt_wg_aead_seal(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN], uint64_t counter,
                    const uint8_t *pt, size_t n, const uint8_t *ad, size_t adlen)
{
    uint8_t nonce[MT_WG_NONCE_LEN];
    counter_nonce(nonce, counter);
    return mt_wg_aead_seal_nonce(out, key, nonce, pt, n, ad, adlen);
}

int mt_wg_aead_open(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN], uint64_t counter,
                    const uint8_t *ct, size_t n, const uint8_t *ad, size_t adlen)
{
    uint8_t nonce[MT_WG_NONCE_LEN];
    counter_nonce(nonce, counter);
    return mt_wg_aead_open_nonce(out, key, nonce, ct, n, ad, adlen);
}

int mt_wg_xaead_seal(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                     const uint8_t nonce[MT_WG_XNONCE_LEN], const uint8_t *pt, size_t n,
                     const uint8_t *ad, size_t adlen)
{
    NEED_INIT();
    unsigned long long clen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_encrypt(out, &clen, pt, n, ad, adlen, NULL, nonce,
                                                   key) != 0 ||
        clen != n + MT_WG_TAG_LEN)
        return -EIO;
    return 0;
}

int mt_wg_xaead_open(uint8_t *out, const uint8_t key[MT_WG_KEY_LEN],
                     const uint8_t nonce[MT_WG_XNONCE_LEN], const uint8_t *ct, size_t n,
                     const uint8_t *ad, size_t adlen)
{
    NEED_INIT();
    unsigned long long mlen = 0;
    /* A liar sends fewer bytes than a tag. */
    if (n < MT_WG_TAG_LEN)
        return -EBADMSG;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(out, &mlen, NULL, ct, n, ad, adlen, nonce,
                                                   key) != 0)
        return -EBADMSG;
    return 0;
}
