/* WireGuard's message formats on the wire: types, sizes, field offsets, and the little-endian
 * helpers every parser here shares. Nothing else. */
#ifndef MOONTUN_WG_WIRE_H
#define MOONTUN_WG_WIRE_H

#include <stddef.h>
#include <stdint.h>

enum {
    MT_WG_MSG_INITIATION = 1,
    MT_WG_MSG_RESPONSE = 2,
    MT_WG_MSG_COOKIE = 3,
    MT_WG_MSG_DATA = 4,
};

#define MT_WG_INITIATION_LEN 148 /* type, sender, ephemeral, static+tag, timestamp+tag, macs */
#define MT_WG_RESPONSE_LEN   92  /* type, sender, receiver, ephemeral, empty+tag, macs */
#define MT_WG_COOKIE_LEN     64  /* type, receiver, nonce, cookie+tag */
#define MT_WG_DATA_HEADER    16  /* type, receiver, counter; then ciphertext and tag */
#define MT_WG_DATA_MIN       32  /* header and the tag of a keepalive (empty plaintext) */
#define MT_WG_TIMESTAMP_LEN  12  /* TAI64N */

/* Field offsets. Every message starts with a 32-bit little-endian type whose upper three
 * bytes are zero; the sender index (messages 1, 2) or receiver index (3, 4) follows. */
#define MT_WG_OFF_INDEX        4
#define MT_WG_OFF_RECEIVER2    8  /* response: the initiator's index */
#define MT_WG_OFF_INIT_E       8  /* initiation: ephemeral */
#define MT_WG_OFF_INIT_S       40 /* initiation: encrypted static (32 + 16) */
#define MT_WG_OFF_INIT_TS      88 /* initiation: encrypted timestamp (12 + 16) */
#define MT_WG_OFF_RESP_E       12 /* response: ephemeral */
#define MT_WG_OFF_RESP_EMPTY   44 /* response: encrypted nothing (16) */
#define MT_WG_OFF_COOKIE_NONCE 8
#define MT_WG_OFF_COOKIE_BODY  32 /* encrypted cookie (16 + 16) */
#define MT_WG_OFF_COUNTER      8  /* data: 64-bit counter */
/* mac1 and mac2 are the last 32 bytes of messages 1 and 2. */
#define MT_WG_MAC1_FROM_END 32
#define MT_WG_MAC2_FROM_END 16

static inline void mt_wg_put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static inline uint32_t mt_wg_get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline void mt_wg_put64(uint8_t *p, uint64_t v)
{
    mt_wg_put32(p, (uint32_t)v);
    mt_wg_put32(p + 4, (uint32_t)(v >> 32));
}

static inline uint64_t mt_wg_get64(const uint8_t *p)
{
    return (uint64_t)mt_wg_get32(p) | (uint64_t)mt_wg_get32(p + 4) << 32;
}

/* The message type of a datagram, 0 when it is none of the four (too short for a header, or
 * the reserved bytes are not zero). */
static inline int mt_wg_msg_type(const uint8_t *p, size_t len)
{
    if (len < 4 || p[1] || p[2] || p[3] || p[0] < MT_WG_MSG_INITIATION || p[0] > MT_WG_MSG_DATA)
        return 0;
    return p[0];
}

#endif
