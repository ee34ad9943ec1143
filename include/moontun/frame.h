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

/* The extended framing two moontun peers switch to after the offload handshake (see
 * transport_tcp.c): a 4-byte big-endian length, then that many bytes: a 10-byte virtio-net
 * header and the packet, which may be a super-packet of up to 64 KiB. Same return values. */
#define MT_XFRAME_HDR  4
#define MT_XFRAME_VNET 10
ssize_t mt_xframe_decode(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
                         size_t *plen);

static inline void mt_xframe_header(uint8_t *dst, size_t len)
{
    dst[0] = (uint8_t)(len >> 24);
    dst[1] = (uint8_t)(len >> 16);
    dst[2] = (uint8_t)(len >> 8);
    dst[3] = (uint8_t)len;
}

/* Writes the 2-byte header for a payload of len bytes (len <= 65535). */
static inline void mt_frame_header(uint8_t *dst, size_t len)
{
    dst[0] = (uint8_t)(len >> 8);
    dst[1] = (uint8_t)len;
}

#endif
