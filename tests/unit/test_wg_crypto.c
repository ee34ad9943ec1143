/* WireGuard primitives (core/wg/crypto.c) against published vectors: RFC 7748 (X25519),
 * RFC 8439 2.8.2 (ChaCha20-Poly1305), RFC 7693 appendix B and the BLAKE2 reference KAT
 * (BLAKE2s), draft-irtf-cfrg-xchacha-03 A.3.1 (XChaCha20-Poly1305). Keyed BLAKE2s-128 and
 * HMAC-BLAKE2s have no RFC vector: theirs come from Python's hashlib/hmac, an independent
 * implementation (blake2s(bytes(range(64)), digest_size=16, key=bytes(range(32))), ...). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <errno.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/crypto.h>

#include "wg/crypto.h"
#include "wg_hex.h"

static const char LADIES[] = "Ladies and Gentlemen of the class of '99: If I could offer you only "
                             "one tip for the future, sunscreen would be it.";

static void assert_hex(const uint8_t *got, const char *hex)
{
    uint8_t want[256];
    size_t n = unhex(want, hex);
    assert_memory_equal(got, want, n);
}

static void x25519_rfc7748(void **state)
{
    uint8_t k[32], u[32], out[32], priv[32];
    /* 5.2, first vector: the scalar is not clamped; X25519 clamps it. */
    unhex(k, "a546e36bf0527c9d3b16154b82465edd62144c0ac1fc5a18506a2244ba449ac4");
    unhex(u, "e6db6867583030db3594c1a424b15f7c726624ec26b3353b10a903a6d0ab1c4c");
    assert_int_equal(mt_wg_dh(out, k, u), 0);
    assert_hex(out, "c3da55379de9c6908e94ea4df28d084f32eccf03491c71f754b4075577a28552");
    /* 6.1: both public keys and the shared secret both ways. */
    unhex(priv, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
    assert_int_equal(mt_wg_pubkey(out, priv), 0);
    assert_hex(out, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    unhex(u, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    assert_int_equal(mt_wg_dh(out, priv, u), 0);
    assert_hex(out, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
    unhex(priv, "5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
    assert_int_equal(mt_wg_pubkey(out, priv), 0);
    assert_hex(out, "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f");
    unhex(u, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
    assert_int_equal(mt_wg_dh(out, priv, u), 0);
    assert_hex(out, "4a5d9d5ba4ce2de1728e3bf480350f25e07e21c947d19e3376f09b3c1e161742");
}

static void x25519_low_order_refused(void **state)
{
    uint8_t priv[32], zero[32] = {0}, one[32] = {1}, out[32];
    assert_int_equal(mt_wg_genkey(priv), 0);
    assert_int_equal(priv[0] & 7, 0); /* clamped */
    assert_int_equal(priv[31] & 0xC0, 0x40);
    assert_int_equal(mt_wg_dh(out, priv, zero), -EINVAL);
    assert_int_equal(mt_wg_dh(out, priv, one), -EINVAL);
}

static void chachapoly_rfc8439(void **state)
{
    uint8_t key[32], nonce[12], ad[12], buf[256], back[256];
    size_t n = strlen(LADIES);
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x80 + i);
    unhex(nonce, "070000004041424344454647");
    unhex(ad, "50515253c0c1c2c3c4c5c6c7");
    assert_int_equal(mt_wg_aead_seal_nonce(buf, key, nonce, (const uint8_t *)LADIES, n, ad, 12), 0);
    assert_hex(buf,
               "d31a8d34648e60db7b86afbc53ef7ec2a4aded51296e08fea9e2b5a736ee62d63dbea45e8ca9671282"
               "fafb69da92728b1a71de0a9e060b2905d6a5b67ecd3b3692ddbd7f2d778b8c9803aee328091b58fa"
               "b324e4fad675945585808b4831d7bc3ff4def08e4b7a9de576d26586cec64b6116");
    assert_hex(buf + n, "1ae10b594f09e26a7e902ecbd0600691");
    assert_int_equal(mt_wg_aead_open_nonce(back, key, nonce, buf, n + 16, ad, 12), 0);
    assert_memory_equal(back, LADIES, n);
    /* In place, as data messages do. */
    memcpy(back, buf, n + 16);
    assert_int_equal(mt_wg_aead_open_nonce(back, key, nonce, back, n + 16, ad, 12), 0);
    assert_memory_equal(back, LADIES, n);
    /* A flipped bit anywhere, a wrong AD or a short message is refused. */
    buf[n + 15] ^= 1;
    assert_int_equal(mt_wg_aead_open_nonce(back, key, nonce, buf, n + 16, ad, 12), -EBADMSG);
    buf[n + 15] ^= 1;
    buf[3] ^= 0x80;
    assert_int_equal(mt_wg_aead_open_nonce(back, key, nonce, buf, n + 16, ad, 12), -EBADMSG);
    buf[3] ^= 0x80;
    assert_int_equal(mt_wg_aead_open_nonce(back, key, nonce, buf, n + 16, ad, 11), -EBADMSG);
    assert_int_equal(mt_wg_aead_open_nonce(back, key, nonce, buf, 15, ad, 12), -EBADMSG);
}

static void chachapoly_counter_nonce(void **state)
{
    /* WireGuard's nonce: 4 zero bytes, then the counter little-endian. */
    uint8_t key[32] = {7}, nonce[12] = {0, 0, 0, 0, 0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01};
    uint8_t a[48], b[48], pt[32] = "thirty-two bytes of plaintext!!";
    assert_int_equal(mt_wg_aead_seal(a, key, UINT64_C(0x0102030405060708), pt, 32, NULL, 0), 0);
    assert_int_equal(mt_wg_aead_seal_nonce(b, key, nonce, pt, 32, NULL, 0), 0);
    assert_memory_equal(a, b, 48);
    assert_int_equal(mt_wg_aead_open(b, key, UINT64_C(0x0102030405060709), a, 48, NULL, 0),
                     -EBADMSG);
}

static void xchachapoly_draft(void **state)
{
    uint8_t key[32], nonce[24], ad[12], buf[256], back[256];
    size_t n = strlen(LADIES);
    for (int i = 0; i < 32; i++)
        key[i] = (uint8_t)(0x80 + i);
    for (int i = 0; i < 24; i++)
        nonce[i] = (uint8_t)(0x40 + i);
    unhex(ad, "50515253c0c1c2c3c4c5c6c7");
    assert_int_equal(mt_wg_xaead_seal(buf, key, nonce, (const uint8_t *)LADIES, n, ad, 12), 0);
    assert_hex(buf,
               "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb731c7f1b0b4aa644"
               "0bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b4522f8c9ba40db5d945b11b69b982c1bb9e"
               "3f3fac2bc369488f76b2383565d3fff921f9664c97637da9768812f615c68b13b52e");
    assert_hex(buf + n, "c0875924c1c7987947deafd8780acf49");
    assert_int_equal(mt_wg_xaead_open(back, key, nonce, buf, n + 16, ad, 12), 0);
    assert_memory_equal(back, LADIES, n);
    buf[0] ^= 1;
    assert_int_equal(mt_wg_xaead_open(back, key, nonce, buf, n + 16, ad, 12), -EBADMSG);
}

static void blake2s_vectors(void **state)
{
    uint8_t out[32], key[32], msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (uint8_t)i;
    memcpy(key, msg, 32);
    /* RFC 7693 appendix B: BLAKE2s-256("abc"); as two parts, as HASH(a || b) is used. */
    assert_int_equal(mt_wg_hash(out, "ab", 2, "c", 1), 0);
    assert_hex(out, "508c5e8c327c14e2e1a72ba34eeb452f37458b209ed63a294d999b4c86675982");
    /* Keyed BLAKE2s-128 (mac1, mac2, cookies). */
    assert_int_equal(mt_wg_mac(out, key, 32, msg, 64), 0);
    assert_hex(out, "f1efa90d2547036841ecd3627fafbc36");
    assert_int_equal(mt_wg_mac(out, key, 16, "abc", 3), 0);
    assert_hex(out, "75296c2d2c0f51210b383f386bc8b1ff");
    assert_int_equal(mt_wg_mac(out, key, 0, "abc", 3), -EINVAL);
    /* HMAC-BLAKE2s. */
    assert_int_equal(mt_wg_hmac(out, key, 32, msg, 64), 0);
    assert_hex(out, "3b35e945d05ac982850451ac8b6cdfffb98e56f50b95272fab665de081691056");
}

static void kdf_is_hmac_chain(void **state)
{
    /* KDF3 built from HMACs by hand: tau0 = HMAC(ck, in), tau1 = HMAC(tau0, 1),
     * tau2 = HMAC(tau0, tau1 || 2), tau3 = HMAC(tau0, tau2 || 3). */
    uint8_t ck[32] = {1, 2, 3}, in[5] = "input", t0[32], t[33], a[32], b[32], c[32];
    assert_int_equal(mt_wg_kdf(a, b, c, ck, in, sizeof(in)), 0);
    mt_wg_hmac(t0, ck, 32, in, sizeof(in));
    t[0] = 1;
    mt_wg_hmac(t, t0, 32, t, 1);
    assert_memory_equal(a, t, 32);
    t[32] = 2;
    mt_wg_hmac(t, t0, 32, t, 33);
    assert_memory_equal(b, t, 32);
    t[32] = 3;
    mt_wg_hmac(t, t0, 32, t, 33);
    assert_memory_equal(c, t, 32);
    uint8_t one[32];
    assert_int_equal(mt_wg_kdf(one, NULL, NULL, ck, in, sizeof(in)), 0);
    assert_memory_equal(one, a, 32);
}

static void equal_and_wipe(void **state)
{
    uint8_t a[16] = {1}, b[16] = {1};
    assert_true(mt_wg_equal(a, b, 16));
    b[15] = 1;
    assert_false(mt_wg_equal(a, b, 16));
    mt_wg_wipe(a, 16);
    uint8_t z[16] = {0};
    assert_memory_equal(a, z, 16);
}

/* OpenSSL's allocations, counted (set before OpenSSL allocates anything). */
static size_t allocs;

static void *count_malloc(size_t n, const char *file, int line)
{
    allocs++;
    return malloc(n);
}

static void *count_realloc(void *p, size_t n, const char *file, int line)
{
    allocs++;
    return realloc(p, n);
}

static void count_free(void *p, const char *file, int line)
{
    free(p);
}

static void data_path_allocates_nothing(void **state)
{
    /* moontun allocates nothing per packet: sealing and opening reuse one cipher context. */
    uint8_t key[32] = {9}, buf[1500 + 16] = {0};
    assert_int_equal(mt_wg_aead_seal(buf, key, 0, buf, 1500, NULL, 0), 0); /* warm-up */
    assert_int_equal(mt_wg_aead_open(buf, key, 0, buf, 1516, NULL, 0), 0);
    allocs = 0;
    for (uint64_t c = 1; c < 100; c++) {
        assert_int_equal(mt_wg_aead_seal(buf, key, c, buf, 1500, NULL, 0), 0);
        assert_int_equal(mt_wg_aead_open(buf, key, c, buf, 1516, NULL, 0), 0);
    }
    assert_int_equal(allocs, 0);
}

static int teardown(void **state)
{
    mt_wg_crypto_fini();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(x25519_rfc7748),
        cmocka_unit_test(x25519_low_order_refused),
        cmocka_unit_test(chachapoly_rfc8439),
        cmocka_unit_test(chachapoly_counter_nonce),
        cmocka_unit_test(xchachapoly_draft),
        cmocka_unit_test(blake2s_vectors),
        cmocka_unit_test(kdf_is_hmac_chain),
        cmocka_unit_test(equal_and_wipe),
        cmocka_unit_test(data_path_allocates_nothing),
    };
    CRYPTO_set_mem_functions(count_malloc, count_realloc, count_free);
    return cmocka_run_group_tests(tests, NULL, teardown);
}
