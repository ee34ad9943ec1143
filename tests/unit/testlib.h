/* Helpers shared by the unit tests: an independent checksum (byte by byte, no tricks, so it
 * cannot share a bug with core/proto.c), big-endian byte access, IPv4 packet builders and a
 * file writer. Header-only: each test is one executable. */
#ifndef MOONTUN_TESTLIB_H
#define MOONTUN_TESTLIB_H

#include <fcntl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* One's-complement sum of n bytes into s, not folded. */
static inline uint32_t mt_test_sum(uint32_t s, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        s += (i % 2 == 0) ? (uint32_t)p[i] << 8 : p[i];
    return s;
}

/* Folds and complements: the value of a checksum field (0 when verifying a correct one). */
static inline uint16_t mt_test_fold(uint32_t s)
{
    while (s >> 16)
        s = (s & 0xffff) + (s >> 16);
    return (uint16_t)~s;
}

static inline uint16_t mt_test_get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline void mt_test_put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

/* An IPv4 packet with a 20-byte header, proto, src and dst, and l4len bytes of transport
 * header and payload (left for the caller, the payload bytes a pattern); the IPv4 header
 * checksum is right. Returns the packet's length. */
static inline size_t mt_test_ip4(uint8_t *b, uint8_t proto, const uint8_t src[4],
                                 const uint8_t dst[4], size_t l4len)
{
    size_t len = 20 + l4len;
    memset(b, 0, 20);
    b[0] = 0x45;
    mt_test_put16(b + 2, (uint16_t)len);
    mt_test_put16(b + 4, 0x1234); /* id */
    b[6] = 0x40;                  /* DF */
    b[8] = 64;
    b[9] = proto;
    memcpy(b + 12, src, 4);
    memcpy(b + 16, dst, 4);
    mt_test_put16(b + 10, mt_test_fold(mt_test_sum(0, b, 20)));
    for (size_t i = 20; i < len; i++)
        b[i] = (uint8_t)(i * 7);
    return len;
}

/* The transport checksum of an IPv4 packet built above, over the pseudo-header. */
static inline void mt_test_ip4_l4_csum(uint8_t *b, size_t len, size_t field)
{
    mt_test_put16(b + 20 + field, 0);
    uint32_t s = mt_test_sum(0, b + 12, 8) + b[9] + (uint32_t)(len - 20);
    uint16_t c = mt_test_fold(mt_test_sum(s, b + 20, len - 20));
    mt_test_put16(b + 20 + field, b[9] == 17 && c == 0 ? 0xffff : c);
}

/* IPv4 + UDP with payload bytes of pattern, checksums right. */
static inline size_t mt_test_ip4_udp(uint8_t *b, const uint8_t src[4], const uint8_t dst[4],
                                     uint16_t sport, uint16_t dport, size_t payload)
{
    size_t len = mt_test_ip4(b, 17, src, dst, 8 + payload);
    mt_test_put16(b + 20, sport);
    mt_test_put16(b + 22, dport);
    mt_test_put16(b + 24, (uint16_t)(8 + payload));
    mt_test_ip4_l4_csum(b, len, 6);
    return len;
}

/* IPv4 + TCP (20-byte header, ACK|PSH, seq 1000) with payload bytes of pattern, checksums
 * right. */
static inline size_t mt_test_ip4_tcp(uint8_t *b, const uint8_t src[4], const uint8_t dst[4],
                                     uint16_t sport, uint16_t dport, size_t payload)
{
    size_t len = mt_test_ip4(b, 6, src, dst, 20 + payload);
    uint8_t *t = b + 20;
    mt_test_put16(t, sport);
    mt_test_put16(t + 2, dport);
    memset(t + 4, 0, 16);
    t[6] = 0x03; /* seq 1000 */
    t[7] = 0xe8;
    t[12] = 5 << 4;
    t[13] = 0x18; /* ACK|PSH */
    mt_test_put16(t + 14, 65535);
    mt_test_ip4_l4_csum(b, len, 16);
    return len;
}

/* Writes text to path (created or truncated); aborts the test on failure. */
static inline void mt_test_write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    size_t n = strlen(text);
    bool ok = fd >= 0 && write(fd, text, n) == (ssize_t)n;
    if (fd >= 0)
        close(fd);
    if (!ok)
        abort();
}

#endif
