/* simpletun's TCP framing decoder: finds one [2-byte length][payload] frame at the start of
 * a byte buffer. Pure, so the connection code, the unit tests and the fuzzer share it. */
#include <errno.h>

#include "moontun/frame.h"

ssize_t mt_frame_decode(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
                        size_t *plen)
{
    if (len < MT_FRAME_HDR)
        return 0;
    size_t n = ((size_t)buf[0] << 8) | buf[1];
    /* A zero length carries no packet; simpletun never sends one, so the stream is out of
     * sync or hostile. */
    if (n == 0)
        return -EPROTO;
    /* Judge the length as soon as the header is here rather than when the whole frame is: a
     * liar announcing 65535 bytes would otherwise make us buffer them before we object. */
    if (n > max)
        return -EMSGSIZE;
    if (n > len - MT_FRAME_HDR)
        return 0;
    *payload = buf + MT_FRAME_HDR;
    *plen = n;
    return (ssize_t)(n + MT_FRAME_HDR);
}

ssize_t mt_xframe_decode(const uint8_t *buf, size_t len, size_t max, const uint8_t **payload,
                         size_t *plen)
{
    if (len < MT_XFRAME_HDR)
        return 0;
    size_t n = ((size_t)buf[0] << 24) | ((size_t)buf[1] << 16) | ((size_t)buf[2] << 8) | buf[3];
    /* Every extended frame carries a virtio-net header and at least one byte of packet. */
    if (n <= MT_XFRAME_VNET)
        return -EPROTO;
    if (n > max)
        return -EMSGSIZE;
    if (n > len - MT_XFRAME_HDR)
        return 0;
    *payload = buf + MT_XFRAME_HDR;
    *plen = n;
    return (ssize_t)(n + MT_XFRAME_HDR);
}
