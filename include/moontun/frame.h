/* simpletun's TCP framing: a 2-byte big-endian length, then that many bytes of packet.
 * The decoder is a pure function over a byte buffer so it can be unit-tested and fuzzed
 * without sockets. */
#ifndef MOONTUN_FRAME_H
#define MOONTUN_FRAME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MT_FRAME_HDR 2

/* Looks for one whole frame at the start of buf[0..len).
 * Returns the bytes the frame occupies (header included) and sets *payload and *plen; 0 when
 * more bytes are needed; -EPROTO for a zero-length frame; -EMSGSIZE for a length above max. */
ssize_t mt_frame_decode(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
                        size_t *plen);

/* Writes the 2-byte header for a payload of len bytes (len <= 65535). */
static inline void mt_frame_header(uint8_t *dst, size_t len)
{
    dst[0] = (uint8_t)(len >> 8);
    dst[1] = (uint8_t)len;
}

#endif
